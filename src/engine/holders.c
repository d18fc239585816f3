#include "engine/holders.h"

#include <stdlib.h>
#include <string.h>

#define NONE SK_HOLDERS_NONE
#define CHUNK ((uint64_t)1 << SK_HOLDERS_CHUNK_BITS)
#define CHUNK0_MIN 4096 /* most sales are small: chunk 0 starts here and doubles */

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* Users are hashed as the engine's user set hashes them, so the ledger computes one
 * hash per purchase for both. */
#define hash_user sk_user_hash

/* ---- paged arrays (sk_holders_paged_t) --------------------------------------------------- */

#define PAGE0_MIN 256 /* entries page 0 starts with; it doubles up to a page */

/* Makes room for entry n of an array whose entries below n are in use. */
static void paged_reserve(sk_blocks_t *blocks, sk_holders_paged_t *a, uint32_t n, size_t elem)
{
    if (n < a->cap)
        return;
    uint32_t page = n >> SK_HOLDERS_PAGE_BITS;
    if (page >= a->n_pages) {
        uint32_t dir = a->n_pages ? a->n_pages * 2 : 16;
        while (dir <= page)
            dir *= 2;
        a->pages = sk_xrealloc(a->pages, dir * sizeof(*a->pages));
        memset(a->pages + a->n_pages, 0, (dir - a->n_pages) * sizeof(*a->pages));
        a->n_pages = dir;
    }
    if (page == 0) {
        uint32_t cap = a->cap ? a->cap * 2 : PAGE0_MIN;
        a->pages[0] = sk_xrealloc(a->pages[0], elem * cap);
        a->cap = cap;
    } else {
        a->pages[page] = sk_blocks_alloc(blocks, elem * SK_HOLDERS_PAGE);
        a->cap = (page + 1) << SK_HOLDERS_PAGE_BITS;
    }
}

/* Page 0 is the array's own; the others go with the record's blocks. */
static void paged_free(sk_holders_paged_t *a)
{
    if (a->n_pages)
        free(a->pages[0]);
    free(a->pages);
}

_Static_assert(SK_HOLDERS_PAGE % PAGE0_MIN == 0, "page 0 doubles up to a page");

/* ---- the string arena ---------------------------------------------------------------- */

/* Strings never straddle two chunks, so a string is one pointer plus its length away.
 * The first string of a chunk (or one that outgrows chunk 0) comes here: out of line, so
 * that the usual string (arena_put) does not pay for the registers of this one. */
static __attribute__((noinline)) uint64_t arena_put_new_chunk(sk_holders_t *h, const char *s, size_t n)
{
    uint64_t need = n + 1;
    uint64_t off = h->arena_len;
    if ((off & (CHUNK - 1)) + need > CHUNK)
        off = (off | (CHUNK - 1)) + 1; /* the rest of this chunk stays unused */
    size_t ci = (size_t)(off >> SK_HOLDERS_CHUNK_BITS);
    size_t end = (size_t)(off & (CHUNK - 1)) + need;
    if (ci >= h->n_chunks) {
        size_t cap = h->n_chunks ? h->n_chunks : 16;
        while (cap <= ci)
            cap *= 2;
        h->chunks = sk_xrealloc(h->chunks, cap * sizeof(*h->chunks));
        memset(h->chunks + h->n_chunks, 0, (cap - h->n_chunks) * sizeof(*h->chunks));
        h->n_chunks = cap;
    }
    if (ci == 0) {
        /* Chunk 0 grows by doubling: nothing keeps a pointer into the arena, only offsets. */
        if (h->chunk0_cap < end) {
            size_t cap = h->chunk0_cap ? h->chunk0_cap : CHUNK0_MIN;
            while (cap < end)
                cap *= 2;
            h->chunks[0] = sk_xrealloc(h->chunks[0], cap);
            h->chunk0_cap = cap;
        }
    } else if (!h->chunks[ci]) {
        h->chunks[ci] = sk_blocks_alloc(&h->blocks, (size_t)CHUNK);
    }
    char *p = h->chunks[ci] + (off & (CHUNK - 1));
    memcpy(p, s, n);
    p[n] = '\0';
    h->arena_len = off + need;
    return off;
}

