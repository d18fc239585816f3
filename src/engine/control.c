/* The rules of the operator's controls and the JSON of the trail (control.h). */
#include "engine/control.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char *const action_names[SK_CTL__COUNT] = {"pause",     "resume",       "close",
                                                        "add_stock", "remove_stock", "patch"};

static const char *const result_names[SK_CR__COUNT] = {
    "ok",         "duplicate",    "request_id_reused", "closed",    "ended",      "already_paused",
    "not_paused", "insufficient", "stock_limit",       "started",   "has_orders", "in_past",
    "in_past",    "before_start", "above_limit",       "bad_value",
};

const char *sk_control_action_name(sk_control_action_t a)
{
    return (unsigned)a < SK_CTL__COUNT ? action_names[a] : "unknown";
}

int sk_control_action_parse(const char *s, sk_control_action_t *out)
{
    for (int i = 0; i < SK_CTL__COUNT; i++)
        if (strcmp(s, action_names[i]) == 0) {
            *out = (sk_control_action_t)i;
            return 0;
        }
    return -EINVAL;
}

const char *sk_control_result_name(sk_control_result_t r)
{
    return (unsigned)r < SK_CR__COUNT ? result_names[r] : "unknown";
}

bool sk_control_result_is_bad_request(sk_control_result_t r)
{
    return r >= SK_CR_START_IN_PAST && r < SK_CR__COUNT;
}

/* ---- the rules ------------------------------------------------------------------------ */

static bool patch_values_ok(const sk_control_t *c, const char **field)
{
    size_t nl = strnlen(c->name, sizeof(c->name));
    if ((c->set & SK_PATCH_NAME) && (nl == 0 || nl > SK_NAME_MAX))
        return *field = "name", false;
    if ((c->set & SK_PATCH_STARTS_AT) && (c->starts_at < 0 || c->starts_at > 253402300799999LL))
        return *field = "starts_at", false;
    if ((c->set & SK_PATCH_ENDS_AT) && (c->ends_at < 0 || c->ends_at > 253402300799999LL))
        return *field = "ends_at", false;
    if ((c->set & SK_PATCH_PER_USER_LIMIT) && (c->per_user_limit < 1 || c->per_user_limit > SK_LIMIT_MAX))
        return *field = "per_user_limit", false;
    if ((c->set & SK_PATCH_MAX_QUANTITY) && (c->max_quantity < 1 || c->max_quantity > SK_LIMIT_MAX))
        return *field = "max_quantity", false;
    if ((c->set & SK_PATCH_PAYMENT_WINDOW) && (c->payment_window_ms < 0 || c->payment_window_ms > SK_WINDOW_MAX_MS))
        return *field = "payment_window_ms", false;
    if ((c->set & SK_PATCH_QUEUE) && (c->queue < SK_QUEUE_OFF || c->queue > SK_QUEUE_RANDOM))
        return *field = "queue", false;
    if ((c->set & SK_PATCH_QUEUE_OPENS_AT) && (c->queue_opens_at < 0 || c->queue_opens_at > 253402300799999LL))
        return *field = "queue_opens_at", false;
    if ((c->set & SK_PATCH_ADMIT_RATE) && (c->admit_per_second < 1 || c->admit_per_second > SK_ADMIT_RATE_MAX))
        return *field = "admit_per_second", false;
    if ((c->set & SK_PATCH_ADMISSION_TTL) &&
        (c->admission_ttl_ms < SK_ADMISSION_TTL_MIN || c->admission_ttl_ms > SK_ADMISSION_TTL_MAX))
        return *field = "admission_ttl_ms", false;
    if ((c->set & SK_PATCH_POW_BITS) && (c->pow_bits < 0 || c->pow_bits > SK_SALE_POW_BITS_MAX))
        return *field = "pow_bits", false;
    return true;
}

