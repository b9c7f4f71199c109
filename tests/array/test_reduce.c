/* Reductions against a naive C reference: every op over every subset of axes of a 3-D array with
 * ragged chunks, keepdims, split_every 2, ints, bools, NaN handling and 0-length axes. */
#include "util.h"

enum { N0 = 5, N1 = 7, N2 = 6 };

/* Naive reference of op over the axes in mask at output position (i,j,k) with reduced coords
 * iterated. Returns the value (argmin/argmax: index) as double. */
static double ref_reduce(dray_reduce_op op, const double *v, unsigned mask, const int *o, int ddof)
{
    int lo[3], hi[3];
    const int n[3] = {N0, N1, N2};
    for (int d = 0; d < 3; d++) {
        lo[d] = (mask >> d) & 1 ? 0 : o[d];
        hi[d] = (mask >> d) & 1 ? n[d] : o[d] + 1;
    }
    double s = 0, best = 0, cnt = 0;
    long bi = -1;
    int any = 0, all = 1;
    for (int i = lo[0]; i < hi[0]; i++)
        for (int j = lo[1]; j < hi[1]; j++)
            for (int k = lo[2]; k < hi[2]; k++) {
                double x = v[(i * N1 + j) * N2 + k];
                long idx = mask == 7 ? (i * N1 + j) * N2 + k : mask == 1 ? i : mask == 2 ? j : k;
                s += x;
                cnt++;
                any |= x != 0;
                all &= x != 0;
                bool better = bi < 0 || (op == DRAY_MIN || op == DRAY_ARGMIN ? x < best : x > best);
                if (better) {
                    best = x;
                    bi = idx;
                }
            }
    double mean = s / cnt, q = 0;
    for (int i = lo[0]; i < hi[0]; i++)
        for (int j = lo[1]; j < hi[1]; j++)
            for (int k = lo[2]; k < hi[2]; k++) {
                double x = v[(i * N1 + j) * N2 + k];
                q += (x - mean) * (x - mean);
            }
    switch (op) {
    case DRAY_SUM: return s;
    case DRAY_MEAN: return mean;
    case DRAY_VAR: return q / (cnt - ddof);
    case DRAY_STD: return sqrt(q / (cnt - ddof));
    case DRAY_MIN: case DRAY_MAX: return best;
    case DRAY_ARGMIN: case DRAY_ARGMAX: return (double)bi;
    case DRAY_ANY: return any;
    default: return all;
    }
}

static void check_op(dray_array *a, const double *v, dray_reduce_op op, unsigned mask, bool keep,
                     int split)
{
    int axes[3], na = 0;
    for (int d = 0; d < 3; d++)
        if ((mask >> d) & 1)
            axes[na++] = d;
    dray_reduce_opts o = {keep, 1, split};
    dray_array *r;
    ASSERT_OK(dray_array_reduce(op, a, axes, na, &o, &r));
    dray_ndarray *x = compute(r);
    int64_t k = 0;
    const int n[3] = {N0, N1, N2};
    int pos[3];
    for (pos[0] = 0; pos[0] < ((mask & 1) ? 1 : n[0]); pos[0]++)
        for (pos[1] = 0; pos[1] < ((mask & 2) ? 1 : n[1]); pos[1]++)
            for (pos[2] = 0; pos[2] < ((mask & 4) ? 1 : n[2]); pos[2]++) {
                double want = ref_reduce(op, v, mask, pos, 1);
                double got = dray_ndarray_get(x, k++);
                if (!close_enough(got, want, 1e-12))
                    TEST_FAIL_("op %d mask %u keep %d at %lld: %.17g vs %.17g", op, mask, keep,
                               (long long)k - 1, got, want);
            }
    ASSERT_EQ(k, dray_ndarray_size(x));
    int want_nd = keep ? 3 : 3 - __builtin_popcount(mask);
    ASSERT_EQ(dray_ndarray_ndim(x), want_nd);
    dray_ndarray_release(x);
    dray_array_release(r);
}

TEST(all_ops_all_axes)
{
    const int64_t s[3] = {N0, N1, N2}, c[3] = {2, 3, 4};
    double *v;
    dray_array *a = test_f64(3, s, c, -1, 1, &v);
    for (int op = 0; op < DRAY__REDUCE_COUNT; op++)
        for (unsigned mask = 1; mask < 8; mask++) {
            if ((op == DRAY_ARGMIN || op == DRAY_ARGMAX) && __builtin_popcount(mask) == 2)
                continue;
            check_op(a, v, (dray_reduce_op)op, mask, mask == 5, mask == 3 ? 2 : 0);
        }
    dray_array_release(a);
    free(v);
}

