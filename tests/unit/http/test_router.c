/* Tests of the route table (src/http/router.c): literal segments, parameters, the
 * catch-all, the root, paths that differ only in a prefix, a suffix or a trailing
 * slash, empty segments, and 405 with the allowed methods; then the compiled table
 * (sk_router_match) against the plain one on every path made of pieces of the patterns,
 * for every method. */
#include <string.h>

#include "http/router.h"
#include "test.h"

static void nop(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)x;
    (void)params;
    (void)arg;
}

static const sk_route_t routes[] = {
    {SK_HTTP_POST, "/api/v1/sales/{id}/purchase", nop, "purchase"},
    {SK_HTTP_GET, "/healthz", nop, "healthz"},
    {SK_HTTP_GET, "/api/v1/sales/{id}", nop, "sale"},
    {SK_HTTP_GET, "/api/v1/sales", nop, "sales"},
    {SK_HTTP_POST, "/api/v1/sales", nop, "create_sale"},
    {SK_HTTP_GET, "/api/v1/sales/{id}/orders/{user}", nop, "user_orders"},
    {SK_HTTP_GET, "/", nop, "page"},
    {SK_HTTP_GET, "/*", nop, "asset"},
};

static sk_router_t *compiled;

/* Routes with the plain matcher and with the compiled one; both must agree. */
static sk_route_result_t route(sk_http_method_t m, const char *path, size_t *idx, sk_str_t *params, char *allow)
{
    sk_route_result_t a = sk_route_match(routes, SK_ARRAY_LEN(routes), m, path, strlen(path), idx, params, allow, 64);
    size_t idx2 = 99;
    sk_str_t params2[SK_ROUTE_MAX_PARAMS];
    char allow2[64];
    sk_route_result_t b = sk_router_match(compiled, m, path, strlen(path), &idx2, params2, allow2, sizeof(allow2));
    if (a != b)
        SK_FAIL_AT("%d %s: plain %d, compiled %d", (int)m, path, (int)a, (int)b);
    if (a == SK_ROUTE_FOUND) {
        ASSERT_EQ(*idx, idx2);
        /* Only the found route's own params are promised. */
        const char *pat = routes[*idx].pattern;
        size_t np = 0;
        for (const char *q = pat; *q; q++)
            np += (q[0] == '/' && (q[1] == '{' || (q[1] == '*' && q[2] == '\0')));
        for (size_t k = 0; k < np; k++) {
            ASSERT_TRUE(params[k].p == params2[k].p);
            ASSERT_EQ(params[k].len, params2[k].len);
        }
    }
    if (a == SK_ROUTE_BAD_METHOD)
        ASSERT_STR_EQ(allow, allow2);
    return a;
}

SK_TEST(literal_and_parameter_segments)
{
    size_t idx = 99;
    sk_str_t params[SK_ROUTE_MAX_PARAMS];
    char allow[64];
    ASSERT_EQ(route(SK_HTTP_POST, "/api/v1/sales/buy/purchase", &idx, params, allow), SK_ROUTE_FOUND);
    ASSERT_EQ(idx, 0);
    ASSERT_MEM_STR(params[0].p, params[0].len, "buy");
    ASSERT_EQ(route(SK_HTTP_GET, "/api/v1/sales/s-1", &idx, params, allow), SK_ROUTE_FOUND);
    ASSERT_EQ(idx, 2);
    ASSERT_MEM_STR(params[0].p, params[0].len, "s-1");
    ASSERT_EQ(route(SK_HTTP_GET, "/api/v1/sales/a/orders/u%201", &idx, params, allow), SK_ROUTE_FOUND);
    ASSERT_EQ(idx, 5);
    ASSERT_MEM_STR(params[0].p, params[0].len, "a");
    ASSERT_MEM_STR(params[1].p, params[1].len, "u%201");
    ASSERT_EQ(route(SK_HTTP_GET, "/api/v1/sales", &idx, params, allow), SK_ROUTE_FOUND);
    ASSERT_EQ(idx, 3);
    ASSERT_EQ(route(SK_HTTP_POST, "/api/v1/sales", &idx, params, allow), SK_ROUTE_FOUND);
    ASSERT_EQ(idx, 4);
    ASSERT_EQ(route(SK_HTTP_HEAD, "/healthz", &idx, params, allow), SK_ROUTE_FOUND); /* HEAD as GET */
    ASSERT_EQ(idx, 1);
}

