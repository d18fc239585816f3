/* The calls of queue.lua and their answers (redis_queue.h). */
#include "backend/redis_queue.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "util/common.h"

static const char *const queue_keys[SK_RQUEUE_KEYS] = {"sale", "queue", "admitted", "qstate"};

int sk_rqueue_args(sk_rqueue_args_t *a, const char *sha, const char *text, size_t text_len, const sk_sale_t *s,
                   const sk_op_t *op)
{
    int k = 0;
#define ARG(p, l) (a->argv[k] = (p), a->lens[k] = (l), k++)
    if (sha) {
        ARG("EVALSHA", 7);
        ARG(sha, 40);
    } else {
        ARG("EVAL", 4);
        ARG(text, text_len);
    }
    ARG(a->nkeys, (size_t)snprintf(a->nkeys, sizeof(a->nkeys), "%d", SK_RQUEUE_KEYS));
    for (int i = 0; i < SK_RQUEUE_KEYS; i++)
        ARG(a->keys[i], sk_redis_key(a->keys[i], s->id, s->id_len, queue_keys[i]));
    if (!op) {
        ARG("t", 1);
        ARG("", 0);
    } else {
        ARG(op->join ? "j" : "a", 1);
        ARG(op->user_id, op->user_len);
    }
    /* The shuffle's seed, used only by the call that starts a random queue (which one
     * is decided in Redis; its seed is kept there): unpredictable, in [1, 2^31 - 2]. */
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (uint32_t)sk_now_ms() ^ (uint32_t)(uintptr_t)a;
    ARG(a->seed, (size_t)snprintf(a->seed, sizeof(a->seed), "%u", (unsigned)(r % 2147483646u + 1u)));
#undef ARG
    return k;
}

int sk_rqueue_parse(const redisReply *rep, sk_rqueue_reply_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 11)
        return -EIO;
    long long v[11];
    for (size_t i = 0; i < 11; i++) {
        if (rep->element[i]->type != REDIS_REPLY_INTEGER || rep->element[i]->integer < 0)
            return -EIO;
        v[i] = rep->element[i]->integer;
    }
    /* { status, n, head, now, admitted, started, position, ahead, admitted_at,
     *   expires_at, joined } */
    if (v[0] > 2 || v[2] > v[1] || v[6] > v[1])
        return -EIO;
    out->status = v[0] == 0 ? 0 : v[0] == 1 ? -ENOENT : -EINVAL;
    out->len = (uint64_t)v[1];
    out->head = (uint64_t)v[2];
    out->now = v[3];
    out->admitted = (uint64_t)v[4];
    out->started = v[5] != 0;
    out->place = (sk_queue_place_t){.position = (uint64_t)v[6],
                                    .ahead = (uint64_t)v[7],
                                    .admitted_at = v[8],
                                    .expires_at = v[9],
                                    .joined = v[10] != 0};
    return 0;
}
