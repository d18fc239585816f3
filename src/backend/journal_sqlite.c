/* The embedded store: SQLite in WAL mode with synchronous=FULL, one transaction per
 * ledger batch, prepared statements. The ledger keeps every decision in memory; this
 * journal exists so that a restart (or a kill -9) rebuilds exactly the same ledger.
 *
 * A batch's orders of one sale have consecutive seqs, so they are stored as one row:
 * (sale_id, first_seq, orders as a JSON array of [user_id, request_id]); its
 * transitions of one kind and sale are one row too. One insert per sale per batch
 * instead of one per order is what lets a single thread journal more than a million
 * orders (or expirations) a second; the `orders` view gives the row-per-order shape,
 * with each order's current state, back to anyone who reads the file (the auditor,
 * sqlite3 at a prompt). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/journal.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/hash.h"

struct sk_journal {
    sqlite3 *db;
    sqlite3_stmt *put_order;
    sqlite3_stmt *put_event;
    sqlite3_stmt *put_control;
    sqlite3_stmt *put_sale;
    sqlite3_stmt *put_queue;
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
    sqlite3_stmt *rollback;
    sqlite3_stmt *last_seq;
    sqlite3_stmt *has_lsn;
    uint64_t lsn; /* the last lsn handed out (stored or not: never handed out twice) */
    sk_buf_t json; /* reused for every group's JSON */
    /* Grouping of a batch's rows, reused: see group_rows. */
    uint32_t *perm, *gid;
    size_t perm_cap;
    const char **gsale;
    uint32_t *gcount;
    size_t g_cap;
    /* Each sale's last stored seq, so that a batch that does not continue a sale's
     * numbering is refused (see sale_last): sales in a dense array, found through an
     * open-addressing index of their positions + 1. upd: the batch's new last seqs, set
     * once its commit returned. */
    struct last_seq {
        char *id;
        uint64_t last;
        bool known; /* false: read it from the file when next needed */
    } * sales;
    size_t n_sales, sales_cap;
    uint32_t *sale_index;
    size_t index_cap; /* a power of two, at least twice n_sales; 0 before the first */
    struct seq_update {
        uint32_t sale;
        uint64_t last;
    } * upd;
    size_t n_upd, upd_cap;
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
    /* What the checkpointer's last checkpoint saw (under ckpt_mu): how many of them ran,
     * the WAL's frames and how many of those are in the database file. */
    unsigned ckpt_runs;
    int ckpt_log, ckpt_done;
    /* The ledger's side: the WAL's frames after its last commit (from the WAL hook) and
     * the checkpointer's run it last caught up after. */
    int wal_frames;
    unsigned caught_up_run;
    uint64_t commits; /* successful commits (the ledger's thread) */
    int wal_fd; /* the WAL, opened by sk_journal_defer_sync for sk_journal_sync; -1 */
};

#define SK_CKPT_EVERY 64 /* commits between checkpoints (also every 500 ms when idle) */
/* The most frames the ledger copies itself to let the WAL start over (0.5 MiB of 2 KiB
 * pages), unless the WAL has grown past SK_WAL_MAX_FRAMES (32 MiB of 2 KiB pages, 64 MiB
 * of 4 KiB): a checkpointer that falls behind for good (a slow disk) would otherwise leave
 * it growing. */
#define SK_CATCH_UP_MAX 256
#define SK_WAL_MAX_FRAMES 16384

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
        int log = -1, done = -1;
        int rc = sqlite3_wal_checkpoint_v2(j->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            sk_warn("journal: checkpoint failed: %s", sqlite3_errmsg(j->ckpt_db));
        pthread_mutex_lock(&j->ckpt_mu);
        if (rc == SQLITE_OK) {
            j->ckpt_runs++;
            j->ckpt_log = log;
            j->ckpt_done = done;
        }
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

/* The WAL must start over from its first frame now and then, or it grows for as long as
 * commits keep coming: SQLite starts it over only when a write transaction begins with
 * every frame already copied into the database file, and the checkpointer, running
 * beside the commits, is always a few commits behind when it ends. Appending to an ever
 * longer file also makes each commit's fdatasync write the file's new size and blocks
 * through the file system's journal; overwriting the frames of a file that no longer
 * grows does not (measured: a quarter more confirmed purchases per second on one core).
 * So after each checkpoint of the checkpointer the ledger copies the few frames it left
 * (at most SK_CATCH_UP_MAX) itself, between two batches, and the next batch's commit
 * writes the WAL from its start. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    ((sk_journal_t *)arg)->wal_frames = frames;
    return SQLITE_OK;
}

static void note_commit(sk_journal_t *j)
{
    j->commits++;
    if (!j->ckpt_running)
        return;
    bool catch_up = false;
    pthread_mutex_lock(&j->ckpt_mu);
    if (++j->ckpt_pending == SK_CKPT_EVERY)
        pthread_cond_signal(&j->ckpt_cv);
    /* A checkpoint ended since the last catch-up, in this WAL (not one before it
     * started over), and left little to copy (or the WAL is too long already). */
    if (j->ckpt_runs != j->caught_up_run && j->ckpt_log <= j->wal_frames &&
        (j->wal_frames - j->ckpt_done <= SK_CATCH_UP_MAX || j->wal_frames >= SK_WAL_MAX_FRAMES)) {
        j->caught_up_run = j->ckpt_runs;
        catch_up = true;
    }
    pthread_mutex_unlock(&j->ckpt_mu);
    if (!catch_up)
        return;
    /* The copy is synced (the WAL before it is read, the database file after), whatever
     * the commits do: the WAL starting over overwrites these frames. synchronous=FULL,
     * and NORMAL once the sync is deferred, both sync a checkpoint. BUSY: the
     * checkpointer is at it again; the next of its runs gives another chance. */
    int rc = sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        sk_warn("journal: checkpoint failed: %s", sqlite3_errmsg(j->db));
}

int sk_journal_defer_sync(sk_journal_t *j)
{
    if (j->wal_fd >= 0)
        return 0;
    const char *wal = sqlite3_filename_wal(sqlite3_db_filename(j->db, "main"));
    /* The WAL exists since the open (WAL mode, read at least once). Its name in the
     * directory is made durable here: SQLite would have done it at its first sync. */
    int fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s", wal);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0 || fdatasync(fd) < 0) {
        int err = errno;
        if (dfd >= 0)
            close(dfd);
        close(fd);
        return -err;
    }
    close(dfd);
    /* NORMAL, not OFF: a commit does not sync the WAL, but a checkpoint still does (the
     * WAL before it, the database file after), and so does the WAL's new header when
     * the WAL starts over, before any frame overwrites the old ones. Without that sync
     * (OFF) the new frames may reach the disk before the header that invalidates the
     * old ones: a power cut then leaves an old header with a prefix of old, already
     * copied frames that still check out, and recovery writes those stale pages over
     * newer ones (SQLite's ticket ff5be73dee): orders confirmed long before are lost. */
    if (sqlite3_exec(j->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
        close(fd);
        return -EIO;
    }
    j->wal_fd = fd;
    return 0;
}

