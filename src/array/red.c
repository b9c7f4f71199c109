/* Reductions: the fused per-chunk partial (a program evaluated tile by tile straight into
 * accumulators), the combine step of the tree and the final step that turns partials into values.
 * A partial is a 2-D chunk [fields, positions] in double or int64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

enum { F_SUM = 0, F_N = 0, F_MEAN = 1, F_M2 = 2, F_VAL = 0, F_IDX = 1 };

int dray__red_fields(int op)
{
    switch (op) {
    case DRAY_VAR: case DRAY_STD: return 3;
    case DRAY_ARGMIN: case DRAY_ARGMAX: return 2;
    default: return 1;
    }
}

int dray__red_int_acc(int op, dray_dtype in_dt)
{
    if (op == DRAY_ANY || op == DRAY_ALL)
        return 1;
    if (op == DRAY_VAR || op == DRAY_STD || op == DRAY_MEAN)
        return dray__is_float(in_dt) ? 0 : (op == DRAY_MEAN);
    return !dray__is_float(in_dt);
}

static bool is_min(int op) { return op == DRAY_MIN || op == DRAY_ARGMIN; }

/* "v beats best" for min/max with NumPy's NaN rule (the first NaN wins). */
static inline bool f_beats(bool mn, double v, double best)
{
    if (v != v)
        return best == best;
    return mn ? v < best : v > best;
}

static void init_part(int op, bool iacc, void *data, int64_t np)
{
    int nf = dray__red_fields(op);
    if (iacc) {
        int64_t *a = data;
        int64_t init = op == DRAY_ALL ? 1 : op == DRAY_MIN || op == DRAY_ARGMIN ? INT64_MAX
                     : op == DRAY_MAX || op == DRAY_ARGMAX ? INT64_MIN : 0;
        for (int64_t i = 0; i < np; i++)
            a[i] = init;
        for (int64_t i = np; i < np * nf; i++)
            a[i] = -1;
    } else {
        double *a = data;
        double init = is_min(op) ? INFINITY : op == DRAY_MAX || op == DRAY_ARGMAX ? -INFINITY : 0;
        for (int64_t i = 0; i < np; i++)
            a[i] = init;
        for (int64_t i = np; i < np * nf; i++)
            a[i] = (op == DRAY_ARGMIN || op == DRAY_ARGMAX) ? -1 : 0;
    }
}

/* ==== Partial: program -> accumulators ==== */
typedef struct part_ctx {
    const dray__red_spec *rs;
    bool iacc, last_reduced;
    int64_t np;                   /* positions */
    int64_t pstride[DRAY__MAXD];  /* position strides (0 on reduced axes) */
    int64_t gstride[DRAY__MAXD];  /* flat strides of the whole input (argmin over all axes) */
    int arg_axis;                 /* argmin/argmax axis, -1 for flat */
    double *f;                    /* fields, each np long */
    int64_t *i;
    double *comp;                 /* compensation for long sums along the last axis */
    int64_t row, row_off;         /* rows mode: row length and the chunk's first global row */
} part_ctx;

