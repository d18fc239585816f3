/* What the Redis backend (src/backend/redis.c) and the drain (src/drain/) share about
 * Redis: URLs, key names, connecting, and parsing what the Lua scripts store
 * (src/backend/lua/). docs/cluster.md tells the whole story.
 *
 * Keys (the {sale} hash tag keeps a sale's keys in one Redis Cluster slot; the layouts
 * are written down in src/backend/lua/buy.lua):
 *   sk:sales              sorted set of sale ids by creation time (discovery only)
 *   sk:{<sale>}:sale      hash: id name stock starts_at ends_at per_user_limit
 *                         created_at sold held seq payment_window_ms max_quantity
 *                         paused closed pv v [retired_at] [queue queue_opens_at
 *                         admit_per_second admission_ttl_ms pow_bits]
 *   sk:{<sale>}:holders   hash: "<user>" -> "count\tseq\treq\tcreated_at\tunits" (the
 *                         first order, the units held), "<user>\t<i>" -> the i-th
 *                         order, "<user>\n<req>" -> i
 *   sk:{<sale>}:orders    stream, in decision order: new orders ("<first seq>-0", fields
 *                         n t u r [q] [p]), transitions (k=x: e t s a) and controls
 *                         (k=c: j, the trail entry)
 *   sk:{<sale>}:o         hash seq -> the order's record (state, quantity, times)
 *   sk:{<sale>}:due       sorted set of pending reservations by pay_by
 *   sk:{<sale>}:log       list of trail entries (JSON); sk:{<sale>}:ctl request_id -> entry
 *   sk:{<sale>}:queue     sorted set: the waiting room, member user, score its place;
 *   sk:{<sale>}:admitted  hash user -> admitted_at; sk:{<sale>}:qstate its head and
 *                         credit (the layouts are in src/backend/lua/queue.lua) */
#ifndef SK_REDIS_REDIS_H
#define SK_REDIS_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/control.h"
#include "engine/engine.h"

#define SK_REDIS_SALES_KEY "sk:sales"
#define SK_REDIS_KEY_MAX (SK_ID_MAX + 32)
#define SK_REDIS_ENTRY_MAX 1000 /* orders in one stream entry (buy.lua writes at most this) */

/** Where a Redis server is: parsed from redis://[[user]:password@]host[:port][/db]. */
typedef struct {
    char host[256];
    int port; /* 6379 unless given */
    int db; /* 0 unless given */
    char user[128]; /* "" : none (AUTH password only, or no AUTH) */
    char password[256]; /* "" : no AUTH */
} sk_redis_addr_t;

/** Parses a redis:// URL (user and password as in the URL, without %-escapes). Returns
 *  0, or -EINVAL with one clear line in err (which never repeats the password). */
int sk_redis_parse_url(const char *url, sk_redis_addr_t *addr, char *err, size_t err_size);

/** Copies the URL for logs and messages into out, with any password replaced by ***. */
void sk_redis_redact(const char *url, char *out, size_t cap);

/** Reads an integer reply (or a bulk string holding one) within [min, max]. */
bool sk_redis_reply_i64(const redisReply *r, int64_t min, int64_t max, int64_t *out);

/** Writes "sk:{<sale>}:<suffix>" into dst (SK_REDIS_KEY_MAX + 1 bytes); returns length. */
size_t sk_redis_key(char *dst, const char *sale, size_t sale_len, const char *suffix);

/** Connects synchronously (with a timeout for connect and every command),
 *  authenticates and selects the database. Returns a context owned by the caller (redisFree), or NULL with one
 *  clear line in err. */
redisContext *sk_redis_connect(const sk_redis_addr_t *addr, int timeout_ms, char *err, size_t err_size);

/** A sale as stored in its hash; strings point into the reply it was parsed from. */
typedef struct {
    const char *id, *name;
    size_t id_len, name_len;
    int64_t stock, starts_at, ends_at, per_user_limit, created_at, sold;
    /* Absent in records written before the lifecycle: 0, 0, sold, 0, 1, 0, 0, 0, 0. */
    int64_t held, seq, payment_window_ms, max_quantity, pv, v;
    bool paused, closed, retired;
    /* The waiting room, set at creation (absent: off). */
    int64_t queue, queue_opens_at, admit_per_second, admission_ttl_ms, pow_bits;
} sk_redis_sale_t;

/** Parses an HGETALL reply of a sale hash. Returns 0, -ENOENT (empty: no such sale) or
 *  -EINVAL (a field is missing or out of range). */
int sk_redis_sale_parse(const redisReply *r, sk_redis_sale_t *out);

/** One order of a sale's stream (an o entry), or one transition (an x entry: seq,
 *  created_at = when, request = its argument: the payment id or who cancelled);
 *  strings point into the reply. */
typedef struct {
    uint64_t seq;
    const char *user, *request;
    size_t user_len, request_len;
    int64_t created_at;
    int64_t pay_by; /* 0: bought without a payment window */
    uint32_t quantity;
} sk_redis_order_t;

typedef enum {
    SK_REDIS_ENTRY_ORDERS = 0, /* o: new orders */
    SK_REDIS_ENTRY_TRANSITIONS, /* x: orders moved by one kind of event */
    SK_REDIS_ENTRY_CONTROL, /* c: one control (the trail entry's JSON in json/json_len) */
} sk_redis_entry_kind_t;

/** One entry of a sale's order stream. o: the orders one batch made, seqs first_seq ..
 *  first_seq + n - 1 (fields n, t, u = user ids and r = request ids, each list joined by
 *  "\n", q = quantities when one is above 1, p = pay_by). x: n transitions of kind
 *  `event` at created_at (s = seqs, a = arguments). c: one trail entry. Strings point
 *  into the reply; the cursor is for next(). */
typedef struct {
    sk_redis_entry_kind_t kind;
    uint64_t first_seq; /* o: the first order's; x, c: orders made before it */
    size_t n;
    int64_t created_at, pay_by;
    sk_order_event_t event; /* x */
    const char *users, *requests, *quantities; /* x: seqs in users, arguments in requests */
    size_t users_len, requests_len, quantities_len;
    const char *json; /* c */
    size_t json_len;
    size_t i, upos, rpos, qpos; /* cursor */
} sk_redis_entry_t;

/** Parses one stream entry ([id, [field, value, ...]]). Returns 0 or -EINVAL. */
int sk_redis_entry_parse(const redisReply *entry, sk_redis_entry_t *out);
/** The entry's next order (o) or transition (x) in order: 1 with *o filled, 0 after the
 *  last, -EINVAL when the lists do not hold n valid items each (or for a c entry). */
int sk_redis_entry_next(sk_redis_entry_t *e, sk_redis_order_t *o);

/** Parses a trail entry as buy.lua writes it (the JSON of sk_trail_entry_json). Returns
 *  0 or -EINVAL. */
int sk_redis_trail_parse(const char *json, size_t len, sk_trail_entry_t *out);

#endif
