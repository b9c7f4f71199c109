/* Tasks and refs: submitting a task (arguments, dependency edges), running it on a worker, completing
 * it (waking dependents and waiters), errors as values with cause chains, retries, put/get/wait and
 * cancellation. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define MAX_HELP_DEPTH 48
#define SPIN_BEFORE_BLOCK 2000

/* ==== Small accessors ==== */

dray_value *dray__cell_args(dray_ref *c)
{
    return c->nargs <= 2 ? c->u.args : c->extra->args;
}

static inline bool cell_closed(const dray_ref *c)
{
    return atomic_load_explicit(&((dray_ref *)c)->dependents, memory_order_acquire) ==
           DRAY__CLOSED;
}

bool dray_ref_ready(const dray_ref *ref)
{
    return ref && cell_closed(ref);
}

uint64_t dray_ref_id(const dray_ref *ref)
{
    return (uint64_t)(uintptr_t)ref;
}

dray_ref *dray_ref_retain(dray_ref *ref)
{
    if (ref)
        atomic_fetch_add_explicit(&ref->refs, 1, memory_order_relaxed);
    return ref;
}

static void extra_free(struct dray__task_extra *x)
{
    if (!x)
        return;
    free(x->name);
    if (x->res) {
        for (size_t i = 0; i < x->n_res; i++)
            free((char *)x->res[i].name);
        free(x->res);
    }
    free(x);
}

/* Releases the arguments (pending cell) or the result (finished cell) and the extra block. */
void dray__cell_drop_values(dray_ref *c)
{
    if (c->kind == DRAY__CELL_FREE)
        return;
    if (cell_closed(c)) {
        dray_value_release(&c->u.result);
    } else {
        dray_value *args = c->nargs ? dray__cell_args(c) : NULL;
        for (size_t i = 0; i < c->nargs; i++)
            dray_value_release(&args[i]);
        c->nargs = 0;
    }
    if (c->extra) {
        if (c->kind == DRAY__CELL_ACTOR_CALL)
            dray__actor_drop_call(c);
        extra_free(c->extra);
        c->extra = NULL;
    }
}

void dray_ref_release(dray_ref *ref)
{
    if (!ref)
        return;
    if (atomic_fetch_sub_explicit(&ref->refs, 1, memory_order_acq_rel) != 1)
        return;
    dray__cell_drop_values(ref);
    dray__cell_free(ref);
}

/* ==== Errors ==== */

/* The error value for a task that failed with `st` and message `msg`. */
static dray_value make_error(dray_status st, const char *fn, int arg, const dray_value *cause,
                             const char *msg)
{
    dray_value e = dray_null();
    if (dray_error_create(st, fn, msg, arg, cause, &e) != DRAY_OK)
        e = dray_null();
    return e;
}

/* ==== Submitting ==== */

static dray_status check_args(const dray_value *args, size_t nargs)
{
    if (nargs && !args)
        return dray_set_error(DRAY_EINVAL, "arguments are NULL with nargs %zu", nargs);
    if (nargs > UINT16_MAX)
        return dray_set_error(DRAY_EINVAL, "%zu arguments: at most %u are allowed", nargs,
                              (unsigned)UINT16_MAX);
    for (size_t i = 0; i < nargs; i++) {
        const dray_value *v = &args[i];
        if (v->type >= DRAY__T_COUNT)
            return dray_set_error(DRAY_EINVAL, "argument %zu: invalid value type %u", i, v->type);
        if (v->type == DRAY_T_NODE)
            return dray_set_error(DRAY_EINVAL,
                                  "argument %zu: a graph node is only valid in dray_graph_add", i);
        if (v->type == DRAY_T_REF && !v->u.ref)
            return dray_set_error(DRAY_EINVAL, "argument %zu: NULL ref", i);
        if (((v->type >= DRAY_T_BYTES && v->type <= DRAY_T_MAP) || v->type == DRAY_T_ERROR) &&
            !v->u.blob)
            return dray_set_error(DRAY_EINVAL, "argument %zu: NULL %s", i,
                                  dray_type_name(v->type));
        if (v->type == DRAY_T_EXT && !v->u.ext)
            return dray_set_error(DRAY_EINVAL, "argument %zu: NULL extension object", i);
    }
    return DRAY_OK;
}

