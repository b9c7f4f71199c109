/* The building blocks against hand-computed bytes: Thrift compact protocol fields, the RLE/bit-packed
 * hybrid (the example of Encodings.md and a naive reference decoder), and DELTA_BINARY_PACKED. */
#include "parquet/internal.h"
#include "test.h"

static void assert_bytes(const pq_buf *b, const uint8_t *want, size_t n)
{
    ASSERT_TRUE(!b->oom);
    ASSERT_EQ(b->len, n);
    for (size_t i = 0; i < n; i++)
        if (b->data[i] != want[i])
            TEST_FAIL_("byte %zu: 0x%02x vs want 0x%02x", i, b->data[i], want[i]);
}

TEST(compact_protocol_bytes)
{
    pq_buf b = {0};
    int16_t last = 0;
    dray__tc_fi32(&b, &last, 1, 3);        /* delta 1, type i32: 0x15, zigzag(3) = 6 */
    dray__tc_fi64(&b, &last, 3, -1);       /* delta 2, type i64: 0x26, zigzag(-1) = 1 */
    dray__tc_fbin(&b, &last, 4, "ab", 2);  /* 0x18, len 2, 'a' 'b' */
    dray__tc_fbool(&b, &last, 5, true);    /* 0x11 */
    dray__tc_fi32(&b, &last, 40, 300);     /* long form: type 0x05, zigzag(40) = 80, zigzag(300) = 600 */
    dray__tc_field(&b, &last, 41, TC_LIST);
    dray__tc_list(&b, TC_I32, 2);          /* 0x25 */
    dray__tc_i64(&b, 1);
    dray__tc_i64(&b, -2);
    tc_stop(&b);
    const uint8_t want[] = {0x15, 0x06, 0x26, 0x01, 0x18, 0x02, 'a', 'b', 0x11, 0x05, 0x50,
                            0xd8, 0x04, 0x19, 0x25, 0x02, 0x03, 0x00};
    assert_bytes(&b, want, sizeof(want));

    /* and back */
    pq_tr r = {b.data, b.data + b.len, NULL};
    int16_t l = 0, id;
    uint8_t t, et;
    ASSERT_TRUE(dray__tr_field(&r, &l, &id, &t));
    ASSERT_EQ(id, 1);
    ASSERT_EQ(dray__tr_int(&r, t), 3);
    ASSERT_TRUE(dray__tr_field(&r, &l, &id, &t));
    ASSERT_EQ(id, 3);
    ASSERT_EQ(dray__tr_int(&r, t), -1);
    ASSERT_TRUE(dray__tr_field(&r, &l, &id, &t));
    const uint8_t *p;
    size_t n;
    dray__tr_binary(&r, &p, &n);
    ASSERT_EQ(n, 2);
    ASSERT_TRUE(memcmp(p, "ab", 2) == 0);
    ASSERT_TRUE(dray__tr_field(&r, &l, &id, &t));
    ASSERT_TRUE(dray__tr_bool(&r, t));
    ASSERT_TRUE(dray__tr_field(&r, &l, &id, &t));
    ASSERT_EQ(id, 40);
    ASSERT_EQ(dray__tr_int(&r, t), 300);
    ASSERT_TRUE(dray__tr_field(&r, &l, &id, &t));
    ASSERT_EQ(id, 41);
    ASSERT_EQ(dray__tr_list(&r, t, &et), 2);
    ASSERT_EQ(et, TC_I32);
    ASSERT_EQ(dray__tr_int(&r, et), 1);
    ASSERT_EQ(dray__tr_int(&r, et), -2);
    ASSERT_TRUE(!dray__tr_field(&r, &l, &id, &t));
    ASSERT_TRUE(r.err == NULL);

    /* truncation and absurd lengths are errors, not reads past the end */
    for (size_t cut = 0; cut < b.len - 1; cut++) {
        pq_tr rc = {b.data, b.data + cut, NULL};
        int16_t lc = 0;
        dray__tr_skip(&rc, TC_STRUCT, 0);
        (void)lc;
        ASSERT_TRUE(rc.err != NULL);
    }
    const uint8_t huge[] = {0x19, 0xf5, 0xff, 0xff, 0xff, 0x0f};
    pq_tr rh = {huge, huge + sizeof(huge), NULL};
    dray__tr_skip(&rh, TC_STRUCT, 0);
    ASSERT_TRUE(rh.err != NULL);
    dray__pq_buf_free(&b);
}

/* Naive reference decoder of the hybrid, written straight from the spec's grammar. */
static void naive_rle(const uint8_t *p, int w, uint32_t *out, size_t n)
{
    size_t k = 0;
    while (k < n) {
        uint64_t h = 0;
        int sh = 0;
        uint8_t c;
        do {
            c = *p++;
            h |= (uint64_t)(c & 0x7f) << sh;
            sh += 7;
        } while (c & 0x80);
        if (h & 1) {
            size_t cnt = (size_t)(h >> 1) * 8;
            for (size_t i = 0; i < cnt; i++) {
                uint32_t v = 0;
                for (int bit = 0; bit < w; bit++) {
                    size_t pos = i * (size_t)w + (size_t)bit;
                    v |= (uint32_t)((p[pos / 8] >> (pos % 8)) & 1) << bit;
                }
                if (k < n)
                    out[k++] = v;
            }
            p += cnt * (size_t)w / 8;
        } else {
            uint32_t v = 0;
            for (int i = 0; i < (w + 7) / 8; i++)
                v |= (uint32_t)*p++ << (8 * i);
            for (size_t i = 0; i < (size_t)(h >> 1) && k < n; i++)
                out[k++] = v;
        }
    }
}

