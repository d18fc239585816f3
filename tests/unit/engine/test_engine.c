/* The engine driven in-process, without HTTP: a real ledger thread over a real SQLite
 * journal in a temp dir, worker loops submitting ops and waiting for their answers. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/holders.h"
#include "engine_runner.h"
#include "test.h"

/* The worker's own answer (the gate) at the current time: SK_BUY__COUNT when the
 * purchase goes to the ledger. */
static sk_buy_result_t worker_answer(const sk_sale_t *s, const char *user)
{
    sk_buy_result_t r;
    return gate(s, user, 1, sk_now_ms(), &r) ? r : SK_BUY__COUNT;
}

/* ---- tests ------------------------------------------------------------------------------ */

SK_TEST(test_order_ids)
{
    sk_sale_t *s = new_sale("flash-1", 10, 0, 1, 1);
    char id[SK_ORDER_ID_MAX + 1];
    ASSERT_EQ(sk_order_id(id, s, 1), 18);
    ASSERT_STR_EQ(id, "flash-1-0000000001");
    sk_order_id(id, s, 42);
    ASSERT_STR_EQ(id, "flash-1-0000000042");
    sk_order_id(id, s, 1000000000);
    ASSERT_STR_EQ(id, "flash-1-1000000000");
    sk_order_id(id, s, 12345678901ull);
    ASSERT_STR_EQ(id, "flash-1-12345678901");
    /* Ids of one sale sort like their seqs (up to the largest stock). */
    char a[SK_ORDER_ID_MAX + 1], b[SK_ORDER_ID_MAX + 1];
    sk_order_id(a, s, 9);
    sk_order_id(b, s, 10);
    ASSERT_LT(strcmp(a, b), 0);
    sk_order_id(a, s, 999999999);
    sk_order_id(b, s, (uint64_t)SK_STOCK_MAX);
    ASSERT_LT(strcmp(a, b), 0);
    /* The longest sale id still fits. */
    sk_sale_t *l = new_sale("LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL", 1, 0, 1, 1);
    ASSERT_EQ(l->id_len, SK_ID_MAX);
    ASSERT_EQ(sk_order_id(id, l, UINT64_MAX), SK_ID_MAX + 1 + 20);

    uint64_t seq = 0;
    ASSERT_EQ(sk_order_id_parse(s, "flash-1-0000000042", 18, &seq), 0);
    ASSERT_EQ(seq, 42);
    ASSERT_EQ(sk_order_id_parse(s, "flash-1-12345678901", 19, &seq), 0);
    ASSERT_EQ(seq, 12345678901LL);
    ASSERT_EQ(sk_order_id_parse(s, "flash-1-7", 9, &seq), 0);
    ASSERT_EQ(seq, 7);
    static const char *const bad[] = {
        "flash-2-0000000001", "flash-10000000001", "flash-1-", "flash-1", "flash-1-abc",         "flash-1-0000000000",
        "flash-1--1",         "flash-1-1x",        "",         "flash-",  "flash-10-0000000001", "flash-1-+1",
    };
    for (size_t i = 0; i < SK_ARRAY_LEN(bad); i++) {
        if (sk_order_id_parse(s, bad[i], strlen(bad[i]), &seq) != -EINVAL) {
            SK_FAIL_AT("order id \"%s\" parsed", bad[i]);
            break;
        }
    }
    sk_sale_free(s);
    sk_sale_free(l);
}

SK_TEST(test_validation)
{
    ASSERT_TRUE(sk_valid_sale_id("a", 1));
    ASSERT_TRUE(sk_valid_sale_id("A-z_09", 6));
    ASSERT_TRUE(!sk_valid_sale_id("", 0));
    ASSERT_TRUE(!sk_valid_sale_id("a b", 3));
    ASSERT_TRUE(!sk_valid_sale_id("a/b", 3));
    ASSERT_TRUE(!sk_valid_sale_id("a.b", 3));
    ASSERT_TRUE(!sk_valid_sale_id("\xc3\xa9", 2));
    char id[SK_ID_MAX + 2];
    memset(id, 'a', sizeof(id));
    ASSERT_TRUE(sk_valid_sale_id(id, SK_ID_MAX));
    ASSERT_TRUE(!sk_valid_sale_id(id, SK_ID_MAX + 1));
    ASSERT_TRUE(sk_valid_user_id("u@x.com", 7));
    ASSERT_TRUE(!sk_valid_user_id("", 0));
    ASSERT_TRUE(!sk_valid_user_id("a b", 3));
    ASSERT_TRUE(!sk_valid_user_id("a\"b", 3));
    ASSERT_TRUE(!sk_valid_user_id("a\\b", 3));
    ASSERT_TRUE(!sk_valid_user_id("a\x7f", 2));
    ASSERT_TRUE(!sk_valid_user_id("a\0b", 3));
    ASSERT_TRUE(sk_valid_user_id(id, SK_USER_MAX));
    ASSERT_TRUE(!sk_valid_user_id(id, SK_USER_MAX + 1));
    ASSERT_TRUE(sk_valid_request_id("", 0));
    ASSERT_TRUE(!sk_valid_request_id("r\n", 2));
    ASSERT_TRUE(!sk_valid_request_id(id, SK_REQUEST_MAX + 1));
}

