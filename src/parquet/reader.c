/* The Parquet reader: maps a file, parses its footer, and decodes row groups (data pages v1 and v2,
 * PLAIN and dictionary encodings, RLE definition levels, none/snappy/gzip/zstd) straight into Arrow
 * buffers. Everything read from the file is bounds-checked; faults are DRAY_EFORMAT naming the file. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

enum { CONV_NONE, CONV_NARROW, CONV_MS_TO_S, CONV_INT96 };

typedef struct pq_rcol {
    char *name;
    const pq_selem *se;
    int ptype, pwidth; /* physical type and its PLAIN width (0 for bool and byte arrays) */
    bool optional;
    pq_atype at;       /* output Arrow type */
    char fmt[64];      /* output Arrow format */
    int conv;
    bool is_signed;    /* sort order of integer statistics */
} pq_rcol;

struct dray_parquet_file {
    char *path;
    const uint8_t *data;
    size_t size;
    bool mapped;
    size_t footer_start; /* file offset where the footer metadata begins */
    pq_meta meta;
    int ncols;
    pq_rcol *cols;
};

/* ==== Opening ==== */

static dray_status ferr(const dray_parquet_file *f, const char *what)
{
    return dray_set_error(DRAY_EFORMAT, "parquet: '%s': %s", f->path, what);
}

static dray_status unsupported(const dray_parquet_file *f, const char *col, const char *what)
{
    return dray_set_error(DRAY_EUNSUPPORTED, "parquet: '%s': column '%s': %s", f->path, col, what);
}

/* The stored Arrow format of column i from our key/value metadata, into buf; false if absent. */
static bool stored_format(const pq_meta *m, int i, char *buf, size_t cap)
{
    if (!m->arrow_formats)
        return false;
    const uint8_t *p = m->arrow_formats, *end = p + m->arrow_formats_len;
    for (int k = 0; p < end; k++) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return false;
        if (k == i) {
            size_t n = (size_t)(nl - p);
            if (n + 1 > cap)
                return false;
            memcpy(buf, p, n);
            buf[n] = '\0';
            return true;
        }
        p = nl + 1;
    }
    return false;
}

static dray_status map_column(dray_parquet_file *f, int i, pq_rcol *c)
{
    const pq_selem *e = c->se;
    const char *fmt = NULL;
    int bits = e->int_bits;
    bool is_signed = e->int_signed;
    c->is_signed = true;
    if (e->logical != PQ_LT_INTEGER) {
        switch (e->converted) {
        case PQ_CT_INT_8: bits = 8, is_signed = true; break;
        case PQ_CT_INT_16: bits = 16, is_signed = true; break;
        case PQ_CT_INT_32: bits = 32, is_signed = true; break;
        case PQ_CT_INT_64: bits = 64, is_signed = true; break;
        case PQ_CT_UINT_8: bits = 8, is_signed = false; break;
        case PQ_CT_UINT_16: bits = 16, is_signed = false; break;
        case PQ_CT_UINT_32: bits = 32, is_signed = false; break;
        case PQ_CT_UINT_64: bits = 64, is_signed = false; break;
        default: bits = 0;
        }
    }
    bool ts = e->logical == PQ_LT_TIMESTAMP || e->converted == PQ_CT_TS_MILLIS ||
              e->converted == PQ_CT_TS_MICROS;
    if (e->logical == PQ_LT_OTHER || e->logical == PQ_LT_TIME || e->converted == 5 /* DECIMAL */ ||
        e->converted == 7 || e->converted == 8 || e->converted == 21)
        return unsupported(f, c->name, "its logical type (decimal, time, interval, ...) is not "
                                       "supported");
    switch (c->ptype) {
    case PQ_BOOLEAN: fmt = "b"; break;
    case PQ_FLOAT: fmt = "f"; c->pwidth = 4; break;
    case PQ_DOUBLE: fmt = "g"; c->pwidth = 8; break;
    case PQ_BYTE_ARRAY:
        fmt = e->logical == PQ_LT_STRING || e->logical == PQ_LT_ENUM || e->logical == PQ_LT_JSON ||
                      e->converted == PQ_CT_UTF8 || e->converted == 4 || e->converted == 19
                  ? "u"
                  : "z";
        break;
    case PQ_INT32:
        c->pwidth = 4;
        if (e->logical == PQ_LT_DATE || e->converted == PQ_CT_DATE)
            fmt = "tdD";
        else if (bits == 8)
            fmt = is_signed ? "c" : "C";
        else if (bits == 16)
            fmt = is_signed ? "s" : "S";
        else if (bits == 0 || bits == 32)
            fmt = is_signed || bits == 0 ? "i" : "I";
        else
            return unsupported(f, c->name, "INT32 with a bit width above 32");
        if (bits && bits < 32)
            c->conv = CONV_NARROW;
        c->is_signed = is_signed || bits == 0;
        break;
    case PQ_INT64:
        c->pwidth = 8;
        if (ts) {
            int unit = e->logical == PQ_LT_TIMESTAMP ? e->unit
                       : e->converted == PQ_CT_TS_MILLIS ? PQ_UNIT_MILLIS
                                                         : PQ_UNIT_MICROS;
            bool utc = e->logical == PQ_LT_TIMESTAMP ? e->utc : true;
            if (unit < 1 || unit > 3)
                return unsupported(f, c->name, "timestamp without a known unit");
            snprintf(c->fmt, sizeof(c->fmt), "ts%c:%s", "smun"[unit], utc ? "UTC" : "");
            char sf[64];
            pq_atype st;
            if (stored_format(&f->meta, i, sf, sizeof(sf)) && dray__pq_parse_format(sf, &st) &&
                st.kind == AK_TS && (st.unit == unit || (st.unit == 0 && unit == PQ_UNIT_MILLIS)) &&
                (st.tz[0] != '\0') == utc) {
                memcpy(c->fmt, sf, sizeof(sf));
                if (st.unit == 0)
                    c->conv = CONV_MS_TO_S;
            }
        } else if (bits == 0 || bits == 64) {
            fmt = is_signed || bits == 0 ? "l" : "L";
            c->is_signed = is_signed || bits == 0;
        } else {
            return unsupported(f, c->name, "INT64 with a bit width below 64");
        }
        break;
    case PQ_INT96:
        c->pwidth = 12;
        fmt = "tsn:";
        c->conv = CONV_INT96;
        break;
    default:
        return unsupported(f, c->name, "FIXED_LEN_BYTE_ARRAY columns are not supported");
    }
    if (fmt)
        snprintf(c->fmt, sizeof(c->fmt), "%s", fmt);
    if (!dray__pq_parse_format(c->fmt, &c->at))
        return ferr(f, "internal format mapping failed");
    return DRAY_OK;
}

