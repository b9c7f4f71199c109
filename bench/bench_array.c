/* Array benchmarks (bench/array.sh runs them): the seed example, its hardware-bound loop, a fused
 * elementwise expression, blocked matmul against one big dgemm, and the seed's peak RSS. Each mode
 * prints `name value unit` lines; timings are medians of `reps` runs. */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "dray/array.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

_Noreturn static void die(const char *what)
{
    fprintf(stderr, "bench_array: %s: %s\n", what, dray_last_error());
    exit(1);
}

enum { N = 10000, C = 1000 };

/* CPU seconds of the whole process (all threads, user + system): unlike wall time, barely moved
 * by other processes competing for the cores. */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static double seed_once(dray_runtime *rt)
{
    const int64_t shape[2] = {N, N}, chunks[2] = {C, C};
    dray_array *x, *m;
    dray_ndarray *r;
    double t0 = now();
    if (dray_array_random_uniform(42, 2, shape, chunks, 0, 1, &x) ||
        dray_array_reduce(DRAY_MEAN, x, (int[]){0}, 1, NULL, &m) ||
        dray_array_compute(rt, m, &r))
        die("seed example");
    double dt = now() - t0;
    if (dray_ndarray_size(r) != N || dray_ndarray_get(r, 0) < 0.49 || dray_ndarray_get(r, 0) > 0.51)
        die("seed result");
    dray_ndarray_release(r);
    dray_array_release(m);
    dray_array_release(x);
    return dt;
}

/* The bound: 2 threads, each column-summing half the rows with the same generator, no runtime. */
typedef struct bound_arg {
    int64_t r0, r1;
    double *acc;
} bound_arg;

static void *bound_thread(void *p)
{
    bound_arg *a = p;
    /* column blocks of C rows of C, as the chunked computation does: the fused column-sum kernel */
    for (int64_t c0 = 0; c0 < N; c0 += C)
        for (int64_t i = a->r0; i < a->r1; i += C) {
            int64_t rows = a->r1 - i < C ? a->r1 - i : C;
            dray_random_uniform_colsum(42, (uint64_t)(i * N + c0), N, (size_t)rows, C, a->acc + c0);
        }
    return NULL;
}

static double bound_once(int threads)
{
    pthread_t th[16];
    bound_arg args[16];
    double t0 = now();
    for (int t = 0; t < threads; t++) {
        args[t] = (bound_arg){N * t / threads, N * (t + 1) / threads, calloc(N, sizeof(double))};
        pthread_create(&th[t], NULL, bound_thread, &args[t]);
    }
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    double *mean = args[0].acc;
    for (int t = 1; t < threads; t++)
        for (int j = 0; j < N; j++)
            mean[j] += args[t].acc[j];
    for (int j = 0; j < N; j++)
        mean[j] /= N;
    double dt = now() - t0;
    if (mean[0] < 0.49 || mean[0] > 0.51)
        die("bound result");
    for (int t = 0; t < threads; t++)
        free(args[t].acc);
    return dt;
}

static dray_array *persisted_random(dray_runtime *rt, uint64_t seed, int nd, const int64_t *shape,
                                    const int64_t *chunks)
{
    dray_array *u, *p;
    if (dray_array_random_uniform(seed, nd, shape, chunks, 0, 1, &u) ||
        dray_array_persist(rt, u, &p))
        die("persist input");
    dray_array_release(u);
    return p;
}

