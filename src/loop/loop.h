/* The event loop: one per thread, never shared. epoll lives in loop.c alone.
 *
 * Ownership: the loop owns none of the sk_io_t, sk_timer_t or sk_async_t handles it
 * watches, nor the before-sleep hooks; the caller embeds them in its own structs and
 * must stop (remove) them before freeing that memory. sk_loop_free names any it finds
 * still registered. All functions except sk_async_send() must be called from the loop's
 * own thread.
 *
 * A turn: run the before-sleep list (one list, in phase order, see sk_loop_phase_t),
 * wait for events, run the I/O callbacks, run the due timers. */
#ifndef SK_LOOP_LOOP_H
#define SK_LOOP_LOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sk_loop sk_loop_t;
typedef struct sk_io sk_io_t;
typedef struct sk_timer sk_timer_t;
typedef struct sk_async sk_async_t;

enum { SK_IO_READ = 1, SK_IO_WRITE = 2, SK_IO_HUP = 4, SK_IO_ERR = 8 };

/** Called with the events that fired (SK_IO_* bits). */
typedef void (*sk_io_cb)(sk_loop_t *loop, sk_io_t *io, unsigned events);
typedef void (*sk_timer_cb)(sk_loop_t *loop, sk_timer_t *timer);
typedef void (*sk_async_cb)(sk_loop_t *loop, sk_async_t *async);
typedef void (*sk_hook_cb)(sk_loop_t *loop, void *arg);

/** A watched file descriptor. Events are edge-triggered: a callback must read (or
 *  write) until EAGAIN, or until a short read proves the socket is drained. */
struct sk_io {
    int fd;
    unsigned mask;
    bool active;
    sk_io_cb cb;
    void *data; /* free for the owner */
    sk_io_t *loop_prev, *loop_next; /* the loop's list of active handles */
};

struct sk_timer {
    uint64_t when_ms; /* loop-relative monotonic deadline */
    uint32_t heap_index; /* 0 = not armed */
    sk_timer_cb cb;
    void *data;
};

/** A wake-up that any thread may send; the callback runs on the loop's thread.
 *  Several sends before the loop wakes are coalesced into one callback. */
struct sk_async {
    sk_io_t io;
    _Atomic int pending;
    sk_async_cb cb;
    void *data;
};

/** Creates a loop. Returns NULL and sets errno when epoll cannot be created. */
sk_loop_t *sk_loop_new(void);
/** Frees the loop. The loop owns no handle, so it cannot close one; a handle still
 *  registered (an I/O watcher, an armed timer, a before-sleep hook) is its owner's bug:
 *  a leaked fd, or a callback into freed memory had the loop run on. Each one is logged
 *  as an error ("... still registered at sk_loop_free") and counted. Returns that count,
 *  0 for a clean loop; unit tests assert on it and the integration tests fail on the
 *  log line. */
int sk_loop_free(sk_loop_t *loop);

/** Starts watching io->fd for `mask` (SK_IO_READ | SK_IO_WRITE). Returns 0 or -errno. */
int sk_io_start(sk_loop_t *loop, sk_io_t *io, int fd, unsigned mask, sk_io_cb cb);
/** Changes the watched events. Returns 0 or -errno. */
int sk_io_modify(sk_loop_t *loop, sk_io_t *io, unsigned mask);
/** Stops watching; safe to call twice. Does not close the fd. */
void sk_io_stop(sk_loop_t *loop, sk_io_t *io);

/** Arms (or re-arms) a one-shot timer to fire after `ms` milliseconds. */
void sk_timer_start(sk_loop_t *loop, sk_timer_t *t, uint64_t ms, sk_timer_cb cb);
/** Disarms a timer; safe to call when not armed. */
void sk_timer_stop(sk_loop_t *loop, sk_timer_t *t);
static inline bool sk_timer_armed(const sk_timer_t *t)
{
    return t->heap_index != 0;
}

/** Creates the eventfd behind an async handle and starts watching it. Returns 0 or -errno. */
int sk_async_init(sk_loop_t *loop, sk_async_t *a, sk_async_cb cb);
/** Wakes the loop from any thread. Cheap when a wake-up is already pending. */
void sk_async_send(sk_async_t *a);
/** Stops watching and closes the eventfd. */
void sk_async_close(sk_loop_t *loop, sk_async_t *a);

/** The before-sleep list runs just before every wait for events, after every callback
 *  of the turn: by phase, in this order, and within a phase in the order added.
 *
 *  OUTPUT first: the turn's answers leave (one write per connection) and what the turn
 *  closed is freed. HANDOFF last: threads that wait on this turn's work are woken (a
 *  worker wakes the ledger once per turn for every purchase the turn queued). This
 *  order is chosen: woken last, the ledger gets the core the worker is about to give
 *  up in epoll_wait, instead of preempting it in the middle of its writes when both
 *  share a core; on separate cores the cost is the time of the turn's writes, and no
 *  answer of this turn waits on the ledger (its answers come back in a later turn). */
typedef enum {
    SK_LOOP_PHASE_OUTPUT = 0,
    SK_LOOP_PHASE_HANDOFF = 1,
} sk_loop_phase_t;

/** Adds `cb` to the before-sleep list in `phase`. Never fails. Not from inside a
 *  before-sleep hook. */
void sk_loop_add_before_sleep(sk_loop_t *loop, sk_loop_phase_t phase, sk_hook_cb cb, void *arg);
/** Removes the hook added with the same cb and arg; nothing if there is none. Not from
 *  inside a before-sleep hook. */
void sk_loop_remove_before_sleep(sk_loop_t *loop, sk_hook_cb cb, void *arg);

/** Runs until sk_loop_stop(). Returns 0, or -errno if epoll_wait fails. */
int sk_loop_run(sk_loop_t *loop);
/** Makes sk_loop_run() return after the current turn. Loop thread only. */
void sk_loop_stop(sk_loop_t *loop);

/** Monotonic milliseconds, cached once per loop turn. */
uint64_t sk_loop_now(const sk_loop_t *loop);
/** Refreshes the cached time (after long work inside a callback). */
void sk_loop_update_time(sk_loop_t *loop);

#endif
