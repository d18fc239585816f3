/* src/drain/mysql.c, its pure parts: the URL, splitting a migration into statements,
 * the errors that say a migration statement was applied already. */
#include <errno.h>
#include <mysqld_error.h>

#include "drain/mysql.h"
#include "test.h"
#include "util/texts.h"

static void parse_ok(const char *url, sk_db_mysql_url_t *u)
{
    char err[256] = "";
    if (sk_db_mysql_parse_url(url, u, err, sizeof(err)) != 0)
        SK_FAIL_AT("%s: %s", url, err);
}

/* The URL is refused, with a message holding `want` and never the password "s3cret". */
static void parse_bad(const char *url, const char *want)
{
    sk_db_mysql_url_t u;
    char err[256] = "";
    ASSERT_EQ(sk_db_mysql_parse_url(url, &u, err, sizeof(err)), -EINVAL);
    if (!strstr(err, want))
        SK_FAIL_AT("%s: \"%s\" lacks \"%s\"", url, err, want);
    ASSERT_TRUE(strstr(err, "s3cret") == NULL);
}

SK_TEST(url_full)
{
    sk_db_mysql_url_t u;
    parse_ok("mysql://seckill:pw@db.example:3307/orders", &u);
    ASSERT_STR_EQ(u.host, "db.example");
    ASSERT_EQ(u.port, 3307);
    ASSERT_STR_EQ(u.user, "seckill");
    ASSERT_TRUE(u.has_password);
    ASSERT_STR_EQ(u.password, "pw");
    ASSERT_STR_EQ(u.database, "orders");
    ASSERT_STR_EQ(u.socket, "");

    parse_ok("mariadb://root@127.0.0.1/seckill", &u);
    ASSERT_STR_EQ(u.host, "127.0.0.1");
    ASSERT_EQ(u.port, 3306);
    ASSERT_STR_EQ(u.user, "root");
    ASSERT_TRUE(!u.has_password);
    ASSERT_STR_EQ(u.database, "seckill");

    /* An empty password is a password (not the client's default). */
    parse_ok("mysql://u:@h/d", &u);
    ASSERT_TRUE(u.has_password);
    ASSERT_STR_EQ(u.password, "");
}

SK_TEST(url_escapes_and_forms)
{
    sk_db_mysql_url_t u;
    /* Percent-escapes in the user, the password and the database; an '@' left in the
     * password still parses (the last '@' ends the user part). */
    parse_ok("mysql://us%40r:p%3Aw%2Fd%23x@h/my%2Ddb", &u);
    ASSERT_STR_EQ(u.user, "us@r");
    ASSERT_STR_EQ(u.password, "p:w/d#x");
    ASSERT_STR_EQ(u.database, "my-db");
    parse_ok("mysql://u:a@b@h:1/d", &u);
    ASSERT_STR_EQ(u.password, "a@b");
    ASSERT_STR_EQ(u.host, "h");
    ASSERT_EQ(u.port, 1);

    parse_ok("mysql://u@[::1]:3308/d", &u);
    ASSERT_STR_EQ(u.host, "::1");
    ASSERT_EQ(u.port, 3308);
    parse_ok("mysql://[fe80::1]/d", &u);
    ASSERT_STR_EQ(u.host, "fe80::1");
    ASSERT_EQ(u.port, 3306);
    ASSERT_STR_EQ(u.user, "");

    /* No host: the Unix socket, the default one or the one named. */
    parse_ok("mysql:///seckill", &u);
    ASSERT_STR_EQ(u.host, "");
    ASSERT_STR_EQ(u.database, "seckill");
    parse_ok("mysql://seckill:pw@localhost/seckill?socket=%2Ftmp%2Fmy%20sql.sock", &u);
    ASSERT_STR_EQ(u.host, "localhost");
    ASSERT_STR_EQ(u.socket, "/tmp/my sql.sock");
}

SK_TEST(url_refused)
{
    parse_bad("postgresql://h/d", "mysql://");
    parse_bad("mysql://u:s3cret@h:0/d", "port");
    parse_bad("mysql://u:s3cret@h:65536/d", "port");
    parse_bad("mysql://u:s3cret@h:33x/d", "port");
    parse_bad("mysql://u:s3cret@h:/d", "port");
    parse_bad("mysql://u:s3cret@h:3306", "no database");
    parse_bad("mysql://u:s3cret@h:3306/", "no database");
    parse_bad("mysql://u:s3cret@h/d?sslmode=on", "socket=PATH");
    parse_bad("mysql://u:s3cret@h/d?socket=", "socket");
    parse_bad("mysql://u:s3c%zzret@h/d", "password");
    parse_bad("mysql://u:s3cret%00@h/d", "password");
    parse_bad("mysql://u:s3c#ret@h/d", "%23");
    parse_bad("mysql://u:s3cret@[::1/d", "']'");
    parse_bad("mysql://u:s3cret@[::1]x/d", ":PORT");
    char long_host[400];
    memset(long_host, 'h', sizeof(long_host));
    memcpy(long_host, "mysql://", 8);
    strcpy(long_host + sizeof(long_host) - 4, "/d");
    parse_bad(long_host, "host");
}

