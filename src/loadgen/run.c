/* The run (run.h): the flood's client threads set up and started, watched from the
 * calling thread (a progress line, answers per second, the sale read every --poll ms),
 * and their results merged. */
#include "loadgen/run.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "loadgen/crowd.h"
#include "loadgen/fetch.h"

static void build_prefixes(run_t *run)
{
    const sk_loadgen_config_t *cfg = run->cfg;
    run->prefixes = sk_xcalloc(cfg->ntargets, sizeof(char *));
    run->prefix_lens = sk_xcalloc(cfg->ntargets, sizeof(size_t));
    char *seg = run->sale ? sk_loadgen_path_segment(run->sale->id) : NULL;
    for (size_t i = 0; i < cfg->ntargets; i++) {
        const sk_loadgen_target_t *t = &cfg->targets[i];
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

static void progress(const run_t *run, const sk_loadgen_results_t *res, bool tty, double t, double rate,
                     uint64_t answers, bool final)
{
    const sk_loadgen_config_t *cfg = run->cfg;
    uint64_t c[SK_OUT_COUNT];
    for (int o = 0; o < SK_OUT_COUNT; o++)
        c[o] = sum_counter(run, offsetof(worker_t, counts) + (size_t)o * sizeof(sk_counter_t));
    char line[512];
    int n;
    if (cfg->get_path) {
        n = snprintf(line, sizeof(line), "[%6.1fs] %9.0f req/s  answers %llu  ok %llu  errors %llu", t, rate,
                     (unsigned long long)answers, (unsigned long long)c[SK_OUT_OK],
                     (unsigned long long)(c[SK_OUT_HTTP_ERROR] + c[SK_OUT_NET_ERROR]));
    } else if (cfg->lifecycle) {
        /* Reservations come and go: the sale's own counts, as last read. */
        const sk_loadgen_polls_t *ps = &res->polls;
        n = snprintf(line, sizeof(line),
                     "[%6.1fs] %9.0f req/s  answers %llu  reserved %llu  sold %lld  held %lld  remaining %lld  "
                     "sold_out %llu  errors %llu",
                     t, rate, (unsigned long long)answers, (unsigned long long)c[SK_OUT_RESERVED], (long long)ps->sold,
                     (long long)ps->held, (long long)ps->remaining, (unsigned long long)c[SK_OUT_SOLD_OUT],
                     (unsigned long long)(c[SK_OUT_UNAVAILABLE] + c[SK_OUT_HTTP_ERROR] + c[SK_OUT_NET_ERROR] +
                                          c[SK_OUT_RATE_LIMITED]));
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

void sk_loadgen_phase(sk_loadgen_phases_t *p, const char *name, uint64_t *since_ns, uint64_t until_ns)
{
    uint64_t until = until_ns ? until_ns : sk_mono_ns();
    if (p->n < SK_LOADGEN_PHASES_MAX)
        p->at[p->n++] = (sk_loadgen_phase_t){name, until > *since_ns ? (double)(until - *since_ns) / 1e9 : 0};
    *since_ns = SK_MAX(until, *since_ns);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* The fire instant: the sale's opening (on our clock), minus --early; now when the sale
 * is open already or there is none. */
static uint64_t fire_instant(const run_t *run)
{
    uint64_t now_ns = sk_mono_ns();
    if (run->sale && run->sale->starts_at > 0) {
        /* +1: the server's clock is read in whole milliseconds. */
        int64_t local_start = run->sale->starts_at - run->sale->clock_offset_ms - (int64_t)run->cfg->early_ms + 1;
        int64_t wait_ms = local_start - sk_now_ms();
        if (wait_ms > 0)
            return now_ns + (uint64_t)wait_ms * 1000000u;
    }
    return now_ns;
}

/* Worker i's share: of the requests (`total`, 0 = until --duration), of the users, and
 * of the connections. */
static void worker_init(run_t *run, uint32_t i, uint64_t total)
{
    const sk_loadgen_config_t *cfg = run->cfg;
    worker_t *w = &run->workers[i];
    w->index = (int)i;
    w->run = run;
    w->cfg = cfg;
    atomic_init(&w->last_remaining, INT64_MAX);
    atomic_init(&w->done, 0);
    for (int o = 0; o < SK_OUT_COUNT; o++)
        sk_hist_init(&w->hist[o]);
    sk_hist_init(&w->life.hist_pay);
    sk_hist_init(&w->life.hist_cancel);
    if (total) {
        w->quota = total / run->nworkers + (i < total % run->nworkers ? 1 : 0);
        if (w->quota == 0) {
            w->gen_done = true;
            w->quota = 1; /* never reached: gen_done already */
        }
    }
    if (cfg->rate > 0)
        w->interval_ns = 1e9 * run->nworkers / cfg->rate;
    w->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)i * 0xbf58476d1ce4e5b9ull) ^ sk_mono_ns();
    if (!w->rng)
        w->rng = 1;
    if (!cfg->get_path)
        sk_loadgen_users_init(&w->users, cfg->users, run->nworkers, i, sk_loadgen_xorshift(&w->rng));
    /* Connections are dealt round-robin to workers and, within the total, to targets. */
    for (uint32_t c = i; c < cfg->connections; c += run->nworkers)
        w->nconns++;
    w->conns = sk_xcalloc(w->nconns, sizeof(wconn_t));
    uint32_t k = 0;
    for (uint32_t c = i; c < cfg->connections; c += run->nworkers, k++) {
        wconn_t *wc = &w->conns[k];
        size_t ti = c % cfg->ntargets;
        wc->w = w;
        wc->conn.target = &cfg->targets[ti];
        wc->prefix = run->prefixes[ti];
        wc->prefix_len = run->prefix_lens[ti];
    }
}

/* Answers per second since the fire instant: in all, orders made (confirmed or
 * reserved), and sold_out answers to one-unit purchases (for the lifecycle audit). */
typedef struct {
    size_t cap;
    uint64_t prev[3];
} timeline_t;

static const size_t tl_offs[3] = {offsetof(worker_t, answers), offsetof(worker_t, made), offsetof(worker_t, sold_out1)};

static void timeline_push(const run_t *run, sk_loadgen_results_t *res, timeline_t *tl)
{
    if (res->timeline_len == tl->cap) {
        tl->cap = tl->cap ? tl->cap * 2 : 64;
        res->timeline = sk_xrealloc(res->timeline, tl->cap * sizeof(uint64_t));
        res->timeline_confirmed = sk_xrealloc(res->timeline_confirmed, tl->cap * sizeof(uint64_t));
        res->timeline_sold_out1 = sk_xrealloc(res->timeline_sold_out1, tl->cap * sizeof(uint64_t));
    }
    uint64_t *dst[3] = {res->timeline, res->timeline_confirmed, res->timeline_sold_out1};
    for (int k = 0; k < 3; k++) {
        uint64_t v = sum_counter(run, tl_offs[k]);
        dst[k][res->timeline_len] = v - tl->prev[k];
        tl->prev[k] = v;
    }
    res->timeline_len++;
}

/* ---- the sale read during the run --------------------------------------------------- */

typedef struct {
    sk_loadgen_fetch_t f;
    char path[600];
    uint64_t next_ns;
    bool on;
} poller_t;

static void poller_init(poller_t *p, const run_t *run)
{
    memset(p, 0, sizeof(*p));
    p->on = run->sale && run->cfg->poll_ms > 0;
    if (!p->on)
        return;
    char *seg = sk_loadgen_path_segment(run->sale->id);
    snprintf(p->path, sizeof(p->path), "/api/v1/sales/%s", seg);
    free(seg);
    sk_loadgen_fetch_init(&p->f, &run->cfg->targets[0], NULL, 2000);
}

static int64_t get_count(json_t *o, const char *k, bool *ok)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v)) {
        *ok = false;
        return 0;
    }
    return json_integer_value(v);
}

