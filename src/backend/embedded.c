/* The embedded ledger: decisions in memory, orders journaled in SQLite.
 *
 * One thread is the one writer of every sale's stock and holders (the single-writer
 * principle): workers push ops onto the engine's lock-free queue and wake it through
 * an eventfd; it takes everything queued (up to max_batch), decides each purchase in
 * arrival order, writes all confirmed orders of the batch in one SQLite transaction,
 * and only after that commit returns publishes the new counts and posts the answers.
 * While it commits, the next batch forms in the queue, so the batch grows with the
 * load and one fsync is shared by every purchase of a batch. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/embedded.h"

#include "backend/journal.h"
#include "engine/holders.h"

#define NONE UINT32_MAX

/* What the ledger keeps per sale, indexed by sk_sale_t.index. */
typedef struct {
    sk_holders_t *holders; /* owned here until handed to the engine */
    int64_t sold; /* decided: committed, or in the batch being committed */
    int64_t durable; /* orders 1..durable are in the journal for certain */
    bool uncertain; /* a commit reported failure and the journal could not be asked yet
                       whether orders durable+1..sold reached it */
    bool settling; /* marked while a failed batch's sales are settled */
    bool broken; /* the journal holds what this ledger never wrote: left uncertain */
    bool closed; /* the ledger's clock passed ends_at: no order will be added */
    bool handed; /* holders adopted by the engine (final: sold out or closed) */
} lsale_t;

typedef struct {
    sk_backend_t base;
    sk_engine_t *e;
    char *data_dir;
    size_t max_batch;
    sk_journal_t *journal;
    int efd; /* blocking eventfd the ledger sleeps on */
    int lock_fd; /* DATA/seckill.lock, flock'ed for the process's lifetime */
    _Atomic int wake_pending;
    pthread_t thread;
    bool running;
    sk_op_t **batch;
    sk_journal_order_t *jorders;
    lsale_t *sales; /* [SK_MAX_SALES] */
    sk_sale_t **uncertain; /* sales with lsale_t.uncertain set, [SK_MAX_SALES] */
    size_t n_uncertain;
} ledger_t;

static lsale_t *lsale(ledger_t *l, const sk_sale_t *s)
{
    return &l->sales[s->index];
}

/* Called when everything decided for the sale is durable: the engine takes the holders
 * once no order can come any more, and the workers answer the sale from then on. */
static void publish(ledger_t *l, sk_sale_t *s)
{
    lsale_t *ls = lsale(l, s);
    if (ls->uncertain)
        return; /* published once the journal told what it holds */
    sk_engine_publish_sold(s, ls->sold);
    if ((ls->sold >= s->stock || ls->closed) && !ls->handed) {
        ls->handed = true;
        sk_engine_adopt_final_holders(s, ls->holders);
    }
}

/* A sale whose end the ledger's clock has passed is closed for good: from this batch on
 * it decides no order, whatever clock reading a purchase carries (a worker may have read
 * its clock just before the end), so its holders are final. Every earlier batch is
 * durable by now (commits are synchronous), so they can be handed over at once. */
static void close_if_ended(ledger_t *l, sk_sale_t *s, int64_t now)
{
    lsale_t *ls = lsale(l, s);
    if (ls->closed || now < s->ends_at)
        return;
    ls->closed = true;
    publish(l, s);
}

/* `now` is the batch's time: every order of a batch carries it, in memory and in the
 * journal (which stores it once per sale per batch). */
static void decide_buy(ledger_t *l, sk_op_t *op, size_t *n_journal, int64_t now)
{
    sk_sale_t *s = op->sale;
    lsale_t *ls = lsale(l, s);
    sk_holders_t *h = ls->holders;
    op->remaining = s->stock - ls->sold;
    if (ls->uncertain) {
        /* Any answer could depend on orders that may not exist: nothing is decided. */
        op->result = SK_BUY_UNAVAILABLE;
        op->remaining = s->stock - ls->durable;
        return;
    }
    /* The order of the checks is sk_engine_final_answer's: a holder's replay first,
     * whatever the clock says, then the window, the limit and the stock. */
    uint64_t hash = op->scratch;
    uint32_t slot = sk_holders_probe(h, hash, op->user_id, op->user_len);
    bool present = sk_holders_present(h, slot);
    uint32_t count = present ? h->slots[slot].count : 0;
    if (count > 0) {
        uint32_t k = sk_holders_find_request(h, slot, op->request_id, op->request_len, NULL);
        if (k != NONE) {
            sk_holders_order(h, k, &op->order);
            op->result = SK_BUY_DUPLICATE;
            return;
        }
    }
    if (op->now_ms < s->starts_at) {
        op->result = SK_BUY_NOT_STARTED;
        return;
    }
    if (op->now_ms >= s->ends_at || ls->closed) {
        op->result = SK_BUY_ENDED;
        return;
    }
    if ((int64_t)count >= s->per_user_limit || ls->sold >= s->stock) {
        op->result = (int64_t)count >= s->per_user_limit ? SK_BUY_LIMIT_REACHED : SK_BUY_SOLD_OUT;
        if (count > 0) {
            sk_holders_order(h, h->slots[slot].first, &op->order);
            op->held = count;
        }
        return;
    }
    if (!present)
        slot = sk_holders_insert_at(h, slot, hash, op->user_id, op->user_len);
    sk_holders_add_order(h, slot, op->request_id, op->request_len, now);
    ls->sold++;
    op->result = SK_BUY_CONFIRMED;
    op->order.seq = (uint64_t)ls->sold;
    op->order.created_at = now;
    memcpy(op->order.user_id, op->user_id, op->user_len + 1u);
    memcpy(op->order.request_id, op->request_id, op->request_len + 1u);
    op->remaining = s->stock - ls->sold;

    size_t j = (*n_journal)++;
    l->jorders[j] = (sk_journal_order_t){s->id, op->order.seq, op->user_id, op->request_id, now};
}