static double elementwise_once(dray_runtime *rt, dray_array *x, dray_array *y)
{
    dray_array *t1, *t2, *t3, *p;
    double t0 = now();
    if (dray_array_binary_scalar(DRAY_MUL, x, 2, false, &t1) ||
        dray_array_binary(DRAY_ADD, t1, y, &t2) ||
        dray_array_binary_scalar(DRAY_DIV, t2, 3, false, &t3))
        die("elementwise build");
    /* persist returns once every result chunk is in the store */
    if (dray_array_persist(rt, t3, &p))
        die("elementwise");
    double dt = now() - t0;
    dray_array_release(p);
    dray_array_release(t1);
    dray_array_release(t2);
    dray_array_release(t3);
    return dt;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "seed";
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    double t[64];
    reps = reps < 1 ? 1 : reps > 64 ? 64 : reps;
    if (!strcmp(mode, "bound")) {
        for (int k = 0; k < reps; k++)
            t[k] = bound_once(2);
        printf("array_bound_s %.4f s\n", median(t, reps));
        return 0;
    }
    dray_runtime *rt;
    if (dray_init(NULL, &rt))
        die("init");
    if (!strcmp(mode, "seed")) {
        double cpu[64];
        seed_once(rt); /* warm-up: page faults, thread start */
        for (int k = 0; k < reps; k++) {
            double c0 = cpu_now();
            t[k] = seed_once(rt);
            cpu[k] = cpu_now() - c0;
        }
        printf("array_random_mean_s %.4f s\n", median(t, reps));
        printf("array_random_mean_cpu_s %.4f s\n", median(cpu, reps));
    } else if (!strcmp(mode, "rss")) {
        seed_once(rt);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("array_sum_peak_rss_mb %.1f MB\n", (double)ru.ru_maxrss / 1024.0);
    } else if (!strcmp(mode, "elementwise")) {
        const int64_t n = argc > 3 ? atoll(argv[3]) : 100000000;
        const int64_t ch = argc > 4 ? atoll(argv[4]) : 1000000;
        dray_array *x = persisted_random(rt, 1, 1, &n, &ch), *y = persisted_random(rt, 2, 1, &n, &ch);
        for (int k = 0; k < reps; k++)
            t[k] = elementwise_once(rt, x, y);
        double s = median(t, reps);
        /* two float64 inputs read, one written */
        printf("array_elementwise_s %.4f s\n", s);
        printf("array_elementwise_gbps %.2f GB/s\n", 3.0 * 8.0 * (double)n / s / 1e9);
        dray_array_release(x);
        dray_array_release(y);
    } else if (!strcmp(mode, "matmul")) {
        const int64_t n = argc > 3 ? atoll(argv[3]) : 4000, cs = 1000;
        const int64_t shape[2] = {n, n}, chunks[2] = {cs, cs};
        dray_array *a = persisted_random(rt, 1, 2, shape, chunks);
        dray_array *b = persisted_random(rt, 2, 2, shape, chunks);
        dray_ndarray *da, *db, *dc;
        if (dray_array_compute(rt, a, &da) || dray_array_compute(rt, b, &db) ||
            dray_ndarray_create(DRAY_FLOAT64, 2, shape, &dc))
            die("matmul inputs");
        double flops = 2.0 * (double)n * (double)n * (double)n;
        for (int k = 0; k < reps; k++) {
            dray_array *m, *p;
            double t0 = now();
            if (dray_array_matmul(a, b, &m) || dray_array_persist(rt, m, &p))
                die("matmul");
            t[k] = now() - t0;
            dray_array_release(p);
            dray_array_release(m);
        }
        double s = median(t, reps);
        /* the reference: one dgemm call over the whole matrices, OpenBLAS threads = workers */
        openblas_set_num_threads(dray_runtime_num_workers(rt));
        for (int k = 0; k < reps; k++) {
            double t0 = now();
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0,
                        dray_ndarray_cdata(da), (int)n, dray_ndarray_cdata(db), (int)n, 0.0,
                        dray_ndarray_data(dc), (int)n);
            t[k] = now() - t0;
        }
        openblas_set_num_threads(1);
        double ref = median(t, reps);
        printf("array_matmul_gflops %.2f GFLOP/s\n", flops / s / 1e9);
        printf("array_matmul_dgemm_gflops %.2f GFLOP/s\n", flops / ref / 1e9);
        printf("array_matmul_vs_dgemm %.3f ratio\n", ref / s);
        dray_ndarray_release(da);
        dray_ndarray_release(db);
        dray_ndarray_release(dc);
        dray_array_release(a);
        dray_array_release(b);
    } else {
        fprintf(stderr, "usage: bench_array seed|bound|rss|elementwise|matmul [reps] [n]\n");
        return 2;
    }
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return 0;
}
