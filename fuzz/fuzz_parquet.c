/* libFuzzer target of the Parquet reader: opens the input as a file image, reads its schema, every row
 * group (all columns, then a projection) and every column's statistics. Any crash or sanitizer report
 * is a bug; errors are fine. Corpus: fuzz/corpus/parquet/ (small files from our writer and DuckDB). */
#include <stddef.h>
#include <stdint.h>

#include "dray/parquet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dray_parquet_file *f;
    if (dray_parquet_open_buffer(data, size, "fuzz.parquet", &f) != DRAY_OK)
        return 0;
    struct ArrowSchema s;
    if (dray_parquet_schema(f, &s) == DRAY_OK)
        s.release(&s);
    int ncols = dray_parquet_num_columns(f);
    for (int g = 0; g < dray_parquet_num_row_groups(f); g++) {
        struct ArrowArray a;
        if (dray_parquet_read_row_group(f, g, NULL, 0, NULL, &a) == DRAY_OK)
            a.release(&a);
        if (ncols > 0) {
            int last = ncols - 1;
            if (dray_parquet_read_row_group(f, g, &last, 1, &s, &a) == DRAY_OK) {
                a.release(&a);
                s.release(&s);
            }
        }
        for (int c = 0; c < ncols; c++) {
            dray_parquet_stats st;
            (void)dray_parquet_column_stats(f, g, c, &st);
        }
    }
    dray_parquet_close(f);
    return 0;
}
