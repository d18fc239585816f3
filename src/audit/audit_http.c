/* The HTTP audit source: the service's own admin listing GET /api/v1/sales/{id}/orders,
 * paged by `after`, with each order's state, quantity and times. It keeps no log (no
 * events): the checks that need one are left to the SQLite source. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "loadgen/fetch.h"
#include "util/common.h"

typedef struct {
    sk_audit_source_t base;
    sk_loadgen_fetch_t f;
} http_source_t;

static void fetch_error(char *err, size_t err_len, const char *what, int st, const sk_loadgen_fetch_t *f)
{
    if (st < 0)
        snprintf(err, err_len, "%s at %s: %s", what, f->target->url, strerror(-st));
    else
        snprintf(err, err_len, "%s at %s: HTTP %d: %.200s", what, f->target->url, st, f->body ? f->body : "");
}

static int http_sale(sk_audit_source_t *s, const char *sale_id, sk_loadgen_sale_t *out, char *err, size_t err_len)
{
    http_source_t *h = (http_source_t *)s;
    char *seg = sk_loadgen_path_segment(sale_id);
    char path[1024];
    snprintf(path, sizeof(path), "/api/v1/sales/%s", seg);
    free(seg);
    int st = sk_loadgen_fetch(&h->f, "GET", path, NULL);
    if (st != 200) {
        fetch_error(err, err_len, "GET sale", st, &h->f);
        return -1;
    }
    json_t *o = json_loadb(h->f.body, h->f.body_len, 0, NULL);
    json_t *stock = json_object_get(o, "stock"), *limit = json_object_get(o, "per_user_limit"),
           *sold = json_object_get(o, "sold");
    if (!json_is_integer(stock) || !json_is_integer(limit)) {
        snprintf(err, err_len, "GET sale: no stock or per_user_limit in %.200s", h->f.body);
        json_decref(o);
        return -1;
    }
    out->stock = json_integer_value(stock);
    out->limit = json_integer_value(limit);
    out->sold = json_is_integer(sold) ? json_integer_value(sold) : -1;
    json_decref(o);
    return 0;
}

static int str_field(json_t *o, const char *k, const char **p, size_t *n)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        return -1;
    *p = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

static int64_t int_field(json_t *o, const char *k, int64_t dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

int sk_audit_order_from_json(json_t *it, sk_loadgen_store_order_t *so)
{
    memset(so, 0, sizeof(*so));
    if (str_field(it, "order_id", &so->order_id, &so->order_id_len) < 0)
        return -1;
    if (str_field(it, "user_id", &so->user_id, &so->user_id_len) < 0) {
        so->user_id = "";
        so->user_id_len = 0;
    }
    if (str_field(it, "request_id", &so->request_id, &so->request_id_len) < 0) {
        so->request_id = "";
        so->request_id_len = 0;
    }
    const char *st;
    size_t stl;
    if (str_field(it, "state", &st, &stl) == 0)
        so->state = sk_loadgen_state_parse(st, stl);
    so->quantity = SK_MAX(int_field(it, "quantity", 0), 0);
    so->created_at = int_field(it, "created_at", 0);
    so->pay_by = int_field(it, "pay_by", 0);
    so->paid_at = int_field(it, "paid_at", 0);
    so->closed_at = int_field(it, "closed_at", 0);
    /* "<sale>-<seq, 10 digits>": the seq is what follows the last '-'. */
    const char *dash = memrchr(so->order_id, '-', so->order_id_len);
    int64_t seq;
    if (dash && sk_parse_i64(dash + 1, so->order_id_len - (size_t)(dash + 1 - so->order_id), 1, INT64_MAX, &seq) == 0)
        so->seq = (uint64_t)seq;
    return 0;
}

static int http_orders(sk_audit_source_t *s, const char *sale_id, sk_loadgen_order_fn fn, void *arg, char *err,
                       size_t err_len)
{
    http_source_t *h = (http_source_t *)s;
    char *seg = sk_loadgen_path_segment(sale_id);
    char *after = NULL;
    int rc = -1;
    for (;;) {
        size_t cap = strlen(seg) + (after ? strlen(after) * 3 : 0) + 128;
        char *path = sk_xmalloc(cap);
        if (after) {
            char *a = sk_loadgen_path_segment(after);
            snprintf(path, cap, "/api/v1/sales/%s/orders?limit=10000&after=%s", seg, a);
            free(a);
        } else {
            snprintf(path, cap, "/api/v1/sales/%s/orders?limit=10000", seg);
        }
        int st = sk_loadgen_fetch(&h->f, "GET", path, NULL);
        free(path);
        if (st != 200) {
            fetch_error(err, err_len, "GET orders", st, &h->f);
            goto out;
        }
        json_error_t jerr;
        json_t *o = json_loadb(h->f.body, h->f.body_len, 0, &jerr);
        json_t *list = json_object_get(o, "orders");
        if (!json_is_array(list)) {
            snprintf(err, err_len, "GET orders: no \"orders\" array (%s)", o ? "missing" : jerr.text);
            json_decref(o);
            goto out;
        }
        size_t i;
        json_t *it;
        json_array_foreach(list, i, it)
        {
            sk_loadgen_store_order_t so;
            if (sk_audit_order_from_json(it, &so) < 0 || so.user_id_len == 0) {
                snprintf(err, err_len, "GET orders: an order without order_id or user_id");
                json_decref(o);
                goto out;
            }
            int r = fn(arg, &so);
            if (r) {
                json_decref(o);
                rc = r;
                goto out;
            }
        }
        json_t *next = json_object_get(o, "next");
        if (!json_is_string(next) || json_array_size(list) == 0) {
            json_decref(o);
            break;
        }
        if (after && strcmp(after, json_string_value(next)) == 0) {
            snprintf(err, err_len, "GET orders: the page cursor does not advance (%s)", after);
            json_decref(o);
            goto out;
        }
        free(after);
        after = sk_xstrndup(json_string_value(next), json_string_length(next));
        json_decref(o);
    }
    rc = 0;
out:
    free(after);
    free(seg);
    return rc;
}

static void http_close(sk_audit_source_t *s)
{
    http_source_t *h = (http_source_t *)s;
    sk_loadgen_fetch_close(&h->f);
    free(h);
}

sk_audit_source_t *sk_audit_source_http(const sk_loadgen_target_t *t, const char *admin_token)
{
    http_source_t *h = sk_xcalloc(1, sizeof(*h));
    h->base.kind = "http";
    h->base.sale = http_sale;
    h->base.orders = http_orders;
    h->base.close = http_close;
    sk_loadgen_fetch_init(&h->f, t, admin_token, 60000);
    return &h->base;
}
