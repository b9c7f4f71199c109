/* A minimal blocking HTTP/1.1 client (one request per connection) for the CLI, tests and examples:
 * the CLI talks to a running server through it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "internal.h"

static dray_status write_all(int fd, const char *p, size_t n, const char *what)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dray_set_error(DRAY_ENET, "http client: sending %s: %s", what, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return DRAY_OK;
}

dray_status dray_serve_http_request(const char *host, int port, const char *method,
                                    const char *path, const char *body, size_t len,
                                    double timeout_s, int *status, char **resp)
{
    dray_status st;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return dray_set_error(DRAY_EINVAL, "http client: '%s' is not an IPv4 address", host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return dray_set_error(DRAY_ENET, "http client: socket: %s", strerror(errno));
    struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char *buf = NULL;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        st = dray_set_error(DRAY_ENET, "http client: connecting to %s:%d: %s", host, port,
                            strerror(errno));
        goto out_close;
    }
    char head[1024];
    int hn = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      method, path, host, port, len);
    if (hn < 0 || (size_t)hn >= sizeof(head)) {
        st = dray_set_error(DRAY_EINVAL, "http client: path too long: %.80s", path);
        goto out_close;
    }
    /* A server may answer (413) and close before reading the whole body: read its answer anyway. */
    dray_status wst = write_all(fd, head, (size_t)hn, "headers");
    if (wst == DRAY_OK && len)
        wst = write_all(fd, body, len, "body");
    char wmsg[256];
    snprintf(wmsg, sizeof(wmsg), "%s", wst != DRAY_OK ? dray_last_error() : "");
    size_t n = 0, cap = 4096;
    buf = malloc(cap);
    for (;;) {
        if (!buf) {
            st = dray_set_error(DRAY_ENOMEM, "http client: out of memory");
            goto out_close;
        }
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                continue;
            }
            buf = b;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && wst != DRAY_OK) {
            st = dray_set_error(wst, "%s", wmsg);
            goto out_free;
        }
        if (r < 0) {
            st = dray_set_error(errno == EAGAIN ? DRAY_ETIMEDOUT : DRAY_ENET,
                                "http client: reading from %s:%d: %s", host, port,
                                errno == EAGAIN ? "timed out" : strerror(errno));
            goto out_free;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    int code = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if ((sscanf(buf, "HTTP/1.%*d %d", &code) != 1 || !sep) && wst != DRAY_OK) {
        st = dray_set_error(wst, "%s", wmsg);
        goto out_free;
    }
    if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1 || !sep) {
        st = dray_set_error(DRAY_EFORMAT, "http client: malformed response from %s:%d", host, port);
        goto out_free;
    }
    *status = code;
    if (resp) {
        size_t blen = n - (size_t)(sep + 4 - buf);
        memmove(buf, sep + 4, blen + 1);
        *resp = buf;
        buf = NULL;
    }
    st = DRAY_OK;
out_free:
    free(buf);
out_close:
    close(fd);
    return st;
}
