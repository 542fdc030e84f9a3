/* conv2d, conv1d and conv_transpose2d: the library against the double
 * precision seven-loop reference on random problems, every backward against
 * central differences, and the identities that tie the ops together. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conv_cfg.h"
#include "ops/conv_internal.h"
#include "kernels/gemm.h"
#include "kernels/ref/conv_ref.h"

static void run_all(void);

#define ATOL 1e-5
#define RTOL 1e-5
#define N_RANDOM 400

/* All buffers of one problem, float for the library and double for the
 * reference. */
typedef struct bufs {
    size_t nx, nw, ny, nb;
    float *x, *w, *b, *y, *gy, *gx, *gw, *gb;
    double *xd, *wd, *bd, *yd, *gyd, *gxd, *gwd, *gbd;
} bufs;

static void bufs_init(bufs *B, const cn_conv2d_desc *d)
{
    memset(B, 0, sizeof *B);
    B->nx = cfg_nx(d), B->nw = cfg_nw(d), B->ny = cfg_ny(d), B->nb = (size_t)d->OC;
    float **f[] = {&B->x, &B->w, &B->b, &B->y, &B->gy, &B->gx, &B->gw, &B->gb};
    double **g[] = {&B->xd, &B->wd, &B->bd, &B->yd, &B->gyd, &B->gxd, &B->gwd, &B->gbd};
    size_t n[] = {B->nx, B->nw, B->nb, B->ny, B->ny, B->nx, B->nw, B->nb};
    for (int i = 0; i < 8; i++) {
        *f[i] = calloc(n[i] + 1, sizeof(float));
        *g[i] = calloc(n[i] + 1, sizeof(double));
    }
    tl_fill(B->x, B->nx, -1, 1), tl_fill(B->w, B->nw, -1, 1), tl_fill(B->b, B->nb, -1, 1);
    tl_fill(B->gy, B->ny, -1, 1);
    tl_f2d(B->x, B->xd, B->nx), tl_f2d(B->w, B->wd, B->nw), tl_f2d(B->b, B->bd, B->nb);
    tl_f2d(B->gy, B->gyd, B->ny);
}

static void bufs_free(bufs *B)
{
    float *f[] = {B->x, B->w, B->b, B->y, B->gy, B->gx, B->gw, B->gb};
    double *g[] = {B->xd, B->wd, B->bd, B->yd, B->gyd, B->gxd, B->gwd, B->gbd};
    for (int i = 0; i < 8; i++) free(f[i]), free(g[i]);
}

/* Compares got to ref; on mismatch reports `what` with the configuration. */
static int agree(const char *what, const float *got, const double *ref, size_t n, const char *cfg)
{
    double err;
    long bad = tl_mismatch(got, ref, n, ATOL, RTOL, &err);
    if (bad >= 0)
        tl_fail(__FILE__, __LINE__, "%s differs at %ld: got %.8g want %.8g (max err %.3g) for %s",
                what, bad, got[bad], ref[bad], err, cfg);
    return bad < 0;
}

static int run_all_passes(const conv_cfg *c, bufs *B)
{
    const cn_conv2d_desc *d = &c->d;
    size_t wsb = cn_conv2d_workspace_size(d);
    void *ws = malloc(wsb + 1);
    int ok = cn_conv2d_fwd(NULL, d, B->x, B->w, c->bias ? B->b : NULL, B->y, ws) == CN_OK &&
             cn_conv2d_bwd_data(NULL, d, B->gy, B->w, B->gx, ws) == CN_OK &&
             cn_conv2d_bwd_weights(NULL, d, B->x, B->gy, B->gw, B->gb, ws) == CN_OK;
    free(ws);
    if (!ok) tl_fail(__FILE__, __LINE__, "a pass failed: %s for %s", cn_last_error(), c->str);
    return ok;
}

static void every_pass_matches_reference_on_random_problems(void)
{
    int per_kind[CFG_KIND_COUNT] = {0};
    for (int i = 0; i < N_RANDOM && tl_ok(); i++) {
        conv_cfg c;
        int kind = i % CFG_KIND_COUNT;
        conv_cfg_random(&c, kind, 9, 4);
        per_kind[kind]++;
        bufs B;
        bufs_init(&B, &c.d);
        if (run_all_passes(&c, &B)) {
            cn__conv2d_ref_fwd(&c.d, B.xd, B.wd, c.bias ? B.bd : NULL, B.yd);
            cn__conv2d_ref_bwd_data(&c.d, B.gyd, B.wd, B.gxd);
            cn__conv2d_ref_bwd_weights(&c.d, B.xd, B.gyd, B.gwd, B.gbd);
            (void)(agree("forward", B.y, B.yd, B.ny, c.str) &&
                   agree("grad_input", B.gx, B.gxd, B.nx, c.str) &&
                   agree("grad_weight", B.gw, B.gwd, B.nw, c.str) &&
                   agree("grad_bias", B.gb, B.gbd, B.nb, c.str));
        }
        bufs_free(&B);
    }
    for (int k = 0; k < CFG_KIND_COUNT; k++)
        CHECK(per_kind[k] >= N_RANDOM / CFG_KIND_COUNT, "edge class %d ran %d times", k,
              per_kind[k]);
}

/* Every pass of c again on 2 threads must give exactly B's outputs (from
 * run_all_passes on one). */
static void same_bits_on_two_threads(const conv_cfg *c, const bufs *B)
{
    cn_ctx two;
    cn_ctx_init(&two);
    two.threads = 2;
    float *y2 = calloc(B->ny + 1, 4), *gx2 = calloc(B->nx + 1, 4), *gw2 = calloc(B->nw + 1, 4),
          *gb2 = calloc(B->nb + 1, 4);
    CHECK_OK(cn_conv2d_fwd(&two, &c->d, B->x, B->w, c->bias ? B->b : NULL, y2, NULL));
    CHECK_OK(cn_conv2d_bwd_data(&two, &c->d, B->gy, B->w, gx2, NULL));
    CHECK_OK(cn_conv2d_bwd_weights(&two, &c->d, B->x, B->gy, gw2, gb2, NULL));
    CHECK(!memcmp(y2, B->y, B->ny * 4) && !memcmp(gx2, B->gx, B->nx * 4) &&
              !memcmp(gw2, B->gw, B->nw * 4) && !memcmp(gb2, B->gb, B->nb * 4),
          "1 and 2 threads differ for %s", c->str);
    free(y2), free(gx2), free(gw2), free(gb2);
}

/* Every pass of c against the reference, then again on 2 threads bit for
 * bit. */
static void matches_reference_on_one_and_two_threads(const conv_cfg *c)
{
    bufs B;
    bufs_init(&B, &c->d);
    if (run_all_passes(c, &B)) {
        cn__conv2d_ref_fwd(&c->d, B.xd, B.wd, c->bias ? B.bd : NULL, B.yd);
        cn__conv2d_ref_bwd_data(&c->d, B.gyd, B.wd, B.gxd);
        cn__conv2d_ref_bwd_weights(&c->d, B.xd, B.gyd, B.gwd, B.gbd);
        (void)(agree("forward", B.y, B.yd, B.ny, c->str) &&
               agree("grad_input", B.gx, B.gxd, B.nx, c->str) &&
               agree("grad_weight", B.gw, B.gwd, B.nw, c->str) &&
               agree("grad_bias", B.gb, B.gbd, B.nb, c->str));
        same_bits_on_two_threads(c, &B);
    }
    bufs_free(&B);
}

/* The depthwise and small-group kernels vectorise along channels, so they
 * need problems wider than the generic generator's: full vectors, partial
 * ones and tails, on 1 and 2 threads with bit-identical results. */
static void wide_channel_problems_match_reference_on_one_and_two_threads(void)
{
    for (int i = 0; i < 120 && tl_ok(); i++) {
        conv_cfg c;
        conv_cfg_random_wide(&c, i % CFG_KIND_COUNT, 7);
        matches_reference_on_one_and_two_threads(&c);
    }
}

/* The AVX-512 depthwise kernels take channel counts that are multiples of
 * 16 (16-channel vectors, 32 at a time in the weight gradient) and a
 * register tile of 8 interior output pixels, the weight gradient
 * specialised for 3x3: rows up to 20 pixels wide so tiles, ragged tiles and
 * borders all occur, 3x3 filters half the time, every edge class. */
static void depthwise_16_channel_problems_match_reference_on_one_and_two_threads(void)
{
    for (int i = 0; i < 80 && tl_ok(); i++) {
        conv_cfg c;
        for (;;) {
            conv_cfg_random(&c, i % CFG_KIND_COUNT, 7, 1);
            const int64_t C = 16 * (int64_t)tl_randint(1, 5);
            if (i % 2 && c.ws[0] <= 3 && c.ws[1] <= 3) c.ws[0] = c.ws[1] = 3;
            if (i % 3 == 0) c.xs[2] = tl_randint(8, 20);
            c.p.groups = (int)C;
            c.xs[3] = C, c.ws[2] = 1, c.ws[3] = C;
            if (cn_conv2d_setup(&c.d, &c.p, c.xs, c.ws) != CN_OK) continue;
            conv_cfg_describe(&c);
            break;
        }
        const char *impl = getenv("CN_CONV_IMPL");
        CHECK((impl && strcmp(impl, "vec")) || !strcmp(cn__conv2d_impl_name(&c.d, 0), "depthwise"),
              "expected the depthwise path for %s", c.str);
        matches_reference_on_one_and_two_threads(&c);
    }
}

/* The AVX-512 depthwise forward of 3x3 filters at stride 1 computes two
 * output rows at a time in tiles of 8 columns: odd and even output heights
 * (a lone last row, 1-row outputs), rows from 8 to 21 columns (tiles that
 * overlap at the row's end, borders on one or both sides), 0-2 pixels of
 * padding on each side, every padding mode. Every pass against the
 * reference (backward-data runs the same kernel on the flipped filter), 2
 * threads bit for bit, and the fused ReLU bit for bit. */
static void depthwise_3x3_row_pairs_match_reference_on_one_and_two_threads(void)
{
    for (int i = 0; i < 60 && tl_ok(); i++) {
        conv_cfg c = {0};
        do {
            const int64_t C = 16 * (int64_t)tl_randint(1, 4);
            c.p = cn_conv2d_params_default();
            c.p.pad_top = tl_randint(0, 2), c.p.pad_bottom = tl_randint(0, 2);
            c.p.pad_left = tl_randint(0, 2), c.p.pad_right = tl_randint(0, 2);
            c.p.pad_mode = i % 4 ? CN_PAD_ZEROS : (cn_pad_mode)tl_randint(1, CN_PAD_MODE_COUNT - 1);
            c.p.groups = (int)C;
            c.xs[0] = tl_randint(1, 3), c.xs[1] = tl_randint(1, 8), c.xs[2] = tl_randint(10, 21);
            c.xs[3] = C;
            c.ws[0] = c.ws[1] = 3, c.ws[2] = 1, c.ws[3] = C;
            c.bias = tl_randint(0, 1);
        } while (cn_conv2d_setup(&c.d, &c.p, c.xs, c.ws) != CN_OK);
        conv_cfg_describe(&c);
        const char *impl = getenv("CN_CONV_IMPL");
        CHECK((impl && strcmp(impl, "vec")) || !strcmp(cn__conv2d_impl_name(&c.d, 0), "depthwise"),
              "expected the depthwise path for %s", c.str);
        matches_reference_on_one_and_two_threads(&c);
        bufs B;
        bufs_init(&B, &c.d);
        float *yr = calloc(B.ny + 1, 4);
        CHECK_OK(cn_conv2d_fwd(NULL, &c.d, B.x, B.w, c.bias ? B.b : NULL, B.y, NULL));
        cn_act_fwd(NULL, CN_ACT_RELU, 0.0f, B.ny, B.y, B.y);
        CHECK_OK(cn_conv2d_fwd_relu(NULL, &c.d, B.x, B.w, c.bias ? B.b : NULL, yr, NULL));
        CHECK(!memcmp(yr, B.y, B.ny * 4), "fused relu differs for %s", c.str);
        free(yr);
        bufs_free(&B);
    }
}

