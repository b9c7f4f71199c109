/* `dray submit -- ./program args`: runs a driver program against a cluster, with worker nodes started
 * from the same executable (so they have its task functions); stops those workers afterwards. */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "dray/cluster.h"

extern char **environ;

static int live_nodes(const char *address)
{
    dray_value st;
    if (dray_cluster_status(address, &st))
        return -1;
    const dray_value *nodes = dray_map_get(&st, "nodes");
    int n = 0;
    for (size_t i = 0; nodes && i < dray_list_len(nodes); i++) {
        const dray_value *a = dray_map_get(dray_list_get(nodes, i), "alive");
        n += a && a->type == DRAY_T_BOOL && a->u.b;
    }
    dray_value_release(&st);
    return n;
}

static int run_submit(int argc, char **argv)
{
    const char *address = getenv("DRAY_ADDRESS");
    int workers = 2, cpus = 1, i = 1;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--address") && i + 1 < argc)
            address = argv[++i];
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--num-cpus") && i + 1 < argc)
            cpus = atoi(argv[++i]);
        else
            break;
    }
    if (i >= argc - 1 || strcmp(argv[i], "--") || workers < 0 || cpus < 0) {
        fprintf(stderr, "usage: dray submit [--address HOST:PORT] [--workers N] [--num-cpus C] "
                        "-- PROGRAM [ARGS...]\n");
        return 2;
    }
    char **prog = argv + i + 1;
    if (!address || !*address)
        address = "127.0.0.1:6379";
    int before = live_nodes(address);
    if (before < 0) {
        fprintf(stderr, "dray submit: cannot reach the cluster at %s: %s\n", address,
                dray_last_error());
        return 1;
    }
    const char *colon = strrchr(address, ':');
    char dir[4096], val[64];
    dray_cluster_dir(colon ? atoi(colon + 1) : 0, dir, sizeof dir);
    pid_t *pids = calloc((size_t)workers + 1, sizeof(pid_t));
    if (!pids)
        return 1;
    setenv("DRAY_WORKER_ADDRESS", address, 1);
    snprintf(val, sizeof val, "%d", cpus);
    setenv("DRAY_WORKER_CPUS", val, 1);
    int started = 0, rc = 1;
    for (; started < workers; started++) {
        if (posix_spawnp(&pids[started], prog[0], NULL, NULL, prog, environ)) {
            fprintf(stderr, "dray submit: cannot start %s: %s\n", prog[0], strerror(errno));
            goto out_stop;
        }
        char name[64];
        snprintf(name, sizeof name, "submit-worker-%d", (int)pids[started]);
        dray_cluster_record_pid(dir, name, pids[started]);
    }
    unsetenv("DRAY_WORKER_ADDRESS");
    setenv("DRAY_ADDRESS", address, 1);
    snprintf(val, sizeof val, "%d", before + workers);
    setenv("DRAY_MIN_NODES", val, 1);
    pid_t driver;
    if (posix_spawnp(&driver, prog[0], NULL, NULL, prog, environ)) {
        fprintf(stderr, "dray submit: cannot start %s: %s\n", prog[0], strerror(errno));
        goto out_stop;
    }
    int status;
    while (waitpid(driver, &status, 0) < 0 && errno == EINTR)
        ;
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
out_stop:
    for (int k = 0; k < started; k++)
        kill(pids[k], SIGTERM);
    for (int k = 0; k < started; k++) {
        int s;
        waitpid(pids[k], &s, 0);
        char path[4300];
        snprintf(path, sizeof path, "%s/submit-worker-%d.pid", dir, (int)pids[k]);
        unlink(path);
    }
    free(pids);
    return rc;
}
DRAY_CLI_COMMAND(cmd_submit, "submit", "run a program on the cluster with workers from it",
                 run_submit)
