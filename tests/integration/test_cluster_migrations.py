"""The drain's schema migrations (deploy/postgres/, deploy/mysql/), on the local cluster
of scripts/cluster:
  - from an empty database: the cluster's drain created every table at start and
    recorded each migration once;
  - from the previous schema version: a database holding version 001 with a sale and
    its orders is migrated by a drain to the current version, the data intact, the new
    columns at their defaults (quantity 1, state 'confirmed'), their constraints in
    force, and the drain writes a new sale's orders into it, audited;
  - several drains starting at once on an empty database apply each migration once;
  - MariaDB only: a migration that stopped half-way (MySQL commits each DDL statement on
    its own) is applied again, the statement already applied taken as such.

test_cluster_migrations_mysql.py runs the same on MariaDB."""
import os
import re
import signal
import subprocess
import urllib.request

from sklib import SECKILL_BIN, SRC, free_port
from skcluster import metric, run_cluster_tests, test_db, wait_for

C = None
MIGRATIONS = ["001_init.sql", "002_lifecycle.sql"]
OLD_ORDERS = 500


def migration_file(name):
    with open(os.path.join(SRC, "deploy", C.db, name)) as f:
        return f.read()


def recorded():
    try:
        return [r[0] for r in C.sql("SELECT name FROM seckill_schema_migrations ORDER BY name")]
    except RuntimeError:
        return []


def drain_log():
    with open(os.path.join(C.dir, "drain", "drain.log")) as f:
        return f.read()


def reset_db():
    """An empty database, as a new installation has it."""
    if C.db == "postgres":
        C.sql_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    else:
        C.sql_script("DROP DATABASE seckill; CREATE DATABASE seckill CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;",
                     database="mysql")


def install_version_001():
    """The schema as the drain left it at version 001 (its migrations table included),
    holding a sale that is over and its orders."""
    C.sql_script(migration_file("001_init.sql"))
    if C.db == "postgres":
        C.sql_script("""
CREATE TABLE seckill_schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO seckill_schema_migrations (name) VALUES ('001_init.sql');
INSERT INTO sales VALUES ('old1', 'Before the lifecycle', 1000, '2026-01-01 00:00:00+00', '2026-01-01 01:00:00+00',
                          1, '2025-12-31 23:00:00+00');
INSERT INTO orders (order_id, sale_id, seq, user_id, request_id, created_at, drained_at)
SELECT 'old1-' || lpad(g::text, 10, '0'), 'old1', g, 'u' || g, 'r-' || g,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 millisecond', timestamptz '2026-01-01 00:01:00+00'
FROM generate_series(1, %d) g;
""" % OLD_ORDERS)
    else:
        C.sql_script("""
CREATE TABLE seckill_schema_migrations (name VARCHAR(255) NOT NULL PRIMARY KEY,
    applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO seckill_schema_migrations (name) VALUES ('001_init.sql');
INSERT INTO sales VALUES ('old1', 'Before the lifecycle', 1000, '2026-01-01 00:00:00', '2026-01-01 01:00:00',
                          1, '2025-12-31 23:00:00');
INSERT INTO orders (order_id, sale_id, seq, user_id, request_id, created_at, drained_at)
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %d)
SELECT CONCAT('old1-', LPAD(n, 10, '0')), 'old1', n, CONCAT('u', n), CONCAT('r-', n),
       TIMESTAMPADD(MICROSECOND, n * 1000, '2026-01-01 00:00:00'), '2026-01-01 00:01:00' FROM g;
""" % OLD_ORDERS)


OLD_COLUMNS = "order_id, sale_id, seq, user_id, request_id, created_at, drained_at"


def test_from_empty(ck):
    # scripts/cluster up started the drain on a database just created; it applies the
    # migrations as it starts, which a loaded machine may not have finished yet.
    wait_for(lambda: recorded() == MIGRATIONS and "applied 2 schema migrations" in drain_log(), 30)
    ck.eq(recorded(), MIGRATIONS, "every migration recorded once")
    ck.check("applied 2 schema migrations" in drain_log(), "the drain said so")
    for table in ("sales", "orders", "sale_events"):
        ck.eq(C.sql(f"SELECT count(*) FROM {table}"), [["0"]], f"{table} exists, empty")
    ck.eq(C.sql("SELECT count(*) FROM orders WHERE quantity = 1 AND state = 'confirmed' AND pay_by IS NULL "
                "AND payment_id IS NULL AND paid_at IS NULL AND closed_at IS NULL"), [["0"]],
          "orders has the lifecycle's columns")


