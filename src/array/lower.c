/* Lowering: turns an array expression into a core lazy graph with one task per output chunk.
 * Elementwise subtrees compile into one program evaluated by a single task per chunk; reductions
 * fuse their source into the per-chunk partial and combine in a split_every tree. */
#include <stdlib.h>
#include <string.h>

#include "vm.h"

typedef struct memo {
    const dray_array *a;
    dray_value *vals; /* per chunk: a node, or an owned chunk value / ref */
    int64_t n;
} memo;

struct dray__lower {
    dray_graph *g;
    memo *m;
    size_t n_m, cap_m;
    const dray_function *fn_eval, *fn_part, *fn_comb, *fn_mm, *fn_add, *fn_tr, *fn_ga, *fn_rs,
        *fn_npy;
};

static dray_status lower_array(dray__lower *L, const dray_array *a, const dray_value **out);

/* ==== Helpers ==== */

static int64_t linear_index(const int64_t *idx, const int64_t *n, int nd)
{
    int64_t k = 0;
    for (int d = 0; d < nd; d++)
        k = k * n[d] + idx[d];
    return k;
}

static dray_status add_task(dray__lower *L, const dray_function *fn, const dray_value *args,
                            size_t nargs, dray_value *out)
{
    dray_node node;
    dray_status st = dray_graph_add(L->g, NULL, fn, args, nargs, &node);
    if (st == DRAY_OK)
        *out = dray_value_of_node(node);
    return st;
}

static dray_status memo_add(dray__lower *L, const dray_array *a, dray_value *vals)
{
    if (L->n_m == L->cap_m) {
        size_t cap = L->cap_m ? 2 * L->cap_m : 16;
        memo *m = realloc(L->m, cap * sizeof(*m));
        if (!m)
            return dray_set_error(DRAY_ENOMEM, "array lowering");
        L->m = m;
        L->cap_m = cap;
    }
    L->m[L->n_m++] = (memo){a, vals, dray__array_nchunks(a)};
    return DRAY_OK;
}

static dray_value *vals_new(const dray_array *a)
{
    return calloc((size_t)dray__array_nchunks(a), sizeof(dray_value));
}

static void vals_free(dray_value *v, int64_t n)
{
    for (int64_t k = 0; v && k < n; k++)
        if (v[k].type != DRAY_T_NODE)
            dray_value_release(&v[k]);
    free(v);
}

/* ==== Program compilation ==== */

typedef struct compiler {
    dray__vm_prog *p;
    const dray_array *root;
    const dray_array *done[DRAY__VM_MAX_INSNS];
    int done_at[DRAY__VM_MAX_INSNS];
    int n_done;
    const dray_array *leaves[DRAY__VM_MAX_INSNS];
} compiler;

static int emit(compiler *c, const dray__vm_insn *in)
{
    if (c->p->n_insns >= DRAY__VM_MAX_INSNS)
        return -1;
    c->p->insns[c->p->n_insns] = *in;
    return (int)c->p->n_insns++;
}

static int cast_to(compiler *c, int k, dray_dtype t)
{
    if (k < 0 || c->p->insns[k].dtype == t)
        return k;
    dray__vm_insn in = {.op = DRAY__VM_CAST, .dtype = (uint8_t)t, .a = (int16_t)k};
    return emit(c, &in);
}

/* Budget: compile_node(c, a, reserve) leaves `reserve` instructions free for what its callers
 * still have to emit. A fusable node is compiled in place only when the room left covers itself, its
 * casts and at least a leaf per operand not compiled yet; otherwise it becomes an INPUT leaf
 * (computed by its own tasks). Each operand is compiled reserving room for the node, its casts and
 * a leaf for every later operand still to compile, so a long chain fuses as deep as fits and the
 * program never overflows. */

/* The dtype operand k is computed in (the compile_node cases below cast to it). */
static dray_dtype operand_dtype(const dray_array *a, int k)
{
    if (a->kind == DRAY__K_WHERE && k == 0)
        return DRAY_BOOL;
    if (a->kind == DRAY__K_BINARY && a->p.bin.op >= DRAY_LT && a->p.bin.op <= DRAY_NE) {
        dray_dtype ta = a->in[0]->dtype, tb = a->in[1]->dtype;
        return dray__promote(ta, tb);
    }
    return a->dtype;
}

