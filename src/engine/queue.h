/* One sale's waiting room, in memory: who waits in which order, who was admitted when.
 * A pure data structure with one writer (the embedded store's ledger thread: the sale's
 * writer decides joins and admissions in order with its purchases, and journals them);
 * no clock and no randomness of its own: the caller passes both.
 *
 * The rules (DESIGN.md §2c):
 *  - Joins before the start form the pre-queue. At the first advance at or after
 *    starts_at the queue starts: a random queue shuffles its pre-queue (Fisher-Yates
 *    over a generator seeded by the caller, unpredictably in service), a fifo queue
 *    keeps arrival order. Later joins go to the back.
 *  - A user's place (`position`, from 1) is fixed once the queue has started; `ahead`
 *    is the number of people before it not yet admitted. Before the start a fifo place
 *    is the arrival number; a random one is 0 (drawn at the start).
 *  - From the start on, while the sale can sell (`admitting`), the head of the queue is
 *    admitted at admit_per_second: a credit that grows with the clock, at most one
 *    second's worth, so an idle queue does not save up a flood. While it cannot (sold
 *    out, paused) nobody is admitted and no credit grows; units coming back resume it.
 *  - An admission is good until admitted_at + admission_ttl_ms. A user who asks again
 *    after that goes to the back (a new place); one who bought simply does not ask.
 *
 * Every change is reported to the caller as a record (sk_queue_rec_t) in decision
 * order; replaying the records (sk_queue_replay) into an empty queue rebuilds it
 * exactly, the shuffle included (its seed is in the record).
 *
 * Ownership: the queue copies the user ids it keeps; a record's user points into the
 * queue and is valid until its next change. */
#ifndef SK_ENGINE_QUEUE_H
#define SK_ENGINE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sk_queue sk_queue_t;

typedef enum {
    SK_QREC_JOIN = 0, /* user joined at `at` (again, after an expired admission: to the back) */
    SK_QREC_START, /* the queue started at `at`; arg: the shuffle's seed, n: entries shuffled (0: fifo) */
    SK_QREC_ADMIT, /* user admitted at `at`; arg: its position */
} sk_queue_rec_kind_t;

typedef struct {
    sk_queue_rec_kind_t kind;
    const char *user; /* JOIN, ADMIT */
    size_t user_len;
    int64_t at;
    uint64_t arg;
    uint64_t n;
} sk_queue_rec_t;

typedef void (*sk_queue_emit_fn)(void *arg, const sk_queue_rec_t *r);

/** The sale's settings the queue follows (from its params). */
typedef struct {
    int mode; /* SK_QUEUE_FIFO or SK_QUEUE_RANDOM */
    int64_t starts_at;
    int32_t rate; /* admissions per second, >= 1 */
    int64_t ttl_ms;
} sk_queue_rules_t;

/** One user's place. */
typedef struct {
    uint64_t position; /* from 1; 0: not drawn yet (a random pre-queue) */
    uint64_t ahead; /* people before it still waiting */
    int64_t admitted_at; /* 0: waiting */
    int64_t expires_at; /* admitted_at + ttl (0: waiting) */
    bool joined; /* this call put the user in the queue (first time or back again) */
} sk_queue_place_t;

/** A new, empty queue; `seed` seeds its shuffle (random mode). */
sk_queue_t *sk_queue_new(uint64_t seed);
void sk_queue_free(sk_queue_t *q);

/** Starts the queue when now >= starts_at (once), then admits while `admitting`.
 *  Returns how many it admitted. */
size_t sk_queue_advance(sk_queue_t *q, const sk_queue_rules_t *r, int64_t now, bool admitting, sk_queue_emit_fn emit,
                        void *arg);
/** The user's place at now (after sk_queue_advance at now). With `join`, a user not in
 *  the queue, or whose admission expired, joins at the back. Returns 0, or -ENOENT
 *  (not in the queue and not joining). */
int sk_queue_ask(sk_queue_t *q, const sk_queue_rules_t *r, const char *user, size_t ul, int64_t now, bool join,
                 sk_queue_place_t *out, sk_queue_emit_fn emit, void *arg);
/** Milliseconds until the next admission is due (0: now), or -1: none is due (nobody
 *  waits, not started, or not admitting). */
int64_t sk_queue_next_due(const sk_queue_t *q, const sk_queue_rules_t *r, int64_t now, bool admitting);
/** Applies one journaled record. Returns 0 or -EINVAL (it does not fit this queue). */
int sk_queue_replay(sk_queue_t *q, const sk_queue_rec_t *r);

/** Places handed out (joins, re-joins included); the number admitted (the head); whether
 *  it has started. */
uint64_t sk_queue_len(const sk_queue_t *q);
uint64_t sk_queue_head(const sk_queue_t *q);
bool sk_queue_started(const sk_queue_t *q);

/** The shuffle: Fisher-Yates over n items with xoshiro256** seeded by `seed` (through
 *  splitmix64) and unbiased bounded draws. A 64-bit seed reaches at most 2^64 of the n!
 *  orders: fair to every statistical test, not to an enumeration. Exposed for the tests. */
void sk_queue_shuffle(uint32_t *items, size_t n, uint64_t seed);

#endif
