#include "loadgen/client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/common.h"

#define SK_LOADGEN_IN_MIN 16384
#define SK_LOADGEN_IN_MAX (256u << 20) /* a response larger than this is refused */

int sk_loadgen_target_parse(const char *url, sk_loadgen_target_t *t, char *err, size_t err_len)
{
    memset(t, 0, sizeof(*t));
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, err_len, "%s: only http:// URLs are supported", url);
        return -EINVAL;
    }
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    size_t hp_len = slash ? (size_t)(slash - h) : strlen(h);
    if (hp_len == 0) {
        snprintf(err, err_len, "%s: no host", url);
        return -EINVAL;
    }
    const char *host = h, *host_end, *port = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', hp_len);
        if (!rb) {
            snprintf(err, err_len, "%s: unterminated [IPv6] address", url);
            return -EINVAL;
        }
        host = h + 1;
        host_end = rb;
        if (rb + 1 < h + hp_len) {
            if (rb[1] != ':') {
                snprintf(err, err_len, "%s: bad port", url);
                return -EINVAL;
            }
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(h, ':', hp_len);
        host_end = colon ? colon : h + hp_len;
        port = colon ? colon + 1 : NULL;
    }
    int64_t p = 80;
    if (port && sk_parse_i64(port, (size_t)(h + hp_len - port), 1, 65535, &p) < 0) {
        snprintf(err, err_len, "%s: bad port", url);
        return -EINVAL;
    }
    if (host_end == host) {
        snprintf(err, err_len, "%s: no host", url);
        return -EINVAL;
    }
    t->url = sk_xstrndup(url, strlen(url));
    t->host = sk_xstrndup(host, (size_t)(host_end - host));
    t->hostport = sk_xstrndup(h, hp_len);
    t->port = (int)p;
    const char *base = slash ? slash : "";
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    t->base = sk_xstrndup(base, blen);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char portbuf[8];
    snprintf(portbuf, sizeof(portbuf), "%d", t->port);
    int rc = getaddrinfo(t->host, portbuf, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, err_len, "%s: cannot resolve %s: %s", url, t->host, gai_strerror(rc));
        sk_loadgen_target_free(t);
        return -EHOSTUNREACH;
    }
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    t->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

void sk_loadgen_target_free(sk_loadgen_target_t *t)
{
    free(t->url);
    free(t->host);
    free(t->hostport);
    free(t->base);
    memset(t, 0, sizeof(*t));
}

void sk_loadgen_client_init(sk_loadgen_client_t *cl, sk_loop_t *loop)
{
    memset(cl, 0, sizeof(*cl));
    cl->loop = loop;
}

void sk_loadgen_conn_init(sk_loadgen_conn_t *c, sk_loadgen_client_t *cl, const sk_loadgen_target_t *t,
                          const sk_loadgen_conn_cbs_t *cbs, uint32_t pipeline)
{
    memset(c, 0, sizeof(*c));
    c->client = cl;
    c->target = t;
    c->cbs = cbs;
    c->io.fd = -1;
    c->cap = pipeline ? pipeline : 1;
    c->inflight = sk_xcalloc(c->cap, sizeof(void *));
    c->out_cap = 4096;
    c->out = sk_xmalloc(c->out_cap);
    c->in_cap = SK_LOADGEN_IN_MIN;
    c->in = sk_xmalloc(c->in_cap);
    sk_loadgen_resp_reset(&c->resp);
}

void sk_loadgen_conn_free(sk_loadgen_conn_t *c)
{
    free(c->inflight);
    free(c->out);
    free(c->in);
    c->inflight = NULL;
    c->out = c->in = NULL;
}

static void mark_dirty(sk_loadgen_conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->next_dirty = c->client->dirty;
        c->client->dirty = c;
    }
}

