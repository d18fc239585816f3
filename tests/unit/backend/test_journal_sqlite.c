/* The SQLite journal behind the embedded ledger: sales and order batches survive a
 * close and reopen, each sale's orders in seq order; duplicates are refused without
 * storing anything; transitions are replayed merged with the orders by lsn; the orders
 * view gives every order's state; a version 1 file is migrated in place. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "backend/journal.h"
#include "engine/engine.h"
#include "test.h"
#include "testdir.h"
#include "util/common.h"

typedef struct {
    int sales, orders;
    char sale_ids[8][80];
    int64_t stock[8];
    char order_ids[64][96];
    char users[64][80];
    char reqs[64][80];
    int64_t created[64];
    int stop_after; /* on_order returns 7 after this many (0: never) */
} loaded_t;

static int on_sale(void *arg, const sk_journal_sale_t *s)
{
    loaded_t *l = arg;
    if (l->sales < 8) {
        snprintf(l->sale_ids[l->sales], sizeof(l->sale_ids[0]), "%s/%s/%lld/%lld/%lld/%lld", s->id, s->name,
                 (long long)s->starts_at, (long long)s->ends_at, (long long)s->per_user_limit,
                 (long long)s->created_at);
        l->stock[l->sales] = s->stock;
    }
    l->sales++;
    return 0;
}

static int on_order(void *arg, const sk_journal_order_t *o)
{
    loaded_t *l = arg;
    if (l->orders < 64) {
        snprintf(l->order_ids[l->orders], sizeof(l->order_ids[0]), "%s/%llu", o->sale_id, (unsigned long long)o->seq);
        snprintf(l->users[l->orders], sizeof(l->users[0]), "%s", o->user_id);
        snprintf(l->reqs[l->orders], sizeof(l->reqs[0]), "%s", o->request_id);
        l->created[l->orders] = o->created_at;
    }
    l->orders++;
    if (l->stop_after && l->orders == l->stop_after)
        return 7;
    return 0;
}

/* A journal in a new temp dir (its path into dir), or the test fails. */
static sk_journal_t *open_fresh(char *dir, size_t cap)
{
    char err[256] = "";
    if (!sk_test_temp_dir(dir, cap, "store"))
        SK_FAIL_AT("no temp dir");
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    if (!j)
        SK_FAIL_AT("open: %s", err);
    return j;
}

/* Opens dir's journal again and loads it into *l; closes it. */
static void reload(const char *dir, loaded_t *l)
{
    char err[256] = "";
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    if (!j)
        SK_FAIL_AT("open: %s", err);
    *l = (loaded_t){0};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, NULL, NULL, l), 0);
    sk_journal_close(j);
}

SK_TEST(test_round_trip)
{
    char dir[256], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    char data[300];
    snprintf(data, sizeof(data), "%s/data", dir); /* created by open */
    sk_journal_t *j = sk_journal_open(data, err, sizeof(err));
    if (!j)
        SK_FAIL_AT("open: %s", err);
    ASSERT_TRUE(j != NULL);
    sk_journal_sale_t a = {"s-b", "Second \xe7\xa5\xa8", 10, 1000, 2000, 2, 50};
    sk_journal_sale_t b = {"s-a", "First", 3, 100, 200, 1, 40};
    ASSERT_EQ(sk_journal_put_sale(j, &a), 0);
    ASSERT_EQ(sk_journal_put_sale(j, &b), 0);
    sk_journal_sale_t dup = {"s-a", "Other", 99, 1, 2, 1, 60};
    ASSERT_EQ(sk_journal_put_sale(j, &dup), -EEXIST);

    sk_journal_order_t batch1[] = {
        {"s-b", 1, "u1", "r1", 1001},
        {"s-a", 1, "u2", "", 1002},
        {"s-b", 2, "u3", "r3", 1003},
    };
    sk_journal_order_t batch2[] = {
        {"s-a", 2, "u1", "r9", 1004},
    };
    ASSERT_EQ(sk_journal_put_orders(j, batch1, 3), 0);
    ASSERT_EQ(sk_journal_put_orders(j, NULL, 0), 0);
    ASSERT_EQ(sk_journal_put_orders(j, batch2, 1), 0);
    sk_journal_close(j);

    j = sk_journal_open(data, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    loaded_t l = {0};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, NULL, NULL, &l), 0);
    /* Sales in creation order (created_at), whatever the id or insert order. */
    ASSERT_EQ(l.sales, 2);
    ASSERT_STR_EQ(l.sale_ids[0], "s-a/First/100/200/1/40");
    ASSERT_EQ(l.stock[0], 3);
    ASSERT_STR_EQ(l.sale_ids[1], "s-b/Second \xe7\xa5\xa8/1000/2000/2/50");
    ASSERT_EQ(l.stock[1], 10);
    /* Each sale's orders in seq (= commit) order; the ledger needs no more. */
    ASSERT_EQ(l.orders, 4);
    int a1 = -1, a2 = -1, b1 = -1, b2 = -1;
    for (int i = 0; i < 4; i++) {
        if (strcmp(l.order_ids[i], "s-a/1") == 0)
            a1 = i;
        else if (strcmp(l.order_ids[i], "s-a/2") == 0)
            a2 = i;
        else if (strcmp(l.order_ids[i], "s-b/1") == 0)
            b1 = i;
        else if (strcmp(l.order_ids[i], "s-b/2") == 0)
            b2 = i;
    }
    ASSERT_TRUE(a1 >= 0 && a2 >= 0 && b1 >= 0 && b2 >= 0);
    ASSERT_LT(a1, a2);
    ASSERT_LT(b1, b2);
    ASSERT_STR_EQ(l.users[a2], "u1");
    ASSERT_STR_EQ(l.reqs[a2], "r9");
    ASSERT_STR_EQ(l.reqs[a1], "");
    /* A sale's orders of one batch share one time: the first order's. */
    ASSERT_EQ(l.created[b2], 1001);
    ASSERT_EQ(l.created[a2], 1004);

    /* A callback's non-zero value stops the replay and is returned. */
    loaded_t l2 = {.stop_after = 2};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, NULL, NULL, &l2), 7);
    ASSERT_EQ(l2.orders, 2);
    sk_journal_close(j);

    /* Auditors read order ids straight from the table: they match the API's format. */
    char path[340];
    snprintf(path, sizeof(path), "%s/seckill.db", data);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT order_id, user_id FROM orders ORDER BY sale_id, seq", -1, &st, NULL),
              SQLITE_OK);
    static const char *const want[][2] = {
        {"s-a-0000000001", "u2"}, {"s-a-0000000002", "u1"}, {"s-b-0000000001", "u1"}, {"s-b-0000000002", "u3"}};
    for (size_t i = 0; i < SK_ARRAY_LEN(want); i++) {
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        ASSERT_STR_EQ((const char *)sqlite3_column_text(st, 0), want[i][0]);
        ASSERT_STR_EQ((const char *)sqlite3_column_text(st, 1), want[i][1]);
    }
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
    rm_rf(dir);
}

SK_TEST(test_batch_all_or_nothing)
{
    char dir[256], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    sk_journal_sale_t s = {"s", "S", 10, 0, 1, 1, 1};
    ASSERT_EQ(sk_journal_put_sale(j, &s), 0);
    sk_journal_order_t ok[] = {{"s", 1, "u1", "", 1}};
    ASSERT_EQ(sk_journal_put_orders(j, ok, 1), 0);
    /* The second row repeats a seq of the sale: the whole batch is refused, and the
     * journal still takes the next batch. */
    sk_journal_order_t bad[] = {{"s", 2, "u2", "", 2}, {"s", 1, "u3", "", 3}};
    ASSERT_EQ(sk_journal_put_orders(j, bad, 2), -EIO);
    sk_journal_order_t next[] = {{"s", 2, "u4", "r", 4}};
    ASSERT_EQ(sk_journal_put_orders(j, next, 1), 0);
    sk_journal_close(j);
    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    loaded_t l = {0};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, NULL, NULL, &l), 0);
    ASSERT_EQ(l.orders, 2);
    ASSERT_STR_EQ(l.users[0], "u1");
    ASSERT_STR_EQ(l.users[1], "u4");
    sk_journal_close(j);
    rm_rf(dir);
}

