/* dray serve: HTTP model serving. Deployments are C "classes" registered by name (init/call/optional
 * batch call/health check/reconfigure/free); each runs as a set of replicas behind a router (power of
 * two choices on ongoing requests) with back-pressure, dynamic batching, health checks with restart,
 * rolling updates, autoscaling and graceful draining. An HTTP ingress (serve's own epoll server) maps route
 * prefixes to deployments; JSON in and out (cJSON). Deployments call each other through handles.
 *
 * Thread-safety: every function here may be called from any thread, including from inside a
 * deployment's call (composition). Ownership is stated on each declaration.
 */
#ifndef DRAY_SERVE_H
#define DRAY_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "dray/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Requests and responses =======================================================================*/

/* One request as a deployment sees it. Everything is borrowed for the duration of the call. */
typedef struct dray_serve_request {
    const char *method;  /* "GET", "POST", ... ("CALL" for handle calls) */
    const char *path;    /* the path below the route prefix, starting with '/' */
    const char *body;    /* raw body bytes (not terminated; may be NULL when len is 0) */
    size_t len;
    const cJSON *json;   /* the parsed body: set for handle calls and once dray_serve_request_json ran */
    void *priv_;         /* internal */
    void *conn_;         /* internal: the HTTP connection (inline replicas only) */
    void *kv_;           /* internal: the call owning a snapshot of headers and query arguments */
} dray_serve_request;

/* The answer a deployment fills in. Set one of `json` (taken: serve frees it), `body`+`len` (taken:
 * malloc'd, serve frees it) or `body_static`+`len` (borrowed: must outlive the server, e.g. a string
 * literal); none gives an empty body. status 0 means 200. */
typedef struct dray_serve_response {
    int status;
    cJSON *json;
    char *body;
    const char *body_static;
    size_t len;
    const char *content_type; /* static string; default "application/json" */
} dray_serve_response;

/* dray_serve_request_json: the request's body parsed as JSON (borrowed, lives as long as the request),
 * parsed on the first call. Empty or malformed bodies are DRAY_EFORMAT with dray_last_error naming
 * the byte offset; the server answers such a failure with HTTP 400. */
DRAY_API dray_status dray_serve_request_json(dray_serve_request *req, const cJSON **out);

/* dray_serve_request_query: the value of query parameter `key` ("/p?key=value"), URL-decoded, or
 * NULL (absent, or a handle call). Borrowed: lives as long as the request. */
DRAY_API const char *dray_serve_request_query(const dray_serve_request *req, const char *key);

/* dray_serve_request_header: the value of HTTP header `name` (case-insensitive), or NULL. Borrowed. */
DRAY_API const char *dray_serve_request_header(const dray_serve_request *req, const char *name);

/* dray_serve_response_release: frees what a response holds and zeroes it. NULL-safe. */
DRAY_API void dray_serve_response_release(dray_serve_response *resp);

/* dray_serve_parse_json: parses `len` bytes of untrusted JSON with serve's limits (nesting depth 64).
 * On DRAY_OK *out is owned (cJSON_Delete). Errors: DRAY_EFORMAT naming the offset. */
DRAY_API dray_status dray_serve_parse_json(const char *data, size_t len, cJSON **out);

/* dray_serve_http_status: the HTTP status serve sends for a deployment error `st` (400 for bad input,
 * 404 not found, 503 busy, 504 timeout, 500 otherwise). */
DRAY_API int dray_serve_http_status(dray_status st);

typedef struct dray_serve dray_serve;
typedef struct dray_serve_handle dray_serve_handle;

/* ==== Deployment classes ===========================================================================
 * Callbacks run on serve's threads; one replica's callbacks never run concurrently with each other,
 * so `state` needs no lock. Returning non-OK with dray_set_error() reports the message to the client;
 * DRAY_EFATAL from call or health_check marks the replica dead: it is replaced. */
