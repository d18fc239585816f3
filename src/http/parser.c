/* Strict HTTP/1.1 request-head parser (RFC 9112 §2-§7) and chunked body decoder.
 * Strictness is deliberate: every ambiguity a front proxy might read differently
 * (bare LF, obs-fold, whitespace before the colon, duplicate Content-Length, CL with TE)
 * is a 400, which closes the door on request smuggling. */
#include "http/parser.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "util/common.h"

/* tchar per RFC 9110 §5.6.2. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,
    ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0'] = 1,  ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1,  ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,
    ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,  ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1,
    ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1,  ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1,  ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,
    ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1,  ['z'] = 1,
};

#define FAIL(st, msg)                                                                                                  \
    do {                                                                                                               \
        req->error_status = (st);                                                                                      \
        req->error_message = (msg);                                                                                    \
        return -1;                                                                                                     \
    } while (0)

static inline int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* The scans below run over every byte of every request, the sold-out answer's included:
 * 16 bytes at a time where SSE2 is there (every x86-64), a byte at a time for the rest.
 * They only load 16 bytes while 16 remain, so input that ends at a guard page is safe. */

/* The first byte in [p, end) that is not a visible character (not in 0x21-0x7e): where
 * a request-target ends. Returns end when there is none. */
static inline const char *find_not_vchar(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i flip = _mm_set1_epi8((char)0x80);
    const __m128i lo = _mm_set1_epi8((char)(0x21 ^ 0x80)), hi = _mm_set1_epi8((char)(0x7e ^ 0x80));
    while (end - p >= 16) {
        /* Unsigned compares as signed ones on bytes with the top bit flipped. */
        __m128i x = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)p), flip);
        int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmplt_epi8(x, lo), _mm_cmpgt_epi8(x, hi)));
        if (m)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (p < end && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
        p++;
    return p;
}

/* The first control character (0x00-0x1f or 0x7f) in [p, end) other than a tab: where a
 * header line ends (at its CR), or where it is broken. Returns end when there is none. */
static inline const char *find_ctl(const char *p, const char *end)
{
    for (;;) {
#if defined(__SSE2__)
        const __m128i flip = _mm_set1_epi8((char)0x80), sp = _mm_set1_epi8((char)(0x20 ^ 0x80));
        const __m128i del = _mm_set1_epi8(0x7f);
        while (end - p >= 16) {
            __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)p);
            __m128i x = _mm_xor_si128(raw, flip);
            int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmplt_epi8(x, sp), _mm_cmpeq_epi8(raw, del)));
            if (m) {
                p += __builtin_ctz((unsigned)m);
                break;
            }
            p += 16;
        }
#endif
        while (p < end && (unsigned char)*p >= 0x20 && *p != 0x7f)
            p++;
        if (p == end || *p != '\t')
            return p;
        p++;
    }
}

/* Skips the bytes at p that are letters, digits or '-' (what nearly every header name is
 * made of; a subset of the token characters) while 16 bytes can be read before `lim`.
 * Returns where the run stops; the caller checks the rest byte by byte. */
static inline const char *skip_name_chars(const char *p, const char *lim)
{
#if defined(__SSE2__)
    const __m128i flip = _mm_set1_epi8((char)0x80);
    const __m128i a = _mm_set1_epi8((char)('a' ^ 0x80)), z = _mm_set1_epi8((char)('z' ^ 0x80));
    const __m128i d0 = _mm_set1_epi8((char)('0' ^ 0x80)), d9 = _mm_set1_epi8((char)('9' ^ 0x80));
    const __m128i dash = _mm_set1_epi8('-'), lc = _mm_set1_epi8(0x20);
    while (lim - p >= 16) {
        __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i x = _mm_xor_si128(raw, flip);
        __m128i l = _mm_xor_si128(_mm_or_si128(raw, lc), flip); /* letters folded to lower case */
        __m128i alpha = _mm_andnot_si128(_mm_or_si128(_mm_cmplt_epi8(l, a), _mm_cmpgt_epi8(l, z)), _mm_set1_epi8(-1));
        __m128i digit = _mm_andnot_si128(_mm_or_si128(_mm_cmplt_epi8(x, d0), _mm_cmpgt_epi8(x, d9)), _mm_set1_epi8(-1));
        int ok = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(alpha, digit), _mm_cmpeq_epi8(raw, dash)));
        if (ok != 0xffff)
            return p + __builtin_ctz((unsigned)~ok);
        p += 16;
    }
#else
    (void)lim;
