/* Worker memory and object lifetimes on a real cluster (head + worker processes on 127.0.0.1):
 * Dask's process-memory thresholds (a node whose resident memory passes the pause fraction of its
 * limit stops starting tasks, drivers place new ones elsewhere, `dray status` says "paused"; it
 * keeps spilling and resumes once memory is back under it; past the terminate fraction it exits),
 * and refs nested in lists (passed to and returned from tasks, kept alive by the lists holding
 * them) giving the embedded runtime's results. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dray/cluster.h"
#include "dray/core.h"
#include "test.h"
#include "cluster_fixture.h"

/* ==== Task functions (the worker processes are this executable) ==== */

DRAY_FUNCTION(mem_pid)
{
    *result = dray_int(getpid());
    return DRAY_OK;
}

/* n bytes, byte i = (i*7+3) mod 251. */
DRAY_FUNCTION(mem_make_bytes)
{
    void *p;
    dray_status st = dray_bytes_create_uninit((size_t)args[0].u.i, result, &p);
    for (int64_t i = 0; !st && i < args[0].u.i; i++)
        ((uint8_t *)p)[i] = (uint8_t)((i * 7 + 3) % 251);
    return st;
}

DRAY_FUNCTION(mem_sum_bytes)
{
    size_t n;
    const uint8_t *p = dray_bytes_data(&args[0], &n);
    if (!p)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "mem_sum_bytes: not bytes");
    int64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    *result = dray_int(s);
    return DRAY_OK;
}

/* Holds args[0] bytes of touched memory (unmanaged: not a result) until file args[1] exists (at
 * most 60 s), then frees it and returns the number of pages it touched. */
DRAY_FUNCTION(mem_hog_until)
{
    size_t n = (size_t)args[0].u.i;
    uint8_t *p = malloc(n);
    if (!p)
        return DRAY_ENOMEM;
    int64_t pages = 0;
    for (size_t i = 0; i < n; i += 4096, pages++)
        p[i] = (uint8_t)i;
    const char *path = dray_string_cstr(&args[1]);
    for (int i = 0; i < 6000 && access(path, F_OK) != 0; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    free(p);
    *result = dray_int(pages);
    return DRAY_OK;
}

/* ==== Fixture ==== */

/* The shared fixture (tests/cluster_fixture.h) with worker nodes started here, each with its own
 * environment and log file. */
typedef test_cluster fx;

/* Starts a worker node from this executable with the environment `env` ("NAME=VALUE" strings,
 * NULL-terminated) added; its log goes to <dir>/worker-<index>.log. */
static pid_t spawn_node(fx *f, const char *const *env)
{
    char exe[4096], log[128], asan[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ASSERT_GT(n, 0);
    exe[n] = 0;
    snprintf(log, sizeof log, "%s/worker-%d.log", f->dir, f->nworkers);
    /* Under ASan freed memory would sit in its quarantine: no quarantine, so process memory
     * falls when objects are freed, as it does without ASan. */
    const char *a = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%squarantine_size_mb=0", a ? a : "", a && *a ? ":" : "");
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        setenv("DRAY_WORKER_ADDRESS", f->addr, 1);
        setenv("DRAY_WORKER_CPUS", "1", 1);
        setenv("ASAN_OPTIONS", asan, 1);
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)*e);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        char *argv[] = {exe, "worker_main", NULL};
        execv(exe, argv);
        _exit(127);
    }
    ASSERT_GT(pid, 0);
    f->workers[f->nworkers++] = pid;
    return pid;
}

static void fx_start(fx *f)
{
    test_cluster_start(f, 0);
}

static void stop_worker(fx *f, int i)
{
    if (f->workers[i] <= 0)
        return;
    kill(f->workers[i], SIGTERM);
    int st;
    waitpid(f->workers[i], &st, 0);
    f->workers[i] = -1;
}

static void fx_stop(fx *f)
{
    test_cluster_stop(f);
}

