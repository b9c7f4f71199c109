/* tune TPE searcher: a univariate Tree-structured Parzen Estimator (Bergstra et al. 2011). After
 * n_startup random trials, each numeric parameter gets Gaussian-mixture densities l(x) over the best
 * gamma fraction of finished trials and g(x) over the rest (plus a uniform prior); candidates drawn
 * from l are ranked by log l - log g. Choices use smoothed category frequencies the same way. */
#include "internal.h"

#include <stdio.h>

typedef struct obs {
    double score;   /* sign * metric: larger is better */
    double *x;      /* per modeled param: the value in model space (log for loguniform), or the
                     * category index for choices */
} obs;

typedef struct tpe {
    dray_tune_searcher base;
    const dray_tune_space *sp;
    char *metric;
    double sign;
    int64_t num_samples, suggested;
    int n_startup, n_candidates;
    double gamma;
    dray_tune_rng rng;
    size_t *modeled; /* indices into sp->p */
    size_t n_mod;
    dray_tune_config **pending; /* by trial id: the config suggested */
    size_t n_pending;
    obs *obs;
    size_t n_obs, cap_obs;
} tpe;

void dray_tune_tpe_opts_init(dray_tune_tpe_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->num_samples = 20;
    o->n_startup = 10;
    o->n_candidates = 24;
    o->gamma = 0.25;
}

static bool is_modeled(dray__tune_dom d)
{
    return d != DRAY__DOM_CONST && d != DRAY__DOM_SAMPLE_FROM && d != DRAY__DOM_GRID;
}

/* model space bounds of a numeric param */
static void bounds(const dray__tune_param *p, double *lo, double *hi)
{
    switch (p->dom) {
    case DRAY__DOM_LOGUNIFORM: *lo = log(p->lo); *hi = log(p->hi); break;
    case DRAY__DOM_RANDINT: *lo = (double)p->ilo; *hi = (double)p->ihi - 1e-9; break;
    case DRAY__DOM_QRANDINT: *lo = (double)p->ilo; *hi = (double)p->ihi; break;
    case DRAY__DOM_RANDN: *lo = p->lo - 4 * p->hi; *hi = p->lo + 4 * p->hi; break;
    default: *lo = p->lo; *hi = p->hi; break;
    }
}

static double to_model(const dray__tune_param *p, const dray_tune_val *v)
{
    if (p->dom == DRAY__DOM_CHOICE) {
        for (size_t k = 0; k < p->n_vals; k++)
            if (dray__tune_val_equal(&p->vals[k], v))
                return (double)k;
        return 0;
    }
    double x = dray_tune_val_num(v);
    return p->dom == DRAY__DOM_LOGUNIFORM ? log(x) : x;
}

static dray_tune_val from_model(const dray__tune_param *p, double x)
{
    switch (p->dom) {
    case DRAY__DOM_CHOICE: return p->vals[(size_t)x];
    case DRAY__DOM_LOGUNIFORM: return dray_tune_f(fmin(fmax(exp(x), p->lo), p->hi));
    case DRAY__DOM_QUNIFORM: return dray_tune_f(nearbyint(x / p->q) * p->q);
    case DRAY__DOM_RANDINT: {
        int64_t i = (int64_t)floor(x);
        return dray_tune_i(i < p->ilo ? p->ilo : i >= p->ihi ? p->ihi - 1 : i);
    }
    case DRAY__DOM_QRANDINT: {
        int64_t i = (int64_t)nearbyint(x / (double)p->iq) * p->iq;
        return dray_tune_i(i < p->ilo ? p->ilo : i > p->ihi ? p->ihi : i);
    }
    default: return dray_tune_f(x);
    }
}

/* An adaptive Parzen estimator (hyperopt's): one Gaussian per point whose width is the larger gap
 * to its sorted neighbours (clipped to [range/min(100, n+1), range]), plus a wide prior component
 * centred on the range; all components weigh the same. */
typedef struct parzen {
    double *mu, *sigma;
    size_t n; /* components, prior included */
} parzen;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* parzen_fit: pts is sorted in place; mu/sigma need n + 1 slots. */
static void parzen_fit(parzen *pz, double *pts, size_t n, double lo, double hi)
{
    double range = hi - lo > 0 ? hi - lo : 1;
    qsort(pts, n, sizeof(double), cmp_double);
    double minw = range / fmin(100.0, (double)n + 1.0);
    for (size_t i = 0; i < n; i++) {
        double left = pts[i] - (i ? pts[i - 1] : lo), right = (i + 1 < n ? pts[i + 1] : hi) - pts[i];
        pz->mu[i] = pts[i];
        pz->sigma[i] = fmin(fmax(fmax(left, right), minw), range);
    }
    pz->mu[n] = (lo + hi) / 2;
    pz->sigma[n] = range;
    pz->n = n + 1;
}

