/* src/audit/trail.c: orders placed against a sale's trail of controls, by seq and by
 * time (equal times allowed: one batch), and units against the stock in effect. */
#include <string.h>

#include "audit/trail.h"
#include "test.h"

static sk_audit_entry_t entry(const char *action, int64_t at, uint64_t orders, int64_t stock_before,
                              int64_t stock_after, int64_t out)
{
    sk_audit_entry_t e = {.at = at,
                          .orders = orders,
                          .stock_before = stock_before,
                          .stock_after = stock_after,
                          .out_before = out,
                          .out_after = out};
    snprintf(e.action, sizeof(e.action), "%s", action);
    return e;
}

/* n orders of `q` units at times t0, t0 + 1, ... (seq i at t0 + i - 1), shuffled by the check. */
static void orders(sk_audit_order_t *o, size_t n, uint32_t q, int64_t t0)
{
    for (size_t i = 0; i < n; i++)
        o[n - 1 - i] = (sk_audit_order_t){.seq = i + 1, .quantity = q, .active = true, .created_at = t0 + (int64_t)i};
}

SK_TEST(test_clean_trail)
{
    sk_audit_order_t o[20];
    orders(o, 20, 2, 1000);
    /* pause after order 5 (at 1004, the time of order 5), resume at 1010 before order 6
     * (which the same batch made: equal time), add stock after order 12, close after 20 */
    sk_audit_entry_t e[] = {entry("pause", 1004, 5, 30, 30, 10), entry("resume", 1005, 5, 30, 30, 10),
                            entry("add_stock", 1011, 12, 30, 40, 24), entry("close", 1019, 20, 40, 40, 40)};
    sk_audit_t a = {0};
    sk_audit_trail_check(e, 4, o, 20, 40, &a);
    ASSERT_EQ(a.while_paused, 0);
    ASSERT_EQ(a.after_close, 0);
    ASSERT_EQ(a.over_stock, 0);
}

SK_TEST(test_violations)
{
    sk_audit_order_t o[20];
    orders(o, 20, 2, 1000);
    /* Orders 6..8 between a pause and its resume, 19..20 after the close, and order 16
     * takes unit 31 and 32 of a stock of 30 (before the add after order 17). */
    sk_audit_entry_t e[] = {entry("pause", 1004, 5, 40, 40, 10), entry("resume", 1008, 8, 40, 40, 16),
                            entry("remove_stock", 1009, 9, 40, 30, 18), entry("add_stock", 1017, 17, 30, 40, 34),
                            entry("close", 1017, 18, 40, 40, 36)};
    sk_audit_t a = {0};
    sk_audit_trail_check(e, 5, o, 20, 40, &a);
    ASSERT_EQ(a.while_paused, 3);
    ASSERT_EQ(a.after_close, 2);
    /* the add's own before counts: 34 out of 30 (1); orders 16 and 17: 32 and 34 of 30 */
    ASSERT_EQ(a.over_stock, 3);

    /* By time alone (a store without the trail's order counts): order 7 at 1006 lies
     * strictly inside a pause from 1005 to 1007. */
    sk_audit_entry_t t[] = {entry("pause", 1005, 0, 100, 100, 0), entry("resume", 1007, 0, 100, 100, 0)};
    memset(&a, 0, sizeof(a));
    orders(o, 20, 1, 1000);
    sk_audit_trail_check(t, 2, o, 20, 100, &a);
    ASSERT_EQ(a.while_paused, 1);

    /* A pause never resumed holds to the end; cancelled orders are not units out. */
    sk_audit_entry_t p[] = {entry("pause", 1009, 10, 15, 15, 10)};
    memset(&a, 0, sizeof(a));
    orders(o, 20, 1, 1000);
    for (int i = 0; i < 20; i++)
        o[i].active = o[i].seq <= 15;
    sk_audit_trail_check(p, 1, o, 20, 15, &a);
    ASSERT_EQ(a.while_paused, 10);
    ASSERT_EQ(a.over_stock, 0);
}

SK_TEST(test_no_trail)
{
    sk_audit_order_t o[5];
    orders(o, 5, 3, 1);
    sk_audit_t a = {0};
    sk_audit_trail_check(NULL, 0, o, 5, 14, &a);
    ASSERT_EQ(a.over_stock, 1); /* 15 units of a stock of 14 */
}

SK_TEST_MAIN(SK_RUN(test_clean_trail); SK_RUN(test_violations); SK_RUN(test_no_trail);)