static dray_runtime *connect_driver(fx *f, int min_nodes)
{
    char n[16];
    snprintf(n, sizeof n, "%d", min_nodes);
    setenv("DRAY_MIN_NODES", n, 1);
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 1;
    cfg.progress = 0;
    cfg.address = f->addr;
    dray_runtime *rt = NULL;
    ASSERT_OK(dray_init(&cfg, &rt));
    return rt;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The status entry of the live node with this pid (owned copy in *out), false when not listed. */
static bool node_status(const fx *f, pid_t pid, dray_value *out)
{
    dray_value st;
    ASSERT_OK(dray_cluster_status(f->addr, &st));
    const dray_value *nodes = dray_map_get(&st, "nodes");
    bool found = false;
    for (size_t i = 0; i < dray_list_len(nodes) && !found; i++) {
        const dray_value *n = dray_list_get(nodes, i);
        if (dray_map_get(n, "pid")->u.i == pid && dray_map_get(n, "alive")->u.b) {
            *out = dray_value_retain(n);
            found = true;
        }
    }
    dray_value_release(&st);
    return found;
}

static int64_t node_int(const fx *f, pid_t pid, const char *key)
{
    dray_value n;
    ASSERT_TRUE(node_status(f, pid, &n));
    const dray_value *v = dray_map_get(&n, key);
    if (!v)
        v = dray_map_get(dray_map_get(&n, "store"), key);
    ASSERT_TRUE(v != NULL);
    int64_t out = v->type == DRAY_T_BOOL ? v->u.b : v->u.i;
    dray_value_release(&n);
    return out;
}

/* Waits (at most 20 s) until the node's `key` equals want. */
static void wait_node(const fx *f, pid_t pid, const char *key, int64_t want)
{
    int64_t got = -1;
    for (int i = 0; i < 400 && (got = node_int(f, pid, key)) != want; i++)
        sleep_ms(50);
    if (got != want)
        fprintf(stderr, "node %d: %s is %lld, want %lld\n", (int)pid, key, (long long)got,
                (long long)want);
    ASSERT_EQ(got, want);
}

/* The resident bytes of an idle node, from its heartbeats (the largest of a few). */
static int64_t idle_rss(const fx *f, pid_t pid)
{
    int64_t rss = 0;
    for (int i = 0; i < 400 && rss == 0; i++) {
        rss = node_int(f, pid, "rss_bytes");
        sleep_ms(50);
    }
    ASSERT_GT(rss, 0);
    for (int i = 0; i < 2; i++) {
        sleep_ms(550);
        int64_t r = node_int(f, pid, "rss_bytes");
        rss = r > rss ? r : rss;
    }
    return rss;
}

enum { OBJ = 8 << 20 };

/* A memory limit whose pause fraction (0.8) lies `objects` times what one retained OBJ-byte result
 * costs in process memory above the size of a fresh node. Both are measured on a probe node started
 * and stopped here, so the test does not depend on how big the process is or what a byte of it
 * costs (ASan, TSan's shadow memory, the allocator). */
static int64_t limit_for_objects(fx *f, double objects)
{
    static const char *const env[] = {"DRAY_WORKER_RESOURCES=probe=1", NULL};
    pid_t probe = spawn_node(f, env);
    dray_runtime *rt = connect_driver(f, 1);
    /* Run a few tasks there first: executor stacks and allocator arenas count too. */
    for (int i = 0; i < 4; i++) {
        dray_ref *r;
        ASSERT_OK(dray_submit(rt, "mem_pid", NULL, 0, NULL, &r));
        dray_value v;
        ASSERT_OK(dray_get(rt, r, 20000, &v));
        ASSERT_EQ(v.u.i, probe);
        dray_ref_release(r);
    }
    int64_t base = idle_rss(f, probe);
    dray_value size = dray_int(OBJ);
    dray_ref *obj;
    ASSERT_OK(dray_submit(rt, "mem_make_bytes", &size, 1, NULL, &obj));
    ASSERT_OK(dray_wait(rt, &obj, 1, 1, 20000, NULL, NULL));
    int64_t cost = idle_rss(f, probe) - base;
    dray_ref_release(obj);
    if (cost < OBJ)
        cost = OBJ;
    fprintf(stderr, "probe node: %.1f MB resident, %.1f MB more with one %d MB result\n",
            (double)base / 1e6, (double)cost / 1e6, OBJ >> 20);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    stop_worker(f, f->nworkers - 1);
    return (int64_t)((double)base + objects * (double)cost) * 10 / 8;
}

/* The sum of the bytes mem_make_bytes makes, computed independently. */
static int64_t made_sum(int64_t n)
{
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (i * 7 + 3) % 251;
    return s;
}

static dray_ref *submit_on(dray_runtime *rt, const char *fn, const dray_value *args, size_t n,
                           const char *res)
{
    dray_resource r = {res, 1};
    dray_task_opts o = {0};
    o.resources = &r;
    o.n_resources = res ? 1 : 0;
    dray_ref *out;
    ASSERT_OK(dray_submit(rt, fn, args, n, res ? &o : NULL, &out));
    return out;
}

static int64_t get_int(dray_runtime *rt, dray_ref *r)
{
    dray_value v;
    ASSERT_OK(dray_get(rt, r, 30000, &v));
    ASSERT_EQ(v.type, DRAY_T_INT);
    return v.u.i;
}

static int64_t client_stat(dray_runtime *rt, const char *key)
{
    dray_value m;
    ASSERT_OK(dray_cluster_client_stats(rt, &m));
    const dray_value *v = dray_map_get(&m, key);
    ASSERT_TRUE(v != NULL);
    int64_t out = v->u.i;
    dray_value_release(&m);
    return out;
}

static bool file_contains(const char *path, const char *needle)
{
    char buf[1 << 16];
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

/* ==== Tests ==== */

/* In a worker process dray_init never returns (it serves); here it is a local runtime. */
TEST(worker_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

/* A node whose limit puts the pause fraction 4.5 retained results above its own size, with
 * spilling off (so results stay in memory), makes 8 MB results that the driver keeps until it
 * pauses. While paused: `dray status` says so, tasks that would go there (round-robin ties,
 * locality to its objects) go to the other node, tasks only it can run wait. Freeing the objects
 * resumes it; everything finishes with the right results. */
TEST(node_pauses_above_pause_fraction_and_resumes)
{
    fx f;
    fx_start(&f);
    int64_t limit = limit_for_objects(&f, 4.5);
    char mem[64];
    snprintf(mem, sizeof mem, "DRAY_WORKER_MEMORY=%lld", (long long)limit);
    const char *const small_env[] = {mem, "DRAY_WORKER_RESOURCES=small=1",
                                     "DRAY_MEMORY_TARGET=false", "DRAY_MEMORY_SPILL=false",
                                     "DRAY_MEMORY_TERMINATE=false", NULL};
    const char *const big_env[] = {"DRAY_WORKER_RESOURCES=big=1", NULL};
    pid_t small = spawn_node(&f, small_env);
    int si = f.nworkers - 1;
    pid_t big = spawn_node(&f, big_env);
    dray_runtime *rt = connect_driver(&f, 2);
    wait_node(&f, small, "limit", limit);
    ASSERT_EQ(node_int(&f, small, "paused"), 0);
    /* Results kept by the driver until the node pauses (at most 12: 96 MB). */
    dray_ref *objs[16], *waiting = NULL;
    int nobj = 0;
    dray_value size = dray_int(OBJ);
    while (nobj < 12) {
        dray_ref *r = submit_on(rt, "mem_make_bytes", &size, 1, "small");
        if (dray_wait(rt, &r, 1, 1, 15000, NULL, NULL) != DRAY_OK) {
            waiting = r; /* the node paused before running it */
            break;
        }
        objs[nobj++] = r;
        sleep_ms(20);
        if (node_int(&f, small, "paused"))
            break;
    }
    wait_node(&f, small, "paused", 1);
    fprintf(stderr, "paused after %d results%s\n", nobj, waiting ? " (one more waits)" : "");
    ASSERT_GE(nobj, 3); /* it took retained results to get there (about 4.5) */
    ASSERT_LE(nobj, 7);
    /* `dray status` shows it. */
    char cmd[4300], out[4096] = {0};
    snprintf(cmd, sizeof cmd, "%s status --address %s", f.dray, f.addr);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    ASSERT_EQ(pclose(p), 0);
    char line[64];
    snprintf(line, sizeof line, " %d ", (int)small);
    ASSERT_CONTAINS(out, line);
    ASSERT_CONTAINS(out, " paused ");
    /* Unconstrained tasks (both nodes idle: round-robin would give it half) all go elsewhere. */
    for (int i = 0; i < 10; i++) {
        dray_ref *r = submit_on(rt, "mem_pid", NULL, 0, NULL);
        ASSERT_EQ(get_int(rt, r), big);
        dray_ref_release(r);
    }
    /* Consumers of its objects go to the other node (they pull the bytes) instead of the holder. */
    int64_t local0 = client_stat(rt, "placed_local"), spill0 = client_stat(rt, "placed_spill");
    for (int i = 0; i < 3; i++) {
        dray_value a = dray_value_of_ref(objs[i % nobj]);
        dray_ref *r = submit_on(rt, "mem_sum_bytes", &a, 1, NULL);
        ASSERT_EQ(get_int(rt, r), made_sum(OBJ));
        dray_ref_release(r);
    }
    ASSERT_EQ(client_stat(rt, "placed_local"), local0);
    ASSERT_EQ(client_stat(rt, "placed_spill") - spill0, 3);
    /* Tasks only it can run wait (they do not start while it is paused). */
    sleep_ms(600); /* a heartbeat with the final count */
    int64_t done_at_pause = node_int(&f, small, "tasks_done");
    dray_ref *later[2];
    dray_value small_size = dray_int(1 << 20);
    for (int i = 0; i < 2; i++)
        later[i] = submit_on(rt, "mem_make_bytes", &small_size, 1, "small");
    size_t ready = 99;
    ASSERT_STATUS(dray_wait(rt, later, 2, 1, 1000, NULL, &ready), DRAY_ETIMEDOUT);
    ASSERT_EQ(ready, 0);
    ASSERT_EQ(node_int(&f, small, "paused"), 1);
    ASSERT_EQ(node_int(&f, small, "tasks_done"), done_at_pause);
    /* The objects read back correctly (served while paused), then are freed: it resumes. */
    for (int i = 0; i < nobj; i++) {
        dray_value v;
        ASSERT_OK(dray_get(rt, objs[i], 30000, &v));
        size_t len = 0;
        const uint8_t *b = dray_bytes_data(&v, &len);
        ASSERT_EQ((int64_t)len, OBJ);
        int64_t s = 0;
        for (size_t k = 0; k < len; k++)
            s += b[k];
        ASSERT_EQ(s, made_sum(OBJ));
        dray_value_release(&v);
        dray_ref_release(objs[i]);
    }
    wait_node(&f, small, "paused", 0);
    ASSERT_OK(dray_wait(rt, later, 2, 2, 30000, NULL, NULL));
    for (int i = 0; i < 2; i++) {
        dray_value a = dray_value_of_ref(later[i]);
        dray_ref *r = submit_on(rt, "mem_sum_bytes", &a, 1, "small");
        ASSERT_EQ(get_int(rt, r), made_sum(1 << 20));
        dray_ref_release(r);
        dray_ref_release(later[i]);
    }
    if (waiting) {
        dray_value a = dray_value_of_ref(waiting);
        dray_ref *r = submit_on(rt, "mem_sum_bytes", &a, 1, "small");
        ASSERT_EQ(get_int(rt, r), made_sum(OBJ));
        dray_ref_release(r);
        dray_ref_release(waiting);
    }
    /* It takes unconstrained work again. */
    bool ran_there = false;
    for (int i = 0; i < 20 && !ran_there; i++) {
        dray_ref *r = submit_on(rt, "mem_pid", NULL, 0, NULL);
        ran_there = get_int(rt, r) == small;
        dray_ref_release(r);
    }
    ASSERT_TRUE(ran_there);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    stop_worker(&f, si);
    char path[128];
    snprintf(path, sizeof path, "%s/worker-%d.log", f.dir, si);
    ASSERT_TRUE(file_contains(path, "above the pause fraction"));
    ASSERT_TRUE(file_contains(path, "resuming"));
    fx_stop(&f);
}

/* Memory a task holds (not an object) pauses the node; while paused it keeps spilling its objects
 * (process memory above the spill fraction) and stays paused until the task lets go. Its objects
 * read back from disk with the right bytes. */
TEST(paused_node_keeps_spilling)
{
    fx f;
    fx_start(&f);
    int64_t limit = limit_for_objects(&f, 4.5);
    char mem[64];
    snprintf(mem, sizeof mem, "DRAY_WORKER_MEMORY=%lld", (long long)limit);
    /* target 0.6 and spill 0.7 of the limit lie below the pause fraction: two 8 MB objects stay in
     * memory only while nothing else grows (managed memory stays under the spill bytes). */
    const char *const env[] = {mem, "DRAY_WORKER_RESOURCES=small=1", "DRAY_MEMORY_TERMINATE=false",
                               NULL};
    pid_t small = spawn_node(&f, env);
    dray_runtime *rt = connect_driver(&f, 1);
    wait_node(&f, small, "limit", limit);
    dray_value size = dray_int(4 << 20);
    dray_ref *objs[2];
    for (int i = 0; i < 2; i++)
        objs[i] = submit_on(rt, "mem_make_bytes", &size, 1, "small");
    ASSERT_OK(dray_wait(rt, objs, 2, 2, 20000, NULL, NULL));
    char flag[128];
    snprintf(flag, sizeof flag, "%s/let-go", f.dir);
    dray_value hog[2] = {dray_int(96 << 20), dray_null()};
    ASSERT_OK(dray_string_create(flag, &hog[1]));
    dray_ref *h = submit_on(rt, "mem_hog_until", hog, 2, "small");
    dray_value_release(&hog[1]);
    wait_node(&f, small, "paused", 1);
    /* Both objects went to disk while paused. */
    wait_node(&f, small, "bytes_disk", 2 * (4 << 20));
    ASSERT_EQ(node_int(&f, small, "bytes_mem"), 0);
    ASSERT_GE(node_int(&f, small, "spilled"), 2);
    /* A task queued behind it waits. */
    dray_ref *q = submit_on(rt, "mem_pid", NULL, 0, "small");
    size_t ready = 99;
    ASSERT_STATUS(dray_wait(rt, &q, 1, 1, 800, NULL, &ready), DRAY_ETIMEDOUT);
    ASSERT_EQ(ready, 0);
    ASSERT_EQ(node_int(&f, small, "paused"), 1);
    int fd = open(flag, O_WRONLY | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
    ASSERT_EQ(get_int(rt, h), (96 << 20) / 4096);
    wait_node(&f, small, "paused", 0);
    ASSERT_EQ(get_int(rt, q), small);
    for (int i = 0; i < 2; i++) {
        dray_value a = dray_value_of_ref(objs[i]);
        dray_ref *r = submit_on(rt, "mem_sum_bytes", &a, 1, "small");
        ASSERT_EQ(get_int(rt, r), made_sum(4 << 20));
        dray_ref_release(r);
        dray_ref_release(objs[i]);
    }
    int64_t rb = 0;
    for (int i = 0; i < 100 && (rb = node_int(&f, small, "read_back")) < 2; i++)
        sleep_ms(50); /* heartbeats bring the counters */
    ASSERT_GE(rb, 2);
    dray_ref_release(h);
    dray_ref_release(q);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    fx_stop(&f);
}

/* Above the terminate fraction (0.95, Dask's default) the node logs why and exits; the driver's
 * other tasks go to another node. The node's limit puts 0.95 of it 2.5 retained results above its
 * own size (pausing and spilling off, so it gets there). A limit below the process's own size is
 * taken as the object store's only: that node neither pauses nor exits. */
TEST(node_terminates_above_terminate_fraction)
{
    fx f;
    fx_start(&f);
    int64_t limit = limit_for_objects(&f, 2.5) * 8 / 10 * 100 / 95;
    char mem[64];
    snprintf(mem, sizeof mem, "DRAY_WORKER_MEMORY=%lld", (long long)limit);
    const char *const other_env[] = {"DRAY_WORKER_MEMORY=2000000", NULL};
    pid_t other = spawn_node(&f, other_env);
    const char *const env[] = {mem, "DRAY_WORKER_RESOURCES=doomed=1", "DRAY_MEMORY_TARGET=false",
                               "DRAY_MEMORY_SPILL=false", "DRAY_MEMORY_PAUSE=false", NULL};
    pid_t doomed = spawn_node(&f, env);
    int di = f.nworkers - 1;
    dray_runtime *rt = connect_driver(&f, 2);
    dray_value size = dray_int(OBJ);
    dray_ref *objs[6];
    for (int i = 0; i < 6; i++)
        objs[i] = submit_on(rt, "mem_make_bytes", &size, 1, "doomed");
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 600 && got == 0; i++) {
        got = waitpid(doomed, &st, WNOHANG);
        if (!got)
            sleep_ms(50);
    }
    ASSERT_EQ(got, doomed);
    f.workers[di] = -1;
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 3);
    char path[128];
    snprintf(path, sizeof path, "%s/worker-%d.log", f.dir, di);
    ASSERT_TRUE(file_contains(path, "above the terminate fraction"));
    ASSERT_TRUE(file_contains(path, "terminating this node"));
    /* Its tasks fail (no other node offers "doomed"); others run on the 2 MB node, which is past
     * its own limit but neither paused nor gone. */
    ASSERT_NE(dray_wait(rt, objs, 6, 6, 30000, NULL, NULL), DRAY_ETIMEDOUT);
    for (int i = 0; i < 6; i++)
        dray_ref_release(objs[i]);
    for (int i = 0; i < 5; i++) {
        dray_ref *r = submit_on(rt, "mem_pid", NULL, 0, NULL);
        ASSERT_EQ(get_int(rt, r), other);
        dray_ref_release(r);
    }
    ASSERT_EQ(node_int(&f, other, "paused"), 0);
    snprintf(path, sizeof path, "%s/worker-%d.log", f.dir, di - 1);
    ASSERT_TRUE(file_contains(path, "it limits the object store only"));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    fx_stop(&f);
}

/* Bad fractions are refused at start, naming the variable. */
TEST(bad_fractions_are_refused)
{
    fx f;
    fx_start(&f);
    const char *const env[] = {"DRAY_MEMORY_PAUSE=1.5", NULL};
    pid_t w = spawn_node(&f, env);
    int st = 0;
    ASSERT_EQ(waitpid(w, &st, 0), w);
    f.workers[0] = -1;
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    char path[128];
    snprintf(path, sizeof path, "%s/worker-0.log", f.dir);
    ASSERT_TRUE(file_contains(path, "DRAY_MEMORY_PAUSE='1.5'"));
    const char *const env2[] = {"DRAY_MEMORY_SPILL=0.9", NULL}; /* above pause 0.8 */
    w = spawn_node(&f, env2);
    ASSERT_EQ(waitpid(w, &st, 0), w);
    f.workers[1] = -1;
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    snprintf(path, sizeof path, "%s/worker-1.log", f.dir);
    ASSERT_TRUE(file_contains(path, "target <= spill <= pause"));
    fx_stop(&f);
}


/* ==== Refs nested in lists ==== */

/* Sum of a value: ints as they are, bytes by their bytes, lists item by item, refs by what
 * dray_get gives (a failed ref adds -1000 times its status code). */
static int64_t nested_sum(dray_runtime *rt, const dray_value *v)
{
    if (v->type == DRAY_T_INT)
        return v->u.i;
    if (v->type == DRAY_T_BYTES) {
        size_t n;
        const uint8_t *p = dray_bytes_data(v, &n);
        int64_t s = 0;
        for (size_t i = 0; i < n; i++)
            s += p[i];
        return s;
    }
    if (v->type == DRAY_T_LIST) {
        int64_t s = 0;
        for (size_t i = 0; i < dray_list_len(v); i++)
            s += nested_sum(rt, dray_list_get(v, i));
        return s;
    }
    if (v->type == DRAY_T_REF) {
        dray_value x;
        dray_status st = dray_get(rt, v->u.ref, 30000, &x);
        int64_t s = st ? -1000 * (int64_t)-st : nested_sum(rt, &x);
        dray_value_release(&x);
        return s;
    }
    return 1000000; /* anything else (an unresolved handle) shows up in the sums */
}

DRAY_FUNCTION(nr_sum)
{
    *result = dray_int(nested_sum(dray_ctx_runtime(ctx), &args[0]));
    return DRAY_OK;
}

DRAY_FUNCTION(nr_fail)
{
    return dray_ctx_fail(ctx, DRAY_ETASK, "nr_fail %lld", (long long)args[0].u.i);
}

/* mem_make_bytes after 200 ms (its ref is still pending when a list holding it is submitted). */
DRAY_FUNCTION(nr_slow_bytes)
{
    sleep_ms(200);
    void *p;
    dray_status st = dray_bytes_create_uninit((size_t)args[0].u.i, result, &p);
    for (int64_t i = 0; !st && i < args[0].u.i; i++)
        ((uint8_t *)p)[i] = (uint8_t)((i * 7 + 3) % 251);
    return st;
}

/* Returns [ref(n), ref(bytes of n), [ref(2n), 9]] made on the runtime it runs on. */
DRAY_FUNCTION(nr_wrap)
{
    dray_runtime *rt = dray_ctx_runtime(ctx);
    int64_t n = args[0].u.i;
    dray_value b;
    void *p;
    dray_status st = dray_bytes_create_uninit((size_t)n, &b, &p);
    if (st)
        return st;
    for (int64_t i = 0; i < n; i++)
        ((uint8_t *)p)[i] = (uint8_t)((i * 7 + 3) % 251);
    dray_value vn = dray_int(n), v2 = dray_int(2 * n);
    dray_ref *r[3];
    ASSERT_OK(dray_put(rt, &vn, &r[0]));
    ASSERT_OK(dray_put(rt, &b, &r[1]));
    ASSERT_OK(dray_put(rt, &v2, &r[2]));
    dray_value_release(&b);
    dray_value inner[2] = {dray_value_of_ref(r[2]), dray_int(9)}, items[3];
    items[0] = dray_value_of_ref(r[0]);
    items[1] = dray_value_of_ref(r[1]);
    st = dray_list_create(inner, 2, &items[2]);
    if (!st)
        st = dray_list_create(items, 3, result);
    dray_value_release(&items[2]);
    for (int i = 0; i < 3; i++)
        dray_ref_release(r[i]);
    return st;
}

/* An actor keeping a list (and so the refs in it) until asked for its sum. */
static dray_status keeper_init(dray_ctx *ctx, const dray_value *a, size_t n, void **state)
{
    (void)ctx, (void)a, (void)n;
    dray_value *v = malloc(sizeof(*v));
    if (!v)
        return DRAY_ENOMEM;
    *v = dray_null();
    *state = v;
    return DRAY_OK;
}
static void keeper_free(void *s)
{
    dray_value_release(s);
    free(s);
}
static dray_status keeper_keep(dray_ctx *ctx, void *s, const dray_value *a, size_t n,
                               dray_value *r)
{
    (void)ctx, (void)n;
    dray_value_release(s);
    *(dray_value *)s = dray_value_retain(&a[0]);
    *r = dray_null();
    return DRAY_OK;
}
static dray_status keeper_sum(dray_ctx *ctx, void *s, const dray_value *a, size_t n,
                              dray_value *r)
{
    (void)a, (void)n;
    *r = dray_int(nested_sum(dray_ctx_runtime(ctx), s));
    return DRAY_OK;
}
DRAY_ACTOR_CLASS(NrKeeper, keeper_init, keeper_free, {"keep", keeper_keep}, {"sum", keeper_sum})

static dray_ref *submit1(dray_runtime *rt, const char *fn, dray_value arg)
{
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, fn, &arg, 1, NULL, &r));
    return r;
}

