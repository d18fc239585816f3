/* MySQL and MariaDB, the drain's second database (db.h), over MariaDB Connector/C; and
 * what the auditor shares with it (mysql.h). The SQL text is in sql_mysql.c; the
 * schema migrations are the .sql files of deploy/mysql/, compiled in (util/texts.h).
 *
 * Every statement waits at most the timeout given to connect: Connector/C's read and
 * write timeouts end a call to a server that stopped answering, and the connection is
 * then declared broken (the caller reconnects and writes the batch again, which the
 * upsert makes harmless). The connection never reconnects by itself: a reconnect in
 * the middle of a transaction would carry on outside it. */
#include "drain/mysql.h"

#include <ctype.h>
#include <errmsg.h>
#include <errno.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drain/db.h"
#include "drain/sql.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/texts.h"

#define MIGRATION_LOCK "seckill_schema_migrations" /* GET_LOCK name of the migrations */
#define MIGRATION_LOCK_WAIT_S 60 /* how long a drain waits for another one's migrations */
#define COLUMNS 9 /* parameters per order (sql.h) */
#define T_COLUMNS 6 /* parameters per transition (sql.h) */

/* ---- the URL ----------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into dst (NUL-terminated); -1 when it does not fit, has a bad
 * escape or decodes to a NUL. */