static bool compiled(const compiler *c, const dray_array *a)
{
    for (int k = 0; k < c->n_done; k++)
        if (c->done[k] == a)
            return true;
    return false;
}

/* Instructions node `a` needs beyond operands compiled so far: itself, its casts, and a leaf for
 * each operand from `from` on that is neither compiled nor a repeat of an earlier operand. */
static int still_needed(const compiler *c, const dray_array *a, int from)
{
    int need = 1;
    for (int k = 0; k < a->n_in; k++) {
        need += a->in[k]->dtype != operand_dtype(a, k);
        bool repeat = false;
        for (int j = 0; j < k; j++)
            repeat |= a->in[j] == a->in[k];
        need += k >= from && !repeat && !compiled(c, a->in[k]);
    }
    return need;
}

static int compile_node(compiler *c, const dray_array *a, int reserve)
{
    for (int k = 0; k < c->n_done; k++)
        if (c->done[k] == a)
            return c->done_at[k];
    int left = DRAY__VM_MAX_INSNS - (int)c->p->n_insns - reserve;
    dray__vm_insn in = {.dtype = (uint8_t)a->dtype};
    int nd = c->root->ndim, shift = nd - a->ndim, r = -1;
    /* operand k reserves what the node still needs after it, and our own reserve */
#define OPERAND(k) compile_node(c, a->in[k], reserve + still_needed(c, a, (k) + 1))
    if (!dray__is_fusable(a) || left < still_needed(c, a, 0)) {
        in.op = DRAY__VM_INPUT;
        in.slot = (int16_t)c->p->n_slots;
        r = emit(c, &in);
        if (r >= 0)
            c->leaves[c->p->n_slots++] = a;
    } else {
        switch (a->kind) {
        case DRAY__K_CONST:
            in.op = DRAY__VM_CONST;
            in.f1 = a->p.cst.value;
            in.i1 = dray__is_float(a->dtype) ? 0 : (int64_t)a->p.cst.value;
            r = emit(c, &in);
            break;
        case DRAY__K_LINEAR:
            in.op = DRAY__VM_LINEAR;
            in.axis = (uint8_t)(nd - 1);
            in.sub = a->shape[0] == 1 && c->root->shape[nd - 1] != 1; /* broadcast */
            in.f1 = a->p.lin.start;
            in.f2 = a->p.lin.step;
            in.f3 = a->p.lin.last;
            in.i1 = a->shape[0] - 1;
            in.i2 = a->p.lin.fix_last;
            r = emit(c, &in);
            break;
        case DRAY__K_RANDOM:
            in.op = DRAY__VM_RANDOM;
            in.sub = (uint8_t)a->p.rnd.kind;
            in.seed = a->p.rnd.seed;
            in.f1 = a->p.rnd.p1;
            in.f2 = a->p.rnd.p2;
            in.i1 = a->p.rnd.i1;
            in.i2 = a->p.rnd.i2;
            for (int d = 0; d < nd; d++)
                in.lshape[d] = d < shift ? 1 : a->shape[d - shift];
            r = emit(c, &in);
            break;
        case DRAY__K_CAST:
            r = cast_to(c, OPERAND(0), a->dtype);
            break;
        case DRAY__K_UNARY: {
            int x = cast_to(c, OPERAND(0), a->dtype);
            in.op = DRAY__VM_UNARY;
            in.sub = (uint8_t)a->p.un.op;
            in.a = (int16_t)x;
            r = x < 0 ? -1 : emit(c, &in);
            break;
        }
        case DRAY__K_BINARY: {
            int op = a->p.bin.op;
            dray_dtype ta = a->in[0]->dtype, tb = a->in[1]->dtype, ct;
            bool cmp = op >= DRAY_LT && op <= DRAY_NE;
            ct = cmp ? (ta > tb ? ta : tb) : a->dtype;
            if (cmp && ((ta == DRAY_FLOAT32 && (tb == DRAY_INT32 || tb == DRAY_INT64)) ||
                        (tb == DRAY_FLOAT32 && (ta == DRAY_INT32 || ta == DRAY_INT64))))
                ct = DRAY_FLOAT64;
            int x = cast_to(c, OPERAND(0), ct);
            int y = x < 0 ? -1 : cast_to(c, OPERAND(1), ct);
            in.op = DRAY__VM_BINARY;
            in.sub = (uint8_t)op;
            in.a = (int16_t)x;
            in.b = (int16_t)y;
            r = x < 0 || y < 0 ? -1 : emit(c, &in);
            break;
        }
        case DRAY__K_WHERE: {
            int x = cast_to(c, OPERAND(0), DRAY_BOOL);
            int y = x < 0 ? -1 : cast_to(c, OPERAND(1), a->dtype);
            int z = y < 0 ? -1 : cast_to(c, OPERAND(2), a->dtype);
            in.op = DRAY__VM_WHERE;
            in.a = (int16_t)x;
            in.b = (int16_t)y;
            in.c = (int16_t)z;
            r = z < 0 ? -1 : emit(c, &in);
            break;
        }
        default:
            break;
        }
    }
    if (r >= 0 && c->n_done < DRAY__VM_MAX_INSNS) {
        c->done[c->n_done] = a;
        c->done_at[c->n_done++] = r;
    }
    return r;
#undef OPERAND
}

