#!/usr/bin/env python3
"""The HTTP server core against a running `seckill serve`: routing errors as JSON, the
limits (431, 413), protocol errors (400, 505, 501, 417), chunked request bodies,
100-continue, keep-alive rules per version, HEAD, pipelining, half-closed clients,
10 000 concurrent connections, slow-loris and idle timeouts, the connection cap,
garbage input, graceful shutdown and /metrics. Everything talks raw sockets to
127.0.0.1 so the bytes on the wire are exactly the ones under test."""
import errno
import json
import os
import random
import resource
import selectors
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sklib import SANITIZED, Server, run_tests  # noqa: E402

SLOW = 3 if SANITIZED else 1  # sanitizer builds run about three times slower
ERROR_STATUSES = (400, 404, 405, 408, 413, 417, 431, 501, 503, 505)


# ---- a small HTTP/1.1 response reader over a raw socket --------------------------------

class Resp:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> value (repeated fields joined by ", ")
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:120]!r}>"


def parse_response(buf, head=False, closed=False):
    """Parses one response at the start of buf: (Resp, bytes used) or None if incomplete.
    A response without Content-Length is delimited by the close (closed=True)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise AssertionError(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    headers = {}
    for ln in lines[1:]:
        name, sep, value = ln.partition(":")
        if not sep:
            raise AssertionError(f"bad header line {ln!r}")
        name = name.lower()
        value = value.strip()
        headers[name] = headers[name] + ", " + value if name in headers else value
    start = end + 4
    if head or 100 <= status < 200 or status in (204, 304):
        return Resp(parts[0], status, parts[2] if len(parts) > 2 else "", headers, b""), start
    if "transfer-encoding" in headers:
        body, pos = b"", start
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";")[0], 16)
            if size == 0:
                fin = buf.find(b"\r\n\r\n", eol)  # the end of the (possibly empty) trailers
                if fin < 0:
                    return None
                return Resp(parts[0], status, parts[2], headers, body), fin + 4
            if len(buf) < eol + 2 + size + 2:
                return None
            body += buf[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(buf) < start + n:
            return None
        return Resp(parts[0], status, parts[2] if len(parts) > 2 else "", headers, buf[start:start + n]), start + n
    if closed:
        return Resp(parts[0], status, parts[2] if len(parts) > 2 else "", headers, buf[start:]), len(buf)
    return None


class Conn:
    """A client connection that keeps unread bytes and remembers whether the server
    closed (FIN or RST)."""

    def __init__(self, srv, timeout=10):
        self.s = socket.create_connection((srv.host, srv.port), timeout=timeout)
        self.buf = b""
        self.closed = False
        self.reset = False
        self.send_failed = False
        self.recvs = 0

    def send(self, data):
        """Sends everything; False when the server closed or stopped reading. An answer
        may still wait in the receive buffer, so the connection is not marked closed."""
        try:
            self.s.settimeout(10 * SLOW)
            self.s.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.send_failed = True
            return False

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.closed:
            return False
        self.s.settimeout(remaining)
        try:
            chunk = self.s.recv(262144)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.closed = self.reset = True
            return False
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ENOTCONN):
                self.closed = self.reset = True
                return False
            raise
        self.recvs += 1
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def response(self, head=False, timeout=10):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            got = parse_response(self.buf, head, self.closed)
            if got:
                resp, used = got
                self.buf = self.buf[used:]
                return resp
            if not self._fill(deadline):
                if self.closed:
                    got = parse_response(self.buf, head, True)
                    if got:
                        self.buf = self.buf[got[1]:]
                        return got[0]
                raise AssertionError(f"no complete response (closed={self.closed}, "
                                     f"reset={self.reset}, have {self.buf[:200]!r})")

    def wait_closed(self, timeout):
        """True when the server closes within timeout; data that arrives is kept."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._fill(deadline)
        return self.closed

    def nothing_more(self, wait=0.3):
        """True when no further byte arrives within `wait` seconds."""
        before = len(self.buf)
        self._fill(time.monotonic() + wait)
        return len(self.buf) == before

    def close(self):
        self.s.close()


def req(method, path, headers=(), body=b"", version="1.1", host=True):
    lines = [f"{method} {path} HTTP/{version}"]
    if host:
        lines.append("Host: 127.0.0.1")
    lines += list(headers)
    if body and not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(data, sizes):
    out, pos = b"", 0
    for n in sizes:
        out += b"%x;ext=1\r\n" % n + data[pos:pos + n] + b"\r\n"
        pos += n
    if pos < len(data):
        out += b"%X\r\n" % (len(data) - pos) + data[pos:] + b"\r\n"
    return out + b"0\r\nX-Trailer: yes\r\n\r\n"


def check_error(ck, resp, status, code=None, what=""):
    """An error answer: the status, a JSON content type and {"error", "message"}."""
    ck.eq(resp.status, status, f"{what} status")
    ck.check(resp.headers.get("content-type", "").startswith("application/json"),
             f"{what}: JSON content type, got {resp.headers.get('content-type')!r}")
    try:
        doc = resp.json()
    except ValueError:
        ck.check(False, f"{what}: body is not JSON: {resp.body[:200]!r}")
        return
    ck.check(isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"]
             and isinstance(doc.get("message"), str), f"{what}: error shape {doc!r}")
    if code is not None and isinstance(doc, dict):
        ck.eq(doc.get("error"), code, f"{what} error code")


