/* The seed's Tune example: a linear model trained by SGD reports its validation loss every epoch; a
 * grid search over learning rate x momentum runs under ASHA(metric="val_loss", mode="min"); the best
 * configuration is printed and checked (it must be the grid's best and reach the noise floor). */
#include <dray/dray.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_TRAIN 2000
#define N_VAL 500
#define DIM 8
#define NOISE 0.1

/* y = w_true . x + noise, generated from a fixed seed (the same data in every trial) */
static void make_data(double *x, double *y, int n, uint64_t seed)
{
    dray_tune_rng rng;
    dray_tune_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        double t = 0;
        for (int j = 0; j < DIM; j++) {
            x[i * DIM + j] = dray_tune_rng_normal(&rng);
            t += (j + 1) * 0.25 * x[i * DIM + j];
        }
        y[i] = t + NOISE * dray_tune_rng_normal(&rng);
    }
}

static dray_status train(dray_tune_session *s, const dray_tune_config *cfg, void *user)
{
    (void)user;
    double lr = dray_tune_config_num(cfg, "lr", 0.01), mom = dray_tune_config_num(cfg, "momentum", 0);
    double *x = malloc(sizeof(double) * (N_TRAIN + N_VAL) * DIM);
    double *y = malloc(sizeof(double) * (N_TRAIN + N_VAL));
    if (!x || !y) {
        free(x);
        free(y);
        return dray_set_error(DRAY_ENOMEM, "example: out of memory");
    }
    make_data(x, y, N_TRAIN + N_VAL, 7);
    double w[DIM] = {0}, v[DIM] = {0};
    dray_status st = DRAY_OK;
    for (int epoch = 0; epoch < 30 && st == DRAY_OK; epoch++) {
        for (int b = 0; b < N_TRAIN; b += 50) { /* minibatches of 50 */
            double g[DIM] = {0};
            for (int i = b; i < b + 50; i++) {
                double err = -y[i];
                for (int j = 0; j < DIM; j++)
                    err += w[j] * x[i * DIM + j];
                for (int j = 0; j < DIM; j++)
                    g[j] += 2 * err * x[i * DIM + j] / 50;
            }
            for (int j = 0; j < DIM; j++) {
                v[j] = mom * v[j] - lr * g[j];
                w[j] += v[j];
            }
        }
        double loss = 0;
        for (int i = N_TRAIN; i < N_TRAIN + N_VAL; i++) {
            double err = -y[i];
            for (int j = 0; j < DIM; j++)
                err += w[j] * x[i * DIM + j];
            loss += err * err / N_VAL;
        }
        if (!isfinite(loss))
            loss = 1e30; /* diverged: report a huge loss rather than NaN */
        dray_tune_metric m[] = {{"val_loss", loss}};
        st = dray_tune_report(s, m, 1);
    }
    free(x);
    free(y);
    return st == DRAY_ECANCELED ? DRAY_OK : st;
}
static dray_tune_trainable sgd = {"sgd_linear", train, NULL, NULL, NULL};
DRAY_TUNE_TRAINABLE(sgd)

int main(void)
{
    dray_runtime *rt;
    dray_tune_space *sp = NULL;
    dray_tune_sched *asha = NULL;
    dray_tune_grid *g = NULL;
    int rc = 1;
    if (dray_init(NULL, &rt) != DRAY_OK) {
        fprintf(stderr, "dray_init: %s\n", dray_last_error());
        return 1;
    }
    dray_tune_val lrs[] = {dray_tune_f(0.0003), dray_tune_f(0.003), dray_tune_f(0.03),
                           dray_tune_f(0.3)};
    dray_tune_val moms[] = {dray_tune_f(0.0), dray_tune_f(0.5), dray_tune_f(0.9)};
    dray_tune_asha_opts ao;
    dray_tune_asha_opts_init(&ao);
    ao.metric = "val_loss";
    ao.mode = DRAY_TUNE_MIN;
    ao.max_t = 30;
    ao.grace_period = 2;
    ao.reduction_factor = 2;
    if (dray_tune_space_create(&sp) || dray_tune_space_grid(sp, "lr", lrs, 4) ||
        dray_tune_space_grid(sp, "momentum", moms, 3) || dray_tune_sched_create_asha(&ao, &asha))
        goto out;
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.name = "sgd_linear";
    o.metric = "val_loss";
    o.mode = DRAY_TUNE_MIN;
    o.scheduler = asha;
    if (dray_tune_run(rt, "sgd_linear", sp, &o, &g) != DRAY_OK)
        goto out;
    size_t best;
    double loss;
    if (dray_tune_grid_best(g, NULL, DRAY_TUNE_MODE_UNSET, "last", &best, &loss) != DRAY_OK)
        goto out;
    char cfg[256];
    dray_tune_config_format(dray_tune_grid_config(g, best), cfg, sizeof(cfg));
    size_t early = 0;
    for (size_t i = 0; i < dray_tune_grid_len(g); i++)
        early += dray_tune_grid_iterations(g, i) < 30;
    printf("trials: %zu, stopped early by ASHA: %zu\n", dray_tune_grid_len(g), early);
    printf("best config: %s  val_loss=%.5f after %lld epochs\n", cfg, loss,
           (long long)dray_tune_grid_iterations(g, best));
    /* checks: the best is the minimum over every trial's last result, and near the noise floor */
    for (size_t i = 0; i < dray_tune_grid_len(g); i++) {
        double v;
        if (dray_tune_grid_status(g, i) != DRAY_TUNE_TERMINATED ||
            !dray_tune_result_get(dray_tune_grid_last(g, i), "val_loss", &v) || v < loss) {
            fprintf(stderr, "check failed: trial %zu (%s)\n", i, dray_tune_grid_error(g, i));
            goto out;
        }
    }
    if (!(loss < 2 * NOISE * NOISE)) {
        fprintf(stderr, "check failed: best val_loss %.5f is not near the noise floor %.5f\n", loss,
                NOISE * NOISE);
        goto out;
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "tune example failed: %s\n", dray_last_error());
    dray_tune_grid_destroy(g);
    dray_tune_sched_destroy(asha);
    dray_tune_space_destroy(sp);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return rc;
}
