/* src/util/ratelimit.c: bursts, refill, Retry-After times, independent keys, a full table
 * (fixed memory; a key being held back keeps its place), clock wrap-around, and threads
 * sharing one key admitting exactly the burst. Time is passed in, so nothing here waits. */
#include <pthread.h>

#include "test.h"
#include "util/common.h"
#include "util/ratelimit.h"

#define T0 UINT64_C(5000000000)

static int take_n(sk_ratelimit_t *t, const char *key, int n, uint64_t now)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += sk_ratelimit_take(t, key, strlen(key), now) == 0;
    return ok;
}

SK_TEST(test_burst_and_refill)
{
    /* 10 a second, bursts of 20: one token every 100 ms. */
    sk_ratelimit_t *t = sk_ratelimit_new(10, 20, 1024, 42);
    ASSERT_EQ(take_n(t, "1.2.3.4", 20, T0), 20);
    uint64_t wait = sk_ratelimit_take(t, "1.2.3.4", 7, T0);
    ASSERT_EQ(wait, 100000);
    ASSERT_EQ(sk_ratelimit_take(t, "1.2.3.4", 7, T0 + 40000), 60000); /* refusals take nothing */
    /* One token back after 100 ms, and only one. */
    ASSERT_EQ(sk_ratelimit_take(t, "1.2.3.4", 7, T0 + 100000), 0);
    ASSERT_EQ(sk_ratelimit_take(t, "1.2.3.4", 7, T0 + 100000), 100000);
    /* Half a second: five more. */
    ASSERT_EQ(take_n(t, "1.2.3.4", 10, T0 + 600000), 5);
    /* Idle for two seconds: the whole burst again, not more. */
    ASSERT_EQ(take_n(t, "1.2.3.4", 30, T0 + 10000000), 20);
    /* A steady 10 a second is never refused. */
    for (int i = 1; i <= 100; i++)
        ASSERT_EQ(sk_ratelimit_take(t, "steady", 6, T0 + (uint64_t)i * 100000), 0);
    sk_ratelimit_free(t);
}

SK_TEST(test_keys_apart)
{
    sk_ratelimit_t *t = sk_ratelimit_new(1, 2, 1024, 7);
    ASSERT_EQ(take_n(t, "a", 5, T0), 2);
    ASSERT_EQ(take_n(t, "b", 5, T0), 2);
    ASSERT_EQ(take_n(t, "ab", 5, T0), 2);
    ASSERT_EQ(take_n(t, "a", 5, T0), 0);
    /* A fast rate: a million a second is one token a microsecond. */
    sk_ratelimit_t *f = sk_ratelimit_new(1000000, 2000000, 64, 7);
    ASSERT_EQ(take_n(f, "x", 1000, T0), 1000);
    sk_ratelimit_free(f);
    sk_ratelimit_free(t);
}

SK_TEST(test_table_full)
{
    /* One set of eight buckets; a hundred thousand keys pass through it. */
    sk_ratelimit_t *t = sk_ratelimit_new(1, 2, 8, 99);
    size_t bytes = sk_ratelimit_bytes(t);
    ASSERT_LE(bytes, 64 + 128);
    ASSERT_EQ(take_n(t, "attacker", 10, T0), 2); /* held back */
    char key[32];
    int admitted = 0;
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "spread-%d", i);
        admitted += sk_ratelimit_take(t, key, strlen(key), T0 + 1) == 0;
    }
    /* Every new key gets its bucket (what any per-key limit gives), the memory is what it
     * was, and the address already held back is still held back: the new keys took the
     * places of each other, the fullest buckets, not its. */
    ASSERT_EQ(admitted, 100000);
    ASSERT_EQ(sk_ratelimit_bytes(t), bytes);
    ASSERT_TRUE(sk_ratelimit_take(t, "attacker", 8, T0 + 2) > 0);
    /* Eight keys held back fill the set; a ninth still gets in, taking the place of the
     * one held back least. */
    sk_ratelimit_t *u = sk_ratelimit_new(1, 2, 8, 99);
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "held-%d", i);
        ASSERT_EQ(take_n(u, key, 2, T0), 2);
    }
    ASSERT_EQ(take_n(u, "ninth", 1, T0), 1);
    sk_ratelimit_free(u);
    sk_ratelimit_free(t);
}

SK_TEST(test_sizes)
{
    sk_ratelimit_t *t = sk_ratelimit_new(5, 10, 1000, 1);
    ASSERT_EQ(sk_ratelimit_bytes(t) - sk_ratelimit_bytes(t) % 64, 1024 * 8); /* 128 sets of 64 bytes */
    sk_ratelimit_free(t);
    t = sk_ratelimit_new(5, 10, 1 << 18, 1);
    ASSERT_LE(sk_ratelimit_bytes(t), (2u << 20) + 128); /* the API's table: 2 MiB */
    sk_ratelimit_free(t);
}

SK_TEST(test_wrap_and_stale)
{
    sk_ratelimit_t *t = sk_ratelimit_new(10, 20, 64, 3);
    /* Times are kept modulo 2^42 microseconds: across the wrap the bucket carries on. */
    uint64_t edge = (UINT64_C(1) << 42) - 50000;
    ASSERT_EQ(take_n(t, "k", 25, edge), 20);
    ASSERT_EQ(sk_ratelimit_take(t, "k", 1, edge + 100000), 0);
    ASSERT_EQ(sk_ratelimit_take(t, "k", 1, edge + 100000), 100000);
    /* Long idle (days): full again, not refused by a time that looks like the future. */
    ASSERT_EQ(take_n(t, "k", 25, edge + UINT64_C(3) * 86400 * 1000000), 20);
    sk_ratelimit_free(t);
}

typedef struct {
    sk_ratelimit_t *t;
    int admitted;
} worker_arg_t;

static void *hammer(void *p)
{
    worker_arg_t *a = p;
    for (int i = 0; i < 20000; i++)
        a->admitted += sk_ratelimit_take(a->t, "shared", 6, T0) == 0;
    return NULL;
}

SK_TEST(test_threads_share_a_key)
{
    /* Four threads on one key at one instant: the burst is admitted once, not per thread. */
    sk_ratelimit_t *t = sk_ratelimit_new(100, 200, 64, 5);
    pthread_t th[4];
    worker_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg_t){t, 0};
        pthread_create(&th[i], NULL, hammer, &args[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += args[i].admitted;
    }
    ASSERT_EQ(total, 200);
    sk_ratelimit_free(t);
}

SK_TEST_MAIN(SK_RUN(test_burst_and_refill); SK_RUN(test_keys_apart); SK_RUN(test_table_full); SK_RUN(test_sizes);
             SK_RUN(test_wrap_and_stale); SK_RUN(test_threads_share_a_key);)
