/* serve's HTTP/1.1 ingress: its own epoll server (one edge-triggered event loop per ingress thread,
 * sharing one listening socket), answering in the loop turn that read the request: route prefixes
 * to deployments, the /-/ system routes, size limits, keep-alive, pipelining and JSON errors.
 * Inline replicas run in the loop thread; actor and batching calls park the connection until their
 * answer comes back through the loop's wake-up queue. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

typedef struct iloop iloop;
typedef struct ithread ithread;

/* One client connection; owned by its loop (freed there, or by the answer of a call still pending
 * when the client left). */
typedef struct iconn {
    iloop *loop;
    int fd;
    char *in;                 /* received bytes; in[in_off..in_len) are not consumed yet */
    size_t in_len, in_off, in_cap;
    char *out;                /* answers not written yet: out[out_off..out_len) */
    size_t out_len, out_off, out_cap;
    dray__serve_call *call;   /* a reference, reused by keep-alive requests */
    dray__serve_http_head head;
    bool have_head;           /* head parsed; waiting for (or skipping) its body */
    bool too_big;             /* the body is over the limit: skipped, then 413 */
    bool sent_continue;
    bool head_only;           /* a HEAD request: answers carry no body */
    bool keep_alive;          /* of the current request */
    bool active;              /* a request is in progress (counted in serve->inflight) */
    bool pending;             /* its call runs off-thread; parsing waits */
    bool closing;             /* answer the last request, then close */
    bool draining;            /* written and shut down for writing: discard input until EOF */
    bool gone;                /* the client left while a call was pending: free on its answer */
    uint64_t skip;            /* body bytes to discard (too_big) */
    double t0;                /* when the current request's head arrived */
    double last_io;
    struct iconn *next, *prev;   /* the loop's connections */
    struct iconn *done_next;     /* the loop's answered calls */
} iconn;

/* The thread running a loop. A call that outlives its deadline abandons it: the supervisor answers
 * that request, starts a fresh thread on the loop, and this one exits when its call returns. */
struct ithread {
    iloop *l;
    pthread_t thread;
    pthread_mutex_t mu;       /* guards call (the supervisor reads it) */
    dray__serve_call *call;   /* running in this thread, with its deadline */
    char *url;                /* the request's decoded target while dispatching (freed on exit) */
    bool rescan;              /* took over: look at every connection once (lost edges) */
};

/* One event loop: the epoll set, its connections and its answer queue, served by one thread at a
 * time (`cur`). */
struct iloop {
    dray_serve *s;
    struct dray__serve_ingress *in;
    int ep, wake;             /* epoll instance; eventfd for answers and stop */
    _Atomic(ithread *) cur;
    bool started;
    atomic_bool stop;
    pthread_mutex_t dlock;    /* guards done */
    iconn *done;
    iconn *conns;
    iconn *grave;             /* closed during this turn: freed after it (events may name them) */
    double next_sweep;
};

typedef struct dray__serve_ingress {
    int lfd;
    int n;
    iloop *loops;
    atomic_int takeovers;     /* loops handed to a fresh thread after a call timed out */
    atomic_int n_conns;
    atomic_bool quiesced;
} dray__serve_ingress;

static const char JSON_TYPE[] = "application/json";

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

static bool out_reserve(iconn *k, size_t n)
{
    if (k->out_len + n <= k->out_cap)
        return true;
    if (k->out_off > 0 && k->out_off == k->out_len) {
        k->out_off = k->out_len = 0;
        if (n <= k->out_cap)
            return true;
    }
    size_t cap = k->out_cap ? k->out_cap : 1024;
    while (cap < k->out_len + n)
        cap *= 2;
    char *o = realloc(k->out, cap);
    if (!o)
        return false;
    k->out = o;
    k->out_cap = cap;
    return true;
}

