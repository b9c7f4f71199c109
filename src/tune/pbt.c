/* tune Population Based Training (Ray Tune 2.x PopulationBasedTraining): every perturbation_interval
 * a trial in the top quantile saves a checkpoint; one in the bottom quantile exploits (takes a top
 * trial's checkpoint) and explores (perturbs or resamples that trial's hyperparameters). */
#include "internal.h"

#include <stdio.h>

typedef struct pbt_state {
    bool known;
    bool has_score;
    double last_score;
    bool has_checkpoint;
    double last_perturbation_time;
    double last_train_time;
} pbt_state;

typedef struct pbt {
    dray_tune_sched base;
    double interval, burn_in, quantile, resample_p, factors[2];
    const dray_tune_space *mut;
    dray_status (*custom)(dray_tune_config *cfg, dray_tune_rng *rng, void *user);
    void *custom_user;
    bool synch;
    double next_sync;
    dray_tune_rng rng;
    pbt_state *st; /* by trial id */
    size_t n_st;
    int *order;    /* trial ids in the order they were added */
    size_t n_order, cap_order;
    size_t num_checkpoints, num_perturbations;
} pbt;

void dray_tune_pbt_opts_init(dray_tune_pbt_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->time_attr = "time_total_s";
    o->perturbation_interval = 60;
    o->quantile_fraction = 0.25;
    o->resample_probability = 0.25;
    o->perturbation_factors[0] = 1.2;
    o->perturbation_factors[1] = 0.8;
}

static pbt_state *state_of(pbt *p, int trial)
{
    return trial >= 0 && (size_t)trial < p->n_st && p->st[trial].known ? &p->st[trial] : NULL;
}

static dray_status pbt_on_add(dray_tune_sched *s, const dray_tune_host *h, int trial)
{
    pbt *p = (pbt *)s;
    if (trial < 0)
        return dray_set_error(DRAY_EINVAL, "tune: PBT: trial id %d is negative", trial);
    const dray_tune_config *cfg = h->trial_config ? h->trial_config(h->ctx, trial) : NULL;
    for (size_t i = 0; p->mut && cfg && i < p->mut->n; i++)
        if (!dray_tune_config_get(cfg, p->mut->p[i].path))
            return dray_set_error(DRAY_EINVAL,
                                  "tune: PBT: trial %d's config has no '%s' to mutate: add it to "
                                  "the search space",
                                  trial, p->mut->p[i].path);
    dray_status st = dray__tune_reserve_ids((void **)&p->st, &p->n_st, (size_t)trial, sizeof(*p->st));
    if (st != DRAY_OK)
        return st;
    st = dray__tune_grow((void **)&p->order, &p->cap_order, p->n_order, sizeof(int));
    if (st != DRAY_OK)
        return st;
    p->order[p->n_order++] = trial;
    memset(&p->st[trial], 0, sizeof(pbt_state));
    p->st[trial].known = true;
    return DRAY_OK;
}

static bool is_finished(const dray_tune_host *h, int t)
{
    dray_tune_status s = h->trial_status(h->ctx, t);
    return s == DRAY_TUNE_TERMINATED || s == DRAY_TUNE_ERROR;
}

/* quantiles: scored, unfinished trials sorted by score (stable); lower and upper n_q of them. */
static dray_status quantiles(pbt *p, const dray_tune_host *h, int **sorted, size_t *n, size_t *nq)
{
    int *v = malloc((p->n_order ? p->n_order : 1) * sizeof(int));
    if (!v)
        return dray_set_error(DRAY_ENOMEM, "tune: PBT: out of memory");
    size_t m = 0;
    for (size_t i = 0; i < p->n_order; i++) {
        int t = p->order[i];
        pbt_state *s = state_of(p, t);
        if (!s || !s->has_score || is_finished(h, t))
            continue;
        size_t j = m++;
        while (j > 0 && p->st[v[j - 1]].last_score > s->last_score) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = t;
    }
    *sorted = v;
    *n = m;
    *nq = 0;
    if (m > 1) {
        size_t q = (size_t)ceil((double)m * p->quantile);
        if ((double)q > (double)m / 2)
            q = m / 2;
        *nq = q;
    }
    return DRAY_OK;
}

