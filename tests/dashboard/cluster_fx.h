/* A cluster for the dashboard's tests: a head (`dray start --head`, its dashboard on any port) and
 * worker processes started from the test executable (which must have a `worker_main` test), on
 * 127.0.0.1; the minimal part of tests/cluster's fixture. Everything is stopped on a failure too. */
#ifndef DRAY_TESTS_DASHBOARD_CLUSTER_FX_H
#define DRAY_TESTS_DASHBOARD_CLUSTER_FX_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dray/dray.h"
#include "test.h"

typedef struct fx {
    char dir[64], dray[4096], addr[64];
    int port, dport;
    pid_t workers[4];
    int nworkers;
} fx;

static fx *live_fx;

/* Stops the nodes and the head and removes the directory. Returns whether the head's log is free of
 * sanitizer reports (ASan/UBSan builds: the head is a `dray` of the same build). */
static bool stop_all(fx *f)
{
    for (int i = 0; i < f->nworkers; i++)
        if (f->workers[i] > 0) {
            kill(f->workers[i], SIGTERM);
            waitpid(f->workers[i], NULL, 0);
            f->workers[i] = 0;
        }
    dray_cluster_stop_recorded(f->dir, 5000, NULL);
    char path[200], line[1024];
    bool clean = true;
    snprintf(path, sizeof path, "%s/head.log", f->dir);
    FILE *log = fopen(path, "r");
    while (log && fgets(line, sizeof line, log))
        if (strstr(line, "Sanitizer") || strstr(line, "runtime error")) {
            fprintf(stderr, "head.log: %s", line);
            clean = false;
        }
    if (log)
        fclose(log);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd))
        fprintf(stderr, "could not remove %s\n", f->dir);
    return clean;
}

static void on_abort(int sig)
{
    fx *f = live_fx;
    live_fx = NULL;
    if (f)
        stop_all(f);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t spawn_worker(const char *addr, const char *resources, const char *cpus)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ASSERT_GT(n, 0);
    exe[n] = 0;
    char *argv[] = {exe, "worker_main", NULL};
    setenv("DRAY_WORKER_ADDRESS", addr, 1);
    setenv("DRAY_WORKER_CPUS", cpus, 1);
    setenv("DRAY_WORKER_RESOURCES", resources, 1);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        execv(exe, argv);
        _exit(127);
    }
    unsetenv("DRAY_WORKER_ADDRESS");
    unsetenv("DRAY_WORKER_CPUS");
    unsetenv("DRAY_WORKER_RESOURCES");
    ASSERT_GT(pid, 0);
    return pid;
}

/* Starts a head and two nodes offering resources left=1 and right=1 (2 CPUs each); right_memory
 * (bytes, as text) is the right node's object-store limit, NULL for the machine's memory. */
static void fx_start(fx *f, const char *right_memory)
{
    memset(f, 0, sizeof(*f));
    live_fx = f;
    signal(SIGABRT, on_abort);
    snprintf(f->dir, sizeof f->dir, "/tmp/dray-dashcl-XXXXXX");
    ASSERT_TRUE(mkdtemp(f->dir) != NULL);
    setenv("DRAY_CLUSTER_DIR", f->dir, 1);
    setenv("DRAY_DASHBOARD_PORT", "0", 1);
    const char *bd = getenv("DRAY_BUILD_DIR");
    snprintf(f->dray, sizeof f->dray, "%s/bin/dray", bd ? bd : "build");
    f->port = free_port();
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "%s start --head --port %d > %s/start.out", f->dray, f->port, f->dir);
    ASSERT_EQ(system(cmd), 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", f->port);
    char path[200], line[400];
    snprintf(path, sizeof path, "%s/dashboard.url", f->dir);
    FILE *u = fopen(path, "r");
    ASSERT_TRUE(u != NULL);
    ASSERT_TRUE(fgets(line, sizeof line, u) != NULL);
    fclose(u);
    ASSERT_EQ(sscanf(line, "http://127.0.0.1:%d/", &f->dport), 1);
    f->workers[f->nworkers++] = spawn_worker(f->addr, "left=1", "2");
    if (right_memory)
        setenv("DRAY_WORKER_MEMORY", right_memory, 1);
    f->workers[f->nworkers++] = spawn_worker(f->addr, "right=1", "2");
    unsetenv("DRAY_WORKER_MEMORY");
    setenv("DRAY_MIN_NODES", "2", 1);
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The head's node id of process pid (from its status answer), and its tasks_done in *done. */
static int fx_node_of(const fx *f, pid_t pid, int64_t *done)
{
    dray_value st;
    ASSERT_OK(dray_cluster_status(f->addr, &st));
    const dray_value *nodes = dray_map_get(&st, "nodes");
    int id = -1;
    for (size_t i = 0; i < dray_list_len(nodes); i++) {
        const dray_value *n = dray_list_get(nodes, i);
        if (dray_map_get(n, "pid")->u.i == pid) {
            id = (int)dray_map_get(n, "id")->u.i;
            if (done)
                *done = dray_map_get(n, "tasks_done")->u.i;
        }
    }
    dray_value_release(&st);
    ASSERT_NE(id, -1);
    return id;
}

#endif /* DRAY_TESTS_DASHBOARD_CLUSTER_FX_H */
