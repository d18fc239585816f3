/* src/crypto/secret.c: secret files (a trailing newline is not part of the secret; empty,
 * missing and oversized files are refused). */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/secret.h"
#include "test.h"
#include "testdir.h"

static char *write_file(const char *dir, const char *name, const char *data, size_t n)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ASSERT_TRUE(f != NULL);
    ASSERT_EQ(fwrite(data, 1, n, f), n);
    fclose(f);
    chmod(path, 0600);
    return path;
}

static void expect(const char *dir, const char *data, const char *want)
{
    char err[256] = "";
    size_t len = 0;
    char *s = sk_secret_read(write_file(dir, "s", data, strlen(data)), &len, err, sizeof(err));
    if (!want) {
        if (s)
            SK_FAIL_AT("'%s' was accepted", data);
        ASSERT_TRUE(err[0] != '\0');
        return;
    }
    if (!s)
        SK_FAIL_AT("'%s' refused: %s", data, err);
    ASSERT_MEM_STR(s, len, want);
    ASSERT_EQ(strlen(s), len);
    sk_secret_free(s);
}

SK_TEST(test_secret_files)
{
    char buf[256];
    char *dir = sk_test_temp_dir(buf, sizeof(buf), "secret");
    ASSERT_TRUE(dir != NULL);
    expect(dir, "s3cret", "s3cret");
    expect(dir, "s3cret\n", "s3cret");
    expect(dir, "s3cret\r\n", "s3cret");
    expect(dir, "s3cret\n\n", "s3cret\n"); /* only one newline is the file's */
    expect(dir, " spaced ", " spaced ");
    expect(dir, "", NULL);
    expect(dir, "\n", NULL);
    expect(dir, "\r\n", NULL);
    char big[SK_SECRET_MAX + 2];
    memset(big, 'k', sizeof(big));
    char err[256];
    size_t len;
    ASSERT_TRUE(sk_secret_read(write_file(dir, "big", big, SK_SECRET_MAX + 1), &len, err, sizeof(err)) == NULL);
    char *s = sk_secret_read(write_file(dir, "max", big, SK_SECRET_MAX), &len, err, sizeof(err));
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(len, SK_SECRET_MAX);
    sk_secret_free(s);
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/none", dir);
    ASSERT_TRUE(sk_secret_read(missing, &len, err, sizeof(err)) == NULL);
    ASSERT_TRUE(strstr(err, "cannot read") != NULL);
    rm_rf(dir);
}

SK_TEST_MAIN(SK_RUN(test_secret_files);)
