"""The order lifecycle through HTTP on the embedded store (and, through
test_lifecycle_redis.py, on the Redis store): reservations with a payment window, signed
payments (HMAC-SHA256 of the body), cancels, refunds and expiry, every transition and
every wrong one; the counts adding up at every read during a flood with cancels and
expiries; kill -9 with pending reservations; the workers answering the crowd while
reservations are pending; quantities; the demo payment switch. On Redis also: Redis
killed between a reservation and its payment."""
import atexit
import hashlib
import hmac
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import sklib  # noqa: E402

TOKEN = "adm"
AUTH = {"Authorization": "Bearer " + TOKEN}
SECRET = b"s3cr3t-key"
SLOW = 3 if sklib.SANITIZED else 1


def now_ms():
    return int(time.time() * 1000)


SECRET_DIR = tempfile.mkdtemp(prefix="seckill-secret-")
atexit.register(shutil.rmtree, SECRET_DIR, True)
SECRET_FILE = os.path.join(SECRET_DIR, "payment.secret")
with open(SECRET_FILE, "wb") as f:
    f.write(SECRET + b"\n")  # an editor's trailing newline: not part of the key


STORE = {"name": "embedded", "redis": None}


def store_args():
    """The store's arguments: none for the embedded store; a Redis emptied for each
    server otherwise (the tests reuse sale ids)."""
    r = STORE["redis"]
    if not r:
        return []
    r.client().cmd("FLUSHALL")
    return ["--store", r.url]


def on_redis():
    return STORE["redis"] is not None


def server(*args, **kw):
    """A server with the payment secret in a file and an admin token."""
    return sklib.Server("--payment-secret-file", SECRET_FILE, *store_args(), *args, admin_token=TOKEN, **kw)


def create(srv, sid, stock, window_ms=0, limit=1, max_quantity=None, **kw):
    body = {"id": sid, "stock": stock, "per_user_limit": limit, "payment_window_ms": window_ms, **kw}
    if max_quantity:
        body["max_quantity"] = max_quantity
    st, r = srv.json("POST", "/api/v1/sales", body, AUTH)
    assert st == 201, (st, r)
    return r


def buy(srv, sid, user, req="", quantity=None):
    body = {"user_id": user, "request_id": req}
    if quantity is not None:
        body["quantity"] = quantity
    return srv.json("POST", f"/api/v1/sales/{sid}/purchase", body)


def sign(body, key=SECRET):
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def pay(srv, order_id, payment_id, key=SECRET, headers=None):
    body = json.dumps({"payment_id": payment_id}).encode()
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["X-Seckill-Signature"] = sign(body, key)
    h.update(headers or {})
    st, _, data = srv.request("POST", f"/api/v1/orders/{order_id}/pay", body, h)
    return st, json.loads(data)


def cancel(srv, order_id, user=None, headers=None):
    body = {"user_id": user} if user else None
    st, _, data = srv.request("POST", f"/api/v1/orders/{order_id}/cancel", json.dumps(body) if body else b"",
                              dict({"Content-Type": "application/json"}, **(headers or {})))
    return st, json.loads(data)


def refund(srv, order_id, headers=AUTH):
    st, _, data = srv.request("POST", f"/api/v1/orders/{order_id}/refund", b"",
                              dict({"Content-Type": "application/json"}, **(headers or {})))
    return st, json.loads(data)


def sale(srv, sid):
    st, s = srv.json("GET", f"/api/v1/sales/{sid}")
    assert st == 200, (st, s)
    assert s["remaining"] + s["held"] + s["sold"] == s["stock"], s
    return s


def order(srv, order_id):
    return srv.json("GET", f"/api/v1/orders/{order_id}")


def metric(srv, name):
    _, _, data = srv.request("GET", "/metrics")
    total = 0.0
    for line in data.decode().splitlines():
        if line.startswith(name):
            total += float(line.split()[-1])
    return total


