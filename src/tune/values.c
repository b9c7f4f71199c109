/* tune values: scalars, configs and results (ordered, small), their byte encoding, and the seeded
 * random generator (xoshiro256** seeded through splitmix64). */
#include "internal.h"

#include <stdio.h>

/* ==== helpers ==== */
dray_status dray__tune_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return DRAY_OK;
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory growing an array to %zu", nc);
    *arr = p;
    *cap = nc;
    return DRAY_OK;
}

dray_status dray__tune_reserve_ids(void **arr, size_t *cap, size_t id, size_t elem)
{
    if (id < *cap)
        return DRAY_OK;
    size_t nc = *cap ? *cap : 16;
    while (nc <= id)
        nc *= 2;
    unsigned char *p = realloc(*arr, nc * elem);
    if (!p)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for %zu trials", nc);
    memset(p + *cap * elem, 0, (nc - *cap) * elem);
    *arr = p;
    *cap = nc;
    return DRAY_OK;
}

char *dray__tune_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

double dray_tune_val_num(const dray_tune_val *v)
{
    switch (v->kind) {
    case DRAY_TUNE_INT: return (double)v->u.i;
    case DRAY_TUNE_FLOAT: return v->u.f;
    case DRAY_TUNE_BOOL: return v->u.b ? 1.0 : 0.0;
    default: return NAN;
    }
}

bool dray__tune_val_equal(const dray_tune_val *a, const dray_tune_val *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case DRAY_TUNE_INT: return a->u.i == b->u.i;
    case DRAY_TUNE_FLOAT: return a->u.f == b->u.f || (isnan(a->u.f) && isnan(b->u.f));
    case DRAY_TUNE_BOOL: return a->u.b == b->u.b;
    case DRAY_TUNE_STR: return strcmp(a->u.s, b->u.s) == 0;
    default: return true;
    }
}

/* ==== configs ==== */
dray_status dray_tune_config_create(dray_tune_config **out)
{
    dray_tune_config *c = calloc(1, sizeof(*c));
    if (!c)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for a config");
    *out = c;
    return DRAY_OK;
}

void dray_tune_config_destroy(dray_tune_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++) {
        free(cfg->e[i].path);
        if (cfg->e[i].v.kind == DRAY_TUNE_STR)
            free((char *)cfg->e[i].v.u.s);
    }
    free(cfg->e);
    free(cfg);
}

static ssize_t config_find(const dray_tune_config *cfg, const char *path)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->e[i].path, path) == 0)
            return (ssize_t)i;
    return -1;
}

dray_status dray_tune_config_set(dray_tune_config *cfg, const char *path, dray_tune_val v)
{
    if (!cfg || !path || !*path)
        return dray_set_error(DRAY_EINVAL, "tune: config_set needs a config and a non-empty path");
    if (v.kind < DRAY_TUNE_INT || v.kind > DRAY_TUNE_BOOL)
        return dray_set_error(DRAY_EINVAL, "tune: parameter '%s': value of unknown kind %d", path,
                              v.kind);
    if (v.kind == DRAY_TUNE_STR) {
        if (!v.u.s)
            return dray_set_error(DRAY_EINVAL, "tune: parameter '%s': NULL string", path);
        char *s = dray__tune_strdup(v.u.s);
        if (!s)
            return dray_set_error(DRAY_ENOMEM, "tune: out of memory for parameter '%s'", path);
        v.u.s = s;
    }
    ssize_t at = config_find(cfg, path);
    if (at >= 0) {
        dray__tune_entry *e = &cfg->e[at];
        if (e->v.kind == DRAY_TUNE_STR)
            free((char *)e->v.u.s);
        e->v = v;
        return DRAY_OK;
    }
    dray_status st = dray__tune_grow((void **)&cfg->e, &cfg->cap, cfg->n, sizeof(*cfg->e));
    char *p = st == DRAY_OK ? dray__tune_strdup(path) : NULL;
    if (!p) {
        if (v.kind == DRAY_TUNE_STR)
            free((char *)v.u.s);
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for parameter '%s'", path);
    }
    cfg->e[cfg->n].path = p;
    cfg->e[cfg->n].v = v;
    cfg->n++;
    return DRAY_OK;
}

dray_status dray_tune_config_clone(const dray_tune_config *cfg, dray_tune_config **out)
{
    dray_tune_config *c = NULL;
    dray_status st = dray_tune_config_create(&c);
    if (st != DRAY_OK)
        return st;
    for (size_t i = 0; i < cfg->n; i++) {
        if ((st = dray_tune_config_set(c, cfg->e[i].path, cfg->e[i].v)) != DRAY_OK) {
            dray_tune_config_destroy(c);
            return st;
        }
    }
    *out = c;
    return DRAY_OK;
}

