/* The embedded ledger (src/backend/embedded.c) through the engine: commits whose
 * outcome is in doubt (faults injected around the journal's COMMIT), a user with a
 * hundred thousand orders, and the order lifecycle: every transition, expiry by the
 * deadline heap (a fake clock), the ledger waking for deadlines, replay, transitions in
 * doubt, the workers' gate while reservations are pending, and batches waiting for
 * their sync (a failed sync with the ring of them full, a stop while they wait, a new
 * sale the workers see only once its create is durable). */
#define _XOPEN_SOURCE 700
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "audit/trail.h"
#include "engine_runner.h"
#include "test.h"

/* Which journal points fail, set by the test between waits, read on the ledger thread. */
static _Atomic bool fail_commit, fail_after_commit, fail_last_seq, fail_sync, fail_sale, fail_sale_after;
/* How many syncs may start: -1 any; n >= 0 lets n more start, and the next waits. */
static _Atomic int sync_budget = -1;
/* How many syncs and sales' writes were begun (the fault points reached). */
static _Atomic int syncs_begun, sale_writes;
/* How many batches' commits were begun. */
static _Atomic int commits_begun;

static bool fault(void *arg, sk_journal_fault_t at)
{
    (void)arg;
    switch (at) {
    case SK_JOURNAL_FAULT_COMMIT:
        atomic_fetch_add(&commits_begun, 1);
        return atomic_load(&fail_commit);
    case SK_JOURNAL_FAULT_AFTER_COMMIT:
        return atomic_load(&fail_after_commit);
    case SK_JOURNAL_FAULT_LAST_SEQ:
        return atomic_load(&fail_last_seq);
    case SK_JOURNAL_FAULT_SALE_COMMIT:
        atomic_fetch_add(&sale_writes, 1);
        return atomic_load(&fail_sale);
    case SK_JOURNAL_FAULT_SALE_AFTER_COMMIT:
        return atomic_load(&fail_sale_after);
    case SK_JOURNAL_FAULT_SYNC: /* on the syncer's thread */
        atomic_fetch_add(&syncs_begun, 1);
        for (;;) {
            int b = atomic_load(&sync_budget);
            if (b < 0 || (b > 0 && atomic_compare_exchange_weak(&sync_budget, &b, b - 1)))
                break;
            usleep(1000);
        }
        return atomic_load(&fail_sync);
    }
    return false;
}

static void install_fault(sk_backend_t *b, void *arg)
{
    (void)arg;
    sk_backend_embedded_set_fault(b, fault, NULL);
}

static void faults(bool commit, bool after_commit, bool last_seq)
{
    atomic_store(&fail_commit, commit);
    atomic_store(&fail_after_commit, after_commit);
    atomic_store(&fail_last_seq, last_seq);
}

/* A fixture whose journal fails where the test says later; nothing fails to begin with. */
static void no_faults(void)
{
    faults(false, false, false);
    atomic_store(&fail_sync, false);
    atomic_store(&fail_sale, false);
    atomic_store(&fail_sale_after, false);
    atomic_store(&sync_budget, -1);
}

static bool open_faulty_batch(fixture_t *f, size_t max_batch)
{
    no_faults();
    *f = (fixture_t){.max_batch = max_batch};
    return fixture_open_with(f, NULL, 0, install_fault, NULL);
}

static bool open_faulty(fixture_t *f)
{
    return open_faulty_batch(f, 0);
}

/* open_faulty_batch, then a live sale of that id and stock (one unit a buyer); NULL if
 * either failed. */
static sk_sale_t *open_faulty_sale(fixture_t *f, size_t max_batch, const char *id, int64_t stock)
{
    return open_faulty_batch(f, max_batch) ? live_sale(&f->r, id, stock, 1) : NULL;
}

static answer_t orders_of(runner_t *r, sk_sale_t *s, const char *user)
{
    sk_op_t *op = sk_op_new(SK_OP_ORDERS);
    op->sale = s;
    op->user_len = (uint8_t)strlen(user);
    memcpy(op->user_id, user, op->user_len + 1u);
    answer_t a;
    submit(r, op, &a);
    runner_wait(r);
    return a;
}

SK_TEST(test_commit_failed_after_reaching_the_disk)
{
    /* The batch is committed, yet the journal reports failure. The ledger must not hand
     * out its seqs again (every later batch of the sale would fail on the journal's
     * unique key): the journal holds them, so its orders stand. */
    fixture_t f;
    ASSERT_TRUE(open_faulty(&f));
    sk_sale_t *s = live_sale(&f.r, "doubt", 4, 1);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_CONFIRMED);

    faults(false, true, false);
    answer_t b[3];
    buy(&f.r, s, "b", "r-b", &b[0]);
    buy(&f.r, s, "c", "r-c", &b[1]);
    buy(&f.r, s, "a", "r-a", &b[2]);
    ASSERT_TRUE(runner_wait(&f.r));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(b[i].result, SK_BUY_UNAVAILABLE); /* nothing confirmed (I6) */
    ASSERT_GE(sk_counter_get(&sk_engine_stats(f.e)->commit_errors), 1);

    faults(false, false, false);
    /* The buyers who heard 503 retry and get their orders; the next buyer gets seq 4. */
    answer_t a = buy1(&f.r, s, "b", "r-b");
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, 2);
    a = buy1(&f.r, s, "d", "r-d");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 4);
    ASSERT_EQ(sk_sale_sold(s), 4);
    ASSERT_TRUE(sk_sale_is_sold_out(s));
    a = buy1(&f.r, s, "c", "r-c");
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, 3);
    fixture_close(&f);

    /* The journal agrees after a restart. */
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "doubt", 5);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(sk_sale_sold(s), 4);
    a = buy1(&f.r, s, "c", "r-c");
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, 3);
    fixture_destroy(&f);
}

/* A sale of `stock` where buyer "a" is confirmed and buyer "b"'s batch then meets a
 * failed fdatasync (answered 503); later syncs would succeed. */
static sk_sale_t *after_a_failed_sync(fixture_t *f, const char *name, int64_t stock)
{
    ASSERT_TRUE(open_faulty(f));
    sk_sale_t *s = live_sale(&f->r, name, stock, 1);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy1(&f->r, s, "a", "r-a").result, SK_BUY_CONFIRMED);
    atomic_store(&fail_sync, true);
    ASSERT_EQ(buy1(&f->r, s, "b", "r-b").result, SK_BUY_UNAVAILABLE);
    atomic_store(&fail_sync, false);
    return s;
}

SK_TEST(test_sync_failed)
{
    /* The WAL's fdatasync fails: nothing written before it may be called durable, so
     * the buyer whose batch it was hears 503, and so does every later one (after a
     * failed fsync the kernel may have dropped the pages) until a restart. The orders
     * are in the WAL all the same: a retry after the restart finds them (I6). */
    fixture_t f;
    sk_sale_t *s = after_a_failed_sync(&f, "unsynced", 10);
    ASSERT_EQ(buy1(&f.r, s, "c", "r-c").result, SK_BUY_UNAVAILABLE);
    ASSERT_GE(sk_counter_get(&sk_engine_stats(f.e)->commit_errors), 2);
    /* The workers answer an id they do not know 503, not 404: it may be in the WAL. */
    ASSERT_TRUE(sk_engine_store_unsure(f.e));
    fixture_close(&f);

    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    ASSERT_TRUE(!sk_engine_store_unsure(f.e));
    s = sk_engine_find_sale(f.e, "unsynced", 8);
    ASSERT_TRUE(s != NULL);
    answer_t a = buy1(&f.r, s, "b", "r-b");
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, 2);
    a = buy1(&f.r, s, "d", "r-d");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 4);
    fixture_destroy(&f);
}

/* Runs the worker's loop for ms (the ledger gets what was submitted), answers or not. */
static void run_for(runner_t *r, int ms)
{
    if (r->pending == 0)
        return;
    sk_timer_start(r->loop, &r->guard, (uint64_t)ms, on_guard);
    sk_loop_run(r->loop);
    sk_timer_stop(r->loop, &r->guard);
    r->timed_out = false;
}

/* Holds every sync from now on, then buys as user (request_id req) and runs the worker
 * until that purchase's sync has begun and waits inside. */
static bool buy_with_sync_held(fixture_t *f, sk_sale_t *s, const char *user, const char *req, answer_t *a)
{
    atomic_store(&sync_budget, 0);
    int begun = atomic_load(&syncs_begun);
    buy(&f->r, s, user, req, a);
    for (int i = 0; i < 200 && atomic_load(&syncs_begun) == begun; i++)
        run_for(&f->r, 10);
    return atomic_load(&syncs_begun) > begun;
}

SK_TEST(test_sync_failed_shows_nothing)
{
    /* After a failed fdatasync nothing of the batches it covered may be shown either:
     * not the order of the buyer who heard 503 (told to look it up, it would find an
     * order that may not exist), not its unit in the counts the workers answer from. */
    fixture_t f;
    sk_sale_t *s = after_a_failed_sync(&f, "shown", 2);
    answer_t o = orders_of(&f.r, s, "b");
    ASSERT_EQ(o.status, -EIO);
    free(o.orders);
    ASSERT_EQ(sk_sale_sold(s), 1);
    ASSERT_TRUE(!sk_sale_is_sold_out(s));
    ASSERT_EQ(buy1(&f.r, s, "b", "r-b").result, SK_BUY_UNAVAILABLE);
    fixture_destroy(&f);
}

/* What a worker sees of sale `id`: found by id (sk_engine_find_sale), and listed (the
 * walk of GET /api/v1/sales, /metrics, the event streams: sk_engine_sale_at). Both or
 * neither; fails the test when they disagree. */
static bool workers_see(sk_engine_t *e, const char *id)
{
    size_t len = strlen(id);
    bool found = sk_engine_find_sale(e, id, len) != NULL, listed = false;
    for (size_t i = 0; i < sk_engine_sale_count(e); i++) {
        const sk_sale_t *s = sk_engine_sale_at(e, i);
        if (s && s->id_len == len && memcmp(s->id, id, len) == 0)
            listed = true;
    }
    ASSERT_EQ(found, listed);
    return found;
}

SK_TEST(test_sale_shown_once_durable)
{
    /* A sale made while its write waits for the sync is the ledger's at once (a second
     * create of the id is "exists"), but the workers neither list it nor find it by id
     * until its 201: before, it may not survive a restart. Batches of one op, each full,
     * so that the second create is decided while the first one's sync is held. */
    fixture_t f;
    ASSERT_TRUE(open_faulty_batch(&f, 1));
    ASSERT_TRUE(live_sale(&f.r, "before", 5, 1) != NULL);
    ASSERT_TRUE(workers_see(f.e, "before"));
    atomic_store(&sync_budget, 0);
    int64_t now = sk_now_ms();
    answer_t made, again;
    sk_op_t *op = sk_op_new(SK_OP_CREATE_SALE);
    op->new_sale = new_sale("held", 10, now - 1000, now + HOUR_MS, 1);
    submit(&f.r, op, &made);
    for (int i = 0; i < 100 && sk_engine_sale_count(f.e) < 2; i++)
        run_for(&f.r, 10);
    ASSERT_EQ(sk_engine_sale_count(f.e), 2); /* registered: the ledger decided it */
    op = sk_op_new(SK_OP_CREATE_SALE);
    op->new_sale = new_sale("held", 10, now - 1000, now + HOUR_MS, 1);
    submit(&f.r, op, &again);
    run_for(&f.r, 100);
    ASSERT_TRUE(!made.done && !again.done);
    ASSERT_TRUE(!workers_see(f.e, "held"));
    ASSERT_TRUE(workers_see(f.e, "before"));
    atomic_store(&sync_budget, -1);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(made.status, 0);
    ASSERT_EQ(again.status, -EEXIST);
    ASSERT_TRUE(workers_see(f.e, "held"));
    ASSERT_TRUE(sk_engine_find_sale(f.e, "held", 4) == made.sale);
    ASSERT_EQ(buy1(&f.r, made.sale, "a", "r-a").result, SK_BUY_CONFIRMED);
    fixture_destroy(&f);
}

/* A worker's walk over the sales, on a thread of its own while the ledger makes sales:
 * every sale it lists is found by id too, whole (its stock, its name); a sale found by
 * id is listed. Counts the sales it saw, until told to stop. */
typedef struct {
    sk_engine_t *e;
    _Atomic bool stop;
    int max_seen, mismatches;
} walker_t;

static void *walk_sales(void *arg)
{
    walker_t *w = arg;
    for (int round = 0; round < 1000000 && !atomic_load(&w->stop); round++) {
        int seen = 0;
        size_t n = sk_engine_sale_count(w->e);
        for (size_t i = 0; i < n; i++) {
            sk_sale_t *s = sk_engine_sale_at(w->e, i);
            if (!s)
                continue;
            seen++;
            sk_sale_counts_t c;
            sk_sale_counts(s, &c);
            if (sk_engine_find_sale(w->e, s->id, s->id_len) != s || c.stock != 7 ||
                strcmp(sk_sale_params(s)->name, s->id) != 0)
                w->mismatches++;
        }
        char id[16];
        snprintf(id, sizeof(id), "walk%d", round % 40);
        sk_sale_t *s = sk_engine_find_sale(w->e, id, strlen(id));
        if (s && sk_engine_sale_at(w->e, s->index) != s)
            w->mismatches++;
        if (seen > w->max_seen)
            w->max_seen = seen;
    }
    return NULL;
}

SK_TEST(test_sales_seen_whole_by_other_threads)
{
    /* Sales made while another thread walks the table as a worker does (a race here is
     * for ThreadSanitizer to see): each is found the moment its 201 is heard, and what
     * the walker sees of any sale is the whole sale. */
    fixture_t f;
    ASSERT_TRUE(open_faulty(&f));
    walker_t w = {.e = f.e};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, walk_sales, &w), 0);
    int64_t now = sk_now_ms();
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof(id), "walk%d", i);
        sk_sale_t *s = NULL;
        ASSERT_EQ(create_sale(&f.r, new_sale(id, 7, now - 1000, now + HOUR_MS, 1), &s), 0);
        ASSERT_TRUE(sk_engine_find_sale(f.e, id, strlen(id)) == s);
    }
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    ASSERT_EQ(w.mismatches, 0);
    ASSERT_TRUE(w.max_seen <= 40);
    fixture_destroy(&f);
}

SK_TEST(test_sale_created_once_durable)
{
    /* A sale made while the ledger runs is a commit like any: its 201 waits for the
     * sync, and a failed sync answers 503. */
    fixture_t f;
    ASSERT_TRUE(open_faulty(&f));
    atomic_store(&fail_sync, true);
    int64_t now = sk_now_ms();
    ASSERT_EQ(create_sale(&f.r, new_sale("unsynced-sale", 10, now - 1000, now + HOUR_MS, 1), NULL), -EIO);
    atomic_store(&fail_sync, false);
    /* The ledger made it, the workers never see it: it was answered 503. */
    ASSERT_EQ(sk_engine_sale_count(f.e), 1);
    ASSERT_TRUE(!workers_see(f.e, "unsynced-sale"));
    /* The operator retries the create it heard 503 for. The sale is in the ledger's
     * memory, but not known to be on the disk: "it exists" (409) would tell the
     * operator the first create took, and after a restart it may not have. Every
     * answer after a failed sync is 503, refusals too. */
    ASSERT_EQ(create_sale(&f.r, new_sale("unsynced-sale", 10, now - 1000, now + HOUR_MS, 1), NULL), -EIO);
    /* Nor later: every later sync would succeed, but nothing after a failed one is
     * durable. */
    ASSERT_EQ(create_sale(&f.r, new_sale("later-sale", 10, now - 1000, now + HOUR_MS, 1), NULL), -EIO);
    run_for(&f.r, 50);
    ASSERT_TRUE(!workers_see(f.e, "unsynced-sale"));
    ASSERT_TRUE(!workers_see(f.e, "later-sale"));
    fixture_destroy(&f);
}