SK_TEST(near_misses_fall_through_to_the_catch_all)
{
    size_t idx = 99;
    sk_str_t params[SK_ROUTE_MAX_PARAMS];
    char allow[64];
    /* A longer or shorter last segment, a trailing slash, an empty parameter: not the
     * API's routes, so the GET catch-all takes them with the rest of the path. */
    const char *misses[] = {"/healthzz",
                            "/healthz/",
                            "/health",
                            "/api/v1/sales/",
                            "/api/v1/sales//purchase",
                            "/api/v1/saless",
                            "/api/v1/sales/a/orders/",
                            "/api/v2/sales"};
    for (size_t i = 0; i < SK_ARRAY_LEN(misses); i++) {
        ASSERT_EQ(route(SK_HTTP_GET, misses[i], &idx, params, allow), SK_ROUTE_FOUND);
        ASSERT_EQ(idx, 7);
        ASSERT_MEM_STR(params[0].p, params[0].len, misses[i] + 1);
    }
    ASSERT_EQ(route(SK_HTTP_GET, "/", &idx, params, allow), SK_ROUTE_FOUND);
    ASSERT_EQ(idx, 6); /* the root is its own route, before the catch-all */
    /* Without a GET the catch-all does not make a path known. */
    ASSERT_EQ(route(SK_HTTP_POST, "/healthzz", &idx, params, allow), SK_ROUTE_NOT_FOUND);
    ASSERT_EQ(route(SK_HTTP_POST, "/api/v1/sales/x/purchase/", &idx, params, allow), SK_ROUTE_NOT_FOUND);
    ASSERT_EQ(route(SK_HTTP_POST, "", &idx, params, allow), SK_ROUTE_NOT_FOUND);
}

SK_TEST(wrong_method_names_the_allowed_ones)
{
    size_t idx = 99;
    sk_str_t params[SK_ROUTE_MAX_PARAMS];
    char allow[64];
    ASSERT_EQ(route(SK_HTTP_GET, "/api/v1/sales/buy/purchase", &idx, params, allow), SK_ROUTE_FOUND);
    ASSERT_EQ(idx, 7); /* GET: the catch-all */
    ASSERT_EQ(route(SK_HTTP_DELETE, "/api/v1/sales/buy/purchase", &idx, params, allow), SK_ROUTE_BAD_METHOD);
    ASSERT_STR_EQ(allow, "POST");
    ASSERT_EQ(route(SK_HTTP_PUT, "/api/v1/sales", &idx, params, allow), SK_ROUTE_BAD_METHOD);
    ASSERT_STR_EQ(allow, "GET, HEAD, POST");
    ASSERT_EQ(route(SK_HTTP_POST, "/healthz", &idx, params, allow), SK_ROUTE_BAD_METHOD);
    ASSERT_STR_EQ(allow, "GET, HEAD");
}

/* Every path of up to four pieces drawn from the patterns' own segments and near
 * misses, with every method: the compiled table answers as the plain one (route()
 * compares them). */
SK_TEST(compiled_table_agrees_everywhere)
{
    static const char *bits[] = {"/",        "/api",      "/v1",      "/sales",     "/purchase", "/orders", "/x",
                                 "/healthz", "/healthzz", "/purchas", "/purchasee", "//",        "",        "/a/b",
                                 "/*",       "/{id}",     "api",      "/salesx",    "/v2"};
    static const sk_http_method_t methods[] = {SK_HTTP_GET, SK_HTTP_HEAD,   SK_HTTP_POST,
                                               SK_HTTP_PUT, SK_HTTP_DELETE, SK_HTTP_OTHER};
    size_t nb = SK_ARRAY_LEN(bits), checked = 0;
    char path[256];
    size_t idx;
    sk_str_t params[SK_ROUTE_MAX_PARAMS];
    char allow[64];
    for (size_t a = 0; a < nb; a++)
        for (size_t b = 0; b < nb; b++)
            for (size_t c = 0; c < nb; c++)
                for (size_t d = 0; d < nb; d++) {
                    snprintf(path, sizeof(path), "%s%s%s%s", bits[a], bits[b], bits[c], bits[d]);
                    for (size_t m = 0; m < SK_ARRAY_LEN(methods); m++) {
                        route(methods[m], path, &idx, params, allow);
                        checked++;
                    }
                }
    ASSERT_GT(checked, 100000);
}

SK_TEST_MAIN(compiled = sk_router_new(routes, SK_ARRAY_LEN(routes)); SK_RUN(literal_and_parameter_segments);
             SK_RUN(near_misses_fall_through_to_the_catch_all); SK_RUN(wrong_method_names_the_allowed_ones);
             SK_RUN(compiled_table_agrees_everywhere); sk_router_free(compiled);)
