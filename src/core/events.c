/* Event recording for the dashboard and performance reports: per-thread single-writer rings of task
 * blocks (runs of short tasks of one function coalesced, each long task its own block), module
 * events, gauges and a recent-log ring; a collector drains them (dray__events_drain). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "events.h"

#define RING 8192           /* blocks per thread (power of two) */
#define MISC_RING 4096      /* module events from threads that run no tasks */
#define MAX_STRIDE 256      /* most tasks between two clock reads */
#define BLOCK_AGE_NS 5000000    /* a block spans at most 5 ms */
#define VISIBLE_NS 50000        /* tasks averaging this long get one block each */
#define READ_SPACING_NS 5000    /* read the clock about once per 5 us of tasks */
#define SUB_TABLE 256           /* functions counted per submitting thread */
#define KEEP_GRAPHS 256         /* graph progress records kept */

struct dray__evthread {
    struct dray__evthread_hot hot; /* first: read by the inline fast path */
    uint64_t t0;                   /* clock at the open block's start */
    uint64_t t_last;               /* last clock read in the open block */
    uint32_t n_last;               /* tasks in the block at t_last */
    uint32_t stride;
    const char *name;              /* the open block's name when a wrapper task renamed it */
    int row;                       /* worker index, or -2 - k for the k-th external thread */
    int tid;
    _Atomic uint64_t head;         /* blocks published */
    _Atomic uint64_t tail;         /* blocks consumed (the drainer's) */
    _Atomic uint64_t dropped;      /* tasks lost because the ring was full */
    struct dray__evthread *next;
    /* Tasks submitted from this thread, by function (the current run is in hot). */
    struct {
        _Atomic(const dray_function *) fn;
        _Atomic uint64_t n;
    } sub[SUB_TABLE];
    _Atomic uint64_t sub_other; /* functions beyond the table */
    dray__evblock ring[RING];
};

/* ==== Clock ==== */

static inline uint64_t ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return (uint64_t)dray__now_ns();
#endif
}

int64_t dray_events_now_ns(void)
{
    return dray__now_ns();
}

/* ticks -> ns with the calibration of ev. */
static int64_t ticks_to_ns(const dray__events *ev, uint64_t t)
{
    return ev->ns0 + (int64_t)((double)(int64_t)(t - ev->tick0) * ev->ns_per_tick);
}

static uint64_t ns_to_ticks(const dray__events *ev, double ns)
{
    return (uint64_t)(ns / ev->ns_per_tick);
}

static void calibrate(dray__events *ev)
{
    uint64_t t1 = ticks();
    int64_t n1 = dray__now_ns();
    if (n1 - ev->ns0 > 1000000 && t1 > ev->tick0)
        ev->ns_per_tick = (double)(n1 - ev->ns0) / (double)(t1 - ev->tick0);
}

/* ==== Enabling ==== */

const char *dray_event_kind_name(dray_event_kind kind)
{
    static const char *names[] = {"task", "error", "transfer", "spill", "unspill", "serialize"};
    return (unsigned)kind < DRAY__EVENT_KINDS ? names[kind] : "?";
}

dray_status dray_events_enable(dray_runtime *rt)
{
    if (!rt)
        return dray_set_error(DRAY_EINVAL, "dray_events_enable: runtime is NULL");
    pthread_mutex_lock(&rt->lock);
    if (atomic_load_explicit(&rt->events, memory_order_acquire)) {
        pthread_mutex_unlock(&rt->lock);
        return DRAY_OK;
    }
    dray__events *ev = calloc(1, sizeof(*ev));
    if (!ev) {
        pthread_mutex_unlock(&rt->lock);
        return dray_set_error(DRAY_ENOMEM, "out of memory enabling events");
    }
    pthread_mutex_init(&ev->lock, NULL);
    pthread_mutex_init(&ev->drain_lock, NULL);
    ev->tick0 = ticks();
    ev->ns0 = dray__now_ns();
    ev->ns_per_tick = 1.0;
#if defined(__x86_64__) || defined(__i386__)
    struct timespec pause = {0, 2000000};
    nanosleep(&pause, NULL);
    calibrate(ev);
#endif
    ev->age_ticks = ns_to_ticks(ev, BLOCK_AGE_NS);
    ev->visible_ticks = ns_to_ticks(ev, VISIBLE_NS);
    ev->spacing_ticks = ns_to_ticks(ev, READ_SPACING_NS);
    ev->misc = calloc(MISC_RING, sizeof(dray__evblock));
    if (!ev->misc) {
        pthread_mutex_destroy(&ev->lock);
        pthread_mutex_destroy(&ev->drain_lock);
        free(ev);
        pthread_mutex_unlock(&rt->lock);
        return dray_set_error(DRAY_ENOMEM, "out of memory enabling events");
    }
    atomic_store_explicit(&rt->events, ev, memory_order_release);
    pthread_mutex_unlock(&rt->lock);
    return DRAY_OK;
}

