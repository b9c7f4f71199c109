/* A real cluster on 127.0.0.1: a head started with `dray start --head` (a daemon) and two worker
 * processes started from this test executable (so they have its task functions), driven from this
 * process through dray_init with an address. Every process is stopped and the directory removed. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "dray/cluster.h"
#include "dray/dashboard.h"
#include "dray/core.h"
#include "test.h"
#include "cluster_fixture.h"
#include "cluster_tasks.h"

DRAY_FUNCTION(cl_square)
{
    *result = dray_int(args[0].u.i * args[0].u.i);
    return DRAY_OK;
}

DRAY_FUNCTION(cl_add)
{
    *result = dray_int(args[0].u.i + args[1].u.i);
    return DRAY_OK;
}

DRAY_FUNCTION(cl_boom)
{
    return dray_ctx_fail(ctx, DRAY_ETASK, "boom on input %lld", (long long)args[0].u.i);
}

DRAY_FUNCTION(cl_slow_square)
{
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    *result = dray_int(args[0].u.i * args[0].u.i);
    return DRAY_OK;
}

/* Its bytes argument with every byte plus one (mod 256). */
DRAY_FUNCTION(cl_bump_bytes)
{
    size_t n;
    const uint8_t *in = dray_bytes_data(&args[0], &n);
    uint8_t *out;
    dray_status st = dray_bytes_create_uninit(n, result, (void **)&out);
    for (size_t i = 0; !st && i < n; i++)
        out[i] = (uint8_t)(in[i] + 1);
    return st;
}

/* ct_sum_bytes after 30 ms. */
DRAY_FUNCTION(cl_slow_sum_bytes)
{
    struct timespec ts = {0, 30000000};
    nanosleep(&ts, NULL);
    size_t n;
    const uint8_t *p = dray_bytes_data(&args[0], &n);
    int64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    *result = dray_int(s);
    return DRAY_OK;
}

/* A list of n ints (a large encoded value). */
DRAY_FUNCTION(cl_make_list)
{
    int64_t n = args[0].u.i;
    dray_value *items = malloc((size_t)n * sizeof(dray_value));
    if (!items)
        return DRAY_ENOMEM;
    for (int64_t i = 0; i < n; i++)
        items[i] = dray_int(i * 3);
    dray_status st = dray_list_create(items, (size_t)n, result);
    free(items);
    return st;
}

/* Submits n squares on the node's own runtime and sums them (nested tasks). */
DRAY_FUNCTION(cl_nested_sum)
{
    dray_runtime *rt = dray_ctx_runtime(ctx);
    int64_t n = args[0].u.i, s = 0;
    dray_ref *refs[64];
    for (int64_t i = 0; i < n && i < 64; i++) {
        dray_value a = dray_int(i);
        dray_status st = dray_submit(rt, "cl_square", &a, 1, NULL, &refs[i]);
        if (st)
            return st;
    }
    for (int64_t i = 0; i < n && i < 64; i++) {
        dray_value v;
        dray_status st = dray_get(rt, refs[i], -1, &v);
        dray_ref_release(refs[i]);
        if (st)
            return st;
        s += v.u.i;
    }
    *result = dray_int(s);
    return DRAY_OK;
}

/* An extension type with no encoder: it cannot travel to a node. */
static void local_destroy(dray_ext_obj *o)
{
    free(o);
}
static dray_ext_type local_only_type = {"test.local_only", local_destroy, NULL, NULL, NULL};
DRAY_EXT_TYPE(local_only_type)

/* An actor: a counter starting at its constructor's argument. */
static dray_status counter_init(dray_ctx *ctx, const dray_value *a, size_t n, void **state)
{
    if (n && a[0].u.i < 0)
        return dray_ctx_fail(ctx, DRAY_EINVAL, "negative start %lld", (long long)a[0].u.i);
    int64_t *s = malloc(sizeof(int64_t));
    if (!s)
        return DRAY_ENOMEM;
    *s = n ? a[0].u.i : 0;
    *state = s;
    return DRAY_OK;
}
static void counter_free(void *s)
{
    free(s);
}
static dray_status counter_add(dray_ctx *ctx, void *s, const dray_value *a, size_t n,
                               dray_value *r)
{
    (void)ctx, (void)n;
    *(int64_t *)s += a[0].u.i;
    *r = dray_int(*(int64_t *)s);
    return DRAY_OK;
}
static dray_status counter_pid(dray_ctx *ctx, void *s, const dray_value *a, size_t n,
                               dray_value *r)
{
    (void)ctx, (void)s, (void)a, (void)n;
    *r = dray_int(getpid());
    return DRAY_OK;
}
static dray_status counter_fail(dray_ctx *ctx, void *s, const dray_value *a, size_t n,
                                dray_value *r)
{
    (void)s, (void)a, (void)n, (void)r;
    return dray_ctx_fail(ctx, DRAY_ETASK, "counter refused");
}
static dray_status counter_sum_bytes(dray_ctx *ctx, void *s, const dray_value *a, size_t n,
                                     dray_value *r)
{
    (void)s, (void)n;
    size_t len;
    const uint8_t *p = dray_bytes_data(&a[0], &len);
    if (!p)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "sum_bytes: argument is a %s",
                             dray_type_name((dray_type)a[0].type));
    int64_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += p[i];
    *r = dray_int(sum);
    return DRAY_OK;
}
DRAY_ACTOR_CLASS(ClCounter, counter_init, counter_free, {"add", counter_add},
                 {"pid", counter_pid}, {"fail", counter_fail}, {"sum_bytes", counter_sum_bytes})

/* ==== Fixture: tests/cluster_fixture.h ==== */

