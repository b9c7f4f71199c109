/* Structure and linear algebra against naive loops: slicing (steps, negatives, indices), transpose,
 * concatenate, stack, rechunk, reshape, matmul vs a triple loop, and persist. */
#include <stdio.h>
#include <unistd.h>

#include "util.h"

#define S_ DRAY_SLICE_NONE

TEST(slicing)
{
    const int64_t s[3] = {9, 8, 5}, c[3] = {4, 3, 2};
    double *v;
    dray_array *a = test_f64(3, s, c, 0, 1, &v);
    /* a[7:1:-2, 2, ::3]  -> shape (3, 2) */
    dray_slice sl[3] = {{7, 1, -2, false}, {2, 0, 0, true}, {S_, S_, 3, false}};
    dray_array *b;
    ASSERT_OK(dray_array_slice(a, sl, 3, &b));
    ASSERT_EQ(dray_array_ndim(b), 2);
    ASSERT_EQ(dray_array_shape(b)[0], 3);
    ASSERT_EQ(dray_array_shape(b)[1], 2);
    dray_ndarray *x = compute(b);
    int k = 0;
    for (int i = 7; i > 1; i -= 2)
        for (int m = 0; m < 5; m += 3)
            ASSERT_TRUE(dray_ndarray_get(x, k++) == v[(i * 8 + 2) * 5 + m]);
    dray_ndarray_release(x);
    dray_array_release(b);
    /* a[-3:, :100] (clipped), missing trailing axis, and an empty slice */
    dray_slice s2[2] = {{-3, S_, S_, false}, {S_, 100, S_, false}};
    ASSERT_OK(dray_array_slice(a, s2, 2, &b));
    x = compute(b);
    ASSERT_EQ(dray_ndarray_size(x), 3 * 8 * 5);
    for (int64_t i = 0; i < 120; i++)
        ASSERT_TRUE(dray_ndarray_get(x, i) == v[6 * 40 + i]);
    dray_ndarray_release(x);
    dray_array_release(b);
    dray_slice s3[1] = {{5, 2, 1, false}};
    ASSERT_OK(dray_array_slice(a, s3, 1, &b));
    ASSERT_EQ(dray_array_shape(b)[0], 0);
    x = compute(b);
    ASSERT_EQ(dray_ndarray_size(x), 0);
    dray_ndarray_release(x);
    dray_array_release(b);
    dray_slice bad[1] = {{9, 0, 0, true}};
    ASSERT_STATUS(dray_array_slice(a, bad, 1, &b), DRAY_ERANGE);
    ASSERT_CONTAINS(dray_last_error(), "index 9 is out of bounds for axis 0");
    dray_array_release(a);
    free(v);
}

