"""seckill-bench with several units per order and the operator's controls: a crowd with a
mix of quantities audited in units, fake services that sell while their trail says
paused or closed and that store another quantity than they confirmed (each caught), and
a flood of the real service with the controls script (pause, add 10 %, extend, close)
audited against the sale's trail, over HTTP and from the SQLite file; the same over a
sale with a payment window, audited from its journal."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sklib  # noqa: E402
from fake_seckill import FakeSeckill  # noqa: E402

TMP = tempfile.mkdtemp(prefix="seckill-bench-controls-")
COUNTERS = ("oversold", "undersold", "lost", "phantom", "duplicates", "miscounted")


def bench(url, *args, timeout=180):
    """Runs seckill-bench; returns (exit code, parsed --json, stdout)."""
    out = os.path.join(TMP, "run.json")
    if os.path.exists(out):
        os.remove(out)
    cmd = [sklib.BENCH_BIN, url, "--json", out, "-q"] + [str(a) for a in args]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    text = p.stdout.decode("utf-8", "replace")
    data = None
    if os.path.exists(out):
        with open(out) as f:
            data = json.load(f)
    if p.returncode < 0 or data is None:
        print(" ".join(cmd), text, p.stderr.decode("utf-8", "replace"), sep="\n")
    return p.returncode, data, text


def expect(ck, data, what, trail=None, **want):
    a = data["audit"]
    for k in COUNTERS:
        ck.eq(a[k], want.get(k, 0), f"{what}: audit {k}")
    if trail is None:
        ck.check("trail" not in a, f"{what}: no trail to check")
    else:
        for k in ("while_paused", "after_close", "over_stock"):
            ck.eq(a["trail"][k], trail.get(k, 0), f"{what}: trail {k}")
    ck.eq(a["ok"], not any(want.values()) and not any((trail or {}).values()), f"{what}: audit ok")


def test_units_against_a_fake(ck):
    with FakeSeckill("truthful") as f:
        rc, data, text = bench(f.url, "--create-sale", "stock=100,limit=3,starts_in=300ms,max_quantity=3",
                               "--quantity", "1-3", "--users", "300", "-c", "8")
    ck.eq(rc, 0, f"truthful, quantities 1-3: exit code\n{text}")
    a = data["audit"]
    ck.check(a["store_units"] > a["store_orders"], f"more units than orders: {a}")
    ck.check(a["store_units"] <= 100, f"no more units than the stock: {a}")
    ck.eq(a["client_units"], a["store_units"], "every confirmed unit named to the client")
    expect(ck, data, "truthful units")
    with FakeSeckill("miscount", every=4) as f:
        rc, data, _ = bench(f.url, "--create-sale", "stock=60,limit=3,starts_in=300ms", "--quantity", "1:1,2:1",
                            "--users", "200", "-c", "4")
    ck.eq(rc, 1, "miscount: exit code")
    ck.check(data["audit"]["miscounted"] > 0, f"miscount: caught ({data['audit']})")
    with FakeSeckill("pausesell", after=10) as f:
        rc, data, text = bench(f.url, "--create-sale", "stock=50,limit=1,starts_in=300ms", "--users", "200", "-c", "4")
    ck.eq(rc, 1, "sold while paused: exit code")
    expect(ck, data, "sold while paused", trail={"while_paused": 40})
    ck.check("AUDIT FAILED" in text and "while_paused=40" in text, f"saying so: {text[-300:]}")
    with FakeSeckill("closesell", after=20) as f:
        rc, data, _ = bench(f.url, "--create-sale", "stock=50,limit=1,starts_in=300ms", "--users", "200", "-c", "4")
    ck.eq(rc, 1, "sold after the close: exit code")
    expect(ck, data, "sold after the close", trail={"after_close": 30})


def test_controls_during_a_flood(ck):
    if not os.path.exists(sklib.SECKILL_BIN):
        print("skip: no seckill binary at", sklib.SECKILL_BIN)
        return
    with sklib.Server(admin_token="adm") as srv:
        url = f"http://{srv.host}:{srv.port}"
        # An open loop that outlasts the script: pause at 0.5 s for 2 s, 10 % more stock at
        # 3 s, a later end at 3.5 s, the close at 4.5 s.
        rc, data, text = bench(url, "--create-sale", "stock=1200,limit=3,starts_in=500ms", "--quantity",
                               "1:60,2:30,3:10", "--users", "100000", "-c", "8", "--rate", "600", "-d", "6s",
                               "--controls", "default", "--admin-token", "adm")
        ck.eq(rc, 0, f"controls during a flood: exit code\n{text[-2500:]}")
        if not data:
            return
        expect(ck, data, "controls during a flood", trail={})
        ck.eq(data["audit"]["trail"]["entries"], 5, "five controls in the trail")
        counts = data["counts"]
        ck.check(counts["paused"] > 0 and counts["ended"] > 0, f"buyers heard paused and ended: {counts}")
        ck.check("controls (5):" in text and text.count("applied (trail entry") == 5, "every step applied")
        sid = data["sale"]["id"]
        st, s = srv.json("GET", f"/api/v1/sales/{sid}")
        ck.eq((s["stock"], s["state"], s["closed"]), (1320, "ended", True), "stock 1200 + 10 %, closed")
        ck.eq(data["audit"]["store_units"], s["sold"], "units in the store = the sale's sold")
        # The same sale from the SQLite file: the stock from the trail, units from the view.
        db = os.path.join(srv.data, "seckill.db")
        rc, data2, _ = bench(url, "--sale", sid, "--users", "50", "--requests", "50", "-c", "2", "--audit-sqlite", db,
                             "--admin-token", "adm")
        ck.eq(rc, 0, "the sqlite audit of the same sale")
        if data2:
            ck.eq((data2["audit"]["stock"], data2["audit"]["store_units"]), (1320, s["sold"]), "sqlite: stock, units")
            ck.eq(data2["counts"]["ended"], 50, "a closed sale: ended")
        # A script that cannot apply (resume of a live sale) is reported, exit 1.
        rc, data3, text = bench(url, "--create-sale", "stock=10,limit=1,starts_in=200ms", "--users", "20", "-c", "2",
                                "--rate", "20", "-d", "1s", "--controls", "resume@100ms", "--admin-token", "adm")
        ck.eq(rc, 1, "a control that is refused: exit 1")
        ck.check("HTTP 409 not_paused" in text and "CONTROLS FAILED" in text, f"saying which: {text[-600:]}")


LIFE_COUNTERS = ("bad_reads", "counts_mismatch", "late_confirmed", "early_expired", "state_mismatch", "not_final",
                 "returned_twice", "bad_transitions", "held_at_end")


def test_controls_with_payment_windows(ck):
    # The controls over a sale whose purchases are reservations: the crowd sells out before
    # the pause, reservations made before it are paid, cancelled or expire while it lasts
    # (their units come back), the crowd takes them again after the resume, and the close
    # stops it while earlier reservations still end. Audited from the journal: its log
    # replayed (the stock and the limit at each step) and the trail.
    if not os.path.exists(sklib.SECKILL_BIN):
        print("skip: no seckill binary at", sklib.SECKILL_BIN)
        return
    key = os.path.join(TMP, "payment.key")
    with open(key, "w") as f:
        f.write("controls-key\n")
    with sklib.Server("--payment-secret-file", key, admin_token="adm") as srv:
        url = f"http://{srv.host}:{srv.port}"
        db = os.path.join(srv.data, "seckill.db")
        rc, data, text = bench(url, "--create-sale", "stock=300,limit=1,starts_in=500ms,window=1500ms", "--users",
                               "100000", "-c", "8", "--rate", "600", "-d", "6s", "--controls", "default",
                               "--admin-token", "adm", "--pay", "0.5", "--late", "0.1", "--cancel", "0.2",
                               "--payment-secret-file", key, "--audit-sqlite", db)
        ck.eq(rc, 0, f"controls with payment windows: exit code\n{text[-2500:]}")
        if not data:
            return
        what = "controls with payment windows"
        expect(ck, data, what, trail={})
        a = data["audit"]
        for k in LIFE_COUNTERS:
            ck.eq(a[k], 0, f"{what}: audit {k}")
        ck.check(a["logged"] and a["reservations_checked"] > 300,
                 f"{what}: the log replayed, every reservation checked: {a['reservations_checked']}")
        ck.eq(a["trail"]["entries"], 5, f"{what}: five controls in the trail")
        counts = data["counts"]
        ck.check(counts["reserved"] > 300 and counts["paused"] > 0 and counts["ended"] > 0,
                 f"{what}: units reserved again, buyers heard paused and ended: {counts}")
        plans = data["lifecycle"]["plans"]
        ck.check(plans["pay"]["answers"]["confirmed"] > 0 and plans["pay_late"]["answers"]["expired"] > 0,
                 f"{what}: payments confirmed in time, refused late: {plans}")
        ck.eq(data["polls"]["final"]["held"], 0, f"{what}: nothing held at the end")
        st, s = srv.json("GET", f"/api/v1/sales/{data['sale']['id']}")
        ck.eq((s["stock"], s["state"], s["held"]), (330, "ended", 0), f"{what}: 300 + 10 %, closed, nothing held")
        ck.eq(a["by_state"]["confirmed"], s["sold"], f"{what}: confirmed orders = the sale's sold")


def test_usage(ck):
    for args, what in ((["--controls", "pause"], "no time"), (["--controls", "jump@1s"], "unknown action"),
                       (["--controls", "add@1s"], "add without amount"), (["--quantity", "0"], "quantity 0"),
                       (["--quantity", "3-1"], "empty range"), (["--quantity", "1:x"], "bad weight")):
        p = subprocess.run([sklib.BENCH_BIN, "http://127.0.0.1:1", "--sale", "x"] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        ck.eq(p.returncode, 2, f"usage: {what}")
        ck.check(b"--controls" in p.stderr or b"--quantity" in p.stderr, f"usage: {what}: names the option")


try:
    sklib.run_tests([test_usage, test_units_against_a_fake, test_controls_during_a_flood,
                     test_controls_with_payment_windows])
finally:
    shutil.rmtree(TMP, ignore_errors=True)
