/* Internals of the array module shared by its files: the dense chunk object, the lazy expression
 * nodes, the fused-evaluation program (VM) and the chunk tasks. Nothing here is public API. */
#ifndef DRAY_ARRAY_INTERNAL_H
#define DRAY_ARRAY_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "dray/array.h"

#define DRAY__MAXD DRAY_ARRAY_MAX_DIMS

/* Hot loops: vectorised at -O3 with an AVX2 clone picked at load time. */
#if defined(__x86_64__) && !defined(__clang__) && !defined(DRAY_SANITIZED)
#define DRAY__HOT __attribute__((target_clones("avx2", "default"), optimize("O3")))
#else
#define DRAY__HOT
#endif

/* ==== Dense chunks ("array.chunk" extension values) ==== */
struct dray_ndarray {
    dray_ext_obj hdr;
    dray_dtype dtype;
    int ndim;
    int64_t shape[DRAY__MAXD];
    int64_t size;
    void *data;
    size_t mapped; /* bytes mapped for data (big chunks), 0 when malloc'd */
};

/* dray__nd_create_uninit: like dray_ndarray_create without zeroing. */
dray_status dray__nd_create_uninit(dray_dtype dtype, int ndim, const int64_t *shape,
                                   dray_ndarray **out);
/* dray__shape_str: "(3, 4)" into buf. Returns buf. */
const char *dray__shape_str(int ndim, const int64_t *shape, char *buf, size_t size);
/* dray__arg_nd: the ndarray of task argument i, or NULL with an error set naming `fn`. */
dray_ndarray *dray__arg_nd(const dray_value *args, size_t nargs, size_t i, const char *fn);
/* dray__arg_bytes: the bytes of task argument i, or NULL with an error set. */
const void *dray__arg_bytes(const dray_value *args, size_t nargs, size_t i, size_t *len,
                            const char *fn);
/* dray__load_f64 / dray__store_f64: convert n elements between a dtype buffer and doubles. */
void dray__load_f64(dray_dtype t, const void *src, int64_t off, double *dst, int64_t n);
void dray__load_i64(dray_dtype t, const void *src, int64_t off, int64_t *dst, int64_t n);
static inline int dray__is_float(dray_dtype t) { return t == DRAY_FLOAT32 || t == DRAY_FLOAT64; }

/* dray__next_index: steps multi-index idx (C order) within extents n[0..nd); false after the last. */
static inline bool dray__next_index(int64_t *idx, const int64_t *n, int nd)
{
    for (int d = nd - 1; d >= 0; d--) {
        if (++idx[d] < n[d])
            return true;
        idx[d] = 0;
    }
    return false;
}

/* dray__copy_block: copies a block of `shape` from src at soff to dst at doff (same dtype and
 * ndim, C order, bounds checked by the callers). */
void dray__copy_block(dray_ndarray *dst, const int64_t *doff, const dray_ndarray *src,
                      const int64_t *soff, const int64_t *shape);

/* ==== Random generator (rng.c) ==== */
typedef struct dray__rng_key {
    uint64_t rk[6][2]; /* ARS-5 round keys */
    int impl;          /* 2: VAES, 1: AES-NI, 0: portable */
} dray__rng_key;
void dray__rng_key_init(dray__rng_key *k, uint64_t seed, uint32_t stream);
/* Raw 52-bit uniform in [0,1) at flat index i. */
double dray__rng_uniform(const dray__rng_key *k, uint64_t i);
uint64_t dray__rng_bits(const dray__rng_key *k, uint64_t i);
void dray__rng_uniform_fill(const dray__rng_key *k, uint64_t first, double *out, int64_t n);
void dray__rng_uniform_add(const dray__rng_key *k, uint64_t first, double *acc, int64_t n);
/* dray__rng_uniform_colsum: acc[j] += sum over r < nrows of u(first + r * stride + j), j < ncols.
 * Each column's 52-bit integers (u = m * 2^-52) add up exactly, rounded once per batch of 4096
 * rows; an odd stride sums the even rows, then the odd ones. The same bits on every path. */
void dray__rng_uniform_colsum(const dray__rng_key *k, uint64_t first, uint64_t stride,
                              int64_t nrows, int64_t ncols, double *acc);
/* dray__rng_best_impl: the fastest path this CPU has (2: VAES, 1: AES-NI, 0: portable); tests set
 * a key's impl lower to compare the paths. */
int dray__rng_best_impl(void);
/* dray__rng_soft_block: the portable path's 128-bit block (tests compare it with AES-NI's). */
void dray__rng_soft_block(const dray__rng_key *k, uint64_t block, uint64_t out[2]);
/* dray__ars_soft: ARS-`rounds` of counter ctr under the raw key (64-bit words, low first), the
 * portable way (tests check it against Random123's published known answers). */
