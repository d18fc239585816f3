/* The embedded store: SQLite in WAL mode with synchronous=FULL, one transaction per
 * ledger batch, prepared statements. The ledger keeps every decision in memory; this
 * journal exists so that a restart (or a kill -9) rebuilds exactly the same ledger.
 *
 * A batch's orders of one sale have consecutive seqs, so they are stored as one row:
 * (sale_id, first_seq, orders as a JSON array of [user_id, request_id]). One insert per
 * sale per batch instead of one per order is what lets a single thread journal more
 * than a million orders a second; the `orders` view gives the row-per-order shape back
 * to anyone who reads the file (the auditor, sqlite3 at a prompt). */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backend/journal.h"
#include "util/buf.h"
#include "util/common.h"

struct sk_journal {
    sqlite3 *db;
    sqlite3_stmt *put_order;
    sqlite3_stmt *put_sale;
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
    sqlite3_stmt *rollback;
    sqlite3_stmt *last_seq;
    sk_buf_t json; /* reused for every group's JSON */
    bool (*fault)(void *arg, sk_journal_fault_t at); /* test seam */
    void *fault_arg;

    /* Checkpoints run on a thread of their own with their own connection, so the
     * ledger's commits never pay for copying the WAL back into the database. */
    sqlite3 *ckpt_db;
    pthread_t ckpt_thread;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    bool ckpt_running, ckpt_stop;
    unsigned ckpt_pending; /* commits since the last checkpoint */
};

#define SK_CKPT_EVERY 64 /* commits between checkpoints (also every 500 ms when idle) */

