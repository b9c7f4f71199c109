/* Columns, tables and the Arrow C Data Interface: construction, queries, take/slice/concat, and an
 * export -> import round trip of every type with nulls, checked value by value against the inputs. */
#include "dray/frame.h"
#include "test.h"

/* all_types: a 5-row table of every column type, with nulls at rows 1 and 3 in most columns. */
static dray_table *all_types(void)
{
    static const char *const names[] = {"b", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64",
                                        "f32", "f64", "s", "d", "ts", "cat"};
    uint8_t valid[5] = {1, 0, 1, 0, 1};
    uint8_t bools[5] = {1, 0, 0, 1, 1};
    int8_t i8[5] = {-128, 0, 5, 0, 127};
    int16_t i16[5] = {-32768, 0, 7, 0, 32767};
    int32_t i32[5] = {INT32_MIN, 0, 9, 0, INT32_MAX};
    int64_t i64[5] = {INT64_MIN, 0, -11, 0, INT64_MAX};
    uint8_t u8[5] = {0, 0, 200, 0, 255};
    uint16_t u16[5] = {0, 0, 60000, 0, 65535};
    uint32_t u32[5] = {0, 0, 4000000000u, 0, UINT32_MAX};
    uint64_t u64[5] = {0, 0, 1ull << 63, 0, UINT64_MAX};
    float f32[5] = {1.5f, 0, -2.25f, 0, 1e30f};
    double f64[5] = {0.1, 0, -1e300, 0, 3.5};
    int32_t d[5] = {0, 0, 19000, 0, -1};
    int64_t ts[5] = {0, 0, 1700000000123456, 0, -5};
    const char *s[5] = {"", NULL, "héllo", NULL, "a,b\"c"};
    const char *cat[5] = {"x", "y", NULL, "x", "y"};
    dray_column *c[15];
    ASSERT_OK(dray_column_from_values(DRAY_DT_BOOL, 0, bools, valid, 5, &c[0]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_INT8, 0, i8, valid, 5, &c[1]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_INT16, 0, i16, valid, 5, &c[2]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_INT32, 0, i32, valid, 5, &c[3]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_INT64, 0, i64, NULL, 5, &c[4]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_UINT8, 0, u8, valid, 5, &c[5]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_UINT16, 0, u16, valid, 5, &c[6]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_UINT32, 0, u32, valid, 5, &c[7]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_UINT64, 0, u64, valid, 5, &c[8]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_FLOAT32, 0, f32, valid, 5, &c[9]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_FLOAT64, 0, f64, valid, 5, &c[10]));
    ASSERT_OK(dray_column_from_strings(s, 5, false, &c[11]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_DATE32, 0, d, valid, 5, &c[12]));
    ASSERT_OK(dray_column_from_values(DRAY_DT_TIMESTAMP, DRAY_TU_MICRO, ts, valid, 5, &c[13]));
    ASSERT_OK(dray_column_from_strings(cat, 5, true, &c[14]));
    dray_table *t;
    ASSERT_OK(dray_table_create(names, c, 15, &t));
    for (int i = 0; i < 15; i++)
        dray_column_release(c[i]);
    return t;
}

TEST(column_values)
{
    dray_table *t = all_types();
    ASSERT_EQ(dray_table_num_rows(t), 5);
    ASSERT_EQ(dray_table_num_columns(t), 15);
    dray_column *b = dray_table_column(t, 0);
    ASSERT_EQ(dray_column_null_count(b), 2);
    ASSERT_EQ(dray_column_get_i64(b, 0), 1);
    ASSERT_EQ(dray_column_get_i64(b, 2), 0);
    ASSERT_EQ(dray_column_get_i64(b, 4), 1);
    /* bool is bit-packed, LSB first: rows 0, 3, 4 set */
    ASSERT_EQ(((const uint8_t *)dray_column_data(b))[0] & 0x1f, 0x19);
    ASSERT_EQ(dray_column_validity(b)[0] & 0x1f, 0x15);
    ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 4), 0), INT64_MIN);
    ASSERT_EQ(dray_column_null_count(dray_table_column(t, 4)), 0);
    ASSERT_TRUE(dray_column_validity(dray_table_column(t, 4)) == NULL);
    ASSERT_NEAR(dray_column_get_f64(dray_table_column(t, 9), 2), -2.25, 0);
    size_t l;
    const char *s = dray_column_get_str(dray_table_column(t, 11), 2, &l);
    ASSERT_EQ(l, 6);
    ASSERT_TRUE(!memcmp(s, "héllo", 6));
    ASSERT_TRUE(dray_column_get_str(dray_table_column(t, 11), 1, &l) == NULL);
    dray_column *cat = dray_table_column(t, 14);
    ASSERT_EQ(dray_column_type(cat), DRAY_DT_DICT);
    const int32_t *idx = dray_column_data(cat);
    ASSERT_EQ(idx[0], idx[3]);
    ASSERT_NE(idx[0], idx[1]);
    s = dray_column_get_str(cat, 4, &l);
    ASSERT_TRUE(l == 1 && s[0] == 'y');
    ASSERT_EQ(dray_column_null_count(cat), 1);
    ASSERT_EQ(dray_table_find(t, "ts"), 13);
    ASSERT_EQ(dray_table_find(t, "nope"), -1);
    dray_table_release(t);
}