static bool opts_default(const dray_task_opts *o)
{
    return !o || (!o->name && (o->num_cpus == 0 || o->num_cpus == 1) && !o->n_resources &&
                  !o->max_retries);
}

static dray_status extra_from_opts(dray_runtime *rt, const dray_task_opts *o,
                                   struct dray__task_extra *x)
{
    if (!o)
        return DRAY_OK;
    if (o->num_cpus < 0 || o->max_retries < 0)
        return dray_set_error(DRAY_EINVAL, "task options: num_cpus %g / max_retries %d is negative",
                              o->num_cpus, o->max_retries);
    if (o->n_resources && !o->resources)
        return dray_set_error(DRAY_EINVAL, "task options: resources is NULL with n_resources %zu",
                              o->n_resources);
    dray_status st = dray__resources_check(rt, o->num_cpus, o->resources, o->n_resources);
    if (st)
        return st;
    if (o->name && !(x->name = strdup(o->name)))
        return dray_set_error(DRAY_ENOMEM, "out of memory copying a task name");
    x->retries_left = o->max_retries;
    x->retry_exceptions = o->retry_exceptions || o->max_retries > 0;
    x->num_cpus = o->num_cpus;
    if ((o->num_cpus != 0 && o->num_cpus != 1) || o->n_resources) {
        x->gated = true;
        if (o->n_resources) {
            x->res = calloc(o->n_resources, sizeof(dray_resource));
            if (!x->res)
                return dray_set_error(DRAY_ENOMEM, "out of memory copying resources");
            x->n_res = o->n_resources;
            for (size_t i = 0; i < o->n_resources; i++) {
                x->res[i].amount = o->resources[i].amount;
                if (!(x->res[i].name = strdup(o->resources[i].name)))
                    return dray_set_error(DRAY_ENOMEM, "out of memory copying resources");
            }
        }
    }
    return DRAY_OK;
}

/* Pushes edge e (target c) onto dep's dependents. False if dep is already complete. */
static bool add_edge(dray_ref *dep, dray__edge *e, uintptr_t target)
{
    e->target = target;
    dray__edge *head = atomic_load_explicit(&dep->dependents, memory_order_acquire);
    do {
        if (head == DRAY__CLOSED)
            return false;
        e->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&dep->dependents, &head, e,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire));
    return true;
}

bool dray__ref_on_complete(dray_ref *c, dray__callback *cb)
{
    return add_edge(c, &cb->edge, (uintptr_t)cb | 2);
}

/* Creates a cell for a task (not yet runnable): arguments retained, edges to pending refs placed.
 * deps_left holds one extra guard count that dray__submit_cell drops. */
