/* The queued crowd: buyers who wait in the sale's queue and buy with their admission,
 * and the bots beside them (queued.h). Blocking requests, one keep-alive connection per
 * thread: a waiting room's traffic is paced by the service, not by the client. */
#include "loadgen/queued.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loadgen/fetch.h"
#include "util/common.h"

static const char *const bot_names[SK_BOT__COUNT] = {"honest", "none", "forged", "other", "expired", "flood"};
static const char bot_prefix[SK_BOT__COUNT] = {'u', 'n', 'g', 'o', 'x', 'f'};

const char *sk_loadgen_bot_name(sk_bot_kind_t k)
{
    return k < SK_BOT__COUNT ? bot_names[k] : "?";
}

int sk_loadgen_bots_parse(sk_loadgen_qcfg_t *q, const char *spec, char *err, size_t err_len)
{
    char *copy = sk_xstrndup(spec, strlen(spec)), *save = NULL;
    int rc = 0;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(kv, ':');
        int k = 0;
        if (colon) {
            *colon = '\0';
            for (int i = 1; i < SK_BOT__COUNT; i++)
                if (strcmp(kv, bot_names[i]) == 0)
                    k = i;
        }
        char *end = NULL;
        double v = colon ? strtod(colon + 1, &end) : -1;
        if (!k || !end || *end || end == colon + 1 || v < 0 || v > 1000000) {
            snprintf(err, err_len, "--bots: \"%s\" is not KIND:N (none, forged, other, expired, flood)", kv);
            rc = -1;
            break;
        }
        /* "0.05" is a share of --users, "5" a count. */
        if (strchr(colon + 1, '.') && v < 1)
            q->bot_share[k] = v;
        else
            q->bot_count[k] = (uint32_t)v;
    }
    free(copy);
    return rc;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

typedef struct qrun qrun_t;
typedef struct {
    qrun_t *run;
    int index;
    pthread_t thread;
} qthread_t;

struct qrun {
    const sk_loadgen_config_t *cfg;
    const sk_loadgen_qcfg_t *q;
    const sk_loadgen_sale_t *sale;
    sk_loadgen_qres_t *res;
    char *queue_path, *buy_path;
    uint32_t nthreads;
    int64_t t0; /* our clock at the first join */
    int64_t deadline; /* our clock */
    _Atomic uint32_t join_seq;
    _Atomic uint64_t joins, polls, purchases, rate_limited, errors;
    _Atomic int honest_left; /* honest buyers not finished */
    pthread_mutex_t mu; /* guards the tokens "other" bots borrow */
};

static int64_t server_now(const qrun_t *r)
{
    return wall_ms() + r->sale->clock_offset_ms;
}

static bool interrupted(const qrun_t *r)
{
    return (r->cfg->interrupted && atomic_load(r->cfg->interrupted)) || wall_ms() >= r->deadline;
}

/* Reads the queue's answer into the buyer. Returns its state's name in st. */
static void read_queue_answer(qrun_t *r, sk_qbuyer_t *b, const char *body, size_t len)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    if (!o)
        return;
    json_t *v;
    if ((v = json_object_get(o, "position")) && json_is_integer(v))
        b->position = json_integer_value(v);
    if ((v = json_object_get(o, "state")) && json_is_string(v))
        snprintf(b->final_state, sizeof(b->final_state), "%s", json_string_value(v));
    v = json_object_get(o, "admission");
    if (v && json_is_string(v) && !b->admitted_at) {
        snprintf(b->token, sizeof(b->token), "%s", json_string_value(v));
        json_t *e = json_object_get(o, "admission_expires_at");
        if (e && json_is_integer(e)) {
            b->expires_at = json_integer_value(e);
            b->admitted_at = b->expires_at - r->res->ttl_ms;
        }
    }
    json_decref(o);
}

