/* The drain's batch: stream entries in, database rows and XACK commands out. */
#include "drain/batch.h"

#include <jansson.h>
#include <stdint.h>
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

void sk_drain_batch_clear(sk_drain_batch_t *b)
{
    for (size_t i = 0; i < b->n_events; i++) {
        free(b->events[i].params);
        free(b->events[i].before);
        free(b->events[i].after);
    }
    b->n = b->n_moves = b->n_events = b->n_entries = 0;
}

void sk_drain_batch_free(sk_drain_batch_t *b)
{
    sk_drain_batch_clear(b);
    free(b->rows);
    free(b->moves);
    free(b->events);
    free(b->entries);
    memset(b, 0, sizeof(*b));
}

/* Room for one more element of an array that grows by doubling. */
#define GROW(arr, len, cap)                                                                                            \
    do {                                                                                                               \
        if ((len) == (cap)) {                                                                                          \
            (cap) = (cap) ? (cap)*2 : 16;                                                                              \
            (arr) = sk_xrealloc((arr), (cap) * sizeof(*(arr)));                                                        \
        }                                                                                                              \
    } while (0)

/* A member's string into dst (NUL-terminated); false when absent, not a string or too long. */
static bool json_str(json_t *o, const char *key, char *dst, size_t cap)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return false;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return true;
}

/* A member that is an object, as compact JSON text (malloc'ed); NULL when it is not. */
static char *json_obj(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_object(v) ? json_dumps(v, JSON_COMPACT) : NULL;
}

/* A c entry's trail entry (buy.lua's JSON: seq, action, actor, request_id, at, params,
 * before, after) into ev; false when it does not hold all of them. */
static bool parse_event(const sk_redis_entry_t *en, sk_drain_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    json_t *o = json_loadb(en->json, en->json_len, 0, NULL);
    json_t *seq = json_object_get(o, "seq"), *at = json_object_get(o, "at");
    bool ok = json_is_object(o) && json_is_integer(seq) && json_integer_value(seq) >= 1 && json_is_integer(at) &&
              json_str(o, "action", ev->kind, sizeof(ev->kind)) && ev->kind[0] &&
              json_str(o, "actor", ev->actor, sizeof(ev->actor)) &&
              json_str(o, "request_id", ev->request, sizeof(ev->request));
    if (ok) {
        ev->seq = json_integer_value(seq);
        ev->at = json_integer_value(at);
        ev->params = json_obj(o, "params");
        ev->before = json_obj(o, "before");
        ev->after = json_obj(o, "after");
        ok = ev->params && ev->before && ev->after;
    }
    json_decref(o);
    if (!ok) {
        free(ev->params);
        free(ev->before);
        free(ev->after);
    }
    return ok;
}

/* Checks that every item of an o or x entry parses (a malformed entry is left out whole). */
static bool entry_valid(const sk_redis_entry_t *en)
{
    sk_redis_entry_t check = *en;
    sk_redis_order_t o;
    int rc;
    while ((rc = sk_redis_entry_next(&check, &o)) == 1)
        ;
    return rc == 0;
}

size_t sk_drain_batch_add(sk_drain_batch_t *b, const char *sale_id, const char *key, const redisReply *entries,
                          char *last_id, size_t last_cap)
{
    size_t before = sk_drain_batch_size(b);
    /* Everything delivered is taken: an entry read but dropped here would stay pending
     * until a restart or a claim. */
    for (size_t k = 0; k < entries->elements; k++) {
        const redisReply *e = entries->element[k];
        if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 && e->element[0]->type == REDIS_REPLY_STRING && last_id)
            snprintf(last_id, last_cap, "%s", e->element[0]->str);
        sk_redis_entry_t en;
        sk_redis_order_t o;
        sk_drain_event_t ev;
        bool ok = sk_redis_entry_parse(e, &en) == 0 && e->element[0]->len < SK_DRAIN_ENTRY_ID_MAX;
        if (ok)
            ok = en.kind == SK_REDIS_ENTRY_CONTROL ? parse_event(&en, &ev) : entry_valid(&en);
        if (!ok) {
            b->malformed++;
            sk_error("drain: malformed entry in %s; it stays pending", key);
            continue;
        }
        GROW(b->entries, b->n_entries, b->cap_entries);
        size_t ei = b->n_entries++;
        sk_drain_entry_t *ent = &b->entries[ei];
        ent->sale_id = sale_id;
        ent->key = key;
        ent->ack = true;
        memcpy(ent->id, e->element[0]->str, e->element[0]->len + 1);
        if (en.kind == SK_REDIS_ENTRY_CONTROL) {
            GROW(b->events, b->n_events, b->cap_events);
            ev.sale_id = sale_id;
            ev.entry = ei;
            b->events[b->n_events++] = ev;
            continue;
        }
        while (sk_redis_entry_next(&en, &o) == 1) {
            if (en.kind == SK_REDIS_ENTRY_TRANSITIONS) {
                GROW(b->moves, b->n_moves, b->cap_moves);
                sk_drain_move_t *m = &b->moves[b->n_moves++];
                m->sale_id = sale_id;
                m->entry = ei;
                m->seq = (int64_t)o.seq;
                m->at = o.created_at;
                m->event = en.event;
                memcpy(m->arg, o.request, o.request_len);
                m->arg[o.request_len] = '\0';
                continue;
            }
            GROW(b->rows, b->n, b->cap);
            sk_drain_row_t *x = &b->rows[b->n++];
            x->sale_id = sale_id;
            x->entry = ei;
            /* The id buyers were given (sk_order_id): sale, dash, seq padded to 10 digits. */
            snprintf(x->order_id, sizeof(x->order_id), "%s-%010llu", sale_id, (unsigned long long)o.seq);
            memcpy(x->user, o.user, o.user_len);
            x->user[o.user_len] = '\0';
            memcpy(x->request, o.request, o.request_len);
            x->request[o.request_len] = '\0';
            x->seq = (int64_t)o.seq;
            x->created_at = o.created_at;
            x->quantity = o.quantity;
            x->pay_by = o.pay_by;
        }
    }
    return sk_drain_batch_size(b) - before;
}

