/* Temporary directories for tests: made under $TMPDIR (or /tmp), removed with everything
 * in them — by the test when it ends, by the abort hook of test.h when an assertion
 * fails, and at the process's exit for a test that kept its directory to the end, so a
 * run leaves nothing behind. */
#ifndef SK_TESTS_TESTDIR_H
#define SK_TESTS_TESTDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#define SK_TEST_DIRS_MAX 16

/* The directories made and not yet removed (copies: the callers' buffers may be gone
 * when the abort hook runs). */
static char sk_test_dirs[SK_TEST_DIRS_MAX][256];

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
    for (int i = 0; i < SK_TEST_DIRS_MAX; i++)
        if (strcmp(sk_test_dirs[i], dir) == 0)
            sk_test_dirs[i][0] = '\0';
}

static inline void sk_test_rm_dirs(void)
{
    for (int i = 0; i < SK_TEST_DIRS_MAX; i++)
        if (sk_test_dirs[i][0])
            nftw(sk_test_dirs[i], sk_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* At exit, in the process that made the directories (not in a forked child's exit). */
static pid_t sk_test_dirs_owner;

static inline void sk_test_rm_dirs_at_exit(void)
{
    if (getpid() == sk_test_dirs_owner)
        sk_test_rm_dirs();
}

/* Makes a fresh directory "<tmp>/seckill-<what>-XXXXXX" in buf; NULL on failure. */
static inline char *sk_test_temp_dir(char *buf, size_t cap, const char *what)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(buf, cap, "%s/seckill-%s-XXXXXX", base, what);
    if (!mkdtemp(buf))
        return NULL;
    sk_test_abort_hook = sk_test_rm_dirs;
    if (!sk_test_dirs_owner) {
        sk_test_dirs_owner = getpid();
        atexit(sk_test_rm_dirs_at_exit);
    }
    for (int i = 0; i < SK_TEST_DIRS_MAX; i++) {
        if (!sk_test_dirs[i][0] && strlen(buf) < sizeof(sk_test_dirs[i])) {
            memcpy(sk_test_dirs[i], buf, strlen(buf) + 1);
            break;
        }
    }
    return buf;
}

#endif
