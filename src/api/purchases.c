/* POST /api/v1/sales/{id}/purchase.
 *
 * Unknown sale, not started, a bad quantity, and — for buyers who hold no order of the
 * sale — ended, paused and sold out are answered on the worker thread (the gate,
 * gate.c), without ever touching the ledger. Only purchases that may succeed, and
 * possible holders (whose replay the ledger answers), are queued to the ledger, and
 * their answers are deferred until the ledger's batch is durable. On a queued sale a
 * purchase without a valid admission is refused (not_admitted) after the start and
 * before every other answer of the gate. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/body.h"
#include "api/internal.h"

static const int buy_status[SK_BUY__COUNT] = {201, 200, 409, 409, 425, 410, 503, 429, 201, 409, 400, 403};

static void put_order_id(sk_buf_t *b, const sk_sale_t *s, uint64_t seq)
{
    char id[SK_ORDER_ID_MAX + 1];
    sk_buf_puts(b, "\"order_id\":\"");
    sk_buf_append(b, id, sk_order_id(id, s, seq));
    sk_buf_putc(b, '"');
}

/* Writes the purchase answer body. A holder's limit_reached and sold_out (held > 0)
 * name their first order and how many units they hold. */
static void buy_body(sk_buf_t *b, const sk_sale_t *s, sk_buy_result_t r, const sk_order_t *order, uint32_t held,
                     int64_t remaining, int64_t starts_in, uint32_t quantity)
{
    switch (r) {
    case SK_BUY_CONFIRMED:
    case SK_BUY_RESERVED:
    case SK_BUY_DUPLICATE: {
        /* The answer of every confirmed purchase: room for its longest form is made once
         * (names of at most 16 bytes, the order id, three numbers of at most 20 digits),
         * then it is written straight into it. */
        sk_buf_reserve(b, 192 + SK_ORDER_ID_MAX);
        char *p = b->data + b->len;
        p = SK_PUT_LIT(p, "{\"result\":\"");
        p = sk_put_str(p, sk_buy_result_names[r]);
        p = SK_PUT_LIT(p, "\",\"order_id\":\"");
        p += sk_order_id(p, s, order->seq);
        *p++ = '"';
        if (r == SK_BUY_DUPLICATE) {
            p = SK_PUT_LIT(p, ",\"state\":\"");
            p = sk_put_str(p, sk_order_state_name(order->state));
            *p++ = '"';
        }
        p = SK_PUT_LIT(p, ",\"quantity\":");
        p += sk_fmt_u64(p, order->quantity);
        if (order->pay_by) {
            p = SK_PUT_LIT(p, ",\"pay_by\":");
            p += sk_fmt_i64(p, order->pay_by);
        }
        p = SK_PUT_LIT(p, ",\"remaining\":");
        p += sk_fmt_i64(p, remaining);
        p = SK_PUT_LIT(p, "}\n");
        b->len = (size_t)(p - b->data);
        return;
    }
    case SK_BUY_LIMIT_REACHED:
        sk_buf_puts(b, "{\"error\":\"limit_reached\",\"message\":\"this buyer already holds the most units "
                       "allowed\"");
        if (held) {
            sk_buf_putc(b, ',');
            put_order_id(b, s, order->seq);
        }
        sk_buf_puts(b, ",\"held\":");
        sk_buf_put_i64(b, held);
        sk_buf_puts(b, "}\n");
        return;
    case SK_BUY_SOLD_OUT:
        sk_buf_puts(b, remaining > 0 ? "{\"error\":\"sold_out\",\"message\":\"fewer units remain than asked for\""
                                     : "{\"error\":\"sold_out\",\"message\":\"every unit has been sold\"");
        sk_buf_puts(b, ",\"remaining\":");
        sk_buf_put_i64(b, remaining);
        if (held) {
            sk_buf_putc(b, ',');
            put_order_id(b, s, order->seq);
            sk_buf_puts(b, ",\"held\":");
            sk_buf_put_i64(b, held);
        }
        sk_buf_puts(b, "}\n");
        return;
    case SK_BUY_NOT_STARTED:
        sk_buf_puts(b, "{\"error\":\"not_started\",\"message\":\"the sale has not started\",\"starts_in_ms\":");
        sk_buf_put_i64(b, starts_in);
        sk_buf_puts(b, "}\n");
        return;
    case SK_BUY_ENDED:
        sk_buf_puts(b, "{\"error\":\"ended\",\"message\":\"the sale has ended\"}\n");
        return;
    case SK_BUY_PAUSED:
        sk_buf_puts(b, "{\"error\":\"paused\",\"message\":\"the sale is paused; try again later\"}\n");
        return;
    case SK_BUY_BAD_QUANTITY:
        sk_buf_printf(b,
                      "{\"error\":\"bad_request\",\"message\":\"quantity must be at most this sale's max_quantity "
                      "(%d); %u is above it\",\"field\":\"quantity\",\"code\":\"out_of_range\"}\n",
                      s ? sk_sale_params(s)->max_quantity : 1, quantity);
        return;
    case SK_BUY_NOT_ADMITTED:
        sk_buf_puts(b, "{\"error\":\"not_admitted\",\"message\":\"this sale admits buyers through its waiting room: "
                       "join the queue and buy with the admission it gives\"}\n");
        return;
    case SK_BUY_RATE_LIMITED:
        sk_buf_puts(b, "{\"error\":\"rate_limited\",\"message\":\"too many purchases in flight; nothing was "
                       "confirmed, retry with the same request_id\"}\n");
        return;
    default:
        sk_buf_puts(b, "{\"error\":\"unavailable\",\"message\":\"the order store is unavailable; nothing was "
                       "confirmed, retry with the same request_id\"}\n");
        return;
    }
}

