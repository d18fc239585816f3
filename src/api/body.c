/* Request bodies and fields: the purchase body (a JSON object or form fields, with a
 * fast path for the flat object every client sends), times (unix milliseconds or RFC
 * 3339) and form decoding. Bad input is never fatal: it is refused with the field at
 * fault, which the handler turns into a 400. */
#include "api/body.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http/parser.h"

int sk_api_parse_time(const char *s, size_t n, int64_t *ms)
{
    if (n > 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) && memchr(s, 'T', n) == NULL &&
        memchr(s, ':', n) == NULL) {
        return sk_parse_i64(s, n, 0, 253402300799999LL, ms) == 0 ? 0 : -EINVAL;
    }
    /* RFC 3339: YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM) */
    char buf[64];
    if (n < 20 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    /* sscanf's %d also takes signs and leading spaces ("T-1:-1:-1"): insist on digits. */
    for (int i = 0; i < 19; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && !(buf[i] >= '0' && buf[i] <= '9'))
            return -EINVAL;
    int Y, M, D, h, m, sec, used = 0;
    if (sscanf(buf, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &used) != 6 || used != 19)
        return -EINVAL;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 || Y < 1970)
        return -EINVAL;
    const char *p = buf + 19;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0)
            return -EINVAL;
        while (digits++ < 3)
            frac *= 10;
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!(p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' && p[3] == ':' && p[4] >= '0' && p[4] <= '9' &&
              p[5] >= '0' && p[5] <= '9'))
            return -EINVAL;
        oh = (p[1] - '0') * 10 + (p[2] - '0');
        om = (p[4] - '0') * 10 + (p[5] - '0');
        if (oh > 23 || om > 59)
            return -EINVAL;
        offset = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p != '\0')
        return -EINVAL;
    struct tm tm = {
        .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec > 59 ? 59 : sec};
    time_t t = timegm(&tm);
    /* timegm rolls a day past the month's end into the next month (Feb 30 = Mar 1). */
    if (t == (time_t)-1 || tm.tm_mday != D)
        return -EINVAL;
    *ms = ((int64_t)t - offset * 60) * 1000 + frac;
    return 0;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes a form value into out (cap bytes incl. NUL). Returns length or -1. */
int sk_api_form_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int a = hexv(s[i + 1]), b = hexv(s[i + 2]);
            if (a < 0 || b < 0)
                return -1;
            c = (char)(a * 16 + b);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

/* Bytes of a user or request id: printable ASCII without spaces, quotes or backslashes
 * (sk_valid_user_id's alphabet). */
static const unsigned char id_char[256] = {
#define R4(c) [c] = 1, [c + 1] = 1, [c + 2] = 1, [c + 3] = 1
#define R16(c) R4(c), R4(c + 4), R4(c + 8), R4(c + 12)
    [0x21] = 1, R4(0x23),  R4(0x27), R4(0x2b), R4(0x2f), R16(0x33), R16(0x43),  R4(0x53),   R4(0x57),
    [0x5b] = 1, R16(0x5d), R4(0x6d), R4(0x71), R4(0x75), R4(0x79),  [0x7d] = 1, [0x7e] = 1,
#undef R16
#undef R4
};

/* Scans an id at p (at most max bytes of the ids' alphabet) up to its closing quote.
 * Returns its length, or -1 when it is longer, holds another byte, or is cut off. */
static int scan_id(const char *p, const char *end, size_t max)
{
    const char *s = p;
    while (p < end && id_char[(unsigned char)*p])
        p++;
    if (p == end || *p != '"' || (size_t)(p - s) > max)
        return -1;
    return (int)(p - s);
}

/* The body every client sends, byte for byte: {"user_id":"...","request_id":"..."} or
 * {"user_id":"..."}, ids of the ids' alphabet within their limits, nothing after but
 * whitespace. Fills user and req and returns true only for that shape; anything else
 * (other spacing or order, escapes, bad ids) goes the longer way, which accepts or
 * refuses it with the field at fault. */