SK_TEST(test_sale_write_reported_failed)
{
    /* A create whose write reports failure: the file decides. Stored, the sale stands
     * (201, the workers see it, it sells, it is there after a restart); not stored, 503
     * and the id stays free; the file cannot be asked, 503 and every later answer too
     * (whatever a retry heard would be a guess) until a restart reads the file. */
    fixture_t f;
    ASSERT_TRUE(open_faulty(&f));
    int64_t now = sk_now_ms();
    sk_sale_t *s = NULL;
    atomic_store(&fail_sale, true);
    ASSERT_EQ(create_sale(&f.r, new_sale("not-stored", 5, now - 1000, now + HOUR_MS, 1), NULL), -EIO);
    atomic_store(&fail_sale, false);
    ASSERT_TRUE(!workers_see(f.e, "not-stored"));
    ASSERT_EQ(create_sale(&f.r, new_sale("not-stored", 5, now - 1000, now + HOUR_MS, 1), &s), 0);
    ASSERT_TRUE(workers_see(f.e, "not-stored"));

    atomic_store(&fail_sale_after, true);
    ASSERT_EQ(create_sale(&f.r, new_sale("stored", 5, now - 1000, now + HOUR_MS, 1), &s), 0);
    atomic_store(&fail_sale_after, false);
    ASSERT_TRUE(workers_see(f.e, "stored"));
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_CONFIRMED);

    ASSERT_TRUE(!sk_engine_store_unsure(f.e)); /* every outcome so far was known */
    atomic_store(&fail_sale_after, true);
    atomic_store(&fail_last_seq, true);
    ASSERT_EQ(create_sale(&f.r, new_sale("in-doubt", 5, now - 1000, now + HOUR_MS, 1), NULL), -EIO);
    atomic_store(&fail_sale_after, false);
    atomic_store(&fail_last_seq, false);
    ASSERT_TRUE(!workers_see(f.e, "in-doubt"));
    ASSERT_TRUE(sk_engine_store_unsure(f.e)); /* "in-doubt" is answered 503, not 404 */
    ASSERT_EQ(create_sale(&f.r, new_sale("in-doubt", 5, now - 1000, now + HOUR_MS, 1), NULL), -EIO);
    ASSERT_EQ(create_sale(&f.r, new_sale("later", 5, now - 1000, now + HOUR_MS, 1), NULL), -EIO);
    ASSERT_EQ(buy1(&f.r, s, "b", "r-b").result, SK_BUY_UNAVAILABLE);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_UNAVAILABLE); /* even a replay */
    fixture_close(&f);

    /* The file is the truth: both stored sales, the sale whose write was in doubt (it
     * was stored), and a's order. ("later" heard 503: it may be there or not.) */
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    ASSERT_TRUE(workers_see(f.e, "not-stored") && workers_see(f.e, "stored") && workers_see(f.e, "in-doubt"));
    s = sk_engine_find_sale(f.e, "stored", 6);
    /* b heard 503, which says "not known": its order was written all the same, and b
     * finds it by asking (I6). a asking again hears of its one order. */
    ASSERT_EQ(sk_sale_sold(s), 2);
    answer_t o = orders_of(&f.r, s, "b");
    ASSERT_EQ(o.n_orders, 1);
    free(o.orders);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_DUPLICATE);
    ASSERT_EQ(sk_sale_sold(s), 2);
    fixture_destroy(&f);
}

SK_TEST(test_sale_in_doubt_while_a_sync_runs)
{
    /* A sale's write is in doubt while the sync of an earlier batch runs, begun before:
     * that batch's write is durable all the same and its buyer hears 201. The create,
     * and everything after it (reads too), hears 503. The write stored nothing: after
     * a restart the id is free and the order is there. Batches of one op: each is full,
     * so it is written while the sync before it runs (a flood's shape; a smaller batch
     * waits for that sync first). */
    fixture_t f;
    sk_sale_t *s = open_faulty_sale(&f, 1, "running", 5);
    ASSERT_TRUE(s != NULL);
    int writes = atomic_load(&sale_writes);
    answer_t b, made;
    ASSERT_TRUE(buy_with_sync_held(&f, s, "b", "r-b", &b)); /* b's sync waits inside */
    atomic_store(&fail_sale, true);
    atomic_store(&fail_last_seq, true);
    int64_t now = sk_now_ms();
    sk_op_t *op = sk_op_new(SK_OP_CREATE_SALE);
    op->new_sale = new_sale("doubtful", 5, now - 1000, now + HOUR_MS, 1);
    submit(&f.r, op, &made);
    for (int i = 0; i < 200 && atomic_load(&sale_writes) == writes; i++)
        run_for(&f.r, 10);
    ASSERT_TRUE(atomic_load(&sale_writes) > writes);
    run_for(&f.r, 20);
    atomic_store(&fail_sale, false);
    atomic_store(&fail_last_seq, false);
    ASSERT_TRUE(!b.done && !made.done);
    atomic_store(&sync_budget, -1);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(b.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(made.status, -EIO);
    ASSERT_TRUE(workers_see(f.e, "running") && !workers_see(f.e, "doubtful"));
    ASSERT_EQ(buy1(&f.r, s, "c", "r-c").result, SK_BUY_UNAVAILABLE);
    answer_t o = orders_of(&f.r, s, "b");
    ASSERT_EQ(o.status, -EIO);
    free(o.orders);
    fixture_close(&f);

    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "running", 7);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy1(&f.r, s, "b", "r-b").result, SK_BUY_DUPLICATE);
    ASSERT_TRUE(!workers_see(f.e, "doubtful"));
    ASSERT_EQ(create_sale(&f.r, new_sale("doubtful", 5, now - 1000, now + HOUR_MS, 1), NULL), 0);
    ASSERT_TRUE(workers_see(f.e, "doubtful"));
    fixture_destroy(&f);
}

SK_TEST(test_small_batch_waits_for_the_sync_and_grows)
{
    /* A batch smaller than max_batch taken while a write is being synced is neither
     * decided nor written until that sync ends, and then takes what arrived meanwhile:
     * three purchases made while b's sync is held are one commit after it. With batches
     * of one op (each is full) the same three are three commits, written while the
     * sync runs. */
    for (size_t max_batch = 0; max_batch <= 1; max_batch++) {
        fixture_t f;
        sk_sale_t *s = open_faulty_sale(&f, max_batch, "gather", 10);
        ASSERT_TRUE(s != NULL);
        answer_t b, c[3];
        ASSERT_TRUE(buy_with_sync_held(&f, s, "b", "r-b", &b)); /* b's sync waits inside */
        int commits = atomic_load(&commits_begun);
        const char *users[3] = {"c0", "c1", "c2"};
        for (int i = 0; i < 3; i++) {
            buy(&f.r, s, users[i], users[i], &c[i]);
            run_for(&f.r, 20);
        }
        run_for(&f.r, 50);
        ASSERT_EQ(atomic_load(&commits_begun) - commits, max_batch ? 1 : 0); /* one: then two writes wait */
        ASSERT_TRUE(!b.done && !c[0].done && !c[2].done);
        atomic_store(&sync_budget, -1);
        ASSERT_TRUE(runner_wait(&f.r));
        ASSERT_EQ(atomic_load(&commits_begun) - commits, max_batch ? 3 : 1);
        ASSERT_EQ(b.result, SK_BUY_CONFIRMED);
        for (int i = 0; i < 3; i++)
            ASSERT_EQ(c[i].result, SK_BUY_CONFIRMED);
        ASSERT_EQ(sk_sale_sold(s), 4);
        fixture_destroy(&f);
    }
}

SK_TEST(test_commit_in_doubt_published_once_durable)
{
    /* A commit reported failure but stored its batch: the batch stands, and the workers
     * see its counts once its write is synced, not before. */
    fixture_t f;
    ASSERT_TRUE(open_faulty(&f));
    sk_sale_t *s = live_sale(&f.r, "doubt-held", 2, 1);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_CONFIRMED);
    atomic_store(&sync_budget, 0);
    faults(false, true, false);
    answer_t b;
    buy(&f.r, s, "b", "r-b", &b);
    for (int i = 0; i < 50 && sk_counter_get(&sk_engine_stats(f.e)->commit_errors) < 1; i++)
        run_for(&f.r, 20);
    ASSERT_GE(sk_counter_get(&sk_engine_stats(f.e)->commit_errors), 1);
    run_for(&f.r, 100);
    ASSERT_TRUE(!b.done);
    ASSERT_EQ(sk_sale_sold(s), 1); /* b's unit is not durable yet */
    ASSERT_TRUE(!sk_sale_is_sold_out(s));
    faults(false, false, false);
    atomic_store(&sync_budget, -1);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(b.result, SK_BUY_UNAVAILABLE);
    ASSERT_EQ(sk_sale_sold(s), 2);
    fixture_destroy(&f);
}

SK_TEST(test_settings_published_as_their_batch_left_them)
{
    /* Two renames, the second decided and written while the first is being synced: the
     * first one's release shows its own name, not the second's (not durable yet).
     * Batches of one op, each full, so that the second is not held back until the first
     * is released. */
    fixture_t f;
    ASSERT_TRUE(open_faulty_batch(&f, 1));
    sk_sale_t *s = live_sale(&f.r, "named", 10, 1);
    ASSERT_TRUE(s != NULL);
    atomic_store(&sync_budget, 0);
    sk_control_t c = {.action = SK_CTL_PATCH, .set = SK_PATCH_NAME};
    snprintf(c.name, sizeof(c.name), "First");
    answer_t a1, a2;
    control(&f.r, s, &c, "n1", &a1);
    run_for(&f.r, 100);
    snprintf(c.name, sizeof(c.name), "Second");
    control(&f.r, s, &c, "n2", &a2);
    run_for(&f.r, 100);
    ASSERT_TRUE(!a1.done && !a2.done);
    ASSERT_STR_EQ(sk_sale_params(s)->name, "named");
    atomic_store(&sync_budget, 1); /* the first write's sync ends; the second's waits */
    for (int i = 0; i < 100 && !a1.done; i++)
        run_for(&f.r, 20);
    ASSERT_TRUE(a1.done && !a2.done);
    ASSERT_EQ(a1.control_result, SK_CR_OK);
    ASSERT_STR_EQ(sk_sale_params(s)->name, "First");
    atomic_store(&sync_budget, -1);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_STR_EQ(sk_sale_params(s)->name, "Second");
    fixture_destroy(&f);
}

SK_TEST(test_queue_published_without_counts_in_doubt)
{
    /* A batch joins a sale's waiting room and buys from it, and its commit's outcome is
     * in doubt: the queue is published after its own write, the sale's counts are not
     * (they hold an order that may not exist) until the journal answers. */
    fixture_t f;
    ASSERT_TRUE(open_faulty(&f));
    int64_t now = sk_now_ms();
    sk_sale_params_t p = {.name = "waiting",
                          .starts_at = now - 1000,
                          .ends_at = now + HOUR_MS,
                          .per_user_limit = 1,
                          .max_quantity = 1,
                          .queue = SK_QUEUE_FIFO,
                          .admit_per_second = 1,
                          .admission_ttl_ms = SK_ADMISSION_TTL_MIN};
    sk_sale_t *s = NULL;
    ASSERT_EQ(create_sale(&f.r, sk_sale_new("waiting", 7, &p, 10, now), &s), 0);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_CONFIRMED);
    faults(false, true, true); /* stored, and the journal cannot say so */
    sk_op_t *op = sk_op_new(SK_OP_QUEUE);
    op->sale = s;
    op->join = true;
    op->user_len = 2;
    memcpy(op->user_id, "w1", 3);
    answer_t q, b;
    submit(&f.r, op, &q);
    buy(&f.r, s, "b", "r-b", &b);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(b.result, SK_BUY_UNAVAILABLE);
    ASSERT_EQ(sk_sale_sold(s), 1);
    faults(false, false, false);
    ASSERT_EQ(buy1(&f.r, s, "c", "r-c").result, SK_BUY_CONFIRMED);
    ASSERT_EQ(sk_sale_sold(s), 3); /* b's order stands */
    fixture_destroy(&f);
}

SK_TEST(test_commit_failed_before_the_disk)
{
    /* The COMMIT itself fails: nothing is stored, and the seqs are handed out again. */
    fixture_t f;
    ASSERT_TRUE(open_faulty(&f));
    sk_sale_t *s = live_sale(&f.r, "lost", 10, 1);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_CONFIRMED);
    faults(true, false, false);
    ASSERT_EQ(buy1(&f.r, s, "b", "r-b").result, SK_BUY_UNAVAILABLE);
    faults(false, false, false);
    answer_t a = buy1(&f.r, s, "c", "r-c");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 2);
    a = buy1(&f.r, s, "b", "r-b");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 3);
    fixture_close(&f);
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "lost", 4);
    ASSERT_EQ(sk_sale_sold(s), 3);
    fixture_destroy(&f);
}

SK_TEST(test_outcome_unknown_until_the_journal_answers)
{
    /* The commit's outcome is in doubt and the journal cannot be asked either: the sale
     * decides nothing (503, nothing confirmed) until the journal answers; other sales
     * go on. */
    fixture_t f;
    ASSERT_TRUE(open_faulty(&f));
    sk_sale_t *s = live_sale(&f.r, "dark", 10, 1);
    sk_sale_t *other = live_sale(&f.r, "other", 10, 1);
    ASSERT_TRUE(s && other);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_CONFIRMED);

    faults(false, true, true); /* the batch reached the disk; the journal cannot say so */
    ASSERT_EQ(buy1(&f.r, s, "b", "r-b").result, SK_BUY_UNAVAILABLE);
    faults(false, false, true);
    ASSERT_EQ(buy1(&f.r, s, "c", "r-c").result, SK_BUY_UNAVAILABLE);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_UNAVAILABLE);
    answer_t o = orders_of(&f.r, s, "b");
    ASSERT_EQ(o.status, -EIO); /* never a list that may hold an order that does not exist */
    ASSERT_EQ(sk_sale_sold(s), 1);
    ASSERT_EQ(buy1(&f.r, other, "z", "r-z").result, SK_BUY_CONFIRMED);

    faults(false, false, false);
    answer_t a = buy1(&f.r, s, "b", "r-b");
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, 2);
    a = buy1(&f.r, s, "c", "r-c");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 3);
    o = orders_of(&f.r, s, "b");
    ASSERT_EQ(o.status, 0);
    ASSERT_EQ(o.n_orders, 1);
    free(o.orders);

    /* And when the batch did not reach the disk: settled later, its seqs used again. */
    faults(true, false, true);
    ASSERT_EQ(buy1(&f.r, s, "d", "r-d").result, SK_BUY_UNAVAILABLE);
    ASSERT_EQ(buy1(&f.r, s, "e", "r-e").result, SK_BUY_UNAVAILABLE);
    faults(false, false, false);
    a = buy1(&f.r, s, "e", "r-e");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 4);
    ASSERT_EQ(sk_sale_sold(s), 4);
    fixture_close(&f);
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "dark", 4);
    ASSERT_EQ(sk_sale_sold(s), 4);
    a = buy1(&f.r, s, "d", "r-d");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 5);
    fixture_destroy(&f);
}

