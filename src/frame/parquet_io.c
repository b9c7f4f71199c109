/* Frames and Parquet: to_parquet writes each partition in its own task through the parquet module
 * (speaking the Arrow C Data Interface); read_parquet makes one partition per row group, projected,
 * with row groups ruled out by the filter's statistics skipped before any task runs. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "frame_internal.h"

/* frame_to_parquet(part, path, codec, row_group_rows, dictionary, level): rows written. */
DRAY_FUNCTION(frame_to_parquet)
{
    dray__part *p = dray__part_of(&args[0]);
    if (!p)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "frame_to_parquet: not a partition");
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.codec = (dray_parquet_codec)args[2].u.i;
    o.row_group_rows = args[3].u.i;
    o.dictionary = args[4].u.i != 0;
    o.compression_level = (int)args[5].u.i;
    struct ArrowSchema s;
    struct ArrowArray a;
    dray_status st = dray_table_export(p->t, &s, &a);
    if (st)
        return st;
    dray_parquet_writer *w;
    if (!(st = dray_parquet_writer_open(dray_string_cstr(&args[1]), &s, &o, &w))) {
        if ((st = dray_parquet_writer_write(w, &a)))
            dray_parquet_writer_abort(w);
        else
            st = dray_parquet_writer_close(w);
    }
    s.release(&s);
    a.release(&a);
    if (!st)
        *result = dray_int(dray_table_num_rows(p->t));
    return st;
}