static bool in_range(const int *v, size_t from, size_t to, int t)
{
    for (size_t i = from; i < to; i++)
        if (v[i] == t)
            return true;
    return false;
}

/* explore: the source config with each mutation applied (Ray's _explore). */
static dray_status explore(pbt *p, const dray_tune_config *src, dray_tune_config **out)
{
    dray_tune_config *c = NULL;
    dray_status st = dray_tune_config_clone(src, &c);
    if (st != DRAY_OK)
        return st;
    for (size_t i = 0; p->mut && i < p->mut->n && st == DRAY_OK; i++) {
        const dray__tune_param *m = &p->mut->p[i];
        const dray_tune_val *cur = dray_tune_config_get(src, m->path);
        dray_tune_val nv;
        if (m->dom == DRAY__DOM_GRID || m->dom == DRAY__DOM_CHOICE || m->dom == DRAY__DOM_CONST) {
            ssize_t at = -1;
            for (size_t k = 0; cur && k < m->n_vals; k++)
                if (dray__tune_val_equal(&m->vals[k], cur))
                    at = (ssize_t)k;
            if (dray_tune_rng_uniform(&p->rng) < p->resample_p || at < 0) {
                nv = m->vals[dray_tune_rng_next(&p->rng) % m->n_vals];
            } else {
                ssize_t shift = (dray_tune_rng_next(&p->rng) & 1) ? 1 : -1, ni = at + shift;
                if (ni < 0)
                    ni = 0;
                if (ni >= (ssize_t)m->n_vals)
                    ni = (ssize_t)m->n_vals - 1;
                nv = m->vals[ni];
            }
        } else if (m->dom == DRAY__DOM_SAMPLE_FROM) {
            st = dray_set_error(DRAY_EINVAL, "tune: PBT: sample_from '%s' cannot be a mutation",
                                m->path);
            break;
        } else {
            if (dray_tune_rng_uniform(&p->rng) < p->resample_p) {
                nv = dray__tune_param_sample(m, &p->rng);
            } else {
                double f = p->factors[dray_tune_rng_next(&p->rng) & 1];
                nv = dray_tune_f(dray_tune_val_num(cur) * f);
            }
            if (cur->kind == DRAY_TUNE_INT)
                nv = dray_tune_i((int64_t)dray_tune_val_num(&nv)); /* Python int(): truncation */
        }
        st = dray_tune_config_set(c, m->path, nv);
    }
    if (st == DRAY_OK && p->custom)
        st = p->custom(c, &p->rng, p->custom_user);
    if (st != DRAY_OK) {
        dray_tune_config_destroy(c);
        return st;
    }
    *out = c;
    return DRAY_OK;
}

static dray_status checkpoint_or_exploit(pbt *p, const dray_tune_host *h, int trial,
                                         const int *sorted, size_t n, size_t nq)
{
    pbt_state *s = state_of(p, trial);
    bool upper = in_range(sorted, n - nq, n, trial), lower = in_range(sorted, 0, nq, trial);
    if (upper) {
        dray_status st = h->save_trial(h->ctx, trial);
        if (st != DRAY_OK)
            return st;
        s->has_checkpoint = true;
        p->num_checkpoints++;
    } else {
        s->has_checkpoint = false;
    }
    if (!lower || nq == 0)
        return DRAY_OK;
    int clone = sorted[n - nq + dray_tune_rng_next(&p->rng) % nq];
    pbt_state *cs = state_of(p, clone);
    if (!cs->has_checkpoint)
        return DRAY_OK; /* nothing to exploit yet */
    dray_tune_config *nc = NULL;
    dray_status st = explore(p, h->trial_config(h->ctx, clone), &nc);
    if (st != DRAY_OK)
        return st;
    st = h->exploit(h->ctx, trial, clone, nc);
    dray_tune_config_destroy(nc);
    if (st == DRAY_ENOTFOUND)
        return DRAY_OK;
    if (st != DRAY_OK)
        return st;
    p->num_perturbations++;
    s->last_perturbation_time = cs->last_perturbation_time;
    s->last_train_time = cs->last_train_time;
    return DRAY_OK;
}

