/* tune search spaces: domains (grid, choice, uniform, quniform, loguniform, randint, qrandint, randn,
 * sample_from), variant resolution, and the basic searcher (Ray's BasicVariantGenerator: grid x
 * num_samples, grids ordered by path with the first varying fastest). */
#include "internal.h"

#include <stdio.h>

dray_status dray_tune_space_create(dray_tune_space **out)
{
    dray_tune_space *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for a space");
    *out = sp;
    return DRAY_OK;
}

static void free_vals(dray_tune_val *vals, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (vals[i].kind == DRAY_TUNE_STR)
            free((char *)vals[i].u.s);
    free(vals);
}

void dray_tune_space_destroy(dray_tune_space *sp)
{
    if (!sp)
        return;
    for (size_t i = 0; i < sp->n; i++) {
        free(sp->p[i].path);
        free_vals(sp->p[i].vals, sp->p[i].n_vals);
    }
    free(sp->p);
    free(sp);
}

const dray__tune_param *dray__tune_param_find(const dray_tune_space *sp, const char *path)
{
    for (size_t i = 0; i < sp->n; i++)
        if (strcmp(sp->p[i].path, path) == 0)
            return &sp->p[i];
    return NULL;
}

/* add_param: validates the path and appends `p` (takes p->vals on success). */
static dray_status add_param(dray_tune_space *sp, const char *path, dray__tune_param *p)
{
    if (!sp || !path || !*path)
        return dray_set_error(DRAY_EINVAL, "tune: a space parameter needs a non-empty path");
    if (path[0] == '/' || path[strlen(path) - 1] == '/' || strstr(path, "//"))
        return dray_set_error(DRAY_EINVAL, "tune: parameter path '%s' has an empty level", path);
    for (size_t i = 0; i < sp->n; i++) {
        const char *q = sp->p[i].path;
        size_t lq = strlen(q), lp = strlen(path);
        bool same = strcmp(q, path) == 0;
        /* "a" and "a/b" cannot both be leaves: a would be a value and a nested group at once. */
        bool nest = (lq < lp && strncmp(q, path, lq) == 0 && path[lq] == '/') ||
                    (lp < lq && strncmp(q, path, lp) == 0 && q[lp] == '/');
        if (same || nest)
            return dray_set_error(DRAY_EINVAL, "tune: parameter '%s' %s '%s'", path,
                                  same ? "is already in the space as" : "clashes with nested", q);
    }
    dray_status st = dray__tune_grow((void **)&sp->p, &sp->cap, sp->n, sizeof(*sp->p));
    if (st != DRAY_OK)
        return st;
    if (!(p->path = dray__tune_strdup(path)))
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for parameter '%s'", path);
    sp->p[sp->n++] = *p;
    return DRAY_OK;
}

static dray_status copy_vals(const char *path, const dray_tune_val *values, size_t n,
                             dray_tune_val **out)
{
    dray_tune_val *v = calloc(n, sizeof(*v));
    if (!v)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for parameter '%s'", path);
    for (size_t i = 0; i < n; i++) {
        v[i] = values[i];
        if (values[i].kind < DRAY_TUNE_INT || values[i].kind > DRAY_TUNE_BOOL ||
            (values[i].kind == DRAY_TUNE_STR && !values[i].u.s)) {
            free_vals(v, i);
            return dray_set_error(DRAY_EINVAL, "tune: parameter '%s': value %zu has no valid kind",
                                  path, i);
        }
        if (values[i].kind == DRAY_TUNE_STR && !(v[i].u.s = dray__tune_strdup(values[i].u.s))) {
            free_vals(v, i);
            return dray_set_error(DRAY_ENOMEM, "tune: out of memory for parameter '%s'", path);
        }
    }
    *out = v;
    return DRAY_OK;
}

static dray_status add_list(dray_tune_space *sp, const char *path, dray__tune_dom dom,
                            const dray_tune_val *values, size_t n, const char *what)
{
    if (!values || n == 0)
        return dray_set_error(DRAY_EINVAL, "tune: %s for '%s' is empty", what,
                              path ? path : "(null)");
    dray__tune_param p = {0};
    p.dom = dom;
    p.n_vals = n;
    dray_status st = copy_vals(path ? path : "(null)", values, n, &p.vals);
    if (st != DRAY_OK)
        return st;
    if ((st = add_param(sp, path, &p)) != DRAY_OK)
        free_vals(p.vals, n);
    return st;
}

