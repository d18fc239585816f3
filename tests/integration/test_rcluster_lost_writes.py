"""Writes a failover loses, under the local cluster (scripts/cluster up --redis-cluster;
nodes and the drain with --replicas-ack 1), audited on PostgreSQL:
  - lost writes: a sale's primary is cut off from its replica (it refuses the replica's
    reconnection), the last units are bought there (WAIT fails: 503), then the primary
    is killed and the replica, which never got those writes, is promoted. The nodes never
    took that sell-out for true (no sold_out answered from it, the counts they show are
    the acknowledged ones), no order answered 201 is missing after the failover, and the
    sale goes on to sell its whole stock;
  - a primary whose replica is down holds back its own sales only: a sale on another
    primary is answered quickly while the first is flooded, and its orders reach
    PostgreSQL while the first primary's entries wait for a replica;
  - a sale is answered 201 only once its index entry and record are on a replica;
  - a node starts while a primary (and its replica) are down, serves the sales of the
    other primaries, and the rest once they are back."""
import os
import signal
import statistics
import threading
import time

from skcluster import Resp, holders_orders, http, key_slot, run_cluster_tests, sale_slot, wait_for

C = None


def part_pid(port):
    with open(os.path.join(C.dir, C.redis_part(port) + ".pid")) as f:
        return int(f.read().strip())


def buy(base, sale, user, req, timeout=20):
    return http(f"{base}/api/v1/sales/{sale}/purchase", "POST", {"user_id": user, "request_id": req},
                timeout=timeout)


def create(sale, stock, base=None):
    now = int(time.time() * 1000)
    return http((base or C.url) + "/api/v1/sales", "POST",
                {"id": sale, "stock": stock, "starts_at": now - 1000, "ends_at": now + 3600 * 1000})


def sale_at(base, sale):
    st, body = http(f"{base}/api/v1/sales/{sale}")
    return body if st == 200 else {}


def redis_cmd(port, *args):
    c = Resp(port, timeout=5)
    try:
        return c.cmd(*args)
    finally:
        c.close()


def cut_replica(port):
    """The primary at port stops replicating: it drops its replica's link and refuses the
    replica's reconnection (a password the replica does not know; connections made
    before keep working)."""
    redis_cmd(port, "CONFIG", "SET", "requirepass", "cut-off")
    c = Resp(port, timeout=5)
    try:
        c.cmd("AUTH", "cut-off")
        c.cmd("CLIENT", "KILL", "TYPE", "replica")
    finally:
        c.close()


def pg_orders(sale):
    return {r[0]: (r[1], r[2]) for r in C.psql(f"SELECT order_id, user_id, request_id FROM orders "
                                                f"WHERE sale_id = '{sale}'")}


