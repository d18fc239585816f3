/* The deny list: two open-addressing hash sets, one of user ids and one of address
 * blocks (an address is a block of one). A lookup of an address masks it once per prefix
 * length the list uses and looks each up, so a list of a million addresses and a few
 * blocks costs a few probes. */
#include "api/deny.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "util/common.h"
#include "util/hash.h"

#define HASH_SEED UINT64_C(0x5ec7111deadbeef1)

struct sk_api_deny {
    _Atomic int refs;
    sk_cidr_t *blocks; /* open addressing; bits == 255 marks an empty slot */
    size_t blocks_cap, n_blocks;
    uint8_t v4_lens[33], v6_lens[129]; /* prefix lengths in use, longest first */
    size_t n_v4_lens, n_v6_lens;
    char (*users)[SK_USER_MAX + 1]; /* open addressing; "" marks an empty slot */
    size_t users_cap, n_users;
};

static uint64_t block_hash(const sk_cidr_t *c)
{
    unsigned char key[18];
    key[0] = c->ip.family;
    key[1] = c->bits;
    memcpy(key + 2, c->ip.a, 16);
    return sk_hash64(key, sizeof(key), HASH_SEED);
}

static bool block_eq(const sk_cidr_t *a, const sk_cidr_t *b)
{
    return a->bits == b->bits && sk_ip_eq(&a->ip, &b->ip);
}

static void blocks_grow(sk_api_deny_t *d);

static void block_add(sk_api_deny_t *d, const sk_cidr_t *c)
{
    if ((d->n_blocks + 1) * 2 > d->blocks_cap)
        blocks_grow(d);
    size_t i = block_hash(c) & (d->blocks_cap - 1);
    while (d->blocks[i].bits != 255) {
        if (block_eq(&d->blocks[i], c))
            return;
        i = (i + 1) & (d->blocks_cap - 1);
    }
    d->blocks[i] = *c;
    d->n_blocks++;
    uint8_t *lens = c->ip.family == 4 ? d->v4_lens : d->v6_lens;
    size_t *n = c->ip.family == 4 ? &d->n_v4_lens : &d->n_v6_lens;
    size_t k = 0;
    while (k < *n && lens[k] > c->bits)
        k++;
    if (k < *n && lens[k] == c->bits)
        return;
    memmove(lens + k + 1, lens + k, *n - k);
    lens[k] = c->bits;
    (*n)++;
}

static void blocks_grow(sk_api_deny_t *d)
{
    sk_cidr_t *old = d->blocks;
    size_t old_cap = d->blocks_cap;
    d->blocks_cap = old_cap ? old_cap * 2 : 64;
    d->blocks = sk_xmalloc(d->blocks_cap * sizeof(*d->blocks));
    for (size_t i = 0; i < d->blocks_cap; i++)
        d->blocks[i].bits = 255;
    d->n_blocks = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].bits == 255)
            continue;
        size_t j = block_hash(&old[i]) & (d->blocks_cap - 1);
        while (d->blocks[j].bits != 255)
            j = (j + 1) & (d->blocks_cap - 1);
        d->blocks[j] = old[i];
        d->n_blocks++;
    }
    free(old);
}

static void users_grow(sk_api_deny_t *d)
{
    char(*old)[SK_USER_MAX + 1] = d->users;
    size_t old_cap = d->users_cap;
    d->users_cap = old_cap ? old_cap * 2 : 64;
    d->users = sk_xcalloc(d->users_cap, sizeof(*d->users));
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i][0])
            continue;
        size_t j = sk_hash64(old[i], strlen(old[i]), HASH_SEED) & (d->users_cap - 1);
        while (d->users[j][0])
            j = (j + 1) & (d->users_cap - 1);
        memcpy(d->users[j], old[i], sizeof(old[i]));
    }
    free(old);
}

static size_t user_slot(const sk_api_deny_t *d, const char *u, size_t ul)
{
    size_t i = sk_hash64(u, ul, HASH_SEED) & (d->users_cap - 1);
    while (d->users[i][0] && !(strlen(d->users[i]) == ul && memcmp(d->users[i], u, ul) == 0))
        i = (i + 1) & (d->users_cap - 1);
    return i;
}

static void user_add(sk_api_deny_t *d, const char *u, size_t ul)
{
    if ((d->n_users + 1) * 2 > d->users_cap)
        users_grow(d);
    size_t i = user_slot(d, u, ul);
    if (d->users[i][0])
        return;
    memcpy(d->users[i], u, ul);
    d->users[i][ul] = '\0';
    d->n_users++;
}

bool sk_api_deny_user(const sk_api_deny_t *d, const char *user, size_t ul)
{
    if (!d || d->n_users == 0 || ul == 0 || ul > SK_USER_MAX)
        return false;
    return d->users[user_slot(d, user, ul)][0] != '\0';
}

