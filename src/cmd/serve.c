/* `seckill serve`: N worker threads (each an event loop with its own SO_REUSEPORT
 * listener), one ledger thread, and the main thread, which only waits for signals and
 * orchestrates a graceful stop: drain the workers, stop the ledger once it answered
 * everything, then stop the loops. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "backend/embedded.h"
#include "backend/redis.h"
#include "cmd/cmd.h"
#include "engine/backend.h"
#include "engine/engine.h"
#include "http/server.h"
#include "loop/loop.h"
#include "redis/cluster.h"
#include "util/common.h"
#include "util/sdnotify.h"

typedef struct serve serve_t;

typedef struct {
    serve_t *sv;
    int index;
    int listen_fd;
    pthread_t thread;
    sk_loop_t *loop;
    sk_http_server_t *server;
    sk_api_worker_t *api;
    sk_async_t control;
    _Atomic int command; /* 1 = drain, 2 = stop */
} worker_t;

struct serve {
    sk_http_config_t http;
    sk_engine_t *engine;
    sk_api_t *api;
    worker_t *workers;
    int n_workers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, drained, failed;
};

static void usage(FILE *f)
{
    fputs("usage: seckill serve [options]\n"
          "\n"
          "Runs a seckill node: the HTTP API, the buyer's page (/) and the dashboard (/admin).\n"
          "\n"
          "options (environment variable in brackets):\n"
          "  --listen HOST:PORT      address to listen on [SECKILL_LISTEN] (127.0.0.1:8080)\n"
          "  --threads N             worker threads [SECKILL_THREADS] (number of cores)\n"
          "  --data DIR              data directory of the embedded store [SECKILL_DATA] (./data)\n"
          "  --store URL             order store: 'embedded' (SQLite in --data) or\n"
          "                          redis://HOST[:PORT][/DB] (a cluster node) or\n"
          "                          redis://HOST:PORT,HOST:PORT,... (a Redis Cluster) [SECKILL_STORE]\n"
          "  --replicas-ack N        Redis store: answer a batch only once N replicas have it\n"
          "                          (WAIT; 503 when they do not in time) [SECKILL_REPLICAS_ACK] (0)\n"
          "  --replicas-timeout MS   how long to wait for them [SECKILL_REPLICAS_TIMEOUT] (1000)\n"
          "  --admin-token TOKEN     require 'Authorization: Bearer TOKEN' to create sales and\n"
          "                          list all orders [SECKILL_ADMIN_TOKEN] (none)\n"
          "  --access-log FILE       write an access log (buffered) [SECKILL_ACCESS_LOG] (off)\n"
          "  --log-level LEVEL       debug, info, warn or error [SECKILL_LOG_LEVEL] (info)\n"
          "  --header-timeout MS     a request must arrive within this [SECKILL_HEADER_TIMEOUT] (10000)\n"
          "  --idle-timeout MS       idle keep-alive connections close after this\n"
          "                          [SECKILL_IDLE_TIMEOUT] (60000)\n"
          "  --max-conns N           open connections before new ones get 503 [SECKILL_MAX_CONNS] (50000)\n"
          "  --max-batch N           purchases per ledger batch [SECKILL_MAX_BATCH] (4096)\n"
          "  --max-inflight N        requests queued to the ledger before 429 [SECKILL_MAX_INFLIGHT] (65536)\n"
          "  --demo                  create a demo sale (100 units, starting in 30 s)\n"
          "  -h, --help              show this text\n",
          f);
}

static int parse_uint(const char *name, const char *v, int64_t min, int64_t max, int64_t *out)
{
    if (sk_parse_i64(v, strlen(v), min, max, out) < 0) {
        fprintf(stderr, "seckill serve: --%s must be an integer from %lld to %lld (got '%s')\n", name, (long long)min,
                (long long)max, v);
        return -1;
    }
    return 0;
}

static void worker_control(sk_loop_t *loop, sk_async_t *a);

static void on_drained(sk_loop_t *loop, void *arg)
{
    (void)loop;
    worker_t *w = arg;
    pthread_mutex_lock(&w->sv->mu);
    w->sv->drained++;
    pthread_cond_broadcast(&w->sv->cv);
    pthread_mutex_unlock(&w->sv->mu);
}

