/* Internals of the core module shared by its files: cells (a task and its result object in one),
 * the per-thread contexts, queues and the runtime object. Nothing here is public API. */
#ifndef DRAY_CORE_INTERNAL_H
#define DRAY_CORE_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "dray/core.h"

#define DRAY__CACHE_LINE 64

/* ==== Errors ==== */
dray_status dray__set_errorv(dray_status st, const char *fmt, va_list ap);
void dray__clear_error(void);

/* ==== Blobs: the heap part of values ==== */
struct dray__blob {
    _Atomic uint32_t refs;
    uint32_t type; /* dray_type */
    size_t len;    /* bytes: length; string: length without NUL; list/map: entries */
};

/* Error payload, stored after the blob header of a DRAY_T_ERROR value. */
typedef struct dray__error {
    dray__blob hdr;
    dray_status status;
    int arg_index;
    dray_value cause; /* DRAY_T_ERROR or null */
    const char *function;
    const char *message;
    /* strings follow */
} dray__error;

/* ==== Cells ====
 * A cell is a task and the object holding its result, or a put object. Refs are pointers to cells.
 * Completion is a single exchange of `dependents` to DRAY__CLOSED: before it the cell is pending, after
 * it `status` and `result` are final. Edges on the list are dependent tasks (deps_left is decremented)
 * or waiters (woken). Cells come from the runtime's slabs (slab.c). */
typedef struct dray__edge {
    struct dray__edge *next;
    uintptr_t target; /* dray_ref* of a dependent, or dray__waiter* | 1 */
} dray__edge;

#define DRAY__CLOSED ((dray__edge *)(uintptr_t)1)

typedef struct dray__waiter {
    _Atomic uint32_t refs;   /* one per registration, plus the waiting thread's */
    _Atomic uint32_t ready;  /* completions seen */
    _Atomic uint32_t futex;  /* bumped on every signal */
    uint32_t need;           /* wake the thread when ready reaches this */
} dray__waiter;

enum dray__cell_kind {
    DRAY__CELL_FREE = 0,
    DRAY__CELL_PUT,
    DRAY__CELL_TASK,
    DRAY__CELL_ACTOR_CALL,
    DRAY__CELL_ACTOR_DRAIN, /* an actor's drain, embedded in the actor */
};

enum dray__cell_flags {
    DRAY__F_REF_ARGS = 1, /* some argument is a ref */
    DRAY__F_EXTRA = 2,    /* `extra` is set */
};

/* Options and overflow storage of a cell that needs them. */
struct dray__task_extra {
    dray_value *args;     /* when nargs > 2 */
    dray__edge *edges;    /* edges beyond the two inline ones */
    char *name;
    int retries_left;
    bool retry_exceptions;
    bool gated;           /* needs resources beyond one CPU */
    double num_cpus;
    dray_resource *res;
    size_t n_res;
    struct dray_actor *actor; /* actor calls */
    int method;               /* -1: the constructor */
};

/* What a running task sees. */
struct dray_ctx {
    dray_runtime *rt;
    dray_ref *cell;
    struct dray__worker *worker;
    void *actor_state;
};

struct dray_ref {
    _Atomic uint32_t refs;
    _Atomic uint32_t deps_left; /* refs not ready + 1 while submitting */
    int16_t status;             /* final once closed */
    uint8_t kind;
    uint8_t flags;
    uint16_t nargs;
    _Atomic uint8_t cancel;
    uint8_t pad_;
    const dray_function *fn;
    _Atomic(dray__edge *) dependents;
    struct dray_ref *next; /* free lists, actor mailbox */
    union {
        dray_value args[2]; /* inline arguments while pending (nargs <= 2) */
        dray_value result;  /* once run */
    } u;
    dray__edge edges[2]; /* inline edges to the first two pending ref arguments */
    struct dray__task_extra *extra;
};

/* ==== Per-thread counters (single writer, read racily by stats) ==== */
typedef struct dray__counters {
    _Atomic uint64_t submitted, finished, failed, retried, canceled, stolen;
    _Atomic uint64_t allocs, frees, actor_calls;
    /* While events are recorded: the current run of submissions of one function (events.c moves
     * finished runs into the thread's table). */
    _Atomic(const struct dray_function *) sub_fn;
    _Atomic uint64_t sub_n;
} dray__counters;

