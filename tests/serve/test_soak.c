/* Soak: a bounded mix of good and bad requests (malformed JSON, wrong feature counts, oversized
 * bodies, unknown routes, clients that vanish mid-request, back-pressure) from several threads
 * against model and batching deployments on actors. Every answer has the expected status; at the end
 * the server shuts down cleanly (ASan's leak check covers the rest). Bounded by count and time. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "serve/helpers.h"

typedef struct soak {
    dray_serve *s;
    int seed;
    double deadline;
    atomic_int *mismatches, *sent;
    const char *big; /* a body over the 4096-byte limit */
} soak;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void vanish(int port, const char *data)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        send(fd, data, strlen(data), MSG_NOSIGNAL);
    close(fd);
}

static void *soak_main(void *p)
{
    soak *k = p;
    const char *big = k->big;
    unsigned x = (unsigned)k->seed;
    for (int i = 0; i < 400 && now_s() < k->deadline; i++) {
        x = x * 1103515245u + 12345u;
        int kind = (int)((x >> 16) % 8);
        const char *route = (x >> 8) & 1 ? "/m" : "/b";
        const char *body;
        int want;
        switch (kind) {
        case 0: body = "{\"features\": [0.5, 1]}"; want = 200; break;
        case 1: body = "{\"features\": [0.5"; want = 400; break;
        case 2: body = "{\"features\": [1, 2, 3]}"; want = 400; break;
        case 3: body = big; want = 413; break;
        case 4: body = "{}"; route = "/nowhere"; want = 404; break;
        case 5:
            /* Gone mid-body, or gone right after a whole request that then waits in a batch. */
            vanish(dray_serve_port(k->s),
                   route[1] == 'm'
                       ? "POST /m HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"feat"
                       : "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\n\r\n"
                         "{\"features\": [0.5, 1]}");
            continue;
        case 6: body = "{\"instances\": [[1, 2], [3, 4]]}"; want = 200; break;
        default: body = "{\"features\": [\"a\", 1]}"; want = 400; break;
        }
        int status = 0;
        char *resp = NULL;
        if (dray_serve_http_request("127.0.0.1", dray_serve_port(k->s), "POST", route, body,
                                    strlen(body), 10, &status, &resp) != DRAY_OK ||
            (status != want && status != 503)) {
            fprintf(stderr, "soak: %s %s -> %d, want %d\n", route, body == big ? "(big)" : body,
                    status, want);
            atomic_fetch_add(k->mismatches, 1);
        }
        if (resp && status != 200 && !strstr(resp, "\"error\""))
            atomic_fetch_add(k->mismatches, 1);
        dray_free(resp);
        atomic_fetch_add(k->sent, 1);
    }
    return NULL;
}

TEST(soak_mixed_requests)
{
    const char *path = tmp_path("test_serve_soak_model.txt");
    dray_serve_logreg m;
    train_model(path, 2, &m);
    WITH_ACTORS({
        dray_serve *s = start_serve(0);
        char cfg[256];
        snprintf(cfg, sizeof(cfg), "{\"model_path\": \"%s\"}", path);
        dray_serve_deployment_opts d;
        dray_serve_deployment_opts_init(&d);
        d.name = "m";
        d.class_name = "LogisticRegression";
        d.route_prefix = "/m";
        d.num_replicas = 2;
        d.max_ongoing_requests = 2;
        d.user_config = cfg;
        ASSERT_OK(dray_serve_run(s, &d, NULL));
        d.name = "b";
        d.route_prefix = "/b";
        d.max_batch_size = 4;
        d.batch_wait_timeout_s = 0.001;
        ASSERT_OK(dray_serve_run(s, &d, NULL));
        atomic_int mismatches = 0, sent = 0;
        static char big[6000];
        memset(big, '1', sizeof(big) - 1);
        big[0] = '[';
        big[sizeof(big) - 2] = ']';
        soak k[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            k[i] = (soak){s, i + 1, now_s() + 3.0, &mismatches, &sent, big};
            pthread_create(&t[i], NULL, soak_main, &k[i]);
        }
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
        ASSERT_EQ(atomic_load(&mismatches), 0);
        ASSERT_GT(atomic_load(&sent), 40);
        char *body = NULL;
        ASSERT_EQ(http(s, "GET", "/-/healthz", NULL, &body), 200);
        dray_free(body);
        ASSERT_OK(dray_serve_shutdown(s, 5));
    });
    dray_serve_logreg_fini(&m);
    remove(path);
}

RUN_TESTS(T_(soak_mixed_requests))
