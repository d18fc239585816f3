/* src/loadgen/units.c: the crowd's mix of quantities. */
#include <stdio.h>
#include <string.h>

#include "loadgen/units.h"
#include "test.h"
#include "util/common.h"

SK_TEST(test_parse)
{
    sk_loadgen_qty_t q;
    char err[256];
    ASSERT_EQ(sk_loadgen_qty_parse("3", &q, err, sizeof(err)), 0);
    ASSERT_EQ(q.max, 3);
    for (uint64_t s = 0; s < 100; s++)
        ASSERT_EQ(sk_loadgen_qty_draw(&q, 7, s), 3);
    ASSERT_EQ(sk_loadgen_qty_parse("1-4", &q, err, sizeof(err)), 0);
    ASSERT_EQ(q.max, 4);
    ASSERT_TRUE(sk_loadgen_qty_mean(&q) == 2.5);
    ASSERT_EQ(sk_loadgen_qty_parse("1:60,2:30,4:10", &q, err, sizeof(err)), 0);
    ASSERT_EQ(q.max, 4);
    ASSERT_EQ(sk_loadgen_qty_min(&q), 1);
    ASSERT_TRUE(sk_loadgen_qty_mean(&q) > 1.59 && sk_loadgen_qty_mean(&q) < 1.61);
    ASSERT_EQ(sk_loadgen_qty_parse("2-3", &q, err, sizeof(err)), 0);
    ASSERT_EQ(sk_loadgen_qty_min(&q), 2);
    ASSERT_EQ(sk_loadgen_qty_parse("1:0,3:5", &q, err, sizeof(err)), 0);
    ASSERT_EQ(sk_loadgen_qty_min(&q), 3); /* a quantity of weight 0 is never drawn */
    const char *bad[] = {"", "0", "65", "3-1", "1:x", "1-", "-2", "a", "1:60,,2", "2:0"};
    for (size_t i = 0; i < SK_ARRAY_LEN(bad); i++) {
        ASSERT_EQ(sk_loadgen_qty_parse(bad[i], &q, err, sizeof(err)), -1);
        ASSERT_TRUE(strstr(err, "--quantity") != NULL);
        ASSERT_EQ(q.max, 0);
    }
    memset(&q, 0, sizeof(q));
    ASSERT_EQ(sk_loadgen_qty_draw(&q, 1, 1), 1); /* no mix: one unit */
    ASSERT_EQ(sk_loadgen_qty_min(&q), 1);
}

SK_TEST(test_draws_follow_the_weights_and_repeat)
{
    sk_loadgen_qty_t q;
    char err[256];
    ASSERT_EQ(sk_loadgen_qty_parse("1:60,2:30,4:10", &q, err, sizeof(err)), 0);
    uint64_t n[5] = {0};
    for (uint32_t u = 1; u <= 20000; u++) {
        uint32_t k = sk_loadgen_qty_draw(&q, u, u * 7ull);
        ASSERT_TRUE(k == 1 || k == 2 || k == 4);
        ASSERT_EQ(sk_loadgen_qty_draw(&q, u, u * 7ull), k); /* a retry asks for the same */
        n[k]++;
    }
    /* 60 / 30 / 10 % of 20000, within a few standard deviations */
    ASSERT_TRUE(n[1] > 11600 && n[1] < 12400);
    ASSERT_TRUE(n[2] > 5650 && n[2] < 6350);
    ASSERT_TRUE(n[4] > 1750 && n[4] < 2250);
}

SK_TEST_MAIN(SK_RUN(test_parse); SK_RUN(test_draws_follow_the_weights_and_repeat);)
