/* The chunk tasks the lowering emits, registered by name: fused eval, reduction partial/combine,
 * matmul block products and their sums, transpose, gather (slice/rechunk) and reshape. Every
 * argument is checked: tasks may receive bytes from the wire. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

/* dray runs one task per core: OpenBLAS must not start its own threads inside tasks. */
__attribute__((constructor)) static void dray__array_blas_threads(void)
{
    if (!getenv("OPENBLAS_NUM_THREADS"))
        openblas_set_num_threads(1);
}

static dray_status get_struct(const dray_value *args, size_t nargs, size_t i, void *dst,
                              size_t size, const char *fn)
{
    size_t len;
    const void *p = dray__arg_bytes(args, nargs, i, &len, fn);
    if (!p)
        return DRAY_ETYPE;
    if (len != size)
        return dray_set_error(DRAY_EFORMAT, "%s: argument %zu has %zu bytes, want %zu", fn, i, len,
                              size);
    memcpy(dst, p, size);
    return DRAY_OK;
}

static dray_status get_chunks(const dray_value *args, size_t nargs, size_t first,
                              dray_ndarray **out, const char *fn)
{
    for (size_t i = first; i < nargs; i++)
        if (!(out[i - first] = dray__arg_nd(args, nargs, i, fn)))
            return DRAY_ETYPE;
    return DRAY_OK;
}

static dray_status check_geom(const dray__geom *g)
{
    for (int d = 0; d < DRAY__MAXD; d++)
        if (g->shape[d] < 0 || g->off[d] < 0)
            return dray_set_error(DRAY_EFORMAT, "array task: negative chunk geometry");
    return DRAY_OK;
}

static dray_status fused_args(const dray_value *args, size_t nargs, size_t fixed,
                              const dray__vm_prog **p, dray__geom *g, dray_ndarray **in,
                              const char *fn)
{
    size_t len;
    const void *pb = dray__arg_bytes(args, nargs, 0, &len, fn);
    if (!pb)
        return DRAY_ETYPE;
    dray_status st = dray__vm_check(pb, len, p);
    if (st == DRAY_OK)
        st = get_struct(args, nargs, 1, g, sizeof(*g), fn);
    if (st == DRAY_OK)
        st = check_geom(g);
    if (st == DRAY_OK && nargs - fixed > DRAY__VM_MAX_INSNS)
        st = dray_set_error(DRAY_EINVAL, "%s: %zu inputs", fn, nargs - fixed);
    if (st == DRAY_OK)
        st = get_chunks(args, nargs, fixed, in, fn);
    return st;
}

DRAY_FUNCTION(array_eval)
{
    const dray__vm_prog *p;
    dray__geom g;
    dray_ndarray *in[DRAY__VM_MAX_INSNS], *out;
    dray_status st = nargs < 2 ? dray_set_error(DRAY_EINVAL, "array_eval: %zu args", nargs)
                               : fused_args(args, nargs, 2, &p, &g, in, "array_eval");
    if (st == DRAY_OK && (st = dray__vm_eval(p, &g, in, (int)nargs - 2, &out)) == DRAY_OK)
        *result = dray_value_of_ext(&out->hdr);
    return st;
}

static dray_status check_spec(const dray__red_spec *rs)
{
    if (rs->op < 0 || rs->op >= DRAY__REDUCE_COUNT || rs->ndim < 0 || rs->ndim > DRAY__MAXD ||
        (rs->ndim < 32 && (rs->axes >> rs->ndim) != 0) || (unsigned)rs->in_dt >= DRAY__DTYPE_COUNT ||
        (unsigned)rs->out_dt >= DRAY__DTYPE_COUNT)
        return dray_set_error(DRAY_EFORMAT, "array reduction: bad spec");
    return DRAY_OK;
}

DRAY_FUNCTION(array_part)
{
    const dray__vm_prog *p;
    dray__geom g;
    dray__red_spec rs;
    dray_ndarray *in[DRAY__VM_MAX_INSNS], *out;
    dray_status st = nargs < 3 ? dray_set_error(DRAY_EINVAL, "array_part: %zu args", nargs)
                               : fused_args(args, nargs, 3, &p, &g, in, "array_part");
    if (st == DRAY_OK)
        st = get_struct(args, nargs, 2, &rs, sizeof(rs), "array_part");
    if (st == DRAY_OK)
        st = check_spec(&rs);
    if (st == DRAY_OK && (st = dray__vm_reduce(p, &g, in, (int)nargs - 3, &rs, &out)) == DRAY_OK)
        *result = dray_value_of_ext(&out->hdr);
    return st;
}

