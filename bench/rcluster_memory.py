"""Redis memory after many drained sales, against one (bench/cluster.sh, part 6).

On a running local Redis Cluster (scripts/cluster up --redis-cluster) with a drain that
retires sales (--retention 1): one live sale of ORDERS orders, drained (its stream
trimmed), is the yardstick; then SALES sales of ORDERS orders each, every one filled
through buy.lua and ending once its fill is done (three times the yardstick's fill
time after its start, 8 s at least), drained, retired and expired. Prints
what their keys take (MEMORY USAGE of every key: exact, where used_memory also moves
with the replication buffers) and used_memory, and their ratio to the yardstick.
Asserts nothing.

Usage: python3 bench/rcluster_memory.py STATE_DIR SALES ORDERS"""
import os
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from skcluster import Cluster, http  # noqa: E402


def main():
    state, n_sales, orders = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    c = Cluster()
    os.rmdir(c.dir)  # the state directory is the running cluster's
    c.dir = state
    with open(os.path.join(state, "cluster.env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            c.vars[k] = v.strip('"')
    url = f"http://127.0.0.1:{c.vars['NODE1_PORT']}"
    with open(os.path.join(SRC, "src", "backend", "lua", "buy.lua"), "rb") as f:
        buy = f.read()
    sha = None
    for n in c.rc_nodes():
        if n["role"] == "primary":
            sha = c.rc_cmd(c.sale_on(n["port"], "memprobe"), "SCRIPT", "LOAD", buy)

    def wait(cond, timeout):
        deadline = time.time() + timeout
        while not cond() and time.time() < deadline:
            time.sleep(0.5)
        return cond()

    def fill(sale):
        # buy.lua's keys (src/backend/redis.c script_keys), then: no users kept (-1), the
        # settings version 0, and the purchases ("b user request quantity").
        keys = [f"sk:{{{sale}}}:{k}" for k in ("sale", "holders", "orders", "o", "due", "log", "ctl")]
        for first in range(0, orders, 1000):
            argv = ["-1", "0"]
            for u in range(first, min(first + 1000, orders)):
                argv += ["b", f"user{u}", f"req{u}", "1"]
            c.rc_cmd(keys[0], "EVALSHA", sha, len(keys), *keys, *argv)

    def pg_count(pattern):
        return int(c.psql(f"SELECT count(*) FROM orders WHERE sale_id LIKE '{pattern}'")[0][0])

    # What earlier parts left in flight settles first (their streams trimmed by this
    # drain), so that the baseline does not shrink under the yardstick's measurement.
    def settled():
        for sid in c.rc_cmd("sk:sales", "ZRANGE", "sk:sales", 0, -1):
            key = f"sk:{{{sid}}}:orders"
            if c.rc_cmd(key, "XLEN", key):
                return False
        return True

    if not wait(settled, 300):
        print("   (the streams of earlier parts were not all trimmed: the baseline may move)")
    base_keys, base = c.rc_keys_memory(), c.rc_memory()
    now = int(time.time() * 1000)
    http(url + "/api/v1/sales", "POST", {"id": "memone", "stock": orders, "starts_at": now - 1000,
                                         "ends_at": now + 24 * 3600 * 1000})
    t_one = time.time()
    fill("memone")
    # Each sale ends a while after its fill should be done (three times the yardstick's
    # fill): a fixed window had ended a sale of 100 000 orders before its fill on this
    # machine, so that the sales measured held fewer orders than the yardstick.
    window_ms = max(8000, int((time.time() - t_one) * 3000) + 2000)
    wait(lambda: pg_count("memone") == orders, 600)
    wait(lambda: c.rc_cmd("sk:{memone}:orders", "XLEN", "sk:{memone}:orders") == 0, 60)
    one_keys, one = c.rc_keys_memory(), c.rc_memory()
    t0 = time.time()
    for i in range(n_sales):
        now = int(time.time() * 1000)
        http(url + "/api/v1/sales", "POST", {"id": f"mem{i}", "stock": orders, "starts_at": now - 1000,
                                             "ends_at": now + window_ms})
        fill(f"mem{i}")
    filled = time.time() - t0
    # A sale that ended before its fill was done (a slow machine) sold fewer: wait for
    # what Redis sold, not for what was asked.
    sold = orders + sum(int(c.rc_cmd(f"sk:{{mem{i}}}:sale", "HGET", f"sk:{{mem{i}}}:sale", "sold") or 0)
                        for i in range(n_sales))
    if sold < (n_sales + 1) * orders:
        print(f"   ({(n_sales + 1) * orders - sold} purchases came after their sale's end: the machine was slow)")
    wait(lambda: pg_count("mem%") == sold, 3600)
    drained = time.time() - t0
    gone = wait(lambda: all(c.rc_cmd(f"sk:{{mem{i}}}:holders", "EXISTS", f"sk:{{mem{i}}}:holders",
                                     f"sk:{{mem{i}}}:orders") == 0 for i in range(n_sales)), 600)
    end_keys, end = c.rc_keys_memory(), c.rc_memory()
    print(f"   {n_sales} sales x {orders} orders (each open {window_ms / 1000:.0f} s) filled in {filled:.1f} s, "
          f"in {c.title} after {drained:.1f} s, "
          f"{'retired and expired' if gone else 'NOT all retired'}")
    one_k, many_k = one_keys - base_keys, end_keys - one_keys
    one_u, many_u = one["used_memory"] - base["used_memory"], end["used_memory"] - one["used_memory"]
    print(f"   keys: one drained live sale {one_k / 1e6:.3f} MB; the {n_sales} retired sales {many_k / 1e6:.3f} MB "
          f"more")
    print(f"   used_memory (primaries): one sale {one_u / 1e6:.2f} MB; the {n_sales} retired sales "
          f"{many_u / 1e6:.2f} MB more (replication buffers included)")
    print(f"   ratio, {n_sales} drained and retired sales / one drained live sale: keys {many_k / max(one_k, 1):.3f}x, "
          f"used_memory {many_u / max(one_u, 1):.3f}x")


if __name__ == "__main__":
    main()
