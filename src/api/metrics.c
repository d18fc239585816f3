/* GET /metrics (Prometheus text format) and GET /healthz.
 *
 * /metrics sums every worker's counters at the moment of the request (relaxed reads:
 * a scrape may see one worker a little later than another, never a torn value). It is
 * written in parts — HTTP, purchases and sales, the ledger, event streams — each a
 * function of its own. */
#include <stdio.h>

#include "api/internal.h"

void sk_api_healthz(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    sk_api_worker_t *w = arg;
    if (sk_engine_store_unsure(w->api->cfg.engine)) {
        /* The node confirms nothing until a restart: a balancer's health check takes
         * it out of the pool. */
        static const char failed[] = "{\"status\":\"store_failed\",\"error\":\"store_failed\",\"message\":\"the store "
                                     "failed and what it holds is not known: this node answers 503 until it is "
                                     "restarted\"}\n";
        sk_http_respond(x, 503, "application/json", failed, sizeof(failed) - 1);
        return;
    }
    static const char body[] = "{\"status\":\"ok\"}\n";
    sk_http_respond(x, 200, "application/json", body, sizeof(body) - 1);
}

/* Writes the _bucket lines of a histogram from per-bucket counts, made cumulative here.
 * Bucket k's upper bound is bounds[k] (or 2^k when bounds is NULL); the last is +Inf. */
static void buckets(sk_buf_t *b, const char *name, const uint64_t *counts, int n, const double *bounds)
{
    uint64_t cum = 0;
    for (int k = 0; k < n; k++) {
        cum += counts[k];
        if (k == n - 1)
            sk_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
        else if (bounds)
            sk_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[k], (unsigned long long)cum);
        else
            sk_buf_printf(b, "%s_bucket{le=\"%d\"} %llu\n", name, 1 << k, (unsigned long long)cum);
    }
}

static void http_requests(sk_buf_t *b, sk_api_t *api, size_t nw)
{
    sk_buf_puts(b, "# HELP seckill_http_requests_total HTTP requests answered, by route and status.\n"
                   "# TYPE seckill_http_requests_total counter\n");
    for (int r = 0; r <= (int)sk_api_routes_len; r++) {
        for (int sl = 0; sl < SK_HTTP_STATUS_SLOTS; sl++) {
            uint64_t v = 0;
            for (size_t i = 0; i < nw; i++)
                v += sk_counter_get(&sk_http_server_stats(api->workers[i]->server)->requests[r][sl]);
            if (!v)
                continue;
            int st = sk_http_slot_status(sl);
            sk_buf_printf(b, "seckill_http_requests_total{route=\"%s\",status=\"%s%d\"} %llu\n",
                          r == 0 ? "none" : sk_api_routes[r - 1].name, st ? "" : "other", st ? st : 0,
                          (unsigned long long)v);
        }
    }
}

/* Which loop backend the workers run on (--io), as an info-style gauge. */
static void io_backend(sk_buf_t *b, sk_api_t *api, size_t nw)
{
    size_t uring = 0;
    for (size_t i = 0; i < nw; i++)
        uring += sk_loop_io(api->workers[i]->loop) == SK_LOOP_IO_URING;
    sk_buf_printf(b,
                  "# HELP seckill_io_workers Worker threads by the loop backend they run on (--io).\n"
                  "# TYPE seckill_io_workers gauge\n"
                  "seckill_io_workers{backend=\"epoll\"} %zu\nseckill_io_workers{backend=\"uring\"} %zu\n",
                  nw - uring, uring);
}

