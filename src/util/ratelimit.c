/* Lock-free GCRA buckets in a fixed set-associative table (see ratelimit.h). */
#include "util/ratelimit.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/common.h"
#include "util/hash.h"

/* A word: the key's tag in the top 22 bits, the bucket's theoretical arrival time (µs,
 * modulo 2^42: 51 days) in the rest. Times are compared modulo 2^42, and a time further
 * ahead than a bucket can ever be is an old one that wrapped: it counts as a full bucket. */
#define TIME_BITS 42
#define HUGE_PAGE ((size_t)2 << 20)
#define TIME_MASK ((UINT64_C(1) << TIME_BITS) - 1)

typedef struct {
    _Alignas(64) _Atomic uint64_t w[SK_RATELIMIT_WAYS];
} set_t;

struct sk_ratelimit {
    uint64_t interval_us; /* one token */
    uint64_t tolerance_us; /* (burst - 1) tokens */
    uint64_t seed;
    size_t mask; /* sets - 1 */
    set_t *sets;
};

sk_ratelimit_t *sk_ratelimit_new(uint32_t rate, uint32_t burst, size_t entries, uint64_t seed)
{
    sk_ratelimit_t *t = sk_xcalloc(1, sizeof(*t));
    t->interval_us = rate >= 1000000 ? 1 : 1000000 / (rate ? rate : 1);
    t->tolerance_us = (uint64_t)(burst ? burst - 1 : 0) * t->interval_us;
    t->seed = seed;
    size_t sets = 1;
    while (sets * SK_RATELIMIT_WAYS < entries)
        sets *= 2;
    t->mask = sets - 1;
    /* A big table on 2 MiB pages where the kernel has them: a check under attack touches
     * a random line of it, and a TLB miss on top of the cache miss would double its cost. */
    size_t bytes = sets * sizeof(set_t), align = bytes >= HUGE_PAGE ? HUGE_PAGE : 64;
    t->sets = aligned_alloc(align, (bytes + align - 1) / align * align);
    if (!t->sets)
        abort();
    if (align == HUGE_PAGE)
        madvise(t->sets, bytes, MADV_HUGEPAGE);
    memset(t->sets, 0, bytes);
    return t;
}

void sk_ratelimit_free(sk_ratelimit_t *t)
{
    if (!t)
        return;
    free(t->sets);
    free(t);
}

size_t sk_ratelimit_bytes(const sk_ratelimit_t *t)
{
    return sizeof(*t) + (t->mask + 1) * sizeof(set_t);
}

/* How far a bucket's arrival time is ahead of now (0: a full bucket, or no bucket). */
static inline uint64_t lead(const sk_ratelimit_t *t, uint64_t w, uint64_t now)
{
    if (w == 0)
        return 0;
    uint64_t d = ((w & TIME_MASK) - now) & TIME_MASK;
    if (d >= (UINT64_C(1) << (TIME_BITS - 1)) || d > t->tolerance_us + t->interval_us)
        return 0; /* in the past, or so far ahead that it is an old time that wrapped */
    return d;
}

uint64_t sk_ratelimit_take(sk_ratelimit_t *t, const void *key, size_t len, uint64_t now_us)
{
    uint64_t h = sk_hash64(key, len, t->seed);
    set_t *set = &t->sets[h & t->mask];
    uint64_t tag = h >> TIME_BITS;
    if (tag == 0)
        tag = 1; /* 0 marks an empty slot */
    uint64_t now = now_us & TIME_MASK;
    /* A failed compare-and-swap means another thread changed the set just now (and made
     * progress): read it again. */
    for (;;) {
        int victim = 0;
        uint64_t victim_w = 0, victim_lead = UINT64_MAX;
        bool found = false;
        uint64_t w = 0;
        int slot = 0;
        for (int i = 0; i < SK_RATELIMIT_WAYS; i++) {
            w = atomic_load_explicit(&set->w[i], memory_order_relaxed);
            if (w >> TIME_BITS == tag) {
                found = true;
                slot = i;
                break;
            }
            uint64_t l = lead(t, w, now);
            if (l < victim_lead) {
                victim = i;
                victim_w = w;
                victim_lead = l;
            }
        }
        uint64_t ahead = 0;
        if (found) {
            ahead = lead(t, w, now);
            if (ahead > t->tolerance_us)
                return ahead - t->tolerance_us;
        } else {
            slot = victim;
            w = victim_w;
        }
        uint64_t next = tag << TIME_BITS | ((now + ahead + t->interval_us) & TIME_MASK);
        if (atomic_compare_exchange_weak_explicit(&set->w[slot], &w, next, memory_order_relaxed, memory_order_relaxed))
            return 0;
    }
}
