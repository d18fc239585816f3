/* The operator's controls run during a flood (seckill-bench --controls SCRIPT): each
 * step is sent at its time after the sale's opening, on a connection of its own with the
 * admin token, and its answer and latency are kept for the report. A step answered 503
 * or lost is sent again with the same request_id (a control is idempotent by it). The
 * audit then checks the orders against the sale's trail (audit/audit.h).
 *
 * SCRIPT is STEP[,STEP...], each ACTION[=ARG]@TIME with TIME after the opening (or after
 * the start of the run when the sale is open already), e.g. 500ms or 2s:
 *   pause@T  resume@T  close@T
 *   add=N@T, add=P%@T          add N units, or P % of the stock the sale had at the start
 *   remove=N@T, remove=P%@T
 *   extend=DUR@T               move ends_at DUR later (PATCH)
 * "default" is pause@0.5s,resume@2.5s,add=10%@3s,extend=1h@3.5s,close@4.5s: a pause of
 * 2 s, 10 % more stock, a later end, then the close.
 *
 * Threads: one thread of its own, started before the flood and joined after it; the
 * steps' results are read only after the join. The config and the sale are borrowed. */
#ifndef SK_LOADGEN_CONTROLS_H
#define SK_LOADGEN_CONTROLS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "loadgen/scenario.h"

#define SK_LOADGEN_CTL_MAX 32

typedef enum {
    SK_LOADGEN_CTL_PAUSE = 0,
    SK_LOADGEN_CTL_RESUME,
    SK_LOADGEN_CTL_CLOSE,
    SK_LOADGEN_CTL_ADD,
    SK_LOADGEN_CTL_REMOVE,
    SK_LOADGEN_CTL_EXTEND,
} sk_loadgen_ctl_action_t;

typedef struct {
    sk_loadgen_ctl_action_t action;
    int64_t at_ms; /* after the opening */
    int64_t arg; /* units, percent, or ms */
    bool percent;
    /* Results. */
    int status; /* the last answer's HTTP status, or -errno when none came */
    int attempts;
    char result[16]; /* applied, duplicate */
    char error[40]; /* the code of a refusal */
    uint64_t latency_ns; /* of the attempt that was answered */
    int64_t entry_seq; /* its place in the sale's trail */
} sk_loadgen_ctl_step_t;

typedef struct {
    sk_loadgen_ctl_step_t steps[SK_LOADGEN_CTL_MAX];
    size_t n;
    const sk_loadgen_config_t *cfg;
    const sk_loadgen_sale_t *sale;
    pthread_t thread;
    bool started;
} sk_loadgen_controls_t;

/** Parses a script. Returns 0, or -1 with a message. */
int sk_loadgen_controls_parse(const char *spec, sk_loadgen_controls_t *c, char *err, size_t err_len);
/** Starts the controls' thread (cfg and sale borrowed until the join). Returns 0 or -1. */
int sk_loadgen_controls_start(sk_loadgen_controls_t *c, const sk_loadgen_config_t *cfg, const sk_loadgen_sale_t *sale);
/** Waits for every step (a step still to come is sent once its time is reached, unless
 *  the run was interrupted). */
void sk_loadgen_controls_join(sk_loadgen_controls_t *c);
/** True when every step was applied (200). */
bool sk_loadgen_controls_ok(const sk_loadgen_controls_t *c);
/** Prints one line per step: time, action, answer, latency. */
void sk_loadgen_controls_report(FILE *out, const sk_loadgen_controls_t *c);

#endif