static double parzen_logpdf(const parzen *pz, double x)
{
    double sum = 0;
    for (size_t i = 0; i < pz->n; i++) {
        double z = (x - pz->mu[i]) / pz->sigma[i];
        sum += exp(-0.5 * z * z) / (pz->sigma[i] * sqrt(2 * M_PI));
    }
    return log(sum / (double)pz->n + 1e-300);
}

static double parzen_sample(tpe *t, const parzen *pz, double lo, double hi)
{
    size_t k = dray_tune_rng_next(&t->rng) % pz->n;
    for (int tries = 0; tries < 64; tries++) {
        double x = pz->mu[k] + pz->sigma[k] * dray_tune_rng_normal(&t->rng);
        if (x >= lo && x <= hi)
            return x;
    }
    return fmin(fmax(pz->mu[k], lo), hi);
}

static int cmp_score_desc(const void *a, const void *b)
{
    double x = ((const obs *)a)->score, y = ((const obs *)b)->score;
    return (x < y) - (x > y);
}

/* choose one param's model value from the good/bad split of the observations */
static double tpe_param(tpe *t, size_t j, size_t n_good, double *good, double *bad)
{
    const dray__tune_param *p = &t->sp->p[t->modeled[j]];
    size_t n_bad = t->n_obs - n_good;
    for (size_t i = 0; i < n_good; i++)
        good[i] = t->obs[i].x[j];
    for (size_t i = 0; i < n_bad; i++)
        bad[i] = t->obs[n_good + i].x[j];
    double best_x = 0, best_s = -INFINITY;
    if (p->dom == DRAY__DOM_CHOICE) {
        size_t K = p->n_vals;
        for (int c = 0; c < t->n_candidates; c++) {
            /* sample a category from l: smoothed good counts */
            double u = dray_tune_rng_uniform(&t->rng) * (double)(n_good + K), acc = 0;
            size_t pick = K - 1;
            for (size_t k = 0; k < K; k++) {
                double cnt = 1;
                for (size_t i = 0; i < n_good; i++)
                    cnt += good[i] == (double)k;
                acc += cnt;
                if (u < acc) {
                    pick = k;
                    break;
                }
            }
            double lg = 1, lb = 1;
            for (size_t i = 0; i < n_good; i++)
                lg += good[i] == (double)pick;
            for (size_t i = 0; i < n_bad; i++)
                lb += bad[i] == (double)pick;
            double s = log(lg / (double)(n_good + K)) - log(lb / (double)(n_bad + K));
            if (s > best_s) {
                best_s = s;
                best_x = (double)pick;
            }
        }
        return best_x;
    }
    double lo, hi;
    bounds(p, &lo, &hi);
    double *mem = malloc(4 * (t->n_obs + 1) * sizeof(double));
    if (!mem)
        return (lo + hi) / 2;
    parzen l = {mem, mem + t->n_obs + 1, 0}, g = {mem + 2 * (t->n_obs + 1), mem + 3 * (t->n_obs + 1), 0};
    parzen_fit(&l, good, n_good, lo, hi);
    parzen_fit(&g, bad, n_bad, lo, hi);
    for (int c = 0; c < t->n_candidates; c++) {
        double x = parzen_sample(t, &l, lo, hi);
        double sc = parzen_logpdf(&l, x) - parzen_logpdf(&g, x);
        if (sc > best_s) {
            best_s = sc;
            best_x = x;
        }
    }
    free(mem);
    return best_x;
}

static dray_status tpe_suggest(dray_tune_searcher *s, int trial, dray_tune_config **out)
{
    tpe *t = (tpe *)s;
    if (t->num_samples >= 0 && t->suggested >= t->num_samples)
        return DRAY_ENOTFOUND;
    if (trial < 0)
        return dray_set_error(DRAY_EINVAL, "tune: TPE: trial id %d is negative", trial);
    dray_tune_config *c = NULL;
    dray_status st = dray_tune_space_sample(t->sp, 0, &t->rng, &c);
    if (st != DRAY_OK)
        return st;
    if (t->n_obs >= (size_t)t->n_startup && t->n_obs >= 2) {
        qsort(t->obs, t->n_obs, sizeof(obs), cmp_score_desc);
        size_t n_good = (size_t)ceil(t->gamma * sqrt((double)t->n_obs)); /* hyperopt's rule */
        if (n_good < 1)
            n_good = 1;
        if (n_good >= t->n_obs)
            n_good = t->n_obs - 1;
        double *good = malloc(t->n_obs * sizeof(double)), *bad = malloc(t->n_obs * sizeof(double));
        if (!good || !bad)
            st = dray_set_error(DRAY_ENOMEM, "tune: TPE: out of memory");
        for (size_t j = 0; j < t->n_mod && st == DRAY_OK; j++) {
            const dray__tune_param *p = &t->sp->p[t->modeled[j]];
            st = dray_tune_config_set(c, p->path, from_model(p, tpe_param(t, j, n_good, good, bad)));
        }
        free(good);
        free(bad);
        /* conditional samplers see the modeled values */
        for (size_t i = 0; i < t->sp->n && st == DRAY_OK; i++) {
            const dray__tune_param *p = &t->sp->p[i];
            dray_tune_val v = {0, {.i = 0}};
            if (p->dom == DRAY__DOM_SAMPLE_FROM && (st = p->fn(c, &t->rng, p->user, &v)) == DRAY_OK)
                st = dray_tune_config_set(c, p->path, v);
        }
    }
    if (st == DRAY_OK)
        st = dray__tune_reserve_ids((void **)&t->pending, &t->n_pending, (size_t)trial,
                                    sizeof(*t->pending));
    dray_tune_config *keep = NULL;
    if (st == DRAY_OK)
        st = dray_tune_config_clone(c, &keep);
    if (st != DRAY_OK) {
        dray_tune_config_destroy(c);
        return st;
    }
    dray_tune_config_destroy(t->pending[trial]);
    t->pending[trial] = keep;
    t->suggested++;
    *out = c;
    return DRAY_OK;
}