static bool injected(sk_journal_t *j, sk_journal_fault_t at);

int sk_journal_sync(sk_journal_t *j)
{
    if (injected(j, SK_JOURNAL_FAULT_SYNC))
        return -EIO;
    return fdatasync(j->wal_fd) < 0 ? -errno : 0;
}

uint64_t sk_journal_commits(const sk_journal_t *j)
{
    return j->commits;
}

/* The page cache: a batch dirties the right edges of the tables it appends to (a few
 * pages, or 100-280 overflow pages of 2 KiB for 4 096 orders with ids of 12-64 bytes), and the
 * writer never reads a page it wrote again (the ledger keeps every order in memory), so
 * 8 MiB holds every page it needs many times over. (A batch that dirties more, ~57 000
 * orders with 64-byte ids, or a restart's first batch expiring every overdue
 * reservation, spills pages into the WAL before its commit: uncommitted frames, which
 * readers and recovery ignore, so it is still one transaction; an I/O error then shows
 * at the insert and rolls the batch back.) A bigger cache only grows while the flood
 * fills it, one page fault per page for a page never used again: 64 MiB had been
 * ~16 000 faults, ~10 us each on the 2-core VMs, in the first ~1.5 s of an in-process
 * flood. */
/* Pages of 2 KiB, for a new store (one made before keeps its own: a WAL file's page size
 * is fixed): a commit writes each page it changed whole into the WAL and checksums it,
 * and a batch of the HTTP path (~25 orders, a row of ~1 KiB) changes the table's right
 * edge and little else. Under callgrind that took a purchase's journal and commit from
 * ~1 180 instructions to ~1 040; in-process, batches of 4 096 (a row of ~150 KiB in
 * overflow pages) ran at the same rate (1.40 M against 1.41 M decisions/s). 1 KiB pages
 * saved no more, and put most rows in overflow pages. */
static const char pragmas[] = "PRAGMA page_size=2048;"
                              "PRAGMA journal_mode=WAL;"
                              "PRAGMA synchronous=FULL;"
                              "PRAGMA cache_size=-8192;" /* 8 MiB: see above */
                              "PRAGMA wal_autocheckpoint=0;" /* the checkpointer thread does it */
                              /* A WAL that grew while a reader held an old snapshot shrinks
                               * back to this when it starts over. */
                              "PRAGMA journal_size_limit=67108864;";

/* The current state of every order, derived from its batch row and its events. A
 * reservation's last event decides it; an order made without a window is confirmed. */
#define ORDERS_VIEW                                                                                                    \
    "CREATE VIEW orders AS"                                                                                            \
    "  WITH ev AS ("                                                                                                   \
    "    SELECT e.sale_id AS sale_id, j.value ->> 0 AS seq, e.kind AS kind, e.at AS at, j.value ->> 1 AS arg"          \
    "    FROM order_events e, json_each(e.events) j),"                                                                 \
    "  st AS ("                                                                                                        \
    "    SELECT sale_id, seq,"                                                                                         \
    "      max(CASE kind WHEN 'refund' THEN 4 WHEN 'cancel' THEN 3 WHEN 'expire' THEN 2 WHEN 'pay' THEN 1 END) AS "    \
    "rank,"                                                                                                            \
    "      max(CASE WHEN kind = 'pay' THEN arg END) AS payment_id,"                                                    \
    "      max(CASE WHEN kind = 'pay' THEN at END) AS paid_at,"                                                        \
    "      max(CASE WHEN kind <> 'pay' THEN at END) AS closed_at"                                                      \
    "    FROM ev GROUP BY sale_id, seq)"                                                                               \
    "  SELECT b.sale_id AS sale_id, b.first_seq + j.key AS seq,"                                                       \
    "    b.sale_id || '-' || printf('%010d', b.first_seq + j.key) AS order_id,"                                        \
    "    j.value ->> 0 AS user_id, j.value ->> 1 AS request_id, coalesce(j.value ->> 2, 1) AS quantity,"               \
    "    CASE coalesce(st.rank, 0) WHEN 4 THEN 'refunded' WHEN 3 THEN 'cancelled' WHEN 2 THEN 'expired'"               \
    "      WHEN 1 THEN 'confirmed' ELSE CASE WHEN b.pay_by IS NULL THEN 'confirmed' ELSE 'reserved' END END AS state," \
    "    b.created_at AS created_at, b.pay_by AS pay_by, st.payment_id AS payment_id, st.paid_at AS paid_at,"          \
    "    st.closed_at AS closed_at"                                                                                    \
    "  FROM order_batches b, json_each(b.orders) j"                                                                    \
    "  LEFT JOIN st ON st.sale_id = b.sale_id AND st.seq = b.first_seq + j.key;"

#define TABLES_V2                                                                                                      \
    "CREATE TABLE IF NOT EXISTS order_events("                                                                         \
    "  lsn INTEGER PRIMARY KEY, sale_id TEXT NOT NULL, kind TEXT NOT NULL, at INTEGER NOT NULL,"                       \
    "  events TEXT NOT NULL);"                                                                                         \
    "CREATE TABLE IF NOT EXISTS sale_events("                                                                          \
    "  lsn INTEGER PRIMARY KEY, sale_id TEXT NOT NULL, seq_in_sale INTEGER NOT NULL, kind TEXT NOT NULL,"              \
    "  actor TEXT, request_id TEXT, at INTEGER NOT NULL, params TEXT, before TEXT, after TEXT,"                        \
    "  UNIQUE (sale_id, seq_in_sale));"

/* Version 3: the waiting room (each sale's queue settings, and the queue's log). */
#define WAITING_ROOMS                                                                                                  \
    "ALTER TABLE sales ADD COLUMN queue TEXT NOT NULL DEFAULT 'off';"                                                  \
    "ALTER TABLE sales ADD COLUMN queue_opens_at INTEGER NOT NULL DEFAULT 0;"                                          \
    "ALTER TABLE sales ADD COLUMN admit_per_second INTEGER NOT NULL DEFAULT 100;"                                      \
    "ALTER TABLE sales ADD COLUMN admission_ttl_ms INTEGER NOT NULL DEFAULT 120000;"                                   \
    "ALTER TABLE sales ADD COLUMN pow_bits INTEGER NOT NULL DEFAULT 0;"                                                \
    "CREATE TABLE IF NOT EXISTS queue_log("                                                                            \
    "  lsn INTEGER PRIMARY KEY, sale_id TEXT NOT NULL, kind TEXT NOT NULL, at INTEGER NOT NULL, user_id TEXT,"         \
    "  arg INTEGER NOT NULL DEFAULT 0, n INTEGER NOT NULL DEFAULT 0);"