/* Compiles `root` (ending with a cast to `final_dt` when >= 0) into a bytes value. */
static dray_status compile(const dray_array *root, int final_dt, compiler *c, dray_value *bytes)
{
    size_t cap = dray__vm_prog_bytes(DRAY__VM_MAX_INSNS);
    memset(c, 0, sizeof(*c));
    c->p = calloc(1, cap);
    if (!c->p)
        return dray_set_error(DRAY_ENOMEM, "array program");
    dray__vm_prog_init(c->p, root->ndim, root->shape);
    c->root = root;
    int r = compile_node(c, root, 2); /* room for the final cast or copy */
    if (r >= 0 && final_dt >= 0)
        r = cast_to(c, r, (dray_dtype)final_dt);
    if (r >= 0 && r != (int)c->p->n_insns - 1) {
        dray__vm_insn in = {.op = DRAY__VM_CAST, .dtype = c->p->insns[r].dtype, .a = (int16_t)r};
        r = emit(c, &in);
    }
    dray_status st = r < 0 ? dray_set_error(DRAY_EUNSUPPORTED, "array program too large")
                           : dray_bytes_create(c->p, dray__vm_prog_bytes(c->p->n_insns), bytes);
    free(c->p);
    c->p = NULL;
    return st;
}

/* The chunk of leaf `leaf` that output chunk `idx` of `root` reads. */
static int64_t leaf_chunk(const dray_array *root, const dray_array *leaf, const int64_t *idx)
{
    int64_t li[DRAY__MAXD];
    int shift = root->ndim - leaf->ndim;
    for (int d = 0; d < leaf->ndim; d++)
        li[d] = leaf->shape[d] == 1 && leaf->nch[d] == 1 ? 0 : idx[d + shift];
    return linear_index(li, leaf->nch, leaf->ndim);
}

