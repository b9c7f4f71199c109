/* dray tune: hyperparameter search on dray actors, in the manner of Ray Tune 2.x.
 *
 * Pieces, each usable alone: search spaces and their variants (grid x num_samples, seeded sampling),
 * search algorithms (basic grid/random, TPE), schedulers as pure decision logic (FIFO, ASHA,
 * synchronous HyperBand, median stopping, PBT), trainables (a function that reports, or a class with
 * setup/step/save/load/cleanup) registered by name, and dray_tune_run, which runs trials as actors
 * and returns a result grid (best trial, CSV export, experiment state for resume).
 * Thread-safety: one object is used by one thread at a time; dray_tune_run may be called from any
 * thread. Ownership: each declaration says what it takes, borrows or returns owned.
 */
#ifndef DRAY_TUNE_H
#define DRAY_TUNE_H

#include "dray/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Scalars =======================================================================================
 * A hyperparameter value: int, float, string or bool. Strings in a dray_tune_val are borrowed where
 * a call takes one and owned by the object they come from where a call returns one. */
typedef enum dray_tune_kind {
    DRAY_TUNE_NONE = 0,
    DRAY_TUNE_INT,
    DRAY_TUNE_FLOAT,
    DRAY_TUNE_STR,
    DRAY_TUNE_BOOL
} dray_tune_kind;

typedef struct dray_tune_val {
    int kind; /* dray_tune_kind */
    union {
        int64_t i;
        double f;
        const char *s;
        bool b;
    } u;
} dray_tune_val;

static inline dray_tune_val dray_tune_i(int64_t i) { dray_tune_val v = {DRAY_TUNE_INT, {.i = i}}; return v; }
static inline dray_tune_val dray_tune_f(double f) { dray_tune_val v = {DRAY_TUNE_FLOAT, {.f = f}}; return v; }
static inline dray_tune_val dray_tune_s(const char *s) { dray_tune_val v = {DRAY_TUNE_STR, {.s = s}}; return v; }
static inline dray_tune_val dray_tune_b(bool b) { dray_tune_val v = {DRAY_TUNE_BOOL, {.b = b}}; return v; }

/* dray_tune_val_num: the value as a double (ints and bools converted; strings and none are NaN). */
DRAY_API double dray_tune_val_num(const dray_tune_val *v);

/* ==== Configs =======================================================================================
 * A resolved configuration: an ordered list of parameter paths and values. Nested parameters use
 * '/' in their path ("optimizer/lr"). Immutable once built by the library. */
typedef struct dray_tune_config dray_tune_config;

/* dray_tune_config_create: an empty config. On DRAY_OK *out is owned: dray_tune_config_destroy(). */
DRAY_API dray_status dray_tune_config_create(dray_tune_config **out);
/* dray_tune_config_clone: a deep copy of `cfg` (borrowed). On DRAY_OK *out is owned. */
DRAY_API dray_status dray_tune_config_clone(const dray_tune_config *cfg, dray_tune_config **out);
/* dray_tune_config_destroy: frees `cfg`. NULL-safe. */
DRAY_API void dray_tune_config_destroy(dray_tune_config *cfg);
/* dray_tune_config_set: sets `path` to `v` (both borrowed; strings copied), replacing an old value. */
DRAY_API dray_status dray_tune_config_set(dray_tune_config *cfg, const char *path, dray_tune_val v);
/* dray_tune_config_get: the value at `path` (owned by cfg), or NULL. */
DRAY_API const dray_tune_val *dray_tune_config_get(const dray_tune_config *cfg, const char *path);
/* dray_tune_config_num / _int / _str: typed reads with a default when the path is missing. _num
 * converts ints and bools; _int rounds floats to nearest. _str returns a string owned by cfg. */
DRAY_API double dray_tune_config_num(const dray_tune_config *cfg, const char *path, double dflt);
DRAY_API int64_t dray_tune_config_int(const dray_tune_config *cfg, const char *path, int64_t dflt);
DRAY_API const char *dray_tune_config_str(const dray_tune_config *cfg, const char *path,
                                          const char *dflt);
