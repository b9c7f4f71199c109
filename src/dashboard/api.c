/* The dashboard's routes: the JSON API under /api/v0/, Prometheus /metrics and the embedded page
 * files. Every answer is built from the runtime's counters and the history at request time. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "dray/cluster.h"

#define MAX_STREAM_LIMIT 20000
#define MAX_ACTORS 4096

static double ms_since(const db_history *h, int64_t t)
{
    return (double)(t - h->start_ns) / 1e6;
}


/* ==== Builders (take h->lock themselves) ==== */

static cJSON *json_stats(dray_runtime *rt)
{
    dray_stats s;
    cJSON *o = cJSON_CreateObject();
    if (!rt || dray_runtime_stats(rt, &s) != DRAY_OK)
        return o;
    cJSON_AddNumberToObject(o, "submitted", (double)s.tasks_submitted);
    cJSON_AddNumberToObject(o, "finished", (double)s.tasks_finished);
    cJSON_AddNumberToObject(o, "succeeded", (double)(s.tasks_finished - s.tasks_failed));
    cJSON_AddNumberToObject(o, "failed", (double)s.tasks_failed);
    cJSON_AddNumberToObject(o, "canceled", (double)s.tasks_canceled);
    cJSON_AddNumberToObject(o, "retried", (double)s.tasks_retried);
    cJSON_AddNumberToObject(o, "stolen", (double)s.tasks_stolen);
    cJSON_AddNumberToObject(o, "pending", s.tasks_submitted > s.tasks_finished
                                              ? (double)(s.tasks_submitted - s.tasks_finished)
                                              : 0);
    cJSON_AddNumberToObject(o, "actor_calls", (double)s.actor_calls);
    return o;
}

/* A head's counts by state, from its nodes' events (h->lock held). */
static cJSON *json_cluster_states(db_history *h)
{
    uint64_t sub = 0, done = 0, failed = 0;
    for (size_t i = 0; i < h->n_fns; i++) {
        sub += h->fns[i].submitted;
        done += h->fns[i].done;
        failed += h->fns[i].failed;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "submitted", (double)sub);
    cJSON_AddNumberToObject(o, "finished", (double)(done + failed));
    cJSON_AddNumberToObject(o, "succeeded", (double)done);
    cJSON_AddNumberToObject(o, "failed", (double)failed);
    cJSON_AddNumberToObject(o, "pending", sub > done + failed ? (double)(sub - done - failed) : 0);
    return o;
}

/* A head's per-node counts of task events (h->lock held). */
static cJSON *json_cluster_by_node(db_history *h)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < DB_CNODES; i++) {
        const db_cnode *n = &h->cl->nodes[i];
        if (!n->seen)
            continue;
        cJSON *x = cJSON_CreateObject();
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        cJSON_AddStringToObject(x, "node", id);
        cJSON_AddNumberToObject(x, "done", (double)n->done);
        cJSON_AddNumberToObject(x, "failed", (double)n->failed);
        cJSON_AddNumberToObject(x, "dropped", (double)n->dropped);
        cJSON_AddItemToArray(a, x);
    }
    return a;
}

cJSON *db_json_tasks(db_history *h)
{
    cJSON *o = cJSON_CreateObject();
    if (h->cl) {
        pthread_mutex_lock(&h->lock);
        cJSON_AddItemToObject(o, "by_state", json_cluster_states(h));
        cJSON_AddItemToObject(o, "by_node", json_cluster_by_node(h));
        pthread_mutex_unlock(&h->lock);
    } else {
        cJSON_AddItemToObject(o, "by_state", json_stats(h->rt));
    }
    cJSON *fns = cJSON_AddArrayToObject(o, "by_function");
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_fns; i++) {
        const db_fn *f = &h->fns[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", f->name);
        cJSON_AddNumberToObject(x, "submitted", (double)f->submitted);
        cJSON_AddNumberToObject(x, "done", (double)f->done);
        cJSON_AddNumberToObject(x, "failed", (double)f->failed);
        uint64_t ran = f->done + f->failed;
        cJSON_AddNumberToObject(x, "pending", f->submitted > ran ? (double)(f->submitted - ran) : 0);
        cJSON_AddNumberToObject(x, "total_s", (double)f->total_ns / 1e9);
        cJSON_AddNumberToObject(x, "mean_ms", ran ? (double)f->total_ns / 1e6 / (double)ran : 0);
        cJSON_AddNumberToObject(x, "max_ms", (double)f->max_ns / 1e6);
        cJSON_AddNumberToObject(x, "transfer_bytes", (double)f->transfer_bytes);
        cJSON_AddNumberToObject(x, "spill_bytes", (double)f->spill_bytes);
        cJSON_AddItemToArray(fns, x);
    }
    cJSON_AddNumberToObject(o, "dropped", (double)h->dropped);
    pthread_mutex_unlock(&h->lock);
    return o;
}

