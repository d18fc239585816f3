"""HTTP API v1 of the embedded engine (the API of the README): every answer with its exact
status, and bad input of every kind, against a real `seckill serve` process."""
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import sklib  # noqa: E402

TOKEN = "s3cret-token"
AUTH = {"Authorization": "Bearer " + TOKEN}


def now_ms():
    return int(time.time() * 1000)


def create(srv, body, headers=None):
    h = dict(AUTH)
    h.update(headers or {})
    return srv.json("POST", "/api/v1/sales", body, h)


def live(srv, sid, stock, limit=1):
    st, sale = create(srv, {"id": sid, "name": sid, "stock": stock, "starts_at": now_ms() - 1000,
                            "ends_at": now_ms() + 3600_000, "per_user_limit": limit})
    assert st == 201, (st, sale)
    return sale


def buy(srv, sid, user, req=None):
    body = {"user_id": user}
    if req is not None:
        body["request_id"] = req
    return srv.json("POST", f"/api/v1/sales/{sid}/purchase", body)


def is_error(ck, body, code, what):
    ck.check(isinstance(body, dict) and body.get("error") == code and isinstance(body.get("message"), str)
             and body["message"], f"{what}: want error {code}, got {body!r}")


def test_create_and_read(ck):
    with sklib.Server(admin_token=TOKEN) as srv:
        t0 = now_ms()
        st, sale = create(srv, {"id": "s1", "name": "First sale \u7968", "stock": 10, "starts_at": t0 - 1000,
                                "ends_at": t0 + 3600_000, "per_user_limit": 2})
        ck.eq(st, 201, "create")
        for k, v in (("id", "s1"), ("name", "First sale \u7968"), ("stock", 10), ("sold", 0), ("remaining", 10),
                     ("state", "live"), ("starts_at", t0 - 1000), ("ends_at", t0 + 3600_000),
                     ("per_user_limit", 2)):
            ck.eq(sale.get(k), v, f"created sale {k}")
        ck.check(abs(sale.get("server_time", 0) - now_ms()) < 60_000, "server_time is the server's clock")
        st, again = create(srv, {"id": "s1", "stock": 5})
        ck.eq(st, 409, "same id again")
        is_error(ck, again, "exists", "409 body")
        # Defaults: starts now, ends an hour later, limit 1, name = id.
        st, d = create(srv, {"id": "defaults", "stock": 1})
        ck.eq(st, 201, "create with defaults")
        ck.eq(d["name"], "defaults", "default name")
        ck.eq(d["per_user_limit"], 1, "default limit")
        ck.eq(d["ends_at"] - d["starts_at"], 3600_000, "default window")
        ck.eq(d["state"], "live", "default state")
        # RFC 3339 times.
        st, r = create(srv, {"id": "rfc", "stock": 1, "starts_at": "2031-01-02T03:04:05Z",
                             "ends_at": "2031-01-02T11:04:05.5+08:00"})
        ck.eq(st, 201, "create with RFC 3339 times")
        ck.eq(r["starts_at"], 1925089445000, "RFC 3339 starts_at")
        ck.eq(r["ends_at"], 1925089445500, "RFC 3339 ends_at with offset and fraction")
        ck.eq(r["state"], "scheduled", "future sale is scheduled")
        st, e = create(srv, {"id": "past", "stock": 3, "starts_at": t0 - 20_000, "ends_at": t0 - 10_000})
        ck.eq(st, 201, "create an ended sale")
        ck.eq(e["state"], "ended", "past sale is ended")
        # The largest stock and the longest id.
        st, _ = create(srv, {"id": "x" * 64, "stock": 1_000_000_000, "per_user_limit": 1_000_000})
        ck.eq(st, 201, "64-char id, stock 1e9, limit 1e6")
        odd = "tab\there \"q\" back\\slash \u0001 \u7968 </script>"
        st, r = create(srv, {"id": "odd-name", "stock": 1, "name": odd})
        ck.eq((st, r.get("name")), (201, odd), "a name with quotes, controls and non-ASCII round-trips")
        ck.eq(srv.json("GET", "/api/v1/sales/odd-name")[1].get("name"), odd, "the name read back")

        st, lst = srv.json("GET", "/api/v1/sales")
        ck.eq(st, 200, "list")
        ids = [s["id"] for s in lst["sales"]]
        ck.eq(ids, ["s1", "defaults", "rfc", "past", "x" * 64, "odd-name"], "list in creation order")
        ck.check(isinstance(lst.get("server_time"), int), "list has server_time")
        for s in lst["sales"]:
            ck.eq(s["sold"] + s["remaining"], s["stock"], f"{s['id']}: sold + remaining")
            ck.check("server_time" in s, f"{s['id']}: server_time")
        st, one = srv.json("GET", "/api/v1/sales/rfc")
        ck.eq((st, one["id"], one["state"]), (200, "rfc", "scheduled"), "get one")
        st, nf = srv.json("GET", "/api/v1/sales/nope")
        ck.eq(st, 404, "unknown sale")
        is_error(ck, nf, "unknown_sale", "404 body")