/* Version 4: order_batches without its UNIQUE (sale_id, first_seq) index. Every commit
 * wrote a page of that index besides the table's own (a WAL frame, its checksum, a b-tree
 * search): a fifth of a purchase batch's SQLite cost, for an index that only a rare
 * recovery query read. The journal remembers each sale's last seq instead (see
 * sale_last); the audit reads the rows in lsn order. */
#define ORDER_BATCHES                                                                                                  \
    "(lsn INTEGER PRIMARY KEY, sale_id TEXT NOT NULL, first_seq INTEGER NOT NULL, n INTEGER NOT NULL,"                 \
    "  created_at INTEGER NOT NULL, pay_by INTEGER, orders TEXT NOT NULL);"

/* order_batches rebuilt from a SELECT of the old one, in the version 4 shape (a rebuild,
 * as SQLite cannot drop a UNIQUE constraint), and the orders view made again over it. */
#define REBUILD_ORDER_BATCHES(select)                                                                                  \
    "DROP VIEW IF EXISTS orders;"                                                                                      \
    "CREATE TABLE order_batches_v4" ORDER_BATCHES                                                                      \
    "INSERT INTO order_batches_v4(lsn, sale_id, first_seq, n, created_at, pay_by, orders) " select ";"                 \
    "DROP TABLE order_batches;"                                                                                        \
    "ALTER TABLE order_batches_v4 RENAME TO order_batches;" ORDERS_VIEW

#define MIGRATE_V3                                                                                                     \
    REBUILD_ORDER_BATCHES("SELECT lsn, sale_id, first_seq, n, created_at, pay_by, orders FROM order_batches"           \
                          " ORDER BY lsn")                                                                             \
    "PRAGMA user_version = 4;"

/* Each path copies order_batches at most once. */
static const char schema[] =
    "CREATE TABLE sales("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL, starts_at INTEGER NOT NULL,"
    "  ends_at INTEGER NOT NULL, per_user_limit INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    "  max_quantity INTEGER NOT NULL DEFAULT 1, payment_window_ms INTEGER NOT NULL DEFAULT 0,"
    "  lsn INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE order_batches" ORDER_BATCHES TABLES_V2 ORDERS_VIEW WAITING_ROOMS "PRAGMA user_version = 4;";

static const char migrate_v3[] = MIGRATE_V3;
static const char migrate_v2[] = WAITING_ROOMS MIGRATE_V3;

/* Version 1 had no lsn (its order_batches' rowid `id` was the commit order, which
 * becomes the lsn), no transitions, no quantities and no payment windows. */
static const char migrate_v1[] =
    "ALTER TABLE sales ADD COLUMN max_quantity INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE sales ADD COLUMN payment_window_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE sales ADD COLUMN lsn INTEGER NOT NULL DEFAULT 0;" REBUILD_ORDER_BATCHES(
        "SELECT id, sale_id, first_seq, n, created_at, NULL, orders FROM order_batches ORDER BY id")
        TABLES_V2 WAITING_ROOMS "PRAGMA user_version = 4;";

static int one_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Brings the file to version 4: creates it, migrates a version 1, 2 or 3 file in one
 * transaction (all or nothing), or refuses a version it does not know. */
