/* The drain's batch: stream entries in, database rows and XACK commands out. */
#include "drain/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis.h"
#include "util/common.h"

void sk_drain_batch_init(sk_drain_batch_t *b, size_t cap)
{
    memset(b, 0, sizeof(*b));
    b->cap = cap ? cap : 1;
    b->rows = sk_xmalloc(b->cap * sizeof(*b->rows));
}

void sk_drain_batch_free(sk_drain_batch_t *b)
{
    free(b->rows);
    memset(b, 0, sizeof(*b));
}

size_t sk_drain_batch_add(sk_drain_batch_t *b, const char *sale_id, const char *key, const redisReply *entries,
                          char *last_id, size_t last_cap)
{
    size_t before = b->n;
    /* Everything delivered is taken: an entry read but dropped here would stay pending
     * until a restart or a claim. */
    for (size_t k = 0; k < entries->elements; k++) {
        const redisReply *e = entries->element[k];
        if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 && e->element[0]->type == REDIS_REPLY_STRING && last_id)
            snprintf(last_id, last_cap, "%s", e->element[0]->str);
        /* Check all of the entry's orders first: a malformed entry is left pending as a
         * whole, and counted. */
        sk_redis_entry_t en, check;
        sk_redis_order_t o;
        int rc = sk_redis_entry_parse(e, &en);
        check = en;
        while (rc == 0 && (rc = sk_redis_entry_next(&check, &o)) == 1)
            rc = 0;
        if (rc < 0) {
            b->malformed++;
            sk_error("drain: malformed entry in %s; it stays pending", key);
            continue;
        }
        /* The order lifecycle (reservations, quantities above one, transitions, the
         * trail) is not carried into the database by this drain yet: such entries stay
         * pending in the stream, nothing of them is written (never a reservation as a
         * confirmed order), and a drain that carries them reads them from there. */
        if (en.kind != SK_REDIS_ENTRY_ORDERS || en.pay_by > 0 || en.quantities) {
            if (b->held_back++ == 0)
                sk_warn("drain: %s holds order lifecycle entries (reservations, quantities, transitions, the trail); "
                        "this drain does not carry them yet: they stay pending in the stream",
                        key);
            continue;
        }
        while (sk_redis_entry_next(&en, &o) == 1) {
            if (b->n == b->cap) {
                b->cap *= 2;
                b->rows = sk_xrealloc(b->rows, b->cap * sizeof(*b->rows));
            }
            sk_drain_row_t *x = &b->rows[b->n++];
            x->sale_id = sale_id;
            x->key = key;
            x->first_of_entry = o.seq == en.first_seq;
            snprintf(x->entry_id, sizeof(x->entry_id), "%s", e->element[0]->str);
            /* The id buyers were given (sk_order_id): sale, dash, seq padded to 10 digits. */
            snprintf(x->order_id, sizeof(x->order_id), "%s-%010llu", sale_id, (unsigned long long)o.seq);
            memcpy(x->user, o.user, o.user_len);
            x->user[o.user_len] = '\0';
            memcpy(x->request, o.request, o.request_len);
            x->request[o.request_len] = '\0';
            x->seq = (int64_t)o.seq;
            x->created_at = o.created_at;
        }
    }
    return b->n - before;
}

sk_db_order_t *sk_drain_batch_orders(const sk_drain_batch_t *b)
{
    sk_db_order_t *o = sk_xmalloc((b->n ? b->n : 1) * sizeof(*o));
    for (size_t i = 0; i < b->n; i++) {
        const sk_drain_row_t *x = &b->rows[i];
        o[i] = (sk_db_order_t){x->order_id, x->sale_id, x->user, x->request, x->seq, x->created_at};
    }
    return o;
}

size_t sk_drain_batch_acks(const sk_drain_batch_t *b, const char *group,
                           void (*fn)(void *arg, int argc, const char **argv, const size_t *lens), void *arg)
{
    /* One XACK per stream. A read covers few streams, so finding a row's stream among
     * those seen is cheap. */
    size_t n_keys = 0, cap_keys = 8;
    const char **keys = sk_xmalloc(cap_keys * sizeof(*keys));
    for (size_t i = 0; i < b->n; i++) {
        size_t k = 0;
        while (k < n_keys && keys[k] != b->rows[i].key)
            k++;
        if (k == n_keys) {
            if (n_keys == cap_keys)
                keys = sk_xrealloc(keys, (cap_keys *= 2) * sizeof(*keys));
            keys[n_keys++] = b->rows[i].key;
        }
    }
    for (size_t k = 0; k < n_keys; k++) {
        size_t cap = 3, argc = 0;
        for (size_t j = 0; j < b->n; j++)
            cap += b->rows[j].key == keys[k] && b->rows[j].first_of_entry;
        const char **argv = sk_xmalloc(cap * sizeof(*argv));
        size_t *lens = sk_xmalloc(cap * sizeof(*lens));
        argv[argc++] = "XACK";
        argv[argc++] = keys[k];
        argv[argc++] = group;
        for (size_t j = 0; j < b->n; j++)
            if (b->rows[j].key == keys[k] && b->rows[j].first_of_entry)
                argv[argc++] = b->rows[j].entry_id;
        for (size_t a = 0; a < argc; a++)
            lens[a] = strlen(argv[a]);
        fn(arg, (int)argc, argv, lens);
        free(argv);
        free(lens);
    }
    free(keys);
    return n_keys;
}
