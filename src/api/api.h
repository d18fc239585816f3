/* HTTP handlers: JSON in, engine call, JSON out. The only place (with cmd/) that sees
 * both http/ and engine/.
 *
 * sk_api_t is shared by all workers and read-only after start-up; each worker thread
 * has its own sk_api_worker_t (its server, its engine attachment, its counters and its
 * event-stream subscribers). */
#ifndef SK_API_API_H
#define SK_API_API_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/engine.h"
#include "http/server.h"

#define SK_API_MAX_WORKERS 256

typedef struct sk_api sk_api_t;
typedef struct sk_api_worker sk_api_worker_t;

typedef struct {
    const char *admin_token; /* NULL or "" : no token required */
    sk_engine_t *engine;
    /* The key of the payment provider's signatures (X-Seckill-Signature: sha256=<hex
     * HMAC-SHA256 of the body>); NULL: only the admin token may pay. Borrowed: it must
     * outlive the API. */
    const unsigned char *payment_secret;
    size_t payment_secret_len;
    /* POST /api/v1/orders/{id}/demo-pay exists (a demo's Pay button): never in production. */
    bool demo_payments;
    /* The id of the demo sale this process made (serve --demo), or NULL: the buyer's page
     * shows it first (GET /api/v1/config). Borrowed: it must outlive the API. */
    const char *demo_sale;
} sk_api_config_t;

sk_api_t *sk_api_new(const sk_api_config_t *cfg);
void sk_api_free(sk_api_t *api);

/** Creates a worker's API state on its loop (loop thread). `server` is set later with
 *  sk_api_worker_set_server because the server needs the worker as handler argument. */
sk_api_worker_t *sk_api_worker_new(sk_api_t *api, sk_loop_t *loop);
void sk_api_worker_set_server(sk_api_worker_t *w, sk_http_server_t *server);
/** Detaches from the engine and frees (after the ledger stopped; loop thread). */
void sk_api_worker_free(sk_api_worker_t *w);

/** The HTTP handler; `arg` is the sk_api_worker_t. */
void sk_api_handle(sk_http_exchange_t *x, void *arg);

#endif
