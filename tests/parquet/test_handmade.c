/* A Parquet file assembled byte by byte (Thrift structs through the compact-protocol writer, page bodies
 * hand-encoded from Encodings.md) to reach reader paths neither our writer nor DuckDB produce: a
 * DELTA_BYTE_ARRAY page (spec example: axis, axle, babble, babyhood), v2 pages with uncompressed values
 * and nulls, a REQUIRED INT96 column, BYTE_STREAM_SPLIT doubles. */
#include "parquet/internal.h"
#include "pq_test.h"

static void page_header(pq_buf *b, int type, size_t size, int nv, int nulls, int enc, int def_len)
{
    int16_t last = 0, l2 = 0;
    dray__tc_fi32(b, &last, 1, type);
    dray__tc_fi32(b, &last, 2, (int64_t)size);
    dray__tc_fi32(b, &last, 3, (int64_t)size);
    if (type == PQ_PAGE_DATA) {
        dray__tc_field(b, &last, 5, TC_STRUCT);
        dray__tc_fi32(b, &l2, 1, nv);
        dray__tc_fi32(b, &l2, 2, enc);
        dray__tc_fi32(b, &l2, 3, PQ_ENC_RLE);
        dray__tc_fi32(b, &l2, 4, PQ_ENC_RLE);
    } else {
        dray__tc_field(b, &last, 8, TC_STRUCT);
        dray__tc_fi32(b, &l2, 1, nv);
        dray__tc_fi32(b, &l2, 2, nulls);
        dray__tc_fi32(b, &l2, 3, nv);
        dray__tc_fi32(b, &l2, 4, enc);
        dray__tc_fi32(b, &l2, 5, def_len);
        dray__tc_fi32(b, &l2, 6, 0);
        dray__tc_fbool(b, &l2, 7, false);
    }
    tc_stop(b);
    tc_stop(b);
}

typedef struct hm_col {
    const char *name;
    int type, repetition, converted;
    int64_t offset, size;
} hm_col;

static void column_chunk(pq_buf *m, const hm_col *c, int64_t rows)
{
    int16_t last = 0, l2 = 0;
    dray__tc_fi64(m, &last, 2, 0);
    dray__tc_field(m, &last, 3, TC_STRUCT);
    dray__tc_fi32(m, &l2, 1, c->type);
    dray__tc_field(m, &l2, 2, TC_LIST);
    dray__tc_list(m, TC_I32, 1);
    dray__tc_i64(m, PQ_ENC_PLAIN);
    dray__tc_field(m, &l2, 3, TC_LIST);
    dray__tc_list(m, TC_BINARY, 1);
    dray__tc_binary(m, c->name, strlen(c->name));
    dray__tc_fi32(m, &l2, 4, PQ_CODEC_NONE);
    dray__tc_fi64(m, &l2, 5, rows);
    dray__tc_fi64(m, &l2, 6, c->size);
    dray__tc_fi64(m, &l2, 7, c->size);
    dray__tc_fi64(m, &l2, 9, c->offset);
    tc_stop(m);
    tc_stop(m);
}

