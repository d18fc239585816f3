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
#include "crypto/secret.h"
#include "engine/backend.h"
#include "engine/engine.h"
#include "http/server.h"
#include "loop/loop.h"
#include "redis/cluster.h"
#include "util/common.h"
#include "util/ip.h"
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
    sk_loop_io_t io; /* --io */
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
          "  --access-log FILE       write an access log (buffered) [SECKILL_ACCESS_LOG] (off)\n"
          "  --log-level LEVEL       debug, info, warn or error [SECKILL_LOG_LEVEL] (info)\n"
          "  --header-timeout MS     a request must arrive within this [SECKILL_HEADER_TIMEOUT] (10000)\n"
          "  --idle-timeout MS       idle keep-alive connections close after this\n"
          "                          [SECKILL_IDLE_TIMEOUT] (60000)\n"
          "  --max-conns N           open connections before new ones get 503 [SECKILL_MAX_CONNS] (50000)\n"
          "  --max-streams N         event streams in all; the rest of --max-conns stays for other\n"
          "                          requests [SECKILL_MAX_STREAMS] (half of --max-conns; 0: no cap)\n"
          "  --max-streams-per-ip N  event streams per client address (IPv6: per /64); set 0 (no cap)\n"
          "                          behind a proxy [SECKILL_MAX_STREAMS_PER_IP] (64)\n"
          "  --stream-lifetime MS    an event stream ends after this (minus up to a quarter, at\n"
          "                          random); the page reconnects [SECKILL_STREAM_LIFETIME] (300000; 0: never)\n"
          "  --max-stream-backlog BYTES  unsent event-stream bytes in all; past it, streams that\n"
          "                          are behind are dropped [SECKILL_MAX_STREAM_BACKLOG] (67108864; 0: no cap)\n"
          "  --max-batch N           purchases per ledger batch [SECKILL_MAX_BATCH] (4096)\n"
          "  --max-inflight N        requests queued to the ledger before 429 [SECKILL_MAX_INFLIGHT] (65536)\n"
          "  --payment-secret-file FILE\n"
          "                          the key of payment signatures (X-Seckill-Signature: sha256=<hex\n"
          "                          HMAC-SHA256 of the body>); a trailing newline is not part of it.\n"
          "                          [SECKILL_PAYMENT_SECRET holds the key itself] (none: only the\n"
          "                          admin token may pay)\n"
          "  --io BACKEND            how workers do network I/O: epoll, uring (io_uring: the sends of\n"
          "                          a loop turn leave in one system call) or auto (io_uring where the\n"
          "                          kernel offers it and lets this process use it, else epoll)\n"
          "                          [SECKILL_IO] (auto)\n"
          "  --demo                  create a demo sale (100 units, starting in 30 s; on the embedded store\n"
          "                          a purchase reserves its unit for 2 minutes until it is paid)\n"
          "  --demo-payments         DEMO ONLY: POST /api/v1/orders/{id}/demo-pay confirms a reservation\n"
          "                          without any payment (the demo page's Pay button); never in production\n"
          "  -h, --help              show this text\n"
          "\n"
          "the operators (admin endpoints take 'Authorization: Bearer TOKEN'):\n"
          "  --admin-token-file FILE lines NAME:TOKEN, or one line holding a token (named admin)\n"
          "                          [SECKILL_ADMIN_TOKEN_FILE]\n"
          "  --admin-token TOKEN     one token, named admin [SECKILL_ADMIN_TOKEN]; a flag shows in ps,\n"
          "                          prefer the file or the variable\n"
          "  --insecure-admin        run without any admin token beyond loopback, where anyone could\n"
          "                          create sales and list orders [SECKILL_INSECURE_ADMIN]\n"
          "  --metrics-token TOKEN   guard /metrics (admin tokens open it too) [SECKILL_METRICS_TOKEN]\n"
          "  --metrics-token-file FILE  the same from a file [SECKILL_METRICS_TOKEN_FILE]\n"
          "\n"
          "the buyers (without the first three the body's user_id is believed: a demo):\n"
          "  --user-header NAME      the user as a gateway passes it, e.g. X-User-Id, honoured only\n"
          "                          from --trusted-proxies [SECKILL_USER_HEADER]\n"
          "  --trusted-proxies LIST  CIDR blocks, comma-separated (e.g. 10.0.0.0/8,::1): their user\n"
          "                          header, X-Forwarded-For and X-Real-IP count [SECKILL_TRUSTED_PROXIES]\n"
          "  --user-token-secret-file FILE  accept signed user tokens in X-Seckill-User\n"
          "                          [SECKILL_USER_TOKEN_SECRET_FILE]\n"
          "  --secret-file FILE      key of admission tokens and proof-of-work challenges, the same on\n"
          "                          every node [SECKILL_SECRET_FILE] (a random key: this node only)\n"
          "  --ip-rate R             API requests per second per client address, bursts of 2R\n"
          "                          [SECKILL_IP_RATE] (off)\n"
          "  --user-rate R           the same per user [SECKILL_USER_RATE] (off)\n"
          "  --deny-file FILE        users, IPs and CIDR blocks to refuse, one a line; re-read on\n"
          "                          SIGHUP [SECKILL_DENY_FILE]\n",
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
    char name[16];
    snprintf(name, sizeof(name), "sk-worker-%d", w->index);
    pthread_setname_np(pthread_self(), name);
    w->loop = sk_loop_new_io(sv->io);
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
    char who[32];
    snprintf(who, sizeof(who), "worker %d", w->index);
    sk_loop_run_or_exit(w->loop, who);
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

