/* src/audit/audit_sqlite.c: the orders derived from one pass over the journal's log
 * must be the orders view's rows, field by field (ranks, times, seq order, a batch out
 * of seq order, an event of no order, a bare-number event, a sale without a window,
 * rows the fast reading takes and rows it leaves to jansson),
 * the log replayed from memory the log read through SQL, and faults planted in the
 * journal (a unit returned twice, a confirmation after pay_by, a move of no order, a
 * move of a seq so large that a table by seq would overflow) must fail the audit
 * either way. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "backend/journal.h"
#include "test.h"
#include "testdir.h"
#include "util/common.h"

/* A journal made by the store (its schema and orders view), then rows written as its
 * writer would, two faults among them. */
static void make_journal(const char *dir, char *path, size_t cap)
{
    char err[256] = "";
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    if (!j)
        SK_FAIL_AT("open: %s", err);
    sk_journal_close(j);
    snprintf(path, cap, "%s/seckill.db", dir);
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    const char *sql =
        "INSERT INTO sales(id, name, stock, starts_at, ends_at, per_user_limit, created_at, payment_window_ms)"
        "  VALUES ('s1', 'one', 5, 0, 99999999, 2, 1, 20000), ('s2', 'two', 3, 0, 99999999, 1, 1, 0);"
        "INSERT INTO order_batches(lsn, sale_id, first_seq, n, created_at, pay_by, orders) VALUES"
        "  (1, 's1', 1, 4, 1000, 21000, '[[\"u1\",\"r-1\"],[\"u2\",\"r-2\"],[\"u3\",\"r-3\",2],[\"u4\",null]]'),"
        "  (3, 's1', 5, 2, 6000, 26000, '[[\"u5\",\"r-5\"],[\"u6\",\"r-6\"]]'),"
        "  (9, 's1', 8, 1, 8000, 28000, '[[\"u8\",\"r-8\"]]'),"
        "  (10, 's1', 7, 1, 8001, 28001, '[[\"u7\",\"r-7\"]]'),"
        "  (11, 's2', 1, 2, 9000, NULL, '[[\"u1\",\"x-1\"],[\"u2\",\"x-2\",3]]'),"
        /* an escape (read by jansson), then spaces and a null quantity (the fast reading) */
        "  (14, 's2', 3, 1, 9100, NULL, '[[\"u\\\"9\",\"x-3\"]]'),"
        "  (15, 's2', 4, 1, 9200, NULL, ' [ [ \"u5\" , null , null ] , [\"u6\",\"x-5\",2] ] ');"
        "INSERT INTO order_events(lsn, sale_id, kind, at, events) VALUES"
        "  (2, 's1', 'pay', 5000, '[[1,\"p1\"]]'),"
        "  (4, 's1', 'cancel', 7000, '[[2,\"buyer\"]]'),"
        "  (5, 's1', 'expire', 21000, '[[3]]'),"
        "  (6, 's1', 'expire', 26001, '[[2]]')," /* planted: order 2's units return twice */
        "  (7, 's1', 'pay', 30000, '[[5,\"p5\"]]')," /* planted: confirmed after its pay_by */
        "  (8, 's1', 'refund', 31000, '[[1,\"admin\"]]'),"
        "  (12, 's1', 'expire', 32000, '[[99]]')," /* planted: an order no batch made */
        "  (13, 's1', 'cancel', 33000, '[6]')," /* a bare number: the log's, not the view's */
        "  (16, 's2', 'refund', 9500, '[[1,\"a\\\"dm\"]]'),"
        "  (17, 's1', 'expire', 34000, '[[1500000000000000000]]');"; /* planted: a seq no store makes */
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        SK_FAIL_AT("insert: %s", msg);
    sqlite3_close(db);
}

typedef struct {
    char id[64], user[16], rid[16];
    uint64_t seq;
    int64_t quantity, pay_by, paid_at, closed_at, created_at;
    int state;
} row_t;

typedef struct {
    row_t rows[32];
    size_t n;
} rows_t;

static int on_row(void *arg, const sk_loadgen_store_order_t *o)
{
    rows_t *r = arg;
    ASSERT_LT(r->n, 32);
    row_t *x = &r->rows[r->n++];
    snprintf(x->id, sizeof(x->id), "%.*s", (int)o->order_id_len, o->order_id);
    snprintf(x->user, sizeof(x->user), "%.*s", (int)o->user_id_len, o->user_id);
    snprintf(x->rid, sizeof(x->rid), "%.*s", (int)o->request_id_len, o->request_id);
    x->seq = o->seq;
    x->quantity = o->quantity;
    x->state = (int)o->state;
    x->pay_by = o->pay_by;
    x->paid_at = o->paid_at;
    x->closed_at = o->closed_at;
    x->created_at = o->created_at;
    return 0;
}

typedef struct {
    uint64_t seq[64];
    int to[64];
    char user[64][16];
    int64_t quantity[64];
    size_t n;
} evs_t;

