/* Elementwise operations against naive C loops: every binary and unary op, broadcasting, ragged and
 * 1-element chunks, 0-length axes, type promotion and scalars, and fusion into one task per chunk. */
#include "util.h"

static double ref_bin(dray_binop op, double x, double y)
{
    switch (op) {
    case DRAY_ADD: return x + y;
    case DRAY_SUB: return x - y;
    case DRAY_MUL: return x * y;
    case DRAY_DIV: return x / y;
    case DRAY_POW: return pow(x, y);
    case DRAY_LT: return x < y;
    case DRAY_LE: return x <= y;
    case DRAY_GT: return x > y;
    case DRAY_GE: return x >= y;
    case DRAY_EQ: return x == y;
    case DRAY_NE: return x != y;
    case DRAY_MINIMUM: return x <= y ? x : y;
    default: return x >= y ? x : y;
    }
}

/* (4,1,6) op (3,1): broadcast to (4,3,6), with different ragged chunkings. */
TEST(binary_broadcast)
{
    const int64_t sa[3] = {4, 1, 6}, ca[3] = {3, 1, 4}, sb[2] = {3, 1}, cb[2] = {2, 1};
    double *va, *vb;
    dray_array *a = test_f64(3, sa, ca, 0.5, 2.0, &va), *b = test_f64(2, sb, cb, 0.5, 2.0, &vb);
    vb[1] = va[2]; /* an exact tie for the comparisons */
    dray_array_release(b);
    ASSERT_OK(dray_array_from_buffer(DRAY_FLOAT64, 2, sb, cb, vb, &b));
    for (int op = 0; op < DRAY__BINOP_COUNT; op++) {
        dray_array *c;
        ASSERT_OK(dray_array_binary((dray_binop)op, a, b, &c));
        ASSERT_EQ(dray_array_ndim(c), 3);
        ASSERT_EQ(dray_array_shape(c)[1], 3);
        ASSERT_EQ(dray_array_dtype(c), op >= DRAY_LT && op <= DRAY_NE ? DRAY_BOOL : DRAY_FLOAT64);
        dray_ndarray *r = compute(c);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < 6; k++)
                    ASSERT_CLOSE(dray_ndarray_get(r, (i * 3 + j) * 6 + k),
                                 ref_bin((dray_binop)op, va[i * 6 + k], vb[j]), 1e-15);
        dray_ndarray_release(r);
        dray_array_release(c);
    }
    dray_array_release(a);
    dray_array_release(b);
    free(va);
    free(vb);
}

TEST(unary_and_where)
{
    const int64_t s[2] = {5, 9}, c[2] = {2, 4};
    double *v;
    dray_array *a = test_f64(2, s, c, -3.0, 3.0, &v);
    double (*fns[])(double) = {NULL, fabs, sqrt, exp, log, sin, cos};
    for (int op = DRAY_NEG; op <= DRAY_COS; op++) {
        dray_array *u;
        ASSERT_OK(dray_array_unary((dray_unop)op, a, &u));
        dray_ndarray *r = compute(u);
        for (int64_t i = 0; i < 45; i++)
            ASSERT_CLOSE(dray_ndarray_get(r, i), op == DRAY_NEG ? -v[i] : fns[op](v[i]), 1e-15);
        dray_ndarray_release(r);
        dray_array_release(u);
    }
    /* where(a > 0, a, -1 * a) == abs(a), then NOT */
    dray_array *pos, *neg, *w, *notpos;
    ASSERT_OK(dray_array_binary_scalar(DRAY_GT, a, 0.0, false, &pos));
    ASSERT_OK(dray_array_binary_scalar(DRAY_MUL, a, -1.0, true, &neg));
    ASSERT_OK(dray_array_where(pos, a, neg, &w));
    ASSERT_OK(dray_array_unary(DRAY_NOT, pos, &notpos));
    dray_ndarray *r = compute(w), *rn = compute(notpos);
    for (int64_t i = 0; i < 45; i++) {
        ASSERT_TRUE(dray_ndarray_get(r, i) == fabs(v[i]));
        ASSERT_TRUE(dray_ndarray_get(rn, i) == (v[i] <= 0));
    }
    dray_ndarray_release(r);
    dray_ndarray_release(rn);
    dray_array_release(w);
    dray_array_release(notpos);
    dray_array_release(pos);
    dray_array_release(neg);
    dray_array_release(a);
    free(v);
}

