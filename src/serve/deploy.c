/* Deployments: the class registry, replicas, the power-of-two-choices router with back-pressure,
 * dynamic batching queues, handles and the serve instance's life cycle. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ==== Class registry (load time) ===================================================================*/
static pthread_mutex_t class_lock = PTHREAD_MUTEX_INITIALIZER;
static dray_serve_class *class_list;

void dray_serve_class_register(dray_serve_class *cls)
{
    pthread_mutex_lock(&class_lock);
    dray_serve_class *c = class_list;
    while (c && strcmp(c->name, cls->name) != 0)
        c = c->next;
    if (!c && cls != class_list) {
        cls->next = class_list;
        class_list = cls;
    }
    pthread_mutex_unlock(&class_lock);
}

const dray_serve_class *dray_serve_class_find(const char *name)
{
    pthread_mutex_lock(&class_lock);
    dray_serve_class *c = class_list;
    while (c && (!name || strcmp(c->name, name) != 0))
        c = c->next;
    pthread_mutex_unlock(&class_lock);
    if (!c)
        dray_set_error(DRAY_ENOTFOUND, "serve: no deployment class named '%s'",
                       name ? name : "(null)");
    return c;
}

/* ==== Small helpers ================================================================================*/
double dray__serve_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void dray__serve_deadline(struct timespec *ts, double from_now)
{
    clock_gettime(CLOCK_REALTIME, ts);
    long ns = ts->tv_nsec + (long)(from_now * 1e9);
    ts->tv_sec += ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

int dray_serve_http_status(dray_status st)
{
    switch (st) {
    case DRAY_OK:
        return 200;
    case DRAY_EINVAL:
    case DRAY_EFORMAT:
    case DRAY_ETYPE:
    case DRAY_ERANGE:
        return 400;
    case DRAY_ENOTFOUND:
        return 404;
    case DRAY_EBUSY:
    case DRAY_ESHUTDOWN:
        return 503;
    case DRAY_ETIMEDOUT:
        return 504;
    default:
        return 500;
    }
}

void dray_serve_response_release(dray_serve_response *resp)
{
    if (!resp)
        return;
    cJSON_Delete(resp->json);
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

void dray__serve_error_response(dray_serve_response *resp, int http_status, const char *msg)
{
    dray_serve_response_release(resp);
    resp->status = http_status;
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "error", msg ? msg : "") &&
        cJSON_AddNumberToObject(o, "status", http_status)) {
        resp->json = o;
        return;
    }
    cJSON_Delete(o);
}

dray_status dray_serve_parse_json(const char *data, size_t len, cJSON **out)
{
    if (!data || len == 0)
        return dray_set_error(DRAY_EFORMAT, "request body: empty, expected JSON");
    /* Bound the nesting before cJSON recurses: count brackets outside strings. */
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > DRAY__SERVE_JSON_DEPTH)
                return dray_set_error(DRAY_EFORMAT,
                                      "request body: JSON nested deeper than %d at byte %zu",
                                      DRAY__SERVE_JSON_DEPTH, i);
        } else if (ch == ']' || ch == '}') {
            depth--;
        }
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(data, len, &end, false);
    if (!j) {
        size_t off = end && end >= data && end <= data + len ? (size_t)(end - data) : 0;
        return dray_set_error(DRAY_EFORMAT, "request body: malformed JSON at byte %zu", off);
    }
    /* Only whitespace may follow the value. */
    for (const char *p = end; p && p < data + len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != '\0') {
            cJSON_Delete(j);
            return dray_set_error(DRAY_EFORMAT, "request body: trailing data after JSON at byte %zu",
                                  (size_t)(p - data));
        }
    }
    *out = j;
    return DRAY_OK;
}

dray_status dray_serve_request_json(dray_serve_request *req, const cJSON **out)
{
    if (!req->json) {
        cJSON *j;
        dray_status st = dray_serve_parse_json(req->body, req->len, &j);
        if (st != DRAY_OK)
            return st;
        req->json = j;
        req->priv_ = j; /* owned by whoever built the request; freed with it */
    }
    *out = req->json;
    return DRAY_OK;
}

/* ==== Routing ======================================================================================*/
static bool replica_routable(const dray__serve_replica *r)
{
    return !atomic_load_explicit(&r->dead, memory_order_relaxed) &&
           !atomic_load_explicit(&r->draining, memory_order_relaxed);
}

/* Takes one slot on replica r if it has one below `max`. */
static bool replica_take(dray__serve_replica *r, int max)
{
    int o = atomic_load_explicit(&r->ongoing, memory_order_relaxed);
    while (o < max) {
        if (atomic_compare_exchange_weak(&r->ongoing, &o, o + 1))
            return true;
    }
    return false;
}