def test_every_transition(ck):
    with server() as srv:
        create(srv, "life", 10, window_ms=3_600_000, limit=2)
        st, r = buy(srv, "life", "alice", "a1")
        ck.eq((st, r.get("result")), (201, "reserved"), "a purchase with a window reserves")
        ck.check(abs(r["pay_by"] - (now_ms() + 3_600_000)) < 60_000, f"pay_by one window away: {r}")
        a1 = r["order_id"]
        s = sale(srv, "life")
        ck.eq((s["stock"], s["held"], s["sold"], s["remaining"], s["payment_window_ms"]), (10, 1, 0, 9, 3_600_000),
              "the sale holds the unit")
        st, r = buy(srv, "life", "alice", "a1")
        ck.eq((st, r.get("result"), r.get("order_id"), r.get("state")), (200, "duplicate", a1, "reserved"),
              "a replay: the reservation, with its state")

        # Payments: signed, twice, with another id.
        st, r = pay(srv, a1, "pay-1")
        ck.eq((st, r.get("result"), r.get("state"), r.get("payment_id")), (200, "confirmed", "confirmed", "pay-1"),
              "a signed payment confirms")
        ck.check(r.get("paid_at") and r["paid_at"] <= r["pay_by"], f"paid within the window: {r}")
        st, r = pay(srv, a1, "pay-1")
        ck.eq((st, r.get("result")), (200, "duplicate"), "the same payment again: duplicate")
        st, r = pay(srv, a1, "pay-2")
        ck.eq((st, r.get("error"), r.get("state")), (409, "already_paid", "confirmed"), "another payment_id: 409")
        s = sale(srv, "life")
        ck.eq((s["held"], s["sold"]), (0, 1), "paid: held to sold")

        # Cancels: a confirmed order, someone else's, the buyer's own, by the admin.
        st, r = cancel(srv, a1, "alice")
        ck.eq((st, r.get("error"), r.get("state")), (409, "not_reserved", "confirmed"), "cancel a confirmed order")
        st, r = buy(srv, "life", "bob", "b1")
        b1 = r["order_id"]
        st, r = cancel(srv, b1, "alice")
        ck.eq((st, r.get("error")), (403, "forbidden"), "cancel someone else's order")
        st, r = cancel(srv, b1)
        ck.eq(st, 401, "cancel without user_id and without the admin token")
        st, r = refund(srv, b1)
        ck.eq((st, r.get("error"), r.get("state")), (409, "not_confirmed", "reserved"), "refund a reservation")
        st, r = cancel(srv, b1, "bob")
        ck.eq((st, r.get("result"), r.get("state")), (200, "cancelled", "cancelled"), "the buyer cancels")
        ck.check(r.get("closed_at"), f"with closed_at: {r}")
        st, r = cancel(srv, b1, "bob")
        ck.eq((st, r.get("error")), (409, "not_reserved"), "cancel twice")
        st, r = pay(srv, b1, "pay-b")
        ck.eq((st, r.get("error")), (409, "cancelled"), "pay a cancelled order: refund the payment")
        ck.check("refund" in r.get("message", ""), f"saying so: {r}")
        st, r = buy(srv, "life", "carol", "c1")
        c1 = r["order_id"]
        st, r = cancel(srv, c1, headers=AUTH)
        ck.eq((st, r.get("result")), (200, "cancelled"), "the admin cancels")

        # Refund: admin only, then the unit is back.
        st, r = refund(srv, a1, headers={})
        ck.eq(st, 401, "refund without the admin token")
        st, r = refund(srv, a1)
        ck.eq((st, r.get("result"), r.get("state")), (200, "refunded", "refunded"), "refund a confirmed order")
        st, r = refund(srv, a1)
        ck.eq((st, r.get("error")), (409, "not_confirmed"), "refund twice")
        st, r = pay(srv, a1, "pay-1")
        ck.eq((st, r.get("error")), (409, "refunded"), "a payment of a refunded order")
        s = sale(srv, "life")
        ck.eq((s["held"], s["sold"], s["remaining"]), (0, 0, 10), "every unit back")

        # Unknown orders and bad bodies.
        for oid in ("life-0000000099", "nosuch-0000000001", "life-x", "-1", "life-"):
            st, r = order(srv, oid)
            ck.eq((st, r.get("error")), (404, "unknown_order"), f"GET {oid}")
        st, r = pay(srv, "life-0000000099", "p")
        ck.eq(st, 404, "pay an unknown order")
        st, _, data = srv.request("POST", f"/api/v1/orders/{b1}/pay", b'{"payment_id":""}',
                                  {"X-Seckill-Signature": sign(b'{"payment_id":""}')})
        ck.eq((st, json.loads(data).get("field")), (400, "payment_id"), "an empty payment_id")
        st, _, data = srv.request("POST", f"/api/v1/orders/{b1}/cancel", b'{"user":"x"}', {})
        ck.eq((st, json.loads(data).get("field")), (400, "user_id"), "a cancel body with another key")

        # The order and the buyer's list carry state, quantity, pay_by and times.
        st, o = order(srv, a1)
        ck.eq((st, o["state"], o["quantity"], o["user_id"], o["payment_id"]), (200, "refunded", 1, "alice", "pay-1"),
              "GET the order")
        ck.check(o["paid_at"] and o["closed_at"] and o["pay_by"] and o["created_at"], f"with its times: {o}")
        st, lst = srv.json("GET", "/api/v1/sales/life/orders/bob")
        ck.eq([(x["state"], x["quantity"]) for x in lst["orders"]], [("cancelled", 1)], "bob's list")
        ck.check(lst["orders"][0]["pay_by"] and lst["orders"][0]["closed_at"], f"with times: {lst}")
        ck.eq(metric(srv, 'seckill_order_transitions_total{to="confirmed"}'), 1, "metrics: one confirmation")
        ck.eq(metric(srv, 'seckill_order_transitions_total{to="cancelled"}'), 2, "metrics: two cancels")


