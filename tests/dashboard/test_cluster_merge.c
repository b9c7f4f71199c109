/* The head's merge of its nodes' events (src/dashboard/cluster.c), fed directly as the head's loop
 * would: a node whose clock runs 5 s ahead of the head's lands on the head's clock (the offset from
 * the TRACE/EVENTS round trip, the shortest round trip of recent samples winning), counts by function
 * and node and submissions add up, names outlive the batch that brought them, and heartbeats' store
 * counters become transfer/spill/unspill blocks on the node's store row, only once watched. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cluster/internal.h"
#include "dray/dray.h"
#include "test.h"

/* The head's hooks (src/dashboard/cluster.c). */
bool dray__dashboard_head_watched(void *d);
void dray__dashboard_head_events(void *d, int node, const dray_value *ctl, int64_t now_ns);
void dray__dashboard_head_ping(void *d, int node, const int64_t *store, int64_t rss, int64_t done,
                               int64_t now_ns);

static void put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void rec(uint8_t *r, int64_t t0, int64_t t1, uint32_t count, int name, int kind, int status,
                int row)
{
    memset(r, 0, DRAY__EVREC);
    put(r, (uint64_t)t0, 8);
    put(r + 8, (uint64_t)t1, 8);
    put(r + 24, count, 4);
    put(r + 28, (uint64_t)name, 2);
    r[30] = (uint8_t)kind;
    put(r + 32, (uint64_t)(uint16_t)(int16_t)status, 2);
    put(r + 34, (uint64_t)(uint16_t)(int16_t)row, 2);
    put(r + 36, 4242, 4);
}

/* An EVENTS batch (checked by the wire decoder first, as on the head) with names "alpha", "beta". */
static dray_value batch(int64_t t1, int64_t t2, int64_t t3, const uint8_t *recs, size_t n,
                        int64_t sub_alpha)
{
    char *a = strdup("alpha"), *b = strdup("beta"); /* freed below: the head must copy */
    dray_value names[2], items[7] = {dray_int(t1), dray_int(t2), dray_int(t3), dray_int(3)},
                         pair[2] = {dray_int(0), dray_int(sub_alpha)}, sub, v;
    ASSERT_OK(dray_string_create(a, &names[0]));
    ASSERT_OK(dray_string_create(b, &names[1]));
    free(a);
    free(b);
    ASSERT_OK(dray_list_create(names, 2, &items[4]));
    void *p;
    ASSERT_OK(dray_bytes_create_uninit(n * DRAY__EVREC, &items[5], &p));
    if (n)
        memcpy(p, recs, n * DRAY__EVREC);
    ASSERT_OK(dray_list_create(pair, 2, &sub));
    ASSERT_OK(dray_list_create(&sub, 1, &items[6]));
    ASSERT_OK(dray_list_create(items, 7, &v));
    for (int i = 0; i < 2; i++)
        dray_value_release(&names[i]);
    dray_value_release(&sub);
    for (int i = 4; i < 7; i++)
        dray_value_release(&items[i]);
    /* Through the decoder, as the head receives it. */
    void *enc;
    size_t len;
    ASSERT_OK(dray_value_encode(&v, &enc, &len));
    uint8_t *msg = malloc(DRAY__WIRE_HDR + len);
    dray__hdr h = {DRAY__MSG_EVENTS, 0, (uint32_t)len, 0, 0};
    dray__wire_put_header(msg, &h);
    memcpy(msg + DRAY__WIRE_HDR, enc, len);
    dray_free(enc);
    dray_value_release(&v);
    dray_value out;
    ASSERT_OK(dray__wire_decode_message(msg, DRAY__WIRE_HDR + len, &h, &out));
    free(msg);
    return out;
}

static cJSON *get(dray_dashboard *d, const char *path)
{
    char *body = NULL;
    const char *ct;
    int status = 0;
    ASSERT_OK(dray_dashboard_api(d, path, &status, &body, &ct));
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

static const cJSON *fn(const cJSON *tasks, const char *name)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(tasks, "by_function"))
    {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(x, "name")), name))
            return x;
    }
    return NULL;
}

/* The head history's start on the head's clock, from a stream answer's now_ms; *slack_ms gets
 * how far off that can be (half the time the request took: a loaded machine can stall it). */
static double start_ns(dray_dashboard *d, double *slack_ms)
{
    int64_t before = dray_events_now_ns();
    cJSON *s = get(d, "/api/v0/stream?since=0&limit=1");
    int64_t after = dray_events_now_ns();
    double now_ms = num(s, "now_ms");
    cJSON_Delete(s);
    *slack_ms = (double)(after - before) / 2e6;
    return (double)(before + after) / 2 - now_ms * 1e6;
}

