/* The waiting room's audit (admission.h). */
#include "audit/admission.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const sk_loadgen_qres_t *res;
    sk_audit_queue_t *out;
} ctx_t;

/* The buyer named by user (its index is in its name), or NULL. */
static const sk_qbuyer_t *buyer_of(const sk_loadgen_qres_t *res, const char *u, size_t ul)
{
    if (ul < 2 || ul > 20)
        return NULL;
    size_t idx = 0;
    for (size_t i = 1; i < ul; i++) {
        if (u[i] < '0' || u[i] > '9')
            return NULL;
        idx = idx * 10 + (size_t)(u[i] - '0');
    }
    if (idx == 0 || idx > res->n)
        return NULL;
    const sk_qbuyer_t *b = &res->b[idx - 1];
    return strlen(b->user) == ul && memcmp(b->user, u, ul) == 0 ? b : NULL;
}

static int on_order(void *arg, const sk_loadgen_store_order_t *o)
{
    ctx_t *c = arg;
    sk_audit_queue_t *a = c->out;
    if (o->state == SK_LOADGEN_ST_CANCELLED || o->state == SK_LOADGEN_ST_EXPIRED || o->state == SK_LOADGEN_ST_REFUNDED)
        return 0;
    a->store_orders++;
    a->store_units += o->quantity > 0 ? o->quantity : 1;
    if (o->user_id_len == 2 && memcmp(o->user_id, "f1", 2) == 0) {
        a->bot_orders++;
        return 0;
    }
    const sk_qbuyer_t *b = buyer_of(c->res, o->user_id, o->user_id_len);
    if (!b || b->kind != SK_BOT_HONEST) {
        /* A bot's user, or a user nobody in this run was: no admission of its own. */
        a->bot_orders++;
        return 0;
    }
    a->honest_orders++;
    if (!b->admitted_at || (o->created_at && o->created_at < b->admitted_at))
        a->unadmitted++;
    return 0;
}

static int cmp_pos(const void *x, const void *y)
{
    const sk_qbuyer_t *a = *(const sk_qbuyer_t *const *)x, *b = *(const sk_qbuyer_t *const *)y;
    return (a->position > b->position) - (a->position < b->position);
}

static int cmp_dbl(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* Spearman's rho between join order and position over the pre-queue (no ties: both
 * are distinct integers, ranked by sorting). */
static double spearman(const sk_qbuyer_t **v, size_t n)
{
    /* v is sorted by position: rank by position is the index; rank by join_seq below. */
    uint32_t *seq = malloc(n * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++)
        seq[i] = v[i]->join_seq;
    double mean = (double)(n - 1) / 2, sxy = 0, sxx = 0;
    /* The join ranks: count of smaller join_seq (n is small: a few thousand at most). */
    for (size_t i = 0; i < n; i++) {
        size_t rank = 0;
        for (size_t j = 0; j < n; j++)
            rank += seq[j] < seq[i];
        sxy += ((double)i - mean) * ((double)rank - mean);
        sxx += ((double)i - mean) * ((double)i - mean);
    }
    free(seq);
    return sxx > 0 ? sxy / sxx : 0;
}

int sk_audit_queue_run(const sk_loadgen_sale_t *sale, const sk_loadgen_qres_t *res, sk_audit_source_t *src,
                       sk_audit_queue_t *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof(*out));
    ctx_t c = {.res = res, .out = out};
    if (src->orders(src, sale->id, on_order, &c, err, err_len) < 0)
        return -1;
    if (sale->stock >= 0 && out->store_units > sale->stock)
        out->oversold = out->store_units - sale->stock;

    /* The client's side: what the buyers and bots were answered. */
    double *ttp = calloc(res->n + 1, sizeof(double)), *jtp = calloc(res->n + 1, sizeof(double));
    size_t nt = 0;
    const sk_qbuyer_t **q = calloc(res->n + 1, sizeof(*q));
    size_t nq = 0;
    int64_t bot_made = 0;
    for (size_t i = 0; i < res->n; i++) {
        const sk_qbuyer_t *b = &res->b[i];
        bool made = b->status == 200 || b->status == 201;
        if (b->kind == SK_BOT_HONEST) {
            out->honest++;
            out->honest_joined += b->joined;
            if (made) {
                out->honest_bought++;
                ttp[nt] = (double)(b->bought_ms - b->admitted_at);
                jtp[nt++] = (double)(b->bought_ms - b->join_ms);
            } else if (b->status == 403) {
                out->honest_refused++;
            }
        } else {
            out->bots[b->kind]++;
            if (b->status == 403) {
                out->bots_refused[b->kind]++;
            } else if (b->status) {
                out->bots_other[b->kind]++;
                snprintf(out->bots_other_sample[b->kind], sizeof(out->bots_other_sample[0]), "%d %s", b->status,
                         b->result);
            }
            if (b->kind == SK_BOT_EXPIRED && !b->admitted_at)
                out->bots_unadmitted[b->kind]++;
            bot_made += made;
        }
        if (b->admitted_at)
            out->admitted++;
        if ((b->kind == SK_BOT_HONEST || b->kind == SK_BOT_EXPIRED) && b->joined && b->position > 0)
            q[nq++] = b;
    }
    out->bots[SK_BOT_FLOOD] = res->flood_sent ? 1 : 0;
    bot_made += (int64_t)res->flood_made;
    if (bot_made > out->bot_orders)
        out->bot_orders = bot_made;

    /* Admission follows the queue: by position, admission times never go back, and
     * nobody behind a buyer left waiting was admitted. */
    qsort(q, nq, sizeof(*q), cmp_pos);
    int64_t latest = 0, first_waiting = -1;
    for (size_t i = 0; i < nq; i++) {
        const sk_qbuyer_t *b = q[i];
        if (!b->admitted_at) {
            if (first_waiting < 0)
                first_waiting = b->position;
            continue;
        }
        if (b->admitted_at < latest || first_waiting >= 0)
            out->out_of_order++;
        if (b->admitted_at > latest)
            latest = b->admitted_at;
    }
    /* Fairness of the draw: the pre-queue's join order against its positions. */
    size_t np = 0;
    for (size_t i = 0; i < nq; i++)
        if (q[i]->pre_queue)
            q[np++] = q[i];
    out->fairness_n = (int64_t)np;
    if (np >= 2)
        out->rho = spearman(q, np);
    if (strcmp(res->mode, "random") == 0 && np >= 30) {
        out->fairness_checked = true;
        out->unfair = fabs(out->rho) > 0.5;
    }
    qsort(ttp, nt, sizeof(double), cmp_dbl);
    qsort(jtp, nt, sizeof(double), cmp_dbl);
    out->ttp_p50_ms = pct(ttp, nt, 0.5);
    out->ttp_p90_ms = pct(ttp, nt, 0.9);
    out->ttp_p99_ms = pct(ttp, nt, 0.99);
    out->jtp_p50_ms = pct(jtp, nt, 0.5);
    out->jtp_p99_ms = pct(jtp, nt, 0.99);
    free(ttp);
    free(jtp);
    free(q);

    out->ok = !out->bot_orders && !out->unadmitted && !out->out_of_order && !out->oversold && !out->unfair;
    if (!out->ok)
        snprintf(out->failure, sizeof(out->failure),
                 "bot_orders=%lld unadmitted=%lld out_of_order=%lld oversold=%lld unfair=%d",
                 (long long)out->bot_orders, (long long)out->unadmitted, (long long)out->out_of_order,
                 (long long)out->oversold, out->unfair ? 1 : 0);
    return 0;
}

