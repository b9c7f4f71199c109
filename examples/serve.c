/* The seed's serving example: trains a logistic regression on generated data, saves it to a file,
 * serves it over HTTP on 127.0.0.1 (a "LogisticRegression" deployment whose init loads the file,
 * two replicas as actors) behind a user-defined "Classifier" deployment that calls the model through
 * a handle, sends requests, checks every answer against the model computed directly, shuts down.
 * Exits non-zero if any answer is wrong. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dray/core.h"
#include "dray/serve.h"

#define DIM 4

/* ---- A user deployment: thresholds the model's probability, calling it through a handle. ---- */
typedef struct classifier {
    dray_serve_handle *model;
    double threshold;
} classifier;

static dray_status classifier_init(dray_serve *serve, const cJSON *cfg, void **state)
{
    classifier *c = calloc(1, sizeof(*c));
    if (!c)
        return dray_set_error(DRAY_ENOMEM, "Classifier: out of memory");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "threshold");
    c->threshold = cJSON_IsNumber(t) ? t->valuedouble : 0.5;
    dray_status st = dray_serve_get_handle(serve, "model", &c->model);
    if (st != DRAY_OK) {
        free(c);
        return st;
    }
    *state = c;
    return DRAY_OK;
}

static dray_status classifier_call(void *state, dray_serve_request *req, dray_serve_response *resp)
{
    classifier *c = state;
    const cJSON *body;
    dray_status st = dray_serve_request_json(req, &body);
    if (st != DRAY_OK)
        return st;
    dray_serve_response inner;
    if ((st = dray_serve_handle_call(c->model, body, &inner)) != DRAY_OK)
        return st;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(inner.json, "probability");
    if (!cJSON_IsNumber(p)) {
        dray_serve_response_release(&inner);
        return dray_set_error(DRAY_EFORMAT, "Classifier: model answered without a probability");
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "probability", p->valuedouble);
    cJSON_AddStringToObject(o, "class", p->valuedouble >= c->threshold ? "positive" : "negative");
    dray_serve_response_release(&inner);
    resp->json = o;
    return DRAY_OK;
}

static void classifier_destroy(void *state)
{
    free(state);
}

static dray_serve_class classifier_class = {
    .name = "Classifier",
    .init = classifier_init,
    .call = classifier_call,
    .destroy = classifier_destroy,
};
DRAY_SERVE_CLASS(classifier_class)

/* ---- Data: labels from a hidden linear rule with 5% of them flipped. ---- */
static double uniform(unsigned long long *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0 * 2 - 1;
}

static void make_data(double *x, double *y, size_t n, unsigned long long seed)
{
    static const double truth[DIM] = {2.0, -1.5, 0.75, 1.0};
    for (size_t i = 0; i < n; i++) {
        double z = 0.25;
        for (int j = 0; j < DIM; j++) {
            x[i * DIM + j] = uniform(&seed);
            z += truth[j] * x[i * DIM + j];
        }
        y[i] = (z > 0) ^ (uniform(&seed) > 0.9);
    }
}

static int fail(const char *what)
{
    fprintf(stderr, "serve example: %s: %s\n", what, dray_last_error());
    return 1;
}

int main(void)
{
    enum { N_TRAIN = 2000, N_REQ = 60 };
    static double x[N_TRAIN * DIM], y[N_TRAIN];
    make_data(x, y, N_TRAIN, 42);
    dray_serve_logreg model;
    if (dray_serve_logreg_fit(x, y, N_TRAIN, DIM, 300, 1.0, &model) != DRAY_OK)
        return fail("training");
    char path[] = "/tmp/dray-serve-model-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return fail("temporary file");
    close(fd);
    if (dray_serve_logreg_save(&model, path) != DRAY_OK)
        return fail("saving the model");

    int rc = 1;
    dray_runtime *rt = NULL;
    dray_serve *s = NULL;
    if (dray_init(NULL, &rt) != DRAY_OK)
        goto out;
    dray_serve_opts so;
    dray_serve_opts_init(&so);
    so.rt = rt; /* replicas run as actors on the runtime */
    if (dray_serve_start(&so, &s) != DRAY_OK) {
        fail("starting serve");
        goto out;
    }
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "{\"model_path\": \"%s\"}", path);
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = "model";
    d.class_name = "LogisticRegression";
    d.route_prefix = "/predict";
    d.user_config = cfg;
    d.num_replicas = 2;
    dray_serve_deployment_opts c;
    dray_serve_deployment_opts_init(&c);
    c.name = "classifier";
    c.class_name = "Classifier";
    c.route_prefix = "/classify";
    c.user_config = "{\"threshold\": 0.5}";
    if (dray_serve_run(s, &d, NULL) != DRAY_OK || dray_serve_run(s, &c, NULL) != DRAY_OK) {
        fail("deploying");
        goto out;
    }
    int port = dray_serve_port(s);
    printf("serving on http://127.0.0.1:%d (/predict, /classify)\n", port);

    /* Requests on fresh data; each answer checked against w.x + b computed here. */
    static double tx[N_REQ * DIM], ty[N_REQ];
    make_data(tx, ty, N_REQ, 7);
    int wrong = 0, correct_labels = 0;
    for (int i = 0; i < N_REQ; i++) {
        const double *row = tx + i * DIM;
        char body[256];
        snprintf(body, sizeof(body), "{\"features\": [%.17g, %.17g, %.17g, %.17g]}", row[0],
                 row[1], row[2], row[3]);
        double z = model.bias;
        for (int j = 0; j < DIM; j++)
            z += model.w[j] * row[j];
        double want = 1 / (1 + exp(-z));
        const char *route = i % 2 ? "/classify" : "/predict";
        int status = 0;
        char *resp = NULL;
        if (dray_serve_http_request("127.0.0.1", port, "POST", route, body, strlen(body), 10,
                                    &status, &resp) != DRAY_OK) {
            fail("request");
            goto out;
        }
        cJSON *j = cJSON_Parse(resp);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "probability");
        if (status != 200 || !cJSON_IsNumber(p) || fabs(p->valuedouble - want) > 1e-12) {
            fprintf(stderr, "request %d: %s -> %d %s (want probability %.17g)\n", i, body, status,
                    resp, want);
            wrong++;
        }
        correct_labels += (want >= 0.5) == (ty[i] > 0.5);
        cJSON_Delete(j);
        dray_free(resp);
    }
    /* Bad input is answered with a JSON error, and serving goes on. */
    int status = 0;
    char *resp = NULL;
    const char *bad = "{\"features\": [1, 2]}";
    if (dray_serve_http_request("127.0.0.1", port, "POST", "/predict", bad, strlen(bad), 10,
                                &status, &resp) != DRAY_OK) {
        fail("request");
        goto out;
    }
    printf("bad request -> %d %s\n", status, resp);
    if (status != 400 || !strstr(resp, "expected 4 features, got 2"))
        wrong++;
    dray_free(resp);
    printf("%d requests answered over HTTP, %d wrong; model accuracy on them %d/%d\n", N_REQ,
           wrong, correct_labels, N_REQ);
    rc = wrong == 0 && correct_labels >= N_REQ * 8 / 10 ? 0 : 1;
out:
    if (s)
        dray_serve_shutdown(s, 5);
    if (rt)
        dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    dray_serve_logreg_fini(&model);
    remove(path);
    return rc;
}
