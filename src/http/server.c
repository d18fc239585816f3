/* Connections, pipelining, limits and timeouts of the HTTP/1.1 server.
 *
 * The shape of a turn: epoll reports a readable socket; we read once (edge-triggered:
 * until a short read or EAGAIN), parse and handle every complete request in the buffer,
 * and append the answers to the connection's output. Nothing is written yet: the loop's
 * before-sleep list writes each connection's output with a single write(), so a batch
 * of 16 pipelined requests costs one read and one write. Answers deferred to the
 * ledger keep their place in line through a FIFO of answer slots.
 *
 * Who frees what (the one rule for connections and their deferred answers):
 *
 *  - A connection is reference-counted (c->refs). The open socket holds one reference,
 *    dropped by conn_close; every deferred answer not yet completed holds one, taken by
 *    sk_http_defer and dropped by sk_http_deferred_respond. Nothing else holds one.
 *  - The last release (conn_release) puts the connection on the server's free list,
 *    and it is freed at the end of the loop turn (before_sleep), never earlier: epoll
 *    may still report its handle later in the same batch of events. So a connection
 *    closed while the ledger still owes it answers (a reset mid-purchase, a read or
 *    write error, the sweep dropping a stalled reader, the drain's grace deadline)
 *    stays allocated, closed, until its last answer arrives. This is h2o's
 *    h2o_mem_release_shared, or Redis's protectClient, applied to one connection.
 *  - Answer slots belong to the connection alone. A slot is linked into the
 *    connection's FIFO when it is made and freed only by the connection: when its
 *    answer moves into the output (dq_drain) or when the connection is freed
 *    (conn_free). The completer of a deferred slot writes its answer into the slot
 *    and drops its reference; it never frees or unlinks the slot, and never touches it
 *    again. An answer completed after the close is dropped with its slot.
 *  - An event stream is a connection flag, not an owner: on_close runs once when the
 *    stream ends, and from then on the stream's owner (the API) forgets the handle.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"

#define SK_CONN_RBUF_INIT 4096
#define SK_CONN_RBUF_MAX (SK_HTTP_MAX_HEAD + SK_HTTP_MAX_BODY + 16384)
#define SK_CONN_MAX_DEFERRED 256 /* pipelined answers waiting on one connection */
#define SK_CONN_MAX_OUTPUT (1u << 20) /* stop reading while this much is unsent */
#define SK_STREAM_MAX_OUTPUT (256u * 1024) /* a stream client this far behind is dropped */
#define SK_STREAM_RETRY_AFTER "Retry-After: 5\r\n"
#define SK_SWEEP_MS 250
#define SK_ACCESS_LOG_BUF (64 * 1024)
#define SK_SLOT_CACHE 1024 /* free answer slots kept for reuse, per worker */
#define SK_SLOT_CACHE_BUF 4096 /* a reused slot keeps an answer buffer up to this size */

/* One answer's place in a connection's line (the FIFO of answers not yet in the
 * output). Owned by the connection, which alone unlinks and frees it (see the rule at
 * the top of this file). A deferred slot (done == false) is completed once by
 * sk_http_deferred_respond; a slot made done is an answer produced while earlier ones
 * were still owed, or a stream's head and first bytes waiting for those answers. */
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

/* A connection. Reference-counted: the open socket holds one reference and every
 * deferred answer still owed holds one; the last release frees it at the end of the
 * loop turn. Its answer slots are its own (rule at the top of this file). */
struct sk_http_conn {
    sk_io_t io;
    sk_http_server_t *s;
    sk_http_conn_t *prev, *next; /* all open connections of the server */
    sk_http_conn_t *flush_next; /* the before-sleep flush list */
    bool in_flush;
    bool closed;
    bool no_more; /* read no further requests (close after the answers) */
    bool read_eof; /* the peer shut down its sending side (we read the EOF) */
    bool peer_hup; /* epoll reported RDHUP/HUP: an EOF waits behind the data */
    bool read_paused; /* backpressure: unread data may sit in the socket */
    bool streaming;
    bool stream_counted; /* counted in cfg->streams_open (and per address, if has_addr) */
    bool sent_continue;
    bool in_chunked;
    bool on_free_list;
    bool has_addr;
    bool behind; /* the last flush left output the client did not take (EAGAIN) */
    bool parked; /* the request at rpos is parked (sk_http_park): read and handle nothing */
    int resume_tag; /* sk_http_unpark's tag, for the parked request's next handling */
    uint64_t park_start_ns; /* when the parked request was first handled (its latency's start) */
    bool in_handler; /* conn_process is in the handler: an unpark now is noted, not run */

    char *rbuf;
    size_t rcap, rlen, rpos;
    sk_http_chunked_t chunk;
    size_t chunk_head; /* head length of the request whose chunked body is decoding */
    size_t chunk_end; /* offset from rpos where decoded body ends */

    sk_buf_t out;
    size_t out_pos;

    sk_http_deferred_t *dq_head, *dq_tail;
    uint32_t dq_len; /* slots in the FIFO */
    uint32_t refs; /* 1 while the socket is open + 1 per deferred answer still owed */

    uint64_t req_start_ms; /* first byte of the request being received, 0 when none */
    uint64_t last_active_ms;

