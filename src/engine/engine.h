/* The sale engine: the sale table (read by every worker without locks), the queues
 * between the workers and the ledger thread, and what workers may answer without it.
 * The ledger thread, the one writer of stock, per-user counts and orders, is run by a
 * backend (engine/backend.h). Knows nothing of sockets, HTTP or stores.
 *
 * A worker thread attaches once (sk_engine_attach) and gets an sk_engine_worker_t whose
 * completions run on the worker's loop. It hands operations (sk_op_t) to the ledger with
 * sk_engine_submit; the ledger decides them in arrival order, in batches, makes each
 * batch durable in one write, and only then posts every op back to the worker that sent
 * it, where the op's `done` callback runs exactly once.
 *
 * Ownership: an op belongs to the ledger from submit until its callback; the callback
 * owns it again (free it with sk_op_free). Sales are never freed while the engine runs. */
#ifndef SK_ENGINE_ENGINE_H
#define SK_ENGINE_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"
#include "util/common.h"
#include "util/mpsc.h"

#define SK_ID_MAX 64 /* sale ids: [A-Za-z0-9_-]{1,64} */
#define SK_USER_MAX 64 /* user ids: printable ASCII without spaces, 1..64 bytes */
#define SK_REQUEST_MAX 64 /* request ids: same alphabet, 0..64 bytes */
#define SK_NAME_MAX 200 /* sale names: UTF-8, 1..200 bytes */
#define SK_STOCK_MAX 1000000000LL
#define SK_LIMIT_MAX 1000000
#define SK_MAX_SALES 10000
#define SK_ORDER_ID_MAX (SK_ID_MAX + 24)

typedef struct sk_engine sk_engine_t;
typedef struct sk_engine_worker sk_engine_worker_t;
typedef struct sk_sale sk_sale_t;
typedef struct sk_holders sk_holders_t;

typedef enum {
    SK_SALE_SCHEDULED = 0,
    SK_SALE_LIVE,
    SK_SALE_SOLD_OUT,
    SK_SALE_ENDED,
} sk_sale_state_t;

struct sk_sale {
    char id[SK_ID_MAX + 1];
    size_t id_len;
    char *name;
    int64_t stock;
    int64_t starts_at; /* unix ms */
    int64_t ends_at; /* unix ms */
    int32_t per_user_limit;
    int64_t created_at;
    uint32_t index; /* position in creation order */

    /* Published by the ledger after each durable commit; read by any thread. */
    _Atomic int64_t sold;
    _Atomic bool sold_out; /* release-stored after the last unit's commit */
    _Atomic uint64_t version; /* bumped on every change of sold or state */

    /* Set once the sale's holders are final (sold out, or closed at its end) and known
     * here: from then on workers answer its purchases without the ledger. Owned by the
     * engine (sk_engine_adopt_final_holders), freed with the sale. What a backend keeps
     * per sale while the sale is open is its own (indexed by `index`), never here. */
    _Atomic(sk_holders_t *) final_holders;
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
    SK_BUY__COUNT
} sk_buy_result_t;

/** Names used in JSON and metrics: "confirmed", "duplicate", "sold_out", ... */
extern const char *const sk_buy_result_names[SK_BUY__COUNT];

