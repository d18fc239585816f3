/* src/util/common.c: the memory of the big hash tables. A table from sk_mem_table_new is
 * zero at every size (below and above the size that gets its own mapping), and
 * sk_mem_prefault touches each 4 KiB page once, in order, `pages` at a time, leaving the
 * zeros as they were and stopping exactly at the end, whatever the length. The pager
 * (sk_mem_populate_ahead) makes a range resident without changing a byte of it, also
 * where it is in use already, shrugs off a range unmapped before it gets there, takes a
 * big range turn about with the others, and touches nothing of a range forgotten
 * (sk_mem_populate_forget) while it keeps the rest of it.
 * Blocks (sk_blocks_t) are 64-byte aligned and never overlap; past the first
 * SK_BLOCKS_PLAIN bytes they fill a region before the next one is used, the next one
 * mapped ahead (halfway to the first region, and halfway through each), and a block of a
 * whole region's size gets a region. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "test.h"
#include "util/common.h"

SK_TEST(table_memory_is_zero_at_every_size)
{
    const size_t sizes[] = {1, 4095, 4096, (1u << 20) - 1, 1u << 20, (5u << 20) + 123};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        unsigned char *p = sk_mem_table_new(n);
        ASSERT_TRUE(p != NULL);
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i += 511)
            nonzero += p[i] != 0;
        nonzero += p[n - 1] != 0;
        ASSERT_EQ(nonzero, 0);
        p[0] = p[n - 1] = 7; /* writable from end to end */
        sk_mem_table_free(p, n);
    }
    sk_mem_table_free(NULL, 1u << 20); /* nothing to free */
}

SK_TEST(prefault_walks_every_page_once_and_stops_at_the_end)
{
    const size_t lens[] = {1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 17, (2u << 20) + 5};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        size_t n = lens[k];
        char *p = sk_mem_table_new(n);
        size_t done = 0, calls = 0, pages = (n + 4095) / 4096;
        while (!sk_mem_prefault(p, n, &done, 1)) {
            calls++;
            ASSERT_EQ(done, calls * 4096); /* one page per call */
            if (calls > pages)
                break;
        }
        ASSERT_EQ(done, n);
        ASSERT_EQ(calls + 1, pages); /* the call that reached the end said so */
        ASSERT_TRUE(sk_mem_prefault(p, n, &done, 1)); /* and stays done */
        ASSERT_EQ(done, n);
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i++)
            nonzero += p[i] != 0;
        ASSERT_EQ(nonzero, 0);
        /* Many pages per call: the same end. */
        done = 0;
        ASSERT_TRUE(sk_mem_prefault(p, n, &done, pages));
        ASSERT_EQ(done, n);
        done = 0;
        ASSERT_TRUE(sk_mem_prefault(p, n, &done, 0) == (n == 0));
        ASSERT_EQ(done, 0);
        sk_mem_table_free(p, n);
    }
}

/* Pages of [p, p + n) resident now. */
static size_t resident(void *p, size_t n)
{
    size_t pages = (n + 4095) / 4096, r = 0;
    unsigned char *vec = malloc(pages);
    ASSERT_TRUE(vec != NULL);
    ASSERT_EQ(mincore(p, n, vec), 0);
    for (size_t i = 0; i < pages; i++)
        r += vec[i] & 1;
    free(vec);
    return r;
}

/* Whether this kernel faults memory in on request (Linux 5.14 and later): asked of a
 * page of its own. */
static bool can_populate(void)
{
    void *probe = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(probe != MAP_FAILED);
    bool can = madvise(probe, 4096, 23 /* MADV_POPULATE_WRITE */) == 0;
    munmap(probe, 4096);
    return can;
}

/* Waits (up to 10 s) until `pages` pages of [p, p + n) are resident; returns how many are. */
static size_t wait_resident(void *p, size_t n, size_t pages)
{
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 10000 && resident(p, n) < pages; i++)
        nanosleep(&ms, NULL);
    return resident(p, n);
}

/* Hands [p, p + n) to the pager, asking again while it is busy (its lock taken, for a
 * moment, by the pager itself); the answer that stuck. */
static sk_pager_answer_t populate(void *p, size_t n)
{
    struct timespec us = {0, 100000};
    sk_pager_answer_t a;
    for (int i = 0; i < 10000 && (a = sk_mem_populate_ahead(p, n)) == SK_PAGER_BUSY; i++)
        nanosleep(&us, NULL);
    return a;
}

/* Waits (up to 10 s) until the pager has nothing left to do; returns what is left. */
static size_t wait_pager_idle(void)
{
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 10000 && sk_mem_pager_queued() > 0; i++)
        nanosleep(&ms, NULL);
    return sk_mem_pager_queued();
}

