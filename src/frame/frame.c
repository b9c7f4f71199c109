/* Lazy partitioned frames on the core runtime: each partition is a node of a shared lazy graph whose
 * tasks (registered below by name) read a CSV byte range, filter, assign, select or map a partition.
 * Partitions travel between tasks as "frame.table" extension values. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv.h"
#include "frame_internal.h"

/* ---- partition values ---- */

static void part_destroy(dray_ext_obj *o)
{
    dray__part *p = (dray__part *)o;
    dray_table_release(p->t);
    free(p);
}
static dray_ext_type part_type = {"frame.table", part_destroy, dray__part_encode, dray__part_decode,
                                  NULL};
DRAY_EXT_TYPE(part_type)

dray_status dray__part_value(dray_table *t, int64_t bad_rows, dray_value *out)
{
    dray__part *p = calloc(1, sizeof(*p));
    if (!p) {
        dray_table_release(t);
        return dray_set_error(DRAY_ENOMEM, "partition");
    }
    dray_ext_obj_init(&p->hdr, &part_type);
    p->t = t;
    p->bad_rows = bad_rows;
    *out = dray_value_of_ext(&p->hdr);
    return DRAY_OK;
}

dray__part *dray__part_of(const dray_value *v)
{
    if (v->type != DRAY_T_EXT || v->u.ext->type != &part_type)
        return NULL;
    return (dray__part *)v->u.ext;
}

static void plan_obj_destroy(dray_ext_obj *o) { dray__csv_plan_destroy((dray__csv_plan *)o); }
static dray_status plan_obj_encode(const dray_ext_obj *o,
                                   dray_status (*write)(void *buf, const void *data, size_t len),
                                   void *buf)
{
    return dray__csv_plan_encode((const dray__csv_plan *)o, write, buf);
}
static dray_status plan_obj_decode(const void *data, size_t len, dray_ext_obj **out);
static dray_ext_type plan_type = {"frame.csv_plan", plan_obj_destroy, plan_obj_encode, plan_obj_decode,
                                  NULL};
DRAY_EXT_TYPE(plan_type)

static dray_status plan_obj_decode(const void *data, size_t len, dray_ext_obj **out)
{
    dray__csv_plan *p;
    dray_status st = dray__csv_plan_decode(data, len, &p);
    if (st)
        return st;
    dray_ext_obj_init(&p->hdr, &plan_type);
    *out = &p->hdr;
    return DRAY_OK;
}

/* ---- tasks ---- */

#define ARG_PART(i)                                                                                \
    dray__part_of(&args[i]);                                                                       \
    if (!dray__part_of(&args[i]))                                                                  \
        return dray_ctx_fail(ctx, DRAY_ETYPE, "argument %d is not a frame partition", (int)(i));

/* frame_csv_quotes(path, start, end, quote): quote characters in bytes [start, end). */
DRAY_FUNCTION(frame_csv_quotes)
{
    const char *data;
    size_t len;
    dray_status st = dray__csv_map(dray_string_cstr(&args[0]), &data, &len);
    if (st)
        return st;
    size_t s = (size_t)args[1].u.i, e = (size_t)args[2].u.i;
    if (e > len)
        e = len;
    int64_t n = s < e ? dray__csv_count_quotes(data + s, e - s, (char)args[3].u.i) : 0;
    dray__csv_unmap(data, len);
    *result = dray_int(n);
    return DRAY_OK;
}

/* frame_csv_parse(plan, path, start, end, quotes before start...): one byte range. */
DRAY_FUNCTION(frame_csv_parse)
{
    if (args[0].type != DRAY_T_EXT || args[0].u.ext->type != &plan_type)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "frame_csv_parse: argument 0 is not a CSV plan");
    const dray__csv_plan *plan = (const dray__csv_plan *)args[0].u.ext;
    const char *path = dray_string_cstr(&args[1]);
    size_t s = (size_t)args[2].u.i, e = (size_t)args[3].u.i;
    int64_t quotes = 0;
    for (size_t i = 4; i < nargs; i++)
        quotes += args[i].u.i;
    const char *data;
    size_t len;
    dray_status st = dray__csv_map(path, &data, &len);
    if (st)
        return st;
    /* parity before byte s-1: the quotes of the earlier ranges, minus byte s-1 if it is one */
    bool inq = false;
    if (s > 0 && s <= len)
        inq = ((quotes - (data[s - 1] == plan->quote)) & 1) != 0;
    dray_table *t = NULL;
    int64_t bad = 0;
    st = s <= len ? dray__csv_parse_range(plan, path, data, len, s, e, inq, &t, &bad)
                  : dray_set_error(DRAY_EIO, "'%s' shrank while being read", path);
    dray__csv_unmap(data, len);
    if (st)
        return st;
    return dray__part_value(t, bad, result);
}