SK_TEST(test_undo_across_a_page_and_a_doubling)
{
    /* Batches that fail before the disk, whose orders and new users cross the first
     * page boundary of the holders and the orders (16 384) and the doubling of the
     * holders' index and of the user set: undone, then bought again with the same seqs,
     * and the journal agrees after a restart. */
    enum { BEFORE = 16000, WAVE = 4000, LOST = 1000 };
    fixture_t f;
    ASSERT_TRUE(open_faulty(&f));
    sk_sale_t *s = live_sale(&f.r, "paged", 100000, 1);
    ASSERT_TRUE(s != NULL);
    static answer_t a[WAVE];
    char user[32];
    for (int w = 0; w < BEFORE; w += WAVE) {
        for (int i = 0; i < WAVE; i++) {
            snprintf(user, sizeof(user), "u%d", w + i);
            buy(&f.r, s, user, user, &a[i]);
        }
        ASSERT_TRUE(runner_wait(&f.r));
        ASSERT_EQ(a[WAVE - 1].result, SK_BUY_CONFIRMED);
    }
    faults(true, false, false);
    for (int i = 0; i < LOST; i++) {
        snprintf(user, sizeof(user), "u%d", BEFORE + i);
        buy(&f.r, s, user, user, &a[i]);
    }
    ASSERT_TRUE(runner_wait(&f.r));
    for (int i = 0; i < LOST; i++)
        ASSERT_EQ(a[i].result, SK_BUY_UNAVAILABLE);
    faults(false, false, false);
    ASSERT_EQ(sk_sale_sold(s), BEFORE);
    for (int i = 0; i < LOST; i++) {
        snprintf(user, sizeof(user), "u%d", BEFORE + i);
        buy(&f.r, s, user, user, &a[i]);
    }
    ASSERT_TRUE(runner_wait(&f.r));
    for (int i = 0; i < LOST; i++) {
        if (a[i].result != SK_BUY_CONFIRMED || a[i].seq != (uint64_t)(BEFORE + i + 1)) {
            SK_FAIL_AT("retry %d: %s seq %llu", i, sk_buy_result_names[a[i].result], (unsigned long long)a[i].seq);
            break;
        }
    }
    answer_t x = buy1(&f.r, s, "u16384", "u16384");
    ASSERT_EQ(x.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(x.seq, 16385);
    fixture_close(&f);
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "paged", 5);
    ASSERT_EQ(sk_sale_sold(s), BEFORE + LOST);
    x = buy1(&f.r, s, "u16383", "u16383");
    ASSERT_EQ(x.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(x.seq, 16384);
    x = buy1(&f.r, s, "u3", "other");
    ASSERT_EQ(x.result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(x.seq, 4);
    fixture_destroy(&f);
}

SK_TEST(test_one_user_100000_orders)
{
    /* One user, a large per_user_limit, distinct request ids, through the ledger and a
     * restart: every replay finds its own order, the limit holds. (The cost of each
     * decision is counted in tests/unit/engine/test_holders.c.) */
    enum { K = 100000, WAVE = 4000 };
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = live_sale(&f.r, "whale", K + 10, K + 1);
    ASSERT_TRUE(s != NULL);
    static answer_t a[WAVE];
    char req[32];
    for (int w = 0; w < K; w += WAVE) {
        for (int i = 0; i < WAVE; i++) {
            snprintf(req, sizeof(req), "q%d", w + i);
            buy(&f.r, s, "whale", req, &a[i]);
        }
        ASSERT_TRUE(runner_wait(&f.r));
        for (int i = 0; i < WAVE; i++) {
            if (a[i].result != SK_BUY_CONFIRMED || a[i].seq != (uint64_t)(w + i + 1)) {
                SK_FAIL_AT("order %d: %s seq %llu", w + i, sk_buy_result_names[a[i].result],
                           (unsigned long long)a[i].seq);
                return;
            }
        }
    }
    for (int round = 0; round < 2; round++) {
        answer_t x = buy1(&f.r, s, "whale", "q7");
        ASSERT_EQ(x.result, SK_BUY_DUPLICATE);
        ASSERT_EQ(x.seq, 8);
        x = buy1(&f.r, s, "whale", "q99999");
        ASSERT_EQ(x.result, SK_BUY_DUPLICATE);
        ASSERT_EQ(x.seq, K);
        if (round == 0) {
            x = buy1(&f.r, s, "whale", "last");
            ASSERT_EQ(x.result, SK_BUY_CONFIRMED);
            ASSERT_EQ(x.seq, K + 1);
            x = buy1(&f.r, s, "whale", "over");
            ASSERT_EQ(x.result, SK_BUY_LIMIT_REACHED);
            ASSERT_EQ(x.seq, 1);
            ASSERT_EQ(x.held, K + 1);
            fixture_close(&f);
            ASSERT_TRUE(fixture_open(&f, f.dir, 0));
            s = sk_engine_find_sale(f.e, "whale", 5);
            ASSERT_EQ(sk_sale_sold(s), K + 1);
        }
    }
    fixture_destroy(&f);
}

/* ---- the order lifecycle ------------------------------------------------------------------ */

/* The ledger's clock in these tests: set by the test, read by the ledger at each batch. */
static _Atomic int64_t fake_now;

static int64_t fake_clock(void *arg)
{
    (void)arg;
    return atomic_load(&fake_now);
}

static void install_clock(sk_backend_t *b, void *arg)
{
    (void)arg;
    sk_backend_embedded_set_clock(b, fake_clock, NULL);
}

static void install_both(sk_backend_t *b, void *arg)
{
    install_clock(b, arg);
    install_fault(b, arg);
}

static void assert_counts(const sk_sale_t *s, int64_t held, int64_t sold)
{
    sk_sale_counts_t c = counts_of(s);
    ASSERT_EQ(c.held, held);
    ASSERT_EQ(c.sold, sold);
}

/* Makes the ledger run a batch (it expires what is due first) and returns the order. */
static answer_t get1(runner_t *r, sk_sale_t *s, uint64_t seq)
{
    return order_op1(r, SK_OP_GET_ORDER, s, seq, NULL);
}

SK_TEST(test_lifecycle_transitions)
{
    int64_t t0 = sk_now_ms();
    atomic_store(&fake_now, t0);
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_clock, NULL));
    sk_sale_t *s = window_sale(&f.r, "life", 10, 4, 3, 1000);
    ASSERT_TRUE(s != NULL);
    answer_t a = buy_q1(&f.r, s, "u1", "r1", 2);
    ASSERT_EQ(a.result, SK_BUY_RESERVED);
    ASSERT_EQ(a.seq, 1);
    ASSERT_EQ(a.order.pay_by, t0 + 1000);
    ASSERT_EQ(a.order.quantity, 2);
    ASSERT_EQ(a.order.state, SK_ORDER_RESERVED);
    ASSERT_EQ(a.remaining, 8);
    assert_counts(s, 2, 0);
    a = buy_q1(&f.r, s, "u1", "r1", 2);
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.order.state, SK_ORDER_RESERVED);
    ASSERT_EQ(buy_q1(&f.r, s, "u2", "r2", 1).result, SK_BUY_RESERVED);
    ASSERT_EQ(buy_q1(&f.r, s, "u3", "r3", 3).result, SK_BUY_RESERVED);
    a = buy_q1(&f.r, s, "u3", "r4", 2); /* 3 units held + 2 > 4: units, not orders */
    ASSERT_EQ(a.result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(a.held, 3);
    ASSERT_EQ(buy_q1(&f.r, s, "u4", "r", 4).result, SK_BUY_BAD_QUANTITY);
    ASSERT_EQ(buy_q1(&f.r, s, "u5", "r", 3).result, SK_BUY_RESERVED);
    a = buy_q1(&f.r, s, "u6", "r", 2); /* 1 unit left, 2 asked: all or nothing */
    ASSERT_EQ(a.result, SK_BUY_SOLD_OUT);
    ASSERT_EQ(a.remaining, 1);
    assert_counts(s, 9, 0);

    /* A payment received at pay_by confirms. */
    atomic_store(&fake_now, t0 + 1000);
    a = order_op1(&f.r, SK_OP_PAY, s, 1, "p1");
    ASSERT_EQ(a.status, 0);
    ASSERT_EQ(a.tr, SK_TR_OK);
    ASSERT_EQ(a.order.state, SK_ORDER_CONFIRMED);
    ASSERT_EQ(a.order.paid_at, t0 + 1000);
    ASSERT_STR_EQ(a.order.payment_id, "p1");
    assert_counts(s, 7, 2);
    ASSERT_EQ(order_op1(&f.r, SK_OP_PAY, s, 1, "p1").tr, SK_TR_DUPLICATE);
    ASSERT_EQ(order_op1(&f.r, SK_OP_PAY, s, 1, "p2").tr, SK_TR_ALREADY_PAID);
    a = order_op1(&f.r, SK_OP_CANCEL, s, 1, "u1");
    ASSERT_EQ(a.tr, SK_TR_NOT_RESERVED);
    ASSERT_EQ(a.order.state, SK_ORDER_CONFIRMED);
    ASSERT_EQ(order_op1(&f.r, SK_OP_CANCEL, s, 2, "u1").status, -EPERM); /* someone else's */
    a = order_op1(&f.r, SK_OP_CANCEL, s, 2, "u2");
    ASSERT_EQ(a.tr, SK_TR_OK);
    ASSERT_EQ(a.order.state, SK_ORDER_CANCELLED);
    ASSERT_EQ(a.order.closed_at, t0 + 1000);
    assert_counts(s, 6, 2);
    ASSERT_EQ(order_op1(&f.r, SK_OP_CANCEL, s, 2, NULL).tr, SK_TR_NOT_RESERVED);
    ASSERT_EQ(order_op1(&f.r, SK_OP_REFUND, s, 2, NULL).tr, SK_TR_NOT_CONFIRMED);
    ASSERT_EQ(order_op1(&f.r, SK_OP_PAY, s, 2, "p").tr, SK_TR_CANCELLED);
    a = order_op1(&f.r, SK_OP_REFUND, s, 1, NULL);
    ASSERT_EQ(a.tr, SK_TR_OK);
    ASSERT_EQ(a.order.state, SK_ORDER_REFUNDED);
    assert_counts(s, 6, 0);
    ASSERT_EQ(order_op1(&f.r, SK_OP_PAY, s, 1, "p1").tr, SK_TR_REFUNDED);
    ASSERT_EQ(get1(&f.r, s, 99).status, -ENOENT);
    ASSERT_EQ(get1(&f.r, s, 0).status, -ENOENT);

    /* One ms after pay_by: the batch expires what is due before the payment, which is
     * told so (and never confirms, I8). */
    atomic_store(&fake_now, t0 + 1001);
    a = order_op1(&f.r, SK_OP_PAY, s, 3, "p3");
    ASSERT_EQ(a.tr, SK_TR_EXPIRED);
    ASSERT_EQ(a.order.state, SK_ORDER_EXPIRED);
    ASSERT_EQ(a.order.closed_at, t0 + 1001);
    assert_counts(s, 0, 0);
    ASSERT_EQ(order_op1(&f.r, SK_OP_CANCEL, s, 4, NULL).tr, SK_TR_NOT_RESERVED); /* u5's expired too */
    /* Returned units sell again, and the limit counts only active units. */
    a = buy_q1(&f.r, s, "u3", "r5", 3);
    ASSERT_EQ(a.result, SK_BUY_RESERVED);
    ASSERT_EQ(a.seq, 5);
    ASSERT_EQ(a.order.pay_by, t0 + 2001);
    a = buy_q1(&f.r, s, "u3", "r3", 1); /* the first request: still that order, now expired */
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, 3);
    ASSERT_EQ(a.order.state, SK_ORDER_EXPIRED);
    assert_counts(s, 3, 0);
    answer_t l = orders_of1(&f.r, s, "u3");
    ASSERT_EQ(l.n_orders, 2);
    ASSERT_EQ(l.orders[0].state, SK_ORDER_EXPIRED);
    ASSERT_EQ(l.orders[1].state, SK_ORDER_RESERVED);
    ASSERT_EQ(l.orders[1].quantity, 3);
    free(l.orders);
    const sk_engine_stats_t *st = sk_engine_stats(f.e);
    ASSERT_EQ(sk_counter_get(&st->transitions[SK_ORDER_EXPIRED]), 2);
    ASSERT_EQ(sk_counter_get(&st->transitions[SK_ORDER_CONFIRMED]), 1);
    fixture_close(&f);

    /* Replayed in order after a restart: the same states, times and counts. */
    ASSERT_TRUE(fixture_open_with(&f, f.dir, 0, install_clock, NULL));
    s = sk_engine_find_sale(f.e, "life", 4);
    ASSERT_TRUE(s != NULL);
    assert_counts(s, 3, 0);
    static const sk_order_state_t want[] = {SK_ORDER_REFUNDED, SK_ORDER_CANCELLED, SK_ORDER_EXPIRED, SK_ORDER_EXPIRED,
                                            SK_ORDER_RESERVED};
    for (uint64_t seq = 1; seq <= 5; seq++)
        ASSERT_EQ(get1(&f.r, s, seq).order.state, want[seq - 1]);
    a = get1(&f.r, s, 1);
    ASSERT_STR_EQ(a.order.payment_id, "p1");
    ASSERT_EQ(a.order.paid_at, t0 + 1000);
    ASSERT_EQ(a.order.closed_at, t0 + 1000);
    ASSERT_EQ(a.order.quantity, 2);
    ASSERT_EQ(sk_sale_params(s)->max_quantity, 3);
    ASSERT_EQ(sk_sale_params(s)->payment_window_ms, 1000);
    ASSERT_EQ(buy_q1(&f.r, s, "u3", "r6", 2).result, SK_BUY_LIMIT_REACHED);
    fixture_destroy(&f);
}

/* A payment of order seq received (by its worker's clock) at `received`, submitted. */
static void pay_received(runner_t *r, sk_sale_t *s, uint64_t seq, const char *payment, int64_t received, answer_t *a)
{
    sk_op_t *op = sk_op_new(SK_OP_PAY);
    op->sale = s;
    op->seq = seq;
    op->now_ms = received;
    op->payment_len = (uint8_t)strlen(payment);
    memcpy(op->payment_id, payment, op->payment_len + 1u);
    submit(r, op, a);
}

/* The same, waiting for the answer. */
static answer_t pay_received1(runner_t *r, sk_sale_t *s, uint64_t seq, const char *payment, int64_t received)
{
    answer_t a;
    pay_received(r, s, seq, payment, received, &a);
    runner_wait(r);
    return a;
}

