/* Tunes XGBoost (Debian's libxgboost, C API, loaded with dlopen) on a synthetic binary classification
 * problem: a function trainable does one boosting round per iteration and reports the validation
 * logloss; ASHA stops poor configurations early. Checkpoints are the booster's JSON model.
 * Usage: tune_xgboost [--scheduler asha|fifo] [--samples N] [--target LOSS] [--seed S]
 *                     [--concurrency C] */
#include <dray/dray.h>

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if __has_include(<xgboost/c_api.h>)
#include <xgboost/c_api.h>

#define N_TRAIN 3000
#define N_VAL 1000
#define DIM 20
#define MAX_ROUNDS 40

/* the XGBoost functions used, resolved at run time */
typedef struct xgb_api {
    __typeof__(&XGDMatrixCreateFromMat) dmat_create;
    __typeof__(&XGDMatrixSetFloatInfo) dmat_set;
    __typeof__(&XGDMatrixFree) dmat_free;
    __typeof__(&XGBoosterCreate) create;
    __typeof__(&XGBoosterFree) free_;
    __typeof__(&XGBoosterSetParam) set_param;
    __typeof__(&XGBoosterUpdateOneIter) update;
    __typeof__(&XGBoosterEvalOneIter) eval;
    __typeof__(&XGBoosterSaveModelToBuffer) save;
    __typeof__(&XGBoosterLoadModelFromBuffer) load;
    const char *(*last_error)(void);
} xgb_api;

/* process-local data shared by every trial: the API and the generated dataset (read-only) */
typedef struct shared {
    xgb_api api;
    bool ok;
    float x[(N_TRAIN + N_VAL) * DIM];
    float y[N_TRAIN + N_VAL];
} shared;

static shared data;
static pthread_once_t data_once = PTHREAD_ONCE_INIT;

#define SYM(field, name) (*(void **)&data.api.field = dlsym(lib, name))

static void load_all(void)
{
    void *lib = dlopen("libxgboost.so.0", RTLD_NOW);
    if (!lib)
        lib = dlopen("libxgboost.so", RTLD_NOW);
    if (!lib)
        return;
    if (!SYM(dmat_create, "XGDMatrixCreateFromMat") || !SYM(dmat_set, "XGDMatrixSetFloatInfo") ||
        !SYM(dmat_free, "XGDMatrixFree") || !SYM(create, "XGBoosterCreate") ||
        !SYM(free_, "XGBoosterFree") || !SYM(set_param, "XGBoosterSetParam") ||
        !SYM(update, "XGBoosterUpdateOneIter") || !SYM(eval, "XGBoosterEvalOneIter") ||
        !SYM(save, "XGBoosterSaveModelToBuffer") || !SYM(load, "XGBoosterLoadModelFromBuffer") ||
        !SYM(last_error, "XGBGetLastError"))
        return;
    /* synthetic classification: a logistic model with interactions, 4 informative features of 20 */
    dray_tune_rng rng;
    dray_tune_rng_seed(&rng, 2026);
    for (int i = 0; i < N_TRAIN + N_VAL; i++) {
        float *x = &data.x[i * DIM];
        for (int j = 0; j < DIM; j++)
            x[j] = (float)dray_tune_rng_normal(&rng);
        double z = 1.5 * x[0] - 2.0 * x[1] + 1.2 * x[2] * x[3] + (x[4] > 0.5 ? 1.0 : -0.5);
        data.y[i] = dray_tune_rng_uniform(&rng) < 1.0 / (1.0 + exp(-z)) ? 1.0f : 0.0f;
    }
    data.ok = true;
}

typedef struct xgb_trial {
    DMatrixHandle train, val;
    BoosterHandle booster;
    int round;
} xgb_trial;

static dray_status xgb_fail(const char *what)
{
    return dray_set_error(DRAY_EIO, "xgboost %s: %s", what, data.api.last_error());
}

static void xgb_cleanup(void *state)
{
    xgb_trial *t = state;
    if (t->booster)
        data.api.free_(t->booster);
    if (t->train)
        data.api.dmat_free(t->train);
    if (t->val)
        data.api.dmat_free(t->val);
    free(t);
}

