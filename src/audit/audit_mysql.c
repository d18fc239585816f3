/* The MySQL/MariaDB audit source: a cluster's system of record when the drain writes
 * MySQL (tables sales and orders, deploy/mysql/). As with PostgreSQL, the audit first
 * waits (bounded) until the drain has caught up (drained.h), and reads the orders'
 * state, quantity, pay_by, paid_at and closed_at where the schema has those columns
 * (times as unix ms, counted from the epoch: no time zone, no 2038); a schema without
 * them keeps final orders only: each counts as confirmed, one unit. */
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/drained.h"
#include "drain/mysql.h"
#include "util/buf.h"
#include "util/common.h"

typedef struct {
    sk_audit_source_t base;
    MYSQL *db;
    const sk_loadgen_target_t *target;
    int wait_ms;
    bool has_state, has_quantity, has_times; /* the lifecycle's columns (migration 002) */
} my_source_t;

static int my_error(my_source_t *q, char *err, size_t err_len)
{
    snprintf(err, err_len, "mysql: %s (%u)", mysql_error(q->db), mysql_errno(q->db));
    return -1;
}

/* The sale id as an SQL string's contents, escaped for the connection's character set
 * (the caller frees it). */
static char *escaped(my_source_t *q, const char *sale_id)
{
    size_t n = strlen(sale_id);
    char *esc = sk_xmalloc(2 * n + 1);
    mysql_real_escape_string(q->db, esc, sale_id, (unsigned long)n);
    return esc;
}

/* Runs the query in sql (and frees it). */
static int run(my_source_t *q, sk_buf_t *sql, char *err, size_t err_len)
{
    int rc = mysql_real_query(q->db, sql->data, sql->len);
    sk_buf_free(sql);
    return rc == 0 ? 0 : my_error(q, err, err_len);
}

/* Whether the orders table has the column (the schema's version). */
static bool has_column(my_source_t *q, const char *col)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND "
             "table_name = 'orders' AND column_name = '%s'",
             col);
    bool yes = false;
    if (mysql_real_query(q->db, sql, strlen(sql)) == 0) {
        MYSQL_RES *res = mysql_store_result(q->db);
        MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
        yes = row && row[0] && strcmp(row[0], "0") != 0;
        mysql_free_result(res);
    }
    return yes;
}

static int my_count(void *arg, const char *sale_id, sk_loadgen_sale_t *out, sk_audit_counts_t *c, bool *found,
                    char *err, size_t err_len)
{
    my_source_t *q = arg;
    char *id = escaped(q, sale_id);
    const char *units = q->has_quantity ? "quantity" : "1";
    sk_buf_t sql = {0};
    sk_buf_printf(&sql,
                  "SELECT stock, per_user_limit, "
                  "(SELECT CAST(COALESCE(SUM(%s), 0) AS SIGNED) FROM orders WHERE sale_id = '%s'%s), "
                  "(SELECT CAST(COALESCE(SUM(%s), 0) AS SIGNED) FROM orders WHERE sale_id = '%s'%s), "
                  "(SELECT COUNT(*) FROM orders WHERE sale_id = '%s') FROM sales WHERE id = '%s'",
                  units, id, q->has_state ? " AND state = 'confirmed'" : "", units, id,
                  q->has_state ? " AND state = 'reserved'" : " AND FALSE", id, id);
    free(id);
    if (run(q, &sql, err, err_len) < 0)
        return -1;
    MYSQL_RES *res = mysql_store_result(q->db);
    if (!res)
        return my_error(q, err, err_len);
    MYSQL_ROW row = mysql_fetch_row(res);
    *found = row && row[0] && row[1] && row[2] && row[3] && row[4];
    if (*found) {
        out->stock = strtoll(row[0], NULL, 10);
        out->limit = strtoll(row[1], NULL, 10);
        c->sold = strtoll(row[2], NULL, 10);
        c->held = strtoll(row[3], NULL, 10);
        c->orders = strtoll(row[4], NULL, 10);
    }
    mysql_free_result(res);
    return 0;
}

static int my_sale(sk_audit_source_t *s, const char *sale_id, sk_loadgen_sale_t *out, char *err, size_t err_len)
{
    my_source_t *q = (my_source_t *)s;
    return sk_audit_wait_drained("mysql", q->target, q->wait_ms, sale_id, s->wait_seq, my_count, q, out, err, err_len);
}