dray_status dray__make_task(dray_runtime *rt, const dray_function *fn, const dray_value *args,
                            size_t nargs, const dray_task_opts *opts, uint8_t kind,
                            dray_ref **out)
{
    dray_status st = check_args(args, nargs);
    if (st)
        return st;
    size_t nrefs = 0;
    for (size_t i = 0; i < nargs; i++)
        nrefs += args[i].type == DRAY_T_REF;
    struct dray__task_extra *x = NULL;
    if (nargs > 2 || nrefs > 2 || !opts_default(opts) || kind == DRAY__CELL_ACTOR_CALL) {
        /* One block: the extra, then the arguments, then the edges beyond the inline two. */
        size_t nargs_heap = nargs > 2 ? nargs : 0, nedges = nrefs > 2 ? nrefs - 2 : 0;
        x = calloc(1, sizeof(*x) + nargs_heap * sizeof(dray_value) + nedges * sizeof(dray__edge));
        if (!x)
            return dray_set_error(DRAY_ENOMEM, "out of memory creating a task with %zu arguments",
                                  nargs);
        x->method = -1;
        if (nargs_heap)
            x->args = (dray_value *)(x + 1);
        if (nedges)
            x->edges = (dray__edge *)((dray_value *)(x + 1) + nargs_heap);
        if ((st = extra_from_opts(rt, opts, x)))
            goto out_free_extra;
    }
    dray_ref *c;
    if ((st = dray__cell_alloc(rt, &c)))
        goto out_free_extra;
    atomic_init(&c->refs, 2); /* the caller's ref and the pending execution */
    atomic_init(&c->deps_left, 1);
    c->status = DRAY_OK;
    c->kind = kind;
    c->flags = (nrefs ? DRAY__F_REF_ARGS : 0) | (x ? DRAY__F_EXTRA : 0);
    c->nargs = (uint16_t)nargs;
    atomic_init(&c->cancel, 0);
    c->fn = fn;
    atomic_init(&c->dependents, NULL);
    c->next = NULL;
    c->extra = x;
    dray_value *dst = nargs <= 2 ? c->u.args : x->args;
    size_t edge = 0;
    for (size_t i = 0; i < nargs; i++) {
        dst[i] = dray_value_retain(&args[i]);
        if (args[i].type != DRAY_T_REF)
            continue;
        dray_ref *dep = args[i].u.ref;
        if (cell_closed(dep))
            continue;
        dray__edge *e = edge < 2 ? &c->edges[edge] : &x->edges[edge - 2];
        atomic_fetch_add_explicit(&c->deps_left, 1, memory_order_relaxed);
        if (add_edge(dep, e, (uintptr_t)c))
            edge++;
        else
            atomic_fetch_sub_explicit(&c->deps_left, 1, memory_order_relaxed);
    }
    dray__counters *cnt = dray__thread_counters(rt);
    dray__count(&cnt->submitted, 1);
    if (__builtin_expect(atomic_load_explicit(&rt->events, memory_order_relaxed) != NULL, 0) &&
        kind == DRAY__CELL_TASK)
        dray__ev_submit(rt, cnt, fn);
    *out = c;
    return DRAY_OK;
out_free_extra:
    extra_free(x);
    return st;
}

/* Drops the guard count: the task becomes runnable when its last dependency completes. */
void dray__submit_cell(dray_runtime *rt, dray_ref *c)
{
    if (atomic_fetch_sub_explicit(&c->deps_left, 1, memory_order_acq_rel) == 1)
        dray__schedule(rt, c);
}

dray_status dray_submit_fn(dray_runtime *rt, const dray_function *fn, const dray_value *args,
                           size_t nargs, const dray_task_opts *opts, dray_ref **out)
{
    if (!rt || !fn || !fn->fn || !out)
        return dray_set_error(DRAY_EINVAL, "dray_submit: runtime, function or out is NULL");
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
        return dray_set_error(DRAY_ESHUTDOWN, "dray_submit '%s': the runtime is shut down",
                              fn->name);
    if (rt->cluster)
        return dray__cluster_submit(rt, fn, args, nargs, opts, out);
    dray_ref *c;
    dray_status st = dray__make_task(rt, fn, args, nargs, opts, DRAY__CELL_TASK, &c);
    if (st)
        return st;
    *out = c;
    dray__submit_cell(rt, c);
    return DRAY_OK;
}

dray_status dray_submit(dray_runtime *rt, const char *fn_name, const dray_value *args,
                        size_t nargs, const dray_task_opts *opts, dray_ref **out)
{
    if (!rt || !fn_name || !out)
        return dray_set_error(DRAY_EINVAL, "dray_submit: runtime, function name or out is NULL");
    const dray_function *fn = dray__fn_lookup(rt, fn_name);
    if (!fn)
        return dray_set_error(DRAY_ENOTFOUND, "dray_submit: no task function is registered as '%s'",
                              fn_name);
    return dray_submit_fn(rt, fn, args, nargs, opts, out);
}

dray_status dray_put(dray_runtime *rt, const dray_value *v, dray_ref **out)
{
    if (!rt || !v || !out)
        return dray_set_error(DRAY_EINVAL, "dray_put: runtime, value or out is NULL");
    dray_status st = check_args(v, 1);
    if (st)
        return st;
    dray_ref *c;
    if ((st = dray__cell_alloc(rt, &c)))
        return st;
    atomic_init(&c->refs, 1);
    atomic_init(&c->deps_left, 0);
    c->status = DRAY_OK;
    c->kind = DRAY__CELL_PUT;
    c->flags = 0;
    c->nargs = 0;
    atomic_init(&c->cancel, 0);
    c->fn = NULL;
    c->next = NULL;
    c->extra = NULL;
    c->u.result = dray_value_retain(v);
    atomic_init(&c->dependents, DRAY__CLOSED);
    *out = c;
    return DRAY_OK;
}

