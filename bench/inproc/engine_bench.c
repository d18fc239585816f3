/* seckill-engine-bench: durable purchase decisions per second of the embedded engine,
 * in-process (no HTTP). N buyer threads, each an event loop attached to the engine as
 * the HTTP workers are, keep a window of purchases of distinct users in flight against
 * one sale with a large stock; the ledger decides them in batches and makes each batch
 * durable with one SQLite commit (WAL, synchronous=FULL) in a temp dir.
 *
 * Prints decisions/s, batches, the mean batch size, commit latency (from the engine's
 * histogram, interpolated within buckets like Prometheus' histogram_quantile) and the
 * submit-to-answer latency of the purchases. Asserts nothing about speed; it does check
 * that every purchase was confirmed (or reserved) and that the sale's counts agree.
 *
 * With --payment-window the sale has a payment window: every purchase is a reservation
 * (held until pay_by). With --expire too, once the purchases are done the ledger's clock
 * (its test seam) jumps past every deadline at once, and the bench times the one batch
 * that expires them all and journals the expiries: expirations per second, the ledger's
 * own rate rather than the rate at which deadlines happen to arrive.
 *
 * With --quantity MIX the purchases ask for a mix of quantities (loadgen/units.h: "1-3",
 * "1:60,2:30,4:10"), each all or nothing; the check then counts units. With
 * --controls-every MS a controller thread (an event loop of its own, as an HTTP worker
 * would be) submits an operator's control every MS ms during the flood — add_stock of
 * one unit, each with its own request id, which changes no purchase's answer — and the
 * bench prints their submit-to-answer latency next to the commit latency: a control
 * waits for the batch being committed and is made durable by the next one. With each
 * control the controller also submits one purchase of a new user (one unit), at the same
 * instant: its latency is the yardstick for the control's. The flood's own purchases
 * are not, since each is submitted the moment an answer frees its place in the window,
 * so they tend to arrive just as a batch is taken, while a control arrives at any moment
 * of a batch and waits for its commit first. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/embedded.h"
#include "engine/backend.h"
#include "engine/control.h"
#include "engine/engine.h"
#include "loadgen/units.h"
#include "loop/loop.h"
#include "util/buf.h"
#include "util/common.h"

#define LAT_SAMPLES (1u << 22) /* per thread: enough for p99 of a few seconds */

typedef struct {
    int index;
    sk_engine_t *e;
    sk_sale_t *sale;
    sk_loop_t *loop;
    sk_engine_worker_t *w;
    uint64_t deadline_ns;
    size_t window;
    uint64_t next_user;
    uint64_t inflight;
    uint64_t done;
    uint64_t results[SK_BUY__COUNT];
    uint64_t *lat; /* sampled submit-to-answer latencies, ns */
    size_t n_lat;
    bool failed;
    const sk_loadgen_qty_t *qty;
    uint64_t units; /* confirmed or reserved */
} buyer_t;

static void on_done(sk_op_t *op);

static void submit_one(buyer_t *b)
{
    sk_op_t *op = sk_engine_op_new(b->w, SK_OP_BUY);
    op->sale = b->sale;
    op->now_ms = sk_now_ms();
    op->owner = b;
    op->done = on_done;
    /* Distinct users: "b<thread>-<n>". */
    size_t n = 0;
    op->user_id[n++] = 'b';
    n += sk_fmt_u64(op->user_id + n, (uint64_t)b->index);
    op->user_id[n++] = '-';
    n += sk_fmt_u64(op->user_id + n, b->next_user++);
    op->user_id[n] = '\0';
    op->user_len = (uint8_t)n;
    memcpy(op->request_id, "r", 2);
    op->request_len = 1;
    op->quantity = sk_loadgen_qty_draw(b->qty, (uint32_t)b->index, b->next_user);
    b->inflight++;
    op->ctx = (void *)(uintptr_t)sk_mono_ns(); /* the submit time */
    sk_engine_submit(b->w, op);
}

static void on_done(sk_op_t *op)
{
    buyer_t *b = op->owner;
    uint64_t now = sk_mono_ns();
    if (b->n_lat < LAT_SAMPLES)
        b->lat[b->n_lat++] = now - (uint64_t)(uintptr_t)op->ctx;
    b->results[op->result == SK_BUY_RESERVED ? SK_BUY_CONFIRMED : op->result]++;
    if (op->result == SK_BUY_RESERVED || op->result == SK_BUY_CONFIRMED)
        b->units += op->quantity;
    b->done++;
    b->inflight--;
    sk_engine_op_recycle(b->w, op);
    if (now < b->deadline_ns)
        submit_one(b);
    else if (b->inflight == 0)
        sk_loop_stop(b->loop);
}