bool dray_events_enabled(dray_runtime *rt)
{
    return rt && atomic_load_explicit(&rt->events, memory_order_acquire) != NULL;
}

dray__events *dray__events_of(dray_runtime *rt)
{
    return rt ? atomic_load_explicit(&rt->events, memory_order_acquire) : NULL;
}

/* ==== Per-thread rings ==== */

struct dray__evthread **dray__ev_slot(dray_runtime *rt, dray__worker *w)
{
    return dray__ev_slot_of(rt, w);
}

struct dray__evthread **dray__ev_slot_external(dray_runtime *rt)
{
    dray__tls *tls = &dray__tls_slot;
    if (tls->rt == rt && tls->rt_id == rt->id && tls->producer)
        return &tls->producer->ev;
    /* A thread that never submitted to rt runs a task (it helps while waiting): make its context. */
    dray__thread_counters(rt);
    if (tls->rt == rt && tls->producer)
        return &tls->producer->ev;
    return NULL;
}

static struct dray__evthread *thread_ring(dray_runtime *rt, struct dray__evthread **slot,
                                          dray__worker *w)
{
    if (*slot)
        return *slot;
    dray__events *ev = atomic_load_explicit(&rt->events, memory_order_acquire);
    struct dray__evthread *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->stride = 1;
    t->tid = (int)syscall(SYS_gettid);
    pthread_mutex_lock(&ev->lock);
    t->row = w ? w->index : -2 - ev->n_external++;
    t->next = ev->threads;
    ev->threads = t;
    pthread_mutex_unlock(&ev->lock);
    *slot = t;
    return t;
}

/* Publishes a block on t's ring (single writer); counts its tasks as dropped when the ring is full. */
static void publish(struct dray__evthread *t, const dray__evblock *b)
{
    uint64_t h = atomic_load_explicit(&t->head, memory_order_relaxed);
    if (h - atomic_load_explicit(&t->tail, memory_order_acquire) >= RING) {
        atomic_store_explicit(&t->dropped,
                              atomic_load_explicit(&t->dropped, memory_order_relaxed) + b->count,
                              memory_order_relaxed);
        return;
    }
    t->ring[h & (RING - 1)] = *b;
    atomic_store_explicit(&t->head, h + 1, memory_order_release);
}

/* Closes t's open block at clock `now`. Threads close their block when they run out of work or
 * return from a wait, so `now` is also when its last task ended, within a clock read. */
static void seal(dray__events *ev, struct dray__evthread *t, uint64_t now)
{
    (void)ev;
    if (!t->hot.fn)
        return;
    uint64_t stop = now;
    dray__evblock b = {t->t0, stop, t->name ? t->name : t->hot.fn->name, 0, t->hot.n,
                       DRAY_EVENT_TASK, 0};
    publish(t, &b);
    t->name = NULL;
    t->hot.fn = NULL;
    t->hot.n = 0;
    t->hot.budget = 0;
}