/* Appends one answer (false: out of memory, the connection is closed). */
static bool append(iconn *k, int status, const char *ctype, const char *body, size_t len)
{
    char head[256];
    const char *conn_hdr = !k->keep_alive ? "Connection: close\r\n"
                           : k->head.minor == 0 ? "Connection: keep-alive\r\n"
                                                : "";
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %.64s\r\nContent-Length: %zu\r\n%s\r\n",
                     status, reason(status), ctype ? ctype : JSON_TYPE, len, conn_hdr);
    if (k->head_only)
        len = 0;
    if (!out_reserve(k, (size_t)n + len))
        return false;
    memcpy(k->out + k->out_len, head, (size_t)n);
    k->out_len += (size_t)n;
    if (len)
        memcpy(k->out + k->out_len, body, len);
    k->out_len += len;
    return true;
}

/* The request is answered: counts it, and keeps the call for the next one (or leaves it to an
 * executor still running it, which frees it). */
static void finish_request(iconn *k)
{
    dray_serve *s = k->loop->s;
    dray__serve_call *c = k->call;
    if (c) {
        dray_ref_release(c->ref);
        c->ref = NULL;
        if (atomic_load(&c->refs) > 1) {
            k->call = NULL;
            dray__serve_call_unref(c);
        } else {
            dray__serve_call_reset(c);
            if (c->cap > 65536) { /* keep small buffers for the next request, give big ones back */
                free(c->buf);
                c->buf = NULL;
                c->cap = 0;
            }
        }
    }
    if (!k->active)
        return;
    k->active = false;
    if (!k->keep_alive)
        k->closing = true;
    atomic_fetch_add_explicit(&s->http_ns, (uint64_t)((dray__serve_now() - k->t0) * 1e9),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->http_requests, 1, memory_order_relaxed);
    atomic_fetch_sub(&s->inflight, 1);
}

/* Answers with resp (then releases it). */
static void send_response(iconn *k, dray_serve_response *resp)
{
    int status = resp->status > 0 ? resp->status : 200;
    bool ok;
    if (resp->json) {
        char *text = cJSON_PrintUnformatted(resp->json);
        ok = text && append(k, status, resp->content_type, text, strlen(text));
        free(text);
    } else if (resp->body) {
        ok = append(k, status, resp->content_type, resp->body, resp->len);
    } else if (resp->body_static) {
        ok = append(k, status, resp->content_type, resp->body_static, resp->len);
    } else {
        ok = append(k, status, resp->content_type, NULL, 0);
    }
    dray_serve_response_release(resp);
    if (!ok)
        k->closing = true; /* nothing sensible to say: close after what is written */
}

static void send_error(iconn *k, int status, const char *msg)
{
    dray_serve_response resp;
    memset(&resp, 0, sizeof(resp));
    dray__serve_error_response(&resp, status, msg);
    send_response(k, &resp);
}

static void send_json(iconn *k, cJSON *j)
{
    if (!j) {
        send_error(k, 500, "serve: out of memory");
        return;
    }
    dray_serve_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.json = j;
    send_response(k, &resp);
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
        if (n == 1 || (strncmp(url, h->route, n) == 0 && (url[n] == '\0' || url[n] == '/')))
            best = h;
    }
    if (best)
        *rest = best->route_len == 1 ? url : url + best->route_len;
    return best;
}

static void system_route(iconn *k, const char *url, const char *method)
{
    dray_serve *s = k->loop->s;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(url, "/-/healthz") == 0 && get) {
        if (!append(k, 200, "text/plain", "success", 7))
            k->closing = true;
        return;
    }
    if (strcmp(url, "/-/routes") == 0 && get) {
        cJSON *j = cJSON_CreateObject();
        pthread_rwlock_rdlock(&s->routes_rw);
        for (dray_serve_handle *h = s->deps; h && j; h = h->next)
            if (h->route)
                cJSON_AddStringToObject(j, h->route, h->name);
        pthread_rwlock_unlock(&s->routes_rw);
        send_json(k, j);
        return;
    }
    if (strcmp(url, "/-/status") == 0 && get) {
        cJSON *j;
        if (dray_serve_status_json(s, &j) != DRAY_OK)
            send_error(k, 500, dray_last_error());
        else
            send_json(k, j);
        return;
    }
    if (strcmp(url, "/-/shutdown") == 0 && strcmp(method, "POST") == 0) {
        pthread_mutex_lock(&s->lock);
        s->shutdown_requested = true;
        pthread_cond_broadcast(&s->shutdown_cond);
        pthread_mutex_unlock(&s->lock);
        cJSON *j = cJSON_CreateObject();
        if (j)
            cJSON_AddStringToObject(j, "status", "shutting down");
        send_json(k, j);
        return;
    }
    char msg[160];
    bool known = !strcmp(url, "/-/healthz") || !strcmp(url, "/-/routes") ||
                 !strcmp(url, "/-/status") || !strcmp(url, "/-/shutdown");
    snprintf(msg, sizeof(msg), "%s %s %.100s", known ? "method not allowed:" : "no system route",
             method, url);
    send_error(k, known ? 405 : 404, msg);
}