    void (*on_close)(sk_http_conn_t *c, void *arg);
    void *on_close_arg;
    sk_http_deferred_t *stream_slot; /* the stream's head, waiting behind earlier answers */
    uint64_t stream_end_ms; /* the stream's lifetime ends here (0: no end) */
    size_t backlog_counted; /* this stream's share of cfg->stream_backlog */
    uint8_t addr[16]; /* the client address as IPv6 (IPv4 mapped), for the per-address cap */
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
    /* Answer slots freed by connections, kept for the next (a purchase takes one and
     * gives it back a batch later): linked through `next`, with their buffers. */
    sk_http_deferred_t *slot_cache;
    uint32_t n_slot_cache;
    size_t allocated; /* connections not yet freed, closed ones still referenced included */
    _Atomic uint32_t nconns; /* written by this worker, read by /metrics anywhere */
    sk_timer_t sweep;
    uint64_t now_ns; /* refreshed after every read() */
    uint64_t rng; /* spreads stream lifetimes */
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
    /* Every answer is counted: a switch, not a search. */
    switch (status) {
    case 100:
        return 1;
    case 200:
        return 2;
    case 201:
        return 3;
    case 204:
        return 4;
    case 304:
        return 5;
    case 400:
        return 6;
    case 401:
        return 7;
    case 403:
        return 8;
    case 404:
        return 9;
    case 405:
        return 10;
    case 408:
        return 11;
    case 409:
        return 12;
    case 410:
        return 13;
    case 411:
        return 14;
    case 413:
        return 15;
    case 417:
        return 16;
    case 425:
        return 17;
    case 429:
        return 18;
    case 431:
        return 19;
    case 500:
        return 20;
    case 501:
        return 21;
    case 503:
        return 22;
    case 505:
        return 23;
    default:
        return 0;
    }
}

int sk_http_slot_status(int slot)
{
    return status_slots[slot];
}

#define SK_HTTP_REASONS(X)                                                                                             \
    X(100, "Continue")                                                                                                 \
    X(200, "OK")                                                                                                       \
    X(201, "Created")                                                                                                  \
    X(204, "No Content")                                                                                               \
    X(304, "Not Modified")                                                                                             \
    X(400, "Bad Request")                                                                                              \
    X(401, "Unauthorized")                                                                                             \
    X(403, "Forbidden")                                                                                                \
    X(404, "Not Found")                                                                                                \
    X(405, "Method Not Allowed")                                                                                       \
    X(408, "Request Timeout")                                                                                          \
    X(409, "Conflict")                                                                                                 \
    X(410, "Gone")                                                                                                     \
    X(411, "Length Required")                                                                                          \
    X(413, "Content Too Large")                                                                                        \
    X(417, "Expectation Failed")                                                                                       \
    X(425, "Too Early")                                                                                                \
    X(429, "Too Many Requests")                                                                                        \
    X(431, "Request Header Fields Too Large")                                                                          \
    X(500, "Internal Server Error")                                                                                    \
    X(501, "Not Implemented")                                                                                          \
    X(503, "Service Unavailable")                                                                                      \
    X(505, "HTTP Version Not Supported")

/* The status line and the Server header of an answer, made at compile time: every
 * answer starts with one. Each is kept in 64 bytes, so that it is copied as one block of
 * known size (a copy of a length known only at run time is a loop of byte moves). */
typedef struct {
    char text[64];
    size_t len;
} status_head_t;

