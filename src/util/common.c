#include "util/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

sk_log_level_t sk_log_level = SK_LOG_INFO;

static void oom(size_t n)
{
    fprintf(stderr, "seckill: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sk_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *sk_xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *sk_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

#define TABLE_MAP_MIN ((size_t)1 << 20)

void *sk_mem_table_new(size_t n)
{
    if (n < TABLE_MAP_MIN)
        return sk_xcalloc(1, n);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        oom(n);
    sk_mem_huge(p, n);
    return p;
}

void sk_mem_table_free(void *p, size_t n)
{
    if (!p)
        return;
    if (n < TABLE_MAP_MIN)
        free(p);
    else
        munmap(p, n);
}

bool sk_mem_prefault(void *p, size_t n, size_t *done, size_t pages)
{
    const size_t page = 4096;
    volatile char *c = p;
    while (pages-- > 0 && *done < n) {
        c[*done] = 0;
        *done = (*done / page + 1) * page;
    }
    if (*done > n)
        *done = n;
    return *done >= n;
}

void sk_mem_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (n < 2 * huge)
        return;
    uintptr_t from = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t to = ((uintptr_t)p + n) & ~(huge - 1);
    if (to > from)
        (void)madvise((void *)from, to - from, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

/* A region: mapped with 2 MiB to spare, then trimmed to a 2 MiB boundary. */
static char *region_new(void)
{
    const size_t huge = (size_t)2 << 20, n = SK_BLOCKS_REGION;
    char *p = mmap(NULL, n + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        oom(n);
    uintptr_t at = ((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1);
    size_t head = (size_t)(at - (uintptr_t)p);
    if (head)
        munmap(p, head);
    munmap((char *)at + n, huge - head);
    sk_mem_huge((void *)at, n); /* aligned: the whole region */
    return (char *)at;
}

static void push(char ***list, size_t *n, size_t *cap, char *p)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *list = sk_xrealloc(*list, *cap * sizeof(**list));
    }
    (*list)[(*n)++] = p;
}

void *sk_blocks_alloc(sk_blocks_t *b, size_t n)
{
    /* A block of 0 bytes is one of 64, as malloc(0) is one of 1: a fresh sk_blocks_t has
     * no region yet, and its cursor is NULL. */
    n = ((n ? n : 1) + 63) & ~(size_t)63;
    if (n > SK_BLOCKS_REGION)
        oom(n);
    if (!SK_BLOCKS_CARVED || b->own_bytes < SK_BLOCKS_PLAIN) {
        char *p = aligned_alloc(64, n);
        if (!p)
            oom(n);
        push(&b->own, &b->n_own, &b->cap_own, p);
        b->own_bytes += n;
        return p;
    }
    if (n > b->left) {
        b->cur = region_new();
        push(&b->regions, &b->n_regions, &b->cap_regions, b->cur);
        b->left = SK_BLOCKS_REGION;
    }
    void *p = b->cur;
    b->cur += n;
    b->left -= n;
    return p;
}

void sk_blocks_free(sk_blocks_t *b)
{
    for (size_t i = 0; i < b->n_own; i++)
        free(b->own[i]);
    for (size_t i = 0; i < b->n_regions; i++)
        munmap(b->regions[i], SK_BLOCKS_REGION);
    free(b->own);
    free(b->regions);
    *b = (sk_blocks_t){0};
}

char *sk_xstrndup(const char *s, size_t n)
{
    char *p = sk_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int64_t sk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t sk_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int sk_log_level_parse(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < SK_ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

void sk_log(sk_log_level_t level, const char *fmt, ...)
{
    static const char *const tags[] = {"debug", "info", "warn", "error"};
    if (level < sk_log_level)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : SK_MIN((size_t)m, sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

int sk_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (len == 0)
        return -EINVAL;
    if (s[0] == '-') {
        neg = 1;
        i = 1;
        if (len == 1)
            return -EINVAL;
    }
    uint64_t v = 0;
    for (; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9)
            return -EINVAL;
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (!neg && v > (uint64_t)INT64_MAX)
        return -ERANGE;
    if (neg && v > (uint64_t)INT64_MAX + 1)
        return -ERANGE;
    int64_t r = neg ? (int64_t)(0 - v) : (int64_t)v;
    if (r < min || r > max)
        return -ERANGE;
    *out = r;
    return 0;
}
