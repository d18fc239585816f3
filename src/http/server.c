/* Connections, pipelining, limits and timeouts of the HTTP/1.1 server.
 *
 * The shape of a turn: epoll reports a readable socket; we read once (edge-triggered:
 * until a short read or EAGAIN), parse and handle every complete request in the buffer,
 * and append the answers to the connection's output. Nothing is written yet: the loop's
 * before-sleep hook writes each connection's output with a single write(), so a batch
 * of 16 pipelined requests costs one read and one write. Answers deferred to the
 * ledger keep their place in line through a FIFO of deferred slots. */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"

#define SK_CONN_RBUF_INIT 4096
#define SK_CONN_RBUF_MAX (SK_HTTP_MAX_HEAD + SK_HTTP_MAX_BODY + 16384)
#define SK_CONN_MAX_DEFERRED 256 /* pipelined answers waiting on one connection */
#define SK_CONN_MAX_OUTPUT (1u << 20) /* stop reading while this much is unsent */
#define SK_STREAM_MAX_OUTPUT (256u * 1024) /* a stream client this far behind is dropped */
#define SK_SWEEP_MS 250
#define SK_ACCESS_LOG_BUF (64 * 1024)

struct sk_http_deferred {
    sk_http_conn_t *conn;
    sk_http_deferred_t *next;
    bool done;
    bool head_only;
    bool close; /* the connection closes after this answer */
    bool http10;
    int route;
    uint64_t start_ns;
    sk_buf_t out; /* the answer, when done but not yet at the head of the line */
    char *log_line; /* "METHOD target HTTP/1.x" for the access log, or NULL */
};

struct sk_http_conn {
    sk_io_t io;
    sk_http_server_t *s;
    sk_http_conn_t *prev, *next; /* all connections of the server */
    sk_http_conn_t *flush_next; /* the before-sleep flush list */
    bool in_flush;
    bool closed;
    bool no_more; /* read no further requests (close after the answers) */
    bool read_eof; /* the peer shut down its sending side (we read the EOF) */
    bool peer_hup; /* epoll reported RDHUP/HUP: an EOF waits behind the data */
    bool read_paused; /* backpressure: unread data may sit in the socket */
    bool streaming;
    bool sent_continue;
    bool in_chunked;
    bool on_free_list;

    char *rbuf;
    size_t rcap, rlen, rpos;
    sk_http_chunked_t chunk;
    size_t chunk_head; /* head length of the request whose chunked body is decoding */
    size_t chunk_end; /* offset from rpos where decoded body ends */

    sk_buf_t out;
    size_t out_pos;

    sk_http_deferred_t *dq_head, *dq_tail;
    uint32_t dq_len; /* slots in the FIFO */
    uint32_t refs; /* deferred answers not yet completed */

    uint64_t req_start_ms; /* first byte of the request being received, 0 when none */
    uint64_t last_active_ms;

    void (*on_close)(sk_http_conn_t *c, void *arg);
    void *on_close_arg;
    char peer[INET6_ADDRSTRLEN]; /* as text, for the access log */
    sk_ip_t peer_ip;
};

struct sk_http_server {
    sk_loop_t *loop;
    sk_io_t listen_io;
    sk_http_config_t *cfg;
    sk_http_handler_t handler;
    void *handler_arg;
    sk_http_conn_t *conns;
    sk_http_conn_t *flush_list;
    sk_http_conn_t **free_list;
    size_t free_len, free_cap;
    _Atomic uint32_t nconns; /* written by this worker, read by /metrics anywhere */
    sk_timer_t sweep;
    uint64_t now_ns; /* refreshed after every read() */
    char date[64];
    size_t date_len;
    time_t date_sec;
    sk_buf_t access_log;
    bool draining;
    uint64_t drain_deadline_ms;
    sk_hook_cb drain_done;
    void *drain_arg;
    sk_http_stats_t stats;
};

const double sk_http_latency_bounds[SK_HTTP_LAT_BUCKETS] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 1e300,
};

static const int status_slots[SK_HTTP_STATUS_SLOTS] = {
    0,   100, 200, 201, 204, 304, 400, 401, 403, 404, 405, 408,
    409, 410, 411, 413, 417, 425, 429, 431, 500, 501, 503, 505,
};

