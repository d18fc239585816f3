#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>

/* Two digits per entry: numbers are formatted for every answer (status, length,
 * remaining stock, order ids). */
static const char pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                               "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                               "8081828384858687888990919293949596979899";

/* Exactly eight digits of v < 10^8, zero-padded, without a division: y starts as v / 10^6
 * in 32.32 fixed point (a reciprocal rounded up, plus a bias, so that no step below
 * truncates a digit away: checked for every v < 10^8, see tests/unit/util/test_buf.c);
 * each step takes the integer part as the next two digits and multiplies the fraction
 * by 100. (James Anhalt's itoa.) */
static inline void put8(char *p, uint32_t v)
{
    uint64_t y = ((uint64_t)v * 2251799815u >> 19) + 4;
    memcpy(p, pairs + 2 * (y >> 32), 2);
    y = (uint64_t)(uint32_t)y * 100;
    memcpy(p + 2, pairs + 2 * (y >> 32), 2);
    y = (uint64_t)(uint32_t)y * 100;
    memcpy(p + 4, pairs + 2 * (y >> 32), 2);
    y = (uint64_t)(uint32_t)y * 100;
    memcpy(p + 6, pairs + 2 * (y >> 32), 2);
}

/* Writes u backwards, a pair of digits at a time, ending at p. */
static inline void put_back(char *p, uint32_t u)
{
    while (u >= 100) {
        unsigned k = (u % 100) * 2;
        u /= 100;
        *--p = pairs[k + 1];
        *--p = pairs[k];
    }
    if (u >= 10) {
        *--p = pairs[u * 2 + 1];
        *--p = pairs[u * 2];
    } else {
        *--p = (char)('0' + u);
    }
}

/* The n digits of v >= 10^8: the low digits eight at a time. Out of line, so that the
 * short numbers of nearly every call do not pay for its registers. */
static __attribute__((noinline)) void put_long(char *dst, uint64_t v, size_t n)
{
    char *p = dst + n;
    do {
        uint64_t q = v / 100000000;
        p -= 8;
        put8(p, (uint32_t)(v - q * 100000000));
        v = q;
    } while (v >= 100000000);
    put_back(p, (uint32_t)v);
}

size_t sk_fmt_u64(char *dst, uint64_t v)
{
    static const uint64_t pow10[20] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};
    if (v < 10) {
        dst[0] = (char)('0' + v);
        return 1;
    }
    /* The digit count from the bit length (log10(2) ~ 1233/4096), corrected by one compare. */
    unsigned bits = 64u - (unsigned)__builtin_clzll(v);
    unsigned t = (bits * 1233u) >> 12;
    size_t n = t + (v >= pow10[t]);
    if (v >= 100000000)
        put_long(dst, v, n);
    else
        put_back(dst + n, (uint32_t)v);
    return n;
}

size_t sk_fmt_u64_pad10(char *dst, uint64_t v)
{
    if (v >= 10000000000ull)
        return sk_fmt_u64(dst, v);
    uint32_t hi = (uint32_t)(v / 100000000);
    memcpy(dst, pairs + 2 * hi, 2);
    put8(dst + 2, (uint32_t)(v - (uint64_t)hi * 100000000));
    return 10;
}

size_t sk_fmt_i64(char *dst, int64_t v)
{
    if (v < 0) {
        dst[0] = '-';
        return 1 + sk_fmt_u64(dst + 1, (uint64_t)0 - (uint64_t)v);
    }
    return sk_fmt_u64(dst, (uint64_t)v);
}

void sk_buf_put_i64(sk_buf_t *b, int64_t v)
{
    sk_buf_reserve(b, 21);
    b->len += sk_fmt_i64(b->data + b->len, v);
}

void sk_buf_printf(sk_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    sk_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not valid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

/* True when none of the eight bytes in w needs more than a copy into a JSON string: no
 * control byte, no '"', no '\\', no byte of a multi-byte sequence (high bit set). Each
 * term's high bits can only be set by a byte that fails (a borrow starts only at such a
 * byte), so the test is exact, not a hint. */
static inline int word_plain(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t t = (w - ones * 0x20) | ((w ^ (ones * '"')) - ones) | ((w ^ (ones * '\\')) - ones) | w;
    return (t & (ones * 0x80)) == 0;
}

/* Bytes copied as they are: printable ASCII but the quote and the backslash. */
static const unsigned char json_plain[256] = {
#define R8(c) [c] = 1, [c + 1] = 1, [c + 2] = 1, [c + 3] = 1, [c + 4] = 1, [c + 5] = 1, [c + 6] = 1, [c + 7] = 1
    [0x20] = 1, [0x21] = 1, R8(0x23), R8(0x2b), R8(0x33), R8(0x3b),   R8(0x43),   R8(0x4b),   R8(0x53),
    [0x5b] = 1, R8(0x5d),   R8(0x65), R8(0x6d), R8(0x75), [0x7d] = 1, [0x7e] = 1, [0x7f] = 1,
#undef R8
};

/* The rest of a string from p[i], the first byte that is not copied as it is, with the
 * closing quote. Out of line: the usual string never comes here. Runs of plain bytes
 * between escapes are copied at once. */
static __attribute__((noinline)) void put_json_rest(sk_buf_t *b, const unsigned char *p, size_t i, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *plain = json_plain;
    while (i < n) {
        size_t j = i;
        while (j < n && plain[p[j]])
            j++;
        if (j > i) {
            sk_buf_reserve(b, j - i + 1);
            memcpy(b->data + b->len, p + i, j - i);
            b->len += j - i;
            i = j;
            if (i == n)
                break;
        }
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                sk_buf_append(b, "\xef\xbf\xbd", 3);
                i++;
            } else {
                sk_buf_append(b, p + i, l);
                i += l;
            }
            continue;
        }
        switch (c) {
        case '"':
            sk_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            sk_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            sk_buf_append(b, "\\n", 2);
            break;
        case '\r':
            sk_buf_append(b, "\\r", 2);
            break;
        case '\t':
            sk_buf_append(b, "\\t", 2);
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sk_buf_append(b, u, 6);
        }
        }
        i++;
    }
    sk_buf_putc(b, '"');
}

void sk_buf_put_json_str(sk_buf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    sk_buf_reserve(b, n + 2);
    char *d = b->data + b->len + 1;
    d[-1] = '"';
    /* The usual string needs no escape at all: eight bytes at a time (the last eight
     * overlapping the ones before when n is not a multiple), then the closing quote,
     * straight into the room reserved above. */
    if (n >= 8) {
        uint64_t w;
        for (; i + 8 <= n; i += 8) {
            memcpy(&w, p + i, 8);
            if (!word_plain(w))
                break;
            memcpy(d + i, &w, 8);
        }
        if (i < n && i + 8 > n) {
            memcpy(&w, p + n - 8, 8);
            if (word_plain(w)) {
                memcpy(d + n - 8, &w, 8);
                i = n;
            }
        }
    }
    while (i < n && json_plain[p[i]]) {
        d[i] = (char)p[i];
        i++;
    }
    if (i == n) {
        d[n] = '"';
        b->len += n + 2;
        return;
    }
    b->len += 1 + i;
    put_json_rest(b, p, i, n);
}