static void answer_call(iconn *k)
{
    dray__serve_call *c = k->call;
    if (c->st == DRAY_OK)
        send_response(k, &c->resp);
    else
        send_error(k, dray_serve_http_status(c->st), c->err);
    finish_request(k);
}

/* Runs in any thread once an off-thread call has its result: hands the connection to its loop. */
static void call_done(dray__serve_call *c)
{
    iconn *k = c->done_arg;
    iloop *l = k->loop;
    pthread_mutex_lock(&l->dlock);
    bool first = l->done == NULL;
    k->done_next = l->done;
    l->done = k;
    pthread_mutex_unlock(&l->dlock);
    if (first) {
        uint64_t one = 1;
        ssize_t w = write(l->wake, &one, sizeof(one));
        (void)w; /* a full counter already wakes the loop */
    }
}

/* Leaves the thread of a loop the supervisor handed to another thread (a call here outlived its
 * deadline and was answered by the supervisor; the call has returned now). */
static _Noreturn void thread_abandoned(ithread *th)
{
    free(th->url);
    pthread_mutex_destroy(&th->mu);
    free(th);
    pthread_detach(pthread_self());
    pthread_exit(NULL);
}

/* Routes the request to a deployment: answered here (inline replicas, errors) or parked. */
static void dispatch(iconn *k, const char *url, const char *method, const char *body, size_t len)
{
    dray_serve *s = k->loop->s;
    dray__serve_call *c = k->call;
    pthread_rwlock_rdlock(&s->routes_rw);
    const char *rest = url;
    dray_serve_handle *h = match_route(s, url, &rest);
    if (!h) {
        pthread_rwlock_unlock(&s->routes_rw);
        char msg[160];
        snprintf(msg, sizeof(msg), "no route for %.120s", url);
        send_error(k, 404, msg);
        return;
    }
    const char *path = rest[0] == '/' ? rest : "/";
    dray__serve_replica *r = dray__serve_route(h);
    if (!r) {
        pthread_rwlock_unlock(&s->routes_rw);
        send_error(k, 503, dray_last_error());
        return;
    }
    dray_status st = dray__serve_call_own(c, method, path);
    if (st == DRAY_OK && !r->actor && !r->has_batcher) {
        /* Inline replica: runs here, reading the body in place. */
        c->req.body = body;
        c->req.len = len;
        c->st = dray__serve_run_inline(r, &c->req, &c->resp);
        pthread_rwlock_unlock(&s->routes_rw);
        if (c->st != DRAY_OK)
            snprintf(c->err, sizeof(c->err), "%s", dray_last_error());
        answer_call(k);
        return;
    }
    /* Off-thread, or in this thread on the actor's state: the call owns a copy of the request. */
    c->replica = r;
    if (st == DRAY_OK && len > c->cap) {
        char *b = realloc(c->buf, len);
        if (!b) {
            st = dray_set_error(DRAY_ENOMEM, "serve: out of memory for a %zu-byte body", len);
        } else {
            c->buf = b;
            c->cap = len;
        }
    }
    if (st != DRAY_OK) {
        dray__serve_call_finish(c, st, NULL, dray_last_error(), 0, false);
        pthread_rwlock_unlock(&s->routes_rw);
        answer_call(k);
        return;
    }
    if (len)
        memcpy(c->buf, body, len);
    c->req.body = c->buf;
    c->req.len = len;
    c->deadline = dray__serve_now() + dray__serve_timeout(h);
    c->done_arg = k;
    k->pending = true;
    if (r->actor && !r->remote && !r->has_batcher && !atomic_load_explicit(&h->actor_calls, memory_order_relaxed)) {
        /* A local actor replica: its call runs here when the replica is free (no hop). The
         * supervisor watches it; past its deadline it answers 504 and hands this loop to a
         * fresh thread, and this one leaves when the call returns. */
        pthread_rwlock_unlock(&s->routes_rw); /* the slot keeps r alive */
        ithread *th = atomic_load_explicit(&k->loop->cur, memory_order_relaxed);
        void *a = dray__serve_replica_enter(r);
        if (a) {
            atomic_fetch_add(&c->refs, 1); /* the executor's reference, dropped by the run */
            pthread_mutex_lock(&th->mu);
            th->call = c;
            pthread_mutex_unlock(&th->mu);
            bool won = dray__serve_replica_run_here(a, c);
            pthread_mutex_lock(&th->mu);
            th->call = NULL;
            pthread_mutex_unlock(&th->mu);
            if (!won)
                thread_abandoned(th); /* does not return */
            k->pending = false;
            answer_call(k);
            return;
        }
        pthread_rwlock_rdlock(&s->routes_rw); /* busy: through the actor */
    }
    c->done = call_done;
    if (r->has_batcher) {
        dray__serve_enqueue(r, c);
    } else {
        c->remote = r->remote; /* read by the sweeper once listed */
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
}

/* A complete request (head and body) at buf (inside k->in, already consumed): answers it or
 * parks it. */
static void handle_request(iconn *k, const char *buf)
{
    dray_serve *s = k->loop->s;
    if (k->too_big) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request body exceeds the limit of %zu bytes",
                 s->opts.max_body_bytes);
        send_error(k, 413, msg);
        finish_request(k);
        return;
    }
    char method[16];
    memcpy(method, buf + k->head.method, k->head.method_len);
    method[k->head.method_len] = '\0';
    char *url = NULL, err[128];
    int code = dray__serve_http_target(buf, &k->head, k->call, &url, err, sizeof(err));
    ithread *th = atomic_load_explicit(&k->loop->cur, memory_order_relaxed);
    th->url = url; /* an abandoned thread frees it on its way out */
    if (code) {
        send_error(k, code, err);
    } else if (url[0] == '/' && url[1] == '-' && url[2] == '/') {
        system_route(k, url, method);
    } else if (atomic_load(&s->stopping)) {
        send_error(k, 503, "serve is shutting down");
    } else {
        dispatch(k, url, method, buf + k->head.head_len, (size_t)k->head.content_length);
    }
    th->url = NULL;
    free(url);
    if (!k->pending)
        finish_request(k);
}

