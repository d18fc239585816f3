/* The epoll event loop. Edge-triggered I/O, a binary min-heap of timers, an eventfd
 * per async handle, and one before-sleep list (where connections flush their output
 * and closed connections are freed, like Redis's beforeSleep, and then other threads
 * are woken), run in the phase order documented in loop.h. */
#include "loop/loop.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "util/common.h"

#define SK_LOOP_MAX_EVENTS 512

typedef struct {
    sk_loop_phase_t phase;
    sk_hook_cb cb;
    void *arg;
} sk_hook_t;

struct sk_loop {
    int epfd;
    bool stop;
    uint64_t now_ms;
    sk_timer_t **heap; /* 1-based; heap[0] unused */
    uint32_t heap_len;
    uint32_t heap_cap;
    sk_io_t *ios; /* active I/O handles, so that sk_loop_free can name leftovers */
    sk_hook_t *hooks; /* sorted by phase, then by the order added */
    size_t n_hooks, hooks_cap;
    bool in_hooks;
};

static uint64_t mono_ms(void)
{
    return sk_mono_ns() / 1000000u;
}

sk_loop_t *sk_loop_new(void)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0)
        return NULL;
    sk_loop_t *loop = sk_xcalloc(1, sizeof(*loop));
    loop->epfd = fd;
    loop->now_ms = mono_ms();
    loop->heap_cap = 64;
    loop->heap = sk_xmalloc(sizeof(*loop->heap) * loop->heap_cap);
    return loop;
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
    close(loop->epfd);
    free(loop->heap);
    free(loop->hooks);
    free(loop);
    return left;
}

static uint32_t to_epoll(unsigned mask)
{
    uint32_t ev = EPOLLET | EPOLLRDHUP;
    if (mask & SK_IO_READ)
        ev |= EPOLLIN;
    if (mask & SK_IO_WRITE)
        ev |= EPOLLOUT;
    return ev;
}

int sk_io_start(sk_loop_t *loop, sk_io_t *io, int fd, unsigned mask, sk_io_cb cb)
{
    struct epoll_event ev = {.events = to_epoll(mask), .data.ptr = io};
    io->fd = fd;
    io->mask = mask;
    io->cb = cb;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
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
    if (mask == io->mask)
        return 0;
    struct epoll_event ev = {.events = to_epoll(mask), .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
        return -errno;
    io->mask = mask;
    return 0;
}

void sk_io_stop(sk_loop_t *loop, sk_io_t *io)
{
    if (!io->active)
        return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
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

static void async_on_read(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    (void)events;
    sk_async_t *a = SK_CONTAINER_OF(io, sk_async_t, io);
    uint64_t v;
    while (read(io->fd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
    }
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
    int rc = sk_io_start(loop, &a->io, fd, SK_IO_READ, async_on_read);
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
    loop->hooks[i] = (sk_hook_t){.phase = phase, .cb = cb, .arg = arg};
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

static void run_hooks(sk_loop_t *loop)
{
    loop->in_hooks = true;
    for (size_t i = 0; i < loop->n_hooks; i++)
        loop->hooks[i].cb(loop, loop->hooks[i].arg);
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
    struct epoll_event events[SK_LOOP_MAX_EVENTS];
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
        int n = epoll_wait(loop->epfd, events, SK_LOOP_MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        sk_loop_update_time(loop);
        for (int i = 0; i < n; i++) {
            sk_io_t *io = events[i].data.ptr;
            uint32_t e = events[i].events;
            unsigned mask = 0;
            if (e & EPOLLIN)
                mask |= SK_IO_READ;
            if (e & EPOLLOUT)
                mask |= SK_IO_WRITE;
            if (e & (EPOLLHUP | EPOLLRDHUP))
                mask |= SK_IO_HUP | SK_IO_READ;
            if (e & EPOLLERR)
                mask |= SK_IO_ERR | SK_IO_READ;
            /* A callback may stop another handle of this batch (closing its
             * connection); such handles are never freed before the before-sleep hook,
             * so `active` is still readable here. */
            if (io->active)
                io->cb(loop, io, mask);
        }
        run_timers(loop);
    }
    return 0;
}
