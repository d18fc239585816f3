/* Request bodies and fields, parsed without any HTTP or engine state, so that they can
 * be tested and fuzzed alone (tests/unit/api/test_body.c, tests/fuzz/fuzz_api_body.c).
 *
 * Ownership: inputs are borrowed for the call; outputs go to the caller's buffers. */
#ifndef SK_API_BODY_H
#define SK_API_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "engine/engine.h"
#include "http/parser.h"

/** What is wrong with one field of a request: which field (a member of the body, or
 *  "body"), by which rule (a code a client can translate: required, not_string,
 *  not_integer, out_of_range, bad_format, too_long, empty, exclusive, unknown_field,
 *  bad_json, not_object, above_limit, before_start, in_past, not_supported), and a
 *  message that names the field, the rule and what is wrong with the value, once.
 *  `code` is a static string. */
typedef struct {
    char field[72];
    const char *code;
    char message[400];
} sk_api_field_error_t;

/** Sets *e; returns -EINVAL. */
int sk_api_field_error(sk_api_field_error_t *e, const char *field, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Loads a body that must be a JSON object (admin bodies). An integer too large for 64
 *  bits makes jansson refuse the whole text; then every number is read as a real, so
 *  that the field at fault can say it is out of range (*ints_as_real tells the number
 *  readers below). Returns the object (the caller decrefs it), or NULL with *e set
 *  (bad_json with jansson's reason and position, not_object). */
json_t *sk_api_load_object(const char *body, size_t len, bool *ints_as_real, sk_api_field_error_t *e);
/** Refuses the first member whose name is not in known[0..n): unknown_field, naming it
 *  and listing what the body takes (`takes`, e.g. "name, ends_at, ..."). Returns 0 or
 *  -EINVAL. */
int sk_api_known_fields(json_t *o, const char *const *known, size_t n, const char *takes, sk_api_field_error_t *e);
/** A whole number in [min, max] (v NULL: required). With ints_as_real, a real without a
 *  fraction counts as a whole number. Returns 0 or -EINVAL with *e: required,
 *  not_integer (a string, a fraction, true, null, ...) or out_of_range (with the value). */
int sk_api_json_int(const json_t *v, const char *field, int64_t min, int64_t max, bool ints_as_real, int64_t *out,
                    sk_api_field_error_t *e);
/** A time: unix milliseconds (a whole number, 0 .. year 9999) or RFC 3339 text. Returns
 *  0 or -EINVAL with *e (required, not_integer/out_of_range, bad_format). */
int sk_api_json_time(const json_t *v, const char *field, bool ints_as_real, int64_t *out, sk_api_field_error_t *e);

/** Parses a time given as unix milliseconds or RFC 3339 text. Returns 0 or -EINVAL. */
int sk_api_parse_time(const char *s, size_t n, int64_t *ms);

#define SK_API_ADMISSION_MAX 64 /* the longest admission token taken (crypto/token.h) */

/** Extracts user_id, request_id, quantity and admission from a purchase body (JSON
 *  object or form fields). `user` holds SK_USER_MAX + 1 bytes, `req` SK_REQUEST_MAX +
 *  1, `adm` SK_API_ADMISSION_MAX + 1 (*adm_len 0 when absent; a waiting room's token,
 *  checked by the caller); *quantity is 1 when absent, else an integer from 1 to
 *  SK_LIMIT_MAX. Returns 0, or -EINVAL with *e saying what is wrong (its field: "body",
 *  "user_id", "request_id", "quantity", "admission", or an unknown member's name).
 *  Output is NUL-terminated. The common body without an admission takes the fastest
 *  path; one with an admission the next fastest (no allocation). */
int sk_api_parse_purchase(const char *body, size_t len, bool form, char *user, size_t *user_len, char *req,
                          size_t *req_len, uint32_t *quantity, char *adm, size_t *adm_len, sk_api_field_error_t *e);

/** Reads a queue join body: {"user_id": "...", "pow": {"challenge": "...", "nonce":
 *  "..."}} (pow optional; form fields user_id, challenge, nonce too). `user` holds
 *  SK_USER_MAX + 1 bytes, `challenge` and `nonce` 65 each (*has_pow says whether they
 *  were given). Returns 0 or -EINVAL with *e. */
int sk_api_parse_join(const char *body, size_t len, bool form, char *user, size_t *user_len, char *challenge,
                      size_t *cl, char *nonce, size_t *nl, bool *has_pow, sk_api_field_error_t *e);

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
