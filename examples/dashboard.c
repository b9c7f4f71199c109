/* The dashboard demo: serves the dashboard (127.0.0.1, --port P or DRAY_DASHBOARD=P; any free port by
 * default) and runs waves of work to watch for --seconds S: tasks of several functions (some slow,
 * some failing), a lazy graph, an actor, a small Tune experiment and a Serve deployment. Prints the
 * URL, checks the dashboard's counts against the runtime's own at the end, and writes an offline
 * report with --report PATH. */
#include <dray/dray.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

DRAY_FUNCTION(inc)
{
    *result = dray_int(args[0].u.i + 1);
    return DRAY_OK;
}

DRAY_FUNCTION(slow_square)
{
    struct timespec ts = {0, 1000000 + (args[0].u.i % 3) * 1000000}; /* 1-3 ms */
    nanosleep(&ts, NULL);
    *result = dray_int(args[0].u.i * args[0].u.i);
    return DRAY_OK;
}

DRAY_FUNCTION(flaky)
{
    if (args[0].u.i % 4 == 0)
        return dray_ctx_fail(ctx, DRAY_EINVAL, "flaky: input %lld is a multiple of 4",
                             (long long)args[0].u.i);
    *result = args[0];
    return DRAY_OK;
}

DRAY_FUNCTION(add_pair)
{
    *result = dray_int(args[0].u.i + args[1].u.i);
    return DRAY_OK;
}

/* An actor counting what it is sent. */
static dray_status counter_init(dray_ctx *ctx, const dray_value *args, size_t nargs, void **state)
{
    (void)ctx, (void)args, (void)nargs;
    *state = calloc(1, sizeof(int64_t));
    return *state ? DRAY_OK : DRAY_ENOMEM;
}
static void counter_destroy(void *state) { free(state); }
static dray_status counter_add(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                               dray_value *result)
{
    (void)ctx, (void)nargs;
    *(int64_t *)state += args[0].u.i;
    *result = dray_int(*(int64_t *)state);
    return DRAY_OK;
}
DRAY_ACTOR_CLASS(DemoCounter, counter_init, counter_destroy, {"add", counter_add})

/* A Tune trainable: a loss that decays at a rate set by the config. */
static dray_status decay(dray_tune_session *s, const dray_tune_config *cfg, void *user)
{
    (void)user;
    double rate = dray_tune_config_num(cfg, "rate", 0.1), loss = 1.0;
    for (int i = 0; i < 15; i++) {
        loss *= 1 - rate;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        dray_tune_metric m = {"loss", loss};
        if (dray_tune_report(s, &m, 1) != DRAY_OK)
            break;
    }
    return DRAY_OK;
}
static dray_tune_trainable decay_trainable = {"demo_decay", decay, NULL, NULL, NULL};
DRAY_TUNE_TRAINABLE(decay_trainable)

/* A Serve deployment that doubles a number. */
static dray_status doubler_init(dray_serve *s, const cJSON *cfg, void **state)
{
    (void)s, (void)cfg;
    *state = NULL;
    return DRAY_OK;
}
static dray_status doubler_call(void *state, dray_serve_request *req, dray_serve_response *resp)
{
    (void)state;
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(req->json, "x");
    if (!cJSON_IsNumber(x))
        return dray_set_error(DRAY_EINVAL, "doubler: body needs a number 'x'");
    resp->json = cJSON_CreateObject();
    cJSON_AddNumberToObject(resp->json, "y", 2 * x->valuedouble);
    return DRAY_OK;
}
static void doubler_destroy(void *state) { (void)state; }
static dray_serve_class doubler_class = {
    .name = "DemoDoubler", .init = doubler_init, .call = doubler_call, .destroy = doubler_destroy};
DRAY_SERVE_CLASS(doubler_class)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fail(const char *what)
{
    fprintf(stderr, "dashboard example: %s: %s\n", what, dray_last_error());
    return 1;
}

