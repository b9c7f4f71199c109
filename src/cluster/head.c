/* The head: accepts workers and drivers that know the secret, keeps the node table, detects dead
 * workers by missing heartbeats, pushes the live node list to drivers, and answers status queries. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* The head's dashboard (src/dashboard/head.c), when that module is linked. */
dray_status dray__dashboard_head_start(const char *dir, const char *bind, int head_port, void **out)
    __attribute__((weak));
void dray__dashboard_head_stop(void *d) __attribute__((weak));
/* Whether a dashboard client asked for the cluster's task data (then nodes record task events). */
bool dray__dashboard_head_watched(void *d) __attribute__((weak));
/* A node's checked EVENTS batch (ctl) that arrived at head clock now_ns. */
void dray__dashboard_head_events(void *d, int node, const dray_value *ctl, int64_t now_ns)
    __attribute__((weak));
/* A node's heartbeat: its object-store counters (DRAY__STORE_NSTATS), resident bytes, tasks done. */
void dray__dashboard_head_ping(void *d, int node, const int64_t *store, int64_t rss, int64_t done,
                               int64_t now_ns) __attribute__((weak));

#define MAX_NODES 1024
#define MAX_DRIVERS 256

typedef struct node {
    int id;
    dray__conn *conn; /* retained; NULL once dead */
    char addr[80];
    int cpus, pid;
    dray_value res; /* custom resources: map name -> float */
    int64_t last_seen_ns, done, running;
    int64_t store[DRAY__STORE_NSTATS]; /* the node's object-store counters, from its PINGs */
    int64_t rss;                       /* resident bytes, from its PINGs */
    int64_t cpu_ns, cpu_at_ns;         /* process CPU time and when it came (for cpu_pct) */
    double cpu_pct;                    /* CPU use between its last two PINGs (100 = one core) */
    bool paused;                       /* above its memory pause fraction: no new tasks there */
    int64_t spilled;                   /* nested tasks it sent to other nodes, from its PINGs */
    bool traced;                       /* sent TRACE: it records task events for the dashboard */
} node;

typedef struct head {
    node nodes[MAX_NODES];
    int n_nodes;
    dray__conn *drivers[MAX_DRIVERS]; /* retained */
    int n_drivers;
    int64_t heartbeat_timeout_ns;
    void *dash;            /* the head's dashboard, when that module is linked */
    bool tracing;          /* a dashboard client watched: nodes record task events */
    int64_t next_trace_ns; /* next TRACE round (clock samples for the nodes' offsets) */
} head;

/* A connection's user pointer on the head: its node, or this mark for a subscribed driver. */
#define DRIVER_MARK(h) ((void *)&(h)->n_drivers)

static dray_status nodes_value(head *h, dray_value *out)
{
    dray_value *items = calloc((size_t)h->n_nodes + 1, sizeof(dray_value));
    if (!items)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    size_t n = 0;
    dray_status st = DRAY_OK;
    for (int i = 0; i < h->n_nodes && !st; i++) {
        node *nd = &h->nodes[i];
        if (!nd->conn)
            continue;
        dray_value f[5] = {dray_int(nd->id), dray_null(), dray_int(nd->cpus), nd->res,
                           dray_bool(nd->paused)};
        if (!(st = dray_string_create(nd->addr, &f[1])))
            st = dray_list_create(f, 5, &items[n++]);
        dray_value_release(&f[1]);
    }
    if (!st)
        st = dray_list_create(items, n, out);
    for (size_t i = 0; i < n; i++)
        dray_value_release(&items[i]);
    free(items);
    return st;
}

/* Sends the live node list to driver c, or to every driver when c is NULL. */
static void send_nodes(head *h, dray__conn *c)
{
    dray_value v;
    if (nodes_value(h, &v)) {
        dray__log("cannot build the node list: %s", dray_last_error());
        return;
    }
    for (int i = 0; i < h->n_drivers; i++)
        if (!c || h->drivers[i] == c)
            dray__conn_send_value(h->drivers[i], DRAY__MSG_NODES, 0, 0, &v, NULL);
    dray_value_release(&v);
}

static void node_dead(head *h, node *nd, const char *why)
{
    if (!nd->conn)
        return;
    dray__log("node %d (%s, pid %d) is dead: %s", nd->id, nd->addr, nd->pid, why);
    dray__conn *c = nd->conn;
    nd->conn = NULL;
    dray__conn_set_user(c, NULL);
    dray__conn_close(c, NULL);
    dray__conn_release(c);
    send_nodes(h, NULL);
}

