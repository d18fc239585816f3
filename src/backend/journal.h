/* Durable storage behind the embedded ledger: a SQLite journal of sales, orders and
 * order transitions. All calls come from the ledger thread only, but sk_journal_sync. A
 * call that returns 0 has made its data durable (WAL, synchronous=FULL: the commit's
 * fsync has returned) — unless sk_journal_defer_sync was called: then a commit only
 * writes the WAL, and sk_journal_sync makes every commit made before it durable.
 *
 * Schema version 4 (PRAGMA user_version; a version 1, 2 or 3 file is migrated in place
 * when it is opened). Every row of the three logs carries an lsn: one counter for the whole
 * journal, in decision order where it matters (below), so a replay that merges them by
 * lsn meets every change of an order, a sale's stock and settings in the order the
 * ledger made them. Also read directly by `seckill-bench --audit-sqlite`.
 *   sales(id, name, stock, starts_at, ends_at, per_user_limit, created_at,
 *         max_quantity, payment_window_ms, lsn, queue, queue_opens_at, admit_per_second,
 *         admission_ttl_ms, pow_bits) -- queue is 'off', 'fifo' or 'random'
 *   queue_log(lsn, sale_id, kind, at, user_id, arg, n) -- the waiting rooms, one row per
 *       change in the writer's order (engine/queue.h): join (user_id), start (arg: the
 *       shuffle's seed, n: the places shuffled, 0 for fifo), admit (user_id, arg: its
 *       position). Written in a transaction of its own after the batch's orders; a
 *       replay of a sale's rows into an empty queue rebuilds it
 *   order_batches(lsn, sale_id, first_seq, n, created_at, pay_by, orders) -- one row per
 *       sale per batch: `orders` is a JSON array of [user_id, request_id] (with a third
 *       element, the quantity, when it is above 1) for seqs first_seq...; pay_by is NULL
 *       for orders made without a payment window (confirmed at once)
 *   order_events(lsn, sale_id, kind, at, events) -- one row per sale, kind and time per
 *       batch (a payment is judged by when it was received, so a batch's may differ):
 *       kind is pay, cancel, expire or refund; events a JSON array of [seq] ([seq,
 *       payment_id] for pay, [seq, actor] for cancel)
 *   sale_events(lsn, sale_id, seq_in_sale, kind, actor, request_id, at, params, before,
 *       after) -- the operators' trail: one row per accepted control, kind its action
 *       (pause, resume, close, add_stock, remove_stock, patch), params/before/after JSON
 *       (engine/control.h). `sales` keeps each sale as it was created; its controls
 *       (stock, times, limits, paused, closed) are replayed from here
 *   orders -- a view, one row per order with its current state:
 *       (sale_id, seq, order_id, user_id, request_id, quantity, state, created_at,
 *        pay_by, payment_id, paid_at, closed_at)
 *
 * Within one batch the rows of a sale are written as: expirations, cancels, payments,
 * refunds, controls, new orders. That is the ledger's decision order wherever it
 * matters: a transition names an order of an earlier batch (a client learns an order
 * id only from a committed answer, and the ledger answers a guessed id of its batch's
 * own new orders 404), an expiry is decided before anything else of its
 * batch, a refund in the same batch as the payment it undoes comes after it, and units
 * that return before the new orders only make the replay's checks easier to pass.
 * Controls go after the units that returned (a remove_stock may have counted on them)
 * and before the new orders: an order after an add_stock may need the added units, an
 * order before a remove_stock fitted into the stock left after it (the removal never
 * goes below sold + held), a window may only change while the sale has no orders, and
 * pause, close and the times are not checked again when orders are replayed. Their
 * order among the purchases is kept in each entry's before.orders. */
#ifndef SK_BACKEND_JOURNAL_H
#define SK_BACKEND_JOURNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/control.h"
#include "engine/order.h"
#include "engine/queue.h"

#define SK_JOURNAL_VERSION 4

typedef struct sk_journal sk_journal_t;

typedef struct {
    const char *id;
    const char *name;
    int64_t stock, starts_at, ends_at, per_user_limit, created_at;
    int64_t max_quantity; /* 1 in a version 1 file */
    int64_t payment_window_ms; /* 0 in a version 1 file */
    int queue; /* sk_queue_mode_t; -1: not a mode this version knows */
    int64_t queue_opens_at, admit_per_second, admission_ttl_ms, pow_bits;
} sk_journal_sale_t;

/** One change of a sale's waiting room. */
typedef struct {
    const char *sale_id;
    sk_queue_rec_t rec;
} sk_journal_queue_t;

typedef struct {
    const char *sale_id;
    uint64_t seq; /* per sale, from 1 */
    const char *user_id;
    const char *request_id; /* "" when the client sent none */
    int64_t created_at;
    int64_t pay_by; /* 0: made without a payment window */
    uint32_t quantity; /* units, >= 1 */
    /* The ids' lengths, or 0: not given, the journal measures them (the ledger gives
     * them; the load does not). */
    uint16_t user_len, request_len;
    uint64_t lsn; /* the load's: the row it was read from (one row per sale per batch) */
} sk_journal_order_t;

typedef struct {
    const char *sale_id;
    uint64_t seq; /* the order */
    sk_order_event_t kind;
    int64_t at; /* the ledger's clock when it decided */
    const char *arg; /* pay: the payment id; cancel: the actor ("buyer" or "admin"); else NULL */
} sk_journal_event_t;

/** One accepted control of a sale (its trail entry, by value). */
typedef struct {
    const char *sale_id;
    sk_trail_entry_t entry;
} sk_journal_control_t;

/** Opens (creating if needed) DIR/seckill.db, migrating a version 1 file in place (one
 *  transaction). Returns NULL and one clear line in err. */
