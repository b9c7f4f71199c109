/* Lazy array expressions: nodes with a shape, a dtype and a chunk grid, the creation functions and
 * the elementwise operations with NumPy broadcasting and type promotion. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ==== Nodes and grids ==== */

static void array_free(dray_array *a)
{
    for (int k = 0; k < a->n_in; k++)
        dray_array_release(a->in[k]);
    for (int k = 0; k < a->n_ins; k++)
        dray_array_release(a->ins[k]);
    free(a->ins);
    if (a->chunks) {
        int64_t n = dray__array_nchunks(a);
        for (int64_t k = 0; k < n; k++)
            dray_value_release(&a->chunks[k]);
        free(a->chunks);
    }
    if (a->kind == DRAY__K_NPY)
        free(a->p.npy.path);
    for (int d = 0; d < DRAY__MAXD; d++)
        free(a->coff[d]);
    free(a);
}

dray_array *dray_array_retain(dray_array *a)
{
    atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
    return a;
}

void dray_array_release(dray_array *a)
{
    if (a && atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1)
        array_free(a);
}

/* Offsets are stored as off[0..n] followed by the n chunk sizes. */
static void put_grid(dray_array *a, int d, int64_t *off, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        off[n + 1 + k] = off[k + 1] - off[k];
    free(a->coff[d]);
    a->coff[d] = off;
    a->nch[d] = n;
}

dray_status dray__array_set_grid(dray_array *a, int axis, const int64_t *sizes, int64_t n)
{
    int64_t *off = malloc(sizeof(int64_t) * (size_t)(2 * n + 1));
    if (!off)
        return dray_set_error(DRAY_ENOMEM, "chunk grid");
    off[0] = 0;
    for (int64_t k = 0; k < n; k++)
        off[k + 1] = off[k] + sizes[k];
    put_grid(a, axis, off, n);
    return DRAY_OK;
}

static dray_status set_regular(dray_array *a, int d, int64_t c)
{
    int64_t len = a->shape[d];
    if (c <= 0 || c > len)
        c = len;
    int64_t n = len == 0 ? 1 : (len + c - 1) / c;
    int64_t *off = malloc(sizeof(int64_t) * (size_t)(2 * n + 1));
    if (!off)
        return dray_set_error(DRAY_ENOMEM, "chunk grid of %lld chunks", (long long)n);
    for (int64_t k = 0; k <= n; k++)
        off[k] = k * c < len ? k * c : len;
    put_grid(a, d, off, n);
    return DRAY_OK;
}

dray_status dray__array_new(int kind, dray_dtype dtype, int ndim, const int64_t *shape,
                            const int64_t *chunks, dray_array **out)
{
    char sb[160];
    if ((unsigned)dtype >= DRAY__DTYPE_COUNT)
        return dray_set_error(DRAY_ETYPE, "unknown dtype %d", (int)dtype);
    if (ndim < 0 || ndim > DRAY__MAXD)
        return dray_set_error(DRAY_EINVAL, "ndim %d outside 0..%d", ndim, DRAY__MAXD);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || shape[d] > (INT64_C(1) << 50))
            return dray_set_error(DRAY_EINVAL, "shape %s: axis %d has a bad length",
                                  dray__shape_str(ndim, shape, sb, sizeof(sb)), d);
        if (chunks && chunks[d] < 0)
            return dray_set_error(DRAY_EINVAL, "chunks: axis %d has chunk size %lld (must be > 0)",
                                  d, (long long)chunks[d]);
    }
    dray_array *a = calloc(1, sizeof(*a));
    if (!a)
        return dray_set_error(DRAY_ENOMEM, "array node");
    atomic_init(&a->refs, 1);
    a->kind = kind;
    a->dtype = dtype;
    a->ndim = ndim;
    if (ndim)
        memcpy(a->shape, shape, sizeof(int64_t) * (size_t)ndim);
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) {
        if (set_regular(a, d, chunks ? chunks[d] : 0) != DRAY_OK) {
            array_free(a);
            return DRAY_ENOMEM;
        }
        total *= a->nch[d];
        if (total > (INT64_C(1) << 24)) {
            array_free(a);
            return dray_set_error(DRAY_EINVAL, "shape %s: more than 2^24 chunks; use bigger chunks",
                                  dray__shape_str(ndim, shape, sb, sizeof(sb)));
        }
    }
    *out = a;
    return DRAY_OK;
}

