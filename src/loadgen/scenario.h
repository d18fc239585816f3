/* What a run of seckill-bench is: its configuration, the outcomes it counts, and its
 * results (setup.h prepares the sale, run.h runs the flood, report.h and the auditor
 * read the results).
 *
 * Every request buys for one user drawn from the user space u1..uN: first every user
 * once in a shuffled order, then (when more requests are asked for) random users again,
 * like buyers clicking twice. A request that gets 503 or a network error is retried
 * with the same request_id. Each answer is counted under its outcome with its latency;
 * every order the service names (confirmed, reserved, duplicate, limit_reached) is
 * remembered for the audit, and each user keeps one byte of state.
 *
 * The lifecycle scenario (a sale with a payment window): every reservation the crowd
 * is given gets a plan drawn from the shares --pay, --late and --cancel — pay at a
 * random time inside the window, pay after pay_by, cancel inside the window, or walk
 * away — and the client carries it out (POST .../pay signed with the payment key, or
 * .../cancel), retrying in-doubt actions with the same payment id. The crowd keeps
 * buying while units come back, until the sale has sold every unit (the poller sees
 * sold == stock), its time cap, or its request budget. Meanwhile the run reads the
 * sale every --poll ms: every read must have held + sold <= stock and
 * remaining + held + sold == stock.
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
    SK_OUT_RESERVED, /* 201 reserved: a payment window holds the units until pay_by */
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
    int64_t sold; /* -1 when unknown */
    int64_t starts_at, ends_at; /* unix ms, server clock */
    /* Server clock minus ours, bounded: the server read its clock between our send and
     * our receipt of one answer, so the offset lies in [lo, hi] (each widened by 2 ms
     * for whole-millisecond clocks). clock_offset_ms is lo. */
    int64_t clock_offset_ms, clock_offset_hi_ms;
    int64_t window_ms; /* payment_window_ms: 0, a purchase is final */
    int64_t max_quantity; /* units per order (1 when the service does not say) */
    char state[16];
    bool created; /* by this run */
} sk_loadgen_sale_t;

/** An order's state as a store or an answer names it (0: not known). */
typedef enum {
    SK_LOADGEN_ST_UNKNOWN = 0,
    SK_LOADGEN_ST_RESERVED,
    SK_LOADGEN_ST_CONFIRMED,
    SK_LOADGEN_ST_CANCELLED,
    SK_LOADGEN_ST_EXPIRED,
    SK_LOADGEN_ST_REFUNDED,
    SK_LOADGEN_ST__COUNT
} sk_loadgen_state_t;

/** "reserved" ... "refunded" -> the state; anything else SK_LOADGEN_ST_UNKNOWN. */
sk_loadgen_state_t sk_loadgen_state_parse(const char *s, size_t n);
const char *sk_loadgen_state_name(sk_loadgen_state_t st);

/** What the client does with a reservation (the lifecycle scenario). */
typedef enum {
    SK_PLAN_WALK = 0, /* nothing: the reservation must expire */
    SK_PLAN_PAY, /* pay at a random time inside the window */
    SK_PLAN_LATE, /* pay after pay_by: must be refused (expired), never confirmed */
    SK_PLAN_CANCEL, /* cancel at a random time inside the window */
    SK_PLAN__COUNT
} sk_loadgen_plan_t;

/** What the service answered to a reservation's payment or cancel. */
typedef enum {
    SK_ACT_NONE = 0, /* nothing sent (walked away, or the run was interrupted first) */
    SK_ACT_CONFIRMED, /* pay: 200 confirmed (or duplicate) */
    SK_ACT_EXPIRED, /* pay: 409 expired */
    SK_ACT_CANCELLED, /* cancel: 200 cancelled */
    SK_ACT_NOT_RESERVED, /* cancel: 409 not_reserved, naming the order's state */
    SK_ACT_REFUSED, /* pay: 409 cancelled, refunded or already_paid: the client did none of that */
    SK_ACT_IN_DOUBT, /* no answer after the retries (503, network) */
    SK_ACT_ERROR, /* any other answer (401, 404, a body that does not match) */
    SK_ACT__COUNT
} sk_loadgen_act_t;

const char *sk_loadgen_plan_name(sk_loadgen_plan_t p);
const char *sk_loadgen_act_name(sk_loadgen_act_t a);

enum {
    /* The service confirmed a payment the client sent after pay_by on the server's
     * clock (by the offset's lower bound: certainly late). */
    SK_RESV_LATE_CONFIRMED = 1,
    /* The service answered "expired" before pay_by on its clock (by the upper bound). */
    SK_RESV_EARLY_EXPIRED = 2,
};

