/* Structural operations as lazy nodes: reductions, matmul, transpose, slicing, rechunk,
 * concatenate, stack and reshape. They only compute shapes and grids; lower.c makes the tasks. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static dray_status bad_axis(int axis, int ndim)
{
    return dray_set_error(DRAY_EINVAL, "axis %d is out of bounds for an array of dimension %d",
                          axis, ndim);
}

static dray_status norm_axis(int *axis, int ndim)
{
    int a = *axis < 0 ? *axis + ndim : *axis;
    if (a < 0 || a >= ndim)
        return bad_axis(*axis, ndim);
    *axis = a;
    return DRAY_OK;
}

/* A gather node over `a`: identity mapping and a's grid to start with. */
static dray_status new_gather(dray_array *a, dray_array **out)
{
    dray_array *g;
    dray_status st = dray__array_new(DRAY__K_GATHER, a->dtype, a->ndim, a->shape, NULL, &g);
    for (int d = 0; d < a->ndim && st == DRAY_OK; d++) {
        g->p.ga.start[d] = 0;
        g->p.ga.step[d] = 1;
        st = dray__array_copy_grid(g, d, a, d);
    }
    if (st != DRAY_OK) {
        dray_array_release(g);
        return st;
    }
    g->in[0] = dray_array_retain(a);
    g->n_in = 1;
    *out = g;
    return DRAY_OK;
}

dray_status dray__rechunk_grid(dray_array *a, const dray_array *ref, int shift, dray_array **out)
{
    dray_array *g;
    dray_status st = new_gather(a, &g);
    for (int d = 0; d < a->ndim && st == DRAY_OK; d++)
        if (a->shape[d] != 1)
            st = dray__array_copy_grid(g, d, ref, d + shift);
    if (st != DRAY_OK) {
        dray_array_release(g);
        return st;
    }
    *out = g;
    return DRAY_OK;
}

dray_status dray_array_rechunk(dray_array *a, const int64_t *chunks, dray_array **out)
{
    dray_array *ref;
    dray_status st = dray__array_new(DRAY__K_CONST, a->dtype, a->ndim, a->shape, chunks, &ref);
    if (st != DRAY_OK)
        return st;
    st = dray__rechunk_grid(a, ref, 0, out);
    dray_array_release(ref);
    return st;
}

dray_status dray_array_rechunk_explicit(dray_array *a, const int64_t *const *sizes,
                                        const int64_t *counts, dray_array **out)
{
    dray_array *g;
    for (int d = 0; d < a->ndim; d++) {
        int64_t sum = 0;
        for (int64_t k = 0; k < counts[d]; k++) {
            if (sizes[d][k] < 0 || (sizes[d][k] == 0 && a->shape[d] != 0))
                return dray_set_error(DRAY_EINVAL, "rechunk: axis %d chunk %lld has size %lld", d,
                                      (long long)k, (long long)sizes[d][k]);
            sum += sizes[d][k];
        }
        if (sum != a->shape[d] || counts[d] < 1)
            return dray_set_error(DRAY_EINVAL, "rechunk: axis %d chunks sum to %lld, not %lld", d,
                                  (long long)sum, (long long)a->shape[d]);
    }
    dray_status st = new_gather(a, &g);
    for (int d = 0; d < a->ndim && st == DRAY_OK; d++)
        st = dray__array_set_grid(g, d, sizes[d], counts[d]);
    if (st != DRAY_OK) {
        dray_array_release(g);
        return st;
    }
    *out = g;
    return DRAY_OK;
}

