/* Groupby: a task per partition hashes rows by key into partial aggregates (count, sum, sum of
 * squares, min, max per value column); partials are merged pairwise in a tree of tasks by the same
 * hashing, and the driver turns the last one into the requested aggregates, sorted by key. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "frame_internal.h"

enum { S_CNT, S_SUM, S_SQ, S_MIN, S_MAX, S__N };

/* group_rows: gid[i] for every row and the first row of each group. */
/* fast_str_hash: a hash of s[0..l) from fixed-size (possibly overlapping) loads, so that no load
 * waits on a variable-length copy. */
static inline uint64_t fast_str_hash(const char *s, size_t l)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ l, w;
    if (l >= 8) {
        const char *end = s + l - 8;
        for (; s < end; s += 8) {
            memcpy(&w, s, 8);
            h = (h ^ w) * 0xff51afd7ed558ccdull;
            h ^= h >> 32;
        }
        memcpy(&w, end, 8);
    } else if (l >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + l - 4, 4);
        w = ((uint64_t)a << 32) | b;
    } else {
        w = l ? ((uint64_t)(uint8_t)s[0] << 16) | ((uint64_t)(uint8_t)s[l >> 1] << 8) | (uint8_t)s[l - 1]
              : 0;
    }
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

/* row_hashes: the hash of every row's keys, with fast paths for one utf8 or int64 key. */
static void row_hashes(dray_column *const *keys, size_t nk, int64_t n, uint64_t *hv)
{
    const dray_column *c = keys[0];
    if (nk == 1 && c->type == DRAY_DT_UTF8) {
        const int32_t *off = c->data;
        for (int64_t i = 0; i < n; i++)
            hv[i] = c->validity && !dray__bit(c->validity, i)
                        ? 0x5bd1e995u
                        : fast_str_hash(c->chars + off[i], (size_t)(off[i + 1] - off[i]));
    } else if (nk == 1 && (c->type == DRAY_DT_INT64 || c->type == DRAY_DT_DICT)) {
        for (int64_t i = 0; i < n; i++) {
            uint64_t x = c->validity && !dray__bit(c->validity, i)
                             ? 0x5bd1e995u
                             : (uint64_t)dray_column_get_i64(c, i) * 0x9e3779b97f4a7c15ull;
            hv[i] = x ^ (x >> 29);
        }
    } else {
        for (int64_t i = 0; i < n; i++)
            hv[i] = dray__row_hash(keys, nk, i, false);
    }
}

/* keys_equal: rows i and j of the keys, with the one-utf8-key case inline. */
static inline bool keys_equal(dray_column *const *keys, size_t nk, int64_t i, int64_t j)
{
    const dray_column *c = keys[0];
    if (nk == 1 && c->type == DRAY_DT_UTF8 && !c->validity) {
        const int32_t *off = c->data;
        int32_t li = off[i + 1] - off[i];
        return li == off[j + 1] - off[j] && !memcmp(c->chars + off[i], c->chars + off[j], (size_t)li);
    }
    return dray__rows_equal(keys, i, keys, j, nk);
}

