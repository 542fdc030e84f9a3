/* Pooling: PyTorch 1.13's max_pool2d / avg_pool2d / adaptive_avg_pool2d(1)
 * semantics in NHWC, checked against the double-precision reference, finite
 * differences, hand-computed examples and values PyTorch printed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ref/pool_ref.h"
#include "testlib.h"

typedef struct {
    cn_pool_type type;
    cn_pool2d_params p;
    int64_t xs[4]; /* N, H, W, C */
} pool_cfg;

static const char *cfg_str(const pool_cfg *c)
{
    static char buf[256];
    const cn_pool2d_params *p = &c->p;
    snprintf(buf, sizeof buf,
             "%s N=%lld H=%lld W=%lld C=%lld kernel=%dx%d stride=%dx%d pad=%dx%d dil=%dx%d "
             "ceil_mode=%d count_include_pad=%d",
             c->type == CN_POOL_MAX ? "max" : "avg", (long long)c->xs[0], (long long)c->xs[1],
             (long long)c->xs[2], (long long)c->xs[3], p->kernel_h, p->kernel_w, p->stride_h,
             p->stride_w, p->pad_h, p->pad_w, p->dil_h, p->dil_w, p->ceil_mode,
             p->count_include_pad);
    return buf;
}

static pool_cfg make_cfg(cn_pool_type type, int64_t N, int64_t H, int64_t W, int64_t C, int kh,
                         int kw, int sh, int sw, int ph, int pw, int dh, int dw, int ceil_mode,
                         int cip)
{
    pool_cfg c;
    c.type = type;
    c.p = cn_pool2d_params_default(kh, kw);
    c.p.stride_h = sh;
    c.p.stride_w = sw;
    c.p.pad_h = ph;
    c.p.pad_w = pw;
    c.p.dil_h = dh;
    c.p.dil_w = dw;
    c.p.ceil_mode = ceil_mode;
    c.p.count_include_pad = cip;
    c.xs[0] = N;
    c.xs[1] = H;
    c.xs[2] = W;
    c.xs[3] = C;
    return c;
}

/* Output size by counting windows, a formulation independent of pool.c's:
 * floor mode keeps the windows that end inside the padded input; ceil mode
 * also keeps one that overshoots by less than a stride, provided it starts
 * inside the input or the left padding. */
static int64_t count_windows(int64_t in, int64_t k, int64_t s, int64_t p, int64_t dil, int ceil)
{
    int64_t ext = dil * (k - 1) + 1, n = 0;
    for (int64_t o = 0;; o++) {
        int64_t fits =
            ceil ? o * s + ext <= in + 2 * p + s - 1 && o * s - p < in : o * s + ext <= in + 2 * p;
        if (!fits) return n;
        n++;
    }
}

static void fill_distinct(double *a, size_t n)
{
    /* A shuffled 0..n-1, spaced far beyond the finite-difference step so
     * that the argmax of every window stays put. */
    for (size_t i = 0; i < n; i++) a[i] = 0.25 * (double)i - 3.0;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)tl_randint(0, (int)i - 1);
        double t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* Like tl_mismatch, but equal infinities match (windows without pixels). */
static long mismatch(const float *got, const double *ref, size_t n, double *max_err)
{
    long first = -1;
    *max_err = 0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(ref[i]) && got[i] == ref[i]) continue;
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= 1e-5 + 1e-5 * fabs(ref[i]))) {
            if (first < 0) first = (long)i;
            if (isnan(e)) e = INFINITY;
        }
        if (e > *max_err) *max_err = e;
    }
    return first;
}

/* ---- setup ---------------------------------------------------------- */

static void params_default_is_stride_kernel_no_pad_floor_include_pad(void)
{
    cn_pool2d_params p = cn_pool2d_params_default(3, 2);
    CHECK(p.kernel_h == 3 && p.kernel_w == 2 && p.stride_h == 3 && p.stride_w == 2,
          "kernel/stride %dx%d %dx%d", p.kernel_h, p.kernel_w, p.stride_h, p.stride_w);
    CHECK(p.pad_h == 0 && p.pad_w == 0 && p.dil_h == 1 && p.dil_w == 1, "pad/dil");
    CHECK(p.ceil_mode == 0 && p.count_include_pad == 1, "modes");
}

