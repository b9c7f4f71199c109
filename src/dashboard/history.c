/* The dashboard's history of a runtime: a collector thread drains the event rings every 100 ms into a
 * bounded task stream (with sequence numbers for the API's `since` cursor) and per-function and
 * per-thread totals, and samples memory and CPU once a second. Lives until dray_shutdown. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define COLLECT_MS 100

db_fn *db_history_fn(db_history *h, const char *name)
{
    for (size_t i = 0; i < h->n_fns; i++)
        if (h->fns[i].name == name || !strcmp(h->fns[i].name, name))
            return &h->fns[i];
    if (h->n_fns == DB_FNS)
        return NULL;
    db_fn *f = &h->fns[h->n_fns++];
    memset(f, 0, sizeof(*f));
    f->name = name;
    f->first_ns = -1;
    return f;
}

static db_row *history_row(db_history *h, int row, int tid)
{
    for (size_t i = 0; i < h->n_rows; i++)
        if (h->rows[i].row == row) {
            if (!h->rows[i].tid)
                h->rows[i].tid = tid;
            return &h->rows[i];
        }
    if (h->n_rows == DB_ROWS)
        return NULL;
    db_row *r = &h->rows[h->n_rows++];
    memset(r, 0, sizeof(*r));
    r->row = row;
    r->tid = tid;
    return r;
}

void db_history_add(db_history *h, const dray__ev *e)
{
    h->stream[h->seq % DB_STREAM] = *e;
    h->seq++;
    int64_t dur = e->stop_ns - e->start_ns;
    db_fn *f = db_history_fn(h, e->name);
    if (f) {
        if (e->kind == DRAY_EVENT_TASK)
            f->done += e->count;
        else if (e->kind == DRAY_EVENT_ERROR)
            f->failed += e->count;
        else if (e->kind == DRAY_EVENT_TRANSFER)
            f->transfer_bytes += e->bytes;
        else if (e->kind == DRAY_EVENT_SPILL)
            f->spill_bytes += e->bytes;
        f->total_ns += dur;
        if (e->count == 1 && dur > f->max_ns)
            f->max_ns = dur;
        if (f->first_ns < 0 || e->start_ns < f->first_ns)
            f->first_ns = e->start_ns;
        if (e->stop_ns > f->last_ns)
            f->last_ns = e->stop_ns;
    }
    if (e->tid || e->row >= -1) {
        db_row *r = history_row(h, e->row, e->tid);
        if (r) {
            if (e->kind == DRAY_EVENT_TASK || e->kind == DRAY_EVENT_ERROR)
                r->tasks += e->count;
            r->busy_ns += dur;
            if (e->stop_ns > r->last_ns)
                r->last_ns = e->stop_ns;
        }
    }
}

static void on_event(void *ctx, const dray__ev *e)
{
    db_history_add(ctx, e);
}

static void add_submitted(void *ctx, const char *name, uint64_t n)
{
    db_history *h = ctx;
    db_fn *f = db_history_fn(h, name);
    if (f)
        f->submitted += n;
}

/* Once a second: memory, CPU per process and per thread. */
static void sample(db_history *h, int64_t now)
{
    long hz = db_clock_ticks_per_s();
    double dt = (double)(now - h->last_sample_ns) / 1e9;
    dray__evthread_info th[DB_ROWS];
    size_t nth = dray__events_threads(h->rt, th, DB_ROWS);
    for (size_t i = 0; i < nth; i++)
        history_row(h, th[i].row, th[i].tid);
    for (size_t i = 0; i < h->n_rows; i++) {
        db_row *r = &h->rows[i];
        if (!r->tid)
            continue; /* module events only: no thread to sample */
        uint64_t t = db_proc_cpu_ticks(r->tid);
        if (r->sampled && dt > 0 && t >= r->cpu_ticks)
            r->cpu_pct = 100.0 * (double)(t - r->cpu_ticks) / (double)hz / dt;
        r->cpu_ticks = t;
        r->sampled = true;
    }
    db_sample s;
    memset(&s, 0, sizeof s);
    s.t_ns = now;
    s.rss = db_proc_rss();
    s.object_store = (uint64_t)dray_events_gauge(h->rt, DRAY_GAUGE_OBJECT_STORE_BYTES);
    s.spilled = (uint64_t)dray_events_gauge(h->rt, DRAY_GAUGE_SPILLED_BYTES);
    dray_stats st;
    if (dray_runtime_stats(h->rt, &st) == DRAY_OK) {
        s.tasks_done = st.tasks_finished;
        s.objects_live = st.objects_live;
    }
    uint64_t pt = db_proc_cpu_ticks(0);
    if (h->n_samples && dt > 0 && pt >= h->proc_ticks)
        s.cpu_pct = 100.0 * (double)(pt - h->proc_ticks) / (double)hz / dt;
    h->proc_ticks = pt;
    h->samples[h->n_samples % DB_SAMPLES] = s;
    h->n_samples++;
    h->last_sample_ns = now;
}

