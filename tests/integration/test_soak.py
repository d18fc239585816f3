#!/usr/bin/env python3
"""Hostile clients against a live sale: the node stays up and loses no confirmation.

Hundreds of concurrent connections run random scenarios against `seckill serve`:
pipelined purchases, event streams opened and dropped, purchases followed by a stream on
the same connection, HEAD on the stream route, heads and bodies cut at random points,
resets (SO_LINGER 0) before, during and after the ledger's answer, half-closes, slow
readers, stalled writers, retries of a reset purchase, and a little garbage. Sales sell
out one after the other during the run (a new one opens when the current one is gone),
so purchases are in flight at every moment, the sell-out included.

Afterwards: the node answers /healthz; every 201 (and every 200 duplicate) a client saw
is in the store (the full order listing of each sale, and the per-user listing for a
sample); no sale holds more orders than its stock, no user more than one order, a sale
seen sold out holds exactly its stock; answers on a connection came in request order and
a stream never overtook them; a SIGTERM with connections still busy exits 0; the log
holds no sanitizer report and no "still registered" line from the event loop.

Seeded: the seed is printed and SECKILL_SOAK_SEED=<n> replays the clients' choices (the
server's timing still varies). Bounded: SECKILL_SOAK_SECONDS of traffic (default 40),
at most CONCURRENCY connections at once, and every wait has a deadline."""
import collections
import errno
import heapq
import json
import os
import random
import selectors
import socket
import struct
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sklib import SANITIZED, Server  # noqa: E402

SEED = int(os.environ.get("SECKILL_SOAK_SEED") or random.SystemRandom().randrange(1 << 32))
SECONDS = float(os.environ.get("SECKILL_SOAK_SECONDS", "40"))
CONCURRENCY = 300
STOCK = 1000  # units per sale: many sales sell out during a run
MAX_SALES = 2000
SLOW = 3 if SANITIZED else 1
ANSWER_WAIT = 15 * SLOW  # an answer the server owes must come within this
HEADER_TIMEOUT_MS = 1000  # the server's, so that cut requests meet the sweep in the run
IDLE_TIMEOUT_MS = 2000
PURCHASE_STATUSES = (200, 201, 409, 429)


class Stats:
    def __init__(self):
        self.c = collections.Counter()
        self.violations = []

    def violation(self, what):
        self.c["violations"] += 1
        if len(self.violations) < 30:
            self.violations.append(what)
            print(f"VIOLATION: {what}", flush=True)


ST = Stats()


# ---- a tiny scheduler: each connection is a generator that yields what it waits for -----

class Sched:
    """Runs generator tasks. A task yields ("read"|"write", sock, deadline), resumed with
    True when the socket is ready and False at the deadline, or ("sleep", seconds)."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.timers = []
        self.seq = 0
        self.ready = collections.deque()
        self.live = 0

    def spawn(self, gen):
        self.live += 1
        self.ready.append(([gen, 0, None], None))

    def _step(self, task, value):
        gen = task[0]
        try:
            op = gen.send(value)
        except StopIteration:
            self.live -= 1
            return
        except Exception:  # noqa: BLE001 - a broken client script is a test failure
            self.live -= 1
            ST.violation("client task raised:\n" + traceback.format_exc())
            return
        task[1] += 1
        self.seq += 1
        if op[0] == "sleep":
            heapq.heappush(self.timers, (time.monotonic() + op[1], self.seq, task, task[1]))
            return
        kind, sock, deadline = op
        self.sel.register(sock, selectors.EVENT_READ if kind == "read" else selectors.EVENT_WRITE, task)
        task[2] = sock
        heapq.heappush(self.timers, (deadline, self.seq, task, task[1]))

    def run_once(self):
        while self.ready:
            task, value = self.ready.popleft()
            self._step(task, value)
        timeout = 0.05
        if self.timers:
            timeout = max(0.0, min(timeout, self.timers[0][0] - time.monotonic()))
        for key, _ in self.sel.select(timeout):
            task = key.data
            self.sel.unregister(task[2])
            task[2] = None
            task[1] += 1  # the deadline no longer applies
            self._step(task, True)
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, task, token = heapq.heappop(self.timers)
            if token != task[1]:
                continue
            if task[2] is not None:
                self.sel.unregister(task[2])
                task[2] = None
                self._step(task, False)
            else:
                self._step(task, None)


# ---- one client connection ----------------------------------------------------------------

class Resp:
    def __init__(self, status, headers, body, stream=False):
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def parse_response(buf, head=False):
    """(Resp, bytes used) for the response at the start of buf, or None if incomplete.
    An event stream has no length: its body is everything that follows its head."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0]!r}")
    headers = {}
    for ln in lines[1:]:
        name, _, value = ln.partition(":")
        headers[name.strip().lower()] = value.strip()
    start = end + 4
    status = int(parts[1])
    if head or status == 100:
        return Resp(status, headers, b""), start
    if headers.get("content-type", "").startswith("text/event-stream") and "content-length" not in headers:
        return Resp(status, headers, buf[start:], stream=True), len(buf)
    n = int(headers.get("content-length", "-1"))
    if n < 0:
        raise ValueError(f"answer without a length: {buf[:200]!r}")
    if len(buf) < start + n:
        return None
    return Resp(status, headers, buf[start:start + n]), start + n


