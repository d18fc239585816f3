"""A small stand-in for the seckill HTTP API (the API of the README), written for the
seckill-bench tests. It can tell the truth, or lie in one chosen way, so the tests can
check that the auditor catches each lie:

  truthful      sells exactly the stock, honours the limit and request ids; with a
                payment window, reserves, confirms payments made by pay_by, cancels,
                and expires unpaid reservations at pay_by, returning their units
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
  trailing      reports one unit fewer sold (and one more remaining) than it stores, as
                a cluster node whose counts trail the store by a moment: not a lie the
                audit judges from the store's own counts without payment windows
  pausesell     its trail (GET .../log) says it paused after `after` orders, yet it
                goes on selling
  closesell     the same with a close
  miscount      stores every `every`-th order with one unit more than it confirmed
The order lifecycle's lies (a sale with payment_window_ms):
  late_confirm  confirms payments up to 5 s after pay_by (and expires only then)
  no_expiry     never expires a reservation; a late payment is refused all the same
  double_return returns a cancelled order's units twice (and journals a second return)
  cancel_lie    answers a cancel "cancelled" but keeps the reservation, which expires
  no_resell     once any unit came back, answers sold_out to everyone
  early_expire  expires reservations halfway through their window
  oversell_held reserves `extra` units beyond the stock
  cancel_sold   counts a cancelled order's units as sold instead of returning them: every
                read adds up, but the sale's counts disagree with its orders' states

Purchases may carry a quantity (units, all or nothing, counted against the stock and
the per-user limit); order ids are "<sale>-<seq>" like the real ones.

Payments must carry X-Seckill-Signature (HMAC-SHA256 of the body keyed by `secret`,
b"fake-key" by default) or the admin token "adm". With sqlite_path every sale, order
and transition is also written to a SQLite file laid out like the embedded store's
journal (sales, order_batches, order_events, sale_events — left empty — and orders with
each order's state).

Everything runs on 127.0.0.1 in a thread; `with FakeSeckill(mode) as f:` starts it and
f.url is its address."""
import hashlib
import hmac
import json
import re
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

ACTIVE = ("reserved", "confirmed")
RETURNED = ("cancelled", "expired", "refunded")


def now_ms():
    return int(time.time() * 1000)


