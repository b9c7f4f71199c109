/* The anchor for bench/serve.sh: a bare libmicrohttpd server (epoll thread pool, turbo, answering on
 * the second handler call) that answers every request with a fixed string. Usage:
 * bench_serve_bare SECONDS THREADS [POOL_BYTES]; prints "port N" and serves for SECONDS at most
 * (SIGTERM ends it). POOL_BYTES is MHD's per-connection memory (default MHD's 32 KiB). */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    static int first_call_marker;
    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    if (*req_cls == NULL) {
        *req_cls = &first_call_marker;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    return MHD_queue_response(conn, MHD_HTTP_OK, cls);
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 10;
    sigset_t term; /* SIGTERM ends the run early (blocked before the daemon's threads start) */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL);
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 2;
    size_t pool = argc > 3 ? (size_t)atol(argv[3]) : 32768; /* MHD's default connection pool */
    static const char body[] = "{\"ok\":true}";
    struct MHD_Response *resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
                                                                 MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO, 0, NULL, NULL, on_request,
                         resp, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                         MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, 4096u,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bench_serve_bare: cannot start the daemon\n");
        return 1;
    }
    printf("port %u\n", MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
    fflush(stdout);
    struct timespec limit = {seconds, 0};
    sigtimedwait(&term, NULL, &limit);
    MHD_stop_daemon(d);
    MHD_destroy_response(resp);
    return 0;
}
