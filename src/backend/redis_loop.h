/* hiredis's asynchronous API on the project's event loop (like hiredis's own
 * adapters/ae.h): the connection's socket is watched through an sk_io_t of the loop
 * that runs the context's callbacks.
 *
 * hiredis 0.14 (Debian 12) has no timer hook in its adapter interface, so connect and
 * command timeouts are kept by the caller with sk_timer_t (see backend/redis.c).
 *
 * Ownership: the sk_redis_ev_t is the caller's and must outlive the context; hiredis
 * owns the context and frees it after a failed connect, an I/O error or a disconnect,
 * and then calls the adapter's cleanup, which clears ev->ac. Loop thread only. */
#ifndef SK_BACKEND_REDIS_LOOP_H
#define SK_BACKEND_REDIS_LOOP_H

#include <hiredis/async.h>

#include "loop/loop.h"

typedef struct {
    sk_loop_t *loop;
    redisAsyncContext *ac; /* NULL once hiredis freed the context */
    sk_io_t io;
    unsigned mask; /* SK_IO_READ | SK_IO_WRITE wanted by hiredis */
    uint64_t last_read_ms; /* loop time of the last read event */
} sk_redis_ev_t;

/** Hooks a fresh async context into `loop` through `ev`. Returns 0, or -EEXIST when the
 *  context already has an adapter. */
int sk_redis_attach(sk_redis_ev_t *ev, sk_loop_t *loop, redisAsyncContext *ac);

#endif
