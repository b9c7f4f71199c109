/* Dynamic batching (observed batch sizes, answers matched to their requests, over HTTP and handles)
 * and autoscaling (up under load, down when idle, to zero and back). */
#include "serve/helpers.h"

/* Batcher: each response is {"x": x, "batch": n} for a request {"x": x}; records batch sizes. */
typedef struct batcher {
    int sizes[64];
    int n_sizes;
} batcher;

static dray_status batcher_init(dray_serve *serve, const cJSON *cfg, void **state)
{
    (void)serve;
    (void)cfg;
    *state = calloc(1, sizeof(batcher));
    return *state ? DRAY_OK : DRAY_ENOMEM;
}

static dray_status batcher_batch(void *state, dray_serve_request *const *reqs, size_t n,
                                 dray_serve_response *resps)
{
    batcher *b = state;
    if (b->n_sizes < 64)
        b->sizes[b->n_sizes++] = (int)n;
    for (size_t i = 0; i < n; i++) {
        const cJSON *body;
        if (dray_serve_request_json(reqs[i], &body) != DRAY_OK) {
            resps[i].status = 400;
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "x", cJSON_Duplicate(cJSON_GetObjectItem(body, "x"), 1));
        cJSON_AddNumberToObject(o, "batch", (double)n);
        resps[i].json = o;
    }
    return DRAY_OK;
}

static dray_serve_class batcher_class = {
    .name = "TestBatcher", .init = batcher_init, .batch_call = batcher_batch, .destroy = free_state};
DRAY_SERVE_CLASS(batcher_class)

typedef struct call_arg {
    dray_serve *s;
    dray_serve_handle *h;
    int x;
    int batch;
    bool via_http;
} call_arg;

static void *one_call(void *p)
{
    call_arg *a = p;
    char body[64];
    snprintf(body, sizeof(body), "{\"x\": %d}", a->x);
    cJSON *j;
    if (a->via_http) {
        char *resp = NULL;
        ASSERT_EQ(http(a->s, "POST", "/b", body, &resp), 200);
        j = cJSON_Parse(resp);
        dray_free(resp);
    } else {
        cJSON *req = cJSON_Parse(body);
        dray_serve_response r;
        ASSERT_OK(dray_serve_handle_call(a->h, req, &r));
        cJSON_Delete(req);
        j = r.json;
        r.json = NULL;
        dray_serve_response_release(&r);
    }
    /* Each answer belongs to its own request. */
    ASSERT_EQ(cJSON_GetObjectItem(j, "x")->valueint, a->x);
    a->batch = cJSON_GetObjectItem(j, "batch")->valueint;
    cJSON_Delete(j);
    return NULL;
}

static void batch_round(dray_serve *s, dray_serve_handle *h, bool via_http, int n, int max)
{
    pthread_t t[16];
    call_arg a[16];
    for (int i = 0; i < n; i++) {
        a[i] = (call_arg){s, h, 100 + i, 0, via_http};
        pthread_create(&t[i], NULL, one_call, &a[i]);
    }
    int maxb = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        maxb = a[i].batch > maxb ? a[i].batch : maxb;
    }
    /* With a 300 ms window and 8 concurrent callers, requests were grouped. */
    ASSERT_GT(maxb, 1);
    ASSERT_LE(maxb, max);
}