void sk_audit_queue_report(FILE *f, const sk_loadgen_qres_t *res, const sk_audit_queue_t *a)
{
    fprintf(f, "\nqueue: %s, admit %lld/s, admission ttl %lld ms; %.1f s\n", res->mode,
            (long long)res->admit_per_second, (long long)res->ttl_ms, res->elapsed_s);
    fprintf(f, "  requests: %llu joins, %llu polls, %llu purchases, %llu answered 429, %llu errors\n",
            (unsigned long long)res->joins, (unsigned long long)res->polls, (unsigned long long)res->purchases,
            (unsigned long long)res->rate_limited, (unsigned long long)res->errors);
    double rate = a->honest ? 100.0 * (double)a->honest_bought / (double)a->honest : 0;
    fprintf(f,
            "  honest buyers: %lld, joined %lld, admitted (all queued) %lld, bought %lld (%.1f%%), refused 403 %lld\n",
            (long long)a->honest, (long long)a->honest_joined, (long long)a->admitted, (long long)a->honest_bought,
            rate, (long long)a->honest_refused);
    fprintf(f, "  time to purchase (admission -> answer): p50 %.0f ms, p90 %.0f ms, p99 %.0f ms\n", a->ttp_p50_ms,
            a->ttp_p90_ms, a->ttp_p99_ms);
    fprintf(f, "  join -> purchase: p50 %.0f ms, p99 %.0f ms\n", a->jtp_p50_ms, a->jtp_p99_ms);
    for (int k = 1; k < SK_BOT_FLOOD; k++)
        if (a->bots[k])
            fprintf(f, "  bots %-8s %lld, refused 403 %lld, never admitted %lld, other answers %lld%s%s%s\n",
                    sk_loadgen_bot_name((sk_bot_kind_t)k), (long long)a->bots[k], (long long)a->bots_refused[k],
                    (long long)a->bots_unadmitted[k], (long long)a->bots_other[k], a->bots_other[k] ? " (" : "",
                    a->bots_other_sample[k], a->bots_other[k] ? ")" : "");
    if (res->flood_sent)
        fprintf(f, "  bots flood    1 address%s: %llu requests, %llu answered 429, %llu 403, %llu orders\n",
                res->flood_bound ? " (127.0.0.2)" : " (the crowd's own)", (unsigned long long)res->flood_sent,
                (unsigned long long)res->flood_429, (unsigned long long)res->flood_403,
                (unsigned long long)res->flood_made);
    fprintf(f, "  fairness: rank correlation of join order and position over %lld pre-queued: %.3f%s\n",
            (long long)a->fairness_n, a->rho,
            a->fairness_checked ? (a->unfair ? " (UNFAIR: |rho| > 0.5)" : " (fair)") : " (not judged)");
    fprintf(f, "\nqueue audit: store %lld orders (%lld units), %lld honest\n", (long long)a->store_orders,
            (long long)a->store_units, (long long)a->honest_orders);
    fprintf(f, "  bot_orders %lld  unadmitted %lld  out_of_order %lld  oversold %lld\n", (long long)a->bot_orders,
            (long long)a->unadmitted, (long long)a->out_of_order, (long long)a->oversold);
    if (a->ok)
        fprintf(f, "QUEUE AUDIT OK\n");
    else
        fprintf(f, "\n!!!!! QUEUE AUDIT FAILED: %s !!!!!\n", a->failure);
}
