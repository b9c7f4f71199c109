/* `dray parquet FILE [--head N]`: prints a Parquet file's columns (as Arrow formats), row groups with
 * each column's statistics, and optionally its first N rows, tab-separated. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dray/parquet.h"

static void print_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n && i < 40; i++)
        putchar(s[i] >= 32 && s[i] < 127 ? s[i] : '?');
    if (n > 40)
        printf("...");
}

static void print_cell(const struct ArrowSchema *s, const struct ArrowArray *a, int64_t i)
{
    const uint8_t *valid = a->buffers[0];
    if (a->null_count && valid && !(valid[i >> 3] >> (i & 7) & 1)) {
        printf("null");
        return;
    }
    const void *b = a->buffers[1];
    const char *f = s->format;
    switch (f[0]) {
    case 'c': printf("%d", ((const int8_t *)b)[i]); break;
    case 's': printf("%d", ((const int16_t *)b)[i]); break;
    case 'i': printf("%d", ((const int32_t *)b)[i]); break;
    case 'l': printf("%" PRId64, ((const int64_t *)b)[i]); break;
    case 'C': printf("%u", ((const uint8_t *)b)[i]); break;
    case 'S': printf("%u", ((const uint16_t *)b)[i]); break;
    case 'I': printf("%u", ((const uint32_t *)b)[i]); break;
    case 'L': printf("%" PRIu64, ((const uint64_t *)b)[i]); break;
    case 'f': printf("%.9g", ((const float *)b)[i]); break;
    case 'g': printf("%.17g", ((const double *)b)[i]); break;
    case 'b': printf("%s", (((const uint8_t *)b)[i >> 3] >> (i & 7) & 1) ? "true" : "false"); break;
    case 'u':
    case 'z': {
        const int32_t *o = b;
        print_bytes((const char *)a->buffers[2] + o[i], (size_t)(o[i + 1] - o[i]));
        break;
    }
    case 't':
        if (f[1] == 'd')
            printf("%d days", ((const int32_t *)b)[i]);
        else
            printf("%" PRId64 " %cs", ((const int64_t *)b)[i], f[2] == 's' ? ' ' : f[2]);
        break;
    default: printf("?");
    }
}

static int run_parquet(int argc, char **argv)
{
    const char *path = NULL;
    int64_t head = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--head") && i + 1 < argc)
            head = atoll(argv[++i]);
        else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: dray parquet FILE [--head N]\n");
        return 2;
    }
    dray_parquet_file *f;
    dray_status st = dray_parquet_open(path, &f);
    if (st) {
        fprintf(stderr, "dray: %s\n", dray_last_error());
        return 1;
    }
    struct ArrowSchema s;
    if ((st = dray_parquet_schema(f, &s)) != DRAY_OK) {
        fprintf(stderr, "dray: %s\n", dray_last_error());
        dray_parquet_close(f);
        return 1;
    }
    printf("%s: %" PRId64 " rows, %d row groups, %d columns\n", path, dray_parquet_num_rows(f),
           dray_parquet_num_row_groups(f), dray_parquet_num_columns(f));
    for (int c = 0; c < dray_parquet_num_columns(f); c++)
        printf("  column %d %s: %s\n", c, s.children[c]->name, s.children[c]->format);
    for (int g = 0; g < dray_parquet_num_row_groups(f); g++) {
        printf("row group %d: %" PRId64 " rows\n", g, dray_parquet_row_group_num_rows(f, g));
        for (int c = 0; c < dray_parquet_num_columns(f); c++) {
            dray_parquet_stats ps;
            dray_parquet_column_stats(f, g, c, &ps);
            printf("  %s: nulls %" PRId64, s.children[c]->name, ps.null_count);
            if (ps.has_min_max) {
                char k = s.children[c]->format[0];
                if (ps.min_b) {
                    printf(", min \"");
                    print_bytes(ps.min_b, ps.min_len);
                    printf("\", max \"");
                    print_bytes(ps.max_b, ps.max_len);
                    printf("\"");
                } else if (k == 'f' || k == 'g') {
                    printf(", min %.17g, max %.17g", ps.min_f, ps.max_f);
                } else if (k == 'L') {
                    printf(", min %" PRIu64 ", max %" PRIu64, ps.min_u, ps.max_u);
                } else {
                    printf(", min %" PRId64 ", max %" PRId64, ps.min_i, ps.max_i);
                }
            }
            printf("\n");
        }
    }
    int rc = 0;
    for (int g = 0; g < dray_parquet_num_row_groups(f) && head > 0; g++) {
        struct ArrowArray a;
        if ((st = dray_parquet_read_row_group(f, g, NULL, 0, NULL, &a)) != DRAY_OK) {
            fprintf(stderr, "dray: %s\n", dray_last_error());
            rc = 1;
            break;
        }
        for (int64_t r = 0; r < a.length && head > 0; r++, head--) {
            for (int64_t c = 0; c < a.n_children; c++) {
                if (c)
                    putchar('\t');
                print_cell(s.children[c], a.children[c], r);
            }
            putchar('\n');
        }
        a.release(&a);
    }
    s.release(&s);
    dray_parquet_close(f);
    return rc;
}
DRAY_CLI_COMMAND(cmd_parquet, "parquet", "show a Parquet file's schema, row groups, statistics, rows",
                 run_parquet)
