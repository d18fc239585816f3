/* A page of memory between two pages that fault on any access: a string placed at its
 * end, or at its start, crashes the test when a reader goes one byte past its end or
 * before its start (for readers that take several bytes at a time). */
#ifndef SK_TESTS_GUARD_H
#define SK_TESTS_GUARD_H

#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    char *map;
    size_t page;
} sk_guarded_t;

/* The usable page (g->page bytes), or NULL. */
static inline char *sk_guarded_page(sk_guarded_t *g)
{
    g->page = (size_t)sysconf(_SC_PAGESIZE);
    g->map = mmap(NULL, 3 * g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED)
        return NULL;
    if (mprotect(g->map, g->page, PROT_NONE) != 0 || mprotect(g->map + 2 * g->page, g->page, PROT_NONE) != 0) {
        munmap(g->map, 3 * g->page);
        return NULL;
    }
    return g->map + g->page;
}

static inline void sk_guarded_free(sk_guarded_t *g)
{
    munmap(g->map, 3 * g->page);
}

#endif