cJSON *db_json_stream(db_history *h, uint64_t since, uint64_t limit)
{
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&h->lock);
    uint64_t first = h->seq > DB_STREAM ? h->seq - DB_STREAM : 0;
    if (since < first)
        since = first;
    if (since > h->seq)
        since = h->seq;
    uint64_t end = h->seq - since > limit ? since + limit : h->seq;
    cJSON_AddNumberToObject(o, "first", (double)first);
    cJSON_AddNumberToObject(o, "next", (double)end);
    cJSON_AddNumberToObject(o, "now_ms", ms_since(h, dray__now_ns()));
    cJSON_AddNumberToObject(o, "dropped", (double)h->dropped);
    cJSON *rows = cJSON_AddArrayToObject(o, "rows");
    for (size_t i = 0; i < h->n_rows; i++) {
        char nm[32];
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "row", h->rows[i].row);
        cJSON_AddStringToObject(r, "name", db_row_name(h, h->rows[i].row, nm, sizeof nm));
        if (h->cl) {
            snprintf(nm, sizeof nm, "%d", h->rows[i].row / DB_ROW_NODE);
            cJSON_AddStringToObject(r, "node", nm);
        }
        cJSON_AddItemToArray(rows, r);
    }
    cJSON *evs = cJSON_AddArrayToObject(o, "events");
    for (uint64_t s = since; s < end; s++) {
        const dray__ev *e = &h->stream[s % DB_STREAM];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "seq", (double)s);
        cJSON_AddNumberToObject(x, "start_ms", ms_since(h, e->start_ns));
        cJSON_AddNumberToObject(x, "stop_ms", ms_since(h, e->stop_ns));
        cJSON_AddStringToObject(x, "name", e->name);
        cJSON_AddStringToObject(x, "kind", dray_event_kind_name((dray_event_kind)e->kind));
        cJSON_AddNumberToObject(x, "count", e->count);
        cJSON_AddNumberToObject(x, "row", e->row);
        if (h->cl) {
            char nm[16];
            snprintf(nm, sizeof nm, "%d", e->row / DB_ROW_NODE);
            cJSON_AddStringToObject(x, "node", nm);
        }
        cJSON_AddNumberToObject(x, "bytes", (double)e->bytes);
        if (e->status)
            cJSON_AddStringToObject(x, "status", dray_status_name((dray_status)e->status));
        cJSON_AddItemToArray(evs, x);
    }
    pthread_mutex_unlock(&h->lock);
    return o;
}

cJSON *db_json_memory(db_history *h)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "limit_bytes", (double)dray_runtime_memory_limit(h->rt));
    cJSON *a = cJSON_AddArrayToObject(o, "samples");
    pthread_mutex_lock(&h->lock);
    uint64_t first = h->n_samples > DB_SAMPLES ? h->n_samples - DB_SAMPLES : 0;
    for (uint64_t i = first; i < h->n_samples; i++) {
        const db_sample *s = &h->samples[i % DB_SAMPLES];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "t_ms", ms_since(h, s->t_ns));
        cJSON_AddNumberToObject(x, "rss_bytes", (double)s->rss);
        cJSON_AddNumberToObject(x, "object_store_bytes", (double)s->object_store);
        cJSON_AddNumberToObject(x, "spilled_bytes", (double)s->spilled);
        cJSON_AddNumberToObject(x, "objects_live", (double)s->objects_live);
        cJSON_AddNumberToObject(x, "tasks_done", (double)s->tasks_done);
        cJSON_AddNumberToObject(x, "cpu_pct", s->cpu_pct);
        cJSON_AddItemToArray(a, x);
    }
    pthread_mutex_unlock(&h->lock);
    return o;
}

/* The latest sample's figures (locked by the caller). */
static const db_sample *last_sample(const db_history *h)
{
    return h->n_samples ? &h->samples[(h->n_samples - 1) % DB_SAMPLES] : NULL;
}

