"""The front door (issue 12, parts 1, 2, 4 and 5): who the buyer is (the body's word, a
gateway's header from trusted proxies only, signed user tokens), who the operator is
(warnings and refusals at start, named tokens, cross-site and non-JSON admin requests,
the metrics token), limits per address and per user, the deny list and its reload by
SIGHUP, the security headers of the pages, and the counters in /metrics. Every server is
a real `seckill serve` on loopback."""
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import sklib  # noqa: E402

TOKEN = "front-door-admin"
AUTH = {"Authorization": "Bearer " + TOKEN}
USER_SECRET = b"merchant-login-service-key"


def now_ms():
    return int(time.time() * 1000)


def user_token(user, expires_ms, key=USER_SECRET):
    """A user token as the README tells a merchant's login service to mint it."""
    mac = hmac.new(key, f"seckill-user\n{user}\n{expires_ms}".encode(), hashlib.sha256).hexdigest()
    return f"{user}.{expires_ms}.{mac}"


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def live_sale(srv, sid, stock=100, limit=1, headers=AUTH):
    st, body = srv.json("POST", "/api/v1/sales", {"id": sid, "stock": stock, "per_user_limit": limit,
                                                  "starts_at": now_ms() - 1000}, headers)
    assert st == 201, (st, body)


def buy(srv, sid, user, headers=None, req=None):
    body = {"user_id": user}
    if req:
        body["request_id"] = req
    return srv.json("POST", f"/api/v1/sales/{sid}/purchase", body, headers)


def metric(srv, name, labels, headers=None):
    st, _, data = srv.request("GET", "/metrics", headers=headers)
    assert st == 200, st
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in data.decode().splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


def start_fails(args, env=None):
    """Runs `seckill serve` expected to refuse to start; returns (exit code, output)."""
    tmp = tempfile.mkdtemp(prefix="seckill-test-")
    try:
        cmd = [sklib.SECKILL_BIN, "serve", "--data", os.path.join(tmp, "data"), "--threads", "1"] + args
        p = subprocess.run(cmd, env=dict(os.environ, **(env or {})), capture_output=True, timeout=30)
        return p.returncode, (p.stdout + p.stderr).decode()
    finally:
        subprocess.run(["rm", "-rf", tmp])


# ---- who the buyer is ------------------------------------------------------------------


def test_body_identity_is_the_demo(ck):
    with sklib.Server(admin_token=TOKEN) as srv:
        out = srv.output()
        ck.check("user_id in the request body" in out and "ANYONE" in out, "start-up says the body's word is believed")
        live_sale(srv, "demo")
        st, _ = buy(srv, "demo", "u1")
        ck.eq(st, 201, "the body's user buys")
        st, _ = srv.json("GET", "/api/v1/sales/demo/orders/u1")
        ck.eq(st, 200, "and anyone reads anyone's orders: that is what the demo mode is")


