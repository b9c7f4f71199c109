/* Multi-partition operations as graph tasks: concat, repartition, sample sort, hash join (broadcast
 * or shuffled) and drop_duplicates. Shuffles split each partition into a list of buckets in one task,
 * and one task per output bucket gathers its piece from every list. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dray/dashboard.h"
#include "frame_internal.h"

/* ---- helpers ---- */

/* string_list: a list value of n strings. */
static dray_status string_list(const char *const *s, size_t n, dray_value *out)
{
    dray_value *v = calloc(n + 1, sizeof(*v));
    dray_status st = v ? DRAY_OK : dray_set_error(DRAY_ENOMEM, "list");
    for (size_t i = 0; i < n && !st; i++)
        st = dray_string_create(s[i], &v[i]);
    if (!st)
        st = dray_list_create(v, n, out);
    for (size_t i = 0; v && i < n; i++)
        dray_value_release(&v[i]);
    free(v);
    return st;
}

/* key_cols: the columns of t named by list value `names` (from index `from`, n of them). */
static dray_status key_cols(const dray_table *t, const dray_value *names, size_t from, size_t n,
                            dray_column **cols)
{
    for (size_t k = 0; k < n; k++) {
        const char *name = dray_string_cstr(dray_list_get(names, from + k));
        int c = name ? dray_table_find(t, name) : -1;
        if (c < 0)
            return dray_set_error(DRAY_EINVAL, "no column '%s'", name ? name : "?");
        cols[k] = t->cols[c];
    }
    return DRAY_OK;
}

/* parts_list: a list value of the tables (taken). */
static dray_status parts_list(dray_table **tables, size_t n, dray_value *out)
{
    dray_value *v = calloc(n + 1, sizeof(*v));
    dray_status st = v ? DRAY_OK : dray_set_error(DRAY_ENOMEM, "buckets");
    size_t made = 0;
    for (size_t i = 0; i < n; i++) {
        if (!st && !(st = dray__part_value(tables[i], 0, &v[i])))
            made = i + 1;
        else if (st)
            dray_table_release(tables[i]);
    }
    if (!st)
        st = dray_list_create(v, n, out);
    for (size_t i = 0; i < made; i++)
        dray_value_release(&v[i]);
    free(v);
    return st;
}

/* file_size: bytes of the file at `path` (0 when it can't be read: only for the task stream). */
static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* spill_write: t as the Parquet file `path` (uncompressed, plain: written once, read once); a
 * "spill" event on rt's task stream when the dashboard records. */
static dray_status spill_write(dray_runtime *rt, const dray_table *t, const char *path)
{
    int64_t t0 = dray_events_now_ns();
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.codec = DRAY_PARQUET_NONE;
    o.dictionary = false;
    struct ArrowSchema s;
    struct ArrowArray a;
    dray_status st = dray_table_export(t, &s, &a);
    if (st)
        return st;
    dray_parquet_writer *w;
    if (!(st = dray_parquet_writer_open(path, &s, &o, &w))) {
        if (t->nrows > 0 && (st = dray_parquet_writer_write(w, &a)))
            dray_parquet_writer_abort(w);
        else
            st = dray_parquet_writer_close(w);
    }
    s.release(&s);
    a.release(&a);
    if (!st && dray_events_enabled(rt))
        dray_events_record(rt, DRAY_EVENT_SPILL, "frame.spill", t0, dray_events_now_ns(),
                           file_size(path));
    return st;
}

/* spill_read: the table in spilled file `path`, which is deleted; an "unspill" event on rt's task
 * stream when the dashboard records. */
static dray_status spill_read(dray_runtime *rt, const char *path, dray_table **out)
{
    int64_t t0 = dray_events_now_ns();
    uint64_t bytes = dray_events_enabled(rt) ? file_size(path) : 0;
    dray_parquet_file *pf;
    dray_status st = dray_parquet_open(path, &pf);
    if (st)
        return st;
    int n = dray_parquet_num_row_groups(pf);
    dray_table **parts = calloc((size_t)n + 1, sizeof(*parts));
    struct ArrowSchema s;
    if (!parts) {
        st = dray_set_error(DRAY_ENOMEM, "spill read");
    } else if (n == 0) {
        if (!(st = dray_parquet_schema(pf, &s))) {
            st = dray__table_empty_from_schema(&s, out);
            s.release(&s);
        }
    } else {
        int got = 0;
        for (; got < n && !st; got++) {
            struct ArrowArray a;
            if ((st = dray_parquet_read_row_group(pf, got, NULL, 0, &s, &a)))
                break;
            st = dray_table_import(&s, &a, &parts[got]);
            s.release(&s);
            if (st) {
                a.release(&a);
                break;
            }
        }
        if (!st)
            st = dray_table_concat(parts, (size_t)n, out);
        for (int i = 0; i < got; i++)
            dray_table_release(parts[i]);
    }
    free(parts);
    dray_parquet_close(pf);
    if (!st) {
        unlink(path);
        dray_events_record(rt, DRAY_EVENT_UNSPILL, "frame.spill", t0, dray_events_now_ns(), bytes);
    }
    return st;
}

/* split_by: tables of the rows of t whose bucket[i] is 0..k-1 (in order), as a list of partitions,
 * or with `spill` (a path prefix) as a list of the files they were written to. */
