"""The waiting room on the embedded store (issue 12, part 3): queue order in both modes,
admissions at the rate and in queue order, purchases only with a valid admission of the
same user and sale (no token, forged, another user's, another sale's, expired, another
key: 403 not_admitted), sell-out while people wait and returns reopening admission, the
queue and its admissions kept over a restart (SIGTERM and kill -9), live places over SSE,
proof of work, and the settings in PATCH and the journal. Every server is a real
`seckill serve` on loopback."""
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import sklib  # noqa: E402

SECRET = b"queue-test-secret-0123456789abcdef"


def now_ms():
    return int(time.time() * 1000)


class QServer(sklib.Server):
    """A server with --secret-file (a file of its own, removed with it)."""

    def __init__(self, *args, secret=SECRET, **kw):
        self.secret_dir = tempfile.mkdtemp(prefix="seckill-qsec-")
        path = os.path.join(self.secret_dir, "secret")
        with open(path, "wb") as f:
            f.write(secret)
        os.chmod(path, 0o600)
        super().__init__("--secret-file", path, *args, **kw)

    def close(self):
        try:
            super().close()
        finally:
            shutil.rmtree(self.secret_dir, ignore_errors=True)


def server(*args):
    return QServer(*args)


def create(srv, sid, stock, **kw):
    body = {"id": sid, "stock": stock}
    body.update(kw)
    st, b = srv.json("POST", "/api/v1/sales", body)
    assert st == 201, (st, b)
    return b


def join(srv, sid, user, **extra):
    body = {"user_id": user}
    body.update(extra)
    return srv.json("POST", f"/api/v1/sales/{sid}/queue", body)


def buy(srv, sid, user, admission=None, req=None, header=False):
    body = {"user_id": user}
    if req:
        body["request_id"] = req
    headers = {}
    if admission and header:
        headers["X-Seckill-Admission"] = admission
    elif admission:
        body["admission"] = admission
    return srv.json("POST", f"/api/v1/sales/{sid}/purchase", body, headers)


def wait_admitted(srv, sid, users, limit_s=30):
    """Polls until every user is admitted; returns {user: answer}."""
    got, deadline = {}, time.time() + limit_s
    while len(got) < len(users) and time.time() < deadline:
        for u in users:
            if u in got:
                continue
            st, b = join(srv, sid, u)
            assert st == 202, (st, b)
            if b["admission"]:
                got[u] = b
        time.sleep(0.05)
    return got


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(sale, user, expires, key=SECRET):
    """An admission token as crypto/token.h defines it."""
    mac = hmac.new(key, f"sk-adm\n{sale}\n{user}\n{expires}".encode(), hashlib.sha256).digest()
    return f"{expires}.{b64url(mac)}"


