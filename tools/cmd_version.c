/* `dray version`: prints the version. */
#include <stdio.h>

#include "cli.h"

static int run_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("dray 0.1.0\n");
    return 0;
}
DRAY_CLI_COMMAND(cmd_version, "version", "print the version", run_version)