void db_history_collect(db_history *h)
{
    pthread_mutex_lock(&h->lock);
    uint64_t dropped;
    dray__events_drain(h->rt, on_event, h, &dropped);
    h->dropped = dropped;
    for (size_t i = 0; i < h->n_fns; i++)
        h->fns[i].submitted = 0;
    dray__events_submitted(h->rt, add_submitted, h);
    int64_t now = dray__now_ns();
    if (now - h->last_sample_ns >= 1000000000 || !h->n_samples)
        sample(h, now);
    pthread_mutex_unlock(&h->lock);
}

static void *collector_main(void *arg)
{
    db_history *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += COLLECT_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cond, &h->lock, &ts);
        if (h->stop)
            break;
        pthread_mutex_unlock(&h->lock);
        db_history_collect(h);
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* The runtime's shutdown: stop the servers, the collector, and free the history. */
static void history_stop(void *obs)
{
    db_history *h = obs;
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    struct dray_dashboard *servers = h->servers;
    h->servers = NULL;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
    for (struct dray_dashboard *d = servers; d; d = d->next_in_history)
        db_server_halt(d);
    if (h->thread_started)
        pthread_join(h->thread, NULL);
    for (size_t i = 0; i < h->n_items; i++)
        cJSON_Delete(h->items[i].json);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

dray_status db_history_get(dray_runtime *rt, db_history **out)
{
    dray_status st = dray_events_enable(rt);
    if (st)
        return st;
    dray__events *ev = dray__events_of(rt);
    pthread_mutex_lock(&ev->lock);
    db_history *cur = ev->observer;
    pthread_mutex_unlock(&ev->lock);
    if (cur) {
        *out = cur;
        return DRAY_OK;
    }
    db_history *h = calloc(1, sizeof(*h));
    if (!h)
        return dray_set_error(DRAY_ENOMEM, "out of memory creating the dashboard history");
    h->rt = rt;
    h->start_ns = dray__now_ns();
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    void *in_place;
    if (!dray__events_set_observer(rt, h, history_stop, &in_place)) {
        /* Another thread installed one first. */
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->lock);
        free(h);
        *out = in_place;
        return DRAY_OK;
    }
    db_history_collect(h);
    int err = pthread_create(&h->thread, NULL, collector_main, h);
    if (err)
        return dray_set_error(DRAY_ENOMEM, "cannot start the dashboard collector: %s",
                              strerror(err));
    h->thread_started = true;
    *out = h;
    return DRAY_OK;
}

dray_status dray_dashboard_record(dray_runtime *rt)
{
    if (!rt)
        return dray_set_error(DRAY_EINVAL, "dray_dashboard_record: runtime is NULL");
    db_history *h;
    return db_history_get(rt, &h);
}

dray_status dray_events_publish(dray_runtime *rt, const char *section, const char *key,
                                const char *json)
{
    if (!rt || !section || !key || !json)
        return dray_set_error(DRAY_EINVAL, "dray_events_publish: NULL argument");
    dray__events *ev = dray__events_of(rt);
    if (!ev)
        return DRAY_OK;
    pthread_mutex_lock(&ev->lock);
    db_history *h = ev->observer;
    pthread_mutex_unlock(&ev->lock);
    if (!h)
        return DRAY_OK;
    cJSON *j = cJSON_Parse(json);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return dray_set_error(DRAY_EINVAL, "dray_events_publish %s/%s: not a JSON object", section,
                              key);
    }
    pthread_mutex_lock(&h->lock);
    db_item *it = NULL;
    for (size_t i = 0; i < h->n_items && !it; i++)
        if (!strcmp(h->items[i].section, section) && !strcmp(h->items[i].key, key))
            it = &h->items[i];
    if (!it && h->n_items < DB_ITEMS) {
        it = &h->items[h->n_items++];
        snprintf(it->section, sizeof it->section, "%s", section);
        snprintf(it->key, sizeof it->key, "%s", key);
        it->json = NULL;
    }
    if (it) {
        cJSON_Delete(it->json);
        it->json = j;
        it->t_ns = dray__now_ns();
        j = NULL;
    }
    pthread_mutex_unlock(&h->lock);
    cJSON_Delete(j);
    return DRAY_OK;
}