typedef struct dray_serve_class {
    const char *name;
    /* Builds a replica's state from `user_config` (borrowed; NULL when none). `serve` (borrowed) is
     * the instance, for dray_serve_get_handle (composition). Required. */
    dray_status (*init)(dray_serve *serve, const cJSON *user_config, void **state);
    /* Answers one request. Required unless batch_call is set. */
    dray_status (*call)(void *state, dray_serve_request *req, dray_serve_response *resp);
    /* Answers n requests at once (dynamic batching); resps[i] answers reqs[i]. A non-OK return fails
     * the whole batch; per-request errors go in resps[i].status (>= 400). Optional. */
    dray_status (*batch_call)(void *state, dray_serve_request *const *reqs, size_t n,
                              dray_serve_response *resps);
    /* Applies a new user_config without a restart. Optional (without it a config change restarts). */
    dray_status (*reconfigure)(void *state, const cJSON *user_config);
    /* Returns DRAY_OK when healthy. Optional. */
    dray_status (*health_check)(void *state);
    /* Frees the state. Required. */
    void (*destroy)(void *state);
    struct dray_serve_class *next; /* registry link */
} dray_serve_class;

/* dray_serve_class_register: adds a class to the process-wide registry (load time; dlopen'ed
 * modules register from their constructors). A name registered twice keeps the first. */
DRAY_API void dray_serve_class_register(dray_serve_class *cls);

/* dray_serve_class_find: the class registered as `name`, or NULL with dray_last_error naming it. */
DRAY_API const dray_serve_class *dray_serve_class_find(const char *name);

/* DRAY_SERVE_CLASS(var): registers the dray_serve_class `var` at load time. */
#define DRAY_SERVE_CLASS(var)                                                                    \
    __attribute__((constructor)) static void dray__serve_reg_##var(void)                         \
    {                                                                                            \
        dray_serve_class_register(&(var));                                                       \
    }

/* ==== Serve instance ===============================================================================*/
typedef struct dray_serve_opts {
    const char *host;            /* default "127.0.0.1" */
    int port;                    /* 0: ephemeral (read it with dray_serve_port); -1: no HTTP */
    int threads;                 /* ingress threads; default 2 */
    size_t max_body_bytes;       /* larger bodies get 413; default 1 MiB */
    int request_timeout_s;       /* idle connections closed after this, and a deployment call not
                                  * answered within it gets 504 (off-thread replicas); default 30 */
    int max_connections;         /* default 4096 */
    size_t connection_memory;    /* per-connection header/read buffer (MHD pool); default 8 KiB */
    double control_period_s;     /* health/autoscaling loop period; default 0.05 */
    dray_runtime *rt;            /* borrowed, must outlive the instance; optional: replicas become
                                  * its actors, handle submits run on it */
    bool remote_replicas;        /* replicas as actors that take and return values only (no
                                  * pointers), so that a runtime attached to a cluster
                                  * (dray_config.address) places them on its nodes; required with
                                  * such a runtime. The class must be registered on the nodes
                                  * (same program, or a library they load); no batching there */
    bool inline_replicas;        /* run replicas in the calling thread (under a per-replica lock)
                                  * even with a runtime: no thread hop, the fastest path */
} dray_serve_opts;

/* dray_serve_opts_init: fills *opts with the defaults. */
DRAY_API void dray_serve_opts_init(dray_serve_opts *opts);

/* dray_serve_start: starts the ingress and the controller. Borrows opts. On DRAY_OK *out is owned:
 * end it with dray_serve_shutdown(). Port in use: DRAY_ENET naming host:port. */
DRAY_API dray_status dray_serve_start(const dray_serve_opts *opts, dray_serve **out);

/* dray_serve_port: the bound HTTP port (0 without HTTP). */
DRAY_API int dray_serve_port(const dray_serve *s);

/* dray_serve_shutdown: stops accepting, drains in-flight requests for up to `drain_timeout_s`, frees
 * every deployment and the instance. Handles become invalid. NULL-safe. */
DRAY_API dray_status dray_serve_shutdown(dray_serve *s, double drain_timeout_s);

/* dray_serve_wait_shutdown_request: blocks until a client POSTs /-/shutdown or `timeout_s` passes
 * (<0: forever). Returns DRAY_OK when asked, DRAY_ETIMEDOUT otherwise. */
DRAY_API dray_status dray_serve_wait_shutdown_request(dray_serve *s, double timeout_s);