static void worker_control(sk_loop_t *loop, sk_async_t *a)
{
    worker_t *w = SK_CONTAINER_OF(a, worker_t, control);
    int cmd = atomic_exchange(&w->command, 0);
    if (cmd == 1)
        sk_http_server_drain(w->server, 10000, on_drained, w);
    else if (cmd == 2)
        sk_loop_stop(loop);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    serve_t *sv = w->sv;
    int ok = 0;
    w->loop = sk_loop_new();
    if (w->loop && sk_async_init(w->loop, &w->control, worker_control) == 0) {
        w->api = sk_api_worker_new(sv->api, w->loop);
        if (w->api) {
            w->server = sk_http_server_new(w->loop, w->listen_fd, &sv->http, sk_api_handle, w->api);
            if (w->server)
                ok = 1;
        }
    }
    pthread_mutex_lock(&sv->mu);
    if (ok) {
        /* Register with the API only under the lock: /metrics walks the list. */
        sk_api_worker_set_server(w->api, w->server);
        sv->ready++;
    } else {
        sv->failed++;
    }
    pthread_cond_broadcast(&sv->cv);
    pthread_mutex_unlock(&sv->mu);
    if (!ok)
        return NULL;
    int rc = sk_loop_run(w->loop);
    if (rc < 0)
        sk_error("worker %d: event loop failed: %s", w->index, strerror(-rc));
    return NULL;
}

static void worker_cleanup(worker_t *w)
{
    if (w->api)
        sk_api_worker_free(w->api);
    sk_http_server_free(w->server);
    if (w->loop) {
        sk_async_close(w->loop, &w->control);
        sk_loop_free(w->loop);
    }
}

static void send_all(serve_t *sv, int cmd)
{
    for (int i = 0; i < sv->n_workers; i++) {
        atomic_store(&sv->workers[i].command, cmd);
        sk_async_send(&sv->workers[i].control);
    }
}

static int create_demo(sk_engine_t *e)
{
    sk_sale_t *s = sk_xcalloc(1, sizeof(*s));
    int64_t now = sk_now_ms();
    s->id_len = (size_t)snprintf(s->id, sizeof(s->id), "demo-%lld", (long long)(now / 1000));
    s->name = sk_xstrndup("Demo ticket · 演示门票", strlen("Demo ticket · 演示门票"));
    s->stock = 100;
    s->starts_at = now + 30000;
    s->ends_at = now + 30000 + 3600 * 1000;
    s->per_user_limit = 1;
    s->created_at = now;
    int rc = sk_engine_add_sale(e, s);
    if (rc < 0) {
        free(s->name);
        free(s);
        return rc;
    }
    fprintf(stdout, "demo sale '%s': 100 units, starting in 30 s\n", s->id);
    return 0;
}

