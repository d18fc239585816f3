/* The purchase gate, on the worker thread: what a worker answers alone, from its clock
 * and what the ledger published, without queueing to the ledger or taking a lock. It
 * must cost about as much as a static "200 ok", since after the sell-out (and before
 * the opening) it is nearly all the traffic there is. */
#include "api/internal.h"

bool sk_api_gate_window(const sk_sale_t *s, int64_t now, sk_buy_result_t *r)
{
    /* Only the start: after the end a holder's replay still gets its first answer (I5),
     * which the holders decide (sk_api_gate_final, or the backend). */
    if (now < s->starts_at && !sk_sale_final(s)) {
        *r = SK_BUY_NOT_STARTED;
        return true;
    }
    return false;
}

bool sk_api_gate_final(const sk_sale_t *s, int64_t now, const char *user, size_t ul, const char *req, size_t rl,
                       sk_buy_result_t *r, sk_order_t *order, uint32_t *held)
{
    /* Once a sale is sold out or closed at its end its holders never change, and the
     * backend published them: every later purchase (a holder's retry, a second attempt,
     * anyone else) has its answer here. */
    if (!sk_sale_final(s))
        return false;
    *r = sk_engine_final_answer(s, now, user, ul, req, rl, order, held);
    return true;
}