DRAY__HOT static double tile_sum(const double *x, int64_t n)
{
    double s[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++)
            s[u] += x[j + u];
    for (; j < n; j++)
        s[0] += x[j];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

DRAY__HOT static void add_rows(double *acc, const double *x, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        acc[j] += x[j];
}

static void chan_merge(double *n, double *mean, double *m2, double nb, double meanb, double m2b)
{
    if (nb == 0)
        return;
    double na = *n, nt = na + nb, d = meanb - *mean;
    *mean += d * (nb / nt);
    *m2 += m2b + d * d * (na * nb / nt);
    *n = nt;
}

/* Accumulates n values x (a run along the last axis at position pos of a chunk at global offset
 * goff, nd axes) into the partial. */
static dray_status part_apply(part_ctx *c, int nd, const int64_t *goff, const int64_t *pos,
                              int64_t n, const dray__vm_reg *x)
{
    const dray__red_spec *rs = c->rs;
    int last = nd - 1, op = rs->op;
    int64_t base = 0;
    for (int d = 0; d < nd; d++)
        base += pos[d] * c->pstride[d];
    int64_t np = c->np;
    switch (op) {
    case DRAY_SUM: case DRAY_MEAN:
        if (c->iacc) {
            if (c->last_reduced) {
                int64_t s = 0;
                for (int64_t j = 0; j < n; j++) s = (int64_t)((uint64_t)s + (uint64_t)x->i[j]);
                c->i[base] = (int64_t)((uint64_t)c->i[base] + (uint64_t)s);
            } else {
                for (int64_t j = 0; j < n; j++)
                    c->i[base + j] = (int64_t)((uint64_t)c->i[base + j] + (uint64_t)x->i[j]);
            }
        } else if (c->last_reduced) {
            /* Neumaier: tiles are summed pairwise-ish, the running total is compensated. */
            double v = tile_sum(x->f, n), s = c->f[base], t = s + v;
            c->comp[base] += fabs(s) >= fabs(v) ? (s - t) + v : (v - t) + s;
            c->f[base] = t;
        } else {
            add_rows(c->f + base, x->f, n);
        }
        break;
    case DRAY_VAR: case DRAY_STD: {
        double *N = c->f, *M = c->f + np, *Q = c->f + 2 * np;
        if (c->last_reduced) {
            double mean = tile_sum(x->f, n) / (double)n, q = 0;
            for (int64_t j = 0; j < n; j++)
                q += (x->f[j] - mean) * (x->f[j] - mean);
            chan_merge(&N[base], &M[base], &Q[base], (double)n, mean, q);
        } else {
            for (int64_t j = 0; j < n; j++) {
                int64_t o = base + j;
                double v = x->f[j], d = v - M[o];
                N[o] += 1;
                M[o] += d / N[o];
                Q[o] += d * (v - M[o]);
            }
        }
        break;
    }
    case DRAY_MIN: case DRAY_MAX: {
        bool mn = op == DRAY_MIN;
        for (int64_t j = 0; j < n; j++) {
            int64_t o = c->last_reduced ? base : base + j;
            if (c->iacc) {
                int64_t v = x->i[j];
                if (mn ? v < c->i[o] : v > c->i[o])
                    c->i[o] = v;
            } else if (f_beats(mn, x->f[j], c->f[o])) {
                c->f[o] = x->f[j];
            }
        }
        break;
    }
    case DRAY_ARGMIN: case DRAY_ARGMAX: {
        bool mn = op == DRAY_ARGMIN;
        int64_t g0;
        int64_t gstep; /* index step along the tile */
        if (c->arg_axis >= 0) {
            g0 = goff[c->arg_axis] + pos[c->arg_axis];
            gstep = c->arg_axis == last ? 1 : 0;
        } else {
            g0 = 0;
            for (int d = 0; d < nd; d++)
                g0 += (goff[d] + pos[d]) * c->gstride[d];
            gstep = 1;
        }
        for (int64_t j = 0; j < n; j++) {
            int64_t o = c->last_reduced ? base : base + j, gi = g0 + gstep * j;
            if (c->iacc) {
                int64_t v = x->i[j];
                if (c->i[np + o] < 0 || (mn ? v < c->i[o] : v > c->i[o])) {
                    c->i[o] = v;
                    c->i[np + o] = gi;
                }
            } else if (c->f[np + o] < 0 || f_beats(mn, x->f[j], c->f[o])) {
                c->f[o] = x->f[j];
                c->f[np + o] = (double)gi;
            }
        }
        break;
    }
    case DRAY_ANY: case DRAY_ALL: {
        bool any = op == DRAY_ANY;
        for (int64_t j = 0; j < n; j++) {
            int64_t o = c->last_reduced ? base : base + j;
            bool v = x->i[j] != 0;
            c->i[o] = any ? (c->i[o] | v) : (c->i[o] & v);
        }
        break;
    }
    default:
        return dray_set_error(DRAY_EINVAL, "array reduction: unknown op %d", op);
    }
    return DRAY_OK;
}

static dray_status part_tile(dray__vm_run *r, const int64_t *pos, int64_t n, void *vctx)
{
    return part_apply(vctx, r->nd, r->g->off, pos, n, dray__vm_result(r));
}

/* apply_short_rows: n results of a flat run starting at flat index `first`, cut into the short rows
 * (c->row elements each) of a 2-D (positions, row) view at offset goff, each applied with part_apply. */
static dray_status apply_short_rows(part_ctx *c, const int64_t goff[2], int64_t first, int64_t n,
                                    const dray__vm_reg *x)
{
    for (int64_t j = 0; j < n;) {
        int64_t flat = first + j, p2[2] = {flat / c->row, flat % c->row};
        int64_t len = c->row - p2[1] < n - j ? c->row - p2[1] : n - j;
        dray_status st = part_apply(c, 2, goff, p2, len, (const dray__vm_reg *)(x->i + j));
        if (st != DRAY_OK)
            return st;
        j += len;
    }
    return DRAY_OK;
}

/* Rows mode: the program runs flat over a chunk of short rows (length c->row, the partial's
 * positions), and each row's piece of a tile accumulates as a run of a 2-D (rows, row) chunk. */
static dray_status part_rows_tile(dray__vm_run *r, const int64_t *pos, int64_t n, void *vctx)
{
    part_ctx *c = vctx;
    const dray__vm_reg *x = dray__vm_result(r);
    const int64_t goff[2] = {c->row_off, 0};
    int op = c->rs->op;
    if (op == DRAY_SUM || op == DRAY_MEAN) { /* the common case, without a call per short row */
        int64_t col = pos[0] % c->row;
        if (c->iacc) {
            for (int64_t j = 0; j < n; j++) {
                c->i[col] = (int64_t)((uint64_t)c->i[col] + (uint64_t)x->i[j]);
                col = col + 1 == c->row ? 0 : col + 1;
            }
        } else {
            for (int64_t j = 0; j < n; j++) {
                c->f[col] += x->f[j];
                col = col + 1 == c->row ? 0 : col + 1;
            }
        }
        return DRAY_OK;
    }
    return apply_short_rows(c, goff, pos[0], n, x);
}

/* Trail mode: the program runs flat over a chunk whose trailing axes (c->row elements per
 * position, at most a quarter tile) are all reduced; each position is one short run of the flat
 * order, accumulated as a row of a 2-D (positions, row) view with its last axis reduced. */
static dray_status part_trail_tile(dray__vm_run *r, const int64_t *pos, int64_t n, void *vctx)
{
    part_ctx *c = vctx;
    const dray__vm_reg *x = dray__vm_result(r);
    const int64_t goff[2] = {0, 0};
    int64_t o = pos[0] / c->row, col = pos[0] % c->row;
    int op = c->rs->op;
    if (op == DRAY_SUM || op == DRAY_MEAN) { /* the common case, without a call per short row */
        if (c->iacc) {
            for (int64_t j = 0; j < n; j++) {
                c->i[o] = (int64_t)((uint64_t)c->i[o] + (uint64_t)x->i[j]);
                if (++col == c->row)
                    col = 0, o++;
            }
        } else {
            for (int64_t j = 0; j < n; j++) {
                c->f[o] += x->f[j];
                if (++col == c->row)
                    col = 0, o++;
            }
        }
        return DRAY_OK;
    }
    return apply_short_rows(c, goff, pos[0], n, x);
}

/* The seed's hot path: uniform generation fused straight into the row (or column) sums. */
static dray_status part_uniform_rows(dray__vm_run *r, part_ctx *c)
{
    const dray__vm_insn *in = &r->p->insns[0];
    const int64_t *shape = r->g->shape;
    int nd = r->nd, last = nd - 1;
    int64_t pos[DRAY__MAXD] = {0};
    int64_t rows = 1;
    for (int d = 0; d < last; d++)
        rows *= shape[d];
    if (nd >= 2 && c->pstride[last - 1] == 0) {
        /* the axis before the last is reduced: its rows are column-summed into one partial row
         * by the generate-and-add kernel, which keeps the sums in registers across the rows */
        int64_t inner = shape[last - 1], outer = inner > 0 ? rows / inner : 0;
        for (int64_t o = 0; o < outer && shape[last] > 0; o++) {
            uint64_t flat = 0;
            int64_t base = 0;
            for (int d = 0; d < nd; d++) {
                flat += (uint64_t)((r->g->off[d] + pos[d]) * r->rstride[0][d]);
                base += pos[d] * c->pstride[d];
            }
            dray__rng_uniform_colsum(&r->key[0][0], flat, (uint64_t)r->rstride[0][last - 1],
                                     inner, shape[last], c->f + base);
            dray__next_index(pos, shape, last - 1);
        }
        rows = 0;
    }
    for (int64_t row = 0; row < rows && shape[last] > 0; row++) {
        uint64_t flat = 0;
        int64_t base = 0;
        for (int d = 0; d < nd; d++) {
            flat += (uint64_t)((r->g->off[d] + pos[d]) * r->rstride[0][d]);
            base += pos[d] * c->pstride[d];
        }
        dray__rng_uniform_add(&r->key[0][0], flat, c->f + base, shape[last]);
        dray__next_index(pos, shape, last);
    }
    /* acc = rows_summed * low + (high - low) * sum(u) */
    if (in->f1 != 0.0 || in->f2 != 1.0) {
        double cnt = 1;
        for (int d = 0; d < nd; d++)
            if (c->rs->axes & (1u << d))
                cnt *= (double)shape[d];
        for (int64_t o = 0; o < c->np; o++)
            c->f[o] = cnt * in->f1 + (in->f2 - in->f1) * c->f[o];
    }
    return DRAY_OK;
}

static dray_status reduce_chunk(const dray__vm_prog *p, const dray__geom *g,
                                dray_ndarray *const *inputs, int n_inputs,
                                const dray__red_spec *rs, int64_t row, int64_t row_off,
                                int64_t trail, dray_ndarray **out);

dray_status dray__vm_reduce(const dray__vm_prog *p, const dray__geom *g,
                            dray_ndarray *const *inputs, int n_inputs, const dray__red_spec *rs,
                            dray_ndarray **out)
{
    dray__vm_flat f;
    int nd = p->ndim;
    bool all = rs->ndim == nd && nd < 32 && rs->axes == (1u << nd) - 1;
    /* over the first axis only, with short rows: run flat, accumulate row by row */
    int64_t row = 1;
    for (int d = 1; d < nd; d++)
        row *= g->shape[d];
    bool rows = rs->ndim == nd && nd >= 2 && rs->axes == 1 && row > 0 && row <= TILE / 4;
    /* over the trailing axes k.. (k >= 1) with short rows: run flat, one position per row */
    int k = nd;
    while (k > 0 && nd < 32 && (rs->axes & (1u << (k - 1))))
        k--;
    int64_t inner = 1;
    for (int d = k; d < nd; d++)
        inner *= g->shape[d];
    bool trail = !all && !rows && rs->ndim == nd && nd >= 2 && nd < 32 && k >= 1 && k < nd &&
                 rs->axes == ((1u << nd) - 1) - ((1u << k) - 1) && inner > 0 && inner <= TILE / 4;
    if (!(all || rows || trail) || !dray__vm_flatten(p, g, inputs, n_inputs, &f))
        return reduce_chunk(p, g, inputs, n_inputs, rs, 0, 0, 0, out);
    dray__red_spec flat = *rs;
    flat.ndim = 1;
    flat.axes = 1;
    flat.gshape[0] = f.prog->gshape[0];
    /* over all axes a partial is one position and flat indices are global flat indices */
    dray_status st = reduce_chunk(f.prog, &f.geom, f.inputs, n_inputs, &flat, rows ? row : 0,
                                  g->off[0], trail ? inner : 0, out);
    free(f.prog);
    return st;
}

static dray_status reduce_chunk(const dray__vm_prog *p, const dray__geom *g,
                                dray_ndarray *const *inputs, int n_inputs,
                                const dray__red_spec *rs, int64_t row, int64_t row_off,
                                int64_t trail, dray_ndarray **out)
{
    dray__vm_run r;
    part_ctx c;
    dray_ndarray *part = NULL;
    memset(&c, 0, sizeof(c));
    c.rs = rs;
    if (rs->ndim != p->ndim)
        return dray_set_error(DRAY_EINVAL, "array reduction: spec has %d axes, program %d",
                              rs->ndim, p->ndim);
    dray_status st = dray__vm_start(&r, p, g, inputs, n_inputs);
    if (st != DRAY_OK)
        goto out_stop;
    int nd = p->ndim;
    c.iacc = dray__red_int_acc(rs->op, (dray_dtype)rs->in_dt);
    c.last_reduced = nd == 0 || (rs->axes & (1u << (nd - 1)));
    c.np = 1;
    for (int d = nd - 1; d >= 0; d--) {
        bool red = rs->axes & (1u << d);
        c.pstride[d] = red ? 0 : c.np;
        c.np *= red ? 1 : g->shape[d];
    }
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        c.gstride[d] = s;
        s *= p->gshape[d];
    }
    c.arg_axis = -1;
    if ((rs->op == DRAY_ARGMIN || rs->op == DRAY_ARGMAX) && __builtin_popcount(rs->axes) == 1 &&
        nd > 1)
        c.arg_axis = __builtin_ctz(rs->axes);
    else if ((rs->op == DRAY_ARGMIN || rs->op == DRAY_ARGMAX) && nd == 1)
        c.arg_axis = 0;
    if (row) { /* rows mode: partial positions are a row of a 2-D (rows, row) view */
        c.row = row;
        c.row_off = row_off;
        c.last_reduced = false;
        c.np = row;
        c.pstride[0] = 0;
        c.pstride[1] = 1;
        c.arg_axis = 0;
    }
    if (trail) { /* trail mode: partial positions are the rows of a 2-D (np, trail) view */
        c.row = trail;
        c.last_reduced = true;
        c.np = g->shape[0] / trail;
        c.pstride[0] = 1;
        c.pstride[1] = 0;
        c.arg_axis = 1;
    }
    int nf = dray__red_fields(rs->op);
    int64_t pshape[2] = {nf, c.np};
    st = dray__nd_create_uninit(c.iacc ? DRAY_INT64 : DRAY_FLOAT64, 2, pshape, &part);
    if (st != DRAY_OK)
        goto out_stop;
    init_part(rs->op, c.iacc, part->data, c.np);
    c.f = part->data;
    c.i = part->data;
    if ((rs->op == DRAY_SUM || rs->op == DRAY_MEAN) && !c.iacc && c.last_reduced) {
        c.comp = calloc((size_t)c.np, sizeof(double));
        if (!c.comp) {
            st = dray_set_error(DRAY_ENOMEM, "array reduction compensation");
            goto out_part;
        }
    }
    const dray__vm_insn *i0 = &p->insns[0];
    if (p->n_insns == 1 && i0->op == DRAY__VM_RANDOM && i0->sub == DRAY__R_UNIFORM &&
        i0->dtype == DRAY_FLOAT64 && (rs->op == DRAY_SUM || rs->op == DRAY_MEAN) && nd > 0 &&
        !c.last_reduced && !row && r.rstride[0][nd - 1] == 1)
        st = part_uniform_rows(&r, &c);
    else
        st = dray__vm_walk(&r, row ? part_rows_tile : trail ? part_trail_tile : part_tile, &c);
    if (st != DRAY_OK)
        goto out_part;
    for (int64_t o = 0; c.comp && o < c.np; o++)
        c.f[o] += c.comp[o];
    free(c.comp);
    *out = part;
    dray__vm_stop(&r);
    return DRAY_OK;
out_part:
    free(c.comp);
    dray_ndarray_release(part);
out_stop:
    dray__vm_stop(&r);
    return st;
}

