/* src/util/buf.c: decimal formatting at every length and both ends of the ranges (the
 * zero-padded form for every value below 10^8), and
 * the JSON string writer against a byte-at-a-time reference (every byte value, runs of
 * plain bytes cut by escapes, valid and broken UTF-8), appended to buffers of every
 * starting size so that growth in the middle of a string is covered, and every place of a
 * byte to escape in the writer's eight-byte steps, and strings between guard pages. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "guard.h"
#include "test.h"
#include "util/buf.h"

static void check_u64(uint64_t v)
{
    char got[32], want[32];
    size_t n = sk_fmt_u64(got, v);
    got[n] = '\0';
    snprintf(want, sizeof(want), "%" PRIu64, v);
    ASSERT_STR_EQ(got, want);
}

static void check_i64(int64_t v)
{
    char got[32], want[32];
    size_t n = sk_fmt_i64(got, v);
    got[n] = '\0';
    snprintf(want, sizeof(want), "%" PRId64, v);
    ASSERT_STR_EQ(got, want);
}

SK_TEST(decimal_at_every_length)
{
    uint64_t p = 1;
    for (int d = 0; d < 20; d++, p *= 10) {
        check_u64(p);
        check_u64(p - 1);
        check_u64(p + 1);
        check_u64(p * 5);
        check_i64(-(int64_t)(p - 1));
    }
    check_u64(UINT64_MAX);
    check_i64(INT64_MAX);
    check_i64(INT64_MIN);
    for (uint64_t v = 0; v < 2000; v++)
        check_u64(v);
    /* Pseudo-random values of every magnitude (eight digits at a time above 10^8). */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        check_u64(x >> (i % 64));
    }
    sk_buf_t b = {0};
    sk_buf_put_i64(&b, -42);
    sk_buf_put_i64(&b, 1000000000);
    ASSERT_MEM_STR(b.data, b.len, "-421000000000");
    sk_buf_free(&b);
}

/* The zero-padded form of an order id's seq, against a decimal counter counted up by
 * hand: every value below 10^8 (all that its eight-digit step without a division ever
 * sees), then around 10^10, where the padding ends. */
SK_TEST(padded_decimal_for_every_eight_digits)
{
    char want[24] = "0000000000", got[24];
    for (uint64_t v = 0; v < 100000000; v++) {
        size_t n = sk_fmt_u64_pad10(got, v);
        if (n != 10 || memcmp(got, want, 10) != 0)
            SK_FAIL_AT("%" PRIu64 ": \"%.*s\"", v, (int)n, got);
        for (int i = 9; i >= 0 && ++want[i] > '9'; i--)
            want[i] = '0';
    }
    static const uint64_t edges[] = {100000000,   123456789,    999999999,    1000000000,
                                     9999999999u, 10000000000u, 10000000001u, UINT64_MAX};
    for (size_t i = 0; i < SK_ARRAY_LEN(edges); i++) {
        size_t n = sk_fmt_u64_pad10(got, edges[i]);
        got[n] = '\0';
        snprintf(want, sizeof(want), "%010" PRIu64, edges[i]);
        ASSERT_STR_EQ(got, want);
    }
}

/* The writer's rules one byte at a time: printable ASCII but '"' and '\' as is, short
 * escapes for '"', '\', \n, \r, \t, \u00XX for other control bytes, valid UTF-8 as is,
 * U+FFFD for each byte that does not start a valid sequence. */
static void reference(sk_buf_t *b, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    sk_buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            sk_buf_putc(b, (char)c);
            i++;
        } else if (c == '"' || c == '\\') {
            sk_buf_putc(b, '\\');
            sk_buf_putc(b, (char)c);
            i++;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            sk_buf_putc(b, '\\');
            sk_buf_putc(b, c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
            i++;
        } else if (c < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sk_buf_append(b, u, 6);
            i++;
        } else {
            /* Decode one sequence strictly (no overlong, no surrogate, <= U+10FFFF). */
            size_t len = c >= 0xf0 && c < 0xf8 ? 4 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xc0 && c < 0xe0 ? 2 : 0;
            uint32_t cp = len == 4 ? c & 7 : len == 3 ? c & 15 : c & 31;
            bool ok = len > 0 && i + len <= n;
            for (size_t k = 1; ok && k < len; k++) {
                ok = (s[i + k] & 0xc0) == 0x80;
                cp = (cp << 6) | (s[i + k] & 0x3f);
            }
            uint32_t min = len == 4 ? 0x10000 : len == 3 ? 0x800 : 0x80;
            if (ok && cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
                sk_buf_append(b, s + i, len);
                i += len;
            } else {
                sk_buf_append(b, "\xef\xbf\xbd", 3);
                i++;
            }
        }
    }
    sk_buf_putc(b, '"');
}