dray_status dray__array_copy_grid(dray_array *a, int aax, const dray_array *b, int bax)
{
    int64_t n = b->nch[bax];
    int64_t *off = malloc(sizeof(int64_t) * (size_t)(2 * n + 1));
    if (!off)
        return dray_set_error(DRAY_ENOMEM, "chunk grid");
    memcpy(off, b->coff[bax], sizeof(int64_t) * (size_t)(2 * n + 1));
    free(a->coff[aax]);
    a->coff[aax] = off;
    a->nch[aax] = n;
    return DRAY_OK;
}

int64_t dray__array_nchunks(const dray_array *a)
{
    int64_t n = 1;
    for (int d = 0; d < a->ndim; d++)
        n *= a->nch[d];
    return n;
}

void dray__chunk_geom(const dray_array *a, const int64_t *idx, int64_t *shape, int64_t *off)
{
    for (int d = 0; d < a->ndim; d++) {
        off[d] = a->coff[d][idx[d]];
        shape[d] = a->coff[d][idx[d] + 1] - off[d];
    }
}

bool dray__same_grid(const dray_array *a, int ax, const dray_array *b, int bx)
{
    return a->nch[ax] == b->nch[bx] &&
           !memcmp(a->coff[ax], b->coff[bx], sizeof(int64_t) * (size_t)(a->nch[ax] + 1));
}

bool dray__is_fusable(const dray_array *a)
{
    switch (a->kind) {
    case DRAY__K_CONST: case DRAY__K_LINEAR: case DRAY__K_RANDOM: case DRAY__K_UNARY:
    case DRAY__K_BINARY: case DRAY__K_WHERE: case DRAY__K_CAST:
        return true;
    default:
        return false;
    }
}

dray_dtype dray_array_dtype(const dray_array *a) { return a->dtype; }
int dray_array_ndim(const dray_array *a) { return a->ndim; }
const int64_t *dray_array_shape(const dray_array *a) { return a->shape; }
int64_t dray_array_numchunks(const dray_array *a, int axis)
{
    return axis >= 0 && axis < a->ndim ? a->nch[axis] : 0;
}

int64_t dray_array_size(const dray_array *a)
{
    int64_t n = 1;
    for (int d = 0; d < a->ndim; d++)
        n *= a->shape[d];
    return n;
}

const int64_t *dray_array_chunk_sizes(const dray_array *a, int axis)
{
    if (axis < 0 || axis >= a->ndim)
        return NULL;
    return a->coff[axis] + a->nch[axis] + 1;
}

/* A copy of a generator node on another grid (generators can make any region). */
static dray_status regrid_generator(dray_array *a, const dray_array *ref, int shift,
                                    dray_array **out)
{
    dray_array *c;
    dray_status st = dray__array_new(a->kind, a->dtype, a->ndim, a->shape, NULL, &c);
    if (st != DRAY_OK)
        return st;
    c->p = a->p;
    for (int d = 0; d < a->ndim && st == DRAY_OK; d++)
        if (a->shape[d] == ref->shape[d + shift])
            st = dray__array_copy_grid(c, d, ref, d + shift);
    if (st != DRAY_OK) {
        dray_array_release(c);
        return st;
    }
    *out = c;
    return DRAY_OK;
}

dray_status dray__rechunk_grid(dray_array *a, const dray_array *ref, int shift, dray_array **out);

dray_status dray__conform(dray_array *a, const dray_array *ref, dray_array **out)
{
    int shift = ref->ndim - a->ndim;
    bool ok = true;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != 1 && !dray__same_grid(a, d, ref, d + shift))
            ok = false;
    if (ok) {
        *out = dray_array_retain(a);
        return DRAY_OK;
    }
    if (a->kind == DRAY__K_CONST || a->kind == DRAY__K_LINEAR || a->kind == DRAY__K_RANDOM)
        return regrid_generator(a, ref, shift, out);
    return dray__rechunk_grid(a, ref, shift, out);
}

/* ==== Creation ==== */

dray_status dray_array_full(dray_dtype dtype, int ndim, const int64_t *shape, const int64_t *chunks,
                            double value, dray_array **out)
{
    dray_array *a = NULL;
    dray_status st = dray__array_new(DRAY__K_CONST, dtype, ndim, shape, chunks, &a);
    if (st != DRAY_OK)
        return st;
    a->p.cst.value = dtype == DRAY_FLOAT32 ? (double)(float)value
                   : dtype == DRAY_BOOL ? (value != 0) : value;
    *out = a;
    return DRAY_OK;
}