/* ==== Combine and finish ==== */

static void combine_into(int op, bool iacc, void *acc, const void *part, int64_t np)
{
    if (iacc) {
        int64_t *a = acc;
        const int64_t *b = part;
        for (int64_t o = 0; o < np; o++) {
            switch (op) {
            case DRAY_SUM: case DRAY_MEAN:
                a[o] = (int64_t)((uint64_t)a[o] + (uint64_t)b[o]);
                break;
            case DRAY_MIN: if (b[o] < a[o]) a[o] = b[o]; break;
            case DRAY_MAX: if (b[o] > a[o]) a[o] = b[o]; break;
            case DRAY_ANY: a[o] |= b[o]; break;
            case DRAY_ALL: a[o] &= b[o]; break;
            case DRAY_ARGMIN: case DRAY_ARGMAX: {
                bool mn = op == DRAY_ARGMIN;
                if (b[np + o] < 0)
                    break;
                if (a[np + o] < 0 || (mn ? b[o] < a[o] : b[o] > a[o]) ||
                    (b[o] == a[o] && b[np + o] < a[np + o])) {
                    a[o] = b[o];
                    a[np + o] = b[np + o];
                }
                break;
            }
            default: break;
            }
        }
        return;
    }
    double *a = acc;
    const double *b = part;
    for (int64_t o = 0; o < np; o++) {
        switch (op) {
        case DRAY_SUM: case DRAY_MEAN: a[o] += b[o]; break;
        case DRAY_MIN: case DRAY_MAX:
            if (f_beats(op == DRAY_MIN, b[o], a[o])) a[o] = b[o];
            break;
        case DRAY_VAR: case DRAY_STD:
            chan_merge(&a[o], &a[np + o], &a[2 * np + o], b[o], b[np + o], b[2 * np + o]);
            break;
        case DRAY_ARGMIN: case DRAY_ARGMAX: {
            bool mn = op == DRAY_ARGMIN, an = a[o] != a[o], bn = b[o] != b[o];
            if (b[np + o] < 0)
                break;
            bool take = a[np + o] < 0 || f_beats(mn, b[o], a[o]) ||
                        ((b[o] == a[o] || (an && bn)) && b[np + o] < a[np + o]);
            if (take) {
                a[o] = b[o];
                a[np + o] = b[np + o];
            }
            break;
        }
        default: break;
        }
    }
}

