/* Replica executors and calls. With a dray runtime (dray_serve_opts.rt, unless inline_replicas) each
 * replica is a core actor of the built-in class "dray_serve_Replica": calls, batches, health checks
 * and reconfigure run as its methods in mailbox order on the pool; the caller never runs them, so a
 * call that hangs can be abandoned (its owned request stays valid until it returns) and the replica
 * replaced. Otherwise the replica runs in the caller's thread under a mutex (no hop, no timeout).
 * Either way one callback at a time per replica. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#include "internal.h"

enum { M_CALL, M_BATCH, M_HEALTH, M_RECONFIGURE };

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ==== Shared liveness block =========================================================================*/
static dray__serve_live *live_new(void)
{
    dray__serve_live *l = calloc(1, sizeof(*l));
    if (l) {
        atomic_init(&l->refs, 1);
        pthread_mutex_init(&l->cb_mu, NULL);
    }
    return l;
}

static void live_unref(dray__serve_live *l)
{
    if (l && atomic_fetch_sub(&l->refs, 1) == 1) {
        pthread_mutex_destroy(&l->cb_mu);
        free(l);
    }
}

/* Runs fn under the busy mark (what the controller's stuck check reads). */
#define BUSY_BEGIN(l) atomic_store_explicit(&(l)->busy_since_ns, now_ns(), memory_order_relaxed)
#define BUSY_END(l) atomic_store_explicit(&(l)->busy_since_ns, 0, memory_order_relaxed)

bool dray__serve_replica_stuck(dray__serve_replica *r, double limit_s, double *busy_s)
{
    int64_t since = atomic_load_explicit(&r->live->busy_since_ns, memory_order_relaxed);
    *busy_s = since ? (double)(now_ns() - since) * 1e-9 : 0;
    return since && *busy_s > limit_s;
}

/* ==== Calls ========================================================================================*/
dray__serve_call *dray__serve_call_new(void)
{
    dray__serve_call *c = calloc(1, sizeof(*c));
    if (c)
        atomic_init(&c->refs, 1);
    return c;
}

void dray__serve_call_reset(dray__serve_call *c)
{
    dray_serve_response_release(&c->resp);
    cJSON_Delete(c->req.priv_);
    cJSON_Delete(c->json_copy);
    free(c->path_heap);
    c->path_heap = NULL;
    c->json_copy = NULL;
    memset(&c->req, 0, sizeof(c->req));
    c->st = DRAY_OK;
    c->err[0] = '\0';
    c->done = NULL;
    c->done_arg = NULL;
    c->next = c->prev = NULL;
    c->listed = c->tracked = c->remote = false;
    atomic_store(&c->state, DRAY__CALL_PENDING);
    c->replica = NULL;
    c->ref = NULL;
    c->deadline = 0;
    c->kv_len = c->kv_headers = 0;
}

void dray__serve_call_unref(dray__serve_call *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    dray__serve_call_reset(c);
    free(c->buf);
    free(c->kv);
    free(c);
}

bool dray__serve_kv_put(dray__serve_call *c, const char *s)
{
    size_t n = strlen(s) + 1;
    if (c->kv_len + n > c->kv_cap) {
        size_t cap = c->kv_cap ? c->kv_cap : 256;
        while (cap < c->kv_len + n)
            cap *= 2;
        char *k = realloc(c->kv, cap);
        if (!k)
            return false;
        c->kv = k;
        c->kv_cap = cap;
    }
    memcpy(c->kv + c->kv_len, s, n);
    c->kv_len += n;
    return true;
}

dray_status dray__serve_call_own(dray__serve_call *c, const char *method, const char *path)
{
    size_t n = strnlen(method, sizeof(c->method) - 1);
    memcpy(c->method, method, n);
    c->method[n] = '\0';
    n = strlen(path);
    if (n < sizeof(c->path)) {
        memcpy(c->path, path, n + 1);
        c->req.path = c->path;
    } else {
        if (!(c->path_heap = strdup(path)))
            return dray_set_error(DRAY_ENOMEM, "serve: out of memory");
        c->req.path = c->path_heap;
    }
    c->req.method = c->method;
    c->req.body = c->buf;
    c->req.conn_ = NULL;
    c->req.kv_ = c;
    return DRAY_OK;
}

