/* onnx-distill: the command line. Each subcommand lives in tools/cmd_*.c: its option table
 * (cli_cmd_NAME) and its function (cmd_NAME). */
#include "cli.h"

#include <string.h>

static const struct {
    const cli_command *cmd;
    int (*fn)(int, char **);
} commands[] = {
    {&cli_cmd_inspect, cmd_inspect},   {&cli_cmd_run, cmd_run},
    {&cli_cmd_bench, cmd_bench},       {&cli_cmd_shrink, cmd_shrink},
    {&cli_cmd_optimize, cmd_optimize}, {&cli_cmd_distill, cmd_distill},
    {&cli_cmd_eval, cmd_eval},         {&cli_cmd_compare, cmd_compare},
};
enum { N_COMMANDS = sizeof commands / sizeof *commands };

static void usage(FILE *f) {
    fprintf(f,
            "onnx-distill %s: compress an ONNX teacher into a small student\n\n"
            "usage: onnx-distill COMMAND [OPTIONS] [--] OPERANDS...\n"
            "       onnx-distill help COMMAND      (the same as onnx-distill COMMAND --help)\n"
            "       onnx-distill --version | --man\n\n"
            "commands:\n",
            OD_VERSION);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].cmd->name, commands[i].cmd->summary);
    fputs("\nOptions take their value as `--name value` or `--name=value` (`-o FILE` or `-oFILE`); "
          "`--` ends\n"
          "the options. The same option is checked the same way, with the same message, in every "
          "command.\n\n"
          "Exit status: 0 success, 1 runtime error (a bad model, dataset or file; one line on "
          "stderr),\n"
          "2 usage error (unknown option, value out of range, missing operand), 130 interrupted.\n",
          f);
}

static int find(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(name, commands[i].cmd->name) == 0) return i;
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *a = argv[1];
    if (!strcmp(a, "--help") || !strcmp(a, "-h") || (!strcmp(a, "help") && argc == 2)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(a, "help")) {
        int k = find(argv[2]);
        if (k < 0 || argc > 3)
            return cli_fail("help: unknown command \"%s\" (try onnx-distill --help)", argv[2]),
                   CLI_EXIT_USAGE;
        cli_print_help(commands[k].cmd, stdout);
        return 0;
    }
    if (!strcmp(a, "--version")) {
        printf("onnx-distill %s\n", OD_VERSION);
        return 0;
    }
    if (!strcmp(a, "--man")) {
        const cli_command *cmds[N_COMMANDS];
        for (int i = 0; i < N_COMMANDS; i++)
            cmds[i] = commands[i].cmd;
        cli_print_man(cmds, N_COMMANDS, stdout);
        return 0;
    }
    int k = find(a);
    if (k >= 0) return commands[k].fn(argc - 1, argv + 1);
    cli_fail("unknown command \"%s\" (try onnx-distill --help)", a);
    return CLI_EXIT_USAGE;
}
