/* dray_tune_run end to end on the embedded runtime: function and class trainables as actors, grid
 * search with ASHA, failures with retries, stop criteria, time budget, max_concurrent_trials, PBT
 * through checkpoints in the object store, interruption and resume, CSV export and bad input. */
#include "test.h"
#include "dray/tune.h"

#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

static atomic_int live_now, live_max;

/* enter/leave bracket the computing part of an iteration: a trial computes only while the driver
 * waits for its next result, so at most max_concurrent_trials are inside at once (a stopped trial
 * may still be exiting, blocked in report, but it is not computing) */
static void enter(void)
{
    int n = atomic_fetch_add(&live_now, 1) + 1, m = atomic_load(&live_max);
    while (n > m && !atomic_compare_exchange_weak(&live_max, &m, n))
        ;
}

static void leave(void) { atomic_fetch_sub(&live_now, 1); }

/* quad: loss_i = (x - 0.3)^2 + (y - 2)^2 + 1 / i for i = 1..iters, checkpointing i each time;
 * config fail = true makes iteration 3 fail. */
static dray_status quad(dray_tune_session *s, const dray_tune_config *cfg, void *user)
{
    (void)user;
    double x = dray_tune_config_num(cfg, "x", 0), y = dray_tune_config_num(cfg, "y", 0);
    int64_t iters = dray_tune_config_int(cfg, "iters", 10), sleep_us = dray_tune_config_int(cfg, "sleep_us", 0);
    int64_t i = 0;
    size_t len;
    const void *ck = dray_tune_session_checkpoint(s, &len);
    if (ck && len == sizeof(i))
        memcpy(&i, ck, sizeof(i));
    dray_status st = DRAY_OK;
    while (i < iters) {
        i++;
        enter();
        if (sleep_us)
            usleep((useconds_t)sleep_us);
        leave();
        if (i == 3 && dray_tune_config_get(cfg, "fail") && dray_tune_config_get(cfg, "fail")->u.b) {
            st = dray_set_error(DRAY_ERANGE, "boom at iteration 3 (x=%g)", x);
            break;
        }
        dray_tune_metric m[] = {{"loss", (x - 0.3) * (x - 0.3) + (y - 2) * (y - 2) + 1.0 / (double)i},
                                {"x_seen", x}};
        if ((st = dray_tune_report_checkpoint(s, m, 2, &i, sizeof(i))) != DRAY_OK)
            break;
    }
    return st == DRAY_ECANCELED ? DRAY_OK : st;
}
static dray_tune_trainable quad_def = {"quad", quad, NULL, NULL, NULL};
DRAY_TUNE_TRAINABLE(quad_def)

/* counter: a class trainable; score += lr each step (so better lr climbs faster); saves its score */
typedef struct counter {
    double lr, score;
} counter;
static dray_status c_setup(dray_runtime *rt_, const dray_tune_config *cfg, void *user, void **state)
{
    (void)user, (void)rt_;
    counter *c = calloc(1, sizeof(*c));
    if (!c)
        return DRAY_ENOMEM;
    c->lr = dray_tune_config_num(cfg, "lr", 0);
    *state = c;
    return DRAY_OK;
}
static dray_status c_step(void *state, dray_tune_result *r)
{
    counter *c = state;
    c->score += c->lr;
    return dray_tune_result_set(r, "score", c->score);
}
static dray_status c_save(void *state, void **data, size_t *len)
{
    double *d = malloc(sizeof(double));
    if (!d)
        return DRAY_ENOMEM;
    *d = ((counter *)state)->score;
    *data = d;
    *len = sizeof(double);
    return DRAY_OK;
}
static dray_status c_load(void *state, const void *data, size_t len)
{
    if (len != sizeof(double))
        return dray_set_error(DRAY_EFORMAT, "counter checkpoint of %zu bytes", len);
    memcpy(&((counter *)state)->score, data, sizeof(double));
    return DRAY_OK;
}
static const dray_tune_class counter_cls = {c_setup, c_step, c_save, c_load, free};
static dray_tune_trainable counter_def = {"counter", NULL, &counter_cls, NULL, NULL};
DRAY_TUNE_TRAINABLE(counter_def)

static dray_runtime *rt;

static dray_tune_space *xy_space(void)
{
    dray_tune_space *sp;
    ASSERT_OK(dray_tune_space_create(&sp));
    dray_tune_val xs[] = {dray_tune_f(0), dray_tune_f(0.3), dray_tune_f(0.6), dray_tune_f(0.9)};
    dray_tune_val ys[] = {dray_tune_i(1), dray_tune_i(2), dray_tune_i(3)};
    ASSERT_OK(dray_tune_space_grid(sp, "x", xs, 4));
    ASSERT_OK(dray_tune_space_grid(sp, "y", ys, 3));
    return sp;
}

