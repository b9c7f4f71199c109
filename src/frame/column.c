/* Columns in Arrow layout and growable column builders: allocation, reference counting, queries,
 * and the row-selecting kernels (take, filter by bitmap) every operation builds on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static const char *const dtype_names[DRAY__DT_COUNT] = {
    "bool",   "int8",    "int16",   "int32", "int64",  "uint8",     "uint16", "uint32",
    "uint64", "float32", "float64", "utf8",  "date32", "timestamp", "dict"};

const char *dray_col_type_name(dray_col_type t)
{
    return (unsigned)t < DRAY__DT_COUNT ? dtype_names[t] : "?";
}

dray_status dray_col_type_parse(const char *name, dray_col_type *type, dray_time_unit *unit)
{
    static const char *const units[] = {"s", "ms", "us", "ns"};
    *unit = DRAY_TU_MICRO;
    if (!strcmp(name, "string") || !strcmp(name, "str")) {
        *type = DRAY_DT_UTF8;
        return DRAY_OK;
    }
    if (!strcmp(name, "date")) {
        *type = DRAY_DT_DATE32;
        return DRAY_OK;
    }
    for (int t = 0; t < DRAY__DT_COUNT; t++) {
        if (!strcmp(name, dtype_names[t])) {
            *type = (dray_col_type)t;
            return DRAY_OK;
        }
    }
    if (!strncmp(name, "timestamp[", 10)) {
        for (int u = 0; u < 4; u++) {
            size_t ul = strlen(units[u]);
            if (!strncmp(name + 10, units[u], ul) && !strcmp(name + 10 + ul, "]")) {
                *type = DRAY_DT_TIMESTAMP;
                *unit = (dray_time_unit)u;
                return DRAY_OK;
            }
        }
    }
    return dray_set_error(DRAY_EINVAL, "unknown type '%s'", name);
}

int dray__dtype_width(dray_col_type t)
{
    switch (t) {
    case DRAY_DT_INT8: case DRAY_DT_UINT8: return 1;
    case DRAY_DT_INT16: case DRAY_DT_UINT16: return 2;
    case DRAY_DT_INT32: case DRAY_DT_UINT32: case DRAY_DT_FLOAT32: case DRAY_DT_DATE32:
    case DRAY_DT_DICT: return 4;
    case DRAY_DT_INT64: case DRAY_DT_UINT64: case DRAY_DT_FLOAT64: case DRAY_DT_TIMESTAMP: return 8;
    default: return 0;
    }
}

bool dray__dtype_is_int(dray_col_type t)
{
    return t >= DRAY_DT_INT8 && t <= DRAY_DT_UINT64;
}

bool dray__dtype_is_numeric(dray_col_type t)
{
    return t >= DRAY_DT_INT8 && t <= DRAY_DT_FLOAT64;
}

/* ---- life cycle ---- */

dray_status dray__column_alloc(dray_col_type type, dray_time_unit unit, int64_t n, bool with_validity,
                               int64_t chars_cap, dray_column **out)
{
    dray_column *c = calloc(1, sizeof(*c));
    if (!c)
        return dray_set_error(DRAY_ENOMEM, "column of %lld rows", (long long)n);
    atomic_init(&c->refs, 1);
    c->type = type;
    c->unit = unit;
    c->length = n;
    size_t bytes;
    if (type == DRAY_DT_BOOL)
        bytes = (size_t)dray__bitmap_bytes(n);
    else if (type == DRAY_DT_UTF8)
        bytes = (size_t)(n + 1) * 4;
    else
        bytes = (size_t)n * (size_t)dray__dtype_width(type);
    c->data = malloc(bytes ? bytes : 1);
    if (!c->data)
        goto out_free;
    if (type == DRAY_DT_BOOL && bytes)
        memset(c->data, 0, bytes);
    if (type == DRAY_DT_UTF8) {
        c->chars = malloc(chars_cap ? (size_t)chars_cap : 1);
        if (!c->chars)
            goto out_free;
        ((int32_t *)c->data)[0] = 0;
    }
    if (with_validity) {
        size_t vb = (size_t)dray__bitmap_bytes(n);
        c->validity = malloc(vb ? vb : 1);
        if (!c->validity)
            goto out_free;
        memset(c->validity, 0xff, vb);
    }
    *out = c;
    return DRAY_OK;
out_free:
    free(c->data);
    free(c->chars);
    free(c);
    return dray_set_error(DRAY_ENOMEM, "column of %lld rows", (long long)n);
}

