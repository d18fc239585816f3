"""Shared helpers for integration tests: start the real seckill binary on a free port in
a temp dir, talk HTTP to it, and always clean up."""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import http.client

SECKILL_BIN = os.environ.get("SECKILL_BIN", os.path.join(os.path.dirname(__file__), "../../build/seckill"))
BENCH_BIN = os.environ.get("SECKILL_BENCH_BIN", os.path.join(os.path.dirname(__file__), "../../build/seckill-bench"))
SRC = os.environ.get("SECKILL_SRC", os.path.join(os.path.dirname(__file__), "../.."))
SANITIZED = os.environ.get("SECKILL_SANITIZE", "OFF") in ("ON", "1", "TRUE", "true")


def free_port():
    """A loopback port nothing listens on, taken below the kernel's ephemeral range
    (net.ipv4.ip_local_port_range, 32768-60999 by default): a port handed out by bind(0)
    and closed again may be given to another test's outgoing connection before the server
    that was meant to listen on it binds it (seen as "Address already in use"). Up here
    only another test picking the same port in that instant collides."""
    lo, hi = 10000, 32000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first = int(f.read().split()[0])
        if first - 2000 > lo:
            hi = first - 1
    except (OSError, ValueError, IndexError):
        pass
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(lo, hi)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """A `seckill serve` process on a free loopback port with its own data dir."""

    def __init__(self, *args, data=None, env=None, threads=2, admin_token=None, wait=True, binary=None):
        self.tmp = tempfile.mkdtemp(prefix="seckill-test-")
        self.data = data or os.path.join(self.tmp, "data")
        self.port = free_port()
        self.host = "127.0.0.1"
        cmd = [binary or SECKILL_BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data", self.data,
               "--threads", str(threads)]
        if admin_token:
            cmd += ["--admin-token", admin_token]
        cmd += list(args)
        self.cmd = cmd
        self.log_path = os.path.join(self.tmp, "server.log")
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.start(wait)

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        # A restart appends to the same log: only what this process writes counts as ready.
        self.log_offset = self.log.tell()
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                if b"listening on http://" in f.read():
                    return
            time.sleep(0.02)
        raise RuntimeError("server did not become ready:\n" + self.output())

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops the server and returns its exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("server did not stop in time:\n" + self.output())
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("--- server output ---\n" + self.output()[-20000:])
        self.close()

    # HTTP helpers
    def request(self, method, path, body=None, headers=None, timeout=10):
        """Returns (status, headers dict lower-cased, body bytes)."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        h = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, h, data

    def json(self, method, path, body=None, headers=None):
        st, h, data = self.request(method, path, body, headers)
        try:
            return st, json.loads(data) if data else None
        except ValueError:
            raise AssertionError(f"{method} {path}: not JSON ({st}): {data[:200]!r}")

    def list_orders(self, sale, limit=100, headers=None):
        """Every order of a sale, walking GET /api/v1/sales/{sale}/orders page by page."""
        out, after = [], ""
        for _ in range(100000):
            st, page = self.json("GET", f"/api/v1/sales/{sale}/orders?limit={limit}" +
                                 (f"&after={after}" if after else ""), headers=headers)
            assert st == 200, (st, page)
            out += page["orders"]
            if not page["next"]:
                return out
            after = page["next"]
        raise AssertionError("the order listing does not end")

    def raw(self, data, timeout=5, read=True, shutdown_write=False):
        """Sends raw bytes on a fresh connection and returns everything read until close/timeout."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.sendall(data)
        if shutdown_write:
            s.shutdown(socket.SHUT_WR)
        out = b""
        if read:
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
            except socket.timeout:
                pass
        s.close()
        return out


class Checker:
    """Counts checks and prints the closing line ctest output is judged by."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}", flush=True)

    def eq(self, a, b, what):
        self.check(a == b, f"{what}: {a!r} != {b!r}")

    def done(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def run_tests(tests):
    """Runs test functions (each takes a Checker); an exception counts as a failure."""
    ck = Checker()
    for t in tests:
        before = ck.failed
        started = time.time()
        try:
            t(ck)
        except Exception as e:  # noqa: BLE001 - report and go on to the next test
            import traceback
            traceback.print_exc()
            ck.failed += 1
        print(f"{'ok  ' if ck.failed == before else 'FAIL'} {t.__name__} ({time.time() - started:.1f} s)", flush=True)
    ck.done()
