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

#include "convnet/convnet.h"

int cmd_conv2d(int argc, char **argv);
int cmd_pool2d(int argc, char **argv);
int cmd_filter(int argc, char **argv);

/* Prints "convnet CMD: <message>\n" to stderr; returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "convnet CMD: <message> (try 'convnet CMD --help')\n"; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* cli_fail with the library's last error message. */
int cli_fail_status(const char *cmd, cn_status s);

/* Parses "A" or "A,B" of non-negative ints into (*a, *b) (one number sets
 * both). Returns 0, or -1 for anything else (signs, junk, overflow). */
int cli_parse_pair(const char *s, int *a, int *b);
/* Parses a non-negative int / a positive float; 0 or -1. */
int cli_parse_int(const char *s, int *out);
int cli_parse_float(const char *s, float *out);

#endif
