"""The local cluster of scripts/cluster (Redis with AOF always, PostgreSQL, three nodes
with weights 3:2:1 behind nginx, the drain): floods through nginx with seckill-bench,
audited against PostgreSQL after the drain caught up, and cross-checked against the
orders Redis holds (the streams are trimmed once drained). Also: an order that reaches a stream after the drain stopped
reading it (the sale long over) still reaches PostgreSQL; a stream delivered to the drain
again stores each order once and moves no order backwards. The order lifecycle: a sale
with a payment window flooded by seckill-bench's lifecycle scenario (payments in time and
late, cancels, walk-aways; two controls before it opens), audited against the database
(states, quantities, times), the trail's rows in sale_events, and the whole stream
delivered again (a transition lost from the database is carried again, an order missing
is stored again in its final state, none moves backwards, no trail row twice).

The same tests run with MariaDB as the system of record (scripts/cluster up --db mysql):
test_cluster_flood_mysql.py."""
import json
import os
import shutil
import socket
import tempfile
import time
import urllib.request

from skcluster import holders_orders, http, metric, run_cluster_tests, running, test_db, wait_for

C = None
KEY = None  # the nodes' --payment-secret-file (main)


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
        holders = red.cmd("HGETALL", f"sk:{{{sale}}}:holders")
        sold = int(red.cmd("HGET", f"sk:{{{sale}}}:sale", "sold"))
        # Trimmed within a second or so of the acknowledgement (the drain trims once a second).
        left = wait_for(lambda: red.cmd("XLEN", f"sk:{{{sale}}}:orders") == 0, 15) or \
            red.cmd("XLEN", f"sk:{{{sale}}}:orders")
    finally:
        red.close()
    # The holders hash keeps every order of a live sale (the stream is trimmed once the
    # drain moved its entries).
    in_redis = holders_orders(sale, holders)
    ck.eq({r[0]: (r[1], r[2]) for r in rows}, in_redis,
          f"{sale}: {C.title} holds exactly the orders Redis has, with their users and request ids")
    ck.eq(left, True, f"{sale}: the drained entries were trimmed from the stream ({left})")
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
    # A sale's whole stream delivered to the drain again (the group's position set back
    # to the start, as after a crash between COMMIT and XACK, at scale): every order
    # stays stored once, an order missing from the database is stored again, and no
    # order's state moves backwards (one later refunded, one cancelled, as the order
    # lifecycle will have them, stay so). The drain trims what every group acknowledged,
    # so a second group that reads nothing keeps the stream whole until it goes.
    now = int(time.time() * 1000)
    st, body = http(C.url + "/api/v1/sales", "POST",
                    {"id": "redo1", "stock": 500, "starts_at": now + 1500, "ends_at": now + 3600 * 1000})
    ck.eq(st, 201, f"create the sale: {body}")
    r = C.redis()
    try:
        r.cmd("XGROUP", "CREATE", "sk:{redo1}:orders", "hold", "0", "MKSTREAM")
    finally:
        r.close()
    rc, out, rep = C.bench("--sale", "redo1", "--users", "800", "-c", "16", *C.audit_args())
    ck.eq(rc, 0, f"seckill-bench exit status\n{out[-3000:]}")
    ck.eq(rep["counts"]["confirmed"], 500, "the stock confirmed")

    def inserted_is_stored():
        # The drain's count of rows it inserted (published once a second) has caught up
        # with the rows of the database, which it filled alone.
        total = int(C.sql("SELECT count(*) FROM orders")[0][0])
        return metric(C.drain_metrics(), "seckill_drain_orders_total") == total

    ck.check(wait_for(inserted_is_stored, 10), "the drain's count of inserted orders is published")
    before = metric(C.drain_metrics(), "seckill_drain_orders_total")
    C.sql("UPDATE orders SET state = 'refunded' WHERE order_id = 'redo1-0000000001'")
    C.sql("UPDATE orders SET state = 'cancelled' WHERE order_id = 'redo1-0000000002'")
    C.sql("DELETE FROM orders WHERE order_id = 'redo1-0000000003'")
    r = C.redis()
    try:
        ck.eq(r.cmd("XLEN", "sk:{redo1}:orders") > 0, True, "the other group kept the stream")
        r.cmd("XGROUP", "SETID", "sk:{redo1}:orders", "seckill-drain", "0")
    finally:
        r.close()
    ck.eq(C.wait_drained("redo1", 500, timeout=30), 500, "the order missing was stored again")
    ck.check(wait_for(lambda: metric(C.drain_metrics(), "seckill_drain_lag", {"sale": "redo1"}) == 0, 30),
             "the stream was read through and acknowledged again")
    ck.check(wait_for(lambda: metric(C.drain_metrics(), "seckill_drain_orders_total") == before + 1, 10),
             f"one order counted as inserted ({metric(C.drain_metrics(), 'seckill_drain_orders_total')} vs {before})")
    rows = C.sql("SELECT order_id, state FROM orders WHERE sale_id = 'redo1' AND seq <= 4 ORDER BY seq")
    ck.eq(rows, [["redo1-0000000001", "refunded"], ["redo1-0000000002", "cancelled"],
                 ["redo1-0000000003", "confirmed"], ["redo1-0000000004", "confirmed"]],
          "no order moved backwards")
    ck.eq(C.sql("SELECT count(*), count(DISTINCT seq) FROM orders WHERE sale_id = 'redo1'"), [["500", "500"]],
          "each order stored once")
    C.sql("UPDATE orders SET state = 'confirmed' WHERE sale_id = 'redo1'")
    r = C.redis()
    try:
        r.cmd("XGROUP", "DESTROY", "sk:{redo1}:orders", "hold")
        left = wait_for(lambda: r.cmd("XLEN", "sk:{redo1}:orders") == 0, 15) or r.cmd("XLEN", "sk:{redo1}:orders")
    finally:
        r.close()
    ck.eq(left, True, f"with the other group gone, the stream was trimmed ({left})")


