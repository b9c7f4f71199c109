/* Dashboard API contract: during and after a known workload every route's fields are present and agree
 * with the runtime's own counters and with what the test submitted; bad routes 404, traversal and
 * malformed parameters 400 with a JSON error; a token is required off loopback; the offline report
 * holds the run's tasks; module events, gauges, logs, actors and published snapshots show up. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "dray/dray.h"
#include "test.h"

#define N_INC 5000
#define N_FAIL 7
#define N_SLOW 30

DRAY_FUNCTION(t_inc)
{
    *result = dray_int(args[0].u.i + 1);
    return DRAY_OK;
}

DRAY_FUNCTION(t_fail)
{
    return dray_ctx_fail(ctx, DRAY_ERANGE, "t_fail %lld", (long long)args[0].u.i);
}

DRAY_FUNCTION(t_slow)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    *result = dray_null();
    return DRAY_OK;
}

static dray_status c_init(dray_ctx *ctx, const dray_value *a, size_t n, void **state)
{
    (void)ctx, (void)a, (void)n;
    *state = NULL;
    return DRAY_OK;
}
static void c_destroy(void *s) { (void)s; }
static dray_status c_ping(dray_ctx *ctx, void *s, const dray_value *a, size_t n, dray_value *r)
{
    (void)ctx, (void)s, (void)a, (void)n;
    *r = dray_null();
    return DRAY_OK;
}
DRAY_ACTOR_CLASS(TestPinger, c_init, c_destroy, {"ping", c_ping})

/* An actor whose "hold" calls wait until *state (an atomic int the test owns) is non-zero. */
static dray_status g_init(dray_ctx *ctx, const dray_value *a, size_t n, void **state)
{
    (void)ctx;
    if (n != 1 || a[0].type != DRAY_T_INT)
        return DRAY_EINVAL;
    *state = (void *)(intptr_t)a[0].u.i;
    return DRAY_OK;
}
static dray_status g_hold(dray_ctx *ctx, void *s, const dray_value *a, size_t n, dray_value *r)
{
    (void)ctx, (void)a, (void)n;
    _Atomic int *open = (_Atomic int *)(intptr_t)s;
    while (!atomic_load(open))
        usleep(1000);
    *r = dray_null();
    return DRAY_OK;
}
DRAY_ACTOR_CLASS(TestGate, g_init, c_destroy, {"hold", g_hold})

/* A Serve deployment that sleeps 2 ms per call, failing for negative x. */
static dray_status sl_init(dray_serve *s, const cJSON *cfg, void **state)
{
    (void)s, (void)cfg;
    *state = NULL;
    return DRAY_OK;
}
static dray_status sl_call(void *state, dray_serve_request *req, dray_serve_response *resp)
{
    (void)state;
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(req->json, "x");
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    if (!cJSON_IsNumber(x) || x->valuedouble < 0)
        return dray_set_error(DRAY_EINVAL, "sleeper: x must be a number >= 0");
    resp->json = cJSON_CreateObject();
    return DRAY_OK;
}
static void sl_destroy(void *state) { (void)state; }
static dray_serve_class sleeper_class = {
    .name = "TestSleeper", .init = sl_init, .call = sl_call, .destroy = sl_destroy};
DRAY_SERVE_CLASS(sleeper_class)

/* A Tune trainable reporting loss = rate * (i + 1) for i = 0..4. */
static dray_status linear_trainable(dray_tune_session *s, const dray_tune_config *cfg, void *user)
{
    (void)user;
    double rate = dray_tune_config_num(cfg, "rate", 0);
    for (int i = 0; i < 5; i++) {
        dray_tune_metric m = {"loss", rate * (i + 1)};
        if (dray_tune_report(s, &m, 1) != DRAY_OK)
            break;
    }
    return DRAY_OK;
}
static dray_tune_trainable linear_t = {"test_linear", linear_trainable, NULL, NULL, NULL};
DRAY_TUNE_TRAINABLE(linear_t)

static dray_runtime *start_rt(void)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.progress = 0;
    cfg.num_workers = 2;
    dray_runtime *rt = NULL;
    if (dray_init(&cfg, &rt)) {
        fprintf(stderr, "init: %s\n", dray_last_error());
        exit(1);
    }
    return rt;
}

/* GET path through the in-process API; the body parsed as JSON (NULL when not JSON). */
static cJSON *get(dray_dashboard *d, const char *path, int *status)
{
    char *body = NULL;
    const char *ct;
    if (dray_dashboard_api(d, path, status, &body, &ct))
        return NULL;
    cJSON *j = cJSON_Parse(body);
    dray_free(body);
    return j;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static const cJSON *find_fn(const cJSON *tasks, const char *name)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(tasks, "by_function"))
    {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(f, "name")), name))
            return f;
    }
    return NULL;
}

