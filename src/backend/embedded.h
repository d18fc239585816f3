/* The embedded backend: the default, no other process. One ledger thread decides every
 * purchase and order transition in memory, expires reservations at their deadlines, and
 * journals each batch in one SQLite transaction (src/backend/journal.h) before any of
 * its answers leaves. */
#ifndef SK_BACKEND_EMBEDDED_H
#define SK_BACKEND_EMBEDDED_H

#include <stddef.h>

#include "backend/journal.h"
#include "engine/backend.h"

/** Creates the embedded backend with its journal in data_dir (opened and locked in
 *  load). max_batch bounds the purchases decided per commit. The engine owns the result. */
sk_backend_t *sk_backend_embedded_new(const char *data_dir, size_t max_batch);

/** Test seam: installs a fault hook in the ledger's journal (sk_journal_set_fault). Call
 *  it after the engine loaded the backend (sk_engine_open) and before sk_engine_start. */
void sk_backend_embedded_set_fault(sk_backend_t *b, bool (*fn)(void *arg, sk_journal_fault_t at), void *arg);

/** Test seam: the ledger's clock (unix ms), read once per batch, and the clock payments
 *  are stamped by at submit; NULL restores the wall clock. Call it before
 *  sk_engine_start (or the load, to close ended sales by it); fn runs on the ledger
 *  thread and on the workers. */
void sk_backend_embedded_set_clock(sk_backend_t *b, int64_t (*fn)(void *arg), void *arg);

#endif
