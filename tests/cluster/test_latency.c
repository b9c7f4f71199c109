/* The latency path of the cluster client: a thread waiting for the task it just sent reads the
 * node's connection itself (dray__cluster_wait). Many threads waiting at once on two nodes get the
 * right results (each one's messages may be read by another), and a node that is killed or
 * declared dead while a caller reads its socket gives that caller an error, not a hang. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dray/cluster.h"
#include "dray/core.h"
#include "test.h"

DRAY_FUNCTION(lt_inc)
{
    *result = dray_int(args[0].u.i + 1);
    return DRAY_OK;
}

/* args[0] + 1 after args[1] microseconds. */
DRAY_FUNCTION(lt_slow_inc)
{
    struct timespec ts = {args[1].u.i / 1000000, (args[1].u.i % 1000000) * 1000};
    nanosleep(&ts, NULL);
    *result = dray_int(args[0].u.i + 1);
    return DRAY_OK;
}

/* ==== Fixture: a head (dray start --head) and worker processes of this executable ==== */

typedef struct fx {
    char dir[64];
    char dray[4096];
    char addr[64];
    pid_t workers[2];
    int nworkers;
} fx;

static fx *live_fx;

static void on_abort(int sig)
{
    fx *f = live_fx;
    live_fx = NULL;
    if (f) {
        for (int i = 0; i < f->nworkers; i++)
            if (f->workers[i] > 0)
                kill(f->workers[i], SIGKILL);
        dray_cluster_stop_recorded(f->dir, 2000, NULL);
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        if (system(cmd))
            fprintf(stderr, "could not remove %s\n", f->dir);
    }
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

static pid_t spawn_worker(const char *addr)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ASSERT_GT(n, 0);
    exe[n] = 0;
    char *argv[] = {exe, "worker_main", NULL};
    setenv("DRAY_WORKER_ADDRESS", addr, 1);
    setenv("DRAY_WORKER_CPUS", "1", 1);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test */
        if (getppid() != parent)
            _exit(1);
        execv(exe, argv);
        _exit(127);
    }
    unsetenv("DRAY_WORKER_ADDRESS");
    unsetenv("DRAY_WORKER_CPUS");
    ASSERT_GT(pid, 0);
    return pid;
}

static void fx_start(fx *f, int nworkers)
{
    memset(f, 0, sizeof(*f));
    live_fx = f;
    signal(SIGABRT, on_abort);
    snprintf(f->dir, sizeof f->dir, "/tmp/dray-lattest-XXXXXX");
    ASSERT_TRUE(mkdtemp(f->dir) != NULL);
    setenv("DRAY_CLUSTER_DIR", f->dir, 1);
    const char *bd = getenv("DRAY_BUILD_DIR");
    snprintf(f->dray, sizeof f->dray, "%s/bin/dray", bd ? bd : "build");
    int port = free_port();
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "%s start --head --port %d > %s/start.out", f->dray, port, f->dir);
    ASSERT_EQ(system(cmd), 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", port);
    for (int i = 0; i < nworkers; i++)
        f->workers[f->nworkers++] = spawn_worker(f->addr);
    char n[16];
    snprintf(n, sizeof n, "%d", nworkers);
    setenv("DRAY_MIN_NODES", n, 1);
}

static void fx_stop(fx *f)
{
    for (int i = 0; i < f->nworkers; i++)
        if (f->workers[i] > 0) {
            kill(f->workers[i], SIGKILL);
            int st;
            waitpid(f->workers[i], &st, 0);
        }
    int stopped = 0;
    ASSERT_OK(dray_cluster_stop_recorded(f->dir, 5000, &stopped));
    ASSERT_EQ(stopped, 1); /* the head */
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    ASSERT_EQ(system(cmd), 0);
    unsetenv("DRAY_CLUSTER_DIR");
    unsetenv("DRAY_MIN_NODES");
    live_fx = NULL;
}

static dray_runtime *connect_driver(fx *f)
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