static inline uint64_t arena_put(sk_holders_t *h, const char *s, size_t n)
{
    /* Every string but one per chunk: the current chunk is there and has room. */
    uint64_t off = h->arena_len;
    size_t at = (size_t)(off & (CHUNK - 1)), cur = (size_t)(off >> SK_HOLDERS_CHUNK_BITS);
    if (SK_LIKELY(cur < h->n_chunks && h->chunks[cur] && at + n + 1 <= (cur ? CHUNK : h->chunk0_cap))) {
        char *p = h->chunks[cur] + at;
        memcpy(p, s, n);
        p[n] = '\0';
        h->arena_len = off + n + 1;
        return off;
    }
    return arena_put_new_chunk(h, s, n);
}

void sk_holders_arena_skip(sk_holders_t *h, uint64_t bytes)
{
    h->arena_len += bytes;
}

/* ---- users --------------------------------------------------------------------------- */

#define INDEX0 1024 /* the first index's size */
#define MOVE_STEP 64 /* old index entries moved into the new one per insert */
/* The next index is faulted in by the pager (sk_mem_populate_ahead) between its allocation
 * at 3/8 full and its use at 1/2. Where there is no pager, a page of it is faulted in every
 * PREFAULT_EVERY inserts: it has 2 * cap * 8 bytes, so cap / 256 pages, and cap / 8
 * inserts to do it in; one per 16 is done halfway. */
#define PREFAULT_EVERY 16

static uint64_t entry(uint64_t hv, uint32_t id)
{
    return (uint64_t)(uint32_t)hv << 32 | ((uint64_t)id + 1);
}

static uint32_t entry_id(uint64_t e)
{
    return (uint32_t)e - 1;
}

/* Looks for the user in one index: its holder index or NONE. */
static uint32_t lookup(const sk_holders_t *h, const uint64_t *index, uint32_t cap, uint64_t hv, const char *user,
                       size_t len)
{
    uint32_t mask = cap - 1, tag = (uint32_t)hv;
    for (uint32_t i = tag & mask;; i = (i + 1) & mask) {
        uint64_t e = index[i];
        if (e == 0)
            return NONE;
        if ((uint32_t)(e >> 32) == tag) {
            const sk_holder_t *s = sk_holders_user_at(h, entry_id(e));
            if (s->hash == hv && s->user_len == len && memcmp(sk_holders_str(h, s->user_off), user, len) == 0)
                return entry_id(e);
        }
    }
}

static void place(uint64_t *index, uint32_t cap, uint64_t e)
{
    uint32_t mask = cap - 1;
    uint32_t i = (uint32_t)(e >> 32) & mask;
    while (index[i])
        i = (i + 1) & mask;
    index[i] = e;
}

static uint32_t probe(const sk_holders_t *h, uint64_t hv, const char *user, size_t len)
{
    uint32_t id = lookup(h, h->index, h->cap, hv, user, len);
    /* Entries of the old index below `moved` are in the new one too: a run that starts
     * there may still end above it, so the whole old run is looked at. */
    if (id == NONE && h->old)
        id = lookup(h, h->old, h->old_cap, hv, user, len);
    return id;
}

/* Moves up to `n` entries of the old index into the new one; frees the old one once all
 * are moved. */
static void move_some(sk_holders_t *h, uint32_t n)
{
    uint32_t end = h->old_cap - h->moved < n ? h->old_cap : h->moved + n;
    for (uint32_t i = h->moved; i < end; i++)
        if (h->old[i])
            place(h->index, h->cap, h->old[i]);
    h->moved = end;
    if (h->moved == h->old_cap) {
        sk_mem_table_free(h->old, sizeof(*h->old) * (size_t)h->old_cap);
        h->old = NULL;
        h->old_cap = h->moved = 0;
    }
}

sk_holders_t *sk_holders_new(void)
{
    sk_holders_t *h = sk_xcalloc(1, sizeof(*h));
    h->cap = INDEX0;
    h->index = sk_mem_table_new(sizeof(*h->index) * (size_t)h->cap);
    return h;
}

void sk_holders_free(sk_holders_t *h)
{
    if (!h)
        return;
    if (h->n_chunks)
        free(h->chunks[0]); /* the others are blocks */
    free(h->chunks);
    paged_free(&h->slots);
    sk_mem_table_free(h->index, sizeof(*h->index) * (size_t)h->cap);
    sk_mem_table_free(h->old, sizeof(*h->old) * (size_t)h->old_cap);
    sk_mem_table_free(h->next, sizeof(*h->next) * (size_t)h->cap * 2);
    paged_free(&h->orders);
    sk_blocks_free(&h->blocks);
    free(h->reqs);
    free(h);
}

uint32_t sk_holders_find(const sk_holders_t *h, const char *user, size_t len)
{
    return probe(h, hash_user(user, len), user, len);
}

uint64_t sk_holders_hash(const char *user, size_t len)
{
    return hash_user(user, len);
}

