/* What the files of src/api/ share, and nothing outside it includes: the API's state,
 * each worker's state, and the small helpers every resource's handlers use.
 *
 * Threads: sk_api_t is read-only after start-up (except the worker list, appended to
 * while the workers start). An sk_api_worker_t belongs to its worker's loop thread;
 * only its counters (and sse_total) are read by other workers, for /metrics. */
#ifndef SK_API_INTERNAL_H
#define SK_API_INTERNAL_H

#include <stdbool.h>

#include "api/api.h"
#include "http/router.h"
#include "util/buf.h"

struct sk_api {
    sk_api_config_t cfg;
    size_t token_len;
    sk_api_worker_t *workers[SK_API_MAX_WORKERS];
    _Atomic size_t n_workers;
};

struct sse_sale; /* events.c: one sale's subscribers on this worker */

struct sk_api_worker {
    sk_api_t *api;
    sk_loop_t *loop;
    sk_http_server_t *server;
    sk_engine_worker_t *ew;
    sk_counter_t (*purchases)[SK_BUY__COUNT]; /* [sale index][result] */
    struct sse_sale *sse; /* [sale index], made on the first subscriber */
    _Atomic size_t sse_total;
    sk_timer_t sse_timer;
    uint64_t last_ping_ms;
    sk_buf_t scratch; /* reused by synchronous answers of this worker */
};

/* ---- api.c: the routing table and shared helpers ---- */

/** The routes; their names label the request counters of /metrics (route index + 1,
 *  0 for requests that matched no route). */
extern const sk_route_t sk_api_routes[];
extern const size_t sk_api_routes_len;

/** Appends a newline to b and answers it as JSON (b stays the caller's). */
void sk_api_reply_json(sk_http_exchange_t *x, int status, sk_buf_t *b);
/** Answers 400 {"error":"bad_request","message":...,"field":...}. */
void sk_api_bad_field(sk_http_exchange_t *x, const char *field, const char *message);
/** The sale with that id, or NULL after answering 404. */
sk_sale_t *sk_api_find_sale_or_404(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id);
/** A stub sale (owned by the caller, or by the op it is handed to) to look an id up in a
 *  shared store after a cache miss; NULL when a miss is a plain 404. */
sk_sale_t *sk_api_lookup_stub(sk_api_worker_t *w, const sk_str_t *id);
/** Counts one purchase answer of sale s (this worker's counter). */
void sk_api_count(sk_api_worker_t *w, const sk_sale_t *s, sk_buy_result_t r);

/* ---- gate.c: the purchase gate ---- */

/** Before the body is read: a purchase before the sale's start is answered by the
 *  worker (not_started). Returns true with *r set when it is. */
bool sk_api_gate_window(const sk_sale_t *s, int64_t now, sk_buy_result_t *r);
/** After the body: a purchase the worker answers itself — the buyer holds no order of
 *  the sale and the sale refuses it (ended, paused, sold_out), or its quantity is above
 *  the sale's max_quantity. Returns true with *r and *remaining set; false: the backend
 *  decides. */
bool sk_api_gate_buyer(const sk_sale_t *s, int64_t now, uint64_t user_hash, uint32_t q, sk_buy_result_t *r,
                       int64_t *remaining);

/* ---- auth.c ---- */

/** True when the request carries the admin token (or none is configured); otherwise
 *  answers 401 and returns false. */
bool sk_api_authorized(sk_api_worker_t *w, sk_http_exchange_t *x);
/** True when an admin token is configured and the request carries it (answers nothing). */
bool sk_api_has_admin_token(sk_api_worker_t *w, const sk_http_exchange_t *x);
/** True when the request may pay: it carries a valid payment signature of its body, or
 *  the configured admin token; otherwise answers 401 and returns false. */
bool sk_api_payment_authorized(sk_api_worker_t *w, sk_http_exchange_t *x);
/** Test seam and the signature's one definition: "sha256=" + the lowercase hex HMAC-SHA256
 *  of body keyed by key, into out (at least 72 bytes). Returns the length. */
size_t sk_api_payment_signature(const unsigned char *key, size_t key_len, const char *body, size_t len, char *out);

/* ---- the handlers, one file per resource ---- */

void sk_api_purchase(sk_http_exchange_t *x, const sk_str_t *params, void *arg); /* purchases.c */
void sk_api_sales_list(sk_http_exchange_t *x, const sk_str_t *params, void *arg); /* sales.c */
void sk_api_sale_get(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_sale_create(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_user_orders(sk_http_exchange_t *x, const sk_str_t *params, void *arg); /* orders.c */
void sk_api_orders_list(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_order_get(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_order_pay(sk_http_exchange_t *x, const sk_str_t *params, void *arg); /* transitions.c */
void sk_api_order_demo_pay(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_order_cancel(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_order_refund(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_events(sk_http_exchange_t *x, const sk_str_t *params, void *arg); /* events.c */
void sk_api_healthz(sk_http_exchange_t *x, const sk_str_t *params, void *arg); /* metrics.c */
void sk_api_config(sk_http_exchange_t *x, const sk_str_t *params, void *arg); /* config.c */
void sk_api_metrics(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_page(sk_http_exchange_t *x, const sk_str_t *params, void *arg); /* static.c */
void sk_api_admin_page(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_asset(sk_http_exchange_t *x, const sk_str_t *params, void *arg);

/* ---- orders.c ---- */

/** Appends an order as a JSON object's members (no braces): order_id, sale_id, then
 *  user_id when with_user, request_id, quantity, state, created_at, pay_by, payment_id,
 *  paid_at, closed_at (null when not set). */
void sk_api_order_fields(sk_buf_t *b, const sk_sale_t *s, const sk_order_t *o, bool with_user);
/** The sale and seq of an order id "<sale>-<seq>" (the sale id may hold '-'), or NULL
 *  after answering 404 unknown_order. */
sk_sale_t *sk_api_find_order_or_404(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id, uint64_t *seq);
/** Answers an order op that failed (status < 0): 404, 403, 429, 501 or 503. Returns true
 *  when it did (and freed the op). */
bool sk_api_order_refused(sk_op_t *op);

/* ---- sales.c ---- */

/** Appends the sale as a JSON object (its counts as of now). */
void sk_api_sale_json(sk_buf_t *b, const sk_sale_t *s, int64_t now);

/* ---- events.c ---- */

/** Starts the worker's event-stream tick (loop thread). */
void sk_api_events_init(sk_api_worker_t *w);
/** Stops the tick and frees the subscriber lists (the streams were closed before). */
void sk_api_events_free(sk_api_worker_t *w);

#endif
