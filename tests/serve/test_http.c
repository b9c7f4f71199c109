/* HTTP ingress: system routes, routing by prefix, JSON errors with the right status codes, size
 * limits, model answers checked against the weights computed directly, keep-alive and pipelining. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "serve/helpers.h"

static void deploy_echo(dray_serve *s, const char *name, const char *route)
{
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = name;
    d.class_name = "TestEcho";
    d.route_prefix = route;
    d.user_config = "{\"tag\": \"t1\"}";
    ASSERT_OK(dray_serve_run(s, &d, NULL));
}

TEST(system_routes)
{
    dray_serve *s = start_serve(0);
    ASSERT_GT(dray_serve_port(s), 0);
    char *body = NULL;
    ASSERT_EQ(http(s, "GET", "/-/healthz", NULL, &body), 200);
    ASSERT_STREQ(body, "success");
    dray_free(body);
    deploy_echo(s, "a", "/a");
    deploy_echo(s, "b", "/b/c/");
    ASSERT_EQ(http(s, "GET", "/-/routes", NULL, &body), 200);
    cJSON *j = cJSON_Parse(body);
    ASSERT_STREQ(cJSON_GetObjectItem(j, "/a")->valuestring, "a");
    ASSERT_STREQ(cJSON_GetObjectItem(j, "/b/c")->valuestring, "b");
    ASSERT_EQ(cJSON_GetArraySize(j), 2);
    cJSON_Delete(j);
    dray_free(body);
    ASSERT_EQ(http(s, "GET", "/-/nope", NULL, &body), 404);
    dray_free(body);
    ASSERT_EQ(http(s, "GET", "/-/shutdown", NULL, &body), 405);
    ASSERT_CONTAINS(body, "method not allowed");
    dray_free(body);
    ASSERT_EQ(http(s, "GET", "/-/status", NULL, &body), 200);
    ASSERT_CONTAINS(body, "\"deployments\"");
    dray_free(body);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

TEST(routing_and_errors)
{
    dray_serve *s = start_serve(0);
    deploy_echo(s, "root", "/");
    deploy_echo(s, "api", "/api");
    char *body = NULL;
    /* Longest prefix wins; the rest of the path is handed over. */
    ASSERT_EQ(http(s, "POST", "/api/x/y", "{\"k\": [1, 2]}", &body), 200);
    cJSON *j = cJSON_Parse(body);
    ASSERT_STREQ(cJSON_GetObjectItem(j, "path")->valuestring, "/x/y");
    ASSERT_EQ(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "echo"), "k"), 1)
                  ->valueint, 2);
    ASSERT_STREQ(cJSON_GetObjectItem(j, "tag")->valuestring, "t1");
    cJSON_Delete(j);
    dray_free(body);
    /* "/apix" is not under "/api": it goes to "/". */
    ASSERT_EQ(http(s, "GET", "/apix", NULL, &body), 200);
    ASSERT_CONTAINS(body, "\"path\":\"/apix\"");
    dray_free(body);
    /* Malformed JSON: 400 naming the offset, as JSON. */
    ASSERT_EQ(http(s, "POST", "/api", "{\"k\": [1, 2", &body), 400);
    j = cJSON_Parse(body);
    ASSERT_TRUE(j != NULL);
    ASSERT_CONTAINS(cJSON_GetObjectItem(j, "error")->valuestring, "malformed JSON at byte");
    ASSERT_EQ(cJSON_GetObjectItem(j, "status")->valueint, 400);
    cJSON_Delete(j);
    dray_free(body);
    ASSERT_EQ(http(s, "POST", "/api", "{} trailing", &body), 400);
    ASSERT_CONTAINS(body, "trailing data");
    dray_free(body);
    /* Too deep. */
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 99);
    deep[199] = '\0';
    ASSERT_EQ(http(s, "POST", "/api", deep, &body), 400);
    ASSERT_CONTAINS(body, "nested deeper");
    dray_free(body);
    /* Oversized body: 413 (limit 4096 in start_serve). */
    char *big = malloc(10000);
    memset(big, ' ', 9999);
    big[9999] = '\0';
    big[0] = '{';
    big[9998] = '}';
    ASSERT_EQ(http(s, "POST", "/api", big, &body), 413);
    ASSERT_CONTAINS(body, "exceeds the limit");
    dray_free(body);
    free(big);
    /* The server keeps serving. */
    ASSERT_EQ(http(s, "POST", "/api", "{}", &body), 200);
    dray_free(body);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

