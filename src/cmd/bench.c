/* seckill-bench: floods a sale the way a crowd does, then audits the order store
 * against every answer the crowd received. The crowd is in src/loadgen/, the auditor in src/audit/. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "audit/admission.h"
#include "audit/audit.h"
#include "loadgen/controls.h"
#include "loadgen/queued.h"
#include "loadgen/report.h"
#include "loadgen/run.h"
#include "loadgen/scenario.h"
#include "loadgen/setup.h"
#include "util/common.h"

static const char usage_text[] =
    "usage: seckill-bench [options] URL[,URL...] [URL...]\n"
    "\n"
    "Floods a flash sale like a real crowd (many distinct users, a burst at the start\n"
    "instant, retries), reports every answer with its latency, then audits the order\n"
    "store against what the crowd was told. Exit status: 0 clean, 1 audit failed,\n"
    "2 bad usage or the run could not start.\n"
    "\n"
    "Targets:\n"
    "  URL                      http://host[:port][/base], one per node; several URLs\n"
    "                           (repeated or comma-separated) share the connections\n"
    "                           round-robin. --target URL is the same.\n"
    "\n"
    "The sale:\n"
    "  --create-sale SPEC       create a sale first. SPEC is key=value[,key=value...]:\n"
    "                           stock=N (1000), limit=N units per user (1), starts_in=DUR (2s),\n"
    "                           duration=DUR open window (1h), id=ID (bench-<run id>),\n"
    "                           window=DUR payment window (none: purchases are final),\n"
    "                           max_quantity=N units per order (--quantity's largest)\n"
    "  --sale ID                flood an existing sale instead\n"
    "  --admin-token T          Bearer token for creating the sale and listing its orders\n"
    "                           (default: $SECKILL_ADMIN_TOKEN)\n"
    "\n"
    "The waiting room (a sale created with queue=fifo|random, or one that has a queue):\n"
    "  --queue                  every buyer joins the queue before the start, asks for its\n"
    "                           place, and buys with its admission once admitted; the audit\n"
    "                           checks invariant I9 (below). --users buyers (1000)\n"
    "  --join-rate R            joins per second, all buyers together (500)\n"
    "  --poll-every DUR         a buyer asks for its place at most this often (250ms)\n"
    "  --bots SPEC              bots among the buyers, KIND:N (a count) or KIND:0.05 (a share\n"
    "                           of --users), comma-separated: none (no token), forged, other\n"
    "                           (another buyer's real token), expired (kept past the ttl),\n"
    "                           flood:1 (one address, 127.0.0.2 on loopback, firing purchases\n"
    "                           back to back; its 429s from --ip-rate are counted)\n"
    "  --flood-requests N       the flooding address's requests (2000, within 10 s)\n"
    "  Queue audit: bot_orders (orders of bots' users, or bot purchases answered with an\n"
    "  order), unadmitted (honest orders without or before their admission), out_of_order\n"
    "  (admissions against queue positions), oversold; random queues: |rank correlation|\n"
    "  of join order and position > 0.5 is unfair. Any of them fails the run.\n"
    "\n"
    "Load:\n"
    "  -c, --connections N      keep-alive connections in total (64)\n"
    "  -t, --threads T          client threads, each with its own event loop (1)\n"
    "  --users N                distinct buyers u1..uN (default: --requests, else 100000);\n"
    "                           every user tries once, in a shuffled order, before any\n"
    "                           user tries again\n"
    "  -n, --requests N         purchases to start, retries not counted (default: one per\n"
    "                           user; 10000 with --get)\n"
    "  -d, --duration DUR       send new requests for this long instead (e.g. 30s, 500ms)\n"
    "  --rate R                 open loop: R requests/s in total on a fixed schedule, latency\n"
    "                           measured from each request's intended send time (free of\n"
    "                           coordinated omission). Default: closed loop, each connection\n"
    "                           sends again as soon as an answer arrives\n"
    "  --pipeline K             requests in flight per connection (1)\n"
    "  --io BACKEND             the client threads' network I/O: epoll, uring or auto (io_uring\n"
    "                           where the kernel offers it, else epoll) (auto)\n"
    "  --retries N              a request answered 503, or lost to a network error or\n"
    "                           timeout, is sent again with the same request_id up to N\n"
    "                           times (3)\n"
    "  --retry-backoff MS       first retry delay, doubling up to 1 s, +-25% jitter (20)\n"
    "  --timeout DUR            a connection with requests in flight and no answer for this\n"
    "                           long is closed; its requests count as net_error (10s)\n"
    "  --burst                  open every connection first, then all fire at the sale's\n"
    "                           start instant (the flash-crowd shape). Without it the\n"
    "                           connections open at the start instant\n"
    "  --early DUR              start this long before the sale opens (those buyers hear\n"
    "                           not_started) (0)\n"
    "  --get PATH               plain GET requests to PATH instead of purchases: no sale,\n"
    "                           no audit (to compare the client with other load tools)\n"
    "  --quantity MIX           units per purchase: N, A-B (each as often), or N:W,N:W...\n"
    "                           (weights), e.g. 1:60,2:30,4:10; a retry asks for the same\n"
    "                           quantity. Default: one unit, no quantity sent\n"
    "  --controls SCRIPT        the operator's controls during the flood, each at its time\n"
    "                           after the opening: STEP,STEP... with STEP one of pause@T,\n"
    "                           resume@T, close@T, add=N@T or add=P%@T (of the stock at the\n"
    "                           start), remove=N@T or remove=P%@T, extend=DUR@T (ends_at);\n"
    "                           \"default\": pause@0.5s,resume@2.5s,add=10%@3s,extend=1h@3.5s,\n"
    "                           close@4.5s. Needs the admin token; give the flood a --duration\n"
    "                           that covers the script\n"
    "\n"
    "The order lifecycle (a sale with a payment window: every purchase is a reservation):\n"
    "  --pay P                  share of reservations paid at a random time inside the\n"
    "                           window (0.7)\n"
    "  --late L                 share paid 0.1-1 s after pay_by: must be refused (0)\n"
    "  --cancel C               share cancelled inside the window (0.1); the rest walk away\n"
    "  --payment-secret-file F  the key that signs payments (X-Seckill-Signature), as given\n"
    "                           to seckill serve; or $SECKILL_PAYMENT_SECRET; without one\n"
    "                           the admin token pays\n"
    "                           The crowd keeps buying while units come back, until every\n"
    "                           unit is sold (by default; -n or -d bound it instead; the\n"
    "                           cap is 10 windows + 60 s)\n"
    "  --poll MS                read the sale this often during the run (100; 0: never):\n"
    "                           every read must have held + sold <= stock and\n"
    "                           remaining + held + sold == stock\n"
    "  --settle DUR             after the crowd, wait at most this long for the reservations\n"
    "                           left to expire (the window + 10 s)\n"
    "\n"
    "Audit (after the flood, for purchases):\n"
    "  --audit-sqlite FILE      read the orders from the embedded store's SQLite file\n"
    "                           (<data dir>/seckill.db, read-only) instead of the service's\n"
    "                           admin listing GET /api/v1/sales/{id}/orders\n"
    "  --audit-pg URL           read the orders from a cluster's PostgreSQL (written by\n"
    "                           seckill drain), after waiting up to 60 s for it to catch\n"
    "                           up: the units the service reports sold and held, and every\n"
    "                           order named to the client\n"
    "  --audit-mysql URL        the same from a cluster's MySQL or MariaDB\n"
    "                           (mysql://USER:PASSWORD@HOST:PORT/DB)\n"
    "  --no-audit               skip the audit (exit 0 after the report)\n"
    "  --no-resolve             do not ask GET /api/v1/sales/{id}/orders/{user} about users\n"
    "                           whose request ended in doubt: an order behind a 503 then\n"
    "                           counts as phantom\n"
    "  The audit fails (exit 1, a line AUDIT FAILED: ...) on any non-zero count of:\n"
    "  oversold (units held or sold beyond stock), undersold (stock left while buyers were\n"
    "  told sold_out), lost (an order named to the client but not in the store), phantom\n"
    "  (an order in the store nobody was told of), duplicates (units beyond the per-user\n"
    "  limit, or two orders for one request_id), miscounted (an order stored with another\n"
    "  quantity than the client was told, or confirmed units that differ from the sale's\n"
    "  sold), bad_reads (a read of the sale whose counts do not add up or exceed stock).\n"
    "  When the service keeps a trail of operator controls (GET .../log), every order is\n"
    "  placed against it by its seq and created_at: while_paused (an order between a pause\n"
    "  and its resume), after_close, over_stock (more units out than the stock in effect\n"
    "  at that point of the trail) fail it too. With a payment window: late_confirmed\n"
    "  (a payment after pay_by confirmed), early_expired (expired before pay_by),\n"
    "  state_mismatch (a reservation whose final state is not what the client did),\n"
    "  not_final (still reserved at the end), returned_twice (an order's units returned\n"
    "  twice, from the SQLite journal), counts_mismatch (the sale's held and sold against\n"
    "  its orders' states), held_at_end.\n"
    "\n"
    "Output:\n"
    "  --json FILE              write every figure as JSON (\"-\": to stdout, and the\n"
    "                           human report to stderr)\n"
    "  -q, --quiet              no progress line\n"
    "  --run-id HEX             the run id put into request ids (r<run id>-<thread>-<n>);\n"
    "                           random by default\n"
    "  -h, --help               this text\n"
    "\n"
    "Outcomes counted: confirmed, reserved, duplicate, sold_out, limit_reached,\n"
    "not_started, ended, unavailable (503), rate_limited (429), http_error (any other\n"
    "answer), net_error, and ok (--get). Latency percentiles p50 p90 p99 p99.9 max per\n"
    "outcome, exact to 1%.\n"
    "A progress line is redrawn on a terminal and printed once a second otherwise.\n";

/* Lock-free, so a signal handler may store to it while client threads read it. */
static _Atomic int interrupted;