/* Answers a purchase the worker decided itself (the gate). */
static void respond_now(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_sale_t *s, sk_buy_result_t r,
                        int64_t remaining, int64_t starts_in, uint32_t quantity)
{
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    sk_api_count(w, s, r);
    buy_body(b, s, r, NULL, 0, remaining, starts_in, quantity);
    sk_http_respond(x, buy_status[r], "application/json", b->data, b->len);
}

static void purchase_done(sk_op_t *op)
{
    sk_api_worker_t *w = op->owner;
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    if (!op->sale && op->status == -ENOENT) {
        /* Looked up after a cache miss (sk_api_lookup_stub) and not found. */
        static const char body[] = "{\"error\":\"unknown_sale\",\"message\":\"no sale with that id\"}\n";
        sk_http_deferred_respond(op->ctx, 404, "application/json", NULL, body, sizeof(body) - 1);
        sk_engine_op_recycle(w->ew, op);
        return;
    }
    if (op->sale)
        sk_api_count(w, op->sale, op->result);
    buy_body(b, op->sale, op->result, &op->order, op->held, op->remaining,
             op->sale ? SK_MAX(sk_sale_params(op->sale)->starts_at - op->now_ms, 0) : 0, op->quantity);
    const char *extra =
        op->result == SK_BUY_UNAVAILABLE || op->result == SK_BUY_RATE_LIMITED ? "Retry-After: 1\r\n" : NULL;
    sk_http_deferred_respond(op->ctx, buy_status[op->result], "application/json", extra, b->data, b->len);
    sk_engine_op_recycle(w->ew, op);
}

void sk_api_purchase(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    sk_sale_t *s = sk_engine_find_sale(w->api->cfg.engine, params[0].p, params[0].len);
    sk_sale_t *stub = s ? NULL : sk_api_lookup_stub(w, &params[0]);
    if (!s && !stub) {
        sk_api_unknown_sale(w, x, &params[0]);
        return;
    }
    /* The store's clock as best known here: the store decides the window by it. */
    int64_t now = sk_api_store_now(w);
    sk_buy_result_t r;
    /* Before the start nobody holds an order: answered before the body is read. (A
     * looked-up sale's window is checked by the backend's store, which decides.) */
    if (s && sk_api_gate_window(s, now, &r)) {
        respond_now(w, x, s, r, sk_sale_remaining(s), SK_MAX(sk_sale_params(s)->starts_at - now, 0), 1);
        return;
    }
    char user[SK_USER_MAX + 1], req[SK_REQUEST_MAX + 1], adm[SK_API_ADMISSION_MAX + 1];
    size_t ul, rl, al;
    uint32_t q;
    sk_api_field_error_t fe;
    if (sk_api_parse_purchase(x->body, x->body_len, sk_api_is_form(x->req, x->body, x->body_len), user, &ul, req, &rl,
                              &q, adm, &al, &fe) < 0) {
        free(stub); /* a bare stub: no params, no holders */
        sk_api_field_refused(x, &fe);
        return;
    }
    /* Who may buy for this user: before the gate's answers, which may name their orders. */
    if (!sk_api_act_for(w, x, user, ul)) {
        free(stub);
        return;
    }
    uint64_t hash = sk_user_hash(user, ul);
    /* A queued sale: only with an admission of this buyer (one HMAC, on this thread),
     * checked before the gate's answers, in the writer's order (a holder's replay, the
     * admission, then the sale's rules): without one a buyer hears not_admitted whether
     * the sale is open, sold out, paused or ended, and never an answer that depends on
     * whether a probabilistic set happens to name it. A buyer who may hold an order
     * goes on without one, marked, so that a replay of its request still hears its first
     * answer (I5); the writer refuses the rest. Until the store publishes the sale's
     * users (Redis: once it is done) anyone may be a holder. A sale this node has not
     * cached yet (a store shared by nodes looks it up) cannot be checked here: the op
     * goes marked, and the store refuses it if the sale turns out to be queued. */
    bool unadmitted = !s;
    if (s && sk_sale_params(s)->queue != SK_QUEUE_OFF) {
        sk_userset_t *users = atomic_load_explicit(&s->users, memory_order_acquire);
        if (!sk_api_admission_ok(w, x, s, user, ul, al ? adm : NULL, al, now)) {
            if (rl == 0 || (users && !sk_userset_may_contain(users, hash))) {
                sk_api_refuse_admission(w, x, al ? adm : NULL, al);
                return;
            }
            unadmitted = true;
        }
    }
    int64_t remaining;
    if (s && !unadmitted && sk_api_gate_buyer(s, now, hash, q, &r, &remaining)) {
        respond_now(w, x, s, r, remaining, SK_MAX(sk_sale_params(s)->starts_at - now, 0), q);
        return;
    }
    sk_op_t *op = sk_engine_op_new(w->ew, SK_OP_BUY);
    op->sale = s;
    op->new_sale = stub;
    op->now_ms = now;
    memcpy(op->user_id, user, ul + 1);
    op->user_len = (uint8_t)ul;
    memcpy(op->request_id, req, rl + 1);
    op->request_len = (uint8_t)rl;
    op->quantity = q;
    op->user_hash = hash;
    op->unadmitted = unadmitted;
    op->ctx = sk_http_defer(x);
    op->owner = w;
    op->done = purchase_done;
    sk_engine_submit(w->ew, op);
}
