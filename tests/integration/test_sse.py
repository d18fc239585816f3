"""Server-Sent Events: the stream format, throttling, and 5 000 concurrent streams on one
node that all receive the sell-out update within a second."""
import json
import resource
import selectors
import socket
import time

import sklib


def open_stream(port, sale):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET /api/v1/sales/{sale}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    return s


def read_until(s, marker, timeout=5):
    s.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    while marker not in data and time.time() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def events(data):
    out = []
    for block in data.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                out.append(json.loads(line[6:]))
    return out


def test_stream_format_and_updates(ck):
    with sklib.Server() as srv:
        st, _ = srv.json("POST", "/api/v1/sales", {"id": "e1", "stock": 3})
        ck.eq(st, 201, "create")
        s = open_stream(srv.port, "e1")
        head = read_until(s, b"}\n\n")
        ck.check(head.startswith(b"HTTP/1.1 200 OK\r\n"), f"status line: {head[:40]!r}")
        ck.check(b"Content-Type: text/event-stream" in head, "content type")
        body = head.split(b"\r\n\r\n", 1)[1]
        ev = events(body)
        ck.check(len(ev) == 1 and ev[0]["remaining"] == 3 and ev[0]["state"] == "live", f"first event {ev}")
        # Many purchases in a burst: the stream is throttled, and the last event is exact.
        for i in range(3):
            st, _ = srv.json("POST", "/api/v1/sales/e1/purchase", {"user_id": f"u{i}", "request_id": f"r{i}"})
            ck.eq(st, 201, "purchase")
        data = read_until(s, b'"sold_out"', timeout=3)
        ev = events(data)
        ck.check(ev and ev[-1]["state"] == "sold_out" and ev[-1]["remaining"] == 0, f"last event {ev[-1:]}")
        ck.check(len(ev) <= 3, f"updates were throttled into at most 3 events, got {len(ev)}")
        st, _, _ = srv.request("GET", "/api/v1/sales/nope/events")
        ck.eq(st, 404, "events of an unknown sale")
        s.close()
        time.sleep(0.3)
        st, _, m = srv.request("GET", "/metrics")
        ck.check(b"seckill_sse_subscribers 0" in m, "subscriber removed when the client went away")


def test_5000_streams(ck):
    n = 5000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < n + 200:
        print(f"skipping: open file limit {hard} is below {n + 200}")
        return
    with sklib.Server(threads=2) as srv:
        st, _ = srv.json("POST", "/api/v1/sales", {"id": "big", "stock": 1})
        ck.eq(st, 201, "create")
        sel = selectors.DefaultSelector()
        socks = []
        deadline = time.time() + 60
        req = b"GET /api/v1/sales/big/events HTTP/1.1\r\nHost: x\r\n\r\n"
        for i in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.port))
            socks.append(s)
        # Wait for every connect, then send every request.
        pending = set(range(n))
        for i, s in enumerate(socks):
            sel.register(s, selectors.EVENT_WRITE, i)
        while pending and time.time() < deadline:
            for key, _ in sel.select(1):
                i = key.data
                socks[i].sendall(req)
                pending.discard(i)
                sel.unregister(socks[i])
        ck.eq(len(pending), 0, "every stream connected")
        got = [b""] * n
        for i, s in enumerate(socks):
            sel.register(s, selectors.EVENT_READ, i)

        def pump(marker, until):
            waiting = {i for i in range(n) if marker not in got[i]}
            while waiting and time.time() < until:
                for key, _ in sel.select(0.2):
                    i = key.data
                    try:
                        chunk = socks[i].recv(65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(socks[i])
                        waiting.discard(i)
                        continue
                    got[i] += chunk
                    if marker in got[i]:
                        waiting.discard(i)
            return {i for i in range(n) if marker not in got[i]}

        missing = pump(b'"state":"live"', time.time() + 60)
        ck.eq(len(missing), 0, "every stream got the first event")
        st, _, m = srv.request("GET", "/metrics")
        ck.check(f"seckill_sse_subscribers {n}".encode() in m, "metrics count the subscribers")
        t0 = time.time()
        st, _ = srv.json("POST", "/api/v1/sales/big/purchase", {"user_id": "winner"})
        ck.eq(st, 201, "the one unit sold")
        limit = 3.0 if sklib.SANITIZED else 1.0
        missing = pump(b'"state":"sold_out"', t0 + limit)
        took = time.time() - t0
        ck.eq(len(missing), 0, f"streams that saw the sell-out within {limit} s (took {took:.2f} s)")
        print(f"{n} streams received the sell-out in {took:.3f} s")
        for s in socks:
            s.close()
        st, _, _ = srv.request("GET", "/healthz")
        ck.eq(st, 200, "server healthy after 5000 streams closed")


if __name__ == "__main__":
    sklib.run_tests([test_stream_format_and_updates, test_5000_streams])