class Conn:
    def __init__(self, port):
        self.port = port
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.setblocking(False)
        self.buf = b""
        self.eof = False  # the server closed (FIN, RST or error)
        self.gone = False  # we closed
        ST.c["connections"] += 1

    def connect(self):
        rc = self.s.connect_ex(("127.0.0.1", self.port))
        if rc not in (0, errno.EINPROGRESS):
            return False
        ok = yield ("write", self.s, time.monotonic() + ANSWER_WAIT)
        return bool(ok) and self.s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0

    def send(self, data, requests=0):
        """Sends everything; False when the server closed or stopped reading for good."""
        view = memoryview(data)
        deadline = time.monotonic() + ANSWER_WAIT
        while view:
            try:
                n = self.s.send(view)
            except BlockingIOError:
                if not (yield ("write", self.s, deadline)):
                    return False
                continue
            except OSError:
                self.eof = True
                return False
            view = view[n:]
        ST.c["requests"] += requests
        return True

    def fill(self, deadline):
        """Reads what is there (waiting until the deadline); False at EOF or timeout."""
        while not self.eof:
            try:
                chunk = self.s.recv(262144)
            except BlockingIOError:
                if not (yield ("read", self.s, deadline)):
                    return False
                continue
            except OSError:
                self.eof = True
                return False
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
            return True
        return False

    def response(self, head=False, wait=ANSWER_WAIT):
        deadline = time.monotonic() + wait
        while True:
            got = parse_response(self.buf, head)
            if got:
                resp, used = got
                self.buf = self.buf[used:]
                if resp.status == 100:
                    continue
                return resp
            if not (yield from self.fill(deadline)):
                return None

    def drain(self, wait):
        """Reads until EOF or `wait` seconds; True at EOF."""
        deadline = time.monotonic() + wait
        while not self.eof and time.monotonic() < deadline:
            yield from self.fill(deadline)
        return self.eof

    def rst(self):
        if self.gone:
            return
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()
        self.gone = True
        ST.c["resets"] += 1

    def close(self):
        if not self.gone:
            self.s.close()
            self.gone = True


# ---- the sales and what the clients were told ---------------------------------------------