TEST(dynamic_batching)
{
    dray_serve *s = start_serve(0);
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = "b";
    d.class_name = "TestBatcher";
    d.route_prefix = "/b";
    d.max_batch_size = 4;
    d.batch_wait_timeout_s = 0.3;
    dray_serve_handle *h;
    ASSERT_OK(dray_serve_run(s, &d, &h));
    batch_round(s, h, true, 8, 4);
    batch_round(s, h, false, 8, 4);
    dray_serve_stats st;
    dray_serve_handle_stats(h, &st);
    ASSERT_EQ(st.batched_requests, 16);
    ASSERT_LE(st.max_batch_seen, 4);
    ASSERT_GE(st.max_batch_seen, 2);
    ASSERT_LT(st.batches, 16);
    /* A lone request is answered after the wait timeout, in a batch of one. */
    call_arg one = {s, h, 7, 0, true};
    one_call(&one);
    ASSERT_EQ(one.batch, 1);
    /* Malformed JSON in a batch: that request alone gets an error status. */
    char *resp = NULL;
    ASSERT_EQ(http(s, "POST", "/b", "{oops", &resp), 400);
    dray_free(resp);
    /* A new max_batch_size rolls the replicas: their batchers use it. */
    d.max_batch_size = 2;
    ASSERT_OK(dray_serve_run(s, &d, NULL));
    batch_round(s, h, true, 8, 2);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

TEST(batched_model_matches_direct)
{
    const char *path = tmp_path("test_serve_batch_model.txt");
    dray_serve_logreg m;
    train_model(path, 3, &m);
    dray_serve *s = start_serve(0);
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.class_name = "LogisticRegression";
    d.route_prefix = "/m";
    d.max_batch_size = 8;
    d.batch_wait_timeout_s = 0.002;
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "{\"model_path\": \"%s\"}", path);
    d.user_config = cfg;
    ASSERT_OK(dray_serve_run(s, &d, NULL));
    for (int i = 0; i < 10; i++) {
        double x[3] = {i * 0.1, -i * 0.2, 0.5};
        char req[128], *body = NULL;
        snprintf(req, sizeof(req), "{\"features\": [%.17g, %.17g, %.17g]}", x[0], x[1], x[2]);
        ASSERT_EQ(http(s, "POST", "/m", req, &body), 200);
        double z = m.bias + m.w[0] * x[0] + m.w[1] * x[1] + m.w[2] * x[2];
        cJSON *j = cJSON_Parse(body);
        ASSERT_NEAR(cJSON_GetObjectItem(j, "probability")->valuedouble, 1 / (1 + exp(-z)), 1e-12);
        cJSON_Delete(j);
        dray_free(body);
    }
    char *body = NULL;
    ASSERT_EQ(http(s, "POST", "/m", "{\"features\": [1]}", &body), 400);
    ASSERT_CONTAINS(body, "expected 3 features, got 1");
    dray_free(body);
    dray_serve_logreg_fini(&m);
    ASSERT_OK(dray_serve_shutdown(s, 5));
    remove(path);
}

typedef struct load {
    dray_serve_handle *h;
    atomic_bool *stop;
    atomic_int *done;
} load;

static void *call_until_stopped(void *p)
{
    load *l = p;
    while (!atomic_load(l->stop)) {
        dray_serve_response r;
        if (dray_serve_handle_call(l->h, NULL, &r) == DRAY_OK)
            atomic_fetch_add(l->done, 1);
        dray_serve_response_release(&r);
    }
    return NULL;
}

static int wait_replicas(dray_serve_handle *h, int want, double timeout_ms)
{
    dray_serve_stats st;
    for (double t = 0; t < timeout_ms; t += 5) {
        dray_serve_handle_stats(h, &st);
        if (st.replicas == want)
            return want;
        sleep_ms(5);
    }
    return st.replicas;
}

TEST(autoscaling_up_down_zero)
{
    dray_serve *s = start_serve(0);
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = "auto";
    d.class_name = "TestSleeper";
    d.user_config = "{\"ms\": 10}";
    d.min_replicas = 1;
    d.max_replicas = 3;
    d.target_ongoing_requests = 1;
    d.upscale_delay_s = 0.05;
    d.downscale_delay_s = 0.3;
    dray_serve_handle *h;
    ASSERT_OK(dray_serve_run(s, &d, &h));
    ASSERT_EQ(wait_replicas(h, 1, 1000), 1);
    /* Six callers keep ~6 requests ongoing against a target of 1 per replica: scale to the max. */
    atomic_bool stop = false;
    atomic_int done = 0;
    load l = {h, &stop, &done};
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        pthread_create(&t[i], NULL, call_until_stopped, &l);
    ASSERT_EQ(wait_replicas(h, 3, 5000), 3);
    atomic_store(&stop, true);
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    ASSERT_GT(atomic_load(&done), 0);
    /* Idle: back down to min_replicas after the downscale delay. */
    ASSERT_EQ(wait_replicas(h, 1, 5000), 1);
    /* To zero and back: min_replicas 0, then a call brings a replica up and is answered. */
    d.min_replicas = 0;
    ASSERT_OK(dray_serve_run(s, &d, NULL));
    ASSERT_EQ(wait_replicas(h, 0, 5000), 0);
    dray_serve_response r;
    ASSERT_OK(dray_serve_handle_call(h, NULL, &r));
    ASSERT_EQ(cJSON_GetObjectItem(r.json, "calls")->valueint, 1);
    dray_serve_response_release(&r);
    ASSERT_EQ(wait_replicas(h, 0, 5000), 0);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

TEST(all_on_actors)
{
    WITH_ACTORS({
        test_dynamic_batching();
        test_batched_model_matches_direct();
        test_autoscaling_up_down_zero();
    });
}

RUN_TESTS(T_(dynamic_batching), T_(batched_model_matches_direct), T_(autoscaling_up_down_zero),
          T_(all_on_actors))
