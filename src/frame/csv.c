/* The CSV reader: header and type inference, then a single-pass scanner over a byte range that parses
 * numbers straight from the bytes into column builders (no per-field allocation), falling back to a
 * general tokenizer for quoted fields, nulls and anything unusual. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "csv.h"

static const char *const default_na[] = {"", "NA", "N/A", "NULL", "null", "NaN", "nan"};

void dray_csv_opts_init(dray_csv_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->delimiter = ',';
    o->quote = '"';
    o->header = true;
    o->block_size = 64u << 20;
    o->sample_bytes = 1u << 20;
}

/* ---- files ---- */

dray_status dray__csv_map(const char *path, const char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dray_set_error(DRAY_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return dray_set_error(DRAY_EIO, "'%s' is not a regular file", path);
    }
    *len = (size_t)sb.st_size;
    if (*len == 0) {
        *data = "";
        close(fd);
        return DRAY_OK;
    }
    void *m = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return dray_set_error(DRAY_EIO, "cannot map '%s': %s", path, strerror(errno));
    madvise(m, *len, MADV_SEQUENTIAL);
    *data = m;
    return DRAY_OK;
}

void dray__csv_unmap(const char *data, size_t len)
{
    if (len)
        munmap((void *)data, len);
}

int64_t dray__csv_count_quotes(const char *data, size_t len, char quote)
{
    int64_t n = 0;
    const char *p = data, *e = data + len;
    while ((p = memchr(p, quote, (size_t)(e - p)))) {
        n++;
        p++;
    }
    return n;
}

/* ---- the general tokenizer ---- */

typedef struct scan {
    const char *name; /* file, for errors */
    const char *data;
    size_t len;
    char delim, quote;
    char *scratch; /* unescaped quoted field */
    size_t scratch_cap;
} scan;

/* line_of: the 1-based line of byte pos (counted on the error path only). */
static int64_t line_of(const scan *s, size_t pos)
{
    int64_t n = 1;
    const char *p = s->data, *e = s->data + pos;
    while ((p = memchr(p, '\n', (size_t)(e - p)))) {
        n++;
        p++;
    }
    return n;
}

enum { T_DELIM, T_EOL, T_EOF, T_BAD };

/* next_field: the field at *pos (unquoted in place, quoted unescaped into scratch); advances *pos
 * past its terminator and returns which one it was. T_BAD sets *why. */
static int next_field(scan *s, size_t *pos, const char **val, size_t *vlen, bool *quoted,
                      const char **why)
{
    const char *d = s->data;
    size_t p = *pos, n = s->len;
    *quoted = false;
    if (p < n && d[p] == s->quote) {
        *quoted = true;
        size_t l = 0;
        p++;
        for (;;) {
            const char *q = memchr(d + p, s->quote, n - p);
            if (!q) {
                *why = "unterminated quoted field";
                *pos = n;
                return T_BAD;
            }
            size_t chunk = (size_t)(q - (d + p));
            if (l + chunk + 1 > s->scratch_cap) {
                size_t cap = s->scratch_cap ? s->scratch_cap : 256;
                while (cap < l + chunk + 1)
                    cap *= 2;
                char *ns = realloc(s->scratch, cap);
                if (!ns) {
                    *why = "out of memory";
                    return T_BAD;
                }
                s->scratch = ns;
                s->scratch_cap = cap;
            }
            memcpy(s->scratch + l, d + p, chunk);
            l += chunk;
            p += chunk + 1;
            if (p < n && d[p] == s->quote) { /* "" is one quote */
                s->scratch[l++] = s->quote;
                p++;
                continue;
            }
            break;
        }
        *val = s->scratch;
        *vlen = l;
    } else {
        size_t b = p;
        while (p < n && d[p] != s->delim && d[p] != '\n' &&
               !(d[p] == '\r' && (p + 1 == n || d[p + 1] == '\n')))
            p++;
        *val = d + b;
        *vlen = p - b;
    }
    if (p >= n) {
        *pos = n;
        return T_EOF;
    }
    if (d[p] == s->delim) {
        *pos = p + 1;
        return T_DELIM;
    }
    if (d[p] == '\r')
        p++;
    if (p < n && d[p] == '\n') {
        *pos = p + 1;
        return T_EOL;
    }
    if (p >= n) {
        *pos = n;
        return T_EOF;
    }
    *why = "unexpected character after a closing quote";
    *pos = p;
    return T_BAD;
}

/* ---- plan: header, usecols, inference ---- */

void dray__csv_plan_destroy(dray__csv_plan *p)
{
    if (!p)
        return;
    for (int i = 0; p->fields && i < p->nfields; i++)
        free(p->fields[i]);
    for (size_t i = 0; p->na && i < p->n_na; i++)
        free(p->na[i]);
    free(p->fields);
    free(p->field_col);
    free(p->names);
    free(p->types);
    free(p->units);
    free(p->na);
    free(p->na_len);
    free(p);
}

static bool is_na_slow(const dray__csv_plan *p, const char *v, size_t l)
{
    for (size_t i = 0; i < p->n_na; i++)
        if (p->na_len[i] == l && !memcmp(p->na[i], v, l))
            return true;
    return false;
}