static int on_ev(void *arg, const sk_audit_event_t *ev)
{
    evs_t *e = arg;
    ASSERT_LT(e->n, 64);
    e->seq[e->n] = ev->seq;
    e->to[e->n] = (int)ev->to + (ev->created ? 100 : 0);
    snprintf(e->user[e->n], sizeof(e->user[0]), "%.*s", (int)ev->user_id_len, ev->user_id ? ev->user_id : "");
    e->quantity[e->n] = ev->created ? ev->quantity : 0;
    e->n++;
    return 0;
}

SK_TEST(test_derived_equals_view)
{
    char dir[256], path[300], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "audit-sqlite"));
    make_journal(dir, path, sizeof(path));
    const char *sales[] = {"s1", "s2"};
    for (int s = 0; s < 2; s++) {
        rows_t got[2];
        evs_t evs[2];
        sk_loadgen_sale_t sale[2];
        for (int by_view = 0; by_view < 2; by_view++) {
            sk_audit_source_t *src = sk_audit_source_sqlite_opts(path, by_view, err, sizeof(err));
            if (!src)
                SK_FAIL_AT("open: %s", err);
            memset(&sale[by_view], 0, sizeof(sale[0]));
            memset(&got[by_view], 0, sizeof(got[0]));
            memset(&evs[by_view], 0, sizeof(evs[0]));
            ASSERT_EQ(src->sale(src, sales[s], &sale[by_view], err, sizeof(err)), 0);
            ASSERT_TRUE(src->events != NULL);
            ASSERT_EQ(src->events(src, sales[s], on_ev, &evs[by_view], err, sizeof(err)), 0);
            ASSERT_EQ(src->orders(src, sales[s], on_row, &got[by_view], err, sizeof(err)), 0);
            src->close(src);
        }
        ASSERT_EQ(sale[0].stock, sale[1].stock);
        ASSERT_EQ(sale[0].limit, sale[1].limit);
        ASSERT_EQ(sale[0].sold, sale[1].sold);
        ASSERT_EQ(got[0].n, got[1].n);
        for (size_t i = 0; i < got[0].n; i++) {
            const row_t *a = &got[0].rows[i], *b = &got[1].rows[i];
            ASSERT_STR_EQ(a->id, b->id);
            ASSERT_STR_EQ(a->user, b->user);
            ASSERT_STR_EQ(a->rid, b->rid);
            ASSERT_EQ(a->seq, b->seq);
            ASSERT_EQ(a->quantity, b->quantity);
            ASSERT_EQ(a->state, b->state);
            ASSERT_EQ(a->pay_by, b->pay_by);
            ASSERT_EQ(a->paid_at, b->paid_at);
            ASSERT_EQ(a->closed_at, b->closed_at);
            ASSERT_EQ(a->created_at, b->created_at);
        }
        ASSERT_EQ(evs[0].n, evs[1].n);
        for (size_t i = 0; i < evs[0].n; i++) {
            ASSERT_EQ(evs[0].seq[i], evs[1].seq[i]);
            ASSERT_EQ(evs[0].to[i], evs[1].to[i]);
            ASSERT_STR_EQ(evs[0].user[i], evs[1].user[i]);
            ASSERT_EQ(evs[0].quantity[i], evs[1].quantity[i]);
        }
        if (s == 0) {
            /* The view's own answers, spelled out: seq order, ranks, the latest times. */
            ASSERT_EQ(got[0].n, 8);
            ASSERT_STR_EQ(got[0].rows[0].id, "s1-0000000001");
            ASSERT_EQ(got[0].rows[0].state, SK_LOADGEN_ST_REFUNDED);
            ASSERT_EQ(got[0].rows[0].paid_at, 5000);
            ASSERT_EQ(got[0].rows[0].closed_at, 31000);
            ASSERT_EQ(got[0].rows[1].state, SK_LOADGEN_ST_CANCELLED); /* cancel outranks the expiry */
            ASSERT_EQ(got[0].rows[1].closed_at, 26001);
            ASSERT_EQ(got[0].rows[2].quantity, 2);
            ASSERT_EQ(got[0].rows[3].state, SK_LOADGEN_ST_RESERVED);
            ASSERT_STR_EQ(got[0].rows[3].rid, "");
            ASSERT_EQ(got[0].rows[4].state, SK_LOADGEN_ST_CONFIRMED);
            ASSERT_EQ(got[0].rows[5].state, SK_LOADGEN_ST_RESERVED); /* the bare number is not the view's */
            ASSERT_EQ(got[0].rows[6].seq, 7);
            ASSERT_EQ(got[0].rows[7].seq, 8);
            ASSERT_EQ(sale[0].sold, 1);
        } else {
            ASSERT_EQ(got[0].n, 5);
            ASSERT_EQ(got[0].rows[0].state, SK_LOADGEN_ST_REFUNDED);
            ASSERT_EQ(got[0].rows[1].state, SK_LOADGEN_ST_CONFIRMED);
            ASSERT_STR_EQ(got[0].rows[2].user, "u\"9");
            ASSERT_EQ(got[0].rows[3].quantity, 1);
            ASSERT_STR_EQ(got[0].rows[3].rid, "");
            ASSERT_EQ(got[0].rows[4].quantity, 2);
            ASSERT_EQ(sale[0].sold, 7); /* 3 + 1 + 1 + 2: the refunded order's unit is not sold */
        }
    }
}

