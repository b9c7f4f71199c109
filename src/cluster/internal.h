/* Internals of the cluster module: SHA-256/HMAC, the wire format (frame header and per-type checks
 * of control payloads), the epoll event loop with its connections, and the cluster directory. */
#ifndef DRAY_CLUSTER_INTERNAL_H
#define DRAY_CLUSTER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/internal.h"
#include "dray/cluster.h"

/* ==== SHA-256 and HMAC (sha256.c) ==== */
typedef struct dray__sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t used;
} dray__sha256;

void dray__sha256_init(dray__sha256 *s);
void dray__sha256_update(dray__sha256 *s, const void *data, size_t n);
void dray__sha256_final(dray__sha256 *s, uint8_t out[32]);
/* HMAC-SHA256 of the concatenation of parts[0..nparts) under `key`. */
void dray__hmac_sha256(const void *key, size_t klen, const void *const *parts, const size_t *lens,
                       size_t nparts, uint8_t out[32]);
/* Constant-time comparison. */
bool dray__ct_equal(const void *a, const void *b, size_t n);
dray_status dray__random_bytes(void *buf, size_t n);
/* out gets 2n hex digits and a NUL. */
void dray__hex_encode(const uint8_t *in, size_t n, char *out);
/* Exactly 2n hex digits (a trailing newline allowed). */
dray_status dray__hex_decode(const char *in, uint8_t *out, size_t n);

/* ==== Wire format (wire.c) ====
 * A message is a 32-byte header, a control payload (a dray_value in the core codec) and an optional
 * data section (object bytes, sent from the object's own memory). Header, little-endian:
 *   0 'D' 'Y'  2 version  3 type  4 flags  5..7 zero  8 ctl_len u32  12 zero u32
 *   16 data_len u64  24 request id u64 */
#define DRAY__WIRE_HDR 32
#define DRAY__WIRE_VERSION 1
#define DRAY__WIRE_MAX_CTL (16u << 20)
#define DRAY__WIRE_MAX_CTL_PREAUTH 512
#define DRAY__WIRE_MAX_DATA ((uint64_t)16 << 30)
#define DRAY__NONCE 32

enum dray__msg_type {
    DRAY__MSG_CHALLENGE = 1, /* server: bytes nonce */
    DRAY__MSG_AUTH,          /* client: [bytes nonce, bytes mac, string role] */
    DRAY__MSG_AUTH_OK,       /* server: bytes mac (proves the server knows the secret too) */
    DRAY__MSG_REGISTER,      /* worker to head: [string addr, int cpus, int pid, map resources] */
    DRAY__MSG_SUBSCRIBE,     /* driver (or a node's spill client) to head: null */
    DRAY__MSG_NODES,         /* head to driver: list of [int id, string addr, int cpus,
                              * map resources (name -> float), bool paused] */
    DRAY__MSG_PING,          /* worker to head: [int tasks_done, int tasks_running, list of
                              * DRAY__STORE_NSTATS ints: object-store counters, int rss bytes,
                              * int cpu ns, bool paused, optional int tasks spilled] */
    DRAY__MSG_SUBMIT,        /* driver to worker: [string fn, list args, int retries, bool retry_exc] */
    DRAY__MSG_RESULT,        /* worker to driver: [int status, value]; data per flags */
    DRAY__MSG_STATUS_REQ,    /* client to head: null */
    DRAY__MSG_STATUS,        /* head to client: map */
    DRAY__MSG_ACTOR_CREATE,  /* driver to worker: [string class, list args, int id, int max_conc,
                              * int max_restarts, int max_task_retries]; RESULT when init ran */
    DRAY__MSG_ACTOR_CALL,    /* driver to worker: [int id, int method, list args]; RESULT */
    DRAY__MSG_ACTOR_KILL,    /* driver to worker: [int id, bool no_restart] */
    DRAY__MSG_ACTOR_RELEASE, /* driver to worker: [int id] */
    DRAY__MSG_PULL,          /* node or driver to the node holding an object: int id (also the
                              * request id); RESULT with the bytes as a RAW data section */
    DRAY__MSG_OBJ_FREE,      /* driver to worker: [string holder, int id]: drop that object */
    DRAY__MSG_STEAL,         /* driver to worker: int max: give back up to max queued tasks
                              * (each answered by a RESULT with RF_STOLEN) */
    DRAY__MSG_TRACE,         /* head to worker: int head clock (ns): record task events and ship
                              * them (sent about once a second, for the clock offset too) */
    DRAY__MSG_EVENTS,        /* worker to head: [int t1 (the last TRACE's head clock), int t2 (node
                              * clock when it came), int t3 (node clock at sending), int dropped,
                              * list names, bytes records, list of [int name, int submitted]] */
    DRAY__MSG_LANE,          /* dialer to a node on the same machine: string segment name */
    DRAY__MSG_LANE_REPLY,    /* [bool mapped, string why not] */
    DRAY__MSG_WAKE,          /* null: records wait in the lane (the reader was asleep) */
    DRAY__MSG_COUNT
};

