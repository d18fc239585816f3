/* The embedded ledger: decisions in memory, orders and their transitions journaled in
 * SQLite.
 *
 * One thread is the one writer of every sale's counts, orders and holders (the
 * single-writer principle): workers push ops onto the engine's lock-free queue and wake
 * it through an eventfd; it takes everything queued (up to max_batch), first expires
 * every reservation whose pay_by has passed (but one a payment received in time may
 * still pay: spares_expiry for the batch's, held_by_payment for those on their way),
 * then decides each op in arrival order (the batch's payments in time first),
 * writes all the batch's new orders and transitions in one SQLite transaction, and only
 * after that transaction is durable publishes the new counts and posts the answers.
 *
 * Durability off the deciding thread: the commit only writes the WAL; a second thread,
 * the syncer, makes it durable (fdatasync) while the ledger takes, decides and writes
 * the next batch (a batch smaller than max_batch first waits for the sync in progress
 * and grows meanwhile: see wait_for_sync). A batch's answers and the counts it
 * publishes wait for a sync that began after its write (a batch that wrote nothing
 * waits for the writes before it: its answers may rest on them). At most one written batch waits behind the sync in
 * progress, so in a flood (full batches) the disk is never idle and the ledger's work
 * does not add to a purchase's wait for the disk; below that, each batch holds what
 * arrived during one sync. Either way one fsync is shared by every decision of a batch.
 *
 * Expiry without a scan: pay_by = created_at + the sale's window, created_at only grows
 * and the window cannot change once a sale has orders, so a sale's reservations are in
 * deadline order by seq. Its orders array is therefore its deadline FIFO: a cursor
 * walks it, passing orders that are no longer reserved. A min-heap of sales keyed by
 * the pay_by at their cursor (a key that may lag behind: it is never later than the
 * true next deadline) finds the next deadline in O(log sales), and the thread sleeps
 * until then (poll on its eventfd with that timeout) unless work arrives first.
 *
 * Waiting rooms: the ledger is also the one writer of every queued sale's queue
 * (engine/queue.h). Each batch first advances every queue at the batch's clock (the
 * start's shuffle, admissions while the sale can sell: after the expiries, so returned
 * units reopen admission at once), then decides the queue ops (joins, places) in order
 * with the purchases. The queue's changes are journaled after the batch's orders in a
 * transaction of their own, and the answers leave only after it; a failure of that
 * write stops the waiting rooms (503) until a restart, which rebuilds them from what the
 * journal holds. The thread also wakes when the next admission is due. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/embedded.h"

#include "backend/journal.h"
#include "engine/holders.h"

#define NONE UINT32_MAX
#define SETTLE_RETRY_MS 200 /* how often a sale in doubt is asked about while idle */

/* A transition made by the batch being committed, to put back if it is not stored: 12
 * bytes, since an expiry batch may hold millions. */
typedef struct {
    uint32_t sale; /* index */
    uint32_t order; /* index */
    uint8_t from; /* the state it left (reserved or confirmed) */
} undo_t;

/* A sale's state before the batch being committed touched it. */
typedef struct {
    sk_sale_counts_t counts;
    uint32_t cursor;
    uint32_t n_orders;
    size_t n_trail;
    bool closed;
    /* The settings, copied only when a control of the batch changes them. */
    bool has_params;
    sk_sale_params_t p;
    char name[SK_NAME_MAX + 1];
} snap_t;

/* What the ledger keeps per sale, indexed by sk_sale_t.index. */
typedef struct {
    /* The settings as decided: the published snapshot (sk_sale_params) lags behind
     * until the batch that changed them is durable; the ledger's own decisions use
     * these, so a purchase after a pause in the same batch is refused. */
    sk_sale_params_t p;
    char name[SK_NAME_MAX + 1]; /* p.name points here */
    bool params_dirty; /* changed by the batch being committed: publish after it */
    sk_trail_entry_t *trail; /* every accepted control, in order (its seq - 1) */
    size_t n_trail, cap_trail;
    sk_holders_t *holders; /* every order, owned here */
    sk_userset_t *users; /* the possible holders: published to (and owned by) the engine */
    sk_sale_counts_t counts; /* decided: committed, or in the batch being committed */
    uint32_t cursor; /* expiry: no order before it is reserved */
    int32_t heap_pos; /* -1: no pending reservation known */
    uint64_t touched; /* the batch number that last touched it */
    snap_t snap; /* as it was before that batch */
    /* A commit reported failure and the journal could not be asked yet whether the
     * batch [unc_first, unc_last] reached it: the sale decides nothing until it can. */
    bool uncertain;
    uint64_t unc_first, unc_last;
    undo_t *unc_undo; /* that batch's transitions of this sale */
    size_t n_unc_undo;
    bool broken; /* the journal holds what this ledger never wrote: left uncertain */
    bool closed; /* the ledger's clock passed ends_at: no order will be added */
    uint32_t early; /* start-up: transitions held back for orders not loaded yet (load_event) */
    /* Orders of the batch being committed that entered each state: added to the sale's
     * metrics once the batch is known to be stored, dropped when it is put back. */
    uint32_t entered[SK_ORDER__COUNT];
    sk_queue_t *queue; /* the waiting room, made when the sale first has one */
    bool queue_touched; /* changed by this batch: publish after its write */
    uint64_t pub_batch; /* the batch whose pub_t pub_at is (see stage_pub) */
    uint32_t pub_at;
} lsale_t;

/* A waiting-room change of the batch, its user id copied into ledger_t.qusers (the
 * queue's own copy may move while the batch goes on). */
typedef struct {
    uint32_t sale;
    sk_queue_rec_t rec;
    size_t user_off;
} jqueue_t;

typedef struct {
    int64_t key; /* the pay_by at the sale's cursor, or earlier */
    uint32_t sale;
} hnode_t;

/* What a batch publishes to the workers once it is durable: a sale's counts (and its
 * settings or its queue, when the batch changed them) as the batch left them. */
typedef struct {
    sk_sale_t *sale;
    sk_sale_counts_t counts;
    bool has_counts, has_params, has_queue;
    sk_sale_params_t p; /* p.name is set at release: it is `name` */
    char name[SK_NAME_MAX + 1]; /* the name as the batch left it (a later batch may rename) */
    uint64_t q_len, q_head;
} pub_t;

/* A batch decided and written, waiting for its sync. */
typedef struct {
    uint64_t need; /* released once the writes up to this number are durable */
    uint64_t t0; /* its write began (sk_mono_ns), 0: it wrote nothing */
    size_t n_decided;
    sk_op_t **ops;
    size_t n_ops, cap_ops;
    pub_t *pubs;
    size_t n_pubs, cap_pubs;
} pending_t;

#define PENDING_MAX 8 /* batches waiting; the ledger takes no more until one is released */

typedef struct {
    sk_backend_t base;
    sk_engine_t *e;
    char *data_dir;
    size_t max_batch;
    sk_journal_t *journal;
    int efd; /* eventfd the ledger sleeps on */
    int lock_fd; /* DATA/seckill.lock, flock'ed for the process's lifetime */
    _Atomic int wake_pending;
    pthread_t thread;
    bool running;
    sk_op_t **batch;
    lsale_t *sales; /* [SK_MAX_SALES] */
    sk_sale_t **uncertain; /* sales with lsale_t.uncertain set, [SK_MAX_SALES] */
    size_t n_uncertain;

    /* The batch being decided. */
    uint64_t batch_no;
    sk_journal_order_t *jorders; /* [max_batch] */
    size_t n_jorders;
    sk_journal_event_t *jevents;
    size_t n_jevents, cap_jevents;
    sk_journal_control_t *jcontrols;
    size_t n_jcontrols, cap_jcontrols;
    undo_t *undo;
    size_t n_undo, cap_undo;
    sk_sale_t **touched; /* [SK_MAX_SALES] */
    size_t n_touched;
    size_t n_transitions; /* payments, cancels, refunds and controls decided (not expiries) */

    hnode_t *heap; /* [SK_MAX_SALES] */
    size_t n_heap;

    uint32_t *qsales; /* indices of the sales with a queue, [SK_MAX_SALES] */
    size_t n_qsales;
    jqueue_t *jqueue; /* the batch's queue changes */
    size_t n_jqueue, cap_jqueue;
    sk_buf_t qusers;
    sk_journal_queue_t *jqrows;
    size_t cap_jqrows;
    bool queue_broken; /* a queue write failed: queues answer 503 until a restart */
    int64_t last_settle_ms; /* when uncertain sales were last asked about */
    uint64_t recheck_ns; /* expiry_held: when to look again even if nothing arrives */
    sk_op_t **waiting; /* transitions waiting for a payment on its way (decide_transition) */
    size_t n_waiting, cap_waiting;
    sk_op_t **work; /* a batch's ops behind the waiting ones */
    size_t cap_work;
    bool decide_all; /* stopping, with the queue and the tracks empty: nothing waits */
    int64_t held_from; /* this batch held back expiries due from this on (INT64_MAX: none;
                          else the last batch left something due for a payment on its way) */
    /* Start-up only: transitions the journal holds ahead of their orders (load_event). */
    struct early *early;
    size_t n_early, cap_early, n_early_replayed;

    int64_t (*clock)(void *arg); /* test seam: the ledger's clock (NULL: sk_now_ms) */
    void *clock_arg;

    /* The syncer (see the top of the file). Writes are numbered by the ledger
     * (write_no); the syncer makes them durable in order. */
    pthread_t syncer;
    bool syncer_running;
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv; /* the syncer waits for a write to sync */
    pthread_cond_t done_cv; /* the ledger waits for a sync to end (drain) */
    uint64_t sync_want; /* under sync_mu: the last write to make durable */
    uint64_t sync_done; /* under sync_mu: the writes up to this are handled */
    uint64_t sync_ok; /* under sync_mu: the writes up to this are durable */
    bool sync_stop; /* under sync_mu */
    bool ledger_waits; /* under sync_mu: the ledger waits on done_cv (the syncer's end of a
                          sync wakes it there; its eventfd is not written) */
    bool sync_broken; /* under sync_mu: a sync failed (or a sale's write is in doubt);
                         nothing after sync_ok is durable */
    bool break_writes; /* ledger only: sync_broken was just set; the batch takes a write
                          number of its own, so that it and every later one answer 503 */
    uint64_t write_no; /* the ledger's: its last write's number */
    uint64_t commits_seen; /* the journal's commit count at the last write's number */
    pending_t pending[PENDING_MAX]; /* a ring: the oldest at pending_head */
    size_t pending_head, n_pending;
    pending_t cur; /* the batch being decided: its answers and what it publishes */
} ledger_t;