def test_signatures(ck):
    with server() as srv:
        create(srv, "sig", 5, window_ms=3_600_000, limit=5)
        oids = [buy(srv, "sig", "u", f"r{i}")[1]["order_id"] for i in range(4)]
        st, r = pay(srv, oids[0], "p", key=None)
        ck.eq((st, r.get("error")), (401, "unauthorized"), "no signature")
        st, r = pay(srv, oids[0], "p", key=b"wrong-key")
        ck.eq((st, r.get("error")), (401, "bad_signature"), "signed with another key")
        st, r = pay(srv, oids[0], "p", key=SECRET + b"\n")
        ck.eq(st, 401, "the file's trailing newline is not part of the key")
        body = b'{"payment_id":"p"}'
        for bad in ("sha256=", "sha1=" + "0" * 40, "sha256=" + "g" * 64, sign(body)[:-1], sign(body) + "0",
                    sign(b'{"payment_id":"q"}')):
            st, _, data = srv.request("POST", f"/api/v1/orders/{oids[0]}/pay", body, {"X-Seckill-Signature": bad})
            ck.eq(st, 401, f"signature {bad[:20]}...")
        ck.eq(order(srv, oids[0])[1]["state"], "reserved", "no refused payment touched the order")
        st, _, data = srv.request("POST", f"/api/v1/orders/{oids[0]}/pay", body,
                                  {"X-Seckill-Signature": sign(body).upper().replace("SHA256=", "sha256=")})
        ck.eq(st, 200, "hex digits in either case")
        st, r = pay(srv, oids[1], "p1", key=None, headers=AUTH)
        ck.eq((st, r.get("result")), (200, "confirmed"), "the admin token may pay")
        st, r = pay(srv, oids[2], "p2", key=None, headers={"Authorization": "Bearer nope"})
        ck.eq(st, 401, "a wrong admin token may not")
        st, _, data = srv.request("POST", f"/api/v1/orders/{oids[3]}/demo-pay", b"", {})
        ck.eq(st, 404, "no demo payments without --demo-payments")
    # The key from the environment; without any key only the admin token pays.
    with sklib.Server(admin_token=TOKEN, env={"SECKILL_PAYMENT_SECRET": "from-env"}) as srv:
        create(srv, "env", 5, window_ms=3_600_000)
        oid = buy(srv, "env", "u")[1]["order_id"]
        ck.eq(pay(srv, oid, "p", key=b"from-env")[0], 200, "SECKILL_PAYMENT_SECRET signs")
    with sklib.Server(admin_token=TOKEN) as srv:
        create(srv, "nokey", 5, window_ms=3_600_000, limit=2)
        oid = buy(srv, "nokey", "u", "1")[1]["order_id"]
        st, r = pay(srv, oid, "p")
        ck.eq(st, 401, "a signed payment without a configured key")
        ck.check("payment-secret-file" in r.get("message", ""), f"saying why: {r}")
        ck.eq(pay(srv, oid, "p", key=None, headers=AUTH)[0], 200, "the admin token pays")