static uint64_t next_random(dray_serve_handle *h)
{
    uint64_t z = atomic_fetch_add_explicit(&h->rng, 0x9e3779b97f4a7c15ull, memory_order_relaxed);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Picks a replica by power of two choices and takes a slot on it. NULL: none routable (*busy false)
 * or all at max_ongoing_requests (*busy true). */
static dray__serve_replica *pick_replica(dray_serve_handle *h, bool *busy)
{
    int max = atomic_load_explicit(&h->max_ongoing, memory_order_relaxed);
    dray__serve_replica *got = NULL;
    *busy = false;
    pthread_rwlock_rdlock(&h->rw);
    int n = h->n_replicas;
    if (n > 0) {
        uint64_t rnd = next_random(h);
        dray__serve_replica *a = h->replicas[rnd % (uint64_t)n];
        dray__serve_replica *b = h->replicas[(rnd >> 32) % (uint64_t)n];
        if (!replica_routable(a))
            a = b;
        if (!replica_routable(b))
            b = a;
        if (replica_routable(a)) {
            dray__serve_replica *first = atomic_load(&a->ongoing) <= atomic_load(&b->ongoing) ? a : b;
            dray__serve_replica *second = first == a ? b : a;
            if (replica_take(first, max))
                got = first;
            else if (replica_take(second, max))
                got = second;
        }
        /* Both choices full or gone: fall back to a scan before refusing. */
        for (int i = 0; !got && i < n; i++) {
            dray__serve_replica *r = h->replicas[i];
            if (!replica_routable(r))
                continue;
            *busy = true;
            if (replica_take(r, max))
                got = r;
        }
    }
    pthread_rwlock_unlock(&h->rw);
    if (got)
        *busy = false;
    return got;
}

int dray__serve_live_replicas(dray_serve_handle *h)
{
    int live = 0;
    pthread_rwlock_rdlock(&h->rw);
    for (int i = 0; i < h->n_replicas; i++)
        live += replica_routable(h->replicas[i]);
    pthread_rwlock_unlock(&h->rw);
    return live;
}

/* Waits for a replica when the deployment scaled to zero (the controller sees the waiter). */
static dray__serve_replica *pick_or_wait(dray_serve_handle *h, bool *busy)
{
    dray__serve_replica *r = pick_replica(h, busy);
    if (r || *busy || !atomic_load(&h->autoscaling))
        return r;
    double deadline = dray__serve_now() + 30.0;
    atomic_fetch_add(&h->waiting_for_zero, 1);
    dray__serve_controller_kick(h->serve);
    while (!r && !*busy && dray__serve_now() < deadline &&
           !atomic_load(&h->serve->stopping)) {
        pthread_mutex_lock(&h->zlock);
        struct timespec ts;
        dray__serve_deadline(&ts, 0.005);
        pthread_cond_timedwait(&h->zcond, &h->zlock, &ts);
        pthread_mutex_unlock(&h->zlock);
        r = pick_replica(h, busy);
    }
    atomic_fetch_sub(&h->waiting_for_zero, 1);
    return r;
}

void dray__serve_count(dray_serve_handle *h, dray_status st, int64_t ns)
{
    atomic_fetch_add_explicit(&h->requests, 1, memory_order_relaxed);
    if (st != DRAY_OK)
        atomic_fetch_add_explicit(&h->errors, 1, memory_order_relaxed);
    if (ns > 0) {
        atomic_fetch_add_explicit(&h->call_ns, (uint64_t)ns, memory_order_relaxed);
        dray__serve_latency_record(h, (uint64_t)ns, 1);
    }
}

double dray__serve_timeout(const dray_serve_handle *h)
{
    long long us = atomic_load_explicit(&((dray_serve_handle *)h)->timeout_us, memory_order_relaxed);
    return us > 0 ? (double)us * 1e-6 : (double)h->serve->opts.request_timeout_s;
}

void dray__serve_unroute(dray__serve_replica *r)
{
    atomic_fetch_sub_explicit(&r->ongoing, 1, memory_order_release);
}

void dray__serve_mark_dead(dray__serve_replica *r)
{
    atomic_store(&r->dead, true);
    dray__serve_controller_kick(r->dep->serve);
}

dray__serve_replica *dray__serve_route(dray_serve_handle *h)
{
    bool busy;
    dray__serve_replica *r = pick_or_wait(h, &busy);
    if (r)
        return r;
    if (busy) {
        atomic_fetch_add_explicit(&h->rejected, 1, memory_order_relaxed);
        dray_set_error(DRAY_EBUSY, "deployment '%s': every replica is at max_ongoing_requests (%d)",
                       h->name, atomic_load(&h->max_ongoing));
    } else {
        dray_set_error(DRAY_EBUSY, "deployment '%s': no replica available", h->name);
    }
    return NULL;
}

dray_status dray__serve_run_inline(dray__serve_replica *r, dray_serve_request *req,
                                   dray_serve_response *resp)
{
    dray_status st = dray__serve_replica_call(r, req, resp);
    dray__serve_count(r->dep, st, 0);
    if (st == DRAY_EFATAL || st == DRAY_EACTOR)
        dray__serve_mark_dead(r);
    atomic_fetch_sub_explicit(&r->ongoing, 1, memory_order_release);
    return st;
}

/* ==== Batching =====================================================================================*/
bool dray__serve_batches(const dray_serve_handle *h)
{
    return h->cls->batch_call && (h->opts.max_batch_size > 1 || !h->cls->call) &&
           !(h->serve->opts.remote_replicas && h->serve->opts.rt);
}

/* ==== Handles ======================================================================================*/
typedef struct sync_wait {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool done;
} sync_wait;

static void sync_done(dray__serve_call *c)
{
    sync_wait *w = c->done_arg;
    pthread_mutex_lock(&w->m);
    w->done = true;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m);
}

