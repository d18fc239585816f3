"""The operator's controls through HTTP on the embedded store (and, through
test_controls_redis.py, on the Redis store, where buy.lua decides them): pause, resume, close, stock
and PATCH in every state of a sale (scheduled, live, sold out, paused, ended), purchases
while paused (the worker's answer and the ledger's) with payments and cancels of earlier
reservations going on, the trail (GET .../log), idempotent replays, kill -9 after a
control, controls during a flood checked against the trail, quantities at and over every
limit, and field errors that name the field, the rule (a code) and the value's problem."""
import json
import os
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import sklib  # noqa: E402

TOKEN = "adm"
AUTH = {"Authorization": "Bearer " + TOKEN}
HOUR = 3_600_000


def now_ms():
    return int(time.time() * 1000)


STORE = {"redis": None}


def store_args():
    """None for the embedded store; a Redis emptied for each server otherwise (the tests
    reuse sale ids)."""
    r = STORE["redis"]
    if not r:
        return []
    r.client().cmd("FLUSHALL")
    return ["--store", r.url]


def server(*args, **kw):
    return sklib.Server(*store_args(), *args, admin_token=TOKEN, **kw)


def create(srv, sid, stock, **kw):
    st, r = srv.json("POST", "/api/v1/sales", dict({"id": sid, "stock": stock}, **kw), AUTH)
    assert st == 201, (st, r)
    return r


def buy(srv, sid, user, req="", quantity=None):
    body = {"user_id": user, "request_id": req}
    if quantity is not None:
        body["quantity"] = quantity
    return srv.json("POST", f"/api/v1/sales/{sid}/purchase", body)


_req = [0]


def rid():
    _req[0] += 1
    return f"c-{_req[0]}"


def ctl(srv, sid, action, body=None, req=None, headers=AUTH):
    """A control: action is pause, resume, close, stock (body {"add":N}) or patch."""
    b = dict(body or {})
    b["request_id"] = req or rid()
    if action == "patch":
        return srv.json("PATCH", f"/api/v1/sales/{sid}", b, headers)
    return srv.json("POST", f"/api/v1/sales/{sid}/{action}", b, headers)


def sale(srv, sid):
    st, s = srv.json("GET", f"/api/v1/sales/{sid}")
    assert st == 200, (st, s)
    assert s["remaining"] + s["held"] + s["sold"] == s["stock"], s
    return s


def trail(srv, sid):
    st, r = srv.json("GET", f"/api/v1/sales/{sid}/log", headers=AUTH)
    assert st == 200, (st, r)
    return r["entries"]


def metric(srv, name):
    _, _, data = srv.request("GET", "/metrics")
    total = 0.0
    for line in data.decode().splitlines():
        if line.startswith(name):
            total += float(line.split()[-1])
    return total


# What each control answers in each state: the status, and the error code of a 409.
EXPECT = {
    #                 pause               resume               close      add        remove     name       ends_at    starts_at
    "scheduled": [(200, None), (409, "not_paused"), (200, None), (200, None), (200, None), (200, None), (200, None),
                  (200, None)],
    "live": [(200, None), (409, "not_paused"), (200, None), (200, None), (200, None), (200, None), (200, None),
             (409, "started")],
    "sold_out": [(200, None), (409, "not_paused"), (200, None), (200, None), (409, "insufficient"), (200, None),
                 (200, None), (409, "started")],
    "paused": [(409, "already_paused"), (200, None), (200, None), (200, None), (200, None), (200, None), (200, None),
               (409, "started")],
    "closed": [(409, "closed")] * 8,
    "ended": [(409, "ended")] * 8,
}
ACTIONS = ["pause", "resume", "close", "add", "remove", "name", "ends_at", "starts_at"]