/* dray_tune_config_len / _path_at / _val_at: iteration in order. Borrowed from cfg. */
DRAY_API size_t dray_tune_config_len(const dray_tune_config *cfg);
DRAY_API const char *dray_tune_config_path_at(const dray_tune_config *cfg, size_t i);
DRAY_API const dray_tune_val *dray_tune_config_val_at(const dray_tune_config *cfg, size_t i);
/* dray_tune_config_format: "a=1, b=0.5, opt=adam" into buf (always terminated); returns the length
 * it would have had. */
DRAY_API size_t dray_tune_config_format(const dray_tune_config *cfg, char *buf, size_t size);
/* dray_tune_config_equal: same paths, kinds and values in the same order. */
DRAY_API bool dray_tune_config_equal(const dray_tune_config *a, const dray_tune_config *b);

/* ==== Search spaces =================================================================================
 * A space maps parameter paths to domains. Variants resolve grids first (the first grid parameter
 * varies fastest, like Ray's BasicVariantGenerator), then random domains in declaration order, then
 * sample_from callbacks in declaration order (these see every earlier value: conditional sampling).
 * Each add call validates its domain: bad bounds, empty grids, quantisation that does not divide the
 * bounds, or a path added twice are DRAY_EINVAL naming the parameter. */
typedef struct dray_tune_space dray_tune_space;
typedef struct dray_tune_rng {
    uint64_t s[4];
} dray_tune_rng;

/* dray_tune_rng_seed / _next / _uniform / _normal: the library's seeded generator (xoshiro256**),
 * given to sample_from callbacks. _uniform is in [0, 1). */
DRAY_API void dray_tune_rng_seed(dray_tune_rng *rng, uint64_t seed);
DRAY_API uint64_t dray_tune_rng_next(dray_tune_rng *rng);
DRAY_API double dray_tune_rng_uniform(dray_tune_rng *rng);
DRAY_API double dray_tune_rng_normal(dray_tune_rng *rng);

/* A conditional sampler: sees the config resolved so far (borrowed) and writes the value to *out
 * (strings must live as long as `user`; they are copied). Returning non-OK fails the variant. */
typedef dray_status (*dray_tune_sample_fn)(const dray_tune_config *partial, dray_tune_rng *rng,
                                           void *user, dray_tune_val *out);

/* dray_tune_space_create: an empty space. On DRAY_OK *out is owned: dray_tune_space_destroy(). */
DRAY_API dray_status dray_tune_space_create(dray_tune_space **out);
/* dray_tune_space_destroy: frees the space (searchers and PBT borrowing it must be gone). NULL-safe. */
DRAY_API void dray_tune_space_destroy(dray_tune_space *sp);
/* Domains. All borrow `path` and values (copied). Bounds follow Ray: uniform [lo, hi); loguniform
 * lo > 0; randint [lo, hi) (hi exclusive); qrandint [lo, hi] inclusive, rounded to multiples of q;
 * quniform rounds to the nearest multiple of q (lo and hi must be multiples of q). */
DRAY_API dray_status dray_tune_space_grid(dray_tune_space *sp, const char *path,
                                          const dray_tune_val *values, size_t n);
DRAY_API dray_status dray_tune_space_choice(dray_tune_space *sp, const char *path,
                                            const dray_tune_val *values, size_t n);
DRAY_API dray_status dray_tune_space_const(dray_tune_space *sp, const char *path, dray_tune_val v);
DRAY_API dray_status dray_tune_space_uniform(dray_tune_space *sp, const char *path, double lo, double hi);
DRAY_API dray_status dray_tune_space_quniform(dray_tune_space *sp, const char *path, double lo,
                                              double hi, double q);
DRAY_API dray_status dray_tune_space_loguniform(dray_tune_space *sp, const char *path, double lo,
                                                double hi);
DRAY_API dray_status dray_tune_space_randint(dray_tune_space *sp, const char *path, int64_t lo,
                                             int64_t hi);
DRAY_API dray_status dray_tune_space_qrandint(dray_tune_space *sp, const char *path, int64_t lo,
                                              int64_t hi, int64_t q);
