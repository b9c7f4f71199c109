/* tune synchronous HyperBand (Ray Tune 2.x HyperBandScheduler): trials fill brackets of a band from
 * the smallest bracket up; a trial pauses at its bracket's milestone until every live trial of the
 * bracket got there, then successive halving stops the worst and unpauses the top 1/eta. */
#include "internal.h"

#include <stdio.h>

typedef struct live {
    int trial;
    double time;   /* time_attr of the last result (0 before any) */
    double metric; /* raw metric of the last result (NaN before any) */
} live;

typedef struct hb_bracket {
    live *lv;
    size_t n_live, cap_live;
    size_t n_all;
    int n, n0;        /* max trials now / at start */
    double r, cumul_r; /* iterations of this round, milestone */
    int halves;
    double total_work, completed;
} hb_bracket;

typedef struct hb {
    dray_tune_sched base;
    double eta, max_t;
    bool stop_last_trials;
    int s_max_1;
    hb_bracket ***bands; /* bands[i][s]: NULL entries are brackets too small to exist */
    int *band_len;
    int n_bands;
    hb_bracket *cur;     /* the bracket new trials join */
    hb_bracket **trial_b; /* by trial id */
    size_t n_trial_b;
} hb;

void dray_tune_hyperband_opts_init(dray_tune_hyperband_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->time_attr = "training_iteration";
    o->max_t = 81;
    o->reduction_factor = 3;
    o->stop_last_trials = true;
}

static int get_n0(const hb *h, int s)
{
    return (int)ceil((double)h->s_max_1 / (s + 1) * pow(h->eta, s));
}

static double get_r0(const hb *h, int s) { return floor(h->max_t * pow(h->eta, -s)); }

static double total_work(const hb *h, double n, double r, int s)
{
    double work = 0, cumul = r;
    for (int i = 0; i <= s; i++) {
        work += floor(n) * floor(r);
        n = ceil(n / h->eta);
        r *= h->eta;
        r = floor(fmin(r, h->max_t - cumul));
    }
    return work;
}

static bool cur_iter_done(const hb_bracket *b)
{
    for (size_t i = 0; i < b->n_live; i++)
        if (!(b->lv[i].time >= b->cumul_r))
            return false;
    return true;
}

static bool finished(const hb *h, const hb_bracket *b)
{
    return h->stop_last_trials && b->halves == 0 && cur_iter_done(b);
}

static live *find_live(hb_bracket *b, int trial)
{
    for (size_t i = 0; i < b->n_live; i++)
        if (b->lv[i].trial == trial)
            return &b->lv[i];
    return NULL;
}

static bool continue_trial(const hb *h, const hb_bracket *b, const live *l)
{
    if (!h->stop_last_trials && b->halves == 0)
        return true;
    return l->time < b->cumul_r;
}

static void cleanup_trial(hb_bracket *b, int trial)
{
    for (size_t i = 0; i < b->n_live; i++) {
        if (b->lv[i].trial == trial) {
            memmove(&b->lv[i], &b->lv[i + 1], (b->n_live - i - 1) * sizeof(live));
            b->n_live--;
            return;
        }
    }
}

static double completion(const hb *h, const hb_bracket *b)
{
    if (finished(h, b))
        return 1.0;
    return b->total_work > 0 ? fmin(b->completed / b->total_work, 1.0) : 1.0;
}

static hb_bracket **trial_slot(hb *h, int trial)
{
    if (trial < 0 || dray__tune_reserve_ids((void **)&h->trial_b, &h->n_trial_b, (size_t)trial,
                                            sizeof(*h->trial_b)) != DRAY_OK)
        return NULL;
    return &h->trial_b[trial];
}

static dray_status new_band(hb *h)
{
    hb_bracket ***nb = realloc(h->bands, (size_t)(h->n_bands + 1) * sizeof(*nb));
    if (!nb)
        return dray_set_error(DRAY_ENOMEM, "tune: HyperBand: out of memory");
    h->bands = nb;
    int *nl = realloc(h->band_len, (size_t)(h->n_bands + 1) * sizeof(int));
    if (!nl)
        return dray_set_error(DRAY_ENOMEM, "tune: HyperBand: out of memory");
    h->band_len = nl;
    if (!(h->bands[h->n_bands] = calloc((size_t)h->s_max_1, sizeof(hb_bracket *))))
        return dray_set_error(DRAY_ENOMEM, "tune: HyperBand: out of memory");
    h->band_len[h->n_bands++] = 0;
    return DRAY_OK;
}