SK_TEST(test_many_batches)
{
    char dir[256], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    sk_journal_sale_t s = {"big", "Big", 100000, 0, 1, 1, 1};
    ASSERT_EQ(sk_journal_put_sale(j, &s), 0);
    enum { BATCH = 500, BATCHES = 20 };
    static char users[BATCH][32];
    sk_journal_order_t orders[BATCH];
    int seq = 0;
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            seq++;
            snprintf(users[i], sizeof(users[i]), "u%d", seq);
            orders[i] = (sk_journal_order_t){"big", (uint64_t)seq, users[i], "", seq};
        }
        ASSERT_EQ(sk_journal_put_orders(j, orders, BATCH), 0);
    }
    sk_journal_close(j);
    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    loaded_t l = {0};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, NULL, NULL, &l), 0);
    ASSERT_EQ(l.orders, BATCH * BATCHES);
    ASSERT_STR_EQ(l.order_ids[63], "big/64");
    sk_journal_close(j);
    rm_rf(dir);
}

/* Under commits that never stop, the WAL starts over from its first frame again and
 * again instead of growing (2 000 batches write ~25 MB of frames; the WAL stays within a
 * few checkpoints' worth), and nothing is lost on the way. */
SK_TEST(test_wal_starts_over)
{
    char dir[256], err[256] = "", wal[300];
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "wal"));
    snprintf(wal, sizeof(wal), "%s/seckill.db-wal", dir);
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    sk_journal_sale_t s = {"flood", "Flood", 1000000, 0, 1, 1, 1};
    ASSERT_EQ(sk_journal_put_sale(j, &s), 0);
    enum { BATCH = 60, BATCHES = 2000 };
    static char users[BATCH][64];
    sk_journal_order_t orders[BATCH];
    int seq = 0;
    off_t largest = 0;
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            seq++;
            snprintf(users[i], sizeof(users[i]), "buyer-%08d-of-the-flood-%d", seq, b);
            orders[i] = (sk_journal_order_t){"flood", (uint64_t)seq, users[i], "", seq};
        }
        ASSERT_EQ(sk_journal_put_orders(j, orders, BATCH), 0);
        struct stat st;
        if (stat(wal, &st) == 0 && st.st_size > largest)
            largest = st.st_size;
    }
    fprintf(stderr, "  the WAL's largest size over %d commits: %lld bytes\n", BATCHES, (long long)largest);
    ASSERT_TRUE(largest < 8 * 1024 * 1024);
    sk_journal_close(j);
    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    loaded_t l = {0};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, NULL, NULL, &l), 0);
    ASSERT_EQ(l.orders, BATCH * BATCHES);
    sk_journal_close(j);
    rm_rf(dir);
}

/* ---- a VFS over the default one that watches the WAL's writes and syncs --------------- */

typedef struct {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct */
    bool wal;
} shim_file_t;

static sqlite3_vfs *shim_base;
static sqlite3_vfs shim_vfs;
static pthread_t shim_thread; /* only this thread's calls are watched (not the checkpointer's) */
static int shim_headers; /* WAL headers written (a WAL started, or started over) */
static bool shim_unsynced_header; /* a header was written and not synced since */
static int shim_frames_over_unsynced; /* frames written while a header was unsynced */

static sqlite3_file *real_of(sqlite3_file *f)
{
    return ((shim_file_t *)f)->real;
}

static bool watched(sqlite3_file *f)
{
    return ((shim_file_t *)f)->wal && pthread_equal(pthread_self(), shim_thread);
}

static int shim_close(sqlite3_file *f)
{
    return real_of(f)->pMethods->xClose(real_of(f));
}
static int shim_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return real_of(f)->pMethods->xRead(real_of(f), b, n, o);
}
static int shim_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    if (watched(f)) {
        if (o == 0) {
            shim_headers++;
            shim_unsynced_header = true;
        } else if (shim_unsynced_header) {
            shim_frames_over_unsynced++;
        }
    }
    return real_of(f)->pMethods->xWrite(real_of(f), b, n, o);
}
static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return real_of(f)->pMethods->xTruncate(real_of(f), size);
}
static int shim_sync(sqlite3_file *f, int flags)
{
    int rc = real_of(f)->pMethods->xSync(real_of(f), flags);
    if (watched(f) && rc == SQLITE_OK)
        shim_unsynced_header = false;
    return rc;
}
static int shim_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return real_of(f)->pMethods->xFileSize(real_of(f), size);
}
static int shim_lock(sqlite3_file *f, int l)
{
    return real_of(f)->pMethods->xLock(real_of(f), l);
}
static int shim_unlock(sqlite3_file *f, int l)
{
    return real_of(f)->pMethods->xUnlock(real_of(f), l);
}
static int shim_check_reserved(sqlite3_file *f, int *out)
{
    return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}
static int shim_file_control(sqlite3_file *f, int op, void *arg)
{
    return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}
static int shim_sector_size(sqlite3_file *f)
{
    return real_of(f)->pMethods->xSectorSize(real_of(f));
}
static int shim_device(sqlite3_file *f)
{
    return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}
static int shim_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return real_of(f)->pMethods->xShmMap(real_of(f), pg, pgsz, extend, pp);
}
static int shim_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}
static void shim_shm_barrier(sqlite3_file *f)
{
    real_of(f)->pMethods->xShmBarrier(real_of(f));
}
static int shim_shm_unmap(sqlite3_file *f, int del)
{
    return real_of(f)->pMethods->xShmUnmap(real_of(f), del);
}
static int shim_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp)
{
    return real_of(f)->pMethods->xFetch(real_of(f), o, n, pp);
}
static int shim_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
    return real_of(f)->pMethods->xUnfetch(real_of(f), o, p);
}

static const sqlite3_io_methods shim_io = {3,
                                           shim_close,
                                           shim_read,
                                           shim_write,
                                           shim_truncate,
                                           shim_sync,
                                           shim_file_size,
                                           shim_lock,
                                           shim_unlock,
                                           shim_check_reserved,
                                           shim_file_control,
                                           shim_sector_size,
                                           shim_device,
                                           shim_shm_map,
                                           shim_shm_lock,
                                           shim_shm_barrier,
                                           shim_shm_unmap,
                                           shim_fetch,
                                           shim_unfetch};

static int shim_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    shim_file_t *p = (shim_file_t *)f;
    p->real = (sqlite3_file *)(p + 1);
    p->wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = shim_base->xOpen(shim_base, name, p->real, flags, out_flags);
    p->base.pMethods = p->real->pMethods ? &shim_io : NULL;
    return rc;
}

static void shim_install(void)
{
    shim_base = sqlite3_vfs_find(NULL);
    shim_vfs = *shim_base;
    shim_vfs.zName = "sk-test-shim";
    shim_vfs.szOsFile = (int)sizeof(shim_file_t) + shim_base->szOsFile;
    shim_vfs.xOpen = shim_open;
    shim_vfs.pNext = NULL;
    shim_thread = pthread_self();
    sqlite3_vfs_register(&shim_vfs, 1);
}

static void shim_remove(void)
{
    sqlite3_vfs_unregister(&shim_vfs);
    sqlite3_vfs_register(shim_base, 1);
}

/* With the sync deferred (commits only write the WAL), the WAL still starts over, and
 * each time its new header is synced before any new frame overwrites the old ones: else
 * a power cut could leave the old header with a prefix of old frames that still check
 * out, and recovery would write those stale pages over newer ones (SQLite's ticket
 * ff5be73dee). */
SK_TEST(test_wal_restart_header_synced)
{
    char dir[256], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "walhdr"));
    shim_install();
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    sk_journal_sale_t s = {"flood", "Flood", 1000000, 0, 1, 1, 1};
    ASSERT_EQ(sk_journal_put_sale(j, &s), 0);
    ASSERT_EQ(sk_journal_defer_sync(j), 0);
    shim_headers = 0;
    shim_unsynced_header = false;
    shim_frames_over_unsynced = 0;
    enum { BATCH = 60, BATCHES = 1000 };
    static char users[BATCH][64];
    sk_journal_order_t orders[BATCH];
    int seq = 0;
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            seq++;
            snprintf(users[i], sizeof(users[i]), "buyer-%08d-of-the-flood-%d", seq, b);
            orders[i] = (sk_journal_order_t){"flood", (uint64_t)seq, users[i], "", seq};
        }
        ASSERT_EQ(sk_journal_put_orders(j, orders, BATCH), 0);
        if (b % 50 == 49)
            usleep(20 * 1000); /* let the checkpointer run now and then */
    }
    fprintf(stderr, "  the WAL started over %d times; frames written over an unsynced header: %d\n", shim_headers,
            shim_frames_over_unsynced);
    ASSERT_GE(shim_headers, 2);
    ASSERT_EQ(shim_frames_over_unsynced, 0);
    ASSERT_EQ(sk_journal_sync(j), 0);
    sk_journal_close(j);
    shim_remove();
    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    loaded_t l = {0};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, NULL, NULL, &l), 0);
    ASSERT_EQ(l.orders, BATCH * BATCHES);
    sk_journal_close(j);
    rm_rf(dir);
}