dray_status dray_array_zeros(dray_dtype dtype, int ndim, const int64_t *shape, const int64_t *chunks,
                             dray_array **out)
{
    return dray_array_full(dtype, ndim, shape, chunks, 0.0, out);
}

dray_status dray_array_ones(dray_dtype dtype, int ndim, const int64_t *shape, const int64_t *chunks,
                            dray_array **out)
{
    return dray_array_full(dtype, ndim, shape, chunks, 1.0, out);
}

dray_status dray_array_arange(dray_dtype dtype, double start, double stop, double step,
                              int64_t chunk, dray_array **out)
{
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        return dray_set_error(DRAY_EINVAL, "arange(%g, %g, %g): step must be non-zero and all "
                              "finite", start, stop, step);
    double n = ceil((stop - start) / step);
    int64_t len = n > 0 ? (int64_t)n : 0;
    dray_array *a = NULL;
    dray_status st = dray__array_new(DRAY__K_LINEAR, dtype, 1, &len, &chunk, &a);
    if (st != DRAY_OK)
        return st;
    a->p.lin.start = start;
    a->p.lin.step = step;
    *out = a;
    return DRAY_OK;
}

dray_status dray_array_linspace(double start, double stop, int64_t num, bool endpoint, int64_t chunk,
                                dray_array **out)
{
    if (num < 0)
        return dray_set_error(DRAY_EINVAL, "linspace: num %lld must be >= 0", (long long)num);
    dray_array *a = NULL;
    dray_status st = dray__array_new(DRAY__K_LINEAR, DRAY_FLOAT64, 1, &num, &chunk, &a);
    if (st != DRAY_OK)
        return st;
    int64_t div = endpoint ? num - 1 : num;
    a->p.lin.start = start;
    a->p.lin.step = div > 0 ? (stop - start) / (double)div : 0;
    a->p.lin.last = stop;
    a->p.lin.fix_last = endpoint && num > 1;
    *out = a;
    return DRAY_OK;
}

static dray_status make_random(int kind, uint64_t seed, int ndim, const int64_t *shape,
                               const int64_t *chunks, dray_dtype dt, dray_array **out)
{
    dray_status st = dray__array_new(DRAY__K_RANDOM, dt, ndim, shape, chunks, out);
    if (st == DRAY_OK) {
        (*out)->p.rnd.kind = kind;
        (*out)->p.rnd.seed = seed;
    }
    return st;
}

dray_status dray_array_random_uniform(uint64_t seed, int ndim, const int64_t *shape,
                                      const int64_t *chunks, double low, double high,
                                      dray_array **out)
{
    if (!isfinite(low) || !isfinite(high) || !(high >= low))
        return dray_set_error(DRAY_EINVAL, "random uniform: bad bounds [%g, %g)", low, high);
    dray_status st = make_random(DRAY__R_UNIFORM, seed, ndim, shape, chunks, DRAY_FLOAT64, out);
    if (st == DRAY_OK) {
        (*out)->p.rnd.p1 = low;
        (*out)->p.rnd.p2 = high;
    }
    return st;
}

dray_status dray_array_random_normal(uint64_t seed, int ndim, const int64_t *shape,
                                     const int64_t *chunks, double mean, double stddev,
                                     dray_array **out)
{
    if (!isfinite(mean) || !isfinite(stddev) || stddev < 0)
        return dray_set_error(DRAY_EINVAL, "random normal: bad mean %g or stddev %g", mean,
                              stddev);
    dray_status st = make_random(DRAY__R_NORMAL, seed, ndim, shape, chunks, DRAY_FLOAT64, out);
    if (st == DRAY_OK) {
        (*out)->p.rnd.p1 = mean;
        (*out)->p.rnd.p2 = stddev;
    }
    return st;
}

dray_status dray_array_random_integers(uint64_t seed, int ndim, const int64_t *shape,
                                       const int64_t *chunks, int64_t low, int64_t high,
                                       dray_array **out)
{
    if (high <= low)
        return dray_set_error(DRAY_EINVAL, "random integers: high %lld must exceed low %lld",
                              (long long)high, (long long)low);
    dray_status st = make_random(DRAY__R_INTEGERS, seed, ndim, shape, chunks, DRAY_INT64, out);
    if (st == DRAY_OK) {
        (*out)->p.rnd.i1 = low;
        (*out)->p.rnd.i2 = high;
    }
    return st;
}