def test_admin_token(ck):
    with sklib.Server(admin_token=TOKEN) as srv:
        body = {"id": "t", "stock": 1}
        for hdrs, what in (({}, "no token"), ({"Authorization": "Bearer wrong"}, "wrong token"),
                           ({"Authorization": "Bearer " + TOKEN + "x"}, "longer token"),
                           ({"Authorization": "Bearer " + TOKEN[:-1]}, "shorter token"),
                           ({"Authorization": "Basic " + TOKEN}, "wrong scheme"),
                           ({"Authorization": TOKEN}, "no scheme")):
            st, h, data = srv.request("POST", "/api/v1/sales", json.dumps(body),
                                      dict(hdrs, **{"Content-Type": "application/json"}))
            ck.eq(st, 401, what)
            is_error(ck, json.loads(data), "unauthorized", what)
            ck.check("www-authenticate" in h, f"{what}: WWW-Authenticate header")
        st, _ = srv.json("GET", "/api/v1/sales/t")
        ck.eq(st, 404, "nothing was created without the token")
        st, _ = srv.json("POST", "/api/v1/sales", body, {"Authorization": "bearer " + TOKEN})
        ck.eq(st, 201, "scheme is case-insensitive")
        # Listing every order needs the token too; a buyer's own orders do not.
        st, _ = srv.json("GET", "/api/v1/sales/t/orders")
        ck.eq(st, 401, "orders listing without token")
        st, _ = srv.json("GET", "/api/v1/sales/t/orders", headers=AUTH)
        ck.eq(st, 200, "orders listing with token")
        st, _ = srv.json("GET", "/api/v1/sales/t/orders/u1")
        ck.eq(st, 200, "a user's orders without token")
        # Buying needs no token.
        st, _ = buy(srv, "t", "u1")
        ck.eq(st, 201, "purchase without token")
    with sklib.Server() as srv:
        st, _ = srv.json("POST", "/api/v1/sales", {"id": "open", "stock": 1})
        ck.eq(st, 201, "no token configured: creation is open")