/* Submits the known workload and waits for it. */
static void workload(dray_runtime *rt)
{
    dray_ref *refs[N_INC + N_FAIL + N_SLOW];
    int k = 0;
    for (int i = 0; i < N_INC; i++) {
        dray_value x = dray_int(i);
        ASSERT_EQ(dray_submit(rt, "t_inc", &x, 1, NULL, &refs[k++]), DRAY_OK);
    }
    for (int i = 0; i < N_FAIL; i++) {
        dray_value x = dray_int(i);
        ASSERT_EQ(dray_submit(rt, "t_fail", &x, 1, NULL, &refs[k++]), DRAY_OK);
    }
    for (int i = 0; i < N_SLOW; i++)
        ASSERT_EQ(dray_submit(rt, "t_slow", NULL, 0, NULL, &refs[k++]), DRAY_OK);
    dray_wait(rt, refs, (size_t)k, (size_t)k, -1, NULL, NULL);
    for (int i = 0; i < k; i++)
        dray_ref_release(refs[i]);
}

/* Polls /api/v0/tasks until the history has seen every finished task (the collector runs every
 * 100 ms); gives up after 10 s. Returns the tasks document. */
static cJSON *tasks_caught_up(dray_dashboard *d, double want_ran)
{
    for (int i = 0; i < 1000; i++) {
        int st;
        cJSON *t = get(d, "/api/v0/tasks", &st);
        double ran = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItem(t, "by_function"))
        {
            ran += num(f, "done") + num(f, "failed");
        }
        if (ran >= want_ran)
            return t;
        cJSON_Delete(t);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

TEST(contract_matches_runtime_counters)
{
    dray_runtime *rt = start_rt();
    dray_dashboard *d;
    ASSERT_EQ(dray_dashboard_start(rt, NULL, &d), DRAY_OK);
    workload(rt);
    cJSON *t = tasks_caught_up(d, N_INC + N_FAIL + N_SLOW);
    ASSERT_TRUE(t != NULL);
    dray_stats s;
    dray_runtime_stats(rt, &s);
    ASSERT_EQ((long)s.tasks_finished, (long)(N_INC + N_FAIL + N_SLOW));
    /* By state: the runtime's counters. */
    const cJSON *bs = cJSON_GetObjectItem(t, "by_state");
    ASSERT_EQ((long)num(bs, "submitted"), (long)s.tasks_submitted);
    ASSERT_EQ((long)num(bs, "finished"), (long)s.tasks_finished);
    ASSERT_EQ((long)num(bs, "failed"), (long)N_FAIL);
    ASSERT_EQ((long)num(bs, "succeeded"), (long)(N_INC + N_SLOW));
    ASSERT_EQ((long)num(bs, "pending"), 0L);
    /* By function: what was submitted. */
    const cJSON *fi = find_fn(t, "t_inc"), *ff = find_fn(t, "t_fail"), *fs = find_fn(t, "t_slow");
    ASSERT_TRUE(fi && ff && fs);
    ASSERT_EQ((long)num(fi, "submitted"), (long)N_INC);
    ASSERT_EQ((long)num(fi, "done"), (long)N_INC);
    ASSERT_EQ((long)num(fi, "failed"), 0L);
    ASSERT_EQ((long)num(ff, "failed"), (long)N_FAIL);
    ASSERT_EQ((long)num(ff, "done"), 0L);
    ASSERT_EQ((long)num(fs, "done"), (long)N_SLOW);
    ASSERT_EQ((long)num(fs, "pending"), 0L);
    ASSERT_TRUE(num(fs, "total_s") >= N_SLOW * 0.001 * 0.99); /* each slept at least 1 ms */
    ASSERT_TRUE(num(fs, "max_ms") >= 0.99);
    ASSERT_EQ((long)num(t, "dropped"), 0L);
    cJSON_Delete(t);

    /* Summary. */
    int st;
    cJSON *sum = get(d, "/api/v0/summary", &st);
    ASSERT_EQ(st, 200);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(sum, "mode")), "embedded");
    ASSERT_EQ((long)num(sum, "workers"), 2L);
    ASSERT_EQ((long)num(sum, "nodes"), 1L);
    ASSERT_EQ((long)num(cJSON_GetObjectItem(sum, "tasks"), "finished"), (long)s.tasks_finished);
    const char *keys[] = {"uptime_s", "objects_live", "actors_live", "rss_bytes", "cpu_pct",
                          "events_recorded", "events_dropped_tasks", "spilled_bytes"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ASSERT_TRUE(!isnan(num(sum, keys[i])));
    cJSON_Delete(sum);

    /* The stream: blocks add up to the tasks run; the cursor moves on; per-row totals agree. */
    cJSON *str = get(d, "/api/v0/stream?since=0&limit=20000", &st);
    ASSERT_EQ(st, 200);
    double inc = 0, fail = 0, slow = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(str, "events"))
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(e, "kind"));
        ASSERT_TRUE(num(e, "stop_ms") >= num(e, "start_ms"));
        ASSERT_TRUE(!isnan(num(e, "row")) && !isnan(num(e, "seq")) && !isnan(num(e, "bytes")));
        if (!strcmp(name, "t_inc")) {
            ASSERT_STREQ(kind, "task");
            inc += num(e, "count");
        } else if (!strcmp(name, "t_fail")) {
            ASSERT_STREQ(kind, "error");
            ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "status")), "DRAY_ERANGE");
            fail += num(e, "count");
        } else if (!strcmp(name, "t_slow")) {
            slow += num(e, "count");
        }
    }
    ASSERT_EQ((long)inc, (long)N_INC);
    ASSERT_EQ((long)fail, (long)N_FAIL);
    ASSERT_EQ((long)slow, (long)N_SLOW);
    double next = num(str, "next");
    ASSERT_TRUE(cJSON_GetArraySize(cJSON_GetObjectItem(str, "rows")) >= 1);
    cJSON_Delete(str);
    char path[128];
    snprintf(path, sizeof path, "/api/v0/stream?since=%.0f", next);
    str = get(d, path, &st);
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(str, "events")), 0);
    ASSERT_EQ((long)num(str, "next"), (long)next);
    cJSON_Delete(str);
    str = get(d, "/api/v0/stream?since=0&limit=3", &st);
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(str, "events")), 3);
    ASSERT_EQ((long)num(str, "next"), 3L);
    cJSON_Delete(str);

    /* Workers: their task counts add up to every task run. */
    cJSON *w = get(d, "/api/v0/workers", &st);
    double wt = 0;
    cJSON_ArrayForEach(e, w)
    {
        wt += num(e, "tasks");
        ASSERT_TRUE(num(e, "tid") > 0);
        ASSERT_TRUE(!isnan(num(e, "busy_s")) && !isnan(num(e, "cpu_pct")));
    }
    ASSERT_EQ((long)wt, (long)(N_INC + N_FAIL + N_SLOW));
    cJSON_Delete(w);

    /* Nodes: this process, with its resident memory as /proc reports it (independent read). */
    cJSON *nodes = get(d, "/api/v0/nodes", &st);
    ASSERT_EQ(cJSON_GetArraySize(nodes), 1);
    const cJSON *n0 = cJSON_GetArrayItem(nodes, 0);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long sz = 0, res = 0;
    ASSERT_TRUE(f && fscanf(f, "%lu %lu", &sz, &res) == 2);
    fclose(f);
    double rss_now = (double)res * (double)sysconf(_SC_PAGESIZE);
    ASSERT_TRUE(num(n0, "rss_bytes") > 0 && num(n0, "rss_bytes") < 4 * rss_now);
    ASSERT_EQ((long)num(n0, "cpus"), 2L);
    ASSERT_TRUE(!isnan(num(n0, "object_store_bytes")) && !isnan(num(n0, "spilled_bytes")));
    ASSERT_TRUE(cJSON_IsArray(cJSON_GetObjectItem(n0, "workers")));
    cJSON_Delete(nodes);


    /* Memory samples. */
    cJSON *m = get(d, "/api/v0/memory", &st);
    ASSERT_TRUE(cJSON_GetArraySize(cJSON_GetObjectItem(m, "samples")) >= 1);
    cJSON_Delete(m);

    /* Prometheus text. */
    char *body;
    const char *ct;
    ASSERT_EQ(dray_dashboard_api(d, "/metrics", &st, &body, &ct), DRAY_OK);
    ASSERT_EQ(st, 200);
    ASSERT_TRUE(strstr(ct, "text/plain") != NULL);
    char line[128];
    snprintf(line, sizeof line, "dray_tasks_total{state=\"finished\"} %llu\n",
             (unsigned long long)s.tasks_finished);
    ASSERT_TRUE(strstr(body, line) != NULL);
    snprintf(line, sizeof line, "dray_function_tasks_total{function=\"t_inc\",outcome=\"done\"} %d\n",
             N_INC);
    ASSERT_TRUE(strstr(body, line) != NULL);
    dray_free(body);

    /* Progress groups mirror by_function; a lazy graph's tasks are counted as they complete. */
    dray_graph *g;
    ASSERT_EQ(dray_graph_create(rt, &g), DRAY_OK);
    dray_node leaves[32], top;
    for (int i = 0; i < 32; i++) {
        dray_value x = dray_int(i);
        ASSERT_EQ(dray_graph_add_named(g, NULL, "t_inc", &x, 1, &leaves[i]), DRAY_OK);
    }
    dray_value sum_args[2] = {dray_value_of_node(leaves[0]), dray_value_of_node(leaves[1])};
    ASSERT_EQ(dray_graph_add_named(g, NULL, "t_slow", sum_args, 0, &top), DRAY_OK);
    dray_value out[2];
    dray_node outs[2] = {leaves[5], leaves[31]};
    ASSERT_EQ(dray_graph_compute(g, outs, 2, out), DRAY_OK); /* culls all but 2 leaves */
    dray_graph_stats gs;
    dray_graph_last_stats(g, &gs);
    dray_graph_destroy(g);
    cJSON *p = get(d, "/api/v0/progress", &st);
    ASSERT_EQ(st, 200);
    ASSERT_TRUE(cJSON_GetArraySize(cJSON_GetObjectItem(p, "groups")) >= 3);
    const cJSON *g0 = cJSON_GetArrayItem(cJSON_GetObjectItem(p, "graphs"), 0);
    ASSERT_TRUE(g0 != NULL);
    ASSERT_EQ((long)num(g0, "tasks"), (long)gs.tasks);
    ASSERT_EQ((long)num(g0, "done"), (long)gs.tasks);
    ASSERT_EQ((long)num(g0, "failed"), 0L);
    ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(g0, "finished")));
    ASSERT_TRUE(num(g0, "end_ms") >= num(g0, "start_ms"));
    cJSON_Delete(p);

    dray_dashboard_stop(d);
    ASSERT_EQ(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN), DRAY_OK);
}

