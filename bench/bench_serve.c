/* The server side of bench/serve.sh: serves a no-op deployment or the logistic regression model
 * (optionally batched) on 127.0.0.1 for a while, then prints its counters. Usage:
 * bench_serve train MODEL_FILE, then bench_serve noop|model|batched REPLICAS SECONDS MODEL_FILE
 * [actors|direct] (SECONDS at most: SIGTERM ends it sooner); replicas run as core
 * actors on an embedded runtime by default ("direct": inline_replicas, in the ingress threads). Prints "port N" first,
 * and at the end
 * "requests N server_us X model_us Y" (mean server time per request, from headers to answer, and
 * mean time in the deployment's call). */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dray/serve.h"

static dray_status noop_init(dray_serve *serve, const cJSON *cfg, void **state)
{
    (void)serve;
    (void)cfg;
    *state = NULL;
    return DRAY_OK;
}

static dray_status noop_call(void *state, dray_serve_request *req, dray_serve_response *resp)
{
    static const char ok[] = "{\"ok\":true}";
    (void)state;
    (void)req;
    resp->body_static = ok;
    resp->len = sizeof(ok) - 1;
    return DRAY_OK;
}

static void noop_destroy(void *state)
{
    (void)state;
}

static dray_serve_class noop_class = {
    .name = "BenchNoop", .init = noop_init, .call = noop_call, .destroy = noop_destroy};
DRAY_SERVE_CLASS(noop_class)

/* Trains the benchmark's model (4 features, labels from a linear rule) and saves it to path. */
static int train(const char *path)
{
    enum { N = 2000, D = 4 };
    static double x[N * D], y[N];
    unsigned long long s = 1;
    for (int i = 0; i < N; i++) {
        double z = 0;
        for (int j = 0; j < D; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x[i * D + j] = (double)(s >> 11) / 9007199254740992.0 * 2 - 1;
            z += (j % 2 ? -1.0 : 1.0) * (j + 1) * x[i * D + j];
        }
        y[i] = z > 0;
    }
    dray_serve_logreg m;
    if (dray_serve_logreg_fit(x, y, N, D, 200, 1.0, &m) != DRAY_OK ||
        dray_serve_logreg_save(&m, path) != DRAY_OK) {
        fprintf(stderr, "bench_serve: %s\n", dray_last_error());
        return 1;
    }
    dray_serve_logreg_fini(&m);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "train") == 0)
        return train(argv[2]);
    if (argc < 5) {
        fprintf(stderr, "usage: bench_serve noop|model|batched REPLICAS SECONDS MODEL_FILE "
                        "[actors|direct]\n       bench_serve train MODEL_FILE\n");
        return 2;
    }
    const char *mode = argv[1];
    int replicas = atoi(argv[2]), seconds = atoi(argv[3]);
    bool actors = argc < 6 || strcmp(argv[5], "direct") != 0;
    /* SIGTERM ends the run early; block it before any thread starts so only sigtimedwait sees it. */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL);
    dray_runtime *rt = NULL;
    if (dray_init(NULL, &rt) != DRAY_OK) {
        fprintf(stderr, "bench_serve: %s\n", dray_last_error());
        return 1;
    }
    dray_serve_opts o;
    dray_serve_opts_init(&o);
    o.rt = rt;
    o.inline_replicas = !actors;
    if (getenv("BENCH_SERVE_THREADS")) /* ingress threads, for tuning runs */
        o.threads = atoi(getenv("BENCH_SERVE_THREADS"));
    dray_serve *s;
    if (dray_serve_start(&o, &s) != DRAY_OK) {
        fprintf(stderr, "bench_serve: %s\n", dray_last_error());
        if (rt)
            dray_shutdown(rt, DRAY_SHUTDOWN_CANCEL);
        return 1;
    }
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.route_prefix = "/";
    d.num_replicas = replicas;
    d.max_ongoing_requests = 1000;
    d.actor_calls = getenv("BENCH_SERVE_ACTOR_CALLS") != NULL; /* the hop through the mailbox */
    char cfg[512];
    snprintf(cfg, sizeof(cfg), "{\"model_path\": \"%s\"}", argv[4]);
    if (strcmp(mode, "noop") == 0) {
        d.class_name = "BenchNoop";
    } else {
        d.class_name = "LogisticRegression";
        d.user_config = cfg;
        if (strcmp(mode, "batched") == 0) {
            d.max_batch_size = 32;
            d.batch_wait_timeout_s = 0.0005;
        }
    }
    dray_serve_handle *h;
    if (dray_serve_run(s, &d, &h) != DRAY_OK) {
        fprintf(stderr, "bench_serve: %s\n", dray_last_error());
        dray_serve_shutdown(s, 1);
        if (rt)
            dray_shutdown(rt, DRAY_SHUTDOWN_CANCEL);
        return 1;
    }
    printf("port %d\n", dray_serve_port(s));
    fflush(stdout);
    struct timespec limit = {seconds, 0};
    sigtimedwait(&term, NULL, &limit);
    cJSON *st;
    if (dray_serve_status_json(s, &st) == DRAY_OK) {
        double n = cJSON_GetObjectItem(st, "http_requests")->valuedouble;
        double http_s = cJSON_GetObjectItem(st, "http_seconds")->valuedouble;
        cJSON *dep = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "deployments"), 0);
        double calls = cJSON_GetObjectItem(dep, "requests")->valuedouble;
        double call_s = cJSON_GetObjectItem(dep, "call_seconds")->valuedouble;
        printf("requests %.0f server_us %.3f model_us %.3f batches %.0f\n", n,
               n > 0 ? http_s / n * 1e6 : 0, calls > 0 ? call_s / calls * 1e6 : 0,
               cJSON_GetObjectItem(dep, "batches")->valuedouble);
        cJSON_Delete(st);
    }
    dray_serve_shutdown(s, 5);
    if (rt)
        dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return 0;
}