/* Backward-data of a strided depthwise convolution (AVX-512, channels a
 * multiple of 16) walks each phase of the input-gradient columns, (iw + PL)
 * mod stride, as a stride-1 row over the output gradient, skipping the taps
 * that would read its (unstored) zeros: strides 2 and 3, filters 1-5 wide
 * (some wider than the stride, some narrower, so some phases have no tap),
 * dilation 1-2, rows wide enough for full 8-column tiles in a phase and
 * narrow enough for none, against the reference and on 2 threads bit for
 * bit. The last problem's 9 MiB input gradient is written with streaming
 * stores. */
static void strided_depthwise_backward_data_matches_reference_on_one_and_two_threads(void)
{
    for (int i = 0; i < 41 && tl_ok(); i++) {
        conv_cfg c = {0};
        const int big = i == 40;
        do {
            const int64_t C = big ? 1024 : 16 * (int64_t)tl_randint(1, 3);
            c.p = cn_conv2d_params_default();
            c.p.stride_h = tl_randint(1, 3), c.p.stride_w = tl_randint(2, 3);
            c.p.dil_h = tl_randint(1, 2), c.p.dil_w = tl_randint(1, 2);
            c.p.pad_top = tl_randint(0, 2), c.p.pad_bottom = tl_randint(0, 2);
            c.p.pad_left = tl_randint(0, 2), c.p.pad_right = tl_randint(0, 2);
            c.p.pad_mode = i % 4 ? CN_PAD_ZEROS : (cn_pad_mode)tl_randint(1, CN_PAD_MODE_COUNT - 1);
            c.p.groups = (int)C;
            c.xs[0] = big ? 1 : tl_randint(1, 2), c.xs[1] = big ? 48 : tl_randint(1, 9);
            c.xs[2] = big ? 48 : tl_randint(1, 40), c.xs[3] = C;
            c.ws[0] = big ? 3 : tl_randint(1, 5), c.ws[1] = big ? 3 : tl_randint(1, 5);
            c.ws[2] = 1, c.ws[3] = C;
            c.bias = tl_randint(0, 1);
        } while (cn_conv2d_setup(&c.d, &c.p, c.xs, c.ws) != CN_OK);
        conv_cfg_describe(&c);
        const char *impl = getenv("CN_CONV_IMPL");
        CHECK((impl && strcmp(impl, "vec")) || !strcmp(cn__conv2d_impl_name(&c.d, 1), "depthwise"),
              "expected the depthwise path for %s", c.str);
        if (!big) {
            matches_reference_on_one_and_two_threads(&c);
            continue;
        }
        /* streaming stores need a 64-byte aligned output */
        bufs B;
        bufs_init(&B, &c.d);
        const size_t nx = (B.nx * 4 + 63) / 64 * 64;
        float *gx[2] = {aligned_alloc(64, nx), aligned_alloc(64, nx)};
        cn_ctx two;
        cn_ctx_init(&two);
        two.threads = 2;
        for (int t = 0; t < 2; t++)
            CHECK_OK(cn_conv2d_bwd_data(t ? &two : NULL, &c.d, B.gy, B.w, gx[t], NULL));
        cn__conv2d_ref_bwd_data(&c.d, B.gyd, B.wd, B.gxd);
        (void)agree("grad_input", gx[0], B.gxd, B.nx, c.str);
        CHECK(!memcmp(gx[0], gx[1], B.nx * 4), "1 and 2 threads differ for %s", c.str);
        free(gx[0]), free(gx[1]);
        bufs_free(&B);
    }
}

/* The AVX-512 depthwise and 8-channel-group forwards write outputs over 4
 * MiB with streaming stores when they are 64-byte aligned: forward and
 * backward-data (the same kernels) of such problems against the reference,
 * and on 2 threads bit for bit. Only those passes: the weight gradient's
 * long sums would test the tolerance, not the stores. */
static void large_outputs_match_reference_on_one_and_two_threads(void)
{
    for (int i = 0; i < 3 && tl_ok(); i++) {
        conv_cfg c;
        const int64_t C = i < 2 ? 2048 : 1024, G = i < 2 ? C : C / 8; /* depthwise, 8 a group */
        do {
            conv_cfg_random(&c, i == 1 ? CFG_SAME : CFG_ANY, 7, 1);
            /* the groups dilated: undilated ones take Winograd */
            c.xs[0] = 1, c.xs[1] = c.xs[2] = i < 2 ? 36 : 38, c.xs[3] = C;
            c.ws[0] = c.ws[1] = 3, c.ws[2] = C / G, c.ws[3] = C, c.p.groups = (int)G;
            c.p.stride_h = c.p.stride_w = 1, c.p.dil_h = c.p.dil_w = i < 2 ? 1 : 2;
        } while (cn_conv2d_setup(&c.d, &c.p, c.xs, c.ws) != CN_OK);
        conv_cfg_describe(&c);
        const char *impl = getenv("CN_CONV_IMPL");
        CHECK((impl && strcmp(impl, "vec")) ||
                  !strcmp(cn__conv2d_impl_name(&c.d, 0), i < 2 ? "depthwise" : "grouped"),
              "expected the %s path for %s", i < 2 ? "depthwise" : "grouped", c.str);
        bufs B;
        bufs_init(&B, &c.d);
        const size_t ny = (B.ny * 4 + 63) / 64 * 64, nx = (B.nx * 4 + 63) / 64 * 64;
        float *y[2] = {aligned_alloc(64, ny), aligned_alloc(64, ny)},
              *gx[2] = {aligned_alloc(64, nx), aligned_alloc(64, nx)};
        cn_ctx two;
        cn_ctx_init(&two);
        two.threads = 2;
        for (int t = 0; t < 2; t++) {
            CHECK_OK(
                cn_conv2d_fwd(t ? &two : NULL, &c.d, B.x, B.w, c.bias ? B.b : NULL, y[t], NULL));
            CHECK_OK(cn_conv2d_bwd_data(t ? &two : NULL, &c.d, B.gy, B.w, gx[t], NULL));
        }
        cn__conv2d_ref_fwd(&c.d, B.xd, B.wd, c.bias ? B.bd : NULL, B.yd);
        cn__conv2d_ref_bwd_data(&c.d, B.gyd, B.wd, B.gxd);
        (void)(agree("forward", y[0], B.yd, B.ny, c.str) &&
               agree("grad_input", gx[0], B.gxd, B.nx, c.str));
        CHECK(!memcmp(y[0], y[1], B.ny * 4) && !memcmp(gx[0], gx[1], B.nx * 4),
              "1 and 2 threads differ for %s", c.str);
        free(y[0]), free(y[1]), free(gx[0]), free(gx[1]);
        bufs_free(&B);
    }
}

/* A random problem for the AVX-512 kernel of 8-channel groups taken in
 * pairs (conv2d_grouped.c): 2, 4 or 6 groups of 8 output channels over 1-16
 * input channels, rows up to 15 pixels (full 14-pixel tiles and every
 * remainder; 4 for 1x1 outputs), geometry and edge class as
 * conv_cfg_random draws them. bww: the shapes its weight gradient takes, 8
 * input channels a group and 3-wide kernel rows at stride 1, undilated. */
static void conv_cfg_random_pairs(conv_cfg *c, int kind, int bww)
{
    for (;;) {
        conv_cfg t;
        /* a 1x1 output's kernel covers the input: keep its sums short */
        conv_cfg_random(&t, kind, kind == CFG_1X1_OUTPUT ? 4 : 15, 4);
        const int G = 2 * tl_randint(1, 3), icg = bww ? 8 : tl_randint(1, 16);
        if (bww) {
            t.ws[1] = 3, t.p.stride_w = t.p.dil_w = 1;
            if (kind == CFG_1X1_OUTPUT) t.xs[2] = 3;
        }
        t.p.groups = G;
        t.xs[3] = (int64_t)G * icg;
        t.ws[2] = icg, t.ws[3] = (int64_t)G * 8;
        if (cn_conv2d_setup(&t.d, &t.p, t.xs, t.ws) != CN_OK) continue;
        /* Winograd takes 3x3 stride-1 undilated 8-channel groups (tested
         * with its own error bound below): these are dilated instead */
        if (cn__conv_gwino_applies(&t.d)) {
            t.p.dil_h = 2;
            if (cn_conv2d_setup(&t.d, &t.p, t.xs, t.ws) != CN_OK) continue;
        }
        conv_cfg_describe(&t);
        *c = t;
        return;
    }
}

/* That kernel against the reference on every pass, 1 and 2 threads bit for
 * bit; backward-data at stride 1 runs it on the flipped problem, whose pads
 * are negative where the forward pads exceed the kernel's reach. Where the
 * CPU has AVX-512 and the default kernels run, most problems must reach it
 * and a quarter its weight gradient. */
static void pairs_of_8_channel_groups_match_reference_on_one_and_two_threads(void)
{
    int reached = 0, reached_bww = 0, n = 128;
    for (int i = 0; i < n && tl_ok(); i++) {
        conv_cfg c;
        conv_cfg_random_pairs(&c, i % CFG_KIND_COUNT, i % 2);
        reached += cn__conv_grp8_applies(&c.d) && !strcmp(cn__conv2d_impl_name(&c.d, 0), "grouped");
        reached_bww +=
            cn__conv_grp8_bww_applies(&c.d) && !strcmp(cn__conv2d_impl_name(&c.d, 2), "grouped");
        matches_reference_on_one_and_two_threads(&c);
    }
    const char *impl = getenv("CN_CONV_IMPL");
    if (cn__isa_detect() == CN_ISA_AVX512 && (!impl || !strcmp(impl, "vec"))) {
        CHECK(reached >= n * 3 / 4, "only %d of %d problems ran the paired-group kernel", reached,
              n);
        CHECK(reached_bww >= n / 4, "only %d of %d problems ran its weight gradient", reached_bww,
              n);
    }
}

/* The few-input-channel kernels (AVX-512) must take every one of these
 * problems, every pass, wherever the default path runs with AVX-512, and
 * match the reference on 1 and 2 threads bit-identically; elsewhere the
 * same problems check the kernels that replace them. */
static void few_input_channel_problems_match_reference_on_one_and_two_threads(void)
{
    const char *impl = getenv("CN_CONV_IMPL");
    const int fewch = cn__isa_detect() == CN_ISA_AVX512 && (!impl || !strcmp(impl, "vec"));
    for (int i = 0; i < 160 && tl_ok(); i++) {
        conv_cfg c;
        conv_cfg_random_fewch(&c, i % CFG_KIND_COUNT, 9, i % 16 == 15);
        if (fewch)
            CHECK(!strcmp(cn__conv2d_impl_name(&c.d, 0), "fewch") &&
                      !strcmp(cn__conv2d_impl_name(&c.d, 1), "fewch") &&
                      !strcmp(cn__conv2d_impl_name(&c.d, 2), "fewch"),
                  "%s, %s, %s run for %s", cn__conv2d_impl_name(&c.d, 0),
                  cn__conv2d_impl_name(&c.d, 1), cn__conv2d_impl_name(&c.d, 2), c.str);
        matches_reference_on_one_and_two_threads(&c);
    }
}

/* Winograd F(2x2, 3x3) and F(4x4, 3x3) (3x3, stride 1, >= 16 channels each
 * way; F(4x4) on outputs of 3x3 and more) add and scale by small constants
 * in their transforms, which mix the pixels (and taps) of a tile, so they
 * do not round like the direct sum; their error is bounded normwise
 * instead, as Winograd error analyses do: by the classical bound of a
 * K-term dot product (K terms per output, +16 for the transforms) times the
 * largest sum |x w| of the output. Far below any real mistake, which shows
 * up at the size of the terms themselves. Reports the largest error seen in
 * units of eps * max sum |x w|. */
static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* |got - ref| <= K eps max|aref| for each of n elements, aref the
 * reference over absolute values; worst: the largest error seen, in units
 * of eps max|aref|. */
static void within_winograd_bound(const char *what, const float *got, const double *ref,
                                  const double *aref, size_t n, double K, const char *cfg,
                                  double *worst)
{
    const double s = FLT_EPSILON * max_abs(aref, n);
    for (size_t k = 0; k < n && tl_ok(); k++) {
        const double e = fabs(got[k] - ref[k]);
        if (e / s > *worst) *worst = e / s;
        CHECK(e <= K * s, "%s [%zu]: got %.9g want %.9g (bound %.3g) for %s", what, k, got[k],
              ref[k], K * s, cfg);
    }
}

/* The reference passes of c into B's double buffers, and the same passes
 * over |x|, |w|, |b|, |gy| (the sums the Winograd bound scales with): ay,
 * agx, and with weights agw, agb (else NULL). The caller frees all four. */