DRAY_FUNCTION(array_comb)
{
    dray__red_spec rs;
    dray__red_meta meta;
    dray_ndarray **parts = NULL, *out;
    dray_status st = nargs < 3 ? dray_set_error(DRAY_EINVAL, "array_comb: %zu args", nargs)
                               : get_struct(args, nargs, 0, &rs, sizeof(rs), "array_comb");
    if (st == DRAY_OK && (st = check_spec(&rs)) == DRAY_OK)
        st = get_struct(args, nargs, 1, &meta, sizeof(meta), "array_comb");
    if (st == DRAY_OK && (meta.ndim < 0 || meta.ndim > DRAY__MAXD))
        st = dray_set_error(DRAY_EFORMAT, "array_comb: bad result ndim");
    for (int d = 0; st == DRAY_OK && d < meta.ndim; d++)
        if (meta.shape[d] < 0)
            st = dray_set_error(DRAY_EFORMAT, "array_comb: bad result shape");
    if (st == DRAY_OK && !(parts = malloc(sizeof(*parts) * nargs)))
        st = dray_set_error(DRAY_ENOMEM, "array_comb");
    if (st == DRAY_OK)
        st = get_chunks(args, nargs, 2, parts, "array_comb");
    if (st == DRAY_OK &&
        (st = dray__red_combine(&rs, parts, (int)nargs - 2, meta.final != 0, meta.count,
                                meta.shape, (int)meta.ndim, &out)) == DRAY_OK)
        *result = dray_value_of_ext(&out->hdr);
    free(parts);
    return st;
}

/* A float64 view of a chunk: the chunk itself, or a converted copy in *tmp. */
static const double *as_f64(const dray_ndarray *a, double **tmp)
{
    *tmp = NULL;
    if (a->dtype == DRAY_FLOAT64)
        return a->data;
    *tmp = malloc(sizeof(double) * (size_t)(a->size ? a->size : 1));
    if (*tmp)
        dray__load_f64(a->dtype, a->data, 0, *tmp, a->size);
    return *tmp;
}

DRAY_FUNCTION(array_matmul)
{
    char s1[160], s2[160];
    dray_ndarray *out = NULL;
    dray_status st = DRAY_OK;
    if (nargs < 2 || nargs % 2)
        return dray_set_error(DRAY_EINVAL, "array_matmul: %zu args (want pairs)", nargs);
    if (openblas_get_num_threads() != 1) /* the caller may have raised it since load time */
        openblas_set_num_threads(1);
    for (size_t k = 0; k < nargs && st == DRAY_OK; k += 2) {
        dray_ndarray *a = dray__arg_nd(args, nargs, k, "array_matmul");
        dray_ndarray *b = a ? dray__arg_nd(args, nargs, k + 1, "array_matmul") : NULL;
        if (!b) {
            st = DRAY_ETYPE;
            break;
        }
        if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[0] ||
            (out && (out->shape[0] != a->shape[0] || out->shape[1] != b->shape[1]))) {
            st = dray_set_error(DRAY_EINVAL, "array_matmul: blocks %s and %s do not align",
                                dray__shape_str(a->ndim, a->shape, s1, sizeof(s1)),
                                dray__shape_str(b->ndim, b->shape, s2, sizeof(s2)));
            break;
        }
        if (!out) {
            int64_t shape[2] = {a->shape[0], b->shape[1]};
            if ((st = dray_ndarray_create(DRAY_FLOAT64, 2, shape, &out)) != DRAY_OK)
                break;
        }
        double *ta, *tb;
        const double *pa = as_f64(a, &ta), *pb = as_f64(b, &tb);
        int m = (int)a->shape[0], n = (int)b->shape[1], kk = (int)a->shape[1];
        if (!pa || !pb)
            st = dray_set_error(DRAY_ENOMEM, "array_matmul conversion");
        else if (m && n && kk)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, kk, 1.0, pa,
                        kk > 0 ? kk : 1, pb, n > 0 ? n : 1, 1.0, out->data, n > 0 ? n : 1);
        free(ta);
        free(tb);
    }
    if (st != DRAY_OK) {
        dray_ndarray_release(out);
        return st;
    }
    *result = dray_value_of_ext(&out->hdr);
    return DRAY_OK;
}