/* Submits small batches until tasks have run in both worker processes (and never in this one). */
static void assert_both_workers_run_tasks(dray_runtime *rt, const test_cluster *f)
{
    dray_value a = dray_int(3);
    pid_t seen[2] = {0, 0};
    for (int i = 0; i < 40 && !(seen[0] && seen[1]); i++) {
        dray_ref *p[4];
        for (int k = 0; k < 4; k++)
            ASSERT_OK(dray_submit(rt, "cl_slow_square", &a, 1, NULL, &p[k]));
        for (int k = 0; k < 4; k++) {
            dray_ref_release(p[k]);
            ASSERT_OK(dray_submit(rt, "ct_pid", NULL, 0, NULL, &p[k]));
        }
        for (int k = 0; k < 4; k++) {
            pid_t pid = (pid_t)ct_get_int(rt, p[k]);
            dray_ref_release(p[k]);
            ASSERT_NE(pid, getpid());
            ASSERT_TRUE(pid == f->workers[0] || pid == f->workers[1]);
            seen[pid == f->workers[1]] = pid;
        }
    }
    ASSERT_TRUE(seen[0] && seen[1]);
}

/* ==== Tests ==== */

/* In a worker process (DRAY_WORKER_ADDRESS set), dray_init turns the process into a worker node and
 * never returns; here it is a plain local runtime. */
