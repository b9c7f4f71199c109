/* dray frames: columns in Arrow's memory layout, tables (one partition's rows), the Arrow C Data
 * Interface, a parallel CSV reader and writer, an expression language compiled to vectorised kernels,
 * and lazy partitioned frames whose partitions are tasks on the core runtime.
 *
 * Thread-safety: columns and tables are immutable once built and reference counted (atomically), so
 * they may be shared between threads freely. A dray_frame handle is used by one thread at a time.
 * Ownership: each declaration says what it takes, borrows or returns owned. A failed call takes
 * nothing and leaves its out-parameters untouched; dray_last_error() names the bad input.
 */
#ifndef DRAY_FRAME_H
#define DRAY_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dray/arrow_abi.h"
#include "dray/core.h"
#include "dray/parquet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Types ========================================================================================= */
typedef enum dray_col_type {
    DRAY_DT_BOOL = 0, /* bit-packed, Arrow "b" */
    DRAY_DT_INT8,
    DRAY_DT_INT16,
    DRAY_DT_INT32,
    DRAY_DT_INT64,
    DRAY_DT_UINT8,
    DRAY_DT_UINT16,
    DRAY_DT_UINT32,
    DRAY_DT_UINT64,
    DRAY_DT_FLOAT32,
    DRAY_DT_FLOAT64,
    DRAY_DT_UTF8,      /* int32 offsets + bytes, Arrow "u" */
    DRAY_DT_DATE32,    /* days since 1970-01-01, Arrow "tdD" */
    DRAY_DT_TIMESTAMP, /* int64 since the epoch in `unit`, Arrow "ts?:" */
    DRAY_DT_DICT,      /* int32 indices into a utf8 dictionary */
    DRAY__DT_COUNT
} dray_col_type;

typedef enum dray_time_unit {
    DRAY_TU_SECOND = 0,
    DRAY_TU_MILLI,
    DRAY_TU_MICRO, /* the default for parsed timestamps */
    DRAY_TU_NANO
} dray_time_unit;

/* dray_col_type_name: "int64", "utf8", ...; never NULL. */
DRAY_API const char *dray_col_type_name(dray_col_type t);

/* dray_col_type_parse: the type named `name` ("int64", "float64", "string"/"utf8", "bool", "date32",
 * "timestamp[us]", "dict", ...). Unknown names are DRAY_EINVAL naming them. */
DRAY_API dray_status dray_col_type_parse(const char *name, dray_col_type *type, dray_time_unit *unit);

/* A named, typed column of a schema (an explicit CSV schema, for instance). */
typedef struct dray_field {
    const char *name;
    dray_col_type type;
    dray_time_unit unit; /* timestamps only */
} dray_field;

/* ==== Columns ======================================================================================
 * An immutable, reference-counted column in Arrow layout: an optional validity bitmap (bit set =
 * valid, LSB first), then values (fixed width), bits (bool), int32 offsets + bytes (utf8) or int32
 * indices + a utf8 dictionary column (dict). */
typedef struct dray_column dray_column;

/* dray_column_from_values: a fixed-width column (every type but utf8 and dict) of `n` values copied
 * from `values` (n * width bytes; bool: one byte per value, 0 or not). `valid` (may be NULL: all
 * valid) has one byte per row, 0 = null. Borrows both. On DRAY_OK *out is owned:
 * dray_column_release(). */
DRAY_API dray_status dray_column_from_values(dray_col_type type, dray_time_unit unit, const void *values,
                                             const uint8_t *valid, int64_t n, dray_column **out);

/* dray_column_from_strings: a utf8 column (or dict with `dict` true) of `n` strings copied from
 * `s`; a NULL entry is a null. Borrows s. On DRAY_OK *out is owned. */
DRAY_API dray_status dray_column_from_strings(const char *const *s, int64_t n, bool dict,
                                              dray_column **out);

/* dray_column_retain / dray_column_release: counts on a column; release is NULL-safe. */
DRAY_API dray_column *dray_column_retain(dray_column *c);
DRAY_API void dray_column_release(dray_column *c);

