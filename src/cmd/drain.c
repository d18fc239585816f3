/* `seckill drain`: parses the options and runs the drain (src/drain/drain.h). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "drain/drain.h"
#include "util/common.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fputs("usage: seckill drain --store redis://HOST:PORT[/DB] --db DATABASE-URL [options]\n"
          "\n"
          "Moves confirmed orders from the Redis order streams into PostgreSQL or MySQL/MariaDB\n"
          "(the system of record of a cluster): a consumer group reads every sale's stream,\n"
          "each batch is written in one transaction, then acknowledged. Applies the schema\n"
          "migrations first.\n"
          "\n"
          "options (environment variable in brackets):\n"
          "  --store URL             the cluster's Redis [SECKILL_STORE]\n"
          "  --db URL                PostgreSQL, e.g. postgresql://user@host:5432/seckill, or\n"
          "                          MySQL/MariaDB, mysql://user:password@host:3306/seckill\n"
          "                          [SECKILL_DB] (a password is better in the variable: ps\n"
          "                          shows a command line)\n"
          "  --metrics-listen H:P    serve /metrics and /healthz there [SECKILL_METRICS_LISTEN] (off)\n"
          "  --consumer NAME         consumer name in the group [SECKILL_CONSUMER] (the host name);\n"
          "                          give every drain of a cluster its own\n"
          "  --batch N               orders per transaction [SECKILL_DRAIN_BATCH] (2000)\n"
          "  --log-level LEVEL       debug, info, warn or error [SECKILL_LOG_LEVEL] (info)\n"
          "  -h, --help              show this text\n",
          f);
}

int sk_cmd_drain(int argc, char **argv)
{
    const char *store = NULL, *db = NULL, *metrics_listen = NULL, *consumer = NULL, *batch_s = NULL, *log_level = NULL;
    const sk_cmd_opt_t opts[] = {
        {"store", "STORE", &store, 0},
        {"db", "DB", &db, 0},
        {"metrics-listen", "METRICS_LISTEN", &metrics_listen, 0},
        {"consumer", "CONSUMER", &consumer, 0},
        {"batch", "DRAIN_BATCH", &batch_s, 0},
        {"log-level", "LOG_LEVEL", &log_level, 0},
    };
    int prc = sk_cmd_parse("drain", argc, argv, opts, SK_ARRAY_LEN(opts), usage);
    if (prc)
        return prc == 1 ? 0 : 2;
    if (!store || !db) {
        fprintf(stderr, "seckill drain: --store redis://... and --db postgresql://... (or mysql://...) are required\n");
        return 2;
    }
    sk_drain_config_t cfg = {.db_url = db};
    char err[512];
    if (sk_redis_parse_url(store, &cfg.redis, err, sizeof(err)) < 0) {
        fprintf(stderr, "seckill drain: %s\n", err);
        return 2;
    }
    if (!(cfg.db = sk_db_driver(db, err, sizeof(err)))) {
        fprintf(stderr, "seckill drain: --db: %s\n", err);
        return 2;
    }
    int64_t batch = 2000;
    if (batch_s && sk_parse_i64(batch_s, strlen(batch_s), 1, 100000, &batch) < 0) {
        fprintf(stderr, "seckill drain: --batch must be an integer from 1 to 100000\n");
        return 2;
    }
    cfg.batch_max = (size_t)batch;
    if (log_level) {
        int lv = sk_log_level_parse(log_level);
        if (lv < 0) {
            fprintf(stderr, "seckill drain: --log-level must be debug, info, warn or error\n");
            return 2;
        }
        sk_log_level = (sk_log_level_t)lv;
    }
    char host[128] = "drain";
    if (!consumer) {
        if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
            snprintf(host, sizeof(host), "drain");
        consumer = host;
    }
    cfg.consumer = consumer;
    char metrics_host[256];
    if (metrics_listen) {
        if (sk_cmd_split_hostport(metrics_listen, metrics_host, sizeof(metrics_host), &cfg.metrics_port) < 0) {
            fprintf(stderr, "seckill drain: --metrics-listen must be HOST:PORT (got '%s')\n", metrics_listen);
            return 1;
        }
        cfg.metrics_host = metrics_host;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    sk_drain_t *d = sk_drain_new(&cfg, err, sizeof(err));
    if (!d) {
        fprintf(stderr, "seckill drain: %s\n", err);
        return 1;
    }
    printf("draining redis at %s:%d/%d into %s as consumer '%s'%s%s\n", cfg.redis.host, cfg.redis.port, cfg.redis.db,
           cfg.db->title, consumer, metrics_listen ? ", metrics on http://" : "", metrics_listen ? metrics_listen : "");
    fflush(stdout);
    int rc = sk_drain_run(d, &g_stop);
    sk_drain_free(d);
    return rc;
}
