/* The fused elementwise evaluator: runs a whole expression program over one output chunk, tile by
 * tile (a run of at most TILE elements along the last axis), so chains of elementwise operations and
 * generators cost one pass and no chunk-sized temporaries. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

#define PROG_MAGIC 0x4d564144u /* "DAVM" */

/* ==== Program checking ==== */

static dray_status bad_prog(const char *what, unsigned k)
{
    return dray_set_error(DRAY_EFORMAT, "array program: %s (instruction %u)", what, k);
}

dray_status dray__vm_check(const void *buf, size_t len, const dray__vm_prog **out)
{
    const dray__vm_prog *p = buf;
    if (len < sizeof(*p) || ((uintptr_t)buf & 7))
        return bad_prog("too short or misaligned", 0);
    if (p->magic != PROG_MAGIC || p->n_insns == 0 || p->n_insns > DRAY__VM_MAX_INSNS ||
        p->ndim < 0 || p->ndim > DRAY__MAXD || p->n_slots < 0 || p->n_slots > DRAY__VM_MAX_INSNS)
        return bad_prog("bad header", 0);
    if (len != sizeof(*p) + p->n_insns * sizeof(dray__vm_insn))
        return bad_prog("length does not match the instruction count", 0);
    for (int d = 0; d < p->ndim; d++)
        if (p->gshape[d] < 0)
            return bad_prog("negative shape", 0);
    for (unsigned k = 0; k < p->n_insns; k++) {
        const dray__vm_insn *in = &p->insns[k];
        if (in->op >= DRAY__VM_OP_COUNT || in->dtype >= DRAY__DTYPE_COUNT)
            return bad_prog("bad opcode or dtype", k);
        int nops = in->op == DRAY__VM_UNARY || in->op == DRAY__VM_CAST ? 1
                 : in->op == DRAY__VM_BINARY ? 2 : in->op == DRAY__VM_WHERE ? 3 : 0;
        const int16_t ops[3] = {in->a, in->b, in->c};
        for (int o = 0; o < nops; o++)
            if (ops[o] < 0 || ops[o] >= (int)k)
                return bad_prog("operand is not an earlier instruction", k);
        if (in->op == DRAY__VM_INPUT && (in->slot < 0 || in->slot >= p->n_slots))
            return bad_prog("input slot out of range", k);
        if (in->op == DRAY__VM_UNARY && in->sub >= DRAY__UNOP_COUNT)
            return bad_prog("bad unary op", k);
        if (in->op == DRAY__VM_BINARY && in->sub >= DRAY__BINOP_COUNT)
            return bad_prog("bad binary op", k);
        if (in->op == DRAY__VM_RANDOM && in->sub > DRAY__R_INTEGERS)
            return bad_prog("bad random kind", k);
        if (in->op == DRAY__VM_LINEAR && in->axis >= p->ndim)
            return bad_prog("bad axis", k);
        if (in->op == DRAY__VM_RANDOM)
            for (int d = 0; d < p->ndim; d++)
                if (in->lshape[d] < 1 || (in->lshape[d] != 1 && in->lshape[d] != p->gshape[d]))
                    return bad_prog("random shape does not broadcast", k);
    }
    *out = p;
    return DRAY_OK;
}

size_t dray__vm_prog_bytes(unsigned n_insns)
{
    return sizeof(dray__vm_prog) + n_insns * sizeof(dray__vm_insn);
}

void dray__vm_prog_init(dray__vm_prog *p, int ndim, const int64_t *gshape)
{
    memset(p, 0, sizeof(*p));
    p->magic = PROG_MAGIC;
    p->ndim = ndim;
    memcpy(p->gshape, gshape, sizeof(int64_t) * (size_t)ndim);
}

/* ==== Evaluation state ==== */

int dray__vm_phys(dray_dtype t) { return dray__is_float(t) ? 0 : 1; }