static void store_final(const dray__red_spec *rs, bool iacc, const void *acc, int64_t np,
                        int64_t count, dray_ndarray *out)
{
    dray_dtype t = out->dtype;
    if (!iacc && t == DRAY_FLOAT64 && (rs->op == DRAY_SUM || rs->op == DRAY_MEAN ||
                                       rs->op == DRAY_MIN || rs->op == DRAY_MAX)) {
        /* the common float64 results without a switch per element */
        const double *fa = acc;
        double *res = out->data;
        if (rs->op == DRAY_MEAN)
            for (int64_t o = 0; o < np; o++)
                res[o] = fa[o] / (double)count;
        else
            memcpy(res, fa, sizeof(double) * (size_t)np);
        return;
    }
    for (int64_t o = 0; o < np; o++) {
        double v = 0;
        int64_t iv = 0;
        bool isint = false;
        const double *fa = acc;
        const int64_t *ia = acc;
        switch (rs->op) {
        case DRAY_SUM: case DRAY_MIN: case DRAY_MAX: case DRAY_ANY: case DRAY_ALL:
            if (iacc) { iv = ia[o]; isint = true; } else { v = fa[o]; }
            break;
        case DRAY_MEAN:
            v = (iacc ? (double)ia[o] : fa[o]) / (double)count;
            break;
        case DRAY_VAR: case DRAY_STD: {
            double dof = fa[o] - rs->ddof;
            v = dof > 0 ? fa[2 * np + o] / dof : NAN;
            if (rs->op == DRAY_STD)
                v = sqrt(v);
            break;
        }
        default: /* argmin / argmax */
            iv = iacc ? ia[np + o] : (int64_t)fa[np + o];
            isint = true;
            break;
        }
        switch (t) {
        case DRAY_BOOL: ((uint8_t *)out->data)[o] = isint ? iv != 0 : v != 0; break;
        case DRAY_INT32: ((int32_t *)out->data)[o] = (int32_t)(isint ? iv : (int64_t)v); break;
        case DRAY_INT64: ((int64_t *)out->data)[o] = isint ? iv : (int64_t)v; break;
        case DRAY_FLOAT32: ((float *)out->data)[o] = (float)(isint ? (double)iv : v); break;
        default: ((double *)out->data)[o] = isint ? (double)iv : v; break;
        }
    }
}

