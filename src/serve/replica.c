/* Replica executors. With a dray runtime (dray_serve_opts.rt, unless inline_replicas) each replica
 * is a core actor of the built-in class "dray_serve_Replica": init, call, batch, health check and
 * reconfigure run as its methods in mailbox order on the pool, and a crash (DRAY_EFATAL) or
 * dray_actor_kill fails its pending calls with DRAY_EACTOR. Otherwise the replica runs in the
 * caller's thread under a mutex (no hop). Either way one callback at a time per replica. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { INV_CALL, INV_BATCH, INV_HEALTH, INV_RECONFIGURE };

/* One callback to run on a replica's state, passed to the actor by address (in-process only). */
typedef struct invocation {
    int kind;
    dray_serve_handle *dep;
    dray_serve_request *req;
    dray_serve_response *resp;
    dray_serve_request *const *reqs;
    size_t n;
    const cJSON *cfg;
    bool ran;
    dray_status st;
    char err[256];
} invocation;

/* The actor's state: the class and the user's state. Freed by the actor's destroy. */
typedef struct actor_state {
    const dray_serve_class *cls;
    void *state;
} actor_state;

static dray_status run_callback(const dray_serve_class *cls, void *state, invocation *inv)
{
    switch (inv->kind) {
    case INV_CALL:
        return cls->call(state, inv->req, inv->resp);
    case INV_BATCH:
        return cls->batch_call(state, inv->reqs, inv->n, inv->resp);
    case INV_HEALTH:
        return cls->health_check ? cls->health_check(state) : DRAY_OK;
    default:
        return cls->reconfigure(state, inv->cfg);
    }
}

/* Runs the callback, adding its time to the deployment's call time (the model time of benchmarks). */
static dray_status run_invocation(dray_serve_handle *h, const dray_serve_class *cls, void *state,
                                  invocation *inv)
{
    double t0 = dray__serve_now();
    dray_status st = run_callback(cls, state, inv);
    if (inv->kind <= INV_BATCH) {
        uint64_t ns = (uint64_t)((dray__serve_now() - t0) * 1e9);
        atomic_fetch_add_explicit(&h->call_ns, ns, memory_order_relaxed);
        dray__serve_latency_record(h, ns, inv->kind == INV_BATCH ? inv->n : 1);
    }
    return st;
}

static dray_status actor_init(dray_ctx *ctx, const dray_value *args, size_t nargs, void **state)
{
    if (nargs != 1 || args[0].type != DRAY_T_INT)
        return dray_ctx_fail(ctx, DRAY_EINVAL, "dray.serve.Replica: expects the deployment");
    dray_serve_handle *h = (dray_serve_handle *)(uintptr_t)args[0].u.i;
    actor_state *a = calloc(1, sizeof(*a));
    if (!a)
        return dray_ctx_fail(ctx, DRAY_ENOMEM, "dray.serve.Replica: out of memory");
    a->cls = h->cls;
    dray_status st = a->cls->init(h->serve, h->user_config, &a->state);
    if (st != DRAY_OK) {
        /* Copy first: the message lives in the same thread-local slot dray_ctx_fail writes. */
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        free(a);
        return dray_ctx_fail(ctx, st, "%s", msg);
    }
    *state = a;
    return DRAY_OK;
}

static void actor_destroy(void *state)
{
    actor_state *a = state;
    a->cls->destroy(a->state);
    free(a);
}

static dray_status actor_invoke(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                                dray_value *result)
{
    (void)ctx;
    (void)nargs;
    actor_state *a = state;
    invocation *inv = (invocation *)(uintptr_t)args[0].u.i;
    inv->st = run_invocation(inv->dep, a->cls, a->state, inv);
    inv->ran = true;
    if (inv->st != DRAY_OK)
        snprintf(inv->err, sizeof(inv->err), "%s", dray_last_error());
    *result = dray_null();
    /* A crash kills the actor (its pending calls fail with DRAY_EACTOR); other errors are the
     * request's, reported through the invocation. */
    return inv->st == DRAY_EFATAL ? DRAY_EFATAL : DRAY_OK;
}

DRAY_ACTOR_CLASS(dray_serve_Replica, actor_init, actor_destroy, {"invoke", actor_invoke})
static const char ACTOR_CLASS[] = "dray_serve_Replica";

/* Runs inv on r: through its actor, or here under its lock. Returns the callback's status with the
 * message set in this thread. */