/* Sends one purchase for b with token tok (NULL: none) and records its answer. */
static void buy(qrun_t *r, sk_loadgen_fetch_t *f, sk_qbuyer_t *b, const char *tok)
{
    char rid[64];
    snprintf(rid, sizeof(rid), "r%s-q-%s", r->cfg->run_id, b->user);
    json_t *body = json_pack("{s:s, s:s}", "user_id", b->user, "request_id", rid);
    if (tok)
        json_object_set_new(body, "admission", json_string(tok));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    b->buy_ms = server_now(r);
    int st = -1;
    for (uint32_t a = 0; a <= r->cfg->retries; a++) {
        st = sk_loadgen_fetch(f, "POST", r->buy_path, text);
        if (st == 429)
            atomic_fetch_add(&r->rate_limited, 1);
        if (st > 0 && st != 503 && st != 429)
            break;
        sleep_ms(r->cfg->retry_backoff_ms ? r->cfg->retry_backoff_ms : 100);
    }
    free(text);
    atomic_fetch_add(&r->purchases, 1);
    b->bought_ms = server_now(r);
    b->status = st;
    b->result[0] = '\0';
    if (st > 0) {
        json_t *o = json_loadb(f->body, f->body_len, 0, NULL);
        json_t *v = o ? json_object_get(o, "result") : NULL;
        if (!v || !json_is_string(v))
            v = o ? json_object_get(o, "error") : NULL;
        if (v && json_is_string(v))
            snprintf(b->result, sizeof(b->result), "%s", json_string_value(v));
        json_decref(o);
    } else {
        atomic_fetch_add(&r->errors, 1);
        snprintf(b->result, sizeof(b->result), "no_answer");
    }
}

/* POST .../queue for b: a join the first time, a poll after. Returns the status. */
static int ask_queue(qrun_t *r, sk_loadgen_fetch_t *f, sk_qbuyer_t *b)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", b->user);
    int st = sk_loadgen_fetch(f, "POST", r->queue_path, body);
    if (st == 202)
        read_queue_answer(r, b, f->body, f->body_len);
    else if (st == 429)
        atomic_fetch_add(&r->rate_limited, 1);
    else
        atomic_fetch_add(&r->errors, 1);
    return st;
}

static bool queued_kind(uint8_t k)
{
    return k == SK_BOT_HONEST || k == SK_BOT_EXPIRED;
}