TEST(grid_asha_function)
{
    dray_tune_space *sp = xy_space();
    ASSERT_OK(dray_tune_space_const(sp, "sleep_us", dray_tune_i(300)));
    dray_tune_asha_opts ao;
    dray_tune_asha_opts_init(&ao);
    ao.max_t = 10;
    ao.reduction_factor = 2;
    dray_tune_sched *asha;
    ASSERT_OK(dray_tune_sched_create_asha(&ao, &asha));
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.metric = "loss";
    o.mode = DRAY_TUNE_MIN;
    o.scheduler = asha;
    o.verbose = DRAY_TUNE_QUIET;
    atomic_store(&live_max, 0);
    dray_tune_grid *g;
    ASSERT_OK(dray_tune_run(rt, "quad", sp, &o, &g));
    ASSERT_EQ(dray_tune_grid_len(g), 12);
    ASSERT_EQ(dray_tune_grid_num_errors(g), 0);
    size_t best;
    double v;
    ASSERT_OK(dray_tune_grid_best(g, NULL, DRAY_TUNE_MODE_UNSET, "last", &best, &v));
    ASSERT_NEAR(dray_tune_config_num(dray_tune_grid_config(g, best), "x", -1), 0.3, 1e-12);
    ASSERT_EQ(dray_tune_config_int(dray_tune_grid_config(g, best), "y", -1), 2);
    ASSERT_NEAR(v, 0.1, 1e-12); /* reached max_t = 10: 1/10 */
    ASSERT_EQ(dray_tune_grid_iterations(g, best), 10);
    size_t stopped_early = 0;
    for (size_t i = 0; i < 12; i++) {
        ASSERT_EQ(dray_tune_grid_status(g, i), DRAY_TUNE_TERMINATED);
        size_t n;
        const dray_tune_result *const *h = dray_tune_grid_history(g, i, &n);
        ASSERT_EQ(n, (size_t)dray_tune_grid_iterations(g, i));
        double it;
        ASSERT_TRUE(dray_tune_result_get(h[n - 1], "training_iteration", &it));
        ASSERT_EQ((int64_t)it, (int64_t)n);
        ASSERT_TRUE(dray_tune_result_get(h[n - 1], "time_total_s", &it));
        stopped_early += n < 10;
    }
    ASSERT_GT(stopped_early, 0);
    ASSERT_EQ(stopped_early, dray_tune_sched_num_stopped(asha) - (12 - stopped_early));
    /* default concurrency: one trial per worker (1 CPU each) */
    ASSERT_LE(atomic_load(&live_max), dray_runtime_num_workers(rt));
    ASSERT_GE(atomic_load(&live_max), 1);
    /* best over all results vs last: the same here (loss falls monotonically) */
    size_t best_all;
    ASSERT_OK(dray_tune_grid_best(g, "loss", DRAY_TUNE_MIN, "all", &best_all, &v));
    ASSERT_EQ(best_all, best);
    ASSERT_STATUS(dray_tune_grid_best(g, "loss", DRAY_TUNE_MIN, "first", &best_all, &v), DRAY_EINVAL);
    ASSERT_STATUS(dray_tune_grid_best(g, "nope", DRAY_TUNE_MIN, "all", &best_all, &v), DRAY_ENOTFOUND);
    /* CSV: header + 12 rows, the best row's loss printed exactly */
    const char *csv = "/tmp/dray_tune_test.csv";
    ASSERT_OK(dray_tune_grid_write_csv(g, csv));
    FILE *f = fopen(csv, "r");
    ASSERT_TRUE(f != NULL);
    char line[1024];
    int rows = 0;
    ASSERT_TRUE(fgets(line, sizeof(line), f) != NULL);
    ASSERT_CONTAINS(line, "trial_id,status,iterations,time_total_s,config/x,config/y,config/sleep_us,"
                          "loss,x_seen,time_this_iter_s,error\n");
    while (fgets(line, sizeof(line), f))
        rows++;
    fclose(f);
    ASSERT_EQ(rows, 12);
    /* pandas reads it back: 12 rows, unique columns, the same best trial */
    if (system("/usr/bin/python3 -c 'import pandas' 2>/dev/null") == 0) {
        char cmd[512], out[128] = {0};
        snprintf(cmd, sizeof(cmd),
                 "/usr/bin/python3 -c \"import pandas as pd; d = pd.read_csv('%s'); "
                 "assert d.columns.is_unique; b = d.loc[d['loss'].idxmin()]; "
                 "print(len(d), int(b['trial_id']), b['config/x'], int(b['config/y']))\"",
                 csv);
        FILE *p = popen(cmd, "r");
        ASSERT_TRUE(p != NULL);
        ASSERT_TRUE(fgets(out, sizeof(out), p) != NULL);
        ASSERT_EQ(pclose(p), 0);
        char want[128];
        snprintf(want, sizeof(want), "12 %zu 0.3 2\n", best);
        ASSERT_STREQ(out, want);
    }
    remove(csv);
    char table[4096];
    dray_tune_grid_table(g, table, sizeof(table));
    ASSERT_CONTAINS(table, "12 TERMINATED");
    dray_tune_grid_destroy(g);
    dray_tune_sched_destroy(asha);
    dray_tune_space_destroy(sp);
}