TEST(worker_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    ASSERT_GT(dray_runtime_num_workers(rt), 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(tasks_refs_errors_and_data)
{
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    /* 1000 independent tasks: the sum of squares, computed independently here. */
    enum { N = 1000 };
    dray_ref *refs[N];
    int64_t want = 0;
    for (int i = 0; i < N; i++) {
        dray_value a = dray_int(i);
        ASSERT_OK(dray_submit(rt, "cl_square", &a, 1, NULL, &refs[i]));
        want += (int64_t)i * i;
    }
    int64_t got = 0;
    for (int i = 0; i < N; i++) {
        got += ct_get_int(rt, refs[i]);
        dray_ref_release(refs[i]);
    }
    ASSERT_EQ(got, want);
    /* Dependencies: add(square(3), square(4)) = 25, the inputs passed as refs still pending. */
    dray_value a = dray_int(3), b = dray_int(4);
    dray_ref *r3, *r4, *sum;
    ASSERT_OK(dray_submit(rt, "cl_square", &a, 1, NULL, &r3));
    ASSERT_OK(dray_submit(rt, "cl_square", &b, 1, NULL, &r4));
    dray_value ab[2] = {dray_value_of_ref(r3), dray_value_of_ref(r4)};
    ASSERT_OK(dray_submit(rt, "cl_add", ab, 2, NULL, &sum));
    ASSERT_EQ(ct_get_int(rt, sum), 25);
    dray_ref_release(r3);
    dray_ref_release(r4);
    dray_ref_release(sum);
    /* Tasks ran on both worker processes, none here. */
    assert_both_workers_run_tasks(rt, &f);
    /* A remote failure carries its message, and a dependent sees the cause chain. */
    dray_value seven = dray_int(7);
    dray_ref *bad, *dep;
    ASSERT_OK(dray_submit(rt, "cl_boom", &seven, 1, NULL, &bad));
    dray_value bargs[2] = {dray_value_of_ref(bad), dray_int(1)};
    ASSERT_OK(dray_submit(rt, "cl_add", bargs, 2, NULL, &dep));
    ASSERT_STATUS(dray_get(rt, bad, 20000, NULL), DRAY_ETASK);
    ASSERT_CONTAINS(dray_last_error(), "boom on input 7");
    ASSERT_STATUS(dray_get(rt, dep, 20000, NULL), DRAY_EDEP);
    ASSERT_CONTAINS(dray_last_error(), "boom on input 7");
    dray_ref_release(bad);
    dray_ref_release(dep);
    /* A value that cannot be encoded fails at submit, naming the argument and its type. */
    dray_ext_obj *lo = malloc(sizeof(*lo));
    ASSERT_TRUE(lo != NULL);
    dray_ext_obj_init(lo, &local_only_type);
    dray_value lov[2] = {dray_int(1), dray_value_of_ext(lo)};
    dray_ref *lr;
    ASSERT_NE(dray_submit(rt, "cl_add", lov, 2, NULL, &lr), DRAY_OK);
    ASSERT_CONTAINS(dray_last_error(), "argument 1 (ext test.local_only) cannot be sent");
    dray_value_release(&lov[1]);
    /* An unknown function fails at submit, naming it. */
    dray_ref *none;
    ASSERT_STATUS(dray_submit(rt, "no_such_fn", NULL, 0, NULL, &none), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "no_such_fn");
    /* Large results: 3 MB of bytes (data section from the value's memory) and a 100,000-item
     * list (an encoded data section); large bytes as an argument. */
    dray_value n3 = dray_int(3 << 20), nl = dray_int(100000);
    dray_ref *big, *list, *s;
    ASSERT_OK(dray_submit(rt, "ct_make_bytes", &n3, 1, NULL, &big));
    ASSERT_OK(dray_submit(rt, "cl_make_list", &nl, 1, NULL, &list));
    dray_value bv;
    ASSERT_OK(dray_get(rt, big, 20000, &bv));
    size_t blen;
    const uint8_t *bp = dray_bytes_data(&bv, &blen);
    ASSERT_EQ(blen, 3 << 20);
    int64_t bsum = 0;
    for (size_t i = 0; i < blen; i++) {
        if (bp[i] != (uint8_t)((i * 7 + 3) % 251))
            ASSERT_EQ(bp[i], (i * 7 + 3) % 251);
        bsum += bp[i];
    }
    dray_value barg = dray_value_of_ref(big);
    ASSERT_OK(dray_submit(rt, "ct_sum_bytes", &barg, 1, NULL, &s));
    ASSERT_EQ(ct_get_int(rt, s), bsum);
    dray_value lv;
    ASSERT_OK(dray_get(rt, list, 20000, &lv));
    ASSERT_EQ(dray_list_len(&lv), 100000);
    ASSERT_EQ(dray_list_get(&lv, 99999)->u.i, 99999 * 3);
    dray_value_release(&bv);
    dray_value_release(&lv);
    dray_ref_release(big);
    dray_ref_release(list);
    dray_ref_release(s);
    /* Nested submission on a node: sum of squares 0..49 = 40425. */
    dray_value fifty = dray_int(50);
    dray_ref *nested;
    ASSERT_OK(dray_submit(rt, "cl_nested_sum", &fifty, 1, NULL, &nested));
    ASSERT_EQ(ct_get_int(rt, nested), 40425);
    dray_ref_release(nested);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

TEST(killed_worker_tasks_are_retried)
{
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    enum { N = 1200 };
    dray_ref **refs = malloc(N * sizeof(*refs));
    for (int i = 0; i < N; i++) {
        dray_value a = dray_int(i);
        ASSERT_OK(dray_submit(rt, "cl_slow_square", &a, 1, NULL, &refs[i]));
    }
    /* Once some results are in, kill -9 one worker in the middle of the run. */
    ASSERT_OK(dray_wait(rt, refs, N, 100, 20000, NULL, NULL));
    ASSERT_EQ(kill(f.workers[0], SIGKILL), 0);
    int st;
    waitpid(f.workers[0], &st, 0);
    f.workers[0] = -1;
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(ct_get_int(rt, refs[i]), (int64_t)i * i);
        dray_ref_release(refs[i]);
    }
    free(refs);
    dray_stats s;
    ASSERT_OK(dray_runtime_stats(rt, &s));
    ASSERT_GT(s.tasks_retried, 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

/* With every worker gone and no retries left, a waiting driver gets an error, not a hang. */
TEST(lost_tasks_fail_instead_of_hanging)
{
    test_cluster f;
    test_cluster_start(&f, 1);
    setenv("DRAY_MAX_RETRIES", "0", 1);
    setenv("DRAY_NO_NODE_TIMEOUT_MS", "500", 1);
    dray_runtime *rt = test_cluster_driver(&f);
    dray_ref *r;
    dray_value a = dray_int(5);
    ASSERT_OK(dray_submit(rt, "cl_slow_square", &a, 1, NULL, &r));
    ASSERT_EQ(kill(f.workers[0], SIGKILL), 0);
    int st;
    waitpid(f.workers[0], &st, 0);
    f.workers[0] = -1;
    dray_status got = dray_get(rt, r, 20000, NULL);
    /* It either finished before the kill or failed with a network error naming the node. */
    if (got != DRAY_OK) {
        ASSERT_EQ(got, DRAY_ENET);
        ASSERT_CONTAINS(dray_last_error(), "was lost");
    }
    dray_ref_release(r);
    /* Submitted with no node at all: fails after the no-node timeout. */
    ASSERT_OK(dray_submit(rt, "cl_square", &a, 1, NULL, &r));
    ASSERT_STATUS(dray_get(rt, r, 20000, NULL), DRAY_ERESOURCE);
    ASSERT_CONTAINS(dray_last_error(), "no worker node was available");
    dray_ref_release(r);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    unsetenv("DRAY_MAX_RETRIES");
    unsetenv("DRAY_NO_NODE_TIMEOUT_MS");
    test_cluster_stop(&f);
}

static bool log_contains(const char *dir, const char *needle)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "grep -q '%s' %s/head.log", needle, dir);
    return system(cmd) == 0;
}

TEST(wrong_secret_is_refused)
{
    test_cluster f;
    test_cluster_start(&f, 0);
    setenv("DRAY_SECRET", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.address = f.addr;
    cfg.num_workers = 1;
    dray_runtime *rt = NULL;
    ASSERT_STATUS(dray_init(&cfg, &rt), DRAY_ENET);
    ASSERT_CONTAINS(dray_last_error(), f.addr);
    ASSERT_TRUE(rt == NULL);
    unsetenv("DRAY_SECRET");
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
    ASSERT_TRUE(log_contains(f.dir, "refused peer"));
    test_cluster_stop(&f);
}

static void send_raw(int port, const void *data, size_t n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (n)
        ASSERT_EQ(send(fd, data, n, MSG_NOSIGNAL), (ssize_t)n);
    close(fd);
}

TEST(garbage_to_every_port_is_survived)
{
    test_cluster f;
    test_cluster_start(&f, 1);
    dray_runtime *rt = test_cluster_driver(&f);
    dray_value st;
    ASSERT_OK(dray_cluster_status(f.addr, &st));
    const dray_value *node = dray_list_get(dray_map_get(&st, "nodes"), 0);
    const char *waddr = dray_string_cstr(dray_map_get(node, "address"));
    int ports[2] = {f.port, atoi(strrchr(waddr, ':') + 1)};
    dray_value_release(&st);
    uint8_t junk[4096];
    uint64_t x = 99;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        junk[i] = (uint8_t)(x >> 56);
    }
    uint8_t huge[32] = {'D', 'Y', 1, 8 /* SUBMIT */, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f};
    uint8_t preauth_ping[32] = {'D', 'Y', 1, 7, 0, 0, 0, 0, 4};
    for (int p = 0; p < 2; p++) {
        send_raw(ports[p], junk, sizeof junk);        /* garbage */
        send_raw(ports[p], junk, 0);                  /* connect and leave */
        send_raw(ports[p], huge, sizeof huge);        /* oversized control payload */
        send_raw(ports[p], preauth_ping, 20);         /* truncated header */
        send_raw(ports[p], preauth_ping, 32);         /* a message before authenticating */
    }
    /* Everything still works. */
    dray_value a = dray_int(12);
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, "cl_square", &a, 1, NULL, &r));
    ASSERT_EQ(ct_get_int(rt, r), 144);
    dray_ref_release(r);
    ASSERT_OK(dray_cluster_status(f.addr, &st));
    ASSERT_EQ(dray_list_len(dray_map_get(&st, "nodes")), 1);
    dray_value_release(&st);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    ASSERT_TRUE(log_contains(f.dir, "bad magic"));
    test_cluster_stop(&f);
}

