/* The drain's database: the system of record the cluster's orders are written to.
 *
 * One small interface, one implementation per database: postgres.c (PostgreSQL) and
 * mysql.c (MySQL and MariaDB); the SQL that differs between them is in sql_postgres.c
 * and sql_mysql.c (sql.h). The URL picks the implementation (sk_db_driver); no type of
 * a client library appears here.
 *
 * What every implementation promises:
 *  - put_batch writes the whole batch in one transaction, or nothing: its new orders,
 *    then its transitions, then its trail rows (sale_events). Written again (after an
 *    error whose outcome was unknown, or after a crash before the stream entries were
 *    acknowledged, or delivered again in any order), it changes nothing more: an order
 *    present is left as it is; a transition moves an order's state only forward
 *    (sk_db_state_moves) and sets paid_at, payment_id and closed_at only where they
 *    are still empty; a trail row present (sale_id, seq) is skipped. So transitions
 *    commute: any order of delivery ends in the same row.
 *    A transition whose order is not in the database (yet: with several drains, its
 *    order may be in another one's batch) changes nothing and is reported not found.
 *  - put_sale inserts a sale once and never overwrites it.
 *  - migrate applies the schema changes not yet applied, safely when several drains
 *    start at once; both databases hold the same tables (deploy/postgres/,
 *    deploy/mysql/, the same migrations under the same names).
 *  - every call ends within the timeout given to connect (migrate: within
 *    SK_DB_MIGRATE_TIMEOUT_MS for each statement, as an ALTER TABLE of a big table may
 *    take minutes): a database that stops answering is an error, not a hang.
 *  - after an error, ok() says whether the connection is still usable; when it is
 *    not, the caller closes it and connects again later.
 *
 * Errors: -EIO with one clear line in err (no password in it).
 * Ownership: an sk_db_t owns its connection; strings passed in are borrowed for the
 * call. Threads: an sk_db_t is used by one thread at a time. */
#ifndef SK_DRAIN_DB_H
#define SK_DRAIN_DB_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How long one statement of a schema migration may take. */
#define SK_DB_MIGRATE_TIMEOUT_MS 600000

typedef struct {
    const char *id, *name;
    int64_t stock, starts_at, ends_at, per_user_limit, created_at; /* times: unix ms */
} sk_db_sale_t;

/* Order states as the database spells them (the CHECK of migration 002). */
#define SK_DB_RESERVED "reserved"
#define SK_DB_CONFIRMED "confirmed"

typedef struct {
    const char *order_id, *sale_id, *user_id, *request_id;
    int64_t seq;
    int64_t created_at; /* unix ms */
    int64_t quantity; /* units, >= 1 */
    const char *state; /* SK_DB_RESERVED (with pay_by) or SK_DB_CONFIRMED */
    int64_t pay_by; /* unix ms; 0: none (final at once) */
} sk_db_order_t;

/** One order's transitions of a batch, merged (sk_drain_batch): the state it moves to
 *  and the fields they set (0 / "": not set by them). */
typedef struct {
    const char *sale_id;
    int64_t seq;
    const char *state; /* confirmed, cancelled, expired or refunded */
    int64_t paid_at, closed_at; /* unix ms, 0: not set */
    const char *payment_id; /* "": not set */
    bool found; /* out: the order is in the database */
} sk_db_transition_t;

/** One entry of a sale's trail (a control the operator made). */
typedef struct {
    const char *sale_id;
    int64_t seq; /* its number in the sale's trail */
    const char *kind, *actor, *request_id;
    int64_t decided_at; /* unix ms */
    const char *params, *before, *after; /* JSON text */
} sk_db_event_t;

typedef struct {
    const sk_db_order_t *orders;
    size_t n_orders;
    sk_db_transition_t *transitions; /* their `found` is filled in */
    size_t n_transitions;
    const sk_db_event_t *events;
    size_t n_events;
} sk_db_batch_t;