static void tpe_on_complete(dray_tune_searcher *s, int trial, const dray_tune_result *last,
                            bool error)
{
    tpe *t = (tpe *)s;
    if (trial < 0 || (size_t)trial >= t->n_pending || !t->pending[trial])
        return;
    dray_tune_config *c = t->pending[trial];
    t->pending[trial] = NULL;
    double m;
    if (error || !last || !dray_tune_result_get(last, t->metric, &m) || isnan(m) ||
        dray__tune_grow((void **)&t->obs, &t->cap_obs, t->n_obs, sizeof(obs)) != DRAY_OK) {
        dray_tune_config_destroy(c);
        return;
    }
    double *x = malloc((t->n_mod ? t->n_mod : 1) * sizeof(double));
    if (x) {
        for (size_t j = 0; j < t->n_mod; j++) {
            const dray__tune_param *p = &t->sp->p[t->modeled[j]];
            const dray_tune_val *v = dray_tune_config_get(c, p->path);
            x[j] = v ? to_model(p, v) : 0;
        }
        t->obs[t->n_obs++] = (obs){t->sign * m, x};
    }
    dray_tune_config_destroy(c);
}

static int64_t tpe_total(const dray_tune_searcher *s) { return ((const tpe *)s)->num_samples; }

static void tpe_destroy(dray_tune_searcher *s)
{
    tpe *t = (tpe *)s;
    for (size_t i = 0; i < t->n_obs; i++)
        free(t->obs[i].x);
    for (size_t i = 0; i < t->n_pending; i++)
        dray_tune_config_destroy(t->pending[i]);
    free(t->obs);
    free(t->pending);
    free(t->modeled);
    free(t->metric);
    free(t);
}

static const dray__tune_searcher_ops tpe_ops = {tpe_suggest, tpe_on_complete, tpe_total,
                                                tpe_destroy};

dray_status dray_tune_searcher_create_tpe(const dray_tune_space *sp, const dray_tune_tpe_opts *o,
                                          dray_tune_searcher **out)
{
    if (!sp || !o)
        return dray_set_error(DRAY_EINVAL, "tune: TPE needs a space and options");
    if (!o->metric || (o->mode != DRAY_TUNE_MIN && o->mode != DRAY_TUNE_MAX))
        return dray_set_error(DRAY_EINVAL, "tune: TPE needs a metric and a mode (min or max)");
    if (o->num_samples == 0 || o->num_samples < -1 || o->n_startup < 0 || o->n_candidates < 1 ||
        !(o->gamma > 0 && o->gamma < 1))
        return dray_set_error(DRAY_EINVAL, "tune: TPE: num_samples, n_startup, n_candidates or "
                                           "gamma (0 < gamma < 1) out of range");
    for (size_t i = 0; i < sp->n; i++)
        if (sp->p[i].dom == DRAY__DOM_GRID)
            return dray_set_error(DRAY_EINVAL, "tune: TPE: grid_search '%s' is not supported: use "
                                  "choice", sp->p[i].path);
    tpe *t = calloc(1, sizeof(*t));
    if (!t || !(t->metric = dray__tune_strdup(o->metric)) ||
        !(t->modeled = malloc((sp->n ? sp->n : 1) * sizeof(size_t)))) {
        if (t)
            free(t->metric);
        free(t);
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for TPE");
    }
    t->base.ops = &tpe_ops;
    t->sp = sp;
    t->sign = o->mode == DRAY_TUNE_MAX ? 1 : -1;
    t->num_samples = o->num_samples;
    t->n_startup = o->n_startup;
    t->n_candidates = o->n_candidates;
    t->gamma = o->gamma;
    dray_tune_rng_seed(&t->rng, o->seed);
    for (size_t i = 0; i < sp->n; i++)
        if (is_modeled(sp->p[i].dom))
            t->modeled[t->n_mod++] = i;
    *out = &t->base;
    return DRAY_OK;
}