typedef struct abs_refs {
    double *ay, *agx, *agw, *agb;
} abs_refs;

static abs_refs references_and_absolute_sums(const conv_cfg *c, bufs *B, int weights)
{
    abs_refs a = {calloc(B->ny + 1, 8), calloc(B->nx + 1, 8), NULL, NULL};
    double *ax = calloc(B->nx + 1, 8), *aw = calloc(B->nw + 1, 8), *ab = calloc(B->nb + 1, 8),
           *agy = calloc(B->ny + 1, 8);
    for (size_t k = 0; k < B->nx; k++) ax[k] = fabs(B->xd[k]);
    for (size_t k = 0; k < B->nw; k++) aw[k] = fabs(B->wd[k]);
    for (size_t k = 0; k < B->nb; k++) ab[k] = fabs(B->bd[k]);
    for (size_t k = 0; k < B->ny; k++) agy[k] = fabs(B->gyd[k]);
    cn__conv2d_ref_fwd(&c->d, B->xd, B->wd, c->bias ? B->bd : NULL, B->yd);
    cn__conv2d_ref_bwd_data(&c->d, B->gyd, B->wd, B->gxd);
    cn__conv2d_ref_bwd_weights(&c->d, B->xd, B->gyd, B->gwd, B->gbd);
    cn__conv2d_ref_fwd(&c->d, ax, aw, c->bias ? ab : NULL, a.ay);
    cn__conv2d_ref_bwd_data(&c->d, agy, aw, a.agx);
    if (weights) {
        a.agw = calloc(B->nw + 1, 8), a.agb = calloc(B->nb + 1, 8);
        cn__conv2d_ref_bwd_weights(&c->d, ax, agy, a.agw, a.agb);
    }
    free(ax), free(aw), free(ab), free(agy);
    return a;
}

static void abs_refs_free(abs_refs *a) { free(a->ay), free(a->agx), free(a->agw), free(a->agb); }

/* Every pass of c (run into B) against the reference within the Winograd
 * bounds: kf and kb terms for the forward and the input gradient, and the
 * weight gradient's sum over N x OH x OW pixels; the bias gradient, summed
 * apart from the kernels, as tightly as everywhere. */
static void passes_within_winograd_bounds(const conv_cfg *c, const bufs *B, const abs_refs *a,
                                          double kf, double kb, double *worst)
{
    within_winograd_bound("forward", B->y, B->yd, a->ay, B->ny, kf, c->str, worst);
    within_winograd_bound("grad_input", B->gx, B->gxd, a->agx, B->nx, kb, c->str, worst);
    within_winograd_bound("grad_weight", B->gw, B->gwd, a->agw, B->nw,
                          (double)(c->d.MB * c->d.OH * c->d.OW) + 16.0, c->str, worst);
    (void)agree("grad_bias", B->gb, B->gbd, B->nb, c->str);
}

/* Whether any pass of d runs a Winograd kernel. */
static int takes_winograd(const cn_conv2d_desc *d)
{
    for (int pass = 0; pass < 3; pass++)
        if (strstr(cn__conv2d_impl_name(d, pass), "winograd")) return 1;
    return 0;
}

static void winograd_error_is_bounded_by_the_absolute_sum_and_thread_independent(void)
{
    double worst = 0;
    int variants[2] = {0, 0}; /* F(2x2), F(4x4) problems seen */
    for (int i = 0; i < 40 && tl_ok(); i++) {
        conv_cfg c;
        for (;;) {
            cn_conv2d_params p = cn_conv2d_params_default();
            p.pad_top = tl_randint(0, 2), p.pad_bottom = tl_randint(0, 2);
            p.pad_left = tl_randint(0, 2), p.pad_right = tl_randint(0, 2);
            p.pad_mode = tl_randint(0, 3) ? CN_PAD_ZEROS : CN_PAD_REFLECT;
            conv_cfg t = {0};
            t.p = p;
            t.xs[0] = tl_randint(1, 2), t.xs[1] = tl_randint(1, 11), t.xs[2] = tl_randint(1, 11);
            t.xs[3] = tl_randint(16, 40);
            t.ws[0] = t.ws[1] = 3, t.ws[2] = t.xs[3], t.ws[3] = tl_randint(16, 40);
            t.bias = tl_randint(0, 1);
            if (cn_conv2d_setup(&t.d, &t.p, t.xs, t.ws) != CN_OK) continue;
            conv_cfg_describe(&t);
            c = t;
            break;
        }
        CHECK(!strncmp(cn__conv2d_impl_name(&c.d, 0), "winograd", 8) &&
                  !strncmp(cn__conv2d_impl_name(&c.d, 1), "winograd", 8) &&
                  !strncmp(cn__conv2d_impl_name(&c.d, 2), "winograd", 8),
              "expected the Winograd path for %s", c.str);
        variants[!strcmp(cn__conv2d_impl_name(&c.d, 0), "winograd4")]++;
        bufs B;
        bufs_init(&B, &c.d);
        if (run_all_passes(&c, &B)) {
            abs_refs a = references_and_absolute_sums(&c, &B, 1);
            passes_within_winograd_bounds(&c, &B, &a, 9.0 * (double)c.d.IC + 16.0,
                                          9.0 * (double)c.d.OC + 16.0, &worst);
            abs_refs_free(&a);
            same_bits_on_two_threads(&c, &B);
        }
        bufs_free(&B);
    }
    CHECK(variants[0] && variants[1], "F(2x2) in %d and F(4x4) in %d problems", variants[0],
          variants[1]);
    printf("     largest Winograd error: %.2f eps * max sum |x w|\n", worst);
}

/* Winograd F(4x4, 3x3) for groups of 8 input and 8 output channels, four
 * groups a vector pair (grouped-winograd4, AVX-512), serves every pass of
 * 3x3 stride-1 problems whose groups are a multiple of 4. Random such
 * problems, images from 1x1 (every tile overhangs) to 13x13, pads from 0
 * to 3, zero and reflected, 4 to 48 groups (48 and 128: the weight
 * gradient transforms blocks of 32), and one whose output is large
 * enough for streaming stores (64-byte aligned): all three passes within
 * the Winograd bound above (9 * 8 terms a sum forward and backward-data,
 * N x OH x OW for the weight gradient), the bias gradient within the usual
 * tolerance, the fused ReLU equal to the ReLU of the forward, and on 2
 * threads bit for bit; the weight and bias gradients the same bits when
 * the other is not asked for. Where the CPU has AVX-512 and the default
 * kernels run, every problem must reach it in every pass. */
static void grouped_winograd_error_is_bounded_and_thread_independent(void)
{
    const char *impl = getenv("CN_CONV_IMPL");
    const int gwino = cn__isa_detect() == CN_ISA_AVX512 && (!impl || !strcmp(impl, "vec"));
    double worst = 0;
    const int n = 48;
    for (int i = 0; i < n + gwino && tl_ok(); i++) {
        const int big = i == n; /* 36 x 36 x 1024: a 5.3 MB output */
        conv_cfg c;
        for (;;) {
            static const int groups[] = {4, 8, 12, 16, 32, 48};
            conv_cfg t = {0};
            t.p = cn_conv2d_params_default();
            /* pads of 3 make backward-data's pads negative */
            t.p.pad_top = tl_randint(0, 3), t.p.pad_bottom = tl_randint(0, 3);
            t.p.pad_left = tl_randint(0, 3), t.p.pad_right = tl_randint(0, 3);
            t.p.pad_mode = tl_randint(0, 3) ? CN_PAD_ZEROS : CN_PAD_REFLECT;
            t.p.groups = big ? 128 : groups[tl_randint(0, 5)];
            t.xs[0] = big ? 1 : tl_randint(1, 3);
            t.xs[1] = big ? 36 : tl_randint(1, 13), t.xs[2] = big ? 36 : tl_randint(1, 13);
            t.xs[3] = 8 * (int64_t)t.p.groups;
            t.ws[0] = t.ws[1] = 3, t.ws[2] = 8, t.ws[3] = t.xs[3];
            t.bias = tl_randint(0, 1);
            if (cn_conv2d_setup(&t.d, &t.p, t.xs, t.ws) != CN_OK) continue;
            conv_cfg_describe(&t);
            c = t;
            break;
        }
        if (gwino)
            CHECK(!strcmp(cn__conv2d_impl_name(&c.d, 0), "grouped-winograd4") &&
                      !strcmp(cn__conv2d_impl_name(&c.d, 1), "grouped-winograd4") &&
                      !strcmp(cn__conv2d_impl_name(&c.d, 2), "grouped-winograd4"),
                  "%s, %s, %s run for %s", cn__conv2d_impl_name(&c.d, 0),
                  cn__conv2d_impl_name(&c.d, 1), cn__conv2d_impl_name(&c.d, 2), c.str);
        bufs B;
        bufs_init(&B, &c.d);
        const size_t ny = (B.ny * 4 + 63) / 64 * 64, nx = (B.nx * 4 + 63) / 64 * 64;
        float *y2 = aligned_alloc(64, ny), *gx2 = aligned_alloc(64, nx),
              *yr = aligned_alloc(64, ny);
        free(B.y), free(B.gx);
        B.y = aligned_alloc(64, ny), B.gx = aligned_alloc(64, nx);
        if (run_all_passes(&c, &B)) {
            abs_refs a = references_and_absolute_sums(&c, &B, 1);
            passes_within_winograd_bounds(&c, &B, &a, 9.0 * 8 + 16.0, 9.0 * 8 + 16.0, &worst);
            abs_refs_free(&a);
            /* the fused ReLU, and every pass again on 2 threads */
            cn_ctx two;
            cn_ctx_init(&two);
            two.threads = 2;
            const float *b = c.bias ? B.b : NULL;
            float *gw2 = calloc(B.nw + 1, 4), *gb2 = calloc(B.nb + 1, 4);
            CHECK_OK(cn_conv2d_fwd_relu(NULL, &c.d, B.x, B.w, b, yr, NULL));
            CHECK_OK(cn_conv2d_fwd(&two, &c.d, B.x, B.w, b, y2, NULL));
            CHECK_OK(cn_conv2d_bwd_data(&two, &c.d, B.gy, B.w, gx2, NULL));
            CHECK_OK(cn_conv2d_bwd_weights(&two, &c.d, B.x, B.gy, gw2, gb2, NULL));
            CHECK(!memcmp(y2, B.y, B.ny * 4) && !memcmp(gx2, B.gx, B.nx * 4) &&
                      !memcmp(gw2, B.gw, B.nw * 4) && !memcmp(gb2, B.gb, B.nb * 4),
                  "1 and 2 threads differ for %s", c.str);
            memset(gw2, 0, B.nw * 4), memset(gb2, 0, B.nb * 4);
            CHECK_OK(cn_conv2d_bwd_weights(NULL, &c.d, B.x, B.gy, gw2, NULL, NULL));
            CHECK_OK(cn_conv2d_bwd_weights(&two, &c.d, B.x, B.gy, NULL, gb2, NULL));
            CHECK(!memcmp(gw2, B.gw, B.nw * 4) && !memcmp(gb2, B.gb, B.nb * 4),
                  "weight or bias gradient alone differs for %s", c.str);
            free(gw2), free(gb2);
            cn_act_fwd(NULL, CN_ACT_RELU, 0.0f, B.ny, B.y, B.y);
            CHECK(!memcmp(yr, B.y, B.ny * 4), "fused relu differs for %s", c.str);
        }
        free(y2), free(gx2), free(yr);
        bufs_free(&B);
    }
    printf("     largest grouped Winograd error: %.2f eps * max sum |x w|\n", worst);
}

/* cn_conv2d_fwd_relu applies the ReLU as each kernel writes its output: bit
 * for bit cn_conv2d_fwd then cn_act_fwd's relu, NaN included, whichever
 * kernel runs (generic, wide-channel, paired-group, few-input-channel and Winograd-sized
 * problems). */
