/* Refs at any depth inside lists and maps on a cluster (head + 2 worker processes on 127.0.0.1):
 * passed to tasks, returned by tasks, passed to actor constructors and calls and returned by actor
 * calls, failed and still pending ones included. One program runs on the embedded runtime and on
 * the cluster; each of its answers must equal the embedded runtime's and a hand-written one. (The
 * first program, refs in lists only, checks sums against closed forms.) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dray/cluster.h"
#include "dray/core.h"
#include "test.h"
#include "cluster_fixture.h"
#include "cluster_tasks.h"

/* ==== Describing a value (the answers compared) ==== */

typedef struct sbuf {
    char s[8192];
    size_t n;
} sbuf;

static void add(sbuf *b, const char *fmt, ...)
{
    if (b->n >= sizeof b->s)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, sizeof b->s - b->n, fmt, ap);
    va_end(ap);
    b->n += k > 0 ? (size_t)k : 0;
    if (b->n >= sizeof b->s)
        b->n = sizeof b->s - 1;
}

/* Ints as they are, strings in quotes, bytes as b<length>:<sum of bytes>, [lists], {key:maps} in
 * order, a ref as R(its value) or E(status:error chain) when it failed (dray_get on rt); anything
 * else (an object handle that reached a task unresolved) as ?<type>. */
static void describe(dray_runtime *rt, const dray_value *v, sbuf *b)
{
    switch (v->type) {
    case DRAY_T_NULL:
        add(b, "nil");
        break;
    case DRAY_T_INT:
        add(b, "%lld", (long long)v->u.i);
        break;
    case DRAY_T_STRING:
        add(b, "'%s'", dray_string_cstr(v));
        break;
    case DRAY_T_BYTES: {
        size_t n;
        const uint8_t *p = dray_bytes_data(v, &n);
        int64_t s = 0;
        for (size_t i = 0; i < n; i++)
            s += p[i];
        add(b, "b%zu:%lld", n, (long long)s);
        break;
    }
    case DRAY_T_LIST:
        add(b, "[");
        for (size_t i = 0; i < dray_list_len(v); i++) {
            add(b, i ? "," : "");
            describe(rt, dray_list_get(v, i), b);
        }
        add(b, "]");
        break;
    case DRAY_T_MAP:
        add(b, "{");
        for (size_t i = 0; i < dray_map_len(v); i++) {
            add(b, "%s%s:", i ? "," : "", dray_map_key_at(v, i));
            describe(rt, dray_map_value_at(v, i), b);
        }
        add(b, "}");
        break;
    case DRAY_T_REF: {
        dray_value x = dray_null();
        dray_status st = dray_get(rt, v->u.ref, 30000, &x);
        if (st == DRAY_ETIMEDOUT) {
            add(b, "T");
        } else if (st) {
            char chain[512];
            dray_error_format(&x, chain, sizeof chain);
            add(b, "E(%d:%s)", (int)st, chain);
        } else {
            add(b, "R(");
            describe(rt, &x, b);
            add(b, ")");
        }
        dray_value_release(&x);
        break;
    }
    default:
        add(b, "?%s", dray_type_name((dray_type)v->type));
    }
}

/* ==== Task functions and an actor (the worker processes are this executable) ==== */

/* The description of args[0], made where the task runs. */
DRAY_FUNCTION(nr_describe)
{
    sbuf b = {.n = 0};
    describe(dray_ctx_runtime(ctx), &args[0], &b);
    return dray_string_create(b.s, result);
}

DRAY_FUNCTION(nr_fail)
{
    return dray_ctx_fail(ctx, DRAY_ETASK, "nr_fail %lld", (long long)args[0].u.i);
}

/* ct_make_bytes after 300 ms (its ref is still pending when a container holding it is sent). */
DRAY_FUNCTION(nr_slow_bytes)
{
    ct_sleep_ms(300);
    void *p;
    dray_status st = dray_bytes_create_uninit((size_t)args[0].u.i, result, &p);
    for (int64_t i = 0; !st && i < args[0].u.i; i++)
        ((uint8_t *)p)[i] = (uint8_t)((i * 7 + 3) % 251);
    return st;
}

