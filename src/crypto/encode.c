/* Hex and base64url. Nothing here is secret-dependent: MACs are decoded from what the
 * client sent and compared afterwards in constant time (sk_ct_eq). */
#include "crypto/encode.h"

static const char hex_digits[] = "0123456789abcdef";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t sk_hex_encode(char *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = hex_digits[src[i] >> 4];
        dst[2 * i + 1] = hex_digits[src[i] & 15];
    }
    return 2 * n;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sk_hex_decode(uint8_t *dst, size_t cap, const char *src, size_t n)
{
    if (n % 2 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_val(src[2 * i]), lo = hex_val(src[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        dst[i] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(n / 2);
}

size_t sk_b64url_encode(char *dst, const uint8_t *src, size_t n)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        dst[o++] = b64url[v >> 18];
        dst[o++] = b64url[(v >> 12) & 63];
        dst[o++] = b64url[(v >> 6) & 63];
        dst[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        dst[o++] = b64url[v >> 18];
        dst[o++] = b64url[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
        dst[o++] = b64url[v >> 18];
        dst[o++] = b64url[(v >> 12) & 63];
        dst[o++] = b64url[(v >> 6) & 63];
    }
    return o;
}

/* Each byte's 6-bit value, or 0xff outside the alphabet: a table, since tokens are
 * decoded on every purchase of a queued sale. */
static const uint8_t b64_val[256] = {
    ['A'] = 0,  ['B'] = 1,  ['C'] = 2,  ['D'] = 3,  ['E'] = 4,  ['F'] = 5,  ['G'] = 6,  ['H'] = 7,
    ['I'] = 8,  ['J'] = 9,  ['K'] = 10, ['L'] = 11, ['M'] = 12, ['N'] = 13, ['O'] = 14, ['P'] = 15,
    ['Q'] = 16, ['R'] = 17, ['S'] = 18, ['T'] = 19, ['U'] = 20, ['V'] = 21, ['W'] = 22, ['X'] = 23,
    ['Y'] = 24, ['Z'] = 25, ['a'] = 26, ['b'] = 27, ['c'] = 28, ['d'] = 29, ['e'] = 30, ['f'] = 31,
    ['g'] = 32, ['h'] = 33, ['i'] = 34, ['j'] = 35, ['k'] = 36, ['l'] = 37, ['m'] = 38, ['n'] = 39,
    ['o'] = 40, ['p'] = 41, ['q'] = 42, ['r'] = 43, ['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47,
    ['w'] = 48, ['x'] = 49, ['y'] = 50, ['z'] = 51, ['0'] = 52, ['1'] = 53, ['2'] = 54, ['3'] = 55,
    ['4'] = 56, ['5'] = 57, ['6'] = 58, ['7'] = 59, ['8'] = 60, ['9'] = 61, ['-'] = 62, ['_'] = 63,
};

int sk_b64url_decode(uint8_t *dst, size_t cap, const char *src, size_t n)
{
    if (n % 4 == 1)
        return -1;
    size_t out = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (out > cap)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        /* 'A' is the one letter whose value is 0: anything else with 0 is outside. */
        unsigned char c = (unsigned char)src[i];
        uint8_t v = b64_val[c];
        if (v == 0 && c != 'A')
            return -1;
        acc = acc << 6 | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero: one text per byte string */
        return -1;
    return (int)o;
}
