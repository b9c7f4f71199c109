/* serve internals shared by the ingress (http.c), the deployments and router (deploy.c), the
 * controller (control.c) and the config loader (config.c). */
#ifndef DRAY_SERVE_INTERNAL_H
#define DRAY_SERVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "dray/serve.h"

#define DRAY__SERVE_JSON_DEPTH 64

typedef struct dray__serve_replica dray__serve_replica;
typedef struct dray__serve_call dray__serve_call;

/* One request on its way to a replica. Off-thread calls (actor replicas, batching) own everything
 * the callback can see (method, path, body, a snapshot of headers and query arguments), so that a
 * call abandoned on timeout stays valid until its callback returns. Two parties hold references:
 * the waiter (HTTP connection or handle caller) and the executor (the actor method or batch, while
 * it may still run). The result is delivered once: whoever moves `state` from PENDING (executor,
 * timeout, dead actor) fills st/resp/err, gives the replica's slot back and runs `done`. */
enum { DRAY__CALL_PENDING = 0, DRAY__CALL_CLAIMED = 1, DRAY__CALL_FINISHED = 2 };

struct dray__serve_call {
    dray_serve_request req;
    dray_serve_response resp;
    dray_status st;
    char err[256];
    void (*done)(dray__serve_call *c); /* runs once the result is in (any thread); may be NULL */
    void *done_arg;
    dray__serve_call *next, *prev;     /* batch queue; the instance's pending list */
    atomic_int state;
    atomic_int refs;
    dray__serve_replica *replica;      /* holds a slot until the result is delivered */
    dray_ref *ref;                     /* the actor call; owned by the waiter */
    double deadline;                   /* monotonic seconds; 0: none */
    bool listed;                       /* on the instance's pending list (under plock) */
    bool tracked;                      /* was put on that list for this request */
    bool remote;                       /* on a remote replica: finished from its ref's value */
    char ctype[64];                    /* a remote answer's content type */
    /* Owned storage. */
    char *buf;                         /* body */
    size_t cap;
    char method[16];
    char path[128];
    char *path_heap;
    char *kv;                          /* "name\0value\0" pairs: headers, then query arguments */
    size_t kv_len, kv_cap, kv_headers; /* kv_headers: bytes of the header part */
    cJSON *json_copy;                  /* handle calls: an owned copy of the caller's body */
};

/* Shared by a replica and its actor's state (refcounted): what the controller reads to tell a stuck
 * replica from a busy one, without going through the replica's mailbox. */
typedef struct dray__serve_live {
    atomic_int refs;
    atomic_int_least64_t busy_since_ns; /* a callback started then (monotonic ns); 0: idle */
    /* Held around every callback on the actor's state, by the actor's methods and by ingress
     * threads running a call in place (dray__serve_replica_call_here); guards `astate`. */
    pthread_mutex_t cb_mu;
    void *astate;                       /* the actor's state while the actor lives */
} dray__serve_live;

struct dray__serve_replica {
    struct dray_serve_handle *dep;
    const dray_serve_class *cls;
    void *state;              /* direct mode: the class's state */
    dray_runtime *rt;         /* actor mode: the runtime and the replica's actor */
    dray_actor *actor;
    dray__serve_live *live;
    bool remote;              /* a dray_serve_RemoteReplica actor (placed by a cluster runtime) */
    struct dray__serve_health *health; /* a health check in flight (controller only) */
    uint64_t id;
    char version[64];
    atomic_int ongoing;       /* requests routed here and not answered yet */
    atomic_bool dead;         /* crashed or failed a health check: route nowhere, replace */
    atomic_bool draining;     /* leaving (rolling update, downscale): route nowhere, free when idle */
    pthread_mutex_t lock;     /* serialises the class's callbacks on `state` */
    double last_health;       /* controller only */
    /* Batching. */
    size_t max_batch;
    double batch_wait;
    pthread_t batcher;
    bool has_batcher;
    bool stop;                /* under qlock */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    dray__serve_call *qhead, *qtail;
    size_t qlen;
};

