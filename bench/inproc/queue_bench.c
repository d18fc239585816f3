/* seckill-queue-bench: the waiting room's costs in-process, each next to its anchor
 * measured in the same run:
 *   - queue joins on one core (engine/queue.c, the ledger's work per join: a new place,
 *     its record; target >= 200 000/s), alone and with the journal's write of the records
 *     (SQLite, batches of 4096, synchronous=FULL, like the ledger's);
 *   - the worker's purchase parse with an admission in the body and its verification,
 *     against the parse of the common body without one (the added cost per purchase).
 * Times are the measuring thread's CPU time (the journal line: wall time, its fsyncs
 * count). Asserts nothing about speed; checks that every join and verification works.
 * Usage: seckill-queue-bench [--joins N] [--ops N] [--dir DIR] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/body.h"
#include "backend/journal.h"
#include "crypto/token.h"
#include "engine/queue.h"
#include "util/common.h"

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct {
    sk_journal_queue_t *rows;
    char (*users)[SK_USER_MAX + 1];
    size_t n, cap;
} sink_t;

static void keep(void *arg, const sk_queue_rec_t *r)
{
    sink_t *s = arg;
    if (!s->rows || s->n == s->cap)
        return;
    memcpy(s->users[s->n], r->user, r->user_len);
    s->rows[s->n] = (sk_journal_queue_t){.sale_id = "bench", .rec = *r};
    s->rows[s->n].rec.user = s->users[s->n];
    s->n++;
}

int main(int argc, char **argv)
{
    size_t joins = 1000000, ops = 1000000;
    const char *dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--joins") == 0)
            joins = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--ops") == 0)
            ops = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--dir") == 0)
            dir = argv[i + 1];
    }
    sk_queue_rules_t r = {.mode = SK_QUEUE_RANDOM, .starts_at = 1, .rate = 1000, .ttl_ms = 60000};
    char(*names)[32] = malloc(joins * sizeof(*names));
    for (size_t i = 0; i < joins; i++)
        snprintf(names[i], sizeof(names[i]), "user-%zu", i);

    /* Joins alone: the ledger's in-memory work. */
    sk_queue_t *q = sk_queue_new(42);
    sk_queue_place_t pl;
    uint64_t t0 = cpu_ns();
    for (size_t i = 0; i < joins; i++)
        if (sk_queue_ask(q, &r, names[i], strlen(names[i]), 1000, true, &pl, NULL, NULL) != 0 || !pl.joined)
            return fprintf(stderr, "join %zu failed\n", i), 1;
    uint64_t t1 = cpu_ns();
    double mem_rate = (double)joins / ((double)(t1 - t0) / 1e9);
    sk_queue_free(q);
    printf("queue joins, in memory (one core)           %10.0f /s  %6.0f ns/join   (target >= 200000/s: %.2fx)\n",
           mem_rate, (double)(t1 - t0) / (double)joins, mem_rate / 200000.0);

    /* Joins with their journal rows written in batches of 4096. */
    if (dir) {
        char err[256];
        sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
        if (!j)
            return fprintf(stderr, "%s\n", err), 1;
        sk_journal_sale_t sale = {"bench", "bench", 1, 0, 1, 1, 1, 1, 0, 1, 0, 1000, 60000, 0};
        sk_journal_put_sale(j, &sale);
        sink_t s = {.cap = 4096};
        s.rows = malloc(s.cap * sizeof(*s.rows));
        s.users = malloc(s.cap * sizeof(*s.users));
        size_t n = joins < 200000 ? joins : 200000; /* fsyncs: keep the smoke run short */
        q = sk_queue_new(42);
        uint64_t w0 = wall_ns();
        for (size_t i = 0; i < n; i++) {
            sk_queue_ask(q, &r, names[i], strlen(names[i]), 1000, true, &pl, keep, &s);
            if (s.n == s.cap || i + 1 == n) {
                if (sk_journal_put_queue(j, s.rows, s.n) < 0)
                    return fprintf(stderr, "journal write failed\n"), 1;
                s.n = 0;
            }
        }
        uint64_t w1 = wall_ns();
        double disk_rate = (double)n / ((double)(w1 - w0) / 1e9);
        printf("queue joins, journaled (4096 a commit)      %10.0f /s  (wall; %.2fx the in-memory rate)\n", disk_rate,
               disk_rate / mem_rate);
        sk_queue_free(q);
        sk_journal_close(j);
        free(s.rows);
        free(s.users);
    }

    /* The worker: parse (and verify) a purchase body. */
    sk_hmac_key_t key;
    sk_hmac_init(&key, "bench-secret-bench-secret-bench!", 32);
    char tok[SK_TOKEN_ADMISSION_MAX + 1];
    sk_token_admission_mint(&key, "flash", 5, "u12345678", 9, INT64_C(999999999999999), tok);
    char plain[128], with[256];
    snprintf(plain, sizeof(plain), "{\"user_id\":\"u12345678\",\"request_id\":\"r-000000001\"}");
    snprintf(with, sizeof(with), "{\"user_id\":\"u12345678\",\"request_id\":\"r-000000001\",\"admission\":\"%s\"}",
             tok);
    char user[SK_USER_MAX + 1], req[SK_REQUEST_MAX + 1], adm[SK_API_ADMISSION_MAX + 1];
    size_t ul, rl, al;
    uint32_t qn;
    sk_api_field_error_t fe;
    size_t pl_len = strlen(plain), wl = strlen(with);
    uint64_t a0 = cpu_ns();
    for (size_t i = 0; i < ops; i++)
        if (sk_api_parse_purchase(plain, pl_len, false, user, &ul, req, &rl, &qn, adm, &al, &fe) != 0)
            return 1;
    uint64_t a1 = cpu_ns();
    for (size_t i = 0; i < ops; i++) {
        if (sk_api_parse_purchase(with, wl, false, user, &ul, req, &rl, &qn, adm, &al, &fe) != 0 ||
            sk_token_admission_verify(&key, "flash", 5, user, ul, adm, al, 1000) != 0)
            return fprintf(stderr, "verify failed\n"), 1;
    }
    uint64_t a2 = cpu_ns();
    double plain_ns = (double)(a1 - a0) / (double)ops, adm_ns = (double)(a2 - a1) / (double)ops;
    printf("purchase body, no admission (fast path)     %10.0f ns\n", plain_ns);
    printf("purchase body + admission verified          %10.0f ns  (+%.0f ns a purchase)\n", adm_ns, adm_ns - plain_ns);
    free(names);
    return 0;
}