/* Queries (all borrow c). */
DRAY_API dray_col_type dray_column_type(const dray_column *c);
DRAY_API dray_time_unit dray_column_unit(const dray_column *c);
DRAY_API int64_t dray_column_length(const dray_column *c);
DRAY_API int64_t dray_column_null_count(const dray_column *c);
/* dray_column_is_valid: false when row i is null. */
DRAY_API bool dray_column_is_valid(const dray_column *c, int64_t i);
/* dray_column_data: the values buffer (bits for bool, indices for dict), borrowed. */
DRAY_API const void *dray_column_data(const dray_column *c);
/* dray_column_validity: the validity bitmap, or NULL when no row is null; borrowed. */
DRAY_API const uint8_t *dray_column_validity(const dray_column *c);
/* dray_column_get_f64: row i of a numeric, bool, date or timestamp column as a double (NAN when
 * null or not numeric). */
DRAY_API double dray_column_get_f64(const dray_column *c, int64_t i);
/* dray_column_get_i64: row i of an integer, bool, date or timestamp column as int64 (0 when null). */
DRAY_API int64_t dray_column_get_i64(const dray_column *c, int64_t i);
/* dray_column_get_str: row i of a utf8 or dict column; *len gets its length. NULL when null.
 * Borrowed: not NUL-terminated. */
DRAY_API const char *dray_column_get_str(const dray_column *c, int64_t i, size_t *len);

/* ==== Tables =======================================================================================
 * An immutable, reference-counted set of named columns of equal length: one partition of a frame. */
typedef struct dray_table dray_table;

/* dray_table_create: a table of `n` columns named names[i]. Borrows names, retains the columns.
 * Unequal lengths or duplicate names are DRAY_EINVAL. On DRAY_OK *out is owned:
 * dray_table_release(). */
DRAY_API dray_status dray_table_create(const char *const *names, dray_column *const *cols, size_t n,
                                       dray_table **out);

DRAY_API dray_table *dray_table_retain(dray_table *t);
DRAY_API void dray_table_release(dray_table *t);

DRAY_API int64_t dray_table_num_rows(const dray_table *t);
DRAY_API size_t dray_table_num_columns(const dray_table *t);
/* dray_table_column_name / dray_table_column: borrowed, valid while t is. */
DRAY_API const char *dray_table_column_name(const dray_table *t, size_t i);
DRAY_API dray_column *dray_table_column(const dray_table *t, size_t i);
/* dray_table_find: index of column `name`, or -1. */
DRAY_API int dray_table_find(const dray_table *t, const char *name);
/* dray_table_nbytes: bytes held by the table's buffers. */
DRAY_API size_t dray_table_nbytes(const dray_table *t);

/* dray_table_select: a new table with the named columns, in that order (columns shared). Unknown
 * names are DRAY_EINVAL naming them. On DRAY_OK *out is owned. */
DRAY_API dray_status dray_table_select(const dray_table *t, const char *const *names, size_t n,
                                       dray_table **out);

/* dray_table_slice: rows [start, start+len) (clamped) as a new table. On DRAY_OK *out is owned. */
DRAY_API dray_status dray_table_slice(const dray_table *t, int64_t start, int64_t len,
                                      dray_table **out);

/* dray_table_concat: the rows of tables[0..n) one after another; schemas must match (names and
 * types; dict columns are concatenated as dict). On DRAY_OK *out is owned. */
DRAY_API dray_status dray_table_concat(dray_table *const *tables, size_t n, dray_table **out);

/* dray_table_take: rows idx[0..n) (each < num_rows) as a new table. On DRAY_OK *out is owned. */
DRAY_API dray_status dray_table_take(const dray_table *t, const int64_t *idx, int64_t n,
                                     dray_table **out);

/* dray_table_filter: the rows where expression `expr` (see below) is true (null counts as false).
 * On DRAY_OK *out is owned. */
DRAY_API dray_status dray_table_filter(const dray_table *t, const char *expr, dray_table **out);

