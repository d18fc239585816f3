#include "loadgen/resp.h"

#include <string.h>

#include "util/common.h"

enum {
    ST_HEAD = 0,
    ST_BODY_LENGTH,
    ST_BODY_CLOSE,
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA,
    ST_CHUNK_CRLF,
    ST_TRAILERS,
};

void sk_loadgen_resp_reset(sk_loadgen_resp_t *r)
{
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool name_is(const char *p, size_t n, const char *want)
{
    size_t wn = strlen(want);
    if (n != wn)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != want[i])
            return false;
    return true;
}

/* True when the comma-separated list contains the token (case-insensitive). */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (name_is(v + s, e - s, tok))
            return true;
    }
    return false;
}

/* The last transfer coding must be "chunked" for the body to be chunked. */
static bool last_token_is(const char *v, size_t n, const char *tok)
{
    size_t e = n;
    while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
        e--;
    size_t s = e;
    while (s > 0 && v[s - 1] != ',')
        s--;
    while (s < e && (v[s] == ' ' || v[s] == '\t'))
        s++;
    return name_is(v + s, e - s, tok);
}

/* Parses the status line and headers in buf[0 .. head_len). Returns 0 or -1. */
static int parse_head(sk_loadgen_resp_t *r, const char *buf, size_t head_len)
{
    const char *p = buf, *end = buf + head_len;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol || eol - p < 12 || memcmp(p, "HTTP/1.", 7) != 0)
        return -1;
    if (p[7] != '0' && p[7] != '1')
        return -1;
    r->minor_version = p[7] - '0';
    if (p[8] != ' ')
        return -1;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        status = status * 10 + (p[i] - '0');
    }
    if (status < 100 || (eol - p > 12 && p[12] != ' ' && p[12] != '\r'))
        return -1;
    r->status = status;
    r->keep_alive = r->minor_version == 1;
    bool conn_close = false, conn_keep = false, have_te = false;
    p = eol + 1;
    while (p < end) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            return -1;
        const char *le = eol;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p)
            break; /* the empty line */
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (!colon || colon == p)
            return -1;
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t nlen = (size_t)(colon - p), vlen = (size_t)(ve - v);
        switch (lower((unsigned char)*p)) {
        case 'c':
            if (name_is(p, nlen, "content-length")) {
                int64_t cl;
                if (sk_parse_i64(v, vlen, 0, INT64_MAX / 2, &cl) < 0)
                    return -1;
                if (r->content_length >= 0 && r->content_length != cl)
                    return -1;
                r->content_length = cl;
            } else if (name_is(p, nlen, "connection")) {
                conn_close |= has_token(v, vlen, "close");
                conn_keep |= has_token(v, vlen, "keep-alive");
            }
            break;
        case 't':
            if (name_is(p, nlen, "transfer-encoding")) {
                have_te = true;
                r->chunked = last_token_is(v, vlen, "chunked");
            }
            break;
        default:
            break;
        }
        p = eol + 1;
    }
    if (conn_close)
        r->keep_alive = false;
    else if (conn_keep && r->minor_version == 0)
        r->keep_alive = true;
    if (have_te && !r->chunked)
        return -1; /* a coding we cannot frame */
    if (have_te)
        r->content_length = -1; /* Transfer-Encoding overrides Content-Length */
    return 0;
}

static int64_t done(sk_loadgen_resp_t *r, char *buf, size_t total, size_t body_len)
{
    r->body = buf + r->head_len;
    r->body_len = body_len;
    return (int64_t)total;
}