DRAY_FUNCTION(frame_filter)
{
    dray__part *p = ARG_PART(0);
    dray_table *t;
    dray_status st = dray_table_filter(p->t, dray_string_cstr(&args[1]), &t);
    return st ? st : dray__part_value(t, p->bad_rows, result);
}

DRAY_FUNCTION(frame_assign)
{
    dray__part *p = ARG_PART(0);
    dray_table *t;
    dray_status st = dray_table_assign(p->t, dray_string_cstr(&args[1]), dray_string_cstr(&args[2]), &t);
    return st ? st : dray__part_value(t, p->bad_rows, result);
}

DRAY_FUNCTION(frame_select)
{
    dray__part *p = ARG_PART(0);
    size_t n = dray_list_len(&args[1]);
    const char **names = malloc((n ? n : 1) * sizeof(*names));
    if (!names)
        return dray_set_error(DRAY_ENOMEM, "select");
    for (size_t i = 0; i < n; i++)
        names[i] = dray_string_cstr(dray_list_get(&args[1], i));
    dray_table *t;
    dray_status st = dray_table_select(p->t, names, n, &t);
    free(names);
    return st ? st : dray__part_value(t, p->bad_rows, result);
}

/* process_token: a number for this process (its pid mixed with where the partition type was
 * loaded, which address-space randomisation varies), so that a task carrying C pointers can tell
 * that it was sent to another process. */
static int64_t process_token(void)
{
    return (int64_t)(uintptr_t)&part_type ^ ((int64_t)getpid() << 40);
}

/* frame_map(part, fn pointer, arg pointer, process token): C pointers as integers, so it runs only
 * in the process that made it (map_named is the way on a cluster). */
DRAY_FUNCTION(frame_map)
{
    dray__part *p = ARG_PART(0);
    if (nargs < 4 || args[3].type != DRAY_T_INT || args[3].u.i != process_token())
        return dray_ctx_fail(ctx, DRAY_EINVAL, "map_partitions passes C function pointers and ran in "
                             "another process (a cluster node): use dray_frame_map_named there");
    dray_partition_fn fn = (dray_partition_fn)(uintptr_t)args[1].u.i;
    dray_table *t = NULL;
    dray_status st = fn(p->t, (void *)(uintptr_t)args[2].u.i, &t);
    if (st)
        return st;
    if (!t)
        return dray_ctx_fail(ctx, DRAY_EINVAL, "map_partitions callback returned no table");
    return dray__part_value(t, p->bad_rows, result);
}

DRAY_FUNCTION(frame_identity)
{
    dray__part *p = ARG_PART(0);
    *result = dray_value_retain(&args[0]);
    (void)p;
    return DRAY_OK;
}

/* ---- frames ---- */

static void fgraph_release(dray__fgraph *g)
{
    if (!g || --g->refs > 0)
        return;
    dray_graph_destroy(g->graph);
    for (size_t i = 0; i < g->n_pinned; i++)
        dray_ref_release(g->pinned[i]);
    free(g->pinned);
    if (g->own_spill_dir)
        rmdir(g->spill_dir); /* empty by now: each bucket's reader deletes its file */
    free(g->spill_dir);
    free(g);
}

