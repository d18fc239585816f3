/* The crowd on one client thread (crowd.h): requests made, queued, sent over the
 * worker's connections and retried; answers classified and counted; every order the
 * service names remembered for the audit; in the lifecycle scenario every reservation
 * given a plan, and its payment or cancel sent at the planned time. */
#include "loadgen/crowd.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "loadgen/resp.h"
#include "util/buf.h"

static const char *const outcome_names[SK_OUT_COUNT] = {
    "confirmed", "reserved",    "duplicate",    "sold_out",   "limit_reached", "not_started", "ended",
    "paused",    "unavailable", "rate_limited", "http_error", "net_error",     "ok",
};

const char *sk_loadgen_outcome_name(sk_loadgen_outcome_t o)
{
    return (unsigned)o < SK_OUT_COUNT ? outcome_names[o] : "?";
}

static const char *const state_names[SK_LOADGEN_ST__COUNT] = {"unknown",   "reserved", "confirmed",
                                                              "cancelled", "expired",  "refunded"};

sk_loadgen_state_t sk_loadgen_state_parse(const char *s, size_t n)
{
    for (int i = 1; i < SK_LOADGEN_ST__COUNT; i++)
        if (n == strlen(state_names[i]) && memcmp(s, state_names[i], n) == 0)
            return (sk_loadgen_state_t)i;
    return SK_LOADGEN_ST_UNKNOWN;
}

const char *sk_loadgen_state_name(sk_loadgen_state_t st)
{
    return (unsigned)st < SK_LOADGEN_ST__COUNT ? state_names[st] : "?";
}

const char *sk_loadgen_plan_name(sk_loadgen_plan_t p)
{
    static const char *const names[SK_PLAN__COUNT] = {"walk_away", "pay", "pay_late", "cancel"};
    return (unsigned)p < SK_PLAN__COUNT ? names[p] : "?";
}

const char *sk_loadgen_act_name(sk_loadgen_act_t a)
{
    static const char *const names[SK_ACT__COUNT] = {"none",         "confirmed", "expired",  "cancelled",
                                                     "not_reserved", "refused",   "in_doubt", "error"};
    return (unsigned)a < SK_ACT__COUNT ? names[a] : "?";
}