/* Names of the dray__store_stats fields, in order. */
static const char *const store_keys[DRAY__STORE_NSTATS] = {
    "limit",  "objects",      "bytes_mem",     "bytes_disk", "puts",      "pulls",
    "pulled_bytes", "served", "served_bytes",  "spilled",    "spilled_bytes", "read_back",
    "direct_to_disk", "freed", "freed_bytes"};

static dray_status status_value(head *h, dray_value *out)
{
    static const char *keys[] = {"id",        "address",    "cpus",          "pid",
                                 "alive",     "tasks_done", "tasks_running", "last_seen_ms",
                                 "store",     "resources",  "rss_bytes",     "cpu_pct",
                                 "paused",    "tasks_spilled"};
    enum { NKEYS = sizeof keys / sizeof keys[0] };
    dray_value *items = calloc((size_t)h->n_nodes + 1, sizeof(dray_value));
    if (!items)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    dray_status st = DRAY_OK;
    int64_t now = dray__now_ns();
    int n = 0;
    for (; n < h->n_nodes && !st; n++) {
        node *nd = &h->nodes[n];
        dray_value f[NKEYS] = {dray_int(nd->id),   dray_null(),         dray_int(nd->cpus),
                               dray_int(nd->pid),  dray_bool(nd->conn != NULL), dray_int(nd->done),
                               dray_int(nd->running), dray_int((now - nd->last_seen_ns) / 1000000),
                               dray_null(), nd->res, dray_int(nd->rss), dray_float(nd->cpu_pct),
                               dray_bool(nd->paused), dray_int(nd->spilled)};
        dray_value sv[DRAY__STORE_NSTATS];
        for (int i = 0; i < DRAY__STORE_NSTATS; i++)
            sv[i] = dray_int(nd->store[i]);
        if (!(st = dray_string_create(nd->addr, &f[1])) &&
            !(st = dray_map_create(store_keys, sv, DRAY__STORE_NSTATS, &f[8])))
            st = dray_map_create(keys, f, NKEYS, &items[n]);
        dray_value_release(&f[1]);
        dray_value_release(&f[8]);
    }
    dray_value list = dray_null();
    if (!st)
        st = dray_list_create(items, (size_t)n, &list);
    for (int i = 0; i < n; i++)
        dray_value_release(&items[i]);
    free(items);
    if (st)
        return st;
    /* Subscribers also include the nodes' spill clients (role "node"): not drivers. */
    int drivers = 0;
    for (int i = 0; i < h->n_drivers; i++)
        drivers += !strcmp(dray__conn_role(h->drivers[i]), "driver");
    const char *top[] = {"nodes", "drivers"};
    dray_value vals[2] = {list, dray_int(drivers)};
    st = dray_map_create(top, vals, 2, out);
    dray_value_release(&list);
    return st;
}

