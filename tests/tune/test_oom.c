/* Allocation failures: every allocation of the pure parts (spaces, variants, config bytes, ASHA,
 * HyperBand, median, PBT, TPE) is made to fail in turn; each call must then return DRAY_ENOMEM (or
 * succeed), never crash, and once everything is destroyed no allocation may be left. malloc is
 * interposed in this program (skipped under sanitizers, which own malloc). */
#include "test.h"
#include "dray/tune.h"
#include "tune/host.h"

#ifndef DRAY_SANITIZED
dray_status dray__tune_config_encode(const dray_tune_config *cfg, void **buf, size_t *len);
dray_status dray__tune_config_decode(const void *buf, size_t len, dray_tune_config **out);
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t a, size_t b);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static long fail_at = -1, calls, live;

static bool fail_now(void) { return fail_at >= 0 && ++calls == fail_at; }

void *malloc(size_t n)
{
    if (fail_now())
        return NULL;
    void *p = __libc_malloc(n);
    live += p != NULL;
    return p;
}

void *calloc(size_t a, size_t b)
{
    if (fail_now())
        return NULL;
    void *p = __libc_calloc(a, b);
    live += p != NULL;
    return p;
}

void *realloc(void *p, size_t n)
{
    if (fail_now())
        return NULL;
    void *q = __libc_realloc(p, n);
    live += !p && q;
    return q;
}

void free(void *p)
{
    live -= p != NULL;
    __libc_free(p);
}

