/* The SQLite audit source: the embedded store's journal, opened read-only.
 *
 *   sales(id, stock, per_user_limit, ...) and sale_events (the trail: a sale's stock
 *            now is its last entry's after.stock, else the sales row's)
 *   orders — a view: one row per order with seq, order_id, user_id, request_id,
 *            quantity, state, created_at, pay_by, paid_at, closed_at
 *   order_batches(lsn, sale_id, first_seq, pay_by, orders) — new orders, a JSON array
 *            of [user_id, request_id(, quantity)] per sale per batch
 *   order_events(lsn, sale_id, kind, events) — transitions, a JSON array of [seq, ...]
 *            per sale per kind (pay, cancel, expire, refund) per batch
 *
 * The log is the two tables merged by lsn (one counter for the whole journal, in
 * decision order). A file without them (an older layout) has no log: events is then
 * not offered. */
#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "util/common.h"

typedef struct {
    sk_audit_source_t base;
    sqlite3 *db;
    bool has_state; /* the orders view has state, quantity and times */
    bool has_trail; /* sale_events, the trail of operator controls, with after.stock */
} sqlite_source_t;

static int db_error(sqlite_source_t *q, char *err, size_t err_len)
{
    snprintf(err, err_len, "sqlite: %s", sqlite3_errmsg(q->db));
    return -1;
}

static int sqlite_sale(sk_audit_source_t *s, const char *sale_id, sk_loadgen_sale_t *out, char *err, size_t err_len)
{
    sqlite_source_t *q = (sqlite_source_t *)s;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    /* "sold" as the store holds it: units of confirmed orders (every order, in a store
     * without states); the stock now: the trail's last entry's, else the sales row's. */
    const char *stock = q->has_trail ? "coalesce((SELECT after ->> 'stock' FROM sale_events WHERE sale_id = ?1 "
                                       "ORDER BY lsn DESC LIMIT 1), stock)"
                                     : "stock";
    const char *sold = q->has_state ? "SELECT coalesce(sum(quantity), 0) FROM orders WHERE sale_id = ?1 AND "
                                      "state = 'confirmed'"
                                    : "SELECT count(*) FROM orders WHERE sale_id = ?1";
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT %s, per_user_limit, (%s) FROM sales WHERE id = ?1", stock, sold);
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_error(q, err, err_len);
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        out->stock = sqlite3_column_int64(st, 0);
        out->limit = sqlite3_column_int64(st, 1);
        out->sold = sqlite3_column_int64(st, 2);
        rc = 0;
    } else if (r == SQLITE_DONE) {
        snprintf(err, err_len, "sqlite: no sale %s in the store", sale_id);
    } else {
        db_error(q, err, err_len);
    }
    sqlite3_finalize(st);
    return rc;
}

static const char *col_text(sqlite3_stmt *st, int i, size_t *len)
{
    const char *p = (const char *)sqlite3_column_text(st, i);
    *len = p ? (size_t)sqlite3_column_bytes(st, i) : 0;
    return p ? p : "";
}

static int sqlite_orders(sk_audit_source_t *s, const char *sale_id, sk_loadgen_order_fn fn, void *arg, char *err,
                         size_t err_len)
{
    sqlite_source_t *q = (sqlite_source_t *)s;
    sqlite3_stmt *st = NULL;
    const char *sql =
        q->has_state ? "SELECT order_id, user_id, coalesce(request_id, ''), seq, quantity, state, "
                       "coalesce(pay_by, 0), coalesce(paid_at, 0), coalesce(closed_at, 0), coalesce(created_at, 0) "
                       "FROM orders WHERE sale_id = ?1 ORDER BY seq"
                     : "SELECT order_id, user_id, coalesce(request_id, ''), seq FROM orders WHERE sale_id = ?1 "
                       "ORDER BY seq";
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_error(q, err, err_len);
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int rc = 0, r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        sk_loadgen_store_order_t so = {0};
        so.order_id = col_text(st, 0, &so.order_id_len);
        so.user_id = col_text(st, 1, &so.user_id_len);
        so.request_id = col_text(st, 2, &so.request_id_len);
        so.seq = (uint64_t)sqlite3_column_int64(st, 3);
        if (q->has_state) {
            size_t n;
            const char *state = col_text(st, 5, &n);
            so.quantity = sqlite3_column_int64(st, 4);
            so.state = sk_loadgen_state_parse(state, n);
            so.pay_by = sqlite3_column_int64(st, 6);
            so.paid_at = sqlite3_column_int64(st, 7);
            so.closed_at = sqlite3_column_int64(st, 8);
            so.created_at = sqlite3_column_int64(st, 9);
        }
        if ((rc = fn(arg, &so)) != 0)
            break;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = db_error(q, err, err_len);
    sqlite3_finalize(st);
    return rc;
}

/* ---- the log ------------------------------------------------------------------------- */

static sk_loadgen_state_t event_state(const char *kind)
{
    if (strcmp(kind, "pay") == 0)
        return SK_LOADGEN_ST_CONFIRMED;
    if (strcmp(kind, "cancel") == 0)
        return SK_LOADGEN_ST_CANCELLED;
    if (strcmp(kind, "expire") == 0)
        return SK_LOADGEN_ST_EXPIRED;
    if (strcmp(kind, "refund") == 0)
        return SK_LOADGEN_ST_REFUNDED;
    return SK_LOADGEN_ST_UNKNOWN;
}