static void on_signal(int sig)
{
    /* The first signal lets the run finish and report; a second one ends it. */
    if (atomic_exchange(&interrupted, 1)) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

/* Raises the open-file limit to its hard maximum, and checks the connections fit. */
static void fit_fd_limit(uint32_t connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (uint64_t)connections + 64 > rl.rlim_cur) {
        fprintf(stderr, "seckill-bench: %u connections do not fit the open-file limit %llu (ulimit -n)\n", connections,
                (unsigned long long)rl.rlim_cur);
        exit(2);
    }
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "seckill-bench: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see seckill-bench --help)\n");
    exit(2);
}

static int64_t parse_int(const char *flag, const char *s, int64_t min, int64_t max)
{
    int64_t v;
    if (sk_parse_i64(s, strlen(s), min, max, &v) < 0) {
        fprintf(stderr, "seckill-bench: %s wants an integer in [%lld, %lld], not \"%s\"\n", flag, (long long)min,
                (long long)max, s);
        exit(2);
    }
    return v;
}

/* Parses "1500ms", "2s", "1m", "0.5s" or a bare number of seconds into ms. Returns 0 or
 * -EINVAL. */
static int parse_duration_ms(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0) || v > 1e9)
        return -EINVAL;
    double mul = 1000;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mul = 1000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return -EINVAL;
    *ms = (int64_t)llround(v * mul);
    return 0;
}

