/* Internals of the dashboard module: the history a collector thread keeps from the runtime's events
 * (task stream, per-function totals, samples over time), /proc readers, query parsing, the API
 * answering requests and the embedded page files. */
#ifndef DRAY_DASHBOARD_INTERNAL_H
#define DRAY_DASHBOARD_INTERNAL_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/events.h"
#include "dray/dashboard.h"

/* ==== History (history.c) ==== */
#define DB_STREAM 65536 /* task-stream events kept (the `since` cursor's window) */
#define DB_SAMPLES 3600 /* samples over time, one per second */
#define DB_FNS 1024     /* task groups tracked */
#define DB_ROWS 512     /* threads tracked */

typedef struct db_fn {
    const char *name; /* static (a registered function's or module's name) */
    uint64_t done, failed, submitted, transfer_bytes, spill_bytes;
    int64_t total_ns, max_ns, first_ns, last_ns;
} db_fn;

typedef struct db_row {
    int row, tid;
    uint64_t tasks;
    int64_t busy_ns, last_ns;
    double cpu_pct;        /* over the last second */
    uint64_t cpu_ticks;    /* utime+stime at the last sample */
    bool sampled;
} db_row;

typedef struct db_sample {
    int64_t t_ns;
    uint64_t rss, object_store, spilled, tasks_done, objects_live;
    double cpu_pct;
} db_sample;

#define DB_ITEMS 128
typedef struct db_item {
    char section[16];
    char key[96];
    cJSON *json;
    int64_t t_ns;
} db_item;

typedef struct db_history {
    dray_runtime *rt;
    pthread_mutex_t lock;     /* everything below */
    pthread_cond_t cond;
    pthread_t thread;
    bool stop;
    bool thread_started;
    int64_t start_ns;
    /* The task stream: events by sequence number. */
    dray__ev stream[DB_STREAM];
    uint64_t seq;             /* events seen */
    uint64_t dropped;         /* tasks lost to full per-thread rings */
    db_fn fns[DB_FNS];
    size_t n_fns;
    db_row rows[DB_ROWS];
    size_t n_rows;
    db_sample samples[DB_SAMPLES];
    uint64_t n_samples;
    int64_t last_sample_ns;
    uint64_t proc_ticks;      /* process utime+stime at the last sample */
    struct dray_dashboard *servers; /* started on this history (stopped with it) */
    db_item items[DB_ITEMS];  /* published snapshots */
    size_t n_items;
    struct db_cluster *cl;    /* a head's history of its nodes' events (cluster.c); else NULL */
} db_history;

/* ==== A head's history of its nodes' task events (cluster.c) ====
 * Rows are node * DB_ROW_NODE + r: r an executor index (< 500), 500 other, 501 + k external thread
 * k, 999 the node's object store (transfers and spills from its heartbeats' counters). */
#define DB_ROW_NODE 1000
#define DB_CNODES 1024
#define DB_CNAMES 4096

typedef struct db_cnode {
    bool seen;                     /* sent EVENTS: it records */
    int64_t offset_ns, rtt_ns;     /* node clock minus head clock, from the best recent sample */
    int64_t off_samples[16][2];    /* recent (offset, round trip) samples */
    uint64_t n_off;
    uint64_t dropped;              /* tasks lost to its full rings */
    uint64_t done, failed;         /* task events received */
    int64_t store[32];             /* last heartbeat's object-store counters */
    int64_t rss, tasks_done, ping_ns;
    bool pinged;
} db_cnode;

typedef struct db_cluster {
    _Atomic bool watched;       /* a client asked for the API: nodes should record */
    db_cnode nodes[DB_CNODES];
    char *names[DB_CNAMES];     /* interned function and event names (owned) */
    size_t n_names;
    int64_t last_sample_ns;
} db_cluster;

/* A head's history (no runtime, no collector: the head's loop feeds it). Freed by
 * db_history_free_cluster. */
dray_status db_history_cluster(db_history **out);
void db_history_free_cluster(db_history *h);
/* Adds one event to the stream and the totals (h->lock held). */
void db_history_add(db_history *h, const dray__ev *e);
/* The name of stream row `row` of h into buf. */
const char *db_row_name(const db_history *h, int row, char *buf, size_t size);

/* rt's history, created (with recording and its collector) on first use. */
dray_status db_history_get(dray_runtime *rt, db_history **out);
/* Drains the runtime's rings now (the collector does it every 100 ms). */
void db_history_collect(db_history *h);
/* The function entry for `name` (locked), or NULL when the table is full. */
db_fn *db_history_fn(db_history *h, const char *name);

/* ==== /proc (sys.c) ==== */
uint64_t db_proc_rss(void);
/* utime+stime of the process (tid 0) or of one of its threads, in clock ticks. */
uint64_t db_proc_cpu_ticks(int tid);
long db_clock_ticks_per_s(void);

/* ==== Queries (query.c) ==== */
#define DB_MAX_PARAMS 16
typedef struct db_query {
    char path[256];
    size_t n;
    char key[DB_MAX_PARAMS][32];
    char val[DB_MAX_PARAMS][128];
} db_query;

/* Splits "path?k=v&..." (percent-decoded) into q. Malformed input is DRAY_EINVAL naming it. */
dray_status db_query_parse(const char *target, db_query *q);
/* The value of `key`, or NULL. */
const char *db_query_get(const db_query *q, const char *key);
/* Reads an unsigned integer parameter within [0, max] (dflt when absent). DRAY_EINVAL if malformed. */
dray_status db_query_u64(const db_query *q, const char *key, uint64_t dflt, uint64_t max,
                         uint64_t *out);
/* True when a static path is safe: no "..", no "//", no backslash, no control characters. */
bool db_path_safe(const char *path);

/* ==== Embedded files (generated from src/dashboard/web at build time) ==== */
typedef struct db_asset {
    const char *path; /* "/index.html" */
    const unsigned char *data;
    size_t len;
} db_asset;
extern const db_asset dray__dashboard_assets[];
extern const size_t dray__dashboard_n_assets;
const db_asset *db_asset_find(const char *path);
const char *db_content_type(const char *path);

/* ==== Server (server.c) ==== */
/* Stops d's HTTP daemon (the runtime is shutting down); d itself stays for dray_dashboard_stop. */
void db_server_halt(struct dray_dashboard *d);

/* ==== API (api.c) ==== */
struct dray_dashboard {
    dray_runtime *rt;
    db_history *h;            /* the runtime's history, or a head's (h->cl) */
    struct MHD_Daemon *mhd;
    int port;
    char url[96];
    char *token;
    char *cluster_address;
    char *cluster_dir;
    bool loopback;
    struct dray_dashboard *next_in_history;
    _Atomic int stopped;      /* by the runtime's shutdown */
};

/* Answers one GET request: status, body (malloc'd) and content type. */
void db_api_answer(struct dray_dashboard *d, const char *target, int *status, char **body,
                   size_t *len, const char **ctype);

/* Builds the JSON of a route (helpers for the report too). */
cJSON *db_json_tasks(db_history *h);
cJSON *db_json_stream(db_history *h, uint64_t since, uint64_t limit);
cJSON *db_json_memory(db_history *h);

/* Source snapshots from other modules (weak: present when linked). */
cJSON *dray__tune_snapshot_json(void) __attribute__((weak));
cJSON *dray__serve_snapshot_json(void) __attribute__((weak));

#endif /* DRAY_DASHBOARD_INTERNAL_H */
