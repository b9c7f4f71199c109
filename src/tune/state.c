/* tune experiment state: every trial (config, status, history, error, checkpoint bytes) written to
 * <dir>/tune_state.bin atomically (temp file + rename), and read back, checked, to resume a run. */
#include "internal.h"
#include "runner.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#define STATE_FILE "tune_state.bin"
#define STATE_MAGIC 0x53545244u /* "DRTS" */

static bool w(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

static bool wblob(FILE *f, const void *p, size_t n)
{
    uint32_t len = (uint32_t)n;
    return n <= UINT32_MAX && w(f, &len, 4) && (n == 0 || w(f, p, n));
}

static dray_status write_trial(dray_runtime *rt, FILE *f, const dray__tune_trial *t)
{
    void *buf = NULL;
    size_t len = 0;
    int32_t id = t->id, failures = t->failures;
    uint8_t status = (uint8_t)t->status;
    dray_status st = dray__tune_config_encode(t->cfg, &buf, &len);
    if (st != DRAY_OK)
        return st;
    bool ok = w(f, &id, 4) && w(f, &status, 1) && w(f, &failures, 4) && w(f, &t->iter, 8) &&
              w(f, &t->time_total, 8) && wblob(f, buf, len);
    free(buf);
    uint32_t nh = (uint32_t)t->n_hist;
    ok = ok && w(f, &nh, 4);
    for (size_t i = 0; ok && i < t->n_hist; i++) {
        if ((st = dray__tune_result_encode(t->hist[i], &buf, &len)) != DRAY_OK)
            return st;
        ok = wblob(f, buf, len);
        free(buf);
    }
    const char *err = t->error ? t->error : "";
    ok = ok && wblob(f, err, strlen(err));
    /* the checkpoint's bytes, fetched from the object store (a failed save counts as none) */
    dray_value v = dray_null();
    uint8_t has = 0;
    if (t->ckpt && dray_get(rt, t->ckpt, -1, &v) == DRAY_OK && v.type == DRAY_T_BYTES)
        has = 1;
    const void *data = has ? dray_bytes_data(&v, &len) : NULL;
    ok = ok && w(f, &has, 1);
    if (has)
        ok = ok && w(f, &t->ckpt_iter, 8) && w(f, &t->ckpt_time, 8) && wblob(f, data, len);
    dray_value_release(&v);
    return ok ? DRAY_OK : dray_set_error(DRAY_EIO, "tune: writing experiment state: %s",
                                         strerror(errno));
}

dray_status dray__tune_state_save(dray_runtime *rt, const char *dir, const dray__tune_trial *t,
                                  size_t n, int64_t suggested)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return dray_set_error(DRAY_EIO, "tune: cannot create experiment directory '%s': %s", dir,
                              strerror(errno));
    char path[4096], tmp[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, STATE_FILE);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return dray_set_error(DRAY_EIO, "tune: cannot write '%s': %s", tmp, strerror(errno));
    uint32_t magic = STATE_MAGIC, version = 1, count = (uint32_t)n;
    dray_status st = w(f, &magic, 4) && w(f, &version, 4) && w(f, &suggested, 8) && w(f, &count, 4)
                         ? DRAY_OK
                         : dray_set_error(DRAY_EIO, "tune: writing '%s' failed", tmp);
    for (size_t i = 0; i < n && st == DRAY_OK; i++)
        st = write_trial(rt, f, &t[i]);
    if (fclose(f) != 0 && st == DRAY_OK)
        st = dray_set_error(DRAY_EIO, "tune: writing '%s' failed: %s", tmp, strerror(errno));
    if (st == DRAY_OK && rename(tmp, path) != 0)
        st = dray_set_error(DRAY_EIO, "tune: cannot rename '%s': %s", tmp, strerror(errno));
    if (st != DRAY_OK)
        remove(tmp);
    return st;
}

/* ---- reading ---- */
typedef struct rd {
    const unsigned char *p;
    size_t n, off;
} rd;

static bool r(rd *b, void *d, size_t len)
{
    if (b->n - b->off < len)
        return false;
    memcpy(d, b->p + b->off, len);
    b->off += len;
    return true;
}

static bool rblob(rd *b, const void **p, size_t *len)
{
    uint32_t l;
    if (!r(b, &l, 4) || b->n - b->off < l)
        return false;
    *p = b->p + b->off;
    *len = l;
    b->off += l;
    return true;
}