static dray_status split_by(dray_runtime *rt, const dray_table *t, const int32_t *bucket, size_t k,
                            const char *spill, dray_value *out)
{
    int64_t n = t->nrows;
    int64_t *count = calloc(k + 1, sizeof(*count)), *start = calloc(k + 1, sizeof(*start));
    int64_t *idx = malloc((size_t)(n ? n : 1) * sizeof(*idx));
    dray_table **tabs = calloc(k, sizeof(*tabs));
    dray_status st = DRAY_OK;
    if (!count || !start || !idx || !tabs) {
        st = dray_set_error(DRAY_ENOMEM, "split of %lld rows", (long long)n);
        goto out;
    }
    for (int64_t i = 0; i < n; i++)
        count[bucket[i]]++;
    for (size_t b = 1; b <= k; b++)
        start[b] = start[b - 1] + count[b - 1];
    memcpy(count, start, (k + 1) * sizeof(*count));
    for (int64_t i = 0; i < n; i++)
        idx[count[bucket[i]]++] = i;
    size_t made = 0;
    for (size_t b = 0; b < k && !st; b++)
        if (!(st = dray_table_take(t, idx + start[b], start[b + 1] - start[b], &tabs[b])))
            made = b + 1;
    if (!st && spill) {
        dray_value *paths = calloc(k + 1, sizeof(*paths));
        st = paths ? DRAY_OK : dray_set_error(DRAY_ENOMEM, "spill");
        for (size_t b = 0; b < k && !st; b++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s-%zu.parquet", spill, b);
            if (!(st = spill_write(rt, tabs[b], path)))
                st = dray_string_create(path, &paths[b]);
        }
        if (!st)
            st = dray_list_create(paths, k, out);
        for (size_t b = 0; paths && b < k; b++)
            dray_value_release(&paths[b]);
        free(paths);
        for (size_t b = 0; b < k; b++)
            dray_table_release(tabs[b]);
    } else if (!st) {
        st = parts_list(tabs, k, out);
    } else {
        for (size_t b = 0; b < made; b++)
            dray_table_release(tabs[b]);
    }
out:
    free(count);
    free(start);
    free(idx);
    free(tabs);
    return st;
}

/* gather: the concatenation of element j of list args[from..to). */
static dray_status gather(dray_runtime *rt, const dray_value *args, size_t from, size_t to, size_t j,
                          dray_table **out)
{
    size_t n = to - from;
    dray_table **t = calloc(n + 1, sizeof(*t));
    if (!t)
        return dray_set_error(DRAY_ENOMEM, "gather");
    dray_status st = DRAY_OK;
    bool *owned = calloc(n + 1, sizeof(*owned));
    if (!owned)
        st = dray_set_error(DRAY_ENOMEM, "gather");
    for (size_t i = 0; i < n && !st; i++) {
        const dray_value *e = dray_list_get(&args[from + i], j);
        dray__part *p = e ? dray__part_of(e) : NULL;
        if (p) {
            t[i] = p->t;
        } else if (e && e->type == DRAY_T_STRING) {
            st = spill_read(rt, dray_string_cstr(e), &t[i]);
            owned[i] = !st;
        } else {
            st = dray_set_error(DRAY_ETYPE, "gather: bucket %zu of input %zu is missing", j, i);
        }
    }
    if (!st)
        st = dray_table_concat(t, n, out);
    for (size_t i = 0; owned && i < n; i++)
        if (owned[i])
            dray_table_release(t[i]);
    free(owned);
    free(t);
    return st;
}

/* nodes_in: f's partitions as nodes of graph g (f's own graph, or identity nodes over refs started
 * now and pinned in g). */
static dray_status nodes_in(dray__fgraph *g, const dray_frame *f, dray_node *nodes)
{
    if (f->g == g) {
        memcpy(nodes, f->parts, f->nparts * sizeof(*nodes));
        return DRAY_OK;
    }
    dray_ref **refs = realloc(g->pinned, (g->n_pinned + f->nparts + 1) * sizeof(*refs));
    if (!refs)
        return dray_set_error(DRAY_ENOMEM, "frame");
    g->pinned = refs;
    dray_status st = dray_graph_submit(f->g->graph, f->parts, f->nparts, refs + g->n_pinned);
    if (st)
        return st;
    size_t base = g->n_pinned;
    g->n_pinned += f->nparts;
    for (size_t i = 0; i < f->nparts && !st; i++) {
        dray_value a = dray_value_of_ref(refs[base + i]);
        st = dray_graph_add_named(g->graph, NULL, "frame_identity", &a, 1, &nodes[i]);
    }
    return st;
}

static dray_status new_frame(const dray_frame *like, dray_table *schema, size_t nparts,
                             dray_frame **out)
{
    dray_frame *f = calloc(1, sizeof(*f));
    if (!f || !(f->parts = calloc(nparts + 1, sizeof(dray_node)))) {
        free(f);
        dray_table_release(schema);
        return dray_set_error(DRAY_ENOMEM, "frame");
    }
    f->rt = like->rt;
    f->g = like->g;
    f->g->refs++;
    f->schema = schema;
    f->nparts = nparts;
    *out = f;
    return DRAY_OK;
}

/* spill_prefix: null, or for a graph that spills the path prefix of input i's buckets in a new
 * shuffle (input 0 starts the shuffle's number). */
