/* Tests of the event loop: timer order and heap integrity, stopping timers from
 * callbacks, edge-triggered I/O on socket pairs, cross-thread async wake-ups, the
 * before-sleep hook and sk_loop_stop(). Every test arms a safety timer so that a
 * broken loop fails the test instead of hanging it; alarm() backs that up. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop/loop.h"
#include "test.h"
#include "util/common.h"

#define SAFETY_MS 10000

static bool safety_fired;

static void on_safety(sk_loop_t *loop, sk_timer_t *t)
{
    (void)t;
    safety_fired = true;
    sk_loop_stop(loop);
}

static void arm_safety(sk_loop_t *loop, sk_timer_t *t)
{
    safety_fired = false;
    t->heap_index = 0;
    sk_timer_start(loop, t, SAFETY_MS, on_safety);
}

static void stop_loop_cb(sk_loop_t *loop, sk_timer_t *t)
{
    (void)t;
    sk_loop_stop(loop);
}

/* A tiny deterministic PRNG so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---- timers ---------------------------------------------------------------- */

typedef struct {
    sk_timer_t timer;
    int id;
} id_timer_t;

static int fired_order[64];
static int fired_count;

static void record_cb(sk_loop_t *loop, sk_timer_t *t)
{
    (void)loop;
    id_timer_t *it = SK_CONTAINER_OF(t, id_timer_t, timer);
    if (fired_count < (int)SK_ARRAY_LEN(fired_order))
        fired_order[fired_count] = it->id;
    fired_count++;
    ASSERT_TRUE(!sk_timer_armed(t)); /* a one-shot timer is disarmed before its callback */
    ASSERT_GE(sk_loop_now(loop), t->when_ms);
}

