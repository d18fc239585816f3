/* The purchase gate, on the worker thread: what a worker answers alone, from its clock
 * and what the ledger published, without queueing to the ledger or taking a lock. It
 * must cost about as much as a static "200 ok", since after the sell-out (and before
 * the opening) it is nearly all the traffic there is — and while a sold-out sale's
 * reservations are pending, the crowd keeps clicking for minutes. */
#include "api/internal.h"

bool sk_api_gate_window(const sk_sale_t *s, int64_t now, sk_buy_result_t *r)
{
    /* Only the start: nobody holds an order before it. After the end a holder's replay
     * still gets its first answer (I5), which the ledger decides. */
    if (now < sk_sale_params(s)->starts_at) {
        *r = SK_BUY_NOT_STARTED;
        return true;
    }
    return false;
}

bool sk_api_gate_buyer(const sk_sale_t *s, int64_t now, uint64_t user_hash, uint32_t q, sk_buy_result_t *r,
                       int64_t *remaining)
{
    /* Non-holders of a sale that refuses them (ended, paused, sold out) are answered
     * here: one probe of the sale's possible holders. A possible holder goes to the
     * ledger, which checks a replay first. */
    return sk_engine_gate(s, now, user_hash, q, r, remaining);
}