DRAY_API dray_status dray_tune_space_randn(dray_tune_space *sp, const char *path, double mean,
                                           double sd);
DRAY_API dray_status dray_tune_space_sample_from(dray_tune_space *sp, const char *path,
                                                 dray_tune_sample_fn fn, void *user);
/* dray_tune_space_grid_size: the number of grid combinations (1 with no grid). */
DRAY_API size_t dray_tune_space_grid_size(const dray_tune_space *sp);
/* dray_tune_space_sample: one variant: grid combination `grid_index` (mod the grid size) with every
 * random domain sampled from `rng`. On DRAY_OK *out is owned. */
DRAY_API dray_status dray_tune_space_sample(const dray_tune_space *sp, size_t grid_index,
                                            dray_tune_rng *rng, dray_tune_config **out);

/* ==== Results =======================================================================================
 * One reported result: named numeric metrics in report order. The runner adds training_iteration,
 * time_this_iter_s, time_total_s and done. A missing metric reads as absent, NaN is kept. */
typedef struct dray_tune_result dray_tune_result;
typedef struct dray_tune_metric {
    const char *name;
    double value;
} dray_tune_metric;

/* dray_tune_result_create / _clone: an empty result / a deep copy of `r` (borrowed). On DRAY_OK *out
 * is owned: dray_tune_result_destroy() (NULL-safe). */
DRAY_API dray_status dray_tune_result_create(dray_tune_result **out);
DRAY_API dray_status dray_tune_result_clone(const dray_tune_result *r, dray_tune_result **out);
DRAY_API void dray_tune_result_destroy(dray_tune_result *r);
/* dray_tune_result_set: sets metric `name` (copied) to `value`. */
DRAY_API dray_status dray_tune_result_set(dray_tune_result *r, const char *name, double value);
/* dray_tune_result_get: true and *value when `name` is present. */
DRAY_API bool dray_tune_result_get(const dray_tune_result *r, const char *name, double *value);
/* dray_tune_result_len / _name_at / _value_at: iteration in report order (names borrowed from r). */
DRAY_API size_t dray_tune_result_len(const dray_tune_result *r);
DRAY_API const char *dray_tune_result_name_at(const dray_tune_result *r, size_t i);
DRAY_API double dray_tune_result_value_at(const dray_tune_result *r, size_t i);

/* ==== Schedulers ====================================================================================
 * A scheduler decides, from reported results, whether a trial continues, pauses or stops, and which
 * pending or paused trial runs next. It talks to whoever runs the trials through a host: the runner
 * in dray_tune_run, or a test. Trial ids are small integers chosen by the host. */
typedef enum dray_tune_decision {
    DRAY_TUNE_CONTINUE = 0,
    DRAY_TUNE_PAUSE,
    DRAY_TUNE_STOP,
    DRAY_TUNE_NOOP /* the scheduler already acted on the trial through the host */
} dray_tune_decision;

typedef enum dray_tune_status {
    DRAY_TUNE_PENDING = 0,
    DRAY_TUNE_RUNNING,
    DRAY_TUNE_PAUSED,
    DRAY_TUNE_TERMINATED,
    DRAY_TUNE_ERROR
} dray_tune_status;

/* dray_tune_status_name: "PENDING", "RUNNING", ... */
DRAY_API const char *dray_tune_status_name(dray_tune_status st);

typedef struct dray_tune_host {
    void *ctx;
    size_t (*num_trials)(void *ctx);
    int (*trial_id_at)(void *ctx, size_t i);
    dray_tune_status (*trial_status)(void *ctx, int trial);
    const dray_tune_config *(*trial_config)(void *ctx, int trial);
    /* Stops a paused or pending trial (TERMINATED). The scheduler has already forgotten it: the
     * host must not call on_trial_complete for it. */
    void (*stop_trial)(void *ctx, int trial);
    /* Marks a paused trial PENDING so it can be resumed. */
    void (*unpause_trial)(void *ctx, int trial);
    /* PBT: asks for a checkpoint of `trial` at its latest result (stored by the host). */
    dray_status (*save_trial)(void *ctx, int trial);
    /* PBT: restarts `trial` from `source`'s latest saved checkpoint with config `cfg` (borrowed),
     * pausing it first. DRAY_ENOTFOUND when `source` has no checkpoint. */
    dray_status (*exploit)(void *ctx, int trial, int source, const dray_tune_config *cfg);
} dray_tune_host;