static int decode(char *dst, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

int sk_db_mysql_parse_url(const char *url, sk_db_mysql_url_t *u, char *err, size_t err_size)
{
    memset(u, 0, sizeof(*u));
    u->port = 3306;
    const char *p;
    if (strncmp(url, "mysql://", 8) == 0)
        p = url + 8;
    else if (strncmp(url, "mariadb://", 10) == 0)
        p = url + 10;
    else {
        snprintf(err, err_size, "a MySQL URL starts with mysql:// or mariadb://");
        return -EINVAL;
    }
    /* A URL's '#' starts a fragment, which a MySQL URL has no use for: it is a
     * password's '#' that was not written %23, and what follows it would be lost. */
    if (strchr(p, '#')) {
        snprintf(err, err_size, "the MySQL URL holds a '#': write it %%23 (in a password, for one)");
        return -EINVAL;
    }
    size_t auth_len = strcspn(p, "/?");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (p[i] == '@')
            at = p + i; /* the last '@': a password with an unencoded '@' still parses */
    const char *hp = p;
    if (at) {
        size_t ui_len = (size_t)(at - p);
        const char *colon = memchr(p, ':', ui_len);
        size_t user_len = colon ? (size_t)(colon - p) : ui_len;
        if (decode(u->user, sizeof(u->user), p, user_len) < 0) {
            snprintf(err, err_size, "the MySQL URL's user name is too long or badly escaped");
            return -EINVAL;
        }
        if (colon) {
            u->has_password = true;
            if (decode(u->password, sizeof(u->password), colon + 1, ui_len - user_len - 1) < 0) {
                snprintf(err, err_size, "the MySQL URL's password is too long or badly escaped");
                return -EINVAL;
            }
        }
        hp = at + 1;
    }
    size_t hp_len = (size_t)(p + auth_len - hp);
    const char *host = hp, *port = NULL;
    size_t host_len = hp_len;
    if (hp_len && hp[0] == '[') {
        const char *close = memchr(hp, ']', hp_len);
        if (!close) {
            snprintf(err, err_size, "the MySQL URL's IPv6 host lacks its ']'");
            return -EINVAL;
        }
        host = hp + 1;
        host_len = (size_t)(close - host);
        size_t rest = hp_len - host_len - 2;
        if (rest) {
            if (close[1] != ':') {
                snprintf(err, err_size, "the MySQL URL has something after the IPv6 host that is not :PORT");
                return -EINVAL;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', hp_len);
        if (colon) {
            host_len = (size_t)(colon - hp);
            port = colon + 1;
        }
    }
    if (host_len >= sizeof(u->host)) {
        snprintf(err, err_size, "the MySQL URL's host is too long");
        return -EINVAL;
    }
    memcpy(u->host, host, host_len);
    u->host[host_len] = '\0';
    if (port) {
        int64_t v;
        if (sk_parse_i64(port, (size_t)(p + auth_len - port), 1, 65535, &v) < 0) {
            snprintf(err, err_size, "the MySQL URL's port must be a number from 1 to 65535");
            return -EINVAL;
        }
        u->port = (int)v;
    }
    p += auth_len;
    if (*p == '/') {
        p++;
        size_t db_len = strcspn(p, "?");
        if (decode(u->database, sizeof(u->database), p, db_len) < 0) {
            snprintf(err, err_size, "the MySQL URL's database name is too long or badly escaped");
            return -EINVAL;
        }
        p += db_len;
    }
    if (!u->database[0]) {
        snprintf(err, err_size, "the MySQL URL names no database (mysql://USER:PASSWORD@HOST:PORT/DATABASE)");
        return -EINVAL;
    }
    if (*p == '?') {
        p++;
        while (*p) {
            size_t n = strcspn(p, "&");
            const char *eq = memchr(p, '=', n);
            if (eq && eq - p == 6 && memcmp(p, "socket", 6) == 0) {
                if (decode(u->socket, sizeof(u->socket), eq + 1, n - 7) < 0 || !u->socket[0]) {
                    snprintf(err, err_size, "the MySQL URL's socket path is empty, too long or badly escaped");
                    return -EINVAL;
                }
            } else if (n) {
                size_t key_len = eq ? (size_t)(eq - p) : n;
                snprintf(err, err_size, "the MySQL URL takes one parameter, socket=PATH (got '%.*s')",
                         (int)SK_MIN(key_len, (size_t)32), p);
                return -EINVAL;
            }
            p += n;
            if (*p == '&')
                p++;
        }
    }
    return 0;
}

/* ---- connecting ------------------------------------------------------------------------- */

struct st_mysql *sk_db_mysql_open(const sk_db_mysql_url_t *u, int timeout_ms, const char *program, char *err,
                                  size_t err_size, unsigned int *errno_out)
{
    if (errno_out)
        *errno_out = 0;
    MYSQL *c = mysql_init(NULL);
    if (!c) {
        snprintf(err, err_size, "mysql: out of memory");
        return NULL;
    }
    unsigned int secs = (unsigned int)SK_MAX(1, (timeout_ms + 999) / 1000);
    /* A server that is there answers a connect at once, whatever the statements may
     * take later. */
    unsigned int connect_secs = SK_MIN(secs, 10u);
    /* Lock waits end (as an error the session survives) before the client gives up on
     * the answer. */
    unsigned int lock_wait = secs > 1 ? secs - 1 : 1;
    my_bool off = 0;
    unsigned int zero = 0;
    char init[256];
    snprintf(init, sizeof(init),
             "SET time_zone = '+00:00', sql_mode = 'TRADITIONAL,NO_ENGINE_SUBSTITUTION', "
             "innodb_lock_wait_timeout = %u, lock_wait_timeout = %u",
             lock_wait, lock_wait);
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &connect_secs);
    mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &secs);
    mysql_options(c, MYSQL_OPT_WRITE_TIMEOUT, &secs);
    mysql_options(c, MYSQL_OPT_RECONNECT, &off);
    mysql_options(c, MYSQL_OPT_LOCAL_INFILE, &zero);
    mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(c, MYSQL_INIT_COMMAND, init);
    mysql_optionsv(c, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", program);
    /* No host (or "localhost") is the Unix socket, as with the mysql client. */
    if (!mysql_real_connect(c, u->host[0] ? u->host : NULL, u->user[0] ? u->user : NULL,
                            u->has_password ? u->password : NULL, u->database, (unsigned int)u->port,
                            u->socket[0] ? u->socket : NULL, 0)) {
        snprintf(err, err_size, "mysql: cannot connect: %s", mysql_error(c));
        if (errno_out)
            *errno_out = mysql_errno(c);
        mysql_close(c);
        return NULL;
    }
    return c;
}

/* ---- migrations: the pure parts --------------------------------------------------------- */

/* Past a comment starting at i, or i when none starts there. */
static size_t skip_comment(const char *s, size_t n, size_t i)
{
    /* "-- " needs the blank (MySQL's rule: "--1" is minus minus one). */
    if (s[i] == '#' ||
        (s[i] == '-' && i + 1 < n && s[i + 1] == '-' && (i + 2 == n || isspace((unsigned char)s[i + 2])))) {
        while (i < n && s[i] != '\n')
            i++;
        return i;
    }
    if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
        for (i += 2; i < n; i++)
            if (s[i] == '*' && i + 1 < n && s[i + 1] == '/')
                return i + 2;
        return n;
    }
    return i;
}

const char *sk_db_mysql_next_statement(const char *text, size_t text_len, size_t *pos, size_t *len)
{
    size_t i = *pos;
    for (;;) { /* blanks, comments and empty statements before it */
        while (i < text_len && (isspace((unsigned char)text[i]) || text[i] == ';'))
            i++;
        if (i >= text_len) {
            *pos = text_len;
            return NULL;
        }
        size_t j = skip_comment(text, text_len, i);
        if (j == i)
            break;
        i = j;
    }
    size_t start = i;
    while (i < text_len && text[i] != ';') {
        char q = text[i];
        if (q == '\'' || q == '"' || q == '`') {
            /* Backslash escapes inside '' and "" (MySQL's default); a doubled quote is
             * a quote closed and opened again, which comes out the same. */
            for (i++; i < text_len && text[i] != q; i++)
                if (text[i] == '\\' && q != '`' && i + 1 < text_len)
                    i++;
            i++;
            continue;
        }
        size_t j = skip_comment(text, text_len, i);
        i = j == i ? i + 1 : j;
    }
    size_t end = SK_MIN(i, text_len);
    while (end > start && isspace((unsigned char)text[end - 1]))
        end--;
    *pos = i < text_len ? i + 1 : text_len;
    *len = end - start;
    return text + start;
}

bool sk_db_mysql_already_applied(unsigned int e)
{
    return e == ER_TABLE_EXISTS_ERROR || e == ER_DUP_FIELDNAME || e == ER_DUP_KEYNAME;
}

/* ---- the drain's database ----------------------------------------------------------------- */

typedef struct {
    sk_db_t base; /* first: an sk_db_t * is a my_t * */
    MYSQL *conn;
    sk_db_mysql_url_t url; /* for the migrations' own connection */
    bool broken;
    MYSQL_STMT *full; /* the insert of orders_max orders, prepared once */
    MYSQL_STMT *tail; /* the insert of tail_n orders, the last shorter one */
    size_t tail_n;
} my_t;

/* An error of the server that ends a statement leaves the session usable; any other
 * (the client library's: connection lost, timeout, ...) or the server's going away
 * does not. */
static bool session_survives(unsigned int e)
{
    return e >= 1000 && e < CR_MIN_ERROR && e != ER_SERVER_SHUTDOWN && e != ER_CONNECTION_KILLED &&
           e != ER_NEW_ABORTING_CONNECTION;
}

static void set_err(char *err, size_t err_size, const char *what, unsigned int e, const char *detail)
{
    if (e)
        snprintf(err, err_size, "mysql: %s: %s (%u)", what, detail, e);
    else
        snprintf(err, err_size, "mysql: %s", what);
}

/* Records the connection's last error; marks it broken unless the session survives. */
static void conn_fail(my_t *my, const char *what, char *err, size_t err_size)
{
    unsigned int e = mysql_errno(my->conn);
    set_err(err, err_size, what, e, mysql_error(my->conn));
    if (!session_survives(e))
        my->broken = true;
}

static void stmt_fail(my_t *my, MYSQL_STMT *st, const char *what, char *err, size_t err_size)
{
    unsigned int e = mysql_stmt_errno(st);
    set_err(err, err_size, what, e, mysql_stmt_error(st));
    if (!session_survives(e))
        my->broken = true;
}

/* Runs a statement without parameters and drops any result. */
static int query(my_t *my, const char *sql, char *err, size_t err_size)
{
    if (my->broken) {
        set_err(err, err_size, "not connected", 0, NULL);
        return -EIO;
    }
    if (mysql_real_query(my->conn, sql, strlen(sql)) != 0) {
        conn_fail(my, sql, err, err_size);
        return -EIO;
    }
    if (mysql_field_count(my->conn) > 0)
        mysql_free_result(mysql_store_result(my->conn));
    return 0;
}

static sk_db_t *my_connect(const char *url, int timeout_ms, char *err, size_t err_size)
{
    my_t *my = sk_xcalloc(1, sizeof(*my));
    if (sk_db_mysql_parse_url(url, &my->url, err, err_size) < 0) {
        free(my);
        return NULL;
    }
    my->conn = sk_db_mysql_open(&my->url, timeout_ms, "seckill-drain", err, err_size, NULL);
    if (!my->conn) {
        free(my);
        return NULL;
    }
    my->base.driver = &sk_db_mysql;
    return &my->base;
}

static void my_close(sk_db_t *db)
{
    my_t *my = (my_t *)db;
    if (my->full)
        mysql_stmt_close(my->full);
    if (my->tail)
        mysql_stmt_close(my->tail);
    mysql_close(my->conn);
    free(my);
}

static bool my_ok(const sk_db_t *db)
{
    return !((const my_t *)db)->broken;
}

static void bind_str(MYSQL_BIND *b, unsigned long *len, const char *s)
{
    *len = (unsigned long)strlen(s);
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = (void *)s; /* read only: parameters are sent, never written */
    b->buffer_length = *len;
    b->length = len;
}

static void bind_i64(MYSQL_BIND *b, const int64_t *v)
{
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = (void *)v;
}

/* Prepares sql on c, binds the parameters and runs it. Returns the statement (the
 * caller closes it) or NULL with err filled (stmt_fail's rules apply when my). */
static MYSQL_STMT *run_stmt(my_t *my, MYSQL *c, const char *sql, MYSQL_BIND *binds, char *err, size_t err_size)
{
    MYSQL_STMT *st = mysql_stmt_init(c);
    if (!st) {
        set_err(err, err_size, "out of memory", 0, NULL);
        return NULL;
    }
    if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0 || (binds && mysql_stmt_bind_param(st, binds) != 0) ||
        mysql_stmt_execute(st) != 0) {
        if (my)
            stmt_fail(my, st, "statement failed", err, err_size);
        else
            set_err(err, err_size, "statement failed", mysql_stmt_errno(st), mysql_stmt_error(st));
        mysql_stmt_close(st);
        return NULL;
    }
    return st;
}

