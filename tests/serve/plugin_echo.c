/* A deployment class in a shared library, loaded by test_config through an import_path
 * ("plugin.so:PluginEcho"). It exports the class object under its name and calls no dray function,
 * so it loads into hosts that do not export their symbols. Answers {"plugin": body, "greeting": g}. */
#include <stdlib.h>
#include <string.h>

#include "dray/serve.h"

typedef struct plugin_state {
    char greeting[64];
} plugin_state;

static dray_status plugin_init(dray_serve *serve, const cJSON *cfg, void **state)
{
    (void)serve;
    plugin_state *p = calloc(1, sizeof(*p));
    if (!p)
        return DRAY_ENOMEM;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(cfg, "greeting");
    strncpy(p->greeting, cJSON_IsString(g) ? g->valuestring : "hi", sizeof(p->greeting) - 1);
    *state = p;
    return DRAY_OK;
}

static dray_status plugin_call(void *state, dray_serve_request *req, dray_serve_response *resp)
{
    plugin_state *p = state;
    cJSON *body = req->len ? cJSON_ParseWithLength(req->body, req->len) : cJSON_CreateNull();
    if (!body)
        return DRAY_EFORMAT;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "plugin", body);
    cJSON_AddStringToObject(o, "greeting", p->greeting);
    resp->json = o;
    return DRAY_OK;
}

static void plugin_destroy(void *state)
{
    free(state);
}

dray_serve_class PluginEcho = {
    .name = "PluginEcho",
    .init = plugin_init,
    .call = plugin_call,
    .destroy = plugin_destroy,
};