/* The threads that ran tasks (on a head: of node `node`, or of every node when it is -1). */
static cJSON *json_workers_of(db_history *h, int node)
{
    cJSON *a = cJSON_CreateArray();
    int64_t now = dray__now_ns();
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_rows; i++) {
        const db_row *r = &h->rows[i];
        if (h->cl && node >= 0 && r->row / DB_ROW_NODE != node)
            continue;
        char nm[32];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", db_row_name(h, r->row, nm, sizeof nm));
        cJSON_AddNumberToObject(x, "row", r->row);
        if (h->cl) {
            snprintf(nm, sizeof nm, "%d", r->row / DB_ROW_NODE);
            cJSON_AddStringToObject(x, "node", nm);
        }
        cJSON_AddNumberToObject(x, "tid", r->tid);
        cJSON_AddNumberToObject(x, "tasks", (double)r->tasks);
        cJSON_AddNumberToObject(x, "busy_s", (double)r->busy_ns / 1e9);
        if (h->cl)
            cJSON_AddNullToObject(x, "cpu_pct"); /* per-thread CPU stays on the node */
        else
            cJSON_AddNumberToObject(x, "cpu_pct", r->cpu_pct);
        if (r->last_ns)
            cJSON_AddNumberToObject(x, "idle_s", (double)(now - r->last_ns) / 1e9);
        else
            cJSON_AddNullToObject(x, "idle_s");
        cJSON_AddItemToArray(a, x);
    }
    pthread_mutex_unlock(&h->lock);
    return a;
}

static cJSON *json_workers(db_history *h)
{
    return json_workers_of(h, -1);
}

/* This process as a node. */
static cJSON *json_local_node(db_history *h)
{
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "id", "local");
    cJSON_AddStringToObject(x, "address", "embedded");
    cJSON_AddBoolToObject(x, "alive", true);
    cJSON_AddNumberToObject(x, "cpus", dray_runtime_num_workers(h->rt));
    pthread_mutex_lock(&h->lock);
    const db_sample *s = last_sample(h);
    cJSON_AddNumberToObject(x, "cpu_pct", s ? s->cpu_pct : 0);
    cJSON_AddNumberToObject(x, "rss_bytes", s ? (double)s->rss : 0);
    pthread_mutex_unlock(&h->lock);
    cJSON_AddNumberToObject(x, "memory_limit_bytes", (double)dray_runtime_memory_limit(h->rt));
    cJSON_AddNumberToObject(x, "object_store_bytes",
                            (double)dray_events_gauge(h->rt, DRAY_GAUGE_OBJECT_STORE_BYTES));
    cJSON_AddNumberToObject(x, "spilled_bytes",
                            (double)dray_events_gauge(h->rt, DRAY_GAUGE_SPILLED_BYTES));
    dray_stats st;
    dray_runtime_stats(h->rt, &st);
    cJSON_AddNumberToObject(x, "objects_live", (double)st.objects_live);
    cJSON_AddNumberToObject(x, "tasks_done", (double)st.tasks_finished);
    cJSON_AddItemToObject(x, "workers", json_workers(h));
    return x;
}

