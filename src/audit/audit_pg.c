/* The PostgreSQL audit source: a cluster's system of record (tables sales and orders,
 * deploy/postgres/), written by `seckill drain` some time after the orders were
 * confirmed. Before the audit reads it, it waits (bounded) until the database holds as
 * many orders of the sale as the service reports sold: the drain has caught up
 * (drained.h). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/drained.h"
#include "util/common.h"

typedef struct {
    sk_audit_source_t base;
    PGconn *db;
    const sk_loadgen_target_t *target;
    int wait_ms;
} pg_source_t;

static int pg_count(void *arg, const char *sale_id, sk_loadgen_sale_t *out, bool *found, char *err, size_t err_len)
{
    pg_source_t *q = arg;
    const char *vals[1] = {sale_id};
    PGresult *r = PQexecParams(q->db,
                               "SELECT stock, per_user_limit, (SELECT count(*) FROM orders WHERE sale_id = $1) "
                               "FROM sales WHERE id = $1",
                               1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, err_len, "postgres: %.*s", (int)strcspn(PQresultErrorMessage(r), "\n"), PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    *found = PQntuples(r) == 1;
    if (*found) {
        out->stock = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        out->limit = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        out->sold = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    }
    PQclear(r);
    return 0;
}

static int pg_sale(sk_audit_source_t *s, const char *sale_id, sk_loadgen_sale_t *out, char *err, size_t err_len)
{
    pg_source_t *q = (pg_source_t *)s;
    return sk_audit_wait_drained("postgres", q->target, q->wait_ms, sale_id, pg_count, q, out, err, err_len);
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
    /* A server that is down or still starting (crash recovery after a fault) is waited
     * for, as the drain is; one that refuses these credentials is an error at once. */
    uint64_t deadline = sk_mono_ns() + (uint64_t)wait_ms * 1000000u;
    bool said = false;
    PGPing ping;
    while ((ping = PQping(conninfo)) == PQPING_REJECT || ping == PQPING_NO_RESPONSE) {
        if (sk_mono_ns() >= deadline)
            break;
        if (!said)
            fprintf(stderr, "seckill-bench: waiting for postgres to take connections\n");
        said = true;
        usleep(200 * 1000);
    }
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
