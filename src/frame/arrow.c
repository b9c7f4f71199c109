/* The Arrow C Data Interface: export of a table as a "+s" struct array without copying (each child
 * keeps its column alive), and import of one, sharing the producer's buffers where the layout allows
 * and copying otherwise (bit offsets, int64 string offsets, non-int32 dictionary indices). */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* ---- export ---- */

static const char *const fixed_formats[DRAY__DT_COUNT] = {
    "b", "c", "s", "i", "l", "C", "S", "I", "L", "f", "g", "u", "tdD", NULL, "i"};
static const char *const ts_formats[4] = {"tss:", "tsm:", "tsu:", "tsn:"};

typedef struct export_schema {
    char *name;
    struct ArrowSchema **children;
    struct ArrowSchema *child_storage;
    struct ArrowSchema *dict;
} export_schema;

static void release_schema(struct ArrowSchema *s)
{
    export_schema *p = s->private_data;
    for (int64_t i = 0; i < s->n_children; i++)
        if (s->children[i]->release)
            s->children[i]->release(s->children[i]);
    if (s->dictionary && s->dictionary->release)
        s->dictionary->release(s->dictionary);
    free(p->name);
    free(p->children);
    free(p->child_storage);
    free(p->dict);
    free(p);
    s->release = NULL;
}

static dray_status export_column_schema(const dray_column *c, const char *name, struct ArrowSchema *s)
{
    export_schema *p = calloc(1, sizeof(*p));
    if (!p || !(p->name = strdup(name)))
        goto out_nomem;
    memset(s, 0, sizeof(*s));
    s->format = c->type == DRAY_DT_TIMESTAMP ? ts_formats[c->unit] : fixed_formats[c->type];
    s->name = p->name;
    s->flags = ARROW_FLAG_NULLABLE;
    s->private_data = p;
    s->release = release_schema;
    if (c->type == DRAY_DT_DICT) {
        if (!(p->dict = calloc(1, sizeof(*p->dict))) ||
            export_column_schema(c->dict, "", p->dict) != DRAY_OK) {
            free(p->dict);
            p->dict = NULL;
            release_schema(s);
            return dray_set_error(DRAY_ENOMEM, "export of column '%s'", name);
        }
        s->dictionary = p->dict;
    }
    return DRAY_OK;
out_nomem:
    if (p)
        free(p->name);
    free(p);
    return dray_set_error(DRAY_ENOMEM, "export of column '%s'", name);
}

typedef struct export_array {
    dray_column *col; /* retained (children) */
    const void *bufs[3];
    struct ArrowArray **children;
    struct ArrowArray *child_storage;
    struct ArrowArray *dict;
} export_array;

static void release_array(struct ArrowArray *a)
{
    export_array *p = a->private_data;
    for (int64_t i = 0; i < a->n_children; i++)
        if (a->children[i]->release)
            a->children[i]->release(a->children[i]);
    if (a->dictionary && a->dictionary->release)
        a->dictionary->release(a->dictionary);
    dray_column_release(p->col);
    free(p->children);
    free(p->child_storage);
    free(p->dict);
    free(p);
    a->release = NULL;
}

static dray_status export_column_array(dray_column *c, struct ArrowArray *a)
{
    export_array *p = calloc(1, sizeof(*p));
    if (!p)
        return dray_set_error(DRAY_ENOMEM, "export");
    memset(a, 0, sizeof(*a));
    p->col = dray_column_retain(c);
    a->length = c->length;
    a->null_count = c->null_count;
    a->buffers = p->bufs;
    a->private_data = p;
    a->release = release_array;
    p->bufs[0] = c->null_count ? c->validity : NULL;
    p->bufs[1] = c->data;
    a->n_buffers = 2;
    if (c->type == DRAY_DT_UTF8) {
        p->bufs[2] = c->chars;
        a->n_buffers = 3;
    }
    if (c->type == DRAY_DT_DICT) {
        if (!(p->dict = calloc(1, sizeof(*p->dict))) || export_column_array(c->dict, p->dict)) {
            free(p->dict);
            p->dict = NULL;
            release_array(a);
            return dray_set_error(DRAY_ENOMEM, "export");
        }
        a->dictionary = p->dict;
    }
    return DRAY_OK;
}

