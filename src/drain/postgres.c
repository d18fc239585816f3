/* PostgreSQL, the drain's first database (db.h): a thin layer over libpq. The SQL text
 * is in sql_postgres.c; the schema migrations are the .sql files of deploy/postgres/,
 * compiled in (util/texts.h).
 *
 * Statements go out with PQsendQuery* and their answers are
 * awaited with poll() against a deadline: a blocking PQexec would hang the drain for as
 * long as a stopped (not crashed) server keeps the socket open. On a deadline the
 * query is cancelled and the connection declared broken; the caller reconnects and
 * retries, which ON CONFLICT DO NOTHING makes harmless. */
#include "drain/db.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drain/sql.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/texts.h"

#define MIGRATION_LOCK 0x5ec1c111 /* pg_advisory_xact_lock key of the migrations */

typedef struct {
    sk_db_t base; /* first: an sk_db_t * is a pg_t * */
    PGconn *conn;
    int timeout_ms;
    bool broken;
} pg_t;

static void set_err(char *err, size_t err_size, const char *what, const char *detail)
{
    /* libpq's messages end in a newline; one line is wanted. */
    size_t n = detail ? strcspn(detail, "\n") : 0;
    snprintf(err, err_size, "postgres: %s%s%.*s", what, n ? ": " : "", (int)n, detail ? detail : "");
}

/* Notices ("relation already exists, skipping") are not errors: debug log only. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    sk_debug("postgres: %.*s", (int)strcspn(message, "\n"), message);
}

static sk_db_t *pg_connect(const char *conninfo, int timeout_ms, char *err, size_t err_size)
{
    char secs[16];
    snprintf(secs, sizeof(secs), "%d", SK_MAX(1, timeout_ms / 1000));
    /* connect_timeout first: a value given in the connection string itself wins. */
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const vals[] = {secs, "seckill-drain", conninfo, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        set_err(err, err_size, "cannot connect", c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    pg_t *pg = sk_xcalloc(1, sizeof(*pg));
    pg->base.driver = &sk_db_postgres;
    pg->conn = c;
    pg->timeout_ms = timeout_ms;
    return &pg->base;
}

static void pg_close(sk_db_t *db)
{
    pg_t *pg = (pg_t *)db;
    PQfinish(pg->conn);
    free(pg);
}

static bool pg_ok(const sk_db_t *db)
{
    const pg_t *pg = (const pg_t *)db;
    return !pg->broken && PQstatus(pg->conn) == CONNECTION_OK;
}

/* Waits for the answer to what was sent; returns the last result (caller clears it)
 * or NULL with err filled. Every result but the last is checked and dropped. */
static PGresult *await(pg_t *pg, char *err, size_t err_size)
{
    uint64_t deadline = sk_mono_ns() + (uint64_t)pg->timeout_ms * 1000000u;
    int fd = PQsocket(pg->conn);
    for (;;) {
        int f = PQflush(pg->conn);
        if (f < 0)
            goto broken;
        if (PQconsumeInput(pg->conn) == 0)
            goto broken;
        if (f == 0 && !PQisBusy(pg->conn))
            break;
        uint64_t now = sk_mono_ns();
        if (now >= deadline) {
            char buf[256];
            PGcancel *cancel = PQgetCancel(pg->conn);
            if (cancel) {
                PQcancel(cancel, buf, sizeof(buf));
                PQfreeCancel(cancel);
            }
            pg->broken = true;
            set_err(err, err_size, "no answer within the timeout", NULL);
            return NULL;
        }
        struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (f == 1 ? POLLOUT : 0))};
        int ms = (int)SK_MIN((deadline - now) / 1000000u + 1, (uint64_t)1000);
        if (poll(&p, 1, ms) < 0 && errno != EINTR)
            goto broken;
    }
    PGresult *last = NULL, *r;
    bool failed = false;
    while ((r = PQgetResult(pg->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && !failed) {
            set_err(err, err_size, "statement failed", PQresultErrorMessage(r));
            failed = true;
        }
        PQclear(last);
        last = r;
    }
    if (failed || !last) {
        if (!last)
            set_err(err, err_size, "no result", PQerrorMessage(pg->conn));
        PQclear(last);
        if (PQstatus(pg->conn) != CONNECTION_OK)
            pg->broken = true;
        return NULL;
    }
    return last;
broken:
    pg->broken = true;
    set_err(err, err_size, "connection lost", PQerrorMessage(pg->conn));
    return NULL;
}

static PGresult *exec_params(pg_t *pg, const char *sql, int n, const char *const *vals, char *err, size_t err_size)
{
    if (!pg_ok(&pg->base)) {
        set_err(err, err_size, "not connected", NULL);
        return NULL;
    }
    int ok = n ? PQsendQueryParams(pg->conn, sql, n, NULL, vals, NULL, NULL, 0) : PQsendQuery(pg->conn, sql);
    if (!ok) {
        pg->broken = PQstatus(pg->conn) != CONNECTION_OK;
        set_err(err, err_size, "cannot send", PQerrorMessage(pg->conn));
        return NULL;
    }
    return await(pg, err, err_size);
}

static int exec_ok(pg_t *pg, const char *sql, int n, const char *const *vals, char *err, size_t err_size)
{
    PGresult *r = exec_params(pg, sql, n, vals, err, err_size);
    if (!r)
        return -EIO;
    PQclear(r);
    return 0;
}

