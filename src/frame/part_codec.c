/* The byte form of a partition ("frame.table" extension values), used by the core codec to move
 * partitions between processes or spill them: "DTB1", then per column its name, type, unit, length,
 * optional validity bitmap and buffers (utf8 offsets rebased to 0; dict indices then the dictionary).
 * Decoding checks every length, offset and index (the bytes are untrusted). */
#include <stdlib.h>

#include "frame_internal.h"

typedef dray_status (*write_fn)(void *buf, const void *data, size_t len);

static dray_status put(write_fn w, void *b, const void *p, size_t n) { return n ? w(b, p, n) : DRAY_OK; }

static dray_status put_u64(write_fn w, void *b, uint64_t v) { return w(b, &v, 8); }

static dray_status encode_column(const dray_column *c, write_fn w, void *b)
{
    uint8_t hdr[4] = {(uint8_t)c->type, (uint8_t)c->unit, c->null_count > 0, 0};
    dray_status st;
    int64_t n = c->length;
    if ((st = w(b, hdr, 4)) || (st = put_u64(w, b, (uint64_t)n)))
        return st;
    if (hdr[2] && (st = put(w, b, c->validity, (size_t)dray__bitmap_bytes(n))))
        return st;
    switch (c->type) {
    case DRAY_DT_BOOL:
        return put(w, b, c->data, (size_t)dray__bitmap_bytes(n));
    case DRAY_DT_UTF8: {
        const int32_t *off = c->data;
        for (int64_t i = 0; i <= n && !st; i++) {
            int32_t v = off[i] - off[0];
            st = w(b, &v, 4);
        }
        if (!st)
            st = put_u64(w, b, (uint64_t)(off[n] - off[0]));
        return st ? st : put(w, b, c->chars + off[0], (size_t)(off[n] - off[0]));
    }
    case DRAY_DT_DICT:
        if ((st = put(w, b, c->data, (size_t)n * 4)))
            return st;
        return encode_column(c->dict, w, b);
    default:
        return put(w, b, c->data, (size_t)n * (size_t)dray__dtype_width(c->type));
    }
}

dray_status dray__part_encode(const dray_ext_obj *obj, write_fn w, void *b)
{
    const dray__part *p = (const dray__part *)obj;
    const dray_table *t = p->t;
    dray_status st;
    if ((st = w(b, "DTB1", 4)) || (st = put_u64(w, b, t->ncols)) ||
        (st = put_u64(w, b, (uint64_t)t->nrows)) || (st = put_u64(w, b, (uint64_t)p->bad_rows)))
        return st;
    for (size_t c = 0; c < t->ncols && !st; c++) {
        size_t l = strlen(t->names[c]);
        if (!(st = put_u64(w, b, l)) && !(st = put(w, b, t->names[c], l)))
            st = encode_column(t->cols[c], w, b);
    }
    return st;
}

/* ---- decoding ---- */


static dray_status bad(const char *what)
{
    return dray_set_error(DRAY_EFORMAT, "frame partition bytes: %s", what);
}