int sk_cmd_serve(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080", *threads_s = NULL, *data = "./data", *store = "embedded", *token = NULL,
               *access_log = NULL, *log_level = NULL, *header_to = NULL, *idle_to = NULL, *max_conns_s = NULL,
               *max_batch_s = NULL, *max_inflight_s = NULL, *demo_s = NULL, *replicas_s = NULL,
               *replicas_timeout_s = NULL;
    const sk_cmd_opt_t opts[] = {
        {"listen", "LISTEN", &listen, 0},
        {"threads", "THREADS", &threads_s, 0},
        {"data", "DATA", &data, 0},
        {"store", "STORE", &store, 0},
        {"admin-token", "ADMIN_TOKEN", &token, 0},
        {"access-log", "ACCESS_LOG", &access_log, 0},
        {"log-level", "LOG_LEVEL", &log_level, 0},
        {"header-timeout", "HEADER_TIMEOUT", &header_to, 0},
        {"idle-timeout", "IDLE_TIMEOUT", &idle_to, 0},
        {"max-conns", "MAX_CONNS", &max_conns_s, 0},
        {"max-batch", "MAX_BATCH", &max_batch_s, 0},
        {"max-inflight", "MAX_INFLIGHT", &max_inflight_s, 0},
        {"replicas-ack", "REPLICAS_ACK", &replicas_s, 0},
        {"replicas-timeout", "REPLICAS_TIMEOUT", &replicas_timeout_s, 0},
        {"demo", NULL, &demo_s, 1},
    };
    int prc = sk_cmd_parse("serve", argc, argv, opts, SK_ARRAY_LEN(opts), usage);
    if (prc)
        return prc == 1 ? 0 : 2;
    int demo = demo_s != NULL;

    int64_t threads = sysconf(_SC_NPROCESSORS_ONLN), header_ms = 10000, idle_ms = 60000, max_conns = 50000,
            max_batch = 4096, max_inflight = 65536, replicas_ack = 0, replicas_timeout = 1000;
    if ((threads_s && parse_uint("threads", threads_s, 1, SK_API_MAX_WORKERS, &threads) < 0) ||
        (header_to && parse_uint("header-timeout", header_to, 100, 3600000, &header_ms) < 0) ||
        (idle_to && parse_uint("idle-timeout", idle_to, 100, 86400000, &idle_ms) < 0) ||
        (max_conns_s && parse_uint("max-conns", max_conns_s, 1, 10000000, &max_conns) < 0) ||
        (max_batch_s && parse_uint("max-batch", max_batch_s, 1, 1000000, &max_batch) < 0) ||
        (max_inflight_s && parse_uint("max-inflight", max_inflight_s, 1, 100000000, &max_inflight) < 0) ||
        (replicas_s && parse_uint("replicas-ack", replicas_s, 0, 16, &replicas_ack) < 0) ||
        (replicas_timeout_s && parse_uint("replicas-timeout", replicas_timeout_s, 10, 2000, &replicas_timeout) < 0))
        return 2;
    if (threads < 1)
        threads = 1;
    if (log_level) {
        int lv = sk_log_level_parse(log_level);
        if (lv < 0) {
            fprintf(stderr, "seckill serve: --log-level must be debug, info, warn or error\n");
            return 2;
        }
        sk_log_level = (sk_log_level_t)lv;
    }
    char host[256];
    int port;
    if (sk_cmd_split_hostport(listen, host, sizeof(host), &port) < 0) {
        fprintf(stderr, "seckill serve: --listen must be HOST:PORT with a port from 1 to 65535 (got '%s')\n", listen);
        return 2;
    }
    char err[512] = "";
    bool redis = strncmp(store, "redis://", 8) == 0;
    sk_rcluster_t *seeds = redis ? sk_rcluster_new(store, err, sizeof(err)) : NULL;
    if (redis && !seeds) {
        fprintf(stderr, "seckill serve: %s\n", err);
        return 2;
    }
    char store_shown[512];
    sk_redis_redact(store, store_shown, sizeof(store_shown));
    sk_rcluster_free(seeds);
    if (!redis && replicas_ack > 0) {
        fprintf(stderr, "seckill serve: --replicas-ack is for the Redis store (--store redis://...)\n");
        return 2;
    }
    if (!redis && strcmp(store, "embedded") != 0 && strcmp(store, "sqlite") != 0) {
        fprintf(stderr, "seckill serve: unsupported --store '%s' (use 'embedded' or redis://HOST:PORT)\n", store);
        return 2;
    }

    /* Room for many connections: raise the soft open-file limit to the hard one. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    /* A write past the file size limit must fail with EFBIG (the batch answers 503),
     * not kill the process with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread */

    serve_t sv = {0};
    pthread_mutex_init(&sv.mu, NULL);
    pthread_cond_init(&sv.cv, NULL);
    sv.http.header_timeout_ms = (uint32_t)header_ms;
    sv.http.idle_timeout_ms = (uint32_t)idle_ms;
    sv.http.max_conns = (uint32_t)max_conns;
    sv.http.access_log_fd = -1;
    int exit_code = 1;
    if (access_log) {
        sv.http.access_log_fd = open(access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (sv.http.access_log_fd < 0) {
            fprintf(stderr, "seckill serve: cannot open access log %s: %s\n", access_log, strerror(errno));
            return 1;
        }
    }

    sk_engine_config_t ecfg = {.max_inflight = (size_t)max_inflight};
    sk_backend_redis_config_t rcfg = {.url = store,
                                      .max_batch = (size_t)max_batch,
                                      .replicas_ack = (int)replicas_ack,
                                      .replicas_timeout_ms = (int)replicas_timeout};
    sv.engine = sk_engine_open(
        &ecfg, redis ? sk_backend_redis_new(&rcfg, err, sizeof(err)) : sk_backend_embedded_new(data, (size_t)max_batch),
        err, sizeof(err));
    if (!sv.engine) {
        fprintf(stderr, "seckill serve: %s\n", err);
        goto out;
    }
    if (demo && create_demo(sv.engine) < 0) {
        fprintf(stderr, "seckill serve: cannot store the demo sale in %s\n", redis ? store_shown : data);
        goto out;
    }
    sk_api_config_t acfg = {.admin_token = token, .engine = sv.engine};
    sv.api = sk_api_new(&acfg);

    sv.n_workers = (int)threads;
    sv.workers = sk_xcalloc((size_t)threads, sizeof(worker_t));
    for (int i = 0; i < sv.n_workers; i++) {
        int fd = sk_http_listen(host, port);
        if (fd < 0) {
            fprintf(stderr, "seckill serve: cannot listen on %s: %s\n", listen, strerror(-fd));
            for (int k = 0; k < i; k++)
                close(sv.workers[k].listen_fd);
            sv.n_workers = 0;
            goto out;
        }
        sv.workers[i].listen_fd = fd;
        sv.workers[i].sv = &sv;
        sv.workers[i].index = i;
    }
    if (sk_engine_start(sv.engine) < 0) {
        fprintf(stderr, "seckill serve: cannot start the ledger thread\n");
        goto out;
    }
    int started = 0;
    for (int i = 0; i < sv.n_workers; i++) {
        if (pthread_create(&sv.workers[i].thread, NULL, worker_main, &sv.workers[i]) != 0)
            break;
        started++;
    }
    pthread_mutex_lock(&sv.mu);
    while (sv.ready + sv.failed < started)
        pthread_cond_wait(&sv.cv, &sv.mu);
    pthread_mutex_unlock(&sv.mu);
    if (sv.failed || started < sv.n_workers) {
        fprintf(stderr, "seckill serve: a worker thread failed to start\n");
        _exit(1);
    }
    const char *lb = strchr(host, ':') ? "[" : "", *rb = strchr(host, ':') ? "]" : "";
    fprintf(stdout, "listening on http://%s%s%s:%d\n", lb, host, rb, port);
    if (demo)
        fprintf(stdout, "buyer's page: http://%s%s%s:%d/   dashboard: http://%s%s%s:%d/admin\n", lb, host, rb, port, lb,
                host, rb, port);
    fflush(stdout);
    sk_sd_notify("READY=1");
    if (redis)
        sk_info("seckill serving on %s with %d worker threads, store: %s%s%s", listen, sv.n_workers, store_shown,
                replicas_ack ? ", confirmations wait for replicas: " : "", replicas_ack ? replicas_s : "");
    else
        sk_info("seckill serving on %s with %d worker threads, store: embedded (%s)", listen, sv.n_workers, data);

    int sig = 0;
    sigwait(&sigs, &sig);
    sk_info("received %s: draining connections", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    send_all(&sv, 1);
    pthread_mutex_lock(&sv.mu);
    while (sv.drained < sv.n_workers)
        pthread_cond_wait(&sv.cv, &sv.mu);
    pthread_mutex_unlock(&sv.mu);
    /* Every connection is gone; the ledger answers whatever is still queued, then the
     * loops stop (their completion queues are drained by sk_api_worker_free). */
    sk_engine_stop(sv.engine);
    send_all(&sv, 2);
    for (int i = 0; i < sv.n_workers; i++) {
        pthread_join(sv.workers[i].thread, NULL);
        worker_cleanup(&sv.workers[i]);
    }
    sk_info("stopped");
    exit_code = 0;
out:
    sk_api_free(sv.api);
    sk_engine_free(sv.engine);
    free(sv.workers);
    if (sv.http.access_log_fd >= 0)
        close(sv.http.access_log_fd);
    return exit_code;
}