static void http_connections(sk_buf_t *b, sk_api_t *api, size_t nw)
{
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
    sk_buf_printf(b,
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
    sk_buf_puts(b, "# HELP seckill_http_request_duration_seconds Time from reading a request to its answer.\n"
                   "# TYPE seckill_http_request_duration_seconds histogram\n");
    buckets(b, "seckill_http_request_duration_seconds", lat, SK_HTTP_LAT_BUCKETS, sk_http_latency_bounds);
    sk_buf_printf(b,
                  "seckill_http_request_duration_seconds_sum %.9f\nseckill_http_request_duration_seconds_count %llu\n",
                  (double)lsum / 1e9, (unsigned long long)lcount);
}

static void sales(sk_buf_t *b, sk_api_t *api, size_t nw)
{
    sk_engine_t *e = api->cfg.engine;
    /* The sales the workers see, taken once so that every family lists the same ones (a
     * sale whose creation is not durable yet is not shown: sk_engine_sale_at). */
    size_t n = sk_engine_sale_count(e), ns = 0;
    sk_sale_t **list = sk_xmalloc((n ? n : 1) * sizeof(*list));
    for (size_t si = 0; si < n; si++)
        if ((list[ns] = sk_engine_sale_at(e, si)) != NULL)
            ns++;
    int64_t now = sk_engine_store_now(e);
    sk_buf_puts(b, "# HELP seckill_purchases_total Purchase answers, by sale and result.\n"
                   "# TYPE seckill_purchases_total counter\n");
    for (size_t k = 0; k < ns; k++) {
        sk_sale_t *s = list[k];
        for (int r = 0; r < SK_BUY__COUNT; r++) {
            uint64_t v = 0;
            for (size_t i = 0; i < nw; i++)
                v += sk_counter_get(&api->workers[i]->purchases[s->index][r]);
            sk_buf_printf(b, "seckill_purchases_total{sale=\"%s\",result=\"%s\"} %llu\n", s->id, sk_buy_result_names[r],
                          (unsigned long long)v);
        }
    }
    /* The waiting rooms (queued sales only), as their writer last made them durable. */
    sk_buf_puts(b, "# HELP seckill_queue_length People waiting in a sale's queue (not admitted yet).\n"
                   "# TYPE seckill_queue_length gauge\n"
                   "# HELP seckill_queue_admitted_total Admissions a sale's queue issued.\n"
                   "# TYPE seckill_queue_admitted_total counter\n"
                   "# HELP seckill_queue_joins_total Places a sale's queue handed out (re-joins included).\n"
                   "# TYPE seckill_queue_joins_total counter\n"
                   "# HELP seckill_queue_admit_per_second A sale's admission rate as set.\n"
                   "# TYPE seckill_queue_admit_per_second gauge\n"
                   "# HELP seckill_queue_wait_seconds Estimated wait at the back of a sale's queue.\n"
                   "# TYPE seckill_queue_wait_seconds gauge\n");
    for (size_t k = 0; k < ns; k++) {
        sk_sale_t *s = list[k];
        const sk_sale_params_t *p = sk_sale_params(s);
        if (p->queue == SK_QUEUE_OFF)
            continue;
        uint64_t len = atomic_load_explicit(&s->q_len, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&s->q_head, memory_order_acquire);
        uint64_t waiting = len > head ? len - head : 0;
        int rate = p->admit_per_second > 0 ? p->admit_per_second : 1;
        sk_buf_printf(b,
                      "seckill_queue_length{sale=\"%s\"} %llu\nseckill_queue_admitted_total{sale=\"%s\"} %llu\n"
                      "seckill_queue_joins_total{sale=\"%s\"} %llu\nseckill_queue_admit_per_second{sale=\"%s\"} %d\n"
                      "seckill_queue_wait_seconds{sale=\"%s\"} %.3f\n",
                      s->id, (unsigned long long)waiting, s->id, (unsigned long long)head, s->id,
                      (unsigned long long)len, s->id, rate, s->id, (double)waiting / rate);
    }
    size_t qsubs = 0;
    for (size_t i = 0; i < nw; i++)
        qsubs += atomic_load_explicit(&api->workers[i]->qsubs_total, memory_order_relaxed);
    sk_buf_printf(b,
                  "# HELP seckill_queue_subscribers Open queue event streams (live places).\n"
                  "# TYPE seckill_queue_subscribers gauge\nseckill_queue_subscribers %zu\n",
                  qsubs);
    /* Each sale's counts in units, from one snapshot: remaining + held + sold == stock. */
    sk_buf_puts(b, "# HELP seckill_sale_units Units of a sale: sold (confirmed), held (reserved) and remaining.\n"
                   "# TYPE seckill_sale_units gauge\n");
    for (size_t k = 0; k < ns; k++) {
        sk_sale_t *s = list[k];
        sk_sale_counts_t c;
        sk_sale_counts(s, &c);
        sk_buf_printf(b,
                      "seckill_sale_units{sale=\"%s\",kind=\"sold\"} %lld\n"
                      "seckill_sale_units{sale=\"%s\",kind=\"held\"} %lld\n"
                      "seckill_sale_units{sale=\"%s\",kind=\"remaining\"} %lld\n",
                      s->id, (long long)c.sold, s->id, (long long)c.held, s->id, (long long)sk_counts_remaining(&c));
    }
    /* Flows, for rates: what moved each order, from the sale's whole history. */
    sk_buf_puts(b, "# HELP seckill_sale_orders_total Orders of a sale by the state they entered: reserved (a new "
                   "reservation), confirmed (paid, or bought without a payment window), cancelled, expired, "
                   "refunded.\n# TYPE seckill_sale_orders_total counter\n");
    for (size_t k = 0; k < ns; k++) {
        sk_sale_t *s = list[k];
        for (int st = 0; st < SK_ORDER__COUNT; st++)
            sk_buf_printf(b, "seckill_sale_orders_total{sale=\"%s\",state=\"%s\"} %llu\n", s->id,
                          sk_order_state_name((sk_order_state_t)st),
                          (unsigned long long)sk_counter_get(&s->entered[st]));
    }
    sk_buf_puts(b, "# TYPE seckill_sale_sold gauge\n");
    for (size_t k = 0; k < ns; k++) {
        sk_sale_t *s = list[k];
        sk_buf_printf(b, "seckill_sale_sold{sale=\"%s\"} %lld\n", s->id, (long long)sk_sale_sold(s));
    }
    sk_buf_puts(b, "# TYPE seckill_sale_remaining gauge\n");
    for (size_t k = 0; k < ns; k++) {
        sk_sale_t *s = list[k];
        sk_buf_printf(b, "seckill_sale_remaining{sale=\"%s\",state=\"%s\"} %lld\n", s->id,
                      sk_sale_state_name(sk_sale_state(s, now)), (long long)sk_sale_remaining(s));
    }
    free(list);
}

static void ledger(sk_buf_t *b, sk_engine_t *e)
{
    const sk_engine_stats_t *es = sk_engine_stats(e);
    uint64_t batch[12], commit[16];
    for (int k = 0; k < 12; k++)
        batch[k] = sk_counter_get(&es->batch_size_bucket[k]);
    for (int k = 0; k < 16; k++)
        commit[k] = sk_counter_get(&es->commit_bucket[k]);
    sk_buf_puts(b, "# HELP seckill_ledger_batch_size Purchases decided per ledger batch.\n"
                   "# TYPE seckill_ledger_batch_size histogram\n");
    buckets(b, "seckill_ledger_batch_size", batch, 12, NULL);
    sk_buf_printf(b, "seckill_ledger_batch_size_sum %llu\nseckill_ledger_batch_size_count %llu\n",
                  (unsigned long long)sk_counter_get(&es->batch_ops), (unsigned long long)sk_counter_get(&es->batches));
    sk_buf_puts(b, "# HELP seckill_ledger_commit_seconds Time to make one batch durable.\n"
                   "# TYPE seckill_ledger_commit_seconds histogram\n");
    /* The commit histogram has the bounds of the HTTP latency histogram. */
    buckets(b, "seckill_ledger_commit_seconds", commit, 16, sk_http_latency_bounds);
    sk_buf_printf(b,
                  "seckill_ledger_commit_seconds_sum %.9f\nseckill_ledger_commit_seconds_count %llu\n"
                  "# TYPE seckill_ledger_commit_errors_total counter\nseckill_ledger_commit_errors_total %llu\n"
                  "# HELP seckill_ledger_replica_timeouts_total Script calls answered 503 because fewer replicas "
                  "than --replicas-ack had them in time.\n"
                  "# TYPE seckill_ledger_replica_timeouts_total counter\nseckill_ledger_replica_timeouts_total %llu\n"
                  "# TYPE seckill_ledger_inflight gauge\nseckill_ledger_inflight %lld\n",
                  (double)sk_counter_get(&es->commit_ns_sum) / 1e9, (unsigned long long)sk_counter_get(&es->batches),
                  (unsigned long long)sk_counter_get(&es->commit_errors),
                  (unsigned long long)sk_counter_get(&es->replica_timeouts),
                  (long long)atomic_load(&((sk_engine_stats_t *)es)->inflight));
    /* What reached the ledger: the worker answers the rest itself (the gate). */
    sk_buf_puts(b, "# HELP seckill_ledger_purchases_total Purchases the ledger decided, by result.\n"
                   "# TYPE seckill_ledger_purchases_total counter\n");
    for (int r = 0; r < SK_BUY__COUNT; r++)
        sk_buf_printf(b, "seckill_ledger_purchases_total{result=\"%s\"} %llu\n", sk_buy_result_names[r],
                      (unsigned long long)sk_counter_get(&es->decided[r]));
    sk_buf_puts(b, "# HELP seckill_order_transitions_total Orders moved by a payment, cancel, expiry or refund, by "
                   "the state they moved into.\n# TYPE seckill_order_transitions_total counter\n");
    for (int st = SK_ORDER_CONFIRMED; st < SK_ORDER__COUNT; st++)
        sk_buf_printf(b, "seckill_order_transitions_total{to=\"%s\"} %llu\n", sk_order_state_name((sk_order_state_t)st),
                      (unsigned long long)sk_counter_get(&es->transitions[st]));
}

static void events(sk_buf_t *b, sk_api_t *api, size_t nw)
{
    size_t sse = 0;
    for (size_t i = 0; i < nw; i++)
        sse += atomic_load_explicit(&api->workers[i]->sse_total, memory_order_relaxed);
    sk_buf_printf(b, "# TYPE seckill_sse_subscribers gauge\nseckill_sse_subscribers %zu\n", sse);
    uint64_t s_refused = 0, s_expired = 0, s_dropped = 0;
    for (size_t i = 0; i < nw; i++) {
        const sk_http_stats_t *hs = sk_http_server_stats(api->workers[i]->server);
        s_refused += sk_counter_get(&hs->streams_refused);
        s_expired += sk_counter_get(&hs->streams_expired);
        s_dropped += sk_counter_get(&hs->streams_dropped);
    }
    sk_buf_printf(b,
                  "# HELP seckill_sse_streams_total Event streams refused (too many in all or from one address), "
                  "ended by their lifetime, or dropped (client too far behind, or the backlog bound).\n"
                  "# TYPE seckill_sse_streams_total counter\n"
                  "seckill_sse_streams_total{outcome=\"refused\"} %llu\n"
                  "seckill_sse_streams_total{outcome=\"expired\"} %llu\n"
                  "seckill_sse_streams_total{outcome=\"dropped\"} %llu\n",
                  (unsigned long long)s_refused, (unsigned long long)s_expired, (unsigned long long)s_dropped);
}

static const char *const refusal_names[SK_API_REFUSED__COUNT][2] = {
    [SK_API_LIMITED_IP] = {"rate_limited", "ip"},
    [SK_API_LIMITED_USER] = {"rate_limited", "user"},
    [SK_API_DENIED_IP] = {"denied", "ip"},
    [SK_API_DENIED_USER] = {"denied", "user"},
    [SK_API_UNAUTHENTICATED] = {"unauthenticated", "user"},
    [SK_API_FORBIDDEN] = {"forbidden", "user"},
    [SK_API_CROSS_SITE] = {"cross_site", "admin"},
    [SK_API_NOT_JSON] = {"not_json", "admin"},
};
static const char *const token_kinds[SK_API_TOK__COUNT] = {"admin", "metrics", "user", "admission", "pow"};
static const char *const token_whys[SK_API_WHY__COUNT] = {"malformed", "bad_mac", "expired", "too_few_bits", "wrong"};

/* Which reasons each kind of token can be refused for (the others are left out). */
static bool token_reason_applies(int kind, int why)
{
    if (kind == SK_API_TOK_ADMIN || kind == SK_API_TOK_METRICS)
        return why == SK_API_WHY_WRONG;
    if (kind == SK_API_TOK_POW)
        return why != SK_API_WHY_WRONG;
    return why != SK_API_WHY_WRONG && why != SK_API_WHY_TOO_FEW_BITS;
}

static void front_door(sk_buf_t *b, sk_api_t *api, size_t nw)
{
    sk_buf_puts(b, "# HELP seckill_front_refused_total Requests the front door refused, by answer and by what "
                   "it was keyed on.\n# TYPE seckill_front_refused_total counter\n");
    for (int r = 0; r < SK_API_REFUSED__COUNT; r++) {
        uint64_t v = 0;
        for (size_t i = 0; i < nw; i++)
            v += sk_counter_get(&api->workers[i]->refused[r]);
        sk_buf_printf(b, "seckill_front_refused_total{reason=\"%s\",key=\"%s\"} %llu\n", refusal_names[r][0],
                      refusal_names[r][1], (unsigned long long)v);
    }
    sk_buf_puts(b, "# HELP seckill_front_tokens_rejected_total Tokens refused, by kind and reason.\n"
                   "# TYPE seckill_front_tokens_rejected_total counter\n");
    for (int k = 0; k < SK_API_TOK__COUNT; k++)
        for (int y = 0; y < SK_API_WHY__COUNT; y++) {
            if (!token_reason_applies(k, y))
                continue;
            uint64_t v = 0;
            for (size_t i = 0; i < nw; i++)
                v += sk_counter_get(&api->workers[i]->tokens[k][y]);
            sk_buf_printf(b, "seckill_front_tokens_rejected_total{token=\"%s\",reason=\"%s\"} %llu\n", token_kinds[k],
                          token_whys[y], (unsigned long long)v);
        }
    size_t ips = 0, users = 0;
    sk_api_deny_stats(api, &ips, &users);
    sk_buf_printf(b,
                  "# HELP seckill_front_deny_entries Entries of the deny list in force.\n"
                  "# TYPE seckill_front_deny_entries gauge\n"
                  "seckill_front_deny_entries{kind=\"ip\"} %zu\nseckill_front_deny_entries{kind=\"user\"} %zu\n",
                  ips, users);
}

void sk_api_metrics(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    sk_api_worker_t *self = arg;
    sk_api_t *api = self->api;
    if (!sk_api_metrics_authorized(self, x))
        return;
    size_t nw = atomic_load(&api->n_workers);
    sk_buf_t b = {0};
    http_requests(&b, api, nw);
    http_connections(&b, api, nw);
    io_backend(&b, api, nw);
    sales(&b, api, nw);
    ledger(&b, api->cfg.engine);
    events(&b, api, nw);
    front_door(&b, api, nw);
    sk_http_respond(x, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    sk_buf_free(&b);
}
