/* The queued crowd (--queue): a waiting room's buyers and the bots mixed in with them.
 *
 * Every honest buyer joins the sale's queue before the start (POST .../queue, the joins
 * paced at --join-rate in total), asks again for its place at most once per --poll-every
 * (less often while its estimated wait is long), and once admitted buys at once with its
 * admission token. Per buyer the run keeps the position it was answered, the admission
 * time (the server's: admission_expires_at - admission_ttl_ms), the purchase's answer
 * and its time.
 *
 * The bots (--bots): `none` buys without a token, `forged` with a well-formed token of
 * a made-up signature, `other` with a real token of an admitted honest buyer, `expired`
 * queues like a buyer but keeps its admission past admission_ttl_ms before buying, and
 * `flood` is one address (127.0.0.2 for a loopback IPv4 target) firing purchases
 * back to back (bounded in count and time), counting the 429s of --ip-rate.
 *
 * Threads: sk_loadgen_queue_run() starts its threads and joins them before it returns.
 * Ownership: the results own their buyers; free them with sk_loadgen_qres_free(). */
#ifndef SK_LOADGEN_QUEUED_H
#define SK_LOADGEN_QUEUED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loadgen/scenario.h"

typedef enum {
    SK_BOT_HONEST = 0, /* not a bot */
    SK_BOT_NONE,
    SK_BOT_FORGED,
    SK_BOT_OTHER,
    SK_BOT_EXPIRED,
    SK_BOT_FLOOD,
    SK_BOT__COUNT
} sk_bot_kind_t;

const char *sk_loadgen_bot_name(sk_bot_kind_t k);

typedef struct {
    bool on; /* --queue */
    double bot_share[SK_BOT__COUNT]; /* --bots: a share of --users (< 1) ... */
    uint32_t bot_count[SK_BOT__COUNT]; /* ... or a count; flood: 0 or 1 address */
    double join_rate; /* joins per second, all buyers together */
    uint32_t poll_ms; /* a buyer asks for its place at most this often */
    uint32_t threads; /* buyers' threads */
    uint32_t flood_requests; /* the flooding address's requests */
    uint64_t cap_ms; /* the whole queued run's cap */
} sk_loadgen_qcfg_t;

/** Parses --bots SPEC ("none:5,forged:0.05,flood:1") into q. 0, or -1 with err. */
int sk_loadgen_bots_parse(sk_loadgen_qcfg_t *q, const char *spec, char *err, size_t err_len);

typedef struct {
    char user[24]; /* "u7" honest, "x7" expired, "n7" none, "g7" forged, "o7" other */
    uint8_t kind; /* sk_bot_kind_t */
    bool joined, pre_queue; /* pre_queue: joined before the start */
    uint32_t join_seq; /* the order the joins were sent in */
    int64_t join_ms; /* server clock (our clock + the offset) */
    int64_t position; /* -1: not known */
    int64_t admitted_at, expires_at; /* server clock; 0: never admitted */
    int64_t buy_ms; /* when the purchase was sent, server clock; 0: never */
    int64_t bought_ms; /* when its answer came, server clock */
    int status; /* the purchase's HTTP status; 0 none, < 0 no answer */
    char result[24]; /* "confirmed", "sold_out", "not_admitted", ... */
    char token[80];
    uint32_t polls;
    char final_state[16]; /* the queue's last state for the buyer */
} sk_qbuyer_t;

typedef struct {
    sk_qbuyer_t *b;
    size_t n, honest;
    int64_t ttl_ms, admit_per_second;
    char mode[8]; /* "fifo" | "random" */
    uint64_t joins, polls, purchases, rate_limited, errors;
    uint64_t flood_sent, flood_429, flood_403, flood_made, flood_other;
    bool flood_bound; /* the flood came from its own address */
    double elapsed_s;
} sk_loadgen_qres_t;

/** Runs the queued crowd on a sale set up with a queue. 0, or -1 with err. */
int sk_loadgen_queue_run(const sk_loadgen_config_t *cfg, const sk_loadgen_qcfg_t *q, const sk_loadgen_sale_t *sale,
                         sk_loadgen_qres_t *res, char *err, size_t err_len);
void sk_loadgen_qres_free(sk_loadgen_qres_t *res);

#endif