dray_status dray__vm_start(dray__vm_run *r, const dray__vm_prog *p, const dray__geom *g,
                           dray_ndarray *const *inputs, int n_inputs)
{
    char s1[160], s2[160];
    memset(r, 0, sizeof(*r));
    r->p = p;
    r->g = g;
    r->nd = p->ndim;
    if (n_inputs != p->n_slots)
        return dray_set_error(DRAY_EINVAL, "array program: %d input chunks, want %d", n_inputs,
                              p->n_slots);
    r->inputs = inputs;
    for (int d = 0; d < r->nd; d++)
        if (g->shape[d] < 0 || g->off[d] < 0 || g->off[d] + g->shape[d] > p->gshape[d])
            return dray_set_error(DRAY_EINVAL, "array program: chunk %s outside the array %s",
                                  dray__shape_str(r->nd, g->shape, s1, sizeof(s1)),
                                  dray__shape_str(r->nd, p->gshape, s2, sizeof(s2)));
    /* Input strides, right-aligned, 0 along broadcast axes. */
    for (int s = 0; s < n_inputs; s++) {
        const dray_ndarray *in = inputs[s];
        int shift = r->nd - in->ndim;
        int64_t st = 1;
        if (shift < 0)
            goto bad_input;
        for (int d = r->nd - 1; d >= 0; d--) {
            int id = d - shift;
            if (id < 0) {
                r->istride[s][d] = 0;
                continue;
            }
            if (in->shape[id] == g->shape[d])
                r->istride[s][d] = in->shape[id] == 1 ? 0 : st;
            else if (in->shape[id] == 1)
                r->istride[s][d] = 0;
            else
                goto bad_input;
            st *= in->shape[id];
        }
        continue;
    bad_input:
        return dray_set_error(DRAY_EINVAL, "array program: input chunk %s does not fit chunk %s",
                              dray__shape_str(in->ndim, in->shape, s1, sizeof(s1)),
                              dray__shape_str(r->nd, g->shape, s2, sizeof(s2)));
    }
    for (unsigned k = 0; k < p->n_insns; k++) {
        const dray__vm_insn *in = &p->insns[k];
        if (in->op == DRAY__VM_RANDOM) {
            int64_t st = 1;
            for (int d = r->nd - 1; d >= 0; d--) {
                r->rstride[k][d] = in->lshape[d] == 1 ? 0 : st;
                st *= in->lshape[d];
            }
            dray__rng_key_init(&r->key[k][0], in->seed, 0);
            dray__rng_key_init(&r->key[k][1], in->seed, 1);
        }
    }
    r->regs = aligned_alloc(64, sizeof(dray__vm_reg) * (p->n_insns + 1));
    if (!r->regs)
        return dray_set_error(DRAY_ENOMEM, "array program registers");
    return DRAY_OK;
}

void dray__vm_stop(dray__vm_run *r)
{
    free(r->regs);
    r->regs = NULL;
}

/* ==== Kernels ==== */

DRAY__HOT static void k_affine(double *x, int64_t n, double a, double b)
{
    for (int64_t j = 0; j < n; j++)
        x[j] = a + b * x[j];
}

DRAY__HOT static void k_round32(double *x, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        x[j] = (float)x[j];
}

static void k_wrap32(int64_t *x, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        x[j] = (int32_t)(uint32_t)(uint64_t)x[j];
}

static dray_status ipow(int64_t b, int64_t e, int64_t *out)
{
    if (e < 0)
        return dray_set_error(DRAY_EINVAL, "integers to negative integer powers are not allowed");
    uint64_t r = 1, x = (uint64_t)b;
    while (e) {
        if (e & 1)
            r *= x;
        x *= x;
        e >>= 1;
    }
    *out = (int64_t)r;
    return DRAY_OK;
}