static void answer_orders(ledger_t *l, sk_op_t *op)
{
    if (lsale(l, op->sale)->uncertain) {
        op->status = -EIO; /* never a list that may hold orders that do not exist */
        return;
    }
    op->n_orders = sk_engine_user_orders(lsale(l, op->sale)->holders, op->user_id, op->user_len, &op->orders);
}

static void answer_list(ledger_t *l, sk_op_t *op)
{
    if (lsale(l, op->sale)->uncertain) {
        op->status = -EIO;
        return;
    }
    const sk_holders_t *h = lsale(l, op->sale)->holders;
    uint64_t total = h->n_orders;
    uint64_t from = op->list_after < total ? op->list_after : total;
    size_t n = (size_t)SK_MIN((uint64_t)op->list_limit, total - from);
    op->orders = n ? sk_xmalloc(n * sizeof(sk_order_t)) : NULL;
    for (size_t i = 0; i < n; i++)
        sk_holders_order(h, (uint32_t)(from + i), &op->orders[i]);
    op->n_orders = n;
    op->list_more = from + n < total;
}

static void create_sale(ledger_t *l, sk_op_t *op)
{
    sk_engine_t *e = l->e;
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
    int rc = sk_journal_put_sale(l->journal, &js);
    if (rc < 0) {
        op->status = rc;
        return;
    }
    sk_engine_register_sale(e, s);
    lsale(l, s)->holders = sk_holders_new();
    op->new_sale = NULL;
    op->sale = s;
    op->status = 0;
}

/* A commit reported failure, yet it may have reached the disk (an fsync error after the
 * write, a lost reply): the journal, not the report, says which. Orders it holds stay
 * (their buyers heard 503 and find them by asking or retrying, I6), orders it lacks are
 * forgotten and their seqs used again. A seq is never handed out twice for certain:
 * while the journal cannot be asked, the sale decides nothing. Returns true once the
 * sale's state is certain again. */
static bool settle(ledger_t *l, sk_sale_t *s)
{
    lsale_t *ls = lsale(l, s);
    uint64_t last;
    if (ls->broken || sk_journal_last_seq(l->journal, s->id, &last) < 0)
        return false;
    if ((int64_t)last == ls->durable) {
        while (ls->sold > ls->durable) {
            sk_holders_pop_order(ls->holders);
            ls->sold--;
        }
    } else if ((int64_t)last == ls->sold) {
        ls->durable = ls->sold;
        sk_warn("journal: a commit reported failure but stored the orders of sale '%s' up to %lld; they stand", s->id,
                (long long)last);
    } else {
        /* One writer and one transaction per batch: any other count means the file was
         * changed behind the ledger's back. Decide nothing more for this sale. */
        sk_error("journal: sale '%s' holds orders up to %llu, the ledger expected %lld or %lld; its purchases are "
                 "answered 503 until a restart",
                 s->id, (unsigned long long)last, (long long)ls->durable, (long long)ls->sold);
        ls->broken = true;
        return false;
    }
    return true;
}

static void mark_uncertain(ledger_t *l, sk_sale_t *s)
{
    lsale_t *ls = lsale(l, s);
    if (!ls->uncertain) {
        ls->uncertain = true;
        l->uncertain[l->n_uncertain++] = s;
    }
}

/* Before a batch: asks the journal again about sales whose last commit is in doubt. */
static void settle_uncertain(ledger_t *l)
{
    size_t keep = 0;
    for (size_t i = 0; i < l->n_uncertain; i++) {
        sk_sale_t *s = l->uncertain[i];
        if (settle(l, s)) {
            lsale(l, s)->uncertain = false;
            publish(l, s);
        } else {
            l->uncertain[keep++] = s;
        }
    }
    l->n_uncertain = keep;
}