/* Frees k at the end of the loop turn (a later event of the same turn may still name it). */
static void conn_free(iconn *k)
{
    dray__serve_call_unref(k->call);
    k->call = NULL;
    free(k->in);
    free(k->out);
    k->in = k->out = NULL;
    k->next = k->loop->grave;
    k->loop->grave = k;
}

static void loop_bury(iloop *l)
{
    while (l->grave) {
        iconn *k = l->grave;
        l->grave = k->next;
        free(k);
    }
}

/* Closes the socket; the connection itself waits for a pending call's answer. */
static void conn_close(iconn *k)
{
    iloop *l = k->loop;
    if (k->fd >= 0) {
        close(k->fd); /* also leaves the epoll set */
        k->fd = -1;
        atomic_fetch_sub(&l->in->n_conns, 1);
    }
    if (k->prev)
        k->prev->next = k->next;
    else if (l->conns == k)
        l->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->next = k->prev = NULL;
    if (k->pending) {
        k->gone = true;
        return;
    }
    finish_request(k); /* a request cut short still counts as answered (inflight) */
    conn_free(k);
}

/* Writes what is queued. Returns false when the connection was closed. */
static bool conn_flush(iconn *k)
{
    while (k->out_off < k->out_len) {
        ssize_t w = send(k->fd, k->out + k->out_off, k->out_len - k->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true; /* EPOLLOUT follows */
            conn_close(k);
            return false;
        }
        k->out_off += (size_t)w;
        k->last_io = dray__serve_now();
    }
    k->out_off = k->out_len = 0;
    if (k->closing && !k->active && !k->draining) {
        /* Let the client read the answer: half-close, then discard its input until it closes
         * (closing with unread input would reset the connection and lose the answer). */
        shutdown(k->fd, SHUT_WR);
        k->draining = true;
        k->last_io = dray__serve_now();
    }
    return true;
}

