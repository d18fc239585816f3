/* What the files of src/api/ share, and nothing outside it includes: the API's state,
 * each worker's state, and the small helpers every resource's handlers use.
 *
 * Threads: sk_api_t is read-only after start-up (except the worker list, appended to
 * while the workers start, and the deny list, replaced by a reload under deny_mu; the
 * rate-limit tables are shared by every worker through atomics). An sk_api_worker_t
 * belongs to its worker's loop thread; only its counters (and sse_total) are read by
 * other workers, for /metrics, and only deny_next is written by another thread (the
 * reload's hand-over). */
#ifndef SK_API_INTERNAL_H
#define SK_API_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "api/api.h"
#include "api/body.h"
#include "api/deny.h"
#include "crypto/hmac.h"
#include "engine/control.h"
#include "http/router.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/ratelimit.h"

#define SK_API_TOKEN_NAME_MAX 32
/* Buckets of each rate-limit table (--ip-rate, --user-rate): 2^18 in 2 MiB, shared by
 * every worker (util/ratelimit.h says how a full table behaves). */
#define SK_API_RATE_TABLE (1 << 18)

/* A configured token, kept as its HMAC under a random per-process key: a presented
 * token is compared by its HMAC, so the comparison's time says nothing about the
 * secret's length or its bytes. */
typedef struct {
    char name[SK_API_TOKEN_NAME_MAX + 1];
    uint8_t digest[SK_SHA256_LEN];
} sk_api_secret_t;

/* Counted refusals of the front door, per worker, for /metrics. */
typedef enum {
    SK_API_LIMITED_IP, /* 429: the client address's bucket was empty */
    SK_API_LIMITED_USER, /* 429: the user's */
    SK_API_DENIED_IP, /* 403 denied */
    SK_API_DENIED_USER,
    SK_API_UNAUTHENTICATED, /* 401: identity required and none (valid) given */
    SK_API_FORBIDDEN, /* 403: identified as another user */
    SK_API_CROSS_SITE, /* 403: an admin request from another site */
    SK_API_NOT_JSON, /* 415: an admin body that is not application/json */
    SK_API_REFUSED__COUNT
} sk_api_refusal_t;

/* Tokens refused, by kind and reason. */
typedef enum {
    SK_API_TOK_ADMIN,
    SK_API_TOK_METRICS,
    SK_API_TOK_USER,
    SK_API_TOK_ADMISSION,
    SK_API_TOK_POW,
    SK_API_TOK__COUNT
} sk_api_token_kind_t;
typedef enum {
    SK_API_WHY_MALFORMED,
    SK_API_WHY_BAD_MAC,
    SK_API_WHY_EXPIRED,
    SK_API_WHY_TOO_FEW_BITS,
    SK_API_WHY_WRONG,
    SK_API_WHY__COUNT
} sk_api_token_why_t;

struct sk_api {
    sk_api_config_t cfg; /* its pointers are not kept: the copies below are */
    sk_router_t *router; /* sk_api_routes, compiled */
    sk_api_worker_t *workers[SK_API_MAX_WORKERS];
    _Atomic size_t n_workers;

    /* The front door, read-only after sk_api_new except the deny list. */
    sk_hmac_key_t compare_key; /* random: configured and presented tokens are compared as HMACs */
    sk_api_secret_t *admins, *metrics_tokens;
    size_t n_admins, n_metrics_tokens;
    char *user_header;
    sk_cidr_t *trusted;
    size_t n_trusted;
    bool user_tokens; /* user_key is set */
    sk_hmac_key_t user_key;
    sk_hmac_key_t secret; /* admission tokens, proof-of-work challenges */
    bool payment_key_set; /* payment signatures can be checked */
    sk_hmac_key_t payment_key; /* the payment provider's signatures (X-Seckill-Signature) */
    bool identity; /* a user header or user tokens: the body's user_id is not taken at its word */
    sk_ratelimit_t *ip_limit, *user_limit; /* NULL: off */
    char *deny_path;
    pthread_mutex_t deny_mu; /* reloads and worker registration */
    sk_api_deny_t *deny; /* the current list (one reference); under deny_mu */
    bool check_ip; /* an /api/ request is checked by its client's address (deny, ip_rate) */
    bool check_user; /* sk_api_act_for has something to check */
};

struct sse_sale; /* events.c: one sale's subscribers on this worker */
struct qsub_sale; /* queue.c: one sale's queue subscribers on this worker */

struct sk_api_worker {
    sk_api_t *api;
    sk_loop_t *loop;
    sk_http_server_t *server;
    sk_engine_worker_t *ew;
    sk_counter_t (*purchases)[SK_BUY__COUNT]; /* [sale index][result] */
    struct sse_sale *sse; /* [sale index], made on the first subscriber */
    struct qsub_sale *qsubs; /* [sale index], made on the first queue subscriber */
    _Atomic size_t qsubs_total; /* written by its worker, read by /metrics */
    uint64_t queue_tick_ms; /* when queue positions were last sent */
    _Atomic size_t sse_total;
    sk_timer_t sse_timer;
    uint64_t last_ping_ms;
    sk_buf_t scratch; /* reused by synchronous answers of this worker */
    sk_counter_t refused[SK_API_REFUSED__COUNT];
    sk_counter_t tokens[SK_API_TOK__COUNT][SK_API_WHY__COUNT];
    sk_api_deny_t *deny; /* the list this worker uses (one reference) */
    _Atomic(sk_api_deny_t *) deny_next; /* handed over by a reload (one reference) */
    sk_async_t deny_wake;
    bool deny_wake_on;
};