void dray__ev_task_slow(dray_runtime *rt, struct dray__evthread **slot, const dray_function *fn)
{
    dray__events *ev = atomic_load_explicit(&rt->events, memory_order_relaxed);
    if (!slot)
        return;
    dray__tls *tls = &dray__tls_slot;
    dray__worker *w = slot == (tls->worker ? &tls->worker->ev : NULL) ? tls->worker : NULL;
    struct dray__evthread *t = thread_ring(rt, slot, w);
    if (!t)
        return;
    uint64_t now = ticks();
    if (t->hot.fn == fn && now - t->t0 < ev->age_ticks &&
        now - t->t0 < (uint64_t)t->hot.n * ev->visible_ticks) {
        /* Extend: short tasks of the same function. Read the clock again after about 5 us. */
        t->hot.n++;
        uint64_t avg = (now - t->t0) / t->hot.n;
        uint64_t stride = avg ? ev->spacing_ticks / avg : MAX_STRIDE;
        t->stride = stride < 1 ? 1 : stride > MAX_STRIDE ? MAX_STRIDE : (uint32_t)stride;
        t->hot.budget = t->stride;
        t->t_last = now;
        t->n_last = t->hot.n;
        return;
    }
    seal(ev, t, now);
    t->name = NULL;
    t->hot.fn = fn;
    t->hot.n = 1;
    t->t0 = t->t_last = now;
    t->n_last = 1;
    t->hot.budget = 1; /* read the clock at the next task: one block per task when they are long */
}

void dray__ev_task_end_slow(dray_runtime *rt, struct dray__evthread **slot, int st)
{
    dray__events *ev = atomic_load_explicit(&rt->events, memory_order_relaxed);
    struct dray__evthread *t = slot ? *slot : NULL;
    if (!t || !t->hot.fn)
        return;
    uint64_t now = ticks();
    /* A failed task is its own block; the tasks before it in the open block keep theirs. */
    const char *name = t->name ? t->name : t->hot.fn->name;
    uint64_t start = t->t_last;
    if (t->hot.n > 1) {
        t->hot.n--;
        seal(ev, t, start);
    }
    dray__evblock b = {start, now, name, 0, 1, DRAY_EVENT_ERROR, (int16_t)st};
    publish(t, &b);
    t->name = NULL;
    t->hot.fn = NULL;
    t->hot.n = 0;
    t->hot.budget = 0;
}

/* The calling thread's ring slot for rt (NULL when it has none and cannot get one). */
static struct dray__evthread **current_slot(dray_runtime *rt)
{
    dray__tls *tls = &dray__tls_slot;
    dray__worker *w = tls->rt == rt && tls->rt_id == rt->id ? tls->worker : NULL;
    return dray__ev_slot(rt, w);
}

void dray__ev_task_rename(dray_runtime *rt, const dray_function *fn)
{
    dray__events *ev = dray__events_of(rt);
    struct dray__evthread **slot = ev && fn ? current_slot(rt) : NULL;
    struct dray__evthread *t = slot ? *slot : NULL;
    if (!t || !t->hot.fn || t->name == fn->name)
        return;
    if (t->hot.n <= 1) {
        t->name = fn->name; /* the block this task opened */
        return;
    }
    /* The block holds earlier tasks under another name: they keep it; this one starts a block. */
    const dray_function *wrapper = t->hot.fn;
    uint64_t now = ticks();
    t->hot.n--;
    seal(ev, t, now);
    t->hot.fn = wrapper;
    t->name = fn->name;
    t->hot.n = 1;
    t->t0 = t->t_last = now;
    t->n_last = 1;
    t->hot.budget = 1;
}

void dray__ev_task_failed(dray_runtime *rt, int st)
{
    if (st && dray__events_of(rt))
        dray__ev_task_end_slow(rt, current_slot(rt), st);
}

void dray__ev_run_begin(dray_runtime *rt, const dray_function *fn)
{
    struct dray__evthread **slot = dray__events_of(rt) && fn ? current_slot(rt) : NULL;
    if (slot)
        dray__ev_task(rt, slot, fn);
}

void dray__ev_run_end(dray_runtime *rt, int st)
{
    struct dray__evthread **slot = dray__events_of(rt) ? current_slot(rt) : NULL;
    if (!slot)
        return;
    if (st)
        dray__ev_task_end_slow(rt, slot, st);
    dray__ev_idle(rt, *slot);
}