/* The head's node table (dray_cluster_status), as nodes. */
static cJSON *json_cluster_nodes(struct dray_dashboard *d)
{
    cJSON *a = cJSON_CreateArray();
    dray_value v;
    if (!d->cluster_address || dray_cluster_status(d->cluster_address, &v) != DRAY_OK)
        return a;
    const dray_value *nodes = dray_map_get(&v, "nodes");
    for (size_t i = 0; nodes && i < dray_list_len(nodes); i++) {
        const dray_value *n = dray_list_get(nodes, i);
        cJSON *x = cJSON_CreateObject();
        const dray_value *f;
        char id[32];
        snprintf(id, sizeof id, "%lld",
                 (long long)((f = dray_map_get(n, "id")) ? f->u.i : -1));
        cJSON_AddStringToObject(x, "id", id);
        f = dray_map_get(n, "address");
        cJSON_AddStringToObject(x, "address", f && dray_string_cstr(f) ? dray_string_cstr(f) : "");
        f = dray_map_get(n, "alive");
        cJSON_AddBoolToObject(x, "alive", f && f->type == DRAY_T_BOOL && f->u.b);
        static const char *ints[][2] = {{"cpus", "cpus"},
                                        {"pid", "pid"},
                                        {"tasks_done", "tasks_done"},
                                        {"tasks_running", "tasks_running"},
                                        {"last_seen_ms", "last_seen_ms"}};
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
            f = dray_map_get(n, ints[k][0]);
            cJSON_AddNumberToObject(x, ints[k][1], f && f->type == DRAY_T_INT ? (double)f->u.i : 0);
        }
        /* Memory, object-store and CPU figures come with the nodes' heartbeats. */
        const dray_value *store = dray_map_get(n, "store");
        const dray_value *mem = store ? dray_map_get(store, "bytes_mem") : NULL;
        const dray_value *disk = store ? dray_map_get(store, "bytes_disk") : NULL;
        const dray_value *rss = dray_map_get(n, "rss_bytes");
        const dray_value *cpu = dray_map_get(n, "cpu_pct");
        if (rss && rss->type == DRAY_T_INT)
            cJSON_AddNumberToObject(x, "rss_bytes", (double)rss->u.i);
        else
            cJSON_AddNullToObject(x, "rss_bytes");
        if (mem && mem->type == DRAY_T_INT)
            cJSON_AddNumberToObject(x, "object_store_bytes", (double)mem->u.i);
        else
            cJSON_AddNullToObject(x, "object_store_bytes");
        const dray_value *limit = store ? dray_map_get(store, "limit") : NULL;
        if (limit && limit->type == DRAY_T_INT)
            cJSON_AddNumberToObject(x, "memory_limit_bytes", (double)limit->u.i);
        if (disk && disk->type == DRAY_T_INT)
            cJSON_AddNumberToObject(x, "spilled_bytes", (double)disk->u.i);
        else
            cJSON_AddNullToObject(x, "spilled_bytes");
        if (cpu && cpu->type == DRAY_T_FLOAT)
            cJSON_AddNumberToObject(x, "cpu_pct", cpu->u.f);
        else
            cJSON_AddNullToObject(x, "cpu_pct");
        db_history *h = d->h;
        int id_num = (f = dray_map_get(n, "id")) && f->type == DRAY_T_INT ? (int)f->u.i : -1;
        if (h && h->cl && id_num >= 0 && id_num < DB_CNODES) {
            /* Task events: whether it records, its clock against the head's. */
            pthread_mutex_lock(&h->lock);
            const db_cnode *cn = &h->cl->nodes[id_num];
            cJSON_AddBoolToObject(x, "recording", cn->seen);
            cJSON_AddNumberToObject(x, "events_done", (double)cn->done);
            cJSON_AddNumberToObject(x, "events_failed", (double)cn->failed);
            cJSON_AddNumberToObject(x, "events_dropped_tasks", (double)cn->dropped);
            if (cn->seen) {
                cJSON_AddNumberToObject(x, "clock_offset_ms", (double)cn->offset_ns / 1e6);
                cJSON_AddNumberToObject(x, "clock_rtt_ms", (double)cn->rtt_ns / 1e6);
            } else {
                cJSON_AddNullToObject(x, "clock_offset_ms");
                cJSON_AddNullToObject(x, "clock_rtt_ms");
            }
            pthread_mutex_unlock(&h->lock);
            cJSON_AddItemToObject(x, "workers", json_workers_of(h, id_num));
        } else {
            cJSON_AddItemToObject(x, "workers", cJSON_CreateArray());
        }
        cJSON_AddItemToArray(a, x);
    }
    dray_value_release(&v);
    return a;
}

static cJSON *json_nodes(struct dray_dashboard *d)
{
    cJSON *a = json_cluster_nodes(d);
    if (d->rt)
        cJSON_InsertItemInArray(a, 0, json_local_node(d->h));
    return a;
}

