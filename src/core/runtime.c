/* The embedded local runtime: start-up and shutdown, worker threads, finding work (own deque, external
 * submitters' queues, stealing), parking idle workers on a futex and waking them, thread contexts. */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

_Thread_local dray__tls dray__tls_slot;

/* Runtime ids let a thread tell a live runtime from a freed one at the same address. */
static _Atomic uint64_t next_runtime_id = 1;

#define SPIN_ROUNDS 16   /* rounds of looking for work before a worker parks (~10 us) */
#define BATCH_CLAIM 64   /* most tasks taken from an external submitter at once */

/* ==== Futex and time ==== */

void dray__futex_wait(_Atomic uint32_t *addr, uint32_t val, const struct timespec *timeout)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, timeout, NULL, 0);
}

void dray__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

int64_t dray__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* ==== Thread contexts ==== */

static dray__producer *producer_for(dray_runtime *rt)
{
    dray__tls *tls = &dray__tls_slot;
    if (tls->rt == rt && tls->rt_id == rt->id && tls->producer)
        return tls->producer;
    pthread_t self = pthread_self();
    dray__producer *p = atomic_load_explicit(&rt->producers, memory_order_acquire);
    for (; p; p = p->next)
        if (pthread_equal(p->thread, self))
            break;
    if (!p) {
        p = aligned_alloc(DRAY__CACHE_LINE, sizeof(*p));
        if (!p)
            return NULL;
        memset(p, 0, sizeof(*p));
        if (dray__deque_init(&p->deque, 1024)) {
            free(p);
            return NULL;
        }
        p->thread = self;
        p->next = atomic_load_explicit(&rt->producers, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(&rt->producers, &p->next, p,
                                                      memory_order_release,
                                                      memory_order_relaxed))
            ;
    }
    tls->rt = rt;
    tls->rt_id = rt->id;
    tls->worker = NULL;
    tls->producer = p;
    return p;
}

dray__counters *dray__thread_counters(dray_runtime *rt)
{
    dray__tls *tls = &dray__tls_slot;
    if (tls->rt == rt && tls->rt_id == rt->id) {
        if (tls->worker)
            return &tls->worker->c;
        if (tls->producer)
            return &tls->producer->c;
    }
    dray__producer *p = producer_for(rt);
    return p ? &p->c : NULL;
}

dray__cell_cache *dray__thread_cache(dray_runtime *rt)
{
    dray__tls *tls = &dray__tls_slot;
    if (tls->rt == rt && tls->rt_id == rt->id) {
        if (tls->worker)
            return &tls->worker->cache;
        if (tls->producer)
            return &tls->producer->cache;
    }
    dray__producer *p = producer_for(rt);
    return p ? &p->cache : NULL;
}

/* The worker of rt running on this thread, or NULL. */
static inline dray__worker *current_worker(dray_runtime *rt)
{
    dray__tls *tls = &dray__tls_slot;
    return tls->worker && tls->worker->rt == rt && tls->rt_id == rt->id ? tls->worker : NULL;
}

/* ==== Scheduling ==== */

void dray__wake(dray_runtime *rt, int n)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&rt->sleepers, memory_order_relaxed) > 0) {
        atomic_fetch_add_explicit(&rt->epoch, 1, memory_order_seq_cst);
        dray__futex_wake(&rt->epoch, n);
    }
}

void dray__schedule(dray_runtime *rt, dray_ref *c)
{
    dray__worker *w = current_worker(rt);
    dray_status st;
    if (w) {
        st = dray__deque_push(&w->deque, c);
    } else {
        dray__producer *p = producer_for(rt);
        st = p ? dray__deque_push(&p->deque, c)
               : dray_set_error(DRAY_ENOMEM, "out of memory creating a thread context");
    }
    if (st) {
        /* Could not queue it: it fails rather than vanishing. */
        dray_value err = dray_null();
        dray_error_create(st, c->fn ? c->fn->name : "", "could not be queued: out of memory",
                          -1, NULL, &err);
        dray__cell_drop_values(c);
        dray__complete(rt, c, st, err, NULL);
        return;
    }
    dray__wake(rt, 1);
}

/* Takes work for worker w (or an external helper when w is NULL): external submitters' queues first,
 * in batches, then stealing from other workers. */