def test_user_header_only_from_trusted_proxies(ck):
    # The trusted proxies are not this test's loopback address: the header must be ignored.
    with sklib.Server("--user-header", "X-User-Id", "--trusted-proxies", "10.0.0.0/8,192.168.0.0/16",
                      admin_token=TOKEN) as srv:
        ck.check("user_id in the request body" not in srv.output(), "no demo warning with a user header")
        live_sale(srv, "h1")
        st, body = buy(srv, "h1", "victim", {"X-User-Id": "victim"})
        ck.eq(st, 401, "a user header from an untrusted peer is ignored: nobody is identified")
        ck.eq(body.get("error"), "unauthenticated", "401 body")
        st, _ = srv.json("GET", "/api/v1/sales/h1/orders/victim", headers={"X-User-Id": "victim"})
        ck.eq(st, 401, "orders: the header from an untrusted peer is ignored")
        st, _ = srv.json("GET", "/api/v1/sales/h1/orders/victim", headers=AUTH)
        ck.eq(st, 200, "the admin reads anyone's orders")
    # Loopback is the gateway here.
    with sklib.Server("--user-header", "X-User-Id", "--trusted-proxies", "127.0.0.1/32",
                      admin_token=TOKEN) as srv:
        live_sale(srv, "h2", limit=2)
        st, body = buy(srv, "h2", "alice", {"X-User-Id": "alice"})
        ck.eq(st, 201, f"the gateway's user buys for herself: {body}")
        st, body = buy(srv, "h2", "bob", {"X-User-Id": "alice"})
        ck.eq(st, 403, "alice may not buy in bob's name")
        ck.eq(body.get("error"), "forbidden", "403 body")
        st, body = buy(srv, "h2", "alice")
        ck.eq(st, 401, "no header through the gateway: nobody")
        st, _, data = srv.request("POST", "/api/v1/sales/h2/purchase", json.dumps({"user_id": "alice"}),
                                  {"Content-Type": "application/json", "X-User-Id": "alice", "x-user-id": "mallory"})
        ck.eq(st, 401, "the header twice (a gateway that appends) is refused")
        st, body = buy(srv, "h2", "bad user", {"X-User-Id": "bad user"})
        ck.eq(st in (400, 401), True, f"an invalid user in the header is refused ({st})")
        st, body = srv.json("GET", "/api/v1/sales/h2/orders/alice", headers={"X-User-Id": "alice"})
        ck.eq((st, len(body.get("orders", []))), (200, 1), "alice reads her own orders")
        st, body = srv.json("GET", "/api/v1/sales/h2/orders/alice", headers={"X-User-Id": "bob"})
        ck.eq(st, 403, "bob may not read alice's orders")
        st, _ = buy(srv, "h2", "carol", AUTH)
        ck.eq(st, 201, "the admin may act for a user")
        ck.eq(metric(srv, "seckill_front_refused_total", {"reason": "forbidden", "key": "user"}), 2.0,
              "refusals for another user are counted")
        ck.check(metric(srv, "seckill_front_refused_total", {"reason": "unauthenticated", "key": "user"}) >= 2,
                 "refusals without identity are counted")


def test_user_header_over_ipv6(ck):
    port = sklib.free_port()
    with sklib.Server("--listen", f"[::1]:{port}", "--user-header", "X-User-Id", "--trusted-proxies", "::1",
                      admin_token=TOKEN) as srv:
        srv.host, srv.port = "::1", port
        live_sale(srv, "v6")
        st, body = buy(srv, "v6", "alice", {"X-User-Id": "alice"})
        ck.eq(st, 201, f"a trusted IPv6 peer's header is honoured: {body}")
        st, _ = buy(srv, "v6", "bob", {"X-User-Id": "alice"})
        ck.eq(st, 403, "and it names who may buy")


