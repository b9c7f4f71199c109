/* Computing arrays: runs the lowered graph and gathers the dense result, persists chunks as refs,
 * or streams rows of chunks into a .npy file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Copies chunk `c` into `dst` at offset `off`. */
static void place(dray_ndarray *dst, const dray_ndarray *c, const int64_t *off)
{
    static const int64_t zero[DRAY__MAXD];
    dray__copy_block(dst, off, c, zero, c->shape);
}

/* Computes chunks first..first+n of `vals` (C order over a's grid) into results[] (owned). */
static dray_status compute_chunks(dray_runtime *rt, dray__lower *L, const dray_value *vals,
                                  int64_t n, dray_value *results, size_t *tasks)
{
    dray_node *nodes = calloc((size_t)n + 1, sizeof(dray_node));
    int64_t *where = calloc((size_t)n + 1, sizeof(int64_t));
    dray_value *res = calloc((size_t)n + 1, sizeof(dray_value));
    dray_status st = DRAY_OK;
    size_t nn = 0;
    if (!nodes || !where || !res) {
        st = dray_set_error(DRAY_ENOMEM, "array compute");
        goto out;
    }
    for (int64_t k = 0; k < n && st == DRAY_OK; k++) {
        if (vals[k].type == DRAY_T_NODE) {
            nodes[nn].id = (uint32_t)vals[k].u.node;
            where[nn++] = k;
        } else if (vals[k].type == DRAY_T_REF) {
            st = dray_get(rt, vals[k].u.ref, -1, &results[k]);
        } else {
            results[k] = dray_value_retain(&vals[k]);
        }
    }
    if (st == DRAY_OK && nn)
        st = dray_graph_compute(dray__lower_graph(L), nodes, nn, res);
    if (st == DRAY_OK) {
        for (size_t j = 0; j < nn; j++)
            results[where[j]] = res[j];
        if (tasks) /* the array level's tasks, before the core fuses linear chains */
            *tasks = nn ? dray_graph_size(dray__lower_graph(L)) : 0;
    } else {
        for (int64_t k = 0; k < n; k++)
            dray_value_release(&results[k]);
    }
out:
    free(nodes);
    free(where);
    free(res);
    return st;
}

static dray_status check_chunk(const dray_array *a, const dray_value *v, const int64_t *shape,
                               dray_ndarray **out)
{
    char s1[160], s2[160];
    dray_ndarray *c = dray_ndarray_from_value(v);
    if (!c)
        return dray_set_error(DRAY_ETYPE, "array compute: a chunk is a %s, not an array",
                              dray_type_name((dray_type)v->type));
    if (c->dtype != a->dtype || c->ndim != a->ndim ||
        memcmp(c->shape, shape, sizeof(int64_t) * (size_t)a->ndim))
        return dray_set_error(DRAY_EINVAL, "array compute: chunk %s %s, expected %s %s",
                              dray_dtype_name(c->dtype),
                              dray__shape_str(c->ndim, c->shape, s1, sizeof(s1)),
                              dray_dtype_name(a->dtype),
                              dray__shape_str(a->ndim, shape, s2, sizeof(s2)));
    *out = c;
    return DRAY_OK;
}

dray_status dray_array_compute_stats(dray_runtime *rt, dray_array *a, dray_ndarray **out,
                                     size_t *tasks)
{
    dray__lower *L;
    const dray_value *vals;
    dray_ndarray *res = NULL;
    int64_t n = dray__array_nchunks(a);
    dray_value *results = calloc((size_t)n, sizeof(dray_value));
    if (!results)
        return dray_set_error(DRAY_ENOMEM, "array compute");
    dray_status st = dray__lower_create(rt, &L);
    if (st != DRAY_OK)
        goto out_results;
    if ((st = dray__lower_root(L, a, &vals)) != DRAY_OK ||
        (st = compute_chunks(rt, L, vals, n, results, tasks)) != DRAY_OK)
        goto out_lower;
    if ((st = dray_ndarray_create(a->dtype, a->ndim, a->shape, &res)) != DRAY_OK)
        goto out_vals;
    int64_t idx[DRAY__MAXD] = {0};
    for (int64_t k = 0; k < n && st == DRAY_OK; k++) {
        int64_t shape[DRAY__MAXD], off[DRAY__MAXD];
        dray_ndarray *c;
        dray__chunk_geom(a, idx, shape, off);
        if ((st = check_chunk(a, &results[k], shape, &c)) == DRAY_OK)
            place(res, c, off);
        dray__next_index(idx, a->nch, a->ndim);
    }
    if (st == DRAY_OK)
        *out = res;
    else
        dray_ndarray_release(res);
out_vals:
    for (int64_t k = 0; k < n; k++)
        dray_value_release(&results[k]);
out_lower:
    dray__lower_destroy(L);
out_results:
    free(results);
    return st;
}