DRAY_FUNCTION(array_addblocks)
{
    char s1[160];
    dray_ndarray *first = dray__arg_nd(args, nargs, 0, "array_addblocks"), *out;
    if (!first)
        return DRAY_ETYPE;
    if (first->dtype != DRAY_FLOAT64)
        return dray_set_error(DRAY_ETYPE, "array_addblocks: %s block",
                              dray_dtype_name(first->dtype));
    dray_status st = dray__nd_create_uninit(DRAY_FLOAT64, first->ndim, first->shape, &out);
    if (st != DRAY_OK)
        return st;
    memcpy(out->data, first->data, sizeof(double) * (size_t)out->size);
    for (size_t k = 1; k < nargs; k++) {
        dray_ndarray *b = dray__arg_nd(args, nargs, k, "array_addblocks");
        if (!b || b->dtype != DRAY_FLOAT64 || b->ndim != out->ndim || b->size != out->size ||
            memcmp(b->shape, out->shape, sizeof(int64_t) * (size_t)out->ndim)) {
            dray_ndarray_release(out);
            return b ? dray_set_error(DRAY_EINVAL, "array_addblocks: block %zu is %s", k,
                                      dray__shape_str(b->ndim, b->shape, s1, sizeof(s1)))
                     : DRAY_ETYPE;
        }
        const double *x = b->data;
        double *y = out->data;
        for (int64_t i = 0; i < out->size; i++)
            y[i] += x[i];
    }
    *result = dray_value_of_ext(&out->hdr);
    return DRAY_OK;
}

DRAY_FUNCTION(array_transpose)
{
    size_t len;
    const int32_t *perm = dray__arg_bytes(args, nargs, 0, &len, "array_transpose");
    dray_ndarray *a = perm ? dray__arg_nd(args, nargs, 1, "array_transpose") : NULL, *out;
    if (!a)
        return DRAY_ETYPE;
    int nd = a->ndim, seen = 0;
    int64_t shape[DRAY__MAXD], istr[DRAY__MAXD], s = 1;
    if (len != sizeof(int32_t) * (size_t)nd)
        return dray_set_error(DRAY_EFORMAT, "array_transpose: permutation of %zu bytes", len);
    for (int d = nd - 1; d >= 0; d--) {
        istr[d] = s;
        s *= a->shape[d];
    }
    int32_t p[DRAY__MAXD];
    memcpy(p, perm, len);
    for (int d = 0; d < nd; d++) {
        if (p[d] < 0 || p[d] >= nd || (seen & (1 << p[d])))
            return dray_set_error(DRAY_EFORMAT, "array_transpose: bad permutation");
        seen |= 1 << p[d];
        shape[d] = a->shape[p[d]];
    }
    dray_status st = dray__nd_create_uninit(a->dtype, nd, shape, &out);
    if (st != DRAY_OK)
        return st;
    size_t es = dray_dtype_size(a->dtype);
    int64_t pos[DRAY__MAXD] = {0};
    for (int64_t o = 0; o < out->size; o++) {
        int64_t src = 0;
        for (int d = 0; d < nd; d++)
            src += pos[d] * istr[p[d]];
        memcpy((char *)out->data + (size_t)o * es, (char *)a->data + (size_t)src * es, es);
        dray__next_index(pos, shape, nd);
    }
    *result = dray_value_of_ext(&out->hdr);
    return DRAY_OK;
}

/* Copies one piece: per axis, `count` elements from in_start by step into out_start. */
static void copy_piece(const dray_ndarray *in, dray_ndarray *out, const int64_t *oshape,
                       const dray__ga_axis *ax, int nd)
{
    size_t es = dray_dtype_size(in->dtype);
    int64_t istr[DRAY__MAXD], ostr[DRAY__MAXD], s = 1, t = 1, pos[DRAY__MAXD] = {0};
    for (int d = nd - 1; d >= 0; d--) {
        istr[d] = s;
        ostr[d] = t;
        s *= in->shape[d];
        t *= oshape[d];
    }
    int64_t count[DRAY__MAXD];
    for (int d = 0; d < nd; d++)
        if ((count[d] = ax[d].count) == 0)
            return;
    for (;;) {
        int64_t si = 0, oi = 0;
        for (int d = 0; d < nd; d++) {
            si += (ax[d].in_start + pos[d] * ax[d].step) * istr[d];
            oi += (ax[d].out_start + pos[d]) * ostr[d];
        }
        memcpy((char *)out->data + (size_t)oi * es, (char *)in->data + (size_t)si * es, es);
        if (!dray__next_index(pos, count, nd))
            return;
    }
}