static sk_control_result_t patch(const sk_control_t *c, int64_t now, bool has_orders, sk_sale_params_t *p,
                                 const char **field)
{
    if (c->set == 0)
        return *field = "body", SK_CR_BAD_VALUE;
    if (!patch_values_ok(c, field))
        return SK_CR_BAD_VALUE;
    sk_sale_params_t n = *p;
    if (c->set & SK_PATCH_NAME)
        n.name = c->name;
    /* A field given with the value it already has is no change: a form that sends every
     * field back must not be refused for the ones it did not touch. */
    if ((c->set & SK_PATCH_STARTS_AT) && c->starts_at != p->starts_at) {
        if (now >= p->starts_at)
            return SK_CR_STARTED;
        if (c->starts_at < now - SK_PAST_GRACE_MS)
            return *field = "starts_at", SK_CR_START_IN_PAST;
        n.starts_at = c->starts_at;
    }
    if ((c->set & SK_PATCH_ENDS_AT) && c->ends_at != p->ends_at) {
        if (c->ends_at <= now)
            return *field = "ends_at", SK_CR_END_IN_PAST;
        n.ends_at = c->ends_at;
    }
    if (n.ends_at <= n.starts_at)
        return *field = (c->set & SK_PATCH_ENDS_AT) ? "ends_at" : "starts_at", SK_CR_END_BEFORE_START;
    if (c->set & SK_PATCH_PER_USER_LIMIT)
        n.per_user_limit = c->per_user_limit;
    if (c->set & SK_PATCH_MAX_QUANTITY)
        n.max_quantity = c->max_quantity;
    if (n.max_quantity > n.per_user_limit)
        return *field = (c->set & SK_PATCH_MAX_QUANTITY) ? "max_quantity" : "per_user_limit", SK_CR_MAX_ABOVE_LIMIT;
    /* Every order's pay_by is its created_at plus the window, and the expiry timer
     * relies on that order: the window is fixed from the first order on. */
    if ((c->set & SK_PATCH_PAYMENT_WINDOW) && c->payment_window_ms != p->payment_window_ms) {
        if (has_orders)
            return SK_CR_HAS_ORDERS;
        n.payment_window_ms = c->payment_window_ms;
    }
    /* Turning the waiting room on or off once buyers may buy would let some buy
     * without an admission, or make admitted buyers' tokens meaningless: the mode and
     * the opening are fixed from the start. */
    if ((c->set & SK_PATCH_QUEUE) && c->queue != p->queue) {
        if (now >= p->starts_at)
            return SK_CR_STARTED;
        n.queue = (uint8_t)c->queue;
    }
    if ((c->set & SK_PATCH_QUEUE_OPENS_AT) && c->queue_opens_at != p->queue_opens_at) {
        if (now >= p->starts_at)
            return SK_CR_STARTED;
        n.queue_opens_at = c->queue_opens_at;
    }
    if (n.queue_opens_at > n.starts_at)
        return *field = "queue_opens_at", SK_CR_BAD_VALUE;
    if (c->set & SK_PATCH_ADMIT_RATE)
        n.admit_per_second = c->admit_per_second;
    if (c->set & SK_PATCH_ADMISSION_TTL)
        n.admission_ttl_ms = c->admission_ttl_ms;
    if (c->set & SK_PATCH_POW_BITS)
        n.pow_bits = (uint8_t)c->pow_bits;
    *p = n;
    return SK_CR_OK;
}

