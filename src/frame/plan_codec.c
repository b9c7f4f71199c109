/* The byte form of a CSV plan ("frame.csv_plan" extension values), so that read_csv's range tasks
 * can run on cluster nodes: "DCP1", the dialect, the file's field names and which output column
 * each feeds, the output types and units, the null markers. Decoding checks everything (the bytes
 * are untrusted) and derives the rest (stop bytes, marker lengths, output names) as creation does. */
#include <stdlib.h>

#include "csv.h"

typedef dray_status (*write_fn)(void *buf, const void *data, size_t len);

static dray_status put_u64(write_fn w, void *b, uint64_t v) { return w(b, &v, 8); }

static dray_status put_str(write_fn w, void *b, const char *s)
{
    size_t l = strlen(s);
    dray_status st = put_u64(w, b, l);
    return st || !l ? st : w(b, s, l);
}

dray_status dray__csv_plan_encode(const dray__csv_plan *p, write_fn w, void *b)
{
    uint8_t hdr[4] = {(uint8_t)p->delim, (uint8_t)p->quote, p->header, (uint8_t)p->bad};
    dray_status st;
    if ((st = w(b, "DCP1", 4)) || (st = w(b, hdr, 4)) || (st = put_u64(w, b, (uint64_t)p->nfields)) ||
        (st = put_u64(w, b, (uint64_t)p->ncols)))
        return st;
    for (int f = 0; f < p->nfields && !st; f++) {
        int64_t col = p->field_col[f];
        if (!(st = put_str(w, b, p->fields[f])))
            st = w(b, &col, 8);
    }
    for (int c = 0; c < p->ncols && !st; c++) {
        uint8_t tu[2] = {(uint8_t)p->types[c], (uint8_t)p->units[c]};
        st = w(b, tu, 2);
    }
    if (!st)
        st = put_u64(w, b, p->n_na);
    for (size_t i = 0; i < p->n_na && !st; i++)
        st = put_str(w, b, p->na[i]);
    return st ? st : w(b, &p->est_row_bytes, 8);
}

/* ---- decoding ---- */


/* take_str: a length-prefixed string with no NUL byte in it (owned), or NULL. */
static char *take_str(dray__rd *r)
{
    uint64_t l;
    if (!dray__take_u64(r, &l) || l > r->left)
        return NULL;
    char *s = calloc(l + 1, 1);
    if (!s || !dray__take(r, s, l) || strlen(s) != l) {
        free(s);
        return NULL;
    }
    return s;
}

static dray_status bad(const char *what)
{
    return dray_set_error(DRAY_EFORMAT, "CSV plan bytes: %s", what);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* check_unique: DRAY_EFORMAT when a name appears twice (sorted copy: no quadratic time). */
static dray_status check_unique(char **names, uint64_t n)
{
    char **s = malloc(n * sizeof(*s));
    if (!s)
        return dray_set_error(DRAY_ENOMEM, "decode CSV plan");
    memcpy(s, names, n * sizeof(*s));
    qsort(s, n, sizeof(*s), cmp_str);
    dray_status st = DRAY_OK;
    for (uint64_t i = 1; i < n && !st; i++)
        if (!strcmp(s[i - 1], s[i]))
            st = bad("a field name twice");
    free(s);
    return st;
}

dray_status dray__csv_plan_decode(const void *data, size_t len, dray__csv_plan **out)
{
    dray__rd r = {data, len};
    char magic[4];
    uint8_t hdr[4];
    uint64_t nf, nc, nna;
    if (!dray__take(&r, magic, 4) || memcmp(magic, "DCP1", 4) || !dray__take(&r, hdr, 4) || !dray__take_u64(&r, &nf) ||
        !dray__take_u64(&r, &nc))
        return bad("bad header");
    char delim = (char)hdr[0], quote = (char)hdr[1];
    if (!delim || delim == '\n' || delim == '\r' || delim == quote || hdr[2] > 1 || hdr[3] > 1)
        return bad("bad dialect");
    /* every field takes at least 16 bytes (name length, column), every column 2 */
    if (nf == 0 || nf > r.left / 16 || nf > (1u << 24) || nc > nf)
        return bad("bad field count");
    dray__csv_plan *p = calloc(1, sizeof(*p));
    if (!p)
        return dray_set_error(DRAY_ENOMEM, "decode CSV plan");
    dray_status st = DRAY_OK;
    p->delim = delim;
    p->quote = quote;
    p->stop[(uint8_t)delim] = p->stop['\n'] = p->stop['\r'] = 1;
    p->header = hdr[2];
    p->bad = (dray_bad_lines)hdr[3];
    p->fields = calloc(nf, sizeof(char *));
    p->field_col = malloc(nf * sizeof(int));
    p->names = calloc(nc + 1, sizeof(char *));
    p->types = calloc(nc + 1, sizeof(dray_col_type));
    p->units = calloc(nc + 1, sizeof(dray_time_unit));
    if (!p->fields || !p->field_col || !p->names || !p->types || !p->units) {
        st = dray_set_error(DRAY_ENOMEM, "decode CSV plan");
        goto fail;
    }
    p->ncols = (int)nc;
    /* output columns are the used fields in file order: 0, 1, ... */
    int next = 0;
    for (uint64_t f = 0; f < nf; f++) {
        int64_t col;
        if (!(p->fields[f] = take_str(&r))) {
            st = bad("truncated field name");
            goto fail;
        }
        p->nfields = (int)f + 1;
        if (!dray__take(&r, &col, 8)) {
            st = bad("truncated field");
            goto fail;
        }
        if (col != -1 && col != next) {
            st = bad("field feeds a column out of order");
            goto fail;
        }
        p->field_col[f] = (int)col;
        if (col >= 0) {
            if (next >= (int)nc) {
                st = bad("more used fields than columns");
                goto fail;
            }
            p->names[next++] = p->fields[f];
        }
    }
    if ((st = check_unique(p->fields, nf)))
        goto fail;
    if (next != (int)nc) {
        st = bad("fewer used fields than columns");
        goto fail;
    }
    for (uint64_t c = 0; c < nc; c++) {
        uint8_t tu[2];
        if (!dray__take(&r, tu, 2) || tu[0] >= DRAY__DT_COUNT || tu[1] > DRAY_TU_NANO) {
            st = bad("bad column type");
            goto fail;
        }
        p->types[c] = (dray_col_type)tu[0];
        p->units[c] = (dray_time_unit)tu[1];
    }
    if (!dray__take_u64(&r, &nna) || nna > r.left / 8) {
        st = bad("bad null marker count");
        goto fail;
    }
    p->na = calloc(nna ? nna : 1, sizeof(char *));
    p->na_len = calloc(nna ? nna : 1, sizeof(size_t));
    if (!p->na || !p->na_len) {
        st = dray_set_error(DRAY_ENOMEM, "decode CSV plan");
        goto fail;
    }
    for (uint64_t i = 0; i < nna; i++) {
        if (!(p->na[i] = take_str(&r))) {
            st = bad("truncated null marker");
            goto fail;
        }
        p->n_na = i + 1;
        p->na_len[i] = strlen(p->na[i]);
        if (p->na_len[i] < 64)
            p->na_len_mask |= 1ull << p->na_len[i];
    }
    if (!dray__take(&r, &p->est_row_bytes, 8) || p->est_row_bytes <= 0 || p->est_row_bytes > (1ll << 40)) {
        st = bad("bad row size estimate");
        goto fail;
    }
    if (r.left) {
        st = bad("trailing bytes");
        goto fail;
    }
    *out = p;
    return DRAY_OK;
fail:
    dray__csv_plan_destroy(p);
    return st;
}
