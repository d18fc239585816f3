#include "loadgen/scenario.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "loadgen/fetch.h"
#include "util/buf.h"
#include "util/common.h"

static const char *const outcome_names[SK_OUT_COUNT] = {
    "confirmed",   "duplicate",    "sold_out",   "limit_reached", "not_started", "ended",
    "unavailable", "rate_limited", "http_error", "net_error",     "ok",
};

const char *sk_bench_outcome_name(sk_bench_outcome_t o)
{
    return (unsigned)o < SK_OUT_COUNT ? outcome_names[o] : "?";
}

int sk_bench_parse_duration_ms(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0) || v > 1e9)
        return -EINVAL;
    double mul = 1000;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mul = 1000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return -EINVAL;
    *ms = (int64_t)llround(v * mul);
    return 0;
}

size_t sk_bench_user_id(char *buf, uint32_t u)
{
    buf[0] = 'u';
    size_t n = 1 + sk_fmt_u64(buf + 1, u);
    buf[n] = '\0';
    return n;
}

/* ------------------------------------------------------------------------------------
 * Sale set-up */

static void sale_from_json(sk_bench_sale_t *s, json_t *o)
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
    if ((v = json_object_get(o, "state")) && json_is_string(v))
        snprintf(s->state, sizeof(s->state), "%s", json_string_value(v));
}

int sk_bench_setup_sale(const sk_bench_config_t *cfg, sk_bench_sale_t *sale, char *err, size_t err_len)
{
    memset(sale, 0, sizeof(*sale));
    sale->sold = -1;
    sk_bench_fetch_t f;
    sk_bench_fetch_init(&f, &cfg->targets[0], cfg->admin_token, 15000);
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
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        int st = sk_bench_fetch(&f, "POST", "/api/v1/sales", text);
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
    char *seg = sk_bench_path_segment(id);
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/sales/%s", seg);
    free(seg);
    int st = sk_bench_fetch(&f, "GET", path, NULL);
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
    sale_from_json(sale, o);
    json_t *v = json_object_get(o, "server_time");
    /* The server read its clock somewhere between our t0 and t1, so its offset is at
     * least server_time - t1. Taking that bound means we fire at or after the opening
     * on the server's clock (at most one round trip late), never early: a buyer told
     * "not started" by a skewed estimate would be a fault of the tool, not the service. */
    if (v && json_is_integer(v))
        sale->clock_offset_ms = json_integer_value(v) - t1;
    json_decref(o);
    if (!sale->id)
        sale->id = sk_xstrndup(id, strlen(id));
    if (sale->stock < 0 || sale->limit < 0) {
        snprintf(err, err_len, "GET %s: the sale has no stock or per_user_limit", path);
        goto out;
    }
    rc = 0;
out:
    sk_bench_fetch_close(&f);
    return rc;
}

/* ------------------------------------------------------------------------------------
 * The flood */

typedef struct req {
    struct req *next;
    uint64_t seq;
    uint64_t start_ns; /* intended send time (open loop) or first send */
    uint64_t sent_ns; /* this attempt */
    uint64_t ready_ns; /* a retry waits until then */
    uint32_t user;
    uint16_t attempt;
} req_t;

typedef struct worker worker_t;

typedef struct wconn {
    sk_bench_conn_t conn;
    worker_t *w;
    sk_timer_t reconnect;
    uint32_t backoff_ms;
    bool in_room;
    bool settled; /* connected or failed at least once (for --burst) */
    struct wconn *next_room;
    uint64_t mark; /* responses + connects at the last sweep */
    uint64_t mark_ns; /* when mark last changed */
    const char *prefix; /* request bytes before the body length (or the whole GET) */
    size_t prefix_len;
} wconn_t;

typedef struct run run_t;

struct worker {
    int index;
    run_t *run;
    const sk_bench_config_t *cfg;
    sk_loop_t *loop;
    sk_bench_client_t client;
    wconn_t *conns;
    uint32_t nconns;
    wconn_t *room; /* connections with room for another request */
    sk_timer_t tick;
    sk_io_t pace; /* open loop: a timerfd at the next intended send time */
    uint64_t pace_armed_ns;
    uint32_t ticks;
    bool shutting_down;
    pthread_t thread;

    req_t *free_reqs;
    req_t **slabs;
    size_t nslabs;
    req_t **rq; /* ready queue (ring) */
    size_t rq_cap, rq_head, rq_len;
    req_t **heap; /* retries by ready_ns */
    size_t heap_len, heap_cap;

    uint64_t quota; /* new requests for this worker, 0 = until --duration */
    uint64_t issued;
    uint64_t live; /* requests started and not finished */
    uint64_t stop_ns; /* no new requests after this (duration), 0 = none */
    bool gen_done;
    bool fired;
    uint64_t fired_ns;
    bool reported_ready;
    uint32_t settled;
    uint64_t first_send_ns, last_answer_ns, last_confirm_ns;
    double interval_ns; /* open loop */
    uint64_t sched_k;

    uint32_t part_n; /* users owned by this worker */
    uint64_t perm_mul, perm_off, rng;

    sk_counter_t counts[SK_OUT_COUNT];
    sk_counter_t answers;
    _Atomic int64_t last_remaining;
    _Atomic int done;
    sk_hist_t hist[SK_OUT_COUNT];
    uint64_t requests, retries, in_doubt, malformed, conn_failures;

    sk_bench_order_rec_t *orders;
    size_t norders, orders_cap;
    char *arena;
    size_t arena_len, arena_cap;
};

