/* The waiting room's rules (src/engine/queue.c): fifo and random order, admission at
 * the rate, no admission while the sale cannot sell, an expired admission to the back,
 * the records replayed into an equal queue, and the shuffle's fairness. */
#include "engine/queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "test.h"

#define T0 1700000000000LL

typedef struct {
    sk_queue_rec_t r[4096];
    char users[4096][SK_USER_MAX + 1];
    size_t n;
} log_t;

static void record(void *arg, const sk_queue_rec_t *r)
{
    log_t *l = arg;
    if (l->n >= 4096)
        return;
    l->r[l->n] = *r;
    if (r->user) {
        memcpy(l->users[l->n], r->user, r->user_len);
        l->r[l->n].user = l->users[l->n];
    }
    l->n++;
}

static sk_queue_rules_t rules(int mode, int32_t rate)
{
    return (sk_queue_rules_t){.mode = mode, .starts_at = T0, .rate = rate, .ttl_ms = 10000};
}

static void join(sk_queue_t *q, const sk_queue_rules_t *r, int i, int64_t now, log_t *l, sk_queue_place_t *p)
{
    char u[16];
    snprintf(u, sizeof(u), "u%d", i);
    ASSERT_EQ(sk_queue_ask(q, r, u, strlen(u), now, true, p, record, l), 0);
}

static int user_no(const sk_queue_rec_t *r)
{
    return atoi(r->user + 1);
}

SK_TEST(test_fifo_order_and_rate)
{
    log_t *l = calloc(1, sizeof(*l));
    sk_queue_rules_t r = rules(SK_QUEUE_FIFO, 10);
    sk_queue_t *q = sk_queue_new(42);
    sk_queue_place_t p;
    for (int i = 0; i < 50; i++) {
        join(q, &r, i, T0 - 1000 + i, l, &p);
        ASSERT_EQ(p.position, (uint64_t)i + 1);
        ASSERT_EQ(p.ahead, (uint64_t)i);
        ASSERT_TRUE(p.joined);
    }
    /* Asking again changes nothing. */
    join(q, &r, 7, T0 - 10, l, &p);
    ASSERT_EQ(p.position, 8);
    ASSERT_TRUE(!p.joined);
    ASSERT_EQ(sk_queue_advance(q, &r, T0 - 1, true, record, l), 0);
    ASSERT_EQ(sk_queue_next_due(q, &r, T0 - 100, true), 100);
    /* At the start one is admitted at once, then ten a second. */
    ASSERT_EQ(sk_queue_advance(q, &r, T0, true, record, l), 1);
    ASSERT_EQ(sk_queue_next_due(q, &r, T0, true), 100);
    ASSERT_EQ(sk_queue_advance(q, &r, T0 + 1000, true, record, l), 10);
    ASSERT_EQ(sk_queue_head(q), 11);
    join(q, &r, 20, T0 + 1000, l, &p);
    ASSERT_EQ(p.ahead, 20 - 11);
    ASSERT_EQ(p.admitted_at, 0);
    join(q, &r, 3, T0 + 1000, l, &p);
    ASSERT_EQ(p.admitted_at, T0 + 1000);
    ASSERT_EQ(p.expires_at, T0 + 1000 + 10000);
    /* Admissions follow the queue: ADMIT records carry positions 1, 2, 3, ... */
    uint64_t want = 1;
    for (size_t i = 0; i < l->n; i++)
        if (l->r[i].kind == SK_QREC_ADMIT) {
            ASSERT_EQ(l->r[i].arg, want);
            ASSERT_EQ(user_no(&l->r[i]), (int)want - 1);
            want++;
        }
    ASSERT_EQ(want, 12);
    sk_queue_free(q);
    free(l);
}

SK_TEST(test_no_admission_while_not_admitting)
{
    sk_queue_rules_t r = rules(SK_QUEUE_FIFO, 100);
    sk_queue_t *q = sk_queue_new(1);
    sk_queue_place_t p;
    log_t *l = calloc(1, sizeof(*l));
    for (int i = 0; i < 1000; i++)
        join(q, &r, i, T0 - 5, l, &p);
    ASSERT_EQ(sk_queue_advance(q, &r, T0, true, record, l), 1);
    /* Sold out for a minute: nobody admitted, no credit saved up. */
    ASSERT_EQ(sk_queue_advance(q, &r, T0 + 500, false, record, l), 0);
    ASSERT_EQ(sk_queue_next_due(q, &r, T0 + 500, false), -1);
    ASSERT_EQ(sk_queue_advance(q, &r, T0 + 60000, false, record, l), 0);
    /* Units came back: admission resumes at the rate. */
    ASSERT_EQ(sk_queue_advance(q, &r, T0 + 60100, true, record, l), 10);
    ASSERT_EQ(sk_queue_head(q), 11);
    /* A long gap while admitting saves at most one second's worth. */
    ASSERT_EQ(sk_queue_advance(q, &r, T0 + 600000, true, record, l), 100);
    sk_queue_free(q);
    free(l);
}