/* Reads the sale once and checks the read: held + sold <= stock and remaining + held +
 * sold == stock, no count below zero (a service without "held" holds nothing). Returns
 * 0 with the counts in ps's last read, or -1 when no answer could be read. */
static int poll_sale(poller_t *p, sk_loadgen_polls_t *ps)
{
    int st = sk_loadgen_fetch(&p->f, "GET", p->path, NULL);
    json_t *o = st == 200 ? json_loadb(p->f.body, p->f.body_len, 0, NULL) : NULL;
    bool ok = o != NULL;
    int64_t stock = get_count(o, "stock", &ok), sold = get_count(o, "sold", &ok),
            remaining = get_count(o, "remaining", &ok);
    bool has_held = true;
    int64_t held = get_count(o, "held", &has_held);
    json_decref(o);
    if (!ok) {
        ps->failures++;
        return -1;
    }
    ps->reads++;
    if (held + sold > ps->max_units)
        ps->max_units = held + sold;
    if (held + sold > stock || remaining + held + sold != stock || held < 0 || sold < 0 || remaining < 0) {
        ps->bad_reads++;
        if (!ps->first_bad[0])
            snprintf(ps->first_bad, sizeof(ps->first_bad), "stock %lld, held %lld, sold %lld, remaining %lld",
                     (long long)stock, (long long)held, (long long)sold, (long long)remaining);
    }
    ps->stock = stock;
    ps->held = held;
    ps->sold = sold;
    ps->remaining = remaining;
    return 0;
}

