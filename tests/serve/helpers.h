/* Test deployments and helpers shared by the serve tests: an echo class, a class whose calls sleep
 * and count concurrency, a crashing class, and a trained logistic regression written to a file. */
#ifndef DRAY_TEST_SERVE_HELPERS_H
#define DRAY_TEST_SERVE_HELPERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "dray/serve.h"
#include "test.h"

/* Echo: answers {"echo": body, "path": path, "tag": user_config.tag}. */
typedef struct echo_state {
    char tag[64];
} echo_state;

static dray_status echo_init(dray_serve *serve, const cJSON *cfg, void **state)
{
    (void)serve;
    echo_state *e = calloc(1, sizeof(*e));
    if (!e)
        return DRAY_ENOMEM;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "tag");
    snprintf(e->tag, sizeof(e->tag), "%s", cJSON_IsString(t) ? t->valuestring : "none");
    *state = e;
    return DRAY_OK;
}

static dray_status echo_call(void *state, dray_serve_request *req, dray_serve_response *resp)
{
    echo_state *e = state;
    const cJSON *body = NULL;
    if (req->len > 0 || req->json) {
        dray_status st = dray_serve_request_json(req, &body);
        if (st != DRAY_OK)
            return st;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "echo", body ? cJSON_Duplicate(body, 1) : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "path", req->path);
    cJSON_AddStringToObject(o, "tag", e->tag);
    const char *q = dray_serve_request_query(req, "q"), *hdr = dray_serve_request_header(req, "x-test");
    if (q)
        cJSON_AddStringToObject(o, "q", q);
    if (hdr)
        cJSON_AddStringToObject(o, "x_test", hdr);
    resp->json = o;
    return DRAY_OK;
}

static dray_status echo_reconfigure(void *state, const cJSON *cfg)
{
    echo_state *e = state;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "tag");
    snprintf(e->tag, sizeof(e->tag), "%s", cJSON_IsString(t) ? t->valuestring : "none");
    return DRAY_OK;
}

static void free_state(void *state)
{
    free(state);
}

static dray_serve_class echo_class = {
    .name = "TestEcho",
    .init = echo_init,
    .call = echo_call,
    .reconfigure = echo_reconfigure,
    .destroy = free_state,
};
DRAY_SERVE_CLASS(echo_class)

static inline void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (double)(long)(ms / 1000) * 1000) * 1e6)};
    nanosleep(&ts, NULL);
}

/* Sleeper: each call sleeps user_config.ms; a call with body {"crash": true} returns DRAY_EFATAL;
 * the health check fails once user_config.unhealthy_after calls were made (when > 0). */
typedef struct sleeper_state {
    double ms;
    int calls;
    int unhealthy_after;
} sleeper_state;

static dray_status sleeper_init(dray_serve *serve, const cJSON *cfg, void **state)
{
    (void)serve;
    sleeper_state *s = calloc(1, sizeof(*s));
    if (!s)
        return DRAY_ENOMEM;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(cfg, "ms");
    const cJSON *ua = cJSON_GetObjectItemCaseSensitive(cfg, "unhealthy_after");
    s->ms = cJSON_IsNumber(ms) ? ms->valuedouble : 0;
    s->unhealthy_after = cJSON_IsNumber(ua) ? ua->valueint : 0;
    *state = s;
    return DRAY_OK;
}

static dray_status sleeper_call(void *state, dray_serve_request *req, dray_serve_response *resp)
{
    sleeper_state *s = state;
    s->calls++;
    if (req->len > 0 || req->json) {
        const cJSON *body;
        if (dray_serve_request_json(req, &body) == DRAY_OK &&
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "crash")))
            return dray_set_error(DRAY_EFATAL, "sleeper: asked to crash");
    }
    sleep_ms(s->ms);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "calls", s->calls);
    resp->json = o;
    return DRAY_OK;
}

static dray_status sleeper_health(void *state)
{
    sleeper_state *s = state;
    if (s->unhealthy_after > 0 && s->calls >= s->unhealthy_after)
        return dray_set_error(DRAY_EIO, "sleeper: unhealthy after %d calls", s->calls);
    return DRAY_OK;
}

static dray_serve_class sleeper_class = {
    .name = "TestSleeper",
    .init = sleeper_init,
    .call = sleeper_call,
    .health_check = sleeper_health,
    .destroy = free_state,
};
DRAY_SERVE_CLASS(sleeper_class)

/* Trains a logistic regression on generated separable-ish data and saves it to `path`. */
static inline void train_model(const char *path, size_t dim, dray_serve_logreg *m)
{
    size_t n = 400;
    double *x = malloc(n * dim * sizeof(double)), *y = malloc(n * sizeof(double));
    unsigned seed = 7;
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < dim; j++) {
            seed = seed * 1103515245u + 12345u;
            x[i * dim + j] = ((double)(seed >> 8) / (double)(1u << 24)) * 2 - 1;
            s += x[i * dim + j] * (double)(j + 1) * (j % 2 ? -1 : 1);
        }
        y[i] = s > 0;
    }
    ASSERT_OK(dray_serve_logreg_fit(x, y, n, dim, 200, 0.5, m));
    ASSERT_OK(dray_serve_logreg_save(m, path));
    free(x);
    free(y);
}

/* tmp_path: "/tmp/dray-serve-test-PID-name" (a few live at once; rotating buffers). */
static inline const char *tmp_path(const char *name)
{
    static char bufs[8][128];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "/tmp/dray-serve-test-%d-%s", (int)getpid(), name);
    return b;
}

/* HTTP helpers. */
static inline int http(dray_serve *s, const char *method, const char *path, const char *body, char **resp)
{
    int status = 0;
    ASSERT_OK(dray_serve_http_request("127.0.0.1", dray_serve_port(s), method, path, body,
                                      body ? strlen(body) : 0, 10.0, &status, resp));
    return status;
}

/* When set, replicas run as actors on this runtime (the *_on_actors tests). */
static dray_runtime *test_rt;
/* With test_rt: replicas inline (dray_serve_opts.inline_replicas) instead of actors. */
static bool test_inline;

static inline dray_serve *start_serve(int port)
{
    dray_serve_opts o;
    dray_serve_opts_init(&o);
    o.rt = test_rt;
    o.inline_replicas = test_inline;
    o.port = port;
    o.max_body_bytes = 4096;
    o.control_period_s = 0.01;
    dray_serve *s = NULL;
    ASSERT_OK(dray_serve_start(&o, &s));
    return s;
}

/* Runs `body` with replicas as actors on a fresh runtime. */
#define WITH_ACTORS(...)                                                                           \
    do {                                                                                           \
        ASSERT_OK(dray_init(NULL, &test_rt));                                                      \
        __VA_ARGS__;                                                                               \
        ASSERT_OK(dray_shutdown(test_rt, DRAY_SHUTDOWN_DRAIN));                                    \
        test_rt = NULL;                                                                            \
    } while (0)

#endif
