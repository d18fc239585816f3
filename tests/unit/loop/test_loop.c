/* Tests of the event loop: timer order and heap integrity, stopping timers from
 * callbacks, edge-triggered I/O on socket pairs, cross-thread async wake-ups, the
 * before-sleep hook and sk_loop_stop(). Every test arms a safety timer so that a
 * broken loop fails the test instead of hanging it; alarm() backs that up. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loop/backend.h"
#include "loop/loop.h"
#include "test.h"
#include "util/common.h"

#define SAFETY_MS 10000

#if defined(__x86_64__)
#define SK_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SK_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "the seccomp test knows x86-64 and arm64"
#endif

/* Every test runs on each backend in turn (main sets it), and once more on io_uring
 * with a tiny submission queue and system calls refused (test_tiny). */
static sk_loop_io_t test_io = SK_LOOP_IO_EPOLL;
static bool test_tiny;
#define TINY_ENTRIES 2

/* Refuses every third submission and every fourth wait, with the transient errors the
 * kernel gives, in turn; counts the calls. */
static int tiny_submits, tiny_waits;

static int tiny_fault(void *arg, int call)
{
    (void)arg;
    static const int submit_errs[] = {-EBUSY, -EAGAIN, -ENOMEM};
    static const int wait_errs[] = {-EINTR, -ETIME, -EAGAIN, -EBUSY, -ENOMEM};
    if (call == SK_URING_CALL_SUBMIT) {
        tiny_submits++;
        return tiny_submits % 3 == 0 ? submit_errs[(tiny_submits / 3) % SK_ARRAY_LEN(submit_errs)] : 0;
    }
    tiny_waits++;
    return tiny_waits % 4 == 0 ? wait_errs[(tiny_waits / 4) % SK_ARRAY_LEN(wait_errs)] : 0;
}

static sk_loop_t *new_loop(void)
{
    sk_loop_t *loop = sk_loop_new_sized(test_io, test_tiny ? TINY_ENTRIES : 0);
    if (!loop)
        SK_FAIL_AT("no %s loop: %s", sk_loop_io_name(test_io), strerror(errno));
    ASSERT_EQ(sk_loop_io(loop), test_io);
    if (test_tiny)
        sk_loop_uring_set_fault(loop, tiny_fault, NULL);
    return loop;
}

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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    loop = new_loop();
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
    sk_loop_t *loop = new_loop();
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
    sk_loop_t *loop = new_loop();
    uint64_t a = sk_loop_now(loop);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ASSERT_EQ(sk_loop_now(loop), a); /* cached */
    sk_loop_update_time(loop);
    ASSERT_GE(sk_loop_now(loop), a + 19);
    sk_loop_free(loop);
}

/* ---- streams, listeners and the choice of backend --------------------------------- */

/* An echo over a stream handle: reads what comes with sk_io_read and writes it back
 * with sk_io_write, keeping what could not be taken yet; stops reading while `paused`. */
typedef struct {
    sk_io_t io;
    char *pending; /* taken from the peer, not yet taken by sk_io_write */
    size_t plen, pcap;
    size_t echoed, total_read;
    int reads, writes, hups, errs, eagain_writes;
    bool eof, paused;
    int err;
} echo_t;

static void echo_push(sk_loop_t *loop, echo_t *e)
{
    while (e->plen > 0) {
        ssize_t n = sk_io_write(loop, &e->io, e->pending, e->plen);
        if (n < 0) {
            if (errno == EAGAIN)
                e->eagain_writes++;
            else
                e->err = errno;
            return;
        }
        memmove(e->pending, e->pending + n, e->plen - (size_t)n);
        e->plen -= (size_t)n;
        e->echoed += (size_t)n;
    }
}

static void echo_cb(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    echo_t *e = SK_CONTAINER_OF(io, echo_t, io);
    if (events & SK_IO_HUP)
        e->hups++;
    if (events & SK_IO_ERR)
        e->errs++;
    if (events & SK_IO_WRITE) {
        e->writes++;
        echo_push(loop, e);
    }
    if (events & SK_IO_READ) {
        e->reads++;
        while (!e->paused && e->plen < 4 << 20) {
            if (e->pcap - e->plen < 65536) {
                e->pcap = e->pcap ? e->pcap * 2 : 1 << 20;
                e->pending = sk_xrealloc(e->pending, e->pcap);
            }
            ssize_t n = sk_io_read(loop, io, e->pending + e->plen, 65536);
            if (n > 0) {
                e->plen += (size_t)n;
                e->total_read += (size_t)n;
                continue;
            }
            if (n == 0)
                e->eof = true;
            else if (errno != EAGAIN)
                e->err = errno;
            break;
        }
        echo_push(loop, e);
    }
}

static void run_for(sk_loop_t *loop, uint64_t ms)
{
    sk_timer_t t = {0};
    sk_timer_start(loop, &t, ms, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), 0);
    sk_timer_stop(loop, &t);
}