dray_status dray_frame_spill_to(dray_frame *f, const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return dray_set_error(DRAY_EIO, "spill_to: cannot create '%s': %s", dir, strerror(errno));
    char *d = strdup(dir);
    if (!d)
        return dray_set_error(DRAY_ENOMEM, "spill_to");
    if (f->g->own_spill_dir)
        rmdir(f->g->spill_dir);
    free(f->g->spill_dir);
    f->g->spill_dir = d;
    f->g->own_spill_dir = false;
    return DRAY_OK;
}

static dray_status frame_new(dray_runtime *rt, dray__fgraph *g, dray_table *schema, size_t nparts,
                             dray_frame **out)
{
    dray_frame *f = calloc(1, sizeof(*f));
    if (!f || !(f->parts = calloc(nparts ? nparts : 1, sizeof(dray_node)))) {
        free(f);
        dray_table_release(schema);
        return dray_set_error(DRAY_ENOMEM, "frame");
    }
    f->rt = rt;
    f->g = g;
    g->refs++;
    f->schema = schema;
    f->nparts = nparts;
    *out = f;
    return DRAY_OK;
}

static dray_status fgraph_create(dray_runtime *rt, dray__fgraph **out)
{
    dray__fgraph *g = calloc(1, sizeof(*g));
    if (!g)
        return dray_set_error(DRAY_ENOMEM, "frame graph");
    dray_status st = dray_graph_create(rt, &g->graph);
    if (st) {
        free(g);
        return st;
    }
    /* With a memory limit on the runtime, shuffles spill by default, into a temporary directory. */
    if (dray_runtime_memory_limit(rt) > 0) {
        const char *tmp = getenv("TMPDIR");
        char path[4096];
        snprintf(path, sizeof(path), "%s/dray-spill-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(path) || !(g->spill_dir = strdup(path))) {
            dray_graph_destroy(g->graph);
            free(g);
            return dray_set_error(DRAY_EIO, "frame: cannot create a spill directory under %s: %s",
                                  tmp && *tmp ? tmp : "/tmp", strerror(errno));
        }
        g->own_spill_dir = true;
    }
    *out = g;
    return DRAY_OK;
}

dray_status dray__frame_new_empty(dray_runtime *rt, dray_table *schema, dray_frame **out)
{
    dray__fgraph *g;
    dray_status st = fgraph_create(rt, &g);
    if (st) {
        dray_table_release(schema);
        return st;
    }
    st = frame_new(rt, g, schema, 0, out);
    if (st) {
        g->refs = 1;
        fgraph_release(g);
    }
    return st;
}

void dray_frame_destroy(dray_frame *f)
{
    if (!f)
        return;
    fgraph_release(f->g);
    dray_table_release(f->schema);
    free(f->parts);
    free(f);
}

size_t dray_frame_num_partitions(const dray_frame *f) { return f->nparts; }
const dray_table *dray_frame_schema(const dray_frame *f) { return f->schema; }
int64_t dray_frame_bad_rows(const dray_frame *f) { return f->g->bad_rows; }

static dray_status add_node(dray__fgraph *g, const char *fn, const dray_value *args, size_t n,
                            dray_node *out)
{
    return dray_graph_add_named(g->graph, NULL, fn, args, n, out);
}

dray_status dray__glob(const char *pattern, const char *what, glob_t *gl)
{
    int gr = glob(pattern, 0, NULL, gl);
    if (gr == 0)
        return DRAY_OK;
    if (gr != GLOB_NOMATCH)
        globfree(gl);
    return dray_set_error(DRAY_ENOTFOUND, "%s: no file matches '%s'", what, pattern);
}

