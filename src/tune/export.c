/* tune result grid export as a frame table and as Parquet, through the frame and parquet modules when
 * the build has them (DRAY_EUNSUPPORTED otherwise). */
#include "internal.h"
#include "runner.h"

#include <stdio.h>

#if __has_include("dray/frame.h")
#include "dray/frame.h"

/* columns of the export in order: fixed ones, config paths, metric names (first seen) */
typedef struct cols {
    const char **name;
    dray_column **col;
    size_t n, cap;
} cols;

static dray_status push(cols *c, const char *name, dray_column *col)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        const char **nn = realloc(c->name, nc * sizeof(*nn));
        if (nn)
            c->name = nn;
        dray_column **ncol = nn ? realloc(c->col, nc * sizeof(*ncol)) : NULL;
        if (!ncol) {
            dray_column_release(col);
            return dray_set_error(DRAY_ENOMEM, "tune: out of memory exporting the grid");
        }
        c->col = ncol;
        c->cap = nc;
    }
    c->name[c->n] = name;
    c->col[c->n++] = col;
    return DRAY_OK;
}

static dray_status f64_col(const double *v, const uint8_t *valid, size_t n, dray_column **out)
{
    return dray_column_from_values(DRAY_DT_FLOAT64, DRAY_TU_SECOND, v, valid, (int64_t)n, out);
}

/* config column: int64 when every present value is an int, float64 when all numeric, bool when all
 * bools, else utf8 (numbers formatted) */
static dray_status config_col(const dray_tune_grid *g, const char *path, dray_column **out)
{
    size_t n = g->n;
    int kind = DRAY_TUNE_NONE;
    for (size_t i = 0; i < n; i++) {
        const dray_tune_val *v = dray_tune_config_get(g->t[i].cfg, path);
        if (!v)
            continue;
        if (kind == DRAY_TUNE_NONE)
            kind = v->kind;
        else if (kind != v->kind)
            kind = (kind == DRAY_TUNE_INT || kind == DRAY_TUNE_FLOAT) &&
                           (v->kind == DRAY_TUNE_INT || v->kind == DRAY_TUNE_FLOAT)
                       ? DRAY_TUNE_FLOAT
                       : DRAY_TUNE_STR;
    }
    uint8_t *valid = calloc(n ? n : 1, 1);
    double *f = calloc(n ? n : 1, sizeof(double));
    int64_t *iv = calloc(n ? n : 1, sizeof(int64_t));
    uint8_t *bv = calloc(n ? n : 1, 1);
    char **sv = calloc(n ? n : 1, sizeof(char *));
    dray_status st = valid && f && iv && bv && sv
                         ? DRAY_OK
                         : dray_set_error(DRAY_ENOMEM, "tune: out of memory exporting '%s'", path);
    for (size_t i = 0; i < n && st == DRAY_OK; i++) {
        const dray_tune_val *v = dray_tune_config_get(g->t[i].cfg, path);
        if (!v)
            continue;
        valid[i] = 1;
        f[i] = dray_tune_val_num(v);
        iv[i] = v->kind == DRAY_TUNE_INT ? v->u.i : 0;
        bv[i] = v->kind == DRAY_TUNE_BOOL && v->u.b;
        if (kind == DRAY_TUNE_STR) {
            char buf[64];
            if (v->kind == DRAY_TUNE_STR)
                sv[i] = dray__tune_strdup(v->u.s);
            else if (v->kind == DRAY_TUNE_INT)
                sv[i] = (snprintf(buf, sizeof(buf), "%lld", (long long)v->u.i), dray__tune_strdup(buf));
            else if (v->kind == DRAY_TUNE_BOOL)
                sv[i] = dray__tune_strdup(v->u.b ? "true" : "false");
            else
                sv[i] = (snprintf(buf, sizeof(buf), "%.17g", v->u.f), dray__tune_strdup(buf));
            if (!sv[i])
                st = dray_set_error(DRAY_ENOMEM, "tune: out of memory exporting '%s'", path);
        }
    }
    if (st == DRAY_OK) {
        switch (kind) {
        case DRAY_TUNE_INT:
            st = dray_column_from_values(DRAY_DT_INT64, DRAY_TU_SECOND, iv, valid, (int64_t)n, out);
            break;
        case DRAY_TUNE_BOOL:
            st = dray_column_from_values(DRAY_DT_BOOL, DRAY_TU_SECOND, bv, valid, (int64_t)n, out);
            break;
        case DRAY_TUNE_STR:
            st = dray_column_from_strings((const char *const *)sv, (int64_t)n, false, out);
            break;
        default:
            st = f64_col(f, valid, n, out);
        }
    }
    for (size_t i = 0; sv && i < n; i++)
        free(sv[i]);
    free(sv);
    free(bv);
    free(iv);
    free(f);
    free(valid);
    return st;
}

static dray_status metric_col(const dray_tune_grid *g, const char *name, dray_column **out)
{
    size_t n = g->n;
    uint8_t *valid = calloc(n ? n : 1, 1);
    double *v = calloc(n ? n : 1, sizeof(double));
    dray_status st = valid && v ? DRAY_OK
                                : dray_set_error(DRAY_ENOMEM, "tune: out of memory exporting '%s'", name);
    for (size_t i = 0; i < n && st == DRAY_OK; i++)
        valid[i] = dray_tune_result_get(dray_tune_grid_last(g, i), name, &v[i]);
    if (st == DRAY_OK)
        st = f64_col(v, valid, n, out);
    free(valid);
    free(v);
    return st;
}