/* RESULT flags: where the value is. */
#define DRAY__RF_RAW 1     /* data section: the bytes of a BYTES value */
#define DRAY__RF_ENCODED 2 /* data section: the encoded value */
#define DRAY__RF_MISSING 4 /* the worker lacks the function: try another node */
#define DRAY__RF_STOLEN 32 /* the task was not run: taken back for an idle node ([0, null]) */
#define DRAY__RF_LOST 16   /* an input object could not be fetched (its error's arg index) */
#define DRAY__RF_STORED 8  /* the value stays in the node's object store: [0, [int id, int size,
                            * bool encoded]] */

/* An EVENTS record: DRAY__EVREC bytes, little-endian: 0 start ns (i64, node clock), 8 stop ns,
 * 16 bytes (u64), 24 count (u32 >= 1), 28 name index (u16), 30 kind (u8, dray_event_kind), 31 zero,
 * 32 status (i16, <= 0), 34 row (i16: executor index, -1 other, -2-k external thread k), 36 tid. */
#define DRAY__EVREC 40
#define DRAY__EVREC_MAX 4096 /* records per EVENTS message */
#define DRAY__EVNAMES_MAX 1024

typedef struct dray__hdr {
    uint8_t type, flags;
    uint32_t ctl_len;
    uint64_t data_len;
    uint64_t rid;
} dray__hdr;

void dray__wire_put_header(uint8_t out[DRAY__WIRE_HDR], const dray__hdr *h);
/* Parses and checks a header (magic, version, type, zero fields, limits). */
dray_status dray__wire_parse_header(const uint8_t *buf, size_t len, uint32_t max_ctl,
                                    uint64_t max_data, dray__hdr *out);
/* Decodes and checks a control payload for its message type. On DRAY_OK *out is owned. */
dray_status dray__wire_decode_ctl(const dray__hdr *h, const void *ctl, dray_value *out);
/* Whole-message decoder used by the fuzzer and tests: header, control, data section. */
dray_status dray__wire_decode_message(const uint8_t *buf, size_t len, dray__hdr *h, dray_value *ctl);

/* ==== Same-host lanes (lane.c) ====
 * Two single-producer, single-consumer rings in one shared-memory segment (/dev/shm, mode 0600,
 * unlinked once both sides have mapped it). A record is a whole wire frame (header, control, data).
 * Writers on one side are serialised by their caller; so are readers. */
typedef struct dray__lane dray__lane;
/* Dialer side: creates and maps a new segment; *out owned (dray__lane_free). */
dray_status dray__lane_create(dray__lane **out);
/* Acceptor side: maps the segment `name` (sent by the dialer) after checking that it is a private
 * lane of this user, then unlinks it; *out owned. DRAY_ENOTFOUND when it is not on this machine. */
