/* The head's view of its nodes' work: EVENTS batches from the nodes (task blocks of their executor
 * threads, errors, submissions per function) and their heartbeats' object-store counters (transfers
 * and spills) merge into a history like a runtime's, on the head's clock. Called on the head's loop
 * thread; the API reads under h->lock. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cluster/internal.h"
#include "internal.h"

/* Object-store counters in heartbeats, in dray__store_stats order. */
#define ST(field) (offsetof(dray__store_stats, field) / sizeof(uint64_t))
#define ST_MEM ST(bytes_mem)
#define ST_DISK ST(bytes_disk)
#define ST_PULLS ST(pulls)
#define ST_PULLED_BYTES ST(pulled_bytes)
#define ST_SPILLED ST(spilled)
#define ST_SPILLED_BYTES ST(spilled_bytes)
#define ST_READ_BACK ST(read_back)
#define ST_N DRAY__STORE_NSTATS
_Static_assert(DRAY__STORE_NSTATS <= 32, "db_cnode.store holds 32 counters");

#define ROW_STORE 999

dray_status db_history_cluster(db_history **out)
{
    db_history *h = calloc(1, sizeof(*h));
    db_cluster *cl = calloc(1, sizeof(*cl));
    if (!h || !cl) {
        free(h);
        free(cl);
        return dray_set_error(DRAY_ENOMEM, "out of memory creating the head's dashboard history");
    }
    h->cl = cl;
    h->start_ns = dray__now_ns();
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    *out = h;
    return DRAY_OK;
}

void db_history_free_cluster(db_history *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->cl->n_names; i++)
        free(h->cl->names[i]);
    free(h->cl);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

const char *db_row_name(const db_history *h, int row, char *buf, size_t size)
{
    if (h->cl) {
        int node = row / DB_ROW_NODE, r = row % DB_ROW_NODE;
        if (r < 500)
            snprintf(buf, size, "node-%d/%d", node, r);
        else if (r == 500)
            snprintf(buf, size, "node-%d/other", node);
        else if (r == ROW_STORE)
            snprintf(buf, size, "node-%d/store", node);
        else
            snprintf(buf, size, "node-%d/thread-%d", node, r - 501);
    } else if (row >= 0) {
        snprintf(buf, size, "worker-%d", row);
    } else if (row == -1) {
        snprintf(buf, size, "other");
    } else {
        snprintf(buf, size, "thread-%d", -row - 1);
    }
    return buf;
}

/* The interned copy of name (h->lock held); "(other)" once the table is full. */
static const char *intern(db_cluster *cl, const char *name)
{
    for (size_t i = 0; i < cl->n_names; i++)
        if (!strcmp(cl->names[i], name))
            return cl->names[i];
    char *copy = cl->n_names < DB_CNAMES ? strdup(name) : NULL;
    if (!copy)
        return "(other)";
    cl->names[cl->n_names++] = copy;
    return copy;
}

static uint64_t le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The node's offset from the sample with the shortest round trip among the last 16. */
static void clock_sample(db_cnode *n, int64_t t1, int64_t t2, int64_t t3, int64_t t4)
{
    int64_t rtt = (t4 - t1) - (t3 - t2);
    if (rtt < 0)
        rtt = 0;
    int64_t off = ((t2 - t1) + (t3 - t4)) / 2;
    n->off_samples[n->n_off % 16][0] = off;
    n->off_samples[n->n_off % 16][1] = rtt;
    n->n_off++;
    size_t k = n->n_off < 16 ? (size_t)n->n_off : 16, best = 0;
    for (size_t i = 1; i < k; i++)
        if (n->off_samples[i][1] < n->off_samples[best][1])
            best = i;
    n->offset_ns = n->off_samples[best][0];
    n->rtt_ns = n->off_samples[best][1];
}

static int cluster_row(int node, int row)
{
    int r = row >= 0 ? (row < 500 ? row : 499) : row == -1 ? 500 : 501 + (-row - 2);
    if (r >= ROW_STORE)
        r = ROW_STORE - 1;
    return node * DB_ROW_NODE + r;
}

bool dray__dashboard_head_watched(void *d)
{
    struct dray_dashboard *dd = d;
    return dd && dd->h && dd->h->cl && atomic_load(&dd->h->cl->watched);
}

