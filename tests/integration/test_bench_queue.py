"""seckill-bench's queued crowd and bots against the real service (issue 12 part 7,
invariant I9): a small queued sale, a few hundred buyers waiting their turn and buying
with their admissions, bots of every kind (no token, forged, another user's, expired,
one address flooding past --ip-rate) refused; the queue audit clean in fifo and random
order. Every server is a real `seckill serve` on loopback."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sklib  # noqa: E402
from fake_seckill import FakeSeckill  # noqa: E402

TMP = tempfile.mkdtemp(prefix="seckill-bench-queue-")
SECRET = os.path.join(TMP, "secret")
with open(SECRET, "wb") as _f:
    _f.write(b"bench-queue-secret-0123456789abcdef")
os.chmod(SECRET, 0o600)


def bench(url, *args, timeout=300):
    cmd = [sklib.BENCH_BIN, url, "-q"] + [str(a) for a in args]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    text = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        print(" ".join(cmd))
        print(text)
        print(p.stderr.decode("utf-8", "replace"))
    return p.returncode, text


def num(text, pattern):
    m = re.search(pattern, text)
    assert m, (pattern, text)
    return [float(g) for g in m.groups()]


BOTS = "none:10,forged:10,other:10,expired:5,flood:1"


def run_mode(ck, mode):
    # --ip-rate: the flooding address (127.0.0.2) runs into it; the crowd's joins and polls
    # from 127.0.0.1 stay below it (paced joins, polls at most every 300 ms each).
    with sklib.Server("--secret-file", SECRET, "--ip-rate", "1500") as srv:
        url = f"http://127.0.0.1:{srv.port}"
        rc, text = bench(url, "--create-sale", f"stock=120,limit=1,starts_in=2s,queue={mode},admit=50,ttl=1s",
                         "--queue", "--users", "250", "--join-rate", "400", "--poll-every", "300ms",
                         "--bots", BOTS, "--flood-requests", "12000")
    ck.eq(rc, 0, f"{mode}: exit code")
    ck.check("QUEUE AUDIT OK" in text, f"{mode}: QUEUE AUDIT OK")
    honest, joined, admitted, bought = num(text, r"honest buyers: (\d+), joined (\d+), admitted \(all queued\) (\d+), "
                                                 r"bought (\d+)")[:4]
    ck.eq(honest, 250, f"{mode}: honest buyers")
    ck.eq(joined, 250, f"{mode}: every buyer joined")
    ck.eq(bought, 120, f"{mode}: the whole stock went to honest buyers")
    for kind, n in (("none", 10), ("forged", 10), ("other", 10), ("expired", 5)):
        line = re.search(rf"bots {kind} .*", text).group(0)
        tried, refused, unadmitted, other = num(line, r"(\d+), refused 403 (\d+), never admitted (\d+), "
                                                      r"other answers (\d+)")
        ck.eq(tried, n, f"{mode}: {kind} bots")
        if mode == "fifo" or kind != "expired":
            ck.eq(refused, n, f"{mode}: every {kind} bot refused 403")
        else:
            # Expired bots join first, but a random draw may put one behind the stock: never
            # admitted, or admitted after the sell-out and told sold_out. None bought.
            ck.eq(refused + unadmitted + other, n, f"{mode}: every {kind} bot answered")
            ck.check(other == 0 or "(409 sold_out)" in line, f"{mode}: {kind} bots' other answers: {line}")
    sent, r429, _, made = num(text, r"flood\s+1 address \(127\.0\.0\.2\): (\d+) requests, (\d+) answered 429, "
                                    r"(\d+) 403, (\d+) orders")
    ck.check(sent > 0 and r429 > 0, f"{mode}: the flood ran into the rate limit ({sent:.0f} sent, {r429:.0f} 429)")
    ck.eq(made, 0, f"{mode}: the flood bought nothing")
    counts = num(text, r"bot_orders (\d+)  unadmitted (\d+)  out_of_order (\d+)  oversold (\d+)")
    ck.eq(counts, [0, 0, 0, 0], f"{mode}: audit counters")
    rho = num(text, r"over (\d+) pre-queued: (-?[\d.]+)")
    ck.check(rho[0] >= 200, f"{mode}: the pre-queue judged ({rho[0]:.0f})")
    if mode == "fifo":
        ck.check(rho[1] > 0.9, f"fifo: positions follow join order (rho {rho[1]})")
    else:
        ck.check(abs(rho[1]) < 0.5, f"random: the draw is a shuffle (rho {rho[1]})")


def test_fifo(ck):
    run_mode(ck, "fifo")


def test_random(ck):
    run_mode(ck, "random")


def test_fake(ck):
    # The fake's own waiting room: truthful passes; the liar that sells without an admission
    # gives the bots orders, and the audit catches them. The stock is more than every buyer
    # and bot together, so that the bots find units however late a slow machine runs them.
    args = ["--create-sale", "stock=80,limit=1,starts_in=1500ms,queue=fifo,admit=100,ttl=1s", "--queue",
            "--users", "60", "--poll-every", "200ms", "--bots", "none:3,forged:3,other:3"]
    with FakeSeckill("truthful") as f:
        rc, text = bench(f.url, *args)
    ck.eq(rc, 0, "fake truthful: exit code")
    ck.check("QUEUE AUDIT OK" in text, "fake truthful: QUEUE AUDIT OK")
    with FakeSeckill("no_admission") as f:
        rc, text = bench(f.url, *args)
    ck.eq(rc, 1, "fake no_admission: exit code")
    bot_orders = num(text, r"bot_orders (\d+)")[0]
    ck.check(bot_orders >= 9, f"fake no_admission: bot orders caught ({bot_orders:.0f})")
    ck.check("QUEUE AUDIT FAILED" in text, "fake no_admission: QUEUE AUDIT FAILED")


def test_usage(ck):
    rc, _ = bench("http://127.0.0.1:9", "--create-sale", "stock=1", "--bots", "none:3")
    ck.eq(rc, 2, "--bots without --queue: usage error")
    rc, _ = bench("http://127.0.0.1:9", "--create-sale", "stock=1", "--queue", "--bots", "martians:3")
    ck.eq(rc, 2, "--bots with an unknown kind: usage error")


try:
    sklib.run_tests([test_fifo, test_random, test_fake, test_usage])
finally:
    shutil.rmtree(TMP, ignore_errors=True)
