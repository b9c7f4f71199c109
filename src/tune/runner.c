/* tune runner: dray_tune_run. Trials run as "dray_tune_Trial" actors; the driver waits on their step
 * calls, adds training_iteration/time_total_s, applies stop criteria and the scheduler's decisions,
 * pauses through checkpoints kept in the object store, retries failures, and prints a live table. */
#include "internal.h"
#include "runner.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define TRIAL_CLASS "dray_tune_Trial"

typedef struct runner {
    dray_runtime *rt;
    const dray_tune_run_opts *o;
    const char *trainable;
    bool is_class;
    dray_tune_sched *sched;
    dray_tune_searcher *search;
    bool search_done;
    int64_t suggested;
    dray__tune_trial *t;
    size_t n, cap;
    int max_conc;
    size_t max_pending;  /* trials created ahead of running them */
    int *run;            /* ids of the RUNNING trials with an actor */
    size_t n_run, cap_run;
    size_t n_pending, n_paused, hint_pending, hint_paused; /* for the FIFO choice in O(1) */
    dray_tune_host host, replay_host;
    dray_resource res[17];
    size_t n_res;
    double t0, last_table, last_save, last_publish;
    int table_lines;
    bool table;
} runner;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void dray_tune_run_opts_init(dray_tune_run_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->name = "tune";
    o->num_samples = 1;
    o->num_cpus = 1;
    o->verbose = DRAY_TUNE_TABLE_AUTO;
}

/* set_status: every status change goes through here to keep the pending/paused counts. */
static void set_status(runner *r, dray__tune_trial *t, dray_tune_status st)
{
    size_t i = (size_t)t->id;
    if (t->status == DRAY_TUNE_PENDING)
        r->n_pending--;
    else if (t->status == DRAY_TUNE_PAUSED)
        r->n_paused--;
    t->status = st;
    if (st == DRAY_TUNE_PENDING) {
        r->n_pending++;
        if (i < r->hint_pending)
            r->hint_pending = i;
    } else if (st == DRAY_TUNE_PAUSED) {
        r->n_paused++;
        if (i < r->hint_paused)
            r->hint_paused = i;
    }
}

/* recount: rebuilds the counts after statuses were set directly (resume). */
static void recount(runner *r)
{
    r->n_pending = r->n_paused = 0;
    r->hint_pending = r->hint_paused = 0;
    for (size_t i = 0; i < r->n; i++) {
        r->n_pending += r->t[i].status == DRAY_TUNE_PENDING;
        r->n_paused += r->t[i].status == DRAY_TUNE_PAUSED;
    }
}

/* fifo_choose: FIFO's choice (first PENDING, else first PAUSED) without rescanning every trial. */
static int fifo_choose(runner *r)
{
    if (r->n_pending) {
        for (size_t i = r->hint_pending; i < r->n; i++)
            if (r->t[i].status == DRAY_TUNE_PENDING)
                return (int)(r->hint_pending = i);
    }
    if (r->n_paused) {
        for (size_t i = r->hint_paused; i < r->n; i++)
            if (r->t[i].status == DRAY_TUNE_PAUSED)
                return (int)(r->hint_paused = i);
    }
    return -1;
}

/* ==== host callbacks ==== */
static size_t h_num(void *c) { return ((runner *)c)->n; }
static int h_id_at(void *c, size_t i) { return ((runner *)c)->t[i].id; }
static dray__tune_trial *trial_of(runner *r, int id)
{
    return id >= 0 && (size_t)id < r->n ? &r->t[id] : NULL;
}
static dray_tune_status h_status(void *c, int id)
{
    dray__tune_trial *t = trial_of(c, id);
    return t ? t->status : DRAY_TUNE_ERROR;
}
static const dray_tune_config *h_config(void *c, int id)
{
    dray__tune_trial *t = trial_of(c, id);
    return t ? t->cfg : NULL;
}