static int64_t wait_int(dray_runtime *rt, dray_ref *r)
{
    dray_value v;
    ASSERT_OK(dray_get(rt, r, 30000, &v));
    ASSERT_EQ(v.type, DRAY_T_INT);
    dray_ref_release(r);
    return v.u.i;
}

enum { NESTED_RESULTS = 7 };

/* The same program on any runtime: refs (a stored 1 MB object, a small result, a put value, a
 * failed task, a pending task) inside nested lists passed to tasks and to an actor, refs returned
 * inside lists (small and large results), and objects kept alive only by lists. */
static void nested_program(dray_runtime *rt, int64_t out[NESTED_RESULTS])
{
    dray_value big = dray_int(1 << 20), small = dray_int(100), seven = dray_int(7),
               v42 = dray_int(42);
    dray_ref *a = submit1(rt, "mem_make_bytes", big);
    dray_ref *b = submit1(rt, "mem_make_bytes", small);
    dray_ref *f = submit1(rt, "nr_fail", seven), *c;
    ASSERT_OK(dray_put(rt, &v42, &c));
    ASSERT_OK(dray_wait(rt, &a, 1, 1, 30000, NULL, NULL));
    dray_value inner[2] = {dray_value_of_ref(b), dray_value_of_ref(c)}, items[4], list;
    items[0] = dray_value_of_ref(a);
    items[1] = dray_int(5);
    ASSERT_OK(dray_list_create(inner, 2, &items[2]));
    items[3] = dray_value_of_ref(f);
    ASSERT_OK(dray_list_create(items, 4, &list));
    dray_value_release(&items[2]);
    out[0] = wait_int(rt, submit1(rt, "nr_sum", list));
    /* A ref still pending when the list is submitted. */
    dray_ref *g = submit1(rt, "nr_slow_bytes", dray_int(300000));
    dray_value gl_items[2] = {dray_value_of_ref(g), dray_int(1)}, gl;
    ASSERT_OK(dray_list_create(gl_items, 2, &gl));
    out[1] = wait_int(rt, submit1(rt, "nr_sum", gl));
    dray_value_release(&gl);
    /* Refs returned inside a list, small (inline) and large (the list is a stored object). */
    for (int k = 0; k < 2; k++) {
        dray_ref *w = submit1(rt, "nr_wrap", dray_int(k ? 300000 : 50));
        dray_value wv;
        ASSERT_OK(dray_get(rt, w, 30000, &wv));
        ASSERT_EQ(wv.type, DRAY_T_LIST);
        ASSERT_EQ(dray_list_get(&wv, 0)->type, DRAY_T_REF);
        out[2 + k] = nested_sum(rt, &wv);
        /* and passed on to another task as they are */
        if (k)
            out[2 + k] += 7 * wait_int(rt, submit1(rt, "nr_sum", wv));
        dray_value_release(&wv);
        dray_ref_release(w);
    }
    /* Objects only lists hold: the driver's refs go, the lists keep them. */
    dray_ref *o1 = submit1(rt, "mem_make_bytes", dray_int(2 << 20));
    dray_ref *o2 = submit1(rt, "mem_make_bytes", dray_int(3 << 20));
    dray_value l1, l2, x1 = dray_value_of_ref(o1), x2 = dray_value_of_ref(o2);
    ASSERT_OK(dray_list_create(&x1, 1, &l1));
    ASSERT_OK(dray_list_create(&x2, 1, &l2));
    dray_ref_release(o1);
    dray_ref_release(o2);
    dray_actor *keeper;
    ASSERT_OK(dray_actor_create(rt, "NrKeeper", NULL, 0, NULL, &keeper));
    dray_ref *kr;
    ASSERT_OK(dray_actor_call(rt, keeper, "keep", &l1, 1, &kr));
    ASSERT_OK(dray_get(rt, kr, 30000, NULL));
    dray_ref_release(kr);
    dray_value_release(&l1); /* now only the actor's list holds o1 */
    sleep_ms(300);
    ASSERT_OK(dray_actor_call(rt, keeper, "sum", NULL, 0, &kr));
    out[4] = wait_int(rt, kr);
    sleep_ms(300);
    out[5] = wait_int(rt, submit1(rt, "nr_sum", l2)); /* o2: only the driver's list l2 */
    dray_value_release(&l2);
    dray_actor_release(keeper);
    out[6] = wait_int(rt, submit1(rt, "nr_sum", list)); /* the first list, used again */
    dray_value_release(&list);
    dray_ref_release(a);
    dray_ref_release(b);
    dray_ref_release(c);
    dray_ref_release(f);
    dray_ref_release(g);
}

