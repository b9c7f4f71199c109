/* Read-only snapshot of a running experiment for the dashboard: trials with status, config, metric
 * history, published on the runtime (dray_events_publish) while recording is on. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dray/dashboard.h"
#include "runner.h"

#define HISTORY_MAX 200 /* metric values per trial in a snapshot (the most recent) */

static cJSON *config_json(const dray_tune_config *cfg)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; cfg && i < dray_tune_config_len(cfg); i++) {
        const char *path = dray_tune_config_path_at(cfg, i);
        const dray_tune_val *v = dray_tune_config_val_at(cfg, i);
        if (v->kind == DRAY_TUNE_STR)
            cJSON_AddStringToObject(o, path, v->u.s ? v->u.s : "");
        else if (v->kind == DRAY_TUNE_BOOL)
            cJSON_AddBoolToObject(o, path, v->u.b);
        else if (isfinite(dray_tune_val_num(v)))
            cJSON_AddNumberToObject(o, path, dray_tune_val_num(v));
        else
            cJSON_AddNullToObject(o, path);
    }
    return o;
}

static void add_num(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

void dray__tune_publish(dray_runtime *rt, const char *name, const dray__tune_trial *t, size_t n,
                        const char *metric, const char *status)
{
    if (!dray_events_enabled(rt))
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name ? name : "tune");
    cJSON_AddStringToObject(o, "status", status);
    if (metric)
        cJSON_AddStringToObject(o, "metric", metric);
    cJSON *trials = cJSON_AddArrayToObject(o, "trials");
    size_t counts[5] = {0};
    for (size_t i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "id", t[i].id);
        cJSON_AddStringToObject(x, "status", dray_tune_status_name(t[i].status));
        if ((unsigned)t[i].status < 5)
            counts[t[i].status]++;
        cJSON_AddItemToObject(x, "config", config_json(t[i].cfg));
        cJSON_AddNumberToObject(x, "iterations", (double)t[i].iter);
        cJSON_AddNumberToObject(x, "time_s", t[i].time_total);
        cJSON *hist = cJSON_AddArrayToObject(x, "history");
        double last = NAN;
        size_t from = t[i].n_hist > HISTORY_MAX ? t[i].n_hist - HISTORY_MAX : 0;
        for (size_t k = from; metric && k < t[i].n_hist; k++) {
            double v;
            if (dray_tune_result_get(t[i].hist[k], metric, &v)) {
                cJSON_AddItemToArray(hist, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
                last = v;
            }
        }
        add_num(x, "last", last);
        if (t[i].error)
            cJSON_AddStringToObject(x, "error", t[i].error);
        cJSON_AddItemToArray(trials, x);
    }
    cJSON *c = cJSON_AddObjectToObject(o, "counts");
    for (int s = 0; s < 5; s++)
        cJSON_AddNumberToObject(c, dray_tune_status_name((dray_tune_status)s), (double)counts[s]);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text)
        dray_events_publish(rt, "tune", name ? name : "tune", text);
    cJSON_free(text);
}
