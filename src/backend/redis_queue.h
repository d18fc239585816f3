/* The waiting room on the Redis store: what src/backend/lua/queue.lua is asked and what
 * its answers mean. The Redis backend (redis.c) sends the calls down the connection of
 * the sale's primary: a join or a question (SK_OP_QUEUE) as one call each, and one call
 * per queued sale every tick, which starts the queue and admits at its rate. The script
 * decides everything from Redis's clock and the sale's state, so any number of nodes
 * may call it: they give the same places and admit no one twice.
 *
 * Ownership: the argv built points into the caller's buffers (sk_rqueue_args_t) and the
 * op's user id; nothing here allocates. */
#ifndef SK_BACKEND_REDIS_QUEUE_H
#define SK_BACKEND_REDIS_QUEUE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "redis/redis.h"

#define SK_RQUEUE_KEYS 4
#define SK_RQUEUE_ARGC (3 + SK_RQUEUE_KEYS + 3)

/** The buffers of one call's arguments. */
typedef struct {
    const char *argv[SK_RQUEUE_ARGC];
    size_t lens[SK_RQUEUE_ARGC];
    char keys[SK_RQUEUE_KEYS][SK_REDIS_KEY_MAX + 1];
    char nkeys[4], seed[24];
} sk_rqueue_args_t;

/** What one call answered. */
typedef struct {
    int status; /* 0; -ENOENT: not in the queue (a question); -EINVAL: the sale has no queue */
    int64_t now; /* Redis's clock */
    uint64_t len, head; /* places handed out; places admitted */
    uint64_t admitted; /* admitted by this call */
    bool started;
    sk_queue_place_t place; /* the op's user (status 0, a question or a join) */
} sk_rqueue_reply_t;

/** Fills a's argv for the script of sale s, EVALSHA sha (or EVAL text when sha is NULL):
 *  op NULL is the tick; else op->user_id asks, or joins with op->join. Returns argc. */
int sk_rqueue_args(sk_rqueue_args_t *a, const char *sha, const char *text, size_t text_len, const sk_sale_t *s,
                   const sk_op_t *op);

/** Parses a reply of queue.lua. Returns 0, or -EIO (an error or a reply of another shape). */
int sk_rqueue_parse(const redisReply *rep, sk_rqueue_reply_t *out);

#endif
