/* Per-sale record of every order and who holds it: an open-addressing hash of users, an
 * array of orders indexed by seq - 1 (each user's orders linked in seq order, with their
 * quantity, state and times), and an index of request ids for users who hold many
 * orders. Owned, written and read by the ledger thread only (the embedded ledger keeps
 * one per sale; the engine publishes only the users, as an sk_userset_t).
 *
 * Sizes: every count and index here holds the API's limits (stock up to SK_STOCK_MAX
 * orders and users, SK_LIMIT_MAX orders per user). Strings live in an arena of fixed
 * chunks addressed by 64-bit offsets: growing it never moves a string, and it may pass
 * 4 GiB (a billion orders with long ids need far more).
 *
 * Cost per decision: finding a user is one hash probe; finding a user's request id walks
 * their list while they hold at most SK_HOLDERS_WALK_MAX orders, and takes one probe of
 * the request index beyond that, so a user with a million orders costs what a user with
 * one does. Undoing the newest order is O(1) too. */
#ifndef SK_ENGINE_HOLDERS_H
#define SK_ENGINE_HOLDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "util/common.h"

typedef struct sk_holders sk_holders_t;

#define SK_HOLDERS_NONE UINT32_MAX /* no slot, no order */
#define SK_HOLDERS_WALK_MAX 8 /* orders a user may hold before their request ids are indexed */
#define SK_HOLDERS_CHUNK_BITS 20 /* arena chunks of 1 MiB (the first grows up to that) */
#define SK_HOLDERS_PAGE_BITS 14 /* holders and orders live in pages of 16 384 entries */
#define SK_HOLDERS_PAGE ((uint32_t)1 << SK_HOLDERS_PAGE_BITS)

_Static_assert(SK_STOCK_MAX < SK_HOLDERS_NONE / 2, "order indexes and user slots are 32-bit");
_Static_assert(SK_LIMIT_MAX < SK_HOLDERS_NONE, "a holder's count is 32-bit");
_Static_assert(SK_USER_MAX < UINT16_MAX && SK_REQUEST_MAX < UINT16_MAX, "string lengths are 16-bit");

typedef struct {
    uint64_t hash;
    uint64_t user_off; /* arena offset */
    uint32_t count; /* orders, in any state */
    uint32_t units; /* units of the user's active (reserved or confirmed) orders */
    uint32_t first; /* order index of the first order, or SK_HOLDERS_NONE */
    uint32_t last;
    uint16_t user_len; /* 0: empty slot */
} sk_holder_t;

typedef struct {
    int64_t created_at;
    int64_t paid_at; /* 0: not paid */
    int64_t closed_at; /* 0: not cancelled, expired or refunded */
    uint64_t req_off; /* arena offset */
    uint64_t pay_off; /* arena offset of the payment id (pay_len 0: none) */
    uint32_t holder; /* slot index */
    uint32_t next; /* next order of the same user, or SK_HOLDERS_NONE */
    uint32_t prev; /* previous order of the same user, or SK_HOLDERS_NONE */
    uint32_t quantity; /* units */
    uint16_t req_len;
    uint8_t pay_len;
    uint8_t state; /* sk_order_state_t */
} sk_holder_order_t;

_Static_assert(SK_PAYMENT_ID_MAX <= UINT8_MAX, "payment id lengths are 8-bit");

/* One entry of the request index: an order and 32 bits of the hash of (user, request). */
typedef struct {
    uint32_t order; /* SK_HOLDERS_NONE: empty */
    uint32_t tag;
} sk_holder_req_t;

/* An array that grows without moving what it holds: entry i is entry i % PAGE of page
 * i / PAGE. Page 0 starts small and doubles up to a page (most sales are small); every
 * later page is allocated whole when the first entry reaches it, and only the directory
 * of pages (a pointer per 16 384 entries) is ever copied. So no purchase pays for
 * copying, or faulting in, all the orders before it: a doubling array of a few million
 * orders had stalled one batch for up to 200 ms. */
typedef struct {
    void **pages;
    uint32_t n_pages; /* of the directory */
    uint32_t cap; /* entries allocated */
} sk_holders_paged_t;

/* The users: a dense array of holders (a holder's index never changes, so orders keep
 * it) and an open-addressing index over it. An index entry is the low 32 bits of the
 * user's hash (which also give its home position) above the holder's index + 1; 0 is
 * empty. When the index doubles, the old one is moved into the new one a few entries at
 * a time by the inserts that follow (like Redis's incremental rehash), so no single
 * purchase pays for copying millions of users: lookups look in the new index, then in
 * the part of the old one not moved yet. */
struct sk_holders {
    sk_holders_paged_t slots; /* the holders (sk_holder_t), by index: sk_holders_user_at */
    uint32_t used;
    uint64_t *index;
    uint32_t cap; /* of index: power of two, at most 2^31 (users <= SK_STOCK_MAX at load <= 1/2) */
    uint64_t *old; /* the index being moved into `index`, or NULL */
    uint32_t old_cap, moved; /* old's size; its entries below `moved` are in `index` */
    /* The next index (2 * cap entries), allocated once the index is 3/8 full and faulted
     * in by the pager (sk_mem_populate_ahead), or where there is none a page per 16 inserts
     * until it replaces the index at 1/2 (sk_mem_prefault); NULL before, and for an index
     * of 2^31 entries, never replaced. */
    uint64_t *next;
    size_t next_faulted;
    sk_holders_paged_t orders; /* sk_holder_order_t, by seq - 1: sk_holders_order_at */
    uint32_t n_orders;
    /* The string arena: chunk i holds offsets [i << CHUNK_BITS, (i + 1) << CHUNK_BITS). */
    char **chunks;
    size_t n_chunks;
    size_t chunk0_cap; /* bytes allocated for chunk 0 (it starts small) */
    uint64_t arena_len; /* the next free offset */
    /* Where the pages after page 0 and the chunks after chunk 0 come from: only a big
     * sale has them, and it grows them during its flood (sk_blocks_t). */
    sk_blocks_t blocks;
    /* The request index: orders of users holding more than SK_HOLDERS_WALK_MAX. */
    sk_holder_req_t *reqs;
    uint32_t req_cap, req_used;
    /* Work counter of the writer: request-index entries looked at while adding and
     * undoing orders. Only tests read it, to check that the cost of a decision does not
     * grow with the user's orders (sk_holders_find_request counts its own). */
    uint64_t steps;
};

