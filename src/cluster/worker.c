/* A worker node: joins the head, sends heartbeats, accepts drivers that know the secret, and runs
 * their tasks on a local runtime (N executor threads); each result goes straight back to the driver
 * that submitted it. Tasks submitted from inside a task run on this node's runtime first and spill
 * to other nodes when it is saturated (spill.c); other nodes' spilled tasks run here like drivers'. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/events.h"
#include "internal.h"

#define PING_NS (500 * 1000000LL)
#define RAW_LIMIT (64u << 10)

/* An actor hosted here for a driver (touched only on the loop thread). */
typedef struct wactor {
    _Atomic int refs; /* the table's and a pending ready job's */
    uint64_t id;
    dray_actor *actor;
    dray__conn *owner; /* the driver that created it (borrowed: freed with its connection) */
    struct wactor *next;
} wactor;

typedef struct worker {
    dray_runtime *rt;
    dray__loop *loop;
    dray__conn *head; /* retained */
    int64_t next_ping;
    _Atomic int64_t done, running;
    wactor *actors;
    dray__store *store;
    char self[80]; /* this node's address, as registered */
    _Atomic int64_t queued; /* jobs received and not started yet */
    /* Jobs wait here until the pool has room (at most pool_limit handed over), so a driver can take
     * back those not started (work stealing by an idle node). */
    pthread_mutex_t qlock;
    struct job *qhead, *qtail;
    int in_pool, pool_limit;
    _Atomic uint64_t stolen;
    _Atomic uint64_t inline_runs;
    bool inline_ok; /* DRAY_WORKER_INLINE=0 turns running short tasks on the loop thread off */
    dray__trace *trace; /* task events for the head's dashboard (trace.c), once it asked */
    /* Per task function, a running average of its run time (ns; 0 = not seen), for deciding what
     * may run on the loop thread. Keyed by function pointer; a collision just forgets. */
    struct {
        _Atomic(const dray_function *) fn;
        _Atomic int64_t avg_ns;
    } speed[256];
    /* Memory monitor (Dask's process-memory thresholds): a thread checks the process's resident
     * memory every MONITOR_NS (and executors after each stored result); above the spill bytes it
     * spills objects, above pause it stops starting tasks until memory is back under it, above
     * terminate the node exits. */
    dray__store_limits lim;
    _Atomic bool paused;
    _Atomic uint64_t pauses;
    pthread_mutex_t memlock; /* one check at a time */
    pthread_mutex_t mlock;   /* guards stop_monitor */
    pthread_cond_t mcond;
    bool stop_monitor, monitor_started;
    pthread_t monitor;
} worker;

#define MONITOR_NS (100 * 1000000LL) /* Dask's distributed.worker.memory.monitor-interval */

#define INLINE_MAX_NS 20000 /* functions averaging under this run on the loop thread when idle */

/* Sends an actor call's result once its cell completes (on the completing thread). */
typedef struct reply {
    dray__callback cb;
    dray_runtime *rt; /* the node's */
    dray__conn *conn; /* retained */
    uint64_t rid;
    dray_ref *ref;
} reply;

typedef struct job {
    worker *w;
    dray__conn *conn; /* retained */
    uint64_t rid;
    const dray_function *fn;
    dray_value args;  /* list */
    int retries;
    bool retry_exc;
    struct job *next; /* the node's queue */
} job;

static void check_memory(worker *w);

/* Whether c is another node's client (role "node": its nested tasks spilled here, spill.c). */
static bool from_node(const dray__conn *c)
{
    return !strcmp(dray__conn_role(c), "node");
}

/* Makes a large result (BYTES value *data, retained) an object of the node's store and answers
 * with its handle: true when done. */
static bool send_stored(worker *w, dray__conn *c, uint64_t rid, const dray_value *data,
                        bool encoded)
{
    uint64_t id;
    size_t len = 0;
    dray_bytes_data(data, &len);
    if (dray__store_adopt(w->store, w->self, c, data, &id)) {
        dray__log("object store: %s; sending the result inline", dray_last_error());
        return false;
    }
    check_memory(w); /* memory just grew by a large result: do not wait for the monitor */
    dray_value d[3] = {dray_int((int64_t)id), dray_int((int64_t)len), dray_bool(encoded)}, items[2],
               ctl;
    items[0] = dray_int(DRAY_OK);
    if (dray_list_create(d, 3, &items[1]) == DRAY_OK) {
        if (dray_list_create(items, 2, &ctl) == DRAY_OK) {
            if (dray__conn_send_value_any_order(c, DRAY__MSG_RESULT, DRAY__RF_STORED, rid, &ctl,
                                                NULL))
                dray__log("cannot send result %llu to %s: %s", (unsigned long long)rid,
                          dray__conn_peer(c), dray_last_error());
            dray_value_release(&ctl);
        }
        dray_value_release(&items[1]);
    }
    return true;
}

/* Sends a task's outcome. With a store (w: a task's result, which may overtake other messages and
 * so take the same-host lane), large results stay in it and the driver gets a handle; else large
 * BYTES results go as a data section from their own memory. */