static void release_actor(runner *r, dray__tune_trial *t)
{
    if (t->actor) {
        if (t->inflight) {
            dray_cancel(r->rt, t->inflight);
            dray_ref_release(t->inflight);
            t->inflight = NULL;
        }
        dray_actor_release(t->actor);
        t->actor = NULL;
        for (size_t i = 0; i < r->n_run; i++) {
            if (r->run[i] == t->id) {
                r->run[i] = r->run[--r->n_run];
                break;
            }
        }
    }
}

static const dray_tune_result *last_of(const dray__tune_trial *t)
{
    return t->n_hist ? t->hist[t->n_hist - 1] : NULL;
}

static void tell_searcher(runner *r, dray__tune_trial *t, bool error)
{
    if (!t->done) {
        t->done = true;
        dray_tune_searcher_on_complete(r->search, t->id, error ? NULL : last_of(t), error);
    }
}

static void h_stop(void *c, int id)
{
    runner *r = c;
    dray__tune_trial *t = trial_of(r, id);
    if (!t || t->status == DRAY_TUNE_TERMINATED || t->status == DRAY_TUNE_ERROR)
        return;
    release_actor(r, t);
    set_status(r, t, DRAY_TUNE_TERMINATED);
    tell_searcher(r, t, false);
}

static void h_unpause(void *c, int id)
{
    dray__tune_trial *t = trial_of(c, id);
    if (t && t->status == DRAY_TUNE_PAUSED)
        set_status(c, t, DRAY_TUNE_PENDING);
}

/* save: a "save" call whose ref (bytes or null) becomes the trial's checkpoint in the object store;
 * nothing waits for it. A trial without an actor keeps the checkpoint it has. */
static dray_status h_save(void *c, int id)
{
    runner *r = c;
    dray__tune_trial *t = trial_of(r, id);
    if (!t || !t->actor)
        return DRAY_OK;
    dray_ref *ref;
    dray_status st = dray_actor_call(r->rt, t->actor, "save", NULL, 0, &ref);
    if (st != DRAY_OK)
        return st;
    dray_ref_release(t->ckpt);
    t->ckpt = ref;
    t->ckpt_iter = t->iter;
    t->ckpt_time = t->time_total;
    return DRAY_OK;
}

static dray_status h_exploit(void *c, int id, int src_id, const dray_tune_config *cfg)
{
    runner *r = c;
    dray__tune_trial *t = trial_of(r, id), *src = trial_of(r, src_id);
    if (!t || !src || !src->ckpt)
        return DRAY_ENOTFOUND;
    dray_tune_config *nc;
    dray_status st = dray_tune_config_clone(cfg, &nc);
    if (st != DRAY_OK)
        return st;
    release_actor(r, t);
    dray_tune_config_destroy(t->cfg);
    t->cfg = nc;
    dray_ref *k = dray_ref_retain(src->ckpt);
    dray_ref_release(t->ckpt);
    t->ckpt = k;
    t->ckpt_iter = src->ckpt_iter;
    t->ckpt_time = src->ckpt_time;
    t->iter = src->ckpt_iter;
    t->time_total = src->ckpt_time;
    set_status(r, t, DRAY_TUNE_PAUSED);
    return DRAY_OK;
}

static void h_noop_stop(void *c, int id) { (void)c, (void)id; }
static dray_status h_noop_save(void *c, int id) { (void)c, (void)id; return DRAY_OK; }
static dray_status h_noop_exploit(void *c, int id, int src, const dray_tune_config *cfg)
{
    (void)c, (void)id, (void)src, (void)cfg;
    return DRAY_ENOTFOUND;
}

/* ==== trial life ==== */
static dray_status add_trial(runner *r, dray_tune_config *cfg)
{
    dray_status st = dray__tune_grow((void **)&r->t, &r->cap, r->n, sizeof(*r->t));
    if (st != DRAY_OK) {
        dray_tune_config_destroy(cfg);
        return st;
    }
    dray__tune_trial *t = &r->t[r->n];
    memset(t, 0, sizeof(*t));
    t->id = (int)r->n;
    t->cfg = cfg;
    t->status = DRAY_TUNE_PENDING;
    r->n_pending++; /* the newest trial: no hint to lower */
    r->n++;
    return dray_tune_sched_on_trial_add(r->sched, &r->host, t->id);
}