SK_TEST(test_payment_judged_by_when_it_was_received)
{
    /* Four payments in one batch that waited for a sync past every pay_by, pushed in
     * another order than they were received, each judged and journaled at its own
     * receipt; an expiry of the same batch beside a late payment's; and the replay after
     * a restart reaches the same states and times. */
    int64_t t0 = sk_now_ms();
    atomic_store(&fake_now, t0 - 10);
    no_faults();
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_both, NULL));
    sk_sale_t *s = window_sale(&f.r, "slow", 10, 1, 1, 1000);
    ASSERT_TRUE(s != NULL);
    static const int64_t made[] = {-10, 0, 5, 8, 10}; /* pay_by 990, 1000, 1005, 1008, 1010 */
    char user[8];
    for (int k = 0; k < 5; k++) {
        atomic_store(&fake_now, t0 + made[k]);
        snprintf(user, sizeof(user), "u%d", k);
        ASSERT_EQ(buy_q1(&f.r, s, user, user, 1).order.pay_by, t0 + made[k] + 1000);
    }
    atomic_store(&fake_now, t0 + 500);
    answer_t h, paid[4], twice;
    ASSERT_TRUE(buy_with_sync_held(&f, s, "h", "r-h", &h)); /* seq 6; its sync waits inside */
    pay_received(&f.r, s, 3, "p3", t0 + 1007, &paid[0]); /* late: pay_by 1005 */
    pay_received(&f.r, s, 4, "p4", t0 + 1003, &paid[1]);
    /* u1's reservation paid twice, late with one payment id, then in time with another:
     * the payment in time confirms, the late one is told it is paid already. */
    pay_received(&f.r, s, 2, "p2-late", t0 + 1006, &twice);
    pay_received(&f.r, s, 2, "p2", t0 + 999, &paid[2]);
    pay_received(&f.r, s, 5, "p5", t0 + 1010, &paid[3]); /* at pay_by */
    run_for(&f.r, 50);
    atomic_store(&fake_now, t0 + 1050); /* the sync outlasts every pay_by */
    atomic_store(&sync_budget, -1);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(paid[0].tr, SK_TR_EXPIRED);
    ASSERT_EQ(paid[0].order.closed_at, t0 + 1007);
    const int64_t paid_at[] = {0, t0 + 1003, t0 + 999, t0 + 1010};
    for (int k = 1; k < 4; k++) {
        ASSERT_EQ(paid[k].tr, SK_TR_OK);
        ASSERT_EQ(paid[k].order.paid_at, paid_at[k]);
    }
    ASSERT_EQ(twice.tr, SK_TR_ALREADY_PAID);
    ASSERT_STR_EQ(twice.order.payment_id, "p2");
    /* u0's reservation (pay_by 990) expired in that batch, by the earliest pay_by its
     * payments in time spared (u1's, 1000); u2's by its late payment (1007). */
    answer_t a = get1(&f.r, s, 1);
    ASSERT_EQ(a.order.state, SK_ORDER_EXPIRED);
    ASSERT_EQ(a.order.closed_at, t0 + 1000);
    assert_counts(s, 1, 3);
    /* A payment that reaches the ledger after its order expired never confirms (I8),
     * whenever it was received. */
    a = pay_received1(&f.r, s, 1, "p1", t0 + 980);
    ASSERT_EQ(a.tr, SK_TR_EXPIRED);
    ASSERT_EQ(a.order.state, SK_ORDER_EXPIRED);
    /* A reading later than the ledger's (a worker's clock ahead) counts as the
     * ledger's, and one before the order was made as the order's making. */
    a = pay_received1(&f.r, s, 6, "ph", t0 + 9000);
    ASSERT_EQ(a.tr, SK_TR_OK);
    ASSERT_EQ(a.order.paid_at, t0 + 1050);
    ASSERT_EQ(buy_q1(&f.r, s, "v", "r-v", 1).order.seq, 7);
    a = pay_received1(&f.r, s, 7, "pv", t0 + 100);
    ASSERT_EQ(a.tr, SK_TR_OK);
    ASSERT_EQ(a.order.paid_at, t0 + 1050);
    assert_counts(s, 0, 5);
    /* A payment that pays no reservation in time (an unknown order, one paid already)
     * holds no expiry back, however early it was received. */
    atomic_store(&fake_now, t0 + 2000);
    ASSERT_EQ(buy_q1(&f.r, s, "w", "r-w", 1).order.pay_by, t0 + 3000);
    atomic_store(&fake_now, t0 + 3100);
    ASSERT_EQ(pay_received1(&f.r, s, 99, "p99", t0 + 2500).status, -ENOENT);
    a = get1(&f.r, s, 8);
    ASSERT_EQ(a.order.state, SK_ORDER_EXPIRED);
    ASSERT_EQ(a.order.closed_at, t0 + 3100);
    /* A wall clock stepped back makes no order older than the one before it (a sale's
     * orders are its deadline FIFO). */
    atomic_store(&fake_now, t0 + 1500);
    ASSERT_EQ(buy_q1(&f.r, s, "x", "r-x", 1).order.pay_by, t0 + 3000);
    assert_counts(s, 1, 5);
    fixture_close(&f);

    /* Replayed after a restart: the same states and times. */
    ASSERT_TRUE(fixture_open_with(&f, f.dir, 0, install_clock, NULL));
    s = sk_engine_find_sale(f.e, "slow", 4);
    ASSERT_TRUE(s != NULL);
    assert_counts(s, 1, 5);
    static const sk_order_state_t want[] = {SK_ORDER_EXPIRED,   SK_ORDER_CONFIRMED, SK_ORDER_EXPIRED,
                                            SK_ORDER_CONFIRMED, SK_ORDER_CONFIRMED, SK_ORDER_CONFIRMED,
                                            SK_ORDER_CONFIRMED, SK_ORDER_EXPIRED};
    static const int64_t at[] = {1000, 999, 1007, 1003, 1010, 1050, 1050, 3100};
    for (uint64_t seq = 1; seq <= 8; seq++) {
        a = get1(&f.r, s, seq);
        ASSERT_EQ(a.order.state, want[seq - 1]);
        ASSERT_EQ(want[seq - 1] == SK_ORDER_CONFIRMED ? a.order.paid_at : a.order.closed_at, t0 + at[seq - 1]);
    }
    fixture_destroy(&f);
}

/* Opens f (its max_batch as set) on the fake clock at t0, without faults, with a sale
 * of 10 units and a payment window of 1 s. */
static sk_sale_t *clocked_sale(fixture_t *f, const char *id, int64_t t0)
{
    atomic_store(&fake_now, t0);
    no_faults();
    if (!fixture_open_with(f, NULL, 0, install_both, NULL))
        return NULL;
    return window_sale(&f->r, id, 10, 1, 1, 1000);
}

SK_TEST(test_payment_on_its_way_holds_its_expiry)
{
    /* A payment received before pay_by and not taken yet when a batch runs past it
     * (queued behind a full batch: two ops here) keeps its reservation: that batch
     * expires only what fell due before the payment was received, and the payment then
     * confirms. Before, the batch expired it and the payment was answered 409 expired. */
    int64_t t0 = sk_now_ms();
    fixture_t f = {.max_batch = 2};
    sk_sale_t *s = clocked_sale(&f, "queued", t0);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy_q1(&f.r, s, "u1", "r1", 1).order.pay_by, t0 + 1000);
    atomic_store(&fake_now, t0 + 3);
    ASSERT_EQ(buy_q1(&f.r, s, "u2", "r2", 1).order.pay_by, t0 + 1003);
    usleep(20 * 1000); /* the ledger asleep: the three ops below are queued together */
    atomic_store(&fake_now, t0 + 1500);
    answer_t v1, v2, paid;
    buy(&f.r, s, "v1", "r-v1", &v1);
    buy(&f.r, s, "v2", "r-v2", &v2);
    pay_received(&f.r, s, 2, "p2", t0 + 1002, &paid);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(v1.result, SK_BUY_RESERVED);
    ASSERT_EQ(v2.result, SK_BUY_RESERVED);
    ASSERT_EQ(paid.tr, SK_TR_OK);
    ASSERT_EQ(paid.order.paid_at, t0 + 1002);
    answer_t a = get1(&f.r, s, 1); /* due before the payment was received: expired */
    ASSERT_EQ(a.order.state, SK_ORDER_EXPIRED);
    ASSERT_EQ(a.order.closed_at, t0 + 1002);
    assert_counts(s, 2, 1);
    /* Without a payment on its way nothing is held: the clock expires by itself. */
    atomic_store(&fake_now, t0 + 2600);
    ASSERT_EQ(get1(&f.r, s, 3).order.state, SK_ORDER_EXPIRED);
    assert_counts(s, 0, 1);
    /* A payment stamped at submit (the default) is stamped by the ledger's clock. */
    atomic_store(&fake_now, t0 + 2700);
    ASSERT_EQ(buy_q1(&f.r, s, "w", "r-w", 1).order.pay_by, t0 + 3700);
    a = order_op1(&f.r, SK_OP_PAY, s, 5, "pw");
    ASSERT_EQ(a.tr, SK_TR_OK);
    ASSERT_EQ(a.order.paid_at, t0 + 2700);
    fixture_destroy(&f);
}

/* A receipt clock that, armed, stops the payment that reads it (after its place is
 * published, before its stamp is written) until released: a worker preempted there. */
static _Atomic int stamping; /* 0 off, 1 armed, 2 inside, 3 released */

static int64_t stalled_clock(void *arg)
{
    (void)arg;
    int64_t v = atomic_load(&fake_now);
    int armed = 1;
    if (atomic_compare_exchange_strong(&stamping, &armed, 2))
        while (atomic_load(&stamping) != 3)
            usleep(1000);
    return v;
}

typedef struct {
    runner_t r;
    sk_sale_t *s;
    uint64_t seq;
    answer_t a;
    pthread_t th;
} payer_t;

static void *payer_main(void *arg)
{
    payer_t *x = arg;
    order_op(&x->r, SK_OP_PAY, x->s, x->seq, "p-stalled", &x->a);
    runner_wait(&x->r);
    return NULL;
}

/* Starts a payment of order seq of s on a worker of its own, stalled in its stamp. */
static void start_stalled_payment(fixture_t *f, payer_t *x, sk_sale_t *s, uint64_t seq)
{
    sk_engine_set_receipt_clock(f->e, stalled_clock, NULL);
    runner_init(&x->r, f->e);
    x->s = s;
    x->seq = seq;
    atomic_store(&stamping, 1);
    pthread_create(&x->th, NULL, payer_main, x);
    while (atomic_load(&stamping) != 2)
        usleep(1000);
}

static void finish_stalled_payment(payer_t *x)
{
    atomic_store(&stamping, 3);
    pthread_join(x->th, NULL);
    runner_free(&x->r);
}

SK_TEST(test_payment_being_stamped_holds_expiries)
{
    /* While a payment is between its published place and its stamp, no reservation of
     * any sale expires (its stamp may be earlier than the batch's clock), and a late
     * transition of a reservation so held (the provider's retry of the same payment, an
     * admin's cancel) waits for it: the payment in time, once stamped, confirms, and
     * they hear duplicate and not_reserved. Before, a late payment under another id
     * expired the reservation, a cancel cancelled it, and the payment received in time
     * was refused. */
    int64_t t0 = sk_now_ms();
    atomic_store(&fake_now, t0);
    no_faults();
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_both, NULL));
    sk_sale_t *s = window_sale(&f.r, "stamped", 10, 1, 1, 1000);
    sk_sale_t *s2 = window_sale(&f.r, "other", 10, 1, 1, 1000);
    ASSERT_TRUE(s != NULL && s2 != NULL);
    ASSERT_EQ(buy_q1(&f.r, s, "u1", "r1", 1).order.pay_by, t0 + 1000);
    ASSERT_EQ(buy_q1(&f.r, s2, "u2", "r2", 1).order.pay_by, t0 + 1000);
    atomic_store(&fake_now, t0 + 999);
    payer_t x = {0};
    start_stalled_payment(&f, &x, s, 1);
    atomic_store(&fake_now, t0 + 1500);
    runner_t late; /* another worker, on this thread */
    runner_init(&late, f.e);
    answer_t retry, cancel;
    order_op(&late, SK_OP_PAY, s, 1, "p-stalled", &retry);
    order_op(&late, SK_OP_CANCEL, s, 1, NULL, &cancel);
    run_for(&late, 30); /* the ledger looks again every 1 ms meanwhile */
    ASSERT_TRUE(!retry.done && !cancel.done);
    ASSERT_EQ(get1(&f.r, s2, 1).order.state, SK_ORDER_RESERVED);
    assert_counts(s, 1, 0);
    assert_counts(s2, 1, 0);
    finish_stalled_payment(&x);
    ASSERT_EQ(x.a.tr, SK_TR_OK);
    ASSERT_EQ(x.a.order.paid_at, t0 + 999);
    ASSERT_TRUE(runner_wait(&late));
    ASSERT_EQ(retry.tr, SK_TR_DUPLICATE);
    ASSERT_EQ(cancel.tr, SK_TR_NOT_RESERVED);
    ASSERT_EQ(cancel.order.state, SK_ORDER_CONFIRMED);
    runner_free(&late);
    answer_t a = get1(&f.r, s2, 1);
    ASSERT_EQ(a.order.state, SK_ORDER_EXPIRED);
    ASSERT_EQ(a.order.closed_at, t0 + 1500);
    assert_counts(s, 0, 1);
    assert_counts(s2, 0, 0);
    /* The same states after a restart. */
    fixture_close(&f);
    ASSERT_TRUE(fixture_open_with(&f, f.dir, 0, install_clock, NULL));
    s = sk_engine_find_sale(f.e, "stamped", 7);
    ASSERT_EQ(get1(&f.r, s, 1).order.paid_at, t0 + 999);
    assert_counts(s, 0, 1);
    fixture_destroy(&f);
}

SK_TEST(test_payment_behind_a_later_stamp_is_held)
{
    /* The wall clock stepped back between two payments of one worker puts the older
     * stamp behind the newer one in its track; the hold still sees it. */
    int64_t t0 = sk_now_ms();
    fixture_t f = {.max_batch = 2};
    sk_sale_t *s = clocked_sale(&f, "stepped", t0);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy_q1(&f.r, s, "u1", "r1", 1).order.pay_by, t0 + 1000);
    usleep(20 * 1000); /* the ledger asleep: what follows is queued together */
    answer_t v1, v2, pa, pb;
    buy(&f.r, s, "v1", "r-v1", &v1); /* a full batch ahead of the payments */
    buy(&f.r, s, "v2", "r-v2", &v2);
    atomic_store(&fake_now, t0 + 1600);
    order_op(&f.r, SK_OP_PAY, s, 99, "pa", &pa); /* stamped 1600 */
    atomic_store(&fake_now, t0 + 999); /* stepped back */
    order_op(&f.r, SK_OP_PAY, s, 1, "pb", &pb); /* received by pay_by */
    atomic_store(&fake_now, t0 + 1500);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(pa.status, -ENOENT);
    ASSERT_EQ(pb.tr, SK_TR_OK);
    ASSERT_EQ(pb.order.paid_at, t0 + 999);
    fixture_destroy(&f);
}

SK_TEST(test_payment_on_its_way_beside_one_in_the_batch)
{
    /* A batch holding a payment in time of X (which lowers its expiry clock) and a late
     * payment of Y, while Y's payment in time is still on its way (another worker's,
     * stamped before the late one and pushed after it): the late one waits, Y's in time
     * confirms, the late one hears already_paid. */
    int64_t t0 = sk_now_ms();
    fixture_t f = {.max_batch = 2};
    sk_sale_t *s = clocked_sale(&f, "spared", t0);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy_q1(&f.r, s, "ux", "rx", 1).order.pay_by, t0 + 1000);
    atomic_store(&fake_now, t0 + 200);
    ASSERT_EQ(buy_q1(&f.r, s, "uy", "ry", 1).order.pay_by, t0 + 1200);
    usleep(20 * 1000);
    runner_t b;
    runner_init(&b, f.e);
    atomic_store(&fake_now, t0 + 1500);
    answer_t px, ly, py;
    pay_received(&f.r, s, 1, "px", t0 + 990, &px);
    pay_received(&f.r, s, 2, "ly", t0 + 1400, &ly);
    pay_received(&b, s, 2, "py", t0 + 1100, &py);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_TRUE(runner_wait(&b));
    ASSERT_EQ(px.tr, SK_TR_OK);
    ASSERT_EQ(py.tr, SK_TR_OK);
    ASSERT_EQ(py.order.paid_at, t0 + 1100);
    ASSERT_EQ(ly.tr, SK_TR_ALREADY_PAID);
    runner_free(&b);
    fixture_destroy(&f);
}

SK_TEST(test_late_payment_waits_also_when_stopping)
{
    /* A late payment taken alone (batches of one) while a payment received in time is
     * queued behind it waits for it, also when the engine is being stopped with both
     * still queued (a stopping ledger answers what is queued): the one in time confirms,
     * the late one hears already_paid. */
    for (int stop = 0; stop < 2; stop++) {
        int64_t t0 = sk_now_ms();
        atomic_store(&fake_now, t0);
        no_faults();
        fixture_t f = {.max_batch = 1};
        ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_both, NULL));
        sk_sale_t *s = window_sale(&f.r, "stopping", 10, 1, 1, 1000);
        ASSERT_TRUE(s != NULL);
        ASSERT_EQ(buy_q1(&f.r, s, "u1", "r1", 1).order.pay_by, t0 + 1000);
        usleep(20 * 1000); /* the ledger asleep: both payments are queued together */
        atomic_store(&fake_now, t0 + 1500);
        answer_t late, in_time;
        pay_received(&f.r, s, 1, "p-late", t0 + 1400, &late);
        pay_received(&f.r, s, 1, "p-in-time", t0 + 999, &in_time);
        if (stop)
            sk_engine_stop(f.e);
        ASSERT_TRUE(runner_wait(&f.r));
        ASSERT_EQ(in_time.tr, SK_TR_OK);
        ASSERT_EQ(in_time.order.paid_at, t0 + 999);
        ASSERT_EQ(late.tr, SK_TR_ALREADY_PAID);
        fixture_destroy(&f);
    }
}

