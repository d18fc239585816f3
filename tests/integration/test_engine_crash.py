"""kill -9 in the middle of a purchase storm, at several points in time; restart on the
same data dir and reconcile every confirmation the clients saw: nothing lost (I3),
nothing oversold (I1), retries still idempotent (I5), and the sale goes on selling until
exactly its stock (I2)."""
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import sklib  # noqa: E402

TOKEN = "tok"
AUTH = {"Authorization": "Bearer " + TOKEN}
STOCK = 1000
CLIENTS = 16
TIMEOUT = 120 if sklib.SANITIZED else 30


def buyer(srv, k, log, lock, stop):
    """Buys with fresh users until the connection dies. Logs (user, req, status, body) or
    (user, req, None, None) when the answer was lost."""
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=TIMEOUT)
    i = 0
    while not stop.is_set():
        user, req = f"u{k}-{i}", f"r{k}-{i}"
        i += 1
        try:
            c.request("POST", "/api/v1/sales/c/purchase", body=json.dumps({"user_id": user, "request_id": req}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            entry = (user, req, r.status, json.loads(r.read()))
        except (OSError, http.client.HTTPException, ValueError):
            with lock:
                log.append((user, req, None, None))
            break
        with lock:
            log.append(entry)
    c.close()


def crash_run(ck, kill_at, extra_delay):
    with sklib.Server(admin_token=TOKEN, threads=2) as srv:
        t = int(time.time() * 1000)
        st, _ = srv.json("POST", "/api/v1/sales", {"id": "c", "stock": STOCK, "starts_at": t - 1000,
                                                    "ends_at": t + 3600_000}, AUTH)
        ck.eq(st, 201, "create")
        log, lock, stop = [], threading.Lock(), threading.Event()
        threads = [threading.Thread(target=buyer, args=(srv, k, log, lock, stop)) for k in range(CLIENTS)]
        for th in threads:
            th.start()
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            with lock:
                n = sum(1 for e in log if e[2] == 201)
            if n >= kill_at:
                break
            time.sleep(0.001)
        time.sleep(extra_delay)
        srv.kill9()
        stop.set()
        for th in threads:
            th.join(TIMEOUT)
        confirmed = {e[0]: e[3]["order_id"] for e in log if e[2] == 201}
        lost = [e for e in log if e[2] is None]
        other = [e for e in log if e[2] not in (None, 201, 409)]
        ck.check(len(confirmed) >= min(kill_at, STOCK), f"kill at {kill_at}: {len(confirmed)} confirmations seen")
        ck.eq(other, [], "no answer other than 201 / 409 before the crash")
        ck.check(all(e[3].get("error") == "sold_out" for e in log if e[2] == 409), "409s are sold_out")

        srv.start()
        st, sale = srv.json("GET", "/api/v1/sales/c")
        ck.eq(st, 200, "the sale survived")
        sold = sale["sold"]
        print(f"kill after {kill_at}: {len(confirmed)} confirmations seen, {sold} stored, {len(lost)} answers lost",
              flush=True)
        ck.check(len(confirmed) <= sold <= STOCK, f"{len(confirmed)} seen <= sold {sold} <= stock")
        ck.eq(sold + sale["remaining"], STOCK, "sold + remaining")
        listed = srv.list_orders("c", 100, AUTH)
        ids = [o["order_id"] for o in listed]
        ck.eq(len(ids), sold, "orders listed == sold")
        ck.eq(len(set(ids)), len(ids), "order ids distinct")
        ck.eq(ids, ["c-%010d" % i for i in range(1, sold + 1)], "order ids are 1..sold without holes")
        ck.eq(len({o["user_id"] for o in listed}), sold, "one order per user")
        holder = {o["user_id"]: o["order_id"] for o in listed}
        missing = [u for u, oid in confirmed.items() if holder.get(u) != oid]
        ck.eq(missing, [], "every confirmation the clients saw is stored")
        # Each buyer can find their own order.
        for u, oid in list(confirmed.items())[:20]:
            st, o = srv.json("GET", f"/api/v1/sales/c/orders/{u}")
            ck.eq([x["order_id"] for x in o["orders"]], [oid], f"{u} finds the order")
        # Whoever lost the answer retries with the same request id: the first outcome.
        for user, req, _, _ in lost:
            st, r = srv.json("POST", "/api/v1/sales/c/purchase", {"user_id": user, "request_id": req})
            if user in holder:
                ck.eq((st, r.get("order_id")), (200, holder[user]), f"retry of {user}: duplicate of the stored order")
            else:
                ck.check(st in (201, 409), f"retry of {user}: {st} {r}")
                if st == 201:
                    holder[user] = r["order_id"]
        # Sell the rest: exactly the stock, then sold out.
        st, sale = srv.json("GET", "/api/v1/sales/c")
        left = sale["remaining"]
        got = 0
        for i in range(left + 5):
            st, r = srv.json("POST", "/api/v1/sales/c/purchase", {"user_id": f"late{i}", "request_id": "x"})
            if st == 201:
                got += 1
            else:
                ck.eq((st, r.get("error")), (409, "sold_out"), f"late{i} after {got} of {left}")
        ck.eq(got, left, "the rest sells exactly")
        st, sale = srv.json("GET", "/api/v1/sales/c")
        ck.eq((sale["sold"], sale["remaining"], sale["state"]), (STOCK, 0, "sold_out"), "sold out at stock")
        ck.eq(len(srv.list_orders("c", 100, AUTH)), STOCK, "orders listed == stock")
        # And it all survives one more (graceful) restart.
        ck.eq(srv.stop(), 0, "graceful stop")
        srv.start()
        ck.eq(srv.json("GET", "/api/v1/sales/c")[1]["sold"], STOCK, "sold after restart")
        some = next(iter(confirmed), None)
        if some:
            st, o = srv.json("GET", f"/api/v1/sales/c/orders/{some}")
            ck.eq([x["order_id"] for x in o["orders"]], [confirmed[some]], "an early order after two restarts")


def test_kill_early(ck):
    crash_run(ck, 3, 0)


def test_kill_midway(ck):
    crash_run(ck, STOCK // 3, 0.002)


def test_kill_at_sell_out(ck):
    crash_run(ck, STOCK, 0.01)


sklib.run_tests([test_kill_early, test_kill_midway, test_kill_at_sell_out])
