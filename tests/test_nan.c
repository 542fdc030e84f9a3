/* The NaN policy: a NaN in an input, a weight or an incoming gradient
 * reaches exactly the values that depend on it, as PyTorch's do, and never
 * disappears (no fmaxf-style max that drops it, no "skip if zero" that hides
 * 0 * NaN). Every value that does not depend on it stays finite. Checked per
 * op through the raw passes where test_ops / test_pool / test_conv do not
 * already, and through the autodiff graph for every op a model uses.
 *
 * Patterns are exact: `want[i]` says whether element i must be NaN. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/* Index of the first element whose NaN-ness differs from want (NULL: none
 * may be NaN), or -1; non-NaN elements must also be finite. */
static long nan_mismatch(const float *a, const unsigned char *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int w = want ? want[i] : 0;
        if (w ? !isnan(a[i]) : !isfinite(a[i])) return (long)i;
    }
    return -1;
}

static const char *want_str(const unsigned char *want, long i)
{
    return want && want[i] ? "NaN" : "finite";
}

/* CHECK_NAN(a, want, n, "printf-style context", ...) */
#define CHECK_NAN(a, want, n, ...)                                                                 \
    do {                                                                                           \
        long at_ = nan_mismatch((a), (want), (n));                                                 \
        if (at_ >= 0) {                                                                            \
            char ctx_[256];                                                                        \
            snprintf(ctx_, sizeof ctx_, __VA_ARGS__);                                              \
            CHECK(0, "%s: element %ld is %g, want %s", ctx_, at_, (double)(a)[at_],                \
                  want_str((want), at_));                                                          \
        }                                                                                          \
    } while (0)

/* ---- conv2d: every pass, every implementation ---------------------------- */

/* x [2,6,7,3], w [3,3,3,19] (19 output channels: SIMD bodies and tails),
 * padding 1, stride 1: y [2,6,7,19]. The NaN pixel (1,2,3,c1) and the NaN
 * output gradient (0,2,3,co7) are interior, so every tap reaches them; the
 * NaN weight is a centre tap, never multiplied by padding. */
enum { N = 2, H = 6, W = 7, C = 3, KH = 3, KW = 3, OC = 19 };
#define XI(n, h, w, c) ((((size_t)(n)*H + (h)) * W + (w)) * C + (c))
#define YI(n, h, w, c) ((((size_t)(n)*H + (h)) * W + (w)) * OC + (c))
#define WI(kh, kw, c, o) ((((size_t)(kh)*KW + (kw)) * C + (c)) * OC + (o))

