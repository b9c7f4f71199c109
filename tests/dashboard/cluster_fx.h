/* The dashboard's cluster tests on top of tests/cluster_fixture.h: a head whose dashboard listens on
 * any port (its URL read from DIR/dashboard.url) and two worker nodes of the test executable offering
 * resources left=1 and right=1 (2 executors each). Stopping also checks the head's log for sanitizer
 * reports (the head is a `dray` of the same build). Include after test.h; the test file must define
 * TEST(worker_main). */
#ifndef DRAY_TESTS_DASHBOARD_CLUSTER_FX_H
#define DRAY_TESTS_DASHBOARD_CLUSTER_FX_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dray/dray.h"
#include "test.h"
#include "cluster_fixture.h"

typedef struct fx {
    test_cluster c;
    int dport; /* the head's dashboard */
} fx;

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One more worker node offering `resources`, with an object-store limit of `memory` bytes (text;
 * NULL: the machine's memory). */
static pid_t fx_add_worker(fx *f, const char *resources, const char *memory)
{
    setenv("DRAY_WORKER_RESOURCES", resources, 1);
    if (memory)
        setenv("DRAY_WORKER_MEMORY", memory, 1);
    pid_t pid = test_cluster_add_worker(&f->c);
    unsetenv("DRAY_WORKER_RESOURCES");
    unsetenv("DRAY_WORKER_MEMORY");
    return pid;
}

/* Starts the head and the left and right nodes; right_memory (bytes, as text) is the right node's
 * object-store limit, NULL for the machine's memory. */
static void fx_start(fx *f, const char *right_memory)
{
    memset(f, 0, sizeof(*f));
    setenv("DRAY_DASHBOARD_PORT", "0", 1);
    test_cluster_start_cpus(&f->c, 0, 2);
    unsetenv("DRAY_DASHBOARD_PORT");
    char path[200], line[400];
    snprintf(path, sizeof path, "%s/dashboard.url", f->c.dir);
    FILE *u = fopen(path, "r");
    ASSERT_TRUE(u != NULL);
    ASSERT_TRUE(fgets(line, sizeof line, u) != NULL);
    fclose(u);
    ASSERT_EQ(sscanf(line, "http://127.0.0.1:%d/", &f->dport), 1);
    fx_add_worker(f, "left=1", NULL);
    fx_add_worker(f, "right=1", right_memory);
    setenv("DRAY_MIN_NODES", "2", 1);
}

/* test_cluster_stop, and whether the head's log is free of sanitizer reports (read after the head
 * exited, before the directory goes). The workers die of the SIGTERM (as in test_cluster_stop). */
static bool fx_stop(fx *f)
{
    test_cluster *c = &f->c;
    bool clean = true;
    for (int i = 0; i < c->nworkers; i++)
        if (c->workers[i] > 0) {
            kill(c->workers[i], SIGTERM);
            waitpid(c->workers[i], NULL, 0);
            c->workers[i] = -1;
        }
    int stopped = 0;
    ASSERT_OK(dray_cluster_stop_recorded(c->dir, 5000, &stopped));
    ASSERT_EQ(stopped, 1); /* the head */
    char path[200], line[1024];
    snprintf(path, sizeof path, "%s/head.log", c->dir);
    FILE *log = fopen(path, "r");
    ASSERT_TRUE(log != NULL);
    while (fgets(line, sizeof line, log))
        if (strstr(line, "Sanitizer") || strstr(line, "runtime error")) {
            fprintf(stderr, "head.log: %s", line);
            clean = false;
        }
    fclose(log);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", c->dir);
    ASSERT_EQ(system(cmd), 0);
    unsetenv("DRAY_CLUSTER_DIR");
    unsetenv("DRAY_MIN_NODES");
    test_cluster_live = NULL;
    return clean;
}

/* The head's node id of process pid (from its status answer), and its tasks_done in *done. */
static int fx_node_of(const fx *f, pid_t pid, int64_t *done)
{
    dray_value st;
    ASSERT_OK(dray_cluster_status(f->c.addr, &st));
    const dray_value *nodes = dray_map_get(&st, "nodes");
    int id = -1;
    for (size_t i = 0; i < dray_list_len(nodes); i++) {
        const dray_value *n = dray_list_get(nodes, i);
        if (dray_map_get(n, "pid")->u.i == pid) {
            id = (int)dray_map_get(n, "id")->u.i;
            if (done)
                *done = dray_map_get(n, "tasks_done")->u.i;
        }
    }
    dray_value_release(&st);
    ASSERT_NE(id, -1);
    return id;
}

#endif /* DRAY_TESTS_DASHBOARD_CLUSTER_FX_H */