static dray_ref *find_work(dray_runtime *rt, dray__worker *w)
{
    dray_ref *batch[BATCH_CLAIM];
    for (dray__producer *p = atomic_load_explicit(&rt->producers, memory_order_acquire); p;
         p = p->next) {
        int64_t avail = dray__deque_size(&p->deque);
        if (avail <= 0)
            continue;
        size_t want = w ? (size_t)(avail / rt->nworkers) : 1;
        if (want < 1)
            want = 1;
        if (want > BATCH_CLAIM)
            want = BATCH_CLAIM;
        size_t n = dray__deque_steal_batch(&p->deque, batch, want);
        if (!n)
            continue;
        for (size_t i = n; i-- > 1;)
            if (dray__deque_push(&w->deque, batch[i])) {
                /* No room: run it now rather than lose it. */
                dray_ref *c = batch[i];
                while ((c = dray__run_cell(rt, w, c)))
                    ;
            }
        return batch[0];
    }
    int nslots = atomic_load_explicit(&rt->nslots, memory_order_acquire);
    if (nslots <= 1 && w)
        return NULL;
    uint64_t x = w ? (w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull)
                   : (uint64_t)dray__now_ns();
    int start = (int)((x >> 33) % (uint64_t)nslots);
    for (int i = 0; i < nslots; i++) {
        dray__worker *v = &rt->workers[(start + i) % nslots];
        if (v == w || !v->started)
            continue;
        dray_ref *c = dray__deque_steal(&v->deque);
        if (c) {
            if (w)
                dray__count(&w->c.stolen, 1);
            return c;
        }
    }
    return NULL;
}

static bool any_work(dray_runtime *rt)
{
    for (dray__producer *p = atomic_load_explicit(&rt->producers, memory_order_acquire); p;
         p = p->next)
        if (dray__deque_size(&p->deque) > 0)
            return true;
    int nslots = atomic_load_explicit(&rt->nslots, memory_order_acquire);
    for (int i = 0; i < nslots; i++)
        if (rt->workers[i].started && dray__deque_size(&rt->workers[i].deque) > 0)
            return true;
    return false;
}

bool dray__find_work_and_run(dray_runtime *rt, dray__worker *w)
{
    dray_ref *c = w ? dray__deque_pop(&w->deque) : NULL;
    if (!c)
        c = find_work(rt, w);
    if (!c)
        return false;
    while ((c = dray__run_cell(rt, w, c)))
        ;
    return true;
}

/* Parks the calling worker until new work may be there. */
static void park(dray_runtime *rt)
{
    atomic_fetch_add_explicit(&rt->sleepers, 1, memory_order_seq_cst);
    uint32_t e = atomic_load_explicit(&rt->epoch, memory_order_seq_cst);
    if (!any_work(rt) && !atomic_load_explicit(&rt->stopping, memory_order_acquire))
        dray__futex_wait(&rt->epoch, e, NULL);
    atomic_fetch_sub_explicit(&rt->sleepers, 1, memory_order_seq_cst);
}

static void *worker_main(void *arg)
{
    dray__worker *w = arg;
    dray_runtime *rt = w->rt;
    dray__tls *tls = &dray__tls_slot;
    tls->rt = rt;
    tls->rt_id = rt->id;
    tls->worker = w;
    tls->producer = NULL;
    int idle = 0;
    while (!atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
        if (dray__find_work_and_run(rt, w)) {
            idle = 0;
            continue;
        }
        /* Out of work for ~10 us: close this worker's task block (shorter gaps stay inside it). */
        if (++idle == SPIN_ROUNDS && atomic_load_explicit(&rt->events, memory_order_relaxed))
            dray__ev_idle(rt, w->ev);
        if (idle < SPIN_ROUNDS) {
            for (int i = 0; i < 32; i++)
                cpu_relax();
            continue;
        }
        if (idle < SPIN_ROUNDS + 4) {
            sched_yield();
            continue;
        }
        park(rt);
        idle = 0;
    }
    return NULL;
}

static dray_status start_worker(dray_runtime *rt, int i)
{
    dray__worker *w = &rt->workers[i];
    w->rt = rt;
    w->index = i;
    w->rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    dray_status st = dray__deque_init(&w->deque, 4096);
    if (st)
        return st;
    int err = pthread_create(&w->thread, NULL, worker_main, w);
    if (err) {
        dray__deque_fini(&w->deque);
        return dray_set_error(DRAY_ENOMEM, "could not start worker thread %d: %s", i,
                              strerror(err));
    }
    w->started = true;
    return DRAY_OK;
}

/* Called by a worker about to block without helping: keeps the pool's parallelism by starting a spare
 * worker when every regular one is blocked. */
