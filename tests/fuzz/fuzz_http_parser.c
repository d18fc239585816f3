/* libFuzzer target for the request parser and the chunked decoder.
 *
 * Beyond "no crash, no over-read" (every parse runs on an exact-size heap copy, so
 * ASan sees a read past `len`), it checks the parser's contract:
 *  - the return value is > 0 (at most len, ending in CRLF CRLF), -2 or -1, and -1
 *    comes with one of the documented statuses and a message;
 *  - every pointer of a successful parse lies inside the head; the path starts with
 *    '/' (except the asterisk-form of OPTIONS);
 *  - the answer does not depend on how the input was split into reads: a prefix of a
 *    valid head is incomplete, a prefix holding the whole head gives the same result,
 *    and a prefix never fails where the whole input does not (or with another status);
 *  - the chunked decoder gives the same body and leftover whether it is fed all at
 *    once, in two pieces, or byte by byte. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            fprintf(stderr, "check failed at %s:%d: %s\n", __FILE__, __LINE__, #c);                                    \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

static char *dup_exact(const uint8_t *data, size_t n)
{
    char *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    if (n)
        memcpy(p, data, n);
    return p;
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && p <= buf + len && n <= (size_t)(buf + len - p);
}

static void check_request(const char *buf, size_t len, int rc, const sk_http_request_t *r)
{
    CHECK(rc == -1 || rc == -2 || (rc > 0 && (size_t)rc <= len));
    if (rc == -1) {
        CHECK(r->error_status == 400 || r->error_status == 431 || r->error_status == 501 || r->error_status == 505 ||
              r->error_status == 417);
        CHECK(r->error_message != NULL && r->error_message[0] != '\0');
        return;
    }
    if (rc == -2)
        return;
    size_t head = (size_t)rc;
    CHECK(head >= 4 && memcmp(buf + head - 4, "\r\n\r\n", 4) == 0);
    CHECK(r->method_str == buf && r->method_len > 0);
    CHECK(inside(r->target, r->target_len, buf, head) && r->target_len > 0);
    bool asterisk = r->target_len == 1 && r->target[0] == '*';
    CHECK(!asterisk || r->method == SK_HTTP_OPTIONS);
    CHECK(r->path != NULL && r->path_len > 0);
    if (asterisk) {
        CHECK(r->path_len == 1 && r->path[0] == '*');
    } else {
        CHECK(r->path[0] == '/');
        /* The path lies in the target, except the "/" of an absolute-form target with
         * an empty path, which may be a constant. */
        CHECK(inside(r->path, r->path_len, r->target, r->target_len) || (r->path_len == 1 && r->target[0] != '/'));
        CHECK(memchr(r->path, '?', r->path_len) == NULL);
    }
    if (r->query)
        CHECK(inside(r->query, r->query_len, r->target, r->target_len) && r->query[-1] == '?');
    CHECK(r->minor_version == 0 || r->minor_version == 1);
    CHECK(r->num_headers <= SK_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < r->num_headers; i++) {
        const sk_http_header_t *h = &r->headers[i];
        CHECK(h->name_len > 0 && inside(h->name, h->name_len, buf, head));
        CHECK(inside(h->value, h->value_len, buf, head));
        CHECK(h->name[h->name_len] == ':');
        for (size_t j = 0; j < h->value_len; j++) {
            unsigned char c = (unsigned char)h->value[j];
            CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (h->value_len) {
            CHECK(h->value[0] != ' ' && h->value[0] != '\t');
            CHECK(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
        }
    }
    CHECK(sk_http_find_header(r, "host") != NULL || r->host == NULL);
    CHECK(r->content_length >= -1);
    CHECK(!(r->chunked && r->content_length != -1));
    CHECK(!(r->chunked && r->minor_version == 0));
    CHECK(!r->expect_continue || r->minor_version == 1);
    if (r->minor_version == 1)
        CHECK(r->host != NULL);
    if (r->host)
        CHECK(inside(r->host, r->host_len, buf, head));
    if (r->content_type)
        CHECK(inside(r->content_type, r->content_type_len, buf, head));
}

static bool same_request(const sk_http_request_t *a, const char *abuf, const sk_http_request_t *b, const char *bbuf)
{
#define OFF(r, f, buf) ((r)->f ? (r)->f - (buf) : -1)
    if (a->method != b->method || a->method_len != b->method_len || a->target_len != b->target_len ||
        a->path_len != b->path_len || a->query_len != b->query_len || a->minor_version != b->minor_version ||
        a->num_headers != b->num_headers || a->content_length != b->content_length || a->chunked != b->chunked ||
        a->keep_alive != b->keep_alive || a->expect_continue != b->expect_continue || a->host_len != b->host_len ||
        a->content_type_len != b->content_type_len)
        return false;
    if (OFF(a, target, abuf) != OFF(b, target, bbuf) || OFF(a, query, abuf) != OFF(b, query, bbuf) ||
        OFF(a, host, abuf) != OFF(b, host, bbuf) || OFF(a, content_type, abuf) != OFF(b, content_type, bbuf))
        return false;
    for (size_t i = 0; i < a->num_headers; i++)
        if (a->headers[i].name - abuf != b->headers[i].name - bbuf ||
            a->headers[i].value - abuf != b->headers[i].value - bbuf ||
            a->headers[i].value_len != b->headers[i].value_len)
            return false;
#undef OFF
    return true;
}

typedef struct {
    ssize_t rc;
    char *out;
    size_t out_len;
    size_t leftover; /* bytes not consumed, counting input never fed after "done" */
} chunked_result_t;

/* Feeds `data` to a fresh decoder in pieces: the first piece is `first` bytes, the
 * rest `step` bytes each (0 = all). Each piece gets its own exact-size buffer. */
static void decode_pieces(const uint8_t *data, size_t size, size_t first, size_t step, chunked_result_t *res)
{
    sk_http_chunked_t dec;
    memset(&dec, 0, sizeof(dec));
    res->rc = -2;
    res->out = malloc(size ? size : 1);
    CHECK(res->out != NULL);
    res->out_len = 0;
    res->leftover = 0;
    size_t off = 0;
    while (off < size && res->rc == -2) {
        size_t n = size - off;
        if (off == 0 && first)
            n = first < n ? first : n;
        else if (off > 0 && step)
            n = step < n ? step : n;
        char *p = dup_exact(data + off, n);
        size_t io = n;
        res->rc = sk_http_decode_chunked(&dec, p, &io);
        CHECK(res->rc >= -2);
        CHECK(io <= n);
        if (res->rc != -1) {
            memcpy(res->out + res->out_len, p, io);
            res->out_len += io;
            CHECK(dec.total == res->out_len);
        }
        if (res->rc >= 0) {
            CHECK(io + (size_t)res->rc <= n);
            /* The leftover sits right after the decoded bytes, unchanged. */
            CHECK(memcmp(p + io, data + off + n - (size_t)res->rc, (size_t)res->rc) == 0);
            res->leftover = (size_t)res->rc + (size - off - n);
        }
        free(p);
        off += n;
    }
}

static void check_chunked(const uint8_t *data, size_t size, size_t split)
{
    chunked_result_t whole, two, bytes;
    decode_pieces(data, size, 0, 0, &whole);
    decode_pieces(data, size, split, 0, &two);
    CHECK(whole.rc == -1 || whole.rc == -2 || whole.rc >= 0);
    const chunked_result_t *others[2] = {&two, NULL};
    if (size <= 4096) {
        decode_pieces(data, size, 1, 1, &bytes);
        others[1] = &bytes;
    }
    for (int i = 0; i < 2 && others[i]; i++) {
        const chunked_result_t *o = others[i];
        CHECK((whole.rc >= 0) == (o->rc >= 0));
        CHECK((whole.rc == -1) == (o->rc == -1));
        if (whole.rc != -1) {
            CHECK(whole.out_len == o->out_len);
            CHECK(memcmp(whole.out, o->out, whole.out_len) == 0);
        }
        if (whole.rc >= 0)
            CHECK(whole.leftover == o->leftover);
    }
    free(whole.out);
    free(two.out);
    if (others[1])
        free(bytes.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = dup_exact(data, size);
    sk_http_request_t full;
    int rc = sk_http_parse_request(buf, size, &full);
    check_request(buf, size, rc, &full);

    /* Deterministic, and the body (if any) does not change the head's result. */
    sk_http_request_t again;
    CHECK(sk_http_parse_request(buf, size, &again) == rc);
    if (rc > 0) {
        CHECK(same_request(&full, buf, &again, buf));
        char *head = dup_exact(data, (size_t)rc);
        CHECK(sk_http_parse_request(head, (size_t)rc, &again) == rc);
        CHECK(same_request(&full, buf, &again, head));
        free(head);
    } else if (rc == -1) {
        CHECK(again.error_status == full.error_status);
    }

    /* A read boundary derived from the first byte. */
    size_t k = size ? (size_t)data[0] * (size + 1) / 256 : 0;
    char *pre = dup_exact(data, k);
    sk_http_request_t part;
    int prc = sk_http_parse_request(pre, k, &part);
    check_request(pre, k, prc, &part);
    if (rc > 0) {
        if (k < (size_t)rc) {
            CHECK(prc == -2);
        } else {
            CHECK(prc == rc);
            CHECK(same_request(&full, buf, &part, pre));
        }
    } else if (rc == -2) {
        CHECK(prc == -2);
    } else {
        CHECK(prc == -2 || prc == -1);
        if (prc == -1)
            CHECK(part.error_status == full.error_status);
    }
    free(pre);

    /* The chunked decoder on the raw input, and on the body of a chunked request. */
    check_chunked(data, size, k);
    if (rc > 0 && full.chunked) {
        size_t body = size - (size_t)rc;
        check_chunked(data + rc, body, body / 2);
    }
    free(buf);
    return 0;
}