/* Parses and answers what is buffered, in order, until a request is incomplete or parked. */
static void conn_process(iconn *k)
{
    dray_serve *s = k->loop->s;
    while (!k->pending && !k->closing) {
        size_t avail = k->in_len - k->in_off;
        if (!k->have_head) {
            if (avail == 0)
                break;
            int rc = dray__serve_http_parse(k->in + k->in_off, avail, s->opts.connection_memory,
                                            &k->head);
            if (rc == 0)
                break;
            k->t0 = dray__serve_now();
            k->active = true;
            atomic_fetch_add(&s->inflight, 1);
            if (!k->call && !(k->call = dray__serve_call_new())) {
                k->closing = true;
                finish_request(k);
                break;
            }
            if (rc != 1) {
                k->keep_alive = false;
                k->closing = true;
                k->head_only = false;
                k->head.minor = 1;
                send_error(k, rc, k->head.error);
                finish_request(k);
                break;
            }
            k->have_head = true;
            k->head_only = k->head.method_len == 4 &&
                           memcmp(k->in + k->in_off + k->head.method, "HEAD", 4) == 0;
            k->too_big = false;
            k->sent_continue = false;
            k->keep_alive = k->head.keep_alive;
            if (k->head.chunked) {
                k->keep_alive = false;
                k->closing = true;
                send_error(k, 411, "chunked request bodies are not supported: send a Content-Length");
                finish_request(k);
                break;
            }
            uint64_t cl = k->head.content_length;
            if (cl > s->opts.max_body_bytes) {
                char msg[128];
                snprintf(msg, sizeof(msg), "request body of %llu bytes exceeds the limit of %zu",
                         (unsigned long long)cl, s->opts.max_body_bytes);
                if (cl / 64 > s->opts.max_body_bytes) {
                    /* Far over: refused at once, the connection closes. */
                    k->keep_alive = false;
                    k->closing = true;
                    send_error(k, 413, msg);
                    finish_request(k);
                    break;
                }
                /* Moderately over: read and dropped, so the client gets its 413. */
                k->too_big = true;
                k->skip = cl;
                k->in_off += k->head.head_len;
                avail -= k->head.head_len;
            }
        }
        if (k->too_big) {
            size_t d = avail < k->skip ? avail : (size_t)k->skip;
            k->skip -= d;
            k->in_off += d;
            if (k->skip > 0)
                break;
            k->have_head = false;
            handle_request(k, NULL); /* the 413 (reads nothing from the buffer) */
            continue;
        }
        size_t need = k->head.head_len + (size_t)k->head.content_length;
        if (avail < need) {
            if (k->head.expect_continue && !k->sent_continue) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (out_reserve(k, sizeof(cont) - 1)) {
                    memcpy(k->out + k->out_len, cont, sizeof(cont) - 1);
                    k->out_len += sizeof(cont) - 1;
                }
                k->sent_continue = true;
            }
            break;
        }
        k->have_head = false;
        /* Consumed before it runs: a thread abandoned inside this call never comes back to it. */
        const char *buf = k->in + k->in_off;
        k->in_off += need;
        handle_request(k, buf);
    }
    if (k->in_off == k->in_len) {
        k->in_off = k->in_len = 0;
        if (k->in_cap > 65536 && !k->pending) { /* a big body went through: give it back */
            char *b = realloc(k->in, 4096);
            if (b) {
                k->in = b;
                k->in_cap = 4096;
            }
        }
    }
}

/* Reads until the socket is empty (edge-triggered), answering as it goes. A short read ends it
 * unless `to_eagain` (the peer's end of input may be queued behind data: its edge came with the
 * same event). */
