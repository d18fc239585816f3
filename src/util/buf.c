#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>

size_t sk_fmt_u64(char *dst, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
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

void sk_buf_put_json_str(sk_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    sk_buf_reserve(b, n + 2);
    sk_buf_putc(b, '"');
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            sk_buf_putc(b, (char)c);
            i++;
            continue;
        }
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