dray_status dray_frame_read_csv(dray_runtime *rt, const char *pattern, const dray_csv_opts *opts,
                                dray_frame **out)
{
    dray_csv_opts def;
    if (!opts) {
        dray_csv_opts_init(&def);
        opts = &def;
    }
    glob_t gl;
    dray_status st = dray__glob(pattern, "read_csv", &gl);
    if (st)
        return st;
    dray__csv_plan *plan = NULL;
    dray__fgraph *g = NULL;
    dray_frame *f = NULL;
    dray_table *schema = NULL;
    const char *data;
    size_t len, block = opts->block_size ? opts->block_size : (64u << 20);
    /* the plan: header and types from a sample of the first file */
    if ((st = dray__csv_map(gl.gl_pathv[0], &data, &len)))
        goto out;
    size_t sample = opts->sample_bytes ? opts->sample_bytes : (1u << 20);
    st = dray__csv_plan_create(gl.gl_pathv[0], data, len < sample ? len : sample, len <= sample, opts,
                               &plan);
    if (!st)
        st = dray__csv_plan_schema(plan, &schema);
    dray__csv_unmap(data, len);
    if (st)
        goto out;
    dray_ext_obj_init(&plan->hdr, &plan_type);
    if ((st = fgraph_create(rt, &g)))
        goto out;
    /* ranges of every file */
    size_t nparts = 0, cap = 16;
    dray_node *parts = malloc(cap * sizeof(*parts));
    dray_value pv = dray_value_of_ext(&plan->hdr);
    plan = NULL; /* the value owns it now */
    if (!parts) {
        st = dray_set_error(DRAY_ENOMEM, "read_csv");
        dray_value_release(&pv);
        goto out;
    }
    for (size_t i = 0; i < gl.gl_pathc && !st; i++) {
        struct stat sb;
        if (stat(gl.gl_pathv[i], &sb) != 0) {
            st = dray_set_error(DRAY_EIO, "read_csv: cannot stat '%s'", gl.gl_pathv[i]);
            break;
        }
        size_t flen = (size_t)sb.st_size, nr = flen / block + 1;
        dray_value path;
        if ((st = dray_string_create(gl.gl_pathv[i], &path)))
            break;
        dray_node *qn = malloc(nr * sizeof(*qn));
        dray_value *args = malloc((nr + 4) * sizeof(*args));
        if (!qn || !args)
            st = dray_set_error(DRAY_ENOMEM, "read_csv");
        for (size_t r = 0; r < nr && !st; r++) {
            size_t s = flen * r / nr, e = flen * (r + 1) / nr;
            if (r > 0) {
                dray_value qa[4] = {path, dray_int((int64_t)flen * (int64_t)(r - 1) / (int64_t)nr),
                                    dray_int((int64_t)s), dray_int(opts->quote)};
                if ((st = add_node(g, "frame_csv_quotes", qa, 4, &qn[r - 1])))
                    break;
            }
            args[0] = pv;
            args[1] = path;
            args[2] = dray_int((int64_t)s);
            args[3] = dray_int((int64_t)e);
            for (size_t k = 0; k < r; k++)
                args[4 + k] = dray_value_of_node(qn[k]);
            if (nparts == cap) {
                dray_node *np = realloc(parts, cap * 2 * sizeof(*parts));
                if (!np) {
                    st = dray_set_error(DRAY_ENOMEM, "read_csv");
                    break;
                }
                parts = np;
                cap *= 2;
            }
            st = add_node(g, "frame_csv_parse", args, 4 + r, &parts[nparts]);
            if (!st)
                nparts++;
        }
        free(qn);
        free(args);
        dray_value_release(&path);
    }
    dray_value_release(&pv);
    if (!st && !(st = frame_new(rt, g, schema, nparts, &f))) {
        schema = NULL;
        memcpy(f->parts, parts, nparts * sizeof(*parts));
        *out = f;
    }
    free(parts);
out:
    if (plan)
        dray__csv_plan_destroy(plan);
    dray_table_release(schema);
    if (g && g->refs == 0)
        fgraph_release((g->refs = 1, g));
    globfree(&gl);
    return st;
}

dray_status dray_frame_from_tables(dray_runtime *rt, dray_table *const *parts, size_t n,
                                   dray_frame **out)
{
    if (n == 0)
        return dray_set_error(DRAY_EINVAL, "from_tables: no tables");
    dray__fgraph *g;
    dray_table *schema;
    dray_status st = dray__table_empty_like(parts[0], &schema);
    if (st)
        return st;
    if ((st = fgraph_create(rt, &g))) {
        dray_table_release(schema);
        return st;
    }
    dray_frame *f;
    if ((st = frame_new(rt, g, schema, n, &f))) {
        g->refs = 1;
        fgraph_release(g);
        return st;
    }
    for (size_t i = 0; i < n && !st; i++) {
        dray_value v;
        if ((st = dray__part_value(dray_table_retain(parts[i]), 0, &v)))
            break;
        st = add_node(g, "frame_identity", &v, 1, &f->parts[i]);
        dray_value_release(&v);
    }
    if (st) {
        dray_frame_destroy(f);
        return st;
    }
    *out = f;
    return DRAY_OK;
}

