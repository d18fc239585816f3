/* An intrusive multi-producer single-consumer queue (Dmitry Vyukov's design): push is
 * one atomic exchange and never blocks; pop belongs to one consumer thread. The node is
 * embedded in the producer's item; ownership passes to the consumer at push. */
#ifndef SK_UTIL_MPSC_H
#define SK_UTIL_MPSC_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct sk_mpsc_node {
    _Atomic(struct sk_mpsc_node *) next;
} sk_mpsc_node_t;

typedef struct {
    _Atomic(sk_mpsc_node_t *) head; /* producers push here */
    sk_mpsc_node_t *tail; /* the consumer pops here */
    sk_mpsc_node_t stub;
} sk_mpsc_t;

static inline void sk_mpsc_init(sk_mpsc_t *q)
{
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->head, &q->stub);
    q->tail = &q->stub;
}

/** Any thread. */
static inline void sk_mpsc_push(sk_mpsc_t *q, sk_mpsc_node_t *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    sk_mpsc_node_t *prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/** Consumer only. Returns NULL when empty, or (rarely, briefly) when a producer is in
 *  the middle of a push; that producer's wake-up follows, so the consumer looks again. */
static inline sk_mpsc_node_t *sk_mpsc_pop(sk_mpsc_t *q)
{
    sk_mpsc_node_t *tail = q->tail;
    sk_mpsc_node_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (!next)
            return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
        return NULL;
    sk_mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

#endif
