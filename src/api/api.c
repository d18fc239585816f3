/* The HTTP API v1 (DESIGN.md §2): routes, the purchase gate, JSON replies, metrics,
 * static pages and Server-Sent Events.
 *
 * The purchase gate runs on the worker thread: unknown sale, not started, ended and
 * sold out are answered here from the clock and an atomic flag, without ever touching
 * the ledger. Only purchases that may succeed are queued to the ledger, and their
 * answers are deferred until the ledger's batch is durable. */
#include "api/api.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/assets.h"
#include "http/router.h"
#include "util/buf.h"

#define SSE_TICK_MS 100 /* at most 10 updates a second per sale */
#define SSE_PING_MS 15000
#define LIST_LIMIT_MAX 10000

struct sk_api {
    sk_api_config_t cfg;
    size_t token_len;
    sk_api_worker_t *workers[SK_API_MAX_WORKERS];
    _Atomic size_t n_workers;
};

typedef struct sse_sub sse_sub_t;

typedef struct {
    sse_sub_t **subs;
    size_t n, cap;
    uint64_t last_version;
    int last_state;
} sse_sale_t;

struct sk_api_worker {
    sk_api_t *api;
    sk_loop_t *loop;
    sk_http_server_t *server;
    sk_engine_worker_t *ew;
    sk_counter_t (*purchases)[SK_BUY__COUNT]; /* [sale index][result] */
    sse_sale_t *sse; /* [sale index] */
    _Atomic size_t sse_total;
    sk_timer_t sse_timer;
    uint64_t last_ping_ms;
    sk_buf_t scratch;
};

/* ---- small JSON writers ------------------------------------------------------------ */

static void sale_json(sk_buf_t *b, const sk_sale_t *s, int64_t now)
{
    int64_t sold = sk_sale_sold(s);
    sk_buf_puts(b, "{\"id\":");
    sk_buf_put_json_str(b, s->id, s->id_len);
    sk_buf_puts(b, ",\"name\":");
    sk_buf_put_json_str(b, s->name, strlen(s->name));
    sk_buf_puts(b, ",\"stock\":");
    sk_buf_put_i64(b, s->stock);
    sk_buf_puts(b, ",\"sold\":");
    sk_buf_put_i64(b, sold);
    sk_buf_puts(b, ",\"remaining\":");
    sk_buf_put_i64(b, s->stock - sold);
    sk_buf_puts(b, ",\"state\":\"");
    sk_buf_puts(b, sk_sale_state_name(sk_sale_state(s, now)));
    sk_buf_puts(b, "\",\"starts_at\":");
    sk_buf_put_i64(b, s->starts_at);
    sk_buf_puts(b, ",\"ends_at\":");
    sk_buf_put_i64(b, s->ends_at);
    sk_buf_puts(b, ",\"per_user_limit\":");
    sk_buf_put_i64(b, s->per_user_limit);
    sk_buf_puts(b, ",\"server_time\":");
    sk_buf_put_i64(b, now);
    sk_buf_putc(b, '}');
}

static void order_json(sk_buf_t *b, const sk_sale_t *s, const sk_order_t *o, bool with_user)
{
    char id[SK_ORDER_ID_MAX + 1];
    size_t n = sk_order_id(id, s, o->seq);
    sk_buf_puts(b, "{\"order_id\":\"");
    sk_buf_append(b, id, n);
    sk_buf_putc(b, '"');
    if (with_user) {
        sk_buf_puts(b, ",\"user_id\":");
        sk_buf_put_json_str(b, o->user_id, strlen(o->user_id));
    }
    sk_buf_puts(b, ",\"request_id\":");
    sk_buf_put_json_str(b, o->request_id, strlen(o->request_id));
    sk_buf_puts(b, ",\"created_at\":");
    sk_buf_put_i64(b, o->created_at);
    sk_buf_putc(b, '}');
}

static void reply_json(sk_http_exchange_t *x, int status, sk_buf_t *b)
{
    sk_buf_putc(b, '\n');
    sk_http_respond(x, status, "application/json", b->data, b->len);
}

static void bad_field(sk_http_exchange_t *x, const char *field, const char *message)
{
    sk_buf_t b = {0};
    sk_buf_puts(&b, "{\"error\":\"bad_request\",\"message\":");
    sk_buf_put_json_str(&b, message, strlen(message));
    sk_buf_puts(&b, ",\"field\":");
    sk_buf_put_json_str(&b, field, strlen(field));
    sk_buf_putc(&b, '}');
    reply_json(x, 400, &b);
    sk_buf_free(&b);
}

/* ---- parsing ------------------------------------------------------------------------- */

int sk_api_parse_time(const char *s, size_t n, int64_t *ms)
{
    if (n > 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) && memchr(s, 'T', n) == NULL &&
        memchr(s, ':', n) == NULL) {
        return sk_parse_i64(s, n, 0, 253402300799999LL, ms) == 0 ? 0 : -EINVAL;
    }
    /* RFC 3339: YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM) */
    char buf[64];
    if (n < 20 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    /* sscanf's %d also takes signs and leading spaces ("T-1:-1:-1"): insist on digits. */
    for (int i = 0; i < 19; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && !(buf[i] >= '0' && buf[i] <= '9'))
            return -EINVAL;
    int Y, M, D, h, m, sec, used = 0;
    if (sscanf(buf, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &used) != 6 || used != 19)
        return -EINVAL;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 || Y < 1970)
        return -EINVAL;
    const char *p = buf + 19;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0)
            return -EINVAL;
        while (digits++ < 3)
            frac *= 10;
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!(p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' && p[3] == ':' && p[4] >= '0' && p[4] <= '9' &&
              p[5] >= '0' && p[5] <= '9'))
            return -EINVAL;
        oh = (p[1] - '0') * 10 + (p[2] - '0');
        om = (p[4] - '0') * 10 + (p[5] - '0');
        if (oh > 23 || om > 59)
            return -EINVAL;
        offset = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p != '\0')
        return -EINVAL;
    struct tm tm = {
        .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec > 59 ? 59 : sec};
    time_t t = timegm(&tm);
    /* timegm rolls a day past the month's end into the next month (Feb 30 = Mar 1). */
    if (t == (time_t)-1 || tm.tm_mday != D)
        return -EINVAL;
    *ms = ((int64_t)t - offset * 60) * 1000 + frac;
    return 0;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes a form value into out (cap bytes incl. NUL). Returns length or -1. */