def test_signed_user_tokens(ck):
    with sklib.Server(admin_token=TOKEN) as srv0:
        secret = write(os.path.join(srv0.tmp, "user.key"), USER_SECRET.decode() + "\n")
        with sklib.Server("--user-token-secret-file", secret, admin_token=TOKEN) as srv:
            live_sale(srv, "t1", limit=3)
            later = now_ms() + 600_000
            hdr = lambda tok: {"X-Seckill-User": tok}  # noqa: E731
            st, body = buy(srv, "t1", "u.42", hdr(user_token("u.42", later)))
            ck.eq(st, 201, f"a valid token (a user with a dot) buys: {body}")
            st, body = buy(srv, "t1", "u.42", hdr(user_token("u.42", now_ms() - 1)))
            ck.eq((st, body.get("error")), (401, "unauthenticated"), "an expired token")
            ck.check("expired" in body.get("message", ""), "the message says it expired")
            tampered = user_token("u.42", later)[:-1] + ("0" if user_token("u.42", later)[-1] != "0" else "1")
            st, body = buy(srv, "t1", "u.42", hdr(tampered))
            ck.eq(st, 401, "a tampered token")
            st, body = buy(srv, "t1", "u.42", hdr(user_token("u.42", later, key=b"another key")))
            ck.eq(st, 401, "a token of another key")
            st, body = buy(srv, "t1", "u.42", hdr("garbage"))
            ck.eq(st, 401, "a malformed token")
            st, body = buy(srv, "t1", "victim", hdr(user_token("u.42", later)))
            ck.eq((st, body.get("error")), (403, "forbidden"), "u.42's token may not buy for victim")
            st, _ = buy(srv, "t1", "victim", AUTH)
            ck.eq(st, 201, "the admin buys for victim")
            st, body = srv.json("GET", "/api/v1/sales/t1/orders/victim", headers=hdr(user_token("u.42", later)))
            ck.eq(st, 403, "another user's orders are refused")
            st, body = srv.json("GET", "/api/v1/sales/t1/orders/victim", headers=hdr(user_token("victim", later)))
            ck.eq((st, len(body.get("orders", []))), (200, 1), "victim reads her own orders")
            st, _ = srv.json("GET", "/api/v1/sales/t1/orders/victim")
            ck.eq(st, 401, "no token, no orders")
            for why in ("expired", "bad_mac", "malformed"):
                v = metric(srv, "seckill_front_tokens_rejected_total", {"token": "user", "reason": why})
                ck.check(v is not None and v >= 1, f"rejected user tokens ({why}) are counted: {v}")
            # The sold-out path (answered on the worker from the holders) checks first too.
            live_sale(srv, "t2", stock=1)
            st, _ = buy(srv, "t2", "winner", hdr(user_token("winner", later)), req="r1")
            ck.eq(st, 201, "the one unit")
            st, body = buy(srv, "t2", "winner", hdr(user_token("thief", later)), req="r1")
            ck.eq(st, 403, "after the sell-out a replay in another's name does not learn the order")
            ck.check("order_id" not in body, "no order id in the refusal")


# ---- who the operator is ---------------------------------------------------------------


def test_start_up_checks(ck):
    with sklib.Server() as srv:
        ck.check("no admin token" in srv.output(), "a warning without an admin token on loopback")
    rc, out = start_fails(["--listen", f"127.0.0.1:{sklib.free_port()}", "--admin-token", ""])
    ck.eq(rc, 2, f"an empty --admin-token is refused: {out}")
    ck.check("empty" in out, "and says so")
    rc, out = start_fails(["--listen", f"127.0.0.1:{sklib.free_port()}"], env={"SECKILL_ADMIN_TOKEN": ""})
    ck.eq(rc, 2, "an empty SECKILL_ADMIN_TOKEN is refused, not taken as no token")
    # Beyond loopback without a token: refused before it listens.
    rc, out = start_fails(["--listen", f"0.0.0.0:{sklib.free_port()}"])
    ck.eq(rc, 2, "no admin token beyond loopback is refused")
    ck.check("--insecure-admin" in out, f"and the message names the way out: {out}")
    # --insecure-admin passes that check; 192.0.2.1 (TEST-NET) is not ours, so the node
    # then fails to bind and nothing listens beyond loopback during the test.
    rc, out = start_fails(["--listen", f"192.0.2.1:{sklib.free_port()}", "--insecure-admin"])
    ck.check(rc != 0 and "cannot listen" in out and "--insecure-admin" not in out,
             f"--insecure-admin lets it go on to listen: {rc} {out}")
    with sklib.Server() as srv:
        path = write(os.path.join(srv.tmp, "admins"), "alice:a-token\n")
    rc, out = start_fails(["--listen", f"127.0.0.1:{sklib.free_port()}", "--admin-token", "x",
                           "--admin-token-file", "/nonexistent"])
    ck.eq(rc, 2, "both --admin-token and --admin-token-file: refused")
    with sklib.Server() as srv:
        path = write(os.path.join(srv.tmp, "admins"), "alice:a\nalice:b\n")
        rc, out = start_fails(["--listen", f"127.0.0.1:{sklib.free_port()}", "--admin-token-file", path])
        ck.check(rc == 2 and "line 2" in out, f"a bad token file names its line: {out}")
        empty = write(os.path.join(srv.tmp, "empty"), "\n")
        rc, out = start_fails(["--listen", f"127.0.0.1:{sklib.free_port()}", "--admin-token-file", empty])
        ck.check(rc == 2 and "empty" in out, f"an empty token file is refused: {out}")
    rc, out = start_fails(["--listen", f"127.0.0.1:{sklib.free_port()}", "--user-header", "X-User-Id"])
    ck.check(rc == 2 and "--trusted-proxies" in out, "a user header without trusted proxies is refused")
    rc, out = start_fails(["--listen", f"127.0.0.1:{sklib.free_port()}", "--trusted-proxies", "10.0.0.0/33"])
    ck.eq(rc, 2, "a bad trusted proxy block is refused")