static void fused_relu_forward_equals_relu_of_the_forward(void)
{
    for (int i = 0; i < 90 && tl_ok(); i++) {
        conv_cfg c;
        if (i % 3 == 0 && i % 2)
            conv_cfg_random_pairs(&c, i % CFG_KIND_COUNT, i % 4 == 1);
        else if (i % 3 == 0)
            conv_cfg_random(&c, i % CFG_KIND_COUNT, 9, 4);
        else if (i % 6 == 1)
            conv_cfg_random_wide(&c, i % CFG_KIND_COUNT, 7);
        else if (i % 3 == 1)
            conv_cfg_random_fewch(&c, i % CFG_KIND_COUNT, 9, 0);
        else {
            for (;;) {
                conv_cfg t = {0};
                t.p = cn_conv2d_params_default();
                t.p.pad_top = t.p.pad_left = tl_randint(0, 1), t.p.pad_bottom = t.p.pad_right = 1;
                t.xs[0] = 2, t.xs[1] = tl_randint(2, 9), t.xs[2] = tl_randint(2, 9);
                t.xs[3] = tl_randint(16, 24);
                t.ws[0] = t.ws[1] = 3, t.ws[2] = t.xs[3], t.ws[3] = tl_randint(16, 24);
                t.bias = 1;
                if (cn_conv2d_setup(&t.d, &t.p, t.xs, t.ws) != CN_OK) continue;
                conv_cfg_describe(&t);
                c = t;
                break;
            }
        }
        bufs B;
        bufs_init(&B, &c.d);
        if (i % 4 == 0) B.x[0] = NAN;
        float *yr = calloc(B.ny + 1, 4);
        CHECK_OK(cn_conv2d_fwd(NULL, &c.d, B.x, B.w, c.bias ? B.b : NULL, B.y, NULL));
        cn_act_fwd(NULL, CN_ACT_RELU, 0.0f, B.ny, B.y, B.y);
        CHECK_OK(cn_conv2d_fwd_relu(NULL, &c.d, B.x, B.w, c.bias ? B.b : NULL, yr, NULL));
        CHECK(!memcmp(yr, B.y, B.ny * 4), "fused relu differs (%s) for %s",
              cn__conv2d_impl_name(&c.d, 0), c.str);
        free(yr);
        bufs_free(&B);
    }
}

/* L(x, w, b) = <r, conv(x, w) + b> with the reference in double: its
 * gradient is exactly what the backward passes compute for gy = r. */
static double loss(const cn_conv2d_desc *d, const double *x, const double *w, const double *b,
                   const double *r, double *y)
{
    cn__conv2d_ref_fwd(d, x, w, b, y);
    double s = 0;
    for (size_t i = 0; i < cfg_ny(d); i++) s += r[i] * y[i];
    return s;
}

/* Central differences of L along each coordinate of v (x, w or b). */
static void numeric_grad(const cn_conv2d_desc *d, bufs *B, double *v, size_t n, double *g)
{
    const double h = 1e-3; /* L is linear in each argument: no truncation error */
    for (size_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + h;
        double lp = loss(d, B->xd, B->wd, B->bd, B->gyd, B->yd);
        v[i] = keep - h;
        double lm = loss(d, B->xd, B->wd, B->bd, B->gyd, B->yd);
        v[i] = keep;
        g[i] = (lp - lm) / (2 * h);
    }
}

static void every_backward_matches_central_differences(void)
{
    for (int i = 0; i < 120 && tl_ok(); i++) {
        conv_cfg c;
        conv_cfg_random(&c, i % CFG_KIND_COUNT, 6, 3);
        c.bias = 1;
        bufs B;
        bufs_init(&B, &c.d);
        double *num = calloc(B.nx + B.nw + B.nb + 1, sizeof *num);
        double *ref = calloc(B.nx + B.nw + B.nb + 1, sizeof *ref);
        if (run_all_passes(&c, &B)) {
            numeric_grad(&c.d, &B, B.xd, B.nx, num);
            numeric_grad(&c.d, &B, B.wd, B.nw, num + B.nx);
            numeric_grad(&c.d, &B, B.bd, B.nb, num + B.nx + B.nw);
            /* The reference's adjoint loops first, tightly (double vs double)... */
            cn__conv2d_ref_bwd_data(&c.d, B.gyd, B.wd, ref);
            cn__conv2d_ref_bwd_weights(&c.d, B.xd, B.gyd, ref + B.nx, ref + B.nx + B.nw);
            double err;
            long bad = tl_mismatch_d(ref, num, B.nx + B.nw + B.nb, 1e-9, 1e-9, &err);
            if (bad >= 0)
                tl_fail(__FILE__, __LINE__,
                        "reference backward differs from finite differences at %ld "
                        "(x:%zu w:%zu b:%zu): %.12g vs %.12g for %s",
                        bad, B.nx, B.nw, B.nb, ref[bad], num[bad], c.str);
            /* ...then the library's float passes. */
            else if (agree("grad_input vs finite differences", B.gx, num, B.nx, c.str) &&
                     agree("grad_weight vs finite differences", B.gw, num + B.nx, B.nw, c.str))
                agree("grad_bias vs finite differences", B.gb, num + B.nx + B.nw, B.nb, c.str);
        }
        free(num), free(ref);
        bufs_free(&B);
    }
}

/* The gradients B holds (from run_all_passes) against central differences
 * of the reference's loss, within the Winograd bounds (kb terms for the
 * input gradient, N x OH x OW for the weight gradient); the bias gradient
 * as tightly as everywhere. */
static void gradients_within_winograd_bounds_of_differences(const conv_cfg *c, bufs *B,
                                                            const abs_refs *a, double kb,
                                                            double *worst)
{
    double *num = calloc(B->nx + B->nw + B->nb + 1, sizeof *num);
    numeric_grad(&c->d, B, B->xd, B->nx, num);
    numeric_grad(&c->d, B, B->wd, B->nw, num + B->nx);
    numeric_grad(&c->d, B, B->bd, B->nb, num + B->nx + B->nw);
    within_winograd_bound("grad_input vs finite differences", B->gx, num, a->agx, B->nx, kb, c->str,
                          worst);
    within_winograd_bound("grad_weight vs finite differences", B->gw, num + B->nx, a->agw, B->nw,
                          (double)(c->d.MB * c->d.OH * c->d.OW) + 16.0, c->str, worst);
    (void)agree("grad_bias vs finite differences", B->gb, num + B->nx + B->nw, B->nb, c->str);
    free(num);
}

/* The grouped Winograd kernel's gradients (every pass grouped-winograd4
 * where the CPU has AVX-512 and the default kernels run) against central
 * differences directly, within the Winograd bounds above: small problems
 * of 4 groups, zero and reflected pads. */
static void grouped_winograd_gradients_match_central_differences(void)
{
    const char *impl = getenv("CN_CONV_IMPL");
    const int gwino = cn__isa_detect() == CN_ISA_AVX512 && (!impl || !strcmp(impl, "vec"));
    double worst = 0;
    for (int i = 0; i < 4 && tl_ok(); i++) {
        conv_cfg c;
        for (;;) {
            conv_cfg t = {0};
            t.p = cn_conv2d_params_default();
            t.p.pad_top = tl_randint(0, 2), t.p.pad_bottom = tl_randint(0, 2);
            t.p.pad_left = tl_randint(0, 2), t.p.pad_right = tl_randint(0, 2);
            t.p.pad_mode = i % 2 ? CN_PAD_REFLECT : CN_PAD_ZEROS;
            t.p.groups = 4;
            t.xs[0] = 1, t.xs[1] = tl_randint(2, 5), t.xs[2] = tl_randint(2, 5), t.xs[3] = 32;
            t.ws[0] = t.ws[1] = 3, t.ws[2] = 8, t.ws[3] = 32;
            t.bias = 1;
            if (cn_conv2d_setup(&t.d, &t.p, t.xs, t.ws) != CN_OK) continue;
            conv_cfg_describe(&t);
            c = t;
            break;
        }
        for (int pass = 0; pass < 3 && gwino; pass++)
            CHECK(!strcmp(cn__conv2d_impl_name(&c.d, pass), "grouped-winograd4"), "%s runs for %s",
                  cn__conv2d_impl_name(&c.d, pass), c.str);
        bufs B;
        bufs_init(&B, &c.d);
        if (run_all_passes(&c, &B)) {
            abs_refs a = references_and_absolute_sums(&c, &B, 1);
            gradients_within_winograd_bounds_of_differences(&c, &B, &a, 9.0 * 8 + 16.0, &worst);
            abs_refs_free(&a);
        }
        bufs_free(&B);
    }
}

/* Dilated 3x3 stride-1 layers whose sizes and pads divide by the dilation
 * run Winograd on the dilation's phases (winograd*-phases: DH*DW undilated
 * problems as one batch): every pass within the Winograd bounds, the bias
 * gradient as the reference's, the same bits on 2 threads. Dilations 1-3
 * each way (not both 1), zero pads and reflected ones (padded first, so
 * the padded size must divide), bias or not. The first two, 16 channels
 * over 2x2 phases of 2x2 pixels, are also checked against central
 * differences directly. */
static void dilated_winograd_phases_are_bounded_and_thread_independent(void)
{
    double worst = 0;
    for (int i = 0; i < 24 && tl_ok(); i++) {
        conv_cfg c;
        for (;;) {
            conv_cfg t = {0};
            t.p = cn_conv2d_params_default();
            const int dh = tl_randint(1, 3), dw = dh == 1 ? tl_randint(2, 3) : tl_randint(1, 3);
            t.p.dil_h = dh, t.p.dil_w = dw;
            t.p.pad_top = dh * tl_randint(0, 2), t.p.pad_bottom = dh * tl_randint(0, 2);
            t.p.pad_left = dw * tl_randint(0, 2), t.p.pad_right = dw * tl_randint(0, 2);
            t.p.pad_mode = i % 4 == 3 ? CN_PAD_REFLECT : CN_PAD_ZEROS;
            t.xs[0] = tl_randint(1, 2), t.xs[1] = dh * tl_randint(1, 5);
            t.xs[2] = dw * tl_randint(1, 5), t.xs[3] = tl_randint(16, 40);
            t.ws[0] = t.ws[1] = 3, t.ws[2] = t.xs[3], t.ws[3] = tl_randint(16, 40);
            if (i < 2) { /* small enough for central differences */
                t.p.dil_h = t.p.dil_w = 2, t.p.pad_top = t.p.pad_left = 2;
                t.p.pad_bottom = t.p.pad_right = 2 * i;
                t.xs[0] = 1, t.xs[1] = t.xs[2] = 4, t.xs[3] = t.ws[2] = t.ws[3] = 16;
            }
            t.bias = tl_randint(0, 1);
            if (cn_conv2d_setup(&t.d, &t.p, t.xs, t.ws) != CN_OK) continue;
            conv_cfg_describe(&t);
            c = t;
            break;
        }
        for (int pass = 0; pass < 3; pass++)
            CHECK(strstr(cn__conv2d_impl_name(&c.d, pass), "winograd") &&
                      strstr(cn__conv2d_impl_name(&c.d, pass), "-phases"),
                  "%s runs for %s", cn__conv2d_impl_name(&c.d, pass), c.str);
        bufs B;
        bufs_init(&B, &c.d);
        if (run_all_passes(&c, &B)) {
            abs_refs a = references_and_absolute_sums(&c, &B, 1);
            passes_within_winograd_bounds(&c, &B, &a, 9.0 * (double)c.d.IC + 16.0,
                                          9.0 * (double)c.d.OC + 16.0, &worst);
            if (i < 2) /* the adjoints themselves, against central differences */
                gradients_within_winograd_bounds_of_differences(
                    &c, &B, &a, 9.0 * (double)c.d.OC + 16.0, &worst);
            abs_refs_free(&a);
            same_bits_on_two_threads(&c, &B);
        }
        bufs_free(&B);
    }
    printf("     largest error through the phases: %.2f eps * max sum |x w|\n", worst);
}

