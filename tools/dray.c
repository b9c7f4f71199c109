/* `dray`: the command line entry point. Dispatches to the subcommands registered by tools/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Written only by load-time constructors, before main. */
static dray_cli_command *commands;

void dray_cli_register(dray_cli_command *cmd)
{
    dray_cli_command **p = &commands;
    while (*p && strcmp((*p)->name, cmd->name) < 0)
        p = &(*p)->next;
    cmd->next = *p;
    *p = cmd;
}

static int usage(FILE *f)
{
    fprintf(f, "usage: dray COMMAND [ARGS...]\n\ncommands:\n");
    for (dray_cli_command *c = commands; c; c = c->next)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return usage(stdout);
    for (dray_cli_command *c = commands; c; c = c->next)
        if (!strcmp(c->name, argv[1]))
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "dray: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
