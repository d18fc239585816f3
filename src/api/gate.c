/* The purchase gate, on the worker thread: what a worker answers alone, from its clock
 * and what the ledger published, without queueing to the ledger or taking a lock. It
 * must cost about as much as a static "200 ok", since after the sell-out (and before
 * the opening) it is nearly all the traffic there is. */
#include "api/internal.h"

bool sk_api_gate_window(const sk_sale_t *s, int64_t now, sk_buy_result_t *r)
{
    if (now < s->starts_at) {
        *r = SK_BUY_NOT_STARTED;
        return true;
    }
    if (now >= s->ends_at) {
        *r = SK_BUY_ENDED;
        return true;
    }
    return false;
}

bool sk_api_gate_final(const sk_sale_t *s, const char *user, size_t ul, const char *req, size_t rl, sk_buy_result_t *r,
                       sk_order_t *order)
{
    /* Once a sale is sold out its holders never change, and the ledger published them:
     * every later purchase (a holder's retry, a second attempt, anyone else) has its
     * answer here. */
    if (!sk_sale_final(s))
        return false;
    *r = sk_engine_sold_out_answer(s, user, ul, req, rl, order);
    return true;
}