static dray_ref *submit_on(dray_runtime *rt, const char *fn, dray_value arg, const char *res);

TEST(cli_status_lists_nodes)
{
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f); /* waits for both nodes */
    /* Let a few heartbeats pass: every node must still be alive after them. */
    struct timespec ts = {1, 300000000};
    nanosleep(&ts, NULL);
    assert_both_workers_run_tasks(rt, &f);
    /* One 2,000,000-byte object in a node's store: the status line shows it once a heartbeat came. */
    dray_ref *obj = submit_on(rt, "ct_make_bytes", dray_int(2000000), NULL);
    ASSERT_OK(dray_wait(rt, &obj, 1, 1, 20000, NULL, NULL));
    for (int i = 0; i < 200 && ct_store_stat(&f, f.workers[0], "objects") +
                                   ct_store_stat(&f, f.workers[1], "objects") != 1; i++) {
        struct timespec d = {0, 50000000};
        nanosleep(&d, NULL);
    }
    char cmd[4300], out[4096] = {0};
    snprintf(cmd, sizeof cmd, "%s status --address %s", f.dray, f.addr);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    ASSERT_EQ(pclose(p), 0);
    ASSERT_CONTAINS(out, "2 live node(s), 2 CPU(s)");
    ASSERT_CONTAINS(out, "1 driver(s)");
    char pid[32];
    snprintf(pid, sizeof pid, " %d ", (int)f.workers[1]);
    ASSERT_CONTAINS(out, pid);
    ASSERT_CONTAINS(out, "store MB mem/disk/limit");
    ASSERT_CONTAINS(out, " 2.0/0.0/");
    dray_ref_release(obj);
    /* A malformed --memory is refused before anything starts. */
    snprintf(cmd, sizeof cmd, "%s start --address %s --memory 12q 2>&1", f.dray, f.addr);
    p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    ASSERT_NE(pclose(p), 0);
    ASSERT_CONTAINS(out, "--memory '12q'");
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}


static int64_t call_int(dray_runtime *rt, dray_actor *a, const char *m, int64_t x,
                        dray_status *st_out)
{
    dray_value arg = dray_int(x), v;
    dray_ref *r;
    ASSERT_OK(dray_actor_call(rt, a, m, &arg, 1, &r));
    dray_status st = dray_get(rt, r, 20000, &v);
    dray_ref_release(r);
    if (st_out)
        *st_out = st;
    else
        ASSERT_OK(st);
    int64_t out = st == DRAY_OK ? v.u.i : 0;
    dray_value_release(&v);
    return out;
}

TEST(actors_run_on_a_node_in_order)
{
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    dray_value start = dray_int(10);
    dray_actor *a;
    ASSERT_OK(dray_actor_create(rt, "ClCounter", &start, 1, NULL, &a));
    ASSERT_OK(dray_actor_ready(rt, a, 20000));
    pid_t pid = (pid_t)call_int(rt, a, "pid", 0, NULL);
    ASSERT_TRUE(pid == f.workers[0] || pid == f.workers[1]);
    /* 2000 pipelined calls: results in call order, 11, 12, ... */
    enum { N = 2000 };
    dray_ref **refs = malloc(N * sizeof(*refs));
    dray_value one = dray_int(1);
    for (int i = 0; i < N; i++)
        ASSERT_OK(dray_actor_call(rt, a, "add", &one, 1, &refs[i]));
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(ct_get_int(rt, refs[i]), 11 + i);
        dray_ref_release(refs[i]);
    }
    free(refs);
    /* A failing method reports its error and the state survives. */
    dray_status st;
    call_int(rt, a, "fail", 0, &st);
    ASSERT_EQ(st, DRAY_ETASK);
    ASSERT_CONTAINS(dray_last_error(), "counter refused");
    ASSERT_EQ(call_int(rt, a, "add", 5, NULL), 10 + N + 5);
    /* A task result as a call argument. */
    dray_value three = dray_int(3);
    dray_ref *sq;
    ASSERT_OK(dray_submit(rt, "cl_square", &three, 1, NULL, &sq));
    dray_value sqv = dray_value_of_ref(sq);
    dray_ref *r;
    ASSERT_OK(dray_actor_call(rt, a, "add", &sqv, 1, &r));
    ASSERT_EQ(ct_get_int(rt, r), 10 + N + 5 + 9);
    dray_ref_release(r);
    dray_ref_release(sq);
    dray_actor_release(a);
    /* A constructor that fails surfaces in dray_actor_ready. */
    dray_actor *bad;
    dray_value neg = dray_int(-4);
    ASSERT_OK(dray_actor_create(rt, "ClCounter", &neg, 1, NULL, &bad));
    ASSERT_STATUS(dray_actor_ready(rt, bad, 20000), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "negative start -4");
    call_int(rt, bad, "add", 1, &st);
    ASSERT_EQ(st, DRAY_EACTOR);
    dray_actor_release(bad);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

static int worker_index(const test_cluster *f, pid_t pid)
{
    return pid == f->workers[0] ? 0 : pid == f->workers[1] ? 1 : -1;
}

