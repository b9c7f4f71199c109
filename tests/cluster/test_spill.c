/* Spillback of nested tasks: a task on a worker node that fans out many nested tasks keeps the
 * first ones on its node and sends the rest to the other node once its own is saturated; their
 * results (object arguments, refs inside lists, refs returned) come back to it; a killed node's
 * spilled tasks are retried or fail clearly; DRAY_SPILL=0 keeps them all on the one node. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dray/cluster.h"
#include "dray/core.h"
#include "test.h"
#include "cluster_fixture.h"

#define WAIT_MS 30000 /* every wait is bounded: a hang fails the test */

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static dray_status pair(int64_t a, int64_t b, dray_value *out)
{
    dray_value items[2] = {dray_int(a), dray_int(b)};
    return dray_list_create(items, 2, out);
}

/* [pid, i*i + 7] after args[1] ms. */
DRAY_FUNCTION(sp_work)
{
    (void)ctx, (void)nargs;
    sleep_ms(args[1].u.i);
    return pair(getpid(), args[0].u.i * args[0].u.i + 7, result);
}

/* The byte pattern of object `seed`: byte k is (k * 13 + seed) mod 251. */
static uint8_t pattern(int64_t k, int64_t seed)
{
    return (uint8_t)((k * 13 + seed) % 251);
}

static dray_status make_bytes(int64_t n, int64_t seed, dray_value *out)
{
    uint8_t *p;
    dray_status st = dray_bytes_create_uninit((size_t)n, out, (void **)&p);
    for (int64_t k = 0; !st && k < n; k++)
        p[k] = pattern(k, seed);
    return st;
}

static int64_t sum_bytes(const dray_value *v)
{
    size_t n = 0;
    const uint8_t *p = dray_bytes_data(v, &n);
    int64_t s = 0;
    for (size_t k = 0; p && k < n; k++)
        s += p[k];
    return s;
}

/* [pid, sum of the bytes of args[0] + 1000 * args[1]] after args[2] ms. */
DRAY_FUNCTION(sp_sum_bytes)
{
    (void)ctx, (void)nargs;
    sleep_ms(args[2].u.i);
    if (args[0].type != DRAY_T_BYTES)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "expected bytes, got %s",
                             dray_type_name((dray_type)args[0].type));
    return pair(getpid(), sum_bytes(&args[0]) + 1000 * args[1].u.i, result);
}

/* args[0] is a list holding one ref to bytes: [pid, their sum + 1000 * args[1]] after args[2] ms. */
DRAY_FUNCTION(sp_sum_listed)
{
    (void)nargs;
    sleep_ms(args[2].u.i);
    const dray_value *in = dray_list_get(&args[0], 0);
    if (args[0].type != DRAY_T_LIST || !in || in->type != DRAY_T_REF)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "expected a list holding a ref");
    dray_value b;
    dray_status st = dray_get(dray_ctx_runtime(ctx), in->u.ref, WAIT_MS, &b);
    if (st)
        return st;
    st = pair(getpid(), sum_bytes(&b) + 1000 * args[1].u.i, result);
    dray_value_release(&b);
    return st;
}

/* A list holding a ref to a put of args[0] bytes of pattern args[1] (a ref returned in a list),
 * after args[2] ms. */
DRAY_FUNCTION(sp_make_listed)
{
    (void)nargs;
    sleep_ms(args[2].u.i);
    dray_value b, r;
    dray_ref *ref;
    dray_status st = make_bytes(args[0].u.i, args[1].u.i, &b);
    if (st)
        return st;
    st = dray_put(dray_ctx_runtime(ctx), &b, &ref);
    dray_value_release(&b);
    if (st)
        return st;
    r = dray_value_of_ref(ref);
    st = dray_list_create(&r, 1, result);
    dray_ref_release(ref);
    return st;
}

/* Waits for refs[0..n) in order into out[] (owned); a failure fails the calling task naming it. */
static dray_status collect(dray_ctx *ctx, dray_ref **refs, int64_t n, dray_value *out)
{
    dray_status st = DRAY_OK;
    int64_t got = 0;
    for (; got < n && !st; got++) {
        st = dray_get(dray_ctx_runtime(ctx), refs[got], WAIT_MS, &out[got]);
        if (st) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s", dray_last_error());
            st = dray_ctx_fail(ctx, st, "nested task %lld: %s", (long long)got, msg);
        }
    }
    for (int64_t i = 0; st && i < got; i++) /* the failed one holds its error value */
        dray_value_release(&out[i]);
    for (int64_t i = 0; i < n; i++)
        dray_ref_release(refs[i]);
    return st;
}