/* Looks `key` up in the snapshot's part [from, to) (headers case-insensitively). */
static const char *kv_find(const dray__serve_call *c, size_t from, size_t to, const char *key,
                           bool nocase)
{
    for (size_t i = from; i < to;) {
        const char *k = c->kv + i;
        const char *v = k + strlen(k) + 1;
        if (nocase ? strcasecmp(k, key) == 0 : strcmp(k, key) == 0)
            return v;
        i = (size_t)(v - c->kv) + strlen(v) + 1;
    }
    return NULL;
}

const char *dray_serve_request_query(const dray_serve_request *req, const char *key)
{
    if (!key)
        return NULL;
    const dray__serve_call *c = req->kv_;
    return c ? kv_find(c, c->kv_headers, c->kv_len, key, false) : NULL;
}

const char *dray_serve_request_header(const dray_serve_request *req, const char *name)
{
    if (!name)
        return NULL;
    const dray__serve_call *c = req->kv_;
    return c ? kv_find(c, 0, c->kv_headers, name, true) : NULL;
}

bool dray__serve_call_finish(dray__serve_call *c, dray_status st, dray_serve_response *resp,
                             const char *err, int64_t ns, bool drop_executor)
{
    int exp = DRAY__CALL_PENDING;
    bool won = atomic_compare_exchange_strong(&c->state, &exp, DRAY__CALL_CLAIMED);
    if (won) {
        dray__serve_replica *r = c->replica;
        c->st = st;
        if (resp)
            c->resp = *resp;
        if (st != DRAY_OK && err)
            snprintf(c->err, sizeof(c->err), "%s", err);
        else if (st == DRAY_ETIMEDOUT)
            snprintf(c->err, sizeof(c->err),
                     "deployment '%s': no answer within the request timeout (%g s)", r->dep->name,
                     dray__serve_timeout(r->dep));
        else if (st == DRAY_ESHUTDOWN)
            snprintf(c->err, sizeof(c->err), "deployment '%s': serve is shutting down",
                     r->dep->name);
        else if (st == DRAY_EACTOR)
            snprintf(c->err, sizeof(c->err),
                     "deployment '%s': replica %llu died before running the call", r->dep->name,
                     (unsigned long long)r->id);
        else if (st != DRAY_OK)
            snprintf(c->err, sizeof(c->err), "%s", dray_status_str(st));
        if (c->tracked)
            dray__serve_pending_remove(r->dep->serve, c);
        dray__serve_count(r->dep, st, ns);
        if (st == DRAY_EFATAL || st == DRAY_EACTOR)
            dray__serve_mark_dead(r);
        atomic_store_explicit(&c->state, DRAY__CALL_FINISHED, memory_order_release);
        /* The last touch of r: once its slots are back it may be reaped. */
        atomic_fetch_sub_explicit(&r->ongoing, 1, memory_order_release);
    } else if (resp) {
        dray_serve_response_release(resp);
    }
    void (*done)(dray__serve_call *) = c->done;
    /* The waiter holds its reference until `done` ran, so c outlives the drop when we won. */
    if (drop_executor && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
        atomic_fetch_add(&c->refs, 1);
        dray__serve_call_unref(c);
        return won;
    }
    if (won && done)
        done(c);
    return won;
}

/* ==== Batch and side jobs ==========================================================================*/
/* A batch run on an actor: shared by the batcher (which may give up on it) and the actor method. */
typedef struct batch_job {
    atomic_int refs;
    atomic_bool ran;
    size_t n;
    dray__serve_call **calls;
    dray_serve_request **reqs;
    dray_serve_response *resps;
} batch_job;

static void batch_job_unref(batch_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    free(j->calls);
    free(j->reqs);
    free(j->resps);
    free(j);
}

