#include "util/common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
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

/* The ledger's memory stays on ordinary pages even where the kernel gives huge pages
 * to every mapping (transparent_hugepage=always): a huge page's first touch, if the
 * ledger got there before the pager, would stall it for milliseconds. */
static void no_huge_pages(void *p, size_t n)
{
#ifdef MADV_NOHUGEPAGE
    (void)madvise(p, n, MADV_NOHUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

#define TABLE_MAP_MIN ((size_t)1 << 20)
#define PAGER_MIN ((size_t)64 << 10) /* a smaller range is cheaper faulted in by its owner */

void *sk_mem_table_new(size_t n)
{
    if (n < TABLE_MAP_MIN)
        return sk_xcalloc(1, n);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        oom(n);
    no_huge_pages(p, n);
    return p;
}

void sk_mem_table_free(void *p, size_t n)
{
    if (!p)
        return;
    if (n >= PAGER_MIN) /* it may have been given to the pager (sk_mem_populate_ahead) */
        sk_mem_populate_forget(p, n);
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

/* ---- the pager: memory faulted in ahead, on a thread of its own ---------------------- */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#define PAGER_QUEUE 64 /* ranges waiting; a request beyond them is refused */
/* Faulted in per call (64 pages of 4 KiB, ~0.3-0.6 ms on the VMs). The call holds the
 * process's memory map for reading, and a mmap or munmap of the ledger's (a new region, a
 * table moved) waits for it: a short step keeps that wait short. For the same reason the
 * pager keeps the priority of the thread that starts it (the first to queue a range, the
 * ledger; seckill changes no thread's priority) and is not lowered: a pager held off the
 * CPU in the middle of a step would hold the ledger up too. */
#define PAGER_STEP ((size_t)256 << 10)

typedef struct {
    char *p;
    size_t n;
} pager_range_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the pager waits on it for ranges */
    pthread_cond_t step_done; /* sk_mem_populate_forget waits on it for the step in hand */
    pager_range_t q[PAGER_QUEUE];
    size_t head, len;
    pager_range_t step; /* being faulted in now, without the lock ({NULL, 0}: none) */
    bool started, broken; /* broken: no thread, or a kernel without MADV_POPULATE_WRITE */
} pager = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .step_done = PTHREAD_COND_INITIALIZER};

static bool overlaps(pager_range_t r, uintptr_t from, uintptr_t to)
{
    return (uintptr_t)r.p < to && (uintptr_t)r.p + r.n > from;
}

static void *pager_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "sk-pager");
    pthread_mutex_lock(&pager.mu);
    for (;;) {
        while (!pager.len)
            pthread_cond_wait(&pager.cv, &pager.mu);
        /* A step off the oldest range, which then goes to the back of the queue if it has
         * more: a range asked for later waits for a step of each before it, not for all
         * of a big one. */
        char *p = pager.q[pager.head].p;
        size_t n = SK_MIN(pager.q[pager.head].n, PAGER_STEP);
        pager.q[pager.head].p += n;
        pager.q[pager.head].n -= n;
        size_t head = pager.head;
        pager.head = (pager.head + 1) % PAGER_QUEUE;
        if (pager.q[head].n)
            pager.q[(pager.head + pager.len - 1) % PAGER_QUEUE] = pager.q[head];
        else
            pager.len--;
        pager.step = (pager_range_t){p, n};
        pthread_mutex_unlock(&pager.mu);
        /* Whatever it says is only about this step: ENOMEM, the range was unmapped
         * meanwhile; EINVAL or EFAULT, its address was mapped again for something that
         * cannot be faulted in for writing (a guard page, a read-only file). The memory
         * was never read or written, so there is nothing to undo either way. (An owner
         * forgets its ranges before it unmaps them: sk_mem_populate_forget.) */
        (void)madvise(p, n, MADV_POPULATE_WRITE);
        pthread_mutex_lock(&pager.mu);
        pager.step = (pager_range_t){NULL, 0};
        pthread_cond_broadcast(&pager.step_done);
    }
    return NULL;
}