def one(srv, data, head=False, timeout=10):
    """Sends data on a fresh connection and returns (first response, connection)."""
    c = Conn(srv)
    c.send(data)
    return c.response(head=head, timeout=timeout), c


def new_sale(sale_id):
    now = int(time.time() * 1000)
    return {"id": sale_id, "name": "Test sale " + sale_id, "stock": 10, "starts_at": now,
            "ends_at": now + 3600 * 1000, "per_user_limit": 1}


# ---- the shared server ------------------------------------------------------------------

SRV = None


def test_healthz(ck):
    r, c = one(SRV, req("GET", "/healthz"))
    ck.eq(r.status, 200, "healthz status")
    ck.check(r.headers.get("content-type", "").startswith("application/json"), f"healthz type {r.headers}")
    ck.eq(r.json(), {"status": "ok"}, "healthz body")
    ck.check(not c.closed, "keep-alive by default in HTTP/1.1")
    c.close()
    # Absolute-form (RFC 9112 3.2.2: servers MUST accept it) and a query string.
    for target in (f"http://127.0.0.1:{SRV.port}/healthz", "/healthz?probe=1&x=%20"):
        r, c = one(SRV, req("GET", target))
        ck.eq(r.status, 200, f"GET {target}")
        c.close()
    # OPTIONS * is valid HTTP; whatever the answer, it is not a server error.
    r, c = one(SRV, req("OPTIONS", "*"))
    ck.check(r.status < 500, f"OPTIONS *: {r.status}")
    ck.check(not c.wait_closed(0.2), f"OPTIONS * keeps the connection ({r.status})")
    c.close()


def test_routing_errors(ck):
    r, c = one(SRV, req("GET", "/no/such/path"))
    check_error(ck, r, 404, "not_found", "unknown path")
    c.close()
    r, c = one(SRV, req("GET", "/healthzx"))
    check_error(ck, r, 404, "not_found", "path with a suffix")
    c.close()
    for method in ("DELETE", "PUT", "PATCH", "POST"):
        r, c = one(SRV, req(method, "/healthz", body=b"{}" if method != "DELETE" else b""))
        check_error(ck, r, 405, None, f"{method} /healthz")
        allow = r.headers.get("allow", "")
        ck.check("GET" in [a.strip() for a in allow.split(",")], f"{method} /healthz: Allow {allow!r}")
        c.close()
    # An unknown path is 404 whatever the method (405 would claim the resource exists).
    for method in ("POST", "PUT", "DELETE"):
        r, c = one(SRV, req(method, "/api/v1/no-such-thing", body=b"{}"))
        check_error(ck, r, 404, "not_found", f"{method} to an unknown path")
        c.close()
    # An unknown but well-formed method is a routing matter, not a syntax error.
    r, c = one(SRV, req("PURGE", "/healthz"))
    ck.check(r.status in (405, 501), f"PURGE /healthz: {r.status}")
    c.close()


def test_head_too_large(ck):
    big = req("GET", "/healthz", ["X-Big: " + "a" * 9000])
    r, c = one(SRV, big)
    check_error(ck, r, 431, None, "9 KB header")
    ck.check(c.wait_closed(5 * SLOW), "closed after 431")
    c.close()
    # A head that never ends: the server must not wait past 8 KiB.
    c = Conn(SRV)
    c.send(b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"X-Pad: 0123456789abcdef\r\n" * 400)
    r = c.response()
    check_error(ck, r, 431, None, "unterminated 10 KB head")
    ck.check(c.wait_closed(5 * SLOW), "closed after 431 (unterminated)")
    c.close()
    # Just under the limit is fine.
    ok = req("GET", "/healthz", ["X-Fill: " + "b" * 7000])
    r, c = one(SRV, ok)
    ck.eq(r.status, 200, "7 KB head accepted")
    c.close()


def test_body_too_large(ck):
    c = Conn(SRV)
    c.send(req("POST", "/api/v1/sales", ["Content-Type: application/json", "Content-Length: 70000"]))
    r = c.response()
    check_error(ck, r, 413, None, "Content-Length 70000")
    ck.check(c.wait_closed(5 * SLOW), "closed after 413")
    c.close()
    # The same with the body on its way: the answer must still arrive (no reset first).
    c = Conn(SRV)
    c.send(req("POST", "/api/v1/sales", ["Content-Type: application/json"], body=b"x" * 70000))
    r = c.response()
    check_error(ck, r, 413, None, "70000-byte body")
    c.close()
    # A chunked body that grows past the limit.
    c = Conn(SRV)
    c.send(req("POST", "/api/v1/sales", ["Transfer-Encoding: chunked"]))
    for _ in range(20):
        if not c.send(b"1000\r\n" + b"y" * 0x1000 + b"\r\n"):
            break
    r = c.response()
    check_error(ck, r, 413, None, "chunked body past 64 KiB")
    c.close()
    # The exact boundary: 64 KiB is a body, one byte more is not. /healthz answers
    # 405 to POST once the body is read, and the connection stays usable.
    for size, te in ((65536, False), (65536, True), (65537, False), (65537, True)):
        what = f"{'chunked' if te else 'Content-Length'} body of {size} bytes"
        c = Conn(SRV)
        payload = b"z" * size
        if te:
            c.send(req("POST", "/healthz", ["Transfer-Encoding: chunked"], body=chunked(payload, [4096] * 15)))
        else:
            c.send(req("POST", "/healthz", body=payload))
        c.send(req("GET", "/healthz"))
        r = c.response()
        if size <= 65536:
            ck.eq(r.status, 405, what)
            ck.eq(c.response().status, 200, f"{what}: next request")
        else:
            check_error(ck, r, 413, None, what)
        c.close()