#define DRAY__SERVE_LAT_BUCKETS 96 /* call-latency histogram (snapshot.c) */
struct dray_serve_handle {
    dray_serve *serve;
    char *name;
    char *route;              /* NULL: no HTTP route */
    size_t route_len;
    dray_serve_deployment_opts opts; /* strings point into the owned copies below */
    char *class_name, *user_config_text, *version;
    cJSON *user_config;
    const dray_serve_class *cls;
    pthread_rwlock_t rw;      /* guards the replica array */
    dray__serve_replica **replicas;
    int n_replicas, cap_replicas;
    atomic_int target;        /* replicas wanted (controller, dray_serve_run) */
    atomic_uint_fast64_t rng;
    atomic_int max_ongoing;   /* copies of opts read by the request path */
    atomic_llong timeout_us;  /* request timeout (0: the instance's) */
    atomic_bool actor_calls;  /* HTTP calls through the actor's mailbox (opts.actor_calls) */
    atomic_bool autoscaling;
    /* Counters. */
    atomic_uint_fast64_t requests, rejected, errors, batches, batched_requests, restarts,
        reconfigures;
    atomic_int max_batch_seen;
    atomic_uint_fast64_t call_ns;
    /* Dashboard (snapshot.c): call latencies, and what the last snapshot saw (controller only). */
    atomic_uint_fast64_t lat_hist[DRAY__SERVE_LAT_BUCKETS];
    uint64_t pub_hist[DRAY__SERVE_LAT_BUCKETS], pub_requests;
    /* Autoscaling memory (controller only). */
    double above_since, below_since;
    /* Replica start failures (under serve->lock): retry after a back-off; dray_serve_run reports
     * the last one instead of waiting. */
    double retry_at;
    unsigned start_failures;
    dray_status start_status;
    char start_error[256];
    /* Scale-from-zero waiters. */
    pthread_mutex_t zlock;
    pthread_cond_t zcond;
    atomic_int waiting_for_zero;
    struct dray_serve_handle *next;
};

struct dray_serve {
    dray_serve_opts opts;
    char host[64];
    int port;
    struct dray__serve_ingress *ingress; /* the HTTP server (ingress.c) */
    pthread_mutex_t lock;     /* deployment list, routes */
    struct dray_serve_handle *deps;
    pthread_rwlock_t routes_rw; /* ingress reads the list, deploy/delete write */
    atomic_int inflight;      /* HTTP requests being answered */
    atomic_uint_fast64_t http_requests, http_ns; /* answered, and time from headers to answer */
    atomic_bool stopping;
    atomic_bool expire_all;   /* shutdown past its drain deadline: finish every pending call now */
    /* HTTP calls in flight on actor replicas, for the timeout sweeper. */
    pthread_mutex_t plock;
    pthread_cond_t pcond;
    dray__serve_call *pending;
    pthread_t sweeper;
    bool sweeper_started, sweeper_stop;
    /* Controller. */
    pthread_t controller;
    bool controller_started;
    bool controller_stop;
    pthread_cond_t ctl_cond;
    /* Shutdown request (POST /-/shutdown). */
    bool shutdown_requested;
    pthread_cond_t shutdown_cond;
    atomic_uint_fast64_t next_replica_id;
    double pub_time;          /* the last dashboard snapshot (controller only) */
};

/* ---- snapshot.c (dashboard) ---- */
/* Counts n calls that took ns each. */
void dray__serve_latency_record(dray_serve_handle *h, uint64_t ns, uint64_t n);
/* Publishes the instance's deployments on its runtime when it records events (controller thread,
 * s->lock held). */
void dray__serve_publish(dray_serve *s, double now);

/* ---- deploy.c ---- */
/* Picks a replica (power of two choices) and takes a slot on it; waits for a replica when scaled to
 * zero. NULL: refused, with DRAY_EBUSY and the message set (503). */
dray__serve_replica *dray__serve_route(dray_serve_handle *h);
/* Runs the call on r in this thread and gives the slot back. */
dray_status dray__serve_run_inline(dray__serve_replica *r, dray_serve_request *req,
                                   dray_serve_response *resp);