/* Refs nested in lists give the embedded runtime's results on a cluster (each also checked against
 * its closed form), and the objects they point to are freed once no list holds them. */
TEST(refs_in_lists_match_the_embedded_runtime)
{
    int64_t local[NESTED_RESULTS], remote[NESTED_RESULTS];
    dray_runtime *lrt;
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 2;
    cfg.address = "";
    cfg.progress = 0;
    ASSERT_OK(dray_init(&cfg, &lrt));
    nested_program(lrt, local);
    ASSERT_OK(dray_shutdown(lrt, DRAY_SHUTDOWN_DRAIN));
    fx f;
    fx_start(&f);
    spawn_node(&f, NULL);
    spawn_node(&f, NULL);
    dray_runtime *rt = connect_driver(&f, 2);
    nested_program(rt, remote);
    for (int i = 0; i < NESTED_RESULTS; i++) {
        fprintf(stderr, "result %d: embedded %lld, cluster %lld\n", i, (long long)local[i],
                (long long)remote[i]);
        ASSERT_EQ(remote[i], local[i]);
    }
    /* Closed forms: 1 MB + 5 + 100 bytes + 42 + a failed ref (DRAY_ETASK). */
    ASSERT_EQ(local[0], made_sum(1 << 20) + 5 + made_sum(100) + 42 - 1000 * (int64_t)-DRAY_ETASK);
    ASSERT_EQ(local[1], made_sum(300000) + 1);
    ASSERT_EQ(local[2], 50 + made_sum(50) + 100 + 9);
    ASSERT_EQ(local[3], 8 * (300000 + made_sum(300000) + 600000 + 9));
    ASSERT_EQ(local[4], made_sum(2 << 20));
    ASSERT_EQ(local[5], made_sum(3 << 20));
    ASSERT_EQ(local[6], local[0]);
    /* Every object is gone from the nodes once nothing holds it. */
    for (int w = 0; w < 2; w++)
        wait_node(&f, f.workers[w], "objects", 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    fx_stop(&f);
}

RUN_TESTS(T_(worker_main), T_(refs_in_lists_match_the_embedded_runtime),
          T_(node_pauses_above_pause_fraction_and_resumes),
          T_(paused_node_keeps_spilling), T_(node_terminates_above_terminate_fraction),
          T_(bad_fractions_are_refused))
