#include "engine/holders.h"

#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

sk_holders_t *sk_holders_new(void)
{
    sk_holders_t *h = sk_xcalloc(1, sizeof(*h));
    h->cap = 1024;
    h->slots = sk_xcalloc(h->cap, sizeof(*h->slots));
    return h;
}

void sk_holders_free(sk_holders_t *h)
{
    if (!h)
        return;
    free(h->slots);
    free(h->orders);
    free(h->arena);
    free(h);
}

static uint32_t arena_put(sk_holders_t *h, const char *s, size_t n)
{
    if (h->arena_len + n + 1 > h->arena_cap) {
        size_t cap = h->arena_cap ? h->arena_cap : 4096;
        while (cap < h->arena_len + n + 1)
            cap *= 2;
        h->arena = sk_xrealloc(h->arena, cap);
        h->arena_cap = cap;
    }
    uint32_t off = (uint32_t)h->arena_len;
    memcpy(h->arena + off, s, n);
    h->arena[off + n] = '\0';
    h->arena_len += n + 1;
    return off;
}

static uint32_t probe(const sk_holders_t *h, uint64_t hv, const char *user, size_t len)
{
    uint32_t mask = h->cap - 1;
    for (uint32_t i = (uint32_t)hv & mask;; i = (i + 1) & mask) {
        const sk_holder_t *s = &h->slots[i];
        if (s->user_len == 0)
            return i;
        if (s->hash == hv && s->user_len == len && memcmp(h->arena + s->user_off, user, len) == 0)
            return i;
    }
}

uint32_t sk_holders_find(const sk_holders_t *h, const char *user, size_t len)
{
    uint32_t i = probe(h, hash_str(user, len), user, len);
    return h->slots[i].user_len ? i : NONE;
}

static void grow(sk_holders_t *h)
{
    sk_holder_t *old = h->slots;
    uint32_t old_cap = h->cap;
    h->cap *= 2;
    h->slots = sk_xcalloc(h->cap, sizeof(*h->slots));
    uint32_t *moved = sk_xmalloc(sizeof(uint32_t) * old_cap);
    uint32_t mask = h->cap - 1;
    for (uint32_t i = 0; i < old_cap; i++) {
        moved[i] = NONE;
        if (!old[i].user_len)
            continue;
        uint32_t j = (uint32_t)old[i].hash & mask;
        while (h->slots[j].user_len)
            j = (j + 1) & mask;
        h->slots[j] = old[i];
        moved[i] = j;
    }
    for (uint32_t k = 0; k < h->n_orders; k++)
        h->orders[k].holder = moved[h->orders[k].holder];
    free(moved);
    free(old);
}

uint64_t sk_holders_hash(const char *user, size_t len)
{
    return hash_str(user, len);
}

uint32_t sk_holders_probe(const sk_holders_t *h, uint64_t hash, const char *user, size_t len)
{
    return probe(h, hash, user, len);
}

uint32_t sk_holders_upsert(sk_holders_t *h, const char *user, size_t len)
{
    uint64_t hv = hash_str(user, len);
    uint32_t i = probe(h, hv, user, len);
    if (h->slots[i].user_len)
        return i;
    return sk_holders_insert_at(h, i, hv, user, len);
}

uint32_t sk_holders_insert_at(sk_holders_t *h, uint32_t i, uint64_t hv, const char *user, size_t len)
{
    if ((h->used + 1) * 2 > h->cap) {
        grow(h);
        i = probe(h, hv, user, len);
    }
    sk_holder_t *s = &h->slots[i];
    s->hash = hv;
    s->user_off = arena_put(h, user, len);
    s->user_len = (uint16_t)len;
    s->count = 0;
    s->first = s->last = NONE;
    h->used++;
    return i;
}

void sk_holders_add_order(sk_holders_t *h, uint32_t slot, const char *req, size_t req_len, int64_t created_at)
{
    if (h->n_orders == h->orders_cap) {
        h->orders_cap = h->orders_cap ? h->orders_cap * 2 : 256;
        h->orders = sk_xrealloc(h->orders, sizeof(*h->orders) * h->orders_cap);
    }
    uint32_t idx = h->n_orders++;
    sk_holder_order_t *o = &h->orders[idx];
    o->created_at = created_at;
    o->holder = slot;
    o->next = NONE;
    o->req_off = arena_put(h, req, req_len);
    o->req_len = (uint16_t)req_len;
    sk_holder_t *s = &h->slots[slot];
    if (s->last == NONE)
        s->first = idx;
    else
        h->orders[s->last].next = idx;
    s->last = idx;
    s->count++;
}

void sk_holders_pop_order(sk_holders_t *h)
{
    uint32_t idx = --h->n_orders;
    sk_holder_t *s = &h->slots[h->orders[idx].holder];
    s->count--;
    if (s->first == idx) {
        s->first = s->last = NONE;
    } else {
        uint32_t k = s->first;
        while (h->orders[k].next != idx)
            k = h->orders[k].next;
        h->orders[k].next = NONE;
        s->last = k;
    }
}

uint32_t sk_holders_find_request(const sk_holders_t *h, uint32_t slot, const char *req, size_t req_len)
{
    if (req_len == 0)
        return NONE; /* no request id: nothing to deduplicate against */
    for (uint32_t k = h->slots[slot].first; k != NONE; k = h->orders[k].next) {
        const sk_holder_order_t *o = &h->orders[k];
        if (o->req_len == req_len && memcmp(h->arena + o->req_off, req, req_len) == 0)
            return k;
    }
    return NONE;
}

void sk_holders_order(const sk_holders_t *h, uint32_t i, sk_order_t *out)
{
    const sk_holder_order_t *o = &h->orders[i];
    const sk_holder_t *s = &h->slots[o->holder];
    out->seq = (uint64_t)i + 1;
    out->created_at = o->created_at;
    memcpy(out->user_id, h->arena + s->user_off, s->user_len + 1u);
    memcpy(out->request_id, h->arena + o->req_off, o->req_len + 1u);
}