static int upgrade(sqlite3 *db, char *err, size_t err_size)
{
    int64_t version = 0, tables = 0;
    int rc = one_int(db, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
        rc = one_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'order_batches'", &tables);
    if (rc != SQLITE_OK)
        return rc;
    if (version == SK_JOURNAL_VERSION)
        return SQLITE_OK;
    if (version > SK_JOURNAL_VERSION) {
        snprintf(err, err_size, "it was written by a newer seckill (journal version %lld; this one reads up to %d)",
                 (long long)version, SK_JOURNAL_VERSION);
        return SQLITE_ERROR;
    }
    const char *sql = !tables ? schema : version == 3 ? migrate_v3 : version == 2 ? migrate_v2 : migrate_v1;
    char *msg = NULL;
    /* A migration rebuilds order_batches (and the orders view) under the same name: a
     * new table, the rows copied, the old one dropped, the new one renamed. The rename
     * would check every view in the file against a schema without order_batches (or
     * orders) and fail on the views an operator made for reports; the legacy rename
     * leaves them as they are, and they read the rebuilt table by its name. */
    rc = sqlite3_exec(db, "PRAGMA legacy_alter_table=ON", NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
    sqlite3_exec(db, "PRAGMA legacy_alter_table=OFF", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "%s the journal failed: %s", tables ? "migrating (to version 4)" : "creating",
                 msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return SQLITE_ERROR;
    }
    if (tables)
        sk_info("journal: migrated from version %lld to version 4 (%s%sorder_batches without its (sale_id, first_seq) "
                "index)",
                (long long)version, version < 2 ? "order lifecycle, " : "", version < 3 ? "waiting rooms, " : "");
    return SQLITE_OK;
}

static int prepare(sk_journal_t *j, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v3(j->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

sk_journal_t *sk_journal_open(const char *dir, char *err, size_t err_size)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create data directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/seckill.db", dir);
    sk_journal_t *j = sk_xcalloc(1, sizeof(*j));
    j->wal_fd = -1;
    int rc = sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    char *msg = NULL;
    char why[512] = "";
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(j->db, 5000);
        rc = sqlite3_exec(j->db, pragmas, NULL, NULL, &msg);
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
        rc = upgrade(j->db, why, sizeof(why));
    int64_t last = 0;
    if (rc == SQLITE_OK)
        rc = one_int(j->db,
                     "SELECT max(m) FROM (SELECT max(lsn) AS m FROM order_batches UNION ALL"
                     " SELECT max(lsn) FROM order_events UNION ALL SELECT max(lsn) FROM sale_events"
                     " UNION ALL SELECT max(lsn) FROM sales UNION ALL SELECT max(lsn) FROM queue_log)",
                     &last);
    j->lsn = last > 0 ? (uint64_t)last : 0;
    if (rc == SQLITE_OK)
        rc = prepare(j,
                     "INSERT INTO order_batches(lsn, sale_id, first_seq, n, created_at, pay_by, orders)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                     &j->put_order);
    if (rc == SQLITE_OK)
        rc = prepare(j, "INSERT INTO order_events(lsn, sale_id, kind, at, events) VALUES(?1, ?2, ?3, ?4, ?5)",
                     &j->put_event);
    if (rc == SQLITE_OK)
        rc = prepare(j,
                     "INSERT INTO sale_events(lsn, sale_id, seq_in_sale, kind, actor, request_id, at, params,"
                     " before, after) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                     &j->put_control);
    if (rc == SQLITE_OK)
        rc = prepare(j,
                     "INSERT INTO sales(id, name, stock, starts_at, ends_at, per_user_limit, created_at,"
                     " max_quantity, payment_window_ms, lsn, queue, queue_opens_at, admit_per_second,"
                     " admission_ttl_ms, pow_bits) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
                     " ?14, ?15)",
                     &j->put_sale);
    if (rc == SQLITE_OK)
        rc = prepare(
            j, "INSERT INTO queue_log(lsn, sale_id, kind, at, user_id, arg, n) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &j->put_queue);
    if (rc == SQLITE_OK)
        rc = prepare(j, "BEGIN IMMEDIATE", &j->begin);
    if (rc == SQLITE_OK)
        rc = prepare(j, "COMMIT", &j->commit);
    if (rc == SQLITE_OK)
        rc = prepare(j, "ROLLBACK", &j->rollback);
    if (rc == SQLITE_OK)
        rc = prepare(j,
                     /* Backwards from the newest row, down to the sale's creation at most. */
                     "SELECT first_seq + n - 1 FROM order_batches WHERE sale_id = ?1"
                     " AND lsn > coalesce((SELECT lsn FROM sales WHERE id = ?1), 0) ORDER BY lsn DESC LIMIT 1",
                     &j->last_seq);
    if (rc == SQLITE_OK)
        rc = prepare(j,
                     "SELECT EXISTS(SELECT 1 FROM order_batches WHERE lsn BETWEEN ?1 AND ?2)"
                     " OR EXISTS(SELECT 1 FROM order_events WHERE lsn BETWEEN ?1 AND ?2)"
                     " OR EXISTS(SELECT 1 FROM sale_events WHERE lsn BETWEEN ?1 AND ?2)"
                     /* A sale's row by its id (the primary key): sales has no lsn index. */
                     " OR EXISTS(SELECT 1 FROM sales WHERE id = ?3 AND lsn BETWEEN ?1 AND ?2)",
                     &j->has_lsn);
    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "cannot open %s: %s", path, why[0] ? why : msg ? msg : sqlite3_errmsg(j->db));
        sqlite3_free(msg);
        sk_journal_close(j);
        return NULL;
    }
    sqlite3_wal_hook(j->db, wal_hook, j);
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
    /* The last connection's close copies the WAL into the database file and deletes
     * it: synced, or the commits left in the WAL would not survive a power cut. */
    if (j->wal_fd >= 0)
        sqlite3_exec(j->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    sqlite3_finalize(j->put_order);
    sqlite3_finalize(j->put_event);
    sqlite3_finalize(j->put_control);
    sqlite3_finalize(j->put_sale);
    sqlite3_finalize(j->put_queue);
    sqlite3_finalize(j->begin);
    sqlite3_finalize(j->commit);
    sqlite3_finalize(j->rollback);
    sqlite3_finalize(j->last_seq);
    sqlite3_finalize(j->has_lsn);
    sqlite3_close(j->db);
    if (j->wal_fd >= 0)
        close(j->wal_fd);
    sk_buf_free(&j->json);
    for (size_t i = 0; i < j->n_sales; i++)
        free(j->sales[i].id);
    free(j->sales);
    free(j->sale_index);
    free(j->upd);
    free(j->perm);
    free(j->gid);
    free(j->gsale);
    free(j->gcount);
    free(j);
}

static const char *text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

/* One of the two logs being replayed: its statement and whether it has a row. */
typedef struct {
    sqlite3_stmt *st;
    int rc;
} cursor_t;

static int cursor_step(cursor_t *c)
{
    c->rc = sqlite3_step(c->st);
    return c->rc == SQLITE_ROW || c->rc == SQLITE_DONE ? 0 : -EIO;
}

/* ---- each sale's last seq -----------------------------------------------------------------
 * The file keeps no index on (sale_id, first_seq): a commit would write a page of it
 * besides the table's (see MIGRATE_V3). Instead the journal remembers every sale's last
 * stored seq (filled by the load, a new sale starts at 0) and refuses a batch whose rows
 * for a sale do not start right after it: the same seqs twice, a gap, an overlap. */

static uint32_t *sale_slot(sk_journal_t *j, const char *id, size_t len)
{
    size_t mask = j->index_cap - 1;
    for (size_t i = sk_hash64(id, len, 0) & mask;; i = (i + 1) & mask) {
        uint32_t k = j->sale_index[i];
        if (k == 0 || strcmp(j->sales[k - 1].id, id) == 0)
            return &j->sale_index[i];
    }
}

/* The sale's entry, made (unknown) when it has none. */
static struct last_seq *sale_entry(sk_journal_t *j, const char *id)
{
    size_t len = strlen(id);
    if (2 * (j->n_sales + 1) > j->index_cap) {
        size_t cap = j->index_cap ? 2 * j->index_cap : 64;
        free(j->sale_index);
        j->sale_index = sk_xcalloc(cap, sizeof(*j->sale_index));
        j->index_cap = cap;
        for (size_t i = 0; i < j->n_sales; i++)
            *sale_slot(j, j->sales[i].id, strlen(j->sales[i].id)) = (uint32_t)i + 1;
    }
    uint32_t *slot = sale_slot(j, id, len);
    if (*slot)
        return &j->sales[*slot - 1];
    if (j->n_sales == j->sales_cap) {
        j->sales_cap = j->sales_cap ? 2 * j->sales_cap : 16;
        j->sales = sk_xrealloc(j->sales, j->sales_cap * sizeof(*j->sales));
    }
    struct last_seq *e = &j->sales[j->n_sales++];
    *e = (struct last_seq){sk_xstrndup(id, len), 0, false};
    *slot = (uint32_t)j->n_sales;
    return e;
}

/* The sale's last stored seq, read from the file the first time it is needed. */
static int sale_last(sk_journal_t *j, const char *id, uint32_t *which, uint64_t *last)
{
    struct last_seq *e = sale_entry(j, id);
    *which = (uint32_t)(e - j->sales);
    if (!e->known) {
        if (sk_journal_last_seq(j, id, &e->last) < 0)
            return -EIO;
        e->known = true;
    }
    *last = e->last;
    return 0;
}

/* Every sale's end is read from the file again when next needed: after a load that
 * stopped half-way, whose sales end where it stopped reading, not where the file ends. */
static void forget_last_seqs(sk_journal_t *j)
{
    for (size_t i = 0; i < j->n_sales; i++)
        j->sales[i].known = false;
}

/* After a commit: the batch's sales end where it put them (stored), or are read from the
 * file again when next needed (a commit that failed may or may not have stored them). */
static void settle_last_seqs(sk_journal_t *j, bool stored)
{
    for (size_t i = 0; i < j->n_upd; i++) {
        struct last_seq *e = &j->sales[j->upd[i].sale];
        e->last = j->upd[i].last;
        e->known = stored;
    }
    j->n_upd = 0;
}

static int emit_order(sqlite3_stmt *st, int (*on_order)(void *, const sk_journal_order_t *), void *arg)
{
    sqlite3_int64 seq = sqlite3_column_int64(st, 2), q = sqlite3_column_int64(st, 5);
    /* An out-of-range quantity is passed on as 0, which the ledger refuses. */
    sk_journal_order_t o = {text(st, 1),
                            seq > 0 ? (uint64_t)seq : 0,
                            text(st, 3),
                            text(st, 4),
                            sqlite3_column_int64(st, 6),
                            sqlite3_column_type(st, 7) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 7),
                            q >= 1 && q <= UINT32_MAX ? (uint32_t)q : 0};
    o.lsn = (uint64_t)sqlite3_column_int64(st, 0);
    return on_order(arg, &o);
}

/* The load's order rows are each sale's in seq order: the last one read is its last. */
static void note_loaded_order(sk_journal_t *j, sqlite3_stmt *st, struct last_seq **prev)
{
    const char *id = text(st, 1);
    sqlite3_int64 seq = sqlite3_column_int64(st, 2);
    struct last_seq *e = *prev && strcmp((*prev)->id, id) == 0 ? *prev : sale_entry(j, id);
    e->last = seq > 0 ? (uint64_t)seq : 0;
    e->known = true;
    *prev = e;
}

static int emit_event(sqlite3_stmt *st, int (*on_event)(void *, const sk_journal_event_t *), void *arg)
{
    sk_order_event_t kind;
    if (sk_order_event_parse(text(st, 2), &kind) < 0)
        return -EINVAL;
    sqlite3_int64 seq = sqlite3_column_int64(st, 4);
    sk_journal_event_t ev = {text(st, 1), seq > 0 ? (uint64_t)seq : 0, kind, sqlite3_column_int64(st, 3),
                             sqlite3_column_type(st, 5) == SQLITE_NULL ? NULL : text(st, 5)};
    return on_event ? on_event(arg, &ev) : 0;
}

/* A row of sale_events back into a trail entry; -EINVAL when it does not parse. */
static int emit_control(sqlite3_stmt *st, int (*on_control)(void *, const sk_journal_control_t *), void *arg)
{
    if (!on_control)
        return 0;
    sk_journal_control_t c = {.sale_id = text(st, 1)};
    sk_trail_entry_t *e = &c.entry;
    sqlite3_int64 seq = sqlite3_column_int64(st, 2);
    const char *actor = text(st, 4), *req = text(st, 5), *params = text(st, 7), *before = text(st, 8),
               *after = text(st, 9);
    if (seq < 1 || sk_control_action_parse(text(st, 3), &e->ctl.action) < 0 || strlen(actor) > SK_ACTOR_MAX ||
        strlen(req) > SK_REQUEST_MAX || sk_control_params_parse(e->ctl.action, params, strlen(params), &e->ctl) < 0 ||
        sk_sale_snapshot_parse(before, strlen(before), &e->before) < 0 ||
        sk_sale_snapshot_parse(after, strlen(after), &e->after) < 0)
        return -EINVAL;
    e->seq = (uint64_t)seq;
    e->at = sqlite3_column_int64(st, 6);
    memcpy(e->actor, actor, strlen(actor) + 1);
    memcpy(e->request_id, req, strlen(req) + 1);
    return on_control(arg, &c);
}

int sk_journal_load(sk_journal_t *j, int (*on_sale)(void *arg, const sk_journal_sale_t *s),
                    int (*on_order)(void *arg, const sk_journal_order_t *o),
                    int (*on_event)(void *arg, const sk_journal_event_t *ev),
                    int (*on_control)(void *arg, const sk_journal_control_t *c), void *arg)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(j->db,
                                "SELECT id, name, stock, starts_at, ends_at, per_user_limit, created_at,"
                                " max_quantity, payment_window_ms, queue, queue_opens_at, admit_per_second,"
                                " admission_ttl_ms, pow_bits FROM sales ORDER BY created_at, rowid",
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
                               sqlite3_column_int64(st, 6),
                               sqlite3_column_int64(st, 7),
                               sqlite3_column_int64(st, 8)};
        int mode = SK_QUEUE_OFF;
        const char *q = text(st, 9);
        if (sk_queue_mode_parse(q, strlen(q), &mode) < 0)
            mode = -1; /* refused by the ledger */
        s.queue = mode;
        s.queue_opens_at = sqlite3_column_int64(st, 10);
        s.admit_per_second = sqlite3_column_int64(st, 11);
        s.admission_ttl_ms = sqlite3_column_int64(st, 12);
        s.pow_bits = sqlite3_column_int64(st, 13);
        int r = on_sale(arg, &s);
        if (r) {
            sqlite3_finalize(st);
            forget_last_seqs(j);
            return r;
        }
        /* Its end until an order row says otherwise: a sale without orders is not read
         * from the file at its first batch (a scan of every row made since it was, at the
         * instant its sale starts). */
        struct last_seq *ls = sale_entry(j, s.id);
        ls->last = 0;
        ls->known = true;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        forget_last_seqs(j);
        return -EIO;
    }
    /* The three logs merged by lsn. Each is read in lsn (= rowid) order, and a row's
     * elements in array order: per sale, orders in seq order. */
    cursor_t o = {0}, e = {0}, c = {0};
    struct last_seq *loaded = NULL; /* the sale of the order loaded last */
    int r = 0;
    if (sqlite3_prepare_v2(j->db,
                           "SELECT b.lsn, b.sale_id, b.first_seq + j.key, j.value ->> 0, j.value ->> 1,"
                           " coalesce(j.value ->> 2, 1), b.created_at, b.pay_by"
                           " FROM order_batches b, json_each(b.orders) j ORDER BY b.lsn",
                           -1, &o.st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(j->db,
                           "SELECT e.lsn, e.sale_id, e.kind, e.at, j.value ->> 0, j.value ->> 1"
                           " FROM order_events e, json_each(e.events) j ORDER BY e.lsn",
                           -1, &e.st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(j->db,
                           "SELECT lsn, sale_id, seq_in_sale, kind, actor, request_id, at, params, before, after"
                           " FROM sale_events ORDER BY lsn",
                           -1, &c.st, NULL) != SQLITE_OK) {
        r = -EIO;
        goto out;
    }
    if ((r = cursor_step(&o)) < 0 || (r = cursor_step(&e)) < 0 || (r = cursor_step(&c)) < 0)
        goto out;
    while (r == 0 && (o.rc == SQLITE_ROW || e.rc == SQLITE_ROW || c.rc == SQLITE_ROW)) {
        cursor_t *next = NULL;
        sqlite3_int64 low = 0;
        cursor_t *all[3] = {&o, &e, &c};
        for (int k = 0; k < 3; k++) {
            if (all[k]->rc != SQLITE_ROW)
                continue;
            sqlite3_int64 lsn = sqlite3_column_int64(all[k]->st, 0);
            if (!next || lsn < low) {
                next = all[k];
                low = lsn;
            }
        }
        if (next == &o) {
            r = emit_order(o.st, on_order, arg);
            note_loaded_order(j, o.st, &loaded);
        } else if (next == &e)
            r = emit_event(e.st, on_event, arg);
        else
            r = emit_control(c.st, on_control, arg);
        if (r == 0)
            r = cursor_step(next);
    }
out:
    sqlite3_finalize(o.st);
    sqlite3_finalize(e.st);
    sqlite3_finalize(c.st);
    if (r != 0)
        forget_last_seqs(j);
    return r;
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

/* Whether a row with an lsn in [first, last] is stored; the sales table is asked only
 * for the sale named (NULL: none, as for a batch). 0 or -EIO. */
static int lsn_stored(sk_journal_t *j, uint64_t first, uint64_t last, const char *sale_id, bool *found)
{
    if (injected(j, SK_JOURNAL_FAULT_LAST_SEQ))
        return -EIO;
    sqlite3_stmt *st = j->has_lsn;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)first);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)last);
    if (sale_id)
        sqlite3_bind_text(st, 3, sale_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    int rc = sqlite3_step(st);
    bool v = rc == SQLITE_ROW && sqlite3_column_int64(st, 0) != 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW) {
        sk_error("journal: looking for lsns %llu..%llu: %s", (unsigned long long)first, (unsigned long long)last,
                 sqlite3_errmsg(j->db));
        return -EIO;
    }
    *found = v;
    return 0;
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
    sqlite3_bind_int64(st, 8, s->max_quantity > 0 ? s->max_quantity : 1);
    sqlite3_bind_int64(st, 9, s->payment_window_ms);
    uint64_t lsn = ++j->lsn;
    sqlite3_bind_int64(st, 10, (sqlite3_int64)lsn);
    sqlite3_bind_text(st, 11, sk_queue_mode_name(s->queue), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, s->queue_opens_at);
    sqlite3_bind_int64(st, 13, s->admit_per_second);
    sqlite3_bind_int64(st, 14, s->admission_ttl_ms);
    sqlite3_bind_int64(st, 15, s->pow_bits);
    int rc;
    if (injected(j, SK_JOURNAL_FAULT_SALE_COMMIT)) {
        sk_error("journal: storing a sale: fault injected");
        rc = SQLITE_IOERR; /* nothing written; the file is asked as after any failure */
    } else {
        rc = step_reset(st);
        if (rc == SQLITE_DONE && injected(j, SK_JOURNAL_FAULT_SALE_AFTER_COMMIT)) {
            sk_error("journal: storing a sale: fault injected after the commit");
            rc = SQLITE_IOERR;
        } else if (rc != SQLITE_DONE && rc != SQLITE_CONSTRAINT) {
            fail(j, "storing a sale");
        }
    }
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_CONSTRAINT)
        return -EEXIST;
    if (rc != SQLITE_DONE) {
        /* Its own transaction may have reached the file all the same: the file says. */
        bool found;
        if (lsn_stored(j, lsn, lsn, s->id, &found) < 0)
            return SK_JOURNAL_IN_DOUBT;
        if (!found)
            return -EIO;
        sk_warn("journal: storing sale '%s' reported failure, yet it is stored; it stands", s->id);
    }
    note_commit(j); /* a commit of its own: counted, so that a deferred sync covers it */
    struct last_seq *e = sale_entry(j, s->id);
    e->last = 0;
    e->known = true;
    return 0;
}

