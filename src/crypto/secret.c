/* Reading secret files. */
#include "crypto/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/common.h"

char *sk_secret_read(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
        sk_warn("%s can be read by other users (mode %03o): chmod 600 it", path, (unsigned)(st.st_mode & 0777));
    char *buf = sk_xmalloc(SK_SECRET_MAX + 2);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, SK_SECRET_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > SK_SECRET_MAX) {
            snprintf(err, errlen, "%s is longer than %d bytes: not a secret file", path, SK_SECRET_MAX);
            goto fail;
        }
    }
    close(fd);
    fd = -1;
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
    }
    if (n == 0) {
        snprintf(err, errlen, "%s is empty: an empty secret would be no secret", path);
        goto fail;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    if (fd >= 0)
        close(fd);
    sk_secret_free(buf);
    return NULL;
}

void sk_secret_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, SK_SECRET_MAX + 2); /* the whole buffer: a cut newline too */
    free(s);
}