/* A health check or reconfigure run on an actor (the waiter may give up on it). */
typedef struct side_job {
    atomic_int refs;
    atomic_int_least64_t started_ns;
    atomic_bool finished;
    dray_status st;
    char err[256];
    cJSON *cfg; /* reconfigure: an owned copy */
} side_job;

static void side_job_unref(side_job *j)
{
    if (j && atomic_fetch_sub(&j->refs, 1) == 1) {
        cJSON_Delete(j->cfg);
        free(j);
    }
}

struct dray__serve_health {
    side_job *job; /* NULL for a remote replica */
    dray_ref *ref;
    double sent;
};

/* A remote replica's check: its time counts from sending (the node's mailbox is not visible). */
static dray_status remote_health_poll(dray__serve_replica *r, double timeout_s)
{
    struct dray__serve_health *hc = r->health;
    if (!hc) {
        if (!(hc = calloc(1, sizeof(*hc))))
            return DRAY_OK;
        hc->sent = dray__serve_now();
        if (dray__serve_remote_send(r, true, NULL, &hc->ref) != DRAY_OK) {
            free(hc);
            return DRAY_OK;
        }
        r->health = hc;
        return DRAY_OK;
    }
    dray_status st;
    if (dray_ref_ready(hc->ref))
        st = dray_get(r->rt, hc->ref, 0, NULL);
    else if (dray__serve_now() - hc->sent > timeout_s)
        st = dray_set_error(DRAY_ETIMEDOUT, "health check unanswered for more than %g s",
                            timeout_s);
    else
        return DRAY_OK;
    dray_ref_release(hc->ref);
    free(hc);
    r->health = NULL;
    return st;
}

/* The argument of an actor method: carries the executor's references (on a call, on a batch and
 * its calls, on a side job). The method takes them over when it runs; when it never runs (the actor
 * was killed, the runtime stopped), the core releases the argument and its destroy drops them. */
typedef struct ticket {
    dray_ext_obj hdr;
    int method;
    void *job;
    atomic_bool taken;
} ticket;

static void ticket_destroy(dray_ext_obj *o)
{
    ticket *t = (ticket *)o;
    if (!atomic_exchange(&t->taken, true)) {
        if (t->method == M_CALL) {
            dray__serve_call_unref(t->job);
        } else if (t->method == M_BATCH) {
            batch_job *j = t->job;
            for (size_t i = 0; i < j->n; i++)
                dray__serve_call_unref(j->calls[i]);
            batch_job_unref(j);
        } else {
            side_job_unref(t->job);
        }
    }
    free(t);
}

static dray_ext_type ticket_type = {.name = "dray.serve.ticket", .destroy = ticket_destroy};
DRAY_EXT_TYPE(ticket_type)

/* The job of the method's ticket; the method now drops the executor's references itself. */
static void *take_job(const dray_value *args)
{
    ticket *t = (ticket *)args[0].u.ext;
    atomic_store(&t->taken, true);
    return t->job;
}

/* ==== The actor =====================================================================================*/
/* The actor's state: the class, the user's state and the liveness block (a reference). */
typedef struct actor_state {
    const dray_serve_class *cls;
    void *state;
    dray__serve_live *live;
} actor_state;

static dray_status actor_init(dray_ctx *ctx, const dray_value *args, size_t nargs, void **state)
{
    if (nargs != 2 || args[0].type != DRAY_T_INT || args[1].type != DRAY_T_INT)
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
    a->live = (dray__serve_live *)(uintptr_t)args[1].u.i;
    atomic_fetch_add(&a->live->refs, 1);
    pthread_mutex_lock(&a->live->cb_mu);
    a->live->astate = a;
    pthread_mutex_unlock(&a->live->cb_mu);
    *state = a;
    return DRAY_OK;
}

static void actor_destroy(void *state)
{
    actor_state *a = state;
    /* Waits for a call running in an ingress thread. */
    pthread_mutex_lock(&a->live->cb_mu);
    if (a->live->astate == a)
        a->live->astate = NULL;
    pthread_mutex_unlock(&a->live->cb_mu);
    a->cls->destroy(a->state);
    live_unref(a->live);
    free(a);
}