static void ledger_wake(sk_backend_t *b);
static pub_t *stage_pub(ledger_t *l, sk_sale_t *s);

/* The ledger's clock: every decision of a batch (and every expiry) is made at one
 * reading of it. */
static int64_t ledger_now(ledger_t *l)
{
    return l->clock ? l->clock(l->clock_arg) : sk_now_ms();
}

static lsale_t *lsale(ledger_t *l, const sk_sale_t *s)
{
    return &l->sales[s->index];
}

static int64_t window_of(ledger_t *l, const sk_sale_t *s)
{
    return lsale(l, s)->p.payment_window_ms;
}

/* Copies settings into the sale's own, the name into its buffer. */
static void set_params(lsale_t *ls, const sk_sale_params_t *p)
{
    if (p->name != ls->name)
        snprintf(ls->name, sizeof(ls->name), "%s", p->name);
    ls->p = *p;
    ls->p.name = ls->name;
}

/* ---- the heap of sales by their next deadline --------------------------------------------- */

static void heap_set(ledger_t *l, size_t i, hnode_t n)
{
    l->heap[i] = n;
    l->sales[n.sale].heap_pos = (int32_t)i;
}

static void heap_up(ledger_t *l, size_t i)
{
    hnode_t n = l->heap[i];
    while (i > 0 && l->heap[(i - 1) / 2].key > n.key) {
        heap_set(l, i, l->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(l, i, n);
}

static void heap_down(ledger_t *l, size_t i)
{
    hnode_t n = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->n_heap)
            break;
        if (c + 1 < l->n_heap && l->heap[c + 1].key < l->heap[c].key)
            c++;
        if (l->heap[c].key >= n.key)
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, n);
}

static void heap_remove(ledger_t *l, lsale_t *ls)
{
    if (ls->heap_pos < 0)
        return;
    size_t i = (size_t)ls->heap_pos;
    ls->heap_pos = -1;
    hnode_t last = l->heap[--l->n_heap];
    if (i == l->n_heap)
        return;
    heap_set(l, i, last);
    heap_up(l, i);
    heap_down(l, (size_t)l->sales[last.sale].heap_pos);
}

/* Puts the sale in the heap with the deadline at its cursor, or takes it out when no
 * order at or after the cursor can be reserved. */
static void heap_fix(ledger_t *l, sk_sale_t *s)
{
    lsale_t *ls = lsale(l, s);
    const sk_holders_t *h = ls->holders;
    int64_t window = window_of(l, s);
    if (window <= 0 || ls->cursor >= h->n_orders) {
        heap_remove(l, ls);
        return;
    }
    int64_t key = sk_holders_order_at(h, ls->cursor)->created_at + window;
    if (ls->heap_pos < 0) {
        ls->heap_pos = (int32_t)l->n_heap;
        l->heap[l->n_heap++] = (hnode_t){key, s->index};
        heap_up(l, (size_t)ls->heap_pos);
    } else {
        size_t i = (size_t)ls->heap_pos;
        int64_t old = l->heap[i].key;
        l->heap[i].key = key;
        if (key < old)
            heap_up(l, i);
        else
            heap_down(l, i);
    }
}

/* ---- the batch: snapshots, undo, journal rows ---------------------------------------------- */

/* Called before the batch first changes a sale: remembers how it was. */
static void touch(ledger_t *l, sk_sale_t *s)
{
    lsale_t *ls = lsale(l, s);
    if (ls->touched == l->batch_no)
        return;
    ls->touched = l->batch_no;
    ls->snap.counts = ls->counts;
    ls->snap.cursor = ls->cursor;
    ls->snap.n_orders = ls->holders->n_orders;
    ls->snap.n_trail = ls->n_trail;
    ls->snap.closed = ls->closed;
    ls->snap.has_params = false;
    l->touched[l->n_touched++] = s;
}

/* The batch that touched sale s is stored (stands = true) or was put back: its orders'
 * state changes count in the sale's metrics, or are forgotten. */
static void settle_entered(sk_sale_t *s, lsale_t *ls, bool stands)
{
    for (int st = 0; st < SK_ORDER__COUNT; st++) {
        if (stands && ls->entered[st])
            sk_engine_record_entered(s, (sk_order_state_t)st, ls->entered[st]);
        ls->entered[st] = 0;
    }
}

/* Called before a control of the batch first changes the sale's settings. */
static void touch_params(ledger_t *l, sk_sale_t *s)
{
    lsale_t *ls = lsale(l, s);
    touch(l, s);
    if (ls->snap.has_params)
        return;
    ls->snap.has_params = true;
    ls->snap.p = ls->p;
    memcpy(ls->snap.name, ls->name, sizeof(ls->name));
    ls->snap.p.name = ls->snap.name;
}

static void add_event(ledger_t *l, const sk_sale_t *s, uint64_t seq, sk_order_event_t kind, int64_t at, const char *arg)
{
    if (l->n_jevents == l->cap_jevents) {
        l->cap_jevents = l->cap_jevents ? l->cap_jevents * 2 : 1024;
        l->jevents = sk_xrealloc(l->jevents, l->cap_jevents * sizeof(*l->jevents));
    }
    l->jevents[l->n_jevents++] = (sk_journal_event_t){s->id, seq, kind, at, arg};
}

/* Moves order i of sale s by event ev at now (the rules: engine/order.h), with the
 * counts, the journal row and the undo record. Returns the step. */
static sk_order_step_t transition(ledger_t *l, sk_sale_t *s, uint32_t i, sk_order_event_t ev, int64_t now,
                                  const char *pay, size_t pay_len, const char *arg)
{
    lsale_t *ls = lsale(l, s);
    sk_holders_t *h = ls->holders;
    const sk_holder_order_t *o = sk_holders_order_at(h, i);
    sk_order_state_t st = (sk_order_state_t)o->state;
    int64_t window = window_of(l, s);
    int64_t pay_by = window > 0 ? o->created_at + window : 0;
    bool same = ev == SK_EV_PAY && sk_holders_same_payment(h, i, pay, pay_len);
    sk_order_step_t step = sk_order_step(st, ev, now, pay_by, same);
    if (step.next == st)
        return step;
    touch(l, s);
    if (l->n_undo == l->cap_undo) {
        l->cap_undo = l->cap_undo ? l->cap_undo * 2 : 1024;
        l->undo = sk_xrealloc(l->undo, l->cap_undo * sizeof(*l->undo));
    }
    l->undo[l->n_undo++] = (undo_t){s->index, i, (uint8_t)st};
    int64_t q = o->quantity;
    ls->counts.held += step.held * q;
    ls->counts.sold += step.sold * q;
    sk_holders_set_state(h, i, step.next, now, pay, step.next == SK_ORDER_CONFIRMED ? pay_len : 0);
    ls->entered[step.next]++;
    /* A late payment expires the reservation: the journal records the expiry. */
    sk_order_event_t kind = step.next == SK_ORDER_EXPIRED ? SK_EV_EXPIRE : ev;
    add_event(l, s, (uint64_t)i + 1, kind, now, kind == SK_EV_EXPIRE ? NULL : arg);
    sk_engine_record_transition(l->e, step.next, 1);
    return step;
}

/* Expires every reservation of the sale whose pay_by is before now. */
static void expire_sale(ledger_t *l, sk_sale_t *s, int64_t now)
{
    lsale_t *ls = lsale(l, s);
    const sk_holders_t *h = ls->holders;
    int64_t window = window_of(l, s);
    touch(l, s); /* the cursor moves */
    while (ls->cursor < h->n_orders) {
        const sk_holder_order_t *o = sk_holders_order_at(h, ls->cursor);
        if (o->state == SK_ORDER_RESERVED) {
            if (o->created_at + window >= now)
                break; /* due later: so is every reservation after it */
            transition(l, s, ls->cursor, SK_EV_EXPIRE, now, NULL, 0, NULL);
        }
        ls->cursor++;
    }
    heap_fix(l, s);
}

/* Everything due (pay_by < now) in every sale, before any op of the batch. */
static void expire_due(ledger_t *l, int64_t now)
{
    while (l->n_heap > 0 && l->heap[0].key < now) {
        sk_sale_t *s = sk_engine_sale_by_index(l->e, l->heap[0].sale);
        lsale_t *ls = lsale(l, s);
        if (ls->uncertain) {
            heap_remove(l, ls); /* put back once it is settled */
            continue;
        }
        expire_sale(l, s, now);
    }
}

/* The next deadline as a poll timeout in ms from now (-1: none). */
static int64_t queue_timeout(ledger_t *l, int64_t now);

/* The last batch held back expiries for a payment on its way (held_by_payment). */
static bool expiry_held(const ledger_t *l)
{
    return l->held_from != INT64_MAX;
}

static int next_timeout(ledger_t *l, int64_t now)
{
    if (expiry_held(l))
        return 1; /* its payment's push wakes us, or we look again in 1 ms: never spin */
    int64_t q = queue_timeout(l, now);
    if (l->n_heap == 0)
        return q < 0 ? -1 : (int)SK_MIN(q, (int64_t)3600 * 1000);
    int64_t due = l->heap[0].key + 1; /* a reservation expires once now > pay_by */
    if (due <= now)
        return 0;
    int64_t t = SK_MIN(due - now, (int64_t)3600 * 1000);
    return (int)(q >= 0 && q < t ? q : t);
}

/* ---- waiting rooms ------------------------------------------------------------------------- */

static sk_queue_rules_t queue_rules(const lsale_t *ls)
{
    return (sk_queue_rules_t){.mode = ls->p.queue,
                              .starts_at = ls->p.starts_at,
                              .rate = ls->p.admit_per_second,
                              .ttl_ms = ls->p.admission_ttl_ms};
}

/* The sale can sell now: nobody is admitted into a sale that would refuse them. */
static bool admitting(const lsale_t *ls, int64_t now)
{
    return !ls->closed && !ls->p.closed && !ls->p.paused && now >= ls->p.starts_at && now < ls->p.ends_at &&
           sk_counts_remaining(&ls->counts) > 0;
}

static sk_queue_t *queue_of(ledger_t *l, sk_sale_t *s)
{
    lsale_t *ls = lsale(l, s);
    if (!ls->queue) {
        uint64_t seed;
        /* Unpredictable: nobody may know the shuffle before the start. */
        if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
            seed = sk_mono_ns() ^ (uint64_t)sk_now_ms() << 17;
        ls->queue = sk_queue_new(seed);
        l->qsales[l->n_qsales++] = s->index;
    }
    return ls->queue;
}

typedef struct {
    ledger_t *l;
    sk_sale_t *s;
} qemit_t;

