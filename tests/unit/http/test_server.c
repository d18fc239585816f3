/* Tests of the connection layer (src/http/server.c) in-process, over socketpairs handed
 * to the server with sk_http_server_adopt, driven one loop turn at a time:
 *  - the lifetime rule: a client that goes away (close with unread answers, which a
 *    Unix socket reports as a reset, or a plain close) at every point of a purchase's
 *    flight, before, during and after the deferred answers; the server answers the
 *    survivors in order and frees everything (ASan in make test checks the memory);
 *  - a stream's head waits behind answers still owed; HEAD on a stream gives the head
 *    alone and the connection goes on;
 *  - the stream limits that need no client address: the count in all, the lifetime,
 *    and the bound on the backlog over all streams (a new stream at the bound is
 *    refused or served, never dropped before its head went out). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/server.h"
#include "loop/loop.h"
#include "test.h"
#include "util/buf.h"

#define MAX_DEFERRED 64

typedef struct {
    sk_loop_t *loop;
    sk_http_config_t cfg;
    sk_http_server_t *srv;
    sk_http_deferred_t *owed[MAX_DEFERRED];
    int n_owed;
    sk_http_conn_t *stream;
    int stream_closes;
    int streams_refused;
    sk_http_parked_t *parked; /* /park's, until the test unparks it */
    int resumed_seen; /* the tag /park was handed again with */
} env_t;

static env_t E;
/* Every test runs on each backend of the loop in turn (main sets it), and once more on
 * io_uring with a tiny submission queue (uring_entries), which fills up. */
static sk_loop_io_t test_io = SK_LOOP_IO_EPOLL;
static unsigned uring_entries;

static void on_stream_close(sk_http_conn_t *c, void *arg)
{
    (void)arg;
    if (c == E.stream)
        E.stream = NULL;
    E.stream_closes++;
}

static bool path_is(const sk_http_exchange_t *x, const char *p)
{
    return x->req->path_len == strlen(p) && memcmp(x->req->path, p, x->req->path_len) == 0;
}

/* /defer is answered later (as the ledger does), /sync at once, /stream starts a stream. */
static void handler(sk_http_exchange_t *x, void *arg)
{
    (void)arg;
    if (path_is(x, "/defer")) {
        if (E.n_owed < MAX_DEFERRED) {
            E.owed[E.n_owed++] = sk_http_defer(x);
            return;
        }
    } else if (path_is(x, "/park") || path_is(x, "/park-now")) {
        /* Parked the first time (as the API does for a lookup); answered with its body
         * and the tag when handed again. /park-now is unparked by the handler itself
         * (an op answered at once). */
        if (!x->resumed) {
            sk_http_parked_t *p = sk_http_park(x);
            if (p) {
                if (path_is(x, "/park-now"))
                    sk_http_unpark(p, 9);
                else
                    E.parked = p;
                return;
            }
        }
        E.resumed_seen = x->resumed;
        char b[64];
        int n = snprintf(b, sizeof(b), "resumed %d %.*s", x->resumed, (int)x->body_len, x->body);
        sk_http_respond(x, 200, "text/plain", b, (size_t)n);
        return;
    } else if (path_is(x, "/sync")) {
        sk_http_respond(x, 200, "text/plain", "sync", 4);
        return;
    } else if (path_is(x, "/big")) {
        static char big[1 << 20];
        memset(big, 'b', sizeof(big));
        sk_http_respond(x, 200, "text/plain", big, sizeof(big));
        return;
    } else if (path_is(x, "/stream")) {
        sk_http_conn_t *c = sk_http_stream_start(x, "text/event-stream", NULL, on_stream_close, NULL);
        if (!c) {
            E.streams_refused++;
            return;
        }
        E.stream = c;
        sk_http_stream_write(c, "data: 1\n\n", 9);
        return;
    }
    sk_http_respond_error(x, 404, "not_found", "no such path");
}

static void stop_cb(sk_loop_t *loop, sk_timer_t *t)
{
    (void)t;
    sk_loop_stop(loop);
}

/* One loop turn: the before-sleep list (flush, free), a wait of 0 ms, the callbacks. */
static void turn(void)
{
    sk_timer_t t = {0};
    sk_timer_start(E.loop, &t, 0, stop_cb);
    sk_loop_run(E.loop);
    sk_timer_stop(E.loop, &t);
}

static void turns(int n)
{
    for (int i = 0; i < n; i++)
        turn();
}

