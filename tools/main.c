/* onnx-distill: the command line. Each subcommand lives in tools/cmd_*.c. */
#include "cli.h"

#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"inspect", cmd_inspect, "size, opsets, inputs/outputs, ops, parameters and MACs of a model"},
    {"run", cmd_run, "run a model on .npy or .pb inputs, write its outputs"},
    {"bench", cmd_bench, "inference latency of models at several batch sizes and thread counts"},
    {"shrink", cmd_shrink, "build a smaller student graph from a teacher (width/depth/spec)"},
    {"optimize", cmd_optimize, "fold BatchNorm, drop Dropout/Identity, fold constants, dedupe weights, store f16/int8"},
    {"distill", cmd_distill, "train a small student on a (noisy) teacher's logits, write it"},
    {"eval", cmd_eval, "accuracy, per-class accuracy and confusion matrix on a labelled dataset"},
    {"compare", cmd_compare, "models side by side: size, params, MACs, latency, accuracy, agreement"},
};

static void usage(FILE *f) {
    fprintf(f, "onnx-distill %s: compress an ONNX teacher into a small student\n\n"
               "usage: onnx-distill COMMAND [OPTIONS]   (onnx-distill COMMAND --help for more)\n\n"
               "commands:\n", OD_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || cli_flag(argv[1], "--help") || cli_flag(argv[1], "-h") || cli_flag(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (cli_flag(argv[1], "--version")) {
        printf("onnx-distill %s\n", OD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    cli_fail("unknown command \"%s\" (try onnx-distill --help)", argv[1]);
    return 1;
}
