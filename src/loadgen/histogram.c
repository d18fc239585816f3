#include "loadgen/histogram.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/common.h"

/* Bucket layout: the first 2*SUB_COUNT indexes hold the values 0 .. 2*SUB_COUNT-1 one by
 * one. After that, group g >= 1 covers [SUB_COUNT << g, SUB_COUNT << (g+1)) with
 * SUB_COUNT buckets of width 2^g, at indexes (g+1)*SUB_COUNT .. (g+2)*SUB_COUNT-1. */

void sk_hist_init(sk_hist_t *h)
{
    h->buckets = sk_xcalloc(SK_HIST_BUCKETS, sizeof(uint64_t));
    h->count = 0;
    h->min = UINT64_MAX;
    h->max = 0;
    h->sum = 0;
}

void sk_hist_free(sk_hist_t *h)
{
    free(h->buckets);
    h->buckets = NULL;
}

void sk_hist_reset(sk_hist_t *h)
{
    memset(h->buckets, 0, SK_HIST_BUCKETS * sizeof(uint64_t));
    h->count = 0;
    h->min = UINT64_MAX;
    h->max = 0;
    h->sum = 0;
}

uint32_t sk_hist_index(uint64_t v)
{
    if (v < 2 * SK_HIST_SUB_COUNT)
        return (uint32_t)v;
    if (v >= (1ull << SK_HIST_MAX_BITS))
        return SK_HIST_BUCKETS - 1;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned g = msb - SK_HIST_SUB_BITS; /* >= 1 */
    return (g + 1) * SK_HIST_SUB_COUNT + (uint32_t)((v >> g) - SK_HIST_SUB_COUNT);
}

void sk_hist_bucket_range(uint32_t index, uint64_t *lo, uint64_t *hi)
{
    if (index < 2 * SK_HIST_SUB_COUNT) {
        *lo = *hi = index;
        return;
    }
    unsigned g = index / SK_HIST_SUB_COUNT - 1;
    uint64_t sub = index % SK_HIST_SUB_COUNT + SK_HIST_SUB_COUNT;
    *lo = sub << g;
    *hi = *lo + (1ull << g) - 1;
}

void sk_hist_record_n(sk_hist_t *h, uint64_t v, uint64_t n)
{
    if (n == 0)
        return;
    h->buckets[sk_hist_index(v)] += n;
    h->count += n;
    h->sum += (double)v * (double)n;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void sk_hist_record(sk_hist_t *h, uint64_t v)
{
    h->buckets[sk_hist_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void sk_hist_merge(sk_hist_t *dst, const sk_hist_t *src)
{
    if (src->count == 0)
        return;
    for (uint32_t i = 0; i < SK_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t sk_hist_percentile(const sk_hist_t *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    if (p <= 0.0)
        return h->min;
    /* The rank is computed in floating point and then ceil'ed; the small epsilon keeps
     * p=99.9 of 1000 samples at rank 999 instead of 1000 through rounding. */
    double r = ceil(p / 100.0 * (double)h->count - 1e-9);
    uint64_t rank = r < 1 ? 1 : (uint64_t)r;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < SK_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            sk_hist_bucket_range(i, &lo, &hi);
            uint64_t mid = lo + (hi - lo) / 2;
            if (i == SK_HIST_BUCKETS - 1)
                mid = h->max; /* the top bucket also holds everything above its range */
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

double sk_hist_mean(const sk_hist_t *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
