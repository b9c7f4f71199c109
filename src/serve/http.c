/* The HTTP ingress on libmicrohttpd: epoll thread pool in turbo mode, a per-connection body buffer
 * reused across keep-alive requests, route prefixes to deployments, the /-/ system routes, size
 * limits and JSON errors. Inline deployments answer in the ingress thread (no hop); batching ones
 * suspend the connection until their batcher resumes it. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* Per connection; reset for each request on it. */
typedef struct conn_ctx {
    dray_serve *serve;
    struct MHD_Connection *conn;
    dray__serve_call *call; /* a reference, reused by keep-alive requests (its buffer holds the
                             * body); replaced when an abandoned call keeps it */
    size_t len;
    bool active;     /* a request is in progress (counted in serve->inflight) */
    bool too_big;
    bool pending;    /* off-thread (actor or batcher); the connection is suspended */
    bool answered;   /* the result is in `call` */
    double t0;       /* when the headers arrived */
} conn_ctx;

static const char JSON_TYPE[] = "application/json";

static struct MHD_Response *make_response(dray_serve_response *resp)
{
    struct MHD_Response *r;
    if (resp->json) {
        char *text = cJSON_PrintUnformatted(resp->json);
        if (!text)
            return NULL;
        r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!r)
            free(text);
    } else if (resp->body) {
        r = MHD_create_response_from_buffer(resp->len, resp->body, MHD_RESPMEM_MUST_FREE);
        if (r)
            resp->body = NULL;
    } else if (resp->body_static) {
        r = MHD_create_response_from_buffer(resp->len, (void *)resp->body_static,
                                            MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    if (r)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                resp->content_type ? resp->content_type : JSON_TYPE);
    return r;
}

/* Queues resp (then releases it) with its status (200 when 0). */
static enum MHD_Result send_response(struct MHD_Connection *conn, dray_serve_response *resp)
{
    struct MHD_Response *r = make_response(resp);
    unsigned status = resp->status > 0 ? (unsigned)resp->status : MHD_HTTP_OK;
    dray_serve_response_release(resp);
    if (!r)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int status, const char *msg)
{
    dray_serve_response resp;
    memset(&resp, 0, sizeof(resp));
    dray__serve_error_response(&resp, status, msg);
    return send_response(conn, &resp);
}

static enum MHD_Result send_json(struct MHD_Connection *conn, cJSON *j)
{
    dray_serve_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.json = j;
    return send_response(conn, &resp);
}

/* The deployment whose prefix is the longest one matching `url` (at a '/' boundary). Called with
 * routes_rw held. */
static dray_serve_handle *match_route(dray_serve *s, const char *url, const char **rest)
{
    dray_serve_handle *best = NULL;
    for (dray_serve_handle *h = s->deps; h; h = h->next) {
        if (!h->route || (best && h->route_len <= best->route_len))
            continue;
        size_t n = h->route_len;
        if (n == 1 || (strncmp(url, h->route, n) == 0 && (url[n] == '\0' || url[n] == '/' ||
                                                           url[n] == '?')))
            best = h;
    }
    if (best)
        *rest = best->route_len == 1 ? url : url + best->route_len;
    return best;
}

static enum MHD_Result system_route(dray_serve *s, struct MHD_Connection *conn, const char *url,
                                    const char *method)
{
    bool get = strcmp(method, "GET") == 0;
    if (strcmp(url, "/-/healthz") == 0 && get)
        return MHD_queue_response(conn, MHD_HTTP_OK, s->healthz);
    if (strcmp(url, "/-/routes") == 0 && get) {
        cJSON *j = cJSON_CreateObject();
        pthread_rwlock_rdlock(&s->routes_rw);
        for (dray_serve_handle *h = s->deps; h && j; h = h->next)
            if (h->route)
                cJSON_AddStringToObject(j, h->route, h->name);
        pthread_rwlock_unlock(&s->routes_rw);
        return j ? send_json(conn, j) : MHD_NO;
    }
    if (strcmp(url, "/-/status") == 0 && get) {
        cJSON *j;
        if (dray_serve_status_json(s, &j) != DRAY_OK)
            return send_error(conn, 500, dray_last_error());
        return send_json(conn, j);
    }
    if (strcmp(url, "/-/shutdown") == 0 && strcmp(method, "POST") == 0) {
        pthread_mutex_lock(&s->lock);
        s->shutdown_requested = true;
        pthread_cond_broadcast(&s->shutdown_cond);
        pthread_mutex_unlock(&s->lock);
        cJSON *j = cJSON_CreateObject();
        if (j)
            cJSON_AddStringToObject(j, "status", "shutting down");
        return j ? send_json(conn, j) : MHD_NO;
    }
    char msg[160];
    bool known = !strcmp(url, "/-/healthz") || !strcmp(url, "/-/routes") ||
                 !strcmp(url, "/-/status") || !strcmp(url, "/-/shutdown");
    snprintf(msg, sizeof(msg), "%s %s %.100s", known ? "method not allowed:" : "no system route",
             method, url);
    return send_error(conn, known ? 405 : 404, msg);
}