static dray_status m_call(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                          dray_value *result)
{
    (void)ctx;
    (void)nargs;
    actor_state *a = state;
    dray__serve_call *c = take_job(args);
    dray_serve_response resp;
    memset(&resp, 0, sizeof(resp));
    pthread_mutex_lock(&a->live->cb_mu);
    BUSY_BEGIN(a->live);
    int64_t t0 = now_ns();
    dray_status st = a->cls->call(a->state, &c->req, &resp);
    int64_t ns = now_ns() - t0;
    BUSY_END(a->live);
    pthread_mutex_unlock(&a->live->cb_mu);
    char err[256] = "";
    if (st != DRAY_OK)
        snprintf(err, sizeof(err), "%s", dray_last_error());
    dray__serve_call_finish(c, st, &resp, err, ns, true);
    *result = dray_null();
    /* A crash kills the actor (its pending calls fail with DRAY_EACTOR). */
    return st == DRAY_EFATAL ? DRAY_EFATAL : DRAY_OK;
}

static dray_status m_batch(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                           dray_value *result)
{
    (void)ctx;
    (void)nargs;
    actor_state *a = state;
    batch_job *j = take_job(args);
    atomic_store(&j->ran, true);
    pthread_mutex_lock(&a->live->cb_mu);
    BUSY_BEGIN(a->live);
    int64_t t0 = now_ns();
    dray_status st = a->cls->batch_call(a->state, j->reqs, j->n, j->resps);
    int64_t ns = (now_ns() - t0) / (int64_t)j->n;
    BUSY_END(a->live);
    pthread_mutex_unlock(&a->live->cb_mu);
    char err[256] = "";
    if (st != DRAY_OK)
        snprintf(err, sizeof(err), "%s", dray_last_error());
    for (size_t i = 0; i < j->n; i++) {
        if (st != DRAY_OK)
            dray_serve_response_release(&j->resps[i]);
        dray__serve_call_finish(j->calls[i], st, st == DRAY_OK ? &j->resps[i] : NULL, err, ns,
                                true);
    }
    batch_job_unref(j);
    *result = dray_null();
    return st == DRAY_EFATAL ? DRAY_EFATAL : DRAY_OK;
}

static dray_status m_side(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                          dray_value *result, bool health)
{
    (void)ctx;
    (void)nargs;
    actor_state *a = state;
    side_job *j = take_job(args);
    pthread_mutex_lock(&a->live->cb_mu);
    atomic_store(&j->started_ns, now_ns());
    BUSY_BEGIN(a->live);
    j->st = health ? (a->cls->health_check ? a->cls->health_check(a->state) : DRAY_OK)
                   : a->cls->reconfigure(a->state, j->cfg);
    BUSY_END(a->live);
    pthread_mutex_unlock(&a->live->cb_mu);
    if (j->st != DRAY_OK)
        snprintf(j->err, sizeof(j->err), "%s", dray_last_error());
    atomic_store(&j->finished, true);
    dray_status st = j->st;
    side_job_unref(j);
    *result = dray_null();
    return st == DRAY_EFATAL ? DRAY_EFATAL : DRAY_OK;
}

static dray_status m_health(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                            dray_value *result)
{
    return m_side(ctx, state, args, nargs, result, true);
}

static dray_status m_reconfigure(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                                 dray_value *result)
{
    return m_side(ctx, state, args, nargs, result, false);
}

void *dray__serve_replica_enter(dray__serve_replica *r)
{
    dray__serve_live *l = r->live;
    if (!r->actor || r->remote || !l || pthread_mutex_trylock(&l->cb_mu) != 0)
        return NULL;
    void *a = l->astate;
    if (!a)
        pthread_mutex_unlock(&l->cb_mu);
    return a;
}

