/* Dense N-d arrays: the "array.chunk" extension value that chunks travel in between tasks and the
 * dense result of a compute, with its wire encoding and dtype conversion helpers. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include "internal.h"

#define BIG_CHUNK (1u << 20)

static const char *const dtype_names[] = {"bool", "int32", "int64", "float32", "float64"};
static const size_t dtype_sizes[] = {1, 4, 8, 4, 8};

const char *dray_dtype_name(dray_dtype t)
{
    return (unsigned)t < DRAY__DTYPE_COUNT ? dtype_names[t] : "?";
}

size_t dray_dtype_size(dray_dtype t)
{
    return (unsigned)t < DRAY__DTYPE_COUNT ? dtype_sizes[t] : 0;
}

const char *dray__shape_str(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < ndim && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (n < size)
        snprintf(buf + n, size - n, ndim == 1 ? ",)" : ")");
    return buf;
}

static void nd_destroy(dray_ext_obj *obj)
{
    dray_ndarray *a = (dray_ndarray *)obj;
    if (a->mapped)
        munmap(a->data, a->mapped);
    else
        free(a->data);
    free(a);
}

/* Wire format: u32 dtype, u32 ndim, ndim x i64 shape, then the raw little-endian data. */
static dray_status nd_encode(const dray_ext_obj *obj,
                             dray_status (*write)(void *buf, const void *data, size_t len),
                             void *buf)
{
    const dray_ndarray *a = (const dray_ndarray *)obj;
    uint32_t hdr[2] = {(uint32_t)a->dtype, (uint32_t)a->ndim};
    dray_status st = write(buf, hdr, sizeof(hdr));
    if (st == DRAY_OK && a->ndim)
        st = write(buf, a->shape, sizeof(int64_t) * (size_t)a->ndim);
    if (st == DRAY_OK && a->size)
        st = write(buf, a->data, (size_t)a->size * dray_dtype_size(a->dtype));
    return st;
}

static dray_status nd_decode(const void *data, size_t len, dray_ext_obj **out)
{
    const uint8_t *p = data;
    uint32_t hdr[2];
    int64_t shape[DRAY__MAXD];
    if (len < sizeof(hdr))
        return dray_set_error(DRAY_EFORMAT, "array.chunk: %zu bytes, too short for a header", len);
    memcpy(hdr, p, sizeof(hdr));
    if (hdr[0] >= DRAY__DTYPE_COUNT || hdr[1] > DRAY__MAXD)
        return dray_set_error(DRAY_EFORMAT, "array.chunk: bad dtype %u or ndim %u", hdr[0], hdr[1]);
    size_t need = sizeof(hdr) + sizeof(int64_t) * hdr[1];
    if (len < need)
        return dray_set_error(DRAY_EFORMAT, "array.chunk: truncated shape");
    memcpy(shape, p + sizeof(hdr), sizeof(int64_t) * hdr[1]);
    /* check the data length against the shape before allocating anything */
    uint64_t elems = 1;
    for (uint32_t d = 0; d < hdr[1]; d++) {
        if (shape[d] < 0 || (shape[d] && elems > (uint64_t)(len - need) / (uint64_t)shape[d]))
            return dray_set_error(DRAY_EFORMAT, "array.chunk: shape does not match %zu data bytes",
                                  len - need);
        elems *= (uint64_t)shape[d];
    }
    if (elems * dtype_sizes[hdr[0]] != len - need)
        return dray_set_error(DRAY_EFORMAT, "array.chunk: %zu data bytes, want %llu", len - need,
                              (unsigned long long)(elems * dtype_sizes[hdr[0]]));
    dray_ndarray *a;
    dray_status st = dray__nd_create_uninit((dray_dtype)hdr[0], (int)hdr[1], shape, &a);
    if (st != DRAY_OK)
        return st;
    size_t bytes = (size_t)a->size * dray_dtype_size(a->dtype);
    if (len - need != bytes) {
        dray_ndarray_release(a);
        return dray_set_error(DRAY_EFORMAT, "array.chunk: %zu data bytes, want %zu", len - need,
                              bytes);
    }
    if (bytes)
        memcpy(a->data, p + need, bytes);
    if (a->dtype == DRAY_BOOL)
        for (int64_t i = 0; i < a->size; i++)
            ((uint8_t *)a->data)[i] = ((uint8_t *)a->data)[i] != 0;
    *out = &a->hdr;
    return DRAY_OK;
}

