/* tune median stopping rule (Ray Tune 2.x MedianStoppingRule): after the grace period, a trial stops
 * when its best result so far is strictly worse than the median of the other trials' running means
 * up to the same time; with too few other trials it may yield (pause) to waiting trials. */
#include "internal.h"

#include <stdio.h>

typedef struct obs {
    double t, m; /* time_attr, metric (NaN when missing) */
} obs;

typedef struct trial_hist {
    obs *o;
    size_t n, cap;
    bool stopped;
    bool seen;
    bool paused;       /* last_pause is set (Ray's default is -inf) */
    double last_pause;
} trial_hist;

typedef struct median {
    dray_tune_sched base;
    double grace, min_time_slice;
    int min_samples;
    bool hard_stop;
    trial_hist *tr; /* by trial id */
    size_t n_tr;
} median;

void dray_tune_median_opts_init(dray_tune_median_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->time_attr = "time_total_s";
    o->grace_period = 60;
    o->min_samples_required = 3;
    o->min_time_slice = 0;
    o->hard_stop = true;
}

static trial_hist *hist(median *md, int trial, bool create)
{
    if (trial < 0)
        return NULL;
    if ((size_t)trial >= md->n_tr &&
        (!create || dray__tune_reserve_ids((void **)&md->tr, &md->n_tr, (size_t)trial,
                                           sizeof(*md->tr)) != DRAY_OK))
        return NULL;
    return &md->tr[trial];
}

static dray_status append(median *md, int trial, double t, double m)
{
    trial_hist *h = hist(md, trial, true);
    if (!h || dray__tune_grow((void **)&h->o, &h->cap, h->n, sizeof(obs)) != DRAY_OK)
        return dray_set_error(DRAY_ENOMEM, "tune: median stopping: out of memory");
    h->o[h->n++] = (obs){t, m};
    h->seen = true;
    return DRAY_OK;
}

/* running mean of the trial's metric over results with grace <= t <= time (NaN if none). */
static double running_mean(const median *md, const trial_hist *h, double time)
{
    double sum = 0;
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (md->grace <= h->o[i].t && h->o[i].t <= time) {
            sum += h->o[i].m;
            n++;
        }
    }
    return n ? sum / (double)n : NAN;
}

static dray_status md_on_result(dray_tune_sched *s, const dray_tune_host *host, int trial,
                                const dray_tune_result *r, dray_tune_decision *out)
{
    median *md = (median *)s;
    double t, m;
    *out = DRAY_TUNE_CONTINUE;
    if (!dray_tune_result_get(r, s->time_attr, &t) || !dray_tune_result_get(r, s->metric, &m))
        return DRAY_OK;
    trial_hist *me = hist(md, trial, true);
    if (!me)
        return dray_set_error(DRAY_ENOMEM, "tune: median stopping: out of memory");
    if (me->stopped)
        return DRAY_OK; /* soft-stopped trials fall back to FIFO */
    dray_status st = append(md, trial, t, m);
    if (st != DRAY_OK)
        return st;
    me = &md->tr[trial];
    if (t < md->grace)
        return DRAY_OK;
    /* other trials whose last result reached t */
    size_t n_other = 0;
    double *means = malloc((md->n_tr ? md->n_tr : 1) * sizeof(double));
    if (!means)
        return dray_set_error(DRAY_ENOMEM, "tune: median stopping: out of memory");
    for (size_t i = 0; i < md->n_tr; i++) {
        const trial_hist *h = &md->tr[i];
        if ((int)i == trial || !h->seen || h->n == 0 || !(h->o[h->n - 1].t >= t))
            continue;
        means[n_other++] = running_mean(md, h, t);
    }
    if ((int)n_other < md->min_samples) {
        free(means);
        bool pause = !me->paused || t - me->last_pause > md->min_time_slice;
        if (pause) {
            pause = false;
            size_t n = host->num_trials(host->ctx);
            for (size_t i = 0; i < n && !pause; i++) {
                dray_tune_status ts = host->trial_status(host->ctx, host->trial_id_at(host->ctx, i));
                pause = ts == DRAY_TUNE_PENDING || ts == DRAY_TUNE_PAUSED;
            }
        }
        if (pause) {
            me->paused = true;
            me->last_pause = t;
            *out = DRAY_TUNE_PAUSE;
        }
        return DRAY_OK;
    }
    double med = dray__tune_median(means, n_other);
    free(means);
    /* best raw result of this trial: Python's max/min over the list (NaN handling included). */
    bool is_max = s->mode == DRAY_TUNE_MAX;
    double best = me->o[0].m;
    for (size_t i = 1; i < me->n; i++) {
        double x = me->o[i].m;
        if (is_max ? x > best : x < best)
            best = x;
    }
    /* compare_op(median, best) != best: Python's max/min keep the first argument unless the
     * second is strictly better. */
    double pick = is_max ? (best > med ? best : med) : (best < med ? best : med);
    if (pick != best || isnan(best)) {
        me->stopped = true;
        s->num_stopped++;
        *out = md->hard_stop ? DRAY_TUNE_STOP : DRAY_TUNE_PAUSE;
    }
    return DRAY_OK;
}

static void md_on_complete(dray_tune_sched *s, const dray_tune_host *host, int trial,
                           const dray_tune_result *last)
{
    median *md = (median *)s;
    double t, m = NAN;
    (void)host;
    if (!last || !dray_tune_result_get(last, s->time_attr, &t))
        return;
    dray_tune_result_get(last, s->metric, &m);
    (void)append(md, trial, t, m);
}

static size_t md_debug(const dray_tune_sched *s, char *buf, size_t size)
{
    int k = snprintf(buf, size, "Using MedianStoppingRule: num_stopped=%zu.", s->num_stopped);
    return k > 0 ? (size_t)k : 0;
}

static void md_destroy(dray_tune_sched *s)
{
    median *md = (median *)s;
    for (size_t i = 0; i < md->n_tr; i++)
        free(md->tr[i].o);
    free(md->tr);
    dray__tune_sched_fini(s);
    free(md);
}

static dray_status md_on_add(dray_tune_sched *s, const dray_tune_host *h, int trial)
{
    (void)h;
    if (trial < 0)
        return dray_set_error(DRAY_EINVAL, "tune: median stopping: trial id %d is negative", trial);
    return hist((median *)s, trial, true)
               ? DRAY_OK
               : dray_set_error(DRAY_ENOMEM, "tune: median stopping: out of memory");
}

static const dray__tune_sched_ops md_ops = {"MedianStopping", md_on_add, md_on_result, md_on_complete,
                                            NULL,             NULL,      md_debug,     md_destroy};

dray_status dray_tune_sched_create_median(const dray_tune_median_opts *o, dray_tune_sched **out)
{
    dray_tune_median_opts d;
    if (!o) {
        dray_tune_median_opts_init(&d);
        o = &d;
    }
    if (o->min_samples_required < 1)
        return dray_set_error(DRAY_EINVAL, "tune: median stopping: min_samples_required %d < 1",
                              o->min_samples_required);
    median *md = calloc(1, sizeof(*md));
    if (!md)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for median stopping");
    dray_status st = dray__tune_sched_init(&md->base, &md_ops,
                                           o->time_attr ? o->time_attr : "time_total_s", o->metric,
                                           o->mode);
    if (st != DRAY_OK) {
        free(md);
        return st;
    }
    md->grace = o->grace_period;
    md->min_samples = o->min_samples_required;
    md->min_time_slice = o->min_time_slice;
    md->hard_stop = o->hard_stop;
    *out = &md->base;
    return DRAY_OK;
}
