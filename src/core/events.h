/* Event recording internals shared by the core (events.c) and the dashboard module: the runtime's
 * event state, drained blocks, recent logs. Nothing here is public API. */
#ifndef DRAY_CORE_EVENTS_H
#define DRAY_CORE_EVENTS_H

#include "internal.h"
#include "dray/dashboard.h"

#define DRAY__LOG_LINES 1024

/* A recorded block in clock ticks (ring storage). */
typedef struct dray__evblock {
    uint64_t t0, t1;
    const char *name;
    uint64_t bytes;
    uint32_t count;
    uint16_t kind;  /* dray_event_kind */
    int16_t status; /* dray_status of a failed task */
} dray__evblock;

/* A drained event, in dray_events_now_ns time. row: worker index, or -2 - k for external thread k
 * (module events from threads that run no tasks have row -1 and tid 0). */
typedef struct dray__ev {
    int64_t start_ns, stop_ns;
    const char *name;
    uint64_t bytes;
    uint32_t count;
    uint16_t kind;
    int16_t status;
    int row;
    int tid;
} dray__ev;

typedef struct dray__logline {
    uint64_t seq;
    int64_t t_ns;
    char level[8];
    char source[32];
    char text[400];
} dray__logline;

typedef struct dray__evthread_info {
    int row, tid;
} dray__evthread_info;

/* A graph's progress as the dashboard reads it. */
typedef struct dray__graph_info {
    uint64_t id;
    uint32_t tasks, done, failed;
    bool submitted;       /* all its tasks are submitted (tasks is final) */
    int64_t start_ns, last_ns;
} dray__graph_info;

typedef struct dray__events {
    pthread_mutex_t lock;       /* threads list, misc ring, logs, observer */
    pthread_mutex_t drain_lock; /* one drainer at a time */
    uint64_t tick0;
    int64_t ns0;
    double ns_per_tick;
    uint64_t age_ticks, visible_ticks, spacing_ticks;
    struct dray__evthread *threads;
    int n_external;
    dray__evblock *misc;
    int misc_rows[4096];
    uint64_t misc_head, misc_tail;
    _Atomic int64_t gauges[DRAY__GAUGES];
    dray__logline logs[DRAY__LOG_LINES];
    uint64_t log_seq;
    struct dray__evgraph *graphs; /* newest first */
    uint64_t n_graphs;
    void *observer;               /* the dashboard's history (src/dashboard) */
    void (*observer_stop)(void *);
} dray__events;

/* rt's event state, or NULL while recording is off. */
dray__events *dray__events_of(dray_runtime *rt);

/* Calls cb for every block recorded since the last drain (one drainer at a time); *dropped gets the
 * tasks lost to full rings since recording began. Returns the number of blocks. */
size_t dray__events_drain(dray_runtime *rt, void (*cb)(void *ctx, const dray__ev *e), void *ctx,
                          uint64_t *dropped);

/* Copies up to `max` log lines with seq >= since (the most recent ones when there are more) to out;
 * *next gets the cursor for the next call. */
size_t dray__events_logs(dray_runtime *rt, uint64_t since, dray__logline *out, size_t max,
                         uint64_t *next);

/* Calls cb(name, n) with counts of tasks submitted per function (one call per thread and function;
 * the caller sums). Approximate by a run in flight while submissions race. */
size_t dray__events_submitted(dray_runtime *rt, void (*cb)(void *ctx, const char *name, uint64_t n),
                              void *ctx);

/* Copies the newest `max` graphs' progress to out; returns how many. */
size_t dray__events_graphs(dray_runtime *rt, dray__graph_info *out, size_t max);

/* The recording threads (row, Linux tid), up to max. */
size_t dray__events_threads(dray_runtime *rt, dray__evthread_info *out, size_t max);

/* Installs `obs` as rt's observer (stopped by dray_shutdown through `stop`) unless one is there;
 * *cur gets the observer in place. Recording must be on. Returns true if obs was installed. */
bool dray__events_set_observer(dray_runtime *rt, void *obs, void (*stop)(void *), void **cur);

/* For wrapper tasks (the cluster's executor task runs a driver's function): called inside the
 * running task, names its block after `fn` instead of the wrapper (runs of one name still coalesce). */
void dray__ev_task_rename(dray_runtime *rt, const dray_function *fn);
/* The task running on this thread failed with st: its own error block (the wrapper succeeds). */
void dray__ev_task_failed(dray_runtime *rt, int st);
/* A run of `fn` on a thread outside any runtime task (a loop thread running work inline): begin,
 * then end with its status; the block is closed at the end. No-ops while recording is off. */
void dray__ev_run_begin(dray_runtime *rt, const dray_function *fn);
void dray__ev_run_end(dray_runtime *rt, int st);

#endif /* DRAY_CORE_EVENTS_H */