def test_expiry_and_late_payment(ck):
    # The exact edge (a payment received at pay_by confirms, one ms later it does not)
    # is tested with the ledger's clock in tests/unit/backend/test_embedded.c; here the
    # same through HTTP with the wall clock, with room for a busy machine.
    with server() as srv:
        window = 4000 * SLOW
        create(srv, "exp", 3, window_ms=window, limit=3)
        orders = [buy(srv, "exp", f"u{i}", "r")[1] for i in range(3)]
        ck.eq([o["result"] for o in orders], ["reserved"] * 3, "three reservations")
        st, r = buy(srv, "exp", "late", "r")
        ck.eq((st, r.get("error")), (409, "sold_out"), "sold out while they are pending")
        ck.eq(sale(srv, "exp")["state"], "sold_out", "the sale's state")
        st, r = pay(srv, orders[0]["order_id"], "in-time")
        ck.eq((st, r.get("result")), (200, "confirmed"), "paid inside the window")
        ck.check(r.get("paid_at", 1 << 62) <= r.get("pay_by", 0), f"at or before pay_by: {r}")
        st, r = cancel(srv, orders[1]["order_id"], "u1")
        ck.eq(st, 200, "one cancelled")
        s = sale(srv, "exp")
        ck.eq((s["held"], s["sold"], s["remaining"]), (1, 1, 1), "one held, one sold, one back")
        # After pay_by: the last one expires by itself and its payment is refused.
        while now_ms() <= orders[2]["pay_by"] + 50:
            time.sleep(0.02)
        deadline = time.time() + 10
        while sale(srv, "exp")["held"] and time.time() < deadline:
            time.sleep(0.02)
        s = sale(srv, "exp")
        ck.eq((s["held"], s["sold"], s["remaining"], s["state"]), (0, 1, 2, "live"), "expired by the ledger's timer")
        st, r = pay(srv, orders[2]["order_id"], "too-late")
        ck.eq((st, r.get("error"), r.get("state")), (409, "expired", "expired"), "a late payment: 409 expired")
        ck.check("refund" in r.get("message", ""), f"telling to refund: {r}")
        st, o = order(srv, orders[2]["order_id"])
        ck.eq((o["state"], o["payment_id"], o["paid_at"]), ("expired", None, None), "never confirmed")
        ck.check(o["closed_at"] > o["pay_by"], f"expired after pay_by: {o}")
        st, r = buy(srv, "exp", "u2", "r")
        ck.eq((st, r.get("result"), r.get("state")), (200, "duplicate", "expired"), "u2's replay: the expired order")
        st, r = buy(srv, "exp", "u2", "r2")
        ck.eq((st, r.get("result")), (201, "reserved"), "returned units sell again (the limit counts active units)")
        ck.eq(metric(srv, 'seckill_order_transitions_total{to="expired"}'), 1, "metrics: one expiry")


