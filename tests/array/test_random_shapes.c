/* Randomised checks on many small shapes (0-length axes, 1-element and ragged chunks, up to 4-D):
 * an elementwise chain with broadcasting, then a reduction over a random axis subset, against a
 * naive reference over the dense buffers. The shapes come from a fixed LCG, so failures repeat. */
#include "util.h"

static int64_t rnd(int64_t n) { return (int64_t)(lcg_unit() * (double)n); }

/* Reference reduction of dense v (shape s, nd axes) over mask into out (keepdims layout). */
static void ref_reduce(dray_reduce_op op, const double *v, int nd, const int64_t *s, unsigned mask,
                       double *out, int64_t nout)
{
    double *acc = calloc((size_t)nout + 1, sizeof(double)), *cnt = calloc((size_t)nout + 1, 8);
    double *m2 = calloc((size_t)nout + 1, sizeof(double));
    for (int64_t o = 0; o < nout; o++)
        acc[o] = op == DRAY_MIN ? INFINITY : op == DRAY_MAX ? -INFINITY : 0;
    int64_t n = shape_size(nd, s), idx[8] = {0};
    for (int pass = 0; pass < 2; pass++) {
        memset(idx, 0, sizeof(idx));
        for (int64_t i = 0; i < n; i++) {
            int64_t o = 0;
            for (int d = 0; d < nd; d++)
                o = o * ((mask >> d) & 1 ? 1 : s[d]) + ((mask >> d) & 1 ? 0 : idx[d]);
            double x = v[i];
            if (pass == 0) {
                cnt[o]++;
                if (op == DRAY_SUM || op == DRAY_MEAN || op == DRAY_VAR)
                    acc[o] += x;
                else if (op == DRAY_MIN)
                    acc[o] = x < acc[o] ? x : acc[o];
                else
                    acc[o] = x > acc[o] ? x : acc[o];
            } else if (op == DRAY_VAR) {
                double mean = acc[o] / cnt[o];
                m2[o] += (x - mean) * (x - mean);
            }
            for (int d = nd - 1; d >= 0; d--) {
                if (++idx[d] < s[d])
                    break;
                idx[d] = 0;
            }
        }
    }
    for (int64_t o = 0; o < nout; o++)
        out[o] = op == DRAY_MEAN ? acc[o] / cnt[o] : op == DRAY_VAR ? m2[o] / cnt[o] : acc[o];
    free(acc);
    free(cnt);
    free(m2);
}

TEST(many_shapes)
{
    lcg_state = 99;
    for (int iter = 0; iter < 120; iter++) {
        int nd = 1 + (int)rnd(4);
        int64_t s[4], ca[4], cb[4], sb[4];
        for (int d = 0; d < nd; d++) {
            s[d] = rnd(6); /* 0..5, so some axes are empty */
            ca[d] = 1 + rnd(3);
            cb[d] = 1 + rnd(4);
            sb[d] = rnd(3) == 0 ? 1 : s[d]; /* b broadcasts along some axes */
        }
        double *va, *vb;
        dray_array *a = test_f64(nd, s, ca, -2, 2, &va), *b = test_f64(nd, sb, cb, 0.5, 1.5, &vb);
        /* e = (a - b) * b + 1 */
        dray_array *t1, *t2, *e;
        ASSERT_OK(dray_array_binary(DRAY_SUB, a, b, &t1));
        ASSERT_OK(dray_array_binary(DRAY_MUL, t1, b, &t2));
        ASSERT_OK(dray_array_binary_scalar(DRAY_ADD, t2, 1, false, &e));
        int64_t n = shape_size(nd, s);
        double *ve = malloc(sizeof(double) * (size_t)(n + 1));
        int64_t idx[4] = {0};
        for (int64_t i = 0; i < n; i++) {
            int64_t bi = 0;
            for (int d = 0; d < nd; d++)
                bi = bi * sb[d] + (sb[d] == 1 ? 0 : idx[d]);
            ve[i] = (va[i] - vb[bi]) * vb[bi] + 1;
            for (int d = nd - 1; d >= 0; d--) {
                if (++idx[d] < s[d])
                    break;
                idx[d] = 0;
            }
        }
        dray_ndarray *x = compute(e);
        for (int64_t i = 0; i < n; i++)
            ASSERT_TRUE(dray_ndarray_get(x, i) == ve[i]);
        dray_ndarray_release(x);
        /* a reduction over a random non-empty axis subset */
        unsigned mask = 1 + (unsigned)rnd((1 << nd) - 1);
        dray_reduce_op ops[4] = {DRAY_SUM, DRAY_MEAN, DRAY_VAR, DRAY_MAX};
        dray_reduce_op op = ops[rnd(4)];
        bool empty = false;
        for (int d = 0; d < nd; d++)
            empty |= ((mask >> d) & 1) && s[d] == 0;
        if (op == DRAY_MAX && empty)
            op = DRAY_SUM;
        int axes[4], na = 0;
        for (int d = 0; d < nd; d++)
            if ((mask >> d) & 1)
                axes[na++] = d;
        dray_reduce_opts o = {true, 0, 2 + (int)rnd(3)};
        dray_array *r;
        ASSERT_OK(dray_array_reduce(op, e, axes, na, &o, &r));
        x = compute(r);
        int64_t nout = dray_ndarray_size(x);
        double *want = malloc(sizeof(double) * (size_t)(nout + 1));
        ref_reduce(op, ve, nd, s, mask, want, nout);
        for (int64_t i = 0; i < nout; i++)
            if (!close_enough(dray_ndarray_get(x, i), want[i], 1e-12))
                TEST_FAIL_("iter %d op %d mask %u at %lld: %.17g vs %.17g", iter, op, mask,
                           (long long)i, dray_ndarray_get(x, i), want[i]);
        free(want);
        dray_ndarray_release(x);
        dray_array_release(r);
        dray_array_release(e);
        dray_array_release(t1);
        dray_array_release(t2);
        dray_array_release(a);
        dray_array_release(b);
        free(va);
        free(vb);
        free(ve);
    }
}

RUN_TESTS(T_(many_shapes))
