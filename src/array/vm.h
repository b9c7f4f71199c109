/* The fused evaluator's run state, shared by the elementwise (vm.c) and reduction (red.c) drivers. */
#ifndef DRAY_ARRAY_VM_H
#define DRAY_ARRAY_VM_H

#include "internal.h"

#define TILE 512

typedef union dray__vm_reg {
    double f[TILE];
    int64_t i[TILE];
} dray__vm_reg;

typedef struct dray__vm_run {
    const dray__vm_prog *p;
    const dray__geom *g;
    int nd;
    dray_ndarray *const *inputs;
    int64_t istride[DRAY__VM_MAX_INSNS][DRAY__MAXD];
    int64_t rstride[DRAY__VM_MAX_INSNS][DRAY__MAXD];
    dray__rng_key key[DRAY__VM_MAX_INSNS][2];
    uint64_t const_done;
    dray__vm_reg *regs; /* n_insns + 1 scratch */
    dray__vm_reg *ptr[DRAY__VM_MAX_INSNS]; /* where each result is this tile: a register, or the
                                            * input chunk's own memory (float64/int64 inputs) */
    void *direct_out;    /* set by the walker: the last result goes straight to this address */
    int64_t *out_base;   /* when set, direct_out = out_base + sum(pos * out_stride) */
    int64_t out_stride[DRAY__MAXD];
} dray__vm_run;

/* A chunk seen as 1-D: when the chunk spans every axis but the first and nothing broadcasts or
 * depends on a position along an axis, the whole chunk is one contiguous run of flat indices, so it
 * can be walked as one long row (narrow arrays otherwise cost a tile per short row). */
typedef struct dray__vm_flat {
    dray__vm_prog *prog; /* the flattened copy (free it), NULL when not flattened */
    dray__geom geom;
    dray_ndarray views[DRAY__VM_MAX_INSNS]; /* borrowed inputs dressed as 1-D */
    dray_ndarray *inputs[DRAY__VM_MAX_INSNS];
} dray__vm_flat;

/* dray__vm_flatten: fills *f and returns true when the chunk can be walked as 1-D. */
bool dray__vm_flatten(const dray__vm_prog *p, const dray__geom *g, dray_ndarray *const *inputs,
                      int n_inputs, dray__vm_flat *f);

/* dray__vm_phys: 0 when dtype computes in doubles, 1 in int64. */
int dray__vm_phys(dray_dtype t);
size_t dray__vm_prog_bytes(unsigned n_insns);
void dray__vm_prog_init(dray__vm_prog *p, int ndim, const int64_t *gshape);
dray_status dray__vm_start(dray__vm_run *r, const dray__vm_prog *p, const dray__geom *g,
                           dray_ndarray *const *inputs, int n_inputs);
void dray__vm_stop(dray__vm_run *r);
dray_status dray__vm_tile(dray__vm_run *r, const int64_t *pos, int64_t n);
/* dray__vm_result: the last instruction's values for the tile just evaluated. */
static inline const dray__vm_reg *dray__vm_result(const dray__vm_run *r)
{
    return r->ptr[r->p->n_insns - 1];
}
dray_status dray__vm_walk(dray__vm_run *r,
                          dray_status (*fn)(dray__vm_run *, const int64_t *, int64_t, void *),
                          void *ctx);

#endif /* DRAY_ARRAY_VM_H */
