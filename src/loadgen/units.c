/* The crowd's mix of quantities (units.h). */
#include "loadgen/units.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/common.h"

static int parse_u32(const char *s, size_t n, uint32_t min, uint32_t max, uint32_t *out)
{
    int64_t v;
    if (sk_parse_i64(s, n, min, max, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int sk_loadgen_qty_parse(const char *spec, sk_loadgen_qty_t *q, char *err, size_t err_len)
{
    memset(q, 0, sizeof(*q));
    uint32_t w[SK_LOADGEN_QTY_MAX + 1] = {0};
    const char *p = spec, *end = spec + strlen(spec);
    const char *dash = strchr(spec, '-');
    if (!*spec)
        goto bad;
    if (dash && !strchr(spec, ':') && !strchr(spec, ',')) {
        uint32_t a, b;
        if (parse_u32(spec, (size_t)(dash - spec), 1, SK_LOADGEN_QTY_MAX, &a) < 0 ||
            parse_u32(dash + 1, strlen(dash + 1), a, SK_LOADGEN_QTY_MAX, &b) < 0)
            goto bad;
        for (uint32_t k = a; k <= b; k++)
            w[k] = 1;
    } else {
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *e = comma ? comma : end;
            const char *colon = memchr(p, ':', (size_t)(e - p));
            uint32_t k, weight = 1;
            if (parse_u32(p, (size_t)((colon ? colon : e) - p), 1, SK_LOADGEN_QTY_MAX, &k) < 0 ||
                (colon && parse_u32(colon + 1, (size_t)(e - colon - 1), 0, 1000000, &weight) < 0))
                goto bad;
            w[k] += weight;
            p = comma ? comma + 1 : end;
        }
    }
    for (uint32_t k = 1; k <= SK_LOADGEN_QTY_MAX; k++) {
        q->cum[k] = q->cum[k - 1] + w[k];
        if (w[k])
            q->max = k;
    }
    if (q->cum[SK_LOADGEN_QTY_MAX] == 0)
        goto bad;
    return 0;
bad:
    snprintf(err, err_len, "--quantity wants N, A-B or N:weight,N:weight... with quantities from 1 to %d, not \"%s\"",
             SK_LOADGEN_QTY_MAX, spec);
    memset(q, 0, sizeof(*q));
    return -1;
}

uint32_t sk_loadgen_qty_draw(const sk_loadgen_qty_t *q, uint32_t user, uint64_t seq)
{
    if (q->max == 0)
        return 1;
    /* A mix of the two numbers (splitmix64's finalizer): the same request, the same draw. */
    uint64_t x = ((uint64_t)user << 32) ^ seq ^ 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    uint32_t r = (uint32_t)(x % q->cum[q->max]);
    uint32_t k = 1;
    while (q->cum[k] <= r)
        k++;
    return k;
}

uint32_t sk_loadgen_qty_min(const sk_loadgen_qty_t *q)
{
    for (uint32_t k = 1; k <= q->max; k++)
        if (q->cum[k] > q->cum[k - 1])
            return k;
    return 1;
}

double sk_loadgen_qty_mean(const sk_loadgen_qty_t *q)
{
    if (q->max == 0)
        return 1;
    double sum = 0;
    for (uint32_t k = 1; k <= q->max; k++)
        sum += (double)k * (q->cum[k] - q->cum[k - 1]);
    return sum / q->cum[q->max];
}