static dray_status hb_on_add(dray_tune_sched *s, const dray_tune_host *host, int trial)
{
    hb *h = (hb *)s;
    (void)host;
    if (trial < 0)
        return dray_set_error(DRAY_EINVAL, "tune: HyperBand: trial id %d is negative", trial);
    hb_bracket **slot = trial_slot(h, trial);
    if (!slot)
        return dray_set_error(DRAY_ENOMEM, "tune: HyperBand: out of memory");
    dray_status st;
    if (h->n_bands == 0 && (st = new_band(h)) != DRAY_OK)
        return st;
    if (!h->cur || (int)h->cur->n_live == h->cur->n) {
        for (;;) {
            if (h->band_len[h->n_bands - 1] == h->s_max_1 && (st = new_band(h)) != DRAY_OK)
                return st;
            int b = h->n_bands - 1, si = h->band_len[b];
            hb_bracket *br = NULL;
            if (get_r0(h, si) > 0) {
                if (!(br = calloc(1, sizeof(*br))))
                    return dray_set_error(DRAY_ENOMEM, "tune: HyperBand: out of memory");
                br->n = br->n0 = get_n0(h, si);
                br->r = br->cumul_r = get_r0(h, si);
                br->halves = si;
                br->total_work = total_work(h, br->n0, br->r, si);
            }
            h->bands[b][h->band_len[b]++] = br;
            h->cur = br;
            if (br)
                break;
        }
    }
    hb_bracket *br = h->cur;
    if ((st = dray__tune_grow((void **)&br->lv, &br->cap_live, br->n_live, sizeof(live))) != DRAY_OK)
        return st;
    br->lv[br->n_live++] = (live){trial, 0.0, NAN};
    br->n_all++;
    *slot = br;
    return DRAY_OK;
}

