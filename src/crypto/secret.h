/* Secrets read from files (--admin-token-file, --user-token-secret-file, --secret-file,
 * --metrics-token-file): a file keeps a secret out of `ps` and the shell's history. */
#ifndef SK_CRYPTO_SECRET_H
#define SK_CRYPTO_SECRET_H

#include <stddef.h>

#define SK_SECRET_MAX 4096

/** Reads a secret file into a NUL-terminated buffer the caller frees (after wiping it
 *  with sk_secret_free). One trailing newline ("\n" or "\r\n") is not part of the
 *  secret. Refuses a missing, unreadable, empty or oversized file (more than
 *  SK_SECRET_MAX bytes) with one line in err. Warns (sk_warn) when other users may read
 *  the file. Returns the secret or NULL. */
char *sk_secret_read(const char *path, size_t *len, char *err, size_t errlen);
/** Wipes and frees a secret from sk_secret_read (NULL is fine). */
void sk_secret_free(char *s);

#endif