/* Fans out args[0] sp_work tasks of args[1] ms each from this node: [this pid, [[pid, value]...]]. */
DRAY_FUNCTION(sp_fanout)
{
    (void)nargs;
    int64_t n = args[0].u.i;
    dray_ref **refs = calloc((size_t)n, sizeof(*refs));
    dray_value *vals = calloc((size_t)n + 1, sizeof(*vals));
    if (!refs || !vals) {
        free(refs);
        free(vals);
        return DRAY_ENOMEM;
    }
    dray_status st = DRAY_OK;
    int64_t made = 0;
    for (; made < n && !st; made++) {
        dray_value a[2] = {dray_int(made), args[1]};
        st = dray_submit(dray_ctx_runtime(ctx), "sp_work", a, 2, NULL, &refs[made]);
    }
    if (st) {
        for (int64_t i = 0; i < made - 1; i++)
            dray_ref_release(refs[i]);
    } else if (!(st = collect(ctx, refs, n, vals))) {
        dray_value items[2] = {dray_int(getpid()), dray_null()};
        st = dray_list_create(vals, (size_t)n, &items[1]);
        if (!st)
            st = dray_list_create(items, 2, result);
        dray_value_release(&items[1]);
        for (int64_t i = 0; i < n; i++)
            dray_value_release(&vals[i]);
    }
    free(refs);
    free(vals);
    return st;
}

/* On this node: puts an args[0]-byte object (pattern 5) and fans out args[1] tasks of each kind
 * reading it: the ref as an argument (sp_sum_bytes), the ref inside a list (sp_sum_listed), and
 * tasks returning a ref inside a list (sp_make_listed, pattern i) whose bytes this task sums; each
 * sleeps args[2] ms. Returns [this pid, [[pid, value]...]] in that order (the third kind's pid is 0). */
DRAY_FUNCTION(sp_fanout_objects)
{
    (void)nargs;
    dray_runtime *rt = dray_ctx_runtime(ctx);
    int64_t size = args[0].u.i, k = args[1].u.i, n = 3 * k;
    dray_ref **refs = calloc((size_t)n, sizeof(*refs)), *obj = NULL;
    dray_value *vals = calloc((size_t)n, sizeof(*vals)), b;
    dray_status st = !refs || !vals ? DRAY_ENOMEM : make_bytes(size, 5, &b);
    if (!st) {
        st = dray_put(rt, &b, &obj);
        dray_value_release(&b);
    }
    int64_t made = 0;
    for (; !st && made < n; made++) {
        int64_t i = made % k;
        dray_value r = dray_value_of_ref(obj), a[3] = {r, dray_int(i), args[2]}, list;
        if (made < k) {
            st = dray_submit(rt, "sp_sum_bytes", a, 3, NULL, &refs[made]);
        } else if (made < 2 * k) {
            if (!(st = dray_list_create(&r, 1, &list))) {
                a[0] = list;
                st = dray_submit(rt, "sp_sum_listed", a, 3, NULL, &refs[made]);
                dray_value_release(&list);
            }
        } else {
            dray_value m[3] = {dray_int(size / 4), dray_int(i), args[2]};
            st = dray_submit(rt, "sp_make_listed", m, 3, NULL, &refs[made]);
        }
    }
    dray_ref_release(obj);
    if (st) {
        for (int64_t i = 0; i < made - 1; i++)
            dray_ref_release(refs[i]);
    } else if (!(st = collect(ctx, refs, n, vals))) {
        /* The third kind returned [ref]: sum the bytes behind it here. */
        for (int64_t i = 2 * k; i < n && !st; i++) {
            const dray_value *in = dray_list_get(&vals[i], 0);
            dray_value got;
            if (vals[i].type != DRAY_T_LIST || !in || in->type != DRAY_T_REF)
                st = dray_ctx_fail(ctx, DRAY_ETYPE, "task %lld: expected a list holding a ref",
                                   (long long)i);
            else if (!(st = dray_get(rt, in->u.ref, WAIT_MS, &got))) {
                dray_value_release(&vals[i]);
                st = pair(0, sum_bytes(&got), &vals[i]);
                dray_value_release(&got);
            }
        }
        dray_value items[2] = {dray_int(getpid()), dray_null()};
        if (!st)
            st = dray_list_create(vals, (size_t)n, &items[1]);
        if (!st)
            st = dray_list_create(items, 2, result);
        dray_value_release(&items[1]);
        for (int64_t i = 0; i < n; i++)
            dray_value_release(&vals[i]);
    }
    free(refs);
    free(vals);
    return st;
}

