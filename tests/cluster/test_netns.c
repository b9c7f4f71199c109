/* A cluster across network namespaces: the head (`dray start --head --bind`), two worker processes
 * (this executable, DRAY_BIND) and the driver (this process) each in a namespace of its own, joined by
 * veth pairs on a bridge, all created and deleted by the test. Core graphs, the seed's array example
 * and actors give the local runtime's results; a node joining mid-job gets work; kill -9 of a worker
 * during a 10,000-task graph and during an actor's calls is survived with retries and restarts
 * counted. Skips (exit 0, SKIP printed) when not root, without `ip`, or where namespaces cannot be
 * made. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dray/array.h"
#include "dray/cluster.h"
#include "dray/core.h"
#include "test.h"

DRAY_FUNCTION(ns_square)
{
    *result = dray_int(args[0].u.i * args[0].u.i);
    return DRAY_OK;
}

DRAY_FUNCTION(ns_add)
{
    *result = dray_int(args[0].u.i + args[1].u.i);
    return DRAY_OK;
}

DRAY_FUNCTION(ns_inc)
{
    *result = dray_int(args[0].u.i + 1);
    return DRAY_OK;
}

DRAY_FUNCTION(ns_pid)
{
    *result = dray_int(getpid());
    return DRAY_OK;
}

DRAY_FUNCTION(ns_slow_pid)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    *result = dray_int(getpid());
    return DRAY_OK;
}

DRAY_FUNCTION(ns_boom)
{
    return dray_ctx_fail(ctx, DRAY_ETASK, "ns_boom on %lld", (long long)args[0].u.i);
}

/* i*i after a short sleep (so a run lasts long enough to kill a worker in its middle). */
DRAY_FUNCTION(ns_slow_square)
{
    struct timespec ts = {0, 400000};
    nanosleep(&ts, NULL);
    *result = dray_int(args[0].u.i * args[0].u.i);
    return DRAY_OK;
}

static dray_status ctr_init(dray_ctx *ctx, const dray_value *a, size_t n, void **state)
{
    (void)ctx;
    int64_t *s = malloc(sizeof(int64_t));
    if (!s)
        return DRAY_ENOMEM;
    *s = n ? a[0].u.i : 0;
    *state = s;
    return DRAY_OK;
}
static void ctr_free(void *s)
{
    free(s);
}
static dray_status ctr_add(dray_ctx *ctx, void *s, const dray_value *a, size_t n, dray_value *r)
{
    (void)ctx, (void)n;
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
    *(int64_t *)s += a[0].u.i;
    *r = dray_int(*(int64_t *)s);
    return DRAY_OK;
}
static dray_status ctr_pid(dray_ctx *ctx, void *s, const dray_value *a, size_t n, dray_value *r)
{
    (void)ctx, (void)s, (void)a, (void)n;
    *r = dray_int(getpid());
    return DRAY_OK;
}
DRAY_ACTOR_CLASS(NsCounter, ctr_init, ctr_free, {"add", ctr_add}, {"pid", ctr_pid})

/* ==== Namespaces and processes ==== */

#define HEAD_IP "10.213.0.1"
#define HEAD_ADDR HEAD_IP ":6379"

/* The head's address of the running fixture (HEAD_ADDR, or 127.0.0.1:port on loopback). */
static char head_addr[64];

typedef struct net {
    char ns[4][32]; /* switch (the bridge), head+driver, worker a, worker b */
    bool made[4];
    char dir[64];
    int home_fd; /* this process's own namespace */
    pid_t head;
    pid_t workers[4];
    int nworkers;
    bool loopback; /* no namespaces: every process on 127.0.0.1 */
} net;

static net *live_net; /* so an abort still cleans up */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