/* One order_batches row: its new orders, first_seq onwards. */
static int batch_row(sqlite3_stmt *st, sk_audit_event_fn fn, void *arg, char *err, size_t err_len)
{
    uint64_t first = (uint64_t)sqlite3_column_int64(st, 1);
    bool reserved = sqlite3_column_type(st, 2) != SQLITE_NULL;
    size_t len;
    const char *text = col_text(st, 3, &len);
    json_t *a = json_loadb(text, len, 0, NULL);
    if (!json_is_array(a)) {
        snprintf(err, err_len, "sqlite: order_batches row %lld: orders is not a JSON array",
                 (long long)sqlite3_column_int64(st, 0));
        json_decref(a);
        return -1;
    }
    size_t i;
    json_t *o;
    int rc = 0;
    json_array_foreach(a, i, o)
    {
        json_t *u = json_array_get(o, 0), *qv = json_array_get(o, 2);
        sk_audit_event_t ev = {.seq = first + i,
                               .created = true,
                               .to = reserved ? SK_LOADGEN_ST_RESERVED : SK_LOADGEN_ST_CONFIRMED,
                               .user_id = json_is_string(u) ? json_string_value(u) : "",
                               .user_id_len = json_is_string(u) ? json_string_length(u) : 0,
                               .quantity = json_is_integer(qv) ? json_integer_value(qv) : 1};
        if ((rc = fn(arg, &ev)) != 0)
            break;
    }
    json_decref(a);
    return rc;
}

/* One order_events row: each order it moves, into the state its kind makes. */
static int events_row(sqlite3_stmt *st, sk_audit_event_fn fn, void *arg, char *err, size_t err_len)
{
    size_t kl, len;
    const char *kind = col_text(st, 1, &kl);
    const char *text = col_text(st, 2, &len);
    sk_loadgen_state_t to = event_state(kind);
    json_t *a = json_loadb(text, len, 0, NULL);
    if (!json_is_array(a) || to == SK_LOADGEN_ST_UNKNOWN) {
        snprintf(err, err_len, "sqlite: order_events row %lld: kind %s, events not a JSON array",
                 (long long)sqlite3_column_int64(st, 0), kind);
        json_decref(a);
        return -1;
    }
    size_t i;
    json_t *e;
    int rc = 0;
    json_array_foreach(a, i, e)
    {
        json_t *seq = json_is_array(e) ? json_array_get(e, 0) : e;
        if (!json_is_integer(seq) || json_integer_value(seq) < 1) {
            snprintf(err, err_len, "sqlite: order_events row %lld: an event without a seq",
                     (long long)sqlite3_column_int64(st, 0));
            rc = -1;
            break;
        }
        sk_audit_event_t ev = {.seq = (uint64_t)json_integer_value(seq), .to = to};
        if ((rc = fn(arg, &ev)) != 0)
            break;
    }
    json_decref(a);
    return rc;
}

static int sqlite_events(sk_audit_source_t *s, const char *sale_id, sk_audit_event_fn fn, void *arg, char *err,
                         size_t err_len)
{
    sqlite_source_t *q = (sqlite_source_t *)s;
    sqlite3_stmt *b = NULL, *e = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT lsn, first_seq, pay_by, orders FROM order_batches WHERE sale_id = ?1 ORDER BY lsn",
                           -1, &b, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "SELECT lsn, kind, events FROM order_events WHERE sale_id = ?1 ORDER BY lsn", -1, &e,
                           NULL) != SQLITE_OK) {
        db_error(q, err, err_len);
        goto out;
    }
    sqlite3_bind_text(b, 1, sale_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(e, 1, sale_id, -1, SQLITE_STATIC);
    /* Two cursors in lsn order, merged. */
    int rb = sqlite3_step(b), re = sqlite3_step(e);
    while (rb == SQLITE_ROW || re == SQLITE_ROW) {
        bool take_batch =
            rb == SQLITE_ROW && (re != SQLITE_ROW || sqlite3_column_int64(b, 0) < sqlite3_column_int64(e, 0));
        int r = take_batch ? batch_row(b, fn, arg, err, err_len) : events_row(e, fn, arg, err, err_len);
        if (r != 0) {
            rc = r;
            goto out;
        }
        if (take_batch)
            rb = sqlite3_step(b);
        else
            re = sqlite3_step(e);
    }
    if (rb != SQLITE_DONE || re != SQLITE_DONE) {
        db_error(q, err, err_len);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(b);
    sqlite3_finalize(e);
    return rc;
}

static void sqlite_close(sk_audit_source_t *s)
{
    sqlite_source_t *q = (sqlite_source_t *)s;
    sqlite3_close(q->db);
    free(q);
}

/* True when the table or view exists (and, with col, has that column). */
static bool has(sqlite3 *db, const char *table, const char *col)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT %s FROM %s LIMIT 0", col ? col : "1", table);
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    return ok;
}

sk_audit_source_t *sk_audit_source_sqlite(const char *path, char *err, size_t err_len)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "sqlite: cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    sqlite_source_t *q = sk_xcalloc(1, sizeof(*q));
    q->base.kind = "sqlite";
    q->base.sale = sqlite_sale;
    q->base.orders = sqlite_orders;
    q->base.close = sqlite_close;
    q->db = db;
    q->has_state = has(db, "orders", "state, quantity, pay_by, paid_at, closed_at, created_at");
    q->has_trail = has(db, "sale_events", "lsn, after");
    if (has(db, "order_batches", "lsn, first_seq, pay_by, orders") && has(db, "order_events", "lsn, kind, events"))
        q->base.events = sqlite_events;
    return &q->base;
}
