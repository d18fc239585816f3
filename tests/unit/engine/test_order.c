/* src/engine/order.c: the order state machine, every state x event x time edge (and
 * payment id) against an expectation written out here independently of the table; the
 * rules of a purchase in their order; the names. */
#include <errno.h>

#include "engine/engine.h"
#include "engine/order.h"
#include "test.h"

#define PAY_BY 1000

/* The expected step, from the design's prose rather than the table. */
static sk_order_step_t expected(sk_order_state_t st, sk_order_event_t ev, int64_t now, bool same)
{
    bool late = now > PAY_BY;
    sk_order_step_t none = {SK_TR_NOT_RESERVED, st, 0, 0};
    switch (ev) {
    case SK_EV_PAY:
        if (st == SK_ORDER_RESERVED)
            return late ? (sk_order_step_t){SK_TR_EXPIRED, SK_ORDER_EXPIRED, -1, 0}
                        : (sk_order_step_t){SK_TR_OK, SK_ORDER_CONFIRMED, -1, +1};
        if (st == SK_ORDER_CONFIRMED)
            return (sk_order_step_t){same ? SK_TR_DUPLICATE : SK_TR_ALREADY_PAID, st, 0, 0};
        if (st == SK_ORDER_CANCELLED)
            return (sk_order_step_t){SK_TR_CANCELLED, st, 0, 0};
        if (st == SK_ORDER_EXPIRED)
            return (sk_order_step_t){SK_TR_EXPIRED, st, 0, 0};
        return (sk_order_step_t){SK_TR_REFUNDED, st, 0, 0};
    case SK_EV_CANCEL:
        return st == SK_ORDER_RESERVED ? (sk_order_step_t){SK_TR_OK, SK_ORDER_CANCELLED, -1, 0} : none;
    case SK_EV_EXPIRE:
        if (st != SK_ORDER_RESERVED)
            return none;
        return late ? (sk_order_step_t){SK_TR_OK, SK_ORDER_EXPIRED, -1, 0} : (sk_order_step_t){SK_TR_NOT_DUE, st, 0, 0};
    default:
        return st == SK_ORDER_CONFIRMED ? (sk_order_step_t){SK_TR_OK, SK_ORDER_REFUNDED, 0, -1}
                                        : (sk_order_step_t){SK_TR_NOT_CONFIRMED, st, 0, 0};
    }
}

SK_TEST(test_every_state_event_and_edge)
{
    static const int64_t times[] = {INT64_MIN, 0, PAY_BY - 1, PAY_BY, PAY_BY + 1, INT64_MAX};
    int cases = 0;
    for (int st = 0; st < SK_ORDER__COUNT; st++) {
        for (int ev = 0; ev < SK_EV__COUNT; ev++) {
            for (size_t t = 0; t < SK_ARRAY_LEN(times); t++) {
                for (int same = 0; same < 2; same++) {
                    sk_order_step_t got =
                        sk_order_step((sk_order_state_t)st, (sk_order_event_t)ev, times[t], PAY_BY, same);
                    sk_order_step_t want = expected((sk_order_state_t)st, (sk_order_event_t)ev, times[t], same);
                    if (got.result != want.result || got.next != want.next || got.held != want.held ||
                        got.sold != want.sold)
                        SK_FAIL_AT("%s + %s at pay_by%+lld (same payment %d): got %s -> %s (%d, %d), want %s -> %s "
                                   "(%d, %d)",
                                   sk_order_state_name((sk_order_state_t)st), sk_order_event_name((sk_order_event_t)ev),
                                   (long long)(times[t] == INT64_MIN   ? -9999
                                               : times[t] == INT64_MAX ? 9999
                                                                       : times[t] - PAY_BY),
                                   same, sk_tr_result_name(got.result), sk_order_state_name(got.next), got.held,
                                   got.sold, sk_tr_result_name(want.result), sk_order_state_name(want.next), want.held,
                                   want.sold);
                    cases++;
                }
            }
        }
    }
    ASSERT_EQ(cases, SK_ORDER__COUNT * SK_EV__COUNT * 6 * 2);
}