static int my_migrate(sk_db_t *db, char *err, size_t err_size)
{
    my_t *my = (my_t *)db;
    const sk_db_sql_t *q = &sk_db_sql_mysql;
    size_t prefix = strlen(q->migrations);
    /* A connection of its own, with a deadline long enough for an ALTER TABLE of a big
     * table; the drain's stays short. */
    MYSQL *c = sk_db_mysql_open(&my->url, SK_DB_MIGRATE_TIMEOUT_MS, "seckill-drain-migrate", err, err_size, NULL);
    if (!c)
        return -EIO;
    int applied = 0;
    const char *name = NULL;
    char sql[128];
    /* A session's lock, released when the session ends, also by a crash: drains that
     * start together apply each migration once. */
    snprintf(sql, sizeof(sql), "SELECT GET_LOCK('%s', %d)", MIGRATION_LOCK, MIGRATION_LOCK_WAIT_S);
    if (mysql_real_query(c, sql, strlen(sql)) != 0)
        goto fail;
    MYSQL_RES *res = mysql_store_result(c);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    bool locked = row && row[0] && strcmp(row[0], "1") == 0;
    mysql_free_result(res);
    if (!locked) {
        if (mysql_errno(c))
            goto fail;
        snprintf(err, err_size, "mysql: another drain has held the migration lock for %d s", MIGRATION_LOCK_WAIT_S);
        goto out;
    }
    if (mysql_real_query(c, q->migrations_table, strlen(q->migrations_table)) != 0)
        goto fail;
    for (const sk_text_t *t = sk_texts; t->name; t++) {
        if (strncmp(t->name, q->migrations, prefix) != 0)
            continue;
        name = t->name + prefix;
        MYSQL_BIND b[1] = {{0}};
        unsigned long len;
        bind_str(&b[0], &len, name);
        MYSQL_STMT *st = run_stmt(NULL, c, q->migration_applied, b, err, err_size);
        if (!st)
            goto out;
        if (mysql_stmt_store_result(st) != 0) {
            set_err(err, err_size, "migration failed", mysql_stmt_errno(st), mysql_stmt_error(st));
            mysql_stmt_close(st);
            goto out;
        }
        bool done = mysql_stmt_num_rows(st) > 0;
        mysql_stmt_close(st);
        if (done)
            continue;
        size_t pos = 0, n;
        const char *s;
        while ((s = sk_db_mysql_next_statement(t->text, t->len, &pos, &n)) != NULL) {
            if (mysql_real_query(c, s, n) != 0) {
                unsigned int e = mysql_errno(c);
                if (!sk_db_mysql_already_applied(e))
                    goto fail;
                /* Applied by a run that stopped before recording the migration. */
                sk_info("drain: mysql: migration %s: %s (%u); taken as applied", name, mysql_error(c), e);
                continue;
            }
            if (mysql_field_count(c) > 0)
                mysql_free_result(mysql_store_result(c));
        }
        if (!(st = run_stmt(NULL, c, q->migration_record, b, err, err_size)))
            goto out;
        mysql_stmt_close(st);
        applied++;
    }
    mysql_close(c);
    return applied;
fail:
    set_err(err, err_size, "migration failed", mysql_errno(c), mysql_error(c));
out:
    if (name) {
        size_t l = strlen(err);
        snprintf(err + l, err_size - l, " (migration %s)", name);
    }
    mysql_close(c);
    return -EIO;
}