static void integer_inputs_give_exact_results(void)
{
    /* Small integers make every float sum exact, so fp32 must equal the
     * double reference bit for bit (oneDNN's benchdnn trick). */
    for (int i = 0; i < 100 && tl_ok(); i++) {
        conv_cfg c;
        conv_cfg_random(&c, i % CFG_KIND_COUNT, 8, 4);
        if (c.p.pad_mode == CN_PAD_MEAN) continue; /* means are fractions */
        bufs B;
        bufs_init(&B, &c.d);
        for (size_t k = 0; k < B.nx; k++) B.xd[k] = B.x[k] = (float)tl_randint(-4, 4);
        for (size_t k = 0; k < B.nw; k++) B.wd[k] = B.w[k] = (float)tl_randint(-4, 4);
        for (size_t k = 0; k < B.ny; k++) B.gyd[k] = B.gy[k] = (float)tl_randint(-4, 4);
        if (run_all_passes(&c, &B)) {
            cn__conv2d_ref_fwd(&c.d, B.xd, B.wd, c.bias ? B.bd : NULL, B.yd);
            cn__conv2d_ref_bwd_data(&c.d, B.gyd, B.wd, B.gxd);
            cn__conv2d_ref_bwd_weights(&c.d, B.xd, B.gyd, B.gwd, NULL);
            if (!c.bias && tl_mismatch(B.y, B.yd, B.ny, 0, 0, NULL) >= 0)
                tl_fail(__FILE__, __LINE__, "forward not exact for %s", c.str);
            if (tl_mismatch(B.gx, B.gxd, B.nx, 0, 0, NULL) >= 0)
                tl_fail(__FILE__, __LINE__, "grad_input not exact for %s", c.str);
            if (tl_mismatch(B.gw, B.gwd, B.nw, 0, 0, NULL) >= 0)
                tl_fail(__FILE__, __LINE__, "grad_weight not exact for %s", c.str);
        }
        bufs_free(&B);
    }
}

/* Inputs of B drawn from the integers -2..2, in float and double alike:
 * every sum of the passes is then exact, in any order. */
static void integer_inputs(bufs *B)
{
    for (size_t k = 0; k < B->nx; k++) B->xd[k] = B->x[k] = (float)tl_randint(-2, 2);
    for (size_t k = 0; k < B->nw; k++) B->wd[k] = B->w[k] = (float)tl_randint(-2, 2);
    for (size_t k = 0; k < B->nb; k++) B->bd[k] = B->b[k] = (float)tl_randint(-2, 2);
    for (size_t k = 0; k < B->ny; k++) B->gyd[k] = B->gy[k] = (float)tl_randint(-2, 2);
}

/* B's outputs (from run_all_passes on integer_inputs) must equal the
 * reference's bit for bit. */
static void exact_against_reference(const conv_cfg *c, bufs *B)
{
    cn__conv2d_ref_fwd(&c->d, B->xd, B->wd, c->bias ? B->bd : NULL, B->yd);
    cn__conv2d_ref_bwd_data(&c->d, B->gyd, B->wd, B->gxd);
    cn__conv2d_ref_bwd_weights(&c->d, B->xd, B->gyd, B->gwd, B->gbd);
    if (tl_mismatch(B->y, B->yd, B->ny, 0, 0, NULL) >= 0)
        tl_fail(__FILE__, __LINE__, "forward not exact for %s", c->str);
    if (tl_mismatch(B->gx, B->gxd, B->nx, 0, 0, NULL) >= 0)
        tl_fail(__FILE__, __LINE__, "grad_input not exact for %s", c->str);
    if (tl_mismatch(B->gw, B->gwd, B->nw, 0, 0, NULL) >= 0)
        tl_fail(__FILE__, __LINE__, "grad_weight not exact for %s", c->str);
}

/* Deep channels (32-72 per group) take the GEMM path's tap-by-tap
 * implicit kernel on AVX-512: output rows longer and shorter than its
 * 14-pixel tiles, output channels off its 32-column slivers, taps partly
 * and wholly in the padding (rows [1, 14), [2, 14), [0, 13), [0, 12) and
 * [1, 13) of a tile among them), weight-gradient tiles across two taps.
 * Integer inputs make every sum exact, so all passes must equal the
 * reference bit for bit, on 1 and 2 threads. */
static void deep_channel_problems_are_exact_on_one_and_two_threads(void)
{
    for (int i = 0; i < 24 && tl_ok(); i++) {
        conv_cfg c = {0};
        do {
            cn_conv2d_params p = cn_conv2d_params_default();
            p.groups = tl_randint(1, 2);
            p.stride_h = tl_randint(1, 2), p.stride_w = tl_randint(1, 3);
            p.dil_h = tl_randint(1, 2), p.dil_w = tl_randint(1, 2);
            p.pad_top = tl_randint(0, 2), p.pad_bottom = tl_randint(0, 2);
            p.pad_left = tl_randint(0, 3), p.pad_right = tl_randint(0, 3);
            const int icg = tl_randint(32, 72), ocg = tl_randint(1, 72);
            c.p = p;
            c.xs[0] = tl_randint(1, 2), c.xs[1] = tl_randint(1, 9), c.xs[2] = tl_randint(1, 40);
            c.xs[3] = (int64_t)p.groups * icg;
            c.ws[0] = tl_randint(1, 3), c.ws[1] = tl_randint(1, 3), c.ws[2] = icg;
            c.ws[3] = (int64_t)p.groups * ocg;
            c.bias = tl_randint(0, 1);
            /* The resnet's strided layers, scaled down: 7-pixel output rows
             * and stride-2 phases of 7 (the 7 x 64 kernel, with a partial
             * second column block at 72 channels), and strided 1x1 filters
             * (rows and phases that no tap reaches, cleared). */
            if (i >= 2 && i < 6) {
                const int k = i < 4 ? 3 : 1, w = i % 2 ? 28 : 14;
                c.p.groups = 1, c.p.stride_h = c.p.stride_w = 2, c.p.dil_h = c.p.dil_w = 1;
                c.p.pad_top = c.p.pad_bottom = c.p.pad_left = c.p.pad_right = k / 2;
                c.xs[0] = 1, c.xs[1] = 5, c.xs[2] = w, c.xs[3] = icg;
                c.ws[0] = c.ws[1] = k, c.ws[3] = i % 2 ? 40 : 72;
            }
            /* The weight gradient's own tilings: 32 channels into 64 through
             * a 1x1 stride-2 filter (7 x 64 tiles, the last one short), and
             * a pointwise layer whose rows are longer than a batch */
            if (i == 6 || i == 7) {
                c.p = cn_conv2d_params_default();
                c.p.stride_h = c.p.stride_w = i == 6 ? 2 : 1;
                c.xs[0] = 1, c.xs[1] = i == 6 ? 6 : 2, c.xs[2] = i == 6 ? 14 : 230;
                c.xs[3] = c.ws[2] = i == 6 ? 32 : icg;
                c.ws[0] = c.ws[1] = 1, c.ws[3] = i == 6 ? 64 : 40;
            }
            /* A 1D pointwise layer on one long signal: one output row,
             * longer than a GEMM chunk, so that the weight gradient's
             * parts (one per chunk) outnumber the rows (it once summed
             * parts that no row had written) */
            if (i == 8) {
                c.p = cn_conv2d_params_default();
                c.xs[0] = 1, c.xs[1] = 1, c.xs[2] = 3000, c.xs[3] = c.ws[2] = icg;
                c.ws[0] = c.ws[1] = 1, c.ws[3] = 40;
            }
            /* Weights packed into panels of 64 channels (more than 64 in
             * all, a multiple of 64 a group), with 14- and 7-pixel tiles;
             * and weights over 512 KiB, cut into blocks of channels that
             * groups of rows take in turn, the last block and group short:
             * r50's 512 -> 1024 1x1 stride-2 layer, scaled down, and a
             * 3x3 stride-2 layer of 128 -> 256 channels, whose weight
             * gradient (over 1 MiB) the threads split by tiles. The weight
             * gradient packs gy from 512 output channels on (the last
             * panel short at 520) and x's pixels from 1024 floats apart.
             * {groups, ICG, OCG, filter side, H, W}, stride 2. */
            if (i >= 9 && i < 13) {
                static const int64_t shape[4][6] = {{2, 64, 64, 3, 9, 41},
                                                    {1, 512, 320, 1, 9, 28},
                                                    {1, 128, 256, 3, 14, 14},
                                                    {1, 64, 520, 3, 6, 20}};
                const int64_t *q = shape[i - 9];
                c.p = cn_conv2d_params_default();
                c.p.groups = q[0], c.p.stride_h = c.p.stride_w = 2;
                c.p.pad_top = c.p.pad_bottom = c.p.pad_left = c.p.pad_right = q[3] / 2;
                c.xs[0] = 2, c.xs[1] = q[4], c.xs[2] = q[5], c.xs[3] = q[0] * q[1];
                c.ws[0] = c.ws[1] = q[3], c.ws[2] = q[1], c.ws[3] = q[0] * q[2];
            }
            /* Rows 2-13 of the 14-pixel tiles of the taps with kw = 0 read
             * the input (3 pixels of padding, stride 2): the batch kernel
             * has literal row ranges for such border taps */
            if (i == 13) {
                c.p = cn_conv2d_params_default();
                c.p.stride_h = c.p.stride_w = 2;
                c.p.pad_top = c.p.pad_bottom = c.p.pad_left = c.p.pad_right = 3;
                c.xs[0] = 1, c.xs[1] = 4, c.xs[2] = 29, c.xs[3] = c.ws[2] = 32;
                c.ws[0] = c.ws[1] = 3, c.ws[3] = 32;
            }
            /* Winograd (3x3 stride 1, ungrouped: undilated, or dilated
             * through its phases) is not exact */
        } while (cn_conv2d_setup(&c.d, &c.p, c.xs, c.ws) != CN_OK || takes_winograd(&c.d));
        conv_cfg_describe(&c);
        bufs B;
        bufs_init(&B, &c.d);
        integer_inputs(&B);
        if (run_all_passes(&c, &B)) {
            exact_against_reference(&c, &B);
            same_bits_on_two_threads(&c, &B);
        }
        bufs_free(&B);
    }
}

/* With integer inputs, cn__conv2d_bwd_data_acc on r must give r + the
 * gradient bit for bit, on 1 and 2 threads, where backward-data
 * accumulates; elsewhere it must refuse. *added: whether it added. */
static void adds_exactly_what_it_writes(const conv_cfg *c, cn_ctx *two, int *added)
{
    *added = 0;
    bufs B;
    bufs_init(&B, &c->d);
    for (size_t k = 0; k < B.nw; k++) B.w[k] = (float)tl_randint(-2, 2);
    for (size_t k = 0; k < B.ny; k++) B.gy[k] = (float)tl_randint(-2, 2);
    float *r = calloc(B.nx + 1, 4), *acc1 = calloc(B.nx + 1, 4), *acc2 = calloc(B.nx + 1, 4);
    for (size_t k = 0; k < B.nx; k++) r[k] = (float)tl_randint(-2, 2);
    memcpy(acc1, r, B.nx * 4), memcpy(acc2, r, B.nx * 4);
    void *ws = malloc(cn_conv2d_workspace_size(&c->d) + 1);
    if (!cn__conv2d_bwd_data_accumulates(&c->d)) {
        CHECK(cn__conv2d_bwd_data_acc(NULL, &c->d, B.gy, B.w, acc1, ws) == CN_ERR_INVALID_ARG,
              "accumulating backward-data accepted for %s", c->str);
    } else {
        CHECK_OK(cn_conv2d_bwd_data(NULL, &c->d, B.gy, B.w, B.gx, ws));
        CHECK_OK(cn__conv2d_bwd_data_acc(NULL, &c->d, B.gy, B.w, acc1, ws));
        CHECK_OK(cn__conv2d_bwd_data_acc(two, &c->d, B.gy, B.w, acc2, NULL));
        size_t k = 0;
        while (k < B.nx && acc1[k] == r[k] + B.gx[k]) k++;
        CHECK(k == B.nx, "r + grad_input: got %g want %g + %g at %zu (%s) for %s",
              (double)acc1[k % (B.nx + 1)], (double)r[k % (B.nx + 1)], (double)B.gx[k % (B.nx + 1)],
              k, cn__conv2d_impl_name(&c->d, 1), c->str);
        CHECK(!memcmp(acc1, acc2, B.nx * 4), "1 and 2 threads add differently for %s", c->str);
        *added = 1;
    }
    free(ws), free(r), free(acc1), free(acc2);
    bufs_free(&B);
}

/* Backward-data that adds to gx (the autograd's second consumer of an
 * input) must add exactly what it would write: r + the gradient, bit for
 * bit, from integer inputs (where the kernels' sums are exact, and
 * Winograd's rounding is the same in both), on 1 and 2 threads. Problems
 * from the random generator, few input channels, deep channels (the
 * implicit kernels: strided 1x1 filters leave pixels that no tap reaches,
 * which must keep r) and Winograd's 3x3. Kernels that cannot add in place
 * refuse. */