static inline void dray__count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* ==== Cell cache: a thread's free list of cells (slab.c) ==== */
typedef struct dray__cell_cache {
    dray_ref *head;
    size_t count;
} dray__cell_cache;

/* ==== Work-stealing deque (Chase-Lev), deque.c ==== */
typedef struct dray__ring {
    size_t mask;
    struct dray__ring *retired; /* older rings, freed with the deque */
    _Atomic(dray_ref *) slot[];
} dray__ring;

typedef struct dray__deque {
    _Alignas(DRAY__CACHE_LINE) _Atomic int64_t top;
    _Alignas(DRAY__CACHE_LINE) _Atomic int64_t bottom;
    _Atomic(dray__ring *) ring;
} dray__deque;

dray_status dray__deque_init(dray__deque *q, size_t cap);
void dray__deque_fini(dray__deque *q);
/* Owner only. */
dray_status dray__deque_push(dray__deque *q, dray_ref *c);
dray_ref *dray__deque_pop(dray__deque *q);
/* Any thread: takes the oldest entry. */
dray_ref *dray__deque_steal(dray__deque *q);
/* Any thread, on a deque whose owner never pops (external producers): claims up to `max` of the
 * oldest entries into out[]; returns how many. */
size_t dray__deque_steal_batch(dray__deque *q, dray_ref **out, size_t max);
static inline int64_t dray__deque_size(dray__deque *q)
{
    return atomic_load_explicit(&q->bottom, memory_order_relaxed) -
           atomic_load_explicit(&q->top, memory_order_relaxed);
}

/* ==== Event recording (events.c) ====
 * Off unless rt->events is set (dray_dashboard_record): then each thread that runs tasks coalesces
 * them into blocks in its own single-writer ring; a collector drains the rings. */
struct dray__events;
struct dray__evthread;

/* ==== Thread contexts ====
 * Workers run tasks; producers are external threads that submit (their queue is only stolen from).
 * Both carry a cell cache and counters. */
typedef struct dray__worker {
    dray__deque deque;
    dray_runtime *rt;
    int index;
    int help_depth;
    bool started;
    pthread_t thread;
    uint64_t rng;
    dray__cell_cache cache;
    dray__counters c;
    struct dray__evthread *ev; /* this thread's event ring, once events are on */
} __attribute__((aligned(DRAY__CACHE_LINE))) dray__worker;

typedef struct dray__producer {
    dray__deque deque;
    struct dray__producer *next;
    pthread_t thread;
    dray__cell_cache cache;
    dray__counters c;
    struct dray__evthread *ev; /* this thread's event ring, once events are on */
} __attribute__((aligned(DRAY__CACHE_LINE))) dray__producer;

/* The calling thread's context for one runtime. */
typedef struct dray__tls {
    dray_runtime *rt;
    uint64_t rt_id;
    dray__worker *worker;     /* set on worker threads */
    dray__producer *producer; /* set on external threads once they used rt */
} dray__tls;

extern _Thread_local dray__tls dray__tls_slot;

/* ==== Resources (resource.c) ==== */
typedef struct dray__resource_pool {
    size_t n;
    char **names;
    double *total;
    double *used;
} dray__resource_pool;

/* ==== The runtime ==== */
#define DRAY__MAX_SPARES 256

struct dray_runtime {
    uint64_t id;
    int nworkers;             /* regular workers */
    dray__worker *workers;    /* nworkers + DRAY__MAX_SPARES slots */
    _Atomic int nslots;       /* started slots (workers + spares) */
    _Atomic int blocked;      /* workers blocked in a wait without helping */
    _Atomic(dray__producer *) producers;

    _Alignas(DRAY__CACHE_LINE) _Atomic uint32_t epoch; /* futex word for parked workers */
    _Atomic int sleepers;
    _Atomic int stopping;
    _Atomic int canceling;
    _Atomic(struct dray__events *) events; /* NULL: not recording (the hot-path test) */

    pthread_mutex_t lock; /* slabs, free batches, producers, resources, actors */
    void *slabs;          /* list of slabs (slab.c) */
    dray_ref *free_batches; /* batches of free cells, linked through extra */
    size_t free_cells;
    dray_ref *orphans;    /* cells freed by threads without a context */
    size_t n_orphans;
    _Atomic uint64_t orphan_frees;

