/* The cluster directory (secret, PID files, logs) and address parsing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

void dray__cluster_dir(int port, char *out, size_t size)
{
    const char *env = getenv("DRAY_CLUSTER_DIR");
    if (env && *env)
        snprintf(out, size, "%s", env);
    else
        snprintf(out, size, "/tmp/dray-%u/cluster-%d", (unsigned)getuid(), port);
}

dray_status dray__parse_address(const char *address, char *host, size_t hsize, int *port)
{
    const char *colon = address ? strrchr(address, ':') : NULL;
    if (!colon || colon == address || (size_t)(colon - address) >= hsize)
        return dray_set_error(DRAY_EINVAL, "address '%s' is not HOST:PORT", address ? address : "");
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
        return dray_set_error(DRAY_EINVAL, "address '%s': port is not a number in 1..65535",
                              address);
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = 0;
    *port = (int)p;
    return DRAY_OK;
}

dray_status dray__secret_load(const char *address, uint8_t secret[32])
{
    const char *env = getenv("DRAY_SECRET");
    if (env && *env) {
        if (strlen(env) != 64 || dray__hex_decode(env, secret, 32))
            return dray_set_error(DRAY_EINVAL, "DRAY_SECRET must be 64 hex digits");
        return DRAY_OK;
    }
    char host[256], dir[4096], path[4200];
    int port;
    dray_status st = dray__parse_address(address, host, sizeof host, &port);
    if (st)
        return st;
    dray__cluster_dir(port, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/secret", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return dray_set_error(DRAY_ENOTFOUND, "cannot read the cluster secret %s: %s (set "
                              "DRAY_CLUSTER_DIR or DRAY_SECRET)", path, strerror(errno));
    char hex[80] = {0};
    size_t n = fread(hex, 1, sizeof hex - 1, f);
    fclose(f);
    if (n < 64 || dray__hex_decode(hex, secret, 32))
        return dray_set_error(DRAY_EFORMAT, "cluster secret %s: not 64 hex digits", path);
    return DRAY_OK;
}
