/* dray arrays: chunked N-d arrays in the spirit of dask.array, computed on the core runtime.
 *
 * A dray_array is a lazy, immutable expression: a shape, a dtype and a chunk grid, plus how to make
 * each chunk (a source, an elementwise expression, a reduction, ...). Nothing runs until
 * dray_array_compute / dray_array_write_npy / dray_array_persist, which lower the expression onto a
 * core lazy graph: elementwise trees become ONE task per output chunk evaluating the whole expression
 * in a single pass, and reductions fuse their (elementwise or random) source into the per-chunk
 * partial, then combine partials in a tree of `split_every` fan-in.
 *
 * Random arrays come from a counter-based generator: an element's value depends only on (seed, its
 * flat index in the array), never on the chunking or the number of workers.
 *
 * Thread-safety: arrays are immutable and reference counted (atomically): share them freely between
 * threads. Dense results (dray_ndarray) are immutable once returned.
 * Ownership: calls that build arrays *borrow* their array arguments (taking their own counts) and
 * return an *owned* array released with dray_array_release(). A failed call takes nothing.
 */
#ifndef DRAY_ARRAY_H
#define DRAY_ARRAY_H

#include "dray/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DRAY_ARRAY_MAX_DIMS 8

typedef enum dray_dtype {
    DRAY_BOOL = 0,
    DRAY_INT32,
    DRAY_INT64,
    DRAY_FLOAT32,
    DRAY_FLOAT64,
    DRAY__DTYPE_COUNT
} dray_dtype;

/* dray_dtype_name: "float64", ...; dray_dtype_size: bytes per element. */
DRAY_API const char *dray_dtype_name(dray_dtype t);
DRAY_API size_t dray_dtype_size(dray_dtype t);

/* ==== Dense arrays (computed results, chunk values) ==================================================
 * A dray_ndarray is a contiguous C-order N-d array. It is also the "array.chunk" extension value that
 * chunks travel in between tasks. */
typedef struct dray_ndarray dray_ndarray;

/* dray_ndarray_create: a new zero-filled dense array. On DRAY_OK, *out is owned:
 * dray_ndarray_release(). */
DRAY_API dray_status dray_ndarray_create(dray_dtype dtype, int ndim, const int64_t *shape,
                                         dray_ndarray **out);
/* dray_ndarray_release: drops a count. NULL-safe. */
DRAY_API void dray_ndarray_release(dray_ndarray *a);
/* dray_ndarray_retain: takes a count and returns `a`. */
DRAY_API dray_ndarray *dray_ndarray_retain(dray_ndarray *a);
/* dray_ndarray_dtype / _ndim / _shape / _size / _data / _cdata: queries; pointers are borrowed
 * and live as long as `a`. data is writable only before the array is shared. */
DRAY_API dray_dtype dray_ndarray_dtype(const dray_ndarray *a);
DRAY_API int dray_ndarray_ndim(const dray_ndarray *a);
DRAY_API const int64_t *dray_ndarray_shape(const dray_ndarray *a);
DRAY_API int64_t dray_ndarray_size(const dray_ndarray *a);
DRAY_API void *dray_ndarray_data(dray_ndarray *a);
DRAY_API const void *dray_ndarray_cdata(const dray_ndarray *a);
/* dray_ndarray_get: element i (flat C-order index) converted to double (no bounds check beyond an
 * assert). */
DRAY_API double dray_ndarray_get(const dray_ndarray *a, int64_t i);
/* dray_ndarray_to_value: a value that takes a count on `a` (DRAY_T_EXT "array.chunk"). */
DRAY_API dray_value dray_ndarray_to_value(dray_ndarray *a);
/* dray_ndarray_from_value: the ndarray inside *v (borrowed), or NULL when v is not one. */
DRAY_API dray_ndarray *dray_ndarray_from_value(const dray_value *v);

/* ==== Lazy arrays: life cycle and queries ==========================================================*/
typedef struct dray_array dray_array;

/* dray_array_retain / dray_array_release: counts on an array. Release is NULL-safe. */
DRAY_API dray_array *dray_array_retain(dray_array *a);
DRAY_API void dray_array_release(dray_array *a);

/* dray_array_dtype / dray_array_ndim / dray_array_size: element type, number of axes, number of
 * elements. */
