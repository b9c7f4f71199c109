/* Synchronous HyperBand, median stopping and PBT decisions on hand-computed scenarios, and PBT beating
 * random search at equal budget on a toy problem (a simulated population, no runtime needed). */
#include "test.h"
#include "dray/tune.h"
#include "tune/host.h"

static dray_tune_decision report(dray_tune_sched *s, dray_tune_host *h, int trial, double t,
                                 const char *metric, double v)
{
    dray_tune_result *r = result2("training_iteration", t, metric, v);
    dray_tune_decision d;
    ASSERT_OK(dray_tune_sched_on_trial_result(s, h, trial, r, &d));
    mock *m = h->ctx;
    if (d == DRAY_TUNE_PAUSE)
        m->status[trial] = DRAY_TUNE_PAUSED;
    if (d == DRAY_TUNE_STOP) {
        m->status[trial] = DRAY_TUNE_TERMINATED;
        dray_tune_sched_on_trial_complete(s, h, trial, r);
    }
    dray_tune_result_destroy(r);
    return d;
}

/* max_t 9, eta 3: s_max+1 = 3 brackets per band: (n=3, r=9), (n=5, r=3), (n=9, r=1).
 * Bracket 1 (trials 3..7): everyone pauses at t = 3 until the last arrives; then n = ceil(5/3) = 2
 * survive, and (Ray's arithmetic) the next milestone is min(3*3, 9-3) = 6, where the bracket finishes
 * and its survivors stop. */
TEST(hyperband_halving)
{
    dray_tune_hyperband_opts o;
    dray_tune_hyperband_opts_init(&o);
    o.metric = "acc";
    o.mode = DRAY_TUNE_MAX;
    o.max_t = 9;
    o.reduction_factor = 3;
    dray_tune_sched *s;
    ASSERT_OK(dray_tune_sched_create_hyperband(&o, &s));
    mock m;
    dray_tune_host h;
    mock_init(&m, 8, &h);
    for (int i = 0; i < 8; i++)
        ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, i));
    int next;
    dray_tune_sched_choose_trial(s, &h, &next);
    ASSERT_EQ(next, 0); /* all brackets at 0% -> first bracket's first pending trial */
    /* bracket 0: three trials run to 9; the first two pause there, the third finishes the bracket */
    for (int i = 0; i < 3; i++) {
        m.status[i] = DRAY_TUNE_RUNNING;
        for (int t = 1; t < 9; t++)
            ASSERT_EQ(report(s, &h, i, t, "acc", 0.1 * i), DRAY_TUNE_CONTINUE);
        ASSERT_EQ(report(s, &h, i, 9, "acc", 0.1 * i), i < 2 ? DRAY_TUNE_PAUSE : DRAY_TUNE_STOP);
    }
    ASSERT_EQ(m.status[0], DRAY_TUNE_TERMINATED); /* stopped by the host call */
    ASSERT_EQ(m.status[1], DRAY_TUNE_TERMINATED);
    const double acc[8] = {0, 0, 0, 0.1, 0.5, 0.3, 0.9, 0.7};
    for (int i = 3; i < 8; i++) {
        m.status[i] = DRAY_TUNE_RUNNING;
        ASSERT_EQ(report(s, &h, i, 1, "acc", acc[i]), DRAY_TUNE_CONTINUE);
        ASSERT_EQ(report(s, &h, i, 2, "acc", acc[i]), DRAY_TUNE_CONTINUE);
        dray_tune_decision d = report(s, &h, i, 3, "acc", acc[i]);
        ASSERT_EQ(d, i < 7 ? DRAY_TUNE_PAUSE : DRAY_TUNE_CONTINUE); /* trial 7 (0.7) survives */
    }
    /* ranking .9 (6) .7 (7) | .5 (4) .3 (5) .1 (3): 3, 4, 5 stopped; 6 unpaused */
    ASSERT_EQ(m.status[3], DRAY_TUNE_TERMINATED);
    ASSERT_EQ(m.status[4], DRAY_TUNE_TERMINATED);
    ASSERT_EQ(m.status[5], DRAY_TUNE_TERMINATED);
    ASSERT_EQ(m.status[6], DRAY_TUNE_PENDING);
    ASSERT_EQ(dray_tune_sched_num_stopped(s), 3);
    dray_tune_sched_choose_trial(s, &h, &next);
    ASSERT_EQ(next, 6);
    ASSERT_EQ(report(s, &h, 7, 4, "acc", 0.7), DRAY_TUNE_CONTINUE);
    ASSERT_EQ(report(s, &h, 7, 6, "acc", 0.7), DRAY_TUNE_PAUSE); /* 6 has not caught up */
    m.status[6] = DRAY_TUNE_RUNNING;
    ASSERT_EQ(report(s, &h, 6, 5, "acc", 0.9), DRAY_TUNE_CONTINUE);
    ASSERT_EQ(report(s, &h, 6, 6, "acc", 0.9), DRAY_TUNE_STOP); /* bracket finished */
    ASSERT_EQ(m.status[7], DRAY_TUNE_TERMINATED);
    char dbg[512];
    dray_tune_sched_debug(s, dbg, sizeof(dbg));
    ASSERT_CONTAINS(dbg, "Max Size (n)=2, Milestone (r)=6");
    mock_fini(&m);
    dray_tune_sched_destroy(s);
}

