/* tune ASHA (asynchronous successive halving), with Ray Tune 2.x's AsyncHyperBandScheduler semantics:
 * rungs at grace*eta^(k+s), the highest newly reached rung decides, cutoff = the (1-1/eta) quantile
 * (linear, NaN ignored) of scores already recorded there, stop iff score < cutoff, then record. */
#include "internal.h"

#include <stdio.h>

typedef struct rung {
    double milestone;
    double *score;     /* by trial id */
    bool *recorded;    /* by trial id */
    size_t cap;        /* trial ids covered by score/recorded */
    size_t n_recorded;
    double *sorted;    /* the recorded non-NaN scores, ascending: the quantile in O(1) */
    size_t n_sorted, cap_sorted;
} rung;

typedef struct bracket {
    rung *rungs; /* highest milestone first */
    int n_rungs;
} bracket;

typedef struct asha {
    dray_tune_sched base;
    double max_t, grace, eta;
    int n_brackets;
    bool stop_last_trials;
    bracket *brackets;
    int *trial_bracket; /* by trial id: bracket + 1; 0: unknown */
    size_t n_trial_bracket;
    dray_tune_rng rng;
} asha;

void dray_tune_asha_opts_init(dray_tune_asha_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->time_attr = "training_iteration";
    o->max_t = 100;
    o->grace_period = 1;
    o->reduction_factor = 4;
    o->brackets = 1;
    o->stop_last_trials = true;
}

static dray_status rung_reserve(rung *r, int trial)
{
    size_t c_score = r->cap, c_rec = r->cap;
    dray_status st = dray__tune_reserve_ids((void **)&r->score, &c_score, (size_t)trial,
                                            sizeof(double));
    if (st == DRAY_OK)
        st = dray__tune_reserve_ids((void **)&r->recorded, &c_rec, (size_t)trial, sizeof(bool));
    r->cap = c_score < c_rec ? c_score : c_rec;
    return st;
}

static bool rung_has(const rung *r, int trial)
{
    return (size_t)trial < r->cap && r->recorded[trial];
}

/* cutoff: the (1 - 1/eta) quantile of the recorded scores (numpy's nanpercentile, linear); false
 * when none (or all NaN). */
static dray_status rung_cutoff(const rung *r, double eta, bool *have, double *cut)
{
    *have = r->n_sorted > 0;
    if (!*have)
        return DRAY_OK;
    double pos = (1.0 - 1.0 / eta) * (double)(r->n_sorted - 1);
    size_t lo = (size_t)floor(pos), hi = lo + 1 < r->n_sorted ? lo + 1 : lo;
    *cut = r->sorted[lo] + (r->sorted[hi] - r->sorted[lo]) * (pos - (double)lo);
    return DRAY_OK;
}

/* rung_record: records `score` for `trial` (room reserved by the caller). */
static dray_status rung_record(rung *r, int trial, double score)
{
    if (!isnan(score)) {
        dray_status st = dray__tune_grow((void **)&r->sorted, &r->cap_sorted, r->n_sorted,
                                         sizeof(double));
        if (st != DRAY_OK)
            return st;
        size_t lo = 0, hi = r->n_sorted;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (r->sorted[mid] <= score)
                lo = mid + 1;
            else
                hi = mid;
        }
        memmove(r->sorted + lo + 1, r->sorted + lo, (r->n_sorted - lo) * sizeof(double));
        r->sorted[lo] = score;
        r->n_sorted++;
    }
    r->score[trial] = score;
    r->recorded[trial] = true;
    r->n_recorded++;
    return DRAY_OK;
}

/* bracket_on_result: Ray's _Bracket.on_result: judge at the highest newly reached rung. */
static dray_status bracket_on_result(asha *a, bracket *b, int trial, double t, double score,
                                     dray_tune_decision *out)
{
    *out = DRAY_TUNE_CONTINUE;
    for (int k = 0; k < b->n_rungs; k++) {
        rung *r = &b->rungs[k];
        if (t >= r->milestone && rung_has(r, trial) && !a->stop_last_trials)
            break; /* decision already taken at this rung */
        if (t < r->milestone || rung_has(r, trial))
            continue;
        bool have;
        double cut;
        dray_status st = rung_cutoff(r, a->eta, &have, &cut);
        if (st == DRAY_OK)
            st = rung_reserve(r, trial);
        if (st != DRAY_OK)
            return st;
        if (have && score < cut)
            *out = DRAY_TUNE_STOP;
        if ((st = rung_record(r, trial, score)) != DRAY_OK)
            return st;
        break;
    }
    return DRAY_OK;
}