SK_TEST(test_open_errors)
{
    char dir[256], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    /* A data dir under a regular file cannot be created. */
    char file[300], under[320];
    snprintf(file, sizeof(file), "%s/plain", dir);
    FILE *f = fopen(file, "w");
    ASSERT_TRUE(f != NULL);
    fputs("not a directory\n", f);
    fclose(f);
    snprintf(under, sizeof(under), "%s/data", file);
    ASSERT_TRUE(sk_journal_open(under, err, sizeof(err)) == NULL);
    ASSERT_TRUE(strstr(err, under) != NULL);
    ASSERT_TRUE(strchr(err, '\n') == NULL);
    /* A file that is not a database. */
    char data[300], db[340];
    snprintf(data, sizeof(data), "%s/garbage", dir);
    ASSERT_EQ(mkdir(data, 0755), 0);
    snprintf(db, sizeof(db), "%s/seckill.db", data);
    f = fopen(db, "w");
    ASSERT_TRUE(f != NULL);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database, just some text\n", f);
    fclose(f);
    err[0] = '\0';
    ASSERT_TRUE(sk_journal_open(data, err, sizeof(err)) == NULL);
    ASSERT_TRUE(err[0] != '\0');
    rm_rf(dir);
}

/* The sale's last stored seq as the file says (-1 when the read fails). */
static int64_t last_seq_of(sk_journal_t *j, const char *sale)
{
    uint64_t last;
    return sk_journal_last_seq(j, sale, &last) == 0 ? (int64_t)last : -1;
}

static sk_journal_fault_t fail_at;
static bool failing;

static bool fault(void *arg, sk_journal_fault_t at)
{
    (void)arg;
    return failing && at == fail_at;
}

SK_TEST(test_last_seq_and_faults)
{
    char dir[256], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    sk_journal_set_fault(j, fault, NULL);
    sk_journal_sale_t a = {"a", "A", 10, 0, 1, 1, 1}, b = {"b", "B", 10, 0, 1, 1, 2};
    ASSERT_EQ(sk_journal_put_sale(j, &a), 0);
    ASSERT_EQ(sk_journal_put_sale(j, &b), 0);
    uint64_t last = 99;
    ASSERT_EQ(last_seq_of(j, "a"), 0);
    sk_journal_order_t one[] = {{"a", 1, "u1", "", 1}, {"a", 2, "u2", "", 1}, {"b", 1, "u3", "", 1}};
    ASSERT_EQ(sk_journal_put_orders(j, one, 3), 0);
    ASSERT_EQ(last_seq_of(j, "a"), 2);
    ASSERT_EQ(last_seq_of(j, "b"), 1);
    ASSERT_EQ(last_seq_of(j, "nosuch"), 0);

    /* A failed COMMIT stores nothing. */
    failing = true;
    fail_at = SK_JOURNAL_FAULT_COMMIT;
    sk_journal_order_t two[] = {{"a", 3, "u4", "", 2}};
    ASSERT_EQ(sk_journal_put_orders(j, two, 1), -EIO);
    failing = false;
    ASSERT_EQ(last_seq_of(j, "a"), 2);
    /* A commit reported failed after it reached the disk: -EIO, and the orders are there. */
    failing = true;
    fail_at = SK_JOURNAL_FAULT_AFTER_COMMIT;
    ASSERT_EQ(sk_journal_put_orders(j, two, 1), -EIO);
    failing = false;
    ASSERT_EQ(last_seq_of(j, "a"), 3);
    /* A batch that does not continue a sale's numbering is refused whole: the same seq
     * again, a gap, an overlap, a sale's first order that is not its seq 1, even beside
     * a sale whose orders are right. */
    ASSERT_EQ(sk_journal_put_orders(j, two, 1), -EIO);
    sk_journal_order_t gap[] = {{"b", 2, "u5", "", 2}, {"a", 5, "u5", "", 2}};
    ASSERT_EQ(sk_journal_put_orders(j, gap, 2), -EIO);
    sk_journal_order_t overlap[] = {{"b", 1, "u6", "", 2}, {"b", 2, "u7", "", 2}};
    ASSERT_EQ(sk_journal_put_orders(j, overlap, 2), -EIO);
    sk_journal_order_t unknown[] = {{"c", 2, "u8", "", 2}};
    ASSERT_EQ(sk_journal_put_orders(j, unknown, 1), -EIO);
    ASSERT_EQ(last_seq_of(j, "b"), 1);
    ASSERT_EQ(last_seq_of(j, "c"), 0);
    failing = true;
    fail_at = SK_JOURNAL_FAULT_LAST_SEQ;
    ASSERT_EQ(sk_journal_last_seq(j, "a", &last), -EIO);
    failing = false;
    sk_journal_close(j);

    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    loaded_t l = {0};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, NULL, NULL, &l), 0);
    ASSERT_EQ(l.orders, 4);
    ASSERT_STR_EQ(l.users[3], "u4");
    /* After the load the journal knows where each sale ends. */
    ASSERT_EQ(sk_journal_put_orders(j, two, 1), -EIO);
    sk_journal_order_t next[] = {{"a", 4, "u9", "", 3}};
    ASSERT_EQ(sk_journal_put_orders(j, next, 1), 0);
    ASSERT_EQ(sk_journal_put_orders(j, next, 1), -EIO);
    sk_journal_close(j);
    /* Without a load, it reads a sale's end from the file when it first needs it. */
    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    ASSERT_EQ(sk_journal_put_orders(j, next, 1), -EIO);
    sk_journal_order_t after[] = {{"a", 5, "u10", "", 4}, {"b", 2, "u11", "", 4}};
    ASSERT_EQ(sk_journal_put_orders(j, after, 2), 0);
    ASSERT_EQ(last_seq_of(j, "a"), 5);
    sk_journal_close(j);
    rm_rf(dir);
}

/* ---- version 2: transitions, quantities, windows ---------------------------------------- */

/* Everything replayed, in the order it came, as text lines. */
typedef struct {
    char lines[64][200];
    int n;
} trace_t;

static int trace_sale(void *arg, const sk_journal_sale_t *s)
{
    trace_t *t = arg;
    snprintf(t->lines[t->n++ % 64], 200, "sale %s q%lld w%lld", s->id, (long long)s->max_quantity,
             (long long)s->payment_window_ms);
    return 0;
}

static int trace_order(void *arg, const sk_journal_order_t *o)
{
    trace_t *t = arg;
    snprintf(t->lines[t->n++ % 64], 200, "order %s/%llu %s %s x%u at %lld by %lld", o->sale_id,
             (unsigned long long)o->seq, o->user_id, o->request_id, o->quantity, (long long)o->created_at,
             (long long)o->pay_by);
    return 0;
}

static int trace_event(void *arg, const sk_journal_event_t *e)
{
    trace_t *t = arg;
    snprintf(t->lines[t->n++ % 64], 200, "%s %s/%llu at %lld%s%s", sk_order_event_name(e->kind), e->sale_id,
             (unsigned long long)e->seq, (long long)e->at, e->arg ? " " : "", e->arg ? e->arg : "");
    return 0;
}

/* The journal in dir, opened and loaded: what it replayed in *t. */
static sk_journal_t *open_traced(const char *dir, trace_t *t)
{
    char err[256] = "";
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    if (!j)
        SK_FAIL_AT("open: %s", err);
    memset(t, 0, sizeof(*t));
    ASSERT_EQ(sk_journal_load(j, trace_sale, trace_order, trace_event, NULL, t), 0);
    return j;
}