/* Output chunks along a sliced axis follow the input chunks they come from. */
static dray_status slice_grid(dray_array *g, int od, const dray_array *a, int d, int64_t start,
                              int64_t step, int64_t count)
{
    int64_t n = a->nch[d];
    int64_t *sizes = calloc((size_t)n + 1, sizeof(int64_t)), m = 0;
    if (!sizes)
        return dray_set_error(DRAY_ENOMEM, "slice grid");
    for (int64_t o = 0; o < count;) {
        int64_t i = start + o * step, k = 0;
        while (k < n && !(a->coff[d][k] <= i && i < a->coff[d][k + 1]))
            k++;
        /* elements o.. that stay inside chunk k */
        int64_t lo = a->coff[d][k], hi = a->coff[d][k + 1], run;
        run = step > 0 ? (hi - 1 - i) / step + 1 : (i - lo) / (-step) + 1;
        if (run > count - o)
            run = count - o;
        sizes[m++] = run;
        o += run;
    }
    if (m == 0)
        sizes[m++] = 0;
    dray_status st = dray__array_set_grid(g, od, sizes, m);
    free(sizes);
    return st;
}

dray_status dray_array_slice(dray_array *a, const dray_slice *sl, int n_sl, dray_array **out)
{
    if (n_sl > a->ndim || n_sl < 0)
        return dray_set_error(DRAY_EINVAL, "slice: %d indices for an array of dimension %d", n_sl,
                              a->ndim);
    int64_t start[DRAY__MAXD], step[DRAY__MAXD], count[DRAY__MAXD], oshape[DRAY__MAXD];
    uint32_t dropped = 0;
    int ond = 0;
    for (int d = 0; d < a->ndim; d++) {
        int64_t len = a->shape[d];
        dray_slice s = d < n_sl ? sl[d]
                                : (dray_slice){DRAY_SLICE_NONE, DRAY_SLICE_NONE, DRAY_SLICE_NONE, 0};
        if (s.is_index) {
            int64_t i = s.start < 0 ? s.start + len : s.start;
            if (i < 0 || i >= len)
                return dray_set_error(DRAY_ERANGE, "index %lld is out of bounds for axis %d with "
                                      "size %lld", (long long)s.start, d, (long long)len);
            start[d] = i;
            step[d] = 1;
            count[d] = 1;
            dropped |= 1u << d;
            continue;
        }
        int64_t st = s.step == DRAY_SLICE_NONE ? 1 : s.step;
        if (st == 0)
            return dray_set_error(DRAY_EINVAL, "slice step cannot be zero (axis %d)", d);
        int64_t b, e;
        if (st > 0) {
            b = s.start == DRAY_SLICE_NONE ? 0 : s.start < 0 ? s.start + len : s.start;
            e = s.stop == DRAY_SLICE_NONE ? len : s.stop < 0 ? s.stop + len : s.stop;
            b = b < 0 ? 0 : b > len ? len : b;
            e = e < 0 ? 0 : e > len ? len : e;
            count[d] = e > b ? (e - b + st - 1) / st : 0;
        } else {
            b = s.start == DRAY_SLICE_NONE ? len - 1 : s.start < 0 ? s.start + len : s.start;
            e = s.stop == DRAY_SLICE_NONE ? -1 : s.stop < 0 ? s.stop + len : s.stop;
            b = b < -1 ? -1 : b > len - 1 ? len - 1 : b;
            e = e < -1 ? -1 : e > len - 1 ? len - 1 : e;
            count[d] = b > e ? (b - e + (-st) - 1) / (-st) : 0;
        }
        start[d] = count[d] ? b : 0;
        step[d] = st;
        oshape[ond++] = count[d];
    }
    dray_array *g;
    dray_status st = dray__array_new(DRAY__K_GATHER, a->dtype, ond, oshape, NULL, &g);
    if (st != DRAY_OK)
        return st;
    for (int d = 0, od = 0; d < a->ndim && st == DRAY_OK; d++) {
        g->p.ga.start[d] = start[d];
        g->p.ga.step[d] = step[d];
        if (!(dropped & (1u << d)))
            st = slice_grid(g, od++, a, d, start[d], step[d], count[d]);
    }
    if (st != DRAY_OK) {
        dray_array_release(g);
        return st;
    }
    g->p.ga.dropped = dropped;
    g->in[0] = dray_array_retain(a);
    g->n_in = 1;
    *out = g;
    return DRAY_OK;
}

