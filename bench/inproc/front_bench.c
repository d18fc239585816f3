/* seckill-front-bench: the front door's per-request costs, in-process, each printed next
 * to its anchor measured in the same run:
 *   - admission token verification (crypto/token.h; target <= 1 us) against OpenSSL's
 *     one-shot HMAC() of the same message, which redoes the key schedule every call;
 *   - user token verification, and a proof-of-work check (one HMAC and one SHA-256);
 *   - the rate-limit check of an /api/ request (util/ratelimit.h with the clock read the
 *     node does; target <= 0.2 us) against the clock read alone, on one thread and on
 *     two sharing the table, over 100 000 client addresses (more than fit the table's
 *     sets' favourite ways, as under attack) and over a few hot ones.
 * Times are the measuring thread's CPU time per operation. Asserts nothing about speed;
 * it does check that every verification it times succeeds.
 * Usage: seckill-front-bench [--ops N] (default 2 000 000 per measurement) */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/pow.h"
#include "crypto/token.h"
#include "util/common.h"
#include "util/ratelimit.h"

static volatile uint64_t sink;

/* CPU time of the calling thread: what an operation costs the core it runs on, whatever
 * else the machine runs meanwhile (the benchmark machine is shared). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double per_op_ns(uint64_t t0, uint64_t t1, uint64_t ops)
{
    return (double)(t1 - t0) / (double)ops;
}

static void line(const char *what, double ns, double anchor_ns, const char *anchor)
{
    if (anchor)
        printf("%-52s %8.1f ns/op   %s: %.1f ns/op   ratio %.2fx\n", what, ns, anchor, anchor_ns, ns / anchor_ns);
    else
        printf("%-52s %8.1f ns/op\n", what, ns);
}

#define N_KEYS 100000

typedef struct {
    sk_ratelimit_t *t;
    uint64_t ops;
    unsigned char (*keys)[5];
    size_t n_keys;
    uint64_t ns;
    uint64_t admitted;
} rl_arg_t;

static void *rl_run(void *p)
{
    rl_arg_t *a = p;
    uint64_t t0 = cpu_ns(), admitted = 0;
    for (uint64_t i = 0; i < a->ops; i++)
        admitted += sk_ratelimit_take(a->t, a->keys[(i * 7919) % a->n_keys], 5, sk_mono_ns() / 1000) == 0;
    a->ns = cpu_ns() - t0;
    a->admitted = admitted;
    return NULL;
}

static double rate_limit(int threads, uint64_t ops, size_t n_keys, unsigned char (*keys)[5])
{
    sk_ratelimit_t *t = sk_ratelimit_new(50, 100, 1 << 18, 12345);
    pthread_t th[2];
    rl_arg_t args[2];
    for (int i = 0; i < threads; i++) {
        args[i] = (rl_arg_t){.t = t, .ops = ops, .keys = keys, .n_keys = n_keys};
        pthread_create(&th[i], NULL, rl_run, &args[i]);
    }
    double ns = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        ns += (double)args[i].ns / (double)ops;
        sink += args[i].admitted;
    }
    sk_ratelimit_free(t);
    return ns / threads;
}

int main(int argc, char **argv)
{
    uint64_t ops = 2000000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc) {
            ops = strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: seckill-front-bench [--ops N]\n");
            return 2;
        }
    }
    if (ops < 1000)
        ops = 1000;
    static const char secret[] = "a 32-byte secret for the bench..";
    sk_hmac_key_t k;
    sk_hmac_init(&k, secret, sizeof(secret) - 1);
    const char *sale = "sale-2026-spring", *user = "user-00012345";
    size_t sl = strlen(sale), ul = strlen(user);
    int64_t now = sk_now_ms();
    char tok[SK_TOKEN_ADMISSION_MAX + 1];
    size_t tl = sk_token_admission_mint(&k, sale, sl, user, ul, now + 600000, tok);

    /* The anchor: the same MAC with OpenSSL's one-shot HMAC(). */
    char msg[256];
    int ml = snprintf(msg, sizeof(msg), "seckill-admission\n%s\n%s\n%lld", sale, user, (long long)(now + 600000));
    uint8_t out[32];
    unsigned outl;
    uint64_t a_ops = ops / 4, t0 = cpu_ns();
    for (uint64_t i = 0; i < a_ops; i++) {
        HMAC(EVP_sha256(), secret, (int)sizeof(secret) - 1, (const unsigned char *)msg, (size_t)ml, out, &outl);
        sink += out[0];
    }
    double hmac_ns = per_op_ns(t0, cpu_ns(), a_ops);

    t0 = cpu_ns();
    int bad = 0;
    for (uint64_t i = 0; i < ops; i++)
        bad |= sk_token_admission_verify(&k, sale, sl, user, ul, tok, tl, now);
    double adm_ns = per_op_ns(t0, cpu_ns(), ops);
    if (bad) {
        fprintf(stderr, "the admission token did not verify\n");
        return 1;
    }

    char utok[SK_TOKEN_USER_MAX + 1];
    size_t utl = sk_token_user_mint(&k, user, ul, now + 600000, utok);
    t0 = cpu_ns();
    for (uint64_t i = 0; i < ops; i++) {
        const char *u;
        size_t l;
        bad |= sk_token_user_verify(&k, utok, utl, now, &u, &l);
    }
    double user_ns = per_op_ns(t0, cpu_ns(), ops);

    char ch[SK_POW_CHALLENGE_MAX + 1];
    size_t cl = sk_pow_challenge(&k, sale, sl, user, ul, now, ch);
    t0 = cpu_ns();
    for (uint64_t i = 0; i < ops; i++)
        bad |= sk_pow_verify(&k, sale, sl, user, ul, ch, cl, "12345", 5, 0, now);
    double pow_ns = per_op_ns(t0, cpu_ns(), ops);
    if (bad) {
        fprintf(stderr, "a user token or a proof of work did not verify\n");
        return 1;
    }

    /* The rate limit: the clock read alone is the floor every request pays anyway. */
    t0 = cpu_ns();
    for (uint64_t i = 0; i < ops; i++)
        sink += sk_mono_ns() / 1000;
    double clock_ns = per_op_ns(t0, cpu_ns(), ops);
    unsigned char(*keys)[5] = sk_xmalloc(N_KEYS * sizeof(*keys));
    for (size_t i = 0; i < N_KEYS; i++) {
        keys[i][0] = 4;
        keys[i][1] = 10;
        keys[i][2] = (unsigned char)(i >> 16);
        keys[i][3] = (unsigned char)(i >> 8);
        keys[i][4] = (unsigned char)i;
    }
    double rl1 = rate_limit(1, ops, N_KEYS, keys);
    double rl_hot = rate_limit(1, ops, 16, keys);
    double rl2 = rate_limit(2, ops, N_KEYS, keys);
    free(keys);

    printf("front door, in-process, %llu operations per measurement\n", (unsigned long long)ops);
    line("admission token verify (target <= 1000 ns)", adm_ns, hmac_ns, "OpenSSL HMAC() one-shot");
    line("user token verify", user_ns, hmac_ns, "OpenSSL HMAC() one-shot");
    line("proof-of-work check (HMAC + SHA-256)", pow_ns, hmac_ns, "OpenSSL HMAC() one-shot");
    line("rate-limit check, 100 000 addresses (target <= 200 ns)", rl1, clock_ns, "clock read alone");
    line("rate-limit check, 16 hot addresses", rl_hot, clock_ns, "clock read alone");
    line("rate-limit check, 2 threads sharing the table", rl2, clock_ns, "clock read alone");
    return 0;
}