def test_protocol_errors(ck):
    cases = [
        (b"GET /healthz HTTP/1.1\nHost: a\n\n", 400, "bare LF"),
        (b"GET  /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 400, "double space"),
        (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "missing Host"),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "two Host"),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, "obs-fold"),
        (b"GET /healthz HTTP/1.1\r\nHost : a\r\n\r\n", 400, "space before colon"),
        (b"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", 400, "two CL"),
        (b"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
         "CL and TE"),
        (b"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "negative CL"),
        (b"GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP/2.0"),
        (b"GET /healthz HTTP/1.2\r\nHost: a\r\n\r\n", 505, "HTTP/1.2"),
        (b"POST /api/v1/sales HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "TE gzip"),
        (b"POST /api/v1/sales HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
         "TE gzip, chunked"),
        (b"POST /api/v1/sales HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 200-ok\r\n\r\n", 417,
         "Expect 200-ok"),
    ]
    for data, status, what in cases:
        r, c = one(SRV, data)
        check_error(ck, r, status, None, what)
        ck.check(c.wait_closed(5 * SLOW), f"{what}: closed after {status}")
        c.close()
    # A bad chunked body after a valid head.
    c = Conn(SRV)
    c.send(req("POST", "/api/v1/sales", ["Transfer-Encoding: chunked"]) + b"zz\r\nhello\r\n0\r\n\r\n")
    r = c.response()
    check_error(ck, r, 400, None, "bad chunk size")
    ck.check(c.wait_closed(5 * SLOW), "closed after bad chunk")
    c.close()


def test_chunked_request_bodies(ck):
    sale = json.dumps(new_sale("chunky")).encode()
    data = req("POST", "/api/v1/sales", ["Content-Type: application/json", "Transfer-Encoding: chunked"],
               body=chunked(sale, [1, 7, 16])) + req("GET", "/healthz")
    c = Conn(SRV)
    c.send(data)
    r1 = c.response()
    r2 = c.response()
    ck.check(r1.status not in (400, 411, 501), f"chunked sale creation: {r1.status} {r1.body[:200]!r}")
    ck.check(r1.status in (200, 201), f"chunked sale creation accepted: {r1.status} {r1.body[:200]!r}")
    ck.eq(r2.status, 200, "pipelined healthz after a chunked body")
    ck.check(c.nothing_more(), "exactly two responses")
    c.close()
    if r1.status in (200, 201):
        st, doc = SRV.json("GET", "/api/v1/sales/chunky")
        ck.eq(st, 200, "sale created from a chunked body exists")

    # Chunk data that looks like requests must never be parsed as requests.
    inner = req("GET", "/healthz") * 3
    data = req("POST", "/healthz", ["Transfer-Encoding: chunked"], body=chunked(inner, [5, 40])) \
        + req("GET", "/healthz")
    c = Conn(SRV)
    c.send(data)
    r1 = c.response()
    r2 = c.response()
    ck.eq(r1.status, 405, "chunked POST to GET-only /healthz")
    ck.eq(r2.status, 200, "the request after the chunked body")
    ck.check(c.nothing_more(), "chunk bytes were not taken for requests")
    c.close()

    # A chunked body split into tiny writes.
    c = Conn(SRV)
    c.send(req("POST", "/healthz", ["Transfer-Encoding: chunked"]))
    for piece in [b"5", b";a=b\r", b"\nhel", b"lo\r\n0", b"\r\n\r", b"\n"]:
        c.send(piece)
        time.sleep(0.02)
    c.send(req("GET", "/healthz"))
    ck.eq(c.response().status, 405, "chunked body in tiny writes")
    ck.eq(c.response().status, 200, "healthz after the tiny-write body")
    c.close()


def test_content_length_body_skipped(ck):
    body = req("GET", "/healthz")  # a body that looks like a request
    c = Conn(SRV)
    c.send(req("POST", "/healthz", body=body) + req("GET", "/healthz"))
    ck.eq(c.response().status, 405, "POST with a body to GET-only /healthz")
    ck.eq(c.response().status, 200, "next request after the body")
    ck.check(c.nothing_more(), "the body was not parsed as a request")
    c.close()


def test_expect_continue(ck):
    sale = json.dumps(new_sale("expecting")).encode()
    c = Conn(SRV)
    c.send(req("POST", "/api/v1/sales", ["Content-Type: application/json", f"Content-Length: {len(sale)}",
                                          "Expect: 100-continue"]))
    r = c.response(timeout=5)
    ck.eq(r.status, 100, "interim 100 Continue before the body")
    ck.check(r.version == "HTTP/1.1", f"100 Continue version {r.version}")
    c.send(sale)
    r = c.response()
    ck.check(r.status in (200, 201), f"final answer after 100-continue: {r.status} {r.body[:200]!r}")
    ck.check(c.nothing_more(), "no second 100")
    c.close()
    # Case-insensitive expectation value.
    c = Conn(SRV)
    c.send(req("POST", "/api/v1/sales", ["Content-Length: 2", "Expect: 100-Continue"]))
    r = c.response(timeout=5)
    ck.eq(r.status, 100, "100-Continue (mixed case)")
    c.close()
    # A body that is too large is refused at once, without 100.
    c = Conn(SRV)
    c.send(req("POST", "/api/v1/sales", ["Content-Length: 70000", "Expect: 100-continue"]))
    r = c.response(timeout=5)
    check_error(ck, r, 413, None, "100-continue with a too-large body")
    c.close()
    # The client may send the body without waiting: no harm done.
    c = Conn(SRV)
    c.send(req("POST", "/healthz", ["Expect: 100-continue"], body=b"abc") + req("GET", "/healthz"))
    r = c.response()
    if r.status == 100:
        r = c.response()
    ck.eq(r.status, 405, "body sent without waiting for 100")
    # RFC 9110 10.1.1: a server that answers before reading the body either reads and
    # discards it or closes the connection; both keep the stream in sync.
    if "close" in r.headers.get("connection", "").lower():
        ck.check(c.wait_closed(5 * SLOW), "closed after a final answer that skipped the body")
    else:
        ck.eq(c.response().status, 200, "request after that body")
    c.close()


def test_keep_alive_rules(ck):
    r, c = one(SRV, req("GET", "/healthz", version="1.0", host=False))
    ck.eq(r.status, 200, "HTTP/1.0 healthz")
    ck.check(c.wait_closed(5 * SLOW), "HTTP/1.0 without keep-alive is closed after the response")
    c.close()

    c = Conn(SRV)
    c.send(req("GET", "/healthz", ["Connection: keep-alive"], version="1.0", host=False))
    r = c.response()
    ck.eq(r.status, 200, "HTTP/1.0 keep-alive healthz")
    ck.check("keep-alive" in r.headers.get("connection", "").lower(),
             f"HTTP/1.0 keep-alive answered with Connection: keep-alive, got {r.headers.get('connection')!r}")
    ck.check(not c.wait_closed(0.5), "HTTP/1.0 keep-alive stays open")
    c.send(req("GET", "/healthz", ["Connection: keep-alive"], version="1.0", host=False))
    ck.eq(c.response().status, 200, "second request on HTTP/1.0 keep-alive")
    c.close()

    c = Conn(SRV)
    c.send(req("GET", "/healthz", ["Connection: close"]))
    r = c.response()
    ck.eq(r.status, 200, "HTTP/1.1 Connection: close")
    ck.check("close" in r.headers.get("connection", "").lower(), f"Connection: close echoed: {r.headers}")
    ck.check(c.wait_closed(5 * SLOW), "HTTP/1.1 Connection: close is closed after the response")
    c.close()

    c = Conn(SRV)
    for _ in range(5):
        c.send(req("GET", "/healthz"))
        ck.eq(c.response().status, 200, "sequential keep-alive request")
    ck.check(not c.wait_closed(0.3), "HTTP/1.1 stays open")
    c.close()


def test_head(ck):
    c = Conn(SRV)
    c.send(req("GET", "/healthz"))
    g = c.response()
    c.send(req("HEAD", "/healthz"))
    h = c.response(head=True)
    ck.eq(h.status, 200, "HEAD /healthz")
    ck.eq(h.headers.get("content-length"), str(len(g.body)), "HEAD Content-Length equals GET body length")
    # If HEAD had a body, it would now sit in front of this response.
    c.send(req("GET", "/healthz"))
    r = c.response()
    ck.eq(r.status, 200, "GET after HEAD (no body was sent for HEAD)")
    ck.eq(r.body, g.body, "GET after HEAD body")
    c.close()


def test_pipelining(ck):
    n = 100
    c = Conn(SRV)
    c.send(req("GET", "/healthz") * n)
    statuses = [c.response().status for _ in range(n)]
    ck.eq(statuses, [200] * n, "100 pipelined healthz")
    ck.check(c.nothing_more(), "exactly 100 responses")
    print(f"    (100 pipelined responses arrived in {c.recvs} recv() calls)")
    c.close()

    # Mixed 200/404/HEAD/POST-with-body, answers in request order.
    data, want, heads = b"", [], []
    for i in range(n):
        k = i % 4
        if k == 0:
            data += req("GET", "/healthz")
            want.append(200)
            heads.append(False)
        elif k == 1:
            data += req("GET", f"/missing/{i}")
            want.append(404)
            heads.append(False)
        elif k == 2:
            data += req("HEAD", "/healthz")
            want.append(200)
            heads.append(True)
        else:
            data += req("POST", "/healthz", body=b"x" * i)
            want.append(405)
            heads.append(False)
    c = Conn(SRV)
    c.send(data)
    got = [c.response(head=h).status for h in heads]
    ck.eq(got, want, "mixed pipelined responses in order")
    ck.check(c.nothing_more(), "exactly 100 mixed responses")
    c.close()

    # The last request says close: every answer, then the close.
    c = Conn(SRV)
    c.send(req("GET", "/healthz") * 9 + req("GET", "/healthz", ["Connection: close"]) + req("GET", "/healthz"))
    got = [c.response().status for _ in range(10)]
    ck.eq(got, [200] * 10, "pipelined up to Connection: close")
    ck.check(c.wait_closed(5 * SLOW), "closed after the Connection: close request")
    ck.eq(c.buf, b"", "nothing answered after Connection: close")
    c.close()

    # A bad request in the middle: the ones before it are answered, then 400 and close.
    c = Conn(SRV)
    c.send(req("GET", "/healthz") * 2 + b"BAD\x01 / HTTP/1.1\r\n\r\n" + req("GET", "/healthz"))
    ck.eq([c.response().status for _ in range(3)], [200, 200, 400], "pipeline with a bad request")
    ck.check(c.wait_closed(5 * SLOW), "closed after the bad pipelined request")
    ck.eq(c.buf, b"", "nothing answered after the bad request")
    c.close()


def test_pipelining_backpressure(ck):
    """Thousands of pipelined requests sent while reading: the server must keep its
    output bounded and answer everything, in order."""
    n = 5000
    data = b"".join(req("GET", "/healthz") if i % 2 else req("GET", f"/m{i}") for i in range(n))
    c = Conn(SRV, timeout=30)
    errors = []

    def sender():
        try:
            c.s.sendall(data)
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=sender)
    t.start()
    got = []
    try:
        for _ in range(n):
            got.append(c.response(timeout=30).status)
    finally:
        t.join(60)
    ck.eq(errors, [], "sending 5000 pipelined requests")
    ck.eq(got, [404 if i % 2 == 0 else 200 for i in range(n)], "5000 pipelined answers in order")
    c.close()