dray_status dray_frame_to_parquet(const dray_frame *f, const char *dir,
                                  const dray_parquet_write_opts *opts)
{
    dray_parquet_write_opts def;
    if (!opts) {
        dray_parquet_write_opts_init(&def);
        opts = &def;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return dray_set_error(DRAY_EIO, "to_parquet: cannot create '%s': %s", dir, strerror(errno));
    size_t n = f->nparts;
    dray_node *nodes = calloc(n + 1, sizeof(*nodes));
    dray_value *res = calloc(n + 1, sizeof(*res));
    dray_status st = nodes && res ? DRAY_OK : dray_set_error(DRAY_ENOMEM, "to_parquet");
    for (size_t i = 0; i < n && !st; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/part-%05zu.parquet", dir, i);
        dray_value a[6] = {dray_value_of_node(f->parts[i]), dray_null(), dray_int(opts->codec),
                           dray_int(opts->row_group_rows), dray_int(opts->dictionary),
                           dray_int(opts->compression_level)};
        if ((st = dray_string_create(path, &a[1])))
            break;
        st = dray_graph_add_named(f->g->graph, NULL, "frame_to_parquet", a, 6, &nodes[i]);
        dray_value_release(&a[1]);
    }
    if (!st && (st = dray__graph_run(f->g->graph, f->rt, nodes, n, res)) == DRAY_OK)
        for (size_t i = 0; i < n; i++)
            dray_value_release(&res[i]);
    free(nodes);
    free(res);
    return st;
}

/* ---- reading ---- */

/* frame_pq_read(path, rg, columns (list or null), filter (string or null)): one row group. */
DRAY_FUNCTION(frame_pq_read)
{
    const char *path = dray_string_cstr(&args[0]);
    dray_parquet_file *pf;
    dray_status st = dray_parquet_open(path, &pf);
    if (st)
        return st;
    size_t nc = args[2].type == DRAY_T_LIST ? dray_list_len(&args[2]) : 0;
    int *cols = calloc(nc + 1, sizeof(*cols));
    dray_table *t = NULL, *r = NULL;
    if (!cols) {
        st = dray_set_error(DRAY_ENOMEM, "read_parquet");
        goto out;
    }
    for (size_t i = 0; i < nc; i++) {
        const char *name = dray_string_cstr(dray_list_get(&args[2], i));
        if ((cols[i] = dray_parquet_column_index(pf, name)) < 0) {
            st = dray_set_error(DRAY_EINVAL, "read_parquet: '%s' has no column '%s'", path, name);
            goto out;
        }
    }
    struct ArrowSchema s;
    struct ArrowArray a;
    if ((st = dray_parquet_read_row_group(pf, (int)args[1].u.i, nc ? cols : NULL, nc, &s, &a)))
        goto out;
    st = dray_table_import(&s, &a, &t);
    s.release(&s);
    if (st) {
        a.release(&a);
        goto out;
    }
    if (args[3].type == DRAY_T_STRING) {
        if ((st = dray_table_filter(t, dray_string_cstr(&args[3]), &r)))
            goto out;
        dray_table_release(t);
        t = r;
    }
    st = dray__part_value(t, 0, result);
    t = NULL;
out:
    dray_table_release(t);
    free(cols);
    dray_parquet_close(pf);
    return st;
}

typedef struct rg_ctx {
    const dray_parquet_file *f;
    int rg;
    int64_t rows;
} rg_ctx;

static bool rg_stats(void *ctx, const char *column, dray__col_stats *out)
{
    const rg_ctx *c = ctx;
    int col = dray_parquet_column_index(c->f, column);
    dray_parquet_stats s;
    if (col < 0 || dray_parquet_column_stats(c->f, c->rg, col, &s) != DRAY_OK)
        return false;
    memset(out, 0, sizeof(*out));
    out->rows = c->rows;
    out->null_count = s.null_count;
    out->has_min_max = s.has_min_max;
    out->is_str = s.min_b != NULL;
    out->min_f = s.min_f;
    out->max_f = s.max_f;
    out->min_s = s.min_b;
    out->max_s = s.max_b;
    out->min_len = s.min_len;
    out->max_len = s.max_len;
    return true;
}

dray_status dray_frame_read_parquet(dray_runtime *rt, const char *pattern,
                                    const dray_parquet_read_opts *opts, dray_frame **out)
{
    dray_parquet_read_opts def = {NULL, 0, NULL};
    if (!opts)
        opts = &def;
    glob_t gl;
    dray_status st = dray__glob(pattern, "read_parquet", &gl);
    if (st)
        return st;
    dray_parquet_file *pf = NULL;
    dray_table *schema = NULL, *full = NULL;
    dray_expr *filter = NULL;
    dray_frame *f = NULL;
    dray_value cols = dray_null(), fv = dray_null();
    /* the schema: the first file's columns, projected */
    struct ArrowSchema s;
    if ((st = dray_parquet_open(gl.gl_pathv[0], &pf)) || (st = dray_parquet_schema(pf, &s)))
        goto out;
    st = dray__table_empty_from_schema(&s, &full);
    s.release(&s);
    if (st)
        goto out;
    if (opts->columns) {
        if ((st = dray_table_select(full, opts->columns, opts->ncolumns, &schema)))
            goto out;
        dray_value *v = calloc(opts->ncolumns + 1, sizeof(*v));
        if (!v) {
            st = dray_set_error(DRAY_ENOMEM, "read_parquet");
            goto out;
        }
        for (size_t i = 0; i < opts->ncolumns && !st; i++)
            st = dray_string_create(opts->columns[i], &v[i]);
        if (!st)
            st = dray_list_create(v, opts->ncolumns, &cols);
        for (size_t i = 0; i < opts->ncolumns; i++)
            dray_value_release(&v[i]);
        free(v);
        if (st)
            goto out;
    } else {
        schema = dray_table_retain(full);
    }
    if (opts->filter) {
        /* compiled against the projected columns: the filter may only use those */
        if ((st = dray_expr_compile(opts->filter, schema, &filter)) ||
            (st = dray_string_create(opts->filter, &fv)))
            goto out;
    }
    st = dray__frame_new_empty(rt, schema, &f);
    schema = NULL; /* taken */
    if (st)
        goto out;
    for (size_t i = 0; i < gl.gl_pathc && !st; i++) {
        dray_parquet_close(pf);
        pf = NULL;
        if ((st = dray_parquet_open(gl.gl_pathv[i], &pf)))
            break;
        dray_value path;
        if ((st = dray_string_create(gl.gl_pathv[i], &path)))
            break;
        int nrg = dray_parquet_num_row_groups(pf);
        for (int rg = 0; rg < nrg && !st; rg++) {
            rg_ctx c = {pf, rg, dray_parquet_row_group_num_rows(pf, rg)};
            if (filter && !dray__expr_may_match(filter, rg_stats, &c)) {
                f->g->skipped++;
                continue;
            }
            dray_node *np = realloc(f->parts, (f->nparts + 1) * sizeof(*np));
            if (!np) {
                st = dray_set_error(DRAY_ENOMEM, "read_parquet");
                break;
            }
            f->parts = np;
            dray_value a[4] = {path, dray_int(rg), cols, fv};
            if (!(st = dray_graph_add_named(f->g->graph, NULL, "frame_pq_read", a, 4, &f->parts[f->nparts])))
                f->nparts++;
        }
        dray_value_release(&path);
    }
    if (!st) {
        *out = f;
        f = NULL;
    }
out:
    dray_frame_destroy(f);
    dray_expr_destroy(filter);
    dray_value_release(&cols);
    dray_value_release(&fv);
    dray_table_release(schema);
    dray_table_release(full);
    dray_parquet_close(pf);
    globfree(&gl);
    return st;
}

int64_t dray_frame_skipped_row_groups(const dray_frame *f)
{
    return f->g->skipped;
}
