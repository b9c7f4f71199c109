/* serve's own HTTP/1.1 ingress at the protocol level, over raw sockets: HTTP/1.0 and Connection
 * rules, Expect: 100-continue, refused framings (chunked 411, HTTP/2 505, oversized head 431), a
 * moderately oversized body skipped with 413 and the connection kept, HEAD, requests arriving a
 * byte at a time, percent-decoding of path and query, and many clients at once on every loop. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "serve/helpers.h"

/* Set: HTTP calls go through the replica actor's mailbox (actor_calls) instead of the loop. */
static bool use_actor_calls;

static void deploy_echo(dray_serve *s)
{
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.actor_calls = use_actor_calls;
    d.name = "api";
    d.class_name = "TestEcho";
    d.route_prefix = "/api";
    ASSERT_OK(dray_serve_run(s, &d, NULL));
}

static int connect_to(dray_serve *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)dray_serve_port(s))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_all(int fd, const char *data, size_t n)
{
    ASSERT_EQ(send(fd, data, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Complete responses (head and Content-Length body) at the start of buf[0..n). */
static int complete_responses(const char *buf, size_t n)
{
    int got = 0;
    size_t pos = 0;
    for (;;) {
        const char *end = strstr(buf + pos, "\r\n\r\n");
        if (!end)
            return got;
        size_t head = (size_t)(end + 4 - (buf + pos));
        const char *cl = strstr(buf + pos, "Content-Length: ");
        size_t len = cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0;
        if (strncmp(buf + pos, "HTTP/1.1 100 ", 13) == 0)
            len = 0;
        if (pos + head + len > n)
            return got;
        pos += head + len;
        got++;
    }
}

/* Reads until `want` complete responses arrived, EOF or the 5 s timeout; *closed tells whether
 * the server closed the connection (checked only once the responses are in, with a short wait). */
static size_t read_responses(int fd, int want, char *out, size_t cap, bool *closed)
{
    size_t n = 0;
    bool eof = false;
    if (!closed)
        closed = &eof; /* not asked: no wait for the close */
    out[0] = '\0';
    while (complete_responses(out, n) < want && n + 1 < cap) {
        ssize_t r = recv(fd, out + n, cap - n - 1, 0);
        if (r <= 0) {
            *closed = r == 0;
            return n;
        }
        n += (size_t)r;
        out[n] = '\0';
    }
    *closed = false;
    if (closed == &eof)
        return n;
    struct timeval tv = {0, 300000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char extra[64];
    *closed = recv(fd, extra, sizeof(extra), MSG_PEEK) == 0;
    tv.tv_sec = 5;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return n;
}

static int count(const char *hay, const char *needle)
{
    int c = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        c++;
    return c;
}

TEST(http10_and_connection_rules)
{
    dray_serve *s = start_serve(0);
    deploy_echo(s);
    char out[8192];
    bool closed;
    /* HTTP/1.0 without keep-alive: answered, then closed. */
    int fd = connect_to(s);
    const char *r10 = "GET /api/a HTTP/1.0\r\n\r\n";
    send_all(fd, r10, strlen(r10));
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "HTTP/1.1 200 OK");
    ASSERT_CONTAINS(out, "Connection: close");
    ASSERT_CONTAINS(out, "\"path\":\"/a\"");
    ASSERT_TRUE(closed);
    close(fd);
    /* HTTP/1.0 with keep-alive: two requests on one connection, which stays open. */
    fd = connect_to(s);
    const char *k10 = "GET /api/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                      "GET /api/2 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    send_all(fd, k10, strlen(k10));
    read_responses(fd, 2, out, sizeof(out), &closed);
    ASSERT_EQ(count(out, "HTTP/1.1 200 OK"), 2);
    ASSERT_EQ(count(out, "Connection: keep-alive"), 2);
    ASSERT_CONTAINS(out, "\"path\":\"/2\"");
    ASSERT_TRUE(!closed);
    close(fd);
    /* HTTP/1.1 with Connection: close: the requests after it are not answered. */
    fd = connect_to(s);
    const char *c11 = "GET /api/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
                      "GET /api/y HTTP/1.1\r\nHost: h\r\n\r\n";
    send_all(fd, c11, strlen(c11));
    read_responses(fd, 2, out, sizeof(out), &closed);
    ASSERT_EQ(count(out, "HTTP/1.1 "), 1);
    ASSERT_CONTAINS(out, "\"path\":\"/x\"");
    ASSERT_TRUE(closed);
    close(fd);
    /* A client that half-closes after its request still gets the answer. */
    fd = connect_to(s);
    const char *half = "POST /api/half HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}";
    send_all(fd, half, strlen(half));
    shutdown(fd, SHUT_WR);
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "\"path\":\"/half\"");
    ASSERT_TRUE(closed);
    close(fd);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

TEST(expect_continue_and_refused_framings)
{
    dray_serve *s = start_serve(0);
    deploy_echo(s);
    char out[16384];
    bool closed;
    /* Expect: 100-continue gets the interim answer before the body is sent. */
    int fd = connect_to(s);
    const char *head = "POST /api/e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                       "Content-Length: 9\r\n\r\n";
    send_all(fd, head, strlen(head));
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "HTTP/1.1 100 Continue");
    send_all(fd, "{\"a\": 42}", 9);
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "HTTP/1.1 200 OK");
    ASSERT_CONTAINS(out, "\"echo\":{\"a\":42}");
    close(fd);
    /* Chunked bodies are refused with 411 and a JSON error; the connection closes. */
    fd = connect_to(s);
    const char *ch = "POST /api HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "2\r\n{}\r\n0\r\n\r\n";
    send_all(fd, ch, strlen(ch));
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "HTTP/1.1 411 ");
    ASSERT_CONTAINS(out, "\"status\":411");
    ASSERT_CONTAINS(out, "chunked");
    ASSERT_TRUE(closed);
    close(fd);
    /* Another HTTP version: 505. */
    fd = connect_to(s);
    send_all(fd, "GET /api HTTP/2.0\r\n\r\n", 21);
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "HTTP/1.1 505 ");
    close(fd);
    /* A head over connection_memory (8 KiB): 431. */
    fd = connect_to(s);
    char big[12000];
    int n = snprintf(big, sizeof(big), "GET /api HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'a', 10000);
    memcpy(big + n + 10000, "\r\n\r\n", 5);
    send_all(fd, big, strlen(big));
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "HTTP/1.1 431 ");
    ASSERT_CONTAINS(out, "\"status\":431");
    close(fd);
    /* Conflicting Content-Length fields: 400. */
    fd = connect_to(s);
    const char *dup = "POST /api HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}";
    send_all(fd, dup, strlen(dup));
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "HTTP/1.1 400 ");
    ASSERT_CONTAINS(out, "Content-Length");
    close(fd);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

