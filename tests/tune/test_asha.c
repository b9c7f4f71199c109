/* ASHA decisions against hand-computed traces (grace 1, eta 2, max_t 8: rungs 1, 2, 4, 8), min and
 * max mode, NaN, ties, a report jumping several rungs, several brackets with a fixed seed, and a
 * random stream checked against numpy (nanpercentile) through /usr/bin/python3. */
#include "test.h"
#include "dray/tune.h"
#include "tune/host.h"

static dray_tune_sched *make_asha(const char *metric, dray_tune_mode mode, int brackets, uint64_t seed)
{
    dray_tune_asha_opts o;
    dray_tune_asha_opts_init(&o);
    o.metric = metric;
    o.mode = mode;
    o.grace_period = 1;
    o.reduction_factor = 2;
    o.max_t = 8;
    o.brackets = brackets;
    o.seed = seed;
    dray_tune_sched *s;
    ASSERT_OK(dray_tune_sched_create_asha(&o, &s));
    return s;
}

static dray_tune_decision feed(dray_tune_sched *s, dray_tune_host *h, int trial, double t,
                               const char *metric, double v)
{
    dray_tune_result *r = result2("training_iteration", t, metric, v);
    dray_tune_decision d;
    ASSERT_OK(dray_tune_sched_on_trial_result(s, h, trial, r, &d));
    if (d == DRAY_TUNE_STOP) {
        /* like Ray's runner: a stopped trial completes with its last result */
        dray_tune_sched_on_trial_complete(s, h, trial, r);
        ((mock *)h->ctx)->status[trial] = DRAY_TUNE_TERMINATED;
    }
    dray_tune_result_destroy(r);
    return d;
}

/* 8 trials, acc_i(t) = base_i + 0.01 t, reported round-robin. Hand-computed (eta 2: cutoff = median
 * of the scores already at the rung):
 * rung 1: T0 .51 first -> go; T1 .81 vs .51 go; T2 .31 vs .66 STOP; T3 .91 vs .51 go; T4 .61 vs
 *         median(.51 .81 .31 .91) = .66 STOP; T5 .11 vs .61 STOP; T6 .71 vs .56 go; T7 .41 vs .61 STOP
 * rung 2: T0 .52 go; T1 .82 vs .52 go; T3 .92 vs .67 go; T6 .72 vs median(.52 .82 .92) = .82 STOP
 * t = 3: no new rung; rung 4: T0 .54 go, T1 .84 vs .54 go, T3 .94 vs .69 go; t = 8 = max_t: STOP. */
static const double base[8] = {0.5, 0.8, 0.3, 0.9, 0.6, 0.1, 0.7, 0.4};

static void run_trace(const char *metric, dray_tune_mode mode, double sign)
{
    dray_tune_sched *s = make_asha(metric, mode, 1, 0);
    mock m;
    dray_tune_host h;
    mock_init(&m, 8, &h);
    for (int i = 0; i < 8; i++) {
        m.status[i] = DRAY_TUNE_RUNNING;
        ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, i));
    }
    int stopped_at[8] = {0};
    for (int t = 1; t <= 8; t++) {
        for (int i = 0; i < 8; i++) {
            if (m.status[i] != DRAY_TUNE_RUNNING)
                continue;
            dray_tune_decision d = feed(s, &h, i, t, metric, sign * (base[i] + 0.01 * t));
            if (d == DRAY_TUNE_STOP)
                stopped_at[i] = t;
        }
    }
    const int want[8] = {8, 8, 1, 8, 1, 1, 2, 1};
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(stopped_at[i], want[i]);
    /* 4 stopped at rung 1, 1 at rung 2, 3 by max_t */
    ASSERT_EQ(dray_tune_sched_num_stopped(s), 8);
    char dbg[1024];
    dray_tune_sched_debug(s, dbg, sizeof(dbg));
    /* scores are kept maximised (sign * metric), so both modes show the same cutoffs:
     * rung 2 holds .52 .82 .92 .72 -> median .77; rung 8 holds the three finishers' .58 .88 .98,
     * recorded when they complete -> .88 */
    ASSERT_CONTAINS(dbg, "Iter 8: 0.88 Iter 4: 0.84 Iter 2: 0.77 Iter 1: 0.56");
    mock_fini(&m);
    dray_tune_sched_destroy(s);
}