static dray_status spill_prefix(dray__fgraph *g, size_t i, dray_value *out)
{
    *out = dray_null();
    if (!g->spill_dir)
        return DRAY_OK;
    if (i == 0)
        g->spill_seq++;
    char p[4096];
    snprintf(p, sizeof(p), "%s/shuffle-%ld-%llu-%zu", g->spill_dir, (long)getpid(),
             (unsigned long long)g->spill_seq, i);
    return dray_string_create(p, out);
}

/* finish: hands r to *out on success, destroys it on failure. */
static dray_status finish(dray_status st, dray_frame *r, dray_frame **out)
{
    if (st) {
        dray_frame_destroy(r);
        return st;
    }
    *out = r;
    return DRAY_OK;
}

static bool same_schema(const dray_table *a, const dray_table *b)
{
    if (a->ncols != b->ncols)
        return false;
    for (size_t c = 0; c < a->ncols; c++)
        if (strcmp(a->names[c], b->names[c]) || a->cols[c]->type != b->cols[c]->type)
            return false;
    return true;
}

/* ---- concat and repartition ---- */

dray_status dray_frame_concat(dray_frame *const *frames, size_t n, dray_frame **out)
{
    if (n == 0)
        return dray_set_error(DRAY_EINVAL, "concat of no frames");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!same_schema(frames[i]->schema, frames[0]->schema))
            return dray_set_error(DRAY_EINVAL, "concat: frame %zu's columns differ from frame 0's", i);
        total += frames[i]->nparts;
    }
    dray_table *schema;
    dray_status st = dray__table_empty_like(frames[0]->schema, &schema);
    dray_frame *r;
    if (st || (st = new_frame(frames[0], schema, total, &r)))
        return st;
    size_t at = 0;
    for (size_t i = 0; i < n && !st; i++) {
        st = nodes_in(r->g, frames[i], r->parts + at);
        at += frames[i]->nparts;
    }
    return finish(st, r, out);
}

/* frame_concat_parts(parts...): one partition of all of them. */
DRAY_FUNCTION(frame_concat_parts)
{
    dray_table *t;
    dray_table **in = calloc(nargs + 1, sizeof(*in));
    if (!in)
        return dray_set_error(DRAY_ENOMEM, "concat");
    int64_t bad = 0;
    for (size_t i = 0; i < nargs; i++) {
        dray__part *p = dray__part_of(&args[i]);
        if (!p) {
            free(in);
            return dray_ctx_fail(ctx, DRAY_ETYPE, "frame_concat_parts: argument %zu", i);
        }
        in[i] = p->t;
        bad += p->bad_rows;
    }
    dray_status st = dray_table_concat(in, nargs, &t);
    free(in);
    return st ? st : dray__part_value(t, bad, result);
}

/* frame_split_part(part, piece, pieces): rows [piece*n/pieces, (piece+1)*n/pieces). */
DRAY_FUNCTION(frame_split_part)
{
    dray__part *p = dray__part_of(&args[0]);
    if (!p)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "frame_split_part: not a partition");
    int64_t n = p->t->nrows, k = args[1].u.i, m = args[2].u.i;
    dray_table *t;
    dray_status st = dray_table_slice(p->t, n * k / m, n * (k + 1) / m - n * k / m, &t);
    return st ? st : dray__part_value(t, k == 0 ? p->bad_rows : 0, result);
}

dray_status dray_frame_repartition(const dray_frame *f, size_t nparts, dray_frame **out)
{
    if (nparts == 0)
        return dray_set_error(DRAY_EINVAL, "repartition into 0 partitions");
    dray_table *schema;
    dray_status st = dray__table_empty_like(f->schema, &schema);
    dray_frame *r;
    if (st || (st = new_frame(f, schema, nparts, &r)))
        return st;
    size_t n = f->nparts;
    for (size_t j = 0; j < nparts && !st; j++) {
        if (nparts <= n) {
            size_t a = n * j / nparts, b = n * (j + 1) / nparts;
            dray_value *args = calloc(b - a + 1, sizeof(*args));
            if (!args) {
                st = dray_set_error(DRAY_ENOMEM, "repartition");
                break;
            }
            for (size_t i = a; i < b; i++)
                args[i - a] = dray_value_of_node(f->parts[i]);
            st = dray_graph_add_named(r->g->graph, NULL, "frame_concat_parts", args, b - a, &r->parts[j]);
            free(args);
        } else {
            /* output j takes a piece of input i = j*n/nparts; its outputs are [j0, j1) */
            size_t i = n * j / nparts, j0 = (i * nparts + n - 1) / n, j1 = ((i + 1) * nparts + n - 1) / n;
            dray_value a[3] = {dray_value_of_node(f->parts[i]), dray_int((int64_t)(j - j0)),
                               dray_int((int64_t)(j1 - j0))};
            st = dray_graph_add_named(r->g->graph, NULL, "frame_split_part", a, 3, &r->parts[j]);
        }
    }
    return finish(st, r, out);
}

/* ---- sample sort ----
 * spec = [nby, by..., desc flags (ints)...] */

enum { SAMPLES_PER_PART = 64 };

static dray_status sort_spec(const dray_value *spec, size_t *nby, bool **desc)
{
    *nby = (size_t)dray_list_get(spec, 0)->u.i;
    *desc = calloc(*nby + 1, sizeof(bool));
    if (!*desc)
        return dray_set_error(DRAY_ENOMEM, "sort");
    for (size_t k = 0; k < *nby; k++)
        (*desc)[k] = dray_list_get(spec, 1 + *nby + k)->u.i != 0;
    return DRAY_OK;
}

