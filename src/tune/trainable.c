/* tune trainables: the registry of named trainables and the actor class "dray_tune_Trial" that runs
 * one trial. A function trainable runs in its own thread and hands each report to the actor's step
 * method (lock-step, like Ray's FunctionTrainable); a class trainable's step runs in the method. */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

/* ==== registry (load-time, the one allowed kind of global state) ==== */
static dray_tune_trainable *registry;

void dray_tune_trainable_register(dray_tune_trainable *t)
{
    for (dray_tune_trainable *p = registry; p; p = p->next)
        if (strcmp(p->name, t->name) == 0)
            return; /* first registration wins */
    t->next = registry;
    registry = t;
}

const dray_tune_trainable *dray_tune_trainable_find(const char *name)
{
    for (dray_tune_trainable *p = registry; name && p; p = p->next)
        if (strcmp(p->name, name) == 0)
            return p;
    dray_set_error(DRAY_ENOTFOUND, "tune: no trainable registered as '%s'", name ? name : "(null)");
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ==== the session of a function trainable ==== */
struct dray_tune_session {
    const dray_tune_trainable *t;
    dray_runtime *rt;
    dray_tune_config *cfg;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool want_next;   /* step is waiting for the next report */
    bool have_result; /* a report is waiting to be taken */
    bool finished;    /* the function returned */
    bool stop;        /* the actor is going away */
    dray_status fn_status;
    char fn_error[512];
    dray_tune_result *pending;
    void *pending_ckpt;
    size_t pending_ckpt_len;
    bool pending_has_ckpt;
    void *last_ckpt; /* latest checkpoint reported (what save returns) */
    size_t last_ckpt_len;
    void *start_ckpt; /* the checkpoint this run starts from */
    size_t start_ckpt_len;
    int64_t iter;
};

typedef struct trial_actor {
    const dray_tune_trainable *t;
    dray_tune_session *sess; /* function trainables */
    void *state;             /* class trainables */
} trial_actor;

static void *fn_thread(void *arg)
{
    dray_tune_session *s = arg;
    dray_status st = s->t->fn(s, s->cfg, s->t->user);
    pthread_mutex_lock(&s->mu);
    s->fn_status = st;
    if (st != DRAY_OK && st != DRAY_ECANCELED)
        snprintf(s->fn_error, sizeof(s->fn_error), "%s", dray_last_error());
    s->finished = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static dray_status do_report(dray_tune_session *s, const dray_tune_metric *m, size_t n,
                             const void *data, size_t len, bool has_ckpt)
{
    if (!s)
        return dray_set_error(DRAY_EINVAL, "tune: report outside a trial");
    dray_tune_result *r = NULL;
    dray_status st = dray_tune_result_create(&r);
    for (size_t i = 0; i < n && st == DRAY_OK; i++) {
        if (!m[i].name || strcmp(m[i].name, "training_iteration") == 0 ||
            strcmp(m[i].name, "time_total_s") == 0)
            st = dray_set_error(DRAY_EINVAL, "tune: report: metric %zu (%s) is missing or reserved",
                                i, m[i].name ? m[i].name : "(null)");
        else
            st = dray_tune_result_set(r, m[i].name, m[i].value);
    }
    void *copy = NULL;
    if (st == DRAY_OK && has_ckpt && len && !(copy = malloc(len)))
        st = dray_set_error(DRAY_ENOMEM, "tune: out of memory copying a %zu-byte checkpoint", len);
    if (st != DRAY_OK) {
        dray_tune_result_destroy(r);
        return st;
    }
    if (copy)
        memcpy(copy, data, len);
    pthread_mutex_lock(&s->mu);
    while (!s->want_next && !s->stop)
        pthread_cond_wait(&s->cv, &s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        dray_tune_result_destroy(r);
        free(copy);
        return DRAY_ECANCELED;
    }
    s->pending = r;
    s->pending_ckpt = copy;
    s->pending_ckpt_len = len;
    s->pending_has_ckpt = has_ckpt;
    s->have_result = true;
    s->want_next = false;
    s->iter++;
    pthread_cond_broadcast(&s->cv);
    while (!s->want_next && !s->stop)
        pthread_cond_wait(&s->cv, &s->mu);
    st = s->stop ? DRAY_ECANCELED : DRAY_OK;
    pthread_mutex_unlock(&s->mu);
    return st;
}

dray_status dray_tune_report(dray_tune_session *s, const dray_tune_metric *m, size_t n)
{
    return do_report(s, m, n, NULL, 0, false);
}

dray_status dray_tune_report_checkpoint(dray_tune_session *s, const dray_tune_metric *m, size_t n,
                                        const void *data, size_t len)
{
    if (!data && len)
        return dray_set_error(DRAY_EINVAL, "tune: report_checkpoint: NULL data of %zu bytes", len);
    return do_report(s, m, n, data, len, true);
}

const void *dray_tune_session_checkpoint(dray_tune_session *s, size_t *len)
{
    if (len)
        *len = s && s->start_ckpt ? s->start_ckpt_len : 0;
    return s ? s->start_ckpt : NULL;
}

int64_t dray_tune_session_iteration(dray_tune_session *s) { return s ? s->iter : 0; }

dray_runtime *dray_tune_session_runtime(dray_tune_session *s) { return s ? s->rt : NULL; }

static void session_destroy(dray_tune_session *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    dray_tune_result_destroy(s->pending);
    free(s->pending_ckpt);
    free(s->last_ckpt);
    free(s->start_ckpt);
    dray_tune_config_destroy(s->cfg);
    free(s);
}

/* ==== the actor ==== */
static void trial_destroy(void *state)
{
    trial_actor *a = state;
    if (!a)
        return;
    session_destroy(a->sess);
    if (a->state && a->t->cls && a->t->cls->cleanup)
        a->t->cls->cleanup(a->state);
    free(a);
}

/* init args: trainable name (string), config (bytes), checkpoint (bytes or null), start iteration */
static dray_status trial_init(dray_ctx *ctx, const dray_value *args, size_t nargs, void **state)
{
    if (nargs != 4 || args[0].type != DRAY_T_STRING || args[1].type != DRAY_T_BYTES ||
        (args[2].type != DRAY_T_BYTES && args[2].type != DRAY_T_NULL) || args[3].type != DRAY_T_INT)
        return dray_ctx_fail(ctx, DRAY_EINVAL, "tune trial: bad constructor arguments");
    const dray_tune_trainable *t = dray_tune_trainable_find(dray_string_cstr(&args[0]));
    if (!t)
        return dray_ctx_fail(ctx, DRAY_ENOTFOUND, "%s", dray_last_error());
    size_t clen = 0, klen = 0;
    const void *cbytes = dray_bytes_data(&args[1], &clen);
    const void *kbytes = args[2].type == DRAY_T_BYTES ? dray_bytes_data(&args[2], &klen) : NULL;
    dray_tune_config *cfg = NULL;
    dray_status st = dray__tune_config_decode(cbytes, clen, &cfg);
    if (st != DRAY_OK)
        return dray_ctx_fail(ctx, st, "%s", dray_last_error());
    trial_actor *a = calloc(1, sizeof(*a));
    if (!a) {
        dray_tune_config_destroy(cfg);
        return dray_ctx_fail(ctx, DRAY_ENOMEM, "tune trial: out of memory");
    }
    a->t = t;
    if (t->fn) {
        dray_tune_session *s = calloc(1, sizeof(*s));
        if (!s)
            goto out_nomem;
        a->sess = s;
        s->t = t;
        s->rt = dray_ctx_runtime(ctx);
        s->cfg = cfg;
        cfg = NULL;
        s->iter = args[3].u.i;
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        if (kbytes) {
            if (!(s->start_ckpt = malloc(klen ? klen : 1)))
                goto out_nomem;
            memcpy(s->start_ckpt, kbytes, klen);
            s->start_ckpt_len = klen;
        }
        /* start the function now: its first iteration overlaps the first step call, and it waits
         * in its first report until that call asks for the result */
        if (pthread_create(&s->thread, NULL, fn_thread, s) != 0) {
            trial_destroy(a);
            return dray_ctx_fail(ctx, DRAY_ERESOURCE, "tune trial: cannot start a thread");
        }
        s->started = true;
    } else {
        if ((st = t->cls->setup(dray_ctx_runtime(ctx), cfg, t->user, &a->state)) != DRAY_OK) {
            char why[512];
            snprintf(why, sizeof(why), "%s", dray_last_error());
            trial_destroy(a);
            dray_tune_config_destroy(cfg);
            return dray_ctx_fail(ctx, st, "trainable '%s' setup: %s", t->name, why);
        }
        if (kbytes && t->cls->load && (st = t->cls->load(a->state, kbytes, klen)) != DRAY_OK) {
            char why[512];
            snprintf(why, sizeof(why), "%s", dray_last_error());
            trial_destroy(a);
            dray_tune_config_destroy(cfg);
            return dray_ctx_fail(ctx, st, "trainable '%s' load_checkpoint: %s", t->name, why);
        }
    }
    dray_tune_config_destroy(cfg);
    *state = a;
    return DRAY_OK;
out_nomem:
    trial_destroy(a);
    dray_tune_config_destroy(cfg);
    return dray_ctx_fail(ctx, DRAY_ENOMEM, "tune trial: out of memory");
}

/* step_value: [result bytes, checkpoint bytes or null, done (bool)]. Takes nothing. */
static dray_status step_value(const dray_tune_result *r, const void *ckpt, size_t ckpt_len,
                              bool has_ckpt, bool done, dray_value *out)
{
    dray_value items[3] = {dray_null(), dray_null(), dray_bool(done)};
    void *buf = NULL;
    size_t len = 0;
    dray_status st = DRAY_OK;
    if (r && (st = dray__tune_result_encode(r, &buf, &len)) == DRAY_OK)
        st = dray_bytes_create(buf, len, &items[0]);
    free(buf);
    if (st == DRAY_OK && has_ckpt)
        st = dray_bytes_create(ckpt, ckpt_len, &items[1]);
    if (st == DRAY_OK)
        st = dray_list_create(items, 3, out);
    dray_value_release(&items[0]);
    dray_value_release(&items[1]);
    return st;
}

static dray_status fn_step(dray_ctx *ctx, trial_actor *a, dray_value *result)
{
    dray_tune_session *s = a->sess;
    pthread_mutex_lock(&s->mu);
    s->want_next = true;
    pthread_cond_broadcast(&s->cv);
    while (!s->have_result && !s->finished)
        pthread_cond_wait(&s->cv, &s->mu);
    dray_tune_result *r = NULL;
    void *ck = NULL;
    size_t ck_len = 0;
    bool has_ck = false;
    if (s->have_result) {
        r = s->pending;
        ck = s->pending_ckpt;
        ck_len = s->pending_ckpt_len;
        has_ck = s->pending_has_ckpt;
        s->pending = NULL;
        s->pending_ckpt = NULL;
        s->have_result = false;
        if (has_ck) {
            free(s->last_ckpt);
            s->last_ckpt = ck; /* kept for save */
            s->last_ckpt_len = ck_len;
        }
    } else {
        s->want_next = false;
    }
    dray_status fn_st = s->fn_status;
    bool finished = s->finished && !r;
    char why[512];
    snprintf(why, sizeof(why), "%s", s->fn_error);
    dray_status st = DRAY_OK;
    if (!finished || fn_st == DRAY_OK || fn_st == DRAY_ECANCELED)
        st = step_value(r, ck, ck_len, has_ck, finished, result);
    pthread_mutex_unlock(&s->mu);
    dray_tune_result_destroy(r);
    if (finished && fn_st != DRAY_OK && fn_st != DRAY_ECANCELED)
        return dray_ctx_fail(ctx, fn_st, "trainable '%s' failed: %s", a->t->name,
                             why[0] ? why : dray_status_str(fn_st));
    return st == DRAY_OK ? DRAY_OK : dray_ctx_fail(ctx, st, "%s", dray_last_error());
}

static dray_status cls_step(dray_ctx *ctx, trial_actor *a, dray_value *result)
{
    dray_tune_result *r = NULL;
    dray_status st = dray_tune_result_create(&r);
    if (st == DRAY_OK && (st = a->t->cls->step(a->state, r)) != DRAY_OK) {
        char why[512];
        snprintf(why, sizeof(why), "%s", dray_last_error());
        dray_tune_result_destroy(r);
        return dray_ctx_fail(ctx, st, "trainable '%s' step failed: %s", a->t->name,
                             why[0] ? why : dray_status_str(st));
    }
    if (st == DRAY_OK)
        st = step_value(r, NULL, 0, false, false, result);
    dray_tune_result_destroy(r);
    return st == DRAY_OK ? DRAY_OK : dray_ctx_fail(ctx, st, "%s", dray_last_error());
}

static dray_status m_step(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                          dray_value *result)
{
    (void)args, (void)nargs;
    trial_actor *a = state;
    double t0 = now_s();
    dray_status st = a->sess ? fn_step(ctx, a, result) : cls_step(ctx, a, result);
    if (st != DRAY_OK)
        return st;
    /* time_this_iter_s travels as a 4th element */
    dray_value items[4];
    size_t n = dray_list_len(result);
    for (size_t i = 0; i < n && i < 3; i++)
        items[i] = *dray_list_get(result, i);
    items[3] = dray_float(now_s() - t0);
    dray_value out;
    st = dray_list_create(items, 4, &out);
    dray_value_release(result);
    if (st != DRAY_OK)
        return dray_ctx_fail(ctx, st, "tune trial: out of memory");
    *result = out;
    return DRAY_OK;
}

/* save: the class's save_checkpoint, or a function trainable's latest reported checkpoint; a bytes
 * value, or null when there is none. */
static dray_status m_save(dray_ctx *ctx, void *state, const dray_value *args, size_t nargs,
                          dray_value *result)
{
    (void)args, (void)nargs;
    trial_actor *a = state;
    dray_status st = DRAY_OK;
    *result = dray_null();
    if (a->sess) {
        pthread_mutex_lock(&a->sess->mu);
        if (a->sess->last_ckpt)
            st = dray_bytes_create(a->sess->last_ckpt, a->sess->last_ckpt_len, result);
        pthread_mutex_unlock(&a->sess->mu);
    } else if (a->t->cls->save) {
        void *data = NULL;
        size_t len = 0;
        if ((st = a->t->cls->save(a->state, &data, &len)) != DRAY_OK) {
            char why[512];
            snprintf(why, sizeof(why), "%s", dray_last_error());
            return dray_ctx_fail(ctx, st, "trainable '%s' save_checkpoint: %s", a->t->name, why);
        }
        st = dray_bytes_create(data ? data : "", len, result);
        free(data);
    }
    return st == DRAY_OK ? DRAY_OK : dray_ctx_fail(ctx, st, "%s", dray_last_error());
}

DRAY_ACTOR_CLASS(dray_tune_Trial, trial_init, trial_destroy, {"step", m_step}, {"save", m_save})
