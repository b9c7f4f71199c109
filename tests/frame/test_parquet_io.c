/* Frames to and from Parquet: a round trip of every column type with nulls through to_parquet and
 * read_parquet, projection, and predicate pushdown skipping row groups whose statistics rule the
 * filter out (checked against the rows a full read filters). */
#include <unistd.h>

#include "dray/frame.h"
#include "test.h"

TEST(round_trip_pushdown)
{
    char dir[] = "/tmp/dray_fpq_XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    ASSERT_OK(dray_csv_gen(dir, 20000, 2, 5));
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    char pattern[256], out[64];
    snprintf(pattern, sizeof(pattern), "%s/data-*.csv", dir);
    snprintf(out, sizeof(out), "%s/pq", dir);
    dray_frame *f, *g, *h, *p;
    ASSERT_OK(dray_frame_read_csv(rt, pattern, NULL, &f));
    /* add a bool, a date and a dict column to cover more types */
    ASSERT_OK(dray_frame_assign(f, "big", "amount > 500", &g));
    ASSERT_OK(dray_frame_assign(g, "day", "date32(ts)", &h));
    dray_table *want, *got;
    ASSERT_OK(dray_frame_compute(h, &want));
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.row_group_rows = 1000;
    o.codec = DRAY_PARQUET_ZSTD;
    ASSERT_OK(dray_frame_to_parquet(h, out, &o));
    snprintf(pattern, sizeof(pattern), "%s/part-*.parquet", out);
    ASSERT_OK(dray_frame_read_parquet(rt, pattern, NULL, &p));
    ASSERT_EQ(dray_frame_num_partitions(p), 20);
    ASSERT_OK(dray_frame_compute(p, &got));
    if (!dray_table_equal(got, want)) {
        dray_table_print(want, 3, stderr);
        dray_table_print(got, 3, stderr);
        TEST_FAIL_("parquet round trip differs");
    }
    dray_table_release(got);
    /* ids are ascending, so `id >= 15500` rules out row groups 0..14 of 20 */
    const char *cols[2] = {"id", "amount"};
    dray_parquet_read_opts ro = {cols, 2, "id >= 15500 and amount > 0"};
    dray_frame *q;
    ASSERT_OK(dray_frame_read_parquet(rt, pattern, &ro, &q));
    ASSERT_EQ(dray_frame_skipped_row_groups(q), 15);
    ASSERT_OK(dray_frame_compute(q, &got));
    ASSERT_EQ(dray_table_num_columns(got), 2);
    int64_t n = 0;
    for (int64_t i = 0; i < dray_table_num_rows(want); i++)
        n += dray_column_get_i64(dray_table_column(want, 0), i) >= 15500 &&
             dray_column_is_valid(dray_table_column(want, 1), i) &&
             dray_column_get_f64(dray_table_column(want, 1), i) > 0;
    ASSERT_EQ(dray_table_num_rows(got), n);
    dray_table_release(got);
    dray_frame_destroy(q);
    /* a filter on a column outside the projection is refused, naming it */
    dray_parquet_read_opts bad = {cols, 2, "category == 'cat_01'"};
    ASSERT_STATUS(dray_frame_read_parquet(rt, pattern, &bad, &q), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "category");
    dray_table_release(want);
    dray_frame_destroy(p);
    dray_frame_destroy(h);
    dray_frame_destroy(g);
    dray_frame_destroy(f);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
}

RUN_TESTS(T_(round_trip_pushdown))
