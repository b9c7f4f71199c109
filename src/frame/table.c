/* Tables: named columns of equal length (one partition), with select, slice, take, concat, filter,
 * assign, equality and printing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static void table_free(dray_table *t)
{
    for (size_t i = 0; i < t->ncols; i++) {
        free(t->names[i]);
        dray_column_release(t->cols[i]);
    }
    free(t->names);
    free(t->cols);
    free(t);
}

dray_status dray_table_create(const char *const *names, dray_column *const *cols, size_t n,
                              dray_table **out)
{
    for (size_t i = 0; i < n; i++) {
        if (cols[i]->length != cols[0]->length)
            return dray_set_error(DRAY_EINVAL, "column '%s' has %lld rows, column '%s' %lld",
                                  names[i], (long long)cols[i]->length, names[0],
                                  (long long)cols[0]->length);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(names[i], names[j]))
                return dray_set_error(DRAY_EINVAL, "duplicate column name '%s'", names[i]);
    }
    dray_table *t = calloc(1, sizeof(*t));
    if (!t)
        return dray_set_error(DRAY_ENOMEM, "table");
    atomic_init(&t->refs, 1);
    t->names = calloc(n ? n : 1, sizeof(*t->names));
    t->cols = calloc(n ? n : 1, sizeof(*t->cols));
    if (!t->names || !t->cols)
        goto out_nomem;
    for (size_t i = 0; i < n; i++) {
        if (!(t->names[i] = strdup(names[i])))
            goto out_nomem;
        t->cols[i] = dray_column_retain(cols[i]);
        t->ncols = i + 1;
    }
    t->nrows = n ? cols[0]->length : 0;
    *out = t;
    return DRAY_OK;
out_nomem:
    table_free(t);
    return dray_set_error(DRAY_ENOMEM, "table");
}

dray_table *dray_table_retain(dray_table *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void dray_table_release(dray_table *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        table_free(t);
}

int64_t dray_table_num_rows(const dray_table *t) { return t->nrows; }
size_t dray_table_num_columns(const dray_table *t) { return t->ncols; }
const char *dray_table_column_name(const dray_table *t, size_t i) { return t->names[i]; }
dray_column *dray_table_column(const dray_table *t, size_t i) { return t->cols[i]; }

int dray_table_find(const dray_table *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (!strcmp(t->names[i], name))
            return (int)i;
    return -1;
}

static size_t column_nbytes(const dray_column *c)
{
    size_t n = c->validity ? (size_t)dray__bitmap_bytes(c->length) : 0;
    if (c->type == DRAY_DT_BOOL)
        n += (size_t)dray__bitmap_bytes(c->length);
    else if (c->type == DRAY_DT_UTF8)
        n += (size_t)(c->length + 1) * 4 + (size_t)c->chars_len;
    else
        n += (size_t)c->length * (size_t)dray__dtype_width(c->type);
    return n + (c->dict ? column_nbytes(c->dict) : 0);
}

size_t dray_table_nbytes(const dray_table *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->ncols; i++)
        n += column_nbytes(t->cols[i]);
    return n;
}

dray_status dray_table_select(const dray_table *t, const char *const *names, size_t n,
                              dray_table **out)
{
    dray_column **cols = malloc((n ? n : 1) * sizeof(*cols));
    if (!cols)
        return dray_set_error(DRAY_ENOMEM, "select");
    for (size_t i = 0; i < n; i++) {
        int k = dray_table_find(t, names[i]);
        if (k < 0) {
            free(cols);
            return dray_set_error(DRAY_EINVAL, "no column '%s'", names[i]);
        }
        cols[i] = t->cols[k];
    }
    dray_status st = dray_table_create(names, cols, n, out);
    free(cols);
    return st;
}

/* map_columns: a table with t's names whose column i is fn(t->cols[i]). */
static dray_status map_columns(const dray_table *t,
                               dray_status (*fn)(const dray_column *c, const void *arg,
                                                 dray_column **out),
                               const void *arg, dray_table **out)
{
    dray_status st = DRAY_OK;
    dray_column **cols = calloc(t->ncols ? t->ncols : 1, sizeof(*cols));
    if (!cols)
        return dray_set_error(DRAY_ENOMEM, "table");
    for (size_t i = 0; i < t->ncols && !st; i++)
        st = fn(t->cols[i], arg, &cols[i]);
    if (!st)
        st = dray_table_create((const char *const *)t->names, cols, t->ncols, out);
    for (size_t i = 0; i < t->ncols; i++)
        dray_column_release(cols[i]);
    free(cols);
    return st;
}