/** The store's clock as best known here (the local clock plus the offset the backend
 *  measured): the clock the store decides windows and admissions by. */
static inline int64_t sk_api_store_now(const sk_api_worker_t *w)
{
    return sk_engine_store_now(w->api->cfg.engine);
}

/* ---- api.c: the routing table and shared helpers ---- */

/** The routes; their names label the request counters of /metrics (route index + 1,
 *  0 for requests that matched no route). */
extern const sk_route_t sk_api_routes[];
extern const size_t sk_api_routes_len;

/** Appends a newline to b and answers it as JSON (b stays the caller's). */
void sk_api_reply_json(sk_http_exchange_t *x, int status, sk_buf_t *b);
/** Answers 400 {"error":"bad_request","message":...,"field":...,"code":...}: the field at
 *  fault, the rule it broke as a code a client can translate (api/body.h lists them),
 *  and a message that says it in English. */
void sk_api_bad_field(sk_http_exchange_t *x, const char *field, const char *code, const char *message);
/** The same from a field error (api/body.h). */
void sk_api_field_refused(sk_http_exchange_t *x, const sk_api_field_error_t *e);
/** The sale with that id, or NULL after answering 404, or after parking the request
 *  while the id is looked up in a store shared with other nodes (sk_api_find_or_park). */
sk_sale_t *sk_api_find_sale_or_404(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id);
/** The sale with that id (the first sale_len bytes of id), or NULL. On NULL the request
 *  was answered with not_found's code and message (sk_api_not_found), or 503/429 when
 *  the store could not be asked, or parked: on a store shared with other nodes a sale
 *  made on another node in the last moments may not be in this node's cache yet, so a
 *  miss is looked up in the store, and the request is handled again when the answer is
 *  in (found: as if it had just come; not found: 404). */
sk_sale_t *sk_api_find_or_park(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id, const char *code,
                               const char *message);
/** Answers 404 with code and message for a sale id unknown here (or an order id of such a
 *  sale), or 503 once the store may hold sales this node does not know
 *  (sk_engine_store_unsure) and the id is one a sale could have. */
void sk_api_not_found(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *sale_id, const char *code,
                      const char *message);
/** sk_api_not_found with unknown_sale. */
void sk_api_unknown_sale(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id);
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

/* ---- auth.c: who the operator is ---- */

/** The name of the admin whose token the request carries ("Authorization: Bearer
 *  TOKEN"), or NULL. With no admin token configured every request is the admin, named
 *  "anonymous". Never answers. Any worker. */
const char *sk_api_admin_name(sk_api_worker_t *w, const sk_http_exchange_t *x);
/** The gate of every admin endpoint: refuses a cross-site request (an Origin that is not
 *  this Host, or Sec-Fetch-Site: cross-site: 403 cross_site), a missing or wrong token
 *  (401) and a body that is not application/json (415). Returns the acting admin's name
 *  (for the operator-controls trail), or NULL after answering. */
const char *sk_api_admin(sk_api_worker_t *w, sk_http_exchange_t *x);
/** sk_api_admin for handlers that need no name. */
static inline bool sk_api_authorized(sk_api_worker_t *w, sk_http_exchange_t *x)
{
    return sk_api_admin(w, x) != NULL;
}
/** /metrics: true when no --metrics-token is set, or the request carries a metrics or an
 *  admin token; otherwise answers 401. */
bool sk_api_metrics_authorized(sk_api_worker_t *w, sk_http_exchange_t *x);
/** True when the request comes from another site (Origin, Sec-Fetch-Site). */
bool sk_api_cross_site(const sk_http_request_t *req);

/* ---- identity.c: who the buyer is, and the front door's checks ---- */

/** Who a request comes from. `user` is set when a trusted proxy's user header or a valid
 *  user token names someone (borrowed from the request: valid during the handler call;
 *  copy it to keep it); `problem` says why a presented identity was refused (for the
 *  401); `admin` is the acting admin's name or NULL (sk_api_admin_name). */
typedef struct {
    const char *user;
    size_t user_len;
    const char *admin;
    const char *problem;
} sk_api_identity_t;

/** Identifies the request (see sk_api_identity_t). Never answers; counts a refused user
 *  token. */
void sk_api_identify(sk_api_worker_t *w, const sk_http_exchange_t *x, sk_api_identity_t *id);
/** May this identity act for `user`? Yes without configured identity (the body's word,
 *  the demo), for that same user, and for an admin. */
bool sk_api_identity_may(const sk_api_t *api, const sk_api_identity_t *id, const char *user, size_t ul);
/** Answers why `id` may not act for `user`: 401 unauthenticated (nobody, or a refused
 *  identity) or 403 forbidden (somebody else). */
