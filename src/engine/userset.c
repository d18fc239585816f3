/* The possible holders of a sale (see userset.h). */
#include "engine/userset.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/common.h"

#define INITIAL_SLOTS 1024 /* power of two */

#define MOVE_STEP 64 /* entries of the replaced table moved per insert */
/* The next table is faulted in by the pager, or where there is none a page of it every
 * PREFAULT_EVERY inserts (as the ledger's holders index: engine/holders.c). */
#define PREFAULT_EVERY 16

typedef struct table {
    struct table *retired; /* the table this one replaced (set before publication) */
    uint64_t mask;
    uint64_t moved; /* the writer's: entries of `retired` below this are in this table */
    _Atomic bool moving; /* readers look in `retired` too while it is true */
    _Atomic uint64_t slots[];
} table_t;

struct sk_userset {
    _Atomic(table_t *) cur;
    _Atomic size_t used;
    /* Writer only: the next table, allocated once cur is 3/8 full (if cur may ever be
     * replaced: sk_userset_grows_ahead) and faulted in by the pager, or a page per
     * PREFAULT_EVERY inserts until it replaces cur at 1/2 (sk_mem_prefault); NULL before. */
    table_t *next;
    size_t next_faulted;
};

uint64_t sk_user_hash(const char *user, size_t len)
{
    /* Eight bytes at a time (every purchase hashes its buyer on the worker): each word
     * is multiplied in and its high half folded down; a last partial word is the last
     * eight bytes (overlapping the word before, the length being part of the seed) or,
     * for an id shorter than eight bytes, its bytes one by one. Then a full avalanche
     * (murmur3's finaliser): user ids differ in a few trailing digits, and linear
     * probing wants well-spread low bits. */
    const unsigned char *p = (const unsigned char *)user;
    const uint64_t k = 0xff51afd7ed558ccdull;
    uint64_t h = 0x9e3779b97f4a7c15ull * (len + 1), v;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&v, p + i, 8);
        h = (h ^ v) * k;
        h ^= h >> 32;
    }
    if (i < len) {
        if (len >= 8) {
            memcpy(&v, p + len - 8, 8);
        } else {
            v = 0;
            for (; i < len; i++)
                v = v << 8 | p[i];
        }
        h = (h ^ v) * k;
        h ^= h >> 32;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1;
}

/* A table is replaced once half full. A sale has at most SK_STOCK_MAX users (the ledger's
 * holders index is sized for as many: engine/holders.c), so a table of 2^31 slots is
 * never replaced: the 32 GiB one that would replace it is not allocated and faulted in
 * from 3/8 full (805 M users) on, for nothing. (Needed after all, the doubling allocates
 * it.) */
bool sk_userset_grows_ahead(uint64_t slots)
{
    return slots / 2 <= (uint64_t)SK_STOCK_MAX;
}

static table_t *table_new(uint64_t cap)
{
    table_t *t = sk_mem_table_new(sizeof(*t) + cap * sizeof(t->slots[0]));
    t->mask = cap - 1;
    return t;
}

static void table_free(table_t *t)
{
    if (t)
        sk_mem_table_free(t, sizeof(*t) + (t->mask + 1) * sizeof(t->slots[0]));
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
    table_free(u->next);
    table_t *t = atomic_load_explicit(&u->cur, memory_order_relaxed);
    while (t) {
        table_t *next = t->retired;
        table_free(t);
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

static bool table_has(const table_t *t, uint64_t h, memory_order mo)
{
    for (uint64_t i = h & t->mask;; i = (i + 1) & t->mask) {
        uint64_t v = atomic_load_explicit(&((table_t *)t)->slots[i], mo);
        if (v == h)
            return true;
        if (v == 0)
            return false;
    }
}

/* Writer only: moves up to n entries of the replaced table into t; once all are, readers
 * stop looking there (release: they then see every moved entry). */
static void move_some(table_t *t, uint64_t n)
{
    const table_t *old = t->retired;
    uint64_t end = old->mask + 1 - t->moved < n ? old->mask + 1 : t->moved + n;
    for (uint64_t k = t->moved; k < end; k++) {
        uint64_t v = atomic_load_explicit(&((table_t *)old)->slots[k], memory_order_relaxed);
        if (v)
            place(t, v);
    }
    t->moved = end;
    if (end == old->mask + 1)
        atomic_store_explicit(&t->moving, false, memory_order_release);
}

void sk_userset_insert(sk_userset_t *u, uint64_t h)
{
    h = h ? h : 1;
    table_t *t = atomic_load_explicit(&u->cur, memory_order_relaxed);
    bool moving = atomic_load_explicit(&t->moving, memory_order_relaxed);
    if (table_has(t, h, memory_order_relaxed) || (moving && table_has(t->retired, h, memory_order_relaxed)))
        return;
    if (moving)
        move_some(t, MOVE_STEP);
    size_t used = atomic_load_explicit(&u->used, memory_order_relaxed);
    if (!u->next && (used + 1) * 8 > (t->mask + 1) * 3 && sk_userset_grows_ahead(t->mask + 1)) {
        u->next = table_new((t->mask + 1) * 2);
        u->next_faulted = /* the pager's, or below */
            sk_mem_prefault_start((void *)u->next->slots, (t->mask + 1) * 2 * sizeof(t->slots[0]));
    }
    if (u->next && used % PREFAULT_EVERY == 0)
        sk_mem_prefault((void *)u->next->slots, (t->mask + 1) * 2 * sizeof(t->slots[0]), &u->next_faulted, 1);
    if ((used + 1) * 2 > t->mask + 1) {
        /* The new table is published empty and filled MOVE_STEP entries per insert
         * after this one; readers look in both meanwhile. The previous move is done
         * long before (the table takes cap/2 inserts to fill), but finish it if not. */
        while (atomic_load_explicit(&t->moving, memory_order_relaxed))
            move_some(t, UINT64_MAX);
        table_t *n = u->next ? u->next : table_new((t->mask + 1) * 2); /* allocated at 3/8, above */
        u->next = NULL;
        n->retired = t;
        atomic_store_explicit(&n->moving, true, memory_order_relaxed);
        /* Release: a reader that loads the new table sees `retired` and `moving`. */
        atomic_store_explicit(&u->cur, n, memory_order_release);
        t = n;
    }
    /* What makes the insert visible to workers in time is the release store that
     * publishes the sale's counts after it; this one only keeps the slot whole. */
    place(t, h);
    atomic_store_explicit(&u->used, used + 1, memory_order_relaxed);
}

bool sk_userset_may_contain(const sk_userset_t *u, uint64_t h)
{
    h = h ? h : 1;
    const table_t *t = atomic_load_explicit(&((sk_userset_t *)u)->cur, memory_order_acquire);
    /* `moving` first (acquire): seen false, every moved entry is seen in t; seen true,
     * the replaced table, never written again, still holds every entry it had. Read
     * after the probe of t, a move finished in between would hide the entry from both. */
    bool moving = atomic_load_explicit(&((table_t *)t)->moving, memory_order_acquire);
    return table_has(t, h, memory_order_acquire) || (moving && table_has(t->retired, h, memory_order_acquire));
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