/* One wave: `n` inc tasks, 40 slow ones, 16 flaky ones (4 fail), a 64-leaf graph, 100 actor calls. */
static int wave(dray_runtime *rt, dray_actor *counter, int n)
{
    int total = n + 40 + 16 + 100;
    dray_ref **refs = calloc((size_t)total, sizeof(*refs));
    if (!refs)
        return 1;
    int k = 0;
    for (int i = 0; i < n; i++) {
        dray_value x = dray_int(i);
        if (dray_submit(rt, "inc", &x, 1, NULL, &refs[k++]))
            return fail("submit inc");
    }
    for (int i = 0; i < 40; i++) {
        dray_value x = dray_int(i);
        if (dray_submit(rt, "slow_square", &x, 1, NULL, &refs[k++]))
            return fail("submit slow_square");
    }
    for (int i = 0; i < 16; i++) {
        dray_value x = dray_int(i);
        if (dray_submit(rt, "flaky", &x, 1, NULL, &refs[k++]))
            return fail("submit flaky");
    }
    for (int i = 0; i < 100; i++) {
        dray_value x = dray_int(1);
        if (dray_actor_call(rt, counter, "add", &x, 1, &refs[k++]))
            return fail("actor call");
    }
    dray_wait(rt, refs, (size_t)k, (size_t)k, -1, NULL, NULL);
    for (int i = 0; i < k; i++)
        dray_ref_release(refs[i]);
    free(refs);
    /* A lazy graph: a pairwise tree sum of 64 leaves. */
    dray_graph *g;
    if (dray_graph_create(rt, &g))
        return fail("graph");
    dray_node level[64];
    for (int i = 0; i < 64; i++) {
        dray_value x = dray_int(i);
        dray_graph_add_named(g, NULL, "inc", &x, 1, &level[i]);
    }
    for (int w = 64; w > 1; w /= 2)
        for (int i = 0; i < w / 2; i++) {
            dray_value a[2] = {dray_value_of_node(level[2 * i]), dray_value_of_node(level[2 * i + 1])};
            dray_graph_add_named(g, NULL, "add_pair", a, 2, &level[i]);
        }
    dray_value sum;
    dray_status st = dray_graph_compute(g, &level[0], 1, &sum);
    dray_graph_destroy(g);
    if (st || sum.u.i != 64 * 65 / 2)
        return fail("graph result");
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = 5;
    int port = -1;
    const char *report = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--report") && i + 1 < argc)
            report = argv[++i];
        else {
            fprintf(stderr, "usage: dashboard [--seconds S] [--port P] [--report PATH]\n");
            return 2;
        }
    }
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.progress = 0;
    dray_runtime *rt;
    if (dray_init(&cfg, &rt))
        return fail("init");
    dray_dashboard *d = NULL;
    dray_status st;
    if (port >= 0) {
        dray_dashboard_opts o;
        dray_dashboard_opts_init(&o);
        o.port = port;
        st = dray_dashboard_start(rt, &o, &d);
    } else {
        st = dray_dashboard_from_env(rt, &d);
        if (!st && !d)
            st = dray_dashboard_start(rt, NULL, &d);
    }
    if (st)
        return fail("dashboard");
    printf("dashboard: %s\n", dray_dashboard_url(d));
    fflush(stdout);

    dray_serve_opts so;
    dray_serve_opts_init(&so);
    so.port = -1;
    so.rt = rt;
    dray_serve *serve = NULL;
    dray_serve_handle *doubler = NULL;
    dray_serve_deployment_opts dep;
    dray_serve_deployment_opts_init(&dep);
    dep.name = "doubler";
    dep.class_name = "DemoDoubler";
    dep.num_replicas = 2;
    dep.num_cpus = 0;
    if (dray_serve_start(&so, &serve) || dray_serve_run(serve, &dep, &doubler))
        return fail("serve");

    dray_actor *counter;
    if (dray_actor_create(rt, "DemoCounter", NULL, 0, NULL, &counter))
        return fail("actor");
    dray_tune_space *sp;
    double rates[] = {0.05, 0.1, 0.2, 0.4};
    dray_tune_val rv[4];
    for (int i = 0; i < 4; i++)
        rv[i] = dray_tune_f(rates[i]);
    if (dray_tune_space_create(&sp) || dray_tune_space_grid(sp, "rate", rv, 4))
        return fail("tune space");
    dray_tune_run_opts to;
    dray_tune_run_opts_init(&to);
    to.name = "demo_decay";
    to.metric = "loss";
    to.mode = DRAY_TUNE_MIN;
    to.verbose = DRAY_TUNE_QUIET;
    to.max_concurrent_trials = 2;

    double t0 = now_s();
    int waves = 0, tune_runs = 0;
    while (now_s() - t0 < seconds) {
        if (wave(rt, counter, 20000))
            return 1;
        dray_events_log(rt, "info", "demo", "wave %d done", waves);
        for (int i = 0; i < 50; i++) {
            cJSON *body = cJSON_CreateObject();
            cJSON_AddNumberToObject(body, "x", i);
            dray_serve_response resp = {0};
            if (dray_serve_handle_call(doubler, body, &resp) == DRAY_OK)
                dray_serve_response_release(&resp);
            cJSON_Delete(body);
        }
        if (waves % 20 == 0) {
            dray_tune_grid *g;
            if (dray_tune_run(rt, "demo_decay", sp, &to, &g))
                return fail("tune run");
            dray_tune_grid_destroy(g);
            tune_runs++;
        }
        waves++;
    }
    /* The dashboard's counts against the runtime's own. */
    dray_stats s;
    dray_runtime_stats(rt, &s);
    int code;
    char *body;
    const char *ct;
    if (dray_dashboard_api(d, "/api/v0/summary", &code, &body, &ct) || code != 200)
        return fail("summary");
    cJSON *j = cJSON_Parse(body);
    dray_free(body);
    double finished = cJSON_GetNumberValue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "tasks"), "finished"));
    cJSON_Delete(j);
    printf("%d waves, %d tune runs: %llu tasks finished (%llu failed); dashboard reports %.0f\n",
           waves, tune_runs, (unsigned long long)s.tasks_finished,
           (unsigned long long)s.tasks_failed, finished);
    if (finished != (double)s.tasks_finished) {
        fprintf(stderr, "dashboard example: the dashboard's count differs\n");
        return 1;
    }
    if (report) {
        if (dray_performance_report(rt, report))
            return fail("report");
        printf("report: %s\n", report);
    }
    dray_actor_release(counter);
    dray_tune_space_destroy(sp);
    dray_serve_shutdown(serve, 5);
    dray_dashboard_stop(d);
    return dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN) ? 1 : 0;
}
