/* The ledger side of the engine: what a backend sees. A backend owns the ledger
 * thread: it takes queued ops from the engine, decides and durably records them, and
 * completes them. Two exist, in src/backend/: the embedded ledger (embedded.c: decisions
 * in memory, SQLite journal) and Redis (redis.c: decisions in a Lua script).
 *
 * Threading: load and add_sale run at start-up before start; wake runs on any thread;
 * everything else on the backend's own thread.
 *
 * Ownership: sales belong to the engine (sk_engine_register_sale). What a backend keeps
 * per sale (orders, holders, counters, load state) it keeps in its own array indexed by
 * sk_sale_t.index and frees in `free`; the one thing it hands over is a sale's set of
 * possible holders (sk_engine_publish_users). `free` runs after the engine freed the
 * sales: it must not touch them.
 *
 * What a backend publishes for the workers, always after the decisions it describes are
 * durable: the counts (sk_engine_publish_counts), new params (sk_engine_set_params), and
 * once it keeps them complete, the users who may hold an order (sk_engine_publish_users;
 * insert a user before publishing the counts that include their first order). */
#ifndef SK_ENGINE_BACKEND_H
#define SK_ENGINE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/engine.h"

typedef struct sk_backend sk_backend_t;

struct sk_backend {
    const char *name;
    /** The store is shared with other nodes: sales may appear there at any time and are
     *  looked up on a miss (SK_OP_FIND_SALE). */
    bool lookups;
    /** The store keeps the order lifecycle (payment windows, quantities above one, and
     *  the GET_ORDER, PAY, CANCEL and REFUND ops); without it those ops complete with
     *  status -ENOTSUP and the API refuses sales that would need it. */
    bool lifecycle;
    /** The store keeps waiting rooms (SK_OP_QUEUE); without it the op completes with
     *  -ENOTSUP and the API refuses queued sales. */
    bool queue;
    /** Registers the stored sales (sk_engine_register_sale) and rebuilds what the
     *  backend keeps. Returns 0, or -errno with one clear line in err. */
    int (*load)(sk_backend_t *b, sk_engine_t *e, char *err, size_t err_size);
    /** Stores and registers a sale before start (the demo sale). 0, -EEXIST, -EIO. */
    int (*add_sale)(sk_backend_t *b, sk_engine_t *e, sk_sale_t *s);
    /** Starts the ledger thread. Returns 0 or -errno. */
    int (*start)(sk_backend_t *b, sk_engine_t *e);
    /** Any thread: ops were queued (sk_engine_take will return them). */
    void (*wake)(sk_backend_t *b);
    /** Answers everything queued, then joins the ledger thread. */
    void (*stop)(sk_backend_t *b);
    void (*free)(sk_backend_t *b);
};

/** Ledger thread: takes up to `max` queued ops in arrival order. */
size_t sk_engine_take(sk_engine_t *e, sk_op_t **ops, size_t max);
/** Ledger thread: the earliest receipt (op->now_ms) of a payment submitted and not taken
 *  yet, INT64_MIN while one is being stamped, INT64_MAX when there is none, given the
 *  ledger's clock `now`: a payment not counted here is taken already or stamped `now` or
 *  later, so a reservation whose pay_by is at or after the answer may still be paid in
 *  time and must not expire yet. Any answer at or below `enough` (the earliest pay_by
 *  there is) holds everything: the first one found is returned. */
int64_t sk_engine_oldest_payment(sk_engine_t *e, int64_t now, int64_t enough);
/** Test seam: the clock submit stamps payments with (default sk_engine_store_now). */
void sk_engine_set_receipt_clock(sk_engine_t *e, int64_t (*fn)(void *arg), void *arg);
/** Ledger thread: true once sk_engine_stop was called (finish what is queued, then return). */
bool sk_engine_stopping(sk_engine_t *e);
/** Ledger thread: hands a finished op back to its worker (sent at the next flush). */
void sk_engine_complete(sk_engine_t *e, sk_op_t *op);
/** Ledger thread: wakes every worker that has completions waiting. */
void sk_engine_flush(sk_engine_t *e);
/** Registers a fully built sale in the lock-free sale table (ledger thread or load),
 *  visible to the workers at once: a sale loaded from the store, or whose creation the
 *  store confirmed durable already. */
void sk_engine_register_sale(sk_engine_t *e, sk_sale_t *s);
/** Registers a sale that the backend knows from now on (sk_engine_lookup_sale,
 *  sk_engine_sale_by_index, the count) but that the workers do not see
 *  (sk_engine_find_sale, sk_engine_sale_at) until sk_engine_show_sale: for a creation
 *  written but not yet durable. Ledger thread only. */