static inline void add_relaxed(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Moves the thread's current run of submissions (in its counters) into its table (writer only). */
static void sub_flush(struct dray__evthread *t, dray__counters *cnt)
{
    const dray_function *fn = atomic_load_explicit(&cnt->sub_fn, memory_order_relaxed);
    uint64_t n = atomic_load_explicit(&cnt->sub_n, memory_order_relaxed);
    if (!fn || !n)
        return;
    size_t h = ((uintptr_t)fn >> 4) * 0x9e3779b97f4a7c15ull >> 56;
    for (size_t i = 0; i < SUB_TABLE; i++) {
        size_t k = (h + i) & (SUB_TABLE - 1);
        const dray_function *f = atomic_load_explicit(&t->sub[k].fn, memory_order_relaxed);
        if (!f) {
            /* The count first: a reader seeing fn sees at least this. */
            atomic_store_explicit(&t->sub[k].n, n, memory_order_relaxed);
            atomic_store_explicit(&t->sub[k].fn, fn, memory_order_release);
            goto out;
        }
        if (f == fn) {
            add_relaxed(&t->sub[k].n, n);
            goto out;
        }
    }
    add_relaxed(&t->sub_other, n);
out:
    /* A reader racing with this may count the run twice for a moment (approximate while work
     * is being submitted). */
    atomic_store_explicit(&cnt->sub_n, 0, memory_order_relaxed);
    atomic_store_explicit(&cnt->sub_fn, NULL, memory_order_release);
}

void dray__ev_submit_slow(dray_runtime *rt, dray__counters *cnt, const dray_function *fn)
{
    dray__tls *tls = &dray__tls_slot;
    dray__worker *w = tls->rt == rt && tls->rt_id == rt->id ? tls->worker : NULL;
    struct dray__evthread **slot = dray__ev_slot(rt, w);
    struct dray__evthread *t = slot ? thread_ring(rt, slot, w) : NULL;
    if (!t || !fn || !cnt)
        return;
    sub_flush(t, cnt);
    atomic_store_explicit(&cnt->sub_fn, fn, memory_order_relaxed);
    add_relaxed(&cnt->sub_n, 1);
}

/* The current run in one thread's counters. */
static void sub_current(const dray__counters *c, void (*cb)(void *, const char *, uint64_t),
                        void *ctx)
{
    const dray_function *f = atomic_load_explicit(&((dray__counters *)c)->sub_fn,
                                                  memory_order_acquire);
    uint64_t n = atomic_load_explicit(&((dray__counters *)c)->sub_n, memory_order_relaxed);
    if (f && n)
        cb(ctx, f->name, n);
}

size_t dray__events_submitted(dray_runtime *rt, void (*cb)(void *ctx, const char *name, uint64_t n),
                              void *ctx)
{
    dray__events *ev = dray__events_of(rt);
    if (!ev)
        return 0;
    size_t k = 0;
    pthread_mutex_lock(&ev->lock);
    for (struct dray__evthread *t = ev->threads; t; t = t->next) {
        for (size_t i = 0; i < SUB_TABLE; i++) {
            const dray_function *f = atomic_load_explicit(&t->sub[i].fn, memory_order_acquire);
            if (f) {
                cb(ctx, f->name, atomic_load_explicit(&t->sub[i].n, memory_order_relaxed));
                k++;
            }
        }
        uint64_t o = atomic_load_explicit(&t->sub_other, memory_order_relaxed);
        if (o)
            cb(ctx, "(other)", o);
    }
    pthread_mutex_unlock(&ev->lock);
    int nslots = atomic_load_explicit(&rt->nslots, memory_order_acquire);
    for (int i = 0; i < nslots; i++)
        sub_current(&rt->workers[i].c, cb, ctx);
    for (dray__producer *p = atomic_load_explicit(&rt->producers, memory_order_acquire); p;
         p = p->next)
        sub_current(&p->c, cb, ctx);
    return k;
}

void dray__ev_idle(dray_runtime *rt, struct dray__evthread *t)
{
    dray__events *ev = atomic_load_explicit(&rt->events, memory_order_relaxed);
    if (ev && t && t->hot.fn)
        seal(ev, t, ticks());
}

/* ==== Module events, gauges, logs ==== */

void dray_events_record(dray_runtime *rt, dray_event_kind kind, const char *name,
                        int64_t start_ns, int64_t stop_ns, uint64_t bytes)
{
    dray__events *ev = dray__events_of(rt);
    if (!ev || !name || (unsigned)kind >= DRAY__EVENT_KINDS)
        return;
    if (stop_ns < start_ns)
        stop_ns = start_ns;
    /* Module events keep ns (task blocks keep clock ticks). */
    dray__evblock b = {(uint64_t)start_ns, (uint64_t)stop_ns, name, bytes, 1, (uint16_t)kind, 0};
    dray__tls *tls = &dray__tls_slot;
    int row = -1;
    if (tls->rt == rt && tls->rt_id == rt->id && tls->worker)
        row = tls->worker->index;
    pthread_mutex_lock(&ev->lock);
    if (ev->misc_head - ev->misc_tail >= MISC_RING)
        ev->misc_tail++; /* full: the oldest goes */
    ev->misc[ev->misc_head % MISC_RING] = b;
    ev->misc_rows[ev->misc_head % MISC_RING] = row;
    ev->misc_head++;
    pthread_mutex_unlock(&ev->lock);
}

void dray_events_gauge_add(dray_runtime *rt, dray_gauge g, int64_t delta)
{
    dray__events *ev = dray__events_of(rt);
    if (ev && (unsigned)g < DRAY__GAUGES)
        atomic_fetch_add_explicit(&ev->gauges[g], delta, memory_order_relaxed);
}

int64_t dray_events_gauge(dray_runtime *rt, dray_gauge g)
{
    dray__events *ev = dray__events_of(rt);
    if (!ev || (unsigned)g >= DRAY__GAUGES)
        return 0;
    return atomic_load_explicit(&ev->gauges[g], memory_order_relaxed);
}

void dray_events_log(dray_runtime *rt, const char *level, const char *source, const char *fmt,
                     ...)
{
    dray__events *ev = dray__events_of(rt);
    if (!ev || !fmt)
        return;
    dray__logline line;
    line.t_ns = dray__now_ns();
    snprintf(line.level, sizeof line.level, "%s", level ? level : "info");
    snprintf(line.source, sizeof line.source, "%s", source ? source : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line.text, sizeof line.text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&ev->lock);
    line.seq = ev->log_seq++;
    ev->logs[line.seq % DRAY__LOG_LINES] = line;
    pthread_mutex_unlock(&ev->lock);
}

size_t dray__events_logs(dray_runtime *rt, uint64_t since, dray__logline *out, size_t max,
                         uint64_t *next)
{
    dray__events *ev = dray__events_of(rt);
    *next = since;
    if (!ev)
        return 0;
    pthread_mutex_lock(&ev->lock);
    uint64_t first = ev->log_seq > DRAY__LOG_LINES ? ev->log_seq - DRAY__LOG_LINES : 0;
    if (since < first)
        since = first;
    if (ev->log_seq - since > max)
        since = ev->log_seq - max; /* the most recent `max` */
    size_t n = 0;
    for (uint64_t s = since; s < ev->log_seq; s++)
        out[n++] = ev->logs[s % DRAY__LOG_LINES];
    *next = ev->log_seq;
    pthread_mutex_unlock(&ev->lock);
    return n;
}

/* ==== Draining ==== */

static void deliver(dray__events *ev, const dray__evblock *b, int row, int tid, bool in_ns,
                    void (*cb)(void *, const dray__ev *), void *ctx)
{
    dray__ev e = {in_ns ? (int64_t)b->t0 : ticks_to_ns(ev, b->t0),
                  in_ns ? (int64_t)b->t1 : ticks_to_ns(ev, b->t1),
                  b->name, b->bytes, b->count, b->kind, b->status, row, tid};
    cb(ctx, &e);
}

size_t dray__events_drain(dray_runtime *rt, void (*cb)(void *ctx, const dray__ev *e), void *ctx,
                          uint64_t *dropped)
{
    dray__events *ev = dray__events_of(rt);
    *dropped = 0;
    if (!ev)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&ev->drain_lock);
    calibrate(ev);
    pthread_mutex_lock(&ev->lock);
    struct dray__evthread *threads = ev->threads;
    /* Module events: copied out under the lock, delivered after. */
    uint64_t mh = ev->misc_head, mt = ev->misc_tail;
    dray__evblock *misc = mh > mt ? malloc((mh - mt) * sizeof(*misc)) : NULL;
    int *rows = mh > mt ? malloc((mh - mt) * sizeof(int)) : NULL;
    size_t nm = 0;
    if (misc && rows) {
        for (uint64_t i = mt; i < mh; i++, nm++) {
            misc[nm] = ev->misc[i % MISC_RING];
            rows[nm] = ev->misc_rows[i % MISC_RING];
        }
        ev->misc_tail = mh;
    }
    pthread_mutex_unlock(&ev->lock);
    for (struct dray__evthread *t = threads; t; t = t->next) {
        uint64_t h = atomic_load_explicit(&t->head, memory_order_acquire);
        uint64_t tl = atomic_load_explicit(&t->tail, memory_order_relaxed);
        for (; tl < h; tl++, n++)
            deliver(ev, &t->ring[tl & (RING - 1)], t->row, t->tid, false, cb, ctx);
        atomic_store_explicit(&t->tail, tl, memory_order_release);
        *dropped += atomic_load_explicit(&t->dropped, memory_order_relaxed);
    }
    for (size_t i = 0; i < nm; i++, n++)
        deliver(ev, &misc[i], rows[i], 0, true, cb, ctx);
    free(misc);
    free(rows);
    pthread_mutex_unlock(&ev->drain_lock);
    return n;
}

