"""The local cluster of scripts/cluster (Redis with AOF always, PostgreSQL, three nodes
with weights 3:2:1 behind nginx, the drain): floods through nginx with seckill-bench,
audited against PostgreSQL after the drain caught up, and cross-checked against the
order streams in Redis. Also: an order that reaches a stream after the drain stopped
reading it (the sale long over) still reaches PostgreSQL; a stream delivered to the drain
again stores each order once and moves no order backwards.

The same tests run with MariaDB as the system of record (scripts/cluster up --db mysql):
test_cluster_flood_mysql.py."""
import os
import socket
import time
import urllib.request

from skcluster import http, metric, run_cluster_tests, test_db

C = None


def node_purchases(i, sale):
    with urllib.request.urlopen(C.node_url(i) + "/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0
    for res in ("confirmed", "duplicate", "sold_out", "limit_reached", "unavailable"):
        total += metric(text, "seckill_purchases_total", {"sale": sale, "result": res}) or 0
    return total


def check_store(ck, sale, stock, limit):
    """The database against the invariants and against Redis's order stream."""
    rows = C.sql(f"SELECT order_id, user_id, request_id, seq FROM orders WHERE sale_id = '{sale}' ORDER BY seq")
    ck.check(len(rows) <= stock, f"{sale}: no oversell in {C.title} ({len(rows)} <= {stock})")
    ck.eq([int(r[3]) for r in rows], list(range(1, len(rows) + 1)), f"{sale}: seqs are 1..n without a gap")
    per_user = {}
    for r in rows:
        per_user[r[1]] = per_user.get(r[1], 0) + 1
    ck.check(max(per_user.values(), default=0) <= limit, f"{sale}: nobody above the per-user limit")
    reqs = [(r[1], r[2]) for r in rows if r[2]]
    ck.eq(len(reqs), len(set(reqs)), f"{sale}: one order per request id")
    red = C.redis()
    try:
        entries = red.cmd("XRANGE", f"sk:{{{sale}}}:orders", "-", "+")
        sold = int(red.cmd("HGET", f"sk:{{{sale}}}:sale", "sold"))
    finally:
        red.close()
    # Each stream entry holds one batch: seqs first .. first + n - 1.
    stream_ids = []
    for e in entries:
        first, n = int(e[0].split("-")[0]), int(dict(zip(e[1][::2], e[1][1::2]))["n"])
        stream_ids += [f"{sale}-{seq:010d}" for seq in range(first, first + n)]
    ck.eq(sorted(r[0] for r in rows), sorted(stream_ids),
          f"{sale}: {C.title} holds exactly the orders of the Redis stream")
    ck.eq(sold, len(rows), f"{sale}: Redis's sold count matches")
    return len(rows)


def test_up(ck):
    ck.check(C.url.startswith("http://127.0.0.1:"), f"up printed the URL: {C.url}")
    p = C.run("status", check=False)
    ck.eq(p.returncode, 0, f"status: every part is up\n{p.stdout}")
    ck.eq(p.stdout.count("DOWN"), 0, "nothing DOWN")
    for part in ("redis", C.db, "node1", "node2", "node3", "drain", "nginx"):
        ck.check(part in p.stdout, f"status shows {part}")
    ck.check(f"{C.db} up" in p.stdout, f"status shows the drain's {C.db} up")
    r = C.redis()
    try:
        ck.eq(r.cmd("CONFIG", "GET", "appendfsync")[1], "always", "Redis runs with appendfsync always")
    finally:
        r.close()


def test_flood(ck):
    rc, out, rep = C.bench("--create-sale", "stock=3000,starts_in=1s,id=flood1", "--users", "5000", "-c", "32",
                           *C.audit_args())
    ck.eq(rc, 0, f"seckill-bench exit status\n{out[-3000:]}")
    ck.check("AUDIT OK" in out, f"the audit against {C.title} is clean")
    ck.eq(rep["audit"]["source"], C.db, "the audit read the database")
    ck.eq(rep["counts"]["confirmed"], 3000, "exactly the stock confirmed")
    ck.eq(rep["audit"]["store_orders"], 3000, f"{C.title} holds every order")
    ck.eq(rep["counts"]["unavailable"] + rep["counts"]["http_error"] + rep["counts"]["net_error"], 0,
          "no errors in a healthy cluster")
    check_store(ck, "flood1", 3000, 1)
    served = [node_purchases(i, "flood1") for i in (1, 2, 3)]
    ck.check(all(n > 0 for n in served), f"every node answered purchases: {served}")
    ck.eq(sum(served), 5000, "the nodes answered every purchase once")
    deadline = time.time() + 10
    lag = None
    while time.time() < deadline:
        lag = metric(C.drain_metrics(), "seckill_drain_lag_total")
        if lag == 0:
            break
        time.sleep(0.2)
    ck.eq(lag, 0, "the drain's lag is back to 0")


def test_flood_limit_two(ck):
    # 400 users, 1200 requests with fresh request ids, limit 2: at most 800 of 1000 sold,
    # every other answer limit_reached (the stock never runs out).
    rc, out, rep = C.bench("--create-sale", "stock=1000,limit=2,starts_in=1s,id=flood2", "--users", "400", "-n",
                           "1200", "-c", "16", *C.audit_args())
    ck.eq(rc, 0, f"seckill-bench exit status\n{out[-3000:]}")
    confirmed, limited = rep["counts"]["confirmed"], rep["counts"]["limit_reached"]
    ck.check(400 <= confirmed <= 800, f"at most two units per user ({confirmed})")
    ck.eq(confirmed + limited, 1200, f"every other answer is limit_reached: {rep['counts']}")
    ck.eq(check_store(ck, "flood2", 1000, 2), confirmed, f"{C.title} holds every confirmed order")


def wait_for(cond, timeout):
    """Polls cond() until it is true or timeout seconds passed; returns its last value."""
    deadline = time.time() + timeout
    v = cond()
    while not v and time.time() < deadline:
        time.sleep(0.2)
        v = cond()
    return v


def test_order_after_the_window(ck):
    # A sale whose window closed two hours ago: the drain finds its stream empty and
    # finished, and stops reading it for new entries. An order that reaches the stream
    # anyway (confirmed by a Redis whose clock is behind the drain host's, or written
    # after the end by anything else) must still reach the database: the drain keeps
    # watching the stream's length.
    now = int(time.time() * 1000)
    st, body = http(C.url + "/api/v1/sales", "POST",
                    {"id": "late1", "stock": 5, "starts_at": now - 3 * 3600 * 1000, "ends_at": now - 2 * 3600 * 1000})
    ck.eq(st, 201, f"create an ended sale: {body}")
    inactive = wait_for(lambda: metric(C.drain_metrics(), "seckill_drain_stream_active", {"sale": "late1"}) == 0, 30)
    ck.check(inactive, "the drain found the ended sale and stopped reading its stream")
    r = C.redis()
    try:
        r.cmd("XADD", "sk:{late1}:orders", "1-0", "n", "1", "t", str(now), "u", "late-user", "r", "late-req")
    finally:
        r.close()
    ck.eq(C.wait_drained("late1", 1, timeout=30), 1, f"the late order reached {C.title}")
    rows = C.sql("SELECT order_id, user_id, request_id FROM orders WHERE sale_id = 'late1'")
    ck.eq(rows, [["late1-0000000001", "late-user", "late-req"]], "as it was in the stream")
    lag = wait_for(lambda: metric(C.drain_metrics(), "seckill_drain_lag", {"sale": "late1"}) == 0, 30)
    ck.check(lag, "and it was acknowledged (lag 0)")


def test_redelivery(ck):
    # The whole stream of flood1 delivered to the drain again (the group's position set
    # back to the start, as after a crash between COMMIT and XACK, at scale): every
    # order stays stored once, an order missing from the database is stored again, and
    # no order's state moves backwards (one later refunded, one cancelled, as the order
    # lifecycle will have them, stay so).
    def inserted_is_stored():
        # The drain's count of rows it inserted (published once a second) has caught up
        # with the rows of the database, which it filled alone.
        total = int(C.sql("SELECT count(*) FROM orders")[0][0])
        return metric(C.drain_metrics(), "seckill_drain_orders_total") == total

    ck.check(wait_for(inserted_is_stored, 10), "the drain's count of inserted orders is published")
    before = metric(C.drain_metrics(), "seckill_drain_orders_total")
    C.sql("UPDATE orders SET state = 'refunded' WHERE order_id = 'flood1-0000000001'")
    C.sql("UPDATE orders SET state = 'cancelled' WHERE order_id = 'flood1-0000000002'")
    C.sql("DELETE FROM orders WHERE order_id = 'flood1-0000000003'")
    r = C.redis()
    try:
        r.cmd("XGROUP", "SETID", "sk:{flood1}:orders", "seckill-drain", "0")
    finally:
        r.close()
    ck.eq(C.wait_drained("flood1", 3000, timeout=30), 3000, "the order missing was stored again")
    ck.check(wait_for(lambda: metric(C.drain_metrics(), "seckill_drain_lag", {"sale": "flood1"}) == 0, 30),
             "the stream was read through and acknowledged again")
    ck.check(wait_for(lambda: metric(C.drain_metrics(), "seckill_drain_orders_total") == before + 1, 10),
             f"one order counted as inserted ({metric(C.drain_metrics(), 'seckill_drain_orders_total')} vs {before})")
    rows = C.sql("SELECT order_id, state FROM orders WHERE sale_id = 'flood1' AND seq <= 4 ORDER BY seq")
    ck.eq(rows, [["flood1-0000000001", "refunded"], ["flood1-0000000002", "cancelled"],
                 ["flood1-0000000003", "confirmed"], ["flood1-0000000004", "confirmed"]],
          "no order moved backwards")
    ck.eq(C.sql("SELECT count(*), count(DISTINCT seq) FROM orders WHERE sale_id = 'flood1'"), [["3000", "3000"]],
          "each order stored once")
    C.sql("UPDATE orders SET state = 'confirmed' WHERE sale_id = 'flood1'")


def test_sse_through_nginx(ck):
    host, port = "127.0.0.1", int(C.vars["NGINX_PORT"])
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"GET /api/v1/sales/flood1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    data = b""
    deadline = time.time() + 5
    while b"event: sale" not in data and time.time() < deadline:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    ck.check(b"text/event-stream" in data, "the event stream passes through nginx")
    ck.check(b"event: sale" in data and b'"sold":3000' in data, "the first event arrives at once, cluster-wide sold")


def test_down(ck):
    pids = []
    for part in ("redis", C.db, "node1", "node2", "node3", "drain", "nginx"):
        with open(os.path.join(C.dir, f"{part}.pid")) as f:
            pids.append(int(f.read()))
    p = C.run("down", "--keep", check=False)
    ck.eq(p.returncode, 0, f"down\n{p.stdout}{p.stderr}")
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    ck.eq(alive, [], "down stopped every process")
    with open(os.path.join(C.dir, "drain", "drain.log")) as f:
        log = f.read()
    ck.check(" error " not in log, "the drain logged no error")
    ck.eq(C.sanitizer_reports(), [], "no sanitizer report in any log")


def tests(cluster):
    global C
    C = cluster
    return [test_up, test_flood, test_flood_limit_two, test_order_after_the_window, test_redelivery,
            test_sse_through_nginx, test_down]


def main(db):
    run_cluster_tests(tests, db)


if __name__ == "__main__":
    main(test_db())