sk_db_order_t *sk_drain_batch_orders(const sk_drain_batch_t *b)
{
    sk_db_order_t *o = sk_xmalloc((b->n ? b->n : 1) * sizeof(*o));
    for (size_t i = 0; i < b->n; i++) {
        const sk_drain_row_t *x = &b->rows[i];
        o[i] = (sk_db_order_t){.order_id = x->order_id,
                               .sale_id = x->sale_id,
                               .user_id = x->user,
                               .request_id = x->request,
                               .seq = x->seq,
                               .created_at = x->created_at,
                               .quantity = x->quantity,
                               .state = x->pay_by > 0 ? SK_DB_RESERVED : SK_DB_CONFIRMED,
                               .pay_by = x->pay_by};
    }
    return o;
}

/* The state an event leads to. */
static const char *event_state(sk_order_event_t ev)
{
    switch (ev) {
    case SK_EV_PAY:
        return "confirmed";
    case SK_EV_CANCEL:
        return "cancelled";
    case SK_EV_EXPIRE:
        return "expired";
    default:
        return "refunded";
    }
}

/* Moves sorted by order (sale pointer, seq), stream order within one order. */
static int move_cmp(const void *pa, const void *pb)
{
    const sk_drain_move_t *a = *(const sk_drain_move_t *const *)pa, *b = *(const sk_drain_move_t *const *)pb;
    if (a->sale_id != b->sale_id)
        return (uintptr_t)a->sale_id < (uintptr_t)b->sale_id ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return a < b ? -1 : a > b; /* the batch's order is the stream's */
}

sk_db_transition_t *sk_drain_batch_transitions(const sk_drain_batch_t *b, size_t *n)
{
    const sk_drain_move_t **by = sk_xmalloc((b->n_moves ? b->n_moves : 1) * sizeof(*by));
    for (size_t i = 0; i < b->n_moves; i++)
        by[i] = &b->moves[i];
    qsort(by, b->n_moves, sizeof(*by), move_cmp);
    sk_db_transition_t *t = sk_xmalloc((b->n_moves ? b->n_moves : 1) * sizeof(*t));
    size_t k = 0;
    for (size_t i = 0; i < b->n_moves;) {
        sk_db_transition_t *x = &t[k++];
        *x = (sk_db_transition_t){.sale_id = by[i]->sale_id, .seq = by[i]->seq, .payment_id = ""};
        /* From a reservation, in stream order: what the database will make of them. */
        const char *st = SK_DB_RESERVED;
        for (; i < b->n_moves && by[i]->sale_id == x->sale_id && by[i]->seq == x->seq; i++) {
            const sk_drain_move_t *m = by[i];
            const char *to = event_state(m->event);
            if (!sk_db_state_moves(st, to))
                continue; /* not a move the rules make; the database would refuse it too */
            st = to;
            if (m->event == SK_EV_PAY) {
                x->paid_at = m->at;
                x->payment_id = m->arg;
            } else {
                x->closed_at = m->at;
            }
        }
        x->state = st;
    }
    free(by);
    *n = k;
    return t;
}

