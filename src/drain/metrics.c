/* The drain's metrics: rendering, and the server thread that answers scrapes. */
#include "drain/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/server.h"
#include "loop/loop.h"
#include "util/common.h"

void sk_drain_metrics_render(sk_buf_t *b, const sk_drain_stats_t *st)
{
    int64_t total = 0;
    sk_buf_puts(b, "# HELP seckill_drain_lag Orders in the stream not yet in the database (undelivered + "
                   "unacknowledged), by sale.\n# TYPE seckill_drain_lag gauge\n");
    for (size_t i = 0; i < st->n_sales; i++) {
        const sk_drain_sale_stats_t *s = &st->sales[i];
        sk_buf_printf(b, "seckill_drain_lag{sale=\"%s\"} %lld\n", s->id, (long long)(s->lag + s->pending));
        total += s->lag + s->pending;
    }
    sk_buf_printf(b,
                  "# HELP seckill_drain_lag_total Orders not yet in the database, all sales.\n"
                  "# TYPE seckill_drain_lag_total gauge\nseckill_drain_lag_total %lld\n"
                  "# TYPE seckill_drain_stream_length gauge\n",
                  (long long)total);
    for (size_t i = 0; i < st->n_sales; i++)
        sk_buf_printf(b, "seckill_drain_stream_length{sale=\"%s\"} %lld\n", st->sales[i].id,
                      (long long)st->sales[i].length);
    sk_buf_puts(b, "# HELP seckill_drain_stream_active Whether the sale's stream is still read for new entries "
                   "(0: finished and drained; its length is still watched).\n"
                   "# TYPE seckill_drain_stream_active gauge\n");
    for (size_t i = 0; i < st->n_sales; i++)
        sk_buf_printf(b, "seckill_drain_stream_active{sale=\"%s\"} %d\n", st->sales[i].id, st->sales[i].active);
    sk_buf_puts(b, "# HELP seckill_drain_reconcile_diff Units the sale has sold in Redis (its sold count) minus the "
                   "units of its confirmed orders in the database: 0 once the drain caught up; negative means the "
                   "database holds confirmed units Redis does not (or a refund not carried yet).\n"
                   "# TYPE seckill_drain_reconcile_diff gauge\n");
    for (size_t i = 0; i < st->n_sales; i++)
        if (st->sales[i].diff_known)
            sk_buf_printf(b, "seckill_drain_reconcile_diff{sale=\"%s\"} %lld\n", st->sales[i].id,
                          (long long)st->sales[i].diff);
    sk_buf_puts(b, "# HELP seckill_drain_retired Whether the sale is retired (over, drained, reconciled: its "
                   "holders and stream expire after --retention).\n# TYPE seckill_drain_retired gauge\n");
    for (size_t i = 0; i < st->n_sales; i++)
        sk_buf_printf(b, "seckill_drain_retired{sale=\"%s\"} %d\n", st->sales[i].id, st->sales[i].retired);
    sk_buf_printf(b,
                  "# HELP seckill_drain_trimmed_total Stream entries trimmed once every consumer group "
                  "acknowledged them.\n# TYPE seckill_drain_trimmed_total counter\nseckill_drain_trimmed_total %llu\n"
                  "# TYPE seckill_drain_retired_total counter\nseckill_drain_retired_total %llu\n"
                  "# HELP seckill_drain_replica_waits_total Batches held back because fewer replicas than "
                  "--replicas-ack had their entries.\n# TYPE seckill_drain_replica_waits_total counter\n"
                  "seckill_drain_replica_waits_total %llu\n",
                  (unsigned long long)st->trimmed, (unsigned long long)st->retired,
                  (unsigned long long)st->replica_waits);
    sk_buf_printf(b,
                  "# HELP seckill_drain_orders_total Orders inserted into the database.\n"
                  "# TYPE seckill_drain_orders_total counter\nseckill_drain_orders_total %llu\n"
                  "# HELP seckill_drain_transitions_total Orders' transitions written (those of one order in "
                  "one batch merged; with re-deliveries).\n"
                  "# TYPE seckill_drain_transitions_total counter\nseckill_drain_transitions_total %llu\n"
                  "# HELP seckill_drain_events_total Trail entries (operator controls) written (with "
                  "re-deliveries).\n# TYPE seckill_drain_events_total counter\nseckill_drain_events_total %llu\n"
                  "# HELP seckill_drain_entries_total Stream entries written (with re-deliveries).\n"
                  "# TYPE seckill_drain_entries_total counter\nseckill_drain_entries_total %llu\n"
                  "# TYPE seckill_drain_batches_total counter\nseckill_drain_batches_total %llu\n"
                  "# TYPE seckill_drain_malformed_total counter\nseckill_drain_malformed_total %llu\n"
                  "# TYPE seckill_drain_errors_total counter\n"
                  "seckill_drain_errors_total{store=\"redis\"} %llu\n"
                  "seckill_drain_errors_total{store=\"%s\"} %llu\n"
                  "# TYPE seckill_drain_up gauge\n"
                  "seckill_drain_up{store=\"redis\"} %d\nseckill_drain_up{store=\"%s\"} %d\n"
                  "# TYPE seckill_drain_last_batch_seconds gauge\nseckill_drain_last_batch_seconds %.6f\n"
                  "# TYPE seckill_drain_sales gauge\nseckill_drain_sales %zu\n",
                  (unsigned long long)st->orders, (unsigned long long)st->transitions, (unsigned long long)st->events,
                  (unsigned long long)st->entries, (unsigned long long)st->batches, (unsigned long long)st->malformed,
                  (unsigned long long)st->redis_errors, st->db_name, (unsigned long long)st->db_errors, st->redis_up,
                  st->db_name, st->db_up, st->last_batch_s, st->n_sales);
}

