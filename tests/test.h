/* A tiny test harness: assertions print both values, and a summary line that ctest
 * and CI can read. Each test file defines tests with SK_TEST and lists them in main. */
#ifndef SK_TESTS_TEST_H
#define SK_TESTS_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sk_test_failures;
static int sk_test_current_failed;

#define SK_FAIL_AT(...)                                                                                                \
    do {                                                                                                               \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                                \
        fprintf(stderr, __VA_ARGS__);                                                                                  \
        fputc('\n', stderr);                                                                                           \
        sk_test_current_failed = 1;                                                                                    \
    } while (0)

#define ASSERT_TRUE(c)                                                                                                 \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            SK_FAIL_AT("assertion failed: %s", #c);                                                                    \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

#define ASSERT_INT_OP(a, op, b)                                                                                        \
    do {                                                                                                               \
        int64_t sk_a_ = (int64_t)(a), sk_b_ = (int64_t)(b);                                                            \
        if (!(sk_a_ op sk_b_)) {                                                                                       \
            SK_FAIL_AT("%s %s %s: %" PRId64 " vs %" PRId64, #a, #op, #b, sk_a_, sk_b_);                                \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)
#define ASSERT_EQ(a, b) ASSERT_INT_OP(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_OP(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_INT_OP(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_OP(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT_OP(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_OP(a, >=, b)

/* Compares a (pointer, length) pair against a C string. */
#define ASSERT_MEM_STR(p, n, s)                                                                                        \
    do {                                                                                                               \
        const char *sk_p_ = (const char *)(p);                                                                         \
        size_t sk_n_ = (size_t)(n);                                                                                    \
        const char *sk_s_ = (s);                                                                                       \
        if (sk_n_ != strlen(sk_s_) || memcmp(sk_p_, sk_s_, sk_n_) != 0) {                                              \
            SK_FAIL_AT("%s: \"%.*s\" vs \"%s\"", #p, (int)sk_n_, sk_p_ ? sk_p_ : "", sk_s_);                           \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                                            \
    do {                                                                                                               \
        const char *sk_a_ = (a), *sk_b_ = (b);                                                                         \
        if (!sk_a_ || !sk_b_ || strcmp(sk_a_, sk_b_) != 0) {                                                           \
            SK_FAIL_AT("%s == %s: \"%s\" vs \"%s\"", #a, #b, sk_a_ ? sk_a_ : "(null)", sk_b_ ? sk_b_ : "(null)");      \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

#define SK_TEST(name) static void name(void)

#define SK_RUN(name)                                                                                                   \
    do {                                                                                                               \
        sk_test_current_failed = 0;                                                                                    \
        name();                                                                                                        \
        printf("%s %s\n", sk_test_current_failed ? "FAIL" : "ok  ", #name);                                            \
        sk_test_failures += sk_test_current_failed;                                                                    \
        sk_test_count++;                                                                                               \
    } while (0)

#define SK_TEST_MAIN(...)                                                                                              \
    int main(void)                                                                                                     \
    {                                                                                                                  \
        int sk_test_count = 0;                                                                                         \
        __VA_ARGS__                                                                                                    \
        printf("%d passed, %d failed\n", sk_test_count - sk_test_failures, sk_test_failures);                          \
        return sk_test_failures ? 1 : 0;                                                                               \
    }

#endif