/* The request timeout of h in seconds (its own, else the instance's). */
double dray__serve_timeout(const dray_serve_handle *h);
/* Counts a finished request on h. */
void dray__serve_count(dray_serve_handle *h, dray_status st, int64_t ns);
/* Gives a slot taken by dray__serve_route back without a call. */
void dray__serve_unroute(dray__serve_replica *r);
/* Whether new replicas of h batch. */
bool dray__serve_batches(const dray_serve_handle *h);
/* Queues c on r's batcher (which owns a slot already); c->done runs once answered. */
void dray__serve_enqueue(dray__serve_replica *r, dray__serve_call *c);
/* Fills resp with a JSON error body {"error": ..., "status": ...}. */
void dray__serve_error_response(dray_serve_response *resp, int http_status, const char *msg);
double dray__serve_now(void);
/* *ts = CLOCK_REALTIME now + from_now seconds (for pthread_cond_timedwait). */
void dray__serve_deadline(struct timespec *ts, double from_now);
void dray__serve_handle_destroy(dray_serve_handle *h, double drain_timeout_s);
dray_status dray__serve_replica_start(dray_serve_handle *h, dray__serve_replica **out);
void dray__serve_replica_stop(dray__serve_replica *r);
/* Calls: a new one (one reference, the caller's), dropping a reference, resetting one for reuse. */
dray__serve_call *dray__serve_call_new(void);
void dray__serve_call_unref(dray__serve_call *c);
void dray__serve_call_reset(dray__serve_call *c);
/* Copies method and path into c and points c->req at c's storage (body, header and query
 * snapshot: the caller fills c->kv before, or leaves it empty after a reset). */
dray_status dray__serve_call_own(dray__serve_call *c, const char *method, const char *path);
/* Delivers a result to c unless one was already (returns whether this one was): fills it, counts
 * it, gives the slot back, runs done. Takes *resp (released when not delivered). With
 * drop_executor, also drops the executor's reference (before `done`). */
bool dray__serve_call_finish(dray__serve_call *c, dray_status st, dray_serve_response *resp,
                             const char *err, int64_t ns, bool drop_executor);
/* Starts c on r's actor (c->replica holds a slot): the actor method delivers the result. On DRAY_OK
 * *ref is the actor call's ref (owned). */
dray_status dray__serve_call_submit(dray__serve_replica *r, dray__serve_call *c, dray_ref **ref);
/* Handle call on an actor replica: submits and waits up to the deadline. */
dray_status dray__serve_call_wait(dray__serve_replica *r, dray__serve_call *c);
/* Calls on a local actor replica in the calling thread (no hop): enter returns the actor's state
 * with the replica's callback lock held when nobody else is in one of its callbacks and the actor
 * lives, else NULL (send the call to the actor instead). run_here runs c on it, unlocks, and
 * delivers the result, dropping the executor reference the caller took on c; it returns whether
 * this result was the one delivered (false: a timeout finished c meanwhile). */
void *dray__serve_replica_enter(dray__serve_replica *r);
bool dray__serve_replica_run_here(void *astate, dray__serve_call *c);
/* Whether replica r has been inside one callback longer than `limit_s`. */
bool dray__serve_replica_stuck(dray__serve_replica *r, double limit_s, double *busy_s);
/* Asynchronous health check (controller): starts one, or reads the one in flight. Returns DRAY_OK
 * while healthy or still waiting, an error (message set) once it failed or ran past `timeout_s`. */
dray_status dray__serve_replica_health_poll(dray__serve_replica *r, double timeout_s);
/* Run one callback on the replica's state (actor method or under its lock); errors set here. */
dray_status dray__serve_replica_call(dray__serve_replica *r, dray_serve_request *req,
                                     dray_serve_response *resp);
dray_status dray__serve_replica_batch(dray__serve_replica *r, dray_serve_request *const *reqs,
                                      size_t n, dray_serve_response *resps);
