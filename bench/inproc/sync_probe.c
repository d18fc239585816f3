/* seckill-sync-probe: what a durable write costs on this disk, with no server at all. One
 * thread writes a WAL frame's worth of bytes (2 KiB pages: 2 072 bytes) at the next
 * offset of a preallocated file, as the journal appends a batch, and makes it durable
 * with fdatasync, as the journal's syncer does; then the next, for SECONDS. It reports
 * how long the syncs took (the floor under a confirmed purchase's latency: no answer
 * can leave before its batch's sync) and how much CPU each cost the thread that made it
 * (with its write; the kernel's share of a sync: on a virtual disk, the doorbell writes
 * that exit to the hypervisor). bench/latency.sh and bench/engine.sh run it in the same run as their
 * servers, as the anchor for the confirmed tail and for the purchase's CPU.
 * Usage: seckill-sync-probe DIR SECONDS [BYTES]
 * Writes DIR/sync-probe.dat (4 MiB, reused in turn; it must not exist) and removes it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES (4u << 20)
#define MAX_SAMPLES (4u << 20) /* ~35 minutes of syncs at 2 000/s: the run ends there */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double thread_cpu_s(void)
{
    struct rusage r;
    getrusage(RUSAGE_THREAD, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static int by_value(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float quantile(const float *v, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* A failed write or sync: says so (a short write sets no errno) and removes the file. */
static int fail(const char *path, const char *doing)
{
    fprintf(stderr, "seckill-sync-probe: %s: %s: %s\n", path, doing, errno ? strerror(errno) : "short write");
    unlink(path);
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: seckill-sync-probe DIR SECONDS [BYTES]  (SECONDS 0.1-3600, BYTES 1-%u)\n", FILE_BYTES / 2);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4)
        return usage();
    char *end;
    double secs = strtod(argv[2], &end);
    if (*end || !(secs >= 0.1 && secs <= 3600))
        return usage();
    long bytes = 2072;
    if (argc == 4) {
        bytes = strtol(argv[3], &end, 10);
        if (*end || bytes < 1 || bytes > (long)(FILE_BYTES / 2))
            return usage();
    }
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/sync-probe.dat", argv[1]) >= (int)sizeof(path)) {
        fprintf(stderr, "seckill-sync-probe: the directory's path is too long\n");
        return 2;
    }
    char *buf = malloc(FILE_BYTES);
    float *lat = malloc(MAX_SAMPLES * sizeof(*lat));
    if (!buf || !lat) {
        fprintf(stderr, "seckill-sync-probe: out of memory\n");
        return 1;
    }
    /* O_EXCL: a file of that name that is not ours is left alone. */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "seckill-sync-probe: %s: %s\n", path, strerror(errno));
        return 1;
    }
    memset(buf, 0x5a, FILE_BYTES);
    /* The file exists and is durable before the first timed sync: a sync then writes the
     * bytes and flushes the disk's cache, as the journal's does once its WAL no longer
     * grows, not the file's new size and blocks. */
    errno = 0;
    if (pwrite(fd, buf, FILE_BYTES, 0) != (ssize_t)FILE_BYTES || fsync(fd) < 0)
        return fail(path, "preparing it");
    size_t n = 0;
    off_t off = 0;
    double t0 = now_s(), c0 = thread_cpu_s(), t = t0;
    while (t - t0 < secs && n < MAX_SAMPLES) {
        buf[0] = (char)n; /* a change, so the page is dirty whatever the kernel compares */
        errno = 0;
        if (pwrite(fd, buf, (size_t)bytes, off) != bytes || fdatasync(fd) < 0)
            return fail(path, "writing it");
        double after = now_s();
        lat[n++] = (float)((after - t) * 1e3);
        t = after;
        off += bytes;
        if (off + bytes > (off_t)FILE_BYTES)
            off = 0;
    }
    double cpu = thread_cpu_s() - c0, wall = t - t0;
    unlink(path);
    close(fd);
    if (n == 0) {
        fprintf(stderr, "seckill-sync-probe: no sync finished\n");
        return 1;
    }
    size_t over5 = 0, over10 = 0;
    for (size_t i = 0; i < n; i++) {
        over5 += lat[i] > 5.0f;
        over10 += lat[i] > 10.0f;
    }
    qsort(lat, n, sizeof(*lat), by_value);
    printf("disk alone: %zu syncs of %ld bytes in %.1f s (%.0f/s): p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.1f "
           "ms; over 5 ms: %zu (%.1f/s), over 10 ms: %zu; CPU %.1f us per sync\n",
           n, bytes, wall, (double)n / wall, (double)quantile(lat, n, 0.5), (double)quantile(lat, n, 0.99),
           (double)quantile(lat, n, 0.999), (double)lat[n - 1], over5, (double)over5 / wall, over10,
           cpu / (double)n * 1e6);
    if (n == MAX_SAMPLES)
        printf("disk alone: stopped after %zu syncs, before the %.1f s asked for\n", n, secs);
    free(lat);
    free(buf);
    return 0;
}
