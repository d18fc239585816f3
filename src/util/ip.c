/* IP addresses and CIDR blocks. */
#include "util/ip.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void from_v6(const uint8_t a[16], sk_ip_t *out)
{
    memset(out, 0, sizeof(*out));
    if (memcmp(a, v4_mapped, sizeof(v4_mapped)) == 0) {
        out->family = 4;
        memcpy(out->a, a + 12, 4);
    } else {
        out->family = 6;
        memcpy(out->a, a, 16);
    }
}

int sk_ip_parse(const char *s, size_t n, sk_ip_t *out)
{
    char buf[SK_IP_TEXT_MAX];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    uint8_t a[16];
    if (inet_pton(AF_INET, buf, a) == 1) {
        memset(out, 0, sizeof(*out));
        out->family = 4;
        memcpy(out->a, a, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, buf, a) == 1) {
        from_v6(a, out);
        return 0;
    }
    return -1;
}

void sk_ip_from_sockaddr(const struct sockaddr *sa, sk_ip_t *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        out->family = 4;
        memcpy(out->a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        from_v6(((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr, out);
    }
}

size_t sk_ip_format(const sk_ip_t *ip, char *out)
{
    if (ip->family != 4 && ip->family != 6) {
        strcpy(out, "-");
        return 1;
    }
    inet_ntop(ip->family == 4 ? AF_INET : AF_INET6, ip->a, out, SK_IP_TEXT_MAX);
    return strlen(out);
}

void sk_ip_mask(sk_ip_t *ip, unsigned bits)
{
    unsigned total = ip->family == 4 ? 32 : 128;
    for (unsigned i = 0; i < total / 8; i++) {
        unsigned keep = bits > i * 8 ? bits - i * 8 : 0;
        if (keep < 8)
            ip->a[i] &= (uint8_t)(0xff00u >> keep);
    }
}

bool sk_ip_eq(const sk_ip_t *a, const sk_ip_t *b)
{
    return a->family == b->family && memcmp(a->a, b->a, sizeof(a->a)) == 0;
}

bool sk_ip_is_loopback(const sk_ip_t *ip)
{
    static const uint8_t v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return (ip->family == 4 && ip->a[0] == 127) || (ip->family == 6 && memcmp(ip->a, v6_loopback, 16) == 0);
}

int sk_cidr_parse(const char *s, size_t n, sk_cidr_t *out)
{
    const char *slash = memchr(s, '/', n);
    size_t al = slash ? (size_t)(slash - s) : n;
    if (sk_ip_parse(s, al, &out->ip) < 0)
        return -1;
    unsigned max = out->ip.family == 4 ? 32 : 128, bits = max;
    if (slash) {
        const char *p = slash + 1, *end = s + n;
        if (p == end || end - p > 3)
            return -1;
        bits = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            bits = bits * 10 + (unsigned)(*p - '0');
        }
        if (bits > max)
            return -1;
    }
    out->bits = (uint8_t)bits;
    sk_ip_mask(&out->ip, bits);
    return 0;
}

bool sk_cidr_contains(const sk_cidr_t *c, const sk_ip_t *ip)
{
    if (c->ip.family != ip->family)
        return false;
    sk_ip_t m = *ip;
    sk_ip_mask(&m, c->bits);
    return memcmp(m.a, c->ip.a, sizeof(m.a)) == 0;
}

bool sk_cidr_list_contains(const sk_cidr_t *list, size_t n, const sk_ip_t *ip)
{
    for (size_t i = 0; i < n; i++)
        if (sk_cidr_contains(&list[i], ip))
            return true;
    return false;
}