sk_control_result_t sk_control_apply(const sk_control_t *c, int64_t now, bool has_orders, bool ended,
                                     sk_sale_params_t *p, sk_sale_counts_t *counts, const char **field)
{
    *field = NULL;
    if (p->closed)
        return SK_CR_CLOSED;
    if (ended || now >= p->ends_at)
        return SK_CR_ENDED;
    switch (c->action) {
    case SK_CTL_PAUSE:
        if (p->paused)
            return SK_CR_ALREADY_PAUSED;
        p->paused = true;
        return SK_CR_OK;
    case SK_CTL_RESUME:
        if (!p->paused)
            return SK_CR_NOT_PAUSED;
        p->paused = false;
        return SK_CR_OK;
    case SK_CTL_CLOSE:
        p->closed = true;
        return SK_CR_OK;
    case SK_CTL_ADD_STOCK:
        if (c->amount < 1 || c->amount > SK_STOCK_MAX)
            return *field = "add", SK_CR_BAD_VALUE;
        if (counts->stock + c->amount > SK_STOCK_MAX)
            return SK_CR_STOCK_MAX;
        counts->stock += c->amount;
        return SK_CR_OK;
    case SK_CTL_REMOVE_STOCK:
        if (c->amount < 1 || c->amount > SK_STOCK_MAX)
            return *field = "remove", SK_CR_BAD_VALUE;
        /* Only units nobody holds: never below what is sold or reserved. */
        if (counts->stock - c->amount < counts->sold + counts->held)
            return SK_CR_INSUFFICIENT;
        counts->stock -= c->amount;
        return SK_CR_OK;
    case SK_CTL_PATCH:
        return patch(c, now, has_orders, p, field);
    default:
        return *field = "action", SK_CR_BAD_VALUE;
    }
}

bool sk_control_same(const sk_control_t *a, const sk_control_t *b)
{
    if (a->action != b->action)
        return false;
    switch (a->action) {
    case SK_CTL_ADD_STOCK:
    case SK_CTL_REMOVE_STOCK:
        return a->amount == b->amount;
    case SK_CTL_PATCH:
        return a->set == b->set && (!(a->set & SK_PATCH_NAME) || strcmp(a->name, b->name) == 0) &&
               (!(a->set & SK_PATCH_STARTS_AT) || a->starts_at == b->starts_at) &&
               (!(a->set & SK_PATCH_ENDS_AT) || a->ends_at == b->ends_at) &&
               (!(a->set & SK_PATCH_PER_USER_LIMIT) || a->per_user_limit == b->per_user_limit) &&
               (!(a->set & SK_PATCH_MAX_QUANTITY) || a->max_quantity == b->max_quantity) &&
               (!(a->set & SK_PATCH_PAYMENT_WINDOW) || a->payment_window_ms == b->payment_window_ms) &&
               (!(a->set & SK_PATCH_QUEUE) || a->queue == b->queue) &&
               (!(a->set & SK_PATCH_QUEUE_OPENS_AT) || a->queue_opens_at == b->queue_opens_at) &&
               (!(a->set & SK_PATCH_ADMIT_RATE) || a->admit_per_second == b->admit_per_second) &&
               (!(a->set & SK_PATCH_ADMISSION_TTL) || a->admission_ttl_ms == b->admission_ttl_ms) &&
               (!(a->set & SK_PATCH_POW_BITS) || a->pow_bits == b->pow_bits);
    default:
        return true;
    }
}

void sk_sale_snapshot(sk_sale_snapshot_t *out, const sk_sale_params_t *p, const sk_sale_counts_t *c, uint64_t orders,
                      int64_t now)
{
    out->stock = c->stock;
    out->held = c->held;
    out->sold = c->sold;
    out->orders = orders;
    out->state = sk_sale_state_of(p, c, now);
    out->paused = p->paused;
    out->closed = p->closed;
    out->starts_at = p->starts_at;
    out->ends_at = p->ends_at;
    out->payment_window_ms = p->payment_window_ms;
    out->per_user_limit = p->per_user_limit;
    out->max_quantity = p->max_quantity;
    snprintf(out->name, sizeof(out->name), "%s", p->name);
}

/* ---- JSON ------------------------------------------------------------------------------- */

static void put_member(sk_buf_t *b, bool *first, const char *key)
{
    sk_buf_puts(b, *first ? "\"" : ",\"");
    sk_buf_puts(b, key);
    sk_buf_puts(b, "\":");
    *first = false;
}