static dray_status asha_on_add(dray_tune_sched *s, const dray_tune_host *h, int trial)
{
    asha *a = (asha *)s;
    (void)h;
    if (trial < 0)
        return dray_set_error(DRAY_EINVAL, "tune: ASHA: trial id %d is negative", trial);
    dray_status st = dray__tune_reserve_ids((void **)&a->trial_bracket, &a->n_trial_bracket,
                                            (size_t)trial, sizeof(int));
    if (st != DRAY_OK)
        return st;
    /* Bracket s with probability proportional to exp(R_s - max R). */
    int maxr = 0;
    for (int i = 0; i < a->n_brackets; i++)
        if (i == 0 || a->brackets[i].n_rungs > maxr)
            maxr = a->brackets[i].n_rungs;
    double total = 0;
    for (int i = 0; i < a->n_brackets; i++)
        total += exp((double)(a->brackets[i].n_rungs - maxr));
    double u = dray_tune_rng_uniform(&a->rng) * total, acc = 0;
    int pick = a->n_brackets - 1;
    for (int i = 0; i < a->n_brackets; i++) {
        acc += exp((double)(a->brackets[i].n_rungs - maxr));
        if (u < acc) {
            pick = i;
            break;
        }
    }
    a->trial_bracket[trial] = pick + 1;
    return DRAY_OK;
}

static int bracket_of(const asha *a, int trial)
{
    return trial >= 0 && (size_t)trial < a->n_trial_bracket ? a->trial_bracket[trial] - 1 : -1;
}

static dray_status asha_on_result(dray_tune_sched *s, const dray_tune_host *h, int trial,
                                  const dray_tune_result *r, dray_tune_decision *out)
{
    asha *a = (asha *)s;
    (void)h;
    double t, m;
    *out = DRAY_TUNE_CONTINUE;
    if (!dray_tune_result_get(r, s->time_attr, &t) || !dray_tune_result_get(r, s->metric, &m))
        return DRAY_OK;
    if (t >= a->max_t && a->stop_last_trials) {
        *out = DRAY_TUNE_STOP;
    } else {
        int b = bracket_of(a, trial);
        if (b < 0)
            return dray_set_error(DRAY_EINVAL, "tune: ASHA: result for unknown trial %d", trial);
        dray_status st = bracket_on_result(a, &a->brackets[b], trial, t, s->sign * m, out);
        if (st != DRAY_OK)
            return st;
    }
    if (*out == DRAY_TUNE_STOP)
        s->num_stopped++;
    return DRAY_OK;
}

static void asha_on_complete(dray_tune_sched *s, const dray_tune_host *h, int trial,
                             const dray_tune_result *last)
{
    asha *a = (asha *)s;
    (void)h;
    double t, m;
    int b = bracket_of(a, trial);
    if (b < 0)
        return;
    if (last && dray_tune_result_get(last, s->time_attr, &t) &&
        dray_tune_result_get(last, s->metric, &m)) {
        dray_tune_decision ignored;
        (void)bracket_on_result(a, &a->brackets[b], trial, t, s->sign * m, &ignored);
    }
    a->trial_bracket[trial] = 0;
}

static void asha_on_error(dray_tune_sched *s, const dray_tune_host *h, int trial)
{
    asha *a = (asha *)s;
    (void)h;
    if (bracket_of(a, trial) >= 0)
        a->trial_bracket[trial] = 0;
}

