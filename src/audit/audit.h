/* The audit: reconciles what the service told the client during a run against what its
 * order store holds afterwards, and counts every way they disagree. Counts are in units
 * (an order holds `quantity` units).
 *
 *   oversold    units held or sold beyond the stock: the largest of the store's active
 *               (reserved + confirmed) units, the sale's reported sold, the units named to
 *               the client as confirmed (or, without payment windows, every distinct order
 *               it was named), the highest held + sold read during the run, and — from a
 *               store with a log — the highest active units at any point of it (from a
 *               database without one, at any time by its orders' created_at and
 *               closed_at, returns first at equal times, so that it can only miss an
 *               oversell, never invent one); minus stock
 *   undersold   units left unsold although buyers were turned away with sold_out:
 *               without payment windows min(stock - sold units, users told sold_out who
 *               hold no order); with them, units left at the end while one-unit buyers
 *               still heard sold_out more than 2 s after the last unit came back
 *   lost        orders the service named to the client (confirmed, reserved, duplicate,
 *               limit_reached, or found when asked) that the store does not hold
 *   phantom     orders in the store nobody was told about: not named in any answer and
 *               not found by asking the service about a request that ended in doubt
 *   duplicates  units beyond per_user_limit for one user (active units: at the end, or at
 *               any point of a store's log), plus extra orders for one request_id
 *   miscounted  orders whose quantity in the store is not the one the client was told,
 *               plus 1 when the store's confirmed units differ from the sale's "sold"
 *   bad_reads   reads of the sale during the run with held + sold > stock, remaining +
 *               held + sold != stock, or a count below zero
 *   counts_mismatch  with a payment window, the sale's final held and sold against the
 *               units of its orders' states in the store; and a store's log against its
 *               own order states
 * and, with a payment window (I7, I8):
 *   late_confirmed   orders confirmed by a payment after pay_by: the client sent it after
 *               pay_by on the server's clock for certain, or the store's paid_at > pay_by
 *   early_expired    orders expired before their pay_by: answered "expired" before pay_by
 *               on the server's clock for certain, or the store's closed_at <= pay_by
 *   state_mismatch   reservations whose final state is not what the client did: paid in
 *               time (confirmed) -> confirmed; paid late (expired) -> expired and never
 *               paid; cancelled -> cancelled; walked away -> expired; an answer naming a
 *               state -> that state; a payment refused as cancelled, refunded or paid by
 *               another id although the client did none of that
 *   not_final        reservations the client saw that are still reserved at the end
 *   returned_twice   orders whose units left them twice (a store's log: a cancel, expiry
 *               or refund of an order already cancelled, expired or refunded)
 *   bad_transitions  other moves the rules forbid in a store's log (a confirmed order
 *               expired or cancelled, a reservation refunded, a seq made twice, a move
 *               of no order, a seq above 2^40)
 *   held_at_end      units still held once every deadline passed
 *
 * Units, not orders: an order holds `quantity` units, and oversold, undersold and the
 * per-user limit count units (of the store's active orders: reserved or confirmed).
 *
 * The operator's controls (I10), when the service keeps a trail (GET .../log): every
 * order is placed against the trail by its seq (each entry says how many orders the
 * sale had made when it applied) and by its created_at (the same clock as the
 * entry's `at`; an order and a control decided in one batch share one reading, so
 * equal times are allowed and the seq decides):
 *   while_paused  orders after a pause and before the resume (or close) that ended it
 *   after_close   orders after the close
 *   over_stock    points of the order sequence where the units of the orders so far
 *                 exceed the stock in effect there, and trail entries whose own counts
 *                 do (units that returned — cancels, expiries, refunds — are not
 *                 subtracted, so this can only miss, never invent, an oversell)
 * When the trail moved the stock, the highest units at once (reads, a store's log) are
 * held against the highest stock the sale had, and undersold is not judged (a buyer
 * turned away before stock was added, or units left at a close, are the operator's
 * doing).
 *
 * In-doubt requests (503 or no answer after the last retry) may or may not have
 * bought: invariant I6 (docs/architecture.md) lets a client ask GET
 * /api/v1/sales/{id}/orders/{user} later. The audit does exactly that for every user with
 * such a request and counts the orders it learns of as `recovered`; they are not
 * phantoms. With `resolve` off it does not ask, and an order behind a 503 counts as
 * phantom. A user who cannot be asked (the service is down) cannot vouch for their
 * orders either: those count as phantom too. A payment or cancel that ended in doubt
 * may have happened or not: its reservation may end either way, but it must end.
 *
 * The store is read through a small source interface: the service's own admin listing
 * (HTTP), the embedded SQLite file (its orders view, and its log in decision order),
 * a cluster's PostgreSQL or MySQL/MariaDB.
 *
 * Ownership: sources are created by their constructor and released with close(). Order
 * fields passed to a callback are valid only during the call. */