/* ---- one batch --------------------------------------------------------------------------
 * A batch's rows interleave sales and kinds; each row of the journal is one (kind, sale)
 * group. group_rows orders n items into such groups in O(n): items get a rank (the kind's
 * place in the write order) and a sale group (found through the previous item's sale
 * pointer, which the ledger repeats for a sale, or a scan of the groups so far), then a
 * counting sort by (rank, group) keeps each group's items in decision order. */

#define RANKS 5 /* expire, cancel, pay, refund, orders */

static int event_rank(sk_order_event_t k)
{
    switch (k) {
    case SK_EV_EXPIRE:
        return 0;
    case SK_EV_CANCEL:
        return 1;
    case SK_EV_PAY:
        return 2;
    default:
        return 3;
    }
}

static void grow_groups(sk_journal_t *j, size_t n)
{
    if (n <= j->g_cap)
        return;
    size_t cap = j->g_cap ? j->g_cap : 16;
    while (cap < n)
        cap *= 2;
    j->gsale = sk_xrealloc(j->gsale, cap * sizeof(*j->gsale));
    j->gcount = sk_xrealloc(j->gcount, cap * RANKS * sizeof(*j->gcount));
    j->g_cap = cap;
}

/* The items start with their sale's id. */
_Static_assert(offsetof(sk_journal_order_t, sale_id) == 0 && offsetof(sk_journal_event_t, sale_id) == 0,
               "group_rows reads an item's sale first");