TEST(transpose_rechunk_reshape)
{
    const int64_t s[3] = {4, 6, 5}, c[3] = {3, 4, 2};
    double *v;
    dray_array *a = test_f64(3, s, c, 0, 1, &v), *t, *r, *rs;
    ASSERT_OK(dray_array_transpose(a, (int[]){2, 0, 1}, &t));
    dray_ndarray *x = compute(t);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 6; k++)
                ASSERT_TRUE(dray_ndarray_get(x, (i * 4 + j) * 6 + k) == v[(j * 6 + k) * 5 + i]);
    dray_ndarray_release(x);
    /* explicit rechunk, then values unchanged */
    const int64_t s0[] = {1, 3}, s1[] = {6}, s2[] = {1, 1, 3};
    const int64_t *sizes[3] = {s0, s1, s2}, counts[3] = {2, 1, 3};
    ASSERT_OK(dray_array_rechunk_explicit(a, sizes, counts, &r));
    ASSERT_EQ(dray_array_numchunks(r, 2), 3);
    ASSERT_EQ(dray_array_chunk_sizes(r, 2)[2], 3);
    x = compute(r);
    for (int64_t i = 0; i < 120; i++)
        ASSERT_TRUE(dray_ndarray_get(x, i) == v[i]);
    dray_ndarray_release(x);
    /* (4,6,5) in chunks (3|1, 4|2, 2|2|1): axis 2 merges into axis 1, so it becomes one chunk
     * (a rechunk, as Dask does) and axis 1 keeps its split: output chunks (3|1, 20|10) */
    ASSERT_OK(dray_array_reshape(a, 2, (int64_t[]){4, 30}, &rs));
    ASSERT_EQ(dray_array_numchunks(rs, 0), 2);
    ASSERT_EQ(dray_array_numchunks(rs, 1), 2);
    ASSERT_EQ(dray_array_chunk_sizes(rs, 1)[0], 20);
    x = compute(rs);
    for (int64_t i = 0; i < 120; i++)
        ASSERT_TRUE(dray_ndarray_get(x, i) == v[i]);
    dray_ndarray_release(x);
    dray_array_release(rs);
    dray_array *whole;
    ASSERT_OK(dray_array_rechunk(a, (int64_t[]){2, 0, 0}, &whole));
    ASSERT_OK(dray_array_reshape(whole, 2, (int64_t[]){-1, 15}, &rs));
    ASSERT_EQ(dray_array_shape(rs)[0], 8);
    x = compute(rs);
    for (int64_t i = 0; i < 120; i++)
        ASSERT_TRUE(dray_ndarray_get(x, i) == v[i]);
    dray_ndarray_release(x);
    ASSERT_STATUS(dray_array_reshape(whole, 2, (int64_t[]){7, 17}, &t), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "cannot reshape an array of shape (4, 6, 5) into (7, 17)");
    dray_array_release(rs);
    dray_array_release(whole);
    dray_array_release(r);
    dray_array_release(t);
    dray_array_release(a);
    free(v);
}

/* One reshape checked two ways: the flat C-order data is unchanged (NumPy's reshape), and the
 * output grid is a valid partition of the new shape. */
static void check_reshape(int nin, const int64_t *s, const int64_t *c, int nout, const int64_t *o)
{
    double *v;
    dray_array *a = test_f64(nin, s, c, -1, 1, &v), *r;
    ASSERT_OK(dray_array_reshape(a, nout, o, &r));
    ASSERT_EQ(dray_array_ndim(r), nout);
    for (int d = 0; d < nout; d++) {
        int64_t sum = 0;
        for (int64_t k = 0; k < dray_array_numchunks(r, d); k++)
            sum += dray_array_chunk_sizes(r, d)[k];
        ASSERT_EQ(sum, o[d]);
    }
    dray_ndarray *x = compute(r);
    for (int d = 0; d < nout; d++)
        ASSERT_EQ(dray_ndarray_shape(x)[d], o[d]);
    for (int64_t i = 0; i < shape_size(nin, s); i++)
        ASSERT_TRUE(dray_ndarray_get(x, i) == v[i]);
    dray_ndarray_release(x);
    dray_array_release(r);
    dray_array_release(a);
    free(v);
}

TEST(reshape_general)
{
    /* merges, splits, both at once, size-1 axes, empty arrays */
    check_reshape(3, (int64_t[]){4, 6, 5}, (int64_t[]){3, 4, 2}, 1, (int64_t[]){120});
    check_reshape(1, (int64_t[]){120}, (int64_t[]){7}, 3, (int64_t[]){4, 6, 5});
    check_reshape(2, (int64_t[]){4, 6}, (int64_t[]){1, 5}, 2, (int64_t[]){3, 8});
    check_reshape(3, (int64_t[]){6, 1, 4}, (int64_t[]){4, 1, 3}, 4, (int64_t[]){2, 3, 4, 1});
    check_reshape(2, (int64_t[]){1, 12}, (int64_t[]){1, 5}, 2, (int64_t[]){3, 4});
    check_reshape(2, (int64_t[]){0, 5}, (int64_t[]){1, 2}, 2, (int64_t[]){5, 0});
    check_reshape(4, (int64_t[]){2, 3, 4, 5}, (int64_t[]){1, 2, 3, 2}, 2, (int64_t[]){6, 20});
    check_reshape(2, (int64_t[]){12, 10}, (int64_t[]){5, 3}, 4, (int64_t[]){4, 3, 2, 5});
    /* chunks kept where they already fit: (12, 10) in rows of 4 -> (3, 4, 10) without a rechunk */
    double *v;
    dray_array *a = test_f64(2, (int64_t[]){12, 10}, (int64_t[]){4, 10}, 0, 1, &v), *r;
    ASSERT_OK(dray_array_reshape(a, 3, (int64_t[]){3, 4, 10}, &r));
    ASSERT_EQ(dray_array_numchunks(r, 0), 3);
    ASSERT_EQ(dray_array_numchunks(r, 1), 1);
    dray_array_release(r);
    dray_array_release(a);
    free(v);
    /* random shapes: the output spreads the prime factors of the size over 1-4 axes */
    for (int t = 0; t < 60; t++) {
        int nin = 1 + (int)(lcg_unit() * 4), nout = 1 + (int)(lcg_unit() * 4);
        int64_t s[4], c[4], o[4] = {1, 1, 1, 1}, n = 1;
        for (int d = 0; d < nin; d++) {
            s[d] = 1 + (int64_t)(lcg_unit() * 6);
            c[d] = 1 + (int64_t)(lcg_unit() * (double)s[d]);
            n *= s[d];
        }
        for (int64_t p = 2, m = n; m > 1;) {
            if (m % p) {
                p++;
                continue;
            }
            o[(int)(lcg_unit() * nout)] *= p;
            m /= p;
        }
        check_reshape(nin, s, c, nout, o);
    }
}