struct run {
    const sk_bench_config_t *cfg;
    const sk_bench_sale_t *sale;
    uint8_t *ustate;
    char **prefixes; /* one per target */
    size_t *prefix_lens;
    char rid[32]; /* "r<run id>-<worker>-" is built per worker from this */
    uint64_t fire_ns;
    _Atomic uint32_t ready_workers;
    worker_t *workers;
    uint32_t nworkers;
};

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Draws the user of the k-th request of this worker: the first part_n requests visit
 * every user of the worker's share once in a scrambled order (k * mul + off mod n is a
 * permutation when gcd(mul, n) = 1); later ones pick users at random. A worker owns
 * the users u with (u - 1) % workers == index, so a user's state byte has one writer. */
static uint32_t draw_user(worker_t *w, uint64_t k)
{
    uint64_t i;
    if (k < w->part_n)
        i = (k * w->perm_mul + w->perm_off) % w->part_n;
    else
        i = xorshift(&w->rng) % w->part_n;
    return (uint32_t)(i * w->run->nworkers + (uint64_t)w->index + 1);
}

static req_t *req_alloc(worker_t *w)
{
    if (!w->free_reqs) {
        enum { SLAB = 1024 };
        req_t *slab = sk_xcalloc(SLAB, sizeof(req_t));
        w->slabs = sk_xrealloc(w->slabs, (w->nslabs + 1) * sizeof(*w->slabs));
        w->slabs[w->nslabs++] = slab;
        for (size_t i = 0; i < SLAB; i++) {
            slab[i].next = w->free_reqs;
            w->free_reqs = &slab[i];
        }
    }
    req_t *r = w->free_reqs;
    w->free_reqs = r->next;
    r->next = NULL;
    return r;
}

static void rq_push(worker_t *w, req_t *r)
{
    if (w->rq_len == w->rq_cap) {
        size_t ncap = w->rq_cap ? w->rq_cap * 2 : 1024;
        req_t **n = sk_xmalloc(ncap * sizeof(*n));
        for (size_t i = 0; i < w->rq_len; i++)
            n[i] = w->rq[(w->rq_head + i) % w->rq_cap];
        free(w->rq);
        w->rq = n;
        w->rq_cap = ncap;
        w->rq_head = 0;
    }
    w->rq[(w->rq_head + w->rq_len) % w->rq_cap] = r;
    w->rq_len++;
}

static req_t *rq_pop(worker_t *w)
{
    if (w->rq_len == 0)
        return NULL;
    req_t *r = w->rq[w->rq_head];
    w->rq_head = (w->rq_head + 1) % w->rq_cap;
    w->rq_len--;
    return r;
}

static void heap_push(worker_t *w, req_t *r)
{
    if (w->heap_len == w->heap_cap) {
        w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 256;
        w->heap = sk_xrealloc(w->heap, w->heap_cap * sizeof(*w->heap));
    }
    size_t i = w->heap_len++;
    while (i > 0 && w->heap[(i - 1) / 2]->ready_ns > r->ready_ns) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = r;
}

static req_t *heap_pop(worker_t *w)
{
    req_t *top = w->heap[0];
    req_t *last = w->heap[--w->heap_len];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->heap_len)
            break;
        if (c + 1 < w->heap_len && w->heap[c + 1]->ready_ns < w->heap[c]->ready_ns)
            c++;
        if (w->heap[c]->ready_ns >= last->ready_ns)
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->heap_len > 0)
        w->heap[i] = last;
    return top;
}

static bool purchase_mode(const worker_t *w)
{
    return w->cfg->get_path == NULL;
}

static req_t *new_req(worker_t *w, uint64_t start_ns)
{
    req_t *r = req_alloc(w);
    r->seq = w->issued;
    r->start_ns = start_ns;
    r->attempt = 0;
    r->user = purchase_mode(w) ? draw_user(w, w->issued) : 0;
    if (r->user)
        w->run->ustate[r->user] |= SK_USER_TRIED;
    w->issued++;
    w->requests++;
    w->live++;
    return r;
}

static void finish(worker_t *w, req_t *r, uint64_t now)
{
    w->live--;
    w->last_answer_ns = now;
    r->next = w->free_reqs;
    w->free_reqs = r;
}

/* True while the closed loop may start another request. */
static bool can_generate(worker_t *w, uint64_t now)
{
    if (w->gen_done)
        return false;
    if (w->quota && w->issued >= w->quota) {
        w->gen_done = true;
        return false;
    }
    if (w->stop_ns && now >= w->stop_ns) {
        w->gen_done = true;
        return false;
    }
    return true;
}

static void room_push(wconn_t *wc)
{
    if (!wc->in_room) {
        wc->in_room = true;
        wc->next_room = wc->w->room;
        wc->w->room = wc;
    }
}

/* Writes one request onto the connection (there is room). */
static void send_req(wconn_t *wc, req_t *r, uint64_t now)
{
    worker_t *w = wc->w;
    sk_bench_conn_t *c = &wc->conn;
    if (!purchase_mode(w)) {
        memcpy(sk_bench_conn_reserve(c, wc->prefix_len), wc->prefix, wc->prefix_len);
        sk_bench_conn_commit(c, r, wc->prefix_len);
    } else {
        char body[160];
        size_t b = 0;
        memcpy(body, "{\"user_id\":\"u", 13);
        b = 13;
        b += sk_fmt_u64(body + b, r->user);
        memcpy(body + b, "\",\"request_id\":\"", 16);
        b += 16;
        size_t rl = strlen(w->run->rid);
        memcpy(body + b, w->run->rid, rl);
        b += rl;
        b += sk_fmt_u64(body + b, (uint64_t)w->index);
        body[b++] = '-';
        b += sk_fmt_u64(body + b, r->seq);
        memcpy(body + b, "\"}", 2);
        b += 2;
        char *p = sk_bench_conn_reserve(c, wc->prefix_len + 24 + b);
        memcpy(p, wc->prefix, wc->prefix_len);
        size_t n = wc->prefix_len;
        n += sk_fmt_u64(p + n, b);
        memcpy(p + n, "\r\n\r\n", 4);
        n += 4;
        memcpy(p + n, body, b);
        n += b;
        sk_bench_conn_commit(c, r, n);
    }
    r->sent_ns = now;
    if (r->attempt == 0 && w->cfg->rate <= 0)
        r->start_ns = now;
    if (!w->first_send_ns)
        w->first_send_ns = now;
}

