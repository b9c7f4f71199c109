/* Internals shared by the frame module's files: the column and table structs, growable builders that
 * the CSV reader and kernels fill without per-value allocation, and bitmap helpers. */
#ifndef DRAY_FRAME_INTERNAL_H
#define DRAY_FRAME_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "dray/frame.h"

/* Buffers of a column are either owned (freed with free) or borrowed from a shared `keep` object
 * (an imported Arrow array) that is released with the column. */
typedef struct dray__keep {
    atomic_int refs;
    void (*free_fn)(struct dray__keep *k);
} dray__keep;

struct dray_column {
    atomic_int refs;
    dray_col_type type;
    dray_time_unit unit;
    int64_t length;
    int64_t null_count;
    uint8_t *validity; /* NULL when null_count == 0 */
    void *data;        /* values / bits / int32 offsets (utf8) / int32 indices (dict) */
    char *chars;       /* utf8 bytes */
    int64_t chars_len;
    dray_column *dict; /* dict: the utf8 dictionary */
    dray__keep *keep;  /* non-NULL: buffers belong to it */
};

struct dray_table {
    atomic_int refs;
    size_t ncols;
    int64_t nrows;
    char **names;
    dray_column **cols;
};

/* Bitmaps: bit i of b, LSB first. */
static inline bool dray__bit(const uint8_t *b, int64_t i) { return (b[i >> 3] >> (i & 7)) & 1; }
static inline void dray__bit_set(uint8_t *b, int64_t i) { b[i >> 3] |= (uint8_t)(1u << (i & 7)); }
static inline void dray__bit_clear(uint8_t *b, int64_t i) { b[i >> 3] &= (uint8_t)~(1u << (i & 7)); }
static inline int64_t dray__bitmap_bytes(int64_t n) { return (n + 7) / 8; }

/* dray__dtype_width: bytes per value of a fixed-width type (0 for bool, utf8; 4 for dict). */
int dray__dtype_width(dray_col_type t);
bool dray__dtype_is_int(dray_col_type t);
bool dray__dtype_is_numeric(dray_col_type t);

/* dray__column_alloc: a column with uninitialised buffers for n rows: data (and validity when
 * with_validity, all bits valid). For utf8, data is n+1 offsets and chars gets chars_cap bytes. */
dray_status dray__column_alloc(dray_col_type type, dray_time_unit unit, int64_t n, bool with_validity,
                               int64_t chars_cap, dray_column **out);

/* dray__column_finish_nulls: counts nulls from the validity bitmap, dropping it when there are none. */
void dray__column_finish_nulls(dray_column *c);

/* dray__column_take: rows idx[0..n) of c (for filter/take/sort). */
dray_status dray__column_take(const dray_column *c, const int64_t *idx, int64_t n, dray_column **out);

/* dray__column_take_nullable: like take, with idx[i] < 0 giving a null row. */
dray_status dray__column_take_nullable(const dray_column *c, const int64_t *idx, int64_t n,
                                       dray_column **out);

/* dray__column_filter_bits: rows of c whose bit in `mask` is set (count rows). */
dray_status dray__column_filter_bits(const dray_column *c, const uint8_t *mask, int64_t count,
                                     dray_column **out);

/* dray__dict_encode: utf8 column u as a dict column (distinct strings hashed, first-seen order). */
dray_status dray__dict_encode(const dray_column *u, dray_column **out);
/* dray__column_decode_dict: the utf8 column of a dict column's strings. */
dray_status dray__column_decode_dict(const dray_column *c, dray_column **out);

/* dray__table_empty_from_schema: a table with no rows and the columns of a "+s" Arrow schema. */
dray_status dray__table_empty_from_schema(const struct ArrowSchema *s, dray_table **out);

/* dray__table_empty_like: a table with t's schema and no rows. */
dray_status dray__table_empty_like(const dray_table *t, dray_table **out);

/* dray__table_with_column: t with `c` (retained) added as `name` or replacing it. */
dray_status dray__table_with_column(const dray_table *t, const char *name, dray_column *c,
                                    dray_table **out);

/* ---- Rows over key columns (rows.c) ---- */
/* dray__row_hash: hash of row i's keys; by_value hashes dict strings and integral floats by value
 * (for matching across tables), otherwise dict indices (within one table). */