TEST(failures_retries_and_stops)
{
    dray_tune_space *sp;
    ASSERT_OK(dray_tune_space_create(&sp));
    dray_tune_val fl[] = {dray_tune_b(false), dray_tune_b(true)};
    ASSERT_OK(dray_tune_space_grid(sp, "fail", fl, 2));
    ASSERT_OK(dray_tune_space_uniform(sp, "x", 0, 1));
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.metric = "loss";
    o.mode = DRAY_TUNE_MIN;
    o.num_samples = 3;
    o.max_failures = 2;
    o.verbose = DRAY_TUNE_QUIET;
    dray_tune_stop stop[] = {{"training_iteration", 6}};
    o.stop = stop;
    o.n_stop = 1;
    dray_tune_grid *g;
    ASSERT_OK(dray_tune_run(rt, "quad", sp, &o, &g));
    ASSERT_EQ(dray_tune_grid_len(g), 6);
    ASSERT_EQ(dray_tune_grid_num_errors(g), 3);
    for (size_t i = 0; i < 6; i++) {
        bool failing = dray_tune_config_get(dray_tune_grid_config(g, i), "fail")->u.b;
        if (failing) {
            ASSERT_EQ(dray_tune_grid_status(g, i), DRAY_TUNE_ERROR);
            ASSERT_CONTAINS(dray_tune_grid_error(g, i), "boom at iteration 3");
            /* resumed from the iteration-2 checkpoint each retry: history 2 + 0 + 0 */
            ASSERT_EQ(dray_tune_grid_iterations(g, i), 2);
        } else {
            ASSERT_EQ(dray_tune_grid_status(g, i), DRAY_TUNE_TERMINATED);
            ASSERT_EQ(dray_tune_grid_iterations(g, i), 6); /* stop criterion */
            ASSERT_STREQ(dray_tune_grid_error(g, i), "");
        }
    }
    dray_tune_grid_destroy(g);
    dray_tune_space_destroy(sp);
}

static bool stop_loss_small(int trial, const dray_tune_result *r, void *user)
{
    (void)trial, (void)user;
    double it;
    return dray_tune_result_get(r, "training_iteration", &it) && it >= 4;
}

TEST(concurrency_budget_and_stop_fn)
{
    dray_tune_space *sp = xy_space();
    ASSERT_OK(dray_tune_space_const(sp, "sleep_us", dray_tune_i(2000)));
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.max_concurrent_trials = 1;
    o.verbose = DRAY_TUNE_QUIET;
    o.stop_fn = stop_loss_small;
    atomic_store(&live_max, 0);
    dray_tune_grid *g;
    ASSERT_OK(dray_tune_run(rt, "quad", sp, &o, &g));
    ASSERT_EQ(atomic_load(&live_max), 1);
    for (size_t i = 0; i < dray_tune_grid_len(g); i++)
        ASSERT_EQ(dray_tune_grid_iterations(g, i), 4);
    dray_tune_grid_destroy(g);
    /* time budget: 12 trials x 1000 iterations x 2 ms would take 24 s; 0.3 s stops them all */
    ASSERT_OK(dray_tune_space_const(sp, "iters", dray_tune_i(1000)));
    o.stop_fn = NULL;
    o.max_concurrent_trials = 0;
    o.time_budget_s = 0.3;
    ASSERT_OK(dray_tune_run(rt, "quad", sp, &o, &g));
    int64_t total = 0;
    for (size_t i = 0; i < dray_tune_grid_len(g); i++) {
        total += dray_tune_grid_iterations(g, i);
        dray_tune_status st = dray_tune_grid_status(g, i);
        ASSERT_TRUE(st == DRAY_TUNE_TERMINATED || st == DRAY_TUNE_PENDING);
    }
    ASSERT_LT(total, 12 * 1000);
    dray_tune_grid_destroy(g);
    dray_tune_space_destroy(sp);
}

TEST(class_trainable_pbt)
{
    dray_tune_space *sp, *mut;
    ASSERT_OK(dray_tune_space_create(&sp));
    ASSERT_OK(dray_tune_space_loguniform(sp, "lr", 0.01, 1));
    ASSERT_OK(dray_tune_space_create(&mut));
    ASSERT_OK(dray_tune_space_loguniform(mut, "lr", 0.01, 1));
    dray_tune_pbt_opts po;
    dray_tune_pbt_opts_init(&po);
    po.time_attr = "training_iteration";
    po.perturbation_interval = 4;
    po.mutations = mut;
    po.seed = 11;
    po.synch = true; /* compared at equal iterations: the top trial never exploits */
    dray_tune_sched *pbt;
    ASSERT_OK(dray_tune_sched_create_pbt(&po, &pbt));
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.metric = "score";
    o.mode = DRAY_TUNE_MAX;
    o.scheduler = pbt;
    o.num_samples = 6;
    o.seed = 5;
    o.verbose = DRAY_TUNE_QUIET;
    dray_tune_stop stop[] = {{"training_iteration", 24}};
    o.stop = stop;
    o.n_stop = 1;
    dray_tune_grid *g;
    ASSERT_OK(dray_tune_run(rt, "counter", sp, &o, &g));
    ASSERT_EQ(dray_tune_grid_num_errors(g), 0);
    char dbg[128];
    dray_tune_sched_debug(pbt, dbg, sizeof(dbg));
    ASSERT_TRUE(strstr(dbg, " 0 perturbs") == NULL);
    /* an exploited trial resumed from a copied checkpoint: its score at some iteration exceeds
     * what its own lr could reach, i.e. score > iteration * lr_initial for the final config */
    double best = -1;
    for (size_t i = 0; i < dray_tune_grid_len(g); i++) {
        ASSERT_EQ(dray_tune_grid_status(g, i), DRAY_TUNE_TERMINATED);
        ASSERT_EQ(dray_tune_grid_iterations(g, i), 24);
        double s;
        ASSERT_TRUE(dray_tune_result_get(dray_tune_grid_last(g, i), "score", &s));
        best = fmax(best, s);
    }
    /* random search with the same 6 configs: best = 24 * max lr */
    dray_tune_searcher *gen;
    ASSERT_OK(dray_tune_searcher_create_basic(sp, 6, 5, &gen));
    double rs = 0;
    for (int i = 0; i < 6; i++) {
        dray_tune_config *c;
        ASSERT_OK(dray_tune_searcher_suggest(gen, i, &c));
        rs = fmax(rs, 24 * dray_tune_config_num(c, "lr", 0));
        dray_tune_config_destroy(c);
    }
    dray_tune_searcher_destroy(gen);
    fprintf(stderr, "pbt best %.4f, random search best %.4f\n", best, rs);
    ASSERT_TRUE(best >= rs - 1e-9);
    dray_tune_grid_destroy(g);
    dray_tune_sched_destroy(pbt);
    dray_tune_space_destroy(sp);
    dray_tune_space_destroy(mut);
}