/* Writes as much queued output as the socket takes. Returns 0 or -errno. */
static int write_out(sk_loadgen_conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = sk_io_write(c->client->loop, &c->io, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->client->bytes_sent += (uint64_t)n;
            c->client->writes++;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0; /* the next writable edge resumes */
        return n < 0 ? -errno : -EPIPE;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

void sk_loadgen_conn_close(sk_loadgen_conn_t *c, int err)
{
    if (c->state == SK_LOADGEN_CONN_CLOSED)
        return;
    sk_io_stop(c->client->loop, &c->io);
    close(c->io.fd);
    c->io.fd = -1;
    c->state = SK_LOADGEN_CONN_CLOSED;
    c->out_len = c->out_off = 0;
    c->in_len = 0;
    sk_loadgen_resp_reset(&c->resp);
    /* Requests still in flight learn their fate first, oldest first, so the owner can
     * queue retries before it decides whether to reconnect. */
    int ferr = err ? err : -ECONNRESET;
    while (c->count > 0) {
        void *req = c->inflight[c->head];
        c->head = (c->head + 1) % c->cap;
        c->count--;
        c->cbs->on_failed(c, req, ferr);
    }
    c->head = 0;
    c->cbs->on_closed(c, err);
}

/* Parses and delivers every complete response in the input buffer. Returns false when
 * the connection was closed (or closed and reopened) by a callback or an error. */
static bool deliver(sk_loadgen_conn_t *c)
{
    size_t off = 0;
    uint64_t gen = c->connects;
    while (off < c->in_len) {
        int64_t n = sk_loadgen_resp_parse(&c->resp, c->in + off, c->in_len - off);
        if (n == -2)
            break;
        if (n < 0) {
            sk_loadgen_conn_close(c, -EPROTO);
            return false;
        }
        sk_loadgen_resp_t resp = c->resp;
        off += (size_t)n;
        sk_loadgen_resp_reset(&c->resp);
        if (resp.status < 200)
            continue; /* an interim answer (100 Continue): the final one follows */
        if (c->count == 0) {
            /* An answer nobody asked for: the stream can no longer be trusted. */
            sk_loadgen_conn_close(c, -EPROTO);
            return false;
        }
        void *req = c->inflight[c->head];
        c->head = (c->head + 1) % c->cap;
        c->count--;
        c->responses++;
        c->cbs->on_response(c, req, &resp);
        if (c->state == SK_LOADGEN_CONN_CLOSED || c->connects != gen)
            return false;
        if (!resp.keep_alive) {
            /* Requests pipelined behind this answer will never be answered here. */
            sk_loadgen_conn_close(c, c->count ? -ECONNRESET : 0);
            return false;
        }
    }
    if (off > 0) {
        /* Keep the partial response at the front; the parser's offsets are relative
         * to its first byte, so moving it is allowed. */
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return true;
}

static void on_readable(sk_loadgen_conn_t *c, bool hup)
{
    for (;;) {
        if (c->in_len == c->in_cap) {
            if (c->in_cap >= SK_LOADGEN_IN_MAX) {
                sk_loadgen_conn_close(c, -EMSGSIZE);
                return;
            }
            c->in_cap *= 2;
            c->in = sk_xrealloc(c->in, c->in_cap);
        }
        ssize_t n = sk_io_read(c->client->loop, &c->io, c->in + c->in_len, c->in_cap - c->in_len);
        if (n > 0) {
            size_t want = c->in_cap - c->in_len;
            c->in_len += (size_t)n;
            c->client->bytes_received += (uint64_t)n;
            c->client->reads++;
            if (!deliver(c))
                return;
            /* A short read means the socket is drained (edge-triggered), unless the peer
             * also hung up: that edge came with this event and will not come again, so
             * read on to the end of the stream. */
            if ((size_t)n < want && !hup)
                return;
            continue;
        }
        if (n == 0) {
            /* The peer closed. A close-delimited body ends here; anything else in
             * flight is lost. */
            if (c->in_len > 0) {
                int64_t r = sk_loadgen_resp_eof(&c->resp, c->in, c->in_len);
                if (r > 0 && c->count > 0) {
                    sk_loadgen_resp_t resp = c->resp;
                    void *req = c->inflight[c->head];
                    c->head = (c->head + 1) % c->cap;
                    c->count--;
                    uint64_t gen = c->connects;
                    c->cbs->on_response(c, req, &resp);
                    if (c->state == SK_LOADGEN_CONN_CLOSED || c->connects != gen)
                        return;
                    c->in_len = 0;
                }
            }
            sk_loadgen_conn_close(c, c->count || c->in_len ? -ECONNRESET : 0);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        sk_loadgen_conn_close(c, -errno);
        return;
    }
}

static void on_io(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    sk_loadgen_conn_t *c = SK_CONTAINER_OF(io, sk_loadgen_conn_t, io);
    uint64_t gen = c->connects;
    if (c->state == SK_LOADGEN_CONN_CONNECTING) {
        if (!(events & (SK_IO_WRITE | SK_IO_ERR | SK_IO_HUP)))
            return;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr != 0) {
            sk_loadgen_conn_close(c, -soerr);
            return;
        }
        /* Connected: from now on the loop reads and writes the socket (a stream handle;
         * with io_uring the receive is armed and the sends batched per turn). */
        sk_io_stop(loop, io);
        int rc = sk_io_start(loop, io, io->fd, SK_IO_STREAM, on_io);
        if (rc < 0) {
            sk_loadgen_conn_close(c, rc);
            return;
        }
        c->state = SK_LOADGEN_CONN_OPEN;
        if (c->cbs->on_connected)
            c->cbs->on_connected(c);
        if (c->state != SK_LOADGEN_CONN_OPEN || c->connects != gen)
            return;
        if (c->out_len > c->out_off)
            mark_dirty(c);
    }
    if (events & SK_IO_READ) {
        on_readable(c, (events & SK_IO_HUP) != 0);
        if (c->state != SK_LOADGEN_CONN_OPEN || c->connects != gen)
            return;
    }
    if ((events & SK_IO_WRITE) && c->out_len > c->out_off) {
        int rc = write_out(c);
        if (rc < 0)
            sk_loadgen_conn_close(c, rc);
    }
}

int sk_loadgen_conn_connect(sk_loadgen_conn_t *c)
{
    if (c->state != SK_LOADGEN_CONN_CLOSED)
        return -EISCONN;
    const sk_loadgen_target_t *t = c->target;
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&t->addr, t->addr_len) < 0 && errno != EINPROGRESS) {
        int e = -errno;
        close(fd);
        return e;
    }
    /* Watched for readiness until connected (then a stream handle, see on_io). */
    int rc = sk_io_start(c->client->loop, &c->io, fd, SK_IO_READ | SK_IO_WRITE, on_io);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->state = SK_LOADGEN_CONN_CONNECTING;
    c->connects++;
    c->responses = 0;
    c->in_len = 0;
    c->out_len = c->out_off = 0;
    c->head = c->count = 0;
    sk_loadgen_resp_reset(&c->resp);
    return 0;
}

char *sk_loadgen_conn_reserve(sk_loadgen_conn_t *c, size_t len)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + len > c->out_cap) {
        /* Drop what is already written before growing. */
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        while (c->out_len + len > c->out_cap)
            c->out_cap *= 2;
        c->out = sk_xrealloc(c->out, c->out_cap);
    }
    return c->out + c->out_len;
}

int sk_loadgen_conn_commit(sk_loadgen_conn_t *c, void *req, size_t len)
{
    if (c->state == SK_LOADGEN_CONN_CLOSED)
        return -ENOTCONN;
    if (c->count >= c->cap)
        return -EAGAIN;
    c->out_len += len;
    c->inflight[(c->head + c->count) % c->cap] = req;
    c->count++;
    if (c->state == SK_LOADGEN_CONN_OPEN)
        mark_dirty(c);
    return 0;
}

void sk_loadgen_client_flush(sk_loadgen_client_t *cl)
{
    while (cl->dirty) {
        sk_loadgen_conn_t *c = cl->dirty;
        cl->dirty = c->next_dirty;
        c->next_dirty = NULL;
        c->dirty = false;
        if (c->state != SK_LOADGEN_CONN_OPEN)
            continue;
        int rc = write_out(c);
        if (rc < 0)
            sk_loadgen_conn_close(c, rc);
    }
}