/* sp_work, but not registered by name: no other node could run it. */
static dray_status hidden_work(dray_ctx *ctx, const dray_value *args, size_t nargs,
                               dray_value *result)
{
    (void)ctx, (void)nargs;
    sleep_ms(args[1].u.i);
    return pair(getpid(), args[0].u.i * args[0].u.i + 7, result);
}
static const dray_function hidden_fn = {"sp.hidden_work", hidden_work, NULL};

/* This node's count of spilled tasks (its local-first client's stats). */
static int64_t node_spilled(dray_ctx *ctx)
{
    dray_value st;
    if (dray_cluster_client_stats(dray_ctx_runtime(ctx), &st))
        return -1;
    int64_t n = dray_map_get(&st, "tasks_spilled")->u.i;
    dray_value_release(&st);
    return n;
}

/* Submits args[0] hidden_work tasks of args[1] ms from this node: [how many ran elsewhere, how many
 * this node spilled meanwhile] (both 0: another node cannot run an unregistered function, so it is
 * never sent, however deep the queue). */
DRAY_FUNCTION(sp_fanout_hidden)
{
    (void)nargs;
    int64_t n = args[0].u.i, elsewhere = 0, spilled0 = node_spilled(ctx);
    dray_ref **refs = calloc((size_t)n, sizeof(*refs));
    dray_value *vals = calloc((size_t)n, sizeof(*vals));
    dray_status st = refs && vals ? DRAY_OK : DRAY_ENOMEM;
    int64_t made = 0;
    for (; made < n && !st; made++) {
        dray_value a[2] = {dray_int(made), args[1]};
        st = dray_submit_fn(dray_ctx_runtime(ctx), &hidden_fn, a, 2, NULL, &refs[made]);
    }
    if (st) {
        for (int64_t i = 0; i < made - 1; i++)
            dray_ref_release(refs[i]);
    } else if (!(st = collect(ctx, refs, n, vals))) {
        for (int64_t i = 0; i < n; i++) {
            if (dray_list_get(&vals[i], 1)->u.i != i * i + 7 && !st)
                st = dray_ctx_fail(ctx, DRAY_ETASK, "hidden task %lld: wrong value", (long long)i);
            elsewhere += dray_list_get(&vals[i], 0)->u.i != getpid();
            dray_value_release(&vals[i]);
        }
        if (!st)
            st = pair(elsewhere, node_spilled(ctx) - spilled0, result);
    }
    free(refs);
    free(vals);
    return st;
}

DRAY_FUNCTION(sp_inc)
{
    (void)ctx, (void)nargs;
    *result = dray_int(args[0].u.i + 1);
    return DRAY_OK;
}

/* On a node: a lazy graph that is a chain of args[0] increments from 0: [its value, nodes fused]. */
DRAY_FUNCTION(sp_graph_chain)
{
    (void)nargs;
    dray_graph *g;
    dray_status st = dray_graph_create(dray_ctx_runtime(ctx), &g);
    if (st)
        return st;
    dray_node prev;
    dray_value a = dray_int(0);
    for (int64_t i = 0; i < args[0].u.i && !st; i++) {
        st = dray_graph_add_named(g, NULL, "sp_inc", &a, 1, &prev);
        a = dray_value_of_node(prev);
    }
    dray_value v;
    if (!st && !(st = dray_graph_compute(g, &prev, 1, &v))) {
        dray_graph_stats gs;
        dray_graph_last_stats(g, &gs);
        st = pair(v.u.i, (int64_t)gs.fused, result);
    }
    dray_graph_destroy(g);
    return st;
}

