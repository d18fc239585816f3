/* The sale table, the ledger thread and the queues between it and the workers.
 *
 * The ledger is the one writer of every sale's stock and holders (the single-writer
 * principle): workers push ops onto one lock-free queue and wake it through an eventfd;
 * it takes everything queued (up to max_batch), decides each purchase in arrival
 * order, writes all confirmed orders of the batch in one SQLite transaction, and only
 * after that commit returns publishes the new counts and posts the answers. While it
 * commits, the next batch forms in the queue, so the batch size grows with the load
 * and the fsync cost is shared by all purchases of a batch. */
#include "engine/engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/holders.h"
#include "store/store.h"

#define SK_SALE_SLOTS 16384 /* power of two, > 1.5 x SK_MAX_SALES */
#define NONE UINT32_MAX

const char *const sk_buy_result_names[SK_BUY__COUNT] = {
    "confirmed", "duplicate", "sold_out", "limit_reached", "not_started", "ended", "unavailable", "rate_limited",
};

struct sk_engine_worker {
    sk_engine_t *e;
    sk_loop_t *loop;
    sk_async_t async;
    sk_mpsc_t done_q;
    bool notify; /* ledger-private: this batch posted to us */
};

struct sk_engine {
    sk_engine_config_t cfg;
    sk_journal_t *journal;

    _Atomic(sk_sale_t *) slots[SK_SALE_SLOTS];
    sk_sale_t *list[SK_MAX_SALES];
    _Atomic size_t nsales;

    sk_mpsc_t q;
    int efd; /* blocking eventfd the ledger sleeps on */
    _Atomic int wake_pending;
    _Atomic bool stopping;
    pthread_t thread;
    bool running;

    sk_op_t **batch;
    sk_journal_order_t *jorders;
    char (*jorder_ids)[SK_ORDER_ID_MAX + 1];
    sk_engine_worker_t **notify;
    size_t n_notify;