def test_quantities(ck):
    with server() as srv:
        st, r = srv.json("POST", "/api/v1/sales", {"id": "q", "stock": 5, "per_user_limit": 3, "max_quantity": 4},
                         AUTH)
        ck.eq((st, r.get("field")), (400, "max_quantity"), "max_quantity above per_user_limit")
        ck.check("per_user_limit (3)" in r.get("message", ""), f"naming the rule: {r}")
        for bad in (0, -1, "2", 1.5):
            st, r = srv.json("POST", "/api/v1/sales", {"id": "q", "stock": 5, "max_quantity": bad}, AUTH)
            ck.eq((st, r.get("field")), (400, "max_quantity"), f"max_quantity {bad!r}")
        for bad in (-1, 86_400_001, "60000", 1.5):
            st, r = srv.json("POST", "/api/v1/sales", {"id": "q", "stock": 5, "payment_window_ms": bad}, AUTH)
            ck.eq((st, r.get("field")), (400, "payment_window_ms"), f"payment_window_ms {bad!r}")
        create(srv, "q", 5, window_ms=3_600_000, limit=3, max_quantity=2)
        st, r = buy(srv, "q", "u", "1", quantity=3)
        ck.eq((st, r.get("field")), (400, "quantity"), "above max_quantity")
        ck.check("max_quantity (2)" in r.get("message", ""), f"naming the sale's maximum: {r}")
        for bad in (0, -2, "1", 2.5, 10_000_000):
            st, r = buy(srv, "q", "u", "1", quantity=bad)
            ck.eq((st, r.get("field")), (400, "quantity"), f"quantity {bad!r}")
        st, r = buy(srv, "q", "u", "1", quantity=2)
        ck.eq((st, r.get("result"), r.get("quantity"), r.get("remaining")), (201, "reserved", 2, 3), "two units")
        st, r2 = buy(srv, "q", "u", "2", quantity=2)
        ck.eq((st, r2.get("error"), r2.get("held")), (409, "limit_reached", 2), "the limit counts units: 2 + 2 > 3")
        st, r2 = buy(srv, "q", "v", "1", quantity=2)
        st, r3 = buy(srv, "q", "w", "1", quantity=2)
        ck.eq((st, r3.get("error"), r3.get("remaining")), (409, "sold_out", 1), "all or nothing: 1 left of 2")
        st, r3 = srv.request("POST", "/api/v1/sales/q/purchase", b"user_id=w&request_id=2&quantity=1",
                             {"Content-Type": "application/x-www-form-urlencoded"})[0:2]
        ck.eq(st, 201, "the last unit, as a form")
        st, o = order(srv, r["order_id"])
        ck.eq(o["quantity"], 2, "the order carries its quantity")
        cancel(srv, r["order_id"], "u")
        s = sale(srv, "q")
        ck.eq((s["held"], s["remaining"], s["max_quantity"]), (3, 2, 2), "two units back")


