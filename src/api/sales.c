/* Sales: list, get (looked up in the shared store on a cache miss), create. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/body.h"
#include "api/internal.h"
#include "engine/control.h"

void sk_api_sale_json(sk_buf_t *b, const sk_sale_t *s, int64_t now)
{
    const sk_sale_params_t *p = sk_sale_params(s);
    sk_sale_counts_t c;
    sk_sale_counts(s, &c);
    sk_buf_puts(b, "{\"id\":");
    sk_buf_put_json_str(b, s->id, s->id_len);
    sk_buf_puts(b, ",\"name\":");
    sk_buf_put_json_str(b, p->name, strlen(p->name));
    sk_buf_puts(b, ",\"stock\":");
    sk_buf_put_i64(b, c.stock);
    sk_buf_puts(b, ",\"sold\":");
    sk_buf_put_i64(b, c.sold);
    sk_buf_puts(b, ",\"held\":");
    sk_buf_put_i64(b, c.held);
    sk_buf_puts(b, ",\"remaining\":");
    sk_buf_put_i64(b, sk_counts_remaining(&c));
    sk_buf_puts(b, ",\"state\":\"");
    sk_buf_puts(b, sk_sale_state_name(sk_sale_state(s, now)));
    sk_buf_puts(b, p->paused ? "\",\"paused\":true" : "\",\"paused\":false");
    sk_buf_puts(b, p->closed ? ",\"closed\":true" : ",\"closed\":false");
    sk_buf_puts(b, ",\"starts_at\":");
    sk_buf_put_i64(b, p->starts_at);
    sk_buf_puts(b, ",\"ends_at\":");
    sk_buf_put_i64(b, p->ends_at);
    sk_buf_puts(b, ",\"per_user_limit\":");
    sk_buf_put_i64(b, p->per_user_limit);
    sk_buf_puts(b, ",\"max_quantity\":");
    sk_buf_put_i64(b, p->max_quantity);
    sk_buf_puts(b, ",\"payment_window_ms\":");
    sk_buf_put_i64(b, p->payment_window_ms);
    sk_buf_puts(b, ",\"queue\":\"");
    sk_buf_puts(b, sk_queue_mode_name(p->queue));
    sk_buf_puts(b, "\"");
    if (p->queue != SK_QUEUE_OFF) {
        sk_buf_puts(b, ",\"queue_opens_at\":");
        sk_buf_put_i64(b, p->queue_opens_at ? p->queue_opens_at : s->created_at);
        sk_buf_puts(b, ",\"admit_per_second\":");
        sk_buf_put_i64(b, p->admit_per_second);
        sk_buf_puts(b, ",\"admission_ttl_ms\":");
        sk_buf_put_i64(b, p->admission_ttl_ms);
        sk_buf_puts(b, ",\"pow_bits\":");
        sk_buf_put_i64(b, p->pow_bits);
        sk_buf_puts(b, ",\"queue_length\":");
        sk_buf_put_i64(b, (int64_t)atomic_load_explicit(&((sk_sale_t *)s)->q_len, memory_order_relaxed));
        sk_buf_puts(b, ",\"admitted\":");
        sk_buf_put_i64(b, (int64_t)atomic_load_explicit(&((sk_sale_t *)s)->q_head, memory_order_relaxed));
    }
    sk_buf_puts(b, ",\"server_time\":");
    sk_buf_put_i64(b, now);
    sk_buf_putc(b, '}');
}

void sk_api_sales_list(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    sk_api_worker_t *w = arg;
    sk_engine_t *e = w->api->cfg.engine;
    if (sk_engine_store_unsure(e)) {
        /* A sale whose create heard 503 may be in the file: a list without it is a
         * guess a restart may contradict. */
        sk_http_respond_error(x, 503, "unavailable",
                              "the sale store failed; which sales it holds is not known until a restart");
        return;
    }
    int64_t now = sk_api_store_now(w);
    sk_buf_t b = {0};
    sk_buf_puts(&b, "{\"sales\":[");
    size_t n = sk_engine_sale_count(e);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        sk_sale_t *s = sk_engine_sale_at(e, i);
        if (!s)
            continue; /* its creation is not durable yet */
        if (!first)
            sk_buf_putc(&b, ',');
        first = false;
        sk_api_sale_json(&b, s, now);
    }
    sk_buf_puts(&b, "],\"server_time\":");
    sk_buf_put_i64(&b, now);
    sk_buf_putc(&b, '}');
    sk_api_reply_json(x, 200, &b);
    sk_buf_free(&b);
}