static void check_json(const unsigned char *s, size_t n)
{
    /* From an empty buffer, and from one whose room runs out inside the string. */
    for (size_t pre = 0; pre < 300; pre += pre < 20 ? 1 : 37) {
        sk_buf_t got = {0}, want = {0};
        for (size_t k = 0; k < pre; k++) {
            sk_buf_putc(&got, 'x');
            sk_buf_putc(&want, 'x');
        }
        sk_buf_put_json_str(&got, (const char *)s, n);
        reference(&want, s, n);
        if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0)
            SK_FAIL_AT("json of %zu bytes after %zu: \"%.*s\" vs \"%.*s\"", n, pre, (int)got.len, got.data,
                       (int)want.len, want.data);
        sk_buf_free(&got);
        sk_buf_free(&want);
    }
}

SK_TEST(json_string_matches_the_reference)
{
    unsigned char s[64];
    for (int c = 0; c < 256; c++) {
        s[0] = 'a';
        s[1] = (unsigned char)c;
        s[2] = 'b';
        check_json(s, 3);
        check_json(s + 1, 1);
    }
    static const char *cases[] = {
        "",
        "u12345",
        "plain run, then \"quote\" and \\ backslash\n",
        "\xe7\x94\xa8\xe6\x88\xb7 user \xf0\x9f\x98\x80 end",
        "\xc0\xaf overlong, \xed\xa0\x80 surrogate, \xf4\x90\x80\x80 too big, \xe7\x94 cut",
        "tail cut \xf0\x9f\x98",
        "\x01\x1f\x7f\x80\xff",
    };
    for (size_t i = 0; i < SK_ARRAY_LEN(cases); i++)
        check_json((const unsigned char *)cases[i], strlen(cases[i]));
    /* Plain strings of every length up to 40, then each with one byte that is not plain
     * (or DEL, which is) at every place: the writer looks at eight bytes at a time. */
    static const unsigned char odd[] = {'"', '\\', 0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xff, ' ', '!', '#', '[', ']', '~'};
    for (size_t n = 0; n <= 40; n++) {
        for (size_t i = 0; i < n; i++)
            s[i] = (unsigned char)('a' + i % 26);
        check_json(s, n);
        for (size_t at = 0; at < n; at++) {
            for (size_t k = 0; k < SK_ARRAY_LEN(odd); k++) {
                s[at] = odd[k];
                check_json(s, n);
            }
            s[at] = (unsigned char)('a' + at % 26);
        }
    }
    /* Pseudo-random bytes, mostly printable. */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round % 64);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s[i] = (x % 5) ? (unsigned char)(0x20 + x % 95) : (unsigned char)(x >> 8);
        }
        check_json(s, n);
    }
}

/* The writer's eight-byte steps read the last eight bytes of a string overlapping the ones
 * before, never a byte past its end nor before its start: a string that ends where a
 * PROT_NONE page begins, and one that starts where one ends, at every length (plain, with
 * an escape last, with a UTF-8 sequence cut by the end). */
SK_TEST(json_string_between_guard_pages)
{
    sk_guarded_t g;
    char *mid = sk_guarded_page(&g);
    ASSERT_TRUE(mid != NULL);
    size_t page = g.page;
    unsigned char s[80];
    for (size_t n = 0; n <= sizeof(s); n++) {
        for (int kind = 0; kind < 3; kind++) {
            for (size_t i = 0; i < n; i++)
                s[i] = (unsigned char)('a' + i % 26);
            if (n && kind == 1)
                s[n - 1] = '"';
            if (n && kind == 2)
                s[n - 1] = 0xe7; /* the first byte of a three-byte sequence */
            unsigned char *at_end = (unsigned char *)mid + page - n, *at_start = (unsigned char *)mid;
            memcpy(at_end, s, n);
            memcpy(at_start, s, n);
            sk_buf_t want = {0};
            reference(&want, s, n);
            for (int k = 0; k < 2; k++) {
                sk_buf_t got = {0};
                sk_buf_put_json_str(&got, (const char *)(k ? at_start : at_end), n);
                if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0)
                    SK_FAIL_AT("json of %zu bytes at the %s: \"%.*s\" vs \"%.*s\"", n, k ? "start" : "end",
                               (int)got.len, got.data, (int)want.len, want.data);
                sk_buf_free(&got);
            }
            sk_buf_free(&want);
        }
    }
    sk_guarded_free(&g);
}

SK_TEST_MAIN(SK_RUN(decimal_at_every_length); SK_RUN(padded_decimal_for_every_eight_digits);
             SK_RUN(json_string_matches_the_reference); SK_RUN(json_string_between_guard_pages);)
