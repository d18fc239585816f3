/* HTTP/1.1 server: one sk_http_server_t per worker thread, each with its own loop and
 * its own SO_REUSEPORT listener. Knows nothing of sales: every parsed request goes to
 * one handler (the API's dispatcher), which answers at once or defers the answer.
 *
 * Ownership and lifetime:
 *  - An sk_http_exchange_t and the request it points to borrow the connection's read
 *    buffer; they are valid only during the handler call. Copy what you keep.
 *  - A deferred answer (sk_http_defer) keeps the connection's struct alive until it is
 *    completed, even if the client went away; it must be completed exactly once, on the
 *    worker's loop thread.
 *  - Responses of one connection are sent in request order (pipelining), and all output
 *    produced in one loop turn is written with one write() per connection, in the loop's
 *    before-sleep hook. */
#ifndef SK_HTTP_SERVER_H
#define SK_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/parser.h"
#include "loop/loop.h"
#include "util/common.h"
#include "util/ip.h"

#define SK_HTTP_MAX_BODY (64 * 1024)
#define SK_HTTP_MAX_ROUTES 32
#define SK_HTTP_LAT_BUCKETS 16

typedef struct sk_http_server sk_http_server_t;
typedef struct sk_http_conn sk_http_conn_t;
typedef struct sk_http_deferred sk_http_deferred_t;

/** Settings shared (read-only) by every worker's server. */
typedef struct {
    uint32_t header_timeout_ms; /* a request's head and body must arrive within this */
    uint32_t idle_timeout_ms; /* keep-alive connections with nothing to do are closed */
    uint32_t max_conns; /* over all workers; more are answered 503 and closed */
    _Atomic uint32_t conns_open; /* over all workers */
    int access_log_fd; /* -1: off */
} sk_http_config_t;

/** The request being handled. Borrowed: valid only during the handler call. */
typedef struct {
    sk_http_server_t *server;
    sk_http_conn_t *conn;
    const sk_http_request_t *req;
    const char *body; /* decoded body (Content-Length or chunked), NUL-terminated */
    size_t body_len;
    int route; /* route index for metrics, set by the handler (-1 unknown) */
    uint64_t start_ns;
    const char *line; /* the request line, for the access log */
    size_t line_len;
    bool answered;
} sk_http_exchange_t;

/** The one handler: must answer (sk_http_respond*), defer (sk_http_defer) or turn the
 *  connection into a stream (sk_http_stream_start) before returning. */
typedef void (*sk_http_handler_t)(sk_http_exchange_t *x, void *arg);

/** Per-worker statistics, written by the worker only, read by /metrics. */
typedef struct {
    sk_counter_t requests[SK_HTTP_MAX_ROUTES + 1][24]; /* [route+1][status slot] */
    sk_counter_t latency_bucket[SK_HTTP_LAT_BUCKETS]; /* cumulative-free counts per bucket */
    sk_counter_t latency_sum_ns;
    sk_counter_t latency_count;
    sk_counter_t conns_accepted;
    sk_counter_t conns_refused;
    sk_counter_t parse_errors;
    sk_counter_t timeouts;
} sk_http_stats_t;

/** Upper bounds (seconds) of the latency histogram buckets; the last is +Inf. */
extern const double sk_http_latency_bounds[SK_HTTP_LAT_BUCKETS];
/** Status codes that have their own counter slot; others count as slot 0 ("other"). */
int sk_http_status_slot(int status);
int sk_http_slot_status(int slot);
#define SK_HTTP_STATUS_SLOTS 24

/** Creates a listening socket bound to host:port with SO_REUSEPORT (every worker
 *  calls this with the same address). Returns the fd or -errno. */
int sk_http_listen(const char *host, int port);

/** Creates a worker's server on `loop` serving `listen_fd` (owned by the server from
 *  now on). `config` must outlive the server. */
sk_http_server_t *sk_http_server_new(sk_loop_t *loop, int listen_fd, sk_http_config_t *config,
                                     sk_http_handler_t handler, void *handler_arg);
/** Starts a graceful drain: stops accepting, closes idle connections, closes others
 *  after their current response. `done` runs (once, on the loop) when no connection
 *  remains or `grace_ms` passed. */
void sk_http_server_drain(sk_http_server_t *s, uint32_t grace_ms, sk_hook_cb done, void *arg);
/** Frees the server and closes every connection (after the loop stopped). */
void sk_http_server_free(sk_http_server_t *s);
const sk_http_stats_t *sk_http_server_stats(const sk_http_server_t *s);
/** Open connections of this worker. */
uint32_t sk_http_server_conns(const sk_http_server_t *s);
/** The address of the request's peer: the socket's (a proxy's, behind one; family 0 for
 *  a peer that has none). Valid while the exchange is. */
const sk_ip_t *sk_http_peer(const sk_http_exchange_t *x);

/** Answers the request. `extra_headers` is NULL or complete "Name: value\r\n" lines.
 *  The body is copied; for HEAD requests it is left out but its length is sent. */
void sk_http_respond_ex(sk_http_exchange_t *x, int status, const char *content_type, const char *extra_headers,
                        const void *body, size_t len);
static inline void sk_http_respond(sk_http_exchange_t *x, int status, const char *content_type, const void *body,
                                   size_t len)
{
    sk_http_respond_ex(x, status, content_type, NULL, body, len);
}
/** Answers {"error": code, "message": message} with the given status. */
void sk_http_respond_error(sk_http_exchange_t *x, int status, const char *code, const char *message);

/** Reserves the answer's place in the connection's response order; the answer is given
 *  later with sk_http_deferred_respond on the same loop thread. Never fails. */
sk_http_deferred_t *sk_http_defer(sk_http_exchange_t *x);
/** Completes a deferred answer (exactly once) and frees `d`. */
void sk_http_deferred_respond(sk_http_deferred_t *d, int status, const char *content_type, const char *extra_headers,
                              const void *body, size_t len);

/** Turns the connection into an open-ended stream (Server-Sent Events): sends the status
 *  line and headers (no length; the stream ends when the connection closes) and stops
 *  reading requests from it. `on_close` runs once when the connection goes away (client
 *  closed, error, drain), after which the returned handle is invalid. */
sk_http_conn_t *sk_http_stream_start(sk_http_exchange_t *x, const char *content_type, const char *extra_headers,
                                     void (*on_close)(sk_http_conn_t *c, void *arg), void *arg);
/** Appends bytes to a stream. Returns 0, or -ENOBUFS when the client is too slow and the
 *  connection was closed (on_close has then run). */
int sk_http_stream_write(sk_http_conn_t *c, const void *data, size_t len);

#endif
