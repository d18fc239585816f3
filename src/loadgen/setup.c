/* Before the flood: the sale created (--create-sale) or looked up, and the server's
 * clock estimated. */
#include "loadgen/setup.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen/fetch.h"
#include "util/common.h"

static void sale_from_json(sk_loadgen_sale_t *s, json_t *o)
{
    json_t *v;
    if ((v = json_object_get(o, "id")) && json_is_string(v)) {
        free(s->id);
        s->id = sk_xstrndup(json_string_value(v), json_string_length(v));
    }
    if ((v = json_object_get(o, "name")) && json_is_string(v)) {
        free(s->name);
        s->name = sk_xstrndup(json_string_value(v), json_string_length(v));
    }
    if ((v = json_object_get(o, "stock")) && json_is_integer(v))
        s->stock = json_integer_value(v);
    if ((v = json_object_get(o, "per_user_limit")) && json_is_integer(v))
        s->limit = json_integer_value(v);
    if ((v = json_object_get(o, "sold")) && json_is_integer(v))
        s->sold = json_integer_value(v);
    if ((v = json_object_get(o, "starts_at")) && json_is_integer(v))
        s->starts_at = json_integer_value(v);
    if ((v = json_object_get(o, "ends_at")) && json_is_integer(v))
        s->ends_at = json_integer_value(v);
    if ((v = json_object_get(o, "payment_window_ms")) && json_is_integer(v))
        s->window_ms = json_integer_value(v);
    if ((v = json_object_get(o, "max_quantity")) && json_is_integer(v))
        s->max_quantity = json_integer_value(v);
    if ((v = json_object_get(o, "state")) && json_is_string(v))
        snprintf(s->state, sizeof(s->state), "%s", json_string_value(v));
}

int sk_loadgen_setup_sale(const sk_loadgen_config_t *cfg, sk_loadgen_sale_t *sale, char *err, size_t err_len)
{
    memset(sale, 0, sizeof(*sale));
    sale->sold = -1;
    sk_loadgen_fetch_t f;
    sk_loadgen_fetch_init(&f, &cfg->targets[0], cfg->admin_token, 15000);
    int rc = -1;
    char idbuf[64];
    const char *id = cfg->sale_id;
    if (cfg->create) {
        if (cfg->create_id) {
            id = cfg->create_id;
        } else {
            snprintf(idbuf, sizeof(idbuf), "bench-%s", cfg->run_id);
            id = idbuf;
        }
        int64_t now = sk_now_ms();
        int64_t starts = now + cfg->create_starts_in_ms;
        char name[64];
        snprintf(name, sizeof(name), "seckill-bench %s", cfg->run_id);
        json_t *body =
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "id", id, "name", name, "stock", (json_int_t)cfg->create_stock,
                      "starts_at", (json_int_t)starts, "ends_at", (json_int_t)(starts + cfg->create_duration_ms),
                      "per_user_limit", (json_int_t)cfg->create_limit);
        if (cfg->create_window_ms >= 0)
            json_object_set_new(body, "payment_window_ms", json_integer(cfg->create_window_ms));
        if (cfg->create_max_quantity > 0)
            json_object_set_new(body, "max_quantity", json_integer(cfg->create_max_quantity));
        if (cfg->create_queue)
            json_object_set_new(body, "queue", json_string(cfg->create_queue));
        if (cfg->create_admit > 0)
            json_object_set_new(body, "admit_per_second", json_integer(cfg->create_admit));
        if (cfg->create_ttl_ms > 0)
            json_object_set_new(body, "admission_ttl_ms", json_integer(cfg->create_ttl_ms));
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        int st = sk_loadgen_fetch(&f, "POST", "/api/v1/sales", text);
        free(text);
        if (st != 201) {
            if (st < 0)
                snprintf(err, err_len, "create sale at %s: %s", cfg->targets[0].url, strerror(-st));
            else
                snprintf(err, err_len, "create sale at %s: HTTP %d: %.300s", cfg->targets[0].url, st,
                         f.body ? f.body : "");
            goto out;
        }
        sale->created = true;
    }
    if (!id) {
        snprintf(err, err_len, "no sale: give --sale ID or --create-sale");
        goto out;
    }
    char *seg = sk_loadgen_path_segment(id);
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/sales/%s", seg);
    free(seg);
    /* A first read opens the connection, so the timed one below is one round trip. */
    sk_loadgen_fetch(&f, "GET", path, NULL);
    int64_t t0 = sk_now_ms();
    int st = sk_loadgen_fetch(&f, "GET", path, NULL);
    int64_t t1 = sk_now_ms();
    if (st != 200) {
        if (st < 0)
            snprintf(err, err_len, "GET %s at %s: %s", path, cfg->targets[0].url, strerror(-st));
        else
            snprintf(err, err_len, "GET %s at %s: HTTP %d: %.300s", path, cfg->targets[0].url, st,
                     f.body ? f.body : "");
        goto out;
    }
    json_error_t jerr;
    json_t *o = json_loadb(f.body, f.body_len, 0, &jerr);
    if (!o || !json_is_object(o)) {
        snprintf(err, err_len, "GET %s: not a JSON object: %s", path, jerr.text);
        json_decref(o);
        goto out;
    }
    sale->stock = -1;
    sale->limit = -1;
    sale->max_quantity = 1;
    sale_from_json(sale, o);
    json_t *v = json_object_get(o, "server_time");
    /* The server read its clock somewhere between our t0 and t1, so its offset is at
     * least server_time - t1. Taking that bound means we fire at or after the opening
     * on the server's clock (at most one round trip late), never early: a buyer told
     * "not started" by a skewed estimate would be a fault of the tool, not the service. */
    if (v && json_is_integer(v)) {
        /* Both bounds widened by 2 ms: each clock is read in whole milliseconds. */
        sale->clock_offset_ms = json_integer_value(v) - t1 - 2;
        sale->clock_offset_hi_ms = json_integer_value(v) - t0 + 2;
    }
    json_decref(o);
    if (!sale->id)
        sale->id = sk_xstrndup(id, strlen(id));
    if (sale->stock < 0 || sale->limit < 0) {
        snprintf(err, err_len, "GET %s: the sale has no stock or per_user_limit", path);
        goto out;
    }
    rc = 0;
out:
    sk_loadgen_fetch_close(&f);
    return rc;
}