/* is_na: whether v[0..l) is a null marker (the length mask rules most fields out inline). */
static inline bool is_na(const dray__csv_plan *p, const char *v, size_t l)
{
    return l < 64 && ((p->na_len_mask >> l) & 1) && is_na_slow(p, v, l);
}

enum { C_INT = 1, C_FLOAT = 2, C_BOOL = 4, C_DATE = 8, C_TS = 16 };

/* candidates: which of the types still in `want` the text v parses as. */
static unsigned candidates(const char *v, size_t l, unsigned want)
{
    unsigned c = 0;
    int64_t i;
    double f;
    bool b;
    int32_t d;
    if ((want & C_INT) && dray__parse_i64(v, l, &i))
        c |= C_INT | C_FLOAT;
    else if ((want & C_FLOAT) && dray__parse_f64(v, l, &f))
        c |= C_FLOAT;
    if ((want & C_BOOL) && dray__parse_bool(v, l, &b))
        c |= C_BOOL;
    if ((want & (C_DATE | C_TS)) && dray__parse_date32(v, l, &d))
        c |= C_DATE | C_TS;
    else if ((want & C_TS) && l > 10 && dray__parse_timestamp(v, l, DRAY_TU_MICRO, &i))
        c |= C_TS;
    return c;
}

static dray_status plan_fields(dray__csv_plan *p, scan *s, size_t *pos, size_t limit,
                               const dray_csv_opts *opts)
{
    /* the first record gives the number of fields (and their names with a header) */
    const char *v, *why = NULL;
    size_t vl;
    bool q;
    int cap = 16, t;
    p->fields = calloc((size_t)cap, sizeof(char *));
    if (!p->fields)
        return dray_set_error(DRAY_ENOMEM, "csv plan");
    do {
        t = next_field(s, pos, &v, &vl, &q, &why);
        if (t == T_BAD)
            return dray_set_error(DRAY_EFORMAT, "%s:1: %s", s->name, why);
        if (p->nfields == cap) {
            char **nf = realloc(p->fields, (size_t)cap * 2 * sizeof(char *));
            if (!nf)
                return dray_set_error(DRAY_ENOMEM, "csv plan");
            p->fields = nf;
            cap *= 2;
        }
        char buf[32];
        if (!opts->header) {
            snprintf(buf, sizeof(buf), "c%d", p->nfields);
            v = buf;
            vl = strlen(buf);
        }
        if (!(p->fields[p->nfields] = strndup(v, vl)))
            return dray_set_error(DRAY_ENOMEM, "csv plan");
        p->nfields++;
    } while (t == T_DELIM && *pos < limit);
    if (!opts->header)
        *pos = 0;
    for (int i = 0; i < p->nfields; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(p->fields[i], p->fields[j]))
                return dray_set_error(DRAY_EFORMAT, "%s: header names column '%s' twice", s->name,
                                      p->fields[i]);
    return DRAY_OK;
}

static dray_status plan_columns(dray__csv_plan *p, const char *name, const dray_csv_opts *opts)
{
    size_t nf = (size_t)(unsigned)p->nfields + 1;
    p->field_col = malloc(nf * sizeof(int));
    p->names = calloc(nf, sizeof(char *));
    p->types = calloc(nf, sizeof(dray_col_type));
    p->units = calloc(nf, sizeof(dray_time_unit));
    if (!p->field_col || !p->names || !p->types || !p->units)
        return dray_set_error(DRAY_ENOMEM, "csv plan");
    for (int f = 0; f < p->nfields; f++)
        p->field_col[f] = opts->usecols ? -1 : f;
    p->ncols = opts->usecols ? (int)opts->n_usecols : p->nfields;
    for (size_t u = 0; opts->usecols && u < opts->n_usecols; u++) {
        int f = 0;
        while (f < p->nfields && strcmp(p->fields[f], opts->usecols[u]))
            f++;
        if (f == p->nfields)
            return dray_set_error(DRAY_EINVAL, "%s: usecols names '%s', not a column of the file",
                                  name, opts->usecols[u]);
        if (p->field_col[f] >= 0)
            return dray_set_error(DRAY_EINVAL, "usecols names '%s' twice", opts->usecols[u]);
        p->field_col[f] = (int)u;
    }
    /* output columns keep the file's order */
    int k = 0;
    for (int f = 0; f < p->nfields; f++)
        if (p->field_col[f] >= 0) {
            p->field_col[f] = k;
            p->names[k++] = p->fields[f];
        }
    for (size_t i = 0; i < opts->n_schema; i++) {
        int f = 0;
        while (f < p->nfields && strcmp(p->fields[f], opts->schema[i].name))
            f++;
        if (f == p->nfields)
            return dray_set_error(DRAY_EINVAL, "%s: schema names '%s', not a column of the file",
                                  name, opts->schema[i].name);
    }
    return DRAY_OK;
}

