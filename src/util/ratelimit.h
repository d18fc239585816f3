/* Token buckets for many keys (client addresses, users) in one fixed table: the memory
 * is set at creation and never grows, however many keys there are.
 *
 * Each key's bucket is kept as one 64-bit word (GCRA, the "generic cell rate
 * algorithm": the theoretical arrival time of its next request, and a tag of the key's
 * hash), in an 8-way set of one cache line chosen by the hash. A request reads the set
 * and, when admitted, moves the word on with one compare-and-swap: any thread may call
 * sk_ratelimit_take on the same table, with no lock, and refusals write nothing.
 *
 * When a set is full a new key takes the place of the key whose bucket is fullest (the
 * one idle the longest, in effect): a key being limited keeps its place, so spreading
 * over many addresses gives an attacker a fresh burst per address — what any per-address
 * limit gives — but never lifts the limit of an address already held back, unless all
 * eight of its set are held back too. Two keys sharing a set and a 22-bit tag share a
 * bucket (about one pair in four million per set). */
#ifndef SK_UTIL_RATELIMIT_H
#define SK_UTIL_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct sk_ratelimit sk_ratelimit_t;

#define SK_RATELIMIT_WAYS 8

/** A table of at least `entries` buckets (rounded up to a power of two, at least one
 *  set) refilled at `rate` tokens a second up to `burst` (rate >= 1, burst >= 1). The
 *  hash is keyed with `seed` (random in service, so nobody can aim at one set). */
sk_ratelimit_t *sk_ratelimit_new(uint32_t rate, uint32_t burst, size_t entries, uint64_t seed);
void sk_ratelimit_free(sk_ratelimit_t *t);
/** Takes a token from key's bucket at now_us (a monotonic clock in microseconds, e.g.
 *  sk_mono_ns() / 1000). Returns 0 when taken, else the microseconds until a token is
 *  there (nothing is taken). Any thread. */
uint64_t sk_ratelimit_take(sk_ratelimit_t *t, const void *key, size_t len, uint64_t now_us);
/** Bytes the table holds (fixed at creation). */
size_t sk_ratelimit_bytes(const sk_ratelimit_t *t);

#endif