static cJSON *json_summary(struct dray_dashboard *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "mode", d->rt ? "embedded" : "head");
    cJSON_AddStringToObject(o, "version", "v0");
    if (d->cluster_address)
        cJSON_AddStringToObject(o, "cluster_address", d->cluster_address);
    cJSON *nodes = json_nodes(d);
    int alive = 0, workers = 0;
    double cpu = 0;
    cJSON *n;
    cJSON_ArrayForEach(n, nodes)
    {
        bool up = cJSON_IsTrue(cJSON_GetObjectItem(n, "alive"));
        alive += up;
        workers += (int)cJSON_GetNumberValue(cJSON_GetObjectItem(n, "cpus"));
        const cJSON *c = cJSON_GetObjectItem(n, "cpu_pct");
        if (up && cJSON_IsNumber(c))
            cpu += cJSON_GetNumberValue(c);
    }
    cJSON_AddNumberToObject(o, "nodes", cJSON_GetArraySize(nodes));
    cJSON_AddNumberToObject(o, "nodes_alive", alive);
    cJSON_AddNumberToObject(o, "workers", workers);
    cJSON_Delete(nodes);
    if (d->h && d->h->cl) {
        db_history *h = d->h;
        cJSON_AddNumberToObject(o, "uptime_s", (double)(dray__now_ns() - h->start_ns) / 1e9);
        pthread_mutex_lock(&h->lock);
        cJSON_AddItemToObject(o, "tasks", json_cluster_states(h));
        const db_sample *s = last_sample(h);
        cJSON_AddNumberToObject(o, "rss_bytes", s ? (double)s->rss : 0);
        cJSON_AddNumberToObject(o, "cpu_pct", cpu);
        cJSON_AddNumberToObject(o, "events_recorded", (double)h->seq);
        cJSON_AddNumberToObject(o, "events_dropped_tasks", (double)h->dropped);
        cJSON_AddNumberToObject(o, "spilled_bytes", s ? (double)s->spilled : 0);
        pthread_mutex_unlock(&h->lock);
        cJSON_AddBoolToObject(o, "recording", atomic_load(&h->cl->watched));
    } else if (d->h) {
        db_history *h = d->h;
        cJSON_AddNumberToObject(o, "uptime_s", (double)(dray__now_ns() - h->start_ns) / 1e9);
        cJSON_AddItemToObject(o, "tasks", json_stats(h->rt));
        dray_stats st;
        dray_runtime_stats(h->rt, &st);
        cJSON_AddNumberToObject(o, "objects_live", (double)st.objects_live);
        cJSON_AddNumberToObject(o, "actors_live", (double)st.actors_live);
        pthread_mutex_lock(&h->lock);
        const db_sample *s = last_sample(h);
        cJSON_AddNumberToObject(o, "rss_bytes", s ? (double)s->rss : 0);
        cJSON_AddNumberToObject(o, "cpu_pct", s ? s->cpu_pct : 0);
        cJSON_AddNumberToObject(o, "events_recorded", (double)h->seq);
        cJSON_AddNumberToObject(o, "events_dropped_tasks", (double)h->dropped);
        pthread_mutex_unlock(&h->lock);
        cJSON_AddNumberToObject(o, "spilled_bytes",
                                (double)dray_events_gauge(h->rt, DRAY_GAUGE_SPILLED_BYTES));
    }
    return o;
}

#define MAX_GRAPHS 64

/* The newest graphs' progress. */
static cJSON *json_graphs(db_history *h)
{
    cJSON *a = cJSON_CreateArray();
    dray__graph_info info[MAX_GRAPHS];
    size_t n = dray__events_graphs(h->rt, info, MAX_GRAPHS);
    for (size_t i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "id", (double)info[i].id);
        cJSON_AddNumberToObject(x, "tasks", info[i].tasks);
        cJSON_AddNumberToObject(x, "done", info[i].done);
        cJSON_AddNumberToObject(x, "failed", info[i].failed);
        cJSON_AddBoolToObject(x, "submitted", info[i].submitted);
        bool finished = info[i].submitted && info[i].done + info[i].failed == info[i].tasks;
        cJSON_AddBoolToObject(x, "finished", finished);
        cJSON_AddNumberToObject(x, "start_ms", ms_since(h, info[i].start_ns));
        if (finished && info[i].last_ns)
            cJSON_AddNumberToObject(x, "end_ms", ms_since(h, info[i].last_ns));
        else
            cJSON_AddNullToObject(x, "end_ms");
        cJSON_AddItemToArray(a, x);
    }
    return a;
}

static cJSON *json_actors(db_history *h)
{
    cJSON *a = cJSON_CreateArray();
    dray__actor_info *info = malloc(MAX_ACTORS * sizeof(*info));
    if (!info)
        return a;
    size_t n = dray__actors_snapshot(h->rt, info, MAX_ACTORS);
    for (size_t i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        char id[32];
        snprintf(id, sizeof id, "%016llx", (unsigned long long)info[i].id);
        cJSON_AddStringToObject(x, "id", id);
        cJSON_AddStringToObject(x, "class", info[i].cls);
        cJSON_AddStringToObject(x, "state", info[i].state);
        cJSON_AddStringToObject(x, "node", info[i].remote ? "cluster" : "local");
        cJSON_AddNumberToObject(x, "restarts", info[i].restarts);
        cJSON_AddNumberToObject(x, "max_restarts", info[i].max_restarts);
        cJSON_AddNumberToObject(x, "running_calls", info[i].running);
        cJSON_AddNumberToObject(x, "refs", info[i].refs);
        cJSON_AddNumberToObject(x, "pending_calls", (double)info[i].pending);
        cJSON_AddItemToArray(a, x);
    }
    free(info);
    return a;
}