static void send_result_w(worker *w, dray__conn *c, uint64_t rid, dray_status st,
                          dray_value *result, uint8_t extra_flags)
{
    dray_value items[2] = {dray_int(st), dray_null()}, ctl;
    const dray_value *data = NULL;
    uint8_t flags = extra_flags;
    void *enc = NULL;
    size_t len = 0;
    dray_value encv = dray_null();
    const void *raw = st == DRAY_OK && result->type == DRAY_T_BYTES
                          ? dray_bytes_data(result, &len) : NULL;
    if (raw && len >= RAW_LIMIT && w && send_stored(w, c, rid, result, false))
        return;
    if (raw && len >= RAW_LIMIT) {
        flags |= DRAY__RF_RAW;
        data = result;
    } else if (st == DRAY_OK) {
        dray_status est = dray_value_encode(result, &enc, &len);
        if (est) {
            /* Not serialisable (a ref, an extension without an encoder): fail the task clearly. */
            char msg[600];
            snprintf(msg, sizeof msg, "its result cannot be sent back: %s", dray_last_error());
            dray_value_release(result);
            dray_error_create(est, "result", msg, -1, NULL, result);
            st = est;
            items[0] = dray_int(st);
        } else if (len >= RAW_LIMIT && w &&
                   dray__bytes_wrap(enc, len, dray_free, enc, &encv) == DRAY_OK) {
            /* The encoded bytes become the object as they are (the wrap frees them). */
            enc = NULL;
            if (send_stored(w, c, rid, &encv, true)) {
                dray_value_release(&encv);
                return;
            }
            flags |= DRAY__RF_ENCODED;
            data = &encv;
        } else if (len >= RAW_LIMIT) {
            void *p;
            if (dray_bytes_create_uninit(len, &encv, &p) == DRAY_OK) {
                memcpy(p, enc, len);
                flags |= DRAY__RF_ENCODED;
                data = &encv;
            }
        }
        if (!data && !st)
            items[1] = *result;
    }
    dray_value fallback = dray_null();
    if (st) {
        if (result->type != DRAY_T_ERROR)
            dray_error_create(st, "task", dray_status_str(st), -1, NULL, &fallback);
        items[1] = result->type == DRAY_T_ERROR ? *result : fallback;
    }
    if (dray_list_create(items, 2, &ctl) == DRAY_OK) {
        if ((w ? dray__conn_send_value_any_order : dray__conn_send_value)(c, DRAY__MSG_RESULT, flags,
                                                                        rid, &ctl, data))
            dray__log("cannot send result %llu to %s: %s", (unsigned long long)rid,
                      dray__conn_peer(c), dray_last_error());
        dray_value_release(&ctl);
    }
    dray_free(enc);
    dray_value_release(&encv);
    dray_value_release(&fallback);
}

static void send_result(dray__conn *c, uint64_t rid, dray_status st, dray_value *result,
                        uint8_t extra_flags)
{
    send_result_w(NULL, c, rid, st, result, extra_flags);
}

typedef struct fetch_ctx {
    worker *w;
    dray__conn *owner;
} fetch_ctx;

/* A ref's value inside a list or map argument: an object handle becomes the object (pulled here
 * when it is elsewhere), anything else stays as it is. */
static dray_status fetch_nested(void *ctx, const dray_value *in, dray_value *out)
{
    fetch_ctx *f = ctx;
    const char *holder;
    uint64_t id, size;
    bool encoded;
    if (!dray__cluster_obj_info(in, &holder, &id, &size, &encoded)) {
        *out = dray_value_retain(in);
        return DRAY_OK;
    }
    dray_value b;
    dray_status st = dray__store_fetch(f->w->store, f->owner, holder, id, size, &b);
    if (st || !encoded) {
        if (!st)
            *out = b;
        return st;
    }
    size_t len;
    const void *p = dray_bytes_data(&b, &len);
    st = dray_value_decode(p, len, out);
    dray_value_release(&b);
    return st;
}

/* Replaces object handles among args[0..n) by the objects' bytes (a view of this node's store,
 * pulled from the holder first when it is elsewhere), and refs inside list or map arguments
 * (markers) by refs of this node's runtime holding their values: out[i] owned. */
static dray_status resolve_objects(worker *w, dray__conn *owner, const dray_value *args, size_t n,
                                   dray_value *out, size_t *bad)
{
    for (size_t i = 0; i < n; i++)
        out[i] = dray_null();
    for (size_t i = 0; i < n; i++) {
        const char *holder;
        uint64_t id, size;
        bool encoded;
        if (dray__nested_markers(&args[i])) {
            fetch_ctx f = {w, owner};
            dray_status st = dray__nested_from_wire(w->rt, &args[i], fetch_nested, &f, &out[i]);
            if (st) {
                char msg[600];
                snprintf(msg, sizeof msg, "%s", dray_last_error());
                for (size_t k = 0; k < i; k++)
                    dray_value_release(&out[k]);
                *bad = i;
                return dray_set_error(DRAY_ENET, "input %zu (a list or map holding refs): %s", i,
                                      msg);
            }
            continue;
        }
        if (!dray__cluster_obj_info(&args[i], &holder, &id, &size, &encoded)) {
            out[i] = dray_value_retain(&args[i]);
            continue;
        }
        dray_value b;
        dray_status st = dray__store_fetch(w->store, owner, holder, id, size, &b);
        if (!st && encoded) {
            size_t len;
            const void *p = dray_bytes_data(&b, &len);
            st = dray_value_decode(p, len, &out[i]);
            dray_value_release(&b);
        } else if (!st) {
            out[i] = b;
        }
        if (st) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s", dray_last_error());
            for (size_t k = 0; k < i; k++)
                dray_value_release(&out[k]);
            *bad = i;
            return dray_set_error(DRAY_ENET, "input %zu (object %llu of %s): %s", i,
                                  (unsigned long long)id, holder, msg);
        }
    }
    return DRAY_OK;
}

/* Sends an error as a RESULT. */
static void send_error(dray__conn *c, uint64_t rid, dray_status st, const char *fn, const char *msg)
{
    dray_value err;
    if (dray_error_create(st, fn, msg, -1, NULL, &err) == DRAY_OK) {
        send_result(c, rid, st, &err, 0);
        dray_value_release(&err);
    }
}

/* The local task that runs a remote task: calls the function, retries on failure when asked, and
 * sends the result to the driver. */
static size_t speed_slot(const dray_function *fn)
{
    return ((uintptr_t)fn >> 4) * 0x9e3779b97f4a7c15ull >> 56;
}

/* Records that one run of fn took ns. */
static void note_speed(worker *w, const dray_function *fn, int64_t ns)
{
    size_t k = speed_slot(fn);
    if (atomic_load_explicit(&w->speed[k].fn, memory_order_relaxed) != fn) {
        atomic_store_explicit(&w->speed[k].avg_ns, ns, memory_order_relaxed);
        atomic_store_explicit(&w->speed[k].fn, fn, memory_order_release);
        return;
    }
    int64_t avg = atomic_load_explicit(&w->speed[k].avg_ns, memory_order_relaxed);
    atomic_store_explicit(&w->speed[k].avg_ns, avg + (ns - avg) / 8, memory_order_relaxed);
}

