/* The HTTP API v1: the routing table, the helpers every resource's handlers share, and
 * the API's life cycle (one sk_api_t, one sk_api_worker_t per worker thread). Each
 * resource has its own file: purchases.c, sales.c, orders.c, transitions.c (pay, cancel,
 * refund), events.c (SSE), static.c, metrics.c, auth.c; body.c parses request bodies. */
#include "api/api.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

void sk_api_reply_json(sk_http_exchange_t *x, int status, sk_buf_t *b)
{
    sk_buf_putc(b, '\n');
    sk_http_respond(x, status, "application/json", b->data, b->len);
}

void sk_api_bad_field(sk_http_exchange_t *x, const char *field, const char *code, const char *message)
{
    sk_buf_t b = {0};
    sk_buf_puts(&b, "{\"error\":\"bad_request\",\"message\":");
    sk_buf_put_json_str(&b, message, strlen(message));
    sk_buf_puts(&b, ",\"field\":");
    sk_buf_put_json_str(&b, field, strlen(field));
    sk_buf_puts(&b, ",\"code\":");
    sk_buf_put_json_str(&b, code, strlen(code));
    sk_buf_putc(&b, '}');
    sk_api_reply_json(x, 400, &b);
    sk_buf_free(&b);
}

void sk_api_field_refused(sk_http_exchange_t *x, const sk_api_field_error_t *e)
{
    sk_api_bad_field(x, e->field, e->code, e->message);
}

void sk_api_not_found(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *sale_id, const char *code,
                      const char *message)
{
    /* After a failed sync, or a sale's write whose outcome could not be learned, the
     * sale may be in the file and come back at the restart: "not found" would be a
     * guess. An id no sale can have is not found all the same. */
    if (sk_engine_store_unsure(w->api->cfg.engine) && sk_valid_sale_id(sale_id->p, sale_id->len))
        sk_http_respond_error(x, 503, "unavailable",
                              "the store failed and what it holds is not known until a restart: retry later");
    else
        sk_http_respond_error(x, 404, code, message);
}

void sk_api_unknown_sale(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id)
{
    sk_api_not_found(w, x, id, "unknown_sale", "no sale with that id");
}

/* What a lookup of a parked request found (sk_http_unpark's tag, x->resumed). */
enum { LOOKED_UP = 1, LOOKUP_MISSED, LOOKUP_FAILED, LOOKUP_REFUSED };

static void parked_lookup_done(sk_op_t *op)
{
    int tag = op->sale                ? LOOKED_UP
              : op->status == -ENOENT ? LOOKUP_MISSED
              : op->status == -EAGAIN ? LOOKUP_REFUSED
                                      : LOOKUP_FAILED;
    sk_http_parked_t *p = op->ctx;
    sk_op_free(op); /* and the stub */
    sk_http_unpark(p, tag);
}

sk_sale_t *sk_api_find_or_park(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id, const char *code,
                               const char *message)
{
    sk_sale_t *s = sk_engine_find_sale(w->api->cfg.engine, id->p, id->len);
    if (s)
        return s;
    sk_sale_t *stub = x->resumed ? NULL : sk_api_lookup_stub(w, id);
    sk_http_parked_t *p = stub ? sk_http_park(x) : NULL;
    bool unparked = stub && !p; /* a chunked body: it cannot be handled twice */
    if (!p)
        free(stub); /* a bare stub: no params, no holders */
    /* Looked up once already and the store could not be asked; or a request that cannot
     * be parked for a sale the store may hold: not a 404, a retry. */
    if (x->resumed == LOOKUP_FAILED || x->resumed == LOOKUP_REFUSED || unparked) {
        static const char body[] = "{\"error\":\"unavailable\",\"message\":\"the sale store is unavailable; retry "
                                   "later\"}\n";
        sk_http_respond_ex(x, x->resumed == LOOKUP_REFUSED ? 429 : 503, "application/json", "Retry-After: 1\r\n", body,
                           sizeof(body) - 1);
        return NULL;
    }
    if (!p) {
        sk_api_not_found(w, x, id, code, message);
        return NULL;
    }
    sk_op_t *op = sk_op_new(SK_OP_FIND_SALE);
    op->owner = w;
    op->new_sale = stub;
    op->ctx = p;
    op->done = parked_lookup_done;
    sk_engine_submit(w->ew, op);
    return NULL;
}