DRAY__HOT static void f_binary(int op, const double *x, const double *y, double *z, int64_t n)
{
    switch (op) {
    case DRAY_ADD: for (int64_t j = 0; j < n; j++) z[j] = x[j] + y[j]; break;
    case DRAY_SUB: for (int64_t j = 0; j < n; j++) z[j] = x[j] - y[j]; break;
    case DRAY_MUL: for (int64_t j = 0; j < n; j++) z[j] = x[j] * y[j]; break;
    case DRAY_DIV: for (int64_t j = 0; j < n; j++) z[j] = x[j] / y[j]; break;
    case DRAY_POW: for (int64_t j = 0; j < n; j++) z[j] = pow(x[j], y[j]); break;
    case DRAY_MINIMUM:
        for (int64_t j = 0; j < n; j++) z[j] = (x[j] <= y[j] || x[j] != x[j]) ? x[j] : y[j];
        break;
    case DRAY_MAXIMUM:
        for (int64_t j = 0; j < n; j++) z[j] = (x[j] >= y[j] || x[j] != x[j]) ? x[j] : y[j];
        break;
    default: break;
    }
}

/* Comparisons for both kinds of register: the same loops over double or int64 operands. */
#define COMPARE_LOOPS(op, x, y, z, n)                                                              \
    switch (op) {                                                                                  \
    case DRAY_LT: for (int64_t j = 0; j < n; j++) z[j] = x[j] < y[j]; break;                       \
    case DRAY_LE: for (int64_t j = 0; j < n; j++) z[j] = x[j] <= y[j]; break;                      \
    case DRAY_GT: for (int64_t j = 0; j < n; j++) z[j] = x[j] > y[j]; break;                       \
    case DRAY_GE: for (int64_t j = 0; j < n; j++) z[j] = x[j] >= y[j]; break;                      \
    case DRAY_EQ: for (int64_t j = 0; j < n; j++) z[j] = x[j] == y[j]; break;                      \
    default: for (int64_t j = 0; j < n; j++) z[j] = x[j] != y[j]; break;                           \
    }

static void f_compare(int op, const double *x, const double *y, int64_t *z, int64_t n)
{
    COMPARE_LOOPS(op, x, y, z, n)
}

static void i_compare(int op, const int64_t *x, const int64_t *y, int64_t *z, int64_t n)
{
    COMPARE_LOOPS(op, x, y, z, n)
}

/* Integer and bool arithmetic wraps like NumPy's (two's complement). */
static dray_status i_binary(int op, dray_dtype t, const int64_t *x, const int64_t *y, int64_t *z,
                            int64_t n)
{
    bool b = t == DRAY_BOOL;
    switch (op) {
    case DRAY_ADD:
        for (int64_t j = 0; j < n; j++)
            z[j] = b ? (x[j] | y[j]) : (int64_t)((uint64_t)x[j] + (uint64_t)y[j]);
        break;
    case DRAY_SUB:
        for (int64_t j = 0; j < n; j++) z[j] = (int64_t)((uint64_t)x[j] - (uint64_t)y[j]);
        break;
    case DRAY_MUL:
        for (int64_t j = 0; j < n; j++)
            z[j] = b ? (x[j] & y[j]) : (int64_t)((uint64_t)x[j] * (uint64_t)y[j]);
        break;
    case DRAY_POW:
        for (int64_t j = 0; j < n; j++)
            if (ipow(x[j], y[j], &z[j]) != DRAY_OK)
                return DRAY_EINVAL;
        break;
    case DRAY_MINIMUM: for (int64_t j = 0; j < n; j++) z[j] = x[j] <= y[j] ? x[j] : y[j]; break;
    case DRAY_MAXIMUM: for (int64_t j = 0; j < n; j++) z[j] = x[j] >= y[j] ? x[j] : y[j]; break;
    default: return dray_set_error(DRAY_ETYPE, "array program: integer op %d", op);
    }
    return DRAY_OK;
}

static void f_unary(int op, bool f32, const double *x, double *z, int64_t n)
{
    switch (op) {
    case DRAY_NEG: for (int64_t j = 0; j < n; j++) z[j] = -x[j]; break;
    case DRAY_ABS: for (int64_t j = 0; j < n; j++) z[j] = fabs(x[j]); break;
    case DRAY_SQRT: for (int64_t j = 0; j < n; j++) z[j] = sqrt(x[j]); break;
#define F_MATH(OP, F, FF)                                                                          \
    case OP:                                                                                       \
        if (f32)                                                                                   \
            for (int64_t j = 0; j < n; j++) z[j] = FF((float)x[j]);                                \
        else                                                                                       \
            for (int64_t j = 0; j < n; j++) z[j] = F(x[j]);                                        \
        break;
    F_MATH(DRAY_EXP, exp, expf)
    F_MATH(DRAY_LOG, log, logf)
    F_MATH(DRAY_SIN, sin, sinf)
    F_MATH(DRAY_COS, cos, cosf)
#undef F_MATH
    default: break;
    }
}