/* The value of the ref under key args[1] of map args[0]; a failed ref fails this task with its
 * error chain in the message. */
DRAY_FUNCTION(nr_get_key)
{
    const dray_value *v = dray_map_get(&args[0], dray_string_cstr(&args[1]));
    if (!v || v->type != DRAY_T_REF)
        return dray_ctx_fail(ctx, DRAY_EINVAL, "no ref under '%s'", dray_string_cstr(&args[1]));
    dray_status st = dray_get(dray_ctx_runtime(ctx), v->u.ref, 30000, result);
    if (st) {
        char chain[512];
        dray_error_format(result, chain, sizeof chain);
        dray_value_release(result);
        return dray_ctx_fail(ctx, st, "key '%s': %s", dray_string_cstr(&args[1]), chain);
    }
    return DRAY_OK;
}

static dray_ref *submit1(dray_runtime *rt, const char *fn, dray_value arg)
{
    dray_ref *r;
    ASSERT_OK(dray_submit(rt, fn, &arg, 1, NULL, &r));
    return r;
}

/* dray_put of v (taken). */
static dray_ref *put(dray_runtime *rt, dray_value v)
{
    dray_ref *r;
    ASSERT_OK(dray_put(rt, &v, &r));
    dray_value_release(&v);
    return r;
}

/* A value holding a count of its own on r (fresh refs are wrapped by dray_value_of_ref instead:
 * the value takes their count). */
static dray_value own_ref(dray_ref *r)
{
    dray_ref_retain(r);
    return dray_value_of_ref(r);
}

/* A map of n entries from keys and values; the values are taken (released here). */
static dray_value map_of(size_t n, const char *const *keys, dray_value *vals)
{
    dray_value m;
    ASSERT_OK(dray_map_create(keys, vals, n, &m));
    for (size_t i = 0; i < n; i++)
        dray_value_release(&vals[i]);
    return m;
}

/* A list of n values, taken. */
static dray_value list_of(size_t n, dray_value *vals)
{
    dray_value l;
    ASSERT_OK(dray_list_create(vals, n, &l));
    for (size_t i = 0; i < n; i++)
        dray_value_release(&vals[i]);
    return l;
}

/* Refs made on the runtime running it, returned in a map: {n: put(n), m: [put(bytes of n),
 * {k: put(2n)}], f: a failed task, t: a task making the bytes of n}. */
static dray_status wrap_map(dray_runtime *rt, int64_t n, dray_value *result)
{
    void *p;
    dray_value b;
    dray_status st = dray_bytes_create_uninit((size_t)n, &b, &p);
    if (st)
        return st;
    for (int64_t i = 0; i < n; i++)
        ((uint8_t *)p)[i] = (uint8_t)((i * 7 + 3) % 251);
    dray_ref *rn = put(rt, dray_int(n)), *rb = put(rt, b), *rk = put(rt, dray_int(2 * n));
    dray_ref *rf = submit1(rt, "nr_fail", dray_int(n)), *rt_ = submit1(rt, "ct_make_bytes",
                                                                       dray_int(n));
    const char *kk[] = {"k"}, *keys[] = {"n", "m", "f", "t"};
    dray_value k[1] = {dray_value_of_ref(rk)};
    dray_value m[2] = {dray_value_of_ref(rb), map_of(1, kk, k)};
    dray_value top[4] = {dray_value_of_ref(rn), list_of(2, m), dray_value_of_ref(rf),
                         dray_value_of_ref(rt_)};
    *result = map_of(4, keys, top);
    return DRAY_OK;
}

DRAY_FUNCTION(nr_wrap_map)
{
    return wrap_map(dray_ctx_runtime(ctx), args[0].u.i, result);
}

/* An actor keeping its constructor's argument and the last value given to `keep` (and so the refs
 * in them). */
typedef struct keeper {
    dray_value init, kept;
} keeper;