TEST(worker_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

/* Runs sp_fanout(n, ms) from the driver; checks every value against i*i + 7 and returns the pid
 * of the node that ran the fan-out and how many nested tasks ran there / elsewhere. */
static void run_fanout(dray_runtime *rt, const test_cluster *f, int64_t n, int64_t ms,
                       int64_t *parent, int64_t *here, int64_t *there)
{
    dray_value a[2] = {dray_int(n), dray_int(ms)}, v;
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, "sp_fanout", a, 2, NULL, &r));
    ASSERT_OK(dray_get(rt, r, WAIT_MS, &v));
    dray_ref_release(r);
    ASSERT_EQ(v.type, DRAY_T_LIST);
    *parent = dray_list_get(&v, 0)->u.i;
    const dray_value *list = dray_list_get(&v, 1);
    ASSERT_EQ((int64_t)dray_list_len(list), n);
    *here = *there = 0;
    for (int64_t i = 0; i < n; i++) {
        const dray_value *p = dray_list_get(list, (size_t)i);
        int64_t pid = dray_list_get(p, 0)->u.i;
        ASSERT_EQ(dray_list_get(p, 1)->u.i, i * i + 7);
        ASSERT_TRUE(pid == f->workers[0] || pid == f->workers[1]);
        *(pid == *parent ? here : there) += 1;
    }
    dray_value_release(&v);
}

/* Runs fan-outs of n tasks until one spills (a node learns of the others from the head's node
 * list a moment after the driver does: the first fan-out may find no other node yet); at most 20
 * tries. Returns what run_fanout found for the one that spilled. */
static void fanout_until_spilled(dray_runtime *rt, const test_cluster *f, int64_t n, int64_t ms,
                                 int64_t *parent, int64_t *here, int64_t *there)
{
    for (int i = 0; i < 20; i++) {
        run_fanout(rt, f, n, ms, parent, here, there);
        if (*there > 0)
            return;
    }
}

/* The node with pid `pid` in `dray status`: its tasks_spilled (-1 when not listed). */
static int64_t spilled_by(const test_cluster *f, int64_t pid)
{
    dray_value st;
    ASSERT_OK(dray_cluster_status(f->addr, &st));
    const dray_value *nodes = dray_map_get(&st, "nodes");
    int64_t got = -1;
    for (size_t i = 0; nodes && i < dray_list_len(nodes); i++) {
        const dray_value *nd = dray_list_get(nodes, i);
        if (dray_map_get(nd, "pid")->u.i == pid)
            got = dray_map_get(nd, "tasks_spilled")->u.i;
    }
    dray_value_release(&st);
    return got;
}

/* The store counter `key` of the node with pid `pid` in `dray status` (-1 when not listed). */
static int64_t store_stat(const test_cluster *f, int64_t pid, const char *key)
{
    dray_value st;
    ASSERT_OK(dray_cluster_status(f->addr, &st));
    const dray_value *nodes = dray_map_get(&st, "nodes");
    int64_t got = -1;
    for (size_t i = 0; nodes && i < dray_list_len(nodes); i++) {
        const dray_value *nd = dray_list_get(nodes, i);
        if (dray_map_get(nd, "pid")->u.i == pid)
            got = dray_map_get(dray_map_get(nd, "store"), key)->u.i;
    }
    dray_value_release(&st);
    return got;
}

/* Waits (at most 5 s: heartbeats come every 500 ms) until the node with pid `pid` reports at least
 * `want` spilled tasks; returns its count then. */
static int64_t wait_spilled(const test_cluster *f, int64_t pid, int64_t want)
{
    int64_t got = spilled_by(f, pid);
    for (int i = 0; i < 100 && got < want; i++) {
        sleep_ms(50);
        got = spilled_by(f, pid);
    }
    return got;
}

/* A warm-up fan-out that spilled (so both nodes know each other), then each node's spill count
 * once the head has it: base[w] for f->workers[w]. */
static void warm_up(dray_runtime *rt, const test_cluster *f, int64_t base[2])
{
    int64_t parent, here, there;
    fanout_until_spilled(rt, f, 20, 1, &parent, &here, &there);
    ASSERT_GT(there, 0);
    for (int w = 0; w < 2; w++)
        base[w] = f->workers[w] == parent ? wait_spilled(f, parent, there)
                                          : spilled_by(f, f->workers[w]);
    ASSERT_GE(base[0] + base[1], there);
}

#define OBJ_SIZE (256 << 10)

/* Checks sp_fanout_objects(OBJ_SIZE, k, ...)'s result (ref r, released) against sums computed
 * here; returns the fan-out's pid and how many readers of the put ran on another node. */
