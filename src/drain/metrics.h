/* The drain's metrics: the Prometheus text of its statistics, and a small HTTP server
 * (/metrics, /healthz) on a thread of its own.
 *
 * Threads: the drain's main thread renders the text (about once a second) and
 * publishes it; the server thread only copies the last text published into its
 * answers, under a mutex. So a slow scrape never holds the drain up, and the drain's
 * state is never read from another thread. */
#ifndef SK_DRAIN_METRICS_H
#define SK_DRAIN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/** One sale's stream as the drain last saw it. */
typedef struct {
    const char *id;
    int64_t lag; /* entries not yet delivered to the group */
    int64_t pending; /* delivered, not yet acknowledged */
    int64_t length; /* entries in the stream */
    bool active; /* still read for new entries */
    int64_t diff; /* units sold in Redis minus units of confirmed orders in the database */
    bool diff_known; /* both counts were read (the database implements counting) */
    bool retired; /* over, drained and reconciled: its keys in Redis expire */
} sk_drain_sale_stats_t;

typedef struct {
    const char *db_name; /* label value of the database ("postgres") */
    const sk_drain_sale_stats_t *sales;
    size_t n_sales;
    uint64_t orders, entries, batches, malformed, redis_errors, db_errors;
    uint64_t transitions, events; /* orders' transitions and trail entries written */
    uint64_t trimmed; /* stream entries trimmed after they were acknowledged */
    uint64_t retired; /* sales retired by this drain */
    uint64_t replica_waits; /* batches held back: too few replicas had their entries */
    bool redis_up, db_up;
    double last_batch_s;
} sk_drain_stats_t;

/** Appends the Prometheus text of st to b. */
void sk_drain_metrics_render(sk_buf_t *b, const sk_drain_stats_t *st);

typedef struct sk_drain_metrics sk_drain_metrics_t;

/** Listens on host:port and starts the server thread. Returns NULL with one clear
 *  line in err when it cannot. */
sk_drain_metrics_t *sk_drain_metrics_start(const char *host, int port, char *err, size_t err_size);
/** Replaces the text served: takes b's data (b is left empty). Any thread. */
void sk_drain_metrics_publish(sk_drain_metrics_t *m, sk_buf_t *b);
/** Stops the thread, closes the listener and frees; NULL is ignored. */
void sk_drain_metrics_stop(sk_drain_metrics_t *m);

#endif