static const char *item_sale(const void *items, size_t stride, size_t i)
{
    return *(const char *const *)((const char *)items + i * stride);
}

/* Item i's rank: rank(items, i), or, without a rank function (orders), the last. */
static int item_rank(int (*rank)(const void *, size_t), const void *items, size_t i)
{
    return rank ? rank(items, i) : RANKS - 1;
}

/* Fills j->perm[0..n) with the n items (each `stride` bytes) in (rank, group, position)
 * order. */
static void group_rows(sk_journal_t *j, const void *items, size_t n, size_t stride, int (*rank)(const void *, size_t))
{
    if (n > j->perm_cap) {
        j->perm_cap = n;
        j->perm = sk_xrealloc(j->perm, n * sizeof(*j->perm));
        j->gid = sk_xrealloc(j->gid, n * sizeof(*j->gid));
    }
    for (size_t i = 0; i < n; i++)
        j->perm[i] = (uint32_t)i;
    if (n == 0)
        return;
    /* One sale (the ledger names it by one pointer) and one rank, every batch of a flash
     * sale: the items are in order already. */
    const char *s0 = item_sale(items, stride, 0);
    int r0 = item_rank(rank, items, 0);
    size_t same = 1;
    while (same < n && item_sale(items, stride, same) == s0 && item_rank(rank, items, same) == r0)
        same++;
    if (same >= n)
        return;
    size_t g = 0;
    const char *prev = NULL;
    uint32_t prev_g = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = item_sale(items, stride, i);
        uint32_t k;
        if (prev && (s == prev || strcmp(s, prev) == 0)) {
            k = prev_g;
        } else {
            for (k = 0; k < g; k++)
                if (j->gsale[k] == s || strcmp(j->gsale[k], s) == 0)
                    break;
            if (k == g) {
                grow_groups(j, g + 1);
                j->gsale[g++] = s;
            }
        }
        j->gid[i] = k;
        prev = s;
        prev_g = k;
    }
    memset(j->gcount, 0, g * RANKS * sizeof(*j->gcount));
    for (size_t i = 0; i < n; i++)
        j->gcount[(size_t)item_rank(rank, items, i) * g + j->gid[i]]++;
    uint32_t sum = 0;
    for (size_t k = 0; k < g * RANKS; k++) {
        uint32_t c = j->gcount[k];
        j->gcount[k] = sum;
        sum += c;
    }
    for (size_t i = 0; i < n; i++)
        j->perm[j->gcount[(size_t)item_rank(rank, items, i) * g + j->gid[i]]++] = (uint32_t)i;
}