static void *buyers_main(void *arg)
{
    qthread_t *t = arg;
    qrun_t *r = t->run;
    sk_loadgen_qres_t *res = r->res;
    sk_loadgen_fetch_t f;
    sk_loadgen_fetch_init(&f, &r->cfg->targets[t->index % r->cfg->ntargets], NULL, (int)r->cfg->timeout_ms);
    /* Joins, paced in total: join k goes out at t0 + k / join_rate. */
    for (size_t i = (size_t)t->index; i < res->n && !interrupted(r); i += r->nthreads) {
        sk_qbuyer_t *b = &res->b[i];
        if (!queued_kind(b->kind))
            continue;
        uint32_t k = atomic_fetch_add(&r->join_seq, 1);
        sleep_ms(r->t0 + (int64_t)(k * 1000.0 / r->q->join_rate) - wall_ms());
        b->join_seq = k;
        b->join_ms = server_now(r);
        b->pre_queue = b->join_ms < r->sale->starts_at;
        for (int a = 0; a < 20 && !interrupted(r); a++) {
            int st = ask_queue(r, &f, b);
            atomic_fetch_add(&r->joins, 1);
            if (st == 202) {
                b->joined = true;
                break;
            }
            sleep_ms(st == 425 ? 200 : 100);
        }
        if (!b->joined && b->kind == SK_BOT_HONEST)
            atomic_fetch_sub(&r->honest_left, 1);
    }
    /* Polls and purchases, until every buyer of the thread is done. */
    size_t mine = 0;
    for (size_t i = (size_t)t->index; i < res->n; i += r->nthreads)
        if (queued_kind(res->b[i].kind) && res->b[i].joined)
            mine++;
    int64_t *next = sk_xcalloc(res->n / r->nthreads + 2, sizeof(int64_t));
    int64_t *buy_at = sk_xcalloc(res->n / r->nthreads + 2, sizeof(int64_t));
    bool *done = sk_xcalloc(res->n / r->nthreads + 2, sizeof(bool));
    while (mine > 0 && !interrupted(r)) {
        int64_t soonest = wall_ms() + 1000;
        size_t j = 0;
        for (size_t i = (size_t)t->index; i < res->n; i += r->nthreads, j++) {
            sk_qbuyer_t *b = &res->b[i];
            if (done[j] || !queued_kind(b->kind) || !b->joined)
                continue;
            int64_t now = wall_ms();
            if (b->admitted_at) {
                /* The expired bot keeps its token past its expiry, then buys. */
                if (!buy_at[j])
                    buy_at[j] = b->kind == SK_BOT_EXPIRED ? b->expires_at - r->sale->clock_offset_ms + 300 : now;
                if (now < buy_at[j]) {
                    soonest = buy_at[j] < soonest ? buy_at[j] : soonest;
                    continue;
                }
                buy(r, &f, b, b->token);
                done[j] = true;
                mine--;
                if (b->kind == SK_BOT_HONEST)
                    atomic_fetch_sub(&r->honest_left, 1);
                continue;
            }
            if (now >= next[j]) {
                ask_queue(r, &f, b);
                b->polls++;
                atomic_fetch_add(&r->polls, 1);
                if (!b->admitted_at &&
                    (strcmp(b->final_state, "sold_out") == 0 || strcmp(b->final_state, "ended") == 0)) {
                    done[j] = true;
                    mine--;
                    if (b->kind == SK_BOT_HONEST)
                        atomic_fetch_sub(&r->honest_left, 1);
                    continue;
                }
                /* Before the start nothing moves: ask again near it. */
                int64_t wait = r->q->poll_ms;
                int64_t to_start = r->sale->starts_at - server_now(r);
                if (to_start > wait)
                    wait = to_start < 2000 ? to_start : 2000;
                next[j] = wall_ms() + wait;
            }
            if (next[j] < soonest)
                soonest = next[j];
        }
        sleep_ms(soonest - wall_ms());
    }
    free(next);
    free(buy_at);
    free(done);
    sk_loadgen_fetch_close(&f);
    return NULL;
}

/* A token of the right shape whose MAC nobody made. */
static void forge(const qrun_t *r, uint64_t *rng, char *out, size_t cap)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int n = snprintf(out, cap, "%lld.", (long long)(server_now(r) + 60000));
    for (int i = 0; i < 43 && (size_t)n + 1 < cap; i++) {
        *rng = *rng * 6364136223846793005u + 1442695040888963407u;
        out[n++] = b64[(*rng >> 33) & 63];
    }
    out[n] = '\0';
}

static void *bots_main(void *arg)
{
    qrun_t *r = arg;
    sk_loadgen_qres_t *res = r->res;
    sk_loadgen_fetch_t f;
    sk_loadgen_fetch_init(&f, &r->cfg->targets[0], NULL, (int)r->cfg->timeout_ms);
    sleep_ms(r->sale->starts_at - server_now(r) + 50);
    uint64_t rng = (uint64_t)wall_ms() | 1;
    size_t lender = 0;
    for (size_t i = 0; i < res->n && !interrupted(r); i++) {
        sk_qbuyer_t *b = &res->b[i];
        char tok[80];
        switch (b->kind) {
        case SK_BOT_NONE:
            buy(r, &f, b, NULL);
            break;
        case SK_BOT_FORGED:
            forge(r, &rng, tok, sizeof(tok));
            buy(r, &f, b, tok);
            break;
        case SK_BOT_OTHER:
            /* Another buyer's real token: wait for the next honest admission. */
            for (;;) {
                while (lender < res->n && !(res->b[lender].kind == SK_BOT_HONEST && res->b[lender].admitted_at))
                    lender++;
                if (lender < res->n || interrupted(r) || atomic_load(&r->honest_left) <= 0)
                    break;
                sleep_ms(20);
                lender = 0;
            }
            if (lender < res->n) {
                snprintf(tok, sizeof(tok), "%s", res->b[lender].token);
                lender++;
                buy(r, &f, b, tok);
            }
            break;
        default:
            break;
        }
    }
    sk_loadgen_fetch_close(&f);
    return NULL;
}