/* Moves bytes through the peer's end: writes from `out` while it can and reads into `in`. */
static void peer_pump(int fd, const char *out, size_t out_len, size_t *sent, char *in, size_t *got, size_t in_cap)
{
    while (*sent < out_len) {
        ssize_t n = write(fd, out + *sent, SK_MIN((size_t)65536, out_len - *sent));
        if (n <= 0)
            break;
        *sent += (size_t)n;
    }
    while (*got < in_cap) {
        ssize_t n = read(fd, in + *got, in_cap - *got);
        if (n <= 0)
            break;
        *got += (size_t)n;
    }
}

SK_TEST(stream_echoes_megabytes_in_order)
{
    sk_loop_t *loop = new_loop();
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(set_nonblock(sv[0]), 0);
    ASSERT_EQ(set_nonblock(sv[1]), 0);
    echo_t e = {0};
    ASSERT_EQ(sk_io_start(loop, &e.io, sv[0], SK_IO_STREAM, echo_cb), 0);
    size_t len = 3 << 20, sent = 0, got = 0;
    char *out = sk_xmalloc(len), *in = sk_xmalloc(len);
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(i * 7 + i / 65536);
    /* The peer pushes 3 MiB while the loop echoes it back: both directions fill up, so
     * the loop meets short sends, EAGAIN and SK_IO_WRITE, and the receive's pause. */
    for (int round = 0; round < 20000 && got < len; round++) {
        peer_pump(sv[1], out, len, &sent, in, &got, len);
        run_for(loop, 0);
    }
    ASSERT_EQ(got, len);
    ASSERT_TRUE(memcmp(in, out, len) == 0);
    ASSERT_EQ(e.total_read, len);
    ASSERT_EQ(e.err, 0);
    ASSERT_EQ(sk_io_unsent(loop, &e.io), 0);
    /* The peer half-closes: the loop sees the end once everything was read. */
    shutdown(sv[1], SHUT_WR);
    for (int round = 0; round < 1000 && !e.eof; round++)
        run_for(loop, 1);
    ASSERT_TRUE(e.eof);
    ASSERT_GE(e.hups, 1);
    sk_io_stop(loop, &e.io);
    close(sv[0]);
    close(sv[1]);
    free(out);
    free(in);
    free(e.pending);
    ASSERT_EQ(sk_loop_free(loop), 0);
}

SK_TEST(stream_paused_reader_holds_the_client_back)
{
    sk_loop_t *loop = new_loop();
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(set_nonblock(sv[0]), 0);
    ASSERT_EQ(set_nonblock(sv[1]), 0);
    echo_t e = {.paused = true};
    ASSERT_EQ(sk_io_start(loop, &e.io, sv[0], SK_IO_STREAM, echo_cb), 0);
    /* The owner reads nothing: the peer's writes stop at some bound (the socket's, or the
     * loop's and then the socket's), instead of the loop taking everything. */
    size_t len = 64 << 20, sent = 0, got = 0;
    char *out = sk_xcalloc(1, len);
    for (int round = 0; round < 200; round++) {
        peer_pump(sv[1], out, len, &sent, NULL, &got, 0);
        run_for(loop, 0);
    }
    ASSERT_LT(sent, len);
    ASSERT_GE(e.reads, 1);
    /* Reading again drains everything the peer sent. */
    e.paused = false;
    size_t echoed_in = 0;
    char *in = sk_xmalloc(len);
    for (int round = 0; round < 20000 && e.total_read < sent; round++) {
        echo_cb(loop, &e.io, SK_IO_READ);
        peer_pump(sv[1], out, 0, &(size_t){0}, in, &echoed_in, len);
        run_for(loop, 0);
    }
    ASSERT_EQ(e.total_read, sent);
    sk_io_stop(loop, &e.io);
    close(sv[0]);
    close(sv[1]);
    free(out);
    free(in);
    free(e.pending);
    ASSERT_EQ(sk_loop_free(loop), 0);
}

SK_TEST(stream_stopped_with_bytes_in_flight)
{
    /* Stops and closes handles with receives armed, sends queued and not read by the
     * peer: nothing is reported for them afterwards, and the loop frees it all. */
    sk_loop_t *loop = new_loop();
    int sv[8][2];
    echo_t e[8];
    memset(e, 0, sizeof(e));
    char big[200000];
    memset(big, 'b', sizeof(big));
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
        ASSERT_EQ(set_nonblock(sv[i][0]), 0);
        ASSERT_EQ(set_nonblock(sv[i][1]), 0);
        ASSERT_EQ(sk_io_start(loop, &e[i].io, sv[i][0], SK_IO_STREAM, echo_cb), 0);
        ssize_t w = write(sv[i][1], "hello", 5);
        ASSERT_EQ(w, 5);
    }
    run_for(loop, 0);
    for (int i = 0; i < 8; i++) {
        ssize_t w = sk_io_write(loop, &e[i].io, big, sizeof(big));
        ASSERT_GT(w, 0);
        if (i % 2)
            run_for(loop, 0); /* some sends already in the kernel's hands */
        sk_io_stop(loop, &e[i].io);
        close(sv[i][0]);
        int reads = e[i].reads;
        run_for(loop, 0);
        ASSERT_EQ(e[i].reads, reads);
        close(sv[i][1]);
    }
    run_for(loop, 1);
    for (int i = 0; i < 8; i++)
        free(e[i].pending);
    ASSERT_EQ(sk_loop_free(loop), 0);
}

