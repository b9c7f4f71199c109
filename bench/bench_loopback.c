/* The machine's floor for a cluster round trip: a TCP ping-pong of 32 bytes over 127.0.0.1 between
 * two processes (no dray), the client blocking in read() and then spinning on recv(MSG_DONTWAIT).
 * Prints `loopback_pingpong_blocking_us` and `loopback_pingpong_spin_us` (mean of N trips). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* The echo side: answers every read with the same bytes until the client closes. */
static void echo(int ls)
{
    int s = accept(ls, NULL, NULL), one = 1;
    if (s < 0)
        _exit(1);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char b[64];
    for (;;) {
        ssize_t n = read(s, b, sizeof b);
        if (n <= 0 || write(s, b, (size_t)n) != n)
            _exit(0);
    }
}

/* Mean microseconds per round trip over n trips on a fresh connection to port. */
static double trips(int port, int n, int spin)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a))
        die("connect");
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char b[64] = {0};
    double t0 = now();
    for (int i = 0; i < n; i++) {
        if (write(s, b, 32) != 32)
            die("write");
        ssize_t got = 0;
        while (got < 32) {
            ssize_t r = spin ? recv(s, b, sizeof b, MSG_DONTWAIT) : read(s, b, sizeof b);
            if (r > 0)
                got += r;
            else if (r == 0 || !spin)
                die("read");
        }
    }
    double us = (now() - t0) / n * 1e6;
    close(s);
    return us;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    double mean_us[2];
    for (int spin = 0; spin < 2; spin++) {
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t al = sizeof a;
        if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) ||
            getsockname(ls, (struct sockaddr *)&a, &al))
            die("listen");
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0)
            echo(ls);
        close(ls);
        mean_us[spin] = trips(ntohs(a.sin_port), n, spin);
        waitpid(pid, NULL, 0);
    }
    printf("loopback_pingpong_blocking_us %.1f us\n", mean_us[0]);
    printf("loopback_pingpong_spin_us %.1f us\n", mean_us[1]);
    return 0;
}