SK_TEST(test_looking_again_while_held_keeps_the_pipeline)
{
    /* While a hold lasts the ledger looks again every 1 ms; those looks write nothing
     * and take no place in the pipeline of batches waiting for their sync, so a full
     * batch is still written while the disk syncs the one before. Before, ~8 looks
     * filled it and the full batch waited for the sync. */
    int64_t t0 = sk_now_ms();
    fixture_t f = {.max_batch = 2};
    sk_sale_t *s = clocked_sale(&f, "looks", t0);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy_q1(&f.r, s, "u1", "r1", 1).order.pay_by, t0 + 1000);
    atomic_store(&fake_now, t0 + 999);
    payer_t x = {0};
    start_stalled_payment(&f, &x, s, 1); /* received by pay_by */
    atomic_store(&fake_now, t0 + 1500);
    ASSERT_EQ(get1(&f.r, s, 1).order.state, SK_ORDER_RESERVED); /* held */
    answer_t h, v1, v2;
    ASSERT_TRUE(buy_with_sync_held(&f, s, "h", "r-h", &h));
    usleep(40 * 1000);
    int c0 = atomic_load(&commits_begun);
    buy(&f.r, s, "v1", "r-v1", &v1);
    buy(&f.r, s, "v2", "r-v2", &v2);
    run_for(&f.r, 100);
    int c1 = atomic_load(&commits_begun);
    atomic_store(&sync_budget, -1);
    finish_stalled_payment(&x);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_TRUE(c1 > c0);
    ASSERT_EQ(x.a.tr, SK_TR_OK);
    fixture_destroy(&f);
}

SK_TEST(test_transition_of_an_order_of_its_own_batch)
{
    /* Order ids are predictable: a cancel or a payment pipelined right behind the
     * purchase that makes its order lands in the same batch. It is answered 404, as just
     * before (the client could not know the id from a committed answer), so that the
     * journal's replay, which writes a batch's transitions before its new orders, still
     * reaches the same state; a batch after, it goes through. */
    no_faults();
    fixture_t f;
    ASSERT_TRUE(open_faulty(&f));
    sk_sale_t *s = window_sale(&f.r, "guess", 2, 1, 1, HOUR_MS);
    ASSERT_TRUE(s != NULL);
    answer_t h, b, c, p, c2;
    ASSERT_TRUE(buy_with_sync_held(&f, s, "h", "r-h", &h)); /* seq 1 */
    buy(&f.r, s, "g", "r-g", &b); /* seq 2, in the next batch */
    order_op(&f.r, SK_OP_CANCEL, s, 2, "g", &c);
    order_op(&f.r, SK_OP_PAY, s, 2, "pay-g", &p);
    buy(&f.r, s, "k", "r-k", &c2); /* no unit left unless the cancel went through */
    run_for(&f.r, 50);
    atomic_store(&sync_budget, -1);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(b.result, SK_BUY_RESERVED);
    ASSERT_EQ(b.seq, 2);
    ASSERT_EQ(c.status, -ENOENT);
    ASSERT_EQ(p.status, -ENOENT);
    ASSERT_EQ(c2.result, SK_BUY_SOLD_OUT);
    ASSERT_EQ(order_op1(&f.r, SK_OP_CANCEL, s, 2, "g").tr, SK_TR_OK);
    ASSERT_EQ(buy1(&f.r, s, "k", "r-k2").result, SK_BUY_RESERVED);
    assert_counts(s, 2, 0);
    fixture_close(&f);
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "guess", 5);
    ASSERT_TRUE(s != NULL);
    assert_counts(s, 2, 0);
    ASSERT_EQ(get1(&f.r, s, 2).order.state, SK_ORDER_CANCELLED);
    fixture_destroy(&f);
}

SK_TEST(test_payment_waits_for_the_sync_judged_by_receipt)
{
    /* A payment taken in a small batch while a sync runs waits for that sync like any
     * op (then one write and one sync carry it with what came meanwhile). It is judged
     * by when it was received: a sync that lasts past its order's pay_by, while the
     * ledger's clock moves on, does not expire it. */
    int64_t t0 = sk_now_ms();
    atomic_store(&fake_now, t0);
    no_faults();
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_both, NULL));
    sk_sale_t *s = window_sale(&f.r, "pay-later", 10, 1, 1, 1000);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").order.pay_by, t0 + 1000);
    atomic_store(&fake_now, t0 + 500);
    answer_t b, paid;
    ASSERT_TRUE(buy_with_sync_held(&f, s, "b", "r-b", &b)); /* b's sync waits inside */
    int commits = atomic_load(&commits_begun);
    pay_received(&f.r, s, 1, "pay-a", t0 + 1000, &paid);
    run_for(&f.r, 50);
    ASSERT_EQ(atomic_load(&commits_begun) - commits, 0); /* it waits for b's sync */
    ASSERT_TRUE(!b.done && !paid.done);
    atomic_store(&fake_now, t0 + 1050); /* the sync outlasts a's pay_by */
    atomic_store(&sync_budget, -1);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(atomic_load(&commits_begun) - commits, 1);
    ASSERT_EQ(b.result, SK_BUY_RESERVED);
    ASSERT_EQ(b.order.pay_by, t0 + 1500);
    ASSERT_EQ(paid.tr, SK_TR_OK);
    ASSERT_EQ(paid.order.state, SK_ORDER_CONFIRMED);
    ASSERT_EQ(paid.order.paid_at, t0 + 1000);
    assert_counts(s, 1, 1);
    fixture_destroy(&f);
}

SK_TEST(test_store_with_a_transition_ahead_of_its_order_opens)
{
    /* A ledger before the same-batch check could journal a transition of an order of its
     * own batch ahead of that order's row (a client pipelined a purchase and a cancel of
     * the id it was about to get), and such a store did not open again. It opens now:
     * the transition is replayed right after its order. One naming an order that was
     * never stored still does not. */
    char dir[256], err[256] = "";
    ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "early"));
    sk_journal_t *j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    int64_t now = sk_now_ms();
    sk_journal_sale_t sa = {"early", "Early", 1, now - 1000, now + HOUR_MS, 1, now - 2000, 1, HOUR_MS};
    ASSERT_EQ(sk_journal_put_sale(j, &sa), 0);
    /* One batch as that ledger decided it: g's order, g's cancel of it, then k's order
     * of the unit the cancel returned (stock 1). */
    sk_journal_order_t orders[] = {{"early", 1, "g", "r-g", now, now + HOUR_MS, 1},
                                   {"early", 2, "k", "r-k", now, now + HOUR_MS, 1}};
    sk_journal_event_t ev[] = {{"early", 1, SK_EV_CANCEL, now, "buyer"}};
    uint64_t first, last;
    ASSERT_EQ(sk_journal_put_batch(j, orders, 2, ev, 1, NULL, 0, &first, &last), 0);
    sk_journal_close(j);
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, dir, 0));
    sk_sale_t *s = sk_engine_find_sale(f.e, "early", 5);
    ASSERT_TRUE(s != NULL);
    assert_counts(s, 1, 0);
    answer_t a = get1(&f.r, s, 1);
    ASSERT_EQ(a.order.state, SK_ORDER_CANCELLED);
    ASSERT_EQ(a.order.closed_at, now);
    ASSERT_EQ(get1(&f.r, s, 2).order.state, SK_ORDER_RESERVED);
    ASSERT_EQ(buy1(&f.r, s, "k", "r-k").result, SK_BUY_DUPLICATE);
    fixture_close(&f);

    j = sk_journal_open(dir, err, sizeof(err));
    ASSERT_TRUE(j != NULL);
    sk_journal_event_t never[] = {{"early", 9, SK_EV_CANCEL, now, "admin"}};
    ASSERT_EQ(sk_journal_put_batch(j, NULL, 0, never, 1, NULL, 0, &first, &last), 0);
    sk_journal_close(j);
    ASSERT_TRUE(!fixture_open(&f, dir, 0));
    rm_rf(dir);

    /* Its order must be in the sale's next order row (its own batch's), made no later
     * than the transition: a cancel whose order comes a batch later, or one timed before
     * the order's making, is not something a ledger wrote. */
    sa.stock = 5;
    for (int k = 0; k < 2; k++) {
        ASSERT_TRUE(sk_test_temp_dir(dir, sizeof(dir), "early"));
        j = sk_journal_open(dir, err, sizeof(err));
        ASSERT_TRUE(j != NULL);
        ASSERT_EQ(sk_journal_put_sale(j, &sa), 0);
        sk_journal_event_t ahead[] = {{"early", k ? 1 : 2, SK_EV_CANCEL, k ? now - 500 : now, "buyer"}};
        ASSERT_EQ(sk_journal_put_batch(j, orders, 1, ahead, 1, NULL, 0, &first, &last), 0);
        ASSERT_EQ(sk_journal_put_batch(j, orders + 1, 1, NULL, 0, NULL, 0, &first, &last), 0);
        sk_journal_close(j);
        ASSERT_TRUE(!fixture_open(&f, dir, 0));
        rm_rf(dir);
    }
}

SK_TEST(test_expiry_in_deadline_order)
{
    /* Three sales, two windows: every reservation expires once the ledger's clock is
     * past its pay_by, in each sale's order, and none before; paid ones never. */
    int64_t t0 = sk_now_ms();
    atomic_store(&fake_now, t0);
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_clock, NULL));
    sk_sale_t *s1 = window_sale(&f.r, "short", 10, 5, 1, 100);
    sk_sale_t *s2 = window_sale(&f.r, "long", 10, 5, 1, 300);
    sk_sale_t *s3 = live_sale(&f.r, "final", 10, 5);
    ASSERT_TRUE(s1 && s2 && s3);
    answer_t a[3];
    buy(&f.r, s1, "a1", "", &a[0]);
    buy(&f.r, s1, "a2", "", &a[1]);
    buy(&f.r, s2, "b1", "", &a[2]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(buy1(&f.r, s3, "c1", "").result, SK_BUY_CONFIRMED);
    atomic_store(&fake_now, t0 + 50);
    ASSERT_EQ(buy1(&f.r, s1, "a3", "").result, SK_BUY_RESERVED); /* pay_by t0 + 150 */
    ASSERT_EQ(buy1(&f.r, s2, "b2", "").result, SK_BUY_RESERVED); /* pay_by t0 + 350 */
    atomic_store(&fake_now, t0 + 60);
    ASSERT_EQ(order_op1(&f.r, SK_OP_PAY, s1, 2, "pay-a2").tr, SK_TR_OK);
    struct {
        int64_t at;
        int64_t held1, held2;
    } steps[] = {{t0 + 100, 2, 2}, {t0 + 101, 1, 2}, {t0 + 150, 1, 2}, {t0 + 151, 0, 2},
                 {t0 + 300, 0, 2}, {t0 + 301, 0, 1}, {t0 + 351, 0, 0}};
    for (size_t i = 0; i < SK_ARRAY_LEN(steps); i++) {
        atomic_store(&fake_now, steps[i].at);
        get1(&f.r, s3, 1); /* any batch sweeps what is due */
        assert_counts(s1, steps[i].held1, 1);
        assert_counts(s2, steps[i].held2, 0);
    }
    ASSERT_EQ(get1(&f.r, s1, 1).order.closed_at, t0 + 101);
    ASSERT_EQ(get1(&f.r, s1, 2).order.state, SK_ORDER_CONFIRMED);
    ASSERT_EQ(get1(&f.r, s1, 3).order.closed_at, t0 + 151);
    ASSERT_EQ(get1(&f.r, s2, 2).order.state, SK_ORDER_EXPIRED);
    assert_counts(s3, 0, 1);
    ASSERT_EQ(sk_counter_get(&sk_engine_stats(f.e)->transitions[SK_ORDER_EXPIRED]), 4);
    fixture_destroy(&f);
}

/* Waits (bounded) until the sale holds no unit; returns whether it got there. */
static bool wait_for_no_held(const sk_sale_t *s)
{
    for (int i = 0; i < 1000; i++) {
        if (counts_of(s).held == 0)
            return true;
        usleep(10 * 1000);
    }
    return false;
}

SK_TEST(test_writer_wakes_for_deadlines)
{
    /* Nobody sends anything after the reservations: the ledger wakes at the deadline
     * by itself. And deadlines that pass while the process is down expire at start. */
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = window_sale(&f.r, "idle", 5, 1, 1, 150);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy1(&f.r, s, "x", "").result, SK_BUY_RESERVED);
    ASSERT_EQ(buy1(&f.r, s, "y", "").result, SK_BUY_RESERVED);
    ASSERT_TRUE(wait_for_no_held(s));
    ASSERT_EQ(counts_of(s).sold, 0);

    sk_sale_t *d = window_sale(&f.r, "down", 5, 1, 1, 300);
    ASSERT_TRUE(d != NULL);
    ASSERT_EQ(buy1(&f.r, d, "p", "").result, SK_BUY_RESERVED);
    ASSERT_EQ(buy1(&f.r, d, "q", "").result, SK_BUY_RESERVED);
    ASSERT_EQ(order_op1(&f.r, SK_OP_PAY, d, 1, "paid").tr, SK_TR_OK);
    fixture_close(&f);
    usleep(400 * 1000); /* q's deadline passes while no process runs */
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    d = sk_engine_find_sale(f.e, "down", 4);
    ASSERT_TRUE(d != NULL);
    ASSERT_TRUE(wait_for_no_held(d));
    assert_counts(d, 0, 1);
    fixture_close(&f);
    /* The expiry was journaled: the same after another restart. */
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    d = sk_engine_find_sale(f.e, "down", 4);
    assert_counts(d, 0, 1);
    ASSERT_EQ(get1(&f.r, d, 2).order.state, SK_ORDER_EXPIRED);
    ASSERT_EQ(get1(&f.r, d, 1).order.state, SK_ORDER_CONFIRMED);
    fixture_destroy(&f);
}

SK_TEST(test_transition_commit_in_doubt)
{
    /* A batch of transitions whose commit is in doubt is settled from the journal like
     * one of orders: stored, it stands; not stored, it is put back. */
    faults(false, false, false);
    int64_t t0 = sk_now_ms();
    atomic_store(&fake_now, t0);
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_both, NULL));
    sk_sale_t *s = window_sale(&f.r, "doubt2", 10, 1, 1, HOUR_MS);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy1(&f.r, s, "a", "").result, SK_BUY_RESERVED);
    ASSERT_EQ(buy1(&f.r, s, "b", "").result, SK_BUY_RESERVED);

    faults(false, true, true); /* stored, but nobody can tell */
    ASSERT_EQ(order_op1(&f.r, SK_OP_PAY, s, 1, "pa").status, -EIO);
    ASSERT_EQ(order_op1(&f.r, SK_OP_PAY, s, 1, "pa").status, -EIO); /* in doubt: nothing decided */
    ASSERT_EQ(buy1(&f.r, s, "c", "").result, SK_BUY_UNAVAILABLE);
    faults(false, false, false);
    answer_t a = order_op1(&f.r, SK_OP_PAY, s, 1, "pa");
    ASSERT_EQ(a.status, 0);
    ASSERT_EQ(a.tr, SK_TR_DUPLICATE); /* the first payment stood */
    assert_counts(s, 1, 1);

    faults(true, false, true); /* not stored, and nobody can tell */
    ASSERT_EQ(order_op1(&f.r, SK_OP_CANCEL, s, 2, "b").status, -EIO);
    ASSERT_EQ(order_op1(&f.r, SK_OP_REFUND, s, 1, NULL).status, -EIO);
    assert_counts(s, 1, 1);
    faults(false, false, false);
    a = order_op1(&f.r, SK_OP_CANCEL, s, 2, "b");
    ASSERT_EQ(a.tr, SK_TR_OK); /* the first cancel was put back */
    assert_counts(s, 0, 1);
    /* A refund whose commit failed for certain is put back at once. */
    faults(true, false, false);
    ASSERT_EQ(order_op1(&f.r, SK_OP_REFUND, s, 1, NULL).status, -EIO);
    faults(false, false, false);
    assert_counts(s, 0, 1);
    ASSERT_EQ(get1(&f.r, s, 1).order.state, SK_ORDER_CONFIRMED);
    fixture_close(&f);
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "doubt2", 6);
    assert_counts(s, 0, 1);
    ASSERT_EQ(get1(&f.r, s, 1).order.state, SK_ORDER_CONFIRMED);
    ASSERT_EQ(get1(&f.r, s, 2).order.state, SK_ORDER_CANCELLED);
    fixture_destroy(&f);
}

