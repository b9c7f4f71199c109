/* Actors: a stateful object whose method calls queue in a lock-free mailbox (many producers, one
 * consumer) and are run by a drain task on the pool, in the order they were made. With
 * max_concurrency > 1 the drain dispatches up to that many calls to run at once. Kill and restart. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

enum { ACTOR_INIT_PENDING, ACTOR_ALIVE, ACTOR_DEAD };

#define DRAIN_BUDGET 1024

struct dray_actor {
    _Atomic uint32_t refs; /* handles, calls not yet finished, a scheduled drain */
    dray_runtime *rt;
    const dray_actor_class *cls;
    void *state;
    _Atomic int life;       /* ACTOR_*; written only by the drain */
    dray_status init_status;
    dray_value init_error;  /* the constructor's error, if it failed */
    dray_value *init_args;  /* the constructor's resolved arguments, kept for restarts */
    size_t n_init_args;
    dray_ref *init_ref;     /* the constructor call (for dray_actor_ready) */
    _Atomic int restarts;
    int max_restarts, max_task_retries, max_concurrency;
    _Atomic int kill_requested; /* 1: kill (restart if allowed), 2: kill for good */
    _Atomic int running;        /* calls dispatched and running (max_concurrency > 1) */
    struct dray_actor *prev, *next; /* the runtime's list */

    /* Mailbox: Vyukov's intrusive MPSC queue of call cells linked through `next`. */
    _Alignas(DRAY__CACHE_LINE) _Atomic(dray_ref *) tail;
    _Atomic uint64_t pushed; /* calls ever queued (on tail's line, which every push writes) */
    _Alignas(DRAY__CACHE_LINE) dray_ref *head;
    _Atomic uint64_t popped; /* calls ever taken out (written by the drain only) */
    dray_ref stub;
    /* Bit 0: a drain is queued or running. Above it, a counter bumped by every event that may make
     * a call runnable (a push, a dependency ready, a kill), so the drain never stops after missing
     * one. */
    _Atomic uint64_t sched;
    dray_ref drain;        /* the cell pushed onto deques to run the drain */
    void *remote;          /* on a runtime attached to a cluster: the cluster's handle */
    /* The task stream's names of its calls: [0] "Class.__init__", [1 + m] "Class.<method m>"
     * (the runtime's table for the class; NULL when it could not be made). */
    const dray_function *call_names;
};

/* A class's call names for the task stream, made at its first actor on a runtime. The entries are
 * dray_functions (name only) so the event hooks treat calls like tasks. */
struct dray__method_names {
    const dray_actor_class *cls;
    dray_function *names; /* 1 + cls->n_methods, each name malloc'd */
    struct dray__method_names *next;
};

/* The table for cls on rt, made if needed; NULL when out of memory (calls then go unrecorded).
 * Caller holds rt->lock. */
static const dray_function *method_names_locked(dray_runtime *rt, const dray_actor_class *cls)
{
    for (struct dray__method_names *t = rt->method_names; t; t = t->next)
        if (t->cls == cls)
            return t->names;
    struct dray__method_names *t = calloc(1, sizeof(*t));
    dray_function *names = calloc(cls->n_methods + 1, sizeof(*names));
    bool ok = t && names;
    for (size_t i = 0; ok && i <= cls->n_methods; i++) {
        const char *m = i ? cls->methods[i - 1].name : "__init__";
        size_t len = strlen(cls->name) + strlen(m) + 2;
        char *name = malloc(len);
        if (!(ok = name != NULL))
            break;
        snprintf(name, len, "%s.%s", cls->name, m);
        names[i].name = name;
    }
    if (!ok) {
        for (size_t i = 0; names && i <= cls->n_methods; i++)
            free((char *)names[i].name);
        free(names);
        free(t);
        return NULL;
    }
    t->cls = cls;
    t->names = names;
    t->next = rt->method_names;
    rt->method_names = t;
    return names;
}

void dray__method_names_free(dray_runtime *rt)
{
    while (rt->method_names) {
        struct dray__method_names *t = rt->method_names;
        rt->method_names = t->next;
        for (size_t i = 0; i <= t->cls->n_methods; i++)
            free((char *)t->names[i].name);
        free(t->names);
        free(t);
    }
}

#define ACTOR_OF_DRAIN(c) ((struct dray_actor *)((char *)(c)-offsetof(struct dray_actor, drain)))

/* ==== Mailbox ==== */