/* Starts the pager, once, under pager.mu: only where the kernel faults memory in for
 * writing on request (asked of a page of its own), with every signal blocked (whoever
 * waits for them, serve's sigwait, gets them all). */
static void pager_start(void)
{
    pager.started = true;
    long page = sysconf(_SC_PAGESIZE);
    void *probe = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe == MAP_FAILED || madvise(probe, (size_t)page, MADV_POPULATE_WRITE) != 0)
        pager.broken = true;
    if (probe != MAP_FAILED)
        munmap(probe, (size_t)page);
    if (pager.broken)
        return;
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&t, &a, pager_main, NULL) != 0)
        pager.broken = true;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
}

/* [p, p + n) widened to whole pages; false for a range that wraps around. */
static bool page_range(const void *p, size_t n, uintptr_t *from, uintptr_t *to)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    *from = (uintptr_t)p & ~(page - 1);
    *to = ((uintptr_t)p + n + page - 1) & ~(page - 1);
    return *to > *from && (uintptr_t)p + n >= (uintptr_t)p;
}

sk_pager_answer_t sk_mem_populate_ahead(void *p, size_t n)
{
    uintptr_t from, to;
    if (n < PAGER_MIN || !page_range(p, n, &from, &to))
        return SK_PAGER_NEVER;
    /* The caller (the ledger) never waits: if the pager holds the lock, it is asked
     * again later. */
    if (pthread_mutex_trylock(&pager.mu) != 0)
        return SK_PAGER_BUSY;
    if (!pager.started)
        pager_start();
    sk_pager_answer_t a = pager.broken ? SK_PAGER_NEVER : pager.len < PAGER_QUEUE ? SK_PAGER_QUEUED : SK_PAGER_BUSY;
    if (a == SK_PAGER_QUEUED)
        pager.q[(pager.head + pager.len++) % PAGER_QUEUE] = (pager_range_t){(char *)from, (size_t)(to - from)};
    pthread_mutex_unlock(&pager.mu);
    if (a == SK_PAGER_QUEUED)
        pthread_cond_signal(&pager.cv);
    return a;
}

size_t sk_mem_prefault_start(void *p, size_t n)
{
    return sk_mem_populate_ahead(p, n) == SK_PAGER_QUEUED ? n : 0;
}

void sk_mem_populate_forget(void *p, size_t n)
{
    uintptr_t from, to;
    if (!n || !page_range(p, n, &from, &to))
        return;
    pthread_mutex_lock(&pager.mu);
    /* What is queued loses the part in [from, to): a range that holds it whole is cut in
     * two, the part after it left to its owner if the queue has no room for it (every
     * range queued before keeps its place). */
    pager_range_t was[PAGER_QUEUE];
    size_t len = pager.len, room = PAGER_QUEUE - len;
    for (size_t i = 0; i < len; i++)
        was[i] = pager.q[(pager.head + i) % PAGER_QUEUE];
    pager.len = 0;
    for (size_t i = 0; i < len; i++) {
        pager_range_t r = was[i];
        if (!overlaps(r, from, to)) {
            pager.q[(pager.head + pager.len++) % PAGER_QUEUE] = r;
            continue;
        }
        uintptr_t end = (uintptr_t)r.p + r.n;
        bool front = (uintptr_t)r.p < from;
        bool back = end > to;
        if (front)
            pager.q[(pager.head + pager.len++) % PAGER_QUEUE] = (pager_range_t){r.p, (size_t)(from - (uintptr_t)r.p)};
        if (back && front && room) /* cut in two: the back takes a free slot */
            room--;
        else if (back && front)
            back = false;
        else if (!back && !front)
            room++; /* gone whole: its slot is free */
        if (back)
            pager.q[(pager.head + pager.len++) % PAGER_QUEUE] = (pager_range_t){(char *)to, (size_t)(end - to)};
    }
    /* And the step in hand ends before the range is given back. */
    while (overlaps(pager.step, from, to))
        pthread_cond_wait(&pager.step_done, &pager.mu);
    pthread_mutex_unlock(&pager.mu);
}

