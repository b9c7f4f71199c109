/* libFuzzer target: a request target ("/path?k=v&...") as the dashboard receives it. It goes through
 * the query parser (percent-decoding, limits) and then the whole router of a live dashboard: every
 * input must be answered 200, 400 or 404, errors as JSON, never a crash or leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../src/dashboard/internal.h"

static dray_runtime *rt;
static dray_dashboard *dash;

static void stop(void)
{
    dray_dashboard_stop(dash);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 1;
    cfg.progress = 0;
    if (dray_init(&cfg, &rt) || dray_dashboard_start(rt, NULL, &dash))
        abort();
    dray_events_log(rt, "info", "fuzz", "a log line");
    atexit(stop);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *target = malloc(size + 1);
    if (!target)
        return 0;
    memcpy(target, data, size);
    target[size] = 0;
    db_query q;
    if (db_query_parse(target, &q) == DRAY_OK) {
        if (q.path[0] != '/' || q.n > DB_MAX_PARAMS)
            abort();
        for (size_t i = 0; i < q.n; i++)
            if (!q.key[i][0] || db_query_get(&q, q.key[i]) != q.val[i])
                abort(); /* keys are non-empty and unique */
        for (const char *p = q.path; *p; p++)
            if ((unsigned char)*p < 0x20)
                abort();
    }
    int status;
    char *body = NULL;
    const char *ct;
    if (dray_dashboard_api(dash, target, &status, &body, &ct) == DRAY_OK) {
        if (status != 200 && status != 400 && status != 404)
            abort();
        if (status != 200) {
            cJSON *j = cJSON_Parse(body);
            if (!j || !cJSON_IsString(cJSON_GetObjectItem(j, "error")))
                abort();
            cJSON_Delete(j);
        }
        dray_free(body);
    }
    free(target);
    return 0;
}
