/* `dray tune DIR`: shows an experiment saved by dray_tune_run (its storage_path): the status table and
 * the best trial, optionally exported as CSV. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dray/dray.h"

static int usage(void)
{
    fprintf(stderr, "usage: dray tune DIR [--metric NAME] [--mode min|max] [--csv FILE]\n");
    return 2;
}

static int run_tune(int argc, char **argv)
{
    const char *dir = NULL, *metric = NULL, *csv = NULL;
    dray_tune_mode mode = DRAY_TUNE_MODE_UNSET;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--metric") && i + 1 < argc)
            metric = argv[++i];
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
            if (dray_tune_mode_parse(argv[++i], &mode) != DRAY_OK) {
                fprintf(stderr, "dray tune: %s\n", dray_last_error());
                return 2;
            }
        } else if (!strcmp(argv[i], "--csv") && i + 1 < argc)
            csv = argv[++i];
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            return usage();
    }
    if (!dir)
        return usage();
    dray_config cfg;
    dray_config_init(&cfg);
    cfg.num_workers = 1;
    cfg.progress = 0;
    dray_runtime *rt;
    dray_tune_grid *g = NULL;
    int rc = 1;
    if (dray_init(&cfg, &rt) != DRAY_OK) {
        fprintf(stderr, "dray tune: %s\n", dray_last_error());
        return 1;
    }
    if (dray_tune_grid_load(rt, dir, metric, mode, &g) != DRAY_OK)
        goto out;
    char table[16384];
    dray_tune_grid_table(g, table, sizeof(table));
    fputs(table, stdout);
    if (metric && mode != DRAY_TUNE_MODE_UNSET) {
        size_t best;
        double v;
        char cbuf[512];
        if (dray_tune_grid_best(g, NULL, DRAY_TUNE_MODE_UNSET, "last", &best, &v) != DRAY_OK)
            goto out;
        dray_tune_config_format(dray_tune_grid_config(g, best), cbuf, sizeof(cbuf));
        printf("best trial %zu: %s=%.6g  %s\n", best, metric, v, cbuf);
    }
    if (csv && dray_tune_grid_write_csv(g, csv) != DRAY_OK)
        goto out;
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "dray tune: %s\n", dray_last_error());
    dray_tune_grid_destroy(g);
    dray_shutdown(rt, DRAY_SHUTDOWN_DRAIN);
    return rc;
}
DRAY_CLI_COMMAND(cmd_tune, "tune", "show a saved tune experiment (table, best trial, CSV)", run_tune)