/* One column of one row of a query on the file, as text ("" for NULL). */
static void query1(const char *dir, const char *sql, char *out, size_t cap)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/seckill.db", dir);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        SK_FAIL_AT("%s: %s", sql, sqlite3_errmsg(db));
    out[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* One order of a row as the ledger names it: its ids' lengths given (0: measured). */
static sk_journal_order_t jo(const char *sale, uint64_t seq, const char *user, const char *req, uint32_t q, bool lens)
{
    return (sk_journal_order_t){
        sale, seq, user, req, 7, 0, q, lens ? (uint16_t)strlen(user) : 0, lens ? (uint16_t)strlen(req) : 0};
}

SK_TEST(test_order_rows_text)
{
    /* The rows' JSON byte for byte, as the load and the orders view read it: plain ids
     * and escaped ones, an empty request id, quantities above 1, the ids' lengths given
     * or not; one sale's batch, then two sales interleaved with
     * one of them named by two different pointers (grouped by name, not by pointer; the
     * rows in the order each sale first appears). */
    char dir[256];
    sk_journal_t *j = open_fresh(dir, sizeof(dir));
    sk_journal_sale_t a = {"a", "A", 100, 0, 1, 5, 1}, b = {"b", "B", 100, 0, 1, 5, 1};
    ASSERT_EQ(sk_journal_put_sale(j, &a), 0);
    ASSERT_EQ(sk_journal_put_sale(j, &b), 0);
    sk_journal_order_t one[] = {jo("a", 1, "u1", "r1", 1, true), jo("a", 2, "plain-user-0123456789", "", 3, true),
                                jo("a", 3, "v\"w", "x\\", 1, true), jo("a", 4, "u4", "r4", 2, false),
                                jo("a", 5, "u5", "", 1, false)};
    ASSERT_EQ(sk_journal_put_orders(j, one, 5), 0);
    char a_copy[] = "a";
    sk_journal_order_t two[] = {jo("b", 1, "b1", "rb1", 1, true), jo(a_copy, 6, "a6", "r", 1, true),
                                jo("b", 2, "b2", "", 4, true), jo("a", 7, "a7-0123456789abcdef", "r7", 2, true)};
    ASSERT_EQ(sk_journal_put_orders(j, two, 4), 0);
    sk_journal_close(j);

    char v[1024];
    query1(dir,
           "SELECT group_concat(sale_id || first_seq || 'x' || n || ' ' || orders, ' | ') FROM (SELECT * FROM "
           "order_batches ORDER BY lsn)",
           v, sizeof(v));
    ASSERT_STR_EQ(v, "a1x5 [[\"u1\",\"r1\"],[\"plain-user-0123456789\",\"\",3],[\"v\\\"w\",\"x\\\\\"],"
                     "[\"u4\",\"r4\",2],[\"u5\",\"\"]] | "
                     "b1x2 [[\"b1\",\"rb1\"],[\"b2\",\"\",4]] | "
                     "a6x2 [[\"a6\",\"r\"],[\"a7-0123456789abcdef\",\"r7\",2]]");
    query1(dir,
           "SELECT group_concat(order_id || ':' || user_id || ':' || request_id || ':' || quantity, ' ') FROM (SELECT "
           "* FROM orders ORDER BY sale_id, seq)",
           v, sizeof(v));
    ASSERT_STR_EQ(v, "a-0000000001:u1:r1:1 a-0000000002:plain-user-0123456789::3 a-0000000003:v\"w:x\\:1 "
                     "a-0000000004:u4:r4:2 a-0000000005:u5::1 a-0000000006:a6:r:1 "
                     "a-0000000007:a7-0123456789abcdef:r7:2 b-0000000001:b1:rb1:1 b-0000000002:b2::4");
    rm_rf(dir);
}

/* The points failing in test_sale_write_in_doubt: bit `at` set. */
static unsigned fail_mask;

static bool fault_mask(void *arg, sk_journal_fault_t at)
{
    (void)arg;
    return (fail_mask >> at) & 1u;
}

/* How many sales the file holds with this id. */
static int sales_named(const char *dir, const char *id)
{
    char sql[128], n[16];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM sales WHERE id = '%s'", id);
    query1(dir, sql, n, sizeof(n));
    return atoi(n);
}

SK_TEST(test_sale_write_in_doubt)
{
    /* A sale's write that reports failure: the file says whether it took. Stored, it
     * stands (0, and its orders may follow); not stored, -EIO and the id is free; the
     * file cannot be asked: SK_JOURNAL_IN_DOUBT, stored or not. */
    char dir[256];
    sk_journal_t *j = open_fresh(dir, sizeof(dir));
    sk_journal_set_fault(j, fault_mask, NULL);
    sk_journal_sale_t a = {"a", "A", 10, 0, 1, 1, 1}, b = {"b", "B", 10, 0, 1, 1, 2}, c = {"c", "C", 10, 0, 1, 1, 3},
                      d = {"d", "D", 10, 0, 1, 1, 4};

    fail_mask = 1u << SK_JOURNAL_FAULT_SALE_COMMIT;
    ASSERT_EQ(sk_journal_put_sale(j, &a), -EIO);
    fail_mask = 0;
    ASSERT_EQ(sales_named(dir, "a"), 0);
    ASSERT_EQ(sk_journal_put_sale(j, &a), 0); /* the id was free */

    uint64_t commits = sk_journal_commits(j);
    fail_mask = 1u << SK_JOURNAL_FAULT_SALE_AFTER_COMMIT;
    ASSERT_EQ(sk_journal_put_sale(j, &b), 0);
    fail_mask = 0;
    ASSERT_EQ(sales_named(dir, "b"), 1);
    ASSERT_TRUE(sk_journal_commits(j) > commits); /* a sync is owed for it */
    sk_journal_order_t one[] = {{"b", 1, "u1", "", 1}};
    ASSERT_EQ(sk_journal_put_orders(j, one, 1), 0); /* its numbering starts at 1 */
    ASSERT_EQ(sk_journal_put_sale(j, &b), -EEXIST);

    fail_mask = 1u << SK_JOURNAL_FAULT_SALE_AFTER_COMMIT | 1u << SK_JOURNAL_FAULT_LAST_SEQ;
    ASSERT_EQ(sk_journal_put_sale(j, &c), SK_JOURNAL_IN_DOUBT);
    fail_mask = 0;
    ASSERT_EQ(sales_named(dir, "c"), 1);
    /* Not stored, and the file cannot be asked: in doubt too (not "free"), and a later
     * write of the id finds it free. */
    fail_mask = 1u << SK_JOURNAL_FAULT_SALE_COMMIT | 1u << SK_JOURNAL_FAULT_LAST_SEQ;
    ASSERT_EQ(sk_journal_put_sale(j, &d), SK_JOURNAL_IN_DOUBT);
    fail_mask = 0;
    ASSERT_EQ(sales_named(dir, "d"), 0);
    ASSERT_EQ(sk_journal_put_sale(j, &d), 0);
    sk_journal_close(j);

    loaded_t l;
    reload(dir, &l);
    ASSERT_EQ(l.sales, 4);
    ASSERT_EQ(l.orders, 1);
    rm_rf(dir);
}

SK_TEST(test_load_knows_each_sale_end)
{
    /* What the load tells the journal of each sale's last seq: a sale without orders
     * ends at 0 (not read from the file at its first batch: a scan of every row since
     * it was made), and a load that stopped half-way tells nothing (its sales do not end
     * where it stopped reading). */
    char dir[256], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    sk_journal_sale_t a = {"a", "A", 10, 0, 1, 1, 1}, b = {"b", "B", 10, 0, 1, 1, 2}, c = {"c", "C", 10, 0, 1, 1, 3};
    ASSERT_EQ(sk_journal_put_sale(j, &a), 0);
    ASSERT_EQ(sk_journal_put_sale(j, &b), 0);
    ASSERT_EQ(sk_journal_put_sale(j, &c), 0);
    sk_journal_order_t first[] = {{"a", 1, "u1", "", 1}, {"a", 2, "u2", "", 1}};
    sk_journal_order_t second[] = {{"a", 3, "u3", "", 2}, {"b", 1, "u4", "", 2}};
    ASSERT_EQ(sk_journal_put_orders(j, first, 2), 0);
    ASSERT_EQ(sk_journal_put_orders(j, second, 2), 0);
    sk_journal_close(j);

    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    loaded_t l = {.stop_after = 2};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, NULL, NULL, &l), 7);
    /* Sale a's seq 3 is in the file: a second one is refused, the next one taken. */
    sk_journal_order_t again[] = {{"a", 3, "u5", "", 3}}, next[] = {{"a", 4, "u5", "", 3}};
    ASSERT_EQ(sk_journal_put_orders(j, again, 1), -EIO);
    ASSERT_EQ(sk_journal_put_orders(j, next, 1), 0);
    sk_journal_close(j);

    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    l = (loaded_t){0};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, NULL, NULL, &l), 0);
    ASSERT_EQ(l.orders, 5);
    sk_journal_set_fault(j, fault, NULL);
    failing = true;
    fail_at = SK_JOURNAL_FAULT_LAST_SEQ; /* nothing is read back from the file */
    sk_journal_order_t more[] = {{"c", 1, "u6", "", 4}, {"b", 2, "u7", "", 4}, {"a", 5, "u8", "", 4}};
    ASSERT_EQ(sk_journal_put_orders(j, more, 3), 0);
    failing = false;
    ASSERT_EQ(last_seq_of(j, "c"), 1);
    sk_journal_close(j);
    rm_rf(dir);
}

