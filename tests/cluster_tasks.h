/* Task functions and small helpers shared by the multi-process cluster tests (each test executable
 * is also its own worker process, so every one of them registers these). Include after test.h and
 * cluster_fixture.h. */
#ifndef DRAY_TEST_CLUSTER_TASKS_H
#define DRAY_TEST_CLUSTER_TASKS_H

#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "dray/cluster.h"
#include "dray/core.h"

/* The PID of the process running it. */
DRAY_FUNCTION(ct_pid)
{
    *result = dray_int(getpid());
    return DRAY_OK;
}

/* args[0] bytes, byte i = (i*7+3) mod 251. */
DRAY_FUNCTION(ct_make_bytes)
{
    void *p;
    dray_status st = dray_bytes_create_uninit((size_t)args[0].u.i, result, &p);
    for (int64_t i = 0; !st && i < args[0].u.i; i++)
        ((uint8_t *)p)[i] = (uint8_t)((i * 7 + 3) % 251);
    return st;
}

/* The sum of the bytes of args[0] (DRAY_ETYPE when it is not bytes). */
DRAY_FUNCTION(ct_sum_bytes)
{
    size_t n;
    const uint8_t *p = dray_bytes_data(&args[0], &n);
    if (!p)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "ct_sum_bytes: argument is a %s",
                             dray_type_name((dray_type)args[0].type));
    int64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    *result = dray_int(s);
    return DRAY_OK;
}

/* Sleeps ms milliseconds. */
static inline void ct_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The sum of the bytes ct_make_bytes makes for n, computed independently of it. */
static inline int64_t ct_made_sum(int64_t n)
{
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (i * 7 + 3) % 251;
    return s;
}

/* One counter of dray_cluster_client_stats. */
static inline int64_t ct_client_stat(dray_runtime *rt, const char *key)
{
    dray_value m;
    ASSERT_OK(dray_cluster_client_stats(rt, &m));
    const dray_value *v = dray_map_get(&m, key);
    ASSERT_TRUE(v != NULL);
    int64_t x = v->u.i;
    dray_value_release(&m);
    return x;
}

/* The int result of r (waited for up to 30 s; r is kept). */
static inline int64_t ct_get_int(dray_runtime *rt, dray_ref *r)
{
    dray_value v;
    ASSERT_OK(dray_get(rt, r, 30000, &v));
    ASSERT_EQ(v.type, DRAY_T_INT);
    return v.u.i;
}

/* The object-store counter `key` of the node whose PID is pid, from dray_cluster_status. */
static inline int64_t ct_store_stat(const test_cluster *f, pid_t pid, const char *key)
{
    dray_value st;
    ASSERT_OK(dray_cluster_status(f->addr, &st));
    const dray_value *nodes = dray_map_get(&st, "nodes");
    int64_t out = -1;
    for (size_t i = 0; i < dray_list_len(nodes); i++) {
        const dray_value *n = dray_list_get(nodes, i);
        const dray_value *store = dray_map_get(n, "store"), *v = store ? dray_map_get(store, key)
                                                                      : NULL;
        if (dray_map_get(n, "pid")->u.i == pid && v)
            out = v->u.i;
    }
    dray_value_release(&st);
    ASSERT_NE(out, -1);
    return out;
}

/* Waits (heartbeats bring the counters every 500 ms; at most 20 s) until the node's store counter
 * `key` equals want. */
static inline void ct_wait_store_stat(const test_cluster *f, pid_t pid, const char *key,
                                      int64_t want)
{
    int64_t got = -1;
    for (int i = 0; i < 400 && (got = ct_store_stat(f, pid, key)) != want; i++)
        ct_sleep_ms(50);
    if (got != want)
        fprintf(stderr, "node %d: store counter %s is %lld, want %lld\n", (int)pid, key,
                (long long)got, (long long)want);
    ASSERT_EQ(got, want);
}

#endif /* DRAY_TEST_CLUSTER_TASKS_H */