void dray__column_finish_nulls(dray_column *c)
{
    if (!c->validity)
        return;
    int64_t valid = 0, full = c->length / 8;
    for (int64_t i = 0; i < full; i++)
        valid += __builtin_popcount(c->validity[i]);
    for (int64_t i = full * 8; i < c->length; i++)
        valid += dray__bit(c->validity, i);
    c->null_count = c->length - valid;
    if (c->null_count == 0 && !c->keep) {
        free(c->validity);
        c->validity = NULL;
    }
}

dray_column *dray_column_retain(dray_column *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void dray_column_release(dray_column *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (c->keep) {
        if (atomic_fetch_sub_explicit(&c->keep->refs, 1, memory_order_acq_rel) == 1)
            c->keep->free_fn(c->keep);
    } else {
        free(c->data);
        free(c->validity);
        free(c->chars);
    }
    dray_column_release(c->dict);
    free(c);
}

dray_status dray_column_from_values(dray_col_type type, dray_time_unit unit, const void *values,
                                    const uint8_t *valid, int64_t n, dray_column **out)
{
    if (type == DRAY_DT_UTF8 || type == DRAY_DT_DICT || (unsigned)type >= DRAY__DT_COUNT || n < 0)
        return dray_set_error(DRAY_EINVAL, "dray_column_from_values: type %s is not fixed width",
                              dray_col_type_name(type));
    dray_column *c;
    dray_status st = dray__column_alloc(type, unit, n, valid != NULL, 0, &c);
    if (st)
        return st;
    if (type == DRAY_DT_BOOL) {
        for (int64_t i = 0; i < n; i++)
            if (((const uint8_t *)values)[i])
                dray__bit_set(c->data, i);
    } else if (n) {
        memcpy(c->data, values, (size_t)n * (size_t)dray__dtype_width(type));
    }
    if (valid) {
        for (int64_t i = 0; i < n; i++)
            if (!valid[i])
                dray__bit_clear(c->validity, i);
        dray__column_finish_nulls(c);
    }
    *out = c;
    return DRAY_OK;
}


dray_status dray_column_from_strings(const char *const *s, int64_t n, bool dict, dray_column **out)
{
    int64_t total = 0;
    bool nulls = false;
    for (int64_t i = 0; i < n; i++) {
        if (s[i])
            total += (int64_t)strlen(s[i]);
        else
            nulls = true;
    }
    if (total > INT32_MAX)
        return dray_set_error(DRAY_ERANGE, "strings total %lld bytes (max 2 GiB)", (long long)total);
    dray_column *c;
    dray_status st = dray__column_alloc(DRAY_DT_UTF8, 0, n, nulls, total, &c);
    if (st)
        return st;
    int32_t *off = c->data;
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        if (s[i]) {
            size_t l = strlen(s[i]);
            memcpy(c->chars + pos, s[i], l);
            pos += (int64_t)l;
        } else {
            dray__bit_clear(c->validity, i);
        }
        off[i + 1] = (int32_t)pos;
    }
    c->chars_len = pos;
    dray__column_finish_nulls(c);
    if (!dict) {
        *out = c;
        return DRAY_OK;
    }
    st = dray__dict_encode(c, out);
    dray_column_release(c);
    return st;
}

/* ---- dictionary encoding ---- */

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