/* A uniform draw in [0, 1). */
static double unit_draw(worker_t *w)
{
    return (double)(sk_loadgen_xorshift(&w->rng) >> 11) * (1.0 / 9007199254740992.0);
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
    r->kind = REQ_BUY;
    r->user = purchase_mode(w) ? sk_loadgen_users_draw(&w->users, w->issued) : 0;
    /* Drawn from the user and the request's number: a retry asks for the same again. */
    r->quantity = purchase_mode(w) ? sk_loadgen_qty_draw(&w->cfg->qty, r->user, r->seq) : 1;
    if (r->user)
        w->run->ustate[r->user] |= SK_LOADGEN_USER_TRIED;
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
static bool stopped(worker_t *w)
{
    if (!w->gen_done && atomic_load_explicit(&w->run->stop, memory_order_relaxed))
        w->gen_done = true;
    return w->gen_done;
}

static bool can_generate(worker_t *w, uint64_t now)
{
    if (stopped(w))
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

/* The order id of reservation i of worker w (in its arena). */
static const char *resv_order_id(const worker_t *w, uint32_t i, size_t *len)
{
    const sk_loadgen_order_rec_t *rec = &w->orders[w->resv[i].rec];
    *len = rec->len;
    return w->arena + rec->off;
}

/* Writes a reservation's payment or cancel: POST .../orders/{id}/pay with
 * {"payment_id":"p<run>-<worker>-<reservation>"} signed by the payment key (or the admin
 * token), or POST .../cancel with {"user_id"} — the same bytes on every attempt. */
static void send_action(wconn_t *wc, req_t *r)
{
    worker_t *w = wc->w;
    const sk_loadgen_config_t *cfg = w->cfg;
    const sk_loadgen_target_t *t = wc->conn.target;
    size_t idl;
    const char *id = resv_order_id(w, r->resv, &idl);
    char body[160], auth[160] = "";
    int bl;
    if (r->kind == REQ_PAY) {
        bl = snprintf(body, sizeof(body), "{\"payment_id\":\"p%s-%d-%u\"}", cfg->run_id, w->index, r->resv);
        if (cfg->payment_key) {
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned int md_len = 0;
            HMAC(EVP_sha256(), cfg->payment_key, (int)cfg->payment_key_len, (const unsigned char *)body, (size_t)bl, md,
                 &md_len);
            static const char hex[] = "0123456789abcdef";
            char sig[2 * EVP_MAX_MD_SIZE + 1];
            for (unsigned int i = 0; i < md_len; i++) {
                sig[2 * i] = hex[md[i] >> 4];
                sig[2 * i + 1] = hex[md[i] & 15];
            }
            sig[2 * md_len] = '\0';
            snprintf(auth, sizeof(auth), "X-Seckill-Signature: sha256=%s\r\n", sig);
        } else if (cfg->admin_token) {
            snprintf(auth, sizeof(auth), "Authorization: Bearer %.120s\r\n", cfg->admin_token);
        }
    } else {
        bl = snprintf(body, sizeof(body), "{\"user_id\":\"u%u\"}", r->user);
    }
    size_t cap = strlen(t->base) + idl + strlen(t->hostport) + strlen(auth) + (size_t)bl + 200;
    char *p = sk_loadgen_conn_reserve(&wc->conn, cap);
    int n = snprintf(p, cap,
                     "POST %s/api/v1/orders/%.*s/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %d\r\n\r\n%s",
                     t->base, (int)idl, id, r->kind == REQ_PAY ? "pay" : "cancel", t->hostport, auth, bl, body);
    sk_loadgen_conn_commit(&wc->conn, r, (size_t)n);
}

/* Writes one request onto the connection (there is room). */
static void send_req(wconn_t *wc, req_t *r, uint64_t now)
{
    worker_t *w = wc->w;
    sk_loadgen_conn_t *c = &wc->conn;
    if (r->kind != REQ_BUY) {
        send_action(wc, r);
        r->sent_ns = now;
        if (r->attempt == 0) {
            r->start_ns = now;
            r->first_wall_ms = sk_now_ms();
        }
        return;
    }
    if (!purchase_mode(w)) {
        memcpy(sk_loadgen_conn_reserve(c, wc->prefix_len), wc->prefix, wc->prefix_len);
        sk_loadgen_conn_commit(c, r, wc->prefix_len);
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
        body[b++] = '"';
        if (w->cfg->qty.max) {
            memcpy(body + b, ",\"quantity\":", 12);
            b += 12;
            b += sk_fmt_u64(body + b, r->quantity);
        }
        body[b++] = '}';
        char *p = sk_loadgen_conn_reserve(c, wc->prefix_len + 24 + b);
        memcpy(p, wc->prefix, wc->prefix_len);
        size_t n = wc->prefix_len;
        n += sk_fmt_u64(p + n, b);
        memcpy(p + n, "\r\n\r\n", 4);
        n += 4;
        memcpy(p + n, body, b);
        n += b;
        sk_loadgen_conn_commit(c, r, n);
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
    if (r->kind == REQ_BUY)
        w->retries++;
    else
        w->life.retries++;
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
    ns = ns - ns / 4 + sk_loadgen_xorshift(&w->rng) % (ns / 2 + 1);
    r->ready_ns = now + ns;
    heap_push(w, r);
}

/* Remembers an order the service named, with the units the answer said it holds (0:
 * not said); false when the id cannot be an order id. */
static bool record_order(worker_t *w, uint32_t user, const char *id, size_t len, sk_loadgen_outcome_t o,
                         uint32_t quantity)
{
    if (len == 0 || len > 1024)
        return false;
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
    w->orders[w->norders++] = (sk_loadgen_order_rec_t){
        .user = user, .off = (uint32_t)w->arena_len, .len = (uint16_t)n, .outcome = (uint8_t)o, .quantity = quantity};
    w->arena_len += n;
    return true;
}

/* Schedules reservation i's payment or cancel at its planned time: inside what is left
 * of the window on the server's clock (which is at most ours + the offset's upper
 * bound), or — paying late — 0.1 to 1 s after pay_by on the server's clock for certain
 * (which is at least ours + the lower bound). It waits in the retry heap. */
static void plan_action(worker_t *w, uint32_t i, uint64_t now_ns)
{
    sk_loadgen_resv_t *v = &w->resv[i];
    const sk_loadgen_sale_t *sale = w->run->sale;
    int64_t now_wall = sk_now_ms();
    int64_t delay_ms;
    if (v->plan == SK_PLAN_LATE) {
        int64_t target = v->pay_by + 100 + (int64_t)(unit_draw(w) * 900);
        delay_ms = target - sale->clock_offset_ms - now_wall;
    } else {
        int64_t left = v->pay_by - (now_wall + sale->clock_offset_hi_ms);
        delay_ms = left > 0 ? (int64_t)((0.05 + 0.8 * unit_draw(w)) * (double)left) : 0;
    }
    if (delay_ms < 0)
        delay_ms = 0;
    req_t *r = req_alloc(w);
    r->kind = v->plan == SK_PLAN_CANCEL ? REQ_CANCEL : REQ_PAY;
    r->resv = i;
    r->user = v->user;
    r->quantity = v->quantity;
    r->seq = 0;
    r->attempt = 0;
    r->first_wall_ms = 0;
    r->ready_ns = now_ns + (uint64_t)delay_ms * 1000000u;
    r->start_ns = r->sent_ns = r->ready_ns;
    w->live++;
    heap_push(w, r);
}

/* A reservation the client was given: remembered, given a plan (the --pay, --late and
 * --cancel shares; the rest walk away) and, unless it walks away, its action planned. */
static void add_reservation(worker_t *w, uint32_t user, const char *id, size_t len, int64_t pay_by, uint32_t quantity,
                            sk_loadgen_outcome_t o, uint64_t now_ns)
{
    if (!record_order(w, user, id, len, o, quantity))
        return;
    if (w->nresv == w->resv_cap) {
        w->resv_cap = w->resv_cap ? w->resv_cap * 2 : 4096;
        w->resv = sk_xrealloc(w->resv, w->resv_cap * sizeof(*w->resv));
    }
    const sk_loadgen_config_t *cfg = w->cfg;
    double u = unit_draw(w);
    sk_loadgen_plan_t plan = u < cfg->pay_share                                         ? SK_PLAN_PAY
                             : u < cfg->pay_share + cfg->late_share                     ? SK_PLAN_LATE
                             : u < cfg->pay_share + cfg->late_share + cfg->cancel_share ? SK_PLAN_CANCEL
                                                                                        : SK_PLAN_WALK;
    uint32_t i = (uint32_t)w->nresv++;
    w->resv[i] = (sk_loadgen_resv_t){.rec = (uint32_t)(w->norders - 1),
                                     .user = user,
                                     .pay_by = pay_by,
                                     .quantity = quantity ? quantity : 1,
                                     .plan = (uint8_t)plan};
    w->life.reservations++;
    w->life.plans[plan]++;
    if (plan != SK_PLAN_WALK)
        plan_action(w, i, now_ns);
}

static bool str_is(const char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* What a purchase answer named besides its outcome. */
typedef struct {
    const char *oid;
    size_t oid_len;
    int64_t pay_by; /* 0: none */
    uint32_t quantity; /* 0: not said */
    sk_loadgen_state_t state; /* a duplicate's order state */
} answer_t;

static int64_t scan_int(const sk_loadgen_resp_t *resp, const char *key, int64_t dflt)
{
    const char *v;
    size_t vl;
    int64_t x;
    if (sk_loadgen_json_scan(resp->body, resp->body_len, key, &v, &vl) == 2 &&
        sk_parse_i64(v, vl, 0, INT64_MAX, &x) == 0)
        return x;
    return dflt;
}

static sk_loadgen_outcome_t classify(worker_t *w, const sk_loadgen_resp_t *resp, answer_t *a)
{
    const char *v;
    size_t vl;
    memset(a, 0, sizeof(*a));
    if (!purchase_mode(w))
        return resp->status < 400 ? SK_OUT_OK : SK_OUT_HTTP_ERROR;
    switch (resp->status) {
    case 201:
    case 200: {
        sk_loadgen_outcome_t o = SK_OUT_CONFIRMED;
        if (sk_loadgen_json_scan(resp->body, resp->body_len, "result", &v, &vl) == 1) {
            if (str_is(v, vl, "duplicate"))
                o = SK_OUT_DUPLICATE;
            else if (str_is(v, vl, "reserved") && resp->status == 201)
                o = SK_OUT_RESERVED;
            else if (!str_is(v, vl, "confirmed"))
                goto malformed;
        } else if (resp->status == 200) {
            goto malformed;
        }
        if (sk_loadgen_json_scan(resp->body, resp->body_len, "order_id", &a->oid, &a->oid_len) != 1 || a->oid_len == 0)
            goto malformed;
        a->pay_by = scan_int(resp, "pay_by", 0);
        a->quantity = (uint32_t)SK_MIN(scan_int(resp, "quantity", 0), (int64_t)UINT32_MAX);
        if (sk_loadgen_json_scan(resp->body, resp->body_len, "state", &v, &vl) == 1)
            a->state = sk_loadgen_state_parse(v, vl);
        if (o == SK_OUT_RESERVED && a->pay_by <= 0)
            goto malformed; /* a reservation names its deadline */
        if (sk_loadgen_json_scan(resp->body, resp->body_len, "remaining", &v, &vl) == 2) {
            int64_t rem;
            if (sk_parse_i64(v, vl, 0, INT64_MAX, &rem) == 0 &&
                rem < atomic_load_explicit(&w->last_remaining, memory_order_relaxed))
                atomic_store_explicit(&w->last_remaining, rem, memory_order_relaxed);
        }
        return o;
    }
    case 409:
        if (sk_loadgen_json_scan(resp->body, resp->body_len, "error", &v, &vl) == 1) {
            if (str_is(v, vl, "sold_out")) {
                /* Sold out for this quantity: fewer units may remain than asked for. */
                int64_t rem = scan_int(resp, "remaining", 0);
                if (rem < atomic_load_explicit(&w->last_remaining, memory_order_relaxed))
                    atomic_store_explicit(&w->last_remaining, rem, memory_order_relaxed);
                return SK_OUT_SOLD_OUT;
            }
            if (str_is(v, vl, "paused"))
                return SK_OUT_PAUSED;
            if (str_is(v, vl, "limit_reached")) {
                if (sk_loadgen_json_scan(resp->body, resp->body_len, "order_id", &a->oid, &a->oid_len) != 1)
                    a->oid_len = 0;
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

static void count(worker_t *w, sk_loadgen_outcome_t o, uint64_t lat)
{
    sk_counter_add(&w->counts[o], 1);
    sk_counter_add(&w->answers, 1);
    sk_hist_record(&w->hist[o], lat);
}

/* A request ends without an answer the client can trust: the service may or may not
 * have acted on it, so the audit asks about the user. */
static void end_in_doubt(worker_t *w, req_t *r, uint64_t now)
{
    if (r->kind != REQ_BUY) {
        sk_loadgen_resv_t *v = &w->resv[r->resv];
        v->act = SK_ACT_IN_DOUBT;
        w->life.acts[v->plan][SK_ACT_IN_DOUBT]++;
        finish(w, r, now);
        return;
    }
    w->in_doubt++;
    if (r->user)
        w->run->ustate[r->user] |= SK_LOADGEN_USER_IN_DOUBT;
    finish(w, r, now);
}

/* The answer to a reservation's payment or cancel. A 503, a 429 or a proxy's 5xx is
 * retried with the same bytes (the same payment id: a correct service never pays twice
 * for it); the rest is what the service decided, checked against its own clock: a
 * confirmation of a payment sent after pay_by, or "expired" answered before pay_by, is
 * noted on the reservation for the audit. */
static void on_action_response(wconn_t *wc, req_t *r, const sk_loadgen_resp_t *resp, uint64_t now)
{
    worker_t *w = wc->w;
    sk_loadgen_resv_t *v = &w->resv[r->resv];
    const sk_loadgen_sale_t *sale = w->run->sale;
    const char *val;
    size_t vl;
    int st = resp->status;
    if (st >= 500 || st == 429) {
        if (r->attempt < w->cfg->retries && !w->shutting_down) {
            schedule_retry(w, r, now);
            return;
        }
        end_in_doubt(w, r, now);
        return;
    }
    sk_loadgen_act_t act = SK_ACT_ERROR;
    bool has_result = sk_loadgen_json_scan(resp->body, resp->body_len, "result", &val, &vl) == 1;
    if (r->kind == REQ_PAY) {
        if (st == 200 && has_result && (str_is(val, vl, "confirmed") || str_is(val, vl, "duplicate")))
            act = SK_ACT_CONFIRMED;
        else if (st == 409 && sk_loadgen_json_scan(resp->body, resp->body_len, "error", &val, &vl) == 1)
            act = str_is(val, vl, "expired") ? SK_ACT_EXPIRED
                  : str_is(val, vl, "cancelled") || str_is(val, vl, "refunded") || str_is(val, vl, "already_paid")
                      ? SK_ACT_REFUSED
                      : SK_ACT_ERROR;
    } else {
        if (st == 200 && has_result && str_is(val, vl, "cancelled"))
            act = SK_ACT_CANCELLED;
        else if (st == 409 && sk_loadgen_json_scan(resp->body, resp->body_len, "error", &val, &vl) == 1 &&
                 str_is(val, vl, "not_reserved"))
            act = SK_ACT_NOT_RESERVED;
    }
    if ((act == SK_ACT_NOT_RESERVED || act == SK_ACT_REFUSED) &&
        sk_loadgen_json_scan(resp->body, resp->body_len, "state", &val, &vl) == 1)
        v->state = (uint8_t)sk_loadgen_state_parse(val, vl);
    if (act == SK_ACT_CONFIRMED && r->first_wall_ms + sale->clock_offset_ms > v->pay_by)
        v->flags |= SK_RESV_LATE_CONFIRMED;
    if (act == SK_ACT_EXPIRED && sk_now_ms() + sale->clock_offset_hi_ms < v->pay_by)
        v->flags |= SK_RESV_EARLY_EXPIRED;
    v->act = (uint8_t)act;
    w->life.acts[v->plan][act]++;
    sk_hist_record(r->kind == REQ_PAY ? &w->life.hist_pay : &w->life.hist_cancel,
                   now > r->sent_ns ? now - r->sent_ns : 0);
    finish(w, r, now);
}

static void on_response(sk_loadgen_conn_t *c, void *reqp, const sk_loadgen_resp_t *resp)
{
    wconn_t *wc = c->data;
    worker_t *w = wc->w;
    req_t *r = reqp;
    uint64_t now = sk_mono_ns();
    wc->backoff_ms = 0;
    if (r->kind != REQ_BUY) {
        on_action_response(wc, r, resp, now);
        if (w->cfg->rate > 0 || c->cap - c->count >= (c->cap + 1) / 2)
            room_push(wc);
        return;
    }
    uint64_t base = r->attempt == 0 ? r->start_ns : r->sent_ns;
    answer_t a;
    sk_loadgen_outcome_t o = classify(w, resp, &a);
    /* The units an order holds, as its answer said; a service without quantities says
     * nothing: one unit. */
    uint32_t qty = a.quantity ? a.quantity : 1;
    const char *v;
    size_t vl;
    count(w, o, now > base ? now - base : 0);
    uint8_t *us = r->user ? &w->run->ustate[r->user] : NULL;
    switch (o) {
    case SK_OUT_CONFIRMED:
    case SK_OUT_RESERVED:
    case SK_OUT_DUPLICATE:
        if (o != SK_OUT_DUPLICATE) {
            w->last_confirm_ns = now;
            sk_counter_add(&w->made, 1);
        }
        /* A reservation — or the replay of one whose first answer was lost — gets its
         * plan; every other order is only remembered. */
        if (w->cfg->lifecycle && a.pay_by > 0 &&
            (o == SK_OUT_RESERVED || (o == SK_OUT_DUPLICATE && a.state == SK_LOADGEN_ST_RESERVED)))
            add_reservation(w, r->user, a.oid, a.oid_len, a.pay_by, qty, o, now);
        else
            record_order(w, r->user, a.oid, a.oid_len, o, qty);
        *us |= SK_LOADGEN_USER_HOLDS;
        finish(w, r, now);
        break;
    case SK_OUT_LIMIT_REACHED:
        if (!(*us & SK_LOADGEN_USER_HOLDS))
            record_order(w, r->user, a.oid, a.oid_len, o, 0);
        if (a.oid_len)
            *us |= SK_LOADGEN_USER_HOLDS;
        finish(w, r, now);
        break;
    case SK_OUT_SOLD_OUT:
        /* Only "nothing left" says a willing buyer went without (the audit's undersold):
         * sold out with units left means fewer than this buyer asked for. */
        if (sk_loadgen_json_scan(resp->body, resp->body_len, "remaining", &v, &vl) != 2 || str_is(v, vl, "0"))
            *us |= SK_LOADGEN_USER_SOLD_OUT;
        if (r->quantity <= 1)
            sk_counter_add(&w->sold_out1, 1);
        finish(w, r, now);
        break;
    case SK_OUT_ENDED:
        /* A sale that ended takes no more orders: the lifecycle crowd, which would
         * otherwise buy until its time cap, stops there. */
        if (w->cfg->lifecycle)
            w->gen_done = true;
        *us |= SK_LOADGEN_USER_REFUSED;
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
                *us |= SK_LOADGEN_USER_REFUSED;
            finish(w, r, now);
        }
        break;
    case SK_OUT_OK:
        finish(w, r, now);
        break;
    default:
        if (us)
            *us |= SK_LOADGEN_USER_REFUSED;
        finish(w, r, now);
        break;
    }
    /* In the closed loop a pipelined connection is refilled once half its pipeline is
     * free, so a write carries several requests even when the answers trickle in one
     * by one. The open loop never holds back a request that is due. */
    if (w->cfg->rate > 0 || c->cap - c->count >= (c->cap + 1) / 2)
        room_push(wc);
}

static void on_failed(sk_loadgen_conn_t *c, void *reqp, int err)
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
    if (r->kind == REQ_BUY)
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

static void on_closed(sk_loadgen_conn_t *c, int err)
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

static void on_connected(sk_loadgen_conn_t *c)
{
    wconn_t *wc = c->data;
    if (!wc->settled) {
        wc->settled = true;
        wc->w->settled++;
    }
}

static const sk_loadgen_conn_cbs_t conn_cbs = {
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
    int rc = sk_loadgen_conn_connect(&wc->conn);
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
    if (stopped(w))
        return;
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
        if (sk_loadgen_conn_room(&wc->conn) == 0) {
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
            if (r->kind == REQ_BUY)
                w->requests--; /* never sent; an unsent action leaves its reservation to expire */
            finish(w, r, now);
        } else {
            end_in_doubt(w, r, now);
        }
    }
    while (w->heap_len > 0) {
        r = heap_pop(w);
        if (r->attempt == 0)
            finish(w, r, now);
        else
            end_in_doubt(w, r, now);
    }
}

static void sweep(worker_t *w, uint64_t now)
{
    uint64_t limit = (uint64_t)w->cfg->timeout_ms * 1000000u;
    for (uint32_t i = 0; i < w->nconns; i++) {
        wconn_t *wc = &w->conns[i];
        sk_loadgen_conn_t *c = &wc->conn;
        if (c->state == SK_LOADGEN_CONN_CLOSED)
            continue;
        uint64_t mark = (c->connects << 32) + c->responses;
        if (mark != wc->mark || (c->count == 0 && c->state == SK_LOADGEN_CONN_OPEN)) {
            wc->mark = mark;
            wc->mark_ns = now;
        } else if (now - wc->mark_ns > limit) {
            sk_loadgen_conn_close(c, -ETIMEDOUT);
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
    if (w->cfg->interrupted && atomic_load_explicit(w->cfg->interrupted, memory_order_relaxed) && !w->drained) {
        w->drained = true;
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
    sk_loadgen_client_flush(&w->client);
    arm_pace(w);
    if (w->fired && w->live == 0 && (w->gen_done || !can_generate(w, sk_mono_ns())) && w->rq_len == 0 &&
        w->heap_len == 0)
        sk_loop_stop(loop);
}

void *sk_loadgen_crowd_main(void *arg)
{
    worker_t *w = arg;
    w->loop = sk_loop_new_io(w->cfg->io);
    if (!w->loop) {
        sk_error("seckill-bench: cannot create an event loop: %s", strerror(errno));
        atomic_store(&w->done, 1);
        return NULL;
    }
    sk_loadgen_client_init(&w->client, w->loop);
    for (uint32_t i = 0; i < w->nconns; i++) {
        wconn_t *wc = &w->conns[i];
        sk_loadgen_conn_init(&wc->conn, &w->client, wc->conn.target, &conn_cbs, w->cfg->pipeline);
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
    sk_loop_run_or_exit(w->loop, "bench worker");

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
        sk_loadgen_conn_close(&w->conns[i].conn, -ECANCELED);
        sk_loadgen_conn_free(&w->conns[i].conn);
    }
    sk_loop_remove_before_sleep(w->loop, before_sleep, w);
    sk_loop_free(w->loop);
    w->loop = NULL;
    atomic_store(&w->done, 1);
    return NULL;
}