static dray_status plan_na(dray__csv_plan *p, const dray_csv_opts *opts)
{
    const char *const *na = opts->na_values ? opts->na_values : default_na;
    size_t n = opts->na_values ? opts->n_na_values : sizeof(default_na) / sizeof(default_na[0]);
    p->na = calloc(n ? n : 1, sizeof(char *));
    p->na_len = calloc(n ? n : 1, sizeof(size_t));
    if (!p->na || !p->na_len)
        return dray_set_error(DRAY_ENOMEM, "csv plan");
    for (size_t i = 0; i < n; i++) {
        if (!(p->na[i] = strdup(na[i])))
            return dray_set_error(DRAY_ENOMEM, "csv plan");
        p->n_na = i + 1;
        p->na_len[i] = strlen(na[i]);
        if (p->na_len[i] < 64)
            p->na_len_mask |= 1ull << p->na_len[i];
    }
    return DRAY_OK;
}

dray_status dray__csv_plan_create(const char *name, const char *data, size_t len, bool complete,
                                  const dray_csv_opts *opts, dray__csv_plan **out)
{
    dray_status st;
    if (opts->delimiter == '\n' || opts->delimiter == '\r' || opts->delimiter == opts->quote ||
        !opts->delimiter)
        return dray_set_error(DRAY_EINVAL, "csv: bad delimiter/quote pair");
    dray__csv_plan *p = calloc(1, sizeof(*p));
    if (!p)
        return dray_set_error(DRAY_ENOMEM, "csv plan");
    p->delim = opts->delimiter;
    p->quote = opts->quote;
    p->stop[(uint8_t)p->delim] = p->stop['\n'] = p->stop['\r'] = 1;
    p->header = opts->header;
    p->bad = opts->bad_lines;
    scan s = {name, data, len, p->delim, p->quote, NULL, 0};
    size_t pos = 0, sample = opts->sample_bytes ? opts->sample_bytes : (1u << 20);
    if (len == 0) {
        st = dray_set_error(DRAY_EFORMAT, "%s: empty file, no header", name);
        goto out;
    }
    if ((st = plan_fields(p, &s, &pos, len, opts)) || (st = plan_columns(p, name, opts)) ||
        (st = plan_na(p, opts)))
        goto out;
    /* inference: candidate types per field over the sample's complete records */
    unsigned *cand = malloc((size_t)p->nfields * sizeof(unsigned));
    if (!cand) {
        st = dray_set_error(DRAY_ENOMEM, "csv plan");
        goto out;
    }
    for (int f = 0; f < p->nfields; f++)
        cand[f] = C_INT | C_FLOAT | C_BOOL | C_DATE | C_TS;
    size_t lim = len < sample ? len : sample, data_start = pos, rows = 0;
    s.len = lim; /* a record cut by the sample's end reads as EOF: it is left out */
    while (pos < lim) {
        size_t rec = pos;
        int f = 0, t;
        unsigned rc[256];
        bool ok = true;
        do {
            const char *v, *why;
            size_t vl;
            bool q;
            t = next_field(&s, &pos, &v, &vl, &q, &why);
            if (t == T_BAD) {
                ok = false;
                break;
            }
            if (f < 256)
                rc[f] = (vl == 0 || (!q && is_na(p, v, vl))) ? ~0u
                        : candidates(v, vl, f < p->nfields ? cand[f] : ~0u);
            f++;
        } while (t == T_DELIM);
        if (t == T_EOF && !complete && lim == len)
            break;
        if (t == T_EOF && lim < len)
            break;
        if (!ok || f != p->nfields || (f == 1 && pos - rec <= 2))
            continue; /* bad or blank lines do not vote */
        for (int k = 0; k < f && k < 256; k++)
            cand[k] &= rc[k];
        rows++;
    }
    p->est_row_bytes = rows ? (int64_t)((pos - data_start) / rows) + 1 : 64;
    for (int f = 0; f < p->nfields; f++) {
        int k = p->field_col[f];
        if (k < 0)
            continue;
        unsigned c = f < 256 ? cand[f] : 0;
        p->units[k] = DRAY_TU_MICRO;
        p->types[k] = c == ~0u || c == (C_INT | C_FLOAT | C_BOOL | C_DATE | C_TS) ? DRAY_DT_FLOAT64
                      : c & C_INT   ? DRAY_DT_INT64
                      : c & C_FLOAT ? DRAY_DT_FLOAT64
                      : c & C_BOOL  ? DRAY_DT_BOOL
                      : c & C_DATE  ? DRAY_DT_DATE32
                      : c & C_TS    ? DRAY_DT_TIMESTAMP
                                    : DRAY_DT_UTF8;
        if (rows == 0 && c == (C_INT | C_FLOAT | C_BOOL | C_DATE | C_TS))
            p->types[k] = DRAY_DT_UTF8; /* no data at all */
        for (size_t i = 0; i < opts->n_schema; i++)
            if (!strcmp(opts->schema[i].name, p->fields[f])) {
                p->types[k] = opts->schema[i].type;
                p->units[k] = opts->schema[i].unit;
            }
    }
    free(cand);
    free(s.scratch);
    *out = p;
    return DRAY_OK;
out:
    free(s.scratch);
    dray__csv_plan_destroy(p);
    return st;
}

