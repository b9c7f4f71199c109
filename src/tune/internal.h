/* tune internals shared between the files of src/tune: space domains, config/result storage, the
 * scheduler and searcher vtables, and small helpers (quantiles, growable arrays). */
#ifndef DRAY_TUNE_INTERNAL_H
#define DRAY_TUNE_INTERNAL_H

#include "dray/tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- configs and results ---- */
typedef struct dray__tune_entry {
    char *path;
    dray_tune_val v; /* strings owned */
} dray__tune_entry;

struct dray_tune_config {
    dray__tune_entry *e;
    size_t n, cap;
};

typedef struct dray__tune_kv {
    char *name;
    double value;
} dray__tune_kv;

struct dray_tune_result {
    dray__tune_kv *kv;
    size_t n, cap;
};

/* ---- spaces ---- */
typedef enum dray__tune_dom {
    DRAY__DOM_GRID,
    DRAY__DOM_CHOICE,
    DRAY__DOM_CONST,
    DRAY__DOM_UNIFORM,
    DRAY__DOM_QUNIFORM,
    DRAY__DOM_LOGUNIFORM,
    DRAY__DOM_RANDINT,
    DRAY__DOM_QRANDINT,
    DRAY__DOM_RANDN,
    DRAY__DOM_SAMPLE_FROM
} dray__tune_dom;

typedef struct dray__tune_param {
    char *path;
    dray__tune_dom dom;
    dray_tune_val *vals; /* grid, choice, const: strings owned */
    size_t n_vals;
    double lo, hi, q;    /* numeric domains (randn: mean, sd) */
    int64_t ilo, ihi, iq;
    dray_tune_sample_fn fn;
    void *user;
} dray__tune_param;

struct dray_tune_space {
    dray__tune_param *p;
    size_t n, cap;
};

/* dray__tune_param_sample: one value of a random/choice domain (strings borrowed from the param). */
dray_tune_val dray__tune_param_sample(const dray__tune_param *p, dray_tune_rng *rng);
/* dray__tune_param_find: the param with `path`, or NULL. */
const dray__tune_param *dray__tune_param_find(const dray_tune_space *sp, const char *path);
/* dray__tune_val_equal: same kind and value (strings by content). */
bool dray__tune_val_equal(const dray_tune_val *a, const dray_tune_val *b);

/* ---- schedulers ---- */
typedef struct dray__tune_sched_ops {
    const char *name;
    dray_status (*on_add)(dray_tune_sched *s, const dray_tune_host *h, int trial);
    dray_status (*on_result)(dray_tune_sched *s, const dray_tune_host *h, int trial,
                             const dray_tune_result *r, dray_tune_decision *out);
    void (*on_complete)(dray_tune_sched *s, const dray_tune_host *h, int trial,
                        const dray_tune_result *last);
    void (*on_error)(dray_tune_sched *s, const dray_tune_host *h, int trial);
    void (*choose)(dray_tune_sched *s, const dray_tune_host *h, int *out);
    size_t (*debug)(const dray_tune_sched *s, char *buf, size_t size);
    void (*destroy)(dray_tune_sched *s);
} dray__tune_sched_ops;

struct dray_tune_sched {
    const dray__tune_sched_ops *ops;
    char *metric;
    char *time_attr;
    dray_tune_mode mode;
    double sign; /* +1 max, -1 min: scores are always maximised */
    size_t num_stopped;
};

/* dray__tune_sched_init: fills the common part. Borrows strings (copied). */
dray_status dray__tune_sched_init(dray_tune_sched *s, const dray__tune_sched_ops *ops,
                                  const char *time_attr, const char *metric, dray_tune_mode mode);
void dray__tune_sched_fini(dray_tune_sched *s);
/* dray__tune_fifo_choose: the first PENDING trial, else the first PAUSED one, else -1. */
void dray__tune_fifo_choose(dray_tune_sched *s, const dray_tune_host *h, int *out);
/* dray__tune_median: numpy.median of v[0..n) (sorted in place; NaN if any is NaN or n == 0). */
double dray__tune_median(double *v, size_t n);

/* ---- searchers ---- */
typedef struct dray__tune_searcher_ops {
    dray_status (*suggest)(dray_tune_searcher *s, int trial, dray_tune_config **out);
    void (*on_complete)(dray_tune_searcher *s, int trial, const dray_tune_result *last, bool error);
    int64_t (*total)(const dray_tune_searcher *s);
    void (*destroy)(dray_tune_searcher *s);
} dray__tune_searcher_ops;

struct dray_tune_searcher {
    const dray__tune_searcher_ops *ops;
};

/* ---- helpers ---- */
/* dray__tune_grow: makes room for one more element in *arr (of `elem` bytes, *cap capacity). */
dray_status dray__tune_grow(void **arr, size_t *cap, size_t n, size_t elem);
/* dray__tune_reserve_ids: makes *arr (items of `elem` bytes, *cap of them) hold index `id`; new
 * items are zeroed. */
dray_status dray__tune_reserve_ids(void **arr, size_t *cap, size_t id, size_t elem);
char *dray__tune_strdup(const char *s);

/* dray__tune_config_encode / _decode: a config as bytes (for actor arguments and state files).
 * decode checks its untrusted input fully. */
dray_status dray__tune_config_encode(const dray_tune_config *cfg, void **buf, size_t *len);
dray_status dray__tune_config_decode(const void *buf, size_t len, dray_tune_config **out);
dray_status dray__tune_result_encode(const dray_tune_result *r, void **buf, size_t *len);
dray_status dray__tune_result_decode(const void *buf, size_t len, dray_tune_result **out);

#endif /* DRAY_TUNE_INTERNAL_H */
