"""A failed fdatasync of the embedded store's WAL, in a real server: the create whose
write it was answers 503, and from then on so does every id the node does not know (a
sale, an order of such a sale), never 404: the write may be in the file, and a restart
shows the sale. The failure is made by a small preloaded library whose fdatasync fails
while a file exists (the kernel's answer after a lost write-back)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import sklib  # noqa: E402

TOKEN = "tok"
AUTH = {"Authorization": "Bearer " + TOKEN}

SHIM = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* fdatasync fails with EIO while the file named by SK_TEST_FAIL_SYNC exists. */
int fdatasync(int fd)
{
    const char *p = getenv("SK_TEST_FAIL_SYNC");
    if (p && access(p, F_OK) == 0) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}
"""


def build_shim(tmp):
    src, lib = os.path.join(tmp, "failsync.c"), os.path.join(tmp, "failsync.so")
    with open(src, "w") as f:
        f.write(SHIM)
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None
    p = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", lib, src], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"cannot build the preload library: {p.stderr}", flush=True)
        return None
    return lib


def create(srv, sid):
    t = int(time.time() * 1000)
    return srv.json("POST", "/api/v1/sales", {"id": sid, "stock": 5, "starts_at": t - 1000, "ends_at": t + 3600_000},
                    AUTH)


def buy(srv, sid, user, req):
    return srv.json("POST", f"/api/v1/sales/{sid}/purchase", {"user_id": user, "request_id": req})


def test_unknown_ids_after_a_failed_sync(ck):
    tmp = tempfile.mkdtemp(prefix="seckill-sync-")
    try:
        lib = build_shim(tmp)
        if not lib:
            print("skip: no C compiler for the preload library", flush=True)
            return
        trigger = os.path.join(tmp, "fail")
        env = {"LD_PRELOAD": lib, "SK_TEST_FAIL_SYNC": trigger}
        if sklib.SANITIZED:
            env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
        data = os.path.join(tmp, "data")
        with sklib.Server(admin_token=TOKEN, data=data, env=env) as srv:
            st, _ = create(srv, "good")
            ck.eq(st, 201, "a create before the failure")
            st, a = buy(srv, "good", "u1", "r1")
            ck.eq(st, 201, "a purchase before the failure")
            st, _ = srv.json("GET", "/api/v1/sales/nosuch")
            ck.eq(st, 404, "an unknown id before the failure: 404")
            st, body = srv.json("GET", "/healthz")
            ck.eq((st, body.get("status")), (200, "ok"), "/healthz before the failure")

            open(trigger, "w").close()
            st, body = create(srv, "doubt")
            ck.eq(st, 503, f"the create whose sync failed: 503 ({body})")
            os.remove(trigger)  # the disk is fine again: the node stays unsure until a restart

            for method, path, what in [("GET", "/api/v1/sales/doubt", "the sale of that create"),
                                       ("GET", "/api/v1/sales/nosuch", "an id never created"),
                                       ("GET", "/api/v1/sales/doubt/events", "its events"),
                                       ("GET", "/api/v1/sales/doubt/orders/u1", "a user's orders in it"),
                                       ("GET", "/api/v1/orders/doubt-0000000001", "an order id of it"),
                                       ("GET", "/api/v1/sales/good/orders/u1", "a known sale's orders")]:
                st, h, data_ = srv.request(method, path)
                ck.eq(st, 503, f"{what} after the failed sync ({data_[:120]!r})")
                if st == 503:
                    ck.eq(json.loads(data_).get("error"), "unavailable", f"{what}: unavailable")
            st, body = buy(srv, "doubt", "u2", "r2")
            ck.eq(st, 503, f"a purchase of it ({body})")
            st, body = create(srv, "doubt")
            ck.eq(st, 503, f"the create again ({body})")
            st, _, _ = srv.request("GET", "/api/v1/orders/not-an-order")
            ck.eq(st, 404, "an id no order can have stays 404")
            st, body = srv.json("GET", "/api/v1/sales/" + "x" * 65)
            ck.eq((st, body.get("error")), (404, "unknown_sale"), "an id no sale can have (65 characters) stays 404")
            st, body = srv.json("GET", "/api/v1/orders/" + "x" * 65 + "-0000000001")
            ck.eq((st, body.get("error")), (404, "unknown_order"), "an order id of a sale id no sale can have stays 404")
            st, body = srv.json("GET", "/api/v1/sales")
            ck.eq(st, 503, f"the list of sales, which may lack the sale answered 503 ({body})")
            st, body = srv.json("GET", "/healthz")
            ck.eq((st, body.get("status"), body.get("error")), (503, "store_failed", "store_failed"),
                  "/healthz takes the node out of a pool, in the errors' format")
            srv.kill9()

            srv.start()
            st, body = srv.json("GET", "/api/v1/sales/doubt")
            ck.eq(st, 200, f"after the restart the sale answered 503 is there: the write reached the file ({body})")
            st, _ = srv.json("GET", "/api/v1/sales/nosuch")
            ck.eq(st, 404, "an unknown id after the restart: 404 again")
            st, body = srv.json("GET", "/api/v1/sales")
            ck.eq((st, sorted(x["id"] for x in body.get("sales", []))), (200, ["doubt", "good"]),
                  "the list after the restart")
            st, body = srv.json("GET", "/healthz")
            ck.eq((st, body.get("status")), (200, "ok"), "/healthz after the restart")
            st, body = buy(srv, "good", "u1", "r1")
            ck.eq((st, body.get("result"), body.get("order_id")), (200, "duplicate", a.get("order_id")),
                  "the order confirmed before the failure is kept")
            st, body = buy(srv, "doubt", "u2", "r2")
            ck.eq(st, 201, f"the sale sells after the restart ({body})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


sklib.run_tests([test_unknown_ids_after_a_failed_sync])