dray_status dray_array_transpose(dray_array *a, const int *perm, dray_array **out)
{
    int p[DRAY__MAXD], seen = 0;
    int64_t shape[DRAY__MAXD];
    for (int d = 0; d < a->ndim; d++) {
        p[d] = perm ? perm[d] : a->ndim - 1 - d;
        if (norm_axis(&p[d], a->ndim) != DRAY_OK)
            return DRAY_EINVAL;
        if (seen & (1 << p[d]))
            return dray_set_error(DRAY_EINVAL, "transpose: axis %d repeated", p[d]);
        seen |= 1 << p[d];
        shape[d] = a->shape[p[d]];
    }
    dray_array *t;
    dray_status st = dray__array_new(DRAY__K_TRANSPOSE, a->dtype, a->ndim, shape, NULL, &t);
    for (int d = 0; d < a->ndim && st == DRAY_OK; d++) {
        t->p.tr.perm[d] = p[d];
        st = dray__array_copy_grid(t, d, a, p[d]);
    }
    if (st != DRAY_OK) {
        dray_array_release(t);
        return st;
    }
    t->in[0] = dray_array_retain(a);
    t->n_in = 1;
    *out = t;
    return DRAY_OK;
}

dray_status dray_array_reduce(dray_reduce_op op, dray_array *a, const int *axes, int n_axes,
                              const dray_reduce_opts *opts, dray_array **out)
{
    dray_reduce_opts o = {false, 0, 0};
    if (opts)
        o = *opts;
    if ((unsigned)op >= DRAY__REDUCE_COUNT)
        return dray_set_error(DRAY_EINVAL, "unknown reduction %d", (int)op);
    if (o.split_every == 0)
        o.split_every = 8;
    if (o.split_every < 2)
        return dray_set_error(DRAY_EINVAL, "split_every %d must be >= 2", o.split_every);
    uint32_t mask = 0;
    for (int k = 0; k < n_axes; k++) {
        int ax = axes[k];
        if (norm_axis(&ax, a->ndim) != DRAY_OK)
            return DRAY_EINVAL;
        if (mask & (1u << ax))
            return dray_set_error(DRAY_EINVAL, "reduction: axis %d repeated", ax);
        mask |= 1u << ax;
    }
    if (n_axes == 0)
        mask = a->ndim ? (1u << a->ndim) - 1 : 0;
    bool arg = op == DRAY_ARGMIN || op == DRAY_ARGMAX;
    if (arg && n_axes > 1 && mask != (1u << a->ndim) - 1)
        return dray_set_error(DRAY_EINVAL, "%s takes one axis or all of them",
                              op == DRAY_ARGMIN ? "argmin" : "argmax");
    if (arg || op == DRAY_MIN || op == DRAY_MAX)
        for (int d = 0; d < a->ndim; d++)
            if ((mask & (1u << d)) && a->shape[d] == 0)
                return dray_set_error(DRAY_EINVAL, "zero-size axis %d in a reduction (%s) that "
                                      "has no identity", d, arg ? "argmin/argmax" : "min/max");
    dray_dtype t = a->dtype, fl = dray__is_float(t) ? t : DRAY_FLOAT64;
    switch (op) {
    case DRAY_SUM: t = dray__is_float(t) ? t : DRAY_INT64; break;
    case DRAY_MEAN: case DRAY_VAR: case DRAY_STD: t = fl; break;
    case DRAY_ARGMIN: case DRAY_ARGMAX: t = DRAY_INT64; break;
    case DRAY_ANY: case DRAY_ALL: t = DRAY_BOOL; break;
    default: break;
    }
    int64_t shape[DRAY__MAXD];
    int nd = 0;
    for (int d = 0; d < a->ndim; d++)
        if (!(mask & (1u << d)))
            shape[nd++] = a->shape[d];
        else if (o.keepdims)
            shape[nd++] = 1;
    dray_array *r;
    dray_status st = dray__array_new(DRAY__K_REDUCE, t, nd, shape, NULL, &r);
    for (int d = 0, od = 0; d < a->ndim && st == DRAY_OK; d++)
        if (!(mask & (1u << d)))
            st = dray__array_copy_grid(r, od++, a, d);
        else if (o.keepdims)
            od++;
    if (st != DRAY_OK) {
        dray_array_release(r);
        return st;
    }
    r->p.red.op = op;
    r->p.red.axes = mask;
    r->p.red.keepdims = o.keepdims;
    r->p.red.ddof = o.ddof;
    r->p.red.split = o.split_every;
    r->p.red.in_dt = a->dtype;
    r->in[0] = dray_array_retain(a);
    r->n_in = 1;
    *out = r;
    return DRAY_OK;
}

