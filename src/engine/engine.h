/* The sale engine: the sale table (read by every worker without locks), the queues
 * between the workers and the ledger thread, and what workers may answer without it.
 * The ledger thread, the one writer of stock, counts, orders and their states, is run
 * by a backend (engine/backend.h). Knows nothing of sockets, HTTP or stores.
 *
 * A worker thread attaches once (sk_engine_attach) and gets an sk_engine_worker_t whose
 * completions run on the worker's loop. It hands operations (sk_op_t) to the ledger with
 * sk_engine_submit; the ledger decides them in arrival order, in batches, makes each
 * batch durable in one write, and only then posts every op back to the worker that sent
 * it, where the op's `done` callback runs exactly once.
 *
 * What a sale publishes to the workers, each written by the ledger only and read by any
 * thread without locks:
 *  - that it exists (sk_sale_t.visible): once its creation is durable, and only then do
 *    sk_engine_find_sale and sk_engine_sale_at return it;
 *  - its params (sk_sale_params_t): immutable snapshots the ledger replaces by pointer;
 *  - its counts {stock, held, sold} in units, one consistent snapshot under a seqlock,
 *    written after each durable commit (I7: remaining + held + sold == stock at every
 *    read), with a sold-out flag (remaining == 0) and a version for change detection;
 *  - its possible holders (sk_userset_t): every user who ever had an order in it, so a
 *    worker answers everyone else itself (not_started, ended, paused, sold_out).
 *
 * Ownership: an op belongs to the ledger from submit until its callback; the callback
 * owns it again (free it with sk_op_free). Sales, their params (current and retired)
 * and their user sets are never freed while the engine runs: sk_engine_free frees them. */
#ifndef SK_ENGINE_ENGINE_H
#define SK_ENGINE_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/order.h"
#include "engine/queue.h"
#include "engine/userset.h"
#include "loop/loop.h"
#include "util/common.h"
#include "util/mpsc.h"

#define SK_ID_MAX 64 /* sale ids: [A-Za-z0-9_-]{1,64} */
#define SK_USER_MAX 64 /* user ids: printable ASCII without spaces, 1..64 bytes */
#define SK_REQUEST_MAX 64 /* request ids: same alphabet, 0..64 bytes */
#define SK_PAYMENT_ID_MAX 64 /* payment ids: same alphabet, 1..64 bytes */
#define SK_NAME_MAX 200 /* sale names: UTF-8, 1..200 bytes */
#define SK_STOCK_MAX 1000000000LL /* units */
#define SK_LIMIT_MAX 1000000 /* units per user (and so per order) */
#define SK_WINDOW_MAX_MS 86400000LL /* payment windows: up to a day */
#define SK_MAX_SALES 10000
#define SK_ORDER_ID_MAX (SK_ID_MAX + 24)

typedef struct sk_engine sk_engine_t;
typedef struct sk_engine_worker sk_engine_worker_t;
typedef struct sk_sale sk_sale_t;
typedef struct sk_trail_entry sk_trail_entry_t; /* engine/control.h */

typedef enum {
    SK_SALE_SCHEDULED = 0,
    SK_SALE_LIVE,
    SK_SALE_SOLD_OUT,
    SK_SALE_ENDED,
    SK_SALE_PAUSED,
} sk_sale_state_t;

/** A sale's settings. Immutable once published: the ledger publishes a new snapshot to
 *  change any of them (sk_engine_set_params) and the old one is retired, kept until the
 *  engine is freed, so a worker may go on reading a snapshot it loaded. */
typedef struct {
    const char *name; /* owned by the snapshot */
    int64_t starts_at, ends_at; /* unix ms */
    int32_t per_user_limit; /* units a user may hold at once (reserved + confirmed) */
    int32_t max_quantity; /* units per order, 1 .. per_user_limit */
    int64_t payment_window_ms; /* 0: a purchase is final; else it is reserved until pay_by */
    bool paused; /* new purchases are refused (409 paused); payments go on */
    bool closed; /* ended by the operator, for good */
    /* The waiting room (engine/queue.h): off, or buyers join a queue and may buy only
     * with an admission it issues, admit_per_second of them from starts_at on, each
     * good for admission_ttl_ms. Joins are taken from queue_opens_at (0: from the
     * sale's creation); pow_bits > 0 asks a proof of work for a join. */
    uint8_t queue; /* sk_queue_mode_t */
    uint8_t pow_bits; /* 0 .. SK_POW_BITS_MAX */
    int32_t admit_per_second; /* 1 .. SK_ADMIT_RATE_MAX when queued */
    int64_t queue_opens_at; /* unix ms, 0: open from creation */
    int64_t admission_ttl_ms; /* SK_ADMISSION_TTL_MIN .. SK_ADMISSION_TTL_MAX */
} sk_sale_params_t;