/* The audit of sale s1 from either reading: the planted faults fail it. */
SK_TEST(test_planted_faults_fail)
{
    char dir[256], path[300], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "audit-faults"));
    make_journal(dir, path, sizeof(path));
    for (int by_view = 0; by_view < 2; by_view++) {
        char sale_id[] = "s1";
        sk_loadgen_sale_t sale = {.id = sale_id, .stock = 5, .limit = 2};
        sk_loadgen_results_t res;
        memset(&res, 0, sizeof(res));
        res.users = 10;
        res.ustate = sk_xcalloc(11, 1);
        sk_audit_input_t in = {.sale = &sale, .res = &res, .run_id = "zz", .lifecycle = true, .single_units = true};
        sk_audit_source_t *src = sk_audit_source_sqlite_opts(path, by_view, err, sizeof(err));
        if (!src)
            SK_FAIL_AT("open: %s", err);
        sk_audit_t a;
        ASSERT_EQ(sk_audit_run(&in, src, &a, err, sizeof(err)), 0);
        src->close(src);
        free(res.ustate);
        ASSERT_TRUE(a.logged);
        ASSERT_TRUE(!a.ok);
        ASSERT_EQ(a.returned_twice, 1);
        ASSERT_EQ(a.late_confirmed, 1);
        ASSERT_GE(a.bad_transitions, 1);
        ASSERT_EQ(a.store_orders, 8);
        ASSERT_EQ(a.foreign, 8);
        ASSERT_TRUE(strstr(a.failure, "returned_twice=1") != NULL);
        ASSERT_TRUE(strstr(a.failure, "late_confirmed=1") != NULL);
    }
}

/* Rows the derivation cannot read as the view reads them fail every question asked of
 * the source, the second time too (never answered from the view instead): a quantity
 * written as a string ("2" is 2 to the view, and was 1 here), and an event of a kind
 * the view ignores. */
SK_TEST(test_unreadable_rows_fail)
{
    char dir[256], path[300], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "audit-unreadable"));
    sk_journal_t *jr = sk_journal_open(dir, err, sizeof(err));
    if (!jr)
        SK_FAIL_AT("open: %s", err);
    sk_journal_close(jr);
    snprintf(path, sizeof(path), "%s/seckill.db", dir);
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    const char *sql =
        "INSERT INTO sales(id, name, stock, starts_at, ends_at, per_user_limit, created_at)"
        "  VALUES ('q1', 'one', 5, 0, 99999999, 5, 1), ('q2', 'two', 5, 0, 99999999, 5, 1);"
        "INSERT INTO order_batches(lsn, sale_id, first_seq, n, created_at, pay_by, orders) VALUES"
        "  (1, 'q1', 1, 2, 1000, NULL, '[[\"u1\",\"r-1\",\"2\"],[\"u2\",\"r-2\"]]'),"
        "  (2, 'q2', 1, 1, 1000, 21000, '[[\"u1\",\"r-1\"]]');"
        "INSERT INTO order_events(lsn, sale_id, kind, at, events) VALUES (3, 'q2', 'bogus', 2000, '[[1]]');";
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        SK_FAIL_AT("insert: %s", msg);
    /* What the view makes of them (the store's own reading). */
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT quantity FROM orders WHERE sale_id = 'q1' AND seq = 1", -1, &st, NULL),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int64(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
    const char *sales[] = {"q1", "q2"};
    for (int s = 0; s < 2; s++) {
        sk_audit_source_t *src = sk_audit_source_sqlite_opts(path, false, err, sizeof(err));
        if (!src)
            SK_FAIL_AT("open: %s", err);
        for (int round = 0; round < 2; round++) {
            sk_loadgen_sale_t sale = {0};
            rows_t got = {0};
            evs_t evs = {0};
            err[0] = '\0';
            ASSERT_EQ(src->sale(src, sales[s], &sale, err, sizeof(err)), -1);
            ASSERT_TRUE(err[0] != '\0');
            ASSERT_EQ(src->orders(src, sales[s], on_row, &got, err, sizeof(err)), -1);
            ASSERT_EQ(src->events(src, sales[s], on_ev, &evs, err, sizeof(err)), -1);
        }
        src->close(src);
    }
}

SK_TEST_MAIN(SK_RUN(test_derived_equals_view); SK_RUN(test_planted_faults_fail); SK_RUN(test_unreadable_rows_fail);)