dray_status dray_array_matmul(dray_array *a, dray_array *b, dray_array **out)
{
    char s1[160], s2[160];
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[0])
        return dray_set_error(DRAY_EINVAL, "matmul: shapes %s and %s do not align",
                              dray__shape_str(a->ndim, a->shape, s1, sizeof(s1)),
                              dray__shape_str(b->ndim, b->shape, s2, sizeof(s2)));
    int64_t shape[2] = {a->shape[0], b->shape[1]};
    dray_array *m, *bb = NULL;
    dray_status st = dray__array_new(DRAY__K_MATMUL, DRAY_FLOAT64, 2, shape, NULL, &m);
    if (st != DRAY_OK)
        return st;
    if ((st = dray__array_copy_grid(m, 0, a, 0)) != DRAY_OK ||
        (st = dray__array_copy_grid(m, 1, b, 1)) != DRAY_OK)
        goto out_free;
    if (dray__same_grid(a, 1, b, 0)) {
        bb = dray_array_retain(b);
    } else {
        dray_array *ref;
        int64_t rs[2] = {b->shape[0], b->shape[1]};
        if ((st = dray__array_new(DRAY__K_CONST, b->dtype, 2, rs, NULL, &ref)) != DRAY_OK)
            goto out_free;
        st = dray__array_copy_grid(ref, 0, a, 1);
        if (st == DRAY_OK)
            st = dray__array_copy_grid(ref, 1, b, 1);
        if (st == DRAY_OK)
            st = dray__rechunk_grid(b, ref, 0, &bb);
        dray_array_release(ref);
        if (st != DRAY_OK)
            goto out_free;
    }
    m->in[0] = dray_array_retain(a);
    m->in[1] = bb;
    m->n_in = 2;
    m->p.red.split = 8;
    *out = m;
    return DRAY_OK;
out_free:
    dray_array_release(m);
    return st;
}

