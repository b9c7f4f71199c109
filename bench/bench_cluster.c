/* Cluster benchmarks, run by bench/cluster.sh against a head and two worker processes of this same
 * executable (started with DRAY_WORKER_ADDRESS, which makes dray_init serve as a worker). As the
 * driver (DRAY_ADDRESS set) it prints `name value unit` lines, each the median of --runs runs.
 * Usage: bench_cluster [--runs N] [--tasks N] [--latency-n N] [--calls N] [--put-mb N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dray/dray.h"

DRAY_FUNCTION(bc_noop)
{
    *result = dray_null();
    return DRAY_OK;
}

DRAY_FUNCTION(bc_inc)
{
    *result = dray_int(args[0].u.i + 1);
    return DRAY_OK;
}

/* n zero bytes: an object made on a worker node. */
DRAY_FUNCTION(bc_zeros)
{
    void *p;
    dray_status st = dray_bytes_create_uninit((size_t)args[0].u.i, result, &p);
    if (!st)
        memset(p, 0, (size_t)args[0].u.i);
    return st;
}

static dray_status cnt_init(dray_ctx *ctx, const dray_value *a, size_t n, void **state)
{
    (void)ctx, (void)a, (void)n;
    *state = calloc(1, sizeof(int64_t));
    return *state ? DRAY_OK : DRAY_ENOMEM;
}
static void cnt_free(void *s)
{
    free(s);
}
static dray_status cnt_incr(dray_ctx *ctx, void *s, const dray_value *a, size_t n, dray_value *r)
{
    (void)ctx, (void)a, (void)n;
    *r = dray_int(++*(int64_t *)s);
    return DRAY_OK;
}
DRAY_ACTOR_CLASS(BcCounter, cnt_init, cnt_free, {"incr", cnt_incr})

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void check(dray_status st, const char *what)
{
    if (st) {
        fprintf(stderr, "bench_cluster: %s: %s: %s\n", what, dray_status_str(st), dray_last_error());
        exit(1);
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double empty_tasks(dray_runtime *rt, int n)
{
    dray_ref **refs = malloc((size_t)n * sizeof(*refs));
    if (!refs)
        exit(1);
    double t0 = now();
    for (int i = 0; i < n; i++)
        check(dray_submit(rt, "bc_noop", NULL, 0, NULL, &refs[i]), "submit");
    check(dray_wait(rt, refs, (size_t)n, (size_t)n, -1, NULL, NULL), "wait");
    double t = now() - t0;
    for (int i = 0; i < n; i++) {
        check(dray_get(rt, refs[i], 0, NULL), "get");
        dray_ref_release(refs[i]);
    }
    free(refs);
    return n / t;
}

static double latency_us(dray_runtime *rt, int n)
{
    double t0 = now();
    for (int i = 0; i < n; i++) {
        dray_value a = dray_int(i), v;
        dray_ref *r;
        check(dray_submit(rt, "bc_inc", &a, 1, NULL, &r), "submit");
        check(dray_get(rt, r, -1, &v), "get");
        if (v.u.i != i + 1) {
            fprintf(stderr, "bench_cluster: wrong result %lld for %d\n", (long long)v.u.i, i);
            exit(1);
        }
        dray_ref_release(r);
    }
    return (now() - t0) / n * 1e6;
}

/* One actor on a worker node, n pipelined calls, then wait for all; results checked in order. */
static double actor_calls(dray_runtime *rt, int n)
{
    dray_actor *a;
    check(dray_actor_create(rt, "BcCounter", NULL, 0, NULL, &a), "actor_create");
    check(dray_actor_ready(rt, a, -1), "actor_ready");
    int m = dray_actor_method_index(a, "incr");
    dray_ref **refs = malloc((size_t)n * sizeof(*refs));
    if (!refs)
        exit(1);
    double t0 = now();
    for (int i = 0; i < n; i++)
        check(dray_actor_call_m(rt, a, m, NULL, 0, &refs[i]), "actor_call");
    check(dray_wait(rt, refs, (size_t)n, (size_t)n, -1, NULL, NULL), "wait");
    double t = now() - t0;
    for (int i = 0; i < n; i++) {
        dray_value v;
        check(dray_get(rt, refs[i], 0, &v), "get");
        if (v.u.i != i + 1) {
            fprintf(stderr, "bench_cluster: call %d returned %lld\n", i, (long long)v.u.i);
            exit(1);
        }
        dray_ref_release(refs[i]);
    }
    free(refs);
    dray_actor_release(a);
    return n / t;
}

/* An object made on a worker node and read by the driver on another process. */
static double put_get_gbps(dray_runtime *rt, int64_t bytes)
{
    dray_value a = dray_int(bytes), v;
    dray_ref *r;
    double t0 = now();
    check(dray_submit(rt, "bc_zeros", &a, 1, NULL, &r), "submit");
    check(dray_get(rt, r, -1, &v), "get");
    double t = now() - t0;
    size_t len;
    const unsigned char *p = dray_bytes_data(&v, &len);
    if (len != (size_t)bytes || p[len - 1] != 0) {
        fprintf(stderr, "bench_cluster: object of %zu bytes, want %lld\n", len, (long long)bytes);
        exit(1);
    }
    dray_value_release(&v);
    dray_ref_release(r);
    return bytes / t / 1e9;
}

int main(int argc, char **argv)
{
    int runs = 5, tasks = 100000, lat = 10000, calls = 100000;
    int64_t put_mb = 800;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tasks"))
            tasks = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--latency-n"))
            lat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--calls"))
            calls = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--put-mb"))
            put_mb = atoll(argv[i + 1]);
    }
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.progress = 0;
    cfg.num_workers = 1;
    dray_runtime *rt;
    check(dray_init(&cfg, &rt), "init"); /* a worker copy never returns from here */
    if (runs < 1 || runs > 99)
        runs = 5;
    double v[99];
    for (int i = 0; i < runs; i++)
        v[i] = empty_tasks(rt, tasks);
    printf("cluster_empty_tasks_per_s %.0f tasks/s\n", median(v, runs));
    for (int i = 0; i < runs; i++)
        v[i] = latency_us(rt, lat);
    printf("cluster_submit_get_latency_us %.1f us\n", median(v, runs));
    for (int i = 0; i < runs; i++)
        v[i] = actor_calls(rt, calls);
    printf("cluster_actor_calls_per_s %.0f calls/s\n", median(v, runs));
    for (int i = 0; i < runs; i++)
        v[i] = put_get_gbps(rt, put_mb << 20);
    printf("cluster_put_get_gbps %.2f GB/s\n", median(v, runs));
    fflush(stdout);
    check(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN), "shutdown");
    return 0;
}