void dray__dashboard_head_events(void *d, int node, const dray_value *ctl, int64_t now_ns)
{
    struct dray_dashboard *dd = d;
    if (!dd || !dd->h || !dd->h->cl || node < 0 || node >= DB_CNODES)
        return;
    db_history *h = dd->h;
    db_cluster *cl = h->cl;
    /* The shape was checked by the wire decoder (src/cluster/wire.c). */
    const dray_value *names = dray_list_get(ctl, 4), *subs = dray_list_get(ctl, 6);
    size_t nn = dray_list_len(names), len = 0;
    const uint8_t *recs = dray_bytes_data(dray_list_get(ctl, 5), &len);
    pthread_mutex_lock(&h->lock);
    db_cnode *n = &cl->nodes[node];
    n->seen = true;
    n->dropped = (uint64_t)dray_list_get(ctl, 3)->u.i;
    clock_sample(n, dray_list_get(ctl, 0)->u.i, dray_list_get(ctl, 1)->u.i,
                 dray_list_get(ctl, 2)->u.i, now_ns);
    const char *local[DRAY__EVNAMES_MAX];
    for (size_t i = 0; i < nn && i < DRAY__EVNAMES_MAX; i++)
        local[i] = intern(cl, dray_string_cstr(dray_list_get(names, i)));
    for (size_t k = 0; k + DRAY__EVREC <= len; k += DRAY__EVREC) {
        const uint8_t *r = recs + k;
        size_t ni = (size_t)le(r + 28, 2);
        if (ni >= nn)
            continue;
        dray__ev e;
        e.start_ns = (int64_t)le(r, 8) - n->offset_ns;
        e.stop_ns = (int64_t)le(r + 8, 8) - n->offset_ns;
        e.bytes = le(r + 16, 8);
        e.count = (uint32_t)le(r + 24, 4);
        e.name = local[ni];
        e.kind = r[30];
        e.status = (int16_t)le(r + 32, 2);
        e.row = cluster_row(node, (int16_t)le(r + 34, 2));
        e.tid = (int)le(r + 36, 4);
        if (e.kind == DRAY_EVENT_TASK)
            n->done += e.count;
        else if (e.kind == DRAY_EVENT_ERROR)
            n->failed += e.count;
        db_history_add(h, &e);
    }
    for (size_t i = 0; i < dray_list_len(subs); i++) {
        const dray_value *s = dray_list_get(subs, i);
        size_t ni = (size_t)dray_list_get(s, 0)->u.i;
        db_fn *f = ni < nn ? db_history_fn(h, local[ni]) : NULL;
        int64_t add = dray_list_get(s, 1)->u.i;
        if (f)
            f->submitted = add < 0 && (uint64_t)-add > f->submitted ? 0 : f->submitted + (uint64_t)add;
    }
    h->dropped = 0;
    for (int i = 0; i < DB_CNODES; i++)
        h->dropped += cl->nodes[i].dropped;
    pthread_mutex_unlock(&h->lock);
}

/* A store event on the node's store row over [t0, t1] (h->lock held). */
static void store_event(db_history *h, int node, dray_event_kind kind, const char *name,
                        int64_t t0, int64_t t1, int64_t count, int64_t bytes)
{
    if (count <= 0 && bytes <= 0)
        return;
    dray__ev e = {t0, t1, name, bytes > 0 ? (uint64_t)bytes : 0, count > 0 ? (uint32_t)count : 1,
                  (uint16_t)kind, 0, node * DB_ROW_NODE + ROW_STORE, 0};
    db_history_add(h, &e);
}

void dray__dashboard_head_ping(void *d, int node, const int64_t *store, int64_t rss, int64_t done,
                               int64_t now_ns)
{
    struct dray_dashboard *dd = d;
    if (!dd || !dd->h || !dd->h->cl || node < 0 || node >= DB_CNODES)
        return;
    db_history *h = dd->h;
    db_cluster *cl = h->cl;
    pthread_mutex_lock(&h->lock);
    db_cnode *n = &cl->nodes[node];
    /* Between two heartbeats: objects pulled from other nodes, spilled to disk and read back. */
    if (n->pinged && atomic_load(&cl->watched)) {
        const int64_t *o = n->store;
        store_event(h, node, DRAY_EVENT_TRANSFER, "node.pull", n->ping_ns, now_ns,
                    store[ST_PULLS] - o[ST_PULLS], store[ST_PULLED_BYTES] - o[ST_PULLED_BYTES]);
        store_event(h, node, DRAY_EVENT_SPILL, "node.spill", n->ping_ns, now_ns,
                    store[ST_SPILLED] - o[ST_SPILLED],
                    store[ST_SPILLED_BYTES] - o[ST_SPILLED_BYTES]);
        store_event(h, node, DRAY_EVENT_UNSPILL, "node.unspill", n->ping_ns, now_ns,
                    store[ST_READ_BACK] - o[ST_READ_BACK], 0);
    }
    memcpy(n->store, store, ST_N * sizeof(int64_t));
    n->rss = rss;
    n->tasks_done = done;
    n->ping_ns = now_ns;
    n->pinged = true;
    /* Once a second: the cluster's memory (nodes heard from in the last 3 s). */
    if (now_ns - cl->last_sample_ns >= 1000000000) {
        db_sample s;
        memset(&s, 0, sizeof s);
        s.t_ns = now_ns;
        for (int i = 0; i < DB_CNODES; i++) {
            const db_cnode *x = &cl->nodes[i];
            if (!x->pinged || now_ns - x->ping_ns > 3000000000LL)
                continue;
            s.rss += (uint64_t)x->rss;
            s.object_store += (uint64_t)x->store[ST_MEM];
            s.spilled += (uint64_t)x->store[ST_DISK];
            s.tasks_done += (uint64_t)x->tasks_done;
        }
        h->samples[h->n_samples % DB_SAMPLES] = s;
        h->n_samples++;
        cl->last_sample_ns = now_ns;
    }
    pthread_mutex_unlock(&h->lock);
}
