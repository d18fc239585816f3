/* The io_uring backend of the loop: the loop does the I/O itself, so that a turn costs
 * one system call however many connections it serves.
 *
 *  - A stream handle (SK_IO_STREAM) has one multishot receive armed at all times; the
 *    kernel picks buffers from a ring of provided buffers (one group per loop), and the
 *    loop copies what arrived into the handle's own buffer and gives the provided one
 *    back in the same turn, so that no client holds the shared buffers. A handle whose
 *    owner stops reading (backpressure) has its receive cancelled once it holds
 *    SK_URING_RECV_MAX unread bytes (TCP's flow control then holds the client back, as
 *    with epoll); it is armed again once the owner read it down.
 *  - sk_io_write copies the bytes into the handle's pending buffer; at the end of the
 *    turn every handle with pending bytes and no send in flight gets one send, and all
 *    of them, the turn's re-armed receives included, go in the same io_uring_enter that
 *    waits for the next events. One send at a time per handle keeps the bytes in order.
 *  - A listener (SK_IO_ACCEPT) has a multishot accept armed; accepted fds wait in a
 *    queue for sk_io_accept.
 *  - An async handle's eventfd has a read armed: the kernel reads the counter.
 *  - Any other handle reports readiness through a multishot poll.
 *
 * Every operation carries its handle's state (uio_t) in its user data, with the kind of
 * operation in the low bits. That state is the loop's: sk_io_stop detaches it from the
 * sk_io_t and cancels its operations, and it is freed when the last of them completed
 * (its reference count), so a completion never reaches memory the owner freed. Nothing
 * is ever prepared for a stopped handle, and every operation is prepared right before
 * the submission, so an fd number closed (and perhaps reused by an accept) after
 * sk_io_stop is never named by a submission: cancellations go by user data.
 *
 * The submission queue can fill up (many handles, a turn's sends): then what is queued
 * goes to the kernel at once, and what still finds no room (the kernel refused that
 * submission: EBUSY, EAGAIN) waits in the loop's lists for the next turn, in order,
 * cancellations first; the turn then does not sleep. Entries of a refused submission
 * stay in the queue, and the kernel takes them with the next one: nothing is lost. A
 * pending cancellation holds its handle (and its poll arming), so that the user data it
 * names cannot meanwhile belong to another handle; a stopped handle's entries still in
 * the queue become no-ops, so that its fd, closed and perhaps reused, is never named. The wait's transient failures
 * (EINTR, ETIME, EAGAIN, EBUSY, ENOMEM) are only a turn without events; any other ends
 * sk_loop_run with the error.
 *
 * The ring is made with SINGLE_ISSUER and DEFER_TASKRUN where the kernel has them: the
 * completions' work runs when the loop's thread asks for events, not as interrupts of
 * its work. The loop must then be run by the thread that made it (every loop is). */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop/backend.h"
#include "util/buf.h"
#include "util/common.h"

#define SK_URING_ENTRIES 2048 /* submission queue; completions get 8 times that */
#define SK_URING_BUFS 2048 /* provided receive buffers, a power of two */
#define SK_URING_BUF_SIZE 2048 /* bytes each: a request or two */
#define SK_URING_BGID 0
#define SK_URING_RECV_MAX (64 * 1024) /* received and unread bytes before the receive stops */
#define SK_URING_SEND_MAX (64 * 1024) /* bytes taken and not yet sent before EAGAIN: about a socket buffer */
#define SK_URING_ACCEPT_RETRY_MS 100 /* after an accept failed (EMFILE): try again then */
#define SK_IO_ASYNC_KIND 64 /* an internal mode: the handle of an sk_async_t */

/* OP_VOID: an operation of a stopped handle turned into a no-op before the kernel took it. */
enum { OP_RECV = 1, OP_SEND = 2, OP_ACCEPT = 3, OP_POLL = 4, OP_ASYNC = 5, OP_VOID = 6, OP_TAG_MASK = 7 };

typedef struct uio uio_t;
struct uio {
    sk_io_t *io; /* NULL once stopped */
    sk_loop_t *loop;
    int fd;
    unsigned mode; /* SK_IO_STREAM, SK_IO_ACCEPT, SK_IO_ASYNC_KIND, or 0: readiness */
    unsigned refs; /* 1 while attached + 1 per operation in flight */
    unsigned events; /* to report this turn */
    bool in_ready, in_flush;
    uio_t *ready_next, *flush_next;
    uio_t *all_prev, *all_next; /* every uio not yet freed, for the loop's free */