static int pg_migrate(sk_db_t *db, char *err, size_t err_size)
{
    pg_t *pg = (pg_t *)db;
    const sk_db_sql_t *q = &sk_db_sql_postgres;
    size_t prefix = strlen(q->migrations);
    /* An ALTER TABLE of a big table may take minutes: the migrations get a deadline of
     * their own. */
    int timeout_ms = pg->timeout_ms;
    pg->timeout_ms = SK_DB_MIGRATE_TIMEOUT_MS;
    int applied = 0;
    for (const sk_text_t *t = sk_texts; t->name; t++) {
        if (strncmp(t->name, q->migrations, prefix) != 0)
            continue;
        const char *name = t->name + prefix;
        const char *vals[1] = {name};
        if (exec_ok(pg, "BEGIN", 0, NULL, err, err_size) < 0) {
            applied = -EIO;
            break;
        }
        char lock[96];
        snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d)", MIGRATION_LOCK);
        PGresult *r = NULL;
        if (exec_ok(pg, lock, 0, NULL, err, err_size) < 0 ||
            exec_ok(pg, q->migrations_table, 0, NULL, err, err_size) < 0 ||
            !(r = exec_params(pg, q->migration_applied, 1, vals, err, err_size)))
            goto fail;
        bool done = PQntuples(r) > 0;
        PQclear(r);
        if (!done) {
            if (exec_ok(pg, t->text, 0, NULL, err, err_size) < 0 ||
                exec_ok(pg, q->migration_record, 1, vals, err, err_size) < 0)
                goto fail;
            applied++;
        }
        if (exec_ok(pg, "COMMIT", 0, NULL, err, err_size) < 0) {
            applied = -EIO;
            break;
        }
        continue;
    fail:;
        char e2[8];
        exec_ok(pg, "ROLLBACK", 0, NULL, e2, sizeof(e2));
        size_t l = strlen(err);
        snprintf(err + l, err_size - l, " (migration %s)", name);
        applied = -EIO;
        break;
    }
    pg->timeout_ms = timeout_ms;
    return applied;
}

static void put_ms(char *dst, size_t cap, int64_t v)
{
    snprintf(dst, cap, "%lld", (long long)v);
}

static int pg_put_sale(sk_db_t *db, const sk_db_sale_t *s, char *err, size_t err_size)
{
    pg_t *pg = (pg_t *)db;
    char stock[24], starts[24], ends[24], limit[24], created[24];
    put_ms(stock, sizeof(stock), s->stock);
    put_ms(starts, sizeof(starts), s->starts_at);
    put_ms(ends, sizeof(ends), s->ends_at);
    put_ms(limit, sizeof(limit), s->per_user_limit);
    put_ms(created, sizeof(created), s->created_at);
    const char *vals[] = {s->id, s->name, stock, starts, ends, limit, created};
    return exec_ok(pg, sk_db_sql_postgres.insert_sale, 7, vals, err, err_size);
}

/* Appends s as an element of a PostgreSQL array literal: quoted, with " and \ escaped. */
static void array_str(sk_buf_t *b, const char *s)
{
    sk_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sk_buf_putc(b, '\\');
        sk_buf_putc(b, *s);
    }
    sk_buf_putc(b, '"');
}

static int64_t pg_put_orders(sk_db_t *db, const sk_db_order_t *o, size_t n, char *err, size_t err_size)
{
    pg_t *pg = (pg_t *)db;
    if (n == 0)
        return 0;
    sk_buf_t a[6] = {{0}};
    for (int k = 0; k < 6; k++)
        sk_buf_putc(&a[k], '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            for (int k = 0; k < 6; k++)
                sk_buf_putc(&a[k], ',');
        array_str(&a[0], o[i].order_id);
        array_str(&a[1], o[i].sale_id);
        sk_buf_put_i64(&a[2], o[i].seq);
        array_str(&a[3], o[i].user_id);
        array_str(&a[4], o[i].request_id);
        sk_buf_put_i64(&a[5], o[i].created_at);
    }
    const char *vals[6];
    for (int k = 0; k < 6; k++) {
        sk_buf_putc(&a[k], '}');
        sk_buf_putc(&a[k], '\0');
        vals[k] = a[k].data;
    }
    /* One statement is one transaction: the whole batch or nothing. */
    sk_buf_t sql = {0};
    sk_db_sql_postgres.insert_orders(&sql, n);
    sk_buf_putc(&sql, '\0');
    PGresult *r = exec_params(pg, sql.data, 6, vals, err, err_size);
    sk_buf_free(&sql);
    for (int k = 0; k < 6; k++)
        sk_buf_free(&a[k]);
    if (!r)
        return -EIO;
    int64_t inserted = 0;
    const char *t = PQcmdTuples(r);
    if (t && *t)
        sk_parse_i64(t, strlen(t), 0, INT64_MAX, &inserted);
    PQclear(r);
    return inserted;
}

const sk_db_driver_t sk_db_postgres = {
    .name = "postgres",
    .title = "PostgreSQL",
    .connect = pg_connect,
    .close = pg_close,
    .migrate = pg_migrate,
    .put_sale = pg_put_sale,
    .put_orders = pg_put_orders,
    .ok = pg_ok,
};
