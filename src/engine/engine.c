/* The sale table, the queues between the workers and the ledger thread, and what the
 * workers may answer without the ledger.
 *
 * The ledger thread belongs to the backend (backend.h): it is the one writer of every
 * sale's stock and holders (the single-writer principle). Workers push ops onto one
 * lock-free queue and wake the backend once per loop turn; the backend takes them in
 * arrival order (sk_engine_take), decides and durably records them, and posts each back
 * to the worker that sent it (sk_engine_complete, sk_engine_flush). What is published
 * here for the workers (params, counts, the sold-out flag, possible holders) only ever
 * describes durable state. */
#include "engine/engine.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/backend.h"
#include "engine/holders.h"
#include "util/buf.h"

#define SK_SALE_SLOTS 16384 /* power of two, > 1.5 x SK_MAX_SALES */
#define SK_OP_CACHE 4096 /* spent ops a worker keeps for reuse (about one batch in a storm) */
#define NONE UINT32_MAX

const char *const sk_buy_result_names[SK_BUY__COUNT] = {
    "confirmed",   "duplicate",    "sold_out", "limit_reached", "not_started",  "ended",
    "unavailable", "rate_limited", "reserved", "paused",        "bad_quantity", "not_admitted",
};

/* Payments on their way to the ledger, one track a worker (never freed before the
 * engine: a detached worker's is kept for the next). A payment is judged by when it was
 * received (op->now_ms), so the ledger must not expire a reservation while a payment
 * received by its pay_by is still on its way: stamped, and not yet taken (between the
 * stamp and the push, or queued behind a full batch). The ledger asks for the oldest
 * stamp still here (sk_engine_oldest_payment) with its batch's clock T. The rule that
 * no payment slips past: the ledger stores T, then reads the heads; the worker
 * publishes its payment's place (the head), then reads T and stamps no earlier than it
 * (all seq_cst). Either the ledger sees the place, or the worker sees T and the payment
 * counts as received at T or after, too late for anything the batch expires (due
 * before T). The ledger looks at every stamp of a track, not only its tail: a wall
 * clock stepped back puts an older stamp behind a newer one. Single producer (the
 * worker), single consumer (the ledger, in take); the ring holds max_inflight (at most
 * PAY_TRACK_MAX) stamps, 512 KiB at most. */
#define PAY_STAMPING INT64_MIN /* published, its clock not read yet */
#define MAX_PAY_TRACKS 1024
#define PAY_TRACK_MAX (1u << 16) /* payments a worker has in flight before 429 */
typedef struct {
    _Atomic uint64_t head; /* the worker's: payments submitted */
    _Atomic uint64_t tail; /* the ledger's: payments taken */
    uint64_t mask;
    _Atomic int64_t *stamps; /* [mask + 1], by submit order */
    bool used; /* under pay_mu */
} pay_track_t;

struct sk_engine_worker {
    sk_engine_t *e;
    sk_loop_t *loop;
    pay_track_t *pay;
    sk_async_t async;
    sk_mpsc_t done_q;
    bool notify; /* ledger-private: this batch posted to us */
    bool wake_ledger; /* loop-private: ops were queued during this turn */
    sk_op_t *op_cache; /* loop-private: spent ops, linked through node.next */
    size_t n_op_cache;
};

struct sk_engine {
    sk_engine_config_t cfg;
    sk_backend_t *backend;

    _Atomic(sk_sale_t *) slots[SK_SALE_SLOTS];
    sk_sale_t *list[SK_MAX_SALES];
    _Atomic size_t nsales;

    sk_mpsc_t q;
    _Atomic bool stopping;
    bool running;

    sk_engine_worker_t **notify; /* workers with completions since the last flush */
    size_t n_notify, notify_cap;

    sk_engine_stats_t stats;
    _Atomic int64_t store_clock_offset_ms; /* the store's clock minus ours, at most */
    _Atomic int64_t store_clock_offset_min_ms; /* the same, at least */
    _Atomic bool store_unsure; /* sk_engine_store_unsure */