dray_status dray_array_concatenate(dray_array *const *arrays, int n, int axis, dray_array **out)
{
    char s1[160], s2[160];
    if (n < 1)
        return dray_set_error(DRAY_EINVAL, "concatenate: no arrays");
    const dray_array *f = arrays[0];
    if (norm_axis(&axis, f->ndim) != DRAY_OK)
        return DRAY_EINVAL;
    dray_dtype t = f->dtype;
    int64_t shape[DRAY__MAXD], total = 0, nchunks = 0;
    for (int k = 0; k < n; k++) {
        const dray_array *x = arrays[k];
        bool ok = x->ndim == f->ndim;
        for (int d = 0; ok && d < f->ndim; d++)
            ok = d == axis || x->shape[d] == f->shape[d];
        if (!ok)
            return dray_set_error(DRAY_EINVAL, "concatenate: shapes %s and %s differ off axis %d",
                                  dray__shape_str(f->ndim, f->shape, s1, sizeof(s1)),
                                  dray__shape_str(x->ndim, x->shape, s2, sizeof(s2)), axis);
        t = dray__promote(t, x->dtype);
        total += x->shape[axis];
        nchunks += x->nch[axis];
    }
    memcpy(shape, f->shape, sizeof(int64_t) * (size_t)f->ndim);
    shape[axis] = total;
    dray_array *c;
    dray_status st = dray__array_new(DRAY__K_CONCAT, t, f->ndim, shape, NULL, &c);
    if (st != DRAY_OK)
        return st;
    c->ins = calloc((size_t)n, sizeof(*c->ins));
    int64_t *sizes = calloc((size_t)nchunks + 1, sizeof(int64_t)), m = 0;
    if (!c->ins || !sizes) {
        st = dray_set_error(DRAY_ENOMEM, "concatenate");
        goto out_free;
    }
    for (int d = 0; d < f->ndim && st == DRAY_OK; d++)
        if (d != axis)
            st = dray__array_copy_grid(c, d, f, d);
    for (int k = 0; k < n && st == DRAY_OK; k++) {
        dray_array *x = arrays[k], *cast = NULL;
        if (x->dtype != t && (st = dray_array_astype(x, t, &cast)) != DRAY_OK)
            break;
        /* conform off-axis grids to the first array's */
        dray_array *ref = NULL;
        st = dray__array_new(DRAY__K_CONST, t, f->ndim, x->shape, NULL, &ref);
        for (int d = 0; d < f->ndim && st == DRAY_OK; d++)
            st = dray__array_copy_grid(ref, d, d == axis ? x : f, d);
        if (st == DRAY_OK)
            st = dray__conform(cast ? cast : x, ref, &c->ins[k]);
        dray_array_release(ref);
        dray_array_release(cast);
        if (st != DRAY_OK)
            break;
        c->n_ins = k + 1;
        for (int64_t j = 0; j < c->ins[k]->nch[axis]; j++)
            sizes[m++] = c->ins[k]->coff[axis][j + 1] - c->ins[k]->coff[axis][j];
    }
    if (st == DRAY_OK)
        st = dray__array_set_grid(c, axis, sizes, m);
    if (st != DRAY_OK)
        goto out_free;
    free(sizes);
    c->p.cat.axis = axis;
    *out = c;
    return DRAY_OK;
out_free:
    free(sizes);
    dray_array_release(c);
    return st;
}

/* A reshape node whose chunks map one-to-one (same C-order data) onto a's chunks. */
static dray_status new_reshape(dray_array *a, int ndim, const int64_t *shape, dray_array **out)
{
    dray_array *r;
    dray_status st = dray__array_new(DRAY__K_RESHAPE, a->dtype, ndim, shape, NULL, &r);
    if (st != DRAY_OK)
        return st;
    r->in[0] = dray_array_retain(a);
    r->n_in = 1;
    *out = r;
    return DRAY_OK;
}

dray_status dray_array_stack(dray_array *const *arrays, int n, int axis, dray_array **out)
{
    if (n < 1)
        return dray_set_error(DRAY_EINVAL, "stack: no arrays");
    int nd = arrays[0]->ndim + 1;
    if (norm_axis(&axis, nd) != DRAY_OK)
        return DRAY_EINVAL;
    dray_array **ex = calloc((size_t)n, sizeof(*ex));
    if (!ex)
        return dray_set_error(DRAY_ENOMEM, "stack");
    dray_status st = DRAY_OK;
    for (int k = 0; k < n && st == DRAY_OK; k++) {
        dray_array *x = arrays[k];
        if (x->ndim + 1 > DRAY__MAXD) {
            st = dray_set_error(DRAY_EINVAL, "stack: too many dimensions");
            break;
        }
        int64_t shape[DRAY__MAXD];
        for (int d = 0, s = 0; d < nd; d++)
            shape[d] = d == axis ? 1 : x->shape[s++];
        if ((st = new_reshape(x, nd, shape, &ex[k])) != DRAY_OK)
            break;
        for (int d = 0, s = 0; d < nd && st == DRAY_OK; d++)
            if (d != axis)
                st = dray__array_copy_grid(ex[k], d, x, s++);
    }
    if (st == DRAY_OK)
        st = dray_array_concatenate(ex, n, axis, out);
    for (int k = 0; k < n; k++)
        dray_array_release(ex[k]);
    free(ex);
    return st;
}

static dray_status reshape_grouped(dray_array *a, int ndim, const int64_t *sh, dray_array **out);

