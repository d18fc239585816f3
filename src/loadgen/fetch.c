#include "loadgen/fetch.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/common.h"

void sk_loadgen_fetch_init(sk_loadgen_fetch_t *f, const sk_loadgen_target_t *t, const char *token, int timeout_ms)
{
    memset(f, 0, sizeof(*f));
    f->target = t;
    f->token = token;
    f->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    f->fd = -1;
}

static void drop(sk_loadgen_fetch_t *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

void sk_loadgen_fetch_close(sk_loadgen_fetch_t *f)
{
    drop(f);
    free(f->buf);
    free(f->body);
    f->buf = f->body = NULL;
    f->buf_cap = f->buf_len = f->body_len = 0;
}

/* Waits until fd is ready for `events` or the deadline passes. Returns 0 or -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = sk_mono_ns();
        if (now >= deadline_ns)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int ms = (int)((deadline_ns - now) / 1000000u) + 1;
        int rc = poll(&p, 1, ms);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -errno;
    }
}

static int open_conn(sk_loadgen_fetch_t *f, uint64_t deadline)
{
    const sk_loadgen_target_t *t = f->target;
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* A second loopback address (127.0.0.2) is another client to the server's per-IP
     * limits: the flooding bot is one address apart from the crowd. */
    if (f->bind_ipv4 && t->addr.ss_family == AF_INET) {
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = f->bind_ipv4};
        if (bind(fd, (const struct sockaddr *)&src, sizeof(src)) < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
    }
    if (connect(fd, (const struct sockaddr *)&t->addr, t->addr_len) < 0) {
        if (errno != EINPROGRESS) {
            int e = -errno;
            close(fd);
            return e;
        }
        int rc = wait_fd(fd, POLLOUT, deadline);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr != 0)
            rc = -soerr;
        if (rc < 0) {
            close(fd);
            return rc;
        }
    }
    f->fd = fd;
    f->buf_len = 0;
    return 0;
}

static int send_all(int fd, const char *p, size_t n, uint64_t deadline)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        return w < 0 ? -errno : -EPIPE;
    }
    return 0;
}

/* One attempt on the current connection. Returns the status, or -errno; *fresh_fail is
 * set when the failure happened before any answer byte arrived (a stale keep-alive
 * connection, worth one more try). */
static int attempt(sk_loadgen_fetch_t *f, const char *req, size_t req_len, uint64_t deadline, int *stale)
{
    *stale = 0;
    int rc = send_all(f->fd, req, req_len, deadline);
    if (rc < 0) {
        *stale = 1;
        return rc;
    }
    sk_loadgen_resp_t r;
    sk_loadgen_resp_reset(&r);
    f->buf_len = 0;
    for (;;) {
        if (f->buf_len > 0) {
            int64_t n = sk_loadgen_resp_parse(&r, f->buf, f->buf_len);
            if (n > 0) {
                free(f->body);
                f->body = sk_xstrndup(r.body, r.body_len);
                f->body_len = r.body_len;
                if (!r.keep_alive || (size_t)n != f->buf_len)
                    drop(f); /* closing, or more bytes than asked for: start afresh */
                if (r.status < 200) {
                    /* An interim answer: wait for the final one. */
                    if (f->fd < 0)
                        return -EPROTO;
                    memmove(f->buf, f->buf + n, f->buf_len - (size_t)n);
                    f->buf_len -= (size_t)n;
                    sk_loadgen_resp_reset(&r);
                    continue;
                }
                return r.status;
            }
            if (n == -1)
                return -EPROTO;
        }
        if (f->buf_cap - f->buf_len < 4096) {
            f->buf_cap = f->buf_cap ? f->buf_cap * 2 : 65536;
            f->buf = sk_xrealloc(f->buf, f->buf_cap);
        }
        ssize_t got = read(f->fd, f->buf + f->buf_len, f->buf_cap - f->buf_len);
        if (got > 0) {
            f->buf_len += (size_t)got;
            continue;
        }
        if (got == 0) {
            if (f->buf_len == 0) {
                *stale = 1;
                return -ECONNRESET;
            }
            int64_t n = sk_loadgen_resp_eof(&r, f->buf, f->buf_len);
            if (n <= 0)
                return -ECONNRESET;
            free(f->body);
            f->body = sk_xstrndup(r.body, r.body_len);
            f->body_len = r.body_len;
            drop(f);
            return r.status;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            rc = wait_fd(f->fd, POLLIN, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        if (f->buf_len == 0 && errno == ECONNRESET)
            *stale = 1;
        return -errno;
    }
}

int sk_loadgen_fetch(sk_loadgen_fetch_t *f, const char *method, const char *path, const char *json_body)
{
    const sk_loadgen_target_t *t = f->target;
    size_t blen = json_body ? strlen(json_body) : 0;
    size_t cap = strlen(method) + strlen(t->base) + strlen(path) + strlen(t->hostport) +
                 (f->token ? strlen(f->token) : 0) + blen + 256;
    char *req = sk_xmalloc(cap);
    int n = snprintf(req, cap, "%s %s%s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n", method, t->base, path,
                     t->hostport);
    if (f->token && *f->token)
        n += snprintf(req + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", f->token);
    if (json_body)
        n += snprintf(req + n, cap - (size_t)n, "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (json_body) {
        memcpy(req + n, json_body, blen);
        n += (int)blen;
    }
    uint64_t deadline = sk_mono_ns() + (uint64_t)f->timeout_ms * 1000000u;
    int rc = 0;
    for (int tries = 0; tries < 2; tries++) {
        bool reused = f->fd >= 0;
        if (!reused) {
            rc = open_conn(f, deadline);
            if (rc < 0)
                break;
        }
        int stale = 0;
        rc = attempt(f, req, (size_t)n, deadline, &stale);
        if (rc > 0)
            break;
        drop(f);
        /* Only a connection that sat idle may have been closed under us; a failure on a
         * fresh one is the answer. */
        if (!(stale && reused))
            break;
    }
    free(req);
    return rc;
}

char *sk_loadgen_path_segment(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = sk_xmalloc(n * 3 + 1), *p = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
            c == '.' || c == '~') {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    return out;
}