static void set_error(dray__tune_trial *t, const char *msg)
{
    free(t->error);
    t->error = dray__tune_strdup(msg);
}

/* fail: a failed start or step. Retried from the last checkpoint while retries are left. */
static void fail(runner *r, dray__tune_trial *t, const char *msg)
{
    release_actor(r, t);
    set_error(t, msg);
    t->failures++;
    if (t->failures <= r->o->max_failures) {
        set_status(r, t, DRAY_TUNE_PENDING);
        t->iter = t->ckpt ? t->ckpt_iter : 0;
        t->time_total = t->ckpt ? t->ckpt_time : 0;
        return;
    }
    set_status(r, t, DRAY_TUNE_ERROR);
    dray_tune_sched_on_trial_error(r->sched, &r->host, t->id);
    tell_searcher(r, t, true);
}

static void start(runner *r, dray__tune_trial *t)
{
    void *cb = NULL;
    size_t clen = 0;
    dray_value args[4] = {dray_null(), dray_null(), dray_null(), dray_int(t->ckpt ? t->ckpt_iter : 0)};
    dray_status st = dray_string_create(r->trainable, &args[0]);
    if (st == DRAY_OK && (st = dray__tune_config_encode(t->cfg, &cb, &clen)) == DRAY_OK)
        st = dray_bytes_create(cb, clen, &args[1]);
    free(cb);
    if (t->ckpt)
        args[2] = dray_value_of_ref(t->ckpt); /* borrowed: the actor resolves it to the bytes */
    dray_actor_opts ao = {0};
    ao.name = r->trainable;
    ao.num_cpus = r->o->num_cpus;
    ao.resources = r->n_res ? r->res : NULL;
    ao.n_resources = r->n_res;
    if (st == DRAY_OK)
        st = dray_actor_create(r->rt, TRIAL_CLASS, args, 4, &ao, &t->actor);
    dray_value_release(&args[0]);
    dray_value_release(&args[1]);
    if (st == DRAY_OK && (st = dray__tune_grow((void **)&r->run, &r->cap_run, r->n_run,
                                                 sizeof(int))) != DRAY_OK) {
        dray_actor_release(t->actor);
        t->actor = NULL;
    }
    if (st == DRAY_OK) {
        r->run[r->n_run++] = t->id;
        t->iter = t->ckpt ? t->ckpt_iter : 0;
        t->time_total = t->ckpt ? t->ckpt_time : 0;
        /* results after the checkpoint are redone: keep the history one consistent run */
        while (t->n_hist > 0) {
            double it = 0;
            dray_tune_result_get(t->hist[t->n_hist - 1], "training_iteration", &it);
            if (it <= (double)t->iter)
                break;
            dray_tune_result_destroy(t->hist[--t->n_hist]);
        }
        if ((st = dray_actor_call(r->rt, t->actor, "step", NULL, 0, &t->inflight)) == DRAY_OK) {
            set_status(r, t, DRAY_TUNE_RUNNING);
            return;
        }
    }
    char msg[512];
    snprintf(msg, sizeof(msg), "cannot start trial %d: %s", t->id, dray_last_error());
    set_status(r, t, DRAY_TUNE_RUNNING);
    fail(r, t, msg);
}

/* end: a running trial ends by itself or by a STOP: the scheduler and searcher hear of it. */
static void end(runner *r, dray__tune_trial *t)
{
    if (r->is_class && r->o->checkpoint_at_end && !t->inflight)
        (void)h_save(r, t->id);
    release_actor(r, t);
    set_status(r, t, DRAY_TUNE_TERMINATED);
    dray_tune_sched_on_trial_complete(r->sched, &r->host, t->id, last_of(t));
    tell_searcher(r, t, false);
}

