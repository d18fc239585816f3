/* PostgreSQL, the drain's first database (db.h): a thin layer over libpq. The SQL text
 * is in sql_postgres.c; the schema migrations are the .sql files of deploy/postgres/,
 * compiled in (util/texts.h). Orders go in with COPY, and with INSERT ... ON CONFLICT DO
 * NOTHING when COPY meets an order already there (a batch delivered twice); a batch
 * with transitions or trail entries is BEGIN, the orders, one UPDATE of the
 * transitions, the trail rows, COMMIT.
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
#include <time.h>

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
    char sqlstate[6]; /* of the last statement that failed */
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

/* Waits until what was sent is flushed and a result can be read without blocking,
 * against the deadline (then the query is cancelled and the connection declared
 * broken). Returns false with err filled. */
static bool wait_ready(pg_t *pg, uint64_t deadline, char *err, size_t err_size)
{
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
    return true;
broken:
    pg->broken = true;
    set_err(err, err_size, "connection lost", PQerrorMessage(pg->conn));
    return false;
}

/* Waits for the answer to what was sent; returns the last result (caller clears it)
 * or NULL with err filled (and the failed statement's SQLSTATE kept). Every result but
 * the last is checked and dropped. */
static PGresult *await(pg_t *pg, char *err, size_t err_size)
{
    pg->sqlstate[0] = '\0';
    if (!wait_ready(pg, sk_mono_ns() + (uint64_t)pg->timeout_ms * 1000000u, err, err_size))
        return NULL;
    PGresult *last = NULL, *r;
    bool failed = false;
    while ((r = PQgetResult(pg->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && !failed) {
            set_err(err, err_size, "statement failed", PQresultErrorMessage(r));
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(pg->sqlstate, sizeof(pg->sqlstate), "%s", state ? state : "");
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

/* Appends s in COPY's text format: ids hold no tab, newline or carriage return (they
 * are validated), so a backslash is the one character to escape. */
static void copy_str(sk_buf_t *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            sk_buf_putc(b, '\\');
        sk_buf_putc(b, *p);
    }
}

/* Appends a unix time in ms as a timestamptz literal ("2026-05-01 12:00:00.123+00"). */
static void copy_time(sk_buf_t *b, int64_t ms, int64_t *cached_sec, char *cached)
{
    int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    if (sec != *cached_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(cached, 24, "%Y-%m-%d %H:%M:%S", &tm);
        *cached_sec = sec;
    }
    sk_buf_printf(b, "%s.%03d+00", cached, (int)(ms - sec * 1000));
}

/* Sends data of a COPY in progress without ever blocking past the deadline. */
static bool copy_send(pg_t *pg, const char *data, size_t len, bool end, uint64_t deadline, char *err, size_t err_size)
{
    size_t off = 0;
    for (;;) {
        int rc;
        if (off < len) {
            int chunk = (int)SK_MIN(len - off, (size_t)65536);
            rc = PQputCopyData(pg->conn, data + off, chunk);
            if (rc == 1)
                off += (size_t)chunk;
        } else if (end) {
            rc = PQputCopyEnd(pg->conn, NULL);
            if (rc == 1)
                return true;
        } else {
            return true;
        }
        if (rc < 0) {
            pg->broken = true;
            set_err(err, err_size, "COPY failed", PQerrorMessage(pg->conn));
            return false;
        }
        if (rc == 0) {
            /* The output buffer is full: wait for the socket (nonblocking mode). */
            uint64_t now = sk_mono_ns();
            if (now >= deadline) {
                pg->broken = true;
                set_err(err, err_size, "no answer within the timeout", NULL);
                return false;
            }
            struct pollfd p = {.fd = PQsocket(pg->conn), .events = POLLOUT};
            if (poll(&p, 1, (int)SK_MIN((deadline - now) / 1000000u + 1, (uint64_t)1000)) < 0 && errno != EINTR) {
                pg->broken = true;
                set_err(err, err_size, "connection lost", PQerrorMessage(pg->conn));
                return false;
            }
            if (PQflush(pg->conn) < 0 || PQconsumeInput(pg->conn) == 0) {
                pg->broken = true;
                set_err(err, err_size, "connection lost", PQerrorMessage(pg->conn));
                return false;
            }
        }
    }
}

/* The batch through COPY, the fastest way in: one statement, one transaction. Returns
 * the rows inserted, or -EIO; *conflict says the batch met an order already there (a
 * batch delivered again), which COPY refuses as a whole: nothing was inserted then. */
static int64_t pg_copy_orders(pg_t *pg, const sk_db_order_t *o, size_t n, bool *conflict, char *err, size_t err_size)
{
    *conflict = false;
    sk_buf_t b = {0};
    int64_t cached_sec = INT64_MIN;
    char cached[24] = "";
    for (size_t i = 0; i < n; i++) {
        copy_str(&b, o[i].order_id);
        sk_buf_putc(&b, '\t');
        copy_str(&b, o[i].sale_id);
        sk_buf_putc(&b, '\t');
        sk_buf_put_i64(&b, o[i].seq);
        sk_buf_putc(&b, '\t');
        copy_str(&b, o[i].user_id);
        sk_buf_putc(&b, '\t');
        copy_str(&b, o[i].request_id);
        sk_buf_putc(&b, '\t');
        copy_time(&b, o[i].created_at, &cached_sec, cached);
        sk_buf_putc(&b, '\t');
        sk_buf_put_i64(&b, o[i].quantity);
        sk_buf_putc(&b, '\t');
        sk_buf_puts(&b, o[i].state);
        sk_buf_putc(&b, '\t');
        if (o[i].pay_by > 0)
            copy_time(&b, o[i].pay_by, &cached_sec, cached);
        else
            sk_buf_puts(&b, "\\N");
        sk_buf_putc(&b, '\n');
    }
    int64_t result = -EIO;
    uint64_t deadline = sk_mono_ns() + (uint64_t)pg->timeout_ms * 1000000u;
    if (!PQsendQuery(pg->conn, sk_db_sql_postgres.copy_orders)) {
        pg->broken = PQstatus(pg->conn) != CONNECTION_OK;
        set_err(err, err_size, "cannot send", PQerrorMessage(pg->conn));
        goto out;
    }
    if (!wait_ready(pg, deadline, err, err_size))
        goto out;
    PGresult *r = PQgetResult(pg->conn);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        set_err(err, err_size, "COPY refused", r ? PQresultErrorMessage(r) : PQerrorMessage(pg->conn));
        PQclear(r);
        while ((r = PQgetResult(pg->conn)) != NULL)
            PQclear(r);
        goto out;
    }
    PQclear(r);
    PQsetnonblocking(pg->conn, 1);
    bool sent = copy_send(pg, b.data, b.len, true, deadline, err, err_size);
    PQsetnonblocking(pg->conn, 0);
    if (!sent)
        goto out;
    r = await(pg, err, err_size);
    if (!r) {
        *conflict = strcmp(pg->sqlstate, "23505") == 0; /* unique_violation */
        goto out;
    }
    result = 0;
    const char *t = PQcmdTuples(r);
    if (t && *t)
        sk_parse_i64(t, strlen(t), 0, INT64_MAX, &result);
    PQclear(r);
out:
    sk_buf_free(&b);
    return result;
}

/* Rows a statement reported (PQcmdTuples), 0 when it says none. */
static int64_t cmd_tuples(PGresult *r)
{
    int64_t n = 0;
    const char *t = PQcmdTuples(r);
    if (t && *t)
        sk_parse_i64(t, strlen(t), 0, INT64_MAX, &n);
    return n;
}

/* Closes the k arrays of a PostgreSQL array literal each and points vals at them. */
static void arrays_end(sk_buf_t *a, int k, const char **vals)
{
    for (int i = 0; i < k; i++) {
        sk_buf_putc(&a[i], '}');
        sk_buf_putc(&a[i], '\0');
        vals[i] = a[i].data;
    }
}

/* The orders as one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING: rows
 * already there are skipped. Returns the rows inserted or -EIO. */
static int64_t pg_insert_orders(pg_t *pg, const sk_db_order_t *o, size_t n, char *err, size_t err_size)
{
    enum { K = 9 };
    sk_buf_t a[K] = {{0}};
    for (int k = 0; k < K; k++)
        sk_buf_putc(&a[k], '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            for (int k = 0; k < K; k++)
                sk_buf_putc(&a[k], ',');
        array_str(&a[0], o[i].order_id);
        array_str(&a[1], o[i].sale_id);
        sk_buf_put_i64(&a[2], o[i].seq);
        array_str(&a[3], o[i].user_id);
        array_str(&a[4], o[i].request_id);
        sk_buf_put_i64(&a[5], o[i].created_at);
        sk_buf_put_i64(&a[6], o[i].quantity);
        array_str(&a[7], o[i].state);
        sk_buf_put_i64(&a[8], o[i].pay_by);
    }
    const char *vals[K];
    arrays_end(a, K, vals);
    sk_buf_t sql = {0};
    sk_db_sql_postgres.insert_orders(&sql, n);
    sk_buf_putc(&sql, '\0');
    PGresult *r = exec_params(pg, sql.data, K, vals, err, err_size);
    sk_buf_free(&sql);
    for (int k = 0; k < K; k++)
        sk_buf_free(&a[k]);
    if (!r)
        return -EIO;
    int64_t inserted = cmd_tuples(r);
    PQclear(r);
    return inserted;
}

/* The orders of a batch: COPY first; a batch that meets orders already written
 * (delivered again after a crash or a failover) goes in again row by row, skipping
 * those. In a transaction (in_tx) the failed COPY took it down: it is begun again
 * (nothing else of the batch was written before the orders). */
static int64_t pg_write_orders(pg_t *pg, const sk_db_order_t *o, size_t n, bool in_tx, char *err, size_t err_size)
{
    bool conflict;
    int64_t copied = pg_copy_orders(pg, o, n, &conflict, err, err_size);
    if (copied >= 0 || !conflict)
        return copied;
    if (in_tx &&
        (exec_ok(pg, "ROLLBACK", 0, NULL, err, err_size) < 0 || exec_ok(pg, "BEGIN", 0, NULL, err, err_size) < 0))
        return -EIO;
    return pg_insert_orders(pg, o, n, err, err_size);
}

/* The merged transitions in one statement; fills in which orders were found. */
static int pg_write_transitions(pg_t *pg, sk_db_transition_t *t, size_t n, char *err, size_t err_size)
{
    enum { K = 6 };
    sk_buf_t a[K] = {{0}};
    for (int k = 0; k < K; k++)
        sk_buf_putc(&a[k], '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            for (int k = 0; k < K; k++)
                sk_buf_putc(&a[k], ',');
        array_str(&a[0], t[i].sale_id);
        sk_buf_put_i64(&a[1], t[i].seq);
        array_str(&a[2], t[i].state);
        sk_buf_put_i64(&a[3], t[i].paid_at);
        array_str(&a[4], t[i].payment_id);
        sk_buf_put_i64(&a[5], t[i].closed_at);
        t[i].found = true;
    }
    const char *vals[K];
    arrays_end(a, K, vals);
    sk_buf_t sql = {0};
    sk_db_sql_postgres.update_orders(&sql, n);
    sk_buf_putc(&sql, '\0');
    PGresult *r = exec_params(pg, sql.data, K, vals, err, err_size);
    sk_buf_free(&sql);
    for (int k = 0; k < K; k++)
        sk_buf_free(&a[k]);
    if (!r)
        return -EIO;
    /* The rows are the transitions whose order is missing: rare (several drains). */
    for (int j = 0; j < PQntuples(r); j++) {
        int64_t seq;
        if (sk_parse_i64(PQgetvalue(r, j, 1), (size_t)PQgetlength(r, j, 1), 0, INT64_MAX, &seq) < 0)
            continue;
        for (size_t i = 0; i < n; i++)
            if (t[i].seq == seq && strcmp(t[i].sale_id, PQgetvalue(r, j, 0)) == 0)
                t[i].found = false;
    }
    PQclear(r);
    return 0;
}

static int pg_write_events(pg_t *pg, const sk_db_event_t *e, size_t n, char *err, size_t err_size)
{
    /* Controls are rare: one statement each. */
    for (size_t i = 0; i < n; i++) {
        char seq[24], at[24];
        put_ms(seq, sizeof(seq), e[i].seq);
        put_ms(at, sizeof(at), e[i].decided_at);
        const char *vals[] = {e[i].sale_id, seq,         e[i].kind,   e[i].actor, e[i].request_id,
                              at,           e[i].params, e[i].before, e[i].after};
        if (exec_ok(pg, sk_db_sql_postgres.insert_event, 9, vals, err, err_size) < 0)
            return -EIO;
    }
    return 0;
}

static int64_t pg_put_batch(sk_db_t *db, sk_db_batch_t *b, char *err, size_t err_size)
{
    pg_t *pg = (pg_t *)db;
    if (b->n_orders + b->n_transitions + b->n_events == 0)
        return 0;
    if (!pg_ok(db)) {
        set_err(err, err_size, "not connected", NULL);
        return -EIO;
    }
    /* New orders alone (a plain sale's batch) are one statement, one transaction. */
    if (b->n_transitions + b->n_events == 0)
        return pg_write_orders(pg, b->orders, b->n_orders, false, err, err_size);
    if (exec_ok(pg, "BEGIN", 0, NULL, err, err_size) < 0)
        return -EIO;
    int64_t inserted = b->n_orders ? pg_write_orders(pg, b->orders, b->n_orders, true, err, err_size) : 0;
    if (inserted < 0 ||
        (b->n_transitions && pg_write_transitions(pg, b->transitions, b->n_transitions, err, err_size) < 0) ||
        pg_write_events(pg, b->events, b->n_events, err, err_size) < 0) {
        char e2[8];
        if (pg_ok(db) && exec_ok(pg, "ROLLBACK", 0, NULL, e2, sizeof(e2)) < 0)
            pg->broken = true;
        return -EIO;
    }
    if (exec_ok(pg, "COMMIT", 0, NULL, err, err_size) < 0) {
        /* Committed or not, nobody can say: write the batch again on a new connection. */
        pg->broken = true;
        return -EIO;
    }
    return inserted;
}

static int pg_count(sk_db_t *db, const char *sale_id, sk_db_counts_t *out, char *err, size_t err_size)
{
    pg_t *pg = (pg_t *)db;
    const char *vals[1] = {sale_id};
    PGresult *r = exec_params(pg, sk_db_sql_postgres.count_orders, 1, vals, err, err_size);
    if (!r)
        return -EIO;
    int64_t v[3];
    bool ok = PQntuples(r) == 1 && PQnfields(r) == 3;
    for (int k = 0; ok && k < 3; k++)
        ok = sk_parse_i64(PQgetvalue(r, 0, k), (size_t)PQgetlength(r, 0, k), 0, INT64_MAX, &v[k]) == 0;
    PQclear(r);
    if (!ok) {
        set_err(err, err_size, "count of orders: unexpected answer", NULL);
        return -EIO;
    }
    *out = (sk_db_counts_t){.orders = v[0], .sold = v[1], .held = v[2]};
    return 0;
}

const sk_db_driver_t sk_db_postgres = {
    .name = "postgres",
    .title = "PostgreSQL",
    .connect = pg_connect,
    .close = pg_close,
    .migrate = pg_migrate,
    .put_sale = pg_put_sale,
    .put_batch = pg_put_batch,
    .ok = pg_ok,
    .count = pg_count,
};