    /* Receiving (streams): what arrived and was not read yet, from rpos on. */
    bool recv_armed, recv_cancelling;
    sk_buf_t rbuf;
    size_t rpos;
    bool eof;
    int rerr;

    /* Sending (streams): pend is filled by sk_io_write, fly is in the kernel's hands. */
    bool send_armed;
    sk_buf_t pend, fly;
    size_t fly_off;
    int werr;
    bool want_write; /* the owner waits for SK_IO_WRITE */

    /* Accepting (listeners). */
    bool accept_armed;
    int *aq;
    size_t aq_head, aq_n, aq_cap;
    int aerr;
    sk_timer_t retry;

    /* Readiness (other handles) and async reads. */
    struct pollop *poll_op; /* the armed poll, NULL when none */
    struct pollop *polls; /* every arming not yet completed, the armed one included */
    unsigned poll_mask;
    uint64_t async_val;
    bool async_armed;
};

/* One arming of a readiness poll. A mask change cancels it and arms another; its late
 * completions (stale) only give the reference back. */
typedef struct pollop {
    uio_t *x;
    bool stale;
    bool done; /* its last completion came; freed once no cancellation names it */
    unsigned cancels; /* pending cancellations naming it */
    struct pollop *next; /* in x->polls */
} pollop_t;

/* A cancellation not in the submission queue yet: it holds a reference on x, and on op
 * when it cancels a poll arming. */
typedef struct {
    uio_t *x;
    pollop_t *op;
    uint64_t data;
} cancel_t;

typedef struct {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    size_t br_size;
    char *bufs;
    unsigned br_mask;
    unsigned recycled; /* buffers given back since the last submission */
    uio_t *ready, *flush; /* each holds a reference on its members */
    uio_t *all;
    cancel_t *cancels; /* to cancel at the next submission, in order */
    size_t n_cancels, cancels_cap;
    unsigned busy; /* transient wait failures in a row with nothing completed */
    sk_loop_uring_fault_cb fault; /* tests: refuses system calls */
    void *fault_arg;
} ur_t;

static const sk_loop_ops_t uring_ops;

/* ---- submissions -------------------------------------------------------------------- */

static int ring_submit(ur_t *u)
{
    if (u->fault) {
        int rc = u->fault(u->fault_arg, SK_URING_CALL_SUBMIT);
        if (rc < 0)
            return rc;
    }
    return io_uring_submit(&u->ring);
}

/* An entry of the submission queue, or NULL when there is no room even after handing
 * the queue to the kernel (it refused): the caller leaves its operation for the next
 * turn. */
static struct io_uring_sqe *get_sqe(ur_t *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) {
        /* The queue is full: hand it to the kernel (one more call this turn) and go on. */
        ring_submit(u);
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

static uint64_t tag(uio_t *x, int op)
{
    return (uint64_t)(uintptr_t)x | (uint64_t)op;
}

static void flush_later(ur_t *u, uio_t *x)
{
    if (!x->in_flush) {
        x->in_flush = true;
        x->refs++;
        x->flush_next = u->flush;
        u->flush = x;
    }
}

static void report(ur_t *u, uio_t *x, unsigned events)
{
    x->events |= events;
    if (!x->in_ready) {
        x->in_ready = true;
        x->refs++;
        x->ready_next = u->ready;
        u->ready = x;
    }
}

static void cancel_add(ur_t *u, uio_t *x, pollop_t *op, uint64_t data)
{
    if (u->n_cancels == u->cancels_cap) {
        u->cancels_cap = u->cancels_cap ? u->cancels_cap * 2 : 64;
        u->cancels = sk_xrealloc(u->cancels, u->cancels_cap * sizeof(*u->cancels));
    }
    x->refs++;
    if (op)
        op->cancels++;
    u->cancels[u->n_cancels++] = (cancel_t){.x = x, .op = op, .data = data};
}

static void cancel_op(ur_t *u, uio_t *x, int op)
{
    cancel_add(u, x, NULL, tag(x, op));
}

static void cancel_poll(ur_t *u, pollop_t *op)
{
    op->stale = true;
    cancel_add(u, op->x, op, (uint64_t)(uintptr_t)op | OP_POLL);
}

static void uio_unref(ur_t *u, uio_t *x)
{
    if (--x->refs > 0)
        return;
    /* Detached, in no list and nothing in flight: the kernel is done with it. */
    for (size_t i = 0; i < x->aq_n; i++)
        close(x->aq[(x->aq_head + i) % x->aq_cap]);
    sk_buf_free(&x->rbuf);
    free(x->aq);
    sk_buf_free(&x->pend);
    sk_buf_free(&x->fly);
    if (x->all_prev)
        x->all_prev->all_next = x->all_next;
    else
        u->all = x->all_next;
    if (x->all_next)
        x->all_next->all_prev = x->all_prev;
    free(x);
}

/* A cancellation went into the submission queue (or the loop is freed): what it held. */
static void cancel_release(ur_t *u, cancel_t *c)
{
    if (c->op && --c->op->cancels == 0 && c->op->done)
        free(c->op);
    uio_unref(u, c->x);
}

static void give_back(ur_t *u, uint16_t bid)
{
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * SK_URING_BUF_SIZE, SK_URING_BUF_SIZE, bid, (int)u->br_mask,
                          (int)u->recycled++);
}

