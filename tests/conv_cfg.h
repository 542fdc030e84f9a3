/* tests/conv_cfg.h - seeded random convolution problems for the conv tests,
 * each printable so that a failure names the exact configuration. */
#ifndef CN_TEST_CONV_CFG_H
#define CN_TEST_CONV_CFG_H

#include <stdio.h>

#include "testlib.h"

typedef struct conv_cfg {
    cn_conv2d_params p;
    int64_t xs[4], ws[4];
    cn_conv2d_desc d;
    int bias;
    char str[320];
} conv_cfg;

/* Edge classes the generator cycles through, so every run covers them. */
enum { CFG_ANY, CFG_1X1_KERNEL, CFG_KERNEL_GT_INPUT, CFG_STRIDE_GT_KERNEL, CFG_1X1_OUTPUT,
       CFG_DEPTHWISE, CFG_SAME, CFG_PAD_MODE, CFG_KIND_COUNT };

static void conv_cfg_describe(conv_cfg *c)
{
    const cn_conv2d_params *p = &c->p;
    snprintf(c->str, sizeof c->str,
             "x=[%lld,%lld,%lld,%lld] w=[%lld,%lld,%lld,%lld] stride=%d,%d dil=%d,%d "
             "pad=%d,%d,%d,%d same=%d groups=%d mode=%s bias=%d (seed %s)",
             (long long)c->xs[0], (long long)c->xs[1], (long long)c->xs[2], (long long)c->xs[3],
             (long long)c->ws[0], (long long)c->ws[1], (long long)c->ws[2], (long long)c->ws[3],
             p->stride_h, p->stride_w, p->dil_h, p->dil_w, p->pad_top, p->pad_bottom, p->pad_left,
             p->pad_right, p->pad_same, p->groups, cn_pad_mode_name(p->pad_mode), c->bias,
             getenv("CN_TEST_SEED") ? getenv("CN_TEST_SEED") : "1");
}

/* Draws problems of edge class `kind` until one is valid; max_c bounds the
 * channels per group so float sums stay well inside the tolerance. */
static void conv_cfg_random(conv_cfg *c, int kind, int max_hw, int max_c)
{
    for (;;) {
        cn_conv2d_params p = cn_conv2d_params_default();
        int G = tl_randint(1, 3), icg = tl_randint(1, max_c), ocg = tl_randint(1, max_c);
        int H = tl_randint(1, max_hw), W = tl_randint(1, max_hw);
        int KH = tl_randint(1, 4), KW = tl_randint(1, 4);
        p.stride_h = tl_randint(1, 3), p.stride_w = tl_randint(1, 3);
        p.dil_h = tl_randint(1, 2) == 1 ? 1 : tl_randint(2, 3);
        p.dil_w = tl_randint(1, 2) == 1 ? 1 : tl_randint(2, 3);
        p.pad_top = tl_randint(0, 2), p.pad_bottom = tl_randint(0, 2);
        p.pad_left = tl_randint(0, 2), p.pad_right = tl_randint(0, 2);
        p.pad_mode = tl_randint(0, 1) ? CN_PAD_ZEROS : (cn_pad_mode)tl_randint(0, CN_PAD_MODE_COUNT - 1);
        switch (kind) {
        case CFG_1X1_KERNEL: KH = KW = 1; break;
        case CFG_KERNEL_GT_INPUT:
            H = tl_randint(1, 3), W = tl_randint(1, 3), KH = H + tl_randint(1, 2),
            KW = W + tl_randint(1, 2);
            p.dil_h = p.dil_w = 1;
            p.pad_top = p.pad_bottom = (KH - H + 1) / 2 + tl_randint(0, 1);
            p.pad_left = p.pad_right = (KW - W + 1) / 2 + tl_randint(0, 1);
            break;
        case CFG_STRIDE_GT_KERNEL:
            KH = tl_randint(1, 2), KW = tl_randint(1, 2);
            p.stride_h = KH + tl_randint(1, 2), p.stride_w = KW + tl_randint(1, 2);
            break;
        case CFG_1X1_OUTPUT:
            p.stride_h = p.stride_w = 1;
            KH = H, KW = W, p.dil_h = p.dil_w = 1;
            p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 0;
            break;
        case CFG_DEPTHWISE: G = tl_randint(1, 6), icg = 1, ocg = tl_randint(1, 2); break;
        case CFG_SAME: p.pad_same = 1; break;
        case CFG_PAD_MODE: p.pad_mode = (cn_pad_mode)tl_randint(1, CN_PAD_MODE_COUNT - 1); break;
        }
        p.groups = G;
        conv_cfg t = {0};
        t.p = p;
        t.xs[0] = tl_randint(1, 3), t.xs[1] = H, t.xs[2] = W, t.xs[3] = (int64_t)G * icg;
        t.ws[0] = KH, t.ws[1] = KW, t.ws[2] = icg, t.ws[3] = (int64_t)G * ocg;
        t.bias = tl_randint(0, 1);
        if (cn_conv2d_setup(&t.d, &t.p, t.xs, t.ws) != CN_OK) continue;
        conv_cfg_describe(&t);
        *c = t;
        return;
    }
}

