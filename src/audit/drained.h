/* What the audit's database sources share (audit_pg.c, audit_mysql.c): a cluster's
 * system of record is written by `seckill drain` some time after the orders were
 * confirmed, so before it is read the audit waits, bounded, until it holds as many
 * orders of the sale as the service reports sold. Internal to src/audit/. */
#ifndef SK_AUDIT_DRAINED_H
#define SK_AUDIT_DRAINED_H

#include <stdbool.h>
#include <stddef.h>

#include "loadgen/client.h"
#include "loadgen/scenario.h"

/** Reads the sale's stock, per_user_limit and count of orders (into out->sold); sets
 *  *found when the sale is there. Returns 0 or -1 with err filled. */
typedef int (*sk_audit_count_fn)(void *arg, const char *sale_id, sk_loadgen_sale_t *out, bool *found, char *err,
                                 size_t err_len);

/** Calls count until the database holds as many orders as the service at t (borrowed)
 *  reports sold, or the service cannot say, or wait_ms passed (then it audits what is
 *  there, saying so on stderr). `db` names the database in messages. Returns 0, or -1
 *  with err filled when count failed or the sale never appeared. */
int sk_audit_wait_drained(const char *db, const sk_loadgen_target_t *t, int wait_ms, const char *sale_id,
                          sk_audit_count_fn count, void *arg, sk_loadgen_sale_t *out, char *err, size_t err_len);

#endif