dray_status dray_tune_space_grid(dray_tune_space *sp, const char *path, const dray_tune_val *values,
                                 size_t n)
{
    return add_list(sp, path, DRAY__DOM_GRID, values, n, "grid_search");
}

dray_status dray_tune_space_choice(dray_tune_space *sp, const char *path,
                                   const dray_tune_val *values, size_t n)
{
    return add_list(sp, path, DRAY__DOM_CHOICE, values, n, "choice");
}

dray_status dray_tune_space_const(dray_tune_space *sp, const char *path, dray_tune_val v)
{
    return add_list(sp, path, DRAY__DOM_CONST, &v, 1, "constant");
}

static bool finite2(double a, double b) { return isfinite(a) && isfinite(b); }

/* divisible: x is a multiple of q within rounding (Ray's quantisation check on bounds). */
static bool divisible(double x, double q)
{
    double r = x / q;
    return fabs(r - nearbyint(r)) <= 1e-9 * fmax(1.0, fabs(r));
}

static dray_status add_num(dray_tune_space *sp, const char *path, dray__tune_dom dom, double lo,
                           double hi, double q)
{
    const char *nm = path ? path : "(null)";
    dray__tune_param p = {0};
    p.dom = dom;
    p.lo = lo;
    p.hi = hi;
    p.q = q;
    switch (dom) {
    case DRAY__DOM_RANDN:
        if (!finite2(lo, hi) || hi <= 0)
            return dray_set_error(DRAY_EINVAL, "tune: randn '%s': sd %g must be > 0, mean finite",
                                  nm, hi);
        break;
    case DRAY__DOM_LOGUNIFORM:
        if (!(lo > 0))
            return dray_set_error(DRAY_EINVAL, "tune: loguniform '%s': lower bound %g must be > 0",
                                  nm, lo);
        /* fall through */
    default:
        if (!finite2(lo, hi))
            return dray_set_error(DRAY_EINVAL, "tune: '%s': bounds must be finite", nm);
        if (lo > hi)
            return dray_set_error(DRAY_EINVAL, "tune: '%s': lower bound %g > upper bound %g", nm,
                                  lo, hi);
        if (dom == DRAY__DOM_QUNIFORM) {
            if (!(q > 0) || !isfinite(q))
                return dray_set_error(DRAY_EINVAL, "tune: quniform '%s': q %g must be > 0", nm, q);
            if (!divisible(lo, q) || !divisible(hi, q))
                return dray_set_error(DRAY_EINVAL,
                                      "tune: quniform '%s': bounds [%g, %g] are not multiples of q %g",
                                      nm, lo, hi, q);
        }
    }
    return add_param(sp, path, &p);
}

dray_status dray_tune_space_uniform(dray_tune_space *sp, const char *path, double lo, double hi)
{
    return add_num(sp, path, DRAY__DOM_UNIFORM, lo, hi, 0);
}

dray_status dray_tune_space_quniform(dray_tune_space *sp, const char *path, double lo, double hi,
                                     double q)
{
    return add_num(sp, path, DRAY__DOM_QUNIFORM, lo, hi, q);
}

dray_status dray_tune_space_loguniform(dray_tune_space *sp, const char *path, double lo, double hi)
{
    return add_num(sp, path, DRAY__DOM_LOGUNIFORM, lo, hi, 0);
}

dray_status dray_tune_space_randn(dray_tune_space *sp, const char *path, double mean, double sd)
{
    return add_num(sp, path, DRAY__DOM_RANDN, mean, sd, 0);
}

dray_status dray_tune_space_randint(dray_tune_space *sp, const char *path, int64_t lo, int64_t hi)
{
    if (lo >= hi)
        return dray_set_error(DRAY_EINVAL,
                              "tune: randint '%s': lower bound %lld must be < upper bound %lld "
                              "(upper is exclusive)",
                              path ? path : "(null)", (long long)lo, (long long)hi);
    dray__tune_param p = {0};
    p.dom = DRAY__DOM_RANDINT;
    p.ilo = lo;
    p.ihi = hi;
    return add_param(sp, path, &p);
}

dray_status dray_tune_space_qrandint(dray_tune_space *sp, const char *path, int64_t lo, int64_t hi,
                                     int64_t q)
{
    const char *nm = path ? path : "(null)";
    if (lo > hi)
        return dray_set_error(DRAY_EINVAL, "tune: qrandint '%s': lower bound %lld > upper bound %lld",
                              nm, (long long)lo, (long long)hi);
    if (q <= 0)
        return dray_set_error(DRAY_EINVAL, "tune: qrandint '%s': q %lld must be > 0", nm,
                              (long long)q);
    if (lo % q != 0 || hi % q != 0)
        return dray_set_error(DRAY_EINVAL,
                              "tune: qrandint '%s': bounds [%lld, %lld] are not multiples of q %lld",
                              nm, (long long)lo, (long long)hi, (long long)q);
    dray__tune_param p = {0};
    p.dom = DRAY__DOM_QRANDINT;
    p.ilo = lo;
    p.ihi = hi;
    p.iq = q;
    return add_param(sp, path, &p);
}

