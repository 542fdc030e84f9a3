/* tests/testlib.h - a tiny test harness: named tests, CHECK that reports the
 * failing configuration, a seeded generator, array comparison helpers.
 *
 *     static void conv_matches_reference(void) {
 *         CHECK(err < 1e-5, "config %s: err %g", cfg, err);
 *     }
 *     int main(void) { TL_RUN(conv_matches_reference); return tl_summary(); }
 *
 * tl_summary prints "N passed, N failed" and returns the exit status.
 */
#ifndef CN_TESTLIB_H
#define CN_TESTLIB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "convnet/convnet.h"

void tl_run(const char *name, void (*fn)(void));
int tl_summary(void);
void tl_fail(const char *file, int line, const char *fmt, ...);
/* Returns 1 while the current test has not failed. */
int tl_ok(void);

#define TL_RUN(fn) tl_run(#fn, fn)
/* On failure: print the message, mark the test failed and return from it. */
#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            tl_fail(__FILE__, __LINE__, __VA_ARGS__);      \
            return;                                        \
        }                                                  \
    } while (0)
/* A status call that must succeed. */
#define CHECK_OK(call)                                                                   \
    do {                                                                                 \
        cn_status s_ = (call);                                                           \
        if (s_ != CN_OK) {                                                               \
            tl_fail(__FILE__, __LINE__, "%s -> %s: %s", #call, cn_status_str(s_),        \
                    cn_last_error());                                                    \
            return;                                                                      \
        }                                                                                \
    } while (0)

/* The seeded generator every test draws from. tl_run reseeds it from
 * CN_TEST_SEED (or 1), the test's name and the salt, so that a test's
 * draws do not depend on the tests before it: adding one changes no
 * other's problems, and a failing test reruns alone the same way. */
cn_ctx *tl_rng(void);
/* A salt mixed into the seeds of the tests that follow: a suite that runs
 * its tests once per configuration gives each its own problems. */
void tl_salt(uint64_t salt);
int tl_randint(int lo, int hi);            /* uniform in [lo, hi] */
double tl_uniform(double lo, double hi);
void tl_fill(float *a, size_t n, double lo, double hi);
void tl_fill_d(double *a, size_t n, double lo, double hi);
void tl_f2d(const float *a, double *b, size_t n);
void tl_d2f(const double *a, float *b, size_t n);

/* Index of the first i with |got - ref| > atol + rtol*|ref| (NaNs mismatch),
 * or -1. *max_err receives the largest |got - ref| (may be NULL). */
long tl_mismatch(const float *got, const double *ref, size_t n, double atol, double rtol,
                 double *max_err);
long tl_mismatch_d(const double *got, const double *ref, size_t n, double atol, double rtol,
                   double *max_err);

/* Runs the convnet CLI (the CN_CLI macro) with arguments, stdout and stderr
 * captured: tl_cli("conv2d", "--input", x, ..., NULL). The result lives in
 * a static buffer until the next call. */
typedef struct tl_cli_result {
    int status;          /* exit code; 128 + signal number if it crashed */
    int crashed;
    int timed_out;       /* tl_spawn_limited: killed (SIGKILL) for running too long */
    double seconds;      /* tl_spawn_limited: wall time of the run */
    int err_lines;       /* newlines on stderr */
    char out[16384];     /* stdout, truncated */
    char err[4096];      /* stderr, truncated */
} tl_cli_result;
const tl_cli_result *tl_cli_argv(const char *const *args);
const tl_cli_result *tl_cli(const char *first, ...);

/* A synthetic IDX dataset (Fashion-MNIST's file names, 28x28 gray, ten
 * classes): class k is a bright 6x6 square at one of ten places on noise,
 * which a CNN learns in a few epochs. Made once per size in the scratch
 * directory; returns its path (static storage). */
const char *tl_squares_dataset(int n_train, int n_test);
/* 1 if two safetensors checkpoints hold the same tensors, byte for byte;
 * else 0 with the reason in why. */
int tl_same_checkpoint(const char *a, const char *b, char *why, size_t len);

/* tl_path(name) in one of 16 rotating static buffers. */
char *tl_scratch(const char *name);

/* A scratch directory for files, unique per test binary. */
const char *tl_tmpdir(void);
/* tl_tmpdir()/name in a static buffer of the caller's (len bytes). */
char *tl_path(char *buf, size_t len, const char *name);

/* Runs any program with arguments (args[0] is the program, looked up in
 * PATH; NULL-terminated), stdout and stderr captured like tl_cli_argv, into
 * the same static result. For wrappers such as valgrind around CN_CLI. */
const tl_cli_result *tl_spawn_argv(const char *const *args);
/* 1 if an executable called name is in PATH. */
int tl_have_program(const char *name);

/* Limits for one run of tl_spawn_limited. */
typedef struct tl_limits {
    double seconds;          /* SIGKILL after this long; 0: no limit */
    uint64_t address_space;  /* the child's RLIMIT_AS in bytes; 0: none. Not applied
                                under AddressSanitizer (tl_asan), whose shadow memory
                                reserves terabytes of address space */
} tl_limits;
/* tl_spawn_argv under limits (fork, setrlimit, exec), into the same static
 * result: a run killed for time has timed_out = crashed = 1. Under ASan the
 * child also gets allocator_may_return_null=1, so that a refused huge
 * allocation is a NULL for the code to handle, as it is without ASan. */
const tl_cli_result *tl_spawn_limited(const char *const *args, const tl_limits *lim);
/* The CLI (CN_CLI) with arguments under limits. */
const tl_cli_result *tl_cli_limited(const char *const *args, const tl_limits *lim);
/* 1 when built with AddressSanitizer (make test-sanitize). */
int tl_asan(void);

#endif
