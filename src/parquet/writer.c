/* The Parquet writer: encodes Arrow columns straight from their buffers into data pages (v1) with
 * PLAIN or RLE_DICTIONARY values and RLE definition levels, compresses them, and writes the footer
 * (FileMetaData in the Thrift compact protocol) with min/max/null-count statistics per column chunk. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define PQ_FLUSH_BYTES (4u << 20)

typedef struct pq_wcol {
    char *name;
    char *format;  /* the Arrow format of the values (the dictionary's for dictionary arrays) */
    pq_atype at;
    bool is_dict;  /* Arrow dictionary array: indices of at.kind idx_kind */
    pq_atype idx;  /* index type when is_dict */
    int ptype;     /* Parquet physical type */
} pq_wcol;

/* A string dictionary under construction: entries point into the batch's buffers. */
typedef struct pq_dict {
    const uint8_t **ptr;
    uint32_t *len;
    uint64_t *hash;
    uint32_t n, cap;
    uint32_t *table; /* open addressing: entry index + 1, 0 = empty */
    uint32_t tcap;
    size_t bytes;
} pq_dict;

struct dray_parquet_writer {
    char *path;
    int fd;
    dray_parquet_write_opts opts;
    int codec;
    pq_compressor *comp;
    int ncols;
    pq_wcol *cols;
    pq_buf out;       /* bytes not yet written to fd */
    int64_t pos;      /* file offset of out.data[0] */
    pq_buf rgmeta;    /* serialized RowGroup structs */
    int nrgs;
    int64_t num_rows;
    bool failed;
    /* scratch */
    pq_buf page, cpage, hdr;
    uint32_t *idx;    /* per-row dictionary indices of the chunk */
    size_t idx_cap;
    uint32_t *remap;  /* Arrow dictionary index -> Parquet dictionary index + 1 */
    size_t remap_cap;
    pq_dict dict;
};

/* ==== Arrow formats ==== */

bool dray__pq_parse_format(const char *fmt, pq_atype *t)
{
    static const struct {
        char c;
        int kind, width;
    } simple[] = {{'c', AK_I8, 1},  {'s', AK_I16, 2}, {'i', AK_I32, 4}, {'l', AK_I64, 8},
                  {'C', AK_U8, 1},  {'S', AK_U16, 2}, {'I', AK_U32, 4}, {'L', AK_U64, 8},
                  {'f', AK_F32, 4}, {'g', AK_F64, 8}, {'b', AK_BOOL, 0}, {'u', AK_UTF8, 0},
                  {'z', AK_UTF8, 0}}; /* binary: a utf8 layout without the STRING annotation */
    memset(t, 0, sizeof(*t));
    if (!fmt || !fmt[0])
        return false;
    if (fmt[1] == '\0') {
        for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
            if (simple[i].c == fmt[0]) {
                t->kind = simple[i].kind;
                t->width = simple[i].width;
                return true;
            }
        }
        return false;
    }
    if (strcmp(fmt, "tdD") == 0) {
        t->kind = AK_DATE32;
        t->width = 4;
        return true;
    }
    if (fmt[0] == 't' && fmt[1] == 's' && fmt[2] && fmt[3] == ':') {
        const char *units = "smun";
        const char *u = strchr(units, fmt[2]);
        if (!u)
            return false;
        t->kind = AK_TS;
        t->width = 8;
        t->unit = (int)(u - units); /* seconds 0, millis 1, micros 2, nanos 3 */
        t->tz = fmt + 4;
        return true;
    }
    return false;
}

static int physical_type(int kind)
{
    switch (kind) {
    case AK_I64: case AK_U64: case AK_TS: return PQ_INT64;
    case AK_F32: return PQ_FLOAT;
    case AK_F64: return PQ_DOUBLE;
    case AK_BOOL: return PQ_BOOLEAN;
    case AK_UTF8: return PQ_BYTE_ARRAY;
    default: return PQ_INT32;
    }
}

/* ==== Output ==== */

static dray_status flush_out(dray_parquet_writer *w)
{
    size_t done = 0;
    while (done < w->out.len) {
        ssize_t n = write(w->fd, w->out.data + done, w->out.len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return dray_set_error(DRAY_EIO, "parquet: writing '%s': %s", w->path, strerror(errno));
        }
        done += (size_t)n;
    }
    w->pos += (int64_t)w->out.len;
    w->out.len = 0;
    return DRAY_OK;
}

static dray_status emit(dray_parquet_writer *w, const void *p, size_t n)
{
    if (w->out.len + n > PQ_FLUSH_BYTES && w->out.len) {
        dray_status st = flush_out(w);
        if (st)
            return st;
    }
    if (n >= PQ_FLUSH_BYTES) { /* large pages bypass the buffer */
        size_t done = 0;
        while (done < n) {
            ssize_t k = write(w->fd, (const uint8_t *)p + done, n - done);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                return dray_set_error(DRAY_EIO, "parquet: writing '%s': %s", w->path,
                                      strerror(errno));
            }
            done += (size_t)k;
        }
        w->pos += (int64_t)n;
        return DRAY_OK;
    }
    pq_buf_put(&w->out, p, n);
    return w->out.oom ? DRAY_ENOMEM : DRAY_OK;
}

static int64_t tell(const dray_parquet_writer *w) { return w->pos + (int64_t)w->out.len; }

/* ==== Life cycle ==== */

void dray_parquet_write_opts_init(dray_parquet_write_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->codec = DRAY_PARQUET_SNAPPY;
    o->row_group_rows = 1 << 20;
    o->dictionary = true;
    o->page_bytes = 1 << 20;
    o->dictionary_max_bytes = 1 << 20;
}

static void free_writer(dray_parquet_writer *w)
{
    for (int i = 0; i < w->ncols; i++) {
        free(w->cols[i].name);
        free(w->cols[i].format);
    }
    free(w->cols);
    dray__pq_compressor_destroy(w->comp);
    dray__pq_buf_free(&w->out);
    dray__pq_buf_free(&w->rgmeta);
    dray__pq_buf_free(&w->page);
    dray__pq_buf_free(&w->cpage);
    dray__pq_buf_free(&w->hdr);
    free(w->idx);
    free(w->remap);
    free(w->dict.ptr);
    free(w->dict.len);
    free(w->dict.hash);
    free(w->dict.table);
    free(w->path);
    free(w);
}

