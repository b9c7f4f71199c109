/* Result grid export as a frame table and a Parquet file (read back with the parquet module), when
 * the build has the frame module; without it the calls must say they are unsupported. */
#include "test.h"
#include "dray/dray.h"

#include <unistd.h>

static dray_status trial(dray_tune_session *s, const dray_tune_config *cfg, void *user)
{
    (void)user;
    double x = dray_tune_config_num(cfg, "x", 0);
    if (dray_tune_config_int(cfg, "k", 0) == 3)
        return dray_set_error(DRAY_ERANGE, "k=3 fails");
    for (int i = 1; i <= 3; i++) {
        dray_tune_metric m[] = {{"score", x * i}};
        dray_status st = dray_tune_report(s, m, 1);
        if (st != DRAY_OK)
            return st == DRAY_ECANCELED ? DRAY_OK : st;
    }
    return DRAY_OK;
}
static dray_tune_trainable def = {"export_trial", trial, NULL, NULL, NULL};
DRAY_TUNE_TRAINABLE(def)

TEST(export)
{
    dray_runtime *rt;
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 2;
    cfg.progress = 0;
    ASSERT_OK(dray_init(&cfg, &rt));
    dray_tune_space *sp;
    ASSERT_OK(dray_tune_space_create(&sp));
    dray_tune_val ks[] = {dray_tune_i(1), dray_tune_i(2), dray_tune_i(3)};
    dray_tune_val opt[] = {dray_tune_s("sgd"), dray_tune_s("adam")};
    ASSERT_OK(dray_tune_space_grid(sp, "k", ks, 3));
    ASSERT_OK(dray_tune_space_choice(sp, "opt", opt, 2));
    ASSERT_OK(dray_tune_space_uniform(sp, "x", 0, 1));
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.num_samples = 2;
    o.verbose = DRAY_TUNE_QUIET;
    dray_tune_grid *g;
    ASSERT_OK(dray_tune_run(rt, "export_trial", sp, &o, &g));
    ASSERT_EQ(dray_tune_grid_len(g), 6);
    ASSERT_EQ(dray_tune_grid_num_errors(g), 2);
    const char *path = "/tmp/dray_tune_export_test.parquet";
#if __has_include("dray/frame.h")
    dray_table *t;
    ASSERT_OK(dray_tune_grid_to_table(g, &t));
    ASSERT_EQ(dray_table_num_rows(t), 6);
    const char *want[] = {"trial_id", "status", "iterations", "time_total_s", "config/k",
                          "config/opt", "config/x", "score", "time_this_iter_s", "error"};
    ASSERT_EQ(dray_table_num_columns(t), 10);
    for (size_t i = 0; i < 10; i++)
        ASSERT_STREQ(dray_table_column_name(t, i), want[i]);
    ASSERT_EQ(dray_column_type(dray_table_column(t, 4)), DRAY_DT_INT64);
    ASSERT_EQ(dray_column_type(dray_table_column(t, 5)), DRAY_DT_UTF8);
    ASSERT_EQ(dray_column_type(dray_table_column(t, 6)), DRAY_DT_FLOAT64);
    for (int64_t i = 0; i < 6; i++) {
        const dray_tune_config *c = dray_tune_grid_config(g, (size_t)i);
        ASSERT_EQ(dray_column_get_i64(dray_table_column(t, 4), i), dray_tune_config_int(c, "k", -1));
        ASSERT_NEAR(dray_column_get_f64(dray_table_column(t, 6), i), dray_tune_config_num(c, "x", -1), 0);
        bool failed = dray_tune_config_int(c, "k", 0) == 3;
        /* failed trials reported nothing: null score, error text */
        ASSERT_EQ(dray_column_is_valid(dray_table_column(t, 7), i), !failed);
        ASSERT_EQ(dray_column_is_valid(dray_table_column(t, 9), i), failed);
    }
    dray_table_release(t);
    ASSERT_OK(dray_tune_grid_write_parquet(g, path));
    dray_parquet_file *pf;
    ASSERT_OK(dray_parquet_open(path, &pf));
    ASSERT_EQ(dray_parquet_num_rows(pf), 6);
    ASSERT_EQ(dray_parquet_num_columns(pf), 10);
    ASSERT_STREQ(dray_parquet_column_name(pf, 6), "config/x");
    dray_parquet_close(pf);
    remove(path);
#else
    dray_table *t;
    ASSERT_STATUS(dray_tune_grid_to_table(g, &t), DRAY_EUNSUPPORTED);
    ASSERT_CONTAINS(dray_last_error(), "frame module");
    ASSERT_STATUS(dray_tune_grid_write_parquet(g, path), DRAY_EUNSUPPORTED);
    ASSERT_TRUE(access(path, F_OK) != 0);
#endif
    dray_tune_grid_destroy(g);
    dray_tune_space_destroy(sp);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
}

RUN_TESTS(T_(export))