static void *buyer_main(void *arg)
{
    buyer_t *b = arg;
    b->loop = sk_loop_new();
    b->w = b->loop ? sk_engine_attach(b->e, b->loop) : NULL;
    if (!b->w) {
        b->failed = true;
        return NULL;
    }
    for (size_t i = 0; i < b->window; i++)
        submit_one(b);
    if (sk_loop_run(b->loop) < 0)
        b->failed = true;
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- the controller: one control every `every_ms` during the flood ------------------------- */

#define CTL_SAMPLES 100000

typedef struct {
    sk_engine_t *e;
    sk_sale_t *sale;
    sk_loop_t *loop;
    sk_engine_worker_t *w;
    sk_timer_t tick;
    uint64_t every_ms, deadline_ns;
    uint64_t sent, applied, inflight;
    uint64_t lat[CTL_SAMPLES];
    size_t n_lat;
    /* the purchases submitted with the controls */
    uint64_t plat[CTL_SAMPLES];
    size_t n_plat;
    uint64_t probes, probes_ok;
    bool failed;
} controller_t;

static void ctl_tick(sk_loop_t *loop, sk_timer_t *t);

static void ctl_done(sk_op_t *op)
{
    controller_t *c = op->owner;
    uint64_t now = sk_mono_ns();
    if (op->kind == SK_OP_BUY) {
        if (c->n_plat < CTL_SAMPLES)
            c->plat[c->n_plat++] = now - (uint64_t)(uintptr_t)op->ctx;
        if (op->result == SK_BUY_CONFIRMED || op->result == SK_BUY_RESERVED)
            c->probes_ok++;
        else
            c->failed = true;
        c->inflight--;
        sk_engine_op_recycle(c->w, op);
    } else {
        if (c->n_lat < CTL_SAMPLES)
            c->lat[c->n_lat++] = now - (uint64_t)(uintptr_t)op->ctx;
        if (op->status == 0 && op->control_result == SK_CR_OK)
            c->applied++;
        else
            c->failed = true;
        c->inflight--;
        sk_op_free(op);
    }
    if (now >= c->deadline_ns && c->inflight == 0)
        sk_loop_stop(c->loop);
}

static void ctl_tick(sk_loop_t *loop, sk_timer_t *t)
{
    controller_t *c = SK_CONTAINER_OF(t, controller_t, tick);
    if (sk_mono_ns() >= c->deadline_ns) {
        if (c->inflight == 0)
            sk_loop_stop(loop);
        return;
    }
    sk_op_t *op = sk_op_new(SK_OP_CONTROL);
    op->sale = c->sale;
    op->owner = c;
    op->done = ctl_done;
    op->entries = sk_xcalloc(1, sizeof(*op->entries));
    op->n_entries = 1;
    op->entries[0].ctl = (sk_control_t){.action = SK_CTL_ADD_STOCK, .amount = 1};
    snprintf(op->entries[0].actor, sizeof(op->entries[0].actor), "bench");
    snprintf(op->entries[0].request_id, sizeof(op->entries[0].request_id), "ctl-%llu", (unsigned long long)++c->sent);
    c->inflight++;
    op->ctx = (void *)(uintptr_t)sk_mono_ns();
    sk_engine_submit(c->w, op);
    /* The yardstick: a purchase of a new user, one unit, submitted at the same instant. */
    sk_op_t *buy = sk_engine_op_new(c->w, SK_OP_BUY);
    buy->sale = c->sale;
    buy->now_ms = sk_now_ms();
    buy->owner = c;
    buy->done = ctl_done;
    int n = snprintf(buy->user_id, sizeof(buy->user_id), "ctl-%llu", (unsigned long long)++c->probes);
    buy->user_len = (uint8_t)n;
    memcpy(buy->request_id, "r", 2);
    buy->request_len = 1;
    buy->quantity = 1;
    c->inflight++;
    buy->ctx = (void *)(uintptr_t)sk_mono_ns();
    sk_engine_submit(c->w, buy);
    sk_timer_start(loop, t, c->every_ms, ctl_tick);
}

static void *controller_main(void *arg)
{
    controller_t *c = arg;
    c->loop = sk_loop_new();
    c->w = c->loop ? sk_engine_attach(c->e, c->loop) : NULL;
    if (!c->w) {
        c->failed = true;
        return NULL;
    }
    sk_timer_start(c->loop, &c->tick, c->every_ms, ctl_tick);
    if (sk_loop_run(c->loop) < 0)
        c->failed = true;
    /* The last answer stopped the loop with the next tick still armed. */
    sk_timer_stop(c->loop, &c->tick);
    return NULL;
}

/* Quantile q of a histogram with upper bounds `bounds` (seconds; the last bucket is
 * +Inf), interpolated linearly within the bucket. */
static double hist_quantile(const uint64_t *counts, const double *bounds, int n, double q)
{
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        total += counts[i];
    if (!total)
        return 0;
    double rank = q * (double)total, cum = 0;
    for (int i = 0; i < n; i++) {
        if (cum + (double)counts[i] >= rank) {
            if (i == n - 1)
                return bounds[n - 2]; /* +Inf: the last finite bound is all we know */
            double lo = i ? bounds[i - 1] : 0, hi = bounds[i];
            return lo + (hi - lo) * (counts[i] ? (rank - cum) / (double)counts[i] : 0);
        }
        cum += (double)counts[i];
    }
    return bounds[n - 2];
}

/* The ledger's clock under --expire: the wall clock, moved on by the bench. */
static _Atomic int64_t clock_offset;

static int64_t bench_clock(void *arg)
{
    (void)arg;
    return sk_now_ms() + atomic_load(&clock_offset);
}

static void on_get(sk_op_t *op)
{
    sk_loop_stop(op->owner);
}

/* Moves the ledger's clock past every deadline and times the batch that expires them:
 * one op (from a loop on this thread) wakes the ledger, which expires everything due
 * before it answers. Returns the seconds from the jump to that answer. */
static double expire_all(sk_engine_t *e, sk_sale_t *s, int64_t window_ms)
{
    sk_loop_t *loop = sk_loop_new();
    sk_engine_worker_t *w = loop ? sk_engine_attach(e, loop) : NULL;
    if (!w)
        return -1;
    sk_op_t *op = sk_op_new(SK_OP_GET_ORDER);
    op->sale = s;
    op->seq = 1;
    op->owner = loop;
    op->done = on_get;
    uint64_t t0 = sk_mono_ns();
    atomic_store(&clock_offset, window_ms + 1000);
    sk_engine_submit(w, op);
    sk_loop_run(loop);
    double dt = (double)(sk_mono_ns() - t0) / 1e9;
    sk_op_free(op);
    sk_engine_stop(e); /* the op's completion is in; nothing else will wake this loop */
    sk_engine_detach(w);
    sk_loop_free(loop);
    return dt;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)type;
    (void)f;
    return remove(path);
}