sk_sale_t *sk_api_find_sale_or_404(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id)
{
    return sk_api_find_or_park(w, x, id, "unknown_sale", "no sale with that id");
}

/* In a cluster a sale created on another node may not be in this node's cache yet (the
 * cache polls the store a few times a second): such a miss is looked up in the store
 * before it is answered 404. Returns a stub carrying the id for the op, or NULL when
 * the answer is a plain 404 (no shared store, or an id no sale can have). */
sk_sale_t *sk_api_lookup_stub(sk_api_worker_t *w, const sk_str_t *id)
{
    if (!sk_engine_lookups(w->api->cfg.engine) || !sk_valid_sale_id(id->p, id->len))
        return NULL;
    sk_sale_t *stub = sk_xcalloc(1, sizeof(*stub));
    memcpy(stub->id, id->p, id->len);
    stub->id_len = id->len;
    return stub;
}

bool sk_api_query_param(const sk_http_request_t *req, const char *name, const char **v, size_t *vl)
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

void sk_api_count(sk_api_worker_t *w, const sk_sale_t *s, sk_buy_result_t r)
{
    sk_counter_add(&w->purchases[s->index][r], 1);
}

/* Route order matters only for the catch-all asset route, which comes last. */
const sk_route_t sk_api_routes[] = {
    {SK_HTTP_POST, "/api/v1/sales/{id}/purchase", sk_api_purchase, "purchase"},
    {SK_HTTP_GET, "/healthz", sk_api_healthz, "healthz"},
    {SK_HTTP_GET, "/api/v1/sales/{id}", sk_api_sale_get, "sale"},
    {SK_HTTP_GET, "/api/v1/sales", sk_api_sales_list, "sales"},
    {SK_HTTP_POST, "/api/v1/sales", sk_api_sale_create, "create_sale"},
    {SK_HTTP_GET, "/api/v1/sales/{id}/orders/{user}", sk_api_user_orders, "user_orders"},
    {SK_HTTP_GET, "/api/v1/sales/{id}/orders", sk_api_orders_list, "orders"},
    {SK_HTTP_GET, "/api/v1/sales/{id}/events", sk_api_events, "events"},
    {SK_HTTP_POST, "/api/v1/sales/{id}/queue", sk_api_queue_join, "queue_join"},
    {SK_HTTP_GET, "/api/v1/sales/{id}/queue/events", sk_api_queue_events, "queue_events"},
    {SK_HTTP_PATCH, "/api/v1/sales/{id}", sk_api_sale_patch, "patch_sale"},
    {SK_HTTP_POST, "/api/v1/sales/{id}/pause", sk_api_sale_pause, "pause"},
    {SK_HTTP_POST, "/api/v1/sales/{id}/resume", sk_api_sale_resume, "resume"},
    {SK_HTTP_POST, "/api/v1/sales/{id}/close", sk_api_sale_close, "close"},
    {SK_HTTP_POST, "/api/v1/sales/{id}/stock", sk_api_sale_stock, "stock"},
    {SK_HTTP_GET, "/api/v1/sales/{id}/log", sk_api_sale_log, "log"},
    {SK_HTTP_GET, "/api/v1/orders/{id}", sk_api_order_get, "order"},
    {SK_HTTP_POST, "/api/v1/orders/{id}/pay", sk_api_order_pay, "pay"},
    {SK_HTTP_POST, "/api/v1/orders/{id}/cancel", sk_api_order_cancel, "cancel"},
    {SK_HTTP_POST, "/api/v1/orders/{id}/refund", sk_api_order_refund, "refund"},
    {SK_HTTP_POST, "/api/v1/orders/{id}/demo-pay", sk_api_order_demo_pay, "demo_pay"},
    {SK_HTTP_GET, "/api/v1/config", sk_api_config, "config"},
    {SK_HTTP_GET, "/metrics", sk_api_metrics, "metrics"},
    {SK_HTTP_GET, "/", sk_api_page, "page"},
    {SK_HTTP_GET, "/sale/{id}", sk_api_page, "page"},
    {SK_HTTP_GET, "/admin", sk_api_admin_page, "admin"},
    {SK_HTTP_GET, "/*", sk_api_asset, "asset"},
};
const size_t sk_api_routes_len = SK_ARRAY_LEN(sk_api_routes);

