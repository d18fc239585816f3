/* The drain: moves confirmed orders from the Redis order streams into the database, the
 * cluster's system of record (db.h).
 *
 * One consumer group ("seckill-drain") reads every sale's stream (sales are discovered
 * from the sales index). A batch of entries is written in one database transaction and
 * only after its COMMIT are the entries XACKed. So a crash at any point loses nothing
 * (unacknowledged entries stay in the group's pending list and are read again) and
 * duplicates nothing (a batch written twice inserts each order once). On start, and
 * after every reconnect to Redis, the drain first re-reads its own pending entries;
 * entries left pending by a consumer that is gone are claimed after a minute
 * (XAUTOCLAIM).
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
    sk_redis_addr_t redis; /* where the order streams are */
    const sk_db_driver_t *db; /* where the orders go ... */
    const char *db_url; /* ... (borrowed for the drain's life) */
    const char *consumer; /* this drain's name in the group (borrowed) */
    size_t batch_max; /* orders per database transaction */
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

/** Whether a sale's stream gets no new entries: it holds as many entries as the sale
 *  has units (each entry holds at least one order), or Redis's clock (the clock the
 *  purchase script decides the window by; -1 when unknown) is SK_DRAIN_FINISHED_AFTER_MS
 *  past ends_at.
 *  A finished stream that is drained is no longer read for new entries, but its length
 *  is still watched: an entry that arrives anyway makes it read again. */
bool sk_drain_stream_finished(int64_t length, int64_t stock, int64_t ends_at, int64_t redis_now_ms);

#endif
