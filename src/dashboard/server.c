/* The dashboard's HTTP server (libmicrohttpd; docs/design.md says why not serve's): GET only, token
 * check when configured, answers from api.c; start/stop, the DRAY_DASHBOARD environment option and
 * the embedded files. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ==== Embedded files ==== */

const db_asset *db_asset_find(const char *path)
{
    for (size_t i = 0; i < dray__dashboard_n_assets; i++)
        if (!strcmp(dray__dashboard_assets[i].path, path))
            return &dray__dashboard_assets[i];
    return NULL;
}

const char *db_content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && !strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    if (dot && !strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    if (dot && !strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (dot && !strcmp(dot, ".svg"))
        return "image/svg+xml";
    return "application/octet-stream";
}

/* ==== Requests ==== */

static bool token_ok(const char *want, const char *got)
{
    if (!got)
        return false;
    size_t a = strlen(want), b = strlen(got);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < b ? got[i] : 0);
    return diff == 0;
}

static enum MHD_Result reply(struct MHD_Connection *conn, int status, char *body, size_t len,
                             const char *ctype)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Per request: the raw target ("/path?query", as sent) and whether the first call was seen. */
typedef struct req_ctx {
    int calls;
    char target[];
} req_ctx;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    size_t n = strlen(uri);
    req_ctx *r = malloc(sizeof(*r) + n + 1);
    if (r) {
        r->calls = 0;
        memcpy(r->target, uri, n + 1);
    }
    return r;
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)url;
    struct dray_dashboard *d = cls;
    req_ctx *r = *con_cls;
    if (!r)
        return MHD_NO;
    if (r->calls++ == 0)
        return MHD_YES; /* answer on the second call: answering on the first loses keep-alive */
    if (*upload_size) {
        *upload_size = 0; /* bodies are ignored */
        return MHD_YES;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        char *b = strdup("{\"error\":\"only GET is allowed\",\"status\":405}");
        return reply(conn, 405, b, b ? strlen(b) : 0, "application/json");
    }
    if (d->token) {
        const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        bool ok = token_ok(d->token, q) ||
                  (auth && !strncmp(auth, "Bearer ", 7) && token_ok(d->token, auth + 7));
        if (!ok) {
            char *b = strdup("{\"error\":\"a token is required (?token= or Authorization: "
                             "Bearer)\",\"status\":401}");
            return reply(conn, 401, b, b ? strlen(b) : 0, "application/json");
        }
    }
    int status;
    char *body = NULL;
    size_t len = 0;
    const char *ctype;
    db_api_answer(d, r->target, &status, &body, &len, &ctype);
    return reply(conn, status, body, len, ctype);
}

/* ==== Life cycle ==== */

void dray_dashboard_opts_init(dray_dashboard_opts *opts)
{
    if (opts)
        memset(opts, 0, sizeof(*opts));
}

void db_server_halt(struct dray_dashboard *d)
{
    if (atomic_exchange(&d->stopped, 1))
        return;
    if (d->mhd)
        MHD_stop_daemon(d->mhd);
    d->mhd = NULL;
}

static dray_status copy_opt(const char *s, char **out)
{
    *out = NULL;
    if (s && !(*out = strdup(s)))
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    return DRAY_OK;
}

