/* `dray gen csv --rows N --files K [--seed S] OUTDIR`: writes the seed pipeline's shape of data
 * (id, amount, category, ts) as K CSV files, for the demo, tests and benchmarks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dray/frame.h"

static int run_gen(int argc, char **argv)
{
    long long rows = 1000000;
    int files = 8;
    unsigned long long seed = 42;
    const char *out = NULL;
    if (argc < 2 || strcmp(argv[1], "csv")) {
        fprintf(stderr, "usage: dray gen csv [--rows N] [--files K] [--seed S] OUTDIR\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            rows = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--files") && i + 1 < argc)
            files = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !out)
            out = argv[i];
        else {
            fprintf(stderr, "dray gen csv: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "dray gen csv: missing OUTDIR\n");
        return 2;
    }
    dray_status st = dray_csv_gen(out, rows, files, seed);
    if (st) {
        fprintf(stderr, "dray gen csv: %s\n", dray_last_error());
        return 1;
    }
    printf("wrote %lld rows in %d files to %s\n", rows, files, out);
    return 0;
}
DRAY_CLI_COMMAND(cmd_gen, "gen", "generate data: gen csv --rows N --files K OUTDIR", run_gen)