static bool stop_criteria(runner *r, dray__tune_trial *t, const dray_tune_result *res)
{
    double v;
    for (size_t i = 0; i < r->o->n_stop; i++)
        if (dray_tune_result_get(res, r->o->stop[i].metric, &v) && v >= r->o->stop[i].value)
            return true;
    if (dray_tune_result_get(res, "done", &v) && v != 0)
        return true;
    return r->o->stop_fn && r->o->stop_fn(t->id, res, r->o->stop_user);
}

/* record: decodes one step value [result, checkpoint, done, seconds] into the trial's history. */
static dray_status record(runner *r, dray__tune_trial *t, const dray_value *v, bool *done)
{
    if (v->type != DRAY_T_LIST || dray_list_len(v) != 4)
        return dray_set_error(DRAY_EFORMAT, "tune: trial %d: malformed step value", t->id);
    const dray_value *rb = dray_list_get(v, 0), *ck = dray_list_get(v, 1),
                     *dn = dray_list_get(v, 2), *dt = dray_list_get(v, 3);
    *done = dn->type == DRAY_T_BOOL && dn->u.b;
    if (*done)
        return DRAY_OK;
    size_t len;
    const void *bytes = dray_bytes_data(rb, &len);
    dray_tune_result *res;
    dray_status st = dray__tune_result_decode(bytes, len, &res);
    if (st != DRAY_OK)
        return st;
    double secs = dt->type == DRAY_T_FLOAT ? dt->u.f : 0;
    t->iter++;
    t->time_total += secs;
    if ((st = dray_tune_result_set(res, "training_iteration", (double)t->iter)) != DRAY_OK ||
        (st = dray_tune_result_set(res, "time_this_iter_s", secs)) != DRAY_OK ||
        (st = dray_tune_result_set(res, "time_total_s", t->time_total)) != DRAY_OK ||
        (st = dray__tune_grow((void **)&t->hist, &t->cap_hist, t->n_hist, sizeof(*t->hist))) !=
            DRAY_OK) {
        dray_tune_result_destroy(res);
        return st;
    }
    t->hist[t->n_hist++] = res;
    if (ck->type == DRAY_T_BYTES) {
        dray_ref *ref;
        if ((st = dray_put(r->rt, ck, &ref)) != DRAY_OK)
            return st;
        dray_ref_release(t->ckpt);
        t->ckpt = ref;
        t->ckpt_iter = t->iter;
        t->ckpt_time = t->time_total;
    }
    if (r->is_class && r->o->checkpoint_freq > 0 && t->iter % r->o->checkpoint_freq == 0)
        st = h_save(r, t->id);
    return st;
}

