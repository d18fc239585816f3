/* GET /api/v1/sales/{id}/events: Server-Sent Events with the sale's state and counts,
 * pushed at most every SSE_TICK_MS when they change, and a ping now and then. */
#include <stdlib.h>

#include "api/internal.h"

#define SSE_TICK_MS 100 /* at most 10 updates a second per sale */
#define SSE_PING_MS 15000

/* Subscribers are kept per sale in an array of records; each record knows its
 * position, so removal when a client goes away is O(1) (the last record moves in). */
typedef struct sse_sub {
    sk_api_worker_t *w;
    sk_http_conn_t *conn;
    uint32_t sale;
    size_t pos;
} sse_sub_t;

typedef struct sse_sale {
    sse_sub_t **subs;
    size_t n, cap;
    uint64_t last_version;
    int last_state;
} sse_sale_t;

static sse_sale_t *sse_slot(sk_api_worker_t *w, const sk_sale_t *s)
{
    if (!w->sse)
        w->sse = sk_xcalloc(SK_MAX_SALES, sizeof(*w->sse));
    return &w->sse[s->index];
}

static void sse_event(sk_buf_t *b, const sk_sale_t *s, int64_t now)
{
    sk_buf_puts(b, "event: sale\ndata: ");
    sk_api_sale_json(b, s, now);
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

void sk_api_events(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    sk_sale_t *s = sk_api_find_sale_or_404(w, x, &params[0]);
    if (!s)
        return;
    sse_sale_t *ss = sse_slot(w, s);
    int64_t now = sk_api_store_now(w);
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

static void sse_tick(sk_loop_t *loop, sk_timer_t *t)
{
    sk_api_worker_t *w = SK_CONTAINER_OF(t, sk_api_worker_t, sse_timer);
    if (w->sse_total > 0) {
        sk_engine_t *e = w->api->cfg.engine;
        int64_t now = sk_api_store_now(w);
        bool ping = sk_loop_now(loop) - w->last_ping_ms >= SSE_PING_MS;
        size_t ns = sk_engine_sale_count(e);
        sk_buf_t b = {0};
        for (size_t si = 0; si < ns && w->sse; si++) {
            sse_sale_t *ss = &w->sse[si];
            if (ss->n == 0)
                continue;
            sk_sale_t *s = sk_engine_sale_at(e, si);
            if (!s)
                continue;
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
    sk_api_queue_tick(w, sk_api_store_now(w));
    sk_timer_start(loop, t, SSE_TICK_MS, sse_tick);
}

void sk_api_events_init(sk_api_worker_t *w)
{
    w->last_ping_ms = sk_loop_now(w->loop);
    sk_timer_start(w->loop, &w->sse_timer, SSE_TICK_MS, sse_tick);
}

void sk_api_events_free(sk_api_worker_t *w)
{
    sk_timer_stop(w->loop, &w->sse_timer);
    sk_api_queue_events_free(w);
    if (w->sse) {
        for (size_t i = 0; i < SK_MAX_SALES; i++)
            free(w->sse[i].subs);
        free(w->sse);
    }
}
