/* The PostgreSQL audit source: a cluster's system of record (tables sales and orders,
 * deploy/postgres/), written by `seckill drain` some time after the orders were
 * confirmed. Before the audit reads it, it waits (bounded) until the database holds as
 * many orders of the sale as the service reports sold: the drain has caught up. */
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "loadgen/fetch.h"
#include "util/common.h"

typedef struct {
    sk_audit_source_t base;
    PGconn *db;
    const sk_loadgen_target_t *target;
    int wait_ms;
} pg_source_t;

/* The service's sold count of a sale, or -1. */
static int64_t service_sold(pg_source_t *q, const char *sale_id)
{
    sk_loadgen_fetch_t f;
    sk_loadgen_fetch_init(&f, q->target, NULL, 5000);
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/sales/%s", sale_id);
    int64_t sold = -1;
    if (sk_loadgen_fetch(&f, "GET", path, NULL) == 200) {
        json_t *root = json_loadb(f.body, f.body_len, 0, NULL);
        json_t *v = root ? json_object_get(root, "sold") : NULL;
        if (json_is_integer(v))
            sold = json_integer_value(v);
        json_decref(root);
    }
    sk_loadgen_fetch_close(&f);
    return sold;
}

static int pg_sale(sk_audit_source_t *s, const char *sale_id, sk_loadgen_sale_t *out, char *err, size_t err_len)
{
    pg_source_t *q = (pg_source_t *)s;
    const char *vals[1] = {sale_id};
    uint64_t deadline = sk_mono_ns() + (uint64_t)q->wait_ms * 1000000u;
    for (;;) {
        PGresult *r = PQexecParams(q->db,
                                   "SELECT stock, per_user_limit, (SELECT count(*) FROM orders WHERE sale_id = $1) "
                                   "FROM sales WHERE id = $1",
                                   1, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(err, err_len, "postgres: %.*s", (int)strcspn(PQresultErrorMessage(r), "\n"),
                     PQresultErrorMessage(r));
            PQclear(r);
            return -1;
        }
        bool found = PQntuples(r) == 1;
        if (found) {
            out->stock = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            out->limit = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
            out->sold = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
        }
        PQclear(r);
        int64_t sold = service_sold(q, sale_id);
        if (found && (sold < 0 || out->sold >= sold))
            return 0; /* caught up (or the service cannot say: audit what is there) */
        if (sk_mono_ns() >= deadline) {
            if (found) {
                fprintf(stderr,
                        "seckill-bench: postgres holds %lld orders of %s, the service reports %lld "
                        "sold: auditing what is there\n",
                        (long long)out->sold, sale_id, (long long)sold);
                return 0;
            }
            snprintf(err, err_len, "postgres: no sale %s in the database after %d ms", sale_id, q->wait_ms);
            return -1;
        }
        usleep(200 * 1000);
    }
}

static int pg_orders(sk_audit_source_t *s, const char *sale_id, sk_loadgen_order_fn fn, void *arg, char *err,
                     size_t err_len)
{
    pg_source_t *q = (pg_source_t *)s;
    const char *vals[1] = {sale_id};
    PGresult *r =
        PQexecParams(q->db, "SELECT order_id, user_id, request_id FROM orders WHERE sale_id = $1 ORDER BY seq", 1, NULL,
                     vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, err_len, "postgres: %.*s", (int)strcspn(PQresultErrorMessage(r), "\n"), PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        sk_loadgen_store_order_t so = {
            .order_id = PQgetvalue(r, i, 0),
            .order_id_len = (size_t)PQgetlength(r, i, 0),
            .user_id = PQgetvalue(r, i, 1),
            .user_id_len = (size_t)PQgetlength(r, i, 1),
            .request_id = PQgetvalue(r, i, 2),
            .request_id_len = (size_t)PQgetlength(r, i, 2),
        };
        rc = fn(arg, &so);
    }
    PQclear(r);
    return rc;
}

static void pg_close(sk_audit_source_t *s)
{
    pg_source_t *q = (pg_source_t *)s;
    PQfinish(q->db);
    free(q);
}

sk_audit_source_t *sk_audit_source_pg(const char *conninfo, const sk_loadgen_target_t *t, int wait_ms, char *err,
                                      size_t err_len)
{
    PGconn *db = PQconnectdb(conninfo);
    if (!db || PQstatus(db) != CONNECTION_OK) {
        const char *m = db ? PQerrorMessage(db) : "out of memory";
        snprintf(err, err_len, "postgres: cannot connect: %.*s", (int)strcspn(m, "\n"), m);
        PQfinish(db);
        return NULL;
    }
    pg_source_t *q = sk_xcalloc(1, sizeof(*q));
    q->base.kind = "postgres";
    q->base.sale = pg_sale;
    q->base.orders = pg_orders;
    q->base.close = pg_close;
    q->db = db;
    q->target = t;
    q->wait_ms = wait_ms;
    return &q->base;
}