/* Adds one fused task per chunk of `root`: args = [prog, geom, (spec), leaf chunks...]. */
static dray_status fused_tasks(dray__lower *L, const dray_array *root, int final_dt,
                               const dray_value *spec, const dray_function *fn, dray_value *vals)
{
    compiler c;
    dray_value prog, *args = NULL, geomv = dray_null();
    const dray_value *leafv[DRAY__VM_MAX_INSNS];
    dray_status st = compile(root, final_dt, &c, &prog);
    if (st != DRAY_OK)
        return st;
    int nslots = 0;
    for (; nslots < DRAY__VM_MAX_INSNS && c.leaves[nslots]; nslots++)
        if ((st = lower_array(L, c.leaves[nslots], &leafv[nslots])) != DRAY_OK)
            goto out_prog;
    int fixed = spec ? 3 : 2;
    args = calloc((size_t)(fixed + nslots), sizeof(dray_value));
    if (!args) {
        st = dray_set_error(DRAY_ENOMEM, "array tasks");
        goto out_prog;
    }
    int64_t idx[DRAY__MAXD] = {0}, n = dray__array_nchunks(root);
    for (int64_t k = 0; k < n; k++) {
        dray__geom g;
        memset(&g, 0, sizeof(g));
        dray__chunk_geom(root, idx, g.shape, g.off);
        if ((st = dray_bytes_create(&g, sizeof(g), &geomv)) != DRAY_OK)
            goto out_args;
        args[0] = prog;
        args[1] = geomv;
        if (spec)
            args[2] = *spec;
        for (int s = 0; s < nslots; s++)
            args[fixed + s] = leafv[s][leaf_chunk(root, c.leaves[s], idx)];
        st = add_task(L, fn, args, (size_t)(fixed + nslots), &vals[k]);
        dray_value_release(&geomv);
        if (st != DRAY_OK)
            goto out_args;
        dray__next_index(idx, root->nch, root->ndim);
    }
out_args:
    free(args);
out_prog:
    dray_value_release(&prog);
    return st;
}

/* ==== Per kind ==== */

static dray_status lower_reduce(dray__lower *L, const dray_array *r, dray_value *vals)
{
    const dray_array *x = r->in[0];
    int op = r->p.red.op, nd = x->ndim, split = r->p.red.split;
    uint32_t axes = r->p.red.axes;
    dray__red_spec rs;
    memset(&rs, 0, sizeof(rs));
    rs.op = op;
    rs.ndim = nd;
    rs.axes = axes;
    rs.ddof = r->p.red.ddof;
    rs.keepdims = r->p.red.keepdims;
    rs.in_dt = x->dtype;
    rs.out_dt = r->dtype;
    memcpy(rs.gshape, x->shape, sizeof(int64_t) * (size_t)nd);
    bool iacc = dray__red_int_acc(op, x->dtype);
    int acc_dt = iacc ? (op == DRAY_ANY || op == DRAY_ALL ? DRAY_BOOL
                         : dray__vm_phys(x->dtype) ? (int)x->dtype : DRAY_INT64)
                      : (dray__vm_phys(x->dtype) ? DRAY_FLOAT64 : (int)x->dtype);
    int64_t nparts = dray__array_nchunks(x), count = 1;
    for (int d = 0; d < nd; d++)
        if (axes & (1u << d))
            count *= x->shape[d];
    dray_value specv, metav = dray_null(), *parts = vals_new(x), *args = NULL;
    if (!parts)
        return dray_set_error(DRAY_ENOMEM, "reduction");
    dray_status st = dray_bytes_create(&rs, sizeof(rs), &specv);
    if (st != DRAY_OK)
        goto out_parts;
    if ((st = fused_tasks(L, x, acc_dt, &specv, L->fn_part, parts)) != DRAY_OK)
        goto out_spec;
    /* Per output chunk: its partials in C order over the reduced axes' chunks. */
    int64_t red_n = 1;
    for (int d = 0; d < nd; d++)
        if (axes & (1u << d))
            red_n *= x->nch[d];
    args = calloc((size_t)(red_n > split ? red_n : split) + 2, sizeof(dray_value));
    dray_value *level = calloc((size_t)red_n + 1, sizeof(dray_value));
    if (!args || !level) {
        free(level);
        st = dray_set_error(DRAY_ENOMEM, "reduction tree");
        goto out_spec;
    }
    int64_t oidx[DRAY__MAXD] = {0}, onch[DRAY__MAXD], ond = 0;
    for (int d = 0; d < nd; d++)
        onch[d] = (axes & (1u << d)) ? 1 : x->nch[d];
    int64_t nout = dray__array_nchunks(r);
    for (int64_t o = 0; o < nout && st == DRAY_OK; o++) {
        /* gather partials: iterate reduced chunk indices */
        int64_t ridx[DRAY__MAXD], m = 0;
        memcpy(ridx, oidx, sizeof(ridx));
        for (;;) {
            level[m++] = parts[linear_index(ridx, x->nch, nd)];
            int d = nd - 1;
            for (; d >= 0; d--) {
                if (!(axes & (1u << d)))
                    continue;
                if (++ridx[d] < x->nch[d])
                    break;
                ridx[d] = 0;
            }
            if (d < 0)
                break;
        }
        /* output chunk shape */
        dray__red_meta meta;
        memset(&meta, 0, sizeof(meta));
        ond = 0;
        for (int d = 0; d < nd; d++) {
            bool red = axes & (1u << d);
            if (!red)
                meta.shape[ond++] = x->coff[d][oidx[d] + 1] - x->coff[d][oidx[d]];
            else if (rs.keepdims)
                meta.shape[ond++] = 1;
        }
        meta.ndim = ond;
        meta.count = count;
        while (st == DRAY_OK) {
            meta.final = m <= split;
            if ((st = dray_bytes_create(&meta, sizeof(meta), &metav)) != DRAY_OK)
                break;
            int64_t nm = 0;
            for (int64_t s = 0; s < m && st == DRAY_OK; s += split) {
                int64_t k = m - s < split ? m - s : split;
                args[0] = specv;
                args[1] = metav;
                memcpy(args + 2, level + s, sizeof(dray_value) * (size_t)k);
                st = add_task(L, L->fn_comb, args, (size_t)k + 2, &level[nm++]);
            }
            dray_value_release(&metav);
            if (meta.final || st != DRAY_OK)
                break;
            m = nm;
        }
        if (st == DRAY_OK)
            vals[o] = level[0];
        dray__next_index(oidx, onch, nd);
    }
    free(level);
out_spec:
    free(args);
    dray_value_release(&specv);
out_parts:
    vals_free(parts, nparts);
    return st;
}

