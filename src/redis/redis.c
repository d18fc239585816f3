/* What the Redis backend and the drain share about Redis: URLs, keys, connecting, and
 * parsing the sale hashes and order stream entries that buy.lua writes. */
#include "redis/redis.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The URL for logs and messages: a password never appears in them. */
void sk_redis_redact(const char *url, char *out, size_t cap)
{
    const char *at = strchr(url, '@');
    if (at && strncmp(url, "redis://", 8) == 0)
        snprintf(out, cap, "redis://***@%s", at + 1);
    else
        snprintf(out, cap, "%s", url);
}

int sk_redis_parse_url(const char *url, sk_redis_addr_t *a, char *err, size_t err_size)
{
    static const char scheme[] = "redis://";
    memset(a, 0, sizeof(*a));
    a->port = 6379;
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        goto bad;
    const char *p = url + sizeof(scheme) - 1;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon || (size_t)(colon - p) >= sizeof(a->user) || (size_t)(at - colon - 1) >= sizeof(a->password) ||
            at == colon + 1)
            goto bad;
        memcpy(a->user, p, (size_t)(colon - p));
        a->user[colon - p] = '\0';
        memcpy(a->password, colon + 1, (size_t)(at - colon - 1));
        a->password[at - colon - 1] = '\0';
        p = at + 1;
    }
    const char *host_end;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (!host_end)
            goto bad;
        p++;
    } else {
        host_end = p + strcspn(p, ":/");
    }
    size_t hl = (size_t)(host_end - p);
    if (hl == 0 || hl >= sizeof(a->host))
        goto bad;
    memcpy(a->host, p, hl);
    a->host[hl] = '\0';
    p = host_end + (*host_end == ']');
    if (*p == ':') {
        const char *q = p + 1;
        size_t n = strcspn(q, "/");
        int64_t v;
        if (sk_parse_i64(q, n, 1, 65535, &v) < 0)
            goto bad;
        a->port = (int)v;
        p = q + n;
    }
    if (*p == '/' && p[1] != '\0') {
        int64_t v;
        if (sk_parse_i64(p + 1, strlen(p + 1), 0, 1000000, &v) < 0)
            goto bad;
        a->db = (int)v;
    } else if (*p == '/' && p[1] == '\0') {
        /* "redis://host:port/" is the default database */
    } else if (*p != '\0') {
        goto bad;
    }
    return 0;
bad:;
    char shown[512];
    sk_redis_redact(url, shown, sizeof(shown));
    snprintf(err, err_size, "the store URL must look like redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (got '%s')",
             shown);
    memset(a->password, 0, sizeof(a->password));
    return -EINVAL;
}

size_t sk_redis_key(char *dst, const char *sale, size_t sale_len, const char *suffix)
{
    size_t sl = strlen(suffix);
    memcpy(dst, "sk:{", 4);
    memcpy(dst + 4, sale, sale_len);
    dst[4 + sale_len] = '}';
    dst[5 + sale_len] = ':';
    memcpy(dst + 6 + sale_len, suffix, sl + 1);
    return 6 + sale_len + sl;
}