#endif
    return p;
}

/* A header name of n bytes (n <= 24) equals the lower-case literal, ignoring case.
 * OR-ing 0x20 lower-cases letters and leaves '-' and digits alone; no other byte of a
 * valid name (a token) becomes a letter or '-' that way, so the test is exact for
 * literals made of letters, digits and '-'. */
static inline bool name_is(const char *s, const char *lit, size_t n)
{
    uint64_t a, b;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&a, s + i, 8);
        memcpy(&b, lit + i, 8);
        if ((a | 0x2020202020202020ull) != b)
            return false;
    }
    if (i < n) {
        /* The last 8 bytes again (n >= 8), or the short name byte by byte. */
        if (n >= 8) {
            memcpy(&a, s + n - 8, 8);
            memcpy(&b, lit + n - 8, 8);
            return (a | 0x2020202020202020ull) == b;
        }
        for (; i < n; i++)
            if (((unsigned char)s[i] | 0x20) != (unsigned char)lit[i])
                return false;
    }
    return true;
}

bool sk_http_token_eq(const char *s, size_t len, const char *lit)
{
    size_t i = 0;
    for (; i < len; i++) {
        if (lit[i] == '\0' || lower((unsigned char)s[i]) != lit[i])
            return false;
    }
    return lit[i] == '\0';
}

static sk_http_method_t method_id(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0)
            return SK_HTTP_GET;
        if (memcmp(m, "PUT", 3) == 0)
            return SK_HTTP_PUT;
        break;
    case 4:
        if (memcmp(m, "POST", 4) == 0)
            return SK_HTTP_POST;
        if (memcmp(m, "HEAD", 4) == 0)
            return SK_HTTP_HEAD;
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0)
            return SK_HTTP_PATCH;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0)
            return SK_HTTP_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0)
            return SK_HTTP_OPTIONS;
        break;
    }
    return SK_HTTP_OTHER;
}

/* Splits the request-target into path and query. Accepts origin-form, absolute-form
 * (RFC 9112 §3.2.2: a server MUST accept it) and asterisk-form for OPTIONS. */
static int split_target(sk_http_request_t *req)
{
    const char *t = req->target;
    size_t n = req->target_len;
    if (t[0] != '/') {
        if (n == 1 && t[0] == '*' && req->method == SK_HTTP_OPTIONS) {
            req->path = t;
            req->path_len = 1;
            return 0;
        }
        size_t skip;
        if (n > 7 && sk_http_token_eq(t, 7, "http://"))
            skip = 7;
        else if (n > 8 && sk_http_token_eq(t, 8, "https://"))
            skip = 8;
        else
            return -1;
        const char *slash = memchr(t + skip, '/', n - skip);
        const char *q = memchr(t + skip, '?', n - skip);
        if (slash == t + skip)
            return -1; /* empty authority */
        if (!slash || (q && q < slash)) {
            /* "http://host" or "http://host?x": the path is "/" (RFC 9112 §3.2.2) */
            static const char root[] = "/";
            req->path = root;
            req->path_len = 1;
            if (q) {
                req->query = q + 1;
                req->query_len = (size_t)(t + n - q - 1);
            }
            return 0;
        }
        n -= (size_t)(slash - t);
        t = slash;
    }
    const char *q = memchr(t, '?', n);
    req->path = t;
    if (q) {
        req->path_len = (size_t)(q - t);
        req->query = q + 1;
        req->query_len = n - req->path_len - 1;
    } else {
        req->path_len = n;
    }
    return 0;
}

/* Content-Length: 1*DIGIT, at most 18 digits so it fits an int64 without overflow. */
static int parse_content_length(const char *v, size_t n, int64_t *out)
{
    if (n == 0 || n > 18)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)v[i] - '0';
        if (d > 9)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* Walks a comma-separated token list (Connection header) and reports the tokens we act on. */
static void scan_connection(const char *v, size_t n, bool *close, bool *keep_alive)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (sk_http_token_eq(v + s, i - s, "close"))
            *close = true;
        else if (sk_http_token_eq(v + s, i - s, "keep-alive"))
            *keep_alive = true;
    }
}