static void net_teardown(net *n)
{
    for (int i = 0; i < n->nworkers; i++)
        if (n->workers[i] > 0) {
            kill(n->workers[i], SIGKILL);
            waitpid(n->workers[i], NULL, 0);
            n->workers[i] = 0;
        }
    if (n->head > 0) {
        kill(n->head, SIGTERM);
        int st;
        for (int i = 0; i < 300 && waitpid(n->head, &st, WNOHANG) == 0; i++) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
            if (i == 299) {
                kill(n->head, SIGKILL);
                waitpid(n->head, &st, 0);
            }
        }
        n->head = 0;
    }
    if (n->home_fd >= 0) {
        setns(n->home_fd, CLONE_NEWNET);
        close(n->home_fd);
        n->home_fd = -1;
    }
    for (int i = 0; i < 4; i++)
        if (n->made[i]) {
            sh("ip netns del %s", n->ns[i]);
            n->made[i] = false;
        }
    if (n->dir[0]) {
        sh("rm -rf %s", n->dir);
        n->dir[0] = 0;
    }
    unsetenv("DRAY_CLUSTER_DIR");
    unsetenv("DRAY_MIN_NODES");
    live_net = NULL;
}

static void on_abort(int sig)
{
    if (live_net)
        net_teardown(live_net);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int enter_ns(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/var/run/netns/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = setns(fd, CLONE_NEWNET);
    close(fd);
    return r;
}

/* Starts argv in namespace `ns` with extra environment "K=V" strings; the child dies with us. */
static pid_t spawn_in(const char *ns, char *const argv[], const char *const env[])
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent || (ns && enter_ns(ns)))
            _exit(126);
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], argv);
        _exit(127);
    }
    ASSERT_GT(pid, 0);
    return pid;
}

static void self_exe(char *out, size_t size)
{
    ssize_t len = readlink("/proc/self/exe", out, size - 1);
    ASSERT_GT(len, 0);
    out[len] = 0;
}

static void start_worker(net *n, int which)
{
    static char exe[4096], envs[4][3][96];
    self_exe(exe, sizeof exe);
    int i = n->nworkers;
    ASSERT_LT(i, 4);
    snprintf(envs[i][0], sizeof envs[i][0], "DRAY_WORKER_ADDRESS=%s", head_addr);
    if (n->loopback)
        snprintf(envs[i][1], sizeof envs[i][1], "DRAY_BIND=127.0.0.1");
    else
        snprintf(envs[i][1], sizeof envs[i][1], "DRAY_BIND=10.213.0.%d", which);
    snprintf(envs[i][2], sizeof envs[i][2], "DRAY_WORKER_CPUS=1");
    const char *env[] = {envs[i][0], envs[i][1], envs[i][2], NULL};
    char *argv[] = {exe, "worker_main", NULL};
    n->workers[n->nworkers++] = spawn_in(n->loopback ? NULL : n->ns[which], argv, env);
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

/* Why namespaces cannot be used here, or NULL. */
static const char *no_netns(void)
{
    if (geteuid() != 0)
        return "network-namespace tests need root";
    if (system("command -v ip >/dev/null 2>&1"))
        return "network-namespace tests need `ip` (iproute2)";
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ip netns add drayprobe%d 2>/dev/null && ip netns del drayprobe%d",
             (int)getpid(), (int)getpid());
    if (system(cmd))
        return "cannot create network namespaces here";
    return NULL;
}

/* Makes the namespaces (none on loopback) and the bridge joining them. */
static void net_create(net *n)
{
    live_net = n;
    signal(SIGABRT, on_abort);
    const char *tag[4] = {"s", "h", "a", "b"};
    for (int i = 0; i < 4 && !n->loopback; i++) {
        snprintf(n->ns[i], sizeof n->ns[i], "dray%s%d", tag[i], (int)getpid());
        ASSERT_EQ(sh("ip netns add %s", n->ns[i]), 0);
        n->made[i] = true;
    }
    if (!n->loopback) {
        ASSERT_EQ(sh("ip -n %s link add br0 type bridge && ip -n %s link set br0 up", n->ns[0],
                     n->ns[0]), 0);
        for (int i = 1; i < 4; i++)
            ASSERT_EQ(sh("ip -n %s link add p%d type veth peer name eth0 netns %s && "
                         "ip -n %s link set p%d master br0 up && "
                         "ip -n %s addr add 10.213.0.%d/24 dev eth0 && "
                         "ip -n %s link set eth0 up && ip -n %s link set lo up",
                         n->ns[0], i, n->ns[i], n->ns[0], i, n->ns[i], i, n->ns[i], n->ns[i]), 0);
    }
}