/* group_rows: gid[i] for every row and the first row of each group. */
static dray_status group_rows(dray_column *const *keys, size_t nk, int64_t n, int64_t *gid,
                              int64_t **firsts, int64_t *ngroups)
{
    size_t cap = 64;
    int64_t *slots = NULL, *first = NULL, ng = 0, fcap = 64;
    uint64_t *hashes = NULL, *hv = NULL;
    dray_status st = dray_set_error(DRAY_ENOMEM, "groupby of %lld rows", (long long)n);
    if (!(slots = malloc(cap * sizeof(*slots))) || !(first = malloc((size_t)fcap * sizeof(*first))) ||
        !(hashes = malloc(cap * sizeof(*hashes))) || !(hv = malloc((size_t)(n + 1) * sizeof(*hv))))
        goto out;
    for (size_t i = 0; i < cap; i++)
        slots[i] = -1;
    if (nk > 0)
        row_hashes(keys, nk, n, hv);
    else
        memset(hv, 0, (size_t)(n + 1) * sizeof(*hv));
    for (int64_t i = 0; i < n; i++) {
        uint64_t h = hv[i];
        size_t s = h & (cap - 1);
        while (slots[s] >= 0 && (hashes[s] != h || !keys_equal(keys, nk, first[slots[s]], i)))
            s = (s + 1) & (cap - 1);
        if (slots[s] >= 0) {
            gid[i] = slots[s];
            continue;
        }
        if (ng == fcap) {
            int64_t *nf = realloc(first, (size_t)fcap * 2 * sizeof(*first));
            if (!nf)
                goto out;
            first = nf;
            fcap *= 2;
        }
        first[ng] = i;
        slots[s] = ng;
        hashes[s] = h;
        gid[i] = ng++;
        if ((size_t)ng * 2 > cap) { /* grow and rehash */
            size_t ncap = cap * 2;
            int64_t *ns = malloc(ncap * sizeof(*ns));
            uint64_t *nh = malloc(ncap * sizeof(*nh));
            if (!ns || !nh) {
                free(ns);
                free(nh);
                goto out;
            }
            for (size_t k = 0; k < ncap; k++)
                ns[k] = -1;
            for (size_t k = 0; k < cap; k++) {
                if (slots[k] < 0)
                    continue;
                size_t t = hashes[k] & (ncap - 1);
                while (ns[t] >= 0)
                    t = (t + 1) & (ncap - 1);
                ns[t] = slots[k];
                nh[t] = hashes[k];
            }
            free(slots);
            free(hashes);
            slots = ns;
            hashes = nh;
            cap = ncap;
        }
    }
    *firsts = first;
    first = NULL;
    *ngroups = ng;
    st = DRAY_OK;
out:
    free(slots);
    free(hashes);
    free(hv);
    free(first);
    return st;
}

/* ---- partial aggregates ----
 * A partial is a table: the key columns, then S__N float64 columns per value column. With
 * `merge`, the input is itself a partial (concatenated partials) and states are combined. */
