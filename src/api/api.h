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
#include "util/ip.h"

#define SK_API_MAX_WORKERS 256

typedef struct sk_api sk_api_t;
typedef struct sk_api_worker sk_api_worker_t;

/** A named secret (an admin's or a metrics scraper's token). */
typedef struct {
    const char *name; /* 1-32 of A-Z a-z 0-9 _ . - */
    const char *token;
    size_t len;
} sk_api_token_t;

/** What sk_api_new needs; it copies what it keeps, so the caller may free (and wipe)
 *  the secrets afterwards. */
typedef struct {
    sk_engine_t *engine;
    /* The key of the payment provider's signatures (X-Seckill-Signature: sha256=<hex
     * HMAC-SHA256 of the body>); NULL: only the admin token may pay. */
    const unsigned char *payment_secret;
    size_t payment_secret_len;
    /* POST /api/v1/orders/{id}/demo-pay exists (a demo's Pay button): never in production. */
    bool demo_payments;
    /* The id of the demo sale this process made (serve --demo), or NULL: the buyer's page
     * shows it first (GET /api/v1/config). */
    const char *demo_sale;
    /* The operators. No token at all: every request may act as the admin (a warning at
     * start-up; cmd/serve.c refuses it beyond loopback). An empty token is refused. */
    const char *admin_token; /* one token, named "admin"; or NULL */
    const sk_api_token_t *admin_tokens; /* named tokens (--admin-token-file) */
    size_t n_admin_tokens;
    const sk_api_token_t *metrics_tokens; /* guard /metrics (admin tokens open it too) */
    size_t n_metrics_tokens;
    /* The buyers: without user_header and user_token_key the body's user_id is taken at
     * its word (the demo). */
    const char *user_header; /* set by the merchant's gateway, e.g. "X-User-Id"; or NULL */
    const sk_cidr_t *trusted_proxies; /* peers whose user header and X-Forwarded-For count */
    size_t n_trusted_proxies;
    const void *user_token_key; /* signed user tokens (X-Seckill-User); or NULL */
    size_t user_token_key_len;
    const void *secret; /* admission tokens and proof-of-work challenges; NULL: a random one */
    size_t secret_len;
    /* Limits: API requests per second per client address / per user (bursts of twice
     * that), 0: off; and the deny list's file (re-read by sk_api_reload_deny). */
    uint32_t ip_rate, user_rate;
    const char *deny_file;
} sk_api_config_t;

/** Creates the API. Returns NULL with one line in err when the configuration cannot work
 *  (an empty token, a deny file that does not parse). */
sk_api_t *sk_api_new(const sk_api_config_t *cfg, char *err, size_t errlen);
void sk_api_free(sk_api_t *api);

/** Reads the deny file again and hands the new list to every worker (each takes it on
 *  its own loop, between requests). On an error (err says which line) the old list stays.
 *  Any thread but a worker's; returns 0 or -1. 0 too when no deny file is configured. */
int sk_api_reload_deny(sk_api_t *api, char *err, size_t errlen);
/** Entries of the deny list in force (0 and 0 without one). Any thread. */
void sk_api_deny_stats(sk_api_t *api, size_t *ips, size_t *users);

/** Parses an --admin-token-file's text: lines "name:token", or one line holding a single
 *  token (named "admin"). Blank lines and lines starting with '#' are skipped; one '\r'
 *  before each newline is dropped. Tokens point into `text`. Returns the count, or -1
 *  with "line N: ..." in err (no token, a bad or repeated name, a repeated token, more
 *  than `cap`). */
int sk_api_tokens_parse(char *text, size_t len, sk_api_token_t *out, size_t cap, char *err, size_t errlen);

/** Creates a worker's API state on its loop (loop thread). `server` is set later with
 *  sk_api_worker_set_server because the server needs the worker as handler argument. */
sk_api_worker_t *sk_api_worker_new(sk_api_t *api, sk_loop_t *loop);
void sk_api_worker_set_server(sk_api_worker_t *w, sk_http_server_t *server);
/** Detaches from the engine and frees (after the ledger stopped; loop thread). */
void sk_api_worker_free(sk_api_worker_t *w);

/** The HTTP handler; `arg` is the sk_api_worker_t. */
void sk_api_handle(sk_http_exchange_t *x, void *arg);

#endif