static atomic_int results_seen;
static bool interrupt_after_15(void *user)
{
    (void)user;
    return atomic_fetch_add(&results_seen, 1) + 1 >= 15;
}

TEST(interrupt_and_resume)
{
    dray_tune_space *sp = xy_space();
    const char *dir = "/tmp/dray_tune_resume_test";
    remove("/tmp/dray_tune_resume_test/tune_state.bin");
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.metric = "loss";
    o.mode = DRAY_TUNE_MIN;
    o.verbose = DRAY_TUNE_QUIET;
    o.storage_path = dir;
    o.stop_experiment = interrupt_after_15;
    atomic_store(&results_seen, 0);
    dray_tune_grid *g;
    ASSERT_OK(dray_tune_run(rt, "quad", sp, &o, &g));
    size_t unfinished = 0;
    for (size_t i = 0; i < dray_tune_grid_len(g); i++)
        unfinished += dray_tune_grid_status(g, i) != DRAY_TUNE_TERMINATED;
    ASSERT_GT(unfinished, 0);
    /* the saved state reads back as the same grid */
    dray_tune_grid *saved;
    ASSERT_OK(dray_tune_grid_load(rt, dir, "loss", DRAY_TUNE_MIN, &saved));
    ASSERT_EQ(dray_tune_grid_len(saved), dray_tune_grid_len(g));
    for (size_t i = 0; i < dray_tune_grid_len(g); i++) {
        ASSERT_EQ(dray_tune_grid_status(saved, i), dray_tune_grid_status(g, i));
        ASSERT_TRUE(dray_tune_config_equal(dray_tune_grid_config(saved, i), dray_tune_grid_config(g, i)));
    }
    dray_tune_grid_destroy(saved);
    ASSERT_STATUS(dray_tune_grid_load(rt, "/tmp/dray_tune_no_such_dir", NULL, DRAY_TUNE_MIN, &saved),
                  DRAY_ENOTFOUND);
    dray_tune_grid_destroy(g);
    o.stop_experiment = NULL;
    o.resume = true;
    ASSERT_OK(dray_tune_run(rt, "quad", sp, &o, &g));
    ASSERT_EQ(dray_tune_grid_len(g), 12);
    for (size_t i = 0; i < 12; i++) {
        ASSERT_EQ(dray_tune_grid_status(g, i), DRAY_TUNE_TERMINATED);
        ASSERT_EQ(dray_tune_grid_iterations(g, i), 10);
        /* the history reads as one uninterrupted run: training_iteration 1..10 */
        size_t n;
        const dray_tune_result *const *h = dray_tune_grid_history(g, i, &n);
        double x = dray_tune_config_num(dray_tune_grid_config(g, i), "x", 0);
        double y = dray_tune_config_num(dray_tune_grid_config(g, i), "y", 0);
        for (size_t k = 0; k < n; k++) {
            double it, loss;
            ASSERT_TRUE(dray_tune_result_get(h[k], "training_iteration", &it));
            ASSERT_TRUE(dray_tune_result_get(h[k], "loss", &loss));
            ASSERT_NEAR(loss, (x - 0.3) * (x - 0.3) + (y - 2) * (y - 2) + 1.0 / it, 1e-12);
        }
        ASSERT_EQ(n >= 10, 1);
    }
    dray_tune_grid_destroy(g);
    /* a corrupt state file is a clear error */
    ASSERT_EQ(truncate("/tmp/dray_tune_resume_test/tune_state.bin", 60), 0);
    ASSERT_STATUS(dray_tune_run(rt, "quad", sp, &o, &g), DRAY_EFORMAT);
    ASSERT_CONTAINS(dray_last_error(), "tune_state.bin' is corrupt at byte");
    remove("/tmp/dray_tune_resume_test/tune_state.bin");
    rmdir(dir);
    dray_tune_space_destroy(sp);
}