typedef enum {
    SK_QUEUE_OFF = 0,
    SK_QUEUE_FIFO, /* the pre-queue keeps arrival order */
    SK_QUEUE_RANDOM, /* the pre-queue is shuffled at the start */
} sk_queue_mode_t;

#define SK_ADMIT_RATE_MAX 1000000
#define SK_ADMIT_RATE_DEFAULT 100
#define SK_ADMISSION_TTL_MIN 1000LL
#define SK_ADMISSION_TTL_MAX 86400000LL
#define SK_ADMISSION_TTL_DEFAULT 120000LL
#define SK_SALE_POW_BITS_MAX 30 /* a phone's second is about 2^20 hashes */

/** "off", "fifo", "random"; the parse returns 0 or -EINVAL. */
const char *sk_queue_mode_name(int mode);
int sk_queue_mode_parse(const char *s, size_t n, int *mode);

/** A sale's unit counts; remaining = stock - held - sold. */
typedef struct {
    int64_t stock, held, sold;
} sk_sale_counts_t;

static inline int64_t sk_counts_remaining(const sk_sale_counts_t *c)
{
    return c->stock - c->held - c->sold;
}

struct sk_sale {
    char id[SK_ID_MAX + 1];
    size_t id_len;
    int64_t created_at;
    uint32_t index; /* position in creation order */
    /* The workers may see the sale: its creation is durable. A sale the ledger made is
     * registered at once (it refuses a second create of the id, it decides what follows)
     * but shown only once the sync of its write succeeded; a sale loaded from the store,
     * or made before the ledger started, is shown at once. Set once, by the backend
     * (release), never cleared; read with acquire by sk_engine_find_sale and
     * sk_engine_sale_at. */
    _Atomic bool visible;

    /* Published by the ledger, read by any thread (the accessors below). */
    _Atomic(const sk_sale_params_t *) params;
    _Atomic uint64_t counts_seq; /* odd while the ledger writes the counts */
    _Atomic int64_t c_stock, c_held, c_sold;
    _Atomic bool sold_out; /* remaining == 0, stored with the counts */
    _Atomic uint64_t version; /* bumped on every change of counts or params */
    /* The users who may hold an order, once the backend keeps them complete (the
     * embedded ledger: from the start; Redis: once a sale can take no more orders).
     * NULL: every purchase past the start goes to the backend. Owned by the engine. */
    _Atomic(sk_userset_t *) users;
    /* Orders that entered each state — a new order into reserved or confirmed, then every
     * payment, cancel, expiry and refund — counted by the backend once the change is
     * durable, from the sale's whole history (the embedded ledger counts what it replays
     * at start too). For /metrics: written by the ledger, read by any thread. */
    sk_counter_t entered[SK_ORDER__COUNT];
    /* The waiting room as its writer last made it durable (queued sales): places handed
     * out and the head (everyone before it admitted). A worker tells a subscriber its
     * `ahead` from these without asking the writer. */
    _Atomic uint64_t q_len, q_head;

    void *retired; /* the ledger's: params snapshots replaced, freed with the sale */
};