/* frame_sort_sample(part, spec): up to SAMPLES_PER_PART evenly spaced rows of the key columns. */
DRAY_FUNCTION(frame_sort_sample)
{
    dray__part *p = dray__part_of(&args[0]);
    if (!p)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "frame_sort_sample: not a partition");
    size_t nby = (size_t)dray_list_get(&args[1], 0)->u.i;
    const char **names = calloc(nby + 1, sizeof(*names));
    if (!names)
        return dray_set_error(DRAY_ENOMEM, "sort");
    for (size_t k = 0; k < nby; k++)
        names[k] = dray_string_cstr(dray_list_get(&args[1], 1 + k));
    dray_table *keys, *s;
    dray_status st = dray_table_select(p->t, names, nby, &keys);
    free(names);
    if (st)
        return st;
    int64_t n = keys->nrows, m = n < SAMPLES_PER_PART ? n : SAMPLES_PER_PART, idx[SAMPLES_PER_PART];
    for (int64_t i = 0; i < m; i++)
        idx[i] = (2 * i + 1) * n / (2 * m);
    st = dray_table_take(keys, idx, m, &s);
    dray_table_release(keys);
    return st ? st : dray__part_value(s, 0, result);
}

/* pick_splitters: k-1 rows of the sorted concatenation of the samples in[0..ns). */
static dray_status pick_splitters(dray_table *const *in, size_t ns, size_t k, const dray_value *spec,
                                  dray_table **out)
{
    size_t nby;
    bool *desc;
    dray_status st = sort_spec(spec, &nby, &desc);
    if (st)
        return st;
    dray_table *all = NULL;
    int64_t *idx = NULL;
    if ((st = dray_table_concat(in, ns, &all)))
        goto out;
    int64_t n = all->nrows;
    if (!(idx = malloc((size_t)(n + (int64_t)k + 1) * sizeof(*idx)))) {
        st = dray_set_error(DRAY_ENOMEM, "sort");
        goto out;
    }
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    if ((st = dray__sort_rows(all->cols, nby, desc, idx, n)))
        goto out;
    int64_t *pick = idx + n;
    size_t m = 0;
    for (size_t j = 1; j < k && n > 0; j++)
        pick[m++] = idx[(int64_t)j * n / (int64_t)k];
    st = dray_table_take(all, pick, (int64_t)m, out);
out:
    dray_table_release(all);
    free(idx);
    free(desc);
    return st;
}

/* frame_sort_splitters(k, spec, samples...): k-1 splitter rows chosen from the sorted samples. */
DRAY_FUNCTION(frame_sort_splitters)
{
    size_t ns = nargs - 2;
    dray_table **in = calloc(ns + 1, sizeof(*in)), *spl;
    if (!in)
        return dray_set_error(DRAY_ENOMEM, "sort");
    dray_status st = DRAY_OK;
    for (size_t i = 0; i < ns && !st; i++) {
        dray__part *p = dray__part_of(&args[2 + i]);
        if (!p)
            st = dray_ctx_fail(ctx, DRAY_ETYPE, "frame_sort_splitters: sample %zu", i);
        else
            in[i] = p->t;
    }
    if (!st && !(st = pick_splitters(in, ns, (size_t)args[0].u.i, &args[1], &spl)))
        st = dray__part_value(spl, 0, result);
    free(in);
    return st;
}

/* frame_sort_split(part, splitters, spec, spill prefix or null): the partition as a list of
 * k = splitters+1 ranges. */
DRAY_FUNCTION(frame_sort_split)
{
    dray__part *p = dray__part_of(&args[0]), *sp = dray__part_of(&args[1]);
    if (!p || !sp)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "frame_sort_split: not partitions");
    size_t nby;
    bool *desc;
    dray_status st = sort_spec(&args[2], &nby, &desc);
    if (st)
        return st;
    dray_column **keys = calloc(nby + 1, sizeof(*keys));
    int32_t *bucket = malloc((size_t)(p->t->nrows + 1) * sizeof(*bucket));
    int64_t ns = sp->t->nrows;
    if (!keys || !bucket)
        st = dray_set_error(DRAY_ENOMEM, "sort");
    else
        st = key_cols(p->t, &args[2], 1, nby, keys);
    for (int64_t i = 0; !st && i < p->t->nrows; i++) {
        /* the first splitter greater than the row (binary search): ties go right, consistently */
        int64_t lo = 0, hi = ns;
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            if (dray__rows_cmp(keys, i, sp->t->cols, mid, nby, desc) < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
        bucket[i] = (int32_t)lo;
    }
    if (!st)
        st = split_by(dray_ctx_runtime(ctx), p->t, bucket, (size_t)ns + 1,
                      args[3].type == DRAY_T_STRING ? dray_string_cstr(&args[3]) : NULL, result);
    free(keys);
    free(bucket);
    free(desc);
    return st;
}