bool dray__serve_replica_run_here(void *astate, dray__serve_call *c)
{
    /* Never reads the replica: once a timeout gave its slot back it may be gone. */
    actor_state *a = astate;
    dray__serve_live *l = a->live;
    dray_serve_response resp;
    memset(&resp, 0, sizeof(resp));
    BUSY_BEGIN(l);
    int64_t t0 = now_ns();
    dray_status st = a->cls->call(a->state, &c->req, &resp);
    int64_t ns = now_ns() - t0;
    BUSY_END(l);
    pthread_mutex_unlock(&l->cb_mu);
    char err[256] = "";
    if (st != DRAY_OK)
        snprintf(err, sizeof(err), "%s", dray_last_error());
    /* A crash marks the replica dead (finish); the controller kills its actor and replaces it. */
    return dray__serve_call_finish(c, st, &resp, err, ns, true);
}

/* Method order = M_CALL, M_BATCH, M_HEALTH, M_RECONFIGURE. */
DRAY_ACTOR_CLASS(dray_serve_Replica, actor_init, actor_destroy, {"call", m_call},
                 {"batch", m_batch}, {"health", m_health}, {"reconfigure", m_reconfigure})
static const char ACTOR_CLASS[] = "dray_serve_Replica";

/* Sends job to r's actor with the executor's references (taken by the ticket: on failure to send
 * they are dropped before this returns). */
static dray_status actor_send(dray__serve_replica *r, int method, void *job, dray_ref **ref)
{
    ticket *t = calloc(1, sizeof(*t));
    if (!t)
        return dray_set_error(DRAY_ENOMEM, "deployment '%s': out of memory", r->dep->name);
    dray_ext_obj_init(&t->hdr, &ticket_type);
    t->method = method;
    t->job = job;
    dray_value arg = dray_value_of_ext(&t->hdr);
    dray_status st = dray_actor_call_m(r->rt, r->actor, method, &arg, 1, ref);
    dray_value_release(&arg);
    return st;
}

static int64_t ms_until(double deadline)
{
    if (deadline <= 0)
        return -1;
    double left = deadline - dray__serve_now();
    return left <= 0 ? 0 : (int64_t)(left * 1000) + 1;
}

/* ==== Calls on replicas ============================================================================*/
dray_status dray__serve_replica_call(dray__serve_replica *r, dray_serve_request *req,
                                     dray_serve_response *resp)
{
    /* Inline replicas only: one callback at a time under the lock, in this thread. */
    pthread_mutex_lock(&r->lock);
    BUSY_BEGIN(r->live);
    int64_t t0 = now_ns();
    dray_status st = r->cls->call(r->state, req, resp);
    uint64_t ns = (uint64_t)(now_ns() - t0);
    atomic_fetch_add_explicit(&r->dep->call_ns, ns, memory_order_relaxed);
    dray__serve_latency_record(r->dep, ns, 1);
    BUSY_END(r->live);
    pthread_mutex_unlock(&r->lock);
    return st;
}

dray_status dray__serve_call_submit(dray__serve_replica *r, dray__serve_call *c, dray_ref **ref)
{
    c->replica = r;
    if (r->remote)
        return dray__serve_remote_submit(r, c, ref);
    atomic_fetch_add(&c->refs, 1); /* the executor's, carried by the ticket */
    return actor_send(r, M_CALL, c, ref);
}

dray_status dray__serve_call_wait(dray__serve_replica *r, dray__serve_call *c)
{
    dray_status st = dray__serve_call_submit(r, c, &c->ref);
    if (st != DRAY_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        dray__serve_call_finish(c, st, NULL, msg, 0, false);
        return st;
    }
    st = dray_get(r->rt, c->ref, ms_until(c->deadline), NULL);
    if (st == DRAY_ETIMEDOUT) {
        if (!dray__serve_call_finish(c, DRAY_ETIMEDOUT, NULL, NULL, 0, false))
            dray_get(r->rt, c->ref, -1, NULL); /* answered meanwhile */
    } else if (c->remote && atomic_load(&c->state) == DRAY__CALL_PENDING) {
        dray__serve_remote_complete(r->rt, c, true);
    } else if (atomic_load(&c->state) == DRAY__CALL_PENDING) {
        /* The actor died before running it: the method never will. */
        char msg[256];
        snprintf(msg, sizeof(msg), "deployment '%s': replica %llu died: %s", r->dep->name,
                 (unsigned long long)r->id, dray_last_error());
        dray__serve_call_finish(c, DRAY_EACTOR, NULL, msg, 0, false);
    }
    dray_ref_release(c->ref);
    c->ref = NULL;
    return c->st == DRAY_OK ? DRAY_OK : dray_set_error(c->st, "%s", c->err);
}