static void output_size_matches_values_pytorch_printed(void)
{
    /* {H, K, stride, pad, dil, ceil, OH} from torch 1.13's max_pool2d. */
    static const int cases[][7] = {
        {4, 2, 2, 0, 1, 0, 2}, {5, 2, 2, 0, 1, 0, 2}, {5, 2, 2, 0, 1, 1, 3},
        {5, 2, 2, 1, 1, 1, 3}, /* the ceil window would start in the right pad: dropped */
        {2, 2, 3, 1, 1, 1, 1}, {1, 3, 2, 1, 1, 0, 1}, {3, 3, 2, 1, 2, 1, 1},
        {7, 3, 2, 1, 2, 0, 3}, {6, 3, 4, 1, 1, 1, 2}, {1, 1, 1, 0, 1, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *t = cases[i];
        pool_cfg c = make_cfg(CN_POOL_MAX, 1, t[0], t[0], 1, t[1], t[1], t[2], t[2], t[3], t[3],
                              t[4], t[4], t[5], 1);
        cn_pool2d_desc d;
        CHECK_OK(cn_pool2d_setup(&d, &c.p, c.type, c.xs));
        CHECK(d.OH == t[6] && d.OW == t[6], "%s: OH=%lld OW=%lld, PyTorch %d", cfg_str(&c),
              (long long)d.OH, (long long)d.OW, t[6]);
    }
}

static void stride_zero_means_the_kernel_size(void)
{
    pool_cfg c = make_cfg(CN_POOL_AVG, 1, 9, 8, 1, 3, 2, 0, 0, 0, 0, 1, 1, 0, 1);
    cn_pool2d_desc d;
    CHECK_OK(cn_pool2d_setup(&d, &c.p, c.type, c.xs));
    CHECK(d.SH == 3 && d.SW == 2 && d.OH == 3 && d.OW == 4, "SH=%lld SW=%lld OH=%lld OW=%lld",
          (long long)d.SH, (long long)d.SW, (long long)d.OH, (long long)d.OW);
}

static void invalid_arguments_are_rejected_with_name_and_value(void)
{
    struct {
        pool_cfg c;
        const char *msg;
    } bad[] = {
        {make_cfg(CN_POOL_MAX, 1, 5, 5, 1, 0, 2, 1, 1, 0, 0, 1, 1, 0, 1), "max_pool2d: kernel_h=0"},
        {make_cfg(CN_POOL_AVG, 1, 5, 5, 1, 2, -2, 1, 1, 0, 0, 1, 1, 0, 1),
         "avg_pool2d: kernel_w=-2"},
        {make_cfg(CN_POOL_MAX, 1, 5, 5, 1, 2, 2, -1, 1, 0, 0, 1, 1, 0, 1),
         "max_pool2d: stride_h=-1"},
        {make_cfg(CN_POOL_AVG, 1, 5, 5, 1, 2, 2, 1, -3, 0, 0, 1, 1, 0, 1),
         "avg_pool2d: stride_w=-3"},
        {make_cfg(CN_POOL_MAX, 1, 5, 5, 1, 2, 2, 1, 1, -1, 0, 1, 1, 0, 1), "max_pool2d: pad_h=-1"},
        {make_cfg(CN_POOL_MAX, 1, 5, 5, 1, 3, 3, 1, 1, 0, 2, 1, 1, 0, 1), "max_pool2d: pad_w=2"},
        /* PyTorch bounds the pad by the kernel, not the dilated extent. */
        {make_cfg(CN_POOL_MAX, 1, 9, 9, 1, 2, 2, 1, 1, 2, 0, 3, 1, 0, 1), "max_pool2d: pad_h=2"},
        {make_cfg(CN_POOL_AVG, 1, 5, 5, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1), "avg_pool2d: pad_h=1"},
        {make_cfg(CN_POOL_MAX, 1, 5, 5, 1, 2, 2, 1, 1, 0, 0, 0, 1, 0, 1), "max_pool2d: dil_h=0"},
        {make_cfg(CN_POOL_MAX, 1, 5, 5, 1, 2, 2, 1, 1, 0, 0, 1, -1, 0, 1), "max_pool2d: dil_w=-1"},
        {make_cfg(CN_POOL_AVG, 1, 5, 5, 1, 2, 2, 1, 1, 0, 0, 1, 2, 0, 1), "avg_pool2d: dil_w=2"},
        {make_cfg(CN_POOL_MAX, 1, 5, 5, 1, 2, 2, 1, 1, 0, 0, 1, 1, 2, 1),
         "max_pool2d: ceil_mode=2"},
        {make_cfg(CN_POOL_AVG, 1, 5, 5, 1, 2, 2, 1, 1, 0, 0, 1, 1, 0, -1),
         "avg_pool2d: count_include_pad=-1"},
        {make_cfg(CN_POOL_MAX, 0, 5, 5, 1, 2, 2, 1, 1, 0, 0, 1, 1, 0, 1), "max_pool2d: x N=0"},
        {make_cfg(CN_POOL_AVG, 1, 0, 5, 1, 2, 2, 1, 1, 0, 0, 1, 1, 0, 1), "avg_pool2d: x H=0"},
        {make_cfg(CN_POOL_MAX, 1, 5, -3, 1, 2, 2, 1, 1, 0, 0, 1, 1, 0, 1), "max_pool2d: x W=-3"},
        {make_cfg(CN_POOL_AVG, 1, 5, 5, 0, 2, 2, 1, 1, 0, 0, 1, 1, 0, 1), "avg_pool2d: x C=0"},
        {make_cfg(CN_POOL_MAX, 1, 2, 5, 1, 3, 2, 1, 1, 0, 0, 1, 1, 0, 1),
         "max_pool2d: output size OH=0"},
        {make_cfg(CN_POOL_AVG, 1, 5, 1, 1, 2, 2, 1, 1, 0, 0, 1, 1, 0, 1), "OW=0"},
        /* The dilated extent 7 exceeds H=5: the numerator is negative and
         * rounds toward -inf, as PyTorch's div_rtn does. */
        {make_cfg(CN_POOL_MAX, 1, 5, 5, 1, 3, 1, 1, 1, 0, 0, 3, 1, 0, 1), "OH=-1"},
        {make_cfg((cn_pool_type)7, 1, 5, 5, 1, 2, 2, 1, 1, 0, 0, 1, 1, 0, 1), "pool2d: type=7"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cn_pool2d_desc d, before;
        memset(&d, 0x5a, sizeof d);
        before = d;
        cn_status s = cn_pool2d_setup(&d, &bad[i].c.p, bad[i].c.type, bad[i].c.xs);
        CHECK(s == CN_ERR_INVALID_ARG, "%s: status %s", cfg_str(&bad[i].c), cn_status_str(s));
        CHECK(strstr(cn_last_error(), bad[i].msg) != NULL, "%s: message \"%s\" lacks \"%s\"",
              cfg_str(&bad[i].c), cn_last_error(), bad[i].msg);
        CHECK(memcmp(&d, &before, sizeof d) == 0, "%s: descriptor written on failure",
              cfg_str(&bad[i].c));
    }
    cn_pool2d_params p = cn_pool2d_params_default(2, 2);
    int64_t xs[4] = {1, 4, 4, 1};
    CHECK(cn_pool2d_setup(NULL, &p, CN_POOL_MAX, xs) == CN_ERR_INVALID_ARG, "NULL desc");
}

static void oversized_shapes_overflow_instead_of_wrapping(void)
{
    cn_pool2d_desc d;
    cn_pool2d_params p = cn_pool2d_params_default(2, 2);
    int64_t huge[4] = {INT64_C(1) << 40, INT64_C(1) << 40, 2, 2};
    cn_status s = cn_pool2d_setup(&d, &p, CN_POOL_MAX, huge);
    CHECK(s == CN_ERR_OVERFLOW, "x: status %s", cn_status_str(s));
    CHECK(strstr(cn_last_error(), "max_pool2d: x shape") != NULL, "message: %s", cn_last_error());
    /* x fits (2^61 - 2^31 elements) but y, one pixel larger per axis, does not. */
    p.stride_h = p.stride_w = 1;
    p.pad_h = p.pad_w = 1;
    int64_t edge[4] = {1, (INT64_C(1) << 30) - 1, INT64_C(1) << 30, 2};
    s = cn_pool2d_setup(&d, &p, CN_POOL_AVG, edge);
    CHECK(s == CN_ERR_OVERFLOW, "y: status %s", cn_status_str(s));
    CHECK(strstr(cn_last_error(), "avg_pool2d: y shape") != NULL, "message: %s", cn_last_error());
    float v = 0;
    s = cn_global_avg_pool2d_fwd(NULL, INT64_C(1) << 40, INT64_C(1) << 40, 1, 1, &v, &v);
    CHECK(s == CN_ERR_OVERFLOW, "global: status %s", cn_status_str(s));
}

static void passes_reject_a_descriptor_of_the_other_type_and_null_buffers(void)
{
    cn_pool2d_params p = cn_pool2d_params_default(2, 2);
    int64_t xs[4] = {1, 4, 4, 1};
    cn_pool2d_desc dmax, davg;
    CHECK_OK(cn_pool2d_setup(&dmax, &p, CN_POOL_MAX, xs));
    CHECK_OK(cn_pool2d_setup(&davg, &p, CN_POOL_AVG, xs));
    float x[16] = {0}, y[4];
    int64_t idx[4];
    CHECK(cn_avg_pool2d_fwd(NULL, &dmax, x, y) == CN_ERR_INVALID_ARG, "avg on a max desc");
    CHECK(strstr(cn_last_error(), "avg_pool2d") != NULL, "message: %s", cn_last_error());
    CHECK(cn_max_pool2d_fwd(NULL, &davg, x, y, idx) == CN_ERR_INVALID_ARG, "max on an avg desc");
    CHECK(cn_max_pool2d_fwd(NULL, &dmax, NULL, y, idx) == CN_ERR_INVALID_ARG, "NULL x");
    CHECK(cn_max_pool2d_bwd(NULL, &dmax, NULL, y, x) == CN_ERR_INVALID_ARG, "NULL idx");
    CHECK(cn_avg_pool2d_bwd(NULL, &davg, y, NULL) == CN_ERR_INVALID_ARG, "NULL gx");
    CHECK(cn_global_avg_pool2d_fwd(NULL, 1, 0, 4, 1, x, y) == CN_ERR_INVALID_ARG, "H=0");
    CHECK(strstr(cn_last_error(), "global_avg_pool2d: x H=0") != NULL, "message: %s",
          cn_last_error());
    CHECK(cn_global_avg_pool2d_bwd(NULL, 1, 4, 4, -2, y, x) == CN_ERR_INVALID_ARG, "C=-2");
    CHECK(strstr(cn_last_error(), "C=-2") != NULL, "message: %s", cn_last_error());
}

/* ---- hand-computed examples ----------------------------------------- */

static void max_pool_2x2_on_4x4_gives_hand_computed_values_and_indices(void)
{
    /* Channel 0 below, channel 1 its negation. Window (1,1) holds 9 twice:
     * the first in (kh, kw) order, index 11, wins over 14. */
    static const float plane[16] = {1, 5, 2, 0, 3, 4, 8, 6, 7, 0, 1, 9, 2, 6, 9, 3};
    float x[32];
    for (int i = 0; i < 16; i++) {
        x[2 * i] = plane[i];
        x[2 * i + 1] = -plane[i];
    }
    static const float want_y[8] = {5, -1, 8, 0, 7, 0, 9, -1};
    static const int64_t want_idx[8] = {1, 0, 6, 3, 8, 9, 11, 10};
    cn_pool2d_params p = cn_pool2d_params_default(2, 2);
    int64_t xs[4] = {1, 4, 4, 2};
    cn_pool2d_desc d;
    CHECK_OK(cn_pool2d_setup(&d, &p, CN_POOL_MAX, xs));
    CHECK(d.OH == 2 && d.OW == 2, "OH=%lld OW=%lld", (long long)d.OH, (long long)d.OW);
    float y[8];
    int64_t idx[8];
    CHECK_OK(cn_max_pool2d_fwd(NULL, &d, x, y, idx));
    for (int i = 0; i < 8; i++)
        CHECK(y[i] == want_y[i] && idx[i] == want_idx[i], "y[%d]=%g idx %lld, want %g idx %lld", i,
              y[i], (long long)idx[i], want_y[i], (long long)want_idx[i]);
    static const float gy[8] = {1, 10, 2, 20, 3, 30, 4, 40};
    float gx[32];
    CHECK_OK(cn_max_pool2d_bwd(NULL, &d, idx, gy, gx));
    for (int i = 0; i < 32; i++) {
        int pos = i / 2, c = i % 2;
        float want = 0;
        for (int o = 0; o < 4; o++)
            if (want_idx[2 * o + c] == pos) want = gy[2 * o + c];
        CHECK(gx[i] == want, "gx[pixel %d, c %d]=%g, want %g", pos, c, gx[i], want);
    }
}

static void max_pool_backward_accumulates_overlapping_windows(void)
{
    /* x = [0 3 1], kernel 1x2, stride 1: both windows pick x[1]. */
    float x[3] = {0, 3, 1}, y[2], gy[2] = {1, 2}, gx[3];
    int64_t idx[2];
    cn_pool2d_params p = cn_pool2d_params_default(1, 2);
    p.stride_w = 1;
    int64_t xs[4] = {1, 1, 3, 1};
    cn_pool2d_desc d;
    CHECK_OK(cn_pool2d_setup(&d, &p, CN_POOL_MAX, xs));
    CHECK_OK(cn_max_pool2d_fwd(NULL, &d, x, y, idx));
    CHECK(y[0] == 3 && y[1] == 3 && idx[0] == 1 && idx[1] == 1, "y %g %g idx %lld %lld", y[0], y[1],
          (long long)idx[0], (long long)idx[1]);
    CHECK_OK(cn_max_pool2d_bwd(NULL, &d, idx, gy, gx));
    CHECK(gx[0] == 0 && gx[1] == 3 && gx[2] == 0, "gx %g %g %g", gx[0], gx[1], gx[2]);
}

static void avg_pool_on_3x3_ones_with_padding_counts_pad_only_when_asked(void)
{
    float x[9], y[9];
    for (int i = 0; i < 9; i++) x[i] = 1;
    int64_t xs[4] = {1, 3, 3, 1};
    /* Kernel 3, stride 1, pad 1: corners see 4 pixels, edges 6, the centre 9. */
    static const float incl[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};
    for (int cip = 0; cip <= 1; cip++) {
        cn_pool2d_params p = cn_pool2d_params_default(3, 3);
        p.stride_h = p.stride_w = 1;
        p.pad_h = p.pad_w = 1;
        p.count_include_pad = cip;
        cn_pool2d_desc d;
        CHECK_OK(cn_pool2d_setup(&d, &p, CN_POOL_AVG, xs));
        CHECK_OK(cn_avg_pool2d_fwd(NULL, &d, x, y));
        for (int i = 0; i < 9; i++) {
            float want = cip ? incl[i] / 9.0f : 1.0f;
            CHECK(fabsf(y[i] - want) < 1e-6f, "count_include_pad=%d y[%d]=%.7g want %.7g", cip, i,
                  y[i], want);
        }
        /* Backward of ones: pixel (i,j) gets 1/divisor from each window
         * covering it; with count_include_pad=0 the corner pixel is in
         * windows of sizes 4, 6, 6, 9. */
        float gy[9], gx[9];
        for (int i = 0; i < 9; i++) gy[i] = 1;
        CHECK_OK(cn_avg_pool2d_bwd(NULL, &d, gy, gx));
        float corner = cip ? 4.0f / 9 : 1.0f / 4 + 2.0f / 6 + 1.0f / 9;
        CHECK(fabsf(gx[0] - corner) < 1e-6f, "count_include_pad=%d corner gx %.7g want %.7g", cip,
              gx[0], corner);
    }
}

static void avg_pool_ceil_mode_matches_values_pytorch_printed(void)
{
    /* torch.arange(25.).reshape(1,1,5,5), kernel 2, stride 2, pad 1, ceil
     * mode: the last window is clipped at H + pad, so with count_include_pad
     * the corner (1,2)-window divides by 2, not 4. */
    static const float incl[9] = {0, 0.75f, 1.75f, 3.75f, 9, 11, 8.75f, 19, 21};
    static const float excl[9] = {0, 1.5f, 3.5f, 7.5f, 9, 11, 17.5f, 19, 21};
    float x[25], y[9];
    for (int i = 0; i < 25; i++) x[i] = (float)i;
    int64_t xs[4] = {1, 5, 5, 1};
    for (int cip = 0; cip <= 1; cip++) {
        cn_pool2d_params p = cn_pool2d_params_default(2, 2);
        p.pad_h = p.pad_w = 1;
        p.ceil_mode = 1;
        p.count_include_pad = cip;
        cn_pool2d_desc d;
        CHECK_OK(cn_pool2d_setup(&d, &p, CN_POOL_AVG, xs));
        CHECK(d.OH == 3 && d.OW == 3, "OH=%lld OW=%lld", (long long)d.OH, (long long)d.OW);
        CHECK_OK(cn_avg_pool2d_fwd(NULL, &d, x, y));
        for (int i = 0; i < 9; i++) {
            float want = cip ? incl[i] : excl[i];
            CHECK(fabsf(y[i] - want) < 1e-5f, "count_include_pad=%d y[%d]=%g want %g", cip, i, y[i],
                  want);
        }
    }
    /* Same problem in max: PyTorch printed indices 0 2 4 / 10 12 14 / 20 22 24. */
    cn_pool2d_params p = cn_pool2d_params_default(2, 2);
    p.pad_h = p.pad_w = 1;
    p.ceil_mode = 1;
    cn_pool2d_desc d;
    CHECK_OK(cn_pool2d_setup(&d, &p, CN_POOL_MAX, xs));
    int64_t idx[9];
    CHECK_OK(cn_max_pool2d_fwd(NULL, &d, x, y, idx));
    static const int64_t want_idx[9] = {0, 2, 4, 10, 12, 14, 20, 22, 24};
    for (int i = 0; i < 9; i++)
        CHECK(idx[i] == want_idx[i] && y[i] == (float)want_idx[i], "idx[%d]=%lld y %g", i,
              (long long)idx[i], y[i]);
}

/* ---- NaN and infinities ---------------------------------------------- */

static void max_pool_nan_propagates_and_the_last_nan_wins(void)
{
    /* PyTorch's `val > maxval || isnan(val)`: a NaN replaces anything
     * (the index moves to each later NaN), a number never replaces a NaN.
     * Rows of 5 taps; torch printed index 3 for row 0. */
    const float nan = NAN;
    static const int64_t want_idx[4] = {3, 0, 4, 2};
    float rows[4][5] = {
        {1, nan, 3, nan, 2},
        {nan, 5, 7, 9, 1},
        {1, 2, 3, 4, nan},
        {-INFINITY, 1, nan, 7, 8},
    };
    /* 9 channels so that a vector body and a tail both see it; channel c
     * holds the row c % 4 plus finite noise in channel 8. */
    float x[5 * 9], y[9];
    int64_t idx[9];
    for (int w = 0; w < 5; w++)
        for (int c = 0; c < 9; c++) x[w * 9 + c] = c == 8 ? (float)w : rows[c % 4][w];
    cn_pool2d_params p = cn_pool2d_params_default(1, 5);
    int64_t xs[4] = {1, 1, 5, 9};
    cn_pool2d_desc d;
    CHECK_OK(cn_pool2d_setup(&d, &p, CN_POOL_MAX, xs));
    CHECK_OK(cn_max_pool2d_fwd(NULL, &d, x, y, idx));
    for (int c = 0; c < 8; c++)
        CHECK(isnan(y[c]) && idx[c] == want_idx[c % 4],
              "channel %d: y %g idx %lld want NaN at %lld", c, y[c], (long long)idx[c],
              (long long)want_idx[c % 4]);
    CHECK(y[8] == 4 && idx[8] == 4, "finite channel: y %g idx %lld", y[8], (long long)idx[8]);
    /* Without indices the values are the same. */
    float y2[9];
    CHECK_OK(cn_max_pool2d_fwd(NULL, &d, x, y2, NULL));
    for (int c = 0; c < 9; c++)
        CHECK(isnan(y2[c]) == isnan(y[c]) && (isnan(y[c]) || y2[c] == y[c]), "channel %d", c);
    /* The double reference follows the same rule. */
    double xd[45], yd[9];
    int64_t idd[9];
    tl_f2d(x, xd, 45);
    cn__max_pool2d_ref_fwd(&d, xd, yd, idd);
    for (int c = 0; c < 9; c++)
        CHECK(idd[c] == idx[c], "reference channel %d idx %lld", c, (long long)idd[c]);
}

static void max_pool_of_all_minus_inf_points_at_the_first_pixel_inside(void)
{
    /* torch: 3x3 of -inf, kernel 2, stride 2, pad 1 -> indices 0 1 / 3 4. */
    float x[9], y[4];
    for (int i = 0; i < 9; i++) x[i] = -INFINITY;
    int64_t idx[4], xs[4] = {1, 3, 3, 1};
    cn_pool2d_params p = cn_pool2d_params_default(2, 2);
    p.pad_h = p.pad_w = 1;
    cn_pool2d_desc d;
    CHECK_OK(cn_pool2d_setup(&d, &p, CN_POOL_MAX, xs));
    CHECK_OK(cn_max_pool2d_fwd(NULL, &d, x, y, idx));
    static const int64_t want[4] = {0, 1, 3, 4};
    for (int i = 0; i < 4; i++)
        CHECK(y[i] == -INFINITY && idx[i] == want[i], "y[%d]=%g idx %lld", i, y[i],
              (long long)idx[i]);
}

static void max_pool_window_without_pixels_gives_minus_inf_index_minus_one_no_gradient(void)
{
    /* H=W=2, kernel 2, pad 1, dilation 3: the only window's taps fall at
     * -1 and 2. PyTorch returns index 6 (outside the 2x2 plane) and its
     * backward corrupts the heap; convnet marks it -1 and skips it. */
    float x[4] = {1, 2, 3, 4}, y, gy = 5, gx[4];
    int64_t idx, xs[4] = {1, 2, 2, 1};
    cn_pool2d_params p = cn_pool2d_params_default(2, 2);
    p.stride_h = p.stride_w = 1;
    p.pad_h = p.pad_w = 1;
    p.dil_h = p.dil_w = 3;
    cn_pool2d_desc d;
    CHECK_OK(cn_pool2d_setup(&d, &p, CN_POOL_MAX, xs));
    CHECK(d.OH == 1 && d.OW == 1, "OH=%lld OW=%lld", (long long)d.OH, (long long)d.OW);
    CHECK_OK(cn_max_pool2d_fwd(NULL, &d, x, &y, &idx));
    CHECK(y == -INFINITY && idx == -1, "y %g idx %lld", y, (long long)idx);
    CHECK_OK(cn_max_pool2d_bwd(NULL, &d, &idx, &gy, gx));
    for (int i = 0; i < 4; i++) CHECK(gx[i] == 0, "gx[%d]=%g", i, gx[i]);
}

static void avg_pool_propagates_nan_only_to_windows_holding_it(void)
{
    float x[16], y[4];
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    x[5] = NAN; /* pixel (1,1), in window (0,0) only */
    int64_t xs[4] = {1, 4, 4, 1};
    cn_pool2d_params p = cn_pool2d_params_default(2, 2);
    cn_pool2d_desc d;
    CHECK_OK(cn_pool2d_setup(&d, &p, CN_POOL_AVG, xs));
    CHECK_OK(cn_avg_pool2d_fwd(NULL, &d, x, y));
    CHECK(isnan(y[0]), "window (0,0): %g", y[0]);
    for (int i = 1; i < 4; i++) CHECK(isfinite(y[i]), "window %d: %g", i, y[i]);
}

/* ---- against the reference on random configurations ------------------ */

typedef enum {
    EDGE_K1,
    EDGE_K_EQ_INPUT,
    EDGE_OUT_1X1,
    EDGE_CEIL_ADDS,
    EDGE_CEIL_DROPS,
    EDGE_STRIDE_GT_K,
    EDGE_DIL,
    EDGE_PAD,
    EDGE_CIP0,
    EDGE_CIP1,
    EDGE_NONSQUARE,
    EDGE_COUNT
} edge_class;
static const char *const edge_names[EDGE_COUNT] = {
    "1x1 kernel",
    "kernel == input",
    "1x1 output",
    "ceil mode adds a window",
    "ceil window starting in the right pad dropped",
    "stride > kernel",
    "dilation",
    "padding",
    "count_include_pad=0",
    "count_include_pad=1",
    "non-square everything",
};

static void classify(const pool_cfg *c, int hits[EDGE_COUNT])
{
    const cn_pool2d_params *p = &c->p;
    int64_t H = c->xs[1], W = c->xs[2];
    int sh = p->stride_h ? p->stride_h : p->kernel_h, sw = p->stride_w ? p->stride_w : p->kernel_w;
    int64_t oh = count_windows(H, p->kernel_h, sh, p->pad_h, p->dil_h, p->ceil_mode);
    int64_t ow = count_windows(W, p->kernel_w, sw, p->pad_w, p->dil_w, p->ceil_mode);
    int64_t fh = count_windows(H, p->kernel_h, sh, p->pad_h, p->dil_h, 0);
    int64_t fw = count_windows(W, p->kernel_w, sw, p->pad_w, p->dil_w, 0);
    /* The ceil candidate exists but starts at or after H. */
    int drops =
        p->ceil_mode && ((oh * sh + p->dil_h * (p->kernel_h - 1) + 1 <= H + 2 * p->pad_h + sh - 1 &&
                          oh * sh - p->pad_h >= H) ||
                         (ow * sw + p->dil_w * (p->kernel_w - 1) + 1 <= W + 2 * p->pad_w + sw - 1 &&
                          ow * sw - p->pad_w >= W));
    hits[EDGE_K1] += p->kernel_h == 1 && p->kernel_w == 1;
    hits[EDGE_K_EQ_INPUT] += p->kernel_h == H && p->kernel_w == W;
    hits[EDGE_OUT_1X1] += oh == 1 && ow == 1;
    hits[EDGE_CEIL_ADDS] += oh > fh || ow > fw;
    hits[EDGE_CEIL_DROPS] += drops;
    hits[EDGE_STRIDE_GT_K] += sh > p->kernel_h || sw > p->kernel_w;
    hits[EDGE_DIL] += p->dil_h > 1 || p->dil_w > 1;
    hits[EDGE_PAD] += p->pad_h > 0 || p->pad_w > 0;
    hits[EDGE_CIP0] += c->type == CN_POOL_AVG && !p->count_include_pad;
    hits[EDGE_CIP1] += c->type == CN_POOL_AVG && p->count_include_pad;
    hits[EDGE_NONSQUARE] += H != W && p->kernel_h != p->kernel_w && sh != sw;
}

/* A random problem whose output is non-empty (redrawn until setup accepts
 * it); every drawn parameter is valid, so only the output size may fail. */
static int draw_cfg(cn_pool_type type, pool_cfg *c, cn_pool2d_desc *d)
{
    static const int64_t channels[] = {1, 2, 3, 4, 5, 8, 13, 17};
    for (int attempt = 0; attempt < 1000; attempt++) {
        int k[2], s[2], pd[2], dl[2];
        int64_t in[2];
        for (int a = 0; a < 2; a++) {
            k[a] = tl_randint(1, 5);
            pd[a] = tl_randint(0, k[a] / 2);
            dl[a] = type == CN_POOL_MAX && tl_randint(0, 2) == 0 ? tl_randint(2, 3) : 1;
            int r = tl_randint(0, 9);
            s[a] = r < 2 ? 0 : r < 4 ? tl_randint(k[a] + 1, k[a] + 3) : tl_randint(1, k[a]);
            int shape = tl_randint(0, 5);
            int ext = dl[a] * (k[a] - 1) + 1;
            in[a] = shape == 0 ? ext : shape == 1 ? tl_randint(1, 3) : tl_randint(1, 13);
        }
        *c = make_cfg(type, tl_randint(1, 2), in[0], in[1], channels[tl_randint(0, 7)], k[0], k[1],
                      s[0], s[1], pd[0], pd[1], dl[0], dl[1], tl_randint(0, 1), tl_randint(0, 1));
        cn_status st = cn_pool2d_setup(d, &c->p, c->type, c->xs);
        if (st == CN_OK) return 1;
        if (st != CN_ERR_INVALID_ARG || !strstr(cn_last_error(), "output size")) {
            printf("  unexpected setup failure for %s: %s\n", cfg_str(c), cn_last_error());
            return 0;
        }
    }
    return 0;
}

/* Fixed edge problems run before the random ones, whatever the seed.
 * Columns: N H W C, kernel, stride, pad, dil (h w each), ceil_mode,
 * count_include_pad, then 1 for max-only rows (avg has no dilation). */
static const int edge_rows[][15] = {
    {2, 5, 7, 3, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0},  /* 1x1 kernel */
    {1, 6, 4, 5, 6, 4, 0, 0, 0, 0, 1, 1, 0, 0, 0},  /* kernel == input */
    {1, 5, 3, 2, 5, 3, 1, 1, 2, 1, 1, 1, 0, 1, 0},  /* kernel == input, padded */
    {1, 2, 2, 1, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 0},  /* ceil window in the right pad dropped */
    {1, 5, 6, 4, 2, 3, 2, 2, 1, 1, 1, 1, 1, 0, 0},  /* ceil adds a window reaching past the pad */
    {1, 6, 3, 17, 3, 2, 4, 3, 1, 0, 1, 1, 1, 1, 0}, /* ceil, stride > kernel */
    {3, 9, 11, 2, 2, 3, 5, 4, 0, 1, 1, 1, 0, 0, 0}, /* stride > kernel */
    {1, 1, 1, 8, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0},  /* 1x1 everything */
    {2, 1, 9, 3, 1, 3, 1, 2, 0, 1, 1, 1, 1, 0, 0},  /* one row */
    {1, 7, 8, 3, 3, 2, 2, 1, 1, 1, 2, 3, 0, 1, 1},  /* dilation */
    {1, 2, 3, 2, 2, 2, 1, 1, 1, 1, 3, 3, 0, 1, 1},  /* windows without pixels */
    {1, 7, 5, 4, 3, 3, 2, 2, 1, 1, 3, 2, 1, 1, 1},  /* dilation, ceil */
};
#define N_EDGE_ROWS ((int)(sizeof edge_rows / sizeof edge_rows[0]))

static pool_cfg edge_cfg(cn_pool_type type, const int *r)
{
    return make_cfg(type, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
                    r[12], r[13]);
}

static void run_against_reference(cn_pool_type type, int n_random)
{
    int hits[EDGE_COUNT] = {0}, total = 0;
    for (int it = 0; it < N_EDGE_ROWS + n_random; it++) {
        pool_cfg c;
        cn_pool2d_desc d;
        if (it < N_EDGE_ROWS) {
            if (edge_rows[it][14] && type != CN_POOL_MAX) continue;
            c = edge_cfg(type, edge_rows[it]);
            CHECK_OK(cn_pool2d_setup(&d, &c.p, c.type, c.xs));
        } else {
            CHECK(draw_cfg(type, &c, &d), "no valid configuration drawn");
        }
        classify(&c, hits);
        int sh = c.p.stride_h ? c.p.stride_h : c.p.kernel_h;
        int sw = c.p.stride_w ? c.p.stride_w : c.p.kernel_w;
        int64_t oh = count_windows(c.xs[1], c.p.kernel_h, sh, c.p.pad_h, c.p.dil_h, c.p.ceil_mode);
        int64_t ow = count_windows(c.xs[2], c.p.kernel_w, sw, c.p.pad_w, c.p.dil_w, c.p.ceil_mode);
        CHECK(d.OH == oh && d.OW == ow, "%s: OH=%lld OW=%lld, counted %lld %lld", cfg_str(&c),
              (long long)d.OH, (long long)d.OW, (long long)oh, (long long)ow);

        size_t nx = (size_t)(d.MB * d.IH * d.IW * d.C), ny = (size_t)(d.MB * d.OH * d.OW * d.C);
        float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y);
        float *gy = malloc(ny * sizeof *gy), *gx = malloc(nx * sizeof *gx);
        double *xd = malloc(nx * sizeof *xd), *yd = malloc(ny * sizeof *yd);
        double *gyd = malloc(ny * sizeof *gyd), *gxd = malloc(nx * sizeof *gxd);
        int64_t *idx = malloc(ny * sizeof *idx), *idxd = malloc(ny * sizeof *idxd);
        tl_fill(x, nx, -2, 2);
        tl_fill(gy, ny, -1, 1);
        tl_f2d(x, xd, nx);
        tl_f2d(gy, gyd, ny);
        double err;
        long bad;
        const char *what = NULL;
        if (type == CN_POOL_MAX) {
            cn_max_pool2d_fwd(NULL, &d, x, y, idx);
            cn__max_pool2d_ref_fwd(&d, xd, yd, idxd);
            if ((bad = mismatch(y, yd, ny, &err)) >= 0) what = "forward";
            for (size_t i = 0; !what && i < ny; i++)
                if (idx[i] != idxd[i]) bad = (long)i, what = "indices";
            if (!what) {
                cn_max_pool2d_bwd(NULL, &d, idx, gy, gx);
                cn__max_pool2d_ref_bwd(&d, idxd, gyd, gxd);
            }
        } else {
            cn_avg_pool2d_fwd(NULL, &d, x, y);
            cn__avg_pool2d_ref_fwd(&d, xd, yd);
            if ((bad = mismatch(y, yd, ny, &err)) >= 0) what = "forward";
            if (!what) {
                cn_avg_pool2d_bwd(NULL, &d, gy, gx);
                cn__avg_pool2d_ref_bwd(&d, gyd, gxd);
            }
        }
        if (!what && (bad = mismatch(gx, gxd, nx, &err)) >= 0) what = "backward";
        free(x), free(y), free(gy), free(gx), free(xd), free(yd), free(gyd), free(gxd);
        free(idx), free(idxd);
        CHECK(!what, "%s: %s differs from the reference at element %ld (max error %g)", cfg_str(&c),
              what, bad, err);
        total++;
    }
    CHECK(total >= 300, "only %d configurations", total);
    for (int e = 0; e < EDGE_COUNT; e++) {
        int needed = (e == EDGE_CIP0 || e == EDGE_CIP1) ? type == CN_POOL_AVG
                     : e == EDGE_DIL                    ? type == CN_POOL_MAX
                                                        : 1;
        CHECK(!needed || hits[e] >= 2, "edge class \"%s\" hit only %d times", edge_names[e],
              hits[e]);
    }
}

static void max_pool_matches_reference_on_random_configs(void)
{
    run_against_reference(CN_POOL_MAX, 400);
}

static void avg_pool_matches_reference_on_random_configs(void)
{
    run_against_reference(CN_POOL_AVG, 400);
}

/* ---- the 2x2 stride-2 fast path ---------------------------------------- */

/* a and b equal as values, NaN matching NaN. */
static int same_value(float a, double b) { return isnan(a) ? isnan(b) : (double)a == b; }

static void max_pool_2x2_stride_2_matches_reference_with_ties_nans_and_odd_sizes(void)
{
    /* Integer inputs from -2..2 tie in most windows (the first maximum in
     * tap order must win), with NaN and infinities sprinkled in; odd sizes
     * leave a row or column outside every window (floor mode) or take the
     * general path for the windows hanging over the edge (ceil mode).
     * Values and indices must equal the reference exactly, the gradient
     * too (every pixel receives at most one gy), on 1 and 2 threads. */
    static const int64_t channels[] = {1, 3, 8, 16, 17, 32, 64};
    for (int it = 0; it < 60 && tl_ok(); it++) {
        pool_cfg c =
            make_cfg(CN_POOL_MAX, tl_randint(1, 3), tl_randint(2, 15), tl_randint(2, 15),
                     channels[tl_randint(0, 6)], 2, 2, 2, 2, 0, 0, 1, 1, tl_randint(0, 1), 1);
        cn_pool2d_desc d;
        CHECK_OK(cn_pool2d_setup(&d, &c.p, c.type, c.xs));
        const size_t nx = (size_t)(d.MB * d.IH * d.IW * d.C),
                     ny = (size_t)(d.MB * d.OH * d.OW * d.C);
        float *x = malloc(nx * sizeof *x), *gy = malloc(ny * sizeof *gy);
        double *xd = malloc(nx * sizeof *xd), *yd = malloc(ny * sizeof *yd);
        double *gyd = malloc(ny * sizeof *gyd), *gxd = malloc(nx * sizeof *gxd);
        int64_t *idxd = malloc(ny * sizeof *idxd);
        for (size_t i = 0; i < nx; i++) {
            const int r = tl_randint(0, 99);
            x[i] = r == 0 ? NAN : r == 1 ? INFINITY : r == 2 ? -INFINITY : (float)tl_randint(-2, 2);
        }
        tl_fill(gy, ny, -1, 1);
        tl_f2d(x, xd, nx), tl_f2d(gy, gyd, ny);
        cn__max_pool2d_ref_fwd(&d, xd, yd, idxd);
        cn__max_pool2d_ref_bwd(&d, idxd, gyd, gxd);
        const char *what = NULL;
        size_t bad = 0;
        for (int t = 1; t <= 2 && !what; t++) {
            cn_ctx ctx;
            cn_ctx_init(&ctx);
            ctx.threads = t;
            float *y = malloc(ny * sizeof *y), *y2 = malloc(ny * sizeof *y2);
            float *gx = malloc(nx * sizeof *gx);
            int64_t *idx = malloc(ny * sizeof *idx);
            for (size_t i = 0; i < nx; i++) gx[i] = NAN; /* every pixel must be written */
            cn_max_pool2d_fwd(&ctx, &d, x, y, idx);
            cn_max_pool2d_fwd(&ctx, &d, x, y2, NULL);
            cn_max_pool2d_bwd(&ctx, &d, idx, gy, gx);
            for (size_t i = 0; i < ny && !what; i++)
                if (!same_value(y[i], yd[i]))
                    what = "y", bad = i;
                else if (idx[i] != idxd[i])
                    what = "idx", bad = i;
                else if (!same_value(y2[i], yd[i]))
                    what = "y without indices", bad = i;
            for (size_t i = 0; i < nx && !what; i++)
                if (!same_value(gx[i], gxd[i])) what = "gx", bad = i;
            free(y), free(y2), free(gx), free(idx);
            if (what)
                tl_fail(__FILE__, __LINE__, "%s, %d thread(s): %s differs at %zu", cfg_str(&c), t,
                        what, bad);
        }
        free(x), free(gy), free(xd), free(yd), free(gyd), free(gxd), free(idxd);
    }
}

static void max_pool_2x2_backward_scatters_an_index_outside_its_window(void)
{
    /* The backward trusts no index: one that points into another window
     * (not what the forward writes) still sends gy to that pixel, as the
     * reference's scatter does. 4x4 plane, 2 channels. */
    const int64_t xs[4] = {1, 4, 4, 2};
    cn_pool2d_params p = cn_pool2d_params_default(2, 2);
    cn_pool2d_desc d;
    CHECK_OK(cn_pool2d_setup(&d, &p, CN_POOL_MAX, xs));
    float x[32], y[8], gy[8] = {1, 2, 3, 4, 5, 6, 7, 8}, gx[32];
    double gyd[8], gxd[32];
    int64_t idx[8];
    for (int i = 0; i < 32; i++) x[i] = (float)((i * 7) % 11);
    CHECK_OK(cn_max_pool2d_fwd(NULL, &d, x, y, idx));
    idx[0] = 10; /* channel 0 of window (0,0) -> pixel (2,2), in window (1,1) */
    tl_f2d(gy, gyd, 8);
    CHECK_OK(cn_max_pool2d_bwd(NULL, &d, idx, gy, gx));
    cn__max_pool2d_ref_bwd(&d, idx, gyd, gxd);
    for (int i = 0; i < 32; i++) CHECK(gx[i] == gxd[i], "gx[%d] = %g, want %g", i, gx[i], gxd[i]);
}

/* ---- gradients -------------------------------------------------------- */

/* L(x) = sum of r * ref_fwd(x) over outputs that have pixels. */
static double loss(const cn_pool2d_desc *d, const double *x, const double *r, double *y)
{
    size_t ny = (size_t)(d->MB * d->OH * d->OW * d->C);
    if (d->type == CN_POOL_MAX)
        cn__max_pool2d_ref_fwd(d, x, y, NULL);
    else
        cn__avg_pool2d_ref_fwd(d, x, y);
    double s = 0;
    for (size_t i = 0; i < ny; i++)
        if (isfinite(y[i])) s += r[i] * y[i];
    return s;
}

/* The reference backward is dL/dx: checked per input element by central
 * differences; then the float backward must match it. */
static void check_gradients(cn_pool_type type)
{
    for (int it = 0; it < 60; it++) {
        pool_cfg c;
        cn_pool2d_desc d;
        CHECK(draw_cfg(type, &c, &d), "no valid configuration drawn");
        if (d.MB * d.IH * d.IW * d.C > 400) continue;
        size_t nx = (size_t)(d.MB * d.IH * d.IW * d.C), ny = (size_t)(d.MB * d.OH * d.OW * d.C);
        double *x = malloc(nx * sizeof *x), *g = malloc(nx * sizeof *g);
        double *r = malloc(ny * sizeof *r), *y = malloc(ny * sizeof *y);
        int64_t *idx = malloc(ny * sizeof *idx);
        if (type == CN_POOL_MAX)
            fill_distinct(x, nx);
        else
            tl_fill_d(x, nx, -2, 2);
        tl_fill_d(r, ny, -1, 1);
        if (type == CN_POOL_MAX) {
            cn__max_pool2d_ref_fwd(&d, x, y, idx);
            cn__max_pool2d_ref_bwd(&d, idx, r, g);
        } else {
            cn__avg_pool2d_ref_bwd(&d, r, g);
        }
        const double h = 1e-3;
        long bad = -1;
        double fd = 0;
        for (size_t i = 0; i < nx && bad < 0; i++) {
            double x0 = x[i];
            x[i] = x0 + h;
            double lp = loss(&d, x, r, y);
            x[i] = x0 - h;
            double lm = loss(&d, x, r, y);
            x[i] = x0;
            fd = (lp - lm) / (2 * h);
            if (!(fabs(fd - g[i]) <= 1e-8 + 1e-8 * fabs(g[i]))) bad = (long)i;
        }
        double gb = bad >= 0 ? g[bad] : 0;

        /* The float backward against the reference backward. */
        float *xf = malloc(nx * sizeof *xf), *yf = malloc(ny * sizeof *yf);
        float *rf = malloc(ny * sizeof *rf), *gf = malloc(nx * sizeof *gf);
        int64_t *idxf = malloc(ny * sizeof *idxf);
        tl_d2f(x, xf, nx);
        tl_d2f(r, rf, ny);
        long badf = -1;
        double err = 0;
        if (bad < 0) {
            if (type == CN_POOL_MAX) {
                cn_max_pool2d_fwd(NULL, &d, xf, yf, idxf);
                cn_max_pool2d_bwd(NULL, &d, idxf, rf, gf);
            } else {
                cn_avg_pool2d_bwd(NULL, &d, rf, gf);
            }
            tl_f2d(rf, r, ny);
            if (type == CN_POOL_MAX)
                cn__max_pool2d_ref_bwd(&d, idx, r, g);
            else
                cn__avg_pool2d_ref_bwd(&d, r, g);
            badf = mismatch(gf, g, nx, &err);
        }
        free(x), free(g), free(r), free(y), free(idx), free(xf), free(yf), free(rf), free(gf);
        free(idxf);
        CHECK(bad < 0, "%s: d/dx[%ld]: finite difference %.12g, reference backward %.12g",
              cfg_str(&c), bad, fd, gb);
        CHECK(badf < 0, "%s: float backward differs at %ld (max error %g)", cfg_str(&c), badf, err);
    }
}

static void max_pool_backward_matches_finite_differences(void) { check_gradients(CN_POOL_MAX); }
static void avg_pool_backward_matches_finite_differences(void) { check_gradients(CN_POOL_AVG); }

/* ---- global average pooling ------------------------------------------- */

static void global_avg_pool_is_the_plane_mean_and_spreads_gy_evenly(void)
{
    for (int it = 0; it < 50; it++) {
        int64_t N = tl_randint(1, 3), H = tl_randint(1, 9), W = tl_randint(1, 9);
        int64_t C = tl_randint(1, 2) == 1 ? tl_randint(1, 5) : tl_randint(60, 140);
        size_t nx = (size_t)(N * H * W * C), ny = (size_t)(N * C);
        float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y),
              *gx = malloc(nx * sizeof *gx);
        float *gy = malloc(ny * sizeof *gy);
        double *yd = calloc(ny, sizeof *yd), *gxd = malloc(nx * sizeof *gxd);
        tl_fill(x, nx, -2, 2);
        tl_fill(gy, ny, -1, 1);
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < H * W; p++)
                for (int64_t c = 0; c < C; c++) yd[n * C + c] += x[(n * H * W + p) * C + c];
        for (size_t i = 0; i < ny; i++) yd[i] /= (double)(H * W);
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < H * W; p++)
                for (int64_t c = 0; c < C; c++)
                    gxd[(n * H * W + p) * C + c] = gy[n * C + c] / (double)(H * W);
        cn_status s1 = cn_global_avg_pool2d_fwd(NULL, N, H, W, C, x, y);
        cn_status s2 = cn_global_avg_pool2d_bwd(NULL, N, H, W, C, gy, gx);
        double e1, e2;
        long b1 = mismatch(y, yd, ny, &e1), b2 = mismatch(gx, gxd, nx, &e2);
        free(x), free(y), free(gx), free(gy), free(yd), free(gxd);
        CHECK(s1 == CN_OK && s2 == CN_OK, "status %d %d", s1, s2);
        CHECK(b1 < 0 && b2 < 0, "N=%lld H=%lld W=%lld C=%lld: fwd bad %ld (%g), bwd bad %ld (%g)",
              (long long)N, (long long)H, (long long)W, (long long)C, b1, e1, b2, e2);
    }
}