static dray_status invoke(dray__serve_replica *r, invocation *inv)
{
    inv->dep = r->dep;
    if (!r->actor) {
        pthread_mutex_lock(&r->lock);
        dray_status st = run_invocation(r->dep, r->cls, r->state, inv);
        pthread_mutex_unlock(&r->lock);
        return st;
    }
    dray_value arg = dray_int((int64_t)(uintptr_t)inv);
    dray_ref *ref;
    dray_status st = dray_actor_call_m(r->rt, r->actor, 0, &arg, 1, &ref);
    if (st != DRAY_OK)
        return st;
    st = dray_get(r->rt, ref, -1, NULL);
    dray_ref_release(ref);
    if (inv->ran)
        return inv->st == DRAY_OK ? DRAY_OK : dray_set_error(inv->st, "%s", inv->err);
    /* The actor died before running it. */
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", dray_last_error());
    return dray_set_error(st == DRAY_OK ? DRAY_EACTOR : DRAY_EFATAL,
                          "deployment '%s': replica %llu died: %s", r->dep->name,
                          (unsigned long long)r->id, msg);
}

dray_status dray__serve_replica_call(dray__serve_replica *r, dray_serve_request *req,
                                     dray_serve_response *resp)
{
    invocation inv = {.kind = INV_CALL, .req = req, .resp = resp};
    return invoke(r, &inv);
}

dray_status dray__serve_replica_batch(dray__serve_replica *r, dray_serve_request *const *reqs,
                                      size_t n, dray_serve_response *resps)
{
    invocation inv = {.kind = INV_BATCH, .reqs = reqs, .n = n, .resp = resps};
    return invoke(r, &inv);
}

dray_status dray__serve_replica_health(dray__serve_replica *r)
{
    invocation inv = {.kind = INV_HEALTH};
    return invoke(r, &inv);
}

dray_status dray__serve_replica_reconfigure(dray__serve_replica *r, const cJSON *cfg)
{
    invocation inv = {.kind = INV_RECONFIGURE, .cfg = cfg};
    return invoke(r, &inv);
}

void dray__serve_replica_crash(dray__serve_replica *r)
{
    if (r->actor)
        dray_actor_kill(r->rt, r->actor, true);
}

static void *batcher_main(void *arg);

/* Builds the replica's state: a new actor (waiting for its init) or a direct init. */
static dray_status start_state(dray_serve_handle *h, dray__serve_replica *r)
{
    dray_status st;
    if (!r->rt)
        return r->cls->init(h->serve, h->user_config, &r->state);
    dray_value arg = dray_int((int64_t)(uintptr_t)h);
    dray_actor_opts ao;
    memset(&ao, 0, sizeof(ao));
    ao.name = h->name;
    ao.max_concurrency = 1;
    ao.num_cpus = 0;
    if ((st = dray_actor_create(r->rt, ACTOR_CLASS, &arg, 1, &ao, &r->actor)) != DRAY_OK)
        return st;
    if ((st = dray_actor_ready(r->rt, r->actor, -1)) != DRAY_OK) {
        dray_actor_release(r->actor);
        r->actor = NULL;
    }
    return st;
}

dray_status dray__serve_replica_start(dray_serve_handle *h, dray__serve_replica **out)
{
    dray_status st = DRAY_ENOMEM;
    dray__serve_replica *r = calloc(1, sizeof(*r));
    if (!r)
        return dray_set_error(st, "serve: deployment '%s': out of memory", h->name);
    r->dep = h;
    r->cls = h->cls;
    r->rt = h->serve->opts.inline_replicas ? NULL : h->serve->opts.rt;
    r->id = atomic_fetch_add(&h->serve->next_replica_id, 1);
    snprintf(r->version, sizeof(r->version), "%s", h->version);
    r->last_health = dray__serve_now();
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->qlock, NULL);
    pthread_cond_init(&r->qcond, NULL);
    if ((st = start_state(h, r)) != DRAY_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        dray_set_error(st, "serve: deployment '%s': replica init failed: %s", h->name, msg);
        goto out_free;
    }
    if (dray__serve_batches(h)) {
        r->max_batch = (size_t)(h->opts.max_batch_size > 0 ? h->opts.max_batch_size : 1);
        r->batch_wait = h->opts.batch_wait_timeout_s;
        if (pthread_create(&r->batcher, NULL, batcher_main, r) != 0) {
            st = dray_set_error(DRAY_ENOMEM, "serve: deployment '%s': cannot start batcher",
                                h->name);
            goto out_destroy;
        }
        r->has_batcher = true;
    }
    *out = r;
    return DRAY_OK;
