/* The CSV reader's internal interface, used by the eager readers and by the frame's parallel tasks:
 * a plan (dialect, header, column types) made once from the first file, then any byte range of any
 * file parsed into a table independently. */
#ifndef DRAY_FRAME_CSV_H
#define DRAY_FRAME_CSV_H

#include "internal.h"

typedef struct dray__csv_plan {
    dray_ext_obj hdr; /* so a plan can travel as a task argument (see frame.c) */
    char delim, quote;
    uint8_t stop[256]; /* 1 for the bytes that end an unquoted field */
    bool header;
    dray_bad_lines bad;
    int nfields;      /* fields per record in the files */
    char **fields;    /* their names (from the header, or "c0", "c1", ...) */
    int *field_col;   /* field -> output column, or -1 when not in usecols */
    int ncols;        /* output columns */
    char **names;     /* output column names (borrowed from fields) */
    dray_col_type *types;
    dray_time_unit *units;
    char **na;        /* null markers */
    size_t *na_len;
    size_t n_na;
    uint64_t na_len_mask; /* bit l set when some marker has length l (< 64) */
    int64_t est_row_bytes;
} dray__csv_plan;

/* dray__csv_plan_create: reads the header and infers types from the start of `data` (a whole file
 * or a prefix of one), applying opts. On DRAY_OK *out is owned: dray__csv_plan_destroy(). */
dray_status dray__csv_plan_create(const char *name, const char *data, size_t len, bool complete,
                                  const dray_csv_opts *opts, dray__csv_plan **out);
void dray__csv_plan_destroy(dray__csv_plan *p);

/* dray__csv_plan_encode: the plan's bytes through `write` (the "frame.csv_plan" codec). */
dray_status dray__csv_plan_encode(const dray__csv_plan *p,
                                  dray_status (*write)(void *buf, const void *data, size_t len),
                                  void *buf);
/* dray__csv_plan_decode: a plan from untrusted bytes (DRAY_EFORMAT naming the fault); on DRAY_OK *out
 * is owned (its ext header not yet initialised). */
dray_status dray__csv_plan_decode(const void *data, size_t len, dray__csv_plan **out);

/* dray__csv_plan_schema: a table with the plan's output columns and no rows. */
dray_status dray__csv_plan_schema(const dray__csv_plan *p, dray_table **out);

/* dray__csv_count_quotes: quote characters in data[0..len). */
int64_t dray__csv_count_quotes(const char *data, size_t len, char quote);

/* dray__csv_parse_range: parses the records that start in [start, end) of the file `data[0..len)`
 * (the record that contains byte start-1 belongs to the previous range). `in_quote` is the parity
 * of the quote characters in data[0, start-1) (false for start 0). On DRAY_OK *out is an owned table and
 * *bad_rows (optional) counts skipped rows. */
dray_status dray__csv_parse_range(const dray__csv_plan *p, const char *name, const char *data,
                                  size_t len, size_t start, size_t end, bool in_quote,
                                  dray_table **out, int64_t *bad_rows);

/* dray__csv_map / dray__csv_unmap: a read-only mapping of a whole file (empty files allowed). */
dray_status dray__csv_map(const char *path, const char **data, size_t *len);
void dray__csv_unmap(const char *data, size_t len);

#endif /* DRAY_FRAME_CSV_H */
