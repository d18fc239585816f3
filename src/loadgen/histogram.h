/* A log-linear latency histogram in the manner of HdrHistogram.
 *
 * Values (nanoseconds, or any unsigned unit) below 2^(SK_HIST_SUB_BITS+1) are counted
 * exactly; above that each power-of-two range is split into 2^SK_HIST_SUB_BITS equal
 * buckets, so a bucket is never wider than 1/256 of its lower bound. A percentile is
 * reported as the middle of the bucket holding the sample of that rank, which puts it
 * within 0.2% of the true sample (and never outside [min, max]). Values at or above
 * 2^SK_HIST_MAX_BITS are counted in the top bucket; max still records them exactly.
 *
 * Ownership: sk_hist_init() allocates the bucket array, sk_hist_free() releases it.
 * A histogram is not thread-safe: give each thread its own and merge them at the end. */
#ifndef SK_LOADGEN_HISTOGRAM_H
#define SK_LOADGEN_HISTOGRAM_H

#include <stdint.h>

#define SK_HIST_SUB_BITS 8
#define SK_HIST_MAX_BITS 48 /* 2^48 ns is about 78 hours */
#define SK_HIST_SUB_COUNT (1u << SK_HIST_SUB_BITS)
#define SK_HIST_BUCKETS ((SK_HIST_MAX_BITS - SK_HIST_SUB_BITS + 1) * SK_HIST_SUB_COUNT)

typedef struct {
    uint64_t count;
    uint64_t min; /* UINT64_MAX while empty */
    uint64_t max;
    double sum;
    uint64_t *buckets; /* SK_HIST_BUCKETS counters */
} sk_hist_t;

/** Allocates an empty histogram (aborts when out of memory). */
void sk_hist_init(sk_hist_t *h);
/** Frees the buckets; the histogram must be initialised again before reuse. */
void sk_hist_free(sk_hist_t *h);
/** Empties the histogram, keeping its memory. */
void sk_hist_reset(sk_hist_t *h);

/** Records one value. */
void sk_hist_record(sk_hist_t *h, uint64_t v);
/** Records `n` occurrences of one value. */
void sk_hist_record_n(sk_hist_t *h, uint64_t v, uint64_t n);
/** Adds every count of `src` into `dst`. */
void sk_hist_merge(sk_hist_t *dst, const sk_hist_t *src);

/** The value at percentile `p` (0..100): the sample of rank ceil(p/100 * count)
 *  (at least 1), to within one bucket. 0 when the histogram is empty; p >= 100 gives max. */
uint64_t sk_hist_percentile(const sk_hist_t *h, double p);
/** Mean of the recorded values (exact, not bucketed); 0 when empty. */
double sk_hist_mean(const sk_hist_t *h);

/** The bucket index of a value and the bounds [lo, hi] of a bucket (for tests). */
uint32_t sk_hist_index(uint64_t v);
void sk_hist_bucket_range(uint32_t index, uint64_t *lo, uint64_t *hi);

#endif