def test_fifo_order_and_admission(ck):
    with server() as srv:
        start = now_ms() + 1500
        create(srv, "f", 100, starts_at=start, queue="fifo", admit_per_second=20, admission_ttl_ms=60000)
        users = [f"u{i}" for i in range(12)]
        for i, u in enumerate(users[:10]):
            st, b = join(srv, "f", u)
            ck.eq(st, 202, "join answers 202")
            ck.eq((b["position"], b["ahead"], b["state"], b["admission"]), (i + 1, i, "pre_queue", None),
                  f"pre-queue place of {u}")
            ck.check(b["eta_ms"] >= start - now_ms() - 50, "the wait includes the time to the start")
        st, b = join(srv, "f", "u3")
        ck.eq((st, b["position"]), (202, 4), "joining again is idempotent")
        st, b = buy(srv, "f", "u0")
        ck.eq((st, b["error"]), (425, "not_started"), "before the start: not started")
        while now_ms() < start + 100:
            time.sleep(0.05)
        for u in users[10:]:
            st, b = join(srv, "f", u)
            ck.check(b["position"] > 10, f"{u} joined after the start: at the back")
        got = wait_admitted(srv, "f", users)
        ck.eq(len(got), 12, "everyone is admitted in the end")
        order = sorted(users, key=lambda u: (got[u]["admission_expires_at"], got[u]["position"]))
        ck.eq([got[u]["position"] for u in order], list(range(1, 13)), "admission follows the queue (fifo)")
        ck.eq(order[:10], users[:10], "the pre-queue is admitted in arrival order")
        spread = got[users[11]]["admission_expires_at"] - got[users[0]]["admission_expires_at"]
        ck.check(spread >= 400, f"admitted at the rate (20/s: 12 people over ~550 ms), not at once: {spread} ms")
        st, b = buy(srv, "f", "u0", got["u0"]["admission"], req="r0")
        ck.eq((st, b.get("result")), (201, "confirmed"), "a purchase with its admission")
        st, b = buy(srv, "f", "u1", got["u1"]["admission"], header=True)
        ck.eq((st, b.get("result")), (201, "confirmed"), "the admission in X-Seckill-Admission")
        st, b = buy(srv, "f", "u0", req="r0")
        ck.eq((st, b.get("result")), (200, "duplicate"), "a holder's replay without its admission: the first answer")
        st, b = buy(srv, "f", "u0", req="r-new")
        ck.eq((st, b.get("error")), (403, "not_admitted"), "a holder's new request without admission: refused")
        st, sale = srv.json("GET", "/api/v1/sales/f")
        ck.eq((sale["queue"], sale["admit_per_second"], sale["admitted"], sale["queue_length"]),
              ("fifo", 20, 12, 12), "the sale shows its waiting room")


def test_not_admitted(ck):
    with server() as srv:
        create(srv, "n", 100, starts_at=now_ms() - 1000, queue="fifo", admit_per_second=1000,
               admission_ttl_ms=1000)
        create(srv, "other", 100, starts_at=now_ms() - 1000, queue="fifo", admit_per_second=1000)
        create(srv, "open", 100, starts_at=now_ms() - 1000)
        a = wait_admitted(srv, "n", ["alice"])["alice"]["admission"]
        o = wait_admitted(srv, "other", ["alice"])["alice"]["admission"]
        cases = [
            ("no token", None),
            ("forged", "99999999999999." + "A" * 43),
            ("garbage", "x"),
            ("another user's", None),
            ("another sale's", o),
            ("another key's", mint("n", "bob", now_ms() + 60000, key=b"not-the-servers-key")),
        ]
        for what, tok in cases:
            user = "bob"
            if what == "another user's":
                tok = a  # alice's token, bob buying
            st, b = buy(srv, "n", user, tok)
            ck.eq((st, b.get("error")), (403, "not_admitted"), f"{what}: not admitted")
        st, b = buy(srv, "n", "bob", mint("n", "bob", now_ms() + 60000))
        ck.eq(st, 201, "a token minted with the server's key (the documented format) is accepted")
        time.sleep(1.1)
        st, b = buy(srv, "n", "alice", a)
        ck.eq((st, b.get("error")), (403, "not_admitted"), "expired: not admitted")
        st, b = join(srv, "n", "alice")
        ck.check(b["position"] == 3 or b["position"] == 2, f"expired unused: back of the queue ({b['position']})")
        st, b = buy(srv, "open", "bob")
        ck.eq(st, 201, "a sale without a queue takes no admission")
        st, b = join(srv, "open", "bob")
        ck.eq((st, b.get("error")), (409, "no_queue"), "joining a sale without a queue: 409 no_queue")
        st, _, data = srv.request("GET", "/metrics")
        text = data.decode()
        ck.check('seckill_front_tokens_rejected_total{token="admission",reason="bad_mac"}' in text,
                 "refused admissions are counted by reason")