size_t dray__events_threads(dray_runtime *rt, dray__evthread_info *out, size_t max)
{
    dray__events *ev = dray__events_of(rt);
    if (!ev)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&ev->lock);
    for (struct dray__evthread *t = ev->threads; t && n < max; t = t->next, n++) {
        out[n].row = t->row;
        out[n].tid = t->tid;
    }
    pthread_mutex_unlock(&ev->lock);
    return n;
}

/* ==== Graph progress ==== */

typedef struct graph_cb {
    dray__callback cb;
    struct dray__evgraph *g;
} graph_cb;

struct dray__evgraph {
    uint64_t id;
    _Atomic uint32_t tasks, done, failed;
    _Atomic int submitted;
    int64_t start_ns;
    _Atomic int64_t last_ns;
    struct dray__evgraph *next;
    size_t max_tasks;
    graph_cb cbs[];
};

static void on_graph_task(dray__callback *cb, dray_ref *c)
{
    struct dray__evgraph *g = ((graph_cb *)cb)->g;
    atomic_store_explicit(&g->last_ns, dray__now_ns(), memory_order_relaxed);
    /* Last: once done + failed reach tasks the record may be freed. */
    atomic_fetch_add_explicit(c->status ? &g->failed : &g->done, 1, memory_order_release);
}

