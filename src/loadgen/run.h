/* The flood: a crowd of simulated buyers sent over many keep-alive connections by one
 * or more client threads (crowd.h), each with its own event loop, watched from the
 * calling thread.
 *
 * Ownership: sk_loadgen_run() fills a sk_loadgen_results_t that the caller releases with
 * sk_loadgen_results_free(). The config and its strings are borrowed for the run. */
#ifndef SK_LOADGEN_RUN_H
#define SK_LOADGEN_RUN_H

#include <stddef.h>

#include "loadgen/scenario.h"

/** Runs the flood. Returns 0, or -1 with a message when it could not start. */
int sk_loadgen_run(const sk_loadgen_config_t *cfg, const sk_loadgen_sale_t *sale, sk_loadgen_results_t *res, char *err,
                   size_t err_len);

#endif
