/* The counter-based generator: vector and scalar paths agree bit for bit, values depend only on
 * (seed, index) whatever the chunking, distributions look right, and big sums stay accurate. */
#include <stdio.h>

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

/* ARS itself against Random123's published known answers (kat_vectors, ars4x32 with 10 rounds:
 * counter words, key words, expected words, each 32-bit word low first). */
TEST(ars_published_vectors)
{
    static const uint32_t kat[][12] = {
        {0x886a3f24, 0xd308a385, 0x2e8a1913, 0x44737003, 0, 0, 0x80000000, 0,
         0x7a532752, 0x8f6680af, 0x0db9bfab, 0x0d33bcaa},
        {1, 0, 0, 0, 0, 0, 0, 0x000000ff, 0x33ffd0ef, 0x0c0babaa, 0x08eb61d8, 0x976b28d3},
        {0xe6212845, 0x7713d038, 0xcf6654be, 0x6c0ce934, 0, 0, 0, 0x00000080,
         0x36cbd4d4, 0x53867fd4, 0xc5414655, 0xf86902e6},
        {0, 0, 0, 0xff000000, 0, 0, 0, 0x80000000, 0xe9375d82, 0x8c142da5, 0xcdf4bffe, 0x421e1845},
        {0x223809a4, 0xd0319f29, 0x98fa2e08, 0x896c4eec, 0, 0, 0, 0xff000000,
         0x2c3fe25f, 0x3a57e7ee, 0xbc1827bd, 0x6b3d18b0},
    };
    for (size_t v = 0; v < sizeof(kat) / sizeof(kat[0]); v++) {
        const uint32_t *w = kat[v];
        uint64_t ctr[2] = {w[0] | (uint64_t)w[1] << 32, w[2] | (uint64_t)w[3] << 32};
        uint64_t key[2] = {w[4] | (uint64_t)w[5] << 32, w[6] | (uint64_t)w[7] << 32}, out[2];
        dray__ars_soft(ctr, key, 10, out);
        ASSERT_TRUE(out[0] == (w[8] | (uint64_t)w[9] << 32));
        ASSERT_TRUE(out[1] == (w[10] | (uint64_t)w[11] << 32));
    }
}

/* The whole generator (seed -> key, ARS-5 of index / 2, the 52-bit double) against an independent
 * pure-Python implementation (tests/array/ars_ref.py, which first checks itself against the same
 * published vectors), on every code path this CPU has. */
TEST(matches_python_reference)
{
    static const uint64_t seeds[] = {0, 42, 0x8000000000000005ULL};
    static const char *idx = "0 1 2 3 17 1000001 4294967295 4294967296 9007199254740993";
    for (size_t s = 0; s < 3; s++)
        for (uint32_t stream = 0; stream < 3; stream++) {
            char cmd[512];
            snprintf(cmd, sizeof(cmd), "/usr/bin/python3 tests/array/ars_ref.py %llu %u %s",
                     (unsigned long long)seeds[s], stream, idx);
            FILE *f = popen(cmd, "r");
            ASSERT_TRUE(f != NULL);
            const char *p = idx;
            int lines = 0;
            char hex[32], rep[64];
            while (fscanf(f, "%31s %63s", hex, rep) == 2) {
                char *end;
                uint64_t i = strtoull(p, &end, 10), want = strtoull(hex, NULL, 16);
                p = end;
                for (int impl = 0; impl <= dray__rng_best_impl(); impl++) {
                    dray__rng_key k;
                    dray__rng_key_init(&k, seeds[s], stream);
                    k.impl = impl;
                    ASSERT_TRUE(dray__rng_bits(&k, i) == want);
                    ASSERT_TRUE(dray__rng_uniform(&k, i) == strtod(rep, NULL));
                    double one;
                    dray__rng_uniform_fill(&k, i, &one, 1);
                    ASSERT_TRUE(one == strtod(rep, NULL));
                }
                if (stream == 0)
                    ASSERT_TRUE(dray_random_bits_at(seeds[s], i) == want);
                lines++;
            }
            ASSERT_EQ(pclose(f), 0);
            ASSERT_EQ(lines, 9);
        }
}

/* Column sum as specified (dray__rng_uniform_colsum), written out naively on the raw bits: the
 * 52-bit integers of a column add exactly, rounded once per 4096 rows; odd strides take the
 * even rows first, then the odd ones. */
static double colsum_spec(double acc, uint64_t first, uint64_t stride, int64_t rows)
{
    if (stride & 1)
        return colsum_spec(colsum_spec(acc, first, 2 * stride, (rows + 1) / 2), first + stride,
                           2 * stride, rows / 2);
    for (int64_t r0 = 0; r0 < rows; r0 += 4096) {
        uint64_t m = 0;
        for (int64_t r = r0; r < rows && r < r0 + 4096; r++)
            m += dray_random_bits_at(5, first + (uint64_t)r * stride) >> 12;
        acc += (double)m * 0x1p-52;
    }
    return acc;
}

/* Runtime dispatch: the portable path, AES-NI and VAES give the same bits for fill, add and the
 * column sums, whatever the alignment (odd starts, odd strides, lengths around the vector widths). */