DRAY_API dray_dtype dray_array_dtype(const dray_array *a);
DRAY_API int dray_array_ndim(const dray_array *a);
DRAY_API int64_t dray_array_size(const dray_array *a);
/* dray_array_shape: borrowed, ndim entries, valid while `a` is. */
DRAY_API const int64_t *dray_array_shape(const dray_array *a);
/* dray_array_numchunks: how many chunks along `axis`; dray_array_chunk_sizes: their sizes
 * (borrowed, numchunks entries). */
DRAY_API int64_t dray_array_numchunks(const dray_array *a, int axis);
DRAY_API const int64_t *dray_array_chunk_sizes(const dray_array *a, int axis);

/* ==== Creation ======================================================================================
 * All creators return an owned array (dray_array_release). `chunks` gives a regular chunk size per axis (ndim entries; 0 or NULL = the whole axis); the last
 * chunk of an axis may be smaller. Sizes must be positive (bad chunking is DRAY_EINVAL naming the
 * axis). A 0-length axis has one empty chunk. */
/* dray_array_zeros / dray_array_ones / dray_array_full: constant arrays (generated inside the
 * tasks that use them; no memory until computed). Borrow shape and chunks. */
DRAY_API dray_status dray_array_zeros(dray_dtype dtype, int ndim, const int64_t *shape,
                                      const int64_t *chunks, dray_array **out);
DRAY_API dray_status dray_array_ones(dray_dtype dtype, int ndim, const int64_t *shape,
                                     const int64_t *chunks, dray_array **out);
DRAY_API dray_status dray_array_full(dray_dtype dtype, int ndim, const int64_t *shape,
                                     const int64_t *chunks, double value, dray_array **out);
/* dray_array_arange: 1-D [start, stop) by step (float64 unless `dtype` is an integer type). */
DRAY_API dray_status dray_array_arange(dray_dtype dtype, double start, double stop, double step,
                                       int64_t chunk, dray_array **out);
/* dray_array_linspace: 1-D float64, `num` values from start to stop (included when endpoint). */
DRAY_API dray_status dray_array_linspace(double start, double stop, int64_t num, bool endpoint,
                                         int64_t chunk, dray_array **out);
/* dray_array_from_buffer: copies `data` (C order, dtype elements) into chunks. Borrows data. */
DRAY_API dray_status dray_array_from_buffer(dray_dtype dtype, int ndim, const int64_t *shape,
                                            const int64_t *chunks, const void *data,
                                            dray_array **out);
/* dray_array_from_ndarray: the same from a dense array (borrowed). */
DRAY_API dray_status dray_array_from_ndarray(const dray_ndarray *a, const int64_t *chunks,
                                             dray_array **out);

/* ---- Random (counter-based; see docs/array.md for the generator) ---- */
/* dray_array_random_uniform: float64 in [low, high). */
DRAY_API dray_status dray_array_random_uniform(uint64_t seed, int ndim, const int64_t *shape,
                                               const int64_t *chunks, double low, double high,
                                               dray_array **out);
/* dray_array_random_normal: float64 (Box-Muller on two independent streams). */
DRAY_API dray_status dray_array_random_normal(uint64_t seed, int ndim, const int64_t *shape,
                                              const int64_t *chunks, double mean, double stddev,
                                              dray_array **out);
/* dray_array_random_integers: int64 in [low, high); high > low. */
DRAY_API dray_status dray_array_random_integers(uint64_t seed, int ndim, const int64_t *shape,
                                                const int64_t *chunks, int64_t low, int64_t high,
                                                dray_array **out);
/* dray_random_uniform_at / dray_random_bits_at: the generator itself, for element `index` of a
 * uniform [0,1) array with `seed` (what dray_array_random_uniform(seed, ...) holds at that flat
 * index with low=0, high=1), and the 64 raw bits behind it. */
DRAY_API double dray_random_uniform_at(uint64_t seed, uint64_t index);
DRAY_API uint64_t dray_random_bits_at(uint64_t seed, uint64_t index);
/* dray_random_uniform_fill: out[i] = dray_random_uniform_at(seed, first + i), vectorised. */
DRAY_API void dray_random_uniform_fill(uint64_t seed, uint64_t first, double *out, size_t n);
/* dray_random_uniform_accumulate: acc[i] += dray_random_uniform_at(seed, first + i) (the fused
 * generate-and-sum loop the benchmark's bound uses). */