def control(sale, what, body, method="POST"):
    """An operator's control through nginx; a node that has not seen the sale yet (it was
    created through another one a moment ago) answers unknown_sale: asked again with the
    same request_id, which makes a repeat harmless."""
    url = C.url + f"/api/v1/sales/{sale}" + (f"/{what}" if what else "")
    deadline = time.time() + 10
    while True:
        st, out = http(url, method, body)
        if not (st == 404 and isinstance(out, dict) and out.get("error") == "unknown_sale") or time.time() > deadline:
            return st, out
        time.sleep(0.2)


def lifecycle_rows(sale):
    """The orders' lifecycle columns, times as unix ms ("" when NULL), by seq."""
    if C.db == "postgres":
        ms = "coalesce((extract(epoch FROM {0}) * 1000)::bigint::text, '')"
    else:
        ms = "COALESCE(CAST(TIMESTAMPDIFF(MICROSECOND, TIMESTAMP'1970-01-01 00:00:00', {0}) DIV 1000 AS CHAR), '')"
    cols = ", ".join([ms.format(c) for c in ("pay_by", "paid_at", "closed_at")])
    rows = C.sql(f"SELECT order_id, user_id, quantity, state, coalesce(payment_id, ''), {cols} FROM orders "
                 f"WHERE sale_id = '{sale}' ORDER BY seq")
    return [tuple(r) for r in rows]


def trail_rows(sale):
    rows = C.sql(f"SELECT seq, kind, actor, request_id, after_values FROM sale_events WHERE sale_id = '{sale}' "
                 "ORDER BY seq")
    return [(int(r[0]), r[1], r[2], r[3], json.loads(r[4])) for r in rows]