/** A reservation the client was given, and what it did with it. */
typedef struct {
    uint32_t rec; /* its order in the results' orders */
    uint32_t user;
    int64_t pay_by; /* server clock, ms */
    uint32_t quantity;
    uint8_t plan; /* sk_loadgen_plan_t */
    uint8_t act; /* sk_loadgen_act_t */
    uint8_t state; /* sk_loadgen_state_t a 409 named (not_reserved, refused) */
    uint8_t flags; /* SK_RESV_* */
} sk_loadgen_resv_t;

/** The lifecycle scenario's figures. */
typedef struct {
    uint64_t reservations; /* reservations the client was given */
    uint64_t plans[SK_PLAN__COUNT];
    uint64_t acts[SK_PLAN__COUNT][SK_ACT__COUNT]; /* answers by plan */
    uint64_t sent[SK_PLAN__COUNT]; /* actions sent (first attempts) */
    uint64_t retries; /* action attempts after the first */
    sk_hist_t hist_pay, hist_cancel; /* action latency, ns */
} sk_loadgen_life_t;

/** The sale as read during the run (every --poll ms) and once more at its end. */
typedef struct {
    uint64_t reads, failures;
    uint64_t bad_reads; /* held + sold > stock, remaining + held + sold != stock, or a count < 0 */
    int64_t max_units; /* the highest held + sold read */
    char first_bad[200]; /* the first bad read, as read */
    /* The last read (after the run settled: held == 0 or the wait ran out). */
    bool final_ok;
    int64_t stock, held, sold, remaining;
} sk_loadgen_polls_t;

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
    int64_t create_window_ms; /* payment window; -1: not sent */
    int64_t create_max_quantity; /* 0: not sent (one unit per order) */
    const char *create_queue; /* "fifo" | "random", NULL: not sent (no waiting room) */
    int64_t create_admit, create_ttl_ms; /* admit_per_second, admission_ttl_ms; 0: not sent */
    sk_loadgen_qty_t qty; /* the quantities purchases ask for (--quantity) */
    const char *create_id;
    /* The lifecycle scenario: shares of the reservations that pay inside the window,
     * pay after pay_by and cancel (the rest walk away); the key that signs payments
     * (X-Seckill-Signature), or NULL: the admin token pays. */
    bool lifecycle; /* the sale has a payment window (set after the set-up) */
    double pay_share, late_share, cancel_share;
    const unsigned char *payment_key;
    size_t payment_key_len;
    uint32_t poll_ms; /* read the sale this often during the run (0: never) */
    uint64_t settle_ms; /* after the crowd: wait at most this long for held == 0 */
    char run_id[16]; /* hex, printed into every request_id */
    bool quiet;
    _Atomic int *interrupted; /* set (by a signal handler): stop sending, finish up */
} sk_loadgen_config_t;

/** Where a run's time went: named phases in the order they happened (wall seconds). */
enum { SK_LOADGEN_PHASES_MAX = 16 };
typedef struct {
    const char *name; /* a string literal */
    double s;
} sk_loadgen_phase_t;

typedef struct {
    sk_loadgen_phase_t at[SK_LOADGEN_PHASES_MAX];
    size_t n;
} sk_loadgen_phases_t;

/** Appends the time from *since_ns to until_ns (0: now) as phase `name` (dropped when
 *  full) and moves *since_ns there. */
void sk_loadgen_phase(sk_loadgen_phases_t *p, const char *name, uint64_t *since_ns, uint64_t until_ns);

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
    uint64_t *timeline_confirmed; /* confirmed and reserved */
    uint64_t *timeline_sold_out1; /* sold_out answers to one-unit purchases */
    size_t timeline_len;
    int64_t fire_wall_ms; /* our wall clock at the fire instant (the timeline's zero) */
    int64_t last_remaining; /* smallest "remaining" the service reported, -1 none */

    sk_loadgen_sale_t sale; /* purchase mode */
    uint8_t *ustate; /* users + 1 bytes, index = user number */
    uint32_t users;
    sk_loadgen_order_rec_t *orders;
    size_t norders;
    char *arena;
    size_t arena_len;

    sk_loadgen_resv_t *resv; /* the lifecycle scenario's reservations */
    size_t nresv;
    sk_loadgen_life_t life;
    sk_loadgen_polls_t polls;
    char stop_reason[64]; /* why the crowd stopped buying */
    sk_loadgen_phases_t phases; /* the whole command's, set-up to audit */
} sk_loadgen_results_t;

/** Frees everything in results (and its sale strings). */
void sk_loadgen_results_free(sk_loadgen_results_t *res);

#endif