/* Whether fn has been seen to be short. */
static bool is_short(worker *w, const dray_function *fn)
{
    size_t k = speed_slot(fn);
    return atomic_load_explicit(&w->speed[k].fn, memory_order_acquire) == fn &&
           atomic_load_explicit(&w->speed[k].avg_ns, memory_order_relaxed) < INLINE_MAX_NS;
}

/* Runs job j (on an executor, or on the loop thread) and sends its result; frees j. Returns the
 * task's status. */
static dray_status run_job(dray_ctx *ctx, job *j)
{
    worker *w = j->w;
    atomic_fetch_add(&w->running, 1);
    dray_value result = dray_null();
    size_t n = dray_list_len(&j->args);
    dray_value stack[8], *a = n <= 8 ? stack : malloc(n * sizeof(dray_value));
    size_t bad = 0;
    dray_status st = !a ? dray_set_error(DRAY_ENOMEM, "out of memory")
                        : resolve_objects(w, j->conn, n ? dray_list_get(&j->args, 0) : NULL, n, a,
                                          &bad);
    bool resolved = st == DRAY_OK;
    if (a && !resolved) {
        /* An input object could not be fetched: the driver makes it again and resends. */
        dray_value err;
        if (dray_error_create(st, j->fn->name, dray_last_error(), (int)bad, NULL, &err) == DRAY_OK) {
            send_result(j->conn, j->rid, st, &err, DRAY__RF_LOST);
            dray_value_release(&err);
        }
        if (a != stack)
            free(a);
        goto done;
    }
    int64_t t0 = dray__now_ns();
    for (int left = j->retries; resolved; left--) {
        dray__clear_error();
        st = j->fn->fn(ctx, a, n, &result);
        if (st == DRAY_OK || !j->retry_exc || left <= 0)
            break;
        dray_value_release(&result);
    }
    note_speed(w, j->fn, dray__now_ns() - t0);
    if (resolved)
        for (size_t i = 0; i < n; i++)
            dray_value_release(&a[i]);
    if (a != stack)
        free(a);
    if (st != DRAY_OK && result.type != DRAY_T_ERROR) {
        dray_value_release(&result);
        dray_error_create(st, j->fn->name, dray_last_error()[0] ? dray_last_error()
                                                               : dray_status_str(st),
                          -1, NULL, &result);
    } else if (st != DRAY_OK) {
        st = dray_error_status(&result);
    }
    if (st == DRAY_OK && dray__nested_refs(&result)) {
        /* Refs in the returned list or map travel as markers of their outcomes (waited for
         * here). */
        dray_value conv;
        st = dray__nested_to_wire(w->rt, &result, NULL, NULL, &conv);
        dray_value_release(&result);
        if (st)
            dray_error_create(st, j->fn->name, dray_last_error(), -1, NULL, &result);
        else
            result = conv;
    }
    /* Another node's spilled task: its result goes back inline (that node owns it, and keeps
     * nothing of ours alive); a driver's large result stays in this node's store. */
    send_result_w(from_node(j->conn) ? NULL : w, j->conn, j->rid, st, &result, 0);
    dray_value_release(&result);
done:
    atomic_fetch_sub(&w->running, 1);
    atomic_fetch_add(&w->done, 1);
    dray_value_release(&j->args);
    dray__conn_release(j->conn);
    free(j);
    return st;
}

static void pump(worker *w);

static dray_status exec_job(dray_ctx *ctx, const dray_value *args, size_t nargs, dray_value *out)
{
    (void)nargs;
    job *j = (job *)(uintptr_t)args[0].u.i;
    worker *w = j->w;
    if (atomic_load(&w->paused)) {
        /* Paused since it was handed over: back to the head of the queue, unstarted (the driver
         * may take it back for another node). */
        pthread_mutex_lock(&w->qlock);
        j->next = w->qhead;
        w->qhead = j;
        if (!w->qtail)
            w->qtail = j;
        w->in_pool--;
        pthread_mutex_unlock(&w->qlock);
        if (!atomic_load(&w->paused)) /* resumed meanwhile: its pump may have missed j */
            pump(w);
        *out = dray_null();
        return DRAY_OK;
    }
    atomic_fetch_sub(&w->queued, 1);
    /* The dashboard's task stream shows the driver's function, not this wrapper. */
    dray__ev_task_rename(w->rt, j->fn);
    dray__ev_task_failed(w->rt, run_job(ctx, j));
    pthread_mutex_lock(&w->qlock);
    w->in_pool--;
    pthread_mutex_unlock(&w->qlock);
    pump(w);
    *out = dray_null();
    return DRAY_OK;
}

static dray_function exec_fn = {"dray.cluster.exec", exec_job, NULL};

static void free_job(job *j)
{
    dray_value_release(&j->args);
    dray__conn_release(j->conn);
    free(j);
}

/* Hands queued jobs to the pool while it has room. */
static void pump(worker *w)
{
    for (;;) {
        pthread_mutex_lock(&w->qlock);
        job *j = w->in_pool < w->pool_limit && !atomic_load(&w->paused) ? w->qhead : NULL;
        if (j) {
            w->qhead = j->next;
            if (!w->qhead)
                w->qtail = NULL;
            w->in_pool++;
        }
        pthread_mutex_unlock(&w->qlock);
        if (!j)
            return;
        dray_value arg = dray_int((int64_t)(uintptr_t)j);
        dray_ref *r;
        if (dray__submit_here(w->rt, &exec_fn, &arg, 1, NULL, &r) == DRAY_OK) {
            dray_ref_release(r);
            continue;
        }
        pthread_mutex_lock(&w->qlock);
        w->in_pool--;
        pthread_mutex_unlock(&w->qlock);
        atomic_fetch_sub(&w->queued, 1);
        send_error(j->conn, j->rid, DRAY_ESHUTDOWN, j->fn->name, "the node is shutting down");
        free_job(j);
    }
}

/* A driver asks for up to `max` of its jobs that have not started back (another node is idle):
 * they are answered with RF_STOLEN and the driver places them again. Newest first. */