static void env_open(void)
{
    memset(&E, 0, sizeof(E));
    E.loop = sk_loop_new_sized(test_io, uring_entries);
    ASSERT_TRUE(E.loop != NULL);
    sk_http_config_init(&E.cfg);
    E.cfg.header_timeout_ms = 10000;
    E.cfg.idle_timeout_ms = 10000;
    E.cfg.max_conns = 1000;
    E.srv = sk_http_server_new(E.loop, -1, &E.cfg, handler, NULL);
}

/* Answers the oldest owed deferred answer with body `tag`. */
static void answer_one(const char *tag)
{
    sk_http_deferred_t *d = E.owed[0];
    memmove(&E.owed[0], &E.owed[1], (size_t)(E.n_owed - 1) * sizeof(E.owed[0]));
    E.n_owed--;
    sk_http_deferred_respond(d, 201, "text/plain", NULL, tag, strlen(tag));
}

/* Unparks /park's request (as the store's answer would) with `tag`. */
static void unpark_parked(int tag)
{
    sk_http_parked_t *p = E.parked;
    E.parked = NULL;
    sk_http_unpark(p, tag);
}

/* Frees everything; returns what sk_loop_free found still registered. */
static int env_close(void)
{
    while (E.n_owed)
        answer_one("late");
    turn();
    sk_http_server_free(E.srv);
    int left = sk_loop_free(E.loop);
    sk_http_config_destroy(&E.cfg);
    return left;
}

/* A client end of a socketpair whose other end the server serves. */
static int client(int sndbuf)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    if (sndbuf)
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (sk_http_server_adopt(E.srv, sv[1]) < 0) {
        close(sv[0]);
        return -1;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    return sv[0];
}

static void send_str(int fd, const char *s)
{
    ssize_t n = send(fd, s, strlen(s), MSG_NOSIGNAL);
    (void)n;
}

/* What the client can read now (non-blocking); `eof` says whether the server closed. */
static size_t read_now(int fd, char *buf, size_t cap, bool *eof)
{
    size_t got = 0;
    *eof = false;
    while (got < cap - 1) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            *eof = true;
        break;
    }
    buf[got] = '\0';
    return got;
}

static const char PIPELINE[] = "GET /sync HTTP/1.1\r\nHost: t\r\n\r\n"
                               "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nu1"
                               "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nu2"
                               "GET /sync HTTP/1.1\r\nHost: t\r\n\r\n";

/* The flight of two purchases among other requests, step by step; the client vanishes
 * after step `kill` (a close while answers are unread, which the server sees as a
 * reset, or a half-close) and the flight goes on without it. */
static void flight(int kill, bool half_close)
{
    half_close = half_close && kill <= 6;
    env_open();
    int fd = client(0);
    char buf[8192];
    bool eof;
    for (int step = 0; step <= 6; step++) {
        if (step == kill) {
            if (half_close)
                shutdown(fd, SHUT_WR);
            else {
                close(fd);
                fd = -1;
            }
        }
        switch (step) {
        case 0:
            if (fd >= 0 && kill != 0)
                send_str(fd, PIPELINE);
            break;
        case 1:
        case 5:
            turn();
            break;
        case 2:
            if (E.n_owed)
                answer_one("A");
            break;
        case 3:
            turn();
            break;
        case 4:
            if (E.n_owed)
                answer_one("B");
            break;
        default:
            turns(2);
        }
    }
    if (fd >= 0) {
        size_t n = read_now(fd, buf, sizeof(buf), &eof);
        /* Whatever arrived is in request order: sync, A, B, sync. */
        const char *a = strstr(buf, "\r\n\r\nA"), *b = strstr(buf, "\r\n\r\nB"), *s1 = strstr(buf, "sync");
        if (kill > 6 || (half_close && kill > 0)) {
            ASSERT_TRUE(n > 0);
            ASSERT_TRUE(a && b && s1 && s1 < a && a < b && strstr(b, "sync"));
        }
        if (half_close)
            ASSERT_TRUE(eof); /* answered what was asked, then closed */
        close(fd);
    }
    ASSERT_EQ(E.n_owed, 0);
    ASSERT_EQ(sk_http_server_conns(E.srv), 0u + (kill > 6 && !half_close));
    ASSERT_EQ(env_close(), 0);
}

/* Which step the client left at, for the failure line (assertions abort). */
static int flight_step = -1;
static bool flight_half;

