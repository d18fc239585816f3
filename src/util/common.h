/* Small helpers every module uses: allocation that aborts on exhaustion, clocks,
 * logging, and relaxed per-thread statistics counters. */
#ifndef SK_UTIL_COMMON_H
#define SK_UTIL_COMMON_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SK_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SK_LIKELY(x) __builtin_expect(!!(x), 1)
#define SK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SK_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/** malloc/calloc/realloc/strdup that abort the process when memory is exhausted. */
void *sk_xmalloc(size_t n);
void *sk_xcalloc(size_t count, size_t n);
void *sk_xrealloc(void *p, size_t n);
char *sk_xstrndup(const char *s, size_t n);
/** Asks the kernel to back the 2 MiB-aligned inside of [p, p + n) with transparent huge
 * pages (madvise MADV_HUGEPAGE; a no-op below 4 MiB or where the kernel refuses). For the
 * auditor's big arrays, probed at random once: fewer faults and TLB misses. Not for the
 * ledger's memory, which the pager faults in ahead instead (sk_mem_populate_ahead): a
 * huge page's first touch there stalled every purchase in flight. Not for arrays grown by
 * realloc: moving huge pages to an address of another alignment (mremap) splits them,
 * which took 120-600 ms per doubling of a 32-256 MiB array on a 2-core VM. */
void sk_mem_huge(void *p, size_t n);
/** Zeroed memory for a big hash table (abort on failure, as sk_xcalloc): from 1 MiB up,
 *  its own anonymous mapping (never malloc's heap, where calloc of a size below glibc's
 *  moving mmap threshold writes every byte at once), faulted in only as it is touched (or
 *  by the pager). Free it with sk_mem_table_free and the same size. */
void *sk_mem_table_new(size_t n);
void sk_mem_table_free(void *p, size_t n);
/** Writes a zero into each of the next `pages` 4 KiB pages of [p, p + n) from byte *done
 *  on, moves *done past them, and returns true once *done reached n. For memory that is
 *  zero already (calloc'ed) and that will be needed soon: the kernel backs it a few pages
 *  per call instead of all at once when it is first used. On this project's VMs a first
 *  touch of fresh memory cost up to ~5 ms per 2 MiB, so a table of 64 MiB allocated and
 *  filled at once had stalled one batch of the ledger for 300 ms. */
bool sk_mem_prefault(void *p, size_t n, size_t *done, size_t pages);
/* The memory must hold zeros where it is touched: the touch writes one. */
/** Asks a thread of its own (sk-pager, started at the first call) to fault [p, p + n) in
 *  for writing (madvise MADV_POPULATE_WRITE), so that the caller, who will use that memory
 *  soon, does not take its faults itself: on the project's VMs a 4 KiB fault costs 5-18
 *  us, more than a decision, and the first touch of a 2 MiB huge page 2.5-5 ms (zeroing
 *  it, and compacting memory to find one), which on the ledger's thread stalled every
 *  purchase in flight. The memory's contents are never read or written, so the range may
 *  be in use already. It never waits: SK_PAGER_BUSY when the pager holds its queue's lock
 *  or the queue is full (ask again later), SK_PAGER_NEVER where there is no pager (a
 *  kernel before 5.14) or for a range under 64 KiB; the caller then faults the memory in
 *  itself, as sk_mem_prefault does. An owner calls sk_mem_populate_forget before it
 *  unmaps or frees a range it gave. */
typedef enum { SK_PAGER_QUEUED, SK_PAGER_BUSY, SK_PAGER_NEVER } sk_pager_answer_t;
sk_pager_answer_t sk_mem_populate_ahead(void *p, size_t n);
/** For memory the owner walks with sk_mem_prefault: hands [p, p + n) to the pager, and
 *  returns where the owner's walk starts: n when the pager took it all, 0 when it did
 *  not (busy or absent: the owner faults it in itself, a few pages at a time). */
size_t sk_mem_prefault_start(void *p, size_t n);
/** Takes [p, p + n) out of what the pager has queued, and waits for the step it may be
 *  faulting in there (a fraction of a millisecond): from its return the pager touches
 *  none of it, so the range may be unmapped and its addresses used again. */
void sk_mem_populate_forget(void *p, size_t n);
/** Bytes the pager has queued or in hand (for tests). */
size_t sk_mem_pager_queued(void);