static void on_steal(worker *w, dray__conn *c, int64_t max)
{
    job *taken = NULL;
    pthread_mutex_lock(&w->qlock);
    size_t n = 0;
    for (job *j = w->qhead; j; j = j->next)
        n += j->conn == c;
    size_t skip = n > (size_t)max ? n - (size_t)max : 0;
    job **pp = &w->qhead;
    w->qtail = NULL;
    while (*pp) {
        job *j = *pp;
        if (j->conn == c && skip == 0) {
            *pp = j->next;
            j->next = taken;
            taken = j;
            continue;
        }
        skip -= j->conn == c;
        w->qtail = j;
        pp = &j->next;
    }
    pthread_mutex_unlock(&w->qlock);
    while (taken) {
        job *j = taken;
        taken = j->next;
        dray_value items[2] = {dray_int(DRAY_OK), dray_null()}, v;
        if (dray_list_create(items, 2, &v) == DRAY_OK) {
            dray__conn_send_value(c, DRAY__MSG_RESULT, DRAY__RF_STOLEN, j->rid, &v, NULL);
            dray_value_release(&v);
        }
        atomic_fetch_sub(&w->queued, 1);
        atomic_fetch_add(&w->stolen, 1);
        dray__trace_submitted(w->trace, j->fn->name, -1);
        free_job(j);
    }
}

static bool has_objects(const dray_value *args)
{
    const char *holder;
    uint64_t id, size;
    bool enc;
    for (size_t i = 0; i < dray_list_len(args); i++)
        if (dray__cluster_obj_info(dray_list_get(args, i), &holder, &id, &size, &enc) ||
            dray__nested_markers(dray_list_get(args, i)))
            return true;
    return false;
}

/* No executor is busy or has work waiting. */
static bool executors_idle(worker *w)
{
    return atomic_load(&w->running) == 0 && atomic_load(&w->queued) == 0;
}

static void on_submit(worker *w, dray__conn *c, const dray__hdr *h, const dray_value *ctl)
{
    const char *name = dray_string_cstr(dray_list_get(ctl, 0));
    const dray_function *fn = dray__fn_lookup(w->rt, name);
    if (!fn) {
        dray_value err;
        char msg[300];
        snprintf(msg, sizeof msg, "no task function is registered as '%s' on this node", name);
        if (dray_error_create(DRAY_ENOTFOUND, name, msg, -1, NULL, &err) == DRAY_OK) {
            send_result(c, h->rid, DRAY_ENOTFOUND, &err, DRAY__RF_MISSING);
            dray_value_release(&err);
        }
        return;
    }
    job *j = calloc(1, sizeof(*j));
    if (!j) {
        dray__conn_close(c, "out of memory queueing a task");
        return;
    }
    j->w = w;
    j->conn = dray__conn_retain(c);
    j->rid = h->rid;
    j->fn = fn;
    j->args = dray_value_retain(dray_list_get(ctl, 1));
    j->retries = (int)dray_list_get(ctl, 2)->u.i;
    j->retry_exc = dray_list_get(ctl, 3)->u.b;
    /* A function known to be short runs right here when no executor is busy or waiting and no
     * burst is arriving: no hand-over to an executor thread (the latency path). Bursts go to the
     * pool, which runs them while this thread reads on. Not with object inputs (a pull blocks). */
    if (w->inline_ok && !atomic_load(&w->paused) && !dray__conn_more_input(c) &&
        executors_idle(w) && is_short(w, fn) && !has_objects(&j->args)) {
        dray_ctx ctx = {w->rt, NULL, NULL, NULL};
        atomic_fetch_add_explicit(&w->inline_runs, 1, memory_order_relaxed);
        dray__trace_submitted(w->trace, fn->name, 1);
        dray__ev_run_begin(w->rt, fn);
        dray__ev_run_end(w->rt, run_job(&ctx, j));
        return;
    }
    dray__trace_submitted(w->trace, fn->name, 1);
    atomic_fetch_add(&w->queued, 1);
    pthread_mutex_lock(&w->qlock);
    if (w->qtail)
        w->qtail->next = j;
    else
        w->qhead = j;
    w->qtail = j;
    pthread_mutex_unlock(&w->qlock);
    pump(w);
}


/* ==== Actors ==== */

/* Sends the call's outcome. Refs inside a returned list or map go as markers of their outcomes
 * (nested.c), waited for here. */
static void reply_send(reply *r)
{
    dray_ref *c = r->ref;
    dray_status st = (dray_status)c->status;
    dray_value v = dray_null();
    if (st == DRAY_OK && dray__nested_refs(&c->u.result)) {
        if ((st = dray__nested_to_wire(r->rt, &c->u.result, NULL, NULL, &v)))
            dray_error_create(st, "actor", dray_last_error(), -1, NULL, &v);
    } else {
        v = dray_value_retain(&c->u.result);
    }
    send_result(r->conn, r->rid, st, &v, 0);
    dray_value_release(&v);
}

static void reply_free(reply *r)
{
    dray__conn_release(r->conn);
    dray_ref_release(r->ref);
    free(r);
}

/* A pool task answering a call whose result holds refs not ready yet. */
static dray_status reply_task(dray_ctx *ctx, const dray_value *args, size_t nargs,
                              dray_value *out)
{
    (void)ctx, (void)nargs;
    reply_send((reply *)(uintptr_t)args[0].u.i);
    *out = dray_null();
    return DRAY_OK;
}

static dray_function reply_task_fn = {"dray.cluster.actor_reply", reply_task, NULL};

/* The reply task is done, or was canceled unrun (the node is stopping): its reply goes. */
static void reply_task_done(dray__callback *cb, dray_ref *t)
{
    (void)t;
    reply_free((reply *)cb);
}

static void reply_fn(dray__callback *cb, dray_ref *c)
{
    reply *r = (reply *)cb;
    if (c->status == DRAY_OK && dray__nested_pending(&c->u.result)) {
        /* Not inside the call's completion (the actor's turn): a pool task waits for them. */
        dray_value arg = dray_int((int64_t)(uintptr_t)r);
        dray_ref *t;
        if (dray_submit_fn(r->rt, &reply_task_fn, &arg, 1, NULL, &t) == DRAY_OK) {
            r->cb.fn = reply_task_done; /* r's callback is free again: it now waits for t */
            if (!dray__ref_on_complete(t, &r->cb))
                reply_task_done(&r->cb, t);
            dray_ref_release(t);
            return;
        }
        send_error(r->conn, r->rid, DRAY_ESHUTDOWN, "actor", "the node is shutting down");
    } else {
        reply_send(r);
    }
    reply_free(r);
}

