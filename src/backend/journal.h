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
 *  gives every order of a batch the same time). Returns 0, or -EIO (nothing stored). */
int sk_journal_put_orders(sk_journal_t *j, const sk_journal_order_t *orders, size_t n);

#endif