typedef enum {
    SK_OP_BUY = 0,
    SK_OP_ORDERS, /* one user's orders */
    SK_OP_LIST, /* every order of a sale, paginated */
    SK_OP_CREATE_SALE,
    /* A sale this node has not cached (its id in op->new_sale->id): the backend looks it
     * up in its store and registers it; op->sale is then set, else status -ENOENT. Only
     * for backends with lookups (sk_engine_lookups). A BUY may come the same way, with
     * sale NULL and the id in new_sale: found, it is decided like any other; not found,
     * it completes with sale NULL and status -ENOENT. */
    SK_OP_FIND_SALE,
    /* One order of op->sale by op->seq: read (GET_ORDER) or moved by the order state
     * machine (engine/order.h). PAY carries op->payment_id; CANCEL carries op->user_id
     * (the buyer, who must own the order) or op->admin. */
    SK_OP_GET_ORDER,
    SK_OP_PAY,
    SK_OP_CANCEL,
    SK_OP_REFUND,
    /* An operator's control of op->sale (engine/control.h): entries[0] holds what is
     * asked (ctl, actor, request_id; a request_id is required) and, after the decision,
     * the trail entry (for SK_CR_OK and SK_CR_DUPLICATE; for SK_CR_REQUEST_REUSED the
     * entry that holds the request_id). */
    SK_OP_CONTROL,
    /* The sale's trail: every accepted control, in order, in entries / n_entries. */
    SK_OP_LOG,
    /* The waiting room of op->sale (engine/queue.h): op->user_id asks for its place
     * (op->join: joins, or joins again after an expired admission). Decided by the
     * sale's writer at op->now_ms; status 0 with `place`, -ENOENT (not in the queue, not
     * joining), -EIO, -EAGAIN, or -ENOTSUP (the store keeps no waiting rooms). */
    SK_OP_QUEUE,
} sk_op_kind_t;

typedef enum {
    SK_BUY_CONFIRMED = 0,
    SK_BUY_DUPLICATE,
    SK_BUY_SOLD_OUT,
    SK_BUY_LIMIT_REACHED,
    SK_BUY_NOT_STARTED,
    SK_BUY_ENDED,
    SK_BUY_UNAVAILABLE,
    SK_BUY_RATE_LIMITED,
    SK_BUY_RESERVED, /* made, held until pay_by (a sale with a payment window) */
    SK_BUY_PAUSED,
    SK_BUY_BAD_QUANTITY, /* quantity above the sale's max_quantity: 400 */
    SK_BUY_NOT_ADMITTED, /* a queued sale, no valid admission (and no replay): 403 */
    SK_BUY__COUNT
} sk_buy_result_t;

/** Names used in JSON and metrics: "confirmed", "duplicate", "sold_out", ... */
extern const char *const sk_buy_result_names[SK_BUY__COUNT];

/** One order as the API shows it. Times are unix ms, 0 when not (yet) set. */
typedef struct {
    uint64_t seq; /* per sale, from 1 */
    int64_t created_at;
    int64_t pay_by; /* 0: bought without a payment window */
    int64_t paid_at;
    int64_t closed_at; /* cancelled, expired or refunded at */
    uint32_t quantity; /* units */
    sk_order_state_t state;
    char user_id[SK_USER_MAX + 1];
    char request_id[SK_REQUEST_MAX + 1];
    char payment_id[SK_PAYMENT_ID_MAX + 1]; /* "" until paid */
} sk_order_t;

typedef struct sk_op sk_op_t;
typedef void (*sk_op_cb)(sk_op_t *op);

struct sk_op {
    sk_mpsc_node_t node;
    sk_op_kind_t kind;
    sk_engine_worker_t *worker; /* where the callback runs */
    sk_op_cb done;
    void *ctx; /* the caller's (e.g. the deferred HTTP answer) */
    void *owner; /* the caller's too (e.g. the submitting API worker) */
    sk_sale_t *sale;
    int64_t now_ms; /* the gate's clock reading (BUY, QUEUE); PAY: when it was received (set
                       by sk_engine_submit, the store's clock, unless the caller set it) */

    uint8_t user_len; /* of user_id (the strings are at the end) */
    uint8_t request_len;
    uint32_t quantity; /* BUY: units, 1 .. (0 is taken as 1) */
    uint64_t user_hash; /* BUY: sk_user_hash of user_id, 0 when the caller did not compute it */
    /* BUY of a queued sale without a valid admission, sent only because the buyer may
     * hold an order: the ledger answers a replay of its request_id (I5) and refuses
     * anything else with SK_BUY_NOT_ADMITTED. */
    bool unadmitted;
    uint64_t seq; /* GET_ORDER, PAY, CANCEL, REFUND: the order */
    uint8_t payment_len;
    bool admin; /* CANCEL: by the operator (user_id is then not checked) */
    bool join; /* QUEUE: join if not in the queue */
    sk_queue_place_t place; /* QUEUE: the result */