const dray_tune_val *dray_tune_config_get(const dray_tune_config *cfg, const char *path)
{
    ssize_t at = cfg && path ? config_find(cfg, path) : -1;
    return at >= 0 ? &cfg->e[at].v : NULL;
}

double dray_tune_config_num(const dray_tune_config *cfg, const char *path, double dflt)
{
    const dray_tune_val *v = dray_tune_config_get(cfg, path);
    return v && v->kind != DRAY_TUNE_STR ? dray_tune_val_num(v) : dflt;
}

int64_t dray_tune_config_int(const dray_tune_config *cfg, const char *path, int64_t dflt)
{
    const dray_tune_val *v = dray_tune_config_get(cfg, path);
    if (!v || v->kind == DRAY_TUNE_STR)
        return dflt;
    if (v->kind == DRAY_TUNE_INT)
        return v->u.i;
    return (int64_t)llround(dray_tune_val_num(v));
}

const char *dray_tune_config_str(const dray_tune_config *cfg, const char *path, const char *dflt)
{
    const dray_tune_val *v = dray_tune_config_get(cfg, path);
    return v && v->kind == DRAY_TUNE_STR ? v->u.s : dflt;
}

size_t dray_tune_config_len(const dray_tune_config *cfg) { return cfg ? cfg->n : 0; }
const char *dray_tune_config_path_at(const dray_tune_config *cfg, size_t i)
{
    return i < cfg->n ? cfg->e[i].path : NULL;
}
const dray_tune_val *dray_tune_config_val_at(const dray_tune_config *cfg, size_t i)
{
    return i < cfg->n ? &cfg->e[i].v : NULL;
}

static int val_format(const dray_tune_val *v, char *buf, size_t size)
{
    switch (v->kind) {
    case DRAY_TUNE_INT: return snprintf(buf, size, "%lld", (long long)v->u.i);
    case DRAY_TUNE_FLOAT: return snprintf(buf, size, "%.6g", v->u.f);
    case DRAY_TUNE_BOOL: return snprintf(buf, size, "%s", v->u.b ? "true" : "false");
    case DRAY_TUNE_STR: return snprintf(buf, size, "%s", v->u.s);
    default: return snprintf(buf, size, "none");
    }
}

size_t dray_tune_config_format(const dray_tune_config *cfg, char *buf, size_t size)
{
    size_t len = 0;
    char tmp[512];
    for (size_t i = 0; i < cfg->n; i++) {
        val_format(&cfg->e[i].v, tmp, sizeof(tmp));
        int k = snprintf(len < size ? buf + len : NULL, len < size ? size - len : 0, "%s%s=%s",
                         i ? ", " : "", cfg->e[i].path, tmp);
        len += k > 0 ? (size_t)k : 0;
    }
    if (size)
        buf[len < size ? len : size - 1] = '\0';
    return len;
}

bool dray_tune_config_equal(const dray_tune_config *a, const dray_tune_config *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->e[i].path, b->e[i].path) != 0 || !dray__tune_val_equal(&a->e[i].v, &b->e[i].v))
            return false;
    return true;
}

/* ==== results ==== */
dray_status dray_tune_result_create(dray_tune_result **out)
{
    dray_tune_result *r = calloc(1, sizeof(*r));
    if (!r)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for a result");
    *out = r;
    return DRAY_OK;
}

void dray_tune_result_destroy(dray_tune_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->kv[i].name);
    free(r->kv);
    free(r);
}

dray_status dray_tune_result_set(dray_tune_result *r, const char *name, double value)
{
    if (!r || !name || !*name)
        return dray_set_error(DRAY_EINVAL, "tune: result_set needs a result and a metric name");
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->kv[i].name, name) == 0) {
            r->kv[i].value = value;
            return DRAY_OK;
        }
    }
    dray_status st = dray__tune_grow((void **)&r->kv, &r->cap, r->n, sizeof(*r->kv));
    char *p = st == DRAY_OK ? dray__tune_strdup(name) : NULL;
    if (!p)
        return dray_set_error(DRAY_ENOMEM, "tune: out of memory for metric '%s'", name);
    r->kv[r->n].name = p;
    r->kv[r->n].value = value;
    r->n++;
    return DRAY_OK;
}