def test_half_closed(ck):
    # The request and the FIN often arrive in one wake-up; repeat to catch that case.
    not_closed = 0
    for _ in range(10):
        c = Conn(SRV)
        c.send(req("GET", "/healthz"))
        c.s.shutdown(socket.SHUT_WR)
        r = c.response()
        ck.eq(r.status, 200, "response after the client shut down writing")
        if not c.wait_closed(2 * SLOW):
            not_closed += 1
        c.close()
    ck.eq(not_closed, 0, "half-closed clients left open after their answer (of 10)")

    c = Conn(SRV)
    c.send(req("GET", "/healthz") * 10)
    c.s.shutdown(socket.SHUT_WR)
    ck.eq([c.response().status for _ in range(10)], [200] * 10, "10 pipelined then SHUT_WR")
    c.close()

    # Body arrives, then the half-close.
    c = Conn(SRV)
    c.send(req("POST", "/healthz", body=b"abc"))
    c.s.shutdown(socket.SHUT_WR)
    ck.eq(c.response().status, 405, "POST then SHUT_WR")
    c.close()

    # Half a request, then the half-close: nothing to answer except maybe a 400.
    c = Conn(SRV)
    c.send(b"GET /healthz HTTP/1.1\r\nHo")
    c.s.shutdown(socket.SHUT_WR)
    ck.check(c.wait_closed(2 * SLOW), "partial request then SHUT_WR: server closes at once")
    if c.buf:
        r = parse_response(c.buf, closed=True)
        ck.check(r is not None and r[0].status in (400, 408),
                 f"partial request then SHUT_WR answer: {c.buf[:100]!r}")
    c.close()


