/* Cluster benchmarks, run by bench/cluster.sh against a head and two worker processes of this same
 * executable (started with DRAY_WORKER_ADDRESS, which makes dray_init serve as a worker). As the
 * driver (DRAY_ADDRESS set) it prints `name value unit` lines, each the median of --runs runs.
 * Usage: bench_cluster [--runs N] [--tasks N] [--latency-n N] [--calls N] [--put-mb N]
 *        [--nested N] [--only tasks,latency,actor,nested,put] */
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

/* The length of a bytes argument, after checking that one byte per page is zero. */
DRAY_FUNCTION(bc_check_zeros)
{
    size_t n;
    const unsigned char *p = dray_bytes_data(&args[0], &n);
    for (size_t i = 0; i < n; i += 4096)
        if (p[i])
            return dray_ctx_fail(ctx, DRAY_ETASK, "byte %zu is %u", i, p[i]);
    *result = dray_int((int64_t)n);
    return DRAY_OK;
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

/* Sleeps args[0] ms; returns args[1] + 1. */
DRAY_FUNCTION(bc_sleep_inc)
{
    struct timespec ts = {0, (long)args[0].u.i * 1000000};
    nanosleep(&ts, NULL);
    *result = dray_int(args[1].u.i + 1);
    return DRAY_OK;
}

/* On a node: fans out args[0] nested bc_sleep_inc tasks of args[1] ms and returns the sum of their
 * results (checked by the driver). */
DRAY_FUNCTION(bc_fanout)
{
    dray_runtime *rt = dray_ctx_runtime(ctx);
    int64_t n = args[0].u.i, sum = 0;
    dray_ref **refs = calloc((size_t)n, sizeof(*refs));
    if (!refs)
        return DRAY_ENOMEM;
    dray_status st = DRAY_OK;
    int64_t made = 0;
    for (; made < n && !st; made++) {
        dray_value a[2] = {args[1], dray_int(made)};
        st = dray_submit(rt, "bc_sleep_inc", a, 2, NULL, &refs[made]);
    }
    if (st)
        made--;
    for (int64_t i = 0; i < made; i++) {
        dray_value v;
        if (!st && !(st = dray_get(rt, refs[i], -1, &v)))
            sum += v.u.i;
        dray_ref_release(refs[i]);
    }
    free(refs);
    *result = dray_int(sum);
    return st;
}

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

/* With BENCH_CLUSTER_STATS set, each round trip is timed too and the 10th, 50th and 90th
 * percentiles go to stderr (the spread separates the path's own cost from the machine's load). */
static double latency_us(dray_runtime *rt, int n)
{
    double *each = getenv("BENCH_CLUSTER_STATS") ? malloc((size_t)n * sizeof(double)) : NULL;
    double t0 = now(), t = t0;
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
        if (each) {
            double t1 = now();
            each[i] = (t1 - t) * 1e6;
            t = t1;
        }
    }
    double mean = (now() - t0) / n * 1e6;
    if (each) {
        qsort(each, (size_t)n, sizeof(double), cmp);
        fprintf(stderr, "bench_cluster: round trips p10 %.1f p50 %.1f p90 %.1f p99 %.1f max %.1f us\n",
                each[n / 10], each[n / 2], each[n * 9 / 10], each[n * 99 / 100], each[n - 1]);
        free(each);
    }
    return mean;
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

/* An object made on worker node 0 (resource "n0") and read by a task on node 1 ("n1"): it moves
 * node to node through the object stores. */
/* Seconds for one task to fan out n nested 5 ms tasks from its node and collect them. */
static double nested_spread_s(dray_runtime *rt, int n)
{
    dray_value a[2] = {dray_int(n), dray_int(5)}, v;
    dray_ref *r;
    double t0 = now();
    check(dray_submit(rt, "bc_fanout", a, 2, NULL, &r), "submit");
    check(dray_get(rt, r, -1, &v), "get");
    double t = now() - t0;
    if (v.u.i != (int64_t)n * (n + 1) / 2) {
        fprintf(stderr, "bench_cluster: fan-out sum %lld, expected %lld\n", (long long)v.u.i,
                (long long)n * (n + 1) / 2);
        exit(1);
    }
    dray_ref_release(r);
    return t;
}

static double put_get_gbps(dray_runtime *rt, int64_t bytes)
{
    dray_resource n0 = {"n0", 1}, n1 = {"n1", 1};
    dray_task_opts o0 = {0}, o1 = {0};
    o0.resources = &n0;
    o0.n_resources = 1;
    o1.resources = &n1;
    o1.n_resources = 1;
    dray_value a = dray_int(bytes), v;
    dray_ref *r, *c;
    double t0 = now();
    check(dray_submit(rt, "bc_zeros", &a, 1, &o0, &r), "submit");
    a = dray_value_of_ref(r);
    check(dray_submit(rt, "bc_check_zeros", &a, 1, &o1, &c), "submit");
    check(dray_get(rt, c, -1, &v), "get");
    double t = now() - t0;
    if (v.u.i != bytes) {
        fprintf(stderr, "bench_cluster: node 1 read %lld bytes, want %lld\n", (long long)v.u.i,
                (long long)bytes);
        exit(1);
    }
    dray_ref_release(c);
    dray_ref_release(r);
    return bytes / t / 1e9;
}

/* An object made on a worker node and read by the driver (dray_get). */
static double driver_get_gbps(dray_runtime *rt, int64_t bytes)
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
    int runs = 5, tasks = 100000, lat = 10000, calls = 100000, nested = 200;
    int64_t put_mb = 800;
    const char *only = NULL;
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
        else if (!strcmp(argv[i], "--nested"))
            nested = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only"))
            only = argv[i + 1];
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
#define WANT(x) (!only || strstr(only, x))
    if (WANT("tasks")) {
        for (int i = 0; i < runs; i++)
            v[i] = empty_tasks(rt, tasks);
        printf("cluster_empty_tasks_per_s %.0f tasks/s\n", median(v, runs));
    }
    if (WANT("latency")) {
        for (int i = 0; i < runs; i++)
            v[i] = latency_us(rt, lat);
        printf("cluster_submit_get_latency_us %.1f us\n", median(v, runs));
        if (getenv("BENCH_CLUSTER_STATS")) { /* how the waits went (docs/cluster.md "Latency") */
            dray_value st;
            check(dray_cluster_client_stats(rt, &st), "stats");
            fprintf(stderr, "bench_cluster: after the latency runs:");
            for (const char *k = "polled_waits\0polled_hits\0spin_hits\0lanes\0lane_sent\0lane_received\0"; *k;
                 k += strlen(k) + 1)
                fprintf(stderr, " %s=%lld", k, dray_map_get(&st, k) ? (long long)dray_map_get(&st, k)->u.i : -1LL);
            fprintf(stderr, "\n");
            dray_value_release(&st);
        }
    }
    if (WANT("actor")) {
        for (int i = 0; i < runs; i++)
            v[i] = actor_calls(rt, calls);
        printf("cluster_actor_calls_per_s %.0f calls/s\n", median(v, runs));
    }
    if (WANT("nested") && nested > 0) {
        /* Nested tasks spill to the other node once the fan-out's node is saturated (a worker
         * started with DRAY_SPILL=0 keeps them: about twice the time). */
        for (int i = 0; i < runs; i++)
            v[i] = nested_spread_s(rt, nested);
        printf("cluster_nested_spread_s %.3f s\n", median(v, runs));
        fflush(stdout);
    }
    if (!WANT("put")) {
        check(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN), "shutdown");
        return 0;
    }
    for (int i = 0; i < runs; i++)
        v[i] = put_get_gbps(rt, put_mb << 20);
    printf("cluster_put_get_gbps %.2f GB/s\n", median(v, runs));
    fflush(stdout);
    for (int i = 0; i < runs; i++)
        v[i] = driver_get_gbps(rt, put_mb << 20);
    printf("cluster_driver_get_gbps %.2f GB/s\n", median(v, runs));
    fflush(stdout);
    check(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN), "shutdown");
    return 0;
}