typedef struct take_arg {
    const int64_t *idx;
    int64_t n;
} take_arg;

static dray_status take_fn(const dray_column *c, const void *arg, dray_column **out)
{
    const take_arg *a = arg;
    return dray__column_take(c, a->idx, a->n, out);
}

dray_status dray_table_take(const dray_table *t, const int64_t *idx, int64_t n, dray_table **out)
{
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= t->nrows)
            return dray_set_error(DRAY_ERANGE, "take: row %lld of %lld", (long long)idx[i],
                                  (long long)t->nrows);
    take_arg a = {idx, n};
    dray_status st = map_columns(t, take_fn, &a, out);
    if (!st && t->ncols == 0)
        (*out)->nrows = n;
    return st;
}

dray_status dray_table_slice(const dray_table *t, int64_t start, int64_t len, dray_table **out)
{
    if (start < 0)
        start = 0;
    if (start > t->nrows)
        start = t->nrows;
    if (len < 0 || len > t->nrows - start)
        len = t->nrows - start;
    int64_t *idx = malloc((size_t)(len ? len : 1) * sizeof(*idx));
    if (!idx)
        return dray_set_error(DRAY_ENOMEM, "slice");
    for (int64_t i = 0; i < len; i++)
        idx[i] = start + i;
    dray_status st = dray_table_take(t, idx, len, out);
    free(idx);
    return st;
}

dray_status dray__table_empty_like(const dray_table *t, dray_table **out)
{
    return dray_table_slice(t, 0, 0, out);
}

dray_status dray__table_with_column(const dray_table *t, const char *name, dray_column *c,
                                    dray_table **out)
{
    if (t->ncols && c->length != t->nrows)
        return dray_set_error(DRAY_EINVAL, "column '%s' has %lld rows, the table %lld", name,
                              (long long)c->length, (long long)t->nrows);
    size_t n = t->ncols + 1;
    const char **names = malloc(n * sizeof(*names));
    dray_column **cols = malloc(n * sizeof(*cols));
    dray_status st = dray_set_error(DRAY_ENOMEM, "table");
    if (!names || !cols)
        goto out;
    size_t k = 0;
    bool replaced = false;
    for (size_t i = 0; i < t->ncols; i++) {
        names[k] = t->names[i];
        cols[k++] = strcmp(t->names[i], name) ? t->cols[i] : (replaced = true, c);
    }
    if (!replaced) {
        names[k] = name;
        cols[k++] = c;
    }
    st = dray_table_create(names, cols, k, out);
out:
    free(names);
    free(cols);
    return st;
}

/* ---- concat ---- */

/* dray__column_decode_dict: the utf8 column of a dict column's strings. */
dray_status dray__column_decode_dict(const dray_column *c, dray_column **out)
{
    int64_t *idx = malloc((size_t)(c->length ? c->length : 1) * sizeof(*idx));
    if (!idx)
        return dray_set_error(DRAY_ENOMEM, "dictionary decode");
    const int32_t *d = c->data;
    for (int64_t i = 0; i < c->length; i++)
        idx[i] = (c->validity && !dray__bit(c->validity, i)) ? 0 : d[i];
    dray_column *u = NULL;
    dray_status st = DRAY_OK;
    if (c->dict->length == 0) {
        /* every row is null: an all-null utf8 column */
        st = dray__column_alloc(DRAY_DT_UTF8, 0, c->length, true, 0, &u);
        if (!st) {
            memset(u->data, 0, (size_t)(c->length + 1) * 4);
            memset(u->validity, 0, (size_t)dray__bitmap_bytes(c->length));
        }
    } else {
        st = dray__column_take(c->dict, idx, c->length, &u);
        if (!st && c->validity) {
            /* nulls of the indices become nulls of the strings */
            if (!u->validity) {
                u->validity = malloc((size_t)dray__bitmap_bytes(c->length) + 1);
                if (!u->validity) {
                    dray_column_release(u);
                    free(idx);
                    return dray_set_error(DRAY_ENOMEM, "dictionary decode");
                }
                memset(u->validity, 0xff, (size_t)dray__bitmap_bytes(c->length) + 1);
            }
            for (int64_t i = 0; i < c->length; i++)
                if (!dray__bit(c->validity, i))
                    dray__bit_clear(u->validity, i);
        }
    }
    free(idx);
    if (st)
        return st;
    dray__column_finish_nulls(u);
    *out = u;
    return DRAY_OK;
}

