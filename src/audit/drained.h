/* What the audit's database sources share (audit_pg.c, audit_mysql.c): a cluster's
 * system of record is written by `seckill drain` some time after the orders were
 * decided, so before it is read the audit waits, bounded, until it has caught up: it
 * holds as many confirmed units of the sale as the service reports sold, as many
 * reserved units as it reports held, and at least as many orders as the highest order
 * number the client was told of. Internal to src/audit/. */
#ifndef SK_AUDIT_DRAINED_H
#define SK_AUDIT_DRAINED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loadgen/client.h"
#include "loadgen/scenario.h"

/** A sale in the database: units of its confirmed orders, of its reserved orders, and
 *  its orders. */
typedef struct {
    int64_t sold, held, orders;
} sk_audit_counts_t;

/** Reads the sale's stock and per_user_limit (into out) and its counts; sets *found
 *  when the sale is there. Returns 0 or -1 with err filled. */
typedef int (*sk_audit_count_fn)(void *arg, const char *sale_id, sk_loadgen_sale_t *out, sk_audit_counts_t *c,
                                 bool *found, char *err, size_t err_len);

/** Calls count until the database has caught up with the service at t (borrowed) and
 *  holds wait_seq orders, or the service cannot say, or wait_ms passed (then it audits
 *  what is there, saying so on stderr); out->sold is then the database's confirmed
 *  units. `db` names the database in messages. Returns 0, or -1 with err filled when
 *  count failed or the sale never appeared. */
int sk_audit_wait_drained(const char *db, const sk_loadgen_target_t *t, int wait_ms, const char *sale_id,
                          uint64_t wait_seq, sk_audit_count_fn count, void *arg, sk_loadgen_sale_t *out, char *err,
                          size_t err_len);

#endif