void sk_api_handle(sk_http_exchange_t *x, void *arg)
{
    sk_str_t params[SK_ROUTE_MAX_PARAMS];
    size_t idx;
    char allow[64];
    sk_api_worker_t *w = arg;
    sk_route_result_t r = sk_router_match(w->api->router, x->req->method, x->req->path, x->req->path_len, &idx, params,
                                          allow, sizeof(allow));
    if (r == SK_ROUTE_FOUND) {
        x->route = (int)idx;
        /* The API's requests pass the front door (deny list, per-address limit) first;
         * /healthz, /metrics and the pages do not. A request handed again after a lookup
         * (sk_api_find_or_park) passed it already: it counts once. */
        if (w->api->check_ip && !x->resumed && x->req->path_len > 5 && memcmp(x->req->path, "/api/", 5) == 0 &&
            !sk_api_front_request(w, x))
            return;
        sk_api_routes[idx].fn(x, params, arg);
        return;
    }
    if (r == SK_ROUTE_BAD_METHOD) {
        char extra[96];
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
        static const char body[] = "{\"error\":\"method_not_allowed\",\"message\":\"this path does not accept "
                                   "that method\"}\n";
        sk_http_respond_ex(x, 405, "application/json", extra, body, sizeof(body) - 1);
        return;
    }
    sk_http_respond_error(x, 404, "not_found", "no such path");
}

