/* src/api/identity.c, sk_api_admission_ok: an admission's expiry is written on the
 * store's clock (queue.lua's TIME on Redis; the ledger's clock embedded), so the worker
 * must check it on that clock too (sk_api_store_now, which the purchase path reads once
 * for the sale's window and the admission, and sk_api_admitted reads for the other
 * routes). */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "backend/embedded.h"
#include "crypto/hmac.h"
#include "crypto/token.h"
#include "engine/backend.h"
#include "test.h"
#include "testdir.h"
#include "util/common.h"

SK_TEST(test_admission_expiry_on_the_store_clock)
{
    char dir[256], err[512] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "admission"));
    sk_engine_config_t cfg = {0};
    sk_engine_t *e = sk_engine_open(&cfg, sk_backend_embedded_new(dir, 0), err, sizeof(err));
    ASSERT_TRUE(e != NULL);
    sk_api_t *api = sk_xcalloc(1, sizeof(*api));
    api->cfg.engine = e;
    sk_hmac_init(&api->secret, "k", 1);
    sk_api_worker_t *w = sk_xcalloc(1, sizeof(*w));
    w->api = api;
    sk_sale_params_t p = {.name = "n",
                          .starts_at = 0,
                          .ends_at = INT64_C(253402300799999),
                          .per_user_limit = 1,
                          .max_quantity = 1,
                          .queue = 1,
                          .admit_per_second = 1,
                          .admission_ttl_ms = 1000};
    sk_sale_t *s = sk_sale_new("s1", 2, &p, 10, 0);
    int64_t local = sk_now_ms();
    /* The store's clock runs 5 s ahead of this node's (a node whose NTP lags). */
    sk_engine_note_store_clock(e, 5000, 5000);
    ASSERT_TRUE(llabs(sk_api_store_now(w) - (local + 5000)) < 1000);
    char tok[SK_TOKEN_ADMISSION_MAX + 1];
    /* Expired 3 s ago by the store's clock, which admitted and expires it (queue.lua sends
     * the user to the back then), 2 s from now by this node's: refused (I9). */
    size_t tl = sk_token_admission_mint(&api->secret, "s1", 2, "u1", 2, local + 2000, tok);
    ASSERT_TRUE(!sk_api_admission_ok(w, NULL, s, "u1", 2, tok, tl, sk_api_store_now(w)));
    /* Valid by the store's clock: taken. */
    tl = sk_token_admission_mint(&api->secret, "s1", 2, "u1", 2, local + 8000, tok);
    ASSERT_TRUE(sk_api_admission_ok(w, NULL, s, "u1", 2, tok, tl, sk_api_store_now(w)));
    /* The store's clock 5 s behind: an admission it made 1 s ago for 2 s is valid
     * for 1 s more, though this node's clock is past its expiry. */
    sk_engine_note_store_clock(e, -5000, -5000);
    ASSERT_TRUE(llabs(sk_api_store_now(w) - (local - 5000)) < 1000);
    tl = sk_token_admission_mint(&api->secret, "s1", 2, "u1", 2, local - 4000, tok);
    ASSERT_TRUE(sk_api_admission_ok(w, NULL, s, "u1", 2, tok, tl, sk_api_store_now(w)));
    sk_sale_free(s);
    free(w);
    free(api);
    sk_engine_free(e);
}

SK_TEST_MAIN(SK_RUN(test_admission_expiry_on_the_store_clock);)