static void global_avg_pool_equals_avg_pool_with_kernel_equal_to_input(void)
{
    int64_t xs[4] = {2, 7, 5, 6};
    float x[2 * 7 * 5 * 6], yg[12], ya[12];
    tl_fill(x, sizeof x / sizeof x[0], -3, 3);
    cn_pool2d_params p = cn_pool2d_params_default(7, 5);
    cn_pool2d_desc d;
    CHECK_OK(cn_pool2d_setup(&d, &p, CN_POOL_AVG, xs));
    CHECK(d.OH == 1 && d.OW == 1, "OH=%lld OW=%lld", (long long)d.OH, (long long)d.OW);
    CHECK_OK(cn_avg_pool2d_fwd(NULL, &d, x, ya));
    CHECK_OK(cn_global_avg_pool2d_fwd(NULL, 2, 7, 5, 6, x, yg));
    for (int i = 0; i < 12; i++)
        CHECK(fabsf(yg[i] - ya[i]) <= 1e-6f * (1 + fabsf(yg[i])), "y[%d]: %g vs %g", i, yg[i],
              ya[i]);
}

/* ---- threads ----------------------------------------------------------- */

static void results_are_bitwise_identical_for_any_thread_count(void)
{
    static const int threads[] = {2, 3, 5};
    for (int it = 0; it < 30; it++) {
        cn_pool_type type = it % 2 ? CN_POOL_AVG : CN_POOL_MAX;
        pool_cfg c;
        cn_pool2d_desc d;
        CHECK(draw_cfg(type, &c, &d), "no valid configuration drawn");
        c.xs[0] = tl_randint(1, 4);
        c.xs[3] = tl_randint(1, 3) == 1 ? 130 : c.xs[3]; /* several channel blocks */
        CHECK_OK(cn_pool2d_setup(&d, &c.p, c.type, c.xs));
        size_t nx = (size_t)(d.MB * d.IH * d.IW * d.C), ny = (size_t)(d.MB * d.OH * d.OW * d.C);
        size_t ng = (size_t)(d.MB * d.C);
        float *x = malloc(nx * sizeof *x), *gy = malloc(ny * sizeof *gy);
        float *y[2], *gx[2], *yg[2], *gxg[2];
        int64_t *idx[2];
        for (int k = 0; k < 2; k++) {
            y[k] = malloc(ny * sizeof *y[k]);
            gx[k] = malloc(nx * sizeof *gx[k]);
            yg[k] = malloc(ng * sizeof *yg[k]);
            gxg[k] = malloc(nx * sizeof *gxg[k]);
            idx[k] = malloc(ny * sizeof *idx[k]);
        }
        tl_fill(x, nx, -2, 2);
        tl_fill(gy, ny, -1, 1);
        int differs = 0, nt = 0;
        for (int t = 0; t < 4 && !differs; t++) {
            cn_ctx ctx;
            cn_ctx_init(&ctx);
            ctx.threads = t ? threads[t - 1] : 1;
            nt = ctx.threads;
            int k = t ? 1 : 0;
            if (type == CN_POOL_MAX) {
                cn_max_pool2d_fwd(&ctx, &d, x, y[k], idx[k]);
                cn_max_pool2d_bwd(&ctx, &d, idx[k], gy, gx[k]);
            } else {
                cn_avg_pool2d_fwd(&ctx, &d, x, y[k]);
                cn_avg_pool2d_bwd(&ctx, &d, gy, gx[k]);
            }
            cn_global_avg_pool2d_fwd(&ctx, d.MB, d.IH, d.IW, d.C, x, yg[k]);
            cn_global_avg_pool2d_bwd(&ctx, d.MB, d.IH, d.IW, d.C, yg[k], gxg[k]);
            if (t)
                differs = memcmp(y[0], y[1], ny * sizeof(float)) ||
                          memcmp(gx[0], gx[1], nx * sizeof(float)) ||
                          memcmp(yg[0], yg[1], ng * sizeof(float)) ||
                          memcmp(gxg[0], gxg[1], nx * sizeof(float)) ||
                          (type == CN_POOL_MAX && memcmp(idx[0], idx[1], ny * sizeof(int64_t)));
        }
        free(x), free(gy);
        for (int k = 0; k < 2; k++)
            free(y[k]), free(gx[k]), free(yg[k]), free(gxg[k]), free(idx[k]);
        CHECK(!differs, "%s: %d threads differ from 1", cfg_str(&c), nt);
    }
}