static dray_status check_schema(const struct ArrowSchema *schema, dray_parquet_writer *w)
{
    if (!schema || !schema->format || strcmp(schema->format, "+s") != 0)
        return dray_set_error(DRAY_EINVAL, "parquet: '%s': the schema is not a struct (\"+s\")",
                              w->path);
    if (schema->n_children <= 0 || schema->n_children > 1000000)
        return dray_set_error(DRAY_EINVAL, "parquet: '%s': the schema has no columns", w->path);
    w->cols = calloc((size_t)schema->n_children, sizeof(*w->cols));
    if (!w->cols)
        return DRAY_ENOMEM;
    w->ncols = (int)schema->n_children;
    for (int i = 0; i < w->ncols; i++) {
        const struct ArrowSchema *c = schema->children[i];
        pq_wcol *col = &w->cols[i];
        const char *name = c && c->name ? c->name : "";
        col->name = strdup(name[0] ? name : "column");
        if (!col->name)
            return DRAY_ENOMEM;
        if (!c || !c->format)
            return dray_set_error(DRAY_EINVAL, "parquet: '%s': column %d has no format", w->path, i);
        const char *vfmt = c->format;
        if (c->dictionary) {
            if (!dray__pq_parse_format(c->format, &col->idx) || col->idx.kind > AK_U64 ||
                !c->dictionary->format || strcmp(c->dictionary->format, "u") != 0)
                return dray_set_error(DRAY_EUNSUPPORTED,
                                      "parquet: '%s': column '%s': only utf8 dictionaries with "
                                      "integer indices are supported",
                                      w->path, name);
            col->is_dict = true;
            vfmt = c->dictionary->format;
        }
        if (!dray__pq_parse_format(vfmt, &col->at))
            return dray_set_error(DRAY_EUNSUPPORTED,
                                  "parquet: '%s': column '%s': Arrow format \"%s\" is not supported",
                                  w->path, name, vfmt);
        if (c->n_children != 0)
            return dray_set_error(DRAY_EUNSUPPORTED, "parquet: '%s': column '%s' is nested",
                                  w->path, name);
        col->format = strdup(vfmt);
        if (!col->format)
            return DRAY_ENOMEM;
        col->ptype = physical_type(col->at.kind);
    }
    return DRAY_OK;
}

dray_status dray_parquet_writer_open(const char *path, const struct ArrowSchema *schema,
                                     const dray_parquet_write_opts *opts,
                                     dray_parquet_writer **out)
{
    dray_status st = DRAY_ENOMEM;
    if (!path || !out)
        return dray_set_error(DRAY_EINVAL, "parquet: writer_open: NULL path or out");
    dray_parquet_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return DRAY_ENOMEM;
    w->fd = -1;
    if (opts)
        w->opts = *opts;
    else
        dray_parquet_write_opts_init(&w->opts);
    if (w->opts.row_group_rows <= 0)
        w->opts.row_group_rows = 1 << 20;
    if (w->opts.page_bytes <= 0)
        w->opts.page_bytes = 1 << 20;
    if (w->opts.dictionary_max_bytes <= 0)
        w->opts.dictionary_max_bytes = 1 << 20;
    if (!(w->path = strdup(path)))
        goto out_free;
    static const int codecs[] = {PQ_CODEC_NONE, PQ_CODEC_SNAPPY, PQ_CODEC_GZIP, PQ_CODEC_ZSTD,
                                 PQ_CODEC_LZ4_RAW};
    if ((unsigned)w->opts.codec > DRAY_PARQUET_LZ4_RAW) {
        st = dray_set_error(DRAY_EINVAL, "parquet: '%s': unknown codec %d", path, w->opts.codec);
        goto out_free;
    }
    w->codec = codecs[w->opts.codec];
    if ((st = check_schema(schema, w)) != DRAY_OK)
        goto out_free;
    if (w->codec != PQ_CODEC_NONE &&
        (st = dray__pq_compressor_create(w->codec, w->opts.compression_level, &w->comp)) != DRAY_OK)
        goto out_free;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        st = dray_set_error(DRAY_EIO, "parquet: cannot create '%s': %s", path, strerror(errno));
        goto out_free;
    }
    if ((st = emit(w, "PAR1", 4)) != DRAY_OK)
        goto out_close;
    *out = w;
    return DRAY_OK;
out_close:
    close(w->fd);
    unlink(path);
out_free:
    free_writer(w);
    return st;
}

void dray_parquet_writer_abort(dray_parquet_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->path);
    }
    free_writer(w);
}

/* ==== Column chunk encoding ==== */

static inline bool is_valid(const uint8_t *bits, int64_t i)
{
    return !bits || (bits[i >> 3] >> (i & 7) & 1);
}

/* Integer value i of an Arrow index or integer array, widened. */
static inline int64_t get_int(const void *buf, int kind, int64_t i)
{
    switch (kind) {
    case AK_I8: return ((const int8_t *)buf)[i];
    case AK_I16: return ((const int16_t *)buf)[i];
    case AK_I32: case AK_DATE32: return ((const int32_t *)buf)[i];
    case AK_U8: return ((const uint8_t *)buf)[i];
    case AK_U16: return ((const uint16_t *)buf)[i];
    case AK_U32: return ((const uint32_t *)buf)[i];
    default: return ((const int64_t *)buf)[i];
    }
}

/* The last n < 8 bytes at p as one little-endian word, without a variable-length memcpy call. */
static inline uint64_t load_tail(const uint8_t *p, size_t n)
{
    uint32_t a, b;
    if (n >= 4) { /* two overlapping 4-byte loads */
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        return (uint64_t)a | (uint64_t)b << 32;
    }
    if (n == 0)
        return 0;
    return (uint64_t)p[0] | (uint64_t)p[n / 2] << 8 | (uint64_t)p[n - 1] << 16;
}

