/* src/drain/drain.c: when a sale's stream is finished (no longer read for new entries,
 * once drained). The drain's reading and writing run against real servers in the
 * cluster tests (tests/integration/test_cluster_*.py). */
#include "drain/drain.h"
#include "test.h"

SK_TEST(stream_finished)
{
    const int64_t ends = 1700000000000LL, after = SK_DRAIN_FINISHED_AFTER_MS;
    /* As many entries as units: sold out (each entry holds at least one order). */
    ASSERT_TRUE(sk_drain_stream_finished(10, 10, ends, ends - 5000));
    ASSERT_TRUE(!sk_drain_stream_finished(9, 10, ends, ends - 5000));
    /* The window, by Redis's clock: only well past the end. */
    ASSERT_TRUE(!sk_drain_stream_finished(0, 10, ends, ends));
    ASSERT_TRUE(!sk_drain_stream_finished(0, 10, ends, ends + after));
    ASSERT_TRUE(sk_drain_stream_finished(0, 10, ends, ends + after + 1));
    /* Redis's clock unknown: never finished by time. */
    ASSERT_TRUE(!sk_drain_stream_finished(0, 10, ends, -1));
    ASSERT_TRUE(sk_drain_stream_finished(10, 10, ends, -1));
}

SK_TEST_MAIN(SK_RUN(stream_finished);)