/* frame_sort_merge(j, spec, lists...): range j of every partition, sorted. */
DRAY_FUNCTION(frame_sort_merge)
{
    size_t nby;
    bool *desc;
    dray_status st = sort_spec(&args[1], &nby, &desc);
    if (st)
        return st;
    dray_table *t = NULL, *r = NULL;
    dray_column **keys = calloc(nby + 1, sizeof(*keys));
    int64_t *idx = NULL;
    if (!keys)
        st = dray_set_error(DRAY_ENOMEM, "sort");
    if (!st)
        st = gather(dray_ctx_runtime(ctx), args, 2, nargs, (size_t)args[0].u.i, &t);
    if (!st)
        st = key_cols(t, &args[1], 1, nby, keys);
    if (!st && !(idx = malloc((size_t)(t->nrows + 1) * sizeof(*idx))))
        st = dray_set_error(DRAY_ENOMEM, "sort");
    if (!st) {
        for (int64_t i = 0; i < t->nrows; i++)
            idx[i] = i;
        if (!(st = dray__sort_rows(keys, nby, desc, idx, t->nrows)) &&
            !(st = dray_table_take(t, idx, t->nrows, &r)))
            st = dray__part_value(r, 0, result);
    }
    dray_table_release(t);
    free(keys);
    free(idx);
    free(desc);
    return st;
}

dray_status dray_frame_sort(const dray_frame *f, const char *const *by, const bool *desc, size_t nby,
                            dray_frame **out)
{
    if (nby == 0 || f->nparts == 0)
        return dray_set_error(DRAY_EINVAL, "sort: needs columns and partitions");
    for (size_t k = 0; k < nby; k++)
        if (dray_table_find(f->schema, by[k]) < 0)
            return dray_set_error(DRAY_EINVAL, "sort: no column '%s'", by[k]);
    size_t n = f->nparts;
    dray_value *items = calloc(1 + 2 * nby, sizeof(*items)), spec = dray_null();
    dray_status st = items ? DRAY_OK : dray_set_error(DRAY_ENOMEM, "sort");
    if (!st) {
        items[0] = dray_int((int64_t)nby);
        for (size_t k = 0; k < nby && !st; k++) {
            st = dray_string_create(by[k], &items[1 + k]);
            items[1 + nby + k] = dray_int(desc && desc[k]);
        }
        if (!st)
            st = dray_list_create(items, 1 + 2 * nby, &spec);
        for (size_t k = 0; k < 1 + 2 * nby; k++)
            dray_value_release(&items[k]);
    }
    free(items);
    dray_table *schema = NULL;
    dray_frame *r = NULL;
    dray_node *samples = calloc(n + 1, sizeof(*samples)), *splits = calloc(n + 1, sizeof(*splits)), spl;
    dray_value *args = calloc(n + 3, sizeof(*args));
    if (!st && (!samples || !splits || !args))
        st = dray_set_error(DRAY_ENOMEM, "sort");
    if (!st && !(st = dray__table_empty_like(f->schema, &schema)))
        st = new_frame(f, schema, n, &r);
    dray_graph *g = f->g->graph;
    for (size_t i = 0; i < n && !st; i++) {
        dray_value a[2] = {dray_value_of_node(f->parts[i]), spec};
        st = dray_graph_add_named(g, NULL, "frame_sort_sample", a, 2, &samples[i]);
    }
    dray_value splv = dray_null();
    if (!st && f->g->spill_dir) {
        /* out of core: sample in a pass of its own, so each partition is dropped once sampled
         * (and made again for the split) instead of every partition waiting for the splitters */
        dray_value *res = calloc(n + 1, sizeof(*res));
        dray_table **tabs = calloc(n + 1, sizeof(*tabs)), *spt;
        st = res && tabs ? dray__graph_run(g, f->rt, samples, n, res) : dray_set_error(DRAY_ENOMEM, "sort");
        bool ran = !st;
        for (size_t i = 0; i < n && !st; i++)
            if (!dray__part_of(&res[i]))
                st = dray_set_error(DRAY_ETYPE, "sort: sample %zu is not a table", i);
            else
                tabs[i] = dray__part_of(&res[i])->t;
        if (!st && !(st = pick_splitters(tabs, n, n, &spec, &spt)))
            st = dray__part_value(spt, 0, &splv);
        for (size_t i = 0; ran && i < n; i++)
            dray_value_release(&res[i]);
        free(res);
        free(tabs);
    } else if (!st) {
        args[0] = dray_int((int64_t)n);
        args[1] = spec;
        for (size_t i = 0; i < n; i++)
            args[2 + i] = dray_value_of_node(samples[i]);
        if (!(st = dray_graph_add_named(g, NULL, "frame_sort_splitters", args, n + 2, &spl)))
            splv = dray_value_of_node(spl);
    }
    for (size_t i = 0; i < n && !st; i++) {
        dray_value a[4] = {dray_value_of_node(f->parts[i]), splv, spec, dray_null()};
        if ((st = spill_prefix(f->g, i, &a[3])))
            break;
        st = dray_graph_add_named(g, NULL, "frame_sort_split", a, 4, &splits[i]);
        dray_value_release(&a[3]);
    }
    for (size_t j = 0; j < n && !st; j++) {
        args[0] = dray_int((int64_t)j);
        args[1] = spec;
        for (size_t i = 0; i < n; i++)
            args[2 + i] = dray_value_of_node(splits[i]);
        st = dray_graph_add_named(g, NULL, "frame_sort_merge", args, n + 2, &r->parts[j]);
    }
    free(samples);
    free(splits);
    free(args);
    dray_value_release(&spec);
    if (splv.type != DRAY_T_NODE)
        dray_value_release(&splv);
    return finish(st, r, out);
}

/* ---- hash partitioning (join, drop_duplicates) ---- */

/* frame_hash_split(part, names, from, nkeys, k, spill prefix or null): the partition as a list of k
 * buckets by key hash. */
