/* Resource accounting of the local runtime: CPU (one per worker), GPU and custom resources from the
 * config. Tasks that ask for more than one CPU or for other resources are gated: they run only while
 * the pool has room, and park (without holding a worker) until a release makes room. */
#include <string.h>

#include "internal.h"

static dray_status pool_add(dray__resource_pool *p, const char *name, double amount)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0) {
            p->total[i] += amount;
            return DRAY_OK;
        }
    char **names = realloc(p->names, (p->n + 1) * sizeof(char *));
    if (!names)
        return dray_set_error(DRAY_ENOMEM, "out of memory adding resource '%s'", name);
    p->names = names;
    double *total = realloc(p->total, (p->n + 1) * sizeof(double));
    if (!total)
        return dray_set_error(DRAY_ENOMEM, "out of memory adding resource '%s'", name);
    p->total = total;
    double *used = realloc(p->used, (p->n + 1) * sizeof(double));
    if (!used)
        return dray_set_error(DRAY_ENOMEM, "out of memory adding resource '%s'", name);
    p->used = used;
    if (!(p->names[p->n] = strdup(name)))
        return dray_set_error(DRAY_ENOMEM, "out of memory adding resource '%s'", name);
    p->total[p->n] = amount;
    p->used[p->n] = 0;
    p->n++;
    return DRAY_OK;
}

dray_status dray__resources_init(dray_runtime *rt, const dray_config *cfg)
{
    dray_status st = pool_add(&rt->res, "CPU", rt->nworkers);
    for (size_t i = 0; st == DRAY_OK && i < cfg->n_resources; i++) {
        const dray_resource *r = &cfg->resources[i];
        if (!r->name || !r->name[0] || r->amount < 0) {
            st = dray_set_error(DRAY_EINVAL, "config resource %zu: empty name or negative amount",
                                i);
            break;
        }
        st = pool_add(&rt->res, r->name, r->amount);
    }
    if (st)
        dray__resources_fini(rt);
    return st;
}

void dray__resources_fini(dray_runtime *rt)
{
    for (size_t i = 0; i < rt->res.n; i++)
        free(rt->res.names[i]);
    free(rt->res.names);
    free(rt->res.total);
    free(rt->res.used);
    memset(&rt->res, 0, sizeof(rt->res));
}

static long find(const dray__resource_pool *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0)
            return (long)i;
    return -1;
}

dray_status dray__resources_check(dray_runtime *rt, double cpus, const dray_resource *r, size_t n)
{
    if (cpus > rt->res.total[0])
        return dray_set_error(DRAY_ERESOURCE, "task needs %g CPUs but the runtime has %g", cpus,
                              rt->res.total[0]);
    for (size_t i = 0; i < n; i++) {
        if (!r[i].name || r[i].amount < 0)
            return dray_set_error(DRAY_EINVAL, "resource %zu: NULL name or negative amount", i);
        long k = find(&rt->res, r[i].name);
        double have = k < 0 ? 0 : rt->res.total[k];
        if (r[i].amount > have)
            return dray_set_error(DRAY_ERESOURCE,
                                  "task needs %g of resource '%s' but the runtime has %g",
                                  r[i].amount, r[i].name, have);
    }
    return DRAY_OK;
}

static bool fits(dray_runtime *rt, double cpus, const dray_resource *r, size_t n)
{
    /* A gated task also occupies the worker that runs it, which regular tasks count as one CPU. */
    if (rt->res.used[0] + cpus > rt->res.total[0] + 1e-9)
        return false;
    for (size_t i = 0; i < n; i++) {
        long k = find(&rt->res, r[i].name);
        if (k < 0 || rt->res.used[k] + r[i].amount > rt->res.total[k] + 1e-9)
            return false;
    }
    return true;
}

bool dray__resources_acquire(dray_runtime *rt, dray_ref *c)
{
    double cpus;
    const dray_resource *r;
    size_t n;
    dray__task_resources(c, &cpus, &r, &n);
    pthread_mutex_lock(&rt->lock);
    bool ok = fits(rt, cpus, r, n);
    if (ok) {
        rt->res.used[0] += cpus;
        for (size_t i = 0; i < n; i++)
            rt->res.used[find(&rt->res, r[i].name)] += r[i].amount;
    } else {
        c->next = rt->res_waiting;
        rt->res_waiting = c;
    }
    pthread_mutex_unlock(&rt->lock);
    return ok;
}

void dray__resources_release(dray_runtime *rt, double cpus, const dray_resource *r, size_t n)
{
    pthread_mutex_lock(&rt->lock);
    rt->res.used[0] -= cpus;
    for (size_t i = 0; i < n; i++)
        rt->res.used[find(&rt->res, r[i].name)] -= r[i].amount;
    dray_ref *waiting = rt->res_waiting;
    rt->res_waiting = NULL;
    pthread_mutex_unlock(&rt->lock);
    /* Parked tasks try again; those that still don't fit park again. */
    while (waiting) {
        dray_ref *next = waiting->next;
        waiting->next = NULL;
        dray__schedule(rt, waiting);
        waiting = next;
    }
}

dray_status dray_runtime_resource(dray_runtime *rt, const char *name, double *total)
{
    if (!rt || !name || !total)
        return dray_set_error(DRAY_EINVAL, "dray_runtime_resource: NULL argument");
    pthread_mutex_lock(&rt->lock);
    long k = find(&rt->res, name);
    *total = k < 0 ? 0 : rt->res.total[k];
    pthread_mutex_unlock(&rt->lock);
    return DRAY_OK;
}
