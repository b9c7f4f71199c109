/* The counter-based generator: vector and scalar paths agree bit for bit, values depend only on
 * (seed, index) whatever the chunking, distributions look right, and big sums stay accurate. */
#include "array/internal.h"
#include "util.h"

/* The portable AES round against FIPS-197 Appendix B (AES-128 of its example block). */
TEST(aes_known_answer)
{
    uint8_t key[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                       0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
    uint8_t s[16] = {0x32, 0x43, 0xf6, 0xa8, 0x88, 0x5a, 0x30, 0x8d,
                     0x31, 0x31, 0x98, 0xa2, 0xe0, 0x37, 0x07, 0x34};
    const uint8_t want[16] = {0x39, 0x25, 0x84, 0x1d, 0x02, 0xdc, 0x09, 0xfb,
                              0xdc, 0x11, 0x85, 0x97, 0x19, 0x6a, 0x0b, 0x32};
    /* FIPS-197 key expansion (its own S-box use goes through a round on a zero state) */
    uint8_t w[176], rcon = 1;
    memcpy(w, key, 16);
    for (int i = 16; i < 176; i += 4) {
        uint8_t t[4] = {w[i - 4], w[i - 3], w[i - 2], w[i - 1]};
        if (i % 16 == 0) {
            /* SubWord(RotWord(t)) ^ rcon: the S-box via a last round on a state holding t */
            uint8_t st[16] = {0}, zero[16] = {0};
            st[0] = t[1], st[5] = t[2], st[10] = t[3], st[15] = t[0];
            dray__aes_round(st, zero, false); /* ShiftRows moves them back to column 0 */
            t[0] = st[0] ^ rcon, t[1] = st[1], t[2] = st[2], t[3] = st[3];
            rcon = (uint8_t)((rcon << 1) ^ ((rcon >> 7) * 0x1b));
        }
        for (int j = 0; j < 4; j++)
            w[i + j] = w[i - 16 + j] ^ t[j];
    }
    for (int i = 0; i < 16; i++)
        s[i] ^= w[i];
    for (int r = 1; r <= 10; r++)
        dray__aes_round(s, w + 16 * r, r < 10);
    ASSERT_TRUE(memcmp(s, want, 16) == 0);
}

/* The portable path gives the same bits as the hardware path (when this CPU has AES-NI). */
TEST(portable_matches_hardware)
{
    /* whole runs through each path, odd start and odd length */
    dray__rng_key hw, sw, ni;
    dray__rng_key_init(&hw, 31337, 0);
    sw = hw;
    sw.impl = 0;
    ni = hw;
    ni.impl = hw.impl >= 1 ? 1 : 0;
    double a[1001], b[1001], c[1001];
    dray__rng_uniform_fill(&hw, 77, a, 1001);
    dray__rng_uniform_fill(&sw, 77, b, 1001);
    dray__rng_uniform_fill(&ni, 77, c, 1001);
    ASSERT_TRUE(memcmp(a, b, sizeof(a)) == 0);
    ASSERT_TRUE(memcmp(a, c, sizeof(a)) == 0);
    for (uint64_t seed = 0; seed < 20; seed++) {
        dray__rng_key k;
        dray__rng_key_init(&k, seed * 7919, (uint32_t)(seed % 3));
        if (k.impl == 0)
            return;
        for (uint64_t b = 0; b < 50; b++) {
            uint64_t blk = b * 0x9e3779b97f4a7c15ULL >> (1 + seed % 40), soft[2];
            dray__rng_soft_block(&k, blk, soft);
            ASSERT_TRUE(soft[0] == dray__rng_bits(&k, 2 * blk));
            ASSERT_TRUE(soft[1] == dray__rng_bits(&k, 2 * blk + 1));
        }
    }
}

TEST(fill_matches_scalar)
{
    /* Offsets around the 2^32 boundary exercise the high-word split. */
    const uint64_t starts[] = {0, 12345, (1ULL << 32) - 101, (5ULL << 32) + 7};
    double buf[300], acc[300];
    for (size_t s = 0; s < 4; s++) {
        dray_random_uniform_fill(9, starts[s], buf, 300);
        for (int i = 0; i < 300; i++) {
            double want = dray_random_uniform_at(9, starts[s] + (uint64_t)i);
            ASSERT_TRUE(buf[i] == want);
            ASSERT_TRUE(want >= 0 && want < 1);
            /* 52-bit resolution: the value is the top 52 raw bits over 2^52 */
            uint64_t bits = dray_random_bits_at(9, starts[s] + (uint64_t)i);
            ASSERT_TRUE(want == (double)(bits >> 12) * 0x1p-52);
            acc[i] = 1.0;
        }
        dray_random_uniform_accumulate(9, starts[s], acc, 300);
        for (int i = 0; i < 300; i++)
            ASSERT_TRUE(acc[i] == 1.0 + buf[i]);
    }
    ASSERT_TRUE(dray_random_uniform_at(9, 0) != dray_random_uniform_at(10, 0));
}

static dray_ndarray *random_with(int kind, const int64_t *shape, const int64_t *chunks)
{
    dray_array *a;
    if (kind == 0)
        ASSERT_OK(dray_array_random_uniform(77, 3, shape, chunks, -2.0, 3.0, &a));
    else if (kind == 1)
        ASSERT_OK(dray_array_random_normal(77, 3, shape, chunks, 1.0, 2.0, &a));
    else
        ASSERT_OK(dray_array_random_integers(77, 3, shape, chunks, -5, 12, &a));
    dray_ndarray *r = compute(a);
    dray_array_release(a);
    return r;
}

TEST(chunking_independence)
{
    const int64_t shape[3] = {7, 13, 11};
    const int64_t grids[][3] = {{7, 13, 11}, {1, 1, 1}, {3, 5, 4}, {2, 13, 1}, {7, 1, 11}};
    for (int kind = 0; kind < 3; kind++) {
        dray_ndarray *base = random_with(kind, shape, grids[0]);
        size_t bytes = (size_t)dray_ndarray_size(base) * 8;
        for (size_t g = 1; g < sizeof(grids) / sizeof(grids[0]); g++) {
            dray_ndarray *r = random_with(kind, shape, grids[g]);
            ASSERT_TRUE(memcmp(dray_ndarray_cdata(r), dray_ndarray_cdata(base), bytes) == 0);
            dray_ndarray_release(r);
        }
        if (kind == 0) /* element (i,j,k) is the generator at flat index i*143 + j*11 + k */
            for (int64_t i = 0; i < dray_ndarray_size(base); i++)
                ASSERT_TRUE(dray_ndarray_get(base, i) == -2.0 + 5.0 * dray_random_uniform_at(77, (uint64_t)i));
        dray_ndarray_release(base);
    }
}

TEST(distributions)
{
    const int64_t n = 200000, chunk = 30000;
    dray_array *u, *g, *k;
    ASSERT_OK(dray_array_random_uniform(5, 1, &n, &chunk, 0.0, 1.0, &u));
    ASSERT_OK(dray_array_random_normal(5, 1, &n, &chunk, 3.0, 0.5, &g));
    ASSERT_OK(dray_array_random_integers(5, 1, &n, &chunk, 10, 20, &k));
    dray_ndarray *ru = compute(u), *rg = compute(g), *rk = compute(k);
    /* uniform: chi-square over 50 bins (49 dof: 99.9% point ~85) and lag-1 correlation */
    int64_t bins[50] = {0}, hits[10] = {0};
    const double *x = dray_ndarray_cdata(ru);
    double sxy = 0, s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        bins[(int)(x[i] * 50)]++;
        s += x[i];
        s2 += x[i] * x[i];
        if (i)
            sxy += (x[i] - 0.5) * (x[i - 1] - 0.5);
    }
    double chi = 0, e = (double)n / 50;
    for (int b = 0; b < 50; b++)
        chi += (bins[b] - e) * (bins[b] - e) / e;
    ASSERT_LT(chi, 85);
    ASSERT_NEAR(s / n, 0.5, 0.005);
    ASSERT_NEAR(sxy / n / (1.0 / 12), 0.0, 0.01);
    /* normal: mean and stddev, and the share within one sigma (68.27%) */
    const double *y = dray_ndarray_cdata(rg);
    double m = 0, v = 0, in1 = 0;
    for (int64_t i = 0; i < n; i++)
        m += y[i];
    m /= n;
    for (int64_t i = 0; i < n; i++) {
        v += (y[i] - m) * (y[i] - m);
        in1 += fabs(y[i] - 3.0) < 0.5;
    }
    ASSERT_NEAR(m, 3.0, 0.01);
    ASSERT_NEAR(sqrt(v / n), 0.5, 0.01);
    ASSERT_NEAR(in1 / n, 0.6827, 0.01);
    /* integers: in range, every value about equally often */
    ASSERT_EQ(dray_ndarray_dtype(rk), DRAY_INT64);
    const int64_t *z = dray_ndarray_cdata(rk);
    for (int64_t i = 0; i < n; i++) {
        ASSERT_TRUE(z[i] >= 10 && z[i] < 20);
        hits[z[i] - 10]++;
    }
    for (int b = 0; b < 10; b++)
        ASSERT_NEAR((double)hits[b] / n, 0.1, 0.005);
    (void)s2;
    dray_ndarray_release(ru);
    dray_ndarray_release(rg);
    dray_ndarray_release(rk);
    dray_array_release(u);
    dray_array_release(g);
    dray_array_release(k);
}