#define OK_OR_NOMEM(call)                                                                          \
    do {                                                                                           \
        dray_status s_ = (call);                                                                   \
        if (s_ != DRAY_OK) {                                                                       \
            ASSERT_EQ(s_, DRAY_ENOMEM);                                                            \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static dray_status pick_two(const dray_tune_config *partial, dray_tune_rng *rng, void *user,
                            dray_tune_val *out)
{
    (void)partial, (void)rng, (void)user;
    *out = dray_tune_s("two");
    return DRAY_OK;
}

/* one scenario per function; each cleans up after itself whatever failed */
static void spaces(void)
{
    dray_tune_space *sp = NULL;
    dray_tune_searcher *bs = NULL, *tpe = NULL;
    dray_tune_config *c = NULL, *back = NULL;
    void *bytes = NULL;
    size_t len;
    dray_tune_val g[] = {dray_tune_s("a"), dray_tune_s("b")};
    OK_OR_NOMEM(dray_tune_space_create(&sp));
    OK_OR_NOMEM(dray_tune_space_grid(sp, "opt/name", g, 2));
    OK_OR_NOMEM(dray_tune_space_uniform(sp, "x", 0, 1));
    OK_OR_NOMEM(dray_tune_space_loguniform(sp, "lr", 1e-3, 1));
    OK_OR_NOMEM(dray_tune_space_choice(sp, "c", g, 2));
    OK_OR_NOMEM(dray_tune_space_sample_from(sp, "s", pick_two, NULL));
    OK_OR_NOMEM(dray_tune_searcher_create_basic(sp, 2, 1, &bs));
    for (int i = 0; i < 4; i++) {
        OK_OR_NOMEM(dray_tune_searcher_suggest(bs, i, &c));
        OK_OR_NOMEM(dray__tune_config_encode(c, &bytes, &len));
        OK_OR_NOMEM(dray__tune_config_decode(bytes, len, &back));
        ASSERT_TRUE(dray_tune_config_equal(c, back));
        dray_tune_config_destroy(back);
        back = NULL;
        free(bytes);
        bytes = NULL;
        dray_tune_config_destroy(c);
        c = NULL;
    }
out:
    free(bytes);
    dray_tune_config_destroy(back);
    dray_tune_config_destroy(c);
    dray_tune_searcher_destroy(tpe);
    dray_tune_searcher_destroy(bs);
    dray_tune_space_destroy(sp);
}

static void tpe_run(void)
{
    dray_tune_space *sp = NULL;
    dray_tune_searcher *tpe = NULL;
    dray_tune_config *c = NULL;
    dray_tune_result *r = NULL;
    dray_tune_val ch[] = {dray_tune_i(1), dray_tune_i(2), dray_tune_i(3)};
    dray_tune_tpe_opts o;
    dray_tune_tpe_opts_init(&o);
    o.metric = "loss";
    o.mode = DRAY_TUNE_MIN;
    o.num_samples = 14;
    o.n_startup = 4;
    OK_OR_NOMEM(dray_tune_space_create(&sp));
    OK_OR_NOMEM(dray_tune_space_uniform(sp, "x", 0, 1));
    OK_OR_NOMEM(dray_tune_space_choice(sp, "k", ch, 3));
    OK_OR_NOMEM(dray_tune_searcher_create_tpe(sp, &o, &tpe));
    for (int i = 0; i < 14; i++) {
        OK_OR_NOMEM(dray_tune_searcher_suggest(tpe, i, &c));
        OK_OR_NOMEM(dray_tune_result_create(&r));
        OK_OR_NOMEM(dray_tune_result_set(r, "loss", dray_tune_config_num(c, "x", 0)));
        dray_tune_searcher_on_complete(tpe, i, r, false);
        dray_tune_result_destroy(r);
        r = NULL;
        dray_tune_config_destroy(c);
        c = NULL;
    }
out:
    dray_tune_result_destroy(r);
    dray_tune_config_destroy(c);
    dray_tune_searcher_destroy(tpe);
    dray_tune_space_destroy(sp);
}

/* feeds 6 trials x 9 results to a scheduler (pauses and stops applied to the mock host) */
static void feed_sched(dray_tune_sched *s, mock *m, dray_tune_host *h)
{
    dray_tune_result *r = NULL;
    for (int i = 0; i < 6; i++) {
        m->status[i] = DRAY_TUNE_RUNNING;
        OK_OR_NOMEM(dray_tune_sched_on_trial_add(s, h, i));
    }
    for (int t = 1; t <= 9; t++) {
        for (int i = 0; i < 6; i++) {
            if (m->status[i] == DRAY_TUNE_TERMINATED)
                continue;
            dray_tune_decision d;
            OK_OR_NOMEM(dray_tune_result_create(&r));
            OK_OR_NOMEM(dray_tune_result_set(r, "training_iteration", t));
            OK_OR_NOMEM(dray_tune_result_set(r, "m", (i * 7 % 5) + 0.1 * t));
            OK_OR_NOMEM(dray_tune_sched_on_trial_result(s, h, i, r, &d));
            if (d == DRAY_TUNE_STOP) {
                dray_tune_sched_on_trial_complete(s, h, i, r);
                m->status[i] = DRAY_TUNE_TERMINATED;
            } else {
                m->status[i] = DRAY_TUNE_RUNNING;
            }
            dray_tune_result_destroy(r);
            r = NULL;
        }
    }
out:
    dray_tune_result_destroy(r);
}

static void schedulers(void)
{
    dray_tune_sched *s = NULL;
    dray_tune_space *mut = NULL;
    mock m;
    dray_tune_host h;
    mock_init(&m, 6, &h);
    dray_tune_asha_opts ao;
    dray_tune_asha_opts_init(&ao);
    ao.metric = "m";
    ao.mode = DRAY_TUNE_MAX;
    ao.reduction_factor = 2;
    ao.brackets = 2;
    ao.max_t = 8;
    OK_OR_NOMEM(dray_tune_sched_create_asha(&ao, &s));
    feed_sched(s, &m, &h);
    dray_tune_sched_destroy(s);
    s = NULL;
    mock_init(&m, 6, &h);
    dray_tune_hyperband_opts ho;
    dray_tune_hyperband_opts_init(&ho);
    ho.metric = "m";
    ho.mode = DRAY_TUNE_MAX;
    ho.max_t = 9;
    OK_OR_NOMEM(dray_tune_sched_create_hyperband(&ho, &s));
    feed_sched(s, &m, &h);
    dray_tune_sched_destroy(s);
    s = NULL;
    mock_init(&m, 6, &h);
    dray_tune_median_opts mo;
    dray_tune_median_opts_init(&mo);
    mo.metric = "m";
    mo.mode = DRAY_TUNE_MAX;
    mo.time_attr = "training_iteration";
    mo.grace_period = 1;
    OK_OR_NOMEM(dray_tune_sched_create_median(&mo, &s));
    feed_sched(s, &m, &h);
    dray_tune_sched_destroy(s);
    s = NULL;
    mock_init(&m, 6, &h);
    OK_OR_NOMEM(dray_tune_space_create(&mut));
    OK_OR_NOMEM(dray_tune_space_uniform(mut, "lr", 0, 1));
    for (int i = 0; i < 6; i++) {
        OK_OR_NOMEM(dray_tune_config_create(&m.cfg[i]));
        OK_OR_NOMEM(dray_tune_config_set(m.cfg[i], "lr", dray_tune_f(0.1 * i)));
    }
    dray_tune_pbt_opts po;
    dray_tune_pbt_opts_init(&po);
    po.metric = "m";
    po.mode = DRAY_TUNE_MAX;
    po.time_attr = "training_iteration";
    po.perturbation_interval = 2;
    po.mutations = mut;
    OK_OR_NOMEM(dray_tune_sched_create_pbt(&po, &s));
    feed_sched(s, &m, &h);
out:
    mock_fini(&m);
    dray_tune_sched_destroy(s);
    dray_tune_space_destroy(mut);
}

static void each_failure(const char *name, void (*scenario)(void))
{
    long base = live, n;
    for (n = 1;; n++) {
        fail_at = n;
        calls = 0;
        scenario();
        long made = calls;
        fail_at = -1;
        if (live != base)
            TEST_FAIL_("%s: %ld allocations left after failing allocation %ld", name, live - base, n);
        if (made < n)
            break; /* the scenario ran to the end without reaching allocation n */
    }
    fprintf(stderr, "%s: failed each of %ld allocations in turn\n", name, n - 1);
    ASSERT_GT(n, 10);
}

TEST(spaces_oom) { each_failure("spaces", spaces); }
TEST(tpe_oom) { each_failure("tpe", tpe_run); }
TEST(schedulers_oom) { each_failure("schedulers", schedulers); }
#else
TEST(spaces_oom) { fprintf(stderr, "sanitizer build: malloc is not interposed, skipped\n"); }
TEST(tpe_oom) {}
TEST(schedulers_oom) {}
#endif

RUN_TESTS(T_(spaces_oom), T_(tpe_oom), T_(schedulers_oom))
