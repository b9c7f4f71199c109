/* Lazy graphs: random DAGs checked against a sequential evaluation, culling, fusion of linear chains,
 * tree reductions, keys, refs mixed in both directions, and errors inside graphs. */
#include <unistd.h>

#include "dray/dray.h"
#include "test.h"

/* f(args) = (sum of int args * 31 + number of args) mod 1e9+7: order-sensitive enough to catch a
 * wrong wiring. */
DRAY_FUNCTION(g_mix)
{
    int64_t h = (int64_t)nargs;
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].type != DRAY_T_INT)
            return dray_ctx_fail(ctx, DRAY_ETYPE, "argument %zu is not an int", i);
        h = (h * 31 + args[i].u.i * (int64_t)(i + 1)) % 1000000007;
    }
    *result = dray_int(h);
    return DRAY_OK;
}

DRAY_FUNCTION(g_inc)
{
    *result = dray_int(args[0].u.i + 1);
    return DRAY_OK;
}

DRAY_FUNCTION(g_sum)
{
    int64_t s = 0;
    for (size_t i = 0; i < nargs; i++)
        s += args[i].u.i;
    *result = dray_int(s);
    return DRAY_OK;
}

DRAY_FUNCTION(g_boom)
{
    return dray_ctx_fail(ctx, DRAY_EIO, "no such file");
}

static int64_t mix_ref(const int64_t *vals, size_t n)
{
    int64_t h = (int64_t)n;
    for (size_t i = 0; i < n; i++)
        h = (h * 31 + vals[i] * (int64_t)(i + 1)) % 1000000007;
    return h;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static dray_runtime *start(void)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 2;
    dray_runtime *rt;
    ASSERT_OK(dray_init(&cfg, &rt));
    return rt;
}

