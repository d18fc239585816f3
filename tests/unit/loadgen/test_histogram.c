/* The latency histogram against exact percentiles of sorted samples. */
#include <math.h>
#include <stdlib.h>

#include "loadgen/histogram.h"
#include "test.h"
#include "util/common.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void)
{
    /* xorshift64*: deterministic, so a failure can be reproduced */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static double rng_unit(void)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0; /* [0, 1) */
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The exact percentile with the histogram's rank rule: the sample of rank ceil(p*n). */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, double p)
{
    double r = ceil(p / 100.0 * (double)n - 1e-9);
    size_t rank = r < 1 ? 1 : (size_t)r;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static int within_1pct(uint64_t got, uint64_t want)
{
    double d = fabs((double)got - (double)want);
    return d <= 0.01 * (double)want;
}

enum { N = 100000 };
static uint64_t samples[N];

/* Fills `samples` from a distribution, records them, and compares percentiles. */
static int check_distribution(int kind)
{
    sk_hist_t h;
    sk_hist_init(&h);
    for (size_t i = 0; i < N; i++) {
        double u = rng_unit();
        uint64_t v;
        switch (kind) {
        case 0: /* uniform 0 .. 10 ms in ns */
            v = (uint64_t)(u * 1e7);
            break;
        case 1: /* exponential, mean 200 us */
            v = (uint64_t)(-log(1.0 - u) * 2e5);
            break;
        case 2: /* log-uniform over 1 ns .. 100 s: every bucket group */
            v = (uint64_t)exp(u * log(1e11));
            break;
        default: /* bimodal: fast path ~50 us, slow tail ~80 ms */
            v = u < 0.97 ? 40000 + rng_next() % 20000 : 60000000 + rng_next() % 40000000;
            break;
        }
        samples[i] = v;
        sk_hist_record(&h, v);
    }
    qsort(samples, N, sizeof(samples[0]), cmp_u64);
    static const double ps[] = {0.001, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    int bad = 0;
    for (size_t i = 0; i < SK_ARRAY_LEN(ps); i++) {
        uint64_t want = exact_percentile(samples, N, ps[i]);
        uint64_t got = sk_hist_percentile(&h, ps[i]);
        if (!within_1pct(got, want)) {
            fprintf(stderr, "kind %d p%g: histogram %llu, exact %llu\n", kind, ps[i], (unsigned long long)got,
                    (unsigned long long)want);
            bad++;
        }
    }
    if (h.count != N || h.min != samples[0] || h.max != samples[N - 1])
        bad++;
    double mean = 0;
    for (size_t i = 0; i < N; i++)
        mean += (double)samples[i];
    mean /= N;
    if (fabs(sk_hist_mean(&h) - mean) > 1e-6 * mean)
        bad++;
    sk_hist_free(&h);
    return bad;
}

SK_TEST(test_uniform)
{
    ASSERT_EQ(check_distribution(0), 0);
}
SK_TEST(test_exponential)
{
    ASSERT_EQ(check_distribution(1), 0);
}
SK_TEST(test_log_uniform)
{
    ASSERT_EQ(check_distribution(2), 0);
}
SK_TEST(test_bimodal)
{
    ASSERT_EQ(check_distribution(3), 0);
}

/* Every bucket's bounds map back to that bucket, buckets tile the value range without
 * gaps, and none is wider than 1/256 of its lower bound. */
SK_TEST(test_bucket_layout)
{
    uint64_t prev_hi = 0;
    for (uint32_t i = 0; i < SK_HIST_BUCKETS; i++) {
        uint64_t lo, hi;
        sk_hist_bucket_range(i, &lo, &hi);
        ASSERT_EQ(sk_hist_index(lo), i);
        ASSERT_EQ(sk_hist_index(hi), i);
        if (i > 0)
            ASSERT_EQ(lo, prev_hi + 1);
        if (lo > 0)
            ASSERT_TRUE((double)(hi - lo) <= (double)lo / 256.0);
        prev_hi = hi;
    }
    ASSERT_EQ(prev_hi + 1, 1ull << SK_HIST_MAX_BITS);
}

SK_TEST(test_merge)
{
    sk_hist_t a, b, all;
    sk_hist_init(&a);
    sk_hist_init(&b);
    sk_hist_init(&all);
    for (size_t i = 0; i < N; i++) {
        uint64_t v = 1000 + rng_next() % 1000000;
        samples[i] = v;
        sk_hist_record(i % 3 ? &a : &b, v);
        sk_hist_record(&all, v);
    }
    sk_hist_merge(&a, &b);
    ASSERT_EQ(a.count, N);
    ASSERT_EQ(a.min, all.min);
    ASSERT_EQ(a.max, all.max);
    for (uint32_t i = 0; i < SK_HIST_BUCKETS; i++)
        ASSERT_EQ(a.buckets[i], all.buckets[i]);
    qsort(samples, N, sizeof(samples[0]), cmp_u64);
    ASSERT_TRUE(within_1pct(sk_hist_percentile(&a, 50), exact_percentile(samples, N, 50)));
    ASSERT_TRUE(within_1pct(sk_hist_percentile(&a, 99.9), exact_percentile(samples, N, 99.9)));
    /* Merging an empty histogram changes nothing, min included. */
    sk_hist_t empty;
    sk_hist_init(&empty);
    sk_hist_merge(&a, &empty);
    ASSERT_EQ(a.count, N);
    ASSERT_EQ(a.min, all.min);
    sk_hist_free(&empty);
    sk_hist_free(&a);
    sk_hist_free(&b);
    sk_hist_free(&all);
}

SK_TEST(test_extremes)
{
    sk_hist_t h;
    sk_hist_init(&h);
    ASSERT_EQ(sk_hist_percentile(&h, 50), 0); /* empty */
    ASSERT_EQ(sk_hist_mean(&h), 0);
    sk_hist_record(&h, 0);
    ASSERT_EQ(sk_hist_percentile(&h, 50), 0);
    ASSERT_EQ(sk_hist_percentile(&h, 100), 0);
    sk_hist_record(&h, UINT64_MAX); /* beyond the range: top bucket, exact max */
    ASSERT_EQ(h.max, UINT64_MAX);
    ASSERT_EQ(sk_hist_percentile(&h, 100), UINT64_MAX);
    ASSERT_EQ(sk_hist_percentile(&h, 50), 0);
    ASSERT_EQ(sk_hist_percentile(&h, 50.1), UINT64_MAX);
    sk_hist_reset(&h);
    /* One repeated value: every percentile is that value exactly (clamped to min/max). */
    sk_hist_record_n(&h, 123456789, 1000);
    ASSERT_EQ(sk_hist_percentile(&h, 0), 123456789);
    ASSERT_EQ(sk_hist_percentile(&h, 50), 123456789);
    ASSERT_EQ(sk_hist_percentile(&h, 99.999), 123456789);
    ASSERT_EQ(h.count, 1000);
    /* Small values are exact. */
    sk_hist_reset(&h);
    for (uint64_t v = 1; v <= 500; v++)
        sk_hist_record(&h, v);
    ASSERT_EQ(sk_hist_percentile(&h, 50), 250);
    ASSERT_EQ(sk_hist_percentile(&h, 10), 50);
    ASSERT_EQ(sk_hist_percentile(&h, 99.9), 500);
    ASSERT_EQ(sk_hist_percentile(&h, 0.1), 1);
    /* Just below and at the top of the tracked range. */
    sk_hist_reset(&h);
    uint64_t top = (1ull << SK_HIST_MAX_BITS) - 1;
    sk_hist_record(&h, top);
    sk_hist_record(&h, top - 1000);
    ASSERT_TRUE(within_1pct(sk_hist_percentile(&h, 50), top - 1000));
    ASSERT_EQ(sk_hist_percentile(&h, 100), top);
    sk_hist_free(&h);
}

SK_TEST_MAIN(SK_RUN(test_uniform); SK_RUN(test_exponential); SK_RUN(test_log_uniform); SK_RUN(test_bimodal);
             SK_RUN(test_bucket_layout); SK_RUN(test_merge); SK_RUN(test_extremes);)