dray_status dray_array_reshape(dray_array *a, int ndim, const int64_t *shape, dray_array **out)
{
    char s1[160], s2[160];
    int64_t sh[DRAY__MAXD], known = 1, size = dray_array_size(a);
    int neg = -1;
    if (ndim < 1 || ndim > DRAY__MAXD)
        return dray_set_error(DRAY_EINVAL, "reshape: ndim %d", ndim);
    for (int d = 0; d < ndim; d++) {
        sh[d] = shape[d];
        if (sh[d] == -1 && neg < 0)
            neg = d;
        else if (sh[d] < 0)
            return dray_set_error(DRAY_EINVAL, "reshape: bad size %lld", (long long)sh[d]);
        else if (__builtin_mul_overflow(known, sh[d], &known))
            return dray_set_error(DRAY_EINVAL, "reshape: size overflows");
    }
    if (neg >= 0)
        sh[neg] = known ? size / known : 0;
    int64_t total = 1;
    bool over = false;
    for (int d = 0; d < ndim; d++)
        over |= __builtin_mul_overflow(total, sh[d], &total);
    if (over || total != size)
        return dray_set_error(DRAY_EINVAL, "cannot reshape an array of shape %s into %s",
                              dray__shape_str(a->ndim, a->shape, s1, sizeof(s1)),
                              dray__shape_str(ndim, sh, s2, sizeof(s2)));
    return reshape_grouped(a, ndim, sh, out);
}

/* The first axis in [a0, a1) whose size is not 1 (a0 when all are 1, a1 when empty): the axis of
 * a group that carries its chunks. */
static int lead_axis(const int64_t *shape, int a0, int a1)
{
    for (int d = a0; d < a1; d++)
        if (shape[d] != 1)
            return d;
    return a0;
}

static int64_t gcd64(int64_t x, int64_t y)
{
    while (y) {
        int64_t t = x % y;
        x = y;
        y = t;
    }
    return x;
}

/* General reshape, as Dask does it: the axes of input and output fall into groups with equal
 * products ((4, 6) -> (24,) merges, (24,) -> (4, 6) splits, (4, 6) -> (3, 8) both). Within a group
 * only the lead axis keeps several chunks, and its chunk boundaries sit on multiples of g input
 * rows, g = R_out / gcd(R_in, R_out) (R: product of the group's axes after the lead), so every
 * input chunk holds whole output rows of the group. The input is rechunked to that grid when it
 * is not on it already; then each output chunk is one input chunk with the same C-order data (the
 * groups being consecutive axes, a block's flat order is the same on both sides). */