static inline uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        h = (h ^ x) * 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    h = (h ^ load_tail(p, n)) * 0xc4ceb9fe1a85ec53ull;
    /* final mix so every input bit reaches the low bits that index the table */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

static void dict_reset(pq_dict *d)
{
    d->n = 0;
    d->bytes = 0;
    if (d->table)
        memset(d->table, 0, d->tcap * sizeof(*d->table));
}

static bool dict_grow_table(pq_dict *d)
{
    uint32_t ncap = d->tcap ? d->tcap * 2 : 1024;
    uint32_t *t = calloc(ncap, sizeof(*t));
    if (!t)
        return false;
    for (uint32_t i = 0; i < d->n; i++) {
        uint32_t s = (uint32_t)d->hash[i] & (ncap - 1);
        while (t[s])
            s = (s + 1) & (ncap - 1);
        t[s] = i + 1;
    }
    free(d->table);
    d->table = t;
    d->tcap = ncap;
    return true;
}

static inline bool bytes_equal(const uint8_t *a, const uint8_t *b, uint32_t n)
{
    if (n <= 8) { /* short strings: no call */
        for (uint32_t i = 0; i < n; i++)
            if (a[i] != b[i])
                return false;
        return true;
    }
    return memcmp(a, b, n) == 0;
}

/* Index of string p[0..n) in d, inserting it; -1 out of memory. */
static int64_t dict_find_or_add(pq_dict *d, const uint8_t *p, uint32_t n)
{
    if ((d->n + 1) * 2 > d->tcap && !dict_grow_table(d))
        return -1;
    uint64_t h = hash_bytes(p, n);
    uint32_t s = (uint32_t)h & (d->tcap - 1);
    for (;;) {
        uint32_t e = d->table[s];
        if (!e)
            break;
        e--;
        if (d->hash[e] == h && d->len[e] == n && bytes_equal(d->ptr[e], p, n))
            return e;
        s = (s + 1) & (d->tcap - 1);
    }
    if (d->n == d->cap) {
        uint32_t nc = d->cap ? d->cap * 2 : 1024;
        const uint8_t **np = realloc(d->ptr, nc * sizeof(*np));
        if (!np)
            return -1;
        d->ptr = np;
        uint32_t *nl = realloc(d->len, nc * sizeof(*nl));
        if (!nl)
            return -1;
        d->len = nl;
        uint64_t *nh = realloc(d->hash, nc * sizeof(*nh));
        if (!nh)
            return -1;
        d->hash = nh;
        d->cap = nc;
    }
    d->ptr[d->n] = p;
    d->len[d->n] = n;
    d->hash[d->n] = h;
    d->table[s] = d->n + 1;
    d->bytes += n + 4;
    return d->n++;
}

/* The view of one column chunk being written: rows [0, n) are Arrow rows off+0 .. off+n. */
typedef struct chunk_view {
    const pq_wcol *col;
    const struct ArrowArray *a;
    const uint8_t *valid; /* NULL when no nulls */
    int64_t off, n;
    int64_t nulls;
    /* utf8: offsets and data (of the dictionary for dictionary arrays) */
    const int32_t *soff;
    const uint8_t *sdata;
    const void *vals; /* fixed width values, or dictionary indices */
} chunk_view;

/* Statistics being gathered. */
typedef struct chunk_stats {
    bool any;
    int64_t imin, imax;
    uint64_t umin, umax;
    double fmin, fmax;
    const uint8_t *bmin, *bmax;
    uint32_t bmin_len, bmax_len;
} chunk_stats;

static inline void str_at(const chunk_view *v, int64_t row, const uint8_t **p, uint32_t *n)
{
    int64_t k = v->off + row;
    if (v->col->is_dict)
        k = get_int(v->vals, v->col->idx.kind, k);
    *p = v->sdata + v->soff[k];
    *n = (uint32_t)(v->soff[k + 1] - v->soff[k]);
}

static inline uint64_t load_be_prefix(const uint8_t *p, uint32_t n)
{
    uint64_t x = 0;
    if (n >= 8)
        memcpy(&x, p, 8);
    else
        for (uint32_t i = 0; i < n; i++)
            x |= (uint64_t)p[i] << (8 * i);
    return __builtin_bswap64(x);
}

/* Unsigned byte-wise order (Parquet's for strings), shorter first on a tie. */
static inline int bytes_cmp(const uint8_t *a, uint32_t an, const uint8_t *b, uint32_t bn)
{
    uint64_t x = load_be_prefix(a, an), y = load_be_prefix(b, bn);
    if (x != y) /* zero padding keeps the order of the first 8 bytes */
        return x < y ? -1 : 1;
    uint32_t m = an < bn ? an : bn;
    int c = m > 8 ? memcmp(a + 8, b + 8, m - 8) : 0;
    return c ? c : (an > bn) - (an < bn);
}

static void stat_str(chunk_stats *s, const uint8_t *p, uint32_t n)
{
    if (!s->any) {
        s->any = true;
        s->bmin = s->bmax = p;
        s->bmin_len = s->bmax_len = n;
        return;
    }
    if (bytes_cmp(p, n, s->bmin, s->bmin_len) < 0)
        s->bmin = p, s->bmin_len = n;
    if (bytes_cmp(p, n, s->bmax, s->bmax_len) > 0)
        s->bmax = p, s->bmax_len = n;
}

/* Min/max of the valid values of one C type T into locals, then into s->LO/s->HI (as U). Floats skip
 * NaN. Separate loops for the no-null case keep them tight. */
#define PQ_MINMAX(T, U, LO, HI, SKIP)                                                              \
    do {                                                                                           \
        const T *x = (const T *)v->vals + v->off;                                                  \
        T lo = 0, hi = 0;                                                                          \
        bool any = false;                                                                          \
        for (int64_t r = 0; r < v->n; r++) {                                                       \
            if ((v->valid && !is_valid(v->valid, v->off + r)) || SKIP(x[r]))                      \
                continue;                                                                          \
            if (!any) {                                                                            \
                lo = hi = x[r];                                                                    \
                any = true;                                                                        \
            }                                                                                      \
            lo = x[r] < lo ? x[r] : lo;                                                            \
            hi = x[r] > hi ? x[r] : hi;                                                            \
        }                                                                                          \
        s->any = any;                                                                              \
        s->LO = (U)lo;                                                                             \
        s->HI = (U)hi;                                                                             \
    } while (0)