dray_status dray__lane_open(const char *name, dray__lane **out);
const char *dray__lane_name(const dray__lane *l);
/* Removes the segment's name (the dialer, once the acceptor answered or failed). */
void dray__lane_unlink(dray__lane *l);
/* Unmaps and frees. */
void dray__lane_free(dray__lane *l);
/* The largest frame a record can hold. */
size_t dray__lane_max_frame(void);
/* Appends the concatenation of parts as one record; false when it does not fit now. */
bool dray__lane_write(dray__lane *l, const void *const *parts, const size_t *lens, int nparts);
/* After writes: true (once) when the reader may be asleep and must be woken another way. */
bool dray__lane_wake_needed(dray__lane *l);
/* Whether the peer's reader said it would sleep (a hint: it may wake meanwhile). */
bool dray__lane_peer_asleep(const dray__lane *l);
/* Whether a record waits to be read. */
bool dray__lane_pending(const dray__lane *l);
/* The next record (*rec points into the ring, valid until dray__lane_consume): its length, 0 when
 * none, -1 when the ring is corrupt. */
long dray__lane_peek(dray__lane *l, const uint8_t **rec);
void dray__lane_consume(dray__lane *l);
/* The reader is about to block: marks it asleep; false (and not marked) when a record is there. */
bool dray__lane_sleep(dray__lane *l);
/* The reader is awake again. */
void dray__lane_awake(dray__lane *l);
/* Tests and the fuzzer: a lane over caller-owned memory of dray__lane_segment_size() bytes
 * (initialised as a new segment when init; dray__lane_free leaves the memory alone), and a way to
 * set what its reader sees (head and tail counters, the first len bytes of its ring). */
size_t dray__lane_segment_size(void);
dray_status dray__lane_attach(void *mem, bool init, bool dialer, dray__lane **out);
void dray__lane_set_rx(dray__lane *l, uint64_t head, uint64_t tail, const void *data, size_t len);
/* A record read from a lane, checked as a message from the wire (header, sizes, data section):
 * rec[0..len) must stay unchanged while *out (owned) and the control payload at rec + header are
 * used. */
dray_status dray__lane_record(const uint8_t *rec, size_t len, dray__hdr *h, dray_value *data);

/* ==== Spin gate (net.c) ====
 * Spinning instead of sleeping pays only when it takes no core from other work: a moving average of
 * the machine's runnable threads (/proc/loadavg's run-queue count) besides the sampler's own. */
typedef struct dray__spin_gate {
    _Atomic int load_milli; /* moving average of the other runnable threads, x1000 */
    int ncpu;
} dray__spin_gate;
void dray__spin_gate_init(dray__spin_gate *g);
/* Samples the run queue (about every 100 ms); `self`: runnable threads of the sampler's own (the
 * sampling thread and its spinners). Spinning stays allowed while the others leave a core free
 * (their moving average at most ncpu - 0.5). */
void dray__spin_gate_sample(dray__spin_gate *g, int self);
/* Whether to spin now; `yielding`: the spinner gives its core away every 20 µs (lanes), so it may
 * spin under more load than one that does not. */
bool dray__spin_gate_ok(dray__spin_gate *g, bool yielding);

/* ==== Event loop and connections (net.c) ==== */
typedef struct dray__loop dray__loop;
typedef struct dray__conn dray__conn;

typedef struct dray__loop_ops {
    /* A checked message from an authenticated peer. ctl and data are borrowed (data is a BYTES
     * value or null). */
    void (*on_message)(dray__loop *l, dray__conn *c, const dray__hdr *h, const dray_value *ctl,
                       const dray_value *data);
    /* A peer authenticated (accepted connections only). */
    void (*on_open)(dray__loop *l, dray__conn *c);
    /* A connection closed (the conn stays valid for the callback). */
    void (*on_close)(dray__loop *l, dray__conn *c);
    /* Called about every 100 ms on the loop thread. */
    void (*on_tick)(dray__loop *l);
} dray__loop_ops;