/* NumPy as the independent oracle: dray writes reshape(a) to .npy, NumPy compares it with its own
 * reshape of a (also written by dray, whose .npy writer test_npy checks against NumPy). */
TEST(reshape_vs_numpy)
{
    char dir[] = "/tmp/dray-reshape-XXXXXX", cmd[1024];
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    const int64_t s[3] = {6, 10, 4}, c[3] = {4, 3, 3};
    double *v;
    dray_array *a = test_f64(3, s, c, 0, 1, &v), *r;
    ASSERT_OK(dray_array_reshape(a, 4, (int64_t[]){4, 5, -1, 2}, &r));
    snprintf(cmd, sizeof(cmd), "%s/a.npy", dir);
    ASSERT_OK(dray_array_write_npy(test_rt(), a, cmd));
    snprintf(cmd, sizeof(cmd), "%s/r.npy", dir);
    ASSERT_OK(dray_array_write_npy(test_rt(), r, cmd));
    snprintf(cmd, sizeof(cmd),
             "cd %s && /usr/bin/python3 -c \"import numpy as np\n"
             "a = np.load('a.npy'); r = np.load('r.npy')\n"
             "assert r.shape == (4, 5, 6, 2), r.shape\n"
             "assert np.array_equal(r, a.reshape(4, 5, -1, 2))\" && rm -f a.npy r.npy && rmdir %s",
             dir, dir);
    ASSERT_EQ(system(cmd), 0);
    dray_array_release(r);
    dray_array_release(a);
    free(v);
}