static void process(runner *r, dray__tune_trial *t)
{
    dray_value v = dray_null();
    dray_status st = dray_get(r->rt, t->inflight, 0, &v);
    dray_ref_release(t->inflight);
    t->inflight = NULL;
    char msg[768];
    if (st != DRAY_OK) {
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        dray_value_release(&v);
        fail(r, t, msg);
        return;
    }
    bool done = false;
    st = record(r, t, &v, &done);
    dray_value_release(&v);
    if (st != DRAY_OK) {
        snprintf(msg, sizeof(msg), "%s", dray_last_error());
        fail(r, t, msg);
        return;
    }
    if (done) {
        end(r, t);
        return;
    }
    const dray_tune_result *res = last_of(t);
    if (r->sched->ops->on_result && r->sched->metric &&
        !dray_tune_result_get(res, r->sched->metric, NULL)) {
        /* Ray's strict metric check: a result without the metric the scheduler decides on */
        size_t k = (size_t)snprintf(msg, sizeof(msg),
                                    "trial %d reported no metric '%s' that %s expects (it reported:",
                                    t->id, r->sched->metric, dray_tune_sched_name(r->sched));
        for (size_t i = 0; i < res->n && k < sizeof(msg); i++)
            k += (size_t)snprintf(msg + k, sizeof(msg) - k, " %s", res->kv[i].name);
        if (k < sizeof(msg))
            snprintf(msg + k, sizeof(msg) - k, ")");
        t->failures = r->o->max_failures;
        fail(r, t, msg);
        return;
    }
    dray_tune_decision d = DRAY_TUNE_STOP;
    if (!stop_criteria(r, t, res) &&
        (st = dray_tune_sched_on_trial_result(r->sched, &r->host, t->id, res, &d)) != DRAY_OK) {
        snprintf(msg, sizeof(msg), "scheduler %s: %s", dray_tune_sched_name(r->sched),
                 dray_last_error());
        t->failures = r->o->max_failures; /* not retried: the same result would fail again */
        fail(r, t, msg);
        return;
    }
    switch (d) {
    case DRAY_TUNE_CONTINUE:
        if ((st = dray_actor_call(r->rt, t->actor, "step", NULL, 0, &t->inflight)) != DRAY_OK) {
            snprintf(msg, sizeof(msg), "%s", dray_last_error());
            fail(r, t, msg);
        }
        break;
    case DRAY_TUNE_PAUSE:
        (void)h_save(r, t->id);
        release_actor(r, t);
        set_status(r, t, DRAY_TUNE_PAUSED);
        break;
    case DRAY_TUNE_STOP:
        end(r, t);
        break;
    case DRAY_TUNE_NOOP:
        if (t->status == DRAY_TUNE_RUNNING && !t->inflight && t->actor &&
            dray_actor_call(r->rt, t->actor, "step", NULL, 0, &t->inflight) != DRAY_OK)
            fail(r, t, "cannot continue after the scheduler's action");
        break;
    }
}

/* ==== live table ==== */
static void print_table(runner *r, bool final)
{
    char buf[8192];
    dray__tune_table(r->t, r->n, r->o->metric, buf, sizeof(buf));
    /* redraw in place: move up over the previous table and clear to the end */
    if (r->table_lines > 0 && isatty(STDERR_FILENO))
        fprintf(stderr, "\033[%dA\033[J", r->table_lines);
    (void)final;
    fprintf(stderr, "== %s: %.1f s ==\n%s", r->o->name ? r->o->name : "tune", now_s() - r->t0, buf);
    int lines = 1;
    for (const char *p = buf; *p; p++)
        lines += *p == '\n';
    r->table_lines = lines;
    fflush(stderr);
}

/* ==== resume ==== */
static dray_status resume(runner *r)
{
    dray__tune_trial *t = NULL;
    size_t n = 0;
    int64_t suggested = 0;
    dray_status st = dray__tune_state_load(r->rt, r->o->storage_path, &t, &n, &suggested);
    if (st == DRAY_ENOTFOUND)
        return DRAY_OK; /* nothing saved yet: a fresh start */
    if (st != DRAY_OK)
        return st;
    r->t = t;
    r->n = r->cap = n;
    /* the searcher replays its suggestions; the scheduler sees every result again */
    for (int64_t i = 0; i < suggested && st == DRAY_OK; i++) {
        dray_tune_config *c = NULL;
        st = dray_tune_searcher_suggest(r->search, (int)i, &c);
        dray_tune_config_destroy(c);
        if (st == DRAY_ENOTFOUND) {
            r->search_done = true;
            st = DRAY_OK;
            break;
        }
    }
    r->suggested = suggested;
    for (size_t i = 0; i < n && st == DRAY_OK; i++) {
        dray__tune_trial *x = &r->t[i];
        if (x->status == DRAY_TUNE_RUNNING)
            x->status = DRAY_TUNE_PENDING;
        dray_tune_status keep = x->status;
        x->status = DRAY_TUNE_RUNNING;
        st = dray_tune_sched_on_trial_add(r->sched, &r->replay_host, x->id);
        for (size_t k = 0; k < x->n_hist && st == DRAY_OK; k++) {
            dray_tune_decision d;
            st = dray_tune_sched_on_trial_result(r->sched, &r->replay_host, x->id, x->hist[k], &d);
        }
        x->status = keep;
        if (st == DRAY_OK && keep == DRAY_TUNE_TERMINATED) {
            dray_tune_sched_on_trial_complete(r->sched, &r->replay_host, x->id, last_of(x));
            tell_searcher(r, x, false);
        } else if (keep == DRAY_TUNE_ERROR) {
            dray_tune_sched_on_trial_error(r->sched, &r->replay_host, x->id);
            tell_searcher(r, x, true);
        }
    }
    recount(r);
    return st;
}

