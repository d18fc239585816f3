/* The crowd's users: user number u (1..N) has the id "u<u>". The users are shared out
 * among the client threads: thread `index` of `threads` owns the users u with
 * (u - 1) % threads == index, so each user's state byte has one writer. A thread first
 * visits every user of its share once, in a scrambled order, like a crowd arriving,
 * then draws users at random, like buyers clicking again.
 *
 * Ownership: plain values, no allocation. One sk_loadgen_users_t per thread. */
#ifndef SK_LOADGEN_USERS_H
#define SK_LOADGEN_USERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t n; /* users in this thread's share */
    uint32_t index, threads;
    uint64_t mul, off; /* the permutation k -> (k * mul + off) mod n */
    uint64_t rng; /* xorshift state of the random draws */
} sk_loadgen_users_t;

/** Sets up thread `index`'s share of `users` users; `seed` is any number (0 too). */
void sk_loadgen_users_init(sk_loadgen_users_t *u, uint32_t users, uint32_t threads, uint32_t index, uint64_t seed);

/** The user number of this thread's k-th request (k counts from 0): the first n
 *  requests visit each user of the share once, later ones pick users at random. The
 *  share must not be empty. */
uint32_t sk_loadgen_users_draw(sk_loadgen_users_t *u, uint64_t k);

/** Writes the user id of user number u ("u42") into buf; returns its length. */
size_t sk_loadgen_user_id(char *buf, uint32_t u);

/** A fast pseudo-random number (xorshift64*); *s must not be 0. */
uint64_t sk_loadgen_xorshift(uint64_t *s);

#endif
