/* src/engine/userset.c: the possible holders of a sale. No false "no" ever, growth
 * through many tables, the hash 0, and a reader thread probing while the writer inserts
 * and grows the set (run under ThreadSanitizer by scripts/test.sh). */
#include <pthread.h>
#include <stdatomic.h>

#include "engine/engine.h"
#include "engine/userset.h"
#include "test.h"
#include "util/common.h"

SK_TEST(test_insert_and_contain)
{
    sk_userset_t *u = sk_userset_new();
    ASSERT_EQ(sk_userset_count(u), 0);
    ASSERT_TRUE(!sk_userset_may_contain(u, sk_user_hash("alice", 5)));
    sk_userset_insert(u, sk_user_hash("alice", 5));
    sk_userset_insert(u, sk_user_hash("alice", 5)); /* again: nothing changes */
    ASSERT_EQ(sk_userset_count(u), 1);
    ASSERT_TRUE(sk_userset_may_contain(u, sk_user_hash("alice", 5)));
    ASSERT_TRUE(!sk_userset_may_contain(u, sk_user_hash("bob", 3)));
    /* 0 is the empty slot: a hash of 0 is kept as 1, and found as such. */
    sk_userset_insert(u, 0);
    ASSERT_TRUE(sk_userset_may_contain(u, 0));
    ASSERT_TRUE(sk_userset_may_contain(u, 1));
    ASSERT_NE(sk_user_hash("", 0), 0);
    sk_userset_free(u);
}

SK_TEST(test_growth_keeps_everyone)
{
    enum { N = 200000 };
    sk_userset_t *u = sk_userset_new();
    char id[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(id, sizeof(id), "user-%d", i);
        sk_userset_insert(u, sk_user_hash(id, (size_t)n));
    }
    ASSERT_EQ(sk_userset_count(u), N);
    int absent_hits = 0;
    for (int i = 0; i < N; i++) {
        int n = snprintf(id, sizeof(id), "user-%d", i);
        ASSERT_TRUE(sk_userset_may_contain(u, sk_user_hash(id, (size_t)n)));
        n = snprintf(id, sizeof(id), "other-%d", i);
        absent_hits += sk_userset_may_contain(u, sk_user_hash(id, (size_t)n));
    }
    /* 64-bit hashes of distinct ids: a false "yes" is possible but not in this sample. */
    ASSERT_EQ(absent_hits, 0);
    sk_userset_free(u);
}

/* ---- a reader during inserts and growth ------------------------------------------------ */

enum { T_N = 300000 };

typedef struct {
    sk_userset_t *u;
    _Atomic int published; /* users 0..published-1 are in the set (release after insert) */
    _Atomic bool done;
    long probes, misses;
} shared_t;

static uint64_t user_hash_of(int i)
{
    char id[32];
    int n = snprintf(id, sizeof(id), "u%d", i);
    return sk_user_hash(id, (size_t)n);
}

static void *reader(void *arg)
{
    shared_t *sh = arg;
    unsigned seed = 12345;
    while (!atomic_load_explicit(&sh->done, memory_order_acquire)) {
        /* As a worker does: the publication first (acquire), the set after. */
        int n = atomic_load_explicit(&sh->published, memory_order_acquire);
        if (n == 0)
            continue;
        seed = seed * 1103515245u + 12345u;
        int i = (int)(seed % (unsigned)n);
        sh->probes++;
        if (!sk_userset_may_contain(sh->u, user_hash_of(i)))
            sh->misses++;
    }
    return NULL;
}

SK_TEST(test_reader_during_growth)
{
    shared_t sh = {.u = sk_userset_new()};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, reader, &sh), 0);
    for (int i = 0; i < T_N; i++) {
        sk_userset_insert(sh.u, user_hash_of(i));
        if (i % 64 == 63)
            atomic_store_explicit(&sh.published, i + 1, memory_order_release);
    }
    atomic_store_explicit(&sh.published, T_N, memory_order_release);
    atomic_store_explicit(&sh.done, true, memory_order_release);
    pthread_join(th, NULL);
    ASSERT_EQ(sh.misses, 0);
    ASSERT_GT(sh.probes, 0);
    ASSERT_EQ(sk_userset_count(sh.u), T_N);
    sk_userset_free(sh.u);
}

SK_TEST(test_freed_at_every_stage_of_growth)
{
    /* Around the thresholds (the next table allocated at 3/8, published at 1/2, the old
     * one moved afterwards), below and above the size from which tables have their own
     * mapping: everyone is found, and the set frees every table it holds then. */
    for (uint64_t cap = 1024; cap <= (UINT64_C(1) << 18); cap *= 2) {
        const uint64_t ns[] = {cap * 3 / 8 - 1, cap * 3 / 8, cap * 3 / 8 + 1, cap / 2 - 1,
                               cap / 2,         cap / 2 + 1, cap / 2 + 64};
        for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
            sk_userset_t *u = sk_userset_new();
            for (uint64_t i = 0; i < ns[k]; i++)
                sk_userset_insert(u, i * 0x9e3779b97f4a7c15ull + 1);
            ASSERT_EQ(sk_userset_count(u), ns[k]);
            uint64_t missing = 0;
            for (uint64_t i = 0; i < ns[k]; i++)
                missing += !sk_userset_may_contain(u, i * 0x9e3779b97f4a7c15ull + 1);
            ASSERT_EQ(missing, 0);
            sk_userset_free(u);
        }
    }
}

SK_TEST(test_no_table_ahead_past_the_most_holders)
{
    /* The next table is allocated at 3/8 full and faulted in until the current one is
     * half full. A sale has at most SK_STOCK_MAX holders: a table of 2^31 slots holds
     * them at a load of at most 1/2 and is never replaced, so the 32 GiB one that would
     * replace it must not be allocated and faulted in from 805 M holders on. */
    ASSERT_TRUE(sk_userset_grows_ahead(1024));
    ASSERT_TRUE(sk_userset_grows_ahead(UINT64_C(1) << 30)); /* up to 536 M holders: replaced */
    ASSERT_TRUE((UINT64_C(1) << 30) / 2 < (uint64_t)SK_STOCK_MAX);
    ASSERT_TRUE((UINT64_C(1) << 31) / 2 >= (uint64_t)SK_STOCK_MAX);
    ASSERT_TRUE(!sk_userset_grows_ahead(UINT64_C(1) << 31));
    ASSERT_TRUE(!sk_userset_grows_ahead(UINT64_C(1) << 32));
}

SK_TEST_MAIN(SK_RUN(test_insert_and_contain); SK_RUN(test_growth_keeps_everyone); SK_RUN(test_reader_during_growth);
             SK_RUN(test_freed_at_every_stage_of_growth); SK_RUN(test_no_table_ahead_past_the_most_holders);)