static void check_objects(dray_runtime *rt, dray_ref *r, int64_t k, int64_t *par,
                          int64_t *elsewhere)
{
    int64_t want = 0;
    for (int64_t b = 0; b < OBJ_SIZE; b++)
        want += pattern(b, 5);
    dray_value v;
    ASSERT_OK(dray_get(rt, r, WAIT_MS, &v));
    dray_ref_release(r);
    *par = dray_list_get(&v, 0)->u.i;
    *elsewhere = 0;
    const dray_value *list = dray_list_get(&v, 1);
    ASSERT_EQ((int64_t)dray_list_len(list), 3 * k);
    for (int64_t i = 0; i < 3 * k; i++) {
        const dray_value *p = dray_list_get(list, (size_t)i);
        int64_t pid = dray_list_get(p, 0)->u.i, got = dray_list_get(p, 1)->u.i, j = i % k;
        if (i < 2 * k) {
            ASSERT_EQ(got, want + 1000 * j);
            *elsewhere += pid != *par;
        } else {
            int64_t w = 0;
            for (int64_t b = 0; b < OBJ_SIZE / 4; b++)
                w += pattern(b, j);
            ASSERT_EQ(got, w);
        }
    }
    dray_value_release(&v);
}

TEST(nested_tasks_spill_to_the_other_node)
{
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    int64_t parent, here, there;
    fanout_until_spilled(rt, &f, 60, 5, &parent, &here, &there);
    /* Both nodes ran some: the fan-out's own node first, the other once it was saturated. */
    ASSERT_GT(here, 0);
    ASSERT_GT(there, 0);
    ASSERT_EQ(here + there, 60);
    /* The spilling node counts them (its next heartbeat brings the count to the head). */
    ASSERT_GE(wait_spilled(&f, parent, there), there);

    /* A graph built inside a task on a node is fused as on the embedded runtime. */
    dray_value gn = dray_int(6), gv;
    dray_ref *gr;
    ASSERT_OK(dray_submit(rt, "sp_graph_chain", &gn, 1, NULL, &gr));
    ASSERT_OK(dray_get(rt, gr, WAIT_MS, &gv));
    ASSERT_EQ(dray_list_get(&gv, 0)->u.i, 6);
    ASSERT_EQ(dray_list_get(&gv, 1)->u.i, 5);
    dray_value_release(&gv);
    dray_ref_release(gr);

    /* A function not registered by name stays on its node, however deep the queue. */
    dray_value h[2] = {dray_int(40), dray_int(2)}, hv;
    dray_ref *hr;
    ASSERT_OK(dray_submit(rt, "sp_fanout_hidden", h, 2, NULL, &hr));
    ASSERT_OK(dray_get(rt, hr, WAIT_MS, &hv));
    ASSERT_EQ(dray_list_get(&hv, 0)->u.i, 0);
    ASSERT_EQ(dray_list_get(&hv, 1)->u.i, 0);
    dray_value_release(&hv);
    dray_ref_release(hr);

    /* Objects: a big put on the spilling node read by spilled tasks as an argument, inside a
     * list, and refs returned inside lists; checked against sums computed here. */
    const int64_t size = OBJ_SIZE, k = 12;
    dray_value a[3] = {dray_int(size), dray_int(k), dray_int(3)};
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, "sp_fanout_objects", a, 3, NULL, &r));
    int64_t par, elsewhere;
    check_objects(rt, r, k, &par, &elsewhere);
    ASSERT_GT(elsewhere, 0); /* some object readers were spilled */
    /* The put went to the other node as a handle to the spilling node's store: pulled there (not
     * sent inside each task), once per fan-out wave at most, and freed again on both nodes. */
    int64_t other = f.workers[0] == par ? f.workers[1] : f.workers[0], pulled = 0, served = 0;
    for (int i = 0; i < 100 && (pulled < size || served < size); i++) {
        pulled = store_stat(&f, other, "pulled_bytes");
        served = store_stat(&f, par, "served_bytes");
        if (pulled < size || served < size)
            sleep_ms(50);
    }
    ASSERT_GE(pulled, size);
    ASSERT_EQ(pulled % size, 0);
    ASSERT_LE(pulled, size * elsewhere);
    ASSERT_EQ(served, pulled);
    int64_t left = 1;
    for (int i = 0; i < 100 && left; i++) {
        left = store_stat(&f, par, "bytes_mem") + store_stat(&f, other, "bytes_mem");
        if (left)
            sleep_ms(50);
    }
    ASSERT_EQ(left, 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

TEST(spill_off_keeps_nested_tasks_on_their_node)
{
    setenv("DRAY_SPILL", "0", 1); /* inherited by the worker nodes */
    test_cluster f;
    test_cluster_start(&f, 2);
    unsetenv("DRAY_SPILL");
    dray_runtime *rt = test_cluster_driver(&f);
    int64_t parent, here, there;
    run_fanout(rt, &f, 60, 5, &parent, &here, &there);
    ASSERT_EQ(here, 60);
    ASSERT_EQ(there, 0);
    ASSERT_EQ(spilled_by(&f, parent), 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

/* After a warm-up, starts fan-out `fn` with args a[0..n) and kills the other node with SIGKILL once
 * the fan-out's node reports more spilled tasks. Returns the fan-out's ref and sets *victim to the
 * killed pid. */
static dray_ref *fanout_and_kill_other(dray_runtime *rt, test_cluster *f, const char *fn,
                                       const dray_value *a, size_t n, pid_t *victim)
{
    int64_t base[2];
    warm_up(rt, f, base);
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, fn, a, n, NULL, &r));
    int spiller = -1;
    for (int i = 0; i < 400 && spiller < 0; i++) {
        for (int w = 0; w < 2; w++)
            if (spilled_by(f, f->workers[w]) > base[w])
                spiller = w;
        if (spiller < 0)
            sleep_ms(10);
    }
    ASSERT_GE(spiller, 0);
    ASSERT_TRUE(!dray_ref_ready(r)); /* still running: the other node has spilled tasks */
    *victim = f->workers[1 - spiller];
    ASSERT_EQ(kill(*victim, SIGKILL), 0);
    int status;
    ASSERT_EQ(waitpid(*victim, &status, 0), *victim);
    f->workers[1 - spiller] = -1;
    return r;
}

TEST(killed_node_spilled_tasks_are_retried)
{
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    pid_t victim;
    const int64_t n = 120;
    dray_value a[2] = {dray_int(n), dray_int(25)};
    dray_ref *r = fanout_and_kill_other(rt, &f, "sp_fanout", a, 2, &victim);
    dray_value v;
    ASSERT_OK(dray_get(rt, r, WAIT_MS, &v)); /* bounded: a hang fails */
    dray_ref_release(r);
    int64_t parent = dray_list_get(&v, 0)->u.i, on_victim = 0;
    const dray_value *list = dray_list_get(&v, 1);
    ASSERT_EQ((int64_t)dray_list_len(list), n);
    for (int64_t i = 0; i < n; i++) {
        const dray_value *p = dray_list_get(list, (size_t)i);
        int64_t pid = dray_list_get(p, 0)->u.i;
        ASSERT_EQ(dray_list_get(p, 1)->u.i, i * i + 7);
        ASSERT_TRUE(pid == parent || pid == victim);
        on_victim += pid == victim;
    }
    ASSERT_LT(on_victim, n);
    dray_value_release(&v);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

TEST(killed_node_spilled_object_readers_are_retried)
{
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    pid_t victim;
    /* 60 readers of each kind, 20 ms each: those lost with the node come back and read the put
     * from this node's own memory (run_here). */
    dray_value o[3] = {dray_int(OBJ_SIZE), dray_int(60), dray_int(20)};
    dray_ref *r = fanout_and_kill_other(rt, &f, "sp_fanout_objects", o, 3, &victim);
    int64_t par, elsewhere;
    check_objects(rt, r, 60, &par, &elsewhere);
    ASSERT_NE(par, victim);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

TEST(killed_node_without_retries_fails_clearly)
{
    setenv("DRAY_MAX_RETRIES", "0", 1); /* inherited by the worker nodes */
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    unsetenv("DRAY_MAX_RETRIES");
    pid_t victim;
    dray_value a[2] = {dray_int(120), dray_int(25)};
    dray_ref *r = fanout_and_kill_other(rt, &f, "sp_fanout", a, 2, &victim);
    dray_value err = dray_null();
    ASSERT_STATUS(dray_get(rt, r, WAIT_MS, &err), DRAY_ENET);
    ASSERT_CONTAINS(dray_last_error(), "was lost while running it");
    dray_value_release(&err);
    dray_ref_release(r);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

RUN_TESTS(T_(worker_main), T_(nested_tasks_spill_to_the_other_node),
          T_(spill_off_keeps_nested_tasks_on_their_node), T_(killed_node_spilled_tasks_are_retried),
          T_(killed_node_spilled_object_readers_are_retried),
          T_(killed_node_without_retries_fails_clearly))