out_destroy:
    if (r->actor)
        dray_actor_release(r->actor);
    else
        r->cls->destroy(r->state);
out_free:
    pthread_cond_destroy(&r->qcond);
    pthread_mutex_destroy(&r->qlock);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return st;
}

void dray__serve_replica_stop(dray__serve_replica *r)
{
    if (r->has_batcher) {
        pthread_mutex_lock(&r->qlock);
        r->stop = true;
        pthread_cond_broadcast(&r->qcond);
        pthread_mutex_unlock(&r->qlock);
        pthread_join(r->batcher, NULL);
    }
    if (r->actor) {
        /* The actor frees the state when its last call is done (now: the replica is idle). */
        dray_actor_kill(r->rt, r->actor, true);
        dray_actor_release(r->actor);
    } else {
        r->cls->destroy(r->state);
    }
    pthread_cond_destroy(&r->qcond);
    pthread_mutex_destroy(&r->qlock);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* ==== Batching =====================================================================================*/
/* Runs one batch of n calls on r and completes them. */
static void run_batch(dray__serve_replica *r, dray__serve_call **calls, size_t n)
{
    dray_serve_handle *h = r->dep;
    dray_serve_request *reqs[n];
    dray_serve_response resps[n];
    memset(resps, 0, sizeof(resps));
    for (size_t i = 0; i < n; i++)
        reqs[i] = &calls[i]->req;
    dray_status st = dray__serve_replica_batch(r, reqs, n, resps);
    atomic_fetch_add(&h->batches, 1);
    atomic_fetch_add(&h->batched_requests, n);
    atomic_fetch_add(&h->requests, n);
    int seen = atomic_load(&h->max_batch_seen);
    while ((int)n > seen && !atomic_compare_exchange_weak(&h->max_batch_seen, &seen, (int)n)) {
    }
    if (st != DRAY_OK)
        atomic_fetch_add(&h->errors, n);
    if (st == DRAY_EFATAL || st == DRAY_EACTOR)
        dray__serve_mark_dead(r);
    const char *err = st != DRAY_OK ? dray_last_error() : "";
    for (size_t i = 0; i < n; i++) {
        dray__serve_call *c = calls[i];
        c->st = st;
        if (st == DRAY_OK) {
            c->resp = resps[i];
        } else {
            dray_serve_response_release(&resps[i]);
            snprintf(c->err, sizeof(c->err), "%s", err);
        }
        atomic_fetch_sub(&r->ongoing, 1);
        c->done(c);
    }
}

static void *batcher_main(void *arg)
{
    dray__serve_replica *r = arg;
    size_t max = r->max_batch;
    double wait = r->batch_wait;
    dray__serve_call **calls = calloc(max, sizeof(*calls));
    pthread_mutex_lock(&r->qlock);
    for (;;) {
        while (!r->qhead && !r->stop)
            pthread_cond_wait(&r->qcond, &r->qlock);
        if (!r->qhead)
            break;
        if (r->qlen < max && !r->stop && wait > 0) {
            struct timespec ts;
            dray__serve_deadline(&ts, wait);
            while (r->qlen < max && !r->stop)
                if (pthread_cond_timedwait(&r->qcond, &r->qlock, &ts) == ETIMEDOUT)
                    break;
        }
        dray__serve_call *one = NULL;
        dray__serve_call **take = calls ? calls : &one;
        size_t cap = calls ? max : 1, n = 0;
        while (r->qhead && n < cap) {
            take[n++] = r->qhead;
            r->qhead = r->qhead->next;
            r->qlen--;
        }
        if (!r->qhead)
            r->qtail = NULL;
        pthread_mutex_unlock(&r->qlock);
        run_batch(r, take, n);
        pthread_mutex_lock(&r->qlock);
    }
    pthread_mutex_unlock(&r->qlock);
    free(calls);
    return NULL;
}

void dray__serve_enqueue(dray__serve_replica *r, dray__serve_call *c)
{
    c->next = NULL;
    pthread_mutex_lock(&r->qlock);
    if (r->qtail)
        r->qtail->next = c;
    else
        r->qhead = c;
    r->qtail = c;
    r->qlen++;
    pthread_cond_signal(&r->qcond);
    pthread_mutex_unlock(&r->qlock);
}