def test_create_bad_fields(ck):
    t0 = now_ms()
    good = {"id": "ok", "name": "n", "stock": 5, "starts_at": t0, "ends_at": t0 + 60_000, "per_user_limit": 1}
    cases = [
        # (changes, field)
        ({"id": None}, "id"), ({"id": ""}, "id"), ({"id": "a b"}, "id"), ({"id": "a/b"}, "id"),
        ({"id": "a.b"}, "id"), ({"id": "caf\u00e9"}, "id"), ({"id": "x" * 65}, "id"), ({"id": 12}, "id"),
        ({"id": ["a"]}, "id"), ({"id": "a\nb"}, "id"),
        ({"name": ""}, "name"), ({"name": "n" * 201}, "name"), ({"name": "\u7968" * 67}, "name"),
        ({"name": 5}, "name"), ({"name": None}, "name"),
        ({"stock": -1}, "stock"), ({"stock": 0}, "stock"), ({"stock": 1_000_000_001}, "stock"),
        ({"stock": 10 ** 30}, "stock"), ({"stock": "10"}, "stock"), ({"stock": 1.5}, "stock"),
        ({"stock": True}, "stock"), ({"stock": None}, "stock"),
        ({"starts_at": "soon"}, "starts_at"), ({"starts_at": -1}, "starts_at"), ({"starts_at": 1.5}, "starts_at"),
        ({"starts_at": True}, "starts_at"), ({"starts_at": "2024-13-01T00:00:00Z"}, "starts_at"),
        ({"starts_at": "2024-01-01T-1:00:00Z"}, "starts_at"), ({"starts_at": 10 ** 20}, "starts_at"),
        ({"ends_at": t0 - 1}, "ends_at"), ({"ends_at": t0}, "ends_at"), ({"ends_at": "later"}, "ends_at"),
        ({"ends_at": None}, "ends_at"), ({"ends_at": "2024-02-30T00:00:00Z"}, "ends_at"),
        ({"per_user_limit": 0}, "per_user_limit"), ({"per_user_limit": -1}, "per_user_limit"),
        ({"per_user_limit": 1_000_001}, "per_user_limit"), ({"per_user_limit": "1"}, "per_user_limit"),
        ({"per_user_limit": 1.0}, "per_user_limit"),
        ({"color": "red"}, "color"), ({"Stock": 5}, "Stock"),
    ]
    with sklib.Server(admin_token=TOKEN) as srv:
        for changes, field in cases:
            body = dict(good)
            for k, v in changes.items():
                if v is None and k in ("id", "stock"):
                    body.pop(k)  # missing
                else:
                    body[k] = v
            st, r = create(srv, body)
            ck.eq(st, 400, f"create {changes!r}")
            if st == 400:
                is_error(ck, r, "bad_request", f"create {changes!r}")
                # jansson refuses integers beyond 64 bits as a whole-body error.
                want = (field, "body") if any(isinstance(v, int) and abs(v) >= 2 ** 63 for v in changes.values()) \
                    else (field,)
                ck.check(r.get("field") in want, f"create {changes!r}: field {r.get('field')!r}, want {want}")
        # Whole bodies that are not a sale.
        for raw in ("", "not json", "[1,2]", "\"s\"", "42", "null", "{", "{\"id\":\"a\",\"id\":\"b\",\"stock\":1}",
                    "{\"id\":\"a\",\"stock\":1} trailing"):
            st, h, data = srv.request("POST", "/api/v1/sales", raw, dict(AUTH, **{"Content-Type": "application/json"}))
            ck.eq(st, 400, f"create body {raw!r}")
            if st == 400:
                ck.eq(json.loads(data).get("field"), "body", f"create body {raw!r}: field")
        st, lst = srv.json("GET", "/api/v1/sales")
        ck.eq(lst["sales"], [], "no bad sale was created")
        # The boundary values are fine.
        st, _ = create(srv, dict(good, id="edge", name="\u7968" * 66, stock=1, per_user_limit=1_000_000))
        ck.eq(st, 201, "name of 198 bytes, stock 1, limit 1e6")