SK_TEST(test_commit_failed_for_real)
{
    /* A COMMIT that fails for real (the WAL may not grow: the file size limit) rolls the
     * batch back. The journal then reads the sale's end from the file again: the seqs of
     * the failed batch are the next ones still, and once taken they are refused. */
    char dir[256], err[256] = "", wal[300];
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    sk_journal_sale_t a = {"a", "A", 100000, 0, 1, 100000, 1};
    ASSERT_EQ(sk_journal_put_sale(j, &a), 0);
    sk_journal_order_t first[] = {{"a", 1, "u1", "", 1}, {"a", 2, "u2", "", 1}};
    ASSERT_EQ(sk_journal_put_orders(j, first, 2), 0);
    enum { N = 4000 };
    static sk_journal_order_t big[N];
    static char users[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(users[i], sizeof(users[i]), "user-%d", i);
        big[i] = (sk_journal_order_t){"a", (uint64_t)i + 3, users[i], "", 2};
    }
    snprintf(wal, sizeof(wal), "%s/seckill.db-wal", dir);
    struct stat st;
    ASSERT_EQ(stat(wal, &st), 0);
    struct rlimit old, lim;
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)st.st_size + 1024; /* the big batch takes ~64 KiB */
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = sk_journal_put_orders(j, big, N);
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    ASSERT_EQ(rc, -EIO);
    ASSERT_EQ(last_seq_of(j, "a"), 2);
    ASSERT_EQ(sk_journal_put_orders(j, big, N), 0);
    ASSERT_EQ(sk_journal_put_orders(j, big, 1), -EIO);
    sk_journal_order_t next[] = {{"a", N + 3, "late", "", 3}};
    ASSERT_EQ(sk_journal_put_orders(j, next, 1), 0);
    sk_journal_close(j);
    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    loaded_t l = {0};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, NULL, NULL, &l), 0);
    ASSERT_EQ(l.orders, N + 3);
    sk_journal_close(j);
    rm_rf(dir);
}

SK_TEST(test_transitions_round_trip)
{
    char dir[256], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    sk_journal_sale_t sa = {"w-1", "Window", 10, 0, 99999, 4, 5, 2, 100};
    ASSERT_EQ(sk_journal_put_sale(j, &sa), 0);
    sk_journal_order_t b1[] = {
        {"w-1", 1, "a", "ra", 1000, 1100, 1},
        {"w-1", 2, "b", "rb", 1000, 1100, 2},
        {"w-1", 3, "c", "", 1000, 1100, 1},
        {"w-1", 4, "d", "rd", 1000, 1100, 1},
    };
    uint64_t first, last;
    ASSERT_EQ(sk_journal_put_batch(j, b1, 4, NULL, 0, NULL, 0, &first, &last), 0);
    ASSERT_EQ(last, first); /* one row */
    /* The next batch, in decision order: a payment, a cancel, an expiry (decided first in
     * the ledger, so any order), a refund of what it just paid, and a new order. The
     * rows go: expire, cancel, pay, refund, orders. */
    sk_journal_event_t ev[] = {
        {"w-1", 1, SK_EV_PAY, 1050, "pay-1"},
        {"w-1", 2, SK_EV_CANCEL, 1050, "buyer"},
        {"w-1", 3, SK_EV_EXPIRE, 1050, NULL},
        {"w-1", 1, SK_EV_REFUND, 1050, NULL},
    };
    sk_journal_order_t b2[] = {{"w-1", 5, "e", "re", 1050, 1150, 1}};
    uint64_t f2, l2;
    ASSERT_EQ(sk_journal_put_batch(j, b2, 1, ev, 4, NULL, 0, &f2, &l2), 0);
    ASSERT_EQ(f2, last + 1);
    ASSERT_EQ(l2, f2 + 4); /* four event rows and one order row */
    bool found = false;
    ASSERT_EQ(sk_journal_has_lsn(j, f2, l2, &found), 0);
    ASSERT_TRUE(found);
    ASSERT_EQ(sk_journal_has_lsn(j, l2 + 1, l2 + 10, &found), 0);
    ASSERT_TRUE(!found);
    /* Nothing to write: no lsn taken, nothing stored. */
    uint64_t f3, l3;
    ASSERT_EQ(sk_journal_put_batch(j, NULL, 0, NULL, 0, NULL, 0, &f3, &l3), 0);
    ASSERT_TRUE(f3 > l3);
    sk_journal_close(j);

    trace_t t;
    j = open_traced(dir, &t);
    ASSERT_EQ(t.n, 10);
    ASSERT_STR_EQ(t.lines[0], "sale w-1 q2 w100");
    ASSERT_STR_EQ(t.lines[1], "order w-1/1 a ra x1 at 1000 by 1100");
    ASSERT_STR_EQ(t.lines[2], "order w-1/2 b rb x2 at 1000 by 1100");
    ASSERT_STR_EQ(t.lines[4], "order w-1/4 d rd x1 at 1000 by 1100");
    ASSERT_STR_EQ(t.lines[5], "expire w-1/3 at 1050");
    ASSERT_STR_EQ(t.lines[6], "cancel w-1/2 at 1050 buyer");
    ASSERT_STR_EQ(t.lines[7], "pay w-1/1 at 1050 pay-1");
    ASSERT_STR_EQ(t.lines[8], "refund w-1/1 at 1050");
    ASSERT_STR_EQ(t.lines[9], "order w-1/5 e re x1 at 1050 by 1150");
    /* A new batch after the reopen continues the lsns. */
    sk_journal_event_t ev2[] = {{"w-1", 4, SK_EV_PAY, 1060, "pay-4"}};
    ASSERT_EQ(sk_journal_put_batch(j, NULL, 0, ev2, 1, NULL, 0, &f3, &l3), 0);
    ASSERT_EQ(f3, l2 + 1);
    sk_journal_close(j);

    /* The orders view: every order's current state. */
    char v[300];
    query1(dir, "SELECT group_concat(order_id || ':' || state || ':' || quantity, ' ') FROM orders", v, sizeof(v));
    ASSERT_STR_EQ(v, "w-1-0000000001:refunded:1 w-1-0000000002:cancelled:2 w-1-0000000003:expired:1 "
                     "w-1-0000000004:confirmed:1 w-1-0000000005:reserved:1");
    query1(dir, "SELECT payment_id || ' ' || paid_at || ' ' || closed_at || ' ' || pay_by FROM orders WHERE seq = 1", v,
           sizeof(v));
    ASSERT_STR_EQ(v, "pay-1 1050 1050 1100");
    query1(dir, "SELECT coalesce(paid_at, 'null') || ' ' || closed_at FROM orders WHERE seq = 3", v, sizeof(v));
    ASSERT_STR_EQ(v, "null 1050");
    query1(dir, "PRAGMA user_version", v, sizeof(v));
    ASSERT_STR_EQ(v, "4");
    rm_rf(dir);
}

