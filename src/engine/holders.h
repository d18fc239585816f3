/* Per-sale record of who holds which orders: an open-addressing hash of users and an
 * array of orders indexed by seq - 1. Written only by the ledger thread; once the sale
 * is sold out it never changes again and any thread may read it (after an acquire load
 * of sale->sold_out). Strings live in an arena addressed by offsets, so growing it
 * never invalidates a reference. */
#ifndef SK_ENGINE_HOLDERS_H
#define SK_ENGINE_HOLDERS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

typedef struct {
    uint64_t hash;
    uint32_t user_off;
    uint16_t user_len; /* 0: empty slot */
    uint32_t count; /* orders held (per_user_limit goes up to SK_LIMIT_MAX) */
    uint32_t first; /* order index of the first order, or UINT32_MAX */
    uint32_t last;
} sk_holder_t;

typedef struct {
    int64_t created_at;
    uint32_t holder; /* slot index */
    uint32_t next; /* next order of the same user, or UINT32_MAX */
    uint32_t req_off;
    uint16_t req_len;
} sk_holder_order_t;

struct sk_holders {
    sk_holder_t *slots;
    uint32_t cap; /* power of two */
    uint32_t used;
    sk_holder_order_t *orders;
    uint32_t n_orders, orders_cap;
    char *arena;
    size_t arena_len, arena_cap;
};

sk_holders_t *sk_holders_new(void);
void sk_holders_free(sk_holders_t *h);
/** Finds a user; returns the slot index or UINT32_MAX. Read-only. */
uint32_t sk_holders_find(const sk_holders_t *h, const char *user, size_t len);
/** Finds or inserts a user (ledger only); returns the slot index. */
uint32_t sk_holders_upsert(sk_holders_t *h, const char *user, size_t len);

/** The hash of a user id, as the table uses it. */
uint64_t sk_holders_hash(const char *user, size_t len);
/** Hints the CPU to load the line where the user's probe will start (a batch prefetches
 *  every purchase's line before deciding any, so the cache misses overlap). */
static inline void sk_holders_prefetch(const sk_holders_t *h, uint64_t hash)
{
    __builtin_prefetch(&h->slots[(uint32_t)hash & (h->cap - 1)]);
}
/** One probe for the ledger's hot path, with the hash from sk_holders_hash: the user's
 *  slot if present, else the empty slot where it would go (for sk_holders_insert_at). */
uint32_t sk_holders_probe(const sk_holders_t *h, uint64_t hash, const char *user, size_t len);
static inline int sk_holders_present(const sk_holders_t *h, uint32_t slot)
{
    return h->slots[slot].user_len != 0;
}
/** Inserts the user at the empty slot a probe returned (ledger only); returns the slot
 *  index, which differs from `slot` when the table had to grow. */
uint32_t sk_holders_insert_at(sk_holders_t *h, uint32_t slot, uint64_t hash, const char *user, size_t len);
/** Appends an order (seq = n_orders + 1 afterwards) for the holder at `slot`. */
void sk_holders_add_order(sk_holders_t *h, uint32_t slot, const char *req, size_t req_len, int64_t created_at);
/** Removes the newest order (undo of an uncommitted batch). */
void sk_holders_pop_order(sk_holders_t *h);
/** Looks for the holder's order with this request id; returns its index or UINT32_MAX. */
uint32_t sk_holders_find_request(const sk_holders_t *h, uint32_t slot, const char *req, size_t req_len);
/** Fills an sk_order_t from order index i. */
void sk_holders_order(const sk_holders_t *h, uint32_t i, sk_order_t *out);
static inline const char *sk_holders_str(const sk_holders_t *h, uint32_t off)
{
    return h->arena + off;
}

#endif