static void schedule_retry(worker_t *w, req_t *r, uint64_t now)
{
    r->attempt++;
    w->retries++;
    uint64_t base = w->cfg->retry_backoff_ms;
    uint64_t ms = base << (r->attempt - 1 < 6 ? r->attempt - 1 : 6);
    if (ms > 1000)
        ms = 1000;
    if (ms == 0) {
        rq_push(w, r);
        return;
    }
    /* +-25% jitter, so retries of one failed burst do not come back as one burst. */
    uint64_t ns = ms * 1000000u;
    ns = ns - ns / 4 + xorshift(&w->rng) % (ns / 2 + 1);
    r->ready_ns = now + ns;
    heap_push(w, r);
}

static void record_order(worker_t *w, uint32_t user, const char *id, size_t len, sk_bench_outcome_t o)
{
    if (len == 0 || len > 1024)
        return;
    if (w->arena_len + len > w->arena_cap) {
        w->arena_cap = w->arena_cap ? w->arena_cap * 2 : 1 << 16;
        while (w->arena_len + len > w->arena_cap)
            w->arena_cap *= 2;
        w->arena = sk_xrealloc(w->arena, w->arena_cap);
    }
    /* Undo the JSON escapes an id could carry, so ids compare equal to the store's. */
    size_t n = 0;
    char *dst = w->arena + w->arena_len;
    for (size_t i = 0; i < len; i++) {
        if (id[i] == '\\' && i + 1 < len) {
            i++;
            dst[n++] = id[i] == 'n' ? '\n' : id[i] == 't' ? '\t' : id[i];
        } else {
            dst[n++] = id[i];
        }
    }
    if (w->norders == w->orders_cap) {
        w->orders_cap = w->orders_cap ? w->orders_cap * 2 : 4096;
        w->orders = sk_xrealloc(w->orders, w->orders_cap * sizeof(*w->orders));
    }
    w->orders[w->norders++] =
        (sk_bench_order_rec_t){.user = user, .off = (uint32_t)w->arena_len, .len = (uint16_t)n, .outcome = (uint8_t)o};
    w->arena_len += n;
}

