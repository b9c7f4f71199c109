/* TPE: beats random search at equal budget on a smooth 3-parameter objective (over several seeds),
 * keeps suggestions inside their domains, stops after num_samples, and rejects bad options. */
#include "test.h"
#include "dray/tune.h"

static dray_tune_space *make_space(void)
{
    dray_tune_space *sp;
    ASSERT_OK(dray_tune_space_create(&sp));
    dray_tune_val opts[] = {dray_tune_s("sgd"), dray_tune_s("adam"), dray_tune_s("rmsprop")};
    ASSERT_OK(dray_tune_space_uniform(sp, "x", 0, 1));
    ASSERT_OK(dray_tune_space_loguniform(sp, "lr", 1e-5, 1));
    ASSERT_OK(dray_tune_space_choice(sp, "opt", opts, 3));
    ASSERT_OK(dray_tune_space_randint(sp, "depth", 1, 11));
    return sp;
}

/* minimum 0 at x = 0.7, lr = 10^-2.5, opt = adam, depth = 6 */
static double objective(const dray_tune_config *c)
{
    double x = dray_tune_config_num(c, "x", NAN), lr = dray_tune_config_num(c, "lr", NAN);
    double d = (double)dray_tune_config_int(c, "depth", 0);
    double o = strcmp(dray_tune_config_str(c, "opt", ""), "adam") == 0 ? 0 : 0.5;
    return 4 * (x - 0.7) * (x - 0.7) + 0.25 * pow(log10(lr) + 2.5, 2) + o + 0.02 * (d - 6) * (d - 6);
}

static double run(dray_tune_searcher *s, int budget)
{
    double best = INFINITY;
    for (int i = 0; i < budget; i++) {
        dray_tune_config *c;
        ASSERT_OK(dray_tune_searcher_suggest(s, i, &c));
        double x = dray_tune_config_num(c, "x", NAN), lr = dray_tune_config_num(c, "lr", NAN);
        int64_t d = dray_tune_config_int(c, "depth", 0);
        ASSERT_TRUE(x >= 0 && x <= 1 && lr >= 1e-5 && lr <= 1 && d >= 1 && d <= 10);
        double v = objective(c);
        best = fmin(best, v);
        dray_tune_result *r;
        ASSERT_OK(dray_tune_result_create(&r));
        ASSERT_OK(dray_tune_result_set(r, "loss", v));
        dray_tune_searcher_on_complete(s, i, r, false);
        dray_tune_result_destroy(r);
        dray_tune_config_destroy(c);
    }
    return best;
}

TEST(beats_random)
{
    dray_tune_space *sp = make_space();
    double sum_tpe = 0, sum_rand = 0;
    int wins = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        dray_tune_tpe_opts o;
        dray_tune_tpe_opts_init(&o);
        o.metric = "loss";
        o.mode = DRAY_TUNE_MIN;
        o.num_samples = 60;
        o.seed = seed;
        dray_tune_searcher *tpe, *rnd;
        ASSERT_OK(dray_tune_searcher_create_tpe(sp, &o, &tpe));
        ASSERT_OK(dray_tune_searcher_create_basic(sp, 60, seed, &rnd));
        double a = run(tpe, 60), b = run(rnd, 60);
        fprintf(stderr, "seed %llu: tpe %.4f random %.4f\n", (unsigned long long)seed, a, b);
        sum_tpe += a;
        sum_rand += b;
        wins += a < b;
        dray_tune_config *c;
        ASSERT_STATUS(dray_tune_searcher_suggest(tpe, 60, &c), DRAY_ENOTFOUND);
        dray_tune_searcher_destroy(tpe);
        dray_tune_searcher_destroy(rnd);
    }
    ASSERT_TRUE(sum_tpe < 0.6 * sum_rand);
    ASSERT_GE(wins, 6);
    dray_tune_space_destroy(sp);
}

TEST(bad_options)
{
    dray_tune_space *sp = make_space();
    dray_tune_tpe_opts o;
    dray_tune_tpe_opts_init(&o);
    dray_tune_searcher *s;
    ASSERT_STATUS(dray_tune_searcher_create_tpe(sp, &o, &s), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "metric and a mode");
    o.metric = "loss";
    o.mode = DRAY_TUNE_MIN;
    o.gamma = 1.5;
    ASSERT_STATUS(dray_tune_searcher_create_tpe(sp, &o, &s), DRAY_EINVAL);
    o.gamma = 0.25;
    dray_tune_val g[] = {dray_tune_i(1), dray_tune_i(2)};
    ASSERT_OK(dray_tune_space_grid(sp, "g", g, 2));
    ASSERT_STATUS(dray_tune_searcher_create_tpe(sp, &o, &s), DRAY_EINVAL);
    ASSERT_CONTAINS(dray_last_error(), "grid_search 'g'");
    dray_tune_space_destroy(sp);
}

RUN_TESTS(T_(beats_random), T_(bad_options))