static dray_status check_opts(const dray_tune_run_opts *o, const dray_tune_space *sp,
                              const char *trainable, const dray_tune_trainable **tr)
{
    if (!(*tr = dray_tune_trainable_find(trainable)))
        return DRAY_ENOTFOUND;
    if (!(*tr)->fn == !(*tr)->cls)
        return dray_set_error(DRAY_EINVAL, "tune: trainable '%s' must have exactly one of fn, cls",
                              trainable);
    if ((*tr)->cls && (!(*tr)->cls->setup || !(*tr)->cls->step))
        return dray_set_error(DRAY_EINVAL, "tune: class trainable '%s' needs setup and step",
                              trainable);
    if (!sp && !o->searcher)
        return dray_set_error(DRAY_EINVAL, "tune: run needs a search space or a searcher");
    if (o->mode != DRAY_TUNE_MODE_UNSET && o->mode != DRAY_TUNE_MIN && o->mode != DRAY_TUNE_MAX)
        return dray_set_error(DRAY_EINVAL, "tune: run: mode %d must be min or max", (int)o->mode);
    if (o->max_concurrent_trials < 0)
        return dray_set_error(DRAY_EINVAL, "tune: max_concurrent_trials %d must be >= 0",
                              o->max_concurrent_trials);
    if (o->num_cpus < 0 || o->num_gpus < 0 || o->max_failures < 0 || o->time_budget_s < 0)
        return dray_set_error(DRAY_EINVAL, "tune: negative num_cpus, num_gpus, max_failures or "
                                           "time_budget_s");
    if (o->n_resources > 16)
        return dray_set_error(DRAY_EINVAL, "tune: at most 16 custom resources per trial");
    for (size_t i = 0; i < o->n_stop; i++)
        if (!o->stop || !o->stop[i].metric)
            return dray_set_error(DRAY_EINVAL, "tune: stop criterion %zu has no metric", i);
    if (o->resume && !o->storage_path)
        return dray_set_error(DRAY_EINVAL, "tune: resume needs storage_path");
    return DRAY_OK;
}

