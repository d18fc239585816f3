/* Waiting for the drain to catch up before a database is audited (drained.h). */
#include "audit/drained.h"

#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "loadgen/fetch.h"
#include "util/common.h"

/* The service's sold count of a sale, or -1. */
static int64_t service_sold(const sk_loadgen_target_t *t, const char *sale_id)
{
    sk_loadgen_fetch_t f;
    sk_loadgen_fetch_init(&f, t, NULL, 5000);
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/sales/%s", sale_id);
    int64_t sold = -1;
    if (sk_loadgen_fetch(&f, "GET", path, NULL) == 200) {
        json_t *root = json_loadb(f.body, f.body_len, 0, NULL);
        json_t *v = root ? json_object_get(root, "sold") : NULL;
        if (json_is_integer(v))
            sold = json_integer_value(v);
        json_decref(root);
    }
    sk_loadgen_fetch_close(&f);
    return sold;
}

int sk_audit_wait_drained(const char *db, const sk_loadgen_target_t *t, int wait_ms, const char *sale_id,
                          sk_audit_count_fn count, void *arg, sk_loadgen_sale_t *out, char *err, size_t err_len)
{
    uint64_t deadline = sk_mono_ns() + (uint64_t)wait_ms * 1000000u;
    for (;;) {
        bool found = false;
        if (count(arg, sale_id, out, &found, err, err_len) < 0)
            return -1;
        int64_t sold = service_sold(t, sale_id);
        if (found && (sold < 0 || out->sold >= sold))
            return 0; /* caught up (or the service cannot say: audit what is there) */
        if (sk_mono_ns() >= deadline) {
            if (found) {
                fprintf(stderr,
                        "seckill-bench: %s holds %lld orders of %s, the service reports %lld "
                        "sold: auditing what is there\n",
                        db, (long long)out->sold, sale_id, (long long)sold);
                return 0;
            }
            snprintf(err, err_len, "%s: no sale %s in the database after %d ms", db, sale_id, wait_ms);
            return -1;
        }
        usleep(200 * 1000);
    }
}