def test_counts_during_a_flood(ck):
    # Buyers, cancellers and expiries at once; every read of the sale adds up (I7).
    with server(threads=2) as srv:
        window = 300 * SLOW
        create(srv, "flood", 40, window_ms=window, limit=1)
        bad, reads, stop = [], [0], threading.Event()
        got = {"reserved": 0, "cancelled": 0, "confirmed": 0}
        lock = threading.Lock()

        def reader():
            while not stop.is_set() and reads[0] < 20000:
                st, s = srv.json("GET", "/api/v1/sales/flood")
                reads[0] += 1
                if st != 200 or s["remaining"] + s["held"] + s["sold"] != s["stock"] or min(
                        s["remaining"], s["held"], s["sold"]) < 0:
                    bad.append(s)

        def buyer(k):
            for i in range(150):
                if stop.is_set():
                    return
                st, r = buy(srv, "flood", f"b{k}-{i}", "r")
                if st != 201:
                    continue
                with lock:
                    got["reserved"] += 1
                if i % 3 == 0:
                    if cancel(srv, r["order_id"], f"b{k}-{i}")[0] == 200:
                        with lock:
                            got["cancelled"] += 1
                elif i % 3 == 1:
                    if pay(srv, r["order_id"], f"p{k}-{i}")[0] == 200:
                        with lock:
                            got["confirmed"] += 1
                # the rest walk away and expire

        threads = [threading.Thread(target=reader) for _ in range(2)] + [
            threading.Thread(target=buyer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads[2:]:
            t.join(120)
        time.sleep(window / 1000 + 0.3)
        stop.set()
        for t in threads[:2]:
            t.join(30)
        ck.eq(bad, [], f"every one of {reads[0]} reads adds up")
        deadline = time.time() + 10
        while sale(srv, "flood")["held"] and time.time() < deadline:
            time.sleep(0.05)
        s = sale(srv, "flood")
        ck.eq(s["held"], 0, "every reservation ended")
        ck.eq(s["sold"], got["confirmed"], "sold == the payments that confirmed")
        ck.check(got["reserved"] > 40, f"returned units sold again: {got}")
        # The store agrees: every order in one final state, counted once.
        if on_redis():
            states = {}
            for o in srv.list_orders("flood", headers=AUTH):
                states[o["state"]] = states.get(o["state"], 0) + 1
        else:
            srv.stop()
            db = sqlite3.connect(os.path.join(srv.data, "seckill.db"))
            states = dict(db.execute("SELECT state, count(*) FROM orders WHERE sale_id = 'flood' GROUP BY state"))
            db.close()
        ck.eq(states.get("reserved", 0), 0, "no reservation left in the journal")
        ck.eq(states.get("confirmed", 0), got["confirmed"], "confirmed in the journal")
        ck.eq(states.get("cancelled", 0), got["cancelled"], "cancelled in the journal")
        ck.eq(sum(states.values()), got["reserved"], "every reservation in the journal")


def test_kill9_with_pending_reservations(ck):
    with server() as srv:
        create(srv, "k9", 10, window_ms=600 * SLOW, limit=1)
        create(srv, "k9long", 10, window_ms=3_600_000, limit=1)
        short = [buy(srv, "k9", f"s{i}", "r")[1] for i in range(3)]
        long = [buy(srv, "k9long", f"l{i}", "r")[1] for i in range(3)]
        pay(srv, short[0]["order_id"], "paid-before")
        srv.kill9()
        time.sleep(0.8 * SLOW)  # the short deadlines pass while the process is down
        srv.start()
        deadline = time.time() + 10
        while sale(srv, "k9")["held"] and time.time() < deadline:
            time.sleep(0.02)
        s = sale(srv, "k9")
        ck.eq((s["held"], s["sold"], s["remaining"]), (0, 1, 9), "deadlines passed while down expired at start")
        ck.eq([order(srv, o["order_id"])[1]["state"] for o in short], ["confirmed", "expired", "expired"],
              "the paid one stands")
        s = sale(srv, "k9long")
        ck.eq((s["held"], s["sold"]), (3, 0), "long deadlines kept")
        st, o = order(srv, long[1]["order_id"])
        ck.eq((o["state"], o["pay_by"]), ("reserved", long[1]["pay_by"]), "with the same pay_by")
        st, r = pay(srv, long[1]["order_id"], "after-restart")
        ck.eq((st, r.get("result")), (200, "confirmed"), "and payable after the restart")
        st, r = buy(srv, "k9long", "l2", "r")
        ck.eq((st, r.get("result"), r.get("order_id")), (200, "duplicate", long[2]["order_id"]), "replay after it")


def test_fast_path_while_pending(ck):
    # Sold out with every unit reserved: the crowd is answered by the workers (the
    # ledger decides none of them), a holder's replay goes to the ledger, and a unit
    # that comes back lets the next buyer through at once.
    with server(threads=2) as srv:
        create(srv, "crowd", 3, window_ms=3_600_000)
        held = [buy(srv, "crowd", f"h{i}", "r")[1] for i in range(3)]
        ck.eq(sale(srv, "crowd")["state"], "sold_out", "sold out, three pending")
        before = metric(srv, "seckill_ledger_purchases_total")
        answers = set()
        for i in range(300):
            st, r = buy(srv, "crowd", f"crowd{i}", "x")
            answers.add((st, r.get("error")))
        ck.eq(answers, {(409, "sold_out")}, "the crowd: sold_out")
        # (Redis: units may come back on any node while reservations are pending, so a
        # node answers the crowd itself only once the sale is done; the script answers.)
        if not on_redis():
            ck.eq(metric(srv, "seckill_ledger_purchases_total"), before, "none of them reached the ledger")
        st, r = buy(srv, "crowd", "h1", "r")
        ck.eq((st, r.get("result")), (200, "duplicate"), "a holder's replay")
        if not on_redis():
            ck.eq(metric(srv, "seckill_ledger_purchases_total"), before + 1, "went to the ledger")
        cancel(srv, held[0]["order_id"], "h0")
        ck.eq(sale(srv, "crowd")["state"], "live", "a unit came back")
        st, r = buy(srv, "crowd", "crowd7", "x")
        ck.eq((st, r.get("result")), (201, "reserved"), "the next buyer gets it")


def test_sse_and_store_view(ck):
    with server() as srv:
        create(srv, "ev", 4, window_ms=3_600_000)
        oid = buy(srv, "ev", "u", "r")[1]["order_id"]
        raw = srv.raw(b"GET /api/v1/sales/ev/events HTTP/1.1\r\nHost: x\r\n\r\n", timeout=1)
        line = [x for x in raw.decode().splitlines() if x.startswith("data: ")][0]
        ev = json.loads(line[6:])
        ck.eq((ev["stock"], ev["held"], ev["sold"], ev["remaining"]), (4, 1, 0, 3), "SSE carries held")
        pay(srv, oid, "p")
        if on_redis():
            st, o = order(srv, oid)
            ck.eq((o["state"], o["quantity"], o["payment_id"]), ("confirmed", 1, "p"), "the order in Redis")
            return
        srv.stop()
        db = sqlite3.connect(os.path.join(srv.data, "seckill.db"))
        row = db.execute("SELECT state, quantity, payment_id, pay_by IS NOT NULL, paid_at IS NOT NULL FROM orders "
                         "WHERE order_id = ?", (oid,)).fetchone()
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.close()
        ck.eq(row, ("confirmed", 1, "p", 1, 1), "the orders view of the journal")
        ck.eq(version, 4, "journal version 4")


def test_demo_payments(ck):
    with sklib.Server("--demo-payments", *store_args(), admin_token=TOKEN) as srv:
        ck.check("demo-pay" in srv.output(), "a warning at start")
        create(srv, "demo", 2, window_ms=3_600_000)
        oid = buy(srv, "demo", "u", "r")[1]["order_id"]
        st, _, data = srv.request("POST", f"/api/v1/orders/{oid}/demo-pay", b"", {})
        r = json.loads(data)
        ck.eq((st, r.get("result"), r.get("payment_id")), (200, "confirmed", "demo-" + oid), "the demo Pay button")
        st, _, data = srv.request("POST", f"/api/v1/orders/{oid}/demo-pay", b"", {})
        ck.eq((st, json.loads(data).get("result")), (200, "duplicate"), "a second click")
        st, _, data = srv.request("POST", "/api/v1/orders/demo-0000000009/demo-pay", b"", {})
        ck.eq(st, 404, "an unknown order")


def test_guessed_order_id_pipelined(ck):
    # Order ids are predictable (<sale>-<seq>): a client may pipeline a purchase and a
    # cancel of the order it is about to get. On the embedded store both usually land in
    # one ledger batch, and a transition of an order of its own batch is answered 404
    # (the journal's replay writes a batch's transitions before its new orders: the
    # store would not open again otherwise); one that lands a batch later cancels. Either
    # way the node starts again after kill -9, with the states it answered.
    with server() as srv:
        create(srv, "gs", 40, window_ms=3_600_000)
        answers = []
        for i in range(20):
            buy_body = json.dumps({"user_id": f"g{i}", "request_id": "r"}).encode()
            cancel_body = json.dumps({"user_id": f"g{i}"}).encode()
            oid = "gs-%010d" % (i + 1)
            req = (b"POST /api/v1/sales/gs/purchase HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(buy_body), buy_body) +
                   b"POST /api/v1/orders/%s/cancel HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (oid.encode(), len(cancel_body),
                                                                             cancel_body))
            out = srv.raw(req, timeout=10).decode()
            answers.append((oid, [int(x) for x in re.findall(r"HTTP/1\.1 (\d{3}) ", out)]))
        ck.check(all(st[0] == 201 and st[1] in (200, 404) for _, st in answers),
                 f"each purchase 201, each cancel 200 or 404: {answers}")
        if not on_redis():
            print(f"  {sum(1 for _, st in answers if st[1] == 404)} of 20 cancels met their order's own batch")
        want = {oid: "cancelled" if st[1] == 200 else "reserved" for oid, st in answers}
        srv.kill9()
        srv.start()
        got = {oid: order(srv, oid)[1].get("state") for oid in want}
        ck.eq(got, want, "after kill -9 the node starts, with the states it answered")
        s = sale(srv, "gs")
        ck.eq(s["held"], sum(1 for v in want.values() if v == "reserved"), "and the counts")


def sale_metric(srv, sid, state):
    return metric(srv, f'seckill_sale_orders_total{{sale="{sid}",state="{state}"}}')


def test_config_and_sale_metrics(ck):
    # GET /api/v1/config tells a page what it may show; /metrics counts per sale the
    # orders that entered each state, from the sale's whole history (after a restart too).
    with sklib.Server(admin_token=TOKEN) as srv:
        st, c = srv.json("GET", "/api/v1/config")
        ck.eq((st, c.get("lifecycle"), c.get("demo_payments"), c.get("demo_sale")), (200, True, False, None),
              "config without demo")
        ck.check(abs(c.get("server_time", 0) - now_ms()) < 60000, "config carries the server's time")
    with server("--demo", "--demo-payments") as srv:
        st, c = srv.json("GET", "/api/v1/config")
        ck.eq((st, c["demo_payments"]), (200, True), "config: demo payments")
        ck.check(str(c["demo_sale"]).startswith("demo-"), f"config names the demo sale: {c}")
        demo = sale(srv, c["demo_sale"])
        ck.eq((demo["state"], demo["payment_window_ms"], demo["stock"]), ("scheduled", 120000, 100),
              "the demo sale reserves for 2 minutes")
        create(srv, "m", 5, window_ms=600 * SLOW, limit=1)
        o = [buy(srv, "m", f"u{i}", "r")[1]["order_id"] for i in range(4)]
        pay(srv, o[0], "p0")
        pay(srv, o[1], "p1")
        cancel(srv, o[2], "u2")
        refund(srv, o[1])
        deadline = time.time() + 10
        while sale(srv, "m")["held"] and time.time() < deadline:  # o[3] expires
            time.sleep(0.02)
        want = {"reserved": 4, "confirmed": 2, "cancelled": 1, "expired": 1, "refunded": 1}
        got = {k: sale_metric(srv, "m", k) for k in want}
        ck.eq(got, want, "orders by the state they entered")
        srv.kill9()
        srv.start()
        got = {k: sale_metric(srv, "m", k) for k in want}
        ck.eq(got, want, "the same after a restart (replayed from the journal)")
        create(srv, "final", 3)
        buy(srv, "final", "a", "r")
        ck.eq((sale_metric(srv, "final", "confirmed"), sale_metric(srv, "final", "reserved")), (1, 0),
              "a final purchase enters confirmed")
        # The demo sale is demo-<unix seconds>: a restart that finds that id taken (within
        # the same second, as after a quick crash) takes the next free one. The ids of the
        # next seconds are taken here, so the restart meets them whatever its timing.
        t = int(time.time())
        taken = {f"demo-{t + k}" for k in range(5)}
        for sid in taken:
            if srv.json("GET", f"/api/v1/sales/{sid}")[0] == 404:
                create(srv, sid, 1)
        srv.kill9()
        srv.start()
        st, c = srv.json("GET", "/api/v1/config")
        ck.check(st == 200 and str(c["demo_sale"]).startswith("demo-") and c["demo_sale"] not in taken,
                 f"a restart takes a free demo id: {c}")
        ck.eq(sale(srv, c["demo_sale"])["stock"], 100, "the new demo sale")



def test_redis_killed_between_reservation_and_payment(ck):
    # Redis dies (kill -9) after a reservation was answered and comes back from its AOF:
    # the reservation is there with its pay_by, a payment in time confirms it, and a
    # payment while Redis is down is answered 503 and changes nothing.
    r = STORE["redis"]
    with server() as srv:
        create(srv, "rk", 5, window_ms=3_600_000, limit=2)
        a = buy(srv, "rk", "a", "r1")[1]
        b = buy(srv, "rk", "b", "r1")[1]
        r.kill9()
        st, _ = pay(srv, a["order_id"], "pay-a")
        ck.eq(st, 503, "a payment while Redis is down: 503")
        r.start()
        deadline, st = time.time() + 20, 0
        while time.time() < deadline:
            st, res = pay(srv, a["order_id"], "pay-a")
            if st != 503:
                break
            time.sleep(0.2)
        ck.eq((st, res.get("result")), (200, "confirmed"), "paid after Redis came back")
        st, o = order(srv, b["order_id"])
        ck.eq((o["state"], o["pay_by"]), ("reserved", b["pay_by"]), "the other reservation kept its pay_by")
        s = sale(srv, "rk")
        ck.eq((s["held"], s["sold"], s["remaining"]), (1, 1, 3), "counts after the restart")


def main(store="embedded"):
    tests = [test_every_transition, test_signatures, test_expiry_and_late_payment, test_quantities,
             test_counts_during_a_flood, test_kill9_with_pending_reservations, test_fast_path_while_pending,
             test_sse_and_store_view, test_demo_payments, test_guessed_order_id_pipelined]
    if store == "redis":
        from skcluster import RedisServer
        STORE["name"], STORE["redis"] = store, RedisServer()
        atexit.register(STORE["redis"].close)
        tests.append(test_redis_killed_between_reservation_and_payment)
    else:
        # Counted from the embedded journal's whole history, replayed after a restart.
        tests.append(test_config_and_sale_metrics)
    sklib.run_tests(tests)


if __name__ == "__main__":
    main()
