/* A cluster on loopback for multi-process tests: `dray start --head` on a free port plus worker node
 * processes that re-run this test binary's `worker_main` test with DRAY_WORKER_ADDRESS set (so they
 * know the test's functions), each logging to <dir>/worker-<index>.log. Stopping checks that every
 * worker exited through its normal shutdown (status 0, so LeakSanitizer ran) and that no process
 * logged a sanitizer report. An assertion that aborts the test still stops what the test started.
 * Include after test.h; the test file must define TEST(worker_main). */
#ifndef DRAY_TEST_CLUSTER_FIXTURE_H
#define DRAY_TEST_CLUSTER_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dray/cluster.h"
#include "dray/core.h"

extern char **environ;

typedef struct test_cluster {
    char dir[64];     /* the cluster directory ($DRAY_CLUSTER_DIR while it runs), removed at stop */
    char dray[4096];  /* the dray CLI: $DRAY_BUILD_DIR/bin/dray */
    char addr[64];    /* the head, "127.0.0.1:PORT" */
    int port;
    int worker_cpus;  /* executor threads of each worker spawned */
    pid_t head;       /* the head's PID (from its PID file) */
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

/* "<dir>/<name><index>.log" (index < 0: "<dir>/<name>.log") into out, without stdio (the abort
 * handler uses it). */
static inline void test_cluster_log_path(const test_cluster *f, const char *name, int index,
                                         char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = f->dir; *p && n + 1 < size; p++)
        out[n++] = *p;
    if (n + 1 < size)
        out[n++] = '/';
    for (const char *p = name; *p && n + 1 < size; p++)
        out[n++] = *p;
    if (index >= 0) {
        char d[12];
        int k = 0;
        do
            d[k++] = (char)('0' + index % 10);
        while ((index /= 10) && k < 11);
        while (k && n + 1 < size)
            out[n++] = d[--k];
    }
    for (const char *p = ".log"; *p && n + 1 < size; p++)
        out[n++] = *p;
    out[n] = 0;
}

/* Starts one more worker node joining f's head, with the environment strings `env` ("NAME=VALUE",
 * NULL-terminated; may be NULL) added; its output goes to <dir>/worker-<index>.log. Returns its PID
 * (also recorded in f). */
static inline pid_t test_cluster_add_worker_env(test_cluster *f, const char *const *env)
{
    ASSERT_LT(f->nworkers, (int)(sizeof f->workers / sizeof f->workers[0]));
    char exe[4096], cpus[32], addr[96], log[128];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ASSERT_GT(n, 0);
    exe[n] = 0;
    char *argv[] = {exe, "worker_main", NULL};
    snprintf(cpus, sizeof cpus, "DRAY_WORKER_CPUS=%d", f->worker_cpus > 0 ? f->worker_cpus : 1);
    snprintf(addr, sizeof addr, "DRAY_WORKER_ADDRESS=%s", f->addr);
    test_cluster_log_path(f, "worker-", f->nworkers, log, sizeof log);
    /* The child's environment, made here: between fork and exec only async-signal-safe calls. */
    size_t ne = 0, nx = 0;
    while (environ[ne])
        ne++;
    while (env && env[nx])
        nx++;
    const char **envp = malloc((ne + nx + 3) * sizeof(char *));
    ASSERT_TRUE(envp != NULL);
    size_t k = 0;
    envp[k++] = addr;
    envp[k++] = cpus;
    for (size_t i = 0; i < nx; i++)
        envp[k++] = env[i];
    for (size_t i = 0; i < ne; i++) {
        bool replaced = false;
        for (size_t j = 0; j < k && !replaced; j++) {
            size_t len = strcspn(envp[j], "=");
            replaced = !strncmp(environ[i], envp[j], len) && environ[i][len] == '=';
        }
        if (!replaced)
            envp[k++] = environ[i];
    }
    envp[k] = NULL;
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a worker never outlives its test */
        if (getppid() != parent)
            _exit(1);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execve(exe, argv, (char *const *)envp);
        _exit(127);
    }
    free(envp);
    ASSERT_GT(pid, 0);
    f->workers[f->nworkers++] = pid;
    return pid;
}

/* Starts one more worker node joining f's head; returns its PID (also recorded in f). */
static inline pid_t test_cluster_add_worker(test_cluster *f)
{
    return test_cluster_add_worker_env(f, NULL);
}

/* Copies file `path` to stderr under a title line. Async-signal-safe. */
static inline void test_cluster_dump_(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[4096];
    ssize_t n;
    if (write(2, "==== ", 5) < 0 || write(2, path, strlen(path)) < 0 || write(2, "\n", 1) < 0) {
        close(fd);
        return;
    }
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (write(2, buf, (size_t)n) < 0)
            break;
    close(fd);
}

