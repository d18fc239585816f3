/* The drain: moves the orders, their transitions and the sales' trails from the Redis
 * order streams into the database, the cluster's system of record (db.h).
 *
 * One consumer group ("seckill-drain") reads every sale's stream (sales are discovered
 * from the sales index), on one Redis or on every primary of a Redis Cluster
 * (redis/cluster.h: each sale's stream lives on the primary serving its slot). A batch
 * of entries is written in one database transaction and only after its COMMIT are the
 * entries XACKed. So a crash at any point loses nothing (unacknowledged entries stay in
 * the group's pending list and are read again) and duplicates nothing (a batch written
 * twice inserts each order once). On start, and after every reconnect to a primary,
 * the drain first re-reads its own pending entries; entries left pending by a consumer
 * that is gone are claimed after a minute (XAUTOCLAIM).
 *
 * With replicas_ack, entries are written to the database only once that many replicas
 * have them (WAIT): an entry a failover could still lose never reaches the system of
 * record, where a later order with the same seq would then be refused as a duplicate.
 *
 * Bounded memory: once acknowledged, entries are trimmed from the stream (XTRIM MINID up
 * to the oldest entry any consumer group still needs, pending ones included). A sale
 * that is over by Redis's clock, drained and reconciled is retired: its holders and
 * order stream expire after `retention_ms`, and its sale record stays as a tombstone
 * with `retired_at` (so its id is never taken again and the nodes know why its orders
 * are gone from Redis).
 *
 * Reconciliation: per sale, the units sold in Redis (the sale's sold counter: units of
 * confirmed orders) are compared with the units of the database's confirmed orders,
 * continuously; the difference is exported and is 0 once the drain caught up (exact
 * for every sale: a plain sale's orders are one unit each, and a reservation counts
 * once paid, in both). Retirement also wants the orders made (Redis's seq) equal to the
 * database's orders and no reservation held in either.
 *
 * When the database is down the drain keeps its batch and retries with back-off; the
 * streams keep the orders meanwhile. The lag (entries not yet in the database: never
 * delivered plus delivered but unacknowledged) is exported on the metrics server.
 *
 * Threads: the thread that calls sk_drain_run drains (synchronous hiredis and database
 * calls, each with a timeout); the optional metrics server runs on a thread of its own
 * (metrics.h). */
#ifndef SK_DRAIN_DRAIN_H
#define SK_DRAIN_DRAIN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drain/db.h"
#include "redis/redis.h"

#define SK_DRAIN_GROUP "seckill-drain"
#define SK_DRAIN_FINISHED_AFTER_MS 60000 /* past ends_at, by Redis's clock: no new orders */

typedef struct {
    const char *store; /* the Redis store URL (redis/cluster.h; borrowed for the drain's life) */
    const sk_db_driver_t *db; /* where the orders go ... */
    const char *db_url; /* ... (borrowed for the drain's life) */
    const char *consumer; /* this drain's name in the group (borrowed) */
    size_t batch_max; /* orders per database transaction */
    int replicas_ack; /* replicas that must have an entry before it is written (0: none) */
    int replicas_timeout_ms; /* how long WAIT waits for them */
    int64_t retention_ms; /* a retired sale's holders and stream expire after this (0: kept) */
    const char *metrics_host; /* NULL: no metrics server */
    int metrics_port;
} sk_drain_config_t;

typedef struct sk_drain sk_drain_t;

/** Creates a drain (and starts its metrics server when configured); it connects in
 *  sk_drain_run. Returns NULL with one clear line in err. */
sk_drain_t *sk_drain_new(const sk_drain_config_t *cfg, char *err, size_t err_size);

/** Drains until *stop becomes non-zero (set by a signal handler), then returns 0. A
 *  batch not yet committed when asked to stop stays pending in the streams. */
int sk_drain_run(sk_drain_t *d, const volatile sig_atomic_t *stop);

/** Stops the metrics server, closes the connections and frees. */
void sk_drain_free(sk_drain_t *d);

/** Whether a sale's stream gets no new entries: no reservation is pending (held 0),
 *  and it sold every unit or Redis's clock (the clock the purchase script decides the
 *  window by; -1 when unknown) is SK_DRAIN_FINISHED_AFTER_MS past ends_at. (A refund
 *  may still come: the lag is watched.)
 *  A finished stream that is drained is no longer read for new entries, but its group's
 *  lag is still watched: an entry that arrives anyway makes it read again. */
bool sk_drain_stream_finished(int64_t sold, int64_t held, int64_t stock, int64_t ends_at, int64_t redis_now_ms);

/** A stream entry id "<ms>-<seq>". */
typedef struct {
    uint64_t ms, seq;
} sk_drain_id_t;

/** Parses an entry id (a bare "<ms>" is "<ms>-0"). Returns 0 or -EINVAL. */
int sk_drain_id_parse(const char *s, size_t len, sk_drain_id_t *id);

/** What one consumer group still needs of a stream: its smallest pending entry when it
 *  has pending entries, else everything after the last entry delivered to it. */
typedef struct {
    int64_t pending;
    sk_drain_id_t min_pending; /* valid when pending > 0 */
    sk_drain_id_t last_delivered;
} sk_drain_group_need_t;

/** The XTRIM MINID threshold for a stream read by these groups: the oldest entry any of
 *  them still needs (entries below it are acknowledged by every group). Returns false
 *  when nothing may be trimmed (no group: nobody read anything yet). */
bool sk_drain_trim_point(const sk_drain_group_need_t *groups, size_t n, sk_drain_id_t *minid);

/** With replicas_ack: whether a primary's replicas have the entries the drain read from
 *  it. `claim` is the reply to an XCLAIM (JUSTID) of entry `id` to the drain itself, sent
 *  after the reads, and `wait` the reply to the WAIT that followed it. WAIT counts the
 *  replicas that have this connection's last write: only a claim that claimed `id` was
 *  one (and it follows the entries); a claim that claimed nothing (a primary that lacks
 *  the entry: the map changed since the read, a failover) wrote nothing, and its WAIT
 *  proves nothing about the entries. */
bool sk_drain_replicas_confirm(const redisReply *claim, const redisReply *wait, const char *id, int need);

/** Whether a sale may be retired: over by Redis's clock, every entry in the database
 *  and acknowledged (lag and pending 0), no reservation pending (held 0 in both), and
 *  the counts agree: orders made, and units sold (Redis's) against units of confirmed
 *  orders (the database's), all known. */
bool sk_drain_retire_due(int64_t ends_at, int64_t redis_now_ms, int64_t lag, int64_t pending,
                         const sk_db_counts_t *redis, const sk_db_counts_t *db);

#endif
