"""Faults of a Redis Cluster under the local cluster (scripts/cluster up --redis-cluster;
nodes and the drain with --replicas-ack 1), each audited on PostgreSQL:
  - a replica down: WAIT times out, so its shard answers 503 and confirms nothing (the
    order may exist: the buyer finds it, and a retry answers duplicate once the replica
    is back); the drain holds the entries back meanwhile; the other shards sell on;
  - a live sale's slot resharded to another primary mid-flood (redis-cli --cluster
    reshard): the nodes and the drain follow ASK and MOVED;
  - kill -9 of the primary of a live sale mid-flood: its replica is promoted, the dead
    node is started again (it rejoins as the new primary's replica), the flood goes on:
    no lost confirmation, no oversell, no duplicate, sold out exactly."""
import subprocess
import time
import urllib.request

from skcluster import holders_orders, http, load_json, metric, run_cluster_tests, sale_slot, wait_for

C = None


def node_metric(i, name, labels=None):
    with urllib.request.urlopen(C.node_url(i) + "/metrics", timeout=5) as r:
        return metric(r.read().decode(), name, labels)


def buy(base, sale, user, req):
    return http(f"{base}/api/v1/sales/{sale}/purchase", "POST", {"user_id": user, "request_id": req}, timeout=20)


def create(sale, stock):
    now = int(time.time() * 1000)
    return http(C.url + "/api/v1/sales", "POST", {"id": sale, "stock": stock, "starts_at": now - 1000,
                                                   "ends_at": now + 3600 * 1000})


def pg_count(sale):
    return int(C.psql(f"SELECT count(*) FROM orders WHERE sale_id = '{sale}'")[0][0])


def check_pg_against_redis(ck, name, sale):
    rows = C.psql(f"SELECT order_id, user_id, request_id FROM orders WHERE sale_id = '{sale}'")
    in_redis = holders_orders(sale, C.rc_cmd(f"sk:{{{sale}}}:holders", "HGETALL", f"sk:{{{sale}}}:holders"))
    ck.eq({r[0]: (r[1], r[2]) for r in rows}, in_redis, f"{name}: PostgreSQL holds exactly the orders of the shard")


def flood(sale, stock, users, seconds, rate, actions):
    """A flood through nginx in the background; actions: [(seconds after the sale
    opened, callable)]. Returns (exit status, output, report) after the audit."""
    proc, jpath = C.bench("--create-sale", f"stock={stock},starts_in=1s,id={sale}", "--users", str(users),
                          "--duration", f"{seconds}s", "--rate", str(rate), "-c", "16", "--retries", "40",
                          "--retry-backoff", "50", "--timeout", "8s", "--audit-pg", C.vars["PG_URL"],
                          background=True)
    t0 = time.time()
    for at, action in actions:
        delay = t0 + 1 + at - time.time()
        if delay > 0:
            time.sleep(delay)
        action()
    try:
        out, _ = proc.communicate(timeout=seconds + 240)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out, load_json(jpath)


def check_run(ck, name, rc, out, rep, stock):
    ck.eq(rc, 0, f"{name}: seckill-bench exit status (0 = audit clean)\n{out[-4000:]}")
    if not rep or not rep.get("audit"):
        ck.check(False, f"{name}: no report")
        return
    a, c = rep["audit"], rep["counts"]
    print(f"  {name}: confirmed {c['confirmed']}, sold_out {c['sold_out']}, 503 {c['unavailable']}, "
          f"net_error {c['net_error']}, retries {rep['retries']}, in doubt {rep['in_doubt']}, "
          f"recovered by asking {a['recovered']}", flush=True)
    for k in ("oversold", "undersold", "lost", "phantom", "duplicates"):
        ck.eq(a[k], 0, f"{name}: {k}")
    ck.eq(a["store_orders"], stock, f"{name}: sold out exactly, every order in PostgreSQL")