/* ---- range parser ---- */

typedef struct date_cache {
    char text[10];
    bool valid;
    int32_t days;
} date_cache;

typedef struct rparse {
    const dray__csv_plan *p;
    scan s;
    dray__builder *b;
    date_cache *dates; /* per output column */
    int64_t rows;
    int64_t bad;
    bool ts19;         /* no byte of "0123456789-: " ends a field: see parse_record */
} rparse;

static dray_status bad_value(rparse *r, size_t at, int field, const char *v, size_t vl,
                             const char *what)
{
    return dray_set_error(DRAY_EFORMAT, "%s:%lld: column %d ('%s'): '%.*s' is not %s", r->s.name,
                          (long long)line_of(&r->s, at), field + 1, r->p->fields[field],
                          (int)(vl > 64 ? 64 : vl), v, what);
}

/* store: converts text v into the builder of field f (row r->rows). */
static dray_status store(rparse *r, int f, const char *v, size_t vl, bool quoted, size_t at)
{
    dray__builder *b = &r->b[r->p->field_col[f]];
    int64_t row = r->rows;
    /* a quoted empty string is an empty string, not a null */
    if ((vl == 0 && !(quoted && (b->type == DRAY_DT_UTF8 || b->type == DRAY_DT_DICT))) ||
        (!quoted && is_na(r->p, v, vl))) {
        if (b->type == DRAY_DT_UTF8)
            ((int32_t *)b->data)[row + 1] = (int32_t)b->chars_len;
        else if (b->type != DRAY_DT_BOOL)
            memset(b->data + row * dray__dtype_width(b->type), 0, (size_t)dray__dtype_width(b->type));
        if (b->type == DRAY_DT_DICT)
            ((int32_t *)b->data)[row] = -1;
        return dray__builder_mark_null(b, row);
    }
    int64_t i;
    double d;
    bool bo;
    int32_t dt;
    switch (b->type) {
    case DRAY_DT_UTF8: case DRAY_DT_DICT: {
        dray_status st;
        if ((st = dray__builder_grow(b, 0, (int64_t)vl)))
            return st;
        memcpy(b->chars + b->chars_len, v, vl);
        b->chars_len += (int64_t)vl;
        if (b->type == DRAY_DT_UTF8)
            ((int32_t *)b->data)[row + 1] = (int32_t)b->chars_len;
        else
            ((int32_t *)b->data)[row] = (int32_t)vl; /* lengths; encoded at the end */
        return DRAY_OK;
    }
    case DRAY_DT_FLOAT64:
        if (!dray__parse_f64(v, vl, &d))
            return bad_value(r, at, f, v, vl, "a float64");
        ((double *)b->data)[row] = d;
        return DRAY_OK;
    case DRAY_DT_FLOAT32:
        if (!dray__parse_f64(v, vl, &d))
            return bad_value(r, at, f, v, vl, "a float32");
        ((float *)b->data)[row] = (float)d;
        return DRAY_OK;
    case DRAY_DT_BOOL:
        if (!dray__parse_bool(v, vl, &bo)) {
            if (vl == 1 && (v[0] == '0' || v[0] == '1'))
                bo = v[0] == '1';
            else
                return bad_value(r, at, f, v, vl, "a bool");
        }
        if (bo)
            dray__bit_set(b->data, row);
        return DRAY_OK;
    case DRAY_DT_DATE32:
        if (!dray__parse_date32(v, vl, &dt))
            return bad_value(r, at, f, v, vl, "a date (YYYY-MM-DD)");
        ((int32_t *)b->data)[row] = dt;
        return DRAY_OK;
    case DRAY_DT_TIMESTAMP:
        if (!dray__parse_timestamp(v, vl, b->unit, &i))
            return bad_value(r, at, f, v, vl, "a timestamp");
        ((int64_t *)b->data)[row] = i;
        return DRAY_OK;
    case DRAY_DT_UINT64: {
        char *e;
        char buf[32];
        if (vl >= sizeof(buf) || v[0] == '-' || v[0] == '+' || v[0] == ' ')
            return bad_value(r, at, f, v, vl, "a uint64");
        memcpy(buf, v, vl);
        buf[vl] = 0;
        errno = 0;
        unsigned long long u = strtoull(buf, &e, 10);
        if (*e || errno)
            return bad_value(r, at, f, v, vl, "a uint64");
        ((uint64_t *)b->data)[row] = u;
        return DRAY_OK;
    }
    default: {
        static const int64_t lo[] = {0, 0, -128, -32768, INT32_MIN, INT64_MIN, 0, 0, 0};
        static const int64_t hi[] = {0, 0, 127, 32767, INT32_MAX, INT64_MAX, 255, 65535, UINT32_MAX};
        int t = b->type;
        if (!dray__parse_i64(v, vl, &i) || t > DRAY_DT_UINT32 || i < lo[t + 1] || i > hi[t + 1])
            return bad_value(r, at, f, v, vl, dray_col_type_name(b->type));
        int w = dray__dtype_width(b->type);
        if (w == 8)
            ((int64_t *)b->data)[row] = i;
        else if (w == 4)
            ((int32_t *)b->data)[row] = (int32_t)i;
        else if (w == 2)
            ((int16_t *)b->data)[row] = (int16_t)i;
        else
            ((int8_t *)b->data)[row] = (int8_t)i;
        return DRAY_OK;
    }
    }
}