    int progress;
    size_t memory_limit;
    dray__resource_pool res;
    dray_ref *res_waiting; /* tasks parked until resources free up, under lock */

    _Atomic int64_t actors_live;
    struct dray_actor *actors; /* every live actor, under lock */
    struct dray__method_names *method_names; /* "Class.method" names per class (actor.c), under lock */
    struct dray__fn_table *fns;
    struct dray__cluster *cluster; /* set when attached to a cluster (src/cluster) */
    struct dray__launch *launch;   /* set on rank 0 under mpirun/srun: the head it started */
};

/* ==== Cross-file internals ==== */
/* The calling thread's context for rt (creates a producer on first use); NULL only on ENOMEM. */
dray__counters *dray__thread_counters(dray_runtime *rt);
dray__cell_cache *dray__thread_cache(dray_runtime *rt);

/* slab.c */
dray_status dray__cell_alloc(dray_runtime *rt, dray_ref **out);
void dray__cell_free(dray_ref *c);
dray_runtime *dray__cell_runtime(const dray_ref *c);
void dray__slabs_destroy(dray_runtime *rt);

/* task.c */
void dray__schedule(dray_runtime *rt, dray_ref *c);
void dray__wake(dray_runtime *rt, int n);
dray_ref *dray__run_cell(dray_runtime *rt, dray__worker *w, dray_ref *c);
void dray__complete(dray_runtime *rt, dray_ref *c, dray_status st, dray_value result,
                    dray_ref **next_out);
bool dray__find_work_and_run(dray_runtime *rt, dray__worker *w);
void dray__cell_drop_values(dray_ref *c);
dray_status dray__make_task(dray_runtime *rt, const dray_function *fn, const dray_value *args,
                            size_t nargs, const dray_task_opts *opts, uint8_t kind,
                            dray_ref **out);
void dray__submit_cell(dray_runtime *rt, dray_ref *c);
dray_value *dray__cell_args(dray_ref *c);
dray_status dray__wait_cell(dray_runtime *rt, dray_ref *c, int64_t timeout_ms);
dray_status dray__wait_all(dray_runtime *rt, dray_ref *const *refs, size_t n);
dray_status dray__wait_some(dray_runtime *rt, dray_ref *const *refs, size_t n, size_t need,
                            int64_t timeout_ms);
void dray__worker_blocking(dray_runtime *rt, int delta);

/* worker.c */
void dray__futex_wait(_Atomic uint32_t *addr, uint32_t val, const struct timespec *timeout);
void dray__futex_wake(_Atomic uint32_t *addr, int n);
int64_t dray__now_ns(void);

/* actor.c */
void dray__actors_destroy(dray_runtime *rt);
void dray__actor_run_drain(dray_runtime *rt, dray__worker *w, dray_ref *c);
void dray__actor_run_call(dray_runtime *rt, dray__worker *w, dray_ref *c);
void dray__actor_call_ready(dray_runtime *rt, dray_ref *c);
void dray__actor_drop_call(dray_ref *c);
/* Copies up to max live actors' states (for the dashboard). */
typedef struct dray__actor_info {
    uint64_t id;
    const char *cls, *state;
    int restarts, max_restarts, running;
    uint32_t refs; /* handles plus calls not yet finished */
    uint64_t pending; /* calls queued in its mailbox, not yet started */
    bool remote;
} dray__actor_info;
size_t dray__actors_snapshot(dray_runtime *rt, dray__actor_info *out, size_t max);
/* Frees the method name tables (after the events that point at them). */
void dray__method_names_free(dray_runtime *rt);

/* registry.c */
dray_status dray__fn_table_build(dray_runtime *rt);
void dray__fn_table_free(dray_runtime *rt);
const dray_function *dray__fn_lookup(dray_runtime *rt, const char *name);

/* resource.c */
dray_status dray__resources_init(dray_runtime *rt, const dray_config *cfg);
void dray__resources_fini(dray_runtime *rt);
dray_status dray__resources_check(dray_runtime *rt, double cpus, const dray_resource *r, size_t n);
/* Takes c's resources, or parks c until dray__resources_release frees enough (returns false). */
bool dray__resources_acquire(dray_runtime *rt, dray_ref *c);
void dray__task_resources(const dray_ref *c, double *cpus, const dray_resource **r, size_t *n);
void dray__resources_release(dray_runtime *rt, double cpus, const dray_resource *r, size_t n);