def make_state(srv, sid, state):
    t = now_ms()
    if state == "scheduled":
        create(srv, sid, 5, starts_at=t + HOUR, ends_at=t + 2 * HOUR)
    elif state == "ended":
        create(srv, sid, 5, starts_at=t - 2 * HOUR, ends_at=t - HOUR)
    else:
        create(srv, sid, 5, starts_at=t - 1000, ends_at=t + HOUR)
    if state == "sold_out":
        assert buy(srv, sid, "whale", "w", None)[0] == 201
        for i in range(4):
            assert buy(srv, sid, f"b{i}", "r")[0] == 201
    elif state == "paused":
        assert ctl(srv, sid, "pause")[0] == 200
    elif state == "closed":
        assert ctl(srv, sid, "close")[0] == 200
    assert sale(srv, sid)["state"] == ("ended" if state == "closed" else state), sale(srv, sid)


def apply(srv, sid, action):
    t = now_ms()
    if action in ("pause", "resume", "close"):
        return ctl(srv, sid, action)
    if action == "add":
        return ctl(srv, sid, "stock", {"add": 2})
    if action == "remove":
        return ctl(srv, sid, "stock", {"remove": 1})
    if action == "name":
        return ctl(srv, sid, "patch", {"name": "Renamed"})
    if action == "ends_at":
        return ctl(srv, sid, "patch", {"ends_at": t + 3 * HOUR})
    return ctl(srv, sid, "patch", {"starts_at": t + 30 * 60_000})


def test_every_control_in_every_state(ck):
    with server() as srv:
        n = 0
        for state, want in EXPECT.items():
            for action, (status, code) in zip(ACTIONS, want):
                n += 1
                sid = f"s{n}"
                make_state(srv, sid, state)
                before = sale(srv, sid)
                entries = len(trail(srv, sid))
                st, r = apply(srv, sid, action)
                ck.eq((st, r.get("error")), (status, code), f"{action} of a {state} sale: {r}")
                after = sale(srv, sid)
                if st == 200:
                    ck.eq(r["result"], "applied", f"{action} of a {state} sale: applied")
                    ck.eq(len(trail(srv, sid)), entries + 1, f"{action} of a {state} sale: in the trail")
                    e = r["entry"]
                    ck.eq((e["action"], e["actor"]), ({"add": "add_stock", "remove": "remove_stock",
                                                        "name": "patch", "ends_at": "patch",
                                                        "starts_at": "patch"}.get(action, action), "admin"),
                          f"{action} of a {state} sale: the entry")
                    ck.eq(e["before"]["stock"], before["stock"], f"{action}/{state}: before.stock")
                    ck.eq(e["after"]["stock"], after["stock"], f"{action}/{state}: after.stock")
                    ck.eq(r["sale"]["state"], after["state"], f"{action}/{state}: the sale in the answer")
                else:
                    ck.eq(len(trail(srv, sid)), entries, f"{action} of a {state} sale: not in the trail")
                    ck.eq({k: after[k] for k in ("stock", "state", "name", "ends_at", "starts_at")},
                          {k: before[k] for k in ("stock", "state", "name", "ends_at", "starts_at")},
                          f"{action} of a {state} sale: nothing changed")
                    ck.check(r.get("message") and r.get("sale"), f"{action}/{state}: a message and the sale: {r}")
                expect_state = {("pause", 200): "paused" if state != "scheduled" else "scheduled",
                                ("resume", 200): "sold_out" if state == "sold_out" else "live",
                                ("close", 200): "ended"}.get((action, st))
                if expect_state:
                    ck.eq(after["state"], expect_state, f"{action} of a {state} sale: state after")
        st, r = ctl(srv, "s1", "stock", {"remove": 100})
        ck.eq((st, r.get("error"), r.get("removable")), (409, "insufficient", 5), "remove more than is free")
        # A sold-out sale with more stock is live again.
        make_state(srv, "so", "sold_out")
        st, r = ctl(srv, "so", "stock", {"add": 3})
        ck.eq((st, r["sale"]["state"], r["sale"]["remaining"]), (200, "live", 3), "add stock to a sold-out sale")
        ck.eq((r["entry"]["before"]["state"], r["entry"]["after"]["state"]), ("sold_out", "live"),
              "the trail says it was sold out")