static int64_t parse_dur(const char *flag, const char *s)
{
    int64_t ms;
    if (parse_duration_ms(s, &ms) < 0) {
        fprintf(stderr, "seckill-bench: %s wants a duration like 2s, 500ms or 1m, not \"%s\"\n", flag, s);
        exit(2);
    }
    return ms;
}

static void parse_create(sk_loadgen_config_t *cfg, const char *spec)
{
    char *copy = sk_xstrndup(spec, strlen(spec));
    char *save = NULL;
    cfg->create = true;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            die_usage("--create-sale: \"%s\" is not key=value", kv);
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(kv, "stock") == 0)
            cfg->create_stock = parse_int("--create-sale stock", v, 0, INT64_C(1) << 40);
        else if (strcmp(kv, "limit") == 0)
            cfg->create_limit = parse_int("--create-sale limit", v, 1, 1000000);
        else if (strcmp(kv, "starts_in") == 0)
            cfg->create_starts_in_ms = parse_dur("--create-sale starts_in", v);
        else if (strcmp(kv, "duration") == 0)
            cfg->create_duration_ms = parse_dur("--create-sale duration", v);
        else if (strcmp(kv, "id") == 0 && *v)
            cfg->create_id = sk_xstrndup(v, strlen(v)); /* lives for the whole run */
        else if (strcmp(kv, "window") == 0)
            cfg->create_window_ms = parse_dur("--create-sale window", v);
        else if (strcmp(kv, "max_quantity") == 0)
            cfg->create_max_quantity = parse_int("--create-sale max_quantity", v, 1, 1000000);
        else if (strcmp(kv, "queue") == 0 && (strcmp(v, "fifo") == 0 || strcmp(v, "random") == 0))
            cfg->create_queue = strcmp(v, "fifo") == 0 ? "fifo" : "random";
        else if (strcmp(kv, "admit") == 0)
            cfg->create_admit = parse_int("--create-sale admit", v, 1, 1000000);
        else if (strcmp(kv, "ttl") == 0)
            cfg->create_ttl_ms = parse_dur("--create-sale ttl", v);
        else
            die_usage("--create-sale: unknown key \"%s\" (stock, limit, starts_in, duration, id, window, "
                      "max_quantity, queue=fifo|random, admit, ttl)",
                      kv);
    }
    free(copy);
}