/* Splits text and compares the statements with want (NULL-terminated). */
static void assert_split(const char *text, const char *const *want)
{
    size_t pos = 0, len, i = 0;
    const char *s;
    while ((s = sk_db_mysql_next_statement(text, strlen(text), &pos, &len)) != NULL) {
        if (!want[i])
            SK_FAIL_AT("an extra statement \"%.*s\"", (int)len, s);
        ASSERT_MEM_STR(s, len, want[i]);
        i++;
    }
    if (want[i])
        SK_FAIL_AT("statement \"%s\" missing", want[i]);
    ASSERT_EQ(pos, strlen(text));
}

SK_TEST(split_statements)
{
    const char *none[] = {NULL};
    assert_split("", none);
    assert_split("  \n-- only a comment; with a semicolon\n# another;\n/* and ; a block */ ;\n", none);

    const char *two[] = {"CREATE TABLE a (x INT)", "ALTER TABLE a ADD COLUMN y INT -- the y; column\n    DEFAULT 1",
                         NULL};
    assert_split("-- head; comment\nCREATE TABLE a (x INT);\n\nALTER TABLE a ADD COLUMN y INT -- the y; column\n"
                 "    DEFAULT 1;\n-- tail\n",
                 two);

    /* Semicolons in quotes, escaped and doubled quotes, backticks, block comments. */
    const char *quoted[] = {"INSERT INTO t VALUES ('a;b', 'it''s;', 'c\\';d', \"e;\\\"f\")",
                            "SELECT `we;ird` /* x; y */ FROM t", "SELECT 1--1", NULL};
    assert_split("INSERT INTO t VALUES ('a;b', 'it''s;', 'c\\';d', \"e;\\\"f\");"
                 "SELECT `we;ird` /* x; y */ FROM t;SELECT 1--1",
                 quoted);

    /* The last statement needs no ';'; an unclosed quote runs to the end. */
    const char *unclosed[] = {"SELECT 'a;b", NULL};
    assert_split("SELECT 'a;b", unclosed);
}

SK_TEST(shipped_migrations_split)
{
    /* The files of deploy/mysql/: 001 creates two tables, 002 alters two and creates
     * one; no statement is cut inside another. */
    const sk_text_t *t1 = sk_text_find("mysql/001_init.sql"), *t2 = sk_text_find("mysql/002_lifecycle.sql");
    ASSERT_TRUE(t1 && t2);
    const char *want1[] = {"CREATE TABLE IF NOT EXISTS sales", "CREATE TABLE IF NOT EXISTS orders", NULL};
    const char *want2[] = {"ALTER TABLE orders", "ALTER TABLE sales", "CREATE TABLE IF NOT EXISTS sale_events", NULL};
    const sk_text_t *ts[] = {t1, t2};
    const char *const *wants[] = {want1, want2};
    for (int k = 0; k < 2; k++) {
        size_t pos = 0, len, i = 0;
        const char *s;
        while ((s = sk_db_mysql_next_statement(ts[k]->text, ts[k]->len, &pos, &len)) != NULL) {
            ASSERT_TRUE(wants[k][i] != NULL);
            ASSERT_TRUE(len > strlen(wants[k][i]) && memcmp(s, wants[k][i], strlen(wants[k][i])) == 0);
            int depth = 0; /* cut inside nothing: the parentheses balance */
            for (size_t j = 0; j < len; j++)
                depth += s[j] == '(' ? 1 : s[j] == ')' ? -1 : 0;
            ASSERT_EQ(depth, 0);
            ASSERT_TRUE(s[len - 1] != ';');
            i++;
        }
        ASSERT_TRUE(wants[k][i] == NULL);
    }
}

SK_TEST(already_applied)
{
    ASSERT_TRUE(sk_db_mysql_already_applied(ER_TABLE_EXISTS_ERROR));
    ASSERT_TRUE(sk_db_mysql_already_applied(ER_DUP_FIELDNAME));
    ASSERT_TRUE(sk_db_mysql_already_applied(ER_DUP_KEYNAME));
    ASSERT_TRUE(!sk_db_mysql_already_applied(ER_PARSE_ERROR));
    ASSERT_TRUE(!sk_db_mysql_already_applied(ER_NO_SUCH_TABLE));
    ASSERT_TRUE(!sk_db_mysql_already_applied(0));
}

SK_TEST_MAIN(SK_RUN(url_full); SK_RUN(url_escapes_and_forms); SK_RUN(url_refused); SK_RUN(split_statements);
             SK_RUN(shipped_migrations_split); SK_RUN(already_applied);)
