/* src/engine/userset.c: the possible holders of a sale. No false "no" ever, growth
 * through many tables, the hash 0, and a reader thread probing while the writer inserts
 * and grows the set (run under ThreadSanitizer by scripts/test.sh); the user hash at
 * guard pages and its spread of sequential ids. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/userset.h"
#include "guard.h"
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

/* The hash reads eight bytes at a time, the last eight overlapping the ones before: never a
 * byte past the id's end nor before its start (an id that ends where a PROT_NONE page
 * begins, and one that starts where one ends, at every length), and the same bytes hash
 * the same wherever they are. */
SK_TEST(test_hash_between_guard_pages)
{
    sk_guarded_t g;
    char *mid = sk_guarded_page(&g);
    ASSERT_TRUE(mid != NULL);
    size_t page = g.page;
    char id[SK_USER_MAX + 8];
    for (size_t n = 0; n <= sizeof(id); n++) {
        for (size_t i = 0; i < n; i++)
            id[i] = (char)('0' + (i * 7 + n) % 75);
        char *at_end = mid + page - n, *at_start = mid;
        memcpy(at_end, id, n);
        memcpy(at_start, id, n);
        uint64_t h = sk_user_hash(id, n);
        ASSERT_EQ(sk_user_hash(at_end, n), h);
        ASSERT_EQ(sk_user_hash(at_start, n), h);
    }
    sk_guarded_free(&g);
}

/* Sequential id i of one of five shapes: short, padded, e-mail, phone number, and 16 bytes
 * (a multiple of the hash's word). */
enum { ID_SHAPES = 5 };

static int shaped_id(char *id, size_t cap, int shape, int i)
{
    switch (shape) {
    case 0:
        return snprintf(id, cap, "u%d", i);
    case 1:
        return snprintf(id, cap, "user-%08d", i);
    case 2:
        return snprintf(id, cap, "%d@example.com", i);
    case 3:
        return snprintf(id, cap, "138%08d", i);
    default:
        return snprintf(id, cap, "buyer-%010d", i);
    }
}

/* Linear probing wants the low bits well spread for ids that differ in a few trailing
 * characters: half a million sequential ids of each shape (short, padded, e-mail, phone
 * number, a multiple of eight bytes long) fall into 2^20 buckets by their low bits as
 * evenly as random keys would (a chi-square per degree of freedom near 1; a hash that
 * lost bits lands far above). */
SK_TEST(test_hash_spreads_sequential_ids)
{
    enum { N = 500000, BUCKETS = 1 << 20 };
    uint32_t *count = sk_xcalloc(BUCKETS, sizeof(*count));
    for (int shape = 0; shape < ID_SHAPES; shape++) {
        memset(count, 0, BUCKETS * sizeof(*count));
        char id[32];
        for (int i = 0; i < N; i++) {
            int n = shaped_id(id, sizeof(id), shape, i);
            count[sk_user_hash(id, (size_t)n) & (BUCKETS - 1)]++;
        }
        double mean = (double)N / BUCKETS, chi = 0;
        for (size_t b = 0; b < BUCKETS; b++)
            chi += (count[b] - mean) * (count[b] - mean) / mean;
        chi /= BUCKETS - 1;
        if (chi < 0.98 || chi > 1.02) {
            shaped_id(id, sizeof(id), shape, 0);
            SK_FAIL_AT("ids like \"%s\": chi-square per degree of freedom %.4f", id, chi);
        }
    }
    free(count);
}

SK_TEST_MAIN(SK_RUN(test_insert_and_contain); SK_RUN(test_growth_keeps_everyone); SK_RUN(test_reader_during_growth);
             SK_RUN(test_freed_at_every_stage_of_growth); SK_RUN(test_no_table_ahead_past_the_most_holders);
             SK_RUN(test_hash_between_guard_pages); SK_RUN(test_hash_spreads_sequential_ids);)
