/* src/api/body.c: purchase bodies (JSON fast path, full JSON, form fields), form
 * decoding, the JSON-or-form decision, and times (unix milliseconds or RFC 3339). */
#include <errno.h>
#include <stdbool.h>

#include "api/body.h"
#include "engine/engine.h"
#include "test.h"

typedef struct {
    int rc;
    char user[SK_USER_MAX + 1];
    size_t ul;
    char req[SK_REQUEST_MAX + 1];
    size_t rl;
    uint32_t q;
    char adm[SK_API_ADMISSION_MAX + 1];
    size_t al;
    sk_api_field_error_t fe;
} parsed_t;

static parsed_t parse(const char *body, bool form)
{
    parsed_t p;
    memset(&p, 0, sizeof(p));
    p.rc = sk_api_parse_purchase(body, strlen(body), form, p.user, &p.ul, p.req, &p.rl, &p.q, p.adm, &p.al, &p.fe);
    return p;
}

/* Parses as JSON and as form-less input; the body must be rejected naming `field`. */
#define ASSERT_BAD(body, form, fld)                                                                                    \
    do {                                                                                                               \
        parsed_t p_ = parse(body, form);                                                                               \
        if (p_.rc != -EINVAL || strcmp(p_.fe.field, fld) != 0 || !p_.fe.code || !p_.fe.message[0]) {                   \
            SK_FAIL_AT("%s: rc %d field %s, want -EINVAL field %s", body, p_.rc, p_.rc ? p_.fe.field : "", fld);       \
        }                                                                                                              \
    } while (0)

#define ASSERT_OK(body, form, u, r)                                                                                    \
    do {                                                                                                               \
        parsed_t p_ = parse(body, form);                                                                               \
        if (p_.rc != 0) {                                                                                              \
            SK_FAIL_AT("%s: rc %d (field %s: %s)", body, p_.rc, p_.fe.field, p_.fe.message);                           \
        }                                                                                                              \
        ASSERT_MEM_STR(p_.user, p_.ul, u);                                                                             \
        ASSERT_MEM_STR(p_.req, p_.rl, r);                                                                              \
        ASSERT_EQ(strlen(p_.user), p_.ul);                                                                             \
        ASSERT_EQ(strlen(p_.req), p_.rl);                                                                              \
    } while (0)

static char *repeat(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

SK_TEST(test_json_fast_path)
{
    ASSERT_OK("{\"user_id\":\"u42\",\"request_id\":\"r-1\"}", false, "u42", "r-1");
    ASSERT_OK("{\"request_id\":\"r-1\",\"user_id\":\"u42\"}", false, "u42", "r-1");
    ASSERT_OK("{\"user_id\":\"u42\"}", false, "u42", "");
    ASSERT_OK(" \r\n\t{ \"user_id\" : \"u42\" , \"request_id\" : \"x\" }\n", false, "u42", "x");
    ASSERT_OK("{\"user_id\":\"a:b@c.d/e!~\"}", false, "a:b@c.d/e!~", "");
    /* The longest ids are fine; one byte more is not. */
    char u[SK_USER_MAX + 2], body[300];
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"request_id\":\"%s\"}", repeat(u, 'u', SK_USER_MAX),
             repeat((char[SK_REQUEST_MAX + 1]){0}, 'r', SK_REQUEST_MAX));
    parsed_t p = parse(body, false);
    ASSERT_EQ(p.rc, 0);
    ASSERT_EQ(p.ul, SK_USER_MAX);
    ASSERT_EQ(p.rl, SK_REQUEST_MAX);
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", repeat(u, 'u', SK_USER_MAX + 1));
    ASSERT_BAD(body, false, "user_id");
    char r[SK_REQUEST_MAX + 2];
    snprintf(body, sizeof(body), "{\"user_id\":\"u\",\"request_id\":\"%s\"}", repeat(r, 'r', SK_REQUEST_MAX + 1));
    ASSERT_BAD(body, false, "request_id");
    /* Every byte inside an id, in the exact shape clients send: accepted exactly when
     * the id is valid (the fast path checks the ids' alphabet itself). */
    for (int c = 1; c < 256; c++) {
        char id[4] = {'a', (char)c, 'b', '\0'};
        bool valid = sk_valid_user_id(id, 3);
        ASSERT_EQ(valid, sk_valid_request_id(id, 3));
        snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"request_id\":\"r\"}", id);
        p = parse(body, false);
        if ((p.rc == 0) != valid)
            SK_FAIL_AT("user id byte 0x%02x: rc %d, valid %d", c, p.rc, valid);
        if (valid)
            ASSERT_MEM_STR(p.user, p.ul, id);
        snprintf(body, sizeof(body), "{\"user_id\":\"u\",\"request_id\":\"%s\"}", id);
        p = parse(body, false);
        if ((p.rc == 0) != valid)
            SK_FAIL_AT("request id byte 0x%02x: rc %d, valid %d", c, p.rc, valid);
        if (valid)
            ASSERT_MEM_STR(p.req, p.rl, id);
    }
}