static dray_status aggregate(const dray_table *in, size_t nk, size_t nv, const int *vcols, bool merge,
                             dray_table **out)
{
    int64_t n = in->nrows, ng = 0, *gid = malloc((size_t)(n ? n : 1) * sizeof(int64_t)), *first = NULL;
    double *acc = NULL;
    dray_column **cols = calloc(nk + nv * S__N + 1, sizeof(*cols));
    char **names = calloc(nk + nv * S__N + 1, sizeof(*names));
    dray_status st = DRAY_OK;
    dray_column **keys = calloc(nk + 1, sizeof(*keys));
    if (!gid || !cols || !names || !keys) {
        st = dray_set_error(DRAY_ENOMEM, "groupby");
        goto out;
    }
    for (size_t k = 0; k < nk; k++)
        keys[k] = in->cols[k];
    if ((st = group_rows(keys, nk, n, gid, &first, &ng)))
        goto out;
    if (!(acc = malloc((size_t)(ng ? ng : 1) * nv * S__N * sizeof(double)))) {
        st = dray_set_error(DRAY_ENOMEM, "groupby");
        goto out;
    }
    for (int64_t g = 0; g < ng; g++)
        for (size_t v = 0; v < nv; v++) {
            double *a = acc + ((size_t)g * nv + v) * S__N;
            a[S_CNT] = a[S_SUM] = a[S_SQ] = 0;
            a[S_MIN] = INFINITY;
            a[S_MAX] = -INFINITY;
        }
    for (size_t v = 0; v < nv; v++) {
        if (merge) {
            const double *s[S__N];
            for (int k = 0; k < S__N; k++)
                s[k] = in->cols[nk + v * S__N + (size_t)k]->data;
            for (int64_t i = 0; i < n; i++) {
                double *a = acc + ((size_t)gid[i] * nv + v) * S__N;
                a[S_CNT] += s[S_CNT][i];
                a[S_SUM] += s[S_SUM][i];
                a[S_SQ] += s[S_SQ][i];
                if (s[S_MIN][i] < a[S_MIN])
                    a[S_MIN] = s[S_MIN][i];
                if (s[S_MAX][i] > a[S_MAX])
                    a[S_MAX] = s[S_MAX][i];
            }
            continue;
        }
        const dray_column *c = in->cols[vcols[v]];
        bool f64 = c->type == DRAY_DT_FLOAT64;
        for (int64_t i = 0; i < n; i++) {
            if (c->validity && !dray__bit(c->validity, i))
                continue;
            double x = f64 ? ((const double *)c->data)[i] : dray_column_get_f64(c, i);
            double *a = acc + ((size_t)gid[i] * nv + v) * S__N;
            bool numeric = c->type != DRAY_DT_UTF8 && c->type != DRAY_DT_DICT;
            if (numeric && isnan(x))
                continue; /* NaN counts as missing, as in pandas */
            a[S_CNT] += 1;
            if (!numeric)
                continue;
            a[S_SUM] += x;
            a[S_SQ] += x * x;
            if (x < a[S_MIN])
                a[S_MIN] = x;
            if (x > a[S_MAX])
                a[S_MAX] = x;
        }
    }
    for (size_t k = 0; k < nk; k++) {
        names[k] = in->names[k];
        if ((st = dray__column_take(in->cols[k], first, ng, &cols[k])))
            goto out;
    }
    static const char *const sn[S__N] = {"cnt", "sum", "sq", "min", "max"};
    for (size_t v = 0; v < nv; v++)
        for (int k = 0; k < S__N; k++) {
            size_t ci = nk + v * S__N + (size_t)k;
            char buf[32];
            snprintf(buf, sizeof(buf), "__%zu_%s", v, sn[k]);
            if (!(names[ci] = strdup(buf)) ||
                (st = dray__column_alloc(DRAY_DT_FLOAT64, 0, ng, false, 0, &cols[ci]))) {
                st = st ? st : dray_set_error(DRAY_ENOMEM, "groupby");
                goto out;
            }
            double *d = cols[ci]->data;
            for (int64_t g = 0; g < ng; g++)
                d[g] = acc[((size_t)g * nv + v) * S__N + (size_t)k];
        }
    st = dray_table_create((const char *const *)names, cols, nk + nv * S__N, out);
out:
    for (size_t i = 0; cols && i < nk + nv * S__N; i++) {
        dray_column_release(cols[i]);
        if (names && i >= nk)
            free(names[i]);
    }
    free(cols);
    free(names);
    free(keys);
    free(gid);
    free(first);
    free(acc);
    return st;
}

/* A groupby spec as a task argument: [nk, nv, key names..., value names...]. */
static dray_status spec_resolve(const dray_value *spec, const dray_table *t, bool merge, int **vcols,
                                dray_table **keyed)
{
    size_t nk = (size_t)dray_list_get(spec, 0)->u.i, nv = (size_t)dray_list_get(spec, 1)->u.i;
    if (merge) {
        *vcols = NULL;
        *keyed = dray_table_retain((dray_table *)t);
        return DRAY_OK;
    }
    const char **names = calloc(nk + nv + 1, sizeof(*names));
    int *vc = calloc(nv + 1, sizeof(*vc));
    if (!names || !vc) {
        free(names);
        free(vc);
        return dray_set_error(DRAY_ENOMEM, "groupby");
    }
    size_t n = nk;
    for (size_t k = 0; k < nk; k++)
        names[k] = dray_string_cstr(dray_list_get(spec, 2 + k));
    /* value columns follow the keys in the projected table (once each) */
    for (size_t v = 0; v < nv; v++) {
        const char *vn = dray_string_cstr(dray_list_get(spec, 2 + nk + v));
        size_t j = 0;
        while (j < n && strcmp(names[j], vn))
            j++;
        if (j == n)
            names[n++] = vn;
        vc[v] = (int)j;
    }
    dray_status st = dray_table_select(t, names, n, keyed);
    free(names);
    if (st) {
        free(vc);
        return st;
    }
    *vcols = vc;
    return DRAY_OK;
}