dray_status dray_tune_result_clone(const dray_tune_result *r, dray_tune_result **out)
{
    dray_tune_result *c = NULL;
    dray_status st = dray_tune_result_create(&c);
    if (st != DRAY_OK)
        return st;
    for (size_t i = 0; i < r->n; i++) {
        if ((st = dray_tune_result_set(c, r->kv[i].name, r->kv[i].value)) != DRAY_OK) {
            dray_tune_result_destroy(c);
            return st;
        }
    }
    *out = c;
    return DRAY_OK;
}

bool dray_tune_result_get(const dray_tune_result *r, const char *name, double *value)
{
    if (!r || !name)
        return false;
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->kv[i].name, name) == 0) {
            if (value)
                *value = r->kv[i].value;
            return true;
        }
    }
    return false;
}

size_t dray_tune_result_len(const dray_tune_result *r) { return r ? r->n : 0; }
const char *dray_tune_result_name_at(const dray_tune_result *r, size_t i)
{
    return i < r->n ? r->kv[i].name : NULL;
}
double dray_tune_result_value_at(const dray_tune_result *r, size_t i)
{
    return i < r->n ? r->kv[i].value : NAN;
}

/* ==== byte encoding ====
 * config: 'C' 1, u32 count, entries (u32 path length, path, u8 kind, payload: i64 | f64 | u8 |
 * u32 length + bytes). result: 'R' 1, u32 count, entries (u32 name length, name, f64). */
typedef struct wbuf {
    unsigned char *p;
    size_t n, cap;
} wbuf;

static dray_status wput(wbuf *w, const void *d, size_t len)
{
    if (w->n + len > w->cap) {
        size_t nc = w->cap ? w->cap : 64;
        while (nc < w->n + len)
            nc *= 2;
        unsigned char *p = realloc(w->p, nc);
        if (!p)
            return dray_set_error(DRAY_ENOMEM, "tune: out of memory encoding");
        w->p = p;
        w->cap = nc;
    }
    memcpy(w->p + w->n, d, len);
    w->n += len;
    return DRAY_OK;
}

static dray_status wstr(wbuf *w, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    dray_status st = wput(w, &n, 4);
    return st == DRAY_OK ? wput(w, s, n) : st;
}

dray_status dray__tune_config_encode(const dray_tune_config *cfg, void **buf, size_t *len)
{
    wbuf w = {0};
    unsigned char hdr[2] = {'C', 1};
    uint32_t n = (uint32_t)cfg->n;
    dray_status st = wput(&w, hdr, 2);
    if (st == DRAY_OK)
        st = wput(&w, &n, 4);
    for (size_t i = 0; i < cfg->n && st == DRAY_OK; i++) {
        const dray_tune_val *v = &cfg->e[i].v;
        unsigned char k = (unsigned char)v->kind, b = v->kind == DRAY_TUNE_BOOL && v->u.b;
        if ((st = wstr(&w, cfg->e[i].path)) != DRAY_OK || (st = wput(&w, &k, 1)) != DRAY_OK)
            break;
        switch (v->kind) {
        case DRAY_TUNE_INT: st = wput(&w, &v->u.i, 8); break;
        case DRAY_TUNE_FLOAT: st = wput(&w, &v->u.f, 8); break;
        case DRAY_TUNE_BOOL: st = wput(&w, &b, 1); break;
        default: st = wstr(&w, v->u.s); break;
        }
    }
    if (st != DRAY_OK) {
        free(w.p);
        return st;
    }
    *buf = w.p;
    *len = w.n;
    return DRAY_OK;
}

typedef struct rbuf {
    const unsigned char *p;
    size_t n, off;
    bool nomem; /* a string could not be allocated (not a format error) */
} rbuf;

static bool rget(rbuf *r, void *d, size_t len)
{
    if (r->n - r->off < len)
        return false;
    memcpy(d, r->p + r->off, len);
    r->off += len;
    return true;
}

/* rstr: a copy of a length-prefixed string, or NULL (truncated, embedded NUL, no memory). */
static char *rstr(rbuf *r)
{
    uint32_t n;
    if (!rget(r, &n, 4) || r->n - r->off < n || memchr(r->p + r->off, 0, n))
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->nomem = true;
        return NULL;
    }
    memcpy(s, r->p + r->off, n);
    s[n] = '\0';
    r->off += n;
    return s;
}