dray_status dray_serve_handle_call(dray_serve_handle *h, const cJSON *body, dray_serve_response *out)
{
    dray_status st;
    char *text = NULL;
    if (body && !(text = cJSON_PrintUnformatted(body)))
        return dray_set_error(DRAY_ENOMEM, "deployment '%s': cannot encode the body", h->name);
    dray__serve_replica *r = dray__serve_route(h);
    if (!r) {
        free(text);
        return DRAY_EBUSY;
    }
    if (!r->actor && !r->has_batcher) {
        /* Inline replica: the request lives on this stack for the call. */
        dray_serve_request req = {.method = "CALL", .path = "/", .body = text,
                                  .len = text ? strlen(text) : 0, .json = body};
        dray_serve_response resp;
        memset(&resp, 0, sizeof(resp));
        st = dray__serve_run_inline(r, &req, &resp);
        cJSON_Delete(req.priv_);
        free(text);
        if (st == DRAY_OK)
            *out = resp;
        else
            dray_serve_response_release(&resp);
        return st;
    }
    /* Off-thread: the call owns its copy of the request, so that it can be abandoned. */
    dray__serve_call *c = dray__serve_call_new();
    if (!c || (body && !(c->json_copy = cJSON_Duplicate(body, 1)))) {
        dray__serve_unroute(r);
        free(text);
        dray__serve_call_unref(c);
        return dray_set_error(DRAY_ENOMEM, "deployment '%s': out of memory", h->name);
    }
    c->buf = text;
    c->cap = text ? strlen(text) + 1 : 0;
    c->replica = r;
    if ((st = dray__serve_call_own(c, "CALL", "/")) != DRAY_OK) {
        dray__serve_unroute(r);
        dray__serve_call_unref(c);
        return st;
    }
    c->req.len = text ? strlen(text) : 0;
    c->req.json = c->json_copy;
    c->deadline = dray__serve_now() + dray__serve_timeout(h);
    if (r->has_batcher) {
        /* The batcher answers it (with DRAY_ETIMEDOUT past the deadline). */
        sync_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
        c->done = sync_done;
        c->done_arg = &w;
        dray__serve_enqueue(r, c);
        pthread_mutex_lock(&w.m);
        while (!w.done)
            pthread_cond_wait(&w.c, &w.m);
        pthread_mutex_unlock(&w.m);
        pthread_cond_destroy(&w.c);
        pthread_mutex_destroy(&w.m);
    } else {
        dray__serve_call_wait(r, c);
    }
    st = c->st;
    if (st == DRAY_OK) {
        *out = c->resp;
        memset(&c->resp, 0, sizeof(c->resp));
    } else {
        dray_set_error(st, "%s", c->err);
    }
    dray__serve_call_unref(c);
    return st;
}

void dray_serve_handle_stats(dray_serve_handle *h, dray_serve_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_rwlock_rdlock(&h->rw);
    for (int i = 0; i < h->n_replicas; i++) {
        out->replicas += replica_routable(h->replicas[i]);
        out->ongoing += atomic_load(&h->replicas[i]->ongoing);
    }
    pthread_rwlock_unlock(&h->rw);
    out->target_replicas = h->target;
    out->requests = atomic_load(&h->requests);
    out->rejected = atomic_load(&h->rejected);
    out->errors = atomic_load(&h->errors);
    out->batches = atomic_load(&h->batches);
    out->batched_requests = atomic_load(&h->batched_requests);
    out->max_batch_seen = atomic_load(&h->max_batch_seen);
    out->restarts = atomic_load(&h->restarts);
    out->reconfigures = atomic_load(&h->reconfigures);
    out->call_seconds = (double)atomic_load(&h->call_ns) * 1e-9;
}

dray_status dray_serve_handle_kill_replica(dray_serve_handle *h, int index)
{
    dray__serve_replica *victim = NULL;
    pthread_rwlock_rdlock(&h->rw);
    for (int i = 0, k = 0; i < h->n_replicas && !victim; i++)
        if (replica_routable(h->replicas[i]) && k++ == index)
            victim = h->replicas[i];
    if (victim) {
        atomic_store(&victim->dead, true);
        dray__serve_replica_crash(victim);
    }
    pthread_rwlock_unlock(&h->rw);
    if (!victim)
        return dray_set_error(DRAY_ERANGE, "deployment '%s': no live replica %d", h->name, index);
    dray__serve_controller_kick(h->serve);
    return DRAY_OK;
}

/* Appends a replica to the deployment's array (grown under the write lock). */
static dray_status add_replica_ptr(dray_serve_handle *h, dray__serve_replica *r)
{
    dray_status st = DRAY_OK;
    pthread_rwlock_wrlock(&h->rw);
    if (h->n_replicas == h->cap_replicas) {
        int cap = h->cap_replicas ? h->cap_replicas * 2 : 4;
        dray__serve_replica **a = realloc(h->replicas, (size_t)cap * sizeof(*a));
        if (!a) {
            st = dray_set_error(DRAY_ENOMEM, "deployment '%s': out of memory", h->name);
            goto out;
        }
        h->replicas = a;
        h->cap_replicas = cap;
    }
    h->replicas[h->n_replicas++] = r;
out:
    pthread_rwlock_unlock(&h->rw);
    return st;
}

dray_status dray__serve_add_replica(dray_serve_handle *h)
{
    dray__serve_replica *r;
    dray_status st = dray__serve_replica_start(h, &r);
    if (st != DRAY_OK)
        return st;
    if ((st = add_replica_ptr(h, r)) != DRAY_OK) {
        dray__serve_replica_stop(r);
        return st;
    }
    pthread_mutex_lock(&h->zlock);
    pthread_cond_broadcast(&h->zcond);
    pthread_mutex_unlock(&h->zlock);
    return DRAY_OK;
}

