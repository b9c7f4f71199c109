/* tune result grid: the trials of a finished run (config, status, history, error), best(), CSV
 * export and the status table that the runner also prints live. */
#include "internal.h"
#include "runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

void dray__tune_trial_fini(dray__tune_trial *t)
{
    dray_tune_config_destroy(t->cfg);
    for (size_t i = 0; i < t->n_hist; i++)
        dray_tune_result_destroy(t->hist[i]);
    free(t->hist);
    free(t->error);
    dray_ref_release(t->inflight);
    dray_ref_release(t->ckpt);
    dray_actor_release(t->actor);
    memset(t, 0, sizeof(*t));
}

void dray_tune_grid_destroy(dray_tune_grid *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++)
        dray__tune_trial_fini(&g->t[i]);
    free(g->t);
    free(g->metric);
    free(g);
}

size_t dray_tune_grid_len(const dray_tune_grid *g) { return g ? g->n : 0; }
const dray_tune_config *dray_tune_grid_config(const dray_tune_grid *g, size_t i)
{
    return i < g->n ? g->t[i].cfg : NULL;
}
dray_tune_status dray_tune_grid_status(const dray_tune_grid *g, size_t i)
{
    return i < g->n ? g->t[i].status : DRAY_TUNE_ERROR;
}
const dray_tune_result *dray_tune_grid_last(const dray_tune_grid *g, size_t i)
{
    return i < g->n && g->t[i].n_hist ? g->t[i].hist[g->t[i].n_hist - 1] : NULL;
}
const dray_tune_result *const *dray_tune_grid_history(const dray_tune_grid *g, size_t i, size_t *n)
{
    *n = i < g->n ? g->t[i].n_hist : 0;
    return i < g->n ? (const dray_tune_result *const *)g->t[i].hist : NULL;
}
const char *dray_tune_grid_error(const dray_tune_grid *g, size_t i)
{
    return i < g->n && g->t[i].error ? g->t[i].error : "";
}
int64_t dray_tune_grid_iterations(const dray_tune_grid *g, size_t i)
{
    return i < g->n ? g->t[i].iter : 0;
}
double dray_tune_grid_time_s(const dray_tune_grid *g, size_t i)
{
    return i < g->n ? g->t[i].time_total : 0;
}
size_t dray_tune_grid_num_errors(const dray_tune_grid *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++)
        n += g->t[i].status == DRAY_TUNE_ERROR;
    return n;
}

dray_status dray_tune_grid_best(const dray_tune_grid *g, const char *metric, dray_tune_mode mode,
                                const char *scope, size_t *index, double *value)
{
    if (!metric)
        metric = g->metric;
    if (mode == DRAY_TUNE_MODE_UNSET)
        mode = g->mode;
    if (!metric)
        return dray_set_error(DRAY_EINVAL, "tune: best: no metric given and the run had none");
    if (mode != DRAY_TUNE_MIN && mode != DRAY_TUNE_MAX)
        return dray_set_error(DRAY_EINVAL, "tune: best: mode must be min or max");
    bool all;
    if (!scope || strcmp(scope, "last") == 0)
        all = false;
    else if (strcmp(scope, "all") == 0)
        all = true;
    else
        return dray_set_error(DRAY_EINVAL, "tune: best: scope '%s' must be 'last' or 'all'", scope);
    double sign = mode == DRAY_TUNE_MAX ? 1 : -1, best = -INFINITY, bv = NAN;
    size_t bi = 0;
    bool found = false;
    for (size_t i = 0; i < g->n; i++) {
        const dray__tune_trial *t = &g->t[i];
        size_t from = all ? 0 : (t->n_hist ? t->n_hist - 1 : 0);
        for (size_t k = from; k < t->n_hist; k++) {
            double v;
            if (!dray_tune_result_get(t->hist[k], metric, &v) || isnan(v))
                continue;
            if (!found || sign * v > best) {
                best = sign * v;
                bv = v;
                bi = i;
                found = true;
            }
        }
    }
    if (!found)
        return dray_set_error(DRAY_ENOTFOUND, "tune: best: no trial reported metric '%s'", metric);
    if (index)
        *index = bi;
    if (value)
        *value = bv;
    return DRAY_OK;
}

/* ---- column sets: config paths and metric names in first-seen order ---- */
typedef struct names {
    const char **v;
    size_t n, cap;
} names;

static dray_status names_add(names *ns, const char *s)
{
    for (size_t i = 0; i < ns->n; i++)
        if (strcmp(ns->v[i], s) == 0)
            return DRAY_OK;
    dray_status st = dray__tune_grow((void **)&ns->v, &ns->cap, ns->n, sizeof(char *));
    if (st == DRAY_OK)
        ns->v[ns->n++] = s;
    return st;
}

static dray_status columns(const dray_tune_grid *g, names *cp, names *mn)
{
    dray_status st = DRAY_OK;
    for (size_t i = 0; i < g->n && st == DRAY_OK; i++) {
        const dray__tune_trial *t = &g->t[i];
        for (size_t k = 0; t->cfg && k < t->cfg->n && st == DRAY_OK; k++)
            st = names_add(cp, t->cfg->e[k].path);
        const dray_tune_result *r = dray_tune_grid_last(g, i);
        for (size_t k = 0; r && k < r->n && st == DRAY_OK; k++)
            if (strcmp(r->kv[k].name, "training_iteration") != 0 &&
                strcmp(r->kv[k].name, "time_total_s") != 0) /* fixed columns already */
                st = names_add(mn, r->kv[k].name);
    }
    return st;
}