def test_robustness(ck):
    rng = random.Random(20240611)
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(200):
        n = rng.randint(1, 3000)
        blob = bytes(rng.getrandbits(8) for _ in range(n))
        if i % 10 == 0:  # garbage that starts like a request line
            blob = b"GET /" + blob
        s = socket.create_connection((SRV.host, SRV.port), timeout=5)
        try:
            s.sendall(blob)
        except OSError:
            pass
        s.setblocking(False)
        conns.append([s, b"", False])
        sel.register(s, selectors.EVENT_READ, conns[-1])
    deadline = time.monotonic() + 5 * SLOW
    open_left = len(conns)
    while open_left and time.monotonic() < deadline:
        for key, _ in sel.select(0.2):
            st = key.data
            try:
                chunk = st[0].recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionResetError:
                chunk = b""
            if chunk:
                st[1] += chunk
            else:
                st[2] = True
                sel.unregister(st[0])
                open_left -= 1
    bad = [st[1][:60] for st in conns if st[1] and not (st[1].startswith(b"HTTP/1.1 4") or
                                                          st[1].startswith(b"HTTP/1.1 5"))]
    ck.eq(bad, [], "garbage is answered with 4xx/5xx only")
    print(f"    ({sum(1 for st in conns if st[2])} of 200 garbage connections closed by the server "
          f"within {5 * SLOW} s)")
    for st in conns:
        st[0].close()
    sel.close()

    r, c = one(SRV, b"\x00" * 100)
    check_error(ck, r, 400, None, "NUL bytes")
    c.close()
    r, c = one(SRV, b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n")
    check_error(ck, r, 400, None, "NUL in the target")
    c.close()

    for what, blob in (("1 MiB of header bytes", b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"h" * (1 << 20)),
                       ("100 KiB request line", b"GET /" + b"a" * (100 << 10) + b" HTTP/1.1\r\nHost: a\r\n\r\n")):
        c = Conn(SRV)
        c.send(blob)
        try:
            r = c.response()
            ck.check(r.status in (414, 431), f"{what}: {r.status}")
            check_error(ck, r, r.status, None, what)
        except AssertionError:
            # The peer may reset a connection whose unread bytes it discards; the
            # server staying alive is what matters then.
            ck.check(c.reset, f"{what}: neither an answer nor a reset")
        c.close()

    ck.eq(SRV.proc.poll(), None, "server alive after garbage")
    st, doc = SRV.json("GET", "/healthz")
    ck.eq((st, doc), (200, {"status": "ok"}), "healthz after garbage")


def test_metrics(ck):
    for _ in range(3):
        SRV.request("GET", "/healthz")
    st, h, body = SRV.request("GET", "/metrics")
    ck.eq(st, 200, "metrics status")
    ctype = h.get("content-type", "")
    ck.check(ctype.startswith("text/plain") and "version=0.0.4" in ctype, f"metrics content type {ctype!r}")
    text = body.decode("utf-8")
    lines = text.splitlines()
    req_lines = [ln for ln in lines if ln.startswith("seckill_http_requests_total{")]
    ck.check(req_lines, "seckill_http_requests_total{...} lines present")
    total = 0.0
    for ln in req_lines:
        try:
            total += float(ln.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            ck.check(False, f"metric line without a value: {ln!r}")
    ck.check(total >= 4, f"requests counted: {total}")
    ck.check(any(ln.startswith("seckill_http_connections_open") for ln in lines),
             "seckill_http_connections_open present")
    for ln in lines:
        if ln and not ln.startswith("#"):
            ck.check(len(ln.rsplit(" ", 1)) == 2, f"metric line shape {ln!r}")
    # The workers run on the loop backend asked for (SECKILL_IO, as --io): this run tests
    # that one.
    io = {ln.split('"')[1]: float(ln.rsplit(" ", 1)[1]) for ln in lines if ln.startswith("seckill_io_workers{")}
    ck.eq(sum(io.values()), 2, f"workers by loop backend {io}")
    asked = os.environ.get("SECKILL_IO", "auto")
    if asked in ("epoll", "uring"):
        ck.eq(io.get(asked), 2, f"workers on {asked}: {io}")


# ---- servers of their own ------------------------------------------------------------------

def metric_value(srv, name):
    st, _, body = srv.request("GET", "/metrics")
    total, seen = 0.0, False
    for ln in body.decode().splitlines():
        if ln.startswith(name + " ") or ln.startswith(name + "{"):
            total += float(ln.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None


def test_ten_thousand_connections(ck):
    n = 10000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 500
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            hard = want
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ck.check(hard >= want, f"RLIMIT_NOFILE hard limit {hard} allows {n} connections")
    if hard < want:
        return
    limit = 120 if not SANITIZED else 300
    t0 = time.monotonic()
    deadline = t0 + limit
    addr = None
    socks = []
    sel = selectors.DefaultSelector()
    with Server(threads=2) as srv:  # started after the limit was raised: it inherits it
        addr = (srv.host, srv.port)
        failed_connect = 0
        batch = 500
        for start in range(0, n, batch):
            pending = 0
            for _ in range(min(batch, n - start)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                rc = s.connect_ex(addr)
                if rc not in (0, errno.EINPROGRESS):
                    failed_connect += 1
                    s.close()
                    continue
                sel.register(s, selectors.EVENT_WRITE)
                pending += 1
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(1.0):
                    s = key.fileobj
                    sel.unregister(s)
                    pending -= 1
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        failed_connect += 1
                        s.close()
                    else:
                        socks.append(s)
        ck.eq(failed_connect, 0, "failed connects")
        ck.eq(len(socks), n, "connections established")
        t_conn = time.monotonic() - t0

        request = req("GET", "/healthz")
        send_failed = 0
        state = {}
        for s in socks:
            try:
                if s.send(request) != len(request):
                    send_failed += 1
                    continue
            except OSError:
                send_failed += 1
                continue
            state[s.fileno()] = [s, b""]
            sel.register(s, selectors.EVENT_READ)
        ck.eq(send_failed, 0, "failed sends")

        statuses = {}
        closed_early = 0
        left = len(state)
        while left and time.monotonic() < deadline:
            for key, _ in sel.select(1.0):
                s = key.fileobj
                st = state[s.fileno()]
                try:
                    chunk = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    closed_early += 1
                    sel.unregister(s)
                    left -= 1
                    continue
                st[1] += chunk
                got = parse_response(st[1])
                if got:
                    statuses[got[0].status] = statuses.get(got[0].status, 0) + 1
                    sel.unregister(s)
                    left -= 1
        elapsed = time.monotonic() - t0
        ck.eq(statuses, {200: n}, "every one of 10 000 connections answered 200")
        ck.eq(closed_early, 0, "connections closed before answering")
        ck.check(elapsed < limit, f"10 000 connections done in {elapsed:.1f} s (limit {limit} s)")
        open_now = metric_value(srv, "seckill_http_connections_open")
        print(f"    (10 000 connections: connected in {t_conn:.1f} s, answered by {elapsed:.1f} s; "
              f"seckill_http_connections_open={open_now})")
        if open_now is not None:
            ck.check(open_now >= n * 0.9, f"server counts the open connections: {open_now}")
        st, doc = srv.json("GET", "/healthz")
        ck.eq((st, doc), (200, {"status": "ok"}), "healthz with 10 000 connections open")
        for s in socks:
            s.close()
        sel.close()
        time.sleep(0.5)
        st, doc = srv.json("GET", "/healthz")
        ck.eq((st, doc), (200, {"status": "ok"}), "healthz after closing 10 000 connections")
        ck.eq(srv.proc.poll(), None, "server alive")
        ck.eq(srv.stop(), 0, "clean exit after 10 000 connections")


def timed_close(c, limit):
    t0 = time.monotonic()
    closed = c.wait_closed(limit)
    return closed, time.monotonic() - t0


def check_timeout_answer(ck, c, what):
    """Whatever arrived before the close is nothing or a 408 JSON error."""
    if c.buf:
        got = parse_response(c.buf, closed=True)
        ck.check(got is not None, f"{what}: unparseable bytes before close {c.buf[:100]!r}")
        if got:
            check_error(ck, got[0], 408, None, what)


def test_timeouts(ck):
    upper = 3.5 if not SANITIZED else 6.0
    with Server("--header-timeout", "1000", "--idle-timeout", "1000") as srv:
        # Slow-loris: one byte every 200 ms, never finishing the head.
        c = Conn(srv)
        t0 = time.monotonic()
        payload = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"s" * 200
        for b in payload:
            if not c.send(bytes([b])) or c.wait_closed(0.2) or time.monotonic() - t0 > upper + 3:
                break
        elapsed = time.monotonic() - t0
        ck.check(c.closed, f"slow-loris client disconnected (after {elapsed:.1f} s)")
        ck.check(0.8 <= elapsed <= upper, f"slow-loris cut after {elapsed:.2f} s (header timeout 1 s)")
        check_timeout_answer(ck, c, "slow-loris")
        c.close()

        # Idle keep-alive connection.
        c = Conn(srv)
        c.send(req("GET", "/healthz"))
        ck.eq(c.response().status, 200, "request before idling")
        closed, elapsed = timed_close(c, upper + 2)
        ck.check(closed and 0.8 <= elapsed <= upper, f"idle keep-alive closed={closed} after {elapsed:.2f} s")
        check_timeout_answer(ck, c, "idle keep-alive")
        c.close()

        # A connection that never sends anything.
        c = Conn(srv)
        closed, elapsed = timed_close(c, upper + 2)
        ck.check(closed and elapsed <= upper, f"silent connection closed={closed} after {elapsed:.2f} s")
        check_timeout_answer(ck, c, "silent connection")
        c.close()

        # Activity keeps a connection alive: a request every 400 ms for 3 s.
        c = Conn(srv)
        ok = 0
        for _ in range(8):
            c.send(req("GET", "/healthz"))
            try:
                ok += c.response(timeout=3).status == 200
            except AssertionError:
                break
            time.sleep(0.4)
        ck.eq(ok, 8, "busy keep-alive connection is not closed by the idle timeout")
        c.close()

        # A complete head that is fast but a body that never comes: the connection must
        # not live forever either (header or idle timeout applies).
        c = Conn(srv)
        c.send(req("POST", "/api/v1/sales", ["Content-Length: 100"]) + b"partial")
        closed, elapsed = timed_close(c, upper + 5)
        ck.check(closed, f"stalled body: closed={closed} after {elapsed:.2f} s")
        c.close()
        # A client that pipelines without ever reading: the server stops reading once
        # its output backs up, and drops the connection when its output makes no
        # progress for the idle timeout. Reading afterwards then ends in EOF/RST
        # long before all answers (100 000 answers are ~14 MB, more than the kernel
        # buffers of both ends hold).
        n = 100000
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((srv.host, srv.port))
        s.setblocking(False)
        flood = req("GET", "/healthz") * n
        sent, t0 = 0, time.monotonic()
        while sent < len(flood) and time.monotonic() - t0 < 3 * SLOW:
            try:
                sent += s.send(flood[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.02)
            except (BrokenPipeError, ConnectionResetError):
                break
        time.sleep(upper + 1)  # never read while the idle timeout runs out
        s.setblocking(True)
        s.settimeout(5 * SLOW)
        got, ended = b"", False
        try:
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    ended = True
                    break
                got += chunk
        except ConnectionResetError:
            ended = True
        except socket.timeout:
            pass
        answers = got.count(b"HTTP/1.1 200")
        s.close()
        print(f"    (non-reading client: {sent} request bytes sent, {answers} answers before the close)")
        ck.check(ended and answers < n, f"a client that never reads is dropped (ended={ended}, {answers} answers)")
        ck.eq(srv.proc.poll(), None, "server alive after timeouts")


def test_max_connections(ck):
    with Server("--max-conns", "50") as srv:
        first = []
        for i in range(50):
            c = Conn(srv)
            c.send(req("GET", "/healthz"))
            first.append((c, c.response().status))
        ck.eq([st for _, st in first], [200] * 50, "the first 50 connections are served")
        extra = []
        for i in range(10):
            c = Conn(srv)
            c.send(req("GET", "/healthz"))
            try:
                r = c.response()
            except AssertionError:
                r = None
            extra.append((c, r))
        last_c, last_r = extra[-1]
        ck.check(last_r is not None, "the 60th connection gets an answer")
        if last_r is not None:
            check_error(ck, last_r, 503, "overloaded", "60th connection")
            ck.check(last_c.wait_closed(5 * SLOW), "60th connection closed after 503")
        refused = sum(1 for _, r in extra if r is not None and r.status == 503)
        print(f"    (connections 51-60: {refused} refused with 503)")
        ck.eq(refused, 10, "every connection past the cap is refused")
        for c, _ in extra:
            c.close()
        # The first 50 still work.
        ok = 0
        for c, _ in first:
            c.send(req("GET", "/healthz"))
            try:
                ok += c.response().status == 200
            except AssertionError:
                pass
        ck.eq(ok, 50, "the first 50 keep being served")
        # Closing some frees their slots.
        for c, _ in first[:10]:
            c.close()
        served = False
        deadline = time.monotonic() + 5 * SLOW
        while not served and time.monotonic() < deadline:
            time.sleep(0.1)
            c = Conn(srv)
            c.send(req("GET", "/healthz"))
            try:
                served = c.response().status == 200
            except AssertionError:
                pass
            c.close()
        ck.check(served, "a slot freed by a close is reused")
        for c, _ in first[10:]:
            c.close()


def test_shutdown(ck):
    # SIGTERM with an idle keep-alive connection.
    srv = Server()
    try:
        c = Conn(srv)
        c.send(req("GET", "/healthz"))
        ck.eq(c.response().status, 200, "request before SIGTERM")
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            code = srv.proc.wait(10 * SLOW)
        except Exception:  # noqa: BLE001 - reported as a failure below
            code = None
        elapsed = time.monotonic() - t0
        ck.eq(code, 0, "exit code after SIGTERM with an idle connection")
        ck.check(elapsed <= 5 * SLOW, f"SIGTERM exit took {elapsed:.1f} s")
        ck.check(c.wait_closed(2), "idle connection closed by the shutdown")
        c.close()
    finally:
        srv.close()

    # SIGTERM while requests are in flight: a head received with half its body, and
    # pipelined requests the server has received. Both are still answered.
    srv = Server()
    try:
        body = json.dumps(new_sale("inflight")).encode()
        a = Conn(srv)
        a.send(req("POST", "/healthz", [f"Content-Length: {len(body)}"]) + body[:10])
        b = Conn(srv)
        b.send(req("GET", "/healthz") * 3)
        time.sleep(0.2 * SLOW)  # both reach the server before the signal
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2 * SLOW)
        a.send(body[10:])
        got = []
        try:
            got.append(a.response().status)
        except AssertionError as e:
            print(f"    (body in flight: {e})")
        try:
            for _ in range(3):
                got.append(b.response().status)
        except AssertionError as e:
            print(f"    (pipelined in flight: {e})")
        ck.eq(got, [405, 200, 200, 200], "requests in flight at SIGTERM are answered")
        try:
            code = srv.proc.wait(10 * SLOW)
        except Exception:  # noqa: BLE001
            code = None
        ck.eq(code, 0, "exit code after SIGTERM with requests in flight")
        a.close()
        b.close()
    finally:
        srv.close()

    # SIGINT exits 0 too.
    srv = Server()
    try:
        ck.eq(srv.stop(signal.SIGINT), 0, "exit code after SIGINT")
    finally:
        srv.close()


def main():
    global SRV
    shared = [test_healthz, test_routing_errors, test_head_too_large, test_body_too_large, test_protocol_errors,
              test_chunked_request_bodies, test_content_length_body_skipped, test_expect_continue,
              test_keep_alive_rules, test_head, test_pipelining, test_pipelining_backpressure, test_half_closed,
              test_robustness, test_metrics]
    own = [test_timeouts, test_max_connections, test_shutdown, test_ten_thousand_connections]
    only = set(sys.argv[1:])  # run a subset: test_http.py test_head test_pipelining
    if only:
        shared = [t for t in shared if t.__name__ in only]
        own = [t for t in own if t.__name__ in only]
    srv = SRV = Server(threads=2)

    def test_server_exits_cleanly(ck):
        ck.eq(srv.proc.poll(), None, "shared server alive at the end")
        ck.eq(srv.stop(), 0, "shared server exit code")

    tests = shared + [test_server_exits_cleanly] if shared else []
    try:
        run_tests(tests + own)
    except SystemExit as e:
        if e.code:
            sys.stderr.write("--- shared server output (tail) ---\n" + srv.output()[-5000:])
        raise
    finally:
        srv.close()


if __name__ == "__main__":
    main()