/* The front door's options, read and checked before anything starts. */
typedef struct {
    const char *admin_token, *admin_token_file, *insecure_admin, *metrics_token, *metrics_token_file, *user_header,
        *trusted_proxies, *user_token_secret_file, *secret_file, *ip_rate, *user_rate, *deny_file;
    char *admin_text, *metrics_text, *user_key, *secret; /* secret files' contents, wiped by front_free */
    size_t user_key_len, secret_len;
    sk_api_token_t admins[64], metrics[64];
    size_t n_admins, n_metrics;
    sk_cidr_t trusted[64];
    size_t n_trusted;
    int64_t ip_rate_v, user_rate_v;
    bool open_admin, body_identity; /* warnings to give once the node is up */
} front_t;

#define FRONT_MAX_TOKENS 64

static void front_free(front_t *f)
{
    sk_secret_free(f->admin_text);
    sk_secret_free(f->metrics_text);
    sk_secret_free(f->user_key);
    sk_secret_free(f->secret);
    f->admin_text = f->metrics_text = f->user_key = f->secret = NULL;
    memset(f->admins, 0, sizeof(f->admins));
    memset(f->metrics, 0, sizeof(f->metrics));
}

/* An environment variable set to "" is not the same as none: for a token it would mean
 * "no authentication", which must be said on purpose (no token at all), not by accident. */
static bool env_empty(const char *name)
{
    const char *v = getenv(name);
    return v && !*v;
}

static int read_tokens(const char *what, const char *path, char **text, sk_api_token_t *out, size_t *n)
{
    char err[512];
    size_t len;
    *text = sk_secret_read(path, &len, err, sizeof(err));
    if (!*text) {
        fprintf(stderr, "seckill serve: --%s: %s\n", what, err);
        return -1;
    }
    int rc = sk_api_tokens_parse(*text, len, out, FRONT_MAX_TOKENS, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "seckill serve: --%s %s: %s\n", what, path, err);
        return -1;
    }
    *n = (size_t)rc;
    return 0;
}

static int parse_trusted(front_t *f)
{
    const char *p = f->trusted_proxies;
    while (*p) {
        size_t n = strcspn(p, ", \t");
        if (n > 0) {
            if (f->n_trusted == SK_ARRAY_LEN(f->trusted)) {
                fprintf(stderr, "seckill serve: --trusted-proxies takes at most %zu blocks\n",
                        SK_ARRAY_LEN(f->trusted));
                return -1;
            }
            if (sk_cidr_parse(p, n, &f->trusted[f->n_trusted]) < 0) {
                fprintf(stderr, "seckill serve: --trusted-proxies: '%.*s' is not an IP address or a CIDR block\n",
                        (int)n, p);
                return -1;
            }
            f->n_trusted++;
        }
        p += n;
        if (*p)
            p++;
    }
    return 0;
}