static int my_put_sale(sk_db_t *db, const sk_db_sale_t *s, char *err, size_t err_size)
{
    my_t *my = (my_t *)db;
    if (my->broken) {
        set_err(err, err_size, "not connected", 0, NULL);
        return -EIO;
    }
    MYSQL_BIND b[7] = {{0}};
    unsigned long lens[2];
    bind_str(&b[0], &lens[0], s->id);
    bind_str(&b[1], &lens[1], s->name);
    bind_i64(&b[2], &s->stock);
    bind_i64(&b[3], &s->starts_at);
    bind_i64(&b[4], &s->ends_at);
    bind_i64(&b[5], &s->per_user_limit);
    bind_i64(&b[6], &s->created_at);
    MYSQL_STMT *st = run_stmt(my, my->conn, sk_db_sql_mysql.insert_sale, b, err, err_size);
    if (!st)
        return -EIO;
    mysql_stmt_close(st);
    return 0;
}

/* The prepared insert of n orders: the one of orders_max is kept for the connection's
 * life, and the last shorter one until another length is needed. */
static MYSQL_STMT *orders_stmt(my_t *my, size_t n, char *err, size_t err_size)
{
    const sk_db_sql_t *q = &sk_db_sql_mysql;
    bool full = n == q->orders_max;
    if (full && my->full)
        return my->full;
    if (!full && my->tail && my->tail_n == n)
        return my->tail;
    MYSQL_STMT *st = mysql_stmt_init(my->conn);
    if (!st) {
        set_err(err, err_size, "out of memory", 0, NULL);
        return NULL;
    }
    sk_buf_t sql = {0};
    q->insert_orders(&sql, n);
    int rc = mysql_stmt_prepare(st, sql.data, sql.len);
    sk_buf_free(&sql);
    if (rc != 0) {
        stmt_fail(my, st, "cannot prepare the insert of orders", err, err_size);
        mysql_stmt_close(st);
        return NULL;
    }
    if (full) {
        my->full = st;
    } else {
        if (my->tail)
            mysql_stmt_close(my->tail);
        my->tail = st;
        my->tail_n = n;
    }
    return st;
}

