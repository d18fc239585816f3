/* The Redis backend: every node's ledger thread decides purchases with a Lua script run
 * per batch in Redis (src/backend/lua/buy.lua): repeated request, window, per-user limit,
 * stock, decrement, holder record and XADD of the order to the sale's stream, all in one
 * atomic step that Redis (AOF appendfsync always) makes durable before it replies. Sales
 * live in Redis too and every node caches them; `seckill drain` moves the order streams
 * into the system of record (docs/cluster.md).
 *
 * The store is one Redis or a Redis Cluster (redis/cluster.h): with a cluster, each
 * sale's batch goes to the primary that serves the sale's slot, and with replicas_ack a
 * batch is answered only once that many replicas have it (WAIT). */
#ifndef SK_BACKEND_REDIS_H
#define SK_BACKEND_REDIS_H

#include <stddef.h>

#include "engine/backend.h"
#include "redis/redis.h"

typedef struct {
    const char *url; /* redis://[[USER]:PASSWORD@]HOST[:PORT][,HOST:PORT...][/DB] (borrowed) */
    size_t max_batch; /* purchases per Lua call (0: 4096) */
    int replicas_ack; /* replicas that must have a batch before it is answered (0: none) */
    int replicas_timeout_ms; /* how long WAIT waits for them (0: 1000) */
} sk_backend_redis_config_t;

/** Creates the Redis backend. Returns NULL with one clear line in err when the URL is
 *  invalid; connecting happens in load. The engine owns the result. */
sk_backend_t *sk_backend_redis_new(const sk_backend_redis_config_t *cfg, char *err, size_t err_size);

#endif
