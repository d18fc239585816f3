/* seckill-vcpu-gaps: was a CPU taken away from everything on it, and for how long? One
 * thread per CPU asked for, pinned to it, sleeps 1 ms at a time under SCHED_FIFO (above
 * every ordinary thread, so nothing in the machine's own scheduling can hold it back for
 * long) and measures how late each wake-up is. A wake-up several ms late means the CPU ran
 * nothing of the machine's meanwhile: the hypervisor paused it, or the kernel ran with
 * preemption off. bench/latency.sh runs it beside an open loop (GAPS=1) to tell such
 * pauses from stalls of the server's own. Without the right to SCHED_FIFO (not root, no
 * CAP_SYS_NICE) it runs as an ordinary thread and says so: its gaps then include waiting
 * for the CPU behind other threads. It costs ~1 000 wake-ups a second per CPU.
 * Usage: seckill-vcpu-gaps SECONDS CPU [CPU...]
 * Prints, per CPU: wake-ups, how many were late by >= 2 ms, the latest, and the first
 * such gaps with their time (CLOCK_MONOTONIC, ms). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CPUS 64
#define SHOWN 10 /* gaps listed per CPU */

typedef struct {
    int cpu;
    double secs;
    bool fifo;
    long wakeups, late;
    double worst_ms;
    double gap_at[SHOWN], gap_ms[SHOWN];
} watch_t;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void *watch(void *arg)
{
    watch_t *w = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
        fprintf(stderr, "seckill-vcpu-gaps: cannot run on CPU %d\n", w->cpu);
        return NULL;
    }
    struct sched_param sp = {.sched_priority = 1};
    w->fifo = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
    const struct timespec ms = {0, 1000000};
    double start = now_ms(), last = start;
    while (last - start < w->secs * 1e3) {
        nanosleep(&ms, NULL);
        double t = now_ms(), late = t - last - 1.0;
        last = t;
        w->wakeups++;
        if (late > w->worst_ms)
            w->worst_ms = late;
        if (late >= 2.0) {
            if (w->late < SHOWN) {
                w->gap_at[w->late] = t - late;
                w->gap_ms[w->late] = late;
            }
            w->late++;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: seckill-vcpu-gaps SECONDS CPU [CPU...]\n");
        return 2;
    }
    double secs = strtod(argv[1], NULL);
    int n = argc - 2;
    if (!(secs > 0 && secs <= 3600) || n > MAX_CPUS) {
        fprintf(stderr, "seckill-vcpu-gaps: SECONDS in (0, 3600], at most %d CPUs\n", MAX_CPUS);
        return 2;
    }
    static watch_t w[MAX_CPUS];
    pthread_t t[MAX_CPUS];
    for (int i = 0; i < n; i++) {
        char *end;
        long cpu = strtol(argv[i + 2], &end, 10);
        if (*end || cpu < 0 || cpu >= CPU_SETSIZE) {
            fprintf(stderr, "seckill-vcpu-gaps: not a CPU: %s\n", argv[i + 2]);
            return 2;
        }
        w[i] = (watch_t){.cpu = (int)cpu, .secs = secs};
        int rc = pthread_create(&t[i], NULL, watch, &w[i]);
        if (rc != 0) {
            fprintf(stderr, "seckill-vcpu-gaps: %s\n", strerror(rc));
            return 1;
        }
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < n; i++) {
        printf("cpu %d: %ld wake-ups, %ld late by >= 2 ms, latest %.2f ms%s", w[i].cpu, w[i].wakeups, w[i].late,
               w[i].worst_ms, w[i].fifo ? "" : " (no SCHED_FIFO here: gaps include waiting behind other threads)");
        for (long k = 0; k < w[i].late && k < SHOWN; k++)
            printf("%s%.1f ms at %.0f", k ? ", " : "; ", w[i].gap_ms[k], w[i].gap_at[k]);
        printf("\n");
    }
    return 0;
}