void sk_api_sale_get(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    sk_sale_t *s = sk_api_find_sale_or_404(w, x, &params[0]);
    if (!s)
        return;
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    sk_api_sale_json(b, s, sk_api_store_now(w));
    sk_api_reply_json(x, 200, b);
}

/* "3 h 2 min", "45 s": how far a time is from now, for a warning. */
static void put_span(sk_buf_t *b, int64_t ms)
{
    int64_t sec = ms / 1000;
    if (sec >= 86400)
        sk_buf_printf(b, "%lld d %lld h", (long long)(sec / 86400), (long long)(sec % 86400 / 3600));
    else if (sec >= 3600)
        sk_buf_printf(b, "%lld h %lld min", (long long)(sec / 3600), (long long)(sec % 3600 / 60));
    else if (sec >= 60)
        sk_buf_printf(b, "%lld min %lld s", (long long)(sec / 60), (long long)(sec % 60));
    else
        sk_buf_printf(b, "%lld s", (long long)sec);
}

/* A sale created with times in the past is accepted, and the answer says what that
 * means: a start more than a minute ago makes a sale that is live at once, an end in
 * the past a sale born ended. (Refusing them would forbid recording a sale that already
 * happened, and the tests and tools that need an ended sale; a client, the dashboard
 * first, reads the warning's code and asks before it sends.) */
static void put_warnings(sk_buf_t *b, const sk_sale_t *s)
{
    const sk_sale_params_t *p = sk_sale_params(s);
    int64_t now = s->created_at;
    bool start = p->starts_at < now - SK_PAST_GRACE_MS && p->ends_at > now, end = p->ends_at <= now;
    if (!start && !end)
        return;
    sk_buf_puts(b, ",\"warnings\":[");
    if (start) {
        sk_buf_puts(b, "{\"field\":\"starts_at\",\"code\":\"in_past\",\"message\":\"starts_at is ");
        put_span(b, now - p->starts_at);
        sk_buf_puts(b, " in the past: the sale is live at once\"}");
    } else {
        sk_buf_puts(b, "{\"field\":\"ends_at\",\"code\":\"in_past\",\"message\":\"ends_at is ");
        put_span(b, now - p->ends_at);
        sk_buf_puts(b, " in the past: the sale is created ended and can sell nothing\"}");
    }
    sk_buf_putc(b, ']');
}