dray_status dray_dashboard_start(dray_runtime *rt, const dray_dashboard_opts *opts,
                                 dray_dashboard **out)
{
    dray_dashboard_opts defaults;
    if (!out)
        return dray_set_error(DRAY_EINVAL, "dray_dashboard_start: out is NULL");
    if (!opts) {
        dray_dashboard_opts_init(&defaults);
        opts = &defaults;
    }
    if (!rt && !opts->cluster_address)
        return dray_set_error(DRAY_EINVAL,
                              "dray_dashboard_start: no runtime and no cluster address to show");
    if (opts->port < 0 || opts->port > 65535)
        return dray_set_error(DRAY_EINVAL, "dray_dashboard_start: port %d is out of range",
                              opts->port);
    const char *bind = opts->bind ? opts->bind : "127.0.0.1";
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)opts->port);
    if (inet_pton(AF_INET, bind, &sa.sin_addr) != 1)
        return dray_set_error(DRAY_EINVAL, "dray_dashboard_start: bind address '%s' is not IPv4",
                              bind);
    bool loopback = (ntohl(sa.sin_addr.s_addr) >> 24) == 127;
    if (!loopback && (!opts->token || !*opts->token))
        return dray_set_error(DRAY_EINVAL,
                              "dray_dashboard_start: binding to %s (not loopback) needs a token "
                              "(the cluster secret)",
                              bind);
    dray_status st = DRAY_ENOMEM;
    dray_dashboard *d = calloc(1, sizeof(*d));
    if (!d)
        return dray_set_error(DRAY_ENOMEM, "out of memory");
    d->rt = rt;
    d->loopback = loopback;
    if ((st = copy_opt(opts->token && *opts->token ? opts->token : NULL, &d->token)) ||
        (st = copy_opt(opts->cluster_address, &d->cluster_address)) ||
        (st = copy_opt(opts->cluster_dir, &d->cluster_dir)))
        goto out_free;
    if (rt && (st = db_history_get(rt, &d->h)))
        goto out_free;
    /* A head: its own history, fed with the nodes' events (cluster.c). */
    if (!rt && (st = db_history_cluster(&d->h)))
        goto out_free;
    d->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
                                  MHD_USE_ERROR_LOG * 0,
                              0, NULL, NULL, on_request, d, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
                              MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
                              MHD_OPTION_THREAD_POOL_SIZE, 2U, MHD_OPTION_CONNECTION_TIMEOUT,
                              30U, MHD_OPTION_END);
    if (!d->mhd) {
        st = dray_set_error(DRAY_EBUSY, "dray_dashboard_start: cannot listen on %s:%d (in use?)",
                            bind, opts->port);
        goto out_free;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
    d->port = di ? di->port : opts->port;
    snprintf(d->url, sizeof d->url, "http://%s:%d/", strcmp(bind, "0.0.0.0") ? bind : "127.0.0.1",
             d->port);
    if (rt) {
        pthread_mutex_lock(&d->h->lock);
        d->next_in_history = d->h->servers;
        d->h->servers = d;
        pthread_mutex_unlock(&d->h->lock);
    }
    *out = d;
    return DRAY_OK;
out_free:
    if (!rt)
        db_history_free_cluster(d->h);
    free(d->token);
    free(d->cluster_address);
    free(d->cluster_dir);
    free(d);
    return st;
}

int dray_dashboard_port(const dray_dashboard *d)
{
    return d ? d->port : 0;
}

const char *dray_dashboard_url(const dray_dashboard *d)
{
    return d ? d->url : "";
}

void dray_dashboard_stop(dray_dashboard *d)
{
    if (!d)
        return;
    if (d->rt && d->h && !atomic_load(&d->stopped)) {
        /* Still running: unlink from the history so shutdown will not touch it. */
        pthread_mutex_lock(&d->h->lock);
        for (dray_dashboard **p = &d->h->servers; *p; p = &(*p)->next_in_history)
            if (*p == d) {
                *p = d->next_in_history;
                break;
            }
        pthread_mutex_unlock(&d->h->lock);
    }
    db_server_halt(d);
    if (!d->rt)
        db_history_free_cluster(d->h);
    free(d->token);
    free(d->cluster_address);
    free(d->cluster_dir);
    free(d);
}

dray_status dray_dashboard_from_env(dray_runtime *rt, dray_dashboard **out)
{
    if (!out)
        return dray_set_error(DRAY_EINVAL, "dray_dashboard_from_env: out is NULL");
    *out = NULL;
    const char *v = getenv("DRAY_DASHBOARD");
    if (!v || !*v)
        return DRAY_OK;
    char *end;
    long port = strtol(v, &end, 10);
    if (*end || port < 0 || port > 65535)
        return dray_set_error(DRAY_EINVAL, "DRAY_DASHBOARD='%s' is not a port number", v);
    dray_dashboard_opts o;
    dray_dashboard_opts_init(&o);
    o.port = (int)port;
    dray_status st = dray_dashboard_start(rt, &o, out);
    if (!st)
        fprintf(stderr, "dray dashboard: %s\n", dray_dashboard_url(*out));
    return st;
}

dray_status dray_dashboard_api(dray_dashboard *d, const char *path, int *status, char **body,
                               const char **content_type)
{
    if (!d || !path || !status || !body || !content_type)
        return dray_set_error(DRAY_EINVAL, "dray_dashboard_api: NULL argument");
    size_t len;
    db_api_answer(d, path, status, body, &len, content_type);
    return *body ? DRAY_OK : dray_set_error(DRAY_ENOMEM, "out of memory answering '%s'", path);
}