/* Prepares what an attached handle needs: its receive, accept, poll or async read
 * armed, its pending bytes sent. Returns false when the submission queue has no room
 * left: what is not armed yet waits for the next turn (it is armed only once it has its
 * entry, so that the handle's state never says otherwise). */
static bool prepare(ur_t *u, uio_t *x)
{
    struct io_uring_sqe *sqe;
    if (x->mode == SK_IO_STREAM) {
        if (!x->recv_armed && !x->eof && !x->rerr && x->rbuf.len - x->rpos < SK_URING_RECV_MAX) {
            if (!(sqe = get_sqe(u)))
                return false;
            io_uring_prep_recv_multishot(sqe, x->fd, NULL, 0, 0);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = SK_URING_BGID;
            io_uring_sqe_set_data64(sqe, tag(x, OP_RECV));
            x->recv_armed = true;
            x->refs++;
        }
        if (!x->send_armed && !x->werr && (x->fly_off < x->fly.len || x->pend.len > 0)) {
            if (!(sqe = get_sqe(u)))
                return false;
            if (x->fly_off == x->fly.len) {
                /* Swap: the pending bytes go, the empty buffer takes the next ones. */
                sk_buf_t t = x->fly;
                x->fly = x->pend;
                x->pend = t;
                x->pend.len = 0;
                x->fly_off = 0;
            }
            /* MSG_WAITALL: the kernel sends it all before it completes, short sends aside. */
            io_uring_prep_send(sqe, x->fd, x->fly.data + x->fly_off, x->fly.len - x->fly_off,
                               MSG_NOSIGNAL | MSG_WAITALL);
            io_uring_sqe_set_data64(sqe, tag(x, OP_SEND));
            x->send_armed = true;
            x->refs++;
        }
    } else if (x->mode == SK_IO_ACCEPT) {
        if (!x->accept_armed && !sk_timer_armed(&x->retry)) {
            if (!(sqe = get_sqe(u)))
                return false;
            io_uring_prep_multishot_accept(sqe, x->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            io_uring_sqe_set_data64(sqe, tag(x, OP_ACCEPT));
            x->accept_armed = true;
            x->refs++;
        }
    } else if (x->mode == SK_IO_ASYNC_KIND) {
        if (!x->async_armed) {
            if (!(sqe = get_sqe(u)))
                return false;
            /* Offset -1: an eventfd has no position. */
            io_uring_prep_read(sqe, x->fd, &x->async_val, sizeof(x->async_val), (uint64_t)-1);
            io_uring_sqe_set_data64(sqe, tag(x, OP_ASYNC));
            x->async_armed = true;
            x->refs++;
        }
    } else if (!x->poll_op) {
        if (!(sqe = get_sqe(u)))
            return false;
        pollop_t *op = sk_xcalloc(1, sizeof(*op));
        op->x = x;
        op->next = x->polls;
        x->polls = op;
        io_uring_prep_poll_multishot(sqe, x->fd, x->poll_mask);
        io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | OP_POLL);
        x->poll_op = op;
        x->refs++;
    }
    return true;
}