TEST(oversized_body_skipped_and_head)
{
    dray_serve *s = start_serve(0); /* max_body_bytes 4096 */
    deploy_echo(s);
    char out[16384];
    bool closed;
    int fd = connect_to(s);
    char req[8192];
    int n = snprintf(req, sizeof(req), "POST /api HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n");
    memset(req + n, ' ', 5000);
    send_all(fd, req, (size_t)n + 5000);
    const char *next = "POST /api/after HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n[]";
    send_all(fd, next, strlen(next));
    read_responses(fd, 2, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "HTTP/1.1 413 ");
    ASSERT_CONTAINS(out, "exceeds the limit of 4096 bytes");
    ASSERT_CONTAINS(out, "\"path\":\"/after\""); /* the same connection goes on */
    ASSERT_TRUE(!closed);
    close(fd);
    /* HEAD: the head of the GET answer, no body. */
    fd = connect_to(s);
    const char *h = "HEAD /-/healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /-/healthz HTTP/1.1\r\n\r\n";
    send_all(fd, h, strlen(h));
    /* (the HEAD answer announces 7 bytes it does not send: read until the GET's body) */
    size_t got = 0;
    while (got < 7 || strcmp(out + got - 7, "success") != 0) {
        ssize_t r = recv(fd, out + got, sizeof(out) - got - 1, 0);
        ASSERT_TRUE(r > 0);
        got += (size_t)r;
        out[got] = '\0';
    }
    ASSERT_EQ(count(out, "Content-Length: 7"), 2);
    ASSERT_EQ(count(out, "success"), 1);
    ASSERT_TRUE(got > 0 && strcmp(out + got - 7, "success") == 0);
    close(fd);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

TEST(byte_at_a_time_and_decoding)
{
    dray_serve *s = start_serve(0);
    deploy_echo(s);
    char out[8192];
    bool closed;
    int fd = connect_to(s);
    const char *req = "POST /api/a%2Fb%20c?q=x+y%26z&flag HTTP/1.1\r\nHost: h\r\n"
                      "X-Test:   padded value  \r\nContent-Length: 7\r\n\r\n[1,2,3]"
                      "GET /api/second HTTP/1.1\r\n\r\n";
    for (const char *p = req; *p; p++)
        send_all(fd, p, 1);
    read_responses(fd, 2, out, sizeof(out), &closed);
    ASSERT_EQ(count(out, "HTTP/1.1 200 OK"), 2);
    ASSERT_CONTAINS(out, "\"path\":\"/a/b c\"");
    ASSERT_CONTAINS(out, "\"q\":\"x y&z\"");
    ASSERT_CONTAINS(out, "\"x_test\":\"padded value\"");
    ASSERT_CONTAINS(out, "\"echo\":[1,2,3]");
    ASSERT_CONTAINS(out, "\"path\":\"/second\"");
    close(fd);
    /* A path decoding to a NUL byte is refused. */
    fd = connect_to(s);
    send_all(fd, "GET /api/%00 HTTP/1.1\r\n\r\n", 25);
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "HTTP/1.1 400 ");
    close(fd);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

/* Many clients at once, each with a few keep-alive requests, spread over the loops. */
static dray_serve *many_s;
static atomic_int many_ok;
static void *many_client(void *arg)
{
    (void)arg;
    int fd = connect_to(many_s);
    char out[8192];
    const char *req = "POST /api/m HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}";
    for (int i = 0; i < 20; i++) {
        send_all(fd, req, strlen(req));
        read_responses(fd, 1, out, sizeof(out), NULL);
        if (strstr(out, "HTTP/1.1 200 OK") && strstr(out, "\"path\":\"/m\""))
            atomic_fetch_add(&many_ok, 1);
    }
    close(fd);
    return NULL;
}

TEST(many_clients)
{
    many_s = start_serve(0);
    deploy_echo(many_s);
    pthread_t t[16];
    for (int i = 0; i < 16; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, many_client, NULL), 0);
    for (int i = 0; i < 16; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(atomic_load(&many_ok), 16 * 20);
    ASSERT_OK(dray_serve_shutdown(many_s, 5));
}

TEST(on_actors)
{
    WITH_ACTORS({
        test_http10_and_connection_rules();
        test_oversized_body_skipped_and_head();
        test_byte_at_a_time_and_decoding();
        atomic_store(&many_ok, 0);
        test_many_clients();
        use_actor_calls = true;
        test_http10_and_connection_rules();
        test_byte_at_a_time_and_decoding();
        atomic_store(&many_ok, 0);
        test_many_clients();
        use_actor_calls = false;
    });
}

/* A call stuck in an ingress thread (one loop only, so every connection is on it): answered 504
 * at its deadline while the loop goes on in a fresh thread: a keep-alive connection opened before,
 * new connections and the other deployment keep being served; the stuck thread leaves when its
 * call returns (ASan: nothing leaks). */
static dray_serve *stuck_s;
static void *slow_client(void *arg)
{
    int *status = arg;
    char *body = NULL;
    ASSERT_OK(dray_serve_http_request("127.0.0.1", dray_serve_port(stuck_s), "POST", "/slow", "{}",
                                      2, 10.0, status, &body));
    ASSERT_CONTAINS(body, "no answer within the request timeout");
    dray_free(body);
    return NULL;
}

TEST(stuck_call_hands_the_loop_over)
{
    dray_serve_opts o;
    dray_serve_opts_init(&o);
    o.rt = test_rt;
    o.port = 0;
    o.threads = 1;
    o.control_period_s = 0.01;
    ASSERT_OK(dray_serve_start(&o, &stuck_s));
    deploy_echo(stuck_s);
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = "slow";
    d.class_name = "TestSleeper";
    d.route_prefix = "/slow";
    d.user_config = "{\"ms\": 1200}";
    d.request_timeout_s = 0.3;
    d.health_check_timeout_s = 60;
    ASSERT_OK(dray_serve_run(stuck_s, &d, NULL));
    int fd = connect_to(stuck_s);
    char out[8192];
    bool closed;
    const char *req = "GET /api/before HTTP/1.1\r\nHost: h\r\n\r\n";
    send_all(fd, req, strlen(req));
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "\"path\":\"/before\"");
    int slow_status = 0;
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, slow_client, &slow_status), 0);
    sleep_ms(50); /* (the order does not change what is checked) */
    const char *again = "GET /api/during HTTP/1.1\r\nHost: h\r\n\r\n";
    send_all(fd, again, strlen(again));
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "\"path\":\"/during\"");
    for (int i = 0; i < 10; i++) {
        char *body = NULL;
        ASSERT_EQ(http(stuck_s, "POST", "/api/x", "[1]", &body), 200);
        ASSERT_CONTAINS(body, "\"echo\":[1]");
        dray_free(body);
    }
    pthread_join(t, NULL);
    ASSERT_EQ(slow_status, 504);
    close(fd);
    sleep_ms(1300); /* the stuck call returns; its thread leaves */
    char *body = NULL;
    ASSERT_EQ(http(stuck_s, "GET", "/api/after", NULL, &body), 200);
    dray_free(body);
    ASSERT_OK(dray_serve_shutdown(stuck_s, 5));
}