static dray_status build_columns(dray_parquet_file *f)
{
    const pq_meta *m = &f->meta;
    const pq_selem *root = &m->schema[0];
    if (root->num_children != m->nschema - 1)
        return dray_set_error(DRAY_EUNSUPPORTED,
                              "parquet: '%s': nested schemas (groups, lists, maps) are not supported",
                              f->path);
    int n = m->nschema - 1;
    f->cols = calloc(n ? (size_t)n : 1, sizeof(*f->cols));
    if (!f->cols)
        return dray_set_error(DRAY_ENOMEM, "parquet: '%s': out of memory", f->path);
    f->ncols = n;
    for (int i = 0; i < f->ncols; i++) {
        pq_rcol *c = &f->cols[i];
        c->se = &m->schema[i + 1];
        if (!c->se->name)
            return dray_set_error(DRAY_EFORMAT, "parquet: '%s': schema element %d has no name",
                                  f->path, i + 1);
        c->name = strndup((const char *)c->se->name, c->se->name_len);
        if (!c->name)
            return DRAY_ENOMEM;
        if (c->se->num_children > 0 || !c->se->has_type)
            return dray_set_error(DRAY_EUNSUPPORTED,
                                  "parquet: '%s': column '%s' is nested, which is not supported",
                                  f->path, c->name);
        if (c->se->repetition == 2)
            return unsupported(f, c->name, "repeated columns are not supported");
        c->optional = c->se->repetition != 0;
        c->ptype = c->se->type;
        dray_status st = map_column(f, i, c);
        if (st)
            return st;
    }
    for (int g = 0; g < m->nrgs; g++) {
        const pq_rowgroup *rg = &m->rgs[g];
        if (rg->nchunks != f->ncols)
            return dray_set_error(DRAY_EFORMAT,
                                  "parquet: '%s': row group %d has %d column chunks, the schema %d "
                                  "columns",
                                  f->path, g, rg->nchunks, f->ncols);
        if (rg->num_rows < 0)
            return dray_set_error(DRAY_EFORMAT, "parquet: '%s': row group %d has a negative row count",
                                  f->path, g);
        for (int i = 0; i < f->ncols; i++) {
            const pq_chunk *ch = &rg->chunks[i];
            if (!ch->has_meta)
                return dray_set_error(DRAY_EFORMAT,
                                      "parquet: '%s': row group %d column '%s' has no metadata",
                                      f->path, g, f->cols[i].name);
            if (ch->type != f->cols[i].ptype)
                return dray_set_error(DRAY_EFORMAT,
                                      "parquet: '%s': row group %d column '%s': chunk type %d differs "
                                      "from the schema's %d",
                                      f->path, g, f->cols[i].name, ch->type, f->cols[i].ptype);
        }
    }
    return DRAY_OK;
}

static dray_status open_common(dray_parquet_file *f)
{
    if (f->size < 12)
        return ferr(f, "too short to be a Parquet file (under 12 bytes)");
    if (memcmp(f->data, "PAR1", 4) != 0)
        return ferr(f, "not a Parquet file (no PAR1 magic at the start)");
    if (memcmp(f->data + f->size - 4, "PAR1", 4) != 0) {
        if (memcmp(f->data + f->size - 4, "PARE", 4) == 0)
            return dray_set_error(DRAY_EUNSUPPORTED, "parquet: '%s': encrypted files are not "
                                                     "supported", f->path);
        return ferr(f, "truncated or corrupt: no PAR1 magic at the end");
    }
    uint32_t flen = pq_load_u32le(f->data + f->size - 8);
    if ((uint64_t)flen + 12 > f->size)
        return dray_set_error(DRAY_EFORMAT,
                              "parquet: '%s': footer length %u exceeds the file size %zu", f->path,
                              flen, f->size);
    f->footer_start = f->size - 8 - flen;
    const char *why = dray__pq_meta_parse(f->data + f->footer_start, flen, &f->meta);
    if (why) {
        if (why == dray__pq_oom)
            return dray_set_error(DRAY_ENOMEM, "parquet: '%s': out of memory", f->path);
        return dray_set_error(DRAY_EFORMAT, "parquet: '%s': corrupt footer: %s", f->path, why);
    }
    if (f->meta.num_rows < 0)
        return ferr(f, "negative row count in the footer");
    int64_t total = 0;
    for (int g = 0; g < f->meta.nrgs; g++) {
        if (f->meta.rgs[g].num_rows < 0 || f->meta.rgs[g].num_rows > INT64_MAX - total)
            return ferr(f, "bad row group row count");
        total += f->meta.rgs[g].num_rows;
    }
    if (total != f->meta.num_rows)
        return dray_set_error(DRAY_EFORMAT,
                              "parquet: '%s': row groups hold %lld rows, the footer says %lld",
                              f->path, (long long)total, (long long)f->meta.num_rows);
    return build_columns(f);
}

void dray_parquet_close(dray_parquet_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->ncols; i++)
        free(f->cols[i].name);
    free(f->cols);
    dray__pq_meta_free(&f->meta);
    if (f->mapped && f->size)
        munmap((void *)f->data, f->size);
    free(f->path);
    free(f);
}

dray_status dray_parquet_open(const char *path, dray_parquet_file **out)
{
    if (!path || !out)
        return dray_set_error(DRAY_EINVAL, "parquet: open: NULL path or out");
    dray_parquet_file *f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return DRAY_ENOMEM;
    }
    dray_status st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = dray_set_error(errno == ENOENT ? DRAY_ENOTFOUND : DRAY_EIO,
                            "parquet: cannot open '%s': %s", path, strerror(errno));
        goto out_free;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = dray_set_error(DRAY_EIO, "parquet: '%s' is not a regular file", path);
        close(fd);
        goto out_free;
    }
    f->size = (size_t)sb.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            st = dray_set_error(DRAY_EIO, "parquet: cannot map '%s': %s", path, strerror(errno));
            close(fd);
            f->size = 0;
            goto out_free;
        }
        f->data = p;
        f->mapped = true;
    }
    close(fd);
    if ((st = open_common(f)) != DRAY_OK)
        goto out_free;
    *out = f;
    return DRAY_OK;
