/* Request timeouts and out-of-band health: a hung call gets 504 before it returns while other
 * requests keep being served, the stuck replica is replaced and the abandoned call freed when it
 * returns (ASan); handle calls and batches time out the same way; a replica with a long queue of
 * slow calls is not restarted (its health check waits its turn), a stuck one is; shutdown with a
 * hung call in flight answers it and returns. */
#include "serve/helpers.h"

/* Calls that finished their sleep (the hung ones included, after they were abandoned), and those
 * of them that slept 100 ms or more. */
static atomic_int slept_done, slept_long;

/* Hang: a call {"sleep_ms": N} sleeps N ms and answers {"slept": N}; health check always OK. */
static double sleep_of(dray_serve_request *req)
{
    const cJSON *body;
    if (req->len == 0 && !req->json)
        return 0;
    if (dray_serve_request_json(req, &body) != DRAY_OK)
        return 0;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(body, "sleep_ms");
    return cJSON_IsNumber(ms) ? ms->valuedouble : 0;
}

static dray_status hang_init(dray_serve *serve, const cJSON *cfg, void **state)
{
    (void)serve;
    (void)cfg;
    *state = calloc(1, sizeof(int));
    return *state ? DRAY_OK : DRAY_ENOMEM;
}

static dray_status hang_call(void *state, dray_serve_request *req, dray_serve_response *resp)
{
    (void)state;
    double ms = sleep_of(req);
    /* Read the request's memory after the sleep: it must still be the call's own (an abandoned
     * call's connection has moved on by then). */
    sleep_ms(ms);
    const char *hdr = dray_serve_request_header(req, "x-test");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "slept", sleep_of(req));
    cJSON_AddStringToObject(o, "path", req->path);
    cJSON_AddStringToObject(o, "method", req->method);
    if (hdr)
        cJSON_AddStringToObject(o, "x_test", hdr);
    resp->json = o;
    atomic_fetch_add(&slept_done, 1);
    if (ms >= 100)
        atomic_fetch_add(&slept_long, 1);
    return DRAY_OK;
}

static dray_status hang_batch(void *state, dray_serve_request *const *reqs, size_t n,
                              dray_serve_response *resps)
{
    (void)state;
    double ms = 0;
    for (size_t i = 0; i < n; i++)
        if (sleep_of(reqs[i]) > ms)
            ms = sleep_of(reqs[i]);
    sleep_ms(ms);
    for (size_t i = 0; i < n; i++) {
        resps[i].json = cJSON_CreateObject();
        cJSON_AddNumberToObject(resps[i].json, "slept", sleep_of(reqs[i]));
    }
    atomic_fetch_add(&slept_done, 1);
    return DRAY_OK;
}

static dray_status hang_health(void *state)
{
    (void)state;
    return DRAY_OK;
}

static dray_serve_class hang_class = {
    .name = "TestHang",
    .init = hang_init,
    .call = hang_call,
    .batch_call = hang_batch,
    .health_check = hang_health,
    .destroy = free_state,
};
DRAY_SERVE_CLASS(hang_class)

static dray_runtime *start_rt(void)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 3; /* a hung call holds one */
    dray_runtime *rt = NULL;
    ASSERT_OK(dray_init(&cfg, &rt));
    test_rt = rt;
    return rt;
}

static dray_serve_handle *deploy_hang(dray_serve *s, const char *route, int replicas,
                                      double timeout_s, double hc_timeout_s, int batch)
{
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = route + 1;
    d.class_name = "TestHang";
    d.route_prefix = route;
    d.num_replicas = replicas;
    d.request_timeout_s = timeout_s;
    d.health_check_period_s = 0.02;
    d.health_check_timeout_s = hc_timeout_s;
    d.max_batch_size = batch;
    d.batch_wait_timeout_s = 0.001;
    dray_serve_handle *h = NULL;
    ASSERT_OK(dray_serve_run(s, &d, &h));
    return h;
}

static void wait_restarts(dray_serve_handle *h, uint64_t want)
{
    dray_serve_stats st;
    for (int i = 0; i < 5000; i++) {
        dray_serve_handle_stats(h, &st);
        if (st.restarts >= want && st.replicas == st.target_replicas)
            return;
        sleep_ms(2);
    }
    TEST_FAIL_("restarts stayed at %llu (wanted %llu)", (unsigned long long)st.restarts,
               (unsigned long long)want);
}

typedef struct quick_arg {
    dray_serve *s;
    const char *path;
    atomic_bool *stop;
    atomic_int ok, timed_out, other;
} quick_arg;

static void *quick_load(void *p)
{
    quick_arg *a = p;
    while (!atomic_load(a->stop)) {
        int status = 0;
        char *body = NULL;
        dray_status st = dray_serve_http_request("127.0.0.1", dray_serve_port(a->s), "POST",
                                                 a->path, "{\"sleep_ms\": 0}", 15, 10, &status,
                                                 &body);
        if (st == DRAY_OK && status == 200)
            atomic_fetch_add(&a->ok, 1);
        else if (st == DRAY_OK && status == 504)
            atomic_fetch_add(&a->timed_out, 1);
        else
            atomic_fetch_add(&a->other, 1);
        dray_free(body);
        sleep_ms(2);
    }
    return NULL;
}

