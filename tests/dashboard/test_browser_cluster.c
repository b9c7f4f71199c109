/* The head's dashboard in a real browser while a cluster works: a head and two worker processes of
 * this executable, a driver thread running tasks of three functions (some failing, some placed on
 * each node), and tests/dashboard/browser_cluster.mjs driving headless Debian chromium against the
 * head's page; when it asks (files in the screenshot folder) a third node joins and is then killed.
 * Screenshots: BUILD/dashboard-screens/cluster-*.png. Skipped only without chromium or node. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include "cluster_fx.h"

DRAY_FUNCTION(bc_square)
{
    *result = dray_int(args[0].u.i * args[0].u.i);
    return DRAY_OK;
}

DRAY_FUNCTION(bc_slow)
{
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    *result = dray_int(args[0].u.i);
    return DRAY_OK;
}

DRAY_FUNCTION(bc_boom)
{
    return dray_ctx_fail(ctx, DRAY_ETASK, "boom %lld", (long long)args[0].u.i);
}

TEST(worker_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

typedef struct load {
    dray_runtime *rt;
    _Atomic int stop, extra; /* extra: the third node is up, give it work */
    _Atomic long batches;
} load;

static void put(dray_runtime *rt, const char *fn, int64_t x, const char *res, dray_ref **out)
{
    dray_resource r = {res, 1};
    dray_task_opts o = {0};
    o.resources = &r;
    o.n_resources = res ? 1 : 0;
    dray_value a = dray_int(x);
    if (dray_submit(rt, fn, &a, 1, res ? &o : NULL, out))
        *out = NULL;
}

static void *load_main(void *arg)
{
    load *l = arg;
    while (!atomic_load(&l->stop)) {
        dray_ref *refs[64];
        int n = 0;
        for (int i = 0; i < 40; i++)
            put(l->rt, "bc_square", i, NULL, &refs[n++]);
        for (int i = 0; i < 6; i++)
            put(l->rt, "bc_slow", i, NULL, &refs[n++]);
        put(l->rt, "bc_boom", 1, NULL, &refs[n++]);
        put(l->rt, "bc_slow", 1, "left", &refs[n++]);
        put(l->rt, "bc_slow", 2, "right", &refs[n++]);
        if (atomic_load(&l->extra))
            put(l->rt, "bc_slow", 3, "extra", &refs[n++]);
        for (int i = 0; i < n; i++) {
            dray_value v = dray_null();
            if (refs[i] && dray_get(l->rt, refs[i], 20000, &v) != DRAY_ETIMEDOUT)
                dray_value_release(&v);
            dray_ref_release(refs[i]);
        }
        atomic_fetch_add(&l->batches, 1);
    }
    return NULL;
}

static bool file_exists(const char *dir, const char *name)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

static int node_count(const fx *f)
{
    dray_value st;
    if (dray_cluster_status(f->c.addr, &st))
        return -1;
    int alive = 0;
    const dray_value *nodes = dray_map_get(&st, "nodes");
    for (size_t i = 0; i < dray_list_len(nodes); i++)
        alive += dray_map_get(dray_list_get(nodes, i), "alive")->u.b;
    dray_value_release(&st);
    return alive;
}

typedef struct steer {
    fx *f;
    load *l;
    const char *shots;
    _Atomic int done;
} steer;

/* Reacts to the page script's requests: a node joins, then is killed. */
static void *steer_main(void *arg)
{
    steer *s = arg;
    fx *f = s->f;
    bool joined = false, killed = false;
    while (!atomic_load(&s->done) && !killed) {
        if (!joined && file_exists(s->shots, "cluster-join")) {
            fx_add_worker(f, "extra=1", NULL);
            for (int i = 0; i < 200 && node_count(f) < 3; i++)
                nap_ms(50);
            atomic_store(&s->l->extra, 1);
            joined = true;
        }
        if (joined && file_exists(s->shots, "cluster-kill")) {
            atomic_store(&s->l->extra, 0);
            nap_ms(300);
            kill(f->c.workers[2], SIGKILL);
            waitpid(f->c.workers[2], NULL, 0);
            f->c.workers[2] = -1;
            killed = true;
        }
        nap_ms(50);
    }
    return NULL;
}

TEST(head_page_shows_cluster_work)
{
    if (access("/usr/bin/chromium", X_OK) || system("command -v node >/dev/null 2>&1")) {
        printf("SKIP: needs /usr/bin/chromium and node (tools/install-deps.sh installs them)\n");
        return;
    }
    const char *bd = getenv("DRAY_BUILD_DIR");
    char build[4096], cmd[9000], npm[4096] = "", shots[4200];
    snprintf(build, sizeof build, "%s", bd ? bd : "build");
    snprintf(cmd, sizeof cmd, "bash tests/dashboard/setup-browser.sh '%s'", build);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    if (!fgets(npm, sizeof npm, p))
        npm[0] = 0;
    int rc = pclose(p);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
        printf("SKIP: chromium or node missing\n");
        return;
    }
    ASSERT_EQ(rc, 0);
    npm[strcspn(npm, "\n")] = 0;
    snprintf(shots, sizeof shots, "%s/dashboard-screens", build);
    mkdir(shots, 0755);
    snprintf(cmd, sizeof cmd, "rm -f '%s/cluster-join' '%s/cluster-kill'", shots, shots);
    ASSERT_EQ(system(cmd), 0);

    fx f;
    fx_start(&f, NULL);
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 1;
    cfg.progress = 0;
    cfg.address = f.c.addr;
    load l = {0};
    ASSERT_OK(dray_init(&cfg, &l.rt));
    int a = fx_node_of(&f, f.c.workers[0], NULL), b = fx_node_of(&f, f.c.workers[1], NULL);
    pthread_t lt, st;
    ASSERT_EQ(pthread_create(&lt, NULL, load_main, &l), 0);
    steer s = {&f, &l, shots, 0};
    ASSERT_EQ(pthread_create(&st, NULL, steer_main, &s), 0);
    snprintf(cmd, sizeof cmd,
             "DRAY_NPM_DIR='%s' timeout 240 node tests/dashboard/browser_cluster.mjs "
             "'http://127.0.0.1:%d/' '%s' %d %d",
             npm, f.dport, shots, a, b);
    rc = system(cmd);
    atomic_store(&s.done, 1);
    pthread_join(st, NULL);
    atomic_store(&l.stop, 1);
    pthread_join(lt, NULL);
    ASSERT_GT(atomic_load(&l.batches), 0);
    ASSERT_OK(dray_shutdown(l.rt, DRAY_SHUTDOWN_DRAIN));
    ASSERT_TRUE(fx_stop(&f)); /* no sanitizer report from the head */
    ASSERT_TRUE(WIFEXITED(rc));
    ASSERT_EQ(WEXITSTATUS(rc), 0);
}

RUN_TESTS(T_(worker_main), T_(head_page_shows_cluster_work))