/* Builds switch + head + two worker namespaces, starts the head and `nworkers` workers, and moves
 * this process into the head's namespace (the driver runs beside the head). Without namespaces:
 * false (skip) unless `loopback_ok`, which runs every process on 127.0.0.1 instead. */
static bool net_setup(net *n, int nworkers, bool loopback_ok)
{
    memset(n, 0, sizeof(*n));
    n->home_fd = -1;
    const char *why = no_netns();
    if (why && !loopback_ok) {
        printf("SKIP: %s\n", why);
        return false;
    }
    if (why)
        printf("%s: running on 127.0.0.1 instead\n", why);
    n->loopback = why != NULL;
    net_create(n);
    snprintf(n->dir, sizeof n->dir, "/tmp/dray-nstest-XXXXXX");
    ASSERT_TRUE(mkdtemp(n->dir) != NULL);
    setenv("DRAY_CLUSTER_DIR", n->dir, 1);
    char port[16];
    if (n->loopback) {
        snprintf(port, sizeof port, "%d", free_port());
        snprintf(head_addr, sizeof head_addr, "127.0.0.1:%s", port);
    } else {
        snprintf(port, sizeof port, "6379");
        snprintf(head_addr, sizeof head_addr, "%s", HEAD_ADDR);
        n->home_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        ASSERT_GE(n->home_fd, 0);
        ASSERT_EQ(enter_ns(n->ns[1]), 0);
    }
    /* The head, as an operator would start it on that host. */
    static char dray[4096];
    const char *bd = getenv("DRAY_BUILD_DIR");
    snprintf(dray, sizeof dray, "%s/bin/dray", bd ? bd : "build");
    char *hargv[] = {dray, "start", "--head", "--foreground", "--bind",
                     n->loopback ? "127.0.0.1" : HEAD_IP, "--port", port, NULL};
    n->head = spawn_in(n->loopback ? NULL : n->ns[1], hargv, NULL);
    dray_value s;
    int tries = 0;
    while (dray_cluster_status(head_addr, &s) != DRAY_OK) {
        ASSERT_LT(++tries, 500);
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    dray_value_release(&s);
    for (int i = 0; i < nworkers; i++)
        start_worker(n, 2 + i);
    char k[8];
    snprintf(k, sizeof k, "%d", nworkers);
    setenv("DRAY_MIN_NODES", k, 1);
    return true;
}

static dray_runtime *driver(void)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 1;
    cfg.progress = 0;
    cfg.address = head_addr;
    dray_runtime *rt = NULL;
    ASSERT_OK(dray_init(&cfg, &rt));
    return rt;
}

static dray_runtime *local(void)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 2;
    cfg.progress = 0;
    dray_runtime *rt = NULL;
    ASSERT_OK(dray_init(&cfg, &rt));
    return rt;
}

static int64_t get_int(dray_runtime *rt, dray_ref *r)
{
    dray_value v;
    ASSERT_OK(dray_get(rt, r, 30000, &v));
    ASSERT_EQ(v.type, DRAY_T_INT);
    return v.u.i;
}

/* ==== The graphs, run the same way on any runtime ==== */

/* leaves fn(i), i < n, summed by a binary tree of ns_add: 2n-1 tasks in one lazy graph. */
static dray_ref *tree_sum(dray_runtime *rt, const char *fn, int n, dray_graph **gout)
{
    dray_graph *g;
    ASSERT_OK(dray_graph_create(rt, &g));
    dray_node *level = malloc((size_t)n * sizeof(*level));
    ASSERT_TRUE(level != NULL);
    for (int i = 0; i < n; i++) {
        dray_value a = dray_int(i);
        ASSERT_OK(dray_graph_add_named(g, NULL, fn, &a, 1, &level[i]));
    }
    for (size_t m = (size_t)n; m > 1;) {
        size_t k = 0;
        for (size_t i = 0; i + 1 < m; i += 2) {
            dray_value ab[2] = {dray_value_of_node(level[i]), dray_value_of_node(level[i + 1])};
            ASSERT_OK(dray_graph_add_named(g, NULL, "ns_add", ab, 2, &level[k++]));
        }
        if (m % 2)
            level[k++] = level[m - 1];
        m = k;
    }
    dray_ref *out;
    ASSERT_OK(dray_graph_submit(g, &level[0], 1, &out));
    free(level);
    *gout = g;
    return out;
}