def test_paused_and_closed_purchases(ck):
    with server() as srv:
        create(srv, "p", 10, payment_window_ms=HOUR, per_user_limit=4, max_quantity=2)
        st, r = buy(srv, "p", "alice", "a1", 2)
        ck.eq((st, r.get("result")), (201, "reserved"), "a reservation before the pause")
        a1 = r["order_id"]
        st, r = buy(srv, "p", "bob", "b1")
        b1 = r["order_id"]
        st, r = ctl(srv, "p", "pause")
        ck.eq((st, r["sale"]["state"], r["entry"]["before"]["orders"]), (200, "paused", 2), "paused after order 2")
        # The workers answer non-holders once the node holds the sale's holders: the
        # Redis store loads them after the pause, in the background, and until they are
        # in the ledger answers (the same 409). Wait for the first purchase the ledger
        # does not see (bounded), then none of twenty may reach it.
        ledger_before = metric(srv, 'seckill_ledger_purchases_total{result="paused"}')
        deadline = time.time() + 10
        for i in range(1000):
            st, r = buy(srv, "p", f"early{i}", "r")
            ck.eq((st, r.get("error")), (409, "paused"), f"a buyer right after the pause ({i})")
            now = metric(srv, 'seckill_ledger_purchases_total{result="paused"}')
            if now == ledger_before or time.time() > deadline:
                break
            ledger_before = now
            time.sleep(0.02)
        for i in range(20):
            st, r = buy(srv, "p", f"crowd{i}", "r")
            ck.eq((st, r.get("error")), (409, "paused"), f"a buyer while paused ({i})")
        ck.eq(metric(srv, 'seckill_ledger_purchases_total{result="paused"}'), ledger_before,
              "non-holders answered by the workers")
        st, r = buy(srv, "p", "alice", "a2")
        ck.eq((st, r.get("error")), (409, "paused"), "a holder's new purchase while paused")
        ck.eq(metric(srv, 'seckill_ledger_purchases_total{result="paused"}'), ledger_before + 1,
              "decided by the ledger")
        st, r = buy(srv, "p", "alice", "a1", 2)
        ck.eq((st, r.get("result"), r.get("order_id")), (200, "duplicate", a1), "a holder's replay while paused")
        # Earlier reservations are paid and cancelled as before.
        st, r = srv.json("POST", f"/api/v1/orders/{a1}/pay", {"payment_id": "pay-a1"}, AUTH)
        ck.eq((st, r.get("result")), (200, "confirmed"), "pay while paused")
        st, r = srv.json("POST", f"/api/v1/orders/{b1}/cancel", {"user_id": "bob"})
        ck.eq((st, r.get("result")), (200, "cancelled"), "cancel while paused")
        s = sale(srv, "p")
        ck.eq((s["sold"], s["held"], s["remaining"]), (2, 0, 8), "the counts")
        st, r = ctl(srv, "p", "resume")
        ck.eq((st, r["sale"]["state"]), (200, "live"), "resumed")
        st, r = buy(srv, "p", "carol", "c1")
        ck.eq((st, r.get("result")), (201, "reserved"), "buying again after the resume")
        c1 = r["order_id"]
        # Closed: 410 for everyone, payments of earlier reservations still confirm.
        st, r = ctl(srv, "p", "close")
        ck.eq((st, r["sale"]["state"], r["sale"]["closed"]), (200, "ended", True), "closed")
        for u in ("dave", "carol"):
            st, r = buy(srv, "p", u, "new")
            ck.eq((st, r.get("error")), (410, "ended"), f"{u} after the close")
        st, r = srv.json("POST", f"/api/v1/orders/{c1}/pay", {"payment_id": "pay-c1"}, AUTH)
        ck.eq((st, r.get("result")), (200, "confirmed"), "pay after the close")
        st, r = ctl(srv, "p", "resume")
        ck.eq((st, r.get("error")), (409, "closed"), "nothing reopens a closed sale")