SK_TEST(test_sells_exactly_stock)
{
    enum { STOCK = 100, USERS = 1000 };
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = live_sale(&f.r, "s1", STOCK, 1);
    ASSERT_TRUE(s != NULL);
    ASSERT_TRUE(sk_engine_find_sale(f.e, "s1", 2) == s);
    ASSERT_EQ(sk_sale_state(s, sk_now_ms()), SK_SALE_LIVE);
    static answer_t a[USERS];
    char u[32], req[32];
    for (int i = 0; i < USERS; i++) {
        user_name(u, sizeof(u), "user-", i);
        user_name(req, sizeof(req), "req-", i);
        buy(&f.r, s, u, req, &a[i]);
    }
    ASSERT_TRUE(runner_wait(&f.r));
    int counts[SK_BUY__COUNT] = {0};
    bool seen[STOCK + 1] = {false};
    for (int i = 0; i < USERS; i++) {
        ASSERT_TRUE(a[i].done);
        counts[a[i].result]++;
        if (a[i].result == SK_BUY_CONFIRMED) {
            ASSERT_TRUE(a[i].seq >= 1 && a[i].seq <= STOCK);
            ASSERT_TRUE(!seen[a[i].seq]);
            seen[a[i].seq] = true;
            ASSERT_EQ(a[i].remaining, STOCK - (int64_t)a[i].seq);
            /* Arrival order: the first STOCK submitted are the ones confirmed. */
            ASSERT_EQ(a[i].seq, i + 1);
        } else {
            ASSERT_EQ(a[i].result, SK_BUY_SOLD_OUT);
            ASSERT_EQ(a[i].remaining, 0);
        }
    }
    ASSERT_EQ(counts[SK_BUY_CONFIRMED], STOCK);
    ASSERT_EQ(counts[SK_BUY_SOLD_OUT], USERS - STOCK);
    ASSERT_EQ(sk_sale_sold(s), STOCK);
    ASSERT_TRUE(sk_sale_is_sold_out(s));
    ASSERT_EQ(sk_sale_state(s, sk_now_ms()), SK_SALE_SOLD_OUT);
    /* From now on the workers answer everyone who holds nothing; holders go on to the
     * ledger (their replay). */
    ASSERT_EQ(worker_answer(s, "user-999"), SK_BUY_SOLD_OUT);
    ASSERT_EQ(worker_answer(s, "user-0"), SK_BUY__COUNT);
    const sk_engine_stats_t *st = sk_engine_stats(f.e);
    ASSERT_GE(sk_counter_get(&st->batches), 1);
    ASSERT_EQ(sk_counter_get(&st->batch_ops), USERS);
    ASSERT_EQ(atomic_load(&((sk_engine_stats_t *)st)->inflight), 0);
    fixture_destroy(&f);
}