int dray__serve_reap(dray_serve_handle *h)
{
    dray__serve_replica *gone[64];
    int n_gone = 0, dead = 0;
    pthread_rwlock_wrlock(&h->rw);
    for (int i = 0; i < h->n_replicas && n_gone < 64;) {
        dray__serve_replica *r = h->replicas[i];
        if (!replica_routable(r) && atomic_load(&r->ongoing) == 0) {
            dead += atomic_load(&r->dead) && !atomic_load(&r->draining);
            gone[n_gone++] = r;
            h->replicas[i] = h->replicas[--h->n_replicas];
        } else {
            i++;
        }
    }
    pthread_rwlock_unlock(&h->rw);
    for (int i = 0; i < n_gone; i++)
        dray__serve_replica_stop(gone[i]);
    return dead;
}

/* Frees the handle's owned strings and the handle itself. */
static void free_handle(dray_serve_handle *h)
{
    free(h->name);
    free(h->route);
    free(h->class_name);
    free(h->user_config_text);
    free(h->version);
    free(h);
}

/* Points h->opts at `o` with h's owned strings. */
static void set_opts(dray_serve_handle *h, const dray_serve_deployment_opts *o)
{
    atomic_store(&h->timeout_us, (long long)(o->request_timeout_s * 1e6));
    atomic_store(&h->actor_calls, o->actor_calls);
    h->opts = *o;
    h->opts.name = h->name;
    h->opts.route_prefix = h->route;
    h->opts.class_name = h->class_name;
    h->opts.user_config = h->user_config_text;
    h->opts.version = h->version;
}

void dray__serve_handle_destroy(dray_serve_handle *h, double drain_timeout_s)
{
    /* Stop routing, let in-flight calls finish (bounded), then free everything. */
    pthread_rwlock_rdlock(&h->rw);
    for (int i = 0; i < h->n_replicas; i++)
        atomic_store(&h->replicas[i]->draining, true);
    pthread_rwlock_unlock(&h->rw);
    double deadline = dray__serve_now() + drain_timeout_s;
    for (;;) {
        dray__serve_reap(h);
        pthread_rwlock_rdlock(&h->rw);
        int left = h->n_replicas;
        pthread_rwlock_unlock(&h->rw);
        if (left == 0 || dray__serve_now() > deadline)
            break;
        sleep_s(0.002);
    }
    /* Past the deadline: the remaining replicas still have calls in flight; calls on actors end by
     * their request timeout (or at once when serve is shutting down), inline ones when they
     * return. Batch queues are drained by the batchers as they stop. */
    for (int i = 0; i < h->n_replicas; i++) {
        while (atomic_load(&h->replicas[i]->ongoing) > 0)
            sleep_s(0.002);
        dray__serve_replica_stop(h->replicas[i]);
    }
    free(h->replicas);
    pthread_rwlock_destroy(&h->rw);
    pthread_mutex_destroy(&h->zlock);
    pthread_cond_destroy(&h->zcond);
    cJSON_Delete(h->user_config);
    free_handle(h);
}

/* ==== Serve instance ===============================================================================*/
void dray_serve_opts_init(dray_serve_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->threads = 2;
    o->max_body_bytes = 1 << 20;
    o->request_timeout_s = 30;
    o->max_connections = 4096;
    o->connection_memory = 8192;
    o->control_period_s = 0.05;
}

void dray_serve_deployment_opts_init(dray_serve_deployment_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->num_replicas = 1;
    o->max_ongoing_requests = 100;
    o->max_batch_size = 1;
    o->batch_wait_timeout_s = 0.01;
    o->health_check_period_s = 10;
    o->health_check_timeout_s = 30;
    o->request_timeout_s = 0;
    o->num_cpus = 1;
    o->target_ongoing_requests = 2;
    o->upscale_delay_s = 30;
    o->downscale_delay_s = 600;
}

dray_status dray_serve_start(const dray_serve_opts *opts, dray_serve **out)
{
    dray_status st = DRAY_ENOMEM;
    dray_serve *s = calloc(1, sizeof(*s));
    if (!s)
        return dray_set_error(st, "serve: out of memory");
    dray_serve_opts_init(&s->opts);
    if (opts)
        s->opts = *opts;
    if (!s->opts.host)
        s->opts.host = "127.0.0.1";
    if (strlen(s->opts.host) >= sizeof(s->host)) {
        free(s);
        return dray_set_error(DRAY_EINVAL, "serve: host '%s' is too long", opts->host);
    }
    snprintf(s->host, sizeof(s->host), "%s", s->opts.host);
    s->opts.host = s->host;
    if (s->opts.threads <= 0)
        s->opts.threads = 2;
    if (s->opts.control_period_s <= 0)
        s->opts.control_period_s = 0.05;
    if (s->opts.max_body_bytes == 0)
        s->opts.max_body_bytes = 1 << 20;
    if (s->opts.connection_memory < 2048)
        s->opts.connection_memory = 8192;
    pthread_mutex_init(&s->lock, NULL);
    pthread_rwlock_init(&s->routes_rw, NULL);
    pthread_cond_init(&s->ctl_cond, NULL);
    pthread_cond_init(&s->shutdown_cond, NULL);
    pthread_mutex_init(&s->plock, NULL);
    pthread_cond_init(&s->pcond, NULL);
    if (s->opts.request_timeout_s <= 0)
        s->opts.request_timeout_s = 30;
    if ((st = dray__serve_sweeper_start(s)) != DRAY_OK)
        goto out_free;
    if ((st = dray__serve_controller_start(s)) != DRAY_OK)
        goto out_sweeper;
    if (s->opts.port >= 0 && (st = dray__serve_http_start(s)) != DRAY_OK)
        goto out_controller;
    *out = s;
    return DRAY_OK;
out_controller:
    dray__serve_controller_stop(s);
out_sweeper:
    dray__serve_sweeper_stop(s);
out_free:
    pthread_cond_destroy(&s->pcond);
    pthread_mutex_destroy(&s->plock);
    pthread_cond_destroy(&s->shutdown_cond);
    pthread_cond_destroy(&s->ctl_cond);
    pthread_rwlock_destroy(&s->routes_rw);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return st;
}

