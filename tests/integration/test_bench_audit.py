"""seckill-bench against fake services that lie in one way each: the audit must catch
every lie (exit 1 and the right counter in --json), pass the truthful one (exit 0), and
the client must pipeline, retry with the same request_id, and survive cut connections.
The order lifecycle the same way: reservations paid in time, late, cancelled or left to
expire, against a truthful fake and one liar per rule. Last, clean runs against the real
service, with and without a payment window."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sklib  # noqa: E402
from fake_seckill import FakeSeckill, PipelineCounter  # noqa: E402

TMP = tempfile.mkdtemp(prefix="seckill-bench-test-")


def data_missing(path):
    return not os.path.exists(path)


def bench(url, *args, timeout=120):
    """Runs seckill-bench; returns (exit code, parsed --json, stdout). Each run writes a
    --json file of its own, so that runs may go on at the same time."""
    fd, out = tempfile.mkstemp(prefix="run-", suffix=".json", dir=TMP)
    os.close(fd)
    os.remove(out)
    cmd = [sklib.BENCH_BIN, url, "--json", out, "-q"] + [str(a) for a in args]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    text = p.stdout.decode("utf-8", "replace")
    if p.returncode < 0 or data_missing(out):
        print(" ".join(cmd))
        print(text)
        print(p.stderr.decode("utf-8", "replace"))
    data = None
    if os.path.exists(out):
        with open(out) as f:
            data = json.load(f)
        os.remove(out)
    return p.returncode, data, text


SMALL = ["--create-sale", "stock=50,limit=1,starts_in=300ms", "--users", "300", "-c", "8"]
COUNTERS = ("oversold", "undersold", "lost", "phantom", "duplicates", "miscounted", "bad_reads", "counts_mismatch",
            "late_confirmed", "early_expired", "state_mismatch", "not_final", "returned_twice", "bad_transitions",
            "held_at_end")
KEY = os.path.join(TMP, "payment.key")
with open(KEY, "wb") as _f:
    _f.write(b"fake-key\n")  # the trailing newline is not part of the key
# A lifecycle crowd: 1 s windows; 40% pay in time, 20% pay late, 20% cancel, the rest walk
# away; the crowd buys until every unit is sold (or -d).
LIFE = ["--create-sale", "stock=12,limit=1,starts_in=300ms,window=1s", "--users", "150", "-c", "4",
        "--pay", "0.4", "--late", "0.2", "--cancel", "0.2", "--payment-secret-file", KEY]


def expect_only(ck, data, what, **want):
    """Checks that the named audit counters have the given values and the others are 0."""
    a = data["audit"]
    for k in COUNTERS:
        ck.eq(a[k], want.get(k, 0), f"{what}: audit {k}")
    ck.eq(a["ok"], not any(want.values()), f"{what}: audit ok")


def test_truthful(ck):
    with FakeSeckill("truthful") as f:
        rc, data, text = bench(f.url, *SMALL, "--burst", "--pipeline", "2")
    ck.eq(rc, 0, "truthful: exit code")
    ck.check("AUDIT OK" in text, "truthful: AUDIT OK printed")
    ck.eq(data["counts"]["confirmed"], 50, "truthful: confirmed")
    ck.eq(data["counts"]["sold_out"], 250, "truthful: sold_out")
    ck.eq(data["audit"]["store_orders"], 50, "truthful: store orders")
    expect_only(ck, data, "truthful")
    ck.eq(data["audit"]["users_tried"], 300, "truthful: every user tried once")
    ck.check(data["latency_us"]["confirmed"]["p99"] > 0, "truthful: latency recorded")


def test_load_shapes(ck):
    # Three client threads with a burst barrier: each user still tries exactly once.
    with FakeSeckill("truthful") as f:
        rc, data, _ = bench(f.url, *SMALL, "--threads", "3", "--burst", "--pipeline", "3")
    ck.eq(rc, 0, "threads: exit code")
    ck.eq(data["counts"]["confirmed"], 50, "threads: confirmed")
    ck.eq(data["answers"], 300, "threads: answers")
    ck.eq(data["audit"]["users_tried"], 300, "threads: every user tried once")
    expect_only(ck, data, "threads")
    # Open loop: 400 req/s for 1 s is exactly 400 requests on the schedule; more
    # requests than users means users come back (limit_reached).
    with FakeSeckill("truthful") as f:
        rc, data, _ = bench(f.url, "--create-sale", "stock=1000,limit=1,starts_in=300ms", "--users", "150",
                            "--rate", "400", "--duration", "1s", "-c", "8")
    ck.eq(rc, 0, "open loop: exit code")
    ck.eq(data["requests"], 400, "open loop: requests on the schedule")
    ck.eq(data["counts"]["confirmed"], 150, "open loop: one per user")
    ck.eq(data["counts"]["limit_reached"], 250, "open loop: the rest come back")
    ck.eq(data["audit"]["users_tried"], 150, "open loop: users tried")
    expect_only(ck, data, "open loop")
    # Buyers arriving before the opening hear not_started.
    with FakeSeckill("truthful") as f:
        rc, data, _ = bench(f.url, "--create-sale", "stock=10,limit=1,starts_in=1500ms", "--users", "50",
                            "--early", "1s", "-c", "2")
    ck.eq(rc, 0, "early: exit code")
    ck.eq(data["counts"]["not_started"], 50, "early: not_started")
    expect_only(ck, data, "early")


def test_oversell(ck):
    with FakeSeckill("oversell", extra=5) as f:
        rc, data, text = bench(f.url, *SMALL)
    ck.eq(rc, 1, "oversell: exit code")
    ck.check("AUDIT FAILED" in text and "oversold=5" in text, "oversell: loud line")
    ck.eq(data["counts"]["confirmed"], 55, "oversell: confirmations seen")
    # It also reports sold = stock while its store holds 55 confirmed orders.
    expect_only(ck, data, "oversell", oversold=5, miscounted=1)


def test_trailing_counts(ck):
    # Without payment windows the sale's final read is not held against the store's
    # orders: a cluster node's counts trail its store by a moment, and what a lie there
    # could hide (sold beyond the stock, units left) the store's orders and the answers
    # show. The store's own counts (here its journal) still must match its orders.
    db = os.path.join(TMP, "trailing.db")
    if os.path.exists(db):
        os.remove(db)
    with FakeSeckill("trailing", sqlite_path=db) as f:
        rc, data, _ = bench(f.url, *SMALL, "--audit-sqlite", db)
    ck.eq(rc, 0, "trailing: exit code")
    ck.eq(data["polls"]["final"]["sold"], 49, "trailing: the sale read one unit behind")
    ck.eq(data["audit"]["store_orders"], 50, "trailing: store orders")
    expect_only(ck, data, "trailing")


def test_unstored(ck):
    # Every 5th confirmation is never stored; the service does not count it as sold
    # either, so the client also hears more confirmations than the stock.
    with FakeSeckill("unstored", every=5) as f:
        rc, data, _ = bench(f.url, *SMALL)
        ghosts = f.state.ghosts
    ck.eq(rc, 1, "unstored: exit code")
    ck.check(ghosts > 0, "unstored: the fake lied")
    ck.eq(data["audit"]["lost"], ghosts, "unstored: lost")
    ck.eq(data["audit"]["phantom"], 0, "unstored: phantom")
    ck.eq(data["audit"]["oversold"], ghosts, "unstored: confirmations beyond stock")


def test_double(ck):
    # Each user clicks twice (requests = 2 x users); the liar ignores the limit.
    with FakeSeckill("double") as f:
        rc, data, _ = bench(f.url, "--create-sale", "stock=1000,limit=1,starts_in=300ms", "--users", "60",
                            "--requests", "120", "-c", "4")
    ck.eq(rc, 1, "double: exit code")
    ck.eq(data["counts"]["confirmed"], 120, "double: confirmations")
    expect_only(ck, data, "double", duplicates=60)


def test_503_after_store_resolved(ck):
    # The service stores, then answers 503 (it "cannot know"). Invariant I6 lets the client
    # ask GET .../orders/{user}; the audit does, finds each order and counts it as
    # recovered: an honest in-doubt answer is not a failure.
    with FakeSeckill("503_after", every=4) as f:
        rc, data, text = bench(f.url, "--create-sale", "stock=1000,limit=1,starts_in=300ms", "--users", "100",
                               "-c", "4", "--retries", "0")
    ck.eq(rc, 0, "503_after resolved: exit code")
    n = data["counts"]["unavailable"]
    ck.check(n > 0, "503_after resolved: some 503s")
    ck.eq(data["audit"]["recovered"], n, "503_after resolved: recovered")
    ck.eq(data["audit"]["users_asked"], n, "503_after resolved: users asked")
    expect_only(ck, data, "503_after resolved")


def test_503_after_store_unresolved(ck):
    # The same lie, but the client never asks: the orders behind the 503s are phantoms.
    with FakeSeckill("503_after", every=4) as f:
        rc, data, text = bench(f.url, "--create-sale", "stock=1000,limit=1,starts_in=300ms", "--users", "100",
                               "-c", "4", "--retries", "0", "--no-resolve")
    ck.eq(rc, 1, "503_after --no-resolve: exit code")
    n = data["counts"]["unavailable"]
    ck.check(n > 0, "503_after --no-resolve: some 503s")
    expect_only(ck, data, "503_after --no-resolve", phantom=n)
    ck.check("phantom=" in text, "503_after --no-resolve: loud line names phantom")


def test_503_hidden(ck):
    # Stores, answers 503, and the user's orders endpoint hides the order: a phantom
    # even though the client asked.
    with FakeSeckill("503_hidden", every=4) as f:
        rc, data, _ = bench(f.url, "--create-sale", "stock=1000,limit=1,starts_in=300ms", "--users", "100",
                            "-c", "4", "--retries", "0")
    ck.eq(rc, 1, "503_hidden: exit code")
    n = data["counts"]["unavailable"]
    ck.eq(data["audit"]["users_asked"], n, "503_hidden: users asked")
    expect_only(ck, data, "503_hidden", phantom=n)


def test_undersell(ck):
    with FakeSeckill("undersell", sell=30) as f:
        rc, data, _ = bench(f.url, *SMALL)
    ck.eq(rc, 1, "undersell: exit code")
    ck.eq(data["counts"]["confirmed"], 30, "undersell: confirmed")
    expect_only(ck, data, "undersell", undersold=20)


def test_retries_reuse_request_id(ck):
    # 503 twice, then a decision: every request must come back with the same id.
    with FakeSeckill("retry503") as f:
        rc, data, _ = bench(f.url, "--create-sale", "stock=1000,limit=1,starts_in=300ms", "--users", "40",
                            "-c", "4", "--retries", "3", "--retry-backoff", "1")
        seen = dict(f.state.seen)
    ck.eq(rc, 0, "retries: exit code")
    ck.eq(data["counts"]["confirmed"], 40, "retries: confirmed")
    ck.eq(data["counts"]["unavailable"], 80, "retries: 503s counted")
    ck.eq(data["retries"], 80, "retries: retries sent")
    ck.eq(len(seen), 40, "retries: distinct request ids")
    ck.check(all(v == 3 for v in seen.values()), f"retries: each id seen 3 times: {sorted(set(seen.values()))}")
    expect_only(ck, data, "retries")
    # With too few retries the requests end in doubt; nothing was stored, nothing lost.
    with FakeSeckill("retry503") as f:
        rc, data, _ = bench(f.url, "--create-sale", "stock=1000,limit=1,starts_in=300ms", "--users", "20",
                            "-c", "2", "--retries", "1", "--retry-backoff", "1")
    ck.eq(rc, 0, "retries exhausted: exit code")
    ck.eq(data["in_doubt"], 20, "retries exhausted: in doubt")
    ck.eq(data["audit"]["users_asked"], 20, "retries exhausted: users asked")
    expect_only(ck, data, "retries exhausted")


def test_connection_cut_mid_response(ck):
    for retries in (2, 0):
        with FakeSeckill("midclose", every=4) as f:
            rc, data, _ = bench(f.url, "--create-sale", "stock=1000,limit=1,starts_in=300ms", "--users", "80",
                                "-c", "4", "--retries", retries, "--retry-backoff", "1", "--timeout", "5s")
            closes = f.state.closes
        what = f"midclose retries={retries}"
        ck.eq(rc, 0, f"{what}: exit code (no crash)")
        ck.check(closes > 0, f"{what}: the fake cut connections")
        ck.eq(data["counts"]["net_error"], closes, f"{what}: net_error")
        ck.eq(data["counts"]["confirmed"], 80 if retries else 80 - closes, f"{what}: confirmed")
        ck.eq(data["in_doubt"], 0 if retries else closes, f"{what}: in doubt")
        ck.check(data["connections"]["opened"] > 4, f"{what}: reconnected")
        expect_only(ck, data, what)


def test_pipelining(ck):
    with PipelineCounter() as s:
        rc, data, _ = bench(s.url, "--get", "/", "-c", "1", "--pipeline", "8", "--requests", "400")
        per_recv = list(s.per_recv)
    ck.eq(rc, 0, "pipeline: exit code")
    ck.eq(data["counts"]["ok"], 400, "pipeline: answers")
    ck.eq(sum(per_recv), 400, "pipeline: requests the server got")
    ck.check(max(per_recv) >= 4, f"pipeline: requests per recv: max {max(per_recv)}")
    # One write per loop turn carries every request queued in that turn.
    ck.check(data["connections"]["writes"] < 400, f"pipeline: writes {data['connections']['writes']}")


def test_sqlite_source(ck):
    db = os.path.join(TMP, "seckill.db")
    for name, stock in (("truthful", 50), ("double", 1000)):
        if os.path.exists(db):
            os.remove(db)
        with FakeSeckill(name, sqlite_path=db) as f:
            rc, data, _ = bench(f.url, "--create-sale", f"stock={stock},limit=1,starts_in=300ms", "--users", "100",
                                "--requests", "200", "-c", "4", "--audit-sqlite", db)
        ck.eq(data["audit"]["source"], "sqlite", f"sqlite {name}: source")
        if name == "truthful":
            ck.eq(rc, 0, "sqlite truthful: exit code")
            ck.eq(data["audit"]["store_orders"], 50, "sqlite truthful: store orders")
            expect_only(ck, data, "sqlite truthful")
        else:
            ck.eq(rc, 1, "sqlite double: exit code")
            expect_only(ck, data, "sqlite double", duplicates=100)
    rc, data, text = bench("http://127.0.0.1:1", "--sale", "x", "--audit-sqlite", "/nonexistent/x.db")
    ck.eq(rc, 2, "unreachable service: exit 2 (the run could not start)")


# ---- the order lifecycle ---------------------------------------------------------------

def plan(data, name, answer=None):
    p = data["lifecycle"]["plans"][name]
    return p["count"] if answer is None else p["answers"][answer]


def test_life_truthful(ck):
    drawn = dict.fromkeys(("pay_late", "cancel", "walk_away"), 0)
    sources = ("http", "sqlite")

    def run(source):
        # A fake of its own for each source: the two runs go on side by side.
        db = os.path.join(TMP, "life.db")
        extra = ["--audit-sqlite", db] if source == "sqlite" else []
        with FakeSeckill("truthful", sqlite_path=db if extra else None) as f:
            rc, data, text = bench(f.url, *LIFE, *extra)
            return rc, data, text, list(f.state.pays)

    with ThreadPoolExecutor(max_workers=len(sources)) as pool:
        runs = list(pool.map(run, sources))
    for source, (rc, data, text, pays) in zip(sources, runs):
        what = f"life truthful ({source})"
        ck.eq(rc, 0, f"{what}: exit code")
        expect_only(ck, data, what)
        ck.eq(data["audit"]["source"], source, f"{what}: source")
        ck.eq(data["audit"]["logged"], source == "sqlite", f"{what}: the log replayed")
        ck.eq(data["polls"]["final"]["sold"], 12, f"{what}: every unit sold in the end")
        ck.eq(data["polls"]["final"]["held"], 0, f"{what}: nothing held")
        ck.eq(data["stop_reason"], "every unit sold", f"{what}: the crowd stopped when all was sold")
        n = data["lifecycle"]["reservations"]
        ck.check(n > 12, f"{what}: returned units were reserved again ({n} reservations)")
        ck.eq(data["counts"]["reserved"], n - data["counts"]["duplicate"], f"{what}: reservations counted")
        ck.eq(sum(plan(data, p) for p in ("pay", "pay_late", "cancel", "walk_away")), n, f"{what}: a plan each")
        for k in drawn:
            drawn[k] += plan(data, k)
        # A payment or cancel planned inside the window may still reach a loaded machine
        # after pay_by: then it is refused as expired (the audit checks that it was), so
        # only the sum is exact; a late payment is late for certain.
        ck.eq(plan(data, "pay", "confirmed") + plan(data, "pay", "expired"), plan(data, "pay"),
              f"{what}: payments in time confirmed (or refused as expired)")
        ck.check(plan(data, "pay", "confirmed") > 0, f"{what}: payments confirmed")
        ck.eq(plan(data, "pay_late", "expired"), plan(data, "pay_late"), f"{what}: late payments refused")
        ck.eq(plan(data, "cancel", "cancelled") + plan(data, "cancel", "not_reserved"), plan(data, "cancel"),
              f"{what}: cancels (or refused, the reservation expired)")
        ck.eq(data["audit"]["by_state"]["confirmed"], 12, f"{what}: 12 confirmed orders in the store")
        ck.eq(data["audit"]["reservations_checked"], n, f"{what}: every reservation found and checked")
        ck.check(pays and all(signed for _, signed in pays), f"{what}: every payment signed with the key")
        ck.check("AUDIT OK" in text, f"{what}: AUDIT OK")
        phases, times = data.get("phases", {}), data["audit"].get("times", {})
        ck.check(all(k in phases for k in ("waiting for the opening", "until nothing is held", "the audit")),
                 f"{what}: the run's phases reported: {sorted(phases)}")
        ck.check(("the store's log replayed" in times) == (source == "sqlite") and "the store's orders checked" in times,
                 f"{what}: the audit's steps reported: {sorted(times)}")
        ck.check("the run's time:" in text and "the audit's time:" in text, f"{what}: the times printed")
    # The plans are drawn at random: over both runs (some 60 reservations) each was.
    ck.check(all(drawn.values()), f"life truthful: every plan drawn: {drawn}")


def test_life_liars(ck):
    # Each liar, with what must catch it. Crowds that can never sell everything are
    # bounded by -d; a service that never expires is not waited for long (--settle).
    cases = [
        # Twice the usual late payers (the last --late and --cancel count): with 20 %, a run
        # of ~20 reservations has no late payer at odds of 0.8^20, about 1 %, and then
        # nothing late to confirm (it happened once, under ASan).
        ("late_confirm", ["--late", "0.4", "--cancel", "0.1"],
         lambda d: {"late_confirmed": plan(d, "pay_late", "confirmed")}),
        ("no_expiry", ["-d", "3s", "--settle", "500ms"], None),
        ("double_return", ["--audit-sqlite", "DB"], None),  # DB: the liar's own file (below)
        ("cancel_lie", [], lambda d: {"state_mismatch": plan(d, "cancel", "cancelled")}),
        ("no_resell", ["-d", "5s"], None),
        ("early_expire", [], None),
        ("oversell_held", ["-d", "4s"], None),
        # The sale says the cancelled units are sold: its final counts disagree with its
        # orders' states, and its sold with their confirmed units.
        ("cancel_sold", [], lambda d: {"counts_mismatch": plan(d, "cancel", "cancelled"), "miscounted": 1}),
    ]

    def run(case):
        # Each liar is a fake (and a SQLite file) of its own: the runs go on side by side,
        # as they mostly wait on the crowd's clocks (openings, windows, -d).
        mode, extra, _ = case
        db = os.path.join(TMP, f"liar-{mode}.db")
        extra = [db if a == "DB" else a for a in extra]
        with FakeSeckill(mode, sqlite_path=db if "--audit-sqlite" in extra else None, extra=3) as f:
            return bench(f.url, *LIFE, *extra)

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(run, cases))
    for (mode, extra, want), (rc, data, text) in zip(cases, runs):
        a = data["audit"]
        ck.eq(rc, 1, f"{mode}: exit code")
        ck.check("AUDIT FAILED" in text, f"{mode}: loud line")
        if mode == "late_confirm":
            ck.check(plan(data, "pay_late", "confirmed") > 0, f"{mode}: late payments were confirmed")
            expect_only(ck, data, mode, **want(data))
        elif mode == "no_expiry":
            ck.check(a["held_at_end"] > 0, f"{mode}: held at the end ({a['held_at_end']})")
            ck.eq(a["not_final"], plan(data, "walk_away") + plan(data, "pay_late"), f"{mode}: not final")
            ck.eq(a["state_mismatch"], 0, f"{mode}: no other mismatch")
        elif mode == "double_return":
            ck.eq(a["returned_twice"], plan(data, "cancel", "cancelled"), f"{mode}: returned twice, from the log")
            ck.check(a["returned_twice"] > 0, f"{mode}: cancels happened")
            ck.check(a["bad_reads"] > 0, f"{mode}: reads that do not add up ({a['bad_reads']})")
        elif mode == "cancel_lie":
            ck.check(plan(data, "cancel", "cancelled") > 0, f"{mode}: cancels answered")
            expect_only(ck, data, mode, **want(data))
            ck.check("first state mismatch" in text, f"{mode}: names the first mismatch")
        elif mode == "no_resell":
            ck.check(a["undersold"] > 0, f"{mode}: undersold ({a['undersold']})")
            ck.eq(a["oversold"], 0, f"{mode}: not oversold")
        elif mode == "early_expire":
            ck.check(a["early_expired"] > 0, f"{mode}: early_expired ({a['early_expired']})")
        elif mode == "cancel_sold":
            # Every read adds up and nothing is held at the end: only the sale's final
            # counts against its orders' states show the units that never came back.
            ck.check(plan(data, "cancel", "cancelled") > 0, f"{mode}: cancels answered")
            ck.eq(data["polls"]["final"]["remaining"], 0, f"{mode}: the sale says every unit is gone")
            expect_only(ck, data, mode, **want(data))
        elif mode == "oversell_held":
            ck.check(a["bad_reads"] > 0, f"{mode}: reads with held + sold > stock ({a['bad_reads']})")
            ck.check(a["oversold"] >= 1, f"{mode}: oversold ({a['oversold']})")


def test_life_usage(ck):
    with FakeSeckill("truthful") as f:
        rc, _, _ = bench(f.url, "--create-sale", "stock=5,starts_in=300ms", "--users", "10", "--pay", "0.5")
        ck.eq(rc, 2, "--pay without a payment window: usage error")
        rc, _, _ = bench(f.url, "--create-sale", "stock=5,starts_in=300ms,window=1s", "--users", "10")
        ck.eq(rc, 2, "payments without a key or token: usage error")
        rc, _, _ = bench(f.url, "--create-sale", "stock=5,max_quantity=1,starts_in=300ms", "--users", "10",
                         "--quantity", "2")
        ck.eq(rc, 2, "--quantity above the sale's max_quantity: usage error")
        rc, _, _ = bench(f.url, *LIFE, "--pay", "0.9")
        ck.eq(rc, 2, "shares above 1: usage error")


def test_real_service(ck):
    if not os.path.exists(sklib.SECKILL_BIN):
        print("skip: no seckill binary at", sklib.SECKILL_BIN)
        return
    with sklib.Server() as srv:
        url = f"http://{srv.host}:{srv.port}"
        rc, data, text = bench(url, "--create-sale", "stock=200,limit=1,starts_in=1s", "--users", "2000",
                               "-c", "20")
        ck.eq(rc, 0, "real service: exit code")
        ck.eq(data["counts"]["confirmed"], 200, "real service: confirmed")
        ck.eq(data["counts"]["sold_out"], 1800, "real service: sold_out")
        expect_only(ck, data, "real service")
        # The same sale audited from the SQLite file.
        db = os.path.join(srv.data, "seckill.db")
        if os.path.exists(db):
            rc, data, _ = bench(url, "--sale", data["sale"]["id"], "--users", "500", "--requests", "500",
                                "-c", "4", "--audit-sqlite", db)
            ck.eq(rc, 0, "real service, sqlite audit: exit code")
            ck.eq(data["counts"]["confirmed"], 0, "real service, second wave: confirmed")
            # Holders hear limit_reached (with their order), everyone else sold_out.
            ck.eq(data["counts"]["sold_out"] + data["counts"]["limit_reached"], 500,
                  "real service, second wave: sold_out + limit_reached")
            ck.eq(data["audit"]["store_orders"], 200, "real service, sqlite audit: store orders")
            ck.eq(data["audit"]["foreign"] + data["counts"]["limit_reached"], 200,
                  "real service, sqlite audit: the first run's orders")
            expect_only(ck, data, "real service, sqlite audit")
    # An admin token guards creating the sale and listing its orders.
    with sklib.Server(admin_token="s3cret") as srv:
        url = f"http://{srv.host}:{srv.port}"
        rc, data, _ = bench(url, "--create-sale", "stock=20,limit=1,starts_in=300ms", "--users", "100", "-c", "4")
        ck.eq(rc, 2, "real service, no token: the sale cannot be created")
        rc, data, _ = bench(url, "--create-sale", "stock=20,limit=1,starts_in=300ms", "--users", "100", "-c", "4",
                            "--admin-token", "s3cret")
        ck.eq(rc, 0, "real service, token: exit code")
        ck.eq(data["counts"]["confirmed"], 20, "real service, token: confirmed")
        expect_only(ck, data, "real service, token")
    # The order lifecycle, audited over HTTP and from the journal: returned units sell again
    # until every unit is confirmed; a mix of quantities counts in units.
    with sklib.Server("--payment-secret-file", KEY, admin_token="s3cret") as srv:
        url = f"http://{srv.host}:{srv.port}"
        db = os.path.join(srv.data, "seckill.db")
        for what, extra in (("http", []), ("sqlite", ["--audit-sqlite", db]),
                            ("quantities", ["--audit-sqlite", db, "--quantity", "1:5,2:3,3:2"])):
            spec = "stock=60,limit=3,max_quantity=3,starts_in=500ms,window=2s"
            rc, data, text = bench(url, "--create-sale", spec, "--users", "1000", "-c", "8", "--admin-token", "s3cret",
                                   "--pay", "0.6", "--late", "0.1", "--cancel", "0.1", "--payment-secret-file", KEY,
                                   *extra, timeout=180)
            name = f"real lifecycle ({what})"
            ck.eq(rc, 0, f"{name}: exit code")
            expect_only(ck, data, name)
            ck.eq(data["polls"]["final"]["sold"], 60, f"{name}: every unit sold")
            ck.eq(data["audit"]["logged"], what != "http", f"{name}: the journal's log replayed")
            ck.check(plan(data, "pay_late", "expired") > 0, f"{name}: late payments refused")
            ck.check(data["polls"]["reads"] > 5, f"{name}: the sale read during the run")


try:
    sklib.run_tests([
        test_truthful,
        test_load_shapes,
        test_oversell,
        test_trailing_counts,
        test_unstored,
        test_double,
        test_503_after_store_resolved,
        test_503_after_store_unresolved,
        test_503_hidden,
        test_undersell,
        test_retries_reuse_request_id,
        test_connection_cut_mid_response,
        test_pipelining,
        test_sqlite_source,
        test_life_truthful,
        test_life_liars,
        test_life_usage,
        test_real_service,
    ])
finally:
    shutil.rmtree(TMP, ignore_errors=True)