static void i_unary(int op, const int64_t *x, int64_t *z, int64_t n)
{
    switch (op) {
    case DRAY_NEG: for (int64_t j = 0; j < n; j++) z[j] = (int64_t)(0 - (uint64_t)x[j]); break;
    case DRAY_ABS:
        for (int64_t j = 0; j < n; j++) z[j] = x[j] < 0 ? (int64_t)(0 - (uint64_t)x[j]) : x[j];
        break;
    default: for (int64_t j = 0; j < n; j++) z[j] = !x[j]; break;
    }
}

/* Global index along axis d of tile element 0. */
static inline int64_t gidx(const dray__vm_run *r, const int64_t *pos, int d)
{
    return r->g->off[d] + pos[d];
}

static void eval_random(dray__vm_run *r, unsigned k, const int64_t *pos, int64_t n, dray__vm_reg *o)
{
    const dray__vm_insn *in = &r->p->insns[k];
    int nd = r->nd, last = nd - 1;
    uint64_t flat = 0;
    for (int d = 0; d < nd; d++)
        flat += (uint64_t)(gidx(r, pos, d) * r->rstride[k][d]);
    bool bcast = nd > 0 && r->rstride[k][last] == 0;
    int64_t m = bcast ? 1 : n;
    switch (in->sub) {
    case DRAY__R_UNIFORM:
        dray__rng_uniform_fill(&r->key[k][0], flat, o->f, m);
        if (in->f1 != 0.0 || in->f2 != 1.0)
            k_affine(o->f, m, in->f1, in->f2 - in->f1);
        break;
    case DRAY__R_NORMAL: {
        double *u2 = r->regs[r->p->n_insns].f;
        dray__rng_uniform_fill(&r->key[k][0], flat, o->f, m);
        dray__rng_uniform_fill(&r->key[k][1], flat, u2, m);
        for (int64_t j = 0; j < m; j++)
            o->f[j] = in->f1 + in->f2 * sqrt(-2.0 * log1p(-o->f[j])) * cos(2 * M_PI * u2[j]);
        break;
    }
    default: {
        uint64_t range = (uint64_t)in->i2 - (uint64_t)in->i1;
        for (int64_t j = 0; j < m; j++) {
            uint64_t bits = dray__rng_bits(&r->key[k][0], flat + (uint64_t)j);
            o->i[j] = (int64_t)((uint64_t)in->i1 +
                                (uint64_t)(((unsigned __int128)bits * range) >> 64));
        }
        break;
    }
    }
    if (bcast) {
        for (int64_t j = 1; j < n; j++)
            o->i[j] = o->i[0]; /* copies the 8 bytes whatever the kind */
    }
    if (in->dtype == DRAY_FLOAT32)
        k_round32(o->f, n);
}

static void eval_linear(dray__vm_run *r, const dray__vm_insn *in, const int64_t *pos, int64_t n,
                        dray__vm_reg *o)
{
    int last = r->nd - 1;
    int64_t g0 = gidx(r, pos, in->axis);
    bool along = in->axis == last;
    bool isf = dray__is_float((dray_dtype)in->dtype);
    for (int64_t j = 0; j < n; j++) {
        int64_t g = along ? g0 + j : g0;
        double v = (in->i2 && g == in->i1) ? in->f3 : in->f1 + in->f2 * (double)g;
        if (isf)
            o->f[j] = v;
        else
            o->i[j] = (int64_t)v;
    }
    if (in->dtype == DRAY_FLOAT32)
        k_round32(o->f, n);
}

