"""Server-Sent Events: the stream format, throttling, 5 000 concurrent streams on one
node that all receive the sell-out update within a second, a stream pipelined after
purchases (it starts after their answers), HEAD on the stream route, and the stream
limits: per client address, in all (the rest of the connections stay for other
requests, even when one client opens hundreds of streams), and the stream lifetime."""
import json
import re
import resource
import selectors
import socket
import time

import sklib


def open_stream(port, sale, source="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.sendall(f"GET /api/v1/sales/{sale}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    return s


def read_all(s, timeout=5):
    """Everything until the server closes, or until `timeout` passes."""
    s.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def purchase(sale, user):
    body = json.dumps({"user_id": user, "request_id": "r-" + user}).encode()
    return (f"POST /api/v1/sales/{sale}/purchase HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def metric(srv, line_start):
    _, _, m = srv.request("GET", "/metrics")
    for line in m.decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return None


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
    # Every stream comes from 127.0.0.1 here: no cap per address.
    with sklib.Server("--max-streams-per-ip", "0", threads=2) as srv:
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


def test_stream_after_pipelined_answers(ck):
    """Purchases and a stream pipelined on one connection: the purchases' answers come
    first (the ledger answers them later than the stream could start), then the
    stream's head, then its events."""
    with sklib.Server() as srv:
        st, _ = srv.json("POST", "/api/v1/sales", {"id": "p1", "stock": 5})
        ck.eq(st, 201, "create")
        for round_ in range(5):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(purchase("p1", f"a{round_}") + purchase("p1", f"b{round_}") +
                      b"GET /api/v1/sales/p1/events HTTP/1.1\r\nHost: x\r\n\r\n")
            data = read_until(s, b"}\n\n", timeout=10)
            heads = [m.start() for m in re.finditer(rb"HTTP/1\.1 ", data)]
            ck.eq(len(heads), 3, f"round {round_}: three answers ({data[:300]!r})")
            if len(heads) == 3:
                first, second, third = (data[heads[0]:heads[1]], data[heads[1]:heads[2]], data[heads[2]:])
                ck.check(first.startswith(b"HTTP/1.1 201 ") or first.startswith(b"HTTP/1.1 409 "),
                         f"round {round_}: the first purchase's answer comes first: {first[:60]!r}")
                ck.check(second.startswith(b"HTTP/1.1 201 ") or second.startswith(b"HTTP/1.1 409 "),
                         f"round {round_}: then the second's: {second[:60]!r}")
                ck.check(third.startswith(b"HTTP/1.1 200 OK") and b"text/event-stream" in third,
                         f"round {round_}: then the stream's head: {third[:60]!r}")
                ck.check(len(events(third.split(b"\r\n\r\n", 1)[-1])) >= 1, f"round {round_}: then its events")
            s.close()


def test_head_on_the_stream_route(ck):
    """HEAD answers the head a GET would get, starts no stream, and the connection goes
    on with the next request."""
    with sklib.Server() as srv:
        st, _ = srv.json("POST", "/api/v1/sales", {"id": "h1", "stock": 5})
        ck.eq(st, 201, "create")
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"HEAD /api/v1/sales/h1/events HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_all(s)
        s.close()
        head, _, rest = data.partition(b"\r\n\r\n")
        ck.check(head.startswith(b"HTTP/1.1 200 OK"), f"HEAD status: {head[:40]!r}")
        ck.check(b"Content-Type: text/event-stream" in head, f"HEAD content type: {head!r}")
        ck.check(b"Content-Length" not in head, f"a stream's head has no length: {head!r}")
        ck.check(rest.startswith(b"HTTP/1.1 200 OK") and rest.endswith(b'{"status":"ok"}\n'),
                 f"the next request is answered right after the head: {rest[:200]!r}")
        ck.eq(metric(srv, "seckill_sse_subscribers"), 0, "HEAD subscribed nobody")


def test_stream_limits(ck):
    """Five streams per address, eight in all: the sixth from one address gets 429, the
    ninth in all 503, each with Retry-After, and the connection closes; a stream that
    ends makes room; requests that are not streams go on."""
    with sklib.Server("--max-streams-per-ip", "5", "--max-streams", "8", "--max-conns", "20") as srv:
        st, _ = srv.json("POST", "/api/v1/sales", {"id": "l1", "stock": 5})
        ck.eq(st, 201, "create")
        mine = []
        for i in range(5):
            s = open_stream(srv.port, "l1")
            ck.check(read_until(s, b"}\n\n").startswith(b"HTTP/1.1 200 OK"), f"stream {i + 1} from one address")
            mine.append(s)
        s = open_stream(srv.port, "l1")
        data = read_all(s)
        s.close()
        ck.check(data.startswith(b"HTTP/1.1 429 "), f"the sixth from one address: {data[:60]!r}")
        ck.check(b"Retry-After: " in data and b'"error":"too_many_streams"' in data, f"429 body: {data!r}")
        ck.check(b"Connection: close" in data, "a refused stream's connection closes")
        others = []
        for i in range(3):
            s = open_stream(srv.port, "l1", source="127.0.0.2")
            ck.check(read_until(s, b"}\n\n").startswith(b"HTTP/1.1 200 OK"), f"stream {i + 1} from another address")
            others.append(s)
        s = open_stream(srv.port, "l1", source="127.0.0.3")
        data = read_all(s)
        s.close()
        ck.check(data.startswith(b"HTTP/1.1 503 ") and b'"error":"too_many_streams"' in data,
                 f"the ninth in all: {data[:200]!r}")
        st, _, _ = srv.request("GET", "/healthz")
        ck.eq(st, 200, "healthz with every stream taken")
        st, doc = srv.json("POST", "/api/v1/sales/l1/purchase", {"user_id": "buyer", "request_id": "r1"})
        ck.eq(st, 201, f"a purchase with every stream taken: {doc}")
        ck.eq(metric(srv, 'seckill_sse_streams_total{outcome="refused"}'), 2, "refusals counted")
        # One of ours ends: one more from our address is admitted.
        mine.pop().close()
        admitted = False
        for _ in range(50):
            s = open_stream(srv.port, "l1")
            data = read_until(s, b"\r\n\r\n")
            if data.startswith(b"HTTP/1.1 200 OK"):
                admitted = True
                mine.append(s)
                break
            s.close()
            time.sleep(0.1)
        ck.check(admitted, "a closed stream frees its place")
        for s in mine + others:
            s.close()


def test_many_streams_do_not_lock_others_out(ck):
    """The issue's case: one client opens hundreds of streams against --max-conns 300.
    Per address it gets 64; with no cap per address it gets half the connections. Either
    way /healthz and purchases still work on fresh connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for per_ip, expect in (("64", 64), ("0", 150)):
        with sklib.Server("--max-conns", "300", "--max-streams-per-ip", per_ip) as srv:
            st, _ = srv.json("POST", "/api/v1/sales", {"id": "m1", "stock": 5})
            ck.eq(st, 201, "create")
            socks, streams = [], 0
            for i in range(400):
                try:
                    s = open_stream(srv.port, "m1")
                except OSError:
                    continue
                head = read_until(s, b"\r\n\r\n")
                if head.startswith(b"HTTP/1.1 200 OK"):
                    streams += 1
                    socks.append(s)
                else:
                    s.close()
            ck.eq(streams, expect, f"streams admitted (--max-streams-per-ip {per_ip})")
            st, _, _ = srv.request("GET", "/healthz")
            ck.eq(st, 200, f"healthz next to {streams} streams")
            st, doc = srv.json("POST", "/api/v1/sales/m1/purchase", {"user_id": "u1", "request_id": "r1"})
            ck.eq(st, 201, f"a purchase next to {streams} streams: {doc}")
            for s in socks:
                s.close()


def test_stream_lifetime(ck):
    """A stream ends after its lifetime: the events written reach the client, then the
    server closes; the client may open another."""
    with sklib.Server("--stream-lifetime", "1000") as srv:
        st, _ = srv.json("POST", "/api/v1/sales", {"id": "t1", "stock": 5})
        ck.eq(st, 201, "create")
        for i in range(2):
            s = open_stream(srv.port, "t1")
            data = read_all(s, timeout=20)  # ends after at most 1 s, plus a sweep
            s.close()
            ck.check(data.startswith(b"HTTP/1.1 200 OK"), f"stream {i + 1} started")
            ck.check(len(events(data.split(b"\r\n\r\n", 1)[-1])) >= 1, f"stream {i + 1} got its first event")
            ck.check(data.endswith(b"\n\n"), f"stream {i + 1} ended after a whole event: {data[-40:]!r}")
        ck.eq(metric(srv, 'seckill_sse_streams_total{outcome="expired"}'), 2, "both ended by the lifetime")
        ck.eq(metric(srv, "seckill_sse_subscribers"), 0, "and left no subscriber behind")


if __name__ == "__main__":
    sklib.run_tests([test_stream_format_and_updates, test_stream_after_pipelined_answers, test_head_on_the_stream_route,
                     test_stream_limits, test_many_streams_do_not_lock_others_out, test_stream_lifetime,
                     test_5000_streams])