def test_lost_writes(ck):
    port = C.rc_primary_ports()[0]
    replica = C.rc_replica_of(port)
    sale = C.sale_on(port, "lost")
    node = C.node_url(1)
    stock = 6
    ck.eq(create(sale, stock)[0], 201, "create a sale of 6 units")
    confirmed = {}  # order id -> (user, request) of every 201
    for i in range(1, 4):
        st, body = buy(node, sale, f"u{i}", f"r{i}")
        ck.eq((st, body.get("result")), (201, "confirmed"), f"with the replica up: u{i} confirmed")
        if st == 201:
            confirmed[body["order_id"]] = (f"u{i}", f"r{i}")

    for i in (1, 2, 3):
        ck.check(wait_for(lambda: sale_at(C.node_url(i), sale).get("remaining") == 3, 10),
                 f"node{i} shows the three orders")
    cut_replica(port)
    for i in range(4, 7):
        st, body = buy(node, sale, f"u{i}", f"r{i}")
        ck.eq(st, 503, f"the replica cut off: u{i} is answered 503 (WAIT fails) ({body})")
        if st == 201:
            confirmed[body["order_id"]] = (f"u{i}", f"r{i}")
    c = Resp(port, timeout=5)
    c.cmd("AUTH", "cut-off")
    sold_on_primary = int(c.cmd("HGET", f"sk:{{{sale}}}:sale", "sold"))
    c.close()
    ck.eq(sold_on_primary, stock, "the primary sold out (writes no replica has)")
    time.sleep(2)  # the nodes poll the live sale every 200 ms
    for i in (1, 2, 3):
        s = sale_at(C.node_url(i), sale)
        ck.eq((s.get("remaining"), s.get("state")), (3, "live"),
              f"node{i} shows the acknowledged counts, not the sell-out of the failed rounds ({s})")
    st, body = buy(node, sale, "u7", "r7")
    ck.check(st != 409, f"a new buyer is not answered sold_out from it ({st} {body})")

    # The primary dies; the replica, which never got the last writes, is promoted. The
    # dead node is started again: it rejoins as the new primary's replica.
    C.run("kill", C.redis_part(port))
    promoted = wait_for(lambda: C.primary_of_slot(sale_slot(sale)) == replica, 40)
    ck.check(promoted, "the replica was promoted")
    C.run("start", C.redis_part(port))
    in_redis = holders_orders(sale, C.rc_cmd(f"sk:{{{sale}}}:holders", "HGETALL", f"sk:{{{sale}}}:holders"))
    for oid, who in confirmed.items():
        ck.eq(in_redis.get(oid), who, f"the confirmed order {oid} survived the failover")
    ck.eq(len(in_redis), 3, "the orders answered 503 were lost with the primary (none was confirmed)")

    # Until the old primary replicates again new purchases are answered 503; then the
    # sale sells its remaining units.
    ok = wait_for(lambda: buy(node, sale, "v0", "w0")[0] in (200, 201), 60, step=0.5)
    ck.check(ok, "purchases are confirmed again once the new primary has a replica")
    st, body = buy(node, sale, "v0", "w0")
    if st in (200, 201):
        confirmed[body["order_id"]] = ("v0", "w0")
    for i in (1, 2, 3):
        wait_for(lambda: sale_at(C.node_url(i), sale).get("remaining") == 2, 10)
        s = sale_at(C.node_url(i), sale)
        ck.eq(s.get("remaining"), 2, f"node{i} shows the promoted replica's counts ({s})")
    results = []
    for i in range(1, 10):
        st, body = buy(C.node_url(1 + i % 3), sale, f"v{i}", f"w{i}")
        results.append((st, body.get("result") or body.get("error")))
        if st == 201:
            confirmed[body["order_id"]] = (f"v{i}", f"w{i}")
    ck.eq([r for r in results if r[0] == 201], [(201, "confirmed")] * 2, f"two more units sold ({results})")
    ck.eq([r for r in results if r[0] != 201], [(409, "sold_out")] * 7, "then sold out")
    ck.eq(len(confirmed), stock, "the sale sold its whole stock (no undersell)")
    for i in (1, 2, 3):
        ck.check(wait_for(lambda: sale_at(C.node_url(i), sale).get("state") == "sold_out", 10),
                 f"node{i} shows it sold out")
    ck.eq(C.wait_drained(sale, stock, timeout=60), stock, "every order reaches PostgreSQL")
    in_pg = pg_orders(sale)
    for oid, who in confirmed.items():
        ck.eq(in_pg.get(oid), who, f"the confirmed order {oid} is in PostgreSQL")
    ck.eq(set(in_pg), set(confirmed), "and nothing else")


def stream_state(sale):
    """What the drain's group shows of a sale's stream, and what of the sale is in
    PostgreSQL (for a failure's message)."""
    key = f"sk:{{{sale}}}:orders"
    users = sorted(r[0] for r in C.psql(f"SELECT user_id FROM orders WHERE sale_id = '{sale}'"))
    lines = [ln for ln in C.drain_metrics().splitlines() if f'"{sale}"' in ln]
    return (f"groups {C.rc_cmd(key, 'XINFO', 'GROUPS', key)}, pending {C.rc_cmd(key, 'XPENDING', key, 'seckill-drain')}, "
            f"length {C.rc_cmd(key, 'XLEN', key)}, in PostgreSQL {users}, drain {lines}")


