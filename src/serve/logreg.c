/* A small real model for serving demos, tests and benchmarks: logistic regression trained by
 * gradient descent, saved as text, and the built-in "LogisticRegression" deployment class. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static double sigmoid(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

double dray_serve_logreg_predict(const dray_serve_logreg *m, const double *x)
{
    double z = m->bias;
    for (size_t j = 0; j < m->dim; j++)
        z += m->w[j] * x[j];
    return sigmoid(z);
}

void dray_serve_logreg_fini(dray_serve_logreg *m)
{
    if (!m)
        return;
    free(m->w);
    memset(m, 0, sizeof(*m));
}

dray_status dray_serve_logreg_fit(const double *x, const double *y, size_t n, size_t dim,
                                  int epochs, double lr, dray_serve_logreg *out)
{
    if (n == 0 || dim == 0 || epochs < 0)
        return dray_set_error(DRAY_EINVAL, "logreg fit: need n > 0, dim > 0, epochs >= 0 (got %zu, "
                                           "%zu, %d)", n, dim, epochs);
    dray_serve_logreg m = {dim, 0.0, calloc(dim, sizeof(double))};
    double *grad = calloc(dim, sizeof(double));
    if (!m.w || !grad) {
        free(m.w);
        free(grad);
        return dray_set_error(DRAY_ENOMEM, "logreg fit: out of memory (dim %zu)", dim);
    }
    for (int e = 0; e < epochs; e++) {
        memset(grad, 0, dim * sizeof(double));
        double gb = 0;
        for (size_t i = 0; i < n; i++) {
            double err = dray_serve_logreg_predict(&m, x + i * dim) - y[i];
            for (size_t j = 0; j < dim; j++)
                grad[j] += err * x[i * dim + j];
            gb += err;
        }
        for (size_t j = 0; j < dim; j++)
            m.w[j] -= lr * grad[j] / (double)n;
        m.bias -= lr * gb / (double)n;
    }
    free(grad);
    *out = m;
    return DRAY_OK;
}

dray_status dray_serve_logreg_save(const dray_serve_logreg *m, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return dray_set_error(DRAY_EIO, "logreg save: %s: %s", path, strerror(errno));
    fprintf(f, "dray-logreg 1\n%zu\n%.17g\n", m->dim, m->bias);
    for (size_t j = 0; j < m->dim; j++)
        fprintf(f, "%.17g%c", m->w[j], j + 1 == m->dim ? '\n' : ' ');
    if (fclose(f) != 0)
        return dray_set_error(DRAY_EIO, "logreg save: %s: %s", path, strerror(errno));
    return DRAY_OK;
}

dray_status dray_serve_logreg_load(const char *path, dray_serve_logreg *out)
{
    dray_status st;
    FILE *f = fopen(path, "r");
    if (!f)
        return dray_set_error(DRAY_EIO, "logreg load: %s: %s", path, strerror(errno));
    dray_serve_logreg m = {0, 0, NULL};
    int version = 0;
    if (fscanf(f, "dray-logreg %d", &version) != 1 || version != 1) {
        st = dray_set_error(DRAY_EFORMAT, "logreg load: %s:1: not a 'dray-logreg 1' file", path);
        goto out_close;
    }
    if (fscanf(f, "%zu", &m.dim) != 1 || m.dim == 0 || m.dim > (1u << 20)) {
        st = dray_set_error(DRAY_EFORMAT, "logreg load: %s:2: bad dimension", path);
        goto out_close;
    }
    if (fscanf(f, "%lf", &m.bias) != 1 || !isfinite(m.bias)) {
        st = dray_set_error(DRAY_EFORMAT, "logreg load: %s:3: bad bias", path);
        goto out_close;
    }
    if (!(m.w = malloc(m.dim * sizeof(double)))) {
        st = dray_set_error(DRAY_ENOMEM, "logreg load: %s: out of memory", path);
        goto out_close;
    }
    for (size_t j = 0; j < m.dim; j++) {
        if (fscanf(f, "%lf", &m.w[j]) != 1 || !isfinite(m.w[j])) {
            st = dray_set_error(DRAY_EFORMAT, "logreg load: %s:4: weight %zu missing or bad", path,
                                j);
            goto out_free;
        }
    }
    fclose(f);
    *out = m;
    return DRAY_OK;
out_free:
    free(m.w);
out_close:
    fclose(f);
    return st;
}

/* ==== The built-in deployment class ================================================================*/