static size_t asha_debug(const dray_tune_sched *s, char *buf, size_t size)
{
    const asha *a = (const asha *)s;
    size_t len = 0;
#define APPEND(...)                                                                              \
    do {                                                                                         \
        int k_ = snprintf(len < size ? buf + len : NULL, len < size ? size - len : 0, __VA_ARGS__); \
        len += k_ > 0 ? (size_t)k_ : 0;                                                          \
    } while (0)
    APPEND("Using AsyncHyperBand: num_stopped=%zu", s->num_stopped);
    for (int b = 0; b < a->n_brackets; b++) {
        APPEND("\nBracket %d:", b);
        for (int k = 0; k < a->brackets[b].n_rungs; k++) {
            const rung *r = &a->brackets[b].rungs[k];
            bool have = false;
            double cut = NAN;
            (void)rung_cutoff(r, a->eta, &have, &cut);
            APPEND(" Iter %g: %s%.6g", r->milestone, have ? "" : "no cutoff ", have ? cut : 0.0);
        }
    }
#undef APPEND
    if (size)
        buf[len < size ? len : size - 1] = '\0';
    return len;
}

static void asha_destroy(dray_tune_sched *s)
{
    asha *a = (asha *)s;
    for (int b = 0; b < a->n_brackets && a->brackets; b++) {
        for (int k = 0; k < a->brackets[b].n_rungs; k++) {
            free(a->brackets[b].rungs[k].score);
            free(a->brackets[b].rungs[k].recorded);
            free(a->brackets[b].rungs[k].sorted);
        }
        free(a->brackets[b].rungs);
    }
    free(a->brackets);
    free(a->trial_bracket);
    dray__tune_sched_fini(s);
    free(a);
}

static const dray__tune_sched_ops asha_ops = {"ASHA",          asha_on_add,  asha_on_result,
                                              asha_on_complete, asha_on_error, NULL,
                                              asha_debug,       asha_destroy};

dray_status dray_tune_sched_create_asha(const dray_tune_asha_opts *o, dray_tune_sched **out)
{
    dray_tune_asha_opts d;
    if (!o) {
        dray_tune_asha_opts_init(&d);
        o = &d;
    }
    if (!(o->max_t > 0))
        return dray_set_error(DRAY_EINVAL, "tune: ASHA: max_t %g must be > 0", o->max_t);
    if (!(o->grace_period > 0))
        return dray_set_error(DRAY_EINVAL, "tune: ASHA: grace_period %g must be > 0",
                              o->grace_period);
    if (o->grace_period > o->max_t)
        return dray_set_error(DRAY_EINVAL, "tune: ASHA: grace_period %g > max_t %g",
                              o->grace_period, o->max_t);
    if (!(o->reduction_factor > 1))
        return dray_set_error(DRAY_EINVAL, "tune: ASHA: reduction_factor %g must be > 1",
                              o->reduction_factor);
    if (o->brackets < 1)
        return dray_set_error(DRAY_EINVAL, "tune: ASHA: brackets %d must be >= 1", o->brackets);
    asha *a = calloc(1, sizeof(*a));
    if (!a)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for ASHA");
    dray_status st = dray__tune_sched_init(&a->base, &asha_ops,
                                           o->time_attr ? o->time_attr : "training_iteration",
                                           o->metric, o->mode);
    if (st != DRAY_OK) {
        free(a);
        return st;
    }
    a->max_t = o->max_t;
    a->grace = o->grace_period;
    a->eta = o->reduction_factor;
    a->n_brackets = o->brackets;
    a->stop_last_trials = o->stop_last_trials;
    dray_tune_rng_seed(&a->rng, o->seed);
    if (!(a->brackets = calloc((size_t)o->brackets, sizeof(bracket))))
        goto out_nomem;
    for (int s = 0; s < o->brackets; s++) {
        /* R_s = int(log(max_t/grace)/log(eta) - s + 1), computed in double like Ray. */
        double rf = log(a->max_t / a->grace) / log(a->eta) - s + 1;
        int nr = rf > 0 ? (int)rf : 0;
        bracket *b = &a->brackets[s];
        if (nr > 0 && !(b->rungs = calloc((size_t)nr, sizeof(rung))))
            goto out_nomem;
        b->n_rungs = nr;
        for (int k = 0; k < nr; k++)
            b->rungs[k].milestone = a->grace * pow(a->eta, (double)(nr - 1 - k + s));
    }
    *out = &a->base;
    return DRAY_OK;
out_nomem:
    asha_destroy(&a->base);
    return dray_set_error(DRAY_ENOMEM, "tune: out of memory for ASHA");
}