static void accumulating_backward_data_adds_exactly_what_it_writes(void)
{
    cn_ctx two;
    cn_ctx_init(&two);
    two.threads = 2;
    int added = 0, refused = 0;
    for (int i = 0; i < 120 && tl_ok(); i++) {
        conv_cfg c = {0};
        if (i % 6 == 0) {
            conv_cfg_random(&c, i / 3 % CFG_KIND_COUNT, 9, 4);
        } else if (i % 6 == 3) {
            conv_cfg_random_fewch(&c, i / 3 % CFG_KIND_COUNT, 9, 0);
        } else {
            const int wino = i % 3 == 2;
            do {
                cn_conv2d_params p = cn_conv2d_params_default();
                const int k = wino || tl_randint(0, 1) ? 3 : 1, s = wino ? 1 : tl_randint(1, 2);
                p.stride_h = p.stride_w = s;
                p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = k / 2;
                c.p = p;
                c.xs[0] = tl_randint(1, 2), c.xs[1] = tl_randint(1, 9), c.xs[2] = tl_randint(1, 30);
                c.xs[3] = c.ws[2] = wino ? tl_randint(16, 40) : tl_randint(32, 72);
                c.ws[0] = c.ws[1] = k, c.ws[3] = wino ? tl_randint(16, 40) : tl_randint(32, 72);
            } while (cn_conv2d_setup(&c.d, &c.p, c.xs, c.ws) != CN_OK);
            conv_cfg_describe(&c);
        }
        int one;
        adds_exactly_what_it_writes(&c, &two, &one);
        added += one, refused += !one;
    }
    /* the direct loops never add in place; every other path has problems that do */
    const char *impl = getenv("CN_CONV_IMPL");
    CHECK(impl && !strcmp(impl, "direct") ? added == 0 : added > 0,
          "%d problems added in place, %d refused", added, refused);
}

/* The few-input-channel backward-data (AVX-512) sums a row's pixels in
 * tiles of 16, 12, 8 or 6 (C_in = 1, 2, 3, 4) along each column phase where
 * every tap lies inside gy, a last tile overlapping the one before it, and
 * single pixels at the borders: rows of 1 to 60 pixels, strides 1-3,
 * dilations 1-2, 16 to 80 output channels (the tiles' constant 16 and 32
 * and run-time widths), against the reference on 1 and 2 threads, and
 * adding in place exactly. */
static void few_input_channel_backward_data_tiles_match_reference(void)
{
    const char *impl = getenv("CN_CONV_IMPL");
    const int fewch = cn__isa_detect() == CN_ISA_AVX512 && (!impl || !strcmp(impl, "vec"));
    cn_ctx two;
    cn_ctx_init(&two);
    two.threads = 2;
    for (int i = 0; i < 80 && tl_ok(); i++) {
        conv_cfg c = {0};
        do {
            cn_conv2d_params p = cn_conv2d_params_default();
            p.stride_h = tl_randint(1, 2), p.stride_w = tl_randint(1, 3);
            p.dil_h = tl_randint(1, 2), p.dil_w = i % 3 ? 1 : 2;
            p.pad_top = tl_randint(0, 2), p.pad_bottom = tl_randint(0, 2);
            p.pad_left = tl_randint(0, 3), p.pad_right = tl_randint(0, 3);
            c.p = p;
            c.xs[0] = tl_randint(1, 2), c.xs[1] = tl_randint(1, 5), c.xs[2] = tl_randint(1, 60);
            c.xs[3] = c.ws[2] = i % 4 + 1;
            c.ws[0] = tl_randint(1, 3), c.ws[1] = tl_randint(1, 7), c.ws[3] = 16 * tl_randint(1, 5);
            c.bias = i % 2;
        } while (cn_conv2d_setup(&c.d, &c.p, c.xs, c.ws) != CN_OK);
        conv_cfg_describe(&c);
        if (fewch)
            CHECK(!strcmp(cn__conv2d_impl_name(&c.d, 1), "fewch"), "%s runs for %s",
                  cn__conv2d_impl_name(&c.d, 1), c.str);
        matches_reference_on_one_and_two_threads(&c);
        int added;
        adds_exactly_what_it_writes(&c, &two, &added);
        CHECK(added || !fewch || !tl_ok(),
              "the few-input-channel kernel did not add in place for %s", c.str);
    }
}

static void one_and_two_threads_give_bit_identical_results(void)
{
    cn_ctx one, two;
    cn_ctx_init(&one), cn_ctx_init(&two);
    two.threads = 2;
    for (int i = 0; i < 60 && tl_ok(); i++) {
        conv_cfg c;
        conv_cfg_random(&c, i % CFG_KIND_COUNT, 9, 4);
        bufs A;
        bufs_init(&A, &c.d);
        float *out[2][4];
        for (int t = 0; t < 2; t++) {
            out[t][0] = calloc(A.ny + 1, 4), out[t][1] = calloc(A.nx + 1, 4);
            out[t][2] = calloc(A.nw + 1, 4), out[t][3] = calloc(A.nb + 1, 4);
            cn_ctx *ctx = t ? &two : &one;
            CHECK_OK(cn_conv2d_fwd(ctx, &c.d, A.x, A.w, A.b, out[t][0], NULL));
            CHECK_OK(cn_conv2d_bwd_data(ctx, &c.d, A.gy, A.w, out[t][1], NULL));
            CHECK_OK(cn_conv2d_bwd_weights(ctx, &c.d, A.x, A.gy, out[t][2], out[t][3], NULL));
        }
        size_t n[4] = {A.ny, A.nx, A.nw, A.nb};
        const char *what[4] = {"forward", "grad_input", "grad_weight", "grad_bias"};
        for (int k = 0; k < 4; k++) {
            if (memcmp(out[0][k], out[1][k], n[k] * 4))
                tl_fail(__FILE__, __LINE__, "%s differs between 1 and 2 threads for %s", what[k],
                        c.str);
            free(out[0][k]), free(out[1][k]);
        }
        bufs_free(&A);
    }
}

/* One to three images, as in single-image inference: the passes then cut
 * an image's rows, tiles or (col2im backward-data) bands of input rows
 * between the threads. Random geometry over every edge class, 1 to 40
 * channels a group (the col2im, implicit and Winograd paths, as the ISA
 * and CN_CONV_IMPL allow), images up to 40 pixels high: integer inputs
 * make every sum exact, so all passes must equal the reference bit for bit
 * (Winograd's transforms excepted, its bounds are tested above), and 2
 * threads must give 1 thread's bits. */
static void a_few_images_are_shared_by_two_threads_bit_for_bit(void)
{
    int seen[2] = {0, 0}; /* problems of one image, of two or three */
    for (int i = 0; i < 48 && tl_ok(); i++) {
        conv_cfg c;
        do {
            conv_cfg_random(&c, i % CFG_KIND_COUNT, i % 3 ? 12 : 40, i % 2 ? 40 : 8);
            c.xs[0] = i % 4 ? 1 : tl_randint(2, 3);
            if (c.p.pad_mode == CN_PAD_MEAN) c.p.pad_mode = CN_PAD_ZEROS; /* not integers */
        } while (cn_conv2d_setup(&c.d, &c.p, c.xs, c.ws) != CN_OK);
        conv_cfg_describe(&c);
        seen[c.xs[0] > 1]++;
        bufs B;
        bufs_init(&B, &c.d);
        integer_inputs(&B);
        if (run_all_passes(&c, &B)) {
            if (!takes_winograd(&c.d)) exact_against_reference(&c, &B);
            same_bits_on_two_threads(&c, &B);
        }
        bufs_free(&B);
    }
    CHECK(seen[0] && seen[1], "one image in %d problems, two or three in %d", seen[0], seen[1]);
}

static void hand_computed_example(void)
{
    /* x = 1..9 as a 3x3 image, 2x2 kernel [[1,2],[3,4]], no padding:
     * y[0,0] = 1*1 + 2*2 + 4*3 + 5*4 = 37, and so on. */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 2, 3, 4}, y[4];
    int64_t xs[4] = {1, 3, 3, 1}, ws[4] = {2, 2, 1, 1};
    cn_conv2d_params p = cn_conv2d_params_default();
    cn_conv2d_desc d;
    CHECK_OK(cn_conv2d_setup(&d, &p, xs, ws));
    CHECK(d.OH == 2 && d.OW == 2, "output %lldx%lld", (long long)d.OH, (long long)d.OW);
    CHECK_OK(cn_conv2d_fwd(NULL, &d, x, w, NULL, y, NULL));
    const float want[4] = {37, 47, 67, 77};
    for (int i = 0; i < 4; i++) CHECK(y[i] == want[i], "y[%d] = %g, want %g", i, y[i], want[i]);

    /* Reflect padding of 1 with a 1x3 kernel [1,0,0] shifts in the mirror:
     * row 1 2 3 padded is 2 1 2 3 2, so y = 2 1 2. */
    float r[3] = {1, 2, 3}, k[3] = {1, 0, 0}, o[3];
    int64_t rs[4] = {1, 1, 3, 1}, ks[4] = {1, 3, 1, 1};
    p.pad_left = p.pad_right = 1;
    const float want_mode[][3] = {[CN_PAD_ZEROS] = {0, 1, 2},     [CN_PAD_CIRCULAR] = {3, 1, 2},
                                  [CN_PAD_REFLECT] = {2, 1, 2},   [CN_PAD_REPLICATE] = {1, 1, 2},
                                  [CN_PAD_SYMMETRIC] = {1, 1, 2}, [CN_PAD_MEAN] = {2, 1, 2}};
    for (int m = 0; m < CN_PAD_MODE_COUNT; m++) {
        p.pad_mode = (cn_pad_mode)m;
        CHECK_OK(cn_conv2d_setup(&d, &p, rs, ks));
        CHECK_OK(cn_conv2d_fwd(NULL, &d, r, k, NULL, o, NULL));
        for (int i = 0; i < 3; i++)
            CHECK(o[i] == want_mode[m][i], "mode %s: y[%d] = %g, want %g",
                  cn_pad_mode_name(p.pad_mode), i, o[i], want_mode[m][i]);
    }
    /* Symmetric differs from reflect with a pad of 2: 2 1 | 1 2 3 | 3 2. */
    float k5[5] = {1, 0, 0, 0, 0}, o5[3];
    int64_t k5s[4] = {1, 5, 1, 1};
    p.pad_left = p.pad_right = 2, p.pad_mode = CN_PAD_SYMMETRIC;
    CHECK_OK(cn_conv2d_setup(&d, &p, rs, k5s));
    CHECK_OK(cn_conv2d_fwd(NULL, &d, r, k5, NULL, o5, NULL));
    CHECK(o5[0] == 2 && o5[1] == 1 && o5[2] == 1, "symmetric: %g %g %g", o5[0], o5[1], o5[2]);
}

static void output_size_follows_pytorch_and_same_keeps_size(void)
{
    cn_conv2d_params p = cn_conv2d_params_default();
    cn_conv2d_desc d;
    /* PyTorch: H=10, K=3, pad 1, stride 3, dilation 2 -> floor((10+2-4-1)/3)+1 = 3. */
    int64_t xs[4] = {1, 10, 7, 2}, ws[4] = {3, 3, 2, 4};
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
    p.stride_h = p.stride_w = 3, p.dil_h = p.dil_w = 2;
    CHECK_OK(cn_conv2d_setup(&d, &p, xs, ws));
    CHECK(d.OH == 3 && d.OW == 2, "got %lldx%lld", (long long)d.OH, (long long)d.OW);
    /* TensorFlow "same": OH = ceil(H / stride) for any stride and kernel. */
    for (int s = 1; s <= 4; s++)
        for (int k = 1; k <= 6; k++) {
            cn_conv2d_params q = cn_conv2d_params_default();
            q.pad_same = 1, q.stride_h = q.stride_w = s;
            int64_t ks[4] = {k, k, 2, 4};
            CHECK_OK(cn_conv2d_setup(&d, &q, xs, ks));
            CHECK(d.OH == (10 + s - 1) / s && d.OW == (7 + s - 1) / s,
                  "same with stride %d kernel %d gave %lldx%lld", s, k, (long long)d.OH,
                  (long long)d.OW);
            CHECK(d.PB - d.PT == 0 || d.PB - d.PT == 1, "odd pixel goes to the bottom");
        }
}

