/* Deployments: back-pressure, handles and composition, replica failure and replacement without
 * silently lost requests, health checks, rolling updates, in-place reconfigure, graceful drain. */
#include "serve/helpers.h"

static dray_serve_handle *deploy(dray_serve *s, const char *name, const char *cls, const char *route,
                                 int replicas, const char *cfg)
{
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = name;
    d.class_name = cls;
    d.route_prefix = route;
    d.num_replicas = replicas;
    d.user_config = cfg;
    d.health_check_period_s = 0.02;
    d.health_check_timeout_s = 5;
    dray_serve_handle *h = NULL;
    ASSERT_OK(dray_serve_run(s, &d, &h));
    return h;
}

typedef struct load_arg {
    dray_serve *s;
    const char *path;
    const char *body;
    int n;
    atomic_int *ok, *failed5xx, *other;
} load_arg;

static void *http_load(void *p)
{
    load_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        int status = 0;
        char *body = NULL;
        dray_status st = dray_serve_http_request("127.0.0.1", dray_serve_port(a->s), "POST",
                                                 a->path, a->body, strlen(a->body), 10, &status,
                                                 &body);
        if (st == DRAY_OK && status == 200)
            atomic_fetch_add(a->ok, 1);
        else if (st == DRAY_OK && status >= 500)
            atomic_fetch_add(a->failed5xx, 1);
        else
            atomic_fetch_add(a->other, 1);
        dray_free(body);
    }
    return NULL;
}

static void *handle_call_thread(void *p)
{
    dray_serve_handle *h = p;
    dray_serve_response r;
    ASSERT_OK(dray_serve_handle_call(h, NULL, &r));
    dray_serve_response_release(&r);
    return NULL;
}

static void wait_ongoing(dray_serve_handle *h, int want)
{
    dray_serve_stats st;
    for (int i = 0; i < 5000; i++) {
        dray_serve_handle_stats(h, &st);
        if (st.ongoing >= want)
            return;
        sleep_ms(1);
    }
    TEST_FAIL_("ongoing never reached %d (at %lld)", want, (long long)st.ongoing);
}

TEST(backpressure_503)
{
    dray_serve *s = start_serve(0);
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = "slow";
    d.class_name = "TestSleeper";
    d.route_prefix = "/slow";
    d.user_config = "{\"ms\": 300}";
    d.max_ongoing_requests = 2;
    dray_serve_handle *h;
    ASSERT_OK(dray_serve_run(s, &d, &h));
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, handle_call_thread, h);
    wait_ongoing(h, 2);
    /* The replica is at its limit: a handle call is refused, and HTTP gets 503 as JSON. */
    dray_serve_response r;
    ASSERT_STATUS(dray_serve_handle_call(h, NULL, &r), DRAY_EBUSY);
    ASSERT_CONTAINS(dray_last_error(), "max_ongoing_requests (2)");
    char *body = NULL;
    ASSERT_EQ(http(s, "POST", "/slow", "{}", &body), 503);
    ASSERT_CONTAINS(body, "\"status\":503");
    dray_free(body);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    dray_serve_stats st;
    dray_serve_handle_stats(h, &st);
    ASSERT_EQ(st.rejected, 2);
    ASSERT_EQ(st.requests, 2);
    /* Free again. */
    ASSERT_EQ(http(s, "POST", "/slow", "{}", &body), 200);
    dray_free(body);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

/* Composition: "Doubler" calls the echo deployment through a handle and wraps its answer. */
typedef struct doubler {
    dray_serve_handle *inner;
} doubler;

static dray_status doubler_init(dray_serve *serve, const cJSON *cfg, void **state)
{
    doubler *d = calloc(1, sizeof(*d));
    const cJSON *name = cJSON_GetObjectItem(cfg, "inner");
    dray_status st = dray_serve_get_handle(serve, cJSON_IsString(name) ? name->valuestring : "",
                                           &d->inner);
    if (st != DRAY_OK) {
        free(d);
        return st;
    }
    *state = d;
    return DRAY_OK;
}

