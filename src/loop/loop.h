/* The event loop: one per thread, never shared. Two backends behind one interface,
 * chosen when the loop is made: epoll (loop.c, the fallback that runs everywhere) and
 * io_uring (uring.c), where the loop itself receives, sends and accepts, and a whole
 * turn's sends leave in one submission.
 *
 * Ownership: the loop owns none of the sk_io_t, sk_timer_t or sk_async_t handles it
 * watches, nor the before-sleep hooks; the caller embeds them in its own structs and
 * must stop (remove) them before freeing that memory. sk_loop_free names any it finds
 * still registered. What a backend keeps for a handle (received bytes, bytes not sent
 * yet, operations in flight) is the loop's own and outlives the handle until the
 * kernel is done with it. All functions except sk_async_send() must be called from the
 * loop's own thread.
 *
 * A turn: run the before-sleep list (one list, in phase order, see sk_loop_phase_t),
 * wait for events (io_uring: after submitting the turn's operations in the same call),
 * run the I/O callbacks, run the due timers. */
#ifndef SK_LOOP_LOOP_H
#define SK_LOOP_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct sk_loop sk_loop_t;
typedef struct sk_io sk_io_t;
typedef struct sk_timer sk_timer_t;
typedef struct sk_async sk_async_t;

/* Events (and, for sk_io_start, what to watch). SK_IO_STREAM and SK_IO_ACCEPT are modes
 * of a handle, given to sk_io_start only:
 *  - SK_IO_STREAM: a connected socket read and written with sk_io_read/sk_io_write
 *    (never read(2)/write(2) on the fd). SK_IO_READ fires when bytes or the end arrived,
 *    SK_IO_WRITE when written bytes left (see sk_io_write); both are always watched.
 *  - SK_IO_ACCEPT: a listening socket whose connections come from sk_io_accept;
 *    SK_IO_READ fires when there are some.
 * Without a mode, a handle reports readiness only (the owner does its own I/O). */
enum { SK_IO_READ = 1, SK_IO_WRITE = 2, SK_IO_HUP = 4, SK_IO_ERR = 8, SK_IO_STREAM = 16, SK_IO_ACCEPT = 32 };

/** The backend of a loop. AUTO: io_uring when the kernel offers what the loop needs and
 *  lets this process use it, else epoll. */
typedef enum { SK_LOOP_IO_AUTO = 0, SK_LOOP_IO_EPOLL, SK_LOOP_IO_URING } sk_loop_io_t;

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
    void *be; /* the backend's state for this handle (io_uring), owned by the loop */
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

/** Creates an epoll loop. Returns NULL and sets errno when epoll cannot be created. */
sk_loop_t *sk_loop_new(void);
/** Creates a loop over `io`. URING fails (NULL, errno set: ENOSYS or EPERM when the
 *  kernel lacks io_uring or refuses it to this process, EOPNOTSUPP when it lacks a
 *  feature the loop needs: multishot receive and accept, provided buffer rings); AUTO
 *  then falls back to epoll, and says why once at info level. */
sk_loop_t *sk_loop_new_io(sk_loop_io_t io);
/** Like sk_loop_new_io; with io_uring, a submission queue of `uring_entries` (0: the
 *  default). For tests, where a tiny queue fills up. */
sk_loop_t *sk_loop_new_sized(sk_loop_io_t io, unsigned uring_entries);
/** The backend a loop runs on (never AUTO). */
sk_loop_io_t sk_loop_io(const sk_loop_t *loop);
/** "epoll", "uring" or "auto". */
const char *sk_loop_io_name(sk_loop_io_t io);
/** Parses "epoll", "uring" or "auto". Returns 0 or -EINVAL. */
int sk_loop_io_parse(const char *s, sk_loop_io_t *io);
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
/** Stops watching; safe to call twice. Does not close the fd (the owner closes it at
 *  once if it likes: operations the loop still has in flight on it are cancelled, bytes
 *  not sent yet are dropped). */