struct dray__evgraph *dray__ev_graph_begin(dray_runtime *rt, size_t max_tasks)
{
    dray__events *ev = dray__events_of(rt);
    if (!ev)
        return NULL;
    struct dray__evgraph *g = calloc(1, sizeof(*g) + max_tasks * sizeof(graph_cb));
    if (!g)
        return NULL; /* progress is optional: the graph runs without it */
    g->start_ns = dray__now_ns();
    g->max_tasks = max_tasks;
    pthread_mutex_lock(&ev->lock);
    g->id = ev->n_graphs++;
    g->next = ev->graphs;
    ev->graphs = g;
    /* Keep the newest KEEP_GRAPHS; older ones go once all their tasks completed. */
    size_t k = 0;
    for (struct dray__evgraph **p = &ev->graphs; *p;) {
        struct dray__evgraph *x = *p;
        bool finished = atomic_load_explicit(&x->submitted, memory_order_acquire) &&
                        atomic_load_explicit(&x->done, memory_order_acquire) +
                                atomic_load_explicit(&x->failed, memory_order_acquire) ==
                            atomic_load_explicit(&x->tasks, memory_order_relaxed);
        if (++k > KEEP_GRAPHS && finished) {
            *p = x->next;
            free(x);
        } else {
            p = &x->next;
        }
    }
    pthread_mutex_unlock(&ev->lock);
    return g;
}