    pthread_mutex_t pay_mu; /* attach and detach of the tracks */
    pay_track_t *pays[MAX_PAY_TRACKS];
    _Atomic size_t n_pays;
    _Atomic int64_t pay_clock; /* the ledger's clock at its last sk_engine_oldest_payment */
    int64_t (*receipt_clock)(void *arg); /* test seam: the stamp's clock */
    void *receipt_clock_arg;
};

/* ---- validation and ids ------------------------------------------------------------ */

bool sk_valid_sale_id(const char *s, size_t n)
{
    if (n == 0 || n > SK_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

bool sk_valid_user_id(const char *s, size_t n)
{
    return n > 0 && n <= SK_USER_MAX && printable(s, n);
}

bool sk_valid_request_id(const char *s, size_t n)
{
    return n <= SK_REQUEST_MAX && printable(s, n);
}

bool sk_valid_payment_id(const char *s, size_t n)
{
    return n > 0 && n <= SK_PAYMENT_ID_MAX && printable(s, n);
}

size_t sk_order_id(char *dst, const sk_sale_t *s, uint64_t seq)
{
    /* The id as a block of known size (dst has room for the longest id and more), then
     * the end moved to its length: a copy of a length known only at run time costs a
     * call. */
    _Static_assert(SK_ID_MAX <= SK_ORDER_ID_MAX && sizeof(s->id) >= SK_ID_MAX, "the copy stays in both");
    memcpy(dst, s->id, SK_ID_MAX);
    size_t n = s->id_len;
    dst[n++] = '-';
    n += sk_fmt_u64_pad10(dst + n, seq); /* at least 10 digits, zero-padded */
    dst[n] = '\0';
    return n;
}

int sk_order_id_parse(const sk_sale_t *s, const char *id, size_t len, uint64_t *seq)
{
    if (len < s->id_len + 2 || memcmp(id, s->id, s->id_len) != 0 || id[s->id_len] != '-')
        return -EINVAL;
    int64_t v;
    if (sk_parse_i64(id + s->id_len + 1, len - s->id_len - 1, 1, INT64_MAX, &v) < 0)
        return -EINVAL;
    *seq = (uint64_t)v;
    return 0;
}

int sk_order_id_split(const char *id, size_t len, size_t *sale_len, uint64_t *seq)
{
    size_t dash = len;
    while (dash > 0 && id[dash - 1] != '-')
        dash--;
    if (dash < 2 || dash == len) /* "-12", "s-": no sale id or no seq */
        return -EINVAL;
    int64_t v;
    if (sk_parse_i64(id + dash, len - dash, 1, INT64_MAX, &v) < 0)
        return -EINVAL;
    *sale_len = dash - 1;
    *seq = (uint64_t)v;
    return 0;
}

/* ---- the sale table ---------------------------------------------------------------- */

static uint64_t hash_id(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

sk_sale_t *sk_engine_lookup_sale(sk_engine_t *e, const char *id, size_t len)
{
    if (len == 0 || len > SK_ID_MAX)
        return NULL;
    size_t mask = SK_SALE_SLOTS - 1;
    for (size_t i = hash_id(id, len) & mask;; i = (i + 1) & mask) {
        sk_sale_t *s = atomic_load_explicit(&e->slots[i], memory_order_acquire);
        if (!s)
            return NULL;
        if (s->id_len == len && memcmp(s->id, id, len) == 0)
            return s;
    }
}

static bool visible(const sk_sale_t *s)
{
    return atomic_load_explicit(&((sk_sale_t *)s)->visible, memory_order_acquire);
}

sk_sale_t *sk_engine_find_sale(sk_engine_t *e, const char *id, size_t len)
{
    sk_sale_t *s = sk_engine_lookup_sale(e, id, len);
    return s && visible(s) ? s : NULL;
}

void sk_engine_show_sale(sk_sale_t *s)
{
    atomic_store_explicit(&s->visible, true, memory_order_release);
}

void sk_engine_register_hidden_sale(sk_engine_t *e, sk_sale_t *s)
{
    size_t mask = SK_SALE_SLOTS - 1;
    size_t i = hash_id(s->id, s->id_len) & mask;
    while (atomic_load_explicit(&e->slots[i], memory_order_relaxed))
        i = (i + 1) & mask;
    size_t n = atomic_load_explicit(&e->nsales, memory_order_relaxed);
    s->index = (uint32_t)n;
    e->list[n] = s;
    atomic_store_explicit(&e->slots[i], s, memory_order_release);
    atomic_store_explicit(&e->nsales, n + 1, memory_order_release);
}

void sk_engine_register_sale(sk_engine_t *e, sk_sale_t *s)
{
    /* Shown before it is in the table: no reader finds it hidden for a moment. */
    atomic_store_explicit(&s->visible, true, memory_order_relaxed);
    sk_engine_register_hidden_sale(e, s);
}

size_t sk_engine_sale_count(sk_engine_t *e)
{
    return atomic_load_explicit(&e->nsales, memory_order_acquire);
}

sk_sale_t *sk_engine_sale_by_index(sk_engine_t *e, size_t i)
{
    return i < sk_engine_sale_count(e) ? e->list[i] : NULL;
}

sk_sale_t *sk_engine_sale_at(sk_engine_t *e, size_t i)
{
    sk_sale_t *s = sk_engine_sale_by_index(e, i);
    return s && visible(s) ? s : NULL;
}

static sk_sale_state_t state_rule(const sk_sale_params_t *p, bool sold_out, int64_t now_ms)
{
    if (p->closed || now_ms >= p->ends_at)
        return SK_SALE_ENDED;
    if (now_ms < p->starts_at)
        return SK_SALE_SCHEDULED;
    if (p->paused)
        return SK_SALE_PAUSED;
    if (sold_out)
        return SK_SALE_SOLD_OUT;
    return SK_SALE_LIVE;
}

sk_sale_state_t sk_sale_state(const sk_sale_t *s, int64_t now_ms)
{
    return state_rule(sk_sale_params(s), sk_sale_is_sold_out(s), now_ms);
}

sk_sale_state_t sk_sale_state_of(const sk_sale_params_t *p, const sk_sale_counts_t *c, int64_t now_ms)
{
    return state_rule(p, sk_counts_remaining(c) <= 0, now_ms);
}

const char *sk_sale_state_name(sk_sale_state_t st)
{
    static const char *const names[] = {"scheduled", "live", "sold_out", "ended", "paused"};
    return names[st];
}

const char *sk_queue_mode_name(int mode)
{
    static const char *const names[] = {"off", "fifo", "random"};
    return (unsigned)mode < SK_ARRAY_LEN(names) ? names[mode] : "off";
}

int sk_queue_mode_parse(const char *s, size_t n, int *mode)
{
    for (int i = SK_QUEUE_OFF; i <= SK_QUEUE_RANDOM; i++) {
        const char *name = sk_queue_mode_name(i);
        if (strlen(name) == n && memcmp(name, s, n) == 0) {
            *mode = i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Retired params snapshots, kept until the sale is freed (a worker may hold one). */
typedef struct retired {
    struct retired *next;
    sk_sale_params_t *p;
    sk_userset_t *users; /* a withdrawn user set (a worker may still probe it) */
} retired_t;

static sk_sale_params_t *params_copy(const sk_sale_params_t *src)
{
    sk_sale_params_t *p = sk_xmalloc(sizeof(*p));
    *p = *src;
    p->name = sk_xstrndup(src->name, strlen(src->name));
    return p;
}

static void params_free(const sk_sale_params_t *p)
{
    if (!p)
        return;
    free((char *)p->name);
    free((void *)p);
}

sk_sale_t *sk_sale_new(const char *id, size_t id_len, const sk_sale_params_t *params, int64_t stock, int64_t created_at)
{
    sk_sale_t *s = sk_xcalloc(1, sizeof(*s));
    memcpy(s->id, id, id_len);
    s->id[id_len] = '\0';
    s->id_len = id_len;
    s->created_at = created_at;
    atomic_init(&s->params, params_copy(params));
    atomic_init(&s->c_stock, stock);
    atomic_init(&s->sold_out, stock <= 0);
    return s;
}

void sk_sale_free(sk_sale_t *s)
{
    if (!s)
        return;
    params_free(atomic_load_explicit(&s->params, memory_order_relaxed));
    for (retired_t *r = s->retired, *next; r; r = next) {
        next = r->next;
        params_free(r->p);
        sk_userset_free(r->users);
        free(r);
    }
    sk_userset_free(atomic_load_explicit(&s->users, memory_order_relaxed));
    free(s);
}

/* ---- the worker's gate (any thread) --------------------------------------------------------- */

int64_t sk_engine_store_clock_offset(const sk_engine_t *e)
{
    return atomic_load_explicit(&((sk_engine_t *)e)->store_clock_offset_ms, memory_order_relaxed);
}

int64_t sk_engine_store_now(const sk_engine_t *e)
{
    return sk_now_ms() + sk_engine_store_clock_offset(e);
}

int64_t sk_engine_store_clock_offset_min(const sk_engine_t *e)
{
    return atomic_load_explicit(&((sk_engine_t *)e)->store_clock_offset_min_ms, memory_order_relaxed);
}

void sk_engine_note_store_clock(sk_engine_t *e, int64_t ahead_max_ms, int64_t ahead_min_ms)
{
    /* Two loads may see bounds of different replies: each is a bound all the same. */
    atomic_store_explicit(&e->store_clock_offset_ms, ahead_max_ms, memory_order_relaxed);
    atomic_store_explicit(&e->store_clock_offset_min_ms, ahead_min_ms, memory_order_relaxed);
}

void sk_engine_note_store_unsure(sk_engine_t *e)
{
    atomic_store_explicit(&e->store_unsure, true, memory_order_relaxed);
}

bool sk_engine_store_unsure(const sk_engine_t *e)
{
    return atomic_load_explicit(&((sk_engine_t *)e)->store_unsure, memory_order_relaxed);
}

bool sk_engine_gate(const sk_sale_t *s, int64_t now_ms, uint64_t user_hash, uint32_t q, sk_buy_result_t *result,
                    int64_t *remaining)
{
    const sk_userset_t *users = atomic_load_explicit(&((sk_sale_t *)s)->users, memory_order_acquire);
    const sk_sale_params_t *p = sk_sale_params(s);
    if (q == 0)
        q = 1;
    /* The published state first, the set after: the counts' release store comes after
     * the ledger inserted every holder they count, so a set probed after their acquire
     * holds them all. For one unit the sold-out flag is the whole question. */
    int64_t left;
    if (q == 1 && !sk_sale_is_sold_out(s)) {
        left = -1; /* at least one unit, count not read */
    } else {
        sk_sale_counts_t c;
        sk_sale_counts(s, &c);
        left = sk_counts_remaining(&c);
    }
    sk_buy_result_t r = sk_buy_rules(p, now_ms, q, 0, left < 0 ? INT64_MAX : left);
    if (r == SK_BUY_CONFIRMED)
        return false; /* may succeed: the ledger decides */
    /* Before the start nobody holds an order, and a quantity above the sale's maximum is
     * a bad request from anyone; otherwise a possible holder (a replay, units held) or a
     * sale whose holders this node does not know goes to the ledger. */
    if (r != SK_BUY_NOT_STARTED && r != SK_BUY_BAD_QUANTITY && (!users || sk_userset_may_contain(users, user_hash)))
        return false;
    *result = r;
    *remaining = left < 0 ? sk_sale_remaining(s) : left;
    return true;
}

/* ---- ops and workers ------------------------------------------------------------------- */

sk_op_t *sk_op_new(sk_op_kind_t kind)
{
    sk_op_t *op = sk_xcalloc(1, sizeof(*op));
    op->kind = kind;
    return op;
}

void sk_op_free(sk_op_t *op)
{
    if (!op)
        return;
    free(op->orders);
    free(op->entries);
    if (op->new_sale)
        sk_sale_free(op->new_sale);
    free(op);
}

sk_op_t *sk_engine_op_new(sk_engine_worker_t *w, sk_op_kind_t kind)
{
    sk_op_t *op = w->op_cache;
    if (!op)
        return sk_op_new(kind);
    sk_mpsc_node_t *next = atomic_load_explicit(&op->node.next, memory_order_relaxed);
    w->op_cache = next ? SK_CONTAINER_OF(next, sk_op_t, node) : NULL;
    w->n_op_cache--;
    /* As new (sk_op_new), but for the bytes after each string's end: nothing reads a
     * string past its NUL, and clearing them was most of the cost of an op. */
    memset(op, 0, offsetof(sk_op_t, user_id));
    op->user_id[0] = op->request_id[0] = op->payment_id[0] = '\0';
    memset(&op->order, 0, offsetof(sk_order_t, user_id));
    op->order.user_id[0] = op->order.request_id[0] = op->order.payment_id[0] = '\0';
    op->kind = kind;
    return op;
}

void sk_engine_op_recycle(sk_engine_worker_t *w, sk_op_t *op)
{
    if (w->n_op_cache >= SK_OP_CACHE) {
        sk_op_free(op);
        return;
    }
    free(op->orders);
    op->orders = NULL;
    free(op->entries);
    op->entries = NULL;
    if (op->new_sale)
        sk_sale_free(op->new_sale);
    op->new_sale = NULL;
    /* The cache links through the queue node, unused while the op is spent. */
    atomic_store_explicit(&op->node.next, w->op_cache ? &w->op_cache->node : NULL, memory_order_relaxed);
    w->op_cache = op;
    w->n_op_cache++;
}

static void worker_on_async(sk_loop_t *loop, sk_async_t *a)
{
    (void)loop;
    sk_engine_worker_t *w = SK_CONTAINER_OF(a, sk_engine_worker_t, async);
    sk_mpsc_node_t *n;
    while ((n = sk_mpsc_pop(&w->done_q)) != NULL) {
        sk_op_t *op = SK_CONTAINER_OF(n, sk_op_t, node);
        op->done(op);
    }
}

/* The ledger is woken once per worker turn, after every request the turn read has
 * been queued: one eventfd write instead of one per purchase, and on a shared core
 * the ledger is not scheduled in the middle of the turn to decide a batch of one. It
 * runs in the before-sleep list's HANDOFF phase, after the turn's output was written
 * (loop.h says why). */
static void worker_turn_end(sk_loop_t *loop, void *arg)
{
    (void)loop;
    sk_engine_worker_t *w = arg;
    if (w->wake_ledger) {
        w->wake_ledger = false;
        w->e->backend->wake(w->e->backend);
    }
}

/* A free track, or a new one (NULL beyond MAX_PAY_TRACKS workers at once). Its counters
 * go on from where its last worker left them: that worker's payments were all taken. */
static pay_track_t *pay_track_take(sk_engine_t *e)
{
    pthread_mutex_lock(&e->pay_mu);
    pay_track_t *t = NULL;
    size_t n = atomic_load_explicit(&e->n_pays, memory_order_relaxed);
    for (size_t i = 0; i < n && !t; i++)
        if (!e->pays[i]->used)
            t = e->pays[i];
    if (!t && n < MAX_PAY_TRACKS) {
        t = sk_xcalloc(1, sizeof(*t));
        uint64_t cap = 1;
        while (cap < e->cfg.max_inflight && cap < PAY_TRACK_MAX)
            cap <<= 1;
        t->mask = cap - 1;
        t->stamps = sk_xcalloc(cap, sizeof(*t->stamps)); /* pages stay untouched until used */
        e->pays[n] = t;
        atomic_store_explicit(&e->n_pays, n + 1, memory_order_release);
    }
    if (t)
        t->used = true;
    pthread_mutex_unlock(&e->pay_mu);
    return t;
}

static void pay_track_give_back(sk_engine_t *e, pay_track_t *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&e->pay_mu);
    t->used = false;
    pthread_mutex_unlock(&e->pay_mu);
}

static bool pay_track_full(pay_track_t *t)
{
    return atomic_load_explicit(&t->head, memory_order_relaxed) - atomic_load_explicit(&t->tail, memory_order_acquire) >
           t->mask;
}

/* Stamps payment op with when it was received (unless the caller did: a test's), after
 * publishing its place in the worker's track. */
static void pay_track_push(sk_engine_t *e, pay_track_t *t, sk_op_t *op)
{
    uint64_t h = atomic_load_explicit(&t->head, memory_order_relaxed);
    _Atomic int64_t *slot = &t->stamps[h & t->mask];
    atomic_store_explicit(slot, PAY_STAMPING, memory_order_relaxed);
    atomic_store_explicit(&t->head, h + 1, memory_order_seq_cst);
    if (op->now_ms <= 0) {
        /* T before the clock: a batch that begins while this one reads its clock, or is
         * preempted, sees the place and holds back for it; T only bounds it from below
         * for a batch that did not see it. */
        int64_t floor = atomic_load_explicit(&e->pay_clock, memory_order_seq_cst);
        int64_t now = e->receipt_clock ? e->receipt_clock(e->receipt_clock_arg) : sk_engine_store_now(e);
        op->now_ms = SK_MAX(now, floor);
    }
    atomic_store_explicit(slot, op->now_ms, memory_order_release);
}

int64_t sk_engine_oldest_payment(sk_engine_t *e, int64_t now, int64_t enough)
{
    atomic_store_explicit(&e->pay_clock, now, memory_order_seq_cst);
    int64_t oldest = INT64_MAX;
    size_t n = atomic_load_explicit(&e->n_pays, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        pay_track_t *t = e->pays[i];
        uint64_t head = atomic_load_explicit(&t->head, memory_order_seq_cst);
        for (uint64_t k = atomic_load_explicit(&t->tail, memory_order_relaxed); k != head; k++) {
            int64_t at = atomic_load_explicit(&t->stamps[k & t->mask], memory_order_acquire);
            if (at < oldest)
                oldest = at; /* PAY_STAMPING: older than anything */
            if (oldest <= enough)
                return oldest;
        }
    }
    return oldest;
}

void sk_engine_set_receipt_clock(sk_engine_t *e, int64_t (*fn)(void *arg), void *arg)
{
    e->receipt_clock = fn;
    e->receipt_clock_arg = arg;
}

sk_engine_worker_t *sk_engine_attach(sk_engine_t *e, sk_loop_t *loop)
{
    sk_engine_worker_t *w = sk_xcalloc(1, sizeof(*w));
    w->e = e;
    w->loop = loop;
    w->pay = pay_track_take(e);
    sk_mpsc_init(&w->done_q);
    if (!w->pay || sk_async_init(loop, &w->async, worker_on_async) < 0) {
        pay_track_give_back(e, w->pay);
        free(w);
        return NULL;
    }
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_HANDOFF, worker_turn_end, w);
    return w;
}

void sk_engine_detach(sk_engine_worker_t *w)
{
    if (!w)
        return;
    worker_on_async(w->loop, &w->async);
    sk_loop_remove_before_sleep(w->loop, worker_turn_end, w);
    sk_async_close(w->loop, &w->async);
    while (w->op_cache) {
        sk_op_t *op = w->op_cache;
        sk_mpsc_node_t *next = atomic_load_explicit(&op->node.next, memory_order_relaxed);
        w->op_cache = next ? SK_CONTAINER_OF(next, sk_op_t, node) : NULL;
        free(op);
    }
    pay_track_give_back(w->e, w->pay);
    free(w);
}

void sk_engine_submit(sk_engine_worker_t *w, sk_op_t *op)
{
    sk_engine_t *e = w->e;
    op->worker = w;
    /* Every kind of op counts against the bound, so no client can grow the queue
     * without limit; creating a sale and an operator's control are rare (and admin
     * only) and never refused: a pause must get through a flood. */
    int64_t in = atomic_fetch_add_explicit(&e->stats.inflight, 1, memory_order_relaxed);
    if ((in >= (int64_t)e->cfg.max_inflight && op->kind != SK_OP_CREATE_SALE && op->kind != SK_OP_CONTROL) ||
        (op->kind == SK_OP_PAY && pay_track_full(w->pay))) {
        atomic_fetch_sub_explicit(&e->stats.inflight, 1, memory_order_relaxed);
        op->result = SK_BUY_RATE_LIMITED;
        op->status = -EAGAIN;
        if (op->sale)
            op->remaining = sk_sale_remaining(op->sale);
        op->done(op);
        return;
    }
    if (op->kind == SK_OP_PAY)
        pay_track_push(e, w->pay, op);
    sk_mpsc_push(&e->q, &op->node);
    if (!w->wake_ledger) {
        w->wake_ledger = true;
        sk_loop_handoff_pending(w->loop);
    }
}

/* ---- the ledger side ------------------------------------------------------------------ */

size_t sk_engine_take(sk_engine_t *e, sk_op_t **ops, size_t max)
{
    size_t n = 0;
    sk_mpsc_node_t *node;
    while (n < max && (node = sk_mpsc_pop(&e->q)) != NULL) {
        sk_op_t *op = ops[n++] = SK_CONTAINER_OF(node, sk_op_t, node);
        if (op->kind == SK_OP_PAY) { /* a worker's payments come in the order it pushed them */
            pay_track_t *t = op->worker->pay;
            atomic_store_explicit(&t->tail, atomic_load_explicit(&t->tail, memory_order_relaxed) + 1,
                                  memory_order_release);
        }
    }
    return n;
}

bool sk_engine_stopping(sk_engine_t *e)
{
    return atomic_load(&e->stopping);
}

void sk_engine_complete(sk_engine_t *e, sk_op_t *op)
{
    sk_engine_worker_t *w = op->worker;
    atomic_fetch_sub_explicit(&e->stats.inflight, 1, memory_order_relaxed);
    sk_mpsc_push(&w->done_q, &op->node);
    if (!w->notify) {
        w->notify = true;
        if (e->n_notify == e->notify_cap) {
            e->notify_cap = e->notify_cap ? e->notify_cap * 2 : 16;
            e->notify = sk_xrealloc(e->notify, e->notify_cap * sizeof(*e->notify));
        }
        e->notify[e->n_notify++] = w;
    }
}

void sk_engine_flush(sk_engine_t *e)
{
    for (size_t i = 0; i < e->n_notify; i++) {
        e->notify[i]->notify = false;
        sk_async_send(&e->notify[i]->async);
    }
    e->n_notify = 0;
}

void sk_engine_publish_counts(sk_sale_t *s, const sk_sale_counts_t *c)
{
    if (atomic_load_explicit(&s->c_stock, memory_order_relaxed) == c->stock &&
        atomic_load_explicit(&s->c_held, memory_order_relaxed) == c->held &&
        atomic_load_explicit(&s->c_sold, memory_order_relaxed) == c->sold)
        return;
    /* A seqlock: odd while writing, and the fence keeps the field stores after that. */
    uint64_t q = atomic_load_explicit(&s->counts_seq, memory_order_relaxed);
    atomic_store_explicit(&s->counts_seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&s->c_stock, c->stock, memory_order_relaxed);
    atomic_store_explicit(&s->c_held, c->held, memory_order_relaxed);
    atomic_store_explicit(&s->c_sold, c->sold, memory_order_relaxed);
    atomic_store_explicit(&s->counts_seq, q + 2, memory_order_release);
    atomic_store_explicit(&s->sold_out, sk_counts_remaining(c) <= 0, memory_order_release);
    atomic_fetch_add_explicit(&s->version, 1, memory_order_release);
}

void sk_engine_set_params(sk_sale_t *s, const sk_sale_params_t *p)
{
    retired_t *r = sk_xcalloc(1, sizeof(*r));
    r->p = (sk_sale_params_t *)atomic_load_explicit(&s->params, memory_order_relaxed);
    r->next = s->retired;
    s->retired = r;
    atomic_store_explicit(&s->params, params_copy(p), memory_order_release);
    atomic_fetch_add_explicit(&s->version, 1, memory_order_release);
}

void sk_engine_publish_users(sk_sale_t *s, sk_userset_t *users)
{
    atomic_store_explicit(&s->users, users, memory_order_release);
}

void sk_engine_withdraw_users(sk_sale_t *s)
{
    sk_userset_t *u = atomic_load_explicit(&s->users, memory_order_relaxed);
    if (!u)
        return;
    atomic_store_explicit(&s->users, NULL, memory_order_release);
    retired_t *r = sk_xcalloc(1, sizeof(*r));
    r->users = u;
    r->next = s->retired;
    s->retired = r;
}

void sk_engine_record_decided(sk_engine_t *e, sk_buy_result_t r)
{
    sk_counter_add(&e->stats.decided[r], 1);
}

void sk_engine_record_transition(sk_engine_t *e, sk_order_state_t to, uint64_t n)
{
    sk_counter_add(&e->stats.transitions[to], n);
}

void sk_engine_count_replica_timeout(sk_engine_t *e)
{
    sk_counter_add(&e->stats.replica_timeouts, 1);
}

void sk_engine_record_entered(sk_sale_t *s, sk_order_state_t to, uint64_t n)
{
    sk_counter_add(&s->entered[to], n);
}

void sk_engine_record_batch(sk_engine_t *e, size_t n, uint64_t commit_ns, bool ok)
{
    if (!ok) {
        sk_counter_add(&e->stats.commit_errors, 1);
        return;
    }
    sk_counter_add(&e->stats.batches, 1);
    sk_counter_add(&e->stats.batch_ops, n);
    int b = 0;
    while (b < 11 && n > ((size_t)1 << b))
        b++;
    sk_counter_add(&e->stats.batch_size_bucket[b], 1);
    sk_counter_add(&e->stats.commit_ns_sum, commit_ns);
    static const double bounds[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                    0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5};
    double sec = (double)commit_ns / 1e9;
    int k = 0;
    while (k < 15 && sec > bounds[k])
        k++;
    sk_counter_add(&e->stats.commit_bucket[k], 1);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

sk_engine_t *sk_engine_open(const sk_engine_config_t *cfg, sk_backend_t *backend, char *err, size_t err_size)
{
    sk_engine_t *e = sk_xcalloc(1, sizeof(*e));
    e->cfg = *cfg;
    if (!e->cfg.max_inflight)
        e->cfg.max_inflight = 65536;
    e->backend = backend;
    sk_mpsc_init(&e->q);
    pthread_mutex_init(&e->pay_mu, NULL);
    if (backend->load(backend, e, err, err_size) < 0) {
        sk_engine_free(e);
        return NULL;
    }
    return e;
}

int sk_engine_add_sale(sk_engine_t *e, sk_sale_t *s)
{
    return e->backend->add_sale(e->backend, e, s);
}

int sk_engine_start(sk_engine_t *e)
{
    int rc = e->backend->start(e->backend, e);
    if (rc == 0)
        e->running = true;
    return rc;
}

void sk_engine_stop(sk_engine_t *e)
{
    if (!e->running)
        return;
    atomic_store(&e->stopping, true);
    e->backend->stop(e->backend);
    e->running = false;
}

void sk_engine_free(sk_engine_t *e)
{
    if (!e)
        return;
    sk_engine_stop(e);
    for (size_t i = 0; i < sk_engine_sale_count(e); i++)
        sk_sale_free(e->list[i]);
    if (e->backend)
        e->backend->free(e->backend);
    free(e->notify);
    for (size_t i = 0; i < atomic_load(&e->n_pays); i++) {
        free(e->pays[i]->stamps);
        free(e->pays[i]);
    }
    pthread_mutex_destroy(&e->pay_mu);
    free(e);
}

bool sk_engine_lookups(const sk_engine_t *e)
{
    return e->backend->lookups;
}

bool sk_engine_queues(const sk_engine_t *e)
{
    return e->backend->queue;
}

void sk_engine_publish_queue(sk_sale_t *s, uint64_t len, uint64_t head)
{
    atomic_store_explicit(&s->q_len, len, memory_order_relaxed);
    atomic_store_explicit(&s->q_head, head, memory_order_release);
}

void sk_engine_record_queue(sk_engine_t *e, uint64_t joins, uint64_t admitted)
{
    sk_counter_add(&e->stats.queue_joins, joins);
    sk_counter_add(&e->stats.queue_admitted, admitted);
}

bool sk_engine_lifecycle(const sk_engine_t *e)
{
    return e->backend->lifecycle;
}

const sk_engine_stats_t *sk_engine_stats(const sk_engine_t *e)
{
    return &e->stats;
}