typedef struct dray_tune_sched dray_tune_sched;

typedef enum dray_tune_mode { DRAY_TUNE_MODE_UNSET = 0, DRAY_TUNE_MIN, DRAY_TUNE_MAX } dray_tune_mode;

/* dray_tune_mode_parse: "min" / "max" to a mode; anything else is DRAY_EINVAL naming it. */
DRAY_API dray_status dray_tune_mode_parse(const char *s, dray_tune_mode *out);

typedef struct dray_tune_asha_opts {
    const char *time_attr; /* "training_iteration" */
    const char *metric;    /* NULL: taken from the run's metric */
    dray_tune_mode mode;   /* UNSET: taken from the run's mode */
    double max_t;          /* 100 */
    double grace_period;   /* 1 */
    double reduction_factor; /* 4 */
    int brackets;          /* 1 */
    bool stop_last_trials; /* true */
    uint64_t seed;         /* bracket choice */
} dray_tune_asha_opts;

typedef struct dray_tune_hyperband_opts {
    const char *time_attr; /* "training_iteration" */
    const char *metric;
    dray_tune_mode mode;
    double max_t;            /* 81 */
    double reduction_factor; /* 3 */
    bool stop_last_trials;   /* true */
} dray_tune_hyperband_opts;

typedef struct dray_tune_median_opts {
    const char *time_attr; /* "time_total_s" */
    const char *metric;
    dray_tune_mode mode;
    double grace_period;      /* 60 */
    int min_samples_required; /* 3 */
    double min_time_slice;    /* 0 */
    bool hard_stop;           /* true */
} dray_tune_median_opts;

/* A PBT mutation: a continuous domain (uniform, loguniform, ...: resample from it or multiply by a
 * perturbation factor) or a list (resample or shift to a neighbour). */
typedef struct dray_tune_pbt_opts {
    const char *time_attr; /* "time_total_s" */
    const char *metric;
    dray_tune_mode mode;
    double perturbation_interval; /* 60 */
    double burn_in_period;        /* 0 */
    const dray_tune_space *mutations; /* borrowed for the scheduler's life: grid and choice domains
                                       * are lists, the others are continuous */
    double quantile_fraction;     /* 0.25 */
    double resample_probability;  /* 0.25 */
    double perturbation_factors[2]; /* 1.2, 0.8 */
    /* Optional: applied after the built-in perturbations; edits *cfg in place. */
    dray_status (*custom_explore)(dray_tune_config *cfg, dray_tune_rng *rng, void *user);
    void *custom_explore_user;
    bool synch;                   /* false */
    uint64_t seed;
} dray_tune_pbt_opts;

/* Option initialisers: fill in Ray Tune's defaults. */
DRAY_API void dray_tune_asha_opts_init(dray_tune_asha_opts *o);
DRAY_API void dray_tune_hyperband_opts_init(dray_tune_hyperband_opts *o);
DRAY_API void dray_tune_median_opts_init(dray_tune_median_opts *o);
DRAY_API void dray_tune_pbt_opts_init(dray_tune_pbt_opts *o);

/* Constructors. Options are borrowed (strings copied). Invalid options (max_t <= 0, grace_period >
 * max_t, reduction_factor <= 1, brackets < 1, quantile_fraction outside [0, 0.5], ...) are DRAY_EINVAL
 * naming the option. On DRAY_OK *out is owned: dray_tune_sched_destroy(). */
DRAY_API dray_status dray_tune_sched_create_fifo(dray_tune_sched **out);
DRAY_API dray_status dray_tune_sched_create_asha(const dray_tune_asha_opts *o, dray_tune_sched **out);
DRAY_API dray_status dray_tune_sched_create_hyperband(const dray_tune_hyperband_opts *o,
                                                      dray_tune_sched **out);
