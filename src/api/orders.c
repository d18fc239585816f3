/* Orders: one order by its id, one buyer's orders in a sale (so a client that lost its
 * answer can find out), and the admin's paged listing of a sale's orders. Each order
 * carries its quantity, state and times. (Its transitions: transitions.c.) */
#include <errno.h>
#include <string.h>

#include "api/body.h"
#include "api/internal.h"

#define LIST_LIMIT_MAX 10000

static void put_time(sk_buf_t *b, const char *name, int64_t v)
{
    sk_buf_puts(b, name);
    if (v)
        sk_buf_put_i64(b, v);
    else
        sk_buf_puts(b, "null");
}

void sk_api_order_fields(sk_buf_t *b, const sk_sale_t *s, const sk_order_t *o, bool with_user)
{
    char id[SK_ORDER_ID_MAX + 1];
    size_t n = sk_order_id(id, s, o->seq);
    sk_buf_puts(b, "\"order_id\":\"");
    sk_buf_append(b, id, n);
    sk_buf_puts(b, "\",\"sale_id\":");
    sk_buf_put_json_str(b, s->id, s->id_len);
    if (with_user) {
        sk_buf_puts(b, ",\"user_id\":");
        sk_buf_put_json_str(b, o->user_id, strlen(o->user_id));
    }
    sk_buf_puts(b, ",\"request_id\":");
    sk_buf_put_json_str(b, o->request_id, strlen(o->request_id));
    sk_buf_puts(b, ",\"quantity\":");
    sk_buf_put_i64(b, o->quantity);
    sk_buf_puts(b, ",\"state\":\"");
    sk_buf_puts(b, sk_order_state_name(o->state));
    sk_buf_puts(b, "\",\"created_at\":");
    sk_buf_put_i64(b, o->created_at);
    put_time(b, ",\"pay_by\":", o->pay_by);
    sk_buf_puts(b, ",\"payment_id\":");
    if (o->payment_id[0])
        sk_buf_put_json_str(b, o->payment_id, strlen(o->payment_id));
    else
        sk_buf_puts(b, "null");
    put_time(b, ",\"paid_at\":", o->paid_at);
    put_time(b, ",\"closed_at\":", o->closed_at);
}

static void order_json(sk_buf_t *b, const sk_sale_t *s, const sk_order_t *o, bool with_user)
{
    sk_buf_putc(b, '{');
    sk_api_order_fields(b, s, o, with_user);
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

bool sk_api_order_refused(sk_op_t *op)
{
    static const char not_found[] = "{\"error\":\"unknown_order\",\"message\":\"no order with that id\"}\n";
    static const char forbidden[] = "{\"error\":\"forbidden\",\"message\":\"this order belongs to another "
                                    "buyer\"}\n";
    static const char busy[] = "{\"error\":\"rate_limited\",\"message\":\"too many requests in flight, retry "
                               "shortly\"}\n";
    static const char unsupported[] = "{\"error\":\"not_supported\",\"message\":\"this store does not keep the "
                                      "order lifecycle yet\"}\n";
    /* A backend that reads orders from elsewhere (Redis) may fail to: say so, never
     * answer an empty list that could be taken for "you hold nothing". */
    static const char down[] = "{\"error\":\"unavailable\",\"message\":\"the order store is unavailable; nothing "
                               "changed for certain: retry later\"}\n";
    switch (op->status) {
    case 0:
        return false;
    case -ENOENT:
        sk_http_deferred_respond(op->ctx, 404, "application/json", NULL, not_found, sizeof(not_found) - 1);
        break;
    case -EPERM:
        sk_http_deferred_respond(op->ctx, 403, "application/json", NULL, forbidden, sizeof(forbidden) - 1);
        break;
    case -EAGAIN:
        sk_http_deferred_respond(op->ctx, 429, "application/json", "Retry-After: 1\r\n", busy, sizeof(busy) - 1);
        break;
    case -ENOTSUP:
        sk_http_deferred_respond(op->ctx, 501, "application/json", NULL, unsupported, sizeof(unsupported) - 1);
        break;
    case -ESTALE: {
        /* The Redis store keeps a sale's orders until the drain moved them into the
         * system of record (then trims them, and retires an ended sale after a while):
         * what is gone from it is read there. */
        static const char moved[] = "{\"error\":\"moved\",\"message\":\"these orders have been moved to the "
                                    "system of record and are no longer kept by this service\"}\n";
        sk_http_deferred_respond(op->ctx, 410, "application/json", NULL, moved, sizeof(moved) - 1);
        break;
    }
    default:
        sk_http_deferred_respond(op->ctx, 503, "application/json", "Retry-After: 1\r\n", down, sizeof(down) - 1);
        break;
    }
    sk_op_free(op);
    return true;
}

static bool refused(sk_op_t *op)
{
    return sk_api_order_refused(op);
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
        sk_api_bad_field(x, "user_id", "bad_format",
                         "user_id must be 1-64 printable ASCII characters, no spaces or quotes");
        return;
    }
    if (!sk_api_act_for(w, x, user, (size_t)ul))
        return;
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
    if (sk_api_query_param(x->req, "after", &v, &vl) && vl > 0 && sk_order_id_parse(s, v, vl, &after) < 0) {
        sk_api_bad_field(x, "after", "bad_format", "after must be an order id of this sale");
        return;
    }
    if (sk_api_query_param(x->req, "limit", &v, &vl) && sk_parse_i64(v, vl, 1, LIST_LIMIT_MAX, &limit) < 0) {
        sk_api_bad_field(x, "limit", "out_of_range", "limit must be an integer from 1 to 10000");
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

sk_sale_t *sk_api_find_order_or_404(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id, uint64_t *seq)
{
    size_t sale_len;
    if (sk_order_id_split(id->p, id->len, &sale_len, seq) != 0) {
        sk_http_respond_error(x, 404, "unknown_order", "no order with that id"); /* no order has it */
        return NULL;
    }
    return sk_api_find_or_park(w, x, &(sk_str_t){id->p, sale_len}, "unknown_order", "no order with that id");
}

static void get_done(sk_op_t *op)
{
    if (refused(op))
        return;
    /* With identity configured a buyer sees only their own orders: the requester was
     * kept in op->user_id (empty for an admin) before the owner was known. */
    if (op->user_len && strcmp(op->user_id, op->order.user_id) != 0) {
        static const char body[] = "{\"error\":\"forbidden\",\"message\":\"this order belongs to another user\"}\n";
        sk_http_deferred_respond(op->ctx, 403, "application/json", NULL, body, sizeof(body) - 1);
        sk_op_free(op);
        return;
    }
    sk_buf_t b = {0};
    order_json(&b, op->sale, &op->order, true);
    sk_buf_putc(&b, '\n');
    sk_http_deferred_respond(op->ctx, 200, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
    sk_op_free(op);
}

void sk_api_order_get(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    uint64_t seq;
    sk_sale_t *s = sk_api_find_order_or_404(w, x, &params[0], &seq);
    if (!s)
        return;
    sk_api_identity_t who;
    sk_api_identify(w, x, &who);
    if (w->api->identity && !who.admin && !who.user) {
        sk_api_identity_refuse(w, x, &who);
        return;
    }
    sk_op_t *op = sk_op_new(SK_OP_GET_ORDER);
    op->sale = s;
    op->seq = seq;
    op->done = get_done;
    if (w->api->identity && !who.admin) {
        memcpy(op->user_id, who.user, who.user_len);
        op->user_id[who.user_len] = '\0';
        op->user_len = (uint8_t)who.user_len;
    }
    op->ctx = sk_http_defer(x);
    sk_engine_submit(w->ew, op);
}
