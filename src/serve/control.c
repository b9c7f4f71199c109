/* The serve controller: one thread per instance that, every control period, replaces dead replicas,
 * runs health checks, rolls replicas to a new version one at a time, and autoscales on the number of
 * ongoing requests. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static bool routable(const dray__serve_replica *r)
{
    return !atomic_load(&r->dead) && !atomic_load(&r->draining);
}

/* Liveness and health, out of the replica's mailbox: a replica stuck inside one callback for more
 * than health_check_timeout_s is replaced at once (its call is abandoned); the class's health check
 * is sent to the replica every period and fails only when it returns an error or runs (from the
 * moment it starts, not while it waits behind queued calls) past the timeout. */
static void health_checks(dray_serve_handle *h, double now)
{
    pthread_rwlock_rdlock(&h->rw);
    for (int i = 0; i < h->n_replicas; i++) {
        dray__serve_replica *r = h->replicas[i];
        if (!routable(r))
            continue;
        double busy;
        const char *why = NULL;
        char msg[256];
        bool stuck = false;
        if (dray__serve_replica_stuck(r, h->opts.health_check_timeout_s, &busy)) {
            snprintf(msg, sizeof(msg), "stuck in one call for %.1f s, over health_check_timeout_s",
                     busy);
            why = msg;
            stuck = true;
        } else if (r->cls->health_check &&
                   (r->health || now - r->last_health >= h->opts.health_check_period_s)) {
            dray_status st = dray__serve_replica_health_poll(r, h->opts.health_check_timeout_s);
            if (!r->health)
                r->last_health = now;
            if (st != DRAY_OK) {
                snprintf(msg, sizeof(msg), "%s", dray_last_error());
                why = msg;
            }
        }
        if (why) {
            fprintf(stderr, "serve: deployment '%s': replica %llu failed its health check (%s), "
                            "replacing it\n",
                    h->name, (unsigned long long)r->id, why);
            atomic_store(&r->dead, true);
            /* Stuck: the calls queued behind the stuck one fail now (500) instead of waiting
             * for their timeouts; the stuck call itself is answered at its timeout. */
            if (stuck)
                dray__serve_replica_crash(r);
        }
    }
    pthread_rwlock_unlock(&h->rw);
}

/* Decides the target replica count from the load (called with s->lock held). */
static void autoscale(dray_serve_handle *h, double now)
{
    const dray_serve_deployment_opts *o = &h->opts;
    if (o->max_replicas <= 0)
        return;
    int64_t load = atomic_load(&h->waiting_for_zero);
    pthread_rwlock_rdlock(&h->rw);
    for (int i = 0; i < h->n_replicas; i++)
        if (routable(h->replicas[i]))
            load += atomic_load(&h->replicas[i]->ongoing);
    pthread_rwlock_unlock(&h->rw);
    int desired = (int)ceil((double)load / o->target_ongoing_requests);
    if (desired < o->min_replicas)
        desired = o->min_replicas;
    if (desired > o->max_replicas)
        desired = o->max_replicas;
    if (desired > h->target) {
        h->below_since = 0;
        if (h->above_since == 0)
            h->above_since = now;
        /* Scaling up from zero does not wait: a request is blocked on it. */
        if (h->target == 0 || now - h->above_since >= o->upscale_delay_s) {
            h->target = desired;
            h->above_since = 0;
        }
    } else if (desired < h->target) {
        h->above_since = 0;
        if (h->below_since == 0)
            h->below_since = now;
        if (now - h->below_since >= o->downscale_delay_s) {
            h->target = desired;
            h->below_since = 0;
        }
    } else {
        h->above_since = h->below_since = 0;
    }
}

/* Marks the least busy routable replica matching `stale` (version differs or not) draining. */
static void drain_one(dray_serve_handle *h, bool stale)
{
    dray__serve_replica *best = NULL;
    pthread_rwlock_rdlock(&h->rw);
    for (int i = 0; i < h->n_replicas; i++) {
        dray__serve_replica *r = h->replicas[i];
        if (!routable(r) || (strcmp(r->version, h->version) != 0) != stale)
            continue;
        if (!best || atomic_load(&r->ongoing) < atomic_load(&best->ongoing))
            best = r;
    }
    if (best)
        atomic_store(&best->draining, true);
    pthread_rwlock_unlock(&h->rw);
}