dray_status dray_tune_space_sample_from(dray_tune_space *sp, const char *path,
                                        dray_tune_sample_fn fn, void *user)
{
    if (!fn)
        return dray_set_error(DRAY_EINVAL, "tune: sample_from '%s' needs a function",
                              path ? path : "(null)");
    dray__tune_param p = {0};
    p.dom = DRAY__DOM_SAMPLE_FROM;
    p.fn = fn;
    p.user = user;
    return add_param(sp, path, &p);
}

size_t dray_tune_space_grid_size(const dray_tune_space *sp)
{
    size_t n = 1;
    for (size_t i = 0; i < sp->n; i++)
        if (sp->p[i].dom == DRAY__DOM_GRID)
            n *= sp->p[i].n_vals;
    return n;
}

/* uniform integer in [0, n) without modulo bias. */
static uint64_t below(dray_tune_rng *rng, uint64_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do
        x = dray_tune_rng_next(rng);
    while (x >= lim);
    return x % n;
}

dray_tune_val dray__tune_param_sample(const dray__tune_param *p, dray_tune_rng *rng)
{
    switch (p->dom) {
    case DRAY__DOM_CHOICE:
        return p->vals[below(rng, p->n_vals)];
    case DRAY__DOM_GRID:
    case DRAY__DOM_CONST:
        return p->vals[0];
    case DRAY__DOM_UNIFORM:
        return dray_tune_f(p->lo + (p->hi - p->lo) * dray_tune_rng_uniform(rng));
    case DRAY__DOM_QUNIFORM: {
        double x = p->lo + (p->hi - p->lo) * dray_tune_rng_uniform(rng);
        return dray_tune_f(nearbyint(x / p->q) * p->q); /* numpy round: half to even */
    }
    case DRAY__DOM_LOGUNIFORM: {
        double a = log(p->lo), b = log(p->hi);
        return dray_tune_f(exp(a + (b - a) * dray_tune_rng_uniform(rng)));
    }
    case DRAY__DOM_RANDINT:
        return dray_tune_i(p->ilo + (int64_t)below(rng, (uint64_t)(p->ihi - p->ilo)));
    case DRAY__DOM_QRANDINT: {
        /* Ray: an integer in [lo, hi] then rounded to a multiple of q (half to even). */
        int64_t x = p->ilo + (int64_t)below(rng, (uint64_t)(p->ihi - p->ilo) + 1);
        return dray_tune_i((int64_t)nearbyint((double)x / (double)p->iq) * p->iq);
    }
    case DRAY__DOM_RANDN:
        return dray_tune_f(p->lo + p->hi * dray_tune_rng_normal(rng));
    default:
        return dray_tune_f(NAN);
    }
}

/* path_cmp: Ray compares parameter paths as tuples of keys: level by level, a shorter path first
 * when one is a prefix of the other. */
static int path_cmp(const char *a, const char *b)
{
    for (;;) {
        size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
        int c = memcmp(a, b, la < lb ? la : lb);
        if (c != 0)
            return c;
        if (la != lb)
            return la < lb ? -1 : 1;
        if (!a[la] || !b[lb])
            return !a[la] && !b[lb] ? 0 : !a[la] ? -1 : 1;
        a += la + 1;
        b += lb + 1;
    }
}

/* grid_digit: the value index of grid parameter `i` in combination `grid_index`. Like Ray's
 * BasicVariantGenerator, grids are ordered by path and the first one varies fastest. */
static size_t grid_digit(const dray_tune_space *sp, size_t i, size_t grid_index)
{
    size_t stride = 1;
    for (size_t j = 0; j < sp->n; j++)
        if (j != i && sp->p[j].dom == DRAY__DOM_GRID && path_cmp(sp->p[j].path, sp->p[i].path) < 0)
            stride *= sp->p[j].n_vals;
    return grid_index / stride % sp->p[i].n_vals;
}

