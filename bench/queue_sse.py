"""bench/queue.sh's crowd of waiting browsers: N users join a queued sale over HTTP, then
hold N queue event streams open, reading whatever arrives, for a given time, and print
how many events they got. Loopback only.
Usage: queue_sse.py PORT SALE N SECONDS"""
import http.client
import selectors
import socket
import sys
import time

port, sale, n, secs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    c.request("POST", f"/api/v1/sales/{sale}/queue", body='{"user_id":"w%d"}' % i,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    assert r.status == 202, r.status
c.close()
sel = selectors.DefaultSelector()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /api/v1/sales/{sale}/queue/events?user_id=w{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print("streams open", flush=True)
events, end = 0, time.time() + secs
while time.time() < end:
    for key, _ in sel.select(timeout=0.5):
        try:
            data = key.fileobj.recv(65536)
        except BlockingIOError:
            continue
        events += data.count(b"event: queue")
print(f"events {events}", flush=True)