/* conv1d runs on the same memory as conv2d with H = 1. */
static void conv1d_equals_conv2d_with_height_one(void)
{
    for (int i = 0; i < 100 && tl_ok(); i++) {
        conv_cfg c;
        conv_cfg_random(&c, i % CFG_KIND_COUNT, 12, 3);
        cn_conv2d_params p = c.p;
        p.stride_h = p.dil_h = 1, p.pad_top = p.pad_bottom = 0;
        int64_t x1[3] = {c.xs[0], c.xs[2], c.xs[3]}, w1[3] = {c.ws[1], c.ws[2], c.ws[3]};
        int64_t x2[4] = {c.xs[0], 1, c.xs[2], c.xs[3]}, w2[4] = {1, c.ws[1], c.ws[2], c.ws[3]};
        cn_conv2d_desc d1, d2;
        cn_status s1 = cn_conv1d_setup(&d1, &p, x1, w1), s2 = cn_conv2d_setup(&d2, &p, x2, w2);
        CHECK(s1 == s2, "conv1d setup %d, conv2d %d for %s", s1, s2, c.str);
        if (s1) continue;
        CHECK(memcmp(&d1, &d2, sizeof d1) == 0, "descriptors differ for %s", c.str);
        bufs B;
        bufs_init(&B, &d1);
        cn__conv2d_ref_fwd(&d1, B.xd, B.wd, B.bd, B.yd);
        CHECK_OK(cn_conv2d_fwd(NULL, &d1, B.x, B.w, B.b, B.y, NULL));
        int ok = agree("conv1d forward", B.y, B.yd, B.ny, c.str);
        bufs_free(&B);
        if (!ok) return;
    }
}

/* PyTorch's definition of the transposed convolution, as a scatter:
 * y[n, ih*s - p + kh*d, iw*s - p + kw*d, g*OCG+o] += x[n,ih,iw,g*ICG+i] w[kh,kw,o,g*ICG+i]. */
static void transpose_scatter(const int64_t xs[4], const int64_t ws[4],
                              const cn_conv_transpose2d_params *p, int64_t OH, int64_t OW,
                              const double *x, const double *w, double *y)
{
    const int64_t G = p->conv.groups, IC = xs[3], ICG = IC / G, OCG = ws[2], OC = OCG * G;
    memset(y, 0, (size_t)(xs[0] * OH * OW * OC) * sizeof *y);
    for (int64_t n = 0; n < xs[0]; n++)
        for (int64_t ih = 0; ih < xs[1]; ih++)
            for (int64_t iw = 0; iw < xs[2]; iw++)
                for (int64_t c = 0; c < IC; c++)
                    for (int64_t kh = 0; kh < ws[0]; kh++)
                        for (int64_t kw = 0; kw < ws[1]; kw++)
                            for (int64_t o = 0; o < OCG; o++) {
                                int64_t oh =
                                    ih * p->conv.stride_h - p->conv.pad_top + kh * p->conv.dil_h;
                                int64_t ow =
                                    iw * p->conv.stride_w - p->conv.pad_left + kw * p->conv.dil_w;
                                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                                y[((n * OH + oh) * OW + ow) * OC + (c / ICG) * OCG + o] +=
                                    x[((n * xs[1] + ih) * xs[2] + iw) * IC + c] *
                                    w[((kh * ws[1] + kw) * OCG + o) * IC + c];
                            }
}

static void conv_transpose2d_is_the_scatter_and_the_adjoint_of_conv2d(void)
{
    int tested = 0;
    for (int i = 0; tested < 150 && tl_ok(); i++) {
        cn_conv_transpose2d_params p = {cn_conv2d_params_default(), 0, 0};
        p.conv.groups = tl_randint(1, 3);
        p.conv.stride_h = tl_randint(1, 3), p.conv.stride_w = tl_randint(1, 3);
        p.conv.dil_h = tl_randint(1, 2), p.conv.dil_w = tl_randint(1, 2);
        p.conv.pad_top = tl_randint(0, 2), p.conv.pad_bottom = tl_randint(0, 2);
        p.conv.pad_left = tl_randint(0, 2), p.conv.pad_right = tl_randint(0, 2);
        p.out_pad_h = tl_randint(0, 2), p.out_pad_w = tl_randint(0, 2);
        int64_t G = p.conv.groups;
        int64_t xs[4] = {tl_randint(1, 2), tl_randint(1, 6), tl_randint(1, 6),
                         G * tl_randint(1, 3)};
        int64_t ws[4] = {tl_randint(1, 4), tl_randint(1, 4), tl_randint(1, 3), xs[3]};
        cn_conv2d_desc d;
        if (cn_conv_transpose2d_setup(&d, &p, xs, ws) != CN_OK) continue;
        tested++;
        char cfg[256];
        snprintf(cfg, sizeof cfg,
                 "x=[%lld,%lld,%lld,%lld] w=[%lld,%lld,%lld,%lld] s=%d,%d d=%d,%d p=%d,%d,%d,%d "
                 "op=%d,%d g=%lld",
                 (long long)xs[0], (long long)xs[1], (long long)xs[2], (long long)xs[3],
                 (long long)ws[0], (long long)ws[1], (long long)ws[2], (long long)ws[3],
                 p.conv.stride_h, p.conv.stride_w, p.conv.dil_h, p.conv.dil_w, p.conv.pad_top,
                 p.conv.pad_bottom, p.conv.pad_left, p.conv.pad_right, p.out_pad_h, p.out_pad_w,
                 (long long)G);
        int64_t OH = (xs[1] - 1) * p.conv.stride_h - p.conv.pad_top - p.conv.pad_bottom +
                     p.conv.dil_h * (ws[0] - 1) + p.out_pad_h + 1;
        int64_t OW = (xs[2] - 1) * p.conv.stride_w - p.conv.pad_left - p.conv.pad_right +
                     p.conv.dil_w * (ws[1] - 1) + p.out_pad_w + 1;
        CHECK(d.IH == OH && d.IW == OW && d.IC == ws[2] * G, "output shape for %s", cfg);
        /* In d's terms: x is d's y (gy), the transposed output is d's x. */
        bufs B;
        bufs_init(&B, &d);
        /* B.gy holds the transposed conv's input, B.gx its output. */
        CHECK_OK(cn_conv_transpose2d_fwd(NULL, &d, B.gy, B.w, NULL, B.gx, NULL));
        transpose_scatter(xs, ws, &p, OH, OW, B.gyd, B.wd, B.gxd);
        int ok = agree("conv_transpose2d vs scatter", B.gx, B.gxd, B.nx, cfg);
        /* Forward of the transposed conv == conv2d's grad_input, in the reference. */
        cn__conv2d_ref_bwd_data(&d, B.gyd, B.wd, B.xd);
        ok = ok && agree("conv_transpose2d vs conv2d grad_input", B.gx, B.xd, B.nx, cfg);
        /* Its backward: grad_input = conv2d forward, grad_weight by the ref, bias sum. */
        if (ok) {
            float *gin = calloc(B.ny + 1, sizeof *gin), *gb = calloc(B.nx + 1, sizeof *gb);
            tl_fill(B.x, B.nx, -1, 1), tl_f2d(B.x, B.xd, B.nx); /* upstream gradient */
            CHECK_OK(cn_conv_transpose2d_bwd_data(NULL, &d, B.x, B.w, gin, NULL));
            cn__conv2d_ref_fwd(&d, B.xd, B.wd, NULL, B.yd);
            ok = agree("conv_transpose2d grad_input", gin, B.yd, B.ny, cfg);
            CHECK_OK(cn_conv_transpose2d_bwd_weights(NULL, &d, B.gy, B.x, B.gw, gb, NULL));
            cn__conv2d_ref_bwd_weights(&d, B.xd, B.gyd, B.gwd, NULL);
            ok = ok && agree("conv_transpose2d grad_weight", B.gw, B.gwd, B.nw, cfg);
            double *gbd = calloc((size_t)d.IC, sizeof *gbd);
            for (size_t k = 0; k < B.nx; k++) gbd[k % (size_t)d.IC] += B.xd[k];
            ok = ok && agree("conv_transpose2d grad_bias", gb, gbd, (size_t)d.IC, cfg);
            free(gbd), free(gin), free(gb);
        }
        bufs_free(&B);
        if (!ok) return;
    }
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static void im2col_and_col2im_are_adjoint(void)
{
    for (int i = 0; i < 100 && tl_ok(); i++) {
        conv_cfg c;
        conv_cfg_random(&c, i % CFG_KIND_COUNT, 8, 3);
        c.d.mode = CN_PAD_ZEROS;
        size_t nc = cn_im2col_size(&c.d), nx = cfg_nx(&c.d);
        float *x = malloc(nx * 4 + 4), *cols = malloc(nc * 4 + 4), *c2 = malloc(nc * 4 + 4),
              *x2 = malloc(nx * 4 + 4);
        tl_fill(x, nx, -1, 1), tl_fill(c2, nc, -1, 1);
        cn_im2col(NULL, &c.d, x, cols);
        cn_col2im(NULL, &c.d, c2, x2);
        double l = dot(cols, c2, nc), r = dot(x, x2, nx);
        free(x), free(cols), free(c2), free(x2);
        CHECK(fabs(l - r) <= 1e-5 * (1 + fabs(l)), "<im2col(x),c>=%.9g <x,col2im(c)>=%.9g for %s",
              l, r, c.str);
    }
}

static void padding_is_adjoint_to_its_backward_in_every_mode(void)
{
    for (int i = 0; i < 120 && tl_ok(); i++) {
        int64_t N = tl_randint(1, 2), H = tl_randint(1, 6), W = tl_randint(1, 6),
                C = tl_randint(1, 3);
        int64_t pt = tl_randint(0, 6), pb = tl_randint(0, 6), pl = tl_randint(0, 6),
                pr = tl_randint(0, 6);
        cn_pad_mode m = (cn_pad_mode)(i % CN_PAD_MODE_COUNT);
        if (cn_pad2d_check(H, W, pt, pb, pl, pr, m, "test")) continue;
        size_t nx = (size_t)(N * H * W * C), ny = (size_t)(N * (H + pt + pb) * (W + pl + pr) * C);
        float *x = malloc(nx * 4), *y = malloc(ny * 4), *gy = malloc(ny * 4), *gx = malloc(nx * 4);
        tl_fill(x, nx, -1, 1), tl_fill(gy, ny, -1, 1);
        CHECK_OK(cn_pad2d_fwd(NULL, N, H, W, C, pt, pb, pl, pr, m, x, y));
        CHECK_OK(cn_pad2d_bwd(NULL, N, H, W, C, pt, pb, pl, pr, m, gy, gx));
        double l = dot(y, gy, ny), r = dot(x, gx, nx);
        free(x), free(y), free(gy), free(gx);
        CHECK(fabs(l - r) <= 1e-5 * (1 + fabs(l)),
              "mode %s H=%lld W=%lld pads %lld,%lld,%lld,%lld: %.9g vs %.9g", cn_pad_mode_name(m),
              (long long)H, (long long)W, (long long)pt, (long long)pb, (long long)pl,
              (long long)pr, l, r);
    }
}

static void grouped_conv_is_the_concatenation_of_per_group_convs(void)
{
    for (int i = 0; i < 60 && tl_ok(); i++) {
        conv_cfg c;
        do conv_cfg_random(&c, i % CFG_KIND_COUNT, 8, 3);
        while (c.d.G < 2);
        const cn_conv2d_desc *d = &c.d;
        int64_t G = d->G, ICG = d->IC / G, OCG = d->OC / G;
        bufs B;
        bufs_init(&B, d);
        CHECK_OK(cn_conv2d_fwd(NULL, d, B.x, B.w, NULL, B.y, NULL));
        int ok = 1;
        for (int64_t g = 0; g < G && ok; g++) {
            /* Slice group g's channels out of x and w; run it as a 1-group conv. */
            cn_conv2d_params p = c.p;
            p.groups = 1;
            int64_t xs[4] = {c.xs[0], c.xs[1], c.xs[2], ICG}, ws[4] = {c.ws[0], c.ws[1], ICG, OCG};
            cn_conv2d_desc dg;
            CHECK_OK(cn_conv2d_setup(&dg, &p, xs, ws));
            size_t px = (size_t)(d->MB * d->IH * d->IW), py = (size_t)(d->MB * d->OH * d->OW),
                   kk = (size_t)(d->KH * d->KW);
            float *xg = malloc(px * ICG * 4), *wg = malloc(kk * ICG * OCG * 4),
                  *yg = malloc(py * OCG * 4);
            for (size_t q = 0; q < px; q++)
                for (int64_t k = 0; k < ICG; k++) xg[q * ICG + k] = B.x[q * d->IC + g * ICG + k];
            for (size_t q = 0; q < kk * ICG; q++)
                for (int64_t o = 0; o < OCG; o++) wg[q * OCG + o] = B.w[q * d->OC + g * OCG + o];
            cn_conv2d_fwd(NULL, &dg, xg, wg, NULL, yg, NULL);
            for (size_t q = 0; q < py && ok; q++)
                for (int64_t o = 0; o < OCG && ok; o++)
                    if (yg[q * OCG + o] != B.y[q * d->OC + g * OCG + o]) {
                        tl_fail(__FILE__, __LINE__, "group %lld output %zu,%lld: %g vs %g for %s",
                                (long long)g, q, (long long)o, yg[q * OCG + o],
                                B.y[q * d->OC + g * OCG + o], c.str);
                        ok = 0;
                    }
            free(xg), free(wg), free(yg);
        }
        bufs_free(&B);
    }
}

static void flip_and_dilate_are_their_own_adjoints(void)
{
    int64_t shape[4] = {3, 2, 4, 5};
    float a[120], b[120], c[120];
    tl_fill(a, 120, -1, 1);
    CHECK_OK(cn_flip(4, shape, 0x3, a, b));
    /* b[kh,kw,...] = a[KH-1-kh, KW-1-kw, ...] */
    CHECK(b[0] == a[(2 * 2 + 1) * 20], "flip moves the last tap first");
    CHECK_OK(cn_flip(4, shape, 0x3, b, c));
    CHECK(memcmp(a, c, sizeof a) == 0, "flipping twice is the identity");
    CHECK(cn_flip(4, shape, 0x10, a, b) == CN_ERR_INVALID_ARG, "axis 4 of a 4-D tensor");

    float x[2 * 3 * 2 * 2], y[2 * 7 * 4 * 2], gy[2 * 7 * 4 * 2], gx[24];
    tl_fill(x, 24, -1, 1), tl_fill(gy, 112, -1, 1);
    CHECK_OK(cn_dilate2d_fwd(2, 3, 2, 2, 3, 3, x, y));
    CHECK(y[(3 * 4 + 3) * 2 + 1] == x[(1 * 2 + 1) * 2 + 1], "pixel (1,1) lands at (3,3)");
    CHECK(y[(1 * 4 + 0) * 2] == 0.0f, "inserted rows are zero");
    CHECK_OK(cn_dilate2d_bwd(2, 3, 2, 2, 3, 3, gy, gx));
    double l = dot(y, gy, 112), r = dot(x, gx, 24);
    CHECK(fabs(l - r) < 1e-5, "<dilate(x),g>=%g <x,dilate_bwd(g)>=%g", l, r);
    CHECK(cn_dilate2d_fwd(1, 1, 1, 1, 0, 1, x, y) == CN_ERR_INVALID_ARG, "dilation 0");
}

static void nan_in_the_input_propagates_to_the_outputs_it_reaches(void)
{
    float x[25], w[9], y[25];
    tl_fill(x, 25, -1, 1), tl_fill(w, 9, -1, 1);
    x[12] = NAN;
    int64_t xs[4] = {1, 5, 5, 1}, ws[4] = {3, 3, 1, 1};
    cn_conv2d_params p = cn_conv2d_params_default();
    cn_conv2d_desc d;
    CHECK_OK(cn_conv2d_setup(&d, &p, xs, ws)); /* 3x3 output, each window covers (2,2) */
    CHECK_OK(cn_conv2d_fwd(NULL, &d, x, w, NULL, y, NULL));
    for (int i = 0; i < 9; i++) CHECK(isnan(y[i]), "y[%d] = %g is not NaN", i, y[i]);
}

/* Invalid arguments: the status and a message naming the argument and value. */
static void invalid_problems_are_rejected_with_a_message(void)
{
    struct {
        int64_t xs[4], ws[4];
        int stride, dil, pad, groups;
        cn_pad_mode mode;
        const char *want;
    } cases[] = {
        {{1, 5, 5, 6}, {3, 3, 1, 8}, 1, 1, 0, 4, CN_PAD_ZEROS, "C_in=6 not divisible by groups=4"},
        {{1, 5, 5, 6}, {3, 3, 3, 8}, 1, 1, 0, 2, CN_PAD_ZEROS, "C_out=8"}, /* 8 % 2 == 0: see below
                                                                            */
        {{1, 5, 5, 4}, {3, 3, 4, 8}, 0, 1, 0, 1, CN_PAD_ZEROS, "stride_h=0"},
        {{1, 5, 5, 4}, {3, 3, 4, 8}, 1, 0, 0, 1, CN_PAD_ZEROS, "dilation_h=0"},
        {{1, 5, 5, 4}, {3, 3, 4, 8}, 1, 1, -1, 1, CN_PAD_ZEROS, "negative padding"},
        {{1, 2, 2, 4}, {3, 3, 4, 8}, 1, 1, 0, 1, CN_PAD_ZEROS, "output size <= 0"},
        {{1, 3, 3, 4}, {3, 3, 4, 8}, 1, 3, 1, 1, CN_PAD_ZEROS, "output size <= 0"},
        {{0, 5, 5, 4}, {3, 3, 4, 8}, 1, 1, 0, 1, CN_PAD_ZEROS, "N=0"},
        {{1, 5, 0, 4}, {3, 3, 4, 8}, 1, 1, 0, 1, CN_PAD_ZEROS, "W=0"},
        {{1, 5, 5, 4}, {3, 3, 2, 8}, 1, 1, 0, 1, CN_PAD_ZEROS, "2 input channels per group"},
        {{1, 3, 3, 4},
         {3, 3, 4, 8},
         1,
         1,
         3,
         1,
         CN_PAD_REFLECT,
         "reflect padding 3 must be less than the input height H=3"},
        {{1, 3, 3, 4},
         {3, 3, 4, 8},
         1,
         1,
         4,
         1,
         CN_PAD_CIRCULAR,
         "circular padding 4 must be at most"},
        {{1, 5, 5, 4}, {3, 3, 4, 0}, 1, 1, 0, 1, CN_PAD_ZEROS, "C_out=0"},
        {{1, 5, 5, 4}, {3, 3, 4, 8}, 1, 1, 0, 0, CN_PAD_ZEROS, "groups=0"},
        {{1, 5, 5, 4}, {3, 3, 4, 8}, 1, 1, 0, 1, (cn_pad_mode)17, "invalid padding mode 17"},
        {{INT64_C(1) << 40, 1 << 20, 1 << 20, 4},
         {1, 1, 4, 8},
         1,
         1,
         0,
         1,
         CN_PAD_ZEROS,
         "too large"},
    };
    cases[1].ws[3] = 7; /* C_out=7 with 2 groups */
    cases[1].want = "C_out=7 not divisible by groups=2";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_conv2d_params p = cn_conv2d_params_default();
        p.stride_h = p.stride_w = cases[i].stride;
        p.dil_h = p.dil_w = cases[i].dil;
        p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = cases[i].pad;
        p.groups = cases[i].groups, p.pad_mode = cases[i].mode;
        cn_conv2d_desc d;
        cn_status s = cn_conv2d_setup(&d, &p, cases[i].xs, cases[i].ws);
        CHECK(s == CN_ERR_INVALID_ARG || s == CN_ERR_OVERFLOW, "case %zu accepted", i);
        CHECK(strstr(cn_last_error(), cases[i].want), "case %zu: message '%s' lacks '%s'", i,
              cn_last_error(), cases[i].want);
        CHECK(strncmp(cn_last_error(), "conv2d: ", 8) == 0, "message names the op: %s",
              cn_last_error());
    }
    cn_pad_mode m;
    CHECK(cn_pad_mode_parse("mirror", &m) == CN_ERR_INVALID_ARG, "unknown mode accepted");
    CHECK(strstr(cn_last_error(), "'mirror'"), "message: %s", cn_last_error());
    CHECK_OK(cn_pad_mode_parse("symmetric", &m));
    CHECK(m == CN_PAD_SYMMETRIC, "parsed %d", m);

    cn_conv_transpose2d_params tp = {cn_conv2d_params_default(), 2, 0};
    int64_t xs[4] = {1, 4, 4, 2}, ws[4] = {3, 3, 2, 2};
    cn_conv2d_desc d;
    CHECK(cn_conv_transpose2d_setup(&d, &tp, xs, ws) == CN_ERR_INVALID_ARG,
          "output padding 2 with stride 1");
    CHECK(strstr(cn_last_error(), "output_padding (2,0)"), "message: %s", cn_last_error());
}