static void conv_passes(cn_ctx *ctx, const char *cfg)
{
    static float x[N * H * W * C], w[KH * KW * C * OC], b[OC], y[N * H * W * OC],
        gy[N * H * W * OC], gx[N * H * W * C], gw[KH * KW * C * OC], gb[OC];
    static unsigned char want_y[N * H * W * OC], want_x[N * H * W * C], want_w[KH * KW * C * OC],
        want_b[OC];
    int64_t xs[4] = {N, H, W, C}, ws[4] = {KH, KW, C, OC};
    cn_conv2d_params p = cn_conv2d_params_default();
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
    cn_conv2d_desc d;
    CHECK_OK(cn_conv2d_setup(&d, &p, xs, ws));
    void *wsp = malloc(cn_conv2d_workspace_size(&d) + 64);
    CHECK(wsp, "workspace");
    const size_t nx = sizeof x / sizeof x[0], nw = sizeof w / sizeof w[0],
                 ny = sizeof y / sizeof y[0];

    /* A NaN pixel: forward reaches the 3x3 outputs around it in every
     * channel; the weight gradient of its input channel turns NaN at every
     * tap and output channel; the bias gradient does not see x. */
    tl_fill(x, nx, -1, 1), tl_fill(w, nw, -1, 1), tl_fill(b, OC, -1, 1), tl_fill(gy, ny, -1, 1);
    x[XI(1, 2, 3, 1)] = NAN;
    memset(want_y, 0, sizeof want_y);
    for (int h = 1; h <= 3; h++)
        for (int ww = 2; ww <= 4; ww++)
            for (int o = 0; o < OC; o++) want_y[YI(1, h, ww, o)] = 1;
    CHECK_OK(cn_conv2d_fwd(ctx, &d, x, w, b, y, wsp));
    CHECK_NAN(y, want_y, ny, "%s: forward with a NaN pixel", cfg);
    memset(want_w, 0, sizeof want_w);
    for (int k = 0; k < KH * KW; k++)
        for (int o = 0; o < OC; o++) want_w[WI(k / KW, k % KW, 1, o)] = 1;
    CHECK_OK(cn_conv2d_bwd_weights(ctx, &d, x, gy, gw, gb, wsp));
    CHECK_NAN(gw, want_w, nw, "%s: weight gradient with a NaN pixel", cfg);
    CHECK_NAN(gb, NULL, OC, "%s: bias gradient with a NaN pixel", cfg);
    x[XI(1, 2, 3, 1)] = 0.5f;

    /* A NaN weight (centre tap, input channel 2, output channel 5): all of
     * output channel 5, and the data gradient of all of input channel 2. */
    w[WI(1, 1, 2, 5)] = NAN;
    for (size_t i = 0; i < ny; i++) want_y[i] = i % OC == 5;
    CHECK_OK(cn_conv2d_fwd(ctx, &d, x, w, b, y, wsp));
    CHECK_NAN(y, want_y, ny, "%s: forward with a NaN weight", cfg);
    for (size_t i = 0; i < nx; i++) want_x[i] = i % C == 2;
    CHECK_OK(cn_conv2d_bwd_data(ctx, &d, gy, w, gx, wsp));
    CHECK_NAN(gx, want_x, nx, "%s: data gradient with a NaN weight", cfg);
    w[WI(1, 1, 2, 5)] = 0.25f;

    /* A NaN bias: its output channel. */
    b[11] = NAN;
    for (size_t i = 0; i < ny; i++) want_y[i] = i % OC == 11;
    CHECK_OK(cn_conv2d_fwd(ctx, &d, x, w, b, y, wsp));
    CHECK_NAN(y, want_y, ny, "%s: forward with a NaN bias", cfg);
    b[11] = 0;

    /* A NaN output gradient at (0,2,3,co7): the data gradient of the 3x3
     * pixels around it in every input channel, the weight gradient of
     * output channel 7 at every tap, and bias gradient 7. */
    gy[YI(0, 2, 3, 7)] = NAN;
    memset(want_x, 0, sizeof want_x);
    for (int h = 1; h <= 3; h++)
        for (int ww = 2; ww <= 4; ww++)
            for (int c = 0; c < C; c++) want_x[XI(0, h, ww, c)] = 1;
    CHECK_OK(cn_conv2d_bwd_data(ctx, &d, gy, w, gx, wsp));
    CHECK_NAN(gx, want_x, nx, "%s: data gradient with a NaN output gradient", cfg);
    for (size_t i = 0; i < nw; i++) want_w[i] = i % OC == 7;
    for (int o = 0; o < OC; o++) want_b[o] = o == 7;
    CHECK_OK(cn_conv2d_bwd_weights(ctx, &d, x, gy, gw, gb, wsp));
    CHECK_NAN(gw, want_w, nw, "%s: weight gradient with a NaN output gradient", cfg);
    CHECK_NAN(gb, want_b, OC, "%s: bias gradient with a NaN output gradient", cfg);
    free(wsp);
}

static void conv2d_every_pass_carries_nan_exactly_where_it_reaches(void)
{
    /* As test_conv: the direct loops and the GEMM path on each ISA this CPU
     * runs (CN_ISA only lowers the choice), one and two threads. */
    static const char *const paths[][2] = {
        {"direct", "avx512"}, {"gemm", "scalar"}, {"gemm", "avx2"}, {"gemm", "avx512"}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0] && tl_ok(); i++)
        for (int t = 1; t <= 2 && tl_ok(); t++) {
            setenv("CN_CONV_IMPL", paths[i][0], 1);
            setenv("CN_ISA", paths[i][1], 1);
            cn_ctx ctx;
            cn_ctx_init(&ctx);
            ctx.threads = t;
            char cfg[96];
            snprintf(cfg, sizeof cfg, "CN_CONV_IMPL=%s CN_ISA=%s threads=%d", paths[i][0],
                     paths[i][1], t);
            conv_passes(&ctx, cfg);
        }
    unsetenv("CN_CONV_IMPL");
    unsetenv("CN_ISA");
}

/* ---- the graph: one harness for every op ---------------------------------- */