static void *checkpointer(void *arg)
{
    sk_journal_t *j = arg;
    pthread_mutex_lock(&j->ckpt_mu);
    while (!j->ckpt_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 500 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (j->ckpt_pending < SK_CKPT_EVERY)
            pthread_cond_timedwait(&j->ckpt_cv, &j->ckpt_mu, &ts);
        if (j->ckpt_stop || j->ckpt_pending == 0)
            continue;
        j->ckpt_pending = 0;
        pthread_mutex_unlock(&j->ckpt_mu);
        /* PASSIVE never blocks the writer; frames it cannot copy yet wait for the next. */
        int rc = sqlite3_wal_checkpoint_v2(j->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            sk_warn("journal: checkpoint failed: %s", sqlite3_errmsg(j->ckpt_db));
        pthread_mutex_lock(&j->ckpt_mu);
    }
    pthread_mutex_unlock(&j->ckpt_mu);
    return NULL;
}

static int start_checkpointer(sk_journal_t *j, const char *path)
{
    if (sqlite3_open_v2(path, &j->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        return -1;
    sqlite3_busy_timeout(j->ckpt_db, 1000);
    if (sqlite3_exec(j->ckpt_db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    pthread_mutex_init(&j->ckpt_mu, NULL);
    pthread_cond_init(&j->ckpt_cv, NULL);
    if (pthread_create(&j->ckpt_thread, NULL, checkpointer, j) != 0)
        return -1;
    j->ckpt_running = true;
    return 0;
}

static void note_commit(sk_journal_t *j)
{
    if (!j->ckpt_running)
        return;
    pthread_mutex_lock(&j->ckpt_mu);
    if (++j->ckpt_pending == SK_CKPT_EVERY)
        pthread_cond_signal(&j->ckpt_cv);
    pthread_mutex_unlock(&j->ckpt_mu);
}

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA cache_size=-65536;" /* 64 MiB: keep the b-tree's right edge and inner pages hot */
    "PRAGMA wal_autocheckpoint=0;" /* the checkpointer thread does it */
    "CREATE TABLE IF NOT EXISTS sales("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL, starts_at INTEGER NOT NULL,"
    "  ends_at INTEGER NOT NULL, per_user_limit INTEGER NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS order_batches("
    "  id INTEGER PRIMARY KEY, sale_id TEXT NOT NULL, first_seq INTEGER NOT NULL, n INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, orders TEXT NOT NULL, UNIQUE (sale_id, first_seq));"
    "CREATE VIEW IF NOT EXISTS orders AS"
    "  SELECT b.sale_id AS sale_id, b.first_seq + j.key AS seq, j.value ->> 0 AS user_id,"
    "         j.value ->> 1 AS request_id, b.created_at AS created_at,"
    "         b.sale_id || '-' || printf('%010d', b.first_seq + j.key) AS order_id"
    "  FROM order_batches b, json_each(b.orders) j;";

sk_journal_t *sk_journal_open(const char *dir, char *err, size_t err_size)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create data directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/seckill.db", dir);
    sk_journal_t *j = sk_xcalloc(1, sizeof(*j));
    int rc = sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    char *msg = NULL;
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(j->db, 5000);
        rc = sqlite3_exec(j->db, schema, NULL, NULL, &msg);
    }
    if (rc == SQLITE_OK) {
        /* journal_mode=WAL silently stays "delete" on a read-only directory: refuse that. */
        sqlite3_stmt *st;
        rc = sqlite3_prepare_v2(j->db, "PRAGMA journal_mode", -1, &st, NULL);
        if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
            strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
            rc = SQLITE_READONLY;
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(j->db,
                                "INSERT INTO order_batches(sale_id, first_seq, n, created_at, orders)"
                                " VALUES(?1, ?2, ?3, ?4, ?5)",
                                -1, SQLITE_PREPARE_PERSISTENT, &j->put_order, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(j->db,
                                "INSERT INTO sales(id, name, stock, starts_at, ends_at, per_user_limit, created_at)"
                                " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                -1, SQLITE_PREPARE_PERSISTENT, &j->put_sale, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(j->db, "BEGIN IMMEDIATE", -1, SQLITE_PREPARE_PERSISTENT, &j->begin, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(j->db, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &j->commit, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(j->db, "ROLLBACK", -1, SQLITE_PREPARE_PERSISTENT, &j->rollback, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(j->db,
                                "SELECT first_seq + n - 1 FROM order_batches WHERE sale_id = ?1"
                                " ORDER BY first_seq DESC LIMIT 1",
                                -1, SQLITE_PREPARE_PERSISTENT, &j->last_seq, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "cannot open %s: %s", path, msg ? msg : sqlite3_errmsg(j->db));
        sqlite3_free(msg);
        sk_journal_close(j);
        return NULL;
    }
    if (start_checkpointer(j, path) < 0) {
        snprintf(err, err_size, "cannot open %s for checkpoints: %s", path,
                 j->ckpt_db ? sqlite3_errmsg(j->ckpt_db) : "out of resources");
        sk_journal_close(j);
        return NULL;
    }
    return j;
}

void sk_journal_close(sk_journal_t *j)
{
    if (!j)
        return;
    if (j->ckpt_running) {
        pthread_mutex_lock(&j->ckpt_mu);
        j->ckpt_stop = true;
        pthread_cond_signal(&j->ckpt_cv);
        pthread_mutex_unlock(&j->ckpt_mu);
        pthread_join(j->ckpt_thread, NULL);
        pthread_mutex_destroy(&j->ckpt_mu);
        pthread_cond_destroy(&j->ckpt_cv);
    }
    sqlite3_close(j->ckpt_db);
    sqlite3_finalize(j->put_order);
    sqlite3_finalize(j->put_sale);
    sqlite3_finalize(j->begin);
    sqlite3_finalize(j->commit);
    sqlite3_finalize(j->rollback);
    sqlite3_finalize(j->last_seq);
    sqlite3_close(j->db);
    sk_buf_free(&j->json);
    free(j);
}

static const char *text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

int sk_journal_load(sk_journal_t *j, int (*on_sale)(void *arg, const sk_journal_sale_t *s),
                    int (*on_order)(void *arg, const sk_journal_order_t *o), void *arg)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(j->db,
                                "SELECT id, name, stock, starts_at, ends_at, per_user_limit, created_at"
                                " FROM sales ORDER BY created_at, rowid",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return -EIO;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sk_journal_sale_t s = {text(st, 0),
                               text(st, 1),
                               sqlite3_column_int64(st, 2),
                               sqlite3_column_int64(st, 3),
                               sqlite3_column_int64(st, 4),
                               sqlite3_column_int64(st, 5),
                               sqlite3_column_int64(st, 6)};
        int r = on_sale(arg, &s);
        if (r) {
            sqlite3_finalize(st);
            return r;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -EIO;
    /* Batches in commit order, each batch's orders in array order: per sale, that is
     * seq order (the ledger checks it while rebuilding). */
    rc = sqlite3_prepare_v2(j->db,
                            "SELECT b.sale_id, b.first_seq + j.key, j.value ->> 0, j.value ->> 1, b.created_at"
                            " FROM order_batches b, json_each(b.orders) j ORDER BY b.id",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return -EIO;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 seq = sqlite3_column_int64(st, 1);
        sk_journal_order_t o = {text(st, 0), seq > 0 ? (uint64_t)seq : 0, text(st, 2), text(st, 3),
                                sqlite3_column_int64(st, 4)};
        int r = on_order(arg, &o);
        if (r) {
            sqlite3_finalize(st);
            return r;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static bool injected(sk_journal_t *j, sk_journal_fault_t at)
{
    return j->fault && j->fault(j->fault_arg, at);
}

static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

static int fail(sk_journal_t *j, const char *what)
{
    sk_error("journal: %s: %s", what, sqlite3_errmsg(j->db));
    if (!sqlite3_get_autocommit(j->db))
        step_reset(j->rollback);
    return -EIO;
}

int sk_journal_put_sale(sk_journal_t *j, const sk_journal_sale_t *s)
{
    sqlite3_stmt *st = j->put_sale;
    sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, s->stock);
    sqlite3_bind_int64(st, 4, s->starts_at);
    sqlite3_bind_int64(st, 5, s->ends_at);
    sqlite3_bind_int64(st, 6, s->per_user_limit);
    sqlite3_bind_int64(st, 7, s->created_at);
    int rc = step_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_CONSTRAINT)
        return -EEXIST;
    if (rc != SQLITE_DONE)
        return fail(j, "storing a sale");
    return 0;
}

int sk_journal_put_orders(sk_journal_t *j, const sk_journal_order_t *orders, size_t n)
{
    if (n == 0)
        return 0;
    if (step_reset(j->begin) != SQLITE_DONE)
        return fail(j, "begin");
    sqlite3_stmt *st = j->put_order;
    /* Group by sale: the batch interleaves sales, but each sale's orders in it carry
     * consecutive seqs. Mark each order once as it joins its group's row. */
    size_t done = 0;
    uint8_t small[256];
    uint8_t *taken = n <= sizeof(small) ? small : sk_xcalloc(n, 1);
    if (taken == small)
        memset(small, 0, n);
    int rc = 0;
    for (size_t i = 0; i < n && done < n && rc == 0; i++) {
        if (taken[i])
            continue;
        const char *sale = orders[i].sale_id;
        uint64_t next = orders[i].seq;
        sk_buf_t *b = &j->json;
        b->len = 0;
        sk_buf_putc(b, '[');
        size_t count = 0;
        for (size_t k = i; k < n; k++) {
            if (taken[k] || (orders[k].sale_id != sale && strcmp(orders[k].sale_id, sale) != 0))
                continue;
            if (orders[k].seq != next) {
                rc = -EINVAL; /* the ledger broke its own sequence: refuse to store it */
                break;
            }
            taken[k] = 1;
            done++;
            next++;
            sk_buf_puts(b, count++ ? ",[" : "[");
            sk_buf_put_json_str(b, orders[k].user_id, strlen(orders[k].user_id));
            sk_buf_putc(b, ',');
            sk_buf_put_json_str(b, orders[k].request_id, strlen(orders[k].request_id));
            sk_buf_putc(b, ']');
        }
        sk_buf_putc(b, ']');
        if (rc)
            break;
        sqlite3_bind_text(st, 1, sale, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)orders[i].seq);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)count);
        sqlite3_bind_int64(st, 4, orders[i].created_at);
        sqlite3_bind_text(st, 5, b->data, (int)b->len, SQLITE_STATIC);
        if (step_reset(st) != SQLITE_DONE)
            rc = -EIO;
    }
    if (taken != small)
        free(taken);
    if (rc == -EINVAL) {
        sk_error("journal: a sale's orders in one batch are not consecutive; batch refused");
        step_reset(j->rollback);
        return -EIO;
    }
    if (rc != 0)
        return fail(j, "storing orders");
    if (injected(j, SK_JOURNAL_FAULT_COMMIT)) {
        sk_error("journal: commit: fault injected");
        step_reset(j->rollback);
        return -EIO;
    }
    if (step_reset(j->commit) != SQLITE_DONE)
        return fail(j, "commit");
    note_commit(j);
    if (injected(j, SK_JOURNAL_FAULT_AFTER_COMMIT)) {
        sk_error("journal: commit: fault injected after the commit");
        return -EIO;
    }
    return 0;
}

int sk_journal_last_seq(sk_journal_t *j, const char *sale_id, uint64_t *seq)
{
    if (injected(j, SK_JOURNAL_FAULT_LAST_SEQ))
        return -EIO;
    sqlite3_stmt *st = j->last_seq;
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_int64 v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        sk_error("journal: reading the last order of sale '%s': %s", sale_id, sqlite3_errmsg(j->db));
        return -EIO;
    }
    *seq = v > 0 ? (uint64_t)v : 0;
    return 0;
}

void sk_journal_set_fault(sk_journal_t *j, bool (*fn)(void *arg, sk_journal_fault_t at), void *arg)
{
    j->fault = fn;
    j->fault_arg = arg;
}
