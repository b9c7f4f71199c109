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

/* A pending call handed to a batching replica; `done` runs once the response is filled. */
struct dray__serve_call {
    dray_serve_request req;
    dray_serve_response resp;
    dray_status st;
    char err[256];
    void (*done)(dray__serve_call *c);
    void *done_arg;
    dray__serve_call *next;
};

struct dray__serve_replica {
    struct dray_serve_handle *dep;
    const dray_serve_class *cls;
    void *state;              /* direct mode: the class's state */
    dray_runtime *rt;         /* actor mode: the runtime and the replica's actor */
    dray_actor *actor;
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
    void *mhd;                /* struct MHD_Daemon */
    pthread_mutex_t lock;     /* deployment list, routes */
    struct dray_serve_handle *deps;
    pthread_rwlock_t routes_rw; /* ingress reads the list, deploy/delete write */
    atomic_int inflight;      /* HTTP requests being answered */
    atomic_uint_fast64_t http_requests, http_ns; /* answered, and time from headers to answer */
    atomic_bool stopping;
    /* Controller. */
    pthread_t controller;
    bool controller_started;
    bool controller_stop;
    pthread_cond_t ctl_cond;
    /* Shutdown request (POST /-/shutdown). */
    bool shutdown_requested;
    pthread_cond_t shutdown_cond;
    atomic_uint_fast64_t next_replica_id;
    void *healthz;            /* struct MHD_Response, shared by every /-/healthz answer */
    int listen_fd;            /* after quiesce: closed once the daemon stops */
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
/* Run one callback on the replica's state (actor method or under its lock); errors set here. */
dray_status dray__serve_replica_call(dray__serve_replica *r, dray_serve_request *req,
                                     dray_serve_response *resp);
dray_status dray__serve_replica_batch(dray__serve_replica *r, dray_serve_request *const *reqs,
                                      size_t n, dray_serve_response *resps);
dray_status dray__serve_replica_health(dray__serve_replica *r);
dray_status dray__serve_replica_reconfigure(dray__serve_replica *r, const cJSON *cfg);
/* Kills the replica's actor as a crash would (pending calls fail); no-op in direct mode. */
void dray__serve_replica_crash(dray__serve_replica *r);
/* Marks r dead and wakes the controller to replace it. */
void dray__serve_mark_dead(dray__serve_replica *r);
dray_status dray__serve_add_replica(dray_serve_handle *h);
/* Removes replicas marked dead/draining that are idle; returns how many dead ones were removed. */
int dray__serve_reap(dray_serve_handle *h);
int dray__serve_live_replicas(dray_serve_handle *h);

/* ---- control.c ---- */
dray_status dray__serve_controller_start(dray_serve *s);
void dray__serve_controller_stop(dray_serve *s);
void dray__serve_controller_kick(dray_serve *s);

/* ---- http.c ---- */
dray_status dray__serve_http_start(dray_serve *s);
void dray__serve_http_quiesce(dray_serve *s);
void dray__serve_http_stop(dray_serve *s);

#endif