TEST(bad_routes_and_parameters)
{
    dray_runtime *rt = start_rt();
    dray_dashboard *d;
    ASSERT_EQ(dray_dashboard_start(rt, NULL, &d), DRAY_OK);
    struct {
        const char *path;
        int status;
    } cases[] = {
        {"/api/v0/nope", 404},
        {"/nope.html", 404},
        {"/api/v1/summary", 404},
        {"/../etc/passwd", 400},
        {"/%2e%2e/%2e%2e/etc/passwd", 400},
        {"/static/..%2findex.html", 400},
        {"//etc/passwd", 400},
        {"/a\\b", 400},
        {"/api/v0/stream?since=abc", 400},
        {"/api/v0/stream?since=-1", 400},
        {"/api/v0/stream?limit=999999999", 400},
        {"/api/v0/stream?since=1&since=2", 400},
        {"/api/v0/stream?since=%zz", 400},
        {"/api/v0/stream?=1", 400},
        {"/api/v0/logs?since=x", 400},
        {"/api/v0/logs?process=../secret", 400},
        {"/api/v0/logs?process=nosuch", 404},
        {"/api/v0/summary?x=%00", 400},
        {"/", 200},
        {"/index.html", 200},
        {"/app.js", 200},
        {"/api/v0/routes", 200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st;
        char *body;
        const char *ct;
        ASSERT_EQ(dray_dashboard_api(d, cases[i].path, &st, &body, &ct), DRAY_OK);
        if (st != cases[i].status)
            fprintf(stderr, "%s -> %d %s\n", cases[i].path, st, body);
        ASSERT_EQ(st, cases[i].status);
        if (st >= 400) {
            cJSON *j = cJSON_Parse(body);
            ASSERT_TRUE(j && cJSON_IsString(cJSON_GetObjectItem(j, "error")));
            ASSERT_EQ((int)num(j, "status"), st);
            ASSERT_STREQ(ct, "application/json");
            cJSON_Delete(j);
        }
        dray_free(body);
    }
    /* The page is the embedded one, with nothing fetched from elsewhere. */
    int st;
    char *body;
    const char *ct;
    ASSERT_EQ(dray_dashboard_api(d, "/", &st, &body, &ct), DRAY_OK);
    ASSERT_TRUE(strstr(ct, "text/html") != NULL);
    ASSERT_TRUE(strstr(body, "id=\"stream\"") != NULL);
    ASSERT_TRUE(strstr(body, "http://") == NULL && strstr(body, "https://") == NULL);
    dray_free(body);
    dray_dashboard_stop(d);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
}

/* One HTTP GET over TCP with an optional extra header; returns the status (or -1). */
static int http_get(int port, const char *path, const char *header)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%s%sConnection: close\r\n\r\n",
                     path, header ? header : "", header ? "\r\n" : "");
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    char buf[64] = {0};
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    int status = -1;
    if (got > 12)
        sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}

