/* Parquet round trip with dray's codec: writes a 1M-row table (id, amount with nulls, category), reads
 * back only `amount` from the row groups whose statistics say they may hold amount > 990 (predicate
 * pushdown), and checks the filtered sum against the in-memory table. Exit status 1 on a mismatch.
 *   parquet_roundtrip [OUT.parquet]     (default: $TMPDIR/dray-example.parquet) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dray/parquet.h"

#define ROWS 1000000

static void no_release_a(struct ArrowArray *a) { a->release = NULL; }
static void no_release_s(struct ArrowSchema *s) { s->release = NULL; }

int main(int argc, char **argv)
{
    char path[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s", argc > 1 ? argv[1] : "");
    if (argc <= 1)
        snprintf(path, sizeof(path), "%s/dray-example.parquet", tmp ? tmp : "/tmp");

    /* the table: amount rises with id so row groups have distinct ranges */
    int64_t *id = malloc(ROWS * sizeof(*id));
    double *amount = malloc(ROWS * sizeof(*amount));
    uint8_t *valid = calloc(ROWS / 8 + 1, 1);
    int32_t *off = malloc((ROWS + 1) * sizeof(*off));
    char *cat = malloc(ROWS * 2);
    if (!id || !amount || !valid || !off || !cat)
        return 1;
    off[0] = 0;
    for (int64_t i = 0; i < ROWS; i++) {
        id[i] = i;
        amount[i] = (double)i / 1000.0 + (double)(i % 7);
        if (i % 13)
            valid[i >> 3] |= (uint8_t)(1u << (i & 7));
        cat[2 * i] = (char)('a' + i % 20);
        cat[2 * i + 1] = 'x';
        off[i + 1] = (int32_t)(2 * i + 2);
    }
    struct ArrowSchema cs[3] = {
        {.format = "l", .name = "id", .release = no_release_s},
        {.format = "g", .name = "amount", .flags = ARROW_FLAG_NULLABLE, .release = no_release_s},
        {.format = "u", .name = "category", .release = no_release_s}};
    struct ArrowSchema *csp[3] = {&cs[0], &cs[1], &cs[2]};
    struct ArrowSchema schema = {.format = "+s", .name = "", .n_children = 3, .children = csp,
                                 .release = no_release_s};
    const void *b0[2] = {NULL, id}, *b1[2] = {valid, amount}, *b2[3] = {NULL, off, cat};
    const void *bs[1] = {NULL};
    struct ArrowArray ca[3] = {
        {.length = ROWS, .n_buffers = 2, .buffers = b0, .release = no_release_a},
        {.length = ROWS, .null_count = -1, .n_buffers = 2, .buffers = b1, .release = no_release_a},
        {.length = ROWS, .n_buffers = 3, .buffers = b2, .release = no_release_a}};
    struct ArrowArray *cap[3] = {&ca[0], &ca[1], &ca[2]};
    struct ArrowArray batch = {.length = ROWS, .n_buffers = 1, .buffers = bs, .n_children = 3,
                               .children = cap, .release = no_release_a};

    dray_parquet_write_opts o;
    dray_parquet_write_opts_init(&o);
    o.row_group_rows = 100000;
    dray_parquet_writer *w;
    dray_parquet_file *f;
    if (dray_parquet_writer_open(path, &schema, &o, &w) || dray_parquet_writer_write(w, &batch) ||
        dray_parquet_writer_close(w) || dray_parquet_open(path, &f)) {
        fprintf(stderr, "parquet_roundtrip: %s\n", dray_last_error());
        return 1;
    }

    int col = dray_parquet_column_index(f, "amount"), read = 0;
    double sum = 0;
    for (int g = 0; g < dray_parquet_num_row_groups(f); g++) {
        dray_parquet_stats st;
        if (dray_parquet_column_stats(f, g, col, &st) || (st.has_min_max && st.max_f <= 990))
            continue; /* pruned: no row of this group can pass */
        struct ArrowArray a;
        if (dray_parquet_read_row_group(f, g, &col, 1, NULL, &a)) {
            fprintf(stderr, "parquet_roundtrip: %s\n", dray_last_error());
            return 1;
        }
        const struct ArrowArray *am = a.children[0];
        const uint8_t *v = am->buffers[0];
        const double *x = am->buffers[1];
        for (int64_t i = 0; i < am->length; i++)
            if ((!v || (v[i >> 3] >> (i & 7) & 1)) && x[i] > 990)
                sum += x[i];
        a.release(&a);
        read++;
    }
    double want = 0;
    for (int64_t i = 0; i < ROWS; i++)
        if ((valid[i >> 3] >> (i & 7) & 1) && amount[i] > 990)
            want += amount[i];
    printf("wrote %s: %lld rows in %d row groups; read %d of them for amount > 990: sum %.3f\n",
           path, (long long)dray_parquet_num_rows(f), dray_parquet_num_row_groups(f), read, sum);
    dray_parquet_close(f);
    remove(path);
    free(id), free(amount), free(valid), free(off), free(cat);
    if (fabs(sum - want) > 1e-6 * want || read != 1) {
        fprintf(stderr, "parquet_roundtrip: got sum %.6f from %d groups, want %.6f from 1\n", sum, read,
                want);
        return 1;
    }
    return 0;
}