void sk_control_params_json(sk_buf_t *b, const sk_control_t *c)
{
    bool first = true;
    sk_buf_putc(b, '{');
    switch (c->action) {
    case SK_CTL_ADD_STOCK:
        put_member(b, &first, "add");
        sk_buf_put_i64(b, c->amount);
        break;
    case SK_CTL_REMOVE_STOCK:
        put_member(b, &first, "remove");
        sk_buf_put_i64(b, c->amount);
        break;
    case SK_CTL_PATCH:
        if (c->set & SK_PATCH_NAME) {
            put_member(b, &first, "name");
            sk_buf_put_json_str(b, c->name, strlen(c->name));
        }
        if (c->set & SK_PATCH_STARTS_AT) {
            put_member(b, &first, "starts_at");
            sk_buf_put_i64(b, c->starts_at);
        }
        if (c->set & SK_PATCH_ENDS_AT) {
            put_member(b, &first, "ends_at");
            sk_buf_put_i64(b, c->ends_at);
        }
        if (c->set & SK_PATCH_PER_USER_LIMIT) {
            put_member(b, &first, "per_user_limit");
            sk_buf_put_i64(b, c->per_user_limit);
        }
        if (c->set & SK_PATCH_MAX_QUANTITY) {
            put_member(b, &first, "max_quantity");
            sk_buf_put_i64(b, c->max_quantity);
        }
        if (c->set & SK_PATCH_PAYMENT_WINDOW) {
            put_member(b, &first, "payment_window_ms");
            sk_buf_put_i64(b, c->payment_window_ms);
        }
        if (c->set & SK_PATCH_QUEUE) {
            put_member(b, &first, "queue");
            sk_buf_putc(b, '"');
            sk_buf_puts(b, sk_queue_mode_name(c->queue));
            sk_buf_putc(b, '"');
        }
        if (c->set & SK_PATCH_QUEUE_OPENS_AT) {
            put_member(b, &first, "queue_opens_at");
            sk_buf_put_i64(b, c->queue_opens_at);
        }
        if (c->set & SK_PATCH_ADMIT_RATE) {
            put_member(b, &first, "admit_per_second");
            sk_buf_put_i64(b, c->admit_per_second);
        }
        if (c->set & SK_PATCH_ADMISSION_TTL) {
            put_member(b, &first, "admission_ttl_ms");
            sk_buf_put_i64(b, c->admission_ttl_ms);
        }
        if (c->set & SK_PATCH_POW_BITS) {
            put_member(b, &first, "pow_bits");
            sk_buf_put_i64(b, c->pow_bits);
        }
        break;
    default:
        break;
    }
    sk_buf_putc(b, '}');
}

/* An integer member, or -EINVAL when it is absent or not an integer in [min, max]. */
static int get_i64(json_t *o, const char *key, int64_t min, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return -EINVAL;
    *out = json_integer_value(v);
    return 0;
}