static void conn_read(iconn *k, bool to_eagain)
{
    dray_serve *s = k->loop->s;
    for (;;) {
        if (k->draining) {
            char junk[4096];
            ssize_t r = recv(k->fd, junk, sizeof(junk), 0);
            if (r > 0)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            if (r < 0 && errno == EINTR)
                continue;
            conn_close(k);
            return;
        }
        /* Room for the next read; a parked or closing connection buffers at most one
         * request's worth (the rest waits in the socket). */
        size_t limit = s->opts.connection_memory + s->opts.max_body_bytes + 4096;
        if (k->in_off > 0 && (k->in_len == k->in_cap || k->in_off > k->in_cap / 2)) {
            memmove(k->in, k->in + k->in_off, k->in_len - k->in_off);
            k->in_len -= k->in_off;
            k->in_off = 0;
        }
        if (k->in_len == k->in_cap) {
            if (k->in_cap >= limit) {
                if (k->pending || k->closing)
                    return; /* read again once answered */
                /* Unreachable for a well-formed request (the parser bounds heads, bodies are
                 * bounded by max_body_bytes); defensively close. */
                conn_close(k);
                return;
            }
            size_t cap = k->in_cap * 2;
            if (cap > limit)
                cap = limit;
            char *b = realloc(k->in, cap);
            if (!b) {
                conn_close(k);
                return;
            }
            k->in = b;
            k->in_cap = cap;
        }
        ssize_t r = recv(k->fd, k->in + k->in_len, k->in_cap - k->in_len, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                conn_close(k);
                return;
            }
            break;
        }
        if (r == 0) {
            /* The client is done sending. A call still running is answered first (a client
             * that half-closed still reads); the next read sees the end again and closes. */
            if (!k->pending)
                conn_close(k);
            return;
        }
        k->in_len += (size_t)r;
        k->last_io = dray__serve_now();
        size_t room = k->in_cap - (k->in_len - (size_t)r);
        conn_process(k);
        if (k->out_len > k->out_off && !conn_flush(k))
            return;
        if ((size_t)r < room && !to_eagain)
            break; /* the socket is empty (a short read) */
    }
}

static void loop_accept(iloop *l)
{
    dray_serve *s = l->s;
    int fd = accept4(l->in->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (atomic_load(&l->in->quiesced) ||
        atomic_fetch_add(&l->in->n_conns, 1) >= s->opts.max_connections) {
        if (!atomic_load(&l->in->quiesced))
            atomic_fetch_sub(&l->in->n_conns, 1);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    iconn *k = calloc(1, sizeof(*k));
    char *in = malloc(4096);
    if (!k || !in) {
        free(k);
        free(in);
        close(fd);
        atomic_fetch_sub(&l->in->n_conns, 1);
        return;
    }
    k->loop = l;
    k->fd = fd;
    k->in = in;
    k->in_cap = 4096;
    k->last_io = dray__serve_now();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = k};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        free(in);
        free(k);
        atomic_fetch_sub(&l->in->n_conns, 1);
        return;
    }
    k->next = l->conns;
    if (l->conns)
        l->conns->prev = k;
    l->conns = k;
    conn_read(k, true); /* the request may be there already */
}

/* Answers of off-thread calls: sends them and goes on with the connection's pipeline. */
static void loop_answers(iloop *l)
{
    uint64_t v;
    ssize_t r = read(l->wake, &v, sizeof(v));
    (void)r;
    pthread_mutex_lock(&l->dlock);
    iconn *k = l->done;
    l->done = NULL;
    pthread_mutex_unlock(&l->dlock);
    while (k) {
        iconn *next = k->done_next;
        k->pending = false;
        if (k->gone) {
            finish_request(k);
            conn_free(k);
        } else {
            answer_call(k);
            conn_process(k);
            if (conn_flush(k))
                conn_read(k, true); /* input left in the socket while parked */
        }
        k = next;
    }
}

/* Closes connections idle past the request timeout (slow or silent clients; parked ones wait for
 * their call, which has its own timeout) and drained ones whose client never closed. */
