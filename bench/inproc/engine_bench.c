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
 * own rate rather than the rate at which deadlines happen to arrive. */
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
#include "engine/engine.h"
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
} buyer_t;

static void on_done(sk_op_t *op);

static void submit_one(buyer_t *b)
{
    sk_op_t *op = sk_op_new(SK_OP_BUY);
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
    b->done++;
    b->inflight--;
    sk_op_free(op);
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
          "                            [--payment-window MS [--expire]]\n"
          "\n"
          "Measures durable purchase decisions per second of the embedded engine, in-process.\n"
          "  --payment-window MS  the sale reserves (a payment window of MS); default 0: final purchases\n"
          "  --expire        then expire every reservation at once and time it (expirations/s)\n"
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
    /* The window bounds what is in flight; the engine's own bound must not refuse any. */
    sk_engine_config_t cfg = {.max_inflight = (size_t)(threads * window) + 1};
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
                          .per_user_limit = 1,
                          .max_quantity = 1,
                          .payment_window_ms = pay_window};
    sk_sale_t *s = sk_sale_new(id, (size_t)id_len, &p, SK_STOCK_MAX, now);
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
                         .lat = sk_xmalloc(LAT_SAMPLES * sizeof(uint64_t))};
        if (pthread_create(&th[i], NULL, buyer_main, &b[i]) != 0) {
            fprintf(stderr, "seckill-engine-bench: cannot start buyer thread %d\n", i);
            threads = i;
            break;
        }
    }
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
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

    uint64_t done = 0, results[SK_BUY__COUNT] = {0}, n_lat = 0;
    bool failed = false;
    for (int i = 0; i < threads; i++) {
        done += b[i].done;
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
    } else if (results[SK_BUY_CONFIRMED] != done || (uint64_t)(pay_window ? before.held : before.sold) != done) {
        fprintf(stderr, "seckill-engine-bench: %llu decisions but %llu made, %lld sold and %lld held\n",
                (unsigned long long)done, (unsigned long long)results[SK_BUY_CONFIRMED], (long long)before.sold,
                (long long)before.held);
        exit_code = 1;
    } else if (expire_s >= 0 && after.held != 0) {
        fprintf(stderr, "seckill-engine-bench: %lld units still held after the expiry\n", (long long)after.held);
        exit_code = 1;
    }
out_engine:
    sk_engine_free(e);
    if (tmp[0])
        nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return exit_code;
}