typedef struct {
    sk_io_t io;
    int accepted[16];
    int n, fails;
    struct sockaddr_storage peer;
} acceptor_t;

static void accept_cb(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    (void)events;
    acceptor_t *a = SK_CONTAINER_OF(io, acceptor_t, io);
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = sk_io_accept(loop, io, &ss, &sl);
        if (fd < 0) {
            if (errno != EAGAIN)
                a->fails++;
            return;
        }
        if (a->n < 16) {
            a->peer = ss;
            a->accepted[a->n++] = fd;
        } else {
            close(fd);
        }
    }
}

SK_TEST(listener_accepts_with_peer_addresses)
{
    sk_loop_t *loop = new_loop();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(lfd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ASSERT_EQ(listen(lfd, 64), 0);
    socklen_t sl = sizeof(sa);
    ASSERT_EQ(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    acceptor_t a = {0};
    ASSERT_EQ(sk_io_start(loop, &a.io, lfd, SK_IO_ACCEPT, accept_cb), 0);
    int clients[10];
    for (int i = 0; i < 10; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_EQ(connect(clients[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    for (int round = 0; round < 1000 && a.n < 10; round++)
        run_for(loop, 1);
    ASSERT_EQ(a.n, 10);
    ASSERT_EQ(a.fails, 0);
    ASSERT_EQ(a.peer.ss_family, AF_INET);
    ASSERT_EQ(((struct sockaddr_in *)&a.peer)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    /* An accepted socket serves as a stream handle, and is non-blocking. */
    ASSERT_TRUE(fcntl(a.accepted[0], F_GETFL) & O_NONBLOCK);
    echo_t e = {0};
    ASSERT_EQ(sk_io_start(loop, &e.io, a.accepted[0], SK_IO_STREAM, echo_cb), 0);
    ASSERT_EQ(write(clients[0], "ping", 4), 4);
    char buf[8] = {0};
    ssize_t n = 0;
    for (int round = 0; round < 1000 && n <= 0; round++) {
        run_for(loop, 1);
        n = recv(clients[0], buf, sizeof(buf), MSG_DONTWAIT);
    }
    ASSERT_EQ(n, 4);
    ASSERT_TRUE(memcmp(buf, "ping", 4) == 0);
    sk_io_stop(loop, &e.io);
    /* Connections queued but never taken are the loop's to close when it stops. */
    int late = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(connect(late, (struct sockaddr *)&sa, sizeof(sa)), 0);
    run_for(loop, 5);
    sk_io_stop(loop, &a.io);
    close(lfd);
    for (int i = 0; i < a.n; i++)
        close(a.accepted[i]);
    for (int i = 0; i < 10; i++)
        close(clients[i]);
    close(late);
    free(e.pending);
    ASSERT_EQ(sk_loop_free(loop), 0);
}

/* A turn's output has left when the HANDOFF phase runs, if a hook said it has work:
 * what a woken thread (the ledger) sees then is the answers already on their way. */
typedef struct {
    sk_loop_t *loop;
    echo_t *e;
    int peer;
    int seen_at_handoff;
    bool wrote;
} handoff_t;

static void output_hook(sk_loop_t *loop, void *arg)
{
    handoff_t *h = arg;
    if (!h->wrote) {
        h->wrote = true;
        ASSERT_EQ(sk_io_write(loop, &h->e->io, "answer", 6), 6);
        sk_loop_handoff_pending(loop);
    }
}

static void handoff_hook(sk_loop_t *loop, void *arg)
{
    (void)loop;
    handoff_t *h = arg;
    char buf[16];
    if (h->wrote && h->seen_at_handoff < 0)
        h->seen_at_handoff = (int)recv(h->peer, buf, sizeof(buf), MSG_DONTWAIT);
}

SK_TEST(handoff_runs_after_the_output_left)
{
    sk_loop_t *loop = new_loop();
    /* A promise of the submission the kernel takes: a refused one leaves later. */
    sk_loop_uring_set_fault(loop, NULL, NULL);
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(set_nonblock(sv[0]), 0);
    echo_t e = {0};
    ASSERT_EQ(sk_io_start(loop, &e.io, sv[0], SK_IO_STREAM, echo_cb), 0);
    handoff_t h = {.loop = loop, .e = &e, .peer = sv[1], .seen_at_handoff = -1};
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_OUTPUT, output_hook, &h);
    sk_loop_add_before_sleep(loop, SK_LOOP_PHASE_HANDOFF, handoff_hook, &h);
    run_for(loop, 0);
    ASSERT_EQ(h.seen_at_handoff, 6);
    sk_loop_remove_before_sleep(loop, output_hook, &h);
    sk_loop_remove_before_sleep(loop, handoff_hook, &h);
    sk_io_stop(loop, &e.io);
    close(sv[0]);
    close(sv[1]);
    ASSERT_EQ(sk_loop_free(loop), 0);
}

/* ---- churn: handles opened and closed at random while bytes fly both ways ---------- */

/* Every connection of the churn test marks its bytes with its own tag, both ways: a
 * byte that reaches a handle or a peer with another tag came from an earlier
 * connection of the same slot or the same fd number (a completion delivered to the
 * wrong handle, a cancellation that hit the next connection on a reused fd). */
#define CHURN_SLOTS 24

typedef struct {
    sk_io_t io;
    bool open; /* the handle is registered */
    int peer; /* the other end, -1 once closed */
    uint8_t tag;
    bool peer_gone; /* the peer closed (maybe with a reset) or shut down its side */
    size_t peer_wrote, got; /* bytes the peer wrote, bytes the handle read */
    size_t taken, peer_got; /* bytes sk_io_write took, bytes the peer read */
} churn_t;

static churn_t churn[CHURN_SLOTS];
static int churn_bad, churn_stale, churn_closes;
static uint8_t churn_next_tag;

static void churn_close(sk_loop_t *loop, churn_t *c)
{
    sk_io_stop(loop, &c->io);
    close(c->io.fd);
    c->open = false;
    churn_closes++;
}

static void churn_cb(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    churn_t *c = SK_CONTAINER_OF(io, churn_t, io);
    if (!c->open) {
        churn_stale++; /* a callback for a handle that was stopped */
        return;
    }
    (void)events;
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = sk_io_read(loop, io, buf, sizeof(buf));
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++)
                churn_bad += buf[i] != c->tag;
            c->got += (size_t)n;
            continue;
        }
        if (n == 0 || errno != EAGAIN) {
            /* The peer went away: close, as a server does. */
            churn_close(loop, c);
            return;
        }
        break;
    }
    if (events & SK_IO_ERR)
        churn_close(loop, c);
}

static int churn_listener(struct sockaddr_in *sa)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(lfd, 0);
    *sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(bind(lfd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    ASSERT_EQ(listen(lfd, 64), 0);
    socklen_t sl = sizeof(*sa);
    ASSERT_EQ(getsockname(lfd, (struct sockaddr *)sa, &sl), 0);
    return lfd;
}

/* A connected pair: a Unix socket pair, or TCP over loopback (which can be reset). */
static void churn_pair(int lfd, const struct sockaddr_in *sa, int sv[2])
{
    if (rng_next() % 2) {
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    } else {
        sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(sv[1], 0);
        ASSERT_EQ(connect(sv[1], (const struct sockaddr *)sa, sizeof(*sa)), 0);
        sv[0] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ASSERT_GE(sv[0], 0);
    }
    ASSERT_EQ(set_nonblock(sv[0]), 0);
    ASSERT_EQ(set_nonblock(sv[1]), 0);
}

static void churn_peer_read(churn_t *c)
{
    uint8_t buf[16384];
    for (;;) {
        ssize_t n = read(c->peer, buf, sizeof(buf));
        if (n <= 0)
            return;
        for (ssize_t i = 0; i < n; i++)
            churn_bad += buf[i] != c->tag;
        c->peer_got += (size_t)n;
    }
}

SK_TEST(stream_churn_never_crosses_connections)
{
    /* Writes to a gone peer fail with EPIPE instead of killing the test, as in seckill. */
    signal(SIGPIPE, SIG_IGN);
    sk_loop_t *loop = new_loop();
    struct sockaddr_in sa;
    int lfd = churn_listener(&sa);
    memset(churn, 0, sizeof(churn));
    for (int i = 0; i < CHURN_SLOTS; i++)
        churn[i].peer = -1;
    churn_bad = churn_stale = churn_closes = 0;
    static uint8_t fill[70000];
    int opened = 0, resets = 0;
    for (int step = 0; step < 4000; step++) {
        churn_t *c = &churn[rng_next() % CHURN_SLOTS];
        switch (rng_next() % 8) {
        case 0: /* a new connection in a free slot: often on an fd number just freed */
            if (!c->open && c->peer < 0) {
                int sv[2];
                churn_pair(lfd, &sa, sv);
                memset(c, 0, sizeof(*c));
                c->peer = sv[1];
                c->tag = (uint8_t)(++churn_next_tag ? churn_next_tag : ++churn_next_tag);
                ASSERT_EQ(sk_io_start(loop, &c->io, sv[0], SK_IO_STREAM, churn_cb), 0);
                c->open = true;
                opened++;
            }
            break;
        case 1: /* the peer sends */
            if (c->peer >= 0 && !c->peer_gone) {
                size_t n = 1 + rng_next() % sizeof(fill);
                memset(fill, c->tag, n);
                ssize_t w = write(c->peer, fill, n);
                if (w > 0)
                    c->peer_wrote += (size_t)w;
            }
            break;
        case 2: /* the owner sends */
            if (c->open) {
                size_t n = 1 + rng_next() % sizeof(fill);
                memset(fill, c->tag, n);
                ssize_t w = sk_io_write(loop, &c->io, fill, n);
                if (w > 0)
                    c->taken += (size_t)w;
            }
            break;
        case 3: /* the owner closes, with bytes maybe in flight both ways */
            if (c->open)
                churn_close(loop, c);
            break;
        case 4: /* the peer vanishes: a close with unread bytes, a reset (SO_LINGER 0), or a half-close */
            if (c->peer >= 0 && !c->peer_gone) {
                uint64_t how = rng_next() % 3;
                if (how == 0) {
                    struct linger lg = {.l_onoff = 1, .l_linger = 0};
                    setsockopt(c->peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* fails on Unix sockets */
                    resets++;
                }
                if (how == 2) {
                    shutdown(c->peer, SHUT_WR);
                } else {
                    close(c->peer);
                    c->peer = -1;
                }
                c->peer_gone = true;
            }
            break;
        case 5:
            if (c->peer >= 0)
                churn_peer_read(c);
            break;
        default:
            run_for(loop, 0);
        }
        /* A slot whose handle and peer are both done is free again. */
        for (int i = 0; i < CHURN_SLOTS; i++) {
            if (!churn[i].open && churn[i].peer >= 0 && churn[i].peer_gone) {
                close(churn[i].peer);
                churn[i].peer = -1;
            }
            if (!churn[i].open && churn[i].peer >= 0 && rng_next() % 4 == 0) {
                churn_peer_read(&churn[i]);
                close(churn[i].peer);
                churn[i].peer = -1;
            }
        }
    }
    /* The survivors: everything sent either way arrives, whole. */
    for (int round = 0; round < 5000; round++) {
        bool pending = false;
        for (int i = 0; i < CHURN_SLOTS; i++) {
            churn_t *c = &churn[i];
            if (c->open && c->peer >= 0 && !c->peer_gone) {
                churn_peer_read(c);
                pending = pending || c->got < c->peer_wrote || c->peer_got < c->taken;
            }
        }
        if (!pending)
            break;
        run_for(loop, 0);
    }
    for (int i = 0; i < CHURN_SLOTS; i++) {
        churn_t *c = &churn[i];
        if (c->open && c->peer >= 0 && !c->peer_gone) {
            ASSERT_EQ(c->got, c->peer_wrote);
            ASSERT_EQ(c->peer_got, c->taken);
        }
        if (c->open)
            churn_close(loop, c);
        if (c->peer >= 0)
            close(c->peer);
    }
    run_for(loop, 1);
    printf("     (%d connections, %d resets, %d closes)\n", opened, resets, churn_closes);
    ASSERT_EQ(churn_bad, 0);
    ASSERT_EQ(churn_stale, 0);
    ASSERT_GT(opened, 100);
    ASSERT_GT(resets, 10);
    close(lfd);
    ASSERT_EQ(sk_loop_free(loop), 0);
}

/* Takes every connection; one that comes without its peer's address is a failure. */
static void accept_named_cb(sk_loop_t *loop, sk_io_t *io, unsigned events)
{
    (void)events;
    acceptor_t *a = SK_CONTAINER_OF(io, acceptor_t, io);
    for (;;) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        socklen_t sl = sizeof(ss);
        int fd = sk_io_accept(loop, io, &ss, &sl);
        if (fd < 0) {
            if (errno != EAGAIN)
                a->fails++;
            return;
        }
        if (ss.ss_family != AF_INET)
            a->fails++;
        if (a->n < 16)
            a->accepted[a->n++] = fd;
        else
            close(fd);
    }
}

/* A client that connects, sends a request and resets before the loop took its
 * connection: if the loop hands the connection over, it names the peer (the server's
 * deny list and rate limits key on that address; a connection without one would pass
 * them), and a connection that cannot be named any more is not handed over at all. */
SK_TEST(accepted_connections_always_name_their_peer)
{
    sk_loop_t *loop = new_loop();
    struct sockaddr_in sa;
    int lfd = churn_listener(&sa);
    ASSERT_EQ(set_nonblock(lfd), 0);
    acceptor_t a = {0};
    ASSERT_EQ(sk_io_start(loop, &a.io, lfd, SK_IO_ACCEPT, accept_named_cb), 0);
    run_for(loop, 0); /* the accept is armed */
    int clients[8];
    for (int i = 0; i < 8; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_EQ(connect(clients[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
        ASSERT_EQ(write(clients[i], "GET / HTTP/1.1\r\n\r\n", 18), 18);
        if (i % 2 == 0) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            ASSERT_EQ(setsockopt(clients[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
            close(clients[i]); /* a reset, before the loop ran its accept */
            clients[i] = -1;
        }
    }
    for (int round = 0; round < 200 && a.n < 4; round++)
        run_for(loop, 1);
    run_for(loop, 5);
    ASSERT_EQ(a.fails, 0); /* no connection without its peer's address */
    ASSERT_GE(a.n, 4); /* the ones still there are all served */
    sk_io_stop(loop, &a.io);
    close(lfd);
    for (int i = 0; i < a.n; i++)
        close(a.accepted[i]);
    for (int i = 0; i < 8; i++)
        if (clients[i] >= 0)
            close(clients[i]);
    ASSERT_EQ(sk_loop_free(loop), 0);
}

/* ---- a full submission queue and refused system calls --------------------------------- */

/* Many streams echo at once: with a tiny io_uring queue, every turn's receives and sends
 * overflow it (and in the tiny pass, some submissions are refused): every byte still
 * comes back, in order, on its own connection. */
#define MANY_STREAMS 200
#define MANY_ROUNDS 20
#define MANY_MSG 64

SK_TEST(many_streams_fill_the_submission_queue)
{
    sk_loop_t *loop = new_loop();
    static echo_t es[MANY_STREAMS];
    static int peers[MANY_STREAMS];
    static size_t got[MANY_STREAMS];
    static char in[MANY_STREAMS][MANY_ROUNDS * MANY_MSG];
    memset(es, 0, sizeof(es));
    memset(got, 0, sizeof(got));
    for (int i = 0; i < MANY_STREAMS; i++) {
        int sv[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        ASSERT_EQ(set_nonblock(sv[0]), 0);
        ASSERT_EQ(set_nonblock(sv[1]), 0);
        peers[i] = sv[1];
        ASSERT_EQ(sk_io_start(loop, &es[i].io, sv[0], SK_IO_STREAM, echo_cb), 0);
    }
    int submits0 = tiny_submits;
    char msg[MANY_MSG];
    for (int r = 0; r < MANY_ROUNDS; r++) {
        for (int i = 0; i < MANY_STREAMS; i++) {
            for (int k = 0; k < MANY_MSG; k++)
                msg[k] = (char)(i * 31 + r * 7 + k);
            ASSERT_EQ(write(peers[i], msg, sizeof(msg)), (ssize_t)sizeof(msg));
        }
        /* Turns until this round came back everywhere. */
        size_t want = (size_t)(r + 1) * MANY_MSG;
        for (int t = 0; t < 2000; t++) {
            run_for(loop, 0);
            bool all = true;
            for (int i = 0; i < MANY_STREAMS; i++) {
                ssize_t n;
                while (got[i] < want && (n = read(peers[i], in[i] + got[i], want - got[i])) > 0)
                    got[i] += (size_t)n;
                all = all && got[i] == want;
            }
            if (all)
                break;
        }
        for (int i = 0; i < MANY_STREAMS; i++)
            ASSERT_EQ(got[i], want);
    }
    for (int i = 0; i < MANY_STREAMS; i++) {
        for (int r = 0; r < MANY_ROUNDS; r++)
            for (int k = 0; k < MANY_MSG; k++)
                ASSERT_EQ(in[i][r * MANY_MSG + k], (char)(i * 31 + r * 7 + k));
        ASSERT_EQ(es[i].err, 0);
        ASSERT_EQ(es[i].errs, 0);
        ASSERT_EQ(sk_io_unsent(loop, &es[i].io), 0);
    }
    if (test_tiny)
        ASSERT_GT(tiny_submits, submits0); /* the queue did fill up: it was handed over early */
    /* Half of them stop while their peers still write: the cancellations meet a full
     * queue too, and the other half goes on echoing. */
    for (int i = 0; i < MANY_STREAMS; i += 2) {
        ASSERT_EQ(write(peers[i], msg, sizeof(msg)), (ssize_t)sizeof(msg));
        sk_io_stop(loop, &es[i].io);
        close(es[i].io.fd);
    }
    for (int i = 1; i < MANY_STREAMS; i += 2)
        ASSERT_EQ(write(peers[i], "x", 1), 1);
    size_t want = (size_t)MANY_ROUNDS * MANY_MSG + 1;
    for (int t = 0; t < 2000; t++) {
        run_for(loop, 0);
        bool all = true;
        for (int i = 1; i < MANY_STREAMS; i += 2) {
            ssize_t n;
            char c;
            if (got[i] < want && (n = read(peers[i], &c, 1)) == 1) {
                ASSERT_EQ(c, 'x');
                got[i]++;
            }
            all = all && got[i] == want;
        }
        if (all)
            break;
    }
    for (int i = 1; i < MANY_STREAMS; i += 2) {
        ASSERT_EQ(got[i], want);
        sk_io_stop(loop, &es[i].io);
        close(es[i].io.fd);
    }
    for (int i = 0; i < MANY_STREAMS; i++) {
        close(peers[i]);
        free(es[i].pending);
    }
    ASSERT_EQ(sk_loop_free(loop), 0);
}

/* The wait's failures: each transient one in turn is only a turn without events (the
 * echo and a timer go on); a fatal one ends sk_loop_run with it, and the loop can run
 * again once the cause is gone. */
static int wait_script[16];
static int wait_script_len, wait_script_pos;

static int script_fault(void *arg, int call)
{
    (void)arg;
    if (call != SK_URING_CALL_WAIT || wait_script_pos >= wait_script_len)
        return 0;
    return wait_script[wait_script_pos++];
}

SK_TEST(uring_wait_failures_are_retried_and_a_fatal_one_ends_the_loop)
{
    sk_loop_t *loop = sk_loop_new_io(SK_LOOP_IO_URING);
    ASSERT_TRUE(loop != NULL);
    sk_loop_uring_set_fault(loop, script_fault, NULL);
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(set_nonblock(sv[0]), 0);
    ASSERT_EQ(set_nonblock(sv[1]), 0);
    echo_t e = {0};
    ASSERT_EQ(sk_io_start(loop, &e.io, sv[0], SK_IO_STREAM, echo_cb), 0);
    static const int transients[] = {-EINTR, -ETIME, -EAGAIN, -EBUSY, -ENOMEM};
    wait_script_pos = 0;
    wait_script_len = 0;
    for (size_t i = 0; i < SK_ARRAY_LEN(transients); i++) {
        wait_script[wait_script_len++] = transients[i];
        wait_script[wait_script_len++] = transients[i];
    }
    ASSERT_EQ(write(sv[1], "ping", 4), 4);
    char buf[8];
    size_t got = 0;
    for (int t = 0; t < 200 && got < 4; t++) {
        run_for(loop, 1);
        ssize_t n = read(sv[1], buf + got, sizeof(buf) - got);
        if (n > 0)
            got += (size_t)n;
    }
    ASSERT_EQ(got, 4);
    ASSERT_TRUE(memcmp(buf, "ping", 4) == 0);
    ASSERT_EQ(wait_script_pos, wait_script_len); /* every failure was met, none ended the loop */
    /* A fatal one: sk_loop_run returns it. */
    wait_script[0] = -EBADF;
    wait_script_pos = 0;
    wait_script_len = 1;
    sk_timer_t t = {0};
    sk_timer_start(loop, &t, 1000, stop_loop_cb);
    ASSERT_EQ(sk_loop_run(loop), -EBADF);
    sk_timer_stop(loop, &t);
    /* Gone: the loop serves again. */
    ASSERT_EQ(write(sv[1], "pong", 4), 4);
    got = 0;
    for (int r = 0; r < 200 && got < 4; r++) {
        run_for(loop, 1);
        ssize_t n = read(sv[1], buf + got, sizeof(buf) - got);
        if (n > 0)
            got += (size_t)n;
    }
    ASSERT_EQ(got, 4);
    ASSERT_TRUE(memcmp(buf, "pong", 4) == 0);
    sk_io_stop(loop, &e.io);
    close(sv[0]);
    close(sv[1]);
    free(e.pending);
    ASSERT_EQ(sk_loop_free(loop), 0);
}

static int always_ebadf(void *arg, int call)
{
    (void)arg;
    return call == SK_URING_CALL_WAIT ? -EBADF : 0;
}

/* sk_loop_run_or_exit: a fatal failure ends the process, with one line that says who
 * and why. */
SK_TEST(uring_run_or_exit_ends_the_process_with_one_line)
{
    int pfd[2];
    ASSERT_EQ(pipe(pfd), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(pfd[1], STDERR_FILENO);
        close(pfd[0]);
        sk_loop_t *loop = sk_loop_new_io(SK_LOOP_IO_URING);
        if (!loop)
            _exit(10);
        sk_loop_uring_set_fault(loop, always_ebadf, NULL);
        sk_loop_run_or_exit(loop, "worker 7");
        _exit(11); /* not reached */
    }
    close(pfd[1]);
    char out[1024];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(out) - 1 && (n = read(pfd[0], out + len, sizeof(out) - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = 0;
    close(pfd[0]);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 1);
    ASSERT_TRUE(strstr(out, " error worker 7: the event loop (uring) failed: Bad file descriptor; exiting\n") != NULL);
    ASSERT_EQ(strchr(out, '\n') - out + 1, (long)len); /* one line */
}

/* A process where io_uring_setup fails with EPERM, as under a container's seccomp
 * profile or kernel.io_uring_disabled: AUTO falls back to epoll, URING says why. */
SK_TEST(auto_falls_back_to_epoll_when_io_uring_is_refused)
{
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        struct sock_filter filter[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SK_AUDIT_ARCH, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = SK_ARRAY_LEN(filter), .filter = filter};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
            _exit(10);
        errno = 0;
        sk_loop_t *u = sk_loop_new_io(SK_LOOP_IO_URING);
        if (u || errno != EPERM)
            _exit(11);
        sk_loop_t *a = sk_loop_new_io(SK_LOOP_IO_AUTO);
        if (!a || sk_loop_io(a) != SK_LOOP_IO_EPOLL)
            _exit(12);
        sk_loop_free(a);
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    /* Here (nothing refused), AUTO picks io_uring when the kernel has it. */
    sk_loop_t *a = sk_loop_new_io(SK_LOOP_IO_AUTO);
    ASSERT_TRUE(a != NULL);
    sk_loop_t *u = sk_loop_new_io(SK_LOOP_IO_URING);
    ASSERT_EQ(sk_loop_io(a), u ? SK_LOOP_IO_URING : SK_LOOP_IO_EPOLL);
    if (u)
        sk_loop_free(u);
    sk_loop_free(a);
    sk_loop_io_t io;
    ASSERT_EQ(sk_loop_io_parse("uring", &io), 0);
    ASSERT_EQ(io, SK_LOOP_IO_URING);
    ASSERT_EQ(sk_loop_io_parse("epoll", &io), 0);
    ASSERT_EQ(io, SK_LOOP_IO_EPOLL);
    ASSERT_EQ(sk_loop_io_parse("auto", &io), 0);
    ASSERT_EQ(io, SK_LOOP_IO_AUTO);
    ASSERT_EQ(sk_loop_io_parse("kqueue", &io), -EINVAL);
}

#define ALL_TESTS                                                                                                      \
    SK_RUN(timers_fire_in_deadline_order);                                                                             \
    SK_RUN(timer_stop_and_restart);                                                                                    \
    SK_RUN(timer_stopped_from_another_timer_callback);                                                                 \
    SK_RUN(same_deadline_timers_cancel_each_other);                                                                    \
    SK_RUN(timer_rearmed_from_own_callback);                                                                           \
    SK_RUN(ten_thousand_random_timers_fire_in_heap_order);                                                             \
    SK_RUN(io_watcher_reads_socketpair_until_eagain);                                                                  \
    SK_RUN(io_start_on_bad_fd_fails);                                                                                  \
    SK_RUN(io_modify_switches_events);                                                                                 \
    SK_RUN(io_stopped_by_another_callback_in_same_turn);                                                               \
    SK_RUN(async_sends_before_run_coalesce_into_one_callback);                                                         \
    SK_RUN(async_never_loses_a_wakeup);                                                                                \
    SK_RUN(async_burst_from_thread_while_running);                                                                     \
    SK_RUN(before_sleep_hook_runs_every_turn);                                                                         \
    SK_RUN(hook_can_stop_the_loop_before_waiting);                                                                     \
    SK_RUN(before_sleep_list_runs_in_phase_order);                                                                     \
    SK_RUN(loop_free_counts_handles_left_registered);                                                                  \
    SK_RUN(loop_stop_returns_after_current_turn_and_run_again_works);                                                  \
    SK_RUN(loop_now_is_monotonic_and_update_time_refreshes);                                                           \
    SK_RUN(stream_echoes_megabytes_in_order);                                                                          \
    SK_RUN(stream_paused_reader_holds_the_client_back);                                                                \
    SK_RUN(stream_stopped_with_bytes_in_flight);                                                                       \
    SK_RUN(listener_accepts_with_peer_addresses);                                                                      \
    SK_RUN(handoff_runs_after_the_output_left);                                                                        \
    SK_RUN(stream_churn_never_crosses_connections);                                                                    \
    SK_RUN(accepted_connections_always_name_their_peer);                                                               \
    SK_RUN(many_streams_fill_the_submission_queue)

SK_TEST_MAIN(alarm(120); /* a hung loop fails the whole binary instead of blocking ctest */
             printf("-- epoll\n"); test_io = SK_LOOP_IO_EPOLL; ALL_TESTS;
             sk_loop_t *probe = sk_loop_new_io(SK_LOOP_IO_URING);
             if (!probe) printf("-- io_uring is not available here (%s): its runs are skipped\n", strerror(errno));
             else {
                 sk_loop_free(probe);
                 printf("-- io_uring\n");
                 test_io = SK_LOOP_IO_URING;
                 ALL_TESTS;
                 printf("-- io_uring, a %d-entry submission queue, system calls refused\n", TINY_ENTRIES);
                 test_tiny = true;
                 ALL_TESTS;
                 test_tiny = false;
                 SK_RUN(uring_wait_failures_are_retried_and_a_fatal_one_ends_the_loop);
                 SK_RUN(uring_run_or_exit_ends_the_process_with_one_line);
             } SK_RUN(auto_falls_back_to_epoll_when_io_uring_is_refused);)