/* The smallest quantity the crowd asks for: below it a remaining stock cannot sell. */
static int64_t min_quantity(const sk_loadgen_config_t *cfg)
{
    return sk_loadgen_qty_min(&cfg->qty);
}

/* Every --poll ms while the crowd runs. In the lifecycle scenario, once nothing is held
 * and what remains cannot be sold (every unit is sold), the crowd stops buying. */
static void poll_tick(run_t *run, poller_t *p, sk_loadgen_results_t *res, uint64_t now)
{
    if (!p->on || now < p->next_ns)
        return;
    p->next_ns = now + (uint64_t)run->cfg->poll_ms * 1000000u;
    sk_loadgen_polls_t *ps = &res->polls;
    if (poll_sale(p, ps) < 0 || !run->cfg->lifecycle || atomic_load(&run->stop))
        return;
    if (ps->held == 0 && ps->remaining < min_quantity(run->cfg) && now >= run->fire_ns) {
        atomic_store(&run->stop, 1);
        snprintf(res->stop_reason, sizeof(res->stop_reason), "every unit sold");
    }
}

/* After the crowd: in the lifecycle scenario the reservations it did not pay expire at
 * their pay_by, so the sale is read until nothing is held (at most --settle); then the
 * last read is the sale's final count. */
static void poll_settle(run_t *run, poller_t *p, sk_loadgen_results_t *res)
{
    if (!p->on)
        return;
    uint64_t end = sk_mono_ns() + (run->cfg->lifecycle ? run->cfg->settle_ms * 1000000u : 0);
    for (;;) {
        int rc = poll_sale(p, &res->polls);
        if ((rc == 0 && res->polls.held == 0) || sk_mono_ns() >= end) {
            res->polls.final_ok = rc == 0;
            break;
        }
        sleep_ns((uint64_t)run->cfg->poll_ms * 1000000u);
    }
    sk_loadgen_fetch_close(&p->f);
}

/* The calling thread watches the workers until they are all done: a progress line, and
 * answers per second for the timeline. Then it joins them. */