static dray_status loop(runner *r)
{
    dray_status st = DRAY_OK;
    dray_ref **refs = NULL;
    bool *ready = NULL;
    int *ids = NULL;
    size_t cap = 0;
    for (;;) {
        double elapsed = now_s() - r->t0;
        if (r->o->time_budget_s > 0 && elapsed >= r->o->time_budget_s) {
            for (size_t i = 0; i < r->n; i++)
                if (r->t[i].status == DRAY_TUNE_RUNNING)
                    end(r, &r->t[i]);
            break;
        }
        /* keep up to max_pending trials created ahead (like Ray's max_pending_trials): schedulers
         * such as HyperBand see whole brackets before they run; then fill free slots with the
         * scheduler's choice, topping up again while slots stay free */
        bool busy = false, started = true;
        while (started) {
            while (!r->search_done && !busy && r->n_pending < r->max_pending) {
                dray_tune_config *cfg = NULL;
                st = dray_tune_searcher_suggest(r->search, (int)r->n, &cfg);
                if (st == DRAY_ENOTFOUND || st == DRAY_EBUSY) {
                    r->search_done = st == DRAY_ENOTFOUND;
                    busy = st == DRAY_EBUSY;
                    st = DRAY_OK;
                    break;
                }
                if (st != DRAY_OK || (r->suggested++, st = add_trial(r, cfg)) != DRAY_OK)
                    goto out;
            }
            started = false;
            while ((int)r->n_run < r->max_conc) {
                int id = -1;
                if (r->sched->ops->choose)
                    dray_tune_sched_choose_trial(r->sched, &r->host, &id);
                else
                    id = fifo_choose(r);
                dray_tune_status cs = id >= 0 ? r->t[id].status : DRAY_TUNE_ERROR;
                if (cs != DRAY_TUNE_PENDING && cs != DRAY_TUNE_PAUSED)
                    break; /* nothing to run (or a scheduler bug: never start a trial twice) */
                start(r, &r->t[id]);
                started = true;
            }
            if ((int)r->n_run >= r->max_conc)
                break;
        }
        if (r->n_run == 0)
            break;
        if (cap < r->n_run) {
            cap = r->n_run * 2;
            free(refs);
            free(ready);
            free(ids);
            refs = malloc(cap * sizeof(*refs));
            ready = malloc(cap * sizeof(*ready));
            ids = malloc(cap * sizeof(*ids));
            if (!refs || !ready || !ids) {
                st = dray_set_error(DRAY_ENOMEM, "tune: out of memory");
                goto out;
            }
        }
        size_t k = 0;
        for (size_t i = 0; i < r->n_run; i++) {
            dray__tune_trial *t = &r->t[r->run[i]];
            if (t->inflight) {
                ids[k] = t->id;
                refs[k++] = t->inflight;
            }
        }
        if (k == 0)
            break;
        st = dray_wait(r->rt, refs, k, 1, 200, ready, NULL);
        if (st != DRAY_OK && st != DRAY_ETIMEDOUT)
            goto out;
        st = DRAY_OK;
        for (size_t j = 0; j < k; j++)
            if (ready[j] && r->t[ids[j]].inflight == refs[j])
                process(r, &r->t[ids[j]]);
        double now = now_s();
        if (r->table && now - r->last_table >= 1.0) {
            print_table(r, false);
            r->last_table = now;
        }
        if (now - r->last_publish >= 0.5) {
            dray__tune_publish(r->rt, r->o->name, r->t, r->n, r->o->metric, "RUNNING");
            r->last_publish = now;
        }
        if (r->o->storage_path && now - r->last_save >= 2.0) {
            if ((st = dray__tune_state_save(r->rt, r->o->storage_path, r->t, r->n, r->suggested)) !=
                DRAY_OK)
                goto out;
            r->last_save = now;
        }
        if (r->o->stop_experiment && r->o->stop_experiment(r->o->stop_user)) {
            /* interrupted: running trials keep their checkpoints and resume later */
            for (size_t i = 0; i < r->n; i++) {
                if (r->t[i].status == DRAY_TUNE_RUNNING) {
                    /* a step is in flight: the last checkpoint is the consistent one */
                    release_actor(r, &r->t[i]);
                    set_status(r, &r->t[i], DRAY_TUNE_PENDING);
                }
            }
            break;
        }
    }
out:
    free(refs);
    free(ready);
    free(ids);
    return st;
}

