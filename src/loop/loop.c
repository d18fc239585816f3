/* The event loop's common part (a binary min-heap of timers, the before-sleep list, the
 * clock, the handles' list and what the interface does before it reaches a backend) and
 * the epoll backend: edge-triggered readiness, the owner's own read(2) and write(2), an
 * eventfd per async handle. The before-sleep list is where connections flush their
 * output and closed connections are freed, like Redis's beforeSleep, and then other
 * threads are woken, in the phase order documented in loop.h. uring.c is the other
 * backend. */
#include "loop/loop.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop/backend.h"
#include "util/common.h"

#define SK_LOOP_MAX_EVENTS 512

static uint64_t mono_ms(void)
{
    return sk_mono_ns() / 1000000u;
}

/* ---- epoll ---------------------------------------------------------------------------- */

typedef struct {
    int epfd;
} ep_t;

static const sk_loop_ops_t epoll_ops;

static int ep_init(sk_loop_t *loop)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0)
        return -errno;
    ep_t *ep = sk_xcalloc(1, sizeof(*ep));
    ep->epfd = fd;
    loop->ops = &epoll_ops;
    loop->be = ep;
    return 0;
}

static void ep_free(sk_loop_t *loop)
{
    ep_t *ep = loop->be;
    close(ep->epfd);
    free(ep);
}

static uint32_t to_epoll(unsigned mask)
{
    uint32_t ev = EPOLLET | EPOLLRDHUP;
    if (mask & (SK_IO_READ | SK_IO_STREAM | SK_IO_ACCEPT))
        ev |= EPOLLIN;
    if (mask & (SK_IO_WRITE | SK_IO_STREAM))
        ev |= EPOLLOUT;
    return ev;
}

