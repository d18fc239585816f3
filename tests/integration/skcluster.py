"""Helpers for the cluster tests: a tiny Redis client, a redis-server in a temp dir, and
the local cluster of scripts/cluster (Redis or a Redis Cluster, PostgreSQL or MariaDB,
three nodes, the drain, nginx), with the Redis Cluster's slots and routing for the tests'
own reads."""
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


def crc16(data):
    """CRC16/XMODEM, the checksum of Redis Cluster's key slots."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key):
    """The slot of a key: of its {hash tag} when it has a non-empty one."""
    k = key.encode()
    a = k.find(b"{")
    if a >= 0:
        b = k.find(b"}", a + 1)
        if b > a + 1:
            k = k[a + 1:b]
    return crc16(k) & 16383


def sale_slot(sale):
    return key_slot(f"sk:{{{sale}}}:sale")


def running(pid):
    """True while the process is there and has not exited. One that has exited but is not
    yet reaped (a zombie: a cluster part's parent is init, which may reap it a second or
    more later) has let go of its ports and files: it is stopped (scripts/cluster's
    running)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next((line.split()[1] for line in f if line.startswith("State:")), "X")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_for(cond, timeout, step=0.2):
    """Polls cond() until it is true or timeout seconds passed; returns its last value."""
    deadline = time.time() + timeout
    v = cond()
    while not v and time.time() < deadline:
        time.sleep(step)
        v = cond()
    return v


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

    def up(self, *args):
        p = self.run("up", "--db", self.db, *args)
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

    # ---- the Redis Cluster (up --redis-cluster) ----

    def redis_ports(self):
        return [int(p) for p in self.vars["REDIS_PORTS"].split()]

    def redis_part(self, port):
        return f"redis{self.redis_ports().index(port) + 1}"

    def rc_nodes(self):
        """CLUSTER NODES as seen by the first node that answers: a list of dicts with
        port, id, role ("primary"/"replica"), primary (the id a replica follows), failed,
        slots (list of (first, last))."""
        for port in self.redis_ports():
            try:
                c = Resp(port, timeout=3)
                try:
                    text = c.cmd("CLUSTER", "NODES")
                finally:
                    c.close()
            except (OSError, ConnectionError, RedisError):
                continue
            nodes = []
            for line in text.splitlines():
                f = line.split()
                flags = f[2].split(",")
                slots = []
                for r in f[8:]:
                    if r.startswith("["):
                        continue  # a slot being moved
                    a, _, b = r.partition("-")
                    slots.append((int(a), int(b or a)))
                nodes.append({"id": f[0], "port": int(f[1].split("@")[0].rsplit(":", 1)[1]),
                              "role": "primary" if "master" in flags else "replica",
                              "primary": f[3], "failed": "fail" in flags or "fail?" in flags,
                              "slots": slots})
            return nodes
        raise RuntimeError("no Redis Cluster node answers")

    def rc_primaries(self):
        """The live primaries (rc_nodes' dicts): those that serve slots (a node just made a
        replica may still be listed as a primary without any for a moment)."""
        return [n for n in self.rc_nodes() if n["role"] == "primary" and not n["failed"] and n["slots"]]

    def rc_primary_ports(self):
        """The live primaries' ports, sorted."""
        return sorted(n["port"] for n in self.rc_primaries())

    def rc_replica_of(self, port, timeout=30):
        """The port of a live replica of the primary at `port`. A replica restarted by an
        earlier test may still be flagged failed by the cluster for a moment: waited for,
        up to `timeout` seconds."""
        deadline = time.time() + timeout
        while True:
            ns = self.rc_nodes()
            pid = next(n["id"] for n in ns if n["port"] == port)
            live = [n["port"] for n in ns if n["role"] == "replica" and n["primary"] == pid and not n["failed"]]
            if live or time.time() >= deadline:
                break
            time.sleep(0.2)
        if not live:
            raise RuntimeError(f"no live replica of the primary at {port} after {timeout} s")
        return live[0]

    def primary_of_slot(self, slot):
        """The port of the primary serving a slot (None when nobody does)."""
        for n in self.rc_nodes():
            if n["role"] == "primary" and not n["failed"] and any(a <= slot <= b for a, b in n["slots"]):
                return n["port"]
        return None

    def rc_cmd(self, key, *args):
        """A command on the primary serving key's slot, following MOVED and ASK."""
        if not hasattr(self, "_rc"):
            self._rc = RCClient(self)
        return self._rc.cmd(key, *args)

    def rc_memory(self):
        """INFO memory's byte counts summed over the primaries (used_memory,
        used_memory_dataset, mem_clients_normal, ...), and "keys": their DBSIZE summed."""
        out = {"keys": 0}
        for n in self.rc_nodes():
            if n["role"] != "primary" or n["failed"]:
                continue
            c = Resp(n["port"])
            try:
                info = c.cmd("INFO", "memory")
                out["keys"] += c.cmd("DBSIZE")
            finally:
                c.close()
            for k, v in re.findall(r"^(used_memory\w*|mem_\w+):(\d+)\r?$", info, re.M):
                out[k] = out.get(k, 0) + int(v)
        return out

    def rc_keys_memory(self, match="sk:*"):
        """Bytes the keys matching `match` take on the primaries (MEMORY USAGE of every
        element: exact, unlike used_memory, which moves with the replication buffers)."""
        total = 0
        for n in self.rc_nodes():
            if n["role"] != "primary" or n["failed"]:
                continue
            c = Resp(n["port"])
            try:
                cursor = "0"
                while True:
                    cursor, keys = c.cmd("SCAN", cursor, "MATCH", match, "COUNT", 1000)
                    for k in keys:
                        total += c.cmd("MEMORY", "USAGE", k, "SAMPLES", 0) or 0
                    if cursor == "0":
                        break
            finally:
                c.close()
        return total

    def sale_on(self, port, prefix, avoid=()):
        """A sale id (prefix-N) whose slot the primary at port serves."""
        ranges = [r for n in self.rc_nodes() if n["port"] == port for r in n["slots"]]
        for i in range(100000):
            sid = f"{prefix}-{i}"
            s = sale_slot(sid)
            if sid not in avoid and any(a <= s <= b for a, b in ranges):
                return sid
        raise RuntimeError(f"no sale id for the primary at {port}")

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


