/* libFuzzer target for the purchase body parser (src/api/body.c), JSON and form.
 * A body carries user_id, request_id and an optional quantity (1 to SK_LIMIT_MAX).
 *
 * Every input is parsed twice, as JSON and as form fields, each time from an
 * exact-size heap copy (ASan sees a read past the end). Beyond "no crash", it checks
 * the parser against independent oracles:
 *  - the contract: 0 or -EINVAL; a code, a message and a field name out of five (or
 *    the unknown member's) on failure; on success two
 *    NUL-terminated ids of the lengths reported, valid by sk_valid_user_id and
 *    sk_valid_request_id, and a quantity from 1 to SK_LIMIT_MAX;
 *  - JSON: the answer is the one jansson gives on the whole body (an object with no
 *    duplicate keys, no key but user_id, request_id, quantity and admission, string
 *    values that are valid ids, an integer quantity in range, an admission of at most
 *    64 token characters), whether the hand-written fast path
 *    or jansson itself parsed it;
 *  - form: the answer is the one of the plain reference decoder below (pairs split on
 *    '&', the last user_id / request_id / quantity wins, '+' is a space, %XX a byte,
 *    nothing else escaped; a quantity is 1-15 decimal digits worth 1 to SK_LIMIT_MAX);
 *  - whether a body is read as a form (sk_api_is_form) depends on its first
 *    non-blank byte and the declared type only. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/body.h"

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            fprintf(stderr, "check failed at %s:%d: %s\n", __FILE__, __LINE__, #c);                                    \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

typedef struct {
    int rc;
    sk_api_field_error_t fe;
    char user[SK_USER_MAX + 1], req[SK_REQUEST_MAX + 1];
    size_t ul, rl;
    uint32_t q;
    char adm[SK_API_ADMISSION_MAX + 1];
    size_t al;
} result_t;

/* The admission token's alphabet: digits, letters, '.', '-', '_'. */
static bool token_chars(const char *s, size_t n)
{
    if (n > SK_API_ADMISSION_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' ||
              c == '_'))
            return false;
    }
    return true;
}

static result_t parse(const uint8_t *data, size_t size, bool form)
{
    char *buf = malloc(size ? size : 1);
    CHECK(buf != NULL);
    if (size)
        memcpy(buf, data, size);
    result_t r;
    memset(&r, 0x5a, sizeof(r)); /* the parser must write what it reports */
    r.rc = sk_api_parse_purchase(buf, size, form, r.user, &r.ul, r.req, &r.rl, &r.q, r.adm, &r.al, &r.fe);
    free(buf);
    CHECK(r.rc == 0 || r.rc == -EINVAL);
    if (r.rc == 0) {
        CHECK(r.ul <= SK_USER_MAX && r.rl <= SK_REQUEST_MAX);
        CHECK(strlen(r.user) == r.ul && strlen(r.req) == r.rl);
        CHECK(sk_valid_user_id(r.user, r.ul));
        CHECK(sk_valid_request_id(r.req, r.rl));
        CHECK(r.q >= 1 && r.q <= SK_LIMIT_MAX);
        CHECK(strlen(r.adm) == r.al && token_chars(r.adm, r.al));
    } else {
        CHECK(r.fe.code != NULL && r.fe.message[0] != '\0');
        CHECK(strcmp(r.fe.code, "unknown_field") == 0 || strcmp(r.fe.field, "body") == 0 ||
              strcmp(r.fe.field, "user_id") == 0 || strcmp(r.fe.field, "request_id") == 0 ||
              strcmp(r.fe.field, "quantity") == 0 || strcmp(r.fe.field, "admission") == 0);
    }
    return r;
}

/* What jansson makes of the body: 0 with the ids and quantity filled in, or -EINVAL. */
static int json_oracle(const uint8_t *data, size_t size, char *user, char *req, uint32_t *q, char *adm)
{
    adm[0] = '\0';
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -EINVAL;
    user[0] = req[0] = '\0';
    *q = 1;
    if (!root || !json_is_object(root))
        goto out;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        char *dst;
        size_t max;
        if (strcmp(key, "user_id") == 0) {
            dst = user;
            max = SK_USER_MAX;
        } else if (strcmp(key, "request_id") == 0) {
            dst = req;
            max = SK_REQUEST_MAX;
        } else if (strcmp(key, "quantity") == 0) {
            if (!json_is_integer(val) || json_integer_value(val) < 1 || json_integer_value(val) > SK_LIMIT_MAX)
                goto out;
            *q = (uint32_t)json_integer_value(val);
            continue;
        } else if (strcmp(key, "admission") == 0) {
            if (!json_is_string(val) || !token_chars(json_string_value(val), json_string_length(val)))
                goto out;
            memcpy(adm, json_string_value(val), json_string_length(val) + 1);
            continue;
        } else {
            goto out;
        }
        if (!json_is_string(val) || json_string_length(val) > max)
            goto out;
        memcpy(dst, json_string_value(val), json_string_length(val) + 1);
    }
    if (sk_valid_user_id(user, strlen(user)) && sk_valid_request_id(req, strlen(req)))
        rc = 0;