static dray_status pbt_on_result(dray_tune_sched *sc, const dray_tune_host *h, int trial,
                                 const dray_tune_result *r, dray_tune_decision *out)
{
    pbt *p = (pbt *)sc;
    double t, m;
    *out = DRAY_TUNE_CONTINUE;
    pbt_state *s = state_of(p, trial);
    if (!s)
        return dray_set_error(DRAY_EINVAL, "tune: PBT: result for unknown trial %d", trial);
    if (!dray_tune_result_get(r, sc->time_attr, &t))
        return dray_set_error(DRAY_EINVAL, "tune: PBT: trial %d's result has no time_attr '%s'",
                              trial, sc->time_attr);
    if (!dray_tune_result_get(r, sc->metric, &m))
        return dray_set_error(DRAY_EINVAL, "tune: PBT: trial %d's result has no metric '%s'", trial,
                              sc->metric);
    if (t < p->burn_in || t - s->last_perturbation_time < p->interval)
        return DRAY_OK;
    s->has_score = true;
    s->last_score = sc->sign * m;
    s->last_train_time = t;
    int *sorted;
    size_t n, nq;
    dray_status st;
    if (!p->synch) {
        s->last_perturbation_time = t;
        if ((st = quantiles(p, h, &sorted, &n, &nq)) != DRAY_OK)
            return st;
        dray_tune_decision d = DRAY_TUNE_CONTINUE;
        size_t nt = h->num_trials(h->ctx);
        for (size_t i = 0; i < nt; i++) {
            dray_tune_status ts = h->trial_status(h->ctx, h->trial_id_at(h->ctx, i));
            if (ts == DRAY_TUNE_PENDING || ts == DRAY_TUNE_PAUSED) {
                d = DRAY_TUNE_PAUSE;
                break;
            }
        }
        st = checkpoint_or_exploit(p, h, trial, sorted, n, nq);
        free(sorted);
        if (st != DRAY_OK)
            return st;
        *out = h->trial_status(h->ctx, trial) == DRAY_TUNE_PAUSED ? DRAY_TUNE_NOOP : d;
        return DRAY_OK;
    }
    /* synchronous: wait until every live trial reached the sync point, then perturb all */
    bool waiting = false;
    size_t nt = h->num_trials(h->ctx);
    for (size_t i = 0; i < nt && !waiting; i++) {
        int o = h->trial_id_at(h->ctx, i);
        pbt_state *os = state_of(p, o);
        if (o != trial && os && !is_finished(h, o) && os->last_train_time < p->next_sync)
            waiting = true;
    }
    if (!waiting) {
        if ((st = quantiles(p, h, &sorted, &n, &nq)) != DRAY_OK)
            return st;
        /* upper quantile first (they checkpoint), then the middle, then the lower (they exploit) */
        for (size_t pass = 0; pass < 3; pass++) {
            for (size_t i = 0; i < nt; i++) {
                int o = h->trial_id_at(h->ctx, i);
                if (!state_of(p, o))
                    continue;
                bool up = in_range(sorted, n - nq, n, o), lo = in_range(sorted, 0, nq, o);
                if ((pass == 0 && !up) || (pass == 1 && (up || lo)) || (pass == 2 && !lo))
                    continue;
                p->st[o].last_perturbation_time = t;
                if ((st = checkpoint_or_exploit(p, h, o, sorted, n, nq)) != DRAY_OK) {
                    free(sorted);
                    return st;
                }
            }
        }
        free(sorted);
        double mx = -INFINITY;
        for (size_t i = 0; i < nt; i++) {
            pbt_state *os = state_of(p, h->trial_id_at(h->ctx, i));
            if (os && os->last_train_time > mx)
                mx = os->last_train_time;
        }
        p->next_sync = fmax(p->next_sync + p->interval, mx);
    }
    *out = h->trial_status(h->ctx, trial) == DRAY_TUNE_PAUSED ? DRAY_TUNE_NOOP : DRAY_TUNE_PAUSE;
    return DRAY_OK;
}

