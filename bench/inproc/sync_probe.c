/* seckill-sync-probe: what a durable write costs on this disk, with no server at all. One
 * thread writes a WAL frame's worth of bytes (2 KiB pages: 2 072 bytes) at the next
 * offset of a preallocated file, as the journal appends a batch, and makes it durable
 * with fdatasync, as the journal's syncer does; then the next, for SECONDS. It reports
 * how long the syncs took (the floor under a confirmed purchase's latency: no answer
 * can leave before its batch's sync) and how much CPU each cost the thread that made it
 * (with its write; the kernel's share of a sync: on a virtual disk, the doorbell writes
 * that exit to the hypervisor). bench/latency.sh and bench/engine.sh run it in the same
 * run as their servers, as the anchor for the confirmed tail and for the purchase's CPU.
 * Usage: seckill-sync-probe DIR SECONDS [BYTES]
 * Writes DIR/sync-probe.dat (4 MiB, reused in turn; it must not exist), unlinked as soon
 * as it is made. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "loadgen/histogram.h"
#include "util/common.h"

#define FILE_BYTES (4u << 20)

static double thread_cpu_s(void)
{
    struct rusage r;
    getrusage(RUSAGE_THREAD, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

/* A failed write or sync: says so (a short write sets no errno). */
static int fail(const char *path, const char *doing)
{
    fprintf(stderr, "seckill-sync-probe: %s: %s: %s\n", path, doing, errno ? strerror(errno) : "short write");
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
    /* O_EXCL: a file of that name that is not ours is left alone. Unlinked at once: the
     * syncs of a file with no name are the same, and whatever ends the run (an error, a
     * signal) leaves nothing behind. */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "seckill-sync-probe: %s: %s\n", path, strerror(errno));
        return 1;
    }
    unlink(path);
    char *buf = sk_xmalloc(FILE_BYTES);
    memset(buf, 0x5a, FILE_BYTES);
    sk_hist_t lat; /* ns */
    sk_hist_init(&lat);
    int rc = 0;
    /* The file exists and is durable before the first timed sync: a sync then writes the
     * bytes and flushes the disk's cache, as the journal's does once its WAL no longer
     * grows, not the file's new size and blocks. */
    errno = 0;
    if (pwrite(fd, buf, FILE_BYTES, 0) != (ssize_t)FILE_BYTES || fsync(fd) < 0)
        rc = fail(path, "preparing it");
    off_t off = 0;
    uint64_t t0 = sk_mono_ns(), t = t0, stop = t0 + (uint64_t)(secs * 1e9);
    double c0 = thread_cpu_s();
    while (rc == 0 && t < stop) {
        buf[0] = (char)lat.count; /* a change, so the page is dirty whatever the kernel compares */
        errno = 0;
        if (pwrite(fd, buf, (size_t)bytes, off) != bytes || fdatasync(fd) < 0) {
            rc = fail(path, "writing it");
            break;
        }
        uint64_t after = sk_mono_ns();
        sk_hist_record(&lat, after - t);
        t = after;
        off += bytes;
        if (off + bytes > (off_t)FILE_BYTES)
            off = 0;
    }
    double cpu = thread_cpu_s() - c0, wall = (double)(t - t0) / 1e9;
    close(fd);
    free(buf);
    if (rc != 0) {
        sk_hist_free(&lat);
        return rc;
    }
    /* Syncs over 5 and 10 ms, to within a bucket (1/256 of the value). */
    uint64_t over5 = 0, over10 = 0;
    uint32_t at5 = sk_hist_index(5000000), at10 = sk_hist_index(10000000);
    for (uint32_t i = at5 + 1; i < SK_HIST_BUCKETS; i++) {
        over5 += lat.buckets[i];
        over10 += i > at10 ? lat.buckets[i] : 0;
    }
    double n = (double)lat.count;
    printf("disk alone: %.0f syncs of %ld bytes in %.1f s (%.0f/s): p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.1f "
           "ms; over 5 ms: %llu (%.1f/s), over 10 ms: %llu; CPU %.1f us per sync\n",
           n, bytes, wall, n / wall, (double)sk_hist_percentile(&lat, 50) / 1e6,
           (double)sk_hist_percentile(&lat, 99) / 1e6, (double)sk_hist_percentile(&lat, 99.9) / 1e6,
           (double)lat.max / 1e6, (unsigned long long)over5, (double)over5 / wall, (unsigned long long)over10,
           cpu / n * 1e6);
    sk_hist_free(&lat);
    return 0;
}