def test_trail_and_idempotency(ck):
    with server() as srv:
        create(srv, "t", 10, per_user_limit=3, max_quantity=3)
        st, r1 = ctl(srv, "t", "stock", {"add": 5}, req="add-1")
        ck.eq((st, r1["result"], r1["sale"]["stock"]), (200, "applied", 15), "add 5")
        st, r2 = ctl(srv, "t", "stock", {"add": 5}, req="add-1")
        ck.eq((st, r2["result"], r2["sale"]["stock"]), (200, "duplicate", 15), "the same request again: no change")
        ck.eq(r2["entry"], r1["entry"], "the first answer's entry")
        st, r = ctl(srv, "t", "stock", {"add": 6}, req="add-1")
        ck.eq((st, r.get("error"), r.get("entry", {}).get("seq")), (409, "request_id_reused", 1),
              "the same request_id for another control")
        st, r = ctl(srv, "t", "pause", req="add-1")
        ck.eq((st, r.get("error")), (409, "request_id_reused"), "...or another action")
        buy(srv, "t", "u1", "r", 3)
        ck.eq(ctl(srv, "t", "patch", {"name": "Big sale", "per_user_limit": 5}, req="p-1")[0], 200, "patch")
        st, r = ctl(srv, "t", "patch", {"name": "Big sale", "per_user_limit": 5}, req="p-1")
        ck.eq((st, r["result"]), (200, "duplicate"), "a patch replayed")
        ck.eq(ctl(srv, "t", "stock", {"remove": 2}, req="rm-1")[0], 200, "remove 2")
        entries = trail(srv, "t")
        ck.eq([(e["seq"], e["action"], e["request_id"]) for e in entries],
              [(1, "add_stock", "add-1"), (2, "patch", "p-1"), (3, "remove_stock", "rm-1")], "the trail")
        e = entries[1]
        ck.eq(e["params"], {"name": "Big sale", "per_user_limit": 5}, "the patch's params")
        ck.eq((e["before"]["name"], e["after"]["name"], e["before"]["per_user_limit"], e["after"]["per_user_limit"]),
              ("t", "Big sale", 3, 5), "before and after")
        ck.eq((e["before"]["sold"], e["before"]["orders"]), (3, 1), "the counts when it applied")
        ck.eq((entries[2]["before"]["stock"], entries[2]["after"]["stock"], entries[2]["after"]["remaining"]),
              (15, 13, 10), "remove: stock and remaining")
        ck.check(all(abs(x["at"] - now_ms()) < 60_000 for x in entries), "times on the server's clock")
        # Who may.
        for method, path in (("GET", "/api/v1/sales/t/log"), ("POST", "/api/v1/sales/t/pause"),
                             ("POST", "/api/v1/sales/t/stock"), ("PATCH", "/api/v1/sales/t")):
            st, _, _ = srv.request(method, path, json.dumps({"request_id": "x"}), {"Content-Type": "application/json"})
            ck.eq(st, 401, f"{method} {path} without the admin token")
        st, r = ctl(srv, "nosuch", "pause")
        ck.eq((st, r.get("error")), (404, "unknown_sale"), "an unknown sale")
        st, r = srv.json("GET", "/api/v1/sales/nosuch/log", headers=AUTH)
        ck.eq(st, 404, "the log of an unknown sale")
        st, _, _ = srv.request("DELETE", "/api/v1/sales/t")
        ck.eq(st, 405, "DELETE a sale")