/* Runs loss = sum(op(x) * k) so that k is op's output gradient; x [xn]
 * requires grad. A NaN goes into x at nan_x and/or into k at nan_gy
 * (SIZE_MAX: none). y and gx receive op(x) and dloss/dx (sizes ny, xn). */
typedef cn_var *(*op_fn)(cn_graph *g, cn_var *x, void *arg);

typedef struct op_run {
    float y[512], gx[512], loss;
    size_t ny;
    int failed;
} op_run;

static op_run *run_op(op_fn op, void *arg, int ndim, const int64_t *xs, size_t nan_x, size_t nan_gy)
{
    static op_run r;
    static float x[512], k[512];
    memset(&r, 0, sizeof r);
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    cn_rng_seed(&ctx, 7);
    cn_graph *g;
    size_t xn = 1;
    for (int i = 0; i < ndim; i++) xn *= (size_t)xs[i];
    tl_fill(x, xn, -1, 1);
    for (size_t i = 0; i < xn; i++) x[i] += x[i] < 0 ? -0.1f : 0.1f; /* no ReLU kinks at 0 */
    if (nan_x != SIZE_MAX) x[nan_x] = NAN;
    if (cn_graph_new(&g, &ctx)) return r.failed = 1, &r;
    cn_var *vx = cn_var_wrap(g, ndim, xs, x, r.gx, 1);
    cn_var *y = op(g, vx, arg);
    if (!y || y->size > 512) {
        r.failed = 1;
        cn_graph_free(g);
        return &r;
    }
    r.ny = y->size;
    memcpy(r.y, y->data, r.ny * sizeof(float));
    tl_fill(k, r.ny, 0.5, 1.5);
    if (nan_gy != SIZE_MAX) k[nan_gy] = NAN;
    cn_var *vk = cn_var_wrap(g, y->ndim, y->shape, k, NULL, 0);
    cn_var *loss = cn_sum(g, cn_mul(g, y, vk));
    if (!loss || cn_backward(g, loss))
        r.failed = 1;
    else
        r.loss = loss->data[0];
    cn_graph_free(g);
    return &r;
}

static cn_var *op_relu(cn_graph *g, cn_var *x, void *a) { return (void)a, cn_relu(g, x); }

static void relu_keeps_nan_forward_and_backward_masks_gradients_where_x_is_negative(void)
{
    int64_t s[1] = {8};
    unsigned char want[8] = {0};
    op_run *r = run_op(op_relu, NULL, 1, s, 3, SIZE_MAX);
    CHECK(!r->failed, "%s", cn_last_error());
    want[3] = 1;
    CHECK_NAN(r->y, want, 8, "relu forward");
    CHECK_NAN(r->gx, want, 8, "relu backward of a NaN input");
    CHECK(isnan(r->loss), "loss %g", r->loss);
    /* A NaN output gradient reaches dx where x > 0 and is masked (0, as
     * PyTorch's threshold_backward) where x < 0. */
    for (size_t at = 0; at < 8; at++) {
        r = run_op(op_relu, NULL, 1, s, SIZE_MAX, at);
        float xv = r->y[at]; /* relu(x) > 0 iff x > 0 */
        memset(want, 0, sizeof want);
        want[at] = xv > 0;
        CHECK_NAN(r->gx, want, 8, "relu backward of a NaN gradient at %zu (y %g)", at, xv);
    }
}

typedef struct pool_arg {
    cn_pool2d_params p;
    int type; /* 0 max, 1 avg, 2 global avg */
} pool_arg;

static cn_var *op_pool(cn_graph *g, cn_var *x, void *a)
{
    const pool_arg *pa = a;
    return pa->type == 0   ? cn_max_pool2d(g, x, &pa->p)
           : pa->type == 1 ? cn_avg_pool2d(g, x, &pa->p)
                           : cn_global_avg_pool2d(g, x);
}