DRAY_API dray_status dray_tune_sched_create_median(const dray_tune_median_opts *o,
                                                   dray_tune_sched **out);
DRAY_API dray_status dray_tune_sched_create_pbt(const dray_tune_pbt_opts *o, dray_tune_sched **out);
/* dray_tune_sched_destroy: frees a scheduler (not while a run uses it). NULL-safe. */
DRAY_API void dray_tune_sched_destroy(dray_tune_sched *s);

/* dray_tune_sched_name: "FIFO", "ASHA", "HyperBand", "MedianStopping", "PBT". */
DRAY_API const char *dray_tune_sched_name(const dray_tune_sched *s);
/* dray_tune_sched_set_search_properties: fills in metric/mode left unset at construction (like
 * Ray's set_search_properties). Borrows metric. A mode other than MIN/MAX is DRAY_EINVAL. */
DRAY_API dray_status dray_tune_sched_set_search_properties(dray_tune_sched *s, const char *metric,
                                                           dray_tune_mode mode);
/* dray_tune_sched_on_trial_add: a new trial. DRAY_EINVAL when metric or mode is still unset. */
DRAY_API dray_status dray_tune_sched_on_trial_add(dray_tune_sched *s, const dray_tune_host *h,
                                                  int trial);
/* dray_tune_sched_on_trial_result: the decision for a result (borrowed) of a RUNNING trial. */
DRAY_API dray_status dray_tune_sched_on_trial_result(dray_tune_sched *s, const dray_tune_host *h,
                                                     int trial, const dray_tune_result *r,
                                                     dray_tune_decision *out);
/* dray_tune_sched_on_trial_complete: the trial ended by itself or was stopped; `last` may be NULL. */
DRAY_API void dray_tune_sched_on_trial_complete(dray_tune_sched *s, const dray_tune_host *h,
                                                int trial, const dray_tune_result *last);
/* dray_tune_sched_on_trial_error: the trial failed for good. */
DRAY_API void dray_tune_sched_on_trial_error(dray_tune_sched *s, const dray_tune_host *h, int trial);
/* dray_tune_sched_choose_trial: the PENDING or PAUSED trial to run next (*out), or -1. */
DRAY_API void dray_tune_sched_choose_trial(dray_tune_sched *s, const dray_tune_host *h, int *out);
/* dray_tune_sched_num_stopped: trials the scheduler stopped early so far. */
DRAY_API size_t dray_tune_sched_num_stopped(const dray_tune_sched *s);
/* dray_tune_sched_debug: a one-paragraph state summary ("Iter 4: cutoff 0.5 ...") into buf. */
DRAY_API size_t dray_tune_sched_debug(const dray_tune_sched *s, char *buf, size_t size);

/* ==== Search algorithms =============================================================================
 * A searcher hands out configs. suggest returns DRAY_OK with a new config, DRAY_EBUSY when it wants
 * to wait for results before suggesting more, or DRAY_ENOTFOUND when it has nothing more to give. */
typedef struct dray_tune_searcher dray_tune_searcher;

/* dray_tune_searcher_create_basic: Ray's BasicVariantGenerator: num_samples passes over the grid,
 * random domains sampled per variant from `seed` (num_samples -1: endless). Borrows the space for
 * the searcher's life. On DRAY_OK *out is owned: dray_tune_searcher_destroy(). */
DRAY_API dray_status dray_tune_searcher_create_basic(const dray_tune_space *sp, int64_t num_samples,
                                                     uint64_t seed, dray_tune_searcher **out);

typedef struct dray_tune_tpe_opts {
    const char *metric;
    dray_tune_mode mode;
    int64_t num_samples;     /* trials to suggest in all */
    int n_startup;           /* random trials before the model (10) */
    int n_candidates;        /* candidates drawn from l(x) per suggestion (24) */
    double gamma;            /* fraction of observations counted as good (0.25) */
    uint64_t seed;
} dray_tune_tpe_opts;
/* dray_tune_tpe_opts_init: the defaults above (metric and mode must still be set). */
DRAY_API void dray_tune_tpe_opts_init(dray_tune_tpe_opts *o);
/* dray_tune_searcher_create_tpe: a Tree-structured Parzen Estimator over the space's random and
 * choice domains (grids are DRAY_EINVAL; constants and sample_from pass through). Borrows sp. */
