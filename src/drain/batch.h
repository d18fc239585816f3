/* The drain's batch: the orders read from the sales' order streams and not yet in the
 * database, each with the stream entry it came from, so that the entries can be
 * acknowledged once the batch is committed. No I/O here: replies in, rows and XACK
 * commands out.
 *
 * One stream entry holds the orders one ledger batch confirmed (redis/redis.h); an
 * entry is acknowledged once, with its first order. An entry that does not parse is
 * left out whole, so it stays pending in the consumer group (never acknowledged) and
 * is counted.
 *
 * Ownership: the batch owns its rows. Sale ids and stream keys are borrowed from the
 * caller's sale records, which must stay put while the rows live. */
#ifndef SK_DRAIN_BATCH_H
#define SK_DRAIN_BATCH_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drain/db.h"
#include "engine/engine.h"

#define SK_DRAIN_ENTRY_ID_MAX 48 /* "<ms>-<seq>" of a stream entry id */

typedef struct {
    const char *sale_id, *key; /* borrowed: the sale and its stream */
    bool first_of_entry; /* the row that acknowledges its entry */
    char entry_id[SK_DRAIN_ENTRY_ID_MAX];
    char order_id[SK_ORDER_ID_MAX + 1];
    char user[SK_USER_MAX + 1];
    char request[SK_REQUEST_MAX + 1];
    int64_t seq, created_at;
} sk_drain_row_t;

typedef struct {
    sk_drain_row_t *rows;
    size_t n, cap; /* cap grows: one read may bring more than asked for */
    uint64_t malformed; /* entries left out since init */
    uint64_t held_back; /* lifecycle entries left pending since init (not carried yet) */
} sk_drain_batch_t;

void sk_drain_batch_init(sk_drain_batch_t *b, size_t cap);
void sk_drain_batch_free(sk_drain_batch_t *b);

/** Adds every order of `entries` (an array of stream entries [id, [field, value...]],
 *  as XREADGROUP or XAUTOCLAIM return them) of one sale's stream. When last_id is not
 *  NULL it receives the id of the last entry delivered, a malformed one included (the
 *  position to read pending entries from next). Returns the number of orders added. */
size_t sk_drain_batch_add(sk_drain_batch_t *b, const char *sale_id, const char *key, const redisReply *entries,
                          char *last_id, size_t last_cap);

/** The rows as database orders: a malloc'ed array of b->n (strings point into b). */
sk_db_order_t *sk_drain_batch_orders(const sk_drain_batch_t *b);

/** The XACK of every entry in the batch, one command per stream naming each entry once:
 *  calls fn(arg, argc, argv, lens) with "XACK <key> <group> <id>...". Returns the number
 *  of commands. */
size_t sk_drain_batch_acks(const sk_drain_batch_t *b, const char *group,
                           void (*fn)(void *arg, int argc, const char **argv, const size_t *lens), void *arg);

#endif
