/* Request bodies and fields: the purchase body (a JSON object or form fields, with a
 * fast path for the flat object every client sends), times (unix milliseconds or RFC
 * 3339) and form decoding. Bad input is never fatal: it is refused with the field at
 * fault, which the handler turns into a 400. */
#include "api/body.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http/parser.h"

/* ---- field errors ---------------------------------------------------------------------- */

int sk_api_field_error(sk_api_field_error_t *e, const char *field, const char *code, const char *fmt, ...)
{
    snprintf(e->field, sizeof(e->field), "%.64s", field);
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* What a JSON value is, for "not <this>" in a message. */
static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return "null";
    }
}

json_t *sk_api_load_object(const char *body, size_t len, bool *ints_as_real, sk_api_field_error_t *e)
{
    json_error_t jerr;
    *ints_as_real = false;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o && json_error_code(&jerr) == json_error_numeric_overflow) {
        *ints_as_real = true;
        o = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    }
    if (!o) {
        const char *what = json_error_code(&jerr) == json_error_numeric_overflow ? "a number is too large"
                           : json_error_code(&jerr) == json_error_duplicate_key  ? "a field is given twice"
                                                                                 : "not valid JSON";
        sk_api_field_error(e, "body", "bad_json", "the body must be a JSON object: %s (%s, at character %d)", what,
                           jerr.text, jerr.position);
        return NULL;
    }
    if (!json_is_object(o)) {
        sk_api_field_error(e, "body", "not_object", "the body must be a JSON object {...}, not %s", json_kind(o));
        json_decref(o);
        return NULL;
    }
    return o;
}

int sk_api_known_fields(json_t *o, const char *const *known, size_t n, const char *takes, sk_api_field_error_t *e)
{
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = strcmp(key, known[i]) == 0;
        if (!ok) {
            return sk_api_field_error(e, key, "unknown_field", "unknown field \"%.64s\": this body takes %s", key,
                                      takes);
        }
    }
    return 0;
}

int sk_api_json_int(const json_t *v, const char *field, int64_t min, int64_t max, bool ints_as_real, int64_t *out,
                    sk_api_field_error_t *e)
{
    if (!v)
        return sk_api_field_error(e, field, "required", "%s is required: a whole number from %lld to %lld", field,
                                  (long long)min, (long long)max);
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < min || i > max)
            return sk_api_field_error(e, field, "out_of_range", "%s must be from %lld to %lld; %lld is out of range",
                                      field, (long long)min, (long long)max, (long long)i);
        *out = i;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        bool whole = isfinite(d) && floor(d) == d;
        /* Read as a real only because some number of the body did not fit 64 bits. */
        if (whole && ints_as_real) {
            if (d < (double)min || d > (double)max)
                return sk_api_field_error(e, field, "out_of_range",
                                          "%s must be from %lld to %lld; %.15g is out of range", field, (long long)min,
                                          (long long)max, d);
            *out = (int64_t)d;
            return 0;
        }
        if (!whole)
            return sk_api_field_error(e, field, "not_integer", "%s must be a whole number from %lld to %lld, not %.15g",
                                      field, (long long)min, (long long)max, d);
        return sk_api_field_error(e, field, "not_integer",
                                  "%s must be a whole number from %lld to %lld written without a fraction or exponent, "
                                  "not %.15g",
                                  field, (long long)min, (long long)max, d);
    }
    if (json_is_string(v))
        return sk_api_field_error(
            e, field, "not_integer",
            "%s must be a whole number from %lld to %lld, not a string (\"%.40s\"): leave out the "
            "quotes",
            field, (long long)min, (long long)max, json_string_value(v));
    return sk_api_field_error(e, field, "not_integer", "%s must be a whole number from %lld to %lld, not %s", field,
                              (long long)min, (long long)max, json_kind(v));
}

#define SK_TIME_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z */

int sk_api_json_time(const json_t *v, const char *field, bool ints_as_real, int64_t *out, sk_api_field_error_t *e)
{
    if (!v)
        return sk_api_field_error(e, field, "required",
                                  "%s is required: unix milliseconds or an RFC 3339 time like 2030-01-02T03:04:05Z",
                                  field);
    if (json_is_string(v)) {
        if (sk_api_parse_time(json_string_value(v), json_string_length(v), out) == 0)
            return 0;
        return sk_api_field_error(e, field, "bad_format",
                                  "%s must be unix milliseconds or an RFC 3339 time like 2030-01-02T03:04:05Z or "
                                  "2030-01-02T11:04:05+08:00; \"%.64s\" is neither",
                                  field, json_string_value(v));
    }
    if (json_is_number(v))
        return sk_api_json_int(v, field, 0, SK_TIME_MAX, ints_as_real, out, e);
    return sk_api_field_error(e, field, "not_integer",
                              "%s must be unix milliseconds or an RFC 3339 time string, not %s", field, json_kind(v));
}