/* ==== Running ==== */

dray_runtime *dray_ctx_runtime(dray_ctx *ctx)
{
    return ctx ? ctx->rt : NULL;
}

dray_status dray_ctx_fail(dray_ctx *ctx, dray_status st, const char *fmt, ...)
{
    (void)ctx;
    va_list ap;
    va_start(ap, fmt);
    dray__set_errorv(st, fmt, ap);
    va_end(ap);
    return st;
}

bool dray_ctx_canceled(dray_ctx *ctx)
{
    return ctx && ctx->cell && atomic_load_explicit(&ctx->cell->cancel, memory_order_relaxed);
}

int dray_ctx_worker(dray_ctx *ctx)
{
    return ctx && ctx->worker ? ctx->worker->index : -1;
}

void *dray_ctx_actor_state(dray_ctx *ctx)
{
    return ctx ? ctx->actor_state : NULL;
}

static void signal_waiter(dray__waiter *w)
{
    uint32_t ready = atomic_fetch_add_explicit(&w->ready, 1, memory_order_acq_rel) + 1;
    if (ready == w->need) {
        atomic_fetch_add_explicit(&w->futex, 1, memory_order_release);
        dray__futex_wake(&w->futex, 1);
    }
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1)
        free(w);
}

static void ready_dependent(dray_runtime *rt, dray_ref *d, dray_ref **next_out)
{
    if (d->kind == DRAY__CELL_ACTOR_CALL) {
        dray__actor_call_ready(rt, d);
    } else if (next_out && !*next_out) {
        *next_out = d;
    } else {
        dray__schedule(rt, d);
    }
}

void dray__complete(dray_runtime *rt, dray_ref *c, dray_status st, dray_value result,
                    dray_ref **next_out)
{
    c->u.result = result;
    c->status = (int16_t)st;
    dray__edge *list = atomic_exchange_explicit(&c->dependents, DRAY__CLOSED, memory_order_acq_rel);
    /* Reverse so dependents are readied in the order they were submitted. */
    dray__edge *rev = NULL;
    while (list) {
        dray__edge *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev) {
        dray__edge *next = rev->next;
        if (rev->target & 2) {
            dray__callback *cb = (dray__callback *)(rev->target & ~(uintptr_t)3);
            cb->fn(cb, c);
        } else if (rev->target & 1) {
            signal_waiter((dray__waiter *)(rev->target & ~(uintptr_t)1));
        } else {
            dray_ref *d = (dray_ref *)rev->target;
            if (atomic_fetch_sub_explicit(&d->deps_left, 1, memory_order_acq_rel) == 1)
                ready_dependent(rt, d, next_out);
        }
        rev = next;
    }
    if (c->kind != DRAY__CELL_PUT) {
        dray__counters *cnt = dray__thread_counters(rt);
        dray__count(&cnt->finished, 1);
        if (st) {
            dray__count(&cnt->failed, 1);
            if (st == DRAY_ECANCELED)
                dray__count(&cnt->canceled, 1);
        }
    }
    dray_ref_release(c);
}

/* Replaces ref arguments by their values in tmp[]. On a failed dependency returns its index. */
static int resolve_args(dray_value *args, size_t nargs, dray_value *tmp)
{
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].type != DRAY_T_REF) {
            tmp[i] = args[i];
            continue;
        }
        dray_ref *dep = args[i].u.ref;
        if (dep->status != DRAY_OK)
            return (int)i;
        tmp[i] = dep->u.result;
    }
    return -1;
}

static const char *cell_name(const dray_ref *c)
{
    if (c->extra && c->extra->name)
        return c->extra->name;
    return c->fn ? c->fn->name : "?";
}