/* ==== Deployments ==================================================================================*/
typedef struct dray_serve_deployment_opts {
    const char *name;               /* deployment name; default: the class name */
    const char *class_name;         /* registered dray_serve_class; required */
    const char *route_prefix;       /* HTTP prefix ("/predict"); NULL: reachable by handle only */
    const char *user_config;        /* JSON text handed to init/reconfigure; NULL: none */
    const char *version;            /* a change triggers a rolling update; NULL = "1"; <= 40 chars */
    int num_replicas;               /* default 1 (ignored when autoscaling) */
    int max_ongoing_requests;       /* per replica, beyond it 503; default 100 */
    int max_batch_size;             /* > 1 with batch_call: dynamic batching; default 1 */
    double batch_wait_timeout_s;    /* default 0.01 */
    double health_check_period_s;   /* default 10 */
    double health_check_timeout_s;  /* a check running, or any one callback running, longer than
                                     * this marks the replica stuck: it is replaced; default 30 */
    double request_timeout_s;       /* a call not answered within it gets 504 / DRAY_ETIMEDOUT
                                     * (replicas on a runtime; not inline ones); 0: the instance's
                                     * request_timeout_s */
    double num_cpus;                /* CPUs per replica: checked against the runtime's workers
                                     * (DRAY_ERESOURCE), not reserved; default 1 */
    bool actor_calls;               /* HTTP calls on local actor replicas go through the actor's
                                     * mailbox on the runtime's pool (a thread hop) instead of
                                     * running in the ingress thread that read them; default false */
    /* Autoscaling, on when max_replicas > 0. */
    int min_replicas;
    int max_replicas;
    double target_ongoing_requests; /* default 2 */
    double upscale_delay_s;         /* default 30 */
    double downscale_delay_s;       /* default 600 */
} dray_serve_deployment_opts;

/* dray_serve_deployment_opts_init: fills *opts with the defaults (no class, no route). */
DRAY_API void dray_serve_deployment_opts_init(dray_serve_deployment_opts *opts);

/* dray_serve_run: deploys (or updates) a deployment and waits until its replicas are up. Borrows
 * opts. Deploying an existing name updates it: a new version or class rolls the replicas one at a
 * time, a new user_config alone reconfigures them in place, a new replica count scales. On DRAY_OK,
 * *out (optional) is a borrowed handle valid until dray_serve_delete or dray_serve_shutdown. Errors:
 * unknown class DRAY_ENOTFOUND, bad user_config DRAY_EFORMAT, route taken DRAY_EINVAL, init failure
 * its status; each names the deployment. */
DRAY_API dray_status dray_serve_run(dray_serve *s, const dray_serve_deployment_opts *opts,
                                    dray_serve_handle **out);

/* dray_serve_delete: drains and removes deployment `name`. DRAY_ENOTFOUND if there is none. */
DRAY_API dray_status dray_serve_delete(dray_serve *s, const char *name, double drain_timeout_s);

/* dray_serve_get_handle: the deployment called `name` (borrowed), or DRAY_ENOTFOUND. */
DRAY_API dray_status dray_serve_get_handle(dray_serve *s, const char *name,
                                           dray_serve_handle **out);

/* dray_serve_handle_call: calls the deployment in-process (no HTTP) with `body` (borrowed; may be
 * NULL). Waits for the answer. Returns DRAY_OK with *out filled (release it with
 * dray_serve_response_release), or the deployment's error: DRAY_EBUSY when every replica is at
 * max_ongoing_requests. */
DRAY_API dray_status dray_serve_handle_call(dray_serve_handle *h, const cJSON *body,
                                            dray_serve_response *out);

/* dray_serve_handle_submit: the same as a task on `rt`: returns at once with an owned ref whose value
 * is the response body as a string (JSON text); a failed call is an error value. */
DRAY_API dray_status dray_serve_handle_submit(dray_runtime *rt, dray_serve_handle *h,
                                              const cJSON *body, dray_ref **out);

/* Statistics of one deployment. */
typedef struct dray_serve_stats {
    int replicas;            /* live replicas */
    int target_replicas;     /* what the controller aims for */
    int64_t ongoing;         /* requests in replicas now */
    uint64_t requests;       /* answered by a replica (any status) */
    uint64_t rejected;       /* 503 back-pressure */
    uint64_t errors;         /* calls that returned an error */
    uint64_t batches;        /* batch calls made */
    uint64_t batched_requests; /* requests answered by batch calls */
    int max_batch_seen;      /* largest batch made */
    uint64_t restarts;       /* replicas replaced after a failure */
    uint64_t reconfigures;   /* in-place user_config updates */
    double call_seconds;     /* total time spent in call/batch_call */
} dray_serve_stats;

/* dray_serve_handle_stats: a snapshot of the deployment's counters. */
DRAY_API void dray_serve_handle_stats(dray_serve_handle *h, dray_serve_stats *out);