static double parse_share(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= 0 && v <= 1))
        die_usage("%s wants a share from 0 to 1, not \"%s\"", flag, s);
    return v;
}

/* The payment key: the file without one trailing newline, or $SECKILL_PAYMENT_SECRET. */
static unsigned char *read_payment_key(const char *file, size_t *len)
{
    const char *env = getenv("SECKILL_PAYMENT_SECRET");
    if (!file) {
        if (!env || !*env)
            return NULL;
        *len = strlen(env);
        return (unsigned char *)sk_xstrndup(env, *len);
    }
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "seckill-bench: cannot read %s: %s\n", file, strerror(errno));
        exit(2);
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n == 0) {
        fprintf(stderr, "seckill-bench: %s is empty\n", file);
        exit(2);
    }
    *len = n;
    return (unsigned char *)sk_xstrndup(buf, n);
}

static void add_targets(sk_loadgen_config_t *cfg, const char *list)
{
    char *copy = sk_xstrndup(list, strlen(list));
    char *save = NULL;
    for (char *u = strtok_r(copy, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        char err[256];
        cfg->targets = sk_xrealloc(cfg->targets, (cfg->ntargets + 1) * sizeof(*cfg->targets));
        if (sk_loadgen_target_parse(u, &cfg->targets[cfg->ntargets], err, sizeof(err)) < 0) {
            fprintf(stderr, "seckill-bench: %s\n", err);
            exit(2);
        }
        cfg->ntargets++;
    }
    free(copy);
}

enum {
    OPT_USERS = 256,
    OPT_RATE,
    OPT_PIPELINE,
    OPT_RETRIES,
    OPT_BACKOFF,
    OPT_TIMEOUT,
    OPT_BURST,
    OPT_EARLY,
    OPT_GET,
    OPT_CREATE,
    OPT_SALE,
    OPT_TOKEN,
    OPT_JSON,
    OPT_SQLITE,
    OPT_PG,
    OPT_MYSQL,
    OPT_NO_AUDIT,
    OPT_NO_RESOLVE,
    OPT_RUN_ID,
    OPT_TARGET,
    OPT_PAY,
    OPT_LATE,
    OPT_CANCEL,
    OPT_PAY_KEY,
    OPT_QUANTITY,
    OPT_POLL,
    OPT_SETTLE,
    OPT_CONTROLS,
    OPT_IO,
    OPT_QUEUE,
    OPT_BOTS,
    OPT_JOIN_RATE,
    OPT_POLL_EVERY,
    OPT_FLOOD,
};

/* --queue: the queued crowd and its bots, then the waiting room's audit (I9). */
static int run_queued(const sk_loadgen_config_t *cfg, sk_loadgen_qcfg_t *q, const sk_loadgen_sale_t *sale,
                      const char *sqlite_path, bool no_audit)
{
    char err[512];
    if (!q->cap_ms) {
        int64_t to_start = sale->starts_at - (sk_now_ms() + sale->clock_offset_ms);
        /* Room for the joins, the admissions at the sale's rate and a ttl or two. */
        q->cap_ms =
            cfg->duration_ms ? cfg->duration_ms : (uint64_t)(SK_MAX(to_start, 0) + 120000 + (int64_t)cfg->users * 20);
    }
    sk_loadgen_qres_t res;
    if (sk_loadgen_queue_run(cfg, q, sale, &res, err, sizeof(err)) < 0) {
        fprintf(stderr, "seckill-bench: %s\n", err);
        return 2;
    }
    int status = 0;
    sk_audit_queue_t a;
    memset(&a, 0, sizeof(a));
    a.ok = true;
    if (!no_audit) {
        sk_audit_source_t *src = sqlite_path ? sk_audit_source_sqlite(sqlite_path, err, sizeof(err))
                                             : sk_audit_source_http(&cfg->targets[0], cfg->admin_token);
        if (!src || sk_audit_queue_run(sale, &res, src, &a, err, sizeof(err)) < 0) {
            fprintf(stdout, "\n!!!!! QUEUE AUDIT FAILED: the order store could not be read: %s !!!!!\n", err);
            status = 1;
        }
        if (src)
            src->close(src);
    }
    if (status == 0) {
        sk_audit_queue_report(stdout, &res, &a);
        if (!a.ok)
            status = 1;
    }
    fflush(stdout);
    sk_loadgen_qres_free(&res);
    return status;
}

int main(int argc, char **argv)
{
    uint64_t t_phase = sk_mono_ns();
    static const struct option opts[] = {
        {"connections", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"requests", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'd'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"users", required_argument, NULL, OPT_USERS},
        {"rate", required_argument, NULL, OPT_RATE},
        {"pipeline", required_argument, NULL, OPT_PIPELINE},
        {"retries", required_argument, NULL, OPT_RETRIES},
        {"retry-backoff", required_argument, NULL, OPT_BACKOFF},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"burst", no_argument, NULL, OPT_BURST},
        {"early", required_argument, NULL, OPT_EARLY},
        {"get", required_argument, NULL, OPT_GET},
        {"create-sale", required_argument, NULL, OPT_CREATE},
        {"sale", required_argument, NULL, OPT_SALE},
        {"admin-token", required_argument, NULL, OPT_TOKEN},
        {"json", required_argument, NULL, OPT_JSON},
        {"audit-sqlite", required_argument, NULL, OPT_SQLITE},
        {"audit-pg", required_argument, NULL, OPT_PG},
        {"audit-mysql", required_argument, NULL, OPT_MYSQL},
        {"no-audit", no_argument, NULL, OPT_NO_AUDIT},
        {"no-resolve", no_argument, NULL, OPT_NO_RESOLVE},
        {"run-id", required_argument, NULL, OPT_RUN_ID},
        {"target", required_argument, NULL, OPT_TARGET},
        {"pay", required_argument, NULL, OPT_PAY},
        {"late", required_argument, NULL, OPT_LATE},
        {"cancel", required_argument, NULL, OPT_CANCEL},
        {"payment-secret-file", required_argument, NULL, OPT_PAY_KEY},
        {"quantity", required_argument, NULL, OPT_QUANTITY},
        {"poll", required_argument, NULL, OPT_POLL},
        {"settle", required_argument, NULL, OPT_SETTLE},
        {"controls", required_argument, NULL, OPT_CONTROLS},
        {"io", required_argument, NULL, OPT_IO},
        {"queue", no_argument, NULL, OPT_QUEUE},
        {"bots", required_argument, NULL, OPT_BOTS},
        {"join-rate", required_argument, NULL, OPT_JOIN_RATE},
        {"poll-every", required_argument, NULL, OPT_POLL_EVERY},
        {"flood-requests", required_argument, NULL, OPT_FLOOD},
        {NULL, 0, NULL, 0},
    };
    sk_loadgen_config_t cfg = {
        .connections = 64,
        .threads = 1,
        .pipeline = 1,
        .retries = 3,
        .retry_backoff_ms = 20,
        .timeout_ms = 10000,
        .create_stock = 1000,
        .create_limit = 1,
        .create_starts_in_ms = 2000,
        .create_duration_ms = 3600000,
        .create_window_ms = -1,
        .pay_share = 0.7,
        .cancel_share = 0.1,
        .poll_ms = 100,
        .interrupted = &interrupted,
    };
    const char *json_path = NULL, *sqlite_path = NULL, *pg_url = NULL, *mysql_url = NULL, *pay_key_file = NULL;
    bool no_audit = false, no_resolve = false, users_set = false, limit_set = false, shares_set = false,
         settle_set = false;
    sk_loadgen_controls_t controls = {0};
    sk_loadgen_qcfg_t qcfg = {.join_rate = 500, .poll_ms = 250, .threads = 4, .flood_requests = 2000};
    const char *controls_spec = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:t:n:d:qh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cfg.connections = (uint32_t)parse_int("-c", optarg, 1, 1000000);
            break;
        case 't':
            cfg.threads = (uint32_t)parse_int("--threads", optarg, 1, 256);
            break;
        case 'n':
            cfg.requests = (uint64_t)parse_int("--requests", optarg, 1, INT64_C(1) << 50);
            break;
        case 'd':
            cfg.duration_ms = (uint64_t)parse_dur("--duration", optarg);
            if (cfg.duration_ms == 0)
                die_usage("--duration must be more than 0");
            break;
        case 'q':
            cfg.quiet = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case OPT_USERS:
            cfg.users = (uint32_t)parse_int("--users", optarg, 1, INT32_MAX);
            users_set = true;
            break;
        case OPT_RATE: {
            char *end;
            errno = 0;
            cfg.rate = strtod(optarg, &end);
            if (end == optarg || *end || errno || !(cfg.rate > 0) || cfg.rate > 1e9)
                die_usage("--rate wants requests per second (> 0), not \"%s\"", optarg);
            break;
        }
        case OPT_PIPELINE:
            cfg.pipeline = (uint32_t)parse_int("--pipeline", optarg, 1, 1024);
            break;
        case OPT_IO:
            if (sk_loop_io_parse(optarg, &cfg.io) < 0)
                die_usage("--io must be epoll, uring or auto, not \"%s\"", optarg);
            break;
        case OPT_RETRIES:
            cfg.retries = (uint32_t)parse_int("--retries", optarg, 0, 1000);
            break;
        case OPT_BACKOFF:
            cfg.retry_backoff_ms = (uint32_t)parse_int("--retry-backoff", optarg, 0, 60000);
            break;
        case OPT_TIMEOUT:
            cfg.timeout_ms = (uint32_t)parse_dur("--timeout", optarg);
            if (cfg.timeout_ms < 10)
                die_usage("--timeout must be at least 10ms, not %s", optarg);
            break;
        case OPT_BURST:
            cfg.burst = true;
            break;
        case OPT_EARLY:
            cfg.early_ms = (uint64_t)parse_dur("--early", optarg);
            break;
        case OPT_GET:
            if (optarg[0] != '/')
                die_usage("--get wants a path starting with '/', not \"%s\"", optarg);
            cfg.get_path = optarg;
            break;
        case OPT_CREATE:
            parse_create(&cfg, optarg);
            limit_set = strstr(optarg, "limit=") != NULL;
            break;
        case OPT_SALE:
            cfg.sale_id = optarg;
            break;
        case OPT_TOKEN:
            cfg.admin_token = optarg;
            break;
        case OPT_JSON:
            json_path = optarg;
            break;
        case OPT_SQLITE:
            sqlite_path = optarg;
            break;
        case OPT_PG:
            pg_url = optarg;
            break;
        case OPT_MYSQL:
            mysql_url = optarg;
            break;
        case OPT_NO_AUDIT:
            no_audit = true;
            break;
        case OPT_NO_RESOLVE:
            no_resolve = true;
            break;
        case OPT_RUN_ID: {
            size_t n = strlen(optarg);
            if (n == 0 || n >= sizeof(cfg.run_id) || strspn(optarg, "0123456789abcdef") != n)
                die_usage("--run-id wants 1 to 15 lower-case hex digits, not \"%s\"", optarg);
            memcpy(cfg.run_id, optarg, n + 1);
            break;
        }
        case OPT_TARGET:
            add_targets(&cfg, optarg);
            break;
        case OPT_PAY:
            cfg.pay_share = parse_share("--pay", optarg);
            shares_set = true;
            break;
        case OPT_LATE:
            cfg.late_share = parse_share("--late", optarg);
            shares_set = true;
            break;
        case OPT_CANCEL:
            cfg.cancel_share = parse_share("--cancel", optarg);
            shares_set = true;
            break;
        case OPT_PAY_KEY:
            pay_key_file = optarg;
            break;
        case OPT_POLL:
            cfg.poll_ms = (uint32_t)parse_int("--poll", optarg, 0, 60000);
            break;
        case OPT_SETTLE:
            cfg.settle_ms = (uint64_t)parse_dur("--settle", optarg);
            settle_set = true;
            break;
        case OPT_QUANTITY: {
            char qerr[256];
            if (sk_loadgen_qty_parse(optarg, &cfg.qty, qerr, sizeof(qerr)) < 0)
                die_usage("%s", qerr);
            break;
        }
        case OPT_QUEUE:
            qcfg.on = true;
            break;
        case OPT_BOTS: {
            char berr[256];
            if (sk_loadgen_bots_parse(&qcfg, optarg, berr, sizeof(berr)) < 0)
                die_usage("%s", berr);
            break;
        }
        case OPT_JOIN_RATE:
            qcfg.join_rate = (double)parse_int("--join-rate", optarg, 1, 1000000);
            break;
        case OPT_POLL_EVERY:
            qcfg.poll_ms = (uint32_t)parse_dur("--poll-every", optarg);
            break;
        case OPT_FLOOD:
            qcfg.flood_requests = (uint32_t)parse_int("--flood-requests", optarg, 1, 10000000);
            break;
        case OPT_CONTROLS: {
            char cerr[512];
            if (sk_loadgen_controls_parse(optarg, &controls, cerr, sizeof(cerr)) < 0)
                die_usage("%s", cerr);
            controls_spec = optarg;
            break;
        }
        default:
            fprintf(stderr, "(see seckill-bench --help)\n");
            return 2;
        }
    }
    for (int i = optind; i < argc; i++)
        add_targets(&cfg, argv[i]);
    if (cfg.ntargets == 0)
        die_usage("no target URL given");
    if (cfg.get_path && (cfg.create || cfg.sale_id))
        die_usage("--get does not combine with a sale");
    if (!cfg.get_path && !cfg.create && !cfg.sale_id)
        die_usage("give --create-sale SPEC, --sale ID or --get PATH");
    if (cfg.create && cfg.sale_id)
        die_usage("--create-sale and --sale exclude each other");
    if (cfg.requests && cfg.duration_ms)
        die_usage("--requests and --duration exclude each other");
    if (cfg.pay_share + cfg.late_share + cfg.cancel_share > 1.0 + 1e-9)
        die_usage("--pay, --late and --cancel add up to more than 1");
    size_t pay_key_len = 0;
    unsigned char *pay_key = read_payment_key(pay_key_file, &pay_key_len);
    cfg.payment_key = pay_key;
    cfg.payment_key_len = pay_key_len;
    if (!!sqlite_path + !!pg_url + !!mysql_url > 1)
        die_usage("--audit-sqlite, --audit-pg and --audit-mysql exclude each other");
    if (controls_spec && cfg.get_path)
        die_usage("--controls needs a sale, not --get");
    /* A sale created for a mix of quantities takes its largest, and a buyer may hold it. */
    if (cfg.create && cfg.qty.max > 1 && !cfg.create_max_quantity)
        cfg.create_max_quantity = cfg.qty.max;
    if (cfg.create && !limit_set && cfg.create_max_quantity > cfg.create_limit)
        cfg.create_limit = cfg.create_max_quantity;
    if (qcfg.on && (controls_spec || cfg.get_path || cfg.lifecycle || shares_set))
        die_usage("--queue does not combine with --get, --controls or the payment shares");
    for (int k = 1; k < SK_BOT__COUNT && !qcfg.on; k++)
        if (qcfg.bot_count[k] || qcfg.bot_share[k] > 0)
            die_usage("--bots needs --queue");
    if (qcfg.on && !users_set)
        cfg.users = 1000;
    if (!users_set)
        cfg.users = cfg.requests ? (uint32_t)SK_MIN(cfg.requests, (uint64_t)INT32_MAX) : 100000;
    if (!cfg.admin_token) {
        const char *env = getenv("SECKILL_ADMIN_TOKEN");
        if (env && *env)
            cfg.admin_token = env;
    }
    if (!cfg.run_id[0]) {
        uint32_t r = 0;
        if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
            r = (uint32_t)(sk_mono_ns() ^ (uint64_t)getpid() << 16);
        snprintf(cfg.run_id, sizeof(cfg.run_id), "%08x", r);
    }

    fit_fd_limit(cfg.connections);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    int status = 0;
    sk_loadgen_sale_t sale = {0};
    if (!cfg.get_path) {
        if (sk_loadgen_setup_sale(&cfg, &sale, err, sizeof(err)) < 0) {
            fprintf(stderr, "seckill-bench: %s\n", err);
            free(sale.id);
            free(sale.name);
            status = 2;
            goto out;
        }
        if (!cfg.quiet)
            fprintf(stderr, "sale %s%s: stock %lld, per-user limit %lld, state %s\n", sale.id,
                    sale.created ? " created" : "", (long long)sale.stock, (long long)sale.limit,
                    sale.state[0] ? sale.state : "?");
        cfg.lifecycle = sale.window_ms > 0;
        if (!cfg.lifecycle && shares_set) {
            fprintf(stderr, "seckill-bench: --pay, --late and --cancel need a sale with a payment window "
                            "(--create-sale window=20s)\n");
            status = 2;
            goto out_sale;
        }
        uint32_t qmax = cfg.qty.max ? cfg.qty.max : 1;
        if ((int64_t)qmax > sale.max_quantity) {
            fprintf(stderr, "seckill-bench: --quantity asks for %u units, the sale's max_quantity is %lld\n", qmax,
                    (long long)sale.max_quantity);
            status = 2;
            goto out_sale;
        }
        if (cfg.lifecycle) {
            if (cfg.pay_share + cfg.late_share > 0 && !cfg.payment_key && !cfg.admin_token) {
                fprintf(stderr, "seckill-bench: to pay, give --payment-secret-file (the key of seckill serve "
                                "--payment-secret-file) or --admin-token\n");
                status = 2;
                goto out_sale;
            }
            /* Until every unit is sold, within a cap: a service that never sells them
             * all must not keep the crowd forever. */
            if (!cfg.requests && !cfg.duration_ms)
                cfg.duration_ms = (uint64_t)(10 * sale.window_ms + 60000);
            if (!settle_set)
                cfg.settle_ms = (uint64_t)sale.window_ms + 10000;
            if (!cfg.quiet)
                fprintf(stderr,
                        "lifecycle: payment window %lld ms; of the reservations %.0f%% pay, %.0f%% pay late, "
                        "%.0f%% cancel, %.0f%% walk away\n",
                        (long long)sale.window_ms, cfg.pay_share * 100, cfg.late_share * 100, cfg.cancel_share * 100,
                        (1 - cfg.pay_share - cfg.late_share - cfg.cancel_share) * 100);
        }
    }
    if (qcfg.on) {
        status = run_queued(&cfg, &qcfg, &sale, sqlite_path, no_audit);
        goto out_sale;
    }
    if (controls_spec && sk_loadgen_controls_start(&controls, &cfg, &sale) < 0) {
        fprintf(stderr, "seckill-bench: cannot start the controls' thread\n");
        status = 2;
        goto out;
    }
    sk_loadgen_phases_t setup = {0};
    sk_loadgen_phase(&setup, "the sale's set-up", &t_phase, 0);
    sk_loadgen_results_t res;
    int run_rc = sk_loadgen_run(&cfg, &sale, &res, err, sizeof(err));
    t_phase = sk_mono_ns();
    sk_loadgen_controls_join(&controls);
    if (run_rc < 0) {
        fprintf(stderr, "seckill-bench: %s\n", err);
        res.sale = sale;
        sk_loadgen_results_free(&res);
        status = 2;
        goto out;
    }
    res.sale = sale; /* the results own the sale's strings from here */
    if (res.phases.n < SK_LOADGEN_PHASES_MAX) {
        memmove(&res.phases.at[1], &res.phases.at[0], res.phases.n * sizeof(res.phases.at[0]));
        res.phases.at[0] = setup.at[0];
        res.phases.n++;
    }
    /* With --json - the JSON alone goes to stdout, so it stays parseable. */
    FILE *human = json_path && strcmp(json_path, "-") == 0 ? stderr : stdout;
    sk_loadgen_report_print(human, &cfg, &res);
    if (controls_spec) {
        sk_loadgen_controls_report(human, &controls);
        if (!sk_loadgen_controls_ok(&controls)) {
            fprintf(human, "!!!!! CONTROLS FAILED: not every step of the script was applied !!!!!\n");
            status = 1;
        }
    }
    fflush(human);

    sk_audit_t audit;
    bool audited = false;
    char audit_err[512] = "";
    if (!cfg.get_path && !no_audit) {
        sk_audit_source_t *src;
        if (sqlite_path)
            src = sk_audit_source_sqlite(sqlite_path, audit_err, sizeof(audit_err));
        else if (pg_url)
            src = sk_audit_source_pg(pg_url, &cfg.targets[0], 60000, audit_err, sizeof(audit_err));
        else if (mysql_url)
            src = sk_audit_source_mysql(mysql_url, &cfg.targets[0], 60000, audit_err, sizeof(audit_err));
        else
            src = sk_audit_source_http(&cfg.targets[0], cfg.admin_token);
        if (src) {
            sk_audit_input_t in = {
                .sale = &res.sale,
                .res = &res,
                .run_id = cfg.run_id,
                .targets = cfg.targets,
                .ntargets = cfg.ntargets,
                .admin_token = cfg.admin_token,
                .resolve = !no_resolve,
                .lifecycle = cfg.lifecycle,
                .single_units = sk_loadgen_qty_min(&cfg.qty) == 1,
            };
            if (sk_audit_run(&in, src, &audit, audit_err, sizeof(audit_err)) == 0)
                audited = true;
            src->close(src);
        }
        sk_loadgen_phase(&res.phases, "the audit", &t_phase, 0);
        if (audited) {
            sk_loadgen_report_audit(human, &audit);
            sk_loadgen_report_phases(human, "the audit's time", &audit.times);
            if (!audit.ok)
                status = 1;
        } else {
            fprintf(human, "\n!!!!! AUDIT FAILED: the order store could not be read: %s !!!!!\n", audit_err);
            status = 1;
        }
    }
    sk_loadgen_report_phases(human, "the run's time", &res.phases);
    fflush(human);
    if (json_path) {
        int rc =
            sk_loadgen_report_json(json_path, &cfg, &res, audited ? &audit : NULL, audit_err[0] ? audit_err : NULL);
        if (rc < 0) {
            fprintf(stderr, "seckill-bench: cannot write %s: %s\n", json_path, strerror(-rc));
            if (status == 0)
                status = 2;
        }
    }
    sk_loadgen_results_free(&res);
    goto out;
out_sale: /* the run did not start: the sale's strings are still ours */
    free(sale.id);
    free(sale.name);
out:
    for (size_t i = 0; i < cfg.ntargets; i++)
        sk_loadgen_target_free(&cfg.targets[i]);
    free(cfg.targets);
    free((char *)cfg.create_id);
    free(pay_key);
    return status;
}
