/* convnet: one binary, one subcommand per file (darknet's CLI shape without
 * its exit-anywhere habits: subcommands return their exit status here). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"conv2d", cmd_conv2d, "2-D convolution of .npy arrays (NHWC), with optional gradients"},
    {"pool2d", cmd_pool2d, "max or average pooling of .npy arrays (NHWC), with optional gradient"},
    {"filter", cmd_filter, "apply a classic image filter (gaussian, box, sobel, ...) to an image"},
    {"train", cmd_train, "train a CNN (lenet, resnet) on Fashion-MNIST or another IDX dataset"},
    {"eval", cmd_eval, "evaluate a checkpoint on the test set"},
    {"predict", cmd_predict, "classify PNG/JPEG images with a checkpoint"},
    {"viz", cmd_viz, "draw a checkpoint's filters, feature maps or saliency for an image"},
    {"plot", cmd_plot, "draw loss and accuracy curves from `train --json` output"},
    {"bench", cmd_bench, "time convolutions against the machine's peak (and oneDNN)"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void print_help(void)
{
    printf("convnet %s - convolutional networks on the CPU\n\n"
           "usage: convnet <command> [options]\n"
           "       convnet <command> --help     options of one command\n"
           "       convnet help <command>       the same\n"
           "       convnet --version\n\n"
           "commands:\n",
           CN_VERSION_STRING);
    for (int i = 0; i < N_COMMANDS; i++)
        printf("  %-8s  %s\n", commands[i].name, commands[i].summary);
    printf("\nArrays are NumPy .npy files; errors are one line on stderr, exit status 1\n"
           "for a failure and 2 for a usage mistake.\n");
}

static const command *find(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

int cli_run(int argc, char **argv)
{
    if (argc < 2) return cli_usage(NULL, "missing command");
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
        print_help();
        return 0;
    }
    if (!strcmp(name, "help")) {
        if (argc < 3) {
            print_help();
            return 0;
        }
        /* "convnet help conv2d" is "convnet conv2d --help". */
        const command *c = find(argv[2]);
        if (!c) return cli_usage(NULL, "unknown command '%s'", argv[2]);
        char help[] = "--help";
        char *sub[] = {argv[2], help, NULL};
        return c->run(2, sub);
    }
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        printf("convnet %s\n", CN_VERSION_STRING);
        return 0;
    }
    const command *c = find(name);
    if (!c) return cli_usage(NULL, "unknown command '%s'", name);
    return c->run(argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
    /* Idle OpenMP workers spin briefly, then sleep, unless the user says
     * otherwise. libgomp's default spins at every barrier: on a shared
     * machine a spinning worker holds a core the other worker needs (a
     * small 2-thread training run took 8.4 s spinning and 0.9 s sleeping
     * under load). Sleeping at once costs each parallel region the wake-ups
     * of sleeping cores, 10-40 us here (group32 backward-data on 2 threads:
     * 1.04 ms, 0.99 with the short spin). GOMP_SPINCOUNT=3000 spins about
     * 150 us on this machine: regions that follow each other closely find
     * the workers awake, and a loaded machine loses at most that a region.
     * `train` spins 300000 (libgomp's count when neither variable is set,
     * as in bench/train_torch.py's PyTorch): its step is dozens of regions,
     * and on a VM a sleeping vCPU can take far longer to wake (resnet on
     * 12,800 images, 2 threads, alone: 0.81-1.03 of the time with 3000,
     * median 0.92, twelve alternating pairs; lenet's epoch 0.86-0.97).
     * Beside a busy process it lost 4-15%, and two trainings at once took
     * 1.3-2.8x as long as with 3000: GOMP_SPINCOUNT=3000 gives the short
     * spin back (a count the user sets is kept). libgomp reads the
     * variables before main, so the process re-executes itself once with
     * them set; if that fails it simply runs on. Not under a preloading
     * wrapper (valgrind, LD_PRELOAD tools): the new process would escape
     * it. */
    const char *spin = argc > 1 && !strcmp(argv[1], "train") ? "300000" : "3000";
    if (!getenv("OMP_WAIT_POLICY") && !getenv("LD_PRELOAD") &&
        setenv("OMP_WAIT_POLICY", "passive", 0) == 0 && setenv("GOMP_SPINCOUNT", spin, 0) == 0)
        execv("/proc/self/exe", argv);
    return cli_run(argc, argv);
}