static dray_status keeper_init(dray_ctx *ctx, const dray_value *a, size_t n, void **state)
{
    (void)ctx;
    keeper *k = malloc(sizeof(*k));
    if (!k)
        return DRAY_ENOMEM;
    k->init = n ? dray_value_retain(&a[0]) : dray_null();
    k->kept = dray_null();
    *state = k;
    return DRAY_OK;
}
static void keeper_free(void *s)
{
    keeper *k = s;
    dray_value_release(&k->init);
    dray_value_release(&k->kept);
    free(k);
}
static dray_status keeper_keep(dray_ctx *ctx, void *s, const dray_value *a, size_t n,
                               dray_value *r)
{
    (void)ctx, (void)n;
    keeper *k = s;
    dray_value_release(&k->kept);
    k->kept = dray_value_retain(&a[0]);
    *r = dray_null();
    return DRAY_OK;
}
static int64_t nested_sum(dray_runtime *rt, const dray_value *v);

/* The sum of the kept value (nested_sum). */
static dray_status keeper_sum(dray_ctx *ctx, void *s, const dray_value *a, size_t n,
                              dray_value *r)
{
    (void)a, (void)n;
    *r = dray_int(nested_sum(dray_ctx_runtime(ctx), &((keeper *)s)->kept));
    return DRAY_OK;
}

/* "<description of the constructor's argument>|<description of the kept value>". */
static dray_status keeper_describe(dray_ctx *ctx, void *s, const dray_value *a, size_t n,
                                   dray_value *r)
{
    (void)a, (void)n;
    keeper *k = s;
    sbuf b = {.n = 0};
    describe(dray_ctx_runtime(ctx), &k->init, &b);
    add(&b, "|");
    describe(dray_ctx_runtime(ctx), &k->kept, &b);
    return dray_string_create(b.s, r);
}
/* Returns refs made on the actor's runtime: {p: put(n), l: [a task still running when the call
 * returns (nr_slow_bytes n)], f: a failed task}. */
static dray_status keeper_wrap(dray_ctx *ctx, void *s, const dray_value *a, size_t n,
                               dray_value *r)
{
    (void)s, (void)n;
    dray_runtime *rt = dray_ctx_runtime(ctx);
    int64_t x = a[0].u.i;
    const char *keys[] = {"p", "l", "f"};
    dray_value slow[1] = {dray_value_of_ref(submit1(rt, "nr_slow_bytes", dray_int(x)))};
    dray_value top[3] = {dray_value_of_ref(put(rt, dray_int(x))), list_of(1, slow),
                         dray_value_of_ref(submit1(rt, "nr_fail", dray_int(x)))};
    *r = map_of(3, keys, top);
    return DRAY_OK;
}
DRAY_ACTOR_CLASS(NrKeeper, keeper_init, keeper_free, {"keep", keeper_keep}, {"sum", keeper_sum},
                 {"describe", keeper_describe}, {"wrap", keeper_wrap})

/* ==== The program ==== */

enum { CASES = 9, DEEP = 40 };

typedef struct answers {
    char s[CASES][8192];
} answers;

/* The description of ref r's outcome (r released). */
static void describe_ref(dray_runtime *rt, dray_ref *r, char *out)
{
    sbuf b = {.n = 0};
    dray_value v = dray_value_of_ref(r);
    describe(rt, &v, &b);
    dray_ref_release(r);
    snprintf(out, 8192, "%s", b.s);
}

/* The string result of r (released). */
static void get_string(dray_runtime *rt, dray_ref *r, char *out)
{
    dray_value v;
    ASSERT_OK(dray_get(rt, r, 30000, &v));
    ASSERT_EQ(v.type, DRAY_T_STRING);
    snprintf(out, 8192, "%s", dray_string_cstr(&v));
    dray_value_release(&v);
    dray_ref_release(r);
}

/* A value DEEP levels deep (alternately a map {d: ...} and a one-item list) holding a ref to 7 at
 * the bottom. */
