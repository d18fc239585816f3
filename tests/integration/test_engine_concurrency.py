"""A purchase storm: 50 connections, each a thread with many distinct users, against a
small stock while a second sale is live. Exactly `stock` confirmations, sold out for
everyone after that, limits honoured, sold + remaining == stock at every read, retries
answered as duplicates, and the orders listing equal to the confirmations."""
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
CONNS = 50
USERS_PER_CONN = 30  # 1500 distinct buyers for 100 units
STOCK_A = 100
STOCK_B = 60  # limit 2; 4 users per connection try 3 times each
B_USERS = 4


def now_ms():
    return int(time.time() * 1000)


class Conn:
    """One keep-alive connection; reconnects if the server closes it."""

    def __init__(self, srv):
        self.srv = srv
        self.c = None

    def post(self, path, body):
        for attempt in range(3):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=60)
                self.c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
                r = self.c.getresponse()
                return r.status, json.loads(r.read())
            except (http.client.HTTPException, ConnectionError):
                self.c = None
                if attempt == 2:
                    raise

    def close(self):
        if self.c:
            self.c.close()


def storm(srv, results, errors, barrier, k):
    conn = Conn(srv)
    out = []
    try:
        barrier.wait(30)
        for i in range(USERS_PER_CONN):
            user, req = f"a-{k}-{i}", f"ra-{k}-{i}"
            t0 = time.monotonic()
            st, r = conn.post("/api/v1/sales/A/purchase", {"user_id": user, "request_id": req})
            out.append(("A", user, req, t0, time.monotonic(), st, r))
            if i < B_USERS * 3:
                bu = f"b-{k}-{i % B_USERS}"
                breq = f"rb-{k}-{i}"
                t0 = time.monotonic()
                st, r = conn.post("/api/v1/sales/B/purchase", {"user_id": bu, "request_id": breq})
                out.append(("B", bu, breq, t0, time.monotonic(), st, r))
            if i % 10 == 9:
                # A retry of an earlier request (its answer may have been "lost").
                ruser, rreq = f"a-{k}-{i - 5}", f"ra-{k}-{i - 5}"
                t0 = time.monotonic()
                st, r = conn.post("/api/v1/sales/A/purchase", {"user_id": ruser, "request_id": rreq})
                out.append(("A-retry", ruser, rreq, t0, time.monotonic(), st, r))
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        errors.append(f"conn {k}: {e!r}")
    finally:
        conn.close()
        results[k] = out


def reader(srv, stop, reads, errors):
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
    last = {"A": 0, "B": 0}
    try:
        while not stop.is_set():
            for sid in ("A", "B"):
                t = time.monotonic()
                c.request("GET", f"/api/v1/sales/{sid}")
                r = c.getresponse()
                s = json.loads(r.read())
                reads.append((sid, t, s["sold"], s["remaining"], s["stock"], s["state"]))
                if s["sold"] < last[sid]:
                    errors.append(f"{sid}: sold went back from {last[sid]} to {s['sold']}")
                last[sid] = s["sold"]
    except Exception as e:  # noqa: BLE001
        errors.append(f"reader: {e!r}")
    finally:
        c.close()


