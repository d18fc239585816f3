/* The embedded ledger (src/backend/embedded.c) through the engine: commits whose
 * outcome is in doubt (faults injected around the journal's COMMIT), and a user with a
 * hundred thousand orders. */
#define _XOPEN_SOURCE 700
#include <stdatomic.h>
#include <unistd.h>

#include "engine_runner.h"
#include "test.h"

/* Which journal points fail, set by the test between waits, read on the ledger thread. */
static _Atomic bool fail_commit, fail_after_commit, fail_last_seq;

static bool fault(void *arg, sk_journal_fault_t at)
{
    (void)arg;
    switch (at) {
    case SK_JOURNAL_FAULT_COMMIT:
        return atomic_load(&fail_commit);
    case SK_JOURNAL_FAULT_AFTER_COMMIT:
        return atomic_load(&fail_after_commit);
    case SK_JOURNAL_FAULT_LAST_SEQ:
        return atomic_load(&fail_last_seq);
    }
    return false;
}

static void install_fault(sk_backend_t *b, void *arg)
{
    (void)arg;
    sk_backend_embedded_set_fault(b, fault, NULL);
}

static void faults(bool commit, bool after_commit, bool last_seq)
{
    atomic_store(&fail_commit, commit);
    atomic_store(&fail_after_commit, after_commit);
    atomic_store(&fail_last_seq, last_seq);
}

static answer_t orders_of(runner_t *r, sk_sale_t *s, const char *user)
{
    sk_op_t *op = sk_op_new(SK_OP_ORDERS);
    op->sale = s;
    op->user_len = (uint8_t)strlen(user);
    memcpy(op->user_id, user, op->user_len + 1u);
    answer_t a;
    submit(r, op, &a);
    runner_wait(r);
    return a;
}

SK_TEST(test_commit_failed_after_reaching_the_disk)
{
    /* The batch is committed, yet the journal reports failure. The ledger must not hand
     * out its seqs again (every later batch of the sale would fail on the journal's
     * unique key): the journal holds them, so its orders stand. */
    faults(false, false, false);
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_fault, NULL));
    sk_sale_t *s = live_sale(&f.r, "doubt", 4, 1);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_CONFIRMED);

    faults(false, true, false);
    answer_t b[3];
    buy(&f.r, s, "b", "r-b", &b[0]);
    buy(&f.r, s, "c", "r-c", &b[1]);
    buy(&f.r, s, "a", "r-a", &b[2]);
    ASSERT_TRUE(runner_wait(&f.r));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(b[i].result, SK_BUY_UNAVAILABLE); /* nothing confirmed (I6) */
    ASSERT_GE(sk_counter_get(&sk_engine_stats(f.e)->commit_errors), 1);

    faults(false, false, false);
    /* The buyers who heard 503 retry and get their orders; the next buyer gets seq 4. */
    answer_t a = buy1(&f.r, s, "b", "r-b");
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, 2);
    a = buy1(&f.r, s, "d", "r-d");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 4);
    ASSERT_EQ(sk_sale_sold(s), 4);
    ASSERT_TRUE(sk_sale_final(s));
    a = buy1(&f.r, s, "c", "r-c");
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, 3);
    fixture_close(&f);

    /* The journal agrees after a restart. */
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "doubt", 5);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(sk_sale_sold(s), 4);
    sk_order_t o;
    uint32_t held;
    ASSERT_EQ(sk_engine_final_answer(s, sk_now_ms(), "c", 1, "r-c", 3, &o, &held), SK_BUY_DUPLICATE);
    ASSERT_EQ(o.seq, 3);
    fixture_destroy(&f);
}

SK_TEST(test_commit_failed_before_the_disk)
{
    /* The COMMIT itself fails: nothing is stored, and the seqs are handed out again. */
    faults(false, false, false);
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_fault, NULL));
    sk_sale_t *s = live_sale(&f.r, "lost", 10, 1);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_CONFIRMED);
    faults(true, false, false);
    ASSERT_EQ(buy1(&f.r, s, "b", "r-b").result, SK_BUY_UNAVAILABLE);
    faults(false, false, false);
    answer_t a = buy1(&f.r, s, "c", "r-c");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 2);
    a = buy1(&f.r, s, "b", "r-b");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 3);
    fixture_close(&f);
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "lost", 4);
    ASSERT_EQ(sk_sale_sold(s), 3);
    fixture_destroy(&f);
}