    /* Results.
     * BUY: result, order, remaining; held (the units the buyer holds, with LIMIT_REACHED
     * and SOLD_OUT; then `order` is their first order).
     * ORDERS/LIST: orders, n_orders (owned by the op, freed by sk_op_free).
     * GET_ORDER, PAY, CANCEL, REFUND: status 0 with `tr` (GET_ORDER: SK_TR_OK) and the
     * order as it is after the decision; or status -ENOENT (no such order), -EPERM
     * (CANCEL of another user's order), -EIO (store unavailable), -EAGAIN (too many in
     * flight), -ENOTSUP (the store has no order lifecycle).
     * ORDERS/LIST also -ESTALE: the orders asked for were moved out of the store (the
     * Redis store, after the drain).
     * CREATE_SALE: status 0, -EEXIST, -ENOSPC (too many sales) or -EIO.
     * CONTROL: status 0 with control_result (sk_control_result_t) and, for a 400 result,
     * field (a static string); or -EIO, -EAGAIN, -ENOTSUP (the store has no controls).
     * LOG: status 0 with entries / n_entries, or -EIO, -ENOTSUP. */
    sk_buy_result_t result;
    sk_tr_result_t tr;
    int status;
    int64_t remaining;
    uint32_t held;
    sk_order_t *orders;
    size_t n_orders;
    uint64_t list_after; /* LIST: orders with seq > list_after */
    size_t list_limit;
    bool list_more;
    sk_sale_t *new_sale; /* CREATE_SALE: the sale to add (owned by the engine on success) */
    sk_trail_entry_t *entries; /* CONTROL, LOG: owned by the op (freed by sk_op_free) */
    size_t n_entries;
    int control_result; /* CONTROL: sk_control_result_t */
    const char *field; /* CONTROL: the field at fault of a 400 result */
    uint64_t scratch; /* the ledger's own use */

    /* The strings, last: a recycled op (sk_engine_op_new) clears every field above but
     * only the first byte of each string, and of `order` its numbers. */
    char user_id[SK_USER_MAX + 1];
    char request_id[SK_REQUEST_MAX + 1];
    char payment_id[SK_PAYMENT_ID_MAX + 1]; /* PAY */
    sk_order_t order; /* a result (see above) */
};

typedef struct {
    size_t max_inflight; /* ops queued to the ledger before 429 (default 65536) */
} sk_engine_config_t;

typedef struct sk_backend sk_backend_t;

/** Opens the engine over a backend (owned by the engine from now on, even on failure)
 *  and loads the stored sales. On failure returns NULL and writes one clear line into err. */
sk_engine_t *sk_engine_open(const sk_engine_config_t *cfg, sk_backend_t *backend, char *err, size_t err_size);
/** Starts the ledger thread. Returns 0 or -errno. */
int sk_engine_start(sk_engine_t *e);
/** Stops the ledger after it has answered everything queued; joins it. */
void sk_engine_stop(sk_engine_t *e);
/** Closes the store and frees everything (after stop and after workers detached). */
void sk_engine_free(sk_engine_t *e);

/** Adds a sale durably before the ledger thread starts (start-up only, e.g. the demo
 *  sale). Takes ownership of `s` on success. Returns 0, -EEXIST, -ENOSPC or -EIO. */
int sk_engine_add_sale(sk_engine_t *e, sk_sale_t *s);

/** Attaches a worker loop: completions for its ops run on that loop. Loop thread only. */
sk_engine_worker_t *sk_engine_attach(sk_engine_t *e, sk_loop_t *loop);
/** Detaches (after the ledger stopped): runs pending completions, frees the handle. */
void sk_engine_detach(sk_engine_worker_t *w);

/** True when the backend's store is shared with other nodes (Redis): a sale unknown
 *  here may exist there, and SK_OP_FIND_SALE (or a BUY with sale NULL) asks for it. */
bool sk_engine_lookups(const sk_engine_t *e);
/** True when the backend keeps the order lifecycle: payment windows, quantities above
 *  one, and the GET_ORDER / PAY / CANCEL / REFUND ops. */
bool sk_engine_lifecycle(const sk_engine_t *e);
/** True when the backend keeps waiting rooms (SK_OP_QUEUE): sales may have a queue. */
bool sk_engine_queues(const sk_engine_t *e);
/** The store's clock minus this node's, in ms, as last seen by the backend (0 for the
 *  embedded store, whose writer reads this node's clock). The gate decides by
 *  sk_now_ms() + this, its best guess of the clock the store decides by, so that a node
 *  whose clock lags the store's does not answer not_started to a holder's replay just
 *  after the store's start (I5). Any thread. */