/** One order as the API shows it. */
typedef struct {
    uint64_t seq; /* per sale, from 1 */
    int64_t created_at;
    char user_id[SK_USER_MAX + 1];
    char request_id[SK_REQUEST_MAX + 1];
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
    int64_t now_ms; /* the gate's clock reading */

    char user_id[SK_USER_MAX + 1];
    uint8_t user_len;
    char request_id[SK_REQUEST_MAX + 1];
    uint8_t request_len;

    /* Results. BUY: result, order (seq, created_at), remaining, held (the orders the
     * buyer holds, with LIMIT_REACHED and SOLD_OUT; then `order` is their first). ORDERS/LIST: orders,
     * n_orders (owned by the op, freed by sk_op_free); status -EIO when the store cannot
     * be read, -ESTALE when the orders asked for were moved out of it (the Redis store,
     * after the drain). CREATE_SALE: status 0,
     * -EEXIST, -ENOSPC (too many sales) or -EIO. */
    sk_buy_result_t result;
    int status;
    int64_t remaining;
    sk_order_t order;
    uint32_t held;
    sk_order_t *orders;
    size_t n_orders;
    uint64_t list_after; /* LIST: orders with seq > list_after */
    size_t list_limit;
    bool list_more;
    sk_sale_t *new_sale; /* CREATE_SALE: the sale to add (owned by the engine on success) */
    uint64_t scratch; /* the ledger's own use (the embedded ledger keeps the user's hash) */
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
/** Finds a sale by id without locking. Returns NULL when unknown. */
sk_sale_t *sk_engine_find_sale(sk_engine_t *e, const char *id, size_t len);
/** Number of sales and the i-th in creation order (any thread). */
size_t sk_engine_sale_count(sk_engine_t *e);
sk_sale_t *sk_engine_sale_at(sk_engine_t *e, size_t i);

/** Current state of a sale from the clock and the published counters. */
sk_sale_state_t sk_sale_state(const sk_sale_t *s, int64_t now_ms);
const char *sk_sale_state_name(sk_sale_state_t st);
static inline int64_t sk_sale_sold(const sk_sale_t *s)
{
    return atomic_load_explicit(&((sk_sale_t *)s)->sold, memory_order_acquire);
}
static inline bool sk_sale_is_sold_out(const sk_sale_t *s)
{
    return atomic_load_explicit(&((sk_sale_t *)s)->sold_out, memory_order_acquire);
}

/** True when the worker may answer purchases of this sale itself: its holders are final
 *  (sold out, or closed at its end) and the engine holds them. */
static inline bool sk_sale_final(const sk_sale_t *s)
{
    return atomic_load_explicit(&((sk_sale_t *)s)->final_holders, memory_order_acquire) != NULL;
}

/** The answer to a purchase of a sale whose holders are final, decided on the worker
 *  without the ledger and in the ledger's order (every backend decides the same way):
 *  1. a holder's replay of a request id: DUPLICATE with that order, whatever the clock
 *     says (I5);
 *  2. the window at now_ms: NOT_STARTED, ENDED (also for a sale closed at its end);
 *  3. a holder at the per-user limit: LIMIT_REACHED;
 *  4. SOLD_OUT.
 *  With LIMIT_REACHED and SOLD_OUT, a holder's first order is filled into *order and
 *  *held is the number of orders they hold (0 for anyone else: *order untouched).
 *  Only valid when sk_sale_final() returned true. */
sk_buy_result_t sk_engine_final_answer(const sk_sale_t *s, int64_t now_ms, const char *user, size_t user_len,
                                       const char *request_id, size_t request_len, sk_order_t *order, uint32_t *held);
/** A user's orders of a sale whose holders are final, read without the ledger (same
 *  condition). Returns the count; *out is malloc'ed (free it). */
size_t sk_engine_final_orders(const sk_sale_t *s, const char *user, size_t user_len, sk_order_t **out);
/** A user's orders from a holders record (ledger thread, or any thread once final). */
size_t sk_engine_user_orders(const sk_holders_t *h, const char *user, size_t user_len, sk_order_t **out);

/** Allocates a zeroed op. */
sk_op_t *sk_op_new(sk_op_kind_t kind);
void sk_op_free(sk_op_t *op);
/** Hands an op to the ledger (worker's loop thread only); the ledger is woken at the
 *  end of the loop's turn, and `op->done` runs later on w's loop. An op refused because
 *  too many ops are in flight completes at once (inside this call) with result
 *  SK_BUY_RATE_LIMITED and status -EAGAIN. */
void sk_engine_submit(sk_engine_worker_t *w, sk_op_t *op);

/** Formats "<sale>-<seq, 10 digits>" into dst (SK_ORDER_ID_MAX + 1 bytes); returns length. */
size_t sk_order_id(char *dst, const sk_sale_t *s, uint64_t seq);
/** Parses an order id of sale s back to its seq. Returns 0 or -EINVAL. */
int sk_order_id_parse(const sk_sale_t *s, const char *id, size_t len, uint64_t *seq);

/** Engine-wide counters for /metrics (read from any thread). */
typedef struct {
    sk_counter_t batches;
    sk_counter_t batch_ops;
    sk_counter_t batch_size_bucket[12]; /* <=1,2,4,...,1024,2048,+Inf */
    sk_counter_t commit_ns_sum;
    sk_counter_t commit_bucket[16]; /* same bounds as the HTTP latency histogram */
    sk_counter_t commit_errors;
    sk_counter_t replica_timeouts; /* batches answered 503: too few replicas had them in time */
    _Atomic int64_t inflight; /* ops queued or being decided */
} sk_engine_stats_t;
const sk_engine_stats_t *sk_engine_stats(const sk_engine_t *e);

/* Validation helpers shared by the API and the ledger. */
bool sk_valid_sale_id(const char *s, size_t n);
bool sk_valid_user_id(const char *s, size_t n);
bool sk_valid_request_id(const char *s, size_t n);

#endif