/* Creates a loop. `secret` (32 bytes) is copied. bind_host NULL: no listening socket. */
dray_status dray__loop_create(const dray__loop_ops *ops, void *user, const uint8_t *secret,
                              const char *bind_host, int port, dray__loop **out);
/* Runs the loop on a new thread. */
dray_status dray__loop_start(dray__loop *l);
/* Runs the loop on this thread until dray__loop_stop (or a SIGTERM/SIGINT when handle_signals). */
void dray__loop_run(dray__loop *l, bool handle_signals);
/* Asks the loop to stop (any thread); joins it when it runs on its own thread. */
void dray__loop_stop(dray__loop *l);
/* Closes every connection and frees the loop (stopped first). */
void dray__loop_destroy(dray__loop *l);
void *dray__loop_user(dray__loop *l);
int dray__loop_port(dray__loop *l);
bool dray__loop_on_thread(dray__loop *l);
void dray__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Connects to host:port and runs the client side of the handshake with `role` (blocking, bounded
 * by timeout_ms). On DRAY_OK the connection joins the loop; *out is borrowed (the loop owns it). */
dray_status dray__loop_dial(dray__loop *l, const char *address, const char *role, int timeout_ms,
                            dray__conn **out);
/* The same; with `lane`, it then offers the peer a same-host lane (used when the peer maps it). */
dray_status dray__loop_dial_lane(dray__loop *l, const char *address, const char *role,
                                 int timeout_ms, bool lane, dray__conn **out);
/* This loop maps the lanes its peers offer, and keeps reading them without sleeping for spin_ns
 * after their last record while may_spin(l) says it may pay now (NULL: always; e.g. only while no
 * executor is busy, as a spinning loop would take their core). Call before the loop runs. */
void dray__loop_accept_lanes(dray__loop *l, int64_t spin_ns, bool (*may_spin)(dray__loop *l));
/* Queues a message (any thread). ctl[0..ctl_len) is copied; data (a BYTES value, may be NULL) is
 * retained and sent from its own memory when large. DRAY_ENET when the connection is closed. */
dray_status dray__conn_send(dray__conn *c, uint8_t type, uint8_t flags, uint64_t rid,
                            const void *ctl, size_t ctl_len, const dray_value *data);
/* The same, but only queued: the caller writes it with dray__conn_push once it has dropped its own
 * locks (a message someone waits for, written by that thread: no hand-over to the loop thread,
 * and no peer reply racing for a lock the sender still holds). */
dray_status dray__conn_send_held(dray__conn *c, uint8_t type, uint8_t flags, uint64_t rid,
                                 const void *ctl, size_t ctl_len, const dray_value *data);
/* Writes what is queued on c from this thread; what does not fit is left to the loop (woken). */
void dray__conn_push(dray__conn *c);
/* A message that may overtake, or be overtaken by, others on c (a task, a task's result): it goes
 * through c's same-host lane when there is one and it fits, else as dray__conn_send (_held when
 * hold). */
dray_status dray__conn_send_any_order(dray__conn *c, uint8_t type, uint8_t flags, uint64_t rid,
                                      const void *ctl, size_t ctl_len, const dray_value *data,
                                      bool hold);
/* dray__conn_send_value, the same way. */
dray_status dray__conn_send_value_any_order(dray__conn *c, uint8_t type, uint8_t flags,
                                            uint64_t rid, const dray_value *ctl,
                                            const dray_value *data);
bool dray__conn_has_lane(const dray__conn *c);
/* Messages sent and received through c's lane. */
void dray__conn_lane_counts(const dray__conn *c, uint64_t *sent, uint64_t *received);
/* Encodes *ctl and sends it. */
dray_status dray__conn_send_value(dray__conn *c, uint8_t type, uint8_t flags, uint64_t rid,
                                  const dray_value *ctl, const dray_value *data);