static void pbt_choose(dray_tune_sched *sc, const dray_tune_host *h, int *out)
{
    pbt *p = (pbt *)sc;
    *out = -1;
    double best = INFINITY;
    size_t nt = h->num_trials(h->ctx);
    for (size_t i = 0; i < nt; i++) {
        int t = h->trial_id_at(h->ctx, i);
        dray_tune_status ts = h->trial_status(h->ctx, t);
        pbt_state *s = state_of(p, t);
        if (!s || (ts != DRAY_TUNE_PENDING && ts != DRAY_TUNE_PAUSED))
            continue;
        if (p->synch && !(s->last_train_time < p->next_sync))
            continue;
        if (s->last_train_time < best) {
            best = s->last_train_time;
            *out = t;
        }
    }
}

static size_t pbt_debug(const dray_tune_sched *sc, char *buf, size_t size)
{
    const pbt *p = (const pbt *)sc;
    int k = snprintf(buf, size, "PopulationBasedTraining: %zu checkpoints, %zu perturbs",
                     p->num_checkpoints, p->num_perturbations);
    return k > 0 ? (size_t)k : 0;
}

static void pbt_destroy(dray_tune_sched *sc)
{
    pbt *p = (pbt *)sc;
    free(p->st);
    free(p->order);
    dray__tune_sched_fini(sc);
    free(p);
}

static const dray__tune_sched_ops pbt_ops = {"PBT", pbt_on_add, pbt_on_result, NULL,
                                             NULL,  pbt_choose, pbt_debug,     pbt_destroy};

dray_status dray_tune_sched_create_pbt(const dray_tune_pbt_opts *o, dray_tune_sched **out)
{
    if (!o)
        return dray_set_error(DRAY_EINVAL, "tune: PBT needs options with mutations");
    if ((!o->mutations || o->mutations->n == 0) && !o->custom_explore)
        return dray_set_error(DRAY_EINVAL,
                              "tune: PBT: give at least one of mutations or custom_explore");
    if (!(o->quantile_fraction >= 0 && o->quantile_fraction <= 0.5))
        return dray_set_error(DRAY_EINVAL, "tune: PBT: quantile_fraction %g must be in [0, 0.5]",
                              o->quantile_fraction);
    if (!(o->perturbation_interval > 0))
        return dray_set_error(DRAY_EINVAL, "tune: PBT: perturbation_interval %g must be > 0",
                              o->perturbation_interval);
    for (size_t i = 0; o->mutations && i < o->mutations->n; i++)
        if (o->mutations->p[i].dom == DRAY__DOM_SAMPLE_FROM)
            return dray_set_error(DRAY_EINVAL, "tune: PBT: mutation '%s' is a sample_from: use a "
                                  "list or a distribution", o->mutations->p[i].path);
    pbt *p = calloc(1, sizeof(*p));
    if (!p)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for PBT");
    dray_status st = dray__tune_sched_init(&p->base, &pbt_ops,
                                           o->time_attr ? o->time_attr : "time_total_s", o->metric,
                                           o->mode);
    if (st != DRAY_OK) {
        free(p);
        return st;
    }
    p->interval = o->perturbation_interval;
    p->burn_in = o->burn_in_period;
    p->quantile = o->quantile_fraction;
    p->resample_p = o->resample_probability;
    p->factors[0] = o->perturbation_factors[0];
    p->factors[1] = o->perturbation_factors[1];
    p->mut = o->mutations;
    p->custom = o->custom_explore;
    p->custom_user = o->custom_explore_user;
    p->synch = o->synch;
    p->next_sync = fmax(o->perturbation_interval, o->burn_in_period);
    dray_tune_rng_seed(&p->rng, o->seed);
    *out = &p->base;
    return DRAY_OK;
}