redisContext *sk_redis_connect(const sk_redis_addr_t *a, int timeout_ms, char *err, size_t err_size)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
    if (!c || c->err) {
        snprintf(err, err_size, "cannot connect to redis at %s:%d: %s", a->host, a->port,
                 c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (a->password[0]) {
        redisReply *r =
            a->user[0] ? redisCommand(c, "AUTH %s %s", a->user, a->password) : redisCommand(c, "AUTH %s", a->password);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (!ok) {
            snprintf(err, err_size, "redis at %s:%d: AUTH failed: %s", a->host, a->port, r ? r->str : c->errstr);
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (a->db) {
        redisReply *r = redisCommand(c, "SELECT %d", a->db);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (!ok) {
            snprintf(err, err_size, "redis at %s:%d: SELECT %d failed: %s", a->host, a->port, a->db,
                     r ? r->str : c->errstr);
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}

bool sk_redis_reply_i64(const redisReply *r, int64_t min, int64_t max, int64_t *out)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        if (r->integer < min || r->integer > max)
            return false;
        *out = r->integer;
        return true;
    }
    if (r->type != REDIS_REPLY_STRING)
        return false;
    return sk_parse_i64(r->str, r->len, min, max, out) == 0;
}

int sk_redis_sale_parse(const redisReply *r, sk_redis_sale_t *s)
{
    memset(s, 0, sizeof(*s));
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return -EINVAL;
    if (r->elements == 0)
        return -ENOENT;
    unsigned seen = 0;
    bool has_seq = false;
    s->max_quantity = 1;
    s->admit_per_second = SK_ADMIT_RATE_DEFAULT;
    s->admission_ttl_ms = SK_ADMISSION_TTL_DEFAULT;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return -EINVAL;
        const char *key = k->str;
        bool ok = true;
        if (strcmp(key, "id") == 0) {
            s->id = v->str;
            s->id_len = v->len;
            seen |= 1;
        } else if (strcmp(key, "name") == 0) {
            s->name = v->str;
            s->name_len = v->len;
            seen |= 2;
        } else if (strcmp(key, "stock") == 0) {
            ok = sk_redis_reply_i64(v, 0, SK_STOCK_MAX, &s->stock);
            seen |= 4;
        } else if (strcmp(key, "starts_at") == 0) {
            ok = sk_redis_reply_i64(v, 0, 253402300799999LL, &s->starts_at);
            seen |= 8;
        } else if (strcmp(key, "ends_at") == 0) {
            ok = sk_redis_reply_i64(v, 0, 253402300799999LL, &s->ends_at);
            seen |= 16;
        } else if (strcmp(key, "per_user_limit") == 0) {
            ok = sk_redis_reply_i64(v, 1, SK_LIMIT_MAX, &s->per_user_limit);
            seen |= 32;
        } else if (strcmp(key, "created_at") == 0) {
            ok = sk_redis_reply_i64(v, 0, INT64_MAX, &s->created_at);
            seen |= 64;
        } else if (strcmp(key, "sold") == 0) {
            ok = sk_redis_reply_i64(v, 0, SK_STOCK_MAX, &s->sold);
            seen |= 128;
        } else if (strcmp(key, "held") == 0) {
            ok = sk_redis_reply_i64(v, 0, SK_STOCK_MAX, &s->held);
        } else if (strcmp(key, "seq") == 0) {
            ok = sk_redis_reply_i64(v, 0, INT64_MAX, &s->seq);
            has_seq = true;
        } else if (strcmp(key, "payment_window_ms") == 0) {
            ok = sk_redis_reply_i64(v, 0, SK_WINDOW_MAX_MS, &s->payment_window_ms);
        } else if (strcmp(key, "max_quantity") == 0) {
            ok = sk_redis_reply_i64(v, 1, SK_LIMIT_MAX, &s->max_quantity);
        } else if (strcmp(key, "pv") == 0) {
            ok = sk_redis_reply_i64(v, 0, INT64_MAX, &s->pv);
        } else if (strcmp(key, "v") == 0) {
            ok = sk_redis_reply_i64(v, 0, INT64_MAX, &s->v);
        } else if (strcmp(key, "paused") == 0) {
            s->paused = v->len == 1 && v->str[0] == '1';
        } else if (strcmp(key, "closed") == 0) {
            s->closed = v->len == 1 && v->str[0] == '1';
        } else if (strcmp(key, "retired_at") == 0) {
            s->retired = true;
        } else if (strcmp(key, "queue") == 0) {
            ok = sk_redis_reply_i64(v, SK_QUEUE_OFF, SK_QUEUE_RANDOM, &s->queue);
        } else if (strcmp(key, "queue_opens_at") == 0) {
            ok = sk_redis_reply_i64(v, 0, 253402300799999LL, &s->queue_opens_at);
        } else if (strcmp(key, "admit_per_second") == 0) {
            ok = sk_redis_reply_i64(v, 1, SK_ADMIT_RATE_MAX, &s->admit_per_second);
        } else if (strcmp(key, "admission_ttl_ms") == 0) {
            ok = sk_redis_reply_i64(v, SK_ADMISSION_TTL_MIN, SK_ADMISSION_TTL_MAX, &s->admission_ttl_ms);
        } else if (strcmp(key, "pow_bits") == 0) {
            ok = sk_redis_reply_i64(v, 0, SK_SALE_POW_BITS_MAX, &s->pow_bits);
        }
        if (!ok)
            return -EINVAL;
    }
    if (!has_seq)
        s->seq = s->sold; /* before quantities, one order was one unit */
    if (seen != 255 || !sk_valid_sale_id(s->id, s->id_len) || s->name_len == 0 || s->name_len > SK_NAME_MAX ||
        s->ends_at <= s->starts_at || s->sold + s->held > s->stock || s->max_quantity > s->per_user_limit)
        return -EINVAL;
    return 0;
}

int sk_redis_entry_parse(const redisReply *entry, sk_redis_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2)
        return -EINVAL;
    const redisReply *id = entry->element[0], *f = entry->element[1];
    if (id->type != REDIS_REPLY_STRING || f->type != REDIS_REPLY_ARRAY || f->elements % 2)
        return -EINVAL;
    /* The id is "<first seq>-0" (o), "<orders made>-<n>" (x, c). */
    const char *dash = memchr(id->str, '-', id->len);
    int64_t seq, n;
    if (!dash || sk_parse_i64(id->str, (size_t)(dash - id->str), 0, INT64_MAX, &seq) < 0)
        return -EINVAL;
    e->first_seq = (uint64_t)seq;
    unsigned seen = 0;
    char kind = 'o';
    const char *event = NULL;
    size_t event_len = 0;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len != 1)
            return -EINVAL;
        switch (k->str[0]) {
        case 'k':
            if (v->len != 1)
                return -EINVAL;
            kind = v->str[0];
            break;
        case 'n':
            if (!sk_redis_reply_i64(v, 1, SK_STOCK_MAX, &n))
                return -EINVAL;
            e->n = (size_t)n;
            seen |= 1;
            break;
        case 't':
            if (!sk_redis_reply_i64(v, 0, INT64_MAX, &e->created_at))
                return -EINVAL;
            seen |= 2;
            break;
        case 'u':
        case 's':
            e->users = v->str;
            e->users_len = v->len;
            seen |= 4;
            break;
        case 'r':
        case 'a':
            e->requests = v->str;
            e->requests_len = v->len;
            seen |= 8;
            break;
        case 'q':
            e->quantities = v->str;
            e->quantities_len = v->len;
            break;
        case 'p':
            if (!sk_redis_reply_i64(v, 0, INT64_MAX, &e->pay_by))
                return -EINVAL;
            break;
        case 'e':
            event = v->str;
            event_len = v->len;
            break;
        case 'j':
            e->json = v->str;
            e->json_len = v->len;
            break;
        default:
            break;
        }
    }
    switch (kind) {
    case 'o':
        e->kind = SK_REDIS_ENTRY_ORDERS;
        return seen == 15 && seq >= 1 ? 0 : -EINVAL;
    case 'x': {
        e->kind = SK_REDIS_ENTRY_TRANSITIONS;
        char ev[16];
        if (!event || event_len >= sizeof(ev) || (seen & 14) != 14)
            return -EINVAL;
        memcpy(ev, event, event_len);
        ev[event_len] = '\0';
        if (sk_order_event_parse(ev, &e->event) < 0)
            return -EINVAL;
        /* The count of an x entry is that of its seqs. */
        e->n = 1;
        for (size_t i = 0; i < e->users_len; i++)
            e->n += e->users[i] == '\n';
        return 0;
    }
    case 'c':
        e->kind = SK_REDIS_ENTRY_CONTROL;
        return e->json ? 0 : -EINVAL;
    default:
        return -EINVAL;
    }
}