def test_named_admin_tokens(ck):
    with sklib.Server() as srv0:
        path = write(os.path.join(srv0.tmp, "admins"), "# operators\nalice:alice-secret\nbob:bob-secret\n")
        with sklib.Server("--admin-token-file", path) as srv:
            ck.check("no admin token" not in srv.output(), "no warning with tokens")
            for tok, want in (("alice-secret", 201), ("bob-secret", 201), ("alice-secre", 401),
                              ("alice-secretx", 401), ("carol", 401), ("alice:alice-secret", 401)):
                st, _ = srv.json("POST", "/api/v1/sales", {"id": f"n{abs(hash(tok)) % 10**8}", "stock": 1},
                                 {"Authorization": "Bearer " + tok})
                ck.eq(st, want, f"token {tok!r}")
            ck.eq(metric(srv, "seckill_front_tokens_rejected_total", {"token": "admin", "reason": "wrong"}), 4.0,
                  "wrong admin tokens are counted")
        single = write(os.path.join(srv0.tmp, "single"), "just-one-token\n")
        with sklib.Server("--admin-token-file", single) as srv:
            st, _ = srv.json("POST", "/api/v1/sales", {"id": "s", "stock": 1}, {"Authorization": "Bearer just-one-token"})
            ck.eq(st, 201, "a one-line file is one token (the newline is not part of it)")
        with sklib.Server(env={"SECKILL_ADMIN_TOKEN": "from-env"}) as srv:
            st, _ = srv.json("POST", "/api/v1/sales", {"id": "e", "stock": 1}, {"Authorization": "Bearer from-env"})
            ck.eq(st, 201, "a token from the environment")
            st, _ = srv.json("POST", "/api/v1/sales", {"id": "e2", "stock": 1})
            ck.eq(st, 401, "and it is required")