    sk_engine_stats_t stats;
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

size_t sk_order_id(char *dst, const sk_sale_t *s, uint64_t seq)
{
    memcpy(dst, s->id, s->id_len);
    size_t n = s->id_len;
    dst[n++] = '-';
    char digits[24];
    int k = 0;
    do {
        digits[k++] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq);
    for (int pad = k; pad < 10; pad++)
        dst[n++] = '0';
    while (k)
        dst[n++] = digits[--k];
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

/* ---- the sale table ---------------------------------------------------------------- */

static uint64_t hash_id(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

sk_sale_t *sk_engine_find_sale(sk_engine_t *e, const char *id, size_t len)
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

/* Ledger thread (or start-up) only: publishes a fully built sale. */
static void table_insert(sk_engine_t *e, sk_sale_t *s)
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

size_t sk_engine_sale_count(sk_engine_t *e)
{
    return atomic_load_explicit(&e->nsales, memory_order_acquire);
}

sk_sale_t *sk_engine_sale_at(sk_engine_t *e, size_t i)
{
    return i < sk_engine_sale_count(e) ? e->list[i] : NULL;
}

sk_sale_state_t sk_sale_state(const sk_sale_t *s, int64_t now_ms)
{
    if (sk_sale_is_sold_out(s))
        return SK_SALE_SOLD_OUT;
    if (now_ms < s->starts_at)
        return SK_SALE_SCHEDULED;
    if (now_ms >= s->ends_at)
        return SK_SALE_ENDED;
    return SK_SALE_LIVE;
}

const char *sk_sale_state_name(sk_sale_state_t st)
{
    static const char *const names[] = {"scheduled", "live", "sold_out", "ended"};
    return names[st];
}

static void sale_free(sk_sale_t *s)
{
    if (!s)
        return;
    sk_holders_free(s->holders);
    free(s->name);
    free(s);
}

/* ---- the sold-out fast path (any thread, after sold_out) --------------------------------- */

sk_buy_result_t sk_engine_sold_out_answer(const sk_sale_t *s, const char *user, size_t user_len,
                                          const char *request_id, size_t request_len, sk_order_t *order)
{
    const sk_holders_t *h = s->holders;
    uint32_t slot = sk_holders_find(h, user, user_len);
    if (slot == NONE || h->slots[slot].count == 0)
        return SK_BUY_SOLD_OUT;
    uint32_t k = sk_holders_find_request(h, slot, request_id, request_len);
    if (k != NONE) {
        sk_holders_order(h, k, order);
        return SK_BUY_DUPLICATE;
    }
    if (h->slots[slot].count >= s->per_user_limit) {
        sk_holders_order(h, h->slots[slot].first, order);
        return SK_BUY_LIMIT_REACHED;
    }
    return SK_BUY_SOLD_OUT;
}

static size_t user_orders(const sk_holders_t *h, const char *user, size_t user_len, sk_order_t **out)
{
    *out = NULL;
    uint32_t slot = sk_holders_find(h, user, user_len);
    if (slot == NONE || h->slots[slot].count == 0)
        return 0;
    size_t n = h->slots[slot].count, i = 0;
    *out = sk_xmalloc(n * sizeof(sk_order_t));
    for (uint32_t k = h->slots[slot].first; k != NONE && i < n; k = h->orders[k].next)
        sk_holders_order(h, k, &(*out)[i++]);
    return i;
}

size_t sk_engine_sold_out_orders(const sk_sale_t *s, const char *user, size_t user_len, sk_order_t **out)
{
    return user_orders(s->holders, user, user_len, out);
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
    if (op->new_sale)
        sale_free(op->new_sale);
    free(op);
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

sk_engine_worker_t *sk_engine_attach(sk_engine_t *e, sk_loop_t *loop)
{
    sk_engine_worker_t *w = sk_xcalloc(1, sizeof(*w));
    w->e = e;
    w->loop = loop;
    sk_mpsc_init(&w->done_q);
    if (sk_async_init(loop, &w->async, worker_on_async) < 0) {
        free(w);
        return NULL;
    }
    return w;
}

void sk_engine_detach(sk_engine_worker_t *w)
{
    if (!w)
        return;
    worker_on_async(w->loop, &w->async);
    sk_async_close(w->loop, &w->async);
    free(w);
}

static void ledger_wake(sk_engine_t *e)
{
    if (atomic_exchange(&e->wake_pending, 1) == 0) {
        uint64_t one = 1;
        ssize_t r = write(e->efd, &one, sizeof(one));
        (void)r;
    }
}

void sk_engine_submit(sk_engine_worker_t *w, sk_op_t *op)
{
    sk_engine_t *e = w->e;
    op->worker = w;
    if (op->kind == SK_OP_BUY) {
        int64_t in = atomic_fetch_add_explicit(&e->stats.inflight, 1, memory_order_relaxed);
        if (in >= (int64_t)e->cfg.max_inflight) {
            atomic_fetch_sub_explicit(&e->stats.inflight, 1, memory_order_relaxed);
            op->result = SK_BUY_RATE_LIMITED;
            op->remaining = op->sale->stock - sk_sale_sold(op->sale);
            op->done(op);
            return;
        }
    }
    sk_mpsc_push(&e->q, &op->node);
    ledger_wake(e);
}

/* ---- the ledger ----------------------------------------------------------------------- */

static void decide_buy(sk_engine_t *e, sk_op_t *op, size_t *n_journal)
{
    sk_sale_t *s = op->sale;
    sk_holders_t *h = s->holders;
    op->remaining = s->stock - s->ledger_sold;
    if (op->now_ms < s->starts_at) {
        op->result = SK_BUY_NOT_STARTED;
        return;
    }
    if (op->now_ms >= s->ends_at) {
        op->result = SK_BUY_ENDED;
        return;
    }
    uint32_t slot = sk_holders_find(h, op->user_id, op->user_len);
    if (slot != NONE && h->slots[slot].count > 0) {
        uint32_t k = sk_holders_find_request(h, slot, op->request_id, op->request_len);
        if (k != NONE) {
            sk_holders_order(h, k, &op->order);
            op->result = SK_BUY_DUPLICATE;
            return;
        }
        if (h->slots[slot].count >= s->per_user_limit) {
            sk_holders_order(h, h->slots[slot].first, &op->order);
            op->result = SK_BUY_LIMIT_REACHED;
            return;
        }
    }
    if (s->ledger_sold >= s->stock) {
        op->result = SK_BUY_SOLD_OUT;
        return;
    }
    if (slot == NONE)
        slot = sk_holders_upsert(h, op->user_id, op->user_len);
    int64_t now = sk_now_ms();
    sk_holders_add_order(h, slot, op->request_id, op->request_len, now);
    s->ledger_sold++;
    op->result = SK_BUY_CONFIRMED;
    op->order.seq = (uint64_t)s->ledger_sold;
    op->order.created_at = now;
    memcpy(op->order.user_id, op->user_id, op->user_len + 1u);
    memcpy(op->order.request_id, op->request_id, op->request_len + 1u);
    op->remaining = s->stock - s->ledger_sold;

    size_t j = (*n_journal)++;
    sk_order_id(e->jorder_ids[j], s, op->order.seq);
    e->jorders[j] = (sk_journal_order_t){s->id, e->jorder_ids[j], op->user_id, op->request_id, now};
}

static void answer_orders(sk_op_t *op)
{
    op->n_orders = user_orders(op->sale->holders, op->user_id, op->user_len, &op->orders);
}

static void answer_list(sk_op_t *op)
{
    const sk_holders_t *h = op->sale->holders;
    uint64_t total = h->n_orders;
    uint64_t from = op->list_after < total ? op->list_after : total;
    size_t n = (size_t)SK_MIN((uint64_t)op->list_limit, total - from);
    op->orders = n ? sk_xmalloc(n * sizeof(sk_order_t)) : NULL;
    for (size_t i = 0; i < n; i++)
        sk_holders_order(h, (uint32_t)(from + i), &op->orders[i]);
    op->n_orders = n;
    op->list_more = from + n < total;
}

static void create_sale(sk_engine_t *e, sk_op_t *op)
{
    sk_sale_t *s = op->new_sale;
    if (sk_engine_find_sale(e, s->id, s->id_len)) {
        op->status = -EEXIST;
        return;
    }
    if (sk_engine_sale_count(e) >= SK_MAX_SALES) {
        op->status = -ENOSPC;
        return;
    }
    sk_journal_sale_t js = {s->id, s->name, s->stock, s->starts_at, s->ends_at, s->per_user_limit, s->created_at};
    int rc = sk_journal_put_sale(e->journal, &js);
    if (rc < 0) {
        op->status = rc;
        return;
    }
    s->holders = sk_holders_new();
    table_insert(e, s);
    op->new_sale = NULL;
    op->sale = s;
    op->status = 0;
}

int sk_engine_add_sale(sk_engine_t *e, sk_sale_t *s)
{
    sk_op_t op = {.kind = SK_OP_CREATE_SALE, .new_sale = s};
    create_sale(e, &op);
    return op.status;
}

static void post(sk_engine_t *e, sk_op_t *op)
{
    sk_engine_worker_t *w = op->worker;
    if (op->kind == SK_OP_BUY)
        atomic_fetch_sub_explicit(&e->stats.inflight, 1, memory_order_relaxed);
    sk_mpsc_push(&w->done_q, &op->node);
    if (!w->notify) {
        w->notify = true;
        e->notify[e->n_notify++] = w;
    }
}

static void record_batch(sk_engine_t *e, size_t n, uint64_t commit_ns)
{
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

static void process_batch(sk_engine_t *e, sk_op_t **ops, size_t n)
{
    size_t n_journal = 0, n_buys = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->kind == SK_OP_BUY) {
            decide_buy(e, ops[i], &n_journal);
            n_buys++;
        }
    }
    if (n_buys) {
        uint64_t t0 = sk_mono_ns();
        int rc = sk_journal_put_orders(e->journal, e->jorders, n_journal);
        uint64_t dt = sk_mono_ns() - t0;
        if (rc < 0) {
            /* Nothing of this batch is durable: forget its orders and answer every
             * purchase of it 503, since any answer may have depended on them. */
            sk_counter_add(&e->stats.commit_errors, 1);
            for (size_t i = n; i-- > 0;) {
                sk_op_t *op = ops[i];
                if (op->kind != SK_OP_BUY)
                    continue;
                if (op->result == SK_BUY_CONFIRMED) {
                    sk_holders_pop_order(op->sale->holders);
                    op->sale->ledger_sold--;
                }
                op->result = SK_BUY_UNAVAILABLE;
            }
        } else {
            record_batch(e, n_buys, n_journal ? dt : 0);
            for (size_t i = 0; i < n; i++) {
                sk_sale_t *s = ops[i]->sale;
                if (ops[i]->kind != SK_OP_BUY || ops[i]->result != SK_BUY_CONFIRMED)
                    continue;
                if (atomic_load_explicit(&s->sold, memory_order_relaxed) != s->ledger_sold) {
                    atomic_store_explicit(&s->sold, s->ledger_sold, memory_order_release);
                    atomic_fetch_add_explicit(&s->version, 1, memory_order_release);
                    if (s->ledger_sold >= s->stock)
                        atomic_store_explicit(&s->sold_out, true, memory_order_release);
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        sk_op_t *op = ops[i];
        switch (op->kind) {
        case SK_OP_ORDERS:
            answer_orders(op);
            break;
        case SK_OP_LIST:
            answer_list(op);
            break;
        case SK_OP_CREATE_SALE:
            create_sale(e, op);
            break;
        case SK_OP_BUY:
            break;
        }
        post(e, op);
    }
    for (size_t i = 0; i < e->n_notify; i++) {
        e->notify[i]->notify = false;
        sk_async_send(&e->notify[i]->async);
    }
    e->n_notify = 0;
}

static void *ledger_main(void *arg)
{
    sk_engine_t *e = arg;
    for (;;) {
        atomic_store(&e->wake_pending, 0);
        size_t n = 0;
        sk_mpsc_node_t *node;
        while (n < e->cfg.max_batch && (node = sk_mpsc_pop(&e->q)) != NULL)
            e->batch[n++] = SK_CONTAINER_OF(node, sk_op_t, node);
        if (n > 0) {
            process_batch(e, e->batch, n);
            continue;
        }
        if (atomic_load(&e->stopping))
            break;
        uint64_t v;
        ssize_t r = read(e->efd, &v, sizeof(v));
        (void)r;
    }
    return NULL;
}

/* ---- start-up: rebuild the ledger from the journal --------------------------------------- */

static int load_sale(void *arg, const sk_journal_sale_t *js)
{
    sk_engine_t *e = arg;
    size_t len = strlen(js->id);
    if (!sk_valid_sale_id(js->id, len) || sk_engine_find_sale(e, js->id, len) ||
        sk_engine_sale_count(e) >= SK_MAX_SALES)
        return -EINVAL;
    sk_sale_t *s = sk_xcalloc(1, sizeof(*s));
    memcpy(s->id, js->id, len + 1);
    s->id_len = len;
    s->name = sk_xstrndup(js->name, strlen(js->name));
    s->stock = js->stock;
    s->starts_at = js->starts_at;
    s->ends_at = js->ends_at;
    s->per_user_limit = (int32_t)js->per_user_limit;
    s->created_at = js->created_at;
    s->holders = sk_holders_new();
    table_insert(e, s);
    return 0;
}

static int load_order(void *arg, const sk_journal_order_t *o)
{
    sk_engine_t *e = arg;
    sk_sale_t *s = sk_engine_find_sale(e, o->sale_id, strlen(o->sale_id));
    uint64_t seq;
    size_t ul = strlen(o->user_id), rl = strlen(o->request_id);
    if (!s || sk_order_id_parse(s, o->order_id, strlen(o->order_id), &seq) < 0 ||
        seq != (uint64_t)s->ledger_sold + 1 || s->ledger_sold >= s->stock || !sk_valid_user_id(o->user_id, ul) ||
        !sk_valid_request_id(o->request_id, rl))
        return -EINVAL;
    uint32_t slot = sk_holders_upsert(s->holders, o->user_id, ul);
    sk_holders_add_order(s->holders, slot, o->request_id, rl, o->created_at);
    s->ledger_sold++;
    return 0;
}

sk_engine_t *sk_engine_open(const sk_engine_config_t *cfg, char *err, size_t err_size)
{
    sk_engine_t *e = sk_xcalloc(1, sizeof(*e));
    e->cfg = *cfg;
    if (!e->cfg.max_batch)
        e->cfg.max_batch = 4096;
    if (!e->cfg.max_inflight)
        e->cfg.max_inflight = 65536;
    e->efd = -1;
    sk_mpsc_init(&e->q);
    e->journal = sk_journal_open(cfg->data_dir, err, err_size);
    if (!e->journal)
        goto fail;
    int rc = sk_journal_load(e->journal, load_sale, load_order, e);
    if (rc < 0) {
        snprintf(err, err_size, "the store in %s is inconsistent or unreadable (%s)", cfg->data_dir,
                 rc == -EINVAL ? "an order or sale does not fit the ledger" : "read error");
        goto fail;
    }
    for (size_t i = 0; i < sk_engine_sale_count(e); i++) {
        sk_sale_t *s = e->list[i];
        atomic_store(&s->sold, s->ledger_sold);
        if (s->ledger_sold >= s->stock)
            atomic_store(&s->sold_out, true);
    }
    e->efd = eventfd(0, EFD_CLOEXEC);
    if (e->efd < 0) {
        snprintf(err, err_size, "eventfd: %s", strerror(errno));
        goto fail;
    }
    e->batch = sk_xmalloc(e->cfg.max_batch * sizeof(*e->batch));
    e->jorders = sk_xmalloc(e->cfg.max_batch * sizeof(*e->jorders));
    e->jorder_ids = sk_xmalloc(e->cfg.max_batch * sizeof(*e->jorder_ids));
    e->notify = sk_xmalloc(e->cfg.max_batch * sizeof(*e->notify));
    return e;
fail:
    sk_engine_free(e);
    return NULL;
}

int sk_engine_start(sk_engine_t *e)
{
    int rc = pthread_create(&e->thread, NULL, ledger_main, e);
    if (rc != 0)
        return -rc;
    e->running = true;
    return 0;
}

void sk_engine_stop(sk_engine_t *e)
{
    if (!e->running)
        return;
    atomic_store(&e->stopping, true);
    uint64_t one = 1;
    ssize_t r = write(e->efd, &one, sizeof(one));
    (void)r;
    pthread_join(e->thread, NULL);
    e->running = false;
}

void sk_engine_free(sk_engine_t *e)
{
    if (!e)
        return;
    sk_engine_stop(e);
    for (size_t i = 0; i < sk_engine_sale_count(e); i++)
        sale_free(e->list[i]);
    sk_journal_close(e->journal);
    if (e->efd >= 0)
        close(e->efd);
    free(e->batch);
    free(e->jorders);
    free(e->jorder_ids);
    free(e->notify);
    free(e);
}

const sk_engine_stats_t *sk_engine_stats(const sk_engine_t *e)
{
    return &e->stats;
}