SK_TEST(test_gate_while_reservations_pending)
{
    /* Sold out with every unit reserved: the crowd is answered by the workers; a holder
     * goes to the ledger; the moment a unit returns, purchases go to the ledger again. */
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = window_sale(&f.r, "pending", 2, 1, 1, HOUR_MS);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy1(&f.r, s, "h1", "r").result, SK_BUY_RESERVED);
    ASSERT_EQ(buy1(&f.r, s, "h2", "r").result, SK_BUY_RESERVED);
    ASSERT_TRUE(sk_sale_is_sold_out(s));
    ASSERT_EQ(sk_sale_state(s, sk_now_ms()), SK_SALE_SOLD_OUT);
    sk_buy_result_t r;
    char u[32];
    for (int i = 0; i < 1000; i++) {
        user_name(u, sizeof(u), "crowd", i);
        ASSERT_TRUE(gate(s, u, 1, sk_now_ms(), &r));
        ASSERT_EQ(r, SK_BUY_SOLD_OUT);
    }
    ASSERT_TRUE(!gate(s, "h1", 1, sk_now_ms(), &r));
    ASSERT_EQ(buy1(&f.r, s, "h1", "r").result, SK_BUY_DUPLICATE);
    ASSERT_EQ(order_op1(&f.r, SK_OP_CANCEL, s, 1, "h1").tr, SK_TR_OK);
    ASSERT_TRUE(!sk_sale_is_sold_out(s));
    ASSERT_TRUE(!gate(s, "crowd7", 1, sk_now_ms(), &r));
    ASSERT_EQ(buy1(&f.r, s, "crowd7", "r").result, SK_BUY_RESERVED);
    ASSERT_TRUE(gate(s, "crowd8", 1, sk_now_ms(), &r));
    fixture_destroy(&f);
}

SK_TEST(test_many_orders_without_request_ids)
{
    /* Request ids are optional: a buyer past the walk limit who never sent one, then
     * sends one, is decided (the ledger once read a request index the sale never
     * allocated, and the whole node died), and so is every later purchase of the sale
     * once it is sold out. */
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = live_sale(&f.r, "anon", 11, 20);
    ASSERT_TRUE(s != NULL);
    for (int i = 0; i < 9; i++)
        ASSERT_EQ(buy1(&f.r, s, "u", "").result, SK_BUY_CONFIRMED);
    answer_t a = buy1(&f.r, s, "u", "r-10");
    ASSERT_EQ(a.result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a.seq, 10);
    ASSERT_EQ(buy1(&f.r, s, "u", "r-10").result, SK_BUY_DUPLICATE);
    ASSERT_EQ(buy1(&f.r, s, "v", "").result, SK_BUY_CONFIRMED);
    a = buy1(&f.r, s, "u", "r-11");
    ASSERT_EQ(a.result, SK_BUY_SOLD_OUT);
    ASSERT_EQ(a.held, 10);
    a = buy1(&f.r, s, "u", "r-10");
    ASSERT_EQ(a.result, SK_BUY_DUPLICATE);
    ASSERT_EQ(a.seq, 10);
    fixture_destroy(&f);
}

/* ---- the operator's controls ---------------------------------------------------------------- */

static uint64_t batches(const sk_engine_t *e)
{
    return sk_counter_get(&sk_engine_stats(e)->batches);
}

SK_TEST(test_pause_between_two_purchases_of_one_batch)
{
    /* A purchase, a pause, a purchase and a holder's replay, queued before the ledger
     * wakes: one batch, decided in that order. The first buys, the pause applies from
     * there on (the second is refused: paused), the replay still gets its order. */
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = window_sale(&f.r, "pz", 10, 5, 3, HOUR_MS);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy_q1(&f.r, s, "old", "r0", 1).result, SK_BUY_RESERVED);
    uint64_t b0 = batches(f.e);
    answer_t a[5];
    buy_q_at(&f.r, s, "u1", "r1", 2, sk_now_ms(), &a[0]);
    control(&f.r, s, &(sk_control_t){.action = SK_CTL_PAUSE}, "c-pause", &a[1]);
    buy_q_at(&f.r, s, "u2", "r2", 1, sk_now_ms(), &a[2]);
    buy_q_at(&f.r, s, "u1", "r1", 2, sk_now_ms(), &a[3]);
    buy_q_at(&f.r, s, "u1", "r9", 1, sk_now_ms(), &a[4]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(batches(f.e), b0 + 1); /* one batch, one commit */
    ASSERT_EQ(a[0].result, SK_BUY_RESERVED);
    ASSERT_EQ(a[0].seq, 2);
    ASSERT_EQ(a[1].status, 0);
    ASSERT_EQ(a[1].control_result, SK_CR_OK);
    ASSERT_EQ(a[1].entry.seq, 1);
    ASSERT_EQ(a[1].entry.before.orders, 2); /* it applies after order 2 */
    ASSERT_EQ(a[1].entry.before.held, 3);
    ASSERT_TRUE(!a[1].entry.before.paused && a[1].entry.after.paused);
    ASSERT_EQ(a[1].entry.after.state, SK_SALE_PAUSED);
    ASSERT_STR_EQ(a[1].entry.actor, "admin");
    ASSERT_EQ(a[2].result, SK_BUY_PAUSED);
    ASSERT_EQ(a[3].result, SK_BUY_DUPLICATE); /* a holder's replay first */
    ASSERT_EQ(a[4].result, SK_BUY_PAUSED); /* a holder's new purchase: the ledger says paused */
    ASSERT_EQ(sk_sale_state(s, sk_now_ms()), SK_SALE_PAUSED);
    sk_buy_result_t r;
    ASSERT_TRUE(gate(s, "crowd", 1, sk_now_ms(), &r)); /* non-holders: the worker */
    ASSERT_EQ(r, SK_BUY_PAUSED);
    ASSERT_TRUE(!gate(s, "u1", 1, sk_now_ms(), &r)); /* holders: the ledger */

    /* Paused: earlier reservations are paid and cancelled as before. */
    ASSERT_EQ(order_op1(&f.r, SK_OP_PAY, s, 1, "pay-1").tr, SK_TR_OK);
    ASSERT_EQ(order_op1(&f.r, SK_OP_CANCEL, s, 2, "u1").tr, SK_TR_OK);
    assert_counts(s, 0, 1);

    /* Resume and a purchase in one batch: the purchase sees the sale live. */
    control(&f.r, s, &(sk_control_t){.action = SK_CTL_RESUME}, "c-resume", &a[0]);
    buy_q_at(&f.r, s, "u2", "r2", 1, sk_now_ms(), &a[1]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(a[0].control_result, SK_CR_OK);
    ASSERT_EQ(a[1].result, SK_BUY_RESERVED);
    ASSERT_EQ(sk_sale_state(s, sk_now_ms()), SK_SALE_LIVE);
    fixture_destroy(&f);
}

SK_TEST(test_stock_between_purchases_of_one_batch)
{
    /* add_stock lets the purchase after it in the batch take the new units;
     * remove_stock takes them away from the purchase after it, never below sold + held. */
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = window_sale(&f.r, "st", 3, 10, 5, 0);
    ASSERT_TRUE(s != NULL);
    answer_t a[4];
    buy_q_at(&f.r, s, "u1", "r1", 3, sk_now_ms(), &a[0]);
    buy_q_at(&f.r, s, "u2", "r2", 2, sk_now_ms(), &a[1]);
    control(&f.r, s, &(sk_control_t){.action = SK_CTL_ADD_STOCK, .amount = 2}, "c-add", &a[2]);
    buy_q_at(&f.r, s, "u3", "r3", 2, sk_now_ms(), &a[3]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(a[0].result, SK_BUY_CONFIRMED);
    ASSERT_EQ(a[1].result, SK_BUY_SOLD_OUT); /* all or nothing: 0 left before the add */
    ASSERT_EQ(a[2].control_result, SK_CR_OK);
    ASSERT_EQ(a[2].entry.before.stock, 3);
    ASSERT_EQ(a[2].entry.after.stock, 5);
    ASSERT_EQ(a[2].entry.before.state, SK_SALE_SOLD_OUT);
    ASSERT_EQ(a[2].entry.after.state, SK_SALE_LIVE);
    ASSERT_EQ(a[3].result, SK_BUY_CONFIRMED);
    ASSERT_TRUE(sk_sale_is_sold_out(s));
    sk_sale_counts_t c = counts_of(s);
    ASSERT_EQ(c.stock, 5);
    ASSERT_EQ(c.sold, 5);

    ASSERT_EQ(act1(&f.r, s, SK_CTL_REMOVE_STOCK, 1, "c-rm").control_result, SK_CR_INSUFFICIENT);
    ASSERT_EQ(act1(&f.r, s, SK_CTL_ADD_STOCK, 4, "c-add2").control_result, SK_CR_OK);
    buy_q_at(&f.r, s, "u4", "r4", 2, sk_now_ms(), &a[0]);
    control(&f.r, s, &(sk_control_t){.action = SK_CTL_REMOVE_STOCK, .amount = 2}, "c-rm2", &a[1]);
    buy_q_at(&f.r, s, "u5", "r5", 1, sk_now_ms(), &a[2]);
    control(&f.r, s, &(sk_control_t){.action = SK_CTL_REMOVE_STOCK, .amount = 1}, "c-rm3", &a[3]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(a[0].result, SK_BUY_CONFIRMED); /* 9 stock, 7 sold */
    ASSERT_EQ(a[1].control_result, SK_CR_OK); /* 7 stock, 7 sold */
    ASSERT_EQ(a[2].result, SK_BUY_SOLD_OUT);
    ASSERT_EQ(a[3].control_result, SK_CR_INSUFFICIENT);
    c = counts_of(s);
    ASSERT_EQ(c.stock, 7);
    ASSERT_EQ(c.sold, 7);
    fixture_destroy(&f);
}

SK_TEST(test_close_and_patch)
{
    int64_t t0 = sk_now_ms();
    atomic_store(&fake_now, t0);
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_clock, NULL));
    /* A scheduled sale: its start may move, its window may change (no orders yet). */
    sk_sale_t *s = NULL;
    ASSERT_EQ(create_sale(&f.r, new_sale_ex("cp", 10, t0 + 60000, t0 + HOUR_MS, 2, 1, 0), &s), 0);
    sk_control_t c = {.action = SK_CTL_PATCH, .set = SK_PATCH_STARTS_AT | SK_PATCH_PAYMENT_WINDOW | SK_PATCH_NAME};
    c.starts_at = t0 + 1000;
    c.payment_window_ms = 5000;
    snprintf(c.name, sizeof(c.name), "Renamed");
    answer_t a = control1(&f.r, s, &c, "c1");
    ASSERT_EQ(a.control_result, SK_CR_OK);
    const sk_sale_params_t *p = sk_sale_params(s);
    ASSERT_EQ(p->starts_at, t0 + 1000);
    ASSERT_EQ(p->payment_window_ms, 5000);
    ASSERT_STR_EQ(p->name, "Renamed");
    ASSERT_EQ(act1(&f.r, s, SK_CTL_PAUSE, 0, "c2").control_result, SK_CR_OK);
    ASSERT_EQ(sk_sale_state(s, t0), SK_SALE_SCHEDULED);
    ASSERT_EQ(sk_sale_state(s, t0 + 2000), SK_SALE_PAUSED);
    ASSERT_EQ(act1(&f.r, s, SK_CTL_RESUME, 0, "c3").control_result, SK_CR_OK);

    /* Live, with an order: the start and the window are fixed now. */
    atomic_store(&fake_now, t0 + 2000);
    ASSERT_EQ(buy_at1(&f.r, s, "u1", "r1", t0 + 2000).result, SK_BUY_RESERVED);
    c = (sk_control_t){.action = SK_CTL_PATCH, .set = SK_PATCH_STARTS_AT, .starts_at = t0 + 5000};
    ASSERT_EQ(control1(&f.r, s, &c, "c4").control_result, SK_CR_STARTED);
    c = (sk_control_t){.action = SK_CTL_PATCH, .set = SK_PATCH_PAYMENT_WINDOW, .payment_window_ms = 9000};
    ASSERT_EQ(control1(&f.r, s, &c, "c5").control_result, SK_CR_HAS_ORDERS);
    c = (sk_control_t){.action = SK_CTL_PATCH, .set = SK_PATCH_ENDS_AT, .ends_at = t0 + 1999};
    a = control1(&f.r, s, &c, "c6");
    ASSERT_EQ(a.control_result, SK_CR_END_IN_PAST);
    ASSERT_STR_EQ(a.field, "ends_at");
    c = (sk_control_t){.action = SK_CTL_PATCH,
                       .set = SK_PATCH_ENDS_AT | SK_PATCH_PER_USER_LIMIT | SK_PATCH_MAX_QUANTITY,
                       .ends_at = t0 + 2 * HOUR_MS,
                       .per_user_limit = 3,
                       .max_quantity = 3};
    ASSERT_EQ(control1(&f.r, s, &c, "c7").control_result, SK_CR_OK);
    buy_q_at(&f.r, s, "u1", "r2", 2, t0 + 2000, &a);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(a.result, SK_BUY_RESERVED); /* the new limit: 1 + 2 <= 3 */

    /* Close: purchases end (410), the reservations may still be paid, nothing else changes it. */
    answer_t b[3];
    control(&f.r, s, &(sk_control_t){.action = SK_CTL_CLOSE}, "c8", &b[0]);
    buy_at(&f.r, s, "u9", "r9", t0 + 2000, &b[1]);
    buy_q_at(&f.r, s, "u1", "r2", 2, t0 + 2000, &b[2]);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(b[0].control_result, SK_CR_OK);
    ASSERT_EQ(b[0].entry.after.state, SK_SALE_ENDED);
    ASSERT_EQ(b[1].result, SK_BUY_ENDED);
    ASSERT_EQ(b[2].result, SK_BUY_DUPLICATE);
    ASSERT_EQ(sk_sale_state(s, t0 + 2000), SK_SALE_ENDED);
    sk_buy_result_t r;
    ASSERT_TRUE(gate(s, "crowd", 1, t0 + 2000, &r));
    ASSERT_EQ(r, SK_BUY_ENDED);
    ASSERT_EQ(order_op1(&f.r, SK_OP_PAY, s, 1, "p1").tr, SK_TR_OK);
    ASSERT_EQ(order_op1(&f.r, SK_OP_CANCEL, s, 2, NULL).tr, SK_TR_OK);
    sk_control_action_t acts[] = {SK_CTL_PAUSE, SK_CTL_RESUME, SK_CTL_CLOSE, SK_CTL_ADD_STOCK, SK_CTL_REMOVE_STOCK};
    for (size_t i = 0; i < SK_ARRAY_LEN(acts); i++)
        ASSERT_EQ(act1(&f.r, s, acts[i], 1, "c-late").control_result, SK_CR_CLOSED);
    ASSERT_EQ(control1(&f.r, s, &c, "c-late2").control_result, SK_CR_CLOSED);

    /* A sale ended by the clock takes no control either. */
    sk_sale_t *t = NULL;
    ASSERT_EQ(create_sale(&f.r, new_sale_ex("gone", 10, t0 - 5000, t0 + 3000, 2, 1, 0), &t), 0);
    atomic_store(&fake_now, t0 + 3000);
    ASSERT_EQ(act1(&f.r, t, SK_CTL_ADD_STOCK, 1, "x").control_result, SK_CR_ENDED);
    c = (sk_control_t){.action = SK_CTL_PATCH, .set = SK_PATCH_ENDS_AT, .ends_at = t0 + HOUR_MS};
    ASSERT_EQ(control1(&f.r, t, &c, "y").control_result, SK_CR_ENDED);

    /* The trail: every accepted control, in order. */
    a = trail_of1(&f.r, s);
    ASSERT_EQ(a.status, 0);
    ASSERT_EQ(a.n_entries, 5);
    const char *reqs[] = {"c1", "c2", "c3", "c7", "c8"};
    for (size_t i = 0; i < a.n_entries; i++) {
        ASSERT_EQ(a.entries[i].seq, i + 1);
        ASSERT_STR_EQ(a.entries[i].request_id, reqs[i]);
    }
    ASSERT_EQ(a.entries[3].before.orders, 1);
    ASSERT_EQ(a.entries[4].before.orders, 2);
    free(a.entries);
    fixture_close(&f);

    /* A restart replays the controls: the same settings, state and trail. */
    ASSERT_TRUE(fixture_open_with(&f, f.dir, 0, install_clock, NULL));
    s = sk_engine_find_sale(f.e, "cp", 2);
    p = sk_sale_params(s);
    ASSERT_TRUE(p->closed);
    ASSERT_STR_EQ(p->name, "Renamed");
    ASSERT_EQ(p->starts_at, t0 + 1000);
    ASSERT_EQ(p->ends_at, t0 + 2 * HOUR_MS);
    ASSERT_EQ(p->payment_window_ms, 5000);
    ASSERT_EQ(p->per_user_limit, 3);
    ASSERT_EQ(sk_sale_state(s, t0 + 3000), SK_SALE_ENDED);
    assert_counts(s, 0, 1);
    a = trail_of1(&f.r, s);
    ASSERT_EQ(a.n_entries, 5);
    ASSERT_EQ(a.entries[4].ctl.action, SK_CTL_CLOSE);
    ASSERT_EQ(a.entries[4].before.orders, 2);
    ASSERT_EQ(a.entries[0].ctl.set, SK_PATCH_STARTS_AT | SK_PATCH_PAYMENT_WINDOW | SK_PATCH_NAME);
    free(a.entries);
    ASSERT_EQ(act1(&f.r, s, SK_CTL_PAUSE, 0, "c2").control_result, SK_CR_DUPLICATE); /* the request ids too */
    ASSERT_EQ(buy_at1(&f.r, s, "new", "r", t0 + 3000).result, SK_BUY_ENDED);
    fixture_destroy(&f);
}

SK_TEST(test_trail_and_orders_agree_after_a_clock_step)
{
    /* The wall clock stepped back during a sale: its controls and orders still read as
     * one history, each no earlier than the one before, so the audit places every order
     * where it was made. Before, the pause, resume and close carried the stepped clock
     * and both orders, made before the close, read as made after it. */
    int64_t t0 = sk_now_ms();
    atomic_store(&fake_now, t0 + 100);
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_clock, NULL));
    sk_sale_t *s = live_sale(&f.r, "stepped", 10, 1);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy1(&f.r, s, "u1", "r1").result, SK_BUY_CONFIRMED);
    static const struct {
        int64_t at;
        sk_control_action_t action;
    } steps[] = {{40, SK_CTL_PAUSE}, {60, SK_CTL_RESUME}, {70, SK_CTL_CLOSE}};
    char req[8];
    for (size_t i = 0; i < SK_ARRAY_LEN(steps); i++) {
        atomic_store(&fake_now, t0 + steps[i].at);
        if (steps[i].action == SK_CTL_CLOSE)
            ASSERT_EQ(buy1(&f.r, s, "u2", "r2").result, SK_BUY_CONFIRMED);
        snprintf(req, sizeof(req), "c%zu", i);
        answer_t a = act1(&f.r, s, steps[i].action, 0, req);
        ASSERT_EQ(a.control_result, SK_CR_OK);
        ASSERT_EQ(a.entry.at, t0 + 100);
    }
    answer_t o = orders_of1(&f.r, s, "u2");
    ASSERT_EQ(o.n_orders, 1);
    ASSERT_EQ(o.orders[0].created_at, t0 + 100);
    free(o.orders);
    answer_t log = trail_of1(&f.r, s);
    ASSERT_EQ(log.n_entries, 3);
    sk_audit_entry_t e[3];
    for (size_t i = 0; i < 3; i++) {
        const sk_trail_entry_t *t = &log.entries[i];
        e[i] = (sk_audit_entry_t){.at = t->at,
                                  .orders = t->before.orders,
                                  .stock_before = t->before.stock,
                                  .stock_after = t->after.stock,
                                  .out_before = t->before.sold + t->before.held,
                                  .out_after = t->after.sold + t->after.held};
        snprintf(e[i].action, sizeof(e[i].action), "%s", i == 0 ? "pause" : i == 1 ? "resume" : "close");
    }
    free(log.entries);
    sk_audit_order_t orders[] = {{1, 1, true, t0 + 100}, {2, 1, true, t0 + 100}};
    sk_audit_t out = {0};
    sk_audit_trail_check(e, 3, orders, 2, 10, &out);
    ASSERT_EQ(out.while_paused, 0);
    ASSERT_EQ(out.after_close, 0);
    ASSERT_EQ(out.over_stock, 0);
    fixture_destroy(&f);
}

