/* Tasks and refs: submission, dependencies, deep chains, many tasks, nested submission, errors,
 * timeouts, cancellation, resources and shutdown, each checked against an independent computation. */
#include <pthread.h>
#include <unistd.h>

#include "dray/dray.h"
#include "test.h"

DRAY_FUNCTION(t_noop)
{
    *result = dray_null();
    return DRAY_OK;
}

DRAY_FUNCTION(t_add)
{
    int64_t s = 0;
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].type != DRAY_T_INT)
            return dray_ctx_fail(ctx, DRAY_ETYPE, "argument %zu is a %s, not an int", i,
                                 dray_type_name(args[i].type));
        s += args[i].u.i;
    }
    *result = dray_int(s);
    return DRAY_OK;
}

DRAY_FUNCTION(t_fail)
{
    return dray_ctx_fail(ctx, DRAY_EINVAL, "boom %lld", (long long)args[0].u.i);
}

DRAY_FUNCTION(t_sleep_ms)
{
    usleep((useconds_t)args[0].u.i * 1000);
    *result = dray_int(args[0].u.i);
    return DRAY_OK;
}

/* fib(n) by nested submission with blocking gets inside tasks. */
DRAY_FUNCTION(t_fib)
{
    int64_t n = args[0].u.i;
    if (n < 2) {
        *result = dray_int(n);
        return DRAY_OK;
    }
    dray_runtime *rt = dray_ctx_runtime(ctx);
    dray_value a[1] = {dray_int(n - 1)}, b[1] = {dray_int(n - 2)};
    dray_ref *ra, *rb;
    dray_status st = dray_submit(rt, "t_fib", a, 1, NULL, &ra);
    if (st)
        return st;
    if ((st = dray_submit(rt, "t_fib", b, 1, NULL, &rb))) {
        dray_ref_release(ra);
        return st;
    }
    dray_value va, vb;
    st = dray_get(rt, ra, -1, &va);
    if (!st)
        st = dray_get(rt, rb, -1, &vb);
    dray_ref_release(ra);
    dray_ref_release(rb);
    if (st)
        return st;
    *result = dray_int(va.u.i + vb.u.i);
    return DRAY_OK;
}

static int64_t fib_ref(int n)
{
    int64_t a = 0, b = 1;
    for (int i = 0; i < n; i++) {
        int64_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}

static dray_runtime *start(int workers)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = workers;
    cfg.progress = 0;
    dray_runtime *rt;
    ASSERT_OK(dray_init(&cfg, &rt));
    return rt;
}