def test_field_errors(ck):
    t = now_ms()
    with server() as srv:
        good = {"id": "ok", "stock": 5, "starts_at": t, "ends_at": t + HOUR}
        cases = [
            ({"id": None}, "id", "required", "id is required"),
            ({"id": "a b"}, "id", "bad_format", "a space at position 2"),
            ({"id": "x" * 65}, "id", "too_long", "it has 65 characters"),
            ({"id": 7}, "id", "not_string", "must be a string"),
            ({"stock": None}, "stock", "required", "stock is required"),
            ({"stock": 1.5}, "stock", "not_integer", "not 1.5"),
            ({"stock": -5}, "stock", "out_of_range", "-5 is out of range"),
            ({"stock": 10 ** 12}, "stock", "out_of_range", "1000000000000 is out of range"),
            ({"stock": 10 ** 30}, "stock", "out_of_range", "1e+30 is out of range"),
            ({"stock": "10"}, "stock", "not_integer", "not a string (\"10\")"),
            ({"stock": True}, "stock", "not_integer", "not true"),
            ({"name": ""}, "name", "empty", "it is empty"),
            ({"name": "n" * 201}, "name", "too_long", "it has 201"),
            ({"starts_at": "soon"}, "starts_at", "bad_format", "\"soon\" is neither"),
            ({"ends_at": t - 1}, "ends_at", "before_start", "must be after starts_at"),
            ({"per_user_limit": 0}, "per_user_limit", "out_of_range", "0 is out of range"),
            ({"per_user_limit": 2, "max_quantity": 3}, "max_quantity", "above_limit", "at most per_user_limit (2)"),
            ({"payment_window_ms": -1}, "payment_window_ms", "out_of_range", "-1 is out of range"),
            ({"colour": "red"}, "colour", "unknown_field", "unknown field \"colour\""),
        ]
        for changes, field, code, text in cases:
            body = dict(good)
            for k, v in changes.items():
                if v is None:
                    body.pop(k)
                else:
                    body[k] = v
            st, r = srv.json("POST", "/api/v1/sales", body, AUTH)
            ck.eq((st, r.get("field"), r.get("code")), (400, field, code), f"create {changes!r}: {r}")
            ck.check(text in r.get("message", ""), f"create {changes!r}: message {r.get('message')!r} says {text!r}")
            ck.eq(r.get("message", "").count(field), 1, f"create {changes!r}: names the field once")
        st, _, data = srv.request("POST", "/api/v1/sales", "{\"id\":\"a\"", dict(AUTH, **{"Content-Type":
                                                                                           "application/json"}))
        r = json.loads(data)
        ck.eq((st, r.get("field"), r.get("code")), (400, "body", "bad_json"), f"a cut body: {r}")
        st, r = srv.json("POST", "/api/v1/sales", [1], AUTH)
        ck.eq((st, r.get("code")), (400, "not_object"), "an array")
        # A start in the past: accepted, and the answer says so.
        st, r = srv.json("POST", "/api/v1/sales", {"id": "past", "stock": 1, "starts_at": t - 2 * HOUR,
                                                   "ends_at": t + HOUR}, AUTH)
        ck.eq((st, r.get("state")), (201, "live"), "a start two hours ago")
        ck.eq([(w["field"], w["code"]) for w in r.get("warnings", [])], [("starts_at", "in_past")],
              f"warned: {r.get('warnings')}")
        st, r = srv.json("POST", "/api/v1/sales", {"id": "over", "stock": 1, "starts_at": t - 2 * HOUR,
                                                   "ends_at": t - HOUR}, AUTH)
        ck.eq((st, r.get("state"), [w["code"] for w in r.get("warnings", [])]), (201, "ended", ["in_past"]),
              "an end in the past: born ended, and warned")
        ck.check("ended" in r["warnings"][0]["message"], f"saying so: {r['warnings']}")
        st, r = srv.json("POST", "/api/v1/sales", {"id": "now", "stock": 1, "starts_at": t - 5000}, AUTH)
        ck.eq((st, "warnings" in r), (201, False), "a start a few seconds ago: no warning")

        # Controls' bodies.
        create(srv, "c", 10)
        for action, body, field, code in (
                ("pause", {}, "request_id", "required"),
                ("pause", {"request_id": 5}, "request_id", "not_string"),
                ("pause", {"request_id": "a b"}, "request_id", "bad_format"),
                ("pause", {"request_id": "r", "why": "x"}, "why", "unknown_field"),
                ("stock", {"request_id": "r"}, "add", "required"),
                ("stock", {"request_id": "r", "add": 1, "remove": 1}, "remove", "exclusive"),
                ("stock", {"request_id": "r", "add": 0}, "add", "out_of_range"),
                ("stock", {"request_id": "r", "add": 2.5}, "add", "not_integer"),
                ("stock", {"request_id": "r", "remove": "3"}, "remove", "not_integer"),
                ("stock", {"request_id": "r", "add": 10 ** 25}, "add", "out_of_range"),
                ("patch", {"request_id": "r"}, "body", "required"),
                ("patch", {"request_id": "r", "ends_at": t - 1000}, "ends_at", "in_past"),
                ("patch", {"request_id": "r", "ends_at": "tomorrow"}, "ends_at", "bad_format"),
                ("patch", {"request_id": "r", "name": ""}, "name", "empty"),
                ("patch", {"request_id": "r", "max_quantity": 2}, "max_quantity", "above_limit"),
                ("patch", {"request_id": "r", "per_user_limit": 10 ** 7}, "per_user_limit", "out_of_range"),
        ):
            path = f"/api/v1/sales/c/{action}" if action != "patch" else "/api/v1/sales/c"
            st, r = srv.json("PATCH" if action == "patch" else "POST", path, body, AUTH)
            ck.eq((st, r.get("field"), r.get("code")), (400, field, code), f"{action} {body}: {r}")
        st, r = srv.json("PATCH", "/api/v1/sales/c", {"request_id": "r", "stock": 20}, AUTH)
        ck.eq((st, r.get("error"), r.get("field")), (409, "use_stock_endpoint", "stock"), "PATCH stock")
        ck.check("/api/v1/sales/c/stock" in r.get("message", ""), f"pointing at the endpoint: {r}")
        st, r = srv.json("PATCH", "/api/v1/sales/c", {"request_id": "r", "id": "d"}, AUTH)
        ck.eq((st, r.get("error"), r.get("field")), (409, "immutable", "id"), "PATCH id")
        st, r = srv.json("PATCH", "/api/v1/sales/c", {"request_id": "r", "starts_at": t + HOUR}, AUTH)
        ck.eq((st, r.get("error")), (409, "started"), "move the start of a live sale")
        buy(srv, "c", "u", "r")
        st, r = srv.json("PATCH", "/api/v1/sales/c", {"request_id": "r2", "payment_window_ms": 60000}, AUTH)
        ck.eq((st, r.get("error")), (409, "has_orders"), "change the window of a sale with orders")
        ck.eq(trail(srv, "c"), [], "no refused control in the trail")
        ck.eq(sale(srv, "c")["ends_at"] > t, True, "unchanged")

        # Purchases.
        create(srv, "q", 10, per_user_limit=3, max_quantity=2)
        for body, field, code in (({"user_id": "u", "quantity": 0}, "quantity", "out_of_range"),
                                  ({"user_id": "u", "quantity": 1.5}, "quantity", "not_integer"),
                                  ({"user_id": "u", "quantity": "2"}, "quantity", "not_integer"),
                                  ({"user_id": "u", "quantity": 10 ** 30}, "quantity", "out_of_range"),
                                  ({"user_id": "u", "quantity": 3}, "quantity", "out_of_range"),
                                  ({"user_id": ""}, "user_id", "required"),
                                  ({"user_id": "a b"}, "user_id", "bad_format"),
                                  ({"user": "u"}, "user", "unknown_field")):
            st, r = srv.json("POST", "/api/v1/sales/q/purchase", body)
            ck.eq((st, r.get("field"), r.get("code")), (400, field, code), f"purchase {body}: {r}")