/* mean over all 1e8 elements and over axis 0 against a long-double Kahan reference. */
TEST(big_mean_accuracy)
{
    const int64_t n = 10000, shape[2] = {n, n}, chunks[2] = {2500, 5000};
    double *row = malloc(sizeof(double) * n), *colref = calloc(n, sizeof(double));
    long double sum = 0, c = 0;
    for (int64_t i = 0; i < n; i++) {
        dray_random_uniform_fill(2024, (uint64_t)(i * n), row, n);
        for (int64_t j = 0; j < n; j++) {
            long double y = row[j] - c, t = sum + y;
            c = (t - sum) - y;
            sum = t;
            colref[j] += row[j];
        }
    }
    double want = (double)(sum / (long double)(n * n));
    dray_array *x, *m, *m0;
    ASSERT_OK(dray_array_random_uniform(2024, 2, shape, chunks, 0.0, 1.0, &x));
    ASSERT_OK(dray_array_reduce(DRAY_MEAN, x, NULL, 0, NULL, &m));
    ASSERT_OK(dray_array_reduce(DRAY_MEAN, x, (int[]){0}, 1, NULL, &m0));
    dray_ndarray *r = compute(m), *r0 = compute(m0);
    double got = dray_ndarray_get(r, 0);
    ASSERT_TRUE(fabs(got - want) / want <= 1e-12);
    for (int64_t j = 0; j < n; j += 997)
        ASSERT_TRUE(fabs(dray_ndarray_get(r0, j) - colref[j] / n) / (colref[j] / n) <= 1e-12);
    dray_ndarray_release(r);
    dray_ndarray_release(r0);
    dray_array_release(m);
    dray_array_release(m0);
    dray_array_release(x);
    free(row);
    free(colref);
}

RUN_TESTS(T_(aes_known_answer), T_(portable_matches_hardware), T_(fill_matches_scalar), T_(chunking_independence), T_(distributions),
          T_(big_mean_accuracy))