/* Puts the turn's cancellations and operations into the submission queue. Returns
 * false when some did not fit (the kernel refused a submission): they stay in their
 * lists, in order, for the next turn. Cancellations go first, and nothing else goes in
 * before all of them are: an operation armed again after its cancellation must reach
 * the kernel after it. */
static bool prepare_all(ur_t *u)
{
    size_t done = 0;
    for (; done < u->n_cancels; done++) {
        struct io_uring_sqe *sqe = get_sqe(u);
        if (!sqe)
            break;
        io_uring_prep_cancel64(sqe, u->cancels[done].data, 0);
        io_uring_sqe_set_data64(sqe, 0);
        cancel_release(u, &u->cancels[done]);
    }
    if (done > 0) {
        u->n_cancels -= done;
        memmove(u->cancels, u->cancels + done, u->n_cancels * sizeof(*u->cancels));
    }
    while (u->flush && u->n_cancels == 0) {
        uio_t *x = u->flush;
        if (x->io && !prepare(u, x))
            break; /* stays first in the list, with its reference */
        u->flush = x->flush_next;
        x->in_flush = false;
        uio_unref(u, x);
    }
    if (u->recycled) {
        /* Buffers given back this turn become the kernel's again. */
        io_uring_buf_ring_advance(u->br, (int)u->recycled);
        u->recycled = 0;
    }
    return u->n_cancels == 0 && !u->flush;
}

/* ---- completions -------------------------------------------------------------------- */

static void aq_push(uio_t *x, int fd)
{
    if (x->aq_n == x->aq_cap) {
        size_t cap = x->aq_cap ? x->aq_cap * 2 : 16;
        int *q = sk_xmalloc(cap * sizeof(*q));
        for (size_t i = 0; i < x->aq_n; i++)
            q[i] = x->aq[(x->aq_head + i) % x->aq_cap];
        free(x->aq);
        x->aq = q;
        x->aq_cap = cap;
        x->aq_head = 0;
    }
    x->aq[(x->aq_head + x->aq_n) % x->aq_cap] = fd;
    x->aq_n++;
}

static size_t unsent(const uio_t *x)
{
    return x->pend.len + (x->fly.len - x->fly_off);
}

static void on_recv(ur_t *u, uio_t *x, int res, unsigned flags)
{
    bool more = flags & IORING_CQE_F_MORE;
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        if (x->io) {
            if (x->rpos == x->rbuf.len)
                x->rpos = x->rbuf.len = 0;
            sk_buf_append(&x->rbuf, u->bufs + (size_t)bid * SK_URING_BUF_SIZE, (size_t)res);
            report(u, x, SK_IO_READ);
        }
        give_back(u, bid);
        if (x->io) {
            if (x->rbuf.len - x->rpos >= SK_URING_RECV_MAX && more && !x->recv_cancelling) {
                /* The owner is not reading: stop taking buffers for it. */
                x->recv_cancelling = true;
                cancel_op(u, x, OP_RECV);
            }
        }
    } else if (res == 0) {
        if (x->io) {
            x->eof = true;
            report(u, x, SK_IO_READ | SK_IO_HUP);
        }
    } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
        if (x->io) {
            x->rerr = -res;
            report(u, x, SK_IO_READ | SK_IO_ERR);
        }
    }
    if (!more) {
        /* The receive ended (the end of the stream, an error, no buffer left, a
         * cancellation): armed again at the submission if the handle still wants it. */
        x->recv_armed = false;
        x->recv_cancelling = false;
        if (x->io)
            flush_later(u, x);
        uio_unref(u, x);
    }
}

static void on_send(ur_t *u, uio_t *x, int res)
{
    x->send_armed = false;
    if (x->io) {
        if (res < 0) {
            if (res != -ECANCELED) {
                x->werr = -res;
                report(u, x, SK_IO_ERR | SK_IO_READ);
            }
        } else {
            x->fly_off += (size_t)res;
            if (x->fly_off == x->fly.len) {
                x->fly.len = x->fly_off = 0;
                if (x->fly.cap > SK_URING_SEND_MAX)
                    sk_buf_free(&x->fly); /* one big answer does not keep its buffer */
            }
            if (unsent(x) > 0)
                flush_later(u, x); /* the rest of a short send, or what came meanwhile */
            if (x->want_write && (unsent(x) == 0 || unsent(x) < SK_URING_SEND_MAX / 2)) {
                x->want_write = false;
                report(u, x, SK_IO_WRITE);
            }
        }
    }
    uio_unref(u, x);
}