static int64_t client_stat(dray_runtime *rt, const char *key)
{
    dray_value m;
    ASSERT_OK(dray_cluster_client_stats(rt, &m));
    const dray_value *v = dray_map_get(&m, key);
    ASSERT_TRUE(v != NULL);
    int64_t x = v->u.i;
    dray_value_release(&m);
    return x;
}

/* ==== Tests ==== */

/* In a worker process (DRAY_WORKER_ADDRESS set), dray_init serves as a worker node and never
 * returns. */
TEST(worker_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

typedef struct caller {
    dray_runtime *rt;
    int id;
    int bad; /* wrong results seen */
} caller;

enum { CALLERS = 6, ROUNDS = 150 };

/* Submit one task, wait for it, check it; every third task sleeps 1 ms on its node, so results
 * for other threads arrive while this one reads (and the other way round). */
static void *one_at_a_time(void *arg)
{
    caller *c = arg;
    for (int i = 0; i < ROUNDS; i++) {
        int64_t x = (int64_t)c->id * 100000 + i;
        dray_value a[2] = {dray_int(x), dray_int(1000)};
        dray_ref *r;
        if (dray_submit(c->rt, i % 3 ? "lt_inc" : "lt_slow_inc", a, i % 3 ? 1 : 2, NULL, &r)) {
            c->bad++;
            continue;
        }
        dray_value v;
        if (dray_get(c->rt, r, 20000, &v) || v.type != DRAY_T_INT || v.u.i != x + 1)
            c->bad++;
        dray_ref_release(r);
    }
    return NULL;
}

/* Batches of 20, waited for together (the loop thread delivers these, unless a caller that
 * borrowed the connection does). */
static void *batches(void *arg)
{
    caller *c = arg;
    for (int b = 0; b < ROUNDS / 10; b++) {
        dray_ref *r[20];
        for (int k = 0; k < 20; k++) {
            dray_value a = dray_int(-(b * 20 + k));
            if (dray_submit(c->rt, "lt_inc", &a, 1, NULL, &r[k]))
                r[k] = NULL, c->bad++;
        }
        for (int k = 0; k < 20; k++) {
            if (!r[k])
                continue;
            dray_value v;
            if (dray_get(c->rt, r[k], 20000, &v) || v.u.i != -(b * 20 + k) + 1)
                c->bad++;
            dray_ref_release(r[k]);
        }
    }
    return NULL;
}

TEST(many_waiting_callers_on_two_nodes)
{
    fx f;
    fx_start(&f, 2);
    dray_runtime *rt = connect_driver(&f);
    pthread_t th[CALLERS + 1];
    caller cs[CALLERS + 1];
    for (int i = 0; i <= CALLERS; i++) {
        cs[i] = (caller){rt, i + 1, 0};
        ASSERT_EQ(pthread_create(&th[i], NULL, i < CALLERS ? one_at_a_time : batches, &cs[i]), 0);
    }
    for (int i = 0; i <= CALLERS; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ(cs[i].bad, 0);
    }
    /* The callers did read their own results (not only the loop thread). */
    int64_t waits = client_stat(rt, "polled_waits"), hits = client_stat(rt, "polled_hits");
    ASSERT_GT(waits, 0);
    ASSERT_GT(hits, 0);
    ASSERT_LE(hits, waits);
    /* A single caller afterwards: the same path, results still right. */
    for (int i = 0; i < 200; i++) {
        dray_value a = dray_int(i), v;
        dray_ref *r;
        ASSERT_OK(dray_submit(rt, "lt_inc", &a, 1, NULL, &r));
        ASSERT_OK(dray_get(rt, r, 20000, &v));
        ASSERT_EQ(v.u.i, i + 1);
        dray_ref_release(r);
    }
    ASSERT_GT(client_stat(rt, "polled_waits"), waits);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    fx_stop(&f);
}

typedef struct killer {
    pid_t pid;
    int sig;
} killer;

static void *kill_later(void *arg)
{
    killer *k = arg;
    struct timespec ts = {0, 150 * 1000000};
    nanosleep(&ts, NULL);
    kill(k->pid, k->sig);
    return NULL;
}

/* The caller reads the node's socket (a read window far longer than the get's timeout) when the
 * node is killed -9: the caller sees the connection end itself and gets the node-lost error. */
TEST(node_killed_while_a_caller_reads_its_socket)
{
    fx f;
    fx_start(&f, 1);
    setenv("DRAY_MAX_RETRIES", "0", 1);
    setenv("DRAY_CLUSTER_POLL_US", "60000000", 1);
    dray_runtime *rt = connect_driver(&f);
    dray_value a[2] = {dray_int(1), dray_int(5000000)}; /* 5 s on the node */
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, "lt_slow_inc", a, 2, NULL, &r));
    killer k = {f.workers[0], SIGKILL};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, kill_later, &k), 0);
    /* Without the caller noticing, this would sit in its read window and time out. */
    ASSERT_STATUS(dray_get(rt, r, 3000, NULL), DRAY_ENET);
    ASSERT_CONTAINS(dray_last_error(), "was lost");
    pthread_join(th, NULL);
    int st;
    waitpid(f.workers[0], &st, 0);
    f.workers[0] = -1;
    ASSERT_GE(client_stat(rt, "polled_waits"), 1);
    ASSERT_GE(client_stat(rt, "polled_lost"), 1); /* the reading caller saw the end itself */
    dray_ref_release(r);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    unsetenv("DRAY_MAX_RETRIES");
    unsetenv("DRAY_CLUSTER_POLL_US");
    fx_stop(&f);
}

