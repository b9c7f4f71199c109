/* `dray status`: lists the cluster's nodes, their resources and tasks (a node above its memory
 * pause fraction shows "paused" in the alive column). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dray/cluster.h"

static int64_t geti(const dray_value *m, const char *k)
{
    const dray_value *v = dray_map_get(m, k);
    return v && v->type == DRAY_T_INT ? v->u.i : (v && v->type == DRAY_T_BOOL ? v->u.b : -1);
}

static int run_status(int argc, char **argv)
{
    const char *address = getenv("DRAY_ADDRESS");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--address") && i + 1 < argc)
            address = argv[++i];
        else {
            fprintf(stderr, "usage: dray status [--address HOST:PORT]\n");
            return 2;
        }
    }
    if (!address || !*address)
        address = "127.0.0.1:6379";
    dray_value st;
    if (dray_cluster_status(address, &st)) {
        fprintf(stderr, "dray status: %s\n", dray_last_error());
        return 1;
    }
    const dray_value *nodes = dray_map_get(&st, "nodes");
    int alive = 0, cpus = 0;
    printf("cluster %s: %lld driver(s) connected\n", address, (long long)geti(&st, "drivers"));
    printf("%-4s %-22s %-7s %-5s %-6s %-10s %-8s %-8s %-8s %-24s %s\n", "node", "address", "pid",
           "cpus", "alive", "tasks_done", "running", "spilled", "objects",
           "store MB mem/disk/limit", "last_heartbeat_ms");
    for (size_t i = 0; nodes && i < dray_list_len(nodes); i++) {
        const dray_value *n = dray_list_get(nodes, i);
        const dray_value *a = dray_map_get(n, "address");
        bool up = geti(n, "alive") == 1;
        alive += up;
        cpus += up ? (int)geti(n, "cpus") : 0;
        const dray_value *sm = dray_map_get(n, "store");
        char mem[64];
        snprintf(mem, sizeof mem, "%.1f/%.1f/%.0f", geti(sm, "bytes_mem") / 1e6,
                 geti(sm, "bytes_disk") / 1e6, geti(sm, "limit") / 1e6);
        printf("%-4lld %-22s %-7lld %-5lld %-6s %-10lld %-8lld %-8lld %-8lld %-24s %lld\n",
               (long long)geti(n, "id"), a ? dray_string_cstr(a) : "?", (long long)geti(n, "pid"),
               (long long)geti(n, "cpus"), !up ? "no" : geti(n, "paused") == 1 ? "paused" : "yes",
               (long long)geti(n, "tasks_done"),
               (long long)geti(n, "tasks_running"), (long long)geti(n, "tasks_spilled"),
               (long long)geti(sm, "objects"), mem,
               (long long)geti(n, "last_seen_ms"));
    }
    printf("%d live node(s), %d CPU(s)\n", alive, cpus);
    dray_value_release(&st);
    return 0;
}
DRAY_CLI_COMMAND(cmd_status, "status", "list the cluster's nodes, resources and tasks", run_status)
