/* dray core: the runtime, values, tasks and refs, actors, lazy graphs.
 *
 * This header is the reference for the core module. Everything here is public; names starting with
 * `dray__` are internal and may change. Thread-safety: every function taking a dray_runtime may be
 * called from any thread, including from inside running tasks, unless its comment says otherwise.
 * Ownership: each declaration says what it *takes* (the callee frees it), *borrows* (the caller keeps
 * it) or *returns owned* (the caller frees it, with the function named). A call that fails takes
 * nothing and leaves its out-parameters untouched.
 */
#ifndef DRAY_CORE_H
#define DRAY_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DRAY_API __attribute__((visibility("default")))

/* ==== Status codes ==================================================================================
 * Every call that can fail returns a dray_status. DRAY_OK is 0, errors are negative. The thread-local
 * dray_last_error() names the bad input. */
#define DRAY_STATUS_LIST(X)                                                     \
    X(OK, 0, "ok")                                                              \
    X(ENOMEM, -1, "out of memory")                                              \
    X(EINVAL, -2, "invalid argument")                                           \
    X(EIO, -3, "input/output error")                                            \
    X(ENET, -4, "network error")                                                \
    X(ETIMEDOUT, -5, "timed out")                                               \
    X(ECANCELED, -6, "canceled")                                                \
    X(ENOTFOUND, -7, "not found")                                               \
    X(ETASK, -8, "task failed")                                                 \
    X(EDEP, -9, "a dependency failed")                                          \
    X(ESHUTDOWN, -10, "runtime is shut down")                                   \
    X(EFORMAT, -11, "malformed data")                                           \
    X(ETYPE, -12, "wrong type")                                                 \
    X(ERANGE, -13, "out of range")                                              \
    X(EBUSY, -14, "busy")                                                       \
    X(EUNSUPPORTED, -15, "not supported")                                       \
    X(EACTOR, -16, "actor died")                                                \
    X(ERESOURCE, -17, "resources unavailable")                                  \
    X(EFATAL, -18, "fatal error")                                               \
    X(EPERM, -19, "permission denied")

typedef enum dray_status {
#define DRAY__STATUS_ENUM(name, code, text) DRAY_##name = code,
    DRAY_STATUS_LIST(DRAY__STATUS_ENUM)
#undef DRAY__STATUS_ENUM
} dray_status;

/* The most negative status code (codes from the wire outside DRAY_STATUS_MIN..0 are malformed). */
#define DRAY_STATUS_MIN DRAY_EPERM

/* dray_status_str: a static string for `st` ("out of memory"); never NULL. */
DRAY_API const char *dray_status_str(dray_status st);

/* dray_status_name: the code's name ("DRAY_ENOMEM"); never NULL. */
DRAY_API const char *dray_status_name(dray_status st);

/* dray_last_error: this thread's message for the last failed dray call, naming the bad input.
 * Valid until this thread's next dray call. Never NULL ("" when there is none). */
DRAY_API const char *dray_last_error(void);

/* dray_set_error: sets this thread's error message (printf-style) and returns `st`, for modules and
 * task functions that report their own errors. */
