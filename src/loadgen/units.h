/* Several units per order in the crowd: the mix of quantities its purchases ask for
 * (--quantity), drawn per request from the user and the request's number, so a retry of
 * a request asks for the same quantity again.
 *
 * Ownership: plain values, no allocation. */
#ifndef SK_LOADGEN_UNITS_H
#define SK_LOADGEN_UNITS_H

#include <stddef.h>
#include <stdint.h>

#define SK_LOADGEN_QTY_MAX 64 /* the largest quantity a mix may name */

/** A mix of quantities: quantity q (1..max) with weight w[q]; max 0 means one unit, and
 *  no quantity in the request body at all (as before quantities existed). */
typedef struct {
    uint32_t max;
    uint32_t cum[SK_LOADGEN_QTY_MAX + 1]; /* cum[q] = w[1] + ... + w[q] */
} sk_loadgen_qty_t;

/** Parses "3" (always 3), "1-3" (1, 2 or 3, as often each) or "1:60,2:30,5:10" (weights).
 *  Returns 0, or -1 with a message. */
int sk_loadgen_qty_parse(const char *spec, sk_loadgen_qty_t *q, char *err, size_t err_len);

/** The quantity of request `seq` of user `user` (1 when the mix is empty). */
uint32_t sk_loadgen_qty_draw(const sk_loadgen_qty_t *q, uint32_t user, uint64_t seq);

/** The smallest quantity the mix draws (1 when empty). */
uint32_t sk_loadgen_qty_min(const sk_loadgen_qty_t *q);

/** The mean quantity of the mix (1 when empty). */
double sk_loadgen_qty_mean(const sk_loadgen_qty_t *q);

#endif