dray_status dray_table_export(const dray_table *t, struct ArrowSchema *schema,
                              struct ArrowArray *array)
{
    size_t n = t->ncols;
    export_schema *ps = calloc(1, sizeof(*ps));
    export_array *pa = calloc(1, sizeof(*pa));
    struct ArrowSchema s = {0};
    struct ArrowArray a = {0};
    if (!ps || !pa || !(ps->name = strdup("")))
        goto out_nomem;
    s.format = "+s";
    s.name = ps->name;
    s.private_data = ps;
    s.release = release_schema;
    a.length = t->nrows;
    a.n_buffers = 1;
    a.buffers = pa->bufs;
    a.private_data = pa;
    a.release = release_array;
    ps->children = calloc(n ? n : 1, sizeof(*ps->children));
    ps->child_storage = calloc(n ? n : 1, sizeof(*ps->child_storage));
    pa->children = calloc(n ? n : 1, sizeof(*pa->children));
    pa->child_storage = calloc(n ? n : 1, sizeof(*pa->child_storage));
    s.children = ps->children;
    a.children = pa->children;
    if (!ps->children || !ps->child_storage || !pa->children || !pa->child_storage)
        goto out_release;
    for (size_t i = 0; i < n; i++) {
        ps->children[i] = &ps->child_storage[i];
        pa->children[i] = &pa->child_storage[i];
        if (export_column_schema(t->cols[i], t->names[i], ps->children[i]))
            goto out_release;
        s.n_children = (int64_t)i + 1;
        if (export_column_array(t->cols[i], pa->children[i]))
            goto out_release;
        a.n_children = (int64_t)i + 1;
    }
    *schema = s;
    *array = a;
    return DRAY_OK;
out_release:
    s.release(&s);
    a.release(&a);
    return dray_set_error(DRAY_ENOMEM, "export of a table of %zu columns", n);
out_nomem:
    if (ps)
        free(ps->name);
    free(ps);
    free(pa);
    return dray_set_error(DRAY_ENOMEM, "export of a table of %zu columns", n);
}

/* ---- import ---- */

typedef struct import_keep {
    dray__keep keep;
    struct ArrowArray array;
} import_keep;

static void import_keep_free(dray__keep *k)
{
    import_keep *ik = (import_keep *)k;
    if (ik->array.release)
        ik->array.release(&ik->array);
    free(ik);
}

/* format_type: the dray type of an Arrow format string; *large for "U" (int64 offsets). */
static bool format_type(const char *f, dray_col_type *t, dray_time_unit *u, bool *large)
{
    *large = false;
    *u = DRAY_TU_SECOND;
    for (int i = 0; i < DRAY__DT_COUNT; i++) {
        if (fixed_formats[i] && i != DRAY_DT_DICT && !strcmp(f, fixed_formats[i])) {
            *t = (dray_col_type)i;
            return true;
        }
    }
    if (!strcmp(f, "U")) {
        *t = DRAY_DT_UTF8;
        *large = true;
        return true;
    }
    for (int i = 0; i < 4; i++) {
        if (!strncmp(f, ts_formats[i], 4)) {
            *t = DRAY_DT_TIMESTAMP;
            *u = (dray_time_unit)i;
            return true;
        }
    }
    return false;
}

static dray_status import_column(const struct ArrowSchema *s, const struct ArrowArray *a,
                                 int64_t off, int64_t n, import_keep *keep, dray_column **out);

/* copy_column: builds an owned column of n rows starting at `off` of a (any supported layout). */
static dray_status copy_column(dray_col_type t, dray_time_unit u, bool large, const struct ArrowArray *a,
                               int64_t off, int64_t n, dray_column **out)
{
    const uint8_t *valid = a->null_count != 0 ? a->buffers[0] : NULL;
    int64_t chars = 0;
    if (t == DRAY_DT_UTF8)
        chars = large ? ((const int64_t *)a->buffers[1])[off + n] - ((const int64_t *)a->buffers[1])[off]
                      : ((const int32_t *)a->buffers[1])[off + n] - ((const int32_t *)a->buffers[1])[off];
    if (chars < 0 || chars > INT32_MAX)
        return dray_set_error(DRAY_EFORMAT, "import: bad string offsets");
    dray_column *c;
    dray_status st = dray__column_alloc(t, u, n, valid != NULL, chars, &c);
    if (st)
        return st;
    if (valid)
        for (int64_t i = 0; i < n; i++)
            if (!dray__bit(valid, off + i))
                dray__bit_clear(c->validity, i);
    if (t == DRAY_DT_BOOL) {
        for (int64_t i = 0; i < n; i++)
            if (dray__bit(a->buffers[1], off + i))
                dray__bit_set(c->data, i);
    } else if (t == DRAY_DT_UTF8) {
        int32_t *o = c->data;
        int64_t base = large ? ((const int64_t *)a->buffers[1])[off] : ((const int32_t *)a->buffers[1])[off];
        for (int64_t i = 0; i <= n; i++) {
            int64_t v = large ? ((const int64_t *)a->buffers[1])[off + i]
                              : ((const int32_t *)a->buffers[1])[off + i];
            o[i] = (int32_t)(v - base);
        }
        memcpy(c->chars, (const char *)a->buffers[2] + base, (size_t)chars);
        c->chars_len = chars;
    } else {
        int w = dray__dtype_width(t);
        memcpy(c->data, (const char *)a->buffers[1] + off * w, (size_t)(n * w));
    }
    dray__column_finish_nulls(c);
    *out = c;
    return DRAY_OK;
}