static void *flood_main(void *arg)
{
    qrun_t *r = arg;
    sk_loadgen_qres_t *res = r->res;
    sk_loadgen_fetch_t f;
    const sk_loadgen_target_t *t = &r->cfg->targets[0];
    sk_loadgen_fetch_init(&f, t, NULL, (int)r->cfg->timeout_ms);
    if (t->addr.ss_family == AF_INET && (ntohl(((const struct sockaddr_in *)&t->addr)->sin_addr.s_addr) >> 24) == 127) {
        f.bind_ipv4 = htonl(0x7f000002);
        res->flood_bound = true;
    }
    sleep_ms(r->sale->starts_at - server_now(r));
    char body[128];
    snprintf(body, sizeof(body), "{\"user_id\":\"f1\",\"request_id\":\"r%s-flood\"}", r->cfg->run_id);
    int64_t stop = wall_ms() + 10000;
    for (uint32_t i = 0; i < r->q->flood_requests && wall_ms() < stop && !interrupted(r); i++) {
        int st = sk_loadgen_fetch(&f, "POST", r->buy_path, body);
        res->flood_sent++;
        if (st == 429)
            res->flood_429++;
        else if (st == 403)
            res->flood_403++;
        else if (st == 200 || st == 201)
            res->flood_made++;
        else
            res->flood_other++;
    }
    sk_loadgen_fetch_close(&f);
    return NULL;
}

static uint32_t bots_of(const sk_loadgen_qcfg_t *q, int k, uint32_t users)
{
    if (q->bot_count[k])
        return q->bot_count[k];
    return (uint32_t)(q->bot_share[k] * users + 0.5);
}