static bool exact_json(const char *p, size_t n, char *user, size_t *user_len, char *req, size_t *req_len)
{
    static const char uk[] = "{\"user_id\":\"", rk[] = ",\"request_id\":\"";
    const char *end = p + n;
    if (n < sizeof(uk) - 1 + 3 || memcmp(p, uk, sizeof(uk) - 1) != 0)
        return false;
    p += sizeof(uk) - 1;
    int ul = scan_id(p, end, SK_USER_MAX);
    if (ul <= 0)
        return false;
    const char *u = p;
    p += ul + 1;
    const char *r = p;
    int rl = 0;
    if ((size_t)(end - p) > sizeof(rk) - 1 && memcmp(p, rk, sizeof(rk) - 1) == 0) {
        p += sizeof(rk) - 1;
        r = p;
        if ((rl = scan_id(p, end, SK_REQUEST_MAX)) < 0)
            return false;
        p += rl + 1;
    }
    if (p == end || *p != '}')
        return false;
    for (p++; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return false;
    memcpy(user, u, (size_t)ul);
    user[ul] = '\0';
    *user_len = (size_t)ul;
    memcpy(req, r, (size_t)rl);
    req[rl] = '\0';
    *req_len = (size_t)rl;
    return true;
}

/* The hot path's JSON: a flat object whose values are strings without escapes. Returns
 * 1 when parsed, 0 when the body needs the full parser, -1 when it is not JSON. *uk and
 * *rk are NULL on entry, and stay so for a key that is absent. */
static int quick_json(const char *p, size_t n, const char **uk, size_t *ul, const char **rk, size_t *rl)
{
    const char *end = p + n;
#define WS()                                                                                                           \
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))                                           \
    p++
    WS();
    if (p == end || *p != '{')
        return -1;
    p++;
    WS();
    if (p < end && *p == '}')
        return 1;
    for (;;) {
        WS();
        if (p == end || *p != '"')
            return 0;
        const char *k = ++p;
        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p == end || *p == '\\')
            return 0;
        size_t kl = (size_t)(p - k);
        p++;
        WS();
        if (p == end || *p != ':')
            return 0;
        p++;
        WS();
        if (p == end || *p != '"')
            return 0;
        const char *v = ++p;
        while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            p++;
        if (p == end || *p != '"')
            return 0;
        size_t vl = (size_t)(p - v);
        p++;
        /* An unknown or repeated key: the full parser reports it (it refuses duplicate
         * keys, and the fast path must not answer otherwise). */
        if (kl == 7 && memcmp(k, "user_id", 7) == 0 && !*uk) {
            *uk = v;
            *ul = vl;
        } else if (kl == 10 && memcmp(k, "request_id", 10) == 0 && !*rk) {
            *rk = v;
            *rl = vl;
        } else {
            return 0;
        }
        WS();
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '}') {
            p++;
            WS();
            return p == end ? 1 : -1;
        }
        return 0;
    }
#undef WS
}

int sk_api_parse_purchase(const char *body, size_t len, bool form, char *user, size_t *user_len, char *req,
                          size_t *req_len, const char **field)
{
    *user_len = *req_len = 0;
    user[0] = req[0] = '\0';
    *field = "body";
    if (form) {
        const char *p = body, *end = body + len;
        while (p < end) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            const char *e = amp ? amp : end;
            const char *eq = memchr(p, '=', (size_t)(e - p));
            if (eq) {
                size_t kl = (size_t)(eq - p);
                int n;
                if (kl == 7 && memcmp(p, "user_id", 7) == 0) {
                    *field = "user_id";
                    if ((n = sk_api_form_decode(eq + 1, (size_t)(e - eq - 1), user, SK_USER_MAX + 1)) < 0)
                        return -EINVAL;
                    *user_len = (size_t)n;
                } else if (kl == 10 && memcmp(p, "request_id", 10) == 0) {
                    *field = "request_id";
                    if ((n = sk_api_form_decode(eq + 1, (size_t)(e - eq - 1), req, SK_REQUEST_MAX + 1)) < 0)
                        return -EINVAL;
                    *req_len = (size_t)n;
                }
            }
            p = e + 1;
        }
    } else {
        if (exact_json(body, len, user, user_len, req, req_len))
            return 0; /* the ids' alphabet and limits were checked on the way */
        const char *u = NULL, *r = NULL;
        size_t ul = 0, rl = 0;
        int q = quick_json(body, len, &u, &ul, &r, &rl);
        if (q < 0)
            return -EINVAL;
        if (q == 0) {
            json_error_t jerr;
            json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
            if (!root || !json_is_object(root)) {
                json_decref(root);
                return -EINVAL;
            }
            const char *key;
            json_t *val;
            json_object_foreach(root, key, val)
            {
                if (strcmp(key, "user_id") == 0) {
                    *field = "user_id";
                    if (!json_is_string(val) || json_string_length(val) > SK_USER_MAX) {
                        json_decref(root);
                        return -EINVAL;
                    }
                    *user_len = json_string_length(val);
                    memcpy(user, json_string_value(val), *user_len + 1);
                } else if (strcmp(key, "request_id") == 0) {
                    *field = "request_id";
                    if (!json_is_string(val) || json_string_length(val) > SK_REQUEST_MAX) {
                        json_decref(root);
                        return -EINVAL;
                    }
                    *req_len = json_string_length(val);
                    memcpy(req, json_string_value(val), *req_len + 1);
                } else {
                    *field = "body"; /* an unknown key */
                    json_decref(root);
                    return -EINVAL;
                }
            }
            json_decref(root);
        } else {
            *field = "user_id";
            if (ul > SK_USER_MAX)
                return -EINVAL;
            *field = "request_id";
            if (rl > SK_REQUEST_MAX)
                return -EINVAL;
            if (u) /* "{}" has no user_id: memcpy from NULL is undefined even for 0 bytes */
                memcpy(user, u, ul);
            user[ul] = '\0';
            *user_len = ul;
            if (r)
                memcpy(req, r, rl);
            req[rl] = '\0';
            *req_len = rl;
        }
    }
    *field = "user_id";
    if (!sk_valid_user_id(user, *user_len))
        return -EINVAL;
    *field = "request_id";
    if (!sk_valid_request_id(req, *req_len))
        return -EINVAL;
    return 0;
}

/* Form fields when declared as such, unless the body is plainly a JSON object (curl -d
 * labels everything as a form). */
bool sk_api_is_form(const sk_http_request_t *req, const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i < len && body[i] == '{')
        return false;
    return req->content_type && req->content_type_len >= 33 &&
           sk_http_token_eq(req->content_type, 33, "application/x-www-form-urlencoded");
}
