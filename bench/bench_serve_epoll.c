/* The second anchor for bench/serve.sh: a bare epoll HTTP/1.1 server (one edge-triggered loop per
 * thread on a shared listening socket, answering every request with a fixed string in the turn that
 * read it), the ceiling for serve's own ingress. Usage: bench_serve_epoll SECONDS THREADS; prints
 * "port N" and serves for SECONDS at most (SIGTERM ends it). Requests are framed by their head and
 * Content-Length only: a load generator's input, not a general server. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    size_t len;
    char in[16384];
} conn;

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: 11\r\n\r\n{\"ok\":true}";

/* Answers every complete request in k->in; returns false when the connection is to be closed. */
static bool answer(conn *k, char *out, size_t cap)
{
    size_t off = 0, olen = 0;
    for (;;) {
        char *end = memmem(k->in + off, k->len - off, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t head = (size_t)(end + 4 - (k->in + off)), body = 0;
        for (char *p = k->in + off; p < end;) {
            if ((size_t)(end - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
                body = strtoul(p + 15, NULL, 10);
            char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl)
                break;
            p = nl + 1;
        }
        if (k->len - off < head + body)
            break;
        off += head + body;
        if (olen + sizeof(RESPONSE) > cap)
            return false;
        memcpy(out + olen, RESPONSE, sizeof(RESPONSE) - 1);
        olen += sizeof(RESPONSE) - 1;
    }
    memmove(k->in, k->in + off, k->len - off);
    k->len -= off;
    if (k->len == sizeof(k->in))
        return false;
    return olen == 0 || send(k->fd, out, olen, MSG_NOSIGNAL) == (ssize_t)olen;
}

static void *loop(void *arg)
{
    int lfd = *(int *)arg;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[64];
    static _Thread_local char out[65536];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            conn *k = evs[i].data.ptr;
            if (!k) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (fd < 0)
                    continue;
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                k = calloc(1, sizeof(*k));
                if (!k) {
                    close(fd);
                    continue;
                }
                k->fd = fd;
                struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = k};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                continue;
            }
            for (;;) {
                ssize_t r = recv(k->fd, k->in + k->len, sizeof(k->in) - k->len, 0);
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (r <= 0 || (k->len += (size_t)r, !answer(k, out, sizeof(out)))) {
                    close(k->fd);
                    free(k);
                    break;
                }
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 10, threads = argc > 2 ? atoi(argv[2]) : 2;
    sigset_t term; /* SIGTERM ends the run early (blocked before the threads start) */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL);
    static int lfd;
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t alen = sizeof(a);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 1024) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        fprintf(stderr, "bench_serve_epoll: cannot listen: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < threads && i < 64; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, loop, &lfd) != 0)
            return 1;
        pthread_detach(t);
    }
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    struct timespec limit = {seconds, 0};
    sigtimedwait(&term, NULL, &limit);
    return 0;
}