SK_TEST(test_json_full_parser)
{
    /* Escapes take the jansson path and are decoded. */
    ASSERT_OK("{\"user_id\":\"u\\u0034\\u0032\",\"request_id\":\"r\\/1\"}", false, "u42", "r/1");
    /* Non-string values, and keys after the fast path gave up. */
    ASSERT_OK("{\"user_id\":\"u\\u0031\"}", false, "u1", "");
    ASSERT_BAD("{\"user_id\":42}", false, "user_id");
    ASSERT_BAD("{\"user_id\":null}", false, "user_id");
    ASSERT_BAD("{\"user_id\":[\"u\"]}", false, "user_id");
    ASSERT_BAD("{\"user_id\":\"u\",\"request_id\":7}", false, "request_id");
    /* A decoded quote, backslash or control character is not a valid id. */
    ASSERT_BAD("{\"user_id\":\"a\\\"b\"}", false, "user_id");
    ASSERT_BAD("{\"user_id\":\"a\\\\b\"}", false, "user_id");
    ASSERT_BAD("{\"user_id\":\"a\\tb\"}", false, "user_id");
    ASSERT_BAD("{\"user_id\":\"a\\u0000b\"}", false, "body"); /* jansson refuses NUL */
    ASSERT_BAD("{\"user_id\":\"u\",\"request_id\":\"a\\nb\"}", false, "request_id");
    /* Too long after decoding. */
    char body[600], u[SK_USER_MAX + 2];
    snprintf(body, sizeof(body), "{\"user_id\":\"\\u0041%s\"}", repeat(u, 'u', SK_USER_MAX));
    ASSERT_BAD(body, false, "user_id");
    /* Raw control characters inside a string are not JSON. */
    ASSERT_BAD("{\"user_id\":\"a\tb\"}", false, "body");
    ASSERT_BAD("{\"user_id\":\"a\001b\"}", false, "body");
    /* Non-ASCII (valid UTF-8) is not allowed in ids. */
    ASSERT_BAD("{\"user_id\":\"\xe7\x94\xa8\xe6\x88\xb7\"}", false, "user_id");
    ASSERT_BAD("{\"user_id\":\"\xff\"}", false, "user_id"); /* not UTF-8 at all */
    ASSERT_BAD("{\"user_id\":\"u\",\"user_id\":\"v\",\"x\":1}", false, "body"); /* duplicate keys */
    /* ... also where the fast path alone could have read the body (found by fuzz_api_body). */
    ASSERT_BAD("{\"user_id\":\"u\",\"user_id\":\"v\"}", false, "body");
    ASSERT_BAD("{\"request_id\":\"r\",\"user_id\":\"u\",\"request_id\":\"r\"}", false, "body");
}