TEST(token_required_off_loopback)
{
    dray_runtime *rt = start_rt();
    dray_dashboard_opts o;
    dray_dashboard_opts_init(&o);
    o.bind = "0.0.0.0";
    dray_dashboard *d = NULL;
    ASSERT_EQ(dray_dashboard_start(rt, &o, &d), DRAY_EINVAL);
    ASSERT_TRUE(strstr(dray_last_error(), "token") != NULL);
    o.bind = "not-an-ip";
    o.token = "s3cret";
    ASSERT_EQ(dray_dashboard_start(rt, &o, &d), DRAY_EINVAL);
    o.bind = "0.0.0.0";
    ASSERT_EQ(dray_dashboard_start(rt, &o, &d), DRAY_OK);
    int port = dray_dashboard_port(d);
    ASSERT_TRUE(port > 0);
    ASSERT_EQ(http_get(port, "/api/v0/summary", NULL), 401);
    ASSERT_EQ(http_get(port, "/", NULL), 401);
    ASSERT_EQ(http_get(port, "/api/v0/summary?token=wrong", NULL), 401);
    ASSERT_EQ(http_get(port, "/api/v0/summary?token=s3cre", NULL), 401);
    ASSERT_EQ(http_get(port, "/api/v0/summary?token=s3cret", NULL), 200);
    ASSERT_EQ(http_get(port, "/api/v0/summary", "Authorization: Bearer s3cret"), 200);
    ASSERT_EQ(http_get(port, "/api/v0/summary", "Authorization: Bearer nope"), 401);
    ASSERT_EQ(http_get(port, "/api/v0/nope?token=s3cret", NULL), 404);
    ASSERT_EQ(http_get(port, "/../x?token=s3cret", NULL), 400);
    dray_dashboard_stop(d);
    /* Loopback without a token: open. */
    dray_dashboard_opts_init(&o);
    ASSERT_EQ(dray_dashboard_start(rt, &o, &d), DRAY_OK);
    ASSERT_EQ(http_get(dray_dashboard_port(d), "/api/v0/summary", NULL), 200);
    ASSERT_EQ(http_get(dray_dashboard_port(d), "/api/v0/stream?since=x", NULL), 400);
    dray_dashboard_stop(d);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
}

