/* Helpers shared by the array tests: a runtime, deterministic test data from a tiny LCG (independent
 * of the generator under test), computing to dense arrays and element access by flat index. */
#ifndef DRAY_TEST_ARRAY_UTIL_H
#define DRAY_TEST_ARRAY_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dray/array.h"
#include "test.h"

static inline dray_runtime *test_rt(void)
{
    static dray_runtime *rt;
    if (!rt) {
        dray_config cfg;
        dray_config_init(&cfg);
        cfg.num_workers = 2;
        ASSERT_OK(dray_init(&cfg, &rt));
    }
    return rt;
}

/* A small LCG so test data does not come from the code under test. */
static uint64_t lcg_state = 12345;
static inline double lcg_unit(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) * 0x1p-53;
}

static inline int64_t shape_size(int nd, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= shape[d];
    return n;
}

/* A chunked float64 array from values in (lo, hi) and the same values in *ref (malloc'd). */
static inline dray_array *test_f64(int nd, const int64_t *shape, const int64_t *chunks, double lo,
                            double hi, double **ref)
{
    int64_t n = shape_size(nd, shape);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = lo + (hi - lo) * lcg_unit();
    dray_array *a;
    ASSERT_OK(dray_array_from_buffer(DRAY_FLOAT64, nd, shape, chunks, v, &a));
    *ref = v;
    return a;
}

static inline dray_ndarray *compute(dray_array *a)
{
    dray_ndarray *r;
    ASSERT_OK(dray_array_compute(test_rt(), a, &r));
    ASSERT_EQ(dray_ndarray_ndim(r), dray_array_ndim(a));
    for (int d = 0; d < dray_array_ndim(a); d++)
        ASSERT_EQ(dray_ndarray_shape(r)[d], dray_array_shape(a)[d]);
    ASSERT_EQ(dray_ndarray_dtype(r), dray_array_dtype(a));
    return r;
}

/* Relative/absolute closeness with NaNs equal. */
static inline int close_enough(double a, double b, double tol)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b))
        return a == b;
    return fabs(a - b) <= tol * (1 + fabs(b));
}

#define ASSERT_CLOSE(a, b, tol)                                                                    \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!close_enough(a_, b_, (tol)))                                                          \
            TEST_FAIL_("%s ~= %s: %.17g vs %.17g", #a, #b, a_, b_);                                \
    } while (0)

#endif