void dray__ars_soft(const uint64_t ctr[2], const uint64_t key[2], int rounds, uint64_t out[2]);
/* dray__aes_round: one AES encryption round (AESENC, or AESENCLAST when !mix), in place. */
void dray__aes_round(uint8_t s[16], const uint8_t rk[16], bool mix);

/* ==== Lazy expression nodes ==== */
enum dray__kind {
    DRAY__K_CONST = 0, /* full */
    DRAY__K_LINEAR,    /* arange / linspace: start + step * i along its one axis */
    DRAY__K_RANDOM,
    DRAY__K_CHUNKS,    /* materialised chunk values (ndarray or ref) */
    DRAY__K_NPY,
    DRAY__K_UNARY,
    DRAY__K_BINARY,
    DRAY__K_WHERE,
    DRAY__K_CAST,
    DRAY__K_REDUCE,
    DRAY__K_MATMUL,
    DRAY__K_TRANSPOSE,
    DRAY__K_GATHER,    /* slicing and rechunking */
    DRAY__K_CONCAT,
    DRAY__K_RESHAPE,
};

enum dray__rand_kind { DRAY__R_UNIFORM = 0, DRAY__R_NORMAL, DRAY__R_INTEGERS };

struct dray_array {
    _Atomic uint32_t refs;
    int kind;
    dray_dtype dtype;
    int ndim;
    int64_t shape[DRAY__MAXD];
    int64_t nch[DRAY__MAXD];   /* chunks per axis */
    int64_t *coff[DRAY__MAXD]; /* chunk offsets per axis: nch+1 entries */
    dray_array *in[3];
    int n_in;
    dray_array **ins; /* concat inputs (n_ins) */
    int n_ins;
    union {
        struct { double value; } cst;
        struct { double start, step, last; int axis; bool fix_last; } lin;
        struct { int kind; uint64_t seed; double p1, p2; int64_t i1, i2; } rnd;
        struct { int op; } un;
        struct { int op; } bin;
        struct { int op; uint32_t axes; bool keepdims; int ddof, split; dray_dtype in_dt; } red;
        struct { int perm[DRAY__MAXD]; } tr;
        struct { int64_t start[DRAY__MAXD], step[DRAY__MAXD]; uint32_t dropped; } ga;
        struct { int axis; } cat;
        struct { char *path; size_t offset; bool fortran; } npy;
    } p;
    dray_value *chunks; /* K_CHUNKS: one value per chunk, C order over the grid */
};

/* dray__array_new: a node with shape, dtype and a regular grid from `chunks` (NULL entries or 0 =
 * whole axis); validates shape/chunks, naming the bad axis. */
dray_status dray__array_new(int kind, dray_dtype dtype, int ndim, const int64_t *shape,
                            const int64_t *chunks, dray_array **out);
/* dray__array_set_grid: replaces the grid along `axis` with explicit sizes. */
dray_status dray__array_set_grid(dray_array *a, int axis, const int64_t *sizes, int64_t n);
/* dray__array_copy_grid: copies b's grid on axis bax to a's axis aax. */
dray_status dray__array_copy_grid(dray_array *a, int aax, const dray_array *b, int bax);
int64_t dray__array_nchunks(const dray_array *a);
/* dray__chunk_shape: chunk `idx` (multi-index) shape and offset. */
void dray__chunk_geom(const dray_array *a, const int64_t *idx, int64_t *shape, int64_t *off);
/* dray__promote: NumPy's result type of two array dtypes (int32 + float32 is float64). */
dray_dtype dray__promote(dray_dtype a, dray_dtype b);
/* dray__is_fusable: elementwise or generator nodes, evaluated inside their consumer. */
bool dray__is_fusable(const dray_array *a);
/* dray__same_grid: a's axis ax grid equals b's axis bx grid. */
bool dray__same_grid(const dray_array *a, int ax, const dray_array *b, int bx);
/* dray__conform: `a` on `ref`'s grid (right-aligned) on every axis where a's size is not 1: a itself
 * when it already is, a re-gridded copy for generators, else a rechunk. Returns a new count. */
dray_status dray__conform(dray_array *a, const dray_array *ref, dray_array **out);

/* ==== Fused evaluation program (vm.c) ====
 * A program is a flat list of instructions, each writing one register tile from earlier ones. It is
 * shipped to tasks as bytes and checked fully before use. */