/* Chunks spanning the trailing axes take the flat walks (all axes, the first axis row by row, or
 * the trailing axes one short run per position). */
TEST(all_ops_spanning_chunks)
{
    const int64_t s[3] = {N0, N1, N2}, c[3] = {2, N1, N2};
    double *v;
    dray_array *a = test_f64(3, s, c, -1, 1, &v);
    v[17] = v[17 + N1 * N2]; /* a tie along axis 0 for argmin/argmax */
    v[40] = v[43];           /* and one along the last axis */
    dray_array_release(a);
    ASSERT_OK(dray_array_from_buffer(DRAY_FLOAT64, 3, s, c, v, &a));
    for (int op = 0; op < DRAY__REDUCE_COUNT; op++) {
        check_op(a, v, (dray_reduce_op)op, 1, false, 0);
        check_op(a, v, (dray_reduce_op)op, 7, true, 2);
        /* trailing axes (the last, the last two): one short run of the flat order per position */
        check_op(a, v, (dray_reduce_op)op, 4, false, 0);
        if (op != DRAY_ARGMIN && op != DRAY_ARGMAX)
            check_op(a, v, (dray_reduce_op)op, 6, op == DRAY_SUM, 0);
    }
    /* the same on int64 (integer accumulators), values -3..3 with ties */
    double *w = malloc(sizeof(double) * N0 * N1 * N2);
    for (int i = 0; i < N0 * N1 * N2; i++)
        w[i] = (double)((int)(v[i] * 4));
    dray_array *wf, *wi;
    ASSERT_OK(dray_array_from_buffer(DRAY_FLOAT64, 3, s, c, w, &wf));
    ASSERT_OK(dray_array_astype(wf, DRAY_INT64, &wi));
    for (int op = 0; op < DRAY__REDUCE_COUNT; op++) {
        check_op(wi, w, (dray_reduce_op)op, 4, false, 0);
        if (op != DRAY_ARGMIN && op != DRAY_ARGMAX)
            check_op(wi, w, (dray_reduce_op)op, 6, false, 0);
    }
    dray_array_release(wi);
    dray_array_release(wf);
    free(w);
    dray_array_release(a);
    free(v);
}

TEST(tree_with_many_chunks)
{
    /* 1-element chunks along the reduced axis: 27 partials, split_every 3 -> 9 -> 3 -> 1 */
    const int64_t s[1] = {27}, c[1] = {1};
    double *v;
    dray_array *a = test_f64(1, s, c, 0, 10, &v), *r;
    dray_reduce_opts o = {false, 0, 3};
    ASSERT_OK(dray_array_reduce(DRAY_SUM, a, NULL, 0, &o, &r));
    dray_ndarray *x;
    size_t tasks;
    ASSERT_OK(dray_array_compute_stats(test_rt(), r, &x, &tasks));
    double s0 = 0;
    for (int i = 0; i < 27; i++)
        s0 += v[i];
    ASSERT_CLOSE(dray_ndarray_get(x, 0), s0, 1e-14);
    ASSERT_EQ(tasks, 27 + 9 + 3 + 1);
    dray_ndarray_release(x);
    dray_array_release(r);
    dray_array_release(a);
    free(v);
}