/* Keeps a configured token as its HMAC under the API's compare key (auth.c). */
static int add_secret(sk_api_t *api, sk_api_secret_t *list, size_t *n, const char *name, const char *token, size_t len,
                      const char *what, char *err, size_t errlen)
{
    if (len == 0) {
        snprintf(err, errlen, "an empty %s token would let anyone in: give a non-empty token", what);
        return -1;
    }
    sk_api_secret_t *e = &list[(*n)++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    sk_hmac_sha256(&api->compare_key, token, len, e->digest);
    return 0;
}

static uint64_t random_seed(void)
{
    uint64_t seed;
    if (sk_random_bytes(&seed, sizeof(seed)) < 0)
        seed = sk_mono_ns() ^ (uint64_t)sk_now_ms() << 20;
    return seed;
}

sk_api_t *sk_api_new(const sk_api_config_t *cfg, char *err, size_t errlen)
{
    sk_api_t *api = sk_xcalloc(1, sizeof(*api));
    api->cfg = *cfg;
    api->cfg.demo_sale = NULL; /* the caller's until copied at the end */
    pthread_mutex_init(&api->deny_mu, NULL);
    api->router = sk_router_new(sk_api_routes, sk_api_routes_len);
    uint8_t key[32];
    if (sk_random_bytes(key, sizeof(key)) < 0) {
        snprintf(err, errlen, "the system's random number generator failed");
        goto fail;
    }
    sk_hmac_init(&api->compare_key, key, sizeof(key));
    size_t n_admins = cfg->n_admin_tokens + (cfg->admin_token ? 1 : 0);
    api->admins = sk_xcalloc(n_admins ? n_admins : 1, sizeof(*api->admins));
    if (cfg->admin_token && add_secret(api, api->admins, &api->n_admins, "admin", cfg->admin_token,
                                       strlen(cfg->admin_token), "admin", err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < cfg->n_admin_tokens; i++)
        if (add_secret(api, api->admins, &api->n_admins, cfg->admin_tokens[i].name, cfg->admin_tokens[i].token,
                       cfg->admin_tokens[i].len, "admin", err, errlen) < 0)
            goto fail;
    api->metrics_tokens = sk_xcalloc(cfg->n_metrics_tokens ? cfg->n_metrics_tokens : 1, sizeof(*api->metrics_tokens));
    for (size_t i = 0; i < cfg->n_metrics_tokens; i++)
        if (add_secret(api, api->metrics_tokens, &api->n_metrics_tokens, cfg->metrics_tokens[i].name,
                       cfg->metrics_tokens[i].token, cfg->metrics_tokens[i].len, "metrics", err, errlen) < 0)
            goto fail;
    if (cfg->user_header) {
        size_t hl = strlen(cfg->user_header);
        if (hl == 0 || cfg->n_trusted_proxies == 0) {
            snprintf(err, errlen, "a user header is honoured only from trusted proxies: give --trusted-proxies");
            goto fail;
        }
        api->user_header = sk_xstrndup(cfg->user_header, hl);
        for (size_t i = 0; i < hl; i++) /* header names are matched in lower case */
            if (api->user_header[i] >= 'A' && api->user_header[i] <= 'Z')
                api->user_header[i] = (char)(api->user_header[i] - 'A' + 'a');
    }
    if (cfg->n_trusted_proxies) {
        api->n_trusted = cfg->n_trusted_proxies;
        api->trusted = sk_xmalloc(api->n_trusted * sizeof(*api->trusted));
        memcpy(api->trusted, cfg->trusted_proxies, api->n_trusted * sizeof(*api->trusted));
    }
    if (cfg->user_token_key) {
        if (cfg->user_token_key_len == 0) {
            snprintf(err, errlen, "the user token secret is empty");
            goto fail;
        }
        api->user_tokens = true;
        sk_hmac_init(&api->user_key, cfg->user_token_key, cfg->user_token_key_len);
    }
    api->identity = api->user_header || api->user_tokens;
    if (cfg->payment_secret && cfg->payment_secret_len) {
        api->payment_key_set = true;
        sk_hmac_init(&api->payment_key, cfg->payment_secret, cfg->payment_secret_len);
    }
    if (cfg->secret && cfg->secret_len) {
        sk_hmac_init(&api->secret, cfg->secret, cfg->secret_len);
    } else {
        /* Without --secret-file, admissions are good on this node until it restarts. */
        if (sk_random_bytes(key, sizeof(key)) < 0) {
            snprintf(err, errlen, "the system's random number generator failed");
            goto fail;
        }
        sk_hmac_init(&api->secret, key, sizeof(key));
    }
    if (cfg->ip_rate)
        api->ip_limit = sk_ratelimit_new(cfg->ip_rate, 2 * cfg->ip_rate, SK_API_RATE_TABLE, random_seed());
    if (cfg->user_rate)
        api->user_limit = sk_ratelimit_new(cfg->user_rate, 2 * cfg->user_rate, SK_API_RATE_TABLE, random_seed());
    if (cfg->deny_file) {
        api->deny = sk_api_deny_load(cfg->deny_file, err, errlen);
        if (!api->deny)
            goto fail;
        api->deny_path = sk_xstrndup(cfg->deny_file, strlen(cfg->deny_file));
    }
    api->check_ip = api->deny_path || api->ip_limit;
    api->check_user = api->identity || api->deny_path || api->user_limit;
    sk_wipe(key, sizeof(key));
    /* Keep no pointer into the caller's configuration (its secrets are wiped after). */
    api->cfg =
        (sk_api_config_t){.engine = cfg->engine,
                          .ip_rate = cfg->ip_rate,
                          .user_rate = cfg->user_rate,
                          .demo_payments = cfg->demo_payments,
                          .demo_sale = cfg->demo_sale ? sk_xstrndup(cfg->demo_sale, strlen(cfg->demo_sale)) : NULL};
    return api;
fail:
    sk_wipe(key, sizeof(key));
    sk_api_free(api);
    return NULL;
}

void sk_api_free(sk_api_t *api)
{
    if (!api)
        return;
    sk_hmac_wipe(&api->compare_key);
    sk_hmac_wipe(&api->user_key);
    sk_hmac_wipe(&api->secret);
    sk_hmac_wipe(&api->payment_key);
    free(api->admins);
    free(api->metrics_tokens);
    free(api->user_header);
    free(api->trusted);
    sk_ratelimit_free(api->ip_limit);
    sk_ratelimit_free(api->user_limit);
    sk_api_deny_unref(api->deny);
    free(api->deny_path);
    pthread_mutex_destroy(&api->deny_mu);
    sk_router_free(api->router);
    free((char *)api->cfg.demo_sale);
    free(api);
}

/* A reload hands each worker the new list through its mailbox (deny_next) and wakes it;
 * the worker swaps it in between requests, so a lookup never meets a list being freed. */
static void deny_take(sk_loop_t *loop, sk_async_t *a)
{
    (void)loop;
    sk_api_worker_t *w = SK_CONTAINER_OF(a, sk_api_worker_t, deny_wake);
    sk_api_deny_t *next = atomic_exchange(&w->deny_next, NULL);
    if (!next)
        return;
    sk_api_deny_unref(w->deny);
    w->deny = next;
}

int sk_api_reload_deny(sk_api_t *api, char *err, size_t errlen)
{
    if (!api->deny_path)
        return 0;
    sk_api_deny_t *d = sk_api_deny_load(api->deny_path, err, errlen);
    if (!d)
        return -1;
    pthread_mutex_lock(&api->deny_mu);
    sk_api_deny_t *old = api->deny;
    api->deny = d;
    size_t nw = atomic_load(&api->n_workers);
    for (size_t i = 0; i < nw; i++) {
        sk_api_worker_t *w = api->workers[i];
        sk_api_deny_t *stale = atomic_exchange(&w->deny_next, sk_api_deny_ref(d));
        sk_api_deny_unref(stale); /* a list handed over before and never taken */
        sk_async_send(&w->deny_wake);
    }
    pthread_mutex_unlock(&api->deny_mu);
    sk_api_deny_unref(old);
    return 0;
}

void sk_api_deny_stats(sk_api_t *api, size_t *ips, size_t *users)
{
    pthread_mutex_lock(&api->deny_mu);
    sk_api_deny_counts(api->deny, ips, users);
    pthread_mutex_unlock(&api->deny_mu);
}

sk_api_worker_t *sk_api_worker_new(sk_api_t *api, sk_loop_t *loop)
{
    sk_api_worker_t *w = sk_xcalloc(1, sizeof(*w));
    w->api = api;
    w->loop = loop;
    w->ew = sk_engine_attach(api->cfg.engine, loop);
    if (!w->ew) {
        free(w);
        return NULL;
    }
    w->purchases = sk_xcalloc(SK_MAX_SALES, sizeof(*w->purchases));
    if (api->deny_path) {
        if (sk_async_init(loop, &w->deny_wake, deny_take) < 0) {
            sk_engine_detach(w->ew);
            free(w->purchases);
            free(w);
            return NULL;
        }
        w->deny_wake_on = true;
    }
    sk_api_events_init(w);
    return w;
}

void sk_api_worker_set_server(sk_api_worker_t *w, sk_http_server_t *server)
{
    w->server = server;
    /* Under deny_mu: a reload either sees this worker in the list or ran before it took
     * the current list here. */
    pthread_mutex_lock(&w->api->deny_mu);
    w->deny = sk_api_deny_ref(w->api->deny);
    size_t i = atomic_load(&w->api->n_workers);
    w->api->workers[i] = w;
    atomic_store(&w->api->n_workers, i + 1);
    pthread_mutex_unlock(&w->api->deny_mu);
}

void sk_api_worker_free(sk_api_worker_t *w)
{
    if (!w)
        return;
    sk_api_events_free(w);
    if (w->deny_wake_on)
        sk_async_close(w->loop, &w->deny_wake);
    sk_api_deny_unref(atomic_exchange(&w->deny_next, NULL));
    sk_api_deny_unref(w->deny);
    sk_engine_detach(w->ew);
    free(w->purchases);
    sk_buf_free(&w->scratch);
    free(w);
}