static bool flag_on(const char *v)
{
    return v && *v && strcmp(v, "0") != 0 && strcmp(v, "false") != 0 && strcmp(v, "no") != 0;
}

/* Loads and checks the front door's options. Returns 0, or -1 after one line on stderr. */
static int front_load(front_t *f, const char *host)
{
    char err[512];
    if ((f->admin_token && !*f->admin_token) || (!f->admin_token && env_empty("SECKILL_ADMIN_TOKEN"))) {
        fprintf(stderr, "seckill serve: the admin token is empty: that would let anyone in. Give a token, or leave "
                        "--admin-token and SECKILL_ADMIN_TOKEN out\n");
        return -1;
    }
    if ((f->metrics_token && !*f->metrics_token) || (!f->metrics_token && env_empty("SECKILL_METRICS_TOKEN"))) {
        fprintf(stderr, "seckill serve: the metrics token is empty: give a token, or leave --metrics-token and "
                        "SECKILL_METRICS_TOKEN out\n");
        return -1;
    }
    if (f->admin_token && f->admin_token_file) {
        fprintf(stderr, "seckill serve: give --admin-token or --admin-token-file, not both\n");
        return -1;
    }
    if (f->metrics_token && f->metrics_token_file) {
        fprintf(stderr, "seckill serve: give --metrics-token or --metrics-token-file, not both\n");
        return -1;
    }
    if (f->admin_token_file &&
        read_tokens("admin-token-file", f->admin_token_file, &f->admin_text, f->admins, &f->n_admins) < 0)
        return -1;
    if (f->metrics_token_file &&
        read_tokens("metrics-token-file", f->metrics_token_file, &f->metrics_text, f->metrics, &f->n_metrics) < 0)
        return -1;
    if (f->metrics_token) {
        f->metrics[0] = (sk_api_token_t){.name = "metrics", .token = f->metrics_token, .len = strlen(f->metrics_token)};
        f->n_metrics = 1;
    }
    if (f->trusted_proxies && parse_trusted(f) < 0)
        return -1;
    if (f->user_header && (!*f->user_header || f->n_trusted == 0)) {
        fprintf(stderr, "seckill serve: --user-header is honoured only from the gateway: give --trusted-proxies "
                        "with its addresses\n");
        return -1;
    }
    if (f->user_token_secret_file) {
        f->user_key = sk_secret_read(f->user_token_secret_file, &f->user_key_len, err, sizeof(err));
        if (!f->user_key) {
            fprintf(stderr, "seckill serve: --user-token-secret-file: %s\n", err);
            return -1;
        }
    }
    if (f->secret_file) {
        f->secret = sk_secret_read(f->secret_file, &f->secret_len, err, sizeof(err));
        if (!f->secret) {
            fprintf(stderr, "seckill serve: --secret-file: %s\n", err);
            return -1;
        }
    }
    if ((f->ip_rate && parse_uint("ip-rate", f->ip_rate, 0, 1000000, &f->ip_rate_v) < 0) ||
        (f->user_rate && parse_uint("user-rate", f->user_rate, 0, 1000000, &f->user_rate_v) < 0))
        return -1;
    if (!f->admin_token && f->n_admins == 0) {
        sk_ip_t ip;
        bool loopback =
            strcmp(host, "localhost") == 0 || (sk_ip_parse(host, strlen(host), &ip) == 0 && sk_ip_is_loopback(&ip));
        if (!loopback && !flag_on(f->insecure_admin)) {
            fprintf(stderr,
                    "seckill serve: no admin token, and listening on %s, beyond loopback: anyone who reaches it "
                    "could create sales and list every order. Give --admin-token-file FILE (or "
                    "SECKILL_ADMIN_TOKEN), or --insecure-admin to run open anyway\n",
                    host);
            return -1;
        }
        f->open_admin = true;
    }
    f->body_identity = !f->user_header && !f->user_key;
    return 0;
}