static void process_batch(ledger_t *l, sk_op_t **ops, size_t n)
{
    sk_engine_t *e = l->e;
    size_t n_journal = 0, n_buys = 0;
    int64_t now = sk_now_ms();
    if (l->n_uncertain)
        settle_uncertain(l);
    for (size_t i = 0; i < n; i++) {
        sk_op_t *op = ops[i];
        if (op->kind == SK_OP_BUY) {
            close_if_ended(l, op->sale, now);
            op->scratch = sk_holders_hash(op->user_id, op->user_len);
            sk_holders_prefetch(lsale(l, op->sale)->holders, op->scratch);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->kind == SK_OP_BUY) {
            decide_buy(l, ops[i], &n_journal, now);
            n_buys++;
        }
    }
    if (n_buys) {
        uint64_t t0 = sk_mono_ns();
        int rc = sk_journal_put_orders(l->journal, l->jorders, n_journal);
        uint64_t dt = sk_mono_ns() - t0;
        if (rc < 0) {
            /* Nothing of this batch may be confirmed: answer every purchase of it 503,
             * since any answer may have depended on its orders, and settle each sale
             * that had orders in it with what the journal holds. */
            sk_engine_record_batch(e, n_buys, dt, false);
            for (size_t i = 0; i < n; i++) {
                sk_op_t *op = ops[i];
                if (op->kind != SK_OP_BUY)
                    continue;
                lsale_t *ls = lsale(l, op->sale);
                if (op->result == SK_BUY_CONFIRMED && !ls->settling) {
                    ls->settling = true;
                    if (!settle(l, op->sale))
                        mark_uncertain(l, op->sale);
                }
                op->result = SK_BUY_UNAVAILABLE;
            }
            for (size_t i = 0; i < n; i++) {
                if (ops[i]->kind != SK_OP_BUY)
                    continue;
                lsale_t *ls = lsale(l, ops[i]->sale);
                ops[i]->remaining = ops[i]->sale->stock - ls->durable;
                if (ls->settling) {
                    ls->settling = false;
                    publish(l, ops[i]->sale);
                }
            }
        } else {
            sk_engine_record_batch(e, n_buys, n_journal ? dt : 0, true);
            for (size_t i = 0; i < n; i++) {
                if (ops[i]->kind == SK_OP_BUY && ops[i]->result == SK_BUY_CONFIRMED) {
                    lsale(l, ops[i]->sale)->durable = lsale(l, ops[i]->sale)->sold;
                    publish(l, ops[i]->sale);
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        sk_op_t *op = ops[i];
        switch (op->kind) {
        case SK_OP_ORDERS:
            answer_orders(l, op);
            break;
        case SK_OP_LIST:
            answer_list(l, op);
            break;
        case SK_OP_CREATE_SALE:
            create_sale(l, op);
            break;
        case SK_OP_FIND_SALE:
            op->status = -ENOENT; /* every sale of this store is registered at load */
            break;
        case SK_OP_BUY:
            break;
        }
        sk_engine_complete(e, op);
    }
    sk_engine_flush(e);
}

static void *ledger_main(void *arg)
{
    ledger_t *l = arg;
    for (;;) {
        /* Clear the flag before looking: a push after this point wakes us again. */
        atomic_store(&l->wake_pending, 0);
        size_t n = sk_engine_take(l->e, l->batch, l->max_batch);
        if (n > 0) {
            process_batch(l, l->batch, n);
            continue;
        }
        if (sk_engine_stopping(l->e))
            break;
        uint64_t v;
        ssize_t r = read(l->efd, &v, sizeof(v));
        (void)r;
    }
    return NULL;
}

/* ---- start-up: rebuild the ledger from the journal --------------------------------------- */

static int load_sale(void *arg, const sk_journal_sale_t *js)
{
    ledger_t *l = arg;
    sk_engine_t *e = l->e;
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
    sk_engine_register_sale(e, s);
    lsale(l, s)->holders = sk_holders_new();
    return 0;
}

static int load_order(void *arg, const sk_journal_order_t *o)
{
    ledger_t *l = arg;
    sk_sale_t *s = sk_engine_find_sale(l->e, o->sale_id, strlen(o->sale_id));
    size_t ul = strlen(o->user_id), rl = strlen(o->request_id);
    lsale_t *ls = s ? lsale(l, s) : NULL;
    if (!s || o->seq != (uint64_t)ls->sold + 1 || ls->sold >= s->stock || !sk_valid_user_id(o->user_id, ul) ||
        !sk_valid_request_id(o->request_id, rl))
        return -EINVAL;
    uint32_t slot = sk_holders_upsert(ls->holders, o->user_id, ul);
    sk_holders_add_order(ls->holders, slot, o->request_id, rl, o->created_at);
    ls->durable = ++ls->sold;
    return 0;
}

static int ledger_load(sk_backend_t *b, sk_engine_t *e, char *err, size_t err_size)
{
    ledger_t *l = (ledger_t *)b;
    l->e = e;
    /* Two ledgers on one journal would each believe they own the stock: refuse. */
    if (mkdir(l->data_dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create data directory %s: %s", l->data_dir, strerror(errno));
        return -errno;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/seckill.lock", l->data_dir);
    l->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (l->lock_fd < 0) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        return -errno;
    }
    if (flock(l->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, err_size, "data directory %s is in use by another seckill process", l->data_dir);
        return -EBUSY;
    }
    l->journal = sk_journal_open(l->data_dir, err, err_size);
    if (!l->journal)
        return -EIO;
    int rc = sk_journal_load(l->journal, load_sale, load_order, l);
    if (rc < 0) {
        snprintf(err, err_size, "the store in %s is inconsistent or unreadable (%s)", l->data_dir,
                 rc == -EINVAL ? "an order or sale does not fit the ledger" : "read error");
        return rc;
    }
    int64_t now = sk_now_ms();
    for (size_t i = 0; i < sk_engine_sale_count(e); i++) {
        publish(l, sk_engine_sale_at(e, i));
        close_if_ended(l, sk_engine_sale_at(e, i), now);
    }
    l->efd = eventfd(0, EFD_CLOEXEC);
    if (l->efd < 0) {
        snprintf(err, err_size, "eventfd: %s", strerror(errno));
        return -errno;
    }
    return 0;
}

static int ledger_add_sale(sk_backend_t *b, sk_engine_t *e, sk_sale_t *s)
{
    ledger_t *l = (ledger_t *)b;
    (void)e;
    sk_op_t op = {.kind = SK_OP_CREATE_SALE, .new_sale = s};
    create_sale(l, &op);
    return op.status;
}

static int ledger_start(sk_backend_t *b, sk_engine_t *e)
{
    ledger_t *l = (ledger_t *)b;
    l->e = e;
    int rc = pthread_create(&l->thread, NULL, ledger_main, l);
    if (rc != 0)
        return -rc;
    l->running = true;
    return 0;
}

static void ledger_wake(sk_backend_t *b)
{
    ledger_t *l = (ledger_t *)b;
    if (atomic_exchange(&l->wake_pending, 1) == 0) {
        uint64_t one = 1;
        ssize_t r = write(l->efd, &one, sizeof(one));
        (void)r;
    }
}

static void ledger_stop(sk_backend_t *b)
{
    ledger_t *l = (ledger_t *)b;
    if (!l->running)
        return;
    uint64_t one = 1;
    ssize_t r = write(l->efd, &one, sizeof(one));
    (void)r;
    pthread_join(l->thread, NULL);
    l->running = false;
}

static void ledger_free(sk_backend_t *b)
{
    ledger_t *l = (ledger_t *)b;
    ledger_stop(b);
    sk_journal_close(l->journal);
    if (l->efd >= 0)
        close(l->efd);
    if (l->lock_fd >= 0)
        close(l->lock_fd);
    /* The engine freed the sales (and the holders it adopted) already. */
    for (size_t i = 0; i < SK_MAX_SALES; i++)
        if (!l->sales[i].handed)
            sk_holders_free(l->sales[i].holders);
    free(l->sales);
    free(l->uncertain);
    free(l->batch);
    free(l->jorders);
    free(l->data_dir);
    free(l);
}

void sk_backend_embedded_set_fault(sk_backend_t *b, bool (*fn)(void *arg, sk_journal_fault_t at), void *arg)
{
    sk_journal_set_fault(((ledger_t *)b)->journal, fn, arg);
}

sk_backend_t *sk_backend_embedded_new(const char *data_dir, size_t max_batch)
{
    ledger_t *l = sk_xcalloc(1, sizeof(*l));
    l->base = (sk_backend_t){.name = "embedded",
                             .load = ledger_load,
                             .add_sale = ledger_add_sale,
                             .start = ledger_start,
                             .wake = ledger_wake,
                             .stop = ledger_stop,
                             .free = ledger_free};
    l->data_dir = sk_xstrndup(data_dir, strlen(data_dir));
    l->max_batch = max_batch ? max_batch : 4096;
    l->efd = -1;
    l->lock_fd = -1;
    l->batch = sk_xmalloc(l->max_batch * sizeof(*l->batch));
    l->jorders = sk_xmalloc(l->max_batch * sizeof(*l->jorders));
    l->sales = sk_xcalloc(SK_MAX_SALES, sizeof(*l->sales));
    l->uncertain = sk_xmalloc(SK_MAX_SALES * sizeof(*l->uncertain));
    return &l->base;
}