static const double pow10_tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
static const uint64_t pow10_u64[17] = {1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
                                       10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
                                       100000000000ull, 1000000000000ull, 10000000000000ull,
                                       100000000000000ull, 1000000000000000ull, 10000000000000000ull};

/* store_number: the parsed mantissa m with e decimal places (e <= 0) into the builder; false when
 * the value needs the general path (Clinger's fast path is exact only for m <= 2^53, e >= -22: one
 * correctly rounded division of two exact doubles, the same double strtod gives). */
static inline bool store_number(dray__builder *b, int64_t row, bool neg, uint64_t m, int e)
{
    if (b->type == DRAY_DT_INT64) {
        ((int64_t *)b->data)[row] = neg ? -(int64_t)m : (int64_t)m;
        return true;
    }
    if (e < -22 || m > (1ull << 53))
        return false;
    double v = (double)m;
    if (e)
        v /= pow10_tab[-e];
    ((double *)b->data)[row] = neg ? -v : v;
    return true;
}

/* fast_number_scalar: fast_number a byte at a time, near the end of the data. */
static size_t fast_number_scalar(const dray__csv_plan *pl, dray__builder *b, int64_t row,
                                 const char *d, size_t p, size_t n)
{
    size_t q = p;
    bool neg = false;
    if (q < n && d[q] == '-') {
        neg = true;
        q++;
    }
    uint64_t m = 0;
    int nd = 0, e = 0;
    unsigned c;
    while (q < n && (c = (unsigned)(d[q] - '0')) <= 9) {
        m = m * 10 + c;
        nd++;
        q++;
    }
    if (b->type == DRAY_DT_FLOAT64 && q < n && d[q] == '.') {
        q++;
        while (q < n && (c = (unsigned)(d[q] - '0')) <= 9) {
            m = m * 10 + c;
            nd++;
            e--;
            q++;
        }
    }
    if (nd == 0 || nd > 18 || (q < n && !pl->stop[(uint8_t)d[q]]))
        return 0;
    return store_number(b, row, neg, m, e) ? q : 0;
}

#ifdef __SSE2__
/* digit_run: how many of the 16 bytes at s are ASCII digits before the first other byte. */
static inline int digit_run(const char *s)
{
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i bad = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8('0')),
                               _mm_cmpgt_epi8(x, _mm_set1_epi8('9')));
    return __builtin_ctz((unsigned)_mm_movemask_epi8(bad) | 0x10000u);
}

/* digits_value: the value of the k (1..8) ASCII digits at s, without a branch per digit: the
 * digits are loaded as one little-endian word, shifted so that they are the low-order end of
 * an eight-digit number with leading zeros, then combined pairwise (2, 4, 8 digits) by multiplies. */
static inline uint64_t digits_value(const char *s, int k)
{
    uint64_t w;
    memcpy(&w, s, 8);
    w -= 0x3030303030303030ull; /* digits become 0..9; a borrow only moves to bytes above them */
    w <<= 8 * (8 - k);
    w = w * 10 + (w >> 8);      /* each byte pair: 10 * first + second in its low byte */
    w = ((w & 0x000000ff000000ffull) * (100 + (1000000ull << 32)) +
         ((w >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32))) >> 32;
    return w;
}

/* run_value: the value of the k (1..16) digits at s. */
static inline uint64_t run_value(const char *s, int k)
{
    if (k <= 8)
        return digits_value(s, k);
    return digits_value(s, k - 8) * 100000000ull + digits_value(s + k - 8, 8);
}
#endif

/* fast_number: parses an unquoted decimal at d[p..) straight into the builder when it ends at a
 * field terminator; returns the position after it, or 0 to take the general path. Digit runs are
 * found 16 bytes at a time and converted without a branch per digit (SSE2). */
static inline size_t fast_number(const dray__csv_plan *pl, dray__builder *b, int64_t row,
                                 const char *d, size_t p, size_t n)
{
#ifdef __SSE2__
    if (n - p >= 40) {
        size_t q = p;
        bool neg = d[q] == '-';
        q += neg;
        int k1 = digit_run(d + q), k2 = 0;
        uint64_t m = k1 ? run_value(d + q, k1) : 0;
        q += (size_t)k1;
        if (b->type == DRAY_DT_FLOAT64 && d[q] == '.') {
            k2 = digit_run(d + q + 1);
            if (k2) {
                m = m * pow10_u64[k2] + run_value(d + q + 1, k2);
            }
            q += 1 + (size_t)k2;
        }
        /* a run of 16 may go on: the general path; 18 digits always fit in a uint64 */
        if (k1 + k2 == 0 || k1 + k2 > 18 || k1 == 16 || k2 == 16 || !pl->stop[(uint8_t)d[q]])
            return 0;
        return store_number(b, row, neg, m, -k2) ? q : 0;
    }
#endif
    return fast_number_scalar(pl, b, row, d, p, n);
}

