/* The possible holders of a sale (see userset.h). */
#include "engine/userset.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "util/common.h"

#define INITIAL_SLOTS 1024 /* power of two */

typedef struct table {
    struct table *retired; /* the writer's: the table this one replaced */
    uint64_t mask;
    _Atomic uint64_t slots[];
} table_t;

struct sk_userset {
    _Atomic(table_t *) cur;
    _Atomic size_t used;
};

uint64_t sk_user_hash(const char *user, size_t len)
{
    /* FNV-1a over the bytes, then a full avalanche (murmur3's finaliser): user ids
     * differ in a few trailing digits, and linear probing wants well-spread low bits. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)user[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1;
}

static table_t *table_new(uint64_t cap)
{
    table_t *t = sk_xcalloc(1, sizeof(*t) + cap * sizeof(t->slots[0]));
    sk_mem_huge(t, sizeof(*t) + cap * sizeof(t->slots[0]));
    t->mask = cap - 1;
    return t;
}

sk_userset_t *sk_userset_new(void)
{
    sk_userset_t *u = sk_xcalloc(1, sizeof(*u));
    atomic_init(&u->cur, table_new(INITIAL_SLOTS));
    return u;
}

void sk_userset_free(sk_userset_t *u)
{
    if (!u)
        return;
    table_t *t = atomic_load_explicit(&u->cur, memory_order_relaxed);
    while (t) {
        table_t *next = t->retired;
        free(t);
        t = next;
    }
    free(u);
}

/* Writer only: places h, which is not there, into t, which has room. */
static void place(table_t *t, uint64_t h)
{
    uint64_t i = h & t->mask;
    while (atomic_load_explicit(&t->slots[i], memory_order_relaxed) != 0)
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slots[i], h, memory_order_relaxed);
}

void sk_userset_insert(sk_userset_t *u, uint64_t h)
{
    h = h ? h : 1;
    table_t *t = atomic_load_explicit(&u->cur, memory_order_relaxed);
    /* One probe: it ends at the hash, or at the empty slot where it goes. */
    uint64_t i = h & t->mask;
    for (uint64_t v; (v = atomic_load_explicit(&t->slots[i], memory_order_relaxed)) != 0; i = (i + 1) & t->mask)
        if (v == h)
            return;
    size_t used = atomic_load_explicit(&u->used, memory_order_relaxed);
    if ((used + 1) * 2 > t->mask + 1) {
        table_t *n = table_new((t->mask + 1) * 2);
        for (uint64_t k = 0; k <= t->mask; k++) {
            uint64_t v = atomic_load_explicit(&t->slots[k], memory_order_relaxed);
            if (v)
                place(n, v);
        }
        n->retired = t;
        /* Release: a reader that loads the new table sees the copy complete. */
        atomic_store_explicit(&u->cur, n, memory_order_release);
        place(n, h);
    } else {
        /* What makes the insert visible to workers in time is the release store that
         * publishes the sale's counts after it; this one only keeps the slot whole. */
        atomic_store_explicit(&t->slots[i], h, memory_order_relaxed);
    }
    atomic_store_explicit(&u->used, used + 1, memory_order_relaxed);
}

bool sk_userset_may_contain(const sk_userset_t *u, uint64_t h)
{
    h = h ? h : 1;
    const table_t *t = atomic_load_explicit(&((sk_userset_t *)u)->cur, memory_order_acquire);
    for (uint64_t i = h & t->mask;; i = (i + 1) & t->mask) {
        uint64_t v = atomic_load_explicit(&((table_t *)t)->slots[i], memory_order_acquire);
        if (v == h)
            return true;
        if (v == 0)
            return false;
    }
}

size_t sk_userset_count(const sk_userset_t *u)
{
    return atomic_load_explicit(&((sk_userset_t *)u)->used, memory_order_relaxed);
}

void sk_userset_prefetch(const sk_userset_t *u, uint64_t h)
{
    h = h ? h : 1;
    const table_t *t = atomic_load_explicit(&((sk_userset_t *)u)->cur, memory_order_relaxed);
    __builtin_prefetch(&t->slots[h & t->mask]);
}