#define SK_STATUS_HEAD(code, text) "HTTP/1.1 " #code " " text "\r\nServer: seckill\r\n"
#define SK_STATUS_INDEX(code, text) STATUS_HEAD_##code,
#define SK_STATUS_ENTRY(code, text) {SK_STATUS_HEAD(code, text), sizeof(SK_STATUS_HEAD(code, text)) - 1},
#define SK_STATUS_CASE(code, text)                                                                                     \
    case code:                                                                                                         \
        return &status_heads[STATUS_HEAD_##code];
enum { SK_HTTP_REASONS(SK_STATUS_INDEX) STATUS_HEAD__COUNT };
static const status_head_t status_heads[STATUS_HEAD__COUNT] = {SK_HTTP_REASONS(SK_STATUS_ENTRY)};

/* The head of a status, or NULL for a status without one ("Unknown"). */
static const status_head_t *status_head(int status)
{
    switch (status) {
        SK_HTTP_REASONS(SK_STATUS_CASE)
    default:
        return NULL;
    }
}
#undef SK_STATUS_CASE
#undef SK_STATUS_ENTRY
#undef SK_STATUS_INDEX
#undef SK_STATUS_HEAD

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
    /* sk_http_latency_bounds in nanoseconds, compared as integers. */
    static const uint64_t bound_ns[SK_HTTP_LAT_BUCKETS - 1] = {
        50000,    100000,   250000,    500000,    1000000,   2500000,    5000000,     10000000,
        25000000, 50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000u,
    };
    uint64_t ns = s->now_ns > start_ns ? s->now_ns - start_ns : 0;
    int b = 0;
    while (b < SK_HTTP_LAT_BUCKETS - 1 && ns > bound_ns[b])
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

/* Writes a complete response into `b`. Without a length (a stream's head, answered to
 * HEAD) no Content-Length is sent. */
enum { CONN_HDR_NONE = 0, CONN_HDR_CLOSE, CONN_HDR_KEEP_ALIVE };

static void build_response(sk_http_server_t *s, sk_buf_t *b, int status, const char *ctype, const char *extra,
                           const void *body, size_t len, bool head_only, int conn_hdr, bool with_length)
{
    const status_head_t *head = status_head(status);
    size_t cl = ctype ? strlen(ctype) : 0, el = extra ? strlen(extra) : 0;
    /* The head and the date are copied as whole blocks of 64 bytes, then the end moves
     * by their lengths: the reserve leaves room for the bytes written past them. */
    sk_buf_reserve(b, 128 + sizeof(head->text) + sizeof(s->date) + cl + el + (head_only ? 0 : len));
    char *p = b->data + b->len;
    if (head) {
        memcpy(p, head->text, sizeof(head->text));
        p += head->len;
    } else {
        memcpy(p, "HTTP/1.1 ", 9);
        p += 9;
        p += sk_fmt_u64(p, (uint64_t)status);
        memcpy(p, " Unknown\r\nServer: seckill\r\n", 27);
        p += 27;
    }
    memcpy(p, s->date, sizeof(s->date));
    p += s->date_len;
    if (ctype) {
        memcpy(p, "Content-Type: ", 14);
        p += 14;
        memcpy(p, ctype, cl);
        p += cl;
        *p++ = '\r';
        *p++ = '\n';
    }
    if (with_length) {
        memcpy(p, "Content-Length: ", 16);
        p += 16;
        p += sk_fmt_u64(p, len);
        *p++ = '\r';
        *p++ = '\n';
    }
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

/* ---- stream limits ---------------------------------------------------------------- */

/* Streams per client address, shared by every worker: an open-addressing table (linear
 * probing, backward-shift deletion) under a mutex. It is touched only when a stream
 * starts or ends, never on the request path. The hash is keyed with a random seed so
 * that a client cannot pick addresses that collide. */
typedef struct {
    uint8_t key[16];
    uint32_t n; /* 0: empty */
} addr_slot_t;

struct sk_http_addr_table {
    pthread_mutex_t mu;
    addr_slot_t *slots;
    size_t cap, used; /* cap is a power of two */
    uint64_t seed;
};

static uint64_t addr_hash(const sk_http_addr_table_t *t, const uint8_t *key)
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = (a ^ t->seed) * 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 32) ^ b) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 29);
}

static addr_slot_t *addr_find(sk_http_addr_table_t *t, const uint8_t *key)
{
    size_t i = addr_hash(t, key) & (t->cap - 1);
    while (t->slots[i].n && memcmp(t->slots[i].key, key, 16) != 0)
        i = (i + 1) & (t->cap - 1);
    return &t->slots[i];
}

static void addr_grow(sk_http_addr_table_t *t)
{
    addr_slot_t *old = t->slots;
    size_t old_cap = t->cap;
    t->cap = old_cap ? old_cap * 2 : 64;
    t->slots = sk_xcalloc(t->cap, sizeof(*t->slots));
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].n)
            *addr_find(t, old[i].key) = old[i];
    free(old);
}

/* Counts one more stream of `key` unless it already has `cap`. */
static bool addr_acquire(sk_http_addr_table_t *t, const uint8_t *key, uint32_t cap)
{
    pthread_mutex_lock(&t->mu);
    if ((t->used + 1) * 2 > t->cap)
        addr_grow(t);
    addr_slot_t *e = addr_find(t, key);
    bool ok = e->n < cap;
    if (ok) {
        if (e->n == 0) {
            memcpy(e->key, key, 16);
            t->used++;
        }
        e->n++;
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static void addr_release(sk_http_addr_table_t *t, const uint8_t *key)
{
    pthread_mutex_lock(&t->mu);
    addr_slot_t *e = addr_find(t, key);
    assert(e->n > 0);
    if (--e->n == 0) {
        /* Backward-shift deletion: move later members of the probe run into the hole,
         * so that lookups never need tombstones. */
        size_t hole = (size_t)(e - t->slots), i = hole;
        for (;;) {
            i = (i + 1) & (t->cap - 1);
            if (!t->slots[i].n)
                break;
            size_t home = addr_hash(t, t->slots[i].key) & (t->cap - 1);
            if (((i - home) & (t->cap - 1)) >= ((i - hole) & (t->cap - 1))) {
                t->slots[hole] = t->slots[i];
                t->slots[i].n = 0;
                hole = i;
            }
        }
        t->used--;
    }
    pthread_mutex_unlock(&t->mu);
}

void sk_http_config_init(sk_http_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->access_log_fd = -1;
    sk_http_addr_table_t *t = sk_xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed))
        t->seed = sk_mono_ns() ^ (uint64_t)(uintptr_t)t;
    addr_grow(t);
    cfg->stream_addrs = t;
}

void sk_http_config_destroy(sk_http_config_t *cfg)
{
    sk_http_addr_table_t *t = cfg->stream_addrs;
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t);
    cfg->stream_addrs = NULL;
}

