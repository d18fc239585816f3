/* A strict, incremental, zero-copy HTTP/1.1 request parser (RFC 9112).
 *
 * Ownership: every pointer in sk_http_request_t points into the caller's buffer and is
 * valid only while that buffer is unchanged. The parser allocates nothing.
 *
 * sk_http_parse_request() is called with everything received so far; it returns:
 *   > 0  the length of the request line and header section (including the final CRLF);
 *        the fields of *req are filled and the body (if any) follows at buf + ret;
 *   -2   incomplete: call again with more data (the caller enforces the 8 KiB limit
 *        and answers 431 when the head does not fit);
 *   -1   invalid: req->error_status (400, 431, 501, 505, 417) and req->error_message
 *        say what to answer; the connection must be closed after that answer.
 * It is re-entrant and keeps no state between calls: it simply re-scans. */
#ifndef SK_HTTP_PARSER_H
#define SK_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SK_HTTP_MAX_HEADERS 64
#define SK_HTTP_MAX_HEAD 8192 /* request line + headers */

typedef enum {
    SK_HTTP_OTHER = 0,
    SK_HTTP_GET,
    SK_HTTP_HEAD,
    SK_HTTP_POST,
    SK_HTTP_PUT,
    SK_HTTP_DELETE,
    SK_HTTP_OPTIONS,
    SK_HTTP_PATCH,
} sk_http_method_t;

typedef struct {
    const char *name; /* as received (case preserved) */
    size_t name_len;
    const char *value; /* leading and trailing whitespace removed */
    size_t value_len;
} sk_http_header_t;

typedef struct {
    sk_http_method_t method;
    const char *method_str;
    size_t method_len;
    const char *target; /* the request-target as sent */
    size_t target_len;
    const char *path; /* origin path: starts with '/', no query */
    size_t path_len;
    const char *query; /* after '?', NULL if none */
    size_t query_len;
    int minor_version; /* 0 or 1 */

    sk_http_header_t headers[SK_HTTP_MAX_HEADERS];
    size_t num_headers;

    /* Semantics drawn from the headers. */
    int64_t content_length; /* -1 when absent */
    bool chunked; /* Transfer-Encoding: chunked */
    bool keep_alive; /* after Connection header and version */
    bool expect_continue; /* Expect: 100-continue */
    const char *content_type; /* NULL when absent */
    size_t content_type_len;
    const char *host;
    size_t host_len;

    /* Set when -1 is returned. */
    int error_status;
    const char *error_message;
} sk_http_request_t;

/** Parses a request head. See the file comment for the return values. */
int sk_http_parse_request(const char *buf, size_t len, sk_http_request_t *req);

/** Finds a header by name (case-insensitive). Returns NULL when absent. */
const sk_http_header_t *sk_http_find_header(const sk_http_request_t *req, const char *name);

/** Incremental in-place decoder of a chunked body. Zero-initialise before first use. */
typedef struct {
    int state;
    uint64_t chunk_left;
    size_t total; /* decoded bytes so far */
    int hex_digits;
} sk_http_chunked_t;

/** Decodes chunked data in place. `*len` bytes at buf are consumed; on return `*len`
 *  is the number of decoded body bytes now at the start of buf. Returns:
 *   >= 0  done: the number of bytes after the final CRLF that were not consumed
 *         (they belong to the next request and now sit at buf + *len);
 *   -2    need more data (all input consumed);
 *   -1    invalid encoding. Trailer fields are accepted and discarded. */
ssize_t sk_http_decode_chunked(sk_http_chunked_t *dec, char *buf, size_t *len);

/** Case-insensitive comparison of a header token against a lower-case literal. */
bool sk_http_token_eq(const char *s, size_t len, const char *lower);

#endif
