/* The HTTP API v1: the routing table, the helpers every resource's handlers share, and
 * the API's life cycle (one sk_api_t, one sk_api_worker_t per worker thread). Each
 * resource has its own file: purchases.c, sales.c, orders.c, transitions.c (pay, cancel,
 * refund), events.c (SSE), static.c, metrics.c, auth.c; body.c parses request bodies. */
#include "api/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

void sk_api_reply_json(sk_http_exchange_t *x, int status, sk_buf_t *b)
{
    sk_buf_putc(b, '\n');
    sk_http_respond(x, status, "application/json", b->data, b->len);
}

void sk_api_bad_field(sk_http_exchange_t *x, const char *field, const char *message)
{
    sk_buf_t b = {0};
    sk_buf_puts(&b, "{\"error\":\"bad_request\",\"message\":");
    sk_buf_put_json_str(&b, message, strlen(message));
    sk_buf_puts(&b, ",\"field\":");
    sk_buf_put_json_str(&b, field, strlen(field));
    sk_buf_putc(&b, '}');
    sk_api_reply_json(x, 400, &b);
    sk_buf_free(&b);
}

sk_sale_t *sk_api_find_sale_or_404(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id)
{
    sk_sale_t *s = sk_engine_find_sale(w->api->cfg.engine, id->p, id->len);
    if (!s)
        sk_http_respond_error(x, 404, "unknown_sale", "no sale with that id");
    return s;
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
    sk_route_result_t r = sk_route_match(sk_api_routes, sk_api_routes_len, x->req->method, x->req->path,
                                         x->req->path_len, &idx, params, allow, sizeof(allow));
    if (r == SK_ROUTE_FOUND) {
        x->route = (int)idx;
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

sk_api_t *sk_api_new(const sk_api_config_t *cfg)
{
    sk_api_t *api = sk_xcalloc(1, sizeof(*api));
    api->cfg = *cfg;
    api->token_len = cfg->admin_token ? strlen(cfg->admin_token) : 0;
    return api;
}

void sk_api_free(sk_api_t *api)
{
    free(api);
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
    sk_api_events_init(w);
    return w;
}

void sk_api_worker_set_server(sk_api_worker_t *w, sk_http_server_t *server)
{
    w->server = server;
    size_t i = atomic_load(&w->api->n_workers);
    w->api->workers[i] = w;
    atomic_store(&w->api->n_workers, i + 1);
}

void sk_api_worker_free(sk_api_worker_t *w)
{
    if (!w)
        return;
    sk_api_events_free(w);
    sk_engine_detach(w->ew);
    free(w->purchases);
    sk_buf_free(&w->scratch);
    free(w);
}