static dray_status concat_columns(dray_column *const *parts, size_t n, dray_column **out)
{
    const dray_column *f = parts[0];
    int64_t rows = 0, chars = 0;
    bool nulls = false, same_dict = true;
    for (size_t i = 0; i < n; i++) {
        rows += parts[i]->length;
        chars += parts[i]->chars_len;
        nulls |= parts[i]->validity != NULL;
        if (f->type == DRAY_DT_DICT && parts[i]->dict != f->dict)
            same_dict = false;
    }
    dray_status st;
    if (f->type == DRAY_DT_DICT && !same_dict) {
        dray_column **u = calloc(n, sizeof(*u)), *cat = NULL;
        st = u ? DRAY_OK : dray_set_error(DRAY_ENOMEM, "concat");
        for (size_t i = 0; i < n && !st; i++)
            st = dray__column_decode_dict(parts[i], &u[i]);
        if (!st)
            st = concat_columns(u, n, &cat);
        if (!st)
            st = dray__dict_encode(cat, out);
        dray_column_release(cat);
        for (size_t i = 0; u && i < n; i++)
            dray_column_release(u[i]);
        free(u);
        return st;
    }
    if (chars > INT32_MAX)
        return dray_set_error(DRAY_ERANGE, "concat: strings over 2 GiB in one column");
    dray_column *r;
    if ((st = dray__column_alloc(f->type, f->unit, rows, nulls, chars, &r)))
        return st;
    int64_t at = 0, cpos = 0;
    int w = dray__dtype_width(f->type);
    for (size_t p = 0; p < n; p++) {
        const dray_column *c = parts[p];
        if (c->validity)
            for (int64_t i = 0; i < c->length; i++)
                if (!dray__bit(c->validity, i))
                    dray__bit_clear(r->validity, at + i);
        if (f->type == DRAY_DT_BOOL) {
            for (int64_t i = 0; i < c->length; i++)
                if (dray__bit(c->data, i))
                    dray__bit_set(r->data, at + i);
        } else if (f->type == DRAY_DT_UTF8) {
            const int32_t *off = c->data;
            int32_t *roff = r->data;
            memcpy(r->chars + cpos, c->chars, (size_t)c->chars_len);
            for (int64_t i = 0; i < c->length; i++)
                roff[at + i + 1] = (int32_t)(cpos + off[i + 1] - off[0]);
            cpos += c->chars_len;
        } else if (c->length) {
            memcpy((char *)r->data + at * w, c->data, (size_t)(c->length * w));
        }
        at += c->length;
    }
    r->chars_len = cpos;
    if (f->dict)
        r->dict = dray_column_retain(f->dict);
    dray__column_finish_nulls(r);
    *out = r;
    return DRAY_OK;
}

dray_status dray_table_concat(dray_table *const *tables, size_t n, dray_table **out)
{
    if (n == 0)
        return dray_set_error(DRAY_EINVAL, "concat of no tables");
    if (n == 1) {
        *out = dray_table_retain(tables[0]);
        return DRAY_OK;
    }
    const dray_table *f = tables[0];
    for (size_t i = 1; i < n; i++) {
        if (tables[i]->ncols != f->ncols)
            return dray_set_error(DRAY_EINVAL, "concat: table %zu has %zu columns, table 0 %zu", i,
                                  tables[i]->ncols, f->ncols);
        for (size_t c = 0; c < f->ncols; c++)
            if (strcmp(tables[i]->names[c], f->names[c]) ||
                tables[i]->cols[c]->type != f->cols[c]->type)
                return dray_set_error(DRAY_EINVAL, "concat: table %zu column %zu is '%s' %s, "
                                      "table 0 has '%s' %s", i, c, tables[i]->names[c],
                                      dray_col_type_name(tables[i]->cols[c]->type), f->names[c],
                                      dray_col_type_name(f->cols[c]->type));
    }
    dray_status st = DRAY_OK;
    dray_column **parts = malloc(n * sizeof(*parts));
    dray_column **cols = calloc(f->ncols ? f->ncols : 1, sizeof(*cols));
    if (!parts || !cols)
        st = dray_set_error(DRAY_ENOMEM, "concat");
    for (size_t c = 0; c < f->ncols && !st; c++) {
        for (size_t i = 0; i < n; i++)
            parts[i] = tables[i]->cols[c];
        st = concat_columns(parts, n, &cols[c]);
    }
    if (!st)
        st = dray_table_create((const char *const *)f->names, cols, f->ncols, out);
    for (size_t c = 0; cols && c < f->ncols; c++)
        dray_column_release(cols[c]);
    free(cols);
    free(parts);
    return st;
}

