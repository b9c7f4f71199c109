/* dray parquet: a Parquet file writer and reader speaking the Arrow C Data Interface.
 *
 * A batch of rows is an ArrowArray of struct type ("+s") whose children are flat columns of these
 * formats: "c" "s" "i" "l" (int8..64), "C" "S" "I" "L" (uint8..64), "f" "g" (float32/64), "b" (bool),
 * "u" (utf8), "z" (binary), "tdD" (date32), "tss:" "tsm:" "tsu:" "tsn:" (timestamp, optional time
 * zone) and utf8 dictionaries (an integer index array whose `dictionary` is "u"). Nested Parquet
 * schemas are refused.
 *
 * Thread-safety: a writer is used by one thread at a time. A dray_parquet_file is immutable after
 * dray_parquet_open: any number of threads may read row groups and statistics of the same file at once.
 * Ownership: each declaration says what it borrows and what it returns owned. */
#ifndef DRAY_PARQUET_H
#define DRAY_PARQUET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dray/arrow_abi.h"
#include "dray/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Writing ==================================================================================== */

typedef enum dray_parquet_codec {
    DRAY_PARQUET_NONE = 0,
    DRAY_PARQUET_SNAPPY,
    DRAY_PARQUET_GZIP,
    DRAY_PARQUET_ZSTD,
    DRAY_PARQUET_LZ4_RAW, /* Parquet's LZ4_RAW (plain LZ4 blocks) */
} dray_parquet_codec;

typedef struct dray_parquet_write_opts {
    dray_parquet_codec codec; /* default DRAY_PARQUET_SNAPPY */
    int64_t row_group_rows;   /* rows per row group; default 1048576 */
    bool dictionary;          /* dictionary-encode string columns (default true); a column chunk whose
                                 dictionary outgrows dictionary_max_bytes falls back to PLAIN */
    int compression_level;    /* 0 = the codec's default */
    int64_t page_bytes;       /* target uncompressed data page size; default 1 MiB */
    int64_t dictionary_max_bytes; /* default 1 MiB */
} dray_parquet_write_opts;

typedef struct dray_parquet_writer dray_parquet_writer;

/* dray_parquet_write_opts_init: fills *o with the defaults above. */
DRAY_API void dray_parquet_write_opts_init(dray_parquet_write_opts *o);

/* dray_parquet_writer_open: creates (truncates) the file at `path` for batches of `schema` (a "+s"
 * schema of supported columns). Borrows path, schema and opts (NULL = defaults). An unsupported column
 * is DRAY_EUNSUPPORTED naming it; a file that cannot be created is DRAY_EIO. On DRAY_OK, *out is owned:
 * finish with dray_parquet_writer_close() or drop with dray_parquet_writer_abort(). */
DRAY_API dray_status dray_parquet_writer_open(const char *path, const struct ArrowSchema *schema,
                                              const dray_parquet_write_opts *opts,
                                              dray_parquet_writer **out);

/* dray_parquet_writer_write: appends the rows of `batch` (borrowed; a "+s" array matching the schema,
 * offsets honoured) in row groups of at most row_group_rows rows. A batch not matching the schema is
 * DRAY_EINVAL naming the column. After an error the writer can only be aborted. */
DRAY_API dray_status dray_parquet_writer_write(dray_parquet_writer *w, const struct ArrowArray *batch);

/* dray_parquet_writer_close: writes the footer, closes the file and frees w (also on failure). */
DRAY_API dray_status dray_parquet_writer_close(dray_parquet_writer *w);

/* dray_parquet_writer_abort: closes and deletes the unfinished file and frees w. NULL-safe. */
DRAY_API void dray_parquet_writer_abort(dray_parquet_writer *w);

/* ==== Reading ==================================================================================== */

typedef struct dray_parquet_file dray_parquet_file;

/* dray_parquet_open: maps the file at `path` and parses its footer. Borrows path. A file that is not
 * Parquet, truncated or corrupt is DRAY_EFORMAT naming the file and the fault; a nested schema is
 * DRAY_EUNSUPPORTED. On DRAY_OK, *out is owned: free with dray_parquet_close(). */
DRAY_API dray_status dray_parquet_open(const char *path, dray_parquet_file **out);

/* dray_parquet_open_buffer: the same on `len` bytes at `data`, borrowed for the file's lifetime; `name`
 * (borrowed, copied) is used in error messages. */
DRAY_API dray_status dray_parquet_open_buffer(const void *data, size_t len, const char *name,
                                              dray_parquet_file **out);

/* dray_parquet_close: unmaps and frees f. NULL-safe. */
DRAY_API void dray_parquet_close(dray_parquet_file *f);

/* dray_parquet_num_rows: rows in the file. */
DRAY_API int64_t dray_parquet_num_rows(const dray_parquet_file *f);

/* dray_parquet_num_row_groups: row groups in the file. */
DRAY_API int dray_parquet_num_row_groups(const dray_parquet_file *f);

/* dray_parquet_row_group_num_rows: rows in row group `rg`, or -1 when rg is out of range. */
DRAY_API int64_t dray_parquet_row_group_num_rows(const dray_parquet_file *f, int rg);

/* dray_parquet_num_columns: columns in the file. */
DRAY_API int dray_parquet_num_columns(const dray_parquet_file *f);

/* dray_parquet_column_name: name of column `col` (borrowed from f), or NULL when out of range. */
DRAY_API const char *dray_parquet_column_name(const dray_parquet_file *f, int col);

/* dray_parquet_column_index: the index of the column called `name`, or -1. */
DRAY_API int dray_parquet_column_index(const dray_parquet_file *f, const char *name);

/* dray_parquet_schema: the file's columns as a "+s" Arrow schema (all children nullable). On DRAY_OK,
 * *out is owned: call out->release(out). */
DRAY_API dray_status dray_parquet_schema(const dray_parquet_file *f, struct ArrowSchema *out);

/* Statistics of one column chunk, for predicate pushdown. Integers (also dates, timestamps in the
 * column's Arrow unit, bools as 0/1) fill min_i/max_i and min_f/max_f; uint64 fills min_u/max_u too;
 * floats fill min_f/max_f; strings fill min_b/max_b (borrowed from f). */
typedef struct dray_parquet_stats {
    bool has_min_max;
    int64_t null_count; /* -1 when the file does not say */
    double min_f, max_f;
    int64_t min_i, max_i;
    uint64_t min_u, max_u;
    const void *min_b, *max_b;
    size_t min_len, max_len;
} dray_parquet_stats;

/* dray_parquet_column_stats: statistics of column `col` in row group `rg`. has_min_max is false when
 * the file has no usable bounds (none written, all values null or NaN, or an ambiguous sort order). */
DRAY_API dray_status dray_parquet_column_stats(const dray_parquet_file *f, int rg, int col,
                                               dray_parquet_stats *out);

/* dray_parquet_read_row_group: decodes row group `rg`, only columns cols[0..ncols) in that order (cols
 * NULL = all), into a "+s" batch. Bad data is DRAY_EFORMAT naming file, row group and column. On
 * DRAY_OK, *schema_out (if not NULL) and *out are owned: call their release callbacks. */
DRAY_API dray_status dray_parquet_read_row_group(const dray_parquet_file *f, int rg, const int *cols,
                                                 size_t ncols, struct ArrowSchema *schema_out,
                                                 struct ArrowArray *out);

#ifdef __cplusplus
}
#endif
#endif /* DRAY_PARQUET_H */