static dray_status import_dict(const struct ArrowSchema *s, const struct ArrowArray *a, int64_t off,
                               int64_t n, import_keep *keep, dray_column **out)
{
    static const char idx_formats[] = "csilCSIL";
    const char *p = strlen(s->format) == 1 ? strchr(idx_formats, s->format[0]) : NULL;
    if (!p || !a->dictionary || !s->dictionary->format || (strcmp(s->dictionary->format, "u") &&
                                                         strcmp(s->dictionary->format, "U")))
        return dray_set_error(DRAY_EUNSUPPORTED, "import: dictionary column '%s' of format %s/%s "
                              "(only integer indices into utf8)", s->name ? s->name : "",
                              s->format, s->dictionary->format ? s->dictionary->format : "?");
    if (a->n_buffers != 2 || !a->buffers[1])
        return dray_set_error(DRAY_EFORMAT, "import: column '%s' lacks its index buffer", s->name);
    dray_column *d;
    dray_status st = import_column(s->dictionary, a->dictionary, a->dictionary->offset,
                                   a->dictionary->length, keep, &d);
    if (st)
        return st;
    dray_column *c;
    if ((st = dray__column_alloc(DRAY_DT_DICT, 0, n, a->null_count != 0 && a->buffers[0], 0, &c))) {
        dray_column_release(d);
        return st;
    }
    c->dict = d;
    int32_t *idx = c->data;
    static const int widths[] = {1, 2, 4, 8, 1, 2, 4, 8};
    int k = (int)(p - idx_formats), w = widths[k];
    bool sgn = k < 4;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *v = (const uint8_t *)a->buffers[1] + (off + i) * w;
        int64_t x = w == 1 ? (sgn ? *(const int8_t *)v : *v)
                  : w == 2 ? (sgn ? *(const int16_t *)v : *(const uint16_t *)v)
                  : w == 4 ? (sgn ? (int64_t)*(const int32_t *)v : (int64_t)*(const uint32_t *)v)
                           : *(const int64_t *)v;
        bool ok = !c->validity || dray__bit(a->buffers[0], off + i);
        if (!ok) {
            dray__bit_clear(c->validity, i);
            x = 0;
        } else if (x < 0 || x >= d->length) {
            dray_column_release(c);
            return dray_set_error(DRAY_EFORMAT, "import: column '%s' row %lld: dictionary index "
                                  "%lld out of %lld", s->name, (long long)i, (long long)x,
                                  (long long)d->length);
        }
        idx[i] = (int32_t)x;
    }
    dray__column_finish_nulls(c);
    *out = c;
    return DRAY_OK;
}

static dray_status import_column(const struct ArrowSchema *s, const struct ArrowArray *a,
                                 int64_t off, int64_t n, import_keep *keep, dray_column **out)
{
    const char *name = s->name ? s->name : "";
    if (!s->format || !a->release || (a->n_buffers > 0 && !a->buffers))
        return dray_set_error(DRAY_EFORMAT, "import: column '%s' is malformed", name);
    if (s->dictionary)
        return import_dict(s, a, off, n, keep, out);
    dray_col_type t;
    dray_time_unit u;
    bool large;
    if (!format_type(s->format, &t, &u, &large))
        return dray_set_error(DRAY_EUNSUPPORTED, "import: column '%s' has unsupported format '%s'",
                              name, s->format);
    int64_t want = t == DRAY_DT_UTF8 ? 3 : 2;
    if (a->n_buffers != want || (n > 0 && !a->buffers[1]) || (t == DRAY_DT_UTF8 && !a->buffers[2]))
        return dray_set_error(DRAY_EFORMAT, "import: column '%s' has %lld buffers, want %lld",
                              name, (long long)a->n_buffers, (long long)want);
    bool has_valid = a->null_count != 0 && a->buffers[0];
    bool bit_aligned = off % 8 == 0 || (!has_valid && t != DRAY_DT_BOOL);
    if (large || !bit_aligned || n == 0)
        return copy_column(t, u, large, a, off, n, out);
    dray_column *c = calloc(1, sizeof(*c));
    if (!c)
        return dray_set_error(DRAY_ENOMEM, "import");
    atomic_init(&c->refs, 1);
    c->type = t;
    c->unit = u;
    c->length = n;
    c->keep = &keep->keep;
    atomic_fetch_add(&keep->keep.refs, 1);
    if (has_valid)
        c->validity = (uint8_t *)a->buffers[0] + off / 8;
    if (t == DRAY_DT_BOOL) {
        c->data = (uint8_t *)a->buffers[1] + off / 8;
    } else if (t == DRAY_DT_UTF8) {
        const int32_t *o = (const int32_t *)a->buffers[1] + off;
        c->data = (void *)o;
        c->chars = (char *)a->buffers[2];
        c->chars_len = o[n] - o[0];
    } else {
        c->data = (char *)a->buffers[1] + off * dray__dtype_width(t);
    }
    dray__column_finish_nulls(c);
    *out = c;
    return DRAY_OK;
}

