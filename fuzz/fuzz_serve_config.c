/* libFuzzer target: serve config files (YAML). Every input parses into a config or fails with
 * DRAY_EFORMAT and a message naming the input; a parsed config's http_options apply cleanly. */
#include <stdlib.h>
#include <string.h>

#include "dray/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dray_serve_config *cfg = NULL;
    dray_status st = dray_serve_config_parse((const char *)data, size, "fuzz.yaml", &cfg);
    if (st == DRAY_OK) {
        dray_serve_opts o;
        dray_serve_opts_init(&o);
        dray_serve_config_http(cfg, &o);
        if (!o.host)
            abort();
        dray_serve_config_destroy(cfg);
    } else if ((st != DRAY_EFORMAT && st != DRAY_ENOMEM) || !strstr(dray_last_error(), "fuzz.yaml")) {
        if (st != DRAY_ENOMEM)
            abort();
    }
    return 0;
}