static dray_status lower_matmul(dray__lower *L, const dray_array *m, dray_value *vals)
{
    const dray_value *av, *bv;
    const dray_array *a = m->in[0], *b = m->in[1];
    dray_status st = lower_array(L, a, &av);
    if (st == DRAY_OK)
        st = lower_array(L, b, &bv);
    if (st != DRAY_OK)
        return st;
    int64_t nl = a->nch[1], split = m->p.red.split;
    dray_value *args = calloc((size_t)(2 * nl + split + 1), sizeof(dray_value));
    dray_value *level = calloc((size_t)nl + 1, sizeof(dray_value));
    if (!args || !level) {
        st = dray_set_error(DRAY_ENOMEM, "matmul tasks");
        goto out;
    }
    for (int64_t i = 0; i < m->nch[0] && st == DRAY_OK; i++)
        for (int64_t j = 0; j < m->nch[1] && st == DRAY_OK; j++) {
            int64_t nm = 0;
            for (int64_t l0 = 0; l0 < nl && st == DRAY_OK; l0 += split) {
                int64_t k = nl - l0 < split ? nl - l0 : split;
                for (int64_t l = 0; l < k; l++) {
                    args[2 * l] = av[i * nl + l0 + l];
                    args[2 * l + 1] = bv[(l0 + l) * b->nch[1] + j];
                }
                st = add_task(L, L->fn_mm, args, (size_t)(2 * k), &level[nm++]);
            }
            while (nm > 1 && st == DRAY_OK) {
                int64_t n2 = 0;
                for (int64_t s = 0; s < nm && st == DRAY_OK; s += split) {
                    int64_t k = nm - s < split ? nm - s : split;
                    memcpy(args, level + s, sizeof(dray_value) * (size_t)k);
                    st = add_task(L, L->fn_add, args, (size_t)k, &level[n2++]);
                }
                nm = n2;
            }
            vals[i * m->nch[1] + j] = level[0];
        }
out:
    free(args);
    free(level);
    return st;
}