static dray_status reshape_grouped(dray_array *a, int ndim, const int64_t *sh, dray_array **out)
{
    int nin = a->ndim;
    int64_t size = dray_array_size(a);
    int64_t *isz[DRAY__MAXD] = {0}, icnt[DRAY__MAXD], *osz[DRAY__MAXD] = {0}, ocnt[DRAY__MAXD];
    dray_array *src = NULL, *r = NULL;
    dray_status st = DRAY_OK;
    for (int d = 0; d < nin; d++) { /* one chunk per axis unless a group's lead says otherwise */
        icnt[d] = 1;
        if (!(isz[d] = calloc((size_t)(a->nch[d] + 1), sizeof(int64_t))))
            goto nomem;
        isz[d][0] = a->shape[d];
    }
    for (int d = 0; d < ndim; d++) {
        ocnt[d] = 1;
        int64_t cap = 1 + (nin ? a->nch[0] : 1);
        for (int e = 0; e < nin; e++)
            cap = a->nch[e] + 1 > cap ? a->nch[e] + 1 : cap;
        if (!(osz[d] = calloc((size_t)cap, sizeof(int64_t))))
            goto nomem;
        osz[d][0] = sh[d];
    }
    for (int i = 0, o = 0; size > 0 && (i < nin || o < ndim);) {
        int i0 = i, o0 = o;
        int64_t pi = 1, po = 1;
        if (i < nin)
            pi *= a->shape[i++];
        if (o < ndim)
            po *= sh[o++];
        while (pi != po) {
            if (pi < po && i < nin)
                pi *= a->shape[i++];
            else if (po < pi && o < ndim)
                po *= sh[o++];
            else
                break;
        }
        if (pi != po) {
            st = dray_set_error(DRAY_EINVAL, "reshape: axis groups do not match");
            goto out;
        }
        if (i0 == i || o0 == o)
            continue; /* size-1 axes on one side only: one chunk each */
        int li = lead_axis(a->shape, i0, i), lo = lead_axis(sh, o0, o);
        int64_t rin = 1, rout = 1;
        for (int d = li + 1; d < i; d++)
            rin *= a->shape[d];
        for (int d = lo + 1; d < o; d++)
            rout *= sh[d];
        int64_t g = rout / gcd64(rin, rout), len = a->shape[li], prev = 0, n = 0;
        /* the input's boundaries on the lead axis, moved to the nearest multiple of g */
        for (int64_t k = 1; k <= a->nch[li]; k++) {
            int64_t b = k == a->nch[li] ? len : (a->coff[li][k] + g / 2) / g * g;
            if (b > len)
                b = len;
            if (b > prev) {
                isz[li][n] = b - prev;
                osz[lo][n] = (b - prev) * rin / rout;
                n++;
                prev = b;
            }
        }
        icnt[li] = ocnt[lo] = n;
    }
    bool same = true;
    for (int d = 0; d < nin; d++) {
        same = same && icnt[d] == a->nch[d];
        for (int64_t k = 0; same && k < icnt[d]; k++)
            same = isz[d][k] == a->coff[d][k + 1] - a->coff[d][k];
    }
    if (same)
        src = dray_array_retain(a);
    else if ((st = dray_array_rechunk_explicit(a, (const int64_t *const *)isz, icnt, &src)) !=
             DRAY_OK)
        goto out;
    if ((st = new_reshape(src, ndim, sh, &r)) != DRAY_OK)
        goto out;
    for (int d = 0; d < ndim && st == DRAY_OK; d++)
        st = dray__array_set_grid(r, d, osz[d], ocnt[d]);
    if (st == DRAY_OK) {
        *out = r;
        r = NULL;
    }
    goto out;
nomem:
    st = dray_set_error(DRAY_ENOMEM, "reshape");
out:
    dray_array_release(r);
    dray_array_release(src);
    for (int d = 0; d < DRAY__MAXD; d++) {
        free(isz[d]);
        free(osz[d]);
    }
    return st;
}

dray_status dray_array_dot(dray_array *a, dray_array *b, dray_array **out)
{
    char s1[160], s2[160];
    if (a->ndim == 2 && b->ndim == 2)
        return dray_array_matmul(a, b, out);
    int ka = a->ndim - 1, kb = 0; /* contracted axes: a's last, b's first */
    if (a->ndim < 1 || a->ndim > 2 || b->ndim < 1 || b->ndim > 2 ||
        a->shape[ka] != b->shape[kb])
        return dray_set_error(DRAY_EINVAL, "dot: shapes %s and %s not aligned",
                              dray__shape_str(a->ndim, a->shape, s1, sizeof(s1)),
                              dray__shape_str(b->ndim, b->shape, s2, sizeof(s2)));
    dray_array *lhs = dray_array_retain(a), *prod = NULL;
    int axis = a->ndim - 1; /* the summed axis of the broadcast product */
    dray_status st = DRAY_OK;
    if (a->ndim == 1 && b->ndim == 2) {
        /* (k,) . (k, n): a as a column (k, 1) times b, summed over axis 0 */
        dray_array_release(lhs);
        st = dray_array_reshape(a, 2, (int64_t[]){a->shape[0], 1}, &lhs);
        axis = 0;
    }
    if (st == DRAY_OK)
        st = dray_array_binary(DRAY_MUL, lhs, b, &prod);
    if (st == DRAY_OK)
        st = dray_array_reduce(DRAY_SUM, prod, &axis, 1, NULL, out);
    dray_array_release(prod);
    dray_array_release(lhs);
    return st;
}