static void call_done(dray__serve_call *c)
{
    conn_ctx *ctx = c->done_arg;
    ctx->answered = true;
    MHD_resume_connection(ctx->conn);
}

/* After an answer: keeps the call for the next request, or leaves it to an executor still
 * running it (an abandoned call), which frees it. */
static void recycle_call(conn_ctx *ctx)
{
    dray__serve_call *c = ctx->call;
    dray_ref_release(c->ref);
    c->ref = NULL;
    if (atomic_load(&c->refs) > 1) {
        ctx->call = NULL;
        dray__serve_call_unref(c);
    } else {
        dray__serve_call_reset(c);
    }
}

static enum MHD_Result answer_call(conn_ctx *ctx, struct MHD_Connection *conn)
{
    dray__serve_call *c = ctx->call;
    enum MHD_Result ret;
    if (c->st == DRAY_OK)
        ret = send_response(conn, &c->resp);
    else
        ret = send_error(conn, dray_serve_http_status(c->st), c->err);
    recycle_call(ctx);
    return ret;
}

static enum MHD_Result dispatch(conn_ctx *ctx, struct MHD_Connection *conn, const char *url,
                                const char *method)
{
    dray_serve *s = ctx->serve;
    dray__serve_call *c = ctx->call;
    pthread_rwlock_rdlock(&s->routes_rw);
    const char *rest = url;
    dray_serve_handle *h = match_route(s, url, &rest);
    if (!h) {
        pthread_rwlock_unlock(&s->routes_rw);
        char msg[160];
        snprintf(msg, sizeof(msg), "no route for %.120s", url);
        return send_error(conn, 404, msg);
    }
    const char *path = rest[0] == '/' ? rest : "/";
    dray__serve_replica *r = dray__serve_route(h);
    if (!r) {
        pthread_rwlock_unlock(&s->routes_rw);
        return send_error(conn, 503, dray_last_error());
    }
    if (!r->actor && !r->has_batcher) {
        /* Inline replica: runs here, borrowing the connection's memory. */
        c->req.method = method;
        c->req.path = path;
        c->req.body = c->buf;
        c->req.len = ctx->len;
        c->req.conn_ = conn;
        c->st = dray__serve_run_inline(r, &c->req, &c->resp);
        pthread_rwlock_unlock(&s->routes_rw);
        if (c->st != DRAY_OK)
            snprintf(c->err, sizeof(c->err), "%s", dray_last_error());
        return answer_call(ctx, conn);
    }
    /* Off-thread: the call owns a copy of the request; the connection waits suspended. */
    c->replica = r;
    dray_status st = dray__serve_call_own(c, method, path, conn);
    if (st != DRAY_OK) {
        dray__serve_call_finish(c, st, NULL, dray_last_error(), 0, false);
        pthread_rwlock_unlock(&s->routes_rw);
        return answer_call(ctx, conn);
    }
    c->req.len = ctx->len;
    c->deadline = dray__serve_now() + dray__serve_timeout(h);
    c->done = call_done;
    c->done_arg = ctx;
    ctx->pending = true;
    MHD_suspend_connection(conn);
    if (r->has_batcher) {
        dray__serve_enqueue(r, c);
    } else {
        dray__serve_pending_add(s, c);
        dray_ref *ref;
        st = dray__serve_call_submit(r, c, &ref);
        if (st == DRAY_OK) {
            pthread_mutex_lock(&s->plock); /* the sweeper reads it */
            c->ref = ref;
            pthread_mutex_unlock(&s->plock);
        } else {
            dray__serve_call_finish(c, st, NULL, dray_last_error(), 0, false);
        }
    }
    pthread_rwlock_unlock(&s->routes_rw);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    dray_serve *s = cls;
    (void)version;
    conn_ctx *ctx = *req_cls;
    if (!ctx) {
        /* First call: headers only. Answering now would cost the keep-alive, except for errors. */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        ctx = ci ? ci->socket_context : NULL;
        if (!ctx)
            return MHD_NO;
        ctx->conn = conn;
        ctx->len = 0;
        if (!ctx->call && !(ctx->call = dray__serve_call_new()))
            return MHD_NO;
        ctx->too_big = ctx->pending = ctx->answered = false;
        ctx->active = true;
        ctx->t0 = dray__serve_now();
        atomic_fetch_add(&s->inflight, 1);
        *req_cls = ctx;
        /* A body far over the limit is refused at once (the connection closes); one moderately
         * over is read and dropped so that the client gets its 413 instead of a reset. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) / 64 > s->opts.max_body_bytes) {
            char msg[128];
            snprintf(msg, sizeof(msg), "request body of %.30s bytes exceeds the limit of %zu", cl,
                     s->opts.max_body_bytes);
            return send_error(conn, 413, msg);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ctx->too_big || ctx->len + n > s->opts.max_body_bytes) {
            ctx->too_big = true;
            return MHD_YES;
        }
        dray__serve_call *c = ctx->call;
        if (ctx->len + n > c->cap) {
            size_t cap = c->cap ? c->cap : 1024;
            while (cap < ctx->len + n)
                cap *= 2;
            char *b = realloc(c->buf, cap);
            if (!b)
                return MHD_NO;
            c->buf = b;
            c->cap = cap;
        }
        memcpy(c->buf + ctx->len, upload_data, n);
        ctx->len += n;
        return MHD_YES;
    }
    if (ctx->pending) {
        if (!ctx->answered)
            return MHD_YES;
        ctx->pending = false;
        return answer_call(ctx, conn);
    }
    if (ctx->too_big) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request body exceeds the limit of %zu bytes",
                 s->opts.max_body_bytes);
        return send_error(conn, 413, msg);
    }
    if (url[0] == '/' && url[1] == '-' && url[2] == '/')
        return system_route(s, conn, url, method);
    if (atomic_load(&s->stopping))
        return send_error(conn, 503, "serve is shutting down");
    return dispatch(ctx, conn, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    dray_serve *s = cls;
    conn_ctx *ctx = *req_cls;
    (void)conn;
    (void)toe;
    if (!ctx || !ctx->active)
        return;
    ctx->active = false;
    *req_cls = NULL;
    /* An answer whose client left is never sent (MHD completes the request without calling the
     * handler again): drop it here. A call still pending cannot be here: its connection stays
     * suspended until the call is finished (answered, timed out or expired at shutdown). */
    if (ctx->pending && ctx->answered) {
        ctx->pending = false;
        recycle_call(ctx);
    }
    /* Keep small buffers for the next keep-alive request; give big ones back. */
    if (ctx->call && ctx->call->cap > 65536) {
        free(ctx->call->buf);
        ctx->call->buf = NULL;
        ctx->call->cap = 0;
    }
    atomic_fetch_add_explicit(&s->http_ns, (uint64_t)((dray__serve_now() - ctx->t0) * 1e9),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->http_requests, 1, memory_order_relaxed);
    atomic_fetch_sub(&s->inflight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    dray_serve *s = cls;
    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_ctx *ctx = calloc(1, sizeof(*ctx));
        if (ctx)
            ctx->serve = s;
        *socket_context = ctx;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_ctx *ctx = *socket_context;
        if (ctx) {
            dray__serve_call_unref(ctx->call);
            free(ctx);
        }
        *socket_context = NULL;
    }
}

dray_status dray__serve_http_start(dray_serve *s)
{
    static const char healthz[] = "success";
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->opts.port);
    if (inet_pton(AF_INET, s->host, &addr.sin_addr) != 1)
        return dray_set_error(DRAY_EINVAL, "serve: host '%s' is not an IPv4 address", s->host);
    s->healthz = MHD_create_response_from_buffer(sizeof(healthz) - 1, (void *)healthz,
                                                 MHD_RESPMEM_PERSISTENT);
    if (!s->healthz)
        return dray_set_error(DRAY_ENOMEM, "serve: out of memory");
    MHD_add_response_header(s->healthz, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->opts.threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->opts.request_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->opts.max_connections,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        /* MHD clears a connection's pool for every request: keep it small (headers + read
         * buffer; bodies go to our own buffer). The default 32 KiB costs a 32 KiB memset each. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)s->opts.connection_memory,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_END);
    if (!d) {
        MHD_destroy_response(s->healthz);
        s->healthz = NULL;
        return dray_set_error(DRAY_ENET, "serve: cannot listen on %s:%d (in use or not permitted)",
                              s->host, s->opts.port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->opts.port;
    s->mhd = d;
    s->listen_fd = -1;
    return DRAY_OK;
}

void dray__serve_http_quiesce(dray_serve *s)
{
    if (!s->mhd)
        return;
    MHD_socket fd = MHD_quiesce_daemon(s->mhd);
    if (fd != MHD_INVALID_SOCKET)
        s->listen_fd = fd;
}

void dray__serve_http_stop(dray_serve *s)
{
    if (!s->mhd)
        return;
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    MHD_destroy_response(s->healthz);
}