static dray_value deep_value(dray_runtime *rt)
{
    dray_value v = dray_value_of_ref(put(rt, dray_int(7)));
    const char *d[] = {"d"};
    for (int i = 0; i < DEEP; i++)
        v = i % 2 ? list_of(1, &v) : map_of(1, d, &v);
    return v;
}

/* The same program on any runtime; answers in `out`. */
static void program(dray_runtime *rt, answers *out)
{
    /* 0: a map argument holding refs at several depths: a stored 1 MB object, a small result, a put
     * value (twice), a failed task and a task still running at submit. */
    dray_ref *big = submit1(rt, "ct_make_bytes", dray_int(1 << 20));
    dray_ref *small = submit1(rt, "ct_make_bytes", dray_int(100));
    dray_ref *c = put(rt, dray_int(42));
    dray_ref *bad = submit1(rt, "nr_fail", dray_int(7));
    ASSERT_OK(dray_wait(rt, &big, 1, 1, 30000, NULL, NULL));
    dray_ref *late = submit1(rt, "nr_slow_bytes", dray_int(300000));
    const char *xk[] = {"x"}, *ck[] = {"c", "deep"}, *mk[] = {"big", "inner", "bad", "late", "n"};
    dray_value xs_[2] = {own_ref(c), dray_null()};
    dray_string_create("s", &xs_[1]);
    dray_value x[1] = {list_of(2, xs_)};
    dray_value deep1[1] = {map_of(1, xk, x)};
    dray_value deep2[1] = {list_of(1, deep1)};
    dray_value cm[2] = {own_ref(c), list_of(1, deep2)};
    dray_value inner[2] = {own_ref(small), map_of(2, ck, cm)};
    dray_value top[5] = {own_ref(big), list_of(2, inner), own_ref(bad), own_ref(late),
                         dray_int(5)};
    dray_value m = map_of(5, mk, top);
    get_string(rt, submit1(rt, "nr_describe", m), out->s[0]);

    /* 1, 2: a failed ref and a good one inside a map, read by a task with dray_get. */
    dray_value args[2] = {m, dray_null()};
    dray_ref *r;
    dray_string_create("bad", &args[1]);
    ASSERT_OK(dray_submit(rt, "nr_get_key", args, 2, NULL, &r));
    describe_ref(rt, r, out->s[1]);
    dray_value_release(&args[1]);
    dray_string_create("late", &args[1]);
    ASSERT_OK(dray_submit(rt, "nr_get_key", args, 2, NULL, &r));
    describe_ref(rt, r, out->s[2]);
    dray_value_release(&args[1]);

    /* 3, 4, 5: maps of refs returned by tasks, small (inline) and large (a stored object), the
     * large one then passed on to another task as it is. */
    describe_ref(rt, submit1(rt, "nr_wrap_map", dray_int(50)), out->s[3]);
    dray_ref *w = submit1(rt, "nr_wrap_map", dray_int(300000));
    dray_value wv;
    ASSERT_OK(dray_get(rt, w, 30000, &wv));
    ASSERT_EQ(wv.type, DRAY_T_MAP);
    ASSERT_EQ(dray_map_get(&wv, "n")->type, DRAY_T_REF);
    dray_ref_release(w);
    sbuf b = {.n = 0};
    describe(rt, &wv, &b);
    snprintf(out->s[4], sizeof out->s[4], "%s", b.s);
    get_string(rt, submit1(rt, "nr_describe", wv), out->s[5]);
    dray_value_release(&wv);

    /* 6: an actor given refs in its constructor's map and in a call's map; the driver lets go of
     * its own refs and the call's map, so only the actor holds the 2 MB object. */
    dray_ref *o1 = submit1(rt, "ct_make_bytes", dray_int(2 << 20));
    const char *ik[] = {"init", "b"}, *ok[] = {"o"};
    dray_value il[1] = {own_ref(c)};
    dray_value iv[2] = {list_of(1, il), own_ref(small)};
    dray_value init = map_of(2, ik, iv);
    dray_actor *keeper;
    ASSERT_OK(dray_actor_create(rt, "NrKeeper", &init, 1, NULL, &keeper));
    dray_value_release(&init);
    dray_value ol[1] = {own_ref(o1)};
    dray_value ov[1] = {list_of(1, ol)};
    dray_value kept = map_of(1, ok, ov);
    dray_ref_release(o1);
    ASSERT_OK(dray_actor_call(rt, keeper, "keep", &kept, 1, &r));
    ASSERT_OK(dray_get(rt, r, 30000, NULL));
    dray_ref_release(r);
    dray_value_release(&kept);
    ct_sleep_ms(300);
    ASSERT_OK(dray_actor_call(rt, keeper, "describe", NULL, 0, &r));
    get_string(rt, r, out->s[6]);

    /* 7: an actor call returning a map of refs, one of them still running when the call returns
     * and one failed. */
    dray_value sixty = dray_int(60);
    ASSERT_OK(dray_actor_call(rt, keeper, "wrap", &sixty, 1, &r));
    describe_ref(rt, r, out->s[7]);
    dray_actor_release(keeper);

    /* 8: refs whose values are containers holding refs, and a ref DEEP levels down. */
    const char *zk[] = {"z"}, *wk[] = {"w"};
    dray_value z5[1] = {dray_value_of_ref(put(rt, dray_int(5)))};
    dray_value zv[1] = {list_of(1, z5)};
    dray_value z6[1] = {dray_value_of_ref(put(rt, dray_int(6)))};
    dray_value wl[1] = {dray_value_of_ref(put(rt, list_of(1, z6)))};
    dray_value l8[3] = {dray_value_of_ref(put(rt, map_of(1, zk, zv))), map_of(1, wk, wl),
                        deep_value(rt)};
    dray_value l = list_of(3, l8);
    get_string(rt, submit1(rt, "nr_describe", l), out->s[8]);
    dray_value_release(&l);

    dray_value_release(&m);
    dray_ref_release(big);
    dray_ref_release(small);
    dray_ref_release(c);
    dray_ref_release(bad);
    dray_ref_release(late);
}

