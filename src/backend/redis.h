/* The Redis backend: every node's ledger thread decides purchases with a Lua script run
 * per batch in Redis (src/backend/lua/buy.lua): repeated request, window, per-user limit,
 * stock, decrement, holder record and XADD of the order to the sale's stream, all in one
 * atomic step that Redis (AOF appendfsync always) makes durable before it replies. Sales
 * live in Redis too and every node caches them; `seckill drain` moves the order streams
 * into the system of record (docs/cluster.md). */
#ifndef SK_BACKEND_REDIS_H
#define SK_BACKEND_REDIS_H

#include <stddef.h>

#include "engine/backend.h"
#include "redis/redis.h"

/** Creates the Redis backend for `url`. The ledger thread batches up to max_batch
 *  purchases per Lua call (0: 4096). Returns NULL with one clear line in err when the
 *  URL is invalid; connecting happens in load. The engine owns the result. */
sk_backend_t *sk_backend_redis_new(const char *url, size_t max_batch, char *err, size_t err_size);

#endif
