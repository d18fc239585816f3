/* One sale's waiting room (queue.h). Places are an array in queue order; a user's
 * latest place is found through an open-addressing table of indices keyed by the user's
 * hash. The head (everyone before it admitted) only moves forward, and a place is only
 * ever appended, so `ahead` is position - 1 - head and the length waiting n - head. */
#include "engine/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/common.h"
#include "util/hash.h"

typedef struct {
    uint32_t off; /* the user id in q->users */
    uint8_t len;
    int64_t admitted_at; /* 0: waiting */
} place_t;

struct sk_queue {
    place_t *places;
    size_t n, cap;
    char *users; /* every user id kept, back to back */
    size_t users_len, users_cap;
    uint32_t *slots; /* index + 1 of a user's latest place; 0: empty */
    size_t n_slots; /* a power of two, at most half full */
    size_t n_users; /* distinct users (slots in use) */
    uint64_t seed;
    uint64_t head;
    bool started;
    int64_t credit; /* thousandths of an admission */
    int64_t credit_at; /* the clock reading it was last grown at */
};

sk_queue_t *sk_queue_new(uint64_t seed)
{
    sk_queue_t *q = sk_xcalloc(1, sizeof(*q));
    q->seed = seed;
    q->n_slots = 1024;
    q->slots = sk_xcalloc(q->n_slots, sizeof(*q->slots));
    return q;
}

void sk_queue_free(sk_queue_t *q)
{
    if (!q)
        return;
    free(q->places);
    free(q->users);
    free(q->slots);
    free(q);
}

uint64_t sk_queue_len(const sk_queue_t *q)
{
    return q->n;
}

uint64_t sk_queue_head(const sk_queue_t *q)
{
    return q->head;
}

bool sk_queue_started(const sk_queue_t *q)
{
    return q->started;
}

static const char *user_of(const sk_queue_t *q, const place_t *p)
{
    return q->users + p->off;
}

/* The slot of user (its place's index + 1 there), or the empty slot where it goes. */
static size_t find_slot(const sk_queue_t *q, const char *user, size_t ul)
{
    size_t mask = q->n_slots - 1;
    size_t i = (size_t)sk_hash64(user, ul, 0x5157u) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t v = q->slots[i];
        if (!v)
            return i;
        const place_t *p = &q->places[v - 1];
        if (p->len == ul && memcmp(user_of(q, p), user, ul) == 0)
            return i;
    }
}

static void grow_slots(sk_queue_t *q)
{
    uint32_t *old = q->slots;
    size_t n_old = q->n_slots;
    q->n_slots *= 2;
    q->slots = sk_xcalloc(q->n_slots, sizeof(*q->slots));
    for (size_t i = 0; i < n_old; i++) {
        if (!old[i])
            continue;
        const place_t *p = &q->places[old[i] - 1];
        q->slots[find_slot(q, user_of(q, p), p->len)] = old[i];
    }
    free(old);
}

/* Appends a place for user; `reuse_off` is the offset of the user's id when it is
 * already kept (a re-join), else UINT32_MAX. */
static uint32_t append(sk_queue_t *q, const char *user, size_t ul, uint32_t reuse_off)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 256;
        q->places = sk_xrealloc(q->places, q->cap * sizeof(*q->places));
    }
    uint32_t off = reuse_off;
    if (off == UINT32_MAX) {
        if (q->users_len + ul > q->users_cap) {
            q->users_cap = q->users_cap ? q->users_cap * 2 : 4096;
            while (q->users_len + ul > q->users_cap)
                q->users_cap *= 2;
            q->users = sk_xrealloc(q->users, q->users_cap);
        }
        memcpy(q->users + q->users_len, user, ul);
        off = (uint32_t)q->users_len;
        q->users_len += ul;
    }
    uint32_t idx = (uint32_t)q->n++;
    q->places[idx] = (place_t){.off = off, .len = (uint8_t)ul};
    return idx;
}

/* Puts user at the back (first join or re-join). Returns its index. */
static uint32_t join_back(sk_queue_t *q, const char *user, size_t ul)
{
    size_t slot = find_slot(q, user, ul);
    bool fresh = q->slots[slot] == 0;
    uint32_t idx = append(q, user, ul, fresh ? UINT32_MAX : q->places[q->slots[slot] - 1].off);
    q->slots[slot] = idx + 1;
    if (fresh && 2 * ++q->n_users >= q->n_slots)
        grow_slots(q);
    return idx;
}

/* ---- the shuffle ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* A uniform draw from [0, bound) without modulo bias (rejection of the short tail). */
static uint64_t below(uint64_t s[4], uint64_t bound)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    for (;;) {
        uint64_t v = xoshiro(s);
        if (v < limit)
            return v % bound;
    }
}

void sk_queue_shuffle(uint32_t *items, size_t n, uint64_t seed)
{
    uint64_t s[4], x = seed;
    for (int i = 0; i < 4; i++)
        s[i] = splitmix64(&x);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)below(s, i);
        uint32_t t = items[i - 1];
        items[i - 1] = items[j];
        items[j] = t;
    }
}

/* Shuffles the first n places and points the table at their new indices. */
static void shuffle_places(sk_queue_t *q, size_t n, uint64_t seed)
{
    if (n < 2)
        return;
    uint32_t *perm = sk_xmalloc(n * sizeof(*perm));
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    sk_queue_shuffle(perm, n, seed);
    place_t *tmp = sk_xmalloc(n * sizeof(*tmp));
    for (size_t i = 0; i < n; i++)
        tmp[i] = q->places[perm[i]];
    memcpy(q->places, tmp, n * sizeof(*tmp));
    for (size_t i = 0; i < n; i++) {
        const place_t *p = &q->places[i];
        size_t slot = find_slot(q, user_of(q, p), p->len);
        /* Before the start nobody re-joins: each pre-queue user has one place. */
        q->slots[slot] = (uint32_t)i + 1;
    }
    free(tmp);
    free(perm);
}