static void pooling_carries_nan_to_the_windows_holding_it_and_back(void)
{
    /* x [2,4,4,3], 2x2 windows stride 2: y [2,2,2,3]. NaN at (1,1,2,c2) lies
     * in window (1,0,1,c2). */
    int64_t xs[4] = {2, 4, 4, 3};
    const size_t nan_x = ((1 * 4 + 1) * 4 + 2) * 3 + 2, win = ((1 * 2 + 0) * 2 + 1) * 3 + 2;
    const char *names[3] = {"max_pool2d", "avg_pool2d", "global_avg_pool2d"};
    for (int type = 0; type < 3; type++) {
        pool_arg pa = {cn_pool2d_params_default(2, 2), type};
        unsigned char want_y[24] = {0}, want_x[96] = {0};
        op_run *r = run_op(op_pool, &pa, 4, xs, nan_x, SIZE_MAX);
        CHECK(!r->failed, "%s: %s", names[type], cn_last_error());
        /* global: y [2,3], the NaN's image and channel */
        want_y[type == 2 ? 1 * 3 + 2 : win] = 1;
        CHECK_NAN(r->y, want_y, r->ny, "%s forward", names[type]);
        /* Backward with finite gradients: max routes a finite gradient to
         * the NaN (its argmax); averages give every pixel a finite share. */
        CHECK_NAN(r->gx, NULL, 96, "%s backward of a NaN input", names[type]);

        /* A NaN output gradient: max sends it to the window's argmax only,
         * averages to the whole window (global: the whole image channel). */
        const size_t gy_at = type == 2 ? 1 * 3 + 2 : win;
        r = run_op(op_pool, &pa, 4, xs, SIZE_MAX, gy_at);
        CHECK(!r->failed, "%s: %s", names[type], cn_last_error());
        int count = 0;
        for (int h = 0; h < 4; h++)
            for (int w = 0; w < 4; w++) {
                size_t i = ((1 * 4 + (size_t)h) * 4 + (size_t)w) * 3 + 2;
                int inside = type == 2 || (h < 2 && w >= 2);
                if (type != 0) want_x[i] = (unsigned char)inside;
                count += inside && isnan(r->gx[i]);
            }
        if (type == 0) {
            CHECK(count == 1, "max_pool2d backward: %d NaNs in the window, want 1 (the argmax)",
                  count);
            for (int h = 0; h < 2; h++)
                for (int w = 2; w < 4; w++) {
                    size_t i = ((1 * 4 + (size_t)h) * 4 + (size_t)w) * 3 + 2;
                    want_x[i] = (unsigned char)isnan(r->gx[i]);
                }
        }
        CHECK_NAN(r->gx, want_x, 96, "%s backward of a NaN gradient", names[type]);
    }
}

typedef struct bn_arg {
    float rm[3], rv[3];
    int training;
} bn_arg;

static float bn_gamma[3], bn_beta[3], bn_ggamma[3], bn_gbeta[3];

static cn_var *op_bn(cn_graph *g, cn_var *x, void *a)
{
    bn_arg *ba = a;
    int64_t s[1] = {3};
    cn_var *gm = cn_var_wrap(g, 1, s, bn_gamma, bn_ggamma, 1);
    cn_var *bt = cn_var_wrap(g, 1, s, bn_beta, bn_gbeta, 1);
    return cn_batch_norm2d(g, x, gm, bt, ba->rm, ba->rv, NULL, ba->training);
}

static void batch_norm_nan_poisons_its_channel_in_training_and_one_pixel_in_evaluation(void)
{
    int64_t xs[4] = {2, 3, 3, 3};
    const size_t at = ((1 * 3 + 2) * 3 + 0) * 3 + 1; /* channel 1 */
    unsigned char want[54] = {0}, want_c[3] = {0, 1, 0};
    for (int training = 1; training >= 0; training--) {
        bn_arg ba = {{0.1f, -0.2f, 0.3f}, {1.5f, 0.5f, 2.0f}, training};
        for (int c = 0; c < 3; c++)
            bn_gamma[c] = 1.0f + 0.25f * (float)c, bn_beta[c] = 0.1f * (float)c;
        memset(bn_ggamma, 0, sizeof bn_ggamma), memset(bn_gbeta, 0, sizeof bn_gbeta);
        op_run *r = run_op(op_bn, &ba, 4, xs, at, SIZE_MAX);
        CHECK(!r->failed, "%s", cn_last_error());
        for (size_t i = 0; i < 54; i++) want[i] = training ? i % 3 == 1 : i == at;
        CHECK_NAN(r->y, want, 54, "batch norm forward, training %d", training);
        CHECK_NAN(ba.rm, training ? want_c : NULL, 3, "running mean, training %d", training);
        CHECK_NAN(ba.rv, training ? want_c : NULL, 3, "running var, training %d", training);
        /* Training: dx flows through the batch statistics, so the whole
         * channel; evaluation: dx = gy * gamma * invstd, finite. Either way
         * gamma's gradient sums gy * x_hat over the NaN. */
        CHECK_NAN(r->gx, training ? want : NULL, 54, "batch norm dx, training %d", training);
        CHECK_NAN(bn_ggamma, want_c, 3, "batch norm dgamma, training %d", training);
        CHECK_NAN(bn_gbeta, NULL, 3, "batch norm dbeta (sums finite gradients), training %d",
                  training);
    }
}

