#include "testlib.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int n_passed, n_failed, cur_failed;
static const char *cur_name = "";
static cn_ctx rng_ctx;
static int rng_ready;

cn_ctx *tl_rng(void)
{
    if (!rng_ready) {
        const char *s = getenv("CN_TEST_SEED");
        cn_ctx_init(&rng_ctx);
        cn_rng_seed(&rng_ctx, s ? strtoull(s, NULL, 10) : 1);
        rng_ready = 1;
    }
    return &rng_ctx;
}

void tl_run(const char *name, void (*fn)(void))
{
    cur_name = name;
    cur_failed = 0;
    fn();
    if (cur_failed) {
        n_failed++;
        printf("FAIL %s\n", name);
    } else {
        n_passed++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

int tl_ok(void) { return !cur_failed; }

void tl_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  %s:%d: %s: ", file, line, cur_name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    cur_failed = 1;
}

int tl_summary(void)
{
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}

int tl_randint(int lo, int hi) { return lo + (int)(cn_rng_u64(tl_rng()) % (uint64_t)(hi - lo + 1)); }
double tl_uniform(double lo, double hi) { return lo + (hi - lo) * cn_rng_uniform(tl_rng()); }

void tl_fill(float *a, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) a[i] = (float)tl_uniform(lo, hi);
}
void tl_fill_d(double *a, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) a[i] = tl_uniform(lo, hi);
}
void tl_f2d(const float *a, double *b, size_t n)
{
    for (size_t i = 0; i < n; i++) b[i] = a[i];
}
void tl_d2f(const double *a, float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) b[i] = (float)a[i];
}

long tl_mismatch_d(const double *got, const double *ref, size_t n, double atol, double rtol,
                   double *max_err)
{
    long first = -1;
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - ref[i]);
        if (!(e <= atol + rtol * fabs(ref[i]))) {
            if (first < 0) first = (long)i;
            if (isnan(e)) e = INFINITY;
        }
        if (e > m) m = e;
    }
    if (max_err) *max_err = m;
    return first;
}

long tl_mismatch(const float *got, const double *ref, size_t n, double atol, double rtol,
                 double *max_err)
{
    long first = -1;
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= atol + rtol * fabs(ref[i]))) {
            if (first < 0) first = (long)i;
            if (isnan(e)) e = INFINITY;
        }
        if (e > m) m = e;
    }
    if (max_err) *max_err = m;
    return first;
}

const char *tl_tmpdir(void)
{
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/cn-test-XXXXXX");
        if (!mkdtemp(dir)) snprintf(dir, sizeof dir, "/tmp");
    }
    return dir;
}

char *tl_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tl_tmpdir(), name);
    return buf;
}
