/* libFuzzer target: an HTTP request body as a deployment receives it. The bytes go through serve's
 * JSON parsing (depth and trailing-data limits) and then through the built-in LogisticRegression
 * deployment's call, which reads {"features": [...]} or {"instances": [[...]]} against a 3-feature
 * model: every input must give DRAY_OK with a response, or an error status with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dray/serve.h"

static const dray_serve_class *cls;
static void *state;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/dray-fuzz-serve-%d.txt", (int)getpid());
    double w[3] = {0.5, -1.25, 2.0};
    dray_serve_logreg m = {3, 0.1, w};
    char cfg[128];
    snprintf(cfg, sizeof(cfg), "{\"model_path\": \"%s\"}", path);
    cJSON *c = cJSON_Parse(cfg);
    cls = dray_serve_class_find("LogisticRegression");
    if (!cls || dray_serve_logreg_save(&m, path) != DRAY_OK || cls->init(NULL, c, &state) != DRAY_OK)
        abort();
    cJSON_Delete(c);
    remove(path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Copy into an exact-size buffer so reads past the body are caught. */
    char *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    cJSON *j = NULL;
    dray_status st = dray_serve_parse_json(body, size, &j);
    if (st == DRAY_OK) {
        char *text = cJSON_PrintUnformatted(j);
        if (!text)
            abort();
        free(text);
        cJSON_Delete(j);
    } else if (!dray_last_error()[0]) {
        abort();
    }
    dray_serve_request req = {.method = "POST", .path = "/", .body = body, .len = size};
    dray_serve_response resp;
    memset(&resp, 0, sizeof(resp));
    st = cls->call(state, &req, &resp);
    if (st == DRAY_OK && !resp.json)
        abort();
    if (st != DRAY_OK && (dray_serve_http_status(st) != 400 || !dray_last_error()[0]))
        abort();
    cJSON_Delete((cJSON *)req.priv_);
    dray_serve_response_release(&resp);
    free(body);
    return 0;
}