class World:
    def __init__(self, srv, rng):
        self.srv = srv
        self.rng = rng
        self.sales = []
        self.sold_out = set()
        self.confirmed = {}  # (sale, user) -> order id
        self.next_user = 0
        self.new_sale()

    def new_sale(self):
        sid = f"soak{len(self.sales)}"
        now = int(time.time() * 1000)
        st, doc = self.srv.json("POST", "/api/v1/sales", {"id": sid, "name": sid, "stock": STOCK,
                                                           "starts_at": now - 1000, "ends_at": now + 3600 * 1000,
                                                           "per_user_limit": 1})
        assert st == 201, (st, doc)
        self.sales.append(sid)

    @property
    def current(self):
        return self.sales[-1]

    def user(self):
        self.next_user += 1
        return f"u{self.next_user}"

    def saw_sold_out(self, sale):
        self.sold_out.add(sale)
        if sale == self.current and len(self.sales) < MAX_SALES:
            self.new_sale()

    def purchase(self, sale, user, rid, resp, what):
        """Judges a purchase answer and remembers every confirmation."""
        doc = resp.json()
        if resp.status not in PURCHASE_STATUSES or not isinstance(doc, dict):
            ST.violation(f"{what}: purchase answered {resp.status} {resp.body[:200]!r}")
            return
        ST.c[f"purchase_{resp.status}"] += 1
        if resp.status in (200, 201):
            want = "confirmed" if resp.status == 201 else "duplicate"
            order = doc.get("order_id")
            if doc.get("result") != want or not isinstance(order, str):
                ST.violation(f"{what}: {resp.status} body {doc}")
                return
            first = self.confirmed.setdefault((sale, user), order)
            if first != order:
                ST.violation(f"{what}: {user} in {sale} was told two orders, {first} and {order}")
        elif resp.status == 409:
            if doc.get("error") == "sold_out":
                self.saw_sold_out(sale)
            elif doc.get("error") != "limit_reached":
                ST.violation(f"{what}: 409 {doc}")


W = None  # the World of the run


