/* Core runtime benchmarks: prints `name value unit` lines, each the median of --runs runs (default 5).
 * Usage: bench_core [--runs N] [--only NAME] [--dashboard]
 * --dashboard serves a dashboard (recording on) on every runtime it measures: the A/B of
 * bench/dashboard.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dray/dray.h"

DRAY_FUNCTION(b_noop)
{
    *result = dray_null();
    return DRAY_OK;
}

DRAY_FUNCTION(b_inc)
{
    *result = dray_int(args[0].type == DRAY_T_INT ? args[0].u.i + 1 : 0);
    return DRAY_OK;
}

DRAY_FUNCTION(b_sum)
{
    int64_t s = 0;
    for (size_t i = 0; i < nargs; i++)
        s += args[i].u.i;
    *result = dray_int(s);
    return DRAY_OK;
}

DRAY_FUNCTION(b_sleep_ms)
{
    usleep((useconds_t)args[0].u.i * 1000);
    *result = dray_null();
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
DRAY_ACTOR_CLASS(BenchCounter, cnt_init, cnt_free, {"incr", cnt_incr})

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void check(dray_status st, const char *what)
{
    if (st) {
        fprintf(stderr, "bench_core: %s: %s: %s\n", what, dray_status_str(st), dray_last_error());
        exit(1);
    }
}

static bool with_dashboard;
static dray_dashboard *dashboard; /* the measured runtime's, when with_dashboard */

static dray_runtime *start(void)
{
    dray_runtime *rt;
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.progress = 0;
    check(dray_init(&cfg, &rt), "init");
    if (with_dashboard)
        check(dray_dashboard_start(rt, NULL, &dashboard), "dashboard");
    return rt;
}

static double empty_tasks(dray_runtime *rt)
{
    const size_t N = 1000000;
    const dray_function *f = dray_function_find("b_noop");
    dray_ref **refs = malloc(N * sizeof(*refs));
    double t0 = now();
    for (size_t i = 0; i < N; i++)
        check(dray_submit_fn(rt, f, NULL, 0, NULL, &refs[i]), "submit");
    check(dray_wait(rt, refs, N, N, -1, NULL, NULL), "wait");
    double t = now() - t0;
    for (size_t i = 0; i < N; i++)
        dray_ref_release(refs[i]);
    free(refs);
    return N / t;
}

static double chain_tasks(dray_runtime *rt)
{
    const int N = 100000;
    const dray_function *f = dray_function_find("b_inc");
    double t0 = now();
    dray_value zero = dray_int(0);
    dray_ref *prev;
    check(dray_submit_fn(rt, f, &zero, 1, NULL, &prev), "submit");
    for (int i = 1; i < N; i++) {
        dray_value a = dray_value_of_ref(prev);
        dray_ref *next;
        check(dray_submit_fn(rt, f, &a, 1, NULL, &next), "submit");
        dray_ref_release(prev);
        prev = next;
    }
    dray_value v;
    check(dray_get(rt, prev, -1, &v), "get");
    double t = now() - t0;
    if (v.u.i != N) {
        fprintf(stderr, "chain: got %lld\n", (long long)v.u.i);
        exit(1);
    }
    dray_ref_release(prev);
    return N / t;
}

static double latency_us(dray_runtime *rt)
{
    const int N = 100000;
    const dray_function *f = dray_function_find("b_noop");
    double t0 = now();
    for (int i = 0; i < N; i++) {
        dray_ref *r;
        check(dray_submit_fn(rt, f, NULL, 0, NULL, &r), "submit");
        check(dray_get(rt, r, -1, NULL), "get");
        dray_ref_release(r);
    }
    double t = now() - t0;
    return t / N * 1e6;
}

static double actor_calls(dray_runtime *rt)
{
    const size_t N = 1000000;
    dray_actor *a;
    check(dray_actor_create(rt, "BenchCounter", NULL, 0, NULL, &a), "actor");
    check(dray_actor_ready(rt, a, -1), "ready");
    int m = dray_actor_method_index(a, "incr");
    dray_ref **refs = malloc(N * sizeof(*refs));
    double t0 = now();
    for (size_t i = 0; i < N; i++)
        check(dray_actor_call_m(rt, a, m, NULL, 0, &refs[i]), "call");
    check(dray_wait(rt, refs, N, N, -1, NULL, NULL), "wait");
    double t = now() - t0;
    dray_value v;
    check(dray_get(rt, refs[N - 1], 0, &v), "get");
    if (v.u.i != (int64_t)N) {
        fprintf(stderr, "actor: got %lld\n", (long long)v.u.i);
        exit(1);
    }
    for (size_t i = 0; i < N; i++)
        dray_ref_release(refs[i]);
    free(refs);
    dray_actor_release(a);
    return N / t;
}