TEST(submit_get)
{
    dray_runtime *rt = start(2);
    dray_value args[3] = {dray_int(1), dray_int(2), dray_int(39)};
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, "t_add", args, 3, NULL, &r));
    dray_value v;
    ASSERT_OK(dray_get(rt, r, -1, &v));
    ASSERT_EQ(v.type, DRAY_T_INT);
    ASSERT_EQ(v.u.i, 42);
    ASSERT_TRUE(dray_ref_ready(r));
    dray_ref_release(r);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(unknown_function_and_bad_args)
{
    dray_runtime *rt = start(1);
    dray_ref *r = NULL;
    ASSERT_STATUS(dray_submit(rt, "no_such_fn", NULL, 0, NULL, &r), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "no_such_fn");
    ASSERT_TRUE(r == NULL);
    ASSERT_STATUS(dray_submit(NULL, "t_add", NULL, 0, NULL, &r), DRAY_EINVAL);
    ASSERT_STATUS(dray_submit(rt, "t_add", NULL, 2, NULL, &r), DRAY_EINVAL);
    dray_value bad = dray_value_of_ref(NULL);
    ASSERT_STATUS(dray_submit(rt, "t_add", &bad, 1, NULL, &r), DRAY_EINVAL);
    ASSERT_STATUS(dray_get(rt, NULL, 0, NULL), DRAY_EINVAL);
    ASSERT_STATUS(dray_wait(rt, NULL, 1, 1, 0, NULL, NULL), DRAY_EINVAL);
    dray_resource gpu = {"GPU", 1};
    dray_task_opts o = {0};
    o.resources = &gpu;
    o.n_resources = 1;
    ASSERT_STATUS(dray_submit(rt, "t_noop", NULL, 0, &o, &r), DRAY_ERESOURCE);
    ASSERT_CONTAINS(dray_last_error(), "GPU");
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(dependencies_and_put)
{
    dray_runtime *rt = start(2);
    dray_value five = dray_int(5);
    dray_ref *p;
    ASSERT_OK(dray_put(rt, &five, &p));
    /* Diamond: a = p + 1, b = p + 2, c = a + b + p */
    dray_value aa[2] = {dray_value_of_ref(p), dray_int(1)};
    dray_value ba[2] = {dray_value_of_ref(p), dray_int(2)};
    dray_ref *a, *b, *c;
    ASSERT_OK(dray_submit(rt, "t_add", aa, 2, NULL, &a));
    ASSERT_OK(dray_submit(rt, "t_add", ba, 2, NULL, &b));
    dray_value ca[3] = {dray_value_of_ref(a), dray_value_of_ref(b), dray_value_of_ref(p)};
    ASSERT_OK(dray_submit(rt, "t_add", ca, 3, NULL, &c));
    dray_value v;
    ASSERT_OK(dray_get(rt, c, -1, &v));
    ASSERT_EQ(v.u.i, (5 + 1) + (5 + 2) + 5);
    dray_ref_release(a);
    dray_ref_release(b);
    dray_ref_release(c);
    dray_ref_release(p);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(deep_chain_100k)
{
    dray_runtime *rt = start(2);
    const dray_function *add = dray_function_find("t_add");
    ASSERT_TRUE(add != NULL);
    /* Submit the chain head behind a slow task so the whole chain is pending at once. */
    dray_value ms = dray_int(20);
    dray_ref *head;
    ASSERT_OK(dray_submit(rt, "t_sleep_ms", &ms, 1, NULL, &head));
    dray_ref *prev = head;
    const int N = 100000;
    for (int i = 0; i < N; i++) {
        dray_value args[2] = {dray_value_of_ref(prev), dray_int(1)};
        dray_ref *next;
        ASSERT_OK(dray_submit_fn(rt, add, args, 2, NULL, &next));
        dray_ref_release(prev);
        prev = next;
    }
    dray_value v;
    ASSERT_OK(dray_get(rt, prev, -1, &v));
    ASSERT_EQ(v.u.i, 20 + N);
    dray_ref_release(prev);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(million_tasks)
{
    dray_runtime *rt = start(2);
    const dray_function *add = dray_function_find("t_add");
    const size_t N = 1000000;
    dray_ref **refs = malloc(N * sizeof(*refs));
    ASSERT_TRUE(refs != NULL);
    for (size_t i = 0; i < N; i++) {
        dray_value a[2] = {dray_int((int64_t)i), dray_int(1)};
        ASSERT_OK(dray_submit_fn(rt, add, a, 2, NULL, &refs[i]));
    }
    size_t count = 0;
    ASSERT_OK(dray_wait(rt, refs, N, N, -1, NULL, &count));
    ASSERT_EQ(count, N);
    int64_t sum = 0;
    for (size_t i = 0; i < N; i++) {
        dray_value v;
        ASSERT_OK(dray_get(rt, refs[i], 0, &v));
        sum += v.u.i;
        dray_ref_release(refs[i]);
    }
    ASSERT_EQ(sum, (int64_t)(N * (N - 1) / 2 + N));
    free(refs);
    dray_stats s;
    ASSERT_OK(dray_runtime_stats(rt, &s));
    ASSERT_EQ(s.tasks_finished, N);
    ASSERT_EQ(s.objects_live, 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(nested_submission)
{
    /* More blocked parents than workers: must not deadlock. */
    dray_runtime *rt = start(2);
    dray_value n = dray_int(18);
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, "t_fib", &n, 1, NULL, &r));
    dray_value v;
    ASSERT_OK(dray_get(rt, r, -1, &v));
    ASSERT_EQ(v.u.i, fib_ref(18));
    dray_ref_release(r);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(error_propagation_three_levels)
{
    dray_runtime *rt = start(2);
    dray_value seven = dray_int(7);
    dray_ref *a, *b, *c;
    ASSERT_OK(dray_submit(rt, "t_fail", &seven, 1, NULL, &a));
    dray_value ba[2] = {dray_int(1), dray_value_of_ref(a)};
    ASSERT_OK(dray_submit(rt, "t_add", ba, 2, NULL, &b));
    dray_value ca[1] = {dray_value_of_ref(b)};
    ASSERT_OK(dray_submit(rt, "t_add", ca, 1, NULL, &c));
    dray_value err;
    ASSERT_STATUS(dray_get(rt, c, -1, &err), DRAY_EDEP);
    const char *msg = dray_last_error();
    ASSERT_CONTAINS(msg, "t_add: input 0 failed");
    ASSERT_CONTAINS(msg, "t_add: input 1 failed");
    ASSERT_CONTAINS(msg, "t_fail: boom 7");
    ASSERT_EQ(err.type, DRAY_T_ERROR);
    ASSERT_EQ(dray_error_arg_index(&err), 0);
    const dray_value *cause = dray_error_cause(&err);
    ASSERT_TRUE(cause != NULL);
    ASSERT_EQ(dray_error_arg_index(cause), 1);
    const dray_value *root = dray_error_cause(cause);
    ASSERT_TRUE(root != NULL);
    ASSERT_EQ(dray_error_status(root), DRAY_EINVAL);
    ASSERT_STREQ(dray_error_function(root), "t_fail");
    ASSERT_TRUE(dray_error_cause(root) == NULL);
    dray_value_release(&err);
    /* A type error in a task names the argument. */
    dray_value s;
    ASSERT_OK(dray_string_create("x", &s));
    dray_ref *d;
    ASSERT_OK(dray_submit(rt, "t_add", &s, 1, NULL, &d));
    ASSERT_STATUS(dray_get(rt, d, -1, NULL), DRAY_ETYPE);
    ASSERT_CONTAINS(dray_last_error(), "argument 0 is a string");
    dray_value_release(&s);
    dray_ref_release(a);
    dray_ref_release(b);
    dray_ref_release(c);
    dray_ref_release(d);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(failed_chain_100k_does_not_overflow)
{
    dray_runtime *rt = start(2);
    dray_value z = dray_int(0);
    dray_ref *prev;
    ASSERT_OK(dray_submit(rt, "t_fail", &z, 1, NULL, &prev));
    for (int i = 0; i < 100000; i++) {
        dray_value args[2] = {dray_value_of_ref(prev), dray_int(1)};
        dray_ref *next;
        ASSERT_OK(dray_submit(rt, "t_add", args, 2, NULL, &next));
        dray_ref_release(prev);
        prev = next;
    }
    ASSERT_STATUS(dray_get(rt, prev, -1, NULL), DRAY_EDEP);
    ASSERT_CONTAINS(dray_last_error(), "more");
    ASSERT_CONTAINS(dray_last_error(), "t_fail: boom 0");
    dray_ref_release(prev);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(timeouts_and_wait)
{
    dray_runtime *rt = start(2);
    dray_value ms = dray_int(300), fast = dray_int(0);
    dray_ref *slow, *quick;
    ASSERT_OK(dray_submit(rt, "t_sleep_ms", &ms, 1, NULL, &slow));
    ASSERT_OK(dray_submit(rt, "t_sleep_ms", &fast, 1, NULL, &quick));
    dray_value v;
    ASSERT_STATUS(dray_get(rt, slow, 10, &v), DRAY_ETIMEDOUT);
    dray_ref *both[2] = {slow, quick};
    bool ready[2];
    size_t count;
    ASSERT_OK(dray_wait(rt, both, 2, 1, -1, ready, &count));
    ASSERT_TRUE(ready[1]);
    ASSERT_STATUS(dray_wait(rt, both, 2, 2, 5, ready, &count), DRAY_ETIMEDOUT);
    ASSERT_EQ(count, 1);
    ASSERT_OK(dray_wait(rt, both, 2, 2, -1, ready, &count));
    ASSERT_EQ(count, 2);
    ASSERT_OK(dray_get(rt, slow, 0, &v));
    ASSERT_EQ(v.u.i, 300);
    dray_ref_release(slow);
    dray_ref_release(quick);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(cancel)
{
    dray_runtime *rt = start(1);
    dray_value ms = dray_int(100);
    dray_ref *blocker, *victim, *child;
    ASSERT_OK(dray_submit(rt, "t_sleep_ms", &ms, 1, NULL, &blocker));
    dray_value va[2] = {dray_value_of_ref(blocker), dray_int(1)};
    ASSERT_OK(dray_submit(rt, "t_add", va, 2, NULL, &victim));
    dray_value ca[1] = {dray_value_of_ref(victim)};
    ASSERT_OK(dray_submit(rt, "t_add", ca, 1, NULL, &child));
    ASSERT_OK(dray_cancel(rt, victim));
    ASSERT_STATUS(dray_get(rt, victim, -1, NULL), DRAY_ECANCELED);
    ASSERT_STATUS(dray_get(rt, child, -1, NULL), DRAY_ECANCELED);
    ASSERT_OK(dray_get(rt, blocker, -1, NULL));
    dray_ref_release(blocker);
    dray_ref_release(victim);
    dray_ref_release(child);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(shutdown_with_pending_work)
{
    for (int mode = 0; mode < 2; mode++) {
        dray_runtime *rt = start(2);
        dray_value ms = dray_int(50);
        dray_ref *slow;
        ASSERT_OK(dray_submit(rt, "t_sleep_ms", &ms, 1, NULL, &slow));
        dray_ref *last = NULL;
        for (int i = 0; i < 10000; i++) {
            dray_value a[2] = {dray_value_of_ref(slow), dray_int(i)};
            dray_ref *r;
            ASSERT_OK(dray_submit(rt, "t_add", a, 2, NULL, &r));
            dray_ref_release(last);
            last = r;
        }
        /* Refs still held at shutdown are freed by it (no leak under ASan). */
        ASSERT_OK(dray_shutdown(rt, mode ? DRAY_SHUTDOWN_CANCEL : DRAY_SHUTDOWN_DRAIN));
    }
}

TEST(refcount_no_growth)
{
    dray_runtime *rt = start(2);
    dray_value payload;
    ASSERT_OK(dray_bytes_create("0123456789abcdef", 16, &payload));
    for (int i = 0; i < 1000000; i++) {
        dray_ref *r;
        ASSERT_OK(dray_put(rt, &payload, &r));
        dray_value v;
        ASSERT_OK(dray_get(rt, r, 0, &v));
        ASSERT_EQ(v.u.blob, payload.u.blob);
        dray_value_release(&v);
        dray_ref_release(r);
    }
    dray_stats s;
    ASSERT_OK(dray_runtime_stats(rt, &s));
    ASSERT_EQ(s.objects_live, 0);
    dray_value_release(&payload);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

static int concurrent_running, concurrent_peak;
static pthread_mutex_t peak_lock = PTHREAD_MUTEX_INITIALIZER;
DRAY_FUNCTION(t_track)
{
    pthread_mutex_lock(&peak_lock);
    if (++concurrent_running > concurrent_peak)
        concurrent_peak = concurrent_running;
    pthread_mutex_unlock(&peak_lock);
    usleep(5000);
    pthread_mutex_lock(&peak_lock);
    concurrent_running--;
    pthread_mutex_unlock(&peak_lock);
    *result = dray_null();
    return DRAY_OK;
}

TEST(resources_limit_concurrency)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 4;
    dray_resource gpu = {"GPU", 1};
    cfg.resources = &gpu;
    cfg.n_resources = 1;
    dray_runtime *rt;
    ASSERT_OK(dray_init(&cfg, &rt));
    dray_task_opts o = {0};
    o.resources = &gpu;
    o.n_resources = 1;
    dray_ref *r[8];
    for (int i = 0; i < 8; i++)
        ASSERT_OK(dray_submit(rt, "t_track", NULL, 0, &o, &r[i]));
    ASSERT_OK(dray_wait(rt, r, 8, 8, -1, NULL, NULL));
    ASSERT_EQ(concurrent_peak, 1);
    for (int i = 0; i < 8; i++)
        dray_ref_release(r[i]);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

static int flaky_calls;
DRAY_FUNCTION(t_flaky)
{
    if (__atomic_add_fetch(&flaky_calls, 1, __ATOMIC_RELAXED) < 3)
        return dray_ctx_fail(ctx, DRAY_EIO, "transient");
    *result = dray_int(flaky_calls);
    return DRAY_OK;
}

TEST(retries)
{
    dray_runtime *rt = start(2);
    dray_task_opts o = {0};
    o.max_retries = 5;
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, "t_flaky", NULL, 0, &o, &r));
    dray_value v;
    ASSERT_OK(dray_get(rt, r, -1, &v));
    ASSERT_EQ(v.u.i, 3);
    dray_stats s;
    ASSERT_OK(dray_runtime_stats(rt, &s));
    ASSERT_EQ(s.tasks_retried, 2);
    dray_ref_release(r);
    flaky_calls = -10;
    o.max_retries = 1;
    ASSERT_OK(dray_submit(rt, "t_flaky", NULL, 0, &o, &r));
    ASSERT_STATUS(dray_get(rt, r, -1, NULL), DRAY_EIO);
    dray_ref_release(r);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

static void *submitter(void *arg)
{
    dray_runtime *rt = arg;
    int64_t sum = 0;
    for (int i = 0; i < 20000; i++) {
        dray_value a[2] = {dray_int(i), dray_int(0)};
        dray_ref *r;
        if (dray_submit(rt, "t_add", a, 2, NULL, &r))
            abort();
        dray_value v;
        if (dray_get(rt, r, -1, &v))
            abort();
        sum += v.u.i;
        dray_ref_release(r);
    }
    return (void *)(intptr_t)(sum == 20000LL * 19999 / 2);
}

TEST(many_submitting_threads)
{
    dray_runtime *rt = start(2);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, submitter, rt);
    for (int i = 0; i < 4; i++) {
        void *ok;
        pthread_join(t[i], &ok);
        ASSERT_TRUE(ok != NULL);
    }
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

RUN_TESTS(T_(submit_get), T_(unknown_function_and_bad_args), T_(dependencies_and_put),
          T_(deep_chain_100k), T_(million_tasks), T_(nested_submission),
          T_(error_propagation_three_levels), T_(failed_chain_100k_does_not_overflow),
          T_(timeouts_and_wait), T_(cancel), T_(shutdown_with_pending_work),
          T_(refcount_no_growth), T_(resources_limit_concurrency), T_(retries),
          T_(many_submitting_threads))