TEST(actor_restarts_when_its_node_is_killed)
{
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    dray_value start = dray_int(100);
    dray_actor_opts o = {0};
    o.max_restarts = 1;
    dray_actor *a, *once;
    ASSERT_OK(dray_actor_create(rt, "ClCounter", &start, 1, &o, &a));
    ASSERT_OK(dray_actor_create(rt, "ClCounter", &start, 1, NULL, &once));
    ASSERT_EQ(call_int(rt, a, "add", 1, NULL), 101);
    ASSERT_EQ(call_int(rt, once, "add", 1, NULL), 101);
    int wi = worker_index(&f, (pid_t)call_int(rt, a, "pid", 0, NULL));
    int wo = worker_index(&f, (pid_t)call_int(rt, once, "pid", 0, NULL));
    ASSERT_GE(wi, 0);
    ASSERT_GE(wo, 0);
    ASSERT_EQ(kill(f.workers[wi], SIGKILL), 0);
    int st;
    waitpid(f.workers[wi], &st, 0);
    f.workers[wi] = -1;
    /* After the loss: the restartable actor runs on the other node with fresh state (init ran
     * again with 100); calls already lost fail with DRAY_EACTOR. */
    int64_t v = 0;
    dray_status cst = DRAY_EACTOR;
    for (int i = 0; i < 100 && cst == DRAY_EACTOR; i++)
        v = call_int(rt, a, "add", 1, &cst);
    ASSERT_OK(cst);
    ASSERT_EQ(v, 101);
    ASSERT_EQ(dray_actor_restarts(a), 1);
    ASSERT_EQ(worker_index(&f, (pid_t)call_int(rt, a, "pid", 0, NULL)), 1 - wi);
    /* The actor without restarts is dead if it lived there, else unaffected. */
    call_int(rt, once, "add", 1, &cst);
    if (wo == wi) {
        ASSERT_EQ(cst, DRAY_EACTOR);
        ASSERT_CONTAINS(dray_last_error(), "dead");
    } else {
        ASSERT_OK(cst);
    }
    dray_actor_release(a);
    dray_actor_release(once);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}


/* The program `dray submit` runs: as its workers (DRAY_WORKER_ADDRESS) dray_init serves; as the
 * driver it runs tasks on those workers; alone it runs them locally. */