/** The holder at index i (i < used). */
static inline sk_holder_t *sk_holders_user_at(const sk_holders_t *h, uint32_t i)
{
    sk_holder_t *page = h->slots.pages[i >> SK_HOLDERS_PAGE_BITS];
    return page + (i & (SK_HOLDERS_PAGE - 1));
}
/** The order at index i (i < n_orders). */
static inline sk_holder_order_t *sk_holders_order_at(const sk_holders_t *h, uint32_t i)
{
    sk_holder_order_t *page = h->orders.pages[i >> SK_HOLDERS_PAGE_BITS];
    return page + (i & (SK_HOLDERS_PAGE - 1));
}

/** Allocates an empty record (the caller owns it: sk_holders_free). */
sk_holders_t *sk_holders_new(void);
void sk_holders_free(sk_holders_t *h);
/** Finds a user; returns the holder index or SK_HOLDERS_NONE. Read-only. */
uint32_t sk_holders_find(const sk_holders_t *h, const char *user, size_t len);
/** Finds or inserts a user (ledger only); returns the holder index. */
uint32_t sk_holders_upsert(sk_holders_t *h, const char *user, size_t len);

/** The hash of a user id, as the table uses it. */
uint64_t sk_holders_hash(const char *user, size_t len);
/** Hints the CPU to load the line where the user's probe will start (a batch prefetches
 *  every purchase's line before deciding any, so the cache misses overlap). */
static inline void sk_holders_prefetch(const sk_holders_t *h, uint64_t hash)
{
    __builtin_prefetch(&h->index[(uint32_t)hash & (h->cap - 1)]);
}
/** One lookup for the ledger's hot path, with the hash from sk_holders_hash: the user's
 *  holder index, or SK_HOLDERS_NONE. */
uint32_t sk_holders_probe(const sk_holders_t *h, uint64_t hash, const char *user, size_t len);
static inline int sk_holders_present(const sk_holders_t *h, uint32_t slot)
{
    (void)h;
    return slot != SK_HOLDERS_NONE;
}
/** Inserts a user that sk_holders_probe did not find (ledger only); returns its holder
 *  index. */
uint32_t sk_holders_insert(sk_holders_t *h, uint64_t hash, const char *user, size_t len);
/** Appends an order (seq = n_orders + 1 afterwards) of `quantity` units in state `st`
 *  for the holder at `slot`; returns its index. */
uint32_t sk_holders_add_order(sk_holders_t *h, uint32_t slot, const char *req, size_t req_len, int64_t created_at,
                              uint32_t quantity, sk_order_state_t st);
/** Removes the newest order (undo of an uncommitted batch). O(1). */
void sk_holders_pop_order(sk_holders_t *h);
/** Moves order i into state `st` at time `at` (paid_at for a confirmation, closed_at for
 *  a cancel, expiry or refund), keeping the holder's active units right; a payment id
 *  (pay_len > 0) is stored with a confirmation. */
void sk_holders_set_state(sk_holders_t *h, uint32_t i, sk_order_state_t st, int64_t at, const char *pay,
                          size_t pay_len);
/** Puts order i back into state `from`, as it was before one sk_holders_set_state out
 *  of it (undo of an uncommitted batch): out of reserved nothing was paid or closed, out
 *  of confirmed only closed_at was set. */
void sk_holders_revert(sk_holders_t *h, uint32_t i, sk_order_state_t from);
/** True when order i was paid with this payment id. */
bool sk_holders_same_payment(const sk_holders_t *h, uint32_t i, const char *pay, size_t pay_len);
/** Looks for the holder's order with this request id; returns its index or
 *  SK_HOLDERS_NONE. An empty request id never matches. Read-only (any thread once
 *  final); when steps is not NULL, adds the list nodes and index entries looked at. */
uint32_t sk_holders_find_request(const sk_holders_t *h, uint32_t slot, const char *req, size_t req_len,
                                 uint64_t *steps);
/** Fills an sk_order_t from order index i; pay_by is created_at + payment_window_ms for
 *  an order made with a window (the window of a sale never changes once it has orders). */
void sk_holders_order(const sk_holders_t *h, uint32_t i, int64_t payment_window_ms, sk_order_t *out);
/** A user's orders in seq order (see sk_holders_order for the window). Returns the
 *  count; *out is malloc'ed (free it), NULL for none. */
size_t sk_holders_user_orders(const sk_holders_t *h, const char *user, size_t len, int64_t payment_window_ms,
                              sk_order_t **out);
/** The string at an arena offset (NUL-terminated). */
static inline const char *sk_holders_str(const sk_holders_t *h, uint64_t off)
{
    return h->chunks[off >> SK_HOLDERS_CHUNK_BITS] + (off & (((uint64_t)1 << SK_HOLDERS_CHUNK_BITS) - 1));
}

/** Test seam: moves the arena's end `bytes` further as if that much had been stored,
 *  without storing or allocating it (the chunks passed over stay unallocated and are
 *  never read). Lets a test put strings beyond 4 GiB of offsets without the memory. */
void sk_holders_arena_skip(sk_holders_t *h, uint64_t bytes);

#endif
