/* Cell allocation: cells live in 64 KiB slabs owned by the runtime. Each thread keeps a free list of
 * cells (its cache) and trades batches with the runtime's shared pool, so allocation and freeing take
 * no lock and no atomic on the fast path. dray_shutdown frees every slab at once. */
#include <string.h>

#include "internal.h"

#define SLAB_SIZE (64 * 1024)
#define BATCH 256

typedef struct slab {
    dray_runtime *rt;
    struct slab *next;
    size_t used; /* cells handed out from this slab so far */
} slab;

#define CELL_STRIDE ((sizeof(dray_ref) + 15) & ~(size_t)15)
#define FIRST_CELL ((sizeof(slab) + 15) & ~(size_t)15)
#define CELLS_PER_SLAB ((SLAB_SIZE - FIRST_CELL) / CELL_STRIDE)

static inline dray_ref *slab_cell(slab *s, size_t i)
{
    return (dray_ref *)((char *)s + FIRST_CELL + i * CELL_STRIDE);
}

dray_runtime *dray__cell_runtime(const dray_ref *c)
{
    return ((slab *)((uintptr_t)c & ~(uintptr_t)(SLAB_SIZE - 1)))->rt;
}

/* Refills `cache` with a batch from the shared pool or a new slab. Called with nothing held. */
static dray_status cache_refill(dray_runtime *rt, dray__cell_cache *cache)
{
    pthread_mutex_lock(&rt->lock);
    dray_ref *batch = rt->free_batches;
    if (batch) {
        rt->free_batches = (dray_ref *)batch->extra;
        rt->free_cells -= BATCH;
        pthread_mutex_unlock(&rt->lock);
        cache->head = batch;
        cache->count = BATCH;
        return DRAY_OK;
    }
    if (rt->orphans) {
        cache->head = rt->orphans;
        cache->count = rt->n_orphans;
        rt->orphans = NULL;
        rt->n_orphans = 0;
        pthread_mutex_unlock(&rt->lock);
        return DRAY_OK;
    }
    pthread_mutex_unlock(&rt->lock);
    slab *s = aligned_alloc(SLAB_SIZE, SLAB_SIZE);
    if (!s)
        return dray_set_error(DRAY_ENOMEM, "out of memory allocating task cells");
    s->rt = rt;
    s->used = CELLS_PER_SLAB;
    dray_ref *head = cache->head;
    for (size_t i = CELLS_PER_SLAB; i-- > 0;) {
        dray_ref *c = slab_cell(s, i);
        c->kind = DRAY__CELL_FREE;
        c->next = head;
        head = c;
    }
    cache->head = head;
    cache->count += CELLS_PER_SLAB;
    pthread_mutex_lock(&rt->lock);
    s->next = rt->slabs;
    rt->slabs = s;
    pthread_mutex_unlock(&rt->lock);
    return DRAY_OK;
}

dray_status dray__cell_alloc(dray_runtime *rt, dray_ref **out)
{
    dray__cell_cache *cache = dray__thread_cache(rt);
    if (!cache)
        return dray_set_error(DRAY_ENOMEM, "out of memory creating a thread context");
    if (!cache->head) {
        dray_status st = cache_refill(rt, cache);
        if (st)
            return st;
    }
    dray_ref *c = cache->head;
    cache->head = c->next;
    cache->count--;
    dray__count(&dray__thread_counters(rt)->allocs, 1);
    *out = c;
    return DRAY_OK;
}

/* Moves batches beyond 2*BATCH from the cache to the shared pool. */
static void cache_trim(dray_runtime *rt, dray__cell_cache *cache)
{
    while (cache->count > 2 * BATCH) {
        dray_ref *first = cache->head, *last = first;
        for (size_t i = 1; i < BATCH; i++)
            last = last->next;
        cache->head = last->next;
        cache->count -= BATCH;
        last->next = NULL;
        pthread_mutex_lock(&rt->lock);
        first->extra = (struct dray__task_extra *)rt->free_batches;
        rt->free_batches = first;
        rt->free_cells += BATCH;
        pthread_mutex_unlock(&rt->lock);
    }
}

void dray__cell_free(dray_ref *c)
{
    dray_runtime *rt = dray__cell_runtime(c);
    c->kind = DRAY__CELL_FREE;
    dray__tls *tls = &dray__tls_slot;
    dray__cell_cache *cache = NULL;
    dray__counters *cnt = NULL;
    if (tls->rt == rt && tls->rt_id == rt->id) {
        if (tls->worker) {
            cache = &tls->worker->cache;
            cnt = &tls->worker->c;
        } else if (tls->producer) {
            cache = &tls->producer->cache;
            cnt = &tls->producer->c;
        }
    }
    if (cache) {
        c->next = cache->head;
        cache->head = c;
        cache->count++;
        dray__count(&cnt->frees, 1);
        if (cache->count > 4 * BATCH)
            cache_trim(rt, cache);
        return;
    }
    /* A thread without a context for this runtime (it never submitted): the shared orphan list. */
    atomic_fetch_add_explicit(&rt->orphan_frees, 1, memory_order_relaxed);
    pthread_mutex_lock(&rt->lock);
    c->next = rt->orphans;
    rt->orphans = c;
    rt->n_orphans++;
    pthread_mutex_unlock(&rt->lock);
}

/* Releases the values still held by live cells (refs the user never released, canceled work) and
 * frees every slab. Runs at shutdown with all threads stopped. */
void dray__slabs_destroy(dray_runtime *rt)
{
    for (slab *s = rt->slabs; s; s = s->next)
        for (size_t i = 0; i < s->used; i++) {
            dray_ref *c = slab_cell(s, i);
            if (c->kind != DRAY__CELL_FREE)
                dray__cell_drop_values(c);
        }
    slab *s = rt->slabs;
    while (s) {
        slab *next = s->next;
        free(s);
        s = next;
    }
    rt->slabs = NULL;
    rt->free_batches = NULL;
    rt->orphans = NULL;
    rt->n_orphans = 0;
}