static void watch(run_t *run, sk_loadgen_results_t *res, uint64_t *t)
{
    const sk_loadgen_config_t *cfg = run->cfg;
    bool tty = isatty(STDERR_FILENO);
    timeline_t tl = {0};
    uint64_t next_sample = run->fire_ns + 1000000000u;
    uint64_t last_print = 0, print_prev_ans = 0, print_prev_ns = run->fire_ns;
    bool waited_note = false;
    const size_t ans_off = offsetof(worker_t, answers);
    poller_t poller;
    poller_init(&poller, run);
    while (!all_done(run)) {
        sleep_ns(poller.on && cfg->poll_ms < 50 ? (uint64_t)cfg->poll_ms * 1000000u : 50000000u);
        uint64_t now = sk_mono_ns();
        poll_tick(run, &poller, res, now);
        if (now < run->fire_ns) {
            if (!cfg->quiet && (!waited_note || tty)) {
                double left = (double)(run->fire_ns - now) / 1e9;
                if (tty)
                    fprintf(stderr, "\rwaiting for the sale to open: %.1fs\033[K", left);
                else
                    fprintf(stderr, "waiting %.1fs for the sale to open\n", left);
                fflush(stderr);
                waited_note = true;
            }
            continue;
        }
        for (; now >= next_sample; next_sample += 1000000000u)
            timeline_push(run, res, &tl);
        if (!cfg->quiet && now - last_print >= (tty ? 250000000u : 1000000000u)) {
            uint64_t a = sum_counter(run, ans_off);
            double dt = (double)(now - print_prev_ns) / 1e9;
            progress(run, res, tty, (double)(now - run->fire_ns) / 1e9, dt > 0 ? (double)(a - print_prev_ans) / dt : 0,
                     a, false);
            print_prev_ans = a;
            print_prev_ns = now;
            last_print = now;
        }
    }
    for (uint32_t i = 0; i < run->nworkers; i++)
        pthread_join(run->workers[i].thread, NULL);
    sk_loadgen_phase(&res->phases, "waiting for the opening", t, run->fire_ns);
    sk_loadgen_phase(&res->phases, cfg->lifecycle ? "the crowd (buying, then its last payments)" : "the crowd", t, 0);
    /* The last partial second of the timeline. */
    uint64_t a = sum_counter(run, ans_off);
    if (a > tl.prev[0])
        timeline_push(run, res, &tl);
    if (!cfg->quiet && last_print) {
        uint64_t now = sk_mono_ns();
        double dt = (double)(now - print_prev_ns) / 1e9;
        progress(run, res, tty, (double)(now - run->fire_ns) / 1e9, dt > 0 ? (double)(a - print_prev_ans) / dt : 0, a,
                 true);
    } else if (!cfg->quiet && tty && waited_note) {
        fputc('\n', stderr);
    }
    if (cfg->lifecycle && !cfg->quiet)
        fprintf(stderr, "the crowd is done; waiting for the reservations left to expire\n");
    poll_settle(run, &poller, res);
    if (cfg->lifecycle)
        sk_loadgen_phase(&res->phases, "until nothing is held", t, 0);
}