static void accept_retry(sk_loop_t *loop, sk_timer_t *t)
{
    uio_t *x = SK_CONTAINER_OF(t, uio_t, retry);
    if (x->io)
        flush_later(loop->be, x);
}

static void on_accept(ur_t *u, uio_t *x, int res, unsigned flags)
{
    if (res >= 0) {
        if (x->io) {
            aq_push(x, res);
            report(u, x, SK_IO_READ);
        } else {
            close(res);
        }
    } else if (res != -ECANCELED && x->io) {
        x->aerr = -res;
        report(u, x, SK_IO_READ);
    }
    if (!(flags & IORING_CQE_F_MORE)) {
        x->accept_armed = false;
        if (x->io) {
            if (res < 0 && res != -ECANCELED)
                sk_timer_start(x->loop, &x->retry, SK_URING_ACCEPT_RETRY_MS, accept_retry);
            else
                flush_later(u, x);
        }
        uio_unref(u, x);
    }
}

static void on_poll(ur_t *u, pollop_t *op, int res, unsigned flags)
{
    uio_t *x = op->x;
    if (x->io && !op->stale && res >= 0)
        report(u, x, sk_loop_poll_events((uint32_t)res));
    if (!(flags & IORING_CQE_F_MORE)) {
        if (x->poll_op == op) {
            x->poll_op = NULL; /* ended by itself: armed again */
            if (x->io)
                flush_later(u, x);
        }
        for (pollop_t **pp = &x->polls; *pp; pp = &(*pp)->next) {
            if (*pp == op) {
                *pp = op->next;
                break;
            }
        }
        op->done = true;
        if (op->cancels == 0)
            free(op);
        uio_unref(u, x);
    }
}

static void on_async(ur_t *u, uio_t *x, int res)
{
    x->async_armed = false;
    if (x->io) {
        if (res == (int)sizeof(x->async_val))
            report(u, x, SK_IO_READ);
        flush_later(u, x);
    }
    uio_unref(u, x);
}

static void complete(ur_t *u, uint64_t data, int res, unsigned flags)
{
    if (data == 0)
        return; /* a cancellation's own completion */
    void *p = (void *)(uintptr_t)(data & ~(uint64_t)OP_TAG_MASK);
    uio_t *x = p;
    switch ((int)(data & OP_TAG_MASK)) {
    case OP_RECV:
        on_recv(u, x, res, flags);
        break;
    case OP_SEND:
        on_send(u, x, res);
        break;
    case OP_ACCEPT:
        on_accept(u, x, res, flags);
        break;
    case OP_POLL:
        on_poll(u, p, res, flags);
        break;
    case OP_ASYNC:
        on_async(u, x, res);
        break;
    case OP_VOID:
        uio_unref(u, x);
        break;
    }
}

static void ur_submit(sk_loop_t *loop)
{
    ur_t *u = loop->be;
    prepare_all(u);
    ring_submit(u); /* refused: its entries stay queued for the wait's submission */
}

/* A failure of the wait that only makes the turn one without events: a signal, the
 * time out, the kernel short of memory for a while, the completions' overflow (EBUSY:
 * reaping them makes room). */
static bool transient(int rc)
{
    return rc == -EINTR || rc == -ETIME || rc == -EAGAIN || rc == -EBUSY || rc == -ENOMEM;
}

