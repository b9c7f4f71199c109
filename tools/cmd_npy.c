/* `dray npy FILE [CHUNK]`: shape, dtype and summary statistics of a .npy file, computed lazily in
 * chunks of CHUNK rows (default 1,000,000 elements' worth) on the embedded runtime. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "dray/array.h"

static int reduce_print(dray_runtime *rt, dray_array *a, dray_reduce_op op, const char *name)
{
    dray_array *r;
    dray_ndarray *v;
    if (dray_array_reduce(op, a, NULL, 0, NULL, &r) != DRAY_OK)
        return 1;
    dray_status st = dray_array_compute(rt, r, &v);
    dray_array_release(r);
    if (st != DRAY_OK)
        return 1;
    printf("%-5s %.17g\n", name, dray_ndarray_get(v, 0));
    dray_ndarray_release(v);
    return 0;
}

static int run_npy(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: dray npy FILE [CHUNK_ROWS]\n");
        return 2;
    }
    dray_runtime *rt = NULL;
    dray_array *a = NULL;
    int rc = 1;
    if (dray_array_read_npy(argv[1], NULL, &a) != DRAY_OK)
        goto out;
    int nd = dray_array_ndim(a);
    int64_t shape[DRAY_ARRAY_MAX_DIMS], row = 1, chunks[DRAY_ARRAY_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++)
        shape[d] = dray_array_shape(a)[d];
    for (int d = 1; d < nd; d++)
        row *= shape[d] ? shape[d] : 1;
    if (nd) {
        chunks[0] = argc > 2 ? atoll(argv[2]) : (1000000 + row - 1) / row;
        dray_array_release(a);
        a = NULL;
        if (chunks[0] < 1 || dray_array_read_npy(argv[1], chunks, &a) != DRAY_OK)
            goto out;
    }
    printf("file  %s\ndtype %s\nshape (", argv[1], dray_dtype_name(dray_array_dtype(a)));
    for (int d = 0; d < nd; d++)
        printf("%s%lld", d ? ", " : "", (long long)shape[d]);
    printf(nd == 1 ? ",)\n" : ")\n");
    if (dray_init(NULL, &rt) != DRAY_OK)
        goto out;
    if (dray_array_size(a) > 0 &&
        (reduce_print(rt, a, DRAY_SUM, "sum") || reduce_print(rt, a, DRAY_MEAN, "mean") ||
         reduce_print(rt, a, DRAY_STD, "std") || reduce_print(rt, a, DRAY_MIN, "min") ||
         reduce_print(rt, a, DRAY_MAX, "max")))
        goto out;
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "dray npy: %s\n", dray_last_error());
    dray_array_release(a);
    if (rt)
        dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return rc;
}
DRAY_CLI_COMMAND(cmd_npy, "npy", "shape, dtype and statistics of a .npy file (lazy, chunked)",
                 run_npy)
