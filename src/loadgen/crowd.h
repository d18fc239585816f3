/* The crowd on one client thread (crowd.c), and the run that holds the threads
 * (run.c): what the two share, and nothing else includes.
 *
 * A worker is one client thread with its own event loop and its share of the
 * connections and of the users. Requests wait in a ready queue (first attempts and
 * retries that are due) or in a heap of retries by due time; a connection with room
 * for another request sits in the worker's "room" list.
 *
 * Threads: everything in a worker belongs to its thread, except what run.c reads while
 * it runs (the counters, last_remaining and done: atomics or sk_counter_t) and, after
 * the thread ended, the rest. */
#ifndef SK_LOADGEN_CROWD_H
#define SK_LOADGEN_CROWD_H

#include <pthread.h>
#include <stdatomic.h>

#include "loadgen/client.h"
#include "loadgen/histogram.h"
#include "loadgen/scenario.h"
#include "loadgen/users.h"
#include "loop/loop.h"
#include "util/common.h"

enum { REQ_BUY = 0, REQ_PAY, REQ_CANCEL };

/* A request: a purchase, or a reservation's payment or cancel (the lifecycle
 * scenario), which waits in the retry heap until its planned time. */
typedef struct req {
    struct req *next;
    uint64_t seq;
    uint64_t start_ns; /* intended send time (open loop) or first send */
    uint64_t sent_ns; /* this attempt */
    uint64_t ready_ns; /* a retry waits until then */
    int64_t first_wall_ms; /* our wall clock at the first attempt (pay, cancel) */
    uint32_t user;
    uint32_t quantity; /* BUY: units asked for */
    uint32_t resv; /* PAY, CANCEL: the worker's reservation */
    uint16_t attempt;
    uint8_t kind; /* REQ_* */
} req_t;

typedef struct worker worker_t;

typedef struct wconn {
    sk_loadgen_conn_t conn;
    worker_t *w;
    sk_timer_t reconnect;
    uint32_t backoff_ms;
    bool in_room;
    bool settled; /* connected or failed at least once (for --burst) */
    struct wconn *next_room;
    uint64_t mark; /* responses + connects at the last sweep */
    uint64_t mark_ns; /* when mark last changed */
    const char *prefix; /* request bytes before the body length (or the whole GET) */
    size_t prefix_len;
} wconn_t;

typedef struct run run_t;

struct worker {
    int index;
    run_t *run;
    const sk_loadgen_config_t *cfg;
    sk_loop_t *loop;
    sk_loadgen_client_t client;
    wconn_t *conns;
    uint32_t nconns;
    wconn_t *room; /* connections with room for another request */
    sk_timer_t tick;
    sk_io_t pace; /* open loop: a timerfd at the next intended send time */
    uint64_t pace_armed_ns;
    uint32_t ticks;
    bool shutting_down;
    pthread_t thread;

    req_t *free_reqs;
    req_t **slabs;
    size_t nslabs;
    req_t **rq; /* ready queue (ring) */
    size_t rq_cap, rq_head, rq_len;
    req_t **heap; /* retries by ready_ns */
    size_t heap_len, heap_cap;

    uint64_t quota; /* new requests for this worker, 0 = until --duration */
    uint64_t issued;
    uint64_t live; /* requests started and not finished */
    uint64_t stop_ns; /* no new requests after this (duration), 0 = none */
    bool gen_done;
    bool drained; /* interrupted: the queues were emptied */
    bool fired;
    uint64_t fired_ns;
    bool reported_ready;
    uint32_t settled;
    uint64_t first_send_ns, last_answer_ns, last_confirm_ns;
    double interval_ns; /* open loop */
    uint64_t sched_k;

    sk_loadgen_users_t users; /* this worker's share of the users */
    uint64_t rng; /* retry jitter */

    sk_counter_t counts[SK_OUT_COUNT];
    sk_counter_t answers;
    sk_counter_t sold_out1; /* sold_out answers to one-unit purchases (the timeline) */
    sk_counter_t made; /* confirmed and reserved answers (the timeline) */
    _Atomic int64_t last_remaining;
    _Atomic int done;
    sk_hist_t hist[SK_OUT_COUNT];
    uint64_t requests, retries, in_doubt, malformed, conn_failures;

    sk_loadgen_order_rec_t *orders;
    size_t norders, orders_cap;
    char *arena;
    size_t arena_len, arena_cap;

    /* The lifecycle scenario: this worker's reservations (their rec indexes point into
     * its own orders until run.c merges them) and its figures. */
    sk_loadgen_resv_t *resv;
    size_t nresv, resv_cap;
    sk_loadgen_life_t life;
};

struct run {
    const sk_loadgen_config_t *cfg;
    const sk_loadgen_sale_t *sale;
    uint8_t *ustate;
    char **prefixes; /* one per target */
    size_t *prefix_lens;
    char rid[32]; /* "r<run id>-<worker>-" is built per worker from this */
    uint64_t fire_ns;
    _Atomic uint32_t ready_workers;
    /* Set by the watching thread once the sale has sold every unit (the lifecycle
     * scenario): the workers start no new purchase, and finish their payments. */
    _Atomic int stop;
    worker_t *workers;
    uint32_t nworkers;
};

/** The thread function of a worker (arg: its worker_t). Runs the worker's loop until
 *  its share of the flood is done, closes its connections and sets `done`. */
void *sk_loadgen_crowd_main(void *arg);

#endif
