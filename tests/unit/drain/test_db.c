/* src/drain/db.c: the database implementation a URL picks. */
#include "drain/db.h"
#include "test.h"

SK_TEST(driver_by_url)
{
    char err[256];
    ASSERT_TRUE(sk_db_driver("postgresql://seckill@127.0.0.1:5432/seckill", err, sizeof(err)) == &sk_db_postgres);
    ASSERT_TRUE(sk_db_driver("postgres://h/db", err, sizeof(err)) == &sk_db_postgres);
    /* A libpq key=value string, even with "://" inside a value. */
    ASSERT_TRUE(sk_db_driver("host=127.0.0.1 dbname=seckill", err, sizeof(err)) == &sk_db_postgres);
    ASSERT_TRUE(sk_db_driver("host=h password=a://b", err, sizeof(err)) == &sk_db_postgres);
    ASSERT_STR_EQ(sk_db_postgres.name, "postgres");

    ASSERT_TRUE(sk_db_driver("mysql://root@127.0.0.1/seckill", err, sizeof(err)) == &sk_db_mysql);
    ASSERT_TRUE(sk_db_driver("mariadb://u:p@h:3306/seckill", err, sizeof(err)) == &sk_db_mysql);
    ASSERT_STR_EQ(sk_db_mysql.name, "mysql");

    err[0] = '\0';
    ASSERT_TRUE(sk_db_driver("redis://127.0.0.1:6379", err, sizeof(err)) == NULL);
    ASSERT_TRUE(strstr(err, "redis://") != NULL);
    ASSERT_TRUE(strstr(err, "postgresql://") != NULL);
    ASSERT_TRUE(strstr(err, "mysql://") != NULL);
}

SK_TEST(ok_of_nothing)
{
    ASSERT_TRUE(!sk_db_ok(NULL));
    sk_db_close(NULL);
}

SK_TEST_MAIN(SK_RUN(driver_by_url); SK_RUN(ok_of_nothing);)