/* Sends ref's outcome as RESULT rid when it completes. Takes ref. */
static void reply_when_done(worker *w, dray__conn *c, uint64_t rid, dray_ref *ref)
{
    reply *r = calloc(1, sizeof(*r));
    if (!r) {
        dray_ref_release(ref);
        send_error(c, rid, DRAY_ENOMEM, "actor", "out of memory on the node");
        return;
    }
    r->cb.fn = reply_fn;
    r->rt = w->rt;
    r->conn = dray__conn_retain(c);
    r->rid = rid;
    r->ref = ref;
    if (!dray__ref_on_complete(ref, &r->cb))
        reply_fn(&r->cb, ref);
}

/* Actor arguments with object handles replaced by their bytes. The loop thread does it itself (a
 * remote object is pulled while the loop waits) so that one driver's calls keep their order. *out
 * is NULL when there is nothing to replace; else owned (free_args). */
static dray_status actor_args(worker *w, dray__conn *c, const dray_value *list, dray_value **out)
{
    size_t n = dray_list_len(list), bad = 0;
    *out = NULL;
    if (!n || !has_objects(list))
        return DRAY_OK;
    dray_value *a = malloc(n * sizeof(*a));
    if (!a)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    dray_status st = resolve_objects(w, c, dray_list_get(list, 0), n, a, &bad);
    if (st) {
        free(a);
        return st;
    }
    *out = a;
    return DRAY_OK;
}

static void free_args(dray_value *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        dray_value_release(&a[i]);
    free(a);
}

static wactor *find_actor(worker *w, dray__conn *owner, uint64_t id)
{
    for (wactor *a = w->actors; a; a = a->next)
        if (a->id == id && a->owner == owner)
            return a;
    return NULL;
}

typedef struct ready_job {
    worker *w;
    wactor *wa;
    dray__conn *conn;
    uint64_t rid;
} ready_job;

static void wactor_release(wactor *wa)
{
    if (atomic_fetch_sub(&wa->refs, 1) == 1) {
        dray_actor_release(wa->actor);
        free(wa);
    }
}

/* Waits for an actor's constructor on the pool, then answers the create request. */
static dray_status ready_task(dray_ctx *ctx, const dray_value *args, size_t nargs,
                              dray_value *out)
{
    (void)ctx, (void)nargs;
    ready_job *j = (ready_job *)(uintptr_t)args[0].u.i;
    dray_status st = dray_actor_ready(j->w->rt, j->wa->actor, -1);
    if (st)
        send_error(j->conn, j->rid, st, "__init__", dray_last_error());
    else {
        dray_value nul = dray_null();
        send_result(j->conn, j->rid, DRAY_OK, &nul, 0);
    }
    wactor_release(j->wa);
    dray__conn_release(j->conn);
    free(j);
    *out = dray_null();
    return DRAY_OK;
}

static dray_function ready_fn = {"dray.cluster.actor_ready", ready_task, NULL};

static void on_actor_create(worker *w, dray__conn *c, const dray__hdr *h, const dray_value *ctl)
{
    const char *cls = dray_string_cstr(dray_list_get(ctl, 0));
    const dray_value *args = dray_list_get(ctl, 1);
    uint64_t id = (uint64_t)dray_list_get(ctl, 2)->u.i;
    dray_actor_opts o = {0};
    o.max_concurrency = (int)dray_list_get(ctl, 3)->u.i;
    o.max_restarts = (int)dray_list_get(ctl, 4)->u.i;
    o.max_task_retries = (int)dray_list_get(ctl, 5)->u.i;
    size_t n = dray_list_len(args);
    wactor *wa = calloc(1, sizeof(*wa));
    ready_job *j = calloc(1, sizeof(*j));
    dray_value *res = NULL;
    dray_status st = !wa || !j ? dray_set_error(DRAY_ENOMEM, "out of memory") :
                     find_actor(w, c, id) ? dray_set_error(DRAY_EINVAL, "actor id in use") :
                     actor_args(w, c, args, &res);
    if (!st)
        st = dray_actor_create(w->rt, cls, res ? res : n ? dray_list_get(args, 0) : NULL, n, &o,
                               &wa->actor);
    free_args(res, n);
    if (st) {
        send_error(c, h->rid, st, cls, dray_last_error());
        free(wa);
        free(j);
        return;
    }
    wa->id = id;
    wa->owner = c;
    wa->next = w->actors;
    w->actors = wa;
    j->w = w;
    j->conn = dray__conn_retain(c);
    j->rid = h->rid;
    /* The ready job holds its own count: the driver may release the actor meanwhile. */
    atomic_init(&wa->refs, 2);
    j->wa = wa;
    dray_value arg = dray_int((int64_t)(uintptr_t)j);
    dray_ref *r;
    if (dray__submit_here(w->rt, &ready_fn, &arg, 1, NULL, &r)) {
        send_error(c, h->rid, DRAY_ESHUTDOWN, cls, "the node is shutting down");
        dray__conn_release(j->conn);
        free(j);
        wactor_release(wa);
        return;
    }
    dray_ref_release(r);
}

/* Frees the actor entry (the handle is released). */
static void drop_actor(worker *w, wactor *wa)
{
    for (wactor **p = &w->actors; *p; p = &(*p)->next)
        if (*p == wa) {
            *p = wa->next;
            break;
        }
    wactor_release(wa);
}

static void on_actor_message(worker *w, dray__conn *c, const dray__hdr *h, const dray_value *ctl)
{
    uint64_t id = (uint64_t)dray_list_get(ctl, 0)->u.i;
    wactor *wa = find_actor(w, c, id);
    if (h->type == DRAY__MSG_ACTOR_CALL) {
        if (!wa) {
            send_error(c, h->rid, DRAY_EACTOR, "actor", "no such actor on this node");
            return;
        }
        const dray_value *args = dray_list_get(ctl, 2);
        size_t n = dray_list_len(args);
        dray_ref *r;
        dray_value *res = NULL;
        dray_status st = actor_args(w, c, args, &res);
        if (!st)
            st = dray_actor_call_m(w->rt, wa->actor, (int)dray_list_get(ctl, 1)->u.i,
                                   res ? res : n ? dray_list_get(args, 0) : NULL, n, &r);
        free_args(res, n);
        if (st)
            send_error(c, h->rid, st, "actor", dray_last_error());
        else
            reply_when_done(w, c, h->rid, r);
    } else if (h->type == DRAY__MSG_ACTOR_KILL && wa) {
        dray_actor_kill(w->rt, wa->actor, dray_list_get(ctl, 1)->u.b);
    } else if (h->type == DRAY__MSG_ACTOR_RELEASE && wa) {
        drop_actor(w, wa);
    }
}