TEST(concat_stack)
{
    const int64_t s1[2] = {3, 4}, s2[2] = {5, 4}, c1[2] = {2, 3}, c2[2] = {3, 1};
    double *v1, *v2;
    dray_array *a = test_f64(2, s1, c1, 0, 1, &v1), *b = test_f64(2, s2, c2, 0, 1, &v2), *c;
    ASSERT_OK(dray_array_concatenate((dray_array *[]){a, b}, 2, 0, &c));
    ASSERT_EQ(dray_array_shape(c)[0], 8);
    dray_ndarray *x = compute(c);
    for (int64_t i = 0; i < 12; i++)
        ASSERT_TRUE(dray_ndarray_get(x, i) == v1[i]);
    for (int64_t i = 0; i < 20; i++)
        ASSERT_TRUE(dray_ndarray_get(x, 12 + i) == v2[i]);
    dray_ndarray_release(x);
    dray_array_release(c);
    /* int64 with float32 concatenates as float64, like NumPy */
    int64_t iv[2] = {1, 2};
    float fv[3] = {0.5f, 1.5f, 2.5f};
    dray_array *ai, *af, *cf;
    ASSERT_OK(dray_array_from_buffer(DRAY_INT64, 1, (int64_t[]){2}, NULL, iv, &ai));
    ASSERT_OK(dray_array_from_buffer(DRAY_FLOAT32, 1, (int64_t[]){3}, NULL, fv, &af));
    ASSERT_OK(dray_array_concatenate((dray_array *[]){ai, af}, 2, 0, &cf));
    ASSERT_EQ(dray_array_dtype(cf), DRAY_FLOAT64);
    x = compute(cf);
    ASSERT_TRUE(dray_ndarray_get(x, 1) == 2.0 && dray_ndarray_get(x, 4) == 2.5);
    dray_ndarray_release(x);
    dray_array_release(cf);
    dray_array_release(ai);
    dray_array_release(af);
    ASSERT_STATUS(dray_array_concatenate((dray_array *[]){a, b}, 2, 1, &c), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "(3, 4) and (5, 4)");
    /* stack two (3,4) along a new middle axis -> (3, 2, 4) */
    double *v3;
    dray_array *d = test_f64(2, s1, c2, 0, 1, &v3);
    ASSERT_OK(dray_array_stack((dray_array *[]){a, d}, 2, 1, &c));
    ASSERT_EQ(dray_array_ndim(c), 3);
    ASSERT_EQ(dray_array_shape(c)[1], 2);
    x = compute(c);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) {
            ASSERT_TRUE(dray_ndarray_get(x, (i * 2 + 0) * 4 + k) == v1[i * 4 + k]);
            ASSERT_TRUE(dray_ndarray_get(x, (i * 2 + 1) * 4 + k) == v3[i * 4 + k]);
        }
    dray_ndarray_release(x);
    dray_array_release(c);
    dray_array_release(d);
    dray_array_release(a);
    dray_array_release(b);
    free(v1);
    free(v2);
    free(v3);
}

TEST(matmul)
{
    const int64_t sa[2] = {37, 29}, sb[2] = {29, 23}, ca[2] = {10, 8}, cb[2] = {7, 6};
    double *va, *vb;
    dray_array *a = test_f64(2, sa, ca, -1, 1, &va), *b = test_f64(2, sb, cb, -1, 1, &vb), *m;
    dray_reduce_opts o = {0};
    (void)o;
    ASSERT_OK(dray_array_matmul(a, b, &m));
    dray_ndarray *x = compute(m);
    for (int i = 0; i < 37; i++)
        for (int j = 0; j < 23; j++) {
            double s = 0;
            for (int k = 0; k < 29; k++)
                s += va[i * 29 + k] * vb[k * 23 + j];
            ASSERT_CLOSE(dray_ndarray_get(x, i * 23 + j), s, 1e-13);
        }
    dray_ndarray_release(x);
    dray_array_release(m);
    /* matmul of an int32 array with a transposed float array */
    int32_t iv[6] = {1, 2, 3, 4, 5, 6};
    dray_array *ai, *t, *m2;
    ASSERT_OK(dray_array_from_buffer(DRAY_INT32, 2, (int64_t[]){2, 3}, (int64_t[]){1, 2}, iv, &ai));
    ASSERT_OK(dray_array_transpose(ai, NULL, &t));
    ASSERT_OK(dray_array_matmul(ai, t, &m2));
    x = compute(m2);
    ASSERT_TRUE(dray_ndarray_get(x, 0) == 14 && dray_ndarray_get(x, 1) == 32 &&
                dray_ndarray_get(x, 3) == 77);
    dray_ndarray_release(x);
    ASSERT_STATUS(dray_array_matmul(ai, ai, &m2), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "(2, 3) and (2, 3) do not align");
    dray_array_release(m2);
    dray_array_release(t);
    dray_array_release(ai);
    dray_array_release(a);
    dray_array_release(b);
    free(va);
    free(vb);
}