dray_status dray_array_compute(dray_runtime *rt, dray_array *a, dray_ndarray **out)
{
    return dray_array_compute_stats(rt, a, out, NULL);
}

/* Starts computing chunks vals[0..n) with one submit: nodes become owned ref values in row[], other
 * chunk values are retained. */
static dray_status submit_chunks(dray__lower *L, const dray_value *vals, int64_t n,
                                 dray_value *row)
{
    dray_node *nodes = malloc(sizeof(dray_node) * (size_t)(n ? n : 1));
    dray_ref **refs = malloc(sizeof(dray_ref *) * (size_t)(n ? n : 1));
    dray_status st = DRAY_OK;
    size_t nn = 0;
    if (!nodes || !refs) {
        st = dray_set_error(DRAY_ENOMEM, "array submit");
        goto out;
    }
    for (int64_t k = 0; k < n; k++) {
        if (vals[k].type == DRAY_T_NODE)
            nodes[nn++].id = (uint32_t)vals[k].u.node;
        else
            row[k] = dray_value_retain(&vals[k]);
    }
    /* one submit, so chunks sharing upstream work share it */
    if (nn && (st = dray_graph_submit(dray__lower_graph(L), nodes, nn, refs)) != DRAY_OK)
        goto out;
    for (int64_t k = 0, j = 0; k < n && nn; k++)
        if (vals[k].type == DRAY_T_NODE)
            row[k] = dray_value_of_ref(refs[j++]); /* takes the submit's count */
out:
    free(nodes);
    free(refs);
    return st;
}

dray_status dray_array_persist(dray_runtime *rt, dray_array *a, dray_array **out)
{
    dray__lower *L;
    const dray_value *vals;
    dray_array *p;
    int64_t n = dray__array_nchunks(a);
    dray_status st = dray__array_new(DRAY__K_CHUNKS, a->dtype, a->ndim, a->shape, NULL, &p);
    if (st != DRAY_OK)
        return st;
    for (int d = 0; d < a->ndim && st == DRAY_OK; d++)
        st = dray__array_copy_grid(p, d, a, d);
    if (st == DRAY_OK && !(p->chunks = calloc((size_t)n, sizeof(dray_value))))
        st = dray_set_error(DRAY_ENOMEM, "persist");
    if (st != DRAY_OK)
        goto out_p;
    if ((st = dray__lower_create(rt, &L)) != DRAY_OK)
        goto out_p;
    if ((st = dray__lower_root(L, a, &vals)) != DRAY_OK)
        goto out_lower;
    st = submit_chunks(L, vals, n, p->chunks);
    /* Locally persist means "computed": wait for every chunk and surface the first failure. */
    for (int64_t k = 0; k < n && st == DRAY_OK; k++) {
        if (p->chunks[k].type != DRAY_T_REF)
            continue;
        dray_value v = dray_null(); /* on failure it holds the error value: ours to release */
        st = dray_get(rt, p->chunks[k].u.ref, -1, &v);
        dray_value_release(&v);
    }
    if (st != DRAY_OK)
        goto out_lower;
    dray__lower_destroy(L);
    *out = p;
    return DRAY_OK;
out_lower:
    dray__lower_destroy(L);
out_p:
    dray_array_release(p);
    return st;
}