/* ---- the server -------------------------------------------------------------------------- */

struct sk_drain_metrics {
    pthread_mutex_t mu;
    char *text; /* the last text published (guarded by mu) */
    size_t text_len;
    sk_loop_t *loop;
    sk_http_server_t *server;
    sk_http_config_t cfg;
    sk_async_t stop;
    pthread_t thread;
};

static void handle(sk_http_exchange_t *x, void *arg)
{
    sk_drain_metrics_t *m = arg;
    const sk_http_request_t *req = x->req;
    if (req->path_len == 8 && memcmp(req->path, "/metrics", 8) == 0) {
        pthread_mutex_lock(&m->mu);
        sk_http_respond(x, 200, "text/plain; version=0.0.4; charset=utf-8", m->text ? m->text : "", m->text_len);
        pthread_mutex_unlock(&m->mu);
    } else if (req->path_len == 8 && memcmp(req->path, "/healthz", 8) == 0) {
        static const char body[] = "{\"status\":\"ok\"}\n";
        sk_http_respond(x, 200, "application/json", body, sizeof(body) - 1);
    } else {
        sk_http_respond_error(x, 404, "not_found", "the drain serves /metrics and /healthz");
    }
}

static void on_stop(sk_loop_t *loop, sk_async_t *a)
{
    (void)a;
    sk_loop_stop(loop);
}

static void *server_main(void *arg)
{
    sk_drain_metrics_t *m = arg;
    sk_loop_run_or_exit(m->loop, "drain metrics");
    return NULL;
}

sk_drain_metrics_t *sk_drain_metrics_start(const char *host, int port, char *err, size_t err_size)
{
    int fd = sk_http_listen(host, port);
    if (fd < 0) {
        snprintf(err, err_size, "cannot listen on %s:%d: %s", host, port, strerror(-fd));
        return NULL;
    }
    sk_drain_metrics_t *m = sk_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    m->cfg =
        (sk_http_config_t){.header_timeout_ms = 10000, .idle_timeout_ms = 60000, .max_conns = 64, .access_log_fd = -1};
    if (!(m->loop = sk_loop_new()))
        goto fail_fd;
    if (sk_async_init(m->loop, &m->stop, on_stop) < 0)
        goto fail_loop;
    if (!(m->server = sk_http_server_new(m->loop, fd, &m->cfg, handle, m)))
        goto fail_async;
    if (pthread_create(&m->thread, NULL, server_main, m) != 0)
        goto fail_server;
    return m;

fail_server:
    sk_http_server_free(m->server);
    fd = -1; /* the server owned it */
fail_async:
    sk_async_close(m->loop, &m->stop);
fail_loop:
    sk_loop_free(m->loop);
fail_fd:
    if (fd >= 0)
        close(fd);
    pthread_mutex_destroy(&m->mu);
    free(m);
    snprintf(err, err_size, "cannot start the metrics server");
    return NULL;
}

void sk_drain_metrics_publish(sk_drain_metrics_t *m, sk_buf_t *b)
{
    pthread_mutex_lock(&m->mu);
    free(m->text);
    m->text = b->data;
    m->text_len = b->len;
    pthread_mutex_unlock(&m->mu);
    memset(b, 0, sizeof(*b));
}

void sk_drain_metrics_stop(sk_drain_metrics_t *m)
{
    if (!m)
        return;
    sk_async_send(&m->stop);
    pthread_join(m->thread, NULL);
    sk_http_server_free(m->server);
    sk_async_close(m->loop, &m->stop);
    sk_loop_free(m->loop);
    free(m->text);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