DRAY_API dray_status dray_tune_searcher_create_tpe(const dray_tune_space *sp,
                                                   const dray_tune_tpe_opts *o,
                                                   dray_tune_searcher **out);
/* dray_tune_searcher_destroy: frees a searcher (not while a run uses it). NULL-safe. */
DRAY_API void dray_tune_searcher_destroy(dray_tune_searcher *s);
/* dray_tune_searcher_suggest: a config for new trial `trial`; on DRAY_OK *out is owned. */
DRAY_API dray_status dray_tune_searcher_suggest(dray_tune_searcher *s, int trial,
                                                dray_tune_config **out);
/* dray_tune_searcher_on_complete: trial `trial` ended with its last result (NULL on error). */
DRAY_API void dray_tune_searcher_on_complete(dray_tune_searcher *s, int trial,
                                             const dray_tune_result *last, bool error);
/* dray_tune_searcher_total: how many configs it will give in all (-1: endless or unknown). */
DRAY_API int64_t dray_tune_searcher_total(const dray_tune_searcher *s);

/* ==== Trainables ====================================================================================
 * Trainables are registered by name at load time (DRAY_TUNE_TRAINABLE), so every process running the
 * same binary can start their actors. A function trainable runs in its own thread inside the trial's
 * actor and calls dray_tune_report once per iteration; a class trainable's step is called once per
 * iteration by the runner. `user` is process-local data (NULL on a cluster unless every process sets
 * it the same way). */
typedef struct dray_tune_session dray_tune_session;

typedef dray_status (*dray_tune_fn)(dray_tune_session *s, const dray_tune_config *cfg, void *user);

typedef struct dray_tune_class {
    /* Builds the trial's state from its config (borrowed). `rt` is the runtime running the trial:
     * step may submit dray tasks and wait for them (the worker helps while it waits). Required. */
    dray_status (*setup)(dray_runtime *rt, const dray_tune_config *cfg, void *user, void **state);
    /* One training iteration: sets metrics in *r (empty on entry). Setting "done" to 1 ends the
     * trial after this result. Required. */
    dray_status (*step)(void *state, dray_tune_result *r);
    /* Serialises the state: *data from malloc (freed by the library), *len bytes. Optional. */
    dray_status (*save)(void *state, void **data, size_t *len);
    /* Restores a state saved by save (borrowed bytes). Optional, needed with save. */
    dray_status (*load)(void *state, const void *data, size_t len);
    /* Frees the state. Optional. */
    void (*cleanup)(void *state);
} dray_tune_class;

typedef struct dray_tune_trainable {
    const char *name;
    dray_tune_fn fn;             /* a function trainable, or */
    const dray_tune_class *cls;  /* a class trainable */
    void *user;
    struct dray_tune_trainable *next; /* registry link */
} dray_tune_trainable;

/* dray_tune_trainable_register: adds `t` to the process-wide registry (load time). */
DRAY_API void dray_tune_trainable_register(dray_tune_trainable *t);
/* dray_tune_trainable_find: the trainable registered as `name`, or NULL (error set naming it). */
DRAY_API const dray_tune_trainable *dray_tune_trainable_find(const char *name);

/* DRAY_TUNE_TRAINABLE(var): registers the dray_tune_trainable `var` at load time. */
#define DRAY_TUNE_TRAINABLE(var)                                                               \
    __attribute__((constructor)) static void dray__tune_reg_##var(void)                        \
    {                                                                                          \
        dray_tune_trainable_register(&(var));                                                  \
    }

/* dray_tune_report: reports one iteration's metrics (borrowed) from a function trainable and waits
 * until the runner wants the next one. DRAY_OK: go on; DRAY_ECANCELED: the trial is to stop (return
 * from the function). */
