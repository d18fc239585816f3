/* Durable storage behind the embedded ledger: a SQLite journal of sales and orders.
 * All calls come from the ledger thread only. A call that returns 0 has made its data
 * durable (WAL, synchronous=FULL: the commit's fsync has returned).
 *
 * Schema (also read directly by `seckill-bench --audit-sqlite`):
 *   sales(id TEXT PRIMARY KEY, name, stock, starts_at, ends_at, per_user_limit, created_at)
 *   order_batches(id, sale_id, first_seq, n, created_at, orders)  -- one row per sale per
 *       batch; `orders` is a JSON array of [user_id, request_id] for seqs first_seq...
 *   orders  -- a view, one row per order:
 *       (sale_id, seq, user_id, request_id, created_at, order_id) */
#ifndef SK_BACKEND_JOURNAL_H
#define SK_BACKEND_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sk_journal sk_journal_t;

typedef struct {
    const char *id;
    const char *name;
    int64_t stock, starts_at, ends_at, per_user_limit, created_at;
} sk_journal_sale_t;

typedef struct {
    const char *sale_id;
    uint64_t seq; /* per sale, from 1 */
    const char *user_id;
    const char *request_id; /* "" when the client sent none */
    int64_t created_at;
} sk_journal_order_t;

/** Opens (creating if needed) DIR/seckill.db. Returns NULL and one clear line in err. */
sk_journal_t *sk_journal_open(const char *dir, char *err, size_t err_size);
void sk_journal_close(sk_journal_t *j);

/** Replays the journal: every sale, then every order, each sale's in seq (= commit)
 *  order. A callback that returns non-zero stops the replay and that value is returned.
 *  Returns 0 or -EIO. */
int sk_journal_load(sk_journal_t *j, int (*on_sale)(void *arg, const sk_journal_sale_t *s),
                    int (*on_order)(void *arg, const sk_journal_order_t *o), void *arg);

/** Stores a sale durably. Returns 0, -EEXIST or -EIO. */
int sk_journal_put_sale(sk_journal_t *j, const sk_journal_sale_t *s);
/** Stores a batch of orders in one transaction. Each sale's orders in the batch must
 *  carry consecutive seqs, and its created_at is taken from its first order (the ledger
 *  gives every order of a batch the same time). Returns 0, or -EIO: then the outcome is
 *  not known for certain (a commit may fail after its data reached the disk), and
 *  sk_journal_last_seq tells what the journal holds. */
int sk_journal_put_orders(sk_journal_t *j, const sk_journal_order_t *orders, size_t n);

/** The highest seq stored for a sale (0: none) in *seq. Returns 0 or -EIO. */
int sk_journal_last_seq(sk_journal_t *j, const char *sale_id, uint64_t *seq);

/** Where a test may make the journal fail (sk_journal_set_fault). */
typedef enum {
    SK_JOURNAL_FAULT_COMMIT, /* the batch's COMMIT fails: nothing is stored, -EIO */
    SK_JOURNAL_FAULT_AFTER_COMMIT, /* the batch is committed and durable, yet -EIO is
                                      returned, as when a commit's outcome is lost */
    SK_JOURNAL_FAULT_LAST_SEQ, /* sk_journal_last_seq fails with -EIO */
} sk_journal_fault_t;

/** Test seam: before each of the points above the journal calls fn(arg, point), and a
 *  true return makes that point fail as described. NULL removes the hook. Set it on the
 *  ledger thread or before it starts; fn runs on the ledger thread. */
void sk_journal_set_fault(sk_journal_t *j, bool (*fn)(void *arg, sk_journal_fault_t at), void *arg);

#endif