/* The JSON inside the report's <script id="dray-data"> element. */
static cJSON *report_data(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = 0;
    cJSON *j = NULL;
    char *start = strstr(buf, "id=\"dray-data\">");
    char *end = start ? strstr(start, "</script>") : NULL;
    if (start && end && !strstr(buf, "src=\"http") && !strstr(buf, "href=\"http")) {
        *end = 0;
        j = cJSON_Parse(start + strlen("id=\"dray-data\">"));
    }
    free(buf);
    return j;
}

TEST(performance_report_holds_the_run)
{
    dray_runtime *rt = start_rt();
    char path[] = "/tmp/dray-report-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    ASSERT_EQ(dray_performance_report(rt, path), DRAY_EINVAL); /* nothing recorded */
    ASSERT_EQ(dray_dashboard_record(rt), DRAY_OK);
    ASSERT_EQ(dray_dashboard_record(rt), DRAY_OK); /* idempotent */
    workload(rt);
    ASSERT_EQ(dray_performance_report(rt, path), DRAY_OK);
    cJSON *j = report_data(path);
    ASSERT_TRUE(j != NULL);
    cJSON *tasks = cJSON_GetObjectItem(j, "tasks");
    ASSERT_EQ((long)num(find_fn(tasks, "t_inc"), "done"), (long)N_INC);
    ASSERT_EQ((long)num(find_fn(tasks, "t_fail"), "failed"), (long)N_FAIL);
    ASSERT_TRUE(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "stream"), "events")) > 0);
    ASSERT_TRUE(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "memory"), "samples")) > 0);
    cJSON_Delete(j);
    ASSERT_EQ(dray_performance_report(rt, "/nonexistent-dir/r.html"), DRAY_EIO);
    unlink(path);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
}