static void flight_where(void)
{
    if (flight_step >= 0)
        fprintf(stderr, "  (client %s at step %d)\n", flight_half ? "half-closed" : "closed", flight_step);
}

SK_TEST(client_gone_at_every_point_of_a_purchase)
{
    sk_test_abort_hook = flight_where;
    for (int kill = 0; kill <= 7; kill++) {
        flight_step = kill;
        flight_half = false;
        flight(kill, false);
        flight_half = true;
        flight(kill, true);
    }
    flight_step = -1;
    sk_test_abort_hook = NULL;
}

SK_TEST(drain_deadline_with_answers_owed)
{
    /* The grace deadline closes a connection the ledger still owes; its answer comes
     * after the drain finished, as in the shutdown of seckill serve. */
    env_open();
    int fd = client(0);
    send_str(fd, "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nu1");
    turn();
    ASSERT_EQ(E.n_owed, 1);
    sk_http_server_drain(E.srv, 0, NULL, NULL);
    turns(2);
    ASSERT_EQ(sk_http_server_conns(E.srv), 0u);
    answer_one("after the drain");
    close(fd);
    ASSERT_EQ(env_close(), 0);
}

SK_TEST(stream_head_waits_for_answers_owed)
{
    env_open();
    int fd = client(0);
    char buf[8192];
    bool eof;
    send_str(fd, "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nu1"
                 "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(2);
    ASSERT_TRUE(E.stream != NULL);
    ASSERT_EQ(read_now(fd, buf, sizeof(buf), &eof), 0); /* the purchase is owed: nothing may go out */
    ASSERT_EQ(sk_http_stream_write(E.stream, "data: 2\n\n", 9), 0);
    turn();
    ASSERT_EQ(read_now(fd, buf, sizeof(buf), &eof), 0);
    answer_one("A");
    turn();
    read_now(fd, buf, sizeof(buf), &eof);
    const char *a = strstr(buf, "HTTP/1.1 201 Created"), *h = strstr(buf, "HTTP/1.1 200 OK");
    ASSERT_TRUE(a == buf);
    ASSERT_TRUE(h && h > a && strstr(h, "text/event-stream"));
    ASSERT_TRUE(strstr(h, "data: 1\n\ndata: 2\n\n") != NULL);
    ASSERT_TRUE(strstr(buf, "Content-Length: 1\r\n") != NULL);
    /* Later writes go straight out. */
    ASSERT_EQ(sk_http_stream_write(E.stream, "data: 3\n\n", 9), 0);
    turn();
    read_now(fd, buf, sizeof(buf), &eof);
    ASSERT_STR_EQ(buf, "data: 3\n\n");
    close(fd);
    turns(2);
    ASSERT_EQ(E.stream_closes, 1);
    ASSERT_EQ(env_close(), 0);
}

SK_TEST(half_close_with_a_stream_behind_an_answer_owed)
{
    /* A purchase, then a stream, then the client shuts down its sending side before
     * the purchase is answered. The stream ends, but the purchase's answer (owed
     * before it) still reaches the client, as it would without the stream; then the
     * server closes. */
    env_open();
    int fd = client(0);
    char buf[8192];
    bool eof;
    send_str(fd, "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nu1"
                 "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(2);
    ASSERT_TRUE(E.stream != NULL);
    shutdown(fd, SHUT_WR);
    turns(2);
    ASSERT_EQ(E.stream_closes, 1); /* the stream ended */
    ASSERT_EQ(sk_http_server_conns(E.srv), 1u); /* the connection waits for its answer */
    answer_one("A");
    turns(2);
    read_now(fd, buf, sizeof(buf), &eof);
    ASSERT_TRUE(strncmp(buf, "HTTP/1.1 201 Created", 20) == 0 && strstr(buf, "\r\n\r\nA"));
    ASSERT_TRUE(eof);
    ASSERT_EQ(sk_http_server_conns(E.srv), 0u);
    ASSERT_EQ(atomic_load(&E.cfg.streams_open), 0u);
    close(fd);
    ASSERT_EQ(env_close(), 0);
}

SK_TEST(head_on_a_stream_answers_the_head_alone)
{
    env_open();
    int fd = client(0);
    char buf[8192];
    bool eof;
    send_str(fd, "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\nGET /sync HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(2);
    read_now(fd, buf, sizeof(buf), &eof);
    ASSERT_TRUE(E.stream == NULL);
    ASSERT_EQ(E.streams_refused, 1);
    ASSERT_TRUE(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    char *end = strstr(buf, "\r\n\r\n");
    ASSERT_TRUE(end != NULL);
    *end = '\0';
    ASSERT_TRUE(strstr(buf, "Content-Type: text/event-stream") != NULL);
    ASSERT_TRUE(strstr(buf, "Content-Length") == NULL);
    ASSERT_TRUE(strncmp(end + 4, "HTTP/1.1 200 OK", 15) == 0 && strstr(end + 4, "\r\n\r\nsync"));
    ASSERT_TRUE(!eof);
    close(fd);
    ASSERT_EQ(env_close(), 0);
}

SK_TEST(streams_in_all_and_their_lifetime)
{
    env_open();
    E.cfg.max_streams = 1;
    int a = client(0), b = client(0);
    char buf[8192];
    bool eof;
    send_str(a, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    turn();
    ASSERT_TRUE(E.stream != NULL);
    send_str(b, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(2);
    ASSERT_EQ(E.streams_refused, 1);
    read_now(b, buf, sizeof(buf), &eof);
    ASSERT_TRUE(strncmp(buf, "HTTP/1.1 503 ", 13) == 0 && strstr(buf, "too_many_streams") &&
                strstr(buf, "Retry-After"));
    ASSERT_TRUE(eof); /* a refused stream's connection closes */
    close(b);
    /* The lifetime: with 1 ms the next sweep (every 250 ms) ends the stream; what was
     * written still arrives, then the server closes. */
    E.cfg.stream_lifetime_ms = 1;
    close(a);
    turns(2);
    ASSERT_EQ(atomic_load(&E.cfg.streams_open), 0u);
    a = client(0);
    send_str(a, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    turn();
    ASSERT_TRUE(E.stream != NULL);
    sk_timer_t safety = {0};
    sk_timer_start(E.loop, &safety, 5000, stop_cb);
    while (E.stream && sk_timer_armed(&safety)) {
        sk_timer_t t = {0};
        sk_timer_start(E.loop, &t, 20, stop_cb);
        sk_loop_run(E.loop);
        sk_timer_stop(E.loop, &t);
    }
    sk_timer_stop(E.loop, &safety);
    ASSERT_TRUE(E.stream == NULL); /* on_close ran */
    turns(2);
    read_now(a, buf, sizeof(buf), &eof);
    ASSERT_TRUE(strstr(buf, "\r\n\r\ndata: 1\n\n") != NULL);
    ASSERT_TRUE(eof);
    ASSERT_EQ(atomic_load(&E.cfg.streams_open), 0u);
    ASSERT_EQ(sk_counter_get(&sk_http_server_stats(E.srv)->streams_expired), 1);
    close(a);
    ASSERT_EQ(env_close(), 0);
}

SK_TEST(backlog_bound_drops_the_streams_behind)
{
    /* Two streams: one client never reads (its socket buffer is small, so the server's
     * backlog grows), one reads everything. Past the bound over all streams, the one
     * behind is dropped, long before its own 256 KiB limit; the one that keeps up is
     * never dropped for it. */
    env_open();
    E.cfg.max_stream_backlog = 64 * 1024;
    int slow = client(4096);
    send_str(slow, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    turn();
    sk_http_conn_t *s_slow = E.stream;
    ASSERT_TRUE(s_slow != NULL);
    int fast = client(0);
    send_str(fast, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    turn();
    sk_http_conn_t *s_fast = E.stream;
    ASSERT_TRUE(s_fast != NULL && s_fast != s_slow);
    char chunk[4096], buf[65536];
    memset(chunk, 'x', sizeof(chunk));
    bool eof;
    int rc = 0, writes = 0;
    while (rc == 0 && writes < 1000) {
        rc = sk_http_stream_write(s_slow, chunk, sizeof(chunk));
        writes++;
        if (rc == 0 && writes % 4 == 0) {
            ASSERT_EQ(sk_http_stream_write(s_fast, chunk, 100), 0);
            turn();
            while (read_now(fast, buf, sizeof(buf), &eof) > 0) {
            }
        }
    }
    ASSERT_EQ(rc, -ENOBUFS);
    ASSERT_LT((int64_t)writes * (int64_t)sizeof(chunk), 256 * 1024); /* dropped by the bound, not its own limit */
    ASSERT_EQ(E.stream_closes, 1);
    ASSERT_LE(atomic_load(&E.cfg.stream_backlog), 64 * 1024);
    /* The fast one goes on. */
    ASSERT_EQ(sk_http_stream_write(s_fast, chunk, 100), 0);
    turn();
    ASSERT_EQ(read_now(fast, buf, sizeof(buf), &eof), 100);
    ASSERT_EQ(sk_counter_get(&sk_http_server_stats(E.srv)->streams_dropped), 1);
    close(fast);
    close(slow);
    turns(2);
    ASSERT_EQ(E.stream_closes, 2);
    ASSERT_EQ(atomic_load(&E.cfg.stream_backlog), 0u);
    ASSERT_EQ(atomic_load(&E.cfg.streams_open), 0u);
    ASSERT_EQ(env_close(), 0);
}

SK_TEST(new_stream_at_the_backlog_bound)
{
    /* A stream that is behind fills the backlog over all streams to just under the
     * bound. A new stream is not behind (its head was never offered to its socket): it
     * must get its head and first event, not be dropped before anything left. Two new
     * streams in the same turn: the first one's head takes the total to the bound, and
     * the second is refused with an answer. */
    env_open();
    E.cfg.max_stream_backlog = 16 * 1024;
    int slow = client(4096);
    send_str(slow, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    turn();
    sk_http_conn_t *s_slow = E.stream;
    ASSERT_TRUE(s_slow != NULL);
    char chunk[1000], buf[8192];
    memset(chunk, 'x', sizeof(chunk));
    bool eof;
    while (atomic_load(&E.cfg.stream_backlog) + sizeof(chunk) < 16 * 1024 - 100) {
        ASSERT_EQ(sk_http_stream_write(s_slow, chunk, sizeof(chunk)), 0);
        turn();
    }
    ASSERT_EQ(sk_http_stream_write(s_slow, chunk, 16 * 1024 - 100 - atomic_load(&E.cfg.stream_backlog)), 0);
    turn();
    ASSERT_EQ(atomic_load(&E.cfg.stream_backlog), 16 * 1024 - 100);
    int fresh[2] = {client(0), client(0)};
    for (int i = 0; i < 2; i++)
        send_str(fresh[i], "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(2);
    ASSERT_EQ(E.stream_closes, 0);
    ASSERT_EQ(E.streams_refused, 1);
    int served = 0, refused = 0;
    for (int i = 0; i < 2; i++) {
        read_now(fresh[i], buf, sizeof(buf), &eof);
        if (strncmp(buf, "HTTP/1.1 200 OK", 15) == 0 && strstr(buf, "\r\n\r\ndata: 1\n\n") && !eof)
            served++;
        else if (strncmp(buf, "HTTP/1.1 503 ", 13) == 0 && strstr(buf, "too_many_streams") &&
                 strstr(buf, "Retry-After") && eof)
            refused++;
    }
    ASSERT_EQ(served, 1);
    ASSERT_EQ(refused, 1);
    /* The next event that passes the bound drops the one that is behind. */
    ASSERT_EQ(sk_http_stream_write(s_slow, chunk, 200), -ENOBUFS);
    ASSERT_EQ(E.stream_closes, 1);
    for (int i = 0; i < 2; i++)
        close(fresh[i]);
    close(slow);
    turns(2);
    ASSERT_EQ(E.stream_closes, 2);
    ASSERT_EQ(atomic_load(&E.cfg.stream_backlog), 0u);
    ASSERT_EQ(atomic_load(&E.cfg.streams_open), 0u);
    ASSERT_EQ(env_close(), 0);
}

static int drained;

static void on_drained(sk_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    drained++;
}

SK_TEST(drain_closes_a_keep_alive_connection_once_its_answer_left)
{
    /* A keep-alive client is still reading a big answer when the drain starts. Once the
     * answer has left, the connection is idle and closes, and the drain is done: it
     * does not wait for the grace deadline (a minute here). */
    env_open();
    drained = 0;
    int fd = client(4096);
    send_str(fd, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    turn();
    sk_http_server_drain(E.srv, 60000, on_drained, NULL);
    ASSERT_EQ(sk_http_server_conns(E.srv), 1u); /* the answer is still going out */
    char buf[65536];
    bool eof = false;
    size_t got = 0;
    /* Bounded by the clock, not by a count of rounds: on epoll the idle connection is
     * closed by the drain's sweep, every 20 ms, and a fast machine makes 20 000 rounds
     * in less than that. 5 s is far below the grace deadline. */
    uint64_t give_up = sk_mono_ns() + UINT64_C(5000000000);
    for (int round = 0; !eof && sk_mono_ns() < give_up; round++) {
        got += read_now(fd, buf, sizeof(buf), &eof);
        turn();
        if (round % 64 == 63)
            turns(20); /* let a sweep (every 20 ms while draining) run now and then */
    }
    ASSERT_GT(got, (size_t)(1 << 20));
    ASSERT_TRUE(eof);
    ASSERT_EQ(sk_http_server_conns(E.srv), 0u);
    for (int i = 0; i < 100 && !drained; i++)
        turn();
    ASSERT_EQ(drained, 1);
    close(fd);
    ASSERT_EQ(env_close(), 0);
}

/* Counts the answers (status lines) in what a client received. */
static size_t count_answers(const char *buf, size_t len)
{
    size_t n = 0;
    for (const char *p = buf; (p = memmem(p, len - (size_t)(p - buf), "HTTP/1.1 ", 9)) != NULL; p += 9)
        n++;
    return n;
}

/* A client pipelines far more requests than the server takes at once (answer slots up
 * to the backpressure bound, then about 90 KB left unread: on io_uring more than the
 * loop receives for a paused reader), then maybe half-closes: every request is
 * answered, in full, once the ledger answers, and the half-closed one is closed. */
static void pipeline_flood(bool half_close)
{
    env_open();
    int fd = client(0);
    enum { N = 1500 };
    sk_buf_t out = {0}, in = {0};
    for (int i = 0; i < N; i++)
        sk_buf_puts(&out, i % 3 ? "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nu1"
                                : "GET /sync HTTP/1.1\r\nHost: t\r\n\r\n");
    size_t sent = 0;
    bool eof = false, shut = false;
    char buf[65536];
    for (int round = 0; round < 20000 && !eof && count_answers(in.data ? in.data : "", in.len) < N; round++) {
        if (sent < out.len) {
            ssize_t w = send(fd, out.data + sent, out.len - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        if (sent == out.len && half_close && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        turn();
        while (E.n_owed)
            answer_one("A");
        size_t got = read_now(fd, buf, sizeof(buf), &eof);
        sk_buf_append(&in, buf, got);
    }
    ASSERT_EQ(sent, out.len);
    ASSERT_EQ(count_answers(in.data, in.len), (size_t)N);
    if (half_close) {
        for (int round = 0; round < 100 && !eof; round++) {
            turn();
            read_now(fd, buf, sizeof(buf), &eof);
        }
        ASSERT_TRUE(eof);
    }
    sk_buf_free(&out);
    sk_buf_free(&in);
    close(fd);
    ASSERT_EQ(env_close(), 0);
}

SK_TEST(pipeline_flood_is_answered_in_full)
{
    pipeline_flood(false);
    pipeline_flood(true);
}

SK_TEST(backlog_bound_counts_what_the_loop_holds)
{
    /* One stream whose client reads nothing (a small socket buffer). With io_uring the
     * loop takes bytes for sending (up to a socket buffer's worth) before the client's
     * socket does; those bytes are in this process too, so they count against the
     * bound over all streams: the stream is dropped once about the bound is held for
     * it, on either backend, not the bound plus what the loop holds. */
    env_open();
    E.cfg.max_stream_backlog = 24 * 1024;
    int slow = client(4096);
    send_str(slow, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    turn();
    sk_http_conn_t *st = E.stream;
    ASSERT_TRUE(st != NULL);
    char chunk[2048];
    memset(chunk, 'x', sizeof(chunk));
    size_t written = 0;
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = sk_http_stream_write(st, chunk, sizeof(chunk));
        if (rc == 0)
            written += sizeof(chunk);
        turn();
    }
    ASSERT_EQ(rc, -ENOBUFS);
    ASSERT_EQ(E.stream_closes, 1);
    /* The bound, one write and what the client's socket took (a few KiB here). */
    ASSERT_LT(written, (size_t)(24 * 1024 + 2048 + 16 * 1024));
    ASSERT_EQ(atomic_load(&E.cfg.stream_backlog), 0u);
    close(slow);
    ASSERT_EQ(env_close(), 0);
}

/* A parked request is handed to the handler again, whole (its body too), when it is
 * unparked; the requests behind it on the connection wait, and every answer leaves in
 * request order, a deferred answer before it included. Unparked by the handler itself,
 * it is handed again at once. */
SK_TEST(parked_request_is_handled_again_in_order)
{
    env_open();
    int fd = client(0);
    char buf[4096];
    bool eof;
    send_str(fd, "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nu1"
                 "POST /park HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                 "GET /sync HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(3);
    ASSERT_TRUE(E.parked != NULL);
    ASSERT_EQ(E.n_owed, 1);
    ASSERT_EQ(read_now(fd, buf, sizeof(buf), &eof), 0u); /* /sync waits behind the parked one */
    send_str(fd, "GET /sync HTTP/1.1\r\nHost: t\r\n\r\n"); /* arrives while parked */
    turns(3);
    ASSERT_EQ(read_now(fd, buf, sizeof(buf), &eof), 0u);
    unpark_parked(7);
    ASSERT_EQ(E.resumed_seen, 7);
    turns(3);
    ASSERT_EQ(read_now(fd, buf, sizeof(buf), &eof), 0u); /* all behind the deferred answer */
    answer_one("first");
    turns(3);
    size_t n = read_now(fd, buf, sizeof(buf), &eof);
    ASSERT_TRUE(n > 0 && !eof);
    const char *a = strstr(buf, "first"), *b = strstr(buf, "resumed 7 hello"), *c = strstr(buf, "sync");
    ASSERT_TRUE(a && b && c && a < b && b < c);
    ASSERT_TRUE(strstr(c + 4, "sync") != NULL); /* the one sent while parked */
    send_str(fd, "GET /park-now HTTP/1.1\r\nHost: t\r\n\r\nGET /sync HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(3);
    n = read_now(fd, buf, sizeof(buf), &eof);
    b = strstr(buf, "resumed 9 ");
    c = strstr(buf, "sync");
    ASSERT_TRUE(b && c && b < c);
    close(fd);
    ASSERT_EQ(env_close(), 0);
}

/* A client that goes away while its request is parked (reading has stopped, so the
 * server learns it when it goes on: the request was received, and is handled; its
 * answer goes nowhere): the connection closes and its memory goes with the last
 * reference (ASan in make test checks it). A parked request is not timed out as a slow
 * one. */
SK_TEST(client_gone_while_parked)
{
    env_open();
    E.cfg.header_timeout_ms = 1;
    int fd = client(0);
    send_str(fd, "GET /park HTTP/1.1\r\nHost: t\r\n\r\nGET /sync HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(2);
    ASSERT_TRUE(E.parked != NULL);
    usleep(300 * 1000); /* a sweep (every 250 ms) runs: the header deadline is long past */
    turns(3);
    char buf[1024];
    bool eof;
    ASSERT_EQ(read_now(fd, buf, sizeof(buf), &eof), 0u);
    ASSERT_TRUE(!eof); /* no 408, no close */
    close(fd);
    turns(3); /* the server sees the close */
    unpark_parked(7);
    turns(3);
    ASSERT_EQ(sk_http_server_conns(E.srv), 0u);
    ASSERT_EQ(env_close(), 0);
}

/* A drain answers a parked request (Connection: close) once it is unparked, and then
 * closes its connection; an answer owed ahead of it leaves without closing it. */
SK_TEST(drain_answers_a_parked_request)
{
    env_open();
    int fd = client(0);
    send_str(fd, "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nu1"
                 "GET /park HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(2);
    ASSERT_TRUE(E.parked != NULL);
    ASSERT_EQ(E.n_owed, 1);
    sk_http_server_drain(E.srv, 60000, NULL, NULL);
    turns(2);
    ASSERT_EQ(sk_http_server_conns(E.srv), 1u);
    answer_one("first");
    turns(3);
    char buf[2048];
    bool eof;
    read_now(fd, buf, sizeof(buf), &eof);
    ASSERT_TRUE(strstr(buf, "first") != NULL && strstr(buf, "Connection: close") == NULL && !eof);
    ASSERT_EQ(sk_http_server_conns(E.srv), 1u);
    unpark_parked(3);
    turns(3);
    read_now(fd, buf, sizeof(buf), &eof);
    ASSERT_TRUE(strstr(buf, "Connection: close") != NULL && strstr(buf, "resumed 3") != NULL);
    ASSERT_EQ(sk_http_server_conns(E.srv), 0u);
    close(fd);
    ASSERT_EQ(env_close(), 0);
}

/* In a drain, an answer owed ahead of another does not say Connection: close (a client
 * stops reading there): both arrive, in order, the last one closing; nothing sent after
 * the drain began is read. */
SK_TEST(drain_closes_after_the_last_answer_in_line)
{
    env_open();
    int fd = client(0);
    send_str(fd, "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nu1"
                 "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nu2");
    turns(2);
    ASSERT_EQ(E.n_owed, 2);
    sk_http_server_drain(E.srv, 60000, NULL, NULL);
    turns(2);
    answer_one("first");
    turns(2);
    send_str(fd, "GET /sync HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(2);
    answer_one("second");
    turns(3);
    char buf[2048];
    bool eof;
    size_t n = read_now(fd, buf, sizeof(buf), &eof);
    const char *a = strstr(buf, "first"), *b = strstr(buf, "second"), *cl = strstr(buf, "Connection: close");
    ASSERT_TRUE(n > 0 && a && b && a < b);
    ASSERT_TRUE(cl != NULL && cl > a && cl < b); /* on the second answer only */
    ASSERT_TRUE(strstr(buf, "sync") == NULL);
    ASSERT_EQ(sk_http_server_conns(E.srv), 0u);
    close(fd);
    ASSERT_EQ(env_close(), 0);
}

/* The drain's deadline closes a connection whose request is parked; the unpark after
 * it hands nothing to the handler. */
SK_TEST(drain_deadline_while_parked)
{
    env_open();
    int fd = client(0);
    send_str(fd, "GET /park HTTP/1.1\r\nHost: t\r\n\r\n");
    turns(2);
    ASSERT_TRUE(E.parked != NULL);
    sk_http_server_drain(E.srv, 0, NULL, NULL);
    turns(2);
    ASSERT_EQ(sk_http_server_conns(E.srv), 0u);
    unpark_parked(3);
    ASSERT_EQ(E.resumed_seen, 0);
    close(fd);
    ASSERT_EQ(env_close(), 0);
}

/* Every status with a counter slot finds it; any other status counts as "other". */
SK_TEST(status_slots_round_trip)
{
    for (int i = 1; i < SK_HTTP_STATUS_SLOTS; i++)
        ASSERT_EQ(sk_http_status_slot(sk_http_slot_status(i)), i);
    int others[] = {0, 99, 101, 202, 302, 402, 499, 502, 504, 599, 999};
    for (size_t i = 0; i < SK_ARRAY_LEN(others); i++)
        ASSERT_EQ(sk_http_status_slot(others[i]), 0);
}

#define ALL_TESTS                                                                                                      \
    SK_RUN(client_gone_at_every_point_of_a_purchase);                                                                  \
    SK_RUN(drain_deadline_with_answers_owed);                                                                          \
    SK_RUN(stream_head_waits_for_answers_owed);                                                                        \
    SK_RUN(half_close_with_a_stream_behind_an_answer_owed);                                                            \
    SK_RUN(head_on_a_stream_answers_the_head_alone);                                                                   \
    SK_RUN(streams_in_all_and_their_lifetime);                                                                         \
    SK_RUN(backlog_bound_drops_the_streams_behind);                                                                    \
    SK_RUN(new_stream_at_the_backlog_bound);                                                                           \
    SK_RUN(backlog_bound_counts_what_the_loop_holds);                                                                  \
    SK_RUN(pipeline_flood_is_answered_in_full);                                                                        \
    SK_RUN(drain_closes_a_keep_alive_connection_once_its_answer_left);                                                 \
    SK_RUN(parked_request_is_handled_again_in_order);                                                                  \
    SK_RUN(client_gone_while_parked);                                                                                  \
    SK_RUN(drain_answers_a_parked_request);                                                                            \
    SK_RUN(drain_closes_after_the_last_answer_in_line);                                                                \
    SK_RUN(drain_deadline_while_parked)

SK_TEST_MAIN(signal(SIGPIPE, SIG_IGN); /* as seckill serve does: a write to a gone client fails with EPIPE */
             printf("-- epoll\n"); test_io = SK_LOOP_IO_EPOLL; ALL_TESTS;
             sk_loop_t *probe = sk_loop_new_io(SK_LOOP_IO_URING);
             if (!probe) printf("-- io_uring is not available here (%s): its runs are skipped\n", strerror(errno));
             else {
                 sk_loop_free(probe);
                 printf("-- io_uring\n");
                 test_io = SK_LOOP_IO_URING;
                 ALL_TESTS;
                 printf("-- io_uring, a 2-entry submission queue\n");
                 uring_entries = 2;
                 ALL_TESTS;
                 uring_entries = 0;
             } SK_RUN(status_slots_round_trip);)
