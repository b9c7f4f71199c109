/* The `dray` command line: each subcommand lives in its own tools/cmd_*.c file and registers itself at
 * load time with DRAY_CLI_COMMAND, so modules add commands without touching tools/dray.c. */
#ifndef DRAY_TOOLS_CLI_H
#define DRAY_TOOLS_CLI_H

typedef struct dray_cli_command {
    const char *name;    /* first word after `dray`, e.g. "gen" */
    const char *summary; /* one line for `dray help` */
    int (*run)(int argc, char **argv); /* argv[0] is the command name; returns the exit code */
    struct dray_cli_command *next;
} dray_cli_command;

void dray_cli_register(dray_cli_command *cmd);

#define DRAY_CLI_COMMAND(var, cname, csummary, fn)                                               \
    static dray_cli_command var = {cname, csummary, fn, 0};                                      \
    __attribute__((constructor)) static void dray__cli_reg_##var(void) { dray_cli_register(&var); }

#endif