static void loop_sweep(iloop *l, double now)
{
    double idle = l->s->opts.request_timeout_s;
    for (iconn *k = l->conns, *next; k; k = next) {
        next = k->next;
        if (k->pending)
            continue;
        if (now - k->last_io > (k->draining ? (idle < 2 ? idle : 2) : idle))
            conn_close(k);
    }
}

static void *loop_main(void *arg)
{
    ithread *th = arg;
    iloop *l = th->l;
    struct epoll_event evs[64];
    if (th->rescan) {
        /* Taken over from a thread stuck in a call: the events it had collected are lost
         * (edge-triggered), so every connection is looked at once. */
        for (iconn *k = l->conns, *next; k; k = next) {
            next = k->next;
            if (k->fd < 0 || k->pending)
                continue;
            if (k->out_len > k->out_off && !conn_flush(k))
                continue;
            conn_read(k, true);
        }
        loop_bury(l);
    }
    while (!atomic_load(&l->stop)) {
        int n = epoll_wait(l->ep, evs, 64, 100);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == NULL) {
                loop_accept(l);
            } else if (p == l) {
                loop_answers(l);
            } else {
                iconn *k = p;
                if (k->fd < 0)
                    continue;
                if ((evs[i].events & EPOLLOUT) && k->out_len > k->out_off && !conn_flush(k))
                    continue;
                if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    conn_read(k, evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
            }
        }
        double now = dray__serve_now();
        if (now >= l->next_sweep) {
            loop_sweep(l, now);
            l->next_sweep = now + 0.1;
        }
        loop_bury(l);
    }
    return NULL;
}

/* Starts a thread on loop l (rescan: taking over from an abandoned one). */
static dray_status loop_thread_start(iloop *l, bool rescan)
{
    ithread *th = calloc(1, sizeof(*th));
    if (!th)
        return dray_set_error(DRAY_ENOMEM, "serve: out of memory");
    th->l = l;
    th->rescan = rescan;
    pthread_mutex_init(&th->mu, NULL);
    atomic_store(&l->cur, th);
    if (pthread_create(&th->thread, NULL, loop_main, th) != 0) {
        atomic_store(&l->cur, NULL);
        pthread_mutex_destroy(&th->mu);
        free(th);
        return dray_set_error(DRAY_EIO, "serve: cannot start an ingress thread");
    }
    return DRAY_OK;
}

void dray__serve_http_supervise(dray_serve *s)
{
    dray__serve_ingress *in = s->ingress;
    if (!in)
        return;
    bool expire = atomic_load(&s->expire_all);
    double now = dray__serve_now();
    for (int i = 0; i < in->n; i++) {
        iloop *l = &in->loops[i];
        ithread *th = atomic_load(&l->cur);
        if (!th || atomic_load(&l->stop))
            continue;
        pthread_mutex_lock(&th->mu);
        dray__serve_call *c = th->call;
        bool won = false;
        if (c && (expire || (c->deadline > 0 && now > c->deadline)))
            won = dray__serve_call_finish(c, expire ? DRAY_ESHUTDOWN : DRAY_ETIMEDOUT, NULL, NULL,
                                          0, false);
        pthread_mutex_unlock(&th->mu);
        if (!won)
            continue;
        /* From here on the stuck thread touches only its call and its own ithread. The loop goes
         * on in a fresh thread, which sends the answer queued next. */
        atomic_fetch_add(&in->takeovers, 1);
        if (loop_thread_start(l, true) != DRAY_OK) {
            /* No thread for this loop any more: its connections wait until shutdown. */
            fprintf(stderr, "serve: %s: an ingress loop lost its thread\n", dray_last_error());
            continue;
        }
        call_done(c);
    }
}

