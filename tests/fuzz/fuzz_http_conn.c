/* libFuzzer target over the connection layer (src/http/server.c), not only the parser.
 *
 * Each input is a small program run against a real server on a real loop, in-process:
 * clients are socketpairs handed to the server with sk_http_server_adopt (its test
 * seam), and the handler answers /sync at once, defers /defer (a purchase) until a
 * "ledger tick" of the program answers it, in any order and with any status, parks
 * /park (a lookup in a shared store) until a "store tick" unparks it, in any order, and
 * then answers it, unparks /park-now from inside the handler (a lookup answered at
 * once), and turns /stream into an event stream that "stream ticks" write to. The
 * program's operations,
 * one byte each plus arguments:
 *   raw bytes or a canned request (purchases, chunked, Expect: 100-continue, HEAD,
 *   HTTP/1.0, Connection: close, streams) queued for a client; sending what is queued
 *   cut at any point; one loop turn; a ledger tick; a stream tick; the client reading;
 *   a store tick; the client closing (with answers unread, which a Unix socket reports as a reset,
 *   or after reading them all) or half-closing; opening another client (some with a
 *   tiny socket buffer, so that output backs up); and the server's drain with its
 *   grace deadline at once.
 *
 * Checks, beyond what ASan, UBSan and LeakSanitizer see (use after free, leaks):
 *  - every answer echoes its request's X-Seq, and a client receives them in strictly
 *    increasing order: pipelined answers, deferred ones and a stream's head included
 *    (the value carries a random nonce, new for every input and always 8 hex digits
 *    long, so that raw bytes imitating the header cannot fake an order violation and
 *    an input behaves the same when run again alone);
 *  - a stream's body holds only what the stream ticks wrote (no answer inside it);
 *  - every byte the server sends parses as HTTP/1.1 answers;
 *  - at the end every stream's on_close ran, the shared counters (connections,
 *    streams, backlog) are back to zero, and the loop has no handle left.
 *
 * The loop runs on epoll, or on io_uring with SECKILL_IO=uring (CTest runs both; where
 * the kernel refuses io_uring that run says so and uses epoll). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/server.h"
#include "loop/loop.h"
#include "util/buf.h"

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            fprintf(stderr, "check failed at %s:%d: %s\n", __FILE__, __LINE__, #c);                                    \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

#define MAX_CLIENTS 3
#define MAX_OPENS 12
#define MAX_OWED 128
#define MAX_STREAMS 16
#define MAX_PARKED 16

typedef struct {
    sk_http_deferred_t *d;
    char extra[96]; /* the X-Seq (and X-Head) lines to echo */
} owed_t;

typedef struct {
    int fd; /* -1: none */
    sk_buf_t pending; /* queued, not yet sent */
    size_t pend_pos;
    sk_buf_t in; /* received, not yet parsed */
    long last_seq;
    int next_seq;
    bool in_stream; /* the rest is a stream's body */
} client_t;

static struct {
    sk_loop_t *loop;
    sk_http_config_t cfg;
    sk_http_server_t *srv;
    owed_t owed[MAX_OWED];
    int n_owed;
    sk_http_conn_t *streams[MAX_STREAMS];
    int n_streams;
    sk_http_parked_t *parked[MAX_PARKED];
    int n_parked;
    client_t cl[MAX_CLIENTS];
    int opens;
    unsigned tick;
    unsigned nonce;
} F;

static sk_loop_io_t fuzz_io = SK_LOOP_IO_EPOLL;

/* ---- the server side -------------------------------------------------------------- */

static void on_stream_close(sk_http_conn_t *c, void *arg)
{
    (void)arg;
    for (int i = 0; i < F.n_streams; i++) {
        if (F.streams[i] == c) {
            F.streams[i] = F.streams[--F.n_streams];
            return;
        }
    }
    CHECK(!"on_close for a stream nobody started");
}

static bool path_is(const sk_http_exchange_t *x, const char *p)
{
    return x->req->path_len == strlen(p) && memcmp(x->req->path, p, x->req->path_len) == 0;
}