static float lin_w[4 * 5], lin_b[5], lin_gw[4 * 5], lin_gb[5];

static cn_var *op_linear(cn_graph *g, cn_var *x, void *a)
{
    (void)a;
    int64_t ws[2] = {4, 5}, bs[1] = {5};
    return cn_linear(g, x, cn_var_wrap(g, 2, ws, lin_w, lin_gw, 1),
                     cn_var_wrap(g, 1, bs, lin_b, lin_gb, 1));
}

static void linear_carries_nan_along_rows_columns_and_gradients(void)
{
    /* x [3,4], w [4,5], y [3,5]. */
    int64_t xs[2] = {3, 4};
    unsigned char want_y[15], want_x[12], want_w[20], want_b[5];
    tl_fill(lin_w, 20, -1, 1), tl_fill(lin_b, 5, -1, 1);
    memset(lin_gw, 0, sizeof lin_gw), memset(lin_gb, 0, sizeof lin_gb);
    /* NaN x[1][2]: y row 1; dw row 2 (x^T gy); dx and db stay finite. */
    op_run *r = run_op(op_linear, NULL, 2, xs, 1 * 4 + 2, SIZE_MAX);
    CHECK(!r->failed, "%s", cn_last_error());
    for (int i = 0; i < 15; i++) want_y[i] = i / 5 == 1;
    for (int i = 0; i < 20; i++) want_w[i] = i / 5 == 2;
    CHECK_NAN(r->y, want_y, 15, "linear forward, NaN x");
    CHECK_NAN(lin_gw, want_w, 20, "linear dw, NaN x");
    CHECK_NAN(r->gx, NULL, 12, "linear dx, NaN x");
    CHECK_NAN(lin_gb, NULL, 5, "linear db, NaN x");
    /* NaN w[2][3]: y column 3; dx column 2 (gy w^T); dw, db finite. */
    memset(lin_gw, 0, sizeof lin_gw), memset(lin_gb, 0, sizeof lin_gb);
    lin_w[2 * 5 + 3] = NAN;
    r = run_op(op_linear, NULL, 2, xs, SIZE_MAX, SIZE_MAX);
    for (int i = 0; i < 15; i++) want_y[i] = i % 5 == 3;
    for (int i = 0; i < 12; i++) want_x[i] = i % 4 == 2;
    CHECK_NAN(r->y, want_y, 15, "linear forward, NaN w");
    CHECK_NAN(r->gx, want_x, 12, "linear dx, NaN w");
    CHECK_NAN(lin_gw, NULL, 20, "linear dw, NaN w");
    lin_w[2 * 5 + 3] = 0.5f;
    /* NaN gradient at y[2][1]: dx row 2, dw column 1, db[1]. */
    memset(lin_gw, 0, sizeof lin_gw), memset(lin_gb, 0, sizeof lin_gb);
    r = run_op(op_linear, NULL, 2, xs, SIZE_MAX, 2 * 5 + 1);
    for (int i = 0; i < 12; i++) want_x[i] = i / 4 == 2;
    for (int i = 0; i < 20; i++) want_w[i] = i % 5 == 1;
    for (int i = 0; i < 5; i++) want_b[i] = i == 1;
    CHECK_NAN(r->gx, want_x, 12, "linear dx, NaN gradient");
    CHECK_NAN(lin_gw, want_w, 20, "linear dw, NaN gradient");
    CHECK_NAN(lin_gb, want_b, 5, "linear db, NaN gradient");
}

static int32_t xent_labels[3] = {2, 0, 3};

static cn_var *op_xent(cn_graph *g, cn_var *x, void *a)
{
    return (void)a, cn_softmax_cross_entropy(g, x, xent_labels);
}
static cn_var *op_log_softmax(cn_graph *g, cn_var *x, void *a)
{
    return (void)a, cn_log_softmax(g, x);
}