/* The key of a client address: IPv4 as an IPv4-mapped IPv6 address, IPv6 by its /64
 * (one subscriber usually holds a whole /64). Returns false for other families. */
static bool addr_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(key, a, memcmp(a, mapped, 12) == 0 ? 16 : 8);
        return true;
    }
    return false;
}

/* Admits a stream on `c`: 0, or the status of the refusal (503 when there are too many
 * streams in all or the server drains, 429 when this address has too many). */
static int stream_admit(sk_http_conn_t *c)
{
    sk_http_config_t *cfg = c->s->cfg;
    if (c->s->draining)
        return 503;
    /* At the bound over all streams a new one is refused now, with an answer, rather
     * than admitted and then dropped before its head went out. */
    if (cfg->max_stream_backlog &&
        atomic_load_explicit(&cfg->stream_backlog, memory_order_relaxed) >= cfg->max_stream_backlog)
        return 503;
    uint32_t n = atomic_fetch_add_explicit(&cfg->streams_open, 1, memory_order_relaxed);
    if (cfg->max_streams && n >= cfg->max_streams) {
        atomic_fetch_sub_explicit(&cfg->streams_open, 1, memory_order_relaxed);
        return 503;
    }
    if (cfg->max_streams_per_addr && cfg->stream_addrs && c->has_addr &&
        !addr_acquire(cfg->stream_addrs, c->addr, cfg->max_streams_per_addr)) {
        atomic_fetch_sub_explicit(&cfg->streams_open, 1, memory_order_relaxed);
        return 429;
    }
    c->stream_counted = true;
    return 0;
}

/* Gives back what stream_admit counted. The per-address count is only taken when the
 * cap is on; the same test decides whether to give it back (the config does not change
 * while serving). */
static void stream_release(sk_http_conn_t *c)
{
    if (!c->stream_counted)
        return;
    sk_http_config_t *cfg = c->s->cfg;
    c->stream_counted = false;
    atomic_fetch_sub_explicit(&cfg->streams_open, 1, memory_order_relaxed);
    if (cfg->max_streams_per_addr && cfg->stream_addrs && c->has_addr)
        addr_release(cfg->stream_addrs, c->addr);
}

/* Bytes written to the stream and not yet sent: in the output, still waiting in the
 * stream's slot behind earlier answers, or taken by the loop and not yet by the socket
 * (io_uring: up to a socket buffer's worth per connection, in this process's memory,
 * so it counts like the rest). */
static size_t stream_backlog(sk_http_conn_t *c)
{
    return c->out.len - c->out_pos + (c->stream_slot ? c->stream_slot->out.len : 0) + sk_io_unsent(c->s->loop, &c->io);
}

/* Brings this connection's share of the backlog over all streams up to date. */
static void stream_account(sk_http_conn_t *c)
{
    size_t now = c->streaming && !c->closed ? stream_backlog(c) : 0;
    _Atomic size_t *total = &c->s->cfg->stream_backlog;
    if (now > c->backlog_counted)
        atomic_fetch_add_explicit(total, now - c->backlog_counted, memory_order_relaxed);
    else if (now < c->backlog_counted)
        atomic_fetch_sub_explicit(total, c->backlog_counted - now, memory_order_relaxed);
    c->backlog_counted = now;
}

/* ---- connection lifetime ----------------------------------------------------------- */

/* Frees a slot, or keeps it (and its buffer, if small) for the next answer. */
static void slot_release(sk_http_server_t *s, sk_http_deferred_t *d)
{
    free(d->log_line);
    if (s->n_slot_cache >= SK_SLOT_CACHE || d->out.cap > SK_SLOT_CACHE_BUF) {
        sk_buf_free(&d->out);
        free(d);
        return;
    }
    d->next = s->slot_cache;
    s->slot_cache = d;
    s->n_slot_cache++;
}

/* Frees the connection and every slot still in its line; only called for the last
 * reference, at the end of a loop turn. */
static void conn_free(sk_http_conn_t *c)
{
    assert(c->refs == 0 && c->closed);
    sk_http_deferred_t *d = c->dq_head;
    while (d) {
        sk_http_deferred_t *n = d->next;
        assert(d->done); /* a slot still owed would hold a reference */
        slot_release(c->s, d);
        d = n;
    }
    c->s->allocated--;
    free(c->rbuf);
    sk_buf_free(&c->out);
    free(c);
}

/* Drops one reference; the last one queues the connection to be freed at the end of
 * the loop turn. */
static void conn_release(sk_http_conn_t *c)
{
    assert(c->refs > 0);
    if (--c->refs > 0)
        return;
    sk_http_server_t *s = c->s;
    assert(c->closed && !c->on_free_list);
    c->on_free_list = true;
    if (s->free_len == s->free_cap) {
        s->free_cap = s->free_cap ? s->free_cap * 2 : 64;
        s->free_list = sk_xrealloc(s->free_list, s->free_cap * sizeof(*s->free_list));
    }
    s->free_list[s->free_len++] = c;
}