def purchase_req(sale, user, rid, form=False):
    if form:
        body = f"user_id={user}&request_id={rid}".encode()
        ctype = "application/x-www-form-urlencoded"
    else:
        body = json.dumps({"user_id": user, "request_id": rid}).encode()
        ctype = "application/json"
    return (f"POST /api/v1/sales/{sale}/purchase HTTP/1.1\r\nHost: soak\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def get_req(path, method="GET"):
    return f"{method} {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode()


def new_purchase(rng):
    sale, user = W.current, W.user()
    rid = f"r{rng.randrange(1 << 30)}"
    return sale, user, rid, purchase_req(sale, user, rid, form=rng.random() < 0.2)


# ---- scenarios ----------------------------------------------------------------------------

def sc_pipelined(rng, port):
    """Pipelined purchases (with a GET or two among them), then one of several endings:
    read everything; reset before, during or after the ledger's answer; half-close."""
    c = Conn(port)
    if not (yield from c.connect()):
        return
    for rnd in range(rng.randint(1, 3)):
        reqs, data = [], b""
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.15:
                reqs.append(("get", None))
                data += get_req(rng.choice(["/healthz", f"/api/v1/sales/{W.current}"]))
            else:
                sale, user, rid, raw = new_purchase(rng)
                reqs.append(("buy", (sale, user, rid)))
                data += raw
        end = rng.choice(["read", "read", "rst_before", "rst_during", "rst_after_some", "half_close"])
        if not (yield from c.send(data, len(reqs))):
            c.close()
            return
        if end == "rst_before":
            c.rst()
            return
        if end == "rst_during":
            yield ("sleep", rng.random() * 0.004)
            c.rst()
            return
        if end == "half_close":
            c.s.shutdown(socket.SHUT_WR)
            ST.c["half_closes"] += 1
        upto = len(reqs) if end != "rst_after_some" else rng.randint(1, len(reqs))
        for i in range(upto):
            r = yield from c.response()
            if r is None:
                ST.violation(f"pipelined: answer {i + 1} of {len(reqs)} missing (eof={c.eof})")
                c.close()
                return
            if r.stream:
                ST.violation("pipelined: a stream head answered a purchase")
                c.close()
                return
            kind, arg = reqs[i]
            if kind == "buy":
                W.purchase(*arg, r, "pipelined")
            elif r.status != 200:
                ST.violation(f"pipelined GET answered {r.status}")
        if end == "rst_after_some":
            c.rst()
            return
        if end == "half_close":
            if not (yield from c.drain(ANSWER_WAIT)):
                ST.violation("half-closed connection not closed after its answers")
            c.close()
            return
    c.close() if rng.random() < 0.5 else c.rst()


def sc_buy_then_stream(rng, port):
    """Purchases and an event stream pipelined on one connection: every purchase answer
    comes first, then the stream's head (or a refusal), never the other way round."""
    c = Conn(port)
    if not (yield from c.connect()):
        return
    buys, data = [], b""
    for _ in range(rng.randint(1, 4)):
        sale, user, rid, raw = new_purchase(rng)
        buys.append((sale, user, rid))
        data += raw
    data += get_req(f"/api/v1/sales/{W.current}/events")
    if not (yield from c.send(data, len(buys) + 1)):
        c.close()
        return
    if rng.random() < 0.3:
        yield ("sleep", rng.random() * 0.004)
        c.rst()
        return
    for i, b in enumerate(buys):
        r = yield from c.response()
        if r is None:
            ST.violation(f"buy+stream: purchase answer {i + 1} missing")
            c.close()
            return
        if r.stream:
            ST.violation(f"buy+stream: the stream's head overtook purchase answer {i + 1} of {len(buys)}")
            c.close()
            return
        W.purchase(*b, r, "buy+stream")
    r = yield from c.response()
    if r is None:
        ST.violation("buy+stream: no answer to the stream request")
    elif r.stream:
        ST.c["streams"] += 1
        if b"{" in c.buf + r.body and b"HTTP/1.1" in r.body:
            ST.violation("buy+stream: an answer inside the stream")
    elif r.status not in (429, 503):
        ST.violation(f"buy+stream: stream request answered {r.status}")
    yield ("sleep", rng.random() * 0.3)
    c.close() if rng.random() < 0.5 else c.rst()


def sc_stream(rng, port):
    """An event stream held for a while (read, or not read at all), then dropped; or HEAD
    on the stream route, which must answer a head and leave the connection usable."""
    c = Conn(port)
    if not (yield from c.connect()):
        return
    path = f"/api/v1/sales/{rng.choice(W.sales[-3:])}/events"
    if rng.random() < 0.15:
        if not (yield from c.send(get_req(path, "HEAD") + get_req("/healthz"), 2)):
            c.close()
            return
        r = yield from c.response(head=True)
        if r is None or r.status not in (200, 429, 503):
            ST.violation(f"HEAD on the stream route answered {r and r.status}")
        elif r.status == 200:
            r2 = yield from c.response()
            if r2 is None or r2.status != 200 or r2.stream:
                ST.violation(f"HEAD on the stream route started a stream (next answer {r2 and r2.status})")
        c.close()
        return
    if not (yield from c.send(get_req(path), 1)):
        c.close()
        return
    hold = rng.random() * 2.0
    if rng.random() < 0.3:
        yield ("sleep", hold)  # a reader that never reads
    else:
        r = yield from c.response()
        if r is None:
            ST.violation("stream: no answer")
        elif r.stream:
            ST.c["streams"] += 1
            deadline = time.monotonic() + hold
            while time.monotonic() < deadline and (yield from c.fill(deadline)):
                pass
        elif r.status not in (429, 503):
            ST.violation(f"stream answered {r.status}")
    c.close() if rng.random() < 0.5 else c.rst()


def sc_cut(rng, port):
    """A purchase cut inside its head or its body, then reset, closed, or left to the
    server's header timeout (408 or a close, never a hang)."""
    c = Conn(port)
    if not (yield from c.connect()):
        return
    raw = new_purchase(rng)[3]
    head_len = raw.find(b"\r\n\r\n") + 4
    cut = rng.randint(1, head_len - 1) if rng.random() < 0.5 else rng.randint(head_len, len(raw) - 1)
    if not (yield from c.send(raw[:cut])):
        c.close()
        return
    end = rng.choice(["rst", "close", "stall"])
    if end == "rst":
        yield ("sleep", rng.random() * 0.05)
        c.rst()
    elif end == "close":
        c.close()
    else:
        ST.c["stalled_writers"] += 1
        if not (yield from c.drain(HEADER_TIMEOUT_MS / 1000 + 2 + ANSWER_WAIT)):
            ST.violation("a cut request was never timed out")
        elif c.buf and not c.buf.startswith(b"HTTP/1.1 408 "):
            ST.violation(f"a cut request answered {c.buf[:40]!r}")
        c.close()


def sc_slow_reader(rng, port):
    """Many pipelined requests with purchases among them, and a client that does not read
    for a while (past the idle timeout sometimes: the sweep drops it), then reads or resets."""
    c = Conn(port)
    if not (yield from c.connect()):
        return
    reqs, data = [], b""
    for _ in range(rng.randint(20, 120)):
        if rng.random() < 0.1:
            sale, user, rid, raw = new_purchase(rng)
            reqs.append((sale, user, rid))
            data += raw
        else:
            reqs.append(None)
            data += get_req(f"/api/v1/sales/{W.current}")
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    if not (yield from c.send(data, len(reqs))):
        c.close()
        return
    yield ("sleep", rng.random() * (IDLE_TIMEOUT_MS / 1000 + 1.5))
    if rng.random() < 0.4:
        c.rst()
        return
    for b in reqs:
        r = yield from c.response()
        if r is None:
            ST.c["slow_readers_dropped"] += 1  # the server gave up on it: allowed
            break
        if b:
            W.purchase(*b, r, "slow reader")
    c.close()


def sc_retry(rng, port):
    """A purchase reset at once, then retried with the same request id on a new
    connection: the answer is the first one (a confirmation the first may have made)."""
    sale, user, rid, raw = new_purchase(rng)
    c = Conn(port)
    if not (yield from c.connect()):
        return
    if (yield from c.send(raw, 1)):
        yield ("sleep", rng.random() * 0.003)
    c.rst()
    c = Conn(port)
    if not (yield from c.connect()):
        return
    if not (yield from c.send(raw, 1)):
        c.close()
        return
    r = yield from c.response()
    if r is None:
        ST.violation("retry: no answer")
    else:
        W.purchase(sale, user, rid, r, "retry")
        ST.c["retries"] += 1
    c.close()


def sc_garbage(rng, port):
    c = Conn(port)
    if not (yield from c.connect()):
        return
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    if rng.random() < 0.5:
        junk = purchase_req(W.current, "g", "g")[:rng.randint(10, 60)] + junk
    yield from c.send(junk)
    if rng.random() < 0.5:
        c.rst()
        return
    yield from c.drain(HEADER_TIMEOUT_MS / 1000 + 2 + ANSWER_WAIT)
    c.close()


SCENARIOS = [(sc_pipelined, 40), (sc_buy_then_stream, 10), (sc_stream, 12), (sc_cut, 12), (sc_slow_reader, 6),
             (sc_retry, 12), (sc_garbage, 3)]


# ---- the run ------------------------------------------------------------------------------

def busy_at_stop(srv):
    """Connections still busy when SIGTERM arrives: pipelined purchases nobody reads, a
    body that never completes (the drain waits for its grace deadline) and a stream."""
    socks = []
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"".join(purchase_req(W.current, f"stop{i}-{k}", f"s{k}") for k in range(5)))
        socks.append(s)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(purchase_req(W.current, "stop-cut", "x")[:-5])
    socks.append(s)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(get_req(f"/api/v1/sales/{W.current}/events"))
    socks.append(s)
    return socks