static void ingress_free(dray__serve_ingress *in)
{
    for (int i = 0; i < in->n; i++) {
        iloop *l = &in->loops[i];
        if (l->started) {
            atomic_store(&l->stop, true);
            uint64_t one = 1;
            ssize_t w = write(l->wake, &one, sizeof(one));
            (void)w;
            ithread *th = atomic_load(&l->cur);
            if (th) {
                pthread_join(th->thread, NULL);
                pthread_mutex_destroy(&th->mu);
                free(th);
            }
        }
        /* Answers that arrived last, then every connection. A connection whose call is still
         * pending here stays allocated (its call would write to it). */
        iconn *k = l->done;
        while (k) {
            iconn *next = k->done_next;
            k->pending = false;
            if (k->gone) {
                finish_request(k);
                conn_free(k);
            }
            k = next;
        }
        while (l->conns)
            conn_close(l->conns);
        loop_bury(l);
        if (l->ep >= 0)
            close(l->ep);
        if (l->wake >= 0)
            close(l->wake);
        pthread_mutex_destroy(&l->dlock);
    }
    if (in->lfd >= 0)
        close(in->lfd);
    free(in->loops);
    free(in);
}

dray_status dray__serve_http_start(dray_serve *s)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->opts.port);
    if (inet_pton(AF_INET, s->host, &addr.sin_addr) != 1)
        return dray_set_error(DRAY_EINVAL, "serve: host '%s' is not an IPv4 address", s->host);
    dray__serve_ingress *in = calloc(1, sizeof(*in));
    if (!in)
        return dray_set_error(DRAY_ENOMEM, "serve: out of memory");
    in->n = s->opts.threads;
    in->loops = calloc((size_t)in->n, sizeof(iloop));
    in->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    dray_status st = DRAY_OK;
    if (!in->loops || in->lfd < 0) {
        st = dray_set_error(DRAY_ENOMEM, "serve: out of memory or sockets");
        goto cleanup;
    }
    for (int i = 0; i < in->n; i++) {
        iloop *l = &in->loops[i];
        l->s = s;
        l->in = in;
        l->ep = l->wake = -1;
        pthread_mutex_init(&l->dlock, NULL);
    }
    int one = 1;
    setsockopt(in->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(in->lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(in->lfd, 1024) != 0) {
        st = dray_set_error(DRAY_ENET, "serve: cannot listen on %s:%d (%s)", s->host, s->opts.port,
                            strerror(errno));
        goto cleanup;
    }
    socklen_t alen = sizeof(addr);
    getsockname(in->lfd, (struct sockaddr *)&addr, &alen);
    for (int i = 0; i < in->n; i++) {
        iloop *l = &in->loops[i];
        l->ep = epoll_create1(EPOLL_CLOEXEC);
        l->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (l->ep < 0 || l->wake < 0) {
            st = dray_set_error(DRAY_EIO, "serve: epoll/eventfd: %s", strerror(errno));
            goto cleanup;
        }
        /* Each loop accepts from the shared socket; EPOLLEXCLUSIVE wakes one loop per
         * connection instead of all. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL};
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = l};
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, in->lfd, &ev) != 0 ||
            epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake, &wev) != 0) {
            st = dray_set_error(DRAY_EIO, "serve: epoll_ctl: %s", strerror(errno));
            goto cleanup;
        }
        if ((st = loop_thread_start(l, false)) != DRAY_OK)
            goto cleanup;
        l->started = true;
    }
    /* Published last: the supervisor reads it (under plock) once every loop runs. */
    pthread_mutex_lock(&s->plock);
    s->port = ntohs(addr.sin_port);
    s->ingress = in;
    pthread_mutex_unlock(&s->plock);
    return DRAY_OK;
cleanup:
    if (in->loops)
        ingress_free(in);
    else
        free(in);
    return st;
}

void dray__serve_http_quiesce(dray_serve *s)
{
    dray__serve_ingress *in = s->ingress;
    if (!in)
        return;
    atomic_store(&in->quiesced, true);
    for (int i = 0; i < in->n; i++)
        epoll_ctl(in->loops[i].ep, EPOLL_CTL_DEL, in->lfd, NULL);
}

void dray__serve_http_stop(dray_serve *s)
{
    pthread_mutex_lock(&s->plock); /* the supervisor reads it */
    dray__serve_ingress *in = s->ingress;
    s->ingress = NULL;
    pthread_mutex_unlock(&s->plock);
    if (in)
        ingress_free(in);
}