def test_admin_requests_are_json_and_same_site(ck):
    form = "id=evil&stock=1"
    with sklib.Server() as srv:  # no token: the case a cross-site form could exploit
        for hdrs, what in (({"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
                            "a cross-site HTML form"),
                           ({"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, "Sec-Fetch-Site"),
                           ({"Origin": "null", "Content-Type": "text/plain"}, "Origin null")):
            st, _, data = srv.request("POST", "/api/v1/sales", form, hdrs)
            ck.eq(st, 403, what)
            ck.eq(json.loads(data).get("error"), "cross_site", f"{what}: error code")
        st, _, data = srv.request("POST", "/api/v1/sales", json.dumps({"id": "x1", "stock": 1}),
                                  {"Origin": "http://evil.example", "Content-Type": "application/json"})
        ck.eq(st, 403, "JSON from another origin too")
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                      "application/jsonx", None):
            hdrs = {"Content-Type": ctype} if ctype else {}
            st, _, data = srv.request("POST", "/api/v1/sales", json.dumps({"id": "x2", "stock": 1}), hdrs)
            ck.eq(st, 415, f"Content-Type {ctype}")
        st, _ = srv.json("GET", "/api/v1/sales/x2")
        ck.eq(st, 404, "nothing was created")
        st, _, _ = srv.request("POST", "/api/v1/sales", json.dumps({"id": "ok1", "stock": 1}),
                               {"Content-Type": "Application/JSON; charset=utf-8", "Origin": f"http://{srv.host}:{srv.port}",
                                "Sec-Fetch-Site": "same-origin"})
        ck.eq(st, 201, "the dashboard's own request (same origin, JSON with a charset)")
        ck.check(metric(srv, "seckill_front_refused_total", {"reason": "cross_site", "key": "admin"}) >= 4,
                 "cross-site refusals are counted")
        ck.check(metric(srv, "seckill_front_refused_total", {"reason": "not_json", "key": "admin"}) >= 5,
                 "non-JSON refusals are counted")
        # Buyers are not admins: a purchase still takes form fields, from anywhere.
        st, _, data = srv.request("POST", "/api/v1/sales/ok1/purchase", "user_id=u1",
                                  {"Content-Type": "application/x-www-form-urlencoded"})
        ck.eq(st, 201, f"a purchase as form fields: {data}")


def test_metrics_token(ck):
    with sklib.Server("--metrics-token", "scrape-me", admin_token=TOKEN) as srv:
        st, _, _ = srv.request("GET", "/metrics")
        ck.eq(st, 401, "/metrics needs the token")
        st, _, _ = srv.request("GET", "/metrics", headers={"Authorization": "Bearer wrong"})
        ck.eq(st, 401, "a wrong one")
        st, _, _ = srv.request("GET", "/metrics", headers={"Authorization": "Bearer scrape-me"})
        ck.eq(st, 200, "the metrics token")
        st, _, data = srv.request("GET", "/metrics", headers=AUTH)
        ck.eq(st, 200, "an admin token (the dashboard's)")
        ck.check(b'seckill_front_tokens_rejected_total{token="metrics",reason="wrong"} 1' in data,
                 "the wrong metrics token is counted")
        st, _, _ = srv.request("GET", "/healthz")
        ck.eq(st, 200, "/healthz stays open")


# ---- limits and the deny list ----------------------------------------------------------


def burst(srv, path, n, headers=None):
    """n GETs as fast as one client goes; returns (statuses, seconds taken, last 429's Retry-After)."""
    t0 = time.time()
    statuses, retry = [], None
    for _ in range(n):
        st, h, _ = srv.request("GET", path, headers=headers)
        statuses.append(st)
        if st == 429:
            retry = h.get("retry-after")
    return statuses, time.time() - t0, retry


def test_ip_rate(ck):
    # 2 a second, bursts of 4.
    with sklib.Server("--ip-rate", "2", admin_token=TOKEN) as srv:
        live_sale(srv, "r1")
        sts, secs, retry = burst(srv, "/api/v1/sales/r1", 20)
        ok = sts.count(200)
        ck.check(4 <= ok <= 4 + 2 * secs + 1, f"a burst of 4, then the refill only: {ok} in {secs:.2f} s")
        ck.check(429 in sts, "then 429")
        ck.check(retry is not None and int(retry) >= 1, f"with Retry-After: {retry}")
        st, _, data = srv.request("GET", "/api/v1/sales/r1")
        if st == 429:
            ck.eq(json.loads(data).get("error"), "rate_limited", "the 429's body")
        sts, _, _ = burst(srv, "/healthz", 20)
        ck.eq(sts.count(200), 20, "/healthz is not counted")
        sts, _, _ = burst(srv, "/metrics", 5)
        ck.eq(sts.count(200), 5, "/metrics is not counted")
        sts, _, _ = burst(srv, "/", 10)
        ck.eq(sts.count(200), 10, "the page is not counted")
        sts, _, _ = burst(srv, "/api/v1/sales/r1/orders", 10, AUTH)
        ck.eq(sts.count(200), 10, "admin requests are not counted")
        sts, _, _ = burst(srv, "/api/v1/sales/r1/orders", 10, {"Authorization": "Bearer wrong"})
        ck.eq(sts.count(401), 0, "a wrong admin token is counted like anyone (429 before 401)")
        time.sleep(1.2)  # at 2 a second, at least two tokens are back
        st, _, _ = srv.request("GET", "/api/v1/sales/r1")
        ck.eq(st, 200, "refilled after a wait")
        ck.check(metric(srv, "seckill_front_refused_total", {"reason": "rate_limited", "key": "ip"}) >= 10,
                 "rate-limited requests are counted")
    # Behind a trusted proxy each forwarded client has its own bucket; from anyone else
    # X-Forwarded-For is ignored.
    with sklib.Server("--ip-rate", "1", "--trusted-proxies", "127.0.0.1", admin_token=TOKEN) as srv:
        live_sale(srv, "r2")
        for client in ("203.0.113.1", "203.0.113.2", "2001:db8::1"):
            sts, secs, _ = burst(srv, "/api/v1/sales/r2", 6, {"X-Forwarded-For": f"1.2.3.4, {client}"})
            ck.check(2 <= sts.count(200) <= 2 + secs + 1, f"{client}: its own bucket ({sts})")
        sts, secs, _ = burst(srv, "/api/v1/sales/r2", 6, {"X-Real-IP": "198.51.100.7"})
        ck.check(2 <= sts.count(200) <= 2 + secs + 1, f"X-Real-IP: its own bucket ({sts})")
    with sklib.Server("--ip-rate", "1", "--trusted-proxies", "10.0.0.0/8", admin_token=TOKEN) as srv:
        live_sale(srv, "r3")
        ok = 0
        t0 = time.time()
        for i in range(8):
            st, _, _ = srv.request("GET", "/api/v1/sales/r3", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            ok += st == 200
        ck.check(ok <= 2 + (time.time() - t0) + 1, f"an untrusted peer's X-Forwarded-For is ignored: {ok} of 8")


def test_user_rate(ck):
    with sklib.Server("--user-rate", "1", admin_token=TOKEN) as srv:
        live_sale(srv, "ur")
        sts, secs, retry = burst(srv, "/api/v1/sales/ur/orders/u1", 8)
        ck.check(2 <= sts.count(200) <= 2 + secs + 1 and 429 in sts, f"one user's bucket: {sts}")
        ck.check(retry is not None, "Retry-After")
        sts, _, _ = burst(srv, "/api/v1/sales/ur/orders/u2", 2)
        ck.eq(sts.count(200), 2, "another user has a bucket of their own")
        sts, _, _ = burst(srv, "/api/v1/sales/ur/orders/u1", 5, AUTH)
        ck.eq(sts.count(200), 5, "the admin acting for u1 is not held back")
        ck.check(metric(srv, "seckill_front_refused_total", {"reason": "rate_limited", "key": "user"}) >= 1,
                 "counted")


def wait_for(cond, timeout=10):
    deadline = time.time() + timeout
    v = cond()
    while not v and time.time() < deadline:
        time.sleep(0.05)
        v = cond()
    return v


def test_deny_list_reload(ck):
    with sklib.Server(admin_token=TOKEN) as srv0:
        deny = write(os.path.join(srv0.tmp, "deny.txt"), "# bots\nmallory\n203.0.113.0/24\n", 0o644)
        with sklib.Server("--deny-file", deny, "--trusted-proxies", "127.0.0.1", admin_token=TOKEN) as srv:
            ck.check("deny list" in srv.output() and "1 users" in srv.output(), "start-up says what it loaded")
            live_sale(srv, "d1", limit=5)
            st, body = buy(srv, "d1", "mallory")
            ck.eq((st, body.get("error")), (403, "denied"), "a denied user")
            st, _ = buy(srv, "d1", "alice")
            ck.eq(st, 201, "another user")
            st, body = srv.json("GET", "/api/v1/sales/d1", headers={"X-Forwarded-For": "203.0.113.77"})
            ck.eq((st, body.get("error")), (403, "denied"), "a denied block, through the trusted proxy")
            # Reload: alice and loopback itself are added.
            write(deny, "alice\n127.0.0.1\n")
            srv.proc.send_signal(signal.SIGHUP)
            ck.check(wait_for(lambda: srv.request("GET", "/api/v1/sales/d1")[0] == 403), "SIGHUP: loopback denied")
            st, _, _ = srv.request("GET", "/healthz")
            ck.eq(st, 200, "/healthz is never denied")
            ck.check(wait_for(lambda: "reloaded" in srv.output()), "the reload is logged")
            ck.eq(metric(srv, "seckill_front_deny_entries", {"kind": "user"}), 1.0, "the new list is in force")
            # A bad line: the list in force stays, and the log names the line.
            write(deny, "bob\n10.0.0.0/33\n")
            srv.proc.send_signal(signal.SIGHUP)
            ck.check(wait_for(lambda: "line 2" in srv.output()), "a bad line is reported with its number")
            ck.check("NOT reloaded" in srv.output(), "and the reload refused")
            st, _, _ = srv.request("GET", "/api/v1/sales/d1")
            ck.eq(st, 403, "the old list stays in force")
            # Back to nothing.
            write(deny, "# empty\n")
            srv.proc.send_signal(signal.SIGHUP)
            ck.check(wait_for(lambda: srv.request("GET", "/api/v1/sales/d1")[0] == 200), "emptied: allowed again")
            st, _ = buy(srv, "d1", "mallory")
            ck.eq(st, 201, "mallory too")
            ck.check(metric(srv, "seckill_front_refused_total", {"reason": "denied", "key": "user"}) >= 1,
                     "denied users are counted")
            ck.check(metric(srv, "seckill_front_refused_total", {"reason": "denied", "key": "ip"}) >= 2,
                     "denied addresses are counted")
        bad = write(os.path.join(srv0.tmp, "bad.txt"), "ok-user\nip:nonsense\n")
        rc, out = start_fails(["--listen", f"127.0.0.1:{sklib.free_port()}", "--deny-file", bad])
        ck.check(rc != 0 and "line 2" in out, f"a bad deny file at start: refused with its line: {out}")
    with sklib.Server(admin_token=TOKEN) as srv:
        srv.proc.send_signal(signal.SIGHUP)
        ck.check(wait_for(lambda: "nothing to reload" in srv.output()), "SIGHUP without a deny file: noted")
        st, _, _ = srv.request("GET", "/healthz")
        ck.eq(st, 200, "and the node goes on")


# ---- the pages -------------------------------------------------------------------------


def test_security_headers(ck):
    with sklib.Server(admin_token=TOKEN) as srv:
        for path in ("/", "/admin", "/sale/x"):
            st, h, _ = srv.request("GET", path)
            ck.eq(st, 200, path)
            csp = h.get("content-security-policy", "")
            ck.check("script-src 'self'" in csp and "'unsafe-inline'" not in csp, f"{path}: CSP without inline script")
            ck.check("frame-ancestors 'none'" in csp, f"{path}: frame-ancestors")
            ck.eq(h.get("x-frame-options"), "DENY", f"{path}: X-Frame-Options")
            ck.eq(h.get("x-content-type-options"), "nosniff", f"{path}: nosniff")
            ck.check(h.get("referrer-policy"), f"{path}: Referrer-Policy")
        st, h, _ = srv.request("GET", "/app.js")
        ck.eq(h.get("x-content-type-options"), "nosniff", "scripts: nosniff")
        # The pages themselves hold no inline script or style (the CSP would block them).
        for name in ("index.html", "admin.html"):
            with open(os.path.join(sklib.SRC, "web", name)) as f:
                html = f.read()
            ck.check(not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"{name}: no inline <script>")
            ck.check(not re.search(r"\son[a-z]+\s*=", html), f"{name}: no inline event handler")
            ck.check(not re.search(r"\sstyle\s*=", html), f"{name}: no style attribute")


sklib.run_tests([test_body_identity_is_the_demo, test_user_header_only_from_trusted_proxies, test_user_header_over_ipv6,
                 test_signed_user_tokens, test_start_up_checks, test_named_admin_tokens,
                 test_admin_requests_are_json_and_same_site, test_metrics_token, test_ip_rate, test_user_rate,
                 test_deny_list_reload, test_security_headers])
