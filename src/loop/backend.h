/* What the loop's two backends share, and nothing outside src/loop/ includes: the loop
 * itself (timers, the before-sleep list, the clock, the list of handles) and the table
 * of operations a backend fills in. loop.c has the common part and epoll; uring.c has
 * io_uring. */
#ifndef SK_LOOP_BACKEND_H
#define SK_LOOP_BACKEND_H

#include "loop/loop.h"

typedef struct {
    sk_loop_phase_t phase;
    sk_hook_cb cb;
    void *arg;
} sk_loop_hook_t;

typedef struct sk_loop_ops {
    sk_loop_io_t io;
    void (*free)(sk_loop_t *loop);
    int (*io_start)(sk_loop_t *loop, sk_io_t *io);
    int (*io_modify)(sk_loop_t *loop, sk_io_t *io, unsigned mask);
    void (*io_stop)(sk_loop_t *loop, sk_io_t *io);
    ssize_t (*io_read)(sk_loop_t *loop, sk_io_t *io, void *buf, size_t len);
    ssize_t (*io_write)(sk_loop_t *loop, sk_io_t *io, const void *buf, size_t len);
    size_t (*io_unsent)(sk_loop_t *loop, sk_io_t *io);
    int (*io_accept)(sk_loop_t *loop, sk_io_t *io, struct sockaddr_storage *ss, socklen_t *sl);
    /* An async handle's eventfd: watched so that the callback runs after a send. With
     * epoll the callback reads the counter; io_uring reads it for the loop. */
    int (*async_start)(sk_loop_t *loop, sk_async_t *a);
    /* Hands what the turn queued to the kernel now (io_uring; NULL for epoll). */
    void (*submit)(sk_loop_t *loop);
    /* Submits what the turn queued, waits up to timeout_ms (-1: no limit) for events
     * and runs their callbacks. Returns 0 or -errno. */
    int (*wait)(sk_loop_t *loop, int timeout_ms);
} sk_loop_ops_t;

struct sk_loop {
    const sk_loop_ops_t *ops;
    void *be; /* the backend's state */
    bool stop;
    uint64_t now_ms;
    sk_timer_t **heap; /* 1-based; heap[0] unused */
    uint32_t heap_len;
    uint32_t heap_cap;
    sk_io_t *ios; /* active I/O handles, so that sk_loop_free can name leftovers */
    sk_loop_hook_t *hooks; /* sorted by phase, then by the order added */
    size_t n_hooks, hooks_cap;
    bool in_hooks;
    bool handoff_pending; /* sk_loop_handoff_pending this turn */
};

/** The io_uring backend: sets loop->ops and loop->be. `entries`: the submission
 *  queue's size (0: the default; tests make it tiny, so that it fills up). Returns 0 or
 *  -errno (ENOSYS, EPERM: no io_uring for this process; EOPNOTSUPP: a feature is
 *  missing). */
int sk_loop_uring_init(sk_loop_t *loop, unsigned entries);

/* For tests: the io_uring system calls the loop makes, to refuse some of them. */
enum { SK_URING_CALL_SUBMIT = 1, SK_URING_CALL_WAIT = 2 };
/** Asked before every submission (SK_URING_CALL_SUBMIT) or submission-and-wait
 *  (SK_URING_CALL_WAIT): 0 makes the call, -errno is taken as its result instead. */
typedef int (*sk_loop_uring_fault_cb)(void *arg, int call);
/** For tests: sets (NULL: clears) the fault callback of an io_uring loop; nothing for an
 *  epoll loop. */
void sk_loop_uring_set_fault(sk_loop_t *loop, sk_loop_uring_fault_cb fault, void *arg);

/** Runs an async handle's callback (the backend read its eventfd, or there is none to
 *  read): clears the pending flag first, so that a send racing with the callback is
 *  never lost. */
void sk_loop_async_fire(sk_loop_t *loop, sk_async_t *a);

/** Translates epoll/poll event bits (EPOLLIN == POLLIN and so on) into SK_IO_* bits. */
unsigned sk_loop_poll_events(uint32_t e);

#endif