/* Rows an insert added, those present not counted. Without CLIENT_FOUND_ROWS the server
 * counts 1 affected row per row inserted, 2 per row present and changed by ON DUPLICATE
 * KEY UPDATE and 0 per row present and left as it was; a multi-row insert also says
 * "Records: R  Duplicates: D  Warnings: W", where D counts the rows changed. */
static int64_t rows_inserted(MYSQL *c, MYSQL_STMT *st, size_t n)
{
    my_ulonglong affected = mysql_stmt_affected_rows(st);
    if (affected == (my_ulonglong)-1)
        return 0;
    const char *info = mysql_info(c);
    unsigned long long records, changed = 0;
    if (n == 1)
        changed = affected == 2;
    else if (!info || sscanf(info, "Records: %llu Duplicates: %llu", &records, &changed) != 2)
        changed = 0;
    return affected >= 2 * changed ? (int64_t)(affected - 2 * changed) : 0;
}

/* The orders of a batch, in the caller's transaction: statements of orders_max orders.
 * Returns the rows inserted or -EIO. */
static int64_t my_write_orders(my_t *my, const sk_db_order_t *o, size_t n, char *err, size_t err_size)
{
    size_t chunk = sk_db_sql_mysql.orders_max;
    MYSQL_BIND *binds = sk_xcalloc(COLUMNS * SK_MIN(n, chunk), sizeof(*binds));
    unsigned long *lens = sk_xcalloc(COLUMNS * SK_MIN(n, chunk), sizeof(*lens));
    int64_t inserted = 0;
    for (size_t off = 0; off < n; off += chunk) {
        size_t m = SK_MIN(chunk, n - off);
        MYSQL_STMT *st = orders_stmt(my, m, err, err_size);
        if (!st) {
            inserted = -EIO;
            break;
        }
        memset(binds, 0, COLUMNS * m * sizeof(*binds));
        for (size_t i = 0; i < m; i++) {
            const sk_db_order_t *r = &o[off + i];
            MYSQL_BIND *b = &binds[COLUMNS * i];
            unsigned long *l = &lens[COLUMNS * i];
            bind_str(&b[0], &l[0], r->order_id);
            bind_str(&b[1], &l[1], r->sale_id);
            bind_i64(&b[2], &r->seq);
            bind_str(&b[3], &l[3], r->user_id);
            bind_str(&b[4], &l[4], r->request_id);
            bind_i64(&b[5], &r->created_at);
            bind_i64(&b[6], &r->quantity);
            bind_str(&b[7], &l[7], r->state);
            bind_i64(&b[8], &r->pay_by);
        }
        if (mysql_stmt_bind_param(st, binds) != 0 || mysql_stmt_execute(st) != 0) {
            stmt_fail(my, st, "cannot insert the orders", err, err_size);
            inserted = -EIO;
            break;
        }
        inserted += rows_inserted(my->conn, st, m);
    }
    free(binds);
    free(lens);
    return inserted;
}

