/* The head's dashboard shows the cluster's work: a head (`dray start --head`) and two worker
 * processes started from this executable (so they have its task functions) on 127.0.0.1. Once a
 * client reads the API the nodes record; a known workload (tasks of named functions, some failing,
 * some placed on each node, one object pulled node to node) must appear exactly: counts by function
 * and by node against what was submitted and against the head's own per-node counters (`dray
 * status`), stream rows of both nodes' threads, clock offsets near zero on one machine, and a node
 * joining and dying shown without anything restarted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dray/dray.h"
#include "test.h"
#include "cluster_fx.h"

DRAY_FUNCTION(ca_square)
{
    *result = dray_int(args[0].u.i * args[0].u.i);
    return DRAY_OK;
}

DRAY_FUNCTION(ca_slow)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    *result = dray_int(args[0].u.i + 1);
    return DRAY_OK;
}

DRAY_FUNCTION(ca_boom)
{
    return dray_ctx_fail(ctx, DRAY_ETASK, "boom on input %lld", (long long)args[0].u.i);
}

DRAY_FUNCTION(ca_make_bytes)
{
    void *p;
    dray_status st = dray_bytes_create_uninit((size_t)args[0].u.i, result, &p);
    if (!st)
        memset(p, 3, (size_t)args[0].u.i);
    return st;
}

DRAY_FUNCTION(ca_sum_bytes)
{
    size_t n;
    const uint8_t *p = dray_bytes_data(&args[0], &n);
    int64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    *result = dray_int(s);
    return DRAY_OK;
}

static cJSON *get(const fx *f, const char *path)
{
    char *body = NULL;
    int status = 0;
    ASSERT_OK(dray_serve_http_request("127.0.0.1", f->dport, "GET", path, NULL, 0, 10, &status,
                                      &body));
    ASSERT_EQ(status, 200);
    cJSON *j = cJSON_Parse(body);
    dray_free(body);
    ASSERT_TRUE(j != NULL);
    return j;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItem(o, k);
    ASSERT_TRUE(cJSON_IsNumber(x));
    return cJSON_GetNumberValue(x);
}

/* The API's node entry with id `id` (owned by j). */
static const cJSON *api_node(const cJSON *j, int id)
{
    char want[16];
    snprintf(want, sizeof want, "%d", id);
    const cJSON *n;
    cJSON_ArrayForEach(n, j)
    {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(n, "id")), want))
            return n;
    }
    return NULL;
}

/* Waits (bounded) until the node with this id is alive/dead and recording, as asked. */
static void wait_node(const fx *f, int id, bool alive, bool recording)
{
    for (int i = 0; i < 300; i++) {
        cJSON *j = get(f, "/api/v0/nodes");
        const cJSON *n = api_node(j, id);
        bool ok = n && cJSON_IsTrue(cJSON_GetObjectItem(n, "alive")) == alive &&
                  (!recording || cJSON_IsTrue(cJSON_GetObjectItem(n, "recording")));
        cJSON_Delete(j);
        if (ok)
            return;
        nap_ms(50);
    }
    ASSERT_TRUE(!"node state not reached");
}

static const cJSON *fn_entry(const cJSON *tasks, const char *name)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(tasks, "by_function"))
    {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(x, "name")), name))
            return x;
    }
    return NULL;
}

static double fn_field(const cJSON *tasks, const char *name, const char *field)
{
    const cJSON *x = fn_entry(tasks, name);
    return x ? num(x, field) : 0;
}

/* The driver's client counters: tasks placed on nodes (sent) and tasks taken back by stealing. */
static void placed(dray_runtime *rt, int64_t *sent, int64_t *stolen)
{
    dray_value m;
    ASSERT_OK(dray_cluster_client_stats(rt, &m));
    *sent = dray_map_get(&m, "placed_local")->u.i + dray_map_get(&m, "placed_load")->u.i +
            dray_map_get(&m, "placed_spill")->u.i;
    *stolen = dray_map_get(&m, "tasks_stolen")->u.i;
    dray_value_release(&m);
}

static dray_ref *submit(dray_runtime *rt, const char *fn, dray_value arg, const char *res)
{
    dray_resource r = {res, 1};
    dray_task_opts o = {0};
    o.resources = &r;
    o.n_resources = res ? 1 : 0;
    dray_ref *out;
    ASSERT_OK(dray_submit(rt, fn, &arg, 1, res ? &o : NULL, &out));
    return out;
}