TEST(unknown_route_and_bad_deploys)
{
    dray_serve *s = start_serve(0);
    deploy_echo(s, "api", "/api");
    char *body = NULL;
    ASSERT_EQ(http(s, "GET", "/other", NULL, &body), 404);
    ASSERT_CONTAINS(body, "no route for /other");
    dray_free(body);
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = "x";
    d.class_name = "NoSuchClass";
    ASSERT_STATUS(dray_serve_run(s, &d, NULL), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "NoSuchClass");
    d.class_name = "TestEcho";
    d.route_prefix = "/api/";
    ASSERT_STATUS(dray_serve_run(s, &d, NULL), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "taken by 'api'");
    d.route_prefix = "noslash";
    ASSERT_STATUS(dray_serve_run(s, &d, NULL), DRAY_EINVAL);
    d.route_prefix = NULL;
    d.user_config = "{bad";
    ASSERT_STATUS(dray_serve_run(s, &d, NULL), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "user_config");
    d.user_config = NULL;
    d.version = "0123456789012345678901234567890123456789x";
    ASSERT_STATUS(dray_serve_run(s, &d, NULL), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "longer than 40");
    d.version = NULL;
    d.max_ongoing_requests = 0;
    ASSERT_STATUS(dray_serve_run(s, &d, NULL), DRAY_EINVAL);
    ASSERT_OK(dray_serve_shutdown(s, 5));
    /* A port in use. */
    dray_serve *a = start_serve(0);
    dray_serve_opts o;
    dray_serve_opts_init(&o);
    o.port = dray_serve_port(a);
    dray_serve *b = NULL;
    ASSERT_STATUS(dray_serve_start(&o, &b), DRAY_ENET);
    ASSERT_CONTAINS(dray_last_error(), "cannot listen");
    ASSERT_OK(dray_serve_shutdown(a, 5));
}

TEST(model_answers)
{
    const char *path = tmp_path("test_serve_http_model.txt");
    dray_serve_logreg m;
    train_model(path, 4, &m);
    dray_serve *s = start_serve(0);
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.class_name = "LogisticRegression";
    d.route_prefix = "/predict";
    d.num_replicas = 2;
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "{\"model_path\": \"%s\"}", path);
    d.user_config = cfg;
    ASSERT_OK(dray_serve_run(s, &d, NULL));
    for (int i = 0; i < 20; i++) {
        double x[4] = {0.1 * i - 1, 0.3 - 0.05 * i, (i % 3) * 0.4, -0.2 * (i % 5)};
        char req[256];
        snprintf(req, sizeof(req), "{\"features\": [%.17g, %.17g, %.17g, %.17g]}", x[0], x[1],
                 x[2], x[3]);
        char *body = NULL;
        ASSERT_EQ(http(s, "POST", "/predict", req, &body), 200);
        /* Independent computation from the weights. */
        double z = m.bias;
        for (int k = 0; k < 4; k++)
            z += m.w[k] * x[k];
        double want = 1 / (1 + exp(-z));
        cJSON *j = cJSON_Parse(body);
        ASSERT_NEAR(cJSON_GetObjectItem(j, "probability")->valuedouble, want, 1e-12);
        ASSERT_EQ(cJSON_GetObjectItem(j, "label")->valueint, want >= 0.5);
        cJSON_Delete(j);
        dray_free(body);
    }
    char *body = NULL;
    ASSERT_EQ(http(s, "POST", "/predict", "{\"features\": [1, 2, 3]}", &body), 400);
    ASSERT_CONTAINS(body, "expected 4 features, got 3");
    dray_free(body);
    ASSERT_EQ(http(s, "POST", "/predict", "{\"features\": [1, 2, \"x\", 4]}", &body), 400);
    ASSERT_CONTAINS(body, "features[2]: not a number");
    dray_free(body);
    ASSERT_EQ(http(s, "POST", "/predict", "", &body), 400);
    ASSERT_CONTAINS(body, "empty");
    dray_free(body);
    ASSERT_EQ(http(s, "POST", "/predict", "{\"instances\": [[0,0,0,0],[1,1,1,1]]}", &body), 200);
    cJSON *j = cJSON_Parse(body);
    cJSON *p = cJSON_GetObjectItem(j, "predictions");
    ASSERT_EQ(cJSON_GetArraySize(p), 2);
    ASSERT_NEAR(cJSON_GetArrayItem(p, 0)->valuedouble, 1 / (1 + exp(-m.bias)), 1e-12);
    cJSON_Delete(j);
    dray_free(body);
    dray_serve_logreg_fini(&m);
    ASSERT_OK(dray_serve_shutdown(s, 5));
    remove(path);
}

