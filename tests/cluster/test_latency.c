/* The latency path of the cluster client: a thread waiting for the task it just sent reads the
 * node's connection itself (dray__cluster_wait). Many threads waiting at once on two nodes get the
 * right results (each one's messages may be read by another), and a node that is killed or
 * declared dead while a caller reads its socket gives that caller an error, not a hang. */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dray/cluster.h"
#include "dray/core.h"
#include "test.h"
#include "cluster_fixture.h"
#include "cluster_tasks.h"

DRAY_FUNCTION(lt_inc)
{
    *result = dray_int(args[0].u.i + 1);
    return DRAY_OK;
}

/* args[0] + 1 after args[1] microseconds. */
DRAY_FUNCTION(lt_slow_inc)
{
    struct timespec ts = {args[1].u.i / 1000000, (args[1].u.i % 1000000) * 1000};
    nanosleep(&ts, NULL);
    *result = dray_int(args[0].u.i + 1);
    return DRAY_OK;
}

/* ==== Tests (fixture and helpers: tests/cluster_fixture.h, tests/cluster_tasks.h) ==== */

/* In a worker process (DRAY_WORKER_ADDRESS set), dray_init serves as a worker node and never
 * returns. */
TEST(worker_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

typedef struct caller {
    dray_runtime *rt;
    int id;
    int bad; /* wrong results seen */
} caller;

enum { CALLERS = 6, ROUNDS = 150 };

/* Submit one task, wait for it, check it; every third task sleeps 1 ms on its node, so results
 * for other threads arrive while this one reads (and the other way round). */
static void *one_at_a_time(void *arg)
{
    caller *c = arg;
    for (int i = 0; i < ROUNDS; i++) {
        int64_t x = (int64_t)c->id * 100000 + i;
        dray_value a[2] = {dray_int(x), dray_int(1000)};
        dray_ref *r;
        if (dray_submit(c->rt, i % 3 ? "lt_inc" : "lt_slow_inc", a, i % 3 ? 1 : 2, NULL, &r)) {
            c->bad++;
            continue;
        }
        dray_value v;
        if (dray_get(c->rt, r, 20000, &v) || v.type != DRAY_T_INT || v.u.i != x + 1)
            c->bad++;
        dray_ref_release(r);
    }
    return NULL;
}

/* Batches of 20, waited for together (the loop thread delivers these, unless a caller that
 * borrowed the connection does). */
static void *batches(void *arg)
{
    caller *c = arg;
    for (int b = 0; b < ROUNDS / 10; b++) {
        dray_ref *r[20];
        for (int k = 0; k < 20; k++) {
            dray_value a = dray_int(-(b * 20 + k));
            if (dray_submit(c->rt, "lt_inc", &a, 1, NULL, &r[k]))
                r[k] = NULL, c->bad++;
        }
        for (int k = 0; k < 20; k++) {
            if (!r[k])
                continue;
            dray_value v;
            if (dray_get(c->rt, r[k], 20000, &v) || v.u.i != -(b * 20 + k) + 1)
                c->bad++;
            dray_ref_release(r[k]);
        }
    }
    return NULL;
}

TEST(many_waiting_callers_on_two_nodes)
{
    test_cluster f;
    test_cluster_start(&f, 2);
    setenv("DRAY_CLUSTER_POLL_US", "2000", 1); /* the opt-in path (off by default) */
    dray_runtime *rt = test_cluster_driver(&f);
    unsetenv("DRAY_CLUSTER_POLL_US");
    pthread_t th[CALLERS + 1];
    caller cs[CALLERS + 1];
    for (int i = 0; i <= CALLERS; i++) {
        cs[i] = (caller){rt, i + 1, 0};
        ASSERT_EQ(pthread_create(&th[i], NULL, i < CALLERS ? one_at_a_time : batches, &cs[i]), 0);
    }
    for (int i = 0; i <= CALLERS; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ(cs[i].bad, 0);
    }
    /* The callers did read their own results (not only the loop thread). */
    int64_t waits = ct_client_stat(rt, "polled_waits"), hits = ct_client_stat(rt, "polled_hits");
    ASSERT_GT(waits, 0);
    ASSERT_GT(hits, 0);
    ASSERT_LE(hits, waits);
    /* A single caller afterwards: the same path, results still right. */
    for (int i = 0; i < 200; i++) {
        dray_value a = dray_int(i), v;
        dray_ref *r;
        ASSERT_OK(dray_submit(rt, "lt_inc", &a, 1, NULL, &r));
        ASSERT_OK(dray_get(rt, r, 20000, &v));
        ASSERT_EQ(v.u.i, i + 1);
        dray_ref_release(r);
    }
    ASSERT_GT(ct_client_stat(rt, "polled_waits"), waits);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

typedef struct killer {
    pid_t pid;
    int sig;
} killer;

static void *kill_later(void *arg)
{
    killer *k = arg;
    struct timespec ts = {0, 150 * 1000000};
    nanosleep(&ts, NULL);
    kill(k->pid, k->sig);
    return NULL;
}

/* The caller reads the node's socket (a read window far longer than the get's timeout) when the
 * node is killed -9: the caller sees the connection end itself and gets the node-lost error. */
TEST(node_killed_while_a_caller_reads_its_socket)
{
    test_cluster f;
    test_cluster_start(&f, 1);
    setenv("DRAY_MAX_RETRIES", "0", 1);
    setenv("DRAY_CLUSTER_POLL_US", "60000000", 1);
    dray_runtime *rt = test_cluster_driver(&f);
    dray_value a[2] = {dray_int(1), dray_int(5000000)}; /* 5 s on the node */
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, "lt_slow_inc", a, 2, NULL, &r));
    killer k = {f.workers[0], SIGKILL};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, kill_later, &k), 0);
    /* Without the caller noticing, this would sit in its read window and time out. */
    ASSERT_STATUS(dray_get(rt, r, 3000, NULL), DRAY_ENET);
    ASSERT_CONTAINS(dray_last_error(), "was lost");
    pthread_join(th, NULL);
    int st;
    waitpid(f.workers[0], &st, 0);
    f.workers[0] = -1;
    ASSERT_GE(ct_client_stat(rt, "polled_waits"), 1);
    ASSERT_GE(ct_client_stat(rt, "polled_lost"), 1); /* the reading caller saw the end itself */
    dray_ref_release(r);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    unsetenv("DRAY_MAX_RETRIES");
    unsetenv("DRAY_CLUSTER_POLL_US");
    test_cluster_stop(&f);
}