int dray_serve_port(const dray_serve *s)
{
    return s->port;
}

dray_status dray_serve_wait_shutdown_request(dray_serve *s, double timeout_s)
{
    struct timespec ts;
    dray__serve_deadline(&ts, timeout_s < 0 ? 1e9 : timeout_s);
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    while (!s->shutdown_requested && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->shutdown_cond, &s->lock, &ts);
    bool asked = s->shutdown_requested;
    pthread_mutex_unlock(&s->lock);
    return asked ? DRAY_OK : DRAY_ETIMEDOUT;
}

dray_status dray_serve_shutdown(dray_serve *s, double drain_timeout_s)
{
    if (!s)
        return DRAY_OK;
    atomic_store(&s->stopping, true);
    /* Stop taking connections, then wait for requests being answered (bounded). */
    dray__serve_http_quiesce(s);
    double deadline = dray__serve_now() + drain_timeout_s;
    while (atomic_load(&s->inflight) > 0 && dray__serve_now() < deadline)
        sleep_s(0.002);
    /* Whatever is still waiting for a replica now gets 503 (a hung call is abandoned). */
    atomic_store(&s->expire_all, true);
    dray__serve_controller_stop(s);
    pthread_rwlock_wrlock(&s->routes_rw);
    dray_serve_handle *h = s->deps;
    s->deps = NULL;
    pthread_rwlock_unlock(&s->routes_rw);
    double left = deadline - dray__serve_now();
    while (h) {
        dray_serve_handle *next = h->next;
        dray__serve_handle_destroy(h, left > 0 ? left : 0);
        h = next;
    }
    /* Suspended connections must all be resumed before MHD stops: the last answers go out. */
    while (atomic_load(&s->inflight) > 0 && dray__serve_now() < deadline + 1.0)
        sleep_s(0.002);
    dray__serve_http_stop(s);
    dray__serve_sweeper_stop(s);
    pthread_cond_destroy(&s->pcond);
    pthread_mutex_destroy(&s->plock);
    pthread_cond_destroy(&s->shutdown_cond);
    pthread_cond_destroy(&s->ctl_cond);
    pthread_rwlock_destroy(&s->routes_rw);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return DRAY_OK;
}

/* ==== Deploying ====================================================================================*/
static dray_serve_handle *find_dep(dray_serve *s, const char *name)
{
    for (dray_serve_handle *h = s->deps; h; h = h->next)
        if (strcmp(h->name, name) == 0)
            return h;
    return NULL;
}