static void queue_emit(void *arg, const sk_queue_rec_t *r)
{
    qemit_t *q = arg;
    ledger_t *l = q->l;
    if (l->n_jqueue == l->cap_jqueue) {
        l->cap_jqueue = l->cap_jqueue ? l->cap_jqueue * 2 : 256;
        l->jqueue = sk_xrealloc(l->jqueue, l->cap_jqueue * sizeof(*l->jqueue));
    }
    jqueue_t *j = &l->jqueue[l->n_jqueue++];
    j->sale = q->s->index;
    j->rec = *r;
    j->user_off = l->qusers.len;
    if (r->user)
        sk_buf_append(&l->qusers, r->user, r->user_len);
    lsale(l, q->s)->queue_touched = true;
    if (r->kind == SK_QREC_JOIN)
        sk_engine_record_queue(l->e, 1, 0);
    else if (r->kind == SK_QREC_ADMIT)
        sk_engine_record_queue(l->e, 0, 1);
}

/* Every queue at the batch's clock: the start, then admissions. */
static void queue_tick(ledger_t *l, int64_t now)
{
    if (l->queue_broken)
        return;
    for (size_t i = 0; i < l->n_qsales; i++) {
        sk_sale_t *s = sk_engine_sale_by_index(l->e, l->qsales[i]);
        lsale_t *ls = lsale(l, s);
        if (ls->p.queue == SK_QUEUE_OFF || ls->uncertain)
            continue;
        sk_queue_rules_t r = queue_rules(ls);
        qemit_t q = {l, s};
        sk_queue_advance(ls->queue, &r, now, admitting(ls, now), queue_emit, &q);
    }
}

/* Milliseconds until some queue's next admission (-1: none). Admissions are made in
 * steps of at least QUEUE_STEP_MS, so a fast rate does not wake the thread every ms. */
#define QUEUE_STEP_MS 5
static int64_t queue_timeout(ledger_t *l, int64_t now)
{
    int64_t best = -1;
    if (l->queue_broken)
        return -1;
    for (size_t i = 0; i < l->n_qsales; i++) {
        sk_sale_t *s = sk_engine_sale_by_index(l->e, l->qsales[i]);
        lsale_t *ls = lsale(l, s);
        if (ls->p.queue == SK_QUEUE_OFF || ls->uncertain)
            continue;
        sk_queue_rules_t r = queue_rules(ls);
        bool adm = admitting(ls, now) || now < ls->p.starts_at;
        int64_t due = sk_queue_next_due(ls->queue, &r, now, adm);
        if (due > 0 && due < QUEUE_STEP_MS)
            due = QUEUE_STEP_MS;
        if (due >= 0 && (best < 0 || due < best))
            best = due;
    }
    return best;
}

static void decide_queue(ledger_t *l, sk_op_t *op, int64_t now)
{
    sk_sale_t *s = op->sale;
    lsale_t *ls = lsale(l, s);
    if (ls->p.queue == SK_QUEUE_OFF) {
        op->status = -EINVAL;
        return;
    }
    if (l->queue_broken || ls->uncertain) {
        op->status = -EIO;
        return;
    }
    sk_queue_rules_t r = queue_rules(ls);
    sk_queue_t *q = queue_of(l, s);
    qemit_t e = {l, s};
    /* A queue made by this op (the mode set by a PATCH) starts and admits like any. */
    sk_queue_advance(q, &r, now, admitting(ls, now), queue_emit, &e);
    op->status = sk_queue_ask(q, &r, op->user_id, op->user_len, now, op->join, &op->place, queue_emit, &e);
    op->now_ms = now;
}

/* Writes the batch's queue changes; then the queues' new lengths and heads are
 * published. On failure every queue op of the batch answers 503. */
static void queue_commit(ledger_t *l, sk_op_t **ops, size_t n)
{
    if (l->n_jqueue) {
        if (l->cap_jqrows < l->n_jqueue) {
            l->cap_jqrows = l->n_jqueue * 2;
            l->jqrows = sk_xrealloc(l->jqrows, l->cap_jqrows * sizeof(*l->jqrows));
        }
        for (size_t i = 0; i < l->n_jqueue; i++) {
            jqueue_t *j = &l->jqueue[i];
            l->jqrows[i].sale_id = sk_engine_sale_by_index(l->e, j->sale)->id;
            l->jqrows[i].rec = j->rec;
            if (j->rec.user)
                l->jqrows[i].rec.user = l->qusers.data + j->user_off;
        }
        if (sk_journal_put_queue(l->journal, l->jqrows, l->n_jqueue) < 0) {
            sk_error("journal: the waiting rooms could not be stored; they answer 503 until a restart");
            l->queue_broken = true;
            for (size_t i = 0; i < n; i++)
                if (ops[i]->kind == SK_OP_QUEUE)
                    ops[i]->status = -EIO;
        }
    }
    for (size_t i = 0; i < l->n_qsales; i++) {
        sk_sale_t *s = sk_engine_sale_by_index(l->e, l->qsales[i]);
        lsale_t *ls = lsale(l, s);
        if (ls->queue_touched && !l->queue_broken) {
            pub_t *u = stage_pub(l, s);
            u->has_queue = true;
            u->q_len = sk_queue_len(ls->queue);
            u->q_head = sk_queue_head(ls->queue);
        }
        ls->queue_touched = false;
    }
    l->n_jqueue = 0;
    l->qusers.len = 0;
}

/* ---- decisions ----------------------------------------------------------------------------- */

/* A sale whose end the ledger's clock has passed is closed for good: from this batch on
 * it decides no new order, whatever clock reading a purchase carries (a worker may have
 * read its clock just before the end). Payments of earlier reservations go on. */
static void close_if_ended(ledger_t *l, sk_sale_t *s, int64_t now)
{
    lsale_t *ls = lsale(l, s);
    if (!ls->closed && now >= ls->p.ends_at)
        ls->closed = true;
}

/* The time a sale's next order or control is made at: the batch's clock, or, when the
 * wall clock was stepped back, the time of the sale's last order or control. A sale's
 * orders are its deadline FIFO (expire_sale), and its trail and orders read as one
 * history: an audit places each order by its time between the pauses, resumes and the
 * close (audit/trail.c), so no order may seem made after a control decided after it. */
static int64_t sale_clock(const lsale_t *ls, int64_t now)
{
    const sk_holders_t *h = ls->holders;
    if (h->n_orders)
        now = SK_MAX(now, sk_holders_order_at(h, h->n_orders - 1)->created_at);
    if (ls->n_trail)
        now = SK_MAX(now, ls->trail[ls->n_trail - 1].at);
    return now;
}

/* `now` is the batch's time: every order of a batch carries it (or sale_clock's), in
 * memory and in the journal (which stores it once per sale per batch). */
static void decide_buy(ledger_t *l, sk_op_t *op, int64_t now)
{
    sk_sale_t *s = op->sale;
    lsale_t *ls = lsale(l, s);
    sk_holders_t *h = ls->holders;
    const sk_sale_params_t *p = &ls->p;
    op->remaining = sk_counts_remaining(&ls->counts);
    if (ls->uncertain) {
        /* Any answer could depend on orders that may not exist: nothing is decided. */
        op->result = SK_BUY_UNAVAILABLE;
        op->remaining = sk_sale_remaining(s);
        return;
    }
    uint32_t q = op->quantity ? op->quantity : 1;
    /* The order of the checks is the worker's (sk_engine_gate): a holder's replay first,
     * whatever the clock says, then the rules (sk_buy_rules). */
    uint64_t hash = op->scratch;
    uint32_t slot = sk_holders_probe(h, hash, op->user_id, op->user_len);
    bool present = sk_holders_present(h, slot);
    uint32_t count = present ? sk_holders_user_at(h, slot)->count : 0;
    if (count > 0) {
        uint32_t k = sk_holders_find_request(h, slot, op->request_id, op->request_len, NULL);
        if (k != NONE) {
            sk_holders_order(h, k, p->payment_window_ms, &op->order);
            op->result = SK_BUY_DUPLICATE;
            return;
        }
    }
    if (op->unadmitted) {
        op->result = SK_BUY_NOT_ADMITTED;
        return;
    }
    int64_t units = present ? sk_holders_user_at(h, slot)->units : 0;
    sk_buy_result_t r = sk_buy_rules(p, op->now_ms, q, units, op->remaining);
    if (ls->closed && r != SK_BUY_NOT_STARTED)
        r = SK_BUY_ENDED;
    if (r != SK_BUY_CONFIRMED) {
        op->result = r;
        if ((r == SK_BUY_LIMIT_REACHED || r == SK_BUY_SOLD_OUT) && units > 0) {
            sk_holders_order(h, sk_holders_user_at(h, slot)->first, p->payment_window_ms, &op->order);
            op->held = (uint32_t)units;
        }
        return;
    }
    touch(l, s);
    if (!present) {
        slot = sk_holders_insert(h, hash, op->user_id, op->user_len);
        /* Before the commit that publishes counts with this order (engine/userset.h). */
        sk_userset_insert(ls->users, hash);
    }
    /* created_at never goes back, even when the wall clock is stepped back (the order
     * then gets a later pay_by than the clock would give): sale_clock. */
    int64_t at = sale_clock(ls, now);
    sk_order_state_t st = sk_order_initial(p->payment_window_ms);
    uint32_t idx = sk_holders_add_order(h, slot, op->request_id, op->request_len, at, q, st);
    if (st == SK_ORDER_RESERVED)
        ls->counts.held += q;
    else
        ls->counts.sold += q;
    ls->entered[st]++;
    sk_holders_order(h, idx, p->payment_window_ms, &op->order);
    op->result = st == SK_ORDER_RESERVED ? SK_BUY_RESERVED : SK_BUY_CONFIRMED;
    op->remaining = sk_counts_remaining(&ls->counts);
    if (st == SK_ORDER_RESERVED && ls->heap_pos < 0)
        heap_fix(l, s);
    l->jorders[l->n_jorders++] = (sk_journal_order_t){
        s->id, op->order.seq, op->user_id, op->request_id, at, op->order.pay_by, q, op->user_len, op->request_len};
}

/* When a payment was received: the clock read at its submit (op->now_ms), or the
 * batch's when that is earlier (or unset); never before its order was made (an order id
 * can be guessed: decide_transition). A payment received by its order's pay_by
 * confirms, however long it then waited: a batch expires nothing due at or after the
 * receipt of a payment still on its way to the ledger (held_by_payment: between its
 * stamp and its push, or queued behind a full batch), and a batch holding it expires
 * only what was due before the order it pays (spares_expiry, however long the batch
 * waited for a sync: tens of ms when the disk is slow); what fell due since expires in
 * the batch after (next_timeout is then 0). A payment of an order that expired before it
 * was received never confirms (I8). Each event is journaled with its own time. */