int64_t sk_engine_store_clock_offset(const sk_engine_t *e);
/** The least the store's clock can be ahead of this node's, in ms, as its replies showed
 *  it (a reply's clock minus when the reply came; over every primary of a Redis Cluster;
 *  0 for the embedded store): this node's clock plus this is not ahead of the store's at
 *  any later instant, as long as the store's clocks do not step back, so a sale that
 *  starts then has started for the store. Any thread. */
int64_t sk_engine_store_clock_offset_min(const sk_engine_t *e);
/** The store's clock as best known here: sk_now_ms() + sk_engine_store_clock_offset. What
 *  every sale time a node judges or shows is read by. Any thread. */
int64_t sk_engine_store_now(const sk_engine_t *e);
/** True once the backend said the store failed in a way that leaves unknown what it
 *  holds (sk_engine_note_store_unsure): an unknown sale id then answers 503, not 404.
 *  Any thread. */
bool sk_engine_store_unsure(const sk_engine_t *e);
/** Finds a sale by id without locking (any thread). Returns NULL when unknown, and for
 *  a sale whose creation is not durable yet (sk_sale_t.visible): the workers answer it
 *  as unknown. (Backends see every sale they registered: engine/backend.h.) */
sk_sale_t *sk_engine_find_sale(sk_engine_t *e, const char *id, size_t len);
/** Number of sales registered: the i of sk_engine_sale_at run below it (any thread). */
size_t sk_engine_sale_count(sk_engine_t *e);
/** The i-th sale in creation order (any thread); NULL when i >= the count, and for a sale
 *  not visible yet: a walk over the sales skips it. */
sk_sale_t *sk_engine_sale_at(sk_engine_t *e, size_t i);

/** A new, unregistered sale: id, a copy of *params (its name copied too) as its first
 *  snapshot, and counts {stock, 0, 0}. Free it with sk_sale_free until it is
 *  registered (or handed to an op as new_sale, which frees it with the op). */
sk_sale_t *sk_sale_new(const char *id, size_t id_len, const sk_sale_params_t *params, int64_t stock,
                       int64_t created_at);

/** The sale's current params (any thread): valid until the engine is freed. */
static inline const sk_sale_params_t *sk_sale_params(const sk_sale_t *s)
{
    return atomic_load_explicit(&((sk_sale_t *)s)->params, memory_order_acquire);
}

/** One consistent snapshot of the sale's counts (any thread, lock-free: retries while
 *  the ledger is writing them). */