/* find_stop: the first byte at or after p that ends an unquoted field (or n), 16 bytes a step. */
static inline size_t find_stop(const dray__csv_plan *pl, const char *d, size_t p, size_t n)
{
#ifdef __SSE2__
    const __m128i dl = _mm_set1_epi8(pl->delim), nl = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
    while (p + 16 <= n) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(d + p));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, dl), _mm_cmpeq_epi8(x, nl)),
                                   _mm_cmpeq_epi8(x, cr));
        unsigned m = (unsigned)_mm_movemask_epi8(hit);
        if (m)
            return p + (size_t)__builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < n && !pl->stop[(uint8_t)d[p]])
        p++;
    return p;
}

/* fast_timestamp: "YYYY-MM-DD HH:MM:SS" with the day of the previous row's date reused when its
 * ten date bytes repeat (sorted or clustered data). False: take the general path. */
static inline bool fast_timestamp(rparse *r, int col, dray__builder *b, const char *v, size_t vl)
{
    static const int64_t per_sec[4] = {1, 1000, 1000000, 1000000000};
    if (vl != 19 || v[10] != ' ' || v[13] != ':' || v[16] != ':')
        return false;
    unsigned h0 = (unsigned)(v[11] - '0'), h1 = (unsigned)(v[12] - '0'), m0 = (unsigned)(v[14] - '0'),
             m1 = (unsigned)(v[15] - '0'), s0 = (unsigned)(v[17] - '0'), s1 = (unsigned)(v[18] - '0');
    if (h0 > 9 || h1 > 9 || m0 > 9 || m1 > 9 || s0 > 9 || s1 > 9)
        return false;
    unsigned hh = h0 * 10 + h1, mm = m0 * 10 + m1, ss = s0 * 10 + s1;
    if (hh > 23 || mm > 59 || ss > 60)
        return false;
    date_cache *dc = &r->dates[col];
    if (!dc->valid || memcmp(dc->text, v, 10)) {
        int32_t days;
        if (!dray__parse_date32(v, 10, &days))
            return false;
        memcpy(dc->text, v, 10);
        dc->days = days;
        dc->valid = true;
    }
    ((int64_t *)b->data)[r->rows] =
        ((int64_t)dc->days * 86400 + hh * 3600 + mm * 60 + ss) * per_sec[b->unit];
    return true;
}

static dray_status grow_all(rparse *r, int64_t rows)
{
    dray_status st;
    for (int c = 0; c < r->p->ncols; c++)
        r->b[c].len = r->rows;
    for (int c = 0; c < r->p->ncols; c++)
        if ((st = dray__builder_grow(&r->b[c], rows, 0)))
            return st;
    return DRAY_OK;
}

/* parse_record: one record at *pos into row r->rows; on a bad record returns DRAY_EFORMAT with the
 * error set and *pos at the start of the next record. */
