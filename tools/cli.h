/* tools/cli.h - the convnet command-line tool: one file per subcommand.
 *
 * Each subcommand is `int cmd_NAME(int argc, char **argv)` where argv[0] is
 * the subcommand's name. It returns the process exit status: 0 on success,
 * 1 after printing exactly one line "convnet NAME: what went wrong" to
 * stderr (cli_fail), 2 for a usage error (unknown option, missing value).
 * `--help` prints the subcommand's usage to stdout and returns 0.
 */
#ifndef CN_TOOLS_CLI_H
#define CN_TOOLS_CLI_H

#include <stdint.h>

#include "convnet/convnet.h"

/* The whole CLI without main's process set-up: argv[1] is the subcommand. */
int cli_run(int argc, char **argv);

int cmd_conv2d(int argc, char **argv);
int cmd_pool2d(int argc, char **argv);
int cmd_filter(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_viz(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Prints "convnet CMD: <message>\n" to stderr; returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "convnet CMD: <message> (try 'convnet CMD --help')\n"; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#ifdef __clang_analyzer__
/* For the static analyzer only (make lint; see cn__err in src/core/internal.h):
 * it does not look into variadic functions, so it would follow
 * `return cli_fail(...);` as if it could return 0. */
#define cli_fail(...) (cli_fail(__VA_ARGS__), 1)
#define cli_usage(...) (cli_usage(__VA_ARGS__), 2)
#endif
/* cli_fail with the library's last error message. */
int cli_fail_status(const char *cmd, cn_status s);

/* Parses "A" or "A,B" of non-negative ints into (*a, *b) (one number sets
 * both). Returns 0, or -1 for anything else (signs, junk, overflow). */
int cli_parse_pair(const char *s, int *a, int *b);
/* Parses a non-negative int / a positive float; 0 or -1. */
int cli_parse_int(const char *s, int *out);
int cli_parse_float(const char *s, float *out);
/* A finite float >= 0; 0 or -1. */
int cli_parse_nonneg_float(const char *s, float *out);

/* ---- shared option handling (every subcommand parses the same way) ----
 * Options are `--name value` or `--name=value`; a repeated option replaces
 * the earlier value. Errors print one line and return the exit status. */

/* 1 if any argument is --help or -h, which wins over every other mistake. */
int cli_wants_help(int argc, char **argv);
/* Matches argv[*i] against the option `name` ("--stride"). Returns 1 with
 * *val set (and *i advanced past a separate value), 0 if argv[*i] is not
 * this option, -1 after cli_usage when the value is missing. */
int cli_opt(const char *cmd, int argc, char **argv, int *i, const char *name, const char **val);
/* Matches a flag without a value: 1, 0, or -1 after cli_usage for "--flag=x". */
int cli_flag(const char *cmd, char **argv, int i, const char *name);

/* Parses 1..max comma-separated non-negative ints; returns the count or -1. */
int cli_parse_ints(const char *s, int *out, int max);
/* cli_parse_ints for the value of option `opt`: the count, or -1 after a
 * cli_usage line naming the option and the value (negative, junk, overflow). */
int cli_opt_ints(const char *cmd, const char *opt, const char *val, int *out, int max);

/* cn_npy_read / cn_npy_write with failures reported as
 * "convnet CMD: OPT: <library message>"; 0 on success, else 1. */
int cli_read_npy(const char *cmd, const char *opt, const char *path, cn_tensor **out);
int cli_write_npy(const char *cmd, const char *opt, const char *path, const cn_tensor *t);
/* Reads --grad-output and checks it has exactly the output's shape yshape
 * [4]; 0, or 1 after one error line (*out is then NULL or to be freed). */
int cli_read_grad_output(const char *cmd, const char *path, const int64_t yshape[4],
                         cn_tensor **out);
/* 0 if t has ndim dimensions, else 1 after
 * "convnet CMD: OPT must be 4-D [N,H,W,C], got [3,4]". */
int cli_check_rank(const char *cmd, const char *opt, const cn_tensor *t, int ndim,
                   const char *layout);

/* ---- the memory budget (--max-memory), tools/cli_memory.c ----
 * Commands whose allocations grow with the data (conv2d, pool2d, filter)
 * count what a run holds at its peak before allocating it and refuse with
 * one line above the limit:
 *
 *     cli_mem mem;                        // limit: cli_mem_default_limit()
 *     cli_mem_init(&mem);
 *     ... cli_mem_opt(CMD, argc, argv, &i, &mem) while parsing ...
 *     cli_mem_add_shape(&mem, "output", 4, yshape, sizeof(float));
 *     if (cli_mem_check(CMD, &mem)) return 1;
 */
typedef struct cli_mem {
    uint64_t limit;          /* bytes */
    const char *source;      /* where the limit comes from, for the message */
    uint64_t need;           /* bytes counted so far */
    int overflow;            /* the count passed 2^64 */
    uint64_t largest;        /* the largest single item, for the message */
    char largest_what[128];
} cli_mem;

/* Half the physical memory, and at most the address-space limit (ulimit -v). */
uint64_t cli_mem_default_limit(void);
void cli_mem_init(cli_mem *m);
/* Parses "4096", "512M", "1.5G", "8GiB", "2T" (K/M/G/T are powers of 1024)
 * into a byte count >= 1; 0 or -1. */
int cli_parse_bytes(const char *s, uint64_t *out);
/* Matches --max-memory BYTES like cli_opt: 1, 0, or -1 after cli_usage. */
int cli_mem_opt(const char *cmd, int argc, char **argv, int *i, cli_mem *m);
/* Counts bytes for what ("output [1,8,8,4]"); shapes are counted with
 * cn_shape_numel and cn_size_mul, an overflow makes the check fail. */
void cli_mem_add(cli_mem *m, const char *what, uint64_t bytes);
void cli_mem_add_shape(cli_mem *m, const char *what, int ndim, const int64_t *shape, size_t elem);
/* A float tensor already in memory (t may be NULL). */
void cli_mem_add_tensor(cli_mem *m, const char *what, const cn_tensor *t);
/* 0 if the count fits the limit, else 1 after one line: "would need 596.1
 * GiB of memory, 596.0 GiB of it for the output [1,200004,200004,4]; the
 * limit is 11.7 GiB (...)". */
int cli_mem_check(const char *cmd, const cli_mem *m);

#endif
