/* Temporary directories for tests: made under $TMPDIR (or /tmp), removed with everything
 * in them. */
#ifndef SK_TESTS_TESTDIR_H
#define SK_TESTS_TESTDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static inline int sk_test_rm_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)type;
    (void)f;
    return remove(path);
}

/* Removes dir and everything below it. */
static inline void rm_rf(const char *dir)
{
    nftw(dir, sk_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Makes a fresh directory "<tmp>/seckill-<what>-XXXXXX" in buf; NULL on failure. */
static inline char *sk_test_temp_dir(char *buf, size_t cap, const char *what)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(buf, cap, "%s/seckill-%s-XXXXXX", base, what);
    return mkdtemp(buf);
}

#endif
