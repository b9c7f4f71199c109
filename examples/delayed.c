/* The Dask delayed pattern on dray's lazy graphs: build a graph of small computations (load, clean,
 * analyze, summarize, as in Dask's delayed tutorial), compute it in parallel, check the result against
 * a plain sequential loop, and print it. */
#include <stdio.h>
#include <stdlib.h>

#include "dray/dray.h"

/* load(i): a "file" of 1000 numbers derived from i. */
DRAY_FUNCTION(load)
{
    int64_t i = args[0].u.i;
    void *data;
    dray_status st = dray_bytes_create_uninit(1000 * sizeof(double), result, &data);
    if (st)
        return st;
    double *x = data;
    for (int k = 0; k < 1000; k++)
        x[k] = (double)((i * 7919 + k * 104729) % 1000) - 100.0;
    return DRAY_OK;
}

/* clean(xs): drops negative values, returns the rest as bytes. */
DRAY_FUNCTION(clean)
{
    size_t len;
    const double *x = dray_bytes_data(&args[0], &len);
    if (!x)
        return dray_ctx_fail(ctx, DRAY_ETYPE, "clean: expected bytes");
    size_t n = len / sizeof(double), m = 0;
    double *out = malloc(len ? len : 1);
    if (!out)
        return DRAY_ENOMEM;
    for (size_t k = 0; k < n; k++)
        if (x[k] >= 0)
            out[m++] = x[k];
    dray_status st = dray_bytes_create(out, m * sizeof(double), result);
    free(out);
    return st;
}

/* analyze(xs): the sum of the values. */
DRAY_FUNCTION(analyze)
{
    size_t len;
    const double *x = dray_bytes_data(&args[0], &len);
    double s = 0;
    for (size_t k = 0; k < len / sizeof(double); k++)
        s += x[k];
    *result = dray_float(s);
    return DRAY_OK;
}

/* summarize(a, b, ...): the total. */
DRAY_FUNCTION(summarize)
{
    double s = 0;
    for (size_t i = 0; i < nargs; i++)
        s += args[i].u.f;
    *result = dray_float(s);
    return DRAY_OK;
}

static double sequential(int files)
{
    double total = 0;
    for (int i = 0; i < files; i++)
        for (int k = 0; k < 1000; k++) {
            double v = (double)((i * 7919LL + k * 104729LL) % 1000) - 100.0;
            if (v >= 0)
                total += v;
        }
    return total;
}

int main(void)
{
    enum { FILES = 200 };
    dray_runtime *rt;
    dray_graph *g;
    if (dray_init(NULL, &rt) || dray_graph_create(rt, &g)) {
        fprintf(stderr, "delayed: %s\n", dray_last_error());
        return 1;
    }
    /* results = [analyze(clean(load(i))) for i in range(FILES)]; total = summarize(*results) */
    dray_value parts[FILES];
    for (int i = 0; i < FILES; i++) {
        dray_node l, c, a;
        dray_value arg = dray_int(i);
        char key[32];
        snprintf(key, sizeof key, "load-%d", i);
        if (dray_graph_add_named(g, key, "load", &arg, 1, &l))
            goto fail;
        dray_value vl = dray_value_of_node(l);
        if (dray_graph_add_named(g, NULL, "clean", &vl, 1, &c))
            goto fail;
        dray_value vc = dray_value_of_node(c);
        if (dray_graph_add_named(g, NULL, "analyze", &vc, 1, &a))
            goto fail;
        parts[i] = dray_value_of_node(a);
    }
    dray_node total;
    if (dray_graph_add_named(g, "total", "summarize", parts, FILES, &total))
        goto fail;
    dray_value out;
    if (dray_graph_compute(g, &total, 1, &out))
        goto fail;
    dray_graph_stats st;
    dray_graph_last_stats(g, &st);
    double want = sequential(FILES);
    printf("delayed: total = %.1f (sequential %.1f); %zu nodes ran as %zu tasks (%zu fused)\n",
           out.u.f, want, st.nodes, st.tasks, st.fused);
    dray_graph_destroy(g);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return out.u.f == want ? 0 : 1;
fail:
    fprintf(stderr, "delayed: %s\n", dray_last_error());
    return 1;
}
