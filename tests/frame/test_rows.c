/* Row helpers: the radix sort of one numeric key (negatives, -0.0, infinities, nulls, descending)
 * against qsort, and hashing/equality across tables of utf8 against dict columns. */
#include "dray/frame.h"
#include "frame/internal.h"
#include "test.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

TEST(radix_matches_qsort)
{
    enum { N = 20000 };
    static double v[N], ref[N];
    static uint8_t valid[N];
    static int64_t idx[N], iv[N];
    uint64_t s = 12345;
    int64_t nref = 0;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int kind = (int)(s >> 60);
        v[i] = kind == 0 ? -0.0 : kind == 1 ? 1.0 / 0.0 : kind == 2 ? -1.0 / 0.0
             : (double)(int64_t)(s >> 20) / 1e6 * (kind & 1 ? -1 : 1);
        valid[i] = kind != 3;
        if (valid[i])
            ref[nref++] = v[i] + 0.0;
        iv[i] = (int64_t)(s >> 33) - (1ll << 30);
    }
    qsort(ref, (size_t)nref, sizeof(double), cmp_double);
    dray_column *c, *ci;
    ASSERT_OK(dray_column_from_values(DRAY_DT_FLOAT64, 0, v, valid, N, &c));
    ASSERT_OK(dray_column_from_values(DRAY_DT_INT64, 0, iv, NULL, N, &ci));
    for (int desc = 0; desc < 2; desc++) {
        bool d = desc;
        for (int i = 0; i < N; i++)
            idx[i] = i;
        ASSERT_OK(dray__sort_rows(&c, 1, &d, idx, N));
        for (int64_t i = 0; i < nref; i++) {
            double got = dray_column_get_f64(c, idx[i]) + 0.0, want = ref[desc ? nref - 1 - i : i];
            if (got != want)
                TEST_FAIL_("row %lld: %g vs %g", (long long)i, got, want);
        }
        for (int64_t i = nref; i < N; i++)
            ASSERT_TRUE(!dray_column_is_valid(c, idx[i]));
        /* nulls keep their input order (stability) */
        for (int64_t i = nref + 1; i < N; i++)
            ASSERT_LT(idx[i - 1], idx[i]);
        for (int i = 0; i < N; i++)
            idx[i] = i;
        ASSERT_OK(dray__sort_rows(&ci, 1, &d, idx, N));
        for (int64_t i = 1; i < N; i++) {
            int64_t a = iv[idx[i - 1]], b = iv[idx[i]];
            ASSERT_TRUE(desc ? a >= b : a <= b);
            if (a == b)
                ASSERT_LT(idx[i - 1], idx[i]); /* stable */
        }
    }
    dray_column_release(c);
    dray_column_release(ci);
}

TEST(hash_across_tables)
{
    const char *a[4] = {"x", "yy", NULL, "zzzzzzzzzzz"}, *b[4] = {"zzzzzzzzzzz", "x", "yy", NULL};
    dray_column *u, *d;
    ASSERT_OK(dray_column_from_strings(a, 4, false, &u));
    ASSERT_OK(dray_column_from_strings(b, 4, true, &d));
    static const int match[4] = {1, 2, 3, 0}; /* a[i] equals b[match[i]] */
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(dray__row_hash(&u, 1, i, true), dray__row_hash(&d, 1, match[i], true));
        ASSERT_TRUE(dray__rows_equal(&u, i, &d, match[i], 1));
        ASSERT_TRUE(!dray__rows_equal(&u, i, &d, (match[i] + 1) % 4, 1));
    }
    dray_column_release(u);
    dray_column_release(d);
}

RUN_TESTS(T_(radix_matches_qsort), T_(hash_across_tables))