/* progress.c */
/* Waits for all refs, drawing a progress bar of the tasks submitted since `since` (the counters
 * taken before the work was submitted, so tasks that finish before the wait count too; NULL: from
 * the wait's start) plus the work unfinished then. */
void dray__progress_wait(dray_runtime *rt, dray_ref *const *refs, size_t n, const char *what,
                         const dray_stats *since);

/* value.c */
dray_status dray__blob_alloc(uint32_t type, size_t len, size_t payload, dray__blob **out);
void dray__blob_release(dray__blob *b);
/* A BYTES value over memory owned elsewhere (the cluster's shared-memory objects): release(ctx) runs
 * when the value's last count goes. The blob's type then has this bit set. */
#define DRAY__BLOB_EXTERNAL 0x80000000u
dray_status dray__bytes_wrap(void *data, size_t len, void (*release)(void *ctx), void *ctx,
                             dray_value *out);

/* events.c: recording hooks, called only while rt->events is set. `slot` is the running thread's
 * ring pointer (a worker's or an external helper's ev field), filled on first use. */
struct dray__evthread_hot {
    const dray_function *fn; /* function of the open block; NULL when none is open */
    uint32_t n;              /* tasks in the open block */
    uint32_t budget;         /* tasks left before the next clock read */
};
void dray__ev_task_slow(dray_runtime *rt, struct dray__evthread **slot, const dray_function *fn);
void dray__ev_task_end_slow(dray_runtime *rt, struct dray__evthread **slot, int st);
void dray__ev_idle(dray_runtime *rt, struct dray__evthread *t);
void dray__ev_submit_slow(dray_runtime *rt, dray__counters *cnt, const dray_function *fn);
struct dray__evthread **dray__ev_slot_external(dray_runtime *rt);
/* The running thread's ring slot for rt (a worker's, else the external thread's producer's). */
struct dray__evthread **dray__ev_slot(dray_runtime *rt, dray__worker *w);
/* Progress of one lazy graph's tasks (graph.c tells, events.c keeps it for the dashboard). */
struct dray__evgraph;
struct dray__evgraph *dray__ev_graph_begin(dray_runtime *rt, size_t max_tasks);
void dray__ev_graph_task(struct dray__evgraph *g, dray_ref *c);
void dray__ev_graph_end(struct dray__evgraph *g);
/* Called by dray_shutdown: stop the observer (dashboard) while workers still run; free after. */
void dray__events_stop(dray_runtime *rt);
void dray__events_free(dray_runtime *rt);

static inline struct dray__evthread **dray__ev_slot_of(dray_runtime *rt, dray__worker *w)
{
    if (w)
        return &w->ev;
    dray__tls *tls = &dray__tls_slot;
    if (tls->rt == rt && tls->rt_id == rt->id && tls->producer)
        return &tls->producer->ev;
    return dray__ev_slot_external(rt);
}

/* A task of fn was submitted from the thread whose counters are cnt: counted per function, in runs
 * (a compare and a relaxed store on the line the submission count just touched). */