static int ur_wait(sk_loop_t *loop, int timeout_ms)
{
    ur_t *u = loop->be;
    if (!prepare_all(u))
        timeout_ms = 0; /* operations wait for room in the queue: no sleep */
    struct __kernel_timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
        tsp = &ts;
    }
    struct io_uring_cqe *cqe;
    /* Submits the turn's operations and waits, in one call. */
    int rc = u->fault ? u->fault(u->fault_arg, SK_URING_CALL_WAIT) : 0;
    if (rc == 0)
        rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, tsp, NULL);
    if (rc < 0 && !transient(rc))
        return rc;
    sk_loop_update_time(loop);
    unsigned head, n = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        complete(u, cqe->user_data, cqe->res, cqe->flags);
        n++;
    }
    io_uring_cq_advance(&u->ring, n);
    if (rc < 0 && rc != -EINTR && rc != -ETIME && n == 0) {
        /* The kernel is short of something and nothing completed to make room: back
         * off a little (up to 10 ms), rather than spin on the refusals. */
        u->busy = SK_MIN(u->busy + 1, 10u);
        struct timespec d = {.tv_sec = 0, .tv_nsec = (long)u->busy * 1000000};
        nanosleep(&d, NULL);
        sk_loop_update_time(loop);
    } else {
        u->busy = 0;
    }
    /* Then the callbacks, one per handle with everything it got this turn. */
    while (u->ready) {
        uio_t *x = u->ready;
        u->ready = x->ready_next;
        x->in_ready = false;
        unsigned ev = x->events;
        x->events = 0;
        sk_io_t *io = x->io;
        if (io && io->active && ev) {
            if (x->mode == SK_IO_ASYNC_KIND)
                sk_loop_async_fire(loop, SK_CONTAINER_OF(io, sk_async_t, io));
            else
                io->cb(loop, io, ev);
        }
        uio_unref(u, x);
    }
    return 0;
}

/* ---- handles ------------------------------------------------------------------------ */

static unsigned to_poll(unsigned mask)
{
    unsigned m = POLLRDHUP;
    if (mask & SK_IO_READ)
        m |= POLLIN;
    if (mask & SK_IO_WRITE)
        m |= POLLOUT;
    return m;
}

static int ur_io_start(sk_loop_t *loop, sk_io_t *io)
{
    ur_t *u = loop->be;
    uio_t *x = sk_xcalloc(1, sizeof(*x));
    x->io = io;
    x->loop = loop;
    x->fd = io->fd;
    x->refs = 1;
    x->mode = io->mask & SK_IO_STREAM       ? SK_IO_STREAM
              : io->mask & SK_IO_ACCEPT     ? SK_IO_ACCEPT
              : io->mask & SK_IO_ASYNC_KIND ? SK_IO_ASYNC_KIND
                                            : 0;
    x->poll_mask = x->mode ? 0 : to_poll(io->mask);
    x->all_next = u->all;
    if (u->all)
        u->all->all_prev = x;
    u->all = x;
    io->be = x;
    flush_later(u, x);
    return 0;
}

static int ur_io_modify(sk_loop_t *loop, sk_io_t *io, unsigned mask)
{
    ur_t *u = loop->be;
    uio_t *x = io->be;
    if (x->mode)
        return 0; /* streams, listeners and async handles always watch what they need */
    x->poll_mask = to_poll(mask);
    if (x->poll_op) {
        /* The armed poll watches the old mask: cancel it (its last completion only
         * gives its reference back) and arm one with the new mask. */
        cancel_poll(u, x->poll_op);
        x->poll_op = NULL;
    }
    flush_later(u, x);
    return 0;
}

/* Entries prepared for a handle that the kernel has not taken yet (its submission was
 * refused) name the handle's fd, which the owner may close, and an accept reuse, before
 * they go: they become no-ops (a poll keeps its tag, whose completion without MORE ends
 * it; the others complete as OP_VOID). The kernel takes entries only inside
 * io_uring_enter, on this thread: those from its head to the local tail are untouched. */
static void void_queued(ur_t *u, uio_t *x)
{
    struct io_uring_sq *sq = &u->ring.sq;
    for (unsigned i = *sq->khead; i != sq->sqe_tail; i++) {
        struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
        uint64_t data = sqe->user_data;
        int op = (int)(data & OP_TAG_MASK);
        void *p = (void *)(uintptr_t)(data & ~(uint64_t)OP_TAG_MASK);
        if (op == 0 || op == OP_VOID || (op == OP_POLL ? ((pollop_t *)p)->x != x : p != x))
            continue;
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, op == OP_POLL ? data : tag(x, OP_VOID));
    }
}

static void ur_io_stop(sk_loop_t *loop, sk_io_t *io)
{
    ur_t *u = loop->be;
    uio_t *x = io->be;
    io->be = NULL;
    if (!x)
        return;
    x->io = NULL;
    sk_timer_stop(loop, &x->retry);
    void_queued(u, x);
    if (x->recv_armed && !x->recv_cancelling)
        cancel_op(u, x, OP_RECV);
    if (x->send_armed)
        cancel_op(u, x, OP_SEND);
    if (x->accept_armed)
        cancel_op(u, x, OP_ACCEPT);
    if (x->poll_op) {
        cancel_poll(u, x->poll_op);
        x->poll_op = NULL;
    }
    if (x->async_armed)
        cancel_op(u, x, OP_ASYNC);
    uio_unref(u, x);
}