SK_TEST(timers_fire_in_deadline_order)
{
    sk_loop_t *loop = sk_loop_new();
    ASSERT_TRUE(loop != NULL);
    sk_timer_t safety = {0}, end = {0};
    arm_safety(loop, &safety);
    static const int delays[] = {40, 10, 30, 0, 20, 50, 5};
    id_timer_t ts[SK_ARRAY_LEN(delays)];
    memset(ts, 0, sizeof(ts));
    fired_count = 0;
    for (size_t i = 0; i < SK_ARRAY_LEN(delays); i++) {
        ts[i].id = delays[i];
        sk_timer_start(loop, &ts[i].timer, (uint64_t)delays[i], record_cb);
        ASSERT_TRUE(sk_timer_armed(&ts[i].timer));
    }
    sk_timer_start(loop, &end, 80, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_TRUE(!safety_fired);
    ASSERT_EQ(fired_count, (int)SK_ARRAY_LEN(delays));
    static const int want[] = {0, 5, 10, 20, 30, 40, 50};
    for (size_t i = 0; i < SK_ARRAY_LEN(want); i++)
        ASSERT_EQ(fired_order[i], want[i]);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

SK_TEST(timer_stop_and_restart)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0}, end = {0};
    arm_safety(loop, &safety);
    id_timer_t a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    fired_count = 0;

    /* Stopping a timer that was never armed, and stopping twice, are harmless. */
    sk_timer_stop(loop, &a.timer);
    sk_timer_start(loop, &a.timer, 5, record_cb);
    sk_timer_stop(loop, &a.timer);
    ASSERT_TRUE(!sk_timer_armed(&a.timer));
    sk_timer_stop(loop, &a.timer);

    /* Re-arming an armed timer moves it: it fires once, at the new deadline. */
    sk_timer_start(loop, &b.timer, 5, record_cb);
    sk_timer_start(loop, &c.timer, 15, record_cb);
    sk_timer_start(loop, &b.timer, 30, record_cb);
    /* a restarted after being stopped. */
    sk_timer_start(loop, &a.timer, 20, record_cb);
    sk_timer_start(loop, &end, 60, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_TRUE(!safety_fired);
    ASSERT_EQ(fired_count, 3);
    ASSERT_EQ(fired_order[0], 3);
    ASSERT_EQ(fired_order[1], 1);
    ASSERT_EQ(fired_order[2], 2);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

static id_timer_t *victim;

static void stop_victim_cb(sk_loop_t *loop, sk_timer_t *t)
{
    record_cb(loop, t);
    if (victim)
        sk_timer_stop(loop, &victim->timer);
}

SK_TEST(timer_stopped_from_another_timer_callback)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0}, end = {0};
    arm_safety(loop, &safety);
    fired_count = 0;

    /* a (5 ms) stops b (10 ms): b never fires. */
    id_timer_t a = {.id = 1}, b = {.id = 2};
    victim = &b;
    sk_timer_start(loop, &a.timer, 5, stop_victim_cb);
    sk_timer_start(loop, &b.timer, 10, record_cb);
    sk_timer_start(loop, &end, 40, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(fired_count, 1);
    ASSERT_EQ(fired_order[0], 1);

    /* A timer stopping itself (already disarmed while its callback runs) is harmless. */
    id_timer_t x = {.id = 3};
    fired_count = 0;
    victim = &x;
    sk_timer_start(loop, &x.timer, 5, stop_victim_cb);
    sk_timer_start(loop, &end, 40, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(fired_count, 1);
    ASSERT_TRUE(!sk_timer_armed(&x.timer));
    victim = NULL;
    ASSERT_TRUE(!safety_fired);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

/* Mutual cancellation: each timer of a pair stops its partner. */
typedef struct {
    sk_timer_t timer;
    struct pair_timer *partner;
    int fired;
} pair_timer_t;
struct pair_timer {
    pair_timer_t p;
};

static void pair_cb(sk_loop_t *loop, sk_timer_t *t)
{
    pair_timer_t *p = SK_CONTAINER_OF(t, pair_timer_t, timer);
    p->fired++;
    sk_timer_stop(loop, &p->partner->p.timer);
}

SK_TEST(same_deadline_timers_cancel_each_other)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0}, end = {0};
    arm_safety(loop, &safety);
    struct pair_timer a = {0}, b = {0};
    a.p.partner = &b;
    b.p.partner = &a;
    sk_timer_start(loop, &a.p.timer, 3, pair_cb);
    sk_timer_start(loop, &b.p.timer, 3, pair_cb);
    sk_timer_start(loop, &end, 30, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(a.p.fired + b.p.fired, 1);
    ASSERT_TRUE(!safety_fired);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

static int periodic_count;

static void periodic_cb(sk_loop_t *loop, sk_timer_t *t)
{
    if (++periodic_count < 5)
        sk_timer_start(loop, t, 2, periodic_cb); /* re-arm from its own callback */
    else
        sk_loop_stop(loop);
}

SK_TEST(timer_rearmed_from_own_callback)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0}, t = {0};
    arm_safety(loop, &safety);
    periodic_count = 0;
    sk_timer_start(loop, &t, 2, periodic_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(periodic_count, 5);
    ASSERT_TRUE(!safety_fired);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

#define MANY 10000

typedef struct {
    sk_timer_t timer;
    bool cancelled;
    int fired;
} many_timer_t;

static uint64_t many_last_when;
static int many_fired;
static int many_errors;

static void many_cb(sk_loop_t *loop, sk_timer_t *t)
{
    many_timer_t *m = SK_CONTAINER_OF(t, many_timer_t, timer);
    if (t->when_ms < many_last_when || m->cancelled || sk_loop_now(loop) < t->when_ms)
        many_errors++;
    many_last_when = t->when_ms;
    m->fired++;
    many_fired++;
}

SK_TEST(ten_thousand_random_timers_fire_in_heap_order)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0}, end = {0};
    arm_safety(loop, &safety);
    many_timer_t *ts = sk_xcalloc(MANY, sizeof(*ts));
    many_last_when = 0;
    many_fired = many_errors = 0;
    for (int i = 0; i < MANY; i++)
        sk_timer_start(loop, &ts[i].timer, rng_next() % 200, many_cb);
    /* Shuffle the heap: cancel a third, move another third to new deadlines. */
    int expect = MANY;
    for (int i = 0; i < MANY; i++) {
        uint64_t r = rng_next() % 3;
        if (r == 0) {
            sk_timer_stop(loop, &ts[i].timer);
            ts[i].cancelled = true;
            expect--;
        } else if (r == 1) {
            sk_timer_start(loop, &ts[i].timer, rng_next() % 200, many_cb);
        }
    }
    for (int i = 0; i < MANY; i++)
        ASSERT_EQ(sk_timer_armed(&ts[i].timer), !ts[i].cancelled);
    sk_timer_start(loop, &end, 260, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_TRUE(!safety_fired);
    ASSERT_EQ(many_errors, 0);
    ASSERT_EQ(many_fired, expect);
    for (int i = 0; i < MANY; i++) {
        ASSERT_EQ(ts[i].fired, ts[i].cancelled ? 0 : 1);
        ASSERT_TRUE(!sk_timer_armed(&ts[i].timer));
    }
    free(ts);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

/* ---- I/O watchers ------------------------------------------------------------ */

typedef struct {
    sk_io_t io;
    size_t got;
    size_t want;
    int calls;
    int hups;
    bool saw_eof;
    int read_errors;
} reader_t;

static void reader_cb(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    reader_t *r = SK_CONTAINER_OF(io, reader_t, io);
    r->calls++;
    if (events & SK_IO_HUP)
        r->hups++;
    char buf[4096];
    for (;;) { /* edge-triggered: drain until EAGAIN */
        ssize_t n = read(io->fd, buf, sizeof(buf));
        if (n > 0) {
            r->got += (size_t)n;
            continue;
        }
        if (n == 0)
            r->saw_eof = true;
        else if (errno != EAGAIN && errno != EINTR)
            r->read_errors++;
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    if ((r->want && r->got >= r->want) || r->saw_eof)
        sk_loop_stop(loop);
}

typedef struct {
    sk_timer_t timer;
    int fd;
    size_t chunk;
    int rounds;
} writer_t;

static void writer_cb(sk_loop_t *loop, sk_timer_t *t)
{
    writer_t *w = SK_CONTAINER_OF(t, writer_t, timer);
    char *buf = sk_xmalloc(w->chunk);
    memset(buf, 'x', w->chunk);
    size_t off = 0;
    while (off < w->chunk) {
        ssize_t n = write(w->fd, buf + off, w->chunk - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    free(buf);
    if (--w->rounds > 0)
        sk_timer_start(loop, t, 1, writer_cb);
}

SK_TEST(io_watcher_reads_socketpair_until_eagain)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0};
    arm_safety(loop, &safety);
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(set_nonblock(sv[0]), 0);
    reader_t r = {.want = 5 * 30000};
    ASSERT_EQ(sk_io_start(loop, &r.io, sv[0], SK_IO_READ, reader_cb), 0);
    ASSERT_TRUE(r.io.active);
    writer_t w = {.fd = sv[1], .chunk = 30000, .rounds = 5};
    sk_timer_start(loop, &w.timer, 1, writer_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_TRUE(!safety_fired);
    ASSERT_EQ(r.got, r.want);
    ASSERT_EQ(r.read_errors, 0);
    ASSERT_GE(r.calls, 1);

    /* Peer closes: the watcher sees HUP (with READ) and reads EOF. */
    close(sv[1]);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_TRUE(!safety_fired);
    ASSERT_TRUE(r.saw_eof);
    ASSERT_GE(r.hups, 1);

    sk_io_stop(loop, &r.io);
    ASSERT_TRUE(!r.io.active);
    sk_io_stop(loop, &r.io); /* twice is harmless */
    ASSERT_EQ(sk_io_modify(loop, &r.io, SK_IO_READ), -EINVAL);
    close(sv[0]);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

SK_TEST(io_start_on_bad_fd_fails)
{
    sk_loop_t *loop = sk_loop_new();
    sk_io_t io = {0};
    ASSERT_EQ(sk_io_start(loop, &io, -1, SK_IO_READ, reader_cb), -EBADF);
    ASSERT_TRUE(!io.active);
    sk_loop_free(loop);
}

typedef struct {
    sk_io_t io;
    int write_events;
    int read_events;
} rw_t;

static void rw_cb(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    rw_t *x = SK_CONTAINER_OF(io, rw_t, io);
    if (events & SK_IO_WRITE)
        x->write_events++;
    if (events & SK_IO_READ) {
        x->read_events++;
        char buf[256];
        while (read(io->fd, buf, sizeof(buf)) > 0) {
        }
    }
    sk_loop_stop(loop);
}

SK_TEST(io_modify_switches_events)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0};
    arm_safety(loop, &safety);
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    rw_t x = {0};
    /* Read-only on an empty socket: nothing fires until data arrives. */
    ASSERT_EQ(sk_io_start(loop, &x.io, sv[0], SK_IO_READ, rw_cb), 0);
    sk_timer_t t = {0};
    sk_timer_start(loop, &t, 20, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(x.read_events + x.write_events, 0);
    /* Asking for WRITE on a writable socket fires at once. */
    ASSERT_EQ(sk_io_modify(loop, &x.io, SK_IO_READ | SK_IO_WRITE), 0);
    ASSERT_EQ(x.io.mask, SK_IO_READ | SK_IO_WRITE);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(x.write_events, 1);
    ASSERT_EQ(x.read_events, 0);
    /* Back to READ: data from the peer fires it. */
    ASSERT_EQ(sk_io_modify(loop, &x.io, SK_IO_READ), 0);
    ASSERT_EQ(write(sv[1], "hi", 2), 2);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(x.read_events, 1);
    ASSERT_TRUE(!safety_fired);
    sk_io_stop(loop, &x.io);
    sk_timer_stop(loop, &t);
    close(sv[0]);
    close(sv[1]);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

/* Two watchers ready in the same turn; the first to run stops the other, whose
 * callback must then not run (a closed connection's handle must not be touched). */
typedef struct {
    sk_io_t io;
    struct peer_io *other;
    int calls;
} peer_io_t;
struct peer_io {
    peer_io_t p;
};

static void peer_cb(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    (void)events;
    peer_io_t *p = SK_CONTAINER_OF(io, peer_io_t, io);
    p->calls++;
    sk_io_stop(loop, &p->other->p.io);
    sk_io_stop(loop, io);
}

SK_TEST(io_stopped_by_another_callback_in_same_turn)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0}, end = {0};
    arm_safety(loop, &safety);
    int a[2], b[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    struct peer_io pa = {0}, pb = {0};
    pa.p.other = &pb;
    pb.p.other = &pa;
    ASSERT_EQ(write(a[1], "x", 1), 1);
    ASSERT_EQ(write(b[1], "y", 1), 1);
    ASSERT_EQ(sk_io_start(loop, &pa.p.io, a[0], SK_IO_READ, peer_cb), 0);
    ASSERT_EQ(sk_io_start(loop, &pb.p.io, b[0], SK_IO_READ, peer_cb), 0);
    sk_timer_start(loop, &end, 30, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(pa.p.calls + pb.p.calls, 1);
    ASSERT_TRUE(!safety_fired);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

/* ---- async wake-ups -------------------------------------------------------- */

static atomic_int async_calls;

static void count_async_cb(sk_loop_t *loop, sk_async_t *a)
{
    (void)a;
    atomic_fetch_add(&async_calls, 1);
    sk_loop_stop(loop);
}

static void *send_many(void *arg)
{
    sk_async_t *a = arg;
    for (int i = 0; i < 100000; i++)
        sk_async_send(a);
    return NULL;
}

SK_TEST(async_sends_before_run_coalesce_into_one_callback)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0};
    arm_safety(loop, &safety);
    sk_async_t a;
    memset(&a, 0, sizeof(a));
    ASSERT_EQ(sk_async_init(loop, &a, count_async_cb), 0);
    atomic_store(&async_calls, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, send_many, &a), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_TRUE(!safety_fired);
    ASSERT_EQ(atomic_load(&async_calls), 1);
    /* Nothing more is pending: a short run sees no further callback. */
    sk_timer_t t = {0};
    sk_timer_start(loop, &t, 20, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(atomic_load(&async_calls), 1);
    sk_async_close(loop, &a);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

#define PINGS 2000

static atomic_int ping_target;
static atomic_int ping_ack;
static atomic_bool ping_abort;

static void ping_cb(sk_loop_t *loop, sk_async_t *a)
{
    (void)a;
    int t = atomic_load(&ping_target);
    atomic_store(&ping_ack, t);
    if (t >= PINGS)
        sk_loop_stop(loop);
}

static void *ping_thread(void *arg)
{
    sk_async_t *a = arg;
    for (int i = 1; i <= PINGS && !atomic_load(&ping_abort); i++) {
        atomic_store(&ping_target, i);
        sk_async_send(a);
        /* Wait for the loop to see this round: a lost wake-up stalls here. */
        while (atomic_load(&ping_ack) < i && !atomic_load(&ping_abort))
            sched_yield();
    }
    return NULL;
}

SK_TEST(async_never_loses_a_wakeup)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0};
    arm_safety(loop, &safety);
    sk_async_t a;
    memset(&a, 0, sizeof(a));
    ASSERT_EQ(sk_async_init(loop, &a, ping_cb), 0);
    atomic_store(&ping_target, 0);
    atomic_store(&ping_ack, 0);
    atomic_store(&ping_abort, false);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, ping_thread, &a), 0);
    int rc = sk_loop_run(loop);
    atomic_store(&ping_abort, true);
    pthread_join(th, NULL);
    ASSERT_EQ(rc, 0);
    ASSERT_TRUE(!safety_fired);
    ASSERT_EQ(atomic_load(&ping_ack), PINGS);
    sk_async_close(loop, &a);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

static atomic_int burst_calls;
static atomic_bool burst_done;

static void burst_cb(sk_loop_t *loop, sk_async_t *a)
{
    (void)a;
    atomic_fetch_add(&burst_calls, 1);
    if (atomic_load(&burst_done))
        sk_loop_stop(loop);
}

static void *burst_thread(void *arg)
{
    sk_async_t *a = arg;
    for (int i = 0; i < 200000; i++)
        sk_async_send(a);
    atomic_store(&burst_done, true);
    sk_async_send(a); /* the final send after the flag must still wake the loop */
    return NULL;
}

SK_TEST(async_burst_from_thread_while_running)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0};
    arm_safety(loop, &safety);
    sk_async_t a;
    memset(&a, 0, sizeof(a));
    ASSERT_EQ(sk_async_init(loop, &a, burst_cb), 0);
    atomic_store(&burst_calls, 0);
    atomic_store(&burst_done, false);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, burst_thread, &a), 0);
    int rc = sk_loop_run(loop);
    pthread_join(th, NULL);
    ASSERT_EQ(rc, 0);
    ASSERT_TRUE(!safety_fired);
    ASSERT_GE(atomic_load(&burst_calls), 1);
    ASSERT_LE(atomic_load(&burst_calls), 200001);
    printf("     (200001 sends woke the loop %d times)\n", atomic_load(&burst_calls));
    sk_async_close(loop, &a);
    ASSERT_EQ(a.io.fd, -1);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

/* ---- before-sleep hook and stop -------------------------------------------- */

static int hook_calls;
static int hook_at_tick[8];
static int ticks;

static void counting_hook(sk_loop_t *loop, void *arg)
{
    (void)loop;
    int *p = arg;
    (*p)++;
}

static void tick_cb(sk_loop_t *loop, sk_timer_t *t)
{
    hook_at_tick[ticks++] = hook_calls;
    if (ticks < 5)
        sk_timer_start(loop, t, 1, tick_cb);
    else
        sk_loop_stop(loop);
}

SK_TEST(before_sleep_hook_runs_every_turn)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0}, t = {0};
    arm_safety(loop, &safety);
    hook_calls = 0;
    ticks = 0;
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_OUTPUT, counting_hook, &hook_calls);
    sk_timer_start(loop, &t, 1, tick_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_TRUE(!safety_fired);
    ASSERT_EQ(ticks, 5);
    /* The hook ran before the first wait, and again before every later wait. */
    ASSERT_GE(hook_at_tick[0], 1);
    for (int i = 1; i < 5; i++)
        ASSERT_GT(hook_at_tick[i], hook_at_tick[i - 1]);
    /* Removing the hook stops the calls. */
    sk_loop_remove_before_sleep(loop, counting_hook, &hook_calls);
    int before = hook_calls;
    sk_timer_t end = {0};
    sk_timer_start(loop, &end, 5, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(hook_calls, before);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

static void stopping_hook(sk_loop_t *loop, void *arg)
{
    int *p = arg;
    if (++*p == 3)
        sk_loop_stop(loop);
}

static void stop_at_once_hook(sk_loop_t *loop, void *arg)
{
    int *p = arg;
    ++*p;
    sk_loop_stop(loop);
}

static void nop_timer_cb(sk_loop_t *loop, sk_timer_t *t)
{
    sk_timer_start(loop, t, 1, nop_timer_cb);
}

SK_TEST(hook_can_stop_the_loop_before_waiting)
{
    /* No handle at all: if sk_loop_stop() from the hook did not prevent the wait,
     * epoll_wait(-1) would block forever (alarm() would then fail the test). */
    sk_loop_t *loop = sk_loop_new();
    int n = 0;
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_OUTPUT, stop_at_once_hook, &n);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(n, 1);
    sk_loop_remove_before_sleep(loop, stop_at_once_hook, &n);

    /* With a timer ticking, a hook that stops on its third call ends the loop there. */
    n = 0;
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_OUTPUT, stopping_hook, &n);
    sk_timer_t t = {0};
    sk_timer_start(loop, &t, 1, nop_timer_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(n, 3);
    sk_timer_stop(loop, &t);
    sk_loop_remove_before_sleep(loop, stopping_hook, &n);
    ASSERT_EQ(sk_loop_free(loop), 0);
}

/* One list: by phase (OUTPUT before HANDOFF, whatever the order of adding), then in
 * the order added; removing one hook leaves the others in their order. */
static char hook_trace[16];
static int hook_trace_len;

static void trace_hook(sk_loop_t *loop, void *arg)
{
    const char *name = arg;
    if (hook_trace_len < (int)sizeof(hook_trace) - 1)
        hook_trace[hook_trace_len++] = name[0];
    if (name[1] == '!')
        sk_loop_stop(loop);
}

SK_TEST(before_sleep_list_runs_in_phase_order)
{
    sk_loop_t *loop = sk_loop_new();
    static const char wake[] = "w", flush1[] = "f", flush2[] = "g", last[] = "x!";
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_HANDOFF, trace_hook, (void *)wake);
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_OUTPUT, trace_hook, (void *)flush1);
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_HANDOFF, trace_hook, (void *)last);
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_OUTPUT, trace_hook, (void *)flush2);
    hook_trace_len = 0;
    ASSERT_EQ(sk_loop_run(loop), 0);
    hook_trace[hook_trace_len] = '\0';
    ASSERT_STR_EQ(hook_trace, "fgwx");
    sk_loop_remove_before_sleep(loop, trace_hook, (void *)flush1);
    hook_trace_len = 0;
    ASSERT_EQ(sk_loop_run(loop), 0);
    hook_trace[hook_trace_len] = '\0';
    ASSERT_STR_EQ(hook_trace, "gwx");
    sk_loop_remove_before_sleep(loop, trace_hook, (void *)flush2);
    sk_loop_remove_before_sleep(loop, trace_hook, (void *)wake);
    sk_loop_remove_before_sleep(loop, trace_hook, (void *)last);
    ASSERT_EQ(sk_loop_free(loop), 0);
}