/* dray_table_assign: t with a column `name` computed from `expr` added (or replaced). */
DRAY_API dray_status dray_table_assign(const dray_table *t, const char *name, const char *expr,
                                       dray_table **out);

/* dray_table_equal: same names, types and values (floats bitwise except NaN == NaN). */
DRAY_API bool dray_table_equal(const dray_table *a, const dray_table *b);

/* dray_table_print: writes the first `max_rows` rows as text to `f` (a FILE*). */
DRAY_API void dray_table_print(const dray_table *t, int64_t max_rows, void *f);

/* ==== Arrow C Data Interface ======================================================================= */

/* dray_table_export: fills *schema ("+s" with one child per column) and *array (struct of the
 * columns) without copying buffers. Borrows t (the exported array keeps its own count). The caller
 * owns both structs and calls each one's release once. */
DRAY_API dray_status dray_table_export(const dray_table *t, struct ArrowSchema *schema,
                                       struct ArrowArray *array);

/* dray_table_import: a table from a "+s" schema and array. Borrows *schema. Takes *array on DRAY_OK
 * (it is moved: array->release is set to NULL and the buffers are shared, not copied, where the layout
 * allows); on failure the caller still owns it. On DRAY_OK *out is owned. */
DRAY_API dray_status dray_table_import(const struct ArrowSchema *schema, struct ArrowArray *array,
                                       dray_table **out);

/* ==== Expressions ==================================================================================
 * A small language over a table's columns, compiled once and evaluated column at a time:
 *   literals 1, 2.5, 'text', true, false, null; column names (or `quoted names`);
 *   + - * / %  (int64 or float64), unary -;  == != < <= > >=;  and or not (three-valued);
 *   functions log exp sqrt abs floor ceil, is_null(x), is_not_null(x), startswith(s, 'p'),
 *   endswith(s, 'p'), contains(s, 'p'), len(s), int64(x), float64(x), string(x), date32(x),
 *   year(d) month(d) day(d) (dates and timestamps).
 * Comparisons of a utf8 or dict column with a string literal compare bytes. */
typedef struct dray_expr dray_expr;

/* dray_expr_compile: compiles `text` against the columns of `schema_like` (its rows are not read).
 * Syntax and type errors are DRAY_EINVAL naming the position. On DRAY_OK *out is owned:
 * dray_expr_destroy(). */
DRAY_API dray_status dray_expr_compile(const char *text, const dray_table *schema_like,
                                       dray_expr **out);

/* dray_expr_type: the type of the expression's result. */
DRAY_API dray_col_type dray_expr_type(const dray_expr *e);

/* dray_expr_eval: evaluates e on t (which must have the columns e was compiled against, by name).
 * On DRAY_OK *out is an owned column of num_rows(t) rows. */
DRAY_API dray_status dray_expr_eval(const dray_expr *e, const dray_table *t, dray_column **out);

DRAY_API void dray_expr_destroy(dray_expr *e);

/* ==== CSV ==========================================================================================*/
typedef enum dray_bad_lines {
    DRAY_BAD_LINES_ERROR = 0, /* fail naming file, line and column */
    DRAY_BAD_LINES_SKIP = 1   /* drop the row and count it */
} dray_bad_lines;

typedef struct dray_csv_opts {
    char delimiter;             /* ',' */
    char quote;                 /* '"'; a doubled quote inside quotes is one quote */
    bool header;                /* true: the first line names the columns */
    const dray_field *schema;   /* explicit types (by name; all columns when no header), or NULL */
    size_t n_schema;
    const char *const *usecols; /* columns to keep, or NULL for all */
    size_t n_usecols;
    const char *const *na_values; /* strings read as null; NULL: "", NA, N/A, NULL, null, NaN, nan */
    size_t n_na_values;
    dray_bad_lines bad_lines;
    size_t block_size;          /* bytes per partition (default 64 MiB) */
    size_t sample_bytes;        /* bytes of the first file used for type inference (default 1 MiB) */
} dray_csv_opts;

/* dray_csv_opts_init: the defaults above. */
DRAY_API void dray_csv_opts_init(dray_csv_opts *o);

