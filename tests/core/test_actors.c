/* Actors: ordered calls per caller under concurrent callers, state surviving a failing method,
 * constructor errors, max_concurrency, kill and restart, ref arguments. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "dray/dray.h"
#include "test.h"

typedef struct counter {
    int64_t value;
    int64_t last_seen[8]; /* per caller: the last sequence number, to check ordering */
    int order_errors;
} counter;

static dray_status counter_init(dray_ctx *ctx, const dray_value *args, size_t nargs, void **state)
{
    (void)ctx;
    if (nargs && args[0].type != DRAY_T_INT)
        return dray_set_error(DRAY_ETYPE, "Counter: start must be an int");
    counter *c = calloc(1, sizeof *c);
    if (!c)
        return DRAY_ENOMEM;
    c->value = nargs ? args[0].u.i : 0;
    for (int i = 0; i < 8; i++)
        c->last_seen[i] = -1;
    *state = c;
    return DRAY_OK;
}

static void counter_free(void *state)
{
    free(state);
}

static dray_status counter_add(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                               dray_value *result)
{
    (void)ctx;
    counter *c = state;
    int64_t by = nargs ? args[0].u.i : 1;
    if (nargs >= 3) { /* (by, caller, seq): check per-caller order */
        int64_t caller = args[1].u.i, seq = args[2].u.i;
        if (seq != c->last_seen[caller] + 1)
            c->order_errors++;
        c->last_seen[caller] = seq;
    }
    c->value += by;
    *result = dray_int(c->value);
    return DRAY_OK;
}

static dray_status counter_get(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                               dray_value *result)
{
    (void)ctx, (void)args, (void)nargs;
    *result = dray_int(((counter *)state)->value);
    return DRAY_OK;
}

static dray_status counter_errors(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                                  dray_value *result)
{
    (void)ctx, (void)args, (void)nargs;
    *result = dray_int(((counter *)state)->order_errors);
    return DRAY_OK;
}

static dray_status counter_fail(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                                dray_value *result)
{
    (void)state, (void)args, (void)nargs, (void)result;
    return dray_ctx_fail(ctx, DRAY_EINVAL, "refusing");
}

static dray_status counter_crash(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                                 dray_value *result)
{
    (void)state, (void)args, (void)nargs, (void)result;
    return dray_ctx_fail(ctx, DRAY_EFATAL, "segfault simulated");
}

static _Atomic int slow_running, slow_peak;
static dray_status counter_slow(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                                dray_value *result)
{
    (void)ctx, (void)state, (void)args, (void)nargs;
    int now = atomic_fetch_add(&slow_running, 1) + 1;
    int peak = atomic_load(&slow_peak);
    while (now > peak && !atomic_compare_exchange_weak(&slow_peak, &peak, now))
        ;
    usleep(20000);
    atomic_fetch_sub(&slow_running, 1);
    *result = dray_null();
    return DRAY_OK;
}

DRAY_ACTOR_CLASS(Counter, counter_init, counter_free, {"add", counter_add}, {"get", counter_get},
                 {"order_errors", counter_errors}, {"fail", counter_fail},
                 {"crash", counter_crash}, {"slow", counter_slow})

DRAY_FUNCTION(t_ten)
{
    *result = dray_int(10);
    return DRAY_OK;
}

static dray_runtime *start(int workers)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = workers;
    dray_runtime *rt;
    ASSERT_OK(dray_init(&cfg, &rt));
    return rt;
}

static int64_t get_int(dray_runtime *rt, dray_ref *r)
{
    dray_value v;
    ASSERT_OK(dray_get(rt, r, -1, &v));
    ASSERT_EQ(v.type, DRAY_T_INT);
    dray_ref_release(r);
    return v.u.i;
}