static dray_status doubler_call(void *state, dray_serve_request *req, dray_serve_response *resp)
{
    doubler *d = state;
    const cJSON *body;
    dray_status st = dray_serve_request_json(req, &body);
    if (st != DRAY_OK)
        return st;
    const cJSON *x = cJSON_GetObjectItem(body, "x");
    if (!cJSON_IsNumber(x))
        return dray_set_error(DRAY_EINVAL, "x: expected a number");
    cJSON *inner_body = cJSON_CreateObject();
    cJSON_AddNumberToObject(inner_body, "x", 2 * x->valuedouble);
    dray_serve_response inner;
    st = dray_serve_handle_call(d->inner, inner_body, &inner);
    cJSON_Delete(inner_body);
    if (st != DRAY_OK)
        return st;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "inner", inner.json);
    inner.json = NULL;
    dray_serve_response_release(&inner);
    resp->json = o;
    return DRAY_OK;
}

static dray_serve_class doubler_class = {
    .name = "TestDoubler", .init = doubler_init, .call = doubler_call, .destroy = free_state};
DRAY_SERVE_CLASS(doubler_class)

TEST(composition_through_handles)
{
    dray_serve *s = start_serve(0);
    deploy(s, "echo", "TestEcho", NULL, 2, "{\"tag\": \"inner\"}");
    deploy(s, "doubler", "TestDoubler", "/double", 1, "{\"inner\": \"echo\"}");
    char *body = NULL;
    ASSERT_EQ(http(s, "POST", "/double", "{\"x\": 21}", &body), 200);
    cJSON *j = cJSON_Parse(body);
    cJSON *inner = cJSON_GetObjectItem(j, "inner");
    ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(inner, "echo"), "x")->valueint, 42);
    ASSERT_STREQ(cJSON_GetObjectItem(inner, "tag")->valuestring, "inner");
    cJSON_Delete(j);
    dray_free(body);
    ASSERT_EQ(http(s, "POST", "/double", "{\"x\": \"no\"}", &body), 400);
    ASSERT_CONTAINS(body, "x: expected a number");
    dray_free(body);
    /* Handle calls as tasks: refs to the answers, composable with other tasks. */
    if (test_rt) {
        dray_serve_handle *eh;
        ASSERT_OK(dray_serve_get_handle(s, "echo", &eh));
        dray_ref *refs[3];
        for (int i = 0; i < 3; i++) {
            cJSON *b = cJSON_CreateObject();
            cJSON_AddNumberToObject(b, "i", i);
            ASSERT_OK(dray_serve_handle_submit(test_rt, eh, b, &refs[i]));
            cJSON_Delete(b);
        }
        for (int i = 0; i < 3; i++) {
            dray_value v;
            ASSERT_OK(dray_get(test_rt, refs[i], -1, &v));
            char want[64];
            snprintf(want, sizeof(want), "\"echo\":{\"i\":%d}", i);
            ASSERT_CONTAINS(dray_string_cstr(&v), want);
            dray_value_release(&v);
            dray_ref_release(refs[i]);
        }
        /* A failing call is an error value. */
        dray_serve_handle *dh;
        ASSERT_OK(dray_serve_get_handle(s, "doubler", &dh));
        cJSON *b = cJSON_Parse("{\"x\": \"no\"}");
        dray_ref *ref;
        ASSERT_OK(dray_serve_handle_submit(test_rt, dh, b, &ref));
        cJSON_Delete(b);
        ASSERT_STATUS(dray_get(test_rt, ref, -1, NULL), DRAY_EINVAL);
        ASSERT_CONTAINS(dray_last_error(), "x: expected a number");
        dray_ref_release(ref);
    }
    /* The echo deployment has no route: only reachable through its handle. */
    ASSERT_EQ(http(s, "POST", "/echo", "{}", &body), 404);
    dray_free(body);
    if (test_rt) {
        dray_serve_deployment_opts big;
        dray_serve_deployment_opts_init(&big);
        big.name = "big";
        big.class_name = "TestEcho";
        big.num_cpus = 1000;
        ASSERT_STATUS(dray_serve_run(s, &big, NULL), DRAY_ERESOURCE);
        ASSERT_CONTAINS(dray_last_error(), "needs 1000 CPUs");
    }
    /* An init that cannot find its handle fails the deploy, naming it. */
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = "broken";
    d.class_name = "TestDoubler";
    d.user_config = "{\"inner\": \"missing\"}";
    ASSERT_STATUS(dray_serve_run(s, &d, NULL), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "missing");
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