enum dray__vm_op {
    DRAY__VM_INPUT = 0, /* chunk argument `slot` */
    DRAY__VM_CONST,
    DRAY__VM_LINEAR,
    DRAY__VM_RANDOM,
    DRAY__VM_UNARY,
    DRAY__VM_BINARY,
    DRAY__VM_WHERE,
    DRAY__VM_CAST,
    DRAY__VM_OP_COUNT
};

typedef struct dray__vm_insn {
    uint8_t op, dtype, sub, axis; /* sub: unop/binop/random kind; axis: LINEAR's axis */
    int16_t a, b, c, slot;
    double f1, f2, f3;
    int64_t i1, i2;
    uint64_t seed;
    int64_t lshape[DRAY__MAXD]; /* RANDOM: the generator's own (normalised) shape */
} dray__vm_insn;

#define DRAY__VM_MAX_INSNS 48

typedef struct dray__vm_prog {
    uint32_t magic, n_insns;
    int32_t ndim, n_slots;
    int64_t gshape[DRAY__MAXD]; /* the output array's full shape */
    dray__vm_insn insns[];
} dray__vm_prog;

/* dray__vm_check: validates an untrusted program of `len` bytes. */
dray_status dray__vm_check(const void *buf, size_t len, const dray__vm_prog **out);

/* Chunk geometry passed to fused tasks: the output chunk's offset and shape. */
typedef struct dray__geom {
    int64_t off[DRAY__MAXD];
    int64_t shape[DRAY__MAXD];
} dray__geom;

/* Reduction spec shipped to partial/combine/final tasks. */
typedef struct dray__red_spec {
    int32_t op, ndim;       /* ndim of the reduced input */
    uint32_t axes;          /* reduced axes mask */
    int32_t ddof, keepdims;
    int32_t in_dt, out_dt;  /* dtypes */
    int64_t gshape[DRAY__MAXD]; /* the input's full shape */
} dray__red_spec;

/* dray__vm_eval: evaluates program over geometry `g` with input chunks, into a new chunk. */
dray_status dray__vm_eval(const dray__vm_prog *p, const dray__geom *g, dray_ndarray *const *inputs,
                          int n_inputs, dray_ndarray **out);
/* dray__vm_reduce: evaluates the program and reduces it to a partial (see red.c). */
dray_status dray__vm_reduce(const dray__vm_prog *p, const dray__geom *g,
                            dray_ndarray *const *inputs, int n_inputs, const dray__red_spec *rs,
                            dray_ndarray **out);
/* dray__red_acc_kind: 1 when the op accumulates in int64 for this input dtype, else 0 (double). */
int dray__red_int_acc(int op, dray_dtype in_dt);
int dray__red_fields(int op);
/* dray__red_combine: combines partials; with `final`, finishes them into the result chunk of shape
 * oshape (count: elements reduced into each result, for mean). */
dray_status dray__red_combine(const dray__red_spec *rs, dray_ndarray *const *parts, int n,
                              bool final, int64_t count, const int64_t *oshape, int ondim,
                              dray_ndarray **out);

/* ==== Lowering (lower.c) ==== */
typedef struct dray__lower dray__lower;
dray_status dray__lower_create(dray_runtime *rt, dray__lower **out);
void dray__lower_destroy(dray__lower *L);
/* dray__lower_root: per-chunk values of `a` (graph nodes or chunk values/refs), owned by L. */
dray_status dray__lower_root(dray__lower *L, const dray_array *a, const dray_value **out);
dray_graph *dray__lower_graph(dray__lower *L);

/* Gather spec shared by lower.c and tasks.c. */
typedef struct dray__ga_head {
    int32_t in_ndim, out_ndim, n_pieces, pad;
    int64_t out_shape[DRAY__MAXD];
    int64_t final_shape[DRAY__MAXD];
} dray__ga_head;
typedef struct dray__ga_axis {
    int64_t in_start, step, count, out_start;
} dray__ga_axis;
typedef struct dray__red_meta {
    int64_t final, count, ndim, shape[DRAY__MAXD];
} dray__red_meta;
typedef struct dray__shape_arg {
    int64_t ndim, shape[DRAY__MAXD];
} dray__shape_arg;

/* ==== npy (npy.c) ==== */
/* dray__npy_chunk_args: the two arguments (path, meta) of an array_npy_read task. */
dray_status dray__npy_chunk_args(const dray_array *a, const int64_t *off, const int64_t *shape,
                                 dray_value *args);
dray_status dray__write_all(int fd, const void *data, size_t len, const char *path);
dray_status dray__npy_header(dray_dtype dtype, int ndim, const int64_t *shape, char *buf,
                             size_t size, size_t *len);

#endif /* DRAY_ARRAY_INTERNAL_H */