TEST(http_hung_call_gets_504_and_replica_is_replaced)
{
    dray_runtime *rt = start_rt();
    dray_serve *s = start_serve(0);
    dray_serve_handle *h = deploy_hang(s, "/hang", 2, 0.3, 0.8, 1);
    atomic_bool stop = false;
    quick_arg qa = {.s = s, .path = "/hang/quick", .stop = &stop};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, quick_load, &qa), 0);
    int before = atomic_load(&slept_long);
    char *body = NULL;
    int status = http(s, "POST", "/hang/slow", "{\"sleep_ms\": 2500}", &body);
    /* Answered while the call still sleeps. */
    ASSERT_EQ(status, 504);
    ASSERT_TRUE(strstr(body, "request timeout") != NULL);
    ASSERT_TRUE(strstr(body, "\"status\":504") != NULL);
    dray_free(body);
    ASSERT_EQ(atomic_load(&slept_long), before);
    /* The stuck replica is taken out and replaced (stuck > health_check_timeout_s). */
    wait_restarts(h, 1);
    int ok_at_restart = atomic_load(&qa.ok);
    sleep_ms(100);
    atomic_store(&stop, true);
    pthread_join(t, NULL);
    /* The others were served throughout (a few quick ones routed behind the hung call may have
     * timed out too); nothing else went wrong. */
    ASSERT_TRUE(ok_at_restart > 0);
    ASSERT_TRUE(atomic_load(&qa.ok) > ok_at_restart);
    ASSERT_EQ(atomic_load(&qa.other), 0);
    /* After the replacement everything answers 200 with the request's own data. */
    char *r2 = NULL;
    ASSERT_EQ(http(s, "POST", "/hang/after?q=1", "{\"sleep_ms\": 1}", &r2), 200);
    ASSERT_TRUE(strstr(r2, "\"path\":\"/after\"") != NULL);
    dray_free(r2);
    dray_serve_stats st;
    dray_serve_handle_stats(h, &st);
    ASSERT_TRUE(st.errors >= 1);
    ASSERT_EQ(st.ongoing, 0);
    ASSERT_OK(dray_serve_shutdown(s, 5));
    /* The runtime waits for the abandoned call to come back, then frees it. */
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_rt = NULL;
}

TEST(abandoned_call_keeps_its_request)
{
    /* The hung call reads its path, method and header after the connection answered 504 and
     * served other requests (which reuse the connection's buffers); ASan checks the reads, the
     * answer it finally builds is dropped and freed. */
    dray_runtime *rt = start_rt();
    dray_serve *s = start_serve(0);
    deploy_hang(s, "/keep", 1, 0.1, 30, 1);
    int before = atomic_load(&slept_done);
    char *body = NULL;
    ASSERT_EQ(http(s, "POST", "/keep/abandoned/path/that/is/long/enough/to/matter",
                   "{\"sleep_ms\": 400}", &body),
              504);
    dray_free(body);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(http(s, "PUT", "/keep/x", "{\"sleep_ms\": 0, \"pad\": \"zzzzzzzzzzzzzzzzzzzz\"}",
                       &body),
                  i == 0 ? 504 : 200);
        dray_free(body);
        if (i == 0)
            while (atomic_load(&slept_done) - before < 2)
                sleep_ms(5);
    }
    ASSERT_OK(dray_serve_shutdown(s, 5));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_rt = NULL;
}

TEST(handle_call_and_batch_time_out)
{
    dray_runtime *rt = start_rt();
    dray_serve *s = start_serve(0);
    dray_serve_handle *h = deploy_hang(s, "/plain", 1, 0.2, 30, 1);
    dray_serve_handle *hb = deploy_hang(s, "/batched", 1, 0.2, 30, 4);
    cJSON *slow = cJSON_Parse("{\"sleep_ms\": 700}"), *fast = cJSON_Parse("{\"sleep_ms\": 0}");
    dray_serve_response r;
    int before = atomic_load(&slept_done);
    ASSERT_STATUS(dray_serve_handle_call(h, slow, &r), DRAY_ETIMEDOUT);
    ASSERT_TRUE(strstr(dray_last_error(), "'plain'") != NULL);
    ASSERT_STATUS(dray_serve_handle_call(hb, slow, &r), DRAY_ETIMEDOUT);
    ASSERT_TRUE(strstr(dray_last_error(), "'batched'") != NULL);
    char *body = NULL;
    ASSERT_EQ(http(s, "POST", "/batched", "{\"sleep_ms\": 700}", &body), 504);
    dray_free(body);
    /* Once the sleeps are over, both answer again. */
    for (int i = 0; i < 400; i++) {
        dray_serve_stats a, b;
        dray_serve_handle_stats(h, &a);
        dray_serve_handle_stats(hb, &b);
        if (a.ongoing == 0 && b.ongoing == 0 && atomic_load(&slept_done) - before >= 3)
            break;
        sleep_ms(5);
    }
    ASSERT_OK(dray_serve_handle_call(h, fast, &r));
    ASSERT_EQ(cJSON_GetObjectItem(r.json, "slept")->valueint, 0);
    dray_serve_response_release(&r);
    ASSERT_OK(dray_serve_handle_call(hb, fast, &r));
    dray_serve_response_release(&r);
    ASSERT_EQ(http(s, "POST", "/batched", "{\"sleep_ms\": 1}", &body), 200);
    dray_free(body);
    cJSON_Delete(slow);
    cJSON_Delete(fast);
    ASSERT_OK(dray_serve_shutdown(s, 5));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_rt = NULL;
}