def test_replica_down(ck):
    port = C.rc_primary_ports()[0]
    replica = C.rc_replica_of(port)
    sale = C.sale_on(port, "repl")
    other = C.sale_on(C.rc_primary_ports()[1], "other")
    node = C.node_url(1)
    ck.eq(create(sale, 10)[0], 201, "create a sale")
    ck.eq(create(other, 10)[0], 201, "and one on another shard")
    st, body = buy(node, sale, "u1", "r1")
    ck.eq((st, body.get("result")), (201, "confirmed"), "with the replica up: confirmed")
    ck.eq(C.wait_drained(sale, 1, timeout=30), 1, "and drained")
    waits_before = metric(C.drain_metrics(), "seckill_drain_replica_waits_total") or 0

    C.run("stop", C.redis_part(replica))
    st, body = buy(node, sale, "u2", "r2")
    ck.eq((st, body.get("error")), (503, "unavailable"), f"the replica down: WAIT times out, 503 ({body})")
    ck.check((node_metric(1, "seckill_ledger_replica_timeouts_total") or 0) > 0, "counted in the node's metrics")
    st, body = http(f"{node}/api/v1/sales/{sale}/orders/u2")
    ck.eq(st, 200, "the buyer can look the order up")
    seq_u2 = body["orders"][0]["order_id"] if body.get("orders") else None
    ck.check(seq_u2 is not None, f"it exists on the primary (the outcome was unknown, not refused): {body}")
    st, body = buy(node, other, "v1", "r1")
    ck.eq((st, body.get("result")), (201, "confirmed"), "another shard sells on")
    waited = wait_for(lambda: (metric(C.drain_metrics(), "seckill_drain_replica_waits_total") or 0) > waits_before,
                      20)
    ck.check(waited, "the drain holds the entry back until a replica has it")
    ck.eq(pg_count(sale), 1, "so PostgreSQL does not have it yet")

    C.run("start", C.redis_part(replica))
    ok = wait_for(lambda: buy(node, sale, "u2", "r2")[0] == 200, 30, step=0.5)
    st, body = buy(node, sale, "u2", "r2")
    ck.check(ok, "the replica back: the retry with the same request id answers")
    ck.eq((st, body.get("result"), body.get("order_id")), (200, "duplicate", seq_u2),
          "duplicate, with the order the 503 was about")
    st, body = buy(node, sale, "u3", "r3")
    ck.eq((st, body.get("result")), (201, "confirmed"), "and new purchases are confirmed again")
    ck.eq(C.wait_drained(sale, 3, timeout=30), 3, "every order reaches PostgreSQL")
    check_pg_against_redis(ck, "replica down", sale)


def test_reshard(ck):
    # A sale in the first slot of a primary: redis-cli --cluster reshard moves a
    # primary's slots from its lowest, so moving one slot moves exactly this sale.
    src, dst = C.rc_primaries()[:2]
    first = min(a for a, _ in src["slots"])
    sale = next(f"move-{i}" for i in range(2000000) if sale_slot(f"move-{i}") == first)
    moved = {}

    def reshard():
        p = subprocess.run(["redis-cli", "--cluster", "reshard", f"127.0.0.1:{src['port']}", "--cluster-from",
                            src["id"], "--cluster-to", dst["id"], "--cluster-slots", "1", "--cluster-yes"],
                           capture_output=True, text=True, timeout=120)
        moved["rc"], moved["out"] = p.returncode, p.stdout + p.stderr

    rc, out, rep = flood(sale, 1500, 2500, 10, 200, [(2, reshard)])
    ck.eq(moved.get("rc"), 0, f"redis-cli --cluster reshard\n{moved.get('out', '')[-2000:]}")
    ck.eq(C.primary_of_slot(first), dst["port"], f"slot {first} (sale {sale}) moved to the other primary")
    logs = [open(f"{C.dir}/node{i}/seckill.log", errors="replace").read() for i in (1, 2, 3)]
    ck.check(all(f"(sale '{sale}') moved to" in t or "the cluster's map changed" in t for t in logs),
             "every node followed the move (a MOVED, or the map read again; their logs say so)")
    check_run(ck, "resharded mid-flood", rc, out, rep, 1500)
    check_pg_against_redis(ck, "resharded", sale)


def test_kill_primary(ck):
    port = C.rc_primary_ports()[-1]
    replica = C.rc_replica_of(port)
    part = C.redis_part(port)
    sale = C.sale_on(port, "kill")
    seen = {}

    def kill():
        C.run("kill", part)
        # The replica takes over once the others agree the primary failed (node
        # timeout 2 s); then the dead node is started again and rejoins as the new
        # primary's replica, so that confirmations can wait for a replica again.
        seen["promoted"] = wait_for(lambda: C.primary_of_slot(sale_slot(sale)) == replica, 30)
        C.run("start", part)

    rc, out, rep = flood(sale, 1500, 2500, 14, 200, [(1.5, kill)])
    ck.check(seen.get("promoted"), "the replica was promoted")
    ck.eq(C.primary_of_slot(sale_slot(sale)), replica, "and serves the sale")
    check_run(ck, "kill -9 of the sale's primary", rc, out, rep, 1500)
    if rep:
        c = rep["counts"]
        ck.check(c["unavailable"] > 0 or rep["retries"] > 0 or rep["in_doubt"] > 0,
                 f"the crowd saw the failover as 503s ({c['unavailable']}) and retries ({rep['retries']})")
    check_pg_against_redis(ck, "failover", sale)
    ck.check(wait_for(lambda: metric(C.drain_metrics(), "seckill_drain_reconcile_diff", {"sale": sale}) == 0, 30),
             "the drain reports the sale reconciled")


def test_down(ck):
    p = C.run("status", check=False)
    ck.eq(p.returncode, 0, f"every part is up again\n{p.stdout}")
    p = C.down(keep=True)
    ck.eq(p.returncode, 0, f"down\n{p.stdout}{p.stderr}")
    ck.eq(C.sanitizer_reports(), [], "no sanitizer report in any log")


def tests(cluster):
    global C
    C = cluster
    return [test_replica_down, test_reshard, test_kill_primary, test_down]


if __name__ == "__main__":
    run_cluster_tests(tests, up_args=("--redis-cluster",))