def test_one_primary_holds_back_its_own(ck):
    ports = C.rc_primary_ports()
    slow, fast = ports[0], ports[1]
    replica = C.rc_replica_of(slow)
    a = C.sale_on(slow, "held")
    b = C.sale_on(fast, "free")
    ck.eq(create(a, 100000)[0], 201, "a sale on one primary")
    ck.eq(create(b, 100000)[0], 201, "and one on another")
    node = C.node_url(2)
    ck.eq(buy(node, a, "a0", "a0")[0], 201, "both sell")
    ck.eq(buy(node, b, "b0", "b0")[0], 201, "both sell.")
    ck.eq(C.wait_drained(a, 1, timeout=30), 1, "drained")
    rpid = part_pid(replica)
    os.kill(rpid, signal.SIGSTOP)
    stop = threading.Event()
    counts = {"a": 0}

    def flood(k):
        i = 0
        while not stop.is_set() and i < 200:
            st, _ = buy(node, a, f"fa{k}-{i}", f"r{i}", timeout=30)
            counts["a"] += 1
            i += 1

    threads = [threading.Thread(target=flood, args=(k,)) for k in range(24)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        lat, answers = [], []
        for i in range(1, 21):
            t0 = time.time()
            st, body = buy(node, b, f"b{i}", f"r{i}", timeout=30)
            lat.append(time.time() - t0)
            answers.append(st)
            time.sleep(0.05)
        ck.eq(answers, [201] * 20, "the other primary's sale is confirmed meanwhile")
        med = statistics.median(lat)
        print(f"  the other sale's answers: median {med * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms "
              f"({counts['a']} purchases of the held sale answered meanwhile)", flush=True)
        ck.check(med < 0.5, f"without waiting for the held primary's rounds (median {med:.3f} s)")
        # The held primary's reads wait for its replica; discovery, acknowledgements and
        # the other primaries' reads go on meanwhile.
        n = C.wait_drained(b, 21, timeout=30)
        ck.eq(n, 21, f"every order of the free sale reaches PostgreSQL while the other primary is held "
              f"({stream_state(b)})")
        ck.eq(C.wait_drained(a, 1, timeout=1), 1, "(those are not written yet)")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        os.kill(rpid, signal.SIGCONT)
    ck.check(wait_for(lambda: buy(node, a, "a1", "a1")[0] in (200, 201), 30, step=0.5),
             "the replica back: the held sale sells again")
    in_redis = holders_orders(a, C.rc_cmd(f"sk:{{{a}}}:holders", "HGETALL", f"sk:{{{a}}}:holders"))
    ck.eq(C.wait_drained(a, len(in_redis), timeout=60), len(in_redis),
          "and its orders (those answered 503 included) reach PostgreSQL")
    ck.eq(C.wait_drained(b, 21, timeout=60), 21, "and every order of the free primary's sale")


def test_create_waits_for_replicas(ck):
    # The sales index's primary (slot of "sk:sales") with its replica stopped: a new sale
    # is not answered 201 (its index entry is on no replica); once the replica is back the
    # same create succeeds.
    index_primary = C.primary_of_slot(key_slot("sk:sales"))
    replica = C.rc_replica_of(index_primary)
    other = next(p for p in C.rc_primary_ports() if p != index_primary)
    sale = C.sale_on(other, "made")
    rpid = part_pid(replica)
    os.kill(rpid, signal.SIGSTOP)
    try:
        st, body = create(sale, 5, base=C.node_url(3))
        ck.eq(st, 503, f"the index's replica down: the create is answered 503 ({body})")
    finally:
        os.kill(rpid, signal.SIGCONT)
    ok = wait_for(lambda: create(sale, 5, base=C.node_url(3))[0] == 201, 30, step=0.5)
    ck.check(ok, "the replica back: the create succeeds")
    ck.eq(buy(C.node_url(1), sale, "c1", "c1")[0], 201, "and the sale sells")


def test_start_with_a_primary_down(ck):
    ports = C.rc_primary_ports()
    down = ports[-1]
    replica = C.rc_replica_of(down)
    up_sale = C.sale_on(ports[0], "alive")
    down_sale = C.sale_on(down, "asleep")
    ck.eq(create(up_sale, 10)[0], 201, "a sale on a healthy primary")
    ck.eq(create(down_sale, 10)[0], 201, "and one on the primary that goes down")
    C.run("stop", "node3")
    C.run("stop", C.redis_part(replica))
    C.run("kill", C.redis_part(down))
    try:
        p = C.run("start", "node3", check=False, timeout=90)
        ck.eq(p.returncode, 0, f"the node starts with a primary down\n{p.stdout}{p.stderr}")
        node = C.node_url(3)
        st, body = buy(node, up_sale, "x1", "x1")
        ck.eq((st, body.get("result")), (201, "confirmed"), f"and sells the healthy primary's sale ({body})")
        st, body = buy(node, down_sale, "y1", "y1")
        ck.eq(st, 503, f"the other sale is unavailable meanwhile ({body})")
    finally:
        C.run("start", C.redis_part(down), check=False)
        C.run("start", C.redis_part(replica), check=False)
    ok = wait_for(lambda: buy(C.node_url(3), down_sale, "y1", "y1")[0] in (200, 201), 60, step=0.5)
    ck.check(ok, "the primary back: the node sells its sale too")


def test_down(ck):
    p = C.run("status", check=False)
    ck.eq(p.returncode, 0, f"every part is up again\n{p.stdout}")
    p = C.down(keep=True)
    ck.eq(p.returncode, 0, f"down\n{p.stdout}{p.stderr}")
    ck.eq(C.sanitizer_reports(), [], "no sanitizer report in any log")


def tests(cluster):
    global C
    C = cluster
    return [test_lost_writes, test_one_primary_holds_back_its_own, test_create_waits_for_replicas,
            test_start_with_a_primary_down, test_down]


if __name__ == "__main__":
    run_cluster_tests(tests, up_args=("--redis-cluster",))