dray_status dray__serve_replica_reconfigure(dray__serve_replica *r, const cJSON *cfg);
/* Kills the replica's actor as a crash would (pending calls fail); no-op in direct mode. */
void dray__serve_replica_crash(dray__serve_replica *r);
/* Marks r dead and wakes the controller to replace it. */
void dray__serve_mark_dead(dray__serve_replica *r);
dray_status dray__serve_add_replica(dray_serve_handle *h);
/* Removes replicas marked dead/draining that are idle; returns how many dead ones were removed. */
int dray__serve_reap(dray_serve_handle *h);
int dray__serve_live_replicas(dray_serve_handle *h);

/* Appends a NUL-terminated string to c's header/query snapshot. */
bool dray__serve_kv_put(dray__serve_call *c, const char *s);

/* ---- remote.c ---- */
dray_status dray__serve_remote_start(dray_serve_handle *h, dray__serve_replica *r);
dray_status dray__serve_remote_submit(dray__serve_replica *r, dray__serve_call *c, dray_ref **ref);
/* Finishes c from its ready ref's value (want_json: parse a JSON body into resp.json). */
bool dray__serve_remote_complete(dray_runtime *rt, dray__serve_call *c, bool want_json);
/* Sends a health check (cfg NULL) or a reconfigure (cfg: JSON text) to a remote replica. */
dray_status dray__serve_remote_send(dray__serve_replica *r, bool health, const char *cfg,
                                    dray_ref **ref);

/* ---- control.c ---- */
dray_status dray__serve_controller_start(dray_serve *s);
void dray__serve_controller_stop(dray_serve *s);
void dray__serve_controller_kick(dray_serve *s);

/* The timeout sweeper (control.c): finishes listed HTTP calls past their deadline (504) or whose
 * actor died before running them. */
dray_status dray__serve_sweeper_start(dray_serve *s);
void dray__serve_sweeper_stop(dray_serve *s);
void dray__serve_pending_add(dray_serve *s, dray__serve_call *c);
void dray__serve_pending_remove(dray_serve *s, dray__serve_call *c);

/* ---- parse.c: the HTTP/1.x request parser ---- */
#define DRAY__SERVE_HTTP_MAX_FIELDS 64
typedef struct dray__serve_http_field {
    uint32_t name, name_len, value, value_len; /* offsets into the parsed buffer */
} dray__serve_http_field;
typedef struct dray__serve_http_head {
    size_t head_len;                 /* bytes up to and including the empty line */
    uint32_t method, method_len, target, target_len;
    int minor;                       /* HTTP/1.minor */
    size_t n_fields;
    dray__serve_http_field fields[DRAY__SERVE_HTTP_MAX_FIELDS];
    uint64_t content_length;
    bool has_length, chunked, keep_alive, expect_continue;
    char error[96];                  /* why the head was refused */
} dray__serve_http_head;
/* Parses the request head at buf[0..len) (at most max_head bytes). Returns 1 when complete (*h
 * filled), 0 when more bytes are needed, else the HTTP status refusing it (400, 417, 431, 505)
 * with h->error set. */
int dray__serve_http_parse(const char *buf, size_t len, size_t max_head, dray__serve_http_head *h);
/* Decodes h's target (in buf) into *path (malloc'd, percent-decoded) and fills c's header and
 * query snapshot (query arguments decoded, '+' as space). Returns 0, or an HTTP status with `err`
 * set (400: the path decodes to a NUL byte; 500: out of memory). */
int dray__serve_http_target(const char *buf, const dray__serve_http_head *h, dray__serve_call *c,
                            char **path, char *err, size_t errlen);

/* ---- ingress.c ---- */
dray_status dray__serve_http_start(dray_serve *s);
/* The supervisor (sweeper thread, plock held): a call running in an ingress thread past its
 * deadline (or any, once expire_all is set) is answered (504 / 503) and its loop handed to a fresh
 * thread. */
void dray__serve_http_supervise(dray_serve *s);
void dray__serve_http_quiesce(dray_serve *s);
void dray__serve_http_stop(dray_serve *s);

#endif