DRAY_FUNCTION(frame_hash_split)
{
    dray__part *p = dray__part_of(&args[0]);
    if (!p)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "frame_hash_split: not a partition");
    size_t from = (size_t)args[2].u.i, nk = (size_t)args[3].u.i, k = (size_t)args[4].u.i;
    dray_column **keys = calloc(nk + 1, sizeof(*keys));
    int32_t *bucket = malloc((size_t)(p->t->nrows + 1) * sizeof(*bucket));
    dray_status st = keys && bucket ? key_cols(p->t, &args[1], from, nk, keys)
                                    : dray_set_error(DRAY_ENOMEM, "hash split");
    for (int64_t i = 0; !st && i < p->t->nrows; i++)
        bucket[i] = (int32_t)(dray__row_hash(keys, nk, i, true) % k);
    if (!st)
        st = split_by(dray_ctx_runtime(ctx), p->t, bucket, k,
                      args[5].type == DRAY_T_STRING ? dray_string_cstr(&args[5]) : NULL,
                      result);
    free(keys);
    free(bucket);
    return st;
}

/* ---- join ----
 * spec = [nkeys, left keys..., right keys..., how] */

/* join_tables: the local hash join of l and r (building on r). */
/* pair_push: appends the row pair (i, j) to the join's index arrays, doubling both when full. */
static dray_status pair_push(int64_t **li, int64_t **ri, int64_t *on, int64_t *ocap, int64_t i,
                             int64_t j)
{
    if (*on == *ocap) {
        size_t cap = (size_t)*ocap * 2;
        int64_t *a = realloc(*li, cap * sizeof(**li));
        if (a)
            *li = a;
        int64_t *b = a ? realloc(*ri, cap * sizeof(**ri)) : NULL;
        if (b)
            *ri = b;
        if (!a || !b)
            return dray_set_error(DRAY_ENOMEM, "join output: %zu row pairs", cap);
        *ocap = (int64_t)cap;
    }
    (*li)[*on] = i;
    (*ri)[(*on)++] = j;
    return DRAY_OK;
}

static dray_status join_tables(const dray_table *l, const dray_table *r, const dray_value *spec,
                               dray_table **out)
{
    size_t nk = (size_t)dray_list_get(spec, 0)->u.i;
    bool left = dray_list_get(spec, 1 + 2 * nk)->u.i == DRAY_JOIN_LEFT;
    dray_column **lk = calloc(nk + 1, sizeof(*lk)), **rk = calloc(nk + 1, sizeof(*rk));
    int64_t nr = r->nrows, nl = l->nrows, cap = 16;
    while (cap < nr * 2)
        cap <<= 1;
    int64_t *head = malloc((size_t)cap * sizeof(*head)), *next = malloc((size_t)(nr + 1) * sizeof(*next));
    uint64_t *rh = malloc((size_t)(nr + 1) * sizeof(*rh));
    int64_t ocap = nl + 16, on = 0;
    int64_t *li = malloc((size_t)ocap * sizeof(*li)), *ri = malloc((size_t)ocap * sizeof(*ri));
    dray_column **cols = calloc(l->ncols + r->ncols + 1, sizeof(*cols));
    char **names = calloc(l->ncols + r->ncols + 1, sizeof(*names));
    size_t nc = 0;
    dray_status st = DRAY_OK;
    if (!lk || !rk || !head || !next || !rh || !li || !ri || !cols || !names) {
        st = dray_set_error(DRAY_ENOMEM, "join");
        goto out;
    }
    if ((st = key_cols(l, spec, 1, nk, lk)) || (st = key_cols(r, spec, 1 + nk, nk, rk)))
        goto out;
    for (int64_t s = 0; s < cap; s++)
        head[s] = -1;
    for (int64_t j = nr - 1; j >= 0; j--) { /* chains in row order */
        bool null = false;
        for (size_t k = 0; k < nk; k++)
            null |= !dray_column_is_valid(rk[k], j);
        if (null)
            continue;
        rh[j] = dray__row_hash(rk, nk, j, true);
        int64_t s = (int64_t)(rh[j] & (uint64_t)(cap - 1));
        next[j] = head[s];
        head[s] = j;
    }
    for (int64_t i = 0; i < nl; i++) {
        bool null = false, hit = false;
        for (size_t k = 0; k < nk; k++)
            null |= !dray_column_is_valid(lk[k], i);
        if (!null) {
            uint64_t h = dray__row_hash(lk, nk, i, true);
            for (int64_t j = head[h & (uint64_t)(cap - 1)]; j >= 0; j = next[j]) {
                if (rh[j] != h || !dray__rows_equal(lk, i, rk, j, nk))
                    continue;
                if ((st = pair_push(&li, &ri, &on, &ocap, i, j)))
                    goto out;
                hit = true;
            }
        }
        if (!hit && left) {
            if ((st = pair_push(&li, &ri, &on, &ocap, i, -1)))
                goto out;
        }
    }
    for (size_t c = 0; c < l->ncols && !st; c++) {
        names[nc] = strdup(l->names[c]);
        st = names[nc] ? dray__column_take(l->cols[c], li, on, &cols[nc]) : dray_set_error(DRAY_ENOMEM, "join");
        nc++;
    }
    for (size_t c = 0; c < r->ncols && !st; c++) {
        bool is_key = false;
        for (size_t k = 0; k < nk; k++)
            is_key |= !strcmp(r->names[c], dray_string_cstr(dray_list_get(spec, 1 + nk + k)));
        if (is_key)
            continue;
        char buf[512];
        snprintf(buf, sizeof(buf), "%s%s", r->names[c], dray_table_find(l, r->names[c]) >= 0 ? "_right" : "");
        names[nc] = strdup(buf);
        st = names[nc] ? dray__column_take_nullable(r->cols[c], ri, on, &cols[nc])
                       : dray_set_error(DRAY_ENOMEM, "join");
        nc++;
    }
    if (!st)
        st = dray_table_create((const char *const *)names, cols, nc, out);
out:
    for (size_t c = 0; c < nc; c++) {
        free(names[c]);
        dray_column_release(cols[c]);
    }
    free(names);
    free(cols);
    free(lk);
    free(rk);
    free(head);
    free(next);
    free(rh);
    free(li);
    free(ri);
    return st;
}

