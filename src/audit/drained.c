/* Waiting for the drain to catch up before a database is audited (drained.h). */
#include "audit/drained.h"

#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "loadgen/fetch.h"
#include "util/common.h"

/* The service's sold and held counts of a sale; -1 each when it cannot say. */
static void service_counts(const sk_loadgen_target_t *t, const char *sale_id, int64_t *sold, int64_t *held)
{
    sk_loadgen_fetch_t f;
    sk_loadgen_fetch_init(&f, t, NULL, 5000);
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/sales/%s", sale_id);
    *sold = *held = -1;
    if (sk_loadgen_fetch(&f, "GET", path, NULL) == 200) {
        json_t *root = json_loadb(f.body, f.body_len, 0, NULL);
        json_t *s = root ? json_object_get(root, "sold") : NULL, *h = root ? json_object_get(root, "held") : NULL;
        if (json_is_integer(s))
            *sold = json_integer_value(s);
        if (json_is_integer(h))
            *held = json_integer_value(h);
        json_decref(root);
    }
    sk_loadgen_fetch_close(&f);
}

int sk_audit_wait_drained(const char *db, const sk_loadgen_target_t *t, int wait_ms, const char *sale_id,
                          uint64_t wait_seq, sk_audit_count_fn count, void *arg, sk_loadgen_sale_t *out, char *err,
                          size_t err_len)
{
    uint64_t deadline = sk_mono_ns() + (uint64_t)wait_ms * 1000000u;
    for (;;) {
        bool found = false;
        sk_audit_counts_t c = {0, 0, 0};
        if (count(arg, sale_id, out, &c, &found, err, err_len) < 0)
            return -1;
        out->sold = c.sold;
        int64_t sold, held;
        service_counts(t, sale_id, &sold, &held);
        /* Caught up (or the service cannot say: audit what is there). Held units must
         * agree exactly: a reservation that expired in Redis and not yet in the
         * database would otherwise be read as still reserved. */
        bool service_ok = sold < 0 || (c.sold >= sold && (held < 0 || c.held == held));
        if (found && service_ok && c.orders >= (int64_t)wait_seq)
            return 0;
        if (sk_mono_ns() >= deadline) {
            if (found) {
                fprintf(stderr,
                        "seckill-bench: %s holds %lld orders of %s (%lld units confirmed, %lld reserved), the "
                        "service reports %lld sold and %lld held, the client was told of order %llu: auditing "
                        "what is there\n",
                        db, (long long)c.orders, sale_id, (long long)c.sold, (long long)c.held, (long long)sold,
                        (long long)held, (unsigned long long)wait_seq);
                return 0;
            }
            snprintf(err, err_len, "%s: no sale %s in the database after %d ms", db, sale_id, wait_ms);
            return -1;
        }
        usleep(200 * 1000);
    }
}