/* Runs the function of c with args resolved; returns its status, the result in *result. */
static dray_status call_function(dray_runtime *rt, dray__worker *w, dray_ref *c, dray_value *args,
                                 dray_value *result, int *failed_arg)
{
    dray_value stack_tmp[8];
    dray_value *tmp = args;
    dray_status st;
    *failed_arg = -1;
    if (c->flags & DRAY__F_REF_ARGS) {
        tmp = c->nargs <= 8 ? stack_tmp : malloc(c->nargs * sizeof(dray_value));
        if (!tmp)
            return dray_set_error(DRAY_ENOMEM, "out of memory resolving arguments");
        int bad = resolve_args(args, c->nargs, tmp);
        if (bad >= 0) {
            if (tmp != stack_tmp)
                free(tmp);
            *failed_arg = bad;
            return DRAY_EDEP;
        }
    }
    dray_ctx ctx = {rt, c, w, NULL};
    *result = dray_null();
    for (;;) {
        dray__clear_error();
        st = c->fn->fn(&ctx, tmp, c->nargs, result);
        if (st == DRAY_OK || st == DRAY__DEFERRED)
            break;
        if (!c->extra || !c->extra->retry_exceptions || c->extra->retries_left <= 0)
            break;
        c->extra->retries_left--;
        dray__count(&dray__thread_counters(rt)->retried, 1);
        dray_value_release(result);
    }
    if (tmp != args && tmp != stack_tmp)
        free(tmp);
    return st;
}

dray_ref *dray__run_cell(dray_runtime *rt, dray__worker *w, dray_ref *c)
{
    if (c->kind == DRAY__CELL_ACTOR_DRAIN) {
        dray__actor_run_drain(rt, w, c);
        return NULL;
    }
    if (c->kind == DRAY__CELL_ACTOR_CALL) {
        dray__actor_run_call(rt, w, c);
        return NULL;
    }
    dray_value result = dray_null();
    dray_status st;
    int failed_arg = -1;
    dray_value *args = dray__cell_args(c);
    bool gated = c->extra && c->extra->gated;
    if (atomic_load_explicit(&c->cancel, memory_order_relaxed) ||
        atomic_load_explicit(&rt->canceling, memory_order_relaxed)) {
        st = DRAY_ECANCELED;
        dray_set_error(st, "canceled before it started");
    } else {
        if (gated && !dray__resources_acquire(rt, c))
            return NULL; /* parked until resources free up */
        struct dray__evthread **evs = NULL;
        if (__builtin_expect(atomic_load_explicit(&rt->events, memory_order_relaxed) != NULL, 0) &&
            (evs = dray__ev_slot_of(rt, w)))
            dray__ev_task(rt, evs, c->fn);
        st = call_function(rt, w, c, args, &result, &failed_arg);
        if (__builtin_expect(evs != NULL, 0))
            dray__ev_task_end(rt, evs, st == DRAY__DEFERRED ? DRAY_OK : st);
        if (gated)
            dray__resources_release(rt, c->extra->num_cpus, c->extra->res, c->extra->n_res);
        if (st == DRAY__DEFERRED)
            return NULL; /* the function released c's arguments; c completes later */
    }
    if (st != DRAY_OK && failed_arg < 0 && result.type == DRAY_T_ERROR) {
        st = dray_error_status(&result); /* the function built its own error value */
    } else if (st != DRAY_OK) {
        dray_value_release(&result);
        char msg[1200];
        const dray_value *cause = NULL;
        if (failed_arg >= 0) {
            dray_ref *dep = args[failed_arg].u.ref;
            cause = dep->u.result.type == DRAY_T_ERROR ? &dep->u.result : NULL;
            st = dep->status == DRAY_ECANCELED ? DRAY_ECANCELED : DRAY_EDEP;
            snprintf(msg, sizeof msg, "input %d failed", failed_arg);
        } else {
            snprintf(msg, sizeof msg, "%s", dray_last_error()[0] ? dray_last_error()
                                                                 : dray_status_str(st));
        }
        result = make_error(st, cell_name(c), failed_arg, cause, msg);
    }
    /* The arguments share storage with the result: release them first. */
    for (size_t i = 0; i < c->nargs; i++)
        dray_value_release(&args[i]);
    c->nargs = 0;
    dray_ref *next = NULL;
    dray__complete(rt, c, st, result, &next);
    return next;
}

/* ==== Waiting ==== */