static void on_message(dray__loop *l, dray__conn *c, const dray__hdr *h, const dray_value *ctl,
                       const dray_value *data)
{
    (void)data;
    worker *w = dray__loop_user(l);
    if (c == w->head) {
        if (h->type == DRAY__MSG_TRACE && dray__trace_on(&w->trace, w->rt, ctl))
            dray__log("cannot record task events: %s", dray_last_error());
        else if (h->type != DRAY__MSG_NODES && h->type != DRAY__MSG_TRACE)
            dray__log("ignoring message type %u from the head", h->type);
        return;
    }
    /* Another node's spill client submits like a driver (spill.c). */
    bool driver = !strcmp(dray__conn_role(c), "driver") || from_node(c);
    if (h->type == DRAY__MSG_PULL && (driver || !strcmp(dray__conn_role(c), "peer"))) {
        dray_value b;
        if (dray__store_serve(w->store, w->self, (uint64_t)ctl->u.i, &b)) {
            send_error(c, h->rid, DRAY_ENOTFOUND, "pull", dray_last_error());
            return;
        }
        dray_value items[2] = {dray_int(DRAY_OK), dray_null()}, v;
        if (dray_list_create(items, 2, &v) == DRAY_OK) {
            dray__conn_send_value(c, DRAY__MSG_RESULT, DRAY__RF_RAW, h->rid, &v, &b);
            dray_value_release(&v);
        }
        dray_value_release(&b);
    } else if (h->type == DRAY__MSG_STEAL && driver) {
        on_steal(w, c, ctl->u.i);
    } else if (h->type == DRAY__MSG_OBJ_FREE && driver) {
        dray__store_free(w->store, dray_string_cstr(dray_list_get(ctl, 0)),
                         (uint64_t)dray_list_get(ctl, 1)->u.i);
    } else if (h->type == DRAY__MSG_SUBMIT && driver)
        on_submit(w, c, h, ctl);
    else if (h->type == DRAY__MSG_ACTOR_CREATE && driver)
        on_actor_create(w, c, h, ctl);
    else if (h->type >= DRAY__MSG_ACTOR_CALL && h->type <= DRAY__MSG_ACTOR_RELEASE && driver)
        on_actor_message(w, c, h, ctl);
    else
        dray__conn_close(c, "unexpected message type for a worker");
}

static void on_close(dray__loop *l, dray__conn *c)
{
    worker *w = dray__loop_user(l);
    if (c == w->head) {
        dray__log("lost the head: stopping");
        dray__loop_stop(l);
    }
    /* A driver that left takes its queued jobs, objects and actors with it. */
    pthread_mutex_lock(&w->qlock);
    job *gone = NULL, **pp = &w->qhead;
    w->qtail = NULL;
    while (*pp) {
        job *j = *pp;
        if (j->conn == c) {
            *pp = j->next;
            j->next = gone;
            gone = j;
            continue;
        }
        w->qtail = j;
        pp = &j->next;
    }
    pthread_mutex_unlock(&w->qlock);
    while (gone) {
        job *j = gone;
        gone = j->next;
        atomic_fetch_sub(&w->queued, 1);
        free_job(j);
    }
    if (w->store)
        dray__store_free_owner(w->store, c);
    for (wactor *a = w->actors, *next; a; a = next) {
        next = a->next;
        if (a->owner == c)
            drop_actor(w, a);
    }
}

