/* Spillback of nested tasks: a worker node's own runtime gets a cluster client in local-first mode
 * (client.c), so a task submitted from a task on the node runs here while the node keeps up and goes
 * to the least loaded other node once DRAY_SPILL_QUEUE tasks per executor wait here. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SPILL_QUEUE_DEFAULT 2.0 /* tasks waiting per executor before a nested task may spill */

dray_status dray__submit_here(dray_runtime *rt, const dray_function *fn, const dray_value *args,
                              size_t nargs, const dray_task_opts *opts, dray_ref **out)
{
    dray_ref *c;
    dray_status st = dray__make_task(rt, fn, args, nargs, opts, DRAY__CELL_TASK, &c);
    if (st)
        return st;
    *out = c;
    dray__submit_cell(rt, c);
    return DRAY_OK;
}

double dray__spill_queued(dray_runtime *rt)
{
    int64_t queued = 0;
    for (dray__producer *p = atomic_load_explicit(&rt->producers, memory_order_acquire); p;
         p = p->next)
        queued += dray__deque_size(&p->deque);
    int nslots = atomic_load_explicit(&rt->nslots, memory_order_acquire);
    for (int i = 0; i < nslots; i++)
        if (rt->workers[i].started)
            queued += dray__deque_size(&rt->workers[i].deque);
    return (double)(queued > 0 ? queued : 0) / (rt->nworkers > 0 ? rt->nworkers : 1);
}

dray_status dray__spill_attach(dray_runtime *rt, const char *head, const char *self,
                               const dray__spill_store *store)
{
    const char *on = getenv("DRAY_SPILL"), *q = getenv("DRAY_SPILL_QUEUE");
    if (on && (!strcmp(on, "0") || !strcmp(on, "false"))) {
        dray__log("spill: off (DRAY_SPILL=%s): nested tasks always run on this node", on);
        return DRAY_OK;
    }
    char *end = NULL;
    double queue = q && *q ? strtod(q, &end) : SPILL_QUEUE_DEFAULT;
    if (q && *q && (*end || !(queue >= 0)))
        return dray_set_error(DRAY_EINVAL, "DRAY_SPILL_QUEUE '%s': expected a number >= 0 (tasks "
                              "waiting per executor before nested tasks spill)", q);
    return dray__cluster_attach_local_first(rt, head, self, queue, store);
}
