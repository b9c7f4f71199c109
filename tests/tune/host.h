/* A scripted scheduler host for tune tests: trial statuses and configs in arrays, with stop/unpause/
 * save/exploit recorded so tests can check what a scheduler asked for. */
#ifndef TUNE_TEST_HOST_H
#define TUNE_TEST_HOST_H

#include "dray/tune.h"

#define MOCK_MAX 64

typedef struct mock {
    int n;
    dray_tune_status status[MOCK_MAX];
    dray_tune_config *cfg[MOCK_MAX];
    bool saved[MOCK_MAX];
    int exploited_from[MOCK_MAX]; /* -1: never */
    int n_stops, n_unpauses, n_saves, n_exploits;
} mock;

static size_t mock_num(void *c) { return (size_t)((mock *)c)->n; }
static int mock_id_at(void *c, size_t i) { (void)c; return (int)i; }
static dray_tune_status mock_status(void *c, int t) { return ((mock *)c)->status[t]; }
static const dray_tune_config *mock_cfg(void *c, int t) { return ((mock *)c)->cfg[t]; }
static void mock_stop(void *c, int t)
{
    ((mock *)c)->status[t] = DRAY_TUNE_TERMINATED;
    ((mock *)c)->n_stops++;
}
static void mock_unpause(void *c, int t)
{
    ((mock *)c)->status[t] = DRAY_TUNE_PENDING;
    ((mock *)c)->n_unpauses++;
}
static dray_status mock_save(void *c, int t)
{
    ((mock *)c)->saved[t] = true;
    ((mock *)c)->n_saves++;
    return DRAY_OK;
}
static dray_status mock_exploit(void *c, int t, int src, const dray_tune_config *cfg)
{
    mock *m = c;
    if (!m->saved[src])
        return DRAY_ENOTFOUND;
    dray_tune_config *nc;
    dray_status st = dray_tune_config_clone(cfg, &nc);
    if (st != DRAY_OK)
        return st;
    dray_tune_config_destroy(m->cfg[t]);
    m->cfg[t] = nc;
    m->status[t] = DRAY_TUNE_PAUSED;
    m->exploited_from[t] = src;
    m->n_exploits++;
    return DRAY_OK;
}

static inline void mock_init(mock *m, int n, dray_tune_host *h)
{
    memset(m, 0, sizeof(*m));
    m->n = n;
    for (int i = 0; i < MOCK_MAX; i++)
        m->exploited_from[i] = -1;
    *h = (dray_tune_host){m, mock_num, mock_id_at, mock_status, mock_cfg, mock_stop, mock_unpause,
                          mock_save, mock_exploit};
}

static inline void mock_fini(mock *m)
{
    for (int i = 0; i < MOCK_MAX; i++)
        dray_tune_config_destroy(m->cfg[i]);
}

/* result2: a result with time attr `tname` = t and metric `mname` = v. */
static inline dray_tune_result *result2(const char *tname, double t, const char *mname, double v)
{
    dray_tune_result *r;
    if (dray_tune_result_create(&r) != DRAY_OK || dray_tune_result_set(r, tname, t) != DRAY_OK ||
        (mname && dray_tune_result_set(r, mname, v) != DRAY_OK))
        abort();
    return r;
}

#endif