/* Said once the node is up (a node that fails to start says one line: why). */
static void front_warn(const front_t *f)
{
    if (f->open_admin)
        sk_warn("no admin token: ANYONE who reaches this node can create sales and list every order "
                "(--admin-token-file FILE or SECKILL_ADMIN_TOKEN sets one)");
    if (f->body_identity)
        sk_warn("buyers are identified by the user_id in the request body: ANYONE can buy, and read orders, in "
                "anyone's name. That is a demo; in production identify them with --user-header and "
                "--trusted-proxies (a gateway), or --user-token-secret-file (signed tokens)");
}

/* The demo sale: 100 units, starting in 30 s. On a store with the order lifecycle a
 * purchase reserves its unit for DEMO_WINDOW_MS, so the page shows its payment countdown
 * (and its Pay button with --demo-payments). Its id goes into id (SK_ID_MAX + 1 bytes). */
#define DEMO_WINDOW_MS 120000
static int create_demo(sk_engine_t *e, char *id)
{
    int64_t now = sk_now_ms();
    bool window = sk_engine_lifecycle(e);
    sk_sale_params_t p = {.name = "Demo ticket · 演示门票",
                          .starts_at = now + 30000,
                          .ends_at = now + 30000 + 3600 * 1000,
                          .per_user_limit = 1,
                          .max_quantity = 1,
                          .payment_window_ms = window ? DEMO_WINDOW_MS : 0};
    /* demo-<unix seconds>; a restart within the same second (after a crash, say) finds
     * that id taken and takes the next one. */
    int rc = -EEXIST;
    for (int k = 0; k < 100 && rc == -EEXIST; k++) {
        int len = snprintf(id, SK_ID_MAX + 1, "demo-%lld", (long long)(now / 1000 + k));
        sk_sale_t *s = sk_sale_new(id, (size_t)len, &p, 100, now);
        rc = sk_engine_add_sale(e, s);
        if (rc < 0)
            sk_sale_free(s);
    }
    if (rc < 0)
        return rc;
    fprintf(stdout, "demo sale '%s': 100 units, starting in 30 s%s\n", id,
            window ? ", each reserved for 2 minutes until it is paid" : "");
    return 0;
}

/* The payment secret: the file's bytes without one trailing newline (an editor adds
 * one), or SECKILL_PAYMENT_SECRET itself. Returns 0 (*key NULL when neither is given)
 * or -1 after one clear line on stderr. */
static int read_payment_secret(const char *file, unsigned char **key, size_t *len)
{
    *key = NULL;
    *len = 0;
    const char *env = sk_cmd_env("PAYMENT_SECRET");
    if (!file && !env)
        return 0;
    char *buf = NULL;
    size_t n = 0;
    if (file) {
        FILE *f = fopen(file, "rb");
        if (!f) {
            fprintf(stderr, "seckill serve: cannot read --payment-secret-file %s: %s\n", file, strerror(errno));
            return -1;
        }
        buf = sk_xmalloc(4097);
        n = fread(buf, 1, 4097, f);
        bool err = ferror(f);
        fclose(f);
        if (err || n > 4096) {
            fprintf(stderr, "seckill serve: --payment-secret-file %s: %s\n", file,
                    err ? "read error" : "longer than 4096 bytes");
            free(buf);
            return -1;
        }
        if (n > 0 && buf[n - 1] == '\n')
            n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
    } else {
        n = strlen(env);
        buf = sk_xstrndup(env, n);
    }
    if (n == 0) {
        fprintf(stderr, "seckill serve: the payment secret (%s) is empty\n",
                file ? "--payment-secret-file" : "SECKILL_PAYMENT_SECRET");
        free(buf);
        return -1;
    }
    *key = (unsigned char *)buf;
    *len = n;
    return 0;
}

