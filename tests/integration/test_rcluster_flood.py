"""The local cluster on a Redis Cluster (scripts/cluster up --redis-cluster: three
primaries with a replica each; nodes and the drain with --replicas-ack 1): three sales,
one on each shard, flooded at once through nginx and audited on PostgreSQL; PostgreSQL
compared with every shard's holders; the streams trimmed once drained; the drain
killed and restarted after trimming; reconciliation; and 100 ended sales retired, after
which Redis holds about what one drained sale needs.

The same with MariaDB as the system of record (scripts/cluster up --db mysql
--redis-cluster): test_rcluster_flood_mysql.py."""
import os
import time
import urllib.request

from skcluster import holders_orders, http, load_json, metric, run_cluster_tests, sale_slot, test_db, wait_for
from sklib import SRC

C = None
SALES_PER_SHARD = {}


def drain_metric(name, labels=None):
    return metric(C.drain_metrics(), name, labels)


def node_purchases(i, sale):
    with urllib.request.urlopen(C.node_url(i) + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(metric(text, "seckill_purchases_total", {"sale": sale, "result": res}) or 0
               for res in ("confirmed", "duplicate", "sold_out", "limit_reached", "unavailable"))


def check_against_redis(ck, sale, expect):
    """The database holds exactly the orders the sale's shard holds; the stream is trimmed;
    the drain reports the counts reconciled."""
    rows = C.sql(f"SELECT order_id, user_id, request_id FROM orders WHERE sale_id = '{sale}'")
    in_redis = holders_orders(sale, C.rc_cmd(f"sk:{{{sale}}}:holders", "HGETALL", f"sk:{{{sale}}}:holders"))
    ck.eq(len(rows), expect, f"{sale}: {C.title} holds {expect} orders")
    ck.eq({r[0]: (r[1], r[2]) for r in rows}, in_redis, f"{sale}: the same orders as its shard's holders hash")
    trimmed = wait_for(lambda: C.rc_cmd(f"sk:{{{sale}}}:orders", "XLEN", f"sk:{{{sale}}}:orders") == 0, 20)
    ck.check(trimmed, f"{sale}: the drained entries were trimmed from the stream")
    diff = wait_for(lambda: drain_metric("seckill_drain_reconcile_diff", {"sale": sale}) == 0, 20)
    ck.check(diff, f"{sale}: the drain reports Redis and {C.title} reconciled (diff 0): "
                   f"{drain_metric('seckill_drain_reconcile_diff', {'sale': sale})}")


def test_up(ck):
    p = C.run("status", check=False)
    ck.eq(p.returncode, 0, f"status: every part is up\n{p.stdout}")
    ck.eq(p.stdout.count(" primary"), 3, f"three primaries\n{p.stdout}")
    ck.eq(p.stdout.count(" replica"), 3, "three replicas")
    ck.eq(C.vars["REDIS_URL"].count(","), 5, "the nodes and the drain get all six as seeds")
    nodes = C.rc_nodes()
    prim = {n["id"]: n for n in nodes if n["role"] == "primary"}
    ck.eq(sum(b - a + 1 for n in prim.values() for a, b in n["slots"]), 16384, "every slot is served")
    ck.eq(sorted(n["primary"] in prim for n in nodes if n["role"] == "replica"), [True] * 3,
          "each replica follows a primary")
    r = C.rc_cmd("x", "CONFIG", "GET", "appendfsync")
    ck.eq(r[1], "always", "the shards run with appendfsync always")


def test_spread_flood(ck):
    # One sale on each shard, flooded at once: a node's batch spreads over all three
    # primaries.
    sales = []
    for port in C.rc_primary_ports():
        sid = C.sale_on(port, "spread", avoid=sales)
        sales.append(sid)
        SALES_PER_SHARD[port] = sid
    ck.eq(len(set(C.primary_of_slot(sale_slot(s)) for s in sales)), 3,
          f"the sales {sales} live on three different primaries")
    runs = [C.bench("--create-sale", f"stock=1500,starts_in=2s,id={sid}", "--users", "2500", "-c", "16",
                    "--retries", "10", *C.audit_args(), background=True) for sid in sales]
    for sid, (proc, jpath) in zip(sales, runs):
        try:
            out, _ = proc.communicate(timeout=240)
        except Exception:
            proc.kill()
            out, _ = proc.communicate()
        rep = load_json(jpath) or {}
        ck.eq(proc.returncode, 0, f"{sid}: seckill-bench exit status (0 = audit clean)\n{out[-3000:]}")
        a = rep.get("audit") or {}
        for k in ("oversold", "undersold", "lost", "phantom", "duplicates"):
            ck.eq(a.get(k), 0, f"{sid}: {k}")
        ck.eq(a.get("store_orders"), 1500, f"{sid}: sold out exactly, every order in {C.title}")
        c = rep.get("counts") or {}
        print(f"  {sid}: confirmed {c.get('confirmed')}, 503 {c.get('unavailable')}, retries {rep.get('retries')}",
              flush=True)
    for sid in sales:
        check_against_redis(ck, sid, 1500)
    served = [sum(node_purchases(i, s) for s in sales) for i in (1, 2, 3)]
    ck.check(all(n > 0 for n in served), f"every node answered purchases: {served}")


def test_drain_restart_after_trim(ck):
    # A live sale drained and trimmed; the drain killed; more orders; the drain started
    # again: it finds its group where it left it and moves the rest.
    sid = C.sale_on(C.rc_primary_ports()[0], "restart")
    rc, out, rep = C.bench("--create-sale", f"stock=3000,starts_in=1s,id={sid}", "--users", "800", "-c", "16",
                           *C.audit_args())
    ck.eq(rc, 0, f"first flood audited clean\n{out[-2000:]}")
    # Audited clean, so every confirmation is stored; a buyer whose final answer was a
    # refusal the bench does not retry (a 425 at the start instant, say) buys in the
    # second flood instead. Seen once in a loaded run: 799.
    first = rep["counts"]["confirmed"]
    ck.check(first >= 790, f"the first flood confirmed {first} of 800 buyers: {rep['counts']}")
    ck.check(wait_for(lambda: C.rc_cmd(f"sk:{{{sid}}}:orders", "XLEN", f"sk:{{{sid}}}:orders") == 0, 20),
             "its stream was trimmed after the drain moved it")
    C.run("kill", "drain")
    rc, out, rep = C.bench("--sale", sid, "--users", "1500", "-c", "16", "--no-audit")
    ck.eq(rc, 0, f"second flood with the drain down\n{out[-2000:]}")
    ck.eq(rep["counts"]["confirmed"], 1500 - first,
          f"{1500 - first} more buyers (the first flood's {first} hold their one order): {rep['counts']}")
    left = C.rc_cmd(f"sk:{{{sid}}}:orders", "XLEN", f"sk:{{{sid}}}:orders")
    ck.check(left > 0, f"the new orders wait in the stream ({left} entries)")
    C.run("start", "drain")
    ck.eq(C.wait_drained(sid, 1500, timeout=60), 1500, "the restarted drain moved every order")
    check_against_redis(ck, sid, 1500)


def test_retired_sales_and_memory(ck):
    # 100 sales of ORDERS orders each, all ended, drained and reconciled: the drain
    # retires them (--retention 1 here) and their holders, order records and streams expire, so Redis
    # ends up holding less than one drained live sale of the same size.
    n_sales, orders = 100, 2000
    with open(os.path.join(SRC, "src", "backend", "lua", "buy.lua"), "rb") as f:
        buy = f.read()
    shas = {}
    for port in C.rc_primary_ports():
        shas[port] = C.rc_cmd(C.sale_on(port, "probe"), "SCRIPT", "LOAD", buy)

    def fill(sale):
        keys = [f"sk:{{{sale}}}:{k}" for k in ("sale", "holders", "orders", "o", "due", "log", "ctl")]
        sha = next(iter(shas.values()))
        for first in range(0, orders, 1000):
            argv = [-1, -1]
            for u in range(first, first + 1000):
                argv += ["b", f"user{u}", f"req{u}", 1]
            r = C.rc_cmd(keys[0], "EVALSHA", sha, 7, *keys, *argv)
            assert r[0][0] == first + 1000, f"{sale}: the script made {r[0][0]} orders"

    def mem():
        m = C.rc_memory()
        return C.rc_keys_memory(), m

    base, base_all = mem()
    index_there = C.rc_cmd("sk:sales", "EXISTS", "sk:sales")
    # The yardstick: one live sale of the same size, drained and trimmed.
    now = int(time.time() * 1000)
    st, body = http(C.url + "/api/v1/sales", "POST", {"id": "yardstick", "stock": orders, "starts_at": now - 1000,
                                                       "ends_at": now + 3600 * 1000})
    ck.eq(st, 201, f"create the yardstick sale: {body}")
    fill("yardstick")
    ck.eq(C.wait_drained("yardstick", orders, timeout=60), orders, "the yardstick sale is drained")
    wait_for(lambda: C.rc_cmd("sk:{yardstick}:orders", "XLEN", "sk:{yardstick}:orders") == 0, 20)
    one_total, one_all = mem()
    one = one_total - base

    # Each sale is created just before it is filled and ends a few seconds later.
    ids = [f"old{i}" for i in range(n_sales)]
    t0 = time.time()
    for sid in ids:
        now = int(time.time() * 1000)
        st, body = http(C.url + "/api/v1/sales", "POST", {"id": sid, "stock": orders, "starts_at": now - 1000,
                                                           "ends_at": now + 8000})
        assert st == 201, body
        fill(sid)
    full, _ = mem()
    print(f"  filled {n_sales} sales x {orders} orders in {time.time() - t0:.1f} s; the keys take: one drained "
          f"sale {one / 1e6:.3f} MB, the {n_sales} sales {(full - one_total) / 1e6:.2f} MB", flush=True)
    total = n_sales * orders

    def all_in_db():
        return int(C.sql("SELECT count(*) FROM orders WHERE sale_id LIKE 'old%'")[0][0]) == total
    ck.check(wait_for(all_in_db, 120, step=1), f"all {total} orders reached {C.title}")

    def all_gone():
        gone = 0
        for sid in ids:
            if C.rc_cmd(f"sk:{{{sid}}}:holders", "EXISTS", f"sk:{{{sid}}}:holders", f"sk:{{{sid}}}:orders") == 0:
                gone += 1
        return gone == n_sales
    ck.check(wait_for(all_gone, 120, step=1), "every ended sale was retired and its holders and stream expired")
    ck.check(all(C.rc_cmd(f"sk:{{{sid}}}:sale", "HGET", f"sk:{{{sid}}}:sale", "retired_at") for sid in ids),
             "their sale records stay, marked retired (the ids cannot be taken again)")
    ck.check((drain_metric("seckill_drain_retired_total") or 0) >= n_sales, "the drain counted the retirements")
    # The holders and the stream are gone; a retired sale's other keys expire on their
    # own clocks, a moment apart: wait (bounded) for the count of what stays.
    stays = 4 + n_sales + (0 if index_there else 1)
    wait_for(lambda: C.rc_memory()["keys"] - base_all["keys"] == stays, 30, step=1)
    end, end_all = mem()
    left = end - one_total
    print(f"  after retirement: the keys take {left / 1e3:.1f} kB more than with the one sale; used_memory "
          f"{(end_all['used_memory'] - one_all['used_memory']) / 1e3:.1f} kB more (it also holds the replication "
          f"buffers); keys {end_all['keys'] - base_all['keys']} more than at the start", flush=True)
    ck.eq(end_all["keys"] - base_all["keys"], stays,
          "what stays: the yardstick's four keys (sale, holders, order records, stream) and one record per "
          "retired sale (and the sales index)")
    ck.check(left < one / 4, f"{n_sales} retired sales take less than a quarter of one drained sale ({left} < "
                             f"{one} / 4 bytes)")
    # A node that cached the sale's holders before they expired answers from them; one
    # that starts afresh finds the sale retired and says where its orders went.
    C.run("stop", "node3")
    C.run("start", "node3")
    st, body = http(C.node_url(3) + "/api/v1/sales/old7/orders/user5")
    ck.eq(st, 410, f"a buyer's orders of a retired sale, from a fresh node: 410 moved ({body})")
    st, body = http(C.url + "/api/v1/sales/old7/orders/user5")
    ck.check(st == 410 or (st == 200 and body["orders"][0]["order_id"] == "old7-0000000006"),
             f"through nginx: the order from a node's cache, or 410 ({st} {body})")
    st, body = http(C.url + "/api/v1/sales/old7/purchase", "POST", {"user_id": "late", "request_id": "x"})
    ck.eq(st, 410, f"a purchase of the ended sale: 410 ended ({body})")
    st, body = http(C.url + "/api/v1/sales", "POST", {"id": "old7", "stock": 5, "starts_at": now,
                                                       "ends_at": now + 60000})
    ck.eq(st, 409, "a retired sale's id cannot be taken again")


def test_down(ck):
    p = C.down(keep=True)
    ck.eq(p.returncode, 0, f"down\n{p.stdout}{p.stderr}")
    ck.eq(C.sanitizer_reports(), [], "no sanitizer report in any log")
    with open(os.path.join(C.dir, "drain", "drain.log")) as f:
        log = f.read()
    ck.check(" error " not in log, "the drain logged no error")


def tests(cluster):
    global C
    C = cluster
    return [test_up, test_spread_flood, test_drain_restart_after_trim, test_retired_sales_and_memory, test_down]


def main(db):
    run_cluster_tests(tests, db, up_args=("--redis-cluster",), env={"SECKILL_DRAIN_ARGS": "--retention 1"})


if __name__ == "__main__":
    main(test_db())