/* successive halving: the live trials sorted by score (stable, ascending); the top n stay. */
static dray_status halve(hb *h, hb_bracket *b, int **good, size_t *ng, int **bad, size_t *nb)
{
    b->halves--;
    b->n = (int)ceil((double)b->n / h->eta);
    b->r *= h->eta;
    b->r = floor(fmin(b->r, h->max_t - b->cumul_r));
    b->cumul_r = b->r;
    size_t n = b->n_live;
    live *sorted = malloc((n ? n : 1) * sizeof(live));
    *good = malloc((n ? n : 1) * sizeof(int));
    *bad = malloc((n ? n : 1) * sizeof(int));
    if (!sorted || !*good || !*bad) {
        free(sorted);
        free(*good);
        free(*bad);
        return dray_set_error(DRAY_ENOMEM, "tune: HyperBand: out of memory");
    }
    /* insertion sort: stable, like Python's sorted; NaN scores sort lowest */
    double sign = h->base.sign;
    for (size_t i = 0; i < n; i++) {
        live x = b->lv[i];
        double sx = isnan(x.metric) ? -INFINITY : sign * x.metric;
        size_t j = i;
        while (j > 0) {
            double sy = isnan(sorted[j - 1].metric) ? -INFINITY : sign * sorted[j - 1].metric;
            if (!(sy > sx))
                break;
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = x;
    }
    size_t keep = (size_t)b->n < n ? (size_t)b->n : n;
    *nb = n - keep;
    *ng = keep;
    for (size_t i = 0; i < n - keep; i++)
        (*bad)[i] = sorted[i].trial;
    for (size_t i = n - keep; i < n; i++)
        (*good)[i - (n - keep)] = sorted[i].trial;
    free(sorted);
    return DRAY_OK;
}

/* forget: drops a trial the scheduler stops itself (the host does not call back for it). */
static void forget(hb *h, hb_bracket *b, int trial)
{
    cleanup_trial(b, trial);
    if (trial >= 0 && (size_t)trial < h->n_trial_b)
        h->trial_b[trial] = NULL;
}

/* process_bracket: Ray's _process_bracket; the decision for the trial whose result came in. */
static dray_tune_decision process_bracket(hb *h, const dray_tune_host *host, hb_bracket *b)
{
    dray_tune_decision action = DRAY_TUNE_PAUSE;
    if (!cur_iter_done(b))
        return action;
    if (finished(h, b)) {
        for (size_t i = 0; i < b->n_live;) {
            int t = b->lv[i].trial;
            if (host->trial_status(host->ctx, t) == DRAY_TUNE_PAUSED) {
                forget(h, b, t);
                host->stop_trial(host->ctx, t);
            } else {
                i++;
            }
        }
        return DRAY_TUNE_STOP;
    }
    int *good = NULL, *bad = NULL;
    size_t ng = 0, nb = 0;
    if (b->halves == 0) {
        /* stop_last_trials false: the last round keeps everyone */
        good = malloc((b->n_live ? b->n_live : 1) * sizeof(int));
        bad = malloc(sizeof(int));
        if (!good || !bad) {
            free(good);
            free(bad);
            return DRAY_TUNE_CONTINUE;
        }
        for (size_t i = 0; i < b->n_live; i++)
            good[i] = b->lv[i].trial;
        ng = b->n_live;
        nb = 0;
    } else if (halve(h, b, &good, &ng, &bad, &nb) != DRAY_OK) {
        return DRAY_TUNE_CONTINUE;
    }
    h->base.num_stopped += nb;
    for (size_t i = 0; i < nb; i++) {
        dray_tune_status st = host->trial_status(host->ctx, bad[i]);
        if (st == DRAY_TUNE_PAUSED) {
            forget(h, b, bad[i]);
            host->stop_trial(host->ctx, bad[i]);
        } else if (st == DRAY_TUNE_RUNNING) {
            cleanup_trial(b, bad[i]);
            action = DRAY_TUNE_STOP;
        }
    }
    for (size_t i = 0; i < ng; i++) {
        live *l = find_live(b, good[i]);
        if (!l || !continue_trial(h, b, l))
            continue;
        dray_tune_status st = host->trial_status(host->ctx, good[i]);
        if (st == DRAY_TUNE_PAUSED)
            host->unpause_trial(host->ctx, good[i]);
        else if (st == DRAY_TUNE_RUNNING)
            action = DRAY_TUNE_CONTINUE;
    }
    free(good);
    free(bad);
    return action;
}

static hb_bracket *bracket_of(hb *h, int trial)
{
    return trial >= 0 && (size_t)trial < h->n_trial_b ? h->trial_b[trial] : NULL;
}

static dray_status hb_on_result(dray_tune_sched *s, const dray_tune_host *host, int trial,
                                const dray_tune_result *r, dray_tune_decision *out)
{
    hb *h = (hb *)s;
    hb_bracket *b = bracket_of(h, trial);
    live *l = b ? find_live(b, trial) : NULL;
    double t;
    *out = DRAY_TUNE_CONTINUE;
    if (!l || !dray_tune_result_get(r, s->time_attr, &t))
        return DRAY_OK;
    double delta = t - l->time;
    if (delta > 0)
        b->completed += delta;
    l->time = t;
    l->metric = NAN;
    dray_tune_result_get(r, s->metric, &l->metric);
    if (continue_trial(h, b, l))
        return DRAY_OK;
    *out = process_bracket(h, host, b);
    return DRAY_OK;
}

static void hb_on_remove(dray_tune_sched *s, const dray_tune_host *host, int trial)
{
    hb *h = (hb *)s;
    hb_bracket *b = bracket_of(h, trial);
    if (!b)
        return;
    cleanup_trial(b, trial);
    h->trial_b[trial] = NULL;
    if (!finished(h, b))
        (void)process_bracket(h, host, b);
}

static void hb_on_complete(dray_tune_sched *s, const dray_tune_host *host, int trial,
                           const dray_tune_result *last)
{
    (void)last;
    hb_on_remove(s, host, trial);
}

static void hb_choose(dray_tune_sched *s, const dray_tune_host *host, int *out)
{
    hb *h = (hb *)s;
    *out = -1;
    for (int band = 0; band < h->n_bands; band++) {
        /* brackets of the band by completion, lowest first (stable) */
        int n = h->band_len[band], order[64];
        int m = 0;
        for (int i = 0; i < n && m < 64; i++)
            if (h->bands[band][i])
                order[m++] = i;
        for (int i = 1; i < m; i++) {
            int x = order[i], j = i;
            double cx = completion(h, h->bands[band][x]);
            while (j > 0 && completion(h, h->bands[band][order[j - 1]]) > cx) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = x;
        }
        for (int i = 0; i < m; i++) {
            hb_bracket *b = h->bands[band][order[i]];
            for (size_t k = 0; k < b->n_live; k++) {
                if (host->trial_status(host->ctx, b->lv[k].trial) == DRAY_TUNE_PENDING) {
                    *out = b->lv[k].trial;
                    return;
                }
            }
        }
    }
}

static size_t hb_debug(const dray_tune_sched *s, char *buf, size_t size)
{
    const hb *h = (const hb *)s;
    size_t len = 0, total = 0;
    for (int b = 0; b < h->n_bands; b++)
        total += (size_t)h->band_len[b];
    int k = snprintf(buf, size, "Using HyperBand: num_stopped=%zu total_brackets=%zu",
                     s->num_stopped, total);
    len += k > 0 ? (size_t)k : 0;
    for (int b = 0; b < h->n_bands; b++) {
        for (int i = 0; i < h->band_len[b]; i++) {
            const hb_bracket *br = h->bands[b][i];
            if (!br)
                continue;
            k = snprintf(len < size ? buf + len : NULL, len < size ? size - len : 0,
                         "\n  Round %d Bracket(Max Size (n)=%d, Milestone (r)=%g, completed=%.1f%%)",
                         b, br->n, br->cumul_r, 100.0 * completion(h, br));
            len += k > 0 ? (size_t)k : 0;
        }
    }
    return len;
}

static void hb_destroy(dray_tune_sched *s)
{
    hb *h = (hb *)s;
    for (int b = 0; b < h->n_bands; b++) {
        for (int i = 0; i < h->band_len[b]; i++) {
            if (h->bands[b][i])
                free(h->bands[b][i]->lv);
            free(h->bands[b][i]);
        }
        free(h->bands[b]);
    }
    free(h->bands);
    free(h->band_len);
    free(h->trial_b);
    dray__tune_sched_fini(s);
    free(h);
}

static void hb_on_error(dray_tune_sched *s, const dray_tune_host *host, int trial)
{
    hb_on_remove(s, host, trial);
}

static const dray__tune_sched_ops hb_ops = {"HyperBand", hb_on_add, hb_on_result, hb_on_complete,
                                            hb_on_error, hb_choose,  hb_debug,     hb_destroy};

dray_status dray_tune_sched_create_hyperband(const dray_tune_hyperband_opts *o,
                                             dray_tune_sched **out)
{
    dray_tune_hyperband_opts d;
    if (!o) {
        dray_tune_hyperband_opts_init(&d);
        o = &d;
    }
    if (!(o->max_t > 0))
        return dray_set_error(DRAY_EINVAL, "tune: HyperBand: max_t %g must be > 0", o->max_t);
    if (!(o->reduction_factor > 1))
        return dray_set_error(DRAY_EINVAL, "tune: HyperBand: reduction_factor %g must be > 1",
                              o->reduction_factor);
    hb *h = calloc(1, sizeof(*h));
    if (!h)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for HyperBand");
    dray_status st = dray__tune_sched_init(&h->base, &hb_ops,
                                           o->time_attr ? o->time_attr : "training_iteration",
                                           o->metric, o->mode);
    if (st != DRAY_OK) {
        free(h);
        return st;
    }
    h->eta = o->reduction_factor;
    h->max_t = o->max_t;
    h->stop_last_trials = o->stop_last_trials;
    h->s_max_1 = (int)nearbyint(log(o->max_t) / log(o->reduction_factor)) + 1;
    if (h->s_max_1 > 64) {
        hb_destroy(&h->base);
        return dray_set_error(DRAY_EINVAL, "tune: HyperBand: max_t %g gives more than 64 brackets",
                              o->max_t);
    }
    *out = &h->base;
    return DRAY_OK;
}