static int ep_io_start(sk_loop_t *loop, sk_io_t *io)
{
    ep_t *ep = loop->be;
    struct epoll_event ev = {.events = to_epoll(io->mask), .data.ptr = io};
    return epoll_ctl(ep->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0 ? -errno : 0;
}

static int ep_io_modify(sk_loop_t *loop, sk_io_t *io, unsigned mask)
{
    ep_t *ep = loop->be;
    struct epoll_event ev = {.events = to_epoll(mask), .data.ptr = io};
    return epoll_ctl(ep->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0 ? -errno : 0;
}

static void ep_io_stop(sk_loop_t *loop, sk_io_t *io)
{
    ep_t *ep = loop->be;
    epoll_ctl(ep->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

static ssize_t ep_io_read(sk_loop_t *loop, sk_io_t *io, void *buf, size_t len)
{
    (void)loop;
    return read(io->fd, buf, len);
}

static ssize_t ep_io_write(sk_loop_t *loop, sk_io_t *io, const void *buf, size_t len)
{
    (void)loop;
    return write(io->fd, buf, len);
}

static size_t ep_io_unsent(sk_loop_t *loop, sk_io_t *io)
{
    (void)loop;
    (void)io;
    return 0;
}

static int ep_io_accept(sk_loop_t *loop, sk_io_t *io, struct sockaddr_storage *ss, socklen_t *sl)
{
    (void)loop;
    return accept4(io->fd, (struct sockaddr *)ss, ss ? sl : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

static void async_on_read(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    (void)events;
    sk_async_t *a = SK_CONTAINER_OF(io, sk_async_t, io);
    uint64_t v;
    /* One read takes the whole count and zeroes it; a read until EAGAIN would cost a
     * second syscall per wake-up for nothing (the next send is a new edge). */
    ssize_t r = read(io->fd, &v, sizeof(v));
    (void)r;
    sk_loop_async_fire(loop, a);
}

static int ep_async_start(sk_loop_t *loop, sk_async_t *a)
{
    return sk_io_start(loop, &a->io, a->io.fd, SK_IO_READ, async_on_read);
}

unsigned sk_loop_poll_events(uint32_t e)
{
    unsigned mask = 0;
    if (e & EPOLLIN)
        mask |= SK_IO_READ;
    if (e & EPOLLOUT)
        mask |= SK_IO_WRITE;
    if (e & (EPOLLHUP | EPOLLRDHUP))
        mask |= SK_IO_HUP | SK_IO_READ;
    if (e & EPOLLERR)
        mask |= SK_IO_ERR | SK_IO_READ;
    return mask;
}

static int ep_wait(sk_loop_t *loop, int timeout)
{
    ep_t *ep = loop->be;
    struct epoll_event events[SK_LOOP_MAX_EVENTS];
    int n = epoll_wait(ep->epfd, events, SK_LOOP_MAX_EVENTS, timeout);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    sk_loop_update_time(loop);
    for (int i = 0; i < n; i++) {
        sk_io_t *io = events[i].data.ptr;
        /* A callback may stop another handle of this batch (closing its connection);
         * such handles are never freed before the before-sleep hook, so `active` is
         * still readable here. */
        if (io->active)
            io->cb(loop, io, sk_loop_poll_events(events[i].events));
    }
    return 0;
}

static const sk_loop_ops_t epoll_ops = {
    .io = SK_LOOP_IO_EPOLL,
    .free = ep_free,
    .io_start = ep_io_start,
    .io_modify = ep_io_modify,
    .io_stop = ep_io_stop,
    .io_read = ep_io_read,
    .io_write = ep_io_write,
    .io_unsent = ep_io_unsent,
    .io_accept = ep_io_accept,
    .async_start = ep_async_start,
    .wait = ep_wait,
};

/* ---- the loop ------------------------------------------------------------------------- */

static sk_loop_t *loop_alloc(void)
{
    sk_loop_t *loop = sk_xcalloc(1, sizeof(*loop));
    loop->now_ms = mono_ms();
    loop->heap_cap = 64;
    loop->heap = sk_xmalloc(sizeof(*loop->heap) * loop->heap_cap);
    return loop;
}

static void loop_release(sk_loop_t *loop)
{
    free(loop->heap);
    free(loop->hooks);
    free(loop);
}

sk_loop_t *sk_loop_new(void)
{
    return sk_loop_new_io(SK_LOOP_IO_EPOLL);
}

sk_loop_t *sk_loop_new_io(sk_loop_io_t io)
{
    return sk_loop_new_sized(io, 0);
}

sk_loop_t *sk_loop_new_sized(sk_loop_io_t io, unsigned uring_entries)
{
    sk_loop_t *loop = loop_alloc();
    int rc = -EINVAL;
    if (io == SK_LOOP_IO_URING || io == SK_LOOP_IO_AUTO) {
        rc = sk_loop_uring_init(loop, uring_entries);
        if (rc < 0 && io == SK_LOOP_IO_AUTO) {
            /* Said once per process: every worker would say the same. */
            static _Atomic bool said;
            if (!atomic_exchange(&said, true))
                sk_info("loop: io_uring is not available here (%s): using epoll", strerror(-rc));
        }
    }
    if (io == SK_LOOP_IO_EPOLL || (io == SK_LOOP_IO_AUTO && rc < 0))
        rc = ep_init(loop);
    if (rc < 0) {
        loop_release(loop);
        errno = -rc;
        return NULL;
    }
    return loop;
}

sk_loop_io_t sk_loop_io(const sk_loop_t *loop)
{
    return loop->ops->io;
}

const char *sk_loop_io_name(sk_loop_io_t io)
{
    return io == SK_LOOP_IO_EPOLL ? "epoll" : io == SK_LOOP_IO_URING ? "uring" : "auto";
}

int sk_loop_io_parse(const char *s, sk_loop_io_t *io)
{
    if (strcmp(s, "epoll") == 0)
        *io = SK_LOOP_IO_EPOLL;
    else if (strcmp(s, "uring") == 0 || strcmp(s, "io_uring") == 0)
        *io = SK_LOOP_IO_URING;
    else if (strcmp(s, "auto") == 0)
        *io = SK_LOOP_IO_AUTO;
    else
        return -EINVAL;
    return 0;
}

int sk_loop_free(sk_loop_t *loop)
{
    if (!loop)
        return 0;
    int left = 0;
    for (sk_io_t *io = loop->ios; io; io = io->loop_next, left++)
        sk_error("loop: I/O handle on fd %d still registered at sk_loop_free", io->fd);
    for (uint32_t i = 1; i <= loop->heap_len; i++, left++)
        sk_error("loop: timer %p (callback %p) still registered at sk_loop_free", (void *)loop->heap[i],
                 (void *)(uintptr_t)loop->heap[i]->cb);
    for (size_t i = 0; i < loop->n_hooks; i++, left++)
        sk_error("loop: before-sleep hook %p (arg %p) still registered at sk_loop_free",
                 (void *)(uintptr_t)loop->hooks[i].cb, loop->hooks[i].arg);
    loop->ops->free(loop);
    loop_release(loop);
    return left;
}

int sk_io_start(sk_loop_t *loop, sk_io_t *io, int fd, unsigned mask, sk_io_cb cb)
{
    io->fd = fd;
    io->mask = mask;
    io->cb = cb;
    io->be = NULL;
    if (fd < 0)
        return -EBADF;
    int rc = loop->ops->io_start(loop, io);
    if (rc < 0)
        return rc;
    io->active = true;
    io->loop_prev = NULL;
    io->loop_next = loop->ios;
    if (loop->ios)
        loop->ios->loop_prev = io;
    loop->ios = io;
    return 0;
}

int sk_io_modify(sk_loop_t *loop, sk_io_t *io, unsigned mask)
{
    if (!io->active)
        return -EINVAL;
    mask |= io->mask & (SK_IO_STREAM | SK_IO_ACCEPT); /* a handle keeps its mode */
    if (mask == io->mask)
        return 0;
    int rc = loop->ops->io_modify(loop, io, mask);
    if (rc < 0)
        return rc;
    io->mask = mask;
    return 0;
}

void sk_io_stop(sk_loop_t *loop, sk_io_t *io)
{
    if (!io->active)
        return;
    loop->ops->io_stop(loop, io);
    io->active = false;
    if (io->loop_prev)
        io->loop_prev->loop_next = io->loop_next;
    else
        loop->ios = io->loop_next;
    if (io->loop_next)
        io->loop_next->loop_prev = io->loop_prev;
    io->loop_prev = io->loop_next = NULL;
}

/* Timer heap. heap_index is the 1-based slot, 0 meaning "not armed". Ties are broken
 * by nothing in particular: timers with the same deadline fire in unspecified order. */
static void heap_set(sk_loop_t *loop, uint32_t i, sk_timer_t *t)
{
    loop->heap[i] = t;
    t->heap_index = i;
}

static void heap_up(sk_loop_t *loop, uint32_t i)
{
    sk_timer_t *t = loop->heap[i];
    while (i > 1 && loop->heap[i / 2]->when_ms > t->when_ms) {
        heap_set(loop, i, loop->heap[i / 2]);
        i /= 2;
    }
    heap_set(loop, i, t);
}

static void heap_down(sk_loop_t *loop, uint32_t i)
{
    sk_timer_t *t = loop->heap[i];
    for (;;) {
        uint32_t c = i * 2;
        if (c > loop->heap_len)
            break;
        if (c + 1 <= loop->heap_len && loop->heap[c + 1]->when_ms < loop->heap[c]->when_ms)
            c++;
        if (loop->heap[c]->when_ms >= t->when_ms)
            break;
        heap_set(loop, i, loop->heap[c]);
        i = c;
    }
    heap_set(loop, i, t);
}

void sk_timer_stop(sk_loop_t *loop, sk_timer_t *t)
{
    uint32_t i = t->heap_index;
    if (i == 0)
        return;
    sk_timer_t *last = loop->heap[loop->heap_len--];
    t->heap_index = 0;
    if (last == t)
        return;
    heap_set(loop, i, last);
    heap_up(loop, i);
    heap_down(loop, last->heap_index);
}

void sk_timer_start(sk_loop_t *loop, sk_timer_t *t, uint64_t ms, sk_timer_cb cb)
{
    sk_timer_stop(loop, t);
    t->cb = cb;
    t->when_ms = loop->now_ms + ms;
    if (loop->heap_len + 1 >= loop->heap_cap) {
        loop->heap_cap *= 2;
        loop->heap = sk_xrealloc(loop->heap, sizeof(*loop->heap) * loop->heap_cap);
    }
    loop->heap_len++;
    heap_set(loop, loop->heap_len, t);
    heap_up(loop, loop->heap_len);
}

static void run_timers(sk_loop_t *loop)
{
    while (loop->heap_len > 0 && loop->heap[1]->when_ms <= loop->now_ms) {
        sk_timer_t *t = loop->heap[1];
        sk_timer_stop(loop, t);
        t->cb(loop, t);
    }
}

ssize_t sk_io_read(sk_loop_t *loop, sk_io_t *io, void *buf, size_t len)
{
    return loop->ops->io_read(loop, io, buf, len);
}

ssize_t sk_io_write(sk_loop_t *loop, sk_io_t *io, const void *buf, size_t len)
{
    return loop->ops->io_write(loop, io, buf, len);
}

size_t sk_io_unsent(sk_loop_t *loop, sk_io_t *io)
{
    return io->active ? loop->ops->io_unsent(loop, io) : 0;
}

int sk_io_accept(sk_loop_t *loop, sk_io_t *io, struct sockaddr_storage *ss, socklen_t *sl)
{
    return loop->ops->io_accept(loop, io, ss, sl);
}

void sk_loop_async_fire(sk_loop_t *loop, sk_async_t *a)
{
    /* Clear before the callback: a send that races with the callback re-arms the
     * eventfd, so no wake-up is lost. */
    atomic_store(&a->pending, 0);
    a->cb(loop, a);
}

int sk_async_init(sk_loop_t *loop, sk_async_t *a, sk_async_cb cb)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    atomic_init(&a->pending, 0);
    a->cb = cb;
    a->io.fd = fd;
    int rc = loop->ops->async_start(loop, a);
    if (rc < 0)
        close(fd);
    return rc;
}

void sk_async_send(sk_async_t *a)
{
    if (atomic_exchange(&a->pending, 1) == 0) {
        uint64_t one = 1;
        ssize_t w = write(a->io.fd, &one, sizeof(one));
        (void)w; /* EAGAIN means the counter is already non-zero: the loop will wake */
    }
}

void sk_async_close(sk_loop_t *loop, sk_async_t *a)
{
    sk_io_stop(loop, &a->io);
    close(a->io.fd);
    a->io.fd = -1;
}

void sk_loop_add_before_sleep(sk_loop_t *loop, sk_loop_phase_t phase, sk_hook_cb cb, void *arg)
{
    /* Changing the list while run_hooks walks it would skip or repeat a hook. */
    assert(!loop->in_hooks);
    if (loop->n_hooks == loop->hooks_cap) {
        loop->hooks_cap = loop->hooks_cap ? loop->hooks_cap * 2 : 4;
        loop->hooks = sk_xrealloc(loop->hooks, loop->hooks_cap * sizeof(*loop->hooks));
    }
    size_t i = loop->n_hooks;
    while (i > 0 && loop->hooks[i - 1].phase > phase) {
        loop->hooks[i] = loop->hooks[i - 1];
        i--;
    }
    loop->hooks[i] = (sk_loop_hook_t){.phase = phase, .cb = cb, .arg = arg};
    loop->n_hooks++;
}

void sk_loop_remove_before_sleep(sk_loop_t *loop, sk_hook_cb cb, void *arg)
{
    assert(!loop->in_hooks);
    for (size_t i = 0; i < loop->n_hooks; i++) {
        if (loop->hooks[i].cb == cb && loop->hooks[i].arg == arg) {
            memmove(&loop->hooks[i], &loop->hooks[i + 1], (loop->n_hooks - i - 1) * sizeof(*loop->hooks));
            loop->n_hooks--;
            return;
        }
    }
}

void sk_loop_handoff_pending(sk_loop_t *loop)
{
    loop->handoff_pending = true;
}

static void run_hooks(sk_loop_t *loop)
{
    loop->in_hooks = true;
    for (size_t i = 0; i < loop->n_hooks; i++) {
        if (loop->hooks[i].phase == SK_LOOP_PHASE_HANDOFF && loop->handoff_pending) {
            /* The output leaves before anyone is woken (loop.h). */
            loop->handoff_pending = false;
            if (loop->ops->submit)
                loop->ops->submit(loop);
        }
        loop->hooks[i].cb(loop, loop->hooks[i].arg);
    }
    loop->handoff_pending = false;
    loop->in_hooks = false;
}

uint64_t sk_loop_now(const sk_loop_t *loop)
{
    return loop->now_ms;
}

void sk_loop_update_time(sk_loop_t *loop)
{
    loop->now_ms = mono_ms();
}

void sk_loop_stop(sk_loop_t *loop)
{
    loop->stop = true;
}

int sk_loop_run(sk_loop_t *loop)
{
    loop->stop = false;
    while (!loop->stop) {
        run_hooks(loop);
        if (loop->stop)
            break;
        int timeout = -1;
        if (loop->heap_len > 0) {
            sk_loop_update_time(loop);
            uint64_t when = loop->heap[1]->when_ms;
            timeout = when <= loop->now_ms ? 0 : (int)SK_MIN(when - loop->now_ms, (uint64_t)INT32_MAX);
        }
        int rc = loop->ops->wait(loop, timeout);
        if (rc < 0)
            return rc;
        sk_loop_update_time(loop);
        run_timers(loop);
    }
    return 0;
}

void sk_loop_run_or_exit(sk_loop_t *loop, const char *who)
{
    int rc = sk_loop_run(loop);
    if (rc < 0) {
        /* The thread's connections, timers and wake-ups would all go unserved while
         * the process looked alive: end it, so that its supervisor starts it again. */
        sk_error("%s: the event loop (%s) failed: %s; exiting", who, sk_loop_io_name(sk_loop_io(loop)), strerror(-rc));
        _exit(1);
    }
}
