/* The audit of a sale's orders against its trail of operator controls (I10), for
 * audit.c: the trail read from the service (GET /api/v1/sales/{id}/log), and the check
 * of every order's place in it (audit/audit.h describes the counts).
 *
 * Ownership: the entries are the caller's (free them); orders are borrowed. */
#ifndef SK_AUDIT_TRAIL_H
#define SK_AUDIT_TRAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "loadgen/client.h"

/** One order as the trail check needs it. */
typedef struct {
    uint64_t seq;
    uint32_t quantity;
    bool active; /* reserved or confirmed */
    int64_t created_at; /* 0: unknown */
} sk_audit_order_t;

/** One trail entry. */
typedef struct {
    char action[16];
    int64_t at;
    uint64_t orders; /* before.orders: the orders made when it applied */
    int64_t stock_before, stock_after;
    int64_t out_before, out_after; /* sold + held */
} sk_audit_entry_t;

/** Reads the trail. Returns 0 with the entries, 1 when the service keeps none (404 or
 *  501: nothing to check), or -1 with err. */
int sk_audit_trail_fetch(const sk_loadgen_target_t *t, const char *admin_token, const char *sale_id,
                         sk_audit_entry_t **entries, size_t *n, char *err, size_t err_len);

/** Checks the orders (sorted here by seq) against the entries; adds to out's
 *  while_paused, after_close and over_stock. `stock` is the sale's stock now (the stock
 *  of a sale without entries). */
void sk_audit_trail_check(const sk_audit_entry_t *e, size_t n, sk_audit_order_t *orders, size_t n_orders, int64_t stock,
                          sk_audit_t *out);

#endif