SK_TEST(test_events_keep_their_own_times)
{
    /* A batch's payments are judged by when each was received, so one sale's events of
     * one kind may carry different times: each time gets a row of its own, in time order
     * within the kind, and the replay and the orders view give each its own. */
    char dir[256], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    sk_journal_sale_t sa = {"t-1", "Times", 10, 0, 99999, 4, 5, 1, 1000};
    ASSERT_EQ(sk_journal_put_sale(j, &sa), 0);
    sk_journal_order_t b1[] = {{"t-1", 1, "a", "ra", 0, 1000, 1},
                               {"t-1", 2, "b", "rb", 0, 1000, 1},
                               {"t-1", 3, "c", "rc", 0, 1000, 1},
                               {"t-1", 4, "d", "rd", 0, 1000, 1},
                               {"t-1", 5, "e", "re", 0, 1000, 1}};
    uint64_t first, last;
    ASSERT_EQ(sk_journal_put_batch(j, b1, 5, NULL, 0, NULL, 0, &first, &last), 0);
    /* Receipts stamped by two workers, in no order. */
    sk_journal_event_t ev[] = {
        {"t-1", 3, SK_EV_PAY, 1000, "p3"}, {"t-1", 1, SK_EV_PAY, 998, "p1"},     {"t-1", 4, SK_EV_PAY, 1000, "p4"},
        {"t-1", 2, SK_EV_PAY, 998, "p2"},  {"t-1", 5, SK_EV_EXPIRE, 1001, NULL},
    };
    uint64_t f2, l2;
    ASSERT_EQ(sk_journal_put_batch(j, NULL, 0, ev, 5, NULL, 0, &f2, &l2), 0);
    ASSERT_EQ(l2, f2 + 2); /* expire at 1001; pay at 998 (two); pay at 1000 (two) */
    sk_journal_close(j);

    trace_t t;
    j = open_traced(dir, &t);
    ASSERT_EQ(t.n, 11);
    ASSERT_STR_EQ(t.lines[6], "expire t-1/5 at 1001");
    ASSERT_STR_EQ(t.lines[7], "pay t-1/1 at 998 p1");
    ASSERT_STR_EQ(t.lines[8], "pay t-1/2 at 998 p2");
    ASSERT_STR_EQ(t.lines[9], "pay t-1/3 at 1000 p3");
    ASSERT_STR_EQ(t.lines[10], "pay t-1/4 at 1000 p4");
    sk_journal_close(j);
    char v[300];
    query1(dir, "SELECT group_concat(seq || ':' || state || ':' || coalesce(paid_at, closed_at), ' ') FROM orders", v,
           sizeof(v));
    ASSERT_STR_EQ(v, "1:confirmed:998 2:confirmed:998 3:confirmed:1000 4:confirmed:1000 5:expired:1001");
    rm_rf(dir);
}

SK_TEST(test_grouping_many_sales)
{
    /* A batch interleaving sales and kinds: one row per (kind, sale), each in its own
     * decision order, and a sale's orders still consecutive. */
    char dir[256], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    char ids[3][8] = {"x", "y", "z"};
    for (int i = 0; i < 3; i++) {
        sk_journal_sale_t s = {ids[i], ids[i], 100, 0, 99999, 10, 1 + i, 1, 1000};
        ASSERT_EQ(sk_journal_put_sale(j, &s), 0);
    }
    sk_journal_order_t o[9];
    for (int i = 0; i < 9; i++)
        o[i] = (sk_journal_order_t){ids[i % 3], (uint64_t)(i / 3 + 1), "u", "", 5, 1005, 1};
    uint64_t f, l;
    ASSERT_EQ(sk_journal_put_batch(j, o, 9, NULL, 0, NULL, 0, &f, &l), 0);
    ASSERT_EQ(l - f + 1, 3);
    sk_journal_event_t ev[6];
    for (int i = 0; i < 6; i++)
        ev[i] = (sk_journal_event_t){ids[i % 3], (uint64_t)(3 - i / 3), i % 2 ? SK_EV_CANCEL : SK_EV_EXPIRE, 2000,
                                     i % 2 ? "admin" : NULL};
    ASSERT_EQ(sk_journal_put_batch(j, NULL, 0, ev, 6, NULL, 0, &f, &l), 0);
    ASSERT_EQ(l - f + 1, 6); /* x, y, z each with an expire and a cancel row */
    sk_journal_close(j);
    char v[300];
    query1(dir, "SELECT group_concat(sale_id || kind || events, ' ') FROM (SELECT * FROM order_events ORDER BY lsn)", v,
           sizeof(v));
    ASSERT_STR_EQ(v, "xexpire[[3]] yexpire[[2]] zexpire[[3]] xcancel[[2,\"admin\"]] ycancel[[3,\"admin\"]] "
                     "zcancel[[2,\"admin\"]]");
    rm_rf(dir);
}

SK_TEST(test_many_sales_read_in_one_batch)
{
    /* A batch of 300 sales the journal knows nothing of yet (opened without a load):
     * each sale's end is read from the file while the batch goes on, and the journal's
     * table of sales grows and is rebuilt under it more than once; each sale still ends
     * where its rows do. */
    enum { N = 300 };
    char dir[256], err[256] = "";
    static char ids[N][8], users[N][8];
    static sk_journal_order_t o[N];
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "s%d", i);
        snprintf(users[i], sizeof(users[i]), "u%d", i);
        sk_journal_sale_t s = {ids[i], ids[i], 100, 0, 99999, 10, 1 + i};
        ASSERT_EQ(sk_journal_put_sale(j, &s), 0);
    }
    sk_journal_close(j);
    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    for (uint64_t seq = 1; seq <= 2; seq++) {
        for (int i = 0; i < N; i++)
            o[i] = (sk_journal_order_t){ids[N - 1 - i], seq, users[i], "", 5};
        ASSERT_EQ(sk_journal_put_orders(j, o, N), 0);
        ASSERT_EQ(sk_journal_put_orders(j, o, N), -EIO); /* the same seqs again */
    }
    sk_journal_order_t one[] = {{ids[7], 3, "late", "", 6}};
    ASSERT_EQ(sk_journal_put_orders(j, one, 1), 0);
    sk_journal_close(j);
    char v[300];
    query1(dir, "SELECT count(*) || ' ' || sum(n) || ' ' || max(first_seq) FROM order_batches", v, sizeof(v));
    ASSERT_STR_EQ(v, "601 601 3");
    rm_rf(dir);
}

/* The schema of version 1, as that seckill wrote it. */
static const char v1_schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE sales(id TEXT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL, starts_at INTEGER NOT NULL,"
    "  ends_at INTEGER NOT NULL, per_user_limit INTEGER NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE order_batches(id INTEGER PRIMARY KEY, sale_id TEXT NOT NULL, first_seq INTEGER NOT NULL,"
    "  n INTEGER NOT NULL, created_at INTEGER NOT NULL, orders TEXT NOT NULL, UNIQUE (sale_id, first_seq));"
    "CREATE VIEW orders AS SELECT b.sale_id AS sale_id, b.first_seq + j.key AS seq, j.value ->> 0 AS user_id,"
    "  j.value ->> 1 AS request_id, b.created_at AS created_at,"
    "  b.sale_id || '-' || printf('%010d', b.first_seq + j.key) AS order_id"
    "  FROM order_batches b, json_each(b.orders) j;"
    "INSERT INTO sales VALUES('old', 'Old sale', 5, 10, 20000000000000, 2, 10);"
    "INSERT INTO sales VALUES('old-2', 'Another', 3, 10, 20000000000000, 1, 11);"
    "INSERT INTO order_batches VALUES(1, 'old', 1, 2, 100, '[[\"u1\",\"r1\"],[\"u2\",\"\"]]');"
    "INSERT INTO order_batches VALUES(2, 'old-2', 1, 1, 101, '[[\"u1\",\"x\"]]');"
    "INSERT INTO order_batches VALUES(3, 'old', 3, 1, 102, '[[\"u1\",\"r2\"]]');";

SK_TEST(test_v1_migrated_in_place)
{
    char dir[256], path[300];
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    snprintf(path, sizeof(path), "%s/seckill.db", dir);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, v1_schema, NULL, NULL, &msg) != SQLITE_OK)
        SK_FAIL_AT("v1 schema: %s", msg);
    sqlite3_close(db);

    trace_t t;
    sk_journal_t *j = open_traced(dir, &t);
    ASSERT_EQ(t.n, 6);
    ASSERT_STR_EQ(t.lines[0], "sale old q1 w0");
    ASSERT_STR_EQ(t.lines[2], "order old/1 u1 r1 x1 at 100 by 0");
    ASSERT_STR_EQ(t.lines[3], "order old/2 u2  x1 at 100 by 0");
    ASSERT_STR_EQ(t.lines[4], "order old-2/1 u1 x x1 at 101 by 0");
    ASSERT_STR_EQ(t.lines[5], "order old/3 u1 r2 x1 at 102 by 0");
    ASSERT_EQ(last_seq_of(j, "old"), 3);
    /* It goes on as a version 4 file: lsns after the old batches. */
    sk_journal_order_t o = {"old", 4, "u3", "r", 200, 0, 2};
    uint64_t f, l;
    ASSERT_EQ(sk_journal_put_batch(j, &o, 1, NULL, 0, NULL, 0, &f, &l), 0);
    ASSERT_EQ(f, 4);
    sk_journal_event_t ev = {"old", 1, SK_EV_REFUND, 300, NULL};
    ASSERT_EQ(sk_journal_put_batch(j, NULL, 0, &ev, 1, NULL, 0, &f, &l), 0);
    sk_journal_close(j);
    char v[300];
    query1(dir, "PRAGMA user_version", v, sizeof(v));
    ASSERT_STR_EQ(v, "4");
    query1(dir, "SELECT group_concat(order_id || ':' || state || ':' || quantity, ' ') FROM orders WHERE sale_id='old'",
           v, sizeof(v));
    ASSERT_STR_EQ(v, "old-0000000001:refunded:1 old-0000000002:confirmed:1 old-0000000003:confirmed:1 "
                     "old-0000000004:confirmed:2");
    /* Opened again: nothing left to migrate, the same replay. */
    j = open_traced(dir, &t);
    ASSERT_EQ(t.n, 8);
    ASSERT_STR_EQ(t.lines[7], "refund old/1 at 300");
    sk_journal_close(j);
    rm_rf(dir);
}

