"""The waiting room on the Redis store (issue 12): queue.lua keeps each queued sale's
places and admissions in Redis, so TWO seckill nodes on one Redis give the same places,
together admit no faster than admit_per_second, and each accepts the other's admission
tokens (same --secret-file). Covered: fifo order and the random pre-queue's shuffle,
position and ahead, idempotent joins, admission and purchase with the token (and
refusals without it, a holder's replay still answered), sell-out stopping admission and
a return (cancel, expiry) resuming it, a node killed and restarted while people wait
(places and admissions kept), SSE across nodes, and the settings fixed at creation.
Every server is real: redis-server and `seckill serve` on loopback."""
import atexit
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import sklib  # noqa: E402
from skcluster import RedisServer  # noqa: E402
from test_queue import QServer, buy, create, join, mint, now_ms, read_events, wait_admitted  # noqa: E402

REDIS = {}


def redis():
    if "r" not in REDIS:
        REDIS["r"] = RedisServer()
        atexit.register(REDIS["r"].close)
    return REDIS["r"]


def node():
    return QServer("--store", redis().url)


def seen(nodes, sid, limit_s=10):
    """Waits until every node has the sale in its cache (they poll Redis's index)."""
    deadline = time.time() + limit_s
    for n in nodes:
        while n.json("GET", f"/api/v1/sales/{sid}")[0] != 200:
            assert time.time() < deadline, f"{sid} not seen by a node"
            time.sleep(0.05)


def wait_admitted_on(nodes, sid, users, ttl, limit_s=30):
    """Polls every user on the nodes in turn until all are admitted; returns {user: answer}
    with the admission time added (_at)."""
    got, deadline, k = {}, time.time() + limit_s, 0
    while len(got) < len(users) and time.time() < deadline:
        for u in users:
            if u in got:
                continue
            st, b = join(nodes[k % len(nodes)], sid, u)
            k += 1
            assert st == 202, (st, b)
            if b["admission"]:
                b["_at"] = b["admission_expires_at"] - ttl
                got[u] = b
        time.sleep(0.05)
    return got


def check_rate(ck, got, rate, what):
    """The k-th admission after the first came no sooner than k / rate seconds after it
    (the credit starts at one admission and grows at the rate, whoever calls)."""
    times = sorted(b["_at"] for b in got.values())
    worst = max((k * 1000 - rate * (t - times[0]) for k, t in enumerate(times)), default=0)
    ck.check(worst <= 0, f"{what}: never more than {rate}/s in total (worst excess {worst / 1000:.2f} admissions)")