TEST(table_errors)
{
    int64_t v[3] = {1, 2, 3};
    dray_column *a, *b;
    ASSERT_OK(dray_column_from_values(DRAY_DT_INT64, 0, v, NULL, 3, &a));
    ASSERT_OK(dray_column_from_values(DRAY_DT_INT64, 0, v, NULL, 2, &b));
    dray_column *cols[2] = {a, b};
    const char *names[2] = {"a", "b"};
    dray_table *t;
    ASSERT_STATUS(dray_table_create(names, cols, 2, &t), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "'b' has 2 rows");
    cols[1] = a;
    names[1] = "a";
    ASSERT_STATUS(dray_table_create(names, cols, 2, &t), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "duplicate column name 'a'");
    ASSERT_STATUS(dray_column_from_values(DRAY_DT_UTF8, 0, v, NULL, 3, &b), DRAY_EINVAL);
    dray_column_release(a);
    dray_column_release(b);
}

TEST(take_slice_concat)
{
    dray_table *t = all_types(), *s, *u, *k;
    ASSERT_OK(dray_table_slice(t, 1, 3, &s));
    ASSERT_EQ(dray_table_num_rows(s), 3);
    int64_t idx[5] = {1, 2, 3, 0, 4};
    dray_table *parts[3] = {NULL, NULL, NULL};
    ASSERT_OK(dray_table_slice(t, 0, 1, &parts[0]));
    parts[1] = dray_table_retain(s);
    ASSERT_OK(dray_table_slice(t, 4, 100, &parts[2]));
    ASSERT_OK(dray_table_concat(parts, 3, &u));
    ASSERT_TRUE(dray_table_equal(u, t));
    ASSERT_OK(dray_table_take(t, idx, 5, &k));
    ASSERT_TRUE(!dray_table_equal(k, t));
    /* take row by row equals the reference rows */
    for (size_t c = 0; c < dray_table_num_columns(t); c++) {
        dray_column *x = dray_table_column(t, c), *y = dray_table_column(k, c);
        for (int i = 0; i < 5; i++) {
            ASSERT_EQ(dray_column_is_valid(y, i), dray_column_is_valid(x, idx[i]));
            if (dray_column_type(x) != DRAY_DT_UTF8 && dray_column_type(x) != DRAY_DT_DICT)
                ASSERT_EQ(dray_column_get_i64(y, i), dray_column_get_i64(x, idx[i]));
        }
    }
    /* dict columns with different dictionaries concatenate through their strings */
    const char *a1[2] = {"p", "q"}, *a2[2] = {"q", NULL};
    dray_column *d1, *d2;
    ASSERT_OK(dray_column_from_strings(a1, 2, true, &d1));
    ASSERT_OK(dray_column_from_strings(a2, 2, true, &d2));
    const char *nm[1] = {"k"};
    dray_table *t1, *t2, *t12;
    ASSERT_OK(dray_table_create(nm, &d1, 1, &t1));
    ASSERT_OK(dray_table_create(nm, &d2, 1, &t2));
    dray_table *pp[2] = {t1, t2};
    ASSERT_OK(dray_table_concat(pp, 2, &t12));
    dray_column *c = dray_table_column(t12, 0);
    size_t l;
    ASSERT_EQ(dray_column_type(c), DRAY_DT_DICT);
    ASSERT_TRUE(!memcmp(dray_column_get_str(c, 2, &l), "q", 1));
    ASSERT_TRUE(dray_column_get_str(c, 3, &l) == NULL);
    dray_column_release(d1);
    dray_column_release(d2);
    dray_table_release(t1);
    dray_table_release(t2);
    dray_table_release(t12);
    for (int i = 0; i < 3; i++)
        dray_table_release(parts[i]);
    dray_table_release(s);
    dray_table_release(u);
    dray_table_release(k);
    dray_table_release(t);
}