static void usage(FILE *f)
{
    fputs("usage: seckill-engine-bench [--seconds S] [--threads N] [--window W] [--max-batch B] [--dir DIR]\n"
          "                            [--payment-window MS [--expire]] [--quantity MIX] [--controls-every MS]\n"
          "\n"
          "Measures durable purchase decisions per second of the embedded engine, in-process.\n"
          "  --payment-window MS  the sale reserves (a payment window of MS); default 0: final purchases\n"
          "  --expire        then expire every reservation at once and time it (expirations/s)\n"
          "  --quantity MIX  units per purchase: N, A-B or N:weight,... (default: one unit each)\n"
          "  --controls-every MS  an operator's control (add_stock 1) every MS ms during the flood, with\n"
          "                  its submit-to-answer latency\n"
          "  --seconds S     how long to submit purchases (default 5)\n"
          "  --threads N     buyer threads, each an event loop like an HTTP worker (default 1)\n"
          "  --window W      purchases each thread keeps in flight (default 16384)\n"
          "  --max-batch B   the ledger's largest batch (default 4096, as `seckill serve`)\n"
          "  --dir DIR       where the SQLite journal goes (default: a new temp dir, removed after)\n",
          f);
}

static int opt_int(const char *name, const char *v, int64_t min, int64_t max, int64_t *out)
{
    if (!v || sk_parse_i64(v, strlen(v), min, max, out) < 0) {
        fprintf(stderr, "seckill-engine-bench: %s must be an integer from %lld to %lld\n", name, (long long)min,
                (long long)max);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int64_t seconds = 5, threads = 1, window = 16384, max_batch = 4096, pay_window = 0;
    bool expire = false;
    const char *dir = NULL;
    sk_loadgen_qty_t qty = {0};
    int64_t controls_every = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(a, "--seconds") == 0)
            rc = opt_int(a, v, 1, 3600, &seconds), i++;
        else if (strcmp(a, "--threads") == 0)
            rc = opt_int(a, v, 1, 64, &threads), i++;
        else if (strcmp(a, "--window") == 0)
            rc = opt_int(a, v, 1, 1 << 20, &window), i++;
        else if (strcmp(a, "--max-batch") == 0)
            rc = opt_int(a, v, 1, 1000000, &max_batch), i++;
        else if (strcmp(a, "--dir") == 0 && v)
            dir = v, i++;
        else if (strcmp(a, "--payment-window") == 0)
            rc = opt_int(a, v, 0, SK_WINDOW_MAX_MS, &pay_window), i++;
        else if (strcmp(a, "--expire") == 0)
            expire = true;
        else if (strcmp(a, "--quantity") == 0 && v) {
            char qerr[256];
            if (sk_loadgen_qty_parse(v, &qty, qerr, sizeof(qerr)) < 0) {
                fprintf(stderr, "seckill-engine-bench: %s\n", qerr);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--controls-every") == 0)
            rc = opt_int(a, v, 1, 60000, &controls_every), i++;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
        if (rc < 0)
            return 2;
    }
    if (expire && !pay_window) {
        fprintf(stderr, "seckill-engine-bench: --expire needs --payment-window\n");
        return 2;
    }

    char tmp[4096] = "";
    if (!dir) {
        const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(tmp, sizeof(tmp), "%s/seckill-engine-bench-XXXXXX", base);
        if (!mkdtemp(tmp)) {
            fprintf(stderr, "seckill-engine-bench: cannot create a temp dir in %s: %s\n", base, strerror(errno));
            return 1;
        }
        dir = tmp;
    }
    sk_log_level = SK_LOG_WARN;
    char err[512] = "";
    /* The window bounds what is in flight; the engine's own bound must not refuse any
     * (controls count against it too, though it never refuses them). */
    sk_engine_config_t cfg = {.max_inflight = (size_t)(threads * window) + 1 + (controls_every ? 65536 : 0)};
    sk_backend_t *backend = sk_backend_embedded_new(dir, (size_t)max_batch);
    sk_engine_t *e = sk_engine_open(&cfg, backend, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "seckill-engine-bench: %s\n", err);
        return 1;
    }
    if (expire)
        sk_backend_embedded_set_clock(backend, bench_clock, NULL);
    int64_t now = sk_now_ms();
    char id[SK_ID_MAX + 1];
    int id_len = snprintf(id, sizeof(id), "bench-%lld", (long long)now);
    sk_sale_params_t p = {.name = "engine bench",
                          .starts_at = now - 1000,
                          .ends_at = now + 24 * 3600 * 1000LL,
                          .per_user_limit = qty.max ? (int32_t)qty.max : 1,
                          .max_quantity = qty.max ? (int32_t)qty.max : 1,
                          .payment_window_ms = pay_window};
    /* With controls adding stock, room to add it: half the most a sale may hold is
     * still far more than any run sells. */
    int64_t stock0 = controls_every ? SK_STOCK_MAX / 2 : SK_STOCK_MAX;
    sk_sale_t *s = sk_sale_new(id, (size_t)id_len, &p, stock0, now);
    int exit_code = 1;
    if (sk_engine_add_sale(e, s) < 0) {
        fprintf(stderr, "seckill-engine-bench: cannot store the sale in %s\n", dir);
        sk_sale_free(s);
        goto out_engine;
    }
    if (sk_engine_start(e) < 0) {
        fprintf(stderr, "seckill-engine-bench: cannot start the ledger\n");
        goto out_engine;
    }

    const sk_engine_stats_t *st = sk_engine_stats(e);
    buyer_t *b = sk_xcalloc((size_t)threads, sizeof(*b));
    pthread_t *th = sk_xcalloc((size_t)threads, sizeof(*th));
    uint64_t t0 = sk_mono_ns();
    for (int i = 0; i < threads; i++) {
        b[i] = (buyer_t){.index = i,
                         .e = e,
                         .sale = s,
                         .window = (size_t)window,
                         .deadline_ns = t0 + (uint64_t)seconds * 1000000000ull,
                         .lat = sk_xmalloc(LAT_SAMPLES * sizeof(uint64_t)),
                         .qty = &qty};
        if (pthread_create(&th[i], NULL, buyer_main, &b[i]) != 0) {
            fprintf(stderr, "seckill-engine-bench: cannot start buyer thread %d\n", i);
            threads = i;
            break;
        }
    }
    controller_t *ctl = NULL;
    pthread_t ctl_th;
    if (controls_every) {
        ctl = sk_xcalloc(1, sizeof(*ctl));
        *ctl = (controller_t){.e = e,
                              .sale = s,
                              .every_ms = (uint64_t)controls_every,
                              .deadline_ns = t0 + (uint64_t)seconds * 1000000000ull};
        if (pthread_create(&ctl_th, NULL, controller_main, ctl) != 0) {
            fprintf(stderr, "seckill-engine-bench: cannot start the controller thread\n");
            free(ctl);
            ctl = NULL;
        }
    }
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    if (ctl)
        pthread_join(ctl_th, NULL);
    double elapsed = (double)(sk_mono_ns() - t0) / 1e9;
    sk_sale_counts_t before;
    sk_sale_counts(s, &before);
    double expire_s = -1;
    if (expire && before.held > 0)
        expire_s = expire_all(e, s, pay_window);
    sk_engine_stop(e);
    for (int i = 0; i < threads; i++) {
        sk_engine_detach(b[i].w);
        if (b[i].loop)
            sk_loop_free(b[i].loop);
    }
    if (ctl) {
        sk_engine_detach(ctl->w);
        if (ctl->loop)
            sk_loop_free(ctl->loop);
    }

    uint64_t done = 0, results[SK_BUY__COUNT] = {0}, n_lat = 0, units = 0;
    bool failed = false;
    for (int i = 0; i < threads; i++) {
        done += b[i].done;
        units += b[i].units;
        n_lat += b[i].n_lat;
        failed |= b[i].failed;
        for (int r = 0; r < SK_BUY__COUNT; r++)
            results[r] += b[i].results[r];
    }
    uint64_t *lat = sk_xmalloc((n_lat ? n_lat : 1) * sizeof(uint64_t));
    size_t k = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(lat + k, b[i].lat, b[i].n_lat * sizeof(uint64_t));
        k += b[i].n_lat;
        free(b[i].lat);
    }
    qsort(lat, n_lat, sizeof(uint64_t), cmp_u64);

    uint64_t batches = sk_counter_get(&st->batches), batch_ops = sk_counter_get(&st->batch_ops);
    uint64_t commit_counts[16];
    for (int i = 0; i < 16; i++)
        commit_counts[i] = sk_counter_get(&st->commit_bucket[i]);
    static const double bounds[16] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   0};
    double commit_mean = batches ? (double)sk_counter_get(&st->commit_ns_sum) / (double)batches / 1e6 : 0;

    printf("engine bench: %lld buyer thread(s), %lld in flight each, max batch %lld, %.2f s, journal in %s\n",
           (long long)threads, (long long)window, (long long)max_batch, elapsed, dir);
    printf("decisions         %llu  (%.0f /s)\n", (unsigned long long)done, (double)done / elapsed);
    printf("%s %llu  (other answers: %llu; sold %lld, held %lld)\n",
           pay_window ? "reserved         " : "confirmed        ", (unsigned long long)results[SK_BUY_CONFIRMED],
           (unsigned long long)(done - results[SK_BUY_CONFIRMED]), (long long)before.sold, (long long)before.held);
    printf("batches           %llu  mean batch %.1f purchases; commit errors %llu\n", (unsigned long long)batches,
           batches ? (double)batch_ops / (double)batches : 0.0, (unsigned long long)sk_counter_get(&st->commit_errors));
    printf("commit latency    mean %.3f ms  p50 %.3f ms  p99 %.3f ms  (p50/p99 interpolated in histogram buckets)\n",
           commit_mean, hist_quantile(commit_counts, bounds, 16, 0.5) * 1e3,
           hist_quantile(commit_counts, bounds, 16, 0.99) * 1e3);
    if (n_lat)
        printf("purchase latency  p50 %.3f ms  p99 %.3f ms  max %.3f ms  (submit to answer, %llu samples)\n",
               (double)lat[n_lat / 2] / 1e6, (double)lat[(size_t)((double)n_lat * 0.99)] / 1e6,
               (double)lat[n_lat - 1] / 1e6, (unsigned long long)n_lat);
    if (qty.max)
        printf("units             %llu  (mean %.2f per purchase, mix mean %.2f)\n", (unsigned long long)units,
               done ? (double)units / (double)done : 0.0, sk_loadgen_qty_mean(&qty));
    if (ctl && ctl->n_lat) {
        qsort(ctl->lat, ctl->n_lat, sizeof(uint64_t), cmp_u64);
        double p99 = (double)ctl->lat[(size_t)((double)ctl->n_lat * 0.99)] / 1e6;
        double commit_p99 = hist_quantile(commit_counts, bounds, 16, 0.99) * 1e3;
        printf("control latency   p50 %.3f ms  p99 %.3f ms  max %.3f ms  (%llu applied of %llu)\n",
               (double)ctl->lat[ctl->n_lat / 2] / 1e6, p99, (double)ctl->lat[ctl->n_lat - 1] / 1e6,
               (unsigned long long)ctl->applied, (unsigned long long)ctl->sent);
        printf("control p99 / commit p99 %.2f\n", commit_p99 > 0 ? p99 / commit_p99 : 0.0);
        if (ctl->n_plat) {
            qsort(ctl->plat, ctl->n_plat, sizeof(uint64_t), cmp_u64);
            double pp99 = (double)ctl->plat[(size_t)((double)ctl->n_plat * 0.99)] / 1e6;
            printf("with-control purchase latency  p50 %.3f ms  p99 %.3f ms  max %.3f ms  (%llu, submitted with "
                   "the controls)\n",
                   (double)ctl->plat[ctl->n_plat / 2] / 1e6, pp99, (double)ctl->plat[ctl->n_plat - 1] / 1e6,
                   (unsigned long long)ctl->n_plat);
            printf("control p99 / with-control purchase p99 %.2f\n", pp99 > 0 ? p99 / pp99 : 0.0);
        }
    }
    sk_sale_counts_t after;
    sk_sale_counts(s, &after);
    if (expire_s >= 0)
        printf("expired           %lld reservations in one batch in %.3f s (held now %lld)\nexpirations/s %.0f\n",
               (long long)before.held, expire_s, (long long)after.held, (double)before.held / expire_s);
    printf("decisions/s %.0f\n", (double)done / elapsed);
    free(lat);
    free(b);
    free(th);
    exit_code = 0;
    if (failed) {
        fprintf(stderr, "seckill-engine-bench: a buyer thread failed\n");
        exit_code = 1;
    } else if (ctl && (ctl->failed || ctl->applied != ctl->sent || before.stock != stock0 + (int64_t)ctl->applied)) {
        fprintf(stderr, "seckill-engine-bench: %llu of %llu controls applied, stock %lld\n",
                (unsigned long long)ctl->applied, (unsigned long long)ctl->sent, (long long)before.stock);
        exit_code = 1;
    } else if (ctl && ctl->probes_ok != ctl->probes) {
        fprintf(stderr, "seckill-engine-bench: %llu of %llu purchases with the controls succeeded\n",
                (unsigned long long)ctl->probes_ok, (unsigned long long)ctl->probes);
        exit_code = 1;
    } else if (results[SK_BUY_CONFIRMED] != done ||
               (uint64_t)(pay_window ? before.held : before.sold) != units + (ctl ? ctl->probes_ok : 0)) {
        fprintf(stderr, "seckill-engine-bench: %llu decisions but %llu made, %lld sold and %lld held\n",
                (unsigned long long)done, (unsigned long long)results[SK_BUY_CONFIRMED], (long long)before.sold,
                (long long)before.held);
        exit_code = 1;
    } else if (expire_s >= 0 && after.held != 0) {
        fprintf(stderr, "seckill-engine-bench: %lld units still held after the expiry\n", (long long)after.held);
        exit_code = 1;
    }
    free(ctl);
out_engine:
    sk_engine_free(e);
    if (tmp[0])
        nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return exit_code;
}