typedef struct graph_results {
    int64_t fan, tree, chain;
    dray_status err, dep;
    char dep_msg[256];
} graph_results;

static void core_graphs(dray_runtime *rt, graph_results *r)
{
    /* Fan-out: 1,000 independent squares. */
    enum { N = 1000 };
    dray_ref *refs[N];
    for (int i = 0; i < N; i++) {
        dray_value a = dray_int(i);
        ASSERT_OK(dray_submit(rt, "ns_square", &a, 1, NULL, &refs[i]));
    }
    r->fan = 0;
    for (int i = 0; i < N; i++) {
        r->fan += get_int(rt, refs[i]);
        dray_ref_release(refs[i]);
    }
    /* A lazy tree reduction over 700 leaves. */
    dray_graph *g;
    dray_ref *t = tree_sum(rt, "ns_square", 700, &g);
    r->tree = get_int(rt, t);
    dray_ref_release(t);
    dray_graph_destroy(g);
    /* A chain of 200 dependent tasks, each fed the previous one's pending ref. */
    dray_value zero = dray_int(0);
    dray_ref *prev;
    ASSERT_OK(dray_submit(rt, "ns_inc", &zero, 1, NULL, &prev));
    for (int i = 1; i < 200; i++) {
        dray_value a = dray_value_of_ref(prev);
        dray_ref *next;
        ASSERT_OK(dray_submit(rt, "ns_inc", &a, 1, NULL, &next));
        dray_ref_release(prev);
        prev = next;
    }
    r->chain = get_int(rt, prev);
    dray_ref_release(prev);
    /* A failure and a dependent of it. */
    dray_value nine = dray_int(9);
    dray_ref *bad, *dep;
    ASSERT_OK(dray_submit(rt, "ns_boom", &nine, 1, NULL, &bad));
    dray_value ab[2] = {dray_value_of_ref(bad), dray_int(1)};
    ASSERT_OK(dray_submit(rt, "ns_add", ab, 2, NULL, &dep));
    r->err = dray_get(rt, bad, 30000, NULL);
    r->dep = dray_get(rt, dep, 30000, NULL);
    snprintf(r->dep_msg, sizeof r->dep_msg, "%s", dray_last_error());
    dray_ref_release(bad);
    dray_ref_release(dep);
}

/* The seed's array example: random((10000, 10000), chunks=(1000, 1000)).mean(axis=0). */
static dray_ndarray *array_mean(dray_runtime *rt)
{
    const int64_t shape[2] = {10000, 10000}, chunks[2] = {1000, 1000};
    dray_array *x, *m;
    dray_ndarray *out;
    ASSERT_OK(dray_array_random_uniform(42, 2, shape, chunks, 0.0, 1.0, &x));
    ASSERT_OK(dray_array_reduce(DRAY_MEAN, x, (int[]){0}, 1, NULL, &m));
    ASSERT_OK(dray_array_compute(rt, m, &out));
    dray_array_release(m);
    dray_array_release(x);
    return out;
}

/* ==== Tests ==== */