uint64_t dray__row_hash(dray_column *const *keys, size_t nk, int64_t i, bool by_value);
/* dray__rows_equal: row i of keys a equals row j of keys b (nulls equal nulls). */
bool dray__rows_equal(dray_column *const *a, int64_t i, dray_column *const *b, int64_t j, size_t nk);
/* dray__rows_cmp: order of the rows (nulls last; desc[k] true sorts key k descending; may be NULL). */
int dray__rows_cmp(dray_column *const *a, int64_t i, dray_column *const *b, int64_t j, size_t nk,
                   const bool *desc);
/* dray__sort_rows: stable sort of row indices idx[0..n) by the keys. */
dray_status dray__sort_rows(dray_column *const *keys, size_t nk, const bool *desc, int64_t *idx,
                            int64_t n);

/* ---- Growable builder (CSV reader, kernels) ---- */
typedef struct dray__builder {
    dray_col_type type;
    dray_time_unit unit;
    int64_t len, cap;    /* rows */
    uint8_t *data;       /* values or int32 offsets (utf8, cap+1) */
    uint8_t *validity;   /* allocated on the first null */
    int64_t null_count;
    char *chars;         /* utf8 */
    int64_t chars_len, chars_cap;
} dray__builder;

dray_status dray__builder_init(dray__builder *b, dray_col_type type, dray_time_unit unit, int64_t cap,
                               int64_t chars_cap);
void dray__builder_fini(dray__builder *b);
/* dray__builder_grow: room for `rows` more rows (and, for utf8, `chars` more bytes). */
dray_status dray__builder_grow(dray__builder *b, int64_t rows, int64_t chars);
/* dray__builder_null: marks the next row null (the caller has written a zero value / offset). */
dray_status dray__builder_mark_null(dray__builder *b, int64_t row);
/* dray__builder_truncate: drops rows from `len` on (used to undo a bad row). */
void dray__builder_truncate(dray__builder *b, int64_t len);
/* dray__builder_finish: the built column (the builder is emptied). */
dray_status dray__builder_finish(dray__builder *b, dray_column **out);

/* ---- Parsing of text values (CSV, expressions) ---- */
/* Each parses exactly s[0..n) and returns false when it is not a value of that type. */
bool dray__parse_i64(const char *s, size_t n, int64_t *out);
bool dray__parse_f64(const char *s, size_t n, double *out);
bool dray__parse_bool(const char *s, size_t n, bool *out);
bool dray__parse_date32(const char *s, size_t n, int32_t *out);
bool dray__parse_timestamp(const char *s, size_t n, dray_time_unit unit, int64_t *out);
/* dray__days_from_civil: days since 1970-01-01 of y-m-d (proleptic Gregorian). */
int64_t dray__days_from_civil(int64_t y, unsigned m, unsigned d);
void dray__civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
/* dray__format_value: row i of c as CSV text into buf (no quoting); returns the length or -1 (null). */
int dray__format_value(const dray_column *c, int64_t i, char *buf, size_t size);

/* Statistics of a column for predicate pushdown (row groups). */
typedef struct dray__col_stats {
    bool has_min_max;
    int64_t null_count; /* -1 unknown */
    int64_t rows;
    bool is_str;
    double min_f, max_f;
    const char *min_s, *max_s;
    size_t min_len, max_len;
} dray__col_stats;
/* A lookup of column statistics by name: false when unknown. */
typedef bool (*dray__stats_fn)(void *ctx, const char *column, dray__col_stats *out);
/* dray__expr_may_match: false only when the statistics prove no row can satisfy e. */
bool dray__expr_may_match(const dray_expr *e, dray__stats_fn fn, void *ctx);

/* dray__expr_eval_mask: evaluates a boolean expression into a bitmap of rows that are true. */
dray_status dray__expr_eval_mask(const dray_expr *e, const dray_table *t, uint8_t **mask,
                                 int64_t *count);

/* A bounds-checked reader over encoded bytes (the partition and plan codecs). */
typedef struct dray__rd {
    const uint8_t *p;
    size_t left;
} dray__rd;

/* dray__take: copies the next n bytes to out; false (nothing consumed) when fewer remain. */
static inline bool dray__take(dray__rd *r, void *out, size_t n)
{
    if (n > r->left)
        return false;
    if (n)
        memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

static inline bool dray__take_u64(dray__rd *r, uint64_t *v) { return dray__take(r, v, 8); }

#endif /* DRAY_FRAME_INTERNAL_H */