TEST(killed_replica_is_replaced_no_silent_loss)
{
    dray_serve *s = start_serve(0);
    dray_serve_handle *h = deploy(s, "w", "TestSleeper", "/w", 2, "{\"ms\": 1}");
    atomic_int ok = 0, fail = 0, other = 0;
    load_arg a = {s, "/w", "{}", 40, &ok, &fail, &other};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, http_load, &a);
    sleep_ms(20);
    ASSERT_OK(dray_serve_handle_kill_replica(h, 0));
    /* A call that crashes its replica: answered with 500, the replica is replaced. */
    char *body = NULL;
    ASSERT_EQ(http(s, "POST", "/w", "{\"crash\": true}", &body), 500);
    ASSERT_CONTAINS(body, "asked to crash");
    dray_free(body);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    /* Every request was answered: 200, or 5xx, never dropped. */
    ASSERT_EQ(atomic_load(&ok) + atomic_load(&fail), 160);
    ASSERT_EQ(atomic_load(&other), 0);
    dray_serve_stats st;
    for (int i = 0; i < 2000; i++) {
        dray_serve_handle_stats(h, &st);
        if (st.restarts >= 2 && st.replicas == 2)
            break;
        sleep_ms(2);
    }
    ASSERT_GE(st.restarts, 2);
    ASSERT_EQ(st.replicas, 2);
    ASSERT_STATUS(dray_serve_handle_kill_replica(h, 7), DRAY_ERANGE);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

TEST(health_check_restart)
{
    dray_serve *s = start_serve(0);
    dray_serve_handle *h = deploy(s, "hc", "TestSleeper", NULL, 1, "{\"unhealthy_after\": 3}");
    dray_serve_response r;
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(dray_serve_handle_call(h, NULL, &r));
        ASSERT_EQ(cJSON_GetObjectItem(r.json, "calls")->valueint, i + 1);
        dray_serve_response_release(&r);
    }
    dray_serve_stats st;
    for (int i = 0; i < 2000; i++) {
        dray_serve_handle_stats(h, &st);
        if (st.restarts >= 1 && st.replicas == 1)
            break;
        sleep_ms(2);
    }
    ASSERT_EQ(st.restarts, 1);
    /* A fresh replica: its call counter starts over. */
    ASSERT_OK(dray_serve_handle_call(h, NULL, &r));
    ASSERT_EQ(cJSON_GetObjectItem(r.json, "calls")->valueint, 1);
    dray_serve_response_release(&r);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

static void *echo_load(void *p)
{
    load_arg *a = p;
    return http_load(a);
}