/* Health check. Inline replicas: run here unless a call holds the replica for over 20 ms (then OK;
 * the stuck check covers it). Actors: asynchronous, see below. */
dray_status dray__serve_replica_health_poll(dray__serve_replica *r, double timeout_s)
{
    if (!r->cls->health_check)
        return DRAY_OK;
    if (r->remote)
        return remote_health_poll(r, timeout_s);
    if (!r->actor) {
        /* Wait for the lock a little (calls hold it briefly); a replica held longer is either
         * busy or stuck, which the stuck check tells apart. */
        struct timespec ts;
        dray__serve_deadline(&ts, 0.02);
        if (pthread_mutex_timedlock(&r->lock, &ts) != 0)
            return DRAY_OK;
        BUSY_BEGIN(r->live);
        dray_status st = r->cls->health_check(r->state);
        BUSY_END(r->live);
        pthread_mutex_unlock(&r->lock);
        return st;
    }
    struct dray__serve_health *hc = r->health;
    if (!hc) {
        hc = calloc(1, sizeof(*hc));
        side_job *j = calloc(1, sizeof(*j));
        if (!hc || !j) {
            free(hc);
            free(j);
            return DRAY_OK; /* try again next period */
        }
        atomic_init(&j->refs, 2);
        hc->job = j;
        if (actor_send(r, M_HEALTH, j, &hc->ref) != DRAY_OK) {
            side_job_unref(j);
            free(hc);
            return DRAY_OK;
        }
        r->health = hc;
        return DRAY_OK;
    }
    side_job *j = hc->job;
    dray_status st = DRAY_OK;
    int64_t started = atomic_load(&j->started_ns);
    if (atomic_load(&j->finished)) {
        st = j->st == DRAY_OK ? DRAY_OK : dray_set_error(j->st, "%s", j->err);
    } else if (started && (double)(now_ns() - started) * 1e-9 > timeout_s) {
        st = dray_set_error(DRAY_ETIMEDOUT, "health check running for more than %g s", timeout_s);
    } else if (dray_ref_ready(hc->ref) && !started) {
        st = dray_set_error(DRAY_EACTOR, "the replica's actor died");
    } else {
        return DRAY_OK; /* queued behind calls, or running within its time */
    }
    dray_ref_release(hc->ref);
    side_job_unref(j);
    free(hc);
    r->health = NULL;
    return st;
}