size_t sk_mem_pager_queued(void)
{
    pthread_mutex_lock(&pager.mu);
    size_t bytes = pager.step.n;
    for (size_t i = 0; i < pager.len; i++)
        bytes += pager.q[(pager.head + i) % PAGER_QUEUE].n;
    pthread_mutex_unlock(&pager.mu);
    return bytes;
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

/* A region: its own anonymous mapping, on ordinary pages. (Huge pages were asked for
 * once: on the VMs a first touch of one took 2.5-5 ms, zeroing it and compacting memory
 * to find one, which stalled the ledger; the pager takes 4 KiB faults off its thread.) */
static char *region_new(void)
{
    char *p = mmap(NULL, SK_BLOCKS_REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        oom(SK_BLOCKS_REGION);
    no_huge_pages(p, SK_BLOCKS_REGION);
    return p;
}

static void push(char ***list, size_t *n, size_t *cap, char *p)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *list = sk_xrealloc(*list, *cap * sizeof(**list));
    }
    (*list)[(*n)++] = p;
}

/* Keeps SK_BLOCKS_AHEAD bytes past the next free byte queued to the pager, a step at a
 * time: the rest of the current region, then the start of the next one (mapped then).
 * Before the first region, the bytes past the next free one are the first region's, once
 * the malloc'd start is nearly used up. A step the pager is too busy for is asked again
 * at the next block; one it can never take (no pager here) the owner faults in itself. */
static void keep_ahead(sk_blocks_t *b)
{
    size_t used = b->n_regions ? SK_BLOCKS_REGION - b->left : 0;
    if (b->cur_queued < used)
        b->cur_queued = used & ~(size_t)4095; /* the cursor went past: those are faulted in */
    size_t lead = b->n_regions ? (b->cur_queued > used ? b->cur_queued - used : 0)
                               : (SK_BLOCKS_PLAIN > b->own_bytes ? SK_BLOCKS_PLAIN - b->own_bytes : 0);
    lead += b->ahead_queued;
    while (lead < SK_BLOCKS_AHEAD) {
        if (b->n_regions && b->cur_queued < SK_BLOCKS_REGION) {
            char *region = b->cur + b->left - SK_BLOCKS_REGION;
            size_t step = SK_MIN(SK_BLOCKS_STEP, SK_BLOCKS_REGION - b->cur_queued);
            if (sk_mem_populate_ahead(region + b->cur_queued, step) == SK_PAGER_BUSY)
                break; /* asked again at the next block */
            b->cur_queued += step;
            lead += step;
        } else if (b->ahead_queued < SK_BLOCKS_REGION) {
            if (!b->ahead)
                b->ahead = region_new();
            if (sk_mem_populate_ahead(b->ahead + b->ahead_queued, SK_BLOCKS_STEP) == SK_PAGER_BUSY)
                break;
            b->ahead_queued += SK_BLOCKS_STEP;
            lead += SK_BLOCKS_STEP;
        } else {
            break;
        }
    }
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
        if (SK_BLOCKS_CARVED)
            keep_ahead(b);
        return p;
    }
    if (n > b->left) {
        b->cur = b->ahead ? b->ahead : region_new();
        b->cur_queued = b->ahead ? b->ahead_queued : 0;
        b->ahead = NULL;
        b->ahead_queued = 0;
        push(&b->regions, &b->n_regions, &b->cap_regions, b->cur);
        b->left = SK_BLOCKS_REGION;
    }
    void *p = b->cur;
    b->cur += n;
    b->left -= n;
    keep_ahead(b);
    return p;
}

void sk_blocks_free(sk_blocks_t *b)
{
    for (size_t i = 0; i < b->n_own; i++)
        free(b->own[i]);
    for (size_t i = 0; i < b->n_regions; i++) {
        sk_mem_populate_forget(b->regions[i], SK_BLOCKS_REGION);
        munmap(b->regions[i], SK_BLOCKS_REGION);
    }
    if (b->ahead) {
        sk_mem_populate_forget(b->ahead, SK_BLOCKS_REGION);
        munmap(b->ahead, SK_BLOCKS_REGION);
    }
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