/* A version 3 file in dir: sales a and b, a's orders 1-3 (reserved), b's order 1, and
 * order_batches with its UNIQUE (sale_id, first_seq) index. Made by writing a file and
 * putting the index back the way version 3 had it; extra_sql runs in the same
 * transaction (what an operator added to the file). */
static void make_v3_file(char *dir, size_t dir_size, const char *extra_sql)
{
    char path[300], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, dir_size, "store"));
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    sk_journal_sale_t a = {"a", "A", 100, 0, 99999, 10, 1, 1, 1000}, b = {"b", "B", 100, 0, 99999, 10, 2, 1, 0};
    ASSERT_EQ(sk_journal_put_sale(j, &a), 0);
    ASSERT_EQ(sk_journal_put_sale(j, &b), 0);
    sk_journal_order_t o1[] = {
        {"a", 1, "u1", "r1", 5, 1005, 1}, {"a", 2, "u2", "", 5, 1005, 2}, {"b", 1, "u1", "x", 5, 0, 1}};
    sk_journal_order_t o2[] = {{"a", 3, "u3", "r3", 6, 1006, 1}};
    uint64_t f, l;
    ASSERT_EQ(sk_journal_put_batch(j, o1, 3, NULL, 0, NULL, 0, &f, &l), 0);
    ASSERT_EQ(sk_journal_put_batch(j, o2, 1, NULL, 0, NULL, 0, &f, &l), 0);
    sk_journal_close(j);
    snprintf(path, sizeof(path), "%s/seckill.db", dir);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db,
                     "BEGIN; DROP VIEW orders;"
                     "CREATE TABLE v3(lsn INTEGER PRIMARY KEY, sale_id TEXT NOT NULL, first_seq INTEGER NOT NULL,"
                     "  n INTEGER NOT NULL, created_at INTEGER NOT NULL, pay_by INTEGER, orders TEXT NOT NULL,"
                     "  UNIQUE (sale_id, first_seq));"
                     "INSERT INTO v3 SELECT * FROM order_batches; DROP TABLE order_batches;"
                     "ALTER TABLE v3 RENAME TO order_batches;"
                     "CREATE VIEW orders AS SELECT 1; PRAGMA user_version = 3;",
                     NULL, NULL, &msg) != SQLITE_OK ||
        (extra_sql && sqlite3_exec(db, extra_sql, NULL, NULL, &msg) != SQLITE_OK) ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
        SK_FAIL_AT("v3 file: %s", msg);
    sqlite3_close(db);
}

SK_TEST(test_v3_migrated_in_place)
{
    char dir[256];
    make_v3_file(dir, sizeof(dir), NULL);
    sk_journal_t *j;
    char v[300];
    query1(dir, "SELECT count(*) FROM sqlite_master WHERE tbl_name = 'order_batches' AND type = 'index'", v, sizeof(v));
    ASSERT_STR_EQ(v, "1");

    trace_t t;
    j = open_traced(dir, &t);
    ASSERT_EQ(t.n, 6);
    ASSERT_STR_EQ(t.lines[2], "order a/1 u1 r1 x1 at 5 by 1005");
    ASSERT_STR_EQ(t.lines[3], "order a/2 u2  x2 at 5 by 1005");
    ASSERT_STR_EQ(t.lines[4], "order b/1 u1 x x1 at 5 by 0");
    ASSERT_STR_EQ(t.lines[5], "order a/3 u3 r3 x1 at 6 by 1006");
    ASSERT_EQ(last_seq_of(j, "a"), 3);
    ASSERT_EQ(last_seq_of(j, "b"), 1);
    ASSERT_EQ(last_seq_of(j, "nope"), 0);
    sk_journal_close(j);
    query1(dir, "PRAGMA user_version", v, sizeof(v));
    ASSERT_STR_EQ(v, "4");
    query1(dir, "SELECT count(*) FROM sqlite_master WHERE tbl_name = 'order_batches' AND type = 'index'", v, sizeof(v));
    ASSERT_STR_EQ(v, "0");
    query1(dir, "SELECT group_concat(order_id || ':' || state || ':' || quantity, ' ') FROM orders", v, sizeof(v));
    ASSERT_STR_EQ(v, "a-0000000001:reserved:1 a-0000000002:reserved:2 b-0000000001:confirmed:1 "
                     "a-0000000003:reserved:1");
    rm_rf(dir);
}

SK_TEST(test_v3_migrated_with_the_operators_views)
{
    /* Views an operator made for reports, on order_batches and on the orders view: the
     * migration rebuilds order_batches and the orders view under the same names, and
     * neither the migration nor the views break on the way. */
    char dir[256], err[256] = "";
    make_v3_file(dir, sizeof(dir),
                 "CREATE VIEW per_sale AS SELECT sale_id, sum(n) AS n FROM order_batches GROUP BY sale_id;"
                 "CREATE VIEW reserved AS SELECT order_id FROM orders WHERE state = 'reserved';");
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    if (!j)
        SK_FAIL_AT("open: %s", err);
    sk_journal_close(j);
    char v[300];
    query1(dir, "PRAGMA user_version", v, sizeof(v));
    ASSERT_STR_EQ(v, "4");
    query1(dir, "SELECT group_concat(sale_id || ':' || n, ' ') FROM per_sale", v, sizeof(v));
    ASSERT_STR_EQ(v, "a:3 b:1");
    query1(dir, "SELECT group_concat(order_id, ' ') FROM reserved", v, sizeof(v));
    ASSERT_STR_EQ(v, "a-0000000001 a-0000000002 a-0000000003");
    rm_rf(dir);
}

SK_TEST(test_v2_migrated_in_place)
{
    /* A version 2 file: version 3's without the waiting rooms (the sales' queue columns,
     * queue_log). Migrated to 4 in one go, order_batches copied once. */
    char dir[256];
    make_v3_file(dir, sizeof(dir),
                 "DROP TABLE queue_log; ALTER TABLE sales DROP COLUMN queue;"
                 "ALTER TABLE sales DROP COLUMN queue_opens_at; ALTER TABLE sales DROP COLUMN admit_per_second;"
                 "ALTER TABLE sales DROP COLUMN admission_ttl_ms; ALTER TABLE sales DROP COLUMN pow_bits;"
                 "PRAGMA user_version = 2;");
    trace_t t;
    sk_journal_t *j = open_traced(dir, &t);
    ASSERT_EQ(t.n, 6);
    ASSERT_STR_EQ(t.lines[0], "sale a q1 w1000");
    ASSERT_STR_EQ(t.lines[5], "order a/3 u3 r3 x1 at 6 by 1006");
    ASSERT_EQ(last_seq_of(j, "a"), 3);
    sk_journal_order_t o = {"a", 4, "u4", "", 7, 1007, 1};
    ASSERT_EQ(sk_journal_put_orders(j, &o, 1), 0);
    ASSERT_EQ(sk_journal_put_orders(j, &o, 1), -EIO);
    sk_journal_close(j);
    char v[300];
    query1(dir, "PRAGMA user_version", v, sizeof(v));
    ASSERT_STR_EQ(v, "4");
    query1(dir, "SELECT count(*) FROM sqlite_master WHERE tbl_name = 'order_batches' AND type = 'index'", v, sizeof(v));
    ASSERT_STR_EQ(v, "0");
    query1(dir, "SELECT queue || admit_per_second || (SELECT count(*) FROM queue_log) FROM sales WHERE id = 'a'", v,
           sizeof(v));
    ASSERT_STR_EQ(v, "off1000");
    rm_rf(dir);
}