/* dray_serve_handle_kill_replica: marks replica `index` (0-based among live ones) dead, as a crash
 * would; in-flight calls finish and the controller starts a replacement. DRAY_ERANGE if none. */
DRAY_API dray_status dray_serve_handle_kill_replica(dray_serve_handle *h, int index);

/* dray_serve_status_json: the instance's state (deployments, replicas, routes, counters) as JSON.
 * On DRAY_OK *out is owned (cJSON_Delete). */
DRAY_API dray_status dray_serve_status_json(dray_serve *s, cJSON **out);

/* ==== Config files =================================================================================
 * `dray serve run CONFIG.yaml`. The YAML has `http_options: {host, port, ...}` and `applications:`,
 * a list of {name, route_prefix, import_path: "lib.so:ClassName", deployments: [{name, num_replicas,
 * max_ongoing_requests, max_batch_size, batch_wait_timeout_s, user_config, autoscaling_config: {...},
 * ...}]}. */
typedef struct dray_serve_config dray_serve_config;

/* dray_serve_config_load: parses the YAML file at `path`. Errors name the file, line and column.
 * On DRAY_OK *out is owned: dray_serve_config_destroy(). */
DRAY_API dray_status dray_serve_config_load(const char *path, dray_serve_config **out);

/* dray_serve_config_parse: the same from a string; `name` labels errors. */
DRAY_API dray_status dray_serve_config_parse(const char *text, size_t len, const char *name,
                                             dray_serve_config **out);

/* dray_serve_config_destroy: frees a config (dlopen'ed libraries stay loaded). NULL-safe. */
DRAY_API void dray_serve_config_destroy(dray_serve_config *cfg);

/* dray_serve_config_http: fills *opts (whose defaults the caller set) from http_options. */
DRAY_API void dray_serve_config_http(const dray_serve_config *cfg, dray_serve_opts *opts);

/* dray_serve_config_apply: loads each application's library (dlopen) and deploys its deployments.
 * Errors name the application and deployment. */
DRAY_API dray_status dray_serve_config_apply(const dray_serve_config *cfg, dray_serve *s);

/* ==== Built-in model: logistic regression ===========================================================
 * A small real model for demos, tests and benchmarks, also a built-in deployment class named
 * "LogisticRegression": user_config {"model_path": FILE}; a request {"features": [x1..xd]} gets
 * {"probability": p, "label": 0|1}; {"instances": [[...], ...]} gets {"predictions": [p...]}. With
 * max_batch_size > 1 single-feature requests are batched. */
typedef struct dray_serve_logreg {
    size_t dim;
    double bias;
    double *w; /* dim weights */
} dray_serve_logreg;

/* dray_serve_logreg_fit: trains by full-batch gradient descent on x (n rows of dim, row-major) and
 * labels y (0/1), `epochs` steps of rate `lr`. Borrows x, y. On DRAY_OK *out is filled (release with
 * dray_serve_logreg_fini). */
DRAY_API dray_status dray_serve_logreg_fit(const double *x, const double *y, size_t n, size_t dim,
                                           int epochs, double lr, dray_serve_logreg *out);

/* dray_serve_logreg_save / _load: the model as a text file ("dray-logreg 1", dim, bias, weights).
 * Load errors name the file and line. On DRAY_OK from load, *out is filled (dray_serve_logreg_fini). */
DRAY_API dray_status dray_serve_logreg_save(const dray_serve_logreg *m, const char *path);
DRAY_API dray_status dray_serve_logreg_load(const char *path, dray_serve_logreg *out);

/* dray_serve_logreg_predict: P(y=1 | x) for one row of m->dim values. */
DRAY_API double dray_serve_logreg_predict(const dray_serve_logreg *m, const double *x);

/* dray_serve_logreg_fini: frees the weights. NULL-safe. */
DRAY_API void dray_serve_logreg_fini(dray_serve_logreg *m);

/* ==== HTTP client (for the CLI, tests and examples) ================================================*/

/* dray_serve_http_request: one blocking HTTP/1.1 request to host:port. Borrows everything. On DRAY_OK,
 * *status is the HTTP status and *resp (optional) an owned NUL-terminated body: free it with
 * dray_free(). */
DRAY_API dray_status dray_serve_http_request(const char *host, int port, const char *method,
                                             const char *path, const char *body, size_t len,
                                             double timeout_s, int *status, char **resp);

#ifdef __cplusplus
}
#endif
#endif /* DRAY_SERVE_H */