dray_status dray_serve_get_handle(dray_serve *s, const char *name, dray_serve_handle **out)
{
    pthread_rwlock_rdlock(&s->routes_rw);
    dray_serve_handle *h = find_dep(s, name);
    pthread_rwlock_unlock(&s->routes_rw);
    if (!h)
        return dray_set_error(DRAY_ENOTFOUND, "serve: no deployment named '%s'", name);
    *out = h;
    return DRAY_OK;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Checks opts and resolves the class and config. On DRAY_OK *cls and *cfg (owned, may be NULL). */
static dray_status check_opts(const dray_serve_deployment_opts *o, const char *name,
                              const dray_serve_class **cls, cJSON **cfg)
{
    if (!o->class_name)
        return dray_set_error(DRAY_EINVAL, "deployment '%s': no class_name", name);
    const dray_serve_class *c = dray_serve_class_find(o->class_name);
    if (!c)
        return dray_set_error(DRAY_ENOTFOUND, "deployment '%s': no deployment class named '%s'",
                              name, o->class_name);
    if (!c->init || !c->destroy || (!c->call && !c->batch_call))
        return dray_set_error(DRAY_EINVAL,
                              "deployment '%s': class '%s' lacks init, destroy or call", name,
                              c->name);
    if (o->version && strlen(o->version) > 40)
        return dray_set_error(DRAY_EINVAL, "deployment '%s': version '%.40s...' is longer than 40",
                              name, o->version);
    if (o->route_prefix && o->route_prefix[0] != '/')
        return dray_set_error(DRAY_EINVAL, "deployment '%s': route_prefix '%s' must start with '/'",
                              name, o->route_prefix);
    if (o->max_ongoing_requests <= 0 || o->max_batch_size <= 0 || o->num_replicas < 0 ||
        o->batch_wait_timeout_s < 0 || o->min_replicas < 0 || o->request_timeout_s < 0 ||
        (o->max_replicas > 0 && o->min_replicas > o->max_replicas) ||
        (o->max_replicas > 0 && o->target_ongoing_requests <= 0))
        return dray_set_error(DRAY_EINVAL,
                              "deployment '%s': max_ongoing_requests, max_batch_size must be > 0, "
                              "num_replicas/min_replicas/request_timeout_s >= 0, "
                              "min_replicas <= max_replicas, "
                              "target_ongoing_requests > 0",
                              name);
    *cfg = NULL;
    if (o->user_config) {
        dray_status st = dray_serve_parse_json(o->user_config, strlen(o->user_config), cfg);
        if (st != DRAY_OK) {
            char msg[256];
            snprintf(msg, sizeof(msg), "%s", dray_last_error());
            return dray_set_error(DRAY_EFORMAT, "deployment '%s': user_config: %s", name, msg + 14);
        }
    }
    *cls = c;
    return DRAY_OK;
}

static int initial_target(const dray_serve_deployment_opts *o)
{
    if (o->max_replicas > 0)
        return o->min_replicas;
    return o->num_replicas;
}

/* Waits until the controller has converged on h (every live replica at h's version, target met). */
static dray_status wait_converged(dray_serve *s, dray_serve_handle *h, double timeout_s)
{
    double deadline = dray__serve_now() + timeout_s;
    for (;;) {
        int live = 0, stale = 0;
        pthread_mutex_lock(&s->lock); /* h->version changes under it */
        pthread_rwlock_rdlock(&h->rw);
        for (int i = 0; i < h->n_replicas; i++) {
            dray__serve_replica *r = h->replicas[i];
            if (!replica_routable(r))
                continue;
            live++;
            stale += strcmp(r->version, h->version) != 0;
        }
        pthread_rwlock_unlock(&h->rw);
        int target = h->target;
        char failed[256] = "";
        dray_status fst = h->start_status;
        if (h->start_failures > 0)
            snprintf(failed, sizeof(failed), "%s", h->start_error);
        pthread_mutex_unlock(&s->lock);
        if (failed[0])
            return dray_set_error(fst, "%s (the previous replicas keep serving)", failed);
        if (stale == 0 && live == target)
            return DRAY_OK;
        if (dray__serve_now() > deadline)
            return dray_set_error(DRAY_ETIMEDOUT,
                                  "deployment '%s': %d of %d replicas up at version '%s' after %g s",
                                  h->name, live - stale, target, h->version, timeout_s);
        dray__serve_controller_kick(s);
        sleep_s(0.002);
    }
}

/* Applies an update to an existing deployment (called with s->lock held; returns with it held). */
static dray_status update_dep(dray_serve *s, dray_serve_handle *h, const dray_serve_deployment_opts *o,
                              const dray_serve_class *cls, cJSON *cfg)
{
    const char *version = o->version ? o->version : "1";
    bool restart = cls != h->cls || !str_eq(version, h->version) ||
                   o->max_batch_size != h->opts.max_batch_size ||
                   o->batch_wait_timeout_s != h->opts.batch_wait_timeout_s;
    bool cfg_changed = !str_eq(o->user_config, h->user_config_text);
    if (cfg_changed && !cls->reconfigure)
        restart = true;
    if (!str_eq(o->route_prefix, h->route))
        return dray_set_error(DRAY_EINVAL, "deployment '%s': route_prefix cannot change ('%s')",
                              h->name, h->route ? h->route : "(none)");
    char *ver = strdup(version), *cfgtext = dup_or_null(o->user_config);
    if (!ver || (o->user_config && !cfgtext)) {
        free(ver);
        free(cfgtext);
        cJSON_Delete(cfg);
        return dray_set_error(DRAY_ENOMEM, "deployment '%s': out of memory", h->name);
    }
    dray_status st = DRAY_OK;
    if (cfg_changed && !restart) {
        /* In place: each replica gets the new config under its lock. */
        pthread_rwlock_rdlock(&h->rw);
        for (int i = 0; i < h->n_replicas && st == DRAY_OK; i++) {
            dray__serve_replica *r = h->replicas[i];
            st = dray__serve_replica_reconfigure(r, cfg);
        }
        pthread_rwlock_unlock(&h->rw);
        if (st != DRAY_OK) {
            free(ver);
            free(cfgtext);
            cJSON_Delete(cfg);
            char msg[256];
            snprintf(msg, sizeof(msg), "%s", dray_last_error());
            return dray_set_error(st, "deployment '%s': reconfigure failed: %s", h->name, msg);
        }
        atomic_fetch_add(&h->reconfigures, 1);
    }
    cJSON *old_cfg = h->user_config;
    char *old_ver = h->version, *old_text = h->user_config_text, *old_class = h->class_name;
    h->class_name = strdup(o->class_name);
    if (!h->class_name) {
        h->class_name = old_class;
        free(ver);
        free(cfgtext);
        cJSON_Delete(cfg);
        return dray_set_error(DRAY_ENOMEM, "deployment '%s': out of memory", h->name);
    }
    free(old_class);
    h->cls = cls;
    h->user_config = cfg;
    h->user_config_text = cfgtext;
    /* A restart is a rolling update: the controller replaces replicas whose version differs. */
    if (restart && str_eq(version, old_ver)) {
        free(ver);
        char buf[80];
        snprintf(buf, sizeof(buf), "%s+%llu", version,
                 (unsigned long long)atomic_fetch_add(&s->next_replica_id, 1));
        ver = strdup(buf);
    }
    h->version = ver ? ver : old_ver;
    if (ver)
        free(old_ver);
    cJSON_Delete(old_cfg);
    free(old_text);
    /* Batching settings changed only with a restart: new replicas start their batchers with them. */
    dray_serve_deployment_opts old = h->opts;
    set_opts(h, o);
    h->target = initial_target(o);
    atomic_store(&h->max_ongoing, o->max_ongoing_requests);
    atomic_store(&h->autoscaling, o->max_replicas > 0);
    h->start_failures = 0;
    h->retry_at = 0;
    if (h->opts.max_replicas > 0 && old.max_replicas > 0) {
        int cur = dray__serve_live_replicas(h);
        h->target = cur < o->min_replicas ? o->min_replicas
                    : cur > o->max_replicas ? o->max_replicas : cur;
    }
    return DRAY_OK;
}

static dray_status new_dep(dray_serve *s, const dray_serve_deployment_opts *o, const char *name,
                           const dray_serve_class *cls, cJSON *cfg, dray_serve_handle **out)
{
    dray_status st = DRAY_ENOMEM;
    dray_serve_handle *h = calloc(1, sizeof(*h));
    if (!h)
        goto out_cfg;
    h->serve = s;
    h->name = strdup(name);
    h->route = dup_or_null(o->route_prefix);
    h->class_name = strdup(o->class_name);
    h->user_config_text = dup_or_null(o->user_config);
    h->version = strdup(o->version ? o->version : "1");
    if (!h->name || (o->route_prefix && !h->route) || !h->class_name || !h->version ||
        (o->user_config && !h->user_config_text))
        goto out_strings;
    /* "/api/" and "/api" are the same prefix. */
    h->route_len = h->route ? strlen(h->route) : 0;
    while (h->route_len > 1 && h->route[h->route_len - 1] == '/')
        h->route[--h->route_len] = '\0';
    h->cls = cls;
    h->user_config = cfg;
    set_opts(h, o);
    h->target = initial_target(o);
    atomic_store(&h->max_ongoing, o->max_ongoing_requests);
    atomic_store(&h->autoscaling, o->max_replicas > 0);
    atomic_init(&h->rng, (uint64_t)(uintptr_t)h);
    pthread_rwlock_init(&h->rw, NULL);
    pthread_mutex_init(&h->zlock, NULL);
    pthread_cond_init(&h->zcond, NULL);
    *out = h;
    return DRAY_OK;
out_strings:
    free_handle(h);
out_cfg:
    cJSON_Delete(cfg);
    return dray_set_error(st, "deployment '%s': out of memory", name);
}

dray_status dray_serve_run(dray_serve *s, const dray_serve_deployment_opts *o,
                           dray_serve_handle **out)
{
    const char *name = o->name ? o->name : o->class_name;
    if (!name)
        return dray_set_error(DRAY_EINVAL, "serve_run: deployment has neither name nor class_name");
    if (atomic_load(&s->stopping))
        return dray_set_error(DRAY_ESHUTDOWN, "deployment '%s': serve is shutting down", name);
    if (s->opts.rt && o->num_cpus > dray_runtime_num_workers(s->opts.rt))
        return dray_set_error(DRAY_ERESOURCE,
                              "deployment '%s': a replica needs %g CPUs, the runtime has %d", name,
                              o->num_cpus, dray_runtime_num_workers(s->opts.rt));
    const dray_serve_class *cls = NULL;
    cJSON *cfg = NULL;
    dray_status st = check_opts(o, name, &cls, &cfg);
    if (st != DRAY_OK)
        return st;
    if (s->opts.remote_replicas && s->opts.rt && !cls->call) {
        cJSON_Delete(cfg);
        return dray_set_error(DRAY_EINVAL,
                              "deployment '%s': class '%s' has no call, and remote replicas do "
                              "not batch",
                              name, cls->name);
    }
    pthread_mutex_lock(&s->lock);
    pthread_rwlock_rdlock(&s->routes_rw);
    dray_serve_handle *h = find_dep(s, name);
    dray_serve_handle *clash = NULL;
    for (dray_serve_handle *d = s->deps; d && o->route_prefix; d = d->next)
        if (d != h && d->route && strncmp(d->route, o->route_prefix, d->route_len) == 0 &&
            (o->route_prefix[d->route_len] == '\0' ||
             (o->route_prefix[d->route_len] == '/' && o->route_prefix[d->route_len + 1] == '\0')))
            clash = d;
    pthread_rwlock_unlock(&s->routes_rw);
    if (clash) {
        pthread_mutex_unlock(&s->lock);
        cJSON_Delete(cfg);
        return dray_set_error(DRAY_EINVAL, "deployment '%s': route_prefix '%s' is taken by '%s'",
                              name, o->route_prefix, clash->name);
    }
    if (h) {
        st = update_dep(s, h, o, cls, cfg);
        pthread_mutex_unlock(&s->lock);
        if (st != DRAY_OK)
            return st;
        dray__serve_controller_kick(s);
        st = wait_converged(s, h, 120);
        if (st == DRAY_OK && out)
            *out = h;
        return st;
    }
    st = new_dep(s, o, name, cls, cfg, &h);
    if (st != DRAY_OK) {
        pthread_mutex_unlock(&s->lock);
        return st;
    }
    for (int i = 0; i < h->target && st == DRAY_OK; i++)
        st = dray__serve_add_replica(h);
    if (st != DRAY_OK) {
        pthread_mutex_unlock(&s->lock);
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        dray__serve_handle_destroy(h, 0);
        return dray_set_error(st, "%s", msg);
    }
    pthread_rwlock_wrlock(&s->routes_rw);
    h->next = s->deps;
    s->deps = h;
    pthread_rwlock_unlock(&s->routes_rw);
    pthread_mutex_unlock(&s->lock);
    if (out)
        *out = h;
    return DRAY_OK;
}

dray_status dray_serve_delete(dray_serve *s, const char *name, double drain_timeout_s)
{
    pthread_mutex_lock(&s->lock);
    pthread_rwlock_wrlock(&s->routes_rw);
    dray_serve_handle **pp = &s->deps;
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    dray_serve_handle *h = *pp;
    if (h)
        *pp = h->next;
    pthread_rwlock_unlock(&s->routes_rw);
    pthread_mutex_unlock(&s->lock);
    if (!h)
        return dray_set_error(DRAY_ENOTFOUND, "serve: no deployment named '%s'", name);
    dray__serve_handle_destroy(h, drain_timeout_s);
    return DRAY_OK;
}

dray_status dray_serve_status_json(dray_serve *s, cJSON **out)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *deps = root ? cJSON_AddArrayToObject(root, "deployments") : NULL;
    if (!deps)
        goto fail;
    cJSON_AddStringToObject(root, "host", s->host);
    cJSON_AddNumberToObject(root, "port", s->port);
    pthread_mutex_lock(&s->lock); /* names and versions change under it */
    cJSON_AddNumberToObject(root, "http_requests", (double)atomic_load(&s->http_requests));
    cJSON_AddNumberToObject(root, "http_seconds", (double)atomic_load(&s->http_ns) * 1e-9);
    pthread_rwlock_rdlock(&s->routes_rw);
    for (dray_serve_handle *h = s->deps; h; h = h->next) {
        dray_serve_stats st;
        dray_serve_handle_stats(h, &st);
        cJSON *d = cJSON_CreateObject();
        if (!d || !cJSON_AddItemToArray(deps, d)) {
            cJSON_Delete(d);
            pthread_rwlock_unlock(&s->routes_rw);
            pthread_mutex_unlock(&s->lock);
            goto fail;
        }
        cJSON_AddStringToObject(d, "name", h->name);
        cJSON_AddStringToObject(d, "class", h->class_name);
        cJSON_AddStringToObject(d, "version", h->version);
        if (h->route)
            cJSON_AddStringToObject(d, "route_prefix", h->route);
        else
            cJSON_AddNullToObject(d, "route_prefix");
        cJSON_AddStringToObject(d, "status", st.replicas >= st.target_replicas ? "HEALTHY"
                                                                               : "UPDATING");
        cJSON_AddNumberToObject(d, "replicas", st.replicas);
        cJSON_AddNumberToObject(d, "target_replicas", st.target_replicas);
        cJSON_AddNumberToObject(d, "ongoing", (double)st.ongoing);
        cJSON_AddNumberToObject(d, "requests", (double)st.requests);
        cJSON_AddNumberToObject(d, "rejected", (double)st.rejected);
        cJSON_AddNumberToObject(d, "errors", (double)st.errors);
        cJSON_AddNumberToObject(d, "batches", (double)st.batches);
        cJSON_AddNumberToObject(d, "restarts", (double)st.restarts);
        cJSON_AddNumberToObject(d, "batched_requests", (double)st.batched_requests);
        cJSON_AddNumberToObject(d, "max_batch_seen", st.max_batch_seen);
        cJSON_AddNumberToObject(d, "call_seconds", st.call_seconds);
    }
    pthread_rwlock_unlock(&s->routes_rw);
    pthread_mutex_unlock(&s->lock);
    *out = root;
    return DRAY_OK;
fail:
    cJSON_Delete(root);
    return dray_set_error(DRAY_ENOMEM, "serve: status: out of memory");
}