/* Waits for row i (submitted into row[]) and writes it as a C-order slab. */
static dray_status write_row(dray_runtime *rt, const dray_array *a, dray_value *row,
                             int64_t per_row, int64_t i, int fd, const char *path)
{
    int64_t shape[DRAY__MAXD], idx[DRAY__MAXD] = {0};
    dray_ndarray *slab = NULL;
    dray_status st = DRAY_OK;
    for (int64_t k = 0; k < per_row && st == DRAY_OK; k++) {
        if (row[k].type != DRAY_T_REF)
            continue;
        dray_value v = dray_null();
        st = dray_get(rt, row[k].u.ref, -1, &v);
        dray_value_release(&row[k]);
        row[k] = v; /* the chunk, or the error value */
    }
    if (st != DRAY_OK)
        return st;
    memcpy(shape, a->shape, sizeof(int64_t) * (size_t)a->ndim);
    if (a->ndim)
        shape[0] = a->coff[0][i + 1] - a->coff[0][i];
    if ((st = dray__nd_create_uninit(a->dtype, a->ndim, shape, &slab)) != DRAY_OK)
        return st;
    if (a->ndim)
        idx[0] = i;
    for (int64_t k = 0; k < per_row && st == DRAY_OK; k++) {
        int64_t cs[DRAY__MAXD], off[DRAY__MAXD];
        dray_ndarray *c;
        dray__chunk_geom(a, idx, cs, off);
        if (a->ndim)
            off[0] = 0;
        if ((st = check_chunk(a, &row[k], cs, &c)) == DRAY_OK)
            place(slab, c, off);
        if (a->ndim > 1)
            dray__next_index(idx + 1, a->nch + 1, a->ndim - 1);
    }
    if (st == DRAY_OK)
        st = dray__write_all(fd, slab->data, (size_t)slab->size * dray_dtype_size(a->dtype), path);
    dray_ndarray_release(slab);
    return st;
}

static void release_row(dray_value *row, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        dray_value_release(&row[k]);
}

dray_status dray_array_write_npy(dray_runtime *rt, dray_array *a, const char *path)
{
    char hdr[1024];
    size_t hl;
    dray__lower *L;
    const dray_value *vals;
    dray_status st = dray__npy_header(a->dtype, a->ndim, a->shape, hdr, sizeof(hdr), &hl);
    if (st != DRAY_OK)
        return st;
    if ((st = dray__lower_create(rt, &L)) != DRAY_OK)
        return st;
    if ((st = dray__lower_root(L, a, &vals)) != DRAY_OK)
        goto out_lower;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = dray_set_error(DRAY_EIO, "%s: cannot create: %s", path, strerror(errno));
        goto out_lower;
    }
    st = dray__write_all(fd, hdr, hl, path);
    /* two rows of chunks in flight: the next computes while this one is written */
    int64_t rows = a->ndim ? a->nch[0] : 1, per_row = dray__array_nchunks(a) / rows;
    dray_value *cur = calloc((size_t)per_row, sizeof(dray_value));
    dray_value *next = calloc((size_t)per_row, sizeof(dray_value));
    if (!cur || !next)
        st = dray_set_error(DRAY_ENOMEM, "npy write");
    if (st == DRAY_OK)
        st = submit_chunks(L, vals, per_row, next);
    for (int64_t i = 0; i < rows && st == DRAY_OK; i++) {
        dray_value *t = cur;
        cur = next;
        next = t;
        if (i + 1 < rows)
            st = submit_chunks(L, vals + (i + 1) * per_row, per_row, next);
        if (st == DRAY_OK)
            st = write_row(rt, a, cur, per_row, i, fd, path);
        release_row(cur, per_row);
    }
    if (cur)
        release_row(cur, per_row);
    if (next)
        release_row(next, per_row);
    free(cur);
    free(next);
    if (close(fd) != 0 && st == DRAY_OK)
        st = dray_set_error(DRAY_EIO, "%s: close failed: %s", path, strerror(errno));
out_lower:
    dray__lower_destroy(L);
    return st;
}