static void csv_str(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* csv_num: the shortest of %.15g/%.16g/%.17g that reads back as the same double */
static void csv_num(FILE *f, double v)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v || prec == 17 || isnan(v))
            break;
    }
    fputs(buf, f);
}

static void csv_val(FILE *f, const dray_tune_val *v)
{
    switch (v->kind) {
    case DRAY_TUNE_INT: fprintf(f, "%lld", (long long)v->u.i); break;
    case DRAY_TUNE_FLOAT: csv_num(f, v->u.f); break;
    case DRAY_TUNE_BOOL: fputs(v->u.b ? "true" : "false", f); break;
    case DRAY_TUNE_STR: csv_str(f, v->u.s); break;
    default: break;
    }
}

dray_status dray_tune_grid_write_csv(const dray_tune_grid *g, const char *path)
{
    names cp = {0}, mn = {0};
    dray_status st = columns(g, &cp, &mn);
    FILE *f = st == DRAY_OK ? fopen(path, "w") : NULL;
    if (st == DRAY_OK && !f)
        st = dray_set_error(DRAY_EIO, "tune: cannot write CSV '%s': %s", path, strerror(errno));
    if (st != DRAY_OK)
        goto out;
    fputs("trial_id,status,iterations,time_total_s", f);
    for (size_t k = 0; k < cp.n; k++) {
        fputs(",config/", f);
        csv_str(f, cp.v[k]);
    }
    for (size_t k = 0; k < mn.n; k++) {
        fputc(',', f);
        csv_str(f, mn.v[k]);
    }
    fputs(",error\n", f);
    for (size_t i = 0; i < g->n; i++) {
        const dray__tune_trial *t = &g->t[i];
        fprintf(f, "%d,%s,%lld,%.6f", t->id, dray_tune_status_name(t->status), (long long)t->iter,
                t->time_total);
        for (size_t k = 0; k < cp.n; k++) {
            fputc(',', f);
            const dray_tune_val *v = dray_tune_config_get(t->cfg, cp.v[k]);
            if (v)
                csv_val(f, v);
        }
        const dray_tune_result *r = dray_tune_grid_last(g, i);
        for (size_t k = 0; k < mn.n; k++) {
            double v;
            fputc(',', f);
            if (r && dray_tune_result_get(r, mn.v[k], &v))
                csv_num(f, v);
        }
        fputc(',', f);
        csv_str(f, t->error ? t->error : "");
        fputc('\n', f);
    }
    if (fclose(f) != 0)
        st = dray_set_error(DRAY_EIO, "tune: writing CSV '%s' failed: %s", path, strerror(errno));
out:
    free(cp.v);
    free(mn.v);
    return st;
}

/* table: "Trial status: 3 RUNNING | 5 TERMINATED" then one row per trial (at most 20 shown, like
 * Ray's reporter) with the config and the run metric. */
size_t dray__tune_table(const dray__tune_trial *trials, size_t n, const char *metric, char *buf,
                        size_t size)
{
    size_t len = 0, counts[5] = {0};
    char cfgbuf[160];
#define APPEND(...)                                                                              \
    do {                                                                                         \
        int k_ = snprintf(len < size ? buf + len : NULL, len < size ? size - len : 0, __VA_ARGS__); \
        len += k_ > 0 ? (size_t)k_ : 0;                                                          \
    } while (0)
    for (size_t i = 0; i < n; i++)
        counts[trials[i].status]++;
    APPEND("Trial status:");
    for (int s = 0; s < 5; s++)
        if (counts[s])
            APPEND(" %zu %s", counts[s], dray_tune_status_name((dray_tune_status)s));
    APPEND("\n%-8s %-10s %-48s %6s %9s %12s\n", "trial", "status", "config", "iter", "total s",
           metric ? metric : "");
    size_t shown = 0;
    for (size_t i = 0; i < n && shown < 20; i++, shown++) {
        const dray__tune_trial *t = &trials[i];
        cfgbuf[0] = '\0';
        if (t->cfg)
            dray_tune_config_format(t->cfg, cfgbuf, sizeof(cfgbuf));
        if (strlen(cfgbuf) > 48)
            memcpy(cfgbuf + 45, "...", 4);
        double v = NAN;
        if (metric && t->n_hist)
            dray_tune_result_get(t->hist[t->n_hist - 1], metric, &v);
        char vbuf[32] = "";
        if (!isnan(v))
            snprintf(vbuf, sizeof(vbuf), "%.6g", v);
        APPEND("%-8d %-10s %-48s %6lld %9.2f %12s\n", t->id, dray_tune_status_name(t->status),
               cfgbuf, (long long)t->iter, t->time_total, vbuf);
    }
    if (n > shown)
        APPEND("... %zu more trials\n", n - shown);
#undef APPEND
    if (size)
        buf[len < size ? len : size - 1] = '\0';
    return len;
}

size_t dray_tune_grid_table(const dray_tune_grid *g, char *buf, size_t size)
{
    return dray__tune_table(g->t, g->n, g->metric, buf, size);
}