out_free:
    dray_parquet_close(f);
    return st;
}

dray_status dray_parquet_open_buffer(const void *data, size_t len, const char *name,
                                     dray_parquet_file **out)
{
    if ((!data && len) || !out)
        return dray_set_error(DRAY_EINVAL, "parquet: open_buffer: NULL data or out");
    dray_parquet_file *f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(name ? name : "<buffer>"))) {
        free(f);
        return DRAY_ENOMEM;
    }
    f->data = data;
    f->size = len;
    dray_status st = open_common(f);
    if (st) {
        dray_parquet_close(f);
        return st;
    }
    *out = f;
    return DRAY_OK;
}

/* ==== Queries ==== */

int64_t dray_parquet_num_rows(const dray_parquet_file *f) { return f->meta.num_rows; }
int dray_parquet_num_row_groups(const dray_parquet_file *f) { return f->meta.nrgs; }
int dray_parquet_num_columns(const dray_parquet_file *f) { return f->ncols; }

int64_t dray_parquet_row_group_num_rows(const dray_parquet_file *f, int rg)
{
    return rg >= 0 && rg < f->meta.nrgs ? f->meta.rgs[rg].num_rows : -1;
}

const char *dray_parquet_column_name(const dray_parquet_file *f, int col)
{
    return col >= 0 && col < f->ncols ? f->cols[col].name : NULL;
}

int dray_parquet_column_index(const dray_parquet_file *f, const char *name)
{
    for (int i = 0; i < f->ncols; i++)
        if (name && strcmp(f->cols[i].name, name) == 0)
            return i;
    return -1;
}

/* ==== Arrow schema and arrays we own ==== */

typedef struct schema_priv {
    char *format, *name;
    struct ArrowSchema **children;
} schema_priv;

static void release_schema(struct ArrowSchema *s)
{
    if (!s->release)
        return;
    schema_priv *p = s->private_data;
    for (int64_t i = 0; i < s->n_children; i++) {
        struct ArrowSchema *c = s->children[i];
        if (c->release)
            c->release(c);
        free(c);
    }
    free(p->children);
    free(p->format);
    free(p->name);
    free(p);
    s->release = NULL;
}

static dray_status make_schema(const char *format, const char *name, int64_t nchildren,
                               struct ArrowSchema *s)
{
    schema_priv *p = calloc(1, sizeof(*p));
    if (!p)
        return DRAY_ENOMEM;
    p->format = strdup(format);
    p->name = strdup(name);
    if (nchildren)
        p->children = calloc((size_t)nchildren, sizeof(*p->children));
    if (!p->format || !p->name || (nchildren && !p->children)) {
        free(p->format);
        free(p->name);
        free(p->children);
        free(p);
        return DRAY_ENOMEM;
    }
    memset(s, 0, sizeof(*s));
    s->format = p->format;
    s->name = p->name;
    s->flags = ARROW_FLAG_NULLABLE;
    s->children = p->children;
    s->private_data = p;
    s->release = release_schema;
    return DRAY_OK;
}

static dray_status schema_for(const dray_parquet_file *f, const int *cols, size_t ncols,
                              struct ArrowSchema *out)
{
    dray_status st = make_schema("+s", "", (int64_t)ncols, out);
    if (st)
        return st;
    out->flags = 0;
    for (size_t i = 0; i < ncols; i++) {
        const pq_rcol *c = &f->cols[cols ? cols[i] : (int)i];
        struct ArrowSchema *cs = malloc(sizeof(*cs));
        if (!cs || (st = make_schema(c->fmt, c->name, 0, cs)) != DRAY_OK) {
            free(cs);
            release_schema(out);
            return DRAY_ENOMEM;
        }
        out->children[i] = cs;
        out->n_children = (int64_t)i + 1;
    }
    return DRAY_OK;
}

dray_status dray_parquet_schema(const dray_parquet_file *f, struct ArrowSchema *out)
{
    if (!f || !out)
        return dray_set_error(DRAY_EINVAL, "parquet: schema: NULL argument");
    return schema_for(f, NULL, (size_t)f->ncols, out);
}

typedef struct array_priv {
    void *bufs[3];
    const void *ptrs[3];
    struct ArrowArray **children;
} array_priv;

static void release_array(struct ArrowArray *a)
{
    if (!a->release)
        return;
    array_priv *p = a->private_data;
    for (int64_t i = 0; i < a->n_children; i++) {
        struct ArrowArray *c = a->children[i];
        if (c->release)
            c->release(c);
        free(c);
    }
    free(p->children);
    for (int i = 0; i < 3; i++)
        free(p->bufs[i]);
    free(p);
    a->release = NULL;
}

/* ==== Statistics ==== */

