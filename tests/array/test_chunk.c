/* The "array.chunk" value: wire round trip through the core codec for every dtype, and corrupt
 * encodings rejected with DRAY_EFORMAT. */
#include "util.h"

TEST(round_trip)
{
    for (int t = 0; t < DRAY__DTYPE_COUNT; t++) {
        dray_ndarray *a;
        ASSERT_OK(dray_ndarray_create((dray_dtype)t, 3, (int64_t[]){2, 3, 4}, &a));
        uint8_t *p = dray_ndarray_data(a);
        size_t bytes = 24 * dray_dtype_size((dray_dtype)t);
        for (size_t i = 0; i < bytes; i++)
            p[i] = t == DRAY_BOOL ? (uint8_t)(i % 2) : (uint8_t)(i * 37 + 5);
        dray_value v = dray_ndarray_to_value(a), back;
        void *buf;
        size_t len;
        ASSERT_OK(dray_value_encode(&v, &buf, &len));
        ASSERT_OK(dray_value_decode(buf, len, &back));
        dray_ndarray *b = dray_ndarray_from_value(&back);
        ASSERT_TRUE(b != NULL);
        ASSERT_EQ(dray_ndarray_dtype(b), t);
        ASSERT_EQ(dray_ndarray_ndim(b), 3);
        ASSERT_EQ(dray_ndarray_shape(b)[2], 4);
        ASSERT_TRUE(memcmp(dray_ndarray_cdata(b), p, bytes) == 0);
        /* every truncation fails cleanly */
        for (size_t cut = 0; cut < len; cut += 7) {
            dray_value bad;
            ASSERT_TRUE(dray_value_decode(buf, cut, &bad) != DRAY_OK);
        }
        dray_free(buf);
        dray_value_release(&back);
        dray_value_release(&v);
        dray_ndarray_release(a);
    }
}

TEST(corrupt)
{
    const dray_ext_type *t = dray_ext_type_find("array.chunk");
    ASSERT_TRUE(t != NULL);
    dray_ext_obj *obj;
    /* dtype 9 */
    uint32_t h1[2] = {9, 0};
    ASSERT_STATUS(t->decode(h1, sizeof(h1), &obj), DRAY_EFORMAT);
    /* ndim 1, shape 2^40, no data: refused before allocating */
    struct {
        uint32_t h[2];
        int64_t shape;
    } h2 = {{4, 1}, INT64_C(1) << 40};
    ASSERT_STATUS(t->decode(&h2, sizeof(h2), &obj), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "array.chunk");
    /* negative shape */
    h2.shape = -3;
    ASSERT_STATUS(t->decode(&h2, sizeof(h2), &obj), DRAY_EFORMAT);
    /* ndim 9 */
    uint32_t h3[2] = {4, 9};
    ASSERT_STATUS(t->decode(h3, sizeof(h3), &obj), DRAY_EFORMAT);
}

RUN_TESTS(T_(round_trip), T_(corrupt))
