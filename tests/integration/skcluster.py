"""Helpers for the cluster tests: a tiny Redis client, a redis-server in a temp dir, and
the local cluster of scripts/cluster (Redis, PostgreSQL or MariaDB, three nodes, the drain,
nginx)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from sklib import BENCH_BIN, SECKILL_BIN, SRC, free_port, run_tests


class RedisError(Exception):
    pass


class Resp:
    """A minimal RESP2 client: one blocking connection, one command at a time."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ConnectionError(f"bad RESP line {line!r}")

    def cmd(self, *args, raise_errors=True):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        r = self._reply()
        if isinstance(r, RedisError) and raise_errors:
            raise r
        return r


class RedisServer:
    """redis-server on a free port in a temp dir (AOF appendfsync always unless told)."""

    def __init__(self, *extra, aof=True):
        self.dir = tempfile.mkdtemp(prefix="seckill-redis-")
        self.port = free_port()
        self.extra = list(extra)
        self.aof = aof
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
               "--save", "", "--logfile", os.path.join(self.dir, "redis.log")]
        if self.aof:
            cmd += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(cmd + self.extra, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                c = Resp(self.port, timeout=1)
                r = c.cmd("PING", raise_errors=False)
                if r == "PONG" or "NOAUTH" in str(r):  # up (and maybe wanting a password)
                    c.close()
                    return
                c.close()
            except OSError:
                pass
            time.sleep(0.05)
        self.close()
        raise RuntimeError("redis-server did not start")

    def client(self):
        return Resp(self.port)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def http(url, method="GET", body=None, timeout=10):
    """Returns (status, parsed JSON or text)."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def metric(text, name, labels=None):
    """The value of one Prometheus sample (labels: dict that must match), or None."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r'^([a-zA-Z_:]+)(\{[^}]*\})?\s+(\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if labels and any(got.get(k) != v for k, v in labels.items()):
            continue
        return float(m.group(3))
    return None


# The databases a cluster can keep its orders in: scripts/cluster's --db, the audit's
# option of seckill-bench, and the name people know.
DATABASES = {
    "postgres": {"audit": "--audit-pg", "title": "PostgreSQL"},
    "mysql": {"audit": "--audit-mysql", "title": "MariaDB"},
}


class Cluster:
    """The local cluster of scripts/cluster, in its own state directory, with its orders
    in `db` (postgres or mysql)."""

    def __init__(self, db="postgres"):
        self.db = db
        self.title = DATABASES[db]["title"]
        self.dir = tempfile.mkdtemp(prefix="seckill-cluster-")
        self.env = dict(os.environ, SECKILL_CLUSTER_DIR=self.dir, SECKILL_BIN=SECKILL_BIN)
        self.script = os.path.join(SRC, "scripts", "cluster")
        self.vars = {}

    def run(self, *args, check=True, timeout=120):
        p = subprocess.run([self.script, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"scripts/cluster {' '.join(args)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p

    def up(self):
        p = self.run("up", "--db", self.db)
        with open(os.path.join(self.dir, "cluster.env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                self.vars[k] = v.strip('"')
        self.url = self.vars["URL"]
        return p.stdout

    def node_url(self, i):
        return f"http://127.0.0.1:{self.vars[f'NODE{i}_PORT']}"

    def down(self, keep=False):
        return self.run("down", *(["--keep"] if keep else []), check=False)

    def logs(self):
        out = []
        for root, _, files in os.walk(self.dir):
            for f in files:
                if f.endswith(".log") and f not in ("initdb.log", "install.log"):
                    p = os.path.join(root, f)
                    with open(p, "rb") as fh:
                        out.append(f"--- {os.path.relpath(p, self.dir)} (tail) ---\n" +
                                   fh.read()[-4000:].decode("utf-8", "replace"))
        return "\n".join(out)

    def sanitizer_reports(self):
        """Logs of the cluster's seckill processes that hold a sanitizer report."""
        bad = []
        for root, _, files in os.walk(self.dir):
            for f in files:
                if f in ("seckill.log", "drain.log"):
                    with open(os.path.join(root, f), "rb") as fh:
                        if b"Sanitizer" in fh.read():
                            bad.append(os.path.relpath(os.path.join(root, f), self.dir))
        return bad

    def redis(self):
        return Resp(int(self.vars["REDIS_PORT"]))

    @property
    def db_url(self):
        return self.vars["DB_URL"]

    def audit_args(self):
        """seckill-bench's options that audit against this cluster's database."""
        return [DATABASES[self.db]["audit"], self.db_url]

    def sql_cmd(self, database="seckill"):
        """The database's command-line client, as its administrator, tab-separated rows."""
        if self.db == "postgres":
            return ["psql", "-X", "-q", "-tA", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                    self.vars["PG_PORT"], "-U", "seckill", "-d", database]
        return ["mariadb", "--no-defaults", "-S", self.vars["MYSQL_SOCKET"], "-u", "root", "-N", "-B", database]

    def sql(self, query, database="seckill"):
        """Rows of a query (lists of strings; NULL is "" in PostgreSQL, "NULL" in MariaDB)."""
        return self.sql_script(query, database)

    def sql_script(self, text, database="seckill"):
        """Runs SQL statements (a script's text) and returns the rows they printed."""
        p = subprocess.run(self.sql_cmd(database), input=text, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"{self.db} client failed: {p.stderr}")
        return [line.split("\t") for line in p.stdout.splitlines() if line]

    def psql(self, query):
        return self.sql(query)

    def drain_metrics(self):
        with urllib.request.urlopen(self.vars["DRAIN_METRICS"], timeout=5) as r:
            return r.read().decode()

    def wait_drained(self, sale, expect, timeout=60):
        """Waits until the database holds `expect` orders of the sale; returns the count."""
        deadline = time.time() + timeout
        n = -1
        while time.time() < deadline:
            try:
                n = int(self.sql(f"SELECT count(*) FROM orders WHERE sale_id = '{sale}'")[0][0])
            except RuntimeError:
                n = -1
            if n == expect:
                return n
            time.sleep(0.2)
        return n

    def bench(self, *args, timeout=300, background=False):
        """Runs seckill-bench against nginx with a JSON report; returns (rc, output, report)."""
        jpath = os.path.join(self.dir, f"bench-{time.time_ns()}.json")
        cmd = [BENCH_BIN, "-q", "--json", jpath, *args, self.url]
        if background:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), jpath
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr, load_json(jpath)

    def close(self, failed=False):
        if failed:
            print(self.logs()[-30000:])
        self.down()
        shutil.rmtree(self.dir, ignore_errors=True)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def test_db(default="postgres"):
    """The database a cluster test runs on: its first argument, else `default`."""
    db = sys.argv[1] if len(sys.argv) > 1 else default
    if db not in DATABASES:
        raise SystemExit(f"unknown database {db!r} (one of {', '.join(DATABASES)})")
    return db


def run_cluster_tests(tests, db="postgres"):
    """Starts the local cluster with scripts/cluster (its orders in `db`), hands it to
    tests(cluster), which returns the test functions to run (each takes a Checker), and
    always tears the cluster down, keeping its logs when something failed."""
    print(f"database: {DATABASES[db]['title']}", flush=True)
    cluster = Cluster(db)
    failed = True
    try:
        cluster.up()
        run_tests(tests(cluster))
        failed = False
    except SystemExit as e:
        failed = e.code != 0
        raise
    finally:
        cluster.close(failed)