SK_TEST(test_control_after_a_clock_step_replays)
{
    /* A control decided after the wall clock stepped back is decided at the time it is
     * recorded by (its sale's last control's, sale_clock), as the replay decides it:
     * an ends_at the stepped clock would take is in the past at that time, refused
     * alike live and at the restart. Before, it was accepted live, recorded at the later
     * time, and the store refused to open. */
    int64_t t0 = sk_now_ms();
    atomic_store(&fake_now, t0 + 5000);
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_clock, NULL));
    sk_sale_t *s = live_sale(&f.r, "stepctl", 10, 1);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(act1(&f.r, s, SK_CTL_PAUSE, 0, "c1").control_result, SK_CR_OK);
    atomic_store(&fake_now, t0 + 1000);
    sk_control_t c = {.action = SK_CTL_PATCH, .set = SK_PATCH_ENDS_AT, .ends_at = t0 + 3000};
    ASSERT_EQ(control1(&f.r, s, &c, "c2").control_result, SK_CR_END_IN_PAST);
    c.ends_at = t0 + 7000;
    answer_t a = control1(&f.r, s, &c, "c3");
    ASSERT_EQ(a.control_result, SK_CR_OK);
    ASSERT_EQ(a.entry.at, t0 + 5000);
    fixture_close(&f);
    ASSERT_TRUE(fixture_open_with(&f, f.dir, 0, install_clock, NULL));
    s = sk_engine_find_sale(f.e, "stepctl", 7);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(sk_sale_params(s)->ends_at, t0 + 7000);
    fixture_destroy(&f);
}

SK_TEST(test_control_replays_by_request_id)
{
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = live_sale(&f.r, "idem", 10, 1);
    answer_t a = act1(&f.r, s, SK_CTL_ADD_STOCK, 5, "add-1");
    ASSERT_EQ(a.control_result, SK_CR_OK);
    ASSERT_EQ(counts_of(s).stock, 15);
    /* The same request again (a client that lost the answer): the first entry, no change. */
    answer_t b = act1(&f.r, s, SK_CTL_ADD_STOCK, 5, "add-1");
    ASSERT_EQ(b.control_result, SK_CR_DUPLICATE);
    ASSERT_EQ(b.entry.seq, a.entry.seq);
    ASSERT_EQ(b.entry.at, a.entry.at);
    ASSERT_EQ(b.entry.after.stock, 15);
    ASSERT_EQ(counts_of(s).stock, 15);
    /* The same request id for something else: refused, naming the first. */
    b = act1(&f.r, s, SK_CTL_ADD_STOCK, 6, "add-1");
    ASSERT_EQ(b.control_result, SK_CR_REQUEST_REUSED);
    ASSERT_EQ(b.entry.seq, 1);
    b = act1(&f.r, s, SK_CTL_PAUSE, 0, "add-1");
    ASSERT_EQ(b.control_result, SK_CR_REQUEST_REUSED);
    ASSERT_EQ(counts_of(s).stock, 15);
    ASSERT_TRUE(!sk_sale_params(s)->paused);
    /* A refused control is not remembered: decided anew. */
    ASSERT_EQ(act1(&f.r, s, SK_CTL_RESUME, 0, "r-1").control_result, SK_CR_NOT_PAUSED);
    ASSERT_EQ(act1(&f.r, s, SK_CTL_PAUSE, 0, "p-1").control_result, SK_CR_OK);
    ASSERT_EQ(act1(&f.r, s, SK_CTL_RESUME, 0, "r-1").control_result, SK_CR_OK);
    /* Request ids are per sale. */
    sk_sale_t *t = live_sale(&f.r, "idem2", 10, 1);
    ASSERT_EQ(act1(&f.r, t, SK_CTL_ADD_STOCK, 5, "add-1").control_result, SK_CR_OK);
    answer_t l = trail_of1(&f.r, s);
    ASSERT_EQ(l.n_entries, 3);
    free(l.entries);
    fixture_destroy(&f);
}

SK_TEST(test_control_commit_in_doubt)
{
    /* A control whose commit fails before the disk: answered 503, undone (the published
     * state never changed), and its request id decided anew. One whose commit reached
     * the disk but reported failure: 503 too, and it stands. */
    fixture_t f;
    ASSERT_TRUE(open_faulty(&f));
    sk_sale_t *s = live_sale(&f.r, "cdoubt", 10, 1);
    ASSERT_EQ(buy1(&f.r, s, "u1", "r").result, SK_BUY_CONFIRMED);
    faults(true, false, false);
    sk_control_t c = {.action = SK_CTL_PATCH, .set = SK_PATCH_NAME};
    snprintf(c.name, sizeof(c.name), "lost");
    answer_t a[3];
    control(&f.r, s, &(sk_control_t){.action = SK_CTL_PAUSE}, "c1", &a[0]);
    control(&f.r, s, &c, "c2", &a[1]);
    control(&f.r, s, &(sk_control_t){.action = SK_CTL_REMOVE_STOCK, .amount = 9}, "c3", &a[2]);
    ASSERT_TRUE(runner_wait(&f.r));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(a[i].status, -EIO);
    ASSERT_TRUE(!sk_sale_params(s)->paused);
    ASSERT_STR_EQ(sk_sale_params(s)->name, "cdoubt");
    ASSERT_EQ(counts_of(s).stock, 10);
    faults(false, false, false);
    answer_t l = trail_of1(&f.r, s);
    ASSERT_EQ(l.n_entries, 0);
    ASSERT_EQ(buy1(&f.r, s, "u2", "r").result, SK_BUY_CONFIRMED); /* not paused */
    ASSERT_EQ(act1(&f.r, s, SK_CTL_PAUSE, 0, "c1").control_result, SK_CR_OK); /* anew, not a replay */

    faults(false, true, false);
    ASSERT_EQ(act1(&f.r, s, SK_CTL_ADD_STOCK, 3, "c4").status, -EIO);
    faults(false, false, false);
    ASSERT_EQ(act1(&f.r, s, SK_CTL_ADD_STOCK, 3, "c4").control_result, SK_CR_DUPLICATE); /* it stood */
    ASSERT_EQ(counts_of(s).stock, 13);
    fixture_close(&f);
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "cdoubt", 6);
    ASSERT_EQ(counts_of(s).stock, 13);
    ASSERT_TRUE(sk_sale_params(s)->paused);
    l = trail_of1(&f.r, s);
    ASSERT_EQ(l.n_entries, 2);
    free(l.entries);
    fixture_destroy(&f);
}

SK_TEST(test_quantities_at_every_limit)
{
    /* Units, not orders: the per-user limit with mixed quantities, max_quantity, and
     * quantity against what remains (all or nothing), through a restart. */
    fixture_t f = {0};
    ASSERT_TRUE(fixture_open(&f, NULL, 0));
    sk_sale_t *s = window_sale(&f.r, "qty", 10, 5, 3, 0);
    ASSERT_EQ(buy_q1(&f.r, s, "u1", "a", 3).result, SK_BUY_CONFIRMED); /* at max_quantity */
    ASSERT_EQ(buy_q1(&f.r, s, "u1", "b", 4).result, SK_BUY_BAD_QUANTITY); /* over it */
    ASSERT_EQ(buy_q1(&f.r, s, "u1", "c", 3).result, SK_BUY_LIMIT_REACHED); /* 3 + 3 > 5 */
    ASSERT_EQ(buy_q1(&f.r, s, "u1", "d", 2).result, SK_BUY_CONFIRMED); /* 3 + 2 = 5: at the limit */
    answer_t a = buy_q1(&f.r, s, "u1", "e", 1);
    ASSERT_EQ(a.result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(a.held, 5);
    ASSERT_EQ(buy_q1(&f.r, s, "u2", "a", 3).result, SK_BUY_CONFIRMED); /* 8 sold */
    a = buy_q1(&f.r, s, "u3", "a", 3); /* 2 remain */
    ASSERT_EQ(a.result, SK_BUY_SOLD_OUT);
    ASSERT_EQ(a.remaining, 2);
    ASSERT_EQ(buy_q1(&f.r, s, "u3", "b", 2).result, SK_BUY_CONFIRMED); /* exactly what remains */
    ASSERT_TRUE(sk_sale_is_sold_out(s));
    assert_counts(s, 0, 10);
    /* Lowering the limit keeps what holders have and binds what they buy next. */
    ASSERT_EQ(act1(&f.r, s, SK_CTL_ADD_STOCK, 10, "add").control_result, SK_CR_OK);
    sk_control_t c = {.action = SK_CTL_PATCH,
                      .set = SK_PATCH_PER_USER_LIMIT | SK_PATCH_MAX_QUANTITY,
                      .per_user_limit = 4,
                      .max_quantity = 2};
    ASSERT_EQ(control1(&f.r, s, &c, "lim").control_result, SK_CR_OK);
    ASSERT_EQ(buy_q1(&f.r, s, "u1", "f", 1).result, SK_BUY_LIMIT_REACHED);
    ASSERT_EQ(buy_q1(&f.r, s, "u2", "f", 2).result, SK_BUY_LIMIT_REACHED); /* 3 + 2 > 4 */
    ASSERT_EQ(buy_q1(&f.r, s, "u2", "g", 1).result, SK_BUY_CONFIRMED);
    ASSERT_EQ(buy_q1(&f.r, s, "u4", "a", 3).result, SK_BUY_BAD_QUANTITY);
    fixture_close(&f);
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "qty", 3);
    assert_counts(s, 0, 11);
    ASSERT_EQ(counts_of(s).stock, 20);
    a = orders_of1(&f.r, s, "u1");
    ASSERT_EQ(a.n_orders, 2);
    ASSERT_EQ(a.orders[0].quantity, 3);
    ASSERT_EQ(a.orders[1].quantity, 2);
    free(a.orders);
    ASSERT_EQ(buy_q1(&f.r, s, "u2", "g", 1).result, SK_BUY_DUPLICATE);
    ASSERT_EQ(buy_q1(&f.r, s, "u2", "h", 1).result, SK_BUY_LIMIT_REACHED);
    fixture_destroy(&f);
}

/* Lets every sync start, a while after the test went on (it stops the engine). */
static void *release_syncs_later(void *arg)
{
    (void)arg;
    usleep(300 * 1000);
    atomic_store(&sync_budget, -1);
    return NULL;
}