SK_TEST(test_expired_admission_goes_to_the_back)
{
    sk_queue_rules_t r = rules(SK_QUEUE_FIFO, 1000);
    sk_queue_t *q = sk_queue_new(1);
    sk_queue_place_t p;
    log_t *l = calloc(1, sizeof(*l));
    for (int i = 0; i < 5; i++)
        join(q, &r, i, T0 - 5, l, &p);
    ASSERT_EQ(sk_queue_advance(q, &r, T0, true, record, l), 1);
    ASSERT_EQ(sk_queue_advance(q, &r, T0 + 10, true, record, l), 4);
    join(q, &r, 9, T0 + 20, l, &p);
    ASSERT_EQ(p.position, 6);
    /* Within the ttl the admission stands; after it, a new place at the back. */
    join(q, &r, 2, T0 + 10 + 9999, l, &p);
    ASSERT_EQ(p.position, 3);
    ASSERT_EQ(p.admitted_at, T0 + 10);
    ASSERT_EQ(p.ahead, 0);
    sk_queue_place_t p2;
    ASSERT_EQ(sk_queue_ask(q, &r, "u2", 2, T0 + 20010, false, &p2, record, l), 0);
    ASSERT_EQ(p2.position, 3); /* only a join moves it */
    join(q, &r, 2, T0 + 20010, l, &p);
    ASSERT_EQ(p.position, 7);
    ASSERT_EQ(p.admitted_at, 0);
    ASSERT_TRUE(p.joined);
    ASSERT_EQ(sk_queue_ask(q, &r, "nobody", 6, T0, false, &p, record, l), -ENOENT);
    sk_queue_free(q);
    free(l);
}

/* Replaying the records gives the same queue: same places, same admissions. */
SK_TEST(test_replay)
{
    for (int mode = SK_QUEUE_FIFO; mode <= SK_QUEUE_RANDOM; mode++) {
        sk_queue_rules_t r = rules(mode, 50);
        sk_queue_t *q = sk_queue_new(0xfeedu + (unsigned)mode);
        sk_queue_place_t p, p2;
        log_t *l = calloc(1, sizeof(*l));
        for (int i = 0; i < 300; i++)
            join(q, &r, i, T0 - 300 + i, l, &p);
        sk_queue_advance(q, &r, T0, true, record, l);
        for (int i = 300; i < 400; i++)
            join(q, &r, i, T0 + i, l, &p);
        sk_queue_advance(q, &r, T0 + 2000, true, record, l);
        join(q, &r, 5, T0 + 30000, l, &p); /* maybe expired: a re-join */
        sk_queue_t *q2 = sk_queue_new(0);
        for (size_t i = 0; i < l->n; i++)
            ASSERT_EQ(sk_queue_replay(q2, &l->r[i]), 0);
        ASSERT_EQ(sk_queue_len(q2), sk_queue_len(q));
        ASSERT_EQ(sk_queue_head(q2), sk_queue_head(q));
        for (int i = 0; i < 400; i++) {
            char u[16];
            snprintf(u, sizeof(u), "u%d", i);
            ASSERT_EQ(sk_queue_ask(q, &r, u, strlen(u), T0 + 2000, false, &p, NULL, NULL), 0);
            ASSERT_EQ(sk_queue_ask(q2, &r, u, strlen(u), T0 + 2000, false, &p2, NULL, NULL), 0);
            ASSERT_EQ(p.position, p2.position);
            ASSERT_EQ(p.admitted_at, p2.admitted_at);
        }
        /* A record that does not fit is refused. */
        sk_queue_rec_t bad = {.kind = SK_QREC_ADMIT, .user = "u1", .user_len = 2, .at = T0, .arg = 1};
        ASSERT_EQ(sk_queue_replay(q2, &bad), -EINVAL);
        sk_queue_free(q);
        sk_queue_free(q2);
        free(l);
    }
}

/* Random: before the start a place is not drawn; at the start the pre-queue is shuffled
 * (the same seed gives the same order, another seed another), later joins at the back. */
SK_TEST(test_random_order)
{
    sk_queue_rules_t r = rules(SK_QUEUE_RANDOM, 1000000);
    sk_queue_place_t p;
    log_t *l = calloc(1, sizeof(*l));
    sk_queue_t *q = sk_queue_new(7);
    for (int i = 0; i < 100; i++) {
        join(q, &r, i, T0 - 100, l, &p);
        ASSERT_EQ(p.position, 0);
    }
    sk_queue_advance(q, &r, T0, true, record, l);
    join(q, &r, 100, T0 + 1, l, &p);
    ASSERT_EQ(p.position, 101);
    int moved = 0;
    for (int i = 0; i < 100; i++) {
        char u[16];
        snprintf(u, sizeof(u), "u%d", i);
        ASSERT_EQ(sk_queue_ask(q, &r, u, strlen(u), T0, false, &p, NULL, NULL), 0);
        ASSERT_TRUE(p.position >= 1 && p.position <= 100);
        moved += p.position != (uint64_t)i + 1;
    }
    ASSERT_GT(moved, 80);
    sk_queue_free(q);
    free(l);
}

/* Fairness: over many shuffles of 8 items each item lands in each place about equally
 * often (chi-square over the 64 cells, 63 degrees of freedom: 120 is far beyond p = 1e-5). */
SK_TEST(test_shuffle_fair)
{
    enum { N = 8, ROUNDS = 80000 };
    static long count[N][N];
    uint32_t items[N];
    for (int k = 0; k < ROUNDS; k++) {
        for (int i = 0; i < N; i++)
            items[i] = (uint32_t)i;
        sk_queue_shuffle(items, N, 0x1234567ull * (uint64_t)(k + 1));
        for (int i = 0; i < N; i++)
            count[items[i]][i]++;
    }
    double expect = (double)ROUNDS / N, chi = 0;
    for (int a = 0; a < N; a++)
        for (int b = 0; b < N; b++)
            chi += (count[a][b] - expect) * (count[a][b] - expect) / expect;
    ASSERT_LT((long)chi, 120);
}

SK_TEST_MAIN(SK_RUN(test_fifo_order_and_rate); SK_RUN(test_no_admission_while_not_admitting);
             SK_RUN(test_expired_admission_goes_to_the_back); SK_RUN(test_replay); SK_RUN(test_random_order);
             SK_RUN(test_shuffle_fair);)