TEST(median_rule)
{
    dray_tune_median_opts o;
    dray_tune_median_opts_init(&o);
    o.time_attr = "training_iteration";
    o.metric = "loss";
    o.mode = DRAY_TUNE_MIN;
    o.grace_period = 1;
    o.min_samples_required = 2;
    dray_tune_sched *s;
    ASSERT_OK(dray_tune_sched_create_median(&o, &s));
    mock m;
    dray_tune_host h;
    mock_init(&m, 6, &h);
    for (int i = 0; i < 6; i++) {
        m.status[i] = DRAY_TUNE_RUNNING;
        ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, i));
    }
    for (int t = 1; t <= 4; t++) {
        ASSERT_EQ(report(s, &h, 0, t, "loss", 1.1 - 0.1 * t), DRAY_TUNE_CONTINUE);
        ASSERT_EQ(report(s, &h, 1, t, "loss", 2.1 - 0.1 * t), DRAY_TUNE_CONTINUE);
    }
    /* T2 t=1: 0.5 vs median of running means at t=1 (1.0, 2.0) = 1.5: continue */
    ASSERT_EQ(report(s, &h, 2, 1, "loss", 0.5), DRAY_TUNE_CONTINUE);
    /* T2 t=2: best is still 0.5 (not the 3.0 it reports now) vs median(.95, 1.95) = 1.45 */
    ASSERT_EQ(report(s, &h, 2, 2, "loss", 3.0), DRAY_TUNE_CONTINUE);
    /* T3 t=1: 1.6 vs median(1.0, 2.0, 0.5) = 1.0: worse -> stop */
    ASSERT_EQ(report(s, &h, 3, 1, "loss", 1.6), DRAY_TUNE_STOP);
    /* T4 t=1: 1.0 vs median(1.0, 2.0, 0.5, 1.6) = 1.3 -> continue; equal to the median continues */
    ASSERT_EQ(report(s, &h, 4, 1, "loss", 1.0), DRAY_TUNE_CONTINUE);
    /* T5 t=1: median(1, 2, .5, 1.6, 1) = 1: 1.0 ties and continues (1.15 would stop) */
    ASSERT_EQ(report(s, &h, 5, 1, "loss", 1.0), DRAY_TUNE_CONTINUE);
    ASSERT_EQ(dray_tune_sched_num_stopped(s), 1);
    /* T4 t=3: only T0, T1 reached 3: means over [1,3] 0.9 and 1.9 -> median 1.4; best 1.0 */
    ASSERT_EQ(report(s, &h, 4, 3, "loss", 1.25), DRAY_TUNE_CONTINUE);
    /* T4 t=5: nobody else reached 5: too few samples; no trial waits -> continue */
    ASSERT_EQ(report(s, &h, 4, 5, "loss", 9), DRAY_TUNE_CONTINUE);
    /* ... but with a pending trial it yields (pause) */
    m.status[5] = DRAY_TUNE_PENDING;
    ASSERT_EQ(report(s, &h, 4, 6, "loss", 9), DRAY_TUNE_PAUSE);
    /* T5 t=2: means up to 2 of T0 .95, T1 1.95, T2 1.75, T4 1.0 -> median 1.375; best 1.0 */
    m.status[5] = DRAY_TUNE_RUNNING;
    ASSERT_EQ(report(s, &h, 5, 2, "loss", 1.4), DRAY_TUNE_CONTINUE);
    mock_fini(&m);
    dray_tune_sched_destroy(s);

    /* soft stop: pause instead, then FIFO */
    o.hard_stop = false;
    ASSERT_OK(dray_tune_sched_create_median(&o, &s));
    mock_init(&m, 3, &h);
    for (int i = 0; i < 3; i++) {
        m.status[i] = DRAY_TUNE_RUNNING;
        ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, i));
    }
    ASSERT_EQ(report(s, &h, 0, 1, "loss", 1.0), DRAY_TUNE_CONTINUE);
    ASSERT_EQ(report(s, &h, 1, 1, "loss", 1.0), DRAY_TUNE_CONTINUE);
    ASSERT_EQ(report(s, &h, 2, 1, "loss", 5.0), DRAY_TUNE_PAUSE);
    m.status[2] = DRAY_TUNE_RUNNING;
    ASSERT_EQ(report(s, &h, 2, 2, "loss", 7.0), DRAY_TUNE_CONTINUE);
    mock_fini(&m);
    dray_tune_sched_destroy(s);
}