def test_purchase_answers(ck):
    with sklib.Server(admin_token=TOKEN) as srv:
        live(srv, "p", 3)
        st, r = buy(srv, "p", "alice", "r-a")
        ck.eq(st, 201, "confirmed")
        ck.eq(r.get("result"), "confirmed", "confirmed body")
        ck.eq(r.get("order_id"), "p-0000000001", "first order id")
        ck.eq(r.get("remaining"), 2, "remaining after the first")
        order_a = r["order_id"]
        st, r = buy(srv, "p", "alice", "r-a")
        ck.eq(st, 200, "duplicate status")
        ck.eq((r.get("result"), r.get("order_id")), ("duplicate", order_a), "duplicate names the same order")
        st, r = buy(srv, "p", "alice", "r-other")
        ck.eq(st, 409, "limit_reached status")
        is_error(ck, r, "limit_reached", "limit_reached")
        ck.eq(r.get("order_id"), order_a, "limit_reached names the held order")
        st, r = buy(srv, "p", "alice")
        ck.eq((st, r.get("order_id")), (409, order_a), "holder without request id: limit_reached")
        ck.eq(buy(srv, "p", "bob", "r-a")[0], 201, "another user, same request id")
        st, r = buy(srv, "p", "carol")
        ck.eq((st, r.get("remaining")), (201, 0), "last unit")
        st, g = srv.json("GET", "/api/v1/sales/p")
        ck.eq((g["sold"], g["remaining"], g["state"]), (3, 0, "sold_out"), "sold out sale")
        st, r = buy(srv, "p", "dave", "r-d")
        ck.eq(st, 409, "sold_out status")
        is_error(ck, r, "sold_out", "sold_out")
        ck.eq(r.get("remaining"), 0, "sold_out remaining")
        # A holder never hears "sold out" (the worker answers from the final holders).
        st, r = buy(srv, "p", "alice", "r-a")
        ck.eq((st, r.get("result"), r.get("order_id")), (200, "duplicate", order_a), "duplicate after sell-out")
        st, r = buy(srv, "p", "alice", "r-new")
        ck.eq((st, r.get("error"), r.get("order_id")), (409, "limit_reached", order_a), "limit after sell-out")

        t0 = now_ms()
        st, _ = create(srv, {"id": "later", "stock": 5, "starts_at": t0 + 600_000, "ends_at": t0 + 1200_000})
        ck.eq(st, 201, "create a scheduled sale")
        st, r = buy(srv, "later", "alice", "r1")
        ck.eq(st, 425, "not_started status")
        is_error(ck, r, "not_started", "not_started")
        sin = r.get("starts_in_ms", -1)
        ck.check(500_000 < sin <= 600_000, f"starts_in_ms {sin}")
        st, _ = create(srv, {"id": "over", "stock": 5, "starts_at": t0 - 20_000, "ends_at": t0 - 10_000})
        st, r = buy(srv, "over", "alice", "r1")
        ck.eq(st, 410, "ended status")
        is_error(ck, r, "ended", "ended")
        st, r = buy(srv, "nope", "alice")
        ck.eq(st, 404, "unknown sale")
        is_error(ck, r, "unknown_sale", "purchase of an unknown sale")
        st, _ = srv.json("GET", "/api/v1/sales/nope/orders/alice")
        ck.eq(st, 404, "orders of an unknown sale")
        for s in ("later", "over"):
            ck.eq(srv.json("GET", f"/api/v1/sales/{s}")[1]["sold"], 0, f"{s}: nothing sold")

        # A purchase whose window opens a moment later.
        st, _ = create(srv, {"id": "soon", "stock": 1, "starts_at": now_ms() + 1500, "ends_at": now_ms() + 600_000})
        st, r = buy(srv, "soon", "eve", "e1")
        ck.eq(st, 425, "before the start")
        time.sleep(max(0, r.get("starts_in_ms", 0)) / 1000 + 0.3)
        st, r = buy(srv, "soon", "eve", "e1")
        ck.eq(st, 201, "after the start")
        st, g = srv.json("GET", "/api/v1/sales/soon")
        ck.eq(g["state"], "sold_out", "soon sold out")


def test_purchase_bad_input(ck):
    with sklib.Server(admin_token=TOKEN) as srv:
        live(srv, "b", 100)
        path = "/api/v1/sales/b/purchase"
        jh = {"Content-Type": "application/json"}
        cases = [
            ("", "body"), ("not json", "body"), ("[1]", "body"), ("\"u\"", "body"), ("null", "body"),
            ("{\"user_id\":\"u\"} x", "body"), ("{\"user_id\":\"u\",\"qty\":2}", "qty"),
            ("{}", "user_id"), ("{\"request_id\":\"r\"}", "user_id"), ("{\"user_id\":\"\"}", "user_id"),
            ("{\"user_id\":42}", "user_id"), ("{\"user_id\":null}", "user_id"), ("{\"user_id\":\"a b\"}", "user_id"),
            ("{\"user_id\":\"a\\\"b\"}", "user_id"), ("{\"user_id\":\"\\u7968\"}", "user_id"),
            ("{\"user_id\":\"" + "u" * 65 + "\"}", "user_id"), ("{\"user_id\":\"" + "u" * 20000 + "\"}", "user_id"),
            ("{\"user_id\":\"u\",\"request_id\":\"" + "r" * 65 + "\"}", "request_id"),
            ("{\"user_id\":\"u\",\"request_id\":\"a b\"}", "request_id"),
            ("{\"user_id\":\"u\",\"request_id\":5}", "request_id"),
        ]
        for raw, field in cases:
            st, h, data = srv.request("POST", path, raw, jh)
            ck.eq(st, 400, f"purchase {raw[:60]!r}")
            if st == 400:
                r = json.loads(data)
                is_error(ck, r, "bad_request", f"purchase {raw[:60]!r}")
                ck.eq(r.get("field"), field, f"purchase {raw[:60]!r}: field")
        fh = {"Content-Type": "application/x-www-form-urlencoded"}
        for raw, field in (("", "user_id"), ("user_id=", "user_id"), ("user_id=a+b", "user_id"),
                           ("user_id=%zz", "user_id"), ("user_id=" + "u" * 65, "user_id"),
                           ("user_id=u&request_id=a%20b", "request_id")):
            st, h, data = srv.request("POST", path, raw, fh)
            ck.eq(st, 400, f"form purchase {raw[:60]!r}")
            if st == 400:
                ck.eq(json.loads(data).get("field"), field, f"form purchase {raw[:60]!r}: field")
        # A body over the server's limit is refused before the engine sees it.
        st, h, data = srv.request("POST", path, "{\"user_id\":\"" + "u" * 70000 + "\"}", jh)
        ck.check(st in (400, 413), f"huge body: {st}")
        ck.eq(srv.json("GET", "/api/v1/sales/b")[1]["sold"], 0, "no bad purchase sold anything")
        # The longest valid ids work.
        st, r = buy(srv, "b", "u" * 64, "r" * 64)
        ck.eq(st, 201, "64-byte user and request ids")
        st, o = srv.json("GET", "/api/v1/sales/b/orders/" + "u" * 64)
        ck.eq((st, len(o["orders"]), o["orders"][0]["request_id"]), (200, 1, "r" * 64), "long ids stored")
        st, _ = srv.json("GET", "/api/v1/sales/b/orders/" + "u" * 65)
        ck.eq(st, 400, "orders of a too long user id")
        st, _ = srv.json("GET", "/api/v1/sales/b/orders/a%20b")
        ck.eq(st, 400, "orders of a user id with a space")
        st, h, _ = srv.request("GET", path)
        ck.check(st in (404, 405), f"GET on purchase: {st}")


