/* Array benchmarks (bench/array.sh runs them): the seed example, its hardware-bound loop, a fused
 * elementwise expression, blocked matmul against one big dgemm, and the seed's peak RSS; `generators`
 * (run by hand) compares ARS-5 with Philox. Each mode prints `name value unit` lines; timings are
 * medians of `reps` runs. */
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

/* ==== Generator comparison (mode `generators`): one thread, 10^8 numbers generated and summed ====
 * ARS-5 through dray's column-sum kernel against a straightforward AVX2 Philox4x32-10 (Salmon et
 * al.'s multiply-based generator, 8 blocks per loop in structure-of-arrays form), which is why dray
 * uses ARS-5 (docs/array.md). The Philox loop is checked against Random123's known answer first. */
static double thread_cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#if defined(__x86_64__)
#include <immintrin.h>
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* hi and lo 32-bit halves of x * m in every 32-bit lane */
#define PHILOX_MULHILO(x, m, hi, lo)                                                               \
    do {                                                                                           \
        __m256i pe_ = _mm256_mul_epu32(x, m), po_ = _mm256_mul_epu32(_mm256_srli_epi64(x, 32), m); \
        hi = _mm256_blend_epi32(_mm256_srli_epi64(pe_, 32), po_, 0xAA);                             \
        lo = _mm256_blend_epi32(pe_, _mm256_slli_epi64(po_, 32), 0xAA);                             \
    } while (0)

/* Counters c0 .. c0 + 8*iters (word 0; words 1-3 zero) under key (k0, k1): returns the sum of the
 * 52-bit doubles of both 64-bit halves of every block; out[4] gets block c0's words. */
__attribute__((target("avx2"))) static double philox_sum(uint32_t c0, uint64_t iters, uint32_t k0,
                                                       uint32_t k1, uint32_t out[4])
{
    const __m256i m0 = _mm256_set1_epi32((int)PHILOX_M0), m1 = _mm256_set1_epi32((int)PHILOX_M1);
    __m256i ctr = _mm256_add_epi32(_mm256_set1_epi32((int)c0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i ks0[10], ks1[10];
    for (int r = 0; r < 10; r++) {
        ks0[r] = _mm256_set1_epi32((int)(k0 + (uint32_t)r * PHILOX_W0));
        ks1[r] = _mm256_set1_epi32((int)(k1 + (uint32_t)r * PHILOX_W1));
    }
    const __m256i expo = _mm256_set1_epi64x(0x3ff0000000000000LL);
    __m256d acc = _mm256_setzero_pd();
    for (uint64_t i = 0; i < iters; i++) {
        __m256i x0 = ctr, x1 = _mm256_setzero_si256(), x2 = x1, x3 = x1;
        ctr = _mm256_add_epi32(ctr, _mm256_set1_epi32(8));
        for (int r = 0; r < 10; r++) {
            __m256i h0, l0, h1, l1;
            PHILOX_MULHILO(x0, m0, h0, l0);
            PHILOX_MULHILO(x2, m1, h1, l1);
            x0 = _mm256_xor_si256(_mm256_xor_si256(h1, x1), ks0[r]);
            x1 = l1;
            x2 = _mm256_xor_si256(_mm256_xor_si256(h0, x3), ks1[r]);
            x3 = l0;
        }
        if (i == 0) {
            uint32_t w[4][8];
            _mm256_storeu_si256((__m256i *)w[0], x0);
            _mm256_storeu_si256((__m256i *)w[1], x1);
            _mm256_storeu_si256((__m256i *)w[2], x2);
            _mm256_storeu_si256((__m256i *)w[3], x3);
            for (int q = 0; q < 4; q++)
                out[q] = w[q][0];
        }
        /* each block's two 64-bit words (x1:x0, x3:x2), top 52 bits as [1, 2) doubles */
        __m256i w0 = _mm256_unpacklo_epi32(x0, x1), w1 = _mm256_unpackhi_epi32(x0, x1);
        __m256i w2 = _mm256_unpacklo_epi32(x2, x3), w3 = _mm256_unpackhi_epi32(x2, x3);
#define PHILOX_ADD(w) \
    acc = _mm256_add_pd(acc, _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(w, 12), expo)))
        PHILOX_ADD(w0);
        PHILOX_ADD(w1);
        PHILOX_ADD(w2);
        PHILOX_ADD(w3);
#undef PHILOX_ADD
    }
    double t[4];
    _mm256_storeu_pd(t, acc);
    return t[0] + t[1] + t[2] + t[3] - 16.0 * (double)iters;
}

static void generators(int reps)
{
    double t[64];
    if (!__builtin_cpu_supports("avx2")) {
        fprintf(stderr, "bench_array generators: needs AVX2\n");
        exit(2);
    }
    /* Random123 kat_vectors: philox4x32 10, counter (1, 0, 0, 0), key (1, 0) */
    uint32_t w[4];
    philox_sum(1, 1, 1, 0, w);
    if (w[0] != 0xac08141b || w[1] != 0xdfc5ccbe || w[2] != 0x79c07a47 || w[3] != 0xa7f66093) {
        fprintf(stderr, "bench_array generators: Philox known answer mismatch\n");
        exit(1);
    }
    double *acc = calloc(C, sizeof(double)), sink = 0;
    for (int k = 0; k < reps; k++) { /* 100 blocks of 1000 x 1000, as the seed's partials */
        double t0 = thread_cpu_now();
        for (int b = 0; b < 100; b++)
            dray_random_uniform_colsum(42, (uint64_t)b * C * C, C, C, C, acc);
        t[k] = thread_cpu_now() - t0;
    }
    printf("array_gen_ars5_colsum_s %.4f s\n", median(t, reps));
    for (int k = 0; k < reps; k++) { /* 10^8 doubles: 6.25e6 iterations of 8 blocks x 2 */
        double t0 = thread_cpu_now();
        sink += philox_sum(0, 6250000, 42, 0, w);
        t[k] = thread_cpu_now() - t0;
    }
    printf("array_gen_philox4x32_10_s %.4f s\n", median(t, reps));
    if (acc[0] < 0 || sink < 0)
        die("generators");
    free(acc);
}
#else
static void generators(int reps)
{
    (void)reps;
    fprintf(stderr, "bench_array generators: x86-64 only\n");
    exit(2);
}
#endif

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "seed";
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    double t[64];
    reps = reps < 1 ? 1 : reps > 64 ? 64 : reps;
    if (!strcmp(mode, "generators")) {
        generators(reps);
        return 0;
    }
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
        fprintf(stderr, "usage: bench_array seed|bound|rss|elementwise|matmul|generators [reps] [n]\n");
        return 2;
    }
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return 0;
}