SK_TEST(test_outcome_unknown_until_the_journal_answers)
{
    /* The commit's outcome is in doubt and the journal cannot be asked either: the sale
     * decides nothing (503, nothing confirmed) until the journal answers; other sales
     * go on. */
    faults(false, false, false);
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_fault, NULL));
    sk_sale_t *s = live_sale(&f.r, "dark", 10, 1);
    sk_sale_t *other = live_sale(&f.r, "other", 10, 1);
    ASSERT_TRUE(s && other);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_CONFIRMED);

    faults(false, true, true); /* the batch reached the disk; the journal cannot say so */
    ASSERT_EQ(buy1(&f.r, s, "b", "r-b").result, SK_BUY_UNAVAILABLE);
    faults(false, false, true);
    ASSERT_EQ(buy1(&f.r, s, "c", "r-c").result, SK_BUY_UNAVAILABLE);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_UNAVAILABLE);
    answer_t o = orders_of(&f.r, s, "b");
    ASSERT_EQ(o.status, -EIO); /* never a list that may hold an order that does not exist */
    ASSERT_EQ(sk_sale_sold(s), 1);
    ASSERT_EQ(buy1(&f.r, other, "z", "r-z").result, SK_BUY_CONFIRMED);

    faults(false, false, false);
    answer_t a = buy1(&f.r, s, "b", "r-b");
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, 2);
    a = buy1(&f.r, s, "c", "r-c");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 3);
    o = orders_of(&f.r, s, "b");
    ASSERT_EQ(o.status, 0);
    ASSERT_EQ(o.n_orders, 1);
    free(o.orders);

    /* And when the batch did not reach the disk: settled later, its seqs used again. */
    faults(true, false, true);
    ASSERT_EQ(buy1(&f.r, s, "d", "r-d").result, SK_BUY_UNAVAILABLE);
    ASSERT_EQ(buy1(&f.r, s, "e", "r-e").result, SK_BUY_UNAVAILABLE);
    faults(false, false, false);
    a = buy1(&f.r, s, "e", "r-e");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 4);
    ASSERT_EQ(sk_sale_sold(s), 4);
    fixture_close(&f);
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "dark", 4);
    ASSERT_EQ(sk_sale_sold(s), 4);
    a = buy1(&f.r, s, "d", "r-d");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 5);
    fixture_destroy(&f);
}

SK_TEST(test_one_user_100000_orders)
{
    /* One user, a large per_user_limit, distinct request ids, through the ledger and a
     * restart: every replay finds its own order, the limit holds. (The cost of each
     * decision is counted in tests/unit/engine/test_holders.c.) */
    enum { K = 100000, WAVE = 4000 };
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = live_sale(&f.r, "whale", K + 10, K + 1);
    ASSERT_TRUE(s != NULL);
    static answer_t a[WAVE];
    char req[32];
    for (int w = 0; w < K; w += WAVE) {
        for (int i = 0; i < WAVE; i++) {
            snprintf(req, sizeof(req), "q%d", w + i);
            buy(&f.r, s, "whale", req, &a[i]);
        }
        ASSERT_TRUE(runner_wait(&f.r));
        for (int i = 0; i < WAVE; i++) {
            if (a[i].result != SK_BUY_CONFIRMED || a[i].seq != (uint64_t)(w + i + 1)) {
                SK_FAIL_AT("order %d: %s seq %llu", w + i, sk_buy_result_names[a[i].result],
                           (unsigned long long)a[i].seq);
                return;
            }
        }
    }
    for (int round = 0; round < 2; round++) {
        answer_t x = buy1(&f.r, s, "whale", "q7");
        ASSERT_EQ(x.result, SK_BUY_DUPLICATE);
        ASSERT_EQ(x.seq, 8);
        x = buy1(&f.r, s, "whale", "q99999");
        ASSERT_EQ(x.result, SK_BUY_DUPLICATE);
        ASSERT_EQ(x.seq, K);
        if (round == 0) {
            x = buy1(&f.r, s, "whale", "last");
            ASSERT_EQ(x.result, SK_BUY_CONFIRMED);
            ASSERT_EQ(x.seq, K + 1);
            x = buy1(&f.r, s, "whale", "over");
            ASSERT_EQ(x.result, SK_BUY_LIMIT_REACHED);
            ASSERT_EQ(x.seq, 1);
            ASSERT_EQ(x.held, K + 1);
            fixture_close(&f);
            ASSERT_TRUE(fixture_open(&f, f.dir, 0));
            s = sk_engine_find_sale(f.e, "whale", 5);
            ASSERT_EQ(sk_sale_sold(s), K + 1);
        }
    }
    fixture_destroy(&f);
}

SK_TEST(test_many_orders_without_request_ids)
{
    /* Request ids are optional: a buyer past the walk limit who never sent one, then
     * sends one, is decided (the ledger once read a request index the sale never
     * allocated, and the whole node died), and so is every later purchase of the sale
     * once its holders are final, on the worker. */
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = live_sale(&f.r, "anon", 11, 20);
    ASSERT_TRUE(s != NULL);
    for (int i = 0; i < 9; i++)
        ASSERT_EQ(buy1(&f.r, s, "u", "").result, SK_BUY_CONFIRMED);
    answer_t a = buy1(&f.r, s, "u", "r-10");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 10);
    ASSERT_EQ(buy1(&f.r, s, "u", "r-10").result, SK_BUY_DUPLICATE);
    ASSERT_EQ(buy1(&f.r, s, "v", "").result, SK_BUY_CONFIRMED);
    ASSERT_TRUE(sk_sale_final(s));
    sk_order_t o;
    uint32_t held;
    ASSERT_EQ(sk_engine_final_answer(s, sk_now_ms(), "u", 1, "r-11", 4, &o, &held), SK_BUY_SOLD_OUT);
    ASSERT_EQ(held, 10);
    ASSERT_EQ(sk_engine_final_answer(s, sk_now_ms(), "u", 1, "r-10", 4, &o, &held), SK_BUY_DUPLICATE);
    ASSERT_EQ(o.seq, 10);
    fixture_destroy(&f);
}

SK_TEST_MAIN(SK_RUN(test_commit_failed_after_reaching_the_disk); SK_RUN(test_commit_failed_before_the_disk);
             SK_RUN(test_outcome_unknown_until_the_journal_answers); SK_RUN(test_one_user_100000_orders);
             SK_RUN(test_many_orders_without_request_ids);)