static void softmax_cross_entropy_and_log_softmax_carry_nan_through_its_row(void)
{
    int64_t xs[2] = {3, 4};
    unsigned char want[12];
    for (int i = 0; i < 12; i++) want[i] = i / 4 == 1;
    /* A NaN logit in row 1: the mean loss is NaN, dx is NaN in row 1 only. */
    op_run *r = run_op(op_xent, NULL, 2, xs, 1 * 4 + 3, SIZE_MAX);
    CHECK(!r->failed, "%s", cn_last_error());
    CHECK(r->ny == 1 && isnan(r->y[0]), "xent loss %g", r->y[0]);
    CHECK_NAN(r->gx, want, 12, "xent dx");
    r = run_op(op_log_softmax, NULL, 2, xs, 1 * 4 + 3, SIZE_MAX);
    CHECK(!r->failed, "%s", cn_last_error());
    CHECK_NAN(r->y, want, 12, "log_softmax forward");
    CHECK_NAN(r->gx, want, 12, "log_softmax dx");
    /* A NaN gradient into log_softmax reaches its whole row (the row sum). */
    r = run_op(op_log_softmax, NULL, 2, xs, SIZE_MAX, 1 * 4 + 0);
    CHECK_NAN(r->gx, want, 12, "log_softmax dx of a NaN gradient");
}

static cn_var *op_sum(cn_graph *g, cn_var *x, void *a) { return (void)a, cn_sum(g, x); }
static cn_var *op_mean(cn_graph *g, cn_var *x, void *a) { return (void)a, cn_mean(g, x); }

static void sum_and_mean_of_a_nan_or_of_opposite_infinities_are_nan(void)
{
    int64_t xs[2] = {4, 5};
    unsigned char all[20];
    memset(all, 1, sizeof all);
    op_fn ops[2] = {op_sum, op_mean};
    for (int k = 0; k < 2; k++) {
        op_run *r = run_op(ops[k], NULL, 2, xs, 13, SIZE_MAX);
        CHECK(!r->failed && r->ny == 1 && isnan(r->y[0]), "%s of a NaN = %g", k ? "mean" : "sum",
              r->y[0]);
        /* d sum / dx = 1 whatever x holds. */
        CHECK_NAN(r->gx, NULL, 20, "%s dx of a NaN input", k ? "mean" : "sum");
        r = run_op(ops[k], NULL, 2, xs, SIZE_MAX, 0);
        CHECK_NAN(r->gx, all, 20, "%s dx of a NaN gradient", k ? "mean" : "sum");
    }
    /* inf + -inf inside the reduction */
    cn_graph *g;
    CHECK_OK(cn_graph_new(&g, NULL));
    float x[3] = {INFINITY, 1, -INFINITY};
    int64_t s[1] = {3};
    cn_var *v = cn_var_wrap(g, 1, s, x, NULL, 0), *sm = cn_sum(g, v), *mn = cn_mean(g, v);
    CHECK(sm && mn && isnan(sm->data[0]) && isnan(mn->data[0]), "inf - inf: sum %g mean %g",
          sm ? sm->data[0] : 0.0, mn ? mn->data[0] : 0.0);
    cn_graph_free(g);
}

/* Elementwise ops: the NaN stays at its element both ways. */
typedef struct ew_arg {
    int which;
} ew_arg;
static float ew_other[12];

static cn_var *op_ew(cn_graph *g, cn_var *x, void *a)
{
    int64_t s[2] = {3, 4};
    cn_var *o = cn_var_wrap(g, 2, s, ew_other, NULL, 0);
    switch (((ew_arg *)a)->which) {
    case 0:
        return cn_add(g, x, o);
    case 1:
        return cn_mul(g, x, o);
    case 2:
        return cn_tanh(g, x);
    case 3:
        return cn_sigmoid(g, x);
    case 4:
        return cn_leaky_relu(g, x, 0.1f);
    case 5:
        return cn_flatten(g, cn_reshape(g, x, 3, (int64_t[3]){2, 2, 3}));
    case 6: {
        cn_var *xs[2] = {x, o};
        return cn_concat(g, xs, 2, 1);
    }
    default:
        return cn_dropout(g, x, 0.5f, 1);
    }
}