#define PQ_NEVER(x) ((void)(x), 0)
#define PQ_ISNAN(x) isnan(x)

/* Fixed-width statistics over the chunk's valid values. */
static void stats_fixed(const chunk_view *v, chunk_stats *s)
{
    switch (v->col->at.kind) {
    case AK_I8: PQ_MINMAX(int8_t, int64_t, imin, imax, PQ_NEVER); break;
    case AK_I16: PQ_MINMAX(int16_t, int64_t, imin, imax, PQ_NEVER); break;
    case AK_I32: case AK_DATE32: PQ_MINMAX(int32_t, int64_t, imin, imax, PQ_NEVER); break;
    case AK_I64: case AK_TS: PQ_MINMAX(int64_t, int64_t, imin, imax, PQ_NEVER); break;
    case AK_U8: PQ_MINMAX(uint8_t, uint64_t, umin, umax, PQ_NEVER); break;
    case AK_U16: PQ_MINMAX(uint16_t, uint64_t, umin, umax, PQ_NEVER); break;
    case AK_U32: PQ_MINMAX(uint32_t, uint64_t, umin, umax, PQ_NEVER); break;
    case AK_U64: PQ_MINMAX(uint64_t, uint64_t, umin, umax, PQ_NEVER); break;
    case AK_F32: PQ_MINMAX(float, double, fmin, fmax, PQ_ISNAN); break;
    case AK_F64: PQ_MINMAX(double, double, fmin, fmax, PQ_ISNAN); break;
    case AK_BOOL: {
        const uint8_t *bits = v->vals;
        bool seen[2] = {false, false};
        for (int64_t r = 0; r < v->n && !(seen[0] && seen[1]); r++) {
            int64_t i = v->off + r;
            if (is_valid(v->valid, i))
                seen[bits[i >> 3] >> (i & 7) & 1] = true;
        }
        s->any = seen[0] || seen[1];
        s->imin = seen[0] ? 0 : 1;
        s->imax = seen[1] ? 1 : 0;
        break;
    }
    default: break;
    }
}

/* Timestamps in seconds are stored as milliseconds (Parquet has no seconds unit). */
static inline int64_t ts_scale(const pq_wcol *c)
{
    return c->at.kind == AK_TS && c->at.unit == 0 ? 1000 : 1;
}

/* PLAIN bytes of one stat value into b. */
static void plain_stat(const pq_wcol *c, const chunk_stats *s, bool max, pq_buf *b)
{
    switch (c->ptype) {
    case PQ_BOOLEAN:
        pq_buf_byte(b, (uint8_t)(max ? s->imax : s->imin));
        break;
    case PQ_INT32: {
        bool u = c->at.kind == AK_U8 || c->at.kind == AK_U16 || c->at.kind == AK_U32;
        int32_t x = u ? (int32_t)(uint32_t)(max ? s->umax : s->umin)
                      : (int32_t)(max ? s->imax : s->imin);
        pq_buf_put(b, &x, 4);
        break;
    }
    case PQ_INT64: {
        int64_t x = c->at.kind == AK_U64 ? (int64_t)(max ? s->umax : s->umin)
                                         : (max ? s->imax : s->imin) * ts_scale(c);
        pq_buf_put(b, &x, 8);
        break;
    }
    case PQ_FLOAT: {
        double d = max ? s->fmax : s->fmin;
        if (d == 0)
            d = max ? 0.0 : -0.0;
        float f = (float)d;
        pq_buf_put(b, &f, 4);
        break;
    }
    case PQ_DOUBLE: {
        double d = max ? s->fmax : s->fmin;
        if (d == 0)
            d = max ? 0.0 : -0.0;
        pq_buf_put(b, &d, 8);
        break;
    }
    case PQ_BYTE_ARRAY:
        if (max)
            pq_buf_put(b, s->bmax, s->bmax_len);
        else
            pq_buf_put(b, s->bmin, s->bmin_len);
        break;
    }
}

/* Appends the PLAIN encoding of valid rows [r0, r1) of the chunk to b. */
static void plain_values(const chunk_view *v, int64_t r0, int64_t r1, pq_buf *b)
{
    const pq_wcol *c = v->col;
    int kind = c->at.kind;
    int64_t i0 = v->off + r0, i1 = v->off + r1;
    if (kind == AK_UTF8) {
        for (int64_t r = r0; r < r1; r++) {
            if (!is_valid(v->valid, v->off + r))
                continue;
            const uint8_t *p;
            uint32_t n;
            str_at(v, r, &p, &n);
            if (!pq_buf_reserve(b, 4 + (size_t)n))
                return;
            memcpy(b->data + b->len, &n, 4);
            memcpy(b->data + b->len + 4, p, n);
            b->len += 4 + n;
        }
        return;
    }
    if (kind == AK_BOOL) {
        size_t nbits = 0;
        if (!pq_buf_reserve(b, (size_t)(r1 - r0) / 8 + 1))
            return;
        uint8_t *o = b->data + b->len;
        memset(o, 0, (size_t)(r1 - r0) / 8 + 1);
        const uint8_t *bits = v->vals;
        for (int64_t i = i0; i < i1; i++) {
            if (!is_valid(v->valid, i))
                continue;
            if (bits[i >> 3] >> (i & 7) & 1)
                o[nbits >> 3] |= (uint8_t)(1u << (nbits & 7));
            nbits++;
        }
        b->len += (nbits + 7) / 8;
        return;
    }
    int pw = c->ptype == PQ_INT64 || c->ptype == PQ_DOUBLE ? 8 : 4;
    if (!pq_buf_reserve(b, (size_t)(r1 - r0) * (size_t)pw))
        return;
    uint8_t *o = b->data + b->len;
    size_t k = 0;
    if (pw == c->at.width && ts_scale(c) == 1) {
        const uint8_t *src = (const uint8_t *)v->vals + i0 * pw;
        if (!v->valid) {
            memcpy(o, src, (size_t)(i1 - i0) * (size_t)pw);
            k = (size_t)(i1 - i0);
        } else if (pw == 8) {
            for (int64_t i = i0; i < i1; i++, src += 8)
                if (is_valid(v->valid, i))
                    memcpy(o + 8 * k++, src, 8);
        } else {
            for (int64_t i = i0; i < i1; i++, src += 4)
                if (is_valid(v->valid, i))
                    memcpy(o + 4 * k++, src, 4);
        }
    } else if (pw == 4) { /* int8/16, uint8/16 widened */
        for (int64_t i = i0; i < i1; i++) {
            if (!is_valid(v->valid, i))
                continue;
            int32_t x = (int32_t)get_int(v->vals, kind, i);
            memcpy(o + 4 * k++, &x, 4);
        }
    } else { /* timestamps in seconds */
        for (int64_t i = i0; i < i1; i++) {
            if (!is_valid(v->valid, i))
                continue;
            int64_t x = ((const int64_t *)v->vals)[i] * 1000;
            memcpy(o + 8 * k++, &x, 8);
        }
    }
    b->len += k * (size_t)pw;
}