class RCClient:
    """A small Redis Cluster client for the tests: the slot map from CLUSTER NODES, one
    connection per primary, MOVED and ASK followed (the map read again after MOVED or a
    connection error)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.conns = {}
        self.ranges = []

    def _refresh(self):
        self.ranges = [(a, b, n["port"]) for n in self.cluster.rc_nodes()
                       if n["role"] == "primary" and not n["failed"] for a, b in n["slots"]]

    def _conn(self, port):
        if port not in self.conns:
            self.conns[port] = Resp(port)
        return self.conns[port]

    def cmd(self, key, *args):
        slot = key_slot(key)
        port = next((p for a, b, p in self.ranges if a <= slot <= b), None)
        if port is None:
            self._refresh()
            port = next((p for a, b, p in self.ranges if a <= slot <= b), None)
        asking = False
        for _ in range(6):
            try:
                c = self._conn(port)
                if asking:
                    c.cmd("ASKING")
                r = c.cmd(*args, raise_errors=False)
            except (OSError, ConnectionError):
                self.conns.pop(port, None)
                time.sleep(0.2)
                self._refresh()
                port = next((p for a, b, p in self.ranges if a <= slot <= b), port)
                continue
            if isinstance(r, RedisError) and str(r).startswith(("MOVED ", "ASK ")):
                asking = str(r).startswith("ASK ")
                port = int(str(r).split()[2].rsplit(":", 1)[1])
                if not asking:
                    self._refresh()
                continue
            if isinstance(r, RedisError):
                raise r
            return r
        raise RuntimeError(f"too many redirections or errors for {key}")


def holders_orders(sale, flat):
    """The orders a holders hash (HGETALL, flat) holds: {order_id: (user, request_id)}.
    Fields: "<user>" -> "count\tseq\treq\tat", "<user>\t<i>" -> "seq\treq\tat",
    "<user>\n<req>" -> an index (skipped)."""
    out = {}
    for f, v in zip(flat[::2], flat[1::2]):
        if "\n" in f:
            continue
        parts = v.split("\t")
        seq, req = (parts[0], parts[1]) if "\t" in f else (parts[1], parts[2])
        out[f"{sale}-{int(seq):010d}"] = (f.split("\t")[0], req)
    return out


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


def run_cluster_tests(tests, db="postgres", up_args=(), env=None):
    """Starts the local cluster with scripts/cluster (its orders in `db`; `up` with
    up_args, e.g. --redis-cluster; env: more environment for the script, e.g.
    SECKILL_DRAIN_ARGS), hands it to tests(cluster), which returns the test functions to
    run (each takes a Checker), and always tears the cluster down, keeping its logs when
    something failed."""
    print(f"database: {DATABASES[db]['title']}", flush=True)
    cluster = Cluster(db)
    cluster.env.update(env or {})
    failed = True
    try:
        started = time.time()
        cluster.up(*up_args)
        print(f"cluster up ({time.time() - started:.1f} s)", flush=True)
        run_tests(tests(cluster))
        failed = False
    except SystemExit as e:
        failed = e.code != 0
        raise
    finally:
        cluster.close(failed)