/* The next "\n"-separated item of a list at *pos; false past its end. */
static bool next_item(const char *list, size_t len, size_t *pos, const char **item, size_t *item_len)
{
    if (*pos > len)
        return false;
    const char *start = list + *pos;
    const char *nl = memchr(start, '\n', len - *pos);
    size_t l = nl ? (size_t)(nl - start) : len - *pos;
    *item = start;
    *item_len = l;
    *pos += l + 1;
    return true;
}

int sk_redis_entry_next(sk_redis_entry_t *e, sk_redis_order_t *o)
{
    if (e->kind == SK_REDIS_ENTRY_CONTROL)
        return -EINVAL;
    if (e->i == e->n)
        return (e->upos > e->users_len && e->rpos > e->requests_len && (!e->quantities || e->qpos > e->quantities_len))
                   ? 0
                   : -EINVAL;
    memset(o, 0, sizeof(*o));
    o->quantity = 1;
    o->created_at = e->created_at;
    if (e->kind == SK_REDIS_ENTRY_TRANSITIONS) {
        const char *item;
        size_t len;
        int64_t seq;
        if (!next_item(e->users, e->users_len, &e->upos, &item, &len) ||
            sk_parse_i64(item, len, 1, INT64_MAX, &seq) < 0 ||
            !next_item(e->requests, e->requests_len, &e->rpos, &o->request, &o->request_len) ||
            o->request_len > SK_PAYMENT_ID_MAX)
            return -EINVAL;
        o->seq = (uint64_t)seq;
        e->i++;
        return 1;
    }
    if (!next_item(e->users, e->users_len, &e->upos, &o->user, &o->user_len) ||
        !next_item(e->requests, e->requests_len, &e->rpos, &o->request, &o->request_len) ||
        !sk_valid_user_id(o->user, o->user_len) || !sk_valid_request_id(o->request, o->request_len))
        return -EINVAL;
    if (e->quantities) {
        const char *item;
        size_t len;
        int64_t q;
        if (!next_item(e->quantities, e->quantities_len, &e->qpos, &item, &len) ||
            sk_parse_i64(item, len, 1, SK_LIMIT_MAX, &q) < 0)
            return -EINVAL;
        o->quantity = (uint32_t)q;
    }
    o->seq = e->first_seq + e->i++;
    o->pay_by = e->pay_by;
    return 1;
}

