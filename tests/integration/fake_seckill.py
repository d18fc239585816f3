"""A small stand-in for the seckill HTTP API (the API of the README), written for the
seckill-bench tests. It can tell the truth, or lie in one chosen way, so the tests can
check that the auditor catches each lie:

  truthful      sells exactly the stock, honours the limit and request ids
  oversell      keeps confirming (and storing) `extra` purchases beyond the stock
  unstored      confirms every `every`-th purchase without storing it (lost)
  double        ignores the per-user limit: a user's second request buys again
  503_after     stores every `every`-th purchase, then answers 503 (I6: in doubt);
                the user's orders endpoint tells the truth about it
  503_hidden    the same, but the user's orders endpoint hides that order
  undersell     answers sold_out once `sell` units are sold, below the stock
  retry503      answers 503 to the first two attempts of each request_id, then
                decides; records how often each request_id was seen
  midclose      on the first attempt of every `every`-th request_id, sends half a
                response and closes the connection (nothing stored)
  pausesell     its trail (GET .../log) says it paused after `after` orders, yet it
                goes on selling
  closesell     the same with a close
  miscount      stores every `every`-th order with one unit more than it confirmed

Purchases may carry a quantity (units, all or nothing, counted against the stock and
the per-user limit); order ids are "<sale>-<seq>" like the real ones.

Everything runs on 127.0.0.1 in a thread; `with FakeSeckill(mode) as f:` starts it and
f.url is its address."""
import json
import re
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