/* Closes the socket and drops the socket's reference. The memory stays until the last
 * deferred answer is in, and at least until the end of the turn. */
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
    stream_release(c);
    stream_account(c);
    if (c->streaming && c->on_close) {
        void (*cb)(sk_http_conn_t *, void *) = c->on_close;
        c->on_close = NULL;
        cb(c, c->on_close_arg);
    }
    conn_release(c);
}

/* ---- responses ------------------------------------------------------------------- */

/* Adds a slot at the end of the connection's line. */
static sk_http_deferred_t *dq_push(sk_http_conn_t *c, bool done)
{
    sk_http_server_t *s = c->s;
    sk_http_deferred_t *d = s->slot_cache;
    if (d) {
        s->slot_cache = d->next;
        s->n_slot_cache--;
        sk_buf_t out = d->out;
        memset(d, 0, sizeof(*d));
        d->out = out;
        d->out.len = 0;
    } else {
        d = sk_xcalloc(1, sizeof(*d));
    }
    d->conn = c;
    d->done = done;
    if (c->dq_tail)
        c->dq_tail->next = d;
    else
        c->dq_head = d;
    c->dq_tail = d;
    c->dq_len++;
    return d;
}

/* Moves completed answers at the head of the line into the output, and frees their
 * slots (the connection is their only owner). */
static void dq_drain(sk_http_conn_t *c)
{
    while (c->dq_head && c->dq_head->done) {
        sk_http_deferred_t *d = c->dq_head;
        c->dq_head = d->next;
        if (!c->dq_head)
            c->dq_tail = NULL;
        c->dq_len--;
        if (d == c->stream_slot)
            c->stream_slot = NULL; /* the stream now writes straight to the output */
        sk_buf_append(&c->out, d->out.data, d->out.len);
        slot_release(c->s, d);
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

static void respond(sk_http_exchange_t *x, int status, const char *content_type, const char *extra_headers,
                    const void *body, size_t len, bool with_length)
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
        sk_http_deferred_t *d = dq_push(c, true);
        build_response(s, &d->out, status, content_type, extra_headers, body, len, head_only, hdr, with_length);
    } else {
        build_response(s, &c->out, status, content_type, extra_headers, body, len, head_only, hdr, with_length);
        schedule_flush(c);
    }
    record(s, x->route, status, x->start_ns);
    if (s->cfg->access_log_fd >= 0)
        access_log(s, c, x->line, x->line_len, status, len);
}

void sk_http_respond_ex(sk_http_exchange_t *x, int status, const char *content_type, const char *extra_headers,
                        const void *body, size_t len)
{
    respond(x, status, content_type, extra_headers, body, len, true);
}

static void respond_error_ex(sk_http_exchange_t *x, int status, const char *extra, const char *code,
                             const char *message)
{
    sk_buf_t b = {0};
    error_body(&b, code, message);
    sk_http_respond_ex(x, status, "application/json", extra, b.data, b.len);
    sk_buf_free(&b);
}

void sk_http_respond_error(sk_http_exchange_t *x, int status, const char *code, const char *message)
{
    respond_error_ex(x, status, NULL, code, message);
}

sk_http_deferred_t *sk_http_defer(sk_http_exchange_t *x)
{
    sk_http_conn_t *c = x->conn;
    sk_http_deferred_t *d = dq_push(c, false);
    d->head_only = x->req->method == SK_HTTP_HEAD;
    d->close = !x->req->keep_alive;
    d->route = x->route;
    d->start_ns = x->start_ns;
    d->http10 = x->req->minor_version == 0;
    if (x->server->cfg->access_log_fd >= 0)
        d->log_line = sk_xstrndup(x->line, x->line_len);
    if (d->close)
        c->no_more = true;
    c->refs++; /* the completer's reference, dropped by sk_http_deferred_respond */
    x->answered = true;
    return d;
}

static void conn_after_output(sk_http_conn_t *c);
static void stream_finish(sk_http_conn_t *c);
static void conn_process(sk_http_conn_t *c);
static void conn_read(sk_http_conn_t *c);

sk_http_parked_t *sk_http_park(sk_http_exchange_t *x)
{
    sk_http_conn_t *c = x->conn;
    if (x->req->chunked)
        return NULL; /* its body was decoded in place: it cannot be parsed again */
    c->parked = true;
    c->park_start_ns = x->start_ns;
    c->read_paused = true; /* what comes after it waits in the socket */
    c->refs++; /* the unparker's reference, dropped by sk_http_unpark */
    x->parked = true;
    x->answered = true;
    return (sk_http_parked_t *)c;
}

void sk_http_unpark(sk_http_parked_t *p, int tag)
{
    sk_http_conn_t *c = (sk_http_conn_t *)p;
    assert(c->parked && tag != 0);
    c->parked = false;
    c->resume_tag = tag; /* for the parked request, whenever it is handled next */
    if (!c->closed) {
        c->read_paused = false;
        if (c->in_handler) {
            /* Unparked by the handler that parked it (its op was answered at once):
             * conn_process, on the stack, hands the request over again when the
             * handler returns. */
            conn_release(c); /* not the last: the socket's is held */
            return;
        }
        c->s->now_ns = sk_mono_ns();
        conn_process(c); /* the parked request first, then what was read after it */
        /* What arrived meanwhile is in the socket, and an edge-triggered loop does not
         * report it again: read on, as a paused reader does when it resumes. */
        if (!c->read_paused && !c->closed)
            conn_read(c);
        conn_after_output(c);
    }
    conn_release(c);
}