static dray_ext_type nd_type = {"array.chunk", nd_destroy, nd_encode, nd_decode, NULL};
DRAY_EXT_TYPE(nd_type)

dray_status dray__nd_create_uninit(dray_dtype dtype, int ndim, const int64_t *shape,
                                   dray_ndarray **out)
{
    char sb[160];
    if ((unsigned)dtype >= DRAY__DTYPE_COUNT)
        return dray_set_error(DRAY_ETYPE, "unknown dtype %d", (int)dtype);
    if (ndim < 0 || ndim > DRAY__MAXD)
        return dray_set_error(DRAY_EINVAL, "ndim %d outside 0..%d", ndim, DRAY__MAXD);
    int64_t size = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] && size > INT64_MAX / 16 / shape[d]))
            return dray_set_error(DRAY_EINVAL, "bad shape %s",
                                  dray__shape_str(ndim, shape, sb, sizeof(sb)));
        size *= shape[d];
    }
    dray_ndarray *a = calloc(1, sizeof(*a));
    if (!a)
        return dray_set_error(DRAY_ENOMEM, "array of shape %s",
                              dray__shape_str(ndim, shape, sb, sizeof(sb)));
    size_t bytes = (size_t)size * dray_dtype_size(dtype);
    size_t cap = (bytes + 63) & ~(size_t)63;
    if (bytes >= BIG_CHUNK) {
        /* Big chunks are fresh pages anyway (glibc maps them too); populating them in one call
         * saves a page fault per 4 KiB when the task then writes them. */
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                       -1, 0);
        a->data = p == MAP_FAILED ? NULL : p;
        a->mapped = p == MAP_FAILED ? 0 : bytes;
    } else {
        a->data = aligned_alloc(64, cap ? cap : 64);
    }
    if (!a->data) {
        free(a);
        return dray_set_error(DRAY_ENOMEM, "array of shape %s",
                              dray__shape_str(ndim, shape, sb, sizeof(sb)));
    }
    dray_ext_obj_init(&a->hdr, &nd_type);
    a->dtype = dtype;
    a->ndim = ndim;
    if (ndim)
        memcpy(a->shape, shape, sizeof(int64_t) * (size_t)ndim);
    a->size = size;
    *out = a;
    return DRAY_OK;
}

dray_status dray_ndarray_create(dray_dtype dtype, int ndim, const int64_t *shape, dray_ndarray **out)
{
    dray_ndarray *a = NULL;
    dray_status st = dray__nd_create_uninit(dtype, ndim, shape, &a);
    if (st != DRAY_OK)
        return st;
    memset(a->data, 0, (size_t)a->size * dray_dtype_size(dtype));
    *out = a;
    return DRAY_OK;
}

void dray_ndarray_release(dray_ndarray *a)
{
    if (!a)
        return;
    dray_value v = dray_value_of_ext(&a->hdr);
    dray_value_release(&v);
}

dray_ndarray *dray_ndarray_retain(dray_ndarray *a)
{
    dray_value v = dray_value_of_ext(&a->hdr);
    dray_value_retain(&v);
    return a;
}

dray_dtype dray_ndarray_dtype(const dray_ndarray *a) { return a->dtype; }
int dray_ndarray_ndim(const dray_ndarray *a) { return a->ndim; }
const int64_t *dray_ndarray_shape(const dray_ndarray *a) { return a->shape; }
int64_t dray_ndarray_size(const dray_ndarray *a) { return a->size; }
void *dray_ndarray_data(dray_ndarray *a) { return a->data; }
const void *dray_ndarray_cdata(const dray_ndarray *a) { return a->data; }