static void put_stats(pq_buf *m, const pq_wcol *c, const chunk_stats *s, int64_t nulls,
                      pq_buf *tmp)
{
    int16_t last = 0;
    dray__tc_fi64(m, &last, 3, nulls);
    if (s->any && (c->ptype != PQ_BYTE_ARRAY || (s->bmax_len <= 4096 && s->bmin_len <= 4096))) {
        tmp->len = 0;
        plain_stat(c, s, true, tmp);
        dray__tc_fbin(m, &last, 5, tmp->data, tmp->len);
        tmp->len = 0;
        plain_stat(c, s, false, tmp);
        dray__tc_fbin(m, &last, 6, tmp->data, tmp->len);
    }
    tc_stop(m);
}

/* Writes one page: header + (compressed) body from w->page. */
static dray_status write_page(dray_parquet_writer *w, int type, int32_t num_values, int encoding,
                              int64_t *unc_total, int64_t *comp_total)
{
    const pq_buf *body = &w->page;
    if (body->oom)
        return DRAY_ENOMEM;
    if (body->len > INT32_MAX)
        return dray_set_error(DRAY_ERANGE, "parquet: '%s': a page exceeds 2 GiB", w->path);
    if (w->comp) {
        dray_status st = dray__pq_compress(w->comp, body->data, body->len, &w->cpage);
        if (st)
            return st == DRAY_ENOMEM ? dray_set_error(st, "parquet: out of memory") : st;
        body = &w->cpage;
    }
    pq_buf *h = &w->hdr;
    h->len = 0;
    int16_t last = 0;
    dray__tc_fi32(h, &last, 1, type);
    dray__tc_fi32(h, &last, 2, (int64_t)w->page.len);
    dray__tc_fi32(h, &last, 3, (int64_t)body->len);
    int16_t l2 = 0;
    if (type == PQ_PAGE_DATA) {
        dray__tc_field(h, &last, 5, TC_STRUCT);
        dray__tc_fi32(h, &l2, 1, num_values);
        dray__tc_fi32(h, &l2, 2, encoding);
        dray__tc_fi32(h, &l2, 3, PQ_ENC_RLE);
        dray__tc_fi32(h, &l2, 4, PQ_ENC_RLE);
    } else {
        dray__tc_field(h, &last, 7, TC_STRUCT);
        dray__tc_fi32(h, &l2, 1, num_values);
        dray__tc_fi32(h, &l2, 2, PQ_ENC_PLAIN);
    }
    tc_stop(h);
    tc_stop(h);
    if (h->oom || body->oom)
        return DRAY_ENOMEM;
    *unc_total += (int64_t)(h->len + w->page.len);
    *comp_total += (int64_t)(h->len + body->len);
    dray_status st = emit(w, h->data, h->len);
    return st ? st : emit(w, body->data, body->len);
}

static int bit_width(uint32_t maxv)
{
    int b = 0;
    while (b < 32 && (maxv >> b))
        b++;
    return b;
}

/* Builds the chunk's dictionary and per-row indices; false when it grows too big (use PLAIN). */
static dray_status build_dict(dray_parquet_writer *w, const chunk_view *v, bool *ok)
{
    pq_dict *d = &w->dict;
    dict_reset(d);
    *ok = false;
    if ((size_t)v->n > w->idx_cap) {
        free(w->idx);
        w->idx = malloc((size_t)v->n * sizeof(*w->idx));
        w->idx_cap = w->idx ? (size_t)v->n : 0;
        if (!w->idx)
            return DRAY_ENOMEM;
    }
    size_t limit = (size_t)w->opts.dictionary_max_bytes;
    if (v->col->is_dict) {
        /* map the Arrow dictionary's indices to ours on first sight */
        int64_t dn = v->a->dictionary->length + v->a->dictionary->offset;
        if ((size_t)dn > w->remap_cap) {
            free(w->remap);
            w->remap = malloc((size_t)dn * sizeof(*w->remap) + 1);
            w->remap_cap = w->remap ? (size_t)dn : 0;
            if (!w->remap)
                return DRAY_ENOMEM;
        }
        memset(w->remap, 0, (size_t)dn * sizeof(*w->remap));
        int64_t doff = v->a->dictionary->offset;
        for (int64_t r = 0; r < v->n; r++) {
            int64_t i = v->off + r;
            if (!is_valid(v->valid, i))
                continue;
            int64_t k = get_int(v->vals, v->col->idx.kind, i);
            if (k < 0 || k >= dn - doff)
                return dray_set_error(DRAY_EINVAL,
                                      "parquet: '%s': column '%s' row %lld: dictionary index %lld "
                                      "out of range",
                                      w->path, v->col->name, (long long)i, (long long)k);
            k += doff;
            if (!w->remap[k]) {
                const uint8_t *p = v->sdata + v->soff[k];
                int64_t e = dict_find_or_add(d, p, (uint32_t)(v->soff[k + 1] - v->soff[k]));
                if (e < 0)
                    return DRAY_ENOMEM;
                if (d->bytes > limit)
                    return DRAY_OK;
                w->remap[k] = (uint32_t)e + 1;
            }
            w->idx[r] = w->remap[k] - 1;
        }
    } else {
        for (int64_t r = 0; r < v->n; r++) {
            if (!is_valid(v->valid, v->off + r))
                continue;
            const uint8_t *p;
            uint32_t n;
            str_at(v, r, &p, &n);
            int64_t e = dict_find_or_add(d, p, n);
            if (e < 0)
                return DRAY_ENOMEM;
            if (d->bytes > limit)
                return DRAY_OK;
            /* mostly distinct values: a dictionary would only add indices to PLAIN's size */
            if ((r & 8191) == 8191 && d->n > (uint32_t)(r / 2))
                return DRAY_OK;
            w->idx[r] = (uint32_t)e;
        }
    }
    *ok = true;
    return DRAY_OK;
}