def test_from_version_001(ck):
    C.run("stop", "drain")
    reset_db()
    install_version_001()
    ck.eq(recorded(), MIGRATIONS[:1], "the database is at version 001")
    before = C.sql(f"SELECT {OLD_COLUMNS} FROM orders ORDER BY order_id")
    sale_before = C.sql("SELECT id, name, stock, starts_at, ends_at, per_user_limit, created_at FROM sales")
    ck.eq(len(before), OLD_ORDERS, "with its orders")
    C.run("start", "drain")  # its log starts anew
    ck.check(wait_for(lambda: recorded() == MIGRATIONS, 60), f"the drain migrated to the current version: {recorded()}")
    ck.check("applied 1 schema migration\n" in drain_log(), "one migration applied, 001 not again")
    ck.eq(C.sql(f"SELECT {OLD_COLUMNS} FROM orders ORDER BY order_id"), before, "the orders are intact")
    ck.eq(C.sql("SELECT id, name, stock, starts_at, ends_at, per_user_limit, created_at FROM sales"), sale_before,
          "the sale is intact")
    ck.eq(C.sql("SELECT count(*) FROM orders WHERE quantity = 1 AND state = 'confirmed' AND pay_by IS NULL "
                "AND payment_id IS NULL AND paid_at IS NULL AND closed_at IS NULL"), [[str(OLD_ORDERS)]],
          "the old orders are final: quantity 1, confirmed, no payment window")
    ck.eq(C.sql("SELECT payment_window_ms, max_quantity FROM sales WHERE id = 'old1'"), [["0", "1"]],
          "the old sale has no payment window, one unit per order")
    ck.eq(C.sql("SELECT count(*) FROM sale_events"), [["0"]], "sale_events exists")
    for bad in ("UPDATE orders SET state = 'lost' WHERE seq = 1", "UPDATE orders SET quantity = 0 WHERE seq = 2"):
        try:
            C.sql(bad)
            ck.check(False, f"refused: {bad}")
        except RuntimeError:
            ck.check(True, "")
    # The drain writes into the migrated database.
    rc, out, rep = C.bench("--create-sale", "stock=300,starts_in=1s,id=after1", "--users", "500", "-c", "8",
                           *C.audit_args())
    ck.eq(rc, 0, f"a flood into the migrated database, audited\n{out[-3000:]}")
    ck.eq(C.sql("SELECT count(*), min(state), max(state), sum(quantity) FROM orders WHERE sale_id = 'after1'"),
          [["300", "confirmed", "confirmed", "300"]], "its orders carry the defaults")


def start_drains(ports):
    """Drains of their own (not the cluster's), started together, each with its metrics
    on one of the ports."""
    procs = []
    env = dict(os.environ, SECKILL_DB=C.db_url)
    for i, port in enumerate(ports):
        log = open(os.path.join(C.dir, f"migrate-{i}.log"), "wb")
        p = subprocess.Popen([SECKILL_BIN, "drain", "--store", C.vars["REDIS_URL"], "--consumer", f"m{i}",
                              "--metrics-listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, env=env)
        procs.append((p, log, port))
    return procs


def drain_up(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return metric(r.read().decode(), "seckill_drain_up", {"store": C.db}) == 1
    except OSError:
        return False


def test_drains_start_together(ck):
    C.run("stop", "drain")
    reset_db()
    procs = start_drains([free_port() for _ in range(4)])
    try:
        ok = wait_for(lambda: all(drain_up(port) for _, _, port in procs), 60)
        ck.check(ok, "every drain connected and migrated")
    finally:
        for p, _, _ in procs:
            p.send_signal(signal.SIGTERM)
        for p, log, _ in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.close()
    ck.eq([p.returncode for p, _, _ in procs], [0] * len(procs), "every drain stopped cleanly")
    ck.eq(recorded(), MIGRATIONS, "each migration recorded once")
    applied, warnings = 0, []
    for i in range(len(procs)):
        with open(os.path.join(C.dir, f"migrate-{i}.log")) as f:
            text = f.read()
        applied += sum(int(m) for m in re.findall(r"applied (\d+) schema migration", text))
        warnings += [line for line in text.splitlines() if " warn " in line or " error " in line or
                     "Sanitizer" in line]
    ck.eq(applied, len(MIGRATIONS), "the drains applied each migration once between them")
    ck.eq(warnings, [], "no drain failed a migration")
    C.run("start", "drain")


def test_half_applied(ck):
    # MySQL commits each DDL statement on its own: 002's first ALTER TABLE applied, then
    # the drain stopped before recording the migration.
    C.run("stop", "drain")
    reset_db()
    install_version_001()
    first = re.sub(r"--[^\n]*", "", migration_file("002_lifecycle.sql")).split(";")[0]
    ck.check("ALTER TABLE orders" in first, "002 starts with the ALTER TABLE of orders")
    C.sql_script(first + ";")
    C.run("start", "drain")
    ck.check(wait_for(lambda: recorded() == MIGRATIONS, 60), f"the drain finished 002: {recorded()}")
    ck.check("Duplicate column name 'quantity' (1060)" in drain_log() and "taken as applied" in drain_log(),
             "the statement applied before was taken as applied")
    ck.eq(C.sql("SELECT payment_window_ms FROM sales WHERE id = 'old1'"), [["0"]], "the rest of 002 was applied")
    ck.eq(C.sql("SELECT count(*) FROM orders WHERE state = 'confirmed'"), [[str(OLD_ORDERS)]], "the orders are intact")


def test_clean_stop(ck):
    p = C.down(keep=True)
    ck.eq(p.returncode, 0, f"down\n{p.stdout}{p.stderr}")
    ck.eq(C.sanitizer_reports(), [], "no sanitizer report in any log")


def tests(cluster):
    global C
    C = cluster
    t = [test_from_empty, test_from_version_001, test_drains_start_together]
    if cluster.db == "mysql":
        t.append(test_half_applied)
    return t + [test_clean_stop]


def main(db):
    run_cluster_tests(tests, db)


if __name__ == "__main__":
    main(test_db())
