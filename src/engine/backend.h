/* The ledger side of the engine: what a backend sees. A backend owns the ledger
 * thread: it takes queued ops from the engine, decides and durably records them, and
 * completes them. Two exist, in src/backend/: the embedded ledger (embedded.c: decisions
 * in memory, SQLite journal) and Redis (redis.c: decisions in a Lua script).
 *
 * Threading: load and add_sale run at start-up before start; wake runs on any thread;
 * everything else on the backend's own thread.
 *
 * Ownership: sales belong to the engine (sk_engine_register_sale). What a backend keeps
 * per sale (its holders while the sale is open, counters, load state) it keeps in its
 * own array indexed by sk_sale_t.index and frees in `free`; the one thing it hands over
 * is a sale's final holders (sk_engine_adopt_final_holders). `free` runs after the
 * engine freed the sales: it must not touch them. */
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
/** Ledger thread: true once sk_engine_stop was called (finish what is queued, then return). */
bool sk_engine_stopping(sk_engine_t *e);
/** Ledger thread: hands a finished op back to its worker (sent at the next flush). */
void sk_engine_complete(sk_engine_t *e, sk_op_t *op);
/** Ledger thread: wakes every worker that has completions waiting. */
void sk_engine_flush(sk_engine_t *e);
/** Registers a fully built sale in the lock-free sale table (ledger thread or load). */
void sk_engine_register_sale(sk_engine_t *e, sk_sale_t *s);
/** Publishes a sale's durable sold count (and sold-out state when sold == stock). */
void sk_engine_publish_sold(sk_sale_t *s, int64_t sold);
/** Hands a sale's final holders to the engine, once per sale, when no order of the sale
 *  can be added any more (sold out, or closed because the backend's clock passed its
 *  end) and every order is durable and in h. From this call the engine owns h: workers
 *  answer from it without locks (sk_engine_final_answer, sk_engine_final_orders) and
 *  sk_engine_free frees it with the sale, after the backend stopped. The backend may
 *  keep reading h on its thread but never writes to it or frees it again. */
void sk_engine_adopt_final_holders(sk_sale_t *s, sk_holders_t *h);
/** Records one batch in the engine's statistics. */
void sk_engine_record_batch(sk_engine_t *e, size_t n_buys, uint64_t commit_ns, bool ok);
/** Counts a batch answered 503 because too few replicas acknowledged it in time. */
void sk_engine_count_replica_timeout(sk_engine_t *e);
/** Frees a sale that was never registered (and, in sk_engine_free, every registered
 *  sale with the final holders the engine adopted). */
void sk_sale_free(sk_sale_t *s);

#endif
