/* The CLI under valgrind (memcheck): a few small real runs - conv2d with all
 * gradients, pool2d with its gradient, two filters, a failure and a usage
 * error - and the fuzz targets' seeds and regressions must show no invalid
 * access, no use of uninitialised memory and no definitely or indirectly
 * lost block. valgrind exits 99 on any of those (--error-exitcode), which
 * fails the test with its report. Skipped, with a note, where valgrind is
 * not installed. Complements the sanitizer build (make test-sanitize), which
 * cannot see uninitialised reads. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#define VALGRIND_ERROR 99

static int have_valgrind;

static const char *scratch(const char *name)
{
    static char paths[32][512];
    static int used;
    if (used == 32) abort(); /* a bug in this file */
    return tl_path(paths[used++], sizeof paths[0], name);
}

/* A tensor of the given shape with values from the test generator, saved. */
static const char *save_npy(const char *name, int ndim, const int64_t *shape)
{
    cn_tensor *t;
    if (cn_tensor_new(&t, ndim, shape) != CN_OK) return NULL;
    tl_fill(t->data, t->size, -1, 1);
    const char *path = scratch(name);
    cn_status s = cn_npy_write(path, t);
    cn_tensor_free(t);
    return s == CN_OK ? path : NULL;
}

/* Runs `valgrind ... convnet ARGS...` and returns the result. */
static const tl_cli_result *vg(const char *first, ...)
{
    const char *args[64] = {"valgrind",
                            "-q",
                            "--error-exitcode=99",
                            "--leak-check=full",
                            "--errors-for-leak-kinds=definite,indirect",
                            "--show-leak-kinds=definite,indirect",
                            CN_CLI};
    int n = 7;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 63; a = va_arg(ap, const char *)) args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return tl_spawn_argv(args);
}

#define CHECK_CLEAN(r, want)                                                                       \
    CHECK(!(r)->crashed && (r)->status == (want), "exit %d (want %d; %d = valgrind error)%s\n%s",  \
          (r)->status, (want), VALGRIND_ERROR, (r)->crashed ? ", crashed" : "", (r)->err)

static void conv2d_with_all_gradients_is_clean(void)
{
    if (!have_valgrind) return;
    const int64_t xs[4] = {1, 5, 6, 4}, ws[4] = {3, 3, 2, 6}, bs[1] = {6}, ys[4] = {1, 3, 3, 6};
    const char *x = save_npy("x.npy", 4, xs), *w = save_npy("w.npy", 4, ws),
               *b = save_npy("b.npy", 1, bs), *gy = save_npy("gy.npy", 4, ys);
    CHECK(x && w && b && gy, "writing inputs: %s", cn_last_error());
    const char *y = scratch("y.npy"), *gx = scratch("gx.npy"), *gw = scratch("gw.npy"),
               *gb = scratch("gb.npy");
    const tl_cli_result *r =
        vg("conv2d", "--input", x, "--weight", w, "--bias", b, "--groups", "2", "--stride", "2",
           "--padding", "1", "--padding-mode", "reflect", "--output", y, "--grad-output", gy,
           "--grad-input", gx, "--grad-weight", gw, "--grad-bias", gb, NULL);
    CHECK_CLEAN(r, 0);
    cn_tensor *t;
    CHECK_OK(cn_npy_read(gw, &t));
    int ok = t->ndim == 4 && t->shape[3] == 6;
    cn_tensor_free(t);
    CHECK(ok, "grad-weight has the wrong shape");
}

static void pool2d_max_with_gradient_is_clean(void)
{
    if (!have_valgrind) return;
    const int64_t xs[4] = {2, 5, 5, 3}, ys[4] = {2, 3, 3, 3};
    const char *x = save_npy("px.npy", 4, xs), *gy = save_npy("pgy.npy", 4, ys);
    CHECK(x && gy, "writing inputs: %s", cn_last_error());
    const tl_cli_result *r = vg("pool2d", "--type", "max", "--input", x, "--kernel", "3",
                                "--stride", "2", "--padding", "1", "--output", scratch("py.npy"),
                                "--grad-output", gy, "--grad-input", scratch("pgx.npy"), NULL);
    CHECK_CLEAN(r, 0);
}