static ssize_t ur_io_read(sk_loop_t *loop, sk_io_t *io, void *buf, size_t len)
{
    ur_t *u = loop->be;
    uio_t *x = io->be;
    if (!x) {
        errno = EBADF;
        return -1;
    }
    size_t got = SK_MIN(len, x->rbuf.len - x->rpos);
    if (got) {
        memcpy(buf, x->rbuf.data + x->rpos, got);
        x->rpos += got;
        if (x->rpos == x->rbuf.len) {
            x->rpos = x->rbuf.len = 0;
            if (x->rbuf.cap > SK_URING_RECV_MAX)
                sk_buf_free(&x->rbuf); /* one big request does not keep its buffer */
        }
    }
    if (!x->recv_armed && !x->eof && !x->rerr && x->rbuf.len - x->rpos < SK_URING_RECV_MAX / 2)
        flush_later(u, x); /* read down after a pause: receive again */
    if (got > 0)
        return (ssize_t)got;
    if (x->rerr) {
        errno = x->rerr;
        return -1;
    }
    if (x->eof)
        return 0;
    errno = EAGAIN;
    return -1;
}

static ssize_t ur_io_write(sk_loop_t *loop, sk_io_t *io, const void *buf, size_t len)
{
    ur_t *u = loop->be;
    uio_t *x = io->be;
    if (!x) {
        errno = EBADF;
        return -1;
    }
    if (x->werr) {
        errno = x->werr;
        return -1;
    }
    size_t have = unsent(x);
    if (have >= SK_URING_SEND_MAX) {
        x->want_write = true;
        errno = EAGAIN;
        return -1;
    }
    size_t take = SK_MIN(len, SK_URING_SEND_MAX - have);
    sk_buf_append(&x->pend, buf, take);
    flush_later(u, x);
    return (ssize_t)take;
}

static size_t ur_io_unsent(sk_loop_t *loop, sk_io_t *io)
{
    (void)loop;
    uio_t *x = io->be;
    if (!x)
        return 0;
    size_t n = unsent(x);
    if (n > 0)
        x->want_write = true;
    return n;
}

static int ur_io_accept(sk_loop_t *loop, sk_io_t *io, struct sockaddr_storage *ss, socklen_t *sl)
{
    (void)loop;
    uio_t *x = io->be;
    if (!x) {
        errno = EBADF;
        return -1;
    }
    while (x->aq_n > 0) {
        int fd = x->aq[x->aq_head];
        x->aq_head = (x->aq_head + 1) % x->aq_cap;
        x->aq_n--;
        /* The kernel accepted it earlier, without the address (one multishot accept has
         * no place to put one per connection): ask now. A connection reset in between
         * can no longer be named, and is not handed over: its owner could serve the
         * requests still in its socket without the peer's address, past every rule
         * keyed on it (deny lists, rate limits), and no answer can reach the client
         * anyway. (accept4(2), the epoll path, names even such a peer.) */
        if (ss && getpeername(fd, (struct sockaddr *)ss, sl) < 0) {
            close(fd);
            continue;
        }
        return fd;
    }
    if (x->aerr) {
        errno = x->aerr;
        x->aerr = 0;
        return -1;
    }
    errno = EAGAIN;
    return -1;
}