/* ---- filter / assign ---- */

typedef struct mask_arg {
    const uint8_t *mask;
    int64_t count;
} mask_arg;

static dray_status mask_fn(const dray_column *c, const void *arg, dray_column **out)
{
    const mask_arg *a = arg;
    return dray__column_filter_bits(c, a->mask, a->count, out);
}

dray_status dray_table_filter(const dray_table *t, const char *expr, dray_table **out)
{
    dray_expr *e;
    dray_status st = dray_expr_compile(expr, t, &e);
    if (st)
        return st;
    uint8_t *mask = NULL;
    int64_t count = 0;
    if (!(st = dray__expr_eval_mask(e, t, &mask, &count))) {
        mask_arg a = {mask, count};
        st = map_columns(t, mask_fn, &a, out);
    }
    free(mask);
    dray_expr_destroy(e);
    return st;
}

dray_status dray_table_assign(const dray_table *t, const char *name, const char *expr,
                              dray_table **out)
{
    dray_expr *e;
    dray_status st = dray_expr_compile(expr, t, &e);
    if (st)
        return st;
    dray_column *c;
    if (!(st = dray_expr_eval(e, t, &c))) {
        st = dray__table_with_column(t, name, c, out);
        dray_column_release(c);
    }
    dray_expr_destroy(e);
    return st;
}

/* ---- equality and printing ---- */

static bool value_equal(const dray_column *a, int64_t i, const dray_column *b, int64_t j)
{
    bool va = dray_column_is_valid(a, i), vb = dray_column_is_valid(b, j);
    if (!va || !vb)
        return va == vb;
    switch (a->type) {
    case DRAY_DT_UTF8: case DRAY_DT_DICT: {
        size_t la, lb;
        const char *sa = dray_column_get_str(a, i, &la), *sb = dray_column_get_str(b, j, &lb);
        return la == lb && !memcmp(sa, sb, la);
    }
    case DRAY_DT_FLOAT32: case DRAY_DT_FLOAT64: {
        double x = dray_column_get_f64(a, i), y = dray_column_get_f64(b, j);
        return (isnan(x) && isnan(y)) || memcmp(&x, &y, sizeof(x)) == 0;
    }
    case DRAY_DT_UINT64:
        return ((const uint64_t *)a->data)[i] == ((const uint64_t *)b->data)[j];
    default:
        return dray_column_get_i64(a, i) == dray_column_get_i64(b, j);
    }
}

bool dray_table_equal(const dray_table *a, const dray_table *b)
{
    if (a->ncols != b->ncols || a->nrows != b->nrows)
        return false;
    for (size_t c = 0; c < a->ncols; c++) {
        const dray_column *x = a->cols[c], *y = b->cols[c];
        if (strcmp(a->names[c], b->names[c]) || x->type != y->type ||
            (x->type == DRAY_DT_TIMESTAMP && x->unit != y->unit))
            return false;
        for (int64_t i = 0; i < a->nrows; i++)
            if (!value_equal(x, i, y, i))
                return false;
    }
    return true;
}

void dray_table_print(const dray_table *t, int64_t max_rows, void *fp)
{
    FILE *f = fp;
    char buf[128];
    for (size_t c = 0; c < t->ncols; c++)
        fprintf(f, "%s%s", c ? "\t" : "", t->names[c]);
    fputc('\n', f);
    for (int64_t i = 0; i < t->nrows && i < max_rows; i++) {
        for (size_t c = 0; c < t->ncols; c++) {
            int n = dray__format_value(t->cols[c], i, buf, sizeof(buf));
            fprintf(f, "%s%.*s", c ? "\t" : "", n < 0 ? 4 : n, n < 0 ? "null" : buf);
        }
        fputc('\n', f);
    }
    if (t->nrows > max_rows)
        fprintf(f, "... (%lld rows)\n", (long long)t->nrows);
}