def test_quantities(ck):
    with server() as srv:
        create(srv, "qt", 10, per_user_limit=5, max_quantity=3)
        st, r = buy(srv, "qt", "u1", "a", 3)
        ck.eq((st, r.get("result"), r.get("quantity"), r.get("remaining")), (201, "confirmed", 3, 7), "3 units")
        oid = r["order_id"]
        st, r = buy(srv, "qt", "u1", "a", 3)
        ck.eq((st, r.get("result"), r.get("quantity")), (200, "duplicate", 3), "the replay carries its quantity")
        st, r = buy(srv, "qt", "u1", "b", 3)
        ck.eq((st, r.get("error"), r.get("held")), (409, "limit_reached", 3), "3 + 3 units > 5")
        st, r = buy(srv, "qt", "u1", "c", 2)
        ck.eq((st, r.get("result")), (201, "confirmed"), "3 + 2 units = 5: at the limit")
        st, r = buy(srv, "qt", "u1", "d", 1)
        ck.eq((st, r.get("error"), r.get("held")), (409, "limit_reached", 5), "one more unit: over")
        st, r = buy(srv, "qt", "u2", "a", 3)
        ck.eq(st, 201, "u2 takes 3 (8 sold)")
        st, r = buy(srv, "qt", "u3", "a", 3)
        ck.eq((st, r.get("error"), r.get("remaining")), (409, "sold_out", 2), "3 asked, 2 left: all or nothing")
        ck.eq(sale(srv, "qt")["sold"], 8, "nothing of it sold")
        st, r = buy(srv, "qt", "u3", "b", 2)
        ck.eq((st, r.get("remaining")), (201, 0), "exactly what remains")
        st, o = srv.json("GET", f"/api/v1/orders/{oid}")
        ck.eq((st, o.get("quantity")), (200, 3), "GET the order")
        lst = srv.list_orders("qt", headers=AUTH)
        ck.eq(sorted((x["user_id"], x["quantity"]) for x in lst), [("u1", 2), ("u1", 3), ("u2", 3), ("u3", 2)],
              "the listing")
        ck.eq(sum(x["quantity"] for x in lst), sale(srv, "qt")["sold"], "units sold = the orders' quantities")
        if STORE["redis"]:
            return
        db = sqlite3.connect(os.path.join(srv.data, "seckill.db"))
        rows = db.execute("SELECT user_id, quantity FROM orders WHERE sale_id = 'qt' ORDER BY seq").fetchall()
        db.close()
        ck.eq(rows, [("u1", 3), ("u1", 2), ("u2", 3), ("u3", 2)], "the journal's orders view")