dray_status dray__serve_replica_reconfigure(dray__serve_replica *r, const cJSON *cfg)
{
    if (!r->actor) {
        pthread_mutex_lock(&r->lock);
        dray_status st = r->cls->reconfigure(r->state, cfg);
        pthread_mutex_unlock(&r->lock);
        return st;
    }
    if (r->remote) {
        char *text = cfg ? cJSON_PrintUnformatted(cfg) : NULL;
        dray_ref *ref;
        dray_status st = cfg && !text ? DRAY_ENOMEM : dray__serve_remote_send(r, false, text, &ref);
        free(text);
        if (st != DRAY_OK)
            return st;
        st = dray_get(r->rt, ref, (int64_t)(dray__serve_timeout(r->dep) * 1000), NULL);
        dray_ref_release(ref);
        return st;
    }
    side_job *j = calloc(1, sizeof(*j));
    if (!j || (cfg && !(j->cfg = cJSON_Duplicate(cfg, 1)))) {
        free(j);
        return dray_set_error(DRAY_ENOMEM, "deployment '%s': out of memory", r->dep->name);
    }
    atomic_init(&j->refs, 2);
    dray_ref *ref;
    dray_status st = actor_send(r, M_RECONFIGURE, j, &ref);
    if (st != DRAY_OK) {
        side_job_unref(j);
        return st;
    }
    double timeout = dray__serve_timeout(r->dep);
    st = dray_get(r->rt, ref, (int64_t)(timeout * 1000), NULL);
    if (st == DRAY_ETIMEDOUT) {
        st = dray_set_error(DRAY_ETIMEDOUT, "replica %llu did not reconfigure within %g s",
                            (unsigned long long)r->id, timeout);
    } else if (atomic_load(&j->finished)) {
        st = j->st == DRAY_OK ? DRAY_OK : dray_set_error(j->st, "%s", j->err);
    } else {
        st = dray_set_error(DRAY_EACTOR, "replica %llu died", (unsigned long long)r->id);
    }
    dray_ref_release(ref);
    side_job_unref(j);
    return st;
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
    if (r->remote)
        return dray__serve_remote_start(h, r);
    dray_value args[2] = {dray_int((int64_t)(uintptr_t)h), dray_int((int64_t)(uintptr_t)r->live)};
    dray_actor_opts ao;
    memset(&ao, 0, sizeof(ao));
    ao.name = h->name;
    ao.max_concurrency = 1;
    ao.num_cpus = 0;
    if ((st = dray_actor_create(r->rt, ACTOR_CLASS, args, 2, &ao, &r->actor)) != DRAY_OK)
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
    if (!r || !(r->live = live_new())) {
        free(r);
        return dray_set_error(st, "serve: deployment '%s': out of memory", h->name);
    }
    r->dep = h;
    r->cls = h->cls;
    r->rt = h->serve->opts.inline_replicas ? NULL : h->serve->opts.rt;
    r->remote = r->rt && h->serve->opts.remote_replicas;
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
    if (r->actor) {
        dray_actor_kill(r->rt, r->actor, true);
        dray_actor_release(r->actor);
    } else {
        r->cls->destroy(r->state);
    }
out_free:
    pthread_cond_destroy(&r->qcond);
    pthread_mutex_destroy(&r->qlock);
    pthread_mutex_destroy(&r->lock);
    live_unref(r->live);
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
    if (r->health) {
        /* The method's reference is the ticket's (dropped when it runs or is dropped). */
        dray_ref_release(r->health->ref);
        side_job_unref(r->health->job);
        free(r->health);
    }
    if (r->actor) {
        /* Pending calls fail; a call still running (abandoned after a timeout) keeps the actor's
         * state until it returns, then the actor frees it. */
        dray_actor_kill(r->rt, r->actor, true);
        dray_actor_release(r->actor);
    } else {
        r->cls->destroy(r->state);
    }
    pthread_cond_destroy(&r->qcond);
    pthread_mutex_destroy(&r->qlock);
    pthread_mutex_destroy(&r->lock);
    live_unref(r->live);
    free(r);
}

/* ==== Batching =====================================================================================*/
static void count_batch(dray_serve_handle *h, size_t n)
{
    atomic_fetch_add(&h->batches, 1);
    atomic_fetch_add(&h->batched_requests, n);
    int seen = atomic_load(&h->max_batch_seen);
    while ((int)n > seen && !atomic_compare_exchange_weak(&h->max_batch_seen, &seen, (int)n)) {
    }
}

/* Runs one batch of n calls on r in this thread (inline replicas). */
static void run_batch_direct(dray__serve_replica *r, dray__serve_call **calls, size_t n)
{
    dray_serve_request *reqs[n];
    dray_serve_response resps[n];
    memset(resps, 0, sizeof(resps));
    for (size_t i = 0; i < n; i++)
        reqs[i] = &calls[i]->req;
    count_batch(r->dep, n);
    pthread_mutex_lock(&r->lock);
    BUSY_BEGIN(r->live);
    int64_t t0 = now_ns();
    dray_status st = r->cls->batch_call(r->state, reqs, n, resps);
    int64_t ns = (now_ns() - t0) / (int64_t)n;
    BUSY_END(r->live);
    pthread_mutex_unlock(&r->lock);
    char err[256] = "";
    if (st != DRAY_OK)
        snprintf(err, sizeof(err), "%s", dray_last_error());
    for (size_t i = 0; i < n; i++) {
        if (st != DRAY_OK)
            dray_serve_response_release(&resps[i]);
        dray__serve_call_finish(calls[i], st, st == DRAY_OK ? &resps[i] : NULL, err, ns, false);
    }
}