size_t sk_drain_batch_unfound(sk_drain_batch_t *b, const sk_db_transition_t *t, size_t n)
{
    size_t missing = 0, kept = 0;
    for (size_t i = 0; i < n; i++)
        missing += !t[i].found;
    if (missing == 0)
        return 0;
    for (size_t j = 0; j < b->n_moves; j++) {
        const sk_drain_move_t *m = &b->moves[j];
        for (size_t i = 0; i < n; i++) {
            if (!t[i].found && t[i].sale_id == m->sale_id && t[i].seq == m->seq) {
                kept += b->entries[m->entry].ack;
                b->entries[m->entry].ack = false;
                break;
            }
        }
    }
    return kept;
}

sk_db_event_t *sk_drain_batch_events(const sk_drain_batch_t *b)
{
    sk_db_event_t *e = sk_xmalloc((b->n_events ? b->n_events : 1) * sizeof(*e));
    for (size_t i = 0; i < b->n_events; i++) {
        const sk_drain_event_t *x = &b->events[i];
        e[i] = (sk_db_event_t){.sale_id = x->sale_id,
                               .seq = x->seq,
                               .kind = x->kind,
                               .actor = x->actor,
                               .request_id = x->request,
                               .decided_at = x->at,
                               .params = x->params,
                               .before = x->before,
                               .after = x->after};
    }
    return e;
}

size_t sk_drain_batch_drop(sk_drain_batch_t *b, bool (*drop)(void *arg, const char *key), void *arg)
{
    if (b->n_entries == 0)
        return 0;
    /* Entries keep their order; where[i] is entry i's new index (SIZE_MAX: left out). */
    size_t *where = sk_xmalloc(b->n_entries * sizeof(*where));
    size_t kept = 0;
    for (size_t i = 0; i < b->n_entries; i++) {
        if (drop(arg, b->entries[i].key)) {
            where[i] = SIZE_MAX;
        } else {
            where[i] = kept;
            b->entries[kept++] = b->entries[i];
        }
    }
    size_t dropped = b->n_entries - kept;
    b->n_entries = kept;
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++) {
        size_t e = where[b->rows[i].entry];
        if (e != SIZE_MAX) {
            b->rows[n] = b->rows[i];
            b->rows[n++].entry = e;
        }
    }
    b->n = n;
    n = 0;
    for (size_t i = 0; i < b->n_moves; i++) {
        size_t e = where[b->moves[i].entry];
        if (e != SIZE_MAX) {
            b->moves[n] = b->moves[i];
            b->moves[n++].entry = e;
        }
    }
    b->n_moves = n;
    n = 0;
    for (size_t i = 0; i < b->n_events; i++) {
        sk_drain_event_t *e = &b->events[i];
        if (where[e->entry] == SIZE_MAX) {
            free(e->params);
            free(e->before);
            free(e->after);
            continue;
        }
        size_t at = where[e->entry];
        b->events[n] = *e;
        b->events[n++].entry = at;
    }
    b->n_events = n;
    free(where);
    return dropped;
}

size_t sk_drain_batch_acks(const sk_drain_batch_t *b, const char *group,
                           void (*fn)(void *arg, int argc, const char **argv, const size_t *lens), void *arg)
{
    /* One XACK per stream. A read covers few streams, so finding an entry's stream among
     * those seen is cheap. */
    size_t n_keys = 0, cap_keys = 8;
    const char **keys = sk_xmalloc(cap_keys * sizeof(*keys));
    for (size_t i = 0; i < b->n_entries; i++) {
        if (!b->entries[i].ack)
            continue;
        size_t k = 0;
        while (k < n_keys && keys[k] != b->entries[i].key)
            k++;
        if (k == n_keys) {
            if (n_keys == cap_keys)
                keys = sk_xrealloc(keys, (cap_keys *= 2) * sizeof(*keys));
            keys[n_keys++] = b->entries[i].key;
        }
    }
    for (size_t k = 0; k < n_keys; k++) {
        size_t cap = 3, argc = 0;
        for (size_t j = 0; j < b->n_entries; j++)
            cap += b->entries[j].key == keys[k] && b->entries[j].ack;
        const char **argv = sk_xmalloc(cap * sizeof(*argv));
        size_t *lens = sk_xmalloc(cap * sizeof(*lens));
        argv[argc++] = "XACK";
        argv[argc++] = keys[k];
        argv[argc++] = group;
        for (size_t j = 0; j < b->n_entries; j++)
            if (b->entries[j].key == keys[k] && b->entries[j].ack)
                argv[argc++] = b->entries[j].id;
        for (size_t a = 0; a < argc; a++)
            lens[a] = strlen(argv[a]);
        fn(arg, (int)argc, argv, lens);
        free(argv);
        free(lens);
    }
    free(keys);
    return n_keys;
}
