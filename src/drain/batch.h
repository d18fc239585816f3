/* The drain's batch: the stream entries read from the sales' order streams and not yet
 * in the database, as database rows — new orders, transitions, trail entries — each
 * with the stream entry it came from, so that the entries can be acknowledged once the
 * batch is committed. No I/O here: replies in, rows and XACK commands out.
 *
 * A stream holds, in decision order (redis/redis.h): o entries (the orders one script
 * call made: reservations with pay_by, quantities), x entries (transitions of one kind)
 * and c entries (one control: its trail entry). Every kind is taken. An entry that does
 * not parse is left out whole, so it stays pending in the consumer group (never
 * acknowledged) and is counted.
 *
 * Order within a batch: the database gets its new orders first, then its transitions,
 * then its trail rows. That is stream order where it matters: a transition only names
 * orders made before it, and the transitions of one order commute in the database
 * (db.h), so they are merged into one row per order (sk_drain_batch_transitions).
 *
 * Ownership: the batch owns its rows. Sale ids and stream keys are borrowed from the
 * caller's sale records, which must stay put while the rows live; rows of one sale
 * share one sale id pointer. */
#ifndef SK_DRAIN_BATCH_H
#define SK_DRAIN_BATCH_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drain/db.h"
#include "engine/control.h"
#include "engine/engine.h"
#include "engine/order.h"

#define SK_DRAIN_ENTRY_ID_MAX 48 /* "<ms>-<seq>" of a stream entry id */

/** One stream entry taken into the batch. */
typedef struct {
    const char *sale_id, *key; /* borrowed: the sale and its stream */
    char id[SK_DRAIN_ENTRY_ID_MAX];
    bool ack; /* false: a transition of it found no order: it stays pending */
} sk_drain_entry_t;

/** A new order (o). */
typedef struct {
    const char *sale_id; /* borrowed */
    size_t entry; /* in entries */
    char order_id[SK_ORDER_ID_MAX + 1];
    char user[SK_USER_MAX + 1];
    char request[SK_REQUEST_MAX + 1];
    int64_t seq, created_at, quantity, pay_by; /* pay_by 0: final at once */
} sk_drain_row_t;

/** A transition of one order (x). */
typedef struct {
    const char *sale_id; /* borrowed */
    size_t entry;
    int64_t seq, at;
    sk_order_event_t event;
    char arg[SK_PAYMENT_ID_MAX + 1]; /* pay: the payment id; cancel: who */
} sk_drain_move_t;

/** A control's trail entry (c). */
typedef struct {
    const char *sale_id; /* borrowed */
    size_t entry;
    int64_t seq, at;
    char kind[32], actor[SK_ACTOR_MAX + 1], request[SK_REQUEST_MAX + 1];
    char *params, *before, *after; /* JSON text, owned */
} sk_drain_event_t;

typedef struct {
    sk_drain_entry_t *entries;
    size_t n_entries, cap_entries;
    sk_drain_row_t *rows; /* new orders */
    size_t n, cap; /* cap grows: one read may bring more than asked for */
    sk_drain_move_t *moves;
    size_t n_moves, cap_moves;
    sk_drain_event_t *events;
    size_t n_events, cap_events;
    uint64_t malformed; /* entries left out since init */
} sk_drain_batch_t;

void sk_drain_batch_init(sk_drain_batch_t *b, size_t cap);
void sk_drain_batch_free(sk_drain_batch_t *b);
/** Empties the batch (keeps its memory and the malformed count). */
void sk_drain_batch_clear(sk_drain_batch_t *b);

/** Orders, transitions and trail entries in the batch. */
static inline size_t sk_drain_batch_size(const sk_drain_batch_t *b)
{
    return b->n + b->n_moves + b->n_events;
}

/** Adds every entry of `entries` (an array of stream entries [id, [field, value...]],
 *  as XREADGROUP or XAUTOCLAIM return them) of one sale's stream. When last_id is not
 *  NULL it receives the id of the last entry delivered, a malformed one included (the
 *  position to read pending entries from next). Returns the number of rows added
 *  (orders, transitions and trail entries). */
size_t sk_drain_batch_add(sk_drain_batch_t *b, const char *sale_id, const char *key, const redisReply *entries,
                          char *last_id, size_t last_cap);

/** The new orders as database orders: a malloc'ed array of b->n (strings point into b). */
sk_db_order_t *sk_drain_batch_orders(const sk_drain_batch_t *b);

/** The transitions merged, one per order (sale, seq), sorted by order: the state they lead to from a reservation
 * (sk_db_state_moves, in stream order) and the fields of the moves taken (a payment's id and time, a cancel's, expiry's
 * or refund's time). A malloc'ed array (strings point into b); *n receives its length. */
sk_db_transition_t *sk_drain_batch_transitions(const sk_drain_batch_t *b, size_t *n);

/** After the batch was written: the entries that hold a transition of an order the
 *  database did not have (t[i].found false) are not acknowledged. Returns the number of
 *  such entries. */
size_t sk_drain_batch_unfound(sk_drain_batch_t *b, const sk_db_transition_t *t, size_t n);

/** Leaves out of the batch every entry for whose stream drop(arg, key) says true, with
 *  its orders, transitions and trail entries (they stay pending in the stream, to be
 *  read again). Returns the number of entries left out. */
size_t sk_drain_batch_drop(sk_drain_batch_t *b, bool (*drop)(void *arg, const char *key), void *arg);

/** The trail entries as database rows: a malloc'ed array of b->n_events. */
sk_db_event_t *sk_drain_batch_events(const sk_drain_batch_t *b);

/** The XACK of every entry in the batch to acknowledge, one command per stream naming
 *  each entry once: calls fn(arg, argc, argv, lens) with "XACK <key> <group> <id>...".
 *  Returns the number of commands. */
size_t sk_drain_batch_acks(const sk_drain_batch_t *b, const char *group,
                           void (*fn)(void *arg, int argc, const char **argv, const size_t *lens), void *arg);

#endif