/* Closes the connection from the loop thread (on_close runs). */
void dray__conn_close(dray__conn *c, const char *why);
const char *dray__conn_role(const dray__conn *c);
/* During on_message: whether more input from this peer is already buffered (a burst). */
bool dray__conn_more_input(const dray__conn *c);
const char *dray__conn_peer(const dray__conn *c);
/* A waiting thread takes over reading c (the latency path: no hop through the loop thread): the
 * loop stops watching c's input until dray__conn_unborrow. False when c is closed or already
 * borrowed (or the loop is reading it right now). */
bool dray__conn_borrow(dray__conn *c);
/* Reads c on the calling thread (which borrowed it) and delivers its messages through the loop's
 * on_message, as the loop would: spins on the socket until spin_until_ns, then sleeps in ppoll up
 * to deadline_ns (both dray__now_ns times). Returns 1 once a message was delivered, 0 at the
 * deadline, -1 when the connection closed (on_close ran, on this thread). */
int dray__conn_pump(dray__conn *c, int64_t spin_until_ns, int64_t deadline_ns);
/* Gives a borrowed connection back to the loop (input that arrived meanwhile is reported to it). */
void dray__conn_unborrow(dray__conn *c);
void dray__conn_set_user(dray__conn *c, void *user);
void *dray__conn_user(const dray__conn *c);
dray__conn *dray__conn_retain(dray__conn *c);
void dray__conn_release(dray__conn *c);

/* Blocking side: connects to `address` and authenticates as `role` (timeout_ms bounds each step);
 * *fd is owned by the caller. */
dray_status dray__dial_blocking(const char *address, const uint8_t *secret, const char *role,
                                int timeout_ms, int *fd);
/* Sends one message (no data section) on a blocking socket. */
dray_status dray__blocking_send(int fd, const char *addr, uint8_t type, uint64_t rid,
                                const dray_value *ctl);
/* Reads one checked message header and control payload (*ctl owned); a data section of
 * h->data_len bytes is left on the socket for the caller (dray__read_full). */
dray_status dray__blocking_recv(int fd, const char *addr, dray__hdr *h, dray_value *ctl);
dray_status dray__read_full(int fd, void *buf, size_t n, const char *addr);

/* Blocking request/reply on a fresh connection: used by `dray status`. *reply is owned. */
dray_status dray__request(const char *address, const uint8_t *secret, uint8_t type,
                          const dray_value *ctl, int timeout_ms, dray_value *reply);

/* ==== Task events for the head's dashboard (trace.c) ====
 * A worker's state, touched on its loop thread only; NULL until the head first sends TRACE. */
typedef struct dray__trace dray__trace;
/* A TRACE came (ctl: the head's clock): turns recording on (creating *t) and notes the clock sample. */
dray_status dray__trace_on(dray__trace **t, dray_runtime *rt, const dray_value *ctl);
/* Drains the runtime's event rings into bounded EVENTS batches sent to `head` (borrowed). */
void dray__trace_tick(dray__trace *t, dray_runtime *rt, dray__conn *head);
/* n tasks of function `fn` (a registered name, static) came to this node (negative: taken back). */
void dray__trace_submitted(dray__trace *t, const char *fn, int64_t n);
void dray__trace_free(dray__trace *t);

/* ==== Object store (store.c) ====
 * Objects are keyed by (holder address, id): the node that made them and its number for them. */
typedef struct dray__store dray__store;
typedef struct dray__store_stats {
    uint64_t limit, objects, bytes_mem, bytes_disk, puts, pulls, pulled_bytes, served,
        served_bytes, spilled, spilled_bytes, read_back, direct_to_disk, freed, freed_bytes;
} dray__store_stats;
#define DRAY__STORE_NSTATS 15 /* fields of dray__store_stats, all uint64_t, sent in PINGs */