DRAY_FUNCTION(array_gather)
{
    size_t len;
    const uint8_t *spec = dray__arg_bytes(args, nargs, 0, &len, "array_gather");
    dray__ga_head h;
    if (!spec)
        return DRAY_ETYPE;
    if (len < sizeof(h))
        return dray_set_error(DRAY_EFORMAT, "array_gather: short spec");
    memcpy(&h, spec, sizeof(h));
    int nd = h.in_ndim;
    if (nd < 0 || nd > DRAY__MAXD || h.out_ndim < 0 || h.out_ndim > nd || h.n_pieces < 0 ||
        (size_t)h.n_pieces + 1 != nargs ||
        len != sizeof(h) + (size_t)h.n_pieces * (size_t)nd * sizeof(dray__ga_axis))
        return dray_set_error(DRAY_EFORMAT, "array_gather: bad spec");
    int64_t osize = 1, fsize = 1;
    for (int d = 0; d < nd; d++)
        osize *= h.out_shape[d] >= 0 ? h.out_shape[d] : -1;
    for (int d = 0; d < h.out_ndim; d++)
        fsize *= h.final_shape[d] >= 0 ? h.final_shape[d] : -1;
    if (osize < 0 || fsize != osize)
        return dray_set_error(DRAY_EFORMAT, "array_gather: bad shapes");
    dray_ndarray *out = NULL;
    dray_status st = DRAY_OK;
    for (int p = 0; p < h.n_pieces && st == DRAY_OK; p++) {
        dray_ndarray *in = dray__arg_nd(args, nargs, (size_t)p + 1, "array_gather");
        dray__ga_axis ax[DRAY__MAXD];
        if (!in) {
            st = DRAY_ETYPE;
            break;
        }
        memcpy(ax, spec + sizeof(h) + (size_t)p * nd * sizeof(dray__ga_axis),
               sizeof(dray__ga_axis) * (size_t)nd);
        if (!out && (st = dray_ndarray_create(in->dtype, h.out_ndim, h.final_shape, &out)))
            break;
        bool ok = in->ndim == nd && in->dtype == out->dtype;
        for (int d = 0; ok && d < nd; d++) {
            const dray__ga_axis *a = &ax[d];
            int64_t lastin = a->in_start + (a->count - 1) * a->step;
            ok = a->count >= 0 && a->out_start >= 0 && a->out_start + a->count <= h.out_shape[d] &&
                 (a->count == 0 || (a->in_start >= 0 && a->in_start < in->shape[d] &&
                                    lastin >= 0 && lastin < in->shape[d]));
        }
        if (!ok)
            st = dray_set_error(DRAY_EFORMAT, "array_gather: piece %d does not fit its chunk", p);
        else
            copy_piece(in, out, h.out_shape, ax, nd);
    }
    if (st == DRAY_OK && !out)
        st = dray_set_error(DRAY_EFORMAT, "array_gather: no pieces");
    if (st != DRAY_OK) {
        dray_ndarray_release(out);
        return st;
    }
    *result = dray_value_of_ext(&out->hdr);
    return DRAY_OK;
}

DRAY_FUNCTION(array_reshape)
{
    dray__shape_arg sh;
    dray_status st = get_struct(args, nargs, 0, &sh, sizeof(sh), "array_reshape");
    dray_ndarray *a = st == DRAY_OK ? dray__arg_nd(args, nargs, 1, "array_reshape") : NULL, *out;
    if (!a)
        return st != DRAY_OK ? st : DRAY_ETYPE;
    int64_t size = 1;
    for (int d = 0; d < sh.ndim && sh.ndim <= DRAY__MAXD; d++)
        size *= sh.shape[d] >= 0 ? sh.shape[d] : -1;
    if (sh.ndim < 0 || sh.ndim > DRAY__MAXD || size != a->size)
        return dray_set_error(DRAY_EINVAL, "array_reshape: %lld elements into a bad shape",
                              (long long)a->size);
    if ((st = dray__nd_create_uninit(a->dtype, (int)sh.ndim, sh.shape, &out)) != DRAY_OK)
        return st;
    memcpy(out->data, a->data, (size_t)a->size * dray_dtype_size(a->dtype));
    *result = dray_value_of_ext(&out->hdr);
    return DRAY_OK;
}