static int64_t received_at(const sk_op_t *op, int64_t now)
{
    return op->now_ms > 0 && op->now_ms < now ? op->now_ms : now;
}

/* The clock a batch holding payment op may expire by: the pay_by of the reservation it
 * pays in time (received_at <= pay_by < now), so that this one waits for its payment
 * (a reservation expires once the clock is past its pay_by) while every reservation due
 * before it still expires; now for any other payment (of an order that is not reserved,
 * not there, or of a sale in doubt), which holds nothing back. */
static int64_t spares_expiry(ledger_t *l, const sk_op_t *op, int64_t now)
{
    const lsale_t *ls = lsale(l, op->sale);
    const sk_holders_t *h = ls->holders;
    int64_t window = window_of(l, op->sale);
    if (ls->uncertain || window <= 0 || op->seq < 1 || op->seq > h->n_orders)
        return now;
    const sk_holder_order_t *o = sk_holders_order_at(h, (uint32_t)(op->seq - 1));
    int64_t pay_by = o->created_at + window;
    if (o->state != SK_ORDER_RESERVED || pay_by >= now || received_at(op, now) > pay_by)
        return now;
    return pay_by;
}

/* The clock a batch may expire by, given the payments still on their way: none of them
 * may find its reservation expired if it was received by its pay_by, so what fell due
 * at or after the earliest of them waits until it is taken (the batch after, as a
 * rule: its push wakes the ledger). The hold is not per order: a payment on its way
 * holds back every reservation due since it was received, in every sale, for as long
 * as it waits in the queue (a backlog of a flood: a fraction of a second). */
static int64_t held_by_payment(ledger_t *l, int64_t due, int64_t now)
{
    l->held_from = INT64_MAX;
    if (l->n_heap == 0 || l->heap[0].key >= now)
        return due; /* nothing is due, nothing to hold */
    int64_t oldest = sk_engine_oldest_payment(l->e, now, l->heap[0].key);
    if (oldest >= now)
        return due;
    /* Also when a payment of the batch lowered due already (spares_expiry): what this
     * one may pay in time must not be expired by a late transition either. */
    l->held_from = oldest; /* < now */
    l->recheck_ns = sk_mono_ns() + 1000000;
    return SK_MIN(due, oldest);
}

static void decide_transition(ledger_t *l, sk_op_t *op, int64_t now)
{
    sk_sale_t *s = op->sale;
    lsale_t *ls = lsale(l, s);
    sk_holders_t *h = ls->holders;
    if (ls->uncertain) {
        op->status = -EIO;
        return;
    }
    /* An order of this very batch is not there yet for a transition: a client learns an
     * order id only from its committed answer, and one that guessed it (ids are
     * predictable) hears 404 as just before. The journal's replay counts on it (journal.h:
     * a batch's transitions are written before its new orders). */
    uint64_t known = ls->touched == l->batch_no ? ls->snap.n_orders : h->n_orders;
    if (op->seq < 1 || op->seq > known) {
        op->status = -ENOENT;
        return;
    }
    uint32_t i = (uint32_t)(op->seq - 1);
    if (op->kind == SK_OP_CANCEL && !op->admin) {
        const sk_holder_t *u = sk_holders_user_at(h, sk_holders_order_at(h, i)->holder);
        if (u->user_len != op->user_len || memcmp(sk_holders_str(h, u->user_off), op->user_id, op->user_len) != 0) {
            op->status = -EPERM;
            return;
        }
    }
    sk_order_event_t ev = op->kind == SK_OP_PAY ? SK_EV_PAY : op->kind == SK_OP_CANCEL ? SK_EV_CANCEL : SK_EV_REFUND;
    const char *arg = ev == SK_EV_PAY ? op->payment_id : ev == SK_EV_CANCEL ? (op->admin ? "admin" : "buyer") : NULL;
    const sk_holder_order_t *o = sk_holders_order_at(h, i);
    int64_t at = SK_MAX(ev == SK_EV_PAY ? received_at(op, now) : now, SK_MAX(o->created_at, o->paid_at));
    int64_t window = window_of(l, s);
    if (ev != SK_EV_REFUND && o->state == SK_ORDER_RESERVED && window > 0 && at > o->created_at + window &&
        o->created_at + window >= l->held_from && !l->decide_all) {
        /* A late payment or cancel of a reservation whose expiry this batch held back for
         * a payment on its way (held_by_payment) that may still pay it in time: it waits
         * for that payment, and is decided first in the first batch that no longer holds
         * the reservation back (confirmed: duplicate or already_paid, not_reserved; else
         * as late as it is). Decided now it would expire or cancel the reservation and
         * that payment, received in time, would be refused. */
        if (l->n_waiting == l->cap_waiting) {
            l->cap_waiting = l->cap_waiting ? l->cap_waiting * 2 : 16;
            l->waiting = sk_xrealloc(l->waiting, l->cap_waiting * sizeof(*l->waiting));
        }
        l->waiting[l->n_waiting++] = op;
        op->status = -EINPROGRESS;
        return;
    }
    sk_order_step_t step = transition(l, s, i, ev, at, op->payment_id, op->payment_len, arg);
    op->status = 0;
    op->tr = step.result;
    l->n_transitions++;
    if (step.next == SK_ORDER_EXPIRED && ls->heap_pos < 0)
        heap_fix(l, s);
    sk_holders_order(h, i, window, &op->order);
}

/* The trail's entry with this request id, or NULL. Controls are rare (an operator's
 * clicks), so a walk from the newest entry is cheap. */
static const sk_trail_entry_t *find_control(const lsale_t *ls, const char *req)
{
    if (!req[0])
        return NULL;
    for (size_t k = ls->n_trail; k-- > 0;)
        if (strcmp(ls->trail[k].request_id, req) == 0)
            return &ls->trail[k];
    return NULL;
}

static void append_trail(lsale_t *ls, const sk_trail_entry_t *e)
{
    if (ls->n_trail == ls->cap_trail) {
        ls->cap_trail = ls->cap_trail ? ls->cap_trail * 2 : 8;
        ls->trail = sk_xrealloc(ls->trail, ls->cap_trail * sizeof(*ls->trail));
    }
    ls->trail[ls->n_trail++] = *e;
}

/* An operator's control, decided in order with the purchases of the batch
 * (engine/control.h has the rules). Accepted, it changes the ledger's own settings and
 * counts at once (the rest of the batch sees them), becomes the next entry of the
 * sale's trail and a row of the batch's transaction; the workers see it once that is
 * durable. A request id already in the trail answers its first entry. */
static void decide_control(ledger_t *l, sk_op_t *op, int64_t now)
{
    sk_sale_t *s = op->sale;
    lsale_t *ls = lsale(l, s);
    sk_trail_entry_t *e = op->entries;
    if (ls->uncertain || !e) {
        op->status = -EIO;
        return;
    }
    op->status = 0;
    l->n_transitions++;
    const sk_trail_entry_t *first = find_control(ls, e->request_id);
    if (first) {
        op->control_result = sk_control_same(&first->ctl, &e->ctl) ? SK_CR_DUPLICATE : SK_CR_REQUEST_REUSED;
        *e = *first;
        return;
    }
    /* Decided at the time it is recorded by (sale_clock), as the replay decides it. */
    int64_t at = sale_clock(ls, now);
    close_if_ended(l, s, at);
    sk_sale_params_t p = ls->p;
    sk_sale_counts_t c = ls->counts;
    uint64_t orders = ls->holders->n_orders;
    sk_control_result_t r = sk_control_apply(&e->ctl, at, orders > 0, ls->closed, &p, &c, &op->field);
    op->control_result = r;
    if (r != SK_CR_OK)
        return;
    touch_params(l, s);
    e->seq = ls->n_trail + 1;
    e->at = at;
    sk_sale_snapshot(&e->before, &ls->p, &ls->counts, orders, at);
    set_params(ls, &p);
    ls->counts = c;
    ls->params_dirty = true;
    if (ls->p.closed)
        ls->closed = true; /* no order is decided from here on, whatever the clock */
    sk_sale_snapshot(&e->after, &ls->p, &ls->counts, orders, at);
    append_trail(ls, e);
    if (l->n_jcontrols == l->cap_jcontrols) {
        l->cap_jcontrols = l->cap_jcontrols ? l->cap_jcontrols * 2 : 16;
        l->jcontrols = sk_xrealloc(l->jcontrols, l->cap_jcontrols * sizeof(*l->jcontrols));
    }
    l->jcontrols[l->n_jcontrols++] = (sk_journal_control_t){s->id, *e};
}

static void answer_log(ledger_t *l, sk_op_t *op)
{
    lsale_t *ls = lsale(l, op->sale);
    if (ls->uncertain) {
        op->status = -EIO; /* its last controls may not exist */
        return;
    }
    op->status = 0;
    op->n_entries = ls->n_trail;
    op->entries = ls->n_trail ? sk_xmalloc(ls->n_trail * sizeof(*op->entries)) : NULL;
    if (ls->n_trail)
        memcpy(op->entries, ls->trail, ls->n_trail * sizeof(*op->entries));
}

static void answer_get(ledger_t *l, sk_op_t *op)
{
    lsale_t *ls = lsale(l, op->sale);
    if (ls->uncertain) {
        op->status = -EIO;
        return;
    }
    if (op->seq < 1 || op->seq > ls->holders->n_orders) {
        op->status = -ENOENT;
        return;
    }
    op->status = 0;
    op->tr = SK_TR_OK;
    sk_holders_order(ls->holders, (uint32_t)(op->seq - 1), window_of(l, op->sale), &op->order);
}

static void answer_orders(ledger_t *l, sk_op_t *op)
{
    lsale_t *ls = lsale(l, op->sale);
    if (ls->uncertain) {
        op->status = -EIO; /* never a list that may hold orders that do not exist */
        return;
    }
    op->n_orders = sk_holders_user_orders(ls->holders, op->user_id, op->user_len, window_of(l, op->sale), &op->orders);
}

static void answer_list(ledger_t *l, sk_op_t *op)
{
    lsale_t *ls = lsale(l, op->sale);
    if (ls->uncertain) {
        op->status = -EIO;
        return;
    }
    const sk_holders_t *h = ls->holders;
    uint64_t total = h->n_orders;
    uint64_t from = op->list_after < total ? op->list_after : total;
    size_t n = (size_t)SK_MIN((uint64_t)op->list_limit, total - from);
    int64_t window = window_of(l, op->sale);
    op->orders = n ? sk_xmalloc(n * sizeof(sk_order_t)) : NULL;
    for (size_t i = 0; i < n; i++)
        sk_holders_order(h, (uint32_t)(from + i), window, &op->orders[i]);
    op->n_orders = n;
    op->list_more = from + n < total;
}

