/* Serve config files: parsing with file:line:column errors, applying them (built-in class and a
 * class from a shared library built here), and `dray serve run/status/shutdown` end to end. */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "serve/helpers.h"

static dray_serve_config *parse(const char *text)
{
    dray_serve_config *c = NULL;
    ASSERT_OK(dray_serve_config_parse(text, strlen(text), "t.yaml", &c));
    return c;
}

static void parse_fails(const char *text, const char *want)
{
    dray_serve_config *c = NULL;
    ASSERT_STATUS(dray_serve_config_parse(text, strlen(text), "t.yaml", &c), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), want);
    ASSERT_TRUE(c == NULL);
}

TEST(parse_errors)
{
    parse_fails("", "empty config");
    parse_fails("applications: [\n  {name: x\n", "t.yaml:");
    parse_fails("http_options: {port: abc}\napplications: []\n", "t.yaml:1:22: expected a finite number for port");
    parse_fails("http_options: {port: 70000}\n", "port out of range");
    parse_fails("bogus: 1\n", "t.yaml:1:1: unknown key bogus");
    parse_fails("applications:\n  - name: a\n", "application without import_path");
    parse_fails("applications:\n  - import_path: 'lib.so:'\n", "import_path: expected");
    parse_fails("applications:\n  - import_path: X\n    deployments:\n      - num_replicas: -1\n",
                "t.yaml:4:23: expected a non-negative integer for num_replicas");
    parse_fails("applications:\n  - import_path: X\n    deployments:\n      - name: a\n      - name: b\n"
                "        autoscaling_config: {max_replicas: 2, wat: 1}\n",
                "t.yaml:6:47: unknown key wat");
    parse_fails("applications: []\n", "no applications");
    parse_fails("applications: []\napplications: []\n", "t.yaml:2:1: duplicate key applications");
    parse_fails("applications:\n  - import_path: X\n    deployments:\n      - num_replicas: 8e12\n",
                "expected a non-negative integer for num_replicas");
    parse_fails("applications:\n  - import_path: X\n    deployments:\n"
                "      - batch_wait_timeout_s: nan\n",
                "expected a finite number for batch_wait_timeout_s");
    parse_fails("applications:\n  - import_path: X\n    deployments:\n"
                "      - request_timeout_s: soon\n",
                "t.yaml:4:28: expected a finite number for request_timeout_s");
}

/* "deployments: []" means the default single deployment (a leak here was found by the fuzzer). */
TEST(empty_deployment_list)
{
    dray_serve_config *c = parse("applications: [ {import_path: X, deployments: [] } ]\n");
    dray_serve_config_destroy(c);
}

TEST(apply_builtin_and_plugin)
{
    const char *model = tmp_path("test_serve_config_model.txt");
    dray_serve_logreg m;
    train_model(model, 2, &m);
    /* The plugin library, compiled from source here. */
    const char *so = tmp_path("test_serve_plugin.so");
    char cc[512];
    snprintf(cc, sizeof(cc), "cc -shared -fPIC -O1 -Iinclude -o %s tests/serve/plugin_echo.c -lcjson",
             so);
    ASSERT_EQ(system(cc), 0);
    char text[2048];
    snprintf(text, sizeof(text),
             "http_options:\n  host: 127.0.0.1\n  port: 0\n  max_body_bytes: 2048\n"
             "applications:\n"
             "  - name: model\n    route_prefix: /m\n    import_path: LogisticRegression\n"
             "    deployments:\n      - name: LogisticRegression\n        num_replicas: 2\n"
             "        max_batch_size: 4\n        batch_wait_timeout_s: 0.001\n"
             "        user_config:\n          model_path: %s\n"
             "  - name: plug\n    route_prefix: /p\n    import_path: %s:PluginEcho\n"
             "    deployments:\n      - name: PluginEcho\n"
             "        user_config: {greeting: hello, n: 3, ok: true}\n"
             "        autoscaling_config: {min_replicas: 1, max_replicas: 2}\n",
             model, so);
    dray_serve_config *cfg = parse(text);
    dray_serve_opts o;
    dray_serve_opts_init(&o);
    o.port = 8000;
    dray_serve_config_http(cfg, &o);
    ASSERT_EQ(o.port, 0);
    ASSERT_EQ(o.max_body_bytes, 2048);
    dray_serve *s;
    ASSERT_OK(dray_serve_start(&o, &s));
    ASSERT_OK(dray_serve_config_apply(cfg, s));
    char *body = NULL;
    ASSERT_EQ(http(s, "POST", "/m", "{\"features\": [0.5, -1]}", &body), 200);
    double want = 1 / (1 + exp(-(m.bias + 0.5 * m.w[0] - m.w[1])));
    cJSON *j = cJSON_Parse(body);
    ASSERT_NEAR(cJSON_GetObjectItem(j, "probability")->valuedouble, want, 1e-12);
    cJSON_Delete(j);
    dray_free(body);
    ASSERT_EQ(http(s, "POST", "/p", "[1,2]", &body), 200);
    ASSERT_STREQ(body, "{\"plugin\":[1,2],\"greeting\":\"hello\"}");
    dray_free(body);
    ASSERT_EQ(http(s, "GET", "/-/routes", NULL, &body), 200);
    ASSERT_STREQ(body, "{\"/p\":\"PluginEcho\",\"/m\":\"LogisticRegression\"}");
    dray_free(body);
    /* Applying a config naming a missing library fails, naming it. */
    dray_serve_config *bad = parse("applications:\n  - import_path: /nonexistent/nope.so:X\n");
    ASSERT_STATUS(dray_serve_config_apply(bad, s), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "/nonexistent/nope.so");
    dray_serve_config_destroy(bad);
    bad = parse("applications:\n  - import_path: NoSuchClass\n");
    ASSERT_STATUS(dray_serve_config_apply(bad, s), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "no class 'NoSuchClass'");
    dray_serve_config_destroy(bad);
    ASSERT_OK(dray_serve_shutdown(s, 5));
    dray_serve_config_destroy(cfg);
    dray_serve_logreg_fini(&m);
    remove(model);
    remove(so);
}