uint32_t sk_holders_probe(const sk_holders_t *h, uint64_t hash, const char *user, size_t len)
{
    return probe(h, hash, user, len);
}

uint32_t sk_holders_upsert(sk_holders_t *h, const char *user, size_t len)
{
    uint64_t hv = hash_user(user, len);
    uint32_t id = probe(h, hv, user, len);
    return id != NONE ? id : sk_holders_insert(h, hv, user, len);
}

uint32_t sk_holders_insert(sk_holders_t *h, uint64_t hv, const char *user, size_t len)
{
    if (h->old)
        move_some(h, MOVE_STEP);
    if (!h->next && ((uint64_t)h->used + 1) * 8 > (uint64_t)h->cap * 3 && h->cap < (UINT32_C(1) << 31)) {
        size_t bytes = sizeof(*h->next) * (size_t)h->cap * 2;
        h->next = sk_mem_table_new(bytes);
        h->next_faulted = sk_mem_prefault_start(h->next, bytes); /* the pager's, or below */
    }
    if (h->next && h->used % PREFAULT_EVERY == 0)
        sk_mem_prefault(h->next, sizeof(*h->next) * (size_t)h->cap * 2, &h->next_faulted, 1);
    if (((uint64_t)h->used + 1) * 2 > h->cap) {
        /* At most SK_STOCK_MAX users at a load of at most 1/2: 2^31 entries suffice. The
         * previous move is done: it moves MOVE_STEP entries per insert, and the index
         * takes cap/2 inserts to fill again. */
        if (h->cap >= (UINT32_C(1) << 31))
            abort();
        while (h->old)
            move_some(h, UINT32_MAX);
        h->old = h->index;
        h->old_cap = h->cap;
        h->moved = 0;
        h->cap *= 2;
        h->index = h->next; /* allocated at 3/8 (see above), so never NULL here */
        h->next = NULL;
    }
    paged_reserve(&h->blocks, &h->slots, h->used, sizeof(sk_holder_t));
    uint32_t id = h->used++;
    sk_holder_t *s = sk_holders_user_at(h, id);
    s->hash = hv;
    s->user_off = arena_put(h, user, len);
    s->user_len = (uint16_t)len;
    s->count = 0;
    s->units = 0;
    s->first = s->last = NONE;
    place(h->index, h->cap, entry(hv, id));
    return id;
}

/* ---- the request index ------------------------------------------------------------------
 * Linear probing over (order, tag) pairs; the tag is the low 32 bits of a hash of the
 * user's hash and the request id, and also gives the home position. A user's orders
 * enter it once the user holds more than SK_HOLDERS_WALK_MAX; an order never enters
 * twice, and undoing an order takes it out (backward-shift deletion, no tombstones). */

static uint32_t req_tag(uint64_t user_hash, const char *req, size_t len)
{
    uint64_t v = hash_str(req, len) ^ (user_hash * 0x9e3779b97f4a7c15ull);
    return (uint32_t)(v ^ (v >> 32));
}

static bool req_matches(const sk_holders_t *h, uint32_t k, uint32_t slot, const char *req, size_t len)
{
    const sk_holder_order_t *o = sk_holders_order_at(h, k);
    return o->holder == slot && o->req_len == len && memcmp(sk_holders_str(h, o->req_off), req, len) == 0;
}

static void req_place(sk_holder_req_t *t, uint32_t cap, sk_holder_req_t e)
{
    uint32_t mask = cap - 1;
    uint32_t i = e.tag & mask;
    while (t[i].order != NONE)
        i = (i + 1) & mask;
    t[i] = e;
}

static void req_grow(sk_holders_t *h)
{
    uint32_t cap = h->req_cap ? h->req_cap * 2 : 64;
    if (h->req_cap >= (UINT32_C(1) << 31))
        abort(); /* at most SK_STOCK_MAX orders at a load of at most 1/2 */
    sk_holder_req_t *t = sk_xmalloc((size_t)cap * sizeof(*t));
    for (uint32_t i = 0; i < cap; i++)
        t[i].order = NONE;
    for (uint32_t i = 0; i < h->req_cap; i++)
        if (h->reqs[i].order != NONE)
            req_place(t, cap, h->reqs[i]);
    free(h->reqs);
    h->reqs = t;
    h->req_cap = cap;
}