/* ---- the rules ---------------------------------------------------------------------------- */

static void emit_rec(sk_queue_emit_fn emit, void *arg, sk_queue_rec_kind_t kind, const sk_queue_t *q, const place_t *p,
                     int64_t at, uint64_t a, uint64_t n)
{
    if (!emit)
        return;
    sk_queue_rec_t r = {.kind = kind, .at = at, .arg = a, .n = n};
    if (p) {
        r.user = user_of(q, p);
        r.user_len = p->len;
    }
    emit(arg, &r);
}

size_t sk_queue_advance(sk_queue_t *q, const sk_queue_rules_t *r, int64_t now, bool admitting, sk_queue_emit_fn emit,
                        void *arg)
{
    if (now < r->starts_at)
        return 0;
    if (!q->started) {
        q->started = true;
        size_t n = r->mode == SK_QUEUE_RANDOM ? q->n : 0;
        shuffle_places(q, n, q->seed);
        emit_rec(emit, arg, SK_QREC_START, q, NULL, now, q->seed, n);
        /* The first admission is due at the start itself. */
        q->credit = 1000;
        q->credit_at = now;
    }
    int64_t rate = r->rate > 0 ? r->rate : 1;
    if (!admitting) {
        q->credit_at = now; /* no credit grows while nobody may buy */
        return 0;
    }
    if (now > q->credit_at) {
        q->credit += (now - q->credit_at) * rate;
        q->credit_at = now;
    }
    int64_t cap = 1000 * rate;
    if (q->credit > cap)
        q->credit = cap;
    size_t admitted = 0;
    while (q->credit >= 1000 && q->head < q->n) {
        place_t *p = &q->places[q->head++];
        p->admitted_at = now;
        q->credit -= 1000;
        admitted++;
        emit_rec(emit, arg, SK_QREC_ADMIT, q, p, now, q->head, 0);
    }
    return admitted;
}

int64_t sk_queue_next_due(const sk_queue_t *q, const sk_queue_rules_t *r, int64_t now, bool admitting)
{
    if (!q->started)
        return q->n && now < r->starts_at ? r->starts_at - now : (q->n ? 0 : -1);
    if (!admitting || q->head >= q->n)
        return -1;
    int64_t rate = r->rate > 0 ? r->rate : 1;
    int64_t have = q->credit + (now > q->credit_at ? (now - q->credit_at) * rate : 0);
    if (have >= 1000)
        return 0;
    return (1000 - have + rate - 1) / rate;
}

static void fill_place(const sk_queue_t *q, const sk_queue_rules_t *r, uint32_t idx, sk_queue_place_t *out)
{
    const place_t *p = &q->places[idx];
    out->admitted_at = p->admitted_at;
    out->expires_at = p->admitted_at ? p->admitted_at + r->ttl_ms : 0;
    if (!q->started && r->mode == SK_QUEUE_RANDOM) {
        out->position = 0;
        out->ahead = q->n - 1; /* not drawn yet: everyone else may be before */
        return;
    }
    out->position = (uint64_t)idx + 1;
    out->ahead = idx >= q->head ? idx - q->head : 0;
}

int sk_queue_ask(sk_queue_t *q, const sk_queue_rules_t *r, const char *user, size_t ul, int64_t now, bool join,
                 sk_queue_place_t *out, sk_queue_emit_fn emit, void *arg)
{
    memset(out, 0, sizeof(*out));
    if (ul == 0 || ul > SK_USER_MAX)
        return -EINVAL;
    uint32_t v = q->slots[find_slot(q, user, ul)];
    if (v) {
        const place_t *p = &q->places[v - 1];
        bool expired = p->admitted_at && now >= p->admitted_at + r->ttl_ms;
        if (!expired || !join) {
            fill_place(q, r, v - 1, out);
            return 0;
        }
    } else if (!join) {
        return -ENOENT;
    }
    uint32_t idx = join_back(q, user, ul);
    emit_rec(emit, arg, SK_QREC_JOIN, q, &q->places[idx], now, 0, 0);
    fill_place(q, r, idx, out);
    out->joined = true;
    return 0;
}

int sk_queue_replay(sk_queue_t *q, const sk_queue_rec_t *r)
{
    switch (r->kind) {
    case SK_QREC_JOIN:
        if (r->user_len == 0 || r->user_len > SK_USER_MAX)
            return -EINVAL;
        join_back(q, r->user, r->user_len);
        return 0;
    case SK_QREC_START:
        if (q->started || r->n > q->n)
            return -EINVAL;
        q->started = true;
        q->seed = r->arg;
        shuffle_places(q, (size_t)r->n, r->arg);
        q->credit = 1000;
        q->credit_at = r->at;
        return 0;
    case SK_QREC_ADMIT: {
        if (!q->started || q->head >= q->n || r->arg != q->head + 1)
            return -EINVAL;
        place_t *p = &q->places[q->head];
        if (p->len != r->user_len || memcmp(user_of(q, p), r->user, r->user_len) != 0)
            return -EINVAL;
        p->admitted_at = r->at;
        q->head++;
        /* Admissions spent the credit; after a restart it grows again from here. */
        q->credit = 0;
        q->credit_at = r->at;
        return 0;
    }
    }
    return -EINVAL;
}