DRAY_API dray_status dray_tune_report(dray_tune_session *s, const dray_tune_metric *m, size_t n);
/* dray_tune_report_checkpoint: the same with a checkpoint of the training state (bytes borrowed,
 * copied into the object store) that a resumed or exploiting trial starts from. */
DRAY_API dray_status dray_tune_report_checkpoint(dray_tune_session *s, const dray_tune_metric *m,
                                                 size_t n, const void *data, size_t len);
/* dray_tune_session_checkpoint: the checkpoint this run starts from (borrowed; NULL, 0 if none). */
DRAY_API const void *dray_tune_session_checkpoint(dray_tune_session *s, size_t *len);
/* dray_tune_session_runtime: the runtime running the trial, for nested dray work. The function runs
 * on its own thread while its actor's step call holds a worker: with nested tasks, leave workers
 * free (max_concurrent_trials below the worker count) or use a class trainable. */
DRAY_API dray_runtime *dray_tune_session_runtime(dray_tune_session *s);
/* dray_tune_session_iteration: the training_iteration the next report will carry, minus one. */
DRAY_API int64_t dray_tune_session_iteration(dray_tune_session *s);

/* ==== Running experiments ===========================================================================*/
typedef struct dray_tune_grid dray_tune_grid;

/* A stop criterion: the trial stops when result[metric] >= value (Ray's stop dict); use
 * "training_iteration" for a maximum of iterations. */
typedef struct dray_tune_stop {
    const char *metric;
    double value;
} dray_tune_stop;

typedef enum dray_tune_verbose {
    DRAY_TUNE_QUIET = 0,
    DRAY_TUNE_TABLE_AUTO, /* live table when stderr is a TTY */
    DRAY_TUNE_TABLE_ALWAYS
} dray_tune_verbose;

typedef struct dray_tune_run_opts {
    const char *name;            /* experiment name ("tune") */
    const char *metric;          /* default metric for schedulers, searchers and best() */
    dray_tune_mode mode;
    int64_t num_samples;         /* 1 */
    uint64_t seed;               /* 0 */
    int max_concurrent_trials;   /* 0: as many as the runtime's workers allow */
    double num_cpus;             /* per trial, 1 */
    double num_gpus;             /* per trial, 0 */
    const dray_resource *resources; /* custom resources per trial */
    size_t n_resources;
    dray_tune_sched *scheduler;  /* borrowed; NULL: FIFO */
    dray_tune_searcher *searcher;/* borrowed; NULL: basic variants of the space */
    const dray_tune_stop *stop;  /* per-trial stop criteria */
    size_t n_stop;
    /* Optional user stop: true stops the trial. Borrows the result. */
    bool (*stop_fn)(int trial, const dray_tune_result *r, void *user);
    void *stop_user;
    /* Optional, polled after each batch of results (with stop_user): true interrupts the
     * experiment; running trials are left PENDING with their last checkpoint, the state is saved
     * (with storage_path) and a later run with resume continues it. */
    bool (*stop_experiment)(void *user);
    double time_budget_s;        /* 0: none. Running trials are stopped when it passes */
    int max_failures;            /* retries of a failing trial (0) */
    int checkpoint_freq;         /* class trainables: save every N iterations (0: never) */
    bool checkpoint_at_end;
    const char *storage_path;    /* experiment directory: state saved there (NULL: none) */
    bool resume;                 /* continue the experiment saved in storage_path */
    int verbose;                 /* dray_tune_verbose (TABLE_AUTO) */
} dray_tune_run_opts;

/* dray_tune_run_opts_init: the defaults above. */
DRAY_API void dray_tune_run_opts_init(dray_tune_run_opts *o);

/* dray_tune_run: runs the experiment: trials of the registered trainable `trainable` on `rt`, configs from the space
 * (borrowed) or opts->searcher. A failing trial is retried max_failures times then marked ERROR with
 * its message; the experiment goes on. Returns DRAY_OK when the experiment ran (even with trial
 * errors): *out is owned: dray_tune_grid_destroy(). Bad options are DRAY_EINVAL naming them. */