TEST(module_events_logs_actors_snapshots)
{
    dray_runtime *rt = start_rt();
    /* Before recording: everything is a no-op. */
    dray_events_record(rt, DRAY_EVENT_SPILL, "early", 0, 1, 10);
    dray_events_gauge_add(rt, DRAY_GAUGE_SPILLED_BYTES, 5);
    ASSERT_EQ((long)dray_events_gauge(rt, DRAY_GAUGE_SPILLED_BYTES), 0L);
    ASSERT_TRUE(!dray_events_enabled(rt));
    dray_dashboard *d;
    ASSERT_EQ(dray_dashboard_start(rt, NULL, &d), DRAY_OK);
    ASSERT_TRUE(dray_events_enabled(rt));
    int64_t t0 = dray_events_now_ns();
    dray_events_record(rt, DRAY_EVENT_SPILL, "shuffle-spill", t0, t0 + 2000000, 4096);
    dray_events_record(rt, DRAY_EVENT_TRANSFER, "fetch", t0, t0 + 1000000, 100);
    dray_events_gauge_add(rt, DRAY_GAUGE_SPILLED_BYTES, 4096);
    dray_events_gauge_add(rt, DRAY_GAUGE_OBJECT_STORE_BYTES, 1000);
    dray_events_gauge_add(rt, DRAY_GAUGE_OBJECT_STORE_BYTES, -200);
    ASSERT_EQ((long)dray_events_gauge(rt, DRAY_GAUGE_OBJECT_STORE_BYTES), 800L);
    dray_events_log(rt, "warn", "test", "hello %d", 42);
    dray_actor *a;
    ASSERT_EQ(dray_actor_create(rt, "TestPinger", NULL, 0, NULL, &a), DRAY_OK);
    ASSERT_EQ(dray_actor_ready(rt, a, -1), DRAY_OK);
    ASSERT_EQ(dray_events_publish(rt, "tune", "exp", "[1,2]"), DRAY_EINVAL);
    ASSERT_EQ(dray_events_publish(rt, "tune", "exp", "{\"status\":\"RUNNING\",\"trials\":[]}"),
             DRAY_OK);
    ASSERT_EQ(dray_events_publish(rt, "tune", "exp", "{\"status\":\"TERMINATED\",\"trials\":[]}"),
             DRAY_OK);

    int st;
    bool seen_spill = false, seen_transfer = false;
    for (int i = 0; i < 500 && !(seen_spill && seen_transfer); i++) {
        cJSON *s = get(d, "/api/v0/stream?since=0", &st);
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(s, "events"))
        {
            const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(e, "kind"));
            if (!strcmp(kind, "spill")) {
                seen_spill = true;
                ASSERT_EQ((long)num(e, "bytes"), 4096L);
                ASSERT_TRUE(fabs(num(e, "stop_ms") - num(e, "start_ms") - 2.0) < 1e-3);
            }
            seen_transfer |= !strcmp(kind, "transfer");
        }
        cJSON_Delete(s);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_TRUE(seen_spill && seen_transfer);
    cJSON *t = get(d, "/api/v0/tasks", &st);
    ASSERT_EQ((long)num(find_fn(t, "shuffle-spill"), "spill_bytes"), 4096L);
    cJSON_Delete(t);
    cJSON *n = get(d, "/api/v0/nodes", &st);
    ASSERT_EQ((long)num(cJSON_GetArrayItem(n, 0), "spilled_bytes"), 4096L);
    ASSERT_EQ((long)num(cJSON_GetArrayItem(n, 0), "object_store_bytes"), 800L);
    cJSON_Delete(n);
    cJSON *l = get(d, "/api/v0/logs", &st);
    ASSERT_EQ(st, 200);
    const cJSON *line = cJSON_GetArrayItem(cJSON_GetObjectItem(l, "lines"), 0);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(line, "text")), "hello 42");
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(line, "level")), "warn");
    double next = num(l, "next");
    cJSON_Delete(l);
    char path[64];
    snprintf(path, sizeof path, "/api/v0/logs?since=%.0f", next);
    l = get(d, path, &st);
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(l, "lines")), 0);
    cJSON_Delete(l);
    cJSON *ac = get(d, "/api/v0/actors", &st);
    ASSERT_EQ(cJSON_GetArraySize(ac), 1);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(ac, 0), "class")),
                 "TestPinger");
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(ac, 0), "state")),
                 "ALIVE");
    cJSON_Delete(ac);
    cJSON *tu = get(d, "/api/v0/tune", &st);
    ASSERT_EQ(cJSON_GetArraySize(tu), 1);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(tu, 0), "status")),
                 "TERMINATED");
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(tu, 0), "name")),
                 "exp");
    cJSON_Delete(tu);
    /* Actor calls show in the stream and the per-function totals as "Class.method". */
    enum { N_PINGS = 37 };
    dray_ref *pings[N_PINGS];
    for (int i = 0; i < N_PINGS; i++)
        ASSERT_EQ(dray_actor_call(rt, a, "ping", NULL, 0, &pings[i]), DRAY_OK);
    ASSERT_EQ(dray_wait(rt, pings, N_PINGS, N_PINGS, -1, NULL, NULL), DRAY_OK);
    for (int i = 0; i < N_PINGS; i++)
        dray_ref_release(pings[i]);
    long pinged = 0, inits = 0;
    for (int i = 0; i < 500 && !(pinged == N_PINGS && inits == 1); i++) {
        cJSON *tk = get(d, "/api/v0/tasks", &st);
        const cJSON *fp = find_fn(tk, "TestPinger.ping"), *fi = find_fn(tk, "TestPinger.__init__");
        pinged = fp ? (long)num(fp, "done") : 0;
        inits = fi ? (long)num(fi, "done") : 0;
        cJSON_Delete(tk);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ(pinged, (long)N_PINGS);
    ASSERT_EQ(inits, 1L);
    /* Pending calls: one "hold" call runs (blocked), the other four wait in the mailbox. */
    _Atomic int open = 0;
    dray_value gate_arg = dray_int((int64_t)(intptr_t)&open);
    dray_actor *gate;
    ASSERT_EQ(dray_actor_create(rt, "TestGate", &gate_arg, 1, NULL, &gate), DRAY_OK);
    ASSERT_EQ(dray_actor_ready(rt, gate, -1), DRAY_OK);
    dray_ref *holds[5];
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(dray_actor_call(rt, gate, "hold", NULL, 0, &holds[i]), DRAY_OK);
    long pending = -1;
    for (int i = 0; i < 500 && pending != 4; i++) {
        cJSON *acs = get(d, "/api/v0/actors", &st);
        const cJSON *x;
        cJSON_ArrayForEach(x, acs)
        {
            if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(x, "class")), "TestGate"))
                pending = (long)num(x, "pending_calls");
        }
        cJSON_Delete(acs);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ(pending, 4L);
    atomic_store(&open, 1);
    ASSERT_EQ(dray_wait(rt, holds, 5, 5, -1, NULL, NULL), DRAY_OK);
    for (int i = 0; i < 5; i++)
        dray_ref_release(holds[i]);
    cJSON *acs = get(d, "/api/v0/actors", &st);
    const cJSON *x;
    cJSON_ArrayForEach(x, acs)
    {
        ASSERT_EQ((long)num(x, "pending_calls"), 0L);
    }
    cJSON_Delete(acs);
    dray_actor_release(gate);
    dray_actor_release(a);
    /* Shutdown with the dashboard still serving stops it; stop then only frees the handle. */
    ASSERT_EQ(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN), DRAY_OK);
    dray_dashboard_stop(d);
}