static void on_message(dray__loop *l, dray__conn *c, const dray__hdr *hd, const dray_value *ctl,
                       const dray_value *data)
{
    (void)data;
    head *h = dray__loop_user(l);
    void *u = dray__conn_user(c);
    node *nd = u && u != DRIVER_MARK(h) ? u : NULL;
    switch (hd->type) {
    case DRAY__MSG_REGISTER: {
        if (strcmp(dray__conn_role(c), "worker") || dray__conn_user(c)) {
            dray__conn_close(c, "REGISTER from a peer that is not a new worker");
            return;
        }
        if (h->n_nodes == MAX_NODES) {
            dray__conn_close(c, "refused: node table is full");
            return;
        }
        const char *addr = dray_string_cstr(dray_list_get(ctl, 0));
        if (strlen(addr) >= sizeof h->nodes[0].addr) {
            dray__conn_close(c, "REGISTER: address too long");
            return;
        }
        nd = &h->nodes[h->n_nodes];
        memset(nd, 0, sizeof(*nd));
        nd->id = h->n_nodes++;
        nd->conn = dray__conn_retain(c);
        snprintf(nd->addr, sizeof nd->addr, "%s", addr);
        nd->cpus = (int)dray_list_get(ctl, 1)->u.i;
        nd->pid = (int)dray_list_get(ctl, 2)->u.i;
        nd->res = dray_value_retain(dray_list_get(ctl, 3));
        nd->last_seen_ns = dray__now_ns();
        dray__conn_set_user(c, nd);
        dray__log("node %d joined: %s, %d cpus, pid %d", nd->id, nd->addr, nd->cpus, nd->pid);
        send_nodes(h, NULL);
        return;
    }
    case DRAY__MSG_PING:
        if (!nd) {
            dray__conn_close(c, "PING from a peer that is not a registered node");
            return;
        }
        nd->last_seen_ns = dray__now_ns();
        nd->done = dray_list_get(ctl, 0)->u.i;
        nd->running = dray_list_get(ctl, 1)->u.i;
        for (int i = 0; i < DRAY__STORE_NSTATS; i++)
            nd->store[i] = dray_list_get(dray_list_get(ctl, 2), (size_t)i)->u.i;
        nd->rss = dray_list_get(ctl, 3)->u.i;
        int64_t cpu = dray_list_get(ctl, 4)->u.i;
        if (nd->cpu_at_ns > 0 && nd->last_seen_ns > nd->cpu_at_ns && cpu >= nd->cpu_ns)
            nd->cpu_pct = 100.0 * (double)(cpu - nd->cpu_ns) /
                          (double)(nd->last_seen_ns - nd->cpu_at_ns);
        nd->cpu_ns = cpu;
        nd->cpu_at_ns = nd->last_seen_ns;
        if (dray_list_len(ctl) > 6)
            nd->spilled = dray_list_get(ctl, 6)->u.i;
        if (dray_list_get(ctl, 5)->u.b != nd->paused) {
            /* Drivers place new tasks elsewhere while a node is paused. */
            nd->paused = dray_list_get(ctl, 5)->u.b;
            dray__log("node %d (%s) %s", nd->id, nd->addr,
                      nd->paused ? "paused: its memory is above the pause fraction" : "resumed");
            send_nodes(h, NULL);
        }
        if (h->dash && dray__dashboard_head_ping)
            dray__dashboard_head_ping(h->dash, nd->id, nd->store, nd->rss, nd->done,
                                      nd->last_seen_ns);
        return;
    case DRAY__MSG_EVENTS:
        if (!nd) {
            dray__conn_close(c, "EVENTS from a peer that is not a registered node");
            return;
        }
        if (h->dash && dray__dashboard_head_events)
            dray__dashboard_head_events(h->dash, nd->id, ctl, dray__now_ns());
        return;
    case DRAY__MSG_SUBSCRIBE:
        if (dray__conn_user(c) || h->n_drivers == MAX_DRIVERS) {
            dray__conn_close(c, "refused SUBSCRIBE: already subscribed or too many drivers");
            return;
        }
        h->drivers[h->n_drivers++] = dray__conn_retain(c);
        dray__conn_set_user(c, DRIVER_MARK(h));
        dray__log("%s %s subscribed", dray__conn_role(c), dray__conn_peer(c));
        send_nodes(h, c);
        return;
    case DRAY__MSG_STATUS_REQ: {
        dray_value v;
        if (status_value(h, &v) == DRAY_OK) {
            dray__conn_send_value(c, DRAY__MSG_STATUS, 0, hd->rid, &v, NULL);
            dray_value_release(&v);
        }
        return;
    }
    default:
        dray__conn_close(c, "unexpected message type for the head");
    }
}

static void on_close(dray__loop *l, dray__conn *c)
{
    head *h = dray__loop_user(l);
    void *u = dray__conn_user(c);
    if (u == DRIVER_MARK(h)) {
        for (int i = 0; i < h->n_drivers; i++)
            if (h->drivers[i] == c) {
                h->drivers[i] = h->drivers[--h->n_drivers];
                dray__conn_release(c);
                break;
            }
        dray__log("%s %s left", dray__conn_role(c), dray__conn_peer(c));
    } else if (u) {
        node_dead(h, u, "its connection closed");
    }
}

/* Once a dashboard client watched, every live node gets TRACE (at once when new, then once a
 * second with the head's clock, which the node's EVENTS echo for the clock offset). */