TEST(trace_max) { run_trace("acc", DRAY_TUNE_MAX, 1.0); }
TEST(trace_min) { run_trace("loss", DRAY_TUNE_MIN, -1.0); }

TEST(ties_nan_and_jumps)
{
    dray_tune_sched *s = make_asha("acc", DRAY_TUNE_MAX, 1, 0);
    mock m;
    dray_tune_host h;
    mock_init(&m, 10, &h);
    for (int i = 0; i < 10; i++)
        ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, i));
    ASSERT_EQ(feed(s, &h, 0, 1, "acc", 0.5), DRAY_TUNE_CONTINUE);
    ASSERT_EQ(feed(s, &h, 1, 1, "acc", 0.7), DRAY_TUNE_CONTINUE);
    /* tie: cutoff = median(.5 .7) = .6, 0.6 < 0.6 is false -> continue */
    ASSERT_EQ(feed(s, &h, 2, 1, "acc", 0.6), DRAY_TUNE_CONTINUE);
    /* NaN score: NaN < cutoff is false -> continue, and it is recorded (ignored by quantiles) */
    ASSERT_EQ(feed(s, &h, 3, 1, "acc", NAN), DRAY_TUNE_CONTINUE);
    /* rung 1 = {.5 .7 .6 NaN}: nanmedian = .6 -> 0.59 stops, 0.6 continues */
    ASSERT_EQ(feed(s, &h, 4, 1, "acc", 0.59), DRAY_TUNE_STOP);
    /* rung 1 = {.5 .7 .6 NaN .59}: nanmedian = .595 */
    ASSERT_EQ(feed(s, &h, 5, 1, "acc", 0.595), DRAY_TUNE_CONTINUE);
    /* a report jumping from nothing to t = 5 is judged at rung 4 only (empty: continue) */
    ASSERT_EQ(feed(s, &h, 6, 5, "acc", 0.1), DRAY_TUNE_CONTINUE);
    /* ... so rung 4 now holds 0.1 and a later 0.05 at t = 4 stops, 0.2 continues */
    ASSERT_EQ(feed(s, &h, 7, 4, "acc", 0.05), DRAY_TUNE_STOP);
    ASSERT_EQ(feed(s, &h, 8, 4, "acc", 0.2), DRAY_TUNE_CONTINUE);
    /* Ray's walk goes down past rungs the trial already recorded at: trial 7 (stopped at t = 4)
     * completed with its last result, which recorded 0.05 at rung 2; trial 6, recorded only at
     * rung 4, is now judged at rung 2 against {0.05}: -100 stops, 0.07 would not */
    ASSERT_EQ(feed(s, &h, 6, 6, "acc", -100), DRAY_TUNE_STOP);
    ASSERT_EQ(feed(s, &h, 8, 6, "acc", 0.07), DRAY_TUNE_CONTINUE);
    /* a result without the metric is ignored (continue, nothing recorded) */
    ASSERT_EQ(feed(s, &h, 9, 1, NULL, 0), DRAY_TUNE_CONTINUE);
    ASSERT_EQ(feed(s, &h, 9, 1, "acc", 0.0), DRAY_TUNE_STOP);
    /* max_t: stop whatever the score */
    ASSERT_EQ(feed(s, &h, 1, 8, "acc", 99), DRAY_TUNE_STOP);
    mock_fini(&m);
    dray_tune_sched_destroy(s);
}

TEST(stop_last_trials_false)
{
    dray_tune_asha_opts o;
    dray_tune_asha_opts_init(&o);
    o.metric = "acc";
    o.mode = DRAY_TUNE_MAX;
    o.reduction_factor = 2;
    o.max_t = 8;
    o.stop_last_trials = false;
    dray_tune_sched *s;
    ASSERT_OK(dray_tune_sched_create_asha(&o, &s));
    mock m;
    dray_tune_host h;
    mock_init(&m, 2, &h);
    ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, 0));
    ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, 1));
    ASSERT_EQ(feed(s, &h, 0, 1, "acc", 1.0), DRAY_TUNE_CONTINUE);
    ASSERT_EQ(feed(s, &h, 0, 8, "acc", 1.0), DRAY_TUNE_CONTINUE); /* no max_t stop */
    ASSERT_EQ(feed(s, &h, 1, 1, "acc", 0.5), DRAY_TUNE_STOP);
    /* past max_t, a trial already judged at the top rung it reached keeps going */
    ASSERT_EQ(feed(s, &h, 0, 9, "acc", -5), DRAY_TUNE_CONTINUE);
    mock_fini(&m);
    dray_tune_sched_destroy(s);
}