SK_TEST(test_json_unknown_and_malformed)
{
    ASSERT_BAD("{\"user_id\":\"u\",\"color\":\"red\"}", false, "color"); /* an unknown member: named */
    ASSERT_BAD("{\"user\":\"u\"}", false, "user");
    ASSERT_BAD("{\"user_id\":\"u\",\"qty\":2}", false, "qty");
    ASSERT_BAD("", false, "body");
    ASSERT_BAD("   ", false, "body");
    ASSERT_BAD("[\"u\"]", false, "body");
    ASSERT_BAD("\"u\"", false, "body");
    ASSERT_BAD("42", false, "body");
    ASSERT_BAD("null", false, "body");
    ASSERT_BAD("{", false, "body");
    ASSERT_BAD("{\"user_id\":\"u\"", false, "body");
    ASSERT_BAD("{\"user_id\":\"u\"} x", false, "body");
    ASSERT_BAD("{\"user_id\":\"u\"}{}", false, "body");
    ASSERT_BAD("{\"user_id\" \"u\"}", false, "body");
    ASSERT_BAD("{'user_id':'u'}", false, "body");
    ASSERT_BAD("user_id=u", false, "body"); /* a form body parsed as JSON */
}

SK_TEST(test_missing_user)
{
    ASSERT_BAD("{}", false, "user_id");
    ASSERT_BAD(" { } ", false, "user_id");
    ASSERT_BAD("{\"request_id\":\"r\"}", false, "user_id");
    ASSERT_BAD("{\"user_id\":\"\"}", false, "user_id");
    ASSERT_BAD("{\"user_id\":\"a b\"}", false, "user_id");
    ASSERT_BAD("{\"user_id\":\"u\",\"request_id\":\"a b\"}", false, "request_id");
    ASSERT_BAD("", true, "user_id");
    ASSERT_BAD("request_id=r", true, "user_id");
}

SK_TEST(test_form)
{
    ASSERT_OK("user_id=u42&request_id=r-1", true, "u42", "r-1");
    ASSERT_OK("request_id=r-1&user_id=u42", true, "u42", "r-1");
    ASSERT_OK("user_id=u42", true, "u42", "");
    ASSERT_OK("user_id=a%2Db%40c%3a", true, "a-b@c:", "");
    ASSERT_OK("x=1&user_id=u&submit", true, "u", ""); /* unknown fields and bare names are ignored */
    ASSERT_OK("user_id=u&request_id=", true, "u", "");
    ASSERT_OK("user_id=first&user_id=second", true, "second", "");
    ASSERT_BAD("user_id=a+b", true, "user_id"); /* '+' is a space */
    ASSERT_BAD("user_id=a%20b", true, "user_id");
    ASSERT_BAD("user_id=a%00b", true, "user_id");
    ASSERT_BAD("user_id=a%0Ab", true, "user_id");
    ASSERT_BAD("user_id=%22", true, "user_id");
    ASSERT_BAD("user_id=%zz", true, "user_id");
    ASSERT_BAD("user_id=abc%4", true, "user_id");
    ASSERT_BAD("user_id=abc%", true, "user_id");
    ASSERT_BAD("user_id=", true, "user_id");
    ASSERT_BAD("user_id=u&request_id=%ZZ", true, "request_id");
    ASSERT_BAD("user_id=u&request_id=a+b", true, "request_id");
    char body[400], u[SK_USER_MAX + 2];
    snprintf(body, sizeof(body), "user_id=%s", repeat(u, 'u', SK_USER_MAX));
    parsed_t p = parse(body, true);
    ASSERT_EQ(p.rc, 0);
    ASSERT_EQ(p.ul, SK_USER_MAX);
    snprintf(body, sizeof(body), "user_id=%s", repeat(u, 'u', SK_USER_MAX + 1));
    ASSERT_BAD(body, true, "user_id");
    /* 64 bytes once decoded, though the text is longer. */
    char enc[3 * SK_USER_MAX + 1];
    for (int i = 0; i < SK_USER_MAX; i++)
        memcpy(enc + 3 * i, "%41", 3);
    enc[3 * SK_USER_MAX] = '\0';
    snprintf(body, sizeof(body), "user_id=%s", enc);
    p = parse(body, true);
    ASSERT_EQ(p.rc, 0);
    ASSERT_EQ(p.ul, SK_USER_MAX);
    ASSERT_EQ(p.user[0], 'A');
    char r[SK_REQUEST_MAX + 2];
    snprintf(body, sizeof(body), "user_id=u&request_id=%s", repeat(r, 'r', SK_REQUEST_MAX + 1));
    ASSERT_BAD(body, true, "request_id");
}

