/* HTTP/1.1 server: one sk_http_server_t per worker thread, each with its own loop and
 * its own SO_REUSEPORT listener. Knows nothing of sales: every parsed request goes to
 * one handler (the API's dispatcher), which answers at once or defers the answer.
 *
 * Ownership and lifetime:
 *  - An sk_http_exchange_t and the request it points to borrow the connection's read
 *    buffer; they are valid only during the handler call. Copy what you keep.
 *  - A deferred answer (sk_http_defer) is a slot in the connection's line of answers.
 *    The connection owns the slot and frees it; whoever completes it holds a counted
 *    reference to the connection until sk_http_deferred_respond, which must be called
 *    exactly once, on the worker's loop thread, even if the client went away (the
 *    answer is then dropped). The connection's memory lives until the last reference
 *    is released (see the rule at the top of server.c).
 *  - A parked request (sk_http_park) stays unread in the connection's buffer, and the
 *    connection reads and handles nothing after it, until sk_http_unpark hands it to
 *    the handler again (a lookup the answer depends on is done). Whoever parked it holds
 *    a counted reference, as for a deferred answer, and must unpark it exactly once, on
 *    the worker's loop thread, even if the client went away.
 *  - Responses of one connection are sent in request order (pipelining), event streams
 *    included: a stream's head leaves after every earlier answer. All output produced in
 *    one loop turn is written with one write() per connection, in the loop's
 *    before-sleep list (SK_LOOP_PHASE_OUTPUT). */
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
typedef struct sk_http_parked sk_http_parked_t;

typedef struct sk_http_addr_table sk_http_addr_table_t;

/** Settings shared by every worker's server (read-only once serving), and the counters
 *  they share. A zeroed config with access_log_fd = -1 is valid: every stream limit 0
 *  means "no limit". sk_http_config_init gives the per-address stream table, which the
 *  per-address cap needs. */
typedef struct {
    uint32_t header_timeout_ms; /* a request's head and body must arrive within this */
    uint32_t idle_timeout_ms; /* keep-alive connections with nothing to do are closed */
    uint32_t max_conns; /* over all workers; more are answered 503 and closed */
    int access_log_fd; /* -1: off */
    /* Event streams hold a connection for as long as the client wants, so they get
     * limits of their own: at most max_streams over all workers (keep it below
     * max_conns, so that the rest stays free for requests that are not streams), at
     * most max_streams_per_addr per client address (an IPv6 client counts per /64), a
     * lifetime after which the stream ends (the client reconnects), and a bound on the
     * unsent stream bytes over all workers. */
    uint32_t max_streams;
    uint32_t max_streams_per_addr;
    uint32_t stream_lifetime_ms;
    size_t max_stream_backlog;
    _Atomic uint32_t conns_open; /* over all workers */
    _Atomic uint32_t streams_open; /* over all workers */
    _Atomic size_t stream_backlog; /* unsent stream bytes, over all workers */
    sk_http_addr_table_t *stream_addrs; /* owned; NULL: no per-address cap */
} sk_http_config_t;

/** Zeroes the config, sets access_log_fd to -1 and creates the per-address stream
 *  table. Release with sk_http_config_destroy once every server is freed. */
void sk_http_config_init(sk_http_config_t *cfg);
void sk_http_config_destroy(sk_http_config_t *cfg);

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
    bool parked; /* sk_http_park: handled again later */
    int resumed; /* 0, or the tag sk_http_unpark gave when it handed this request again */
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
    sk_counter_t streams_refused; /* too many streams (in all, or from one address) */
    sk_counter_t streams_expired; /* ended by the stream lifetime */
    sk_counter_t streams_dropped; /* a client too far behind, or the backlog bound */
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
 *  now on; -1: no listener, connections come only from sk_http_server_adopt).
 *  `config` must outlive the server. */
sk_http_server_t *sk_http_server_new(sk_loop_t *loop, int listen_fd, sk_http_config_t *config,
                                     sk_http_handler_t handler, void *handler_arg);
/** Serves an already connected socket as if it had been accepted (the fd is owned by
 *  the server from now on, and counts against no cap). A small seam for tests and
 *  fuzzing, which feed a connection through a socketpair. Returns 0 or -errno (the fd
 *  is then closed). */
int sk_http_server_adopt(sk_http_server_t *s, int fd);
/** Starts a graceful drain: stops accepting, closes idle connections, closes others
 *  after their current response. `done` runs (once, on the loop) when no connection
 *  remains or `grace_ms` passed. */
void sk_http_server_drain(sk_http_server_t *s, uint32_t grace_ms, sk_hook_cb done, void *arg);
/** Frees the server and closes every connection (after the loop stopped). Every
 *  deferred answer must have been completed before: a connection still referenced is
 *  logged and left allocated (with the server) rather than freed under its completer. */
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
/** Parks the request: it is not answered now, and it is handed to the handler again,
 *  whole, with x->resumed set to the tag, when sk_http_unpark is called (on the same
 *  loop thread, exactly once). Nothing after it on the connection is read or handled
 *  meanwhile, so answers stay in request order. For a handler that needs something
 *  first (a lookup in a store shared with other nodes) and will then handle the request
 *  as if it had just come. Returns NULL (and the handler answers as it would without)
 *  for a request that cannot be handled twice: a chunked body, decoded in place. */
sk_http_parked_t *sk_http_park(sk_http_exchange_t *x);
/** Hands a parked request to the handler again (tag: non-zero, seen as x->resumed),
 *  unless its client went away meanwhile; then goes on with the connection. */
void sk_http_unpark(sk_http_parked_t *p, int tag);
/** Completes a deferred answer (exactly once) and frees `d`. */
void sk_http_deferred_respond(sk_http_deferred_t *d, int status, const char *content_type, const char *extra_headers,
                              const void *body, size_t len);

/** Turns the connection into an open-ended stream (Server-Sent Events): queues the
 *  status line and headers (no length; the stream ends when the connection closes)
 *  behind every earlier answer of the connection, and stops reading requests from it.
 *  `on_close` runs once when the stream ends (client closed, error, too slow, lifetime
 *  over, drain), after which the returned handle is invalid.
 *  Returns NULL when the request was answered without a stream (on_close never runs):
 *  a HEAD request gets the head alone; over the stream limits the answer is 429
 *  (this client address has too many) or 503 (too many in all, or draining), JSON, with
 *  Retry-After, and the connection closes. */
sk_http_conn_t *sk_http_stream_start(sk_http_exchange_t *x, const char *content_type, const char *extra_headers,
                                     void (*on_close)(sk_http_conn_t *c, void *arg), void *arg);
/** Appends bytes to a stream. Returns 0, or -ENOBUFS when the stream was ended instead
 *  (the client is too far behind, or the backlog over all streams is at its bound and
 *  this client is behind): on_close has then run. */
int sk_http_stream_write(sk_http_conn_t *c, const void *data, size_t len);

#endif