static inline dray_ref *link_load(dray_ref *c)
{
    return __atomic_load_n(&c->next, __ATOMIC_ACQUIRE);
}

static void mailbox_push(struct dray_actor *a, dray_ref *c)
{
    __atomic_store_n(&c->next, NULL, __ATOMIC_RELAXED);
    dray_ref *prev = atomic_exchange_explicit(&a->tail, c, memory_order_seq_cst);
    __atomic_store_n(&prev->next, c, __ATOMIC_RELEASE);
}

/* The oldest call without removing it, or NULL. *busy: a push is half done (look again soon). */
static dray_ref *mailbox_peek(struct dray_actor *a, bool *busy)
{
    *busy = false;
    dray_ref *head = a->head, *next = link_load(head);
    if (head == &a->stub) {
        if (!next) {
            *busy = atomic_load_explicit(&a->tail, memory_order_seq_cst) != head;
            return NULL;
        }
        a->head = head = next;
    }
    return head;
}

/* Counts a call into the mailbox (the dashboard's pending calls: pushed - popped). */
static void mailbox_push_call(struct dray_actor *a, dray_ref *c)
{
    mailbox_push(a, c);
    atomic_fetch_add_explicit(&a->pushed, 1, memory_order_relaxed);
}

/* Unlinks the call peek returned. False when a push is half done (peek it again). */
static bool mailbox_unlink(struct dray_actor *a)
{
    dray_ref *head = a->head, *next = link_load(head);
    if (next) {
        a->head = next;
        return true;
    }
    if (atomic_load_explicit(&a->tail, memory_order_acquire) != head)
        return false;
    mailbox_push(a, &a->stub);
    next = link_load(head);
    if (!next)
        return false;
    a->head = next;
    return true;
}