/* A hung node (SIGSTOP: its socket stays open) is declared dead by the head; the driver's loop
 * closes the connection a caller is reading, and that caller wakes with the error. */
TEST(hung_node_declared_dead_while_a_caller_reads_it)
{
    setenv("DRAY_HEARTBEAT_TIMEOUT_MS", "1000", 1); /* read by the head started below */
    fx f;
    fx_start(&f, 1);
    setenv("DRAY_MAX_RETRIES", "0", 1);
    setenv("DRAY_CLUSTER_POLL_US", "60000000", 1);
    dray_runtime *rt = connect_driver(&f);
    dray_value a[2] = {dray_int(1), dray_int(5000000)};
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, "lt_slow_inc", a, 2, NULL, &r));
    killer k = {f.workers[0], SIGSTOP};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, kill_later, &k), 0);
    ASSERT_STATUS(dray_get(rt, r, 4500, NULL), DRAY_ENET);
    pthread_join(th, NULL);
    ASSERT_GE(client_stat(rt, "polled_waits"), 1);
    /* It was woken by the close (else its read window would run to the get's deadline). */
    ASSERT_GE(client_stat(rt, "polled_lost"), 1);
    dray_ref_release(r);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    unsetenv("DRAY_MAX_RETRIES");
    unsetenv("DRAY_CLUSTER_POLL_US");
    unsetenv("DRAY_HEARTBEAT_TIMEOUT_MS");
    kill(f.workers[0], SIGCONT);
    fx_stop(&f);
}

/* A read window of 0 turns the path off: results still come, through the loop thread. */
TEST(read_window_zero_uses_the_loop)
{
    fx f;
    fx_start(&f, 2);
    setenv("DRAY_CLUSTER_POLL_US", "0", 1);
    dray_runtime *rt = connect_driver(&f);
    for (int i = 0; i < 100; i++) {
        dray_value a = dray_int(i), v;
        dray_ref *r;
        ASSERT_OK(dray_submit(rt, "lt_inc", &a, 1, NULL, &r));
        ASSERT_OK(dray_get(rt, r, 20000, &v));
        ASSERT_EQ(v.u.i, i + 1);
        dray_ref_release(r);
    }
    ASSERT_EQ(client_stat(rt, "polled_waits"), 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    unsetenv("DRAY_CLUSTER_POLL_US");
    fx_stop(&f);
}

RUN_TESTS(T_(worker_main), T_(many_waiting_callers_on_two_nodes),
          T_(node_killed_while_a_caller_reads_its_socket),
          T_(hung_node_declared_dead_while_a_caller_reads_it), T_(read_window_zero_uses_the_loop))