DRAY_API void dray_random_uniform_accumulate(uint64_t seed, uint64_t first, double *acc, size_t n);
/* dray_random_uniform_colsum: acc[j] += sum over r < nrows of dray_random_uniform_at(seed,
 * first + r * stride + j) for j < ncols: the column sums of a row-major block of a uniform array
 * (fused generate-and-reduce, the seed example's inner loop); acc borrowed, ncols doubles. */
DRAY_API void dray_random_uniform_colsum(uint64_t seed, uint64_t first, uint64_t stride,
                                         size_t nrows, size_t ncols, double *acc);

/* ==== Elementwise (NumPy broadcasting and type promotion) ==========================================*/
typedef enum dray_binop {
    DRAY_ADD = 0, DRAY_SUB, DRAY_MUL, DRAY_DIV, DRAY_POW,
    DRAY_LT, DRAY_LE, DRAY_GT, DRAY_GE, DRAY_EQ, DRAY_NE,
    DRAY_MINIMUM, DRAY_MAXIMUM, /* elementwise minimum / maximum */
    DRAY__BINOP_COUNT
} dray_binop;

typedef enum dray_unop {
    DRAY_NEG = 0, DRAY_ABS, DRAY_SQRT, DRAY_EXP, DRAY_LOG, DRAY_SIN, DRAY_COS, DRAY_NOT,
    DRAY__UNOP_COUNT
} dray_unop;

/* dray_array_binary: a `op` b. Shapes must broadcast (else DRAY_EINVAL naming both shapes). */
DRAY_API dray_status dray_array_binary(dray_binop op, dray_array *a, dray_array *b,
                                       dray_array **out);
/* dray_array_binary_scalar: a `op` s (or s `op` a when scalar_first). An integral `s` acts like a
 * Python int, otherwise like a Python float (NumPy's value-based casting). */
DRAY_API dray_status dray_array_binary_scalar(dray_binop op, dray_array *a, double s,
                                              bool scalar_first, dray_array **out);
/* dray_array_unary: op(a); sqrt/exp/log/sin/cos of integers give float64, NOT needs bool. */
DRAY_API dray_status dray_array_unary(dray_unop op, dray_array *a, dray_array **out);
/* dray_array_where: cond ? a : b, broadcast together. */
DRAY_API dray_status dray_array_where(dray_array *cond, dray_array *a, dray_array *b,
                                      dray_array **out);
/* dray_array_astype: converted to `dtype` (C casts; float to int truncates). */
DRAY_API dray_status dray_array_astype(dray_array *a, dray_dtype dtype, dray_array **out);

/* ==== Reductions ====================================================================================
 * `axes`: n_axes axis numbers (negative counts from the end); n_axes 0 means all axes. Tree reduction
 * with fan-in `split_every` (0 = default 8). Result dtypes follow NumPy (sum of ints: int64; mean,
 * var, std of ints: float64; argmin/argmax: int64; any/all: bool). */
typedef enum dray_reduce_op {
    DRAY_SUM = 0, DRAY_MEAN, DRAY_VAR, DRAY_STD, DRAY_MIN, DRAY_MAX, DRAY_ARGMIN, DRAY_ARGMAX,
    DRAY_ANY, DRAY_ALL, DRAY__REDUCE_COUNT
} dray_reduce_op;

typedef struct dray_reduce_opts {
    bool keepdims;
    int ddof;        /* var/std */
    int split_every; /* 0: default */
} dray_reduce_opts;

/* dray_array_reduce: op over `axes` (borrowed). argmin/argmax take one axis or all (flat index).
 * opts may be NULL. */
DRAY_API dray_status dray_array_reduce(dray_reduce_op op, dray_array *a, const int *axes,
                                       int n_axes, const dray_reduce_opts *opts,
                                       dray_array **out);

/* ==== Linear algebra and structure =================================================================*/
/* dray_array_matmul: 2-D a @ b through cblas_dgemm per block pair, tree-summed (float64 result). */
DRAY_API dray_status dray_array_matmul(dray_array *a, dray_array *b, dray_array **out);
/* dray_array_dot: NumPy's dot for 1-D and 2-D: vector . vector is a fused multiply-and-sum (0-d),
 * matrix . vector and vector . matrix fused broadcasts and sums, matrix . matrix is matmul. */
DRAY_API dray_status dray_array_dot(dray_array *a, dray_array *b, dray_array **out);
/* dray_array_transpose: axes permuted by `perm` (NULL: reversed). */
DRAY_API dray_status dray_array_transpose(dray_array *a, const int *perm, dray_array **out);