class State:
    def __init__(self, mode, sqlite_path=None, **opts):
        self.mode = mode
        self.opts = opts
        self.secret = opts.get("secret", b"fake-key")
        self.ghosts = 0  # confirmations never stored (unstored)
        self.closes = 0  # responses cut short (midclose)
        self.pays = []  # (order_id, signed) of every payment received
        self.db = None
        if sqlite_path:
            self.db = sqlite3.connect(sqlite_path, isolation_level=None, check_same_thread=False)
            self.db.executescript(
                "CREATE TABLE sales(id TEXT PRIMARY KEY, name TEXT, stock INTEGER, starts_at INTEGER,"
                " ends_at INTEGER, per_user_limit INTEGER, created_at INTEGER, max_quantity INTEGER,"
                " payment_window_ms INTEGER);"
                "CREATE TABLE order_batches(lsn INTEGER PRIMARY KEY, sale_id TEXT, first_seq INTEGER, n INTEGER,"
                " created_at INTEGER, pay_by INTEGER, orders TEXT);"
                "CREATE TABLE order_events(lsn INTEGER PRIMARY KEY, sale_id TEXT, kind TEXT, at INTEGER,"
                " events TEXT);"
                "CREATE TABLE orders(seq INTEGER, sale_id TEXT, order_id TEXT UNIQUE, user_id TEXT,"
                " request_id TEXT, quantity INTEGER, state TEXT, created_at INTEGER, pay_by INTEGER,"
                " payment_id TEXT, paid_at INTEGER, closed_at INTEGER);"
                "CREATE TABLE sale_events(lsn INTEGER PRIMARY KEY, sale_id TEXT, after TEXT);")
        self.lsn = 0
        self.lock = threading.Lock()
        self.sales = {}
        self.orders = []  # dicts: seq, sale_id, order_id, user_id, request_id, quantity, state, times
        self.by_request = {}  # (sale, request_id) -> order
        self.seen = {}  # request_id -> attempts (all modes)
        self.purchases = 0  # decided purchases (for the every-n lies)
        self.hidden = set()  # order ids the user endpoint hides
        self.extra_returned = {}  # sale -> units returned twice (double_return)
        self.returned_any = set()  # sales where a unit came back (no_resell)
        self.seq = 0
        self.trail = {}  # sale id -> entries (pausesell, closesell)
        self.queues = {}  # sale id -> users in queue order (a fifo waiting room)
        self.admitted = {}  # (sale, user) -> (admitted_at, token)

    # ---- counts ----
    def units(self, sale_id, states):
        return sum(o["quantity"] for o in self.orders if o["sale_id"] == sale_id and o["state"] in states)

    def counts(self, s):
        held = self.units(s["id"], ("reserved",))
        sold = self.units(s["id"], ("confirmed",))
        if self.mode == "cancel_sold":
            sold += self.units(s["id"], ("cancelled",))
        remaining = s["stock"] - held - sold + self.extra_returned.get(s["id"], 0)
        return held, sold, remaining

    def sale_json(self, s):
        self.expire_due()
        held, sold, remaining = self.counts(s)
        now = now_ms()
        state = "scheduled" if now < s["starts_at"] else "ended" if now >= s["ends_at"] else "live"
        if state == "live" and remaining <= 0:
            state = "sold_out"
        if self.mode == "oversell":
            return dict(s, sold=min(sold, s["stock"]), held=0, remaining=max(0, s["stock"] - sold), state=state,
                        server_time=now)
        if self.mode == "oversell_held":
            remaining = max(0, remaining)  # it hides the extra units, but not its held
        if self.mode == "trailing" and sold > 0:
            sold, remaining = sold - 1, remaining + 1
        return dict(s, sold=sold, held=held, remaining=remaining, state=state, server_time=now)

    # ---- the journal ----
    def journal(self, sql, args):
        if self.db:
            self.db.execute(sql, args)

    def next_lsn(self):
        self.lsn += 1
        return self.lsn

    def log_event(self, o, kind):
        self.journal("INSERT INTO order_events VALUES (?, ?, ?, ?, ?)",
                     (self.next_lsn(), o["sale_id"], kind, now_ms(), json.dumps([[o["seq"]]])))

    def save_state(self, o):
        self.journal("UPDATE orders SET state = ?, payment_id = ?, paid_at = ?, closed_at = ? WHERE order_id = ?",
                     (o["state"], o.get("payment_id"), o.get("paid_at"), o.get("closed_at"), o["order_id"]))

    def store(self, sale, user, rid, named=True, quantity=1, told=None):
        self.seq += 1
        window = sale.get("payment_window_ms", 0)
        now = now_ms()
        o = {"seq": self.seq, "sale_id": sale["id"], "order_id": "%s-%010d" % (sale["id"], self.seq),
             "user_id": user, "request_id": rid, "created_at": now, "quantity": quantity, "told": told or quantity,
             "state": "reserved" if window else "confirmed", "pay_by": now + window if window else None,
             "payment_id": None, "paid_at": None, "closed_at": None}
        self.orders.append(o)
        self.journal("INSERT INTO order_batches VALUES (?, ?, ?, 1, ?, ?, ?)",
                     (self.next_lsn(), o["sale_id"], o["seq"], now, o["pay_by"],
                      json.dumps([[user, rid] + ([quantity] if quantity != 1 else [])])))
        self.journal("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                     (o["seq"], o["sale_id"], o["order_id"], user, rid, quantity, o["state"], now, o["pay_by"]))
        if named:
            self.by_request[(sale["id"], rid)] = o
        return o

    # ---- transitions ----
    def expire_due(self):
        if self.mode == "no_expiry":
            return
        now = now_ms()
        for o in self.orders:
            if o["state"] != "reserved":
                continue
            due = o["pay_by"]
            if self.mode == "late_confirm":
                due += 5000
            elif self.mode == "early_expire":
                s = self.sales[o["sale_id"]]
                due = o["created_at"] + s["payment_window_ms"] // 2
            if now > due:
                o["state"] = "expired"
                o["closed_at"] = now
                self.returned_any.add(o["sale_id"])
                self.log_event(o, "expire")
                self.save_state(o)

    def order_fields(self, o, with_user=True):
        keys = ["order_id", "sale_id", "request_id", "quantity", "state", "created_at", "pay_by", "payment_id",
                "paid_at", "closed_at"]
        d = {k: o[k] for k in keys}
        if with_user:
            d["user_id"] = o["user_id"]
        return d


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

    def do_GET(self):
        st = self.server.state
        u = urlsplit(self.path)
        parts = [unquote(p) for p in u.path.split("/") if p]
        with st.lock:
            st.expire_due()
            if parts[:3] == ["api", "v1", "orders"] and len(parts) == 4:
                o = next((o for o in st.orders if o["order_id"] == parts[3]), None)
                if not o:
                    return self.reply(404, {"error": "unknown_order", "message": "no such order"})
                return self.reply(200, st.order_fields(o))
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
                return self.reply(200, {"orders": [st.order_fields(o) for o in page], "next": nxt})
            if parts[4:] == ["log"]:
                if s["id"] not in st.trail:
                    return self.reply(404, {"error": "not_found", "message": "no trail"})
                return self.reply(200, {"sale_id": s["id"], "entries": st.trail[s["id"]]})
            if len(parts) == 6 and parts[4] == "orders":
                user = parts[5]
                mine = [st.order_fields(o, False) for o in st.orders
                        if o["sale_id"] == s["id"] and o["user_id"] == user and o["order_id"] not in st.hidden]
                return self.reply(200, {"sale_id": s["id"], "user_id": user, "orders": mine})
        return self.reply(404, {"error": "not_found", "message": self.path})

    def do_POST(self):
        st = self.server.state
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        raw = self.raw_body()
        try:
            b = json.loads(raw or b"{}")
        except ValueError:
            return self.reply(400, {"error": "bad_request", "message": "not JSON"})
        if parts == ["api", "v1", "sales"]:
            with st.lock:
                if b["id"] in st.sales:
                    return self.reply(409, {"error": "exists", "message": "sale exists"})
                s = {k: b[k] for k in ("id", "name", "stock", "starts_at", "ends_at", "per_user_limit")}
                s["payment_window_ms"] = b.get("payment_window_ms", 0)
                s["max_quantity"] = b.get("max_quantity", 1)
                if b.get("queue") in ("fifo", "random"):
                    s["queue"] = b["queue"]
                    s["admit_per_second"] = b.get("admit_per_second", 100)
                    s["admission_ttl_ms"] = b.get("admission_ttl_ms", 120000)
                    st.queues[s["id"]] = []
                st.sales[s["id"]] = s
                st.journal("INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (s["id"], s["name"], s["stock"], s["starts_at"], s["ends_at"], s["per_user_limit"],
                            now_ms(), s["max_quantity"], s["payment_window_ms"]))
                return self.reply(201, st.sale_json(s))
        if len(parts) == 5 and parts[:3] == ["api", "v1", "sales"] and parts[4] == "queue":
            return self.queue(st, parts[3], b)
        if len(parts) == 5 and parts[:3] == ["api", "v1", "sales"] and parts[4] == "purchase":
            return self.purchase(st, parts[3], b)
        if len(parts) == 5 and parts[:3] == ["api", "v1", "orders"] and parts[4] in ("pay", "cancel"):
            with st.lock:
                st.expire_due()
                o = next((o for o in st.orders if o["order_id"] == parts[3]), None)
                if not o:
                    return self.reply(404, {"error": "unknown_order", "message": "no such order"})
                if parts[4] == "pay":
                    return self.pay(st, o, b, raw)
                return self.cancel(st, o, b)
        return self.reply(404, {"error": "not_found", "message": self.path})

    def raw_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def pay(self, st, o, b, raw):
        sig = self.headers.get("X-Seckill-Signature", "")
        good = "sha256=" + hmac.new(st.secret, raw, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(sig, good)
        st.pays.append((o["order_id"], signed))
        if not signed and self.headers.get("Authorization") != "Bearer adm":
            return self.reply(401, {"error": "unauthorized", "message": "bad signature"})
        pid = b.get("payment_id")
        now = now_ms()
        if o["state"] == "confirmed":
            if o["payment_id"] == pid:
                return self.reply(200, dict(st.order_fields(o), result="duplicate"))
            return self.reply(409, dict(st.order_fields(o), error="already_paid", message="paid"))
        if o["state"] != "reserved":
            return self.reply(409, dict(st.order_fields(o), error=o["state"], message="not reserved"))
        late = now > o["pay_by"]
        if late and st.mode != "late_confirm":
            if st.mode != "no_expiry":
                o["state"], o["closed_at"] = "expired", now
                st.returned_any.add(o["sale_id"])
                st.log_event(o, "expire")
                st.save_state(o)
            return self.reply(409, dict(st.order_fields(o), error="expired", message="too late"))
        o["state"], o["payment_id"], o["paid_at"] = "confirmed", pid, now
        st.log_event(o, "pay")
        st.save_state(o)
        return self.reply(200, dict(st.order_fields(o), result="confirmed"))

    def cancel(self, st, o, b):
        if b.get("user_id") != o["user_id"]:
            return self.reply(403, {"error": "forbidden", "message": "not yours"})
        if o["state"] != "reserved":
            return self.reply(409, dict(st.order_fields(o), error="not_reserved", message="not reserved"))
        if st.mode == "cancel_lie":
            return self.reply(200, dict(st.order_fields(o), state="cancelled", result="cancelled"))
        o["state"], o["closed_at"] = "cancelled", now_ms()
        st.returned_any.add(o["sale_id"])
        st.log_event(o, "cancel")
        st.save_state(o)
        if st.mode == "double_return":
            st.extra_returned[o["sale_id"]] = st.extra_returned.get(o["sale_id"], 0) + o["quantity"]
            st.log_event(o, "expire")
        return self.reply(200, dict(st.order_fields(o), result="cancelled"))

    def queue(self, st, sale_id, b):
        """A fifo waiting room: place k is admitted (k - 1) / admit_per_second after the start."""
        user = b.get("user_id")
        with st.lock:
            s = st.sales.get(sale_id)
            if not s or sale_id not in st.queues:
                return self.reply(409, {"error": "no_queue", "message": "no queue"})
            q = st.queues[sale_id]
            if user not in q:
                q.append(user)
            pos = q.index(user) + 1
            now = now_ms()
            due = s["starts_at"] + (pos - 1) * 1000 // s["admit_per_second"]
            ans = {"sale_id": sale_id, "user_id": user, "position": pos, "ahead": 0, "eta_ms": None,
                   "state": "pre_queue" if now < s["starts_at"] else "waiting", "admission": None,
                   "admission_expires_at": None}
            if now >= due:
                if (sale_id, user) not in st.admitted:
                    exp = due + s["admission_ttl_ms"]
                    st.admitted[(sale_id, user)] = (due, "%d.fake-%s" % (exp, user))
                at, tok = st.admitted[(sale_id, user)]
                ans.update(state="admitted", admission=tok, admission_expires_at=at + s["admission_ttl_ms"])
            return self.reply(202, ans)

    def purchase(self, st, sale_id, b):
        user, rid = b.get("user_id"), b.get("request_id")
        q = b.get("quantity", 1)
        mode, opts = st.mode, st.opts
        with st.lock:
            st.expire_due()
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
            now = now_ms()
            # The liar "no_admission" sells to anyone on a queued sale.
            if s.get("queue") and mode != "no_admission":
                adm = st.admitted.get((sale_id, user))
                tok = b.get("admission") or ""
                if not adm or tok != adm[1] or now >= adm[0] + s["admission_ttl_ms"]:
                    return self.reply(403, {"error": "not_admitted", "message": "no admission"})
            if now < s["starts_at"]:
                return self.reply(425, {"error": "not_started", "message": "not yet", "starts_in_ms": s["starts_at"] - now})
            if now >= s["ends_at"]:
                return self.reply(410, {"error": "ended", "message": "over"})
            if q > s["max_quantity"]:
                return self.reply(400, {"error": "bad_request", "message": "quantity", "field": "quantity"})
            prev = st.by_request.get((sale_id, rid))
            if prev:
                return self.reply(200, dict(result="duplicate", order_id=prev["order_id"], state=prev["state"],
                                            quantity=prev["told"], pay_by=prev["pay_by"], remaining=0))
            held = [o for o in st.orders if o["sale_id"] == sale_id and o["user_id"] == user and o["state"] in ACTIVE]
            if sum(o["quantity"] for o in held) + q > s["per_user_limit"] and mode != "double":
                return self.reply(409, {"error": "limit_reached", "message": "limit", "order_id": held[0]["order_id"],
                                        "held": sum(o["quantity"] for o in held)})
            _, _, remaining = st.counts(s)
            if mode == "oversell":
                remaining += opts.get("extra", 5)
            if mode == "oversell_held":
                remaining += opts.get("extra", 3)
            if mode == "undersell":
                remaining = min(remaining, opts.get("sell", s["stock"] // 2) - st.units(sale_id, ACTIVE))
            if mode == "no_resell" and sale_id in st.returned_any:
                remaining = 0
            if remaining < q:
                return self.reply(409, {"error": "sold_out", "message": "sold out", "remaining": max(0, remaining)})
            st.purchases += 1
            every = opts.get("every", 5)
            if mode == "unstored" and st.purchases % every == 0:
                st.seq += 1
                st.ghosts += 1
                return self.reply(201, {"result": "confirmed", "order_id": "ghost%d" % st.seq, "remaining": 0})
            if mode in ("503_after", "503_hidden") and st.purchases % every == 0:
                o = st.store(s, user, rid, quantity=q)
                if mode == "503_hidden":
                    st.hidden.add(o["order_id"])
                return self.reply(503, {"error": "unavailable", "message": "backend down"})
            n_orders = sum(1 for o in st.orders if o["sale_id"] == sale_id)
            if mode in ("pausesell", "closesell") and n_orders == opts.get("after", 10) and sale_id not in st.trail:
                sold = st.units(sale_id, ("confirmed",))
                snap = {"stock": s["stock"], "sold": sold, "held": st.units(sale_id, ("reserved",)), "orders": n_orders}
                st.trail[sale_id] = [{"seq": 1, "action": "pause" if mode == "pausesell" else "close",
                                      "at": max([now] + [o["created_at"] for o in st.orders]),
                                      "before": snap, "after": snap}]
            stored = q + 1 if mode == "miscount" and st.purchases % every == 0 else q
            o = st.store(s, user, rid, quantity=stored, told=q)
            answer = {"result": o["state"], "order_id": o["order_id"], "quantity": q,
                      "remaining": max(0, remaining - q)}
            if o["pay_by"]:
                answer["pay_by"] = o["pay_by"]
            return self.reply(201, answer)


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