static void new_sale_state(ledger_t *l, sk_sale_t *s)
{
    lsale_t *ls = lsale(l, s);
    ls->holders = sk_holders_new();
    ls->users = sk_userset_new();
    set_params(ls, sk_sale_params(s));
    sk_sale_counts(s, &ls->counts);
    ls->heap_pos = -1;
    sk_engine_publish_users(s, ls->users); /* complete from the start: every order is decided here */
}

static void create_sale(ledger_t *l, sk_op_t *op)
{
    sk_engine_t *e = l->e;
    sk_sale_t *s = op->new_sale;
    if (sk_engine_lookup_sale(e, s->id, s->id_len)) {
        op->status = -EEXIST;
        return;
    }
    if (sk_engine_sale_count(e) >= SK_MAX_SALES) {
        op->status = -ENOSPC;
        return;
    }
    const sk_sale_params_t *p = sk_sale_params(s);
    sk_sale_counts_t c;
    sk_sale_counts(s, &c);
    sk_journal_sale_t js = {s->id,
                            p->name,
                            c.stock,
                            p->starts_at,
                            p->ends_at,
                            p->per_user_limit,
                            s->created_at,
                            p->max_quantity,
                            p->payment_window_ms,
                            p->queue,
                            p->queue_opens_at,
                            p->admit_per_second,
                            p->admission_ttl_ms,
                            p->pow_bits};
    int rc = sk_journal_put_sale(l->journal, &js);
    if (rc == SK_JOURNAL_IN_DOUBT) {
        /* Stored or not, nobody can tell now: a retry would hear "exists" for a sale
         * the ledger never made, or make one the file may hold already. As after a
         * failed sync, nothing is confirmed from here on; a restart reads the file. */
        sk_error("journal: whether sale '%s' was stored is not known: decisions are answered 503 until a restart",
                 s->id);
        sk_engine_note_store_unsure(e);
        pthread_mutex_lock(&l->sync_mu);
        l->sync_broken = true;
        pthread_mutex_unlock(&l->sync_mu);
        l->break_writes = true;
        op->status = -EIO;
        return;
    }
    if (rc < 0) {
        op->status = rc;
        return;
    }
    /* The ledger knows it from now on (a second create of the id is refused, what
     * follows is decided against it); the workers see it once its write is durable
     * (release), and never if the sync fails. */
    sk_engine_register_hidden_sale(e, s);
    new_sale_state(l, s);
    op->new_sale = NULL;
    op->sale = s;
    op->status = 0;
}

/* ---- a commit that reported failure -------------------------------------------------------
 * It may have reached the disk all the same (an fsync error after the write, a lost
 * reply): the journal, not the report, says which. One batch is one transaction, so
 * asking whether any of its lsns is stored answers for all of it. Stored, everything it
 * decided stands (its buyers heard 503 and find their orders by asking or retrying, I6);
 * not stored, everything it changed is put back and its seqs are used again. While the
 * journal cannot be asked, the sales it touched decide nothing, so a seq is never handed
 * out twice and no answer depends on a change that may not exist. */

/* Puts sale s back as it was before the batch: its transitions (the undo records, newest
 * first), its new orders (popped) and its counts and expiry cursor. */
static void undo_sale(ledger_t *l, sk_sale_t *s, const undo_t *undo, size_t n)
{
    lsale_t *ls = lsale(l, s);
    for (size_t k = n; k-- > 0;)
        if (undo[k].sale == s->index)
            sk_holders_revert(ls->holders, undo[k].order, (sk_order_state_t)undo[k].from);
    while (ls->holders->n_orders > ls->snap.n_orders)
        sk_holders_pop_order(ls->holders);
    ls->counts = ls->snap.counts;
    ls->cursor = ls->snap.cursor;
    ls->n_trail = ls->snap.n_trail; /* its request ids may be decided anew */
    ls->closed = ls->snap.closed;
    if (ls->snap.has_params) {
        set_params(ls, &ls->snap.p);
        ls->params_dirty = false; /* the published settings never changed */
    }
}

/* After the batch that changed them is durable: the workers see the new settings and
 * counts. */
static void publish(ledger_t *l, sk_sale_t *s)
{
    lsale_t *ls = lsale(l, s);
    if (ls->params_dirty) {
        sk_engine_set_params(s, &ls->p);
        ls->params_dirty = false;
    }
    sk_engine_publish_counts(s, &ls->counts);
}

/* ---- the syncer, and the batches waiting for it ------------------------------------------ */

static void *syncer_main(void *arg)
{
    ledger_t *l = arg;
    pthread_setname_np(pthread_self(), "sk-sync");
    pthread_mutex_lock(&l->sync_mu);
    for (;;) {
        while (!l->sync_stop && l->sync_want == l->sync_done)
            pthread_cond_wait(&l->sync_cv, &l->sync_mu);
        if (l->sync_want == l->sync_done)
            break; /* stopped, and nothing left to sync */
        uint64_t want = l->sync_want;
        bool broken = l->sync_broken;
        pthread_mutex_unlock(&l->sync_mu);
        int rc = broken ? -EIO : sk_journal_sync(l->journal);
        if (rc < 0 && !broken)
            sk_error("journal: the WAL could not be synced (%s): nothing written from now on is confirmed, "
                     "decisions are answered 503 until a restart",
                     strerror(-rc));
        if (rc < 0)
            sk_engine_note_store_unsure(l->e);
        pthread_mutex_lock(&l->sync_mu);
        if (rc == 0)
            l->sync_ok = want;
        else
            l->sync_broken = true;
        l->sync_done = want;
        bool waits = l->ledger_waits;
        pthread_mutex_unlock(&l->sync_mu);
        /* Woken after the unlock: a waiter woken while the mutex is held runs (on a
         * shared core) only to block on it again, two switches for nothing. A ledger
         * waiting on done_cv needs no eventfd write too: it would find the count left
         * over at its next sleep, and poll and read once more for nothing. */
        pthread_cond_broadcast(&l->done_cv);
        if (!waits)
            ledger_wake(&l->base);
        pthread_mutex_lock(&l->sync_mu);
    }
    pthread_mutex_unlock(&l->sync_mu);
    return NULL;
}

/* The batch's entry for sale s in what it publishes once durable. */
static pub_t *stage_pub(ledger_t *l, sk_sale_t *s)
{
    lsale_t *ls = lsale(l, s);
    pending_t *c = &l->cur;
    if (ls->pub_batch == l->batch_no && ls->pub_at < c->n_pubs && c->pubs[ls->pub_at].sale == s)
        return &c->pubs[ls->pub_at];
    if (c->n_pubs == c->cap_pubs) {
        c->cap_pubs = c->cap_pubs ? c->cap_pubs * 2 : 8;
        c->pubs = sk_xrealloc(c->pubs, c->cap_pubs * sizeof(*c->pubs));
    }
    ls->pub_batch = l->batch_no;
    ls->pub_at = (uint32_t)c->n_pubs;
    pub_t *u = &c->pubs[c->n_pubs++];
    *u = (pub_t){.sale = s};
    return u;
}

/* publish(), once the batch is durable: the counts and settings as the batch left them. */
static void stage_publish(ledger_t *l, sk_sale_t *s)
{
    lsale_t *ls = lsale(l, s);
    pub_t *u = stage_pub(l, s);
    u->counts = ls->counts;
    u->has_counts = true;
    if (ls->params_dirty) {
        u->has_params = true;
        u->p = ls->p;
        memcpy(u->name, ls->name, sizeof(u->name));
        ls->params_dirty = false;
    }
}

static void stage_answer(ledger_t *l, sk_op_t *op)
{
    pending_t *c = &l->cur;
    if (c->n_ops == c->cap_ops) {
        c->cap_ops = c->cap_ops ? c->cap_ops * 2 : 64;
        c->ops = sk_xrealloc(c->ops, c->cap_ops * sizeof(*c->ops));
    }
    c->ops[c->n_ops++] = op;
}

static bool is_decision(const sk_op_t *op)
{
    return op->kind == SK_OP_BUY || op->kind == SK_OP_PAY || op->kind == SK_OP_CANCEL || op->kind == SK_OP_REFUND ||
           op->kind == SK_OP_CONTROL;
}

/* Publishes a waiting batch's changes and posts its answers: durable, or (a failed
 * sync) with every answer 503 and nothing published, since none of it may be confirmed
 * or shown: a read would list orders that may not exist (the orders of a 503 the
 * buyer is told to look up), a count would sell out units that may come back. Refusals
 * too: they were decided against that state ("exists" to the retry of a create that
 * heard 503 would say the first one took). */
static void release(ledger_t *l, pending_t *p, bool durable)
{
    sk_engine_t *e = l->e;
    if (p->t0)
        sk_engine_record_batch(e, p->n_decided, sk_mono_ns() - p->t0, durable);
    for (size_t i = 0; durable && i < p->n_pubs; i++) {
        pub_t *u = &p->pubs[i];
        if (u->has_params) {
            u->p.name = u->name; /* the array may have moved since it was staged */
            sk_engine_set_params(u->sale, &u->p);
        }
        if (u->has_counts)
            sk_engine_publish_counts(u->sale, &u->counts);
        if (u->has_queue)
            sk_engine_publish_queue(u->sale, u->q_len, u->q_head);
    }
    for (size_t i = 0; i < p->n_ops; i++) {
        sk_op_t *op = p->ops[i];
        /* A sale made by this batch: shown before its 201 leaves, so that whoever hears
         * the 201 finds it. */
        if (durable && op->kind == SK_OP_CREATE_SALE && op->status == 0)
            sk_engine_show_sale(op->sale);
        if (!durable) {
            if (op->kind == SK_OP_BUY) {
                op->result = SK_BUY_UNAVAILABLE;
                op->remaining = sk_sale_remaining(op->sale);
            } else {
                op->status = -EIO;
            }
        }
        sk_engine_complete(e, op);
    }
    p->n_ops = p->n_pubs = 0;
}

/* Releases the waiting batches whose writes the syncer has handled, oldest first. */
static void release_synced(ledger_t *l)
{
    if (!l->n_pending)
        return;
    pthread_mutex_lock(&l->sync_mu);
    uint64_t done = l->sync_done, ok = l->sync_ok;
    pthread_mutex_unlock(&l->sync_mu);
    bool any = false;
    while (l->n_pending && l->pending[l->pending_head].need <= done) {
        pending_t *p = &l->pending[l->pending_head];
        release(l, p, p->need <= ok);
        l->pending_head = (l->pending_head + 1) % PENDING_MAX;
        l->n_pending--;
        any = true;
    }
    if (any)
        sk_engine_flush(l->e);
}

