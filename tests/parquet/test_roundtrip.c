/* Parquet write then read with our own reader: every type, nulls, every codec, dictionary on/off and
 * its fallback, row groups, batch offsets, projection, and statistics against a naive computation. */
#include <math.h>

#include "pq_test.h"

static char *render_batch(struct ArrowSchema *s, struct ArrowArray *b)
{
    pqt_text t = {0};
    pqt_render_header(&t, s);
    pqt_render_rows(&t, s, b, 0, b->length);
    return t.s;
}

static void roundtrip(dray_parquet_codec codec, bool dict, int null_every, int64_t rows, int64_t rg)
{
    struct ArrowSchema *s;
    struct ArrowArray *b;
    pqt_make(rows, (uint64_t)rows + (uint64_t)codec, null_every, 50, &s, &b);
    char *path = pqt_tmp("rt.parquet");
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.codec = codec;
    o.dictionary = dict;
    o.row_group_rows = rg;
    o.page_bytes = 4096; /* several pages per chunk */
    pqt_write(path, s, b, &o);
    char *want = render_batch(s, b);
    char *got = pqt_render_file(path, NULL, 0);
    pqt_same_text(want, got, "round trip");
    dray_parquet_file *f;
    ASSERT_OK(dray_parquet_open(path, &f));
    ASSERT_EQ(dray_parquet_num_rows(f), rows);
    ASSERT_EQ(dray_parquet_num_row_groups(f), (rows + rg - 1) / rg);
    dray_parquet_close(f);
    free(want);
    free(got);
    unlink(path);
    free(path);
    pqt_free(s, b);
}

TEST(every_codec_with_nulls)
{
    roundtrip(DRAY_PARQUET_NONE, true, 5, 3000, 1000);
    roundtrip(DRAY_PARQUET_SNAPPY, true, 7, 3000, 1024);
    roundtrip(DRAY_PARQUET_GZIP, false, 3, 2000, 700);
    roundtrip(DRAY_PARQUET_ZSTD, true, 11, 2500, 2500);
    roundtrip(DRAY_PARQUET_LZ4_RAW, true, 2, 1800, 600);
}

TEST(no_nulls_and_all_nulls)
{
    roundtrip(DRAY_PARQUET_SNAPPY, true, 0, 5000, 4096);
    roundtrip(DRAY_PARQUET_NONE, false, 1, 300, 128); /* every value null */
}

TEST(empty_file)
{
    struct ArrowSchema *s;
    struct ArrowArray *b;
    pqt_make(0, 1, 0, 5, &s, &b);
    char *path = pqt_tmp("empty.parquet");
    dray_parquet_writer *w;
    ASSERT_OK(dray_parquet_writer_open(path, s, NULL, &w));
    ASSERT_OK(dray_parquet_writer_close(w));
    dray_parquet_file *f;
    ASSERT_OK(dray_parquet_open(path, &f));
    ASSERT_EQ(dray_parquet_num_rows(f), 0);
    ASSERT_EQ(dray_parquet_num_row_groups(f), 0);
    ASSERT_EQ(dray_parquet_num_columns(f), PQT_NCOLS);
    struct ArrowSchema fs;
    ASSERT_OK(dray_parquet_schema(f, &fs));
    ASSERT_EQ(fs.n_children, PQT_NCOLS);
    for (int c = 0; c < PQT_NCOLS; c++) {
        const char *want = strcmp(pqt_cols[c][0], "cat") == 0 ? "u" : pqt_cols[c][1];
        ASSERT_STREQ(fs.children[c]->format, want);
        ASSERT_STREQ(fs.children[c]->name, pqt_cols[c][0]);
    }
    fs.release(&fs);
    dray_parquet_close(f);
    unlink(path);
    free(path);
    pqt_free(s, b);
}

/* A batch with an offset, written in two batches: rows come back in order, sliced right. */
TEST(offsets_and_batches)
{
    struct ArrowSchema *s;
    struct ArrowArray *b;
    pqt_make(1000, 42, 4, 30, &s, &b);
    char *full = render_batch(s, b);
    char *path = pqt_tmp("off.parquet");
    dray_parquet_writer *w;
    ASSERT_OK(dray_parquet_writer_open(path, s, NULL, &w));
    b->offset = 3; /* odd offsets exercise unaligned validity bitmaps */
    b->length = 500;
    ASSERT_OK(dray_parquet_writer_write(w, b));
    b->offset = 503;
    b->length = 497;
    ASSERT_OK(dray_parquet_writer_write(w, b));
    ASSERT_OK(dray_parquet_writer_close(w));
    /* expected: rows 3..999 of the full rendering */
    const char *p = full;
    pqt_text want = {0};
    const char *nl = strchr(p, '\n');
    pqt_printf(&want, "%.*s\n", (int)(nl - p), p);
    p = nl + 1;
    for (int i = 0; i < 3; i++)
        p = strchr(p, '\n') + 1;
    pqt_printf(&want, "%s", p);
    char *got = pqt_render_file(path, NULL, 0);
    pqt_same_text(want.s, got, "offset batches");
    free(got);
    free(want.s);
    free(full);
    unlink(path);
    free(path);
    b->offset = 0;
    b->length = 1000;
    pqt_free(s, b);
}