/* frame_gb_partial(part, spec): the partition's partial aggregate. */
DRAY_FUNCTION(frame_gb_partial)
{
    dray__part *p = dray__part_of(&args[0]);
    if (!p)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "frame_gb_partial: not a partition");
    int *vc = NULL;
    dray_table *keyed = NULL, *r = NULL;
    dray_status st = spec_resolve(&args[1], p->t, false, &vc, &keyed);
    if (st)
        return st;
    st = aggregate(keyed, (size_t)dray_list_get(&args[1], 0)->u.i,
                   (size_t)dray_list_get(&args[1], 1)->u.i, vc, false, &r);
    free(vc);
    dray_table_release(keyed);
    return st ? st : dray__part_value(r, 0, result);
}

/* frame_gb_combine(a, b, spec): two partials merged into one. */
DRAY_FUNCTION(frame_gb_combine)
{
    dray__part *a = dray__part_of(&args[0]), *b = dray__part_of(&args[1]);
    if (!a || !b)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "frame_gb_combine: not partitions");
    dray_table *pair[2] = {a->t, b->t}, *cat, *r;
    dray_status st = dray_table_concat(pair, 2, &cat);
    if (st)
        return st;
    st = aggregate(cat, (size_t)dray_list_get(&args[2], 0)->u.i,
                   (size_t)dray_list_get(&args[2], 1)->u.i, NULL, true, &r);
    dray_table_release(cat);
    return st ? st : dray__part_value(r, 0, result);
}

/* ---- sorting ---- */

/* by_count: value_counts order, count descending then key (cmp via rows_cmp). */
typedef struct count_order {
    dray_column *key;
    const int64_t *count;
} count_order;

static int count_cmp(const count_order *o, int64_t i, int64_t j)
{
    if (o->count[i] != o->count[j])
        return o->count[i] > o->count[j] ? -1 : 1;
    return dray__rows_cmp(&o->key, i, &o->key, j, 1, NULL);
}

