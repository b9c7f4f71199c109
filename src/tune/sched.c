/* tune schedulers: the common part (metric, mode, dispatch), FIFO, and numpy's median, which the
 * median stopping rule relies on. */
#include "internal.h"

#include <stdio.h>

const char *dray_tune_status_name(dray_tune_status st)
{
    static const char *names[] = {"PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR"};
    return (unsigned)st < 5 ? names[st] : "UNKNOWN";
}

dray_status dray_tune_mode_parse(const char *s, dray_tune_mode *out)
{
    if (s && strcmp(s, "min") == 0)
        *out = DRAY_TUNE_MIN;
    else if (s && strcmp(s, "max") == 0)
        *out = DRAY_TUNE_MAX;
    else
        return dray_set_error(DRAY_EINVAL, "tune: mode '%s' must be 'min' or 'max'",
                              s ? s : "(null)");
    return DRAY_OK;
}

static bool mode_ok(dray_tune_mode m) { return m == DRAY_TUNE_MIN || m == DRAY_TUNE_MAX; }

dray_status dray__tune_sched_init(dray_tune_sched *s, const dray__tune_sched_ops *ops,
                                  const char *time_attr, const char *metric, dray_tune_mode mode)
{
    if (mode != DRAY_TUNE_MODE_UNSET && !mode_ok(mode))
        return dray_set_error(DRAY_EINVAL, "tune: %s: mode %d must be min or max", ops->name,
                              (int)mode);
    if (!time_attr || !*time_attr)
        return dray_set_error(DRAY_EINVAL, "tune: %s: time_attr must be set", ops->name);
    s->ops = ops;
    s->mode = mode;
    s->sign = mode == DRAY_TUNE_MIN ? -1.0 : 1.0;
    s->time_attr = dray__tune_strdup(time_attr);
    s->metric = metric ? dray__tune_strdup(metric) : NULL;
    if (!s->time_attr || (metric && !s->metric)) {
        free(s->time_attr);
        free(s->metric);
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for a scheduler");
    }
    return DRAY_OK;
}

void dray__tune_sched_fini(dray_tune_sched *s)
{
    free(s->metric);
    free(s->time_attr);
}

void dray_tune_sched_destroy(dray_tune_sched *s)
{
    if (!s)
        return;
    s->ops->destroy(s);
}

const char *dray_tune_sched_name(const dray_tune_sched *s) { return s->ops->name; }

dray_status dray_tune_sched_set_search_properties(dray_tune_sched *s, const char *metric,
                                                  dray_tune_mode mode)
{
    if (mode != DRAY_TUNE_MODE_UNSET && !mode_ok(mode))
        return dray_set_error(DRAY_EINVAL, "tune: mode %d must be min or max", (int)mode);
    if (!s->metric && metric) {
        if (!(s->metric = dray__tune_strdup(metric)))
            return dray_set_error(DRAY_ENOMEM, "tune: out of memory for a scheduler");
    }
    if (s->mode == DRAY_TUNE_MODE_UNSET && mode != DRAY_TUNE_MODE_UNSET) {
        s->mode = mode;
        s->sign = mode == DRAY_TUNE_MIN ? -1.0 : 1.0;
    }
    return DRAY_OK;
}

dray_status dray_tune_sched_on_trial_add(dray_tune_sched *s, const dray_tune_host *h, int trial)
{
    if (s->ops->on_add != NULL && (!s->metric || !mode_ok(s->mode)))
        return dray_set_error(DRAY_EINVAL,
                              "tune: %s was created without a valid metric (%s) or mode: pass "
                              "them to the scheduler or to the run options",
                              s->ops->name, s->metric ? s->metric : "none");
    return s->ops->on_add ? s->ops->on_add(s, h, trial) : DRAY_OK;
}

dray_status dray_tune_sched_on_trial_result(dray_tune_sched *s, const dray_tune_host *h, int trial,
                                            const dray_tune_result *r, dray_tune_decision *out)
{
    if (!s->ops->on_result) {
        *out = DRAY_TUNE_CONTINUE;
        return DRAY_OK;
    }
    return s->ops->on_result(s, h, trial, r, out);
}

void dray_tune_sched_on_trial_complete(dray_tune_sched *s, const dray_tune_host *h, int trial,
                                       const dray_tune_result *last)
{
    if (s->ops->on_complete)
        s->ops->on_complete(s, h, trial, last);
}

void dray_tune_sched_on_trial_error(dray_tune_sched *s, const dray_tune_host *h, int trial)
{
    if (s->ops->on_error)
        s->ops->on_error(s, h, trial);
}

void dray__tune_fifo_choose(dray_tune_sched *s, const dray_tune_host *h, int *out)
{
    (void)s;
    size_t n = h->num_trials(h->ctx);
    *out = -1;
    for (size_t i = 0; i < n; i++) {
        int t = h->trial_id_at(h->ctx, i);
        if (h->trial_status(h->ctx, t) == DRAY_TUNE_PENDING) {
            *out = t;
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int t = h->trial_id_at(h->ctx, i);
        if (h->trial_status(h->ctx, t) == DRAY_TUNE_PAUSED) {
            *out = t;
            return;
        }
    }
}

void dray_tune_sched_choose_trial(dray_tune_sched *s, const dray_tune_host *h, int *out)
{
    if (s->ops->choose)
        s->ops->choose(s, h, out);
    else
        dray__tune_fifo_choose(s, h, out);
}

size_t dray_tune_sched_num_stopped(const dray_tune_sched *s) { return s->num_stopped; }

size_t dray_tune_sched_debug(const dray_tune_sched *s, char *buf, size_t size)
{
    if (s->ops->debug)
        return s->ops->debug(s, buf, size);
    int k = snprintf(buf, size, "Using %s: num_stopped=%zu", s->ops->name, s->num_stopped);
    return k > 0 ? (size_t)k : 0;
}

/* ==== FIFO ==== */
static void fifo_destroy(dray_tune_sched *s)
{
    dray__tune_sched_fini(s);
    free(s);
}

static const dray__tune_sched_ops fifo_ops = {"FIFO", NULL, NULL, NULL, NULL, NULL, NULL,
                                              fifo_destroy};

dray_status dray_tune_sched_create_fifo(dray_tune_sched **out)
{
    dray_tune_sched *s = calloc(1, sizeof(*s));
    if (!s)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for a scheduler");
    dray_status st = dray__tune_sched_init(s, &fifo_ops, "training_iteration", NULL,
                                           DRAY_TUNE_MODE_UNSET);
    if (st != DRAY_OK) {
        free(s);
        return st;
    }
    *out = s;
    return DRAY_OK;
}

/* ==== numpy-compatible statistics ==== */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double dray__tune_median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    for (size_t i = 0; i < n; i++)
        if (isnan(v[i]))
            return NAN;
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}