TEST(bad_input)
{
    dray_tune_space *sp = xy_space();
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.verbose = DRAY_TUNE_QUIET;
    dray_tune_grid *g = NULL;
    ASSERT_STATUS(dray_tune_run(rt, "no_such_trainable", sp, &o, &g), DRAY_ENOTFOUND);
    ASSERT_CONTAINS(dray_last_error(), "no_such_trainable");
    o.mode = (dray_tune_mode)9;
    ASSERT_STATUS(dray_tune_run(rt, "quad", sp, &o, &g), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "mode");
    o.mode = DRAY_TUNE_MIN;
    o.resume = true;
    ASSERT_STATUS(dray_tune_run(rt, "quad", sp, &o, &g), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "storage_path");
    o.resume = false;
    /* a scheduler metric the trials never report: every trial errors, naming the metric */
    dray_tune_sched *asha;
    ASSERT_OK(dray_tune_sched_create_asha(NULL, &asha));
    o.metric = "accuracy";
    o.scheduler = asha;
    ASSERT_OK(dray_tune_run(rt, "quad", sp, &o, &g));
    ASSERT_EQ(dray_tune_grid_num_errors(g), 12);
    ASSERT_CONTAINS(dray_tune_grid_error(g, 0), "'accuracy'");
    dray_tune_grid_destroy(g);
    dray_tune_sched_destroy(asha);
    /* mode given, no metric anywhere: the scheduler refuses the first trial */
    ASSERT_OK(dray_tune_sched_create_asha(NULL, &asha));
    o.metric = NULL;
    o.scheduler = asha;
    ASSERT_STATUS(dray_tune_run(rt, "quad", sp, &o, &g), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "metric");
    dray_tune_sched_destroy(asha);
    dray_tune_space_destroy(sp);
}


/* history reads as one run: training_iteration 1..n in order, loss matching the iteration */
static void check_history(const dray_tune_grid *g, size_t i)
{
    size_t n;
    const dray_tune_result *const *h = dray_tune_grid_history(g, i, &n);
    double x = dray_tune_config_num(dray_tune_grid_config(g, i), "x", 0);
    double y = dray_tune_config_num(dray_tune_grid_config(g, i), "y", 0);
    ASSERT_EQ((int64_t)n, dray_tune_grid_iterations(g, i));
    for (size_t k = 0; k < n; k++) {
        double it, loss;
        ASSERT_TRUE(dray_tune_result_get(h[k], "training_iteration", &it));
        ASSERT_EQ((int64_t)it, (int64_t)k + 1);
        ASSERT_TRUE(dray_tune_result_get(h[k], "loss", &loss));
        ASSERT_NEAR(loss, (x - 0.3) * (x - 0.3) + (y - 2) * (y - 2) + 1.0 / it, 1e-12);
    }
}

/* synchronous HyperBand through the runner: trials pause at milestones (checkpointed), resume from
 * the checkpoint, and the survivors of a bracket are the best ones */
TEST(hyperband_and_median_run)
{
    dray_tune_space *sp = xy_space();
    dray_tune_hyperband_opts ho;
    dray_tune_hyperband_opts_init(&ho);
    ho.max_t = 9;
    dray_tune_sched *hb;
    ASSERT_OK(dray_tune_sched_create_hyperband(&ho, &hb));
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.metric = "loss";
    o.mode = DRAY_TUNE_MIN;
    o.scheduler = hb;
    o.verbose = DRAY_TUNE_QUIET;
    dray_tune_grid *g;
    ASSERT_OK(dray_tune_run(rt, "quad", sp, &o, &g));
    ASSERT_EQ(dray_tune_grid_num_errors(g), 0);
    /* brackets: trials 0-2 (r 9), 3-7 (r 3, then the best 2 go on to 6), 8-11 (r 1 ...) */
    for (size_t i = 0; i < 12; i++) {
        ASSERT_EQ(dray_tune_grid_status(g, i), DRAY_TUNE_TERMINATED);
        check_history(g, i);
    }
    for (size_t i = 0; i < 3; i++)
        ASSERT_EQ(dray_tune_grid_iterations(g, i), 9);
    int at6 = 0;
    double worst_kept = -1, best_cut = 1e9;
    for (size_t i = 3; i < 8; i++) {
        int64_t it = dray_tune_grid_iterations(g, i);
        double l3;
        size_t n;
        const dray_tune_result *const *h = dray_tune_grid_history(g, i, &n);
        ASSERT_TRUE(dray_tune_result_get(h[2], "loss", &l3));
        ASSERT_TRUE(it == 3 || it == 6);
        if (it == 6) {
            at6++;
            worst_kept = fmax(worst_kept, l3);
        } else {
            best_cut = fmin(best_cut, l3);
        }
    }
    ASSERT_EQ(at6, 2);
    ASSERT_TRUE(worst_kept <= best_cut);
    char dbg[1024];
    dray_tune_sched_debug(hb, dbg, sizeof(dbg));
    ASSERT_CONTAINS(dbg, "Milestone (r)=6");
    dray_tune_grid_destroy(g);
    dray_tune_sched_destroy(hb);

    /* median stopping on training_iteration: the three worst grid points stop early */
    dray_tune_median_opts mo;
    dray_tune_median_opts_init(&mo);
    mo.time_attr = "training_iteration";
    mo.grace_period = 2;
    mo.min_samples_required = 2;
    dray_tune_sched *md;
    ASSERT_OK(dray_tune_sched_create_median(&mo, &md));
    o.scheduler = md;
    o.max_concurrent_trials = 1; /* sequential: later trials compare against finished ones */
    ASSERT_OK(dray_tune_run(rt, "quad", sp, &o, &g));
    ASSERT_EQ(dray_tune_grid_num_errors(g), 0);
    size_t early = 0;
    for (size_t i = 0; i < 12; i++) {
        check_history(g, i);
        early += dray_tune_grid_iterations(g, i) < 10;
    }
    ASSERT_GT(early, 0);
    ASSERT_EQ(early, dray_tune_sched_num_stopped(md));
    size_t best;
    ASSERT_OK(dray_tune_grid_best(g, NULL, DRAY_TUNE_MODE_UNSET, "last", &best, NULL));
    ASSERT_NEAR(dray_tune_config_num(dray_tune_grid_config(g, best), "x", -1), 0.3, 1e-12);
    dray_tune_grid_destroy(g);
    dray_tune_sched_destroy(md);
    dray_tune_space_destroy(sp);
}