/* ==== Handle calls as tasks ========================================================================*/

/* Task: args (handle address, body JSON text or null) -> the response body as a string. */
DRAY_FUNCTION(dray_serve_handle_task)
{
    if (nargs != 2 || args[0].type != DRAY_T_INT)
        return dray_ctx_fail(ctx, DRAY_EINVAL, "dray_serve_handle_task: expects (handle, body)");
    dray_serve_handle *h = (dray_serve_handle *)(uintptr_t)args[0].u.i;
    cJSON *body = NULL;
    const char *text = dray_string_cstr(&args[1]);
    if (text && dray_serve_parse_json(text, strlen(text), &body) != DRAY_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        return dray_ctx_fail(ctx, DRAY_EFORMAT, "%s", msg);
    }
    dray_serve_response resp;
    dray_status st = dray_serve_handle_call(h, body, &resp);
    cJSON_Delete(body);
    if (st != DRAY_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        return dray_ctx_fail(ctx, st, "%s", msg);
    }
    char *out = resp.json ? cJSON_PrintUnformatted(resp.json) : NULL;
    if (out)
        st = dray_string_create(out, result);
    else if (resp.body || resp.body_static)
        st = dray_string_create_n(resp.body ? resp.body : resp.body_static, resp.len, result);
    else
        st = dray_string_create("", result);
    free(out);
    dray_serve_response_release(&resp);
    return st;
}

dray_status dray_serve_handle_submit(dray_runtime *rt, dray_serve_handle *h, const cJSON *body,
                                     dray_ref **out)
{
    dray_value args[2] = {dray_int((int64_t)(uintptr_t)h), dray_null()};
    if (body) {
        char *text = cJSON_PrintUnformatted(body);
        dray_status st = text ? dray_string_create(text, &args[1]) : DRAY_ENOMEM;
        free(text);
        if (st != DRAY_OK)
            return dray_set_error(st, "deployment '%s': cannot encode the body", h->name);
    }
    dray_status st = dray_submit(rt, "dray_serve_handle_task", args, 2, NULL, out);
    dray_value_release(&args[1]);
    return st;
}