/* The answers written by hand. */
static void expected(answers *e)
{
    char fail7[64], fail50[64], fail300k[64], fail60[64];
    snprintf(fail7, sizeof fail7, "E(%d:nr_fail: nr_fail 7)", (int)DRAY_ETASK);
    snprintf(fail50, sizeof fail50, "E(%d:nr_fail: nr_fail 50)", (int)DRAY_ETASK);
    snprintf(fail300k, sizeof fail300k, "E(%d:nr_fail: nr_fail 300000)", (int)DRAY_ETASK);
    snprintf(fail60, sizeof fail60, "E(%d:nr_fail: nr_fail 60)", (int)DRAY_ETASK);
    long long s1m = (long long)ct_made_sum(1 << 20), s100 = (long long)ct_made_sum(100),
              s300k = (long long)ct_made_sum(300000), s50 = (long long)ct_made_sum(50),
              s2m = (long long)ct_made_sum(2 << 20), s60 = (long long)ct_made_sum(60);
    snprintf(e->s[0], sizeof e->s[0],
             "{big:R(b1048576:%lld),inner:[R(b100:%lld),{c:R(42),deep:[[{x:[R(42),'s']}]]}],"
             "bad:%s,late:R(b300000:%lld),n:5}",
             s1m, s100, fail7, s300k);
    snprintf(e->s[1], sizeof e->s[1], "E(%d:nr_get_key: key 'bad': nr_fail: nr_fail 7)",
             (int)DRAY_ETASK);
    snprintf(e->s[2], sizeof e->s[2], "R(b300000:%lld)", s300k);
    snprintf(e->s[3], sizeof e->s[3], "R({n:R(50),m:[R(b50:%lld),{k:R(100)}],f:%s,t:R(b50:%lld)})",
             s50, fail50, s50);
    snprintf(e->s[4], sizeof e->s[4],
             "{n:R(300000),m:[R(b300000:%lld),{k:R(600000)}],f:%s,t:R(b300000:%lld)}", s300k,
             fail300k, s300k);
    snprintf(e->s[5], sizeof e->s[5], "%s", e->s[4]);
    snprintf(e->s[6], sizeof e->s[6], "{init:[R(42)],b:R(b100:%lld)}|{o:[R(b2097152:%lld)]}",
             s100, s2m);
    snprintf(e->s[7], sizeof e->s[7], "R({p:R(60),l:[R(b60:%lld)],f:%s})", s60, fail60);
    sbuf d = {.n = 0};
    add(&d, "[R({z:[R(5)]}),{w:R([R(6)])},");
    for (int i = DEEP - 1; i >= 0; i--)
        add(&d, i % 2 ? "[" : "{d:");
    add(&d, "R(7)");
    for (int i = 0; i < DEEP; i++)
        add(&d, i % 2 ? "]" : "}");
    add(&d, "]");
    memcpy(e->s[8], d.s, sizeof d.s);
}