int main(void)
{
    TL_RUN(params_default_is_stride_kernel_no_pad_floor_include_pad);
    TL_RUN(output_size_matches_values_pytorch_printed);
    TL_RUN(stride_zero_means_the_kernel_size);
    TL_RUN(invalid_arguments_are_rejected_with_name_and_value);
    TL_RUN(oversized_shapes_overflow_instead_of_wrapping);
    TL_RUN(passes_reject_a_descriptor_of_the_other_type_and_null_buffers);
    TL_RUN(max_pool_2x2_on_4x4_gives_hand_computed_values_and_indices);
    TL_RUN(max_pool_backward_accumulates_overlapping_windows);
    TL_RUN(avg_pool_on_3x3_ones_with_padding_counts_pad_only_when_asked);
    TL_RUN(avg_pool_ceil_mode_matches_values_pytorch_printed);
    TL_RUN(max_pool_nan_propagates_and_the_last_nan_wins);
    TL_RUN(max_pool_of_all_minus_inf_points_at_the_first_pixel_inside);
    TL_RUN(max_pool_window_without_pixels_gives_minus_inf_index_minus_one_no_gradient);
    TL_RUN(avg_pool_propagates_nan_only_to_windows_holding_it);
    TL_RUN(max_pool_matches_reference_on_random_configs);
    TL_RUN(avg_pool_matches_reference_on_random_configs);
    TL_RUN(max_pool_2x2_stride_2_matches_reference_with_ties_nans_and_odd_sizes);
    TL_RUN(max_pool_2x2_backward_scatters_an_index_outside_its_window);
    TL_RUN(max_pool_backward_matches_finite_differences);
    TL_RUN(avg_pool_backward_matches_finite_differences);
    TL_RUN(global_avg_pool_is_the_plane_mean_and_spreads_gy_evenly);
    TL_RUN(global_avg_pool_equals_avg_pool_with_kernel_equal_to_input);
    TL_RUN(results_are_bitwise_identical_for_any_thread_count);
    return tl_summary();
}