bool sk_api_deny_ip(const sk_api_deny_t *d, const sk_ip_t *ip)
{
    if (!d || d->n_blocks == 0 || (ip->family != 4 && ip->family != 6))
        return false;
    const uint8_t *lens = ip->family == 4 ? d->v4_lens : d->v6_lens;
    size_t n = ip->family == 4 ? d->n_v4_lens : d->n_v6_lens;
    for (size_t k = 0; k < n; k++) {
        sk_cidr_t c = {.ip = *ip, .bits = lens[k]};
        sk_ip_mask(&c.ip, c.bits);
        size_t i = block_hash(&c) & (d->blocks_cap - 1);
        for (; d->blocks[i].bits != 255; i = (i + 1) & (d->blocks_cap - 1))
            if (block_eq(&d->blocks[i], &c))
                return true;
    }
    return false;
}

void sk_api_deny_counts(const sk_api_deny_t *d, size_t *ips, size_t *users)
{
    *ips = d ? d->n_blocks : 0;
    *users = d ? d->n_users : 0;
}

sk_api_deny_t *sk_api_deny_ref(sk_api_deny_t *d)
{
    if (d)
        atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
    return d;
}

void sk_api_deny_unref(sk_api_deny_t *d)
{
    if (!d || atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(d->blocks);
    free(d->users);
    free(d);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Digits and dots with a dot ("10.0.0.256"), or hex digits, dots and colons with a '/' or
 * a ':' ("10.0.0.0/33", "2001:db8::/129"): a mistyped address, not a user's name. */
static bool looks_like_address(const char *e, size_t n)
{
    bool digits_dots = true, hexy = true, dot = false, mark = false;
    for (size_t i = 0; i < n; i++) {
        char c = e[i];
        bool digit = c >= '0' && c <= '9', hex = digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        dot |= c == '.';
        mark |= c == '/' || c == ':';
        digits_dots &= digit || c == '.';
        hexy &= hex || c == '.' || c == ':' || c == '/';
    }
    return (digits_dots && dot) || (hexy && mark);
}

/* One entry, already cut out of its line. Returns NULL or what is wrong. */
static const char *add_entry(sk_api_deny_t *d, const char *e, size_t n)
{
    bool want_ip = false, want_user = false;
    if (n > 3 && memcmp(e, "ip:", 3) == 0) {
        want_ip = true;
        e += 3;
        n -= 3;
    } else if (n > 5 && memcmp(e, "user:", 5) == 0) {
        want_user = true;
        e += 5;
        n -= 5;
    }
    sk_cidr_t c;
    if (!want_user && sk_cidr_parse(e, n, &c) == 0) {
        block_add(d, &c);
        return NULL;
    }
    if (want_ip)
        return "not an IP address or a CIDR block";
    if (!want_user && looks_like_address(e, n))
        return "not a valid IP address or CIDR block (for a user of that name write user:NAME)";
    if (!sk_valid_user_id(e, n))
        return "not an IP address, a CIDR block or a user id (1-64 printable ASCII characters, no quotes)";
    user_add(d, e, n);
    return NULL;
}

sk_api_deny_t *sk_api_deny_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    sk_api_deny_t *d = sk_xcalloc(1, sizeof(*d));
    atomic_init(&d->refs, 1);
    blocks_grow(d);
    users_grow(d);
    const char *p = text, *end = text + len;
    for (size_t line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *s = p;
        p = nl ? nl + 1 : end;
        while (s < le && is_space(*s))
            s++;
        if (s == le || *s == '#')
            continue;
        const char *e = s;
        while (e < le && !is_space(*e))
            e++;
        const char *rest = e;
        while (rest < le && is_space(*rest))
            rest++;
        const char *why = NULL;
        if (rest < le && *rest != '#')
            why = "one entry a line (a comment after it starts with '#')";
        else if (memchr(s, '\0', (size_t)(e - s)))
            why = "a NUL byte";
        else
            why = add_entry(d, s, (size_t)(e - s));
        if (why) {
            snprintf(err, errlen, "%s line %zu: %s: '%.*s'", name, line, why, (int)SK_MIN(e - s, 80), s);
            sk_api_deny_unref(d);
            return NULL;
        }
    }
    return d;
}

sk_api_deny_t *sk_api_deny_load(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read the deny file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > SK_API_DENY_FILE_MAX) {
        snprintf(err, errlen, "the deny file %s is larger than %d MiB", path, SK_API_DENY_FILE_MAX >> 20);
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = sk_xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap > SK_API_DENY_FILE_MAX) {
                snprintf(err, errlen, "the deny file %s is larger than %d MiB", path, SK_API_DENY_FILE_MAX >> 20);
                goto fail;
            }
            cap *= 2;
            buf = sk_xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read the deny file %s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    sk_api_deny_t *d = sk_api_deny_parse(buf, n, path, err, errlen);
    free(buf);
    return d;
fail:
    close(fd);
    free(buf);
    return NULL;
}
