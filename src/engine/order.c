/* The order state machine and the rules of a purchase (order.h, engine.h): pure
 * functions over one table, shared by every store. */
#include "engine/order.h"

#include <errno.h>
#include <string.h>

#include "engine/engine.h"

/* When a rule applies, beyond its state and event. */
typedef enum {
    ANY = 0,
    IN_TIME, /* now <= pay_by: a payment received at pay_by still confirms */
    LATE, /* now > pay_by */
    SAME_PAYMENT, /* the order was paid with this payment id */
    OTHER_PAYMENT,
} when_t;

typedef struct {
    sk_order_state_t state;
    sk_order_event_t event;
    when_t when;
    sk_tr_result_t result;
    sk_order_state_t next;
    int8_t held, sold;
} rule_t;

#define R SK_ORDER_RESERVED
#define C SK_ORDER_CONFIRMED
#define X SK_ORDER_CANCELLED
#define E SK_ORDER_EXPIRED
#define F SK_ORDER_REFUNDED

/* The one table of rules. Every (state, event) pair has its rows; the first row whose
 * condition holds applies. Only rows with a state change move units. */
static const rule_t rules[] = {
    /* a reservation */
    {R, SK_EV_PAY, IN_TIME, SK_TR_OK, C, -1, +1},
    {R, SK_EV_PAY, LATE, SK_TR_EXPIRED, E, -1, 0}, /* no late confirmation (I8): it expires now */
    {R, SK_EV_CANCEL, ANY, SK_TR_OK, X, -1, 0},
    {R, SK_EV_EXPIRE, LATE, SK_TR_OK, E, -1, 0},
    {R, SK_EV_EXPIRE, IN_TIME, SK_TR_NOT_DUE, R, 0, 0},
    {R, SK_EV_REFUND, ANY, SK_TR_NOT_CONFIRMED, R, 0, 0},
    /* a confirmed order: never expires, never cancelled, only refunded */
    {C, SK_EV_PAY, SAME_PAYMENT, SK_TR_DUPLICATE, C, 0, 0},
    {C, SK_EV_PAY, OTHER_PAYMENT, SK_TR_ALREADY_PAID, C, 0, 0},
    {C, SK_EV_CANCEL, ANY, SK_TR_NOT_RESERVED, C, 0, 0},
    {C, SK_EV_EXPIRE, ANY, SK_TR_NOT_RESERVED, C, 0, 0},
    {C, SK_EV_REFUND, ANY, SK_TR_OK, F, 0, -1},
    /* final states: nothing moves them */
    {X, SK_EV_PAY, ANY, SK_TR_CANCELLED, X, 0, 0},
    {X, SK_EV_CANCEL, ANY, SK_TR_NOT_RESERVED, X, 0, 0},
    {X, SK_EV_EXPIRE, ANY, SK_TR_NOT_RESERVED, X, 0, 0},
    {X, SK_EV_REFUND, ANY, SK_TR_NOT_CONFIRMED, X, 0, 0},
    {E, SK_EV_PAY, ANY, SK_TR_EXPIRED, E, 0, 0},
    {E, SK_EV_CANCEL, ANY, SK_TR_NOT_RESERVED, E, 0, 0},
    {E, SK_EV_EXPIRE, ANY, SK_TR_NOT_RESERVED, E, 0, 0},
    {E, SK_EV_REFUND, ANY, SK_TR_NOT_CONFIRMED, E, 0, 0},
    {F, SK_EV_PAY, ANY, SK_TR_REFUNDED, F, 0, 0},
    {F, SK_EV_CANCEL, ANY, SK_TR_NOT_RESERVED, F, 0, 0},
    {F, SK_EV_EXPIRE, ANY, SK_TR_NOT_RESERVED, F, 0, 0},
    {F, SK_EV_REFUND, ANY, SK_TR_NOT_CONFIRMED, F, 0, 0},
};

#undef R
#undef C
#undef X
#undef E
#undef F

sk_order_step_t sk_order_step(sk_order_state_t st, sk_order_event_t ev, int64_t now, int64_t pay_by, bool same_payment)
{
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        const rule_t *r = &rules[i];
        if (r->state != st || r->event != ev)
            continue;
        bool holds = r->when == ANY || (r->when == IN_TIME && now <= pay_by) || (r->when == LATE && now > pay_by) ||
                     (r->when == SAME_PAYMENT && same_payment) || (r->when == OTHER_PAYMENT && !same_payment);
        if (holds)
            return (sk_order_step_t){r->result, r->next, r->held, r->sold};
    }
    /* Unreachable for valid arguments: every pair has a row that always holds. */
    return (sk_order_step_t){SK_TR_NOT_RESERVED, st, 0, 0};
}

static const char *const state_names[SK_ORDER__COUNT] = {"reserved", "confirmed", "cancelled", "expired", "refunded"};
static const char *const event_names[SK_EV__COUNT] = {"pay", "cancel", "expire", "refund"};
static const char *const tr_names[SK_TR__COUNT] = {
    "ok", "duplicate", "expired", "cancelled", "refunded", "already_paid", "not_reserved", "not_confirmed", "not_due"};

const char *sk_order_state_name(sk_order_state_t st)
{
    return (unsigned)st < SK_ORDER__COUNT ? state_names[st] : "unknown";
}

const char *sk_order_event_name(sk_order_event_t ev)
{
    return (unsigned)ev < SK_EV__COUNT ? event_names[ev] : "unknown";
}

const char *sk_tr_result_name(sk_tr_result_t r)
{
    return (unsigned)r < SK_TR__COUNT ? tr_names[r] : "unknown";
}

int sk_order_state_parse(const char *s, sk_order_state_t *out)
{
    for (int i = 0; i < SK_ORDER__COUNT; i++)
        if (strcmp(s, state_names[i]) == 0) {
            *out = (sk_order_state_t)i;
            return 0;
        }
    return -EINVAL;
}

int sk_order_event_parse(const char *s, sk_order_event_t *out)
{
    for (int i = 0; i < SK_EV__COUNT; i++)
        if (strcmp(s, event_names[i]) == 0) {
            *out = (sk_order_event_t)i;
            return 0;
        }
    return -EINVAL;
}

sk_buy_result_t sk_buy_rules(const sk_sale_params_t *p, int64_t now, int64_t q, int64_t active_units, int64_t remaining)
{
    if (now < p->starts_at)
        return SK_BUY_NOT_STARTED;
    if (p->closed || now >= p->ends_at)
        return SK_BUY_ENDED;
    if (p->paused)
        return SK_BUY_PAUSED;
    if (q > p->max_quantity)
        return SK_BUY_BAD_QUANTITY;
    if (active_units + q > p->per_user_limit)
        return SK_BUY_LIMIT_REACHED;
    if (remaining < q)
        return SK_BUY_SOLD_OUT;
    return SK_BUY_CONFIRMED;
}
