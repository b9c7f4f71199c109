/* `dray stop`: stops this machine's dray processes recorded in the cluster directories. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dray/cluster.h"

static int stop_dir(const char *dir)
{
    int n = 0;
    if (dray_cluster_stop_recorded(dir, 5000, &n)) {
        fprintf(stderr, "dray stop: %s\n", dray_last_error());
        return -1;
    }
    if (n)
        printf("stopped %d process(es) of %s\n", n, dir);
    return n;
}

static int run_stop(int argc, char **argv)
{
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: dray stop [--port P]\n");
            return 2;
        }
    }
    const char *env = getenv("DRAY_CLUSTER_DIR");
    char dir[4096];
    if (port || (env && *env)) {
        dray_cluster_dir(port, dir, sizeof dir);
        return stop_dir(dir) < 0;
    }
    /* Every cluster of this user on this machine. */
    char base[64];
    snprintf(base, sizeof base, "/tmp/dray-%u", (unsigned)getuid());
    DIR *d = opendir(base);
    int total = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, "cluster-", 8)) {
            snprintf(dir, sizeof dir, "%s/%s", base, e->d_name);
            int n = stop_dir(dir);
            total += n > 0 ? n : 0;
        }
    if (d)
        closedir(d);
    if (!total)
        printf("no dray processes were running\n");
    return 0;
}
DRAY_CLI_COMMAND(cmd_stop, "stop", "stop this machine's dray processes", run_stop)