def test_fifo_on_two_nodes(ck):
    with node() as a, node() as b:
        nodes = [a, b]
        start, ttl, rate = now_ms() + 2000, 60000, 5
        create(a, "f", 100, starts_at=start, queue="fifo", admit_per_second=rate, admission_ttl_ms=ttl)
        seen([a, b], "f")
        users = [f"u{i}" for i in range(10)]
        for i, u in enumerate(users):
            st, r = join(nodes[i % 2], "f", u)
            ck.eq(st, 202, f"join of {u} on node {'ab'[i % 2]}")
            ck.eq((r["position"], r["ahead"], r["state"], r["admission"]), (i + 1, i, "pre_queue", None),
                  f"pre-queue place of {u}")
        st, r = join(b, "f", "u0")
        ck.eq((st, r["position"], r["ahead"]), (202, 1, 0), "joining again (on the other node) is idempotent")
        st, r = join(a, "f", "u7")
        ck.eq(r["position"], 8, "both nodes give the same place")
        st, r = buy(a, "f", "u0")
        ck.eq((st, r.get("error")), (425, "not_started"), "before the start: not started")
        while now_ms() < start + 100:
            time.sleep(0.05)
        late = ["late0", "late1"]
        for i, u in enumerate(late):
            st, r = join(nodes[i], "f", u)
            ck.eq(r["position"], 11 + i, f"{u} joined after the start: at the back")
        got = wait_admitted_on(nodes, "f", users + late, ttl)
        ck.eq(len(got), 12, "everyone is admitted in the end")
        order = sorted(got, key=lambda u: (got[u]["_at"], got[u]["position"]))
        ck.eq([got[u]["position"] for u in order], list(range(1, 13)), "admission follows the queue (fifo)")
        ck.eq(order[:10], users, "the pre-queue is admitted in arrival order")
        check_rate(ck, got, rate, "two nodes polling")
        spread = max(r["_at"] for r in got.values()) - min(r["_at"] for r in got.values())
        ck.check(spread >= 11 * 1000 // rate, f"12 admissions at {rate}/s take 2.2 s at least: {spread} ms")

        # The token of one node buys on the other; without it nothing new is sold.
        st, r = buy(b, "f", "u0", got["u0"]["admission"], req="r0")
        ck.eq((st, r.get("result")), (201, "confirmed"), "a purchase on node b with an admission node a gave")
        st, r = buy(a, "f", "u1", got["u1"]["admission"], header=True)
        ck.eq((st, r.get("result")), (201, "confirmed"), "the admission in X-Seckill-Admission")
        st, r = buy(a, "f", "u0", req="r0")
        ck.eq((st, r.get("result")), (200, "duplicate"), "a holder's replay without its admission: the first answer")
        st, r = buy(a, "f", "u0", req="r-new")
        ck.eq((st, r.get("error")), (403, "not_admitted"), "a holder's new request without admission: refused")
        st, r = buy(b, "f", "stranger")
        ck.eq((st, r.get("error")), (403, "not_admitted"), "no token: refused")
        st, r = buy(b, "f", "stranger", "99999999999999." + "A" * 43)
        ck.eq((st, r.get("error")), (403, "not_admitted"), "a forged token: refused")
        st, r = buy(b, "f", "u2", got["u3"]["admission"])
        ck.eq((st, r.get("error")), (403, "not_admitted"), "another user's token: refused")
        st, r = buy(b, "f", "minted", mint("f", "minted", now_ms() + 60000))
        ck.eq(st, 201, "a token made with the nodes' key is accepted (any node verifies it)")
        for n in nodes:
            # Each node hears the head from its own calls (at least every tick, 100 ms).
            deadline = time.time() + 3
            while True:
                st, sale = n.json("GET", "/api/v1/sales/f")
                if sale["admitted"] == 12 or time.time() > deadline:
                    break
                time.sleep(0.05)
            ck.eq((sale["queue"], sale["admit_per_second"], sale["admitted"], sale["queue_length"]),
                  ("fifo", rate, 12, 12), f"the sale shows its waiting room on node {'ab'[nodes.index(n)]}")


def test_random_on_two_nodes(ck):
    with node() as a, node() as b:
        nodes = [a, b]
        start = now_ms() + 1500
        create(b, "r", 1000, starts_at=start, queue="random", admit_per_second=1000)
        seen([a, b], "r")
        users = [f"p{i}" for i in range(40)]
        for i, u in enumerate(users):
            st, r = join(nodes[i % 2], "r", u)
            ck.eq((st, r["position"], r["eta_ms"]), (202, None, None), f"{u}: place not drawn before the start")
        while now_ms() < start + 50:
            time.sleep(0.05)
        st, late = join(a, "r", "late")
        ck.eq(late["position"], 41, "a join after the start goes to the back")
        pa = {u: join(a, "r", u)[1]["position"] for u in users}
        pb = {u: join(b, "r", u)[1]["position"] for u in users}
        ck.eq(pa, pb, "both nodes give every user the same drawn place")
        ck.eq(sorted(pa.values()), list(range(1, 41)), "the pre-queue's places are a permutation")
        ck.check([pa[u] for u in users] != list(range(1, 41)), "and not arrival order")
        got = wait_admitted_on(nodes, "r", users, 120000)
        order = sorted(got, key=lambda u: (got[u]["_at"], got[u]["position"]))
        ck.eq([got[u]["position"] for u in order], list(range(1, 41)), "admission follows the drawn places")


def test_rate_with_both_nodes_ticking(ck):
    """Nobody polls: the nodes' ticks alone admit, and together at the rate."""
    with node() as a, node() as b:
        start, rate, ttl = now_ms() + 1000, 4, 60000
        create(a, "t", 100, starts_at=start, queue="fifo", admit_per_second=rate, admission_ttl_ms=ttl)
        seen([a, b], "t")
        users = [f"t{i}" for i in range(30)]
        for i, u in enumerate(users):
            join([a, b][i % 2], "t", u)
        while now_ms() < start:
            time.sleep(0.05)
        time.sleep(3.0)
        heads = [n.json("GET", "/api/v1/sales/t")[1]["admitted"] for n in (a, b)]
        elapsed = now_ms() - start
        ck.check(max(heads) <= 1 + rate * elapsed // 1000, f"admitted {heads} in {elapsed} ms at {rate}/s")
        ck.check(min(heads) >= rate * 2, f"the ticks admit without anyone asking: {heads}")
        got = {}
        for u in users:
            st, r = join(b, "t", u)
            if r["admission"]:
                r["_at"] = r["admission_expires_at"] - ttl
                got[u] = r
        check_rate(ck, got, rate, "two nodes ticking")
        order = sorted(got, key=lambda u: (got[u]["_at"], got[u]["position"]))
        ck.eq([got[u]["position"] for u in order], sorted(got[u]["position"] for u in got), "in queue order")


def test_sell_out_and_returns(ck):
    with node() as a, node() as b:
        create(a, "s", 1, starts_at=now_ms() - 1000, queue="fifo", admit_per_second=1, payment_window_ms=600000)
        seen([a, b], "s")
        for u in ["a", "b", "c", "d"]:
            join(a, "s", u)
        got = wait_admitted(a, "s", ["a"])
        st, order = buy(b, "s", "a", got["a"]["admission"])
        ck.eq((st, order.get("result")), (201, "reserved"), "a reserves the last unit")
        st, r = join(b, "s", "d")
        ck.eq((r["state"], r["eta_ms"]), ("sold_out", None), "the queue says sold out at once")
        head = r["admitted"]
        time.sleep(2.5)
        st, r = join(a, "s", "d")
        ck.eq(r["admitted"], head, "no admission while sold out")
        st, _ = b.json("POST", f"/api/v1/orders/{order['order_id']}/cancel", {"user_id": "a"})
        ck.eq(st, 200, "a cancels: the unit returns")
        got = wait_admitted_on([a, b], "s", ["d"], 120000, limit_s=20)
        ck.check("d" in got, "units back: admission resumes")
        st, r = join(b, "s", "d")
        ck.check(r["admitted"] > head, f"admitted more after the return ({r['admitted']} > {head})")

        # A reservation that expires returns its unit too: the nodes' periodic calls
        # expire it in Redis, and the next queue call sees the unit back.
        create(b, "x", 1, starts_at=now_ms() - 1000, queue="fifo", admit_per_second=1, payment_window_ms=2000)
        seen([a, b], "x")
        for u in ["a", "b", "c"]:
            join(b, "x", u)
        got = wait_admitted(b, "x", ["a"])
        st, order = buy(a, "x", "a", got["a"]["admission"])
        ck.eq((st, order.get("result")), (201, "reserved"), "a reserves the last unit (2 s to pay)")
        st, r = join(a, "x", "c")
        head = r["admitted"]
        ck.eq(r["state"], "sold_out", "sold out while it is held")
        got = wait_admitted_on([a, b], "x", ["c"], 120000, limit_s=20)
        ck.check("c" in got, "the reservation expired unpaid: admission resumes")
        st, o = a.json("GET", f"/api/v1/orders/{order['order_id']}")
        ck.eq(o.get("state"), "expired", "the order expired")
        ck.check(got.get("c", {}).get("admitted", 0) > head, "admitted more after the expiry")


def test_restart_while_waiting(ck):
    a = node()
    try:
        start = now_ms() + 1500
        create(a, "w", 100, starts_at=start, queue="random", admit_per_second=2, admission_ttl_ms=600000)
        users = [f"w{i}" for i in range(20)]
        for u in users:
            join(a, "w", u)
        while now_ms() < start + 100:
            time.sleep(0.05)
        time.sleep(0.6)
        before = {u: join(a, "w", u)[1] for u in users}
        admitted = {u: r for u, r in before.items() if r["admission"]}
        ck.check(len(admitted) >= 1, "someone is admitted before the restart")
        a.kill9()
        time.sleep(1.0)  # nobody calls the script meanwhile: the queue waits in Redis
        a.start()
        with node() as b:
            for n, what in ((a, "the restarted node"), (b, "a new node")):
                after = {u: join(n, "w", u)[1] for u in users}
                ck.eq({u: r["position"] for u, r in after.items()}, {u: r["position"] for u, r in before.items()},
                      f"places kept: {what}")
                for u, r in admitted.items():
                    ck.eq(after[u]["admission_expires_at"], r["admission_expires_at"], f"{u}'s admission kept ({what})")
                ck.check(after[users[0]]["admitted"] >= len(admitted), "the head is kept")
                st, sale = n.json("GET", "/api/v1/sales/w")
                ck.eq((sale["queue"], sale["admit_per_second"], sale["admission_ttl_ms"]), ("random", 2, 600000),
                      f"the settings are kept ({what})")
            u = next(iter(admitted))
            st, r = buy(b, "w", u, admitted[u]["admission"])
            ck.eq(st, 201, "an admission from before the restart buys on another node")
    finally:
        a.close()


def test_sse_across_nodes(ck):
    with node() as a, node() as b:
        start = now_ms() + 1500
        create(a, "e", 10, starts_at=start, queue="fifo", admit_per_second=2, admission_ttl_ms=60000)
        seen([a, b], "e")
        for i in range(4):
            join(a, "e", f"e{i}")
        ev = read_events(b, "/api/v1/sales/e/queue/events?user_id=e3", lambda evs: any(e[1]["admission"] for e in evs))
        ck.check(len(ev) >= 2, f"several events on the other node ({len(ev)})")
        ck.eq(ev[0][1]["position"], 4, "the first event has the place")
        aheads = [e[1]["ahead"] for e in ev]
        ck.check(aheads == sorted(aheads, reverse=True) and aheads[0] == 3, f"ahead only goes down: {aheads}")
        ck.check(ev[-1][1]["state"] == "admitted" and ev[-1][1]["admission"], "the admission arrives over SSE")
        st, r = buy(a, "e", "e3", ev[-1][1]["admission"])
        ck.eq(st, 201, "and it buys on the first node")
        ev = read_events(b, "/api/v1/sales/e/queue/events?user_id=nobody", lambda evs: len(evs) >= 1, limit_s=5)
        ck.check(ev and ev[0][0] == "error" and ev[0][1]["error"] == "not_in_queue", "a stranger hears not_in_queue")


def test_settings(ck):
    with node() as a, node() as b:
        create(a, "k", 5, starts_at=now_ms() + 60000, queue="random", admit_per_second=7, admission_ttl_ms=5000,
               pow_bits=4)
        seen([a, b], "k")
        st, s = b.json("GET", "/api/v1/sales/k")
        ck.eq((st, s["queue"], s["admit_per_second"], s["admission_ttl_ms"], s["pow_bits"]),
              (200, "random", 7, 5000, 4), "the other node finds the sale with its waiting room")
        st, r = b.json("PATCH", "/api/v1/sales/k", {"request_id": "p1", "admit_per_second": 9})
        ck.eq((st, r.get("field"), r.get("code")), (400, "admit_per_second", "not_supported"),
              "the waiting room's settings are set at creation on this store")
        st, r = a.json("PATCH", "/api/v1/sales/k", {"request_id": "p2", "name": "renamed"})
        ck.eq(st, 200, "other settings change")
        st, s = a.json("GET", "/api/v1/sales/k")
        ck.eq((s["name"], s["queue"], s["admit_per_second"]), ("renamed", "random", 7),
              "and the waiting room stays as it was")
        create(a, "open", 5, starts_at=now_ms() - 1000)
        seen([a, b], "open")
        st, r = join(b, "open", "x")
        ck.eq((st, r.get("error")), (409, "no_queue"), "a sale without a queue: 409 no_queue")


if __name__ == "__main__":
    sklib.run_tests([test_fifo_on_two_nodes, test_random_on_two_nodes, test_rate_with_both_nodes_ticking,
                     test_sell_out_and_returns, test_restart_while_waiting, test_sse_across_nodes, test_settings])