static int form_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int a = hexv(s[i + 1]), b = hexv(s[i + 2]);
            if (a < 0 || b < 0)
                return -1;
            c = (char)(a * 16 + b);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

/* The hot path's JSON: a flat object whose values are strings without escapes. Returns
 * 1 when parsed, 0 when the body needs the full parser, -1 when it is not JSON. */
static int quick_json(const char *p, size_t n, const char **uk, size_t *ul, const char **rk, size_t *rl)
{
    const char *end = p + n;
#define WS()                                                                                                           \
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))                                           \
    p++
    WS();
    if (p == end || *p != '{')
        return -1;
    p++;
    WS();
    if (p < end && *p == '}')
        return 1;
    for (;;) {
        WS();
        if (p == end || *p != '"')
            return 0;
        const char *k = ++p;
        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p == end || *p == '\\')
            return 0;
        size_t kl = (size_t)(p - k);
        p++;
        WS();
        if (p == end || *p != ':')
            return 0;
        p++;
        WS();
        if (p == end || *p != '"')
            return 0;
        const char *v = ++p;
        while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            p++;
        if (p == end || *p != '"')
            return 0;
        size_t vl = (size_t)(p - v);
        p++;
        if (kl == 7 && memcmp(k, "user_id", 7) == 0) {
            *uk = v;
            *ul = vl;
        } else if (kl == 10 && memcmp(k, "request_id", 10) == 0) {
            *rk = v;
            *rl = vl;
        } else {
            return 0; /* unknown key: let the full parser report it */
        }
        WS();
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '}') {
            p++;
            WS();
            return p == end ? 1 : -1;
        }
        return 0;
    }
#undef WS
}

int sk_api_parse_purchase(const char *body, size_t len, bool form, char *user, size_t *user_len, char *req,
                          size_t *req_len, const char **field)
{
    *user_len = *req_len = 0;
    user[0] = req[0] = '\0';
    *field = "body";
    if (form) {
        const char *p = body, *end = body + len;
        while (p < end) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            const char *e = amp ? amp : end;
            const char *eq = memchr(p, '=', (size_t)(e - p));
            if (eq) {
                size_t kl = (size_t)(eq - p);
                int n;
                if (kl == 7 && memcmp(p, "user_id", 7) == 0) {
                    *field = "user_id";
                    if ((n = form_decode(eq + 1, (size_t)(e - eq - 1), user, SK_USER_MAX + 1)) < 0)
                        return -EINVAL;
                    *user_len = (size_t)n;
                } else if (kl == 10 && memcmp(p, "request_id", 10) == 0) {
                    *field = "request_id";
                    if ((n = form_decode(eq + 1, (size_t)(e - eq - 1), req, SK_REQUEST_MAX + 1)) < 0)
                        return -EINVAL;
                    *req_len = (size_t)n;
                }
            }
            p = e + 1;
        }
    } else {
        const char *u = NULL, *r = NULL;
        size_t ul = 0, rl = 0;
        int q = quick_json(body, len, &u, &ul, &r, &rl);
        if (q < 0)
            return -EINVAL;
        if (q == 0) {
            json_error_t jerr;
            json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
            if (!root || !json_is_object(root)) {
                json_decref(root);
                return -EINVAL;
            }
            const char *key;
            json_t *val;
            json_object_foreach(root, key, val)
            {
                if (strcmp(key, "user_id") == 0) {
                    *field = "user_id";
                    if (!json_is_string(val) || json_string_length(val) > SK_USER_MAX) {
                        json_decref(root);
                        return -EINVAL;
                    }
                    *user_len = json_string_length(val);
                    memcpy(user, json_string_value(val), *user_len + 1);
                } else if (strcmp(key, "request_id") == 0) {
                    *field = "request_id";
                    if (!json_is_string(val) || json_string_length(val) > SK_REQUEST_MAX) {
                        json_decref(root);
                        return -EINVAL;
                    }
                    *req_len = json_string_length(val);
                    memcpy(req, json_string_value(val), *req_len + 1);
                } else {
                    *field = key[0] ? "body" : "body";
                    json_decref(root);
                    return -EINVAL;
                }
            }
            json_decref(root);
        } else {
            *field = "user_id";
            if (ul > SK_USER_MAX)
                return -EINVAL;
            *field = "request_id";
            if (rl > SK_REQUEST_MAX)
                return -EINVAL;
            if (u) /* "{}" has no user_id: memcpy from NULL is undefined even for 0 bytes */
                memcpy(user, u, ul);
            user[ul] = '\0';
            *user_len = ul;
            if (r)
                memcpy(req, r, rl);
            req[rl] = '\0';
            *req_len = rl;
        }
    }
    *field = "user_id";
    if (!sk_valid_user_id(user, *user_len))
        return -EINVAL;
    *field = "request_id";
    if (!sk_valid_request_id(req, *req_len))
        return -EINVAL;
    return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

/* Form fields when declared as such, unless the body is plainly a JSON object (curl -d
 * labels everything as a form). */
static bool is_form(const sk_http_request_t *req, const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i < len && body[i] == '{')
        return false;
    return req->content_type && req->content_type_len >= 33 &&
           sk_http_token_eq(req->content_type, 33, "application/x-www-form-urlencoded");
}

static const char unauthorized_body[] =
    "{\"error\":\"unauthorized\",\"message\":\"a valid admin token is required\"}\n";

static bool authorized(sk_api_worker_t *w, sk_http_exchange_t *x)
{
    sk_api_t *api = w->api;
    if (api->token_len == 0)
        return true;
    const sk_http_header_t *h = sk_http_find_header(x->req, "authorization");
    if (!h || h->value_len != 7 + api->token_len || !sk_http_token_eq(h->value, 7, "bearer "))
        goto deny;
    /* Compare in constant time so the token cannot be guessed byte by byte. */
    unsigned char diff = 0;
    for (size_t i = 0; i < api->token_len; i++)
        diff |= (unsigned char)(h->value[7 + i] ^ api->cfg.admin_token[i]);
    if (diff == 0)
        return true;
deny:
    sk_http_respond_ex(x, 401, "application/json", "WWW-Authenticate: Bearer\r\n", unauthorized_body,
                       sizeof(unauthorized_body) - 1);
    return false;
}