def check_store(srv):
    checked = 0
    by_sale = collections.defaultdict(list)
    for (sale, user), order in W.confirmed.items():
        by_sale[sale].append((user, order))
    for sale in W.sales:
        orders = srv.list_orders(sale, limit=1000)
        users = collections.Counter(o["user_id"] for o in orders)
        if len(orders) > STOCK:
            ST.violation(f"{sale}: {len(orders)} orders for a stock of {STOCK}")
        if users and users.most_common(1)[0][1] > 1:
            ST.violation(f"{sale}: a user holds {users.most_common(1)[0][1]} orders (limit 1)")
        if sale in W.sold_out and len(orders) != STOCK:
            ST.violation(f"{sale}: sold out with {len(orders)} orders for a stock of {STOCK}")
        ids = {(o["user_id"], o["order_id"]) for o in orders}
        for user, order in by_sale[sale]:
            checked += 1
            if (user, order) not in ids:
                ST.violation(f"{sale}: confirmed order {order} of {user} is not in the store")
    # The per-user listing, which a client that lost its answer would ask, for a sample.
    sample = W.rng.sample(sorted(W.confirmed.items()), min(200, len(W.confirmed)))
    for (sale, user), order in sample:
        st, doc = srv.json("GET", f"/api/v1/sales/{sale}/orders/{user}")
        got = [o.get("order_id") for o in (doc or {}).get("orders", [])] if st == 200 else None
        if got != [order]:
            ST.violation(f"GET orders of {user} in {sale}: {st} {got}, expected [{order}]")
    return checked