sk_journal_t *sk_journal_open(const char *dir, char *err, size_t err_size);
void sk_journal_close(sk_journal_t *j);

/** From now on a commit only writes the WAL (in commit order): nothing it wrote is
 *  durable until a later sk_journal_sync has returned 0. For a writer that syncs on
 *  another thread while it writes its next batch. Returns 0 or -errno (the journal
 *  stays as it was). */
int sk_journal_defer_sync(sk_journal_t *j);

/** Makes every commit made before the call durable (fdatasync of the WAL). Any thread,
 *  concurrently with the writer's commits, after sk_journal_defer_sync. 0 or -errno. */
int sk_journal_sync(sk_journal_t *j);

/** Commits made so far (a writer compares two readings to know whether it wrote). */
uint64_t sk_journal_commits(const sk_journal_t *j);

/** Replays the journal: every sale, then every order, transition and control merged by
 *  lsn (each sale's orders in seq order). A callback that returns non-zero stops the
 *  replay and that value is returned. on_event and on_control may be NULL (those rows
 *  are then skipped). Strings are valid during the callback only. Returns 0, -EIO, or
 *  -EINVAL for a control row that does not parse. */
int sk_journal_load(sk_journal_t *j, int (*on_sale)(void *arg, const sk_journal_sale_t *s),
                    int (*on_order)(void *arg, const sk_journal_order_t *o),
                    int (*on_event)(void *arg, const sk_journal_event_t *ev),
                    int (*on_control)(void *arg, const sk_journal_control_t *c), void *arg);

/** What sk_journal_put_sale returns when its write reported failure and the file could
 *  not be asked whether the sale is there: it may be stored or not. */
#define SK_JOURNAL_IN_DOUBT (-ENOTRECOVERABLE)

/** Stores a sale (its own transaction; durable once synced, see sk_journal_commits).
 *  Returns 0 (stored; also when the write reported failure but the file holds the row),
 *  -EEXIST (the id is stored already), -EIO (not stored) or SK_JOURNAL_IN_DOUBT. */
int sk_journal_put_sale(sk_journal_t *j, const sk_journal_sale_t *s);

/** Stores one batch of the ledger in one transaction: its transitions (by kind, and in
 *  time order within a kind: a batch holds at most one event of a kind for an order),
 *  its controls (in decision order) and its new orders. Each sale's orders must carry
 *  consecutive seqs; a sale's orders in one batch share created_at and pay_by, taken
 *  from its first one; events keep each its own `at`. The rows
 *  get lsns *first..*last (set even on failure; nothing written: *first > *last).
 *  Returns 0, or -EIO: then the outcome is not known for certain (a commit may fail
 *  after its data reached the disk), and sk_journal_has_lsn tells whether the batch is
 *  stored. */
int sk_journal_put_batch(sk_journal_t *j, const sk_journal_order_t *orders, size_t n_orders,
                         const sk_journal_event_t *events, size_t n_events, const sk_journal_control_t *controls,
                         size_t n_controls, uint64_t *first, uint64_t *last);
/** sk_journal_put_batch with orders only. */
int sk_journal_put_orders(sk_journal_t *j, const sk_journal_order_t *orders, size_t n);

/** Stores waiting-room changes, in order, in one transaction. Returns 0 or -EIO (nothing
 *  stored for certain). */
int sk_journal_put_queue(sk_journal_t *j, const sk_journal_queue_t *recs, size_t n);
/** Replays every waiting-room change in lsn order. Strings valid during the callback;
 *  a callback's non-zero return stops and is returned. Returns 0, -EIO or -EINVAL. */
int sk_journal_load_queue(sk_journal_t *j, int (*on_rec)(void *arg, const sk_journal_queue_t *r), void *arg);

/** Whether any row of a batch with an lsn in [first, last] is stored (one batch is one
 *  transaction: all of its rows or none). Returns 0 with *found set, or -EIO. */
int sk_journal_has_lsn(sk_journal_t *j, uint64_t first, uint64_t last, bool *found);
/** The highest seq stored for a sale (0: none) in *seq. Returns 0 or -EIO. */
int sk_journal_last_seq(sk_journal_t *j, const char *sale_id, uint64_t *seq);

/** Where a test may make the journal fail (sk_journal_set_fault). */
typedef enum {
    SK_JOURNAL_FAULT_COMMIT, /* the batch's COMMIT fails: nothing is stored, -EIO */
    SK_JOURNAL_FAULT_AFTER_COMMIT, /* the batch is committed and durable, yet -EIO is
                                      returned, as when a commit's outcome is lost */
    SK_JOURNAL_FAULT_LAST_SEQ, /* asking what the journal holds (sk_journal_has_lsn,
                                  sk_journal_last_seq, whether a sale's write that
                                  reported failure is stored) fails with -EIO */
    SK_JOURNAL_FAULT_SYNC, /* sk_journal_sync fails with -EIO (the writes stay in the WAL) */
    SK_JOURNAL_FAULT_SALE_COMMIT, /* a sale's write fails: nothing is stored (the file is
                                     asked all the same, as after any failure) */
    SK_JOURNAL_FAULT_SALE_AFTER_COMMIT, /* a sale's write is committed, yet reports failure */
} sk_journal_fault_t;

/** Test seam: before each of the points above the journal calls fn(arg, point), and a
 *  true return makes that point fail as described. NULL removes the hook. Set it on the
 *  ledger thread or before it starts; fn runs on the ledger thread (for
 *  SK_JOURNAL_FAULT_SYNC: on the thread that calls sk_journal_sync). */
void sk_journal_set_fault(sk_journal_t *j, bool (*fn)(void *arg, sk_journal_fault_t at), void *arg);

#endif