int64_t sk_loadgen_resp_parse(sk_loadgen_resp_t *r, char *buf, size_t len)
{
    if (r->state == ST_HEAD) {
        /* Resume a little before where the last scan stopped, since "\r\n\r\n" may
         * straddle the previous end of data. */
        size_t i = r->scan > 3 ? r->scan - 3 : 0;
        size_t head_len = 0;
        while (i < len) {
            const char *nl = memchr(buf + i, '\n', len - i);
            if (!nl)
                break;
            size_t at = (size_t)(nl - buf);
            if (at + 1 < len && buf[at + 1] == '\n') {
                head_len = at + 2;
                break;
            }
            if (at + 2 < len && buf[at + 1] == '\r' && buf[at + 2] == '\n') {
                head_len = at + 3;
                break;
            }
            if (at + 2 >= len) {
                i = at;
                break;
            }
            i = at + 1;
        }
        if (head_len == 0) {
            r->scan = len;
            if (len > SK_LOADGEN_RESP_MAX_HEAD)
                return -1;
            if (len >= 5 && memcmp(buf, "HTTP/", 5) != 0)
                return -1;
            return -2;
        }
        if (parse_head(r, buf, head_len) < 0)
            return -1;
        r->head_len = head_len;
        if (r->status < 200 || r->status == 204 || r->status == 304) {
            r->content_length = 0;
            r->chunked = false;
        }
        if (r->chunked) {
            r->state = ST_CHUNK_SIZE;
            r->pos = head_len;
        } else if (r->content_length >= 0) {
            r->state = ST_BODY_LENGTH;
        } else {
            r->state = ST_BODY_CLOSE;
            r->keep_alive = false;
        }
    }

    switch (r->state) {
    case ST_BODY_LENGTH:
        if (len - r->head_len < (uint64_t)r->content_length)
            return -2;
        return done(r, buf, r->head_len + (size_t)r->content_length, (size_t)r->content_length);
    case ST_BODY_CLOSE:
        return -2;
    default:
        break;
    }

    /* Chunked: decode in place, moving each chunk's data down over the chunk headers
     * already read. The decoded body always ends at or before r->pos. */
    for (;;) {
        switch (r->state) {
        case ST_CHUNK_SIZE: {
            const char *nl = memchr(buf + r->pos, '\n', len - r->pos);
            if (!nl)
                return len - r->pos > 1024 ? -1 : -2;
            const char *p = buf + r->pos;
            uint64_t size = 0;
            int digits = 0;
            for (; p < nl; p++) {
                int c = lower((unsigned char)*p), d;
                if (c >= '0' && c <= '9')
                    d = c - '0';
                else if (c >= 'a' && c <= 'f')
                    d = c - 'a' + 10;
                else
                    break;
                if (++digits > 15)
                    return -1;
                size = size * 16 + (uint64_t)d;
            }
            if (digits == 0 || (p < nl && *p != ';' && *p != '\r' && *p != ' ' && *p != '\t'))
                return -1;
            r->pos = (size_t)(nl - buf) + 1;
            if (size == 0) {
                r->state = ST_TRAILERS;
            } else {
                r->chunk_left = size;
                r->state = ST_CHUNK_DATA;
            }
            break;
        }
        case ST_CHUNK_DATA: {
            size_t avail = len - r->pos;
            if (avail == 0)
                return -2;
            size_t n = avail < r->chunk_left ? avail : (size_t)r->chunk_left;
            memmove(buf + r->head_len + r->out, buf + r->pos, n);
            r->out += n;
            r->pos += n;
            r->chunk_left -= n;
            if (r->chunk_left > 0)
                return -2;
            r->state = ST_CHUNK_CRLF;
            break;
        }
        case ST_CHUNK_CRLF:
            if (len - r->pos < 1)
                return -2;
            if (buf[r->pos] == '\n') {
                r->pos += 1;
            } else {
                if (len - r->pos < 2)
                    return -2;
                if (buf[r->pos] != '\r' || buf[r->pos + 1] != '\n')
                    return -1;
                r->pos += 2;
            }
            r->state = ST_CHUNK_SIZE;
            break;
        case ST_TRAILERS: {
            /* Trailer lines are skipped up to the empty line. */
            const char *nl = memchr(buf + r->pos, '\n', len - r->pos);
            if (!nl)
                return len - r->pos > 8192 ? -1 : -2;
            size_t line = (size_t)(nl - buf) - r->pos;
            bool empty = line == 0 || (line == 1 && buf[r->pos] == '\r');
            r->pos = (size_t)(nl - buf) + 1;
            if (empty)
                return done(r, buf, r->pos, r->out);
            break;
        }
        default:
            return -1;
        }
    }
}

int64_t sk_loadgen_resp_eof(sk_loadgen_resp_t *r, char *buf, size_t len)
{
    if (r->state == ST_HEAD) {
        int64_t rc = sk_loadgen_resp_parse(r, buf, len);
        if (rc != -2 || r->state != ST_BODY_CLOSE)
            return rc > 0 ? rc : -1;
    }
    if (r->state != ST_BODY_CLOSE)
        return -1;
    return done(r, buf, len, len - r->head_len);
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

int sk_loadgen_json_scan(const char *json, size_t len, const char *key, const char **val, size_t *val_len)
{
    size_t klen = strlen(key);
    const char *p = json, *end = json + len;
    while (p < end) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return 0;
        q++;
        /* Find the closing quote of this string, honouring backslash escapes. */
        const char *s = q;
        while (s < end && *s != '"') {
            if (*s == '\\')
                s++;
            s++;
        }
        if (s >= end)
            return 0;
        const char *after = skip_ws(s + 1, end);
        bool is_key = after < end && *after == ':';
        if (is_key && (size_t)(s - q) == klen && memcmp(q, key, klen) == 0) {
            const char *v = skip_ws(after + 1, end);
            if (v >= end)
                return 0;
            if (*v == '"') {
                const char *ve = v + 1;
                while (ve < end && *ve != '"') {
                    if (*ve == '\\')
                        ve++;
                    ve++;
                }
                if (ve >= end)
                    return 0;
                *val = v + 1;
                *val_len = (size_t)(ve - v - 1);
                return 1;
            }
            const char *ve = v;
            while (ve < end && *ve != ',' && *ve != '}' && *ve != ']' && *ve != ' ' && *ve != '\n' && *ve != '\r' &&
                   *ve != '\t')
                ve++;
            if (ve == v)
                return 0;
            *val = v;
            *val_len = (size_t)(ve - v);
            return 2;
        }
        /* Not our key: continue after this string (and skip a string value whole, so
         * a value equal to the key is never taken for it). */
        p = s + 1;
        if (is_key) {
            const char *v = skip_ws(after + 1, end);
            if (v < end && *v == '"') {
                const char *ve = v + 1;
                while (ve < end && *ve != '"') {
                    if (*ve == '\\')
                        ve++;
                    ve++;
                }
                p = ve < end ? ve + 1 : end;
            }
        }
    }
    return 0;
}
