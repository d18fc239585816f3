/* The operator's controls of a sale (admin only), each decided by the sale's writer in
 * order with the purchases and durable before its answer (engine/control.h has the
 * rules):
 *   POST  /api/v1/sales/{id}/pause | resume | close   {"request_id":"..."}
 *   POST  /api/v1/sales/{id}/stock    {"add":N,"request_id":"..."} or {"remove":N,...}
 *   PATCH /api/v1/sales/{id}          {"request_id", and any of name, starts_at, ends_at,
 *                                      per_user_limit, max_quantity, payment_window_ms}
 *   GET   /api/v1/sales/{id}/log      the trail: every accepted control
 * A request_id is required: the same request again answers the first result (200
 * "duplicate"), so a retry after a lost answer never adds stock twice.
 * Answers: 200 {"result":"applied"|"duplicate","entry":{...},"sale":{...}}; 409 with
 * the code of the rule that refused it and the sale as it is; 400 for a field (with its
 * code); 404, 401; 501 from a store without controls (Redis, for now); 503. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/body.h"
#include "api/internal.h"

static const char *const settings_list = "name, starts_at, ends_at, per_user_limit, max_quantity, payment_window_ms, "
                                         "queue, queue_opens_at, admit_per_second, admission_ttl_ms, pow_bits";

/* The request_id every control carries. */
static int request_id_field(json_t *root, char *out, sk_api_field_error_t *e)
{
    json_t *v = json_object_get(root, "request_id");
    const char *rule = "1-64 printable ASCII characters, no spaces or quotes: the same request_id again answers "
                       "the first result, so a retry is safe";
    if (!v)
        return sk_api_field_error(e, "request_id", "required", "request_id is required: %s", rule);
    if (!json_is_string(v))
        return sk_api_field_error(e, "request_id", "not_string", "request_id must be a string of %s", rule);
    size_t n = json_string_length(v);
    if (n == 0)
        return sk_api_field_error(e, "request_id", "required", "request_id must not be empty: %s", rule);
    if (n > SK_REQUEST_MAX)
        return sk_api_field_error(e, "request_id", "too_long", "request_id must be at most 64 characters; it has %zu",
                                  n);
    if (!sk_valid_request_id(json_string_value(v), n))
        return sk_api_field_error(e, "request_id", "bad_format", "request_id must be %s", rule);
    memcpy(out, json_string_value(v), n + 1);
    return 0;
}

static void put_sale(sk_buf_t *b, const sk_op_t *op)
{
    sk_buf_puts(b, ",\"sale\":");
    sk_api_sale_json(b, op->sale, sk_api_store_now(op->owner));
}