dray_status dray__tune_config_decode(const void *buf, size_t len, dray_tune_config **out)
{
    rbuf r = {buf, len, 0, false};
    unsigned char hdr[2];
    uint32_t n;
    if (!rget(&r, hdr, 2) || hdr[0] != 'C' || hdr[1] != 1 || !rget(&r, &n, 4))
        return dray_set_error(DRAY_EFORMAT, "tune: config bytes: bad header (%zu bytes)", len);
    dray_tune_config *c = NULL;
    dray_status st = dray_tune_config_create(&c);
    if (st != DRAY_OK)
        return st;
    for (uint32_t i = 0; i < n; i++) {
        size_t at = r.off;
        char *path = rstr(&r), *s = NULL;
        unsigned char k = 0, b = 0;
        dray_tune_val v = {0, {.i = 0}};
        bool ok = path && rget(&r, &k, 1);
        if (ok) {
            v.kind = k;
            switch (k) {
            case DRAY_TUNE_INT: ok = rget(&r, &v.u.i, 8); break;
            case DRAY_TUNE_FLOAT: ok = rget(&r, &v.u.f, 8); break;
            case DRAY_TUNE_BOOL: ok = rget(&r, &b, 1) && b <= 1; v.u.b = b; break;
            case DRAY_TUNE_STR: ok = (s = rstr(&r)) != NULL; v.u.s = s; break;
            default: ok = false;
            }
        }
        if (ok)
            st = dray_tune_config_set(c, path, v);
        else if (r.nomem)
            st = dray_set_error(DRAY_ENOMEM, "tune: out of memory decoding a config");
        else
            st = dray_set_error(DRAY_EFORMAT, "tune: config bytes: entry %u at offset %zu is corrupt",
                                i, at);
        free(path);
        free(s);
        if (st != DRAY_OK) {
            dray_tune_config_destroy(c);
            return st;
        }
    }
    if (r.off != len) {
        dray_tune_config_destroy(c);
        return dray_set_error(DRAY_EFORMAT, "tune: config bytes: %zu trailing bytes", len - r.off);
    }
    *out = c;
    return DRAY_OK;
}

dray_status dray__tune_result_encode(const dray_tune_result *res, void **buf, size_t *len)
{
    wbuf w = {0};
    unsigned char hdr[2] = {'R', 1};
    uint32_t n = (uint32_t)res->n;
    dray_status st = wput(&w, hdr, 2);
    if (st == DRAY_OK)
        st = wput(&w, &n, 4);
    for (size_t i = 0; i < res->n && st == DRAY_OK; i++)
        if ((st = wstr(&w, res->kv[i].name)) == DRAY_OK)
            st = wput(&w, &res->kv[i].value, 8);
    if (st != DRAY_OK) {
        free(w.p);
        return st;
    }
    *buf = w.p;
    *len = w.n;
    return DRAY_OK;
}

dray_status dray__tune_result_decode(const void *buf, size_t len, dray_tune_result **out)
{
    rbuf r = {buf, len, 0, false};
    unsigned char hdr[2];
    uint32_t n;
    if (!rget(&r, hdr, 2) || hdr[0] != 'R' || hdr[1] != 1 || !rget(&r, &n, 4))
        return dray_set_error(DRAY_EFORMAT, "tune: result bytes: bad header (%zu bytes)", len);
    dray_tune_result *res = NULL;
    dray_status st = dray_tune_result_create(&res);
    if (st != DRAY_OK)
        return st;
    for (uint32_t i = 0; i < n && st == DRAY_OK; i++) {
        size_t at = r.off;
        char *name = rstr(&r);
        double v;
        if (name && rget(&r, &v, 8))
            st = dray_tune_result_set(res, name, v);
        else if (r.nomem)
            st = dray_set_error(DRAY_ENOMEM, "tune: out of memory decoding a result");
        else
            st = dray_set_error(DRAY_EFORMAT, "tune: result bytes: entry %u at offset %zu is corrupt",
                                i, at);
        free(name);
    }
    if (st == DRAY_OK && r.off != len)
        st = dray_set_error(DRAY_EFORMAT, "tune: result bytes: %zu trailing bytes", len - r.off);
    if (st != DRAY_OK) {
        dray_tune_result_destroy(res);
        return st;
    }
    *out = res;
    return DRAY_OK;
}

/* ==== random numbers ==== */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void dray_tune_rng_seed(dray_tune_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dray_tune_rng_next(dray_tune_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dray_tune_rng_uniform(dray_tune_rng *rng)
{
    return (double)(dray_tune_rng_next(rng) >> 11) * 0x1.0p-53;
}

double dray_tune_rng_normal(dray_tune_rng *rng)
{
    /* Box-Muller; 1 - u keeps the log argument in (0, 1]. */
    double u1 = 1.0 - dray_tune_rng_uniform(rng), u2 = dray_tune_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