/** Big blocks that live as long as their owner: the pages of a sale's orders and holders
 *  and the chunks of its strings, which grow a block at a time during a flood. The first
 *  SK_BLOCKS_PLAIN bytes are malloc's, as any allocation; a big owner's later blocks are
 *  carved one after another from anonymous regions of SK_BLOCKS_REGION bytes, on ordinary
 *  pages. From malloc each such block is a mapping of its own, faulted in 4 KiB at a time
 *  by the owner, and on these VMs a fault costs more than the decision that caused it.
 *  The SK_BLOCKS_AHEAD bytes past the next free one (into the next region, mapped then,
 *  and from the last SK_BLOCKS_AHEAD bytes of the malloc'd start on, into the first) are
 *  handed to the pager (sk_mem_populate_ahead) SK_BLOCKS_STEP at a time, so the owner (the
 *  ledger) takes none of those faults; the price is at most AHEAD + STEP bytes resident
 *  ahead of their use. Blocks are never freed one by one: sk_blocks_free frees them all.
 *  One owner, no lock. A zeroed sk_blocks_t is empty. */
typedef struct {
    char **own; /* blocks of their own (malloc's) */
    size_t n_own, cap_own, own_bytes;
    char **regions;
    size_t n_regions, cap_regions;
    char *cur; /* the free rest of the newest region */
    size_t left;
    char *ahead; /* the region after it, once mapped ahead of its use */
    size_t cur_queued, ahead_queued; /* bytes of each handed to the pager (from its start) */
} sk_blocks_t;
#define SK_BLOCKS_PLAIN ((size_t)4 << 20) /* bytes from malloc before the first region */
#define SK_BLOCKS_REGION ((size_t)16 << 20) /* bytes of a region; a block is at most this */
#define SK_BLOCKS_AHEAD ((size_t)2 << 20) /* bytes past the next free one faulted in ahead */
#define SK_BLOCKS_STEP ((size_t)1 << 20) /* handed to the pager at a time */
/* Under AddressSanitizer every block is an allocation of its own, so that the sanitizer
 * knows its bounds. */
#if defined(__SANITIZE_ADDRESS__)
#define SK_BLOCKS_CARVED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SK_BLOCKS_CARVED 0
#endif
#endif
#ifndef SK_BLOCKS_CARVED
#define SK_BLOCKS_CARVED 1
#endif
/** n bytes (n <= SK_BLOCKS_REGION; 0 is a block too), uninitialised as malloc's, 64-byte
 *  aligned; aborts when memory is exhausted. */
void *sk_blocks_alloc(sk_blocks_t *b, size_t n);
void sk_blocks_free(sk_blocks_t *b);

/** Wall clock in milliseconds since the Unix epoch. */
int64_t sk_now_ms(void);
/** Monotonic clock in nanoseconds (arbitrary origin). */
uint64_t sk_mono_ns(void);

typedef enum { SK_LOG_DEBUG = 0, SK_LOG_INFO, SK_LOG_WARN, SK_LOG_ERROR } sk_log_level_t;
/** Global log threshold; messages below it are dropped. Set once at start-up. */
extern sk_log_level_t sk_log_level;
/** Writes one line "<time> <level> <message>" to stderr (one write call, so lines do not tear). */
void sk_log(sk_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define sk_debug(...)                                                                                                  \
    do {                                                                                                               \
        if (sk_log_level <= SK_LOG_DEBUG)                                                                              \
            sk_log(SK_LOG_DEBUG, __VA_ARGS__);                                                                         \
    } while (0)
#define sk_info(...) sk_log(SK_LOG_INFO, __VA_ARGS__)
#define sk_warn(...) sk_log(SK_LOG_WARN, __VA_ARGS__)
#define sk_error(...) sk_log(SK_LOG_ERROR, __VA_ARGS__)
/** Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int sk_log_level_parse(const char *s);

/* A statistics counter with one writer thread and any number of readers (metrics).
 * The writer does a relaxed load and store, which compiles to plain moves: no locked
 * instruction on the hot path, yet readers never see a torn value. */
typedef _Atomic uint64_t sk_counter_t;
static inline void sk_counter_add(sk_counter_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}
static inline uint64_t sk_counter_get(const sk_counter_t *c)
{
    return atomic_load_explicit((sk_counter_t *)c, memory_order_relaxed);
}

/** Parses a decimal integer in [min, max]; the whole string must be digits (optional '-').
 *  Returns 0 or -EINVAL / -ERANGE. */
int sk_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);

#endif