TEST(counter_basics)
{
    dray_runtime *rt = start(2);
    dray_actor *a;
    dray_value start_at = dray_int(100);
    ASSERT_OK(dray_actor_create(rt, "Counter", &start_at, 1, NULL, &a));
    ASSERT_OK(dray_actor_ready(rt, a, -1));
    dray_ref *r;
    for (int i = 0; i < 10; i++) {
        dray_value by = dray_int(i);
        ASSERT_OK(dray_actor_call(rt, a, "add", &by, 1, &r));
        ASSERT_EQ(get_int(rt, r), 100 + i * (i + 1) / 2);
    }
    ASSERT_STATUS(dray_actor_call(rt, a, "nope", NULL, 0, &r), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "nope");
    ASSERT_STATUS(dray_actor_create(rt, "NoSuchClass", NULL, 0, NULL, &a), DRAY_ENOTFOUND);
    dray_actor_release(a);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

typedef struct caller_arg {
    dray_runtime *rt;
    dray_actor *a;
    int id;
} caller_arg;

static void *caller(void *p)
{
    caller_arg *c = p;
    int m = dray_actor_method_index(c->a, "add");
    dray_ref *last = NULL;
    for (int i = 0; i < 20000; i++) {
        dray_value args[3] = {dray_int(1), dray_int(c->id), dray_int(i)};
        dray_ref *r;
        if (dray_actor_call_m(c->rt, c->a, m, args, 3, &r))
            abort();
        dray_ref_release(last);
        last = r;
    }
    dray_get(c->rt, last, -1, NULL);
    dray_ref_release(last);
    return NULL;
}

TEST(ordering_under_concurrent_callers)
{
    dray_runtime *rt = start(2);
    dray_actor *a;
    ASSERT_OK(dray_actor_create(rt, "Counter", NULL, 0, NULL, &a));
    pthread_t t[4];
    caller_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (caller_arg){rt, a, i};
        pthread_create(&t[i], NULL, caller, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    dray_ref *r;
    ASSERT_OK(dray_actor_call(rt, a, "get", NULL, 0, &r));
    ASSERT_EQ(get_int(rt, r), 4 * 20000);
    ASSERT_OK(dray_actor_call(rt, a, "order_errors", NULL, 0, &r));
    ASSERT_EQ(get_int(rt, r), 0);
    dray_actor_release(a);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(failure_keeps_state)
{
    dray_runtime *rt = start(2);
    dray_actor *a;
    ASSERT_OK(dray_actor_create(rt, "Counter", NULL, 0, NULL, &a));
    dray_ref *r;
    dray_value five = dray_int(5);
    ASSERT_OK(dray_actor_call(rt, a, "add", &five, 1, &r));
    dray_ref_release(r);
    ASSERT_OK(dray_actor_call(rt, a, "fail", NULL, 0, &r));
    ASSERT_STATUS(dray_get(rt, r, -1, NULL), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "Counter.fail: refusing");
    dray_ref_release(r);
    ASSERT_OK(dray_actor_call(rt, a, "get", NULL, 0, &r));
    ASSERT_EQ(get_int(rt, r), 5);
    dray_actor_release(a);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(constructor_error)
{
    dray_runtime *rt = start(2);
    dray_actor *a;
    dray_value bad;
    ASSERT_OK(dray_string_create("not an int", &bad));
    ASSERT_OK(dray_actor_create(rt, "Counter", &bad, 1, NULL, &a));
    dray_value_release(&bad);
    ASSERT_STATUS(dray_actor_ready(rt, a, -1), DRAY_ETYPE);
    dray_ref *r;
    ASSERT_OK(dray_actor_call(rt, a, "get", NULL, 0, &r));
    ASSERT_STATUS(dray_get(rt, r, -1, NULL), DRAY_EACTOR);
    ASSERT_CONTAINS(dray_last_error(), "start must be an int");
    dray_ref_release(r);
    dray_actor_release(a);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(ref_arguments_keep_order)
{
    dray_runtime *rt = start(2);
    dray_actor *a;
    ASSERT_OK(dray_actor_create(rt, "Counter", NULL, 0, NULL, &a));
    dray_ref *ten, *r1, *r2;
    ASSERT_OK(dray_submit(rt, "t_ten", NULL, 0, NULL, &ten));
    dray_value arg = dray_value_of_ref(ten);
    ASSERT_OK(dray_actor_call(rt, a, "add", &arg, 1, &r1));
    dray_value one = dray_int(1);
    ASSERT_OK(dray_actor_call(rt, a, "add", &one, 1, &r2));
    ASSERT_EQ(get_int(rt, r1), 10);
    ASSERT_EQ(get_int(rt, r2), 11);
    dray_ref_release(ten);
    dray_actor_release(a);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(max_concurrency)
{
    dray_runtime *rt = start(4);
    dray_actor *a;
    dray_actor_opts o = {0};
    o.max_concurrency = 3;
    ASSERT_OK(dray_actor_create(rt, "Counter", NULL, 0, &o, &a));
    dray_ref *r[9];
    for (int i = 0; i < 9; i++)
        ASSERT_OK(dray_actor_call(rt, a, "slow", NULL, 0, &r[i]));
    ASSERT_OK(dray_wait(rt, r, 9, 9, -1, NULL, NULL));
    ASSERT_EQ(atomic_load(&slow_peak), 3);
    for (int i = 0; i < 9; i++)
        dray_ref_release(r[i]);
    dray_actor_release(a);
    atomic_store(&slow_peak, 0);
    /* Default: one at a time. */
    ASSERT_OK(dray_actor_create(rt, "Counter", NULL, 0, NULL, &a));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(dray_actor_call(rt, a, "slow", NULL, 0, &r[i]));
    ASSERT_OK(dray_wait(rt, r, 4, 4, -1, NULL, NULL));
    ASSERT_EQ(atomic_load(&slow_peak), 1);
    for (int i = 0; i < 4; i++)
        dray_ref_release(r[i]);
    dray_actor_release(a);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(kill_and_restart)
{
    dray_runtime *rt = start(2);
    dray_actor *a;
    dray_actor_opts o = {0};
    o.max_restarts = 1;
    dray_value start_at = dray_int(7);
    ASSERT_OK(dray_actor_create(rt, "Counter", &start_at, 1, &o, &a));
    dray_ref *r;
    dray_value three = dray_int(3);
    ASSERT_OK(dray_actor_call(rt, a, "add", &three, 1, &r));
    ASSERT_EQ(get_int(rt, r), 10);
    /* A crash restarts the actor from its constructor arguments. */
    ASSERT_OK(dray_actor_call(rt, a, "crash", NULL, 0, &r));
    ASSERT_STATUS(dray_get(rt, r, -1, NULL), DRAY_EFATAL);
    dray_ref_release(r);
    ASSERT_OK(dray_actor_call(rt, a, "get", NULL, 0, &r));
    ASSERT_EQ(get_int(rt, r), 7);
    ASSERT_EQ(dray_actor_restarts(a), 1);
    /* No restarts left: killed for good, later calls fail. */
    ASSERT_OK(dray_actor_kill(rt, a, false));
    ASSERT_OK(dray_actor_call(rt, a, "get", NULL, 0, &r));
    ASSERT_STATUS(dray_get(rt, r, -1, NULL), DRAY_EACTOR);
    dray_ref_release(r);
    ASSERT_EQ(dray_actor_restarts(a), 1);
    dray_actor_release(a);
    /* Kill with no_restart on an actor that could restart. */
    ASSERT_OK(dray_actor_create(rt, "Counter", NULL, 0, &o, &a));
    ASSERT_OK(dray_actor_kill(rt, a, true));
    ASSERT_OK(dray_actor_call(rt, a, "get", NULL, 0, &r));
    ASSERT_STATUS(dray_get(rt, r, -1, NULL), DRAY_EACTOR);
    dray_ref_release(r);
    ASSERT_EQ(dray_actor_restarts(a), 0);
    dray_actor_release(a);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

TEST(actor_held_at_shutdown)
{
    dray_runtime *rt = start(2);
    dray_actor *a;
    ASSERT_OK(dray_actor_create(rt, "Counter", NULL, 0, NULL, &a));
    dray_ref *r;
    for (int i = 0; i < 1000; i++) {
        ASSERT_OK(dray_actor_call(rt, a, "add", NULL, 0, &r));
        dray_ref_release(r);
    }
    dray_stats s;
    ASSERT_OK(dray_runtime_stats(rt, &s));
    ASSERT_EQ(s.actors_live, 1);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN)); /* frees the actor (ASan checks) */
}

RUN_TESTS(T_(counter_basics), T_(ordering_under_concurrent_callers), T_(failure_keeps_state),
          T_(constructor_error), T_(ref_arguments_keep_order), T_(max_concurrency),
          T_(kill_and_restart), T_(actor_held_at_shutdown))