static double graph_tasks(dray_runtime *rt)
{
    const size_t LEAVES = 1000000, FAN = 8;
    const dray_function *inc = dray_function_find("b_inc"), *sum = dray_function_find("b_sum");
    double t0 = now();
    dray_graph *g;
    check(dray_graph_create(rt, &g), "graph");
    dray_node *level = malloc(LEAVES * sizeof(dray_node));
    for (size_t i = 0; i < LEAVES; i++) {
        dray_value v = dray_int((int64_t)i);
        check(dray_graph_add(g, NULL, inc, &v, 1, &level[i]), "add");
    }
    size_t n = LEAVES;
    while (n > 1) {
        size_t m = 0;
        for (size_t i = 0; i < n; i += FAN) {
            dray_value args[FAN];
            size_t k = 0;
            for (; k < FAN && i + k < n; k++)
                args[k] = dray_value_of_node(level[i + k]);
            check(dray_graph_add(g, NULL, sum, args, k, &level[m++]), "add");
        }
        n = m;
    }
    dray_value out;
    size_t total = dray_graph_size(g);
    check(dray_graph_compute(g, level, 1, &out), "compute");
    double t = now() - t0;
    if (out.u.i != (int64_t)(LEAVES * (LEAVES - 1) / 2 + LEAVES)) {
        fprintf(stderr, "graph: wrong sum\n");
        exit(1);
    }
    free(level);
    dray_graph_destroy(g);
    return total / t;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void bytes_per_pending(void)
{
    const size_t N = 10000000;
    dray_runtime *rt = start();
    const dray_function *f = dray_function_find("b_noop");
    dray_value ms = dray_int(1000000); /* never finishes during the measurement */
    dray_ref *blocker;
    check(dray_submit(rt, "b_sleep_ms", &ms, 1, NULL, &blocker), "submit");
    long before = rss_kb();
    dray_value arg = dray_value_of_ref(blocker);
    for (size_t i = 0; i < N; i++) {
        dray_ref *r;
        check(dray_submit_fn(rt, f, &arg, 1, NULL, &r), "submit");
        dray_ref_release(r); /* the task stays queued; the runtime keeps it */
    }
    long after = rss_kb();
    printf("core_bytes_per_pending_task %.1f bytes\n", (double)(after - before) * 1024.0 / N);
    fflush(stdout);
    /* The blocker sleeps for good: leave without waiting for it (the process ends here). */
    dray_ref_release(blocker);
    _exit(0);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One runtime per metric, warmed up by one untimed run (a program's runtime is long-lived). */
static void report(const char *name, const char *unit, double (*fn)(dray_runtime *), int runs)
{
    double v[32];
    dray_runtime *rt = start();
    fn(rt);
    for (int i = 0; i < runs; i++)
        v[i] = fn(rt);
    dray_dashboard_stop(dashboard);
    dashboard = NULL;
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    qsort(v, runs, sizeof(double), cmp);
    printf("%s %.6g %s\n", name, v[runs / 2], unit);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int runs = 5;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--dashboard"))
            with_dashboard = true;
        else {
            fprintf(stderr, "usage: bench_core [--runs N] [--only NAME] [--dashboard]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 31)
        runs = 5;
#define RUN(name, unit, fn)                                                                        \
    if (!only || !strcmp(only, name))                                                              \
        report(name, unit, fn, runs);
    RUN("core_empty_tasks_per_s", "tasks/s", empty_tasks);
    RUN("core_chain_tasks_per_s", "tasks/s", chain_tasks);
    RUN("core_submit_get_latency_us", "us", latency_us);
    RUN("core_actor_calls_per_s", "calls/s", actor_calls);
    RUN("core_graph_tasks_per_s", "tasks/s", graph_tasks);
    /* The pending-task measurement runs once, in its own process (it leaves 10M tasks behind). */
    if (only && !strcmp(only, "core_bytes_per_pending_task"))
        bytes_per_pending();
    return 0;
}
