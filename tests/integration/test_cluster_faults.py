"""Faults during a flood through nginx (seckill-bench, open loop at a modest rate), each
audited against the database after the drain caught up (invariants I1-I6 of
docs/architecture.md):
  - kill -9 one node (nginx sends new purchases to the others; those in flight on the
    dead node end in doubt and the audit asks about them);
  - kill -9 the drain and start it again (it re-reads its pending entries);
  - stop the database for 20 s (the streams keep the orders, the drain retries);
  - kill the database and start it again (MariaDB: kill -9; PostgreSQL: an immediate
    shutdown, which skips the checkpoint as a crash does): it recovers from its log, the
    batch that was being written is written again;
  - kill -9 Redis and restart it from its AOF (confirmed orders survive; what was in
    flight was answered 503 and retried with the same request id).

test_cluster_faults_mysql.py runs the faults of the database's side (the drain, the
database stopped, the database killed) with MariaDB as the system of record; the node and
Redis faults do not depend on the database and run here only."""
import time

from skcluster import load_json, metric, run_cluster_tests, test_db

C = None


def flood(sale, stock, users, seconds, rate, fault, restore, fault_at, restore_at):
    """Runs a flood in the background, injects a fault, restores, and returns
    (exit status, output, report) of seckill-bench after its audit."""
    proc, jpath = C.bench("--create-sale", f"stock={stock},starts_in=1s,id={sale}", "--users", str(users),
                          "--duration", f"{seconds}s", "--rate", str(rate), "-c", "16", "--retries", "10",
                          "--retry-backoff", "50", "--timeout", "5s", *C.audit_args(), background=True)
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
    ck.check("AUDIT OK" in out, f"{name}: the audit against {C.title} is clean")
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
    rows = C.sql(f"SELECT count(*), count(DISTINCT user_id) FROM orders WHERE sale_id = '{rep['sale']['id']}'")
    ck.eq(rows[0], [str(stock), str(stock)], f"{name}: {C.title}: one order per buyer, stock in all")
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


def drain_db_errors():
    return metric(C.drain_metrics(), "seckill_drain_errors_total", {"store": C.db}) or 0


def db_answers():
    try:
        C.sql("SELECT 1")
        return True
    except RuntimeError:
        return False


def test_stop_db(ck):
    # What matters is checked, not how long anything took: the database was really
    # down, orders were confirmed meanwhile and waited in the streams, the drain saw the
    # outage, and afterwards every order is in the database, audited.
    seen = {}

    def stop():
        seen["errors_before"] = drain_db_errors()
        C.run("stop", C.db)
        seen["down"] = not db_answers()

    def start():
        text = C.drain_metrics()
        seen["lag"] = metric(text, "seckill_drain_lag_total")
        seen["up"] = metric(text, "seckill_drain_up", {"store": C.db})
        C.run("start", C.db)

    rc, out, rep = flood(f"fault-{C.db}", 2000, 3000, 22, 250, stop, start, 0.5, 20.5)
    ck.check(seen.get("down"), f"{C.title} refused a connection after the stop")
    ck.check((seen.get("lag") or 0) > 0,
             f"orders confirmed during the outage waited in the streams (lag {seen.get('lag')})")
    ck.eq(seen.get("up"), 0, f"the drain reported {C.title} down during the outage")
    check_run(ck, f"{C.title} stopped 20 s", rc, out, rep, 2000)
    ck.check(drain_db_errors() > seen.get("errors_before", 0), f"the drain saw {C.title} go away and retried")


def test_kill_db(ck):
    # Killed while the drain writes a batch every few milliseconds: the batch in flight
    # is lost with the server (or committed just before), the drain writes it again on
    # a new connection, and the upsert keeps one row per order.
    seen = {}

    def kill():
        seen["errors_before"] = drain_db_errors()
        C.run("kill", C.db)
        seen["down"] = not db_answers()

    def start():
        C.run("start", C.db)

    rc, out, rep = flood(f"crash-{C.db}", 1500, 2500, 6, 500, kill, start, 1, 3)
    ck.check(seen.get("down"), f"{C.title} was down after the kill")
    check_run(ck, f"{C.title} killed and restarted", rc, out, rep, 1500)
    ck.check(drain_db_errors() > seen.get("errors_before", 0), f"the drain saw {C.title} go away and retried")


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
    if cluster.db == "postgres":
        return [test_kill_node, test_kill_drain, test_kill_redis, test_stop_db, test_kill_db, test_clean_stop]
    return [test_kill_drain, test_stop_db, test_kill_db, test_clean_stop]


def main(db):
    run_cluster_tests(tests, db)


if __name__ == "__main__":
    main(test_db())
