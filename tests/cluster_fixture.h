/* A cluster on loopback for multi-process tests: `dray start --head` on a free port plus worker node
 * processes that re-run this test binary's `worker_main` test with DRAY_WORKER_ADDRESS set (so they
 * know the test's functions). Everything started is stopped at test_cluster_stop, and also when an
 * assertion aborts the test. Include after test.h; the test file must define TEST(worker_main). */
#ifndef DRAY_TEST_CLUSTER_FIXTURE_H
#define DRAY_TEST_CLUSTER_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dray/cluster.h"
#include "dray/core.h"

typedef struct test_cluster {
    char dir[64];     /* the cluster directory ($DRAY_CLUSTER_DIR while it runs), removed at stop */
    char dray[4096];  /* the dray CLI: $DRAY_BUILD_DIR/bin/dray */
    char addr[64];    /* the head, "127.0.0.1:PORT" */
    int port;
    int worker_cpus;  /* executor threads of each worker spawned */
    pid_t workers[8]; /* worker node processes, in start order (-1 once reaped by the test) */
    int nworkers;
} test_cluster;

/* The running cluster, so that an aborting assertion still stops what the test started. */
static test_cluster *test_cluster_live;

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static inline int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts one more worker node joining f's head; returns its PID (also recorded in f). */
static inline pid_t test_cluster_add_worker(test_cluster *f)
{
    ASSERT_LT(f->nworkers, (int)(sizeof f->workers / sizeof f->workers[0]));
    char exe[4096], cpus[16];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ASSERT_GT(n, 0);
    exe[n] = 0;
    char *argv[] = {exe, "worker_main", NULL};
    snprintf(cpus, sizeof cpus, "%d", f->worker_cpus > 0 ? f->worker_cpus : 1);
    setenv("DRAY_WORKER_ADDRESS", f->addr, 1);
    setenv("DRAY_WORKER_CPUS", cpus, 1);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a worker never outlives its test */
        if (getppid() != parent)
            _exit(1);
        execv(exe, argv);
        _exit(127);
    }
    unsetenv("DRAY_WORKER_ADDRESS");
    unsetenv("DRAY_WORKER_CPUS");
    ASSERT_GT(pid, 0);
    f->workers[f->nworkers++] = pid;
    return pid;
}

static inline void test_cluster_on_abort(int sig)
{
    test_cluster *f = test_cluster_live;
    test_cluster_live = NULL;
    if (f) {
        for (int i = 0; i < f->nworkers; i++)
            if (f->workers[i] > 0)
                kill(f->workers[i], SIGKILL);
        dray_cluster_stop_recorded(f->dir, 2000, NULL);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        if (system(cmd))
            fprintf(stderr, "could not remove %s\n", f->dir);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Starts a head and `nworkers` worker nodes of `cpus` executors each (0: 1); drivers started after
 * this wait for that many nodes (DRAY_MIN_NODES). */
static inline void test_cluster_start_cpus(test_cluster *f, int nworkers, int cpus)
{
    memset(f, 0, sizeof(*f));
    f->worker_cpus = cpus;
    test_cluster_live = f;
    signal(SIGABRT, test_cluster_on_abort);
    snprintf(f->dir, sizeof f->dir, "/tmp/dray-cltest-XXXXXX");
    ASSERT_TRUE(mkdtemp(f->dir) != NULL);
    setenv("DRAY_CLUSTER_DIR", f->dir, 1);
    const char *bd = getenv("DRAY_BUILD_DIR");
    snprintf(f->dray, sizeof f->dray, "%s/bin/dray", bd ? bd : "build");
    f->port = test_free_port();
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "%s start --head --port %d > %s/start.out", f->dray, f->port, f->dir);
    ASSERT_EQ(system(cmd), 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", f->port);
    for (int i = 0; i < nworkers; i++)
        test_cluster_add_worker(f);
    char n[16];
    snprintf(n, sizeof n, "%d", nworkers);
    setenv("DRAY_MIN_NODES", n, 1);
}

static inline void test_cluster_start(test_cluster *f, int nworkers)
{
    test_cluster_start_cpus(f, nworkers, 1);
}

/* Stops the workers (SIGTERM, reaped), then the head (checked: exactly one recorded process), and
 * removes the cluster directory. */
static inline void test_cluster_stop(test_cluster *f)
{
    for (int i = 0; i < f->nworkers; i++)
        if (f->workers[i] > 0) {
            kill(f->workers[i], SIGTERM);
            int st;
            waitpid(f->workers[i], &st, 0);
        }
    int stopped = 0;
    ASSERT_OK(dray_cluster_stop_recorded(f->dir, 5000, &stopped));
    ASSERT_EQ(stopped, 1); /* the head */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    ASSERT_EQ(system(cmd), 0);
    unsetenv("DRAY_CLUSTER_DIR");
    unsetenv("DRAY_MIN_NODES");
    test_cluster_live = NULL;
}

/* A driver runtime attached to f's head (one local worker, no progress bar); the caller shuts it
 * down. */
static inline dray_runtime *test_cluster_driver(const test_cluster *f)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 1;
    cfg.progress = 0;
    cfg.address = f->addr;
    dray_runtime *rt = NULL;
    ASSERT_OK(dray_init(&cfg, &rt));
    return rt;
}

#endif /* DRAY_TEST_CLUSTER_FIXTURE_H */