/* A new store has pages of 2 KiB; one made with SQLite's default (4 KiB, as every store
 * before) keeps them, and takes batches as before. */
SK_TEST(test_page_size_of_new_and_old_stores)
{
    char dir[256], v[300];
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    trace_t t;
    sk_journal_t *j = open_traced(dir, &t);
    sk_journal_order_t o = {"s", 1, "u1", "r1", 100, 0, 1};
    uint64_t f, l;
    ASSERT_EQ(sk_journal_put_batch(j, &o, 1, NULL, 0, NULL, 0, &f, &l), 0);
    sk_journal_close(j);
    query1(dir, "PRAGMA page_size", v, sizeof(v));
    ASSERT_STR_EQ(v, "2048");

    char old[256], path[300];
    ASSERT_TRUE(sk_test_temp_dir(old, sizeof(old), "store"));
    snprintf(path, sizeof(path), "%s/seckill.db", old);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; CREATE TABLE x(a);", NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    j = open_traced(old, &t);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        o.seq = seq;
        ASSERT_EQ(sk_journal_put_batch(j, &o, 1, NULL, 0, NULL, 0, &f, &l), 0);
    }
    sk_journal_close(j);
    query1(old, "PRAGMA page_size", v, sizeof(v));
    ASSERT_STR_EQ(v, "4096");
    j = open_traced(old, &t);
    ASSERT_EQ(last_seq_of(j, "s"), 3);
    sk_journal_close(j);
}

SK_TEST(test_newer_version_refused)
{
    char dir[256], path[300], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "store"));
    snprintf(path, sizeof(path), "%s/seckill.db", dir);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 5", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_TRUE(sk_journal_open(dir, err, sizeof(err)) == NULL);
    ASSERT_TRUE(strstr(err, "newer seckill") != NULL);
    rm_rf(dir);
}

SK_TEST(test_lsns_of_ten_thousand_sales)
{
    /* At the engine's limit of sales: a failed batch's lsns, handed out between sales'
     * writes, are never found among the sales' rows, the last sale's write in doubt
     * finds its own row (by its id), and asking about a batch reads no sales table. */
    char dir[256];
    sk_journal_t *j = open_fresh(dir, sizeof(dir));
    ASSERT_EQ(sk_journal_defer_sync(j), 0);
    sk_journal_set_fault(j, fault_mask, NULL);
    enum { SALES = 10000 };
    char id[32];
    uint64_t first = 0, last = 0;
    for (int i = 0; i < SALES; i++) {
        snprintf(id, sizeof(id), "sale-%05d", i);
        sk_journal_sale_t s = {id, "S", 10, 0, 1, 1, i};
        if (i == SALES - 1)
            fail_mask = 1u << SK_JOURNAL_FAULT_SALE_AFTER_COMMIT;
        ASSERT_EQ(sk_journal_put_sale(j, &s), 0);
        fail_mask = 0;
        if (i == SALES / 2) {
            sk_journal_order_t o[] = {{id, 1, "u", "r", 1}, {id, 2, "v", "", 2}};
            fail_mask = 1u << SK_JOURNAL_FAULT_COMMIT;
            ASSERT_EQ(sk_journal_put_batch(j, o, 2, NULL, 0, NULL, 0, &first, &last), -EIO);
            fail_mask = 0;
            ASSERT_TRUE(first <= last);
        }
    }
    bool found = true;
    uint64_t t0 = sk_mono_ns();
    for (int k = 0; k < 100; k++) {
        ASSERT_EQ(sk_journal_has_lsn(j, first, last, &found), 0);
        ASSERT_TRUE(!found);
    }
    uint64_t per = (sk_mono_ns() - t0) / 100;
    printf("  has_lsn over %d sales: %llu us a call\n", SALES, (unsigned long long)(per / 1000));
    ASSERT_EQ(sk_journal_sync(j), 0);
    sk_journal_close(j);
    loaded_t l;
    reload(dir, &l);
    ASSERT_EQ(l.sales, SALES);
    ASSERT_EQ(l.orders, 0);
    rm_rf(dir);
}

SK_TEST(test_full_batch_of_many_sales)
{
    /* A batch at its largest (4 096 orders) over 1 024 sales interleaved, each sale named
     * by a pointer of its own per order (grouped by name), with user and request ids at
     * their longest and their lengths given: one row per sale, its orders consecutive,
     * and every id read back whole. */
    char dir[256];
    sk_journal_t *j = open_fresh(dir, sizeof(dir));
    ASSERT_EQ(sk_journal_defer_sync(j), 0);
    enum { SALES = 1024, PER = 4, N = SALES * PER };
    static char ids[N][16], users[N][SK_USER_MAX + 1], reqs[N][SK_REQUEST_MAX + 1];
    for (int i = 0; i < SALES; i++) {
        snprintf(ids[i], sizeof(ids[i]), "m%04d", i);
        sk_journal_sale_t s = {ids[i], "M", 100, 0, 1, PER, 1};
        ASSERT_EQ(sk_journal_put_sale(j, &s), 0);
    }
    static sk_journal_order_t o[N];
    for (int i = 0; i < N; i++) {
        int sale = i % SALES;
        if (i >= SALES)
            snprintf(ids[i], sizeof(ids[i]), "m%04d", sale); /* the same name, another pointer */
        memset(users[i], 'u', SK_USER_MAX);
        memset(reqs[i], 'r', SK_REQUEST_MAX);
        snprintf(users[i], sizeof(users[i]), "%06d", i);
        users[i][6] = 'u'; /* 64 bytes: a number, then u's */
        snprintf(reqs[i], sizeof(reqs[i]), "%06d", i);
        reqs[i][6] = 'r';
        o[i] = (sk_journal_order_t){ids[i],        (uint64_t)(i / SALES + 1), users[i], reqs[i], 10, 0, 1, SK_USER_MAX,
                                    SK_REQUEST_MAX};
    }
    ASSERT_EQ(strlen(users[N - 1]), SK_USER_MAX);
    uint64_t f, l;
    uint64_t t0 = sk_mono_ns();
    ASSERT_EQ(sk_journal_put_batch(j, o, N, NULL, 0, NULL, 0, &f, &l), 0);
    printf("  a batch of %d orders over %d sales: %llu us\n", N, SALES,
           (unsigned long long)((sk_mono_ns() - t0) / 1000));
    ASSERT_EQ(l - f + 1, SALES);
    ASSERT_EQ(sk_journal_sync(j), 0);
    sk_journal_close(j);
    char v[256];
    query1(dir, "SELECT count(*) || ' ' || sum(n) || ' ' || min(n) || ' ' || max(n) FROM order_batches", v, sizeof(v));
    ASSERT_STR_EQ(v, "1024 4096 4 4");
    query1(dir,
           "SELECT count(*) || ' ' || sum(length(user_id) = 64 AND length(request_id) = 64) || ' ' || "
           "sum(CAST(substr(user_id, 1, 6) AS INTEGER) % 1024 + 1 = CAST(substr(sale_id, 2) AS INTEGER) + 1 "
           "AND CAST(substr(user_id, 1, 6) AS INTEGER) / 1024 + 1 = seq AND substr(user_id, 1, 6) = "
           "substr(request_id, 1, 6)) FROM orders",
           v, sizeof(v));
    ASSERT_STR_EQ(v, "4096 4096 4096");
    rm_rf(dir);
}

SK_TEST_MAIN(SK_RUN(test_round_trip); SK_RUN(test_events_keep_their_own_times); SK_RUN(test_order_rows_text);
             SK_RUN(test_batch_all_or_nothing); SK_RUN(test_many_batches); SK_RUN(test_wal_starts_over);
             SK_RUN(test_wal_restart_header_synced); SK_RUN(test_open_errors); SK_RUN(test_last_seq_and_faults);
             SK_RUN(test_sale_write_in_doubt); SK_RUN(test_load_knows_each_sale_end);
             SK_RUN(test_commit_failed_for_real); SK_RUN(test_transitions_round_trip); SK_RUN(test_grouping_many_sales);
             SK_RUN(test_many_sales_read_in_one_batch); SK_RUN(test_v1_migrated_in_place);
             SK_RUN(test_v2_migrated_in_place); SK_RUN(test_v3_migrated_in_place);
             SK_RUN(test_v3_migrated_with_the_operators_views); SK_RUN(test_newer_version_refused);
             SK_RUN(test_page_size_of_new_and_old_stores); SK_RUN(test_lsns_of_ten_thousand_sales);
             SK_RUN(test_full_batch_of_many_sales);)
