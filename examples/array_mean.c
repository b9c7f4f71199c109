/* The seed's array example: random((10000, 10000), chunks=(1000, 1000)).mean(axis=0) on the embedded
 * runtime, checked column by column against the generator evaluated directly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "dray/array.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void)
{
    const int64_t n = 10000, shape[2] = {n, n}, chunks[2] = {1000, 1000};
    const uint64_t seed = 42;
    dray_runtime *rt = NULL;
    dray_array *x = NULL, *m = NULL;
    dray_ndarray *r = NULL;
    size_t tasks = 0;
    int rc = 1;
    if (dray_init(NULL, &rt) != DRAY_OK ||
        dray_array_random_uniform(seed, 2, shape, chunks, 0.0, 1.0, &x) != DRAY_OK ||
        dray_array_reduce(DRAY_MEAN, x, (int[]){0}, 1, NULL, &m) != DRAY_OK)
        goto out;
    double t0 = now();
    if (dray_array_compute_stats(rt, m, &r, &tasks) != DRAY_OK)
        goto out;
    double dt = now() - t0;
    const double *col = dray_ndarray_cdata(r);
    double total = 0, worst = 0;
    for (int64_t j = 0; j < n; j++)
        total += col[j];
    /* Independent check: a few columns summed straight from the generator. */
    for (int64_t j = 0; j < n; j += 1237) {
        double s = 0;
        for (int64_t i = 0; i < n; i++)
            s += dray_random_uniform_at(seed, (uint64_t)(i * n + j));
        double err = fabs(s / (double)n - col[j]) / (s / (double)n);
        worst = err > worst ? err : worst;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("random((10000, 10000), chunks=(1000, 1000)).mean(axis=0)\n");
    printf("  shape (%lld,), first %.6f %.6f %.6f, mean of means %.6f\n",
           (long long)dray_ndarray_shape(r)[0], col[0], col[1], col[2], total / (double)n);
    printf("  %zu tasks, %.4f s, peak RSS %.1f MB, worst column error %.2g\n", tasks, dt,
           (double)ru.ru_maxrss / 1024.0, worst);
    /* The mean of 1e8 uniforms is 0.5 within a few 2.9e-5 standard errors. */
    if (fabs(total / (double)n - 0.5) < 2e-4 && worst < 1e-12 && dray_ndarray_shape(r)[0] == n) {
        printf("  check: ok\n");
        rc = 0;
    } else {
        printf("  check: FAILED\n");
    }
out:
    if (rc && !r)
        fprintf(stderr, "array_mean: %s\n", dray_last_error());
    dray_ndarray_release(r);
    dray_array_release(m);
    dray_array_release(x);
    if (rt)
        dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return rc;
}