static void copy_region(const dray_ndarray *src, const int64_t *off, dray_ndarray *dst)
{
    static const int64_t zero[DRAY__MAXD];
    dray__copy_block(dst, zero, src, off, dst->shape);
}

dray_status dray_array_from_ndarray(const dray_ndarray *src, const int64_t *chunks,
                                    dray_array **out)
{
    dray_array *a = NULL;
    dray_status st = dray__array_new(DRAY__K_CHUNKS, src->dtype, src->ndim, src->shape, chunks, &a);
    if (st != DRAY_OK)
        return st;
    int64_t n = dray__array_nchunks(a), idx[DRAY__MAXD] = {0};
    a->chunks = calloc((size_t)n, sizeof(dray_value));
    if (!a->chunks) {
        st = dray_set_error(DRAY_ENOMEM, "array of %lld chunks", (long long)n);
        goto out_free;
    }
    for (int64_t k = 0; k < n; k++) {
        int64_t shape[DRAY__MAXD], off[DRAY__MAXD];
        dray__chunk_geom(a, idx, shape, off);
        dray_ndarray *c;
        if ((st = dray__nd_create_uninit(src->dtype, src->ndim, shape, &c)) != DRAY_OK)
            goto out_free;
        copy_region(src, off, c);
        a->chunks[k] = dray_value_of_ext(&c->hdr);
        dray__next_index(idx, a->nch, a->ndim);
    }
    *out = a;
    return DRAY_OK;
out_free:
    dray_array_release(a);
    return st;
}

dray_status dray_array_from_buffer(dray_dtype dtype, int ndim, const int64_t *shape,
                                   const int64_t *chunks, const void *data, dray_array **out)
{
    /* A borrowed view of the caller's buffer dressed as an ndarray; never shared. */
    dray_ndarray view;
    memset(&view, 0, sizeof(view));
    if ((unsigned)dtype >= DRAY__DTYPE_COUNT || ndim < 0 || ndim > DRAY__MAXD)
        return dray_set_error(DRAY_EINVAL, "from_buffer: bad dtype %d or ndim %d", (int)dtype,
                              ndim);
    view.dtype = dtype;
    view.ndim = ndim;
    view.size = 1;
    for (int d = 0; d < ndim; d++) {
        view.shape[d] = shape[d];
        view.size *= shape[d];
    }
    if (!data && view.size)
        return dray_set_error(DRAY_EINVAL, "from_buffer: NULL data");
    view.data = (void *)data;
    return dray_array_from_ndarray(&view, chunks, out);
}

/* ==== Elementwise ==== */

dray_dtype dray__promote(dray_dtype a, dray_dtype b)
{
    if (a == b)
        return a;
    if (a > b) {
        dray_dtype t = a;
        a = b;
        b = t;
    }
    if (b == DRAY_FLOAT32 && (a == DRAY_INT32 || a == DRAY_INT64))
        return DRAY_FLOAT64;
    return b;
}

/* Broadcasts shapes and builds the node (grid from the first input spanning each axis), then
 * conforms every input to that grid. */
static dray_status ewise(int kind, dray_dtype dt, dray_array *const *ins, int n, dray_array **out)
{
    char s1[160], s2[160];
    int nd = 0;
    int64_t shape[DRAY__MAXD] = {0};
    for (int k = 0; k < n; k++)
        nd = ins[k]->ndim > nd ? ins[k]->ndim : nd;
    for (int d = 0; d < nd; d++) {
        shape[d] = 1;
        for (int k = 0; k < n; k++) {
            int id = d - (nd - ins[k]->ndim);
            if (id < 0 || ins[k]->shape[id] == 1)
                continue;
            if (shape[d] != 1 && shape[d] != ins[k]->shape[id])
                return dray_set_error(DRAY_EINVAL, "shapes %s and %s do not broadcast together",
                                      dray__shape_str(ins[0]->ndim, ins[0]->shape, s1, sizeof(s1)),
                                      dray__shape_str(ins[k]->ndim, ins[k]->shape, s2, sizeof(s2)));
            shape[d] = ins[k]->shape[id];
        }
    }
    dray_array *a = NULL;
    dray_status st = dray__array_new(kind, dt, nd, shape, NULL, &a);
    if (st != DRAY_OK)
        return st;
    for (int d = 0; d < nd && st == DRAY_OK; d++)
        for (int k = 0; k < n; k++) {
            int id = d - (nd - ins[k]->ndim);
            if (id >= 0 && ins[k]->shape[id] == shape[d]) {
                st = dray__array_copy_grid(a, d, ins[k], id);
                break;
            }
        }
    for (int k = 0; k < n && st == DRAY_OK; k++)
        if ((st = dray__conform(ins[k], a, &a->in[k])) == DRAY_OK)
            a->n_in = k + 1;
    if (st != DRAY_OK) {
        dray_array_release(a);
        return st;
    }
    *out = a;
    return DRAY_OK;
}