static dray_status lower_transpose(dray__lower *L, const dray_array *t, dray_value *vals)
{
    const dray_value *iv;
    const dray_array *x = t->in[0];
    dray_status st = lower_array(L, x, &iv);
    if (st != DRAY_OK)
        return st;
    int32_t perm[DRAY__MAXD];
    for (int d = 0; d < t->ndim; d++)
        perm[d] = t->p.tr.perm[d];
    dray_value pv;
    if ((st = dray_bytes_create(perm, sizeof(int32_t) * (size_t)t->ndim, &pv)) != DRAY_OK)
        return st;
    int64_t idx[DRAY__MAXD] = {0}, xi[DRAY__MAXD], n = dray__array_nchunks(t);
    for (int64_t k = 0; k < n && st == DRAY_OK; k++) {
        for (int d = 0; d < t->ndim; d++)
            xi[perm[d]] = idx[d];
        dray_value args[2] = {pv, iv[linear_index(xi, x->nch, x->ndim)]};
        st = add_task(L, L->fn_tr, args, 2, &vals[k]);
        dray__next_index(idx, t->nch, t->ndim);
    }
    dray_value_release(&pv);
    return st;
}

/* Gather spec: header then one record per piece (per input axis: in_start, step, count, out_start).
 */
typedef dray__ga_head ga_head;
typedef dray__ga_axis ga_axis;