/* ---- ids in a purchase ----------------------------------------------------------------- */

/* Why an id of n bytes is refused (user_id: required; request_id: may be empty). */
static int id_error(sk_api_field_error_t *e, const char *field, const char *v, size_t n, bool required)
{
    const char *rule = required ? "1-64 printable ASCII characters, no spaces or quotes"
                                : "0-64 printable ASCII characters, no spaces or quotes";
    if (n == 0 && required)
        return sk_api_field_error(e, field, "required", "%s is required: %s", field, rule);
    if (n > SK_USER_MAX)
        return sk_api_field_error(e, field, "too_long", "%s must be %s; it has %zu characters", field, rule, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        const char *what = c == ' '                ? "a space"
                           : c == '"'              ? "a quote"
                           : c == '\\'             ? "a backslash"
                           : c < 0x20 || c == 0x7f ? "a control character"
                           : c >= 0x80             ? "a non-ASCII byte"
                                                   : NULL;
        if (what)
            return sk_api_field_error(e, field, "bad_format", "%s must be %s; it has %s at position %zu", field, rule,
                                      what, i + 1);
    }
    return sk_api_field_error(e, field, "bad_format", "%s must be %s", field, rule);
}

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

/* The hot path's JSON: a flat object whose values are strings without escapes (and a
 * quantity that is a small positive integer). Returns 1 when parsed, 0 when the body
 * needs the full parser, -1 when it is not JSON. *uk and *rk are NULL on entry, and
 * stay so for a key that is absent; *q is 0 on entry and stays so when absent. */
static int quick_json(const char *p, size_t n, const char **uk, size_t *ul, const char **rk, size_t *rl, uint32_t *q,
                      const char **ak, size_t *al)
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
        } else if (kl == 9 && memcmp(k, "admission", 9) == 0 && !*ak) {
            *ak = v;
            *al = vl;
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

#define QUANTITY_RULE "a whole number of units from 1 to 1000000 (all or nothing)"

/* A form value decoded into out (cap bytes with the NUL); an error names the field. */
static int form_field(const char *v, size_t n, char *out, size_t cap, size_t *len, const char *field,
                      sk_api_field_error_t *e)
{
    char big[512];
    int k = sk_api_form_decode(v, n, big, sizeof(big));
    if (k < 0 && n < sizeof(big))
        return sk_api_field_error(e, field, "bad_format",
                                  "%s is not a valid form value: a %% must be followed by two "
                                  "hex digits",
                                  field);
    if (k < 0 || (size_t)k + 1 > cap)
        return sk_api_field_error(e, field, "too_long", "%s must be at most %zu characters", field, cap - 1);
    memcpy(out, big, (size_t)k + 1);
    *len = (size_t)k;
    return 0;
}

/* An admission token as given: the token's alphabet (digits, '.', base64url), at most
 * SK_API_ADMISSION_MAX bytes; whether it is valid is the caller's check. */
static int admission_field(const char *v, size_t n, char *adm, size_t *adm_len, sk_api_field_error_t *e)
{
    if (n > SK_API_ADMISSION_MAX)
        return sk_api_field_error(e, "admission", "too_long", "admission must be at most %d characters; it has %zu",
                                  SK_API_ADMISSION_MAX, n);
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' ||
              c == '_'))
            return sk_api_field_error(e, "admission", "bad_format",
                                      "admission must be the token the waiting room gave (digits, letters, '.', '-', "
                                      "'_')");
    }
    memcpy(adm, v, n);
    adm[n] = '\0';
    *adm_len = n;
    return 0;
}