def test_lifecycle(ck):
    # A sale with a 2 s payment window, paused and resumed before it opens (the trail),
    # flooded by the lifecycle crowd: 60 % pay in time, 10 % late, 10 % cancel, the rest
    # walk away; the crowd buys the returned units again until every unit is sold.
    # A second group keeps the whole stream for the redelivery below.
    now = int(time.time() * 1000)
    st, body = http(C.url + "/api/v1/sales", "POST",
                    {"id": "life1", "stock": 40, "per_user_limit": 1, "payment_window_ms": 2000,
                     "starts_at": now + 2500, "ends_at": now + 3600 * 1000})
    ck.eq(st, 201, f"create the lifecycle sale: {body}")
    r = C.redis()
    try:
        r.cmd("XGROUP", "CREATE", "sk:{life1}:orders", "hold", "0", "MKSTREAM")
    finally:
        r.close()
    st, body = control("life1", "pause", {"request_id": "ops-1"})
    ck.eq((st, body.get("result")), (200, "applied"), f"pause before the start: {body}")
    st, body = control("life1", "resume", {"request_id": "ops-2"})
    ck.eq((st, body.get("result")), (200, "applied"), f"resume: {body}")
    # Cancels at 20 %: at 10 % a run of ~56 reservations had none (0.9^56, ~0.3 %).
    rc, out, rep = C.bench("--sale", "life1", "--users", "400", "-c", "8", "--pay", "0.6", "--late", "0.1",
                           "--cancel", "0.2", "--payment-secret-file", KEY, *C.audit_args(), timeout=240)
    ck.eq(rc, 0, f"seckill-bench exit status\n{out[-3000:]}")
    ck.check("AUDIT OK" in out, f"the lifecycle audited clean against {C.title}")
    a = rep["audit"]
    ck.eq((a["source"], "state_mismatch" in a), (C.db, True), "the audit judged the lifecycle from the database")
    ck.eq(a["reservations_checked"], a["reservations"], "every reservation the crowd saw is in the database")
    ck.check(a["reservations"] > 40, f"units came back and were reserved again ({a['reservations']} reservations)")
    ck.eq(a.get("trail", {}).get("entries"), 2, "the audit placed the orders against the trail")
    ck.eq(a["timed_max_units"] <= 40 and a["timed_max_units"] > 0, True,
          f"by the orders' times, never more than the stock held or sold ({a['timed_max_units']})")
    rows = lifecycle_rows("life1")
    by = {}
    for row in rows:
        by[row[3]] = by.get(row[3], 0) + 1
    ck.eq(by.get("confirmed"), 40, f"every unit confirmed in {C.title}: {by}")
    ck.eq(by.get("reserved", 0), 0, "no reservation left")
    ck.check(by.get("expired", 0) > 0 and by.get("cancelled", 0) > 0, f"expired and cancelled orders: {by}")
    ck.check(all(r[4] and r[6] and not r[7] for r in rows if r[3] == "confirmed"),
             "confirmed orders carry their payment id and paid_at, no closed_at")
    ck.check(all(r[7] and not r[6] for r in rows if r[3] in ("expired", "cancelled")),
             "returned orders carry closed_at and were never paid")
    ck.check(all(r[5] and int(r[6] or 0) <= int(r[5]) for r in rows), "every order has pay_by; none paid after it (I8)")
    ck.check(all(int(r[7]) >= int(r[5]) for r in rows if r[3] == "expired"), "none expired before its pay_by")
    ck.check(wait_for(lambda: metric(C.drain_metrics(), "seckill_drain_reconcile_diff", {"sale": "life1"}) == 0, 15),
             "the drain reconciled the sale (units sold in Redis against confirmed units)")
    red = C.redis()
    try:
        sold, held, seq = red.cmd("HMGET", "sk:{life1}:sale", "sold", "held", "seq")
    finally:
        red.close()
    ck.eq((int(sold), int(held), int(seq)), (40, 0, len(rows)), "Redis's counts: sold, held, orders made")

    # The trail's rows.
    trail = trail_rows("life1")
    ck.eq([t[:4] for t in trail], [(1, "pause", "anonymous", "ops-1"), (2, "resume", "anonymous", "ops-2")],
          "each control is a row of sale_events, in the trail's order")
    ck.eq((trail[0][4].get("paused"), trail[1][4].get("paused")), (True, False), "with the sale after it")

    # Redelivery: the whole stream again (the group set back to its start). A payment the
    # database lost, an order it lost, an order moved on by hand: the first two are
    # carried again, the third never moves backwards, nothing is stored twice.
    paid = next(r for r in rows if r[3] == "confirmed")
    expired = next(r for r in rows if r[3] == "expired")
    other = [r for r in rows if r[3] == "confirmed"][1]
    C.sql(f"UPDATE orders SET state = 'reserved', paid_at = NULL, payment_id = NULL WHERE order_id = '{paid[0]}'")
    C.sql(f"DELETE FROM orders WHERE order_id = '{expired[0]}'")
    C.sql(f"UPDATE orders SET state = 'refunded' WHERE order_id = '{other[0]}'")
    C.sql("DELETE FROM sale_events WHERE sale_id = 'life1' AND seq = 2")
    before = metric(C.drain_metrics(), "seckill_drain_transitions_total")
    r = C.redis()
    try:
        ck.check(r.cmd("XLEN", "sk:{life1}:orders") > 0, "the other group kept the stream")
        r.cmd("XGROUP", "SETID", "sk:{life1}:orders", "seckill-drain", "0")
    finally:
        r.close()
    ck.check(wait_for(lambda: metric(C.drain_metrics(), "seckill_drain_transitions_total") > before, 30),
             "the transitions were delivered again")
    ck.check(wait_for(lambda: metric(C.drain_metrics(), "seckill_drain_lag", {"sale": "life1"}) == 0, 30),
             "and acknowledged again")
    want = [r if r[0] != other[0] else r[:3] + ("refunded",) + r[4:] for r in rows]
    # The lag can read 0 before the drain has read the group's new start: wait for the
    # rows themselves (a slow machine applies the redelivered batches a while later).
    wait_for(lambda: lifecycle_rows("life1") == want and trail_rows("life1") == trail, 30)
    again = lifecycle_rows("life1")
    ck.eq(again, want, "every order as before: the payment and the lost order carried again (the order in its "
                       "final state), the order moved on by hand not moved backwards")
    ck.eq(trail_rows("life1"), trail, "the trail row carried again, none twice")
    C.sql(f"UPDATE orders SET state = 'confirmed' WHERE order_id = '{other[0]}'")
    r = C.redis()
    try:
        r.cmd("XGROUP", "DESTROY", "sk:{life1}:orders", "hold")
        left = wait_for(lambda: r.cmd("XLEN", "sk:{life1}:orders") == 0, 15) or r.cmd("XLEN", "sk:{life1}:orders")
    finally:
        r.close()
    ck.eq(left, True, f"with the other group gone, the stream was trimmed ({left})")


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
    alive = [pid for pid in pids if running(pid)]
    ck.eq(alive, [], "down stopped every process")
    with open(os.path.join(C.dir, "drain", "drain.log")) as f:
        log = f.read()
    ck.check(" error " not in log, "the drain logged no error")
    ck.eq(C.sanitizer_reports(), [], "no sanitizer report in any log")


def tests(cluster):
    global C
    C = cluster
    return [test_up, test_flood, test_flood_limit_two, test_order_after_the_window, test_redelivery,
            test_lifecycle, test_sse_through_nginx, test_down]


def main(db):
    global KEY
    tmp = tempfile.mkdtemp(prefix="seckill-paykey-")
    try:
        KEY = os.path.join(tmp, "payment.key")
        with open(KEY, "w") as f:
            f.write(f"cluster-{time.time_ns()}\n")
        run_cluster_tests(tests, db, env={"SECKILL_NODE_ARGS": f"--payment-secret-file {KEY}"})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(test_db())