/* A refusal by the sale's state: 409 with the rule's code, a message and the sale. */
static void refused(sk_op_t *op, const char *message)
{
    const sk_trail_entry_t *e = op->entries;
    sk_buf_t b = {0};
    sk_buf_puts(&b, "{\"error\":\"");
    sk_buf_puts(&b, sk_control_result_name((sk_control_result_t)op->control_result));
    sk_buf_puts(&b, "\",\"message\":");
    sk_buf_put_json_str(&b, message, strlen(message));
    if (op->control_result == SK_CR_REQUEST_REUSED) {
        sk_buf_puts(&b, ",\"entry\":");
        sk_trail_entry_json(&b, e);
    } else if (op->control_result == SK_CR_INSUFFICIENT) {
        sk_buf_puts(&b, ",\"removable\":");
        sk_buf_put_i64(&b, sk_sale_remaining(op->sale));
    }
    put_sale(&b, op);
    sk_buf_puts(&b, "}\n");
    sk_http_deferred_respond(op->ctx, 409, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
}

/* A value the writer refused for what it is (400), with the field, its code and why. */
static void bad_value(sk_op_t *op)
{
    const sk_control_t *c = &op->entries->ctl;
    const sk_sale_params_t *p = sk_sale_params(op->sale);
    const char *field = op->field ? op->field : "body";
    char msg[400];
    const char *code = "out_of_range";
    switch ((sk_control_result_t)op->control_result) {
    case SK_CR_START_IN_PAST:
        code = "in_past";
        snprintf(msg, sizeof(msg), "starts_at must not be in the past (a minute's grace): %lld is %lld ms ago",
                 (long long)c->starts_at, (long long)(sk_api_store_now(op->owner) - c->starts_at));
        break;
    case SK_CR_END_IN_PAST:
        code = "in_past";
        snprintf(msg, sizeof(msg), "ends_at must be in the future: %lld is not (to end the sale now, POST .../close)",
                 (long long)c->ends_at);
        break;
    case SK_CR_END_BEFORE_START:
        code = "before_start";
        snprintf(msg, sizeof(msg), "ends_at must be after starts_at: the sale would run from %lld to %lld",
                 (long long)((c->set & SK_PATCH_STARTS_AT) ? c->starts_at : p->starts_at),
                 (long long)((c->set & SK_PATCH_ENDS_AT) ? c->ends_at : p->ends_at));
        break;
    case SK_CR_MAX_ABOVE_LIMIT:
        code = "above_limit";
        snprintf(msg, sizeof(msg),
                 "max_quantity (units per order) must be at most per_user_limit (units per buyer): it would be %d "
                 "with a limit of %d",
                 (c->set & SK_PATCH_MAX_QUANTITY) ? c->max_quantity : p->max_quantity,
                 (c->set & SK_PATCH_PER_USER_LIMIT) ? c->per_user_limit : p->per_user_limit);
        break;
    default:
        snprintf(msg, sizeof(msg), "%s is out of range", field);
        break;
    }
    sk_buf_t b = {0};
    sk_buf_puts(&b, "{\"error\":\"bad_request\",\"message\":");
    sk_buf_put_json_str(&b, msg, strlen(msg));
    sk_buf_puts(&b, ",\"field\":");
    sk_buf_put_json_str(&b, field, strlen(field));
    sk_buf_puts(&b, ",\"code\":\"");
    sk_buf_puts(&b, code);
    sk_buf_puts(&b, "\"}\n");
    sk_http_deferred_respond(op->ctx, 400, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
}

static void control_done(sk_op_t *op)
{
    static const char unsupported[] = "{\"error\":\"not_supported\",\"message\":\"this store (Redis) does not take "
                                      "operator controls yet\"}\n";
    static const char down[] = "{\"error\":\"unavailable\",\"message\":\"the store is unavailable; nothing changed "
                               "for certain: retry with the same request_id\"}\n";
    if (op->status == -ENOTSUP) {
        sk_http_deferred_respond(op->ctx, 501, "application/json", NULL, unsupported, sizeof(unsupported) - 1);
        sk_op_free(op);
        return;
    }
    if (op->status < 0) {
        sk_http_deferred_respond(op->ctx, 503, "application/json", "Retry-After: 1\r\n", down, sizeof(down) - 1);
        sk_op_free(op);
        return;
    }
    sk_control_result_t r = (sk_control_result_t)op->control_result;
    const sk_trail_entry_t *e = op->entries;
    char msg[300];
    sk_sale_counts_t c;
    sk_sale_counts(op->sale, &c);
    switch (r) {
    case SK_CR_OK:
    case SK_CR_DUPLICATE: {
        sk_buf_t b = {0};
        sk_buf_puts(&b, r == SK_CR_OK ? "{\"result\":\"applied\",\"entry\":" : "{\"result\":\"duplicate\",\"entry\":");
        sk_trail_entry_json(&b, e);
        put_sale(&b, op);
        sk_buf_puts(&b, "}\n");
        sk_http_deferred_respond(op->ctx, 200, "application/json", NULL, b.data, b.len);
        sk_buf_free(&b);
        break;
    }
    case SK_CR_REQUEST_REUSED:
        snprintf(msg, sizeof(msg),
                 "this request_id was used for another control (trail entry %llu, %s): give this one a new "
                 "request_id",
                 (unsigned long long)e->seq, sk_control_action_name(e->ctl.action));
        refused(op, msg);
        break;
    case SK_CR_CLOSED:
        refused(op, "the sale was closed: nothing changes it any more");
        break;
    case SK_CR_ENDED:
        refused(op, "the sale has ended: nothing changes it any more");
        break;
    case SK_CR_ALREADY_PAUSED:
        refused(op, "the sale is paused already");
        break;
    case SK_CR_NOT_PAUSED:
        refused(op, "only a paused sale can be resumed, and this one is not paused");
        break;
    case SK_CR_INSUFFICIENT:
        snprintf(msg, sizeof(msg),
                 "only units nobody holds can be removed, never below sold + held: at most %lld now (stock %lld, "
                 "sold %lld, held %lld)",
                 (long long)sk_counts_remaining(&c), (long long)c.stock, (long long)c.sold, (long long)c.held);
        refused(op, msg);
        break;
    case SK_CR_STOCK_MAX:
        snprintf(msg, sizeof(msg), "a sale holds at most %lld units; it has %lld", (long long)SK_STOCK_MAX,
                 (long long)c.stock);
        refused(op, msg);
        break;
    case SK_CR_STARTED:
        refused(op, (op->entries[0].ctl.set & (SK_PATCH_QUEUE | SK_PATCH_QUEUE_OPENS_AT))
                        ? "the sale has started: its waiting room cannot be turned on or off nor its opening moved "
                          "(admit_per_second, admission_ttl_ms and pow_bits can change)"
                        : "the sale has started: its start cannot move any more (its end can: ends_at)");
        break;
    case SK_CR_HAS_ORDERS:
        refused(op, "the sale has orders, whose payment deadlines follow from the window they were made with: "
                    "payment_window_ms cannot change any more");
        break;
    default:
        bad_value(op);
        break;
    }
    sk_op_free(op);
}

/* The sale, authorized, and the body as an object with only `known` members and a
 * request_id; NULL after answering. */
static json_t *control_body(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id, const char *const *known,
                            size_t n_known, const char *takes, sk_sale_t **s, bool *as_real, char *req)
{
    if (!sk_api_authorized(w, x))
        return NULL;
    *s = sk_api_find_sale_or_404(w, x, id);
    if (!*s)
        return NULL;
    sk_api_field_error_t fe;
    json_t *root = sk_api_load_object(x->body, x->body_len, as_real, &fe);
    if (!root || sk_api_known_fields(root, known, n_known, takes, &fe) < 0 || request_id_field(root, req, &fe) < 0) {
        sk_api_field_refused(x, &fe);
        json_decref(root);
        return NULL;
    }
    return root;
}

static void submit(sk_api_worker_t *w, sk_http_exchange_t *x, sk_sale_t *s, const sk_control_t *c, const char *req)
{
    sk_op_t *op = sk_op_new(SK_OP_CONTROL);
    op->sale = s;
    op->entries = sk_xcalloc(1, sizeof(*op->entries));
    op->n_entries = 1;
    op->entries[0].ctl = *c;
    snprintf(op->entries[0].actor, sizeof(op->entries[0].actor), "%s", sk_api_admin_name(w, x));
    snprintf(op->entries[0].request_id, sizeof(op->entries[0].request_id), "%s", req);
    op->owner = w;
    op->done = control_done;
    op->ctx = sk_http_defer(x);
    sk_engine_submit(w->ew, op);
}

static void simple(sk_http_exchange_t *x, const sk_str_t *params, void *arg, sk_control_action_t action)
{
    sk_api_worker_t *w = arg;
    static const char *const known[] = {"request_id"};
    sk_sale_t *s;
    bool as_real;
    char req[SK_REQUEST_MAX + 1];
    json_t *root = control_body(w, x, &params[0], known, 1, "request_id only", &s, &as_real, req);
    if (!root)
        return;
    json_decref(root);
    sk_control_t c = {.action = action};
    submit(w, x, s, &c, req);
}

void sk_api_sale_pause(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    simple(x, params, arg, SK_CTL_PAUSE);
}

void sk_api_sale_resume(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    simple(x, params, arg, SK_CTL_RESUME);
}

void sk_api_sale_close(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    simple(x, params, arg, SK_CTL_CLOSE);
}

void sk_api_sale_stock(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    static const char *const known[] = {"add", "remove", "request_id"};
    sk_sale_t *s;
    bool as_real;
    char req[SK_REQUEST_MAX + 1];
    json_t *root =
        control_body(w, x, &params[0], known, SK_ARRAY_LEN(known), "add or remove, and request_id", &s, &as_real, req);
    if (!root)
        return;
    json_t *add = json_object_get(root, "add"), *rm = json_object_get(root, "remove");
    sk_api_field_error_t fe;
    sk_control_t c = {.action = add ? SK_CTL_ADD_STOCK : SK_CTL_REMOVE_STOCK};
    int rc = 0;
    if (add && rm)
        rc = sk_api_field_error(&fe, "remove", "exclusive", "give add or remove, not both: one change per request");
    else if (!add && !rm)
        rc = sk_api_field_error(&fe, "add", "required",
                                "add or remove is required: {\"add\":N} or {\"remove\":N}, N units from 1 to "
                                "1000000000");
    else
        rc = sk_api_json_int(add ? add : rm, add ? "add" : "remove", 1, SK_STOCK_MAX, as_real, &c.amount, &fe);
    json_decref(root);
    if (rc < 0) {
        sk_api_field_refused(x, &fe);
        return;
    }
    submit(w, x, s, &c, req);
}

void sk_api_sale_patch(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    static const char *const known[] = {"request_id",
                                        "name",
                                        "starts_at",
                                        "ends_at",
                                        "per_user_limit",
                                        "max_quantity",
                                        "payment_window_ms",
                                        "queue",
                                        "queue_opens_at",
                                        "admit_per_second",
                                        "admission_ttl_ms",
                                        "pow_bits",
                                        "stock",
                                        "id"};
    sk_sale_t *s;
    bool as_real;
    char req[SK_REQUEST_MAX + 1];
    json_t *root = control_body(w, x, &params[0], known, SK_ARRAY_LEN(known),
                                "request_id and any of name, starts_at, ends_at, per_user_limit, max_quantity, "
                                "payment_window_ms, queue, queue_opens_at, admit_per_second, admission_ttl_ms, "
                                "pow_bits",
                                &s, &as_real, req);
    if (!root)
        return;
    /* What PATCH never changes, with where to go instead. */
    if (json_object_get(root, "stock")) {
        json_decref(root);
        char body[300];
        int n = snprintf(body, sizeof(body),
                         "{\"error\":\"use_stock_endpoint\",\"message\":\"stock changes with POST "
                         "/api/v1/sales/%s/stock {\\\"add\\\":N} or {\\\"remove\\\":N}, which never goes below sold + "
                         "held\",\"field\":\"stock\"}\n",
                         s->id);
        sk_http_respond(x, 409, "application/json", body, (size_t)n);
        return;
    }
    if (json_object_get(root, "id")) {
        json_decref(root);
        static const char body[] = "{\"error\":\"immutable\",\"message\":\"a sale's id never changes: its orders are "
                                   "named after it\",\"field\":\"id\"}\n";
        sk_http_respond(x, 409, "application/json", body, sizeof(body) - 1);
        return;
    }
    sk_api_field_error_t fe;
    sk_control_t c = {0};
    int rc = sk_api_sale_settings(root, as_real, &c, &fe);
    json_decref(root);
    if (rc == 0 && c.set == 0)
        rc = sk_api_field_error(&fe, "body", "required", "nothing to change: give at least one of %s", settings_list);
    if (rc == 0 && (c.set & SK_PATCH_MAX_QUANTITY) && c.max_quantity > 1 && !sk_engine_lifecycle(w->api->cfg.engine))
        rc = sk_api_field_error(&fe, "max_quantity", "not_supported",
                                "this store (Redis) does not take more than one unit per order yet");
    if (rc == 0 && (c.set & SK_PATCH_QUEUE) && c.queue != SK_QUEUE_OFF && !sk_engine_queues(w->api->cfg.engine))
        rc = sk_api_field_error(&fe, "queue", "not_supported", "this store does not keep waiting rooms yet");
    /* The Redis store takes a waiting room's settings with the sale (its script keeps
     * none of the controls' queue fields yet). */
    uint32_t qset =
        SK_PATCH_QUEUE | SK_PATCH_QUEUE_OPENS_AT | SK_PATCH_ADMIT_RATE | SK_PATCH_ADMISSION_TTL | SK_PATCH_POW_BITS;
    if (rc == 0 && (c.set & qset) && sk_engine_lookups(w->api->cfg.engine))
        rc = sk_api_field_error(&fe,
                                (c.set & SK_PATCH_QUEUE)            ? "queue"
                                : (c.set & SK_PATCH_QUEUE_OPENS_AT) ? "queue_opens_at"
                                : (c.set & SK_PATCH_ADMIT_RATE)     ? "admit_per_second"
                                : (c.set & SK_PATCH_ADMISSION_TTL)  ? "admission_ttl_ms"
                                                                    : "pow_bits",
                                "not_supported",
                                "this store (Redis) takes the waiting room's settings when the sale is created only");
    if (rc < 0) {
        sk_api_field_refused(x, &fe);
        return;
    }
    submit(w, x, s, &c, req);
}

static void log_done(sk_op_t *op)
{
    static const char unsupported[] = "{\"error\":\"not_supported\",\"message\":\"this store (Redis) keeps no "
                                      "trail of operator controls yet\"}\n";
    static const char busy[] = "{\"error\":\"rate_limited\",\"message\":\"too many requests in flight, retry "
                               "shortly\"}\n";
    static const char down[] = "{\"error\":\"unavailable\",\"message\":\"the store is unavailable; retry "
                               "later\"}\n";
    if (op->status < 0) {
        if (op->status == -ENOTSUP)
            sk_http_deferred_respond(op->ctx, 501, "application/json", NULL, unsupported, sizeof(unsupported) - 1);
        else if (op->status == -EAGAIN)
            sk_http_deferred_respond(op->ctx, 429, "application/json", "Retry-After: 1\r\n", busy, sizeof(busy) - 1);
        else
            sk_http_deferred_respond(op->ctx, 503, "application/json", "Retry-After: 1\r\n", down, sizeof(down) - 1);
        sk_op_free(op);
        return;
    }
    sk_buf_t b = {0};
    sk_buf_puts(&b, "{\"sale_id\":");
    sk_buf_put_json_str(&b, op->sale->id, op->sale->id_len);
    sk_buf_puts(&b, ",\"entries\":[");
    for (size_t i = 0; i < op->n_entries; i++) {
        if (i)
            sk_buf_putc(&b, ',');
        sk_trail_entry_json(&b, &op->entries[i]);
    }
    sk_buf_puts(&b, "]}\n");
    sk_http_deferred_respond(op->ctx, 200, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
    sk_op_free(op);
}

void sk_api_sale_log(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    if (!sk_api_authorized(w, x))
        return;
    sk_sale_t *s = sk_api_find_sale_or_404(w, x, &params[0]);
    if (!s)
        return;
    sk_op_t *op = sk_op_new(SK_OP_LOG);
    op->sale = s;
    op->done = log_done;
    op->ctx = sk_http_defer(x);
    sk_engine_submit(w->ew, op);
}