/* derive: a frame on f's graph whose partition i is fn(part_i, extra...). */
static dray_status derive(const dray_frame *f, const char *fn, const dray_value *extra, size_t nextra,
                          dray_table *schema, dray_frame **out)
{
    dray_frame *r;
    dray_status st = frame_new(f->rt, f->g, schema, f->nparts, &r);
    if (st)
        return st;
    dray_value args[4];
    for (size_t i = 0; i < f->nparts && !st; i++) {
        args[0] = dray_value_of_node(f->parts[i]);
        for (size_t k = 0; k < nextra; k++)
            args[1 + k] = extra[k];
        st = add_node(f->g, fn, args, 1 + nextra, &r->parts[i]);
    }
    if (st) {
        dray_frame_destroy(r);
        return st;
    }
    *out = r;
    return DRAY_OK;
}

dray_status dray_frame_filter(const dray_frame *f, const char *expr, dray_frame **out)
{
    dray_table *schema;
    dray_status st = dray_table_filter(f->schema, expr, &schema);
    if (st)
        return st;
    dray_value e;
    if ((st = dray_string_create(expr, &e))) {
        dray_table_release(schema);
        return st;
    }
    st = derive(f, "frame_filter", &e, 1, schema, out);
    dray_value_release(&e);
    return st;
}

dray_status dray_frame_assign(const dray_frame *f, const char *name, const char *expr,
                              dray_frame **out)
{
    dray_table *schema;
    dray_status st = dray_table_assign(f->schema, name, expr, &schema);
    if (st)
        return st;
    dray_value a[2] = {dray_null(), dray_null()};
    if ((st = dray_string_create(name, &a[0])) || (st = dray_string_create(expr, &a[1]))) {
        dray_value_release(&a[0]);
        dray_table_release(schema);
        return st;
    }
    st = derive(f, "frame_assign", a, 2, schema, out);
    dray_value_release(&a[0]);
    dray_value_release(&a[1]);
    return st;
}

dray_status dray_frame_select(const dray_frame *f, const char *const *names, size_t n,
                              dray_frame **out)
{
    dray_table *schema;
    dray_status st = dray_table_select(f->schema, names, n, &schema);
    if (st)
        return st;
    dray_value *vals = calloc(n ? n : 1, sizeof(*vals)), list = dray_null();
    if (!vals)
        st = dray_set_error(DRAY_ENOMEM, "select");
    for (size_t i = 0; i < n && !st; i++)
        st = dray_string_create(names[i], &vals[i]);
    if (!st)
        st = dray_list_create(vals, n, &list);
    for (size_t i = 0; vals && i < n; i++)
        dray_value_release(&vals[i]);
    free(vals);
    if (st) {
        dray_table_release(schema);
        return st;
    }
    st = derive(f, "frame_select", &list, 1, schema, out);
    dray_value_release(&list);
    return st;
}

dray_status dray_frame_map_partitions(const dray_frame *f, dray_partition_fn fn, void *arg,
                                      const dray_table *schema, dray_frame **out)
{
    dray_table *s = NULL;
    dray_status st;
    if (schema)
        st = dray__table_empty_like(schema, &s);
    else
        st = fn(f->schema, arg, &s);
    if (st)
        return st;
    if (!s)
        return dray_set_error(DRAY_EINVAL, "map_partitions: the callback returned no table");
    dray_value a[3] = {dray_int((int64_t)(uintptr_t)fn), dray_int((int64_t)(uintptr_t)arg),
                       dray_int(process_token())};
    return derive(f, "frame_map", a, 3, s, out);
}

const dray_table *dray_frame_part_table(const dray_value *v)
{
    const dray__part *p = v ? dray__part_of(v) : NULL;
    return p ? p->t : NULL;
}