TEST(arrow_round_trip)
{
    dray_table *t = all_types(), *back;
    struct ArrowSchema s;
    struct ArrowArray a;
    ASSERT_OK(dray_table_export(t, &s, &a));
    ASSERT_STREQ(s.format, "+s");
    ASSERT_EQ(s.n_children, 15);
    ASSERT_EQ(a.n_children, 15);
    ASSERT_EQ(a.length, 5);
    static const char *const formats[15] = {"b", "c", "s", "i", "l", "C", "S", "I", "L",
                                            "f", "g", "u", "tdD", "tsu:", "i"};
    for (int i = 0; i < 15; i++)
        ASSERT_STREQ(s.children[i]->format, formats[i]);
    ASSERT_STREQ(s.children[14]->dictionary->format, "u");
    ASSERT_STREQ(s.children[11]->name, "s");
    ASSERT_EQ(a.children[0]->null_count, 2);
    ASSERT_EQ(a.children[11]->n_buffers, 3);
    /* the string buffer is shared, not copied */
    const void *chars = a.children[11]->buffers[2];
    ASSERT_OK(dray_table_import(&s, &a, &back));
    ASSERT_TRUE(a.release == NULL);
    ASSERT_TRUE(dray_table_equal(t, back));
    size_t l;
    ASSERT_TRUE(dray_column_get_str(dray_table_column(back, 11), 2, &l) == (const char *)chars);
    s.release(&s);
    /* the original can go first: the import keeps the exported columns alive */
    dray_table_release(t);
    ASSERT_EQ(dray_column_get_i64(dray_table_column(back, 4), 4), INT64_MAX);
    dray_table_release(back);
}

/* A hand-made producer with offsets: a sliced bool column with nulls (bit offset 3) and a utf8
 * column whose offsets start past zero. */
static int released;
static void hand_release(struct ArrowArray *a)
{
    released++;
    a->release = NULL;
}
static void hand_child_release(struct ArrowArray *a) { a->release = NULL; }

TEST(arrow_import_offsets)
{
    uint8_t bits[2] = {0xA8, 0x01}; /* bits 3,5,7,8 */
    uint8_t valid[2] = {0xF8, 0x00}; /* rows 3..7 valid */
    const void *bbufs[2] = {valid, bits};
    int32_t offs[6] = {0, 2, 5, 5, 9, 10};
    const char chars[] = "abcdeXYZWq";
    const void *sbufs[3] = {NULL, offs, chars};
    struct ArrowArray cb = {5, 1, 3, 2, 0, bbufs, NULL, NULL, hand_child_release, NULL};
    struct ArrowArray cs = {5, 0, 0, 3, 0, sbufs, NULL, NULL, hand_child_release, NULL};
    struct ArrowArray *kids[2] = {&cb, &cs};
    const void *pbufs[1] = {NULL};
    struct ArrowArray arr = {2, 0, 1, 1, 2, pbufs, kids, NULL, hand_release, NULL};
    struct ArrowSchema sb = {"b", "flag", NULL, 2, 0, NULL, NULL, NULL, NULL};
    struct ArrowSchema ss = {"u", "txt", NULL, 2, 0, NULL, NULL, NULL, NULL};
    struct ArrowSchema *skids[2] = {&sb, &ss};
    struct ArrowSchema sch = {"+s", "", NULL, 0, 2, skids, NULL, NULL, NULL};
    dray_table *t;
    released = 0;
    ASSERT_OK(dray_table_import(&sch, &arr, &t));
    ASSERT_EQ(dray_table_num_rows(t), 2);
    /* struct offset 1 + child offset 3: bool rows 4, 5 of the bitmap */
    dray_column *b = dray_table_column(t, 0);
    ASSERT_TRUE(dray_column_is_valid(b, 0));
    ASSERT_EQ(dray_column_get_i64(b, 0), 0);
    ASSERT_EQ(dray_column_get_i64(b, 1), 1);
    size_t l;
    const char *s = dray_column_get_str(dray_table_column(t, 1), 0, &l);
    ASSERT_TRUE(l == 3 && !memcmp(s, "cde", 3));
    s = dray_column_get_str(dray_table_column(t, 1), 1, &l);
    ASSERT_EQ(l, 0);
    ASSERT_EQ(released, 0);
    dray_table_release(t);
    ASSERT_EQ(released, 1);
    /* malformed: wrong buffer count, unsupported format */
    arr.release = hand_release;
    cs.n_buffers = 2;
    ASSERT_STATUS(dray_table_import(&sch, &arr, &t), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "txt");
    ASSERT_TRUE(arr.release != NULL);
    cs.n_buffers = 3;
    ss.format = "+l";
    ASSERT_STATUS(dray_table_import(&sch, &arr, &t), DRAY_EUNSUPPORTED);
    ASSERT_EQ(released, 1);
}

RUN_TESTS(T_(column_values), T_(table_errors), T_(take_slice_concat), T_(arrow_round_trip),
          T_(arrow_import_offsets))