static void count_versions(dray_serve_handle *h, int *fresh, int *stale)
{
    *fresh = *stale = 0;
    pthread_rwlock_rdlock(&h->rw);
    for (int i = 0; i < h->n_replicas; i++) {
        dray__serve_replica *r = h->replicas[i];
        if (!routable(r))
            continue;
        if (strcmp(r->version, h->version) == 0)
            (*fresh)++;
        else
            (*stale)++;
    }
    pthread_rwlock_unlock(&h->rw);
}

static void control_one(dray_serve *s, dray_serve_handle *h, double now)
{
    int dead = dray__serve_reap(h);
    if (dead > 0)
        atomic_fetch_add(&h->restarts, (uint64_t)dead);
    health_checks(h, now);
    autoscale(h, now);
    int fresh, stale;
    count_versions(h, &fresh, &stale);
    /* Start the missing replicas at the current version (one at a time while rolling). */
    int want = h->target - fresh;
    if (stale > 0 && want > 1)
        want = 1;
    for (int i = 0; i < want && now >= h->retry_at && !atomic_load(&s->stopping); i++) {
        dray_status st = dray__serve_add_replica(h);
        if (st != DRAY_OK) {
            /* Back off (0.1 s doubling to 10 s); the old version keeps serving meanwhile. */
            double wait = 0.1 * (double)(1u << (h->start_failures < 7 ? h->start_failures : 7));
            h->retry_at = now + (wait < 10 ? wait : 10);
            h->start_failures++;
            h->start_status = st;
            snprintf(h->start_error, sizeof(h->start_error), "%s", dray_last_error());
            fprintf(stderr, "%s (retrying in %.1f s)\n", h->start_error, wait);
            break;
        }
        h->start_failures = 0;
        h->retry_at = 0;
        fresh++;
    }
    while (stale > 0 && fresh + stale > h->target) {
        drain_one(h, true);
        stale--;
    }
    while (stale == 0 && fresh > h->target) {
        drain_one(h, false);
        fresh--;
    }
    dead = dray__serve_reap(h);
    if (dead > 0)
        atomic_fetch_add(&h->restarts, (uint64_t)dead);
}

