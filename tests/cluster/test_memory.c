/* Worker memory and object lifetimes on a real cluster (head + worker processes on 127.0.0.1):
 * Dask's process-memory thresholds (a node whose resident memory passes the pause fraction of its
 * limit stops starting tasks, drivers place new ones elsewhere, `dray status` says "paused"; it
 * keeps spilling and resumes once memory is back under it; past the terminate fraction it exits).
 * (Refs nested in lists and maps: test_nested_refs.c.) */
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
#include "cluster_tasks.h"

/* ==== Task functions (the worker processes are this executable) ==== */

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
 * NULL-terminated) added (tests/cluster_fixture.h; its log is <dir>/worker-<index>.log). Under ASan
 * freed memory would sit in its quarantine: no quarantine, so process memory falls when objects are
 * freed, as it does without ASan. */
static pid_t spawn_node(fx *f, const char *const *env)
{
    char asan[1024];
    const char *a = getenv("ASAN_OPTIONS"), *all[16];
    snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%squarantine_size_mb=0", a ? a : "",
             a && *a ? ":" : "");
    size_t n = 0;
    all[n++] = asan;
    for (const char *const *e = env; e && *e && n < 15; e++)
        all[n++] = *e;
    all[n] = NULL;
    return test_cluster_add_worker_env(f, all);
}