TEST(rolling_update_and_reconfigure)
{
    dray_serve *s = start_serve(0);
    dray_serve_handle *h = deploy(s, "e", "TestEcho", "/e", 3, "{\"tag\": \"v1\"}");
    atomic_int ok = 0, fail = 0, other = 0;
    load_arg a = {s, "/e", "{}", 60, &ok, &fail, &other};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, echo_load, &a);
    /* New version: replicas roll one at a time while the load runs; nothing fails. */
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = "e";
    d.class_name = "TestEcho";
    d.route_prefix = "/e";
    d.num_replicas = 3;
    d.user_config = "{\"tag\": \"v2\"}";
    d.version = "2";
    ASSERT_OK(dray_serve_run(s, &d, NULL));
    char *body = NULL;
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(http(s, "GET", "/e", NULL, &body), 200);
        ASSERT_CONTAINS(body, "\"tag\":\"v2\"");
        dray_free(body);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(atomic_load(&ok), 120);
    dray_serve_stats st;
    dray_serve_handle_stats(h, &st);
    ASSERT_EQ(st.replicas, 3);
    ASSERT_EQ(st.reconfigures, 0);
    /* Same version, new user_config: reconfigured in place, no restart. */
    d.user_config = "{\"tag\": \"v3\"}";
    ASSERT_OK(dray_serve_run(s, &d, NULL));
    dray_serve_handle_stats(h, &st);
    ASSERT_EQ(st.reconfigures, 1);
    ASSERT_EQ(st.restarts, 0);
    for (int i = 0; i < 6; i++) {
        ASSERT_EQ(http(s, "GET", "/e", NULL, &body), 200);
        ASSERT_CONTAINS(body, "\"tag\":\"v3\"");
        dray_free(body);
    }
    /* A new version whose init fails: reported at once, the running replicas keep serving. */
    dray_serve_deployment_opts bad = d;
    bad.class_name = "TestDoubler";
    bad.user_config = "{\"inner\": \"nobody\"}";
    bad.version = "3";
    ASSERT_STATUS(dray_serve_run(s, &bad, NULL), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "nobody");
    ASSERT_CONTAINS(dray_last_error(), "previous replicas keep serving");
    ASSERT_EQ(http(s, "GET", "/e", NULL, &body), 200);
    ASSERT_CONTAINS(body, "\"tag\":\"v3\"");
    dray_free(body);
    /* Rolling back to the good version fixes it. */
    ASSERT_OK(dray_serve_run(s, &d, NULL));
    /* Scale down to 1 and back up to 2. */
    d.num_replicas = 1;
    ASSERT_OK(dray_serve_run(s, &d, NULL));
    dray_serve_handle_stats(h, &st);
    ASSERT_EQ(st.replicas, 1);
    d.num_replicas = 2;
    ASSERT_OK(dray_serve_run(s, &d, NULL));
    dray_serve_handle_stats(h, &st);
    ASSERT_EQ(st.replicas, 2);
    ASSERT_OK(dray_serve_delete(s, "e", 5));
    ASSERT_STATUS(dray_serve_delete(s, "e", 5), DRAY_ENOTFOUND);
    ASSERT_EQ(http(s, "GET", "/e", NULL, &body), 404);
    dray_free(body);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

typedef struct drain_arg {
    dray_serve *s;
    int port;
    int status;
} drain_arg;

static void *slow_request(void *p)
{
    drain_arg *a = p;
    char *body = NULL;
    ASSERT_OK(dray_serve_http_request("127.0.0.1", a->port, "POST", "/slow", "{}", 2, 10,
                                      &a->status, &body));
    dray_free(body);
    return NULL;
}

TEST(graceful_shutdown_drains)
{
    dray_serve *s = start_serve(0);
    dray_serve_handle *h = deploy(s, "slow", "TestSleeper", "/slow", 1, "{\"ms\": 300}");
    drain_arg a = {s, dray_serve_port(s), 0};
    pthread_t t;
    pthread_create(&t, NULL, slow_request, &a);
    wait_ongoing(h, 1);
    ASSERT_OK(dray_serve_shutdown(s, 5));
    pthread_join(t, NULL);
    ASSERT_EQ(a.status, 200);
}

TEST(all_on_actors)
{
    WITH_ACTORS({
        test_backpressure_503();
        test_composition_through_handles();
        test_killed_replica_is_replaced_no_silent_loss();
        test_health_check_restart();
        test_rolling_update_and_reconfigure();
        test_graceful_shutdown_drains();
    });
}

TEST(inline_with_runtime)
{
    test_inline = true;
    WITH_ACTORS({
        test_composition_through_handles();
        test_killed_replica_is_replaced_no_silent_loss();
    });
    test_inline = false;
}

RUN_TESTS(T_(inline_with_runtime), T_(backpressure_503), T_(composition_through_handles),
          T_(killed_replica_is_replaced_no_silent_loss), T_(health_check_restart),
          T_(rolling_update_and_reconfigure), T_(graceful_shutdown_drains), T_(all_on_actors))