TEST(paths_bit_identical)
{
    int best = dray__rng_best_impl();
    static const uint64_t firsts[] = {0, 1, 77, (1ULL << 32) - 3, (5ULL << 40) + 1};
    static const int64_t lens[] = {0, 1, 2, 7, 15, 16, 17, 31, 33, 47, 1001};
    double *ref = malloc(sizeof(double) * 1001 * 2), *got = malloc(sizeof(double) * 1001 * 2);
    for (size_t fi = 0; fi < 5; fi++)
        for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
            int64_t n = lens[li];
            dray__rng_key k;
            dray__rng_key_init(&k, 31337 + fi, (uint32_t)(li % 3));
            for (int impl = 0; impl <= best; impl++) {
                k.impl = impl;
                double *o = impl ? got : ref;
                dray__rng_uniform_fill(&k, firsts[fi], o, n);
                for (int64_t j = 0; j < n; j++)
                    o[1001 + j] = 0.25 * (double)j;
                dray__rng_uniform_add(&k, firsts[fi], o + 1001, n);
                if (impl) {
                    ASSERT_TRUE(memcmp(ref, got, sizeof(double) * (size_t)n) == 0);
                    ASSERT_TRUE(memcmp(ref + 1001, got + 1001, sizeof(double) * (size_t)n) == 0);
                }
            }
            for (int64_t j = 0; j < n; j++)
                ASSERT_TRUE(ref[1001 + j] == 0.25 * (double)j + ref[j]);
        }
    /* column sums: (first, stride, rows, cols), every path against the spec'd arithmetic */
    static const int64_t cs[][4] = {{0, 1000, 7, 48},  {1, 1000, 5, 33},  {2, 999, 6, 40},
                                    {0, 64, 1, 16},    {3, 0, 4, 21},     {10, 50, 3, 50},
                                    {0, 10000, 100, 1000}, {7, 20, 0, 20}, {0, 2, 9, 1},
                                    {5, 6, 5000, 19}, {1, 7, 4099, 6}};
    for (size_t c = 0; c < sizeof(cs) / sizeof(cs[0]); c++) {
        uint64_t first = (uint64_t)cs[c][0], stride = (uint64_t)cs[c][1];
        int64_t rows = cs[c][2], cols = cs[c][3];
        double *want = malloc(sizeof(double) * (size_t)cols), *acc = malloc(sizeof(double) * (size_t)cols);
        for (int64_t j = 0; j < cols; j++)
            want[j] = colsum_spec(0.5, first + (uint64_t)j, stride, rows);
        for (int impl = 0; impl <= best; impl++) {
            dray__rng_key k;
            dray__rng_key_init(&k, 5, 0);
            k.impl = impl;
            for (int64_t j = 0; j < cols; j++)
                acc[j] = 0.5;
            dray__rng_uniform_colsum(&k, first, stride, rows, cols, acc);
            ASSERT_TRUE(memcmp(acc, want, sizeof(double) * (size_t)cols) == 0);
        }
        for (int64_t j = 0; j < cols; j++)
            acc[j] = 0.5;
        dray_random_uniform_colsum(5, first, stride, (size_t)rows, (size_t)cols, acc);
        ASSERT_TRUE(memcmp(acc, want, sizeof(double) * (size_t)cols) == 0);
        free(want);
        free(acc);
    }
    free(ref);
    free(got);
}

/* Sums of random sources over the axis before the last (the column-sum kernel) against naive
 * sums of the generator, on chunk grids with odd offsets and widths, 2-D and 3-D. */
TEST(fused_column_sums)
{
    const int64_t shape[3] = {3, 41, 37};
    const int64_t grids[][3] = {{3, 41, 37}, {1, 7, 5}, {2, 41, 17}, {3, 1, 1}, {1, 20, 36}};
    for (size_t g = 0; g < sizeof(grids) / sizeof(grids[0]); g++) {
        for (int nd = 2; nd <= 3; nd++) {
            const int64_t *sh = shape + 3 - nd, *ch = grids[g] + 3 - nd;
            dray_array *x, *m;
            ASSERT_OK(dray_array_random_uniform(11, nd, sh, ch, -1.0, 3.0, &x));
            ASSERT_OK(dray_array_reduce(DRAY_SUM, x, (int[]){nd - 2}, 1, NULL, &m));
            dray_ndarray *r = compute(m);
            int64_t outer = nd == 3 ? sh[0] : 1, rows = sh[nd - 2], cols = sh[nd - 1];
            for (int64_t o = 0; o < outer; o++)
                for (int64_t j = 0; j < cols; j++) {
                    double want = 0;
                    for (int64_t i = 0; i < rows; i++)
                        want += -1.0 + 4.0 * dray_random_uniform_at(
                                                 11, (uint64_t)((o * rows + i) * cols + j));
                    ASSERT_NEAR(dray_ndarray_get(r, o * cols + j), want, 1e-12 * rows * 3);
                }
            dray_ndarray_release(r);
            dray_array_release(m);
            dray_array_release(x);
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

RUN_TESTS(T_(aes_known_answer), T_(ars_published_vectors), T_(matches_python_reference),
          T_(paths_bit_identical), T_(fill_matches_scalar), T_(fused_column_sums),
          T_(chunking_independence), T_(distributions), T_(big_mean_accuracy))