TEST(promotion)
{
    const int64_t n = 7, ch = 3;
    int32_t i32[7] = {1, -2, 2147483647, 4, 5, -6, 7};
    int64_t i64[7] = {10, 20, 30, -40, 50, 60, INT64_MAX};
    float f32[7] = {0.5f, 1.25f, -2.0f, 3.1f, 1e-3f, 7.0f, 9.5f};
    uint8_t b[7] = {1, 0, 1, 1, 0, 0, 1};
    dray_array *ai, *al, *af, *ab, *r;
    ASSERT_OK(dray_array_from_buffer(DRAY_INT32, 1, &n, &ch, i32, &ai));
    ASSERT_OK(dray_array_from_buffer(DRAY_INT64, 1, &n, &ch, i64, &al));
    ASSERT_OK(dray_array_from_buffer(DRAY_FLOAT32, 1, &n, &ch, f32, &af));
    ASSERT_OK(dray_array_from_buffer(DRAY_BOOL, 1, &n, &ch, b, &ab));
    /* int32 + int32 wraps in int32 */
    ASSERT_OK(dray_array_binary(DRAY_ADD, ai, ai, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_INT32);
    dray_ndarray *x = compute(r);
    ASSERT_EQ(((const int32_t *)dray_ndarray_cdata(x))[2], -2);
    dray_ndarray_release(x);
    dray_array_release(r);
    /* int32 + float32 -> float64; int64 * float32 -> float64 */
    ASSERT_OK(dray_array_binary(DRAY_ADD, ai, af, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_FLOAT64);
    x = compute(r);
    for (int k = 0; k < 7; k++)
        ASSERT_TRUE(dray_ndarray_get(x, k) == (double)i32[k] + (double)f32[k]);
    dray_ndarray_release(x);
    dray_array_release(r);
    /* float32 * float32 stays float32 and rounds like float arithmetic */
    ASSERT_OK(dray_array_binary(DRAY_MUL, af, af, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_FLOAT32);
    x = compute(r);
    for (int k = 0; k < 7; k++)
        ASSERT_TRUE(((const float *)dray_ndarray_cdata(x))[k] == f32[k] * f32[k]);
    dray_ndarray_release(x);
    dray_array_release(r);
    /* int / int -> float64 true division; int64 + bool -> int64 */
    ASSERT_OK(dray_array_binary(DRAY_DIV, al, ai, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_FLOAT64);
    x = compute(r);
    for (int k = 0; k < 7; k++)
        ASSERT_TRUE(dray_ndarray_get(x, k) == (double)i64[k] / (double)i32[k]);
    dray_ndarray_release(x);
    dray_array_release(r);
    ASSERT_OK(dray_array_binary(DRAY_ADD, al, ab, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_INT64);
    x = compute(r);
    ASSERT_TRUE(((const int64_t *)dray_ndarray_cdata(x))[6] == INT64_MIN); /* wraps */
    ASSERT_TRUE(((const int64_t *)dray_ndarray_cdata(x))[0] == 11);
    dray_ndarray_release(x);
    dray_array_release(r);
    /* bool + bool is logical or; bool - bool is a type error */
    ASSERT_OK(dray_array_binary(DRAY_ADD, ab, ab, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_BOOL);
    dray_array_release(r);
    ASSERT_STATUS(dray_array_binary(DRAY_SUB, ab, ab, &r), DRAY_ETYPE);
    /* scalars: int32 array * 3 stays int32; * 2.5 becomes float64; float32 + 1.5 stays float32 */
    ASSERT_OK(dray_array_binary_scalar(DRAY_MUL, ai, 3, false, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_INT32);
    dray_array_release(r);
    ASSERT_OK(dray_array_binary_scalar(DRAY_MUL, ai, 2.5, false, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_FLOAT64);
    dray_array_release(r);
    ASSERT_OK(dray_array_binary_scalar(DRAY_ADD, af, 1.5, false, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_FLOAT32);
    dray_array_release(r);
    /* integer pow, sqrt of ints -> float64, astype */
    ASSERT_OK(dray_array_binary_scalar(DRAY_POW, al, 2, false, &r));
    ASSERT_EQ(dray_array_dtype(r), DRAY_INT64);
    x = compute(r);
    ASSERT_EQ(((const int64_t *)dray_ndarray_cdata(x))[3], 1600);
    dray_ndarray_release(x);
    dray_array_release(r);
    ASSERT_OK(dray_array_astype(af, DRAY_INT32, &r));
    x = compute(r);
    ASSERT_EQ(((const int32_t *)dray_ndarray_cdata(x))[3], 3);
    ASSERT_EQ(((const int32_t *)dray_ndarray_cdata(x))[2], -2);
    dray_ndarray_release(x);
    dray_array_release(r);
    dray_array_release(ai);
    dray_array_release(al);
    dray_array_release(af);
    dray_array_release(ab);
}

/* (x * 2 + y) / 3 over chunk-aligned inputs: one task per output chunk, no temporaries. */
TEST(fusion)
{
    const int64_t s[2] = {30, 40}, c[2] = {10, 15};
    double *vx, *vy;
    dray_array *x = test_f64(2, s, c, -1, 1, &vx), *y = test_f64(2, s, c, -1, 1, &vy);
    dray_array *t1, *t2, *t3;
    ASSERT_OK(dray_array_binary_scalar(DRAY_MUL, x, 2, false, &t1));
    ASSERT_OK(dray_array_binary(DRAY_ADD, t1, y, &t2));
    ASSERT_OK(dray_array_binary_scalar(DRAY_DIV, t2, 3, false, &t3));
    dray_ndarray *r;
    size_t tasks = 0;
    ASSERT_OK(dray_array_compute_stats(test_rt(), t3, &r, &tasks));
    ASSERT_EQ(tasks, 3 * 3);
    for (int64_t i = 0; i < 1200; i++)
        ASSERT_TRUE(dray_ndarray_get(r, i) == (vx[i] * 2 + vy[i]) / 3);
    dray_ndarray_release(r);
    /* a random source fused in too: still one task per chunk */
    dray_array *u, *t4;
    ASSERT_OK(dray_array_random_uniform(3, 2, s, c, 0, 1, &u));
    ASSERT_OK(dray_array_binary(DRAY_MUL, t3, u, &t4));
    ASSERT_OK(dray_array_compute_stats(test_rt(), t4, &r, &tasks));
    ASSERT_EQ(tasks, 9);
    for (int64_t i = 0; i < 1200; i++)
        ASSERT_TRUE(dray_ndarray_get(r, i) ==
                    (vx[i] * 2 + vy[i]) / 3 * dray_random_uniform_at(3, (uint64_t)i));
    dray_ndarray_release(r);
    dray_array_release(u);
    dray_array_release(t4);
    dray_array_release(t1);
    dray_array_release(t2);
    dray_array_release(t3);
    dray_array_release(x);
    dray_array_release(y);
    free(vx);
    free(vy);
}

/* Misaligned chunkings are rechunked, 0-length axes and 1-element chunks work. */
TEST(edges)
{
    const int64_t s[2] = {6, 5}, c1[2] = {4, 2}, c2[2] = {1, 1}, z[2] = {0, 5};
    double *va, *vb, *vz;
    dray_array *a = test_f64(2, s, c1, 0, 1, &va), *b = test_f64(2, s, c2, 0, 1, &vb);
    dray_array *zz = test_f64(2, z, c1, 0, 1, &vz), *r, *rz;
    ASSERT_OK(dray_array_binary(DRAY_SUB, a, b, &r));
    dray_ndarray *x = compute(r);
    for (int64_t i = 0; i < 30; i++)
        ASSERT_TRUE(dray_ndarray_get(x, i) == va[i] - vb[i]);
    dray_ndarray_release(x);
    ASSERT_OK(dray_array_binary_scalar(DRAY_ADD, zz, 1, false, &rz));
    x = compute(rz);
    ASSERT_EQ(dray_ndarray_size(x), 0);
    dray_ndarray_release(x);
    /* arange / linspace / full */
    dray_array *ar, *ls, *fu;
    ASSERT_OK(dray_array_arange(DRAY_INT64, 3, 20, 4, 2, &ar));
    ASSERT_OK(dray_array_linspace(0, 1, 11, true, 3, &ls));
    ASSERT_OK(dray_array_full(DRAY_INT32, 2, s, c1, 7, &fu));
    dray_ndarray *xa = compute(ar), *xl = compute(ls), *xf = compute(fu);
    ASSERT_EQ(dray_ndarray_size(xa), 5);
    for (int k = 0; k < 5; k++)
        ASSERT_EQ(((const int64_t *)dray_ndarray_cdata(xa))[k], 3 + 4 * k);
    for (int k = 0; k < 11; k++)
        ASSERT_NEAR(dray_ndarray_get(xl, k), k / 10.0, 1e-15);
    ASSERT_TRUE(dray_ndarray_get(xl, 10) == 1.0);
    for (int k = 0; k < 30; k++)
        ASSERT_EQ(((const int32_t *)dray_ndarray_cdata(xf))[k], 7);
    dray_ndarray_release(xa);
    dray_ndarray_release(xl);
    dray_ndarray_release(xf);
    dray_array_release(ar);
    dray_array_release(ls);
    dray_array_release(fu);
    dray_array_release(r);
    dray_array_release(rz);
    dray_array_release(a);
    dray_array_release(b);
    dray_array_release(zz);
    free(va);
    free(vb);
    free(vz);
}

/* x = x * x repeated 40 times shares every subtree: building and compiling stays linear, the
 * program splits when it outgrows one task, and the values are right. */
TEST(deep_shared)
{
    const int64_t n = 16, ch = 5;
    double v[16];
    for (int i = 0; i < 16; i++)
        v[i] = 1.0 + i / 1e6;
    dray_array *x;
    ASSERT_OK(dray_array_from_buffer(DRAY_FLOAT64, 1, &n, &ch, v, &x));
    for (int k = 0; k < 40; k++) {
        dray_array *y;
        ASSERT_OK(dray_array_binary(DRAY_MUL, x, x, &y));
        dray_array_release(x);
        x = y;
    }
    dray_ndarray *r;
    size_t tasks;
    ASSERT_OK(dray_array_compute_stats(test_rt(), x, &r, &tasks));
    ASSERT_EQ(tasks, 4); /* all 40 multiplications fused: one task per chunk */
    dray_ndarray_release(r);
    /* 60 more: the program splits (48 instructions at most) but stays right */
    for (int k = 0; k < 60; k++) {
        dray_array *y;
        ASSERT_OK(dray_array_binary_scalar(k % 2 ? DRAY_DIV : DRAY_MUL, x, 1.5, false, &y));
        dray_array_release(x);
        x = y;
    }
    ASSERT_OK(dray_array_compute_stats(test_rt(), x, &r, &tasks));
    ASSERT_TRUE(tasks >= 8 && tasks <= 24); /* 160 instructions per chunk: 3 to 6 programs */
    for (int i = 0; i < 16; i++) {
        double w = v[i];
        for (int k = 0; k < 40; k++)
            w = w * w;
        for (int k = 0; k < 60; k++)
            w = k % 2 ? w / 1.5 : w * 1.5;
        ASSERT_TRUE(dray_ndarray_get(r, i) == w);
    }
    dray_ndarray_release(r);
    ASSERT_OK(dray_array_compute_stats(test_rt(), x, &r, &tasks));
    for (int i = 0; i < 16; i++) {
        double w = v[i];
        for (int k = 0; k < 40; k++)
            w = w * w;
        ASSERT_TRUE(dray_ndarray_get(r, i) == w);
    }
    dray_ndarray_release(r);
    dray_array_release(x);
}

/* Narrow chunks spanning every axis but the first are walked as one run: values, reductions over
 * all axes (with flat argmin) and a random source must match the row-by-row definitions. */
TEST(narrow_chunks)
{
    const int64_t s[3] = {300, 3, 2}, c[3] = {70, 3, 2};
    double *v;
    dray_array *a = test_f64(3, s, c, -1, 1, &v), *u, *e, *sum, *am;
    ASSERT_OK(dray_array_random_uniform(4, 3, s, c, 0, 1, &u));
    ASSERT_OK(dray_array_binary(DRAY_ADD, a, u, &e));
    ASSERT_OK(dray_array_reduce(DRAY_SUM, e, NULL, 0, NULL, &sum));
    ASSERT_OK(dray_array_reduce(DRAY_ARGMIN, e, NULL, 0, NULL, &am));
    dray_ndarray *x = compute(e), *xs = compute(sum), *xa = compute(am);
    double total = 0, best = INFINITY;
    int64_t bi = -1;
    for (int64_t i = 0; i < 1800; i++) {
        double w = v[i] + dray_random_uniform_at(4, (uint64_t)i);
        ASSERT_TRUE(dray_ndarray_get(x, i) == w);
        total += w;
        if (w < best) {
            best = w;
            bi = i;
        }
    }
    ASSERT_CLOSE(dray_ndarray_get(xs, 0), total, 1e-12);
    ASSERT_EQ(((const int64_t *)dray_ndarray_cdata(xa))[0], bi);
    dray_ndarray_release(x);
    dray_ndarray_release(xs);
    dray_ndarray_release(xa);
    dray_array_release(am);
    dray_array_release(sum);
    dray_array_release(e);
    dray_array_release(u);
    dray_array_release(a);
    free(v);
}

RUN_TESTS(T_(narrow_chunks), T_(deep_shared), T_(binary_broadcast), T_(unary_and_where), T_(promotion), T_(fusion), T_(edges))
