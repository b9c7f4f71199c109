/* The Ray pattern on dray: remote functions returning refs, refs passed to other tasks, dray_wait like
 * ray.wait, and a Counter actor whose calls run in order. Prints checked results. */
#include <stdio.h>
#include <stdlib.h>

#include "dray/dray.h"

/* square(x) = x * x, like @ray.remote def square(x). */
DRAY_FUNCTION(square)
{
    *result = dray_int(args[0].u.i * args[0].u.i);
    return DRAY_OK;
}

/* total(xs...) sums its arguments (refs arrive as values). */
DRAY_FUNCTION(total)
{
    int64_t s = 0;
    for (size_t i = 0; i < nargs; i++)
        s += args[i].u.i;
    *result = dray_int(s);
    return DRAY_OK;
}

static dray_status counter_init(dray_ctx *ctx, const dray_value *args, size_t nargs, void **state)
{
    (void)ctx, (void)args, (void)nargs;
    int64_t *n = calloc(1, sizeof *n);
    *state = n;
    return n ? DRAY_OK : DRAY_ENOMEM;
}

static void counter_free(void *state)
{
    free(state);
}

static dray_status counter_increment(dray_ctx *ctx, void *state, const dray_value *args,
                                     size_t nargs, dray_value *result)
{
    (void)ctx, (void)args, (void)nargs;
    *result = dray_int(++*(int64_t *)state);
    return DRAY_OK;
}

DRAY_ACTOR_CLASS(Counter, counter_init, counter_free, {"increment", counter_increment})

#define CHECK(call)                                                                                \
    do {                                                                                           \
        if ((call) != DRAY_OK) {                                                                   \
            fprintf(stderr, "remote: %s: %s\n", #call, dray_last_error());                         \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(void)
{
    dray_runtime *rt;
    CHECK(dray_init(NULL, &rt));
    /* futures = [square.remote(i) for i in range(100)] */
    enum { N = 100 };
    dray_ref *futures[N];
    dray_value vals[N];
    for (int i = 0; i < N; i++) {
        dray_value x = dray_int(i);
        CHECK(dray_submit(rt, "square", &x, 1, NULL, &futures[i]));
        vals[i] = dray_value_of_ref(futures[i]);
    }
    /* ready, not_ready = ray.wait(futures, num_returns=10) */
    size_t ready_count;
    CHECK(dray_wait(rt, futures, N, 10, -1, NULL, &ready_count));
    /* sum = total.remote(*futures): refs passed straight to another task */
    dray_ref *sum;
    CHECK(dray_submit(rt, "total", vals, N, NULL, &sum));
    dray_value s;
    CHECK(dray_get(rt, sum, -1, &s));
    int64_t want = (int64_t)(N - 1) * N * (2 * N - 1) / 6;
    printf("remote: sum of squares 0..%d = %lld (expected %lld), %zu ready at first wait\n", N - 1,
           (long long)s.u.i, (long long)want, ready_count);

    /* counter = Counter.remote(); [counter.increment.remote() for _ in range(1000)] */
    dray_actor *counter;
    CHECK(dray_actor_create(rt, "Counter", NULL, 0, NULL, &counter));
    int inc = dray_actor_method_index(counter, "increment");
    dray_ref *last = NULL;
    for (int i = 0; i < 1000; i++) {
        dray_ref *r;
        CHECK(dray_actor_call_m(rt, counter, inc, NULL, 0, &r));
        dray_ref_release(last);
        last = r;
    }
    dray_value c;
    CHECK(dray_get(rt, last, -1, &c));
    printf("remote: counter after 1000 increments = %lld\n", (long long)c.u.i);

    dray_ref_release(last);
    dray_actor_release(counter);
    dray_ref_release(sum);
    for (int i = 0; i < N; i++)
        dray_ref_release(futures[i]);
    CHECK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    return s.u.i == want && c.u.i == 1000 ? 0 : 1;
}