static cJSON *json_items(db_history *h, const char *section)
{
    cJSON *a = cJSON_CreateArray();
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_items; i++) {
        if (strcmp(h->items[i].section, section))
            continue;
        cJSON *x = cJSON_Duplicate(h->items[i].json, true);
        if (!x)
            continue;
        if (!cJSON_GetObjectItem(x, "name"))
            cJSON_AddStringToObject(x, "name", h->items[i].key);
        cJSON_AddNumberToObject(x, "updated_ms", ms_since(h, h->items[i].t_ns));
        cJSON_AddItemToArray(a, x);
    }
    pthread_mutex_unlock(&h->lock);
    return a;
}

/* Log lines: the runtime's ring, or the tail of a process's log file in the cluster directory. */
static cJSON *json_logs(struct dray_dashboard *d, const db_query *q, int *status)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *procs = cJSON_AddArrayToObject(o, "processes");
    if (d->rt)
        cJSON_AddItemToArray(procs, cJSON_CreateString("runtime"));
    DIR *dir = d->cluster_dir ? opendir(d->cluster_dir) : NULL;
    for (struct dirent *e; dir && (e = readdir(dir));) {
        size_t len = strlen(e->d_name);
        if (len > 4 && len < 64 && !strcmp(e->d_name + len - 4, ".log")) {
            char nm[64];
            snprintf(nm, sizeof nm, "%.*s", (int)(len - 4), e->d_name);
            cJSON_AddItemToArray(procs, cJSON_CreateString(nm));
        }
    }
    if (dir)
        closedir(dir);
    const char *proc = db_query_get(q, "process");
    cJSON *lines = cJSON_AddArrayToObject(o, "lines");
    if (!proc || !strcmp(proc, "runtime")) {
        uint64_t since = 0;
        if (db_query_u64(q, "since", 0, UINT64_MAX / 2, &since) != DRAY_OK) {
            *status = 400;
            return o;
        }
        dray__logline *buf = malloc(200 * sizeof(*buf));
        uint64_t next = since;
        size_t n = d->rt && buf ? dray__events_logs(d->rt, since, buf, 200, &next) : 0;
        for (size_t i = 0; i < n; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "seq", (double)buf[i].seq);
            cJSON_AddNumberToObject(x, "t_ms", d->h ? ms_since(d->h, buf[i].t_ns) : 0);
            cJSON_AddStringToObject(x, "level", buf[i].level);
            cJSON_AddStringToObject(x, "source", buf[i].source);
            cJSON_AddStringToObject(x, "text", buf[i].text);
            cJSON_AddItemToArray(lines, x);
        }
        free(buf);
        cJSON_AddNumberToObject(o, "next", (double)next);
        return o;
    }
    /* A process log: names are letters, digits, '-' and '_' only (no paths). */
    for (const char *p = proc; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_')) {
            dray_set_error(DRAY_EINVAL, "query parameter 'process': '%s' is not a process name",
                           proc);
            *status = 400;
            return o;
        }
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.log", d->cluster_dir ? d->cluster_dir : "", proc);
    FILE *f = d->cluster_dir ? fopen(path, "r") : NULL;
    if (!f) {
        dray_set_error(DRAY_ENOTFOUND, "no log for process '%s'", proc);
        *status = 404;
        return o;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > 65536 ? size - 65536 : 0;
    fseek(f, from, SEEK_SET);
    char *buf = malloc(65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    if (buf) {
        buf[n] = 0;
        char *save = NULL;
        char *line = strtok_r(from ? strchr(buf, '\n') : buf, "\n", &save);
        for (; line; line = strtok_r(NULL, "\n", &save)) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "source", proc);
            cJSON_AddStringToObject(x, "text", line);
            cJSON_AddItemToArray(lines, x);
        }
        free(buf);
    }
    return o;
}

/* ==== Prometheus ==== */