DRAY_API dray_status dray_tune_run(dray_runtime *rt, const char *trainable,
                                   const dray_tune_space *sp, const dray_tune_run_opts *opts,
                                   dray_tune_grid **out);

/* ==== Result grid =================================================================================== */
/* dray_tune_grid_load: the grid of the experiment saved in `dir` (a run's storage_path), finished or
 * interrupted, for inspection; checkpoints go into rt's object store. `metric`/`mode` (may be NULL /
 * UNSET) become the defaults of best(). DRAY_ENOTFOUND when `dir` holds no state, DRAY_EFORMAT
 * naming the file when it is corrupt. On DRAY_OK *out is owned: dray_tune_grid_destroy(). */
DRAY_API dray_status dray_tune_grid_load(dray_runtime *rt, const char *dir, const char *metric,
                                         dray_tune_mode mode, dray_tune_grid **out);
/* dray_tune_grid_destroy: frees the grid and everything borrowed from it. NULL-safe. */
DRAY_API void dray_tune_grid_destroy(dray_tune_grid *g);
/* dray_tune_grid_len: the number of trials, in creation order (trial ids 0..len-1). */
DRAY_API size_t dray_tune_grid_len(const dray_tune_grid *g);
/* Per trial (index i < len). Borrowed from g. */
DRAY_API const dray_tune_config *dray_tune_grid_config(const dray_tune_grid *g, size_t i);
DRAY_API dray_tune_status dray_tune_grid_status(const dray_tune_grid *g, size_t i);
/* The last reported result (NULL if none). */
DRAY_API const dray_tune_result *dray_tune_grid_last(const dray_tune_grid *g, size_t i);
/* Every result in order (*n of them). */
DRAY_API const dray_tune_result *const *dray_tune_grid_history(const dray_tune_grid *g, size_t i,
                                                               size_t *n);
/* The error message of an ERROR trial ("" otherwise). */
DRAY_API const char *dray_tune_grid_error(const dray_tune_grid *g, size_t i);
DRAY_API int64_t dray_tune_grid_iterations(const dray_tune_grid *g, size_t i);
DRAY_API double dray_tune_grid_time_s(const dray_tune_grid *g, size_t i);
/* dray_tune_grid_num_errors: how many trials ended in ERROR. */
DRAY_API size_t dray_tune_grid_num_errors(const dray_tune_grid *g);
/* dray_tune_grid_best: the trial with the best `metric` (NULL: the run's) by `mode` (UNSET: the
 * run's), scope "last" (its last result) or "all" (any of its results). NaN and missing values never
 * win. DRAY_ENOTFOUND when no trial reported it; bad metric/mode/scope is DRAY_EINVAL. */
DRAY_API dray_status dray_tune_grid_best(const dray_tune_grid *g, const char *metric,
                                         dray_tune_mode mode, const char *scope, size_t *index,
                                         double *value);
/* dray_tune_grid_write_csv: one row per trial: trial_id, status, iterations, time_total_s, each
 * config path as config/<path>, each last metric, error. Borrows path. */
DRAY_API dray_status dray_tune_grid_write_csv(const dray_tune_grid *g, const char *path);
/* dray_tune_grid_to_table: the same rows as the CSV as a frame table (trial_id int64, status utf8,
 * iterations int64, time_total_s float64, config/<path> typed by its values (int64, float64, bool or
 * utf8; missing = null), metrics float64 (missing = null), error utf8 (null when none)). Needs the
 * frame module in the build: DRAY_EUNSUPPORTED without it. On DRAY_OK *out is owned:
 * dray_table_release(). */
typedef struct dray_table dray_table;
DRAY_API dray_status dray_tune_grid_to_table(const dray_tune_grid *g, dray_table **out);
/* dray_tune_grid_write_parquet: that table as one Parquet file at `path` (frame/parquet modules). */
DRAY_API dray_status dray_tune_grid_write_parquet(const dray_tune_grid *g, const char *path);
/* dray_tune_grid_table: the status table (like Ray's reporter) into buf; returns the full length. */
DRAY_API size_t dray_tune_grid_table(const dray_tune_grid *g, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* DRAY_TUNE_H */