def test_storm(ck):
    with sklib.Server(admin_token=TOKEN, threads=2) as srv:
        t = now_ms()
        for sid, stock, limit in (("A", STOCK_A, 1), ("B", STOCK_B, 2)):
            st, _ = srv.json("POST", "/api/v1/sales", {"id": sid, "stock": stock, "per_user_limit": limit,
                                                        "starts_at": t - 1000, "ends_at": t + 3600_000}, AUTH)
            ck.eq(st, 201, f"create {sid}")
        results, errors, reads = {}, [], []
        barrier = threading.Barrier(CONNS)
        stop = threading.Event()
        rd = threading.Thread(target=reader, args=(srv, stop, reads, errors))
        rd.start()
        threads = [threading.Thread(target=storm, args=(srv, results, errors, barrier, k)) for k in range(CONNS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(300)
        stop.set()
        rd.join(60)
        ck.eq(errors, [], "no client errors")
        answers = [a for k in range(CONNS) for a in results.get(k, [])]
        ck.check(len(answers) > CONNS * USERS_PER_CONN, f"answers collected: {len(answers)}")

        # Sale A: exactly the stock, distinct order ids, one per user.
        first = {}  # (user, req) -> answer of the first attempt
        confirmed_a = {}
        sold_out_seen = None
        for sale, user, req, t0, t1, st, r in answers:
            if sale == "A":
                first[(user, req)] = (st, r)
                if st == 201:
                    ck.check(r["order_id"] not in confirmed_a, f"order {r['order_id']} confirmed twice")
                    confirmed_a[r["order_id"]] = user
                elif st == 409:
                    ck.eq(r.get("error"), "sold_out", f"A {user}: 409 is sold_out")
                    sold_out_seen = t1 if sold_out_seen is None else min(sold_out_seen, t1)
                else:
                    ck.check(False, f"A {user}: unexpected {st} {r}")
        ck.eq(len(confirmed_a), STOCK_A, "A: confirmations == stock")
        ck.eq(len(set(confirmed_a.values())), STOCK_A, "A: one order per user")
        ck.eq(sorted(confirmed_a), ["A-%010d" % i for i in range(1, STOCK_A + 1)], "A: order ids 1..stock")
        # Once anyone heard "sold out", every new buyer hears it too.
        late = [(u, st) for s, u, q, t0, t1, st, r in answers if s == "A" and sold_out_seen and t0 > sold_out_seen]
        ck.check(late, "some purchases were sent after the first sold_out")
        ck.eq([x for x in late if x[1] != 409], [], "A: every purchase sent after a sold_out is sold_out")
        # Retries: the first answer again.
        retries = 0
        for sale, user, req, t0, t1, st, r in answers:
            if sale != "A-retry":
                continue
            retries += 1
            fst, fr = first[(user, req)]
            if fst == 201:
                ck.eq((st, r.get("result"), r.get("order_id")), (200, "duplicate", fr["order_id"]),
                      f"retry of {user}'s confirmed request")
            else:
                ck.eq((st, r.get("error")), (409, "sold_out"), f"retry of {user}'s sold-out request")
        ck.check(retries >= CONNS * 3, f"retries made: {retries}")

        # Sale B: limit 2 per user, never more.
        per_user, confirmed_b = {}, {}
        for sale, user, req, t0, t1, st, r in answers:
            if sale != "B":
                continue
            if st == 201:
                per_user.setdefault(user, []).append(r["order_id"])
                confirmed_b[r["order_id"]] = user
            else:
                ck.check(st == 409 and r.get("error") in ("sold_out", "limit_reached"), f"B {user}: {st} {r}")
                if r.get("error") == "limit_reached":
                    ck.check(len(per_user.get(user, [])) == 2, f"B {user}: limit_reached before holding 2")
                    ck.eq(r.get("order_id"), per_user[user][0], f"B {user}: limit_reached names the first order")
        ck.eq(len(confirmed_b), STOCK_B, "B: confirmations == stock")
        ck.check(max(len(v) for v in per_user.values()) <= 2, "B: nobody holds more than 2")

        # Every read during the storm added up.
        bad = [x for x in reads if x[2] + x[3] != x[4] or not 0 <= x[2] <= x[4]]
        ck.eq(bad, [], "sold + remaining == stock and 0 <= sold <= stock at every read")
        ck.check(len(reads) >= 10, f"reads during the storm: {len(reads)}")
        inconsistent = [x for x in reads if (x[2] == x[4]) != (x[5] == "sold_out")]
        ck.eq(inconsistent, [], "state is sold_out exactly when sold == stock")
        after = [x for x in reads if x[0] == "A" and sold_out_seen and x[1] > sold_out_seen and x[2] != STOCK_A]
        ck.eq(after, [], "A: reads after a sold_out answer show sold == stock")

        # The listing equals the confirmations.
        for sid, conf in (("A", confirmed_a), ("B", confirmed_b)):
            orders = srv.list_orders(sid, 37, AUTH)
            listed = {o["order_id"]: o["user_id"] for o in orders}
            ck.eq(len(listed), len(orders), f"{sid}: no order listed twice")
            ck.eq(listed, conf, f"{sid}: listing == confirmations")
            st, s = srv.json("GET", f"/api/v1/sales/{sid}")
            ck.eq((s["sold"], s["remaining"], s["state"]), (len(conf), 0, "sold_out"), f"{sid}: final state")
        # A sample of buyers find their order by themselves.
        for oid, user in list(confirmed_a.items())[:10]:
            st, o = srv.json("GET", f"/api/v1/sales/A/orders/{user}")
            ck.eq([x["order_id"] for x in o["orders"]], [oid], f"A: {user}'s orders")
        st, h, data = srv.request("GET", "/metrics")
        ck.check('seckill_purchases_total{sale="A",result="confirmed"} 100' in data.decode(),
                 "metrics count the confirmations")


sklib.run_tests([test_storm])
