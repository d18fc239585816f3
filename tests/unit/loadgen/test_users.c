/* src/loadgen/users.c: every user is drawn by exactly one thread, and each thread's
 * first requests visit each user of its share exactly once before any repeats. */
#include <stdlib.h>

#include "loadgen/users.h"
#include "test.h"

static void check_shares(uint32_t users, uint32_t threads, uint64_t seed)
{
    uint8_t *seen = calloc((size_t)users + 1, 1);
    ASSERT_TRUE(seen != NULL);
    uint64_t total = 0;
    for (uint32_t t = 0; t < threads; t++) {
        sk_loadgen_users_t u;
        sk_loadgen_users_init(&u, users, threads, t, seed + t);
        total += u.n;
        for (uint64_t k = 0; k < u.n; k++) {
            uint32_t x = sk_loadgen_users_draw(&u, k);
            if (x < 1 || x > users || (x - 1) % threads != t || seen[x])
                SK_FAIL_AT("users %u threads %u: thread %u drew u%u at k=%llu (%s)", users, threads, t, x,
                           (unsigned long long)k,
                           x < 1 || x > users ? "out of range"
                           : seen[x]          ? "twice"
                                              : "not its own");
            seen[x] = 1;
        }
        /* Afterwards: random users, still of this thread's share. */
        for (uint64_t k = u.n; k < u.n + 100; k++) {
            uint32_t x = sk_loadgen_users_draw(&u, k);
            ASSERT_TRUE(x >= 1 && x <= users);
            ASSERT_EQ((x - 1) % threads, t);
        }
    }
    ASSERT_EQ(total, users);
    free(seen);
}

SK_TEST(every_user_once)
{
    static const uint32_t sizes[] = {1, 2, 3, 7, 10, 64, 97, 1000, 4096, 100003};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (uint32_t threads = 1; threads <= 4 && threads <= sizes[i]; threads++) {
            check_shares(sizes[i], threads, 0);
            check_shares(sizes[i], threads, 0x9e3779b97f4a7c15ull);
        }
}

SK_TEST(scrambled)
{
    /* Not simply in order: a crowd arrives in no particular order. */
    sk_loadgen_users_t u;
    sk_loadgen_users_init(&u, 1000, 1, 0, 42);
    int in_order = 0;
    uint32_t prev = sk_loadgen_users_draw(&u, 0);
    for (uint64_t k = 1; k < 1000; k++) {
        uint32_t x = sk_loadgen_users_draw(&u, k);
        in_order += x == prev + 1;
        prev = x;
    }
    ASSERT_LT(in_order, 100);
}

SK_TEST(user_ids)
{
    char buf[16];
    ASSERT_EQ(sk_loadgen_user_id(buf, 42), 3);
    ASSERT_STR_EQ(buf, "u42");
    ASSERT_EQ(sk_loadgen_user_id(buf, 2147483647u), 11);
    ASSERT_STR_EQ(buf, "u2147483647");
}

SK_TEST_MAIN(SK_RUN(every_user_once); SK_RUN(scrambled); SK_RUN(user_ids);)