static dray_status parse_record(rparse *r, size_t *pos)
{
    const dray__csv_plan *pl = r->p;
    const char *d = r->s.data;
    size_t n = r->s.len, p = *pos, rec = p;
    int nf = pl->nfields;
    dray_status st = DRAY_OK;
    for (int f = 0;; f++) {
        int col = pl->field_col[f];
        int t;
        size_t at = p;
        if (p < n && d[p] != pl->quote) {
            dray__builder *b = col >= 0 ? &r->b[col] : NULL;
            if (b && (b->type == DRAY_DT_FLOAT64 || b->type == DRAY_DT_INT64)) {
                size_t q = fast_number(pl, b, r->rows, d, p, n);
                if (q) {
                    p = q;
                    goto terminator;
                }
            }
            /* "YYYY-MM-DD HH:MM:SS" then a delimiter or line end: parsed without looking for
             * the field's end (fast_timestamp checks all 19 bytes, none of which ends a field) */
            if (b && b->type == DRAY_DT_TIMESTAMP && r->ts19 && n - p > 20 &&
                (d[p + 19] == pl->delim || d[p + 19] == '\n' ||
                 (d[p + 19] == '\r' && d[p + 20] == '\n')) &&
                fast_timestamp(r, col, b, d + p, 19)) {
                p += 19;
                goto terminator;
            }
            size_t q = find_stop(pl, d, p, n);
            /* a lone \r inside a field takes the general path */
            if (q == n || d[q] != '\r' || q + 1 == n || d[q + 1] == '\n') {
                size_t vl = q - p;
                if (!b) {
                    /* a column left out by usecols */
                } else if (b->type == DRAY_DT_UTF8 && vl && !is_na(pl, d + p, vl)) {
                    /* 16 bytes of slack let a short field be copied in one fixed-size move */
                    if (b->chars_len + (int64_t)vl + 16 > b->chars_cap &&
                        (st = dray__builder_grow(b, 0, (int64_t)vl + 16)))
                        return st;
                    if (vl <= 16 && n - p >= 16)
                        memcpy(b->chars + b->chars_len, d + p, 16);
                    else
                        memcpy(b->chars + b->chars_len, d + p, vl);
                    b->chars_len += (int64_t)vl;
                    ((int32_t *)b->data)[r->rows + 1] = (int32_t)b->chars_len;
                } else if (!(b->type == DRAY_DT_TIMESTAMP && fast_timestamp(r, col, b, d + p, vl)) &&
                           (st = store(r, f, d + p, vl, false, p))) {
                    goto bad;
                }
                p = q;
                goto terminator;
            }
        }
        {
            const char *v, *why = "";
            size_t vl;
            bool quoted;
            t = next_field(&r->s, &p, &v, &vl, &quoted, &why);
            if (t == T_BAD) {
                st = dray_set_error(DRAY_EFORMAT, "%s:%lld: column %d: %s", r->s.name,
                                    (long long)line_of(&r->s, at), f + 1, why);
                goto bad;
            }
            if (col >= 0 && !st && (st = store(r, f, v, vl, quoted, at)))
                goto bad;
            goto after_term;
        }
    terminator:
        if (p >= n)
            t = T_EOF;
        else if (d[p] == pl->delim)
            t = T_DELIM, p++;
        else {
            if (d[p] == '\r')
                p++;
            if (p < n && d[p] == '\n')
                p++;
            t = T_EOL;
        }
    after_term:
        if (t == T_DELIM) {
            if (f + 1 >= nf) {
                st = dray_set_error(DRAY_EFORMAT, "%s:%lld: expected %d fields, found more",
                                    r->s.name, (long long)line_of(&r->s, rec), nf);
                goto bad;
            }
            continue;
        }
        if (f + 1 != nf) {
            st = dray_set_error(DRAY_EFORMAT, "%s:%lld: expected %d fields, found %d", r->s.name,
                                (long long)line_of(&r->s, rec), nf, f + 1);
            goto bad;
        }
        *pos = p;
        r->rows++; /* the builders' len is brought up to date when they grow and at the end */
        return DRAY_OK;
    }
bad:
    /* resynchronise at the next line end outside quotes */
    {
        bool inq = false;
        size_t q = rec;
        while (q < n) {
            if (d[q] == pl->quote)
                inq = !inq;
            else if (d[q] == '\n' && !inq)
                break;
            q++;
        }
        *pos = q < n ? q + 1 : n;
    }
    for (int c = 0; c < pl->ncols; c++) {
        r->b[c].len = r->rows + 1;
        dray__builder_truncate(&r->b[c], r->rows);
    }
    return st ? st : DRAY_EFORMAT;
}

/* finish_column: a dict builder holds the strings' bytes and lengths: encode them now. */
static dray_status finish_column(dray__builder *b, dray_column **out)
{
    if (b->type != DRAY_DT_DICT)
        return dray__builder_finish(b, out);
    dray__builder u;
    dray_status st = dray__builder_init(&u, DRAY_DT_UTF8, 0, b->len, 0);
    if (st)
        return st;
    free(u.chars);
    u.chars = b->chars;
    u.chars_len = b->chars_len;
    u.chars_cap = b->chars_cap;
    b->chars = NULL;
    int32_t *off = (int32_t *)u.data, *lens = (int32_t *)b->data, pos = 0;
    for (int64_t i = 0; i < b->len; i++) {
        if (lens[i] > 0)
            pos += lens[i];
        off[i + 1] = pos;
    }
    u.len = b->len;
    u.validity = b->validity;
    u.null_count = b->null_count;
    b->validity = NULL;
    dray_column *c;
    if (!(st = dray__builder_finish(&u, &c))) {
        st = dray__dict_encode(c, out);
        dray_column_release(c);
    }
    dray__builder_fini(&u);
    return st;
}