TEST(rle_hybrid)
{
    /* Encodings.md: 0..7 bit-packed at width 3 -> 10001000 11000110 11111010 */
    const uint8_t packed[] = {0x03, 0x88, 0xc6, 0xfa};
    uint32_t out[8];
    ASSERT_TRUE(dray__rle_decode(packed, sizeof(packed), 3, out, 8) == NULL);
    for (uint32_t i = 0; i < 8; i++)
        ASSERT_EQ(out[i], i);
    pq_buf b = {0};
    uint32_t seq[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    dray__rle_encode(&b, seq, 8, 3);
    assert_bytes(&b, packed, sizeof(packed));

    /* random runs and noise, all widths: our decoder and the naive one agree with the input */
    uint64_t st = 88172645463325252ull;
    for (int w = 0; w <= 32; w++) {
        size_t n = 1000 + (size_t)w * 37;
        uint32_t *v = malloc(n * 4), *d1 = malloc(n * 4), *d2 = malloc(n * 4);
        uint32_t mask = w == 32 ? 0xffffffffu : (1u << w) - 1;
        for (size_t i = 0; i < n;) {
            st ^= st << 13, st ^= st >> 7, st ^= st << 17;
            size_t run = st % 3 == 0 ? st % 40 + 1 : 1;
            for (size_t j = 0; j < run && i < n; j++)
                v[i++] = (uint32_t)(st >> 11) & mask;
        }
        b.len = 0;
        dray__rle_encode(&b, v, n, w);
        ASSERT_TRUE(!b.oom);
        ASSERT_TRUE(dray__rle_decode(b.data, b.len, w, d1, n) == NULL);
        naive_rle(b.data, w, d2, n);
        for (size_t i = 0; i < n; i++) {
            ASSERT_EQ(d1[i], v[i]);
            ASSERT_EQ(d2[i], v[i]);
        }
        /* truncated input is an error */
        if (b.len > 2)
            ASSERT_TRUE(dray__rle_decode(b.data, b.len / 2, w, d1, n) != NULL);
        free(v), free(d1), free(d2);
    }

    /* definition levels from a validity bitmap at an odd offset */
    uint8_t bits[4] = {0xb5, 0x0f, 0xf0, 0x5a};
    for (int off = 0; off < 8; off++) {
        b.len = 0;
        dray__rle_encode_bitmap(&b, bits, off, 21);
        uint32_t lv[21];
        ASSERT_TRUE(dray__rle_decode(b.data, b.len, 1, lv, 21) == NULL);
        uint8_t back[4] = {0};
        size_t ones;
        ASSERT_TRUE(dray__rle_decode_bitmap(b.data, b.len, back, 0, 21, &ones) == NULL);
        size_t want_ones = 0;
        for (int i = 0; i < 21; i++) {
            int bit = bits[(off + i) / 8] >> ((off + i) % 8) & 1;
            want_ones += (size_t)bit;
            ASSERT_EQ(lv[i], bit);
            ASSERT_EQ(back[i / 8] >> (i % 8) & 1, bit);
        }
        ASSERT_EQ(ones, want_ones);
    }
    dray__pq_buf_free(&b);
}

/* DELTA_BINARY_PACKED, hand-encoded: values 0, 2, 0, 3 (deltas 2,-2,3; min delta -2; width 3). */
TEST(delta_binary_packed)
{
    uint8_t enc[] = {0x80, 0x01, 0x04, 0x04, 0x00, /* block 128, 4 miniblocks, 4 values, first 0 */
                     0x03, 3, 0, 0, 0,             /* min delta -2, widths */
                     0x44, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}; /* 4,0,5 at 3 bits, 32 slots */
    uint64_t out[4];
    size_t used;
    ASSERT_TRUE(dray__delta_decode(enc, sizeof(enc), out, 4, &used) == NULL);
    ASSERT_EQ(used, sizeof(enc));
    ASSERT_EQ(out[0], 0);
    ASSERT_EQ(out[1], 2);
    ASSERT_EQ(out[2], 0);
    ASSERT_EQ(out[3], 3);
    /* cut short: an error, never a read past the end */
    for (size_t cut = 0; cut < 11; cut++)
        ASSERT_TRUE(dray__delta_decode(enc, cut, out, 4, &used) != NULL);
    /* a bad block size */
    uint8_t bad[] = {0x81, 0x01, 0x04, 0x04, 0x00};
    ASSERT_TRUE(dray__delta_decode(bad, sizeof(bad), out, 4, &used) != NULL);
}

RUN_TESTS(T_(compact_protocol_bytes), T_(rle_hybrid), T_(delta_binary_packed))