dray_status dray_frame_part_result(const dray_value *in, dray_table *t, dray_value *result)
{
    if (!t)
        return dray_set_error(DRAY_EINVAL, "part_result: no table");
    const dray__part *p = in ? dray__part_of(in) : NULL;
    return dray__part_value(t, p ? p->bad_rows : 0, result);
}

dray_status dray_frame_map_named(const dray_frame *f, const char *fn_name, const dray_value *arg,
                                 const dray_table *schema, dray_frame **out)
{
    if (!fn_name || !dray_function_find(fn_name))
        return dray_set_error(DRAY_ENOTFOUND, "map_named: no task function registered as '%s'",
                              fn_name ? fn_name : "(null)");
    dray_value a = arg ? *arg : dray_null();
    dray_table *s = NULL;
    dray_status st = DRAY_OK;
    if (schema) {
        st = dray__table_empty_like(schema, &s);
    } else {
        /* run it once on an empty partition (as a task: on a cluster, a node runs it) */
        dray_table *empty;
        dray_value args[2], res = dray_null();
        dray_ref *ref = NULL;
        if ((st = dray__table_empty_like(f->schema, &empty)) ||
            (st = dray__part_value(empty, 0, &args[0])))
            return st;
        args[1] = a;
        if (!(st = dray_submit(f->rt, fn_name, args, 2, NULL, &ref)) &&
            !(st = dray_get(f->rt, ref, -1, &res))) {
            const dray_table *rt = dray_frame_part_table(&res);
            st = rt ? dray__table_empty_like(rt, &s)
                    : dray_set_error(DRAY_ETYPE, "map_named: '%s' did not return a partition "
                                     "(dray_frame_part_result)", fn_name);
        }
        dray_value_release(&res);
        dray_ref_release(ref);
        dray_value_release(&args[0]);
    }
    if (st)
        return st;
    return derive(f, fn_name, &a, 1, s, out);
}

dray_status dray__graph_run(dray_graph *g, dray_runtime *rt, const dray_node *outputs, size_t n,
                            dray_value *results)
{
    dray_ref **refs = calloc(n ? n : 1, sizeof(*refs));
    if (!refs)
        return dray_set_error(DRAY_ENOMEM, "compute");
    dray_status st = dray_graph_submit(g, outputs, n, refs);
    if (st) {
        free(refs);
        return st;
    }
    size_t got = 0;
    for (; got < n; got++) {
        dray_value err = dray_null();
        if ((st = dray_get(rt, refs[got], -1, &err))) {
            dray_value_release(&err); /* the failed task's error value */
            break;
        }
        results[got] = err;
    }
    if (st) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        for (size_t i = 0; i < got; i++)
            dray_value_release(&results[i]);
        dray_set_error(st, "%s", msg);
    }
    for (size_t i = 0; i < n; i++)
        dray_ref_release(refs[i]);
    free(refs);
    return st;
}

/* compute_parts: the tables of partitions [from, from+n) (owned, in order). */
static dray_status compute_parts(const dray_frame *f, size_t from, size_t n, dray_table **tables)
{
    dray_value *res = calloc(n ? n : 1, sizeof(*res));
    if (!res)
        return dray_set_error(DRAY_ENOMEM, "compute");
    dray_status st = dray__graph_run(f->g->graph, f->rt, f->parts + from, n, res);
    if (st) {
        free(res);
        return st;
    }
    int64_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        dray__part *p = dray__part_of(&res[i]);
        tables[i] = p ? dray_table_retain(p->t) : NULL;
        bad += p ? p->bad_rows : 0;
        if (!p && !st)
            st = dray_set_error(DRAY_ETYPE, "partition %zu is not a table", from + i);
        dray_value_release(&res[i]);
    }
    free(res);
    f->g->bad_rows = bad;
    if (st)
        for (size_t i = 0; i < n; i++)
            dray_table_release(tables[i]);
    return st;
}

dray_status dray__frame_compute_parts(const dray_frame *f, dray_table **tables)
{
    return compute_parts(f, 0, f->nparts, tables);
}