void sk_engine_register_hidden_sale(sk_engine_t *e, sk_sale_t *s);
/** Shows a hidden sale to the workers, once its creation is durable (a release store:
 *  everything the backend wrote for the sale before is seen with it). Never undone. */
void sk_engine_show_sale(sk_sale_t *s);
/** The backend's own lookups: any registered sale, visible to the workers or not. */
sk_sale_t *sk_engine_lookup_sale(sk_engine_t *e, const char *id, size_t len);
sk_sale_t *sk_engine_sale_by_index(sk_engine_t *e, size_t i);
/** Backend thread (or the loading thread): the most and the least the store's clock can
 *  be ahead of ours, in ms, as its replies showed it. A reply that carried the store's
 *  clock (store_now_ms), to a request sent at sent_ms and answered at recv_ms (sk_now_ms()
 *  before sending and once the reply is in), was read between the two: store_now_ms -
 *  sent_ms is the most (+1: both clocks are read to the ms), store_now_ms - recv_ms the
 *  least (-1). A store of several servers (Redis Cluster: each primary its own clock)
 *  gives the widest pair over them. The gate follows the most
 *  (sk_engine_store_clock_offset): never behind the store, it never answers not_started
 *  when the store would sell; it may be ahead by a request's trip: a non-holder in the
 *  last milliseconds of a sale hears ended (a possible holder still goes to the store,
 *  I5). A start meant as "now" follows the least (sk_engine_store_clock_offset_min). */
void sk_engine_note_store_clock(sk_engine_t *e, int64_t ahead_max_ms, int64_t ahead_min_ms);
/** The store failed so that what it holds is not known until a restart reads it (a
 *  failed sync, a write whose outcome could not be learned): from now on a sale id the
 *  workers do not know may exist, and they answer it 503 instead of 404. For good. */
void sk_engine_note_store_unsure(sk_engine_t *e);
/** Publishes a sale's durable counts as one snapshot (seqlock), with the sold-out flag
 *  (remaining == 0) and a new version. The ledger thread only. */
void sk_engine_publish_counts(sk_sale_t *s, const sk_sale_counts_t *c);
/** Publishes new params for a sale (a copy of *p, its name copied too); the old snapshot
 *  is retired and freed with the sale. The ledger thread only. */
void sk_engine_set_params(sk_sale_t *s, const sk_sale_params_t *p);
/** Hands the sale's set of possible holders to the engine, once: from then on workers
 *  answer non-holders themselves (sk_engine_gate), and the engine frees the set with
 *  the sale. The backend goes on inserting into it (its thread only) and must insert a
 *  user before it publishes counts that include that user's first order. */
void sk_engine_publish_users(sk_sale_t *s, sk_userset_t *users);
/** Takes back a sale's published users (the backend's thread only): from now on every
 *  purchase past the start goes to the backend again, until it publishes a new set. For
 *  a store shared by several nodes whose set would otherwise go stale (units came back
 *  elsewhere, so orders of users it never saw may follow). The old set is kept until
 *  the sale is freed: a worker may still be probing it. */
void sk_engine_withdraw_users(sk_sale_t *s);

/** Publishes a waiting room's durable length and head (sk_sale_t.q_len, q_head). */
void sk_engine_publish_queue(sk_sale_t *s, uint64_t len, uint64_t head);
/** Counts places handed out and admissions issued (metrics). */
void sk_engine_record_queue(sk_engine_t *e, uint64_t joins, uint64_t admitted);
/** Counts a purchase the ledger decided, by result (metrics). */
void sk_engine_record_decided(sk_engine_t *e, sk_buy_result_t r);
/** Counts n orders moved into state `to` by a payment, cancel, expiry or refund. */
void sk_engine_record_transition(sk_engine_t *e, sk_order_state_t to, uint64_t n);
/** Counts n orders of sale s that entered state `to` (a new order into reserved or
 *  confirmed, or a transition), once that change is durable (metrics, per sale). */
void sk_engine_record_entered(sk_sale_t *s, sk_order_state_t to, uint64_t n);
/** Records one batch in the engine's statistics. */
void sk_engine_record_batch(sk_engine_t *e, size_t n_buys, uint64_t commit_ns, bool ok);
/** Counts a batch answered 503 because too few replicas acknowledged it in time. */
void sk_engine_count_replica_timeout(sk_engine_t *e);
/** Frees a sale that was never registered (and, in sk_engine_free, every registered
 *  sale with its params and its user set). */
void sk_sale_free(sk_sale_t *s);

#endif
