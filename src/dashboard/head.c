/* The head's dashboard: `dray start --head` serves one next to the head (nodes from the head's own
 * status answer, logs from the cluster directory) and records its URL in DIR/dashboard.url for the
 * CLI to print. Port: $DRAY_DASHBOARD_PORT, else 8265 (Ray's), else any free one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Reads the cluster secret (64 hex digits) of dir into hex[65]. */
static bool read_secret(const char *dir, char hex[65])
{
    char path[4200];
    snprintf(path, sizeof path, "%s/secret", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(hex, 1, 64, f);
    fclose(f);
    hex[n] = 0;
    return n == 64;
}

dray_status dray__dashboard_head_start(const char *dir, const char *bind, int head_port,
                                       void **out)
{
    char address[64], hex[65];
    snprintf(address, sizeof address, "127.0.0.1:%d", head_port);
    dray_dashboard_opts o;
    dray_dashboard_opts_init(&o);
    o.bind = bind;
    o.cluster_address = address;
    o.cluster_dir = dir;
    bool loopback = !bind || !strncmp(bind, "127.", 4);
    if (!loopback) {
        if (!read_secret(dir, hex))
            return dray_set_error(DRAY_ENOTFOUND, "dashboard: no secret in %s", dir);
        o.token = hex; /* off loopback the cluster secret is the token */
    }
    const char *env = getenv("DRAY_DASHBOARD_PORT");
    o.port = env && *env ? atoi(env) : 8265;
    dray_dashboard *d = NULL;
    dray_status st = dray_dashboard_start(NULL, &o, &d);
    if (st == DRAY_EBUSY && !(env && *env)) {
        o.port = 0;
        st = dray_dashboard_start(NULL, &o, &d);
    }
    if (st)
        return st;
    char path[4200];
    snprintf(path, sizeof path, "%s/dashboard.url", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%s%s\n", dray_dashboard_url(d), loopback ? "" : "?token=<the cluster secret>");
        fclose(f);
    }
    *out = d;
    return DRAY_OK;
}

void dray__dashboard_head_stop(void *d)
{
    dray_dashboard_stop(d);
}