/* PBT mechanics: 4 trials, quantile 0.25 -> one bottom, one top. */
TEST(pbt_exploit_explore)
{
    dray_tune_space *mut;
    ASSERT_OK(dray_tune_space_create(&mut));
    ASSERT_OK(dray_tune_space_uniform(mut, "lr", 0, 1));
    dray_tune_val sizes[] = {dray_tune_i(16), dray_tune_i(32), dray_tune_i(64)};
    ASSERT_OK(dray_tune_space_choice(mut, "batch", sizes, 3));
    ASSERT_OK(dray_tune_space_randint(mut, "units", 1, 1000));
    dray_tune_pbt_opts o;
    dray_tune_pbt_opts_init(&o);
    o.time_attr = "training_iteration";
    o.metric = "score";
    o.mode = DRAY_TUNE_MAX;
    o.perturbation_interval = 2;
    o.resample_probability = 0; /* always perturb: x1.2 / x0.8, or a neighbour in the list */
    o.mutations = mut;
    o.seed = 3;
    dray_tune_sched *s;
    ASSERT_OK(dray_tune_sched_create_pbt(&o, &s));
    mock m;
    dray_tune_host h;
    mock_init(&m, 4, &h);
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(dray_tune_config_create(&m.cfg[i]));
        ASSERT_OK(dray_tune_config_set(m.cfg[i], "lr", dray_tune_f(0.1 * (i + 1))));
        ASSERT_OK(dray_tune_config_set(m.cfg[i], "batch", dray_tune_i(32)));
        ASSERT_OK(dray_tune_config_set(m.cfg[i], "units", dray_tune_i(100)));
        m.status[i] = DRAY_TUNE_RUNNING;
        ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, i));
    }
    /* t = 1: before the interval -> continue, no checkpoints */
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(report(s, &h, i, 1, "score", i), DRAY_TUNE_CONTINUE);
    ASSERT_EQ(m.n_saves, 0);
    /* t = 2: trial 3 (best) reports first: with one scored trial there are no quantiles */
    ASSERT_EQ(report(s, &h, 3, 2, "score", 3), DRAY_TUNE_CONTINUE);
    ASSERT_EQ(m.n_saves, 0);
    ASSERT_EQ(report(s, &h, 1, 2, "score", 1), DRAY_TUNE_CONTINUE); /* {1, 3}: 1 is bottom */
    /* 1 was bottom but 3 had no checkpoint yet: no exploit. 2 arrives: {1,2,3} -> q = 1 */
    ASSERT_EQ(report(s, &h, 2, 2, "score", 2), DRAY_TUNE_CONTINUE);
    /* trial 0 arrives last: {0,1,2,3}, bottom 0, top 3; 3 saved? It is saved when it is itself
     * judged in the top; it was judged alone, so the bottom trial finds no checkpoint. */
    ASSERT_EQ(report(s, &h, 0, 2, "score", 0), DRAY_TUNE_CONTINUE);
    ASSERT_EQ(m.n_exploits, 0);
    /* t = 4: trial 3 reports first, is top of {0,1,2,3(new)}: saves */
    ASSERT_EQ(report(s, &h, 3, 4, "score", 5), DRAY_TUNE_CONTINUE);
    ASSERT_TRUE(m.saved[3]);
    /* trial 0 reports its worst score: exploits 3 -> paused by the host, decision NOOP */
    ASSERT_EQ(report(s, &h, 0, 4, "score", -1), DRAY_TUNE_NOOP);
    ASSERT_EQ(m.exploited_from[0], 3);
    ASSERT_EQ(m.status[0], DRAY_TUNE_PAUSED);
    double lr = dray_tune_config_num(m.cfg[0], "lr", 0);
    ASSERT_TRUE(fabs(lr - 0.4 * 1.2) < 1e-12 || fabs(lr - 0.4 * 0.8) < 1e-12);
    int64_t b = dray_tune_config_int(m.cfg[0], "batch", 0);
    ASSERT_TRUE(b == 16 || b == 64); /* a neighbour of 32 */
    int64_t u = dray_tune_config_int(m.cfg[0], "units", 0);
    ASSERT_EQ(dray_tune_config_get(m.cfg[0], "units")->kind, DRAY_TUNE_INT);
    ASSERT_TRUE(u == 120 || u == 80); /* ints stay ints (truncated) */
    /* a paused trial now exists: the next decision for a middle trial is PAUSE (time sharing) */
    ASSERT_EQ(report(s, &h, 2, 4, "score", 2.5), DRAY_TUNE_PAUSE);
    int next;
    dray_tune_sched_choose_trial(s, &h, &next);
    ASSERT_TRUE(next == 0 || next == 2);
    char dbg[128];
    dray_tune_sched_debug(s, dbg, sizeof(dbg));
    ASSERT_CONTAINS(dbg, "1 perturbs");
    /* a result without the metric is an error naming it */
    dray_tune_result *r = result2("training_iteration", 6, "other", 1);
    dray_tune_decision d;
    ASSERT_STATUS(dray_tune_sched_on_trial_result(s, &h, 1, r, &d), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "no metric 'score'");
    dray_tune_result_destroy(r);
    mock_fini(&m);
    dray_tune_sched_destroy(s);
    dray_tune_space_destroy(mut);
}