static inline void dray__ev_submit(dray_runtime *rt, dray__counters *cnt, const dray_function *fn)
{
    if (atomic_load_explicit(&cnt->sub_fn, memory_order_relaxed) == fn) {
        atomic_store_explicit(&cnt->sub_n,
                              atomic_load_explicit(&cnt->sub_n, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return;
    }
    dray__ev_submit_slow(rt, cnt, fn);
}

/* A task of `fn` starts. The common case, the same function as the thread's open block between two
 * clock reads, is a compare and two increments. */
static inline void dray__ev_task(dray_runtime *rt, struct dray__evthread **slot,
                                 const dray_function *fn)
{
    struct dray__evthread_hot *t = (struct dray__evthread_hot *)*slot;
    if (t && t->fn == fn && t->budget > 1) {
        t->budget--;
        t->n++;
        return;
    }
    dray__ev_task_slow(rt, slot, fn);
}

/* The task started by the last dray__ev_task on this thread ended with status `st`: a failure gets
 * its own block. */
static inline void dray__ev_task_end(dray_runtime *rt, struct dray__evthread **slot, int st)
{
    if (st != 0)
        dray__ev_task_end_slow(rt, slot, st);
}

/* ==== Cluster hooks ====
 * Defined by src/cluster, weak here so the core links without that module. A task function that
 * returns DRAY__DEFERRED leaves its cell pending: before anything can complete the cell it must have
 * released the cell's arguments itself (ctx->cell, nargs set to 0); whoever deferred it completes it
 * later with dray__complete (the cluster client does so when the remote result arrives). */
#define DRAY__DEFERRED 1
/* Attaches rt to the cluster at `address`; called by dray_init. */
dray_status dray__cluster_attach(dray_runtime *rt, const char *address) __attribute__((weak));
/* Stops the cluster client of rt and fails what it still waits for; called by dray_shutdown. */
void dray__cluster_detach(dray_runtime *rt) __attribute__((weak));
/* Whether rt's cluster client is a worker node's local-first one (its tasks stay on rt unless it
 * is saturated, spill.c): graphs are then fused as on the embedded runtime. */
bool dray__cluster_local_first(const dray_runtime *rt) __attribute__((weak));
/* Submits a task to the cluster (dray_submit_fn on an attached runtime). */
dray_status dray__cluster_submit(dray_runtime *rt, const dray_function *fn, const dray_value *args,
                                 size_t nargs, const dray_task_opts *opts, dray_ref **out)
    __attribute__((weak));
/* Remote actors (dray_actor_* on an attached runtime): create returns the cluster's handle and the
 * ref that completes when the constructor ran, or DRAY__HERE when the actor is to live on rt itself
 * (a worker node's runtime); calls and kills are forwarded; release drops it. */
#define DRAY__HERE 2
dray_status dray__cluster_actor_create(dray_runtime *rt, const dray_actor_class *cls,
                                       const dray_value *args, size_t nargs,
                                       const dray_actor_opts *opts, void **remote,
                                       dray_ref **init_ref) __attribute__((weak));
dray_status dray__cluster_actor_call(dray_runtime *rt, void *remote, int method,
                                     const dray_value *args, size_t nargs, dray_ref **out)
    __attribute__((weak));
dray_status dray__cluster_actor_kill(dray_runtime *rt, void *remote, bool no_restart)
    __attribute__((weak));
int dray__cluster_actor_restarts(const void *remote) __attribute__((weak));
/* dray_get on an attached runtime: replaces *v (owned) by the value a cluster object handle stands
 * for (fetched from the node holding it); other values are left alone. On an error *v is released. */
dray_status dray__cluster_resolve(dray_runtime *rt, dray_value *v) __attribute__((weak));
void dray__cluster_actor_release(void *remote) __attribute__((weak));
/* Called once by a thread (not a pool worker) about to wait on cells[0..n) of an attached runtime
 * (deadline: a dray__now_ns time, or -1): the cluster client may read the awaited result off the
 * node's connection itself. Returns true when it waited; the caller checks the cells again. */
bool dray__cluster_wait(dray_runtime *rt, dray_ref *const *cells, size_t n, int64_t deadline)
    __attribute__((weak));

/* A callback run once a cell completes, on the completing thread (the cell's status and result are
 * final then). dray__ref_on_complete returns false when the cell already completed: the caller then
 * runs it. The callback owns its dray__callback. */
typedef struct dray__callback {
    dray__edge edge;
    void (*fn)(struct dray__callback *cb, dray_ref *c);
} dray__callback;
bool dray__ref_on_complete(dray_ref *c, dray__callback *cb);

/* Runs this process as a cluster worker when the environment says so (never returns then). */
void dray__cluster_worker_from_env(void) __attribute__((weak));
/* Under mpirun/srun with several ranks (src/cluster/launch.c): rank 0 starts a head and gets *out,
 * owned, with the head's address in *address (owned by *out); every other rank serves as a worker
 * node and never returns. *out stays NULL when no launcher is detected. */
struct dray__launch;
dray_status dray__cluster_launch(struct dray__launch **out, const char **address)
    __attribute__((weak));
/* Stops the head of a launch and frees it; called by dray_shutdown (and dray_init on failure). */
void dray__cluster_launch_finish(struct dray__launch *l) __attribute__((weak));

#endif /* DRAY_CORE_INTERNAL_H */