def test_form_and_orders(ck):
    with sklib.Server(admin_token=TOKEN) as srv:
        live(srv, "f", 10, limit=3)
        fh = {"Content-Type": "application/x-www-form-urlencoded"}
        st, h, data = srv.request("POST", "/api/v1/sales/f/purchase", "user_id=u%2D1&request_id=r%3A1", fh)
        r = json.loads(data)
        ck.eq((st, r.get("result")), (201, "confirmed"), "form purchase")
        first = r["order_id"]
        st, h, data = srv.request("POST", "/api/v1/sales/f/purchase", "request_id=r%3A1&user_id=u-1&extra=1",
                                  dict(fh, **{"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}))
        r = json.loads(data)
        ck.eq((st, r.get("result"), r.get("order_id")), (200, "duplicate", first), "form duplicate (decoded ids)")
        # curl -d labels JSON as a form: a body that is plainly an object is JSON.
        st, h, data = srv.request("POST", "/api/v1/sales/f/purchase", "{\"user_id\":\"u-1\",\"request_id\":\"r2\"}",
                                  fh)
        ck.eq(st, 201, "JSON body sent as a form")
        st, r = buy(srv, "f", "u-1", "r3")
        ck.eq(st, 201, "third unit of limit 3")
        third = r["order_id"]
        st, r = buy(srv, "f", "u-1", "r4")
        ck.eq((st, r.get("error"), r.get("order_id")), (409, "limit_reached", first), "fourth: limit_reached")
        st, o = srv.json("GET", "/api/v1/sales/f/orders/u-1")
        ck.eq(st, 200, "user orders")
        ck.eq((o.get("sale_id"), o.get("user_id")), ("f", "u-1"), "user orders names")
        ck.eq([x["request_id"] for x in o["orders"]], ["r:1", "r2", "r3"], "user orders in order")
        ck.eq(o["orders"][0]["order_id"], first, "first order id")
        ck.eq(o["orders"][2]["order_id"], third, "third order id")
        ck.check(all(isinstance(x.get("created_at"), int) for x in o["orders"]), "created_at")
        st, o = srv.json("GET", "/api/v1/sales/f/orders/u%2D1")
        ck.eq(len(o["orders"]), 3, "percent-encoded user in the path")
        st, o = srv.json("GET", "/api/v1/sales/f/orders/nobody")
        ck.eq((st, o["orders"]), (200, []), "a user without orders")

        # Paging every order of the sale.
        users = ["v%d" % i for i in range(5)]
        for u in users:
            ck.eq(buy(srv, "f", u, "x")[0], 201, f"buy {u}")
        seen, after, pages = [], "", 0
        while pages < 20:
            q = "?limit=2" + ("&after=" + urllib.parse.quote(after) if after else "")
            st, page = srv.json("GET", "/api/v1/sales/f/orders" + q, headers=AUTH)
            ck.eq(st, 200, f"page {pages}")
            pages += 1
            ck.check(len(page["orders"]) <= 2, "page size")
            seen += page["orders"]
            if page["next"] is None:
                break
            ck.eq(page["next"], page["orders"][-1]["order_id"], "next is the last order id")
            after = page["next"]
        ck.eq(len(seen), 8, "every order once")
        ck.eq([x["order_id"] for x in seen], ["f-%010d" % i for i in range(1, 9)], "in seq order")
        ck.eq([x["user_id"] for x in seen[3:]], users, "users of the listing")
        st, page = srv.json("GET", "/api/v1/sales/f/orders", headers=AUTH)
        ck.eq((len(page["orders"]), page["next"]), (8, None), "default limit takes all")
        st, page = srv.json("GET", "/api/v1/sales/f/orders?after=f-0000000008", headers=AUTH)
        ck.eq((page["orders"], page["next"]), ([], None), "after the last order")
        for q, field in (("limit=0", "limit"), ("limit=10001", "limit"), ("limit=x", "limit"), ("limit=-1", "limit"),
                         ("after=g-0000000001", "after"), ("after=f-x", "after"), ("after=f-0000000000", "after")):
            st, r = srv.json("GET", "/api/v1/sales/f/orders?" + q, headers=AUTH)
            ck.eq((st, r.get("field")), (400, field), f"listing ?{q}")
        st, _ = srv.json("GET", "/api/v1/sales/zz/orders", headers=AUTH)
        ck.eq(st, 404, "listing an unknown sale")


def test_many_sales_live(ck):
    with sklib.Server(admin_token=TOKEN) as srv:
        for i in range(20):
            live(srv, f"m{i}", 2)
        for i in range(20):
            for u in ("a", "b", "c"):
                st, r = buy(srv, f"m{i}", u, "r")
                want = 409 if u == "c" else 201
                ck.eq(st, want, f"m{i} {u}")
        st, lst = srv.json("GET", "/api/v1/sales")
        ck.eq([s["state"] for s in lst["sales"]], ["sold_out"] * 20, "every sale sold out")
        ck.eq(sum(s["sold"] for s in lst["sales"]), 40, "sold total")
        st, h, data = srv.request("GET", "/metrics")
        text = data.decode()
        ck.check('seckill_purchases_total{sale="m3",result="confirmed"} 2' in text, "metrics per sale")
        ck.check("seckill_ledger_batch_size_count" in text and "seckill_ledger_commit_seconds_bucket" in text,
                 "ledger batch and commit metrics")


def test_created_sale_found_at_once(ck):
    # A create's 201 means the sale is there for everyone: a buyer on another connection
    # (another worker, most likely) who hears of it from that answer buys at once, and
    # finds it by id and in the list. Purchases of another sale keep the ledger's batches
    # and syncs in flight meanwhile, so that a create waits for a sync with others.
    import http.client
    import threading

    with sklib.Server(admin_token=TOKEN, threads=2) as srv:
        live(srv, "busy", 1_000_000, limit=1_000_000)
        stop = threading.Event()
        errors = []

        def flood():
            c = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
            body = json.dumps({"user_id": "flood"})
            deadline = time.time() + 30
            for _ in range(20000):
                if stop.is_set() or time.time() > deadline:
                    break
                c.request("POST", "/api/v1/sales/busy/purchase", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status != 201:
                    errors.append(r.status)
            c.close()

        t = threading.Thread(target=flood)
        t.start()
        conns = [http.client.HTTPConnection(srv.host, srv.port, timeout=10) for _ in range(6)]

        def call(c, method, path, body=None, headers=None):
            h = {"Content-Type": "application/json"}
            h.update(headers or {})
            c.request(method, path, json.dumps(body) if body is not None else None, h)
            r = c.getresponse()
            data = r.read()
            return r.status, json.loads(data) if data else None

        try:
            misses = []
            for i in range(40):
                sid = f"fresh{i}"
                st, _ = call(conns[i % 2], "POST", "/api/v1/sales",
                             {"id": sid, "stock": 5, "starts_at": now_ms() - 1000, "ends_at": now_ms() + 3600_000},
                             AUTH)
                ck.eq(st, 201, f"create {sid}")
                st, r = call(conns[2 + i % 2], "POST", f"/api/v1/sales/{sid}/purchase", {"user_id": "u"})
                if st != 201:
                    misses.append((sid, "purchase", st, r))
                st, r = call(conns[4], "GET", f"/api/v1/sales/{sid}")
                if st != 200 or r.get("sold") != 1:
                    misses.append((sid, "get", st, r))
                st, r = call(conns[5], "GET", "/api/v1/sales")
                if st != 200 or sid not in [x["id"] for x in r["sales"]]:
                    misses.append((sid, "list", st))
            ck.eq(misses, [], "a created sale is found, listed and sold at once, from any connection")
        finally:
            stop.set()
            t.join()
            for c in conns:
                c.close()
        ck.eq(errors, [], "the flood's purchases")


def ledger_batches(srv):
    _, _, data = srv.request("GET", "/metrics")
    for line in data.decode().splitlines():
        if line.startswith("seckill_ledger_batch_size_count"):
            return int(float(line.split()[-1]))
    return None


def test_holders_at_the_edges(ck):
    with sklib.Server(admin_token=TOKEN) as srv:
        # I5 at the window's end: a holder's replay gets the first answer, whatever the
        # clock says. After the end the worker answers everyone who holds nothing; a
        # possible holder still goes to the ledger, which checks the replay first.
        t0 = now_ms()
        st, _ = create(srv, {"id": "brief", "stock": 5, "starts_at": t0 - 1000, "ends_at": t0 + 1500,
                             "per_user_limit": 2})
        ck.eq(st, 201, "a sale that ends in 1.5 s")
        st, r = buy(srv, "brief", "alice", "r-a")
        ck.eq(st, 201, "bought in the window")
        first = r["order_id"]
        while now_ms() < t0 + 1600:
            time.sleep(0.05)
        for round in ("ledger", "worker"):
            st, r = buy(srv, "brief", "alice", "r-a")
            ck.eq((st, r.get("result"), r.get("order_id")), (200, "duplicate", first),
                  f"replay after the end ({round}): duplicate with the first order")
            st, r = buy(srv, "brief", "alice", "r-new")
            ck.eq(st, 410, f"a holder's new request after the end ({round})")
            is_error(ck, r, "ended", "ended")
            st, r = buy(srv, "brief", "bob", "r-b")
            ck.eq(st, 410, f"anyone else after the end ({round})")
        before = ledger_batches(srv)
        for i in range(5):
            buy(srv, "brief", f"late{i}", "x")
        ck.eq(ledger_batches(srv), before, "after the end no purchase of a non-holder reaches the ledger")
        buy(srv, "brief", "alice", "r-a")
        ck.eq(ledger_batches(srv), before + 1, "a holder's replay does")
        st, g = srv.json("GET", "/api/v1/sales/brief")
        ck.eq((g["state"], g["sold"]), ("ended", 1), "the sale is ended with its one order")
        st, o = srv.json("GET", "/api/v1/sales/brief/orders/alice")
        ck.eq([x["order_id"] for x in o["orders"]], [first], "the holder's orders after the end")

        # A holder below the limit after the sell-out hears sold_out, with what they hold.
        live(srv, "pair", 2, limit=3)
        st, r = buy(srv, "pair", "carol", "c1")
        carol = r["order_id"]
        ck.eq(buy(srv, "pair", "dave", "d1")[0], 201, "the last unit")
        for round in ("first", "again"):
            st, r = buy(srv, "pair", "carol", "c2")
            ck.eq((st, r.get("error"), r.get("order_id"), r.get("held")), (409, "sold_out", carol, 1),
                  f"carol below the limit ({round}): sold_out naming her order and the count held")
            st, r = buy(srv, "pair", "erin", "e1")
            ck.eq((st, r.get("error")), (409, "sold_out"), f"a non-holder ({round}): sold_out")
            ck.check("order_id" not in r and "held" not in r, f"naming nothing ({round}): {r}")
        st, r = buy(srv, "pair", "carol", "c1")
        ck.eq((st, r.get("result"), r.get("order_id")), (200, "duplicate", carol), "carol's replay")
        live(srv, "three", 1, limit=1)
        st, r = buy(srv, "three", "fred", "f1")
        ck.eq(st, 201, "fred's one unit")
        st, r2 = buy(srv, "three", "fred", "f2")
        ck.eq((st, r2.get("error"), r2.get("order_id"), r2.get("held")), (409, "limit_reached", r["order_id"], 1),
              "a holder at the limit: limit_reached with the order held and the count")


sklib.run_tests([test_create_and_read, test_admin_token, test_create_bad_fields, test_purchase_answers,
                 test_purchase_bad_input, test_form_and_orders, test_many_sales_live, test_holders_at_the_edges,
                 test_created_sale_found_at_once])
