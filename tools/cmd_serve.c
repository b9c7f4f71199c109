/* `dray serve run CONFIG.yaml | status | shutdown`: runs the applications of a serve config file on
 * the embedded runtime until SIGINT/SIGTERM or POST /-/shutdown (SIGHUP reloads the file); status and
 * shutdown talk to a running server over HTTP. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dray/serve.h"

static volatile sig_atomic_t got_signal, got_reload;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        got_reload = 1;
    else
        got_signal = 1;
}

/* Re-reads the config and applies it: changed deployments roll or reconfigure in place. */
static void reload(const char *path, dray_serve *s)
{
    dray_serve_config *cfg = NULL;
    dray_status st = dray_serve_config_load(path, &cfg);
    if (st == DRAY_OK)
        st = dray_serve_config_apply(cfg, s);
    if (st != DRAY_OK)
        fprintf(stderr, "dray serve run: reload of %s failed: %s\n", path, dray_last_error());
    else
        printf("reloaded %s\n", path);
    fflush(stdout);
    dray_serve_config_destroy(cfg);
}

static int usage(void)
{
    fprintf(stderr, "usage: dray serve run CONFIG.yaml\n"
                    "       dray serve status [--address HOST:PORT]\n"
                    "       dray serve shutdown [--address HOST:PORT]\n"
                    "The address defaults to 127.0.0.1:8000.\n");
    return 2;
}

static int serve_run(const char *path)
{
    int rc = 1;
    dray_serve_config *cfg = NULL;
    dray_runtime *rt = NULL;
    dray_serve *s = NULL;
    if (dray_serve_config_load(path, &cfg) != DRAY_OK)
        goto out;
    if (dray_init(NULL, &rt) != DRAY_OK)
        goto out;
    dray_serve_opts o;
    dray_serve_opts_init(&o);
    o.port = 8000;
    o.rt = rt;
    dray_serve_config_http(cfg, &o);
    if (dray_serve_start(&o, &s) != DRAY_OK || dray_serve_config_apply(cfg, s) != DRAY_OK)
        goto out;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    printf("serving on http://%s:%d\n", o.host, dray_serve_port(s));
    fflush(stdout);
    while (!got_signal && dray_serve_wait_shutdown_request(s, 0.2) == DRAY_ETIMEDOUT) {
        if (got_reload) {
            got_reload = 0;
            reload(path, s);
        }
    }
    printf("shutting down\n");
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "dray serve run: %s\n", dray_last_error());
    dray_serve_shutdown(s, 30);
    if (rt)
        dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    dray_serve_config_destroy(cfg);
    return rc;
}

static int serve_remote(const char *what, int argc, char **argv)
{
    char host[64] = "127.0.0.1";
    int port = 8000;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
            const char *a = argv[++i], *colon = strrchr(a, ':');
            if (!colon || (size_t)(colon - a) >= sizeof(host) || atoi(colon + 1) <= 0)
                return usage();
            snprintf(host, sizeof(host), "%.*s", (int)(colon - a), a);
            port = atoi(colon + 1);
        } else {
            return usage();
        }
    }
    bool status = strcmp(what, "status") == 0;
    int code = 0;
    char *body = NULL;
    if (dray_serve_http_request(host, port, status ? "GET" : "POST",
                                status ? "/-/status" : "/-/shutdown", NULL, 0, 10, &code,
                                &body) != DRAY_OK) {
        fprintf(stderr, "dray serve %s: %s\n", what, dray_last_error());
        return 1;
    }
    cJSON *j = cJSON_Parse(body);
    char *pretty = j ? cJSON_Print(j) : NULL;
    printf("%s\n", pretty ? pretty : body);
    free(pretty);
    cJSON_Delete(j);
    dray_free(body);
    return code == 200 ? 0 : 1;
}

static int run_serve(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "run") == 0)
        return argc == 3 ? serve_run(argv[2]) : usage();
    if (strcmp(argv[1], "status") == 0 || strcmp(argv[1], "shutdown") == 0)
        return serve_remote(argv[1], argc - 2, argv + 2);
    return usage();
}
DRAY_CLI_COMMAND(cmd_serve, "serve", "serve deployments over HTTP (run CONFIG.yaml, status, shutdown)",
                 run_serve)