static void create_done(sk_op_t *op)
{
    sk_http_deferred_t *d = op->ctx;
    sk_buf_t b = {0};
    int status = 201;
    if (op->status == 0) {
        sk_api_sale_json(&b, op->sale, sk_api_store_now(op->owner));
        b.len--; /* the closing brace: the warnings go inside */
        put_warnings(&b, op->sale);
        sk_buf_puts(&b, "}\n");
    } else if (op->status == -EEXIST) {
        status = 409;
        sk_buf_puts(&b, "{\"error\":\"exists\",\"message\":\"a sale with this id exists\",\"field\":\"id\"}\n");
    } else if (op->status == -ENOSPC) {
        status = 507;
        sk_buf_puts(&b, "{\"error\":\"too_many_sales\",\"message\":\"the engine holds at most 10000 sales\"}\n");
    } else {
        status = 503;
        /* Not "nothing was created": the write may have stored it (a write or sync whose
         * outcome is lost), and a restart then shows it. */
        sk_buf_puts(&b, "{\"error\":\"unavailable\",\"message\":\"the sale store is unavailable; whether the "
                        "sale was stored is not known: retry the same create later (201, or 409 exists)\"}\n");
    }
    sk_http_deferred_respond(d, status, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
    sk_op_free(op);
}

#define SALE_ID_RULE "1-64 characters of A-Z a-z 0-9 _ -"

static int id_field(json_t *v, sk_api_field_error_t *e)
{
    if (!v)
        return sk_api_field_error(e, "id", "required", "id is required: " SALE_ID_RULE);
    if (!json_is_string(v))
        return sk_api_field_error(e, "id", "not_string", "id must be a string of " SALE_ID_RULE);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0)
        return sk_api_field_error(e, "id", "bad_format", "id must be " SALE_ID_RULE "; it is empty");
    if (n > SK_ID_MAX)
        return sk_api_field_error(e, "id", "too_long", "id must be " SALE_ID_RULE "; it has %zu characters", n);
    for (size_t i = 0; i < n; i++)
        if (!sk_valid_sale_id(s + i, 1)) {
            unsigned char c = (unsigned char)s[i];
            if (c > 0x20 && c < 0x7f)
                return sk_api_field_error(e, "id", "bad_format",
                                          "id must be " SALE_ID_RULE "; it has '%c' at position %zu", c, i + 1);
            return sk_api_field_error(e, "id", "bad_format", "id must be " SALE_ID_RULE "; it has %s at position %zu",
                                      c == ' '    ? "a space"
                                      : c >= 0x80 ? "a non-ASCII character"
                                                  : "a control character",
                                      i + 1);
        }
    return 0;
}

int sk_api_sale_settings(json_t *root, bool as_real, sk_control_t *c, sk_api_field_error_t *e)
{
    c->action = SK_CTL_PATCH;
    c->set = 0;
    json_t *v;
    int64_t n;
    if ((v = json_object_get(root, "name"))) {
        if (!json_is_string(v))
            return sk_api_field_error(e, "name", "not_string", "name must be a string of 1-200 bytes");
        if (json_string_length(v) == 0)
            return sk_api_field_error(e, "name", "empty", "name must be 1-200 bytes; it is empty");
        if (json_string_length(v) > SK_NAME_MAX)
            return sk_api_field_error(e, "name", "too_long", "name must be 1-200 bytes; it has %zu",
                                      json_string_length(v));
        memcpy(c->name, json_string_value(v), json_string_length(v) + 1);
        c->set |= SK_PATCH_NAME;
    }
    if ((v = json_object_get(root, "starts_at"))) {
        if (sk_api_json_time(v, "starts_at", as_real, &c->starts_at, e) < 0)
            return -EINVAL;
        c->set |= SK_PATCH_STARTS_AT;
    }
    if ((v = json_object_get(root, "ends_at"))) {
        if (sk_api_json_time(v, "ends_at", as_real, &c->ends_at, e) < 0)
            return -EINVAL;
        c->set |= SK_PATCH_ENDS_AT;
    }
    if ((v = json_object_get(root, "per_user_limit"))) {
        if (sk_api_json_int(v, "per_user_limit", 1, SK_LIMIT_MAX, as_real, &n, e) < 0)
            return -EINVAL;
        c->per_user_limit = (int32_t)n;
        c->set |= SK_PATCH_PER_USER_LIMIT;
    }
    if ((v = json_object_get(root, "max_quantity"))) {
        if (sk_api_json_int(v, "max_quantity", 1, SK_LIMIT_MAX, as_real, &n, e) < 0)
            return -EINVAL;
        c->max_quantity = (int32_t)n;
        c->set |= SK_PATCH_MAX_QUANTITY;
    }
    if ((v = json_object_get(root, "payment_window_ms"))) {
        if (sk_api_json_int(v, "payment_window_ms", 0, SK_WINDOW_MAX_MS, as_real, &c->payment_window_ms, e) < 0)
            return -EINVAL;
        c->set |= SK_PATCH_PAYMENT_WINDOW;
    }
    if ((v = json_object_get(root, "queue"))) {
        int m;
        if (!json_is_string(v))
            return sk_api_field_error(e, "queue", "not_string", "queue must be \"off\", \"fifo\" or \"random\"");
        if (sk_queue_mode_parse(json_string_value(v), json_string_length(v), &m) < 0)
            return sk_api_field_error(e, "queue", "bad_format",
                                      "queue must be \"off\", \"fifo\" or \"random\"; \"%.40s\" is none of them",
                                      json_string_value(v));
        c->queue = m;
        c->set |= SK_PATCH_QUEUE;
    }
    if ((v = json_object_get(root, "queue_opens_at"))) {
        if (sk_api_json_time(v, "queue_opens_at", as_real, &c->queue_opens_at, e) < 0)
            return -EINVAL;
        c->set |= SK_PATCH_QUEUE_OPENS_AT;
    }
    if ((v = json_object_get(root, "admit_per_second"))) {
        if (sk_api_json_int(v, "admit_per_second", 1, SK_ADMIT_RATE_MAX, as_real, &n, e) < 0)
            return -EINVAL;
        c->admit_per_second = (int32_t)n;
        c->set |= SK_PATCH_ADMIT_RATE;
    }
    if ((v = json_object_get(root, "admission_ttl_ms"))) {
        if (sk_api_json_int(v, "admission_ttl_ms", SK_ADMISSION_TTL_MIN, SK_ADMISSION_TTL_MAX, as_real,
                            &c->admission_ttl_ms, e) < 0)
            return -EINVAL;
        c->set |= SK_PATCH_ADMISSION_TTL;
    }
    if ((v = json_object_get(root, "pow_bits"))) {
        if (sk_api_json_int(v, "pow_bits", 0, SK_SALE_POW_BITS_MAX, as_real, &n, e) < 0)
            return -EINVAL;
        c->pow_bits = (int32_t)n;
        c->set |= SK_PATCH_POW_BITS;
    }
    return 0;
}