static void handler(sk_http_exchange_t *x, void *arg)
{
    (void)arg;
    char extra[96];
    const sk_http_header_t *h = sk_http_find_header(x->req, "x-seq");
    int n = 0;
    if (h && h->value_len > 0 && h->value_len < 40)
        n = snprintf(extra, sizeof(extra), "X-Seq: %.*s\r\n", (int)h->value_len, h->value);
    else
        n = snprintf(extra, sizeof(extra), "X-Seq: -\r\n");
    if (x->req->method == SK_HTTP_HEAD)
        snprintf(extra + n, sizeof(extra) - (size_t)n, "X-Head: 1\r\n");
    if (path_is(x, "/defer") && F.n_owed < MAX_OWED) {
        owed_t *o = &F.owed[F.n_owed++];
        memcpy(o->extra, extra, sizeof(extra));
        o->d = sk_http_defer(x);
        return;
    }
    if ((path_is(x, "/park") || path_is(x, "/park-now")) && !x->resumed && F.n_parked < MAX_PARKED) {
        sk_http_parked_t *p = sk_http_park(x); /* NULL for a chunked body: answered below */
        if (p && path_is(x, "/park-now")) {
            sk_http_unpark(p, 1);
            return;
        }
        if (p) {
            F.parked[F.n_parked++] = p;
            return;
        }
    }
    if (path_is(x, "/sync") || path_is(x, "/park") || path_is(x, "/park-now")) {
        sk_http_respond_ex(x, 200, "text/plain", extra, "s", 1);
        return;
    }
    if (path_is(x, "/stream") && F.n_streams < MAX_STREAMS) {
        sk_http_conn_t *c = sk_http_stream_start(x, "text/event-stream", extra, on_stream_close, NULL);
        if (c) {
            F.streams[F.n_streams++] = c;
            sk_http_stream_write(c, "data: 0\n\n", 9);
        }
        return;
    }
    sk_http_respond_ex(x, 404, "text/plain", extra, "no", 2);
}

static void stop_cb(sk_loop_t *loop, sk_timer_t *t)
{
    (void)t;
    sk_loop_stop(loop);
}

static void turn(void)
{
    sk_timer_t t = {0};
    sk_timer_start(F.loop, &t, 0, stop_cb);
    sk_loop_run(F.loop);
    sk_timer_stop(F.loop, &t);
}

static void ledger_answer(int i, int status)
{
    owed_t o = F.owed[i];
    F.owed[i] = F.owed[--F.n_owed];
    sk_http_deferred_respond(o.d, status, "application/json", o.extra, "{\"r\":1}", 7);
}

static void store_answer(int i)
{
    sk_http_parked_t *p = F.parked[i];
    F.parked[i] = F.parked[--F.n_parked];
    sk_http_unpark(p, 2);
}

static void stream_tick(void)
{
    char ev[32];
    int n = snprintf(ev, sizeof(ev), "data: %u\n\n", ++F.tick);
    /* A write may end a stream (on_close removes it): walk from the end. */
    for (int i = F.n_streams; i-- > 0;)
        if (i < F.n_streams)
            sk_http_stream_write(F.streams[i], ev, (size_t)n);
}

/* ---- the client side -------------------------------------------------------------- */

/* '@' stands for the request's X-Seq value. */
static const char *const canned[] = {
    "POST /defer HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\nContent-Length: 5\r\n\r\nhello",
    "GET /sync HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\n\r\n",
    "GET /stream HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\n\r\n",
    "HEAD /stream HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\n\r\n",
    "HEAD /defer HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\n\r\n",
    "POST /defer HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "POST /defer HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    "GET /sync HTTP/1.0\r\nX-Seq: @\r\n\r\n",
    "GET /sync HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\nConnection: close\r\n\r\n",
    "GET /nope HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\n\r\n",
    "POST /park HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\nContent-Length: 5\r\n\r\nhello",
    "GET /park HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\nConnection: close\r\n\r\n",
    "GET /park-now HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\n\r\n",
    "POST /park HTTP/1.1\r\nHost: f\r\nX-Seq: @\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
};
#define N_CANNED (sizeof(canned) / sizeof(canned[0]))

static void client_open(client_t *c, bool tiny_buffer)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    if (tiny_buffer) {
        int sz = 2048;
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    CHECK(sk_http_server_adopt(F.srv, sv[1]) == 0);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    c->fd = sv[0];
    c->pending.len = c->pend_pos = 0;
    c->in.len = 0;
    c->last_seq = -1;
    c->in_stream = false;
    F.opens++;
}

static const char *find(const char *p, size_t n, const char *s)
{
    size_t sl = strlen(s);
    for (size_t i = 0; i + sl <= n; i++)
        if (memcmp(p + i, s, sl) == 0)
            return p + i;
    return NULL;
}

