/* The possible holders of a sale: an insert-only set of 64-bit user hashes that one
 * writer (the ledger) fills and any thread reads without a lock.
 *
 * It answers "may this user hold an order?": never "no" for a user inserted before the
 * reader's acquire of what the writer published after the insert (the sale's counts
 * or its users pointer); sometimes "yes" for a user never inserted (two ids with the
 * same hash), which only sends that purchase to the ledger, where it is decided
 * exactly. Workers use it to answer the crowd of non-holders themselves while only
 * possible holders reach the ledger (I5: a holder's replay always gets its order).
 *
 * Open addressing over atomic 64-bit slots (0 is empty: a hash of 0 is stored as 1),
 * at most half full. Growing publishes an empty table twice the size with a release
 * store and moves the old one into it 64 entries per insert afterwards (no insert pays
 * for copying every holder of a big sale); until the move is done readers look in both,
 * and the old table is never written again. Replaced tables are retired, not freed,
 * because a reader may still be probing them; they are freed with the set. A reader
 * that loaded an old table after the acquire that matters sees every insert made before
 * the publication it acquired: the old table holds them, or the table that replaced it
 * does.
 *
 * Ownership: the set belongs to whoever created it until it is published as a sale's
 * users (sk_engine_publish_users); then the engine frees it with the sale. */
#ifndef SK_ENGINE_USERSET_H
#define SK_ENGINE_USERSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sk_userset sk_userset_t;

/** The hash of a user id as the set and the ledger use it (never 0). */
uint64_t sk_user_hash(const char *user, size_t len);

/** An empty set. */
sk_userset_t *sk_userset_new(void);
/** Frees the set and every table it retired (no reader may be left). */
void sk_userset_free(sk_userset_t *u);
/** Adds a hash (the writer only). Inserting a present hash does nothing. */
void sk_userset_insert(sk_userset_t *u, uint64_t hash);
/** Any thread: false only when the hash was never inserted (see above). */
bool sk_userset_may_contain(const sk_userset_t *u, uint64_t hash);
/** Hints the CPU to load the line a probe for the hash starts at (the ledger prefetches
 *  every purchase's line before deciding any, so the cache misses overlap). */
void sk_userset_prefetch(const sk_userset_t *u, uint64_t hash);
/** Distinct hashes inserted (the writer's view; any thread may read it for metrics). */
size_t sk_userset_count(const sk_userset_t *u);
/** Whether a table of `slots` slots gets the one that will replace it allocated and
 *  faulted in ahead, from 3/8 full: not when it holds SK_STOCK_MAX users at a load of at
 *  most 1/2, so it is never replaced (exposed for tests). */
bool sk_userset_grows_ahead(uint64_t slots);

#endif