/* In a worker process (DRAY_WORKER_ADDRESS set) dray_init serves as a node and never returns. */
TEST(worker_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(graphs_arrays_and_actors_across_namespaces)
{
    net n;
    if (!net_setup(&n, 2, false))
        return;
    dray_runtime *rt = driver(), *lrt = local();
    graph_results c, l;
    core_graphs(rt, &c);
    core_graphs(lrt, &l);
    /* Equal to the local runtime's, and to the closed forms. */
    ASSERT_EQ(c.fan, l.fan);
    ASSERT_EQ(c.fan, 999LL * 1000 * 1999 / 6);
    ASSERT_EQ(c.tree, l.tree);
    ASSERT_EQ(c.tree, 699LL * 700 * 1399 / 6);
    ASSERT_EQ(c.chain, l.chain);
    ASSERT_EQ(c.chain, 200);
    ASSERT_EQ(c.err, DRAY_ETASK);
    ASSERT_EQ(l.err, DRAY_ETASK);
    ASSERT_EQ(c.dep, l.dep);
    ASSERT_EQ(c.dep, DRAY_EDEP);
    ASSERT_CONTAINS(c.dep_msg, "ns_boom on 9");
    /* The array example, column by column. */
    dray_ndarray *ca = array_mean(rt), *la = array_mean(lrt);
    ASSERT_EQ(dray_ndarray_shape(ca)[0], 10000);
    ASSERT_EQ(dray_ndarray_shape(la)[0], 10000);
    const double *cv = dray_ndarray_cdata(ca), *lv = dray_ndarray_cdata(la);
    for (int j = 0; j < 10000; j++)
        if (fabs(cv[j] - lv[j]) > 1e-12)
            ASSERT_NEAR(cv[j], lv[j], 1e-12);
    dray_ndarray_release(ca);
    dray_ndarray_release(la);
    /* Work ran in both worker namespaces and not here: 8 tasks at a time spread over the nodes. */
    pid_t seen[2] = {0, 0};
    for (int round = 0; round < 50 && !(seen[0] && seen[1]); round++) {
        dray_ref *p[8];
        for (int k = 0; k < 8; k++)
            ASSERT_OK(dray_submit(rt, "ns_slow_pid", NULL, 0, NULL, &p[k]));
        for (int k = 0; k < 8; k++) {
            int64_t v = get_int(rt, p[k]);
            dray_ref_release(p[k]);
            ASSERT_TRUE(v == n.workers[0] || v == n.workers[1]);
            seen[v == n.workers[1]] = (pid_t)v;
        }
    }
    ASSERT_TRUE(seen[0] && seen[1]);
    /* An actor: 1,000 calls in order, on one of the worker processes. */
    dray_value start = dray_int(5);
    dray_actor *act;
    ASSERT_OK(dray_actor_create(rt, "NsCounter", &start, 1, NULL, &act));
    dray_ref *calls[1000];
    dray_value one = dray_int(1);
    for (int i = 0; i < 1000; i++)
        ASSERT_OK(dray_actor_call(rt, act, "add", &one, 1, &calls[i]));
    for (int i = 0; i < 1000; i++) {
        ASSERT_EQ(get_int(rt, calls[i]), 6 + i);
        dray_ref_release(calls[i]);
    }
    dray_ref *pr;
    ASSERT_OK(dray_actor_call(rt, act, "pid", NULL, 0, &pr));
    int64_t apid = get_int(rt, pr);
    ASSERT_TRUE(apid == n.workers[0] || apid == n.workers[1]);
    dray_ref_release(pr);
    dray_actor_release(act);
    /* The head lists both nodes at their --bind addresses. */
    dray_value st;
    ASSERT_OK(dray_cluster_status(head_addr, &st));
    const dray_value *nodes = dray_map_get(&st, "nodes");
    ASSERT_EQ(dray_list_len(nodes), 2);
    bool has[2] = {false, false};
    for (size_t i = 0; i < 2; i++) {
        const char *addr = dray_string_cstr(dray_map_get(dray_list_get(nodes, i), "address"));
        has[0] |= strncmp(addr, "10.213.0.2:", 11) == 0;
        has[1] |= strncmp(addr, "10.213.0.3:", 11) == 0;
    }
    ASSERT_TRUE(has[0] && has[1]);
    dray_value_release(&st);
    ASSERT_OK(dray_shutdown(lrt, DRAY_SHUTDOWN_DRAIN));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    net_teardown(&n);
}

/* Waits (bounded) until rt has finished at least k tasks. */
static void wait_finished(dray_runtime *rt, uint64_t k)
{
    for (int i = 0; i < 3000; i++) {
        dray_stats s;
        ASSERT_OK(dray_runtime_stats(rt, &s));
        if (s.tasks_finished >= k)
            return;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_TRUE(!"tasks did not finish in 15 s");
}

TEST(worker_joining_mid_job_gets_work)
{
    net n;
    if (!net_setup(&n, 1, false))
        return;
    dray_runtime *rt = driver();
    enum { N = 1500 };
    dray_ref **refs = malloc(N * sizeof(*refs));
    for (int i = 0; i < N; i++) {
        dray_value a = dray_int(i);
        ASSERT_OK(dray_submit(rt, "ns_slow_square", &a, 1, NULL, &refs[i]));
    }
    wait_finished(rt, 100);
    start_worker(&n, 3);
    /* New tasks go to the least loaded node: soon the new one, in the other namespace. */
    pid_t last = 0;
    for (int k = 0; k < 3000 && last != n.workers[1]; k++) {
        dray_ref *p;
        ASSERT_OK(dray_submit(rt, "ns_pid", NULL, 0, NULL, &p));
        last = (pid_t)get_int(rt, p);
        dray_ref_release(p);
    }
    ASSERT_EQ(last, n.workers[1]);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(get_int(rt, refs[i]), (int64_t)i * i);
        dray_ref_release(refs[i]);
    }
    free(refs);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    net_teardown(&n);
}

TEST(killed_worker_during_10000_task_graph)
{
    net n;
    if (!net_setup(&n, 2, true))
        return;
    dray_runtime *rt = driver();
    enum { LEAVES = 5001 }; /* 5,001 leaves + 5,000 adds = 10,001 tasks */
    dray_graph *g;
    dray_ref *out = tree_sum(rt, "ns_slow_square", LEAVES, &g);
    wait_finished(rt, 1500);
    ASSERT_EQ(kill(n.workers[0], SIGKILL), 0);
    waitpid(n.workers[0], NULL, 0);
    n.workers[0] = 0;
    ASSERT_EQ(get_int(rt, out), (int64_t)(LEAVES - 1) * LEAVES * (2 * LEAVES - 1) / 6);
    dray_stats s;
    ASSERT_OK(dray_runtime_stats(rt, &s));
    ASSERT_GT(s.tasks_retried, 0);
    fprintf(stderr, "  %llu tasks finished, %llu retried after the kill\n",
            (unsigned long long)s.tasks_finished, (unsigned long long)s.tasks_retried);
    dray_ref_release(out);
    dray_graph_destroy(g);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    net_teardown(&n);
}

TEST(killed_worker_during_actor_calls)
{
    net n;
    if (!net_setup(&n, 2, true))
        return;
    dray_runtime *rt = driver();
    dray_actor_opts o = {0};
    o.max_restarts = 1;
    dray_value start = dray_int(0);
    dray_actor *act;
    ASSERT_OK(dray_actor_create(rt, "NsCounter", &start, 1, &o, &act));
    dray_ref *pr;
    ASSERT_OK(dray_actor_call(rt, act, "pid", NULL, 0, &pr));
    pid_t home = (pid_t)get_int(rt, pr);
    dray_ref_release(pr);
    int wi = home == n.workers[0] ? 0 : 1;
    ASSERT_EQ(home, n.workers[wi]);
    enum { N = 6000 };
    dray_ref **calls = malloc(N * sizeof(*calls));
    dray_value one = dray_int(1);
    for (int i = 0; i < N; i++)
        ASSERT_OK(dray_actor_call(rt, act, "add", &one, 1, &calls[i]));
    /* Kill the actor's node once a few hundred calls are done. */
    ASSERT_OK(dray_wait(rt, calls, N, 300, 30000, NULL, NULL));
    ASSERT_EQ(kill(home, SIGKILL), 0);
    waitpid(home, NULL, 0);
    n.workers[wi] = 0;
    /* Each call either ran on the first incarnation (values 1, 2, ... in call order), failed with
     * DRAY_EACTOR because it was in flight when the node died (no max_task_retries), or, sent after
     * the restart, ran on the second incarnation (values 1, 2, ... again). */
    int ok = 0, failed = 0, incarnation = 1;
    int64_t expect = 1;
    for (int i = 0; i < N; i++) {
        dray_value v;
        dray_status st = dray_get(rt, calls[i], 30000, &v);
        dray_ref_release(calls[i]);
        if (st == DRAY_OK) {
            if (v.u.i != expect) {
                ASSERT_TRUE(failed > 0 && incarnation == 1);
                ASSERT_EQ(v.u.i, 1);
                incarnation = 2;
                expect = 1;
            }
            expect++;
            ok++;
        } else {
            ASSERT_EQ(st, DRAY_EACTOR);
            dray_value_release(&v); /* the error value */
            failed++;
        }
    }
    free(calls);
    ASSERT_GE(ok, 300);
    ASSERT_GT(failed, 0);
    /* Restarted once, on the surviving node, from its constructor's state. */
    dray_status cst = DRAY_EACTOR;
    int64_t v = 0;
    for (int i = 0; i < 200 && cst == DRAY_EACTOR; i++) {
        dray_ref *r;
        ASSERT_OK(dray_actor_call(rt, act, "add", &one, 1, &r));
        dray_value rv;
        cst = dray_get(rt, r, 30000, &rv);
        v = cst == DRAY_OK ? rv.u.i : 0;
        if (cst != DRAY_OK && cst != DRAY_ETIMEDOUT)
            dray_value_release(&rv);
        dray_ref_release(r);
    }
    ASSERT_OK(cst);
    ASSERT_EQ(v, incarnation == 2 ? expect : 1);
    ASSERT_EQ(dray_actor_restarts(act), 1);
    ASSERT_OK(dray_actor_call(rt, act, "pid", NULL, 0, &pr));
    ASSERT_EQ(get_int(rt, pr), n.workers[1 - wi]);
    dray_ref_release(pr);
    fprintf(stderr, "  %d calls done before the kill, %d failed with it, 1 restart\n", ok, failed);
    dray_actor_release(act);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    net_teardown(&n);
}


/* ==== mpirun/srun launch over "hosts": one rank per namespace ==== */

/* What every rank runs: dray_init makes rank 0 the driver (here) and the others worker nodes (they
 * never return). The driver checks that 200 tasks ran in exactly the other ranks. */
TEST(ns_launch_rank_main)
{
    if (!getenv("OMPI_COMM_WORLD_RANK") && !getenv("SLURM_PROCID")) {
        printf("ns_launch_rank_main: not started as a rank: nothing to do\n");
        return;
    }
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    enum { N = 200 };
    dray_ref *refs[N];
    for (int i = 0; i < N; i++)
        ASSERT_OK(dray_submit(rt, "ns_slow_pid", NULL, 0, NULL, &refs[i]));
    int64_t pids[N];
    int npids = 0;
    for (int i = 0; i < N; i++) {
        int64_t pid = get_int(rt, refs[i]);
        dray_ref_release(refs[i]);
        ASSERT_NE(pid, getpid());
        bool seen = false;
        for (int k = 0; k < npids; k++)
            seen |= pids[k] == pid;
        if (!seen)
            pids[npids++] = pid;
    }
    ASSERT_EQ(npids, 2);
    dray_graph *g;
    dray_ref *t = tree_sum(rt, "ns_square", 300, &g);
    ASSERT_EQ(get_int(rt, t), 299LL * 300 * 599 / 6);
    dray_ref_release(t);
    dray_graph_destroy(g);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

/* Starts 3 ranks of this executable, rank r in namespace r+1 with env[r], and waits (bounded) for
 * all of them: every rank must exit 0 (the workers once the driver finished). */
static void run_ranks(net *n, char env[3][8][128])
{
    char exe[4096];
    self_exe(exe, sizeof exe);
    char *argv[] = {exe, "ns_launch_rank_main", NULL};
    pid_t pids[3];
    for (int r = 0; r < 3; r++) {
        const char *e[9];
        int k = 0;
        for (; k < 8 && env[r][k][0]; k++)
            e[k] = env[r][k];
        e[k] = NULL;
        pids[r] = spawn_in(n->ns[r + 1], argv, e);
        n->workers[n->nworkers++] = pids[r]; /* killed by the teardown if still there */
    }
    for (int r = 0; r < 3; r++) {
        int st = 0;
        pid_t got = 0;
        for (int i = 0; i < 4000 && (got = waitpid(pids[r], &st, WNOHANG)) == 0; i++) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
        if (got != pids[r])
            fprintf(stderr, "rank %d did not finish in 40 s\n", r);
        ASSERT_EQ(got, pids[r]);
        n->workers[r] = 0;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "rank %d ended with status %d\n", r, st);
        ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

/* OpenMPI over three "hosts" (orte_num_nodes=3): the head address published in a shared
 * DRAY_LAUNCH_DIR, every rank listening on its own DRAY_BIND address. */
TEST(mpi_launch_across_namespaces)
{
    net n;
    memset(&n, 0, sizeof n);
    n.home_fd = -1;
    const char *why = no_netns();
    if (why) {
        printf("SKIP: %s\n", why);
        return;
    }
    net_create(&n);
    snprintf(n.dir, sizeof n.dir, "/tmp/dray-nstest-XXXXXX");
    ASSERT_TRUE(mkdtemp(n.dir) != NULL);
    static char env[3][8][128];
    memset(env, 0, sizeof env);
    for (int r = 0; r < 3; r++) {
        snprintf(env[r][0], 128, "OMPI_COMM_WORLD_RANK=%d", r);
        snprintf(env[r][1], 128, "OMPI_COMM_WORLD_SIZE=3");
        snprintf(env[r][2], 128, "OMPI_COMM_WORLD_LOCAL_SIZE=1");
        snprintf(env[r][3], 128, "OMPI_MCA_orte_num_nodes=3");
        snprintf(env[r][4], 128, "OMPI_MCA_ess_base_jobid=ns%d", (int)getpid());
        snprintf(env[r][5], 128, "DRAY_LAUNCH_DIR=%s/launch", n.dir);
        snprintf(env[r][6], 128, "DRAY_BIND=10.213.0.%d", r + 1);
        snprintf(env[r][7], 128, "DRAY_WORKER_CPUS=1");
    }
    run_ranks(&n, env);
    /* Rank 0 removed the published address and the secret. */
    char path[128];
    snprintf(path, sizeof path, "%s/launch/address", n.dir);
    ASSERT_NE(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/launch/secret", n.dir);
    ASSERT_NE(access(path, F_OK), 0);
    net_teardown(&n);
}

/* An srun step over three "hosts" without a shared directory: the head on the first host of the
 * node list at DRAY_LAUNCH_PORT, the secret in DRAY_SECRET. */
TEST(slurm_launch_across_namespaces_without_shared_dir)
{
    net n;
    memset(&n, 0, sizeof n);
    n.home_fd = -1;
    const char *why = no_netns();
    if (why) {
        printf("SKIP: %s\n", why);
        return;
    }
    net_create(&n);
    uint8_t key[32];
    FILE *f = fopen("/dev/urandom", "r");
    ASSERT_TRUE(f && fread(key, 1, 32, f) == 32);
    fclose(f);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    static char env[3][8][128];
    memset(env, 0, sizeof env);
    for (int r = 0; r < 3; r++) {
        snprintf(env[r][0], 128, "SLURM_PROCID=%d", r);
        snprintf(env[r][1], 128, "SLURM_STEP_NUM_TASKS=3");
        snprintf(env[r][2], 128, "SLURM_STEP_ID=0");
        snprintf(env[r][3], 128, "SLURM_JOB_ID=%d", (int)getpid());
        snprintf(env[r][4], 128, "SLURM_STEP_NUM_NODES=3");
        snprintf(env[r][5], 128, "SLURM_STEP_NODELIST=10.213.0.1,10.213.0.[2-3]");
        snprintf(env[r][6], 128, "DRAY_SECRET=%s", hex);
        snprintf(env[r][7], 128, "DRAY_BIND=10.213.0.%d", r + 1);
    }
    run_ranks(&n, env);
    net_teardown(&n);
}

RUN_TESTS(T_(worker_main), T_(ns_launch_rank_main), T_(graphs_arrays_and_actors_across_namespaces),
          T_(worker_joining_mid_job_gets_work), T_(killed_worker_during_10000_task_graph),
          T_(killed_worker_during_actor_calls), T_(mpi_launch_across_namespaces),
          T_(slurm_launch_across_namespaces_without_shared_dir))