int sk_http_status_slot(int status)
{
    for (int i = 1; i < SK_HTTP_STATUS_SLOTS; i++)
        if (status_slots[i] == status)
            return i;
    return 0;
}

int sk_http_slot_status(int slot)
{
    return status_slots[slot];
}

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 417:
        return "Expectation Failed";
    case 425:
        return "Too Early";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* ---- listening ---------------------------------------------------------------- */

int sk_http_listen(const char *host, int port)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0)
        return -EADDRNOTAVAIL;
    int fd = -1, err = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        err = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd >= 0 ? fd : err;
}

/* ---- helpers -------------------------------------------------------------------- */

static void schedule_flush(sk_http_conn_t *c)
{
    if (!c->in_flush && !c->closed) {
        c->in_flush = true;
        c->flush_next = c->s->flush_list;
        c->s->flush_list = c;
    }
}

static void refresh_date(sk_http_server_t *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec == s->date_sec)
        return;
    s->date_sec = ts.tv_sec;
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    s->date_len = strftime(s->date, sizeof(s->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

static void record(sk_http_server_t *s, int route, int status, uint64_t start_ns)
{
    int r = route < 0 || route >= SK_HTTP_MAX_ROUTES ? 0 : route + 1;
    sk_counter_add(&s->stats.requests[r][sk_http_status_slot(status)], 1);
    uint64_t ns = s->now_ns > start_ns ? s->now_ns - start_ns : 0;
    double sec = (double)ns / 1e9;
    int b = 0;
    while (b < SK_HTTP_LAT_BUCKETS - 1 && sec > sk_http_latency_bounds[b])
        b++;
    sk_counter_add(&s->stats.latency_bucket[b], 1);
    sk_counter_add(&s->stats.latency_sum_ns, ns);
    sk_counter_add(&s->stats.latency_count, 1);
}

static void access_log_flush(sk_http_server_t *s)
{
    if (s->access_log.len == 0 || s->cfg->access_log_fd < 0)
        return;
    ssize_t w = write(s->cfg->access_log_fd, s->access_log.data, s->access_log.len);
    (void)w; /* a full disk must not stop the service; the log is best effort */
    s->access_log.len = 0;
}

static void access_log(sk_http_server_t *s, sk_http_conn_t *c, const char *line, size_t line_len, int status,
                       size_t bytes)
{
    if (s->cfg->access_log_fd < 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    sk_buf_printf(&s->access_log, "%s - - [%s] \"%.*s\" %d %zu\n", c->peer, when, (int)line_len, line, status, bytes);
    if (s->access_log.len > SK_ACCESS_LOG_BUF - 1024)
        access_log_flush(s);
}

/* Writes a complete response into `b`. */
enum { CONN_HDR_NONE = 0, CONN_HDR_CLOSE, CONN_HDR_KEEP_ALIVE };

static void build_response(sk_http_server_t *s, sk_buf_t *b, int status, const char *ctype, const char *extra,
                           const void *body, size_t len, bool head_only, int conn_hdr)
{
    const char *rs = reason(status);
    size_t rl = strlen(rs), cl = ctype ? strlen(ctype) : 0, el = extra ? strlen(extra) : 0;
    sk_buf_reserve(b, 128 + rl + s->date_len + cl + el + (head_only ? 0 : len));
    char *p = b->data + b->len;
    memcpy(p, "HTTP/1.1 ", 9);
    p += 9;
    p += sk_fmt_u64(p, (uint64_t)status);
    *p++ = ' ';
    memcpy(p, rs, rl);
    p += rl;
    memcpy(p, "\r\nServer: seckill\r\n", 19);
    p += 19;
    memcpy(p, s->date, s->date_len);
    p += s->date_len;
    if (ctype) {
        memcpy(p, "Content-Type: ", 14);
        p += 14;
        memcpy(p, ctype, cl);
        p += cl;
        *p++ = '\r';
        *p++ = '\n';
    }
    memcpy(p, "Content-Length: ", 16);
    p += 16;
    p += sk_fmt_u64(p, len);
    *p++ = '\r';
    *p++ = '\n';
    if (conn_hdr == CONN_HDR_CLOSE) {
        memcpy(p, "Connection: close\r\n", 19);
        p += 19;
    } else if (conn_hdr == CONN_HDR_KEEP_ALIVE) {
        memcpy(p, "Connection: keep-alive\r\n", 24);
        p += 24;
    }
    if (el) {
        memcpy(p, extra, el);
        p += el;
    }
    *p++ = '\r';
    *p++ = '\n';
    if (!head_only && len) {
        memcpy(p, body, len);
        p += len;
    }
    b->len = (size_t)(p - b->data);
}

static void error_body(sk_buf_t *b, const char *code, const char *message)
{
    sk_buf_puts(b, "{\"error\":");
    sk_buf_put_json_str(b, code, strlen(code));
    sk_buf_puts(b, ",\"message\":");
    sk_buf_put_json_str(b, message, strlen(message));
    sk_buf_puts(b, "}\n");
}

/* ---- connection lifetime ----------------------------------------------------------- */

static void conn_free(sk_http_conn_t *c)
{
    sk_http_deferred_t *d = c->dq_head;
    while (d) {
        sk_http_deferred_t *n = d->next;
        if (d->done) { /* completed answers never sent: the connection died first */
            sk_buf_free(&d->out);
            free(d->log_line);
            free(d);
        } else {
            d->conn = c; /* still owned by its completer; it will see c->closed */
            d->next = NULL;
        }
        d = n;
    }
    free(c->rbuf);
    sk_buf_free(&c->out);
    free(c);
}

/* Queues a closed connection to be freed at the end of the loop turn, once no deferred
 * answer points at it any more. */
static void free_later(sk_http_conn_t *c)
{
    sk_http_server_t *s = c->s;
    if (c->refs != 0 || c->on_free_list)
        return;
    c->on_free_list = true;
    if (s->free_len == s->free_cap) {
        s->free_cap = s->free_cap ? s->free_cap * 2 : 64;
        s->free_list = sk_xrealloc(s->free_list, s->free_cap * sizeof(*s->free_list));
    }
    s->free_list[s->free_len++] = c;
}

static void conn_close(sk_http_conn_t *c)
{
    if (c->closed)
        return;
    sk_http_server_t *s = c->s;
    c->closed = true;
    sk_io_stop(s->loop, &c->io);
    close(c->io.fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    atomic_store_explicit(&s->nconns, atomic_load_explicit(&s->nconns, memory_order_relaxed) - 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&s->cfg->conns_open, 1, memory_order_relaxed);
    if (c->streaming && c->on_close) {
        void (*cb)(sk_http_conn_t *, void *) = c->on_close;
        c->on_close = NULL;
        cb(c, c->on_close_arg);
    }
    /* Freed at the end of the turn: epoll may still report this handle in the current
     * batch, and deferred answers may still point at it. */
    free_later(c);
}

/* ---- responses ------------------------------------------------------------------- */

/* Moves completed answers at the head of the FIFO into the output. */
static void dq_drain(sk_http_conn_t *c)
{
    while (c->dq_head && c->dq_head->done) {
        sk_http_deferred_t *d = c->dq_head;
        c->dq_head = d->next;
        if (!c->dq_head)
            c->dq_tail = NULL;
        c->dq_len--;
        sk_buf_append(&c->out, d->out.data, d->out.len);
        sk_buf_free(&d->out);
        free(d->log_line);
        free(d);
    }
    schedule_flush(c);
}

static int conn_hdr_for(bool close, bool http10)
{
    return close ? CONN_HDR_CLOSE : http10 ? CONN_HDR_KEEP_ALIVE : CONN_HDR_NONE;
}

static bool status_closes(int status)
{
    return status == 400 || status == 408 || status == 413 || status == 417 || status == 431 || status == 501 ||
           status == 505;
}

void sk_http_respond_ex(sk_http_exchange_t *x, int status, const char *content_type, const char *extra_headers,
                        const void *body, size_t len)
{
    sk_http_conn_t *c = x->conn;
    sk_http_server_t *s = x->server;
    bool head_only = x->req->method == SK_HTTP_HEAD;
    bool close = !x->req->keep_alive || c->no_more || s->draining || status_closes(status);
    int hdr = conn_hdr_for(close, x->req->minor_version == 0);
    x->answered = true;
    if (close)
        c->no_more = true;
    if (c->dq_head) {
        /* Earlier answers are still pending: wait in line. */
        sk_http_deferred_t *d = sk_xcalloc(1, sizeof(*d));
        d->conn = c;
        d->done = true;
        build_response(s, &d->out, status, content_type, extra_headers, body, len, head_only, hdr);
        c->dq_tail->next = d;
        c->dq_tail = d;
        c->dq_len++;
    } else {
        build_response(s, &c->out, status, content_type, extra_headers, body, len, head_only, hdr);
        schedule_flush(c);
    }
    record(s, x->route, status, x->start_ns);
    if (s->cfg->access_log_fd >= 0)
        access_log(s, c, x->line, x->line_len, status, len);
}

void sk_http_respond_error(sk_http_exchange_t *x, int status, const char *code, const char *message)
{
    sk_buf_t b = {0};
    error_body(&b, code, message);
    const char *extra = NULL;
    sk_http_respond_ex(x, status, "application/json", extra, b.data, b.len);
    sk_buf_free(&b);
}

sk_http_deferred_t *sk_http_defer(sk_http_exchange_t *x)
{
    sk_http_conn_t *c = x->conn;
    sk_http_deferred_t *d = sk_xcalloc(1, sizeof(*d));
    d->conn = c;
    d->head_only = x->req->method == SK_HTTP_HEAD;
    d->close = !x->req->keep_alive;
    d->route = x->route;
    d->start_ns = x->start_ns;
    d->http10 = x->req->minor_version == 0;
    if (x->server->cfg->access_log_fd >= 0)
        d->log_line = sk_xstrndup(x->line, x->line_len);
    if (d->close)
        c->no_more = true;
    if (c->dq_tail)
        c->dq_tail->next = d;
    else
        c->dq_head = d;
    c->dq_tail = d;
    c->dq_len++;
    c->refs++;
    x->answered = true;
    return d;
}

static void conn_after_output(sk_http_conn_t *c);

void sk_http_deferred_respond(sk_http_deferred_t *d, int status, const char *content_type, const char *extra_headers,
                              const void *body, size_t len)
{
    sk_http_conn_t *c = d->conn;
    sk_http_server_t *s = c->s;
    c->refs--;
    s->now_ns = sk_mono_ns();
    record(s, d->route, status, d->start_ns);
    if (c->closed) {
        /* The client went away; the decision stands (it is durable) and the client can
         * ask for its orders. Only the memory is ours to release. */
        free(d->log_line);
        free(d);
        free_later(c);
        return;
    }
    bool close = d->close || s->draining || status_closes(status);
    if (close)
        c->no_more = true;
    if (d->log_line)
        access_log(s, c, d->log_line, strlen(d->log_line), status, len);
    build_response(s, &d->out, status, content_type, extra_headers, body, len, d->head_only,
                   conn_hdr_for(close, d->http10));
    d->done = true;
    dq_drain(c);
    conn_after_output(c);
}

/* ---- reading and parsing ------------------------------------------------------------ */

static void respond_raw_error(sk_http_conn_t *c, int status, const char *code, const char *message)
{
    sk_http_request_t dummy = {.method = SK_HTTP_GET, .keep_alive = false, .minor_version = 1};
    sk_http_exchange_t x = {
        .server = c->s, .conn = c, .req = &dummy, .route = -1, .start_ns = c->s->now_ns, .line = "-", .line_len = 1};
    sk_http_respond_error(&x, status, code, message);
    c->no_more = true;
    sk_counter_add(&c->s->stats.parse_errors, 1);
}

static const char *error_code_for(int status)
{
    switch (status) {
    case 417:
        return "expectation_failed";
    case 431:
        return "headers_too_large";
    case 501:
        return "not_implemented";
    case 505:
        return "http_version_not_supported";
    default:
        return "bad_request";
    }
}

/* Handles every complete request in the read buffer, in order. */
static void conn_process(sk_http_conn_t *c)
{
    sk_http_server_t *s = c->s;
    sk_http_request_t req;
    while (!c->no_more && !c->closed && c->rpos < c->rlen) {
        if (c->dq_len >= SK_CONN_MAX_DEFERRED || c->out.len - c->out_pos >= SK_CONN_MAX_OUTPUT) {
            c->read_paused = true;
            return;
        }
        char *start = c->rbuf + c->rpos;
        size_t avail = c->rlen - c->rpos;
        int n = sk_http_parse_request(start, avail, &req);
        if (n == -2) {
            if (avail >= SK_HTTP_MAX_HEAD)
                respond_raw_error(c, 431, "headers_too_large", "request line and headers exceed 8 KiB");
            return;
        }
        if (n == -1) {
            respond_raw_error(c, req.error_status, error_code_for(req.error_status), req.error_message);
            return;
        }
        if ((size_t)n > SK_HTTP_MAX_HEAD) {
            respond_raw_error(c, 431, "headers_too_large", "request line and headers exceed 8 KiB");
            return;
        }
        size_t body_len = 0, consumed;
        char *body = start + n;
        if (req.chunked) {
            if (!c->in_chunked) {
                c->in_chunked = true;
                memset(&c->chunk, 0, sizeof(c->chunk));
                c->chunk_head = (size_t)n;
                c->chunk_end = (size_t)n;
            }
            size_t raw = avail - c->chunk_end;
            ssize_t rest = sk_http_decode_chunked(&c->chunk, start + c->chunk_end, &raw);
            c->chunk_end += raw;
            if (c->chunk.total > SK_HTTP_MAX_BODY) {
                respond_raw_error(c, 413, "body_too_large", "request body exceeds 64 KiB");
                return;
            }
            if (rest == -1) {
                respond_raw_error(c, 400, "bad_request", "malformed chunked body");
                return;
            }
            if (rest == -2) {
                c->rlen = c->rpos + c->chunk_end;
                if (req.expect_continue && !c->sent_continue && !c->dq_head) {
                    sk_buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                    c->sent_continue = true;
                    schedule_flush(c);
                }
                return;
            }
            c->rlen = c->rpos + c->chunk_end + (size_t)rest;
            body_len = c->chunk_end - c->chunk_head;
            consumed = c->chunk_end;
            c->in_chunked = false;
        } else {
            if (req.content_length > SK_HTTP_MAX_BODY) {
                respond_raw_error(c, 413, "body_too_large", "request body exceeds 64 KiB");
                return;
            }
            body_len = req.content_length > 0 ? (size_t)req.content_length : 0;
            if (avail - (size_t)n < body_len) {
                if (req.expect_continue && !c->sent_continue && !c->dq_head) {
                    sk_buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                    c->sent_continue = true;
                    schedule_flush(c);
                }
                return;
            }
            consumed = (size_t)n + body_len;
        }
        /* NUL-terminate the body for the handler; the byte belongs to the next request
         * (or is spare capacity) and is restored afterwards. */
        char saved = body[body_len];
        body[body_len] = '\0';
        sk_http_exchange_t x = {.server = s,
                                .conn = c,
                                .req = &req,
                                .body = body,
                                .body_len = body_len,
                                .route = -1,
                                .start_ns = s->now_ns,
                                .line = req.method_str,
                                .line_len = (size_t)(req.target + req.target_len - req.method_str) + 9};
        if (!req.keep_alive)
            c->no_more = true;
        s->handler(&x, s->handler_arg);
        if (!x.answered)
            sk_http_respond_error(&x, 500, "internal", "the request was not answered");
        body[body_len] = saved;
        c->rpos += consumed;
        c->sent_continue = false;
        c->req_start_ms = c->rpos < c->rlen ? sk_loop_now(s->loop) : 0;
    }
}

static void conn_on_io(sk_loop_t *loop, sk_io_t *io, unsigned events);

/* Reads what the socket holds and handles it. Edge-triggered: we must drain the socket
 * unless we stop on purpose (backpressure), in which case read_paused remembers it. */
static void conn_read(sk_http_conn_t *c)
{
    sk_http_server_t *s = c->s;
    while (!c->closed && !c->read_eof) {
        if (c->no_more && !c->streaming) {
            /* No more requests will be read; leave the rest in the socket. */
            c->read_paused = true;
            return;
        }
        if (c->rpos == c->rlen && !c->in_chunked) {
            c->rpos = c->rlen = 0;
        } else if (c->rpos > 0 && c->rlen + 1 >= c->rcap) {
            memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        }
        if (c->rlen + 1 >= c->rcap) {
            if (c->rcap >= SK_CONN_RBUF_MAX) {
                /* Only possible mid-body beyond limits, which conn_process refuses. */
                respond_raw_error(c, 413, "body_too_large", "request too large");
                return;
            }
            c->rcap = c->rcap ? SK_MIN(c->rcap * 2, (size_t)SK_CONN_RBUF_MAX) : SK_CONN_RBUF_INIT;
            c->rbuf = sk_xrealloc(c->rbuf, c->rcap);
        }
        size_t space = c->rcap - 1 - c->rlen;
        ssize_t n = read(c->io.fd, c->rbuf + c->rlen, space);
        if (n > 0) {
            if (c->rlen == c->rpos)
                c->req_start_ms = sk_loop_now(s->loop);
            c->rlen += (size_t)n;
            c->last_active_ms = sk_loop_now(s->loop);
            s->now_ns = sk_mono_ns();
            if (c->streaming) {
                c->rpos = c->rlen = 0; /* a stream's client has nothing to say */
            } else {
                conn_process(c);
                if (c->read_paused)
                    return;
            }
            /* A short read means the socket is drained, unless the peer's FIN came in
             * the same wake-up: then read on to see the EOF, since edge-triggered
             * epoll will not report it again. */
            if ((size_t)n < space && !c->peer_hup)
                return;
            continue;
        }
        if (n == 0) {
            c->read_eof = true;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            conn_close(c);
        return;
    }
    if (c->read_eof && c->streaming && !c->closed) {
        conn_close(c); /* an event-stream client that hangs up is gone */
        return;
    }
    if (c->read_eof && !c->closed) {
        /* Half-closed: answer what was asked, then close. */
        c->no_more = true;
        conn_after_output(c);
    }
}

/* After output was produced or flushed: close if nothing is left to do, or resume a
 * paused reader once the backlog has shrunk. */
static void conn_after_output(sk_http_conn_t *c)
{
    if (c->closed)
        return;
    bool idle_out = c->out.len == c->out_pos;
    if (c->no_more && !c->streaming && !c->dq_head && idle_out) {
        /* The answer said Connection: close. Shut down our side first so that the
         * final answer is not lost to an RST when unread request bytes remain. */
        shutdown(c->io.fd, SHUT_WR);
        conn_close(c);
        return;
    }
    if (c->read_paused && c->dq_len < SK_CONN_MAX_DEFERRED / 2 && c->out.len - c->out_pos < SK_CONN_MAX_OUTPUT / 2 &&
        !c->no_more) {
        c->read_paused = false;
        conn_process(c);
        if (!c->read_paused)
            conn_read(c);
    }
}

static void conn_flush(sk_http_conn_t *c)
{
    while (c->out_pos < c->out.len) {
        ssize_t n = write(c->io.fd, c->out.data + c->out_pos, c->out.len - c->out_pos);
        if (n > 0) {
            c->out_pos += (size_t)n;
            c->last_active_ms = sk_loop_now(c->s->loop);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return; /* EPOLLOUT (edge) will call us again */
        conn_close(c);
        return;
    }
    c->out.len = c->out_pos = 0;
    if (c->out.cap > 64 * 1024) {
        /* Do not keep a large buffer for a connection that had one big answer. */
        sk_buf_free(&c->out);
    }
    conn_after_output(c);
}

static void conn_on_io(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    (void)loop;
    sk_http_conn_t *c = SK_CONTAINER_OF(io, sk_http_conn_t, io);
    if (events & SK_IO_ERR) {
        conn_close(c);
        return;
    }
    if (events & SK_IO_HUP)
        c->peer_hup = true;
    if ((events & SK_IO_WRITE) && c->out_pos < c->out.len)
        conn_flush(c);
    if (!c->closed && (events & SK_IO_READ)) {
        if (c->read_paused && (c->no_more && !c->streaming)) {
            /* We read no more requests; a hang-up still matters for streams only. */
            return;
        }
        if (!c->read_paused)
            conn_read(c);
    }
}

/* ---- accepting -------------------------------------------------------------------- */

static const char overloaded_response[] =
    "HTTP/1.1 503 Service Unavailable\r\nServer: seckill\r\nContent-Type: application/json\r\n"
    "Content-Length: 72\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
    "{\"error\":\"overloaded\",\"message\":\"too many connections, try again later\"}";

static void on_accept(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    (void)events;
    sk_http_server_t *s = SK_CONTAINER_OF(io, sk_http_server_t, listen_io);
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                sk_counter_add(&s->stats.conns_refused, 1);
                sk_warn("accept: %s (raise the open file limit)", strerror(errno));
            }
            return;
        }
        uint32_t open_now = atomic_fetch_add_explicit(&s->cfg->conns_open, 1, memory_order_relaxed);
        if (open_now >= s->cfg->max_conns || s->draining) {
            atomic_fetch_sub_explicit(&s->cfg->conns_open, 1, memory_order_relaxed);
            ssize_t w = write(fd, overloaded_response, sizeof(overloaded_response) - 1);
            (void)w;
            shutdown(fd, SHUT_WR);
            close(fd);
            sk_counter_add(&s->stats.conns_refused, 1);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        sk_http_conn_t *c = sk_xcalloc(1, sizeof(*c));
        c->s = s;
        c->last_active_ms = sk_loop_now(loop);
        sk_ip_from_sockaddr((struct sockaddr *)&ss, &c->peer_ip);
        if (s->cfg->access_log_fd >= 0)
            sk_ip_format(&c->peer_ip, c->peer);
        else
            strcpy(c->peer, "-");
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        atomic_store_explicit(&s->nconns, atomic_load_explicit(&s->nconns, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        sk_counter_add(&s->stats.conns_accepted, 1);
        if (sk_io_start(loop, &c->io, fd, SK_IO_READ | SK_IO_WRITE, conn_on_io) < 0) {
            c->io.fd = fd;
            c->closed = false;
            conn_close(c);
        }
    }
}

/* ---- the turn's end: flush, free, sweep ------------------------------------------------- */

static void before_sleep(sk_loop_t *loop, void *arg)
{
    (void)loop;
    sk_http_server_t *s = arg;
    refresh_date(s);
    while (s->flush_list) {
        sk_http_conn_t *c = s->flush_list;
        s->flush_list = c->flush_next;
        c->in_flush = false;
        if (!c->closed)
            conn_flush(c);
    }
    for (size_t i = 0; i < s->free_len; i++)
        conn_free(s->free_list[i]);
    s->free_len = 0;
}

static void sweep(sk_loop_t *loop, sk_timer_t *t)
{
    sk_http_server_t *s = SK_CONTAINER_OF(t, sk_http_server_t, sweep);
    uint64_t now = sk_loop_now(loop);
    sk_http_conn_t *next;
    for (sk_http_conn_t *c = s->conns; c; c = next) {
        next = c->next;
        if (c->streaming)
            continue;
        bool out_pending = c->out_pos < c->out.len;
        if (out_pending) {
            if (now - c->last_active_ms > s->cfg->idle_timeout_ms) {
                sk_counter_add(&s->stats.timeouts, 1);
                conn_close(c); /* the client stopped reading */
            }
            continue;
        }
        if (c->dq_head)
            continue; /* waiting on the ledger, not on the client */
        if (c->req_start_ms && c->rpos < c->rlen && now - c->req_start_ms > s->cfg->header_timeout_ms) {
            sk_counter_add(&s->stats.timeouts, 1);
            respond_raw_error(c, 408, "request_timeout", "the request was not received in time");
            continue;
        }
        if (c->rpos == c->rlen && now - c->last_active_ms > s->cfg->idle_timeout_ms) {
            sk_counter_add(&s->stats.timeouts, 1);
            conn_close(c);
        }
    }
    access_log_flush(s);
    if (s->draining) {
        if (s->nconns == 0 || now >= s->drain_deadline_ms) {
            while (s->conns)
                conn_close(s->conns);
            if (s->drain_done) {
                sk_hook_cb cb = s->drain_done;
                s->drain_done = NULL;
                cb(loop, s->drain_arg);
            }
            return;
        }
        sk_timer_start(loop, &s->sweep, 20, sweep);
        return;
    }
    sk_timer_start(loop, &s->sweep, SK_SWEEP_MS, sweep);
}

sk_http_server_t *sk_http_server_new(sk_loop_t *loop, int listen_fd, sk_http_config_t *config,
                                     sk_http_handler_t handler, void *handler_arg)
{
    sk_http_server_t *s = sk_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->cfg = config;
    s->handler = handler;
    s->handler_arg = handler_arg;
    s->date_sec = -1;
    refresh_date(s);
    if (sk_io_start(loop, &s->listen_io, listen_fd, SK_IO_READ, on_accept) < 0) {
        free(s);
        return NULL;
    }
    sk_loop_set_before_sleep(loop, before_sleep, s);
    sk_timer_start(loop, &s->sweep, SK_SWEEP_MS, sweep);
    return s;
}

void sk_http_server_drain(sk_http_server_t *s, uint32_t grace_ms, sk_hook_cb done, void *arg)
{
    if (s->draining)
        return;
    s->draining = true;
    s->drain_done = done;
    s->drain_arg = arg;
    s->drain_deadline_ms = sk_loop_now(s->loop) + grace_ms;
    if (s->listen_io.active) {
        sk_io_stop(s->loop, &s->listen_io);
        close(s->listen_io.fd);
    }
    /* Idle connections close now. A connection in the middle of a request (head or
     * body still arriving, or answers owed) gets that request answered, with
     * Connection: close (respond sees s->draining), and closes after it. */
    sk_http_conn_t *next;
    for (sk_http_conn_t *c = s->conns; c; c = next) {
        next = c->next;
        if (c->streaming || (!c->dq_head && c->out_pos == c->out.len && c->rpos == c->rlen && !c->in_chunked))
            conn_close(c);
    }
    sk_timer_start(s->loop, &s->sweep, 0, sweep);
}

void sk_http_server_free(sk_http_server_t *s)
{
    if (!s)
        return;
    while (s->conns)
        conn_close(s->conns);
    before_sleep(s->loop, s);
    access_log_flush(s);
    sk_timer_stop(s->loop, &s->sweep);
    if (s->listen_io.active) {
        sk_io_stop(s->loop, &s->listen_io);
        close(s->listen_io.fd);
    }
    free(s->free_list);
    sk_buf_free(&s->access_log);
    free(s);
}

const sk_http_stats_t *sk_http_server_stats(const sk_http_server_t *s)
{
    return &s->stats;
}

uint32_t sk_http_server_conns(const sk_http_server_t *s)
{
    return atomic_load_explicit(&((sk_http_server_t *)s)->nconns, memory_order_relaxed);
}

const sk_ip_t *sk_http_peer(const sk_http_exchange_t *x)
{
    return &x->conn->peer_ip;
}

/* ---- streams (Server-Sent Events) ----------------------------------------------------- */

sk_http_conn_t *sk_http_stream_start(sk_http_exchange_t *x, const char *content_type, const char *extra_headers,
                                     void (*on_close)(sk_http_conn_t *c, void *arg), void *arg)
{
    sk_http_conn_t *c = x->conn;
    sk_http_server_t *s = x->server;
    x->answered = true;
    sk_buf_t *b = &c->out;
    sk_buf_puts(b, "HTTP/1.1 200 OK\r\nServer: seckill\r\n");
    sk_buf_append(b, s->date, s->date_len);
    sk_buf_puts(b, "Content-Type: ");
    sk_buf_puts(b, content_type);
    sk_buf_puts(b, "\r\nCache-Control: no-cache\r\nConnection: close\r\n");
    if (extra_headers)
        sk_buf_puts(b, extra_headers);
    sk_buf_puts(b, "\r\n");
    c->streaming = true;
    c->no_more = true;
    c->on_close = on_close;
    c->on_close_arg = arg;
    record(s, x->route, 200, x->start_ns);
    schedule_flush(c);
    return c;
}

int sk_http_stream_write(sk_http_conn_t *c, const void *data, size_t len)
{
    if (c->closed)
        return -ENOBUFS;
    if (c->out.len - c->out_pos + len > SK_STREAM_MAX_OUTPUT) {
        conn_close(c);
        return -ENOBUFS;
    }
    sk_buf_append(&c->out, data, len);
    schedule_flush(c);
    return 0;
}