int sk_api_parse_purchase(const char *body, size_t len, bool form, char *user, size_t *user_len, char *req,
                          size_t *req_len, uint32_t *quantity, char *adm, size_t *adm_len, sk_api_field_error_t *e)
{
    *user_len = *req_len = *adm_len = 0;
    user[0] = req[0] = adm[0] = '\0';
    *quantity = 1;
    if (form) {
        const char *p = body, *end = body + len;
        while (p < end) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            const char *f = amp ? amp : end;
            const char *eq = memchr(p, '=', (size_t)(f - p));
            if (eq) {
                size_t kl = (size_t)(eq - p), vl = (size_t)(f - eq - 1);
                if (kl == 7 && memcmp(p, "user_id", 7) == 0) {
                    if (form_field(eq + 1, vl, user, SK_USER_MAX + 1, user_len, "user_id", e) < 0)
                        return -EINVAL;
                } else if (kl == 10 && memcmp(p, "request_id", 10) == 0) {
                    if (form_field(eq + 1, vl, req, SK_REQUEST_MAX + 1, req_len, "request_id", e) < 0)
                        return -EINVAL;
                } else if (kl == 8 && memcmp(p, "quantity", 8) == 0) {
                    char digits[16];
                    size_t dl;
                    int64_t v;
                    if (form_field(eq + 1, vl, digits, sizeof(digits), &dl, "quantity", e) < 0)
                        return sk_api_field_error(e, "quantity", "not_integer", "quantity must be " QUANTITY_RULE);
                    if (sk_parse_i64(digits, dl, INT64_MIN, INT64_MAX, &v) < 0 || digits[0] == '+')
                        return sk_api_field_error(e, "quantity", "not_integer",
                                                  "quantity must be " QUANTITY_RULE ", not \"%s\"", digits);
                    if (!quantity_ok(v))
                        return sk_api_field_error(e, "quantity", "out_of_range",
                                                  "quantity must be from 1 to 1000000; %lld is out of range",
                                                  (long long)v);
                    *quantity = (uint32_t)v;
                } else if (kl == 9 && memcmp(p, "admission", 9) == 0) {
                    char tok[SK_API_ADMISSION_MAX + 2];
                    size_t tl;
                    if (form_field(eq + 1, vl, tok, sizeof(tok), &tl, "admission", e) < 0 ||
                        admission_field(tok, tl, adm, adm_len, e) < 0)
                        return -EINVAL;
                }
            }
            p = f + 1;
        }
    } else {
        if (exact_json(body, len, user, user_len, req, req_len))
            return 0; /* the ids' alphabet and limits were checked on the way */
        const char *u = NULL, *r = NULL, *a = NULL;
        size_t ul = 0, rl = 0, al = 0;
        uint32_t qv = 0;
        int q = quick_json(body, len, &u, &ul, &r, &rl, &qv, &a, &al);
        if (q < 0) {
            /* Not JSON at all: the full parser says where. */
            bool as_real;
            json_t *o = sk_api_load_object(body, len, &as_real, e);
            json_decref(o);
            if (!o)
                return -EINVAL;
            return sk_api_field_error(e, "body", "bad_json", "the body must be one JSON object and nothing after it");
        }
        if (q == 0) {
            bool as_real;
            json_t *root = sk_api_load_object(body, len, &as_real, e);
            if (!root)
                return -EINVAL;
            static const char *const known[] = {"user_id", "request_id", "quantity", "admission"};
            int rc =
                sk_api_known_fields(root, known, SK_ARRAY_LEN(known), "user_id, request_id, quantity and admission", e);
            json_t *ju = json_object_get(root, "user_id"), *jr = json_object_get(root, "request_id"),
                   *jq = json_object_get(root, "quantity"), *ja = json_object_get(root, "admission");
            if (rc == 0 && ja && !json_is_string(ja))
                rc = sk_api_field_error(e, "admission", "not_string", "admission must be a string, not %s",
                                        json_kind(ja));
            if (rc == 0 && ja)
                rc = admission_field(json_string_value(ja), json_string_length(ja), adm, adm_len, e);
            int64_t qn = 1;
            if (rc == 0 && ju && !json_is_string(ju))
                rc = sk_api_field_error(e, "user_id", "not_string",
                                        "user_id must be a string of 1-64 printable ASCII characters, not %s",
                                        json_kind(ju));
            if (rc == 0 && jr && !json_is_string(jr))
                rc = sk_api_field_error(e, "request_id", "not_string",
                                        "request_id must be a string of 0-64 printable ASCII characters, not %s",
                                        json_kind(jr));
            if (rc == 0 && ju && json_string_length(ju) > SK_USER_MAX)
                rc = id_error(e, "user_id", json_string_value(ju), json_string_length(ju), true);
            if (rc == 0 && jr && json_string_length(jr) > SK_REQUEST_MAX)
                rc = id_error(e, "request_id", json_string_value(jr), json_string_length(jr), false);
            if (rc == 0 && jq)
                rc = sk_api_json_int(jq, "quantity", 1, SK_LIMIT_MAX, as_real, &qn, e);
            if (rc == 0) {
                if (ju) {
                    *user_len = json_string_length(ju);
                    memcpy(user, json_string_value(ju), *user_len + 1);
                }
                if (jr) {
                    *req_len = json_string_length(jr);
                    memcpy(req, json_string_value(jr), *req_len + 1);
                }
                *quantity = (uint32_t)qn;
            }
            json_decref(root);
            if (rc < 0)
                return rc;
        } else {
            if (ul > SK_USER_MAX)
                return id_error(e, "user_id", u, ul, true);
            if (rl > SK_REQUEST_MAX)
                return id_error(e, "request_id", r, rl, false);
            if (qv && !quantity_ok(qv))
                return sk_api_field_error(e, "quantity", "out_of_range",
                                          "quantity must be from 1 to 1000000; %u is out of range", qv);
            if (qv)
                *quantity = qv;
            if (a && admission_field(a, al, adm, adm_len, e) < 0)
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
    if (!sk_valid_user_id(user, *user_len))
        return id_error(e, "user_id", user, *user_len, true);
    if (!sk_valid_request_id(req, *req_len))
        return id_error(e, "request_id", req, *req_len, false);
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

/* A string member of a join body's pow object, of 1-64 printable ASCII characters. */
static int pow_member(json_t *o, const char *name, char *out, size_t *len, sk_api_field_error_t *e)
{
    json_t *v = json_object_get(o, name);
    char field[16];
    snprintf(field, sizeof(field), "pow.%s", name);
    if (!v)
        return sk_api_field_error(e, field, "required", "%s is required: the proof of work's %s", field, name);
    if (!json_is_string(v))
        return sk_api_field_error(e, field, "not_string", "%s must be a string, not %s", field, json_kind(v));
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n == 0 || n > 64)
        return sk_api_field_error(e, field, "out_of_range", "%s must be 1-64 characters; it has %zu", field, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return sk_api_field_error(e, field, "bad_format", "%s must be printable ASCII without spaces", field);
    memcpy(out, s, n + 1);
    *len = n;
    return 0;
}

int sk_api_parse_join(const char *body, size_t len, bool form, char *user, size_t *user_len, char *challenge,
                      size_t *cl, char *nonce, size_t *nl, bool *has_pow, sk_api_field_error_t *e)
{
    *user_len = *cl = *nl = 0;
    user[0] = challenge[0] = nonce[0] = '\0';
    *has_pow = false;
    if (form) {
        const char *p = body, *end = body + len;
        while (p < end) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            const char *f = amp ? amp : end;
            const char *eq = memchr(p, '=', (size_t)(f - p));
            if (eq) {
                size_t kl = (size_t)(eq - p), vl = (size_t)(f - eq - 1);
                if (kl == 7 && memcmp(p, "user_id", 7) == 0) {
                    if (form_field(eq + 1, vl, user, SK_USER_MAX + 1, user_len, "user_id", e) < 0)
                        return -EINVAL;
                } else if (kl == 9 && memcmp(p, "challenge", 9) == 0) {
                    if (form_field(eq + 1, vl, challenge, 65, cl, "pow.challenge", e) < 0)
                        return -EINVAL;
                    *has_pow = true;
                } else if (kl == 5 && memcmp(p, "nonce", 5) == 0) {
                    if (form_field(eq + 1, vl, nonce, 65, nl, "pow.nonce", e) < 0)
                        return -EINVAL;
                    *has_pow = true;
                }
            }
            p = f + 1;
        }
    } else {
        bool as_real;
        json_t *root = sk_api_load_object(body, len, &as_real, e);
        if (!root)
            return -EINVAL;
        static const char *const known[] = {"user_id", "pow"};
        int rc = sk_api_known_fields(root, known, SK_ARRAY_LEN(known), "user_id and pow", e);
        json_t *ju = json_object_get(root, "user_id"), *jp = json_object_get(root, "pow");
        if (rc == 0 && ju && !json_is_string(ju))
            rc = sk_api_field_error(e, "user_id", "not_string",
                                    "user_id must be a string of 1-64 printable ASCII characters, not %s",
                                    json_kind(ju));
        if (rc == 0 && ju && json_string_length(ju) > SK_USER_MAX)
            rc = id_error(e, "user_id", json_string_value(ju), json_string_length(ju), true);
        if (rc == 0 && ju) {
            *user_len = json_string_length(ju);
            memcpy(user, json_string_value(ju), *user_len + 1);
        }
        if (rc == 0 && jp && !json_is_null(jp)) {
            if (!json_is_object(jp))
                rc = sk_api_field_error(e, "pow", "not_object",
                                        "pow must be an object {\"challenge\": ..., \"nonce\": ...}, not %s",
                                        json_kind(jp));
            if (rc == 0)
                rc = pow_member(jp, "challenge", challenge, cl, e);
            if (rc == 0)
                rc = pow_member(jp, "nonce", nonce, nl, e);
            *has_pow = rc == 0;
        }
        json_decref(root);
        if (rc < 0)
            return rc;
    }
    if (*has_pow && (*cl == 0 || *nl == 0))
        return sk_api_field_error(e, *cl == 0 ? "pow.challenge" : "pow.nonce", "required",
                                  "a proof of work needs both its challenge and its nonce");
    if (!sk_valid_user_id(user, *user_len))
        return id_error(e, "user_id", user, *user_len, true);
    return 0;
}