/* Blocks on a waiter until `need` of its cells completed or the deadline (ns, -1 none) passes. */
static bool waiter_block(dray__waiter *wt, int64_t deadline)
{
    for (;;) {
        uint32_t seen = atomic_load_explicit(&wt->futex, memory_order_acquire);
        if (atomic_load_explicit(&wt->ready, memory_order_acquire) >= wt->need)
            return true;
        if (deadline < 0) {
            dray__futex_wait(&wt->futex, seen, NULL);
            continue;
        }
        int64_t left = deadline - dray__now_ns();
        if (left <= 0)
            return atomic_load_explicit(&wt->ready, memory_order_acquire) >= wt->need;
        struct timespec ts = {left / 1000000000, left % 1000000000};
        dray__futex_wait(&wt->futex, seen, &ts);
    }
}

static void waiter_release(dray__waiter *wt)
{
    if (atomic_fetch_sub_explicit(&wt->refs, 1, memory_order_acq_rel) == 1)
        free(wt);
}

/* Registers one waiter on cells[0..n) needing `need` completions and blocks. Returns true if enough
 * completed before the deadline. */
static bool block_on(dray_ref *const *cells, size_t n, size_t need, int64_t deadline)
{
    dray__waiter *wt = malloc(sizeof(*wt) + n * sizeof(dray__edge));
    if (!wt)
        return false;
    dray__edge *edges = (dray__edge *)(wt + 1);
    atomic_init(&wt->refs, (uint32_t)n + 1);
    atomic_init(&wt->ready, 0);
    atomic_init(&wt->futex, 0);
    wt->need = (uint32_t)need;
    uint32_t already = 0, unused = 0;
    for (size_t i = 0; i < n; i++) {
        if (!add_edge(cells[i], &edges[i], (uintptr_t)wt | 1)) {
            already++;
            unused++;
        }
    }
    if (already)
        atomic_fetch_add_explicit(&wt->ready, already, memory_order_acq_rel);
    if (unused)
        atomic_fetch_sub_explicit(&wt->refs, unused, memory_order_acq_rel);
    bool ok = waiter_block(wt, deadline);
    waiter_release(wt);
    return ok;
}

static inline int64_t deadline_of(int64_t timeout_ms)
{
    return timeout_ms < 0 ? -1 : dray__now_ns() + timeout_ms * 1000000;
}

void dray__worker_blocking(dray_runtime *rt, int delta);

/* Waits until `need` of cells[0..n) are complete. Inside a worker, runs other work meanwhile. */
dray_status dray__wait_some(dray_runtime *rt, dray_ref *const *cells, size_t n, size_t need,
                            int64_t timeout_ms)
{
    int64_t deadline = deadline_of(timeout_ms);
    dray__tls *tls = &dray__tls_slot;
    dray__worker *w = tls->worker && tls->worker->rt == rt ? tls->worker : NULL;
    size_t spins = 0, first_open = 0;
    bool cluster_polled = w || !rt->cluster || !dray__cluster_wait;
    for (;;) {
        /* Done cells stay done: skip the finished prefix instead of rescanning it. */
        while (first_open < n && cell_closed(cells[first_open]))
            first_open++;
        size_t done = first_open;
        for (size_t i = first_open; i < n && done < need; i++)
            done += cell_closed(cells[i]);
        if (done >= need) {
            if (atomic_load_explicit(&rt->events, memory_order_relaxed)) {
                struct dray__evthread **evs = dray__ev_slot(rt, w);
                dray__ev_idle(rt, evs ? *evs : NULL); /* back to the caller: close its block */
            }
            return DRAY_OK;
        }
        /* The clock is read every 64 rounds while spinning, and always before blocking. */
        if (deadline >= 0 && (spins % 64 == 0 || spins + 1 >= SPIN_BEFORE_BLOCK) &&
            dray__now_ns() >= deadline)
            return dray_set_error(DRAY_ETIMEDOUT, "timed out after %lld ms", (long long)timeout_ms);
        if (!cluster_polled) {
            /* The caller may read its result off the node's connection (no loop-thread hop). */
            cluster_polled = true;
            if (dray__cluster_wait(rt, cells + first_open, n - first_open, deadline))
                continue;
        }
        /* Help: run queued work while waiting (bounded nesting keeps the stack small). With a
         * deadline an external thread does not help: the task it picks could outlast it. */
        if ((w && w->help_depth < MAX_HELP_DEPTH) || (!w && deadline < 0)) {
            if (w)
                w->help_depth++;
            bool ran = dray__find_work_and_run(rt, w);
            if (w)
                w->help_depth--;
            if (ran) {
                spins = 0;
                continue;
            }
        }
        if (++spins < SPIN_BEFORE_BLOCK) {
            __builtin_ia32_pause();
            continue;
        }
        if (w)
            dray__worker_blocking(rt, 1);
        if (atomic_load_explicit(&rt->events, memory_order_relaxed)) {
            struct dray__evthread **evs = dray__ev_slot(rt, w);
            dray__ev_idle(rt, evs ? *evs : NULL); /* close this thread's block before sleeping */
        }
        int64_t slice = dray__now_ns() + 2000000; /* recheck for new work every 2 ms */
        block_on(cells, n, need, deadline >= 0 && deadline < slice ? deadline : slice);
        if (w)
            dray__worker_blocking(rt, -1);
        spins = 0;
    }
}