static void *controller_main(void *arg)
{
    dray_serve *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->controller_stop) {
        struct timespec ts;
        dray__serve_deadline(&ts, s->opts.control_period_s);
        pthread_cond_timedwait(&s->ctl_cond, &s->lock, &ts);
        if (s->controller_stop)
            break;
        double now = dray__serve_now();
        for (dray_serve_handle *h = s->deps; h; h = h->next)
            control_one(s, h, now);
        if (now - s->pub_time >= 1.0)
            dray__serve_publish(s, now); /* the dashboard's snapshot, once a second */
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

dray_status dray__serve_controller_start(dray_serve *s)
{
    if (pthread_create(&s->controller, NULL, controller_main, s) != 0)
        return dray_set_error(DRAY_ENOMEM, "serve: cannot start the controller thread");
    s->controller_started = true;
    return DRAY_OK;
}

void dray__serve_controller_stop(dray_serve *s)
{
    if (!s->controller_started)
        return;
    pthread_mutex_lock(&s->lock);
    s->controller_stop = true;
    pthread_cond_signal(&s->ctl_cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->controller, NULL);
    s->controller_started = false;
}

void dray__serve_controller_kick(dray_serve *s)
{
    pthread_cond_signal(&s->ctl_cond);
}

/* ==== Request timeouts =============================================================================*/
void dray__serve_pending_add(dray_serve *s, dray__serve_call *c)
{
    c->tracked = true;
    pthread_mutex_lock(&s->plock);
    c->prev = NULL;
    c->next = s->pending;
    if (s->pending)
        s->pending->prev = c;
    s->pending = c;
    c->listed = true;
    pthread_mutex_unlock(&s->plock);
}

static void unlink_pending(dray_serve *s, dray__serve_call *c)
{
    if (!c->listed)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->pending = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    c->listed = false;
}

void dray__serve_pending_remove(dray_serve *s, dray__serve_call *c)
{
    pthread_mutex_lock(&s->plock);
    unlink_pending(s, c);
    pthread_mutex_unlock(&s->plock);
}

/* Every 10 ms: calls past their deadline get 504 (503 when shutting down), calls whose actor died
 * before running them 500, calls on remote replicas whose answer came in get it. Each is taken off
 * the list with a reference held, then finished. */
static void *sweeper_main(void *arg)
{
    dray_serve *s = arg;
    enum { BATCH = 64 };
    dray__serve_call *due[BATCH];
    dray_status why[BATCH];
    bool answered[BATCH]; /* a remote replica's answer is in: finish with it */
    dray_ref *wait_refs[BATCH];
    pthread_mutex_lock(&s->plock);
    while (!s->sweeper_stop) {
        /* Wait 10 ms, or less when a remote replica's answer comes in. */
        int nw = 0;
        for (dray__serve_call *c = s->pending; c && nw < BATCH; c = c->next)
            if (c->remote && c->ref && atomic_load(&c->state) == DRAY__CALL_PENDING)
                wait_refs[nw++] = dray_ref_retain(c->ref);
        if (nw > 0) {
            pthread_mutex_unlock(&s->plock);
            dray_wait(s->opts.rt, wait_refs, (size_t)nw, 1, 10, NULL, NULL);
            for (int i = 0; i < nw; i++)
                dray_ref_release(wait_refs[i]);
            pthread_mutex_lock(&s->plock);
        } else {
            struct timespec ts;
            dray__serve_deadline(&ts, 0.01);
            pthread_cond_timedwait(&s->pcond, &s->plock, &ts);
        }
        for (;;) {
            double now = dray__serve_now();
            bool expire = atomic_load(&s->expire_all);
            int n = 0;
            for (dray__serve_call *c = s->pending, *next; c && n < BATCH; c = next) {
                next = c->next;
                dray_status st = DRAY_OK;
                bool remote_answer = false;
                if (expire)
                    st = DRAY_ESHUTDOWN;
                else if (c->deadline > 0 && now > c->deadline)
                    st = DRAY_ETIMEDOUT;
                else if (c->ref && dray_ref_ready(c->ref) &&
                         atomic_load(&c->state) == DRAY__CALL_PENDING)
                    st = DRAY_EACTOR, remote_answer = c->remote;
                if (st == DRAY_OK)
                    continue;
                unlink_pending(s, c);
                atomic_fetch_add(&c->refs, 1);
                due[n] = c;
                answered[n] = remote_answer;
                why[n++] = st;
            }
            if (n == 0)
                break;
            pthread_mutex_unlock(&s->plock);
            for (int i = 0; i < n; i++) {
                if (answered[i])
                    dray__serve_remote_complete(s->opts.rt, due[i], false);
                else
                    dray__serve_call_finish(due[i], why[i], NULL, NULL, 0, false);
                dray__serve_call_unref(due[i]);
            }
            pthread_mutex_lock(&s->plock);
        }
        dray__serve_http_supervise(s); /* calls running in ingress threads */
    }
    pthread_mutex_unlock(&s->plock);
    return NULL;
}

dray_status dray__serve_sweeper_start(dray_serve *s)
{
    if (pthread_create(&s->sweeper, NULL, sweeper_main, s) != 0)
        return dray_set_error(DRAY_ENOMEM, "serve: cannot start the timeout thread");
    s->sweeper_started = true;
    return DRAY_OK;
}

void dray__serve_sweeper_stop(dray_serve *s)
{
    if (!s->sweeper_started)
        return;
    pthread_mutex_lock(&s->plock);
    s->sweeper_stop = true;
    pthread_cond_signal(&s->pcond);
    pthread_mutex_unlock(&s->plock);
    pthread_join(s->sweeper, NULL);
    s->sweeper_started = false;
}