static int my_orders(sk_audit_source_t *s, const char *sale_id, sk_loadgen_order_fn fn, void *arg, char *err,
                     size_t err_len)
{
    my_source_t *q = (my_source_t *)s;
    char *id = escaped(q, sale_id);
    sk_buf_t sql = {0};
/* A DATETIME column as unix ms (0 when NULL or the schema has none). */
#define MS(c) "COALESCE(TIMESTAMPDIFF(MICROSECOND, TIMESTAMP'1970-01-01 00:00:00', " c ") DIV 1000, 0)"
    sk_buf_printf(&sql,
                  "SELECT order_id, user_id, request_id, seq, %s, %s, %s, %s, %s, " MS(
                      "created_at") " FROM orders WHERE sale_id = '%s' ORDER BY seq",
                  q->has_quantity ? "quantity" : "0", q->has_state ? "state" : "''", q->has_times ? MS("pay_by") : "0",
                  q->has_times ? MS("paid_at") : "0", q->has_times ? MS("closed_at") : "0", id);
#undef MS
    free(id);
    if (run(q, &sql, err, err_len) < 0)
        return -1;
    /* Row by row: a sale of millions of orders is not held in memory twice. */
    MYSQL_RES *res = mysql_use_result(q->db);
    if (!res)
        return my_error(q, err, err_len);
    int rc = 0;
    MYSQL_ROW row;
    while (rc == 0 && (row = mysql_fetch_row(res)) != NULL) {
        unsigned long *len = mysql_fetch_lengths(res);
        sk_loadgen_store_order_t so = {
            .order_id = row[0] ? row[0] : "",
            .order_id_len = row[0] ? len[0] : 0,
            .user_id = row[1] ? row[1] : "",
            .user_id_len = row[1] ? len[1] : 0,
            .request_id = row[2] ? row[2] : "",
            .request_id_len = row[2] ? len[2] : 0,
            .seq = row[3] ? strtoull(row[3], NULL, 10) : 0,
            .quantity = row[4] ? strtoll(row[4], NULL, 10) : 0,
            .state = sk_loadgen_state_parse(row[5] ? row[5] : "", row[5] ? len[5] : 0),
            .pay_by = row[6] ? strtoll(row[6], NULL, 10) : 0,
            .paid_at = row[7] ? strtoll(row[7], NULL, 10) : 0,
            .closed_at = row[8] ? strtoll(row[8], NULL, 10) : 0,
            .created_at = row[9] ? strtoll(row[9], NULL, 10) : 0,
        };
        rc = fn(arg, &so);
    }
    /* The rows left unread (a callback stopped early) are read off before the result
     * is freed; an error while reading fails the audit. */
    if (rc == 0 && mysql_errno(q->db))
        rc = my_error(q, err, err_len);
    mysql_free_result(res);
    return rc;
}

/* Whether a failed connect says that the server is not (yet) there, rather than that
 * it refused us. */
static bool starting(unsigned int e)
{
    return e == CR_CONNECTION_ERROR || e == CR_CONN_HOST_ERROR || e == CR_SERVER_LOST || e == CR_SERVER_GONE_ERROR ||
           e == ER_SERVER_SHUTDOWN || e == ER_CON_COUNT_ERROR;
}

static void my_close(sk_audit_source_t *s)
{
    my_source_t *q = (my_source_t *)s;
    mysql_close(q->db);
    free(q);
}

sk_audit_source_t *sk_audit_source_mysql(const char *url, const sk_loadgen_target_t *t, int wait_ms, char *err,
                                         size_t err_len)
{
    sk_db_mysql_url_t u;
    if (sk_db_mysql_parse_url(url, &u, err, err_len) < 0)
        return NULL;
    /* A server that is down or still starting (crash recovery after a fault) is waited
     * for, as the drain is; one that refuses these credentials is an error at once. */
    uint64_t deadline = sk_mono_ns() + (uint64_t)wait_ms * 1000000u;
    bool said = false;
    MYSQL *db;
    unsigned int e = 0;
    while (!(db = sk_db_mysql_open(&u, 60000, "seckill-bench", err, err_len, &e)) && starting(e) &&
           sk_mono_ns() < deadline) {
        if (!said)
            fprintf(stderr, "seckill-bench: waiting for mysql to take connections\n");
        said = true;
        usleep(200 * 1000);
    }
    if (!db)
        return NULL;
    my_source_t *q = sk_xcalloc(1, sizeof(*q));
    q->base.kind = "mysql";
    q->base.sale = my_sale;
    q->base.orders = my_orders;
    q->base.close = my_close;
    q->db = db;
    q->target = t;
    q->wait_ms = wait_ms;
    q->base.timed = true;
    q->has_state = has_column(q, "state");
    q->has_quantity = has_column(q, "quantity");
    q->has_times = has_column(q, "pay_by") && has_column(q, "paid_at") && has_column(q, "closed_at");
    return &q->base;
}