static void elementwise_shape_and_dropout_ops_keep_nan_at_its_element(void)
{
    static const char *const names[] = {"add",        "mul",     "tanh",   "sigmoid",
                                        "leaky_relu", "reshape", "concat", "dropout"};
    int64_t xs[2] = {3, 4};
    tl_fill(ew_other, 12, 0.5, 1.5);
    for (int k = 0; k < 8; k++) {
        ew_arg a = {k};
        op_run *r = run_op(op_ew, &a, 2, xs, 6, SIZE_MAX);
        CHECK(!r->failed, "%s: %s", names[k], cn_last_error());
        unsigned char want[24] = {0};
        /* concat [3,4]+[3,4] on axis 1 -> [3,8]: x's (1,2) lands at 1*8+2 */
        want[k == 6 ? 1 * 8 + 2 : 6] = 1;
        /* dropout: a kept NaN is NaN, a dropped one is NaN * 0 = NaN too */
        CHECK_NAN(r->y, want, r->ny, "%s forward", names[k]);
        memset(want, 0, sizeof want);
        /* Only the nonlinear ops' dx reads x (or y); add's, mul's (by the
         * other factor), reshape's, concat's and dropout's do not. */
        want[6] = k == 2 || k == 3 || k == 4;
        CHECK_NAN(r->gx, want, 12, "%s backward of a NaN input", names[k]);
        r = run_op(op_ew, &a, 2, xs, SIZE_MAX, k == 6 ? 1 * 8 + 2 : 6);
        memset(want, 0, sizeof want);
        want[6] = 1; /* dropout: a dropped element's gy * 0 is NaN as well */
        CHECK_NAN(r->gx, want, 12, "%s backward of a NaN gradient", names[k]);
    }
}

/* ---- whole models --------------------------------------------------------- */

static void a_nan_image_poisons_its_own_logits_in_evaluation_and_the_batch_in_training(void)
{
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    cn_rng_seed(&ctx, 2);
    cn_model *m;
    CHECK_OK(cn_model_new(&m, "small", 8, 8, 1));
    cn_model_conv2d(m, 4, 3, 1, 1);
    cn_model_batchnorm2d(m);
    cn_model_relu(m);
    cn_model_maxpool2d(m, 2);
    cn_model_avgpool2d(m, 2);
    cn_model_flatten(m);
    cn_model_linear(m, 3);
    CHECK_OK(cn_model_init(m, &ctx));
    float x[4 * 64];
    tl_fill(x, 256, -1, 1);
    x[2 * 64 + 27] = NAN; /* image 2 */
    cn_graph *g;
    CHECK_OK(cn_graph_new(&g, &ctx));
    int64_t xs[4] = {4, 8, 8, 1};
    unsigned char want[12];
    for (int training = 0; training < 2; training++) {
        cn_graph_reset(g);
        cn_var *logits = cn_model_forward(m, g, cn_var_wrap(g, 4, xs, x, NULL, 0), training);
        CHECK(logits && logits->size == 12, "forward: %s", cn_last_error());
        for (int i = 0; i < 12; i++) want[i] = training || i / 3 == 2;
        CHECK_NAN(logits->data, want, 12, "logits, training %d", training);
        if (training) {
            int32_t y[4] = {0, 1, 2, 0};
            cn_model_zero_grad(m);
            cn_var *loss = cn_softmax_cross_entropy(g, logits, y);
            CHECK_OK(cn_backward(g, loss));
            CHECK(isnan(loss->data[0]), "training loss %g", loss->data[0]);
            size_t nans = 0;
            for (size_t i = 0; i < m->n_params; i++) nans += isnan(m->grads[i]);
            CHECK(nans > 0, "no NaN reached the parameter gradients");
        }
    }
    cn_graph_free(g);
    cn_model_free(m);
}

int main(void)
{
    TL_RUN(conv2d_every_pass_carries_nan_exactly_where_it_reaches);
    TL_RUN(relu_keeps_nan_forward_and_backward_masks_gradients_where_x_is_negative);
    TL_RUN(pooling_carries_nan_to_the_windows_holding_it_and_back);
    TL_RUN(batch_norm_nan_poisons_its_channel_in_training_and_one_pixel_in_evaluation);
    TL_RUN(linear_carries_nan_along_rows_columns_and_gradients);
    TL_RUN(softmax_cross_entropy_and_log_softmax_carry_nan_through_its_row);
    TL_RUN(sum_and_mean_of_a_nan_or_of_opposite_infinities_are_nan);
    TL_RUN(elementwise_shape_and_dropout_ops_keep_nan_at_its_element);
    TL_RUN(a_nan_image_poisons_its_own_logits_in_evaluation_and_the_batch_in_training);
    return tl_summary();
}