/* A hung node (SIGSTOP: its socket stays open) is declared dead by the head; the driver's loop
 * closes the connection a caller is reading, and that caller wakes with the error. */
TEST(hung_node_declared_dead_while_a_caller_reads_it)
{
    setenv("DRAY_HEARTBEAT_TIMEOUT_MS", "1000", 1); /* read by the head started below */
    test_cluster f;
    test_cluster_start(&f, 1);
    setenv("DRAY_MAX_RETRIES", "0", 1);
    setenv("DRAY_CLUSTER_POLL_US", "60000000", 1);
    dray_runtime *rt = test_cluster_driver(&f);
    dray_value a[2] = {dray_int(1), dray_int(5000000)};
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, "lt_slow_inc", a, 2, NULL, &r));
    killer k = {f.workers[0], SIGSTOP};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, kill_later, &k), 0);
    ASSERT_STATUS(dray_get(rt, r, 4500, NULL), DRAY_ENET);
    pthread_join(th, NULL);
    ASSERT_GE(ct_client_stat(rt, "polled_waits"), 1);
    /* It was woken by the close (else its read window would run to the get's deadline). */
    ASSERT_GE(ct_client_stat(rt, "polled_lost"), 1);
    dray_ref_release(r);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    unsetenv("DRAY_MAX_RETRIES");
    unsetenv("DRAY_CLUSTER_POLL_US");
    unsetenv("DRAY_HEARTBEAT_TIMEOUT_MS");
    kill(f.workers[0], SIGKILL); /* stopped: SIGTERM would wait */
    int st;
    waitpid(f.workers[0], &st, 0);
    f.workers[0] = -1;
    test_cluster_stop(&f);
}

/* n tasks one at a time, each result checked. */
static void round_trips(dray_runtime *rt, int n)
{
    for (int i = 0; i < n; i++) {
        dray_value a = dray_int(i), v;
        dray_ref *r;
        ASSERT_OK(dray_submit(rt, "lt_inc", &a, 1, NULL, &r));
        ASSERT_OK(dray_get(rt, r, 20000, &v));
        ASSERT_EQ(v.u.i, i + 1);
        dray_ref_release(r);
    }
}

/* By default the path is on for same-host lanes only (tasks and results through shared memory);
 * without lanes, or with a read window of 0, results come through the loop thread. */
TEST(read_window_zero_uses_the_loop)
{
    /* Lanes are read by threads that spin: a loaded machine must not keep them from it here. */
    setenv("DRAY_CLUSTER_SPIN_LOAD_GATE", "0", 1);
    test_cluster f;
    test_cluster_start(&f, 2);
    unsetenv("DRAY_CLUSTER_POLL_US");
    dray_runtime *rt = test_cluster_driver(&f);
    round_trips(rt, 200);
    unsetenv("DRAY_CLUSTER_SPIN_LOAD_GATE");
    /* Tasks and results go through the lanes while their readers are awake (a message to a
     * sleeping reader takes the socket, which wakes it): most of them here. */
    ASSERT_EQ(ct_client_stat(rt, "lanes"), 2);
    ASSERT_GE(ct_client_stat(rt, "lane_sent"), 1);
    ASSERT_LE(ct_client_stat(rt, "lane_sent"), 200);
    ASSERT_GE(ct_client_stat(rt, "lane_received"), 1);
    ASSERT_GE(ct_client_stat(rt, "polled_waits"), 1);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    setenv("DRAY_LANE", "0", 1); /* read by the driver only: the nodes still offer lanes */
    rt = test_cluster_driver(&f);
    round_trips(rt, 100);
    ASSERT_EQ(ct_client_stat(rt, "lanes"), 0);
    ASSERT_EQ(ct_client_stat(rt, "lane_sent"), 0);
    ASSERT_EQ(ct_client_stat(rt, "polled_waits"), 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    unsetenv("DRAY_LANE");
    setenv("DRAY_CLUSTER_POLL_US", "0", 1);
    rt = test_cluster_driver(&f);
    round_trips(rt, 10);
    ASSERT_EQ(ct_client_stat(rt, "polled_waits"), 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    unsetenv("DRAY_CLUSTER_POLL_US");
    test_cluster_stop(&f);
}

RUN_TESTS(T_(worker_main), T_(many_waiting_callers_on_two_nodes),
          T_(node_killed_while_a_caller_reads_its_socket),
          T_(hung_node_declared_dead_while_a_caller_reads_it), T_(read_window_zero_uses_the_loop))
