/* Helpers shared by the subcommands: one-line errors, strict number parsing,
 * option matching, and .npy reading/writing with errors that name the option. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every error is exactly one line on stderr, so scripts can rely on it:
 * newlines inside a message (a file name, a library message) become spaces. */
static void print_line(const char *cmd, const char *suffix, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    if (cmd)
        fprintf(stderr, "convnet %s: %s%s\n", cmd, msg, suffix ? suffix : "");
    else
        fprintf(stderr, "convnet: %s%s\n", msg, suffix ? suffix : "");
    fflush(stderr);
}

/* Names in parentheses: tools/cli.h may define cli_fail and cli_usage macros. */
int (cli_fail)(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_line(cmd, NULL, fmt, ap);
    va_end(ap);
    return 1;
}

int (cli_usage)(const char *cmd, const char *fmt, ...)
{
    char hint[96];
    if (cmd)
        snprintf(hint, sizeof hint, " (try 'convnet %s --help')", cmd);
    else
        snprintf(hint, sizeof hint, " (try 'convnet --help')");
    va_list ap;
    va_start(ap, fmt);
    print_line(cmd, hint, fmt, ap);
    va_end(ap);
    return 2;
}

static const char *last_error_or(cn_status s)
{
    const char *m = cn_last_error();
    return m && m[0] ? m : cn_status_str(s);
}

int cli_fail_status(const char *cmd, cn_status s)
{
    /* Library messages start with the op's name, which the CLI prefix
     * already says: "convnet conv2d: C_in=6 ...", not "conv2d: conv2d: ...". */
    const char *m = last_error_or(s);
    size_t n = cmd ? strlen(cmd) : 0;
    if (n && !strncmp(m, cmd, n) && m[n] == ':' && m[n + 1] == ' ') m += n + 2;
    return cli_fail(cmd, "%s", m);
}

/* Why a number list was rejected, so the message can say it. */
enum { INTS_OK, INTS_NEGATIVE, INTS_RANGE, INTS_SYNTAX, INTS_TOO_MANY };

static int parse_ints(const char *s, int *out, int max, int *count)
{
    *count = 0;
    if (!s || !*s) return INTS_SYNTAX;
    const char *p = s;
    for (;;) {
        /* strtol alone would accept spaces, signs and hex-less junk prefixes;
         * demand plain digits so "1,,2", " 3" and "+3" are errors. */
        if (*p == '-' && isdigit((unsigned char)p[1])) return INTS_NEGATIVE;
        if (!isdigit((unsigned char)*p)) return INTS_SYNTAX;
        errno = 0;
        char *end;
        long v = strtol(p, &end, 10);
        if (errno == ERANGE || v > INT_MAX) return INTS_RANGE;
        if (*count == max) return INTS_TOO_MANY;
        out[(*count)++] = (int)v;
        p = end;
        if (*p == '\0') return INTS_OK;
        if (*p != ',') return INTS_SYNTAX;
        p++;
    }
}

int cli_parse_ints(const char *s, int *out, int max)
{
    int n;
    return parse_ints(s, out, max, &n) == INTS_OK ? n : -1;
}

int cli_parse_pair(const char *s, int *a, int *b)
{
    int v[2];
    int n = cli_parse_ints(s, v, 2);
    if (n < 1) return -1;
    *a = v[0];
    *b = n == 2 ? v[1] : v[0];
    return 0;
}

int cli_parse_int(const char *s, int *out) { return cli_parse_ints(s, out, 1) == 1 ? 0 : -1; }

int cli_parse_float(const char *s, float *out)
{
    if (!s || !*s || isspace((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    float v = strtof(s, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v) || !(v > 0.0f)) return -1;
    *out = v;
    return 0;
}

int cli_parse_nonneg_float(const char *s, float *out)
{
    if (!s || !*s || isspace((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    float v = strtof(s, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v) || !(v >= 0.0f)) return -1;
    *out = v;
    return 0;
}

int cli_opt_ints(const char *cmd, const char *opt, const char *val, int *out, int max)
{
    int n;
    switch (parse_ints(val, out, max, &n)) {
    case INTS_OK: return n;
    case INTS_NEGATIVE: cli_usage(cmd, "%s must be non-negative, got '%s'", opt, val); break;
    case INTS_RANGE: cli_usage(cmd, "%s value out of range: '%s'", opt, val); break;
    case INTS_TOO_MANY:
        cli_usage(cmd, "%s takes at most %d comma-separated numbers, got '%s'", opt, max, val);
        break;
    default:
        if (max == 1)
            cli_usage(cmd, "%s expects a non-negative integer, got '%s'", opt, val);
        else
            cli_usage(cmd, "%s expects comma-separated non-negative integers, got '%s'", opt, val);
    }
    return -1;
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

int cli_opt(const char *cmd, int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        if (!a[n + 1]) {
            cli_usage(cmd, "missing value for %s", name);
            return -1;
        }
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    /* "--input --weight w.npy" forgot a value; "-1" is a (bad) value. */
    if (*i + 1 >= argc || !argv[*i + 1][0] || !strncmp(argv[*i + 1], "--", 2)) {
        cli_usage(cmd, "missing value for %s", name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

int cli_flag(const char *cmd, char **argv, int i, const char *name)
{
    const char *a = argv[i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '\0') return 1;
    if (a[n] != '=') return 0;
    cli_usage(cmd, "%s takes no value", name);
    return -1;
}

int cli_read_npy(const char *cmd, const char *opt, const char *path, cn_tensor **out)
{
    cn_status s = cn_npy_read(path, out);
    if (s == CN_OK) return 0;
    *out = NULL;
    return cli_fail(cmd, "%s: %s", opt, last_error_or(s));
}

int cli_write_npy(const char *cmd, const char *opt, const char *path, const cn_tensor *t)
{
    cn_status s = cn_npy_write(path, t);
    return s == CN_OK ? 0 : cli_fail(cmd, "%s: %s", opt, last_error_or(s));
}

int cli_check_rank(const char *cmd, const char *opt, const cn_tensor *t, int ndim,
                   const char *layout)
{
    if (t->ndim == ndim) return 0;
    char s[160];
    return cli_fail(cmd, "%s must be %d-D %s, got %s", opt, ndim, layout,
                    cn_shape_str(t->ndim, t->shape, s, sizeof s));
}

int cli_read_grad_output(const char *cmd, const char *path, const int64_t yshape[4],
                         cn_tensor **out)
{
    if (cli_read_npy(cmd, "--grad-output", path, out)) return 1;
    const cn_tensor *gy = *out;
    if (gy->ndim == 4 && memcmp(gy->shape, yshape, 4 * sizeof *yshape) == 0) return 0;
    char s1[96], s2[96];
    return cli_fail(cmd, "--grad-output must have the output's shape %s, got %s",
                    cn_shape_str(4, yshape, s1, sizeof s1), cn_shape_str(gy->ndim, gy->shape, s2, sizeof s2));
}