def test_admission_before_the_sale_state(ck):
    """Without a valid admission a purchase on a queued sale hears 403 not_admitted whatever
    the sale's state (sold out, paused), as the writer decides (a holder's replay, then the
    admission, then the rules); only a holder's replay gets its first answer. With a valid
    admission the sale's state is the answer."""
    with server() as srv:
        create(srv, "x", 1, starts_at=now_ms() - 1000, queue="fifo", admit_per_second=1000,
               admission_ttl_ms=1500)
        got = wait_admitted(srv, "x", ["a", "b"])
        st, order = buy(srv, "x", "a", got["a"]["admission"], req="ra")
        ck.eq((st, order.get("result")), (201, "confirmed"), "a buys the last unit")
        st, b = buy(srv, "x", "b", got["b"]["admission"])
        ck.eq((st, b.get("error")), (409, "sold_out"), "sold out, a valid admission: sold out")
        for what, kw in (("no admission", {}), ("no admission, a request id", {"req": "rc"}),
                         ("a forged admission", {"admission": "99999999999999." + "A" * 43}),
                         ("another user's admission", {"admission": got["b"]["admission"]})):
            st, b = buy(srv, "x", "c", **kw)
            ck.eq((st, b.get("error")), (403, "not_admitted"), f"sold out, {what}: not admitted")
        st, b = buy(srv, "x", "a", req="ra")
        ck.eq((st, b.get("result"), b.get("order_id")), (200, "duplicate", order["order_id"]),
              "the holder's replay without admission: its first answer")
        st, b = buy(srv, "x", "a", req="ra-2")
        ck.eq((st, b.get("error")), (403, "not_admitted"), "the holder's new request without admission: not admitted")
        while now_ms() < got["b"]["admission_expires_at"] + 50:
            time.sleep(0.05)
        st, b = buy(srv, "x", "b", got["b"]["admission"])
        ck.eq((st, b.get("error")), (403, "not_admitted"), "sold out, an expired admission: not admitted")
        st, b = buy(srv, "x", "b", got["b"]["admission"], req="rb")
        ck.eq((st, b.get("error")), (403, "not_admitted"), "the same with a request id")
        st, _ = srv.json("POST", "/api/v1/sales/x/pause", {"request_id": "p1"})
        ck.eq(st, 200, "the sale is paused")
        st, b = buy(srv, "x", "c")
        ck.eq((st, b.get("error")), (403, "not_admitted"), "paused, no admission: not admitted")
        st, b = buy(srv, "x", "c", mint("x", "c", now_ms() + 60000))
        ck.eq((st, b.get("error")), (409, "paused"), "paused, a valid admission: paused")
        st, _, data = srv.request("GET", "/metrics")
        line = 'seckill_front_tokens_rejected_total{token="admission",reason="expired"} '
        n = [int(l[len(line):]) for l in data.decode().splitlines() if l.startswith(line)]
        ck.eq(n, [2], "the expired admissions are counted as such")


def test_random_order(ck):
    with server() as srv:
        start = now_ms() + 1200
        create(srv, "r", 1000, starts_at=start, queue="random", admit_per_second=1000)
        users = [f"p{i}" for i in range(40)]
        for u in users:
            st, b = join(srv, "r", u)
            ck.eq((st, b["position"], b["eta_ms"]), (202, None, None), f"{u}: place not drawn before the start")
        while now_ms() < start + 50:
            time.sleep(0.05)
        st, late = join(srv, "r", "late")
        ck.eq(late["position"], 41, "a join after the start goes to the back")
        got = wait_admitted(srv, "r", users)
        pos = [got[u]["position"] for u in users]
        ck.eq(sorted(pos), list(range(1, 41)), "the pre-queue's places are a permutation")
        ck.check(pos != list(range(1, 41)), "and not arrival order")


def test_sell_out_and_returns(ck):
    with server() as srv:
        create(srv, "s", 1, starts_at=now_ms() - 1000, queue="fifo", admit_per_second=1,
               payment_window_ms=600000)
        join(srv, "s", "a")
        for u in ["b", "c", "d"]:
            join(srv, "s", u)
        got = wait_admitted(srv, "s", ["a"])
        st, order = buy(srv, "s", "a", got["a"]["admission"])
        ck.eq((st, order.get("result")), (201, "reserved"), "a reserves the last unit")
        st, b = join(srv, "s", "d")
        ck.eq((b["state"], b["eta_ms"]), ("sold_out", None), "the queue says sold out at once")
        head = b["admitted"]
        time.sleep(2.5)
        st, b = join(srv, "s", "d")
        ck.eq(b["admitted"], head, "no admission while sold out")
        st, _ = srv.json("POST", f"/api/v1/orders/{order['order_id']}/cancel", {"user_id": "a"})
        ck.eq(st, 200, "a cancels: the unit returns")
        got = wait_admitted(srv, "s", ["d"], limit_s=20)
        ck.check("d" in got, "units back: admission resumes")
        st, b = join(srv, "s", "d")
        ck.check(b["admitted"] > head, "admitted more after the return")


