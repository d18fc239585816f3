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

/* The hot path's JSON: a flat object whose values are strings without escapes (and a
 * quantity that is a small positive integer). Returns 1 when parsed, 0 when the body
 * needs the full parser, -1 when it is not JSON. *uk and *rk are NULL on entry, and
 * stay so for a key that is absent; *q is 0 on entry and stays so when absent. */
static int quick_json(const char *p, size_t n, const char **uk, size_t *ul, const char **rk, size_t *rl, uint32_t *q)
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
        if (kl == 8 && memcmp(k, "quantity", 8) == 0 && !*q && p < end && *p >= '1' && *p <= '9') {
            /* Up to 6 digits, which the limit check below takes; anything longer, a
             * fraction or an exponent goes to the full parser. */
            uint32_t v = 0;
            int digits = 0;
            while (p < end && *p >= '0' && *p <= '9' && digits < 7) {
                v = v * 10 + (uint32_t)(*p++ - '0');
                digits++;
            }
            if (digits > 6 || (p < end && (*p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9'))))
                return 0;
            *q = v;
            goto next;
        }
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
    next:
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

/* A quantity: an integer from 1 to SK_LIMIT_MAX. */
static bool quantity_ok(int64_t v)
{
    return v >= 1 && v <= SK_LIMIT_MAX;
}

int sk_api_parse_purchase(const char *body, size_t len, bool form, char *user, size_t *user_len, char *req,
                          size_t *req_len, uint32_t *quantity, const char **field)
{
    *user_len = *req_len = 0;
    user[0] = req[0] = '\0';
    *quantity = 1;
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
                } else if (kl == 8 && memcmp(p, "quantity", 8) == 0) {
                    char digits[16];
                    int64_t v;
                    *field = "quantity";
                    if ((n = sk_api_form_decode(eq + 1, (size_t)(e - eq - 1), digits, sizeof(digits))) < 0 ||
                        sk_parse_i64(digits, (size_t)n, 1, SK_LIMIT_MAX, &v) < 0 || digits[0] == '-')
                        return -EINVAL;
                    *quantity = (uint32_t)v;
                }
            }
            p = e + 1;
        }
    } else {
        const char *u = NULL, *r = NULL;
        size_t ul = 0, rl = 0;
        uint32_t qv = 0;
        int q = quick_json(body, len, &u, &ul, &r, &rl, &qv);
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
                } else if (strcmp(key, "quantity") == 0) {
                    *field = "quantity";
                    if (!json_is_integer(val) || !quantity_ok(json_integer_value(val))) {
                        json_decref(root);
                        return -EINVAL;
                    }
                    *quantity = (uint32_t)json_integer_value(val);
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
            *field = "quantity";
            if (qv && !quantity_ok(qv))
                return -EINVAL;
            if (qv)
                *quantity = qv;
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

int sk_api_parse_one_string(const char *body, size_t len, const char *name, char *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    out[0] = '\0';
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len)
        return 1;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -EINVAL;
    if (!root || !json_is_object(root))
        goto out;
    const char *key;
    json_t *val;
    rc = 1;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, name) != 0 || !json_is_string(val) || json_string_length(val) + 1 > cap) {
            rc = -EINVAL;
            goto out;
        }
        *out_len = json_string_length(val);
        memcpy(out, json_string_value(val), *out_len + 1);
        rc = 0;
    }
out:
    json_decref(root);
    return rc;
}