/* After a batch: numbers its writes, if it made any, and hands them to the syncer (or,
 * without one, they are durable already: the journal syncs each commit). The batch
 * then waits in the ring for the writes up to that number. */
static void pending_push(ledger_t *l)
{
    uint64_t commits = sk_journal_commits(l->journal);
    if (commits == l->commits_seen && !l->break_writes && !l->cur.n_ops && !l->cur.n_pubs) {
        release_synced(l); /* an empty batch (a look again while held) holds no slot */
        return;
    }
    if (commits != l->commits_seen || l->break_writes) {
        l->commits_seen = commits;
        l->break_writes = false;
        l->write_no++;
        pthread_mutex_lock(&l->sync_mu);
        l->sync_want = l->write_no;
        if (!l->syncer_running) {
            l->sync_done = l->write_no;
            if (!l->sync_broken)
                l->sync_ok = l->write_no;
        }
        pthread_mutex_unlock(&l->sync_mu);
        if (l->syncer_running)
            pthread_cond_signal(&l->sync_cv); /* after the unlock: see syncer_main */
    }
    pending_t *slot = &l->pending[(l->pending_head + l->n_pending) % PENDING_MAX];
    pending_t spare = *slot;
    *slot = l->cur;
    slot->need = l->write_no;
    l->n_pending++;
    l->cur = spare;
    l->cur.n_ops = l->cur.n_pubs = l->cur.n_decided = 0;
    l->cur.t0 = 0;
    release_synced(l);
}

/* Waits until every waiting batch is released (before a failure is settled, and at
 * the end): nothing published later may be older than what is published now. */
static bool wait_for_sync(ledger_t *l);
static void drain(ledger_t *l)
{
    if (l->n_pending)
        wait_for_sync(l);
}

/* Two writes not yet durable (one syncing, one waiting), or the ring is full: the
 * ledger takes nothing more until the syncer ends a sync. */
static bool pipeline_full(ledger_t *l)
{
    if (l->n_pending >= PENDING_MAX)
        return true;
    pthread_mutex_lock(&l->sync_mu);
    uint64_t done = l->sync_done;
    pthread_mutex_unlock(&l->sync_mu);
    return l->write_no >= done + 2;
}

/* A batch that is not full, taken while a write is being synced, waits for that sync
 * to end before it is decided (and then takes what arrived meanwhile): it is made
 * durable by the next sync either way, since the one in progress began before its
 * write, and waiting makes one write and one sync of what would have been two. Without
 * the wait the ledger wrote each small batch as soon as it came, every sync covered
 * one of them, and each purchase paid for more commits and syncs (through HTTP on one
 * core, wrk -c100: batches of 24 instead of 39, ~4 % fewer confirmed purchases a second
 * and ~8 % more server CPU each). The price: the grown batch is decided and written
 * after the sync, while the disk waits (a small batch's ~0.1 ms), not during it. A full
 * batch (a flood) goes on at once: it cannot grow, and deciding and writing it while
 * the disk syncs the one before is what keeps both busy. A payment waits like anything
 * else: it is judged by when it was received (received_at). Releases what the syncer has
 * handled, and returns whether it waited (drain waits the same way). */
static bool wait_for_sync(ledger_t *l)
{
    pthread_mutex_lock(&l->sync_mu);
    bool busy = l->sync_done < l->write_no;
    l->ledger_waits = true;
    while (l->sync_done < l->write_no)
        pthread_cond_wait(&l->done_cv, &l->sync_mu);
    l->ledger_waits = false;
    pthread_mutex_unlock(&l->sync_mu);
    release_synced(l);
    return busy;
}

/* Checks what the journal holds for the sale against what the ledger expects (its
 * orders up to `want`); a file changed behind the ledger's back leaves the sale broken. */
static bool check_orders(ledger_t *l, sk_sale_t *s, uint64_t want)
{
    lsale_t *ls = lsale(l, s);
    uint64_t last;
    if (sk_journal_last_seq(l->journal, s->id, &last) < 0)
        return false;
    if (last == want)
        return true;
    sk_error("journal: sale '%s' holds orders up to %llu, the ledger expected %llu; it is answered 503 until a "
             "restart",
             s->id, (unsigned long long)last, (unsigned long long)want);
    ls->broken = true;
    return false;
}

/* Settles one sale of a failed batch. Returns false while it stays uncertain. */
static bool settle(ledger_t *l, sk_sale_t *s, uint64_t first, uint64_t last, const undo_t *undo, size_t n_undo)
{
    lsale_t *ls = lsale(l, s);
    bool found;
    if (ls->broken || sk_journal_has_lsn(l->journal, first, last, &found) < 0)
        return false;
    bool had_orders = ls->holders->n_orders > ls->snap.n_orders;
    if (had_orders && !check_orders(l, s, found ? ls->holders->n_orders : ls->snap.n_orders))
        return false;
    if (found)
        sk_warn("journal: a commit reported failure but stored the batch (sale '%s'); it stands", s->id);
    else
        undo_sale(l, s, undo, n_undo);
    settle_entered(s, ls, found);
    heap_fix(l, s);
    return true;
}

static void mark_uncertain(ledger_t *l, sk_sale_t *s, uint64_t first, uint64_t last)
{
    lsale_t *ls = lsale(l, s);
    ls->uncertain = true;
    ls->unc_first = first;
    ls->unc_last = last;
    size_t n = 0;
    for (size_t k = 0; k < l->n_undo; k++)
        n += l->undo[k].sale == s->index;
    ls->unc_undo = n ? sk_xmalloc(n * sizeof(*ls->unc_undo)) : NULL;
    ls->n_unc_undo = 0;
    for (size_t k = 0; k < l->n_undo; k++)
        if (l->undo[k].sale == s->index)
            ls->unc_undo[ls->n_unc_undo++] = l->undo[k];
    l->uncertain[l->n_uncertain++] = s;
    heap_remove(l, ls);
}

/* Before a batch: asks the journal again about sales whose last commit is in doubt. */
static void settle_uncertain(ledger_t *l)
{
    drain(l);
    size_t keep = 0;
    for (size_t i = 0; i < l->n_uncertain; i++) {
        sk_sale_t *s = l->uncertain[i];
        lsale_t *ls = lsale(l, s);
        if (settle(l, s, ls->unc_first, ls->unc_last, ls->unc_undo, ls->n_unc_undo)) {
            ls->uncertain = false;
            free(ls->unc_undo);
            ls->unc_undo = NULL;
            ls->n_unc_undo = 0;
            stage_publish(l, s);
        } else {
            l->uncertain[keep++] = s;
        }
    }
    l->n_uncertain = keep;
}

static void commit_failed(ledger_t *l, uint64_t first, uint64_t last)
{
    drain(l);
    for (size_t i = 0; i < l->n_touched; i++) {
        sk_sale_t *s = l->touched[i];
        if (!settle(l, s, first, last, l->undo, l->n_undo))
            mark_uncertain(l, s, first, last);
        else
            stage_publish(l, s); /* stored: its counts wait for their sync like any */
    }
}

/* ---- one batch ----------------------------------------------------------------------------- */

static void process_batch(ledger_t *l, sk_op_t **ops, size_t n)
{
    sk_engine_t *e = l->e;
    if (l->n_waiting) { /* they came first: decided (or kept waiting) first */
        if (l->cap_work < l->n_waiting + n) {
            l->cap_work = l->n_waiting + n;
            l->work = sk_xrealloc(l->work, l->cap_work * sizeof(*l->work));
        }
        memcpy(l->work, l->waiting, l->n_waiting * sizeof(*l->work));
        if (n)
            memcpy(l->work + l->n_waiting, ops, n * sizeof(*l->work));
        n += l->n_waiting;
        ops = l->work;
        l->n_waiting = 0;
    }
    int64_t now = ledger_now(l);
    l->batch_no++;
    l->n_jorders = l->n_jevents = l->n_jcontrols = l->n_undo = l->n_touched = l->n_transitions = 0;
    if (l->n_uncertain)
        settle_uncertain(l);
    int64_t due = now; /* expire what was due by then (spares_expiry, held_by_payment) */
    size_t n_in_time = 0;
    for (size_t i = 0; i < n; i++) {
        sk_op_t *op = ops[i];
        if (op->kind == SK_OP_BUY) {
            close_if_ended(l, op->sale, now);
            op->scratch = op->user_hash ? op->user_hash : sk_user_hash(op->user_id, op->user_len);
            sk_holders_prefetch(lsale(l, op->sale)->holders, op->scratch);
            sk_userset_prefetch(lsale(l, op->sale)->users, op->scratch);
        } else if (op->kind == SK_OP_PAY) {
            int64_t d = spares_expiry(l, op, now);
            op->scratch = d < now; /* it pays a reservation in time */
            n_in_time += op->scratch;
            due = SK_MIN(due, d);
        }
    }
    due = held_by_payment(l, due, now);
    expire_due(l, due);
    queue_tick(l, now);
    /* Payments in time first: a late payment of the same reservation (another payment
     * id) decided before one would expire it. The batch's ops came together: this order
     * among them is as good as any, and the journal's is by kind anyway. */
    for (size_t i = 0; n_in_time && i < n; i++)
        if (ops[i]->kind == SK_OP_PAY && ops[i]->scratch)
            decide_transition(l, ops[i], now);
    size_t n_buys = 0;
    for (size_t i = 0; i < n; i++) {
        sk_op_t *op = ops[i];
        if (op->kind == SK_OP_BUY) {
            decide_buy(l, op, now);
            n_buys++;
        } else if (op->kind == SK_OP_CONTROL) {
            decide_control(l, op, now);
        } else if (op->kind == SK_OP_QUEUE) {
            decide_queue(l, op, now);
        } else if (is_decision(op) && !(op->kind == SK_OP_PAY && op->scratch)) {
            decide_transition(l, op, now);
        }
    }
    if (l->n_jorders || l->n_jevents || l->n_jcontrols) {
        uint64_t first, last, t0 = sk_mono_ns();
        int rc = sk_journal_put_batch(l->journal, l->jorders, l->n_jorders, l->jevents, l->n_jevents, l->jcontrols,
                                      l->n_jcontrols, &first, &last);
        if (rc == 0) {
            /* Its metrics, counts and answers once it is durable: pending_push. */
            l->cur.t0 = t0;
            l->cur.n_decided = n_buys + l->n_transitions;
            for (size_t i = 0; i < l->n_touched; i++) {
                sk_sale_t *s = l->touched[i];
                settle_entered(s, lsale(l, s), true);
                stage_publish(l, s);
            }
        } else {
            sk_engine_record_batch(e, n_buys + l->n_transitions, sk_mono_ns() - t0, false);
            /* Nothing of this batch may be confirmed: every decision of it is answered
             * 503, since any answer may have depended on its changes. */
            commit_failed(l, first, last);
            for (size_t i = 0; i < n; i++) {
                sk_op_t *op = ops[i];
                if (op->kind == SK_OP_BUY) {
                    op->result = SK_BUY_UNAVAILABLE;
                    op->remaining = sk_sale_remaining(op->sale);
                } else if (is_decision(op) && op->status == 0) {
                    op->status = -EIO;
                }
            }
        }
    } else if (n_buys + l->n_transitions) {
        sk_engine_record_batch(e, n_buys + l->n_transitions, 0, true);
    }
    queue_commit(l, ops, n);
    for (size_t i = 0; i < n; i++) {
        sk_op_t *op = ops[i];
        switch (op->kind) {
        case SK_OP_BUY:
            sk_engine_record_decided(e, op->result);
            break;
        case SK_OP_ORDERS:
            answer_orders(l, op);
            break;
        case SK_OP_LIST:
            answer_list(l, op);
            break;
        case SK_OP_GET_ORDER:
            answer_get(l, op);
            break;
        case SK_OP_CREATE_SALE:
            create_sale(l, op);
            break;
        case SK_OP_FIND_SALE:
            op->status = -ENOENT; /* every sale of this store is registered at load */
            break;
        case SK_OP_LOG:
            answer_log(l, op);
            break;
        case SK_OP_PAY:
        case SK_OP_CANCEL:
            if (op->status == -EINPROGRESS)
                continue; /* waiting (decide_transition): answered by a later batch */
            break;
        case SK_OP_REFUND:
        case SK_OP_CONTROL:
        case SK_OP_QUEUE:
            break;
        }
        stage_answer(l, op);
    }
    pending_push(l);
}