def test_restart_while_waiting(ck):
    srv = QServer()
    try:
        start = now_ms() + 2000
        create(srv, "w", 100, starts_at=start, queue="random", admit_per_second=2, admission_ttl_ms=600000)
        users = [f"w{i}" for i in range(20)]
        for u in users:
            join(srv, "w", u)
        while now_ms() < start + 100:
            time.sleep(0.05)
        before = {u: join(srv, "w", u)[1] for u in users}
        admitted = {u: b for u, b in before.items() if b["admission"]}
        ck.check(len(admitted) >= 1, "someone is admitted before the restart")
        for kill in (False, True):
            if kill:
                srv.kill9()
            else:
                srv.stop()
            srv.start()
            after = {u: join(srv, "w", u)[1] for u in users}
            ck.eq({u: b["position"] for u, b in after.items()}, {u: b["position"] for u, b in before.items()},
                  f"places kept over a restart ({'kill -9' if kill else 'SIGTERM'})")
            for u, b in admitted.items():
                ck.eq(after[u]["admission_expires_at"], b["admission_expires_at"], f"{u}'s admission kept")
            ck.check(after[users[0]]["admitted"] >= len(admitted), "the head is kept")
            st, sale = srv.json("GET", "/api/v1/sales/w")
            ck.eq((sale["queue"], sale["admit_per_second"], sale["admission_ttl_ms"]), ("random", 2, 600000),
                  "the settings are kept")
        u = next(iter(admitted))
        st, b = buy(srv, "w", u, admitted[u]["admission"])
        ck.eq(st, 201, "an admission from before the restart still buys")
    finally:
        srv.close()


def read_events(srv, path, want, limit_s=15):
    """Reads SSE events of a stream until want(events) or the limit; returns them."""
    s = socket.create_connection((srv.host, srv.port), timeout=1)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buf, events, deadline = b"", [], time.time() + limit_s
    while time.time() < deadline and not want(events):
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            lines = block.decode().splitlines()
            name = next((x[7:] for x in lines if x.startswith("event: ")), None)
            data = next((x[6:] for x in lines if x.startswith("data: ")), None)
            if name and data:
                events.append((name, json.loads(data)))
    s.close()
    return events


def test_sse(ck):
    with server() as srv:
        start = now_ms() + 1500
        create(srv, "e", 10, starts_at=start, queue="fifo", admit_per_second=2, admission_ttl_ms=60000)
        for i in range(4):
            join(srv, "e", f"e{i}")
        ev = read_events(srv, "/api/v1/sales/e/queue/events?user_id=e3",
                         lambda evs: any(e[1]["admission"] for e in evs))
        ck.check(len(ev) >= 2, f"several events ({len(ev)})")
        ck.eq(ev[0][1]["position"], 4, "the first event has the place")
        aheads = [e[1]["ahead"] for e in ev]
        ck.check(aheads == sorted(aheads, reverse=True) and aheads[0] == 3, f"ahead only goes down: {aheads}")
        ck.check(ev[-1][1]["state"] == "admitted" and ev[-1][1]["admission"], "the admission arrives over SSE")
        st, b = buy(srv, "e", "e3", ev[-1][1]["admission"])
        ck.eq(st, 201, "and it buys")
        ev = read_events(srv, "/api/v1/sales/e/queue/events?user_id=nobody", lambda evs: len(evs) >= 1, limit_s=5)
        ck.check(ev and ev[0][0] == "error" and ev[0][1]["error"] == "not_in_queue", "a stranger hears not_in_queue")
        st, b = srv.json("GET", "/api/v1/sales/e/queue/events")
        ck.eq((st, b["field"]), (400, "user_id"), "user_id is required")