dray_status dray_frame_compute(const dray_frame *f, dray_table **out)
{
    if (f->nparts == 0)
        return dray__table_empty_like(f->schema, out);
    dray_table **t = calloc(f->nparts, sizeof(*t));
    if (!t)
        return dray_set_error(DRAY_ENOMEM, "compute");
    dray_status st = compute_parts(f, 0, f->nparts, t);
    if (!st) {
        st = dray_table_concat(t, f->nparts, out);
        for (size_t i = 0; i < f->nparts; i++)
            dray_table_release(t[i]);
    }
    free(t);
    return st;
}

dray_status dray_frame_count(const dray_frame *f, int64_t *out)
{
    dray_table **t = calloc(f->nparts ? f->nparts : 1, sizeof(*t));
    if (!t)
        return dray_set_error(DRAY_ENOMEM, "count");
    dray_status st = compute_parts(f, 0, f->nparts, t);
    int64_t n = 0;
    for (size_t i = 0; !st && i < f->nparts; i++) {
        n += dray_table_num_rows(t[i]);
        dray_table_release(t[i]);
    }
    free(t);
    if (!st)
        *out = n;
    return st;
}

dray_status dray_frame_head(const dray_frame *f, int64_t n, dray_table **out)
{
    dray_table *acc = NULL;
    dray_status st = dray__table_empty_like(f->schema, &acc);
    for (size_t i = 0; i < f->nparts && !st && dray_table_num_rows(acc) < n; i++) {
        dray_table *t, *cat, *pair[2];
        if ((st = compute_parts(f, i, 1, &t)))
            break;
        pair[0] = acc;
        pair[1] = t;
        st = dray_table_concat(pair, 2, &cat);
        dray_table_release(t);
        if (!st) {
            dray_table_release(acc);
            acc = cat;
        }
    }
    if (!st)
        st = dray_table_slice(acc, 0, n, out);
    dray_table_release(acc);
    return st;
}

dray_status dray_frame_persist(const dray_frame *f, dray_frame **out)
{
    dray_ref **refs = calloc(f->nparts ? f->nparts : 1, sizeof(*refs));
    if (!refs)
        return dray_set_error(DRAY_ENOMEM, "persist");
    dray_status st = dray_graph_submit(f->g->graph, f->parts, f->nparts, refs);
    if (st) {
        free(refs);
        return st;
    }
    /* wait for all, so errors surface here */
    for (size_t i = 0; i < f->nparts && !st; i++) {
        dray_value v;
        if (!(st = dray_get(f->rt, refs[i], -1, &v)))
            dray_value_release(&v);
    }
    dray__fgraph *g = NULL;
    dray_table *schema = NULL;
    dray_frame *r = NULL;
    if (!st && !(st = fgraph_create(f->rt, &g)) && !(st = dray__table_empty_like(f->schema, &schema)) &&
        !(st = frame_new(f->rt, g, schema, f->nparts, &r))) {
        g->pinned = refs;
        g->n_pinned = f->nparts;
        refs = NULL;
        for (size_t i = 0; i < f->nparts && !st; i++) {
            dray_value a = dray_value_of_ref(g->pinned[i]);
            st = add_node(g, "frame_identity", &a, 1, &r->parts[i]);
        }
    }
    if (refs)
        for (size_t i = 0; i < f->nparts; i++)
            dray_ref_release(refs[i]);
    free(refs);
    if (st) {
        if (r)
            dray_frame_destroy(r);
        else if (g)
            fgraph_release((g->refs = 1, g));
        return st;
    }
    *out = r;
    return DRAY_OK;
}

dray_status dray_frame_to_csv(const dray_frame *f, const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return dray_set_error(DRAY_EIO, "to_csv: cannot create '%s': %s", dir, strerror(errno));
    dray_status st = DRAY_OK;
    for (size_t i = 0; i < f->nparts && !st; i++) {
        dray_table *t;
        if ((st = compute_parts(f, i, 1, &t)))
            break;
        char path[4096];
        snprintf(path, sizeof(path), "%s/part-%05zu.csv", dir, i);
        st = dray_csv_write(t, path, false);
        dray_table_release(t);
    }
    return st;
}
