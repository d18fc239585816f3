/* The PostgreSQL audit source: a cluster's system of record (tables sales and orders,
 * deploy/postgres/), written by `seckill drain` some time after the orders were
 * decided. Before the audit reads it, it waits (bounded) until the drain has caught up
 * (drained.h). "Sold" there is the units of its confirmed orders.
 *
 * The orders' lifecycle columns — state, quantity, pay_by, paid_at, closed_at — are read
 * where the schema has them (looked up once, times as timestamps or unix ms); a schema
 * without them keeps final orders only: each counts as confirmed, one unit. */
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
    bool has_state, has_quantity;
    char select[640]; /* the orders query, for the columns the schema has */
    char counts_sql[512]; /* confirmed units, reserved units, orders (a select list) */
} pg_source_t;

/* An expression for column c as unix ms (0 when the schema has no such column). */
static void time_expr(PGconn *db, const char *c, char *out, size_t n)
{
    const char *vals[1] = {c};
    PGresult *r = PQexecParams(db,
                               "SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' AND "
                               "column_name = $1 AND table_schema = current_schema()",
                               1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        snprintf(out, n, "0");
    else if (strncmp(PQgetvalue(r, 0, 0), "timestamp", 9) == 0)
        snprintf(out, n, "coalesce((extract(epoch FROM %s) * 1000)::bigint, 0)", c);
    else
        snprintf(out, n, "coalesce(%s::bigint, 0)", c);
    PQclear(r);
}

static bool has_column(PGconn *db, const char *c)
{
    char e[160];
    time_expr(db, c, e, sizeof(e));
    return strcmp(e, "0") != 0;
}

static void build_queries(pg_source_t *q)
{
    char pay_by[128], paid_at[128], closed_at[128], created_at[128];
    q->has_state = has_column(q->db, "state");
    q->has_quantity = has_column(q->db, "quantity");
    time_expr(q->db, "pay_by", pay_by, sizeof(pay_by));
    time_expr(q->db, "paid_at", paid_at, sizeof(paid_at));
    time_expr(q->db, "closed_at", closed_at, sizeof(closed_at));
    time_expr(q->db, "created_at", created_at, sizeof(created_at));
    snprintf(q->select, sizeof(q->select),
             "SELECT order_id, user_id, request_id, seq, %s, %s, %s, %s, %s, %s FROM orders WHERE sale_id = $1 "
             "ORDER BY seq",
             q->has_quantity ? "quantity::bigint" : "0", q->has_state ? "state::text" : "''", pay_by, paid_at,
             closed_at, created_at);
    const char *units = q->has_quantity ? "quantity" : "1";
    snprintf(q->counts_sql, sizeof(q->counts_sql),
             "(SELECT coalesce(sum(%s), 0) FROM orders WHERE sale_id = $1%s), "
             "(SELECT coalesce(sum(%s), 0) FROM orders WHERE sale_id = $1%s), "
             "(SELECT count(*) FROM orders WHERE sale_id = $1)",
             units, q->has_state ? " AND state = 'confirmed'" : "", units,
             q->has_state ? " AND state = 'reserved'" : " AND false");
}

static int pg_count(void *arg, const char *sale_id, sk_loadgen_sale_t *out, sk_audit_counts_t *c, bool *found,
                    char *err, size_t err_len)
{
    pg_source_t *q = arg;
    const char *vals[1] = {sale_id};
    char sql[768];
    snprintf(sql, sizeof(sql), "SELECT stock, per_user_limit, %s FROM sales WHERE id = $1", q->counts_sql);
    PGresult *r = PQexecParams(q->db, sql, 1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, err_len, "postgres: %.*s", (int)strcspn(PQresultErrorMessage(r), "\n"), PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    *found = PQntuples(r) == 1;
    if (*found) {
        out->stock = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        out->limit = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        c->sold = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
        c->held = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
        c->orders = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
    }
    PQclear(r);
    return 0;
}

static int pg_sale(sk_audit_source_t *s, const char *sale_id, sk_loadgen_sale_t *out, char *err, size_t err_len)
{
    pg_source_t *q = (pg_source_t *)s;
    return sk_audit_wait_drained("postgres", q->target, q->wait_ms, sale_id, s->wait_seq, pg_count, q, out, err,
                                 err_len);
}

static int pg_orders(sk_audit_source_t *s, const char *sale_id, sk_loadgen_order_fn fn, void *arg, char *err,
                     size_t err_len)
{
    pg_source_t *q = (pg_source_t *)s;
    const char *vals[1] = {sale_id};
    PGresult *r = PQexecParams(q->db, q->select, 1, NULL, vals, NULL, NULL, 0);
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
            .seq = strtoull(PQgetvalue(r, i, 3), NULL, 10),
            .quantity = strtoll(PQgetvalue(r, i, 4), NULL, 10),
            .state = sk_loadgen_state_parse(PQgetvalue(r, i, 5), (size_t)PQgetlength(r, i, 5)),
            .pay_by = strtoll(PQgetvalue(r, i, 6), NULL, 10),
            .paid_at = strtoll(PQgetvalue(r, i, 7), NULL, 10),
            .closed_at = strtoll(PQgetvalue(r, i, 8), NULL, 10),
            .created_at = strtoll(PQgetvalue(r, i, 9), NULL, 10),
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
    q->base.timed = true;
    build_queries(q);
    return &q->base;
}
