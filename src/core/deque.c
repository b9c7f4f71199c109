/* Work-stealing deque (Chase-Lev, with the C11 orderings of Le, Pop, Cohen and Zappa Nardelli,
 * "Correct and Efficient Work-Stealing for Weak Memory Models", PPoPP 2013). The owner pushes and pops
 * at the bottom; thieves take from the top. Rings grow by doubling; old rings are kept until the
 * deque is destroyed because a thief may still be reading one. */
#include <string.h>

#include "internal.h"

static dray__ring *ring_new(size_t cap)
{
    dray__ring *r = malloc(sizeof(*r) + cap * sizeof(r->slot[0]));
    if (!r)
        return NULL;
    r->mask = cap - 1;
    r->retired = NULL;
    return r;
}

dray_status dray__deque_init(dray__deque *q, size_t cap)
{
    dray__ring *r = ring_new(cap);
    if (!r)
        return dray_set_error(DRAY_ENOMEM, "out of memory creating a work queue");
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    atomic_init(&q->ring, r);
    return DRAY_OK;
}

void dray__deque_fini(dray__deque *q)
{
    dray__ring *r = atomic_load_explicit(&q->ring, memory_order_relaxed);
    while (r) {
        dray__ring *old = r->retired;
        free(r);
        r = old;
    }
    atomic_store_explicit(&q->ring, NULL, memory_order_relaxed);
}

static dray__ring *ring_grow(dray__deque *q, dray__ring *r, int64_t t, int64_t b)
{
    dray__ring *n = ring_new(2 * (r->mask + 1));
    if (!n)
        return NULL;
    for (int64_t i = t; i < b; i++)
        atomic_store_explicit(&n->slot[i & n->mask],
                              atomic_load_explicit(&r->slot[i & r->mask], memory_order_relaxed),
                              memory_order_relaxed);
    n->retired = r;
    atomic_store_explicit(&q->ring, n, memory_order_release);
    return n;
}

dray_status dray__deque_push(dray__deque *q, dray_ref *c)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    dray__ring *r = atomic_load_explicit(&q->ring, memory_order_relaxed);
    if (b - t > (int64_t)r->mask) {
        r = ring_grow(q, r, t, b);
        if (!r)
            return dray_set_error(DRAY_ENOMEM, "out of memory growing a work queue");
    }
    atomic_store_explicit(&r->slot[b & r->mask], c, memory_order_relaxed);
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release);
    return DRAY_OK;
}

dray_ref *dray__deque_pop(dray__deque *q)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed) - 1;
    dray__ring *r = atomic_load_explicit(&q->ring, memory_order_relaxed);
    atomic_store_explicit(&q->bottom, b, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    dray_ref *c = NULL;
    if (t <= b) {
        c = atomic_load_explicit(&r->slot[b & r->mask], memory_order_relaxed);
        if (t == b) {
            if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1,
                                                         memory_order_seq_cst,
                                                         memory_order_relaxed))
                c = NULL;
            atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
        }
    } else {
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
    }
    return c;
}

dray_ref *dray__deque_steal(dray__deque *q)
{
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_acquire);
    if (t >= b)
        return NULL;
    dray__ring *r = atomic_load_explicit(&q->ring, memory_order_acquire);
    dray_ref *c = atomic_load_explicit(&r->slot[t & r->mask], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return NULL;
    return c;
}

size_t dray__deque_steal_batch(dray__deque *q, dray_ref **out, size_t max)
{
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_acquire);
    if (t >= b)
        return 0;
    size_t n = (size_t)(b - t);
    if (n > max)
        n = max;
    dray__ring *r = atomic_load_explicit(&q->ring, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        out[i] = atomic_load_explicit(&r->slot[(t + (int64_t)i) & r->mask],
                                      memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + (int64_t)n,
                                                 memory_order_seq_cst, memory_order_relaxed))
        return 0;
    return n;
}