int main(void)
{
    /* Every implementation and ISA must pass the same specification: the
     * direct loops, the GEMM path on each micro-kernel this CPU runs, and the
     * default choice (depthwise and small-group kernels where they apply)
     * on each ISA. */
    static const char *const paths[][2] = {
        {"direct", "avx512"}, {"gemm", "scalar"}, {"gemm", "avx2"}, {"gemm", "avx512"},
        {"vec", "scalar"},    {"vec", "avx2"},    {"vec", "avx512"}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        setenv("CN_CONV_IMPL", paths[i][0], 1);
        setenv("CN_ISA", paths[i][1], 1);
        printf("-- CN_CONV_IMPL=%s CN_ISA=%s\n", paths[i][0], paths[i][1]);
        tl_salt(i);
        run_all();
    }
    unsetenv("CN_CONV_IMPL");
    unsetenv("CN_ISA");
    return tl_summary();
}

static void run_all(void)
{
    TL_RUN(hand_computed_example);
    TL_RUN(output_size_follows_pytorch_and_same_keeps_size);
    TL_RUN(every_pass_matches_reference_on_random_problems);
    TL_RUN(wide_channel_problems_match_reference_on_one_and_two_threads);
    TL_RUN(pairs_of_8_channel_groups_match_reference_on_one_and_two_threads);
    TL_RUN(few_input_channel_problems_match_reference_on_one_and_two_threads);
    TL_RUN(few_input_channel_backward_data_tiles_match_reference);
    TL_RUN(depthwise_16_channel_problems_match_reference_on_one_and_two_threads);
    TL_RUN(large_outputs_match_reference_on_one_and_two_threads);
    TL_RUN(fused_relu_forward_equals_relu_of_the_forward);
    if (!getenv("CN_CONV_IMPL") || !strcmp(getenv("CN_CONV_IMPL"), "vec"))
        TL_RUN(winograd_error_is_bounded_by_the_absolute_sum_and_thread_independent);
    if (!getenv("CN_CONV_IMPL") || !strcmp(getenv("CN_CONV_IMPL"), "vec"))
        TL_RUN(dilated_winograd_phases_are_bounded_and_thread_independent);
    TL_RUN(grouped_winograd_error_is_bounded_and_thread_independent);
    TL_RUN(every_backward_matches_central_differences);
    TL_RUN(grouped_winograd_gradients_match_central_differences);
    TL_RUN(integer_inputs_give_exact_results);
    TL_RUN(deep_channel_problems_are_exact_on_one_and_two_threads);
    TL_RUN(accumulating_backward_data_adds_exactly_what_it_writes);
    TL_RUN(conv1d_equals_conv2d_with_height_one);
    TL_RUN(conv_transpose2d_is_the_scatter_and_the_adjoint_of_conv2d);
    TL_RUN(im2col_and_col2im_are_adjoint);
    TL_RUN(padding_is_adjoint_to_its_backward_in_every_mode);
    TL_RUN(grouped_conv_is_the_concatenation_of_per_group_convs);
    TL_RUN(flip_and_dilate_are_their_own_adjoints);
    TL_RUN(nan_in_the_input_propagates_to_the_outputs_it_reaches);
    TL_RUN(invalid_problems_are_rejected_with_a_message);
    TL_RUN(one_and_two_threads_give_bit_identical_results);
    TL_RUN(a_few_images_are_shared_by_two_threads_bit_for_bit);
    TL_RUN(depthwise_3x3_row_pairs_match_reference_on_one_and_two_threads);
    TL_RUN(strided_depthwise_backward_data_matches_reference_on_one_and_two_threads);
}
