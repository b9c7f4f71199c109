/* tune runner internals: one trial's bookkeeping (shared by the runner, the result grid and the
 * experiment state files). */
#ifndef DRAY_TUNE_RUNNER_H
#define DRAY_TUNE_RUNNER_H

#include "internal.h"

typedef struct dray__tune_trial {
    int id;
    dray_tune_status status;
    dray_tune_config *cfg;
    dray_tune_result **hist;
    size_t n_hist, cap_hist;
    int64_t iter;        /* training_iteration of the last result */
    double time_total;   /* time_total_s of the last result */
    char *error;
    int failures;
    dray_actor *actor;   /* while RUNNING */
    dray_ref *inflight;  /* the pending step call */
    dray_ref *ckpt;      /* latest checkpoint (bytes or null) in the object store */
    int64_t ckpt_iter;   /* iteration and time the checkpoint was taken at */
    double ckpt_time;
    bool done;           /* the searcher was told */
} dray__tune_trial;

struct dray_tune_grid {
    dray__tune_trial *t;
    size_t n;
    char *metric;
    dray_tune_mode mode;
};

void dray__tune_trial_fini(dray__tune_trial *t);
size_t dray__tune_table(const dray__tune_trial *trials, size_t n, const char *metric, char *buf,
                        size_t size);
/* dray__tune_state_save / _load: the experiment state in `dir` (trials with history and
 * checkpoints). load returns DRAY_ENOTFOUND when there is no state. */
dray_status dray__tune_state_save(dray_runtime *rt, const char *dir, const dray__tune_trial *t,
                                  size_t n, int64_t suggested);
dray_status dray__tune_state_load(dray_runtime *rt, const char *dir, dray__tune_trial **t, size_t *n,
                                  int64_t *suggested);

/* dray__tune_publish (snapshot.c): the experiment's state for the dashboard (only while the
 * runtime records events). `status` is "RUNNING" or "TERMINATED". */
void dray__tune_publish(dray_runtime *rt, const char *name, const dray__tune_trial *t, size_t n,
                        const char *metric, const char *status);
#endif