out:
    json_decref(root);
    return rc;
}

static int hex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes one form value into dst (at most max bytes, *len of them); false when it
 * cannot. */
static bool form_value(const uint8_t *s, size_t n, char *dst, size_t max, size_t *len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (n - i < 3 || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0)
                return false;
            c = hex(s[i + 1]) * 16 + hex(s[i + 2]);
            i += 2;
        }
        if (o == max)
            return false;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    *len = o;
    return true;
}

static int form_oracle(const uint8_t *data, size_t size, char *user, char *req, uint32_t *q, char *adm)
{
    user[0] = req[0] = adm[0] = '\0';
    *q = 1;
    size_t ul = 0, rl = 0, start = 0;
    while (start < size) {
        size_t end = start;
        while (end < size && data[end] != '&')
            end++;
        size_t eq = start;
        while (eq < end && data[eq] != '=')
            eq++;
        if (eq < end) {
            const uint8_t *k = data + start, *v = data + eq + 1;
            size_t kl = eq - start, vl = end - eq - 1;
            if (kl == 7 && memcmp(k, "user_id", 7) == 0 && !form_value(v, vl, user, SK_USER_MAX, &ul))
                return -EINVAL;
            if (kl == 10 && memcmp(k, "request_id", 10) == 0 && !form_value(v, vl, req, SK_REQUEST_MAX, &rl))
                return -EINVAL;
            if (kl == 9 && memcmp(k, "admission", 9) == 0) {
                char tok[SK_API_ADMISSION_MAX + 2];
                size_t tl;
                if (!form_value(v, vl, tok, SK_API_ADMISSION_MAX + 1, &tl) || !token_chars(tok, tl))
                    return -EINVAL;
                memcpy(adm, tok, tl + 1);
            }
            if (kl == 8 && memcmp(k, "quantity", 8) == 0) {
                char digits[16];
                size_t dl;
                if (!form_value(v, vl, digits, 15, &dl) || dl == 0)
                    return -EINVAL;
                uint64_t n = 0;
                for (size_t i = 0; i < dl; i++) {
                    if (digits[i] < '0' || digits[i] > '9')
                        return -EINVAL;
                    n = n * 10 + (uint64_t)(digits[i] - '0');
                }
                if (n < 1 || n > SK_LIMIT_MAX)
                    return -EINVAL;
                *q = (uint32_t)n;
            }
        }
        start = end + 1;
    }
    /* The lengths, not strlen: a decoded %00 is part of the id (and makes it invalid). */
    return sk_valid_user_id(user, ul) && sk_valid_request_id(req, rl) ? 0 : -EINVAL;
}

static void check_is_form(const uint8_t *data, size_t size)
{
    static const char form_type[] = "application/x-www-form-urlencoded";
    static const char form_type_params[] = "Application/X-WWW-Form-Urlencoded; charset=utf-8";
    sk_http_request_t req;
    memset(&req, 0, sizeof(req));
    size_t i = 0;
    while (i < size && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    bool object = i < size && data[i] == '{';
    CHECK(!sk_api_is_form(&req, (const char *)data, size));
    req.content_type = form_type;
    req.content_type_len = sizeof(form_type) - 1;
    CHECK(sk_api_is_form(&req, (const char *)data, size) == !object);
    req.content_type = form_type_params;
    req.content_type_len = sizeof(form_type_params) - 1;
    CHECK(sk_api_is_form(&req, (const char *)data, size) == !object);
    req.content_type = "application/json";
    req.content_type_len = 16;
    CHECK(!sk_api_is_form(&req, (const char *)data, size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char user[SK_USER_MAX + 1], req[SK_REQUEST_MAX + 1], adm[SK_API_ADMISSION_MAX + 2];
    uint32_t q;

    result_t j = parse(data, size, false);
    int want = json_oracle(data, size, user, req, &q, adm);
    CHECK(j.rc == want);
    if (want == 0) {
        CHECK(strcmp(j.user, user) == 0);
        CHECK(strcmp(j.req, req) == 0);
        CHECK(j.q == q);
        CHECK(strcmp(j.adm, adm) == 0);
    }

    result_t f = parse(data, size, true);
    want = form_oracle(data, size, user, req, &q, adm);
    CHECK(f.rc == want);
    if (want == 0) {
        CHECK(strcmp(f.user, user) == 0);
        CHECK(strcmp(f.req, req) == 0);
        CHECK(f.q == q);
        CHECK(strcmp(f.adm, adm) == 0);
    }

    check_is_form(data, size);
    return 0;
}