static int event_item_rank(const void *items, size_t i)
{
    return event_rank(((const sk_journal_event_t *)items)[i].kind);
}

static bool same_sale(const char *a, const char *b)
{
    return a == b || strcmp(a, b) == 0;
}

static int by_time(const void *a, const void *b, void *arg)
{
    const sk_journal_event_t *ev = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (ev[x].at != ev[y].at)
        return ev[x].at < ev[y].at ? -1 : 1;
    return x < y ? -1 : x > y; /* decision order */
}

/* Puts each run of one sale's events of one kind (group_rows) in time order, so that
 * the events of one time share a row: a batch's payments carry each its receipt, which
 * several workers stamp in no particular order. The replay does not see the difference:
 * a run never holds two events of one order (the state one leaves takes no second event
 * of its kind), and each event is judged by its own order alone. */
static void sort_runs_by_time(sk_journal_t *j, const sk_journal_event_t *ev, size_t n)
{
    for (size_t i = 0; i < n;) {
        const sk_journal_event_t *first = &ev[j->perm[i]];
        bool sorted = true;
        size_t k = i + 1;
        for (; k < n; k++) {
            const sk_journal_event_t *e = &ev[j->perm[k]];
            if (e->kind != first->kind || !same_sale(e->sale_id, first->sale_id))
                break;
            sorted = sorted && e->at >= ev[j->perm[k - 1]].at;
        }
        if (!sorted)
            qsort_r(j->perm + i, k - i, sizeof(*j->perm), by_time, (void *)ev);
        i = k;
    }
}

static int put_events(sk_journal_t *j, const sk_journal_event_t *ev, size_t n)
{
    group_rows(j, ev, n, sizeof(*ev), event_item_rank);
    sort_runs_by_time(j, ev, n);
    sqlite3_stmt *st = j->put_event;
    for (size_t i = 0; i < n;) {
        const sk_journal_event_t *first = &ev[j->perm[i]];
        sk_buf_t *b = &j->json;
        b->len = 0;
        sk_buf_putc(b, '[');
        size_t k = i;
        for (; k < n; k++) {
            const sk_journal_event_t *e = &ev[j->perm[k]];
            if (e->kind != first->kind || e->at != first->at || !same_sale(e->sale_id, first->sale_id))
                break;
            sk_buf_puts(b, k > i ? ",[" : "[");
            sk_buf_put_i64(b, (int64_t)e->seq);
            if (e->arg) {
                sk_buf_putc(b, ',');
                sk_buf_put_json_str(b, e->arg, strlen(e->arg));
            }
            sk_buf_putc(b, ']');
        }
        sk_buf_putc(b, ']');
        const char *kind = sk_order_event_name(first->kind);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)++j->lsn);
        sqlite3_bind_text(st, 2, first->sale_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, first->at);
        sqlite3_bind_text(st, 5, b->data, (int)b->len, SQLITE_STATIC);
        if (step_reset(st) != SQLITE_DONE)
            return -EIO;
        i = k;
    }
    return 0;
}

static int put_order_rows(sk_journal_t *j, const sk_journal_order_t *orders, size_t n)
{
    group_rows(j, orders, n, sizeof(*orders), NULL);
    sqlite3_stmt *st = j->put_order;
    for (size_t i = 0; i < n;) {
        const sk_journal_order_t *first = &orders[j->perm[i]];
        uint32_t sale;
        uint64_t last;
        if (sale_last(j, first->sale_id, &sale, &last) < 0)
            return -EIO;
        if (first->seq != last + 1)
            return -EINVAL; /* not right after the sale's last stored order */
        sk_buf_t *b = &j->json;
        b->len = 0;
        sk_buf_putc(b, '[');
        uint64_t next = first->seq;
        size_t k = i;
        for (; k < n; k++) {
            const sk_journal_order_t *o = &orders[j->perm[k]];
            if (!same_sale(o->sale_id, first->sale_id))
                break;
            if (o->seq != next++)
                return -EINVAL; /* the ledger broke its own sequence: refuse to store it */
            if (k > i)
                sk_buf_putc(b, ',');
            sk_buf_putc(b, '[');
            /* The ledger gives the ids' lengths (0: not given). */
            sk_buf_put_json_str(b, o->user_id, o->user_len ? o->user_len : strlen(o->user_id));
            sk_buf_putc(b, ',');
            sk_buf_put_json_str(b, o->request_id, o->request_len ? o->request_len : strlen(o->request_id));
            if (o->quantity > 1) {
                sk_buf_putc(b, ',');
                sk_buf_put_i64(b, o->quantity);
            }
            sk_buf_putc(b, ']');
        }
        sk_buf_putc(b, ']');
        sqlite3_bind_int64(st, 1, (sqlite3_int64)++j->lsn);
        sqlite3_bind_text(st, 2, first->sale_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)first->seq);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)(k - i));
        sqlite3_bind_int64(st, 5, first->created_at);
        if (first->pay_by)
            sqlite3_bind_int64(st, 6, first->pay_by);
        else
            sqlite3_bind_null(st, 6);
        sqlite3_bind_text(st, 7, b->data, (int)b->len, SQLITE_STATIC);
        if (step_reset(st) != SQLITE_DONE)
            return -EIO;
        if (j->n_upd == j->upd_cap) {
            j->upd_cap = j->upd_cap ? 2 * j->upd_cap : 16;
            j->upd = sk_xrealloc(j->upd, j->upd_cap * sizeof(*j->upd));
        }
        j->upd[j->n_upd++] = (struct seq_update){sale, next - 1};
        i = k;
    }
    return 0;
}