dray_status dray__wait_cell(dray_runtime *rt, dray_ref *c, int64_t timeout_ms)
{
    return dray__wait_some(rt, &c, 1, 1, timeout_ms);
}

static dray_status report_failure(dray_ref *c, dray_value *out)
{
    char buf[1024];
    if (c->u.result.type == DRAY_T_ERROR)
        dray_error_format(&c->u.result, buf, sizeof buf);
    else
        snprintf(buf, sizeof buf, "%s", dray_status_str(c->status));
    if (out)
        *out = dray_value_retain(&c->u.result);
    return dray_set_error(c->status, "%s", buf);
}

dray_status dray_get(dray_runtime *rt, dray_ref *ref, int64_t timeout_ms, dray_value *out)
{
    if (!rt || !ref)
        return dray_set_error(DRAY_EINVAL, "dray_get: runtime or ref is NULL");
    if (!cell_closed(ref)) {
        dray_status st = dray__wait_cell(rt, ref, timeout_ms);
        if (st)
            return st;
    }
    if (ref->status != DRAY_OK)
        return report_failure(ref, out);
    if (out)
        *out = dray_value_retain(&ref->u.result);
    if (out && rt->cluster && out->type == DRAY_T_EXT && dray__cluster_resolve)
        return dray__cluster_resolve(rt, out);
    return DRAY_OK;
}

dray_status dray_wait(dray_runtime *rt, dray_ref *const *refs, size_t n, size_t num_ready,
                      int64_t timeout_ms, bool *ready, size_t *count)
{
    if (!rt || (!refs && n))
        return dray_set_error(DRAY_EINVAL, "dray_wait: runtime or refs is NULL");
    if (num_ready > n)
        return dray_set_error(DRAY_EINVAL, "dray_wait: num_ready %zu is more than the %zu refs",
                              num_ready, n);
    for (size_t i = 0; i < n; i++)
        if (!refs[i])
            return dray_set_error(DRAY_EINVAL, "dray_wait: ref %zu is NULL", i);
    dray_status st = DRAY_OK;
    if (rt->progress && n > 1 && num_ready == n && timeout_ms < 0)
        dray__progress_wait(rt, refs, n, "wait", NULL);
    else
        st = dray__wait_some(rt, refs, n, num_ready, timeout_ms);
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        bool r = cell_closed(refs[i]);
        c += r;
        if (ready)
            ready[i] = r;
    }
    if (count)
        *count = c;
    if (st == DRAY_ETIMEDOUT)
        dray_set_error(st, "dray_wait: %zu of %zu refs ready after %lld ms, %zu wanted", c, n,
                       (long long)timeout_ms, num_ready);
    return st;
}

dray_status dray__wait_all(dray_runtime *rt, dray_ref *const *refs, size_t n)
{
    return dray__wait_some(rt, refs, n, n, -1);
}

dray_status dray_cancel(dray_runtime *rt, dray_ref *ref)
{
    if (!rt || !ref)
        return dray_set_error(DRAY_EINVAL, "dray_cancel: runtime or ref is NULL");
    atomic_store_explicit(&ref->cancel, 1, memory_order_relaxed);
    return DRAY_OK;
}

void dray__task_resources(const dray_ref *c, double *cpus, const dray_resource **r, size_t *n)
{
    *cpus = c->extra ? c->extra->num_cpus : 1;
    *r = c->extra ? c->extra->res : NULL;
    *n = c->extra ? c->extra->n_res : 0;
}
