/* What a run of seckill-bench is: its configuration, the outcomes it counts, and its
 * results (setup.h prepares the sale, run.h runs the flood, report.h and the auditor
 * read the results).
 *
 * Every request buys for one user drawn from the user space u1..uN: first every user
 * once in a shuffled order, then (when more requests are asked for) random users again,
 * like buyers clicking twice. A request that gets 503 or a network error is retried
 * with the same request_id. Each answer is counted under its outcome with its latency;
 * every order the service names (confirmed, duplicate, limit_reached) is remembered
 * for the audit, and each user keeps one byte of state.
 *
 * Ownership: the results own everything in them, their sale's strings included; the
 * caller releases them with sk_loadgen_results_free(). */
#ifndef SK_LOADGEN_SCENARIO_H
#define SK_LOADGEN_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loadgen/client.h"
#include "loadgen/histogram.h"
#include "loadgen/units.h"

/** What one answer was. The order matters: it is the order of the report. */
typedef enum {
    SK_OUT_CONFIRMED = 0,
    SK_OUT_DUPLICATE,
    SK_OUT_SOLD_OUT,
    SK_OUT_LIMIT_REACHED,
    SK_OUT_NOT_STARTED,
    SK_OUT_ENDED,
    SK_OUT_PAUSED, /* 409 paused: the operator paused the sale */
    SK_OUT_UNAVAILABLE,
    SK_OUT_RATE_LIMITED,
    SK_OUT_HTTP_ERROR,
    SK_OUT_NET_ERROR,
    SK_OUT_OK, /* --get mode: a 2xx or 3xx answer */
    SK_OUT_COUNT
} sk_loadgen_outcome_t;

/** The outcome's name as printed and written to JSON ("sold_out", ...). */
const char *sk_loadgen_outcome_name(sk_loadgen_outcome_t o);

/** Per-user state bits (one byte per user). */
enum {
    SK_LOADGEN_USER_TRIED = 1, /* at least one request was sent for the user */
    SK_LOADGEN_USER_HOLDS = 2, /* the service named an order of the user */
    SK_LOADGEN_USER_SOLD_OUT = 4, /* the user was told sold_out with nothing remaining */
    SK_LOADGEN_USER_IN_DOUBT = 8, /* a request of the user ended without an answer (503 or a
                                   * network error after the last retry) */
    SK_LOADGEN_USER_REFUSED = 16, /* not_started, ended, rate limited or another 4xx */
};

/** The sale being flooded, as the service described it. */
typedef struct {
    char *id;
    char *name;
    int64_t stock;
    int64_t limit; /* per_user_limit, in units */
    int64_t max_quantity; /* units per order */
    int64_t sold; /* -1 when unknown */
    int64_t starts_at, ends_at; /* unix ms, server clock */
    int64_t clock_offset_ms; /* server clock minus ours: a lower bound (server_time - our time after the answer) */
    char state[16];
    bool created; /* by this run */
} sk_loadgen_sale_t;

/** An order the service named to the client. The id is at arena + off. */
typedef struct {
    uint32_t user;
    uint32_t off;
    uint16_t len;
    uint8_t outcome; /* sk_loadgen_outcome_t that named it */
    uint32_t quantity; /* units, as the answer said; 0 when it did not (limit_reached) */
} sk_loadgen_order_rec_t;

typedef struct {
    sk_loadgen_target_t *targets;
    size_t ntargets;
    uint32_t connections;
    uint32_t threads;
    uint32_t pipeline;
    sk_loop_io_t io; /* the client threads' loop backend (--io) */
    uint32_t users;
    uint64_t requests; /* 0: --duration decides, or one per user */
    uint64_t duration_ms;
    double rate; /* requests/s in total, 0 for closed loop */
    uint32_t retries;
    uint32_t retry_backoff_ms;
    uint32_t timeout_ms;
    bool burst;
    uint64_t early_ms; /* start this long before the sale opens */
    const char *get_path; /* plain GET mode: no sale, no audit */
    const char *admin_token;
    const char *sale_id; /* --sale */
    bool create; /* --create-sale */
    int64_t create_stock, create_limit, create_starts_in_ms, create_duration_ms;
    int64_t create_max_quantity; /* 0: not sent (one unit per order) */
    sk_loadgen_qty_t qty; /* the quantities purchases ask for (--quantity) */
    const char *create_id;
    char run_id[16]; /* hex, printed into every request_id */
    bool quiet;
    _Atomic int *interrupted; /* set (by a signal handler): stop sending, finish up */
} sk_loadgen_config_t;

typedef struct {
    uint64_t counts[SK_OUT_COUNT];
    sk_hist_t hist[SK_OUT_COUNT]; /* latency in ns per outcome */
    sk_hist_t all;
    uint64_t answers; /* every answer and network error, retries included */
    uint64_t requests; /* logical requests started */
    uint64_t retries; /* attempts after the first */
    uint64_t in_doubt; /* requests that ended without an answer */
    uint64_t malformed; /* answers whose body did not match their status */
    uint64_t connects, conn_failures;
    uint64_t bytes_sent, bytes_received, writes, reads;
    double elapsed_s; /* first send to last answer */
    double confirm_window_s; /* first send to last confirmation (the sell-out time) */
    double cpu_user_s, cpu_sys_s; /* this process, whole run */
    uint64_t *timeline; /* answers per second since the first send */
    uint64_t *timeline_confirmed;
    size_t timeline_len;
    int64_t last_remaining; /* smallest "remaining" the service reported, -1 none */

    sk_loadgen_sale_t sale; /* purchase mode */
    uint8_t *ustate; /* users + 1 bytes, index = user number */
    uint32_t users;
    sk_loadgen_order_rec_t *orders;
    size_t norders;
    char *arena;
    size_t arena_len;
} sk_loadgen_results_t;

/** Frees everything in results (and its sale strings). */
void sk_loadgen_results_free(sk_loadgen_results_t *res);

#endif