/* One row per control, in decision order (controls are rare: no grouping). */
static int put_controls(sk_journal_t *j, const sk_journal_control_t *c, size_t n)
{
    sqlite3_stmt *st = j->put_control;
    sk_buf_t *b = &j->json;
    for (size_t i = 0; i < n; i++) {
        const sk_trail_entry_t *e = &c[i].entry;
        /* One buffer for the three JSON texts: bound once it is complete (no moves). */
        b->len = 0;
        sk_control_params_json(b, &e->ctl);
        size_t p_end = b->len;
        sk_sale_snapshot_json(b, &e->before);
        size_t b_end = b->len;
        sk_sale_snapshot_json(b, &e->after);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)++j->lsn);
        sqlite3_bind_text(st, 2, c[i].sale_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)e->seq);
        sqlite3_bind_text(st, 4, sk_control_action_name(e->ctl.action), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, e->actor, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, e->request_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, e->at);
        sqlite3_bind_text(st, 8, b->data, (int)p_end, SQLITE_STATIC);
        sqlite3_bind_text(st, 9, b->data + p_end, (int)(b_end - p_end), SQLITE_STATIC);
        sqlite3_bind_text(st, 10, b->data + b_end, (int)(b->len - b_end), SQLITE_STATIC);
        int rc = step_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE)
            return -EIO;
    }
    return 0;
}

int sk_journal_put_batch(sk_journal_t *j, const sk_journal_order_t *orders, size_t n_orders,
                         const sk_journal_event_t *events, size_t n_events, const sk_journal_control_t *controls,
                         size_t n_controls, uint64_t *first, uint64_t *last)
{
    *first = j->lsn + 1;
    *last = j->lsn;
    j->n_upd = 0;
    if (n_orders == 0 && n_events == 0 && n_controls == 0)
        return 0;
    if (step_reset(j->begin) != SQLITE_DONE)
        return fail(j, "begin");
    /* Transitions, then controls, then the new orders: see journal.h for why that order
     * is safe. */
    int rc = n_events ? put_events(j, events, n_events) : 0;
    if (rc == 0 && n_controls)
        rc = put_controls(j, controls, n_controls);
    if (rc == 0 && n_orders)
        rc = put_order_rows(j, orders, n_orders);
    *last = j->lsn;
    if (rc == -EINVAL) {
        sk_error("journal: a sale's orders in the batch do not follow on from its last stored order; batch refused");
        step_reset(j->rollback);
        return -EIO;
    }
    if (rc != 0)
        return fail(j, "storing a batch");
    if (injected(j, SK_JOURNAL_FAULT_COMMIT)) {
        sk_error("journal: commit: fault injected");
        step_reset(j->rollback);
        return -EIO;
    }
    if (step_reset(j->commit) != SQLITE_DONE) {
        settle_last_seqs(j, false);
        return fail(j, "commit");
    }
    settle_last_seqs(j, true);
    note_commit(j);
    if (injected(j, SK_JOURNAL_FAULT_AFTER_COMMIT)) {
        sk_error("journal: commit: fault injected after the commit");
        return -EIO;
    }
    return 0;
}

int sk_journal_put_orders(sk_journal_t *j, const sk_journal_order_t *orders, size_t n)
{
    uint64_t first, last;
    return sk_journal_put_batch(j, orders, n, NULL, 0, NULL, 0, &first, &last);
}

int sk_journal_has_lsn(sk_journal_t *j, uint64_t first, uint64_t last, bool *found)
{
    return lsn_stored(j, first, last, NULL, found);
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

/* ---- the waiting rooms' log ------------------------------------------------------------- */

static const char *const qrec_names[] = {"join", "start", "admit"};

int sk_journal_put_queue(sk_journal_t *j, const sk_journal_queue_t *recs, size_t n)
{
    if (n == 0)
        return 0;
    if (step_reset(j->begin) != SQLITE_DONE)
        return fail(j, "beginning a queue batch");
    sqlite3_stmt *st = j->put_queue;
    for (size_t i = 0; i < n; i++) {
        const sk_journal_queue_t *q = &recs[i];
        sqlite3_bind_int64(st, 1, (sqlite3_int64)++j->lsn);
        sqlite3_bind_text(st, 2, q->sale_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, qrec_names[q->rec.kind], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, q->rec.at);
        if (q->rec.user)
            sqlite3_bind_text(st, 5, q->rec.user, (int)q->rec.user_len, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 5);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)q->rec.arg);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)q->rec.n);
        int rc = step_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE)
            return fail(j, "storing the queue");
    }
    if (injected(j, SK_JOURNAL_FAULT_COMMIT)) {
        step_reset(j->rollback);
        return -EIO;
    }
    if (step_reset(j->commit) != SQLITE_DONE)
        return fail(j, "committing the queue");
    note_commit(j);
    return 0;
}

int sk_journal_load_queue(sk_journal_t *j, int (*on_rec)(void *arg, const sk_journal_queue_t *r), void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT sale_id, kind, at, user_id, arg, n FROM queue_log ORDER BY lsn", -1, &st,
                           NULL) != SQLITE_OK)
        return -EIO;
    int rc, r = 0;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        sk_journal_queue_t q = {.sale_id = text(st, 0)};
        const char *kind = text(st, 1);
        int k = -1;
        for (int i = 0; i < (int)SK_ARRAY_LEN(qrec_names); i++)
            if (strcmp(kind, qrec_names[i]) == 0)
                k = i;
        if (k < 0) {
            r = -EINVAL;
            break;
        }
        q.rec.kind = (sk_queue_rec_kind_t)k;
        q.rec.at = sqlite3_column_int64(st, 2);
        if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
            q.rec.user = text(st, 3);
            q.rec.user_len = (size_t)sqlite3_column_bytes(st, 3);
        }
        q.rec.arg = (uint64_t)sqlite3_column_int64(st, 4);
        q.rec.n = (uint64_t)sqlite3_column_int64(st, 5);
        r = on_rec(arg, &q);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = -EIO;
    sqlite3_finalize(st);
    return r;
}