static sk_sale_t *find_sale_or_404(sk_api_worker_t *w, sk_http_exchange_t *x, const sk_str_t *id)
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
static sk_sale_t *lookup_stub(sk_api_worker_t *w, const sk_str_t *id)
{
    if (!sk_engine_lookups(w->api->cfg.engine) || !sk_valid_sale_id(id->p, id->len))
        return NULL;
    sk_sale_t *stub = sk_xcalloc(1, sizeof(*stub));
    memcpy(stub->id, id->p, id->len);
    stub->id_len = id->len;
    return stub;
}

static void count(sk_api_worker_t *w, const sk_sale_t *s, sk_buy_result_t r)
{
    sk_counter_add(&w->purchases[s->index][r], 1);
}

/* ---- purchase --------------------------------------------------------------------------- */

static const int buy_status[SK_BUY__COUNT] = {201, 200, 409, 409, 425, 410, 503, 429};

/* Writes the purchase answer body for op-like fields. */
static void buy_body(sk_buf_t *b, const sk_sale_t *s, sk_buy_result_t r, const sk_order_t *order, int64_t remaining,
                     int64_t starts_in)
{
    char id[SK_ORDER_ID_MAX + 1];
    switch (r) {
    case SK_BUY_CONFIRMED:
    case SK_BUY_DUPLICATE:
        sk_buf_puts(b, r == SK_BUY_CONFIRMED ? "{\"result\":\"confirmed\",\"order_id\":\""
                                             : "{\"result\":\"duplicate\",\"order_id\":\"");
        sk_buf_append(b, id, sk_order_id(id, s, order->seq));
        sk_buf_puts(b, "\",\"remaining\":");
        sk_buf_put_i64(b, remaining);
        sk_buf_puts(b, "}\n");
        return;
    case SK_BUY_LIMIT_REACHED:
        sk_buf_puts(b, "{\"error\":\"limit_reached\",\"message\":\"this buyer already holds the most units "
                       "allowed\",\"order_id\":\"");
        sk_buf_append(b, id, sk_order_id(id, s, order->seq));
        sk_buf_puts(b, "\"}\n");
        return;
    case SK_BUY_SOLD_OUT:
        sk_buf_puts(b, "{\"error\":\"sold_out\",\"message\":\"every unit has been sold\",\"remaining\":0}\n");
        return;
    case SK_BUY_NOT_STARTED:
        sk_buf_puts(b, "{\"error\":\"not_started\",\"message\":\"the sale has not started\",\"starts_in_ms\":");
        sk_buf_put_i64(b, starts_in);
        sk_buf_puts(b, "}\n");
        return;
    case SK_BUY_ENDED:
        sk_buf_puts(b, "{\"error\":\"ended\",\"message\":\"the sale has ended\"}\n");
        return;
    case SK_BUY_RATE_LIMITED:
        sk_buf_puts(b, "{\"error\":\"rate_limited\",\"message\":\"too many purchases in flight; nothing was "
                       "confirmed, retry with the same request_id\"}\n");
        return;
    default:
        sk_buf_puts(b, "{\"error\":\"unavailable\",\"message\":\"the order store is unavailable; nothing was "
                       "confirmed, retry with the same request_id\"}\n");
        return;
    }
}

static void purchase_done(sk_op_t *op)
{
    sk_api_worker_t *w = op->owner;
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    if (!op->sale && op->status == -ENOENT) {
        /* Looked up after a cache miss (lookup_stub) and not found. */
        static const char body[] = "{\"error\":\"unknown_sale\",\"message\":\"no sale with that id\"}\n";
        sk_http_deferred_respond(op->ctx, 404, "application/json", NULL, body, sizeof(body) - 1);
        sk_op_free(op);
        return;
    }
    if (op->sale)
        count(w, op->sale, op->result);
    buy_body(b, op->sale, op->result, &op->order, op->remaining, op->sale ? op->sale->starts_at - op->now_ms : 0);
    const char *extra =
        op->result == SK_BUY_UNAVAILABLE || op->result == SK_BUY_RATE_LIMITED ? "Retry-After: 1\r\n" : NULL;
    sk_http_deferred_respond(op->ctx, buy_status[op->result], "application/json", extra, b->data, b->len);
    sk_op_free(op);
}

static void h_purchase(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    sk_sale_t *s = sk_engine_find_sale(w->api->cfg.engine, params[0].p, params[0].len);
    sk_sale_t *stub = s ? NULL : lookup_stub(w, &params[0]);
    if (!s && !stub) {
        sk_http_respond_error(x, 404, "unknown_sale", "no sale with that id");
        return;
    }
    int64_t now = sk_now_ms();
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    /* The gate: clock and flag, no ledger. (A looked-up sale's window is checked by the
     * backend's store, which decides the purchase.) */
    if (!s)
        goto parse;
    if (now < s->starts_at) {
        count(w, s, SK_BUY_NOT_STARTED);
        buy_body(b, s, SK_BUY_NOT_STARTED, NULL, 0, s->starts_at - now);
        sk_http_respond(x, 425, "application/json", b->data, b->len);
        return;
    }
    if (now >= s->ends_at) {
        count(w, s, SK_BUY_ENDED);
        buy_body(b, s, SK_BUY_ENDED, NULL, 0, 0);
        sk_http_respond(x, 410, "application/json", b->data, b->len);
        return;
    }
parse:;
    char user[SK_USER_MAX + 1], req[SK_REQUEST_MAX + 1];
    size_t ul, rl;
    const char *field;
    if (sk_api_parse_purchase(x->body, x->body_len, is_form(x->req, x->body, x->body_len), user, &ul, req, &rl,
                              &field) < 0) {
        free(stub); /* a bare stub: no name, no holders */
        bad_field(x, field,
                  strcmp(field, "body") == 0
                      ? "the body must be a JSON object {\"user_id\":\"...\",\"request_id\":\"...\"} or form fields"
                  : strcmp(field, "user_id") == 0
                      ? "user_id is required: 1-64 printable ASCII characters, no spaces or quotes"
                      : "request_id must be 0-64 printable ASCII characters, no spaces or quotes");
        return;
    }
    if (s && sk_sale_final(s)) {
        sk_order_t order;
        sk_buy_result_t r = sk_engine_sold_out_answer(s, user, ul, req, rl, &order);
        count(w, s, r);
        buy_body(b, s, r, &order, 0, 0);
        sk_http_respond(x, buy_status[r], "application/json", b->data, b->len);
        return;
    }
    sk_op_t *op = sk_op_new(SK_OP_BUY);
    op->sale = s;
    op->new_sale = stub;
    op->now_ms = now;
    memcpy(op->user_id, user, ul + 1);
    op->user_len = (uint8_t)ul;
    memcpy(op->request_id, req, rl + 1);
    op->request_len = (uint8_t)rl;
    op->ctx = sk_http_defer(x);
    op->owner = w;
    op->done = purchase_done;
    sk_engine_submit(w->ew, op);
}