/* Runs one batch on r's actor and waits for it up to the earliest deadline among its calls; past
 * it, every call gets DRAY_ETIMEDOUT and the batch is abandoned (it owns the calls it references). */
static void run_batch_actor(dray__serve_replica *r, dray__serve_call **calls, size_t n)
{
    dray_serve_handle *h = r->dep;
    batch_job *j = calloc(1, sizeof(*j));
    if (j) {
        j->calls = malloc(n * sizeof(*j->calls));
        j->reqs = malloc(n * sizeof(*j->reqs));
        j->resps = calloc(n, sizeof(*j->resps));
    }
    if (!j || !j->calls || !j->reqs || !j->resps) {
        if (j) {
            atomic_init(&j->refs, 1);
            batch_job_unref(j);
        }
        for (size_t i = 0; i < n; i++)
            dray__serve_call_finish(calls[i], DRAY_ENOMEM, NULL, "serve: out of memory", 0,
                                    false);
        return;
    }
    atomic_init(&j->refs, 2);
    j->n = n;
    double deadline = 0;
    for (size_t i = 0; i < n; i++) {
        j->calls[i] = calls[i];
        j->reqs[i] = &calls[i]->req;
        atomic_fetch_add(&calls[i]->refs, 1); /* the executor's */
        if (calls[i]->deadline > 0 && (deadline == 0 || calls[i]->deadline < deadline))
            deadline = calls[i]->deadline;
    }
    count_batch(h, n);
    dray_ref *ref = NULL;
    dray_status st = actor_send(r, M_BATCH, j, &ref);
    if (st != DRAY_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        for (size_t i = 0; i < n; i++)
            dray__serve_call_finish(calls[i], st, NULL, msg, 0, false);
        batch_job_unref(j);
        return;
    }
    if (atomic_load(&h->serve->expire_all))
        deadline = dray__serve_now();
    st = dray_get(r->rt, ref, ms_until(deadline), NULL);
    if (st == DRAY_ETIMEDOUT) {
        for (size_t i = 0; i < n; i++)
            dray__serve_call_finish(calls[i], DRAY_ETIMEDOUT, NULL, NULL, 0, false);
    } else if (!atomic_load(&j->ran)) {
        char msg[256];
        snprintf(msg, sizeof(msg), "deployment '%s': replica %llu died: %s", h->name,
                 (unsigned long long)r->id, dray_last_error());
        for (size_t i = 0; i < n; i++)
            dray__serve_call_finish(calls[i], DRAY_EACTOR, NULL, msg, 0, false);
    }
    dray_ref_release(ref);
    batch_job_unref(j);
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
        double now = dray__serve_now();
        bool expire = atomic_load(&r->dep->serve->expire_all);
        while (r->qhead && n < cap) {
            dray__serve_call *c = r->qhead;
            r->qhead = c->next;
            r->qlen--;
            if (expire || (c->deadline > 0 && now > c->deadline)) {
                /* Waited past its deadline in the queue: answer without running it. */
                pthread_mutex_unlock(&r->qlock);
                dray__serve_call_finish(c, expire ? DRAY_ESHUTDOWN : DRAY_ETIMEDOUT, NULL, NULL, 0,
                                        false);
                pthread_mutex_lock(&r->qlock);
                continue;
            }
            take[n++] = c;
        }
        if (!r->qhead)
            r->qtail = NULL;
        pthread_mutex_unlock(&r->qlock);
        if (n > 0) {
            if (r->actor)
                run_batch_actor(r, take, n);
            else
                run_batch_direct(r, take, n);
        }
        pthread_mutex_lock(&r->qlock);
    }
    pthread_mutex_unlock(&r->qlock);
    free(calls);
    return NULL;
}

void dray__serve_enqueue(dray__serve_replica *r, dray__serve_call *c)
{
    c->next = NULL;
    c->replica = r;
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
