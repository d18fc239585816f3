/* A non-blocking HTTP/1.1 client connection on the project's event loop, for the load
 * generator: keep-alive, pipelining (up to a fixed number of requests in flight),
 * output batched into one write per loop turn, responses framed by resp.h.
 *
 * Ownership: the caller owns every sk_loadgen_conn_t and sk_loadgen_client_t (embedded in
 * its own structs) and the request handles (`void *req`) it passes in; the connection
 * only remembers the handles, in order, until their answer or failure is reported.
 * A connection is reused across reconnects; sk_loadgen_conn_free() releases its buffers.
 * Everything runs on the loop's thread. */
#ifndef SK_LOADGEN_CLIENT_H
#define SK_LOADGEN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loadgen/resp.h"
#include "loop/loop.h"

/** One server to send to, parsed from "http://host[:port][/base]". */
typedef struct {
    char *url; /* as given */
    char *host; /* host name or address, without brackets */
    char *hostport; /* the Host header value */
    char *base; /* path prefix without a trailing '/', "" when none */
    int port;
    struct sockaddr_storage addr;
    socklen_t addr_len;
} sk_loadgen_target_t;

/** Parses and resolves a target URL. Returns 0, or -EINVAL (bad URL, only http:// is
 *  supported) / -EHOSTUNREACH (name does not resolve) with a message in err. */
int sk_loadgen_target_parse(const char *url, sk_loadgen_target_t *t, char *err, size_t err_len);
/** Frees the strings of a target. */
void sk_loadgen_target_free(sk_loadgen_target_t *t);

typedef struct sk_loadgen_conn sk_loadgen_conn_t;
typedef struct sk_loadgen_client sk_loadgen_client_t;

/** The callbacks of a connection. Each request handle handed to sk_loadgen_conn_send()
 *  comes back exactly once: through on_response or through on_failed. */
typedef struct {
    /** A complete response to the oldest request in flight. `resp` (and its body) is
     *  valid only during the call. The callback may send or close on `c`. */
    void (*on_response)(sk_loadgen_conn_t *c, void *req, const sk_loadgen_resp_t *resp);
    /** The request will get no answer on this connection: `err` is a negative errno
     *  (-ECONNRESET, -ETIMEDOUT, -EPROTO for a malformed response, ...). Whether the
     *  server acted on it is unknown. Called while the connection is closing: do not
     *  send on `c` from here. */
    void (*on_failed)(sk_loadgen_conn_t *c, void *req, int err);
    /** The connection is established (requests queued while connecting are on their way). */
    void (*on_connected)(sk_loadgen_conn_t *c);
    /** The connection is closed: err is 0 when the server closed it cleanly between
     *  requests, else a negative errno. Called after on_failed for every request. The
     *  callback may reconnect. */
    void (*on_closed)(sk_loadgen_conn_t *c, int err);
} sk_loadgen_conn_cbs_t;

enum { SK_LOADGEN_CONN_CLOSED = 0, SK_LOADGEN_CONN_CONNECTING, SK_LOADGEN_CONN_OPEN };

struct sk_loadgen_conn {
    sk_io_t io;
    sk_loadgen_client_t *client;
    const sk_loadgen_target_t *target;
    const sk_loadgen_conn_cbs_t *cbs;
    void *data; /* free for the owner */
    int state;
    bool dirty; /* on the client's flush list */
    bool in_callback;
    sk_loadgen_conn_t *next_dirty;

    char *out;
    size_t out_len, out_off, out_cap;
    char *in;
    size_t in_len, in_cap;
    sk_loadgen_resp_t resp;

    void **inflight; /* ring of request handles awaiting an answer */
    uint32_t cap, head, count;

    uint64_t responses; /* answers on this connection since it was last opened */
    uint64_t connects; /* times connect was started: a generation number */
};

/** The per-thread context: the loop and the connections waiting to flush. */
struct sk_loadgen_client {
    sk_loop_t *loop;
    sk_loadgen_conn_t *dirty;
    uint64_t bytes_sent, bytes_received, writes, reads;
};

/** Prepares a client context on `loop`. */
void sk_loadgen_client_init(sk_loadgen_client_t *cl, sk_loop_t *loop);
/** Writes the queued output of every connection that has some. Call it once per loop
 *  turn (from the before-sleep hook): that batches pipelined requests into one write. */
void sk_loadgen_client_flush(sk_loadgen_client_t *cl);

/** Prepares a closed connection that allows `pipeline` requests in flight. */
void sk_loadgen_conn_init(sk_loadgen_conn_t *c, sk_loadgen_client_t *cl, const sk_loadgen_target_t *t,
                          const sk_loadgen_conn_cbs_t *cbs, uint32_t pipeline);
/** Releases the buffers; the connection must be closed. */
void sk_loadgen_conn_free(sk_loadgen_conn_t *c);

/** Starts connecting. Returns 0 (on_connected or on_closed follows) or -errno when no
 *  socket could be started (no callback then). */
int sk_loadgen_conn_connect(sk_loadgen_conn_t *c);

/** Reserves `len` bytes of output for a request the caller writes in place, then
 *  sk_loadgen_conn_commit() queues them with the handle and remembers `req` for its
 *  answer. Allowed while connecting or open, when sk_loadgen_conn_room() > 0; commit
 *  returns 0 or -EAGAIN (no room) / -ENOTCONN (closed). */
char *sk_loadgen_conn_reserve(sk_loadgen_conn_t *c, size_t len);
int sk_loadgen_conn_commit(sk_loadgen_conn_t *c, void *req, size_t len);

/** Requests that may still be queued before the pipeline is full. */
static inline uint32_t sk_loadgen_conn_room(const sk_loadgen_conn_t *c)
{
    return c->state == SK_LOADGEN_CONN_CLOSED ? 0 : c->cap - c->count;
}

/** Closes the connection: every request in flight fails with `err` (a negative errno),
 *  then on_closed(err) runs. Safe on a closed connection (no callbacks then). */
void sk_loadgen_conn_close(sk_loadgen_conn_t *c, int err);

#endif