/* ---- sales ---------------------------------------------------------------------------------- */

static void h_sales_list(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    sk_api_worker_t *w = arg;
    sk_engine_t *e = w->api->cfg.engine;
    int64_t now = sk_now_ms();
    sk_buf_t b = {0};
    sk_buf_puts(&b, "{\"sales\":[");
    size_t n = sk_engine_sale_count(e);
    for (size_t i = 0; i < n; i++) {
        if (i)
            sk_buf_putc(&b, ',');
        sale_json(&b, sk_engine_sale_at(e, i), now);
    }
    sk_buf_puts(&b, "],\"server_time\":");
    sk_buf_put_i64(&b, now);
    sk_buf_putc(&b, '}');
    reply_json(x, 200, &b);
    sk_buf_free(&b);
}

static void find_done(sk_op_t *op)
{
    sk_buf_t b = {0};
    if (op->sale) {
        sale_json(&b, op->sale, sk_now_ms());
        sk_buf_putc(&b, '\n');
        sk_http_deferred_respond(op->ctx, 200, "application/json", NULL, b.data, b.len);
    } else if (op->status == -ENOENT) {
        sk_buf_puts(&b, "{\"error\":\"unknown_sale\",\"message\":\"no sale with that id\"}\n");
        sk_http_deferred_respond(op->ctx, 404, "application/json", NULL, b.data, b.len);
    } else {
        sk_buf_puts(&b, "{\"error\":\"unavailable\",\"message\":\"the sale store is unavailable; retry later\"}\n");
        sk_http_deferred_respond(op->ctx, op->status == -EAGAIN ? 429 : 503, "application/json", "Retry-After: 1\r\n",
                                 b.data, b.len);
    }
    sk_buf_free(&b);
    sk_op_free(op);
}

static void h_sale_get(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    sk_sale_t *s = sk_engine_find_sale(w->api->cfg.engine, params[0].p, params[0].len);
    if (!s) {
        sk_sale_t *stub = lookup_stub(w, &params[0]);
        if (!stub) {
            sk_http_respond_error(x, 404, "unknown_sale", "no sale with that id");
            return;
        }
        sk_op_t *op = sk_op_new(SK_OP_FIND_SALE);
        op->new_sale = stub;
        op->done = find_done;
        op->ctx = sk_http_defer(x);
        sk_engine_submit(w->ew, op);
        return;
    }
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    sale_json(b, s, sk_now_ms());
    reply_json(x, 200, b);
}

static void create_done(sk_op_t *op)
{
    sk_http_deferred_t *d = op->ctx;
    sk_buf_t b = {0};
    int status = 201;
    if (op->status == 0) {
        sale_json(&b, op->sale, sk_now_ms());
        sk_buf_putc(&b, '\n');
    } else if (op->status == -EEXIST) {
        status = 409;
        sk_buf_puts(&b, "{\"error\":\"exists\",\"message\":\"a sale with this id exists\",\"field\":\"id\"}\n");
    } else if (op->status == -ENOSPC) {
        status = 507;
        sk_buf_puts(&b, "{\"error\":\"too_many_sales\",\"message\":\"the engine holds at most 10000 sales\"}\n");
    } else {
        status = 503;
        sk_buf_puts(&b, "{\"error\":\"unavailable\",\"message\":\"the sale could not be stored; nothing was "
                        "created\"}\n");
    }
    sk_http_deferred_respond(d, status, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
    sk_op_free(op);
}

static int get_int(json_t *v, int64_t min, int64_t max, int64_t *out)
{
    if (!json_is_integer(v))
        return -EINVAL;
    json_int_t i = json_integer_value(v);
    if (i < min || i > max)
        return -ERANGE;
    *out = i;
    return 0;
}

static int get_time(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > 253402300799999LL)
            return -EINVAL;
        *out = i;
        return 0;
    }
    if (json_is_string(v))
        return sk_api_parse_time(json_string_value(v), json_string_length(v), out);
    return -EINVAL;
}