def main():
    global W
    print(f"soak seed {SEED} (replay with SECKILL_SOAK_SEED={SEED}), {SECONDS:.0f} s, "
          f"{CONCURRENCY} connections at once", flush=True)
    rng = random.Random(SEED)
    srv = Server("--header-timeout", str(HEADER_TIMEOUT_MS), "--idle-timeout", str(IDLE_TIMEOUT_MS),
                 "--max-streams-per-ip", "40", "--max-streams", "120", "--stream-lifetime", "1500", threads=2)
    ok = False
    try:
        W = World(srv, rng)
        sched = Sched()
        names = [f for f, _ in SCENARIOS]
        weights = [w for _, w in SCENARIOS]
        t_end = time.monotonic() + SECONDS
        next_check = time.monotonic() + 1
        died = False
        while time.monotonic() < t_end:
            while sched.live < CONCURRENCY:
                sc = rng.choices(names, weights)[0]
                ST.c["scenario_" + sc.__name__[3:]] += 1
                sched.spawn(sc(random.Random(rng.randrange(1 << 62)), srv.port))
            sched.run_once()
            if time.monotonic() >= next_check:
                next_check += 1
                if srv.proc.poll() is not None:
                    died = True
                    break
        # Let every client finish (each wait has its own deadline).
        t_drain = time.monotonic() + ANSWER_WAIT * 3
        while sched.live and not died and time.monotonic() < t_drain:
            sched.run_once()
        if sched.live and not died:
            ST.violation(f"{sched.live} clients still waiting at the end")
        alive = srv.proc.poll() is None
        print("server alive after the run:", alive, flush=True)
        if not alive:
            ST.violation(f"the server died (exit status {srv.proc.returncode})")
        else:
            st, _, _ = srv.request("GET", "/healthz")
            if st != 200:
                ST.violation(f"/healthz answered {st} after the run")
            _, _, m = srv.request("GET", "/metrics")
            for line in m.decode().splitlines():
                if line.startswith(("seckill_sse_streams_total", "seckill_sse_subscribers")):
                    print("server:", line, flush=True)
            checked = check_store(srv)
            ST.c["confirmations_checked"] = checked
            socks = busy_at_stop(srv)
            code = srv.stop(timeout=60)
            for s in socks:
                s.close()
            if code != 0:
                ST.violation(f"exit status {code} after SIGTERM")
        log = srv.output()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "still registered"):
            if bad in log:
                ST.violation(f"server log holds {bad!r}")
        c = ST.c
        print(f"soak counts: connections {c['connections']}, requests {c['requests']}, resets {c['resets']}, "
              f"half-closes {c['half_closes']}, streams {c['streams']}, retries {c['retries']}, "
              f"confirmations checked {c['confirmations_checked']}, sales {len(W.sales)} "
              f"({len(W.sold_out)} sold out)", flush=True)
        print("details:", dict(sorted(c.items())), flush=True)
        # The run did what it claims, or it proves nothing.
        for what, got, least in (("resets", c["resets"], 100), ("confirmations", c["confirmations_checked"], 100),
                                 ("sold-out sales", len(W.sold_out), 1), ("streams", c["streams"], 10),
                                 ("half-closes", c["half_closes"], 10)):
            if alive and got < least:
                ST.violation(f"only {got} {what} in the run (at least {least} expected)")
        ok = not ST.c["violations"]
    finally:
        if not ok:
            sys.stderr.write("--- server output (tail) ---\n" + srv.output()[-8000:])
        srv.close()
    print(f"{'PASS' if ok else 'FAIL'}: seed {SEED}, {ST.c['violations']} violations", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