/* dray_csv_read: reads one file (all of it, on the calling thread). Borrows path and opts. On DRAY_OK
 * *out is owned; *bad_rows (optional) gets the number of rows skipped. */
DRAY_API dray_status dray_csv_read(const char *path, const dray_csv_opts *opts, dray_table **out,
                                   int64_t *bad_rows);

/* dray_csv_read_buffer: the same for bytes in memory; `name` labels errors. */
DRAY_API dray_status dray_csv_read_buffer(const char *name, const char *data, size_t len,
                                          const dray_csv_opts *opts, dray_table **out,
                                          int64_t *bad_rows);

/* dray_csv_write: writes t to `path` (header, ',' separated, quoting fields that need it, nulls
 * empty). With append true, no header and rows are appended. */
DRAY_API dray_status dray_csv_write(const dray_table *t, const char *path, bool append);

/* dray_csv_gen: writes `files` files DIR/data-0.csv ... with `rows` rows in all, the seed's shape:
 * id int64 (0..rows-1), amount float64 (2 decimals, about 5% negative, 1% null), category (20
 * values "cat_00".."cat_19"), ts timestamp (one second apart from 2024-01-01). Deterministic for a
 * seed. Creates DIR. */
DRAY_API dray_status dray_csv_gen(const char *dir, int64_t rows, int files, uint64_t seed);

/* ==== Frames =======================================================================================
 * A lazy, partitioned table: a schema plus one graph node per partition on the core runtime.
 * Operations add nodes and return a new frame; nothing runs until compute, head or persist. Frames
 * derived from one another share their graph. */
typedef struct dray_frame dray_frame;

/* dray_frame_read_csv: a frame over every file matching `glob` (sorted by name), each split into
 * byte ranges of opts->block_size read in parallel (records are never broken between ranges).
 * Types come from opts->schema or are inferred on a sample of the first file. Reads only the
 * sample now. On DRAY_OK *out is owned: dray_frame_destroy(). */
DRAY_API dray_status dray_frame_read_csv(dray_runtime *rt, const char *glob, const dray_csv_opts *opts,
                                         dray_frame **out);

/* dray_frame_from_tables: a frame whose partitions are the given tables (retained). */
DRAY_API dray_status dray_frame_from_tables(dray_runtime *rt, dray_table *const *parts, size_t n,
                                            dray_frame **out);

DRAY_API void dray_frame_destroy(dray_frame *f);

/* dray_frame_num_partitions / dray_frame_schema: the schema is an empty table, borrowed. */
DRAY_API size_t dray_frame_num_partitions(const dray_frame *f);
DRAY_API const dray_table *dray_frame_schema(const dray_frame *f);

/* Lazy operations. Each borrows f and returns a new owned frame. */
DRAY_API dray_status dray_frame_select(const dray_frame *f, const char *const *names, size_t n,
                                       dray_frame **out);
DRAY_API dray_status dray_frame_filter(const dray_frame *f, const char *expr, dray_frame **out);
DRAY_API dray_status dray_frame_assign(const dray_frame *f, const char *name, const char *expr,
                                       dray_frame **out);

/* A partition callback for map_partitions: builds *out (owned) from `in` (borrowed). */
typedef dray_status (*dray_partition_fn)(const dray_table *in, void *arg, dray_table **out);
/* dray_frame_map_partitions: applies fn(part, arg) to every partition; `schema` (borrowed, rows
 * unused) is the result's schema, or NULL to run fn on an empty table to find it. `arg` is borrowed
 * and must outlive every compute of the result (C pointers: the embedded runtime only; on a cluster
 * the tasks fail with DRAY_EINVAL: use dray_frame_map_named). */
DRAY_API dray_status dray_frame_map_partitions(const dray_frame *f, dray_partition_fn fn, void *arg,
                                               const dray_table *schema, dray_frame **out);