static void h_sale_create(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    sk_api_worker_t *w = arg;
    if (!authorized(w, x))
        return;
    json_error_t jerr;
    json_t *root = json_loadb(x->body, x->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        bad_field(x, "body", "the body must be a JSON object");
        return;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        static const char *const known[] = {"id", "name", "stock", "starts_at", "ends_at", "per_user_limit"};
        bool ok = false;
        for (size_t i = 0; i < SK_ARRAY_LEN(known); i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok) {
            char msg[160];
            snprintf(msg, sizeof(msg), "unknown field \"%.64s\"", key);
            bad_field(x, key, msg);
            json_decref(root);
            return;
        }
    }
    int64_t now = sk_now_ms();
    json_t *jid = json_object_get(root, "id"), *jname = json_object_get(root, "name");
    int64_t stock, starts = now, ends, limit = 1;
    const char *err_field = NULL, *err_msg = NULL;
    if (!json_is_string(jid) || !sk_valid_sale_id(json_string_value(jid), json_string_length(jid))) {
        err_field = "id";
        err_msg = "id is required: 1-64 characters of A-Z a-z 0-9 _ -";
    } else if (jname &&
               (!json_is_string(jname) || json_string_length(jname) == 0 || json_string_length(jname) > SK_NAME_MAX)) {
        err_field = "name";
        err_msg = "name must be a string of 1-200 bytes";
    } else if (get_int(json_object_get(root, "stock"), 1, SK_STOCK_MAX, &stock) < 0) {
        err_field = "stock";
        err_msg = "stock is required: an integer from 1 to 1000000000";
    } else if (json_object_get(root, "starts_at") && get_time(json_object_get(root, "starts_at"), &starts) < 0) {
        err_field = "starts_at";
        err_msg = "starts_at must be unix milliseconds or an RFC 3339 time";
    } else if (json_object_get(root, "ends_at") && get_time(json_object_get(root, "ends_at"), &ends) < 0) {
        err_field = "ends_at";
        err_msg = "ends_at must be unix milliseconds or an RFC 3339 time";
    } else if (json_object_get(root, "per_user_limit") &&
               get_int(json_object_get(root, "per_user_limit"), 1, SK_LIMIT_MAX, &limit) < 0) {
        err_field = "per_user_limit";
        err_msg = "per_user_limit must be an integer from 1 to 1000000";
    }
    if (!err_field && !json_object_get(root, "ends_at"))
        ends = starts + 3600 * 1000;
    if (!err_field && ends <= starts) {
        err_field = "ends_at";
        err_msg = "ends_at must be after starts_at";
    }
    if (err_field) {
        bad_field(x, err_field, err_msg);
        json_decref(root);
        return;
    }
    sk_sale_t *s = sk_xcalloc(1, sizeof(*s));
    s->id_len = json_string_length(jid);
    memcpy(s->id, json_string_value(jid), s->id_len + 1);
    s->name = jname ? sk_xstrndup(json_string_value(jname), json_string_length(jname)) : sk_xstrndup(s->id, s->id_len);
    s->stock = stock;
    s->starts_at = starts;
    s->ends_at = ends;
    s->per_user_limit = (int32_t)limit;
    s->created_at = now;
    json_decref(root);
    sk_op_t *op = sk_op_new(SK_OP_CREATE_SALE);
    op->new_sale = s;
    op->done = create_done;
    op->ctx = sk_http_defer(x);
    sk_engine_submit(w->ew, op);
}

/* ---- orders ------------------------------------------------------------------------------- */

static void orders_reply(sk_buf_t *b, const sk_sale_t *s, const char *user, size_t ul, const sk_order_t *o, size_t n)
{
    sk_buf_puts(b, "{\"sale_id\":");
    sk_buf_put_json_str(b, s->id, s->id_len);
    sk_buf_puts(b, ",\"user_id\":");
    sk_buf_put_json_str(b, user, ul);
    sk_buf_puts(b, ",\"orders\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            sk_buf_putc(b, ',');
        order_json(b, s, &o[i], false);
    }
    sk_buf_puts(b, "]}\n");
}

static bool refused(sk_op_t *op)
{
    if (op->status == 0)
        return false;
    if (op->status == -EAGAIN) {
        static const char body[] = "{\"error\":\"rate_limited\",\"message\":\"too many requests in flight, "
                                   "retry shortly\"}\n";
        sk_http_deferred_respond(op->ctx, 429, "application/json", "Retry-After: 1\r\n", body, sizeof(body) - 1);
    } else {
        /* A backend that reads orders from elsewhere (Redis) may fail to: say so, never
         * answer an empty list that could be taken for "you hold nothing". */
        static const char body[] = "{\"error\":\"unavailable\",\"message\":\"the order store is unavailable; "
                                   "retry later\"}\n";
        sk_http_deferred_respond(op->ctx, 503, "application/json", "Retry-After: 1\r\n", body, sizeof(body) - 1);
    }
    sk_op_free(op);
    return true;
}