static void eval_cast(dray_dtype from, dray_dtype to, const dray__vm_reg *x, dray__vm_reg *o,
                      int64_t n)
{
    int pf = dray__vm_phys(from), pt = dray__vm_phys(to);
    if (pf == 0 && pt == 0) {
        memcpy(o->f, x->f, sizeof(double) * (size_t)n);
        if (to == DRAY_FLOAT32)
            k_round32(o->f, n);
    } else if (pf == 0) {
        for (int64_t j = 0; j < n; j++) {
            double v = x->f[j];
            if (to == DRAY_BOOL)
                o->i[j] = v != 0;
            else /* out-of-range is undefined in C: clamp like x86 does (INT64_MIN) */
                o->i[j] = (v == v && v > -9.2233720368547758e18 && v < 9.2233720368547758e18)
                              ? (int64_t)v : INT64_MIN;
        }
        if (to == DRAY_INT32)
            k_wrap32(o->i, n);
    } else if (pt == 0) {
        for (int64_t j = 0; j < n; j++)
            o->f[j] = (double)x->i[j];
        if (to == DRAY_FLOAT32)
            k_round32(o->f, n);
    } else {
        for (int64_t j = 0; j < n; j++)
            o->i[j] = to == DRAY_BOOL ? x->i[j] != 0 : x->i[j];
        if (to == DRAY_INT32)
            k_wrap32(o->i, n);
    }
}

dray_status dray__vm_tile(dray__vm_run *r, const int64_t *pos, int64_t n)
{
    const dray__vm_prog *p = r->p;
    int nd = r->nd, last = nd - 1;
    for (unsigned k = 0; k < p->n_insns; k++) {
        const dray__vm_insn *in = &p->insns[k];
        dray__vm_reg *o = &r->regs[k];
        dray_dtype t = (dray_dtype)in->dtype;
        if (k + 1 == p->n_insns && r->direct_out && in->op != DRAY__VM_INPUT &&
            in->op != DRAY__VM_CONST)
            o = r->direct_out;
        r->ptr[k] = o;
        switch (in->op) {
        case DRAY__VM_INPUT: {
            const dray_ndarray *c = r->inputs[in->slot];
            int64_t off = 0;
            for (int d = 0; d < nd; d++)
                off += pos[d] * r->istride[in->slot][d];
            bool bc = nd > 0 && r->istride[in->slot][last] == 0;
            int64_t m = bc ? 1 : n;
            if (!bc && c->dtype == t && (t == DRAY_FLOAT64 || t == DRAY_INT64)) {
                /* read the chunk in place */
                r->ptr[k] = (dray__vm_reg *)((int64_t *)c->data + off);
                break;
            }
            if (dray__vm_phys(t) == 0)
                dray__load_f64(c->dtype, c->data, off, o->f, m);
            else
                dray__load_i64(c->dtype, c->data, off, o->i, m);
            for (int64_t j = 1; bc && j < n; j++)
                o->i[j] = o->i[0];
            break;
        }
        case DRAY__VM_CONST:
            if (r->const_done & (1ULL << k))
                break;
            for (int64_t j = 0; j < TILE; j++) {
                if (dray__vm_phys(t) == 0)
                    o->f[j] = in->f1;
                else
                    o->i[j] = in->i1;
            }
            r->const_done |= 1ULL << k;
            break;
        case DRAY__VM_LINEAR:
            eval_linear(r, in, pos, n, o);
            break;
        case DRAY__VM_RANDOM:
            eval_random(r, k, pos, n, o);
            break;
        case DRAY__VM_CAST:
            eval_cast((dray_dtype)p->insns[in->a].dtype, t, r->ptr[in->a], o, n);
            break;
        case DRAY__VM_UNARY: {
            const dray__vm_reg *x = r->ptr[in->a];
            if (dray__vm_phys(t) == 0) {
                f_unary(in->sub, t == DRAY_FLOAT32, x->f, o->f, n);
                if (t == DRAY_FLOAT32)
                    k_round32(o->f, n);
            } else {
                i_unary(in->sub, x->i, o->i, n);
                if (t == DRAY_INT32)
                    k_wrap32(o->i, n);
            }
            break;
        }
        case DRAY__VM_BINARY: {
            const dray__vm_reg *x = r->ptr[in->a], *y = r->ptr[in->b];
            dray_dtype ct = (dray_dtype)p->insns[in->a].dtype;
            if (in->sub >= DRAY_LT && in->sub <= DRAY_NE) {
                if (dray__vm_phys(ct) == 0)
                    f_compare(in->sub, x->f, y->f, o->i, n);
                else
                    i_compare(in->sub, x->i, y->i, o->i, n);
            } else if (dray__vm_phys(t) == 0) {
                f_binary(in->sub, x->f, y->f, o->f, n);
                if (t == DRAY_FLOAT32)
                    k_round32(o->f, n);
            } else {
                if (i_binary(in->sub, t, x->i, y->i, o->i, n) != DRAY_OK)
                    return DRAY_EINVAL;
                if (t == DRAY_INT32)
                    k_wrap32(o->i, n);
            }
            break;
        }
        case DRAY__VM_WHERE: {
            const dray__vm_reg *c = r->ptr[in->a], *x = r->ptr[in->b], *y = r->ptr[in->c];
            for (int64_t j = 0; j < n; j++)
                o->i[j] = c->i[j] ? x->i[j] : y->i[j];
            break;
        }
        default:
            break;
        }
    }
    return DRAY_OK;
}