int sk_control_params_parse(sk_control_action_t action, const char *json, size_t len, sk_control_t *out)
{
    memset(out, 0, sizeof(*out));
    out->action = action;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = -EINVAL;
    if (!json_is_object(o))
        goto out;
    size_t members = json_object_size(o), known = 0;
    int64_t v;
    switch (action) {
    case SK_CTL_ADD_STOCK:
    case SK_CTL_REMOVE_STOCK:
        if (get_i64(o, action == SK_CTL_ADD_STOCK ? "add" : "remove", 1, SK_STOCK_MAX, &out->amount) < 0)
            goto out;
        known = 1;
        break;
    case SK_CTL_PATCH: {
        json_t *name = json_object_get(o, "name");
        if (name) {
            if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > SK_NAME_MAX)
                goto out;
            memcpy(out->name, json_string_value(name), json_string_length(name) + 1);
            out->set |= SK_PATCH_NAME;
            known++;
        }
        json_t *mode = json_object_get(o, "queue");
        if (mode) {
            int m;
            if (!json_is_string(mode) || sk_queue_mode_parse(json_string_value(mode), json_string_length(mode), &m) < 0)
                goto out;
            out->queue = m;
            out->set |= SK_PATCH_QUEUE;
            known++;
        }
        static const struct {
            const char *key;
            uint32_t bit;
            int64_t min, max;
        } ints[] = {
            {"starts_at", SK_PATCH_STARTS_AT, 0, 253402300799999LL},
            {"ends_at", SK_PATCH_ENDS_AT, 0, 253402300799999LL},
            {"per_user_limit", SK_PATCH_PER_USER_LIMIT, 1, SK_LIMIT_MAX},
            {"max_quantity", SK_PATCH_MAX_QUANTITY, 1, SK_LIMIT_MAX},
            {"payment_window_ms", SK_PATCH_PAYMENT_WINDOW, 0, SK_WINDOW_MAX_MS},
            {"queue_opens_at", SK_PATCH_QUEUE_OPENS_AT, 0, 253402300799999LL},
            {"admit_per_second", SK_PATCH_ADMIT_RATE, 1, SK_ADMIT_RATE_MAX},
            {"admission_ttl_ms", SK_PATCH_ADMISSION_TTL, SK_ADMISSION_TTL_MIN, SK_ADMISSION_TTL_MAX},
            {"pow_bits", SK_PATCH_POW_BITS, 0, SK_SALE_POW_BITS_MAX},
        };
        for (size_t i = 0; i < SK_ARRAY_LEN(ints); i++) {
            if (!json_object_get(o, ints[i].key))
                continue;
            if (get_i64(o, ints[i].key, ints[i].min, ints[i].max, &v) < 0)
                goto out;
            out->set |= ints[i].bit;
            known++;
            switch (ints[i].bit) {
            case SK_PATCH_STARTS_AT:
                out->starts_at = v;
                break;
            case SK_PATCH_ENDS_AT:
                out->ends_at = v;
                break;
            case SK_PATCH_PER_USER_LIMIT:
                out->per_user_limit = (int32_t)v;
                break;
            case SK_PATCH_MAX_QUANTITY:
                out->max_quantity = (int32_t)v;
                break;
            case SK_PATCH_QUEUE_OPENS_AT:
                out->queue_opens_at = v;
                break;
            case SK_PATCH_ADMIT_RATE:
                out->admit_per_second = (int32_t)v;
                break;
            case SK_PATCH_ADMISSION_TTL:
                out->admission_ttl_ms = v;
                break;
            case SK_PATCH_POW_BITS:
                out->pow_bits = (int32_t)v;
                break;
            default:
                out->payment_window_ms = v;
                break;
            }
        }
        if (out->set == 0)
            goto out;
        break;
    }
    default:
        break;
    }
    rc = members == known ? 0 : -EINVAL;
out:
    json_decref(o);
    return rc;
}

void sk_sale_snapshot_json(sk_buf_t *b, const sk_sale_snapshot_t *s)
{
    sk_buf_puts(b, "{\"stock\":");
    sk_buf_put_i64(b, s->stock);
    sk_buf_puts(b, ",\"held\":");
    sk_buf_put_i64(b, s->held);
    sk_buf_puts(b, ",\"sold\":");
    sk_buf_put_i64(b, s->sold);
    sk_buf_puts(b, ",\"remaining\":");
    sk_buf_put_i64(b, s->stock - s->held - s->sold);
    sk_buf_puts(b, ",\"orders\":");
    sk_buf_put_i64(b, (int64_t)s->orders);
    sk_buf_puts(b, ",\"state\":\"");
    sk_buf_puts(b, sk_sale_state_name(s->state));
    sk_buf_puts(b, s->paused ? "\",\"paused\":true" : "\",\"paused\":false");
    sk_buf_puts(b, s->closed ? ",\"closed\":true" : ",\"closed\":false");
    sk_buf_puts(b, ",\"starts_at\":");
    sk_buf_put_i64(b, s->starts_at);
    sk_buf_puts(b, ",\"ends_at\":");
    sk_buf_put_i64(b, s->ends_at);
    sk_buf_puts(b, ",\"per_user_limit\":");
    sk_buf_put_i64(b, s->per_user_limit);
    sk_buf_puts(b, ",\"max_quantity\":");
    sk_buf_put_i64(b, s->max_quantity);
    sk_buf_puts(b, ",\"payment_window_ms\":");
    sk_buf_put_i64(b, s->payment_window_ms);
    sk_buf_puts(b, ",\"name\":");
    sk_buf_put_json_str(b, s->name, strlen(s->name));
    sk_buf_putc(b, '}');
}

