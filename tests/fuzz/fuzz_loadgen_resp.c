/* libFuzzer target: the load generator's HTTP response parser and JSON member scan.
 * The first byte picks where the input is split in two deliveries; the parser must
 * give the same answer as when it sees everything at once, and never read or write
 * outside the bytes it was given (the buffers are exact-size heap copies, so ASan
 * catches any overrun). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen/resp.h"

static int64_t parse_all(const uint8_t *data, size_t n, size_t split, sk_loadgen_resp_t *r, char **keep)
{
    char *buf = malloc(n ? n : 1);
    memcpy(buf, data, n);
    sk_loadgen_resp_reset(r);
    int64_t rc = -2;
    if (split > 0 && split < n) {
        rc = sk_loadgen_resp_parse(r, buf, split);
        if (rc != -2) {
            *keep = buf;
            return rc;
        }
    }
    rc = sk_loadgen_resp_parse(r, buf, n);
    if (rc == -2)
        rc = sk_loadgen_resp_eof(r, buf, n) > 0 ? -3 : -2;
    *keep = buf;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0];
    data++;
    size--;
    sk_loadgen_resp_t a, b;
    char *ba = NULL, *bb = NULL;
    int64_t ra = parse_all(data, size, 0, &a, &ba);
    int64_t rb = parse_all(data, size, split, &b, &bb);
    /* The parser is incremental: where the bytes are split must not matter. */
    if (ra != rb)
        abort();
    if (ra > 0) {
        if (a.status != b.status || a.body_len != b.body_len || memcmp(a.body, b.body, a.body_len) != 0)
            abort();
        if (a.body < ba || a.body + a.body_len > ba + size)
            abort();
        const char *v;
        size_t vl;
        if (sk_loadgen_json_scan(a.body, a.body_len, "order_id", &v, &vl) &&
            (v < a.body || v + vl > a.body + a.body_len))
            abort();
    }
    const char *v;
    size_t vl;
    if (sk_loadgen_json_scan((const char *)data, size, "error", &v, &vl) &&
        (v < (const char *)data || v + vl > (const char *)data + size))
        abort();
    free(ba);
    free(bb);
    return 0;
}
