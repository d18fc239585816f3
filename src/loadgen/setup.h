/* Before the flood: the sale to flood, created (--create-sale) or looked up, with the
 * server's clock estimated so that the crowd fires at the opening on the server's clock.
 *
 * Ownership: the config is borrowed for the call; the sale's strings are the caller's
 * (sk_loadgen_results_free frees them once the sale is in the results). */
#ifndef SK_LOADGEN_SETUP_H
#define SK_LOADGEN_SETUP_H

#include <stddef.h>

#include "loadgen/scenario.h"

/** Creates or looks up the sale (purchase mode). Returns 0, or -1 with a message. */
int sk_loadgen_setup_sale(const sk_loadgen_config_t *cfg, sk_loadgen_sale_t *sale, char *err, size_t err_len);

#endif