static dray_status write_chunk(dray_parquet_writer *w, int ci, const struct ArrowArray *a,
                               int64_t start, int64_t n, pq_buf *meta, int64_t *rg_bytes)
{
    const pq_wcol *c = &w->cols[ci];
    chunk_view v = {.col = c, .a = a, .off = a->offset + start, .n = n};
    dray_status st;
    if (a->null_count != 0 && a->n_buffers > 0 && a->buffers[0])
        v.valid = a->buffers[0];
    if (v.valid) {
        for (int64_t i = v.off; i < v.off + n; i++)
            v.nulls += !is_valid(v.valid, i);
        if (!v.nulls)
            v.valid = NULL;
    }
    if (c->at.kind == AK_UTF8) {
        const struct ArrowArray *s = c->is_dict ? a->dictionary : a;
        v.soff = s->buffers[1];
        v.sdata = s->buffers[2];
        if (c->is_dict)
            v.vals = a->buffers[1];
        if (!v.sdata)
            v.sdata = (const uint8_t *)"";
    } else {
        v.vals = a->buffers[1];
    }

    bool use_dict = false;
    if (c->at.kind == AK_UTF8 && (w->opts.dictionary || c->is_dict) && n - v.nulls > 0) {
        if ((st = build_dict(w, &v, &use_dict)) != DRAY_OK)
            return st;
    }

    /* statistics */
    chunk_stats s = {0};
    if (c->at.kind == AK_UTF8) {
        if (use_dict) {
            for (uint32_t e = 0; e < w->dict.n; e++)
                stat_str(&s, w->dict.ptr[e], w->dict.len[e]);
        } else {
            for (int64_t r = 0; r < n; r++) {
                if (!is_valid(v.valid, v.off + r))
                    continue;
                const uint8_t *p;
                uint32_t len;
                str_at(&v, r, &p, &len);
                stat_str(&s, p, len);
            }
        }
    } else {
        stats_fixed(&v, &s);
    }

    int64_t unc = 0, comp = 0;
    int64_t chunk_start = tell(w), dict_off = -1;
    if (use_dict) {
        pq_buf *b = &w->page;
        b->len = 0;
        for (uint32_t e = 0; e < w->dict.n; e++) {
            pq_buf_u32le(b, w->dict.len[e]);
            pq_buf_put(b, w->dict.ptr[e], w->dict.len[e]);
        }
        dict_off = chunk_start;
        if ((st = write_page(w, PQ_PAGE_DICT, (int32_t)w->dict.n, PQ_ENC_PLAIN, &unc, &comp)))
            return st;
    }
    int64_t data_off = tell(w);

    /* rows per page from the estimated encoded row size */
    int64_t row_bytes;
    if (use_dict)
        row_bytes = (bit_width(w->dict.n ? w->dict.n - 1 : 0) + 8) / 8;
    else if (c->at.kind == AK_UTF8) {
        int64_t total = 0;
        if (!c->is_dict)
            total = v.soff[v.off + n] - v.soff[v.off];
        else
            total = 16 * n;
        row_bytes = total / (n ? n : 1) + 4;
    } else if (c->at.kind == AK_BOOL)
        row_bytes = 1;
    else
        row_bytes = c->ptype == PQ_INT64 || c->ptype == PQ_DOUBLE ? 8 : 4;
    if (row_bytes < 1)
        row_bytes = 1;
    int64_t page_rows = w->opts.page_bytes / row_bytes;
    if (c->at.kind == AK_BOOL)
        page_rows *= 8;
    if (page_rows < 64)
        page_rows = 64;
    if (page_rows > (1 << 24))
        page_rows = 1 << 24;

    uint32_t *dense = NULL;
    int bw = use_dict ? bit_width(w->dict.n ? w->dict.n - 1 : 0) : 0;
    for (int64_t p0 = 0; p0 < n || (n == 0 && p0 == 0); p0 += page_rows) {
        int64_t pn = n - p0 < page_rows ? n - p0 : page_rows;
        pq_buf *b = &w->page;
        b->len = 0;
        /* definition levels with their 4-byte length */
        pq_buf_u32le(b, 0);
        size_t lstart = b->len;
        dray__rle_encode_bitmap(b, v.valid, v.off + p0, (size_t)pn);
        if (b->oom)
            break;
        uint32_t llen = (uint32_t)(b->len - lstart);
        memcpy(b->data + lstart - 4, &llen, 4);
        if (use_dict) {
            /* compact the valid rows' indices in place: dense[k] <= idx[p0 + k] */
            dense = w->idx + p0;
            size_t k = 0;
            for (int64_t r = p0; r < p0 + pn; r++)
                if (is_valid(v.valid, v.off + r))
                    dense[k++] = w->idx[r];
            pq_buf_byte(b, (uint8_t)bw);
            dray__rle_encode(b, dense, k, bw);
        } else {
            plain_values(&v, p0, p0 + pn, b);
        }
        if ((st = write_page(w, PQ_PAGE_DATA, (int32_t)pn, use_dict ? PQ_ENC_RLE_DICT : PQ_ENC_PLAIN,
                             &unc, &comp)))
            return st;
        if (n == 0)
            break;
    }
    if (w->page.oom)
        return dray_set_error(DRAY_ENOMEM, "parquet: out of memory");

    /* ColumnChunk */
    int16_t last = 0, l2 = 0;
    dray__tc_fi64(meta, &last, 2, 0); /* file_offset, deprecated */
    dray__tc_field(meta, &last, 3, TC_STRUCT);
    dray__tc_fi32(meta, &l2, 1, c->ptype);
    dray__tc_field(meta, &l2, 2, TC_LIST);
    if (use_dict) {
        dray__tc_list(meta, TC_I32, 3);
        dray__tc_i64(meta, PQ_ENC_PLAIN);
        dray__tc_i64(meta, PQ_ENC_RLE);
        dray__tc_i64(meta, PQ_ENC_RLE_DICT);
    } else {
        dray__tc_list(meta, TC_I32, 2);
        dray__tc_i64(meta, PQ_ENC_PLAIN);
        dray__tc_i64(meta, PQ_ENC_RLE);
    }
    dray__tc_field(meta, &l2, 3, TC_LIST);
    dray__tc_list(meta, TC_BINARY, 1);
    dray__tc_binary(meta, c->name, strlen(c->name));
    dray__tc_fi32(meta, &l2, 4, w->codec);
    dray__tc_fi64(meta, &l2, 5, n);
    dray__tc_fi64(meta, &l2, 6, unc);
    dray__tc_fi64(meta, &l2, 7, comp);
    dray__tc_fi64(meta, &l2, 9, data_off);
    if (dict_off >= 0)
        dray__tc_fi64(meta, &l2, 11, dict_off);
    dray__tc_field(meta, &l2, 12, TC_STRUCT);
    put_stats(meta, c, &s, v.nulls, &w->hdr);
    tc_stop(meta);
    tc_stop(meta);
    *rg_bytes += unc;
    return meta->oom ? DRAY_ENOMEM : DRAY_OK;
}