/* On an aborting assertion: kills the workers and the head, shows their logs and removes the
 * cluster directory, with async-signal-safe calls only, then aborts as asked. */
static inline void test_cluster_on_abort(int sig)
{
    test_cluster *f = test_cluster_live;
    test_cluster_live = NULL;
    if (f) {
        char path[128];
        for (int i = 0; i < f->nworkers; i++)
            if (f->workers[i] > 0)
                kill(f->workers[i], SIGKILL);
        if (f->head > 0)
            kill(f->head, SIGKILL);
        for (int i = 0; i < f->nworkers; i++) {
            test_cluster_log_path(f, "worker-", i, path, sizeof path);
            test_cluster_dump_(path);
        }
        test_cluster_log_path(f, "head", -1, path, sizeof path);
        test_cluster_dump_(path);
        char *const argv[] = {"rm", "-rf", f->dir, NULL}, *const envp[] = {NULL};
        pid_t rm = fork();
        if (rm == 0) {
            execve("/bin/rm", argv, envp);
            _exit(127);
        }
        if (rm > 0)
            while (waitpid(rm, NULL, 0) < 0 && errno == EINTR) {
            }
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
    snprintf(f->dir, sizeof f->dir, "/tmp/dray-cltest-XXXXXX");
    ASSERT_TRUE(mkdtemp(f->dir) != NULL);
    test_cluster_live = f;
    signal(SIGABRT, test_cluster_on_abort);
    setenv("DRAY_CLUSTER_DIR", f->dir, 1);
    const char *bd = getenv("DRAY_BUILD_DIR");
    snprintf(f->dray, sizeof f->dray, "%s/bin/dray", bd ? bd : "build");
    f->port = test_free_port();
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "%s start --head --port %d > %s/start.out", f->dray, f->port, f->dir);
    ASSERT_EQ(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/head.pid", f->dir);
    FILE *pf = fopen(cmd, "r");
    ASSERT_TRUE(pf != NULL);
    int head = 0;
    ASSERT_EQ(fscanf(pf, "%d", &head), 1);
    fclose(pf);
    f->head = head;
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

/* Whether the log at path is free of sanitizer reports (the offending lines go to stderr). */
static inline bool test_cluster_log_clean(const char *path)
{
    FILE *log = fopen(path, "r");
    if (!log)
        return true;
    char line[1024];
    bool clean = true;
    while (fgets(line, sizeof line, log))
        if (strstr(line, "Sanitizer") || strstr(line, "runtime error")) {
            fprintf(stderr, "%s: %s", path, line);
            clean = false;
        }
    fclose(log);
    return clean;
}

/* Stops worker i through its normal shutdown (SIGTERM, which its loop takes; SIGKILL only after
 * 30 s) and reaps it: it must exit with status 0 (sanitizers' exit checks, LeakSanitizer's
 * included, ran and passed) and leave no sanitizer report in its log. */
static inline void test_cluster_stop_worker(test_cluster *f, int i)
{
    pid_t pid = f->workers[i];
    if (pid <= 0)
        return;
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    int st = 0;
    pid_t got = 0;
    for (int t = 0; t < 3000 && (got = waitpid(pid, &st, WNOHANG)) == 0; t++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    f->workers[i] = -1;
    char path[128];
    test_cluster_log_path(f, "worker-", i, path, sizeof path);
    bool exited = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!exited) {
        fprintf(stderr, "worker %d (pid %d) did not exit cleanly: %s %d\n", i, (int)pid,
                WIFEXITED(st) ? "exit status" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? WTERMSIG(st) : -1);
        test_cluster_dump_(path);
    }
    ASSERT_TRUE(exited);
    ASSERT_TRUE(test_cluster_log_clean(path));
}

/* Stops the workers (test_cluster_stop_worker; the logs of those the test reaped itself are
 * checked too), then the head (checked: exactly one recorded process, and a log free of sanitizer
 * reports), and removes the cluster directory. */
static inline void test_cluster_stop(test_cluster *f)
{
    for (int i = 0; i < f->nworkers; i++) {
        char path[128];
        test_cluster_log_path(f, "worker-", i, path, sizeof path);
        if (f->workers[i] > 0)
            test_cluster_stop_worker(f, i);
        else
            ASSERT_TRUE(test_cluster_log_clean(path));
    }
    int stopped = 0;
    ASSERT_OK(dray_cluster_stop_recorded(f->dir, 5000, &stopped));
    ASSERT_EQ(stopped, 1); /* the head */
    f->head = 0;
    char path[128];
    test_cluster_log_path(f, "head", -1, path, sizeof path);
    ASSERT_TRUE(test_cluster_log_clean(path));
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