/* Sleeps on the ledger's eventfd until a push or a sync's end wakes it, or timeout_ms
 * (-1: no timeout) passes. */
static void sleep_until_woken(ledger_t *l, int timeout_ms)
{
    struct pollfd pfd = {.fd = l->efd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) > 0) {
        uint64_t v;
        ssize_t r = read(l->efd, &v, sizeof(v));
        (void)r;
    }
}

static void *ledger_main(void *arg)
{
    ledger_t *l = arg;
    for (;;) {
        /* Clear the flag before looking: a push (or a sync's end) after this point
         * wakes us again. */
        atomic_store(&l->wake_pending, 0);
        release_synced(l);
        if (pipeline_full(l)) {
            sleep_until_woken(l, -1);
            continue;
        }
        size_t n = sk_engine_take(l->e, l->batch, l->max_batch);
        if (n > 0 && n < l->max_batch && wait_for_sync(l))
            n += sk_engine_take(l->e, l->batch + n, l->max_batch - n);
        int64_t now = ledger_now(l);
        /* Sales whose last commit is in doubt are asked about again now and then even
         * while nothing arrives: their reservations wait for it to expire. */
        bool settle = l->n_uncertain && now - l->last_settle_ms >= SETTLE_RETRY_MS;
        bool recheck = expiry_held(l) && sk_mono_ns() >= l->recheck_ns;
        if (n > 0 || next_timeout(l, now) == 0 || settle || recheck) {
            if (settle)
                l->last_settle_ms = now;
            process_batch(l, l->batch, n);
            continue;
        }
        if (sk_engine_stopping(l->e)) {
            if (l->n_waiting) { /* stopping: nothing waits any more */
                l->decide_all = true;
                process_batch(l, NULL, 0);
                continue;
            }
            drain(l);
            break;
        }
        /* Sleep until work arrives or the next reservation is due. */
        int timeout = next_timeout(l, now);
        if (l->n_uncertain && (timeout < 0 || timeout > SETTLE_RETRY_MS))
            timeout = SETTLE_RETRY_MS;
        sleep_until_woken(l, timeout);
    }
    return NULL;
}

/* ---- start-up: rebuild the ledger from the journal ----------------------------------------- */

static int load_sale(void *arg, const sk_journal_sale_t *js)
{
    ledger_t *l = arg;
    sk_engine_t *e = l->e;
    size_t len = strlen(js->id);
    if (!sk_valid_sale_id(js->id, len) || sk_engine_lookup_sale(e, js->id, len) ||
        sk_engine_sale_count(e) >= SK_MAX_SALES || js->stock < 0 || js->max_quantity < 1 ||
        js->max_quantity > SK_LIMIT_MAX || js->payment_window_ms < 0 || js->per_user_limit < 1 ||
        js->per_user_limit > SK_LIMIT_MAX || js->queue < SK_QUEUE_OFF || js->queue > SK_QUEUE_RANDOM ||
        (js->queue != SK_QUEUE_OFF &&
         (js->admit_per_second < 1 || js->admit_per_second > SK_ADMIT_RATE_MAX ||
          js->admission_ttl_ms < SK_ADMISSION_TTL_MIN || js->admission_ttl_ms > SK_ADMISSION_TTL_MAX ||
          js->pow_bits < 0 || js->pow_bits > SK_SALE_POW_BITS_MAX)))
        return -EINVAL;
    sk_sale_params_t p = {.name = js->name,
                          .starts_at = js->starts_at,
                          .ends_at = js->ends_at,
                          .per_user_limit = (int32_t)js->per_user_limit,
                          .max_quantity = (int32_t)js->max_quantity,
                          .payment_window_ms = js->payment_window_ms,
                          .queue = (uint8_t)js->queue,
                          .queue_opens_at = js->queue_opens_at,
                          .admit_per_second = (int32_t)js->admit_per_second,
                          .admission_ttl_ms = js->admission_ttl_ms,
                          .pow_bits = (uint8_t)js->pow_bits};
    sk_sale_t *s = sk_sale_new(js->id, len, &p, js->stock, js->created_at);
    sk_engine_register_sale(e, s);
    new_sale_state(l, s);
    return 0;
}

static int replay_early(ledger_t *l, sk_sale_t *s, const sk_journal_order_t *o);

static int load_order(void *arg, const sk_journal_order_t *o)
{
    ledger_t *l = arg;
    sk_sale_t *s = sk_engine_lookup_sale(l->e, o->sale_id, strlen(o->sale_id));
    size_t ul = strlen(o->user_id), rl = strlen(o->request_id);
    if (!s)
        return -EINVAL;
    lsale_t *ls = lsale(l, s);
    int64_t window = window_of(l, s);
    bool reserved = o->pay_by != 0;
    if (o->seq != (uint64_t)ls->holders->n_orders + 1 || o->quantity < 1 ||
        (int64_t)o->quantity > sk_counts_remaining(&ls->counts) || !sk_valid_user_id(o->user_id, ul) ||
        !sk_valid_request_id(o->request_id, rl) || reserved != (window > 0) ||
        (reserved && o->pay_by != o->created_at + window))
        return -EINVAL;
    uint32_t slot = sk_holders_upsert(ls->holders, o->user_id, ul);
    sk_userset_insert(ls->users, sk_user_hash(o->user_id, ul));
    sk_holders_add_order(ls->holders, slot, o->request_id, rl, o->created_at, o->quantity,
                         reserved ? SK_ORDER_RESERVED : SK_ORDER_CONFIRMED);
    if (reserved)
        ls->counts.held += o->quantity;
    else
        ls->counts.sold += o->quantity;
    sk_engine_record_entered(s, reserved ? SK_ORDER_RESERVED : SK_ORDER_CONFIRMED, 1);
    return ls->early ? replay_early(l, s, o) : 0;
}

/* A transition stored ahead of its order's row. A ledger before the same-batch check of
 * decide_transition decided a transition of an order made in the same batch (a client
 * that guessed the id), and its journal wrote the transition first, as it writes every
 * batch's; such a store replays the transition right after its order. */
struct early {
    uint32_t sale; /* its index */
    uint64_t seq;
    uint64_t row; /* the lsn of the sale's first order row after it (0: none yet) */
    sk_order_event_t kind;
    int64_t at;
    char pay[SK_PAYMENT_ID_MAX + 1]; /* a payment's id */
};

static int replay_event(ledger_t *l, sk_sale_t *s, uint64_t seq, sk_order_event_t kind, int64_t at, const char *arg)
{
    lsale_t *ls = lsale(l, s);
    sk_holders_t *h = ls->holders;
    uint32_t i = (uint32_t)(seq - 1);
    const sk_holder_order_t *o = sk_holders_order_at(h, i);
    int64_t window = window_of(l, s);
    int64_t pay_by = window > 0 ? o->created_at + window : 0;
    const char *pay = kind == SK_EV_PAY ? arg : NULL;
    size_t pay_len = pay ? strlen(pay) : 0;
    if (kind == SK_EV_PAY && !sk_valid_payment_id(pay, pay_len))
        return -EINVAL;
    /* Replayed by the rules that made it: anything but a change means the journal does
     * not describe this ledger. */
    sk_order_step_t step = sk_order_step((sk_order_state_t)o->state, kind, at, pay_by, false);
    if (step.result != SK_TR_OK)
        return -EINVAL;
    int64_t q = o->quantity;
    ls->counts.held += step.held * q;
    ls->counts.sold += step.sold * q;
    sk_holders_set_state(h, i, step.next, at, pay, pay_len);
    sk_engine_record_entered(s, step.next, 1);
    return 0;
}

static int load_event(void *arg, const sk_journal_event_t *ev)
{
    ledger_t *l = arg;
    sk_sale_t *s = sk_engine_lookup_sale(l->e, ev->sale_id, strlen(ev->sale_id));
    if (!s || ev->seq < 1)
        return -EINVAL;
    lsale_t *ls = lsale(l, s);
    if (ev->seq <= ls->holders->n_orders)
        return replay_event(l, s, ev->seq, ev->kind, ev->at, ev->arg);
    /* Its order can only be in the sale's next order row, of at most a batch's orders. */
    size_t pay_len = ev->kind == SK_EV_PAY && ev->arg ? strlen(ev->arg) : 0;
    if (ev->seq - ls->holders->n_orders > SK_MAX(l->max_batch, 4096) || pay_len > SK_PAYMENT_ID_MAX)
        return -EINVAL; /* (a payment without its id is refused when it is replayed) */
    if (l->n_early == l->cap_early) {
        l->cap_early = l->cap_early ? l->cap_early * 2 : 16;
        l->early = sk_xrealloc(l->early, l->cap_early * sizeof(*l->early));
    }
    struct early *x = &l->early[l->n_early++];
    *x = (struct early){.sale = (uint32_t)s->index, .seq = ev->seq, .kind = ev->kind, .at = ev->at};
    memcpy(x->pay, pay_len ? ev->arg : "", pay_len + 1);
    ls->early++;
    return 0;
}