/* sk_loop_free names what is still registered and counts it (it cannot close
 * handles it does not own). */
SK_TEST(loop_free_counts_handles_left_registered)
{
    sk_loop_t *loop = sk_loop_new();
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    sk_io_t io = {0};
    ASSERT_EQ(sk_io_start(loop, &io, sv[0], SK_IO_READ, NULL), 0);
    sk_timer_t t = {0};
    sk_timer_start(loop, &t, 100000, stop_loop_cb);
    int n = 0;
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_OUTPUT, counting_hook, &n);
    sk_async_t a = {0};
    ASSERT_EQ(sk_async_init(loop, &a, NULL), 0);
    ASSERT_EQ(sk_loop_free(loop), 4); /* the socket, the async's eventfd, the timer, the hook */
    close(a.io.fd);
    close(sv[0]);
    close(sv[1]);

    /* Stopped and removed, nothing is left. */
    loop = sk_loop_new();
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    sk_io_t io2 = {0}, io3 = {0};
    ASSERT_EQ(sk_io_start(loop, &io2, sv[0], SK_IO_READ, NULL), 0);
    ASSERT_EQ(sk_io_start(loop, &io3, sv[1], SK_IO_READ, NULL), 0);
    sk_io_stop(loop, &io2); /* the first of the list, then the last */
    sk_io_stop(loop, &io3);
    sk_io_stop(loop, &io3);
    sk_timer_t t2 = {0};
    sk_timer_start(loop, &t2, 100000, stop_loop_cb);
    sk_timer_stop(loop, &t2);
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_HANDOFF, counting_hook, &n);
    sk_loop_remove_before_sleep(loop, counting_hook, &n);
    ASSERT_EQ(sk_loop_free(loop), 0);
    close(sv[0]);
    close(sv[1]);
}