/* Reads a JSON array of exactly m->dim numbers into x. */
static dray_status read_row(const dray_serve_logreg *m, const cJSON *arr, const char *what,
                            double *x)
{
    if (!cJSON_IsArray(arr))
        return dray_set_error(DRAY_EINVAL, "%s: expected an array of %zu numbers", what, m->dim);
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n != m->dim)
        return dray_set_error(DRAY_EINVAL, "%s: expected %zu features, got %zu", what, m->dim, n);
    size_t j = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsNumber(v))
            return dray_set_error(DRAY_EINVAL, "%s[%zu]: not a number", what, j);
        x[j++] = v->valuedouble;
    }
    return DRAY_OK;
}

static dray_status logreg_init(dray_serve *serve, const cJSON *cfg, void **state)
{
    (void)serve;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(cfg, "model_path");
    if (!cJSON_IsString(p))
        return dray_set_error(DRAY_EINVAL, "LogisticRegression: user_config needs \"model_path\"");
    dray_serve_logreg *m = calloc(1, sizeof(*m));
    if (!m)
        return dray_set_error(DRAY_ENOMEM, "LogisticRegression: out of memory");
    dray_status st = dray_serve_logreg_load(p->valuestring, m);
    if (st != DRAY_OK) {
        free(m);
        return st;
    }
    *state = m;
    return DRAY_OK;
}

static void logreg_destroy(void *state)
{
    dray_serve_logreg_fini(state);
    free(state);
}

static dray_status logreg_reconfigure(void *state, const cJSON *cfg)
{
    void *fresh;
    dray_status st = logreg_init(NULL, cfg, &fresh);
    if (st != DRAY_OK)
        return st;
    dray_serve_logreg *m = state;
    dray_serve_logreg_fini(m);
    *m = *(dray_serve_logreg *)fresh;
    free(fresh);
    return DRAY_OK;
}

/* Predicts for one request body into *out (a new JSON object). */
static dray_status predict_json(const dray_serve_logreg *m, const cJSON *body, cJSON **out)
{
    double stackx[64];
    double *x = m->dim <= 64 ? stackx : malloc(m->dim * sizeof(double));
    if (!x)
        return dray_set_error(DRAY_ENOMEM, "LogisticRegression: out of memory");
    dray_status st = DRAY_OK;
    cJSON *res = cJSON_CreateObject();
    const cJSON *feat = cJSON_GetObjectItemCaseSensitive(body, "features");
    const cJSON *inst = cJSON_GetObjectItemCaseSensitive(body, "instances");
    if (!res) {
        st = dray_set_error(DRAY_ENOMEM, "LogisticRegression: out of memory");
    } else if (feat) {
        if ((st = read_row(m, feat, "features", x)) == DRAY_OK) {
            double p = dray_serve_logreg_predict(m, x);
            cJSON_AddNumberToObject(res, "probability", p);
            cJSON_AddNumberToObject(res, "label", p >= 0.5);
        }
    } else if (cJSON_IsArray(inst)) {
        cJSON *preds = cJSON_AddArrayToObject(res, "predictions");
        int i = 0;
        const cJSON *row;
        cJSON_ArrayForEach(row, inst)
        {
            char what[48];
            snprintf(what, sizeof(what), "instances[%d]", i++);
            if ((st = read_row(m, row, what, x)) != DRAY_OK)
                break;
            cJSON_AddItemToArray(preds, cJSON_CreateNumber(dray_serve_logreg_predict(m, x)));
        }
    } else {
        st = dray_set_error(DRAY_EINVAL, "body: expected {\"features\": [...]} or "
                                         "{\"instances\": [[...], ...]}");
    }
    if (x != stackx)
        free(x);
    if (st != DRAY_OK) {
        cJSON_Delete(res);
        return st;
    }
    *out = res;
    return DRAY_OK;
}

static dray_status logreg_call(void *state, dray_serve_request *req, dray_serve_response *resp)
{
    const cJSON *body;
    dray_status st = dray_serve_request_json(req, &body);
    if (st != DRAY_OK)
        return st;
    return predict_json(state, body, &resp->json);
}

static dray_status logreg_batch(void *state, dray_serve_request *const *reqs, size_t n,
                                dray_serve_response *resps)
{
    for (size_t i = 0; i < n; i++) {
        const cJSON *body;
        dray_status st = dray_serve_request_json(reqs[i], &body);
        if (st == DRAY_OK)
            st = predict_json(state, body, &resps[i].json);
        if (st != DRAY_OK)
            dray__serve_error_response(&resps[i], dray_serve_http_status(st), dray_last_error());
    }
    return DRAY_OK;
}

static dray_serve_class logreg_class = {
    .name = "LogisticRegression",
    .init = logreg_init,
    .call = logreg_call,
    .batch_call = logreg_batch,
    .reconfigure = logreg_reconfigure,
    .destroy = logreg_destroy,
};
DRAY_SERVE_CLASS(logreg_class)