static void prom_escape(char *out, size_t size, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 < size; s++) {
        if (*s == '"' || *s == '\\' || *s == '\n') {
            out[o++] = '\\';
            out[o++] = *s == '\n' ? 'n' : *s;
        } else {
            out[o++] = *s;
        }
    }
    out[o] = 0;
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static char *metrics_text(struct dray_dashboard *d, size_t *len)
{
    sbuf b = {0};
    sb_printf(&b, "# HELP dray_up 1 while the dashboard answers.\n# TYPE dray_up gauge\ndray_up 1\n");
    if (d->rt) {
        dray_stats s;
        dray_runtime_stats(d->rt, &s);
        sb_printf(&b, "# HELP dray_tasks_total Tasks by state since start.\n"
                      "# TYPE dray_tasks_total counter\n");
        sb_printf(&b, "dray_tasks_total{state=\"submitted\"} %llu\n",
                  (unsigned long long)s.tasks_submitted);
        sb_printf(&b, "dray_tasks_total{state=\"finished\"} %llu\n",
                  (unsigned long long)s.tasks_finished);
        sb_printf(&b, "dray_tasks_total{state=\"failed\"} %llu\n",
                  (unsigned long long)s.tasks_failed);
        sb_printf(&b, "dray_tasks_total{state=\"canceled\"} %llu\n",
                  (unsigned long long)s.tasks_canceled);
        sb_printf(&b, "dray_tasks_total{state=\"retried\"} %llu\n",
                  (unsigned long long)s.tasks_retried);
        sb_printf(&b, "# TYPE dray_objects_live gauge\ndray_objects_live %llu\n",
                  (unsigned long long)s.objects_live);
        sb_printf(&b, "# TYPE dray_actors_live gauge\ndray_actors_live %llu\n",
                  (unsigned long long)s.actors_live);
        sb_printf(&b, "# TYPE dray_workers gauge\ndray_workers %d\n", s.num_workers);
        sb_printf(&b, "# TYPE dray_spilled_bytes gauge\ndray_spilled_bytes %lld\n",
                  (long long)dray_events_gauge(d->rt, DRAY_GAUGE_SPILLED_BYTES));
        sb_printf(&b, "# TYPE dray_object_store_bytes gauge\ndray_object_store_bytes %lld\n",
                  (long long)dray_events_gauge(d->rt, DRAY_GAUGE_OBJECT_STORE_BYTES));
        db_history *h = d->h;
        pthread_mutex_lock(&h->lock);
        const db_sample *sm = last_sample(h);
        sb_printf(&b, "# TYPE dray_process_resident_memory_bytes gauge\n"
                      "dray_process_resident_memory_bytes %llu\n",
                  (unsigned long long)(sm ? sm->rss : 0));
        pthread_mutex_unlock(&h->lock);
    }
    if (d->h) {
        db_history *h = d->h;
        pthread_mutex_lock(&h->lock);
        sb_printf(&b, "# HELP dray_function_tasks_total Tasks run, by function and outcome.\n"
                      "# TYPE dray_function_tasks_total counter\n");
        for (size_t i = 0; i < h->n_fns; i++) {
            char nm[256];
            prom_escape(nm, sizeof nm, h->fns[i].name);
            sb_printf(&b, "dray_function_tasks_total{function=\"%s\",outcome=\"done\"} %llu\n", nm,
                      (unsigned long long)h->fns[i].done);
            sb_printf(&b, "dray_function_tasks_total{function=\"%s\",outcome=\"failed\"} %llu\n",
                      nm, (unsigned long long)h->fns[i].failed);
        }
        sb_printf(&b, "# TYPE dray_function_seconds_total counter\n");
        for (size_t i = 0; i < h->n_fns; i++) {
            char nm[256];
            prom_escape(nm, sizeof nm, h->fns[i].name);
            sb_printf(&b, "dray_function_seconds_total{function=\"%s\"} %.9g\n", nm,
                      (double)h->fns[i].total_ns / 1e9);
        }
        pthread_mutex_unlock(&h->lock);
    }
    if (d->cluster_address) {
        cJSON *nodes = json_cluster_nodes(d);
        int alive = 0;
        cJSON *n;
        cJSON_ArrayForEach(n, nodes) alive += cJSON_IsTrue(cJSON_GetObjectItem(n, "alive"));
        sb_printf(&b, "# TYPE dray_cluster_nodes_alive gauge\ndray_cluster_nodes_alive %d\n",
                  alive);
        cJSON_Delete(nodes);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* ==== Dispatch ==== */

static void answer_json(cJSON *j, int *status, char **body, size_t *len, const char **ctype)
{
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text) {
        *status = 500;
        *body = strdup("{\"error\":\"out of memory\"}");
    } else {
        *body = text;
    }
    *len = *body ? strlen(*body) : 0;
    *ctype = "application/json";
}

static void answer_error(int status_code, const char *msg, int *status, char **body, size_t *len,
                         const char **ctype)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    cJSON_AddNumberToObject(j, "status", status_code);
    answer_json(j, status, body, len, ctype);
    if (*status != 500)
        *status = status_code;
}