/* frame_join_local(left part, right part, spec): broadcast join of one left partition. */
DRAY_FUNCTION(frame_join_local)
{
    dray__part *l = dray__part_of(&args[0]), *r = dray__part_of(&args[1]);
    if (!l || !r)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "frame_join_local: not partitions");
    dray_table *t;
    dray_status st = join_tables(l->t, r->t, &args[2], &t);
    return st ? st : dray__part_value(t, 0, result);
}

/* frame_join_bucket(j, spec, nleft, left lists..., right lists...): bucket j of both sides joined. */
DRAY_FUNCTION(frame_join_bucket)
{
    size_t j = (size_t)args[0].u.i, nl = (size_t)args[2].u.i;
    dray_table *l = NULL, *r = NULL, *t = NULL;
    dray_status st = gather(dray_ctx_runtime(ctx), args, 3, 3 + nl, j, &l);
    if (!st)
        st = gather(dray_ctx_runtime(ctx), args, 3 + nl, nargs, j, &r);
    if (!st)
        st = join_tables(l, r, &args[1], &t);
    dray_table_release(l);
    dray_table_release(r);
    return st ? st : dray__part_value(t, 0, result);
}

dray_status dray_frame_join(const dray_frame *left, const dray_frame *right,
                            const char *const *left_on, const char *const *right_on, size_t nkeys,
                            dray_join_how how, dray_frame **out)
{
    if (nkeys == 0 || left->nparts == 0 || right->nparts == 0)
        return dray_set_error(DRAY_EINVAL, "join: needs keys and partitions on both sides");
    for (size_t k = 0; k < nkeys; k++) {
        int a = dray_table_find(left->schema, left_on[k]), b = dray_table_find(right->schema, right_on[k]);
        if (a < 0 || b < 0)
            return dray_set_error(DRAY_EINVAL, "join: no column '%s' on the %s", a < 0 ? left_on[k] : right_on[k],
                                  a < 0 ? "left" : "right");
        dray_col_type ta = dray_table_column(left->schema, (size_t)a)->type,
                   tb = dray_table_column(right->schema, (size_t)b)->type;
        bool sa = ta == DRAY_DT_UTF8 || ta == DRAY_DT_DICT, sb = tb == DRAY_DT_UTF8 || tb == DRAY_DT_DICT;
        if (sa != sb)
            return dray_set_error(DRAY_ETYPE, "join: key '%s' is %s, '%s' is %s", left_on[k],
                                  dray_col_type_name(ta), right_on[k], dray_col_type_name(tb));
    }
    const char **names = calloc(2 * nkeys + 1, sizeof(*names));
    dray_value spec = dray_null(), kl = dray_null();
    if (!names)
        return dray_set_error(DRAY_ENOMEM, "join");
    for (size_t k = 0; k < nkeys; k++) {
        names[k] = left_on[k];
        names[nkeys + k] = right_on[k];
    }
    dray_status st = string_list(names, 2 * nkeys, &kl);
    free(names);
    if (!st) {
        /* spec = [nkeys, keys..., how] */
        size_t n = 2 + 2 * nkeys;
        dray_value *items = calloc(n, sizeof(*items));
        if (!items) {
            st = dray_set_error(DRAY_ENOMEM, "join");
        } else {
            items[0] = dray_int((int64_t)nkeys);
            for (size_t k = 0; k < 2 * nkeys; k++)
                items[1 + k] = *dray_list_get(&kl, k);
            items[n - 1] = dray_int(how);
            st = dray_list_create(items, n, &spec);
            free(items);
        }
    }
    /* the result schema: join the empty schemas */
    dray_table *schema = NULL;
    dray_frame *r = NULL;
    if (!st && !(st = join_tables(left->schema, right->schema, &spec, &schema)))
        st = new_frame(left, schema, left->nparts, &r);
    dray_node *rn = calloc(right->nparts + 1, sizeof(*rn)), *ls = calloc(left->nparts + 1, sizeof(*ls)),
              *rs = calloc(right->nparts + 1, sizeof(*rs));
    dray_value *args = calloc(3 + left->nparts + right->nparts, sizeof(*args));
    if (!st && (!rn || !ls || !rs || !args))
        st = dray_set_error(DRAY_ENOMEM, "join");
    if (!st)
        st = nodes_in(r->g, right, rn);
    dray_graph *g = left->g->graph;
    size_t k = left->nparts;
    if (!st && right->nparts == 1) {
        for (size_t i = 0; i < k && !st; i++) {
            dray_value a[3] = {dray_value_of_node(left->parts[i]), dray_value_of_node(rn[0]), spec};
            st = dray_graph_add_named(g, NULL, "frame_join_local", a, 3, &r->parts[i]);
        }
    } else if (!st) {
        for (size_t i = 0; i < left->nparts + right->nparts && !st; i++) {
            bool l = i < left->nparts;
            dray_value a[6] = {dray_value_of_node(l ? left->parts[i] : rn[i - left->nparts]), kl,
                               dray_int(l ? 0 : (int64_t)nkeys), dray_int((int64_t)nkeys),
                               dray_int((int64_t)k), dray_null()};
            if ((st = spill_prefix(left->g, i, &a[5])))
                break;
            st = dray_graph_add_named(g, NULL, "frame_hash_split", a, 6,
                                      l ? &ls[i] : &rs[i - left->nparts]);
            dray_value_release(&a[5]);
        }
        for (size_t j = 0; j < k && !st; j++) {
            args[0] = dray_int((int64_t)j);
            args[1] = spec;
            args[2] = dray_int((int64_t)left->nparts);
            for (size_t i = 0; i < left->nparts; i++)
                args[3 + i] = dray_value_of_node(ls[i]);
            for (size_t i = 0; i < right->nparts; i++)
                args[3 + left->nparts + i] = dray_value_of_node(rs[i]);
            st = dray_graph_add_named(g, NULL, "frame_join_bucket", args, 3 + left->nparts + right->nparts,
                                      &r->parts[j]);
        }
    }
    free(rn);
    free(ls);
    free(rs);
    free(args);
    dray_value_release(&spec);
    dray_value_release(&kl);
    return finish(st, r, out);
}