static void fx_start(fx *f)
{
    test_cluster_start(f, 0);
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
        ct_sleep_ms(50);
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
        ct_sleep_ms(50);
    }
    ASSERT_GT(rss, 0);
    for (int i = 0; i < 2; i++) {
        ct_sleep_ms(550);
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
        ASSERT_OK(dray_submit(rt, "ct_pid", NULL, 0, NULL, &r));
        dray_value v;
        ASSERT_OK(dray_get(rt, r, 20000, &v));
        ASSERT_EQ(v.u.i, probe);
        dray_ref_release(r);
    }
    int64_t base = idle_rss(f, probe);
    dray_value size = dray_int(OBJ);
    dray_ref *obj;
    ASSERT_OK(dray_submit(rt, "ct_make_bytes", &size, 1, NULL, &obj));
    ASSERT_OK(dray_wait(rt, &obj, 1, 1, 20000, NULL, NULL));
    int64_t cost = idle_rss(f, probe) - base;
    dray_ref_release(obj);
    if (cost < OBJ)
        cost = OBJ;
    fprintf(stderr, "probe node: %.1f MB resident, %.1f MB more with one %d MB result\n",
            (double)base / 1e6, (double)cost / 1e6, OBJ >> 20);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop_worker(f, f->nworkers - 1);
    return (int64_t)((double)base + objects * (double)cost) * 10 / 8;
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
        dray_ref *r = submit_on(rt, "ct_make_bytes", &size, 1, "small");
        if (dray_wait(rt, &r, 1, 1, 15000, NULL, NULL) != DRAY_OK) {
            waiting = r; /* the node paused before running it */
            break;
        }
        objs[nobj++] = r;
        ct_sleep_ms(20);
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
        dray_ref *r = submit_on(rt, "ct_pid", NULL, 0, NULL);
        ASSERT_EQ(ct_get_int(rt, r), big);
        dray_ref_release(r);
    }
    /* Consumers of its objects go to the other node (they pull the bytes) instead of the holder. */
    int64_t local0 = ct_client_stat(rt, "placed_local");
    int64_t spill0 = ct_client_stat(rt, "placed_spill");
    for (int i = 0; i < 3; i++) {
        dray_value a = dray_value_of_ref(objs[i % nobj]);
        dray_ref *r = submit_on(rt, "ct_sum_bytes", &a, 1, NULL);
        ASSERT_EQ(ct_get_int(rt, r), ct_made_sum(OBJ));
        dray_ref_release(r);
    }
    ASSERT_EQ(ct_client_stat(rt, "placed_local"), local0);
    ASSERT_EQ(ct_client_stat(rt, "placed_spill") - spill0, 3);
    /* Tasks only it can run wait (they do not start while it is paused). */
    ct_sleep_ms(600); /* a heartbeat with the final count */
    int64_t done_at_pause = node_int(&f, small, "tasks_done");
    dray_ref *later[2];
    dray_value small_size = dray_int(1 << 20);
    for (int i = 0; i < 2; i++)
        later[i] = submit_on(rt, "ct_make_bytes", &small_size, 1, "small");
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
        ASSERT_EQ(s, ct_made_sum(OBJ));
        dray_value_release(&v);
        dray_ref_release(objs[i]);
    }
    wait_node(&f, small, "paused", 0);
    ASSERT_OK(dray_wait(rt, later, 2, 2, 30000, NULL, NULL));
    for (int i = 0; i < 2; i++) {
        dray_value a = dray_value_of_ref(later[i]);
        dray_ref *r = submit_on(rt, "ct_sum_bytes", &a, 1, "small");
        ASSERT_EQ(ct_get_int(rt, r), ct_made_sum(1 << 20));
        dray_ref_release(r);
        dray_ref_release(later[i]);
    }
    if (waiting) {
        dray_value a = dray_value_of_ref(waiting);
        dray_ref *r = submit_on(rt, "ct_sum_bytes", &a, 1, "small");
        ASSERT_EQ(ct_get_int(rt, r), ct_made_sum(OBJ));
        dray_ref_release(r);
        dray_ref_release(waiting);
    }
    /* It takes unconstrained work again. */
    bool ran_there = false;
    for (int i = 0; i < 20 && !ran_there; i++) {
        dray_ref *r = submit_on(rt, "ct_pid", NULL, 0, NULL);
        ran_there = ct_get_int(rt, r) == small;
        dray_ref_release(r);
    }
    ASSERT_TRUE(ran_there);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop_worker(&f, si);
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
        objs[i] = submit_on(rt, "ct_make_bytes", &size, 1, "small");
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
    dray_ref *q = submit_on(rt, "ct_pid", NULL, 0, "small");
    size_t ready = 99;
    ASSERT_STATUS(dray_wait(rt, &q, 1, 1, 800, NULL, &ready), DRAY_ETIMEDOUT);
    ASSERT_EQ(ready, 0);
    ASSERT_EQ(node_int(&f, small, "paused"), 1);
    int fd = open(flag, O_WRONLY | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
    ASSERT_EQ(ct_get_int(rt, h), (96 << 20) / 4096);
    wait_node(&f, small, "paused", 0);
    ASSERT_EQ(ct_get_int(rt, q), small);
    for (int i = 0; i < 2; i++) {
        dray_value a = dray_value_of_ref(objs[i]);
        dray_ref *r = submit_on(rt, "ct_sum_bytes", &a, 1, "small");
        ASSERT_EQ(ct_get_int(rt, r), ct_made_sum(4 << 20));
        dray_ref_release(r);
        dray_ref_release(objs[i]);
    }
    int64_t rb = 0;
    for (int i = 0; i < 100 && (rb = node_int(&f, small, "read_back")) < 2; i++)
        ct_sleep_ms(50); /* heartbeats bring the counters */
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
        objs[i] = submit_on(rt, "ct_make_bytes", &size, 1, "doomed");
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 600 && got == 0; i++) {
        got = waitpid(doomed, &st, WNOHANG);
        if (!got)
            ct_sleep_ms(50);
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
        dray_ref *r = submit_on(rt, "ct_pid", NULL, 0, NULL);
        ASSERT_EQ(ct_get_int(rt, r), other);
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


RUN_TESTS(T_(worker_main), T_(node_pauses_above_pause_fraction_and_resumes),
          T_(paused_node_keeps_spilling), T_(node_terminates_above_terminate_fraction),
          T_(bad_fractions_are_refused))