def test_kill9_after_controls(ck):
    with server() as srv:
        t = now_ms()
        create(srv, "k", 10, per_user_limit=2, max_quantity=2, payment_window_ms=HOUR)
        create(srv, "k2", 5, starts_at=t + HOUR, ends_at=t + 2 * HOUR)
        buy(srv, "k", "u1", "r", 2)
        ctl(srv, "k", "stock", {"add": 5}, req="k-add")
        ctl(srv, "k", "patch", {"name": "Kept", "ends_at": t + 5 * HOUR}, req="k-patch")
        ctl(srv, "k", "pause", req="k-pause")
        ctl(srv, "k2", "patch", {"starts_at": t + 30 * 60_000, "payment_window_ms": 5000}, req="k2-patch")
        ctl(srv, "k2", "close", req="k2-close")
        before = {s: (sale(srv, s), trail(srv, s)) for s in ("k", "k2")}
        srv.kill9()
        srv.start()
        for s in ("k", "k2"):
            after_sale, after_trail = sale(srv, s), trail(srv, s)
            keep = ("stock", "held", "sold", "state", "paused", "closed", "name", "starts_at", "ends_at",
                    "payment_window_ms")
            ck.eq({k: after_sale[k] for k in keep}, {k: before[s][0][k] for k in keep}, f"{s}: the sale survives")
            ck.eq(after_trail, before[s][1], f"{s}: the trail survives")
        ck.eq(sale(srv, "k")["state"], "paused", "still paused")
        st, r = buy(srv, "k", "u2", "r")
        ck.eq((st, r.get("error")), (409, "paused"), "and refusing purchases")
        st, r = ctl(srv, "k", "pause", req="k-pause")
        ck.eq((st, r.get("result")), (200, "duplicate"), "a replay after the restart")
        st, r = ctl(srv, "k", "resume")
        ck.eq(st, 200, "resume after the restart")
        ck.eq(buy(srv, "k", "u2", "r")[0], 201, "buying again")
        # And once more, after a clean stop.
        srv.stop()
        srv.start()
        ck.eq([e["action"] for e in trail(srv, "k")], ["add_stock", "patch", "pause", "resume"], "four entries")
        ck.eq(sale(srv, "k")["stock"], 15, "stock 15")


