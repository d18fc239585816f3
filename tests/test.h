/* A tiny test harness: assertions print both values, and a summary line that ctest
 * and CI can read. Each test file defines tests with SK_TEST and lists them in main.
 *
 * A failed assertion aborts the whole test program (after running the abort hook,
 * which testdir.h uses to remove its temporary directories): a test that returned
 * early would leave its threads running and its files behind for the tests after it,
 * which then fail for reasons that are not theirs. Since assertions never return, they
 * may be used in helpers of any return type. */
#ifndef SK_TESTS_TEST_H
#define SK_TESTS_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *sk_test_current; /* the test running, for the failure line */
static void (*sk_test_abort_hook)(void);

static inline _Noreturn void sk_test_abort(void)
{
    fprintf(stderr, "FAIL %s\n", sk_test_current ? sk_test_current : "(outside a test)");
    fflush(stdout);
    fflush(stderr);
    if (sk_test_abort_hook)
        sk_test_abort_hook();
    abort();
}

/* Prints "file:line: message" and aborts. */
#define SK_FAIL_AT(...)                                                                                                \
    do {                                                                                                               \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                                \
        fprintf(stderr, __VA_ARGS__);                                                                                  \
        fputc('\n', stderr);                                                                                           \
        sk_test_abort();                                                                                               \
    } while (0)

#define ASSERT_TRUE(c)                                                                                                 \
    do {                                                                                                               \
        if (!(c))                                                                                                      \
            SK_FAIL_AT("assertion failed: %s", #c);                                                                    \
    } while (0)

#define ASSERT_INT_OP(a, op, b)                                                                                        \
    do {                                                                                                               \
        int64_t sk_a_ = (int64_t)(a), sk_b_ = (int64_t)(b);                                                            \
        if (!(sk_a_ op sk_b_))                                                                                         \
            SK_FAIL_AT("%s %s %s: %" PRId64 " vs %" PRId64, #a, #op, #b, sk_a_, sk_b_);                                \
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
        if (sk_n_ != strlen(sk_s_) || memcmp(sk_p_, sk_s_, sk_n_) != 0)                                                \
            SK_FAIL_AT("%s: \"%.*s\" vs \"%s\"", #p, (int)sk_n_, sk_p_ ? sk_p_ : "", sk_s_);                           \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                                            \
    do {                                                                                                               \
        const char *sk_a_ = (a), *sk_b_ = (b);                                                                         \
        if (!sk_a_ || !sk_b_ || strcmp(sk_a_, sk_b_) != 0)                                                             \
            SK_FAIL_AT("%s == %s: \"%s\" vs \"%s\"", #a, #b, sk_a_ ? sk_a_ : "(null)", sk_b_ ? sk_b_ : "(null)");      \
    } while (0)

#define SK_TEST(name) static void name(void)

#define SK_RUN(name)                                                                                                   \
    do {                                                                                                               \
        sk_test_current = #name;                                                                                       \
        name();                                                                                                        \
        printf("ok   %s\n", #name);                                                                                    \
        fflush(stdout);                                                                                                \
        sk_test_count++;                                                                                               \
    } while (0)

/* Reaching the end means every test passed: a failure has aborted already. */
#define SK_TEST_MAIN(...)                                                                                              \
    int main(void)                                                                                                     \
    {                                                                                                                  \
        int sk_test_count = 0;                                                                                         \
        __VA_ARGS__                                                                                                    \
        sk_test_current = NULL;                                                                                        \
        printf("%d passed, 0 failed\n", sk_test_count);                                                                \
        return 0;                                                                                                      \
    }

#endif