static dray_status binary_dtype(dray_binop op, dray_dtype ta, dray_dtype tb, dray_dtype *out)
{
    dray_dtype t = dray__promote(ta, tb);
    if ((unsigned)op >= DRAY__BINOP_COUNT)
        return dray_set_error(DRAY_EINVAL, "unknown binary op %d", (int)op);
    if (op >= DRAY_LT && op <= DRAY_NE)
        t = DRAY_BOOL;
    else if (op == DRAY_DIV && !dray__is_float(t))
        t = DRAY_FLOAT64;
    else if (t == DRAY_BOOL && (op == DRAY_SUB || op == DRAY_POW))
        return dray_set_error(DRAY_ETYPE, "%s on bool arrays is not supported; cast first",
                              op == DRAY_SUB ? "subtract" : "power");
    *out = t;
    return DRAY_OK;
}

dray_status dray_array_binary(dray_binop op, dray_array *a, dray_array *b, dray_array **out)
{
    dray_dtype t;
    dray_status st = binary_dtype(op, a->dtype, b->dtype, &t);
    if (st != DRAY_OK)
        return st;
    dray_array *ins[2] = {a, b};
    st = ewise(DRAY__K_BINARY, t, ins, 2, out);
    if (st == DRAY_OK)
        (*out)->p.bin.op = op;
    return st;
}

dray_status dray_array_binary_scalar(dray_binop op, dray_array *a, double s, bool scalar_first,
                                     dray_array **out)
{
    bool integral = s == floor(s) && fabs(s) < 9.2e18;
    dray_dtype st_t;
    if (integral && !dray__is_float(a->dtype))
        st_t = a->dtype == DRAY_BOOL ? DRAY_INT64
             : (a->dtype == DRAY_INT32 && (s > INT32_MAX || s < INT32_MIN)) ? DRAY_INT64
             : a->dtype;
    else if (dray__is_float(a->dtype))
        st_t = a->dtype;
    else
        st_t = DRAY_FLOAT64;
    dray_array *c;
    dray_status st = dray_array_full(st_t, 0, NULL, NULL, s, &c);
    if (st != DRAY_OK)
        return st;
    st = scalar_first ? dray_array_binary(op, c, a, out) : dray_array_binary(op, a, c, out);
    dray_array_release(c);
    return st;
}

dray_status dray_array_unary(dray_unop op, dray_array *a, dray_array **out)
{
    dray_dtype t = a->dtype;
    if ((unsigned)op >= DRAY__UNOP_COUNT)
        return dray_set_error(DRAY_EINVAL, "unknown unary op %d", (int)op);
    if (op == DRAY_NOT && t != DRAY_BOOL)
        return dray_set_error(DRAY_ETYPE, "logical not needs a bool array, not %s",
                              dray_dtype_name(t));
    if (op == DRAY_NEG && t == DRAY_BOOL)
        return dray_set_error(DRAY_ETYPE, "negative of a bool array is not supported");
    if (op >= DRAY_SQRT && op <= DRAY_COS && !dray__is_float(t))
        t = DRAY_FLOAT64;
    dray_status st = ewise(DRAY__K_UNARY, t, &a, 1, out);
    if (st == DRAY_OK)
        (*out)->p.un.op = op;
    return st;
}

dray_status dray_array_where(dray_array *cond, dray_array *a, dray_array *b, dray_array **out)
{
    dray_array *ins[3] = {cond, a, b};
    return ewise(DRAY__K_WHERE, dray__promote(a->dtype, b->dtype), ins, 3, out);
}

dray_status dray_array_astype(dray_array *a, dray_dtype dtype, dray_array **out)
{
    if ((unsigned)dtype >= DRAY__DTYPE_COUNT)
        return dray_set_error(DRAY_ETYPE, "astype: unknown dtype %d", (int)dtype);
    return ewise(DRAY__K_CAST, dtype, &a, 1, out);
}