TEST(submit_driver_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    bool remote = getenv("DRAY_ADDRESS") != NULL;
    dray_ref *refs[20];
    for (int i = 0; i < 20; i++) {
        dray_value a = dray_int(i);
        ASSERT_OK(dray_submit(rt, i % 2 ? "cl_square" : "ct_pid", &a, 1, NULL, &refs[i]));
    }
    for (int i = 0; i < 20; i++) {
        int64_t v = ct_get_int(rt, refs[i]);
        if (i % 2)
            ASSERT_EQ(v, (int64_t)i * i);
        else if (remote)
            ASSERT_NE(v, getpid());
        else
            ASSERT_EQ(v, getpid());
        dray_ref_release(refs[i]);
    }
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(submit_starts_and_stops_its_workers)
{
    test_cluster f;
    test_cluster_start(&f, 0);
    char exe[4096], cmd[9000];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ASSERT_GT(n, 0);
    exe[n] = 0;
    snprintf(cmd, sizeof cmd, "%s submit --address %s --workers 2 -- %s submit_driver_main "
             ">%s/submit.out 2>&1", f.dray, f.addr, exe, f.dir);
    ASSERT_EQ(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "grep -q '1 passed' %s/submit.out", f.dir);
    ASSERT_EQ(system(cmd), 0);
    /* Its workers are gone and unrecorded: only the head is left to stop (test_cluster_stop checks). */
    test_cluster_stop(&f);
}


/* Waits (bounded) until the runtime has finished at least n tasks. */
static void wait_finished(dray_runtime *rt, uint64_t n)
{
    for (int i = 0; i < 2000; i++) {
        dray_stats st;
        ASSERT_OK(dray_runtime_stats(rt, &st));
        if (st.tasks_finished >= n)
            return;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_TRUE(!"tasks did not finish in 10 s");
}

/* A lazy graph (2,000 slow leaves summed by a binary tree of adds: 3,999 tasks) with a worker killed
 * mid-way: the result equals the sum of squares computed here. */
TEST(graph_survives_a_killed_worker)
{
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    enum { LEAVES = 2000 };
    dray_graph *g;
    ASSERT_OK(dray_graph_create(rt, &g));
    dray_node *level = malloc(LEAVES * sizeof(*level));
    int64_t want = 0;
    for (int i = 0; i < LEAVES; i++) {
        dray_value a = dray_int(i);
        ASSERT_OK(dray_graph_add_named(g, NULL, "cl_slow_square", &a, 1, &level[i]));
        want += (int64_t)i * i;
    }
    size_t n = LEAVES;
    while (n > 1) {
        size_t m = 0;
        for (size_t i = 0; i + 1 < n; i += 2) {
            dray_value ab[2] = {dray_value_of_node(level[i]), dray_value_of_node(level[i + 1])};
            ASSERT_OK(dray_graph_add_named(g, NULL, "cl_add", ab, 2, &level[m++]));
        }
        if (n % 2)
            level[m++] = level[n - 1];
        n = m;
    }
    dray_ref *out;
    ASSERT_OK(dray_graph_submit(g, &level[0], 1, &out));
    wait_finished(rt, 300);
    ASSERT_EQ(kill(f.workers[1], SIGKILL), 0);
    int st;
    waitpid(f.workers[1], &st, 0);
    f.workers[1] = -1;
    ASSERT_EQ(ct_get_int(rt, out), want);
    dray_stats s;
    ASSERT_OK(dray_runtime_stats(rt, &s));
    ASSERT_GT(s.tasks_retried, 0);
    dray_ref_release(out);
    dray_graph_destroy(g);
    free(level);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

/* A node that joins while a job runs gets part of it. */
TEST(node_joining_mid_job_gets_work)
{
    test_cluster f;
    test_cluster_start(&f, 1);
    dray_runtime *rt = test_cluster_driver(&f);
    enum { N = 600 };
    dray_ref **refs = malloc(N * sizeof(*refs));
    for (int i = 0; i < N; i++) {
        dray_value a = dray_int(i);
        ASSERT_OK(dray_submit(rt, "cl_slow_square", &a, 1, NULL, &refs[i]));
    }
    wait_finished(rt, 50);
    test_cluster_add_worker(&f);
    /* Tasks sent from now on go to the least loaded node: the new one. */
    pid_t last = 0;
    for (int k = 0; k < 400 && last != f.workers[1]; k++) {
        dray_ref *p;
        ASSERT_OK(dray_submit(rt, "ct_pid", NULL, 0, NULL, &p));
        last = (pid_t)ct_get_int(rt, p);
        dray_ref_release(p);
    }
    ASSERT_EQ(last, f.workers[1]);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(ct_get_int(rt, refs[i]), (int64_t)i * i);
        dray_ref_release(refs[i]);
    }
    free(refs);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

/* ==== Object store ==== */

/* Waits until the counter is at least `min`. */
static void wait_store_min(const test_cluster *f, pid_t pid, const char *key, int64_t min)
{
    int64_t got = -1;
    for (int i = 0; i < 200 && (got = ct_store_stat(f, pid, key)) < min; i++) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_GE(got, min);
}

/* Submits fn(arg) needing one unit of custom resource `res` (NULL: none). */
static dray_ref *submit_on(dray_runtime *rt, const char *fn, dray_value arg, const char *res)
{
    dray_resource r = {res, 1};
    dray_task_opts o = {0};
    o.resources = &r;
    o.n_resources = res ? 1 : 0;
    dray_ref *out;
    ASSERT_OK(dray_submit(rt, fn, &arg, 1, res ? &o : NULL, &out));
    return out;
}

/* Two nodes, one offering resource "left" and one "right"; *pids gets their pids. */
static void start_left_right(test_cluster *f)
{
    test_cluster_start(f, 0);
    setenv("DRAY_WORKER_RESOURCES", "left=1", 1);
    test_cluster_add_worker(f);
    setenv("DRAY_WORKER_RESOURCES", "right=1,gpu=2", 1);
    test_cluster_add_worker(f);
    unsetenv("DRAY_WORKER_RESOURCES");
    setenv("DRAY_MIN_NODES", "2", 1);
}

/* A large result stays in its node's store (the driver holds a handle); a consumer is placed on
 * that node (locality) and reads it there; dray_get fetches it once; dropping the refs frees it. */
TEST(objects_stay_on_their_node_and_are_freed)
{
    test_cluster f;
    start_left_right(&f);
    dray_runtime *rt = test_cluster_driver(&f);
    enum { SIZE = 3 << 20 };
    dray_ref *obj = submit_on(rt, "ct_make_bytes", dray_int(SIZE), "left");
    ASSERT_OK(dray_wait(rt, &obj, 1, 1, 20000, NULL, NULL));
    ASSERT_EQ(ct_client_stat(rt, "stored_results"), 1);
    ct_wait_store_stat(&f, f.workers[0], "objects", 1);
    ASSERT_EQ(ct_store_stat(&f, f.workers[0], "bytes_mem"), SIZE);
    ASSERT_EQ(ct_store_stat(&f, f.workers[1], "objects"), 0);
    /* Consumers without constraints go where the input is. */
    int64_t local0 = ct_client_stat(rt, "placed_local");
    for (int i = 0; i < 4; i++) {
        dray_value a = dray_value_of_ref(obj);
        dray_ref *sum;
        ASSERT_OK(dray_submit(rt, "ct_sum_bytes", &a, 1, NULL, &sum));
        ASSERT_EQ(ct_get_int(rt, sum), ct_made_sum(SIZE));
        dray_ref_release(sum);
    }
    ASSERT_EQ(ct_client_stat(rt, "placed_local") - local0, 4);
    ASSERT_EQ(ct_store_stat(&f, f.workers[1], "pulls"), 0);
    /* The driver reads it: one pull, then the cached copy; its dashboard shows the transfer. */
    dray_dashboard *dash;
    ASSERT_OK(dray_dashboard_start(rt, NULL, &dash));
    for (int k = 0; k < 2; k++) {
        dray_value v;
        ASSERT_OK(dray_get(rt, obj, 20000, &v));
        size_t n;
        const uint8_t *p = dray_bytes_data(&v, &n);
        ASSERT_EQ(n, SIZE);
        for (size_t i = 0; i < n; i += 4099)
            ASSERT_EQ(p[i], (uint8_t)((i * 7 + 3) % 251));
        dray_value_release(&v);
    }
    ASSERT_EQ(ct_client_stat(rt, "driver_pulls"), 1);
    ASSERT_EQ(ct_client_stat(rt, "driver_pulled_bytes"), SIZE);
    int transfers = 0;
    double transfer_bytes = 0;
    for (int tries = 0; tries < 300 && !transfers; tries++) { /* the collector drains every 100 ms */
        usleep(10000);
        int status;
        char *body;
        const char *type;
        ASSERT_OK(dray_dashboard_api(dash, "/api/v0/stream?since=0", &status, &body, &type));
        cJSON *j = cJSON_Parse(body);
        dray_free(body);
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "events"))
        {
            if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "kind")), "transfer")) {
                transfers++;
                transfer_bytes += cJSON_GetNumberValue(cJSON_GetObjectItem(e, "bytes"));
            }
        }
        cJSON_Delete(j);
    }
    ASSERT_EQ(transfers, 1);
    ASSERT_NEAR(transfer_bytes, SIZE, 0);
    dray_dashboard_stop(dash);
    ct_wait_store_stat(&f, f.workers[0], "served", 1);
    /* The last ref goes: the node frees it. */
    dray_ref_release(obj);
    ct_wait_store_stat(&f, f.workers[0], "objects", 0);
    ASSERT_EQ(ct_store_stat(&f, f.workers[0], "bytes_mem"), 0);
    ASSERT_EQ(ct_store_stat(&f, f.workers[0], "freed_bytes"), SIZE);
    ASSERT_EQ(ct_client_stat(rt, "objects_freed"), 1);
    /* Results that are not objects: a handle is also freed when the driver goes away. */
    dray_ref *kept = submit_on(rt, "ct_make_bytes", dray_int(200000), "right");
    ASSERT_OK(dray_wait(rt, &kept, 1, 1, 20000, NULL, NULL));
    ct_wait_store_stat(&f, f.workers[1], "objects", 1);
    dray_ref_release(kept);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    ct_wait_store_stat(&f, f.workers[1], "objects", 0);
    test_cluster_stop(&f);
}