/* Which of t[0..n) have their order in the database (the rare case of an UPDATE that
 * matched fewer: with several drains, an order may be in another one's batch). */
static int my_find_orders(my_t *my, sk_db_transition_t *t, size_t n, char *err, size_t err_size)
{
    for (size_t i = 0; i < n; i++) {
        MYSQL_BIND b[2] = {{0}};
        unsigned long len;
        bind_str(&b[0], &len, t[i].sale_id);
        bind_i64(&b[1], &t[i].seq);
        MYSQL_STMT *st = run_stmt(my, my->conn, sk_db_sql_mysql.order_exists, b, err, err_size);
        if (!st)
            return -EIO;
        if (mysql_stmt_store_result(st) != 0) {
            stmt_fail(my, st, "cannot look up an order", err, err_size);
            mysql_stmt_close(st);
            return -EIO;
        }
        t[i].found = mysql_stmt_num_rows(st) > 0;
        mysql_stmt_close(st);
    }
    return 0;
}

/* The merged transitions, statements of transitions_max; fills in which orders were found. */
static int my_write_transitions(my_t *my, sk_db_transition_t *t, size_t n, char *err, size_t err_size)
{
    size_t chunk = sk_db_sql_mysql.transitions_max;
    MYSQL_BIND *binds = sk_xcalloc(T_COLUMNS * SK_MIN(n, chunk), sizeof(*binds));
    unsigned long *lens = sk_xcalloc(T_COLUMNS * SK_MIN(n, chunk), sizeof(*lens));
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += chunk) {
        size_t m = SK_MIN(chunk, n - off);
        sk_buf_t sql = {0};
        sk_db_sql_mysql.update_orders(&sql, m);
        MYSQL_STMT *st = mysql_stmt_init(my->conn);
        if (!st) {
            sk_buf_free(&sql);
            set_err(err, err_size, "out of memory", 0, NULL);
            rc = -EIO;
            break;
        }
        memset(binds, 0, T_COLUMNS * m * sizeof(*binds));
        for (size_t i = 0; i < m; i++) {
            sk_db_transition_t *x = &t[off + i];
            MYSQL_BIND *b = &binds[T_COLUMNS * i];
            unsigned long *l = &lens[T_COLUMNS * i];
            bind_str(&b[0], &l[0], x->sale_id);
            bind_i64(&b[1], &x->seq);
            bind_str(&b[2], &l[2], x->state);
            bind_i64(&b[3], &x->paid_at);
            bind_str(&b[4], &l[4], x->payment_id);
            bind_i64(&b[5], &x->closed_at);
            x->found = true;
        }
        if (mysql_stmt_prepare(st, sql.data, sql.len) != 0 || mysql_stmt_bind_param(st, binds) != 0 ||
            mysql_stmt_execute(st) != 0) {
            stmt_fail(my, st, "cannot update the orders", err, err_size);
            rc = -EIO;
        } else {
            /* "Rows matched: M  Changed: C  Warnings: W": M orders were there. */
            const char *info = mysql_info(my->conn);
            unsigned long long matched = 0;
            if (!info || sscanf(info, "Rows matched: %llu", &matched) != 1 || matched < m)
                rc = my_find_orders(my, t + off, m, err, err_size);
        }
        mysql_stmt_close(st);
        sk_buf_free(&sql);
    }
    free(binds);
    free(lens);
    return rc;
}