static void filters_on_a_png_are_clean(void)
{
    if (!have_valgrind) return;
    const int64_t shape[3] = {9, 7, 3};
    cn_tensor *img;
    CHECK_OK(cn_tensor_new(&img, 3, shape));
    tl_fill(img->data, img->size, 0, 255);
    const char *in = scratch("in.png");
    cn_status s = cn_image_write_png(in, img);
    cn_tensor_free(img);
    CHECK(s == CN_OK, "writing in.png: %s", cn_last_error());
    const tl_cli_result *r = vg("filter", "--gaussian", "1", in, scratch("blur.png"), NULL);
    CHECK_CLEAN(r, 0);
    r = vg("filter", "--sobel", "--gray", in, scratch("edges.png"), NULL);
    CHECK_CLEAN(r, 0);
}

static void failures_and_usage_errors_are_clean(void)
{
    if (!have_valgrind) return;
    /* C_in 4 against a weight for 3 input channels: a failure after both
     * arrays were read, so their buffers must be freed on the error path. */
    const int64_t xs[4] = {1, 4, 4, 4}, ws[4] = {3, 3, 3, 2};
    const char *x = save_npy("ex.npy", 4, xs), *w = save_npy("ew.npy", 4, ws);
    CHECK(x && w, "writing inputs: %s", cn_last_error());
    const tl_cli_result *r =
        vg("conv2d", "--input", x, "--weight", w, "--output", scratch("ey.npy"), NULL);
    CHECK_CLEAN(r, 1);
    r = vg("conv2d", "--input", x, "--stride", "0,x", NULL);
    CHECK_CLEAN(r, 2);
    r = vg("filter", "--box", "3", scratch("missing.png"), scratch("out.png"), NULL);
    CHECK_CLEAN(r, 1);
}

/* Every seed and regression input of the fuzz targets, decoded in-process
 * by test_fuzz_regressions (built next to this test): memcheck sees the
 * uninitialised reads that ASan cannot, such as stb's palette entries that
 * a file never set (fuzz/regressions/image/png_index_past_palette). */
static void fuzz_regressions_are_clean(void)
{
    if (!have_valgrind) return;
    if (access("test_fuzz_regressions", X_OK) != 0) {
        printf("note: no ./test_fuzz_regressions here; skipped\n");
        return;
    }
    const char *args[] = {"valgrind",
                          "-q",
                          "--error-exitcode=99",
                          "--leak-check=full",
                          "--errors-for-leak-kinds=definite,indirect",
                          "./test_fuzz_regressions",
                          NULL};
    const tl_cli_result *r = tl_spawn_argv(args);
    CHECK_CLEAN(r, 0);
}

/* A sanitizer build's CLI cannot run under valgrind (both replace malloc). */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

int main(void)
{
#ifdef SANITIZED
    printf("note: an ASan build; valgrind cannot run it, these tests pass without running\n");
#else
    have_valgrind = tl_have_program("valgrind");
    /* Without it the CLI re-executes itself through /proc/self/exe to set
     * it (tools/main.c), which under valgrind names valgrind's own tool
     * binary and fails ("You cannot run ... directly"). */
    setenv("OMP_WAIT_POLICY", "passive", 0);
    if (!have_valgrind)
        printf("note: valgrind is not in PATH; these tests pass without running "
               "(apt-get install valgrind)\n");
#endif
    TL_RUN(conv2d_with_all_gradients_is_clean);
    TL_RUN(pool2d_max_with_gradient_is_clean);
    TL_RUN(filters_on_a_png_are_clean);
    TL_RUN(failures_and_usage_errors_are_clean);
    TL_RUN(fuzz_regressions_are_clean);
    return tl_summary();
}