SK_TEST(test_sync_fails_with_the_ring_full)
{
    /* Syncs held: a purchase, a replay, reads and two more purchases wait, each its own
     * batch, until the ring of waiting batches is full and the ledger takes no more. The
     * sync then fails: every one of them is answered 503 (the replay too: its first
     * answer is not durable), nothing is shown, and every later answer is 503. Batches
     * of one op, each full, so that none waits for the held sync before it is written. */
    fixture_t f;
    ASSERT_TRUE(open_faulty_batch(&f, 1));
    sk_sale_t *s = live_sale(&f.r, "ring", 3, 1);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_CONFIRMED);
    atomic_store(&sync_budget, 0);
    answer_t b, a2, c, d, rd[10];
    buy(&f.r, s, "b", "r-b", &b);
    run_for(&f.r, 50);
    buy(&f.r, s, "a", "r-a", &a2);
    run_for(&f.r, 50);
    for (int i = 0; i < 10; i++) {
        sk_op_t *op = sk_op_new(SK_OP_ORDERS);
        op->sale = s;
        op->user_len = 1;
        memcpy(op->user_id, "b", 2);
        submit(&f.r, op, &rd[i]);
        run_for(&f.r, 30);
    }
    buy(&f.r, s, "c", "r-c", &c);
    run_for(&f.r, 30);
    buy(&f.r, s, "d", "r-d", &d);
    run_for(&f.r, 100);
    ASSERT_TRUE(!b.done && !a2.done && !c.done && !d.done);
    for (int i = 0; i < 10; i++)
        ASSERT_TRUE(!rd[i].done);
    ASSERT_EQ(sk_sale_sold(s), 1);
    atomic_store(&fail_sync, true);
    atomic_store(&sync_budget, -1);
    ASSERT_TRUE(runner_wait(&f.r));
    ASSERT_EQ(b.result, SK_BUY_UNAVAILABLE);
    ASSERT_EQ(a2.result, SK_BUY_UNAVAILABLE);
    ASSERT_EQ(c.result, SK_BUY_UNAVAILABLE);
    ASSERT_EQ(d.result, SK_BUY_UNAVAILABLE);
    for (int i = 0; i < 10; i++) {
        ASSERT_TRUE(rd[i].status < 0);
        free(rd[i].orders);
    }
    ASSERT_EQ(sk_sale_sold(s), 1);
    ASSERT_TRUE(!sk_sale_is_sold_out(s));
    atomic_store(&fail_sync, false);
    ASSERT_EQ(buy1(&f.r, s, "e", "r-e").result, SK_BUY_UNAVAILABLE);
    fixture_close(&f);
    ASSERT_TRUE(fixture_open(&f, f.dir, 0));
    s = sk_engine_find_sale(f.e, "ring", 4);
    ASSERT_TRUE(s != NULL);
    ASSERT_TRUE(sk_sale_sold(s) <= 3);
    ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_DUPLICATE);
    fixture_destroy(&f);
}

SK_TEST(test_stop_while_batches_wait_for_their_sync)
{
    /* The engine is stopped while purchases wait for a sync that has not begun: with
     * batches of one op, two written batches wait for it; with the default batch, the
     * second purchase waits inside the ledger for the sync before it is written. The
     * stop waits for both, their buyers hear 201, and the orders are there after a
     * restart. */
    for (size_t max_batch = 0; max_batch <= 1; max_batch++) {
        fixture_t f;
        sk_sale_t *s = open_faulty_sale(&f, max_batch, "stop", 5);
        ASSERT_TRUE(s != NULL);
        ASSERT_EQ(buy1(&f.r, s, "a", "r-a").result, SK_BUY_CONFIRMED);
        atomic_store(&sync_budget, 0);
        answer_t b, c;
        buy(&f.r, s, "b", "r-b", &b);
        run_for(&f.r, 50);
        buy(&f.r, s, "c", "r-c", &c);
        run_for(&f.r, 50);
        ASSERT_TRUE(!b.done && !c.done);
        pthread_t t;
        ASSERT_EQ(pthread_create(&t, NULL, release_syncs_later, NULL), 0);
        sk_engine_stop(f.e);
        pthread_join(t, NULL);
        ASSERT_TRUE(runner_wait(&f.r));
        ASSERT_EQ(b.result, SK_BUY_CONFIRMED);
        ASSERT_EQ(c.result, SK_BUY_CONFIRMED);
        fixture_close(&f);
        ASSERT_TRUE(fixture_open(&f, f.dir, 0));
        s = sk_engine_find_sale(f.e, "stop", 4);
        ASSERT_TRUE(s != NULL);
        ASSERT_EQ(sk_sale_sold(s), 3);
        answer_t x = buy1(&f.r, s, "c", "r-c");
        ASSERT_EQ(x.result, SK_BUY_DUPLICATE);
        ASSERT_EQ(x.seq, c.seq);
        fixture_destroy(&f);
    }
}

/* ---- random batches: a restart replays to the state the ledger answered ---------------- */

#define RB_SALES 5
#define RB_ORDERS 256

static uint64_t rb_state;

static int rb(int n)
{
    rb_state ^= rb_state << 13;
    rb_state ^= rb_state >> 7;
    rb_state ^= rb_state << 17;
    return (int)(rb_state % (uint64_t)n);
}

typedef struct {
    uint64_t n; /* orders */
    sk_sale_counts_t c;
    sk_order_t o[RB_ORDERS];
} rb_sale_t;

static const char *const rb_ids[RB_SALES] = {"ra", "rb", "rc", "rd", "re"};

static void rb_snapshot(fixture_t *f, rb_sale_t *out)
{
    for (int k = 0; k < RB_SALES; k++) {
        sk_sale_t *s = sk_engine_find_sale(f->e, rb_ids[k], 2);
        ASSERT_TRUE(s != NULL);
        out[k].n = 0;
        for (uint64_t q = 1; q < RB_ORDERS; q++) {
            answer_t a = get1(&f->r, s, q);
            if (a.status != 0)
                break;
            out[k].o[q] = a.order;
            out[k].n = q;
        }
        out[k].c = counts_of(s);
    }
}

/* Reopens the store and checks every order's state and times, and every sale's counts,
 * against what the ledger answered before (both read at the same clock). */
static void rb_reopen_alike(fixture_t *f, sk_sale_t **ss)
{
    static rb_sale_t before[RB_SALES], after[RB_SALES];
    rb_snapshot(f, before);
    fixture_close(f);
    ASSERT_TRUE(fixture_open_with(f, f->dir, 0, install_both, NULL));
    rb_snapshot(f, after);
    for (int k = 0; k < RB_SALES; k++) {
        ASSERT_EQ(after[k].n, before[k].n);
        ASSERT_EQ(after[k].c.stock, before[k].c.stock);
        ASSERT_EQ(after[k].c.held, before[k].c.held);
        ASSERT_EQ(after[k].c.sold, before[k].c.sold);
        for (uint64_t q = 1; q <= before[k].n; q++) {
            ASSERT_EQ(after[k].o[q].state, before[k].o[q].state);
            ASSERT_EQ(after[k].o[q].created_at, before[k].o[q].created_at);
            ASSERT_EQ(after[k].o[q].paid_at, before[k].o[q].paid_at);
            ASSERT_EQ(after[k].o[q].closed_at, before[k].o[q].closed_at);
            ASSERT_STR_EQ(after[k].o[q].payment_id, before[k].o[q].payment_id);
        }
        ss[k] = sk_engine_find_sale(f->e, rb_ids[k], 2);
    }
}

/* One batch of random ops, most of them held behind a sync so that they are decided
 * together: purchases of 1-3 units, payments received up to 400 ms before or 2.6 s after
 * the ledger's clock (or unstamped), of orders that may not exist yet (some of this
 * batch's own), cancels, refunds, reads and controls; sometimes a failing commit. */
static void rb_batch(fixture_t *f, sk_sale_t **ss, sk_sale_t *hold_sale, int64_t *clock, int round, uint64_t *top)
{
    answer_t hold, ans[32];
    int sale_of[32] = {0};
    bool bought[32] = {0};
    char u[16], r[32];
    bool held = rb(3) != 0;
    if (held) {
        snprintf(u, sizeof(u), "h%d", round);
        ASSERT_TRUE(buy_with_sync_held(f, hold_sale, u, u, &hold));
    }
    int n = 1 + rb(30);
    for (int i = 0; i < n; i++) {
        int k = rb(RB_SALES);
        sk_sale_t *s = ss[k];
        /* Half of them name the next few ids: orders this very batch may make. */
        uint64_t seq = rb(2) ? top[k] + 1 + (uint64_t)rb(3) : 1 + (uint64_t)rb((int)top[k] + 2);
        int kind = rb(100);
        snprintf(u, sizeof(u), "u%d", rb(6));
        sale_of[i] = k;
        if (kind < 30) {
            snprintf(r, sizeof(r), "r%d", rb(40));
            buy_q_at(&f->r, s, u, r, 1 + (uint32_t)rb(3), *clock - rb(50), &ans[i]);
            bought[i] = true;
        } else if (kind < 55) {
            snprintf(r, sizeof(r), "p%d", rb(4));
            if (rb(4)) /* mostly orders that exist */
                seq = 1 + (uint64_t)rb((int)top[k] + 1);
            pay_received(&f->r, s, seq, r, rb(5) ? *clock - rb(400) + (rb(4) ? 0 : 3000) : 0, &ans[i]);
        } else if (kind < 70) {
            order_op(&f->r, SK_OP_CANCEL, s, seq, rb(3) ? u : NULL, &ans[i]);
        } else if (kind < 78) {
            order_op(&f->r, SK_OP_REFUND, s, seq, NULL, &ans[i]);
        } else if (kind < 82) {
            order_op(&f->r, SK_OP_GET_ORDER, s, seq, NULL, &ans[i]);
        } else {
            sk_control_t c = {0};
            int a = rb(12);
            if (a == 0)
                c.action = SK_CTL_PAUSE;
            else if (a == 1)
                c.action = SK_CTL_RESUME;
            else if (a == 2)
                c.action = rb(8) ? SK_CTL_RESUME : SK_CTL_CLOSE;
            else if (a <= 4)
                c = (sk_control_t){.action = SK_CTL_ADD_STOCK, .amount = 1 + rb(3)};
            else if (a <= 7)
                c = (sk_control_t){.action = SK_CTL_REMOVE_STOCK, .amount = 1 + rb(3)};
            else if (a == 8)
                c = (sk_control_t){.action = SK_CTL_PATCH,
                                   .set = SK_PATCH_PAYMENT_WINDOW,
                                   .payment_window_ms = rb(2) ? 0 : 100 + rb(300)};
            else if (a == 9)
                c = (sk_control_t){.action = SK_CTL_PATCH,
                                   .set = SK_PATCH_PER_USER_LIMIT | SK_PATCH_MAX_QUANTITY,
                                   .per_user_limit = 1 + rb(4),
                                   .max_quantity = 1};
            else
                c = (sk_control_t){.action = SK_CTL_PATCH, .set = SK_PATCH_ENDS_AT, .ends_at = *clock + 50 + rb(3000)};
            snprintf(r, sizeof(r), "c%d-%d", round, i);
            control(&f->r, s, &c, rb(10) ? r : "again", &ans[i]);
        }
        if (rb(4) == 0)
            *clock += rb(150);
        atomic_store(&fake_now, *clock);
    }
    int fault = rb(20);
    if (fault < 2)
        faults(fault == 0, fault == 1, false);
    run_for(&f->r, 5);
    *clock += rb(200);
    atomic_store(&fake_now, *clock);
    atomic_store(&sync_budget, -1);
    ASSERT_TRUE(runner_wait(&f->r));
    no_faults();
    for (int i = 0; i < n; i++)
        if (bought[i] && ans[i].seq > top[sale_of[i]])
            top[sale_of[i]] = ans[i].seq;
}

SK_TEST(test_random_batches_replay_alike)
{
    /* SK_REPLAY_SEED and SK_REPLAY_RUNS run it longer (a fixed seed by default). */
    const char *seed = getenv("SK_REPLAY_SEED"), *runs = getenv("SK_REPLAY_RUNS");
    rb_state = seed ? strtoull(seed, NULL, 10) | 1u : 88172645463325252ull;
    int n_runs = runs ? atoi(runs) : 3;
    for (int run = 0; run < n_runs; run++) {
        int64_t t0 = sk_now_ms(), clock = t0;
        atomic_store(&fake_now, clock);
        no_faults();
        fixture_t f = {0};
        ASSERT_TRUE(fixture_open_with(&f, NULL, 0, install_both, NULL));
        sk_sale_t *ss[RB_SALES], *hold_sale = NULL;
        ss[0] = window_sale(&f.r, "ra", 8, 3, 3, 3000);
        ss[1] = window_sale(&f.r, "rb", 5, 2, 2, 0);
        ss[2] = window_sale(&f.r, "rc", 4, 4, 2, 2000);
        ASSERT_EQ(create_sale(&f.r, new_sale_ex("rd", 6, t0 - 1000, t0 + HOUR_MS, 3, 3, 0), &ss[3]), 0);
        ASSERT_EQ(create_sale(&f.r, new_sale_ex("re", 6, t0 - 1000, t0 + 15000, 3, 3, 2500), &ss[4]), 0);
        ASSERT_EQ(create_sale(&f.r, new_sale_ex("hold", 1000000, t0 - 1000, t0 + HOUR_MS, 1, 1, 0), &hold_sale), 0);
        uint64_t top[RB_SALES] = {0};
        for (int round = 0; round < 30; round++) {
            rb_batch(&f, ss, hold_sale, &clock, round, top);
            if (round % 10 == 9) {
                rb_reopen_alike(&f, ss);
                hold_sale = sk_engine_find_sale(f.e, "hold", 4);
            }
        }
        fixture_destroy(&f);
    }
}

SK_TEST_MAIN(
    SK_RUN(test_commit_failed_after_reaching_the_disk); SK_RUN(test_commit_failed_before_the_disk);
    SK_RUN(test_sync_failed); SK_RUN(test_sync_failed_shows_nothing); SK_RUN(test_sale_shown_once_durable);
    SK_RUN(test_sale_created_once_durable); SK_RUN(test_sales_seen_whole_by_other_threads);
    SK_RUN(test_sale_write_reported_failed); SK_RUN(test_sale_in_doubt_while_a_sync_runs);
    SK_RUN(test_small_batch_waits_for_the_sync_and_grows); SK_RUN(test_payment_waits_for_the_sync_judged_by_receipt);
    SK_RUN(test_commit_in_doubt_published_once_durable); SK_RUN(test_settings_published_as_their_batch_left_them);
    SK_RUN(test_queue_published_without_counts_in_doubt); SK_RUN(test_outcome_unknown_until_the_journal_answers);
    SK_RUN(test_undo_across_a_page_and_a_doubling); SK_RUN(test_one_user_100000_orders);
    SK_RUN(test_lifecycle_transitions); SK_RUN(test_payment_judged_by_when_it_was_received);
    SK_RUN(test_payment_on_its_way_holds_its_expiry); SK_RUN(test_payment_being_stamped_holds_expiries);
    SK_RUN(test_payment_behind_a_later_stamp_is_held); SK_RUN(test_payment_on_its_way_beside_one_in_the_batch);
    SK_RUN(test_late_payment_waits_also_when_stopping); SK_RUN(test_looking_again_while_held_keeps_the_pipeline);
    SK_RUN(test_transition_of_an_order_of_its_own_batch); SK_RUN(test_store_with_a_transition_ahead_of_its_order_opens);
    SK_RUN(test_random_batches_replay_alike); SK_RUN(test_expiry_in_deadline_order);
    SK_RUN(test_writer_wakes_for_deadlines); SK_RUN(test_transition_commit_in_doubt);
    SK_RUN(test_gate_while_reservations_pending); SK_RUN(test_many_orders_without_request_ids);
    SK_RUN(test_pause_between_two_purchases_of_one_batch); SK_RUN(test_stock_between_purchases_of_one_batch);
    SK_RUN(test_close_and_patch); SK_RUN(test_trail_and_orders_agree_after_a_clock_step);
    SK_RUN(test_control_after_a_clock_step_replays); SK_RUN(test_control_replays_by_request_id);
    SK_RUN(test_control_commit_in_doubt); SK_RUN(test_quantities_at_every_limit);
    SK_RUN(test_sync_fails_with_the_ring_full); SK_RUN(test_stop_while_batches_wait_for_their_sync);)