/* Toy problem: x <- x + 2 lr (10 - x), loss (x - 10)^2, lr ~ loguniform(1e-4, 1e-2), 8 trials x 60
 * steps. Random search keeps its lr; PBT copies the best trials' state and grows lr by perturbation. */
typedef struct toy {
    mock m;
    double x[8], ck[8];
} toy;

static dray_status toy_save(void *c, int t)
{
    toy *y = c;
    y->ck[t] = y->x[t];
    y->m.saved[t] = true;
    return DRAY_OK;
}

static dray_status toy_exploit(void *c, int t, int src, const dray_tune_config *cfg)
{
    toy *y = c;
    dray_status st = mock_exploit(&y->m, t, src, cfg);
    if (st == DRAY_OK)
        y->x[t] = y->ck[src];
    return st;
}

static double toy_run(bool use_pbt, uint64_t seed)
{
    dray_tune_space *sp, *mut;
    ASSERT_OK(dray_tune_space_create(&sp));
    ASSERT_OK(dray_tune_space_loguniform(sp, "lr", 1e-4, 1e-2));
    ASSERT_OK(dray_tune_space_create(&mut));
    ASSERT_OK(dray_tune_space_loguniform(mut, "lr", 1e-4, 1e-2));
    dray_tune_searcher *gen;
    ASSERT_OK(dray_tune_searcher_create_basic(sp, 8, seed, &gen));
    toy y;
    memset(&y, 0, sizeof(y));
    dray_tune_host h;
    mock_init(&y.m, 8, &h);
    h.ctx = &y; /* mock's callbacks read the mock at the start of toy */
    h.save_trial = toy_save;
    h.exploit = toy_exploit;
    dray_tune_sched *s;
    if (use_pbt) {
        dray_tune_pbt_opts o;
        dray_tune_pbt_opts_init(&o);
        o.time_attr = "training_iteration";
        o.metric = "loss";
        o.mode = DRAY_TUNE_MIN;
        o.perturbation_interval = 5;
        o.mutations = mut;
        o.seed = seed;
        ASSERT_OK(dray_tune_sched_create_pbt(&o, &s));
    } else {
        ASSERT_OK(dray_tune_sched_create_fifo(&s));
    }
    for (int i = 0; i < 8; i++) {
        ASSERT_OK(dray_tune_searcher_suggest(gen, i, &y.m.cfg[i]));
        y.m.status[i] = DRAY_TUNE_RUNNING;
        ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, i));
    }
    for (int t = 1; t <= 60; t++) {
        for (int i = 0; i < 8; i++) {
            double lr = dray_tune_config_num(y.m.cfg[i], "lr", 0);
            y.x[i] += 2 * lr * (10 - y.x[i]);
            dray_tune_result *r = result2("training_iteration", t, "loss",
                                          (y.x[i] - 10) * (y.x[i] - 10));
            dray_tune_decision d;
            ASSERT_OK(dray_tune_sched_on_trial_result(s, &h, i, r, &d));
            dray_tune_result_destroy(r);
            ASSERT_TRUE(d != DRAY_TUNE_STOP);
            y.m.status[i] = DRAY_TUNE_RUNNING; /* room for everyone: paused trials resume at once */
        }
    }
    double best = INFINITY;
    for (int i = 0; i < 8; i++)
        best = fmin(best, (y.x[i] - 10) * (y.x[i] - 10));
    mock_fini(&y.m);
    dray_tune_sched_destroy(s);
    dray_tune_searcher_destroy(gen);
    dray_tune_space_destroy(sp);
    dray_tune_space_destroy(mut);
    return best;
}

