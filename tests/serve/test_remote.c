/* Replicas on cluster nodes: a head (`dray start --head`) and two worker processes (this program,
 * turned into nodes by dray_init), a driver runtime attached to them, serve with remote_replicas:
 * HTTP and handle calls are answered by replicas living in the worker processes (never here), with
 * the request's path, query and body; a call past its timeout gets 504; a killed replica is
 * replaced. Every process is stopped and the directory removed. */
#include <signal.h>
#include <sys/wait.h>

#include "dray/cluster.h"
#include "serve/helpers.h"
#include "cluster_fixture.h"

/* Where: answers {"pid": its process, "path", "q", "echo": body}; {"sleep_ms": N} sleeps first. */
static dray_status where_init(dray_serve *serve, const cJSON *cfg, void **state)
{
    (void)serve;
    (void)cfg;
    *state = calloc(1, sizeof(int));
    return *state ? DRAY_OK : DRAY_ENOMEM;
}

static dray_status where_call(void *state, dray_serve_request *req, dray_serve_response *resp)
{
    (void)state;
    const cJSON *body = NULL;
    if (req->len > 0 && dray_serve_request_json(req, &body) != DRAY_OK)
        return DRAY_EFORMAT;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(body, "sleep_ms");
    if (cJSON_IsNumber(ms))
        sleep_ms(ms->valuedouble);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddStringToObject(o, "path", req->path);
    const char *q = dray_serve_request_query(req, "q");
    if (q)
        cJSON_AddStringToObject(o, "q", q);
    cJSON_AddItemToObject(o, "echo", body ? cJSON_Duplicate(body, 1) : cJSON_CreateNull());
    resp->json = o;
    return DRAY_OK;
}

static dray_serve_class where_class = {
    .name = "TestWhere",
    .init = where_init,
    .call = where_call,
    .destroy = free_state,
};
DRAY_SERVE_CLASS(where_class)

/* In a node process (DRAY_WORKER_ADDRESS set) dray_init serves as a worker node and never returns;
 * run directly it is a plain local runtime. */
TEST(worker_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

static int pid_of(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    ASSERT_TRUE(j != NULL);
    int pid = cJSON_GetObjectItem(j, "pid")->valueint;
    cJSON_Delete(j);
    return pid;
}

TEST(replicas_on_cluster_nodes)
{
    test_cluster f;
    test_cluster_start_cpus(&f, 2, 2);
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 1;
    cfg.progress = 0;
    cfg.address = f.addr;
    dray_runtime *rt = NULL;
    ASSERT_OK(dray_init(&cfg, &rt));
    dray_serve_opts o;
    dray_serve_opts_init(&o);
    o.rt = rt;
    o.remote_replicas = true;
    o.port = 0;
    o.control_period_s = 0.01;
    dray_serve *s = NULL;
    ASSERT_OK(dray_serve_start(&o, &s));
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = "where";
    d.class_name = "TestWhere";
    d.route_prefix = "/where";
    d.num_replicas = 2;
    d.num_cpus = 1;
    d.request_timeout_s = 0.5;
    dray_serve_handle *h = NULL;
    ASSERT_OK(dray_serve_run(s, &d, &h));

    /* Every answer comes from a worker process, with this request's own data. */
    int seen[2] = {0, 0};
    for (int i = 0; i < 20; i++) {
        char path[64], body[64], *resp = NULL;
        snprintf(path, sizeof(path), "/where/item/%d?q=%d", i, i * 7);
        snprintf(body, sizeof(body), "{\"n\": %d}", i);
        ASSERT_EQ(http(s, "POST", path, body, &resp), 200);
        int pid = pid_of(resp);
        ASSERT_NE(pid, (int)getpid());
        ASSERT_TRUE(pid == f.workers[0] || pid == f.workers[1]);
        seen[pid == f.workers[1]]++;
        char want[128];
        snprintf(want, sizeof(want), "\"path\":\"/item/%d\",\"q\":\"%d\",\"echo\":{\"n\":%d}", i,
                 i * 7, i);
        ASSERT_TRUE(strstr(resp, want) != NULL);
        dray_free(resp);
    }
    printf("answers per node: %d %d\n", seen[0], seen[1]);
    /* A handle call, in-process on the driver, answered on a node. */
    cJSON *b = cJSON_Parse("{\"k\": \"v\"}");
    dray_serve_response r;
    ASSERT_OK(dray_serve_handle_call(h, b, &r));
    ASSERT_TRUE(r.json != NULL);
    int pid = cJSON_GetObjectItem(r.json, "pid")->valueint;
    ASSERT_TRUE(pid == f.workers[0] || pid == f.workers[1]);
    ASSERT_STREQ(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "echo"), "k")->valuestring, "v");
    dray_serve_response_release(&r);
    cJSON_Delete(b);
    /* Past its timeout a remote call is answered 504; the node finishes it on its own. */
    char *resp = NULL;
    ASSERT_EQ(http(s, "POST", "/where/slow", "{\"sleep_ms\": 1500}", &resp), 504);
    dray_free(resp);
    sleep_ms(1200); /* until the abandoned call is over on its node */
    /* A killed replica is replaced by one on a node. */
    ASSERT_OK(dray_serve_handle_kill_replica(h, 0));
    dray_serve_stats st;
    for (int i = 0; i < 5000; i++) {
        dray_serve_handle_stats(h, &st);
        if (st.restarts >= 1 && st.replicas == 2)
            break;
        sleep_ms(2);
    }
    ASSERT_EQ(st.restarts, 1);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(http(s, "GET", "/where/again", NULL, &resp), 200);
        pid = pid_of(resp);
        ASSERT_TRUE(pid == f.workers[0] || pid == f.workers[1]);
        dray_free(resp);
    }
    ASSERT_OK(dray_serve_shutdown(s, 5));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

RUN_TESTS(T_(worker_main), T_(replicas_on_cluster_nodes))