/* A member as compact JSON text into dst (NUL-terminated); false when absent or too long. */
static bool member_text(json_t *o, const char *key, char *dst, size_t cap)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return false;
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    bool ok = t && strlen(t) < cap;
    if (ok)
        memcpy(dst, t, strlen(t) + 1);
    free(t);
    return ok;
}

int sk_redis_trail_parse(const char *json, size_t len, sk_trail_entry_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *o = json_loadb(json, len, 0, NULL);
    int rc = -EINVAL;
    char buf[2048];
    json_t *seq = json_object_get(o, "seq"), *at = json_object_get(o, "at"), *action = json_object_get(o, "action"),
           *actor = json_object_get(o, "actor"), *req = json_object_get(o, "request_id");
    if (!json_is_object(o) || !json_is_integer(seq) || !json_is_integer(at) || !json_is_string(action) ||
        !json_is_string(actor) || !json_is_string(req) || json_string_length(actor) > SK_ACTOR_MAX ||
        json_string_length(req) > SK_REQUEST_MAX || json_integer_value(seq) < 1)
        goto out;
    out->seq = (uint64_t)json_integer_value(seq);
    out->at = json_integer_value(at);
    memcpy(out->actor, json_string_value(actor), json_string_length(actor) + 1);
    memcpy(out->request_id, json_string_value(req), json_string_length(req) + 1);
    sk_control_action_t a;
    if (sk_control_action_parse(json_string_value(action), &a) < 0 || !member_text(o, "params", buf, sizeof(buf)) ||
        sk_control_params_parse(a, buf, strlen(buf), &out->ctl) < 0 || !member_text(o, "before", buf, sizeof(buf)) ||
        sk_sale_snapshot_parse(buf, strlen(buf), &out->before) < 0 || !member_text(o, "after", buf, sizeof(buf)) ||
        sk_sale_snapshot_parse(buf, strlen(buf), &out->after) < 0)
        goto out;
    rc = 0;
out:
    json_decref(o);
    return rc;
}