static void req_insert(sk_holders_t *h, uint32_t k)
{
    const sk_holder_order_t *o = sk_holders_order_at(h, k);
    if (o->req_len == 0)
        return; /* never looked for */
    if (((uint64_t)h->req_used + 1) * 2 > h->req_cap)
        req_grow(h);
    uint32_t tag = req_tag(sk_holders_user_at(h, o->holder)->hash, sk_holders_str(h, o->req_off), o->req_len);
    uint32_t mask = h->req_cap - 1;
    uint32_t i = tag & mask;
    for (; h->reqs[i].order != NONE; i = (i + 1) & mask) {
        h->steps++;
        if (h->reqs[i].order == k)
            return; /* indexed when the user first went past the walk limit */
    }
    h->steps++;
    h->reqs[i] = (sk_holder_req_t){k, tag};
    h->req_used++;
}

static void req_remove(sk_holders_t *h, uint32_t k)
{
    const sk_holder_order_t *o = sk_holders_order_at(h, k);
    if (o->req_len == 0 || h->req_used == 0)
        return;
    uint32_t tag = req_tag(sk_holders_user_at(h, o->holder)->hash, sk_holders_str(h, o->req_off), o->req_len);
    uint32_t mask = h->req_cap - 1;
    uint32_t i = tag & mask;
    for (; h->reqs[i].order != k; i = (i + 1) & mask) {
        h->steps++;
        if (h->reqs[i].order == NONE)
            return; /* this user never went past the walk limit */
    }
    /* Backward-shift: pull later entries of the run into the hole when their home
     * position does not lie (cyclically) between the hole and them. */
    uint32_t hole = i;
    for (uint32_t j = (hole + 1) & mask; h->reqs[j].order != NONE; j = (j + 1) & mask) {
        h->steps++;
        uint32_t home = h->reqs[j].tag & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            h->reqs[hole] = h->reqs[j];
            hole = j;
        }
    }
    h->reqs[hole].order = NONE;
    h->req_used--;
}

/* ---- orders ------------------------------------------------------------------------------ */

uint32_t sk_holders_add_order(sk_holders_t *h, uint32_t slot, const char *req, size_t req_len, int64_t created_at,
                              uint32_t quantity, sk_order_state_t st)
{
    paged_reserve(&h->blocks, &h->orders, h->n_orders, sizeof(sk_holder_order_t));
    uint32_t idx = h->n_orders++;
    sk_holder_order_t *o = sk_holders_order_at(h, idx);
    o->created_at = created_at;
    o->paid_at = o->closed_at = 0;
    o->pay_off = 0;
    o->pay_len = 0;
    o->quantity = quantity;
    o->state = (uint8_t)st;
    o->holder = slot;
    o->next = NONE;
    o->req_off = arena_put(h, req, req_len);
    o->req_len = (uint16_t)req_len;
    sk_holder_t *s = sk_holders_user_at(h, slot);
    if (sk_order_active(st))
        s->units += quantity;
    o->prev = s->last;
    if (s->last == NONE)
        s->first = idx;
    else
        sk_holders_order_at(h, s->last)->next = idx;
    s->last = idx;
    s->count++;
    if (s->count == SK_HOLDERS_WALK_MAX + 1) {
        /* From now on this user's request ids are found through the index. */
        for (uint32_t k = s->first; k != NONE; k = sk_holders_order_at(h, k)->next)
            req_insert(h, k);
    } else if (s->count > SK_HOLDERS_WALK_MAX) {
        req_insert(h, idx);
    }
    return idx;
}

void sk_holders_pop_order(sk_holders_t *h)
{
    uint32_t idx = h->n_orders - 1;
    sk_holder_order_t *o = sk_holders_order_at(h, idx);
    sk_holder_t *s = sk_holders_user_at(h, o->holder);
    req_remove(h, idx);
    h->n_orders--;
    s->count--;
    if (sk_order_active((sk_order_state_t)o->state))
        s->units -= o->quantity;
    s->last = o->prev;
    if (o->prev == NONE)
        s->first = NONE;
    else
        sk_holders_order_at(h, o->prev)->next = NONE;
}

