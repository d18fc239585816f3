"""Faults during a flood through nginx (seckill-bench, open loop at a modest rate), each
audited against PostgreSQL after the drain caught up (invariants I1-I6 of
docs/architecture.md):
  - kill -9 one node (nginx sends new purchases to the others; those in flight on the
    dead node end in doubt and the audit asks about them);
  - kill -9 the drain and start it again (it re-reads its pending entries);
  - stop PostgreSQL for 20 s (the streams keep the orders, the drain retries);
  - kill -9 Redis and restart it from its AOF (confirmed orders survive; what was in
    flight was answered 503 and retried with the same request id)."""
import time

from skcluster import run_cluster_tests, load_json, metric

C = None


def flood(sale, stock, users, seconds, rate, fault, restore, fault_at, restore_at):
    """Runs a flood in the background, injects a fault, restores, and returns
    (exit status, output, report) of seckill-bench after its audit."""
    proc, jpath = C.bench("--create-sale", f"stock={stock},starts_in=1s,id={sale}", "--users", str(users),
                          "--duration", f"{seconds}s", "--rate", str(rate), "-c", "16", "--retries", "10",
                          "--retry-backoff", "50", "--timeout", "5s", "--audit-pg", C.vars["PG_URL"],
                          background=True)
    t0 = time.time()
    events = [(fault_at, fault), (restore_at, restore)]
    for at, action in events:
        delay = t0 + 1 + at - time.time()  # the sale opens 1 s after the bench starts
        if delay > 0:
            time.sleep(delay)
        action()
    try:
        out, _ = proc.communicate(timeout=seconds + 150)
    except Exception:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out, load_json(jpath)


def check_run(ck, name, rc, out, rep, stock):
    ck.eq(rc, 0, f"{name}: seckill-bench exit status (0 = audit clean)\n{out[-4000:]}")
    ck.check("AUDIT OK" in out, f"{name}: the audit against PostgreSQL is clean")
    if not rep or not rep.get("audit"):
        ck.check(False, f"{name}: no report")
        return
    a = rep["audit"]
    c = rep["counts"]
    print(f"  {name}: confirmed {c['confirmed']}, sold_out {c['sold_out']}, 503 {c['unavailable']}, "
          f"http_error {c['http_error']}, net_error {c['net_error']}, retries {rep['retries']}, "
          f"in doubt {rep['in_doubt']}, recovered by asking {a['recovered']}", flush=True)
    for k in ("oversold", "undersold", "lost", "phantom", "duplicates"):
        ck.eq(a[k], 0, f"{name}: {k}")
    ck.eq(a["store_orders"], stock, f"{name}: sold out exactly (the crowd is larger than the stock)")
    rows = C.psql(f"SELECT count(*), count(DISTINCT user_id) FROM orders WHERE sale_id = '{rep['sale']['id']}'")
    ck.eq(rows[0], [str(stock), str(stock)], f"{name}: PostgreSQL: one order per buyer, stock in all")
    p = C.run("status", check=False)
    ck.eq(p.returncode, 0, f"{name}: every part is up again\n{p.stdout}")


def test_kill_node(ck):
    rc, out, rep = flood("fault-node", 1500, 2500, 6, 500,
                         lambda: C.run("kill", "node2"), lambda: C.run("start", "node2"), 0.5, 3)
    check_run(ck, "kill -9 node2", rc, out, rep, 1500)


def test_kill_drain(ck):
    rc, out, rep = flood("fault-drain", 1500, 2500, 6, 500,
                         lambda: C.run("kill", "drain"), lambda: C.run("start", "drain"), 1, 2.5)
    check_run(ck, "kill -9 drain", rc, out, rep, 1500)


def drain_pg_errors():
    return metric(C.drain_metrics(), "seckill_drain_errors_total", {"store": "postgres"}) or 0


def test_stop_postgres(ck):
    # What matters is checked, not how long anything took: PostgreSQL was really down,
    # orders were confirmed meanwhile and waited in the streams, the drain saw the
    # outage, and afterwards every order is in PostgreSQL, audited.
    seen = {}

    def stop():
        seen["errors_before"] = drain_pg_errors()
        C.run("stop", "postgres")
        try:
            C.psql("SELECT 1")
            seen["down"] = False
        except RuntimeError:
            seen["down"] = True

    def start():
        text = C.drain_metrics()
        seen["lag"] = metric(text, "seckill_drain_lag_total")
        seen["up"] = metric(text, "seckill_drain_up", {"store": "postgres"})
        C.run("start", "postgres")

    rc, out, rep = flood("fault-pg", 2000, 3000, 22, 250, stop, start, 0.5, 20.5)
    ck.check(seen.get("down"), "PostgreSQL refused a connection after the stop")
    ck.check((seen.get("lag") or 0) > 0,
             f"orders confirmed during the outage waited in the streams (lag {seen.get('lag')})")
    ck.eq(seen.get("up"), 0, "the drain reported PostgreSQL down during the outage")
    check_run(ck, "PostgreSQL stopped 20 s", rc, out, rep, 2000)
    ck.check(drain_pg_errors() > seen.get("errors_before", 0), "the drain saw PostgreSQL go away and retried")


def test_kill_redis(ck):
    rc, out, rep = flood("fault-redis", 1500, 2500, 6, 500,
                         lambda: C.run("kill", "redis"), lambda: C.run("start", "redis"), 1, 2)
    check_run(ck, "kill -9 Redis, restart from AOF", rc, out, rep, 1500)
    if rep:
        c = rep["counts"]
        ck.check(c["unavailable"] > 0 or rep["retries"] > 0 or rep["in_doubt"] > 0,
                 f"the outage was seen by the crowd as 503s ({c['unavailable']}) and retries ({rep['retries']})")


def test_clean_stop(ck):
    p = C.down(keep=True)
    ck.eq(p.returncode, 0, f"down\n{p.stdout}{p.stderr}")
    ck.eq(C.sanitizer_reports(), [], "no sanitizer report in any log")


def tests(cluster):
    global C
    C = cluster
    return [test_kill_node, test_kill_drain, test_kill_redis, test_stop_postgres, test_clean_stop]


if __name__ == "__main__":
    run_cluster_tests(tests)
