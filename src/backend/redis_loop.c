/* The hiredis adapter. hiredis asks for read and write interest and we translate that
 * into the loop's edge-triggered watches. Two things differ from a level-triggered
 * loop such as ae:
 *  - hiredis reads at most 16 KiB per redisAsyncHandleRead, and an edge fires only
 *    once, so on a read event we call it until the socket is drained (a peek says
 *    EAGAIN) or the context went away;
 *  - adding write interest goes through EPOLL_CTL_MOD, which reports a socket that is
 *    already writable at once, so queued commands are never stuck waiting for an edge.
 * hiredis frees the context inside a handler on errors; it then calls cleanup, which
 * clears ev->ac, and we stop touching it. */
#include "backend/redis_loop.h"

#include <errno.h>
#include <sys/socket.h>

static void update(sk_redis_ev_t *ev, unsigned mask)
{
    if (mask == ev->mask)
        return;
    if (mask == 0) {
        sk_io_stop(ev->loop, &ev->io);
    } else if (!ev->io.active) {
        if (sk_io_start(ev->loop, &ev->io, ev->ac->c.fd, mask, ev->io.cb) < 0)
            return; /* the context's next I/O attempt will fail and report the error */
    } else if (sk_io_modify(ev->loop, &ev->io, mask) < 0) {
        return;
    }
    ev->mask = mask;
}

static void add_read(void *p)
{
    sk_redis_ev_t *ev = p;
    update(ev, ev->mask | SK_IO_READ);
}

static void del_read(void *p)
{
    sk_redis_ev_t *ev = p;
    update(ev, ev->mask & ~(unsigned)SK_IO_READ);
}

static void add_write(void *p)
{
    /* When write interest is already set, hiredis has unsent output and the socket's
     * buffer is full: the edge that comes when it drains serves the new output too. */
    sk_redis_ev_t *ev = p;
    update(ev, ev->mask | SK_IO_WRITE);
}

static void del_write(void *p)
{
    sk_redis_ev_t *ev = p;
    update(ev, ev->mask & ~(unsigned)SK_IO_WRITE);
}

static void cleanup(void *p)
{
    sk_redis_ev_t *ev = p;
    sk_io_stop(ev->loop, &ev->io);
    ev->mask = 0;
    ev->ac = NULL;
}

static bool readable(int fd)
{
    char c;
    for (;;) {
        ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        /* Data, end of stream or an error: all three are for hiredis to handle. */
        return !(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
}

static void on_io(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    sk_redis_ev_t *ev = io->data;
    if ((events & SK_IO_WRITE) && ev->ac)
        redisAsyncHandleWrite(ev->ac);
    if (!(events & (SK_IO_READ | SK_IO_HUP | SK_IO_ERR)))
        return;
    ev->last_read_ms = sk_loop_now(loop);
    while (ev->ac && (ev->mask & SK_IO_READ)) {
        int fd = ev->ac->c.fd;
        redisAsyncHandleRead(ev->ac);
        if (!ev->ac || !readable(fd))
            break;
    }
}

int sk_redis_attach(sk_redis_ev_t *ev, sk_loop_t *loop, redisAsyncContext *ac)
{
    if (ac->ev.data != NULL)
        return -EEXIST;
    ev->loop = loop;
    ev->ac = ac;
    ev->mask = 0;
    ev->io = (sk_io_t){.fd = ac->c.fd, .cb = on_io, .data = ev};
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = ev;
    /* Watch for reading from the start: a connect that fails is then reported (as an
     * error event) even before the first command asks for write interest. */
    add_read(ev);
    return 0;
}