SK_TEST(test_duplicates_and_limit)
{
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = live_sale(&f.r, "dup", 10, 1);
    ASSERT_TRUE(s != NULL);
    answer_t a = buy1(&f.r, s, "alice", "r1");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    uint64_t alice = a.seq;
    /* The same request again: the same order. */
    a = buy1(&f.r, s, "alice", "r1");
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, alice);
    ASSERT_STR_EQ(a.user, "alice");
    /* A new request of a holder at the limit: limit_reached with the order held. */
    a = buy1(&f.r, s, "alice", "r2");
    ASSERT_EQ(a.result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(a.seq, alice);
    a = buy1(&f.r, s, "alice", "");
    ASSERT_EQ(a.result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(a.seq, alice);
    /* Another user with the same request id is another purchase. */
    a = buy1(&f.r, s, "bob", "r1");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_NE(a.seq, alice);
    /* Duplicates inside one batch: decided in arrival order. */
    answer_t b[4];
    buy(&f.r, s, "carol", "c1", &b[0]);
    buy(&f.r, s, "carol", "c1", &b[1]);
    buy(&f.r, s, "carol", "c2", &b[2]);
    buy(&f.r, s, "dave", "", &b[3]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(b[0].result, SK_BUY_CONFIRMED);
    ASSERT_EQ(b[1].result, SK_BUY_DUPLICATE);
    ASSERT_EQ(b[1].seq, b[0].seq);
    ASSERT_EQ(b[2].result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(b[2].seq, b[0].seq);
    ASSERT_EQ(b[3].result, SK_BUY_CONFIRMED);
    /* Without a request id, a repeat is a second purchase attempt, not a duplicate. */
    a = buy1(&f.r, s, "dave", "");
    ASSERT_EQ(a.result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(a.seq, b[3].seq);
    ASSERT_EQ(sk_sale_sold(s), 4);
    fixture_destroy(&f);
}

SK_TEST(test_per_user_limit_3)
{
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = live_sale(&f.r, "three", 100, 3);
    ASSERT_TRUE(s != NULL);
    uint64_t seqs[3];
    char req[16];
    for (int i = 0; i < 3; i++) {
        snprintf(req, sizeof(req), "r%d", i);
        answer_t a = buy1(&f.r, s, "u", req);
        ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
        seqs[i] = a.seq;
        buy1(&f.r, s, "other", req); /* interleave someone else's orders */
    }
    answer_t a = buy1(&f.r, s, "u", "r3");
    ASSERT_EQ(a.result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(a.seq, seqs[0]);
    for (int i = 0; i < 3; i++) {
        snprintf(req, sizeof(req), "r%d", i);
        a = buy1(&f.r, s, "u", req);
        ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
        ASSERT_EQ(a.seq, seqs[i]);
    }
    /* The user's orders, in seq order, through the ledger. */
    sk_op_t *op = sk_op_new(SK_OP_ORDERS);
    op->sale = s;
    memcpy(op->user_id, "u", 2);
    op->user_len = 1;
    submit(&f.r, op, &a);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(a.n_orders, 3);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(a.orders[i].seq, seqs[i]);
        ASSERT_STR_EQ(a.orders[i].user_id, "u");
    }
    ASSERT_STR_EQ(a.orders[2].request_id, "r2");
    free(a.orders);
    ASSERT_EQ(sk_sale_sold(s), 6);
    fixture_destroy(&f);
}

SK_TEST(test_window)
{
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    int64_t now = sk_now_ms();
    int64_t starts = now + HOUR_MS, ends = now + 2 * HOUR_MS;
    sk_sale_t *s = NULL;
    ASSERT_EQ(create_sale(&f.r, new_sale("later", 10, starts, ends, 1), &s), 0);
    ASSERT_EQ(sk_sale_state(s, now), SK_SALE_SCHEDULED);
    ASSERT_EQ(sk_sale_state(s, starts), SK_SALE_LIVE);
    ASSERT_EQ(sk_sale_state(s, ends), SK_SALE_ENDED);
    answer_t a[5];
    buy_at(&f.r, s, "u1", "", now, &a[0]);
    buy_at(&f.r, s, "u2", "", starts - 1, &a[1]);
    buy_at(&f.r, s, "u3", "r3", starts, &a[2]);
    buy_at(&f.r, s, "u4", "", ends - 1, &a[3]);
    buy_at(&f.r, s, "u5", "", ends, &a[4]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(a[0].result, SK_BUY_NOT_STARTED);
    ASSERT_EQ(a[1].result, SK_BUY_NOT_STARTED);
    ASSERT_EQ(a[2].result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a[3].result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a[4].result, SK_BUY_ENDED);
    /* A holder's replay gets the first answer whatever the clock says (I5): the holder
     * check comes before the window. Anything else after the end is "ended". */
    buy_at(&f.r, s, "u3", "r3", ends + 5, &a[0]);
    buy_at(&f.r, s, "u3", "r3", starts - 5, &a[1]);
    buy_at(&f.r, s, "u3", "r3-new", ends + 5, &a[2]);
    buy_at(&f.r, s, "u4", "", ends + 5, &a[3]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(a[0].result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a[0].seq, 1);
    ASSERT_EQ(a[1].result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a[1].seq, 1);
    ASSERT_EQ(a[2].result, SK_BUY_ENDED);
    ASSERT_EQ(a[3].result, SK_BUY_ENDED);
    ASSERT_EQ(sk_sale_sold(s), 2);
    /* The worker: before the start anyone is told not_started; after the end a
     * non-holder is told ended, a holder goes to the ledger. */
    sk_buy_result_t r;
    ASSERT_TRUE(gate(s, "u3", 1, starts - 1, &r) && r == SK_BUY_NOT_STARTED);
    ASSERT_TRUE(gate(s, "nobody", 1, ends, &r) && r == SK_BUY_ENDED);
    ASSERT_TRUE(!gate(s, "u3", 1, ends, &r));
    ASSERT_TRUE(!gate(s, "nobody", 1, starts, &r));
    fixture_destroy(&f);
}

SK_TEST(test_closed_at_the_end)
{
    /* Once the ledger's clock passes ends_at it closes the sale: it decides no order any
     * more (not even for a purchase whose worker read the clock just before the end),
     * and the workers answer non-holders themselves; a holder's replay still gets its
     * order from the ledger. */
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    int64_t now = sk_now_ms();
    sk_sale_t *s = NULL;
    ASSERT_EQ(create_sale(&f.r, new_sale("brief", 10, now - 1000, now + 1000, 3), &s), 0);
    answer_t a = buy1(&f.r, s, "h", "h1");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    a = buy1(&f.r, s, "h", "h2");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    int64_t ends = sk_sale_params(s)->ends_at;
    while (sk_now_ms() < ends + 10)
        usleep(20 * 1000);
    answer_t b[3];
    buy_at(&f.r, s, "late", "l1", ends - 1, &b[0]); /* read its clock just before the end */
    buy(&f.r, s, "h", "h2", &b[1]);
    buy(&f.r, s, "h", "h3", &b[2]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(b[0].result, SK_BUY_ENDED);
    ASSERT_EQ(b[1].result, SK_BUY_DUPLICATE);
    ASSERT_EQ(b[1].seq, 2);
    ASSERT_EQ(b[2].result, SK_BUY_ENDED);
    ASSERT_TRUE(!sk_sale_is_sold_out(s));
    ASSERT_EQ(sk_sale_sold(s), 2);
    ASSERT_EQ(sk_sale_state(s, sk_now_ms()), SK_SALE_ENDED);
    ASSERT_EQ(worker_answer(s, "nobody"), SK_BUY_ENDED);
    ASSERT_EQ(worker_answer(s, "h"), SK_BUY__COUNT);
    answer_t l = orders_of1(&f.r, s, "h");
    ASSERT_EQ(l.n_orders, 2);
    ASSERT_STR_EQ(l.orders[1].request_id, "h2");
    free(l.orders);
    fixture_close(&f);
    /* After a restart the same. */
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "brief", 5);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(worker_answer(s, "nobody"), SK_BUY_ENDED);
    a = buy1(&f.r, s, "h", "h2");
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, 2);
    a = buy_at1(&f.r, s, "new", "n", ends - 1);
    ASSERT_EQ(a.result, SK_BUY_ENDED);
    fixture_destroy(&f);
}

/* A purchase as the API makes it (buy_cached1): the op comes from the worker's cache and
 * goes back to it once answered; cached_op_used is the op that carried the last answer. */
static sk_op_t *cached_op_used;

static void on_done_recycle(sk_op_t *op)
{
    runner_t *r = op->owner;
    take_answer(op);
    cached_op_used = op;
    sk_engine_op_recycle(r->w, op);
    answered(r);
}

static answer_t buy_cached1(runner_t *r, sk_sale_t *s, const char *user, const char *req)
{
    sk_op_t *op = sk_engine_op_new(r->w, SK_OP_BUY);
    op->sale = s;
    op->now_ms = sk_now_ms();
    op->user_len = (uint8_t)strlen(user);
    memcpy(op->user_id, user, op->user_len + 1u);
    op->request_len = (uint8_t)strlen(req);
    memcpy(op->request_id, req, op->request_len + 1u);
    answer_t a;
    memset(&a, 0, sizeof(a));
    op->owner = r;
    op->ctx = &a;
    op->done = on_done_recycle;
    r->pending++;
    sk_engine_submit(r->w, op);
    ASSERT_TRUE(runner_wait(r));
    return a;
}

SK_TEST(test_recycled_op_is_as_new)
{
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    /* Every field before the strings reads as in a new op, and every string as empty
     * (the bytes after a string's first are left as they were: sk_engine_op_new). */
    sk_op_t *op = sk_engine_op_new(f.r.w, SK_OP_BUY);
    memset(op, 0xa5, sizeof(*op));
    op->orders = NULL;
    op->entries = NULL;
    op->new_sale = NULL;
    sk_engine_op_recycle(f.r.w, op);
    sk_op_t *again = sk_engine_op_new(f.r.w, SK_OP_PAY), *fresh = sk_op_new(SK_OP_PAY);
    ASSERT_TRUE(again == op);
    ASSERT_EQ(memcmp(again, fresh, offsetof(sk_op_t, user_id)), 0);
    ASSERT_EQ(memcmp(&again->order, &fresh->order, offsetof(sk_order_t, user_id)), 0);
    ASSERT_EQ(again->user_id[0], 0);
    ASSERT_EQ(again->request_id[0], 0);
    ASSERT_EQ(again->payment_id[0], 0);
    ASSERT_EQ(again->order.user_id[0], 0);
    ASSERT_EQ(again->order.request_id[0], 0);
    ASSERT_EQ(again->order.payment_id[0], 0);
    sk_op_free(again);
    sk_op_free(fresh);

    /* Through the ledger: an op that carried the longest strings (a paid order's replay:
     * user, request and payment ids of 64 bytes) and is used again for a short buyer
     * answers with that buyer's order only. */
    int64_t now = sk_now_ms();
    sk_sale_t *s = NULL;
    ASSERT_EQ(create_sale(&f.r, new_sale_ex("rc", 10, now - 1000, now + HOUR_MS, 1, 1, HOUR_MS), &s), 0);
    char user[SK_USER_MAX + 1], req[SK_REQUEST_MAX + 1], pay[SK_PAYMENT_ID_MAX + 1];
    memset(user, 'u', SK_USER_MAX);
    user[SK_USER_MAX] = '\0';
    memset(req, 'r', SK_REQUEST_MAX);
    req[SK_REQUEST_MAX] = '\0';
    memset(pay, 'p', SK_PAYMENT_ID_MAX);
    pay[SK_PAYMENT_ID_MAX] = '\0';
    answer_t a = buy_cached1(&f.r, s, user, req);
    ASSERT_EQ(a.result, SK_BUY_RESERVED);
    ASSERT_EQ(order_op1(&f.r, SK_OP_PAY, s, a.order.seq, pay).tr, SK_TR_OK);
    a = buy_cached1(&f.r, s, user, req);
    sk_op_t *used = cached_op_used;
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.order.state, SK_ORDER_CONFIRMED);
    ASSERT_STR_EQ(a.order.payment_id, pay);
    a = buy_cached1(&f.r, s, "b", "r");
    ASSERT_TRUE(cached_op_used == used); /* the same op, from the cache */
    ASSERT_EQ(a.result, SK_BUY_RESERVED);
    ASSERT_EQ(a.order.seq, 2);
    ASSERT_EQ(a.order.state, SK_ORDER_RESERVED);
    ASSERT_EQ(a.order.paid_at, 0);
    ASSERT_STR_EQ(a.order.user_id, "b");
    ASSERT_STR_EQ(a.order.request_id, "r");
    ASSERT_STR_EQ(a.order.payment_id, "");
    ASSERT_EQ(a.held, 0);
    ASSERT_EQ(a.remaining, 8);
    fixture_destroy(&f);
}

SK_TEST(test_rate_limited)
{
    /* Ops submitted before the ledger starts stay queued, so exactly max_inflight of them
     * are taken and the rest are refused at once. */
    char dir[256];
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "engine"));
    sk_engine_t *e = open_engine(dir, 3);
    ASSERT_TRUE(e != NULL);
    int64_t now = sk_now_ms();
    sk_sale_t *s = new_sale("rl", 100, now - 1000, now + HOUR_MS, 1);
    ASSERT_EQ(sk_engine_add_sale(e, s), 0);
    runner_t r;
    runner_init(&r, e);
    answer_t a[10];
    char u[16];
    for (int i = 0; i < 10; i++) {
        user_name(u, sizeof(u), "u", i);
        buy(&r, s, u, "", &a[i]);
    }
    /* The refusals answered synchronously. */
    ASSERT_EQ(r.pending, 3);
    for (int i = 3; i < 10; i++) {
        ASSERT_TRUE(a[i].done);
        ASSERT_EQ(a[i].result, SK_BUY_RATE_LIMITED);
        ASSERT_EQ(a[i].remaining, 100);
    }
    ASSERT_EQ(sk_engine_start(e), 0);
    ASSERT_TRUE(runner_wait(&r));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(a[i].result, SK_BUY_CONFIRMED);
    ASSERT_EQ(sk_sale_sold(s), 3);
    /* The slots are free again. */
    answer_t b = buy1(&r, s, "u3", "");
    ASSERT_EQ(b.result, SK_BUY_CONFIRMED);
    sk_engine_stop(e);
    runner_free(&r);
    sk_engine_free(e);
    rm_rf(dir);
}

SK_TEST(test_create_and_list)
{
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    int64_t now = sk_now_ms();
    sk_sale_t *s = NULL;
    ASSERT_EQ(create_sale(&f.r, new_sale("a", 5, now - 1, now + HOUR_MS, 1), &s), 0);
    ASSERT_EQ(create_sale(&f.r, new_sale("a", 7, now - 1, now + HOUR_MS, 1), NULL), -EEXIST);
    ASSERT_EQ(sk_engine_sale_count(f.e), 1);
    ASSERT_TRUE(sk_engine_sale_at(f.e, 0) == s);
    ASSERT_TRUE(sk_engine_sale_at(f.e, 1) == NULL);
    ASSERT_TRUE(sk_engine_find_sale(f.e, "b", 1) == NULL);
    ASSERT_TRUE(sk_engine_find_sale(f.e, "", 0) == NULL);
    char u[16];
    answer_t a[5];
    for (int i = 0; i < 5; i++) {
        user_name(u, sizeof(u), "u", i);
        buy(&f.r, s, u, "", &a[i]);
    }
    ASSERT_TRUE(runner_wait(&f.r));
    /* Paging through every order of the sale. */
    uint64_t after = 0, expect = 1;
    for (int page = 0; page < 5; page++) {
        sk_op_t *op = sk_op_new(SK_OP_LIST);
        op->sale = s;
        op->list_after = after;
        op->list_limit = 2;
        answer_t l;
        submit(&f.r, op, &l);
        ASSERT_TRUE(runner_wait(&f.r));
        for (size_t i = 0; i < l.n_orders; i++) {
            ASSERT_EQ(l.orders[i].seq, expect);
            user_name(u, sizeof(u), "u", (int)expect - 1);
            ASSERT_STR_EQ(l.orders[i].user_id, u);
            expect++;
        }
        bool more = l.more;
        if (l.n_orders)
            after = l.orders[l.n_orders - 1].seq;
        free(l.orders);
        if (!more)
            break;
    }
    ASSERT_EQ(expect, 6);
    fixture_destroy(&f);
}

SK_TEST(test_sold_out_gate)
{
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = live_sale(&f.r, "gate", 3, 2);
    ASSERT_TRUE(s != NULL);
    answer_t a[4];
    buy(&f.r, s, "x", "x1", &a[0]);
    buy(&f.r, s, "x", "x2", &a[1]);
    buy(&f.r, s, "y", "y1", &a[2]);
    buy(&f.r, s, "z", "z1", &a[3]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(a[3].result, SK_BUY_SOLD_OUT);
    /* The workers answer z (no order) themselves; x and y go to the ledger. */
    ASSERT_EQ(worker_answer(s, "z"), SK_BUY_SOLD_OUT);
    ASSERT_EQ(worker_answer(s, "x"), SK_BUY__COUNT);
    ASSERT_EQ(worker_answer(s, "y"), SK_BUY__COUNT);
    const sk_engine_stats_t *st = sk_engine_stats(f.e);
    uint64_t decided = sk_counter_get(&st->decided[SK_BUY_SOLD_OUT]);
    answer_t b = buy1(&f.r, s, "x", "x2");
    ASSERT_EQ(b.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(b.seq, a[1].seq);
    ASSERT_STR_EQ(b.order.request_id, "x2");
    b = buy1(&f.r, s, "x", "x3");
    ASSERT_EQ(b.result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(b.seq, a[0].seq);
    ASSERT_EQ(b.held, 2);
    /* y holds one of two: nothing left to buy, so sold out (not a limit), with the
     * order y holds. */
    b = buy1(&f.r, s, "y", "y2");
    ASSERT_EQ(b.result, SK_BUY_SOLD_OUT);
    ASSERT_EQ(b.held, 1);
    ASSERT_EQ(b.seq, a[2].seq);
    ASSERT_STR_EQ(b.user, "y");
    b = buy1(&f.r, s, "z", "z2"); /* straight to the ledger: the same answer */
    ASSERT_EQ(b.result, SK_BUY_SOLD_OUT);
    ASSERT_EQ(b.held, 0);
    ASSERT_EQ(sk_counter_get(&st->decided[SK_BUY_SOLD_OUT]), decided + 2);
    /* After the end: a replay is still a duplicate, anything else "ended". */
    int64_t after = sk_sale_params(s)->ends_at + 1;
    b = buy_at1(&f.r, s, "x", "x1", after);
    ASSERT_EQ(b.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(b.seq, a[0].seq);
    b = buy_at1(&f.r, s, "x", "x3", after);
    ASSERT_EQ(b.result, SK_BUY_ENDED);
    answer_t l = orders_of1(&f.r, s, "x");
    ASSERT_EQ(l.n_orders, 2);
    ASSERT_EQ(l.orders[0].seq, a[0].seq);
    ASSERT_EQ(l.orders[1].seq, a[1].seq);
    free(l.orders);
    l = orders_of1(&f.r, s, "z");
    ASSERT_EQ(l.n_orders, 0);
    fixture_destroy(&f);
}

SK_TEST(test_store_clock_offset)
{
    /* The embedded writer reads this node's clock: no offset. A backend that sees the
     * store's clock ahead or behind moves the gate's idea of "now" by that much. */
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    ASSERT_EQ(sk_engine_store_clock_offset(f.e), 0);
    ASSERT_EQ(sk_engine_store_clock_offset_min(f.e), 0);
    sk_engine_note_store_clock(f.e, 500, 490);
    ASSERT_EQ(sk_engine_store_clock_offset(f.e), 500);
    ASSERT_EQ(sk_engine_store_clock_offset_min(f.e), 490);
    ASSERT_TRUE(llabs(sk_engine_store_now(f.e) - (sk_now_ms() + 500)) < 1000);
    sk_engine_note_store_clock(f.e, -250, -300);
    ASSERT_EQ(sk_engine_store_clock_offset(f.e), -250);
    ASSERT_EQ(sk_engine_store_clock_offset_min(f.e), -300);
    sk_engine_note_store_clock(f.e, 0, 0);
    fixture_destroy(&f);
}

SK_TEST(test_restart_rebuilds)
{
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    int64_t now = sk_now_ms();
    sk_sale_t *a = NULL, *b = NULL, *c = NULL;
    ASSERT_EQ(create_sale(&f.r, new_sale("open", 50, now - 1000, now + HOUR_MS, 1), &a), 0);
    ASSERT_EQ(create_sale(&f.r, new_sale("gone", 5, now - 1000, now + HOUR_MS, 2), &b), 0);
    ASSERT_EQ(create_sale(&f.r, new_sale("soon", 9, now + HOUR_MS, now + 2 * HOUR_MS, 4), &c), 0);
    static answer_t ans[60];
    char u[16], r[16];
    for (int i = 0; i < 30; i++) {
        user_name(u, sizeof(u), "a", i);
        user_name(r, sizeof(r), "ra", i);
        buy(&f.r, a, u, r, &ans[i]);
    }
    /* "gone": b0 takes two, b1..b3 one each, b4 is too late. */
    buy(&f.r, b, "b0", "rb0", &ans[30]);
    buy(&f.r, b, "b0", "rb0bis", &ans[31]);
    for (int i = 1; i < 5; i++) {
        user_name(u, sizeof(u), "b", i);
        user_name(r, sizeof(r), "rb", i);
        buy(&f.r, b, u, r, &ans[31 + i]);
    }
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(ans[35].result, SK_BUY_SOLD_OUT);
    uint64_t a7 = ans[7].seq, b0 = ans[30].seq, b0bis = ans[31].seq;
    fixture_close(&f);

    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    ASSERT_EQ(sk_engine_sale_count(f.e), 3);
    a = sk_engine_sale_at(f.e, 0);
    b = sk_engine_sale_at(f.e, 1);
    c = sk_engine_sale_at(f.e, 2);
    ASSERT_STR_EQ(a->id, "open");
    ASSERT_STR_EQ(b->id, "gone");
    ASSERT_STR_EQ(c->id, "soon");
    ASSERT_TRUE(sk_engine_find_sale(f.e, "gone", 4) == b);
    ASSERT_EQ(counts_of(a).stock, 50);
    ASSERT_EQ(sk_sale_params(b)->per_user_limit, 2);
    ASSERT_EQ(sk_sale_params(c)->starts_at, now + HOUR_MS);
    ASSERT_EQ(sk_sale_params(c)->ends_at, now + 2 * HOUR_MS);
    ASSERT_STR_EQ(sk_sale_params(c)->name, "soon");
    ASSERT_EQ(sk_sale_sold(a), 30);
    ASSERT_EQ(sk_sale_sold(b), 5);
    ASSERT_EQ(sk_sale_sold(c), 0);
    ASSERT_TRUE(!sk_sale_is_sold_out(a));
    ASSERT_TRUE(sk_sale_is_sold_out(b));
    ASSERT_EQ(sk_sale_state(c, sk_now_ms()), SK_SALE_SCHEDULED);
    /* Duplicates and holders are known again. */
    answer_t x = buy1(&f.r, a, "a7", "ra7");
    ASSERT_EQ(x.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(x.seq, a7);
    x = buy1(&f.r, a, "a7", "new");
    ASSERT_EQ(x.result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(x.seq, a7);
    x = buy1(&f.r, a, "newcomer", "n1");
    ASSERT_EQ(x.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(x.seq, 31);
    x = buy1(&f.r, b, "b0", "rb0bis");
    ASSERT_EQ(x.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(x.seq, b0bis);
    x = buy1(&f.r, b, "b0", "again");
    ASSERT_EQ(x.result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(x.seq, b0);
    ASSERT_EQ(worker_answer(b, "b4"), SK_BUY_SOLD_OUT); /* the users are known again too */
    ASSERT_EQ(worker_answer(b, "b1"), SK_BUY__COUNT);
    x = buy1(&f.r, b, "b1", "x");
    ASSERT_EQ(x.result, SK_BUY_SOLD_OUT);
    /* A sale created after the restart goes after the old ones. */
    sk_sale_t *d = live_sale(&f.r, "fresh", 1, 1);
    ASSERT_TRUE(d != NULL);
    ASSERT_EQ(d->index, 3);
    /* Sell "open" out across the restart: exactly its stock. */
    static answer_t more[40];
    for (int i = 0; i < 40; i++) {
        user_name(u, sizeof(u), "late", i);
        buy(&f.r, a, u, "", &more[i]);
    }
    ASSERT_TRUE(runner_wait(&f.r));
    int confirmed = 0;
    for (int i = 0; i < 40; i++)
        confirmed += more[i].result == SK_BUY_CONFIRMED;
    ASSERT_EQ(confirmed, 19);
    ASSERT_EQ(sk_sale_sold(a), 50);
    fixture_close(&f);

    /* And once more: the sold-out sale comes back with all 50 holders. */
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    a = sk_engine_find_sale(f.e, "open", 4);
    ASSERT_TRUE(a != NULL);
    ASSERT_EQ(sk_sale_sold(a), 50);
    ASSERT_EQ(buy1(&f.r, a, "a7", "ra7").result, SK_BUY_DUPLICATE);
    ASSERT_EQ(buy1(&f.r, a, "late0", "").result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(worker_answer(a, "late39"), SK_BUY_SOLD_OUT);
    ASSERT_EQ(sk_engine_sale_count(f.e), 4);
    fixture_destroy(&f);
}

SK_TEST(test_disk_error_confirms_nothing)
{
    /* A journal write that fails (here: the file size limit) answers every purchase of
     * the batch "unavailable" and leaves the ledger as if the batch never happened. */
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = live_sale(&f.r, "disk", 1000, 1);
    ASSERT_TRUE(s != NULL);
    answer_t a = buy1(&f.r, s, "before", "b");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 1);

    struct rlimit old, lim;
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    char wal[300];
    snprintf(wal, sizeof(wal), "%s/seckill.db-wal", f.dir);
    struct stat st;
    ASSERT_EQ(stat(wal, &st), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)st.st_size; /* no file may grow any more */
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    answer_t b[5];
    buy(&f.r, s, "u1", "r1", &b[0]);
    buy(&f.r, s, "u1", "r1", &b[1]); /* would be a duplicate of an undone order */
    buy(&f.r, s, "u2", "r2", &b[2]);
    buy(&f.r, s, "before", "b", &b[3]); /* a committed order: still a duplicate? */
    buy(&f.r, s, "u3", "r3", &b[4]);
    bool ok = runner_wait(&f.r);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    ASSERT_TRUE(ok);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(b[i].result, SK_BUY_UNAVAILABLE);
    ASSERT_EQ(sk_sale_sold(s), 1);
    ASSERT_GE(sk_counter_get(&sk_engine_stats(f.e)->commit_errors), 1);

    /* The disk is back: the same purchases succeed, with the seqs the failed batch had. */
    buy(&f.r, s, "u1", "r1", &b[0]);
    buy(&f.r, s, "u1", "r1", &b[1]);
    buy(&f.r, s, "u2", "r2", &b[2]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(b[0].result, SK_BUY_CONFIRMED);
    ASSERT_EQ(b[0].seq, 2);
    ASSERT_EQ(b[1].result, SK_BUY_DUPLICATE);
    ASSERT_EQ(b[1].seq, 2);
    ASSERT_EQ(b[2].result, SK_BUY_CONFIRMED);
    ASSERT_EQ(b[2].seq, 3);
    ASSERT_EQ(sk_sale_sold(s), 3);
    fixture_close(&f);
    /* And the journal agrees after a restart. */
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "disk", 4);
    ASSERT_EQ(sk_sale_sold(s), 3);
    a = buy1(&f.r, s, "u3", "r3");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 4);
    fixture_destroy(&f);
}

/* ---- two worker threads ---------------------------------------------------------------- */

enum { T_USERS = 3000, T_WAVE = 250, T_STOCK = 1000 };

typedef struct {
    sk_engine_t *e;
    sk_sale_t *sale, *other;
    int index;
    answer_t *ans; /* T_USERS + T_USERS / 10 + 1 */
    runner_t r; /* freed by the main thread once the ledger stopped */
    bool ok;
} thread_arg_t;

static void *buyer_thread(void *p)
{
    thread_arg_t *t = p;
    runner_init(&t->r, t->e);
    t->ok = t->r.w != NULL;
    char u[32], req[32];
    int n = 0;
    for (int i = 0; i < T_USERS && t->ok; i++) {
        /* Users of this thread, plus every tenth user of the other thread's range retried
         * from here with the same request id: the ledger sees both. */
        sk_sale_t *s = i % 7 == 0 ? t->other : t->sale;
        user_name(u, sizeof(u), t->index ? "t1-" : "t0-", i);
        user_name(req, sizeof(req), "q", i);
        buy(&t->r, s, u, req, &t->ans[n++]);
        if (i % 10 == 0) {
            user_name(u, sizeof(u), t->index ? "t0-" : "t1-", i);
            buy(&t->r, s, u, req, &t->ans[n++]);
        }
        if (t->r.pending >= T_WAVE)
            t->ok = runner_wait(&t->r);
    }
    if (t->ok)
        t->ok = runner_wait(&t->r);
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Checks that no user holds more than `limit` of the seqs 1..n (owner[seq]). */
static int max_held(char (*owner)[SK_USER_MAX + 1], size_t n)
{
    qsort(owner + 1, n, SK_USER_MAX + 1, cmp_str);
    int best = 0, run = 0;
    for (size_t i = 1; i <= n; i++) {
        run = i > 1 && strcmp(owner[i], owner[i - 1]) == 0 ? run + 1 : 1;
        best = run > best ? run : best;
    }
    return best;
}

SK_TEST(test_two_threads)
{
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = live_sale(&f.r, "pair", T_STOCK, 1);
    sk_sale_t *o = live_sale(&f.r, "side", 100, 2);
    ASSERT_TRUE(s && o);
    size_t per = T_USERS + T_USERS / 10 + 1;
    thread_arg_t t[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        t[i] = (thread_arg_t){.e = f.e, .sale = s, .other = o, .index = i, .ans = sk_xcalloc(per, sizeof(answer_t))};
        ASSERT_EQ(pthread_create(&th[i], NULL, buyer_thread, &t[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    /* Workers detach after the ledger stopped (it may still wake them until then). */
    sk_engine_stop(f.e);
    for (int i = 0; i < 2; i++)
        runner_free(&t[i].r);
    ASSERT_TRUE(t[0].ok && t[1].ok);
    int confirmed[2] = {0}, dup = 0;
    /* seq -> user, per sale */
    char(*owner_s)[SK_USER_MAX + 1] = sk_xcalloc(T_STOCK + 1, SK_USER_MAX + 1);
    char(*owner_o)[SK_USER_MAX + 1] = sk_xcalloc(101, SK_USER_MAX + 1);
    bool bad = false;
    for (int k = 0; k < 2 && !bad; k++) {
        for (size_t i = 0; i < per && t[k].ans[i].done; i++) {
            answer_t *a = &t[k].ans[i];
            bool side = a->sale == o;
            char(*owner)[SK_USER_MAX + 1] = side ? owner_o : owner_s;
            int64_t stock = side ? 100 : T_STOCK;
            if (a->result == SK_BUY_CONFIRMED) {
                confirmed[side]++;
                if (a->seq < 1 || (int64_t)a->seq > stock || owner[a->seq][0] || strcmp(a->user, a->buyer) != 0) {
                    SK_FAIL_AT("seq %llu confirmed twice, out of range or to the wrong user",
                               (unsigned long long)a->seq);
                    bad = true;
                    break;
                }
                snprintf(owner[a->seq], SK_USER_MAX + 1, "%s", a->buyer);
            } else if (a->result == SK_BUY_DUPLICATE) {
                dup++;
            } else if (a->result != SK_BUY_SOLD_OUT && a->result != SK_BUY_LIMIT_REACHED) {
                SK_FAIL_AT("unexpected answer %s", sk_buy_result_names[a->result]);
                bad = true;
                break;
            }
        }
    }
    /* Every duplicate and limit_reached names an order the asking user holds. */
    for (int k = 0; k < 2 && !bad; k++) {
        for (size_t i = 0; i < per && t[k].ans[i].done; i++) {
            answer_t *a = &t[k].ans[i];
            if (a->result != SK_BUY_DUPLICATE && a->result != SK_BUY_LIMIT_REACHED)
                continue;
            char(*owner)[SK_USER_MAX + 1] = a->sale == o ? owner_o : owner_s;
            if (strcmp(owner[a->seq], a->buyer) != 0) {
                SK_FAIL_AT("%s answered %s with seq %llu owned by %s", a->buyer, sk_buy_result_names[a->result],
                           (unsigned long long)a->seq, owner[a->seq]);
                bad = true;
                break;
            }
        }
    }
    ASSERT_TRUE(!bad);
    ASSERT_EQ(confirmed[0], T_STOCK);
    ASSERT_EQ(confirmed[1], 100);
    ASSERT_GT(dup, 0);
    ASSERT_EQ(sk_sale_sold(s), T_STOCK);
    ASSERT_EQ(sk_sale_sold(o), 100);
    ASSERT_EQ(max_held(owner_s, T_STOCK), 1);
    ASSERT_LE(max_held(owner_o, 100), 2);
    free(owner_s);
    free(owner_o);
    free(t[0].ans);
    free(t[1].ans);
    fixture_destroy(&f);
}

/* ---- counts read while the ledger writes them (a seqlock; TSan runs this) ---------------- */

typedef struct {
    const sk_sale_t *s;
    _Atomic bool stop;
    long reads, bad;
} counts_reader_t;

static void *counts_reader(void *arg)
{
    counts_reader_t *c = arg;
    char u[32];
    while (!atomic_load(&c->stop)) {
        sk_sale_counts_t k;
        sk_sale_counts(c->s, &k);
        if (k.stock != 20 || k.held < 0 || k.sold < 0 || sk_counts_remaining(&k) < 0)
            c->bad++;
        /* What a worker does on the way: the gate reads params, flag, counts and set. */
        sk_buy_result_t r;
        int64_t rem;
        snprintf(u, sizeof(u), "r%ld", c->reads % 100);
        sk_engine_gate(c->s, sk_now_ms(), sk_user_hash(u, strlen(u)), 1 + (uint32_t)(c->reads % 2), &r, &rem);
        (void)sk_sale_state(c->s, sk_now_ms());
        c->reads++;
    }
    return NULL;
}

SK_TEST(test_counts_read_while_writing)
{
    /* Reservations, payments, cancels and expiries while another thread reads the
     * counts: every read is one consistent snapshot (I7 at every read). */
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = window_sale(&f.r, "seq", 20, 2, 2, 30);
    ASSERT_TRUE(s != NULL);
    counts_reader_t c = {.s = s};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, counts_reader, &c), 0);
    char u[32];
    int made = 0;
    for (int round = 0; round < 40; round++) {
        answer_t a[10];
        for (int i = 0; i < 10; i++) {
            snprintf(u, sizeof(u), "u%d-%d", round, i);
            buy_q_at(&f.r, s, u, "r", 1 + (uint32_t)(i % 2), sk_now_ms(), &a[i]);
        }
        ASSERT_TRUE(runner_wait(&f.r));
        for (int i = 0; i < 10; i++) {
            if (a[i].result != SK_BUY_RESERVED)
                continue;
            made++;
            if (i % 3 == 0)
                order_op1(&f.r, SK_OP_CANCEL, s, a[i].seq, NULL);
            else if (i % 3 == 1)
                order_op1(&f.r, SK_OP_PAY, s, a[i].seq, "p");
        }
        if (counts_of(s).sold > 10) {
            for (uint64_t seq = 1; seq <= (uint64_t)made + 40; seq++)
                order_op1(&f.r, SK_OP_REFUND, s, seq, NULL);
        }
        usleep(5000);
    }
    atomic_store(&c.stop, true);
    pthread_join(th, NULL);
    ASSERT_EQ(c.bad, 0);
    ASSERT_GT(c.reads, 0);
    ASSERT_GT(made, 20);
    fixture_destroy(&f);
}

SK_TEST(test_open_errors)
{
    char dir[256], path[300], err[512] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "engine"));
    snprintf(path, sizeof(path), "%s/file", dir);
    FILE *fp = fopen(path, "w");
    ASSERT_TRUE(fp != NULL);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/file/data", dir);
    sk_engine_config_t cfg = {0};
    sk_engine_t *e = sk_engine_open(&cfg, sk_backend_embedded_new(path, 0), err, sizeof(err));
    ASSERT_TRUE(e == NULL);
    ASSERT_TRUE(strstr(err, path) != NULL);
    rm_rf(dir);
}

SK_TEST_MAIN(SK_RUN(test_order_ids); SK_RUN(test_store_clock_offset); SK_RUN(test_validation);
             SK_RUN(test_sells_exactly_stock); SK_RUN(test_duplicates_and_limit); SK_RUN(test_per_user_limit_3);
             SK_RUN(test_window); SK_RUN(test_closed_at_the_end); SK_RUN(test_recycled_op_is_as_new);
             SK_RUN(test_rate_limited); SK_RUN(test_create_and_list); SK_RUN(test_sold_out_gate);
             SK_RUN(test_restart_rebuilds); SK_RUN(test_disk_error_confirms_nothing); SK_RUN(test_two_threads);
             SK_RUN(test_counts_read_while_writing); SK_RUN(test_open_errors);)