/* Adds up the workers' results into res and frees what the workers held. */
static void merge(run_t *run, sk_loadgen_results_t *res)
{
    uint64_t first = 0, last = 0, last_confirm = 0;
    res->last_remaining = -1;
    for (uint32_t i = 0; i < run->nworkers; i++) {
        worker_t *w = &run->workers[i];
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
        /* Reservations point at this worker's orders: rebase them onto the merged list. */
        if (w->nresv) {
            res->resv = sk_xrealloc(res->resv, (res->nresv + w->nresv) * sizeof(*res->resv));
            for (size_t k = 0; k < w->nresv; k++) {
                sk_loadgen_resv_t v = w->resv[k];
                v.rec += (uint32_t)res->norders;
                res->resv[res->nresv++] = v;
            }
        }
        free(w->resv);
        sk_loadgen_life_t *L = &res->life;
        L->reservations += w->life.reservations;
        L->retries += w->life.retries;
        for (int p = 0; p < SK_PLAN__COUNT; p++) {
            L->plans[p] += w->life.plans[p];
            for (int k = 0; k < SK_ACT__COUNT; k++)
                L->acts[p][k] += w->life.acts[p][k];
        }
        sk_hist_merge(&L->hist_pay, &w->life.hist_pay);
        sk_hist_merge(&L->hist_cancel, &w->life.hist_cancel);
        sk_hist_free(&w->life.hist_pay);
        sk_hist_free(&w->life.hist_cancel);
        /* Order records: append this worker's, rebasing arena offsets. */
        if (w->norders) {
            res->orders = sk_xrealloc(res->orders, (res->norders + w->norders) * sizeof(*res->orders));
            res->arena = sk_xrealloc(res->arena, res->arena_len + w->arena_len + 1);
            memcpy(res->arena + res->arena_len, w->arena, w->arena_len);
            for (size_t k = 0; k < w->norders; k++) {
                sk_loadgen_order_rec_t rec = w->orders[k];
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
}

int sk_loadgen_run(const sk_loadgen_config_t *cfg, const sk_loadgen_sale_t *sale, sk_loadgen_results_t *res, char *err,
                   size_t err_len)
{
    uint64_t t = sk_mono_ns();
    memset(res, 0, sizeof(*res));
    for (int o = 0; o < SK_OUT_COUNT; o++)
        sk_hist_init(&res->hist[o]);
    sk_hist_init(&res->all);
    sk_hist_init(&res->life.hist_pay);
    sk_hist_init(&res->life.hist_cancel);
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
    run.fire_ns = fire_instant(&run);
    atomic_init(&run.stop, 0);
    {
        uint64_t now_ns = sk_mono_ns();
        res->fire_wall_ms = sk_now_ms() + (int64_t)((run.fire_ns - SK_MIN(run.fire_ns, now_ns)) / 1000000u);
    }

    uint64_t total = cfg->requests;
    if (!total && !cfg->duration_ms)
        total = cfg->get_path ? 10000 : cfg->users;
    run.workers = sk_xcalloc(run.nworkers, sizeof(worker_t));
    for (uint32_t i = 0; i < run.nworkers; i++)
        worker_init(&run, i, total);
    for (uint32_t i = 0; i < run.nworkers; i++) {
        int rc = pthread_create(&run.workers[i].thread, NULL, sk_loadgen_crowd_main, &run.workers[i]);
        if (rc != 0) {
            sk_error("seckill-bench: cannot start a client thread: %s", strerror(rc));
            abort();
        }
    }
    sk_loadgen_phase(&res->phases, "the crowd's set-up", &t, 0);
    watch(&run, res, &t);
    merge(&run, res);
    sk_loadgen_phase(&res->phases, "the answers merged", &t, 0);

    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        res->cpu_user_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
        res->cpu_sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    }
    res->ustate = run.ustate;
    res->users = cfg->get_path ? 0 : cfg->users;
    if (!res->stop_reason[0]) {
        const char *why = cfg->interrupted && atomic_load(cfg->interrupted) ? "interrupted"
                          : res->counts[SK_OUT_ENDED] && cfg->lifecycle     ? "the sale ended"
                          : cfg->duration_ms                                ? "its time (--duration)"
                                                                            : "its request budget";
        snprintf(res->stop_reason, sizeof(res->stop_reason), "%s", why);
    }
    free(run.workers);
    for (size_t i = 0; i < cfg->ntargets; i++)
        free(run.prefixes[i]);
    free(run.prefixes);
    free(run.prefix_lens);
    return 0;
}

void sk_loadgen_results_free(sk_loadgen_results_t *res)
{
    for (int o = 0; o < SK_OUT_COUNT; o++)
        sk_hist_free(&res->hist[o]);
    sk_hist_free(&res->all);
    free(res->timeline);
    free(res->timeline_confirmed);
    free(res->timeline_sold_out1);
    free(res->resv);
    sk_hist_free(&res->life.hist_pay);
    sk_hist_free(&res->life.hist_cancel);
    free(res->ustate);
    free(res->orders);
    free(res->arena);
    free(res->sale.id);
    free(res->sale.name);
    memset(res, 0, sizeof(*res));
}