static bool str_is(const char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

static sk_bench_outcome_t classify(worker_t *w, const sk_bench_resp_t *resp, const char **oid, size_t *oid_len)
{
    const char *v;
    size_t vl;
    *oid = NULL;
    *oid_len = 0;
    if (!purchase_mode(w))
        return resp->status < 400 ? SK_OUT_OK : SK_OUT_HTTP_ERROR;
    switch (resp->status) {
    case 201:
    case 200: {
        sk_bench_outcome_t o = SK_OUT_CONFIRMED;
        if (sk_bench_json_scan(resp->body, resp->body_len, "result", &v, &vl) == 1) {
            if (str_is(v, vl, "duplicate"))
                o = SK_OUT_DUPLICATE;
            else if (!str_is(v, vl, "confirmed"))
                goto malformed;
        } else if (resp->status == 200) {
            goto malformed;
        }
        if (sk_bench_json_scan(resp->body, resp->body_len, "order_id", oid, oid_len) != 1 || *oid_len == 0)
            goto malformed;
        if (sk_bench_json_scan(resp->body, resp->body_len, "remaining", &v, &vl) == 2) {
            int64_t rem;
            if (sk_parse_i64(v, vl, 0, INT64_MAX, &rem) == 0 &&
                rem < atomic_load_explicit(&w->last_remaining, memory_order_relaxed))
                atomic_store_explicit(&w->last_remaining, rem, memory_order_relaxed);
        }
        return o;
    }
    case 409:
        if (sk_bench_json_scan(resp->body, resp->body_len, "error", &v, &vl) == 1) {
            if (str_is(v, vl, "sold_out")) {
                if (atomic_load_explicit(&w->last_remaining, memory_order_relaxed) != 0)
                    atomic_store_explicit(&w->last_remaining, 0, memory_order_relaxed);
                return SK_OUT_SOLD_OUT;
            }
            if (str_is(v, vl, "limit_reached")) {
                if (sk_bench_json_scan(resp->body, resp->body_len, "order_id", oid, oid_len) != 1)
                    *oid_len = 0;
                return SK_OUT_LIMIT_REACHED;
            }
        }
        return SK_OUT_HTTP_ERROR;
    case 425:
        return SK_OUT_NOT_STARTED;
    case 410:
        return SK_OUT_ENDED;
    case 429:
        return SK_OUT_RATE_LIMITED;
    case 503:
        return SK_OUT_UNAVAILABLE;
    default:
        return SK_OUT_HTTP_ERROR;
    }
malformed:
    w->malformed++;
    return SK_OUT_HTTP_ERROR;
}

static void count(worker_t *w, sk_bench_outcome_t o, uint64_t lat)
{
    sk_counter_add(&w->counts[o], 1);
    sk_counter_add(&w->answers, 1);
    sk_hist_record(&w->hist[o], lat);
}

/* A request ends without an answer the client can trust: the service may or may not
 * have acted on it, so the audit asks about the user. */
static void end_in_doubt(worker_t *w, req_t *r, uint64_t now)
{
    w->in_doubt++;
    if (r->user)
        w->run->ustate[r->user] |= SK_USER_IN_DOUBT;
    finish(w, r, now);
}

static void on_response(sk_bench_conn_t *c, void *reqp, const sk_bench_resp_t *resp)
{
    wconn_t *wc = c->data;
    worker_t *w = wc->w;
    req_t *r = reqp;
    uint64_t now = sk_mono_ns();
    uint64_t base = r->attempt == 0 ? r->start_ns : r->sent_ns;
    const char *oid;
    size_t oid_len;
    sk_bench_outcome_t o = classify(w, resp, &oid, &oid_len);
    count(w, o, now > base ? now - base : 0);
    wc->backoff_ms = 0;
    uint8_t *us = r->user ? &w->run->ustate[r->user] : NULL;
    switch (o) {
    case SK_OUT_CONFIRMED:
    case SK_OUT_DUPLICATE:
        if (o == SK_OUT_CONFIRMED)
            w->last_confirm_ns = now;
        record_order(w, r->user, oid, oid_len, o);
        *us |= SK_USER_HOLDS;
        finish(w, r, now);
        break;
    case SK_OUT_LIMIT_REACHED:
        if (!(*us & SK_USER_HOLDS))
            record_order(w, r->user, oid, oid_len, o);
        if (oid_len)
            *us |= SK_USER_HOLDS;
        finish(w, r, now);
        break;
    case SK_OUT_SOLD_OUT:
        *us |= SK_USER_SOLD_OUT;
        finish(w, r, now);
        break;
    case SK_OUT_UNAVAILABLE:
        if (r->attempt < w->cfg->retries && !w->shutting_down)
            schedule_retry(w, r, now);
        else
            end_in_doubt(w, r, now);
        break;
    case SK_OUT_HTTP_ERROR:
        /* A 5xx from a proxy or a broken answer leaves the outcome unknown. */
        if (us && (resp->status >= 500 || resp->status < 300))
            end_in_doubt(w, r, now);
        else {
            if (us)
                *us |= SK_USER_REFUSED;
            finish(w, r, now);
        }
        break;
    case SK_OUT_OK:
        finish(w, r, now);
        break;
    default:
        if (us)
            *us |= SK_USER_REFUSED;
        finish(w, r, now);
        break;
    }
    /* In the closed loop a pipelined connection is refilled once half its pipeline is
     * free, so a write carries several requests even when the answers trickle in one
     * by one. The open loop never holds back a request that is due. */
    if (w->cfg->rate > 0 || c->cap - c->count >= (c->cap + 1) / 2)
        room_push(wc);
}

static void on_failed(sk_bench_conn_t *c, void *reqp, int err)
{
    (void)err;
    wconn_t *wc = c->data;
    worker_t *w = wc->w;
    req_t *r = reqp;
    uint64_t now = sk_mono_ns();
    if (w->shutting_down) {
        finish(w, r, now);
        return;
    }
    uint64_t base = r->attempt == 0 ? r->start_ns : r->sent_ns;
    count(w, SK_OUT_NET_ERROR, now > base ? now - base : 0);
    if (r->attempt < w->cfg->retries)
        schedule_retry(w, r, now);
    else
        end_in_doubt(w, r, now);
}

static void start_connect(wconn_t *wc);

static void on_reconnect_timer(sk_loop_t *loop, sk_timer_t *t)
{
    (void)loop;
    start_connect(t->data);
}

static void on_closed(sk_bench_conn_t *c, int err)
{
    wconn_t *wc = c->data;
    worker_t *w = wc->w;
    if (w->shutting_down || (w->gen_done && w->live == 0))
        return;
    if (!wc->settled) {
        wc->settled = true;
        w->settled++;
    }
    if (err == 0 && c->responses > 0) {
        /* The server closed an idle keep-alive connection (or said Connection:
         * close): open a new one at once. */
        start_connect(wc);
        return;
    }
    w->conn_failures++;
    wc->backoff_ms = wc->backoff_ms ? SK_MIN(wc->backoff_ms * 2, 1000u) : 10;
    sk_timer_start(w->loop, &wc->reconnect, wc->backoff_ms, on_reconnect_timer);
}

static void on_connected(sk_bench_conn_t *c)
{
    wconn_t *wc = c->data;
    if (!wc->settled) {
        wc->settled = true;
        wc->w->settled++;
    }
}

static const sk_bench_conn_cbs_t conn_cbs = {
    .on_response = on_response,
    .on_failed = on_failed,
    .on_connected = on_connected,
    .on_closed = on_closed,
};

static void start_connect(wconn_t *wc)
{
    worker_t *w = wc->w;
    if (w->shutting_down)
        return;
    int rc = sk_bench_conn_connect(&wc->conn);
    if (rc < 0) {
        if (!wc->settled) {
            wc->settled = true;
            w->settled++;
        }
        w->conn_failures++;
        wc->backoff_ms = wc->backoff_ms ? SK_MIN(wc->backoff_ms * 2, 1000u) : 10;
        sk_timer_start(w->loop, &wc->reconnect, wc->backoff_ms, on_reconnect_timer);
        return;
    }
    wc->mark = wc->conn.connects << 32;
    wc->mark_ns = sk_mono_ns();
    room_push(wc);
}

/* Open loop: every request has its intended send time on a fixed schedule; latency
 * counts from that time, however long the request then waited for a free connection
 * (no coordinated omission). Called every loop turn; when the loop would sleep, the
 * pacing timerfd (arm_pace) wakes it at the next intended time. */
static void schedule_due(worker_t *w, uint64_t now)
{
    for (;;) {
        if (w->quota && w->issued >= w->quota) {
            w->gen_done = true;
            return;
        }
        uint64_t due = w->fired_ns + (uint64_t)((double)w->sched_k * w->interval_ns);
        if (due > now)
            return;
        if (w->stop_ns && due >= w->stop_ns) {
            w->gen_done = true;
            return;
        }
        w->sched_k++;
        rq_push(w, new_req(w, due));
    }
}

/* Hands queued and new requests to connections with room. */
static void pump(worker_t *w)
{
    if (!w->fired)
        return;
    uint64_t now = sk_mono_ns();
    bool open_loop = w->cfg->rate > 0;
    if (open_loop && !w->gen_done)
        schedule_due(w, now);
    while (w->room) {
        wconn_t *wc = w->room;
        if (sk_bench_conn_room(&wc->conn) == 0) {
            w->room = wc->next_room;
            wc->in_room = false;
            continue;
        }
        req_t *r = rq_pop(w);
        if (!r) {
            if (open_loop || !can_generate(w, now))
                return;
            r = new_req(w, now);
        }
        send_req(wc, r, now);
    }
}

/* Ends everything still queued: unsent first attempts are dropped, retries count as in
 * doubt (an earlier attempt may have reached the service). */
static void drain_queues(worker_t *w, uint64_t now)
{
    req_t *r;
    while ((r = rq_pop(w))) {
        if (r->attempt == 0) {
            w->requests--;
            finish(w, r, now);
        } else {
            end_in_doubt(w, r, now);
        }
    }
    while (w->heap_len > 0)
        end_in_doubt(w, heap_pop(w), now);
}

static void sweep(worker_t *w, uint64_t now)
{
    uint64_t limit = (uint64_t)w->cfg->timeout_ms * 1000000u;
    for (uint32_t i = 0; i < w->nconns; i++) {
        wconn_t *wc = &w->conns[i];
        sk_bench_conn_t *c = &wc->conn;
        if (c->state == SK_BENCH_CONN_CLOSED)
            continue;
        uint64_t mark = (c->connects << 32) + c->responses;
        if (mark != wc->mark || (c->count == 0 && c->state == SK_BENCH_CONN_OPEN)) {
            wc->mark = mark;
            wc->mark_ns = now;
        } else if (now - wc->mark_ns > limit) {
            sk_bench_conn_close(c, -ETIMEDOUT);
        }
    }
}

static void fire(worker_t *w, uint64_t now)
{
    w->fired = true;
    w->fired_ns = now;
    if (w->cfg->duration_ms)
        w->stop_ns = now + w->cfg->duration_ms * 1000000u;
    if (!w->cfg->burst)
        for (uint32_t i = 0; i < w->nconns; i++)
            start_connect(&w->conns[i]);
}

static void on_tick(sk_loop_t *loop, sk_timer_t *t)
{
    worker_t *w = t->data;
    uint64_t now = sk_mono_ns();
    run_t *run = w->run;
    if (w->cfg->interrupted && atomic_load_explicit(w->cfg->interrupted, memory_order_relaxed) && !w->gen_done) {
        w->gen_done = true;
        drain_queues(w, now);
    }
    if (w->cfg->burst && !w->reported_ready && w->settled == w->nconns) {
        w->reported_ready = true;
        atomic_fetch_add(&run->ready_workers, 1);
    }
    if (!w->fired) {
        bool all_ready = !w->cfg->burst || atomic_load(&run->ready_workers) == run->nworkers;
        if ((now >= run->fire_ns && all_ready) || w->gen_done)
            fire(w, now);
    }
    if (w->fired && !w->gen_done) {
        if (w->cfg->rate > 0)
            schedule_due(w, now);
        else if (w->stop_ns && now >= w->stop_ns)
            w->gen_done = true;
    }
    while (w->heap_len > 0 && w->heap[0]->ready_ns <= now)
        rq_push(w, heap_pop(w));
    if (++w->ticks % 50 == 0)
        sweep(w, now);
    sk_timer_start(loop, t, 1, on_tick);
}

static void on_pace(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    (void)loop;
    (void)events;
    uint64_t n;
    while (read(io->fd, &n, sizeof(n)) == (ssize_t)sizeof(n)) {
    }
    worker_t *w = io->data;
    w->pace_armed_ns = 0;
    /* The requests now due are queued by pump() in the before-sleep hook. */
}

/* The loop's timers have millisecond resolution, which would add up to a millisecond
 * of the client's own delay to every open-loop latency; a timerfd wakes the loop at
 * the next intended send time instead (to within the kernel's timer slack). */
static void arm_pace(worker_t *w)
{
    if (w->pace.fd < 0 || !w->fired || w->gen_done)
        return;
    uint64_t due = w->fired_ns + (uint64_t)((double)w->sched_k * w->interval_ns);
    if (due == w->pace_armed_ns)
        return;
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(due / 1000000000u), .tv_nsec = (long)(due % 1000000000u)}};
    if (timerfd_settime(w->pace.fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        w->pace_armed_ns = due;
}

static void before_sleep(sk_loop_t *loop, void *arg)
{
    worker_t *w = arg;
    pump(w);
    sk_bench_client_flush(&w->client);
    arm_pace(w);
    if (w->fired && w->live == 0 && (w->gen_done || !can_generate(w, sk_mono_ns())) && w->rq_len == 0 &&
        w->heap_len == 0)
        sk_loop_stop(loop);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    w->loop = sk_loop_new();
    if (!w->loop) {
        sk_error("seckill-bench: cannot create an event loop: %s", strerror(errno));
        atomic_store(&w->done, 1);
        return NULL;
    }
    sk_bench_client_init(&w->client, w->loop);
    for (uint32_t i = 0; i < w->nconns; i++) {
        wconn_t *wc = &w->conns[i];
        sk_bench_conn_init(&wc->conn, &w->client, wc->conn.target, &conn_cbs, w->cfg->pipeline);
        wc->conn.data = wc;
        wc->reconnect.data = wc;
        if (w->cfg->burst)
            start_connect(wc);
    }
    w->pace.fd = -1;
    if (w->cfg->rate > 0) {
        int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (tfd >= 0) {
            w->pace.data = w;
            if (sk_io_start(w->loop, &w->pace, tfd, SK_IO_READ, on_pace) < 0) {
                close(tfd);
                w->pace.fd = -1;
            }
        }
    }
    w->tick.data = w;
    sk_timer_start(w->loop, &w->tick, 0, on_tick);
    sk_loop_add_before_sleep(w->loop, SK_LOOP_PHASE_OUTPUT, before_sleep, w);
    sk_loop_run(w->loop);

    /* A worker with nothing to send may end before its connections settled; it must
     * not hold the others back at the --burst barrier. */
    if (w->cfg->burst && !w->reported_ready)
        atomic_fetch_add(&w->run->ready_workers, 1);
    w->shutting_down = true;
    sk_timer_stop(w->loop, &w->tick);
    if (w->pace.fd >= 0) {
        sk_io_stop(w->loop, &w->pace);
        close(w->pace.fd);
    }
    for (uint32_t i = 0; i < w->nconns; i++) {
        sk_timer_stop(w->loop, &w->conns[i].reconnect);
        sk_bench_conn_close(&w->conns[i].conn, -ECANCELED);
        sk_bench_conn_free(&w->conns[i].conn);
    }
    sk_loop_remove_before_sleep(w->loop, before_sleep, w);
    sk_loop_free(w->loop);
    w->loop = NULL;
    atomic_store(&w->done, 1);
    return NULL;
}

static void build_prefixes(run_t *run)
{
    const sk_bench_config_t *cfg = run->cfg;
    run->prefixes = sk_xcalloc(cfg->ntargets, sizeof(char *));
    run->prefix_lens = sk_xcalloc(cfg->ntargets, sizeof(size_t));
    char *seg = run->sale ? sk_bench_path_segment(run->sale->id) : NULL;
    for (size_t i = 0; i < cfg->ntargets; i++) {
        const sk_bench_target_t *t = &cfg->targets[i];
        size_t cap = strlen(t->base) + strlen(t->hostport) + (seg ? strlen(seg) : 0) +
                     (cfg->get_path ? strlen(cfg->get_path) : 0) + 200;
        char *p = sk_xmalloc(cap);
        int n;
        if (cfg->get_path)
            n = snprintf(p, cap, "GET %s%s HTTP/1.1\r\nHost: %s\r\n\r\n", t->base, cfg->get_path, t->hostport);
        else
            n = snprintf(p, cap,
                         "POST %s/api/v1/sales/%s/purchase HTTP/1.1\r\nHost: %s\r\n"
                         "Content-Type: application/json\r\nContent-Length: ",
                         t->base, seg, t->hostport);
        run->prefixes[i] = p;
        run->prefix_lens[i] = (size_t)n;
    }
    free(seg);
}

static uint64_t sum_counter(const run_t *run, size_t off)
{
    uint64_t s = 0;
    for (uint32_t i = 0; i < run->nworkers; i++)
        s += sk_counter_get((const sk_counter_t *)((const char *)&run->workers[i] + off));
    return s;
}

static bool all_done(const run_t *run)
{
    for (uint32_t i = 0; i < run->nworkers; i++)
        if (!atomic_load(&run->workers[i].done))
            return false;
    return true;
}

static void progress(const run_t *run, bool tty, double t, double rate, uint64_t answers, bool final)
{
    const sk_bench_config_t *cfg = run->cfg;
    uint64_t c[SK_OUT_COUNT];
    for (int o = 0; o < SK_OUT_COUNT; o++)
        c[o] = sum_counter(run, offsetof(worker_t, counts) + (size_t)o * sizeof(sk_counter_t));
    char line[512];
    int n;
    if (cfg->get_path) {
        n = snprintf(line, sizeof(line), "[%6.1fs] %9.0f req/s  answers %llu  ok %llu  errors %llu", t, rate,
                     (unsigned long long)answers, (unsigned long long)c[SK_OUT_OK],
                     (unsigned long long)(c[SK_OUT_HTTP_ERROR] + c[SK_OUT_NET_ERROR]));
    } else {
        int64_t rem = INT64_MAX;
        for (uint32_t i = 0; i < run->nworkers; i++) {
            int64_t r = atomic_load_explicit(&run->workers[i].last_remaining, memory_order_relaxed);
            if (r < rem)
                rem = r;
        }
        char rems[32];
        if (rem == INT64_MAX)
            snprintf(rems, sizeof(rems), "%lld", (long long)run->sale->stock - (long long)c[SK_OUT_CONFIRMED]);
        else
            snprintf(rems, sizeof(rems), "%lld", (long long)rem);
        n = snprintf(line, sizeof(line),
                     "[%6.1fs] %9.0f req/s  answers %llu  confirmed %llu  remaining %s  sold_out %llu  "
                     "errors %llu",
                     t, rate, (unsigned long long)answers, (unsigned long long)c[SK_OUT_CONFIRMED], rems,
                     (unsigned long long)c[SK_OUT_SOLD_OUT],
                     (unsigned long long)(c[SK_OUT_UNAVAILABLE] + c[SK_OUT_HTTP_ERROR] + c[SK_OUT_NET_ERROR] +
                                          c[SK_OUT_RATE_LIMITED]));
    }
    if (n < 0)
        return;
    if (tty)
        fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
    else
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int sk_bench_run(const sk_bench_config_t *cfg, const sk_bench_sale_t *sale, sk_bench_results_t *res, char *err,
                 size_t err_len)
{
    memset(res, 0, sizeof(*res));
    for (int o = 0; o < SK_OUT_COUNT; o++)
        sk_hist_init(&res->hist[o]);
    sk_hist_init(&res->all);
    res->last_remaining = -1;

    run_t run = {.cfg = cfg, .sale = cfg->get_path ? NULL : sale};
    run.nworkers = cfg->threads;
    if (run.nworkers > cfg->connections)
        run.nworkers = cfg->connections;
    if (!cfg->get_path && run.nworkers > cfg->users)
        run.nworkers = cfg->users;
    if (run.nworkers == 0) {
        snprintf(err, err_len, "nothing to run: no connections or no users");
        return -1;
    }
    snprintf(run.rid, sizeof(run.rid), "r%s-", cfg->run_id);
    if (!cfg->get_path)
        run.ustate = sk_xcalloc((size_t)cfg->users + 1, 1);
    build_prefixes(&run);

    /* The fire instant: the sale's opening (on our clock), minus --early; now when
     * the sale is open already or there is none. */
    uint64_t now_ns = sk_mono_ns();
    run.fire_ns = now_ns;
    if (run.sale && run.sale->starts_at > 0) {
        /* +1: the server's clock is read in whole milliseconds. */
        int64_t local_start = run.sale->starts_at - run.sale->clock_offset_ms - (int64_t)cfg->early_ms + 1;
        int64_t wait_ms = local_start - sk_now_ms();
        if (wait_ms > 0)
            run.fire_ns = now_ns + (uint64_t)wait_ms * 1000000u;
    }

    uint64_t total = cfg->requests;
    if (!total && !cfg->duration_ms)
        total = cfg->get_path ? 10000 : cfg->users;
    run.workers = sk_xcalloc(run.nworkers, sizeof(worker_t));
    for (uint32_t i = 0; i < run.nworkers; i++) {
        worker_t *w = &run.workers[i];
        w->index = (int)i;
        w->run = &run;
        w->cfg = cfg;
        atomic_init(&w->last_remaining, INT64_MAX);
        atomic_init(&w->done, 0);
        for (int o = 0; o < SK_OUT_COUNT; o++)
            sk_hist_init(&w->hist[o]);
        if (total) {
            w->quota = total / run.nworkers + (i < total % run.nworkers ? 1 : 0);
            if (w->quota == 0) {
                w->gen_done = true;
                w->quota = 1; /* never reached: gen_done already */
            }
        }
        if (cfg->rate > 0)
            w->interval_ns = 1e9 * run.nworkers / cfg->rate;
        w->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)i * 0xbf58476d1ce4e5b9ull) ^ sk_mono_ns();
        if (!w->rng)
            w->rng = 1;
        if (!cfg->get_path) {
            w->part_n = (uint32_t)((cfg->users - i + run.nworkers - 1) / run.nworkers);
            uint64_t n = w->part_n;
            uint64_t mul = (uint64_t)((double)n * 0.6180339887) | 1;
            while (n > 1 && gcd(mul, n) != 1)
                mul++;
            w->perm_mul = n > 1 ? mul % n : 1;
            if (w->perm_mul == 0)
                w->perm_mul = 1;
            w->perm_off = xorshift(&w->rng) % (n ? n : 1);
        }
        /* Connections are dealt round-robin to workers and, within the total, to
         * targets. */
        for (uint32_t c = i; c < cfg->connections; c += run.nworkers)
            w->nconns++;
        w->conns = sk_xcalloc(w->nconns, sizeof(wconn_t));
        uint32_t k = 0;
        for (uint32_t c = i; c < cfg->connections; c += run.nworkers, k++) {
            wconn_t *wc = &w->conns[k];
            size_t ti = c % cfg->ntargets;
            wc->w = w;
            wc->conn.target = &cfg->targets[ti];
            wc->prefix = run.prefixes[ti];
            wc->prefix_len = run.prefix_lens[ti];
        }
    }
    for (uint32_t i = 0; i < run.nworkers; i++) {
        int rc = pthread_create(&run.workers[i].thread, NULL, worker_main, &run.workers[i]);
        if (rc != 0) {
            sk_error("seckill-bench: cannot start a client thread: %s", strerror(rc));
            abort();
        }
    }

    /* The main thread watches: a progress line, and answers per second for the
     * timeline. */
    bool tty = isatty(STDERR_FILENO);
    size_t tl_cap = 64;
    res->timeline = sk_xcalloc(tl_cap, sizeof(uint64_t));
    res->timeline_confirmed = sk_xcalloc(tl_cap, sizeof(uint64_t));
    uint64_t prev_ans = 0, prev_conf = 0, next_sample = run.fire_ns + 1000000000u;
    uint64_t last_print = 0, print_prev_ans = 0, print_prev_ns = run.fire_ns;
    bool waited_note = false;
    const size_t ans_off = offsetof(worker_t, answers);
    const size_t conf_off = offsetof(worker_t, counts) + SK_OUT_CONFIRMED * sizeof(sk_counter_t);
    while (!all_done(&run)) {
        sleep_ns(50000000u);
        uint64_t now = sk_mono_ns();
        if (now < run.fire_ns) {
            if (!cfg->quiet && (!waited_note || tty)) {
                double left = (double)(run.fire_ns - now) / 1e9;
                if (tty)
                    fprintf(stderr, "\rwaiting for the sale to open: %.1fs\033[K", left);
                else
                    fprintf(stderr, "waiting %.1fs for the sale to open\n", left);
                fflush(stderr);
                waited_note = true;
            }
            continue;
        }
        while (now >= next_sample) {
            uint64_t a = sum_counter(&run, ans_off), c = sum_counter(&run, conf_off);
            if (res->timeline_len == tl_cap) {
                tl_cap *= 2;
                res->timeline = sk_xrealloc(res->timeline, tl_cap * sizeof(uint64_t));
                res->timeline_confirmed = sk_xrealloc(res->timeline_confirmed, tl_cap * sizeof(uint64_t));
            }
            res->timeline[res->timeline_len] = a - prev_ans;
            res->timeline_confirmed[res->timeline_len] = c - prev_conf;
            res->timeline_len++;
            prev_ans = a;
            prev_conf = c;
            next_sample += 1000000000u;
        }
        if (!cfg->quiet && now - last_print >= (tty ? 250000000u : 1000000000u)) {
            uint64_t a = sum_counter(&run, ans_off);
            double dt = (double)(now - print_prev_ns) / 1e9;
            progress(&run, tty, (double)(now - run.fire_ns) / 1e9, dt > 0 ? (double)(a - print_prev_ans) / dt : 0, a,
                     false);
            print_prev_ans = a;
            print_prev_ns = now;
            last_print = now;
        }
    }
    for (uint32_t i = 0; i < run.nworkers; i++)
        pthread_join(run.workers[i].thread, NULL);
    /* The last partial second of the timeline. */
    {
        uint64_t a = sum_counter(&run, ans_off), c = sum_counter(&run, conf_off);
        if (a > prev_ans) {
            if (res->timeline_len == tl_cap) {
                tl_cap++;
                res->timeline = sk_xrealloc(res->timeline, tl_cap * sizeof(uint64_t));
                res->timeline_confirmed = sk_xrealloc(res->timeline_confirmed, tl_cap * sizeof(uint64_t));
            }
            res->timeline[res->timeline_len] = a - prev_ans;
            res->timeline_confirmed[res->timeline_len] = c - prev_conf;
            res->timeline_len++;
        }
    }
    if (!cfg->quiet && last_print) {
        uint64_t now = sk_mono_ns();
        uint64_t a = sum_counter(&run, ans_off);
        double dt = (double)(now - print_prev_ns) / 1e9;
        progress(&run, tty, (double)(now - run.fire_ns) / 1e9, dt > 0 ? (double)(a - print_prev_ans) / dt : 0, a, true);
    } else if (!cfg->quiet && tty && waited_note) {
        fputc('\n', stderr);
    }

    /* Merge the workers. */
    uint64_t first = 0, last = 0, last_confirm = 0;
    res->last_remaining = -1;
    for (uint32_t i = 0; i < run.nworkers; i++) {
        worker_t *w = &run.workers[i];
        for (int o = 0; o < SK_OUT_COUNT; o++) {
            res->counts[o] += sk_counter_get(&w->counts[o]);
            sk_hist_merge(&res->hist[o], &w->hist[o]);
            sk_hist_merge(&res->all, &w->hist[o]);
            sk_hist_free(&w->hist[o]);
        }
        res->answers += sk_counter_get(&w->answers);
        res->requests += w->requests;
        res->retries += w->retries;
        res->in_doubt += w->in_doubt;
        res->malformed += w->malformed;
        res->conn_failures += w->conn_failures;
        res->bytes_sent += w->client.bytes_sent;
        res->bytes_received += w->client.bytes_received;
        res->writes += w->client.writes;
        res->reads += w->client.reads;
        for (uint32_t k = 0; k < w->nconns; k++)
            res->connects += w->conns[k].conn.connects;
        if (w->first_send_ns && (!first || w->first_send_ns < first))
            first = w->first_send_ns;
        if (w->last_answer_ns > last)
            last = w->last_answer_ns;
        if (w->last_confirm_ns > last_confirm)
            last_confirm = w->last_confirm_ns;
        int64_t rem = atomic_load(&w->last_remaining);
        if (rem != INT64_MAX && (res->last_remaining < 0 || rem < res->last_remaining))
            res->last_remaining = rem;
        /* Order records: append this worker's, rebasing arena offsets. */
        if (w->norders) {
            res->orders = sk_xrealloc(res->orders, (res->norders + w->norders) * sizeof(*res->orders));
            res->arena = sk_xrealloc(res->arena, res->arena_len + w->arena_len + 1);
            memcpy(res->arena + res->arena_len, w->arena, w->arena_len);
            for (size_t k = 0; k < w->norders; k++) {
                sk_bench_order_rec_t rec = w->orders[k];
                rec.off += (uint32_t)res->arena_len;
                res->orders[res->norders++] = rec;
            }
            res->arena_len += w->arena_len;
        }
        free(w->orders);
        free(w->arena);
        for (size_t k = 0; k < w->nslabs; k++)
            free(w->slabs[k]);
        free(w->slabs);
        free(w->rq);
        free(w->heap);
        free(w->conns);
    }
    res->elapsed_s = first && last > first ? (double)(last - first) / 1e9 : 0;
    res->confirm_window_s = first && last_confirm > first ? (double)(last_confirm - first) / 1e9 : 0;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        res->cpu_user_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
        res->cpu_sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    }
    res->ustate = run.ustate;
    res->users = cfg->get_path ? 0 : cfg->users;
    free(run.workers);
    for (size_t i = 0; i < cfg->ntargets; i++)
        free(run.prefixes[i]);
    free(run.prefixes);
    free(run.prefix_lens);
    return 0;
}

void sk_bench_results_free(sk_bench_results_t *res)
{
    for (int o = 0; o < SK_OUT_COUNT; o++)
        sk_hist_free(&res->hist[o]);
    sk_hist_free(&res->all);
    free(res->timeline);
    free(res->timeline_confirmed);
    free(res->ustate);
    free(res->orders);
    free(res->arena);
    free(res->sale.id);
    free(res->sale.name);
    memset(res, 0, sizeof(*res));
}
