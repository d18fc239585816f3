/* Request bodies and fields, parsed without any HTTP or engine state, so that they can
 * be tested and fuzzed alone (tests/unit/api/test_body.c, tests/fuzz/fuzz_api_body.c).
 *
 * Ownership: inputs are borrowed for the call; outputs go to the caller's buffers. */
#ifndef SK_API_BODY_H
#define SK_API_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "http/parser.h"

/** Parses a time given as unix milliseconds or RFC 3339 text. Returns 0 or -EINVAL. */
int sk_api_parse_time(const char *s, size_t n, int64_t *ms);

/** Extracts user_id, request_id and quantity from a purchase body (JSON object or form
 *  fields). `user` holds SK_USER_MAX + 1 bytes, `req` SK_REQUEST_MAX + 1; *quantity is
 *  1 when absent, else an integer from 1 to SK_LIMIT_MAX. Returns 0, or -EINVAL with
 *  *field naming what is wrong ("body", "user_id", "request_id" or "quantity", static
 *  strings). Output is NUL-terminated. */
int sk_api_parse_purchase(const char *body, size_t len, bool form, char *user, size_t *user_len, char *req,
                          size_t *req_len, uint32_t *quantity, const char **field);

/** Reads a body that is empty, or a JSON object with at most the one string member
 *  `name` (the bodies of pay and cancel). Returns 0 with the value in out (cap bytes with
 *  the NUL, *out_len), 1 when the member is absent (or the body empty), -EINVAL when the
 *  body is not such an object, the value is not a string or does not fit. */
int sk_api_parse_one_string(const char *body, size_t len, const char *name, char *out, size_t cap, size_t *out_len);

/** Percent-decodes a form value (or a path segment; '+' is a space) into out (cap bytes
 *  with the NUL). Returns the length, or -1 on a bad escape or when it does not fit. */
int sk_api_form_decode(const char *s, size_t n, char *out, size_t cap);

/** True when the body is to be read as form fields: declared as such, unless it is
 *  plainly a JSON object (curl -d labels everything as a form). */
bool sk_api_is_form(const sk_http_request_t *req, const char *body, size_t len);

#endif
