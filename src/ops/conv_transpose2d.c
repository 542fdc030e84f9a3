/* conv_transpose2d: the adjoint of conv2d used as a layer. Its descriptor is
 * the conv2d that maps its output back to its input, so each of its passes
 * is a conv2d pass with the roles of x and y exchanged. */
#include <string.h>

#include "ops/conv_internal.h"

cn_status cn_conv_transpose2d_setup(cn_conv2d_desc *d, const cn_conv_transpose2d_params *p,
                                    const int64_t x_shape[4], const int64_t w_shape[4])
{
    const char *op = "conv_transpose2d";
    const cn_conv2d_params *c = &p->conv;
    memset(d, 0, sizeof *d);
    if (c->pad_same)
        return cn__err(CN_ERR_UNSUPPORTED, "%s: 'same' padding is not supported", op);
    if (c->pad_mode != CN_PAD_ZEROS)
        return cn__err(CN_ERR_UNSUPPORTED, "%s: only zeros padding is supported, got %s", op,
                       cn_pad_mode_name(c->pad_mode) ? cn_pad_mode_name(c->pad_mode) : "invalid");
    const char *names[] = {"N", "H", "W", "C_in", "KH", "KW", "C_out/groups", "groups",
                           "stride_h", "stride_w", "dilation_h", "dilation_w"};
    int64_t v[] = {x_shape[0], x_shape[1], x_shape[2], x_shape[3], w_shape[0], w_shape[1],
                   w_shape[2], c->groups, c->stride_h, c->stride_w, c->dil_h, c->dil_w};
    for (int i = 0; i < 12; i++) {
        if (v[i] < 1)
            return cn__err(CN_ERR_INVALID_ARG, "%s: %s=%lld must be >= 1", op, names[i],
                           (long long)v[i]);
        if (v[i] >= INT64_C(1) << 31)
            return cn__err(CN_ERR_OVERFLOW, "%s: %s=%lld is too large", op, names[i],
                           (long long)v[i]);
    }
    const char *const pad_names[4] = {"pad_top", "pad_bottom", "pad_left", "pad_right"};
    const int pads[4] = {c->pad_top, c->pad_bottom, c->pad_left, c->pad_right};
    for (int i = 0; i < 4; i++)
        if (pads[i] < 0)
            return cn__err(CN_ERR_INVALID_ARG, "%s: %s=%d must be >= 0 (negative padding)", op,
                           pad_names[i], pads[i]);
    if (p->out_pad_h < 0 || p->out_pad_w < 0 ||
        (p->out_pad_h >= c->stride_h && p->out_pad_h >= c->dil_h) ||
        (p->out_pad_w >= c->stride_w && p->out_pad_w >= c->dil_w))
        return cn__err(CN_ERR_INVALID_ARG,
                       "%s: output_padding (%d,%d) must be >= 0 and smaller than stride (%d,%d) "
                       "or dilation (%d,%d)",
                       op, p->out_pad_h, p->out_pad_w, c->stride_h, c->stride_w, c->dil_h, c->dil_w);
    if (x_shape[3] != w_shape[3])
        return cn__err(CN_ERR_INVALID_ARG,
                       "%s: weight's last dimension %lld must equal C_in=%lld", op,
                       (long long)w_shape[3], (long long)x_shape[3]);
    if (x_shape[3] % c->groups)
        return cn__err(CN_ERR_INVALID_ARG, "%s: C_in=%lld not divisible by groups=%d", op,
                       (long long)x_shape[3], c->groups);
    int64_t oh = (x_shape[1] - 1) * c->stride_h - c->pad_top - c->pad_bottom +
                 (int64_t)c->dil_h * (w_shape[0] - 1) + p->out_pad_h + 1;
    int64_t ow = (x_shape[2] - 1) * c->stride_w - c->pad_left - c->pad_right +
                 (int64_t)c->dil_w * (w_shape[1] - 1) + p->out_pad_w + 1;
    if (oh < 1 || ow < 1)
        return cn__err(CN_ERR_INVALID_ARG, "%s: output size %lldx%lld <= 0 (padding too large)",
                       op, (long long)oh, (long long)ow);
    /* The conv2d y -> x: its input is our output. The output padding enters
     * as a smaller bottom/right pad, so that conv2d's output size is exactly H.
     * That pad may be negative (a crop), which setup refuses: it gets the pad
     * clamped at 0, so that the sizes it checks bound the ones used. */
    cn_conv2d_params q = *c;
    q.pad_bottom = CN__MAX(c->pad_bottom - p->out_pad_h, 0);
    q.pad_right = CN__MAX(c->pad_right - p->out_pad_w, 0);
    int64_t ys[4] = {x_shape[0], oh, ow, w_shape[2] * c->groups};
    int64_t ws[4] = {w_shape[0], w_shape[1], w_shape[2], x_shape[3]};
    cn_status s = cn_conv2d_setup(d, &q, ys, ws);
    if (s) {
        char sh[160];
        return cn__err(s, "%s: output %s: %s", op, cn_shape_str(4, ys, sh, sizeof sh),
                       cn_last_error());
    }
    d->PB = c->pad_bottom - p->out_pad_h, d->PR = c->pad_right - p->out_pad_w;
    d->OH = (oh + d->PT + d->PB - d->DH * (d->KH - 1) - 1) / d->SH + 1;
    d->OW = (ow + d->PL + d->PR - d->DW * (d->KW - 1) - 1) / d->SW + 1;
    if (d->OH != x_shape[1] || d->OW != x_shape[2])
        return cn__err(CN_ERR_INVALID_ARG, "%s: padding leaves an input row or column unused", op);
    return CN_OK;
}

cn_status cn_conv_transpose2d_fwd(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                  const float *w, const float *b, float *y, void *ws)
{
    cn_status s = cn_conv2d_bwd_data(ctx, d, x, w, y, ws);
    if (s || !b) return s;
    const int64_t pixels = d->MB * d->IH * d->IW;
    for (int64_t p = 0; p < pixels; p++)
        for (int64_t c = 0; c < d->IC; c++) y[p * d->IC + c] += b[c];
    return CN_OK;
}

cn_status cn_conv_transpose2d_bwd_data(cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy,
                                       const float *w, float *gx, void *ws)
{
    return cn_conv2d_fwd(ctx, d, gy, w, NULL, gx, ws);
}

cn_status cn_conv_transpose2d_bwd_weights(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                          const float *gy, float *gw, float *gb, void *ws)
{
    cn_status s = cn_conv2d_bwd_weights(ctx, d, gy, x, gw, NULL, ws);
    if (s || !gb) return s;
    /* The bias adds to every output pixel: its gradient sums gy over them,
     * in double like conv2d's. */
    const int64_t pixels = d->MB * d->IH * d->IW;
    for (int64_t c = 0; c < d->IC; c++) {
        double acc = 0;
        for (int64_t p = 0; p < pixels; p++) acc += gy[p * d->IC + c];
        gb[c] = (float)acc;
    }
    return CN_OK;
}
