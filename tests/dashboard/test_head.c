/* The head's dashboard: `dray start --head --num-cpus 1` prints a dashboard URL; its API shows the
 * cluster's nodes (as the head's status reports them) and the processes' logs from the cluster
 * directory; the runtime-only routes (actors, Tune, Serve) are 404. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "dray/dray.h"
#include "test.h"

static char dir[64], dray[4200];

static void cleanup(void)
{
    if (!dir[0])
        return;
    dray_cluster_stop_recorded(dir, 5000, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd))
        fprintf(stderr, "could not remove %s\n", dir);
    dir[0] = 0;
}

static void on_abort(int sig)
{
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* GET url+path; parsed JSON (or NULL), *status set. */
static cJSON *get(int port, const char *path, int *status)
{
    char *body = NULL;
    *status = 0;
    if (dray_serve_http_request("127.0.0.1", port, "GET", path, NULL, 0, 10, status, &body))
        return NULL;
    cJSON *j = cJSON_Parse(body);
    dray_free(body);
    return j;
}

TEST(head_serves_cluster_dashboard)
{
    signal(SIGABRT, on_abort);
    snprintf(dir, sizeof dir, "/tmp/dray-dashhead-XXXXXX");
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    setenv("DRAY_CLUSTER_DIR", dir, 1);
    setenv("DRAY_DASHBOARD_PORT", "0", 1);
    const char *bd = getenv("DRAY_BUILD_DIR");
    snprintf(dray, sizeof dray, "%s/bin/dray", bd ? bd : "build");
    int port = 20000 + (int)(getpid() % 20000);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "%s start --head --port %d --num-cpus 1 > %s/start.out", dray, port,
             dir);
    ASSERT_EQ(system(cmd), 0);
    /* The CLI printed the URL the head recorded. */
    char path[200], line[400] = "", url[400] = "";
    snprintf(path, sizeof path, "%s/start.out", dir);
    FILE *f = fopen(path, "r");
    ASSERT_TRUE(f != NULL);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "dashboard: ", 11))
            snprintf(url, sizeof url, "%s", line + 11);
    fclose(f);
    int dport = 0;
    ASSERT_EQ(sscanf(url, "http://127.0.0.1:%d/", &dport), 1);
    ASSERT_TRUE(dport > 0);

    /* The worker node joins: the dashboard shows it, alive, with its CPU. */
    int st;
    cJSON *sum = NULL;
    for (int i = 0; i < 200; i++) {
        cJSON_Delete(sum);
        sum = get(dport, "/api/v0/summary", &st);
        if (sum && cJSON_GetNumberValue(cJSON_GetObjectItem(sum, "nodes_alive")) >= 1)
            break;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ(st, 200);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(sum, "mode")), "head");
    ASSERT_EQ((int)cJSON_GetNumberValue(cJSON_GetObjectItem(sum, "nodes_alive")), 1);
    ASSERT_EQ((int)cJSON_GetNumberValue(cJSON_GetObjectItem(sum, "workers")), 1);
    cJSON_Delete(sum);
    /* Against the head's own status answer. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    dray_value v;
    /* Wait (bounded) for the node's first heartbeat, which brings its memory figures. */
    for (int tries = 0;; tries++) {
        ASSERT_EQ(dray_cluster_status(addr, &v), DRAY_OK);
        const dray_value *r = dray_map_get(dray_list_get(dray_map_get(&v, "nodes"), 0), "rss_bytes");
        if ((r && r->type == DRAY_T_INT && r->u.i > 0) || tries == 100)
            break;
        dray_value_release(&v);
        usleep(50000);
    }
    const dray_value *n0 = dray_list_get(dray_map_get(&v, "nodes"), 0);
    cJSON *nodes = get(dport, "/api/v0/nodes", &st);
    ASSERT_EQ(cJSON_GetArraySize(nodes), 1);
    const cJSON *j0 = cJSON_GetArrayItem(nodes, 0);
    ASSERT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(j0, "address")),
                 dray_string_cstr(dray_map_get(n0, "address")));
    ASSERT_EQ((long)cJSON_GetNumberValue(cJSON_GetObjectItem(j0, "pid")),
              (long)dray_map_get(n0, "pid")->u.i);
    /* The node's object-store figures are the head's own ("store" counters from heartbeats). */
    const dray_value *store = dray_map_get(n0, "store");
    ASSERT_TRUE(store != NULL);
    ASSERT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(j0, "object_store_bytes")));
    ASSERT_EQ((long)cJSON_GetNumberValue(cJSON_GetObjectItem(j0, "object_store_bytes")),
              (long)dray_map_get(store, "bytes_mem")->u.i);
    ASSERT_EQ((long)cJSON_GetNumberValue(cJSON_GetObjectItem(j0, "spilled_bytes")),
              (long)dray_map_get(store, "bytes_disk")->u.i);
    /* RSS and CPU come with the heartbeats too: the RSS is near what /proc says of that PID. */
    double rss = cJSON_GetNumberValue(cJSON_GetObjectItem(j0, "rss_bytes"));
    char statm_path[64];
    snprintf(statm_path, sizeof statm_path, "/proc/%ld/statm", (long)dray_map_get(n0, "pid")->u.i);
    FILE *statm = fopen(statm_path, "r");
    ASSERT_TRUE(statm != NULL);
    long pages, resident;
    ASSERT_EQ(fscanf(statm, "%ld %ld", &pages, &resident), 2);
    fclose(statm);
    double proc_rss = (double)resident * (double)sysconf(_SC_PAGESIZE);
    ASSERT_TRUE(rss > proc_rss / 2 && rss < proc_rss * 2);
    ASSERT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(j0, "cpu_pct")));
    ASSERT_TRUE(cJSON_GetNumberValue(cJSON_GetObjectItem(j0, "cpu_pct")) >= 0);
    cJSON_Delete(nodes);
    dray_value_release(&v);
    /* Logs of the head process from the cluster directory. */
    cJSON *l = get(dport, "/api/v0/logs?process=head", &st);
    ASSERT_EQ(st, 200);
    char *text = cJSON_PrintUnformatted(l);
    ASSERT_TRUE(strstr(text, "head listening") != NULL);
    free(text);
    cJSON_Delete(l);
    /* The cluster's task routes answer (nothing ran); a runtime's own routes are 404 here;
     * Prometheus answers. */
    cJSON *t = get(dport, "/api/v0/tasks", &st);
    ASSERT_EQ(st, 200);
    ASSERT_EQ((int)cJSON_GetNumberValue(
                  cJSON_GetObjectItem(cJSON_GetObjectItem(t, "by_state"), "finished")), 0);
    cJSON_Delete(t);
    cJSON_Delete(get(dport, "/api/v0/actors", &st));
    ASSERT_EQ(st, 404);
    cJSON_Delete(get(dport, "/metrics", &st));
    ASSERT_EQ(st, 200);
    cleanup();
    unsetenv("DRAY_CLUSTER_DIR");
    unsetenv("DRAY_DASHBOARD_PORT");
}

RUN_TESTS(T_(head_serves_cluster_dashboard))