def test_controls_during_a_flood(ck):
    # Buyers flood a sale with a mix of quantities while the operator pauses, adds stock,
    # extends, resumes and closes. Afterwards the orders are checked against the trail:
    # no order between a pause and its resume or after the close (by seq: the trail says
    # how many orders a sale had when each control applied), and never more units out
    # than the stock in effect at that point.
    with server(threads=2) as srv:
        create(srv, "fl", 2000, per_user_limit=3, max_quantity=3)
        stop = threading.Event()
        answers = []
        lock = threading.Lock()

        def buyer(k):
            i = 0
            deadline = time.time() + 30
            while not stop.is_set() and time.time() < deadline and i < 5000:
                i += 1
                st, r = buy(srv, "fl", f"b{k}-{i}", "r", 1 + (i + k) % 3)
                with lock:
                    answers.append((st, r))

        threads = [threading.Thread(target=buyer, args=(k,)) for k in range(4)]
        for th in threads:
            th.start()
        def wait_sold_above(n):
            deadline = time.time() + 20
            while sale(srv, "fl")["sold"] <= n and time.time() < deadline:
                time.sleep(0.02)

        try:
            wait_sold_above(0)  # buying before the pause
            ck.eq(ctl(srv, "fl", "pause")[0], 200, "pause during the flood")
            time.sleep(0.3)
            ck.eq(ctl(srv, "fl", "stock", {"add": 200})[0], 200, "add 10 %")
            ck.eq(ctl(srv, "fl", "patch", {"ends_at": now_ms() + 2 * HOUR})[0], 200, "extend")
            st, r = ctl(srv, "fl", "resume")
            ck.eq(st, 200, "resume")
            wait_sold_above(r["sale"]["sold"])  # and after the resume
            ck.eq(ctl(srv, "fl", "close")[0], 200, "close")
            time.sleep(0.2)
        finally:
            stop.set()
            for th in threads:
                th.join()
        codes = {}
        for st, r in answers:
            k = r.get("result") or r.get("error")
            codes[k] = codes.get(k, 0) + 1
        ck.check(codes.get("paused", 0) > 0 and codes.get("ended", 0) > 0, f"buyers heard paused and ended: {codes}")
        ck.check(set(codes) <= {"confirmed", "paused", "ended", "sold_out"}, f"no other answer: {codes}")
        entries = trail(srv, "fl")
        ck.eq([e["action"] for e in entries], ["pause", "add_stock", "patch", "resume", "close"], "the trail")
        orders = sorted(srv.list_orders("fl", headers=AUTH), key=lambda o: o["order_id"])
        seqs = [int(o["order_id"].rsplit("-", 1)[1]) for o in orders]
        ck.eq(seqs, list(range(1, len(orders) + 1)), "orders 1..n")
        pause_at, resume_at, close_at = (entries[0]["before"]["orders"], entries[3]["before"]["orders"],
                                         entries[4]["before"]["orders"])
        ck.eq(resume_at, pause_at, "no order while paused")
        ck.check(0 < pause_at < close_at, f"orders before the pause ({pause_at}) and after the resume ({close_at})")
        ck.eq(len(orders), close_at, "no order after the close")
        confirmed = sum(1 for st, r in answers if st == 201)
        ck.eq(confirmed, len(orders), "every order was confirmed to a buyer, every confirmation is an order")
        # Units against the stock in effect at each point of the trail.
        units, stock, k, over = 0, 2000, 0, []
        for n, o in enumerate(orders, 1):
            while k < len(entries) and entries[k]["before"]["orders"] < n:
                stock = entries[k]["after"]["stock"]
                k += 1
            units += o["quantity"]
            if units > stock:
                over.append((n, units, stock))
        ck.eq(over, [], "never more units out than the stock at that point of the trail")
        s = sale(srv, "fl")
        ck.eq(units, s["sold"], "every confirmed order's units counted once")
        ck.eq(s["stock"], 2200, "stock 2000 + 10 %")
        ck.check(s["sold"] <= s["stock"], f"sold {s['sold']} of {s['stock']}")
        for e in entries:
            ck.check(e["before"]["sold"] + e["before"]["held"] <= e["before"]["stock"], f"counts at {e['seq']}")


def main(store="embedded"):
    if store == "redis":
        import atexit
        from skcluster import RedisServer
        STORE["redis"] = RedisServer()
        atexit.register(STORE["redis"].close)
    sklib.run_tests([test_every_control_in_every_state, test_paused_and_closed_purchases, test_trail_and_idempotency,
                     test_field_errors, test_quantities, test_kill9_after_controls, test_controls_during_a_flood])


if __name__ == "__main__":
    main()