void dray__worker_blocking(dray_runtime *rt, int delta)
{
    int blocked = atomic_fetch_add_explicit(&rt->blocked, delta, memory_order_acq_rel) + delta;
    if (delta <= 0)
        return;
    int nslots = atomic_load_explicit(&rt->nslots, memory_order_acquire);
    if (nslots - blocked >= rt->nworkers)
        return;
    pthread_mutex_lock(&rt->lock);
    nslots = atomic_load_explicit(&rt->nslots, memory_order_relaxed);
    blocked = atomic_load_explicit(&rt->blocked, memory_order_relaxed);
    if (nslots - blocked < rt->nworkers && nslots < rt->nworkers + DRAY__MAX_SPARES &&
        !atomic_load_explicit(&rt->stopping, memory_order_relaxed)) {
        if (start_worker(rt, nslots) == DRAY_OK)
            atomic_store_explicit(&rt->nslots, nslots + 1, memory_order_release);
    }
    pthread_mutex_unlock(&rt->lock);
}

/* ==== Life cycle ==== */

void dray_config_init(dray_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->progress = -1;
}

static int default_workers(void)
{
    const char *env = getenv("DRAY_NUM_WORKERS");
    if (env && atoi(env) > 0)
        return atoi(env);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

dray_status dray_init(const dray_config *cfg, dray_runtime **out)
{
    dray_config defaults;
    if (!out)
        return dray_set_error(DRAY_EINVAL, "dray_init: out is NULL");
    if (!cfg) {
        dray_config_init(&defaults);
        cfg = &defaults;
    }
    if (cfg->num_workers < 0 || cfg->num_workers > 4096)
        return dray_set_error(DRAY_EINVAL, "dray_init: num_workers %d is out of range 0..4096",
                              cfg->num_workers);
    if (dray__cluster_worker_from_env)
        dray__cluster_worker_from_env();
    const char *address = cfg->address ? cfg->address : getenv("DRAY_ADDRESS");
    struct dray__launch *launch = NULL;
    if (!address && dray__cluster_launch) {
        dray_status lst = dray__cluster_launch(&launch, &address);
        if (lst)
            return lst;
    }
    if (address && *address && !dray__cluster_attach)
        return dray_set_error(DRAY_EUNSUPPORTED,
                              "dray_init: cluster address '%s' given, but this build has only "
                              "the embedded local runtime",
                              address);
    dray_status st = DRAY_ENOMEM;
    dray_runtime *rt = aligned_alloc(DRAY__CACHE_LINE,
                                     (sizeof(*rt) + DRAY__CACHE_LINE - 1) & ~(size_t)63);
    if (!rt) {
        if (launch)
            dray__cluster_launch_finish(launch);
        return dray_set_error(DRAY_ENOMEM, "out of memory creating the runtime");
    }
    memset(rt, 0, sizeof(*rt));
    rt->launch = launch;
    rt->id = atomic_fetch_add(&next_runtime_id, 1);
    rt->nworkers = cfg->num_workers ? cfg->num_workers : default_workers();
    rt->progress = cfg->progress;
    rt->memory_limit = cfg->memory_limit;
    pthread_mutex_init(&rt->lock, NULL);
    size_t slots = (size_t)rt->nworkers + DRAY__MAX_SPARES;
    rt->workers = aligned_alloc(DRAY__CACHE_LINE, slots * sizeof(dray__worker));
    if (!rt->workers) {
        dray_set_error(DRAY_ENOMEM, "out of memory creating %d workers", rt->nworkers);
        goto out_free_rt;
    }
    memset(rt->workers, 0, slots * sizeof(dray__worker));
    if ((st = dray__fn_table_build(rt)))
        goto out_free_workers;
    if ((st = dray__resources_init(rt, cfg)))
        goto out_free_fns;
    for (int i = 0; i < rt->nworkers; i++) {
        if ((st = start_worker(rt, i))) {
            atomic_store(&rt->nslots, i);
            dray_shutdown(rt, DRAY_SHUTDOWN_CANCEL);
            return st;
        }
    }
    atomic_store_explicit(&rt->nslots, rt->nworkers, memory_order_release);
    if (address && *address && (st = dray__cluster_attach(rt, address))) {
        dray_shutdown(rt, DRAY_SHUTDOWN_CANCEL);
        return st;
    }
    *out = rt;
    return DRAY_OK;
out_free_fns:
    dray__fn_table_free(rt);
out_free_workers:
    free(rt->workers);
out_free_rt:
    if (rt->launch)
        dray__cluster_launch_finish(rt->launch);
    pthread_mutex_destroy(&rt->lock);
    free(rt);
    return st;
}

int dray_runtime_num_workers(const dray_runtime *rt)
{
    return rt ? rt->nworkers : 0;
}

size_t dray_runtime_memory_limit(const dray_runtime *rt)
{
    return rt ? rt->memory_limit : 0;
}

static void sum_counters(dray_stats *s, const dray__counters *c)
{
#define ADD(f) atomic_load_explicit(&c->f, memory_order_relaxed)
    s->tasks_submitted += ADD(submitted);
    s->tasks_finished += ADD(finished);
    s->tasks_failed += ADD(failed);
    s->tasks_retried += ADD(retried);
    s->tasks_canceled += ADD(canceled);
    s->tasks_stolen += ADD(stolen);
    s->actor_calls += ADD(actor_calls);
    s->objects_live += ADD(allocs);
    s->objects_live -= ADD(frees);
#undef ADD
}

dray_status dray_runtime_stats(dray_runtime *rt, dray_stats *out)
{
    if (!rt || !out)
        return dray_set_error(DRAY_EINVAL, "dray_runtime_stats: NULL argument");
    dray_stats s;
    memset(&s, 0, sizeof s);
    /* Frees are read before allocations so a concurrent pair never shows as negative. */
    int nslots = atomic_load_explicit(&rt->nslots, memory_order_acquire);
    for (int i = 0; i < nslots; i++)
        sum_counters(&s, &rt->workers[i].c);
    for (dray__producer *p = atomic_load_explicit(&rt->producers, memory_order_acquire); p;
         p = p->next)
        sum_counters(&s, &p->c);
    s.objects_live -= atomic_load_explicit(&rt->orphan_frees, memory_order_relaxed);
    if ((int64_t)s.objects_live < 0)
        s.objects_live = 0;
    s.actors_live = (uint64_t)atomic_load_explicit(&rt->actors_live, memory_order_relaxed);
    s.num_workers = rt->nworkers;
    *out = s;
    return DRAY_OK;
}

/* True when every submitted task has finished. */
static bool quiescent(dray_runtime *rt)
{
    dray_stats s;
    dray_runtime_stats(rt, &s);
    return s.tasks_finished >= s.tasks_submitted && !any_work(rt);
}

dray_status dray_shutdown(dray_runtime *rt, dray_shutdown_mode mode)
{
    if (!rt)
        return dray_set_error(DRAY_EINVAL, "dray_shutdown: runtime is NULL");
    if (current_worker(rt))
        return dray_set_error(DRAY_EINVAL, "dray_shutdown: called from inside a task");
    if (mode == DRAY_SHUTDOWN_CANCEL)
        atomic_store(&rt->canceling, 1);
    if (rt->cluster && mode == DRAY_SHUTDOWN_CANCEL)
        dray__cluster_detach(rt);
    /* Drain: this thread helps run what is queued, then waits for running tasks. */
    int quiet_rounds = 0;
    while (quiet_rounds < 2) {
        if (atomic_load(&rt->nslots) == 0 || !dray__find_work_and_run(rt, NULL)) {
            if (quiescent(rt))
                quiet_rounds++;
            else {
                quiet_rounds = 0;
                struct timespec ts = {0, 200000};
                nanosleep(&ts, NULL);
            }
        }
        if (atomic_load(&rt->nslots) == 0)
            break;
    }
    if (rt->cluster)
        dray__cluster_detach(rt);
    if (rt->launch)
        dray__cluster_launch_finish(rt->launch);
    rt->launch = NULL;
    dray__events_stop(rt); /* the dashboard, while the workers still run */
    atomic_store(&rt->stopping, 1);
    atomic_fetch_add(&rt->epoch, 1);
    dray__futex_wake(&rt->epoch, INT32_MAX);
    int nslots = atomic_load(&rt->nslots);
    for (int i = 0; i < nslots; i++)
        if (rt->workers[i].started)
            pthread_join(rt->workers[i].thread, NULL);
    dray__events_free(rt);
    /* Cells first: their values may point into anything else. */
    dray__slabs_destroy(rt);
    dray__actors_destroy(rt);
    dray__method_names_free(rt);
    for (int i = 0; i < nslots; i++)
        if (rt->workers[i].started)
            dray__deque_fini(&rt->workers[i].deque);
    dray__producer *p = atomic_load(&rt->producers);
    while (p) {
        dray__producer *next = p->next;
        dray__deque_fini(&p->deque);
        free(p);
        p = next;
    }
    dray__tls *tls = &dray__tls_slot;
    if (tls->rt == rt)
        memset(tls, 0, sizeof(*tls));
    dray__resources_fini(rt);
    dray__fn_table_free(rt);
    free(rt->workers);
    pthread_mutex_destroy(&rt->lock);
    free(rt);
    return DRAY_OK;
}
