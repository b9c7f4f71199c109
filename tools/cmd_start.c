/* `dray start --head` / `dray start --address HOST:PORT`: starts a head or a worker node as a daemon
 * that logs to and records its PID in the cluster directory. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "dray/cluster.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: dray start --head [--port P] [--num-cpus N] [--memory M] [--bind ADDR] [--foreground]\n"
            "       dray start --address HOST:PORT [--num-cpus N] [--memory M] [--bind ADDR]\n"
            "                  [--resources NAME=AMOUNT,...] [--module LIB.so]... [--foreground]\n"
            "--memory M (bytes, or 800M, 4G): the node's memory limit; objects spill to disk\n"
            "above 0.7 of it, the node pauses above 0.8 and exits above 0.95 of it (process memory;\n"
            "DRAY_MEMORY_TARGET/SPILL/PAUSE/TERMINATE: 0.6/0.7/0.8/0.95, 'false' disables one);\n"
            "--head starts the head (and, with --num-cpus N > 0, a worker node on it too);\n"
            "--address starts a worker node. State and logs: $DRAY_CLUSTER_DIR or\n"
            "/tmp/dray-<uid>/cluster-<port>.\n");
    return 2;
}

/* Detaches into a daemon logging to dir/<name>.log. Returns in the daemon (0) or, in the original
 * process, the daemon's PID (>0) or -1. */
static int daemonize(const char *dir, const char *name)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        int status;
        waitpid(pid, &status, 0); /* the intermediate child exits at once */
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 1 : -1;
    }
    setsid();
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    char path[4300];
    snprintf(path, sizeof path, "%s/%s.log", dir, name);
    int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int nul = open("/dev/null", O_RDONLY);
    if (log >= 0) {
        dup2(log, 1);
        dup2(log, 2);
        close(log);
    }
    if (nul >= 0) {
        dup2(nul, 0);
        close(nul);
    }
    return 0;
}

/* Reads the head's port from the ready pipe (the daemon writes it once it listens). */
static int wait_ready(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char buf[32] = {0};
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    return n > 0 ? atoi(buf) : -1;
}

static int start_worker(const char *address, const dray_cluster_opts *o, const char *dir,
                        bool foreground)
{
    if (!foreground) {
        char name[64];
        snprintf(name, sizeof name, "worker-%d", (int)getpid());
        int r = daemonize(dir, name);
        if (r < 0) {
            fprintf(stderr, "dray start: cannot start a daemon: %s\n", strerror(errno));
            return 1;
        }
        if (r > 0) {
            printf("worker node started (joining %s); log: %s/%s.log\n", address, dir, name);
            return 0;
        }
        dray_cluster_record_pid(dir, name, getpid());
    }
    dray_status st = dray_cluster_worker_run(address, o);
    if (st)
        fprintf(stderr, "dray start: worker: %s\n", dray_last_error());
    return st ? 1 : 0;
}

static int run_start(int argc, char **argv)
{
    bool head = false, foreground = false;
    const char *address = NULL;
    dray_cluster_opts o = {0};
    o.port = 6379;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--head"))
            head = true;
        else if (!strcmp(a, "--foreground"))
            foreground = true;
        else if (!strcmp(a, "--address") && v)
            address = argv[++i];
        else if (!strcmp(a, "--port") && v)
            o.port = atoi(argv[++i]);
        else if (!strcmp(a, "--num-cpus") && v)
            o.num_cpus = atoi(argv[++i]);
        else if (!strcmp(a, "--bind") && v)
            o.bind = argv[++i];
        else if (!strcmp(a, "--resources") && v)
            o.resources = argv[++i];
        else if (!strcmp(a, "--memory") && v) {
            /* bytes, or with a K/M/G suffix */
            char *end;
            double m = strtod(argv[++i], &end);
            double mul = *end == 'K' || *end == 'k' ? 1e3 : *end == 'M' || *end == 'm' ? 1e6
                         : *end == 'G' || *end == 'g' ? 1e9 : 1;
            if (m <= 0 || (*end && end[1] && strcmp(end + 1, "B") && strcmp(end + 1, "b")) ||
                (*end && mul == 1)) {
                fprintf(stderr, "dray start: --memory '%s': expected bytes or a K/M/G size\n",
                        argv[i]);
                return 2;
            }
            o.memory = (size_t)(m * mul);
        }
        else if (!strcmp(a, "--module") && v) {
            if (!dlopen(argv[++i], RTLD_NOW | RTLD_GLOBAL)) {
                fprintf(stderr, "dray start: cannot load module %s: %s\n", argv[i], dlerror());
                return 1;
            }
        } else
            return usage();
    }
    if (head == (address != NULL) || o.port < 1 || o.port > 65535 || o.num_cpus < 0)
        return usage();
    char dir[4096];
    if (address) {
        const char *colon = strrchr(address, ':');
        dray_cluster_dir(colon ? atoi(colon + 1) : 0, dir, sizeof dir);
        return start_worker(address, &o, dir, foreground);
    }
    dray_cluster_dir(o.port, dir, sizeof dir);
    if (dray_cluster_secret_init(dir)) { /* DRAY_SECRET, else a new one */
        fprintf(stderr, "dray start: %s\n", dray_last_error());
        return 1;
    }
    int pipefd[2];
    if (pipe(pipefd)) {
        perror("dray start: pipe");
        return 1;
    }
    int r = foreground ? 0 : daemonize(dir, "head");
    if (r < 0) {
        fprintf(stderr, "dray start: cannot start a daemon: %s\n", strerror(errno));
        return 1;
    }
    if (r == 0) {
        close(pipefd[0]);
        if (!foreground)
            dray_cluster_record_pid(dir, "head", getpid());
        dray_status st = dray_cluster_head_run(&o, dir, foreground ? -1 : pipefd[1]);
        if (st)
            fprintf(stderr, "dray start: head: %s\n", dray_last_error());
        return st ? 1 : 0;
    }
    close(pipefd[1]);
    int port = wait_ready(pipefd[0], 10000);
    close(pipefd[0]);
    if (port <= 0) {
        fprintf(stderr, "dray start: the head did not start; see %s/head.log\n", dir);
        return 1;
    }
    const char *host = o.bind && strcmp(o.bind, "0.0.0.0") ? o.bind : "127.0.0.1";
    char addr[300];
    snprintf(addr, sizeof addr, "%s:%d", host, port);
    printf("dray head started at %s (state and logs in %s)\n", addr, dir);
    char upath[4200], url[300] = "";
    snprintf(upath, sizeof upath, "%s/dashboard.url", dir);
    FILE *uf = fopen(upath, "r");
    if (uf) {
        if (fgets(url, sizeof url, uf))
            printf("dashboard: %s", url);
        fclose(uf);
    }
    if (o.num_cpus > 0) {
        dray_cluster_opts w = o;
        w.port = 0;
        if (start_worker(addr, &w, dir, false))
            return 1;
    }
    printf("\nTo join more worker nodes:  dray start --address %s\n"
           "To connect a program:       DRAY_ADDRESS=%s ./program   (or dray_config.address)\n"
           "To run a program with its own workers: dray submit --address %s -- ./program\n"
           "Other hosts need the secret in %s/secret (DRAY_SECRET or DRAY_CLUSTER_DIR).\n",
           addr, addr, addr, dir);
    return 0;
}
DRAY_CLI_COMMAND(cmd_start, "start", "start a cluster head or worker node", run_start)
