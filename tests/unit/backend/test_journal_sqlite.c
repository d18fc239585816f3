/* The SQLite journal behind the embedded ledger: sales and order batches survive a
 * close and reopen, each sale's orders in seq order; duplicates are refused without
 * storing anything. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "backend/journal.h"
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
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, &l), 0);
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
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, &l2), 7);
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
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, &l), 0);
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
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, &l), 0);
    ASSERT_EQ(l.orders, BATCH * BATCHES);
    ASSERT_STR_EQ(l.order_ids[63], "big/64");
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
    ASSERT_EQ(sk_journal_last_seq(j, "a", &last), 0);
    ASSERT_EQ(last, 0);
    sk_journal_order_t one[] = {{"a", 1, "u1", "", 1}, {"a", 2, "u2", "", 1}, {"b", 1, "u3", "", 1}};
    ASSERT_EQ(sk_journal_put_orders(j, one, 3), 0);
    ASSERT_EQ(sk_journal_last_seq(j, "a", &last), 0);
    ASSERT_EQ(last, 2);
    ASSERT_EQ(sk_journal_last_seq(j, "b", &last), 0);
    ASSERT_EQ(last, 1);
    ASSERT_EQ(sk_journal_last_seq(j, "nosuch", &last), 0);
    ASSERT_EQ(last, 0);

    /* A failed COMMIT stores nothing. */
    failing = true;
    fail_at = SK_JOURNAL_FAULT_COMMIT;
    sk_journal_order_t two[] = {{"a", 3, "u4", "", 2}};
    ASSERT_EQ(sk_journal_put_orders(j, two, 1), -EIO);
    failing = false;
    ASSERT_EQ(sk_journal_last_seq(j, "a", &last), 0);
    ASSERT_EQ(last, 2);
    /* A commit reported failed after it reached the disk: -EIO, and the orders are there. */
    failing = true;
    fail_at = SK_JOURNAL_FAULT_AFTER_COMMIT;
    ASSERT_EQ(sk_journal_put_orders(j, two, 1), -EIO);
    failing = false;
    ASSERT_EQ(sk_journal_last_seq(j, "a", &last), 0);
    ASSERT_EQ(last, 3);
    /* The same seq again is refused whole (the unique key), as the ledger must know. */
    ASSERT_EQ(sk_journal_put_orders(j, two, 1), -EIO);
    failing = true;
    fail_at = SK_JOURNAL_FAULT_LAST_SEQ;
    ASSERT_EQ(sk_journal_last_seq(j, "a", &last), -EIO);
    failing = false;
    sk_journal_close(j);

    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    loaded_t l = {0};
    ASSERT_EQ(sk_journal_load(j, on_sale, on_order, &l), 0);
    ASSERT_EQ(l.orders, 4);
    ASSERT_STR_EQ(l.users[3], "u4");
    sk_journal_close(j);
    rm_rf(dir);
}

SK_TEST_MAIN(SK_RUN(test_round_trip); SK_RUN(test_batch_all_or_nothing); SK_RUN(test_many_batches);
             SK_RUN(test_open_errors); SK_RUN(test_last_seq_and_faults);)