int sk_loadgen_queue_run(const sk_loadgen_config_t *cfg, const sk_loadgen_qcfg_t *q, const sk_loadgen_sale_t *sale,
                         sk_loadgen_qres_t *res, char *err, size_t err_len)
{
    memset(res, 0, sizeof(*res));
    /* The queue's settings, from the sale. */
    sk_loadgen_fetch_t f;
    sk_loadgen_fetch_init(&f, &cfg->targets[0], cfg->admin_token, 15000);
    char *seg = sk_loadgen_path_segment(sale->id);
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/sales/%s", seg);
    int st = sk_loadgen_fetch(&f, "GET", path, NULL);
    json_t *o = st == 200 ? json_loadb(f.body, f.body_len, 0, NULL) : NULL;
    sk_loadgen_fetch_close(&f);
    json_t *v;
    if (o && (v = json_object_get(o, "queue")) && json_is_string(v))
        snprintf(res->mode, sizeof(res->mode), "%s", json_string_value(v));
    if (o && (v = json_object_get(o, "admission_ttl_ms")) && json_is_integer(v))
        res->ttl_ms = json_integer_value(v);
    if (o && (v = json_object_get(o, "admit_per_second")) && json_is_integer(v))
        res->admit_per_second = json_integer_value(v);
    json_decref(o);
    if (strcmp(res->mode, "fifo") != 0 && strcmp(res->mode, "random") != 0) {
        snprintf(err, err_len, "--queue: sale %s has no queue (create it with queue=fifo or queue=random)", sale->id);
        free(seg);
        return -1;
    }
    uint32_t nb[SK_BOT__COUNT] = {0};
    nb[SK_BOT_HONEST] = cfg->users;
    for (int k = 1; k < SK_BOT__COUNT; k++)
        nb[k] = bots_of(q, k, cfg->users);
    if (nb[SK_BOT_FLOOD] > 1)
        nb[SK_BOT_FLOOD] = 1;
    size_t n = 0;
    for (int k = 0; k < SK_BOT_FLOOD; k++)
        n += nb[k];
    res->b = sk_xcalloc(n ? n : 1, sizeof(sk_qbuyer_t));
    res->n = n;
    res->honest = nb[SK_BOT_HONEST];
    /* Names carry their index: "<kind letter><index + 1>", so the audit finds a user's
     * buyer from the name alone. The bots are spread among the buyers. */
    /* The expired bots join first, so that they are admitted before the stock is gone
     * (a bot that never got an admission proves nothing about expiry). */
    size_t i = 0;
    for (uint32_t j = 0; j < nb[SK_BOT_EXPIRED]; j++, i++)
        res->b[i].kind = SK_BOT_EXPIRED;
    size_t first = i;
    for (int k = 0; k < SK_BOT_FLOOD; k++)
        for (uint32_t j = 0; k != SK_BOT_EXPIRED && j < nb[k]; j++, i++)
            res->b[i].kind = (uint8_t)k;
    uint64_t rng = 0x9e3779b97f4a7c15u ^ (uint64_t)wall_ms();
    for (size_t a = n; a > first + 1; a--) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        size_t c = first + (size_t)((rng >> 33) % (a - first));
        uint8_t tmp = res->b[a - 1].kind;
        res->b[a - 1].kind = res->b[c].kind;
        res->b[c].kind = tmp;
    }
    for (i = 0; i < n; i++) {
        snprintf(res->b[i].user, sizeof(res->b[i].user), "%c%zu", bot_prefix[res->b[i].kind], i + 1);
        res->b[i].position = -1;
    }

    qrun_t r = {.cfg = cfg, .q = q, .sale = sale, .res = res};
    pthread_mutex_init(&r.mu, NULL);
    r.queue_path = sk_xmalloc(strlen(seg) + 64);
    sprintf(r.queue_path, "/api/v1/sales/%s/queue", seg);
    r.buy_path = sk_xmalloc(strlen(seg) + 64);
    sprintf(r.buy_path, "/api/v1/sales/%s/purchase", seg);
    free(seg);
    r.nthreads = q->threads ? q->threads : 4;
    r.t0 = wall_ms();
    r.deadline = r.t0 + (int64_t)q->cap_ms;
    atomic_store(&r.honest_left, (int)nb[SK_BOT_HONEST]);
    qthread_t *th = sk_xcalloc(r.nthreads, sizeof(qthread_t));
    for (uint32_t t = 0; t < r.nthreads; t++) {
        th[t].run = &r;
        th[t].index = (int)t;
        pthread_create(&th[t].thread, NULL, buyers_main, &th[t]);
    }
    pthread_t bots, flood;
    pthread_create(&bots, NULL, bots_main, &r);
    if (nb[SK_BOT_FLOOD])
        pthread_create(&flood, NULL, flood_main, &r);
    for (uint32_t t = 0; t < r.nthreads; t++)
        pthread_join(th[t].thread, NULL);
    pthread_join(bots, NULL);
    if (nb[SK_BOT_FLOOD])
        pthread_join(flood, NULL);
    res->elapsed_s = (double)(wall_ms() - r.t0) / 1000.0;
    res->joins = atomic_load(&r.joins);
    res->polls = atomic_load(&r.polls);
    res->purchases = atomic_load(&r.purchases);
    res->rate_limited = atomic_load(&r.rate_limited);
    res->errors = atomic_load(&r.errors);
    free(th);
    free(r.queue_path);
    free(r.buy_path);
    pthread_mutex_destroy(&r.mu);
    return 0;
}

void sk_loadgen_qres_free(sk_loadgen_qres_t *res)
{
    free(res->b);
    res->b = NULL;
}