/* A random problem for the channel-vectorised kernels: depthwise with up to
 * 70 channels (full 32- and 8-channel steps and a scalar tail), or groups
 * with 8-64 output channels each over 1-10 input channels; geometry,
 * padding and edge class as conv_cfg_random draws them. */
static void conv_cfg_random_wide(conv_cfg *c, int kind, int max_hw)
{
    for (;;) {
        conv_cfg t;
        conv_cfg_random(&t, kind, max_hw, 4);
        int G, icg, ocg;
        if (tl_randint(0, 1)) {
            G = tl_randint(1, 70), icg = ocg = 1;
        } else {
            static const int ocgs[] = {8, 16, 24, 32, 40, 64};
            G = tl_randint(1, 4), ocg = ocgs[tl_randint(0, 5)];
            icg = G > 1 ? tl_randint(1, 10) : tl_randint(1, 4);
        }
        t.p.groups = G;
        t.xs[3] = (int64_t)G * icg;
        t.ws[2] = icg, t.ws[3] = (int64_t)G * ocg;
        if (cn_conv2d_setup(&t.d, &t.p, t.xs, t.ws) != CN_OK) continue;
        conv_cfg_describe(&t);
        *c = t;
        return;
    }
}

/* A random problem for the few-input-channel kernels: one group, 1-4 input
 * channels, 16-96 output channels in steps of 16 (full 4-, 2- and 1-vector
 * blocks); geometry and edge class as conv_cfg_random draws them, zero
 * pads sometimes negative (cropping). wide: rows more than one stack
 * buffer holds, so that a row is done in column segments and an image in
 * bands of rows, under a 13-16 tap tall kernel or a strided 3x3 one (1-4
 * output rows, so the sums stay as short as the other problems'), with
 * 16-64 output channels (64: the 6-pixel tiles of 4 vectors). */
static void conv_cfg_random_fewch(conv_cfg *c, int kind, int max_hw, int wide)
{
    for (;;) {
        conv_cfg t;
        conv_cfg_random(&t, kind, max_hw, 4);
        t.p.groups = 1;
        t.xs[3] = t.ws[2] = tl_randint(1, 4);
        t.ws[3] = 16 * tl_randint(1, wide ? 4 : 6);
        if (wide) {
            const int tall = tl_randint(0, 1);
            t.xs[0] = 1, t.xs[2] = tl_randint(160, 240), t.xs[3] = t.ws[2] = 4;
            t.ws[0] = tall ? tl_randint(13, 16) : 3, t.ws[1] = tall ? tl_randint(1, 5) : 3;
            t.p.stride_h = tall ? tl_randint(1, 3) : 3, t.p.stride_w = tl_randint(2, 3);
            t.xs[1] = tall ? t.ws[0] + t.p.stride_h * tl_randint(0, 1) : tl_randint(10, 13);
            t.p.pad_top = t.p.pad_bottom = 0, t.p.pad_same = 0, t.p.dil_h = 1;
        }
        if (!wide && kind == CFG_ANY && tl_randint(0, 1)) {
            t.p.pad_mode = CN_PAD_ZEROS, t.p.pad_same = 0;
            t.p.pad_top = tl_randint(-2, 2), t.p.pad_bottom = tl_randint(-2, 2);
            t.p.pad_left = tl_randint(-2, 2), t.p.pad_right = tl_randint(-2, 2);
        }
        if (cn_conv2d_setup(&t.d, &t.p, t.xs, t.ws) != CN_OK) continue;
        conv_cfg_describe(&t);
        *c = t;
        return;
    }
}

static size_t cfg_nx(const cn_conv2d_desc *d) { return (size_t)(d->MB * d->IH * d->IW * d->IC); }
static size_t cfg_ny(const cn_conv2d_desc *d) { return (size_t)(d->MB * d->OH * d->OW * d->OC); }
static size_t cfg_nw(const cn_conv2d_desc *d)
{
    return (size_t)(d->KH * d->KW * (d->IC / d->G) * d->OC);
}

#endif