dray_status dray_parquet_column_stats(const dray_parquet_file *f, int rg, int col,
                                      dray_parquet_stats *out)
{
    if (!f || !out || rg < 0 || rg >= f->meta.nrgs || col < 0 || col >= f->ncols)
        return dray_set_error(DRAY_EINVAL, "parquet: '%s': no row group %d / column %d",
                              f ? f->path : "?", rg, col);
    const pq_rcol *c = &f->cols[col];
    const pq_stats *s = &f->meta.rgs[rg].chunks[col].stats;
    dray_parquet_stats r = {0};
    r.null_count = s->has_null_count ? s->null_count : -1;
    bool ok = s->has_min && s->has_max;
    /* legacy min/max used signed order: useless for strings and unsigned integers */
    if (s->legacy && (c->ptype == PQ_BYTE_ARRAY || !c->is_signed || c->ptype == PQ_INT96))
        ok = false;
    if (ok) {
        switch (c->ptype) {
        case PQ_BOOLEAN:
            ok = s->min_len == 1 && s->max_len == 1;
            if (ok) {
                r.min_i = s->min[0] & 1, r.max_i = s->max[0] & 1;
                r.min_f = (double)r.min_i, r.max_f = (double)r.max_i;
            }
            break;
        case PQ_INT32:
        case PQ_INT64: {
            size_t w = c->ptype == PQ_INT32 ? 4 : 8;
            ok = s->min_len == w && s->max_len == w;
            if (!ok)
                break;
            int64_t lo, hi;
            if (w == 4) {
                int32_t a, b;
                memcpy(&a, s->min, 4);
                memcpy(&b, s->max, 4);
                lo = c->is_signed ? a : (int64_t)(uint32_t)a;
                hi = c->is_signed ? b : (int64_t)(uint32_t)b;
                r.min_u = (uint64_t)lo, r.max_u = (uint64_t)hi;
            } else {
                memcpy(&lo, s->min, 8);
                memcpy(&hi, s->max, 8);
                r.min_u = (uint64_t)lo, r.max_u = (uint64_t)hi;
                if (c->conv == CONV_MS_TO_S) { /* round outward to whole seconds */
                    lo = lo >= 0 ? lo / 1000 : -((-lo + 999) / 1000);
                    hi = hi >= 0 ? (hi + 999) / 1000 : -(-hi / 1000);
                }
            }
            r.min_i = lo, r.max_i = hi;
            if (!c->is_signed && w == 8) {
                r.min_f = (double)r.min_u, r.max_f = (double)r.max_u;
                if (r.min_u > INT64_MAX || r.max_u > INT64_MAX) /* min_i/max_i cannot hold them */
                    r.min_i = INT64_MIN, r.max_i = INT64_MAX;
            } else {
                r.min_f = (double)lo, r.max_f = (double)hi;
            }
            break;
        }
        case PQ_FLOAT:
        case PQ_DOUBLE: {
            size_t w = c->ptype == PQ_FLOAT ? 4 : 8;
            ok = s->min_len == w && s->max_len == w;
            if (!ok)
                break;
            if (w == 4) {
                float a, b;
                memcpy(&a, s->min, 4);
                memcpy(&b, s->max, 4);
                r.min_f = a, r.max_f = b;
            } else {
                memcpy(&r.min_f, s->min, 8);
                memcpy(&r.max_f, s->max, 8);
            }
            if (isnan(r.min_f) || isnan(r.max_f))
                ok = false;
            /* +-0 ambiguity (spec): widen the bounds across zero */
            if (r.min_f == 0)
                r.min_f = -0.0;
            if (r.max_f == 0)
                r.max_f = 0.0;
            break;
        }
        case PQ_BYTE_ARRAY:
            r.min_b = s->min, r.min_len = s->min_len;
            r.max_b = s->max, r.max_len = s->max_len;
            break;
        default:
            ok = false;
        }
    }
    if (!ok) {
        dray_parquet_stats z = {0};
        z.null_count = r.null_count;
        r = z;
    }
    r.has_min_max = ok;
    *out = r;
    return DRAY_OK;
}

/* ==== Decoding a column chunk ==== */

typedef struct col_out {
    int64_t n;         /* rows */
    int64_t nulls;
    uint8_t *valid;    /* bitmap, NULL when the column is required */
    uint8_t *vals;     /* fixed width values */
    int32_t *offs;     /* utf8 offsets */
    uint8_t *sdata;    /* utf8 data */
    size_t sdata_len, sdata_cap;
} col_out;

typedef struct dec_ctx {
    const dray_parquet_file *f;
    int rg, col;
    const pq_rcol *c;
    const pq_chunk *ch;
    /* dictionary */
    uint8_t *dict_buf;
    const uint8_t *dict_vals; /* fixed width, or NULL */
    uint32_t *dict_off, *dict_len;
    uint32_t dict_n;
    bool has_dict;
    /* scratch */
    uint8_t *page;
    size_t page_cap;
    uint32_t *idx;
    size_t idx_cap;
    uint64_t *u64, *u64b;
    size_t u64_cap, u64b_cap;
    void *zstd; /* decompression context, made on first use */
} dec_ctx;

static dray_status derr(const dec_ctx *d, const char *what)
{
    if (what == dray__pq_oom)
        return dray_set_error(DRAY_ENOMEM, "parquet: '%s': row group %d column '%s': out of memory",
                              d->f->path, d->rg, d->c->name);
    return dray_set_error(DRAY_EFORMAT, "parquet: '%s': row group %d column '%s': %s", d->f->path,
                          d->rg, d->c->name, what);
}

