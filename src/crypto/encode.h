/* Hex and base64url (RFC 4648 §5, no padding) for MACs and tokens carried in text.
 * Decoders take untrusted input: they check every byte and never write past `cap`. */
#ifndef SK_CRYPTO_ENCODE_H
#define SK_CRYPTO_ENCODE_H

#include <stddef.h>
#include <stdint.h>

/** Writes 2n lower-case hex digits (no NUL); returns 2n. */
size_t sk_hex_encode(char *dst, const uint8_t *src, size_t n);
/** Decodes hex (either case) of even length n into n/2 bytes. Returns the byte count, or
 *  -1 on an odd length, a bad digit or more than `cap` bytes. */
int sk_hex_decode(uint8_t *dst, size_t cap, const char *src, size_t n);

/** The length of the base64url text of n bytes (no padding). */
static inline size_t sk_b64url_len(size_t n)
{
    return (n * 4 + 2) / 3;
}
/** Writes the base64url text of n bytes (no padding, no NUL); returns its length. */
size_t sk_b64url_encode(char *dst, const uint8_t *src, size_t n);
/** Decodes unpadded base64url. Returns the byte count, or -1 on a character outside the
 *  alphabet, an impossible length (n % 4 == 1), non-zero trailing bits (so every byte
 *  string has exactly one text) or more than `cap` bytes. */
int sk_b64url_decode(uint8_t *dst, size_t cap, const char *src, size_t n);

#endif