/* Order o of sale s is loaded: replays the transitions held back for it, in the order
 * the journal holds them. Each must find its order in the sale's first order row after
 * it (the same batch's), at or after the order's making; a row of the sale that passes
 * without it means the journal does not describe this ledger. */
static int replay_early(ledger_t *l, sk_sale_t *s, const sk_journal_order_t *o)
{
    lsale_t *ls = lsale(l, s);
    const sk_holder_order_t *made = sk_holders_order_at(ls->holders, (uint32_t)(o->seq - 1));
    size_t kept = 0;
    for (size_t k = 0; k < l->n_early; k++) {
        struct early *x = &l->early[k];
        if (x->sale == (uint32_t)s->index) {
            if (x->row == 0)
                x->row = o->lsn;
            if (x->row != o->lsn || (x->seq == o->seq && x->at < made->created_at))
                return -EINVAL;
            if (x->seq == o->seq) {
                int rc = replay_event(l, s, o->seq, x->kind, x->at, x->kind == SK_EV_PAY ? x->pay : NULL);
                if (rc < 0)
                    return rc;
                l->n_early_replayed++;
                ls->early--;
                continue;
            }
        }
        l->early[kept++] = *x; /* kept for a later order (a copy onto itself when none went) */
    }
    l->n_early = kept;
    return 0;
}

/* A control replayed by the rules that made it, at its own clock reading: it must be
 * accepted again and leave the sale with the settings and stock its entry says. (Held,
 * sold and the order count of `before` and `after` are as the ledger saw them when it
 * decided, which a replay that puts a batch's controls before its orders does not see
 * again.) */
static int load_control(void *arg, const sk_journal_control_t *jc)
{
    ledger_t *l = arg;
    sk_sale_t *s = sk_engine_lookup_sale(l->e, jc->sale_id, strlen(jc->sale_id));
    if (!s)
        return -EINVAL;
    lsale_t *ls = lsale(l, s);
    const sk_trail_entry_t *e = &jc->entry;
    if (e->seq != ls->n_trail + 1 || e->before.stock != ls->counts.stock || find_control(ls, e->request_id))
        return -EINVAL;
    sk_sale_params_t p = ls->p;
    sk_sale_counts_t c = ls->counts;
    const char *field;
    if (sk_control_apply(&e->ctl, e->at, ls->holders->n_orders > 0, false, &p, &c, &field) != SK_CR_OK)
        return -EINVAL;
    const sk_sale_snapshot_t *a = &e->after;
    if (a->stock != c.stock || a->paused != p.paused || a->closed != p.closed || a->starts_at != p.starts_at ||
        a->ends_at != p.ends_at || a->per_user_limit != p.per_user_limit || a->max_quantity != p.max_quantity ||
        a->payment_window_ms != p.payment_window_ms || strcmp(a->name, p.name) != 0)
        return -EINVAL;
    set_params(ls, &p);
    ls->counts = c;
    ls->params_dirty = true;
    append_trail(ls, e);
    return 0;
}

static int load_queue(void *arg, const sk_journal_queue_t *jq)
{
    ledger_t *l = arg;
    sk_sale_t *s = sk_engine_lookup_sale(l->e, jq->sale_id, strlen(jq->sale_id));
    if (!s)
        return -EINVAL;
    return sk_queue_replay(queue_of(l, s), &jq->rec);
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
    int rc = sk_journal_load(l->journal, load_sale, load_order, load_event, load_control, l);
    if (rc == 0 && l->n_early)
        rc = -EINVAL; /* a transition of an order that was never stored */
    if (rc == 0 && l->n_early_replayed)
        sk_warn("journal: %zu transition(s) stored ahead of their orders (a client named an order of the batch "
                "that made it, which this version answers 404): replayed right after them",
                l->n_early_replayed);
    free(l->early);
    l->early = NULL;
    l->n_early = l->cap_early = 0;
    if (rc < 0) {
        snprintf(err, err_size, "the store in %s is inconsistent or unreadable (%s)", l->data_dir,
                 rc == -EINVAL ? "an order, transition, control or sale does not fit the ledger" : "read error");
        return rc;
    }
    rc = sk_journal_load_queue(l->journal, load_queue, l);
    if (rc < 0) {
        snprintf(err, err_size, "the waiting rooms in %s are inconsistent or unreadable (%s)", l->data_dir,
                 rc == -EINVAL ? "a queue change does not fit its queue" : "read error");
        return rc;
    }
    /* Deadlines are rebuilt from the orders; those that passed while the process was
     * down expire in the ledger's first batch, before anything else is decided. */
    int64_t now = ledger_now(l);
    for (size_t i = 0; i < sk_engine_sale_count(e); i++) {
        sk_sale_t *s = sk_engine_sale_by_index(e, i);
        lsale_t *ls = lsale(l, s);
        while (ls->cursor < ls->holders->n_orders &&
               sk_holders_order_at(ls->holders, ls->cursor)->state != SK_ORDER_RESERVED)
            ls->cursor++;
        heap_fix(l, s);
        if (ls->p.closed)
            ls->closed = true;
        if (ls->queue)
            sk_engine_publish_queue(s, sk_queue_len(ls->queue), sk_queue_head(ls->queue));
        publish(l, s);
        close_if_ended(l, s, now);
    }
    l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
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
    /* Before the ledger starts, a commit syncs itself: the sale is durable already. */
    if (op.status == 0)
        sk_engine_show_sale(s);
    return op.status;
}

static void stop_syncer(ledger_t *l)
{
    if (!l->syncer_running)
        return;
    pthread_mutex_lock(&l->sync_mu);
    l->sync_stop = true;
    pthread_cond_signal(&l->sync_cv);
    pthread_mutex_unlock(&l->sync_mu);
    pthread_join(l->syncer, NULL);
    l->syncer_running = false;
}

static int ledger_start(sk_backend_t *b, sk_engine_t *e)
{
    ledger_t *l = (ledger_t *)b;
    l->e = e;
    if (l->clock) /* payments are stamped by the clock they are judged by */
        sk_engine_set_receipt_clock(e, l->clock, l->clock_arg);
    l->commits_seen = sk_journal_commits(l->journal);
    /* Without a syncer (no thread, or the WAL cannot be synced apart) every commit
     * syncs itself, as the journal does by default. */
    if (pthread_create(&l->syncer, NULL, syncer_main, l) == 0) {
        l->syncer_running = true;
        int rc = sk_journal_defer_sync(l->journal);
        if (rc < 0) {
            sk_warn("journal: commits sync themselves (the WAL cannot be synced apart: %s)", strerror(-rc));
            stop_syncer(l);
        }
    }
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
    stop_syncer(l);
}

static void ledger_free(sk_backend_t *b)
{
    ledger_t *l = (ledger_t *)b;
    ledger_stop(b);
    stop_syncer(l);
    sk_journal_close(l->journal);
    pthread_mutex_destroy(&l->sync_mu);
    pthread_cond_destroy(&l->sync_cv);
    pthread_cond_destroy(&l->done_cv);
    for (size_t i = 0; i < PENDING_MAX; i++) {
        free(l->pending[i].ops);
        free(l->pending[i].pubs);
    }
    free(l->cur.ops);
    free(l->cur.pubs);
    if (l->efd >= 0)
        close(l->efd);
    if (l->lock_fd >= 0)
        close(l->lock_fd);
    /* The engine freed the sales and their user sets already. */
    for (size_t i = 0; i < SK_MAX_SALES; i++) {
        sk_holders_free(l->sales[i].holders);
        free(l->sales[i].unc_undo);
        free(l->sales[i].trail);
        sk_queue_free(l->sales[i].queue);
    }
    free(l->qsales);
    free(l->jqueue);
    free(l->jqrows);
    sk_buf_free(&l->qusers);
    free(l->sales);
    free(l->uncertain);
    free(l->batch);
    free(l->waiting);
    free(l->work);
    free(l->jorders);
    free(l->jevents);
    free(l->jcontrols);
    free(l->undo);
    free(l->touched);
    free(l->heap);
    free(l->data_dir);
    free(l);
}

void sk_backend_embedded_set_fault(sk_backend_t *b, bool (*fn)(void *arg, sk_journal_fault_t at), void *arg)
{
    sk_journal_set_fault(((ledger_t *)b)->journal, fn, arg);
}

void sk_backend_embedded_set_clock(sk_backend_t *b, int64_t (*fn)(void *arg), void *arg)
{
    ledger_t *l = (ledger_t *)b;
    l->clock = fn;
    l->clock_arg = arg;
    if (l->e)
        sk_engine_set_receipt_clock(l->e, fn, arg);
}

sk_backend_t *sk_backend_embedded_new(const char *data_dir, size_t max_batch)
{
    ledger_t *l = sk_xcalloc(1, sizeof(*l));
    l->base = (sk_backend_t){.name = "embedded",
                             .lifecycle = true,
                             .queue = true,
                             .load = ledger_load,
                             .add_sale = ledger_add_sale,
                             .start = ledger_start,
                             .wake = ledger_wake,
                             .stop = ledger_stop,
                             .free = ledger_free};
    l->data_dir = sk_xstrndup(data_dir, strlen(data_dir));
    l->max_batch = max_batch ? max_batch : 4096;
    l->held_from = INT64_MAX;
    l->efd = -1;
    l->lock_fd = -1;
    pthread_mutex_init(&l->sync_mu, NULL);
    pthread_cond_init(&l->sync_cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);
    l->batch = sk_xmalloc(l->max_batch * sizeof(*l->batch));
    l->jorders = sk_xmalloc(l->max_batch * sizeof(*l->jorders));
    l->sales = sk_xcalloc(SK_MAX_SALES, sizeof(*l->sales));
    l->uncertain = sk_xmalloc(SK_MAX_SALES * sizeof(*l->uncertain));
    l->touched = sk_xmalloc(SK_MAX_SALES * sizeof(*l->touched));
    l->heap = sk_xmalloc(SK_MAX_SALES * sizeof(*l->heap));
    l->qsales = sk_xmalloc(SK_MAX_SALES * sizeof(*l->qsales));
    return &l->base;
}