dray_status dray__csv_parse_range(const dray__csv_plan *pl, const char *name, const char *data,
                                  size_t len, size_t start, size_t end, bool in_quote,
                                  dray_table **out, int64_t *bad_rows)
{
    rparse r = {pl, {name, data, len, pl->delim, pl->quote, NULL, 0}, NULL, NULL, 0, 0, false};
    dray_status st = DRAY_OK;
    size_t pos = start;
    if (end > len)
        end = len;
    if (start == 0) {
        if (pl->header) { /* skip this file's header, checking it names the same fields */
            size_t hp = 0;
            int f = 0, t;
            do {
                const char *v, *why;
                size_t vl;
                bool q;
                t = next_field(&r.s, &hp, &v, &vl, &q, &why);
                if (t == T_BAD || f >= pl->nfields || vl != strlen(pl->fields[f]) ||
                    memcmp(v, pl->fields[f], vl)) {
                    st = dray_set_error(DRAY_EFORMAT, "%s:1: header differs from the first file's "
                                        "at column %d", name, f + 1);
                    goto out;
                }
                f++;
            } while (t == T_DELIM);
            if (f != pl->nfields) {
                st = dray_set_error(DRAY_EFORMAT, "%s:1: header has %d columns, the first file %d",
                                    name, f, pl->nfields);
                goto out;
            }
            pos = hp;
        }
    } else {
        /* the record containing byte start-1 belongs to the previous range */
        bool inq = in_quote;
        size_t q = start - 1;
        for (; q < len; q++) {
            if (data[q] == pl->quote)
                inq = !inq;
            else if (data[q] == '\n' && !inq)
                break;
        }
        pos = q < len ? q + 1 : len;
    }
    r.ts19 = true;
    for (const char *c = "0123456789-: "; *c; c++)
        r.ts19 &= !pl->stop[(uint8_t)*c];
    r.b = calloc((size_t)(pl->ncols ? pl->ncols : 1), sizeof(dray__builder));
    r.dates = calloc((size_t)(pl->ncols ? pl->ncols : 1), sizeof(date_cache));
    if (!r.b || !r.dates) {
        st = dray_set_error(DRAY_ENOMEM, "csv range");
        goto out;
    }
    int64_t est = (int64_t)(end > pos ? end - pos : 0) / (pl->est_row_bytes ? pl->est_row_bytes : 64) + 16;
    for (int c = 0; c < pl->ncols; c++) {
        dray_col_type t = pl->types[c];
        int64_t chars = t == DRAY_DT_UTF8 || t == DRAY_DT_DICT ? est * 8 : 0;
        /* dict columns collect the bytes and int32 lengths, then encode (finish_column) */
        if ((st = dray__builder_init(&r.b[c], t, pl->units[c],
                                     est, chars)))
            goto out;
    }
    while (pos < end) {
        /* blank lines are skipped */
        if (data[pos] == '\n') {
            pos++;
            continue;
        }
        if (data[pos] == '\r' && pos + 1 < len && data[pos + 1] == '\n') {
            pos += 2;
            continue;
        }
        if (pl->ncols && r.rows + 1 >= r.b[0].cap && (st = grow_all(&r, 1024)))
            goto out;
        if ((st = parse_record(&r, &pos))) {
            if (st != DRAY_EFORMAT || pl->bad == DRAY_BAD_LINES_ERROR)
                goto out;
            r.bad++;
            st = DRAY_OK;
        }
    }
    dray_column **cols = calloc((size_t)(pl->ncols ? pl->ncols : 1), sizeof(*cols));
    if (!cols) {
        st = dray_set_error(DRAY_ENOMEM, "csv range");
        goto out;
    }
    for (int c = 0; c < pl->ncols && !st; c++) {
        r.b[c].len = r.rows;
        st = finish_column(&r.b[c], &cols[c]);
    }
    if (!st)
        st = dray_table_create((const char *const *)pl->names, cols, (size_t)pl->ncols, out);
    if (!st && pl->ncols == 0)
        (*out)->nrows = r.rows;
    for (int c = 0; c < pl->ncols; c++)
        dray_column_release(cols[c]);
    free(cols);
    if (!st && bad_rows)
        *bad_rows = r.bad;
out:
    for (int c = 0; r.b && c < pl->ncols; c++)
        dray__builder_fini(&r.b[c]);
    free(r.b);
    free(r.dates);
    free(r.s.scratch);
    return st;
}

dray_status dray__csv_plan_schema(const dray__csv_plan *pl, dray_table **out)
{
    dray_status st = DRAY_OK;
    dray_column **cols = calloc((size_t)pl->ncols + 1, sizeof(*cols));
    if (!cols)
        return dray_set_error(DRAY_ENOMEM, "csv schema");
    for (int c = 0; c < pl->ncols && !st; c++) {
        dray__builder b;
        if (!(st = dray__builder_init(&b, pl->types[c], pl->units[c], 0, 0)))
            st = finish_column(&b, &cols[c]);
        dray__builder_fini(&b);
    }
    if (!st)
        st = dray_table_create((const char *const *)pl->names, cols, (size_t)pl->ncols, out);
    for (int c = 0; c < pl->ncols; c++)
        dray_column_release(cols[c]);
    free(cols);
    return st;
}

/* ---- eager readers ---- */

dray_status dray_csv_read_buffer(const char *name, const char *data, size_t len,
                                 const dray_csv_opts *opts, dray_table **out, int64_t *bad_rows)
{
    dray_csv_opts def;
    if (!opts) {
        dray_csv_opts_init(&def);
        opts = &def;
    }
    dray__csv_plan *p;
    dray_status st = dray__csv_plan_create(name, data, len, true, opts, &p);
    if (st)
        return st;
    st = dray__csv_parse_range(p, name, data, len, 0, len, false, out, bad_rows);
    dray__csv_plan_destroy(p);
    return st;
}

dray_status dray_csv_read(const char *path, const dray_csv_opts *opts, dray_table **out,
                          int64_t *bad_rows)
{
    const char *data;
    size_t len;
    dray_status st = dray__csv_map(path, &data, &len);
    if (st)
        return st;
    st = dray_csv_read_buffer(path, data, len, opts, out, bad_rows);
    dray__csv_unmap(data, len);
    return st;
}