/* Walks every tile of the chunk in C order, calling fn(r, pos, n, ctx). */
dray_status dray__vm_walk(dray__vm_run *r, dray_status (*fn)(dray__vm_run *, const int64_t *,
                                                              int64_t, void *), void *ctx)
{
    int nd = r->nd;
    int64_t pos[DRAY__MAXD] = {0};
    const int64_t *shape = r->g->shape;
    for (int d = 0; d < nd; d++)
        if (shape[d] == 0)
            return DRAY_OK;
    int64_t lastn = nd ? shape[nd - 1] : 1;
    for (;;) {
        for (int64_t j = 0; j < lastn; j += TILE) {
            int64_t n = lastn - j < TILE ? lastn - j : TILE;
            if (nd)
                pos[nd - 1] = j;
            if (r->out_base) {
                int64_t off = 0;
                for (int d = 0; d < nd; d++)
                    off += pos[d] * r->out_stride[d];
                r->direct_out = r->out_base + off;
            }
            dray_status st = dray__vm_tile(r, pos, n);
            if (st == DRAY_OK)
                st = fn(r, pos, n, ctx);
            if (st != DRAY_OK)
                return st;
        }
        if (nd < 2 || !dray__next_index(pos, shape, nd - 1))
            return DRAY_OK;
    }
}

/* ==== Eval into a chunk ==== */
typedef struct store_ctx {
    dray_ndarray *out;
    int64_t stride[DRAY__MAXD];
} store_ctx;

static dray_status store_tile(dray__vm_run *r, const int64_t *pos, int64_t n, void *vctx)
{
    store_ctx *sc = vctx;
    const dray__vm_reg *x = dray__vm_result(r);
    int64_t off = 0;
    for (int d = 0; d < r->nd; d++)
        off += pos[d] * sc->stride[d];
    void *data = sc->out->data;
    if ((const void *)x == (const void *)((int64_t *)data + off))
        return DRAY_OK; /* written in place */
    switch (sc->out->dtype) {
    case DRAY_BOOL:
        for (int64_t j = 0; j < n; j++) ((uint8_t *)data)[off + j] = x->i[j] != 0;
        break;
    case DRAY_INT32:
        for (int64_t j = 0; j < n; j++) ((int32_t *)data)[off + j] = (int32_t)x->i[j];
        break;
    case DRAY_INT64: memcpy((int64_t *)data + off, x->i, sizeof(int64_t) * (size_t)n); break;
    case DRAY_FLOAT32:
        for (int64_t j = 0; j < n; j++) ((float *)data)[off + j] = (float)x->f[j];
        break;
    default: memcpy((double *)data + off, x->f, sizeof(double) * (size_t)n); break;
    }
    return DRAY_OK;
}