/* In a worker process (DRAY_WORKER_ADDRESS set) dray_init becomes the node; else a no-op test. */
TEST(worker_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

enum { N_SQUARE = 400, N_PLACED = 10, N_SLOW = 40, N_BOOM = 15, OBJ = 1 << 20 };

TEST(head_api_shows_cluster_work)
{
    fx f;
    fx_start(&f, "4000000"); /* the right node spills above 2.8 MB */
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 1;
    cfg.progress = 0;
    cfg.address = f.c.addr;
    dray_runtime *rt = NULL;
    ASSERT_OK(dray_init(&cfg, &rt)); /* waits for both nodes */
    int left = fx_node_of(&f, f.c.workers[0], NULL), right = fx_node_of(&f, f.c.workers[1], NULL);
    ASSERT_NE(left, right);
    /* Nobody watched yet: nothing recorded. Reading the API turns recording on at both nodes. */
    cJSON *sum = get(&f, "/api/v0/summary");
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(sum, "mode")), "head");
    ASSERT_EQ((int)num(sum, "events_recorded"), 0);
    cJSON_Delete(sum);
    wait_node(&f, left, true, true);
    wait_node(&f, right, true, true);
    int64_t done0[2];
    fx_node_of(&f, f.c.workers[0], &done0[0]);
    fx_node_of(&f, f.c.workers[1], &done0[1]);
    int64_t sent0, stolen0, sent1, stolen1;
    placed(rt, &sent0, &stolen0);

    /* The workload. */
    enum { TOTAL = N_SQUARE + 2 * N_PLACED + N_SLOW + N_BOOM + 2 };
    dray_ref *refs[TOTAL];
    size_t k = 0;
    int64_t want_sq = 0;
    for (int i = 0; i < N_SQUARE; i++, want_sq += (int64_t)i * i)
        refs[k++] = submit(rt, "ca_square", dray_int(i + 1), NULL);
    for (int i = 0; i < N_PLACED; i++) {
        refs[k++] = submit(rt, "ca_square", dray_int(0), "left");
        refs[k++] = submit(rt, "ca_square", dray_int(0), "right");
    }
    for (int i = 0; i < N_SLOW; i++)
        refs[k++] = submit(rt, "ca_slow", dray_int(i), NULL);
    for (int i = 0; i < N_BOOM; i++)
        refs[k++] = submit(rt, "ca_boom", dray_int(i), NULL);
    /* An object made on the left node and read on the right one: pulled node to node. */
    dray_ref *obj = submit(rt, "ca_make_bytes", dray_int(OBJ), "left");
    refs[k++] = obj;
    refs[k++] = submit(rt, "ca_sum_bytes", dray_value_of_ref(obj), "right");
    ASSERT_EQ(k, (size_t)TOTAL);
    int64_t got_sq = 0;
    for (size_t i = 0; i < k; i++) {
        dray_value v;
        dray_status st = dray_get(rt, refs[i], 30000, &v);
        if (i < N_SQUARE)
            got_sq += v.u.i;
        if (i >= (size_t)(N_SQUARE + 2 * N_PLACED + N_SLOW) && i < (size_t)(TOTAL - 2))
            ASSERT_STATUS(st, DRAY_ETASK);
        else
            ASSERT_OK(st);
        if (i == (size_t)TOTAL - 1)
            ASSERT_EQ(v.u.i, 3 * (int64_t)OBJ);
        dray_value_release(&v);
    }
    ASSERT_EQ(got_sq, want_sq);

    /* The head's answer settles once the nodes' batches (every 100 ms) and heartbeats came. */
    cJSON *tasks = NULL;
    for (int i = 0; i < 300; i++) {
        cJSON_Delete(tasks);
        tasks = get(&f, "/api/v0/tasks");
        if (num(cJSON_GetObjectItem(tasks, "by_state"), "finished") >= TOTAL &&
            fn_field(tasks, "node.pull", "transfer_bytes") >= OBJ)
            break;
        nap_ms(50);
    }
    ASSERT_EQ((int)fn_field(tasks, "ca_square", "done"), N_SQUARE + 2 * N_PLACED);
    ASSERT_EQ((int)fn_field(tasks, "ca_square", "failed"), 0);
    ASSERT_EQ((int)fn_field(tasks, "ca_square", "submitted"), N_SQUARE + 2 * N_PLACED);
    ASSERT_EQ((int)fn_field(tasks, "ca_slow", "done"), N_SLOW);
    ASSERT_EQ((int)fn_field(tasks, "ca_boom", "done"), 0);
    ASSERT_EQ((int)fn_field(tasks, "ca_boom", "failed"), N_BOOM);
    ASSERT_EQ((int)fn_field(tasks, "ca_boom", "pending"), 0);
    ASSERT_EQ((int)fn_field(tasks, "ca_make_bytes", "done"), 1);
    ASSERT_EQ((int)fn_field(tasks, "ca_sum_bytes", "done"), 1);
    /* ca_slow sleeps 1 ms: its time is at least that per task. */
    ASSERT_TRUE(fn_field(tasks, "ca_slow", "total_s") >= N_SLOW * 0.001);
    ASSERT_TRUE(fn_field(tasks, "ca_slow", "max_ms") >= 1.0);
    /* The pull of the object to the right node, from its heartbeats' store counters. */
    ASSERT_EQ((long)fn_field(tasks, "node.pull", "transfer_bytes"), (long)OBJ);
    const cJSON *bs = cJSON_GetObjectItem(tasks, "by_state");
    ASSERT_EQ((int)num(bs, "finished"), TOTAL);
    ASSERT_EQ((int)num(bs, "failed"), N_BOOM);
    ASSERT_EQ((int)num(bs, "submitted"), TOTAL);
    /* ... which is what the driver sent to the nodes, less what it took back (its own counters). */
    placed(rt, &sent1, &stolen1);
    ASSERT_EQ((int64_t)num(bs, "submitted"), (sent1 - sent0) - (stolen1 - stolen0));
    ASSERT_EQ((int)num(bs, "pending"), 0);
    /* Per node: the events equal the head's own counters (its heartbeats), as `dray status` shows. */
    int64_t done1[2] = {0, 0};
    for (int i = 0; i < 200; i++) {
        fx_node_of(&f, f.c.workers[0], &done1[0]);
        fx_node_of(&f, f.c.workers[1], &done1[1]);
        if (done1[0] - done0[0] + done1[1] - done0[1] == TOTAL)
            break;
        nap_ms(50);
    }
    ASSERT_EQ(done1[0] - done0[0] + done1[1] - done0[1], TOTAL);
    const cJSON *bn;
    int seen_nodes = 0;
    cJSON_ArrayForEach(bn, cJSON_GetObjectItem(tasks, "by_node"))
    {
        int id = atoi(cJSON_GetStringValue(cJSON_GetObjectItem(bn, "node")));
        int w = id == left ? 0 : id == right ? 1 : -1;
        ASSERT_NE(w, -1);
        ASSERT_EQ((long)(num(bn, "done") + num(bn, "failed")), (long)(done1[w] - done0[w]));
        ASSERT_GE((long)num(bn, "done"), N_PLACED + (w == 0 ? 1 : 1));
        ASSERT_EQ((int)num(bn, "dropped"), 0);
        seen_nodes++;
    }
    ASSERT_EQ(seen_nodes, 2);
    cJSON_Delete(tasks);
    char cmd[4300], out[4096] = {0};
    snprintf(cmd, sizeof cmd, "%s status --address %s", f.c.dray, f.c.addr);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    size_t nread = fread(out, 1, sizeof out - 1, p);
    out[nread] = 0;
    ASSERT_EQ(pclose(p), 0);
    ASSERT_CONTAINS(out, "2 live node(s), 4 CPU(s)");

    /* The stream: every block of both nodes, rows named node-N/thread, counts adding up. */
    cJSON *s = get(&f, "/api/v0/stream?since=0&limit=20000");
    double now_ms = num(s, "now_ms");
    int by_fn[3] = {0, 0, 0}, errors = 0, transfers = 0;
    bool row_of[2] = {false, false};
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(s, "events"))
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(e, "kind"));
        int count = (int)num(e, "count"), row = (int)num(e, "row");
        ASSERT_TRUE(num(e, "start_ms") <= num(e, "stop_ms"));
        ASSERT_TRUE(num(e, "stop_ms") <= now_ms + 1);
        ASSERT_TRUE(num(e, "start_ms") > -1000);
        int node = atoi(cJSON_GetStringValue(cJSON_GetObjectItem(e, "node")));
        ASSERT_EQ(node, row / 1000);
        if (!strcmp(kind, "task") && row % 1000 < 500)
            row_of[node == right] = true;
        if (!strcmp(name, "ca_square") && !strcmp(kind, "task"))
            by_fn[0] += count;
        if (!strcmp(name, "ca_slow") && !strcmp(kind, "task"))
            by_fn[1] += count;
        if (!strcmp(name, "ca_boom")) {
            ASSERT_STREQ(kind, "error");
            ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "status")), "DRAY_ETASK");
            by_fn[2] += count;
            errors++;
        }
        if (!strcmp(kind, "transfer")) {
            ASSERT_STREQ(name, "node.pull");
            ASSERT_EQ(node, right);
            ASSERT_EQ(row % 1000, 999);
            ASSERT_EQ((long)num(e, "bytes"), (long)OBJ);
            transfers++;
        }
    }
    ASSERT_EQ(by_fn[0], N_SQUARE + 2 * N_PLACED);
    ASSERT_EQ(by_fn[1], N_SLOW);
    ASSERT_EQ(by_fn[2], N_BOOM);
    ASSERT_EQ(errors, N_BOOM); /* a failed task is its own block */
    ASSERT_EQ(transfers, 1);
    ASSERT_TRUE(row_of[0] && row_of[1]);
    char want[32];
    int named[2] = {0, 0};
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(s, "rows"))
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(r, "name"));
        for (int w = 0; w < 2; w++) {
            snprintf(want, sizeof want, "node-%d/", w == 0 ? left : right);
            named[w] += !strncmp(name, want, strlen(want));
        }
    }
    ASSERT_TRUE(named[0] >= 1 && named[1] >= 1);
    cJSON_Delete(s);

    /* Workers: the threads of both nodes, tasks adding up to the stream's. */
    cJSON *ws = get(&f, "/api/v0/workers");
    double wtasks = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, ws) wtasks += num(w, "tasks");
    ASSERT_EQ((int)wtasks, TOTAL);
    cJSON_Delete(ws);
    /* Nodes: one CPU clock on one machine: the estimated offsets are within the round trip. */
    cJSON *ns = get(&f, "/api/v0/nodes");
    for (int i = 0; i < 2; i++) {
        const cJSON *n = api_node(ns, i == 0 ? left : right);
        ASSERT_TRUE(n != NULL);
        double off = num(n, "clock_offset_ms"), rtt = num(n, "clock_rtt_ms");
        ASSERT_TRUE(rtt >= 0 && fabs(off) <= rtt / 2 + 1.0);
        ASSERT_GE(cJSON_GetArraySize(cJSON_GetObjectItem(n, "workers")), 1);
    }
    cJSON_Delete(ns);
    /* Memory over time: the nodes' resident bytes summed once a second. */
    cJSON *m = get(&f, "/api/v0/memory");
    const cJSON *last = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "samples"),
                                           cJSON_GetArraySize(cJSON_GetObjectItem(m, "samples")) - 1);
    ASSERT_TRUE(last != NULL && num(last, "rss_bytes") > 1e6);
    cJSON_Delete(m);
    /* Prometheus per function. */
    char *body = NULL;
    int status = 0;
    ASSERT_OK(dray_serve_http_request("127.0.0.1", f.dport, "GET", "/metrics", NULL, 0, 10, &status,
                                      &body));
    snprintf(want, sizeof want, "outcome=\"failed\"} %d", N_BOOM);
    ASSERT_CONTAINS(body, "dray_function_tasks_total{function=\"ca_boom\"");
    ASSERT_CONTAINS(body, want);
    dray_free(body);

    /* Spills: objects made on the right node (4 MB limit) go to disk; the head's view of its
     * heartbeats' counters (node.spill on its store row) equals its own status. */
    dray_ref *big[3];
    for (int i = 0; i < 3; i++)
        big[i] = submit(rt, "ca_make_bytes", dray_int(1200000 + i), "right");
    ASSERT_OK(dray_wait(rt, big, 3, 3, 20000, NULL, NULL));
    int64_t spilled = 0;
    double api_spilled = -1;
    for (int i = 0; i < 200; i++) {
        dray_value stv;
        ASSERT_OK(dray_cluster_status(f.c.addr, &stv));
        const dray_value *nodes = dray_map_get(&stv, "nodes");
        for (size_t n = 0; n < dray_list_len(nodes); n++)
            if (dray_map_get(dray_list_get(nodes, n), "id")->u.i == right)
                spilled = dray_map_get(dray_map_get(dray_list_get(nodes, n), "store"),
                                       "spilled_bytes")->u.i;
        dray_value_release(&stv);
        cJSON *t = get(&f, "/api/v0/tasks");
        api_spilled = fn_field(t, "node.spill", "spill_bytes");
        cJSON_Delete(t);
        if (spilled > 0 && api_spilled == (double)spilled)
            break;
        nap_ms(50);
    }
    ASSERT_GT(spilled, 0);
    ASSERT_EQ((long)api_spilled, (long)spilled);
    cJSON *s3 = get(&f, "/api/v0/stream?since=0&limit=20000");
    long spill_blocks = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(s3, "events"))
    {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "kind")), "spill")) {
            ASSERT_EQ((int)num(e, "row"), right * 1000 + 999);
            spill_blocks += (long)num(e, "bytes");
        }
    }
    ASSERT_EQ(spill_blocks, (long)spilled);
    cJSON_Delete(s3);
    for (int i = 0; i < 3; i++)
        dray_ref_release(big[i]);

    /* A node joining mid-run appears and records; killed, it is shown dead. */
    fx_add_worker(&f, "extra=1", NULL);
    int extra = -1;
    for (int i = 0; i < 200 && extra < 0; i++) {
        cJSON *j = get(&f, "/api/v0/nodes");
        if (cJSON_GetArraySize(j) == 3)
            extra = fx_node_of(&f, f.c.workers[2], NULL);
        cJSON_Delete(j);
        if (extra < 0)
            nap_ms(50);
    }
    ASSERT_GE(extra, 0);
    wait_node(&f, extra, true, true);
    dray_ref *x = submit(rt, "ca_square", dray_int(5), "extra");
    dray_value xv;
    ASSERT_OK(dray_get(rt, x, 20000, &xv));
    ASSERT_EQ(xv.u.i, 25);
    dray_ref_release(x);
    for (int i = 0; i < 200; i++) {
        cJSON *j = get(&f, "/api/v0/tasks");
        int d = (int)fn_field(j, "ca_square", "done");
        cJSON_Delete(j);
        if (d == N_SQUARE + 2 * N_PLACED + 1)
            break;
        nap_ms(50);
    }
    cJSON *s2 = get(&f, "/api/v0/stream?since=0&limit=20000");
    /* A row of one of its executors (node-N/K). */
    bool extra_row = false;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(s2, "rows"))
    {
        int row = (int)num(r, "row");
        snprintf(want, sizeof want, "node-%d/%d", extra, row % 1000);
        if (row / 1000 == extra && row % 1000 < 500 &&
            !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "name")), want))
            extra_row = true;
    }
    ASSERT_TRUE(extra_row);
    cJSON_Delete(s2);
    kill(f.c.workers[2], SIGKILL);
    waitpid(f.c.workers[2], NULL, 0);
    f.c.workers[2] = -1;
    wait_node(&f, extra, false, false);
    cJSON *sum2 = get(&f, "/api/v0/summary");
    ASSERT_EQ((int)num(sum2, "nodes_alive"), 2);
    ASSERT_TRUE(num(sum2, "cpu_pct") >= 0);
    ASSERT_EQ((int)num(cJSON_GetObjectItem(sum2, "tasks"), "failed"), N_BOOM);
    ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(sum2, "recording")));
    cJSON_Delete(sum2);

    for (size_t i = 0; i < k; i++)
        dray_ref_release(refs[i]);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    ASSERT_TRUE(fx_stop(&f)); /* no sanitizer report from the head */
}

RUN_TESTS(T_(worker_main), T_(head_api_shows_cluster_work))