/* A result made on one node and consumed by a task on the other is pulled node to node once
 * (never through the driver) and cached; the copy is freed with the object. */
TEST(objects_move_node_to_node)
{
    test_cluster f;
    start_left_right(&f);
    dray_runtime *rt = test_cluster_driver(&f);
    enum { SIZE = 5 << 20 };
    dray_ref *obj = submit_on(rt, "ct_make_bytes", dray_int(SIZE), "left");
    int64_t local0 = ct_client_stat(rt, "placed_local");
    for (int i = 0; i < 3; i++) {
        dray_ref *sum = submit_on(rt, "ct_sum_bytes", dray_value_of_ref(obj), "right");
        ASSERT_EQ(ct_get_int(rt, sum), ct_made_sum(SIZE));
        dray_ref_release(sum);
    }
    ct_wait_store_stat(&f, f.workers[1], "pulls", 1);
    ASSERT_EQ(ct_store_stat(&f, f.workers[1], "pulled_bytes"), SIZE);
    ASSERT_EQ(ct_store_stat(&f, f.workers[1], "objects"), 1); /* the cached copy */
    ct_wait_store_stat(&f, f.workers[0], "served", 1);
    ASSERT_EQ(ct_store_stat(&f, f.workers[0], "served_bytes"), SIZE);
    ASSERT_EQ(ct_client_stat(rt, "driver_pulls"), 0);
    /* The first consumer had to go where its input was not; the others found the cached copy. */
    ASSERT_EQ(ct_client_stat(rt, "placed_spill"), 1);
    ASSERT_EQ(ct_client_stat(rt, "placed_local") - local0, 2);
    /* A resource nobody offers fails at once; "gpu=2" is offered by the right node only. */
    dray_resource big = {"gpu", 3};
    dray_task_opts o = {0};
    o.resources = &big;
    o.n_resources = 1;
    dray_value a = dray_int(1);
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, "cl_square", &a, 1, &o, &r));
    dray_value err;
    ASSERT_STATUS(dray_get(rt, r, 20000, &err), DRAY_ERESOURCE);
    dray_value_release(&err);
    dray_ref_release(r);
    big.amount = 2;
    ASSERT_OK(dray_submit(rt, "ct_pid", NULL, 0, &o, &r));
    ASSERT_EQ(ct_get_int(rt, r), f.workers[1]);
    dray_ref_release(r);
    /* An actor (on either node) gets the object's bytes as its argument. */
    dray_actor *act;
    ASSERT_OK(dray_actor_create(rt, "ClCounter", NULL, 0, NULL, &act));
    ASSERT_OK(dray_actor_ready(rt, act, 20000));
    dray_value ov = dray_value_of_ref(obj);
    ASSERT_OK(dray_actor_call(rt, act, "sum_bytes", &ov, 1, &r));
    ASSERT_EQ(ct_get_int(rt, r), ct_made_sum(SIZE));
    dray_ref_release(r);
    dray_actor_release(act);
    dray_ref_release(obj);
    ct_wait_store_stat(&f, f.workers[0], "objects", 0);
    ct_wait_store_stat(&f, f.workers[1], "objects", 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

/* With a 4 MB memory limit (spill above 2.8 MB, pause above 3.2 MB), objects spill to disk and are
 * read back transparently; one larger than the whole limit goes straight to disk and round-trips. */
TEST(objects_spill_to_disk_and_round_trip)
{
    test_cluster f;
    setenv("DRAY_WORKER_MEMORY", "4000000", 1);
    /* The process itself is bigger than 4 MB: only the store's thresholds here (pausing and
     * terminating on process memory are tested in test_memory). */
    setenv("DRAY_MEMORY_PAUSE", "false", 1);
    setenv("DRAY_MEMORY_TERMINATE", "false", 1);
    test_cluster_start(&f, 1);
    unsetenv("DRAY_WORKER_MEMORY");
    unsetenv("DRAY_MEMORY_PAUSE");
    unsetenv("DRAY_MEMORY_TERMINATE");
    dray_runtime *rt = test_cluster_driver(&f);
    ct_wait_store_stat(&f, f.workers[0], "limit", 4000000);
    enum { SMALL = 1200000, BIG = 6000000 };
    dray_ref *objs[4];
    for (int i = 0; i < 3; i++)
        objs[i] = submit_on(rt, "ct_make_bytes", dray_int(SMALL + i), NULL);
    objs[3] = submit_on(rt, "ct_make_bytes", dray_int(BIG), NULL);
    ASSERT_OK(dray_wait(rt, objs, 4, 4, 20000, NULL, NULL));
    ct_wait_store_stat(&f, f.workers[0], "objects", 4);
    ASSERT_GE(ct_store_stat(&f, f.workers[0], "spilled"), 1);
    ASSERT_GE(ct_store_stat(&f, f.workers[0], "direct_to_disk"), 1);
    ASSERT_LE(ct_store_stat(&f, f.workers[0], "bytes_mem"), 3200000);
    ASSERT_EQ(ct_store_stat(&f, f.workers[0], "bytes_mem") +
                  ct_store_stat(&f, f.workers[0], "bytes_disk"),
              3 * SMALL + 3 + BIG);
    /* Every object reads back: on the node (a task) and at the driver. */
    for (int i = 0; i < 4; i++) {
        int64_t n = i < 3 ? SMALL + i : BIG;
        dray_ref *sum = submit_on(rt, "ct_sum_bytes", dray_value_of_ref(objs[i]), NULL);
        ASSERT_EQ(ct_get_int(rt, sum), ct_made_sum(n));
        dray_ref_release(sum);
        dray_value v;
        ASSERT_OK(dray_get(rt, objs[i], 20000, &v));
        size_t len;
        const uint8_t *p = dray_bytes_data(&v, &len);
        ASSERT_EQ((int64_t)len, n);
        int64_t s = 0;
        for (size_t k = 0; k < len; k++)
            s += p[k];
        ASSERT_EQ(s, ct_made_sum(n));
        dray_value_release(&v);
    }
    wait_store_min(&f, f.workers[0], "read_back", 1);
    for (int i = 0; i < 4; i++)
        dray_ref_release(objs[i]);
    ct_wait_store_stat(&f, f.workers[0], "objects", 0);
    ASSERT_EQ(ct_store_stat(&f, f.workers[0], "bytes_disk"), 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

/* Objects held by a node killed with -9 are made again from their lineage when needed: by tasks
 * reading them (a two-step chain: the rebuild of the second needs the first again) and by
 * dray_get. Results equal the independently computed ones. */
TEST(lost_objects_are_rebuilt_from_lineage)
{
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    enum { N = 6, SIZE = 1 << 20 };
    dray_ref *objs[N], *bumped[N];
    for (int i = 0; i < N; i++)
        objs[i] = submit_on(rt, "ct_make_bytes", dray_int(SIZE + i), NULL);
    ASSERT_OK(dray_wait(rt, objs, N, N, 20000, NULL, NULL));
    for (int i = 0; i < N; i++)
        bumped[i] = submit_on(rt, "cl_bump_bytes", dray_value_of_ref(objs[i]), NULL);
    ASSERT_OK(dray_wait(rt, bumped, N, N, 20000, NULL, NULL));
    ASSERT_EQ(ct_client_stat(rt, "stored_results"), 2 * N);
    for (int i = 0; i < 200 && ct_store_stat(&f, f.workers[0], "objects") +
                                   ct_store_stat(&f, f.workers[1], "objects") < 2 * N; i++) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    int64_t on0 = ct_store_stat(&f, f.workers[0], "objects");
    ASSERT_GE(on0, 1); /* both nodes made some (least loaded placement) */
    ASSERT_EQ(kill(f.workers[0], SIGKILL), 0);
    int st;
    waitpid(f.workers[0], &st, 0);
    f.workers[0] = -1;
    for (int i = 0; i < N; i++) {
        /* sum of (byte + 1) mod 256 over the bytes made by ct_make_bytes (all < 251) */
        dray_ref *sum = submit_on(rt, "ct_sum_bytes", dray_value_of_ref(bumped[i]), NULL);
        ASSERT_EQ(ct_get_int(rt, sum), ct_made_sum(SIZE + i) + SIZE + i);
        dray_ref_release(sum);
    }
    for (int i = 0; i < N; i++) {
        dray_value v;
        ASSERT_OK(dray_get(rt, objs[i], 20000, &v));
        size_t len;
        const uint8_t *p = dray_bytes_data(&v, &len);
        ASSERT_EQ((int64_t)len, SIZE + i);
        int64_t sum = 0;
        for (size_t k = 0; k < len; k++)
            sum += p[k];
        ASSERT_EQ(sum, ct_made_sum(SIZE + i));
        dray_value_release(&v);
    }
    int64_t rebuilt = ct_client_stat(rt, "objects_rebuilt");
    ASSERT_GE(rebuilt, 1);
    ASSERT_LE(rebuilt, on0);
    for (int i = 0; i < N; i++) {
        dray_ref_release(objs[i]);
        dray_ref_release(bumped[i]);
    }
    ct_wait_store_stat(&f, f.workers[1], "objects", 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

/* With locality made absolute (DRAY_LOCALITY_SLACK=1000) every consumer of an object goes to the
 * node holding it; the idle node then takes queued ones back (work stealing) and pulls the input. */
TEST(idle_node_steals_queued_tasks)
{
    test_cluster f;
    start_left_right(&f);
    setenv("DRAY_LOCALITY_SLACK", "1000", 1);
    dray_runtime *rt = test_cluster_driver(&f);
    unsetenv("DRAY_LOCALITY_SLACK");
    enum { N = 12, SIZE = 1 << 20 };
    dray_ref *obj = submit_on(rt, "ct_make_bytes", dray_int(SIZE), "left");
    ASSERT_OK(dray_wait(rt, &obj, 1, 1, 20000, NULL, NULL));
    dray_ref *sums[N];
    for (int i = 0; i < N; i++)
        sums[i] = submit_on(rt, "cl_slow_sum_bytes", dray_value_of_ref(obj), NULL);
    ASSERT_EQ(ct_client_stat(rt, "placed_local"), N);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(ct_get_int(rt, sums[i]), ct_made_sum(SIZE));
        dray_ref_release(sums[i]);
    }
    ASSERT_GE(ct_client_stat(rt, "steal_requests"), 1);
    ASSERT_GE(ct_client_stat(rt, "tasks_stolen"), 1);
    /* The thief read the input from the other node. */
    ct_wait_store_stat(&f, f.workers[1], "pulls", 1);
    dray_ref_release(obj);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

RUN_TESTS(T_(worker_main), T_(tasks_refs_errors_and_data), T_(killed_worker_tasks_are_retried),
          T_(lost_tasks_fail_instead_of_hanging), T_(wrong_secret_is_refused),
          T_(garbage_to_every_port_is_survived), T_(cli_status_lists_nodes),
          T_(actors_run_on_a_node_in_order), T_(actor_restarts_when_its_node_is_killed),
          T_(submit_driver_main), T_(submit_starts_and_stops_its_workers),
          T_(graph_survives_a_killed_worker), T_(node_joining_mid_job_gets_work),
          T_(objects_stay_on_their_node_and_are_freed), T_(objects_move_node_to_node),
          T_(objects_spill_to_disk_and_round_trip), T_(lost_objects_are_rebuilt_from_lineage),
          T_(idle_node_steals_queued_tasks))