/* A store spilling to `dir` under a memory limit of `limit` bytes (0: the machine's memory), with
 * the target/spill/pause/terminate fractions from DRAY_MEMORY_TARGET/SPILL/PAUSE/TERMINATE
 * (0.6/0.7/0.8/0.95; "false" disables one, like Dask's False). */
dray_status dray__store_create(const char *dir, size_t limit, const uint8_t secret[32],
                               dray__store **out);
void dray__store_destroy(dray__store *s);
/* Makes BYTES value *bytes (retained, not copied: a result made on this node) a new object. */
dray_status dray__store_adopt(dray__store *s, const char *self, const void *owner,
                              const dray_value *bytes, uint64_t *id);
/* A BYTES value over the object (no copy; the object stays pinned while the value lives). */
dray_status dray__store_get(dray__store *s, const char *holder, uint64_t id, dray_value *out);
/* The same, counted as served to a peer. */
dray_status dray__store_serve(dray__store *s, const char *self, uint64_t id, dray_value *out);
/* dray__store_get, pulling the object from `holder` first (once, cached) when it is not here. */
dray_status dray__store_fetch(dray__store *s, const void *owner, const char *holder, uint64_t id,
                              size_t size, dray_value *out);
/* Reads object `id` of `holder` into dst[0..size) over a new authenticated connection. */
dray_status dray__pull(const uint8_t secret[32], const char *holder, uint64_t id, void *dst,
                       size_t size);
void dray__store_free(dray__store *s, const char *holder, uint64_t id);
/* Frees every object owned by `owner` (a driver that went away). */
void dray__store_free_owner(dray__store *s, const void *owner);
void dray__store_stats_get(dray__store *s, dray__store_stats *out);
/* The node's memory thresholds in bytes (0: disabled), fixed at creation. */
typedef struct dray__store_limits {
    size_t limit, target, spill, pause, terminate;
} dray__store_limits;
void dray__store_limits_get(dray__store *s, dray__store_limits *out);
/* Spills least recently used unpinned objects until `bytes` have gone to disk or none is left
 * (process memory above the spill fraction); returns the bytes spilled. */
size_t dray__store_spill(dray__store *s, size_t bytes);
/* Spills when objects in memory are above the spill bytes (objects unpinned since they were made;
 * the worker's monitor calls it every 100 ms). */
void dray__store_maintain(dray__store *s);
/* Tests: `hook` runs on the spilling thread, without the store's lock, before each object's bytes
 * are written to disk (NULL: none). */
void dray__store_set_spill_hook(dray__store *s, void (*hook)(void *ctx, uint64_t id), void *ctx);

/* Whether v is a cluster object handle ("cluster.obj"); fills its fields (borrowed) when so. */
bool dray__cluster_obj_info(const dray_value *v, const char **holder, uint64_t *id, uint64_t *size,
                            bool *encoded);

/* ==== Refs nested in lists and maps (nested.c) ====
 * A ref cannot travel: before a list or map goes over the wire each ref in it (at any depth,
 * through lists and maps) becomes a "cluster.ref" marker with the ref's outcome, and the receiver
 * makes a ref of its own runtime from each marker. */
/* Whether v is a list or map holding a ref / a ref not ready yet / a marker, at any depth (false
 * for any other value). */
bool dray__nested_refs(const dray_value *v);
bool dray__nested_pending(const dray_value *v);
bool dray__nested_markers(const dray_value *v);
/* A copy of v (owned) with each ref replaced by a marker of its outcome, waiting on rt for refs not
 * ready yet. seen (may be NULL) is shown each successful ref's value (e.g. to keep object handles
 * alive). */
dray_status dray__nested_to_wire(dray_runtime *rt, const dray_value *v,
                                 void (*seen)(void *ctx, const dray_value *inner), void *ctx,
                                 dray_value *out);
/* A copy of v (owned) with each marker replaced by a ref of rt (dray_put; a failed one keeps the
 * error's status). resolve (may be NULL) turns a marker's value into the ref's value (owned). */