/* The value of header `name` ("\r\nName: ") in the head, or NULL. */
static const char *header(const char *head, size_t n, const char *name, size_t *len)
{
    const char *h = find(head, n, name);
    if (!h)
        return NULL;
    h += strlen(name);
    const char *e = find(h, (size_t)(head + n - h), "\r\n");
    *len = e ? (size_t)(e - h) : (size_t)(head + n - h);
    return h;
}

/* Parses what the client received: whole answers (in X-Seq order), then a stream's
 * body, which must hold only "data: N\n\n" events. */
static void client_parse(client_t *c)
{
    size_t pos = 0;
    char *b = c->in.data;
    for (;;) {
        size_t avail = c->in.len - pos;
        if (c->in_stream) {
            while (avail >= 6) {
                CHECK(memcmp(b + pos, "data: ", 6) == 0);
                const char *e = find(b + pos, avail, "\n\n");
                if (!e)
                    break;
                for (const char *d = b + pos + 6; d < e; d++)
                    CHECK(*d >= '0' && *d <= '9');
                pos = (size_t)(e + 2 - b);
                avail = c->in.len - pos;
            }
            if (avail < 6)
                CHECK(memcmp(b + pos, "data: ", avail) == 0);
            break;
        }
        const char *end = find(b + pos, avail, "\r\n\r\n");
        if (!end) {
            CHECK(avail < 8 || memcmp(b + pos, "HTTP/1.1", 8) == 0);
            break;
        }
        const char *head = b + pos;
        size_t head_len = (size_t)(end + 2 - head); /* through the last header's CRLF */
        CHECK(memcmp(head, "HTTP/1.1 ", 9) == 0);
        long status = strtol(head + 9, NULL, 10);
        CHECK(status >= 100 && status <= 599);
        size_t body_at = (size_t)(end + 4 - b);
        if (status == 100) {
            pos = body_at;
            continue;
        }
        size_t vl;
        bool head_only = header(head, head_len, "\r\nX-Head: ", &vl) != NULL;
        const char *cl = header(head, head_len, "\r\nContent-Length: ", &vl);
        size_t len = 0;
        if (cl && !head_only)
            len = (size_t)strtoul(cl, NULL, 10);
        if (c->in.len - body_at < len)
            break; /* parsed again, whole, after the next read */
        const char *seq = header(head, head_len, "\r\nX-Seq: ", &vl);
        char *dot;
        if (seq && vl > 0 && strtoul(seq, &dot, 16) == F.nonce && *dot == '.') {
            long v = strtol(dot + 1, NULL, 10);
            CHECK(v > c->last_seq); /* answers leave in request order */
            c->last_seq = v;
        }
        pos = body_at + len;
        if (!cl) {
            /* Only a stream's head has no length: its body follows, or (HEAD) nothing. */
            CHECK(header(head, head_len, "\r\nContent-Type: text/event-stream", &vl) != NULL);
            if (!head_only)
                c->in_stream = true;
        }
    }
    memmove(c->in.data, c->in.data + pos, c->in.len - pos);
    c->in.len -= pos;
}

static void client_read(client_t *c)
{
    if (c->fd < 0)
        return;
    char buf[16384];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        sk_buf_append(&c->in, buf, (size_t)n);
        client_parse(c);
    }
}

static void client_send(client_t *c, size_t n)
{
    if (c->fd < 0)
        return;
    size_t left = c->pending.len - c->pend_pos;
    n = n < left ? n : left;
    if (n == 0)
        return;
    ssize_t w = send(c->fd, c->pending.data + c->pend_pos, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0)
        c->pend_pos += (size_t)w;
}

static void client_close(client_t *c, int how)
{
    if (c->fd < 0)
        return;
    if (how == 2) {
        shutdown(c->fd, SHUT_WR);
        return;
    }
    if (how == 1)
        client_read(c);
    close(c->fd); /* with answers unread, the server sees a reset */
    c->fd = -1;
}