void dray__ev_graph_task(struct dray__evgraph *g, dray_ref *c)
{
    if (!g)
        return;
    uint32_t i = atomic_load_explicit(&g->tasks, memory_order_relaxed);
    if (i >= g->max_tasks)
        return;
    graph_cb *x = &g->cbs[i];
    x->cb.fn = on_graph_task;
    x->g = g;
    atomic_store_explicit(&g->tasks, i + 1, memory_order_relaxed);
    if (!dray__ref_on_complete(c, &x->cb))
        on_graph_task(&x->cb, c); /* already done */
}

void dray__ev_graph_end(struct dray__evgraph *g)
{
    if (g)
        atomic_store_explicit(&g->submitted, 1, memory_order_release);
}

size_t dray__events_graphs(dray_runtime *rt, dray__graph_info *out, size_t max)
{
    dray__events *ev = dray__events_of(rt);
    if (!ev)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&ev->lock);
    for (struct dray__evgraph *g = ev->graphs; g && n < max; g = g->next, n++) {
        out[n].id = g->id;
        out[n].submitted = atomic_load_explicit(&g->submitted, memory_order_acquire);
        out[n].tasks = atomic_load_explicit(&g->tasks, memory_order_relaxed);
        out[n].done = atomic_load_explicit(&g->done, memory_order_relaxed);
        out[n].failed = atomic_load_explicit(&g->failed, memory_order_relaxed);
        out[n].start_ns = g->start_ns;
        out[n].last_ns = atomic_load_explicit(&g->last_ns, memory_order_relaxed);
    }
    pthread_mutex_unlock(&ev->lock);
    return n;
}

/* ==== Observer and life cycle ==== */

bool dray__events_set_observer(dray_runtime *rt, void *obs, void (*stop)(void *), void **cur)
{
    dray__events *ev = dray__events_of(rt);
    bool set = false;
    pthread_mutex_lock(&ev->lock);
    if (!ev->observer && obs) {
        ev->observer = obs;
        ev->observer_stop = stop;
        set = true;
    }
    *cur = ev->observer;
    pthread_mutex_unlock(&ev->lock);
    return set;
}

void dray__events_stop(dray_runtime *rt)
{
    dray__events *ev = dray__events_of(rt);
    if (!ev)
        return;
    pthread_mutex_lock(&ev->lock);
    void *obs = ev->observer;
    void (*stop)(void *) = ev->observer_stop;
    ev->observer = NULL;
    pthread_mutex_unlock(&ev->lock);
    if (obs && stop)
        stop(obs);
}

void dray__events_free(dray_runtime *rt)
{
    dray__events *ev = dray__events_of(rt);
    if (!ev)
        return;
    atomic_store(&rt->events, NULL);
    struct dray__evthread *t = ev->threads;
    while (t) {
        struct dray__evthread *next = t->next;
        free(t);
        t = next;
    }
    int nslots = atomic_load(&rt->nslots);
    for (int i = 0; i < nslots; i++)
        rt->workers[i].ev = NULL;
    for (dray__producer *p = atomic_load(&rt->producers); p; p = p->next)
        p->ev = NULL;
    free(ev->misc);
    /* Graph records: every cell completed or was dropped by now (the workers are gone). */
    struct dray__evgraph *g = ev->graphs;
    while (g) {
        struct dray__evgraph *next = g->next;
        free(g);
        g = next;
    }
    pthread_mutex_destroy(&ev->lock);
    pthread_mutex_destroy(&ev->drain_lock);
    free(ev);
}
