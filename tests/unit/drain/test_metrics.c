/* src/drain/metrics.c: the Prometheus text of the drain's statistics. */
#include <stdio.h>

#include "drain/metrics.h"
#include "test.h"

static void assert_line(const sk_buf_t *b, const char *line)
{
    char want[256];
    snprintf(want, sizeof(want), "\n%s\n", line);
    char *text = strndup(b->data, b->len);
    if (!strstr(text, want))
        SK_FAIL_AT("no line \"%s\" in:\n%s", line, text);
    free(text);
}

SK_TEST(render)
{
    sk_drain_sale_stats_t sales[] = {{"s1", 3, 2, 40, true, 5, true, false},
                                     {"s2", 0, 0, 7, false, 0, true, true},
                                     {"s3", 0, 0, 0, true, 0, false, false}};
    sk_drain_stats_t st = {
        .db_name = "postgres",
        .sales = sales,
        .n_sales = 3,
        .orders = 1000,
        .entries = 47,
        .batches = 5,
        .malformed = 1,
        .redis_errors = 2,
        .db_errors = 3,
        .trimmed = 120,
        .retired = 1,
        .replica_waits = 4,
        .redis_up = true,
        .db_up = false,
        .last_batch_s = 0.25,
    };
    sk_buf_t b = {0};
    sk_drain_metrics_render(&b, &st);
    assert_line(&b, "seckill_drain_lag{sale=\"s1\"} 5"); /* undelivered + unacknowledged */
    assert_line(&b, "seckill_drain_lag{sale=\"s2\"} 0");
    assert_line(&b, "seckill_drain_lag_total 5");
    assert_line(&b, "seckill_drain_stream_length{sale=\"s1\"} 40");
    assert_line(&b, "seckill_drain_stream_active{sale=\"s1\"} 1");
    assert_line(&b, "seckill_drain_stream_active{sale=\"s2\"} 0");
    assert_line(&b, "seckill_drain_orders_total 1000");
    assert_line(&b, "seckill_drain_entries_total 47");
    assert_line(&b, "seckill_drain_batches_total 5");
    assert_line(&b, "seckill_drain_malformed_total 1");
    assert_line(&b, "seckill_drain_errors_total{store=\"redis\"} 2");
    assert_line(&b, "seckill_drain_errors_total{store=\"postgres\"} 3");
    assert_line(&b, "seckill_drain_up{store=\"redis\"} 1");
    assert_line(&b, "seckill_drain_up{store=\"postgres\"} 0");
    assert_line(&b, "seckill_drain_last_batch_seconds 0.250000");
    assert_line(&b, "seckill_drain_sales 3");
    assert_line(&b, "seckill_drain_reconcile_diff{sale=\"s1\"} 5"); /* Redis has 5 the database lacks */
    assert_line(&b, "seckill_drain_reconcile_diff{sale=\"s2\"} 0");
    char *text = strndup(b.data, b.len);
    ASSERT_TRUE(strstr(text, "seckill_drain_reconcile_diff{sale=\"s3\"}") == NULL); /* not counted yet */
    free(text);
    assert_line(&b, "seckill_drain_retired{sale=\"s2\"} 1");
    assert_line(&b, "seckill_drain_retired{sale=\"s1\"} 0");
    assert_line(&b, "seckill_drain_trimmed_total 120");
    assert_line(&b, "seckill_drain_retired_total 1");
    assert_line(&b, "seckill_drain_replica_waits_total 4");
    ASSERT_EQ(b.data[b.len - 1], '\n');
    sk_buf_free(&b);
}

SK_TEST(render_no_sales)
{
    sk_drain_stats_t st = {.db_name = "postgres"};
    sk_buf_t b = {0};
    sk_drain_metrics_render(&b, &st);
    assert_line(&b, "seckill_drain_lag_total 0");
    assert_line(&b, "seckill_drain_sales 0");
    sk_buf_free(&b);
}

SK_TEST_MAIN(SK_RUN(render); SK_RUN(render_no_sales);)