/** A sale in the database: its orders, and the units of its confirmed and of its
 *  reserved orders (-1: unknown). */
typedef struct {
    int64_t orders, sold, held;
} sk_db_counts_t;

/** Whether an order in state `from` takes state `to`: only forward — a reservation
 *  becomes confirmed, cancelled, expired or (paid and refunded in one batch, or its
 *  payment carried later) refunded; a confirmed order becomes refunded. The SQL of
 *  sql_postgres.c and sql_mysql.c says the same. */
bool sk_db_state_moves(const char *from, const char *to);

typedef struct sk_db sk_db_t;

/** One implementation. */
typedef struct {
    const char *name; /* short, for metrics labels and logs: "postgres", "mysql" */
    const char *title; /* for people: "PostgreSQL", "MySQL/MariaDB" */
    /** Connects; NULL with err filled when it cannot. */
    sk_db_t *(*connect)(const char *url, int timeout_ms, char *err, size_t err_size);
    void (*close)(sk_db_t *db);
    /** Returns the number of migrations applied (0: none was missing) or -EIO. */
    int (*migrate)(sk_db_t *db, char *err, size_t err_size);
    /** Returns 0 or -EIO. */
    int (*put_sale)(sk_db_t *db, const sk_db_sale_t *s, char *err, size_t err_size);
    /** Returns the number of orders inserted (orders already present are not counted)
     *  or -EIO (nothing of the batch committed, or an unknown outcome). */
    int64_t (*put_batch)(sk_db_t *db, sk_db_batch_t *b, char *err, size_t err_size);
    bool (*ok)(const sk_db_t *db);
    /** A sale's counts in the database: 0 or -EIO. Optional (NULL: the drain reports
     *  no reconciliation for this database). */
    int (*count)(sk_db_t *db, const char *sale_id, sk_db_counts_t *out, char *err, size_t err_size);
} sk_db_driver_t;

/** Every sk_db_t starts with this header (the implementation's struct embeds it first). */
struct sk_db {
    const sk_db_driver_t *driver;
};

extern const sk_db_driver_t sk_db_postgres;
extern const sk_db_driver_t sk_db_mysql;

/** The implementation for a database URL: postgres://, postgresql:// or a libpq
 *  "key=value" string is PostgreSQL; mysql:// or mariadb:// is MySQL/MariaDB. Returns
 *  NULL with err filled for a URL no implementation takes. */
const sk_db_driver_t *sk_db_driver(const char *url, char *err, size_t err_size);

static inline sk_db_t *sk_db_connect(const sk_db_driver_t *driver, const char *url, int timeout_ms, char *err,
                                     size_t err_size)
{
    return driver->connect(url, timeout_ms, err, err_size);
}

/** Closes and frees; NULL is ignored. */
static inline void sk_db_close(sk_db_t *db)
{
    if (db)
        db->driver->close(db);
}

static inline int sk_db_migrate(sk_db_t *db, char *err, size_t err_size)
{
    return db->driver->migrate(db, err, err_size);
}

static inline int sk_db_put_sale(sk_db_t *db, const sk_db_sale_t *s, char *err, size_t err_size)
{
    return db->driver->put_sale(db, s, err, err_size);
}

static inline int64_t sk_db_put_batch(sk_db_t *db, sk_db_batch_t *b, char *err, size_t err_size)
{
    return db->driver->put_batch(db, b, err, err_size);
}

/** A sale's counts in the database: 0, -EIO, or -ENOSYS when the implementation cannot
 *  count. */
static inline int sk_db_count(sk_db_t *db, const char *sale_id, sk_db_counts_t *out, char *err, size_t err_size)
{
    return db->driver->count ? db->driver->count(db, sale_id, out, err, err_size) : -ENOSYS;
}

/** True while the connection is usable; false for NULL or after a failure. */
static inline bool sk_db_ok(const sk_db_t *db)
{
    return db && db->driver->ok(db);
}

#endif