uint32_t sk_holders_find_request(const sk_holders_t *h, uint32_t slot, const char *req, size_t req_len, uint64_t *steps)
{
    if (req_len == 0)
        return NONE; /* no request id: nothing to deduplicate against */
    uint64_t n = 0;
    uint32_t found = NONE;
    const sk_holder_t *s = sk_holders_user_at(h, slot);
    if (s->count <= SK_HOLDERS_WALK_MAX) {
        for (uint32_t k = s->first; k != NONE; k = sk_holders_order_at(h, k)->next) {
            n++;
            const sk_holder_order_t *o = sk_holders_order_at(h, k);
            if (o->req_len == req_len && memcmp(sk_holders_str(h, o->req_off), req, req_len) == 0) {
                found = k;
                break;
            }
        }
    } else if (h->req_cap) {
        /* Without a table no order was indexed (every order of the sale's users past
         * the walk limit came without a request id): nothing to find. */
        uint32_t tag = req_tag(s->hash, req, req_len);
        uint32_t mask = h->req_cap - 1;
        for (uint32_t i = tag & mask; h->reqs[i].order != NONE; i = (i + 1) & mask) {
            n++;
            if (h->reqs[i].tag == tag && req_matches(h, h->reqs[i].order, slot, req, req_len)) {
                found = h->reqs[i].order;
                break;
            }
        }
    }
    if (steps)
        *steps += n;
    return found;
}

void sk_holders_order(const sk_holders_t *h, uint32_t i, int64_t payment_window_ms, sk_order_t *out)
{
    const sk_holder_order_t *o = sk_holders_order_at(h, i);
    const sk_holder_t *s = sk_holders_user_at(h, o->holder);
    out->seq = (uint64_t)i + 1;
    out->created_at = o->created_at;
    /* A sale's window cannot change once it has orders, and an order made without one
     * was confirmed at once and never left that state except by a refund. */
    bool reserved_once = payment_window_ms > 0;
    out->pay_by = reserved_once ? o->created_at + payment_window_ms : 0;
    out->paid_at = o->paid_at;
    out->closed_at = o->closed_at;
    out->quantity = o->quantity;
    out->state = (sk_order_state_t)o->state;
    memcpy(out->user_id, sk_holders_str(h, s->user_off), s->user_len + 1u);
    memcpy(out->request_id, sk_holders_str(h, o->req_off), o->req_len + 1u);
    if (o->pay_len)
        memcpy(out->payment_id, sk_holders_str(h, o->pay_off), o->pay_len + 1u);
    else
        out->payment_id[0] = '\0';
}

void sk_holders_set_state(sk_holders_t *h, uint32_t i, sk_order_state_t st, int64_t at, const char *pay, size_t pay_len)
{
    sk_holder_order_t *o = sk_holders_order_at(h, i);
    sk_holder_t *s = sk_holders_user_at(h, o->holder);
    bool was = sk_order_active((sk_order_state_t)o->state), is = sk_order_active(st);
    if (was && !is)
        s->units -= o->quantity;
    else if (!was && is)
        s->units += o->quantity;
    o->state = (uint8_t)st;
    if (st == SK_ORDER_CONFIRMED) {
        o->paid_at = at;
        if (pay_len) {
            o->pay_off = arena_put(h, pay, pay_len);
            o->pay_len = (uint8_t)pay_len;
        }
    } else if (sk_order_final(st)) {
        o->closed_at = at;
    }
}

void sk_holders_revert(sk_holders_t *h, uint32_t i, sk_order_state_t from)
{
    sk_holder_order_t *o = sk_holders_order_at(h, i);
    sk_holder_t *s = sk_holders_user_at(h, o->holder);
    bool was = sk_order_active((sk_order_state_t)o->state), is = sk_order_active(from);
    if (was && !is)
        s->units -= o->quantity;
    else if (!was && is)
        s->units += o->quantity;
    o->state = (uint8_t)from;
    o->closed_at = 0;
    if (from == SK_ORDER_RESERVED) {
        o->paid_at = 0;
        o->pay_len = 0; /* a payment id stored meanwhile stays in the arena, unused */
    }
}

bool sk_holders_same_payment(const sk_holders_t *h, uint32_t i, const char *pay, size_t pay_len)
{
    const sk_holder_order_t *o = sk_holders_order_at(h, i);
    return o->pay_len == pay_len && pay_len > 0 && memcmp(sk_holders_str(h, o->pay_off), pay, pay_len) == 0;
}

size_t sk_holders_user_orders(const sk_holders_t *h, const char *user, size_t len, int64_t payment_window_ms,
                              sk_order_t **out)
{
    *out = NULL;
    uint32_t slot = sk_holders_find(h, user, len);
    if (slot == NONE || sk_holders_user_at(h, slot)->count == 0)
        return 0;
    size_t n = sk_holders_user_at(h, slot)->count, i = 0;
    *out = sk_xmalloc(n * sizeof(sk_order_t));
    for (uint32_t k = sk_holders_user_at(h, slot)->first; k != NONE && i < n; k = sk_holders_order_at(h, k)->next)
        sk_holders_order(h, k, payment_window_ms, &(*out)[i++]);
    return i;
}