/* ==== Tests ==== */

/* In a worker process dray_init never returns (it serves); here it is a local runtime. */
TEST(worker_main)
{
    dray_runtime *rt;
    ASSERT_OK(dray_init(NULL, &rt));
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
}

/* Every answer of the program on a head + 2 worker cluster equals the embedded runtime's and the
 * hand-written one; then no object is left in either node's store. */
TEST(refs_in_maps_and_lists_match_the_embedded_runtime)
{
    static answers local, remote, want;
    expected(&want);
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 2;
    cfg.address = "";
    cfg.progress = 0;
    dray_runtime *lrt;
    ASSERT_OK(dray_init(&cfg, &lrt));
    program(lrt, &local);
    ASSERT_OK(dray_shutdown(lrt, DRAY_SHUTDOWN_DRAIN));

    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    program(rt, &remote);
    for (int i = 0; i < CASES; i++) {
        fprintf(stderr, "case %d\n  want     %s\n  embedded %s\n  cluster  %s\n", i, want.s[i],
                local.s[i], remote.s[i]);
        ASSERT_STREQ(local.s[i], want.s[i]);
        ASSERT_STREQ(remote.s[i], want.s[i]);
    }
    for (int w = 0; w < 2; w++)
        ct_wait_store_stat(&f, f.workers[w], "objects", 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

/* ==== Refs in lists: the first program (sums instead of descriptions) ==== */

/* Sum of a value: ints as they are, bytes by their bytes, lists item by item, refs by what
 * dray_get gives (a failed ref adds -1000 times its status code). */
static int64_t nested_sum(dray_runtime *rt, const dray_value *v)
{
    if (v->type == DRAY_T_INT)
        return v->u.i;
    if (v->type == DRAY_T_BYTES) {
        size_t n;
        const uint8_t *p = dray_bytes_data(v, &n);
        int64_t s = 0;
        for (size_t i = 0; i < n; i++)
            s += p[i];
        return s;
    }
    if (v->type == DRAY_T_LIST) {
        int64_t s = 0;
        for (size_t i = 0; i < dray_list_len(v); i++)
            s += nested_sum(rt, dray_list_get(v, i));
        return s;
    }
    if (v->type == DRAY_T_REF) {
        dray_value x;
        dray_status st = dray_get(rt, v->u.ref, 30000, &x);
        int64_t s = st ? -1000 * (int64_t)-st : nested_sum(rt, &x);
        dray_value_release(&x);
        return s;
    }
    return 1000000; /* anything else (an unresolved handle) shows up in the sums */
}

DRAY_FUNCTION(nr_sum)
{
    *result = dray_int(nested_sum(dray_ctx_runtime(ctx), &args[0]));
    return DRAY_OK;
}

/* Returns [ref(n), ref(bytes of n), [ref(2n), 9]] made on the runtime it runs on. */
DRAY_FUNCTION(nr_wrap)
{
    dray_runtime *rt = dray_ctx_runtime(ctx);
    int64_t n = args[0].u.i;
    dray_value b;
    void *p;
    dray_status st = dray_bytes_create_uninit((size_t)n, &b, &p);
    if (st)
        return st;
    for (int64_t i = 0; i < n; i++)
        ((uint8_t *)p)[i] = (uint8_t)((i * 7 + 3) % 251);
    dray_value vn = dray_int(n), v2 = dray_int(2 * n);
    dray_ref *r[3];
    ASSERT_OK(dray_put(rt, &vn, &r[0]));
    ASSERT_OK(dray_put(rt, &b, &r[1]));
    ASSERT_OK(dray_put(rt, &v2, &r[2]));
    dray_value_release(&b);
    dray_value inner[2] = {dray_value_of_ref(r[2]), dray_int(9)}, items[3];
    items[0] = dray_value_of_ref(r[0]);
    items[1] = dray_value_of_ref(r[1]);
    st = dray_list_create(inner, 2, &items[2]);
    if (!st)
        st = dray_list_create(items, 3, result);
    dray_value_release(&items[2]);
    for (int i = 0; i < 3; i++)
        dray_ref_release(r[i]);
    return st;
}

static int64_t wait_int(dray_runtime *rt, dray_ref *r)
{
    dray_value v;
    ASSERT_OK(dray_get(rt, r, 30000, &v));
    ASSERT_EQ(v.type, DRAY_T_INT);
    dray_ref_release(r);
    return v.u.i;
}

enum { NESTED_RESULTS = 7 };

/* The same program on any runtime: refs (a stored 1 MB object, a small result, a put value, a
 * failed task, a pending task) inside nested lists passed to tasks and to an actor, refs returned
 * inside lists (small and large results), and objects kept alive only by lists. */
static void nested_program(dray_runtime *rt, int64_t out[NESTED_RESULTS])
{
    dray_value big = dray_int(1 << 20), small = dray_int(100), seven = dray_int(7),
               v42 = dray_int(42);
    dray_ref *a = submit1(rt, "ct_make_bytes", big);
    dray_ref *b = submit1(rt, "ct_make_bytes", small);
    dray_ref *f = submit1(rt, "nr_fail", seven), *c;
    ASSERT_OK(dray_put(rt, &v42, &c));
    ASSERT_OK(dray_wait(rt, &a, 1, 1, 30000, NULL, NULL));
    dray_value inner[2] = {dray_value_of_ref(b), dray_value_of_ref(c)}, items[4], list;
    items[0] = dray_value_of_ref(a);
    items[1] = dray_int(5);
    ASSERT_OK(dray_list_create(inner, 2, &items[2]));
    items[3] = dray_value_of_ref(f);
    ASSERT_OK(dray_list_create(items, 4, &list));
    dray_value_release(&items[2]);
    out[0] = wait_int(rt, submit1(rt, "nr_sum", list));
    /* A ref still pending when the list is submitted. */
    dray_ref *g = submit1(rt, "nr_slow_bytes", dray_int(300000));
    dray_value gl_items[2] = {dray_value_of_ref(g), dray_int(1)}, gl;
    ASSERT_OK(dray_list_create(gl_items, 2, &gl));
    out[1] = wait_int(rt, submit1(rt, "nr_sum", gl));
    dray_value_release(&gl);
    /* Refs returned inside a list, small (inline) and large (the list is a stored object). */
    for (int k = 0; k < 2; k++) {
        dray_ref *w = submit1(rt, "nr_wrap", dray_int(k ? 300000 : 50));
        dray_value wv;
        ASSERT_OK(dray_get(rt, w, 30000, &wv));
        ASSERT_EQ(wv.type, DRAY_T_LIST);
        ASSERT_EQ(dray_list_get(&wv, 0)->type, DRAY_T_REF);
        out[2 + k] = nested_sum(rt, &wv);
        /* and passed on to another task as they are */
        if (k)
            out[2 + k] += 7 * wait_int(rt, submit1(rt, "nr_sum", wv));
        dray_value_release(&wv);
        dray_ref_release(w);
    }
    /* Objects only lists hold: the driver's refs go, the lists keep them. */
    dray_ref *o1 = submit1(rt, "ct_make_bytes", dray_int(2 << 20));
    dray_ref *o2 = submit1(rt, "ct_make_bytes", dray_int(3 << 20));
    dray_value l1, l2, x1 = dray_value_of_ref(o1), x2 = dray_value_of_ref(o2);
    ASSERT_OK(dray_list_create(&x1, 1, &l1));
    ASSERT_OK(dray_list_create(&x2, 1, &l2));
    dray_ref_release(o1);
    dray_ref_release(o2);
    dray_actor *keeper;
    ASSERT_OK(dray_actor_create(rt, "NrKeeper", NULL, 0, NULL, &keeper));
    dray_ref *kr;
    ASSERT_OK(dray_actor_call(rt, keeper, "keep", &l1, 1, &kr));
    ASSERT_OK(dray_get(rt, kr, 30000, NULL));
    dray_ref_release(kr);
    dray_value_release(&l1); /* now only the actor's list holds o1 */
    ct_sleep_ms(300);
    ASSERT_OK(dray_actor_call(rt, keeper, "sum", NULL, 0, &kr));
    out[4] = wait_int(rt, kr);
    ct_sleep_ms(300);
    out[5] = wait_int(rt, submit1(rt, "nr_sum", l2)); /* o2: only the driver's list l2 */
    dray_value_release(&l2);
    dray_actor_release(keeper);
    out[6] = wait_int(rt, submit1(rt, "nr_sum", list)); /* the first list, used again */
    dray_value_release(&list);
    dray_ref_release(a);
    dray_ref_release(b);
    dray_ref_release(c);
    dray_ref_release(f);
    dray_ref_release(g);
}

/* Refs nested in lists give the embedded runtime's results on a cluster (each also checked against
 * its closed form), and the objects they point to are freed once no list holds them. */
TEST(refs_in_lists_match_the_embedded_runtime)
{
    int64_t local[NESTED_RESULTS], remote[NESTED_RESULTS];
    dray_runtime *lrt;
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 2;
    cfg.address = "";
    cfg.progress = 0;
    ASSERT_OK(dray_init(&cfg, &lrt));
    nested_program(lrt, local);
    ASSERT_OK(dray_shutdown(lrt, DRAY_SHUTDOWN_DRAIN));
    test_cluster f;
    test_cluster_start(&f, 2);
    dray_runtime *rt = test_cluster_driver(&f);
    nested_program(rt, remote);
    for (int i = 0; i < NESTED_RESULTS; i++) {
        fprintf(stderr, "result %d: embedded %lld, cluster %lld\n", i, (long long)local[i],
                (long long)remote[i]);
        ASSERT_EQ(remote[i], local[i]);
    }
    /* Closed forms: 1 MB + 5 + 100 bytes + 42 + a failed ref (DRAY_ETASK). */
    ASSERT_EQ(local[0],
              ct_made_sum(1 << 20) + 5 + ct_made_sum(100) + 42 - 1000 * (int64_t)-DRAY_ETASK);
    ASSERT_EQ(local[1], ct_made_sum(300000) + 1);
    ASSERT_EQ(local[2], 50 + ct_made_sum(50) + 100 + 9);
    ASSERT_EQ(local[3], 8 * (300000 + ct_made_sum(300000) + 600000 + 9));
    ASSERT_EQ(local[4], ct_made_sum(2 << 20));
    ASSERT_EQ(local[5], ct_made_sum(3 << 20));
    ASSERT_EQ(local[6], local[0]);
    /* Every object is gone from the nodes once nothing holds it. */
    for (int w = 0; w < 2; w++)
        ct_wait_store_stat(&f, f.workers[w], "objects", 0);
    ASSERT_OK(dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN));
    test_cluster_stop(&f);
}

RUN_TESTS(T_(worker_main), T_(refs_in_lists_match_the_embedded_runtime),
          T_(refs_in_maps_and_lists_match_the_embedded_runtime))