static dray_status read_trial(dray_runtime *rt, rd *b, dray__tune_trial *t, const char *path)
{
    int32_t id, failures;
    uint8_t status, has;
    uint32_t nh;
    const void *p;
    size_t len;
    size_t at = b->off;
    if (!r(b, &id, 4) || !r(b, &status, 1) || !r(b, &failures, 4) || !r(b, &t->iter, 8) ||
        !r(b, &t->time_total, 8) || !rblob(b, &p, &len) || status > DRAY_TUNE_ERROR)
        goto corrupt;
    t->id = id;
    t->status = status;
    t->failures = failures;
    dray_status st = dray__tune_config_decode(p, len, &t->cfg);
    if (st != DRAY_OK)
        return st;
    if (!r(b, &nh, 4) || nh > b->n)
        goto corrupt;
    if (nh && !(t->hist = calloc(nh, sizeof(*t->hist))))
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory reading '%s'", path);
    t->cap_hist = nh;
    for (uint32_t i = 0; i < nh; i++) {
        if (!rblob(b, &p, &len))
            goto corrupt;
        if ((st = dray__tune_result_decode(p, len, &t->hist[i])) != DRAY_OK)
            return st;
        t->n_hist++;
    }
    if (!rblob(b, &p, &len))
        goto corrupt;
    if (len && !(t->error = strndup(p, len)))
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory reading '%s'", path);
    if (!r(b, &has, 1) || has > 1)
        goto corrupt;
    if (has) {
        dray_value v;
        if (!r(b, &t->ckpt_iter, 8) || !r(b, &t->ckpt_time, 8) || !rblob(b, &p, &len))
            goto corrupt;
        if ((st = dray_bytes_create(p, len, &v)) != DRAY_OK)
            return st;
        st = dray_put(rt, &v, &t->ckpt);
        dray_value_release(&v);
        if (st != DRAY_OK)
            return st;
    }
    return DRAY_OK;
corrupt:
    return dray_set_error(DRAY_EFORMAT, "tune: experiment state '%s' is corrupt at byte %zu", path,
                          at);
}

dray_status dray__tune_state_load(dray_runtime *rt, const char *dir, dray__tune_trial **out,
                                  size_t *n_out, int64_t *suggested)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return DRAY_ENOTFOUND;
        return dray_set_error(DRAY_EIO, "tune: cannot read '%s': %s", path, strerror(errno));
    }
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    dray_status st = DRAY_OK;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                st = dray_set_error(DRAY_ENOMEM, "tune: out of memory reading '%s'", path);
                break;
            }
            buf = nb;
        }
        size_t k = fread(buf + len, 1, cap - len, f);
        len += k;
        if (k == 0)
            break;
    }
    fclose(f);
    rd b = {buf, len, 0};
    uint32_t magic = 0, version = 0, count = 0;
    dray__tune_trial *t = NULL;
    size_t n = 0;
    if (st == DRAY_OK && (!r(&b, &magic, 4) || magic != STATE_MAGIC || !r(&b, &version, 4) ||
                          version != 1 || !r(&b, suggested, 8) || !r(&b, &count, 4) || count > len))
        st = dray_set_error(DRAY_EFORMAT, "tune: '%s' is not a tune experiment state", path);
    if (st == DRAY_OK && count && !(t = calloc(count, sizeof(*t))))
        st = dray_set_error(DRAY_ENOMEM, "tune: out of memory reading '%s'", path);
    for (; st == DRAY_OK && n < count; n++)
        if ((st = read_trial(rt, &b, &t[n], path)) != DRAY_OK || t[n].id != (int)n)
            st = st != DRAY_OK ? st
                               : dray_set_error(DRAY_EFORMAT, "tune: '%s': trial %zu has id %d",
                                                path, n, t[n].id);
    free(buf);
    if (st != DRAY_OK) {
        for (size_t i = 0; i <= n && i < count; i++)
            dray__tune_trial_fini(&t[i]);
        free(t);
        return st;
    }
    *out = t;
    *n_out = count;
    return DRAY_OK;
}

dray_status dray_tune_grid_load(dray_runtime *rt, const char *dir, const char *metric,
                                dray_tune_mode mode, dray_tune_grid **out)
{
    if (!rt || !dir || !out)
        return dray_set_error(DRAY_EINVAL, "tune: grid_load needs a runtime, a directory and out");
    dray__tune_trial *t = NULL;
    size_t n = 0;
    int64_t suggested;
    dray_status st = dray__tune_state_load(rt, dir, &t, &n, &suggested);
    if (st == DRAY_ENOTFOUND)
        return dray_set_error(st, "tune: no experiment state in '%s'", dir);
    if (st != DRAY_OK)
        return st;
    dray_tune_grid *g = calloc(1, sizeof(*g));
    if (!g || (metric && !(g->metric = dray__tune_strdup(metric)))) {
        free(g);
        for (size_t i = 0; i < n; i++)
            dray__tune_trial_fini(&t[i]);
        free(t);
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for the result grid");
    }
    g->t = t;
    g->n = n;
    g->mode = mode;
    *out = g;
    return DRAY_OK;
}