TEST(cli_run_status_shutdown)
{
    const char *model = tmp_path("test_serve_cli_model.txt");
    dray_serve_logreg m;
    train_model(model, 2, &m);
    const char *status_path = tmp_path("status.txt");
    /* Port 0: the CLI prints the port it got. */
    char text[1024];
    const char *path = tmp_path("cli.yaml");
    snprintf(text, sizeof(text),
             "http_options: {port: 0}\napplications:\n  - route_prefix: /\n"
             "    import_path: LogisticRegression\n    deployments:\n"
             "      - name: LogisticRegression\n        user_config: {model_path: %s}\n",
             model);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    const char *bin = getenv("DRAY_BUILD_DIR") ? getenv("DRAY_BUILD_DIR") : "build";
    char cmd[512];
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a failed test */
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        snprintf(cmd, sizeof(cmd), "%s/bin/dray", bin);
        execl(cmd, cmd, "serve", "run", path, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    FILE *out_f = fdopen(pipefd[0], "r");
    char line[256] = {0};
    int port = 0;
    while (fgets(line, sizeof(line), out_f))
        if (sscanf(line, "serving on http://127.0.0.1:%d", &port) == 1)
            break;
    ASSERT_GT(port, 0);
    int status = 0;
    char *body = NULL;
    ASSERT_OK(dray_serve_http_request("127.0.0.1", port, "POST", "/", "{\"features\": [1, 1]}",
                                      20, 5, &status, &body));
    ASSERT_EQ(status, 200);
    cJSON *j = cJSON_Parse(body);
    ASSERT_NEAR(cJSON_GetObjectItem(j, "probability")->valuedouble,
                1 / (1 + exp(-(m.bias + m.w[0] + m.w[1]))), 1e-12);
    cJSON_Delete(j);
    dray_free(body);
    /* Reload on SIGHUP: a new model file through user_config, applied in place. */
    const char *model2 = tmp_path("test_serve_cli_model2.txt");
    f = fopen(model2, "w");
    fputs("dray-logreg 1\n2\n0\n1 1\n", f);
    fclose(f);
    snprintf(text, sizeof(text),
             "http_options: {port: 0}\napplications:\n  - route_prefix: /\n"
             "    import_path: LogisticRegression\n    deployments:\n"
             "      - name: LogisticRegression\n        user_config: {model_path: %s}\n",
             model2);
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    kill(pid, SIGHUP);
    bool reloaded = false;
    while (!reloaded && fgets(line, sizeof(line), out_f))
        reloaded = strncmp(line, "reloaded", 8) == 0;
    ASSERT_TRUE(reloaded);
    ASSERT_OK(dray_serve_http_request("127.0.0.1", port, "POST", "/", "{\"features\": [1, 1]}",
                                      20, 5, &status, &body));
    ASSERT_EQ(status, 200);
    j = cJSON_Parse(body);
    ASSERT_NEAR(cJSON_GetObjectItem(j, "probability")->valuedouble, 1 / (1 + exp(-2.0)), 1e-12);
    cJSON_Delete(j);
    dray_free(body);
    remove(model2);
    snprintf(cmd, sizeof(cmd), "%s/bin/dray serve status --address 127.0.0.1:%d > %s",
             bin, port, status_path);
    ASSERT_EQ(system(cmd), 0);
    f = fopen(status_path, "r");
    ASSERT_TRUE(f != NULL);
    char out[4096] = {0};
    fread(out, 1, sizeof(out) - 1, f);
    fclose(f);
    ASSERT_CONTAINS(out, "\"name\":\t\"LogisticRegression\"");
    ASSERT_CONTAINS(out, "\"requests\":\t2");
    snprintf(cmd, sizeof(cmd), "%s/bin/dray serve shutdown --address 127.0.0.1:%d > /dev/null", bin,
             port);
    ASSERT_EQ(system(cmd), 0);
    int wst = 0;
    ASSERT_EQ(waitpid(pid, &wst, 0), pid);
    fclose(out_f);
    ASSERT_TRUE(WIFEXITED(wst));
    ASSERT_EQ(WEXITSTATUS(wst), 0);
    /* A bad config: non-zero exit. */
    snprintf(cmd, sizeof(cmd), "%s/bin/dray serve run tests/serve/nope.yaml 2>/dev/null", bin);
    ASSERT_NE(system(cmd), 0);
    remove(path);
    remove(model);
    remove(status_path);
    dray_serve_logreg_fini(&m);
}

TEST(config_reload)
{
    dray_serve *s = start_serve(0);
    const char *v1 = "applications:\n  - route_prefix: /e\n    import_path: TestEcho\n"
                     "    deployments:\n      - name: TestEcho\n        num_replicas: 2\n"
                     "        user_config: {tag: one}\n";
    dray_serve_config *c = parse(v1);
    ASSERT_OK(dray_serve_config_apply(c, s));
    dray_serve_config_destroy(c);
    char *body = NULL;
    ASSERT_EQ(http(s, "GET", "/e", NULL, &body), 200);
    ASSERT_CONTAINS(body, "\"tag\":\"one\"");
    dray_free(body);
    /* Same version, new user_config: reconfigured in place. */
    c = parse("applications:\n  - route_prefix: /e\n    import_path: TestEcho\n"
              "    deployments:\n      - name: TestEcho\n        num_replicas: 2\n"
              "        user_config: {tag: two}\n");
    ASSERT_OK(dray_serve_config_apply(c, s));
    dray_serve_config_destroy(c);
    dray_serve_handle *h;
    ASSERT_OK(dray_serve_get_handle(s, "TestEcho", &h));
    dray_serve_stats st;
    dray_serve_handle_stats(h, &st);
    ASSERT_EQ(st.reconfigures, 1);
    ASSERT_EQ(st.replicas, 2);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(http(s, "GET", "/e", NULL, &body), 200);
        ASSERT_CONTAINS(body, "\"tag\":\"two\"");
        dray_free(body);
    }
    /* New version and replica count: rolled and scaled. */
    c = parse("applications:\n  - route_prefix: /e\n    import_path: TestEcho\n"
              "    deployments:\n      - name: TestEcho\n        num_replicas: 3\n"
              "        version: b\n        user_config: {tag: three}\n");
    ASSERT_OK(dray_serve_config_apply(c, s));
    dray_serve_config_destroy(c);
    dray_serve_handle_stats(h, &st);
    ASSERT_EQ(st.replicas, 3);
    ASSERT_EQ(st.reconfigures, 1);
    ASSERT_EQ(http(s, "GET", "/e", NULL, &body), 200);
    ASSERT_CONTAINS(body, "\"tag\":\"three\"");
    dray_free(body);
    /* A route change is refused, naming the deployment; the running one is untouched. */
    c = parse("applications:\n  - route_prefix: /other\n    import_path: TestEcho\n");
    ASSERT_STATUS(dray_serve_config_apply(c, s), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "route_prefix cannot change");
    dray_serve_config_destroy(c);
    ASSERT_EQ(http(s, "GET", "/e", NULL, &body), 200);
    dray_free(body);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

RUN_TESTS(T_(config_reload), T_(parse_errors), T_(empty_deployment_list), T_(apply_builtin_and_plugin), T_(cli_run_status_shutdown))