static dray_status check_batch(dray_parquet_writer *w, const struct ArrowArray *b)
{
    if (!b || b->release == NULL)
        return dray_set_error(DRAY_EINVAL, "parquet: '%s': the batch is NULL or released", w->path);
    if (b->n_children != w->ncols)
        return dray_set_error(DRAY_EINVAL, "parquet: '%s': the batch has %lld columns, the schema %d",
                              w->path, (long long)b->n_children, w->ncols);
    if (b->length < 0 || b->offset < 0)
        return dray_set_error(DRAY_EINVAL, "parquet: '%s': the batch has a negative length", w->path);
    for (int i = 0; i < w->ncols; i++) {
        const struct ArrowArray *a = b->children[i];
        const pq_wcol *c = &w->cols[i];
        int64_t need = b->offset + b->length;
        if (!a || a->length < need || a->offset < 0)
            return dray_set_error(DRAY_EINVAL, "parquet: '%s': column '%s' is shorter than the batch",
                                  w->path, c->name);
        int nb = c->at.kind == AK_UTF8 && !c->is_dict ? 3 : 2;
        if (a->n_buffers < nb || !a->buffers || (!a->buffers[1] && a->length > 0))
            return dray_set_error(DRAY_EINVAL, "parquet: '%s': column '%s' lacks its buffers",
                                  w->path, c->name);
        if (c->is_dict && (!a->dictionary || a->dictionary->n_buffers < 3 ||
                           (!a->dictionary->buffers[1])))
            return dray_set_error(DRAY_EINVAL, "parquet: '%s': column '%s' lacks its dictionary",
                                  w->path, c->name);
    }
    return DRAY_OK;
}

dray_status dray_parquet_writer_write(dray_parquet_writer *w, const struct ArrowArray *batch)
{
    if (!w)
        return dray_set_error(DRAY_EINVAL, "parquet: writer_write: NULL writer");
    if (w->failed)
        return dray_set_error(DRAY_EINVAL, "parquet: '%s': the writer failed before", w->path);
    dray_status st = check_batch(w, batch);
    if (st)
        return st;
    for (int64_t start = 0; start < batch->length; start += w->opts.row_group_rows) {
        int64_t n = batch->length - start;
        if (n > w->opts.row_group_rows)
            n = w->opts.row_group_rows;
        pq_buf *m = &w->rgmeta;
        int16_t last = 0;
        int64_t rg_bytes = 0, rg_start = tell(w);
        dray__tc_field(m, &last, 1, TC_LIST);
        dray__tc_list(m, TC_STRUCT, (uint32_t)w->ncols);
        for (int i = 0; i < w->ncols; i++) {
            st = write_chunk(w, i, batch->children[i], batch->offset + start, n, m, &rg_bytes);
            if (st) {
                w->failed = true;
                return st;
            }
        }
        dray__tc_fi64(m, &last, 2, rg_bytes);
        dray__tc_fi64(m, &last, 3, n);
        dray__tc_fi64(m, &last, 5, rg_start);
        dray__tc_fi64(m, &last, 6, tell(w) - rg_start);
        tc_stop(m);
        if (m->oom) {
            w->failed = true;
            return dray_set_error(DRAY_ENOMEM, "parquet: out of memory");
        }
        w->nrgs++;
        w->num_rows += n;
    }
    return DRAY_OK;
}

/* ==== Footer ==== */

static void put_empty_struct_field(pq_buf *m, int16_t *last, int16_t id)
{
    dray__tc_field(m, last, id, TC_STRUCT);
    tc_stop(m);
}