static inline void sk_sale_counts(const sk_sale_t *s, sk_sale_counts_t *c)
{
    sk_sale_t *m = (sk_sale_t *)s;
    for (;;) {
        uint64_t q = atomic_load_explicit(&m->counts_seq, memory_order_acquire);
        c->stock = atomic_load_explicit(&m->c_stock, memory_order_relaxed);
        c->held = atomic_load_explicit(&m->c_held, memory_order_relaxed);
        c->sold = atomic_load_explicit(&m->c_sold, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (!(q & 1) && atomic_load_explicit(&m->counts_seq, memory_order_relaxed) == q)
            return;
    }
}

static inline int64_t sk_sale_sold(const sk_sale_t *s)
{
    sk_sale_counts_t c;
    sk_sale_counts(s, &c);
    return c.sold;
}

static inline int64_t sk_sale_remaining(const sk_sale_t *s)
{
    sk_sale_counts_t c;
    sk_sale_counts(s, &c);
    return sk_counts_remaining(&c);
}

static inline bool sk_sale_is_sold_out(const sk_sale_t *s)
{
    return atomic_load_explicit(&((sk_sale_t *)s)->sold_out, memory_order_acquire);
}

/** Current state of a sale from the clock, its params and counts: ended (closed, or
 *  now >= ends_at) before scheduled before paused before sold_out before live. */
sk_sale_state_t sk_sale_state(const sk_sale_t *s, int64_t now_ms);
/** The same rule over given params and counts (a writer's own, not yet published). */
sk_sale_state_t sk_sale_state_of(const sk_sale_params_t *p, const sk_sale_counts_t *c, int64_t now_ms);
const char *sk_sale_state_name(sk_sale_state_t st);

/** The rules of a purchase of q units that come after a holder's replay, in the order
 *  every store checks them: not started, ended (closed or past ends_at), paused, q
 *  above max_quantity, the buyer's active units + q above the limit, fewer than q units
 *  remaining. Returns the refusal, or SK_BUY_CONFIRMED when the purchase may be made. */
sk_buy_result_t sk_buy_rules(const sk_sale_params_t *p, int64_t now, int64_t q, int64_t active_units,
                             int64_t remaining);

/** The worker's gate, without the ledger: the answer to a purchase of q units by the
 *  user with hash `user_hash` (sk_user_hash) at now_ms, when the worker may give it:
 *  not_started (nobody holds an order before the start), bad_quantity (q above the
 *  sale's max_quantity, from anyone), or — for a buyer who holds no order of the sale,
 *  so no replay and no units held — ended, paused or sold_out. Returns true with
 *  *result and *remaining set; false: the ledger decides (a possible holder, a
 *  purchase that may succeed, or a sale whose holders this node does not know). */
bool sk_engine_gate(const sk_sale_t *s, int64_t now_ms, uint64_t user_hash, uint32_t q, sk_buy_result_t *result,
                    int64_t *remaining);

/** Allocates a zeroed op. */
sk_op_t *sk_op_new(sk_op_kind_t kind);
void sk_op_free(sk_op_t *op);
/** An op like sk_op_new's, taken from the worker's cache of spent ops when it has one: a
 *  purchase costs no malloc and no free. A cached op is not zeroed whole: every field
 *  before the strings is, and each string (and `order`'s) is empty, but the bytes after
 *  a string's first keep an earlier use's; so a caller writes a string with its NUL,
 *  and nothing reads one past it. Loop thread of `w` only (the cache is the worker's).
 *  Give the op back with sk_engine_op_recycle on that thread, or free it with
 *  sk_op_free anywhere. */
sk_op_t *sk_engine_op_new(sk_engine_worker_t *w, sk_op_kind_t kind);
/** Frees what the op owns (orders, a new sale) and keeps the op for the worker's next
 *  sk_engine_op_new (up to a bound; beyond it the op is freed). Loop thread of `w` only. */
void sk_engine_op_recycle(sk_engine_worker_t *w, sk_op_t *op);
/** Hands an op to the ledger (worker's loop thread only); the ledger is woken at the
 *  end of the loop's turn, and `op->done` runs later on w's loop. An op refused because
 *  too many ops are in flight completes at once (inside this call) with result
 *  SK_BUY_RATE_LIMITED and status -EAGAIN. */
void sk_engine_submit(sk_engine_worker_t *w, sk_op_t *op);

/** Formats "<sale>-<seq, 10 digits>" into dst (SK_ORDER_ID_MAX + 1 bytes); returns length. */
size_t sk_order_id(char *dst, const sk_sale_t *s, uint64_t seq);
/** Parses an order id of sale s back to its seq. Returns 0 or -EINVAL. */
int sk_order_id_parse(const sk_sale_t *s, const char *id, size_t len, uint64_t *seq);
/** Splits any order id at its last '-' into the sale id (*sale_len bytes at id) and the
 *  seq (sale ids may contain '-'). Returns 0 or -EINVAL. */
int sk_order_id_split(const char *id, size_t len, size_t *sale_len, uint64_t *seq);

/** Engine-wide counters for /metrics (read from any thread). */
typedef struct {
    sk_counter_t batches;
    sk_counter_t batch_ops;
    sk_counter_t batch_size_bucket[12]; /* <=1,2,4,...,1024,2048,+Inf */
    sk_counter_t commit_ns_sum;
    sk_counter_t commit_bucket[16]; /* same bounds as the HTTP latency histogram */
    sk_counter_t commit_errors;
    sk_counter_t decided[SK_BUY__COUNT]; /* purchases the ledger decided, by result */
    sk_counter_t transitions[SK_ORDER__COUNT]; /* orders moved into each state (pay, cancel, expiry, refund) */
    sk_counter_t replica_timeouts; /* batches answered 503: too few replicas had them in time */
    sk_counter_t queue_joins; /* places handed out by waiting rooms (re-joins included) */
    sk_counter_t queue_admitted; /* admissions issued */
    _Atomic int64_t inflight; /* ops queued or being decided */
} sk_engine_stats_t;
const sk_engine_stats_t *sk_engine_stats(const sk_engine_t *e);

/* Validation helpers shared by the API and the ledger. */
bool sk_valid_sale_id(const char *s, size_t n);
bool sk_valid_user_id(const char *s, size_t n);
bool sk_valid_request_id(const char *s, size_t n);
bool sk_valid_payment_id(const char *s, size_t n);

#endif