dray_status dray_table_import(const struct ArrowSchema *schema, struct ArrowArray *array,
                              dray_table **out)
{
    if (!schema || !array || !schema->format || strcmp(schema->format, "+s") || !array->release)
        return dray_set_error(DRAY_EINVAL, "import: want a struct (\"+s\") schema and a live array, "
                              "got format '%s'", schema && schema->format ? schema->format : "?");
    if (schema->n_children != array->n_children || array->n_children < 0)
        return dray_set_error(DRAY_EFORMAT, "import: schema has %lld children, array %lld",
                              (long long)schema->n_children, (long long)array->n_children);
    size_t n = (size_t)schema->n_children;
    import_keep *keep = calloc(1, sizeof(*keep));
    dray_column **cols = calloc(n ? n : 1, sizeof(*cols));
    const char **names = calloc(n ? n : 1, sizeof(*names));
    dray_status st = DRAY_OK;
    if (!keep || !cols || !names) {
        st = dray_set_error(DRAY_ENOMEM, "import");
        goto out;
    }
    atomic_init(&keep->keep.refs, 1);
    keep->keep.free_fn = import_keep_free;
    for (size_t i = 0; i < n && !st; i++) {
        const struct ArrowArray *c = array->children[i];
        names[i] = schema->children[i]->name ? schema->children[i]->name : "";
        if (!c || c->length < array->offset + array->length) {
            st = dray_set_error(DRAY_EFORMAT, "import: column '%s' has %lld rows, want %lld",
                                names[i], c ? (long long)c->length : 0LL,
                                (long long)(array->offset + array->length));
            break;
        }
        st = import_column(schema->children[i], c, c->offset + array->offset, array->length, keep,
                           &cols[i]);
    }
    if (!st)
        st = dray_table_create(names, cols, n, out);
    if (!st) {
        (*out)->nrows = array->length;
        keep->array = *array; /* moved: released when the last column goes */
        array->release = NULL;
    }
out:
    for (size_t i = 0; cols && i < n; i++)
        dray_column_release(cols[i]);
    if (keep && atomic_fetch_sub(&keep->keep.refs, 1) == 1) {
        if (st)
            keep->array.release = NULL; /* the caller still owns it */
        import_keep_free(&keep->keep);
    }
    free(cols);
    free(names);
    return st;
}

dray_status dray__table_empty_from_schema(const struct ArrowSchema *s, dray_table **out)
{
    if (!s || !s->format || strcmp(s->format, "+s"))
        return dray_set_error(DRAY_EINVAL, "want a struct (\"+s\") schema");
    size_t n = (size_t)s->n_children;
    dray_column **cols = calloc(n + 1, sizeof(*cols));
    const char **names = calloc(n + 1, sizeof(*names));
    dray_status st = cols && names ? DRAY_OK : dray_set_error(DRAY_ENOMEM, "schema");
    for (size_t i = 0; i < n && !st; i++) {
        const struct ArrowSchema *c = s->children[i];
        dray_col_type t;
        dray_time_unit u;
        bool large;
        names[i] = c->name ? c->name : "";
        if (c->dictionary) {
            if ((st = dray__column_alloc(DRAY_DT_DICT, 0, 0, false, 0, &cols[i])))
                break;
            st = dray__column_alloc(DRAY_DT_UTF8, 0, 0, false, 0, &cols[i]->dict);
        } else if (!format_type(c->format, &t, &u, &large)) {
            st = dray_set_error(DRAY_EUNSUPPORTED, "column '%s' has unsupported format '%s'", names[i],
                                c->format);
        } else {
            st = dray__column_alloc(t, u, 0, false, 0, &cols[i]);
        }
    }
    if (!st)
        st = dray_table_create(names, cols, n, out);
    for (size_t i = 0; cols && i < n; i++)
        dray_column_release(cols[i]);
    free(cols);
    free(names);
    return st;
}