#ifndef SK_AUDIT_AUDIT_H
#define SK_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loadgen/client.h"
#include "loadgen/scenario.h"

/** One order as the store holds it (strings not NUL-terminated). A store that keeps no
 *  states (every order final) leaves state SK_LOADGEN_ST_UNKNOWN: it counts as
 *  confirmed. */
typedef struct {
    const char *order_id;
    size_t order_id_len;
    const char *user_id;
    size_t user_id_len;
    const char *request_id;
    size_t request_id_len;
    uint64_t seq; /* its number in the sale, 0 when the store does not say */
    int64_t quantity; /* units; 0 when the store does not say (one) */
    sk_loadgen_state_t state;
    int64_t pay_by, paid_at, closed_at; /* unix ms, 0 when not set */
    int64_t created_at; /* unix ms on the writer's clock; 0 when the store does not say */
} sk_loadgen_store_order_t;

/** Called for each order; returns 0 to go on, non-zero to stop with that value. */
typedef int (*sk_loadgen_order_fn)(void *arg, const sk_loadgen_store_order_t *o);

/** One entry of a store's log, in the order the store decided them: a new order (with
 *  its user and units), or an order moving into state `to`. */
typedef struct {
    uint64_t seq;
    bool created;
    sk_loadgen_state_t to; /* a new order: reserved or confirmed */
    const char *user_id; /* new orders */
    size_t user_id_len;
    int64_t quantity; /* new orders */
} sk_audit_event_t;

typedef int (*sk_audit_event_fn)(void *arg, const sk_audit_event_t *ev);

typedef struct sk_audit_source sk_audit_source_t;
struct sk_audit_source {
    const char *kind; /* "http", "sqlite", ... */
    /** Fills stock, limit and, when known, sold (else -1). Returns 0 or -1 with err. */
    int (*sale)(sk_audit_source_t *s, const char *sale_id, sk_loadgen_sale_t *out, char *err, size_t err_len);
    /** Calls fn for every order of the sale. Returns 0 or -1 with err. */
    int (*orders)(sk_audit_source_t *s, const char *sale_id, sk_loadgen_order_fn fn, void *arg, char *err,
                  size_t err_len);
    /** Optional (NULL: the store keeps no log): calls fn for every new order and every
     *  transition of the sale, in the order the store decided them. 0 or -1 with err. */
    int (*events)(sk_audit_source_t *s, const char *sale_id, sk_audit_event_fn fn, void *arg, char *err,
                  size_t err_len);
    void (*close)(sk_audit_source_t *s);
    /* Set by sk_audit_run before sale(): the highest order number (seq) named to the
     * client. A database source waits until it holds that many orders (the drain has
     * carried them). */
    uint64_t wait_seq;
    /* The orders' created_at and closed_at are the times of one writer's clock (a
     * cluster's database: Redis's TIME): without a log, the audit replays them (set by
     * the source). */
    bool timed;
};

/** The service's admin listing GET /api/v1/sales/{id}/orders, paged by `after`. The
 *  target is borrowed. Never fails to construct. */
sk_audit_source_t *sk_audit_source_http(const sk_loadgen_target_t *t, const char *admin_token);
/** The embedded store's SQLite file, opened read-only: the journal's orders view, and its
 *  log (order_batches and order_events, merged by lsn). Where orders is the store's view
 *  over that log, the log is read once and the orders derived from it as the view
 *  defines them (a linear pass instead of the view's grouping and joins); an orders
 *  table of another writer is read as it is. NULL with err when it cannot be opened. */