/* Resident bytes of this process (what Dask's memory thresholds measure). */
static int64_t process_rss(void)
{
    long pages = 0, resident = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (!statm || fscanf(statm, "%ld %ld", &pages, &resident) != 2 || resident < 0)
        resident = 0;
    if (statm)
        fclose(statm);
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

/* Sends a heartbeat to the head (any thread): tasks, store counters, resident bytes, CPU time,
 * whether the node is paused and how many nested tasks it spilled to other nodes. */
static void send_ping(worker *w)
{
    dray__store_stats ss;
    dray__store_stats_get(w->store, &ss);
    const uint64_t *f = (const uint64_t *)&ss;
    dray_value sv[DRAY__STORE_NSTATS];
    for (int i = 0; i < DRAY__STORE_NSTATS; i++)
        sv[i] = dray_int((int64_t)(f[i] & INT64_MAX));
    struct timespec cpu = {0, 0};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
    dray_value items[7] = {dray_int(atomic_load(&w->done)), dray_int(atomic_load(&w->running)),
                           dray_null(), dray_int(process_rss()),
                           dray_int((int64_t)cpu.tv_sec * 1000000000 + cpu.tv_nsec),
                           dray_bool(atomic_load(&w->paused)),
                           dray_int((int64_t)(dray__cluster_tasks_spilled(w->rt) & INT64_MAX))};
    dray_value v;
    if (dray_list_create(sv, DRAY__STORE_NSTATS, &items[2]) == DRAY_OK &&
        dray_list_create(items, 7, &v) == DRAY_OK) {
        dray__conn_send_value(w->head, DRAY__MSG_PING, 0, 0, &v, NULL);
        dray_value_release(&v);
    }
    dray_value_release(&items[2]);
}

/* The loop reads its lanes without sleeping only while no executor is busy or has work waiting:
 * then the next task of a driver waiting on each result is the one to catch fast; otherwise the
 * executors need the core. */
static bool lanes_may_spin(dray__loop *l)
{
    return executors_idle(dray__loop_user(l));
}

static void on_tick(dray__loop *l)
{
    worker *w = dray__loop_user(l);
    dray__trace_tick(w->trace, w->rt, w->head);
    int64_t now = dray__now_ns();
    if (now < w->next_ping)
        return;
    w->next_ping = now + PING_NS;
    send_ping(w);
}

/* Applies the memory thresholds to the process's resident memory now (any thread; a check already
 * running elsewhere makes this one a no-op). */
static void check_memory(worker *w)
{
    if (pthread_mutex_trylock(&w->memlock))
        return;
    dray__store_maintain(w->store);
    if (!w->lim.spill && !w->lim.pause && !w->lim.terminate) {
        pthread_mutex_unlock(&w->memlock);
        return;
    }
    int64_t rss = process_rss();
    double mb = 1e6;
    if (w->lim.terminate && rss > (int64_t)w->lim.terminate) {
        dray__log("memory: process memory %.1f MB is above the terminate fraction (%.1f MB of the "
                  "%.1f MB limit): terminating this node (its tasks are retried elsewhere)",
                  (double)rss / mb, (double)w->lim.terminate / mb, (double)w->lim.limit / mb);
        _exit(3);
    }
    if (w->lim.spill && rss > (int64_t)w->lim.spill) {
        /* Like Dask: above spill, spill until process memory is down to the target. */
        size_t got = dray__store_spill(w->store, (size_t)rss - w->lim.target);
        if (got)
            rss = process_rss();
    }
    bool paused = atomic_load(&w->paused), resume = false;
    if (w->lim.pause && !paused && rss > (int64_t)w->lim.pause) {
        atomic_store(&w->paused, true);
        atomic_fetch_add(&w->pauses, 1);
        dray__log("memory: process memory %.1f MB is above the pause fraction (%.1f MB of the "
                  "%.1f MB limit): pausing (no new tasks start; %lld queued, %lld running)",
                  (double)rss / mb, (double)w->lim.pause / mb, (double)w->lim.limit / mb,
                  (long long)atomic_load(&w->queued), (long long)atomic_load(&w->running));
        send_ping(w);
    } else if (paused && rss <= (int64_t)w->lim.pause) {
        atomic_store(&w->paused, false);
        dray__log("memory: process memory %.1f MB is below the pause fraction again (%.1f MB): "
                  "resuming", (double)rss / mb, (double)w->lim.pause / mb);
        send_ping(w);
        resume = true;
    }
    pthread_mutex_unlock(&w->memlock);
    if (resume)
        pump(w);
}

static void *monitor_main(void *arg)
{
    worker *w = arg;
    pthread_mutex_lock(&w->mlock);
    while (!w->stop_monitor) {
        pthread_mutex_unlock(&w->mlock);
        check_memory(w);
        pthread_mutex_lock(&w->mlock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += MONITOR_NS;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        if (!w->stop_monitor)
            pthread_cond_timedwait(&w->mcond, &w->mlock, &ts);
    }
    pthread_mutex_unlock(&w->mlock);
    return NULL;
}

static void stop_monitor(worker *w)
{
    if (!w->monitor_started)
        return;
    pthread_mutex_lock(&w->mlock);
    w->stop_monitor = true;
    pthread_cond_signal(&w->mcond);
    pthread_mutex_unlock(&w->mlock);
    pthread_join(w->monitor, NULL);
    w->monitor_started = false;
}

/* Large arguments of nested tasks this node spills become objects of its store (owned by the node
 * itself, not a connection), freed when no spilled task needs them any more. */
static dray_status spill_stash(void *ctx, const dray_value *bytes, uint64_t *id)
{
    worker *w = ctx;
    return dray__store_adopt(w->store, w->self, w, bytes, id);
}

static void spill_unstash(void *ctx, uint64_t id)
{
    worker *w = ctx;
    dray__store_free(w->store, w->self, id);
}

/* Parses "name=amount,..." into a map name -> float. */
static dray_status parse_resources(const char *spec, dray_value *out)
{
    const char *names[64];
    char buf[64][64];
    dray_value amounts[64];
    size_t n = 0;
    for (const char *p = spec ? spec : ""; *p;) {
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        char *num_end;
        double a = eq && eq < end ? strtod(eq + 1, &num_end) : -1;
        if (!eq || eq >= end || eq == p || (size_t)(eq - p) >= 64 || n == 64 || !(a >= 0) ||
            num_end != end)
            return dray_set_error(DRAY_EINVAL, "resources '%s': expected name=amount,... (at most "
                                  "64, names under 64 bytes, amounts >= 0)", spec);
        memcpy(buf[n], p, (size_t)(eq - p));
        buf[n][eq - p] = 0;
        names[n] = buf[n];
        amounts[n++] = dray_float(a);
        p = *end ? end + 1 : end;
    }
    return dray_map_create(names, amounts, n, out);
}

static dray_status do_register(worker *w, int cpus, const char *resources)
{
    dray_value items[4] = {dray_null(), dray_int(cpus), dray_int(getpid()), dray_null()}, v;
    dray_status st = parse_resources(resources, &items[3]);
    if (!st)
        st = dray_string_create(w->self, &items[0]);
    if (!st)
        st = dray_list_create(items, 4, &v);
    dray_value_release(&items[0]);
    dray_value_release(&items[3]);
    if (st)
        return st;
    st = dray__conn_send_value(w->head, DRAY__MSG_REGISTER, 0, 0, &v, NULL);
    dray_value_release(&v);
    return st;
}

/* The thread reading SIGTERM/SIGINT from its loop's signalfd (0: none). Process-wide like the
 * signal dispositions it serves. */
static _Atomic pid_t signal_tid;

/* A thread started before this node blocked the signals (libopenblas starts its pool when it is
 * loaded) takes a process-directed SIGTERM with the default action, killing the node without its
 * shutdown. With this handler installed such a thread passes the signal on to the loop's thread,
 * where it stays pending for the signalfd. Async-signal-safe. */
static void forward_signal(int sig)
{
    int saved = errno;
    pid_t tid = atomic_load(&signal_tid);
    if (tid > 0)
        tgkill(getpid(), tid, sig);
    errno = saved;
}

dray_status dray_cluster_worker_run(const char *address, const dray_cluster_opts *opts)
{
    if (!address)
        return dray_set_error(DRAY_EINVAL, "dray_cluster_worker_run: no head address");
    dray_cluster_opts dflt = {0};
    if (!opts)
        opts = &dflt;
    const char *bind = opts->bind ? opts->bind : "127.0.0.1";
    uint8_t secret[32];
    dray_status st = dray__secret_load(address, secret);
    if (st)
        return st;
    worker *w = calloc(1, sizeof(*w));
    if (!w)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    /* Signals go to the loop's signalfd: block them before any thread of ours starts, and have
     * threads that were there before forward them (forward_signal). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    atomic_store(&signal_tid, gettid());
    struct sigaction fwd = {.sa_handler = forward_signal}, old_term, old_int;
    sigfillset(&fwd.sa_mask);
    fwd.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &fwd, &old_term);
    sigaction(SIGINT, &fwd, &old_int);
    /* Freed memory goes back to the system promptly (large blocks always mmapped, the heap trimmed
     * above 64 KiB), so process memory falls when objects go: what Dask's nanny does with
     * MALLOC_TRIM_THRESHOLD_=65536. The process is a dedicated node. */
    if (!getenv("MALLOC_TRIM_THRESHOLD_"))
        mallopt(M_TRIM_THRESHOLD, 65536);
    pthread_mutex_init(&w->memlock, NULL);
    pthread_mutex_init(&w->mlock, NULL);
    pthread_cond_init(&w->mcond, NULL);
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = opts->num_cpus;
    cfg.progress = 0;
    cfg.address = "";
    if ((st = dray_init(&cfg, &w->rt)))
        goto out_free;
    dray__loop_ops ops = {on_message, NULL, on_close, on_tick};
    if ((st = dray__loop_create(&ops, w, secret, bind, 0, &w->loop)))
        goto out_shutdown;
    snprintf(w->self, sizeof w->self, "%s:%d", bind, dray__loop_port(w->loop));
    /* Drivers on this machine may send tasks through shared memory (lane.c); the loop reads the
     * lanes without sleeping for DRAY_LANE_SPIN_US (200) after their last record. */
    const char *lanes = getenv("DRAY_LANE"), *lspin = getenv("DRAY_LANE_SPIN_US");
    if (!lanes || strcmp(lanes, "0"))
        dray__loop_accept_lanes(w->loop, (lspin && *lspin ? atoll(lspin) : 200) * 1000,
                                lanes_may_spin);
    pthread_mutex_init(&w->qlock, NULL);
    w->pool_limit = 2 * dray_runtime_num_workers(w->rt);
    const char *inl = getenv("DRAY_WORKER_INLINE");
    w->inline_ok = !inl || strcmp(inl, "0");
    char dir[4096], host[256];
    int hport = 0;
    dray__parse_address(address, host, sizeof host, &hport);
    dray__cluster_dir(hport, dir, sizeof dir);
    mkdir(dir, 0700);
    if ((st = dray__store_create(dir, opts->memory, secret, &w->store)))
        goto out_loop;
    dray__conn *hc;
    if ((st = dray__loop_dial(w->loop, address, "worker", 10000, &hc)))
        goto out_loop;
    w->head = dray__conn_retain(hc);
    if ((st = do_register(w, dray_runtime_num_workers(w->rt), opts->resources)))
        goto out_loop;
    dray__log("worker joined %s, serving on %s:%d with %d executors", address, bind,
              dray__loop_port(w->loop), dray_runtime_num_workers(w->rt));
    /* Nested tasks: local first, spilling to other nodes when this one is saturated. Without it
     * they all run here (not fatal). */
    dray__spill_store spill = {spill_stash, spill_unstash, w};
    if (dray__spill_attach(w->rt, address, w->self, &spill))
        dray__log("spill: off: %s", dray_last_error());
    dray__store_limits_get(w->store, &w->lim);
    int64_t base = process_rss();
    size_t lowest = w->lim.spill ? w->lim.spill : w->lim.pause ? w->lim.pause : w->lim.terminate;
    if (lowest && base >= (int64_t)lowest) {
        /* A limit this process is already past can only mean the object store's: no pausing,
         * terminating or spilling on process memory (it would pause or exit at once). */
        dray__log("memory: the %.1f MB limit is below this process's own %.1f MB: it limits the "
                  "object store only (no pause or terminate on process memory)",
                  (double)w->lim.limit / 1e6, (double)base / 1e6);
        w->lim.spill = w->lim.pause = w->lim.terminate = 0;
    }
    if (pthread_create(&w->monitor, NULL, monitor_main, w) == 0)
        w->monitor_started = true;
    else
        dray__log("no memory monitor: cannot start its thread");
    dray__loop_run(w->loop, true);
    stop_monitor(w);
out_loop:
    dray__loop_destroy(w->loop);
    while (w->actors)
        drop_actor(w, w->actors);
out_shutdown:
    dray_shutdown(w->rt, DRAY_SHUTDOWN_CANCEL);
    while (w->qhead) {
        job *j = w->qhead;
        w->qhead = j->next;
        free_job(j);
    }
    dray__store_destroy(w->store);
    dray__trace_free(w->trace);
out_free:
    dray__conn_release(w->head);
    pthread_cond_destroy(&w->mcond);
    pthread_mutex_destroy(&w->mlock);
    pthread_mutex_destroy(&w->memlock);
    free(w);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    atomic_store(&signal_tid, 0);
    if (!st)
        dray__log("worker stopped");
    return st;
}

void dray__cluster_worker_from_env(void)
{
    const char *addr = getenv("DRAY_WORKER_ADDRESS");
    if (!addr || !*addr)
        return;
    char *a = strdup(addr);
    unsetenv("DRAY_WORKER_ADDRESS");
    dray_cluster_opts o = {0};
    const char *cpus = getenv("DRAY_WORKER_CPUS");
    o.num_cpus = cpus ? atoi(cpus) : 0;
    const char *mem = getenv("DRAY_WORKER_MEMORY");
    o.memory = mem ? (size_t)strtoull(mem, NULL, 10) : 0;
    o.resources = getenv("DRAY_WORKER_RESOURCES");
    const char *bind = getenv("DRAY_BIND"); /* the address to listen on (default 127.0.0.1) */
    o.bind = bind && *bind ? bind : NULL;
    dray_status st = a ? dray_cluster_worker_run(a, &o) : DRAY_ENOMEM;
    if (st)
        dray__log("worker failed: %s", dray_last_error());
    free(a);
    exit(st ? 1 : 0);
}
