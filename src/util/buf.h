/* A growable byte buffer and small writers for fixed-shape text (JSON, numbers).
 * Ownership: the buffer owns `data`; sk_buf_free releases it. */
#ifndef SK_UTIL_BUF_H
#define SK_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/common.h"

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} sk_buf_t;

/** Makes room for `n` more bytes (aborts on exhaustion). */
static inline void sk_buf_reserve(sk_buf_t *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->data = sk_xrealloc(b->data, cap);
        b->cap = cap;
    }
}

static inline void sk_buf_append(sk_buf_t *b, const void *p, size_t n)
{
    /* An empty buffer has no data yet: adding 0 to its NULL pointer is undefined. */
    if (n == 0)
        return;
    sk_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void sk_buf_puts(sk_buf_t *b, const char *s)
{
    sk_buf_append(b, s, strlen(s));
}

static inline void sk_buf_putc(sk_buf_t *b, char c)
{
    sk_buf_reserve(b, 1);
    b->data[b->len++] = c;
}

static inline void sk_buf_free(sk_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Writing into room reserved beforehand (sk_buf_reserve), for answers built on the hot
 * path: each returns the end of what it wrote. */
/** Copies a string literal without its NUL to p (a copy of known length). */
#define SK_PUT_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)
/** Copies the C string s without its NUL to p. */
static inline char *sk_put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/** Writes the decimal form of v; returns the number of bytes (at most 20). */
size_t sk_fmt_i64(char *dst, int64_t v);
size_t sk_fmt_u64(char *dst, uint64_t v);
/** Like sk_fmt_u64, zero-padded to at least 10 digits (an order id's seq); returns the
 *  number of bytes (10 to 20). */
size_t sk_fmt_u64_pad10(char *dst, uint64_t v);
void sk_buf_put_i64(sk_buf_t *b, int64_t v);
/** printf into the buffer. */
void sk_buf_printf(sk_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends s as a JSON string literal (with quotes), escaping as RFC 8259 requires.
 *  Invalid UTF-8 bytes are replaced with U+FFFD so the output is always valid JSON. */
void sk_buf_put_json_str(sk_buf_t *b, const char *s, size_t n);

#endif