int sk_http_parse_request(const char *buf, size_t len, sk_http_request_t *req)
{
    const char *p = buf, *end = buf + len;

    req->num_headers = 0;
    req->query = NULL;
    req->query_len = 0;
    req->error_status = 0;
    req->error_message = NULL;

    /* method */
    const char *s = p;
    while (p < end && tchar[(unsigned char)*p])
        p++;
    if (p == end)
        return -2;
    if (p == s || *p != ' ')
        FAIL(400, "malformed request line");
    req->method_str = s;
    req->method_len = (size_t)(p - s);
    req->method = method_id(s, req->method_len);
    p++;

    /* request-target: visible US-ASCII only */
    s = p;
    p = find_not_vchar(p, end);
    if (p == end)
        return -2;
    if (p == s || *p != ' ')
        FAIL(400, "malformed request target");
    req->target = s;
    req->target_len = (size_t)(p - s);
    p++;

    /* HTTP-version CRLF */
    if (end - p < 10) {
        static const char proto[] = "HTTP/";
        for (const char *q = p; q < end && q - p < 5; q++)
            if (*q != proto[q - p])
                FAIL(400, "malformed HTTP version");
        return -2;
    }
    if (memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' || p[7] > '9' ||
        p[8] != '\r' || p[9] != '\n')
        FAIL(400, "malformed HTTP version");
    if (p[5] != '1' || p[7] > '1')
        FAIL(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    req->minor_version = p[7] - '0';
    p += 10;

    if (split_target(req) < 0)
        FAIL(400, "malformed request target");

    /* header fields */
    for (;;) {
        if (p == end)
            return -2;
        if (*p == '\r') {
            if (p + 1 == end)
                return -2;
            if (p[1] != '\n')
                FAIL(400, "bare CR in header section");
            p += 2;
            break;
        }
        if (*p == ' ' || *p == '\t')
            FAIL(400, "obsolete line folding is not accepted");
        /* Where the line ends first: its CR (or the control character that breaks it).
         * The name stops at the first byte that is not a token character, and a control
         * character is not one, so a complete line bounds the name's scan by itself. */
        const char *eol = find_ctl(p, end);
        s = p;
        if (eol < end) {
            p = skip_name_chars(p, end);
            while (tchar[(unsigned char)*p])
                p++;
        } else {
            while (p < end && tchar[(unsigned char)*p])
                p++;
            if (p == end)
                return -2;
        }
        if (p == s || *p != ':')
            FAIL(400, "malformed header field name");
        if (req->num_headers == SK_HTTP_MAX_HEADERS)
            FAIL(431, "too many header fields");
        sk_http_header_t *h = &req->headers[req->num_headers++];
        h->name = s;
        h->name_len = (size_t)(p - s);
        p++;
        while (p < eol && (*p == ' ' || *p == '\t'))
            p++;
        s = p;
        p = eol;
        if (p == end)
            return -2;
        if (*p != '\r')
            FAIL(400, *p == '\n' ? "bare LF in header section" : "control character in header field");
        if (p + 1 == end)
            return -2;
        if (p[1] != '\n')
            FAIL(400, "bare CR in header section");
        const char *ve = p;
        while (ve > s && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        h->value = s;
        h->value_len = (size_t)(ve - s);
        p += 2;
    }

    /* semantics */
    bool conn_close = false, conn_keep = false, seen_cl = false, seen_te = false;
    req->content_length = -1;
    req->chunked = false;
    req->expect_continue = false;
    req->content_type = NULL;
    req->content_type_len = 0;
    req->host = NULL;
    req->host_len = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const sk_http_header_t *h = &req->headers[i];
        switch (h->name_len) {
        case 4:
            if (name_is(h->name, "host", 4)) {
                if (req->host)
                    FAIL(400, "duplicate Host header");
                req->host = h->value;
                req->host_len = h->value_len;
            }
            break;
        case 6:
            if (name_is(h->name, "expect", 6)) {
                if (!sk_http_token_eq(h->value, h->value_len, "100-continue")) {
                    req->error_status = 417;
                    req->error_message = "only Expect: 100-continue is supported";
                    return -1;
                }
                /* RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0
                 * request MUST be ignored (1.0 clients cannot handle a 1xx answer). */
                req->expect_continue = req->minor_version == 1;
            }
            break;
        case 10:
            if (name_is(h->name, "connection", 10))
                scan_connection(h->value, h->value_len, &conn_close, &conn_keep);
            break;
        case 12:
            if (name_is(h->name, "content-type", 12)) {
                req->content_type = h->value;
                req->content_type_len = h->value_len;
            }
            break;
        case 14:
            if (name_is(h->name, "content-length", 14)) {
                if (seen_cl)
                    FAIL(400, "duplicate Content-Length header");
                seen_cl = true;
                if (parse_content_length(h->value, h->value_len, &req->content_length) < 0)
                    FAIL(400, "invalid Content-Length");
            }
            break;
        case 17:
            if (name_is(h->name, "transfer-encoding", 17)) {
                if (seen_te)
                    FAIL(400, "duplicate Transfer-Encoding header");
                seen_te = true;
                if (!sk_http_token_eq(h->value, h->value_len, "chunked"))
                    FAIL(501, "only Transfer-Encoding: chunked is supported");
                req->chunked = true;
            }
            break;
        }
    }
    if (seen_te && seen_cl)
        FAIL(400, "both Content-Length and Transfer-Encoding");
    if (seen_te && req->minor_version == 0)
        FAIL(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (req->minor_version == 1 && !req->host)
        FAIL(400, "missing Host header");
    req->keep_alive = req->minor_version == 1 ? !conn_close : (conn_keep && !conn_close);
    return (int)(p - buf);
}

/* Both sides are folded: the header promises a case-insensitive lookup, and a caller
 * writing "Content-Type" must not silently get NULL. */
static bool name_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

const sk_http_header_t *sk_http_find_header(const sk_http_request_t *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++)
        if (req->headers[i].name_len == n && name_eq(req->headers[i].name, name, n))
            return &req->headers[i];
    return NULL;
}

enum {
    CH_SIZE = 0, /* reading hex digits of the chunk size */
    CH_EXT, /* skipping a chunk extension up to CR */
    CH_SIZE_LF, /* expecting LF after the size line */
    CH_DATA, /* copying chunk data */
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_START, /* at the start of a trailer line (or the final CRLF) */
    CH_TRAILER, /* inside a trailer line */
    CH_TRAILER_LF, /* expecting LF after a trailer line */
    CH_END_LF, /* expecting the LF of the final CRLF */
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

ssize_t sk_http_decode_chunked(sk_http_chunked_t *d, char *buf, size_t *len)
{
    size_t src = 0, dst = 0, n = *len;
    while (src < n) {
        char c = buf[src];
        switch (d->state) {
        case CH_SIZE: {
            int v = hexval((unsigned char)c);
            if (v >= 0) {
                if (++d->hex_digits > 15) /* 2^60 is past any body we accept */
                    return -1;
                d->chunk_left = d->chunk_left * 16 + (uint64_t)v;
                src++;
                break;
            }
            if (d->hex_digits == 0)
                return -1;
            if (c == ';' || c == ' ' || c == '\t') {
                d->state = CH_EXT;
            } else if (c == '\r') {
                d->state = CH_SIZE_LF;
            } else {
                return -1;
            }
            src++;
            break;
        }
        case CH_EXT:
            if (c == '\r')
                d->state = CH_SIZE_LF;
            else if (c == '\n' || (c != '\t' && (unsigned char)c < 0x20))
                return -1;
            src++;
            break;
        case CH_SIZE_LF:
            if (c != '\n')
                return -1;
            src++;
            d->hex_digits = 0;
            d->state = d->chunk_left ? CH_DATA : CH_TRAILER_START;
            break;
        case CH_DATA: {
            size_t take = (size_t)SK_MIN((uint64_t)(n - src), d->chunk_left);
            memmove(buf + dst, buf + src, take);
            dst += take;
            src += take;
            d->total += take;
            d->chunk_left -= take;
            if (d->chunk_left == 0)
                d->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (c != '\r')
                return -1;
            d->state = CH_DATA_LF;
            src++;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                return -1;
            d->state = CH_SIZE;
            src++;
            break;
        case CH_TRAILER_START:
            if (c == '\r') {
                d->state = CH_END_LF;
            } else if (c == '\n' || c == ' ' || c == '\t') {
                return -1;
            } else {
                d->state = CH_TRAILER;
            }
            src++;
            break;
        case CH_TRAILER:
            if (c == '\r')
                d->state = CH_TRAILER_LF;
            else if (c == '\n' || (c != '\t' && (unsigned char)c < 0x20))
                return -1;
            src++;
            break;
        case CH_TRAILER_LF:
            if (c != '\n')
                return -1;
            d->state = CH_TRAILER_START;
            src++;
            break;
        case CH_END_LF: {
            if (c != '\n')
                return -1;
            src++;
            size_t rest = n - src;
            memmove(buf + dst, buf + src, rest);
            *len = dst;
            return (ssize_t)rest;
        }
        }
    }
    *len = dst;
    return -2;
}