dray_status dray_tune_grid_to_table(const dray_tune_grid *g, dray_table **out)
{
    size_t n = g->n;
    cols c = {0};
    char **cfg_names = NULL;
    size_t n_cfg = 0;
    int64_t *ids = malloc((n ? n : 1) * sizeof(int64_t)), *iters = malloc((n ? n : 1) * sizeof(int64_t));
    double *times = malloc((n ? n : 1) * sizeof(double));
    const char **status = malloc((n ? n : 1) * sizeof(char *)), **errors = malloc((n ? n : 1) * sizeof(char *));
    dray_status st = ids && iters && times && status && errors
                         ? DRAY_OK
                         : dray_set_error(DRAY_ENOMEM, "tune: out of memory exporting the grid");
    for (size_t i = 0; i < n && st == DRAY_OK; i++) {
        ids[i] = g->t[i].id;
        iters[i] = g->t[i].iter;
        times[i] = g->t[i].time_total;
        status[i] = dray_tune_status_name(g->t[i].status);
        errors[i] = g->t[i].error && g->t[i].error[0] ? g->t[i].error : NULL;
    }
    dray_column *col = NULL;
    if (st == DRAY_OK &&
        (st = dray_column_from_values(DRAY_DT_INT64, DRAY_TU_SECOND, ids, NULL, (int64_t)n, &col)) == DRAY_OK)
        st = push(&c, "trial_id", col);
    if (st == DRAY_OK && (st = dray_column_from_strings(status, (int64_t)n, false, &col)) == DRAY_OK)
        st = push(&c, "status", col);
    if (st == DRAY_OK &&
        (st = dray_column_from_values(DRAY_DT_INT64, DRAY_TU_SECOND, iters, NULL, (int64_t)n, &col)) == DRAY_OK)
        st = push(&c, "iterations", col);
    if (st == DRAY_OK && (st = f64_col(times, NULL, n, &col)) == DRAY_OK)
        st = push(&c, "time_total_s", col);
    /* config paths and metrics, first seen */
    for (size_t i = 0; i < n && st == DRAY_OK; i++) {
        for (size_t k = 0; g->t[i].cfg && k < g->t[i].cfg->n && st == DRAY_OK; k++) {
            const char *p = g->t[i].cfg->e[k].path;
            bool seen = false;
            for (size_t j = 0; j < n_cfg && !seen; j++)
                seen = strcmp(cfg_names[j] + 7, p) == 0;
            if (seen)
                continue;
            char **nn = realloc(cfg_names, (n_cfg + 1) * sizeof(*nn));
            char *name = nn ? malloc(strlen(p) + 8) : NULL;
            if (nn)
                cfg_names = nn;
            if (!name) {
                st = dray_set_error(DRAY_ENOMEM, "tune: out of memory exporting the grid");
                break;
            }
            sprintf(name, "config/%s", p);
            cfg_names[n_cfg++] = name;
            if ((st = config_col(g, p, &col)) == DRAY_OK)
                st = push(&c, name, col);
        }
    }
    for (size_t i = 0; i < n && st == DRAY_OK; i++) {
        const dray_tune_result *r = dray_tune_grid_last(g, i);
        for (size_t k = 0; r && k < r->n && st == DRAY_OK; k++) {
            const char *m = r->kv[k].name;
            bool seen = !strcmp(m, "training_iteration") || !strcmp(m, "time_total_s");
            for (size_t j = 0; j < c.n && !seen; j++)
                seen = strcmp(c.name[j], m) == 0;
            if (!seen && (st = metric_col(g, m, &col)) == DRAY_OK)
                st = push(&c, m, col);
        }
    }
    if (st == DRAY_OK && (st = dray_column_from_strings(errors, (int64_t)n, false, &col)) == DRAY_OK)
        st = push(&c, "error", col);
    if (st == DRAY_OK)
        st = dray_table_create(c.name, c.col, c.n, out);
    for (size_t i = 0; i < c.n; i++)
        dray_column_release(c.col[i]);
    for (size_t i = 0; i < n_cfg; i++)
        free(cfg_names[i]);
    free(cfg_names);
    free(c.name);
    free(c.col);
    free(ids);
    free(iters);
    free(times);
    free(status);
    free(errors);
    return st;
}

dray_status dray_tune_grid_write_parquet(const dray_tune_grid *g, const char *path)
{
    dray_table *t = NULL;
    dray_status st = dray_tune_grid_to_table(g, &t);
    if (st != DRAY_OK)
        return st;
    struct ArrowSchema schema;
    struct ArrowArray array;
    dray_parquet_writer *w = NULL;
    st = dray_table_export(t, &schema, &array);
    dray_table_release(t);
    if (st != DRAY_OK)
        return st;
    if ((st = dray_parquet_writer_open(path, &schema, NULL, &w)) == DRAY_OK) {
        if ((st = dray_parquet_writer_write(w, &array)) == DRAY_OK)
            st = dray_parquet_writer_close(w);
        else
            dray_parquet_writer_abort(w);
    }
    schema.release(&schema);
    array.release(&array);
    return st;
}

#else /* no frame module in this build */

dray_status dray_tune_grid_to_table(const dray_tune_grid *g, dray_table **out)
{
    (void)g, (void)out;
    return dray_set_error(DRAY_EUNSUPPORTED, "tune: grid_to_table needs the frame module");
}

dray_status dray_tune_grid_write_parquet(const dray_tune_grid *g, const char *path)
{
    (void)g;
    return dray_set_error(DRAY_EUNSUPPORTED,
                          "tune: writing '%s' needs the frame and parquet modules (use CSV)", path);
}
#endif