static dray_status xgb_setup(const dray_tune_config *cfg, void *user, void **state)
{
    (void)user;
    pthread_once(&data_once, load_all);
    if (!data.ok)
        return dray_set_error(DRAY_ENOTFOUND, "libxgboost could not be loaded");
    const xgb_api *a = &data.api;
    xgb_trial *t = calloc(1, sizeof(*t));
    if (!t)
        return DRAY_ENOMEM;
    char buf[64];
    dray_status st = DRAY_OK;
    if (a->dmat_create(data.x, N_TRAIN, DIM, NAN, &t->train) ||
        a->dmat_set(t->train, "label", data.y, N_TRAIN) ||
        a->dmat_create(data.x + N_TRAIN * DIM, N_VAL, DIM, NAN, &t->val) ||
        a->dmat_set(t->val, "label", data.y + N_TRAIN, N_VAL))
        st = xgb_fail("DMatrix");
    DMatrixHandle both[2] = {t->train, t->val};
    if (st == DRAY_OK && a->create(both, 2, &t->booster))
        st = xgb_fail("XGBoosterCreate");
    const char *fixed[][2] = {{"objective", "binary:logistic"}, {"eval_metric", "logloss"},
                              {"nthread", "1"}, {"tree_method", "hist"}, {"verbosity", "0"}};
    for (size_t i = 0; i < 5 && st == DRAY_OK; i++)
        if (a->set_param(t->booster, fixed[i][0], fixed[i][1]))
            st = xgb_fail("XGBoosterSetParam");
    const char *tuned[] = {"eta", "max_depth", "subsample", "min_child_weight", "lambda"};
    for (size_t i = 0; i < 5 && st == DRAY_OK; i++) {
        const dray_tune_val *v = dray_tune_config_get(cfg, tuned[i]);
        if (!v)
            continue;
        if (v->kind == DRAY_TUNE_INT)
            snprintf(buf, sizeof(buf), "%lld", (long long)v->u.i);
        else
            snprintf(buf, sizeof(buf), "%.17g", dray_tune_val_num(v));
        if (a->set_param(t->booster, tuned[i], buf))
            st = xgb_fail(tuned[i]);
    }
    if (st != DRAY_OK) {
        xgb_cleanup(t);
        return st;
    }
    *state = t;
    return DRAY_OK;
}

/* one trial: everything XGBoost does for it happens on the trainable's own thread (a function
 * trainable), which XGBoost's per-thread state needs; a checkpoint (round count + JSON model) is
 * reported every 10 rounds and restored on resume */
static dray_status xgb_train(dray_tune_session *s, const dray_tune_config *cfg, void *user)
{
    void *state = NULL;
    dray_status st = xgb_setup(cfg, user, &state);
    if (st != DRAY_OK)
        return st;
    xgb_trial *t = state;
    const xgb_api *a = &data.api;
    size_t ck_len;
    const void *ck = dray_tune_session_checkpoint(s, &ck_len);
    if (ck && ck_len >= sizeof(int)) {
        memcpy(&t->round, ck, sizeof(int));
        if (a->load(t->booster, (const char *)ck + sizeof(int), ck_len - sizeof(int)))
            st = xgb_fail("LoadModelFromBuffer");
    }
    while (st == DRAY_OK && t->round < MAX_ROUNDS) {
        DMatrixHandle val[1] = {t->val};
        const char *names[1] = {"val"}, *out = NULL, *p;
        if (a->update(t->booster, t->round, t->train)) {
            st = xgb_fail("UpdateOneIter");
            break;
        }
        if (a->eval(t->booster, t->round, val, names, 1, &out)) {
            st = xgb_fail("EvalOneIter");
            break;
        }
        if (!(p = strstr(out, "val-logloss:"))) {
            st = dray_set_error(DRAY_EFORMAT, "xgboost eval output '%s' has no val-logloss", out);
            break;
        }
        t->round++;
        dray_tune_metric m[] = {{"val_logloss", strtod(p + 12, NULL)}};
        if (t->round % 10 == 0) {
            bst_ulong n = 0;
            const char *model = NULL;
            unsigned char *buf;
            if (a->save(t->booster, "{\"format\": \"json\"}", &n, &model)) {
                st = xgb_fail("SaveModelToBuffer");
                break;
            }
            if (!(buf = malloc(sizeof(int) + n))) {
                st = DRAY_ENOMEM;
                break;
            }
            memcpy(buf, &t->round, sizeof(int));
            memcpy(buf + sizeof(int), model, n);
            st = dray_tune_report_checkpoint(s, m, 1, buf, sizeof(int) + n);
            free(buf);
        } else {
            st = dray_tune_report(s, m, 1);
        }
    }
    xgb_cleanup(t);
    return st == DRAY_ECANCELED ? DRAY_OK : st;
}

static dray_tune_trainable xgb_def = {"xgboost", xgb_train, NULL, NULL, NULL};
DRAY_TUNE_TRAINABLE(xgb_def)

/* time to target: the driver sees every result in order; the first one at or under the target
 * marks the time */
typedef struct target {
    double target, t0, reached_s;
} target;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool watch(int trial, const dray_tune_result *r, void *user)
{
    (void)trial;
    target *t = user;
    double v;
    if (t->reached_s < 0 && dray_tune_result_get(r, "val_logloss", &v) && v <= t->target)
        t->reached_s = now_s() - t->t0;
    return false;
}