SK_TEST(test_form_decode)
{
    char out[8];
    ASSERT_EQ(sk_api_form_decode("a+b%41%7e", 9, out, sizeof(out)), 5);
    ASSERT_STR_EQ(out, "a bA~");
    ASSERT_EQ(sk_api_form_decode("", 0, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "");
    ASSERT_EQ(sk_api_form_decode("%00", 3, out, sizeof(out)), 1); /* a NUL is kept, for the caller to refuse */
    ASSERT_EQ(out[0], '\0');
    ASSERT_EQ(sk_api_form_decode("1234567", 7, out, sizeof(out)), 7); /* exactly fits with the NUL */
    ASSERT_EQ(sk_api_form_decode("12345678", 8, out, sizeof(out)), -1);
    ASSERT_EQ(sk_api_form_decode("%4", 2, out, sizeof(out)), -1);
    ASSERT_EQ(sk_api_form_decode("%", 1, out, sizeof(out)), -1);
    ASSERT_EQ(sk_api_form_decode("%g0", 3, out, sizeof(out)), -1);
    /* Only the n bytes given are read: "%41" cut after "%4" is incomplete. */
    ASSERT_EQ(sk_api_form_decode("%41", 2, out, sizeof(out)), -1);
}

static bool is_form(const char *content_type, const char *body)
{
    sk_http_request_t req;
    memset(&req, 0, sizeof(req));
    req.content_type = content_type;
    req.content_type_len = content_type ? strlen(content_type) : 0;
    return sk_api_is_form(&req, body, strlen(body));
}

SK_TEST(test_is_form)
{
    const char *form = "application/x-www-form-urlencoded";
    ASSERT_TRUE(is_form(form, "user_id=u"));
    ASSERT_TRUE(is_form("Application/X-WWW-Form-URLEncoded; charset=UTF-8", "user_id=u"));
    ASSERT_TRUE(is_form(form, ""));
    ASSERT_TRUE(is_form(form, "[1]"));
    /* curl -d sends JSON labelled as a form: a body that is plainly an object is JSON. */
    ASSERT_TRUE(!is_form(form, "{\"user_id\":\"u\"}"));
    ASSERT_TRUE(!is_form(form, " \r\n\t{}"));
    ASSERT_TRUE(!is_form("application/json", "user_id=u"));
    ASSERT_TRUE(!is_form(NULL, "user_id=u"));
    ASSERT_TRUE(!is_form("application/x-www-form", "user_id=u"));
}

static int64_t t_ok(const char *s)
{
    int64_t ms = INT64_MIN;
    if (sk_api_parse_time(s, strlen(s), &ms) != 0)
        return INT64_MIN;
    return ms;
}

static int t_rc(const char *s)
{
    int64_t ms;
    return sk_api_parse_time(s, strlen(s), &ms);
}

#define ASSERT_TIME(s, want)                                                                                           \
    do {                                                                                                               \
        int64_t got_ = t_ok(s);                                                                                        \
        if (got_ != (int64_t)(want)) {                                                                                 \
            SK_FAIL_AT("parse_time(%s): %lld, want %lld", s, (long long)got_, (long long)(want));                      \
        }                                                                                                              \
    } while (0)

#define ASSERT_TIME_BAD(s)                                                                                             \
    do {                                                                                                               \
        if (t_rc(s) != -EINVAL) {                                                                                      \
            SK_FAIL_AT("parse_time(%s) accepted (%lld)", s, (long long)t_ok(s));                                       \
        }                                                                                                              \
    } while (0)

SK_TEST(test_time_unix_ms)
{
    ASSERT_TIME("0", 0);
    ASSERT_TIME("1700000000123", 1700000000123LL);
    ASSERT_TIME("253402300799999", 253402300799999LL);
    ASSERT_TIME_BAD("253402300800000");
    ASSERT_TIME_BAD("-1");
    ASSERT_TIME_BAD("");
    ASSERT_TIME_BAD("12e3");
    ASSERT_TIME_BAD("1.5");
    ASSERT_TIME_BAD("1700000000000 ");
    ASSERT_TIME_BAD(" 1700000000000");
    ASSERT_TIME_BAD("+1700000000000");
    ASSERT_TIME_BAD("0x10");
    ASSERT_TIME_BAD("99999999999999999999999");
}

SK_TEST(test_time_rfc3339)
{
    const int64_t t = 1704164645000LL; /* 2024-01-02T03:04:05Z */
    ASSERT_TIME("2024-01-02T03:04:05Z", t);
    ASSERT_TIME("2024-01-02t03:04:05z", t);
    ASSERT_TIME("2024-01-02 03:04:05Z", t);
    ASSERT_TIME("2024-01-02T03:04:05+00:00", t);
    ASSERT_TIME("2024-01-02T03:04:05-00:00", t);
    ASSERT_TIME("2024-01-02T11:04:05+08:00", t);
    ASSERT_TIME("2024-01-01T21:34:05-05:30", t);
    ASSERT_TIME("2024-01-02T03:04:05.5Z", t + 500);
    ASSERT_TIME("2024-01-02T03:04:05.05Z", t + 50);
    ASSERT_TIME("2024-01-02T03:04:05.123Z", t + 123);
    ASSERT_TIME("2024-01-02T03:04:05.123999Z", t + 123); /* finer than ms is cut, not rounded */
    ASSERT_TIME("2024-01-02T11:04:05.250+08:00", t + 250);
    ASSERT_TIME("2024-02-29T23:59:59Z", 1709251199000LL);
    ASSERT_TIME("1970-01-01T00:00:00Z", 0);
    ASSERT_TIME("2024-01-02T03:04:60Z", t + 54000); /* a leap second counts as :59 */
}

SK_TEST(test_time_garbage)
{
    ASSERT_TIME_BAD("tomorrow");
    ASSERT_TIME_BAD("2024-01-02");
    ASSERT_TIME_BAD("2024-01-02T03:04:05");
    ASSERT_TIME_BAD("2024-01-02T03:04Z");
    ASSERT_TIME_BAD("2024-01-02T03:04:05ZZ");
    ASSERT_TIME_BAD("2024-01-02T03:04:05Z ");
    ASSERT_TIME_BAD("2024-01-02T03:04:05.Z");
    ASSERT_TIME_BAD("2024-01-02T03:04:05+8:00");
    ASSERT_TIME_BAD("2024-01-02T03:04:05+0800");
    ASSERT_TIME_BAD("2024-01-02T03:04:05+24:00");
    ASSERT_TIME_BAD("2024-01-02T03:04:05+08:60");
    ASSERT_TIME_BAD("2024-01-02T03:04:05+08");
    ASSERT_TIME_BAD("2024-01-02X03:04:05Z");
    ASSERT_TIME_BAD("2024-13-02T03:04:05Z");
    ASSERT_TIME_BAD("2024-00-02T03:04:05Z");
    ASSERT_TIME_BAD("2024-01-00T03:04:05Z");
    ASSERT_TIME_BAD("2024-01-32T03:04:05Z");
    ASSERT_TIME_BAD("2024-02-30T03:04:05Z");
    ASSERT_TIME_BAD("2023-02-29T03:04:05Z");
    ASSERT_TIME_BAD("2024-04-31T03:04:05Z");
    ASSERT_TIME_BAD("2024-01-02T24:04:05Z");
    ASSERT_TIME_BAD("2024-01-02T03:60:05Z");
    ASSERT_TIME_BAD("2024-01-02T03:04:61Z");
    ASSERT_TIME_BAD("1969-12-31T23:59:59Z");
    ASSERT_TIME_BAD("2024-1-02T03:04:05Z");
    ASSERT_TIME_BAD("24-01-02T03:04:05Z");
    ASSERT_TIME_BAD("20240-01-02T03:04:05Z");
    /* Signs and spaces where digits belong. */
    ASSERT_TIME_BAD("2024-01-02T-1:-1:-1Z");
    ASSERT_TIME_BAD("2024-+1-02T03:04:05Z");
    ASSERT_TIME_BAD("2024-01- 2T03:04:05Z");
    ASSERT_TIME_BAD("+024-01-02T03:04:05Z");
    ASSERT_TIME_BAD("2024-01-02T03:04:05.12a3Z");
    char longer[200];
    memset(longer, '1', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    ASSERT_TIME_BAD(longer);
}

/* Each refusal names the field, the rule (a code) and what is wrong with the value. */
#define ASSERT_CODE(body, form, fld, cd, text)                                                                         \
    do {                                                                                                               \
        parsed_t p_ = parse(body, form);                                                                               \
        if (p_.rc != -EINVAL || strcmp(p_.fe.field, fld) != 0 || strcmp(p_.fe.code, cd) != 0 ||                        \
            !strstr(p_.fe.message, text))                                                                              \
            SK_FAIL_AT("%s: rc %d field %s code %s message \"%s\"; want %s %s \"%s\"", body, p_.rc, p_.fe.field,       \
                       p_.rc ? p_.fe.code : "", p_.fe.message, fld, cd, text);                                         \
    } while (0)

SK_TEST(test_field_codes)
{
    char big[200], body[300];
    ASSERT_CODE("{}", false, "user_id", "required", "user_id is required");
    ASSERT_CODE("{\"user_id\":\"\"}", false, "user_id", "required", "user_id is required");
    ASSERT_CODE("{\"user_id\":\"a b\"}", false, "user_id", "bad_format", "a space at position 2");
    ASSERT_CODE("{\"user_id\":\"a\\\"b\"}", false, "user_id", "bad_format", "a quote at position 2");
    ASSERT_CODE("{\"user_id\":\"\\u7968\"}", false, "user_id", "bad_format", "a non-ASCII byte at position 1");
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", repeat(big, 'u', 65));
    ASSERT_CODE(body, false, "user_id", "too_long", "it has 65 characters");
    ASSERT_CODE("{\"user_id\":42}", false, "user_id", "not_string", "not a number");
    ASSERT_CODE("{\"user_id\":\"u\",\"request_id\":[1]}", false, "request_id", "not_string", "not an array");
    ASSERT_CODE("{\"user_id\":\"u\",\"request_id\":\"a b\"}", false, "request_id", "bad_format", "0-64 printable");
    ASSERT_CODE("{\"user_id\":\"u\",\"quantity\":0}", false, "quantity", "out_of_range", "0 is out of range");
    ASSERT_CODE("{\"user_id\":\"u\",\"quantity\":1000001}", false, "quantity", "out_of_range",
                "1000001 is out of range");
    ASSERT_CODE("{\"user_id\":\"u\",\"quantity\":-5}", false, "quantity", "out_of_range", "-5 is out of range");
    ASSERT_CODE("{\"user_id\":\"u\",\"quantity\":1.5}", false, "quantity", "not_integer", "not 1.5");
    ASSERT_CODE("{\"user_id\":\"u\",\"quantity\":\"2\"}", false, "quantity", "not_integer", "not a string (\"2\")");
    ASSERT_CODE("{\"user_id\":\"u\",\"quantity\":true}", false, "quantity", "not_integer", "not true");
    /* A number too large for 64 bits: its field says so, not "the body is not an object". */
    ASSERT_CODE("{\"user_id\":\"u\",\"quantity\":123456789012345678901234567890}", false, "quantity", "out_of_range",
                "1.23456789012346e+29 is out of range");
    ASSERT_CODE("{\"user_id\":\"u\",\"color\":1}", false, "color", "unknown_field", "unknown field \"color\"");
    ASSERT_CODE("{\"user_id\":\"u\"", false, "body", "bad_json", "must be a JSON object");
    ASSERT_CODE("[1]", false, "body", "not_object", "not an array");
    ASSERT_CODE("{\"user_id\":\"u\",\"user_id\":\"v\"}", false, "body", "bad_json", "given twice");
    ASSERT_CODE("user_id=a%2", true, "user_id", "bad_format", "hex digits");
    ASSERT_CODE("user_id=u&quantity=x", true, "quantity", "not_integer", "not \"x\"");
    ASSERT_CODE("user_id=u&quantity=0", true, "quantity", "out_of_range", "0 is out of range");
    ASSERT_CODE("request_id=r", true, "user_id", "required", "user_id is required");
}

static json_t *load(const char *body, bool *real, sk_api_field_error_t *e)
{
    return sk_api_load_object(body, strlen(body), real, e);
}

SK_TEST(test_json_numbers)
{
    sk_api_field_error_t e;
    bool real;
    int64_t v;
    json_t *o = load("{\"a\":10,\"b\":1.5,\"c\":\"10\",\"d\":null,\"e\":1e3}", &real, &e);
    ASSERT_TRUE(o != NULL && !real);
    ASSERT_EQ(sk_api_json_int(json_object_get(o, "a"), "a", 1, 100, real, &v, &e), 0);
    ASSERT_EQ(v, 10);
    ASSERT_EQ(sk_api_json_int(json_object_get(o, "a"), "a", 1, 9, real, &v, &e), -EINVAL);
    ASSERT_STR_EQ(e.code, "out_of_range");
    ASSERT_STR_EQ(e.message, "a must be from 1 to 9; 10 is out of range");
    ASSERT_EQ(sk_api_json_int(json_object_get(o, "b"), "b", 1, 9, real, &v, &e), -EINVAL);
    ASSERT_STR_EQ(e.message, "b must be a whole number from 1 to 9, not 1.5");
    ASSERT_EQ(sk_api_json_int(json_object_get(o, "c"), "c", 1, 9, real, &v, &e), -EINVAL);
    ASSERT_STR_EQ(e.code, "not_integer");
    ASSERT_EQ(sk_api_json_int(json_object_get(o, "d"), "d", 1, 9, real, &v, &e), -EINVAL);
    ASSERT_TRUE(strstr(e.message, "not null") != NULL);
    ASSERT_EQ(sk_api_json_int(json_object_get(o, "e"), "e", 1, 9999, real, &v, &e), -EINVAL);
    ASSERT_TRUE(strstr(e.message, "without a fraction or exponent") != NULL);
    ASSERT_EQ(sk_api_json_int(NULL, "stock", 1, 9, real, &v, &e), -EINVAL);
    ASSERT_STR_EQ(e.code, "required");
    ASSERT_STR_EQ(e.field, "stock");
    json_decref(o);
    /* One integer beyond 64 bits: every number is read as a real, the small ones still whole. */
    o = load("{\"a\":10,\"b\":99999999999999999999}", &real, &e);
    ASSERT_TRUE(o != NULL && real);
    ASSERT_EQ(sk_api_json_int(json_object_get(o, "a"), "a", 1, 100, real, &v, &e), 0);
    ASSERT_EQ(v, 10);
    ASSERT_EQ(sk_api_json_int(json_object_get(o, "b"), "b", 1, 100, real, &v, &e), -EINVAL);
    ASSERT_STR_EQ(e.message, "b must be from 1 to 100; 1e+20 is out of range");
    json_decref(o);
    ASSERT_TRUE(load("{\"a\":1e999}", &real, &e) == NULL);
    ASSERT_STR_EQ(e.code, "bad_json");
    ASSERT_TRUE(strstr(e.message, "too large") != NULL);
    /* Times: unix ms or RFC 3339, each refusal its own. */
    o = load("{\"t\":\"soon\",\"u\":-1,\"w\":\"2030-01-02T03:04:05Z\"}", &real, &e);
    ASSERT_TRUE(o != NULL);
    ASSERT_EQ(sk_api_json_time(json_object_get(o, "t"), "t", real, &v, &e), -EINVAL);
    ASSERT_STR_EQ(e.code, "bad_format");
    ASSERT_EQ(sk_api_json_time(json_object_get(o, "u"), "u", real, &v, &e), -EINVAL);
    ASSERT_STR_EQ(e.code, "out_of_range");
    ASSERT_EQ(sk_api_json_time(json_object_get(o, "w"), "w", real, &v, &e), 0);
    ASSERT_EQ(v, 1893553445000);
    json_decref(o);
}

/* The admission token of a queued sale: in the quick JSON path, the full parser and
 * form fields; refused when it is not a token's text. */
SK_TEST(test_admission)
{
    parsed_t p = parse("{\"user_id\":\"u1\",\"request_id\":\"r\",\"admission\":\"1700.abc_-D\"}", false);
    ASSERT_EQ(p.rc, 0);
    ASSERT_MEM_STR(p.adm, p.al, "1700.abc_-D");
    p = parse("{\"user_id\":\"u1\",\"admission\":\"1700.x\",\"quantity\":2}", false);
    ASSERT_EQ(p.rc, 0);
    ASSERT_MEM_STR(p.adm, p.al, "1700.x");
    ASSERT_EQ(p.q, 2);
    p = parse("{ \"user_id\" : \"u1\", \"admission\" : \"1\\u0030\" }", false); /* an escape: the full parser */
    ASSERT_EQ(p.rc, 0);
    ASSERT_MEM_STR(p.adm, p.al, "10");
    p = parse("user_id=u1&admission=99.AbC", true);
    ASSERT_EQ(p.rc, 0);
    ASSERT_MEM_STR(p.adm, p.al, "99.AbC");
    p = parse("{\"user_id\":\"u1\",\"request_id\":\"r\"}", false);
    ASSERT_EQ(p.rc, 0);
    ASSERT_EQ(p.al, 0);
    ASSERT_BAD("{\"user_id\":\"u1\",\"admission\":\"a b\"}", false, "admission");
    ASSERT_BAD("{\"user_id\":\"u1\",\"admission\":7}", false, "admission");
    ASSERT_BAD("user_id=u1&admission=%22x", true, "admission");
    char big[200];
    snprintf(big, sizeof(big), "{\"user_id\":\"u1\",\"admission\":\"%065d\"}", 0);
    ASSERT_BAD(big, false, "admission");
}

SK_TEST(test_join)
{
    char user[SK_USER_MAX + 1], ch[65], nonce[65];
    size_t ul, cl, nl;
    bool pow;
    sk_api_field_error_t fe;
    const char *b = "{\"user_id\":\"u9\"}";
    ASSERT_EQ(sk_api_parse_join(b, strlen(b), false, user, &ul, ch, &cl, nonce, &nl, &pow, &fe), 0);
    ASSERT_MEM_STR(user, ul, "u9");
    ASSERT_TRUE(!pow);
    b = "{\"user_id\":\"u9\",\"pow\":{\"challenge\":\"12.abc\",\"nonce\":\"77\"}}";
    ASSERT_EQ(sk_api_parse_join(b, strlen(b), false, user, &ul, ch, &cl, nonce, &nl, &pow, &fe), 0);
    ASSERT_TRUE(pow);
    ASSERT_MEM_STR(ch, cl, "12.abc");
    ASSERT_MEM_STR(nonce, nl, "77");
    b = "user_id=u9&challenge=12.abc&nonce=5";
    ASSERT_EQ(sk_api_parse_join(b, strlen(b), true, user, &ul, ch, &cl, nonce, &nl, &pow, &fe), 0);
    ASSERT_TRUE(pow);
    b = "{\"user_id\":\"u9\",\"pow\":{\"challenge\":\"12.abc\"}}";
    ASSERT_EQ(sk_api_parse_join(b, strlen(b), false, user, &ul, ch, &cl, nonce, &nl, &pow, &fe), -EINVAL);
    ASSERT_STR_EQ(fe.field, "pow.nonce");
    b = "{\"user_id\":\"u9\",\"x\":1}";
    ASSERT_EQ(sk_api_parse_join(b, strlen(b), false, user, &ul, ch, &cl, nonce, &nl, &pow, &fe), -EINVAL);
    ASSERT_STR_EQ(fe.field, "x");
    b = "{}";
    ASSERT_EQ(sk_api_parse_join(b, strlen(b), false, user, &ul, ch, &cl, nonce, &nl, &pow, &fe), -EINVAL);
    ASSERT_STR_EQ(fe.field, "user_id");
}

SK_TEST_MAIN(SK_RUN(test_admission); SK_RUN(test_join); SK_RUN(test_json_fast_path); SK_RUN(test_json_full_parser);
             SK_RUN(test_json_unknown_and_malformed); SK_RUN(test_missing_user); SK_RUN(test_form);
             SK_RUN(test_form_decode); SK_RUN(test_is_form); SK_RUN(test_time_unix_ms); SK_RUN(test_time_rfc3339);
             SK_RUN(test_time_garbage); SK_RUN(test_field_codes); SK_RUN(test_json_numbers);)
