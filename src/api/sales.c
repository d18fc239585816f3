/* Sales: list, get (looked up in the shared store on a cache miss), create. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/body.h"
#include "api/internal.h"

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
    sk_buf_puts(b, "\",\"starts_at\":");
    sk_buf_put_i64(b, p->starts_at);
    sk_buf_puts(b, ",\"ends_at\":");
    sk_buf_put_i64(b, p->ends_at);
    sk_buf_puts(b, ",\"per_user_limit\":");
    sk_buf_put_i64(b, p->per_user_limit);
    sk_buf_puts(b, ",\"max_quantity\":");
    sk_buf_put_i64(b, p->max_quantity);
    sk_buf_puts(b, ",\"payment_window_ms\":");
    sk_buf_put_i64(b, p->payment_window_ms);
    sk_buf_puts(b, ",\"server_time\":");
    sk_buf_put_i64(b, now);
    sk_buf_putc(b, '}');
}

void sk_api_sales_list(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    sk_api_worker_t *w = arg;
    sk_engine_t *e = w->api->cfg.engine;
    int64_t now = sk_now_ms();
    sk_buf_t b = {0};
    sk_buf_puts(&b, "{\"sales\":[");
    size_t n = sk_engine_sale_count(e);
    for (size_t i = 0; i < n; i++) {
        if (i)
            sk_buf_putc(&b, ',');
        sk_api_sale_json(&b, sk_engine_sale_at(e, i), now);
    }
    sk_buf_puts(&b, "],\"server_time\":");
    sk_buf_put_i64(&b, now);
    sk_buf_putc(&b, '}');
    sk_api_reply_json(x, 200, &b);
    sk_buf_free(&b);
}

static void find_done(sk_op_t *op)
{
    sk_buf_t b = {0};
    if (op->sale) {
        sk_api_sale_json(&b, op->sale, sk_now_ms());
        sk_buf_putc(&b, '\n');
        sk_http_deferred_respond(op->ctx, 200, "application/json", NULL, b.data, b.len);
    } else if (op->status == -ENOENT) {
        sk_buf_puts(&b, "{\"error\":\"unknown_sale\",\"message\":\"no sale with that id\"}\n");
        sk_http_deferred_respond(op->ctx, 404, "application/json", NULL, b.data, b.len);
    } else {
        sk_buf_puts(&b, "{\"error\":\"unavailable\",\"message\":\"the sale store is unavailable; retry later\"}\n");
        sk_http_deferred_respond(op->ctx, op->status == -EAGAIN ? 429 : 503, "application/json", "Retry-After: 1\r\n",
                                 b.data, b.len);
    }
    sk_buf_free(&b);
    sk_op_free(op);
}

void sk_api_sale_get(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    sk_sale_t *s = sk_engine_find_sale(w->api->cfg.engine, params[0].p, params[0].len);
    if (!s) {
        sk_sale_t *stub = sk_api_lookup_stub(w, &params[0]);
        if (!stub) {
            sk_http_respond_error(x, 404, "unknown_sale", "no sale with that id");
            return;
        }
        sk_op_t *op = sk_op_new(SK_OP_FIND_SALE);
        op->new_sale = stub;
        op->done = find_done;
        op->ctx = sk_http_defer(x);
        sk_engine_submit(w->ew, op);
        return;
    }
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    sk_api_sale_json(b, s, sk_now_ms());
    sk_api_reply_json(x, 200, b);
}

static void create_done(sk_op_t *op)
{
    sk_http_deferred_t *d = op->ctx;
    sk_buf_t b = {0};
    int status = 201;
    if (op->status == 0) {
        sk_api_sale_json(&b, op->sale, sk_now_ms());
        sk_buf_putc(&b, '\n');
    } else if (op->status == -EEXIST) {
        status = 409;
        sk_buf_puts(&b, "{\"error\":\"exists\",\"message\":\"a sale with this id exists\",\"field\":\"id\"}\n");
    } else if (op->status == -ENOSPC) {
        status = 507;
        sk_buf_puts(&b, "{\"error\":\"too_many_sales\",\"message\":\"the engine holds at most 10000 sales\"}\n");
    } else {
        status = 503;
        sk_buf_puts(&b, "{\"error\":\"unavailable\",\"message\":\"the sale could not be stored; nothing was "
                        "created\"}\n");
    }
    sk_http_deferred_respond(d, status, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
    sk_op_free(op);
}

static int get_int(json_t *v, int64_t min, int64_t max, int64_t *out)
{
    if (!json_is_integer(v))
        return -EINVAL;
    json_int_t i = json_integer_value(v);
    if (i < min || i > max)
        return -ERANGE;
    *out = i;
    return 0;
}

static int get_time(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > 253402300799999LL)
            return -EINVAL;
        *out = i;
        return 0;
    }
    if (json_is_string(v))
        return sk_api_parse_time(json_string_value(v), json_string_length(v), out);
    return -EINVAL;
}

void sk_api_sale_create(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    sk_api_worker_t *w = arg;
    if (!sk_api_authorized(w, x))
        return;
    json_error_t jerr;
    json_t *root = json_loadb(x->body, x->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        sk_api_bad_field(x, "body", "the body must be a JSON object");
        return;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        static const char *const known[] = {"id",      "name",           "stock",        "starts_at",
                                            "ends_at", "per_user_limit", "max_quantity", "payment_window_ms"};
        bool ok = false;
        for (size_t i = 0; i < SK_ARRAY_LEN(known); i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok) {
            char msg[160];
            snprintf(msg, sizeof(msg), "unknown field \"%.64s\"", key);
            sk_api_bad_field(x, key, msg);
            json_decref(root);
            return;
        }
    }
    int64_t now = sk_now_ms();
    json_t *jid = json_object_get(root, "id"), *jname = json_object_get(root, "name");
    int64_t stock, starts = now, ends, limit = 1, max_quantity = 1, window = 0;
    const char *err_field = NULL, *err_msg = NULL;
    char msg[200];
    if (!json_is_string(jid) || !sk_valid_sale_id(json_string_value(jid), json_string_length(jid))) {
        err_field = "id";
        err_msg = "id is required: 1-64 characters of A-Z a-z 0-9 _ -";
    } else if (jname &&
               (!json_is_string(jname) || json_string_length(jname) == 0 || json_string_length(jname) > SK_NAME_MAX)) {
        err_field = "name";
        err_msg = "name must be a string of 1-200 bytes";
    } else if (get_int(json_object_get(root, "stock"), 1, SK_STOCK_MAX, &stock) < 0) {
        err_field = "stock";
        err_msg = "stock is required: an integer from 1 to 1000000000";
    } else if (json_object_get(root, "starts_at") && get_time(json_object_get(root, "starts_at"), &starts) < 0) {
        err_field = "starts_at";
        err_msg = "starts_at must be unix milliseconds or an RFC 3339 time";
    } else if (json_object_get(root, "ends_at") && get_time(json_object_get(root, "ends_at"), &ends) < 0) {
        err_field = "ends_at";
        err_msg = "ends_at must be unix milliseconds or an RFC 3339 time";
    } else if (json_object_get(root, "per_user_limit") &&
               get_int(json_object_get(root, "per_user_limit"), 1, SK_LIMIT_MAX, &limit) < 0) {
        err_field = "per_user_limit";
        err_msg = "per_user_limit must be an integer from 1 to 1000000";
    } else if (json_object_get(root, "max_quantity") &&
               get_int(json_object_get(root, "max_quantity"), 1, limit, &max_quantity) < 0) {
        snprintf(msg, sizeof(msg),
                 "max_quantity must be an integer from 1 to per_user_limit (%lld): the units one order may take",
                 (long long)limit);
        err_field = "max_quantity";
        err_msg = msg;
    } else if (json_object_get(root, "payment_window_ms") &&
               get_int(json_object_get(root, "payment_window_ms"), 0, SK_WINDOW_MAX_MS, &window) < 0) {
        err_field = "payment_window_ms";
        err_msg = "payment_window_ms must be an integer from 0 (a purchase is final) to 86400000 (a day): how long a "
                  "reservation waits for its payment";
    } else if (window > 0 && !sk_engine_lifecycle(w->api->cfg.engine)) {
        err_field = "payment_window_ms";
        err_msg = "this store (Redis) does not keep payment windows yet: create the sale without one";
    } else if (max_quantity > 1 && !sk_engine_lifecycle(w->api->cfg.engine)) {
        err_field = "max_quantity";
        err_msg = "this store (Redis) does not take more than one unit per order yet: create the sale without "
                  "max_quantity";
    }
    if (!err_field && !json_object_get(root, "ends_at"))
        ends = starts + 3600 * 1000;
    if (!err_field && ends <= starts) {
        err_field = "ends_at";
        err_msg = "ends_at must be after starts_at";
    }
    if (err_field) {
        sk_api_bad_field(x, err_field, err_msg);
        json_decref(root);
        return;
    }
    sk_sale_params_t p = {.name = (jname ? json_string_value(jname) : json_string_value(jid)),
                          .starts_at = starts,
                          .ends_at = ends,
                          .per_user_limit = (int32_t)limit,
                          .max_quantity = (int32_t)max_quantity,
                          .payment_window_ms = window};
    sk_sale_t *s = sk_sale_new(json_string_value(jid), json_string_length(jid), &p, stock, now);
    json_decref(root);
    sk_op_t *op = sk_op_new(SK_OP_CREATE_SALE);
    op->new_sale = s;
    op->done = create_done;
    op->ctx = sk_http_defer(x);
    sk_engine_submit(w->ew, op);
}
