/* tune benchmarks: trial throughput of dray_tune_run for trivial trainables under ASHA (scheduler
 * and actor overhead), and raw ASHA decisions per second. Prints `name value unit` lines.
 * Usage: bench_tune trials [N] [iters] [fn|class] | bench_tune asha [trials] [iters] */
#include <dray/dray.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* trivial trainables: a metric that depends on the config, 10 reports */
static dray_status trivial_fn(dray_tune_session *s, const dray_tune_config *cfg, void *user)
{
    (void)user;
    double x = dray_tune_config_num(cfg, "x", 0);
    int64_t iters = dray_tune_config_int(cfg, "iters", 10);
    for (int64_t i = 1; i <= iters; i++) {
        dray_tune_metric m[] = {{"loss", x / (double)i}};
        dray_status st = dray_tune_report(s, m, 1);
        if (st != DRAY_OK)
            return st == DRAY_ECANCELED ? DRAY_OK : st;
    }
    return DRAY_OK;
}
static dray_tune_trainable trivial_fn_def = {"bench_trivial_fn", trivial_fn, NULL, NULL, NULL};
DRAY_TUNE_TRAINABLE(trivial_fn_def)

typedef struct tstate {
    double x;
    int64_t i;
} tstate;
static dray_status t_setup(dray_runtime *rt, const dray_tune_config *cfg, void *user, void **state)
{
    (void)user, (void)rt;
    tstate *t = calloc(1, sizeof(*t));
    if (!t)
        return DRAY_ENOMEM;
    t->x = dray_tune_config_num(cfg, "x", 0);
    *state = t;
    return DRAY_OK;
}
static dray_status t_step(void *state, dray_tune_result *r)
{
    tstate *t = state;
    t->i++;
    return dray_tune_result_set(r, "loss", t->x / (double)t->i);
}
static const dray_tune_class trivial_cls = {t_setup, t_step, NULL, NULL, free};
static dray_tune_trainable trivial_cls_def = {"bench_trivial_cls", NULL, &trivial_cls, NULL, NULL};
DRAY_TUNE_TRAINABLE(trivial_cls_def)

static int bench_trials(int n, int iters, bool cls)
{
    dray_runtime *rt;
    if (dray_init(NULL, &rt) != DRAY_OK)
        return 1;
    dray_tune_space *sp = NULL;
    dray_tune_sched *asha = NULL;
    dray_tune_grid *g = NULL;
    int rc = 1;
    dray_tune_asha_opts ao;
    dray_tune_asha_opts_init(&ao); /* Ray's defaults: max_t 100, grace 1, eta 4 */
    ao.max_t = iters;
    if (dray_tune_space_create(&sp) || dray_tune_space_uniform(sp, "x", 0, 1) ||
        dray_tune_space_const(sp, "iters", dray_tune_i(iters)) ||
        dray_tune_sched_create_asha(&ao, &asha))
        goto out;
    dray_tune_run_opts o;
    dray_tune_run_opts_init(&o);
    o.metric = "loss";
    o.mode = DRAY_TUNE_MIN;
    o.num_samples = n;
    o.scheduler = asha;
    o.verbose = DRAY_TUNE_QUIET;
    double t0 = now_s();
    if (dray_tune_run(rt, cls ? "bench_trivial_cls" : "bench_trivial_fn", sp, &o, &g))
        goto out;
    double dt = now_s() - t0;
    int64_t results = 0;
    for (size_t i = 0; i < dray_tune_grid_len(g); i++)
        results += dray_tune_grid_iterations(g, i);
    if (dray_tune_grid_len(g) != (size_t)n || dray_tune_grid_num_errors(g)) {
        fprintf(stderr, "bench: %zu trials, %zu errors\n", dray_tune_grid_len(g),
                dray_tune_grid_num_errors(g));
        goto out;
    }
    const char *k = cls ? "_class" : "";
    printf("tune%s_trials_per_s %.1f trials/s\n", k, n / dt);
    printf("tune%s_results_per_s %.0f results/s\n", k, results / dt);
    printf("tune%s_overhead_ms_per_trial %.3f ms\n", k, 1000 * dt / n);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "bench_tune: %s\n", dray_last_error());
    dray_tune_grid_destroy(g);
    dray_tune_sched_destroy(asha);
    dray_tune_space_destroy(sp);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return rc;
}

/* pure decisions: `trials` trials report round-robin up to `iters` each; stopped ones go quiet */
static size_t host_num(void *c) { (void)c; return 0; }
static int host_id(void *c, size_t i) { (void)c; return (int)i; }
static dray_tune_status host_status(void *c, int t) { (void)c, (void)t; return DRAY_TUNE_RUNNING; }

static int bench_asha(int trials, int iters)
{
    dray_tune_asha_opts ao;
    dray_tune_asha_opts_init(&ao);
    ao.metric = "loss";
    ao.mode = DRAY_TUNE_MIN;
    ao.max_t = iters;
    dray_tune_sched *s;
    if (dray_tune_sched_create_asha(&ao, &s))
        return 1;
    dray_tune_host h = {NULL, host_num, host_id, host_status, NULL, NULL, NULL, NULL, NULL};
    bool *stopped = calloc((size_t)trials, sizeof(bool));
    dray_tune_result **r = calloc((size_t)trials, sizeof(*r));
    dray_tune_rng rng;
    dray_tune_rng_seed(&rng, 1);
    for (int i = 0; i < trials; i++)
        if (dray_tune_sched_on_trial_add(s, &h, i) || dray_tune_result_create(&r[i]))
            return 1;
    double t0 = now_s();
    size_t decisions = 0;
    for (int t = 1; t <= iters; t++) {
        for (int i = 0; i < trials; i++) {
            if (stopped[i])
                continue;
            dray_tune_decision d;
            dray_tune_result_set(r[i], "training_iteration", t);
            dray_tune_result_set(r[i], "loss", dray_tune_rng_uniform(&rng) / t);
            if (dray_tune_sched_on_trial_result(s, &h, i, r[i], &d))
                return 1;
            decisions++;
            stopped[i] = d == DRAY_TUNE_STOP;
        }
    }
    double dt = now_s() - t0;
    printf("tune_asha_decisions_per_s %.0f decisions/s\n", decisions / dt);
    for (int i = 0; i < trials; i++)
        dray_tune_result_destroy(r[i]);
    free(r);
    free(stopped);
    dray_tune_sched_destroy(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "trials") == 0)
        return bench_trials(argc > 2 ? atoi(argv[2]) : 10000, argc > 3 ? atoi(argv[3]) : 10,
                            argc > 4 && strcmp(argv[4], "class") == 0);
    if (argc >= 2 && strcmp(argv[1], "asha") == 0)
        return bench_asha(argc > 2 ? atoi(argv[2]) : 10000, argc > 3 ? atoi(argv[3]) : 100);
    fprintf(stderr, "usage: bench_tune trials [N] [iters] [fn|class] | bench_tune asha [trials] "
                    "[iters]\n");
    return 2;
}
