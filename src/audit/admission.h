/* The waiting room's audit (invariant I9), after a queued crowd (loadgen/queued.h):
 *
 *   bot_orders     orders of a bot's user in the store, plus bot purchases the service
 *                  answered with an order (no token, forged, another user's, expired,
 *                  the flooding address): a bot holds no admission of its own
 *   unadmitted     orders of honest users the run never saw admitted, or made before
 *                  their admission (created_at < admitted_at, the server's clock)
 *   out_of_order   buyers admitted before someone ahead of them in the queue: by
 *                  position, each admission time must not be earlier than that of
 *                  anyone before it, and nobody behind a buyer who was never admitted
 *                  (sold out) may have been
 *   oversold       units of the store's orders beyond the stock
 *   unfair         (random queues) the rank correlation between join order and the
 *                  drawn position of the pre-queue, |rho| > 0.5 over at least 30
 *                  buyers: a shuffle that keeps (or reverses) arrival order
 * and, for the report, the honest buyers' success rate and their time to purchase
 * (admission to the answer, and join to the answer).
 *
 * Ownership: everything is borrowed for the call. */
#ifndef SK_AUDIT_ADMISSION_H
#define SK_AUDIT_ADMISSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "audit/audit.h"
#include "loadgen/queued.h"

typedef struct {
    int64_t store_orders, store_units, honest_orders;
    int64_t bot_orders, unadmitted, out_of_order, oversold;
    int64_t admitted, honest, honest_joined, honest_bought, honest_refused;
    int64_t bots[SK_BOT__COUNT], bots_refused[SK_BOT__COUNT]; /* tried; answered 403 not_admitted */
    int64_t bots_other[SK_BOT__COUNT]; /* answered something else (none: no answer) */
    char bots_other_sample[SK_BOT__COUNT][32]; /* one of those answers */
    int64_t bots_unadmitted[SK_BOT__COUNT]; /* queued bots never admitted (the stock went first) */
    bool fairness_checked, unfair;
    int64_t fairness_n;
    double rho; /* join order against position (random: near 0; fifo: near 1) */
    double ttp_p50_ms, ttp_p90_ms, ttp_p99_ms; /* admission to the purchase's answer */
    double jtp_p50_ms, jtp_p99_ms; /* join to the purchase's answer */
    bool ok;
    char failure[256];
} sk_audit_queue_t;

/** Runs the audit against src. 0 (the verdict in out->ok), or -1 with err. */
int sk_audit_queue_run(const sk_loadgen_sale_t *sale, const sk_loadgen_qres_t *res, sk_audit_source_t *src,
                       sk_audit_queue_t *out, char *err, size_t err_len);
/** Prints the queued run and its audit. */
void sk_audit_queue_report(FILE *out, const sk_loadgen_qres_t *res, const sk_audit_queue_t *a);

#endif