/* The chunk of axis d holding index i (binary search over the offsets). */
static int64_t find_chunk(const dray_array *x, int d, int64_t i)
{
    int64_t lo = 0, hi = x->nch[d] - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (x->coff[d][mid] <= i)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* One gather task: per input axis, the pieces (input chunk, ranges) output chunk idx touches. */
static dray_status gather_task(dray__lower *L, const dray_array *ga, const dray_value *iv,
                               const int64_t *idx, ga_axis **pieces, int64_t **pchunk,
                               dray_value *out)
{
    const dray_array *x = ga->in[0];
    int nd = x->ndim;
    int64_t np[DRAY__MAXD], total = 1;
    ga_head h;
    memset(&h, 0, sizeof(h));
    h.in_ndim = nd;
    h.out_ndim = ga->ndim;
    for (int d = 0, od = 0; d < nd; d++) {
        int64_t o0 = 0, cnt = 1, start = ga->p.ga.start[d], step = ga->p.ga.step[d];
        if (!(ga->p.ga.dropped & (1u << d))) {
            o0 = ga->coff[od][idx[od]];
            cnt = ga->coff[od][idx[od] + 1] - o0;
            h.final_shape[od++] = cnt;
        }
        h.out_shape[d] = cnt;
        np[d] = 0;
        for (int64_t o = 0; o < cnt;) {
            int64_t i = start + (o0 + o) * step, c = find_chunk(x, d, i);
            int64_t lo = x->coff[d][c], hi = x->coff[d][c + 1];
            int64_t run = step > 0 ? (hi - 1 - i) / step + 1 : (i - lo) / (-step) + 1;
            run = run > cnt - o ? cnt - o : run;
            pchunk[d][np[d]] = c;
            pieces[d][np[d]++] = (ga_axis){i - lo, step, run, o};
            o += run;
        }
        if (cnt == 0) {
            pchunk[d][0] = 0;
            pieces[d][0] = (ga_axis){0, 1, 0, 0};
            np[d] = 1;
        }
        total *= np[d];
    }
    if (total > INT32_MAX / 2)
        return dray_set_error(DRAY_EUNSUPPORTED, "rechunk: an output chunk gathers %lld pieces",
                              (long long)total);
    h.n_pieces = (int32_t)total;
    size_t bytes = sizeof(h) + (size_t)total * (size_t)nd * sizeof(ga_axis);
    uint8_t *spec = malloc(bytes);
    dray_value *args = calloc((size_t)total + 1, sizeof(dray_value));
    dray_status st = DRAY_OK;
    if (!spec || !args) {
        st = dray_set_error(DRAY_ENOMEM, "gather tasks");
        goto out;
    }
    memcpy(spec, &h, sizeof(h));
    int64_t pi[DRAY__MAXD] = {0}, ci[DRAY__MAXD];
    for (int64_t p = 0; p < total; p++) {
        for (int d = 0; d < nd; d++) {
            memcpy(spec + sizeof(h) + ((size_t)p * nd + d) * sizeof(ga_axis), &pieces[d][pi[d]],
                   sizeof(ga_axis));
            ci[d] = pchunk[d][pi[d]];
        }
        args[1 + p] = iv[linear_index(ci, x->nch, nd)];
        dray__next_index(pi, np, nd);
    }
    if ((st = dray_bytes_create(spec, bytes, &args[0])) == DRAY_OK) {
        st = add_task(L, L->fn_ga, args, (size_t)total + 1, out);
        dray_value_release(&args[0]);
    }
out:
    free(spec);
    free(args);
    return st;
}

static dray_status lower_gather(dray__lower *L, const dray_array *ga, dray_value *vals)
{
    const dray_value *iv;
    const dray_array *x = ga->in[0];
    ga_axis *pieces[DRAY__MAXD] = {0};
    int64_t *pchunk[DRAY__MAXD] = {0};
    dray_status st = lower_array(L, x, &iv);
    for (int d = 0; d < x->ndim && st == DRAY_OK; d++) {
        /* an output chunk takes at most one piece per input chunk along each axis */
        pieces[d] = malloc(sizeof(ga_axis) * (size_t)(x->nch[d] + 1));
        pchunk[d] = malloc(sizeof(int64_t) * (size_t)(x->nch[d] + 1));
        if (!pieces[d] || !pchunk[d])
            st = dray_set_error(DRAY_ENOMEM, "gather tasks");
    }
    int64_t idx[DRAY__MAXD] = {0}, n = dray__array_nchunks(ga);
    for (int64_t k = 0; k < n && st == DRAY_OK; k++) {
        st = gather_task(L, ga, iv, idx, pieces, pchunk, &vals[k]);
        dray__next_index(idx, ga->nch, ga->ndim);
    }
    for (int d = 0; d < DRAY__MAXD; d++) {
        free(pieces[d]);
        free(pchunk[d]);
    }
    return st;
}

static dray_status lower_concat(dray__lower *L, const dray_array *c, dray_value *vals)
{
    int ax = c->p.cat.axis, nd = c->ndim;
    const dray_value **iv = calloc((size_t)c->n_ins, sizeof(*iv));
    if (!iv)
        return dray_set_error(DRAY_ENOMEM, "concatenate");
    for (int k = 0; k < c->n_ins; k++) {
        dray_status st = lower_array(L, c->ins[k], &iv[k]);
        if (st != DRAY_OK) {
            free(iv);
            return st;
        }
    }
    int64_t idx[DRAY__MAXD] = {0}, n = dray__array_nchunks(c);
    for (int64_t k = 0; k < n; k++) {
        int64_t li[DRAY__MAXD], j = idx[ax];
        int w = 0;
        while (j >= c->ins[w]->nch[ax])
            j -= c->ins[w++]->nch[ax];
        memcpy(li, idx, sizeof(li));
        li[ax] = j;
        vals[k] = dray_value_retain(&iv[w][linear_index(li, c->ins[w]->nch, nd)]);
        dray__next_index(idx, c->nch, nd);
    }
    free(iv);
    return DRAY_OK;
}

static dray_status lower_reshape(dray__lower *L, const dray_array *r, dray_value *vals)
{
    const dray_value *iv;
    dray_status st = lower_array(L, r->in[0], &iv);
    int64_t idx[DRAY__MAXD] = {0}, n = dray__array_nchunks(r);
    for (int64_t k = 0; k < n && st == DRAY_OK; k++) {
        dray__shape_arg sh;
        memset(&sh, 0, sizeof(sh));
        int64_t off[DRAY__MAXD];
        sh.ndim = r->ndim;
        dray__chunk_geom(r, idx, sh.shape, off);
        dray_value args[2];
        if ((st = dray_bytes_create(&sh, sizeof(sh), &args[0])) != DRAY_OK)
            break;
        args[1] = iv[k];
        st = add_task(L, L->fn_rs, args, 2, &vals[k]);
        dray_value_release(&args[0]);
        dray__next_index(idx, r->nch, r->ndim);
    }
    return st;
}

static dray_status lower_npy(dray__lower *L, const dray_array *a, dray_value *vals)
{
    int64_t idx[DRAY__MAXD] = {0}, n = dray__array_nchunks(a);
    dray_status st = DRAY_OK;
    for (int64_t k = 0; k < n && st == DRAY_OK; k++) {
        int64_t shape[DRAY__MAXD], off[DRAY__MAXD];
        dray_value args[2];
        dray__chunk_geom(a, idx, shape, off);
        if ((st = dray__npy_chunk_args(a, off, shape, args)) != DRAY_OK)
            break;
        st = add_task(L, L->fn_npy, args, 2, &vals[k]);
        dray_value_release(&args[0]);
        dray_value_release(&args[1]);
        dray__next_index(idx, a->nch, a->ndim);
    }
    return st;
}

static dray_status lower_array(dray__lower *L, const dray_array *a, const dray_value **out)
{
    for (size_t k = 0; k < L->n_m; k++)
        if (L->m[k].a == a) {
            *out = L->m[k].vals;
            return DRAY_OK;
        }
    dray_value *vals = vals_new(a);
    int64_t n = dray__array_nchunks(a);
    if (!vals)
        return dray_set_error(DRAY_ENOMEM, "array lowering");
    dray_status st;
    switch (a->kind) {
    case DRAY__K_CHUNKS:
        for (int64_t k = 0; k < n; k++)
            vals[k] = dray_value_retain(&a->chunks[k]);
        st = DRAY_OK;
        break;
    case DRAY__K_NPY: st = lower_npy(L, a, vals); break;
    case DRAY__K_REDUCE: st = lower_reduce(L, a, vals); break;
    case DRAY__K_MATMUL: st = lower_matmul(L, a, vals); break;
    case DRAY__K_TRANSPOSE: st = lower_transpose(L, a, vals); break;
    case DRAY__K_GATHER: st = lower_gather(L, a, vals); break;
    case DRAY__K_CONCAT: st = lower_concat(L, a, vals); break;
    case DRAY__K_RESHAPE: st = lower_reshape(L, a, vals); break;
    default: st = fused_tasks(L, a, -1, NULL, L->fn_eval, vals); break;
    }
    if (st == DRAY_OK)
        st = memo_add(L, a, vals);
    if (st != DRAY_OK) {
        vals_free(vals, n);
        return st;
    }
    *out = vals;
    return DRAY_OK;
}

/* ==== Entry points ==== */

static dray_status find_fn(const char *name, const dray_function **out)
{
    *out = dray_function_find(name);
    return *out ? DRAY_OK : dray_set_error(DRAY_ENOTFOUND, "array task %s not registered", name);
}

dray_status dray__lower_create(dray_runtime *rt, dray__lower **out)
{
    dray__lower *L = calloc(1, sizeof(*L));
    if (!L)
        return dray_set_error(DRAY_ENOMEM, "array lowering");
    dray_status st;
    if ((st = find_fn("array_eval", &L->fn_eval)) || (st = find_fn("array_part", &L->fn_part)) ||
        (st = find_fn("array_comb", &L->fn_comb)) || (st = find_fn("array_matmul", &L->fn_mm)) ||
        (st = find_fn("array_addblocks", &L->fn_add)) ||
        (st = find_fn("array_transpose", &L->fn_tr)) ||
        (st = find_fn("array_gather", &L->fn_ga)) || (st = find_fn("array_reshape", &L->fn_rs)) ||
        (st = find_fn("array_npy_read", &L->fn_npy)) || (st = dray_graph_create(rt, &L->g))) {
        free(L);
        return st;
    }
    *out = L;
    return DRAY_OK;
}

void dray__lower_destroy(dray__lower *L)
{
    if (!L)
        return;
    for (size_t k = 0; k < L->n_m; k++)
        vals_free(L->m[k].vals, L->m[k].n);
    free(L->m);
    dray_graph_destroy(L->g);
    free(L);
}

dray_status dray__lower_root(dray__lower *L, const dray_array *a, const dray_value **out)
{
    return lower_array(L, a, out);
}

dray_graph *dray__lower_graph(dray__lower *L) { return L->g; }