SK_TEST(pager_faults_memory_in_and_changes_nothing)
{
    const size_t n = (size_t)8 << 20, used = (size_t)1 << 20, pages = n / 4096;
    unsigned char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(p != MAP_FAILED);
    bool can = can_populate();
    sk_pager_answer_t yes = can ? SK_PAGER_QUEUED : SK_PAGER_NEVER;
    ASSERT_TRUE(resident(p + used, n - used) < pages / 2); /* fresh: not faulted in yet */
    for (size_t i = 0; i < used; i++)
        p[i] = (unsigned char)(i * 7 + 1); /* the first MiB in use already */
    /* An unaligned range, widened to its pages; and one unmapped before the pager gets to
     * it (without being forgotten), which it must skip. */
    ASSERT_EQ(populate(p + 100, n - 200), yes);
    void *gone = mmap(NULL, (size_t)4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(gone != MAP_FAILED);
    ASSERT_EQ(populate(gone, (size_t)4 << 20), yes);
    munmap(gone, (size_t)4 << 20);
    /* And one mapped again for what cannot be faulted in for writing. */
    void *guard = mmap(NULL, (size_t)2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(guard != MAP_FAILED);
    ASSERT_EQ(populate(guard, (size_t)2 << 20), yes);
    ASSERT_TRUE(mmap(guard, (size_t)2 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == guard);
    ASSERT_EQ(sk_mem_populate_ahead(p, 4096), SK_PAGER_NEVER); /* too small to be worth it */
    if (can)
        ASSERT_EQ(wait_resident(p, n, pages), pages);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++)
        wrong += p[i] != (i < used ? (unsigned char)(i * 7 + 1) : 0);
    ASSERT_EQ(wrong, 0);
    ASSERT_EQ(wait_pager_idle(), 0);
    munmap(p, n);
    munmap(guard, (size_t)2 << 20);
    /* Still at work after the ranges it had to skip. */
    unsigned char *q = mmap(NULL, (size_t)2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(q != MAP_FAILED);
    ASSERT_EQ(populate(q, (size_t)2 << 20), yes);
    if (can)
        ASSERT_EQ(wait_resident(q, (size_t)2 << 20, 512), 512);
    sk_mem_populate_forget(q, (size_t)2 << 20);
    munmap(q, (size_t)2 << 20);
    /* A big range is taken a step at a time, turn about with the others: one asked for
     * after it is resident long before it. Forgotten, none of it is touched any more, and
     * the pieces of it around a part forgotten stay queued. */
    size_t big = (size_t)256 << 20, mib = (size_t)1 << 20;
    unsigned char *g = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *r = mmap(NULL, mib, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(g != MAP_FAILED && r != MAP_FAILED);
    ASSERT_EQ(populate(g, big), yes);
    ASSERT_EQ(populate(r, mib), yes);
    if (can) {
        ASSERT_EQ(wait_resident(r, mib, 256), 256);
        ASSERT_TRUE(resident(g, big) < big / 4096 / 2);
        /* Its last 512 MiB but 1 forgotten: the 1 MiB at its end is still faulted in, the
         * rest of the forgotten part never. */
        sk_mem_populate_forget(g + big / 2, big / 2 - mib);
        size_t in_forgotten = resident(g + big / 2, big / 2 - mib);
        ASSERT_EQ(wait_resident(g + big - mib, mib, 256), 256);
        ASSERT_EQ(wait_pager_idle(), 0);
        ASSERT_EQ(resident(g + big / 2, big / 2 - mib), in_forgotten);
        ASSERT_EQ(resident(g, big / 2), big / 2 / 4096);
    }
    sk_mem_populate_forget(g, big);
    ASSERT_EQ(wait_pager_idle(), 0);
    munmap(g, big);
    munmap(r, mib);
}

SK_TEST(blocks_are_disjoint_and_big_owners_get_regions_mapped_ahead)
{
    sk_blocks_t b = {0};
    sk_blocks_free(&b); /* empty: nothing to free */
    /* Pages of holders (640 KiB) and of orders and string chunks (1 MiB), as a big sale
     * asks for them: 42 MiB in all. */
    enum { N = 48 };
    char *got[N], *ahead[N];
    size_t sz[N];
    for (size_t i = 0; i < N; i++) {
        sz[i] = i % 3 == 0 ? 640u << 10 : 1u << 20;
        ahead[i] = b.ahead; /* the region mapped ahead before this block */
        got[i] = sk_blocks_alloc(&b, sz[i]);
        ASSERT_TRUE(got[i] != NULL);
        ASSERT_EQ((uintptr_t)got[i] % 64, 0);
        memset(got[i], (int)(i + 1), sz[i]); /* a block's bytes are its own */
    }
    for (size_t i = 0; i < N; i++) {
        ASSERT_EQ(got[i][0], (char)(i + 1));
        ASSERT_EQ(got[i][sz[i] - 1], (char)(i + 1));
    }
    if (!SK_BLOCKS_CARVED) { /* AddressSanitizer: every block is an allocation of its own */
        ASSERT_EQ(b.n_own, N);
        ASSERT_EQ(b.n_regions, 0);
        ASSERT_TRUE(b.ahead == NULL);
    } else {
        /* Blocks of their own until SK_BLOCKS_PLAIN bytes (the first region mapped ahead
         * halfway there), then carved in order from page-aligned regions, each the one
         * mapped ahead, the next one when a block does not fit the rest of the newest. */
        size_t i = 0, own = 0;
        while (own < SK_BLOCKS_PLAIN) {
            ASSERT_TRUE((ahead[i] != NULL) == (own + SK_BLOCKS_AHEAD > SK_BLOCKS_PLAIN));
            own += sz[i++];
        }
        ASSERT_EQ(b.n_own, i);
        ASSERT_EQ(b.own_bytes, own);
        ASSERT_TRUE(got[i] == ahead[i] && got[i] != NULL);
        size_t regions = 1, used = sz[i];
        for (size_t k = i + 1; k < N; k++) {
            if (used + sz[k] > SK_BLOCKS_REGION) {
                regions++;
                used = 0;
                ASSERT_TRUE(got[k] == ahead[k] && got[k] != NULL); /* the one mapped ahead */
            } else {
                ASSERT_EQ(got[k], got[k - 1] + sz[k - 1]);
                ASSERT_TRUE((ahead[k] != NULL) == (used > SK_BLOCKS_REGION - SK_BLOCKS_AHEAD));
            }
            ASSERT_EQ((uintptr_t)got[k] % 4096, (uintptr_t)(used % 4096)); /* pages */
            used += sz[k];
        }
        ASSERT_TRUE(regions >= 2);
        ASSERT_EQ(b.n_regions, regions);
        /* What is handed to the pager past the next free byte: at least SK_BLOCKS_AHEAD,
         * at most a step more; and of the region ahead, nothing else is faulted in. (More
         * blocks first, until the region ahead is mapped.) */
        for (int k = 0; k < 32 && !b.ahead; k++)
            memset(sk_blocks_alloc(&b, 1u << 20), 1, 1u << 20);
        ASSERT_TRUE(b.ahead != NULL);
        regions = b.n_regions;
        size_t now = SK_BLOCKS_REGION - b.left;
        size_t lead = (b.cur_queued > now ? b.cur_queued - now : 0) + b.ahead_queued;
        ASSERT_TRUE(lead >= SK_BLOCKS_AHEAD && lead <= SK_BLOCKS_AHEAD + SK_BLOCKS_STEP);
        if (b.ahead && can_populate()) {
            ASSERT_EQ(wait_resident(b.ahead, b.ahead_queued, b.ahead_queued / 4096), b.ahead_queued / 4096);
            ASSERT_EQ(resident(b.ahead + b.ahead_queued, SK_BLOCKS_REGION - b.ahead_queued), 0);
        }
        /* A block of a whole region's size gets a region of its own. */
        char *next = b.ahead, *whole = sk_blocks_alloc(&b, SK_BLOCKS_REGION);
        ASSERT_EQ((uintptr_t)whole % 4096, 0);
        ASSERT_TRUE(next == NULL || whole == next);
        ASSERT_EQ(b.n_regions, regions + 1);
        memset(whole, 0x5a, SK_BLOCKS_REGION);
        ASSERT_EQ(got[N - 1][sz[N - 1] - 1], (char)N);
    }
    sk_blocks_free(&b);
    ASSERT_EQ(b.n_regions, 0);
    ASSERT_EQ(b.n_own, 0);
    ASSERT_TRUE(b.ahead == NULL);
    ASSERT_TRUE(sk_blocks_alloc(&b, 1) != NULL); /* usable again after a free */
    sk_blocks_free(&b);
    /* 0 bytes: a block of its own, even as the first one. */
    char *z0 = sk_blocks_alloc(&b, 0), *z1 = sk_blocks_alloc(&b, 0);
    ASSERT_TRUE(z0 != NULL);
    ASSERT_TRUE(z1 != NULL && z1 != z0);
    sk_blocks_free(&b);
}

SK_TEST_MAIN(SK_RUN(table_memory_is_zero_at_every_size); SK_RUN(prefault_walks_every_page_once_and_stops_at_the_end);
             SK_RUN(pager_faults_memory_in_and_changes_nothing);
             SK_RUN(blocks_are_disjoint_and_big_owners_get_regions_mapped_ahead);)