static void trace_tick(head *h, int64_t now)
{
    if (!h->tracing)
        h->tracing = h->dash && dray__dashboard_head_watched && dray__dashboard_head_watched(h->dash);
    if (!h->tracing)
        return;
    bool round = now >= h->next_trace_ns;
    if (round)
        h->next_trace_ns = now + 1000000000;
    dray_value v = dray_int(now);
    for (int i = 0; i < h->n_nodes; i++) {
        node *nd = &h->nodes[i];
        if (nd->conn && (round || !nd->traced) &&
            !dray__conn_send_value(nd->conn, DRAY__MSG_TRACE, 0, 0, &v, NULL))
            nd->traced = true;
    }
}

static void on_tick(dray__loop *l)
{
    head *h = dray__loop_user(l);
    int64_t now = dray__now_ns();
    for (int i = 0; i < h->n_nodes; i++)
        if (h->nodes[i].conn && now - h->nodes[i].last_seen_ns > h->heartbeat_timeout_ns)
            node_dead(h, &h->nodes[i], "no heartbeat");
    trace_tick(h, now);
}

dray_status dray_cluster_secret_create(const char *dir)
{
    if (!dir || !*dir)
        return dray_set_error(DRAY_EINVAL, "dray_cluster_secret_create: no directory");
    uint8_t secret[32];
    char hex[65];
    dray_status st = dray__random_bytes(secret, sizeof secret);
    if (st)
        return st;
    dray__hex_encode(secret, sizeof secret, hex);
    return dray__secret_write(dir, hex);
}

static int64_t env_ms(const char *name, int64_t dflt)
{
    const char *v = getenv(name);
    return v && atoll(v) > 0 ? atoll(v) : dflt;
}

dray_status dray_cluster_head_run(const dray_cluster_opts *opts, const char *dir, int ready_fd)
{
    if (!opts || !dir)
        return dray_set_error(DRAY_EINVAL, "dray_cluster_head_run: NULL argument");
    char spath[4200];
    snprintf(spath, sizeof spath, "%s/secret", dir);
    uint8_t secret[32];
    dray_status sst = dray__secret_read(spath, secret);
    if (sst)
        return sst;
    head *h = calloc(1, sizeof(*h));
    if (!h)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    h->heartbeat_timeout_ns = env_ms("DRAY_HEARTBEAT_TIMEOUT_MS", 3000) * 1000000;
    dray__loop_ops ops = {on_message, NULL, on_close, on_tick};
    dray__loop *l;
    dray_status st = dray__loop_create(&ops, h, secret, opts->bind ? opts->bind : "127.0.0.1",
                                       opts->port, &l);
    if (st) {
        free(h);
        return st;
    }
    dray__log("head listening on %s:%d", opts->bind ? opts->bind : "127.0.0.1",
              dray__loop_port(l));
    void *dash = NULL;
    if (dray__dashboard_head_start) {
        if (dray__dashboard_head_start(dir, opts->bind, dray__loop_port(l), &dash) == DRAY_OK)
            dray__log("dashboard at %s/dashboard.url", dir);
        else
            dray__log("no dashboard: %s", dray_last_error());
    }
    h->dash = dash;
    if (ready_fd >= 0) {
        char line[32];
        int len = snprintf(line, sizeof line, "%d\n", dray__loop_port(l));
        ssize_t w = write(ready_fd, line, (size_t)len);
        (void)w;
        close(ready_fd);
    }
    dray__loop_run(l, true);
    h->dash = NULL;
    if (dash)
        dray__dashboard_head_stop(dash);
    dray__loop_destroy(l);
    for (int i = 0; i < h->n_nodes; i++) {
        dray__conn_release(h->nodes[i].conn);
        dray_value_release(&h->nodes[i].res);
    }
    for (int i = 0; i < h->n_drivers; i++)
        dray__conn_release(h->drivers[i]);
    free(h);
    dray__log("head stopped");
    return DRAY_OK;
}

dray_status dray_cluster_status(const char *address, dray_value *out)
{
    if (!address || !out)
        return dray_set_error(DRAY_EINVAL, "dray_cluster_status: NULL argument");
    uint8_t secret[32];
    dray_status st = dray__secret_load(address, secret);
    if (st)
        return st;
    dray_value nul = dray_null(), v;
    if ((st = dray__request(address, secret, DRAY__MSG_STATUS_REQ, &nul, 5000, &v)))
        return st;
    if (v.type != DRAY_T_MAP) {
        dray_value_release(&v);
        return dray_set_error(DRAY_EFORMAT, "%s answered the status request with a %s", address,
                              "non-map");
    }
    *out = v;
    return DRAY_OK;
}
