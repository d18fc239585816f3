/* The order state machine: the one table of rules every store follows (the embedded
 * ledger calls it; the Redis script carries the same table). Pure functions of their
 * arguments: no state, no clock of their own, any thread.
 *
 *   reserved --pay (at or before pay_by)--> confirmed --refund--> refunded
 *   reserved --pay (after pay_by)---------> expired   (409 expired: refund the payment)
 *   reserved --cancel---------------------> cancelled
 *   reserved --expire (after pay_by)------> expired
 *
 * Everything else is a refusal that changes nothing. A purchase without a payment
 * window makes a confirmed order at once (final: it never expires, I8).
 *
 * Units: an order holds `quantity` units. While reserved they count in the sale's
 * `held`, once confirmed in its `sold`; an order that leaves (cancel, expiry, refund)
 * returns them to `remaining` exactly once (I7). "now" is the writer's clock when it
 * decides (the embedded ledger's batch time, Redis's TIME): expiry and payment are
 * judged by the same clock, so a payment after an expiry can never confirm (I8). */
#ifndef SK_ENGINE_ORDER_H
#define SK_ENGINE_ORDER_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    SK_ORDER_RESERVED = 0,
    SK_ORDER_CONFIRMED,
    SK_ORDER_CANCELLED,
    SK_ORDER_EXPIRED,
    SK_ORDER_REFUNDED,
    SK_ORDER__COUNT
} sk_order_state_t;

typedef enum { SK_EV_PAY = 0, SK_EV_CANCEL, SK_EV_EXPIRE, SK_EV_REFUND, SK_EV__COUNT } sk_order_event_t;

typedef enum {
    SK_TR_OK = 0, /* the transition was made */
    SK_TR_DUPLICATE, /* pay of a confirmed order with its own payment id: nothing changes */
    SK_TR_EXPIRED, /* pay after pay_by (a reservation expires right there), or of an expired order */
    SK_TR_CANCELLED, /* pay of a cancelled order */
    SK_TR_REFUNDED, /* pay of a refunded order */
    SK_TR_ALREADY_PAID, /* pay of a confirmed order with another payment id */
    SK_TR_NOT_RESERVED, /* cancel or expire of an order that is not reserved */
    SK_TR_NOT_CONFIRMED, /* refund of an order that is not confirmed */
    SK_TR_NOT_DUE, /* expire at or before pay_by */
    SK_TR__COUNT
} sk_tr_result_t;

/** What an event does to an order: the answer, the state after (the same state when
 *  nothing changes) and how the sale's unit counts move, as multiples of the order's
 *  quantity (held -1, sold +1: a payment). */
typedef struct {
    sk_tr_result_t result;
    sk_order_state_t next;
    int8_t held, sold;
} sk_order_step_t;

/** The rules table. `pay_by` is the order's deadline (ignored for orders that are not
 *  reserved); `same_payment` tells, for a payment of a confirmed order, whether it
 *  carries the payment id the order was paid with. */
sk_order_step_t sk_order_step(sk_order_state_t st, sk_order_event_t ev, int64_t now, int64_t pay_by, bool same_payment);

/** The state a new order starts in: reserved with a payment window, else confirmed. */
static inline sk_order_state_t sk_order_initial(int64_t payment_window_ms)
{
    return payment_window_ms > 0 ? SK_ORDER_RESERVED : SK_ORDER_CONFIRMED;
}

/** An order that holds its units (reserved or confirmed): it counts against the
 *  per-user limit. */
static inline bool sk_order_active(sk_order_state_t st)
{
    return st == SK_ORDER_RESERVED || st == SK_ORDER_CONFIRMED;
}

/** A state that can never change again. */
static inline bool sk_order_final(sk_order_state_t st)
{
    return st == SK_ORDER_CANCELLED || st == SK_ORDER_EXPIRED || st == SK_ORDER_REFUNDED;
}

/** Names as the API and the journal write them ("reserved", "pay", "not_reserved", ...).
 *  The parse functions return 0 or -EINVAL. */
const char *sk_order_state_name(sk_order_state_t st);
const char *sk_order_event_name(sk_order_event_t ev);
const char *sk_tr_result_name(sk_tr_result_t r);
int sk_order_state_parse(const char *s, sk_order_state_t *out);
int sk_order_event_parse(const char *s, sk_order_event_t *out);

#endif