TEST(node_events_land_on_the_heads_clock)
{
    dray_dashboard_opts o;
    dray_dashboard_opts_init(&o);
    o.cluster_address = "127.0.0.1:1"; /* no head answers: no node table, only the merged events */
    dray_dashboard *d;
    ASSERT_OK(dray_dashboard_start(NULL, &o, &d));
    ASSERT_TRUE(!dray__dashboard_head_watched(d));
    cJSON_Delete(get(d, "/api/v0/summary")); /* a client: the nodes should record */
    ASSERT_TRUE(dray__dashboard_head_watched(d));

    /* Node 3's clock is 5 s ahead; 1 ms each way, 2 ms at the node between TRACE and EVENTS. */
    const int64_t skew = 5000000000LL, ms = 1000000;
    int64_t t1 = dray_events_now_ns(), t2 = t1 + skew + ms, t3 = t2 + 2 * ms, t4 = t3 - skew + ms;
    uint8_t r[4 * DRAY__EVREC];
    rec(r, t2 + 1 * ms, t2 + 3 * ms, 10, 0, DRAY_EVENT_TASK, 0, 0);               /* node-3/0 */
    rec(r + DRAY__EVREC, t2 + 3 * ms, t2 + 4 * ms, 1, 1, DRAY_EVENT_ERROR, DRAY_ETASK, 1);
    rec(r + 2 * DRAY__EVREC, t2, t2 + ms, 2, 0, DRAY_EVENT_TASK, 0, -2);         /* thread-0 */
    rec(r + 3 * DRAY__EVREC, t2, t2 + ms, 1, 1, DRAY_EVENT_TASK, 0, -1);         /* other */
    dray_value b = batch(t1, t2, t3, r, 4, 14);
    dray__dashboard_head_events(d, 3, &b, t4);
    dray_value_release(&b);
    /* A later sample with a longer round trip and a skewed split does not move the offset. */
    int64_t u1 = t1 + 100 * ms, u2 = u1 + skew + 9 * ms, u3 = u2 + ms, u4 = u3 - skew + ms;
    rec(r, u2 + ms, u2 + 2 * ms, 1, 1, DRAY_EVENT_TASK, 0, 0);
    b = batch(u1, u2, u3, r, 1, -1); /* one task of alpha taken back (stolen) */
    dray__dashboard_head_events(d, 3, &b, u4);
    dray_value_release(&b);

    double slack;
    double s0 = start_ns(d, &slack);
    cJSON *s = get(d, "/api/v0/stream?since=0&limit=100");
    const cJSON *evs = cJSON_GetObjectItem(s, "events");
    ASSERT_EQ(cJSON_GetArraySize(evs), 5);
    /* The first block: node time t2 + 1 ms is head time t1 + 2 ms (offset exactly 5 s). */
    const cJSON *e0 = cJSON_GetArrayItem(evs, 0);
    double want0 = ((double)(t1 + 2 * ms) - s0) / 1e6;
    ASSERT_TRUE(fabs(num(e0, "start_ms") - want0) < 0.2 + slack);
    ASSERT_TRUE(fabs(num(e0, "stop_ms") - num(e0, "start_ms") - 2.0) < 1e-6);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(e0, "name")), "alpha");
    ASSERT_EQ((int)num(e0, "row"), 3000);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(e0, "node")), "3");
    const cJSON *e1 = cJSON_GetArrayItem(evs, 1);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(e1, "kind")), "error");
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(e1, "status")), "DRAY_ETASK");
    /* The second batch's block: the 5 s offset still applies (its sample had the longer trip). */
    const cJSON *e4 = cJSON_GetArrayItem(evs, 4);
    double want4 = ((double)(u2 + ms - skew) - s0) / 1e6;
    ASSERT_TRUE(fabs(num(e4, "start_ms") - want4) < 0.2 + slack);
    /* Rows: node-3/0, node-3/1, node-3/thread-0, node-3/other. */
    const char *want_rows[][2] = {{"3000", "node-3/0"}, {"3001", "node-3/1"},
                                  {"3501", "node-3/thread-0"}, {"3500", "node-3/other"}};
    for (size_t i = 0; i < 4; i++) {
        bool found = false;
        const cJSON *row;
        cJSON_ArrayForEach(row, cJSON_GetObjectItem(s, "rows"))
        {
            char id[16];
            snprintf(id, sizeof id, "%d", (int)num(row, "row"));
            if (!strcmp(id, want_rows[i][0]))
                found = !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(row, "name")),
                                want_rows[i][1]);
        }
        ASSERT_TRUE(found);
    }
    cJSON_Delete(s);

    /* Counts: alpha 10 + 2 + 0 done, beta 1 + 1 done and 1 failed; submitted 14 - 1; by node 3. */
    cJSON *t = get(d, "/api/v0/tasks");
    ASSERT_EQ((int)num(fn(t, "alpha"), "done"), 12);
    ASSERT_EQ((int)num(fn(t, "alpha"), "submitted"), 13);
    ASSERT_EQ((int)num(fn(t, "alpha"), "pending"), 1);
    ASSERT_EQ((int)num(fn(t, "beta"), "done"), 2);
    ASSERT_EQ((int)num(fn(t, "beta"), "failed"), 1);
    const cJSON *bs = cJSON_GetObjectItem(t, "by_state");
    ASSERT_EQ((int)num(bs, "finished"), 15);
    ASSERT_EQ((int)num(bs, "failed"), 1);
    const cJSON *bn = cJSON_GetArrayItem(cJSON_GetObjectItem(t, "by_node"), 0);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(bn, "node")), "3");
    ASSERT_EQ((int)num(bn, "done"), 14);
    ASSERT_EQ((int)num(bn, "dropped"), 3);
    ASSERT_EQ((int)num(t, "dropped"), 3);
    cJSON_Delete(t);

    /* Heartbeats: the store counters' increase between two is one block per kind on node-3/store. */
    int64_t st0[DRAY__STORE_NSTATS] = {0}, st1[DRAY__STORE_NSTATS] = {0};
    dray__store_stats *c = (dray__store_stats *)(void *)st1; /* the same counters, by name */
    c->pulls = 2;
    c->pulled_bytes = 4096;
    c->spilled = 3;
    c->spilled_bytes = 9000;
    c->read_back = 1;
    c->bytes_mem = 777;
    int64_t p0 = dray_events_now_ns();
    dray__dashboard_head_ping(d, 3, st0, 10 << 20, 5, p0);
    dray__dashboard_head_ping(d, 3, st1, 12 << 20, 9, p0 + 500 * ms);
    dray__dashboard_head_ping(d, 3, st1, 12 << 20, 9, p0 + 1000 * ms); /* no change: nothing */
    s = get(d, "/api/v0/stream?since=5&limit=100");
    evs = cJSON_GetObjectItem(s, "events");
    ASSERT_EQ(cJSON_GetArraySize(evs), 3);
    const char *kinds[] = {"transfer", "spill", "unspill"}, *names[] = {"node.pull", "node.spill",
                                                                          "node.unspill"};
    const double bytes[] = {4096, 9000, 0}, counts[] = {2, 3, 1};
    for (int i = 0; i < 3; i++) {
        const cJSON *e = cJSON_GetArrayItem(evs, i);
        ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "kind")), kinds[i]);
        ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")), names[i]);
        ASSERT_EQ((int)num(e, "row"), 3999);
        ASSERT_EQ(num(e, "bytes"), bytes[i]);
        ASSERT_EQ(num(e, "count"), counts[i]);
        ASSERT_TRUE(fabs(num(e, "stop_ms") - num(e, "start_ms") - 500.0) < 1e-3);
    }
    cJSON_Delete(s);
    /* Memory: the latest sample sums the node's heartbeat (RSS, store bytes, tasks done). */
    cJSON *m = get(d, "/api/v0/memory");
    const cJSON *samples = cJSON_GetObjectItem(m, "samples");
    const cJSON *last = cJSON_GetArrayItem(samples, cJSON_GetArraySize(samples) - 1);
    ASSERT_EQ(num(last, "rss_bytes"), (double)(12 << 20));
    ASSERT_EQ(num(last, "object_store_bytes"), 777);
    ASSERT_EQ(num(last, "tasks_done"), 9);
    cJSON_Delete(m);
    /* Workers: one per row, tasks from the task blocks only. */
    cJSON *w = get(d, "/api/v0/workers");
    double tasks = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, w)
    {
        tasks += num(x, "tasks");
        ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(x, "cpu_pct")));
    }
    ASSERT_EQ(tasks, 15);
    cJSON_Delete(w);
    /* A node id out of range is ignored. */
    b = batch(t1, t2, t3, r, 1, 1);
    dray__dashboard_head_events(d, 5000, &b, t4);
    dray__dashboard_head_events(d, -1, &b, t4);
    dray_value_release(&b);
    t = get(d, "/api/v0/tasks");
    ASSERT_EQ((int)num(cJSON_GetObjectItem(t, "by_state"), "finished"), 15);
    cJSON_Delete(t);
    dray_dashboard_stop(d);
}

RUN_TESTS(T_(node_events_land_on_the_heads_clock))