void db_api_answer(struct dray_dashboard *d, const char *target, int *status, char **body,
                   size_t *len, const char **ctype)
{
    db_query q;
    *status = 200;
    if (db_query_parse(target, &q) != DRAY_OK) {
        answer_error(400, dray_last_error(), status, body, len, ctype);
        return;
    }
    const char *p = q.path;
    db_history *h = d->h;
    /* On a head, a client of the API makes the nodes record their task events. */
    if (h && h->cl && (!strncmp(p, "/api/", 5) || !strcmp(p, "/metrics")))
        atomic_store(&h->cl->watched, true);
    if (!strncmp(p, "/api/", 5)) {
        cJSON *j = NULL;
        if (!strcmp(p, "/api/v0/summary")) {
            j = json_summary(d);
        } else if (!strcmp(p, "/api/v0/nodes")) {
            j = json_nodes(d);
        } else if (!strcmp(p, "/api/v0/workers") && h) {
            j = json_workers(h);
        } else if (!strcmp(p, "/api/v0/tasks") && h) {
            j = db_json_tasks(h);
        } else if (!strcmp(p, "/api/v0/progress") && h) {
            cJSON *t = db_json_tasks(h);
            j = cJSON_CreateObject();
            cJSON_AddItemToObject(j, "groups", cJSON_DetachItemFromObject(t, "by_function"));
            cJSON_Delete(t);
            cJSON_AddItemToObject(j, "graphs", json_graphs(h));
        } else if (!strcmp(p, "/api/v0/stream") && h) {
            uint64_t since, limit;
            if (db_query_u64(&q, "since", 0, UINT64_MAX / 2, &since) ||
                db_query_u64(&q, "limit", 5000, MAX_STREAM_LIMIT, &limit)) {
                answer_error(400, dray_last_error(), status, body, len, ctype);
                return;
            }
            j = db_json_stream(h, since, limit);
        } else if (!strcmp(p, "/api/v0/memory") && h) {
            j = db_json_memory(h);
        } else if (!strcmp(p, "/api/v0/actors") && d->rt) {
            j = json_actors(h);
        } else if (!strcmp(p, "/api/v0/tune") && d->rt) {
            j = json_items(h, "tune");
        } else if (!strcmp(p, "/api/v0/serve") && d->rt) {
            j = json_items(h, "serve");
        } else if (!strcmp(p, "/api/v0/logs")) {
            int st = 200;
            j = json_logs(d, &q, &st);
            if (st != 200) {
                cJSON_Delete(j);
                answer_error(st, dray_last_error(), status, body, len, ctype);
                return;
            }
        } else if (!strcmp(p, "/api/v0/routes")) {
            static const char *routes[] = {"summary", "nodes",  "workers", "tasks",
                                           "progress", "stream", "memory", "actors",
                                           "tune",    "serve",  "logs",   "routes"};
            j = cJSON_CreateArray();
            for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
                char r[64];
                snprintf(r, sizeof r, "/api/v0/%s", routes[i]);
                cJSON_AddItemToArray(j, cJSON_CreateString(r));
            }
        }
        if (!j) {
            char msg[320];
            snprintf(msg, sizeof msg, "no API route '%.200s'%s", p,
                     d->rt ? "" : " (this dashboard has no runtime)");
            answer_error(404, msg, status, body, len, ctype);
            return;
        }
        answer_json(j, status, body, len, ctype);
        return;
    }
    if (!strcmp(p, "/metrics")) {
        *body = metrics_text(d, len);
        *ctype = "text/plain; version=0.0.4";
        if (!*body)
            answer_error(500, "out of memory", status, body, len, ctype);
        return;
    }
    if (!db_path_safe(p)) {
        answer_error(400, "path rejected: '..', '//', '\\' and control characters are not allowed",
                     status, body, len, ctype);
        return;
    }
    const db_asset *a = db_asset_find(strcmp(p, "/") ? p : "/index.html");
    if (!a) {
        char msg[320];
        snprintf(msg, sizeof msg, "not found: '%.200s'", p);
        answer_error(404, msg, status, body, len, ctype);
        return;
    }
    *body = malloc(a->len + 1);
    if (!*body) {
        answer_error(500, "out of memory", status, body, len, ctype);
        return;
    }
    memcpy(*body, a->data, a->len);
    (*body)[a->len] = 0;
    *len = a->len;
    *ctype = db_content_type(a->path);
}
