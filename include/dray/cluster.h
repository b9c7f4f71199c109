/* dray cluster: a head process (membership, heartbeats, status) and worker processes (one per node,
 * running N executor threads) joined over TCP with a shared secret. A driver joins by passing an
 * address to dray_init (or DRAY_ADDRESS); its tasks then run on the workers, with results sent back
 * to it. The CLI (`dray start/status/stop/submit`) wraps these calls.
 *
 * Thread-safety: each call is independent. The run functions block until the process is told to
 * stop (SIGTERM/SIGINT). Ownership is stated per declaration.
 */
#ifndef DRAY_CLUSTER_H
#define DRAY_CLUSTER_H

#include "dray/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dray_cluster_opts {
    const char *bind; /* IPv4 address to listen on; NULL = 127.0.0.1 */
    int port;         /* head: port to listen on (0 = any); workers always pick a free port */
    int num_cpus;     /* worker: executor threads (0 = one per core) */
    size_t memory;    /* worker: object-store memory limit in bytes (0 = the machine's memory);
                       * objects spill to disk above DRAY_MEMORY_SPILL (0.7) of it */
    const char *resources; /* worker: custom resources offered, "name=amount,..." (NULL: none) */
} dray_cluster_opts;

/* dray_cluster_secret_create: creates directory `dir` (0700, parents too) and writes a new random
 * secret to dir/secret (0600, 64 hex digits). Borrows dir. */
DRAY_API dray_status dray_cluster_secret_create(const char *dir);

/* dray_cluster_secret_init: like dray_cluster_secret_create, but when DRAY_SECRET is set (64 hex
 * digits) writes that secret instead of a new one, so a head started by an orchestrator (Kubernetes,
 * Slurm) shares the secret its workers get. Borrows dir. (src/cluster/launch.c) */
DRAY_API dray_status dray_cluster_secret_init(const char *dir);

/* dray_cluster_head_run: runs a head with the secret of `dir` until SIGTERM/SIGINT. Once it listens
 * it writes its port in decimal and a newline to `ready_fd` (if >= 0) and closes it. Borrows opts
 * and dir. */
DRAY_API dray_status dray_cluster_head_run(const dray_cluster_opts *opts, const char *dir,
                                           int ready_fd);

/* dray_cluster_worker_run: runs a worker node joined to the head at `address` ("HOST:PORT") until
 * SIGTERM/SIGINT or until the head goes away. The secret comes from DRAY_SECRET or the cluster
 * directory (DRAY_CLUSTER_DIR, else /tmp/dray-<uid>/cluster-<port>). The task functions it can run
 * are those registered in this process (link them in, or dlopen modules first). Borrows both. */
DRAY_API dray_status dray_cluster_worker_run(const char *address, const dray_cluster_opts *opts);

/* dray_cluster_status: asks the head at `address` for its state: a map with "nodes" (a list of maps
 * id, address, cpus, pid, alive, tasks_done, tasks_running, last_seen_ms, tasks_spilled (nested
 * tasks the node sent to other nodes), ...) and "drivers" (int).
 * On DRAY_OK *out is owned (dray_value_release). */
DRAY_API dray_status dray_cluster_status(const char *address, dray_value *out);

/* dray_cluster_client_stats: counters of the driver attached through `rt`: a map of ints
 * placed_local (tasks sent to the node holding most of their input bytes), placed_load (tasks
 * without object inputs, sent to the least loaded node), placed_spill (tasks with object inputs
 * sent elsewhere because the holder was too busy), stored_results (results left in a node's object
 * store), objects_freed (handles dropped, so freed on the nodes), driver_pulls and
 * driver_pulled_bytes (objects dray_get fetched), polled_waits / polled_hits / spin_hits /
 * polled_lost (waits in which the caller read its node's connection itself / that got their result
 * that way / while spinning / that saw the connection end: docs/cluster.md "Latency"); on a worker
 * node's own runtime (a task's dray_ctx_runtime) also tasks_spilled / spill_returned (nested tasks
 * sent to other nodes / of those, run here after all: docs/cluster.md "Nested tasks"). Node-side
 * object-store counters are in dray_cluster_status ("store" of each node). On DRAY_OK *out is
 * owned. */
DRAY_API dray_status dray_cluster_client_stats(dray_runtime *rt, dray_value *out);

/* ==== Processes on this machine ==== */

/* dray_cluster_dir: the directory holding the secret, PID files and logs of the cluster whose head
 * listens on `port`: $DRAY_CLUSTER_DIR if set, else /tmp/dray-<uid>/cluster-<port>. Writes at most
 * `size` bytes to out. */
DRAY_API void dray_cluster_dir(int port, char *out, size_t size);

/* dray_cluster_record_pid: writes dir/<name>.pid with `pid` and its start time (so a later stop never
 * signals a recycled PID). Borrows dir and name. */
DRAY_API dray_status dray_cluster_record_pid(const char *dir, const char *name, int pid);

/* dray_cluster_stop_recorded: sends SIGTERM to every process recorded in dir/ *.pid that is still the
 * recorded process, waits up to timeout_ms for them to exit (then SIGKILL), removes the PID files.
 * *stopped (optional) gets how many were signalled. */
DRAY_API dray_status dray_cluster_stop_recorded(const char *dir, int timeout_ms, int *stopped);

#ifdef __cplusplus
}
#endif
#endif /* DRAY_CLUSTER_H */
