/* Corrupt and truncated Parquet files: every truncation and many byte flips of a valid file give
 * DRAY_OK or a clear error naming the file, never a crash (ASan/UBSan builds check the "never"). */
#include "pq_test.h"

static uint8_t *valid_file(size_t *len, dray_parquet_codec codec, bool dict)
{
    struct ArrowSchema *s;
    struct ArrowArray *b;
    pqt_make(150, 3, 4, 10, &s, &b);
    char *path = pqt_tmp("valid.parquet");
    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.codec = codec;
    o.dictionary = dict;
    o.row_group_rows = 64;
    o.page_bytes = 256;
    pqt_write(path, s, b, &o);
    FILE *f = fopen(path, "rb");
    ASSERT_TRUE(f != NULL);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(*len);
    ASSERT_EQ(fread(data, 1, *len, f), *len);
    fclose(f);
    unlink(path);
    free(path);
    pqt_free(s, b);
    return data;
}

/* Opens and decodes everything; returns the first failure's status. */
static dray_status read_all(const uint8_t *data, size_t len)
{
    dray_parquet_file *f;
    dray_status st = dray_parquet_open_buffer(data, len, "corrupt.parquet", &f);
    if (st)
        return st;
    for (int g = 0; g < dray_parquet_num_row_groups(f) && !st; g++) {
        struct ArrowArray a;
        struct ArrowSchema s;
        st = dray_parquet_read_row_group(f, g, NULL, 0, &s, &a);
        if (!st) {
            a.release(&a);
            s.release(&s);
        }
        for (int c = 0; c < dray_parquet_num_columns(f); c++) {
            dray_parquet_stats ps;
            ASSERT_OK(dray_parquet_column_stats(f, g, c, &ps));
        }
    }
    dray_parquet_close(f);
    return st;
}

static void assert_clear_error(dray_status st)
{
    if (st == DRAY_OK)
        return;
    if (st != DRAY_EFORMAT && st != DRAY_EUNSUPPORTED && st != DRAY_ERANGE)
        TEST_FAIL_("unexpected status %d: %s", st, dray_last_error());
    ASSERT_CONTAINS(dray_last_error(), "corrupt.parquet");
}

TEST(truncations)
{
    size_t len;
    uint8_t *data = valid_file(&len, DRAY_PARQUET_SNAPPY, true);
    ASSERT_OK(read_all(data, len));
    /* every cut inside the footer and page headers near it, every 5th byte elsewhere */
    for (size_t cut = 0; cut < len; cut += cut + 3000 >= len ? 1 : 5) {
        uint8_t *copy = malloc(cut + 1); /* exact size so ASan sees any overread */
        memcpy(copy, data, cut);
        dray_status st = read_all(copy, cut);
        ASSERT_EQ(st, DRAY_EFORMAT);
        ASSERT_CONTAINS(dray_last_error(), "corrupt.parquet");
        free(copy);
    }
    free(data);
}

TEST(messages)
{
    size_t len;
    uint8_t *data = valid_file(&len, DRAY_PARQUET_NONE, false);
    ASSERT_STATUS(read_all(data, 5), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "too short");
    ASSERT_STATUS(read_all((const uint8_t *)"hello world, not parquet", 24), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "not a Parquet file");
    uint8_t *copy = malloc(len);
    memcpy(copy, data, len);
    copy[len - 8] = 0xff, copy[len - 7] = 0xff; /* footer length beyond the file */
    ASSERT_STATUS(read_all(copy, len), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "footer length");
    free(copy);
    free(data);
}

static void flips(dray_parquet_codec codec, bool dict)
{
    size_t len;
    uint8_t *data = valid_file(&len, codec, dict);
    uint8_t *copy = malloc(len);
    uint64_t st = 0x9e3779b97f4a7c15ull + (uint64_t)codec;
    int errors = 0;
    for (int round = 0; round < 1500; round++) {
        memcpy(copy, data, len);
        int nflip = 1 + round % 3;
        for (int k = 0; k < nflip; k++) {
            size_t pos = (size_t)(pqt_rand(&st) % len);
            /* half the rounds aim at the footer, where the metadata lives */
            if (round % 2)
                pos = len - 1 - (size_t)(pqt_rand(&st) % (len / 4 + 1));
            copy[pos] ^= (uint8_t)(1u << (pqt_rand(&st) % 8));
        }
        dray_status s = read_all(copy, len);
        assert_clear_error(s);
        errors += s != DRAY_OK;
    }
    ASSERT_GT(errors, 50); /* the flips did hit something */
    free(copy);
    free(data);
}

TEST(byte_flips)
{
    flips(DRAY_PARQUET_NONE, true);
    flips(DRAY_PARQUET_SNAPPY, false);
    flips(DRAY_PARQUET_ZSTD, true);
    flips(DRAY_PARQUET_GZIP, true);
    flips(DRAY_PARQUET_LZ4_RAW, false);
}

RUN_TESTS(T_(truncations), T_(messages), T_(byte_flips))