TEST(handmade_file)
{
    pq_buf f = {0};
    pq_buf_put(&f, "PAR1", 4);
    hm_col cols[3] = {{"s", PQ_BYTE_ARRAY, 1, PQ_CT_UTF8, 0, 0},
                      {"t", PQ_INT96, 0, PQ_CT_NONE, 0, 0},
                      {"f", PQ_DOUBLE, 1, PQ_CT_NONE, 0, 0}};

    /* column s: v2 page, rows valid 1,1,0,1,1; DELTA_BYTE_ARRAY of axis, axle, babble, babyhood */
    static const uint8_t s_body[] = {
        0x03, 0x1b, /* definition levels: one bit-packed group 11011 */
        0x80, 0x01, 0x04, 0x04, 0x00, 0x03, 3, 0, 0, 0, 0x44, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x80, 0x01, 0x04, 0x04, 0x08, 0x03, 3, 0, 0, 0, 0x70, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        'a', 'x', 'i', 's', 'l', 'e', 'b', 'a', 'b', 'b', 'l', 'e', 'y', 'h', 'o', 'o', 'd'};
    cols[0].offset = (int64_t)f.len;
    page_header(&f, PQ_PAGE_DATA_V2, sizeof(s_body), 5, 1, PQ_ENC_DELTA_BYTE_ARRAY, 2);
    pq_buf_put(&f, s_body, sizeof(s_body));
    cols[0].size = (int64_t)f.len - cols[0].offset;

    /* column t: REQUIRED INT96 (nanoseconds of day, Julian day), v1 PLAIN page */
    const struct {
        uint64_t nanos;
        uint32_t jday;
    } t_vals[5] = {{0, 2440588}, {1, 2440589}, {5000000000ull, 2440587},
                   {86399999999999ull, 2451545}, {7, 2440588}};
    pq_buf tb = {0};
    for (int i = 0; i < 5; i++) {
        pq_buf_put(&tb, &t_vals[i].nanos, 8);
        pq_buf_put(&tb, &t_vals[i].jday, 4);
    }
    cols[1].offset = (int64_t)f.len;
    page_header(&f, PQ_PAGE_DATA, tb.len, 5, 0, PQ_ENC_PLAIN, 0);
    pq_buf_put(&f, tb.data, tb.len);
    cols[1].size = (int64_t)f.len - cols[1].offset;

    /* column f: v2 page, rows valid 0,1,1,1,1; BYTE_STREAM_SPLIT of 1.5, -2.25, 1e300, 0.1 */
    const double f_vals[4] = {1.5, -2.25, 1e300, 0.1};
    pq_buf fb = {0};
    const uint8_t f_def[] = {0x03, 0x1e};
    pq_buf_put(&fb, f_def, 2);
    for (int byte = 0; byte < 8; byte++)
        for (int i = 0; i < 4; i++)
            pq_buf_byte(&fb, ((const uint8_t *)&f_vals[i])[byte]);
    cols[2].offset = (int64_t)f.len;
    page_header(&f, PQ_PAGE_DATA_V2, fb.len, 5, 1, PQ_ENC_BYTE_STREAM_SPLIT, 2);
    pq_buf_put(&f, fb.data, fb.len);
    cols[2].size = (int64_t)f.len - cols[2].offset;

    /* footer */
    pq_buf m = {0};
    int16_t last = 0, l2;
    dray__tc_fi32(&m, &last, 1, 2);
    dray__tc_field(&m, &last, 2, TC_LIST);
    dray__tc_list(&m, TC_STRUCT, 4);
    l2 = 0;
    dray__tc_fbin(&m, &l2, 4, "root", 4);
    dray__tc_fi32(&m, &l2, 5, 3);
    tc_stop(&m);
    for (int c = 0; c < 3; c++) {
        l2 = 0;
        dray__tc_fi32(&m, &l2, 1, cols[c].type);
        dray__tc_fi32(&m, &l2, 3, cols[c].repetition);
        dray__tc_fbin(&m, &l2, 4, cols[c].name, 1);
        if (cols[c].converted != PQ_CT_NONE)
            dray__tc_fi32(&m, &l2, 6, cols[c].converted);
        tc_stop(&m);
    }
    dray__tc_fi64(&m, &last, 3, 5);
    dray__tc_field(&m, &last, 4, TC_LIST);
    dray__tc_list(&m, TC_STRUCT, 1);
    l2 = 0;
    dray__tc_field(&m, &l2, 1, TC_LIST);
    dray__tc_list(&m, TC_STRUCT, 3);
    for (int c = 0; c < 3; c++)
        column_chunk(&m, &cols[c], 5);
    dray__tc_fi64(&m, &l2, 2, (int64_t)f.len);
    dray__tc_fi64(&m, &l2, 3, 5);
    tc_stop(&m);
    tc_stop(&m);
    pq_buf_put(&f, m.data, m.len);
    pq_buf_u32le(&f, (uint32_t)m.len);
    pq_buf_put(&f, "PAR1", 4);
    ASSERT_TRUE(!f.oom && !m.oom);

    dray_parquet_file *pf;
    ASSERT_OK(dray_parquet_open_buffer(f.data, f.len, "handmade.parquet", &pf));
    struct ArrowSchema s;
    struct ArrowArray a;
    ASSERT_OK(dray_parquet_read_row_group(pf, 0, NULL, 0, &s, &a));
    ASSERT_STREQ(s.children[0]->format, "u");
    ASSERT_STREQ(s.children[1]->format, "tsn:");
    ASSERT_STREQ(s.children[2]->format, "g");
    pqt_text t = {0};
    pqt_render_header(&t, &s);
    pqt_render_rows(&t, &s, &a, 0, a.length);
    /* strings as hex: axis, axle, null, babble, babyhood; INT96 as ns since 1970; doubles as bits */
    pqt_text want = {0};
    const char *hexs[5] = {"s61786973", "s61786c65", "N", "s626162626c65", "s62616279686f6f64"};
    const int64_t ns[5] = {0, 86400000000001LL, -86400000000000LL + 5000000000LL,
                           (2451545LL - 2440588LL) * 86400000000000LL + 86399999999999LL, 7};
    pqt_printf(&want, "s\tt\tf\n");
    for (int r = 0; r < 5; r++) {
        uint64_t bits;
        if (r > 0)
            memcpy(&bits, &f_vals[r - 1], 8);
        pqt_printf(&want, "%s\t%lld\t", hexs[r], (long long)ns[r]);
        if (r == 0)
            pqt_printf(&want, "N\n");
        else
            pqt_printf(&want, "d%llx\n", (unsigned long long)bits);
    }
    pqt_same_text(want.s, t.s, "hand-made file");
    ASSERT_EQ(a.children[0]->null_count, 1);
    ASSERT_EQ(a.children[1]->null_count, 0);
    a.release(&a);
    s.release(&s);
    dray_parquet_close(pf);
    free(t.s);
    free(want.s);
    dray__pq_buf_free(&f);
    dray__pq_buf_free(&m);
    dray__pq_buf_free(&tb);
    dray__pq_buf_free(&fb);
}

RUN_TESTS(T_(handmade_file))