sk_audit_source_t *sk_audit_source_sqlite(const char *path, char *err, size_t err_len);
/** The same; by_view reads the orders view and the log through SQL even where the
 *  source would derive the orders from one pass over the log (a test compares both). */
sk_audit_source_t *sk_audit_source_sqlite_opts(const char *path, bool by_view, char *err, size_t err_len);
/** A cluster's PostgreSQL (libpq connection string or URL). Before reading, it waits up
 *  to wait_ms until the drain caught up (audit/drained.h): as many confirmed units of
 *  the sale as the service at target `t` (borrowed) reports sold, as many reserved
 *  units as it reports held, the orders the client was told of. It reads the orders'
 *  state, quantity, pay_by, paid_at and closed_at where the schema has those columns;
 *  without them every order counts as confirmed, one unit. NULL with err when it
 *  cannot connect. */
sk_audit_source_t *sk_audit_source_pg(const char *conninfo, const sk_loadgen_target_t *t, int wait_ms, char *err,
                                      size_t err_len);
/** The same for a cluster's MySQL or MariaDB (a mysql:// URL, drain/mysql.h). */
sk_audit_source_t *sk_audit_source_mysql(const char *url, const sk_loadgen_target_t *t, int wait_ms, char *err,
                                         size_t err_len);

typedef struct {
    const sk_loadgen_sale_t *sale; /* as set up before the run */
    const sk_loadgen_results_t *res;
    const char *run_id; /* request ids of this run start with "r<run_id>-" */
    const sk_loadgen_target_t *targets; /* asked about in-doubt users, first that answers */
    size_t ntargets;
    const char *admin_token;
    bool resolve;
    bool lifecycle; /* the sale has a payment window: the lifecycle checks */
    bool single_units; /* the crowd bought single units (its sold_out answers judge undersold) */
} sk_audit_input_t;

typedef struct {
    char source[16];
    int64_t stock, limit;
    int64_t store_orders;
    int64_t reported_sold; /* -1 when the source does not say */
    int64_t client_orders; /* distinct orders named to the client, recovered included */
    int64_t recovered;
    int64_t users_tried, users_in_doubt, users_asked, ask_failures;
    int64_t users_refused_sold_out; /* told sold_out and hold no order */
    int64_t foreign; /* orders of other runs (only when this run did not create the sale) */
    int64_t oversold, undersold, lost, phantom, duplicates, miscounted;
    int64_t bad_reads, counts_mismatch;
    int64_t late_confirmed, early_expired, state_mismatch, not_final, returned_twice, bad_transitions, held_at_end;
    /* What was audited, for the report. */
    bool lifecycle, logged; /* the lifecycle checks; the store's log was replayed */
    int64_t store_units; /* units of active (reserved + confirmed) orders at the end */
    int64_t confirmed_units; /* units of the store's confirmed orders */
    int64_t client_units; /* of the distinct orders named to the client with their quantity */
    /* The trail (I10): checked when the service keeps one. */
    bool trail_checked;
    int64_t trail_entries;
    int64_t while_paused, after_close, over_stock;
    int64_t by_state[SK_LOADGEN_ST__COUNT]; /* store orders by state (unknown: none) */
    int64_t reads, max_units; /* reads of the sale during the run; the highest held + sold */
    int64_t final_held, final_sold; /* the last read, -1 when none */
    int64_t log_max_units; /* the highest active units in the store's log */
    int64_t timed_max_units; /* no log: the highest active units by the orders' times, -1: not judged */
    int64_t reservations, reservations_checked; /* seen by the client; found in the store */
    int64_t last_return_ms; /* the last closed_at of a cancelled, expired or refunded order */
    bool ok; /* every count above that can fail is zero */
    char failure[512]; /* "oversold=3 lost=1" when !ok */
    char note[256];
    char first_mismatch[200]; /* the first state_mismatch, for the report */
    sk_loadgen_phases_t times; /* where the audit's time went */
} sk_audit_t;

/** Runs the audit. Returns 0 (the verdict is in out->ok), or -1 with err when the store
 *  could not be read at all. */
int sk_audit_run(const sk_audit_input_t *in, sk_audit_source_t *src, sk_audit_t *out, char *err, size_t err_len);

#endif
