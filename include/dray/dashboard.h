/* dray dashboard: event recording in the runtime, a live web dashboard (JSON API under /api/v0/, an
 * embedded page, Prometheus /metrics) and an offline performance report.
 *
 * Recording is off until dray_events_enable (or dray_dashboard_start / dray_dashboard_record) turns
 * it on for a runtime; it then stays on until dray_shutdown. Each thread that runs tasks writes its
 * own ring (no lock, no atomic read-modify-write); runs of short tasks of one function are coalesced
 * into blocks with a count. Thread-safety: every function may be called from any thread.
 * Ownership is stated per declaration.
 */
#ifndef DRAY_DASHBOARD_H
#define DRAY_DASHBOARD_H

#include "dray/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Events =========================================================================================
 * What the task stream shows. Tasks are recorded by the core; other modules add their own. */
typedef enum dray_event_kind {
    DRAY_EVENT_TASK = 0,     /* a block of `count` tasks of one function that succeeded */
    DRAY_EVENT_ERROR = 1,    /* one task that failed (status set) */
    DRAY_EVENT_TRANSFER = 2, /* data moved between processes (cluster) */
    DRAY_EVENT_SPILL = 3,    /* data written to disk to free memory */
    DRAY_EVENT_UNSPILL = 4,  /* spilled data read back */
    DRAY_EVENT_SERIALIZE = 5,/* (de)serialisation */
    DRAY__EVENT_KINDS
} dray_event_kind;

/* dray_event_kind_name: "task", "error", "transfer", "spill", "unspill", "serialize" (static). */
DRAY_API const char *dray_event_kind_name(dray_event_kind kind);

/* dray_events_enable: starts recording events on rt (idempotent). DRAY_ENOMEM only. */
DRAY_API dray_status dray_events_enable(dray_runtime *rt);

/* dray_events_enabled: true once recording is on. */
DRAY_API bool dray_events_enabled(dray_runtime *rt);

/* dray_events_now_ns: the clock events use (CLOCK_MONOTONIC, ns). */
DRAY_API int64_t dray_events_now_ns(void);

/* dray_events_record: adds one event (kind other than TASK/ERROR) from module code, e.g. a spill of
 * `bytes` bytes between start_ns and stop_ns (dray_events_now_ns clock). Borrows `name`, which must
 * outlive the runtime (a string literal). Nothing happens while recording is off. */
DRAY_API void dray_events_record(dray_runtime *rt, dray_event_kind kind, const char *name,
                                 int64_t start_ns, int64_t stop_ns, uint64_t bytes);

/* Gauges modules keep up to date (bytes); shown per node and in /metrics. */
typedef enum dray_gauge {
    DRAY_GAUGE_OBJECT_STORE_BYTES = 0, /* bytes of objects held in memory by a module's store */
    DRAY_GAUGE_SPILLED_BYTES = 1,      /* bytes currently spilled to disk */
    DRAY__GAUGES
} dray_gauge;

/* dray_events_gauge_add: adds `delta` (may be negative) to gauge `g`. Nothing while recording is off. */
DRAY_API void dray_events_gauge_add(dray_runtime *rt, dray_gauge g, int64_t delta);

/* dray_events_gauge: the gauge's current value (0 while recording is off). */
DRAY_API int64_t dray_events_gauge(dray_runtime *rt, dray_gauge g);

/* dray_events_log: appends a line to rt's recent-log ring (the dashboard's log viewer). `level` is
 * "info", "warn" or "error"; `source` names the module. Borrows the strings (copied, truncated to
 * 400 bytes). Nothing while recording is off. */
DRAY_API void dray_events_log(dray_runtime *rt, const char *level, const char *source,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* dray_events_publish: sets the latest JSON snapshot (an object, as text) of item `key` in `section`
 * ("tune": one experiment, "serve": one application), shown by the dashboard's tabs and API.
 * Borrows the strings (copied). Nothing while the dashboard history is off (dray_dashboard_record);
 * DRAY_EINVAL when json is not a JSON object. */
DRAY_API dray_status dray_events_publish(dray_runtime *rt, const char *section, const char *key,
                                         const char *json);

/* ==== Dashboard ======================================================================================*/
typedef struct dray_dashboard dray_dashboard;

typedef struct dray_dashboard_opts {
    const char *bind;        /* IPv4 address; NULL = 127.0.0.1 */
    int port;                /* 0 = any free port */
    const char *token;       /* required (query ?token= or Authorization: Bearer) when bind is not
                              * loopback; NULL there is DRAY_EINVAL. Optional on loopback. */
    const char *cluster_address; /* "HOST:PORT" of a head to show nodes from, or NULL */
    const char *cluster_dir;     /* directory with the cluster's *.log files, or NULL */
} dray_dashboard_opts;

/* dray_dashboard_opts_init: defaults (127.0.0.1, any port, no token, no cluster). */
DRAY_API void dray_dashboard_opts_init(dray_dashboard_opts *opts);

/* dray_dashboard_record: starts recording on rt and the collector that keeps the history the
 * dashboard and dray_performance_report show (idempotent; stops at dray_shutdown). */
DRAY_API dray_status dray_dashboard_record(dray_runtime *rt);

/* dray_dashboard_start: serves the dashboard for rt (may be NULL with opts->cluster_address set: a
 * head's dashboard) and starts recording. Borrows opts. On DRAY_OK, *out is owned: stop it with
 * dray_dashboard_stop() before dray_shutdown(rt) (dray_shutdown stops it too, and then
 * dray_dashboard_stop only frees the handle). A port in use is DRAY_EBUSY naming it. */
DRAY_API dray_status dray_dashboard_start(dray_runtime *rt, const dray_dashboard_opts *opts,
                                          dray_dashboard **out);

/* dray_dashboard_port: the port it listens on. */
DRAY_API int dray_dashboard_port(const dray_dashboard *d);

/* dray_dashboard_url: "http://HOST:PORT/" (static storage of d; valid until dray_dashboard_stop). */
DRAY_API const char *dray_dashboard_url(const dray_dashboard *d);

/* dray_dashboard_stop: stops serving and frees d. NULL-safe. */
DRAY_API void dray_dashboard_stop(dray_dashboard *d);

/* dray_dashboard_from_env: when DRAY_DASHBOARD=PORT is set (0 = any port), starts a dashboard for rt
 * on 127.0.0.1:PORT and prints its URL on stderr; *out is NULL when the variable is unset. */
DRAY_API dray_status dray_dashboard_from_env(dray_runtime *rt, dray_dashboard **out);

/* dray_dashboard_api: answers one API request in-process, as the server would: `path` with an
 * optional "?query". On DRAY_OK, *status gets the HTTP status and *body a malloc'd NUL-terminated
 * body (free with dray_free); *content_type a static string. For tests, tools and the fuzzer. */
DRAY_API dray_status dray_dashboard_api(dray_dashboard *d, const char *path, int *status,
                                        char **body, const char **content_type);

/* ==== Offline report =================================================================================*/

/* dray_performance_report: writes one self-contained HTML file of rt's recorded run (task stream,
 * per-function times, memory over time) to `path`. Recording must be on (dray_dashboard_record
 * before the work): else DRAY_EINVAL. Borrows path. */
DRAY_API dray_status dray_performance_report(dray_runtime *rt, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* DRAY_DASHBOARD_H */