typedef struct busy_arg {
    dray_serve_handle *h;
    atomic_int *ok;
} busy_arg;

static void *busy_call(void *p)
{
    busy_arg *a = p;
    cJSON *b = cJSON_Parse("{\"sleep_ms\": 25}");
    dray_serve_response r;
    if (dray_serve_handle_call(a->h, b, &r) == DRAY_OK)
        atomic_fetch_add(a->ok, 1);
    dray_serve_response_release(&r);
    cJSON_Delete(b);
    return NULL;
}

TEST(busy_replica_kept_stuck_replica_replaced)
{
    dray_runtime *rt = start_rt();
    dray_serve *s = start_serve(-1);
    /* Health checks every 20 ms with a 0.3 s timeout; 32 queued calls of 25 ms keep the replica
     * busy for ~0.8 s, so a check waiting in its mailbox is queued longer than the timeout. */
    dray_serve_handle *h = deploy_hang(s, "/busy", 1, 10, 0.3, 1);
    enum { N = 32 };
    pthread_t t[N];
    atomic_int ok = 0;
    busy_arg a = {h, &ok};
    for (int i = 0; i < N; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, busy_call, &a), 0);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(atomic_load(&ok), N);
    dray_serve_stats st;
    dray_serve_handle_stats(h, &st);
    ASSERT_EQ(st.restarts, 0);
    /* One call stuck for longer than the timeout: replaced. */
    cJSON *slow = cJSON_Parse("{\"sleep_ms\": 1200}");
    dray_serve_response r;
    dray_ref *ref;
    ASSERT_OK(dray_serve_handle_submit(rt, h, slow, &ref));
    wait_restarts(h, 1);
    dray_serve_handle_stats(h, &st);
    ASSERT_EQ(st.restarts, 1);
    ASSERT_EQ(st.replicas, 1);
    /* The stuck call's caller gets the replica's failure (or its answer, if it came back before
     * the replica was stopped), not silence. */
    dray_status gst = dray_get(rt, ref, 10000, NULL);
    ASSERT_TRUE(gst == DRAY_OK || gst == DRAY_EACTOR || gst == DRAY_ETIMEDOUT);
    dray_ref_release(ref);
    cJSON *fast = cJSON_Parse("{\"sleep_ms\": 0}");
    ASSERT_OK(dray_serve_handle_call(h, fast, &r));
    dray_serve_response_release(&r);
    cJSON_Delete(fast);
    cJSON_Delete(slow);
    ASSERT_OK(dray_serve_shutdown(s, 5));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_rt = NULL;
}

typedef struct slow_client {
    dray_serve *s;
    int status;
} slow_client;

static void *slow_request(void *p)
{
    slow_client *c = p;
    char *body = NULL;
    dray_serve_http_request("127.0.0.1", dray_serve_port(c->s), "POST", "/down",
                            "{\"sleep_ms\": 900}", 17, 10, &c->status, &body);
    dray_free(body);
    return NULL;
}

TEST(shutdown_with_a_hung_call)
{
    dray_runtime *rt = start_rt();
    dray_serve *s = start_serve(0);
    dray_serve_handle *h = deploy_hang(s, "/down", 1, 30, 30, 1);
    slow_client c = {s, 0};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, slow_request, &c), 0);
    for (int i = 0; i < 2000; i++) {
        dray_serve_stats st;
        dray_serve_handle_stats(h, &st);
        if (st.ongoing == 1)
            break;
        sleep_ms(1);
    }
    /* Drain for 0.1 s, then the hung call is abandoned and its client answered 503. */
    ASSERT_OK(dray_serve_shutdown(s, 0.1));
    pthread_join(t, NULL);
    ASSERT_EQ(c.status, 503);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_rt = NULL;
}

TEST(negative_timeout_refused)
{
    dray_serve *s = start_serve(-1);
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = "neg";
    d.class_name = "TestHang";
    d.request_timeout_s = -1;
    ASSERT_STATUS(dray_serve_run(s, &d, NULL), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "request_timeout_s");
    ASSERT_CONTAINS(dray_last_error(), "'neg'");
    ASSERT_OK(dray_serve_shutdown(s, 1));
}

RUN_TESTS(T_(negative_timeout_refused), T_(http_hung_call_gets_504_and_replica_is_replaced), T_(abandoned_call_keeps_its_request),
          T_(handle_call_and_batch_time_out), T_(busy_replica_kept_stuck_replica_replaced),
          T_(shutdown_with_a_hung_call))
