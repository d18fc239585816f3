/* An incremental HTTP/1.1 response parser for the load generator: status line, the
 * headers that frame a message (Content-Length, Transfer-Encoding: chunked,
 * Connection), and the body. Chunked bodies are decoded in place.
 *
 * Ownership: the parser keeps offsets relative to `buf`, the first byte of the response
 * being parsed; the caller passes the same response start (it may move the bytes, but
 * not drop any) with everything received so far on every call. The parser writes into
 * `buf` only to decode a chunked body. `body` points into `buf`. */
#ifndef SK_LOADGEN_RESP_H
#define SK_LOADGEN_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SK_LOADGEN_RESP_MAX_HEAD 65536

typedef struct {
    /* Results, valid once sk_loadgen_resp_parse() returned > 0 (status and framing
     * fields already once the head is complete). */
    int status;
    int minor_version;
    bool keep_alive; /* false: the server closes after this response */
    bool chunked;
    int64_t content_length; /* -1 when absent */
    const char *body;
    size_t body_len;

    /* Parser state; zero (sk_loadgen_resp_reset) before each response. */
    int state;
    size_t head_len;
    size_t scan; /* where the search for the end of the head resumes */
    size_t pos; /* chunked: next unread byte */
    size_t out; /* chunked: decoded bytes so far, written at head_len */
    uint64_t chunk_left;
} sk_loadgen_resp_t;

/** Prepares for a new response. */
void sk_loadgen_resp_reset(sk_loadgen_resp_t *r);

/** Parses the response starting at buf. Returns the length of the whole response
 *  (> 0) when complete, -2 when more bytes are needed, -1 when the bytes are not a
 *  valid HTTP/1.x response (the connection must be closed). A response whose length is
 *  delimited by the connection closing returns -2 until sk_loadgen_resp_eof(). */
int64_t sk_loadgen_resp_parse(sk_loadgen_resp_t *r, char *buf, size_t len);

/** Tells the parser that the peer closed after `len` bytes. Returns the response length
 *  when that completes a close-delimited body, else -1 (a truncated response). */
int64_t sk_loadgen_resp_eof(sk_loadgen_resp_t *r, char *buf, size_t len);

/** Finds the top-level-looking member `"key":` in a small JSON object by scanning (no
 *  full parse: for fixed-shape replies on the hot path). Sets *val and *val_len to a string
 *  value without its quotes (escapes kept as sent), or to the raw token of a number,
 *  true, false or null. Returns 1 when found as a string, 2 when found as another
 *  token, 0 when absent or malformed. */
int sk_loadgen_json_scan(const char *json, size_t len, const char *key, const char **val, size_t *val_len);

#endif
