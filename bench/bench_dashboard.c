/* Dashboard benchmarks: dashboard_overhead_pct (empty-task throughput of a runtime serving a dashboard
 * against one without, runs interleaved in one process) and dashboard_api_p99_ms (API latency over
 * HTTP while 1M tasks run). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dray/dray.h"

DRAY_FUNCTION(bd_noop)
{
    *result = dray_null();
    return DRAY_OK;
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
        fprintf(stderr, "bench_dashboard: %s: %s: %s\n", what, dray_status_str(st),
                dray_last_error());
        exit(1);
    }
}

static dray_runtime *start(void)
{
    dray_runtime *rt;
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.progress = 0;
    check(dray_init(&cfg, &rt), "init");
    return rt;
}

/* The core benchmark's workload: N no-op tasks from one thread, then wait for all; tasks per second. */
static double empty_tasks(dray_runtime *rt, size_t n)
{
    const dray_function *f = dray_function_find("bd_noop");
    dray_ref **refs = malloc(n * sizeof(*refs));
    if (!refs)
        check(DRAY_ENOMEM, "malloc");
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        check(dray_submit_fn(rt, f, NULL, 0, NULL, &refs[i]), "submit");
    check(dray_wait(rt, refs, n, n, -1, NULL, NULL), "wait");
    double t = now() - t0;
    for (size_t i = 0; i < n; i++)
        dray_ref_release(refs[i]);
    free(refs);
    return (double)n / t;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The plain and the watched runtime's medians over `runs` interleaved runs of n tasks, and the median
 * ratio (watched / plain) of 61 pairs of shorter runs, each pair run back to back. */
static void measure(dray_runtime *plain, dray_runtime *watched, int runs, size_t n, double *off,
                    double *on, double *paired)
{
    double a[32], b[32];
    empty_tasks(plain, n);
    empty_tasks(watched, n);
    for (int r = 0; r < runs; r++) {
        /* Alternate the order so drift in machine load hits both alike. */
        if (r % 2) {
            a[r] = empty_tasks(plain, n);
            b[r] = empty_tasks(watched, n);
        } else {
            b[r] = empty_tasks(watched, n);
            a[r] = empty_tasks(plain, n);
        }
    }
    qsort(a, (size_t)runs, sizeof(double), cmp);
    qsort(b, (size_t)runs, sizeof(double), cmp);
    *off = a[runs / 2];
    *on = b[runs / 2];
    enum { PAIRS = 61 };
    double ratio[PAIRS];
    size_t short_n = n / 4 ? n / 4 : 1;
    for (int r = 0; r < PAIRS; r++) {
        double x, y;
        if (r % 2) {
            x = empty_tasks(plain, short_n);
            y = empty_tasks(watched, short_n);
        } else {
            y = empty_tasks(watched, short_n);
            x = empty_tasks(plain, short_n);
        }
        ratio[r] = y / x;
    }
    qsort(ratio, PAIRS, sizeof(double), cmp);
    *paired = ratio[PAIRS / 2];
}

typedef struct poller {
    int port;
    volatile int stop;
    double *lat;
    size_t n, cap;
} poller;

/* What the page does each second, as fast as it can: summary, tasks, stream since the cursor. */
static void *poll_main(void *arg)
{
    poller *p = arg;
    const char *paths[] = {"/api/v0/summary", "/api/v0/tasks", NULL, "/api/v0/nodes"};
    size_t i = 0;
    unsigned long long cursor = 0;
    while (!p->stop && p->n < p->cap) {
        int status;
        char *body = NULL, stream[96];
        const char *path = paths[i++ % 4];
        if (!path) { /* the task stream from the page's cursor, as the page asks for it */
            snprintf(stream, sizeof stream, "/api/v0/stream?since=%llu&limit=20000", cursor);
            path = stream;
        }
        double t0 = now();
        dray_status st = dray_serve_http_request("127.0.0.1", p->port, "GET", path, NULL, 0, 10,
                                                 &status, &body);
        double t = now() - t0;
        const char *nx = body && path == stream ? strstr(body, "\"next\":") : NULL;
        if (nx)
            cursor = strtoull(nx + 7, NULL, 10);
        dray_free(body);
        if (st || status != 200) {
            fprintf(stderr, "bench_dashboard: API request failed (%d)\n", status);
            exit(1);
        }
        p->lat[p->n++] = t * 1e3;
        struct timespec pause = {0, 5000000}; /* a busy page: 4 calls every 20 ms or more */
        nanosleep(&pause, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int runs = 7;
    size_t n = 1000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tasks") && i + 1 < argc)
            n = (size_t)atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_dashboard [--runs N] [--tasks N]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 31)
        runs = 7;
    /* Two pairs of runtimes created in opposite orders: which of two runtimes in one process was
     * created first shifts its rate by a few percent, so each metric averages both orders. */
    dray_runtime *plain1 = start(), *watched1 = start();
    dray_runtime *watched2 = start(), *plain2 = start();
    dray_dashboard *d, *d2;
    check(dray_dashboard_start(watched1, NULL, &d), "dashboard");
    check(dray_dashboard_start(watched2, NULL, &d2), "dashboard");
    double on1, off1, paired1, on2, off2, paired2;
    measure(plain1, watched1, runs, n, &off1, &on1, &paired1);
    measure(plain2, watched2, runs, n, &off2, &on2, &paired2);
    printf("dashboard_tasks_per_s_off %.6g tasks/s\n", (off1 + off2) / 2);
    printf("dashboard_tasks_per_s_on %.6g tasks/s\n", (on1 + on2) / 2);
    printf("dashboard_overhead_plain_first_pct %.3g %%\n", (1 - on1 / off1) * 100);
    printf("dashboard_overhead_watched_first_pct %.3g %%\n", (1 - on2 / off2) * 100);
    printf("dashboard_overhead_pct %.3g %%\n", (1 - sqrt(on1 / off1 * on2 / off2)) * 100);
    printf("dashboard_overhead_paired_pct %.3g %%\n", (1 - sqrt(paired1 * paired2)) * 100);
    fflush(stdout);
    dray_dashboard_stop(d2);
    dray_shutdown(watched2, DRAY_SHUTDOWN_DRAIN);
    dray_shutdown(plain2, DRAY_SHUTDOWN_DRAIN);
    dray_runtime *plain = plain1, *watched = watched1;

    poller p = {dray_dashboard_port(d), 0, NULL, 0, 100000};
    p.lat = malloc(p.cap * sizeof(double));
    pthread_t th;
    pthread_create(&th, NULL, poll_main, &p);
    /* 1M-task runs until the poller made 400 requests (at most 40 runs). */
    for (int r = 0; r < 40 && p.n < 400; r++)
        empty_tasks(watched, 1000000);
    p.stop = 1;
    pthread_join(th, NULL);
    qsort(p.lat, p.n, sizeof(double), cmp);
    printf("dashboard_api_requests %zu requests\n", p.n);
    printf("dashboard_api_p50_ms %.3g ms\n", p.n ? p.lat[p.n / 2] : 0);
    printf("dashboard_api_p99_ms %.3g ms\n", p.n ? p.lat[(size_t)(p.n * 0.99)] : 0);
    free(p.lat);
    dray_dashboard_stop(d);
    dray_shutdown(watched, DRAY_SHUTDOWN_DRAIN);
    dray_shutdown(plain, DRAY_SHUTDOWN_DRAIN);
    return 0;
}