TEST(projection)
{
    struct ArrowSchema *s;
    struct ArrowArray *b;
    pqt_make(777, 9, 6, 20, &s, &b);
    char *path = pqt_tmp("proj.parquet");
    pqt_write(path, s, b, NULL);
    int cols[] = {11, 3, 18};
    char *got = pqt_render_file(path, cols, 3);
    /* expected rendering from the source columns in that order */
    pqt_text want = {0};
    pqt_printf(&want, "str\ti64\tcat\n");
    for (int64_t r = 0; r < b->length; r++) {
        for (int k = 0; k < 3; k++) {
            if (k)
                pqt_printf(&want, "\t");
            pqt_render_cell(&want, s->children[cols[k]], b->children[cols[k]], r);
        }
        pqt_printf(&want, "\n");
    }
    pqt_same_text(want.s, got, "projection");
    dray_parquet_file *f;
    ASSERT_OK(dray_parquet_open(path, &f));
    ASSERT_EQ(dray_parquet_column_index(f, "cat"), 18);
    ASSERT_EQ(dray_parquet_column_index(f, "nope"), -1);
    ASSERT_STREQ(dray_parquet_column_name(f, 0), "i8");
    int bad = 99;
    struct ArrowArray a;
    ASSERT_STATUS(dray_parquet_read_row_group(f, 0, &bad, 1, NULL, &a), DRAY_EINVAL);
    ASSERT_STATUS(dray_parquet_read_row_group(f, 5, NULL, 0, NULL, &a), DRAY_EINVAL);
    dray_parquet_close(f);
    free(got);
    free(want.s);
    unlink(path);
    free(path);
    pqt_free(s, b);
}

/* Many distinct long strings: the dictionary outgrows its limit and the chunk falls back to PLAIN. */
TEST(dictionary_fallback)
{
    struct ArrowSchema *s;
    struct ArrowArray *b;
    pqt_make(4000, 5, 9, 1000000, &s, &b);
    char *path = pqt_tmp("fallback.parquet");
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.dictionary_max_bytes = 2000;
    pqt_write(path, s, b, &o);
    char *want = render_batch(s, b);
    char *got = pqt_render_file(path, NULL, 0);
    pqt_same_text(want, got, "dictionary fallback");
    free(want);
    free(got);
    unlink(path);
    free(path);
    pqt_free(s, b);
}

