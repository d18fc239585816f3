/* An order's transitions (engine/order.h), each decided by the sale's ledger in order
 * with the purchases and durable before its answer:
 *   POST /api/v1/orders/{id}/pay       the payment provider's callback, {"payment_id"},
 *                                      signed (X-Seckill-Signature) or the admin token
 *   POST /api/v1/orders/{id}/cancel    the buyer ({"user_id"} must own it) or the admin
 *   POST /api/v1/orders/{id}/refund    the admin
 *   POST /api/v1/orders/{id}/demo-pay  only with --demo-payments: a demo's Pay button,
 *                                      paid as the provider would (payment id demo-<id>)
 * Answers: 200 with the order and "result" (confirmed, duplicate, cancelled, refunded);
 * 409 with the rule that refused it and the order's state; 404, 403, 401, 503. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/body.h"
#include "api/internal.h"

static const char *ok_result(const sk_op_t *op)
{
    if (op->tr == SK_TR_DUPLICATE)
        return "duplicate";
    return op->kind == SK_OP_PAY ? "confirmed" : op->kind == SK_OP_CANCEL ? "cancelled" : "refunded";
}

static const char *refusal_message(sk_tr_result_t r)
{
    switch (r) {
    case SK_TR_EXPIRED:
        return "the reservation expired before this payment arrived: the order is not confirmed, refund the payment";
    case SK_TR_CANCELLED:
        return "the order was cancelled: it is not confirmed, refund the payment";
    case SK_TR_REFUNDED:
        return "the order was refunded: it is not confirmed again, refund the payment";
    case SK_TR_ALREADY_PAID:
        return "the order was paid with another payment_id: refund this one";
    case SK_TR_NOT_RESERVED:
        return "only a reserved order can be cancelled";
    case SK_TR_NOT_CONFIRMED:
        return "only a confirmed order can be refunded";
    default:
        return "the order cannot make this transition";
    }
}

static void transition_done(sk_op_t *op)
{
    if (sk_api_order_refused(op))
        return;
    sk_buf_t b = {0};
    int status = 200;
    if (op->tr == SK_TR_OK || op->tr == SK_TR_DUPLICATE) {
        sk_buf_puts(&b, "{\"result\":\"");
        sk_buf_puts(&b, ok_result(op));
        sk_buf_puts(&b, "\",");
    } else {
        status = 409;
        sk_buf_puts(&b, "{\"error\":\"");
        sk_buf_puts(&b, sk_tr_result_name(op->tr));
        sk_buf_puts(&b, "\",\"message\":");
        const char *m = refusal_message(op->tr);
        sk_buf_put_json_str(&b, m, strlen(m));
        sk_buf_putc(&b, ',');
    }
    sk_api_order_fields(&b, op->sale, &op->order, true);
    sk_buf_puts(&b, "}\n");
    sk_http_deferred_respond(op->ctx, status, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
    sk_op_free(op);
}

/* The op for the order named in the path; NULL (after answering 404) when no sale has
 * such an order id. A store without the lifecycle answers the op itself (501). */
static sk_op_t *order_op(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id, sk_op_kind_t kind)
{
    uint64_t seq;
    sk_sale_t *s = sk_api_find_order_or_404(w, x, id, &seq);
    if (!s)
        return NULL;
    sk_op_t *op = sk_op_new(kind);
    op->sale = s;
    op->seq = seq;
    op->done = transition_done;
    return op;
}

static void submit(sk_api_worker_t *w, sk_http_exchange_t *x, sk_op_t *op)
{
    op->ctx = sk_http_defer(x);
    sk_engine_submit(w->ew, op);
}

static void pay(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id, const char *payment, size_t len)
{
    sk_op_t *op = order_op(w, x, id, SK_OP_PAY);
    if (!op)
        return;
    memcpy(op->payment_id, payment, len + 1);
    op->payment_len = (uint8_t)len;
    /* sk_engine_submit stamps it with when it was received: pay_by is judged by that. */
    submit(w, x, op);
}

void sk_api_order_pay(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    /* Authenticated before the body is even read for its fields: the signature covers
     * the raw bytes. */
    if (!sk_api_payment_authorized(w, x))
        return;
    char payment[SK_PAYMENT_ID_MAX + 1];
    size_t len;
    if (sk_api_parse_one_string(x->body, x->body_len, "payment_id", payment, sizeof(payment), &len) != 0 ||
        !sk_valid_payment_id(payment, len)) {
        sk_api_bad_field(x, "payment_id", "bad_format",
                         "the body must be {\"payment_id\":\"...\"}: 1-64 printable ASCII characters, no spaces or "
                         "quotes");
        return;
    }
    pay(w, x, &params[0], payment, len);
}

void sk_api_order_demo_pay(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    if (!w->api->cfg.demo_payments) {
        sk_http_respond_error(x, 404, "not_found",
                              "no such path (demo payments are off: seckill serve "
                              "--demo-payments)");
        return;
    }
    /* The payment a provider would send for this order, trusted because it is made
     * here: "demo-<order id>" (or "demo-<seq>" when that is too long for a payment id),
     * so a second click is a duplicate, not a second payment. */
    char payment[SK_PAYMENT_ID_MAX + 1];
    size_t sale_len;
    uint64_t seq;
    if (params[0].len + 5 <= SK_PAYMENT_ID_MAX) {
        memcpy(payment, "demo-", 5);
        memcpy(payment + 5, params[0].p, params[0].len);
        payment[5 + params[0].len] = '\0';
    } else if (sk_order_id_split(params[0].p, params[0].len, &sale_len, &seq) == 0) {
        snprintf(payment, sizeof(payment), "demo-%llu", (unsigned long long)seq);
    } else {
        sk_http_respond_error(x, 404, "unknown_order", "no order with that id");
        return;
    }
    pay(w, x, &params[0], payment, strlen(payment));
}

void sk_api_order_cancel(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    char user[SK_USER_MAX + 1];
    size_t ul;
    int rc = sk_api_parse_one_string(x->body, x->body_len, "user_id", user, sizeof(user), &ul);
    if (rc < 0 || (rc == 0 && !sk_valid_user_id(user, ul))) {
        sk_api_bad_field(x, "user_id", "bad_format",
                         "the body must be {\"user_id\":\"...\"} (the buyer who owns the order; the admin may send "
                         "none): 1-64 printable ASCII characters, no spaces or quotes");
        return;
    }
    /* The order's sale first, as every handler that names one: a node that has not
     * cached it yet parks the request and hands it over again once it looked it up
     * (sk_api_find_or_park), and what counts a request (--user-rate) must run once,
     * after that. Without a user_id only the operator may cancel; with one, the request
     * must be able to act for that user (identity, deny list, --user-rate), and the
     * writer checks that the user owns the order. */
    sk_op_t *op = order_op(w, x, &params[0], SK_OP_CANCEL);
    if (!op)
        return;
    if ((rc == 1 && !sk_api_authorized(w, x)) || (rc == 0 && !sk_api_act_for(w, x, user, ul))) {
        sk_op_free(op);
        return;
    }
    if (rc == 0) {
        memcpy(op->user_id, user, ul + 1);
        op->user_len = (uint8_t)ul;
    } else {
        op->admin = true;
    }
    submit(w, x, op);
}

void sk_api_order_refund(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    if (!sk_api_authorized(w, x))
        return;
    sk_op_t *op = order_op(w, x, &params[0], SK_OP_REFUND);
    if (op)
        submit(w, x, op);
}
