/* src/util/common.c: the memory of the big hash tables. A table from sk_mem_table_new is
 * zero at every size (below and above the size that gets its own mapping), and
 * sk_mem_prefault touches each 4 KiB page once, in order, `pages` at a time, leaving the
 * zeros as they were and stopping exactly at the end, whatever the length. Blocks
 * (sk_blocks_t) are zero, 64-byte aligned, never overlap, fill a 2 MiB-aligned region
 * before the next one is mapped, and a block of a whole region's size gets a region. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

SK_TEST(blocks_are_zero_disjoint_and_fill_aligned_regions)
{
    sk_blocks_t b = {0};
    sk_blocks_free(&b); /* empty: nothing to free */
    /* Sizes as the holders ask: pages of holders and orders, string chunks, odd ones. */
    const size_t sizes[] = {640u << 10, 1u << 20, 1u << 20, 100, 1, 640u << 10, 3u << 20, SK_BLOCKS_REGION, 4096};
    char *got[SK_ARRAY_LEN(sizes)];
    for (size_t i = 0; i < SK_ARRAY_LEN(sizes); i++) {
        got[i] = sk_blocks_alloc(&b, sizes[i]);
        ASSERT_TRUE(got[i] != NULL);
        ASSERT_EQ((uintptr_t)got[i] % 64, 0);
        size_t nonzero = 0;
        for (size_t k = 0; k < sizes[i]; k += 4093)
            nonzero += got[i][k] != 0;
        nonzero += got[i][sizes[i] - 1] != 0;
        ASSERT_EQ(nonzero, 0);
        memset(got[i], (int)(i + 1), sizes[i]); /* a block's bytes are its own */
    }
    for (size_t i = 0; i < SK_ARRAY_LEN(sizes); i++) {
        ASSERT_EQ(got[i][0], (char)(i + 1));
        ASSERT_EQ(got[i][sizes[i] - 1], (char)(i + 1));
    }
    if (!SK_BLOCKS_CARVED) { /* AddressSanitizer: a block is an allocation of its own */
        ASSERT_EQ(b.n_regions, SK_ARRAY_LEN(sizes));
        sk_blocks_free(&b);
        return;
    }
    /* 640 KiB + 1 MiB + 1 MiB + 128 + 64 + 640 KiB fill the first region in order. */
    ASSERT_EQ((uintptr_t)got[0] % ((uintptr_t)2 << 20), 0);
    ASSERT_EQ(got[1], got[0] + (640u << 10));
    ASSERT_EQ(got[2], got[1] + (1u << 20));
    ASSERT_EQ(got[3], got[2] + (1u << 20));
    ASSERT_EQ(got[4], got[3] + 128);
    ASSERT_EQ(got[5], got[4] + 64);
    /* 3 MiB does not fit the ~768 KiB left: a new region; a whole region's size another;
     * then the 4 KiB fits in neither's rest (1 MiB is left in the second region, but only
     * the newest region is carved from). */
    for (size_t i = 6; i < SK_ARRAY_LEN(sizes); i++)
        ASSERT_EQ((uintptr_t)got[i] % ((uintptr_t)2 << 20), 0);
    ASSERT_EQ(b.n_regions, 4);
    sk_blocks_free(&b);
    ASSERT_EQ(b.n_regions, 0);
    ASSERT_TRUE(sk_blocks_alloc(&b, 1) != NULL); /* usable again after a free */
    sk_blocks_free(&b);
    /* 0 bytes: a block of its own, even as the first one (no region yet). */
    char *z0 = sk_blocks_alloc(&b, 0), *z1 = sk_blocks_alloc(&b, 0);
    ASSERT_TRUE(z0 != NULL);
    ASSERT_TRUE(z1 != NULL && z1 != z0);
    sk_blocks_free(&b);
}

SK_TEST_MAIN(SK_RUN(table_memory_is_zero_at_every_size); SK_RUN(prefault_walks_every_page_once_and_stops_at_the_end);
             SK_RUN(blocks_are_zero_disjoint_and_fill_aligned_regions);)