static int ur_async_start(sk_loop_t *loop, sk_async_t *a)
{
    /* The kernel's read waits for a send; on a non-blocking eventfd it would fail at once
     * with EAGAIN instead. Sends never block: the counter cannot fill up. */
    int fl = fcntl(a->io.fd, F_GETFL);
    if (fl < 0 || fcntl(a->io.fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -errno;
    return sk_io_start(loop, &a->io, a->io.fd, SK_IO_READ | SK_IO_ASYNC_KIND, NULL);
}

static void ur_free(sk_loop_t *loop)
{
    ur_t *u = loop->be;
    /* Tearing the ring down cancels whatever is still in flight; the states go with it. */
    io_uring_queue_exit(&u->ring);
    for (size_t i = 0; i < u->n_cancels; i++) {
        pollop_t *op = u->cancels[i].op;
        if (op && --op->cancels == 0 && op->done)
            free(op); /* ended already: in no handle's list */
    }
    while (u->all) {
        uio_t *x = u->all;
        u->all = x->all_next;
        for (size_t i = 0; i < x->aq_n; i++)
            close(x->aq[(x->aq_head + i) % x->aq_cap]);
        sk_buf_free(&x->rbuf);
        free(x->aq);
        sk_buf_free(&x->pend);
        sk_buf_free(&x->fly);
        if (x->io)
            x->io->be = NULL;
        while (x->polls) {
            pollop_t *op = x->polls;
            x->polls = op->next;
            free(op);
        }
        free(x);
    }
    munmap(u->br, u->br_size);
    free(u->bufs);
    free(u->cancels);
    free(u);
}

static const sk_loop_ops_t uring_ops = {
    .io = SK_LOOP_IO_URING,
    .free = ur_free,
    .io_start = ur_io_start,
    .io_modify = ur_io_modify,
    .io_stop = ur_io_stop,
    .io_read = ur_io_read,
    .io_write = ur_io_write,
    .io_unsent = ur_io_unsent,
    .io_accept = ur_io_accept,
    .async_start = ur_async_start,
    .submit = ur_submit,
    .wait = ur_wait,
};

/* ---- set-up ------------------------------------------------------------------------- */

/* The kernel has everything the loop uses: the opcodes, and multishot receive, which
 * came with the kernel that brought zero-copy send (6.0): no flag tells it apart, so
 * the zero-copy opcode stands for it. */
static bool has_features(struct io_uring *ring)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (!p)
        return false;
    static const int ops[] = {IORING_OP_RECV,         IORING_OP_SEND, IORING_OP_ACCEPT, IORING_OP_POLL_ADD,
                              IORING_OP_ASYNC_CANCEL, IORING_OP_READ, IORING_OP_SEND_ZC};
    bool ok = true;
    for (size_t i = 0; i < SK_ARRAY_LEN(ops); i++)
        ok = ok && io_uring_opcode_supported(p, ops[i]);
    io_uring_free_probe(p);
    return ok;
}

int sk_loop_uring_init(sk_loop_t *loop, unsigned entries)
{
    if (entries == 0)
        entries = SK_URING_ENTRIES;
    ur_t *u = sk_xcalloc(1, sizeof(*u));
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
              IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = entries * 8;
    int rc = io_uring_queue_init_params(entries, &u->ring, &p);
    if (rc == -EINVAL) {
        /* A kernel before 6.1: without deferred task work. */
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
        p.cq_entries = entries * 8;
        rc = io_uring_queue_init_params(entries, &u->ring, &p);
    }
    if (rc < 0) {
        free(u);
        return rc;
    }
    if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG) || !has_features(&u->ring)) {
        rc = -EOPNOTSUPP;
        goto fail_ring;
    }
    u->br_size = SK_URING_BUFS * sizeof(struct io_uring_buf);
    u->br = mmap(NULL, u->br_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (u->br == MAP_FAILED) {
        rc = -errno;
        goto fail_ring;
    }
    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)u->br, .ring_entries = SK_URING_BUFS, .bgid = SK_URING_BGID};
    rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (rc < 0) {
        rc = rc == -EINVAL ? -EOPNOTSUPP : rc;
        goto fail_map;
    }
    io_uring_buf_ring_init(u->br);
    u->br_mask = (unsigned)io_uring_buf_ring_mask(SK_URING_BUFS);
    u->bufs = sk_xmalloc((size_t)SK_URING_BUFS * SK_URING_BUF_SIZE);
    for (unsigned i = 0; i < SK_URING_BUFS; i++)
        io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * SK_URING_BUF_SIZE, SK_URING_BUF_SIZE, (unsigned short)i,
                              (int)u->br_mask, (int)i);
    io_uring_buf_ring_advance(u->br, SK_URING_BUFS);
    loop->ops = &uring_ops;
    loop->be = u;
    return 0;
fail_map:
    munmap(u->br, u->br_size);
fail_ring:
    io_uring_queue_exit(&u->ring);
    free(u);
    return rc;
}

void sk_loop_uring_set_fault(sk_loop_t *loop, sk_loop_uring_fault_cb fault, void *arg)
{
    if (loop->ops != &uring_ops)
        return;
    ur_t *u = loop->be;
    u->fault = fault;
    u->fault_arg = arg;
}