dray_status dray_tune_space_sample(const dray_tune_space *sp, size_t grid_index, dray_tune_rng *rng,
                                   dray_tune_config **out)
{
    dray_tune_config *c = NULL;
    dray_status st = dray_tune_config_create(&c);
    if (st != DRAY_OK)
        return st;
    /* Pass 1 places every parameter in declaration order (so configs keep that order); grids take
     * their digit of grid_index; random domains are drawn in declaration order. */
    size_t idx = grid_index % dray_tune_space_grid_size(sp);
    for (size_t i = 0; i < sp->n && st == DRAY_OK; i++) {
        const dray__tune_param *p = &sp->p[i];
        dray_tune_val v;
        if (p->dom == DRAY__DOM_GRID) {
            v = p->vals[grid_digit(sp, i, idx)];
        } else if (p->dom == DRAY__DOM_SAMPLE_FROM) {
            continue;
        } else {
            v = dray__tune_param_sample(p, rng);
        }
        st = dray_tune_config_set(c, p->path, v);
    }
    /* Pass 2: conditional samplers, which see everything resolved before them. */
    for (size_t i = 0; i < sp->n && st == DRAY_OK; i++) {
        const dray__tune_param *p = &sp->p[i];
        if (p->dom != DRAY__DOM_SAMPLE_FROM)
            continue;
        dray_tune_val v = {0, {.i = 0}};
        if ((st = p->fn(c, rng, p->user, &v)) != DRAY_OK) {
            char why[256];
            snprintf(why, sizeof(why), "%s", dray_last_error());
            dray_set_error(st, "tune: sample_from '%s' failed: %s", p->path, why);
            break;
        }
        st = dray_tune_config_set(c, p->path, v);
    }
    if (st != DRAY_OK) {
        dray_tune_config_destroy(c);
        return st;
    }
    *out = c;
    return DRAY_OK;
}

/* ==== the basic searcher ==== */
typedef struct basic_searcher {
    dray_tune_searcher base;
    const dray_tune_space *sp;
    int64_t num_samples;
    int64_t next;
    size_t grid;
    dray_tune_rng rng;
} basic_searcher;

static dray_status basic_suggest(dray_tune_searcher *s, int trial, dray_tune_config **out)
{
    basic_searcher *b = (basic_searcher *)s;
    (void)trial;
    if (b->num_samples >= 0 && b->next >= b->num_samples * (int64_t)b->grid)
        return DRAY_ENOTFOUND;
    dray_status st = dray_tune_space_sample(b->sp, (size_t)(b->next % (int64_t)b->grid), &b->rng, out);
    if (st == DRAY_OK)
        b->next++;
    return st;
}

static void basic_on_complete(dray_tune_searcher *s, int trial, const dray_tune_result *last,
                              bool error)
{
    (void)s, (void)trial, (void)last, (void)error;
}

static int64_t basic_total(const dray_tune_searcher *s)
{
    const basic_searcher *b = (const basic_searcher *)s;
    return b->num_samples < 0 ? -1 : b->num_samples * (int64_t)b->grid;
}

static void basic_destroy(dray_tune_searcher *s) { free(s); }

static const dray__tune_searcher_ops basic_ops = {basic_suggest, basic_on_complete, basic_total,
                                                  basic_destroy};

dray_status dray_tune_searcher_create_basic(const dray_tune_space *sp, int64_t num_samples,
                                            uint64_t seed, dray_tune_searcher **out)
{
    if (!sp)
        return dray_set_error(DRAY_EINVAL, "tune: basic searcher needs a space");
    if (num_samples == 0 || num_samples < -1)
        return dray_set_error(DRAY_EINVAL, "tune: num_samples %lld must be >= 1 or -1 (endless)",
                              (long long)num_samples);
    basic_searcher *b = calloc(1, sizeof(*b));
    if (!b)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for a searcher");
    b->base.ops = &basic_ops;
    b->sp = sp;
    b->num_samples = num_samples;
    b->grid = dray_tune_space_grid_size(sp);
    dray_tune_rng_seed(&b->rng, seed);
    *out = &b->base;
    return DRAY_OK;
}

void dray_tune_searcher_destroy(dray_tune_searcher *s)
{
    if (s)
        s->ops->destroy(s);
}

dray_status dray_tune_searcher_suggest(dray_tune_searcher *s, int trial, dray_tune_config **out)
{
    return s->ops->suggest(s, trial, out);
}

void dray_tune_searcher_on_complete(dray_tune_searcher *s, int trial, const dray_tune_result *last,
                                    bool error)
{
    s->ops->on_complete(s, trial, last, error);
}

int64_t dray_tune_searcher_total(const dray_tune_searcher *s) { return s->ops->total(s); }