SK_TEST(loop_stop_returns_after_current_turn_and_run_again_works)
{
    sk_loop_t *loop = sk_loop_new();
    sk_timer_t safety = {0};
    arm_safety(loop, &safety);
    sk_timer_t a = {0}, b = {0};
    fired_count = 0;
    /* Both due in the same turn: the stop takes effect after the turn, so the second
     * timer still runs. */
    sk_timer_start(loop, &a, 0, stop_loop_cb);
    id_timer_t r = {.id = 9};
    sk_timer_start(loop, &r.timer, 0, record_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_EQ(fired_count, 1);
    ASSERT_TRUE(!sk_timer_armed(&a));
    /* Running again resumes normally. */
    sk_timer_start(loop, &b, 5, stop_loop_cb);
    uint64_t t0 = sk_loop_now(loop);
    ASSERT_EQ(sk_loop_run(loop), 0);
    ASSERT_TRUE(!safety_fired);
    ASSERT_GE(sk_loop_now(loop), t0 + 5);
    sk_timer_stop(loop, &safety);
    sk_loop_free(loop);
}

SK_TEST(loop_now_is_monotonic_and_update_time_refreshes)
{
    sk_loop_t *loop = sk_loop_new();
    uint64_t a = sk_loop_now(loop);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ASSERT_EQ(sk_loop_now(loop), a); /* cached */
    sk_loop_update_time(loop);
    ASSERT_GE(sk_loop_now(loop), a + 19);
    sk_loop_free(loop);
}

SK_TEST_MAIN(alarm(120); /* a hung loop fails the whole binary instead of blocking ctest */
             SK_RUN(timers_fire_in_deadline_order); SK_RUN(timer_stop_and_restart);
             SK_RUN(timer_stopped_from_another_timer_callback); SK_RUN(same_deadline_timers_cancel_each_other);
             SK_RUN(timer_rearmed_from_own_callback); SK_RUN(ten_thousand_random_timers_fire_in_heap_order);
             SK_RUN(io_watcher_reads_socketpair_until_eagain); SK_RUN(io_start_on_bad_fd_fails);
             SK_RUN(io_modify_switches_events); SK_RUN(io_stopped_by_another_callback_in_same_turn);
             SK_RUN(async_sends_before_run_coalesce_into_one_callback); SK_RUN(async_never_loses_a_wakeup);
             SK_RUN(async_burst_from_thread_while_running); SK_RUN(before_sleep_hook_runs_every_turn);
             SK_RUN(hook_can_stop_the_loop_before_waiting); SK_RUN(before_sleep_list_runs_in_phase_order);
             SK_RUN(loop_free_counts_handles_left_registered);
             SK_RUN(loop_stop_returns_after_current_turn_and_run_again_works);
             SK_RUN(loop_now_is_monotonic_and_update_time_refreshes);)