TEST(random_dags_match_sequential)
{
    dray_runtime *rt = start();
    const dray_function *mix = dray_function_find("g_mix");
    for (int round = 0; round < 5; round++) {
        const size_t N = 3000;
        dray_graph *g;
        ASSERT_OK(dray_graph_create(rt, &g));
        int64_t *expect = malloc(N * sizeof(int64_t));
        for (size_t i = 0; i < N; i++) {
            size_t k = i == 0 ? 0 : rnd() % 4;
            dray_value args[5];
            int64_t vals[5];
            size_t n = 0;
            for (size_t j = 0; j < k; j++) {
                size_t dep = i - 1 - rnd() % (i < 50 ? i : 50);
                args[n] = dray_value_of_node((dray_node){(uint32_t)dep});
                vals[n++] = expect[dep];
            }
            int64_t c = (int64_t)(rnd() % 1000);
            args[n] = dray_int(c);
            vals[n++] = c;
            expect[i] = mix_ref(vals, n);
            ASSERT_OK(dray_graph_add(g, NULL, mix, args, n, NULL));
        }
        /* Ask for a few random outputs. */
        dray_node outs[4];
        dray_value res[4];
        for (int j = 0; j < 4; j++)
            outs[j].id = (uint32_t)(rnd() % N);
        ASSERT_OK(dray_graph_compute(g, outs, 4, res));
        for (int j = 0; j < 4; j++) {
            ASSERT_EQ(res[j].u.i, expect[outs[j].id]);
            dray_value_release(&res[j]);
        }
        dray_graph_stats st;
        dray_graph_last_stats(g, &st);
        ASSERT_EQ(st.nodes, N);
        ASSERT_EQ(st.tasks + st.fused + st.culled, N);
        free(expect);
        dray_graph_destroy(g);
    }
    /* Every intermediate is released; a worker may still drop its last reference to a task just
     * after compute returned, so allow it a moment (bounded). */
    dray_stats s;
    for (int tries = 0; tries < 2000; tries++) {
        ASSERT_OK(dray_runtime_stats(rt, &s));
        if (s.objects_live == 0)
            break;
        usleep(1000);
    }
    ASSERT_EQ(s.objects_live, 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(cull_and_fuse)
{
    dray_runtime *rt = start();
    dray_graph *g;
    ASSERT_OK(dray_graph_create(rt, &g));
    /* chain: a -> b -> c -> d (output), plus an unused branch e from a. */
    dray_node a, b, c, d, e;
    dray_value zero = dray_int(0);
    ASSERT_OK(dray_graph_add_named(g, "a", "g_inc", &zero, 1, &a));
    dray_value va = dray_value_of_node(a);
    ASSERT_OK(dray_graph_add_named(g, "b", "g_inc", &va, 1, &b));
    dray_value vb = dray_value_of_node(b);
    ASSERT_OK(dray_graph_add_named(g, "c", "g_inc", &vb, 1, &c));
    dray_value vc = dray_value_of_node(c);
    ASSERT_OK(dray_graph_add_named(g, "d", "g_inc", &vc, 1, &d));
    ASSERT_OK(dray_graph_add_named(g, "e", "g_inc", &va, 1, &e));
    dray_value out;
    ASSERT_OK(dray_graph_compute(g, &d, 1, &out));
    ASSERT_EQ(out.u.i, 4);
    dray_graph_stats st;
    dray_graph_last_stats(g, &st);
    ASSERT_EQ(st.culled, 1);
    ASSERT_EQ(st.fused, 3);
    ASSERT_EQ(st.tasks, 1);
    /* Asking for b and d: b is an output, so only c fuses into d. */
    dray_node both[2] = {b, d};
    dray_value res[2];
    ASSERT_OK(dray_graph_compute(g, both, 2, res));
    ASSERT_EQ(res[0].u.i, 2);
    ASSERT_EQ(res[1].u.i, 4);
    dray_graph_last_stats(g, &st);
    ASSERT_EQ(st.tasks, 2);
    ASSERT_EQ(st.fused, 2);
    /* Keys. */
    dray_node found;
    ASSERT_OK(dray_graph_find(g, "c", &found));
    ASSERT_EQ(found.id, c.id);
    ASSERT_STATUS(dray_graph_find(g, "zz", &found), DRAY_ENOTFOUND);
    ASSERT_STATUS(dray_graph_add_named(g, "a", "g_inc", &zero, 1, NULL), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "duplicate key 'a'");
    dray_value bad = dray_value_of_node((dray_node){999});
    ASSERT_STATUS(dray_graph_add_named(g, NULL, "g_inc", &bad, 1, NULL), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "999");
    ASSERT_STATUS(dray_graph_add_named(g, NULL, "nope", NULL, 0, NULL), DRAY_ENOTFOUND);
    dray_graph_destroy(g);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(tree_reduction)
{
    dray_runtime *rt = start();
    const dray_function *sum = dray_function_find("g_sum");
    const dray_function *inc = dray_function_find("g_inc");
    dray_graph *g;
    ASSERT_OK(dray_graph_create(rt, &g));
    size_t n = 100000;
    dray_node *level = malloc(n * sizeof(dray_node));
    for (size_t i = 0; i < n; i++) {
        dray_value v = dray_int((int64_t)i);
        ASSERT_OK(dray_graph_add(g, NULL, inc, &v, 1, &level[i]));
    }
    while (n > 1) {
        size_t m = 0;
        for (size_t i = 0; i < n; i += 4) {
            dray_value args[4];
            size_t k = 0;
            for (; k < 4 && i + k < n; k++)
                args[k] = dray_value_of_node(level[i + k]);
            ASSERT_OK(dray_graph_add(g, NULL, sum, args, k, &level[m++]));
        }
        n = m;
    }
    dray_value out;
    ASSERT_OK(dray_graph_compute(g, level, 1, &out));
    ASSERT_EQ(out.u.i, 100000LL * 99999 / 2 + 100000);
    free(level);
    dray_graph_destroy(g);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(refs_in_graphs_and_back)
{
    dray_runtime *rt = start();
    dray_value forty = dray_int(40);
    dray_ref *p;
    ASSERT_OK(dray_put(rt, &forty, &p));
    dray_graph *g;
    ASSERT_OK(dray_graph_create(rt, &g));
    dray_value arg = dray_value_of_ref(p);
    dray_node a, b;
    ASSERT_OK(dray_graph_add_named(g, "a", "g_inc", &arg, 1, &a));
    dray_value va = dray_value_of_node(a);
    ASSERT_OK(dray_graph_add_named(g, "b", "g_inc", &va, 1, &b));
    dray_ref *r;
    ASSERT_OK(dray_graph_submit(g, &b, 1, &r));
    dray_graph_destroy(g); /* the submitted work does not need the graph */
    /* The graph's output feeds an eager task. */
    dray_value ra = dray_value_of_ref(r);
    dray_ref *e;
    ASSERT_OK(dray_submit(rt, "g_inc", &ra, 1, NULL, &e));
    dray_value v;
    ASSERT_OK(dray_get(rt, e, -1, &v));
    ASSERT_EQ(v.u.i, 43);
    dray_ref_release(e);
    dray_ref_release(r);
    dray_ref_release(p);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(errors_in_graphs)
{
    dray_runtime *rt = start();
    dray_graph *g;
    ASSERT_OK(dray_graph_create(rt, &g));
    dray_node a, b, c;
    ASSERT_OK(dray_graph_add_named(g, "load", "g_boom", NULL, 0, &a));
    dray_value va = dray_value_of_node(a);
    ASSERT_OK(dray_graph_add_named(g, "clean", "g_inc", &va, 1, &b)); /* fused with load */
    dray_value vb[2] = {dray_value_of_node(b), dray_int(1)};
    ASSERT_OK(dray_graph_add_named(g, "total", "g_sum", vb, 2, &c));
    dray_value out = dray_int(-1);
    ASSERT_STATUS(dray_graph_compute(g, &c, 1, &out), DRAY_EDEP);
    ASSERT_CONTAINS(dray_last_error(), "g_boom: no such file");
    ASSERT_EQ(out.type, DRAY_T_INT); /* untouched */
    dray_graph_destroy(g);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

DRAY_FUNCTION(g_sleep)
{
    usleep(2000);
    *result = dray_int(1);
    return DRAY_OK;
}

DRAY_FUNCTION(g_one)
{
    *result = dray_int(1);
    return DRAY_OK;
}

/* Computes the sum of 200 tasks of `fn` with the progress bar drawn into a file; returns what
 * was drawn (owned by the caller). */
static char *progress_of(const char *fn)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 2;
    cfg.progress = 1; /* draw even though stdout is not a terminal */
    dray_runtime *rt;
    ASSERT_OK(dray_init(&cfg, &rt));
    dray_graph *g;
    ASSERT_OK(dray_graph_create(rt, &g));
    dray_value parts[200];
    for (int i = 0; i < 200; i++) {
        dray_node n;
        ASSERT_OK(dray_graph_add_named(g, NULL, fn, NULL, 0, &n));
        parts[i] = dray_value_of_node(n);
    }
    dray_node total;
    ASSERT_OK(dray_graph_add_named(g, "total", "g_sum", parts, 200, &total));
    /* Capture stdout in a file while computing. */
    char path[] = "/tmp/dray-progress-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    dray_value out;
    dray_status st = dray_graph_compute(g, &total, 1, &out);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    ASSERT_OK(st);
    ASSERT_EQ(out.u.i, 200);
    char *buf = calloc(1, 8192);
    ASSERT_TRUE(buf != NULL);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, 8191);
    close(fd);
    unlink(path);
    ASSERT_GT(n, 0);
    dray_graph_destroy(g);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    return buf;
}

TEST(progress_bar)
{
    char *buf = progress_of("g_sleep");
    ASSERT_CONTAINS(buf, "compute");
    ASSERT_CONTAINS(buf, "201/201 tasks"); /* the last redraw shows everything done */
    ASSERT_CONTAINS(buf, "ETA");
    free(buf);
    /* Tasks that finish while the graph is still being submitted count too. */
    buf = progress_of("g_one");
    ASSERT_CONTAINS(buf, "201/201 tasks");
    free(buf);
}

RUN_TESTS(T_(progress_bar), T_(random_dags_match_sequential), T_(cull_and_fuse), T_(tree_reduction),
          T_(refs_in_graphs_and_back), T_(errors_in_graphs))
