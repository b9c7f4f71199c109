/* Wrapper tasks on the task stream (what a cluster node's executor task does): a task that runs
 * another function renames its block with dray__ev_task_rename, and a failure it reports with
 * dray__ev_task_failed is an error block. Runs of one real function through the wrapper coalesce;
 * the wrapper's own name never appears; counts per function are exact. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/events.h"
#include "dray/dray.h"
#include "test.h"

static dray_status real_a(dray_ctx *ctx, const dray_value *args, size_t n, dray_value *out)
{
    (void)ctx, (void)args, (void)n;
    *out = dray_int(1);
    return DRAY_OK;
}

static dray_status real_b(dray_ctx *ctx, const dray_value *args, size_t n, dray_value *out)
{
    (void)ctx, (void)args, (void)n;
    struct timespec ts = {0, 100000}; /* 0.1 ms: its own block each (over the 50 us threshold) */
    nanosleep(&ts, NULL);
    *out = dray_int(2);
    return DRAY_OK;
}

static dray_status real_c(dray_ctx *ctx, const dray_value *args, size_t n, dray_value *out)
{
    (void)ctx, (void)args, (void)n;
    *out = dray_null();
    return DRAY_ETASK;
}

/* Holds a worker until the test opens the gate, so the tasks queue up and then run back to back. */
static _Atomic int gate_open, gate_in;

DRAY_FUNCTION(rn_gate)
{
    (void)args;
    atomic_fetch_add(&gate_in, 1);
    while (!atomic_load(&gate_open)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    *result = dray_null();
    return DRAY_OK;
}

static const dray_function fa = {"rn_real_a", real_a, NULL}, fb = {"rn_real_b", real_b, NULL},
                           fc = {"rn_real_c", real_c, NULL};

/* The wrapper: runs the function its argument names (0 a, 1 b, 2 c) under that name. */
DRAY_FUNCTION(rn_wrapper)
{
    const dray_function *f = args[0].u.i == 0 ? &fa : args[0].u.i == 1 ? &fb : &fc;
    dray_runtime *rt = dray_ctx_runtime(ctx);
    dray__ev_task_rename(rt, f);
    dray_status st = f->fn(ctx, NULL, 0, result);
    dray__ev_task_failed(rt, st);
    *result = dray_int(st);
    return DRAY_OK; /* the wrapper itself succeeds, like the cluster's */
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

static double fn_count(const cJSON *tasks, const char *name, const char *field)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(tasks, "by_function"))
    {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(x, "name")), name))
            return cJSON_GetNumberValue(cJSON_GetObjectItem(x, field));
    }
    return 0;
}

enum { NA = 3000, NB = 40, NC = 7 };

TEST(wrapper_tasks_are_named_after_what_they_run)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 2;
    cfg.progress = 0;
    dray_runtime *rt;
    ASSERT_OK(dray_init(&cfg, &rt));
    dray_dashboard *d;
    ASSERT_OK(dray_dashboard_start(rt, NULL, &d));
    /* Runs of a, then interleaved b and c among a: every switch splits a block. */
    enum { N = NA + NB + NC };
    static dray_ref *refs[N];
    dray_ref *gates[2];
    for (int i = 0; i < 2; i++)
        ASSERT_OK(dray_submit(rt, "rn_gate", NULL, 0, NULL, &gates[i]));
    for (int i = 0; i < 5000 && atomic_load(&gate_in) < 2; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ(atomic_load(&gate_in), 2);
    size_t k = 0;
    for (int i = 0; i < NA; i++) {
        dray_value a = dray_int(0);
        ASSERT_OK(dray_submit(rt, "rn_wrapper", &a, 1, NULL, &refs[k++]));
        if (i % 75 == 0 && i / 75 < NB) {
            a = dray_int(1);
            ASSERT_OK(dray_submit(rt, "rn_wrapper", &a, 1, NULL, &refs[k++]));
        }
        if (i % 400 == 0 && i / 400 < NC) {
            a = dray_int(2);
            ASSERT_OK(dray_submit(rt, "rn_wrapper", &a, 1, NULL, &refs[k++]));
        }
    }
    ASSERT_EQ(k, (size_t)N);
    atomic_store(&gate_open, 1);
    ASSERT_OK(dray_wait(rt, refs, N, N, 30000, NULL, NULL));
    ASSERT_OK(dray_wait(rt, gates, 2, 2, 30000, NULL, NULL));
    dray_ref_release(gates[0]);
    dray_ref_release(gates[1]);
    for (size_t i = 0; i < k; i++)
        dray_ref_release(refs[i]);
    cJSON *t = NULL;
    for (int i = 0; i < 200; i++) {
        cJSON_Delete(t);
        t = get(d, "/api/v0/tasks");
        if (fn_count(t, "rn_real_a", "done") + fn_count(t, "rn_real_b", "done") +
                fn_count(t, "rn_real_c", "failed") >= N)
            break;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ((int)fn_count(t, "rn_real_a", "done"), NA);
    ASSERT_EQ((int)fn_count(t, "rn_real_b", "done"), NB);
    ASSERT_EQ((int)fn_count(t, "rn_real_c", "failed"), NC);
    ASSERT_EQ((int)fn_count(t, "rn_real_c", "done"), 0);
    ASSERT_EQ((int)fn_count(t, "rn_wrapper", "done"), 0); /* submitted under its own name only */
    ASSERT_TRUE(fn_count(t, "rn_real_b", "max_ms") >= 0.1);
    cJSON_Delete(t);
    /* The stream: no block named after the wrapper; a's tasks coalesced into fewer blocks. */
    cJSON *s = get(d, "/api/v0/stream?since=0&limit=20000");
    int blocks_a = 0, tasks_a = 0, errors = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(s, "events"))
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
        ASSERT_TRUE(strcmp(name, "rn_wrapper") != 0);
        if (!strcmp(name, "rn_real_a")) {
            blocks_a++;
            tasks_a += (int)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "count"));
        }
        if (!strcmp(name, "rn_real_c")) {
            ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "kind")), "error");
            ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "status")), "DRAY_ETASK");
            errors++;
        }
    }
    ASSERT_EQ(tasks_a, NA);
    ASSERT_EQ(errors, NC);
    ASSERT_TRUE(blocks_a < NA / 2); /* runs of a coalesce */
    cJSON_Delete(s);
    dray_dashboard_stop(d);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

RUN_TESTS(T_(wrapper_tasks_are_named_after_what_they_run))