TEST(brackets_seeded)
{
    /* grace 1, eta 2, max_t 8: R_0 = 4 (1 2 4 8), R_1 = 3 (2 4 8), R_2 = 2 (4 8); bracket chosen
     * with probability exp(R_s - 4) / sum = .665, .245, .090 */
    dray_tune_sched *s = make_asha("acc", DRAY_TUNE_MAX, 3, 42);
    char dbg[2048];
    dray_tune_sched_debug(s, dbg, sizeof(dbg));
    ASSERT_CONTAINS(dbg, "Bracket 1: Iter 8: no cutoff 0 Iter 4: no cutoff 0 Iter 2: no cutoff 0\n");
    ASSERT_CONTAINS(dbg, "Bracket 2: Iter 8: no cutoff 0 Iter 4: no cutoff 0");
    mock m;
    dray_tune_host h;
    mock_init(&m, 0, &h);
    /* every trial reports t = 1 with a decreasing score: only bracket-0 trials meet a rung (1), and
     * after the first, each is below the median -> stopped; so stops count bracket-0 members. */
    int n = 6000, stops = 0;
    for (int i = 0; i < n; i++) {
        ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, i));
        dray_tune_result *r = result2("training_iteration", 1, "acc", -i);
        dray_tune_decision d;
        ASSERT_OK(dray_tune_sched_on_trial_result(s, &h, i, r, &d));
        stops += d == DRAY_TUNE_STOP;
        dray_tune_result_destroy(r);
    }
    double p0 = 1.0 / (1.0 + exp(-1.0) + exp(-2.0));
    /* binomial sd ~ sqrt(6000 * .665 * .335) = 36.6: allow 5 sd */
    ASSERT_NEAR((double)(stops + 1), p0 * n, 5 * 36.6);
    dray_tune_sched_destroy(s);
    /* the same seed gives the same assignment */
    dray_tune_sched *a = make_asha("acc", DRAY_TUNE_MAX, 3, 7), *b = make_asha("acc", DRAY_TUNE_MAX, 3, 7);
    for (int i = 0; i < 200; i++) {
        ASSERT_OK(dray_tune_sched_on_trial_add(a, &h, i));
        ASSERT_OK(dray_tune_sched_on_trial_add(b, &h, i));
        dray_tune_result *r = result2("training_iteration", 1, "acc", -i);
        dray_tune_decision da, db;
        ASSERT_OK(dray_tune_sched_on_trial_result(a, &h, i, r, &da));
        ASSERT_OK(dray_tune_sched_on_trial_result(b, &h, i, r, &db));
        ASSERT_EQ(da, db);
        dray_tune_result_destroy(r);
    }
    dray_tune_sched_destroy(a);
    dray_tune_sched_destroy(b);
}

TEST(bad_options)
{
    dray_tune_asha_opts o;
    dray_tune_sched *s;
    dray_tune_asha_opts_init(&o);
    o.grace_period = 200;
    ASSERT_STATUS(dray_tune_sched_create_asha(&o, &s), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "grace_period");
    dray_tune_asha_opts_init(&o);
    o.reduction_factor = 1;
    ASSERT_STATUS(dray_tune_sched_create_asha(&o, &s), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "reduction_factor");
    dray_tune_asha_opts_init(&o);
    o.mode = (dray_tune_mode)7;
    ASSERT_STATUS(dray_tune_sched_create_asha(&o, &s), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "mode");
    dray_tune_mode md;
    ASSERT_STATUS(dray_tune_mode_parse("maximize", &md), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "'maximize'");
    /* no metric anywhere: adding a trial fails and says so */
    dray_tune_asha_opts_init(&o);
    ASSERT_OK(dray_tune_sched_create_asha(&o, &s));
    mock m;
    dray_tune_host h;
    mock_init(&m, 1, &h);
    ASSERT_STATUS(dray_tune_sched_on_trial_add(s, &h, 0), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "metric");
    ASSERT_OK(dray_tune_sched_set_search_properties(s, "acc", DRAY_TUNE_MAX));
    ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, 0));
    dray_tune_sched_destroy(s);
}

