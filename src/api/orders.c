/* Orders: one buyer's orders in a sale (so a client that lost its answer can find
 * out), and the admin's paged listing of a sale's orders. */
#include <errno.h>
#include <string.h>

#include "api/body.h"
#include "api/internal.h"

#define LIST_LIMIT_MAX 10000

static void order_json(sk_buf_t *b, const sk_sale_t *s, const sk_order_t *o, bool with_user)
{
    char id[SK_ORDER_ID_MAX + 1];
    size_t n = sk_order_id(id, s, o->seq);
    sk_buf_puts(b, "{\"order_id\":\"");
    sk_buf_append(b, id, n);
    sk_buf_putc(b, '"');
    if (with_user) {
        sk_buf_puts(b, ",\"user_id\":");
        sk_buf_put_json_str(b, o->user_id, strlen(o->user_id));
    }
    sk_buf_puts(b, ",\"request_id\":");
    sk_buf_put_json_str(b, o->request_id, strlen(o->request_id));
    sk_buf_puts(b, ",\"created_at\":");
    sk_buf_put_i64(b, o->created_at);
    sk_buf_putc(b, '}');
}

static void orders_reply(sk_buf_t *b, const sk_sale_t *s, const char *user, size_t ul, const sk_order_t *o, size_t n)
{
    sk_buf_puts(b, "{\"sale_id\":");
    sk_buf_put_json_str(b, s->id, s->id_len);
    sk_buf_puts(b, ",\"user_id\":");
    sk_buf_put_json_str(b, user, ul);
    sk_buf_puts(b, ",\"orders\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            sk_buf_putc(b, ',');
        order_json(b, s, &o[i], false);
    }
    sk_buf_puts(b, "]}\n");
}

static bool refused(sk_op_t *op)
{
    if (op->status == 0)
        return false;
    if (op->status == -ESTALE) {
        /* The Redis store keeps a sale's orders until the drain moved them into the
         * system of record (then trims them, and retires an ended sale after a while):
         * what is gone from it is read there. */
        static const char body[] = "{\"error\":\"moved\",\"message\":\"these orders have been moved to the "
                                   "system of record and are no longer kept by this service\"}\n";
        sk_http_deferred_respond(op->ctx, 410, "application/json", NULL, body, sizeof(body) - 1);
    } else if (op->status == -EAGAIN) {
        static const char body[] = "{\"error\":\"rate_limited\",\"message\":\"too many requests in flight, "
                                   "retry shortly\"}\n";
        sk_http_deferred_respond(op->ctx, 429, "application/json", "Retry-After: 1\r\n", body, sizeof(body) - 1);
    } else {
        /* A backend that reads orders from elsewhere (Redis) may fail to: say so, never
         * answer an empty list that could be taken for "you hold nothing". */
        static const char body[] = "{\"error\":\"unavailable\",\"message\":\"the order store is unavailable; "
                                   "retry later\"}\n";
        sk_http_deferred_respond(op->ctx, 503, "application/json", "Retry-After: 1\r\n", body, sizeof(body) - 1);
    }
    sk_op_free(op);
    return true;
}

static void user_orders_done(sk_op_t *op)
{
    if (refused(op))
        return;
    sk_buf_t b = {0};
    orders_reply(&b, op->sale, op->user_id, op->user_len, op->orders, op->n_orders);
    sk_http_deferred_respond(op->ctx, 200, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
    sk_op_free(op);
}

void sk_api_user_orders(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    sk_sale_t *s = sk_api_find_sale_or_404(w, x, &params[0]);
    if (!s)
        return;
    char user[SK_USER_MAX + 1];
    int ul = sk_api_form_decode(params[1].p, params[1].len, user, sizeof(user));
    if (ul < 0 || !sk_valid_user_id(user, (size_t)ul)) {
        sk_api_bad_field(x, "user_id", "user_id must be 1-64 printable ASCII characters, no spaces or quotes");
        return;
    }
    if (sk_sale_final(s)) {
        sk_order_t *o;
        size_t n = sk_engine_final_orders(s, user, (size_t)ul, &o);
        sk_buf_t b = {0};
        orders_reply(&b, s, user, (size_t)ul, o, n);
        sk_http_respond(x, 200, "application/json", b.data, b.len);
        sk_buf_free(&b);
        free(o);
        return;
    }
    sk_op_t *op = sk_op_new(SK_OP_ORDERS);
    op->sale = s;
    memcpy(op->user_id, user, (size_t)ul + 1);
    op->user_len = (uint8_t)ul;
    op->done = user_orders_done;
    op->ctx = sk_http_defer(x);
    sk_engine_submit(w->ew, op);
}

static void list_done(sk_op_t *op)
{
    if (refused(op))
        return;
    sk_buf_t b = {0};
    sk_buf_puts(&b, "{\"sale_id\":");
    sk_buf_put_json_str(&b, op->sale->id, op->sale->id_len);
    sk_buf_puts(&b, ",\"orders\":[");
    for (size_t i = 0; i < op->n_orders; i++) {
        if (i)
            sk_buf_putc(&b, ',');
        order_json(&b, op->sale, &op->orders[i], true);
    }
    sk_buf_puts(&b, "],\"next\":");
    if (op->list_more && op->n_orders) {
        char id[SK_ORDER_ID_MAX + 1];
        size_t n = sk_order_id(id, op->sale, op->orders[op->n_orders - 1].seq);
        sk_buf_put_json_str(&b, id, n);
    } else {
        sk_buf_puts(&b, "null");
    }
    sk_buf_puts(&b, "}\n");
    sk_http_deferred_respond(op->ctx, 200, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
    sk_op_free(op);
}

/* Reads one query parameter (raw, not decoded). */
static bool query_param(const sk_http_request_t *req, const char *name, const char **v, size_t *vl)
{
    if (!req->query) /* no '?': and NULL + 0 is undefined */
        return false;
    size_t nl = strlen(name);
    const char *p = req->query, *end = req->query + req->query_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            *v = p + nl + 1;
            *vl = (size_t)(e - p) - nl - 1;
            return true;
        }
        p = e + 1;
    }
    return false;
}

void sk_api_orders_list(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    if (!sk_api_authorized(w, x))
        return;
    sk_sale_t *s = sk_api_find_sale_or_404(w, x, &params[0]);
    if (!s)
        return;
    const char *v;
    size_t vl;
    uint64_t after = 0;
    int64_t limit = 1000;
    if (query_param(x->req, "after", &v, &vl) && vl > 0 && sk_order_id_parse(s, v, vl, &after) < 0) {
        sk_api_bad_field(x, "after", "after must be an order id of this sale");
        return;
    }
    if (query_param(x->req, "limit", &v, &vl) && sk_parse_i64(v, vl, 1, LIST_LIMIT_MAX, &limit) < 0) {
        sk_api_bad_field(x, "limit", "limit must be an integer from 1 to 10000");
        return;
    }
    sk_op_t *op = sk_op_new(SK_OP_LIST);
    op->sale = s;
    op->list_after = after;
    op->list_limit = (size_t)limit;
    op->done = list_done;
    op->ctx = sk_http_defer(x);
    sk_engine_submit(w->ew, op);
}
