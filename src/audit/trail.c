/* The audit against the trail (trail.h). */
#include "audit/trail.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen/fetch.h"
#include "util/common.h"

static int64_t int_at(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(b ? json_object_get(o, a) : o, b ? b : a);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

int sk_audit_trail_fetch(const sk_loadgen_target_t *t, const char *admin_token, const char *sale_id,
                         sk_audit_entry_t **entries, size_t *n, char *err, size_t err_len)
{
    *entries = NULL;
    *n = 0;
    sk_loadgen_fetch_t f;
    sk_loadgen_fetch_init(&f, t, admin_token, 30000);
    char *seg = sk_loadgen_path_segment(sale_id);
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/sales/%s/log", seg);
    free(seg);
    int st = sk_loadgen_fetch(&f, "GET", path, NULL);
    int rc = -1;
    if (st == 404 || st == 501) {
        rc = 1;
        goto out;
    }
    if (st != 200) {
        snprintf(err, err_len, "GET log at %s: %s %d", t->url, st < 0 ? "error" : "HTTP", st);
        goto out;
    }
    json_t *o = json_loadb(f.body, f.body_len, 0, NULL);
    json_t *list = json_object_get(o, "entries");
    if (!json_is_array(list)) {
        snprintf(err, err_len, "GET log: no \"entries\" array");
        json_decref(o);
        goto out;
    }
    size_t i;
    json_t *it;
    *entries = sk_xcalloc(json_array_size(list) + 1, sizeof(**entries));
    json_array_foreach(list, i, it)
    {
        sk_audit_entry_t *e = &(*entries)[i];
        json_t *a = json_object_get(it, "action");
        snprintf(e->action, sizeof(e->action), "%s", json_is_string(a) ? json_string_value(a) : "?");
        e->at = int_at(it, "at", NULL);
        int64_t orders = int_at(it, "before", "orders");
        e->orders = orders > 0 ? (uint64_t)orders : 0;
        e->stock_before = int_at(it, "before", "stock");
        e->stock_after = int_at(it, "after", "stock");
        e->out_before = int_at(it, "before", "sold") + int_at(it, "before", "held");
        e->out_after = int_at(it, "after", "sold") + int_at(it, "after", "held");
    }
    *n = json_array_size(list);
    json_decref(o);
    rc = 0;
out:
    sk_loadgen_fetch_close(&f);
    return rc;
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = ((const sk_audit_order_t *)a)->seq, y = ((const sk_audit_order_t *)b)->seq;
    return x < y ? -1 : x > y;
}

/* A stretch of the order sequence where no order may be: (from, to] by seq, (t0, t1)
 * by time. */
typedef struct {
    uint64_t from, to;
    int64_t t0, t1;
    bool close;
} gap_t;

void sk_audit_trail_check(const sk_audit_entry_t *e, size_t n, sk_audit_order_t *orders, size_t n_orders, int64_t stock,
                          sk_audit_t *out)
{
    qsort(orders, n_orders, sizeof(*orders), by_seq);
    gap_t *gaps = sk_xcalloc(n + 1, sizeof(*gaps));
    size_t n_gaps = 0;
    bool paused = false;
    for (size_t k = 0; k < n; k++) {
        if (e[k].out_before > e[k].stock_before || e[k].out_after > e[k].stock_after)
            out->over_stock++; /* the trail's own counts */
        bool close = strcmp(e[k].action, "close") == 0;
        if (paused && (close || strcmp(e[k].action, "resume") == 0)) {
            gaps[n_gaps - 1].to = e[k].orders;
            gaps[n_gaps - 1].t1 = e[k].at;
            paused = false;
        }
        if (strcmp(e[k].action, "pause") == 0 || close) {
            gaps[n_gaps++] = (gap_t){e[k].orders, UINT64_MAX, e[k].at, INT64_MAX, close};
            paused = !close;
        }
    }
    /* Units out against the stock in effect: entry k's before.stock holds for the orders
     * up to its before.orders, the last entry's after.stock from there on. */
    int64_t units = 0;
    size_t k = 0;
    for (size_t i = 0; i < n_orders; i++) {
        const sk_audit_order_t *o = &orders[i];
        while (k < n && e[k].orders < o->seq)
            k++;
        int64_t in_effect = k < n ? e[k].stock_before : n ? e[n - 1].stock_after : stock;
        if (o->active)
            units += o->quantity ? o->quantity : 1;
        if (units > in_effect)
            out->over_stock++;
        for (size_t g = 0; g < n_gaps; g++) {
            bool by_seq_in = o->seq > gaps[g].from && o->seq <= gaps[g].to;
            /* Equal times: the same batch, where the seq decides. */
            bool by_time_in = o->created_at > 0 && o->created_at > gaps[g].t0 && o->created_at < gaps[g].t1;
            if (by_seq_in || by_time_in) {
                if (gaps[g].close)
                    out->after_close++;
                else
                    out->while_paused++;
                break;
            }
        }
    }
    free(gaps);
}
