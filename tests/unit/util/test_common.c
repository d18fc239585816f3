/* src/util/common.c: the memory of the big hash tables. A table from sk_mem_table_new is
 * zero at every size (below and above the size that gets its own mapping), and
 * sk_mem_prefault touches each 4 KiB page once, in order, `pages` at a time, leaving the
 * zeros as they were and stopping exactly at the end, whatever the length. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

SK_TEST_MAIN(SK_RUN(table_memory_is_zero_at_every_size); SK_RUN(prefault_walks_every_page_once_and_stops_at_the_end);)