/* ---- the program ------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN); /* as seckill serve does */
    sk_log_level = SK_LOG_ERROR;
    const char *io = getenv("SECKILL_IO");
    if (io && sk_loop_io_parse(io, &fuzz_io) < 0) {
        fprintf(stderr, "SECKILL_IO must be epoll, uring or auto (got '%s')\n", io);
        exit(2);
    }
    if (fuzz_io != SK_LOOP_IO_EPOLL) {
        sk_loop_t *probe = sk_loop_new_io(SK_LOOP_IO_URING);
        if (!probe) {
            fprintf(stderr, "io_uring is not available here (%s): fuzzing on epoll\n", strerror(errno));
            fuzz_io = SK_LOOP_IO_EPOLL;
        } else {
            sk_loop_free(probe);
            fuzz_io = SK_LOOP_IO_URING;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&F, 0, sizeof(F));
    CHECK(getrandom(&F.nonce, sizeof(F.nonce), 0) == (ssize_t)sizeof(F.nonce));
    F.loop = sk_loop_new_io(fuzz_io);
    CHECK(F.loop != NULL);
    sk_http_config_init(&F.cfg);
    F.cfg.header_timeout_ms = 3600000; /* no timer decides anything within one input */
    F.cfg.idle_timeout_ms = 3600000;
    F.cfg.max_conns = 1000;
    F.cfg.max_streams = 2;
    F.cfg.max_stream_backlog = 16384;
    F.srv = sk_http_server_new(F.loop, -1, &F.cfg, handler, NULL);
    CHECK(F.srv != NULL);
    for (int i = 0; i < MAX_CLIENTS; i++)
        F.cl[i].fd = -1;
    client_open(&F.cl[0], false);
    int cur = 0;
    size_t i = 0;
#define ARG() (i < size ? data[i++] : 0)
    while (i < size) {
        uint8_t op = data[i++] % 11;
        client_t *c = &F.cl[cur];
        switch (op) {
        case 0: { /* raw bytes */
            size_t n = ARG() % 64;
            n = n < size - i ? n : size - i;
            if (n)
                sk_buf_append(&c->pending, data + i, n);
            i += n;
            break;
        }
        case 1: { /* a canned request */
            const char *t = canned[ARG() % N_CANNED], *at = strchr(t, '@');
            char seq[32];
            int n = snprintf(seq, sizeof(seq), "%08x.%d", F.nonce, c->next_seq++);
            sk_buf_append(&c->pending, t, (size_t)(at - t));
            sk_buf_append(&c->pending, seq, (size_t)n);
            sk_buf_puts(&c->pending, at + 1);
            break;
        }
        case 2: { /* send what is queued, cut anywhere */
            uint8_t n = ARG();
            client_send(c, n < 128 ? (size_t)n + 1 : SIZE_MAX);
            break;
        }
        case 3:
            turn();
            break;
        case 4: { /* the ledger answers one purchase, any of them */
            static const int statuses[] = {201, 200, 409, 503, 400};
            uint8_t k = ARG(), st = ARG();
            if (F.n_owed)
                ledger_answer(k % F.n_owed, statuses[st % 5]);
            break;
        }
        case 5:
            stream_tick();
            break;
        case 6:
            client_read(c);
            break;
        case 7:
            client_close(c, ARG() % 3);
            break;
        case 8: { /* another client */
            uint8_t a = ARG();
            cur = a % MAX_CLIENTS;
            if (F.cl[cur].fd < 0 && F.opens < MAX_OPENS)
                client_open(&F.cl[cur], a & 0x80);
            break;
        }
        case 9: { /* the store answers one lookup, any of them */
            uint8_t k = ARG();
            if (F.n_parked)
                store_answer(k % F.n_parked);
            break;
        }
        default:
            if (ARG() % 4 == 0)
                sk_http_server_drain(F.srv, 0, NULL, NULL);
            break;
        }
    }
#undef ARG
    /* The end: the ledger answers what it still owes, the clients read and go. */
    for (int k = 0; k < 3; k++)
        turn();
    /* An unparked request lets the requests behind it in, which may park or defer. */
    while (F.n_owed || F.n_parked) {
        while (F.n_parked)
            store_answer(F.n_parked - 1);
        while (F.n_owed)
            ledger_answer(F.n_owed - 1, 201);
        turn();
    }
    for (int k = 0; k < 3; k++) {
        turn();
        for (int j = 0; j < MAX_CLIENTS; j++)
            client_read(&F.cl[j]);
    }
    for (int j = 0; j < MAX_CLIENTS; j++) {
        client_close(&F.cl[j], 0);
        sk_buf_free(&F.cl[j].pending);
        sk_buf_free(&F.cl[j].in);
    }
    for (int k = 0; k < 2; k++)
        turn();
    sk_http_server_free(F.srv);
    CHECK(F.n_streams == 0); /* every stream's on_close ran */
    CHECK(atomic_load(&F.cfg.conns_open) == 0);
    CHECK(atomic_load(&F.cfg.streams_open) == 0);
    CHECK(atomic_load(&F.cfg.stream_backlog) == 0);
    CHECK(sk_loop_free(F.loop) == 0);
    sk_http_config_destroy(&F.cfg);
    return 0;
}