int sk_cmd_serve(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080", *threads_s = NULL, *data = "./data", *store = "embedded", *access_log = NULL,
               *log_level = NULL, *header_to = NULL, *idle_to = NULL, *max_conns_s = NULL, *max_batch_s = NULL,
               *max_inflight_s = NULL, *demo_s = NULL, *max_streams_s = NULL, *streams_per_ip_s = NULL,
               *stream_life_s = NULL, *stream_backlog_s = NULL, *payment_secret_file = NULL, *demo_payments_s = NULL,
               *io_s = NULL, *replicas_s = NULL, *replicas_timeout_s = NULL;
    front_t front = {0};
    const sk_cmd_opt_t opts[] = {
        {"listen", "LISTEN", &listen, 0},
        {"threads", "THREADS", &threads_s, 0},
        {"data", "DATA", &data, 0},
        {"store", "STORE", &store, 0},
        {"admin-token", "ADMIN_TOKEN", &front.admin_token, 0},
        {"admin-token-file", "ADMIN_TOKEN_FILE", &front.admin_token_file, 0},
        {"insecure-admin", "INSECURE_ADMIN", &front.insecure_admin, 1},
        {"metrics-token", "METRICS_TOKEN", &front.metrics_token, 0},
        {"metrics-token-file", "METRICS_TOKEN_FILE", &front.metrics_token_file, 0},
        {"user-header", "USER_HEADER", &front.user_header, 0},
        {"trusted-proxies", "TRUSTED_PROXIES", &front.trusted_proxies, 0},
        {"user-token-secret-file", "USER_TOKEN_SECRET_FILE", &front.user_token_secret_file, 0},
        {"secret-file", "SECRET_FILE", &front.secret_file, 0},
        {"ip-rate", "IP_RATE", &front.ip_rate, 0},
        {"user-rate", "USER_RATE", &front.user_rate, 0},
        {"deny-file", "DENY_FILE", &front.deny_file, 0},
        {"access-log", "ACCESS_LOG", &access_log, 0},
        {"log-level", "LOG_LEVEL", &log_level, 0},
        {"header-timeout", "HEADER_TIMEOUT", &header_to, 0},
        {"idle-timeout", "IDLE_TIMEOUT", &idle_to, 0},
        {"max-conns", "MAX_CONNS", &max_conns_s, 0},
        {"max-streams", "MAX_STREAMS", &max_streams_s, 0},
        {"max-streams-per-ip", "MAX_STREAMS_PER_IP", &streams_per_ip_s, 0},
        {"stream-lifetime", "STREAM_LIFETIME", &stream_life_s, 0},
        {"max-stream-backlog", "MAX_STREAM_BACKLOG", &stream_backlog_s, 0},
        {"max-batch", "MAX_BATCH", &max_batch_s, 0},
        {"max-inflight", "MAX_INFLIGHT", &max_inflight_s, 0},
        {"payment-secret-file", NULL, &payment_secret_file, 0},
        {"io", "IO", &io_s, 0},
        {"replicas-ack", "REPLICAS_ACK", &replicas_s, 0},
        {"replicas-timeout", "REPLICAS_TIMEOUT", &replicas_timeout_s, 0},
        {"demo", NULL, &demo_s, 1},
        {"demo-payments", NULL, &demo_payments_s, 1},
    };
    int prc = sk_cmd_parse("serve", argc, argv, opts, SK_ARRAY_LEN(opts), usage);
    if (prc)
        return prc == 1 ? 0 : 2;
    int demo = demo_s != NULL;

    int64_t threads = sysconf(_SC_NPROCESSORS_ONLN), header_ms = 10000, idle_ms = 60000, max_conns = 50000,
            max_batch = 4096, max_inflight = 65536, max_streams = -1, streams_per_ip = 64, stream_life = 300000,
            stream_backlog = 64 << 20, replicas_ack = 0, replicas_timeout = 1000;
    if ((threads_s && parse_uint("threads", threads_s, 1, SK_API_MAX_WORKERS, &threads) < 0) ||
        (header_to && parse_uint("header-timeout", header_to, 100, 3600000, &header_ms) < 0) ||
        (idle_to && parse_uint("idle-timeout", idle_to, 100, 86400000, &idle_ms) < 0) ||
        (max_conns_s && parse_uint("max-conns", max_conns_s, 1, 10000000, &max_conns) < 0) ||
        (max_batch_s && parse_uint("max-batch", max_batch_s, 1, 1000000, &max_batch) < 0) ||
        (max_inflight_s && parse_uint("max-inflight", max_inflight_s, 1, 100000000, &max_inflight) < 0) ||
        (max_streams_s && parse_uint("max-streams", max_streams_s, 0, 10000000, &max_streams) < 0) ||
        (streams_per_ip_s && parse_uint("max-streams-per-ip", streams_per_ip_s, 0, 10000000, &streams_per_ip) < 0) ||
        (stream_life_s && parse_uint("stream-lifetime", stream_life_s, 0, 86400000, &stream_life) < 0) ||
        (stream_backlog_s &&
         parse_uint("max-stream-backlog", stream_backlog_s, 0, (int64_t)1 << 40, &stream_backlog) < 0) ||
        (replicas_s && parse_uint("replicas-ack", replicas_s, 0, 16, &replicas_ack) < 0) ||
        (replicas_timeout_s && parse_uint("replicas-timeout", replicas_timeout_s, 10, 2000, &replicas_timeout) < 0))
        return 2;
    sk_loop_io_t io = SK_LOOP_IO_AUTO;
    if (io_s && sk_loop_io_parse(io_s, &io) < 0) {
        fprintf(stderr, "seckill serve: --io must be epoll, uring or auto (got '%s')\n", io_s);
        return 2;
    }
    if (io == SK_LOOP_IO_URING) {
        /* Asked for by name: say at once when this machine cannot have it. */
        sk_loop_t *probe = sk_loop_new_io(SK_LOOP_IO_URING);
        if (!probe) {
            fprintf(stderr, "seckill serve: --io uring: io_uring is not available here (%s); use --io epoll or auto\n",
                    strerror(errno));
            return 1;
        }
        sk_loop_free(probe);
    }
    if (stream_life > 0 && stream_life < 1000) {
        fprintf(stderr, "seckill serve: --stream-lifetime must be 0 (no end) or from 1000 to 86400000 ms (got '%s')\n",
                stream_life_s);
        return 2;
    }
    /* Streams must leave room for requests that are not streams: by default half of the
     * connections, and an explicit cap must not take them all. */
    if (max_streams < 0)
        max_streams = max_conns > 1 ? max_conns / 2 : 1; /* 0 would mean no cap */
    else if (max_streams >= max_conns) {
        fprintf(stderr,
                "seckill serve: --max-streams (%lld) must be below --max-conns (%lld), so that requests that are "
                "not streams always find a connection\n",
                (long long)max_streams, (long long)max_conns);
        return 2;
    }
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
    if (front_load(&front, host) < 0) {
        front_free(&front);
        return 2;
    }

    unsigned char *payment_secret = NULL;
    size_t payment_secret_len = 0;
    if (read_payment_secret(payment_secret_file, &payment_secret, &payment_secret_len) < 0) {
        front_free(&front);
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
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread */

    serve_t sv = {0};
    sv.io = io;
    pthread_mutex_init(&sv.mu, NULL);
    pthread_cond_init(&sv.cv, NULL);
    sk_http_config_init(&sv.http);
    sv.http.header_timeout_ms = (uint32_t)header_ms;
    sv.http.idle_timeout_ms = (uint32_t)idle_ms;
    sv.http.max_conns = (uint32_t)max_conns;
    sv.http.max_streams = (uint32_t)max_streams;
    sv.http.max_streams_per_addr = (uint32_t)streams_per_ip;
    sv.http.stream_lifetime_ms = (uint32_t)stream_life;
    sv.http.max_stream_backlog = (size_t)stream_backlog;
    int exit_code = 1;
    if (access_log) {
        sv.http.access_log_fd = open(access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (sv.http.access_log_fd < 0) {
            fprintf(stderr, "seckill serve: cannot open access log %s: %s\n", access_log, strerror(errno));
            sk_http_config_destroy(&sv.http);
            free(payment_secret);
            front_free(&front);
            return 1;
        }
    }

    /* A thread is named after the thread that creates it: the store's threads (the
     * embedded journal's checkpointer) and the ledger are created while the main thread
     * carries their names, so that top -H, perf and /proc tell the threads apart. */
    pthread_setname_np(pthread_self(), "sk-store");
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
    char demo_id[SK_ID_MAX + 1] = "";
    if (demo && create_demo(sv.engine, demo_id) < 0) {
        fprintf(stderr, "seckill serve: cannot store the demo sale in %s\n", redis ? store_shown : data);
        goto out;
    }
    sk_api_config_t acfg = {
        .engine = sv.engine,
        .admin_token = front.admin_token,
        .admin_tokens = front.admins,
        .n_admin_tokens = front.n_admins,
        .metrics_tokens = front.metrics,
        .n_metrics_tokens = front.n_metrics,
        .user_header = front.user_header,
        .trusted_proxies = front.trusted,
        .n_trusted_proxies = front.n_trusted,
        .user_token_key = front.user_key,
        .user_token_key_len = front.user_key_len,
        .secret = front.secret,
        .secret_len = front.secret_len,
        .ip_rate = (uint32_t)front.ip_rate_v,
        .user_rate = (uint32_t)front.user_rate_v,
        .deny_file = front.deny_file,
        .payment_secret = payment_secret,
        .payment_secret_len = payment_secret_len,
        .demo_payments = demo_payments_s != NULL,
        .demo_sale = demo_id[0] ? demo_id : NULL,
    };
    if (acfg.demo_payments)
        sk_warn("--demo-payments: POST /api/v1/orders/{id}/demo-pay confirms reservations without any payment; "
                "for demos only");
    sv.api = sk_api_new(&acfg, err, sizeof(err));
    front_free(&front); /* the API keeps its own copies (as HMAC keys and digests) */
    if (!sv.api) {
        fprintf(stderr, "seckill serve: %s\n", err);
        goto out;
    }
    if (front.deny_file) {
        size_t ips, users;
        sk_api_deny_stats(sv.api, &ips, &users);
        sk_info("deny list %s: %zu addresses and blocks, %zu users", front.deny_file, ips, users);
    }

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
    pthread_setname_np(pthread_self(), "sk-ledger");
    int erc = sk_engine_start(sv.engine);
    pthread_setname_np(pthread_self(), "seckill");
    if (erc < 0) {
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
    front_warn(&front);
    const char *lb = strchr(host, ':') ? "[" : "", *rb = strchr(host, ':') ? "]" : "";
    fprintf(stdout, "listening on http://%s%s%s:%d\n", lb, host, rb, port);
    if (demo)
        fprintf(stdout, "buyer's page: http://%s%s%s:%d/   dashboard: http://%s%s%s:%d/admin\n", lb, host, rb, port, lb,
                host, rb, port);
    fflush(stdout);
    sk_sd_notify("READY=1");
    const char *io_name = sk_loop_io_name(sk_loop_io(sv.workers[0].loop));
    if (redis)
        sk_info("seckill serving on %s with %d worker threads (%s), store: %s%s%s", listen, sv.n_workers, io_name,
                store_shown, replicas_ack ? ", confirmations wait for replicas: " : "", replicas_ack ? replicas_s : "");
    else
        sk_info("seckill serving on %s with %d worker threads (%s), store: embedded (%s)", listen, sv.n_workers,
                io_name, data);

    int sig = 0;
    for (;;) {
        sigwait(&sigs, &sig);
        if (sig != SIGHUP)
            break;
        /* SIGHUP re-reads the deny list; a list with an error is refused whole and the
         * one in force stays. */
        if (!front.deny_file) {
            sk_info("received SIGHUP: nothing to reload (no --deny-file)");
        } else if (sk_api_reload_deny(sv.api, err, sizeof(err)) < 0) {
            sk_error("received SIGHUP: the deny list was NOT reloaded, the previous one stays in force: %s", err);
        } else {
            size_t ips, users;
            sk_api_deny_stats(sv.api, &ips, &users);
            sk_info("received SIGHUP: deny list %s reloaded: %zu addresses and blocks, %zu users", front.deny_file, ips,
                    users);
        }
    }
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
    free(payment_secret);
    sk_engine_free(sv.engine);
    free(sv.workers);
    if (sv.http.access_log_fd >= 0)
        close(sv.http.access_log_fd);
    sk_http_config_destroy(&sv.http);
    return exit_code;
}