/* A basic index per axis: a slice start:stop:step (NumPy semantics for negative and out-of-range
 * values; DRAY_SLICE_NONE = omitted) or, with is_index, one integer that drops the axis. */
#define DRAY_SLICE_NONE INT64_MIN
typedef struct dray_slice {
    int64_t start, stop, step;
    bool is_index;
} dray_slice;
/* dray_array_slice: n_slices <= ndim entries; missing trailing axes are taken whole. */
DRAY_API dray_status dray_array_slice(dray_array *a, const dray_slice *slices, int n_slices,
                                      dray_array **out);
/* dray_array_concatenate / dray_array_stack: along `axis` (borrowed arrays, same dtype after
 * promotion, matching shapes elsewhere). */
DRAY_API dray_status dray_array_concatenate(dray_array *const *arrays, int n, int axis,
                                            dray_array **out);
DRAY_API dray_status dray_array_stack(dray_array *const *arrays, int n, int axis,
                                      dray_array **out);
/* dray_array_rechunk: the same values on a new regular grid (a graph step, nothing gathered). */
DRAY_API dray_status dray_array_rechunk(dray_array *a, const int64_t *chunks, dray_array **out);
/* dray_array_rechunk_explicit: explicit chunk sizes for every axis (sizes[axis][0..counts[axis])). */
DRAY_API dray_status dray_array_rechunk_explicit(dray_array *a, const int64_t *const *sizes,
                                                 const int64_t *counts, dray_array **out);
/* dray_array_reshape: new shape (one entry may be -1), any chunking. Axes fall into groups that
 * merge or split; within a group only the first non-1 axis stays split, on boundaries that hold
 * whole output rows, and the input is rechunked to that grid when needed (as Dask does). Each
 * output chunk is then one input chunk with the same C-order data. */
DRAY_API dray_status dray_array_reshape(dray_array *a, int ndim, const int64_t *shape,
                                        dray_array **out);

/* ==== Computing =====================================================================================*/
/* dray_array_compute: runs the graph on `rt` and gathers the dense result. On DRAY_OK, *out is owned
 * (dray_ndarray_release). Task failures return their status with the cause in dray_last_error(). */
DRAY_API dray_status dray_array_compute(dray_runtime *rt, dray_array *a, dray_ndarray **out);
/* dray_array_persist: computes every chunk into the object store and returns an array made of those
 * refs (later graphs reuse them without recomputing). Returns once every chunk is computed; a failed
 * chunk fails the call with its cause. */
DRAY_API dray_status dray_array_persist(dray_runtime *rt, dray_array *a, dray_array **out);
/* dray_array_write_npy: computes `a` and writes it to `path` as .npy, streaming one row of chunks
 * at a time. */
DRAY_API dray_status dray_array_write_npy(dray_runtime *rt, dray_array *a, const char *path);
/* dray_array_read_npy: a lazy array over a .npy file (C or Fortran order, little-endian <f8 <f4 <i8
 * <i4 |b1); chunks read through mmap when computed. Malformed headers are DRAY_EFORMAT naming the
 * file and what is wrong. */
DRAY_API dray_status dray_array_read_npy(const char *path, const int64_t *chunks, dray_array **out);
/* dray_ndarray_write_npy / dray_ndarray_read_npy: dense arrays to and from .npy. */
DRAY_API dray_status dray_ndarray_write_npy(const dray_ndarray *a, const char *path);
DRAY_API dray_status dray_ndarray_read_npy(const char *path, dray_ndarray **out);

/* dray_npy_parse_header: parses a .npy header from buf[0..len) (untrusted). On DRAY_OK, fills dtype,
 * ndim, shape (up to DRAY_ARRAY_MAX_DIMS), fortran order and the data offset. */
DRAY_API dray_status dray_npy_parse_header(const void *buf, size_t len, dray_dtype *dtype,
                                           int *ndim, int64_t *shape, bool *fortran,
                                           size_t *data_offset);

/* dray_array_compute_stats: dray_array_compute that also reports how many tasks the array level
 * put in the graph (*tasks, before the core's own fusion of linear chains), which shows the
 * array-level fusion at work: the seed example is 100 fused partials plus its tree. */
DRAY_API dray_status dray_array_compute_stats(dray_runtime *rt, dray_array *a, dray_ndarray **out,
                                              size_t *tasks);

#ifdef __cplusplus
}
#endif
#endif /* DRAY_ARRAY_H */