/* A random stream of results, decided by this ASHA and by a 30-line numpy version of the rule. */
TEST(numpy_oracle)
{
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
        fprintf(stderr, "numpy not available: skipped\n");
        return;
    }
    const char *script = "/tmp/dray_tune_asha_oracle.py", *data = "/tmp/dray_tune_asha_oracle.txt";
    FILE *f = fopen(script, "w");
    ASSERT_TRUE(f != NULL);
    fputs("import numpy as np, math, sys\n"
          "grace, eta, max_t = 1.0, 3.0, 27.0\n"
          "R = int(math.log(max_t / grace) / math.log(eta) + 1)\n"
          "rungs = [(grace * eta ** k, {}) for k in reversed(range(R))]\n"
          "out = []\n"
          "for line in open(sys.argv[1]):\n"
          "    tr, t, v = line.split(); tr = int(tr); t = float(t); v = -float(v)\n"
          "    if t >= max_t: out.append('S'); continue\n"
          "    act = 'C'\n"
          "    for m, rec in rungs:\n"
          "        if t < m or tr in rec: continue\n"
          "        if rec:\n"
          "            c = np.nanpercentile(list(rec.values()), (1 - 1 / eta) * 100)\n"
          "            if v < c: act = 'S'\n"
          "        rec[tr] = v\n"
          "        break\n"
          "    out.append(act)\n"
          "print(''.join(out))\n",
          f);
    fclose(f);
    dray_tune_asha_opts o;
    dray_tune_asha_opts_init(&o);
    o.metric = "loss";
    o.mode = DRAY_TUNE_MIN;
    o.reduction_factor = 3;
    o.max_t = 27;
    dray_tune_sched *s;
    ASSERT_OK(dray_tune_sched_create_asha(&o, &s));
    mock m;
    dray_tune_host h;
    mock_init(&m, 0, &h);
    dray_tune_rng rng;
    dray_tune_rng_seed(&rng, 99);
    int ntr = 60, t_of[60] = {0};
    char mine[4000];
    int n = 0;
    f = fopen(data, "w");
    ASSERT_TRUE(f != NULL);
    for (int i = 0; i < ntr; i++)
        ASSERT_OK(dray_tune_sched_on_trial_add(s, &h, i));
    while (n < 1500) {
        int tr = (int)(dray_tune_rng_next(&rng) % ntr);
        t_of[tr] += 1 + (int)(dray_tune_rng_next(&rng) % 4); /* jumps of 1..4 */
        double v = dray_tune_rng_uniform(&rng) < 0.03 ? NAN : floor(dray_tune_rng_uniform(&rng) * 50);
        fprintf(f, "%d %d %.17g\n", tr, t_of[tr], v);
        dray_tune_result *r = result2("training_iteration", t_of[tr], "loss", v);
        dray_tune_decision d;
        ASSERT_OK(dray_tune_sched_on_trial_result(s, &h, tr, r, &d));
        dray_tune_result_destroy(r);
        mine[n++] = d == DRAY_TUNE_STOP ? 'S' : 'C';
    }
    mine[n] = '\0';
    fclose(f);
    char cmd[256], got[4000] = {0};
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s", script, data);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    ASSERT_TRUE(fgets(got, sizeof(got), p) != NULL);
    pclose(p);
    got[strcspn(got, "\n")] = '\0';
    ASSERT_STREQ(mine, got);
    remove(script);
    remove(data);
    dray_tune_sched_destroy(s);
}

RUN_TESTS(T_(trace_max), T_(trace_min), T_(ties_nan_and_jumps), T_(stop_last_trials_false),
          T_(brackets_seeded), T_(bad_options), T_(numpy_oracle))