void sk_http_deferred_respond(sk_http_deferred_t *d, int status, const char *content_type, const char *extra_headers,
                              const void *body, size_t len)
{
    sk_http_conn_t *c = d->conn;
    sk_http_server_t *s = c->s;
    assert(!d->done); /* completed exactly once */
    s->now_ns = sk_mono_ns();
    record(s, d->route, status, d->start_ns);
    d->done = true;
    if (!c->closed) {
        /* A drain closes after the last answer in line: one owed ahead of others (a
         * request behind it answered already, or parked) does not, or a client that
         * stops reading at a close would lose the answers behind it. */
        bool drained = s->draining && !c->parked; /* a parked request is still answered */
        bool close = d->close || (drained && d == c->dq_tail) || status_closes(status);
        if (close || drained)
            c->no_more = true; /* in a drain nothing more is read either way */
        if (d->log_line)
            access_log(s, c, d->log_line, strlen(d->log_line), status, len);
        /* First in line (the usual case): the answer goes straight into the output. */
        build_response(s, d == c->dq_head ? &c->out : &d->out, status, content_type, extra_headers, body, len,
                       d->head_only, conn_hdr_for(close, d->http10), true);
        dq_drain(c); /* may free d */
        conn_after_output(c);
    }
    /* Otherwise the client went away: the decision stands (it is durable) and the
     * client can ask for its orders; the slot, done, is freed with the connection. The
     * connection is not touched after this release. */
    conn_release(c);
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
    while (!c->no_more && !c->closed && !c->parked && c->rpos < c->rlen) {
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
                                .start_ns = c->resume_tag ? c->park_start_ns : s->now_ns,
                                .line = req.method_str,
                                .line_len = (size_t)(req.target + req.target_len - req.method_str) + 9};
        x.resumed = c->resume_tag;
        c->resume_tag = 0;
        c->in_handler = true;
        s->handler(&x, s->handler_arg);
        c->in_handler = false;
        if (!x.answered)
            sk_http_respond_error(&x, 500, "internal", "the request was not answered");
        body[body_len] = saved;
        if (x.parked) {
            if (c->parked)
                return; /* left where it is, whole, for sk_http_unpark */
            continue; /* unparked already, by the handler itself: handled again now */
        }
        if (!req.keep_alive)
            c->no_more = true;
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
        ssize_t n = sk_io_read(s->loop, &c->io, c->rbuf + c->rlen, space);
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
        if (c->dq_head) {
            /* Answers are still owed before the stream's head (a purchase pipelined
             * before it): the stream ends, but what was asked before it is answered,
             * as for any half-closed client, and then the connection closes. */
            stream_finish(c);
            return;
        }
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
    /* Bytes the loop took and has not sent yet (io_uring) hold the close back until
     * they left (SK_IO_WRITE brings us back here). */
    if (c->no_more && !c->streaming && !c->dq_head && idle_out && sk_io_unsent(c->s->loop, &c->io) == 0) {
        /* The answer said Connection: close. Shut down our side first so that the
         * final answer is not lost to an RST when unread request bytes remain. */
        shutdown(c->io.fd, SHUT_WR);
        conn_close(c);
        return;
    }
    if (c->read_paused && !c->parked && c->dq_len < SK_CONN_MAX_DEFERRED / 2 &&
        c->out.len - c->out_pos < SK_CONN_MAX_OUTPUT / 2 && !c->no_more) {
        c->read_paused = false;
        conn_process(c);
        if (!c->read_paused)
            conn_read(c);
    }
}

static void conn_flush(sk_http_conn_t *c)
{
    while (c->out_pos < c->out.len) {
        ssize_t n = sk_io_write(c->s->loop, &c->io, c->out.data + c->out_pos, c->out.len - c->out_pos);
        if (n > 0) {
            c->out_pos += (size_t)n;
            c->last_active_ms = sk_loop_now(c->s->loop);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->behind = true;
            if (c->streaming)
                stream_account(c);
            return; /* SK_IO_WRITE will call us again */
        }
        conn_close(c);
        return;
    }
    c->behind = false;
    c->out.len = c->out_pos = 0;
    if (c->streaming)
        stream_account(c);
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
    if (events & SK_IO_WRITE) {
        /* Room again, or (io_uring) the loop sent the last bytes it had taken, which
         * may be what a closing connection waits for. */
        if (c->out_pos < c->out.len)
            conn_flush(c);
        else
            conn_after_output(c);
        if (c->streaming && !c->closed)
            stream_account(c); /* what the loop held for the stream has left */
    }
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

/* Serves a connected socket; `ss` is the peer's address (NULL or another family: no
 * per-address accounting). Returns 0 or -errno (the fd is closed then). */
static int conn_new(sk_http_server_t *s, int fd, const struct sockaddr_storage *ss)
{
    sk_loop_t *loop = s->loop;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails harmlessly on non-TCP sockets */
    sk_http_conn_t *c = sk_xcalloc(1, sizeof(*c));
    c->s = s;
    c->refs = 1; /* the socket's reference, dropped by conn_close */
    c->last_active_ms = sk_loop_now(loop);
    if (ss) {
        c->has_addr = addr_key(ss, c->addr);
        sk_ip_from_sockaddr((const struct sockaddr *)ss, &c->peer_ip);
        if (s->cfg->access_log_fd >= 0)
            sk_ip_format(&c->peer_ip, c->peer);
    }
    if (!c->peer[0])
        strcpy(c->peer, "-");
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->allocated++;
    atomic_store_explicit(&s->nconns, atomic_load_explicit(&s->nconns, memory_order_relaxed) + 1, memory_order_relaxed);
    sk_counter_add(&s->stats.conns_accepted, 1);
    int rc = sk_io_start(loop, &c->io, fd, SK_IO_READ | SK_IO_WRITE | SK_IO_STREAM, conn_on_io);
    if (rc < 0) {
        c->io.fd = fd;
        conn_close(c);
        return rc;
    }
    return 0;
}

static void on_accept(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    (void)events;
    sk_http_server_t *s = SK_CONTAINER_OF(io, sk_http_server_t, listen_io);
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = sk_io_accept(loop, io, &ss, &sl);
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
        conn_new(s, fd, &ss);
    }
}