int main(int argc, char **argv)
{
    const char *sched_name = "asha";
    int samples = 12;
    uint64_t seed = 1;
    int concurrency = 0;
    target tg = {0.42, 0, -1};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--scheduler") == 0)
            sched_name = argv[i + 1];
        else if (strcmp(argv[i], "--samples") == 0)
            samples = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--target") == 0)
            tg.target = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--concurrency") == 0)
            concurrency = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0)
            seed = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    pthread_once(&data_once, load_all);
    if (!data.ok) {
        printf("tune_xgboost: libxgboost not available (apt-get install libxgboost-dev): skipped\n");
        return 0;
    }
    dray_runtime *rt;
    if (dray_init(NULL, &rt) != DRAY_OK)
        return 1;
    int rc = 1;
    dray_tune_space *sp = NULL;
    dray_tune_sched *sched = NULL;
    dray_tune_grid *g = NULL;
    dray_tune_val mcw[] = {dray_tune_i(1), dray_tune_i(3), dray_tune_i(10)};
    if (dray_tune_space_create(&sp) || dray_tune_space_loguniform(sp, "eta", 0.005, 0.5) ||
        dray_tune_space_randint(sp, "max_depth", 1, 7) ||
        dray_tune_space_uniform(sp, "subsample", 0.5, 1.0) ||
        dray_tune_space_choice(sp, "min_child_weight", mcw, 3) ||
        dray_tune_space_loguniform(sp, "lambda", 0.01, 10))
        goto out;
    if (strcmp(sched_name, "asha") == 0) {
        dray_tune_asha_opts ao;
        dray_tune_asha_opts_init(&ao);
        ao.max_t = MAX_ROUNDS;
        ao.grace_period = 5;
        ao.reduction_factor = 3;
        if (dray_tune_sched_create_asha(&ao, &sched))
            goto out;
    } else if (strcmp(sched_name, "fifo") == 0) {
        if (dray_tune_sched_create_fifo(&sched))
            goto out;
    } else {
        fprintf(stderr, "--scheduler must be asha or fifo\n");
        goto out;
    }
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.name = "xgboost";
    o.metric = "val_logloss";
    o.mode = DRAY_TUNE_MIN;
    o.num_samples = samples;
    o.max_concurrent_trials = concurrency;
    o.seed = seed;
    o.scheduler = sched;
    o.stop_fn = watch;
    o.stop_user = &tg;
    tg.t0 = now_s();
    if (dray_tune_run(rt, "xgboost", sp, &o, &g))
        goto out;
    double wall = now_s() - tg.t0;
    size_t best;
    double loss;
    if (dray_tune_grid_best(g, NULL, DRAY_TUNE_MODE_UNSET, "all", &best, &loss))
        goto out;
    char cfg[256];
    dray_tune_config_format(dray_tune_grid_config(g, best), cfg, sizeof(cfg));
    int64_t rounds = 0;
    double trial_s = 0;
    for (size_t i = 0; i < dray_tune_grid_len(g); i++) {
        rounds += dray_tune_grid_iterations(g, i);
        trial_s += dray_tune_grid_time_s(g, i);
    }
    printf("scheduler %s: %zu trials, %lld boosting rounds in %.2f s (%.2f s inside steps), "
           "errors %zu\n",
           sched_name, dray_tune_grid_len(g), (long long)rounds, wall, trial_s,
           dray_tune_grid_num_errors(g));
    printf("best config: %s  val_logloss=%.4f\n", cfg, loss);
    for (size_t i = 0; i < dray_tune_grid_len(g); i++)
        if (dray_tune_grid_status(g, i) == DRAY_TUNE_ERROR)
            printf("trial %zu failed: %s\n", i, dray_tune_grid_error(g, i));
    if (tg.reached_s >= 0)
        printf("time to val_logloss <= %.3f: %.3f s\n", tg.target, tg.reached_s);
    else
        printf("time to val_logloss <= %.3f: not reached\n", tg.target);
    /* checks: no errors, and the model beats the constant predictor (logloss of the base rate) */
    double pos = 0;
    for (int i = N_TRAIN; i < N_TRAIN + N_VAL; i++)
        pos += data.y[i];
    pos /= N_VAL;
    double base = -(pos * log(pos) + (1 - pos) * log(1 - pos));
    if (dray_tune_grid_num_errors(g) != 0 || !(loss < 0.8 * base)) {
        fprintf(stderr, "check failed: errors %zu, best logloss %.4f vs base rate %.4f (%s)\n",
                dray_tune_grid_num_errors(g), loss, base, dray_tune_grid_error(g, 0));
        goto out;
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "tune_xgboost failed: %s\n", dray_last_error());
    dray_tune_grid_destroy(g);
    dray_tune_sched_destroy(sched);
    dray_tune_space_destroy(sp);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return rc;
}

#else
int main(void)
{
    printf("tune_xgboost: built without <xgboost/c_api.h> (apt-get install libxgboost-dev): skipped\n");
    return 0;
}
#endif