/* A client that half-closes while its call runs on the actor (the end of its input is read
 * while the connection waits) still gets the answer. */
TEST(half_close_while_the_call_runs)
{
    dray_serve *s = start_serve(0);
    dray_serve_deployment_opts d;
    dray_serve_deployment_opts_init(&d);
    d.name = "slow";
    d.class_name = "TestSleeper";
    d.route_prefix = "/slow";
    d.user_config = "{\"ms\": 300}";
    d.actor_calls = true;
    ASSERT_OK(dray_serve_run(s, &d, NULL));
    int fd = connect_to(s);
    const char *req = "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n";
    send_all(fd, req, strlen(req));
    sleep_ms(100); /* (the call is running: the end of input arrives while it waits) */
    shutdown(fd, SHUT_WR);
    char out[4096];
    bool closed;
    read_responses(fd, 1, out, sizeof(out), &closed);
    ASSERT_CONTAINS(out, "HTTP/1.1 200 OK");
    ASSERT_CONTAINS(out, "\"calls\":1");
    close(fd);
    ASSERT_OK(dray_serve_shutdown(s, 5));
}

TEST(stuck_call_on_actors)
{
    WITH_ACTORS({
        test_stuck_call_hands_the_loop_over();
        test_half_close_while_the_call_runs();
    });
}

RUN_TESTS(T_(stuck_call_on_actors), T_(http10_and_connection_rules), T_(expect_continue_and_refused_framings),
          T_(oversized_body_skipped_and_head), T_(byte_at_a_time_and_decoding), T_(many_clients),
          T_(on_actors))