int sk_http_server_adopt(sk_http_server_t *s, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    bool named = getpeername(fd, (struct sockaddr *)&ss, &sl) == 0;
    atomic_fetch_add_explicit(&s->cfg->conns_open, 1, memory_order_relaxed);
    return conn_new(s, fd, named ? &ss : NULL);
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

static uint64_t server_rand(sk_http_server_t *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

/* Ends a stream but not yet its connection: the stream's owner is told (on_close) and
 * forgets the handle, the stream's place under the limits is free again at once, and
 * the connection closes once what was written has gone out (or, if the client does
 * not read it, when the sweep finds it stalled). */
static void stream_finish(sk_http_conn_t *c)
{
    if (!c->streaming || c->closed)
        return;
    void (*cb)(sk_http_conn_t *, void *) = c->on_close;
    c->on_close = NULL;
    if (cb)
        cb(c, c->on_close_arg);
    c->streaming = false;
    c->no_more = true;
    stream_release(c);
    stream_account(c);
    conn_after_output(c);
}

static void sweep(sk_loop_t *loop, sk_timer_t *t)
{
    sk_http_server_t *s = SK_CONTAINER_OF(t, sk_http_server_t, sweep);
    uint64_t now = sk_loop_now(loop);
    sk_http_conn_t *next;
    for (sk_http_conn_t *c = s->conns; c; c = next) {
        next = c->next;
        bool out_pending = c->out_pos < c->out.len || sk_io_unsent(loop, &c->io) > 0;
        if (c->streaming) {
            /* Streams are exempt from the idle timeout, not from a lifetime, and not
             * from the rule for clients that stopped reading. */
            if (c->stream_end_ms && now >= c->stream_end_ms) {
                sk_counter_add(&s->stats.streams_expired, 1);
                stream_finish(c);
            } else if (out_pending && now - c->last_active_ms > s->cfg->idle_timeout_ms) {
                sk_counter_add(&s->stats.timeouts, 1);
                conn_close(c);
            }
            continue;
        }
        if (out_pending) {
            if (now - c->last_active_ms > s->cfg->idle_timeout_ms) {
                sk_counter_add(&s->stats.timeouts, 1);
                conn_close(c); /* the client stopped reading */
            }
            continue;
        }
        if (c->dq_head || c->parked)
            continue; /* waiting on the ledger or the store, not on the client */
        if (s->draining && c->rpos == c->rlen && !c->in_chunked) {
            /* Idle now: its last answer left after the drain began (a slow reader, or,
             * on io_uring, a send still in flight then). Closed as the drain closed the
             * idle ones, rather than kept open until the grace deadline. */
            conn_close(c);
            continue;
        }
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
            /* Answers the ledger still owes to these connections arrive later; the
             * connections stay allocated (closed) until then. */
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
    s->rng = (sk_mono_ns() ^ (uint64_t)(uintptr_t)s) | 1;
    refresh_date(s);
    if (listen_fd >= 0 && sk_io_start(loop, &s->listen_io, listen_fd, SK_IO_READ | SK_IO_ACCEPT, on_accept) < 0) {
        free(s);
        return NULL;
    }
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_OUTPUT, before_sleep, s);
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
     * Connection: close (respond sees s->draining), and closes after it. One whose
     * answer is still going out closes once it left (the sweep, every 20 ms while
     * draining). A stream ends now; its connection closes once the answers before it
     * and what it wrote went out. */
    sk_http_conn_t *next;
    for (sk_http_conn_t *c = s->conns; c; c = next) {
        next = c->next;
        if (c->streaming)
            stream_finish(c);
        else if (!c->dq_head && c->out_pos == c->out.len && sk_io_unsent(s->loop, &c->io) == 0 && c->rpos == c->rlen &&
                 !c->in_chunked)
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
    sk_loop_remove_before_sleep(s->loop, before_sleep, s);
    sk_timer_stop(s->loop, &s->sweep);
    if (s->listen_io.active) {
        sk_io_stop(s->loop, &s->listen_io);
        close(s->listen_io.fd);
    }
    if (s->allocated) {
        /* Answers still owed: their completers hold references to these connections,
         * and the connections point at the server. Freeing either would hand the
         * completers freed memory; leaking both is the lesser harm, and a bug to fix. */
        sk_error("http: %zu closed connections still wait for deferred answers at shutdown; not freed", s->allocated);
        return;
    }
    free(s->free_list);
    while (s->slot_cache) {
        sk_http_deferred_t *d = s->slot_cache;
        s->slot_cache = d->next;
        sk_buf_free(&d->out);
        free(d);
    }
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
    sk_buf_t h = {0};
    sk_buf_puts(&h, "Cache-Control: no-cache\r\n");
    if (extra_headers)
        sk_buf_puts(&h, extra_headers);
    sk_buf_putc(&h, '\0');
    if (x->req->method == SK_HTTP_HEAD) {
        /* The head a GET would get, and no stream: a HEAD has no body to stream. */
        respond(x, 200, content_type, h.data, NULL, 0, false);
        sk_buf_free(&h);
        return NULL;
    }
    int refused = stream_admit(c);
    if (refused) {
        sk_buf_free(&h);
        sk_counter_add(&s->stats.streams_refused, 1);
        /* Close: a refused client is not left holding a connection it opened for a
         * stream (the page falls back to polling, on a connection of its own). */
        c->no_more = true;
        if (refused == 429)
            respond_error_ex(x, 429, SK_STREAM_RETRY_AFTER, "too_many_streams",
                             "too many event streams from this address; poll the sale instead");
        else if (s->draining)
            respond_error_ex(x, 503, SK_STREAM_RETRY_AFTER, "shutting_down", "the server is shutting down");
        else
            respond_error_ex(x, 503, SK_STREAM_RETRY_AFTER, "too_many_streams",
                             "the server holds all the event streams it allows; poll the sale instead");
        return NULL;
    }
    x->answered = true;
    /* Earlier answers still owed: the head waits in line behind them, in a slot of its
     * own, and so does everything written to the stream until the slot reaches the
     * front (dq_drain). No request is read after this one, so the slot stays last. */
    sk_buf_t *b = &c->out;
    if (c->dq_head) {
        c->stream_slot = dq_push(c, true);
        b = &c->stream_slot->out;
    }
    sk_buf_puts(b, "HTTP/1.1 200 OK\r\nServer: seckill\r\n");
    sk_buf_append(b, s->date, s->date_len);
    sk_buf_puts(b, "Content-Type: ");
    sk_buf_puts(b, content_type);
    sk_buf_puts(b, "\r\nConnection: close\r\n");
    sk_buf_puts(b, h.data);
    sk_buf_puts(b, "\r\n");
    sk_buf_free(&h);
    c->streaming = true;
    c->no_more = true;
    c->on_close = on_close;
    c->on_close_arg = arg;
    uint32_t life = s->cfg->stream_lifetime_ms;
    if (life) {
        /* Up to a quarter earlier, at random: streams opened together (a crowd loading
         * the page at the same second) do not all end, and reconnect, together. */
        uint64_t now = sk_loop_now(s->loop);
        c->stream_end_ms = now + life - server_rand(s) % (life / 4 + 1);
    }
    record(s, x->route, 200, x->start_ns);
    if (s->cfg->access_log_fd >= 0)
        access_log(s, c, x->line, x->line_len, 200, 0);
    stream_account(c);
    schedule_flush(c);
    return c;
}

int sk_http_stream_write(sk_http_conn_t *c, const void *data, size_t len)
{
    if (c->closed || !c->streaming)
        return -ENOBUFS;
    sk_http_server_t *s = c->s;
    size_t backlog = stream_backlog(c), cap = s->cfg->max_stream_backlog;
    /* Behind: its socket did not take what was offered (EAGAIN), or (io_uring) bytes
     * the loop took in an earlier turn have still not gone into the socket; the sends
     * of a client that keeps up complete within the turn that made them. */
    bool behind = c->behind || sk_io_unsent(s->loop, &c->io) > 0;
    /* A client this far behind is dropped; so is one that is behind at all while the
     * streams' backlog over all workers is at its bound. Bytes not offered yet (a new
     * stream's head, a head waiting for earlier answers) are not the client's fault: a
     * client that keeps up is never dropped for the others' sake, new streams are
     * refused at the bound (stream_admit), and the total stays within the bound plus
     * one write per stream. */
    if (backlog + len > SK_STREAM_MAX_OUTPUT ||
        (cap && behind && backlog > 0 &&
         atomic_load_explicit(&s->cfg->stream_backlog, memory_order_relaxed) + len > cap)) {
        sk_counter_add(&s->stats.streams_dropped, 1);
        conn_close(c);
        return -ENOBUFS;
    }
    if (backlog == 0)
        c->last_active_ms = sk_loop_now(s->loop); /* from now on we wait for the client */
    sk_buf_append(c->stream_slot ? &c->stream_slot->out : &c->out, data, len);
    stream_account(c);
    schedule_flush(c);
    return 0;
}