/* ---- drop_duplicates ---- */

/* frame_dedup_bucket(j, names, nk, lists...): bucket j with each key's first row only. */
DRAY_FUNCTION(frame_dedup_bucket)
{
    size_t j = (size_t)args[0].u.i, nk = (size_t)args[2].u.i;
    dray_table *t = NULL, *r = NULL;
    dray_column **keys = calloc(nk + 1, sizeof(*keys));
    int64_t *keep = NULL, *slot = NULL, cap = 16;
    dray_status st = keys ? gather(dray_ctx_runtime(ctx), args, 3, nargs, j, &t)
                          : dray_set_error(DRAY_ENOMEM, "dedup");
    if (!st)
        st = key_cols(t, &args[1], 0, nk, keys);
    if (!st) {
        while (cap < t->nrows * 2)
            cap <<= 1;
        keep = malloc((size_t)(t->nrows + 1) * sizeof(*keep));
        slot = malloc((size_t)cap * sizeof(*slot));
        if (!keep || !slot)
            st = dray_set_error(DRAY_ENOMEM, "dedup");
    }
    int64_t nkeep = 0;
    for (int64_t s = 0; !st && s < cap; s++)
        slot[s] = -1;
    for (int64_t i = 0; !st && i < t->nrows; i++) {
        int64_t s = (int64_t)(dray__row_hash(keys, nk, i, true) & (uint64_t)(cap - 1));
        while (slot[s] >= 0 && !dray__rows_equal(keys, slot[s], keys, i, nk))
            s = (s + 1) & (cap - 1);
        if (slot[s] < 0) {
            slot[s] = i;
            keep[nkeep++] = i;
        }
    }
    if (!st && !(st = dray_table_take(t, keep, nkeep, &r)))
        st = dray__part_value(r, 0, result);
    dray_table_release(t);
    free(keys);
    free(keep);
    free(slot);
    return st;
}

dray_status dray_frame_drop_duplicates(const dray_frame *f, const char *const *subset, size_t n,
                                       dray_frame **out)
{
    const dray_table *s = f->schema;
    if (!subset || n == 0) {
        subset = (const char *const *)s->names;
        n = s->ncols;
    }
    for (size_t k = 0; k < n; k++)
        if (dray_table_find(s, subset[k]) < 0)
            return dray_set_error(DRAY_EINVAL, "drop_duplicates: no column '%s'", subset[k]);
    size_t k = f->nparts;
    dray_value names = dray_null();
    dray_table *schema = NULL;
    dray_frame *r = NULL;
    dray_node *split = calloc(k + 1, sizeof(*split));
    dray_value *args = calloc(k + 3, sizeof(*args));
    dray_status st = split && args ? string_list(subset, n, &names) : dray_set_error(DRAY_ENOMEM, "dedup");
    if (!st && !(st = dray__table_empty_like(s, &schema)))
        st = new_frame(f, schema, k, &r);
    for (size_t i = 0; i < k && !st; i++) {
        dray_value a[6] = {dray_value_of_node(f->parts[i]), names, dray_int(0), dray_int((int64_t)n),
                           dray_int((int64_t)k), dray_null()};
        if ((st = spill_prefix(f->g, i, &a[5])))
            break;
        st = dray_graph_add_named(f->g->graph, NULL, "frame_hash_split", a, 6, &split[i]);
        dray_value_release(&a[5]);
    }
    for (size_t j = 0; j < k && !st; j++) {
        args[0] = dray_int((int64_t)j);
        args[1] = names;
        args[2] = dray_int((int64_t)n);
        for (size_t i = 0; i < k; i++)
            args[3 + i] = dray_value_of_node(split[i]);
        st = dray_graph_add_named(f->g->graph, NULL, "frame_dedup_bucket", args, k + 3, &r->parts[j]);
    }
    free(split);
    free(args);
    dray_value_release(&names);
    return finish(st, r, out);
}