dray_status dray__nested_from_wire(dray_runtime *rt, const dray_value *v,
                                   dray_status (*resolve)(void *ctx, const dray_value *in,
                                                          dray_value *out),
                                   void *ctx, dray_value *out);

/* Encodes v (borrowed) with the value codec and passes the bytes to write(buf, ...): the body of an
 * extension type's encoder. */
dray_status dray__write_value(const dray_value *v,
                              dray_status (*write)(void *buf, const void *data, size_t len),
                              void *buf);

/* ==== Spillback of nested tasks (spill.c, client.c's local-first mode) ==== */
/* Submits a task to rt's own pool, bypassing its cluster client (dray_submit_fn's local path). */
dray_status dray__submit_here(dray_runtime *rt, const dray_function *fn, const dray_value *args,
                              size_t nargs, const dray_task_opts *opts, dray_ref **out);
/* Tasks waiting in rt's queues per executor (not started yet). */
double dray__spill_queued(dray_runtime *rt);
/* The node's object store as the local-first client uses it: large arguments of spilled tasks
 * become objects (stash: BYTES value *bytes retained, not copied; *id set), dropped by unstash
 * once no spilled task needs them (unstash is called with the client's lock held). */
typedef struct dray__spill_store {
    dray_status (*stash)(void *ctx, const dray_value *bytes, uint64_t *id);
    void (*unstash)(void *ctx, uint64_t id);
    void *ctx;
} dray__spill_store;
/* Gives the runtime of worker node `self` a local-first client of the head at `head` (unless
 * DRAY_SPILL=0): its nested tasks spill to other nodes once DRAY_SPILL_QUEUE (2) tasks per executor
 * wait here. store (copied; may be NULL: large arguments then travel inside each task). */
dray_status dray__spill_attach(dray_runtime *rt, const char *head, const char *self,
                               const dray__spill_store *store);
/* Attaches rt to the cluster at `address` in local-first mode as node `self` (client.c): a task
 * stays on rt unless spill_queue tasks per executor wait; returns at once (no wait for nodes). */
dray_status dray__cluster_attach_local_first(dray_runtime *rt, const char *address,
                                             const char *self, double spill_queue,
                                             const dray__spill_store *store);
/* Tasks rt's local-first client sent to other nodes (0 without one). */
uint64_t dray__cluster_tasks_spilled(dray_runtime *rt);

/* ==== Cluster directory and secret (dir.c) ==== */
/* The directory of the cluster whose head listens on `port`: $DRAY_CLUSTER_DIR, else
 * /tmp/dray-<uid>/cluster-<port>. out gets at least 4096 bytes. */
void dray__cluster_dir(int port, char *out, size_t size);
/* Reads the secret for `address`: $DRAY_SECRET (hex), else <cluster dir>/secret. */
dray_status dray__secret_load(const char *address, uint8_t secret[32]);
/* Creates `dir` (and missing parents) mode 0700, then checks that it and its parent are
 * directories owned by us and writable by no one else (a sticky parent like /tmp is fine). */
dray_status dray__private_dir_make(const char *dir);
/* DRAY_OK when `dir` is a directory (not a link) owned by us and writable by no one else; else
 * DRAY_EPERM naming it and the problem. */
dray_status dray__dir_check_private(const char *dir);
/* Writes <dir>/secret (64 hex digits, borrowed) mode 0600, making `dir` with dray__private_dir_make. */
dray_status dray__secret_write(const char *dir, const char *hex);
/* Reads a secret file (64 hex digits): refused when it is a link, not ours, or open to others. */
dray_status dray__secret_read(const char *path, uint8_t secret[32]);
/* Splits "host:port". host gets at least 256 bytes. */
dray_status dray__parse_address(const char *address, char *host, size_t hsize, int *port);

#endif /* DRAY_CLUSTER_INTERNAL_H */