/* dray_frame_map_named: map_partitions with a task function registered by name (DRAY_FUNCTION), so
 * that it also runs on a cluster, where nodes find functions by name. The function is called with
 * args[0] a partition (read it with dray_frame_part_table) and args[1] `arg` (borrowed here and
 * copied into the graph: any value the codec carries; NULL passes dray_null()), and sets *result
 * with dray_frame_part_result. `schema` (borrowed) is the result's, or NULL to run the function once
 * on an empty partition (as a task) to find it. An unknown name is DRAY_ENOTFOUND. */
DRAY_API dray_status dray_frame_map_named(const dray_frame *f, const char *fn_name,
                                          const dray_value *arg, const dray_table *schema,
                                          dray_frame **out);

/* dray_frame_part_table: the table of a partition value (borrowed from v), or NULL when v is not
 * one. For the functions of dray_frame_map_named. */
DRAY_API const dray_table *dray_frame_part_table(const dray_value *v);

/* dray_frame_part_result: *result becomes a partition value that takes t (also on failure), keeping
 * the count of skipped CSV rows of the input partition `in` (NULL: none). */
DRAY_API dray_status dray_frame_part_result(const dray_value *in, dray_table *t,
                                            dray_value *result);

/* dray_frame_compute: runs the graph and concatenates the partitions. On DRAY_OK *out is owned. */
DRAY_API dray_status dray_frame_compute(const dray_frame *f, dray_table **out);

/* dray_frame_head: the first n rows, computing partitions one at a time only until it has them. */
DRAY_API dray_status dray_frame_head(const dray_frame *f, int64_t n, dray_table **out);

/* dray_frame_persist: computes every partition and returns a frame over the results kept in the
 * object store, so later computations start from them. */
DRAY_API dray_status dray_frame_persist(const dray_frame *f, dray_frame **out);

/* dray_frame_count: the number of rows (computes). */
DRAY_API dray_status dray_frame_count(const dray_frame *f, int64_t *out);

/* dray_frame_bad_rows: rows skipped by DRAY_BAD_LINES_SKIP in the last compute of frames read from
 * CSV by this frame's graph. */
DRAY_API int64_t dray_frame_bad_rows(const dray_frame *f);

/* dray_frame_to_parquet: writes one Parquet file per partition, DIR/part-00000.parquet, ... (creating
 * DIR), each partition in its own task. `opts` NULL: snappy, dictionary strings, 1 Mi-row groups. */
DRAY_API dray_status dray_frame_to_parquet(const dray_frame *f, const char *dir,
                                           const dray_parquet_write_opts *opts);

typedef struct dray_parquet_read_opts {
    const char *const *columns; /* projection: the columns to read, or NULL for all */
    size_t ncolumns;
    const char *filter;         /* an expression: row groups whose statistics rule it out are
                                   skipped, and the rows read are filtered by it; NULL: none */
} dray_parquet_read_opts;

/* dray_frame_read_parquet: a frame with one partition per row group of every file matching `glob`
 * (sorted), reading only the projected columns and skipping row groups that cannot match
 * opts->filter (predicate pushdown on min/max/null-count statistics). Reads the footers now.
 * `opts` may be NULL. On DRAY_OK *out is owned. */
DRAY_API dray_status dray_frame_read_parquet(dray_runtime *rt, const char *glob,
                                             const dray_parquet_read_opts *opts, dray_frame **out);

/* dray_frame_last_skipped: row groups skipped by pushdown when this frame's graph was made by
 * dray_frame_read_parquet (0 otherwise). */
DRAY_API int64_t dray_frame_skipped_row_groups(const dray_frame *f);

/* dray_frame_to_csv: writes one file per partition, DIR/part-00000.csv, ... (creating DIR). */
DRAY_API dray_status dray_frame_to_csv(const dray_frame *f, const char *dir);

/* dray_frame_spill_to: shuffles (sort, join, drop_duplicates) built afterwards on f's graph (f and
 * every frame derived from it) write their buckets to Parquet files in `dir` (created) instead of
 * keeping them in memory, and each bucket's reader deletes its file: peak memory then follows the
 * tasks in flight, not the data. On a runtime with a memory_limit this is the default, into a
 * temporary directory under $TMPDIR. */