dray_status dray__dict_encode(const dray_column *u, dray_column **out)
{
    dray_status st = DRAY_ENOMEM;
    int64_t n = u->length;
    size_t cap = 16;
    while (cap < (size_t)n * 2)
        cap <<= 1;
    int64_t *slots = malloc(cap * sizeof(*slots)); /* row index of the first occurrence, -1 empty */
    int64_t *firsts = malloc((size_t)(n ? n : 1) * sizeof(*firsts));
    dray_column *c = NULL, *d = NULL;
    if (!slots || !firsts)
        goto out;
    for (size_t i = 0; i < cap; i++)
        slots[i] = -1;
    if ((st = dray__column_alloc(DRAY_DT_DICT, 0, n, u->validity != NULL, 0, &c)))
        goto out;
    int32_t *idx = c->data, *off = u->data;
    int64_t ndistinct = 0;
    for (int64_t i = 0; i < n; i++) {
        if (u->validity && !dray__bit(u->validity, i)) {
            dray__bit_clear(c->validity, i);
            idx[i] = 0;
            continue;
        }
        const char *p = u->chars + off[i];
        size_t l = (size_t)(off[i + 1] - off[i]);
        size_t h = hash_bytes(p, l) & (cap - 1);
        for (;;) {
            int64_t r = slots[h];
            if (r < 0) {
                slots[h] = ndistinct;
                firsts[ndistinct] = i;
                idx[i] = (int32_t)ndistinct++;
                break;
            }
            int64_t fr = firsts[r];
            if ((size_t)(off[fr + 1] - off[fr]) == l && !memcmp(u->chars + off[fr], p, l)) {
                idx[i] = (int32_t)r;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
    }
    if ((st = dray__column_take(u, firsts, ndistinct, &d)))
        goto out;
    c->dict = d;
    dray__column_finish_nulls(c);
    *out = c;
    c = NULL;
    st = DRAY_OK;
out:
    dray_column_release(c);
    free(slots);
    free(firsts);
    if (st == DRAY_ENOMEM)
        dray_set_error(st, "dictionary encoding of %lld strings", (long long)n);
    return st;
}

/* ---- queries ---- */

dray_col_type dray_column_type(const dray_column *c) { return c->type; }
dray_time_unit dray_column_unit(const dray_column *c) { return c->unit; }
int64_t dray_column_length(const dray_column *c) { return c->length; }
int64_t dray_column_null_count(const dray_column *c) { return c->null_count; }
const void *dray_column_data(const dray_column *c) { return c->data; }
const uint8_t *dray_column_validity(const dray_column *c) { return c->null_count ? c->validity : NULL; }

bool dray_column_is_valid(const dray_column *c, int64_t i)
{
    return !c->validity || dray__bit(c->validity, i);
}

int64_t dray_column_get_i64(const dray_column *c, int64_t i)
{
    if (!dray_column_is_valid(c, i))
        return 0;
    const void *d = c->data;
    switch (c->type) {
    case DRAY_DT_BOOL: return dray__bit(d, i);
    case DRAY_DT_INT8: return ((const int8_t *)d)[i];
    case DRAY_DT_INT16: return ((const int16_t *)d)[i];
    case DRAY_DT_INT32: case DRAY_DT_DATE32: case DRAY_DT_DICT: return ((const int32_t *)d)[i];
    case DRAY_DT_INT64: case DRAY_DT_TIMESTAMP: return ((const int64_t *)d)[i];
    case DRAY_DT_UINT8: return ((const uint8_t *)d)[i];
    case DRAY_DT_UINT16: return ((const uint16_t *)d)[i];
    case DRAY_DT_UINT32: return ((const uint32_t *)d)[i];
    case DRAY_DT_UINT64: return (int64_t)((const uint64_t *)d)[i];
    case DRAY_DT_FLOAT32: return (int64_t)((const float *)d)[i];
    case DRAY_DT_FLOAT64: return (int64_t)((const double *)d)[i];
    default: return 0;
    }
}

double dray_column_get_f64(const dray_column *c, int64_t i)
{
    if (!dray_column_is_valid(c, i) || c->type == DRAY_DT_UTF8 || c->type == DRAY_DT_DICT)
        return NAN;
    if (c->type == DRAY_DT_FLOAT64)
        return ((const double *)c->data)[i];
    if (c->type == DRAY_DT_FLOAT32)
        return ((const float *)c->data)[i];
    if (c->type == DRAY_DT_UINT64)
        return (double)((const uint64_t *)c->data)[i];
    return (double)dray_column_get_i64(c, i);
}

const char *dray_column_get_str(const dray_column *c, int64_t i, size_t *len)
{
    if (!dray_column_is_valid(c, i))
        return NULL;
    if (c->type == DRAY_DT_DICT)
        return dray_column_get_str(c->dict, ((const int32_t *)c->data)[i], len);
    if (c->type != DRAY_DT_UTF8)
        return NULL;
    const int32_t *off = c->data;
    *len = (size_t)(off[i + 1] - off[i]);
    return c->chars + off[i];
}

/* ---- row selection kernels ---- */

dray_status dray__column_take(const dray_column *c, const int64_t *idx, int64_t n, dray_column **out)
{
    dray_column *r;
    dray_status st;
    int64_t chars = 0;
    if (c->type == DRAY_DT_UTF8) {
        const int32_t *off = c->data;
        for (int64_t i = 0; i < n; i++)
            chars += off[idx[i] + 1] - off[idx[i]];
    }
    if ((st = dray__column_alloc(c->type, c->unit, n, c->validity != NULL, chars, &r)))
        return st;
    if (c->validity)
        for (int64_t i = 0; i < n; i++)
            if (!dray__bit(c->validity, idx[i]))
                dray__bit_clear(r->validity, i);
    switch (c->type) {
    case DRAY_DT_BOOL:
        for (int64_t i = 0; i < n; i++)
            if (dray__bit(c->data, idx[i]))
                dray__bit_set(r->data, i);
        break;
    case DRAY_DT_UTF8: {
        const int32_t *off = c->data;
        int32_t *roff = r->data;
        int64_t pos = 0;
        for (int64_t i = 0; i < n; i++) {
            int32_t a = off[idx[i]], l = off[idx[i] + 1] - a;
            memcpy(r->chars + pos, c->chars + a, (size_t)l);
            pos += l;
            roff[i + 1] = (int32_t)pos;
        }
        r->chars_len = pos;
        break;
    }
    default: {
        int w = dray__dtype_width(c->type);
        if (w == 8) {
            const int64_t *s = c->data;
            int64_t *d = r->data;
            for (int64_t i = 0; i < n; i++)
                d[i] = s[idx[i]];
        } else if (w == 4) {
            const int32_t *s = c->data;
            int32_t *d = r->data;
            for (int64_t i = 0; i < n; i++)
                d[i] = s[idx[i]];
        } else {
            for (int64_t i = 0; i < n; i++)
                memcpy((char *)r->data + i * w, (const char *)c->data + idx[i] * w, (size_t)w);
        }
    }
    }
    if (c->dict)
        r->dict = dray_column_retain(c->dict);
    dray__column_finish_nulls(r);
    *out = r;
    return DRAY_OK;
}

dray_status dray__column_take_nullable(const dray_column *c, const int64_t *idx, int64_t n,
                                       dray_column **out)
{
    int64_t *fixed = malloc((size_t)(n ? n : 1) * sizeof(*fixed));
    if (!fixed)
        return dray_set_error(DRAY_ENOMEM, "take of %lld rows", (long long)n);
    bool any = false;
    for (int64_t i = 0; i < n; i++) {
        any |= idx[i] < 0;
        fixed[i] = idx[i] < 0 ? 0 : idx[i];
    }
    dray_status st;
    dray_column *r;
    if (any && c->length == 0) {
        /* nothing to take from: every row is null */
        if (!(st = dray__column_alloc(c->type, c->unit, n, true, 0, &r))) {
            memset(r->validity, 0, (size_t)dray__bitmap_bytes(n));
            if (c->type == DRAY_DT_UTF8)
                memset(r->data, 0, (size_t)(n + 1) * 4);
            else if (c->type != DRAY_DT_BOOL)
                memset(r->data, 0, (size_t)n * (size_t)dray__dtype_width(c->type));
            if (c->dict)
                r->dict = dray_column_retain(c->dict);
        }
    } else {
        st = dray__column_take(c, fixed, n, &r);
    }
    free(fixed);
    if (st)
        return st;
    if (any && c->length > 0) {
        if (!r->validity) {
            size_t vb = (size_t)dray__bitmap_bytes(n);
            if (!(r->validity = malloc(vb ? vb : 1))) {
                dray_column_release(r);
                return dray_set_error(DRAY_ENOMEM, "take");
            }
            memset(r->validity, 0xff, vb);
        }
        for (int64_t i = 0; i < n; i++)
            if (idx[i] < 0)
                dray__bit_clear(r->validity, i);
    }
    dray__column_finish_nulls(r);
    *out = r;
    return DRAY_OK;
}

dray_status dray__column_filter_bits(const dray_column *c, const uint8_t *mask, int64_t count,
                                     dray_column **out)
{
    int64_t *idx = malloc((size_t)(count ? count : 1) * sizeof(*idx));
    if (!idx)
        return dray_set_error(DRAY_ENOMEM, "filter of %lld rows", (long long)count);
    int64_t k = 0;
    for (int64_t i = 0; i < c->length; i++) {
        if (!mask[i >> 3]) {
            i |= 7;
            continue;
        }
        if (dray__bit(mask, i))
            idx[k++] = i;
    }
    dray_status st = dray__column_take(c, idx, k, out);
    free(idx);
    return st;
}

/* ---- builders ---- */

dray_status dray__builder_init(dray__builder *b, dray_col_type type, dray_time_unit unit, int64_t cap,
                               int64_t chars_cap)
{
    memset(b, 0, sizeof(*b));
    b->type = type;
    b->unit = unit;
    return dray__builder_grow(b, cap < 16 ? 16 : cap, chars_cap < 64 ? 64 : chars_cap);
}

void dray__builder_fini(dray__builder *b)
{
    free(b->data);
    free(b->validity);
    free(b->chars);
    memset(b, 0, sizeof(*b));
}

static size_t builder_data_bytes(const dray__builder *b, int64_t cap)
{
    if (b->type == DRAY_DT_BOOL)
        return (size_t)dray__bitmap_bytes(cap);
    if (b->type == DRAY_DT_UTF8)
        return (size_t)(cap + 1) * 4;
    return (size_t)cap * (size_t)dray__dtype_width(b->type);
}

dray_status dray__builder_grow(dray__builder *b, int64_t rows, int64_t chars)
{
    if (b->len + rows > b->cap) {
        int64_t ncap = b->cap ? b->cap : 16;
        while (ncap < b->len + rows)
            ncap *= 2;
        size_t old = b->data ? builder_data_bytes(b, b->cap) : 0, nb = builder_data_bytes(b, ncap);
        uint8_t *d = realloc(b->data, nb);
        if (!d)
            return dray_set_error(DRAY_ENOMEM, "column builder of %lld rows", (long long)ncap);
        if (b->type == DRAY_DT_BOOL)
            memset(d + old, 0, nb - old);
        else if (!b->data && b->type == DRAY_DT_UTF8)
            ((int32_t *)(void *)d)[0] = 0;
        b->data = d;
        if (b->validity) {
            size_t vo = (size_t)dray__bitmap_bytes(b->cap), vn = (size_t)dray__bitmap_bytes(ncap);
            uint8_t *v = realloc(b->validity, vn);
            if (!v)
                return dray_set_error(DRAY_ENOMEM, "column builder of %lld rows", (long long)ncap);
            memset(v + vo, 0xff, vn - vo);
            b->validity = v;
        }
        b->cap = ncap;
    }
    if ((b->type == DRAY_DT_UTF8 || b->type == DRAY_DT_DICT) && b->chars_len + chars > b->chars_cap) {
        int64_t ncap = b->chars_cap ? b->chars_cap : 64;
        while (ncap < b->chars_len + chars)
            ncap *= 2;
        if (ncap > (int64_t)INT32_MAX + 1 && b->chars_len + chars > INT32_MAX)
            return dray_set_error(DRAY_ERANGE, "a string column over 2 GiB in one partition");
        char *c = realloc(b->chars, (size_t)ncap);
        if (!c)
            return dray_set_error(DRAY_ENOMEM, "string builder of %lld bytes", (long long)ncap);
        b->chars = c;
        b->chars_cap = ncap;
    }
    return DRAY_OK;
}

dray_status dray__builder_mark_null(dray__builder *b, int64_t row)
{
    if (!b->validity) {
        size_t vb = (size_t)dray__bitmap_bytes(b->cap);
        b->validity = malloc(vb ? vb : 1);
        if (!b->validity)
            return dray_set_error(DRAY_ENOMEM, "validity bitmap");
        memset(b->validity, 0xff, vb);
    }
    dray__bit_clear(b->validity, row);
    b->null_count++;
    return DRAY_OK;
}

void dray__builder_truncate(dray__builder *b, int64_t len)
{
    for (int64_t i = len; i < b->len; i++) {
        if (b->validity && !dray__bit(b->validity, i)) {
            dray__bit_set(b->validity, i);
            b->null_count--;
        }
        if (b->type == DRAY_DT_BOOL)
            dray__bit_clear(b->data, i);
    }
    b->len = len;
    if (b->type == DRAY_DT_UTF8)
        b->chars_len = ((int32_t *)b->data)[len];
}

dray_status dray__builder_finish(dray__builder *b, dray_column **out)
{
    dray_column *c = calloc(1, sizeof(*c));
    if (!c)
        return dray_set_error(DRAY_ENOMEM, "column");
    atomic_init(&c->refs, 1);
    c->type = b->type;
    c->unit = b->unit;
    c->length = b->len;
    c->data = b->data;
    c->chars = b->chars;
    c->chars_len = b->chars_len;
    if (b->null_count) {
        c->validity = b->validity;
        c->null_count = b->null_count;
    } else {
        free(b->validity);
    }
    if (c->type == DRAY_DT_UTF8 && !c->chars)
        c->chars = calloc(1, 1);
    memset(b, 0, sizeof(*b));
    *out = c;
    return DRAY_OK;
}
