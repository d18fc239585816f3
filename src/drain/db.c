/* Picks the database implementation from the URL. */
#include "drain/db.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* The length of a leading "scheme://" (the scheme alone), or 0 when there is none. */
static size_t scheme_len(const char *url)
{
    size_t n = 0;
    while (isalnum((unsigned char)url[n]) || url[n] == '+' || url[n] == '-' || url[n] == '.')
        n++;
    return n > 0 && strncmp(url + n, "://", 3) == 0 ? n : 0;
}

const sk_db_driver_t *sk_db_driver(const char *url, char *err, size_t err_size)
{
    if (strncmp(url, "mysql://", 8) == 0 || strncmp(url, "mariadb://", 10) == 0)
        return &sk_db_mysql;
    /* Any other scheme is a mistake; a string without one is a libpq key=value
     * connection string ("host=... dbname=..."), which libpq itself checks. */
    size_t n = scheme_len(url);
    if (n && !(strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)) {
        snprintf(err, err_size,
                 "the database URL must be postgresql://USER@HOST:PORT/DB or mysql://USER:PASSWORD@HOST:PORT/DB "
                 "(got %.*s://...)",
                 (int)(n > 16 ? 16 : n), url);
        return NULL;
    }
    return &sk_db_postgres;
}

bool sk_db_state_moves(const char *from, const char *to)
{
    if (strcmp(from, SK_DB_RESERVED) == 0)
        return strcmp(to, SK_DB_RESERVED) != 0;
    return strcmp(from, SK_DB_CONFIRMED) == 0 && strcmp(to, "refunded") == 0;
}