/* Statistics against a naive scan of the source values. */
TEST(statistics)
{
    struct ArrowSchema *s;
    struct ArrowArray *b;
    int64_t rows = 1500, rg = 600;
    pqt_make(rows, 77, 8, 40, &s, &b);
    char *path = pqt_tmp("stats.parquet");
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.row_group_rows = rg;
    pqt_write(path, s, b, &o);
    dray_parquet_file *f;
    ASSERT_OK(dray_parquet_open(path, &f));
    for (int g = 0; g < dray_parquet_num_row_groups(f); g++) {
        int64_t r0 = g * rg, r1 = r0 + dray_parquet_row_group_num_rows(f, g);
        for (int c = 0; c < PQT_NCOLS; c++) {
            const struct ArrowArray *a = b->children[c];
            const char *fmt = pqt_cols[c][1];
            bool is_s = strcmp(fmt, "u") == 0 || strcmp(fmt, "z") == 0 ||
                        strcmp(pqt_cols[c][0], "cat") == 0;
            dray_parquet_stats st;
            ASSERT_OK(dray_parquet_column_stats(f, g, c, &st));
            int64_t nulls = 0;
            bool any = false;
            int64_t imin = 0, imax = 0;
            uint64_t umin = 0, umax = 0;
            double fmin = 0, fmax = 0;
            const char *bmin = NULL, *bmax = NULL;
            int bmin_len = 0, bmax_len = 0;
            for (int64_t r = r0; r < r1; r++) {
                if (!pqt_valid(a, r)) {
                    nulls++;
                    continue;
                }
                if (is_s) {
                    const struct ArrowArray *sa = a->dictionary ? a->dictionary : a;
                    int64_t k = a->dictionary ? ((const int32_t *)a->buffers[1])[r] : r;
                    const int32_t *off = sa->buffers[1];
                    const char *p = (const char *)sa->buffers[2] + off[k];
                    int n = off[k + 1] - off[k];
                    if (!any || memcmp(p, bmin, (size_t)(n < bmin_len ? n : bmin_len)) < 0 ||
                        (memcmp(p, bmin, (size_t)(n < bmin_len ? n : bmin_len)) == 0 && n < bmin_len))
                        bmin = p, bmin_len = n;
                    if (!any || memcmp(p, bmax, (size_t)(n < bmax_len ? n : bmax_len)) > 0 ||
                        (memcmp(p, bmax, (size_t)(n < bmax_len ? n : bmax_len)) == 0 && n > bmax_len))
                        bmax = p, bmax_len = n;
                    any = true;
                    continue;
                }
                double x = 0;
                int64_t ix = 0;
                uint64_t ux = 0;
                switch (fmt[0]) {
                case 'c': ix = ((const int8_t *)a->buffers[1])[r]; break;
                case 's': ix = ((const int16_t *)a->buffers[1])[r]; break;
                case 'i': ix = ((const int32_t *)a->buffers[1])[r]; break;
                case 'l': ix = ((const int64_t *)a->buffers[1])[r]; break;
                case 'C': ux = ((const uint8_t *)a->buffers[1])[r]; break;
                case 'S': ux = ((const uint16_t *)a->buffers[1])[r]; break;
                case 'I': ux = ((const uint32_t *)a->buffers[1])[r]; break;
                case 'L': ux = ((const uint64_t *)a->buffers[1])[r]; break;
                case 'f': x = ((const float *)a->buffers[1])[r]; break;
                case 'g': x = ((const double *)a->buffers[1])[r]; break;
                case 'b': ix = ((const uint8_t *)a->buffers[1])[r >> 3] >> (r & 7) & 1; break;
                default: ix = fmt[1] == 'd' ? ((const int32_t *)a->buffers[1])[r]
                                            : ((const int64_t *)a->buffers[1])[r];
                }
                if ((fmt[0] == 'f' || fmt[0] == 'g') && isnan(x))
                    continue;
                if (!any) {
                    imin = imax = ix, umin = umax = ux, fmin = fmax = x;
                    any = true;
                }
                imin = ix < imin ? ix : imin, imax = ix > imax ? ix : imax;
                umin = ux < umin ? ux : umin, umax = ux > umax ? ux : umax;
                fmin = x < fmin ? x : fmin, fmax = x > fmax ? x : fmax;
            }
            ASSERT_EQ(st.null_count, nulls);
            ASSERT_EQ(st.has_min_max, any);
            if (!any)
                continue;
            if (is_s) {
                ASSERT_EQ(st.min_len, bmin_len);
                ASSERT_EQ(st.max_len, bmax_len);
                ASSERT_TRUE(memcmp(st.min_b, bmin, (size_t)bmin_len) == 0);
                ASSERT_TRUE(memcmp(st.max_b, bmax, (size_t)bmax_len) == 0);
            } else if (strchr("cslbti", fmt[0])) {
                ASSERT_EQ(st.min_i, imin);
                ASSERT_EQ(st.max_i, imax);
            } else if (strchr("CSIL", fmt[0])) {
                ASSERT_TRUE(st.min_u == umin);
                ASSERT_TRUE(st.max_u == umax);
            } else if (fmt[0] == 'f' || fmt[0] == 'g') {
                ASSERT_NEAR(st.min_f, fmin, 0);
                ASSERT_NEAR(st.max_f, fmax, 0);
            }
        }
    }
    dray_parquet_stats st;
    ASSERT_STATUS(dray_parquet_column_stats(f, 0, 99, &st), DRAY_EINVAL);
    dray_parquet_close(f);
    unlink(path);
    free(path);
    pqt_free(s, b);
}

TEST(bad_arguments)
{
    struct ArrowSchema *s;
    struct ArrowArray *b;
    pqt_make(10, 1, 0, 5, &s, &b);
    dray_parquet_writer *w;
    ASSERT_STATUS(dray_parquet_writer_open("/nonexistent-dir/x.parquet", s, NULL, &w), DRAY_EIO);
    ASSERT_CONTAINS(dray_last_error(), "/nonexistent-dir/x.parquet");
    /* an unsupported column type names the column */
    s->children[2]->format = "+l";
    char *path = pqt_tmp("bad.parquet");
    ASSERT_STATUS(dray_parquet_writer_open(path, s, NULL, &w), DRAY_EUNSUPPORTED);
    ASSERT_CONTAINS(dray_last_error(), "i32");
    s->children[2]->format = "i";
    /* a batch of the wrong width */
    ASSERT_OK(dray_parquet_writer_open(path, s, NULL, &w));
    b->n_children = 3;
    ASSERT_STATUS(dray_parquet_writer_write(w, b), DRAY_EINVAL);
    b->n_children = PQT_NCOLS;
    /* a column shorter than the batch (its own offset does not lengthen it) names the column */
    b->children[1]->length = 5;
    b->children[1]->offset = 5;
    ASSERT_STATUS(dray_parquet_writer_write(w, b), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "i16");
    b->children[1]->length = 10;
    b->children[1]->offset = 0;
    dray_parquet_writer_abort(w);
    ASSERT_TRUE(access(path, F_OK) != 0); /* abort removes the file */
    dray_parquet_file *f;
    ASSERT_STATUS(dray_parquet_open("/nonexistent-file.parquet", &f), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "/nonexistent-file.parquet");
    free(path);
    pqt_free(s, b);
}

RUN_TESTS(T_(every_codec_with_nulls), T_(no_nulls_and_all_nulls), T_(empty_file),
          T_(offsets_and_batches), T_(projection), T_(dictionary_fallback), T_(statistics),
          T_(bad_arguments))
