/* Who buys: the crowd's users, shared out among the client threads. */
#include "loadgen/users.h"

#include "util/buf.h"

uint64_t sk_loadgen_xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

void sk_loadgen_users_init(sk_loadgen_users_t *u, uint32_t users, uint32_t threads, uint32_t index, uint64_t seed)
{
    u->index = index;
    u->threads = threads;
    u->rng = seed ? seed : 1;
    u->n = (uint32_t)(((uint64_t)users - index + threads - 1) / threads);
    /* k * mul + off mod n visits every residue once when gcd(mul, n) = 1; a multiplier
     * near n times the golden ratio scatters neighbours far apart. (k * mul stays
     * below 2^62: n < 2^31.) */
    uint64_t n = u->n;
    uint64_t mul = (uint64_t)((double)n * 0.6180339887) | 1;
    while (n > 1 && gcd(mul, n) != 1)
        mul++;
    u->mul = n > 1 ? mul % n : 1;
    if (u->mul == 0)
        u->mul = 1;
    u->off = sk_loadgen_xorshift(&u->rng) % (n ? n : 1);
}

uint32_t sk_loadgen_users_draw(sk_loadgen_users_t *u, uint64_t k)
{
    uint64_t i;
    if (k < u->n)
        i = (k * u->mul + u->off) % u->n;
    else
        i = sk_loadgen_xorshift(&u->rng) % u->n;
    return (uint32_t)(i * u->threads + (uint64_t)u->index + 1);
}

size_t sk_loadgen_user_id(char *buf, uint32_t u)
{
    buf[0] = 'u';
    size_t n = 1 + sk_fmt_u64(buf + 1, u);
    buf[n] = '\0';
    return n;
}