TEST(pbt_beats_random)
{
    int wins = 0;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        double r = toy_run(false, seed), p = toy_run(true, seed);
        fprintf(stderr, "seed %llu: random %.4g  pbt %.4g\n", (unsigned long long)seed, r, p);
        wins += p < r;
    }
    ASSERT_EQ(wins, 5);
}

TEST(pbt_bad_options)
{
    dray_tune_pbt_opts o;
    dray_tune_sched *s;
    dray_tune_pbt_opts_init(&o);
    ASSERT_STATUS(dray_tune_sched_create_pbt(&o, &s), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "mutations");
    dray_tune_space *mut;
    ASSERT_OK(dray_tune_space_create(&mut));
    ASSERT_OK(dray_tune_space_uniform(mut, "lr", 0, 1));
    o.mutations = mut;
    o.quantile_fraction = 0.6;
    ASSERT_STATUS(dray_tune_sched_create_pbt(&o, &s), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "quantile_fraction");
    o.quantile_fraction = 0.25;
    o.perturbation_interval = 0;
    ASSERT_STATUS(dray_tune_sched_create_pbt(&o, &s), DRAY_EINVAL);
    o.perturbation_interval = 1;
    o.metric = "m";
    o.mode = DRAY_TUNE_MAX;
    ASSERT_OK(dray_tune_sched_create_pbt(&o, &s));
    mock m;
    dray_tune_host h;
    mock_init(&m, 1, &h);
    ASSERT_OK(dray_tune_config_create(&m.cfg[0]));
    ASSERT_STATUS(dray_tune_sched_on_trial_add(s, &h, 0), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "no 'lr' to mutate");
    mock_fini(&m);
    dray_tune_sched_destroy(s);
    dray_tune_space_destroy(mut);
    dray_tune_hyperband_opts ho;
    dray_tune_hyperband_opts_init(&ho);
    ho.reduction_factor = 0.5;
    ASSERT_STATUS(dray_tune_sched_create_hyperband(&ho, &s), DRAY_EINVAL);
    dray_tune_median_opts mo;
    dray_tune_median_opts_init(&mo);
    mo.min_samples_required = 0;
    ASSERT_STATUS(dray_tune_sched_create_median(&mo, &s), DRAY_EINVAL);
}

RUN_TESTS(T_(hyperband_halving), T_(median_rule), T_(pbt_exploit_explore), T_(pbt_beats_random),
          T_(pbt_bad_options))