SK_TEST(test_invariants_of_the_table)
{
    /* Whatever happens: a change moves the order's units between the sale's counts as
     * its state's place says (reserved: held, confirmed: sold, else: remaining), exactly
     * once (I7); a refusal moves nothing; a confirmed order never expires and a late
     * payment never confirms (I8); final states never change. */
    static const int64_t times[] = {PAY_BY - 1, PAY_BY, PAY_BY + 1};
    for (int st = 0; st < SK_ORDER__COUNT; st++) {
        for (int ev = 0; ev < SK_EV__COUNT; ev++) {
            for (size_t t = 0; t < 3; t++) {
                for (int same = 0; same < 2; same++) {
                    sk_order_state_t s0 = (sk_order_state_t)st;
                    sk_order_step_t g = sk_order_step(s0, (sk_order_event_t)ev, times[t], PAY_BY, same);
                    int held0 = s0 == SK_ORDER_RESERVED, sold0 = s0 == SK_ORDER_CONFIRMED;
                    int held1 = g.next == SK_ORDER_RESERVED, sold1 = g.next == SK_ORDER_CONFIRMED;
                    ASSERT_EQ(held1 - held0, g.held);
                    ASSERT_EQ(sold1 - sold0, g.sold);
                    if (g.next != s0)
                        ASSERT_TRUE(g.result == SK_TR_OK || g.result == SK_TR_EXPIRED);
                    else
                        ASSERT_TRUE(g.result != SK_TR_OK);
                    if (sk_order_final(s0))
                        ASSERT_EQ(g.next, s0);
                    if (s0 == SK_ORDER_CONFIRMED)
                        ASSERT_NE(g.next, SK_ORDER_EXPIRED);
                    if (g.next == SK_ORDER_CONFIRMED && s0 != SK_ORDER_CONFIRMED)
                        ASSERT_LE(times[t], PAY_BY);
                }
            }
        }
    }
    /* The edge itself: a payment received at pay_by confirms; one ms later it expires. */
    ASSERT_EQ(sk_order_step(SK_ORDER_RESERVED, SK_EV_PAY, PAY_BY, PAY_BY, false).next, SK_ORDER_CONFIRMED);
    ASSERT_EQ(sk_order_step(SK_ORDER_RESERVED, SK_EV_PAY, PAY_BY + 1, PAY_BY, false).next, SK_ORDER_EXPIRED);
    ASSERT_EQ(sk_order_step(SK_ORDER_RESERVED, SK_EV_EXPIRE, PAY_BY, PAY_BY, false).result, SK_TR_NOT_DUE);
    ASSERT_EQ(sk_order_initial(0), SK_ORDER_CONFIRMED);
    ASSERT_EQ(sk_order_initial(1), SK_ORDER_RESERVED);
}

SK_TEST(test_names)
{
    for (int st = 0; st < SK_ORDER__COUNT; st++) {
        sk_order_state_t back;
        ASSERT_EQ(sk_order_state_parse(sk_order_state_name((sk_order_state_t)st), &back), 0);
        ASSERT_EQ(back, st);
    }
    for (int ev = 0; ev < SK_EV__COUNT; ev++) {
        sk_order_event_t back;
        ASSERT_EQ(sk_order_event_parse(sk_order_event_name((sk_order_event_t)ev), &back), 0);
        ASSERT_EQ(back, ev);
    }
    sk_order_event_t e;
    ASSERT_EQ(sk_order_event_parse("paid", &e), -EINVAL);
    ASSERT_STR_EQ(sk_tr_result_name(SK_TR_ALREADY_PAID), "already_paid");
    ASSERT_STR_EQ(sk_tr_result_name(SK_TR_NOT_CONFIRMED), "not_confirmed");
    ASSERT_STR_EQ(sk_order_state_name(SK_ORDER_REFUNDED), "refunded");
    ASSERT_STR_EQ(sk_buy_result_names[SK_BUY_RESERVED], "reserved");
    ASSERT_STR_EQ(sk_buy_result_names[SK_BUY_BAD_QUANTITY], "bad_quantity");
}

SK_TEST(test_buy_rules_in_order)
{
    sk_sale_params_t p = {
        .name = "x", .starts_at = 100, .ends_at = 200, .per_user_limit = 4, .max_quantity = 2, .payment_window_ms = 0};
    ASSERT_EQ(sk_buy_rules(&p, 150, 1, 0, 10), SK_BUY_CONFIRMED);
    ASSERT_EQ(sk_buy_rules(&p, 99, 9, 9, 0), SK_BUY_NOT_STARTED); /* the window before anything */
    ASSERT_EQ(sk_buy_rules(&p, 100, 1, 0, 1), SK_BUY_CONFIRMED);
    ASSERT_EQ(sk_buy_rules(&p, 200, 1, 0, 10), SK_BUY_ENDED);
    ASSERT_EQ(sk_buy_rules(&p, 199, 3, 4, 0), SK_BUY_BAD_QUANTITY); /* quantity before limit and stock */
    ASSERT_EQ(sk_buy_rules(&p, 199, 2, 3, 0), SK_BUY_LIMIT_REACHED); /* units, not orders: 3 + 2 > 4 */
    ASSERT_EQ(sk_buy_rules(&p, 199, 2, 2, 10), SK_BUY_CONFIRMED); /* 2 + 2 == 4 */
    ASSERT_EQ(sk_buy_rules(&p, 199, 2, 2, 1), SK_BUY_SOLD_OUT); /* all or nothing: 1 left of 2 */
    ASSERT_EQ(sk_buy_rules(&p, 199, 1, 2, 1), SK_BUY_CONFIRMED);
    p.paused = true;
    ASSERT_EQ(sk_buy_rules(&p, 150, 1, 0, 10), SK_BUY_PAUSED);
    ASSERT_EQ(sk_buy_rules(&p, 250, 1, 0, 10), SK_BUY_ENDED);
    p.paused = false;
    p.closed = true;
    ASSERT_EQ(sk_buy_rules(&p, 150, 1, 0, 10), SK_BUY_ENDED);
    ASSERT_EQ(sk_buy_rules(&p, 50, 1, 0, 10), SK_BUY_NOT_STARTED);
}

SK_TEST_MAIN(SK_RUN(test_every_state_event_and_edge); SK_RUN(test_invariants_of_the_table); SK_RUN(test_names);
             SK_RUN(test_buy_rules_in_order);)