TEST(tpe_run_and_table)
{
    dray_tune_space *sp;
    ASSERT_OK(dray_tune_space_create(&sp));
    ASSERT_OK(dray_tune_space_uniform(sp, "x", -1, 2));
    ASSERT_OK(dray_tune_space_randint(sp, "y", 0, 5));
    ASSERT_OK(dray_tune_space_const(sp, "iters", dray_tune_i(2)));
    dray_tune_tpe_opts to;
    dray_tune_tpe_opts_init(&to);
    to.metric = "loss";
    to.mode = DRAY_TUNE_MIN;
    to.num_samples = 30;
    to.seed = 4;
    dray_tune_searcher *tpe;
    ASSERT_OK(dray_tune_searcher_create_tpe(sp, &to, &tpe));
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.metric = "loss";
    o.mode = DRAY_TUNE_MIN;
    o.searcher = tpe;
    o.verbose = DRAY_TUNE_TABLE_ALWAYS;
    /* the live table goes to stderr: catch it in a file */
    char path[] = "/tmp/dray_tune_tableXXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    dray_tune_grid *g;
    dray_status st = dray_tune_run(rt, "quad", sp, &o, &g);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ASSERT_OK(st);
    char buf[8192] = {0};
    ASSERT_TRUE(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
    close(fd);
    remove(path);
    ASSERT_CONTAINS(buf, "Trial status: 30 TERMINATED");
    ASSERT_CONTAINS(buf, "... 10 more trials");
    ASSERT_EQ(dray_tune_grid_len(g), 30);
    size_t best;
    double v;
    ASSERT_OK(dray_tune_grid_best(g, NULL, DRAY_TUNE_MODE_UNSET, "last", &best, &v));
    ASSERT_TRUE(v < 0.5 + 0.1); /* y = 2 found, x near 0.3 */
    dray_tune_grid_destroy(g);
    dray_tune_searcher_destroy(tpe);
    dray_tune_space_destroy(sp);
}

TEST(unavailable_resources)
{
    dray_tune_space *sp = xy_space();
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.verbose = DRAY_TUNE_QUIET;
    o.num_gpus = 1; /* the runtime offers no GPU */
    dray_tune_grid *g;
    ASSERT_OK(dray_tune_run(rt, "quad", sp, &o, &g));
    ASSERT_EQ(dray_tune_grid_num_errors(g), 12);
    ASSERT_CONTAINS(dray_tune_grid_error(g, 0), "cannot start trial 0");
    dray_tune_grid_destroy(g);
    dray_tune_space_destroy(sp);
}

TEST(custom_resources_bound_concurrency)
{
    /* 4 workers but 2 GPUs: trials needing one GPU each never run more than 2 at once. */
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 4;
    cfg.progress = 0;
    dray_resource gpus = {"GPU", 2};
    cfg.resources = &gpus;
    cfg.n_resources = 1;
    dray_runtime *grt;
    ASSERT_OK(dray_init(&cfg, &grt));
    dray_tune_space *sp = xy_space();
    ASSERT_OK(dray_tune_space_const(sp, "sleep_us", dray_tune_i(3000)));
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.verbose = DRAY_TUNE_QUIET;
    o.num_cpus = 1;
    o.num_gpus = 1;
    atomic_store(&live_max, 0);
    dray_tune_grid *g;
    ASSERT_OK(dray_tune_run(grt, "quad", sp, &o, &g));
    ASSERT_EQ(dray_tune_grid_num_errors(g), 0);
    ASSERT_LE(atomic_load(&live_max), 2);
    ASSERT_GE(atomic_load(&live_max), 1);
    dray_tune_grid_destroy(g);
    dray_tune_space_destroy(sp);
    ASSERT_OK(dray_shutdown(grt, DRAY_SHUTDOWN_DRAIN));
}

/* acc: a function trainable with state carried by checkpoints: acc += 1 - |x - 0.7| per step */
static dray_status acc_fn(dray_tune_session *s, const dray_tune_config *cfg, void *user)
{
    (void)user;
    double x = dray_tune_config_num(cfg, "x", 0), state[2] = {0, 0}; /* iteration, acc */
    size_t len;
    const void *ck = dray_tune_session_checkpoint(s, &len);
    if (ck && len == sizeof(state))
        memcpy(state, ck, sizeof(state));
    if ((int64_t)state[0] != dray_tune_session_iteration(s))
        return dray_set_error(DRAY_EINVAL, "checkpoint at %g, session at %lld", state[0],
                              (long long)dray_tune_session_iteration(s));
    dray_status st = DRAY_OK;
    while (st == DRAY_OK) {
        state[0] += 1;
        state[1] += 1 - fabs(x - 0.7);
        dray_tune_metric m[] = {{"acc", state[1]}};
        st = dray_tune_report_checkpoint(s, m, 1, state, sizeof(state));
    }
    return st == DRAY_ECANCELED ? DRAY_OK : st;
}
static dray_tune_trainable acc_def = {"acc", acc_fn, NULL, NULL, NULL};
DRAY_TUNE_TRAINABLE(acc_def)

TEST(function_trainable_pbt)
{
    dray_tune_space *sp, *mut;
    ASSERT_OK(dray_tune_space_create(&sp));
    ASSERT_OK(dray_tune_space_uniform(sp, "x", 0, 1));
    ASSERT_OK(dray_tune_space_create(&mut));
    ASSERT_OK(dray_tune_space_uniform(mut, "x", 0, 1));
    dray_tune_pbt_opts po;
    dray_tune_pbt_opts_init(&po);
    po.time_attr = "training_iteration";
    po.perturbation_interval = 3;
    po.mutations = mut;
    po.seed = 2;
    dray_tune_sched *pbt;
    ASSERT_OK(dray_tune_sched_create_pbt(&po, &pbt));
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.metric = "acc";
    o.mode = DRAY_TUNE_MAX;
    o.scheduler = pbt;
    o.num_samples = 8;
    o.seed = 9;
    o.verbose = DRAY_TUNE_QUIET;
    dray_tune_stop stop[] = {{"training_iteration", 30}};
    o.stop = stop;
    o.n_stop = 1;
    dray_tune_grid *g;
    ASSERT_OK(dray_tune_run(rt, "acc", sp, &o, &g));
    ASSERT_EQ(dray_tune_grid_num_errors(g), 0);
    char dbg[128];
    dray_tune_sched_debug(pbt, dbg, sizeof(dbg));
    ASSERT_TRUE(strstr(dbg, " 0 perturbs") == NULL);
    for (size_t i = 0; i < 8; i++) {
        ASSERT_EQ(dray_tune_grid_status(g, i), DRAY_TUNE_TERMINATED);
        ASSERT_EQ(dray_tune_grid_iterations(g, i), 30);
        /* iterations only grow: an exploit continues from the source's checkpoint iteration
         * (which may be ahead, as in Ray), and the trainable checked that its checkpoint and the
         * session agree on the iteration (else the trial would have errored) */
        size_t n;
        const dray_tune_result *const *h = dray_tune_grid_history(g, i, &n);
        double prev = 0;
        for (size_t k = 0; k < n; k++) {
            double it;
            ASSERT_TRUE(dray_tune_result_get(h[k], "training_iteration", &it));
            ASSERT_TRUE(it > prev);
            prev = it;
        }
        ASSERT_EQ((int64_t)prev, 30);
    }
    dray_tune_grid_destroy(g);
    dray_tune_sched_destroy(pbt);
    dray_tune_space_destroy(sp);
    dray_tune_space_destroy(mut);
}

/* nested dray work inside trials: a task summing i^2 for i < n */
DRAY_FUNCTION(tune_test_sumsq)
{
    int64_t n = args[0].u.i, acc = 0;
    for (int64_t i = 0; i < n; i++)
        acc += i * i;
    *result = dray_int(acc);
    return DRAY_OK;
}

static dray_status nested_sum(dray_runtime *nrt, int64_t n, int64_t *out)
{
    dray_ref *refs[4];
    dray_value arg = dray_int(n);
    for (int k = 0; k < 4; k++)
        if (dray_submit(nrt, "tune_test_sumsq", &arg, 1, NULL, &refs[k]) != DRAY_OK)
            return DRAY_EIO;
    *out = 0;
    dray_status st = DRAY_OK;
    for (int k = 0; k < 4; k++) {
        dray_value v;
        if (st == DRAY_OK && (st = dray_get(nrt, refs[k], -1, &v)) == DRAY_OK)
            *out += v.u.i;
        dray_ref_release(refs[k]);
    }
    return st;
}

typedef struct nested {
    dray_runtime *rt;
    int64_t n;
} nested;
static dray_status n_setup(dray_runtime *nrt, const dray_tune_config *cfg, void *user, void **state)
{
    (void)user;
    nested *x = calloc(1, sizeof(*x));
    if (!x)
        return DRAY_ENOMEM;
    x->rt = nrt;
    x->n = dray_tune_config_int(cfg, "n", 10);
    *state = x;
    return DRAY_OK;
}
static dray_status n_step(void *state, dray_tune_result *r)
{
    nested *x = state;
    int64_t total;
    dray_status st = nested_sum(x->rt, x->n, &total);
    return st == DRAY_OK ? dray_tune_result_set(r, "total", (double)total) : st;
}
static const dray_tune_class nested_cls = {n_setup, n_step, NULL, NULL, free};
static dray_tune_trainable nested_cls_def = {"nested_cls", NULL, &nested_cls, NULL, NULL};
DRAY_TUNE_TRAINABLE(nested_cls_def)

static dray_status nested_fn(dray_tune_session *s, const dray_tune_config *cfg, void *user)
{
    (void)user;
    int64_t n = dray_tune_config_int(cfg, "n", 10), total;
    dray_status st = DRAY_OK;
    while (st == DRAY_OK) {
        if ((st = nested_sum(dray_tune_session_runtime(s), n, &total)) != DRAY_OK)
            break;
        dray_tune_metric m[] = {{"total", (double)total}};
        st = dray_tune_report(s, m, 1);
    }
    return st == DRAY_ECANCELED ? DRAY_OK : st;
}
static dray_tune_trainable nested_fn_def = {"nested_fn", nested_fn, NULL, NULL, NULL};
DRAY_TUNE_TRAINABLE(nested_fn_def)

TEST(nested_tasks)
{
    dray_tune_space *sp;
    ASSERT_OK(dray_tune_space_create(&sp));
    dray_tune_val ns[] = {dray_tune_i(10), dray_tune_i(100), dray_tune_i(1000), dray_tune_i(7)};
    ASSERT_OK(dray_tune_space_grid(sp, "n", ns, 4));
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.verbose = DRAY_TUNE_QUIET;
    dray_tune_stop stop[] = {{"training_iteration", 5}};
    o.stop = stop;
    o.n_stop = 1;
    for (int pass = 0; pass < 2; pass++) {
        /* class trainables run step on a worker, which helps while waiting: every worker may hold
         * a trial; function trainables hold a worker while their thread computes: leave one free */
        o.max_concurrent_trials = pass == 0 ? 0 : dray_runtime_num_workers(rt) - 1;
        dray_tune_grid *g;
        ASSERT_OK(dray_tune_run(rt, pass == 0 ? "nested_cls" : "nested_fn", sp, &o, &g));
        ASSERT_EQ(dray_tune_grid_num_errors(g), 0);
        for (size_t i = 0; i < 4; i++) {
            int64_t n = dray_tune_config_int(dray_tune_grid_config(g, i), "n", 0);
            double total;
            ASSERT_TRUE(dray_tune_result_get(dray_tune_grid_last(g, i), "total", &total));
            ASSERT_EQ((int64_t)total, 4 * (n - 1) * n * (2 * n - 1) / 6);
            ASSERT_EQ(dray_tune_grid_iterations(g, i), 5);
        }
        dray_tune_grid_destroy(g);
    }
    dray_tune_space_destroy(sp);
}

/* vshape: loss_i = |i - 5| + x for i = 1..10 (best at i = 5); config nan = true reports NaN */
static dray_status vshape(dray_tune_session *s, const dray_tune_config *cfg, void *user)
{
    (void)user;
    double x = dray_tune_config_num(cfg, "x", 0);
    bool nan = dray_tune_config_get(cfg, "nan") && dray_tune_config_get(cfg, "nan")->u.b;
    for (int i = 1; i <= 10; i++) {
        dray_tune_metric m[] = {{"loss", nan ? NAN : fabs(i - 5.0) + x}};
        dray_status st = dray_tune_report(s, m, 1);
        if (st != DRAY_OK)
            return st == DRAY_ECANCELED ? DRAY_OK : st;
    }
    return DRAY_OK;
}
static dray_tune_trainable vshape_def = {"vshape", vshape, NULL, NULL, NULL};
DRAY_TUNE_TRAINABLE(vshape_def)

TEST(best_scopes)
{
    dray_tune_space *sp;
    ASSERT_OK(dray_tune_space_create(&sp));
    dray_tune_val xs[] = {dray_tune_f(0.5), dray_tune_f(0.25), dray_tune_f(0.75)};
    dray_tune_val nans[] = {dray_tune_b(false), dray_tune_b(true)};
    ASSERT_OK(dray_tune_space_grid(sp, "x", xs, 3));
    ASSERT_OK(dray_tune_space_grid(sp, "nan", nans, 2));
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.verbose = DRAY_TUNE_QUIET;
    dray_tune_grid *g;
    ASSERT_OK(dray_tune_run(rt, "vshape", sp, &o, &g));
    size_t last_i, all_i;
    double last_v, all_v;
    ASSERT_OK(dray_tune_grid_best(g, "loss", DRAY_TUNE_MIN, "last", &last_i, &last_v));
    ASSERT_OK(dray_tune_grid_best(g, "loss", DRAY_TUNE_MIN, "all", &all_i, &all_v));
    /* grids by path: "nan" varies fastest, so trial 2 is x = 0.25, nan = false; NaN never wins */
    ASSERT_EQ(last_i, 2);
    ASSERT_EQ(all_i, 2);
    ASSERT_NEAR(last_v, 5.25, 0);
    ASSERT_NEAR(all_v, 0.25, 0);
    ASSERT_OK(dray_tune_grid_best(g, "loss", DRAY_TUNE_MAX, "all", &all_i, &all_v));
    ASSERT_EQ(all_i, 4);
    ASSERT_NEAR(all_v, 5.75, 0); /* |10 - 5| + 0.75 */
    dray_tune_grid_destroy(g);
    dray_tune_space_destroy(sp);
}

int main(int argc, char **argv)
{
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 2;
    cfg.progress = 0;
    if (dray_init(&cfg, &rt) != DRAY_OK)
        return 1;
    static const test_case_ cases[] = {T_(grid_asha_function), T_(failures_retries_and_stops),
                                       T_(concurrency_budget_and_stop_fn), T_(class_trainable_pbt),
                                       T_(interrupt_and_resume), T_(bad_input),
                                       T_(hyperband_and_median_run), T_(tpe_run_and_table),
                                       T_(unavailable_resources),
                                       T_(custom_resources_bound_concurrency),
                                       T_(function_trainable_pbt),
                                       T_(nested_tasks), T_(best_scopes)};
    int rc = run_tests_(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return rc;
}