TEST(persist)
{
    const int64_t s[2] = {20, 30}, c[2] = {7, 11};
    dray_array *u, *p, *sq, *sum;
    ASSERT_OK(dray_array_random_uniform(1, 2, s, c, 0, 1, &u));
    ASSERT_OK(dray_array_persist(test_rt(), u, &p));
    ASSERT_EQ(dray_array_numchunks(p, 0), 3);
    ASSERT_OK(dray_array_binary(DRAY_MUL, p, p, &sq));
    ASSERT_OK(dray_array_reduce(DRAY_SUM, sq, NULL, 0, NULL, &sum));
    dray_ndarray *x = compute(sum), *y = compute(p);
    double want = 0;
    for (int64_t i = 0; i < 600; i++) {
        double w = dray_random_uniform_at(1, (uint64_t)i);
        want += w * w;
        ASSERT_TRUE(dray_ndarray_get(y, i) == w);
    }
    ASSERT_CLOSE(dray_ndarray_get(x, 0), want, 1e-13);
    dray_ndarray_release(x);
    dray_ndarray_release(y);
    dray_array_release(sum);
    dray_array_release(sq);
    dray_array_release(p);
    dray_array_release(u);
}

/* Rechunking 200 one-element chunks into one chunk and back into ragged ones. */
TEST(rechunk_many)
{
    const int64_t n = 200, one = 1;
    double *v;
    dray_array *a = test_f64(1, &n, &one, 0, 1, &v), *r, *r2;
    ASSERT_OK(dray_array_rechunk(a, &n, &r));
    ASSERT_EQ(dray_array_numchunks(r, 0), 1);
    ASSERT_OK(dray_array_rechunk(r, (int64_t[]){7}, &r2));
    ASSERT_EQ(dray_array_numchunks(r2, 0), 29);
    dray_ndarray *x = compute(r), *y = compute(r2);
    for (int64_t i = 0; i < n; i++) {
        ASSERT_TRUE(dray_ndarray_get(x, i) == v[i]);
        ASSERT_TRUE(dray_ndarray_get(y, i) == v[i]);
    }
    dray_ndarray_release(x);
    dray_ndarray_release(y);
    dray_array_release(r2);
    dray_array_release(r);
    dray_array_release(a);
    free(v);
}

TEST(dot)
{
    const int64_t sm[2] = {6, 5}, sv[1] = {5}, su[1] = {6};
    double *vm, *vv, *vu;
    dray_array *m = test_f64(2, sm, (int64_t[]){4, 2}, -1, 1, &vm);
    dray_array *v = test_f64(1, sv, (int64_t[]){2}, -1, 1, &vv);
    dray_array *u = test_f64(1, su, (int64_t[]){4}, -1, 1, &vu);
    dray_array *mv, *um, *vvd;
    ASSERT_OK(dray_array_dot(m, v, &mv));
    ASSERT_OK(dray_array_dot(u, m, &um));
    ASSERT_OK(dray_array_dot(v, v, &vvd));
    dray_ndarray *x = compute(mv), *y = compute(um), *z = compute(vvd);
    ASSERT_EQ(dray_ndarray_ndim(z), 0);
    double ss = 0;
    for (int j = 0; j < 5; j++)
        ss += vv[j] * vv[j];
    ASSERT_CLOSE(dray_ndarray_get(z, 0), ss, 1e-14);
    for (int i = 0; i < 6; i++) {
        double s = 0;
        for (int j = 0; j < 5; j++)
            s += vm[i * 5 + j] * vv[j];
        ASSERT_CLOSE(dray_ndarray_get(x, i), s, 1e-14);
    }
    for (int j = 0; j < 5; j++) {
        double s = 0;
        for (int i = 0; i < 6; i++)
            s += vu[i] * vm[i * 5 + j];
        ASSERT_CLOSE(dray_ndarray_get(y, j), s, 1e-14);
    }
    ASSERT_STATUS(dray_array_dot(u, v, &mv), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "(6,) and (5,) not aligned");
    dray_ndarray_release(x);
    dray_ndarray_release(y);
    dray_ndarray_release(z);
    dray_array_release(mv);
    dray_array_release(um);
    dray_array_release(vvd);
    dray_array_release(m);
    dray_array_release(v);
    dray_array_release(u);
    free(vm);
    free(vv);
    free(vu);
}

RUN_TESTS(T_(dot), T_(rechunk_many), T_(slicing), T_(transpose_rechunk_reshape),
          T_(reshape_general), T_(reshape_vs_numpy), T_(concat_stack), T_(matmul), T_(persist))