def test_pow(ck):
    with server() as srv:
        create(srv, "p", 10, starts_at=now_ms() - 1000, queue="fifo", pow_bits=8)
        st, b = join(srv, "p", "solver")
        ck.eq((st, b["error"], b["bits"]), (403, "pow_required", 8), "a join without work: pow_required")
        ch = b["challenge"]
        nonce = next(str(n) for n in range(1 << 20)
                     if int.from_bytes(hashlib.sha256((ch + str(n)).encode()).digest()[:2], "big") >> 8 == 0)
        st, b = join(srv, "p", "solver", pow={"challenge": ch, "nonce": "0" if nonce != "0" else "1"})
        ck.check(st == 403 and b["error"] == "bad_pow" or st == 202, "a wrong nonce: bad_pow (unless lucky)")
        st, b = join(srv, "p", "solver", pow={"challenge": ch, "nonce": nonce})
        ck.eq((st, b["position"]), (202, 1), "with the work: joined")
        st, b = join(srv, "p", "solver")
        ck.eq(st, 202, "asking again needs no new work")
        st, b = join(srv, "p", "other", pow={"challenge": ch, "nonce": nonce})
        ck.eq((st, b.get("error")), (403, "bad_pow"), "another user's work does not count")


def test_settings(ck):
    with server() as srv:
        start = now_ms() + 60000
        for body, field in [({"queue": "lifo"}, "queue"), ({"admit_per_second": 0}, "admit_per_second"),
                            ({"admission_ttl_ms": 10}, "admission_ttl_ms"), ({"pow_bits": 99}, "pow_bits"),
                            ({"queue_opens_at": start + 1}, "queue_opens_at")]:
            b = {"id": "bad", "stock": 1, "starts_at": start}
            b.update(body)
            st, r = srv.json("POST", "/api/v1/sales", b)
            ck.eq((st, r.get("field")), (400, field), f"refused: {body}")
        create(srv, "k", 5, starts_at=start, queue_opens_at=start - 30000)
        st, r = join(srv, "k", "x")
        ck.eq((st, r.get("error")), (409, "no_queue"), "queue off by default")
        st, r = srv.json("PATCH", "/api/v1/sales/k", {"request_id": "p1", "queue": "fifo", "admit_per_second": 7})
        ck.eq(st, 200, "PATCH turns the queue on before the start")
        st, r = join(srv, "k", "x")
        ck.eq((st, r.get("error")), (425, "queue_not_open"), "before queue_opens_at: 425")
        create(srv, "live", 5, starts_at=now_ms() - 1000, queue="fifo")
        st, r = srv.json("PATCH", "/api/v1/sales/live", {"request_id": "p2", "queue": "off"})
        ck.eq((st, r.get("error")), (409, "started"), "the queue cannot be turned off once started")
        st, r = srv.json("PATCH", "/api/v1/sales/live", {"request_id": "p3", "admit_per_second": 50,
                                                         "admission_ttl_ms": 5000, "pow_bits": 4})
        ck.eq(st, 200, "rate, ttl and pow change any time")
        srv.stop()
        srv.start()
        st, s = srv.json("GET", "/api/v1/sales/live")
        ck.eq((s["admit_per_second"], s["admission_ttl_ms"], s["pow_bits"]), (50, 5000, 4), "PATCHed settings kept")
        st, s = srv.json("GET", "/api/v1/sales/k")
        ck.eq((s["queue"], s["admit_per_second"]), ("fifo", 7), "PATCHed queue kept")


if __name__ == "__main__":
    sklib.run_tests([test_fifo_order_and_admission, test_not_admitted, test_admission_before_the_sale_state,
                     test_random_order, test_sell_out_and_returns, test_restart_while_waiting, test_sse, test_pow,
                     test_settings])