double dray_ndarray_get(const dray_ndarray *a, int64_t i)
{
    double v;
    dray__load_f64(a->dtype, a->data, i, &v, 1);
    return v;
}

dray_value dray_ndarray_to_value(dray_ndarray *a)
{
    dray_ndarray_retain(a);
    return dray_value_of_ext(&a->hdr);
}

dray_ndarray *dray_ndarray_from_value(const dray_value *v)
{
    if (!v || v->type != DRAY_T_EXT || !v->u.ext || v->u.ext->type != &nd_type)
        return NULL;
    return (dray_ndarray *)v->u.ext;
}

dray_ndarray *dray__arg_nd(const dray_value *args, size_t nargs, size_t i, const char *fn)
{
    dray_ndarray *a = i < nargs ? dray_ndarray_from_value(&args[i]) : NULL;
    if (!a)
        dray_set_error(DRAY_ETYPE, "%s: argument %zu is %s, not an array chunk", fn, i,
                       i < nargs ? dray_type_name((dray_type)args[i].type) : "missing");
    return a;
}

const void *dray__arg_bytes(const dray_value *args, size_t nargs, size_t i, size_t *len,
                            const char *fn)
{
    const void *p = i < nargs ? dray_bytes_data(&args[i], len) : NULL;
    if (!p)
        dray_set_error(DRAY_ETYPE, "%s: argument %zu is not bytes", fn, i);
    return p;
}

void dray__copy_block(dray_ndarray *dst, const int64_t *doff, const dray_ndarray *src,
                      const int64_t *soff, const int64_t *shape)
{
    int nd = dst->ndim;
    size_t es = dray_dtype_size(dst->dtype);
    int64_t dstr[DRAY__MAXD], sstr[DRAY__MAXD], pos[DRAY__MAXD] = {0}, ds = 1, ss = 1;
    for (int d = nd - 1; d >= 0; d--) {
        if (shape[d] == 0)
            return;
        dstr[d] = ds;
        sstr[d] = ss;
        ds *= dst->shape[d];
        ss *= src->shape[d];
    }
    size_t row = (size_t)(nd ? shape[nd - 1] : 1) * es;
    do {
        int64_t di = 0, si = 0;
        for (int d = 0; d < nd; d++) {
            di += (doff[d] + pos[d]) * dstr[d];
            si += (soff[d] + pos[d]) * sstr[d];
        }
        memcpy((char *)dst->data + (size_t)di * es, (const char *)src->data + (size_t)si * es, row);
    } while (nd > 1 && dray__next_index(pos, shape, nd - 1));
}

#define LOAD_LOOP(T)                                                                               \
    do {                                                                                           \
        const T *s_ = (const T *)src + off;                                                        \
        for (int64_t i = 0; i < n; i++)                                                            \
            dst[i] = s_[i];                                                                        \
    } while (0)

void dray__load_f64(dray_dtype t, const void *src, int64_t off, double *dst, int64_t n)
{
    switch (t) {
    case DRAY_BOOL: LOAD_LOOP(uint8_t); break;
    case DRAY_INT32: LOAD_LOOP(int32_t); break;
    case DRAY_INT64: LOAD_LOOP(int64_t); break;
    case DRAY_FLOAT32: LOAD_LOOP(float); break;
    default: memcpy(dst, (const double *)src + off, sizeof(double) * (size_t)n); break;
    }
}

void dray__load_i64(dray_dtype t, const void *src, int64_t off, int64_t *dst, int64_t n)
{
    switch (t) {
    case DRAY_BOOL: LOAD_LOOP(uint8_t); break;
    case DRAY_INT32: LOAD_LOOP(int32_t); break;
    case DRAY_FLOAT32: LOAD_LOOP(float); break;
    case DRAY_FLOAT64: LOAD_LOOP(double); break;
    default: memcpy(dst, (const int64_t *)src + off, sizeof(int64_t) * (size_t)n); break;
    }
}