DRAY_API dray_status dray_frame_spill_to(dray_frame *f, const char *dir);

/* dray_frame_concat: the partitions of frames[0..n) one after another; same column names and
 * types. Frames from other graphs have their partitions started now (kept until the result goes). */
DRAY_API dray_status dray_frame_concat(dray_frame *const *frames, size_t n, dray_frame **out);

/* dray_frame_repartition: the same rows in `nparts` partitions, merging neighbours (fewer) or
 * splitting each partition evenly (more). Row order is kept. */
DRAY_API dray_status dray_frame_repartition(const dray_frame *f, size_t nparts, dray_frame **out);

/* dray_frame_sort: rows ordered by the `nby` columns (desc[i] true: descending; NULL: all
 * ascending), nulls last, stable. A sample sort: each partition is sampled, splitters picked, each
 * partition split by range and every range merged and sorted in its own task; the result keeps
 * the number of partitions and partition i holds the i-th range. */
DRAY_API dray_status dray_frame_sort(const dray_frame *f, const char *const *by, const bool *desc,
                                     size_t nby, dray_frame **out);

typedef enum dray_join_how {
    DRAY_JOIN_INNER = 0,
    DRAY_JOIN_LEFT = 1 /* unmatched left rows get nulls on the right */
} dray_join_how;

/* dray_frame_join: rows of `left` and `right` whose key columns (left_on[i] = right_on[i]) are equal;
 * null keys never match (SQL). The result has left's columns, then right's columns other than its
 * keys ("_right" appended to names that clash). A right side of one partition is broadcast to
 * every left partition; otherwise both sides are hash-partitioned into as many buckets as left has
 * partitions and joined bucket by bucket. */
DRAY_API dray_status dray_frame_join(const dray_frame *left, const dray_frame *right,
                                     const char *const *left_on, const char *const *right_on,
                                     size_t nkeys, dray_join_how how, dray_frame **out);

/* dray_frame_drop_duplicates: rows with distinct values in the `n` columns of `subset` (NULL, 0:
 * all columns), keeping each first occurrence; rows are hash-partitioned by those columns, so the
 * result's partitions hold disjoint keys (order kept within each). */
DRAY_API dray_status dray_frame_drop_duplicates(const dray_frame *f, const char *const *subset,
                                                size_t n, dray_frame **out);

/* dray_frame_describe: a table with a "stat" column (count, mean, std, min, max) and one float64
 * column per numeric column of f. */
DRAY_API dray_status dray_frame_describe(const dray_frame *f, dray_table **out);

/* Aggregations for groupby. */
typedef enum dray_agg {
    DRAY_AGG_SUM = 0,
    DRAY_AGG_MEAN,
    DRAY_AGG_COUNT, /* non-null values */
    DRAY_AGG_MIN,
    DRAY_AGG_MAX,
    DRAY_AGG_STD, /* sample standard deviation (ddof 1) */
    DRAY_AGG_NUNIQUE
} dray_agg;

typedef struct dray_agg_spec {
    const char *column; /* input column */
    dray_agg agg;
    const char *as;     /* output name; NULL: "<column>_<agg>" */
} dray_agg_spec;

/* dray_frame_groupby: groups by the `nkeys` key columns and computes the aggregations: a partial
 * aggregate per partition, combined pairwise in a tree (nunique: distinct (keys, column) rows
 * through a shuffle, counted by key). Null keys form their own group; NaN and nulls are left out of
 * the values. The result (keys then aggregates, sorted by key) is a table. On DRAY_OK *out is owned. */
DRAY_API dray_status dray_frame_groupby(const dray_frame *f, const char *const *keys, size_t nkeys,
                                        const dray_agg_spec *aggs, size_t naggs, dray_table **out);

/* dray_frame_value_counts: groupby column with a count, sorted by count descending (then key). */
DRAY_API dray_status dray_frame_value_counts(const dray_frame *f, const char *column,
                                             dray_table **out);

#ifdef __cplusplus
}
#endif
#endif /* DRAY_FRAME_H */