void sk_api_identity_refuse(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_api_identity_t *id);

/** The one call of a handler that acts for a user (a purchase, a cancel, a user's
 *  orders, a queue join): true when the request may act for `user` (see
 *  sk_api_identity_may), the user is not on the deny list and, unless an admin acts,
 *  within --user-rate. Otherwise answers 401 / 403 forbidden / 403 denied / 429 and
 *  returns false. Costs a few branches when nothing is configured. A handler that learns
 *  the user only later (an order's owner, after a lookup) calls sk_api_identify first,
 *  keeps a copy of the user, and checks with sk_api_identity_may then. */
bool sk_api_act_for(sk_api_worker_t *w, sk_http_exchange_t *x, const char *user, size_t ul);

/** The client's address: the socket's peer, or when the peer is a trusted proxy the
 *  address it forwarded (X-Forwarded-For, the last address not itself a trusted proxy;
 *  else X-Real-IP). */
void sk_api_client_ip(const sk_api_t *api, const sk_http_exchange_t *x, sk_ip_t *out);
/** The forwarded part of that, for a request from a trusted proxy: *ip holds the peer
 *  and is replaced by what the headers say (unchanged when they say nothing usable). */
void sk_api_forwarded_ip(const sk_http_request_t *req, const sk_cidr_t *trusted, size_t n, sk_ip_t *ip);

/** Checks an /api/ request by its client's address before its handler runs: the deny
 *  list (403 denied) and --ip-rate (429 with Retry-After; requests carrying a valid admin
 *  token are not counted). Returns false after answering. */
bool sk_api_front_request(sk_api_worker_t *w, sk_http_exchange_t *x);

/** A purchase on a queued sale: true when `tok` (the body's "admission", or when tok is
 *  NULL the X-Seckill-Admission header) is a valid, unexpired admission of `user` to sale
 *  s; otherwise counts the reason and answers 403 not_admitted. Worker thread; one HMAC. */
bool sk_api_admitted(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_sale_t *s, const char *user, size_t ul,
                     const char *tok, size_t tl);
/** The check of sk_api_admitted without the answer, at `now` on the store's clock
 *  (sk_api_store_now: the clock the store writes admissions' expiry by): true when
 *  valid; else counts the reason and returns false. */
bool sk_api_admission_ok(sk_api_worker_t *w, const sk_http_exchange_t *x, const sk_sale_t *s, const char *user,
                         size_t ul, const char *tok, size_t tl, int64_t now);
/** Answers 403 not_admitted for a purchase whose admission (tok, or the header) failed. */
void sk_api_refuse_admission(sk_api_worker_t *w, sk_http_exchange_t *x, const char *tok, size_t tl);
/** Counts a refused token of `kind` for a negative sk_token_* or sk_pow_* code. */
void sk_api_count_token(sk_api_worker_t *w, sk_api_token_kind_t kind, int rc);
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
void sk_api_sale_pause(sk_http_exchange_t *x, const sk_str_t *params, void *arg); /* controls.c */
void sk_api_sale_resume(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_sale_close(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_sale_stock(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_sale_patch(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_sale_log(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
void sk_api_events(sk_http_exchange_t *x, const sk_str_t *params, void *arg); /* events.c */
void sk_api_queue_join(sk_http_exchange_t *x, const sk_str_t *params, void *arg); /* queue.c */
void sk_api_queue_events(sk_http_exchange_t *x, const sk_str_t *params, void *arg);
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
/** Reads the settings a sale body may carry (name, starts_at, ends_at, per_user_limit,
 *  max_quantity, payment_window_ms: create and PATCH) into a PATCH control, each checked
 *  alone (the writer checks them together). Returns 0 or -EINVAL with *e. */
int sk_api_sale_settings(json_t *root, bool as_real, sk_control_t *c, sk_api_field_error_t *e);

/** Reads one query parameter (raw, not decoded). */
bool sk_api_query_param(const sk_http_request_t *req, const char *name, const char **v, size_t *vl);

/* ---- queue.c ---- */

/** Appends the queue's answer for one place as a JSON object: sale_id, user_id,
 *  position (null before a random draw), ahead, eta_ms (null when nobody is admitted:
 *  sold out, paused, ended), state, admission (a fresh token while the admission is
 *  good, else null) and admission_expires_at, queue_length, admitted, admit_per_second.
 *  `head` is the queue's head as published (sk_sale_t.q_head) or newer. */
void sk_api_queue_place_json(sk_api_worker_t *w, sk_buf_t *b, const sk_sale_t *s, const char *user, size_t ul,
                             const sk_queue_place_t *pl, uint64_t head, int64_t now);
/** Per-worker queue subscribers: the tick (called from the event tick) and the end. */
void sk_api_queue_tick(sk_api_worker_t *w, int64_t now);
void sk_api_queue_events_free(sk_api_worker_t *w);

/* ---- events.c ---- */

/** Starts the worker's event-stream tick (loop thread). */
void sk_api_events_init(sk_api_worker_t *w);
/** Stops the tick and frees the subscriber lists (the streams were closed before). */
void sk_api_events_free(sk_api_worker_t *w);

#endif