int sk_sale_snapshot_parse(const char *json, size_t len, sk_sale_snapshot_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = -EINVAL;
    int64_t orders, limit, maxq;
    json_t *state = json_object_get(o, "state"), *name = json_object_get(o, "name"),
           *paused = json_object_get(o, "paused"), *closed = json_object_get(o, "closed");
    if (!json_is_object(o) || !json_is_string(state) || !json_is_string(name) ||
        json_string_length(name) > SK_NAME_MAX || !json_is_boolean(paused) || !json_is_boolean(closed) ||
        get_i64(o, "stock", 0, SK_STOCK_MAX, &out->stock) < 0 || get_i64(o, "held", 0, SK_STOCK_MAX, &out->held) < 0 ||
        get_i64(o, "sold", 0, SK_STOCK_MAX, &out->sold) < 0 || get_i64(o, "orders", 0, INT64_MAX, &orders) < 0 ||
        get_i64(o, "starts_at", 0, INT64_MAX, &out->starts_at) < 0 ||
        get_i64(o, "ends_at", 0, INT64_MAX, &out->ends_at) < 0 ||
        get_i64(o, "per_user_limit", 1, SK_LIMIT_MAX, &limit) < 0 ||
        get_i64(o, "max_quantity", 1, SK_LIMIT_MAX, &maxq) < 0 ||
        get_i64(o, "payment_window_ms", 0, SK_WINDOW_MAX_MS, &out->payment_window_ms) < 0)
        goto out;
    out->orders = (uint64_t)orders;
    out->per_user_limit = (int32_t)limit;
    out->max_quantity = (int32_t)maxq;
    out->paused = json_is_true(paused);
    out->closed = json_is_true(closed);
    memcpy(out->name, json_string_value(name), json_string_length(name) + 1);
    for (int st = 0; st <= SK_SALE_PAUSED; st++)
        if (strcmp(json_string_value(state), sk_sale_state_name((sk_sale_state_t)st)) == 0) {
            out->state = (sk_sale_state_t)st;
            rc = 0;
        }
out:
    json_decref(o);
    return rc;
}

void sk_trail_entry_json(sk_buf_t *b, const sk_trail_entry_t *e)
{
    sk_buf_puts(b, "{\"seq\":");
    sk_buf_put_i64(b, (int64_t)e->seq);
    sk_buf_puts(b, ",\"action\":\"");
    sk_buf_puts(b, sk_control_action_name(e->ctl.action));
    sk_buf_puts(b, "\",\"actor\":");
    sk_buf_put_json_str(b, e->actor, strlen(e->actor));
    sk_buf_puts(b, ",\"request_id\":");
    sk_buf_put_json_str(b, e->request_id, strlen(e->request_id));
    sk_buf_puts(b, ",\"at\":");
    sk_buf_put_i64(b, e->at);
    sk_buf_puts(b, ",\"params\":");
    sk_control_params_json(b, &e->ctl);
    sk_buf_puts(b, ",\"before\":");
    sk_sale_snapshot_json(b, &e->before);
    sk_buf_puts(b, ",\"after\":");
    sk_sale_snapshot_json(b, &e->after);
    sk_buf_putc(b, '}');
}