TEST(ints_bools_nans_empty)
{
    const int64_t n = 9, ch = 4;
    int32_t iv[9] = {3, -7, 2147483647, 5, -7, 9, 0, 1, 2};
    dray_array *ai, *r;
    ASSERT_OK(dray_array_from_buffer(DRAY_INT32, 1, &n, &ch, iv, &ai));
    ASSERT_OK(dray_array_reduce(DRAY_SUM, ai, NULL, 0, NULL, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_INT64);
    dray_ndarray *x = compute(r);
    ASSERT_EQ(((const int64_t *)dray_ndarray_cdata(x))[0], 2147483647LL + 6);
    dray_ndarray_release(x);
    dray_array_release(r);
    ASSERT_OK(dray_array_reduce(DRAY_ARGMIN, ai, NULL, 0, NULL, &r));
    x = compute(r);
    ASSERT_EQ(((const int64_t *)dray_ndarray_cdata(x))[0], 1); /* first of the two -7 */
    dray_ndarray_release(x);
    dray_array_release(r);
    ASSERT_OK(dray_array_reduce(DRAY_MAX, ai, NULL, 0, NULL, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_INT32);
    x = compute(r);
    ASSERT_EQ(((const int32_t *)dray_ndarray_cdata(x))[0], 2147483647);
    dray_ndarray_release(x);
    dray_array_release(r);
    ASSERT_OK(dray_array_reduce(DRAY_ALL, ai, NULL, 0, NULL, &r));
    x = compute(r);
    ASSERT_EQ(((const uint8_t *)dray_ndarray_cdata(x))[0], 0);
    dray_ndarray_release(x);
    dray_array_release(r);
    /* NaN: min and max are NaN, argmin points at the first NaN */
    double fv[9] = {1, 2, NAN, -5, NAN, 0, 3, -9, 4};
    dray_array *af;
    ASSERT_OK(dray_array_from_buffer(DRAY_FLOAT64, 1, &n, &ch, fv, &af));
    for (int op = DRAY_MIN; op <= DRAY_ARGMAX; op++) {
        ASSERT_OK(dray_array_reduce((dray_reduce_op)op, af, NULL, 0, NULL, &r));
        x = compute(r);
        if (op <= DRAY_MAX)
            ASSERT_TRUE(isnan(dray_ndarray_get(x, 0)));
        else
            ASSERT_EQ(((const int64_t *)dray_ndarray_cdata(x))[0], 2);
        dray_ndarray_release(x);
        dray_array_release(r);
    }
    /* empty: sum is 0, mean is NaN, min is an error naming the axis */
    const int64_t zs[2] = {0, 3};
    dray_array *z;
    ASSERT_OK(dray_array_zeros(DRAY_FLOAT64, 2, zs, NULL, &z));
    ASSERT_OK(dray_array_reduce(DRAY_SUM, z, (int[]){0}, 1, NULL, &r));
    x = compute(r);
    ASSERT_EQ(dray_ndarray_size(x), 3);
    ASSERT_TRUE(dray_ndarray_get(x, 2) == 0);
    dray_ndarray_release(x);
    dray_array_release(r);
    ASSERT_OK(dray_array_reduce(DRAY_MEAN, z, NULL, 0, NULL, &r));
    x = compute(r);
    ASSERT_TRUE(isnan(dray_ndarray_get(x, 0)));
    dray_ndarray_release(x);
    dray_array_release(r);
    ASSERT_STATUS(dray_array_reduce(DRAY_MIN, z, (int[]){0}, 1, NULL, &r), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "zero-size axis 0");
    ASSERT_STATUS(dray_array_reduce(DRAY_SUM, z, (int[]){2}, 1, NULL, &r), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "axis 2 is out of bounds");
    dray_array_release(z);
    dray_array_release(af);
    dray_array_release(ai);
}

/* Reductions over fused sources: (x * 2 + 1).sum(axis=1) and var of a random array. */
TEST(fused_sources)
{
    const int64_t s[2] = {50, 64}, c[2] = {16, 20};
    double *v;
    dray_array *a = test_f64(2, s, c, -1, 1, &v), *t1, *t2, *r;
    ASSERT_OK(dray_array_binary_scalar(DRAY_MUL, a, 2, false, &t1));
    ASSERT_OK(dray_array_binary_scalar(DRAY_ADD, t1, 1, false, &t2));
    ASSERT_OK(dray_array_reduce(DRAY_SUM, t2, (int[]){1}, 1, NULL, &r));
    dray_ndarray *x = compute(r);
    for (int i = 0; i < 50; i++) {
        double s0 = 0;
        for (int j = 0; j < 64; j++)
            s0 += v[i * 64 + j] * 2 + 1;
        ASSERT_CLOSE(dray_ndarray_get(x, i), s0, 1e-13);
    }
    dray_ndarray_release(x);
    dray_array_release(r);
    dray_array *u;
    ASSERT_OK(dray_array_random_uniform(8, 2, s, c, 2, 5, &u));
    ASSERT_OK(dray_array_reduce(DRAY_VAR, u, (int[]){0}, 1, NULL, &r));
    x = compute(r);
    for (int j = 0; j < 64; j++) {
        double m = 0, q = 0;
        for (int i = 0; i < 50; i++)
            m += 2 + 3 * dray_random_uniform_at(8, (uint64_t)(i * 64 + j));
        m /= 50;
        for (int i = 0; i < 50; i++) {
            double d = 2 + 3 * dray_random_uniform_at(8, (uint64_t)(i * 64 + j)) - m;
            q += d * d;
        }
        ASSERT_CLOSE(dray_ndarray_get(x, j), q / 50, 1e-12);
    }
    dray_ndarray_release(x);
    dray_array_release(r);
    dray_array_release(u);
    dray_array_release(t1);
    dray_array_release(t2);
    dray_array_release(a);
    free(v);
}

RUN_TESTS(T_(all_ops_spanning_chunks), T_(all_ops_all_axes), T_(tree_with_many_chunks), T_(ints_bools_nans_empty),
          T_(fused_sources))