dray_status dray_tune_run(dray_runtime *rt, const char *trainable, const dray_tune_space *sp,
                          const dray_tune_run_opts *opts, dray_tune_grid **out)
{
    dray_tune_run_opts d;
    if (!opts) {
        dray_tune_run_opts_init(&d);
        opts = &d;
    }
    if (!rt || !out)
        return dray_set_error(DRAY_EINVAL, "tune: run needs a runtime and an out pointer");
    const dray_tune_trainable *tr;
    dray_status st = check_opts(opts, sp, trainable, &tr);
    if (st != DRAY_OK)
        return st;
    runner r;
    memset(&r, 0, sizeof(r));
    r.rt = rt;
    r.o = opts;
    r.trainable = trainable;
    r.is_class = tr->cls != NULL;
    r.host = (dray_tune_host){&r, h_num, h_id_at, h_status, h_config, h_stop, h_unpause, h_save,
                              h_exploit};
    r.replay_host = (dray_tune_host){&r, h_num, h_id_at, h_status, h_config, h_noop_stop,
                                     h_noop_stop, h_noop_save, h_noop_exploit};
    if (opts->num_gpus > 0)
        r.res[r.n_res++] = (dray_resource){"GPU", opts->num_gpus};
    for (size_t i = 0; i < opts->n_resources; i++)
        r.res[r.n_res++] = opts->resources[i];
    int workers = dray_runtime_num_workers(rt);
    int by_cpu = opts->num_cpus > 0 ? (int)floor(workers / opts->num_cpus) : 4 * workers;
    /* GPUs and custom resources bound concurrency too: floor(offered / per trial) of each. */
    for (size_t i = 0; i < r.n_res; i++) {
        double total = 0;
        if (r.res[i].amount > 0 &&
            dray_runtime_resource(rt, r.res[i].name, &total) == DRAY_OK &&
            floor(total / r.res[i].amount) < by_cpu)
            by_cpu = (int)floor(total / r.res[i].amount);
    }
    if (by_cpu < 1)
        by_cpu = 1;
    r.max_conc = opts->max_concurrent_trials > 0 && opts->max_concurrent_trials < by_cpu
                     ? opts->max_concurrent_trials
                     : by_cpu;
    /* the basic searcher fills pending trials ahead (Ray's default of 16); a model-based one
     * suggests just in time, so each suggestion sees every finished trial */
    r.max_pending = opts->searcher ? 1 : 16;
    dray_tune_sched *own_sched = NULL;
    dray_tune_searcher *own_search = NULL;
    r.sched = opts->scheduler;
    if (!r.sched && (st = dray_tune_sched_create_fifo(&own_sched)) != DRAY_OK)
        return st;
    if (!r.sched)
        r.sched = own_sched;
    if ((st = dray_tune_sched_set_search_properties(r.sched, opts->metric, opts->mode)) != DRAY_OK)
        goto out_sched;
    r.search = opts->searcher;
    if (!r.search) {
        if ((st = dray_tune_searcher_create_basic(sp, opts->num_samples, opts->seed, &own_search)) !=
            DRAY_OK)
            goto out_sched;
        r.search = own_search;
    }
    r.t0 = now_s();
    r.table = opts->verbose == DRAY_TUNE_TABLE_ALWAYS ||
              (opts->verbose == DRAY_TUNE_TABLE_AUTO && isatty(STDERR_FILENO));
    if (opts->resume && (st = resume(&r)) != DRAY_OK)
        goto out_trials;
    st = loop(&r);
    for (size_t i = 0; i < r.n; i++)
        release_actor(&r, &r.t[i]);
    if (st == DRAY_OK && opts->storage_path)
        st = dray__tune_state_save(rt, opts->storage_path, r.t, r.n, r.suggested);
    if (r.table)
        print_table(&r, true);
    dray__tune_publish(rt, opts->name, r.t, r.n, opts->metric, st ? "ERROR" : "TERMINATED");
    if (st != DRAY_OK)
        goto out_trials;
    dray_tune_grid *g = calloc(1, sizeof(*g));
    /* best() defaults to the run's metric and mode, else the scheduler's */
    const char *metric = opts->metric ? opts->metric : r.sched->metric;
    if (!g || (metric && !(g->metric = dray__tune_strdup(metric)))) {
        free(g);
        st = dray_set_error(DRAY_ENOMEM, "tune: out of memory for the result grid");
        goto out_trials;
    }
    g->t = r.t;
    g->n = r.n;
    g->mode = opts->mode != DRAY_TUNE_MODE_UNSET ? opts->mode : r.sched->mode;
    r.t = NULL;
    r.n = 0;
    *out = g;
out_trials:
    for (size_t i = 0; i < r.n; i++)
        dray__tune_trial_fini(&r.t[i]);
    free(r.t);
    free(r.run);
    dray_tune_searcher_destroy(own_search);
out_sched:
    dray_tune_sched_destroy(own_sched);
    return st;
}