static void put_schema_leaf(pq_buf *m, const pq_wcol *c)
{
    int16_t last = 0;
    dray__tc_fi32(m, &last, 1, c->ptype);
    dray__tc_fi32(m, &last, 3, 1); /* OPTIONAL */
    dray__tc_fbin(m, &last, 4, c->name, strlen(c->name));
    int ct = PQ_CT_NONE, bits = 0;
    bool is_signed = true, binary = strcmp(c->format, "z") == 0;
    switch (c->at.kind) {
    case AK_I8: ct = PQ_CT_INT_8, bits = 8; break;
    case AK_I16: ct = PQ_CT_INT_16, bits = 16; break;
    case AK_I32: ct = PQ_CT_INT_32, bits = 32; break;
    case AK_I64: ct = PQ_CT_INT_64, bits = 64; break;
    case AK_U8: ct = PQ_CT_UINT_8, bits = 8, is_signed = false; break;
    case AK_U16: ct = PQ_CT_UINT_16, bits = 16, is_signed = false; break;
    case AK_U32: ct = PQ_CT_UINT_32, bits = 32, is_signed = false; break;
    case AK_U64: ct = PQ_CT_UINT_64, bits = 64, is_signed = false; break;
    case AK_UTF8: ct = binary ? PQ_CT_NONE : PQ_CT_UTF8; break;
    case AK_DATE32: ct = PQ_CT_DATE; break;
    case AK_TS: {
        int unit = c->at.unit == 0 ? PQ_UNIT_MILLIS : c->at.unit;
        bool utc = c->at.tz && c->at.tz[0];
        if (utc && unit == PQ_UNIT_MILLIS)
            ct = PQ_CT_TS_MILLIS;
        else if (utc && unit == PQ_UNIT_MICROS)
            ct = PQ_CT_TS_MICROS;
        break;
    }
    default: break;
    }
    if (ct != PQ_CT_NONE)
        dray__tc_fi32(m, &last, 6, ct);
    if (c->at.kind == AK_F32 || c->at.kind == AK_F64 || c->at.kind == AK_BOOL || binary) {
        tc_stop(m);
        return;
    }
    dray__tc_field(m, &last, 10, TC_STRUCT);
    int16_t l2 = 0, l3 = 0, l4 = 0;
    if (c->at.kind == AK_UTF8) {
        put_empty_struct_field(m, &l2, PQ_LT_STRING);
    } else if (c->at.kind == AK_DATE32) {
        put_empty_struct_field(m, &l2, PQ_LT_DATE);
    } else if (c->at.kind == AK_TS) {
        dray__tc_field(m, &l2, PQ_LT_TIMESTAMP, TC_STRUCT);
        dray__tc_fbool(m, &l3, 1, c->at.tz && c->at.tz[0]);
        dray__tc_field(m, &l3, 2, TC_STRUCT);
        put_empty_struct_field(m, &l4, (int16_t)(c->at.unit == 0 ? PQ_UNIT_MILLIS : c->at.unit));
        tc_stop(m);
        tc_stop(m);
    } else {
        dray__tc_field(m, &l2, PQ_LT_INTEGER, TC_STRUCT);
        dray__tc_field(m, &l3, 1, TC_BYTE);
        pq_buf_byte(m, (uint8_t)bits);
        dray__tc_fbool(m, &l3, 2, is_signed);
        tc_stop(m);
    }
    tc_stop(m);
    tc_stop(m);
}

static dray_status write_footer(dray_parquet_writer *w)
{
    pq_buf m = {0};
    int16_t last = 0, l2;
    dray__tc_fi32(&m, &last, 1, 1);
    dray__tc_field(&m, &last, 2, TC_LIST);
    dray__tc_list(&m, TC_STRUCT, (uint32_t)w->ncols + 1);
    l2 = 0;
    dray__tc_fbin(&m, &l2, 4, "schema", 6);
    dray__tc_fi32(&m, &l2, 5, w->ncols);
    tc_stop(&m);
    for (int i = 0; i < w->ncols; i++)
        put_schema_leaf(&m, &w->cols[i]);
    dray__tc_fi64(&m, &last, 3, w->num_rows);
    dray__tc_field(&m, &last, 4, TC_LIST);
    dray__tc_list(&m, TC_STRUCT, (uint32_t)w->nrgs);
    pq_buf_put(&m, w->rgmeta.data, w->rgmeta.len);
    /* key/value metadata: the Arrow formats, to restore time zones and second units */
    dray__tc_field(&m, &last, 5, TC_LIST);
    dray__tc_list(&m, TC_STRUCT, 1);
    l2 = 0;
    dray__tc_fbin(&m, &l2, 1, "dray:arrow_formats", 18);
    dray__tc_field(&m, &l2, 2, TC_BINARY);
    size_t flen = 0;
    for (int i = 0; i < w->ncols; i++)
        flen += strlen(w->cols[i].format) + 1;
    dray__pq_buf_varint(&m, flen);
    for (int i = 0; i < w->ncols; i++) {
        pq_buf_put(&m, w->cols[i].format, strlen(w->cols[i].format));
        pq_buf_byte(&m, '\n');
    }
    tc_stop(&m);
    static const char created_by[] = "dray parquet version 0.1";
    dray__tc_fbin(&m, &last, 6, created_by, sizeof(created_by) - 1);
    dray__tc_field(&m, &last, 7, TC_LIST);
    dray__tc_list(&m, TC_STRUCT, (uint32_t)w->ncols);
    for (int i = 0; i < w->ncols; i++) {
        l2 = 0;
        put_empty_struct_field(&m, &l2, 1); /* TYPE_ORDER */
        tc_stop(&m);
    }
    tc_stop(&m);
    pq_buf_u32le(&m, (uint32_t)m.len);
    pq_buf_put(&m, "PAR1", 4);
    dray_status st = m.oom ? dray_set_error(DRAY_ENOMEM, "parquet: out of memory")
                           : emit(w, m.data, m.len);
    dray__pq_buf_free(&m);
    return st ? st : flush_out(w);
}

dray_status dray_parquet_writer_close(dray_parquet_writer *w)
{
    if (!w)
        return dray_set_error(DRAY_EINVAL, "parquet: writer_close: NULL writer");
    dray_status st;
    if (w->failed) {
        st = dray_set_error(DRAY_EINVAL, "parquet: '%s': closing a failed writer; file removed",
                            w->path);
        dray_parquet_writer_abort(w);
        return st;
    }
    if ((st = write_footer(w)) != DRAY_OK) {
        dray_parquet_writer_abort(w);
        return st;
    }
    int rc = close(w->fd);
    w->fd = -1;
    if (rc != 0) {
        st = dray_set_error(DRAY_EIO, "parquet: closing '%s': %s", w->path, strerror(errno));
        unlink(w->path);
    }
    free_writer(w);
    return st;
}