TEST(serve_snapshot)
{
    dray_runtime *rt = start_rt();
    dray_dashboard *d;
    ASSERT_EQ(dray_dashboard_start(rt, NULL, &d), DRAY_OK);
    dray_serve_opts so;
    dray_serve_opts_init(&so);
    so.port = -1;
    so.rt = rt;
    so.control_period_s = 0.02;
    dray_serve *s;
    ASSERT_EQ(dray_serve_start(&so, &s), DRAY_OK);
    dray_serve_deployment_opts dep;
    dray_serve_deployment_opts_init(&dep);
    dep.name = "sleeper";
    dep.class_name = "TestSleeper";
    dep.num_replicas = 2;
    dep.num_cpus = 0;
    dray_serve_handle *h;
    ASSERT_EQ(dray_serve_run(s, &dep, &h), DRAY_OK);
    for (int i = -5; i < 40; i++) {
        cJSON *body = cJSON_CreateObject();
        cJSON_AddNumberToObject(body, "x", i);
        dray_serve_response resp = {0};
        dray_status st = dray_serve_handle_call(h, body, &resp);
        ASSERT_EQ(st, i < 0 ? DRAY_EINVAL : DRAY_OK);
        if (st == DRAY_OK)
            dray_serve_response_release(&resp);
        cJSON_Delete(body);
    }
    /* The controller publishes once a second: wait for a snapshot with every call. */
    const cJSON *dp = NULL;
    cJSON *sv = NULL;
    for (int i = 0; i < 500; i++) {
        int st;
        cJSON_Delete(sv);
        sv = get(d, "/api/v0/serve", &st);
        const cJSON *app = cJSON_GetArrayItem(sv, 0);
        dp = cJSON_GetArrayItem(cJSON_GetObjectItem(app, "deployments"), 0);
        if (dp && num(dp, "calls") >= 45)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_TRUE(dp != NULL);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(dp, "name")), "sleeper");
    ASSERT_EQ((long)num(dp, "requests"), 45L);
    ASSERT_EQ((long)num(dp, "errors"), 5L);
    ASSERT_EQ((long)num(dp, "calls"), 45L);
    ASSERT_EQ((long)num(dp, "replicas"), 2L);
    /* Every call slept 2 ms: the percentiles' bucket edges are at least that. */
    ASSERT_TRUE(num(dp, "p50_ms_all") >= 2.0);
    ASSERT_TRUE(num(dp, "p99_ms_all") >= num(dp, "p50_ms_all"));
    ASSERT_TRUE(!isnan(num(dp, "rps")) && !isnan(num(dp, "p50_ms")) && !isnan(num(dp, "p99_ms")));
    cJSON_Delete(sv);
    ASSERT_EQ(dray_serve_shutdown(s, 5), DRAY_OK);
    dray_dashboard_stop(d);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
}