static dray_status decode_column(dray__rd *r, int depth, dray_column **out)
{
    uint8_t hdr[4];
    uint64_t n;
    if (!dray__take(r, hdr, 4) || !dray__take_u64(r, &n))
        return bad("truncated column header");
    if (hdr[0] >= DRAY__DT_COUNT || hdr[1] > DRAY_TU_NANO || hdr[2] > 1 || n > (uint64_t)INT32_MAX ||
        n > r->left * 8 + 8)
        return bad("bad column header");
    dray_col_type t = (dray_col_type)hdr[0];
    if (t == DRAY_DT_DICT && depth > 0)
        return bad("nested dictionary");
    int64_t len = (int64_t)n;
    dray_column *c;
    dray_status st = dray__column_alloc(t, (dray_time_unit)hdr[1], len, hdr[2], 0, &c);
    if (st)
        return st;
    if (hdr[2] && !dray__take(r, c->validity, (size_t)dray__bitmap_bytes(len))) {
        st = bad("truncated validity");
        goto fail;
    }
    if (t == DRAY_DT_BOOL) {
        if (!dray__take(r, c->data, (size_t)dray__bitmap_bytes(len)))
            st = bad("truncated bool values");
    } else if (t == DRAY_DT_UTF8) {
        uint64_t cl;
        int32_t *off = c->data;
        if (!dray__take(r, off, (size_t)(len + 1) * 4) || !dray__take_u64(r, &cl) || cl > r->left ||
            cl > INT32_MAX || off[0] != 0 || (uint64_t)off[len] != cl) {
            st = bad("bad string offsets");
            goto fail;
        }
        for (int64_t i = 0; i < len; i++)
            if (off[i + 1] < off[i]) {
                st = bad("decreasing string offsets");
                goto fail;
            }
        free(c->chars);
        if (!(c->chars = malloc(cl ? cl : 1))) {
            st = dray_set_error(DRAY_ENOMEM, "decode");
            goto fail;
        }
        dray__take(r, c->chars, cl);
        c->chars_len = (int64_t)cl;
    } else if (t == DRAY_DT_DICT) {
        if (!dray__take(r, c->data, (size_t)len * 4)) {
            st = bad("truncated dictionary indices");
            goto fail;
        }
        if ((st = decode_column(r, depth + 1, &c->dict)))
            goto fail;
        if (c->dict->type != DRAY_DT_UTF8) {
            st = bad("dictionary is not utf8");
            goto fail;
        }
        const int32_t *idx = c->data;
        for (int64_t i = 0; i < len; i++)
            if (dray_column_is_valid(c, i) && (idx[i] < 0 || idx[i] >= c->dict->length)) {
                st = bad("dictionary index out of range");
                goto fail;
            }
    } else if (!dray__take(r, c->data, (size_t)len * (size_t)dray__dtype_width(t))) {
        st = bad("truncated values");
    }
    if (st)
        goto fail;
    dray__column_finish_nulls(c);
    *out = c;
    return DRAY_OK;
fail:
    dray_column_release(c);
    return st;
}

dray_status dray__part_decode(const void *data, size_t len, dray_ext_obj **out)
{
    dray__rd r = {data, len};
    char magic[4];
    uint64_t nc, nrows, bad_rows;
    if (!dray__take(&r, magic, 4) || memcmp(magic, "DTB1", 4) || !dray__take_u64(&r, &nc) || !dray__take_u64(&r, &nrows) ||
        !dray__take_u64(&r, &bad_rows) || nc > r.left / 8 || nrows > (uint64_t)INT64_MAX)
        return bad("bad header");
    dray_column **cols = calloc(nc + 1, sizeof(*cols));
    char **names = calloc(nc + 1, sizeof(*names));
    dray_status st = cols && names ? DRAY_OK : dray_set_error(DRAY_ENOMEM, "decode");
    for (size_t c = 0; c < nc && !st; c++) {
        uint64_t l;
        if (!dray__take_u64(&r, &l) || l > r.left || !(names[c] = calloc(l + 1, 1)) || !dray__take(&r, names[c], l)) {
            st = names[c] ? bad("truncated column name") : dray_set_error(DRAY_ENOMEM, "decode");
            break;
        }
        if (!(st = decode_column(&r, 0, &cols[c])) && (uint64_t)cols[c]->length != nrows)
            st = bad("column length differs from the row count");
    }
    dray_table *t = NULL;
    if (!st && r.left)
        st = bad("trailing bytes");
    if (!st)
        st = dray_table_create((const char *const *)names, cols, nc, &t);
    if (!st && nc == 0)
        t->nrows = (int64_t)nrows;
    for (size_t c = 0; cols && names && c < nc; c++) {
        dray_column_release(cols[c]);
        free(names[c]);
    }
    free(cols);
    free(names);
    if (st)
        return st;
    dray_value v;
    if ((st = dray__part_value(t, (int64_t)bad_rows, &v)))
        return st;
    *out = v.u.ext;
    return DRAY_OK;
}