static int my_write_events(my_t *my, const sk_db_event_t *e, size_t n, char *err, size_t err_size)
{
    /* Controls are rare: one statement each. */
    for (size_t i = 0; i < n; i++) {
        MYSQL_BIND b[9] = {{0}};
        unsigned long lens[9];
        bind_str(&b[0], &lens[0], e[i].sale_id);
        bind_i64(&b[1], &e[i].seq);
        bind_str(&b[2], &lens[2], e[i].kind);
        bind_str(&b[3], &lens[3], e[i].actor);
        bind_str(&b[4], &lens[4], e[i].request_id);
        bind_i64(&b[5], &e[i].decided_at);
        bind_str(&b[6], &lens[6], e[i].params);
        bind_str(&b[7], &lens[7], e[i].before);
        bind_str(&b[8], &lens[8], e[i].after);
        MYSQL_STMT *st = run_stmt(my, my->conn, sk_db_sql_mysql.insert_event, b, err, err_size);
        if (!st)
            return -EIO;
        mysql_stmt_close(st);
    }
    return 0;
}

static int64_t my_put_batch(sk_db_t *db, sk_db_batch_t *b, char *err, size_t err_size)
{
    my_t *my = (my_t *)db;
    if (b->n_orders + b->n_transitions + b->n_events == 0)
        return 0;
    /* The whole batch or nothing: its orders, transitions and trail rows in one
     * transaction. */
    if (query(my, "START TRANSACTION", err, err_size) < 0)
        return -EIO;
    int64_t inserted = b->n_orders ? my_write_orders(my, b->orders, b->n_orders, err, err_size) : 0;
    if (inserted < 0 ||
        (b->n_transitions && my_write_transitions(my, b->transitions, b->n_transitions, err, err_size) < 0) ||
        my_write_events(my, b->events, b->n_events, err, err_size) < 0) {
        if (!my->broken) {
            char e2[8];
            if (query(my, "ROLLBACK", e2, sizeof(e2)) < 0)
                my->broken = true;
        }
        return -EIO;
    }
    if (query(my, "COMMIT", err, err_size) < 0) {
        /* Committed or not, nobody can say: write the batch again on a new connection. */
        my->broken = true;
        return -EIO;
    }
    return inserted;
}

static int my_count(sk_db_t *db, const char *sale_id, sk_db_counts_t *out, char *err, size_t err_size)
{
    my_t *my = (my_t *)db;
    if (my->broken) {
        set_err(err, err_size, "not connected", 0, NULL);
        return -EIO;
    }
    /* Autocommit: the count is a statement of its own, never a snapshot kept open. */
    MYSQL_BIND b[1] = {{0}};
    unsigned long len;
    bind_str(&b[0], &len, sale_id);
    MYSQL_STMT *st = run_stmt(my, my->conn, sk_db_sql_mysql.count_orders, b, err, err_size);
    if (!st)
        return -EIO;
    long long v[3] = {-1, -1, -1};
    MYSQL_BIND res[3] = {{0}};
    for (int k = 0; k < 3; k++) {
        res[k].buffer_type = MYSQL_TYPE_LONGLONG;
        res[k].buffer = &v[k];
    }
    int rc = -EIO;
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_fetch(st) != 0)
        stmt_fail(my, st, "count of orders", err, err_size);
    else if (v[0] < 0 || v[1] < 0 || v[2] < 0)
        set_err(err, err_size, "count of orders: unexpected answer", 0, NULL);
    else {
        *out = (sk_db_counts_t){.orders = v[0], .sold = v[1], .held = v[2]};
        rc = 0;
    }
    mysql_stmt_close(st);
    return rc;
}

const sk_db_driver_t sk_db_mysql = {
    .name = "mysql",
    .title = "MySQL/MariaDB",
    .connect = my_connect,
    .close = my_close,
    .migrate = my_migrate,
    .put_sale = my_put_sale,
    .put_batch = my_put_batch,
    .ok = my_ok,
    .count = my_count,
};