/* mailbox_unlink, counted (the dashboard's pending calls: pushed - popped). */
static bool mailbox_pop(struct dray_actor *a)
{
    if (!mailbox_unlink(a))
        return false;
    atomic_store_explicit(&a->popped, atomic_load_explicit(&a->popped, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    return true;
}

/* ==== Life cycle helpers ==== */

static void actor_free(struct dray_actor *a)
{
    dray_runtime *rt = a->rt;
    if (atomic_load(&a->life) == ACTOR_ALIVE && a->cls->destroy)
        a->cls->destroy(a->state);
    for (size_t i = 0; i < a->n_init_args; i++)
        dray_value_release(&a->init_args[i]);
    free(a->init_args);
    dray_value_release(&a->init_error);
    pthread_mutex_lock(&rt->lock);
    if (a->prev)
        a->prev->next = a->next;
    else
        rt->actors = a->next;
    if (a->next)
        a->next->prev = a->prev;
    pthread_mutex_unlock(&rt->lock);
    atomic_fetch_sub(&rt->actors_live, 1);
    free(a);
}

static void actor_release(struct dray_actor *a)
{
    if (atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1)
        actor_free(a);
}

/* Records an event and starts a drain unless one is queued or running. */
static void poke(struct dray_actor *a)
{
    uint64_t old = atomic_fetch_add_explicit(&a->sched, 2, memory_order_seq_cst);
    if (old & 1)
        return;
    old = atomic_fetch_or_explicit(&a->sched, 1, memory_order_seq_cst);
    if (old & 1)
        return;
    atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
    dray__schedule(a->rt, &a->drain);
}

void dray__actor_call_ready(dray_runtime *rt, dray_ref *c)
{
    (void)rt;
    poke(c->extra->actor);
}

void dray__actor_drop_call(dray_ref *c)
{
    if (c->extra && c->extra->actor) {
        struct dray_actor *a = c->extra->actor;
        c->extra->actor = NULL;
        actor_release(a);
    }
}

/* ==== Running calls ==== */

static const char *method_name(const struct dray_actor *a, int method)
{
    return method >= 0 ? a->cls->methods[method].name : "__init__";
}

static void release_args(dray_ref *c)
{
    dray_value *args = dray__cell_args(c);
    for (size_t i = 0; i < c->nargs; i++)
        dray_value_release(&args[i]);
    c->nargs = 0;
}

static void finish_call(dray_runtime *rt, dray_ref *c, dray_status st, const char *msg,
                        const dray_value *cause, int arg)
{
    struct dray_actor *a = c->extra->actor;
    char full[256];
    snprintf(full, sizeof full, "%s.%s", a->cls->name, method_name(a, c->extra->method));
    dray_value err = dray_null();
    dray_error_create(st, full, msg, arg, cause, &err);
    release_args(c);
    dray__complete(rt, c, st, err, NULL);
}

/* Runs call c (arguments ready) against the actor's state and completes it. */
static void run_call(dray_runtime *rt, dray__worker *w, dray_ref *c)
{
    struct dray_actor *a = c->extra->actor;
    int method = c->extra->method;
    dray_value *args = dray__cell_args(c);
    dray_value tmp_stack[8], *tmp = args;
    if (c->flags & DRAY__F_REF_ARGS) {
        tmp = c->nargs <= 8 ? tmp_stack : malloc(c->nargs * sizeof(dray_value));
        if (!tmp) {
            finish_call(rt, c, DRAY_ENOMEM, "out of memory resolving arguments", NULL, -1);
            return;
        }
        for (size_t i = 0; i < c->nargs; i++) {
            dray_ref *dep = args[i].type == DRAY_T_REF ? args[i].u.ref : NULL;
            if (dep && dep->status != DRAY_OK) {
                if (tmp != tmp_stack)
                    free(tmp);
                char msg[64];
                snprintf(msg, sizeof msg, "input %zu failed", i);
                dray_value cause = dray_value_retain(&dep->u.result);
                if (method < 0) {
                    a->init_status = DRAY_EDEP;
                    a->init_error = dray_value_retain(&cause);
                    atomic_store(&a->life, ACTOR_DEAD);
                }
                finish_call(rt, c, DRAY_EDEP, msg, cause.type == DRAY_T_ERROR ? &cause : NULL,
                            (int)i);
                dray_value_release(&cause);
                return;
            }
            tmp[i] = dep ? dep->u.result : args[i];
        }
    }
    struct dray_ctx ctx = {rt, c, w, a->state};
    dray_value result = dray_null();
    dray_status st;
    dray__clear_error();
    struct dray__evthread **evs = NULL; /* the task stream shows calls like tasks */
    if (__builtin_expect(atomic_load_explicit(&rt->events, memory_order_relaxed) != NULL, 0) &&
        a->call_names && (evs = dray__ev_slot_of(rt, w)))
        dray__ev_task(rt, evs, &a->call_names[method + 1]);
    if (method < 0) {
        void *state = NULL;
        st = a->cls->init ? a->cls->init(&ctx, tmp, c->nargs, &state) : DRAY_OK;
        if (st == DRAY_OK) {
            a->state = state;
            /* Keep the resolved arguments for restarts. */
            if (a->max_restarts && c->nargs) {
                a->init_args = calloc(c->nargs, sizeof(dray_value));
                if (a->init_args) {
                    for (size_t i = 0; i < c->nargs; i++)
                        a->init_args[i] = dray_value_retain(&tmp[i]);
                    a->n_init_args = c->nargs;
                }
            }
            atomic_store(&a->life, ACTOR_ALIVE);
        }
    } else {
        st = a->cls->methods[method].fn(&ctx, a->state, tmp, c->nargs, &result);
    }
    if (__builtin_expect(evs != NULL, 0))
        dray__ev_task_end(rt, evs, st);
    if (tmp != args && tmp != tmp_stack)
        free(tmp);
    if (st != DRAY_OK) {
        dray_value_release(&result);
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dray_last_error()[0] ? dray_last_error()
                                                             : dray_status_str(st));
        if (method < 0) {
            a->init_status = st;
            atomic_store(&a->life, ACTOR_DEAD);
        } else if (st == DRAY_EFATAL) {
            int none = 0;
            atomic_compare_exchange_strong(&a->kill_requested, &none, 1);
        }
        char full[256];
        snprintf(full, sizeof full, "%s.%s", a->cls->name, method_name(a, method));
        dray_error_create(st, full, msg, -1, NULL, &result);
        if (method < 0)
            a->init_error = dray_value_retain(&result);
    }
    release_args(c);
    dray__count(&dray__thread_counters(rt)->actor_calls, 1);
    dray__complete(rt, c, st, result, NULL);
}

/* A call dispatched to run concurrently (max_concurrency > 1). */
void dray__actor_run_call(dray_runtime *rt, dray__worker *w, dray_ref *c)
{
    struct dray_actor *a = c->extra->actor;
    atomic_fetch_add(&a->refs, 1); /* the call's own ref goes with its cell */
    run_call(rt, w, c);
    atomic_fetch_sub(&a->running, 1);
    poke(a);
    actor_release(a);
}

/* Processes a kill request between calls: restarts the actor when allowed. Returns false while
 * dispatched calls still run (the drain comes back when they finish). */
static bool handle_kill(dray_runtime *rt, dray__worker *w, struct dray_actor *a)
{
    if (atomic_load(&a->running) > 0)
        return false;
    int kind = atomic_exchange(&a->kill_requested, 0);
    if (atomic_load(&a->life) == ACTOR_ALIVE && a->cls->destroy)
        a->cls->destroy(a->state);
    a->state = NULL;
    int restarts = atomic_load(&a->restarts);
    if (kind == 1 && restarts < a->max_restarts) {
        atomic_store(&a->restarts, restarts + 1);
        struct dray_ctx ctx = {rt, NULL, w, NULL};
        void *state = NULL;
        dray__clear_error();
        dray_status st = a->cls->init ? a->cls->init(&ctx, a->init_args, a->n_init_args, &state)
                                      : DRAY_OK;
        if (st == DRAY_OK) {
            a->state = state;
            atomic_store(&a->life, ACTOR_ALIVE);
        } else {
            a->init_status = st;
            dray_value_release(&a->init_error);
            dray_error_create(st, a->cls->name, dray_last_error(), -1, NULL, &a->init_error);
            atomic_store(&a->life, ACTOR_DEAD);
        }
    } else {
        atomic_store(&a->life, ACTOR_DEAD);
        if (a->init_status == DRAY_OK)
            a->init_status = DRAY_EACTOR;
    }
    /* Calls already queued: they fail unless calls may be retried on the new instance. */
    if (atomic_load(&a->life) == ACTOR_DEAD || a->max_task_retries == 0) {
        bool busy;
        dray_ref *c;
        while ((c = mailbox_peek(a, &busy)) || busy) {
            if (!c || atomic_load(&c->deps_left) > 0 || !mailbox_pop(a))
                break;
            finish_call(rt, c, DRAY_EACTOR, "the actor died before running this call", NULL, -1);
        }
    }
    return true;
}

/* The drain: runs ready calls in mailbox order. It stops only if no event happened since it last
 * looked (the CAS on sched), so a call pushed or readied meanwhile is never stranded. */
static void drain(dray_runtime *rt, dray__worker *w, struct dray_actor *a)
{
    for (int budget = DRAIN_BUDGET; budget > 0;) {
        uint64_t seen = atomic_load_explicit(&a->sched, memory_order_seq_cst);
        bool idle = false;
        if (atomic_load_explicit(&a->kill_requested, memory_order_acquire) &&
            !handle_kill(rt, w, a)) {
            idle = true;
        } else {
            bool busy;
            dray_ref *c = mailbox_peek(a, &busy);
            if (!c) {
                if (busy)
                    continue;
                idle = true;
            } else if (atomic_load_explicit(&c->deps_left, memory_order_acquire) > 0) {
                idle = true;
            } else if (a->max_concurrency > 1 && c->extra->method >= 0 &&
                       atomic_load(&a->life) == ACTOR_ALIVE &&
                       atomic_load(&a->running) >= a->max_concurrency) {
                idle = true;
            } else if (mailbox_pop(a)) {
                budget--;
                if (c->extra->method >= 0 && atomic_load(&a->life) != ACTOR_ALIVE) {
                    char msg[1100];
                    bool ctor = a->init_status != DRAY_EACTOR;
                    snprintf(msg, sizeof msg, "the actor is dead%s%s",
                             ctor ? ": its constructor failed: " : "",
                             ctor ? dray_error_message(&a->init_error) : "");
                    finish_call(rt, c, DRAY_EACTOR, msg,
                                a->init_error.type == DRAY_T_ERROR ? &a->init_error : NULL, -1);
                } else if (a->max_concurrency > 1 && c->extra->method >= 0) {
                    atomic_fetch_add(&a->running, 1);
                    dray__schedule(rt, c); /* runs through dray__actor_run_call */
                } else {
                    run_call(rt, w, c);
                }
            }
        }
        if (idle && atomic_compare_exchange_strong_explicit(&a->sched, &seen, seen & ~(uint64_t)1,
                                                            memory_order_seq_cst,
                                                            memory_order_seq_cst)) {
            actor_release(a);
            return;
        }
    }
    /* Budget spent: let other work run, come back later (still scheduled). */
    dray__schedule(rt, &a->drain);
}

/* Entry from the worker loop: c is an actor's drain cell or a dispatched call. */
void dray__actor_run_drain(dray_runtime *rt, dray__worker *w, dray_ref *c)
{
    drain(rt, w, ACTOR_OF_DRAIN(c));
}

/* ==== Public API ==== */

dray_status dray_actor_create(dray_runtime *rt, const char *class_name, const dray_value *args,
                              size_t nargs, const dray_actor_opts *opts, dray_actor **out)
{
    if (!rt || !class_name || !out)
        return dray_set_error(DRAY_EINVAL, "dray_actor_create: runtime, class or out is NULL");
    const dray_actor_class *cls = dray_actor_class_find(class_name);
    if (!cls)
        return DRAY_ENOTFOUND;
    if (opts && (opts->max_concurrency < 0 || opts->max_restarts < 0 ||
                 opts->max_task_retries < 0 || opts->num_cpus < 0))
        return dray_set_error(DRAY_EINVAL, "dray_actor_create '%s': negative option", class_name);
    if (opts) {
        dray_status st = dray__resources_check(rt, opts->num_cpus, opts->resources,
                                               opts->n_resources);
        if (st)
            return st;
    }
    struct dray_actor *a = aligned_alloc(DRAY__CACHE_LINE,
                                         (sizeof(*a) + DRAY__CACHE_LINE - 1) & ~(size_t)63);
    if (!a)
        return dray_set_error(DRAY_ENOMEM, "out of memory creating actor '%s'", class_name);
    memset(a, 0, sizeof(*a));
    dray_status rst = rt->cluster ? dray__cluster_actor_create(rt, cls, args, nargs, opts,
                                                                &a->remote, &a->init_ref)
                                  : DRAY__HERE;
    if (rst != DRAY__HERE) {
        /* The actor lives on a node; this handle forwards to it. */
        dray_status st = rst;
        if (st) {
            free(a);
            return st;
        }
        atomic_init(&a->refs, 1);
        a->rt = rt;
        a->cls = cls;
        *out = a;
        return DRAY_OK;
    }
    atomic_init(&a->refs, 1);
    a->rt = rt;
    a->cls = cls;
    a->max_concurrency = opts && opts->max_concurrency ? opts->max_concurrency : 1;
    a->max_restarts = opts ? opts->max_restarts : 0;
    a->max_task_retries = opts ? opts->max_task_retries : 0;
    a->init_error = dray_null();
    a->stub.next = NULL;
    atomic_init(&a->tail, &a->stub);
    a->head = &a->stub;
    a->drain.kind = DRAY__CELL_ACTOR_DRAIN;
    /* The constructor is the first call in the mailbox. */
    dray_ref *init;
    dray_status st = dray__make_task(rt, NULL, args, nargs, NULL, DRAY__CELL_ACTOR_CALL, &init);
    if (st) {
        free(a);
        return st;
    }
    init->extra->actor = a;
    init->extra->method = -1;
    atomic_fetch_add(&a->refs, 1);
    a->init_ref = init; /* keeps the caller's count of the constructor's ref */
    pthread_mutex_lock(&rt->lock);
    a->call_names = method_names_locked(rt, cls);
    a->next = rt->actors;
    if (a->next)
        a->next->prev = a;
    rt->actors = a;
    pthread_mutex_unlock(&rt->lock);
    atomic_fetch_add(&rt->actors_live, 1);
    mailbox_push_call(a, init);
    if (atomic_fetch_sub_explicit(&init->deps_left, 1, memory_order_acq_rel) == 1)
        poke(a);
    *out = a;
    return DRAY_OK;
}

int dray_actor_method_index(const dray_actor *actor, const char *name)
{
    if (!actor || !name) {
        dray_set_error(DRAY_EINVAL, "dray_actor_method_index: actor or name is NULL");
        return -1;
    }
    for (size_t i = 0; i < actor->cls->n_methods; i++)
        if (strcmp(actor->cls->methods[i].name, name) == 0)
            return (int)i;
    dray_set_error(DRAY_ENOTFOUND, "actor class '%s' has no method '%s'", actor->cls->name, name);
    return -1;
}

dray_status dray_actor_call_m(dray_runtime *rt, dray_actor *actor, int method,
                              const dray_value *args, size_t nargs, dray_ref **out)
{
    if (!rt || !actor || !out)
        return dray_set_error(DRAY_EINVAL, "dray_actor_call: runtime, actor or out is NULL");
    if (method < 0 || (size_t)method >= actor->cls->n_methods)
        return dray_set_error(DRAY_ENOTFOUND, "actor class '%s' has no method number %d",
                              actor->cls->name, method);
    if (actor->remote)
        return dray__cluster_actor_call(rt, actor->remote, method, args, nargs, out);
    dray_ref *c;
    dray_status st = dray__make_task(rt, NULL, args, nargs, NULL, DRAY__CELL_ACTOR_CALL, &c);
    if (st)
        return st;
    c->extra->actor = actor;
    c->extra->method = method;
    atomic_fetch_add_explicit(&actor->refs, 1, memory_order_relaxed);
    mailbox_push_call(actor, c);
    if (atomic_fetch_sub_explicit(&c->deps_left, 1, memory_order_acq_rel) == 1)
        poke(actor);
    *out = c;
    return DRAY_OK;
}

dray_status dray_actor_call(dray_runtime *rt, dray_actor *actor, const char *method,
                            const dray_value *args, size_t nargs, dray_ref **out)
{
    if (!rt || !actor || !method || !out)
        return dray_set_error(DRAY_EINVAL, "dray_actor_call: NULL argument");
    int m = dray_actor_method_index(actor, method);
    if (m < 0)
        return DRAY_ENOTFOUND;
    return dray_actor_call_m(rt, actor, m, args, nargs, out);
}

dray_status dray_actor_ready(dray_runtime *rt, dray_actor *actor, int64_t timeout_ms)
{
    if (!rt || !actor)
        return dray_set_error(DRAY_EINVAL, "dray_actor_ready: runtime or actor is NULL");
    return dray_get(rt, actor->init_ref, timeout_ms, NULL);
}

dray_status dray_actor_kill(dray_runtime *rt, dray_actor *actor, bool no_restart)
{
    if (!rt || !actor)
        return dray_set_error(DRAY_EINVAL, "dray_actor_kill: runtime or actor is NULL");
    if (actor->remote)
        return dray__cluster_actor_kill(rt, actor->remote, no_restart);
    atomic_store(&actor->kill_requested, no_restart ? 2 : 1);
    poke(actor);
    return DRAY_OK;
}

int dray_actor_restarts(const dray_actor *actor)
{
    if (actor && actor->remote)
        return dray__cluster_actor_restarts(actor->remote);
    return actor ? atomic_load(&((dray_actor *)actor)->restarts) : 0;
}

void dray_actor_release(dray_actor *actor)
{
    if (!actor)
        return;
    dray_ref *init = actor->init_ref;
    actor->init_ref = NULL;
    dray_ref_release(init);
    if (actor->remote) {
        dray__cluster_actor_release(actor->remote);
        free(actor);
        return;
    }
    actor_release(actor);
}

/* At shutdown, after the workers stopped and the cells were dropped: frees actors still held. */
void dray__actors_destroy(dray_runtime *rt)
{
    while (rt->actors) {
        struct dray_actor *a = rt->actors;
        a->init_ref = NULL;
        actor_free(a);
    }
}

/* ==== Snapshot (the dashboard's actor list) ==== */

size_t dray__actors_snapshot(dray_runtime *rt, dray__actor_info *out, size_t max)
{
    static const char *life_names[] = {"PENDING_CREATION", "ALIVE", "DEAD"};
    size_t n = 0;
    pthread_mutex_lock(&rt->lock);
    for (struct dray_actor *a = rt->actors; a && n < max; a = a->next, n++) {
        int life = atomic_load_explicit(&a->life, memory_order_relaxed);
        out[n].id = (uint64_t)(uintptr_t)a;
        out[n].cls = a->cls ? a->cls->name : "?";
        out[n].state = life >= 0 && life <= ACTOR_DEAD ? life_names[life] : "?";
        out[n].restarts = atomic_load_explicit(&a->restarts, memory_order_relaxed);
        out[n].max_restarts = a->max_restarts;
        out[n].refs = atomic_load_explicit(&a->refs, memory_order_relaxed);
        out[n].running = atomic_load_explicit(&a->running, memory_order_relaxed);
        uint64_t popped = atomic_load_explicit(&a->popped, memory_order_relaxed);
        uint64_t pushed = atomic_load_explicit(&a->pushed, memory_order_relaxed);
        out[n].pending = pushed > popped ? pushed - popped : 0;
        out[n].remote = a->remote != NULL;
    }
    pthread_mutex_unlock(&rt->lock);
    return n;
}