static void count_sort(const count_order *o, int64_t *idx, int64_t n)
{
    for (int64_t i = 1; i < n; i++) { /* insertion sort: value_counts results are small */
        int64_t v = idx[i], j = i;
        while (j > 0 && count_cmp(o, v, idx[j - 1]) < 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

/* ---- driver ---- */

static dray_status run_groupby(const dray_frame *f, const char *const *keys, size_t nk,
                               const char *const *vals, size_t nv, dray_table **partial)
{
    dray_status st = DRAY_OK;
    size_t n = 2 + nk + nv;
    dray_value *items = calloc(n, sizeof(*items)), spec = dray_null();
    if (!items)
        return dray_set_error(DRAY_ENOMEM, "groupby");
    items[0] = dray_int((int64_t)nk);
    items[1] = dray_int((int64_t)nv);
    for (size_t i = 0; i < nk + nv && !st; i++)
        st = dray_string_create(i < nk ? keys[i] : vals[i - nk], &items[2 + i]);
    if (!st)
        st = dray_list_create(items, n, &spec);
    for (size_t i = 0; i < n; i++)
        dray_value_release(&items[i]);
    free(items);
    dray_node *level = calloc(f->nparts + 1, sizeof(*level));
    if (!st && !level)
        st = dray_set_error(DRAY_ENOMEM, "groupby");
    size_t m = f->nparts;
    for (size_t i = 0; i < m && !st; i++) {
        dray_value a[2] = {dray_value_of_node(f->parts[i]), spec};
        st = dray_graph_add_named(f->g->graph, NULL, "frame_gb_partial", a, 2, &level[i]);
    }
    /* the tree: pairs of partials combined level by level */
    while (m > 1 && !st) {
        size_t k = 0;
        for (size_t i = 0; i + 1 < m && !st; i += 2) {
            dray_value a[3] = {dray_value_of_node(level[i]), dray_value_of_node(level[i + 1]), spec};
            st = dray_graph_add_named(f->g->graph, NULL, "frame_gb_combine", a, 3, &level[k++]);
        }
        if (m % 2)
            level[k++] = level[m - 1];
        m = k;
    }
    dray_value res = dray_null();
    if (!st && m == 1 && !(st = dray__graph_run(f->g->graph, f->rt, level, 1, &res))) {
        dray__part *p = dray__part_of(&res);
        if (p)
            *partial = dray_table_retain(p->t);
        else
            st = dray_set_error(DRAY_ETYPE, "groupby: result is not a table");
        dray_value_release(&res);
    }
    free(level);
    dray_value_release(&spec);
    return st;
}

/* add_nunique: `res` (groupby's result, sorted by key) with column `name` replaced by the number of
 * distinct non-null values of `col` per group: the distinct (keys, col) rows counted by key. */
static dray_status add_nunique(const dray_frame *f, const char *const *keys, size_t nk, const char *col,
                               const char *name, const dray_table *res, dray_table **out)
{
    const char **sel = calloc(nk + 2, sizeof(*sel));
    if (!sel)
        return dray_set_error(DRAY_ENOMEM, "nunique");
    size_t n = 0;
    bool is_key = false;
    for (size_t k = 0; k < nk; k++) {
        sel[n++] = keys[k];
        is_key |= !strcmp(keys[k], col);
    }
    if (!is_key)
        sel[n++] = col;
    dray_frame *f2 = NULL, *f3 = NULL;
    dray_table *g = NULL;
    dray_agg_spec cnt = {col, DRAY_AGG_COUNT, name};
    dray_status st = dray_frame_select(f, sel, n, &f2);
    if (!st)
        st = dray_frame_drop_duplicates(f2, NULL, 0, &f3);
    if (!st)
        st = dray_frame_groupby(f3, keys, nk, &cnt, 1, &g);
    if (!st && g->nrows != res->nrows)
        st = dray_set_error(DRAY_EFATAL, "nunique: %lld groups, groupby %lld", (long long)g->nrows,
                            (long long)res->nrows);
    if (!st)
        st = dray__table_with_column(res, name, g->cols[nk], out);
    dray_table_release(g);
    dray_frame_destroy(f3);
    dray_frame_destroy(f2);
    free(sel);
    return st;
}

static const char *const agg_names[] = {"sum", "mean", "count", "min", "max", "std", "nunique"};

dray_status dray_frame_groupby(const dray_frame *f, const char *const *keys, size_t nkeys,
                               const dray_agg_spec *aggs, size_t naggs, dray_table **out)
{
    if (f->nparts == 0 || nkeys == 0)
        return dray_set_error(DRAY_EINVAL, "groupby: needs partitions and at least one key");
    for (size_t k = 0; k < nkeys; k++)
        if (dray_table_find(f->schema, keys[k]) < 0)
            return dray_set_error(DRAY_EINVAL, "groupby: no key column '%s'", keys[k]);
    const char **vals = calloc(naggs + 1, sizeof(*vals));
    if (!vals)
        return dray_set_error(DRAY_ENOMEM, "groupby");
    for (size_t a = 0; a < naggs; a++) {
        int c = dray_table_find(f->schema, aggs[a].column);
        dray_status st = DRAY_OK;
        if (c < 0)
            st = dray_set_error(DRAY_EINVAL, "groupby: no column '%s'", aggs[a].column);
        else if ((unsigned)aggs[a].agg > DRAY_AGG_NUNIQUE)
            st = dray_set_error(DRAY_EINVAL, "groupby: unknown aggregation %d of '%s'",
                                (int)aggs[a].agg, aggs[a].column);
        else if (aggs[a].agg != DRAY_AGG_COUNT && aggs[a].agg != DRAY_AGG_NUNIQUE &&
                 !dray__dtype_is_numeric(dray_table_column(f->schema, (size_t)c)->type) &&
                 dray_table_column(f->schema, (size_t)c)->type != DRAY_DT_BOOL)
            st = dray_set_error(DRAY_ETYPE, "groupby: '%s' of %s column '%s'",
                                agg_names[aggs[a].agg],
                                dray_col_type_name(dray_table_column(f->schema, (size_t)c)->type),
                                aggs[a].column);
        if (st) {
            free(vals);
            return st;
        }
        vals[a] = aggs[a].column;
    }
    dray_table *pt = NULL, *res = NULL;
    dray_status st = run_groupby(f, keys, nkeys, vals, naggs, &pt);
    free(vals);
    if (st)
        return st;
    int64_t ng = pt->nrows;
    dray_column **cols = calloc(nkeys + naggs + 1, sizeof(*cols));
    char **names = calloc(nkeys + naggs + 1, sizeof(*names));
    int64_t *idx = malloc((size_t)(ng ? ng : 1) * 2 * sizeof(int64_t));
    if (!cols || !names || !idx) {
        st = dray_set_error(DRAY_ENOMEM, "groupby");
        goto out;
    }
    for (size_t k = 0; k < nkeys; k++) {
        cols[k] = dray_column_retain(pt->cols[k]);
        if (!(names[k] = strdup(keys[k]))) {
            st = dray_set_error(DRAY_ENOMEM, "groupby");
            goto out;
        }
    }
    for (size_t a = 0; a < naggs && !st; a++) {
        const double *s[S__N];
        for (int k = 0; k < S__N; k++)
            s[k] = pt->cols[nkeys + a * S__N + (size_t)k]->data;
        dray_agg g = aggs[a].agg;
        char buf[256];
        snprintf(buf, sizeof(buf), "%s_%s", aggs[a].column, agg_names[g]);
        if (!(names[nkeys + a] = strdup(aggs[a].as ? aggs[a].as : buf)) ||
            (st = dray__column_alloc(g == DRAY_AGG_COUNT || g == DRAY_AGG_NUNIQUE ? DRAY_DT_INT64
                                                                                  : DRAY_DT_FLOAT64, 0, ng,
                                     true, 0, &cols[nkeys + a]))) {
            st = st ? st : dray_set_error(DRAY_ENOMEM, "groupby");
            break;
        }
        dray_column *c = cols[nkeys + a];
        for (int64_t i = 0; i < ng; i++) {
            double n = s[S_CNT][i], v = 0;
            bool valid = n > 0;
            switch (g) {
            case DRAY_AGG_SUM: v = s[S_SUM][i]; valid = true; break;
            case DRAY_AGG_MEAN: v = s[S_SUM][i] / n; break;
            case DRAY_AGG_COUNT: case DRAY_AGG_NUNIQUE: /* nunique: filled in below */
                ((int64_t *)c->data)[i] = (int64_t)n;
                valid = true;
                break;
            case DRAY_AGG_MIN: v = s[S_MIN][i]; break;
            case DRAY_AGG_MAX: v = s[S_MAX][i]; break;
            default: /* std, ddof 1 */
                valid = n > 1;
                v = sqrt(fmax(0, (s[S_SQ][i] - s[S_SUM][i] * s[S_SUM][i] / n) / (n - 1)));
            }
            if (g != DRAY_AGG_COUNT && g != DRAY_AGG_NUNIQUE)
                ((double *)c->data)[i] = valid ? v : 0;
            if (!valid)
                dray__bit_clear(c->validity, i);
        }
        dray__column_finish_nulls(c);
    }
    if (st || (st = dray_table_create((const char *const *)names, cols, nkeys + naggs, &res)))
        goto out;
    for (int64_t i = 0; i < ng; i++)
        idx[i] = i;
    dray_table *sorted = NULL;
    if (!(st = dray__sort_rows(cols, nkeys, NULL, idx, ng)))
        st = dray_table_take(res, idx, ng, &sorted);
    for (size_t a = 0; a < naggs && !st; a++) {
        if (aggs[a].agg != DRAY_AGG_NUNIQUE)
            continue;
        dray_table *with;
        if (!(st = add_nunique(f, keys, nkeys, aggs[a].column, names[nkeys + a], sorted, &with))) {
            dray_table_release(sorted);
            sorted = with;
        }
    }
    if (!st)
        *out = sorted;
    else
        dray_table_release(sorted);
out:
    for (size_t i = 0; cols && i < nkeys + naggs; i++) {
        dray_column_release(cols[i]);
        free(names ? names[i] : NULL);
    }
    free(cols);
    free(names);
    free(idx);
    dray_table_release(res);
    dray_table_release(pt);
    return st;
}

dray_status dray_frame_value_counts(const dray_frame *f, const char *column, dray_table **out)
{
    dray_agg_spec spec = {column, DRAY_AGG_COUNT, "count"};
    dray_table *g;
    dray_status st = dray_frame_groupby(f, &column, 1, &spec, 1, &g);
    if (st)
        return st;
    /* pandas leaves the null key out; then count descending, key ascending */
    int64_t n = g->nrows, k = 0;
    int64_t *idx = malloc((size_t)(n ? n : 1) * 2 * sizeof(int64_t));
    if (!idx) {
        st = dray_set_error(DRAY_ENOMEM, "value_counts");
    } else {
        for (int64_t i = 0; i < n; i++)
            if (dray_column_is_valid(g->cols[0], i))
                idx[k++] = i;
        count_order o = {g->cols[0], g->cols[1]->data};
        count_sort(&o, idx, k);
        st = dray_table_take(g, idx, k, out);
    }
    free(idx);
    dray_table_release(g);
    return st;
}

dray_status dray_frame_describe(const dray_frame *f, dray_table **out)
{
    static const char *const stats[5] = {"count", "mean", "std", "min", "max"};
    const dray_table *s = f->schema;
    size_t nv = 0;
    const char **vals = calloc(s->ncols + 1, sizeof(*vals));
    if (!vals)
        return dray_set_error(DRAY_ENOMEM, "describe");
    for (size_t c = 0; c < s->ncols; c++)
        if (dray__dtype_is_numeric(s->cols[c]->type))
            vals[nv++] = s->names[c];
    dray_table *pt = NULL;
    dray_status st = f->nparts ? run_groupby(f, NULL, 0, vals, nv, &pt)
                               : dray_set_error(DRAY_EINVAL, "describe: no partitions");
    dray_column **cols = calloc(nv + 2, sizeof(*cols));
    const char **names = calloc(nv + 2, sizeof(*names));
    if (!st && (!cols || !names))
        st = dray_set_error(DRAY_ENOMEM, "describe");
    if (!st) {
        names[0] = "stat";
        st = dray_column_from_strings(stats, 5, false, &cols[0]);
    }
    for (size_t v = 0; v < nv && !st; v++) {
        double r[5] = {0, 0, 0, 0, 0};
        uint8_t valid[5] = {1, 0, 0, 0, 0};
        if (pt->nrows == 1) {
            const double *a[S__N];
            for (int k = 0; k < S__N; k++)
                a[k] = pt->cols[v * S__N + (size_t)k]->data;
            double n = a[S_CNT][0];
            r[0] = n;
            if (n > 0) {
                r[1] = a[S_SUM][0] / n;
                r[3] = a[S_MIN][0];
                r[4] = a[S_MAX][0];
                valid[1] = valid[3] = valid[4] = 1;
            }
            if (n > 1) {
                r[2] = sqrt(fmax(0, (a[S_SQ][0] - a[S_SUM][0] * a[S_SUM][0] / n) / (n - 1)));
                valid[2] = 1;
            }
        }
        names[1 + v] = vals[v];
        st = dray_column_from_values(DRAY_DT_FLOAT64, 0, r, valid, 5, &cols[1 + v]);
    }
    if (!st)
        st = dray_table_create(names, cols, nv + 1, out);
    for (size_t i = 0; cols && i < nv + 1; i++)
        dray_column_release(cols[i]);
    free(cols);
    free(names);
    free(vals);
    dray_table_release(pt);
    return st;
}