static bool grow_scratch(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = need < 4096 ? 4096 : need;
    void *q = realloc(*p, n * elem);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

/* Decompresses a page body into the scratch (or returns the raw body when uncompressed). */
static dray_status page_body(dec_ctx *d, const uint8_t *src, size_t n, size_t want, bool compressed,
                             const uint8_t **out)
{
    if (!compressed || d->ch->codec == PQ_CODEC_NONE) {
        if (n != want)
            return derr(d, "page's uncompressed size differs from its stored size");
        *out = src;
        return DRAY_OK;
    }
    if (want > ((size_t)1 << 31))
        return derr(d, "page larger than 2 GiB");
    if (!grow_scratch((void **)&d->page, &d->page_cap, want + 8, 1))
        return DRAY_ENOMEM;
    const char *why = dray__pq_decompress(d->ch->codec, src, n, d->page, want, &d->zstd);
    if (why)
        return derr(d, why);
    *out = d->page;
    return DRAY_OK;
}

static dray_status read_dict(dec_ctx *d, const pq_page_header *h, const uint8_t *src, size_t n)
{
    if (d->has_dict)
        return derr(d, "more than one dictionary page");
    if (h->encoding != PQ_ENC_PLAIN && h->encoding != PQ_ENC_PLAIN_DICT)
        return derr(d, "dictionary page is not PLAIN-encoded");
    if (d->c->ptype == PQ_BOOLEAN)
        return derr(d, "dictionary page in a boolean column");
    size_t want = (size_t)h->uncompressed_size;
    d->dict_buf = malloc(want + 16); /* slack for 16-byte copies of short entries */
    if (!d->dict_buf)
        return DRAY_ENOMEM;
    if (d->ch->codec == PQ_CODEC_NONE) {
        if (n != want)
            return derr(d, "dictionary page size mismatch");
        memcpy(d->dict_buf, src, n);
    } else {
        const char *why = dray__pq_decompress(d->ch->codec, src, n, d->dict_buf, want, &d->zstd);
        if (why)
            return derr(d, why);
    }
    uint32_t cnt = (uint32_t)h->num_values;
    d->dict_n = cnt;
    d->has_dict = true;
    if (d->c->ptype == PQ_BYTE_ARRAY) {
        if (cnt > want / 4)
            return derr(d, "dictionary holds more entries than its size allows");
        d->dict_off = malloc(((size_t)cnt + 1) * sizeof(uint32_t));
        d->dict_len = malloc(((size_t)cnt + 1) * sizeof(uint32_t));
        if (!d->dict_off || !d->dict_len)
            return DRAY_ENOMEM;
        size_t p = 0;
        for (uint32_t i = 0; i < cnt; i++) {
            if (want - p < 4)
                return derr(d, "dictionary entry runs past the page");
            uint32_t len = pq_load_u32le(d->dict_buf + p);
            p += 4;
            if (len > want - p)
                return derr(d, "dictionary entry runs past the page");
            d->dict_off[i] = (uint32_t)p;
            d->dict_len[i] = len;
            p += len;
        }
    } else {
        if ((size_t)cnt * (size_t)d->c->pwidth > want)
            return derr(d, "dictionary holds more entries than its size allows");
        d->dict_vals = d->dict_buf;
    }
    return DRAY_OK;
}

/* Converts one physical value at src into the output slot dst. */
static inline void put_fixed(const pq_rcol *c, uint8_t *dst, const uint8_t *src)
{
    switch (c->conv) {
    case CONV_NONE: /* constant sizes: no memcpy call per value */
        if (c->at.width == 8)
            memcpy(dst, src, 8);
        else if (c->at.width == 4)
            memcpy(dst, src, 4);
        else
            memcpy(dst, src, (size_t)c->at.width);
        return;
    case CONV_NARROW: {
        int32_t x;
        memcpy(&x, src, 4);
        if (c->at.width == 1) {
            int8_t y = (int8_t)x;
            memcpy(dst, &y, 1);
        } else {
            int16_t y = (int16_t)x;
            memcpy(dst, &y, 2);
        }
        return;
    }
    case CONV_MS_TO_S: {
        int64_t x;
        memcpy(&x, src, 8);
        x = x >= 0 ? x / 1000 : -((-x + 999) / 1000);
        memcpy(dst, &x, 8);
        return;
    }
    case CONV_INT96: {
        uint64_t nanos;
        uint32_t jday;
        memcpy(&nanos, src, 8);
        memcpy(&jday, src + 8, 4);
        int64_t x = ((int64_t)jday - 2440588) * 86400000000000LL + (int64_t)nanos;
        memcpy(dst, &x, 8);
        return;
    }
    }
}

static dray_status reserve_str(dec_ctx *d, col_out *o, size_t n)
{
    if (o->sdata_len + n > INT32_MAX)
        return dray_set_error(DRAY_ERANGE,
                              "parquet: '%s': row group %d column '%s': more than 2 GiB of strings "
                              "in one row group",
                              d->f->path, d->rg, d->c->name);
    if (o->sdata_len + n > o->sdata_cap) {
        size_t cap = o->sdata_cap ? o->sdata_cap : 4096;
        while (cap < o->sdata_len + n)
            cap *= 2;
        uint8_t *q = realloc(o->sdata, cap);
        if (!q)
            return DRAY_ENOMEM;
        o->sdata = q;
        o->sdata_cap = cap;
    }
    return DRAY_OK;
}

static dray_status append_str(dec_ctx *d, col_out *o, const uint8_t *p, uint32_t n)
{
    dray_status st = reserve_str(d, o, n);
    if (st)
        return st;
    memcpy(o->sdata + o->sdata_len, p, n);
    o->sdata_len += n;
    return DRAY_OK;
}

static inline bool bit_at(const uint8_t *bits, int64_t i)
{
    return bits[i >> 3] >> (i & 7) & 1;
}

/* The delta and byte-stream-split encodings of format v2 writers. */
static dray_status decode_v2_values(dec_ctx *d, col_out *o, int enc, const uint8_t *v, size_t vlen,
                                    int64_t r0, int64_t nv, size_t k)
{
    const pq_rcol *c = d->c;
    bool dense = k == (size_t)nv;
    const char *why;
    size_t used;
    dray_status st;
    if (!grow_scratch((void **)&d->u64, &d->u64_cap, k + 1, sizeof(uint64_t)))
        return DRAY_ENOMEM;
    if (enc == PQ_ENC_BYTE_STREAM_SPLIT) {
        int P = c->pwidth;
        if (c->ptype == PQ_BYTE_ARRAY || c->ptype == PQ_BOOLEAN || P > 8)
            return derr(d, "BYTE_STREAM_SPLIT on a type it does not apply to");
        if (k * (size_t)P > vlen)
            return derr(d, "byte stream split values run past the page");
        for (size_t j = 0; j < k; j++) {
            uint8_t tmp[8];
            for (int b = 0; b < P; b++)
                tmp[b] = v[(size_t)b * k + j];
            memcpy(&d->u64[j], tmp, 8);
        }
    } else if (c->ptype == PQ_BYTE_ARRAY) {
        if (enc == PQ_ENC_DELTA_BINARY_PACKED)
            return derr(d, "DELTA_BINARY_PACKED on a string column");
        uint64_t *prefix = NULL;
        if (enc == PQ_ENC_DELTA_BYTE_ARRAY) {
            if (!grow_scratch((void **)&d->u64b, &d->u64b_cap, k + 1, sizeof(uint64_t)))
                return DRAY_ENOMEM;
            prefix = d->u64b;
            if (k && (why = dray__delta_decode(v, vlen, prefix, k, &used)))
                return derr(d, why);
            if (k)
                v += used, vlen -= used;
        }
        if (k && (why = dray__delta_decode(v, vlen, d->u64, k, &used)))
            return derr(d, why);
        if (k)
            v += used, vlen -= used;
        size_t p = 0, j = 0, prev = 0, prev_len = 0;
        for (int64_t r = r0; r < r0 + nv; r++) {
            if (dense || bit_at(o->valid, r)) {
                uint64_t len = d->u64[j], pre = prefix ? prefix[j] : 0;
                j++;
                if (len > vlen - p || pre > prev_len)
                    return derr(d, "delta string runs past the page or its prefix");
                size_t start = o->sdata_len;
                if (pre) { /* the prefix is the previous value's: copy it from our own output */
                    if ((st = reserve_str(d, o, (size_t)pre)))
                        return st;
                    memmove(o->sdata + o->sdata_len, o->sdata + prev, (size_t)pre);
                    o->sdata_len += (size_t)pre;
                }
                if ((st = append_str(d, o, v + p, (uint32_t)len)))
                    return st;
                p += (size_t)len;
                prev = start;
                prev_len = o->sdata_len - start;
            }
            o->offs[r + 1] = (int32_t)o->sdata_len;
        }
        return DRAY_OK;
    } else {
        if (enc != PQ_ENC_DELTA_BINARY_PACKED || (c->ptype != PQ_INT32 && c->ptype != PQ_INT64))
            return derr(d, "delta encoding on a type it does not apply to");
        if (k && (why = dray__delta_decode(v, vlen, d->u64, k, &used)))
            return derr(d, why);
        if (c->ptype == PQ_INT32)
            for (size_t j = 0; j < k; j++)
                d->u64[j] = (uint32_t)d->u64[j];
    }
    int W = c->at.width;
    uint8_t *out = o->vals + r0 * W;
    size_t j = 0;
    for (int64_t i = 0; i < nv; i++) {
        if (dense || bit_at(o->valid, r0 + i))
            put_fixed(c, out + i * W, (const uint8_t *)&d->u64[j++]);
        else
            memset(out + i * W, 0, (size_t)W);
    }
    return DRAY_OK;
}

/* Moves k dense values of type T at out[0..k) to the valid rows of out[0..nv), zeroing null slots;
 * from the back, so nothing is overwritten before it moves. */
#define SPREAD(T)                                                                                  \
    do {                                                                                           \
        T *o_ = (T *)(void *)out;                                                                  \
        int64_t j_ = (int64_t)k - 1;                                                               \
        for (int64_t i_ = nv - 1; i_ >= 0; i_--)                                                   \
            o_[i_] = bit_at(valid, r0 + i_) ? o_[j_--] : 0;                                        \
    } while (0)

/* Decodes the values of one data page: rows [r0, r0+nv) with k non-null values in [v, v+vlen). */
static dray_status decode_values(dec_ctx *d, col_out *o, int enc, const uint8_t *v, size_t vlen,
                                 int64_t r0, int64_t nv, size_t k)
{
    const pq_rcol *c = d->c;
    const uint8_t *valid = o->valid;
    bool dense = k == (size_t)nv; /* no nulls in the page */
    dray_status st;
    if (enc == PQ_ENC_PLAIN_DICT || enc == PQ_ENC_RLE_DICT) {
        if (!d->has_dict)
            return derr(d, "dictionary-encoded page without a dictionary page");
        if (k > 0 && vlen < 1)
            return derr(d, "dictionary indices missing");
        if (!grow_scratch((void **)&d->idx, &d->idx_cap, k + 1, sizeof(uint32_t)))
            return DRAY_ENOMEM;
        if (k > 0) {
            const char *why = dray__rle_decode(v + 1, vlen - 1, v[0], d->idx, k);
            if (why)
                return derr(d, why);
        }
        for (size_t j = 0; j < k; j++)
            if (d->idx[j] >= d->dict_n)
                return derr(d, "dictionary index out of range");
        if (c->ptype == PQ_BYTE_ARRAY) {
            size_t total = 16; /* slack for the 16-byte copies below */
            for (size_t j = 0; j < k; j++)
                total += d->dict_len[d->idx[j]];
            if ((st = reserve_str(d, o, total)))
                return st;
            uint8_t *sd = o->sdata;
            size_t len = o->sdata_len, j = 0;
            for (int64_t r = r0; r < r0 + nv; r++) {
                if (dense || bit_at(valid, r)) {
                    uint32_t e = d->idx[j++], n = d->dict_len[e];
                    const uint8_t *src = d->dict_buf + d->dict_off[e];
                    if (n <= 16) /* dict_buf and the output both have 16 bytes of slack */
                        memcpy(sd + len, src, 16);
                    else
                        memcpy(sd + len, src, n);
                    len += n;
                }
                o->offs[r + 1] = (int32_t)len;
            }
            o->sdata_len = len;
            return DRAY_OK;
        }
        int W = c->at.width, P = c->pwidth;
        uint8_t *out = o->vals + r0 * W;
        if (c->conv == CONV_NONE && W == 8) {
            const uint64_t *dv = (const void *)d->dict_vals;
            uint64_t *ov = (void *)out;
            size_t j = 0;
            for (int64_t i = 0; i < nv; i++)
                ov[i] = dense || bit_at(valid, r0 + i) ? dv[d->idx[j++]] : 0;
            (void)dv;
        } else {
            size_t j = 0;
            for (int64_t i = 0; i < nv; i++) {
                if (dense || bit_at(valid, r0 + i))
                    put_fixed(c, out + i * W, d->dict_vals + (size_t)d->idx[j++] * (size_t)P);
                else
                    memset(out + i * W, 0, (size_t)W);
            }
        }
        return DRAY_OK;
    }
    if (c->ptype == PQ_BOOLEAN) {
        uint8_t *out = o->vals;
        const uint8_t *bits = v;
        uint32_t *tmp = NULL;
        if (enc == PQ_ENC_RLE) {
            if (vlen < 4 || pq_load_u32le(v) > vlen - 4)
                return derr(d, "RLE boolean data shorter than its length");
            if (!grow_scratch((void **)&d->idx, &d->idx_cap, k + 1, sizeof(uint32_t)))
                return DRAY_ENOMEM;
            const char *why = dray__rle_decode(v + 4, pq_load_u32le(v), 1, d->idx, k);
            if (why)
                return derr(d, why);
            tmp = d->idx;
        } else if (enc != PQ_ENC_PLAIN) {
            return derr(d, "unsupported boolean encoding");
        } else if ((k + 7) / 8 > vlen) {
            return derr(d, "boolean values run past the page");
        }
        size_t j = 0;
        for (int64_t i = 0; i < nv; i++) {
            int64_t r = r0 + i;
            bool x = false;
            if (dense || bit_at(valid, r)) {
                x = tmp ? tmp[j] : bit_at(bits, (int64_t)j);
                j++;
            }
            if (x)
                out[r >> 3] |= (uint8_t)(1u << (r & 7));
            else
                out[r >> 3] &= (uint8_t)~(1u << (r & 7));
        }
        return DRAY_OK;
    }
    if (enc == PQ_ENC_DELTA_BINARY_PACKED || enc == PQ_ENC_DELTA_LENGTH_BYTE_ARRAY ||
        enc == PQ_ENC_DELTA_BYTE_ARRAY || enc == PQ_ENC_BYTE_STREAM_SPLIT)
        return decode_v2_values(d, o, enc, v, vlen, r0, nv, k);
    if (enc != PQ_ENC_PLAIN) {
        static const char *names[] = {"PLAIN", "?", "PLAIN_DICTIONARY", "RLE", "BIT_PACKED",
                                      "DELTA_BINARY_PACKED", "DELTA_LENGTH_BYTE_ARRAY",
                                      "DELTA_BYTE_ARRAY", "RLE_DICTIONARY", "BYTE_STREAM_SPLIT"};
        return dray_set_error(DRAY_EUNSUPPORTED,
                              "parquet: '%s': row group %d column '%s': encoding %s is not supported",
                              d->f->path, d->rg, c->name,
                              enc >= 0 && enc <= 9 ? names[enc] : "(unknown)");
    }
    if (c->ptype == PQ_BYTE_ARRAY) {
        if ((st = reserve_str(d, o, vlen))) /* the page holds at least the strings' bytes */
            return st;
        size_t p = 0;
        for (int64_t r = r0; r < r0 + nv; r++) {
            if (dense || bit_at(valid, r)) {
                if (vlen - p < 4)
                    return derr(d, "string length runs past the page");
                uint32_t len = pq_load_u32le(v + p);
                p += 4;
                if (len > vlen - p)
                    return derr(d, "string runs past the page");
                memcpy(o->sdata + o->sdata_len, v + p, len);
                o->sdata_len += len;
                p += len;
            }
            o->offs[r + 1] = (int32_t)o->sdata_len;
        }
        return DRAY_OK;
    }
    int W = c->at.width, P = c->pwidth;
    if (k * (size_t)P > vlen)
        return derr(d, "values run past the page");
    uint8_t *out = o->vals + r0 * W;
    if (c->conv == CONV_NONE) {
        memcpy(out, v, k * (size_t)W);
        if (!dense) { /* spread the dense values to their rows, from the back */
            switch (W) {
            case 8: SPREAD(uint64_t); break;
            case 4: SPREAD(uint32_t); break;
            case 2: SPREAD(uint16_t); break;
            default: SPREAD(uint8_t); break;
            }
        }
        return DRAY_OK;
    }
    size_t j = 0;
    for (int64_t i = 0; i < nv; i++) {
        if (dense || bit_at(valid, r0 + i))
            put_fixed(c, out + i * W, v + j++ * (size_t)P);
        else
            memset(out + i * W, 0, (size_t)W);
    }
    return DRAY_OK;
}

static dray_status decode_chunk(dec_ctx *d, int64_t rows, col_out *o)
{
    const dray_parquet_file *f = d->f;
    const pq_chunk *ch = d->ch;
    int64_t start = ch->data_page_offset;
    if (ch->dict_page_offset > 0 && ch->dict_page_offset < start)
        start = ch->dict_page_offset;
    if (start < 4 || ch->total_compressed < 0 || (uint64_t)start > f->footer_start ||
        (uint64_t)ch->total_compressed > f->footer_start - (uint64_t)start)
        return derr(d, "column chunk lies outside the file's data");
    const uint8_t *p = f->data + start, *end = p + ch->total_compressed;
    int64_t r = 0;
    dray_status st;
    while (r < rows) {
        if (p >= end)
            return derr(d, "column chunk ends before all its rows (truncated?)");
        pq_tr tr = {p, end, NULL};
        pq_page_header h;
        const char *why = dray__pq_page_header_parse(&tr, &h);
        if (why)
            return derr(d, why);
        const uint8_t *body = tr.p;
        if ((size_t)h.compressed_size > (size_t)(end - body))
            return derr(d, "page runs past the end of its column chunk");
        p = body + h.compressed_size;
        if (h.type == PQ_PAGE_DICT) {
            if (!h.has_dict)
                return derr(d, "dictionary page without its header");
            if ((st = read_dict(d, &h, body, (size_t)h.compressed_size)))
                return st;
            if (d->c->ptype == PQ_BYTE_ARRAY && d->dict_n > 0) {
                /* size the output for the expected strings once, instead of growing it */
                double avg = (double)((size_t)h.uncompressed_size - 4 * (size_t)d->dict_n) / d->dict_n;
                double want = avg * (double)rows;
                if (want < (double)INT32_MAX && (size_t)want > o->sdata_cap &&
                    (st = reserve_str(d, o, (size_t)want - o->sdata_len)))
                    return st;
            }
            continue;
        }
        if (h.type != PQ_PAGE_DATA && h.type != PQ_PAGE_DATA_V2)
            continue; /* index pages and future types */
        int64_t nv = h.num_values;
        if (nv > rows - r)
            return derr(d, "data page holds more values than the row group's rows");
        if ((h.type == PQ_PAGE_DATA && !h.has_data) || (h.type == PQ_PAGE_DATA_V2 && !h.has_v2))
            return derr(d, "data page without its header");
        const uint8_t *lv, *vals;
        size_t llen = 0, vlen;
        if (h.type == PQ_PAGE_DATA) {
            const uint8_t *pg;
            if ((st = page_body(d, body, (size_t)h.compressed_size, (size_t)h.uncompressed_size,
                                true, &pg)))
                return st;
            size_t n = (size_t)h.uncompressed_size;
            if (d->c->optional) {
                if (h.def_encoding != PQ_ENC_RLE)
                    return derr(d, "definition levels are not RLE-encoded");
                if (n < 4 || pq_load_u32le(pg) > n - 4)
                    return derr(d, "definition levels run past the page");
                llen = pq_load_u32le(pg);
                lv = pg + 4;
                vals = lv + llen;
                vlen = n - 4 - llen;
            } else {
                lv = NULL;
                vals = pg;
                vlen = n;
            }
        } else {
            if (h.rep_len != 0)
                return derr(d, "repetition levels in a flat column");
            if ((size_t)h.def_len > (size_t)h.compressed_size ||
                h.def_len > h.uncompressed_size)
                return derr(d, "definition levels run past the page");
            lv = body;
            llen = (size_t)h.def_len;
            if ((st = page_body(d, body + h.def_len, (size_t)(h.compressed_size - h.def_len),
                                (size_t)(h.uncompressed_size - h.def_len), h.is_compressed, &vals)))
                return st;
            vlen = (size_t)(h.uncompressed_size - h.def_len);
        }
        size_t k = (size_t)nv;
        if (d->c->optional) {
            why = dray__rle_decode_bitmap(lv, llen, o->valid, r, (size_t)nv, &k);
            if (why)
                return derr(d, why);
            o->nulls += nv - (int64_t)k;
        } else if (h.type == PQ_PAGE_DATA_V2 && llen) {
            return derr(d, "definition levels in a required column");
        }
        if ((st = decode_values(d, o, h.encoding, vals, vlen, r, nv, k)))
            return st;
        r += nv;
    }
    return DRAY_OK;
}

static dray_status read_column(const dray_parquet_file *f, int rg, int col, struct ArrowArray *out)
{
    const pq_rcol *c = &f->cols[col];
    int64_t rows = f->meta.rgs[rg].num_rows;
    dec_ctx d = {.f = f, .rg = rg, .col = col, .c = c, .ch = &f->meta.rgs[rg].chunks[col]};
    col_out o = {.n = rows};
    dray_status st = DRAY_ENOMEM;
    array_priv *p = calloc(1, sizeof(*p));
    if (!p)
        return DRAY_ENOMEM;
    size_t bitmap_bytes = (size_t)(rows + 7) / 8 + 1;
    if (rows > ((int64_t)1 << 40))
        return free(p), derr(&d, "row group too large");
    if (c->optional && !(o.valid = calloc(bitmap_bytes, 1)))
        goto out_free;
    if (c->at.kind == AK_UTF8) {
        if (rows >= INT32_MAX) {
            st = derr(&d, "too many rows for 32-bit string offsets");
            goto out_free;
        }
        if (!(o.offs = calloc((size_t)rows + 1, sizeof(int32_t))))
            goto out_free;
        size_t guess = d.ch->total_uncompressed > 0 && d.ch->total_uncompressed < (1 << 30)
                           ? (size_t)d.ch->total_uncompressed
                           : 4096;
        if (!(o.sdata = malloc(guess)))
            goto out_free;
        o.sdata_cap = guess;
    } else if (c->at.kind == AK_BOOL) {
        if (!(o.vals = calloc(bitmap_bytes, 1)))
            goto out_free;
    } else {
        if (!(o.vals = malloc((size_t)rows * (size_t)c->at.width + 1)))
            goto out_free;
    }
    if ((st = decode_chunk(&d, rows, &o)) != DRAY_OK)
        goto out_free;
    memset(out, 0, sizeof(*out));
    out->length = rows;
    out->null_count = o.nulls;
    p->bufs[0] = o.valid;
    p->ptrs[0] = o.nulls ? o.valid : NULL;
    if (c->at.kind == AK_UTF8) {
        p->bufs[1] = o.offs;
        p->bufs[2] = o.sdata;
        p->ptrs[1] = o.offs;
        p->ptrs[2] = o.sdata;
        out->n_buffers = 3;
    } else {
        p->bufs[1] = o.vals;
        p->ptrs[1] = o.vals;
        out->n_buffers = 2;
    }
    out->buffers = p->ptrs;
    out->private_data = p;
    out->release = release_array;
    st = DRAY_OK;
    goto out_scratch;
out_free:
    free(o.valid);
    free(o.vals);
    free(o.offs);
    free(o.sdata);
    free(p);
out_scratch:
    free(d.dict_buf);
    free(d.dict_off);
    free(d.dict_len);
    free(d.page);
    free(d.idx);
    free(d.u64);
    free(d.u64b);
    dray__pq_decompress_fini(d.zstd);
    return st;
}

dray_status dray_parquet_read_row_group(const dray_parquet_file *f, int rg, const int *cols,
                                        size_t ncols, struct ArrowSchema *schema_out,
                                        struct ArrowArray *out)
{
    if (!f || !out)
        return dray_set_error(DRAY_EINVAL, "parquet: read_row_group: NULL argument");
    if (rg < 0 || rg >= f->meta.nrgs)
        return dray_set_error(DRAY_EINVAL, "parquet: '%s': no row group %d (the file has %d)",
                              f->path, rg, f->meta.nrgs);
    if (!cols)
        ncols = (size_t)f->ncols;
    for (size_t i = 0; cols && i < ncols; i++)
        if (cols[i] < 0 || cols[i] >= f->ncols)
            return dray_set_error(DRAY_EINVAL, "parquet: '%s': no column %d (the file has %d)",
                                  f->path, cols[i], f->ncols);
    dray_status st = DRAY_ENOMEM;
    array_priv *p = calloc(1, sizeof(*p));
    if (!p)
        return DRAY_ENOMEM;
    p->children = calloc(ncols ? ncols : 1, sizeof(*p->children));
    if (!p->children) {
        free(p);
        return DRAY_ENOMEM;
    }
    struct ArrowArray a = {0};
    a.length = f->meta.rgs[rg].num_rows;
    a.n_buffers = 1;
    a.buffers = p->ptrs;
    a.children = p->children;
    a.private_data = p;
    a.release = release_array;
    for (size_t i = 0; i < ncols; i++) {
        struct ArrowArray *c = calloc(1, sizeof(*c));
        if (!c) {
            st = DRAY_ENOMEM;
            goto out_release;
        }
        if ((st = read_column(f, rg, cols ? cols[i] : (int)i, c)) != DRAY_OK) {
            free(c);
            goto out_release;
        }
        a.children[i] = c;
        a.n_children = (int64_t)i + 1;
    }
    if (schema_out && (st = schema_for(f, cols, ncols, schema_out)) != DRAY_OK)
        goto out_release;
    *out = a;
    return DRAY_OK;
out_release:
    release_array(&a);
    return st;
}