TEST(tune_snapshot)
{
    dray_runtime *rt = start_rt();
    ASSERT_EQ(dray_dashboard_record(rt), DRAY_OK);
    dray_tune_space *sp;
    dray_tune_val rates[2] = {dray_tune_f(0.5), dray_tune_f(2.0)};
    ASSERT_EQ(dray_tune_space_create(&sp), DRAY_OK);
    ASSERT_EQ(dray_tune_space_grid(sp, "rate", rates, 2), DRAY_OK);
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.name = "linear_exp";
    o.metric = "loss";
    o.mode = DRAY_TUNE_MIN;
    o.verbose = DRAY_TUNE_QUIET;
    dray_tune_grid *g;
    ASSERT_EQ(dray_tune_run(rt, "test_linear", sp, &o, &g), DRAY_OK);
    dray_tune_grid_destroy(g);
    dray_tune_space_destroy(sp);
    dray_dashboard *d;
    ASSERT_EQ(dray_dashboard_start(rt, NULL, &d), DRAY_OK);
    int st;
    cJSON *tu = get(d, "/api/v0/tune", &st);
    ASSERT_EQ(cJSON_GetArraySize(tu), 1);
    const cJSON *x = cJSON_GetArrayItem(tu, 0);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(x, "name")), "linear_exp");
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(x, "status")), "TERMINATED");
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(x, "metric")), "loss");
    const cJSON *trials = cJSON_GetObjectItem(x, "trials"), *t;
    ASSERT_EQ(cJSON_GetArraySize(trials), 2);
    cJSON_ArrayForEach(t, trials)
    {
        ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(t, "status")), "TERMINATED");
        double rate = num(cJSON_GetObjectItem(t, "config"), "rate");
        ASSERT_TRUE(rate == 0.5 || rate == 2.0);
        ASSERT_EQ((long)num(t, "iterations"), 5L);
        const cJSON *hist = cJSON_GetObjectItem(t, "history");
        ASSERT_EQ(cJSON_GetArraySize(hist), 5);
        for (int i = 0; i < 5; i++)
            ASSERT_TRUE(cJSON_GetNumberValue(cJSON_GetArrayItem(hist, i)) == rate * (i + 1));
        ASSERT_TRUE(num(t, "last") == rate * 5);
    }
    ASSERT_EQ((long)num(cJSON_GetObjectItem(x, "counts"), "TERMINATED"), 2L);
    cJSON_Delete(tu);
    dray_dashboard_stop(d);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
}

TEST(head_mode_needs_something_to_show)
{
    dray_dashboard *d = NULL;
    ASSERT_EQ(dray_dashboard_start(NULL, NULL, &d), DRAY_EINVAL);
    dray_dashboard_opts o;
    dray_dashboard_opts_init(&o);
    o.port = 70000;
    dray_runtime *rt = start_rt();
    ASSERT_EQ(dray_dashboard_start(rt, &o, &d), DRAY_EINVAL);
    o.port = 0;
    ASSERT_EQ(dray_dashboard_start(rt, &o, &d), DRAY_OK);
    o.port = dray_dashboard_port(d);
    dray_dashboard *d2 = NULL;
    ASSERT_EQ(dray_dashboard_start(rt, &o, &d2), DRAY_EBUSY); /* port taken */
    dray_dashboard_stop(d);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
}

RUN_TESTS(T_(contract_matches_runtime_counters), T_(bad_routes_and_parameters),
          T_(token_required_off_loopback), T_(performance_report_holds_the_run),
          T_(module_events_logs_actors_snapshots), T_(serve_snapshot),
          T_(tune_snapshot), T_(head_mode_needs_something_to_show))