dray_status dray__red_combine(const dray__red_spec *rs, dray_ndarray *const *parts, int n,
                              bool final, int64_t count, const int64_t *oshape, int ondim,
                              dray_ndarray **out)
{
    char sb[160];
    bool iacc = dray__red_int_acc(rs->op, (dray_dtype)rs->in_dt);
    dray_dtype pt = iacc ? DRAY_INT64 : DRAY_FLOAT64;
    int nf = dray__red_fields(rs->op);
    if (n < 1)
        return dray_set_error(DRAY_EINVAL, "array reduction: nothing to combine");
    int64_t np = parts[0]->ndim == 2 ? parts[0]->shape[1] : -1;
    for (int k = 0; k < n; k++)
        if (parts[k]->dtype != pt || parts[k]->ndim != 2 || parts[k]->shape[0] != nf ||
            parts[k]->shape[1] != np)
            return dray_set_error(DRAY_EINVAL, "array reduction: partial %d has shape %s", k,
                                  dray__shape_str(parts[k]->ndim, parts[k]->shape, sb, sizeof(sb)));
    dray_ndarray *acc;
    int64_t pshape[2] = {nf, np};
    dray_status st;
    if (n == 1 && final) { /* one partial (nothing reduced across chunks): finish it in place */
        acc = dray_ndarray_retain(parts[0]);
    } else {
        if ((st = dray__nd_create_uninit(pt, 2, pshape, &acc)) != DRAY_OK)
            return st;
        memcpy(acc->data, parts[0]->data, (size_t)(nf * np) * 8);
    }
    for (int k = 1; k < n; k++)
        combine_into(rs->op, iacc, acc->data, parts[k]->data, np);
    if (!final) {
        *out = acc;
        return DRAY_OK;
    }
    int64_t osize = 1;
    for (int d = 0; d < ondim; d++)
        osize *= oshape[d];
    dray_ndarray *res;
    if (osize != np) {
        st = dray_set_error(DRAY_EINVAL, "array reduction: %lld results for shape %s",
                            (long long)np, dray__shape_str(ondim, oshape, sb, sizeof(sb)));
        goto out_acc;
    }
    st = dray__nd_create_uninit((dray_dtype)rs->out_dt, ondim, oshape, &res);
    if (st != DRAY_OK)
        goto out_acc;
    store_final(rs, iacc, acc->data, np, count, res);
    *out = res;
out_acc:
    dray_ndarray_release(acc);
    return st;
}