/* Sends raw bytes on one connection and reads until `want` responses arrived (or EOF). */
static int raw_exchange(int port, const char *data, int want, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ASSERT_EQ(send(fd, data, strlen(data), 0), (ssize_t)strlen(data));
    size_t n = 0;
    int got = 0;
    while (got < want && n + 1 < cap) {
        ssize_t r = recv(fd, out + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        out[n] = '\0';
        got = 0;
        for (const char *p = out; (p = strstr(p, "HTTP/1.1 ")); p++)
            got++;
    }
    out[n] = '\0';
    close(fd);
    return got;
}

TEST(keepalive_and_pipelining)
{
    dray_serve *s = start_serve(0);
    deploy_echo(s, "api", "/api");
    char out[8192];
    const char *two = "POST /api/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                      "POST /api/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n[1,2,3]"
                      "GET /-/healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(raw_exchange(dray_serve_port(s), two, 3, out, sizeof(out)), 3);
    ASSERT_CONTAINS(out, "\"path\":\"/1\"");
    ASSERT_CONTAINS(out, "\"echo\":[1,2,3]");
    ASSERT_CONTAINS(out, "success");
    /* Query parameters and headers reach the deployment. */
    ASSERT_EQ(raw_exchange(dray_serve_port(s),
                           "GET /api/x?q=a%20b&z=1 HTTP/1.1\r\nHost: x\r\nX-Test: hello\r\n\r\n", 1,
                           out, sizeof(out)), 1);
    ASSERT_CONTAINS(out, "\"path\":\"/x\"");
    ASSERT_CONTAINS(out, "\"q\":\"a b\"");
    ASSERT_CONTAINS(out, "\"x_test\":\"hello\"");
    /* Garbage request line: the server answers 400 or closes, and keeps serving others. */
    raw_exchange(dray_serve_port(s), "NOT HTTP AT ALL\r\n\r\n", 1, out, sizeof(out));
    /* A body announced far over the limit is refused before it is read. */
    ASSERT_EQ(raw_exchange(dray_serve_port(s),
                           "POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n{",
                           1, out, sizeof(out)), 1);
    ASSERT_CONTAINS(out, "HTTP/1.1 413");
    ASSERT_CONTAINS(out, "exceeds the limit of 4096");
    /* Client gone mid-body. */
    raw_exchange(dray_serve_port(s), "POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
                 0, out, sizeof(out));
    char *body = NULL;
    ASSERT_EQ(http(s, "GET", "/-/healthz", NULL, &body), 200);
    dray_free(body);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

TEST(model_on_actors)
{
    WITH_ACTORS({
        test_model_answers();
        test_routing_and_errors();
    });
}

TEST(slow_client_times_out)
{
    dray_serve_opts o;
    dray_serve_opts_init(&o);
    o.port = 0;
    o.request_timeout_s = 1;
    dray_serve *s;
    ASSERT_OK(dray_serve_start(&o, &s));
    deploy_echo(s, "api", "/api");
    /* Half a request, then silence: the server closes the connection after the timeout. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)dray_serve_port(s))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char *part = "POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\"";
    ASSERT_EQ(send(fd, part, strlen(part), 0), (ssize_t)strlen(part));
    /* Meanwhile everyone else is served. */
    char *body = NULL;
    ASSERT_EQ(http(s, "POST", "/api", "{}", &body), 200);
    dray_free(body);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[256];
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    ASSERT_TRUE(r <= 0); /* closed (0) or reset, not answered and not left hanging */
    close(fd);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

RUN_TESTS(T_(slow_client_times_out), T_(model_on_actors), T_(system_routes), T_(routing_and_errors), T_(unknown_route_and_bad_deploys),
          T_(model_answers), T_(keepalive_and_pipelining))