bool dray__vm_flatten(const dray__vm_prog *p, const dray__geom *g, dray_ndarray *const *inputs,
                      int n_inputs, dray__vm_flat *f)
{
    int nd = p->ndim;
    int64_t total = 1, size = 1;
    f->prog = NULL;
    if (nd < 2 || n_inputs != p->n_slots)
        return false;
    for (int d = 0; d < nd; d++) {
        if (d > 0 && (g->off[d] != 0 || g->shape[d] != p->gshape[d]))
            return false;
        total *= p->gshape[d];
        size *= g->shape[d];
    }
    for (unsigned k = 0; k < p->n_insns; k++) {
        const dray__vm_insn *in = &p->insns[k];
        if (in->op == DRAY__VM_LINEAR)
            return false;
        for (int d = 0; in->op == DRAY__VM_RANDOM && d < nd; d++)
            if (in->lshape[d] != p->gshape[d])
                return false;
    }
    for (int s = 0; s < n_inputs; s++) {
        const dray_ndarray *c = inputs[s];
        if (c->ndim != nd || memcmp(c->shape, g->shape, sizeof(int64_t) * (size_t)nd))
            return false;
        /* a view with only what evaluation reads (the header's count is other threads' business) */
        dray_ndarray *v = &f->views[s];
        memset(v, 0, sizeof(*v));
        v->dtype = c->dtype;
        v->ndim = 1;
        v->shape[0] = c->size;
        v->size = c->size;
        v->data = c->data;
        f->inputs[s] = v;
    }
    size_t bytes = dray__vm_prog_bytes(p->n_insns);
    if (!(f->prog = malloc(bytes)))
        return false;
    memcpy(f->prog, p, bytes);
    f->prog->ndim = 1;
    f->prog->gshape[0] = total;
    for (unsigned k = 0; k < p->n_insns; k++)
        f->prog->insns[k].lshape[0] = total;
    memset(&f->geom, 0, sizeof(f->geom));
    f->geom.off[0] = g->off[0] * (total / (p->gshape[0] ? p->gshape[0] : 1));
    f->geom.shape[0] = size;
    return true;
}

static dray_status eval_chunk(const dray__vm_prog *p, const dray__geom *g,
                              dray_ndarray *const *inputs, int n_inputs, dray_ndarray **out);

dray_status dray__vm_eval(const dray__vm_prog *p, const dray__geom *g, dray_ndarray *const *inputs,
                          int n_inputs, dray_ndarray **out)
{
    dray__vm_flat f;
    if (!dray__vm_flatten(p, g, inputs, n_inputs, &f))
        return eval_chunk(p, g, inputs, n_inputs, out);
    dray_status st = eval_chunk(f.prog, &f.geom, f.inputs, n_inputs, out);
    free(f.prog);
    if (st == DRAY_OK) { /* same C-order data: give it back its shape */
        (*out)->ndim = p->ndim;
        memcpy((*out)->shape, g->shape, sizeof(int64_t) * (size_t)p->ndim);
    }
    return st;
}

static dray_status eval_chunk(const dray__vm_prog *p, const dray__geom *g,
                              dray_ndarray *const *inputs, int n_inputs, dray_ndarray **out)
{
    dray__vm_run r;
    store_ctx sc;
    dray_status st = dray__vm_start(&r, p, g, inputs, n_inputs);
    if (st != DRAY_OK)
        goto out_stop;
    st = dray__nd_create_uninit((dray_dtype)p->insns[p->n_insns - 1].dtype, p->ndim, g->shape,
                                &sc.out);
    if (st != DRAY_OK)
        goto out_stop;
    int64_t s = 1;
    for (int d = p->ndim - 1; d >= 0; d--) {
        sc.stride[d] = r.out_stride[d] = s;
        s *= g->shape[d];
    }
    if (sc.out->dtype == DRAY_FLOAT64 || sc.out->dtype == DRAY_INT64)
        r.out_base = sc.out->data;
    st = dray__vm_walk(&r, store_tile, &sc);
    if (st != DRAY_OK) {
        dray_ndarray_release(sc.out);
        goto out_stop;
    }
    *out = sc.out;
out_stop:
    dray__vm_stop(&r);
    return st;
}