void sk_api_sale_create(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    sk_api_worker_t *w = arg;
    if (!sk_api_authorized(w, x))
        return;
    sk_api_field_error_t fe;
    bool as_real;
    json_t *root = sk_api_load_object(x->body, x->body_len, &as_real, &fe);
    static const char *const known[] = {"id",
                                        "name",
                                        "stock",
                                        "starts_at",
                                        "ends_at",
                                        "per_user_limit",
                                        "max_quantity",
                                        "payment_window_ms",
                                        "queue",
                                        "queue_opens_at",
                                        "admit_per_second",
                                        "admission_ttl_ms",
                                        "pow_bits"};
    /* The store's clock (sk_api_store_now): what it decides the sale's window by. A node
     * knows it only to within a round trip: a start left out, and the sale's creation
     * (from which its waiting room is open, unless told otherwise), are "now" by the
     * least it can read (sk_engine_store_clock_offset_min, from when a reply came), so
     * that the store counts the sale started, and any node its room open, when the 201
     * leaves, however long the reply the bound was read from took. */
    const sk_engine_t *engine = w->api->cfg.engine;
    int64_t local = sk_now_ms(), now = local + sk_engine_store_clock_offset(engine), stock = 0;
    int64_t created = local + sk_engine_store_clock_offset_min(engine);
    json_t *jid = json_object_get(root, "id");
    sk_control_t c = {0};
    int rc = root ? sk_api_known_fields(root, known, SK_ARRAY_LEN(known),
                                        "id, name, stock, starts_at, ends_at, per_user_limit, max_quantity, "
                                        "payment_window_ms, queue, queue_opens_at, admit_per_second, admission_ttl_ms "
                                        "and pow_bits",
                                        &fe)
                  : -EINVAL;
    if (rc == 0)
        rc = id_field(jid, &fe);
    if (rc == 0)
        rc = sk_api_json_int(json_object_get(root, "stock"), "stock", 1, SK_STOCK_MAX, as_real, &stock, &fe);
    if (rc == 0)
        rc = sk_api_sale_settings(root, as_real, &c, &fe);
    sk_sale_params_t p = {
        .name = (c.set & SK_PATCH_NAME) ? c.name : json_string_value(jid),
        .starts_at = (c.set & SK_PATCH_STARTS_AT) ? c.starts_at : created,
        .per_user_limit = (c.set & SK_PATCH_PER_USER_LIMIT) ? c.per_user_limit : 1,
        .max_quantity = (c.set & SK_PATCH_MAX_QUANTITY) ? c.max_quantity : 1,
        .payment_window_ms = (c.set & SK_PATCH_PAYMENT_WINDOW) ? c.payment_window_ms : 0,
        .queue = (uint8_t)((c.set & SK_PATCH_QUEUE) ? c.queue : SK_QUEUE_OFF),
        .queue_opens_at = (c.set & SK_PATCH_QUEUE_OPENS_AT) ? c.queue_opens_at : 0,
        .admit_per_second = (c.set & SK_PATCH_ADMIT_RATE) ? c.admit_per_second : SK_ADMIT_RATE_DEFAULT,
        .admission_ttl_ms = (c.set & SK_PATCH_ADMISSION_TTL) ? c.admission_ttl_ms : SK_ADMISSION_TTL_DEFAULT,
        .pow_bits = (uint8_t)((c.set & SK_PATCH_POW_BITS) ? c.pow_bits : 0)};
    /* An hour from the start asked for, or from now by the store's clock (not from the
     * default start, which may be the node's earlier clock). */
    p.ends_at =
        (c.set & SK_PATCH_ENDS_AT) ? c.ends_at : ((c.set & SK_PATCH_STARTS_AT) ? p.starts_at : now) + 3600 * 1000;
    /* A room asked to open "now" with a start left out (also "now"): both are the same
     * instant, however the two clocks read it. */
    if (!(c.set & SK_PATCH_STARTS_AT) && p.queue_opens_at > p.starts_at && p.queue_opens_at <= now)
        p.queue_opens_at = p.starts_at;
    if (rc == 0 && p.queue_opens_at > p.starts_at)
        rc = sk_api_field_error(&fe, "queue_opens_at", "out_of_range",
                                "queue_opens_at must be at or before starts_at (%lld); it is %lld",
                                (long long)p.starts_at, (long long)p.queue_opens_at);
    if (rc == 0 && p.queue != SK_QUEUE_OFF && !sk_engine_queues(w->api->cfg.engine))
        rc = sk_api_field_error(&fe, "queue", "not_supported",
                                "this store does not keep waiting rooms yet: create the sale with queue \"off\"");
    if (rc == 0 && p.max_quantity > p.per_user_limit)
        rc = sk_api_field_error(&fe, "max_quantity", "above_limit",
                                "max_quantity must be at most per_user_limit (%d), the units one buyer may hold; %d is "
                                "above it",
                                p.per_user_limit, p.max_quantity);
    if (rc == 0 && p.ends_at <= p.starts_at)
        rc = sk_api_field_error(&fe, "ends_at", "before_start", "ends_at must be after starts_at (%lld); it is %lld",
                                (long long)p.starts_at, (long long)p.ends_at);
    if (rc == 0 && p.payment_window_ms > 0 && !sk_engine_lifecycle(w->api->cfg.engine))
        rc = sk_api_field_error(&fe, "payment_window_ms", "not_supported",
                                "this store (Redis) does not keep payment windows yet: create the sale without one");
    if (rc == 0 && p.max_quantity > 1 && !sk_engine_lifecycle(w->api->cfg.engine))
        rc = sk_api_field_error(&fe, "max_quantity", "not_supported",
                                "this store (Redis) does not take more than one unit per order yet: create the sale "
                                "without max_quantity");
    if (rc < 0) {
        sk_api_field_refused(x, &fe);
        json_decref(root);
        return;
    }
    sk_sale_t *s = sk_sale_new(json_string_value(jid), json_string_length(jid), &p, stock, created);
    json_decref(root);
    sk_op_t *op = sk_op_new(SK_OP_CREATE_SALE);
    op->owner = w;
    op->new_sale = s;
    op->done = create_done;
    op->ctx = sk_http_defer(x);
    sk_engine_submit(w->ew, op);
}