void sk_io_stop(sk_loop_t *loop, sk_io_t *io);

/** Reads from an SK_IO_STREAM handle, like read(2): the bytes (> 0), 0 at the end of the
 *  stream, or -1 with errno (EAGAIN: nothing now, SK_IO_READ will say when; ECONNRESET
 *  and the like). A read shorter than `len` means nothing more is there now. */
ssize_t sk_io_read(sk_loop_t *loop, sk_io_t *io, void *buf, size_t len);
/** Writes to an SK_IO_STREAM handle, like write(2): returns the bytes taken (all, or part
 *  of them) or -1 with errno (EAGAIN: nothing was taken, SK_IO_WRITE fires when there is
 *  room; EPIPE, ECONNRESET and the like). With io_uring the bytes are copied and leave
 *  with the turn's one submission: until they left, sk_io_unsent counts them. */
ssize_t sk_io_write(sk_loop_t *loop, sk_io_t *io, const void *buf, size_t len);
/** Bytes taken by sk_io_write that have not been handed to the kernel yet (always 0
 *  with epoll). When it returns more than 0, SK_IO_WRITE fires once they all left (or
 *  SK_IO_ERR if they cannot): the moment to close a connection after its last answer. */
size_t sk_io_unsent(sk_loop_t *loop, sk_io_t *io);
/** Accepts a connection on an SK_IO_ACCEPT handle, like accept4(2) with SOCK_NONBLOCK
 *  and SOCK_CLOEXEC: the new fd (owned by the caller), the peer's address in *ss and *sl
 *  when ss is not NULL; or -1 with errno (EAGAIN: none now; EMFILE and the like). A
 *  connection handed over with ss always comes with its address: with io_uring, one
 *  reset before it was taken (whose peer can no longer be named) is closed instead. */
int sk_io_accept(sk_loop_t *loop, sk_io_t *io, struct sockaddr_storage *ss, socklen_t *sl);

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

/** Says that a HANDOFF hook has work this turn (another thread to wake). With io_uring
 *  the turn's output otherwise leaves with the submission that also waits, after the
 *  hooks: then the loop hands it to the kernel first, before the HANDOFF phase, so that
 *  a woken thread on the same core never runs ahead of this turn's answers (one more
 *  system call in such turns only). With epoll the output was written already. */
void sk_loop_handoff_pending(sk_loop_t *loop);

/** Adds `cb` to the before-sleep list in `phase`. Never fails. Not from inside a
 *  before-sleep hook. */
void sk_loop_add_before_sleep(sk_loop_t *loop, sk_loop_phase_t phase, sk_hook_cb cb, void *arg);
/** Removes the hook added with the same cb and arg; nothing if there is none. Not from
 *  inside a before-sleep hook. */
void sk_loop_remove_before_sleep(sk_loop_t *loop, sk_hook_cb cb, void *arg);

/** Runs until sk_loop_stop(). Returns 0, or -errno when waiting for events failed for
 *  good. Transient failures (EINTR; with io_uring also ETIME, EAGAIN, EBUSY, ENOMEM,
 *  after a short back-off when nothing completed) are only a turn without events, and
 *  operations the kernel had no room for wait for the next turn: neither ends the loop. */
int sk_loop_run(sk_loop_t *loop);
/** sk_loop_run for a thread the process cannot do without (a server's worker, a
 *  ledger): a failure ends the process (_exit(1)) with one error line naming `who`,
 *  rather than leave a dead thread in a live process. */
void sk_loop_run_or_exit(sk_loop_t *loop, const char *who);
/** Makes sk_loop_run() return after the current turn. Loop thread only. */
void sk_loop_stop(sk_loop_t *loop);

/** Monotonic milliseconds, cached once per loop turn. */
uint64_t sk_loop_now(const sk_loop_t *loop);
/** Refreshes the cached time (after long work inside a callback). */
void sk_loop_update_time(sk_loop_t *loop);

#endif
