/* MySQL and MariaDB (MariaDB Connector/C, which speaks to both): what the drain's
 * implementation of db.h (mysql.c) shares with the auditor (src/audit/): the URL, a
 * connection set up for seckill's tables, and the pure pieces of the migrations.
 *
 * URL: mysql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?socket=PATH] (mariadb:// too);
 * user, password, database and socket are percent-decoded; an IPv6 host goes in
 * brackets; the port defaults to 3306; HOST "localhost" (or none) means the Unix
 * socket, as with the mysql client.
 *
 * Errors: -EINVAL or NULL with one clear line in err, never with the password in it.
 * Threads: a connection is used by one thread at a time. */
#ifndef SK_DRAIN_MYSQL_H
#define SK_DRAIN_MYSQL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char host[256]; /* "" when the URL has none (localhost) */
    int port;
    char user[129]; /* "": the client library's default (the login name) */
    char password[257];
    bool has_password;
    char database[129];
    char socket[256]; /* "" unless ?socket= */
} sk_db_mysql_url_t;

/** Parses a mysql:// or mariadb:// URL. Returns 0 or -EINVAL with err filled. */
int sk_db_mysql_parse_url(const char *url, sk_db_mysql_url_t *u, char *err, size_t err_size);

struct st_mysql; /* Connector/C's MYSQL */

/** Connects and sets the session up: utf8mb4, UTC (time_zone '+00:00'), strict SQL
 *  mode, lock waits shorter than timeout_ms, and client-side read and write timeouts of
 *  timeout_ms (whole seconds, at least one; the connect's at most 10 s), so that a
 *  server that stops answering is an error, not a hang. `program` names the connection in
 *  the server's process list. Returns the connection (mysql_close frees it) or NULL
 *  with err filled and, when errno_out is not NULL, the error's number there. */
struct st_mysql *sk_db_mysql_open(const sk_db_mysql_url_t *u, int timeout_ms, const char *program, char *err,
                                  size_t err_size, unsigned int *errno_out);

/** The next statement of a migration file: skips blanks and comments (-- , #, and
 *  block comments) before it, ends at a ';' outside quotes and comments (or at the end
 *  of the text). Returns its start (its length in *len, the ';' and trailing blanks
 *  left out) and moves *pos past it; NULL when only blanks and comments are left. */
const char *sk_db_mysql_next_statement(const char *text, size_t text_len, size_t *pos, size_t *len);

/** Whether a migration statement's error says that what it creates is there already
 *  (a table, a column, an index): MySQL commits each DDL statement on its own, so a
 *  migration that stopped half-way is applied again from its first statement. */
bool sk_db_mysql_already_applied(unsigned int mysql_errno);

#endif