static void user_orders_done(sk_op_t *op)
{
    if (refused(op))
        return;
    sk_buf_t b = {0};
    orders_reply(&b, op->sale, op->user_id, op->user_len, op->orders, op->n_orders);
    sk_http_deferred_respond(op->ctx, 200, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
    sk_op_free(op);
}

static void h_user_orders(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    sk_sale_t *s = find_sale_or_404(w, x, &params[0]);
    if (!s)
        return;
    char user[SK_USER_MAX + 1];
    int ul = form_decode(params[1].p, params[1].len, user, sizeof(user));
    if (ul < 0 || !sk_valid_user_id(user, (size_t)ul)) {
        bad_field(x, "user_id", "user_id must be 1-64 printable ASCII characters, no spaces or quotes");
        return;
    }
    if (sk_sale_final(s)) {
        sk_order_t *o;
        size_t n = sk_engine_sold_out_orders(s, user, (size_t)ul, &o);
        sk_buf_t b = {0};
        orders_reply(&b, s, user, (size_t)ul, o, n);
        sk_http_respond(x, 200, "application/json", b.data, b.len);
        sk_buf_free(&b);
        free(o);
        return;
    }
    sk_op_t *op = sk_op_new(SK_OP_ORDERS);
    op->sale = s;
    memcpy(op->user_id, user, (size_t)ul + 1);
    op->user_len = (uint8_t)ul;
    op->done = user_orders_done;
    op->ctx = sk_http_defer(x);
    sk_engine_submit(w->ew, op);
}

static void list_done(sk_op_t *op)
{
    if (refused(op))
        return;
    sk_buf_t b = {0};
    sk_buf_puts(&b, "{\"sale_id\":");
    sk_buf_put_json_str(&b, op->sale->id, op->sale->id_len);
    sk_buf_puts(&b, ",\"orders\":[");
    for (size_t i = 0; i < op->n_orders; i++) {
        if (i)
            sk_buf_putc(&b, ',');
        order_json(&b, op->sale, &op->orders[i], true);
    }
    sk_buf_puts(&b, "],\"next\":");
    if (op->list_more && op->n_orders) {
        char id[SK_ORDER_ID_MAX + 1];
        size_t n = sk_order_id(id, op->sale, op->orders[op->n_orders - 1].seq);
        sk_buf_put_json_str(&b, id, n);
    } else {
        sk_buf_puts(&b, "null");
    }
    sk_buf_puts(&b, "}\n");
    sk_http_deferred_respond(op->ctx, 200, "application/json", NULL, b.data, b.len);
    sk_buf_free(&b);
    sk_op_free(op);
}

/* Reads one query parameter (raw, not decoded). */
static bool query_param(const sk_http_request_t *req, const char *name, const char **v, size_t *vl)
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

static void h_list_orders(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    if (!authorized(w, x))
        return;
    sk_sale_t *s = find_sale_or_404(w, x, &params[0]);
    if (!s)
        return;
    const char *v;
    size_t vl;
    uint64_t after = 0;
    int64_t limit = 1000;
    if (query_param(x->req, "after", &v, &vl) && vl > 0 && sk_order_id_parse(s, v, vl, &after) < 0) {
        bad_field(x, "after", "after must be an order id of this sale");
        return;
    }
    if (query_param(x->req, "limit", &v, &vl) && sk_parse_i64(v, vl, 1, LIST_LIMIT_MAX, &limit) < 0) {
        bad_field(x, "limit", "limit must be an integer from 1 to 10000");
        return;
    }
    sk_op_t *op = sk_op_new(SK_OP_LIST);
    op->sale = s;
    op->list_after = after;
    op->list_limit = (size_t)limit;
    op->done = list_done;
    op->ctx = sk_http_defer(x);
    sk_engine_submit(w->ew, op);
}

/* ---- Server-Sent Events -------------------------------------------------------------------- */

/* Subscribers are kept per sale in an array of records; each record knows its
 * position, so removal when a client goes away is O(1) (the last record moves in). */
typedef struct sse_sub {
    sk_api_worker_t *w;
    sk_http_conn_t *conn;
    uint32_t sale;
    size_t pos;
} sse_sub_t;

static sse_sale_t *sse_slot(sk_api_worker_t *w, const sk_sale_t *s)
{
    if (!w->sse)
        w->sse = sk_xcalloc(SK_MAX_SALES, sizeof(*w->sse));
    return &w->sse[s->index];
}

static void sse_event(sk_buf_t *b, const sk_sale_t *s, int64_t now)
{
    sk_buf_puts(b, "event: sale\ndata: ");
    sale_json(b, s, now);
    sk_buf_puts(b, "\n\n");
}

static void sse_remove(sk_http_conn_t *c, void *arg)
{
    (void)c;
    sse_sub_t *sub = arg;
    sse_sale_t *ss = &sub->w->sse[sub->sale];
    size_t last = --ss->n;
    if (sub->pos != last) {
        ss->subs[sub->pos] = ss->subs[last];
        ss->subs[sub->pos]->pos = sub->pos;
    }
    atomic_store_explicit(&sub->w->sse_total, atomic_load_explicit(&sub->w->sse_total, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    free(sub);
}

static void h_events(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    sk_sale_t *s = find_sale_or_404(w, x, &params[0]);
    if (!s)
        return;
    sse_sale_t *ss = sse_slot(w, s);
    int64_t now = sk_now_ms();
    sse_sub_t *sub = sk_xmalloc(sizeof(*sub));
    sub->w = w;
    sub->sale = s->index;
    sub->pos = ss->n;
    sub->conn = sk_http_stream_start(x, "text/event-stream", "X-Accel-Buffering: no\r\n", sse_remove, sub);
    if (!sub->conn) {
        /* Answered without a stream: HEAD, or over the stream limits. */
        free(sub);
        return;
    }
    if (ss->n == 0) {
        /* The first subscriber gets the current state below; the tick sends changes. */
        ss->last_version = atomic_load_explicit(&s->version, memory_order_acquire);
        ss->last_state = (int)sk_sale_state(s, now);
    }
    if (ss->n == ss->cap) {
        ss->cap = ss->cap ? ss->cap * 2 : 16;
        ss->subs = sk_xrealloc(ss->subs, ss->cap * sizeof(*ss->subs));
    }
    ss->subs[ss->n++] = sub;
    atomic_store_explicit(&w->sse_total, atomic_load_explicit(&w->sse_total, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    sk_buf_t b = {0};
    sk_buf_puts(&b, "retry: 2000\n");
    sse_event(&b, s, now);
    sk_http_stream_write(sub->conn, b.data, b.len);
    sk_buf_free(&b);
}

/* ---- health, metrics, pages ------------------------------------------------------------------- */

static void h_healthz(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    (void)arg;
    static const char body[] = "{\"status\":\"ok\"}\n";
    sk_http_respond(x, 200, "application/json", body, sizeof(body) - 1);
}

static void h_metrics(sk_http_exchange_t *x, const sk_str_t *params, void *arg);

static void serve_asset(sk_http_exchange_t *x, const sk_asset_t *a)
{
    const sk_http_header_t *inm = sk_http_find_header(x->req, "if-none-match");
    if (inm && inm->value_len == strlen(a->etag) && memcmp(inm->value, a->etag, inm->value_len) == 0) {
        char extra[128];
        snprintf(extra, sizeof(extra), "ETag: %s\r\nCache-Control: no-cache\r\n", a->etag);
        sk_http_respond_ex(x, 304, NULL, extra, NULL, 0);
        return;
    }
    const sk_http_header_t *ae = sk_http_find_header(x->req, "accept-encoding");
    bool gz = a->gz && ae && memmem(ae->value, ae->value_len, "gzip", 4) != NULL;
    char extra[200];
    snprintf(extra, sizeof(extra), "ETag: %s\r\nCache-Control: no-cache\r\nVary: Accept-Encoding\r\n%s", a->etag,
             gz ? "Content-Encoding: gzip\r\n" : "");
    sk_http_respond_ex(x, 200, a->content_type, extra, gz ? a->gz : a->data, gz ? a->gz_len : a->len);
}

static void h_page(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    (void)arg;
    const sk_asset_t *a = sk_assets_find("/index.html", 11);
    if (!a) {
        sk_http_respond_error(x, 404, "not_found", "the buyer's page is not built in");
        return;
    }
    serve_asset(x, a);
}

static void h_admin(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    (void)arg;
    const sk_asset_t *a = sk_assets_find("/admin.html", 11);
    if (!a) {
        sk_http_respond_error(x, 404, "not_found", "the dashboard is not built in");
        return;
    }
    serve_asset(x, a);
}

static void h_asset(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)arg;
    (void)params;
    const sk_asset_t *a = sk_assets_find(x->req->path, x->req->path_len);
    if (!a) {
        sk_http_respond_error(x, 404, "not_found", "no such path");
        return;
    }
    serve_asset(x, a);
}

/* Route order matters only for the catch-all asset route, which comes last. */
static const sk_route_t routes[] = {
    {SK_HTTP_POST, "/api/v1/sales/{id}/purchase", h_purchase, "purchase"},
    {SK_HTTP_GET, "/healthz", h_healthz, "healthz"},
    {SK_HTTP_GET, "/api/v1/sales/{id}", h_sale_get, "sale"},
    {SK_HTTP_GET, "/api/v1/sales", h_sales_list, "sales"},
    {SK_HTTP_POST, "/api/v1/sales", h_sale_create, "create_sale"},
    {SK_HTTP_GET, "/api/v1/sales/{id}/orders/{user}", h_user_orders, "user_orders"},
    {SK_HTTP_GET, "/api/v1/sales/{id}/orders", h_list_orders, "orders"},
    {SK_HTTP_GET, "/api/v1/sales/{id}/events", h_events, "events"},
    {SK_HTTP_GET, "/metrics", h_metrics, "metrics"},
    {SK_HTTP_GET, "/", h_page, "page"},
    {SK_HTTP_GET, "/sale/{id}", h_page, "page"},
    {SK_HTTP_GET, "/admin", h_admin, "admin"},
    {SK_HTTP_GET, "/*", h_asset, "asset"},
};
#define N_ROUTES SK_ARRAY_LEN(routes)

void sk_api_handle(sk_http_exchange_t *x, void *arg)
{
    sk_str_t params[SK_ROUTE_MAX_PARAMS];
    size_t idx;
    char allow[64];
    sk_route_result_t r = sk_route_match(routes, N_ROUTES, x->req->method, x->req->path, x->req->path_len, &idx, params,
                                         allow, sizeof(allow));
    if (r == SK_ROUTE_FOUND) {
        x->route = (int)idx;
        routes[idx].fn(x, params, arg);
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

/* ---- metrics ---------------------------------------------------------------------------------- */

static void h_metrics(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    sk_api_worker_t *self = arg;
    sk_api_t *api = self->api;
    sk_engine_t *e = api->cfg.engine;
    size_t nw = atomic_load(&api->n_workers);
    sk_buf_t b = {0};

    sk_buf_puts(&b, "# HELP seckill_http_requests_total HTTP requests answered, by route and status.\n"
                    "# TYPE seckill_http_requests_total counter\n");
    for (int r = 0; r <= (int)N_ROUTES; r++) {
        for (int sl = 0; sl < SK_HTTP_STATUS_SLOTS; sl++) {
            uint64_t v = 0;
            for (size_t i = 0; i < nw; i++)
                v += sk_counter_get(&sk_http_server_stats(api->workers[i]->server)->requests[r][sl]);
            if (!v)
                continue;
            int st = sk_http_slot_status(sl);
            sk_buf_printf(&b, "seckill_http_requests_total{route=\"%s\",status=\"%s%d\"} %llu\n",
                          r == 0 ? "none" : routes[r - 1].name, st ? "" : "other", st ? st : 0, (unsigned long long)v);
        }
    }
    uint64_t open = 0, accepted = 0, refused = 0, timeouts = 0, perr = 0, lat[SK_HTTP_LAT_BUCKETS] = {0}, lsum = 0,
             lcount = 0;
    for (size_t i = 0; i < nw; i++) {
        const sk_http_stats_t *st = sk_http_server_stats(api->workers[i]->server);
        open += sk_http_server_conns(api->workers[i]->server);
        accepted += sk_counter_get(&st->conns_accepted);
        refused += sk_counter_get(&st->conns_refused);
        timeouts += sk_counter_get(&st->timeouts);
        perr += sk_counter_get(&st->parse_errors);
        for (int k = 0; k < SK_HTTP_LAT_BUCKETS; k++)
            lat[k] += sk_counter_get(&st->latency_bucket[k]);
        lsum += sk_counter_get(&st->latency_sum_ns);
        lcount += sk_counter_get(&st->latency_count);
    }
    sk_buf_printf(&b,
                  "# HELP seckill_http_connections_open Open client connections.\n"
                  "# TYPE seckill_http_connections_open gauge\nseckill_http_connections_open %llu\n"
                  "# TYPE seckill_http_connections_accepted_total counter\n"
                  "seckill_http_connections_accepted_total %llu\n"
                  "# TYPE seckill_http_connections_refused_total counter\n"
                  "seckill_http_connections_refused_total %llu\n"
                  "# TYPE seckill_http_timeouts_total counter\nseckill_http_timeouts_total %llu\n"
                  "# TYPE seckill_http_parse_errors_total counter\nseckill_http_parse_errors_total %llu\n",
                  (unsigned long long)open, (unsigned long long)accepted, (unsigned long long)refused,
                  (unsigned long long)timeouts, (unsigned long long)perr);
    sk_buf_puts(&b, "# HELP seckill_http_request_duration_seconds Time from reading a request to its answer.\n"
                    "# TYPE seckill_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int k = 0; k < SK_HTTP_LAT_BUCKETS; k++) {
        cum += lat[k];
        if (k == SK_HTTP_LAT_BUCKETS - 1)
            sk_buf_printf(&b, "seckill_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                          (unsigned long long)cum);
        else
            sk_buf_printf(&b, "seckill_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                          sk_http_latency_bounds[k], (unsigned long long)cum);
    }
    sk_buf_printf(&b,
                  "seckill_http_request_duration_seconds_sum %.9f\nseckill_http_request_duration_seconds_count %llu\n",
                  (double)lsum / 1e9, (unsigned long long)lcount);

    size_t ns = sk_engine_sale_count(e);
    int64_t now = sk_now_ms();
    sk_buf_puts(&b, "# HELP seckill_purchases_total Purchase answers, by sale and result.\n"
                    "# TYPE seckill_purchases_total counter\n");
    for (size_t si = 0; si < ns; si++) {
        sk_sale_t *s = sk_engine_sale_at(e, si);
        for (int r = 0; r < SK_BUY__COUNT; r++) {
            uint64_t v = 0;
            for (size_t i = 0; i < nw; i++)
                v += sk_counter_get(&api->workers[i]->purchases[si][r]);
            sk_buf_printf(&b, "seckill_purchases_total{sale=\"%s\",result=\"%s\"} %llu\n", s->id,
                          sk_buy_result_names[r], (unsigned long long)v);
        }
    }
    sk_buf_puts(&b, "# TYPE seckill_sale_sold gauge\n");
    for (size_t si = 0; si < ns; si++) {
        sk_sale_t *s = sk_engine_sale_at(e, si);
        sk_buf_printf(&b, "seckill_sale_sold{sale=\"%s\"} %lld\n", s->id, (long long)sk_sale_sold(s));
    }
    sk_buf_puts(&b, "# TYPE seckill_sale_remaining gauge\n");
    for (size_t si = 0; si < ns; si++) {
        sk_sale_t *s = sk_engine_sale_at(e, si);
        sk_buf_printf(&b, "seckill_sale_remaining{sale=\"%s\",state=\"%s\"} %lld\n", s->id,
                      sk_sale_state_name(sk_sale_state(s, now)), (long long)(s->stock - sk_sale_sold(s)));
    }
    const sk_engine_stats_t *es = sk_engine_stats(e);
    sk_buf_puts(&b, "# HELP seckill_ledger_batch_size Purchases decided per ledger batch.\n"
                    "# TYPE seckill_ledger_batch_size histogram\n");
    cum = 0;
    for (int k = 0; k < 12; k++) {
        cum += sk_counter_get(&es->batch_size_bucket[k]);
        if (k == 11)
            sk_buf_printf(&b, "seckill_ledger_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        else
            sk_buf_printf(&b, "seckill_ledger_batch_size_bucket{le=\"%d\"} %llu\n", 1 << k, (unsigned long long)cum);
    }
    sk_buf_printf(&b, "seckill_ledger_batch_size_sum %llu\nseckill_ledger_batch_size_count %llu\n",
                  (unsigned long long)sk_counter_get(&es->batch_ops), (unsigned long long)sk_counter_get(&es->batches));
    sk_buf_puts(&b, "# HELP seckill_ledger_commit_seconds Time to make one batch durable.\n"
                    "# TYPE seckill_ledger_commit_seconds histogram\n");
    cum = 0;
    for (int k = 0; k < 16; k++) {
        cum += sk_counter_get(&es->commit_bucket[k]);
        if (k == 15)
            sk_buf_printf(&b, "seckill_ledger_commit_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        else
            sk_buf_printf(&b, "seckill_ledger_commit_seconds_bucket{le=\"%g\"} %llu\n", sk_http_latency_bounds[k],
                          (unsigned long long)cum);
    }
    sk_buf_printf(&b,
                  "seckill_ledger_commit_seconds_sum %.9f\nseckill_ledger_commit_seconds_count %llu\n"
                  "# TYPE seckill_ledger_commit_errors_total counter\nseckill_ledger_commit_errors_total %llu\n"
                  "# TYPE seckill_ledger_inflight gauge\nseckill_ledger_inflight %lld\n",
                  (double)sk_counter_get(&es->commit_ns_sum) / 1e9, (unsigned long long)sk_counter_get(&es->batches),
                  (unsigned long long)sk_counter_get(&es->commit_errors),
                  (long long)atomic_load(&((sk_engine_stats_t *)es)->inflight));
    size_t sse = 0;
    for (size_t i = 0; i < nw; i++)
        sse += atomic_load_explicit(&api->workers[i]->sse_total, memory_order_relaxed);
    sk_buf_printf(&b, "# TYPE seckill_sse_subscribers gauge\nseckill_sse_subscribers %zu\n", sse);
    uint64_t s_refused = 0, s_expired = 0, s_dropped = 0;
    for (size_t i = 0; i < nw; i++) {
        const sk_http_stats_t *hs = sk_http_server_stats(api->workers[i]->server);
        s_refused += sk_counter_get(&hs->streams_refused);
        s_expired += sk_counter_get(&hs->streams_expired);
        s_dropped += sk_counter_get(&hs->streams_dropped);
    }
    sk_buf_printf(&b,
                  "# HELP seckill_sse_streams_total Event streams refused (too many in all or from one address), "
                  "ended by their lifetime, or dropped (client too far behind, or the backlog bound).\n"
                  "# TYPE seckill_sse_streams_total counter\n"
                  "seckill_sse_streams_total{outcome=\"refused\"} %llu\n"
                  "seckill_sse_streams_total{outcome=\"expired\"} %llu\n"
                  "seckill_sse_streams_total{outcome=\"dropped\"} %llu\n",
                  (unsigned long long)s_refused, (unsigned long long)s_expired, (unsigned long long)s_dropped);
    sk_http_respond(x, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    sk_buf_free(&b);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static void sse_tick(sk_loop_t *loop, sk_timer_t *t)
{
    sk_api_worker_t *w = SK_CONTAINER_OF(t, sk_api_worker_t, sse_timer);
    if (w->sse_total > 0) {
        sk_engine_t *e = w->api->cfg.engine;
        int64_t now = sk_now_ms();
        bool ping = sk_loop_now(loop) - w->last_ping_ms >= SSE_PING_MS;
        size_t ns = sk_engine_sale_count(e);
        sk_buf_t b = {0};
        for (size_t si = 0; si < ns && w->sse; si++) {
            sse_sale_t *ss = &w->sse[si];
            if (ss->n == 0)
                continue;
            sk_sale_t *s = sk_engine_sale_at(e, si);
            uint64_t v = atomic_load_explicit(&s->version, memory_order_acquire);
            int st = (int)sk_sale_state(s, now);
            b.len = 0;
            if (v != ss->last_version || st != ss->last_state) {
                ss->last_version = v;
                ss->last_state = st;
                sse_event(&b, s, now); /* encoded once, written to every subscriber */
            } else if (ping) {
                sk_buf_puts(&b, ": ping\n\n");
            } else {
                continue;
            }
            /* Writing may close slow subscribers, which removes them from the array:
             * walk it from the end so removals do not skip anyone. */
            for (size_t k = ss->n; k-- > 0;)
                if (k < ss->n)
                    sk_http_stream_write(ss->subs[k]->conn, b.data, b.len);
        }
        sk_buf_free(&b);
        if (ping)
            w->last_ping_ms = sk_loop_now(loop);
    }
    sk_timer_start(loop, t, SSE_TICK_MS, sse_tick);
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
    w->last_ping_ms = sk_loop_now(loop);
    sk_timer_start(loop, &w->sse_timer, SSE_TICK_MS, sse_tick);
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
    sk_timer_stop(w->loop, &w->sse_timer);
    sk_engine_detach(w->ew);
    if (w->sse) {
        for (size_t i = 0; i < SK_MAX_SALES; i++)
            free(w->sse[i].subs);
        free(w->sse);
    }
    free(w->purchases);
    sk_buf_free(&w->scratch);
    free(w);
}