class State:
    def __init__(self, mode, sqlite_path=None, **opts):
        self.mode = mode
        self.opts = opts
        self.ghosts = 0  # confirmations never stored (unstored)
        self.closes = 0  # responses cut short (midclose)
        # Optionally every sale and order is also written to a SQLite file laid out
        # like the embedded store's, for the --audit-sqlite path.
        self.db = None
        if sqlite_path:
            self.db = sqlite3.connect(sqlite_path, isolation_level=None, check_same_thread=False)
            self.db.executescript(
                "CREATE TABLE sales(id TEXT PRIMARY KEY, name TEXT, stock INTEGER, starts_at INTEGER,"
                " ends_at INTEGER, per_user_limit INTEGER, created_at INTEGER);"
                "CREATE TABLE orders(seq INTEGER PRIMARY KEY, sale_id TEXT, order_id TEXT UNIQUE,"
                " user_id TEXT, request_id TEXT, created_at INTEGER, quantity INTEGER NOT NULL DEFAULT 1,"
                " state TEXT NOT NULL DEFAULT 'confirmed');"
                "CREATE TABLE sale_events(lsn INTEGER PRIMARY KEY, sale_id TEXT, after TEXT);")
        self.lock = threading.Lock()
        self.sales = {}
        self.orders = []  # dicts: seq, sale_id, order_id, user_id, request_id, created_at
        self.by_request = {}  # (sale, request_id) -> order
        self.seen = {}  # request_id -> attempts (all modes)
        self.purchases = 0  # decided purchases (for the every-n lies)
        self.hidden = set()  # order ids the user endpoint hides
        self.seq = 0
        self.trail = {}  # sale id -> entries (pausesell, closesell)

    def sale_json(self, s):
        sold = sum(o["quantity"] for o in self.orders if o["sale_id"] == s["id"])
        now = int(time.time() * 1000)
        state = "scheduled" if now < s["starts_at"] else "ended" if now >= s["ends_at"] else "live"
        if state == "live" and sold >= s["stock"]:
            state = "sold_out"
        reported = min(sold, s["stock"]) if self.mode == "oversell" else sold
        return dict(s, sold=reported, remaining=max(0, s["stock"] - sold), state=state, server_time=now)

    def store(self, sale, user, rid, named=True, quantity=1, told=None):
        self.seq += 1
        o = {"seq": self.seq, "sale_id": sale["id"], "order_id": "%s-%010d" % (sale["id"], self.seq),
             "user_id": user, "request_id": rid, "created_at": int(time.time() * 1000), "quantity": quantity,
             "told": told or quantity}
        self.orders.append(o)
        if self.db:
            self.db.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, 'confirmed')",
                            (o["seq"], o["sale_id"], o["order_id"], o["user_id"], o["request_id"], o["created_at"],
                             quantity))
        if named:
            self.by_request[(sale["id"], rid)] = o
        return o


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body leave in two writes; without this, Nagle's algorithm and
        # delayed ACKs add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *a):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def do_GET(self):
        st = self.server.state
        u = urlsplit(self.path)
        parts = [unquote(p) for p in u.path.split("/") if p]
        with st.lock:
            if parts[:3] != ["api", "v1", "sales"] or len(parts) < 4:
                return self.reply(404, {"error": "not_found", "message": self.path})
            s = st.sales.get(parts[3])
            if not s:
                return self.reply(404, {"error": "not_found", "message": "no such sale"})
            if len(parts) == 4:
                return self.reply(200, st.sale_json(s))
            if parts[4:] == ["orders"]:
                q = parse_qs(u.query)
                after = q.get("after", [None])[0]
                limit = int(q.get("limit", ["1000"])[0])
                mine = sorted((o for o in st.orders if o["sale_id"] == s["id"]), key=lambda o: o["order_id"])
                if after:
                    mine = [o for o in mine if o["order_id"] > after]
                page = mine[:limit]
                nxt = page[-1]["order_id"] if len(mine) > limit else None
                return self.reply(200, {"orders": [
                    dict({k: o[k] for k in ("order_id", "user_id", "request_id", "created_at", "quantity")},
                         state="confirmed") for o in page],
                    "next": nxt})
            if parts[4:] == ["log"]:
                if s["id"] not in st.trail:
                    return self.reply(404, {"error": "not_found", "message": "no trail"})
                return self.reply(200, {"sale_id": s["id"], "entries": st.trail[s["id"]]})
            if len(parts) == 6 and parts[4] == "orders":
                user = parts[5]
                mine = [{"order_id": o["order_id"], "request_id": o["request_id"], "created_at": o["created_at"]}
                        for o in st.orders
                        if o["sale_id"] == s["id"] and o["user_id"] == user and o["order_id"] not in st.hidden]
                return self.reply(200, {"sale_id": s["id"], "user_id": user, "orders": mine})
        return self.reply(404, {"error": "not_found", "message": self.path})

    def do_POST(self):
        st = self.server.state
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        b = self.body()
        if b is None:
            return self.reply(400, {"error": "bad_request", "message": "not JSON"})
        if parts == ["api", "v1", "sales"]:
            with st.lock:
                if b["id"] in st.sales:
                    return self.reply(409, {"error": "exists", "message": "sale exists"})
                s = {k: b[k] for k in ("id", "name", "stock", "starts_at", "ends_at", "per_user_limit")}
                st.sales[s["id"]] = s
                if st.db:
                    st.db.execute("INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  (s["id"], s["name"], s["stock"], s["starts_at"], s["ends_at"],
                                   s["per_user_limit"], int(time.time() * 1000)))
                return self.reply(201, st.sale_json(s))
        if len(parts) == 5 and parts[:3] == ["api", "v1", "sales"] and parts[4] == "purchase":
            return self.purchase(st, parts[3], b)
        return self.reply(404, {"error": "not_found", "message": self.path})

    def purchase(self, st, sale_id, b):
        user, rid = b.get("user_id"), b.get("request_id")
        mode, opts = st.mode, st.opts
        with st.lock:
            s = st.sales.get(sale_id)
            if not s:
                return self.reply(404, {"error": "not_found", "message": "no such sale"})
            st.seen[rid] = st.seen.get(rid, 0) + 1
            attempt = st.seen[rid]
            if mode == "retry503" and attempt <= 2:
                return self.reply(503, {"error": "unavailable", "message": "try again"})
            if mode == "midclose" and attempt == 1 and int(re.sub(r"\D", "", rid.split("-")[-1]) or 0) % opts.get("every", 4) == 0:
                st.closes += 1
                self.wfile.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/js")
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            now = int(time.time() * 1000)
            if now < s["starts_at"]:
                return self.reply(425, {"error": "not_started", "message": "not yet", "starts_in_ms": s["starts_at"] - now})
            if now >= s["ends_at"]:
                return self.reply(410, {"error": "ended", "message": "over"})
            prev = st.by_request.get((sale_id, rid))
            if prev:
                return self.reply(200, {"result": "duplicate", "order_id": prev["order_id"], "remaining": 0,
                                        "quantity": prev["told"]})
            q = int(b.get("quantity", 1))
            held = [o for o in st.orders if o["sale_id"] == sale_id and o["user_id"] == user]
            if sum(o["quantity"] for o in held) + q > s["per_user_limit"] and mode != "double":
                return self.reply(409, {"error": "limit_reached", "message": "limit", "order_id": held[0]["order_id"],
                                        "held": sum(o["quantity"] for o in held)})
            sold = sum(o["quantity"] for o in st.orders if o["sale_id"] == sale_id)
            cap = s["stock"]
            if mode == "oversell":
                cap += opts.get("extra", 5)
            if mode == "undersell":
                cap = opts.get("sell", s["stock"] // 2)
            if sold + q > cap:
                return self.reply(409, {"error": "sold_out", "message": "sold out", "remaining": max(0, cap - sold)})
            st.purchases += 1
            every = opts.get("every", 5)
            if mode == "unstored" and st.purchases % every == 0:
                st.seq += 1
                st.ghosts += 1
                return self.reply(201, {"result": "confirmed", "order_id": "ghost%d" % st.seq, "remaining": 0})
            if mode in ("503_after", "503_hidden") and st.purchases % every == 0:
                o = st.store(s, user, rid)
                if mode == "503_hidden":
                    st.hidden.add(o["order_id"])
                return self.reply(503, {"error": "unavailable", "message": "backend down"})
            n_orders = sum(1 for o in st.orders if o["sale_id"] == sale_id)
            if mode in ("pausesell", "closesell") and n_orders == opts.get("after", 10) and sale_id not in st.trail:
                snap = {"stock": s["stock"], "sold": sold, "held": 0, "orders": n_orders}
                st.trail[sale_id] = [{"seq": 1, "action": "pause" if mode == "pausesell" else "close",
                                      "at": max([now] + [o["created_at"] for o in st.orders]),
                                      "before": snap, "after": snap}]
            stored = q + 1 if mode == "miscount" and st.purchases % every == 0 else q
            o = st.store(s, user, rid, quantity=stored, told=q)
            return self.reply(201, {"result": "confirmed", "order_id": o["order_id"], "quantity": q,
                                    "remaining": max(0, s["stock"] - sold - q)})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the default 5 drops SYNs when a crowd connects at once


class FakeSeckill:
    def __init__(self, mode="truthful", sqlite_path=None, **opts):
        self.state = State(mode, sqlite_path, **opts)
        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.state = self.state
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class PipelineCounter:
    """A raw socket server answering `GET` requests with 200, recording how many complete
    requests each recv() delivered (to see that the client pipelines)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.per_recv = []
        self.total = 0
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def conn(self, c):
        buf = b""
        c.settimeout(10)
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                n = 0
                out = b""
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    n += 1
                    out += b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                self.per_recv.append(n)
                self.total += n
                c.sendall(out)
        except OSError:
            pass
        finally:
            c.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.sock.close()