DRAY_API dray_status dray_set_error(dray_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ==== Values ========================================================================================
 * A dray_value is a small tagged union passed by value. Scalars are stored inline; bytes, strings,
 * lists, maps, errors and extension objects point to immutable, reference-counted heap objects, so
 * copying a value with dray_value_retain is O(1) and values can be shared between threads. */
typedef enum dray_type {
    DRAY_T_NULL = 0,
    DRAY_T_BOOL,
    DRAY_T_INT,    /* int64 */
    DRAY_T_FLOAT,  /* double */
    DRAY_T_BYTES,
    DRAY_T_STRING, /* UTF-8, NUL-terminated */
    DRAY_T_LIST,
    DRAY_T_MAP,    /* string keys, insertion order kept */
    DRAY_T_REF,    /* a reference to an object (task result or put value) */
    DRAY_T_ERROR,  /* a failed task's error, with its cause chain */
    DRAY_T_EXT,    /* an extension object: array chunk, frame partition, ... */
    DRAY_T_NODE,   /* a lazy graph node, only valid as an argument to dray_graph_add */
    DRAY__T_COUNT
} dray_type;

typedef struct dray_ref dray_ref;
typedef struct dray_runtime dray_runtime;
typedef struct dray__blob dray__blob;
typedef struct dray_ext_obj dray_ext_obj;

typedef struct dray_value {
    uint32_t type; /* dray_type */
    uint32_t aux;  /* reserved, 0 */
    union {
        bool b;
        int64_t i;
        double f;
        dray__blob *blob; /* BYTES, STRING, LIST, MAP, ERROR */
        dray_ref *ref;    /* REF */
        dray_ext_obj *ext;/* EXT */
        uint64_t node;    /* NODE */
    } u;
} dray_value;

/* Scalar constructors: nothing to release. */
static inline dray_value dray_null(void) { dray_value v = {DRAY_T_NULL, 0, {.i = 0}}; return v; }
static inline dray_value dray_bool(bool b) { dray_value v = {DRAY_T_BOOL, 0, {.b = b}}; return v; }
static inline dray_value dray_int(int64_t i) { dray_value v = {DRAY_T_INT, 0, {.i = i}}; return v; }
static inline dray_value dray_float(double f) { dray_value v = {DRAY_T_FLOAT, 0, {.f = f}}; return v; }

/* dray_value_of_ref: a value that *borrows* `ref` (no count taken); valid while `ref` is. Passing it
 * to dray_submit, dray_put or a list constructor makes them take their own count. */
static inline dray_value dray_value_of_ref(dray_ref *ref)
{
    dray_value v = {DRAY_T_REF, 0, {.ref = ref}};
    return v;
}

/* dray_bytes_create: a bytes value holding a copy of `data[0..len)`. Borrows data.
 * On DRAY_OK, *out is owned: release with dray_value_release(). */
DRAY_API dray_status dray_bytes_create(const void *data, size_t len, dray_value *out);

/* dray_bytes_create_uninit: a bytes value of `len` bytes for the caller to fill before sharing it;
 * *data points to its storage. On DRAY_OK, *out is owned. */
DRAY_API dray_status dray_bytes_create_uninit(size_t len, dray_value *out, void **data);

/* dray_string_create: a string value holding a copy of NUL-terminated `s`. On DRAY_OK, *out is owned. */
DRAY_API dray_status dray_string_create(const char *s, dray_value *out);

/* dray_string_create_n: same for `len` bytes of `s` (which need not be terminated). */
DRAY_API dray_status dray_string_create_n(const char *s, size_t len, dray_value *out);

/* dray_list_create: a list of `n` values. Borrows `items` (each is retained). On DRAY_OK, *out is
 * owned. */
DRAY_API dray_status dray_list_create(const dray_value *items, size_t n, dray_value *out);

/* dray_map_create: a map of `n` entries with string keys. Borrows keys and values (values retained).
 * Duplicate keys are DRAY_EINVAL naming the key. On DRAY_OK, *out is owned. */
DRAY_API dray_status dray_map_create(const char *const *keys, const dray_value *values, size_t n,
                                     dray_value *out);

/* dray_value_retain: returns a copy of *v sharing its heap object (count taken). Release the copy. */
DRAY_API dray_value dray_value_retain(const dray_value *v);

/* dray_value_release: drops *v's count on its heap object (if any) and sets *v to null. NULL-safe. */
DRAY_API void dray_value_release(dray_value *v);

/* Accessors. All borrow: returned pointers live as long as the value they come from. Calls on a value
 * of the wrong type return NULL / 0. */
DRAY_API const void *dray_bytes_data(const dray_value *v, size_t *len);
DRAY_API const char *dray_string_cstr(const dray_value *v);
DRAY_API size_t dray_string_len(const dray_value *v);
DRAY_API size_t dray_list_len(const dray_value *v);
DRAY_API const dray_value *dray_list_get(const dray_value *v, size_t i);
DRAY_API size_t dray_map_len(const dray_value *v);
DRAY_API const char *dray_map_key_at(const dray_value *v, size_t i);
DRAY_API const dray_value *dray_map_value_at(const dray_value *v, size_t i);
/* dray_map_get: the value under `key`, or NULL. */
DRAY_API const dray_value *dray_map_get(const dray_value *v, const char *key);

/* dray_value_equal: deep equality (floats compared bitwise after +0/-0 normalisation; refs by
 * identity). */
DRAY_API bool dray_value_equal(const dray_value *a, const dray_value *b);

/* dray_type_name: "int", "list", ... */
DRAY_API const char *dray_type_name(dray_type t);

/* ---- Errors as values ----
 * A failed task's result is a DRAY_T_ERROR value: status, the function's name, a message, the index
 * of the input that caused it (-1 if none) and the upstream error it was caused by (or none). */

/* dray_error_create: a new error value. Borrows strings; takes nothing from `cause` (it is retained).
 * On DRAY_OK, *out is owned. */
DRAY_API dray_status dray_error_create(dray_status st, const char *function, const char *message,
                                       int arg_index, const dray_value *cause, dray_value *out);
DRAY_API dray_status dray_error_status(const dray_value *err);
DRAY_API const char *dray_error_function(const dray_value *err);
DRAY_API const char *dray_error_message(const dray_value *err);
DRAY_API int dray_error_arg_index(const dray_value *err);
/* dray_error_cause: the upstream error (borrowed) or NULL. */
DRAY_API const dray_value *dray_error_cause(const dray_value *err);
/* dray_error_format: writes the readable chain ("c: input 0 failed <- b: ... <- a: boom") into buf
 * (truncated, always terminated). Returns the length it would have had. */
DRAY_API size_t dray_error_format(const dray_value *err, char *buf, size_t size);

/* ---- Extension objects ----
 * Modules put their own objects (array chunks, frame partitions) into values by embedding a
 * dray_ext_obj header first in their struct and describing the type once with a dray_ext_type,
 * registered at load time with DRAY_EXT_TYPE(var). The codec encodes them by the type's name. */
typedef struct dray_ext_type {
    const char *name; /* unique, e.g. "array.chunk" */
    /* Frees the object (called when its count reaches zero). */
    void (*destroy)(dray_ext_obj *obj);
    /* Appends the object's bytes to the buffer through `write` (may be NULL: not serialisable). */
    dray_status (*encode)(const dray_ext_obj *obj,
                          dray_status (*write)(void *buf, const void *data, size_t len), void *buf);
    /* Builds a new object from `data[0..len)`, which it must check fully (untrusted input). */
    dray_status (*decode)(const void *data, size_t len, dray_ext_obj **out);
    struct dray_ext_type *next; /* registry link, set by registration */
} dray_ext_type;

struct dray_ext_obj {
    uint32_t refs;              /* atomic; 1 when created */
    uint32_t reserved;
    const dray_ext_type *type;
};

/* dray_ext_obj_init: prepares the header of a new object (count 1). */
DRAY_API void dray_ext_obj_init(dray_ext_obj *obj, const dray_ext_type *type);

/* dray_value_of_ext: a value that *takes* the caller's count on `obj`. */
DRAY_API dray_value dray_value_of_ext(dray_ext_obj *obj);

/* dray_ext_type_register: adds a type to the process-wide registry (load time; see DRAY_EXT_TYPE). */
DRAY_API void dray_ext_type_register(dray_ext_type *type);

/* dray_ext_type_find: the registered type called `name`, or NULL. */
DRAY_API const dray_ext_type *dray_ext_type_find(const char *name);

#define DRAY_EXT_TYPE(var)                                                                     \
    __attribute__((constructor)) static void dray__register_ext_##var(void)                    \
    {                                                                                          \
        dray_ext_type_register(&(var));                                                        \
    }

/* ---- Codec ----
 * The flat, versioned byte format of values, used on the wire and for spilling. Refs encode as their
 * object id and need a runtime to resolve (cluster module); the local codec rejects them. */

/* dray_value_encode: encodes *v. On DRAY_OK, *buf (malloc'd, free with dray_free) holds *len bytes. */
DRAY_API dray_status dray_value_encode(const dray_value *v, void **buf, size_t *len);

/* dray_value_decode: decodes exactly `len` bytes (untrusted: length- and type-checked, nesting
 * bounded). On DRAY_OK, *out is owned. Truncated or corrupt input is DRAY_EFORMAT with the offset. */
DRAY_API dray_status dray_value_decode(const void *buf, size_t len, dray_value *out);

/* dray_free: frees memory dray returned as raw bytes (dray_value_encode). NULL-safe. */
DRAY_API void dray_free(void *p);

/* ==== Runtime =======================================================================================*/
typedef struct dray_resource {
    const char *name; /* "CPU", "GPU", "memory" or a custom name */
    double amount;
} dray_resource;

typedef struct dray_config {
    int num_workers;         /* worker threads; 0 = one per core */
    const char *address;     /* NULL: embedded local runtime; "HOST:PORT": a cluster */
    int progress;            /* progress bar: -1 auto (on a TTY, after 1 s), 0 off, 1 always */
    size_t memory_limit;     /* bytes; 0 = no limit (used by spilling) */
    const dray_resource *resources; /* extra resources this runtime offers ("GPU", custom) */
    size_t n_resources;
} dray_config;

/* dray_config_init: fills *cfg with the defaults. */
DRAY_API void dray_config_init(dray_config *cfg);

/* dray_init: starts a runtime. `cfg` NULL means defaults: the embedded local runtime with one worker
 * per core (DRAY_NUM_WORKERS in the environment overrides). Borrows cfg. On DRAY_OK, *out is owned:
 * end it with dray_shutdown(). */
DRAY_API dray_status dray_init(const dray_config *cfg, dray_runtime **out);

typedef enum dray_shutdown_mode {
    DRAY_SHUTDOWN_DRAIN = 0, /* run everything submitted to completion first */
    DRAY_SHUTDOWN_CANCEL = 1 /* cancel queued work, wait for running tasks */
} dray_shutdown_mode;

/* dray_shutdown: stops the runtime and frees it. Refs still held stay valid for dray_get (queued work
 * that was canceled reads as DRAY_ECANCELED) and must still be released. Not from inside a task. */
DRAY_API dray_status dray_shutdown(dray_runtime *rt, dray_shutdown_mode mode);

/* dray_runtime_num_workers: the number of worker threads. */
DRAY_API int dray_runtime_num_workers(const dray_runtime *rt);

/* dray_runtime_resource: how much of resource `name` ("CPU", "GPU", custom) the runtime offers in
 * total (0 for a resource it does not have). */
DRAY_API dray_status dray_runtime_resource(dray_runtime *rt, const char *name, double *total);

/* dray_runtime_memory_limit: the config's memory_limit in bytes (0: none). Modules that can work out
 * of core (frame shuffles) spill to disk when it is set. */
DRAY_API size_t dray_runtime_memory_limit(const dray_runtime *rt);

typedef struct dray_stats {
    uint64_t tasks_submitted;
    uint64_t tasks_finished;  /* succeeded or failed */
    uint64_t tasks_failed;
    uint64_t tasks_retried;
    uint64_t tasks_canceled;
    uint64_t tasks_stolen;
    uint64_t objects_live;    /* task results and put objects not yet freed */
    uint64_t actors_live;
    uint64_t actor_calls;
    int num_workers;
} dray_stats;

/* dray_runtime_stats: a snapshot of the runtime's counters (approximate while work runs). */
DRAY_API dray_status dray_runtime_stats(dray_runtime *rt, dray_stats *out);

/* ==== Functions by name ============================================================================
 * A task function receives its arguments with every ref already replaced by its value (borrowed for
 * the call) and writes its result to *result (which it then owns and hands to dray). Returning
 * non-OK fails the task; the message is dray_ctx_fail's or the thread's dray_last_error (or, when the
 * function stored an error value in *result, that value, with its own cause chain). */
typedef struct dray_ctx dray_ctx;
typedef dray_status (*dray_task_fn)(dray_ctx *ctx, const dray_value *args, size_t nargs,
                                    dray_value *result);

typedef struct dray_function {
    const char *name;
    dray_task_fn fn;
    struct dray_function *next; /* registry link */
} dray_function;

/* dray_function_register: adds `def` to the process-wide registry. Load time, from DRAY_FUNCTION;
 * later registrations (dlopen'ed modules) are seen by runtimes started afterwards and by
 * dray_function_find. A name registered twice keeps the first. */
DRAY_API void dray_function_register(dray_function *def);

/* dray_function_find: the function registered as `name` (a handle to submit without a lookup), or
 * NULL with dray_last_error naming it. */
DRAY_API const dray_function *dray_function_find(const char *name);

/* DRAY_FUNCTION(name) { ... }: defines and registers a task function called "name". The body sees
 * `ctx`, `args`, `nargs` and `result`. */
#define DRAY_FUNCTION(fname)                                                                     \
    static dray_status fname(dray_ctx *ctx, const dray_value *args, size_t nargs,                \
                             dray_value *result);                                                \
    static dray_function dray__fn_def_##fname = {#fname, fname, 0};                               \
    __attribute__((constructor)) static void dray__fn_reg_##fname(void)                          \
    {                                                                                            \
        dray_function_register(&dray__fn_def_##fname);                                           \
    }                                                                                            \
    static dray_status fname(dray_ctx *ctx __attribute__((unused)),                              \
                             const dray_value *args __attribute__((unused)),                     \
                             size_t nargs __attribute__((unused)),                       \
                             dray_value *result __attribute__((unused)))

/* Inside a task. */
/* dray_ctx_runtime: the runtime running the task (for nested submission). */
DRAY_API dray_runtime *dray_ctx_runtime(dray_ctx *ctx);
/* dray_ctx_fail: records the task's error message; returns `st` for `return dray_ctx_fail(...)`. */
DRAY_API dray_status dray_ctx_fail(dray_ctx *ctx, dray_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* dray_ctx_canceled: true once dray_cancel was called on this task (cooperative cancellation). */
DRAY_API bool dray_ctx_canceled(dray_ctx *ctx);
/* dray_ctx_worker: index of the worker thread running the task (0..num_workers-1), -1 elsewhere. */
DRAY_API int dray_ctx_worker(dray_ctx *ctx);
/* dray_ctx_actor_state: the actor's state inside an actor method, else NULL. */
DRAY_API void *dray_ctx_actor_state(dray_ctx *ctx);

/* ==== Tasks and refs ================================================================================*/
typedef struct dray_task_opts {
    const char *name;               /* for the dashboard; default: the function's name */
    double num_cpus;                /* default 1 */
    const dray_resource *resources; /* custom resources needed (GPU, ...) */
    size_t n_resources;
    int max_retries;                /* re-runs after a failure when retry_exceptions (default 0) */
    bool retry_exceptions;
} dray_task_opts;

/* dray_submit: runs function `fn_name` on `args` as soon as every ref among them is ready. Borrows
 * args (values retained, refs counted). An unknown name is DRAY_ENOTFOUND naming it; resources the
 * runtime can never offer are DRAY_ERESOURCE. On DRAY_OK, *out is an owned ref to the result:
 * release with dray_ref_release(). */
DRAY_API dray_status dray_submit(dray_runtime *rt, const char *fn_name, const dray_value *args,
                                 size_t nargs, const dray_task_opts *opts, dray_ref **out);

/* dray_submit_fn: the same with a handle from dray_function_find (no lookup). */
DRAY_API dray_status dray_submit_fn(dray_runtime *rt, const dray_function *fn,
                                    const dray_value *args, size_t nargs,
                                    const dray_task_opts *opts, dray_ref **out);

/* dray_put: stores a value as a ready object. Borrows *v (retains it). On DRAY_OK, *out is owned. */
DRAY_API dray_status dray_put(dray_runtime *rt, const dray_value *v, dray_ref **out);

/* dray_get: waits up to `timeout_ms` (-1 forever) for `ref` and returns its value. Borrows ref.
 * DRAY_OK: *out is an owned copy (dray_value_release). A failed task: its error status (the code
 * the function returned, DRAY_EDEP when one of its inputs failed, DRAY_ECANCELED when canceled),
 * dray_last_error() holds the readable cause chain, and *out the error value (owned) when out is not
 * NULL. DRAY_ETIMEDOUT: nothing is written. Inside a task, the
 * worker runs other work while it waits. */
DRAY_API dray_status dray_get(dray_runtime *rt, dray_ref *ref, int64_t timeout_ms, dray_value *out);

/* dray_wait: waits until `num_ready` of the `n` refs are done (or the timeout passes). Borrows refs.
 * If `ready` is not NULL, ready[i] tells which are. *count (optional) gets how many are ready.
 * DRAY_ETIMEDOUT if fewer than num_ready were ready in time. */
DRAY_API dray_status dray_wait(dray_runtime *rt, dray_ref *const *refs, size_t n, size_t num_ready,
                               int64_t timeout_ms, bool *ready, size_t *count);

/* dray_cancel: cancels the task behind `ref` if it has not started (it then reads as DRAY_ECANCELED,
 * and so do its dependents); a running task only sees dray_ctx_canceled(). DRAY_OK either way. */
DRAY_API dray_status dray_cancel(dray_runtime *rt, dray_ref *ref);

/* dray_ref_retain / dray_ref_release: count on a ref. Release is NULL-safe. */
DRAY_API dray_ref *dray_ref_retain(dray_ref *ref);
DRAY_API void dray_ref_release(dray_ref *ref);

/* dray_ref_ready: true once the object is available (value or error); never blocks. */
DRAY_API bool dray_ref_ready(const dray_ref *ref);

/* dray_ref_id: the object's id, unique within its runtime. */
DRAY_API uint64_t dray_ref_id(const dray_ref *ref);

/* ==== Actors ======================================================================================
 * A class is registered by name with init/destroy functions and named methods. Calls on one actor from
 * one caller run in the order they were made; max_concurrency > 1 lets several run at once. A method
 * that fails reports its error in its ref and the actor's state survives; a method that returns
 * DRAY_EFATAL, or dray_actor_kill without no_restart, kills the actor, which restarts (init runs again
 * with the original arguments) up to max_restarts times. */
typedef dray_status (*dray_actor_init_fn)(dray_ctx *ctx, const dray_value *args, size_t nargs,
                                          void **state);
typedef void (*dray_actor_destroy_fn)(void *state);
typedef dray_status (*dray_method_fn)(dray_ctx *ctx, void *state, const dray_value *args,
                                      size_t nargs, dray_value *result);

typedef struct dray_method {
    const char *name;
    dray_method_fn fn;
} dray_method;

typedef struct dray_actor_class {
    const char *name;
    dray_actor_init_fn init;
    dray_actor_destroy_fn destroy;
    const dray_method *methods;
    size_t n_methods;
    struct dray_actor_class *next; /* registry link */
} dray_actor_class;

/* dray_actor_class_register: adds a class to the process-wide registry (load time). */
DRAY_API void dray_actor_class_register(dray_actor_class *cls);
/* dray_actor_class_find: the class registered as `name`, or NULL. */
DRAY_API const dray_actor_class *dray_actor_class_find(const char *name);

/* DRAY_ACTOR_CLASS(Name, init, destroy, {"m1", fn1}, {"m2", fn2}, ...) registers class "Name". */
#define DRAY_ACTOR_CLASS(cname, initfn, destroyfn, ...)                                          \
    static const dray_method dray__methods_##cname[] = {__VA_ARGS__};                            \
    static dray_actor_class dray__class_##cname = {                                              \
        #cname, initfn, destroyfn, dray__methods_##cname,                                        \
        sizeof(dray__methods_##cname) / sizeof(dray__methods_##cname[0]), 0};                    \
    __attribute__((constructor)) static void dray__class_reg_##cname(void)                       \
    {                                                                                            \
        dray_actor_class_register(&dray__class_##cname);                                         \
    }

typedef struct dray_actor dray_actor;

typedef struct dray_actor_opts {
    const char *name;               /* for the dashboard */
    int max_concurrency;            /* default 1 */
    int max_restarts;               /* default 0 */
    int max_task_retries;           /* calls re-run on a restarted actor (default 0: they fail) */
    double num_cpus;                /* default 0 while idle, like Ray */
    const dray_resource *resources;
    size_t n_resources;
} dray_actor_opts;

/* dray_actor_create: creates an actor of class `class_name`; init runs on the pool with `args`
 * (borrowed; refs resolved like a task's). Errors in init surface on the first call's ref and in
 * dray_actor_ready. On DRAY_OK, *out is owned: dray_actor_release() (the actor lives on while calls
 * are pending, then is destroyed). */
DRAY_API dray_status dray_actor_create(dray_runtime *rt, const char *class_name,
                                       const dray_value *args, size_t nargs,
                                       const dray_actor_opts *opts, dray_actor **out);

/* dray_actor_method_index: the index of method `name` for dray_actor_call_m, or -1 (error set). */
DRAY_API int dray_actor_method_index(const dray_actor *actor, const char *name);

/* dray_actor_call: calls method `method` with `args` (borrowed). On DRAY_OK, *out is an owned ref to
 * the call's result. Unknown method: DRAY_ENOTFOUND naming it. */
DRAY_API dray_status dray_actor_call(dray_runtime *rt, dray_actor *actor, const char *method,
                                     const dray_value *args, size_t nargs, dray_ref **out);

/* dray_actor_call_m: the same by method index (no lookup). */
DRAY_API dray_status dray_actor_call_m(dray_runtime *rt, dray_actor *actor, int method,
                                       const dray_value *args, size_t nargs, dray_ref **out);

/* dray_actor_ready: waits for init; returns its status (DRAY_OK, or init's error). */
DRAY_API dray_status dray_actor_ready(dray_runtime *rt, dray_actor *actor, int64_t timeout_ms);

/* dray_actor_kill: kills the actor: pending calls fail with DRAY_EACTOR. With no_restart false and
 * restarts left, it restarts instead. */
DRAY_API dray_status dray_actor_kill(dray_runtime *rt, dray_actor *actor, bool no_restart);

/* dray_actor_restarts: how many times the actor restarted. */
DRAY_API int dray_actor_restarts(const dray_actor *actor);

/* dray_actor_release: drops the caller's handle. NULL-safe. */
DRAY_API void dray_actor_release(dray_actor *actor);

/* ==== Lazy graphs (Dask delayed) ====================================================================
 * A graph is a set of keyed task nodes built without running anything. dray_graph_compute culls the
 * nodes the outputs do not need, fuses linear chains into single tasks, and runs the rest on the
 * runtime, releasing each intermediate result as soon as its last consumer has run. Arguments may be
 * plain values, refs (from the eager API) or other nodes (dray_value_of_node). */
typedef struct dray_graph dray_graph;
typedef struct dray_node {
    uint32_t id;
} dray_node;

static inline dray_value dray_value_of_node(dray_node n)
{
    dray_value v = {DRAY_T_NODE, 0, {.node = n.id}};
    return v;
}

/* dray_graph_create: an empty graph on `rt`. On DRAY_OK, *out is owned: dray_graph_destroy(). */
DRAY_API dray_status dray_graph_create(dray_runtime *rt, dray_graph **out);

/* dray_graph_destroy: frees the graph (results already returned stay valid). NULL-safe. */
DRAY_API void dray_graph_destroy(dray_graph *g);

/* dray_graph_add: adds node `key` (copied; NULL = an anonymous node) calling `fn` on `args`
 * (borrowed; nodes must already exist). A duplicate key or unknown node is DRAY_EINVAL naming it. */
DRAY_API dray_status dray_graph_add(dray_graph *g, const char *key, const dray_function *fn,
                                    const dray_value *args, size_t nargs, dray_node *out);

/* dray_graph_add_named: the same with the function's registered name. */
DRAY_API dray_status dray_graph_add_named(dray_graph *g, const char *key, const char *fn_name,
                                          const dray_value *args, size_t nargs, dray_node *out);

/* dray_graph_find: the node with `key`, or DRAY_ENOTFOUND. */
DRAY_API dray_status dray_graph_find(const dray_graph *g, const char *key, dray_node *out);

/* dray_graph_size: the number of nodes. */
DRAY_API size_t dray_graph_size(const dray_graph *g);

/* dray_graph_submit: starts computing `outputs` and returns at once with one owned ref per output in
 * refs[0..n) (the graph may be destroyed or changed afterwards). */
DRAY_API dray_status dray_graph_submit(dray_graph *g, const dray_node *outputs, size_t n,
                                       dray_ref **refs);

/* dray_graph_compute: submits and waits. On DRAY_OK results[0..n) are owned values. On a failure the
 * first failed output's status is returned, dray_last_error() holds its cause chain, and nothing is
 * written to results. */
DRAY_API dray_status dray_graph_compute(dray_graph *g, const dray_node *outputs, size_t n,
                                        dray_value *results);

typedef struct dray_graph_stats {
    size_t nodes;     /* nodes in the graph */
    size_t culled;    /* left out: not needed by the outputs */
    size_t fused;     /* merged into a neighbour's task */
    size_t tasks;     /* tasks submitted */
} dray_graph_stats;

/* dray_graph_last_stats: what the last submit or compute did. */
DRAY_API void dray_graph_last_stats(const dray_graph *g, dray_graph_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* DRAY_CORE_H */
