/* convnet/conv.h - convolutions in NHWC and their adjoints.
 *
 * Layouts (C order, float32):
 *     x  [N, H, W, C_in]              input
 *     w  [KH, KW, C_in/G, C_out]      weight (PyTorch's weight.permute(2,3,1,0))
 *     b  [C_out]                      bias (optional)
 *     y  [N, OH, OW, C_out]           output
 * Output channel oc belongs to group oc / (C_out/G) and reads input channels
 * [g*C_in/G, (g+1)*C_in/G). Output size as PyTorch computes it:
 *     OH = floor((H + pad_top + pad_bottom - dil_h*(KH-1) - 1) / stride_h) + 1
 *
 * Usage: describe the problem once, then run any pass on raw buffers.
 *
 *     cn_conv2d_params p = cn_conv2d_params_default();
 *     p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
 *     cn_conv2d_desc d;
 *     int64_t xs[4] = {N, H, W, C}, ws[4] = {3, 3, C, OC};
 *     if (cn_conv2d_setup(&d, &p, xs, ws) != CN_OK) return fail(cn_last_error());
 *     cn_conv2d_fwd(ctx, &d, x, w, b, y, NULL);     // y [N, d.OH, d.OW, OC]
 *
 * All shape checks happen in *_setup; the passes trust the descriptor.
 * Passes overwrite their outputs (they do not accumulate). `ws` is scratch
 * memory of at least cn_conv2d_workspace_size(&d) bytes owned by the caller;
 * NULL makes the pass allocate and free its own (and it may then fail with
 * CN_ERR_NO_MEMORY).
 */
#ifndef CONVNET_CONV_H
#define CONVNET_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the input is extended beyond its border. */
typedef enum cn_pad_mode {
    CN_PAD_ZEROS = 0,   /* 0 */
    CN_PAD_CIRCULAR,    /* wrap around:           c d | a b c d | a b */
    CN_PAD_REFLECT,     /* mirror, edge excluded: c b | a b c d | c b */
    CN_PAD_REPLICATE,   /* repeat the edge:       a a | a b c d | d d */
    CN_PAD_SYMMETRIC,   /* mirror, edge included: b a | a b c d | d c */
    CN_PAD_MEAN,        /* the image's per-channel mean */
    CN_PAD_MODE_COUNT
} cn_pad_mode;

/* "zeros", "circular", ... ; NULL for an invalid mode. */
CN_API const char *cn_pad_mode_name(cn_pad_mode m);
/* Parses a mode name; CN_ERR_INVALID_ARG for an unknown one. */
CN_API cn_status cn_pad_mode_parse(const char *name, cn_pad_mode *out);

typedef struct cn_conv2d_params {
    int stride_h, stride_w;              /* >= 1 */
    int dil_h, dil_w;                    /* >= 1; 1 = no dilation */
    int pad_top, pad_bottom, pad_left, pad_right;   /* >= 0 */
    int pad_same;     /* 1: TensorFlow "same" (OH = ceil(H/stride), the odd
                         pixel at the bottom/right); the pad_* are ignored */
    int groups;                          /* >= 1 */
    cn_pad_mode pad_mode;
} cn_conv2d_params;

/* Stride 1, dilation 1, no padding, 1 group, zeros. */
CN_API cn_conv2d_params cn_conv2d_params_default(void);

/* A resolved convolution problem, oneDNN's dimension names. Pads may be
 * negative internally (a transposed convolution's output padding crops). */
typedef struct cn_conv2d_desc {
    int64_t MB, IH, IW, IC, OC, OH, OW, KH, KW, G;
    int64_t SH, SW, DH, DW, PT, PB, PL, PR;
    cn_pad_mode mode;
} cn_conv2d_desc;

/* Checks shapes and parameters and fills *d. x_shape is [N,H,W,C_in],
 * w_shape [KH,KW,C_in/G,C_out]. Errors name the offending argument:
 * "conv2d: C_in=6 not divisible by groups=4". */
CN_API cn_status cn_conv2d_setup(cn_conv2d_desc *d, const cn_conv2d_params *p,
                                 const int64_t x_shape[4], const int64_t w_shape[4]);

/* Scratch bytes any pass of this problem may use. */
CN_API size_t cn_conv2d_workspace_size(const cn_conv2d_desc *d);

/* y = conv(x, w) + b. b may be NULL. */
CN_API cn_status cn_conv2d_fwd(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                               const float *w, const float *b, float *y, void *ws);

/* y = max(conv(x, w) + b, 0): the forward pass with ReLU applied as each
 * block of y is written, a pass over y fewer than cn_conv2d_fwd followed by
 * cn_act_fwd(CN_ACT_RELU), with the same result bit for bit (NaN stays
 * NaN). */
CN_API cn_status cn_conv2d_fwd_relu(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                    const float *w, const float *b, float *y, void *ws);

/* gx = dL/dx given gy = dL/dy: the stride-dilated gy convolved with the
 * spatially flipped filter, input and output channels swapped. For non-zero
 * padding modes the gradient of padded pixels flows to the pixels they copy. */
CN_API cn_status cn_conv2d_bwd_data(cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy,
                                    const float *w, float *gx, void *ws);

/* gw = im2col(x)^T gy (per group); gb = sum of gy over N, OH, OW (in double).
 * gw or gb may be NULL to skip it. */
CN_API cn_status cn_conv2d_bwd_weights(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                       const float *gy, float *gw, float *gb, void *ws);

/* ---- conv1d: x [N, L, C_in], w [K, C_in/G, C_out], y [N, OL, C_out] ------
 * The same memory as conv2d with H = KH = 1, so setup fills a conv2d
 * descriptor and the conv2d passes run it. Padding uses pad_left/pad_right
 * (pad_top/pad_bottom, stride_h, dil_h must be left at 0/1/1). */
CN_API cn_status cn_conv1d_setup(cn_conv2d_desc *d, const cn_conv2d_params *p,
                                 const int64_t x_shape[3], const int64_t w_shape[3]);

/* ---- conv_transpose2d --------------------------------------------------
 * x [N, H, W, C_in], w [KH, KW, C_out/G, C_in] (PyTorch's ConvTranspose2d
 * weight.permute(2,3,1,0)), b [C_out], y [N, OH, OW, C_out] with
 *     OH = (H-1)*stride_h - pad_top - pad_bottom + dil_h*(KH-1) + out_pad_h + 1.
 * It is the adjoint of a conv2d whose input is y: setup fills *d with that
 * conv2d (so d->IH, d->IW, d->IC are the transposed conv's OH, OW, C_out).
 * Zero padding only; output padding must be < stride or < dilation. */
typedef struct cn_conv_transpose2d_params {
    cn_conv2d_params conv;               /* pad_same and pad_mode unsupported */
    int out_pad_h, out_pad_w;            /* >= 0 */
} cn_conv_transpose2d_params;

CN_API cn_status cn_conv_transpose2d_setup(cn_conv2d_desc *d,
                                           const cn_conv_transpose2d_params *p,
                                           const int64_t x_shape[4],
                                           const int64_t w_shape[4]);
CN_API cn_status cn_conv_transpose2d_fwd(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                         const float *w, const float *b, float *y, void *ws);
/* gx [N,H,W,C_in] from gy [N,OH,OW,C_out]. */
CN_API cn_status cn_conv_transpose2d_bwd_data(cn_ctx *ctx, const cn_conv2d_desc *d,
                                              const float *gy, const float *w, float *gx,
                                              void *ws);
/* gw [KH,KW,C_out/G,C_in] and gb [C_out] (either may be NULL). */
CN_API cn_status cn_conv_transpose2d_bwd_weights(cn_ctx *ctx, const cn_conv2d_desc *d,
                                                 const float *x, const float *gy, float *gw,
                                                 float *gb, void *ws);

/* ---- building blocks, each with its adjoint ---------------------------- */

/* im2col with zero padding (d->mode is ignored; pad first for other modes):
 * cols [MB*OH*OW, KH*KW*IC], row (n,oh,ow), column (kh,kw,ic), so that for
 * G = 1, y = cols x w viewed as [KH*KW*IC, OC]. */
CN_API size_t cn_im2col_size(const cn_conv2d_desc *d);  /* elements of cols */
CN_API cn_status cn_im2col(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x, float *cols);
/* The adjoint: x = sum of the cols entries that copy each pixel (overwrites x). */
CN_API cn_status cn_col2im(cn_ctx *ctx, const cn_conv2d_desc *d, const float *cols, float *x);

/* Padding as an op: x [N,H,W,C] -> y [N,H+pt+pb,W+pl+pr,C] in mode m.
 * reflect needs pads < the size, symmetric and circular pads <= the size. */
CN_API cn_status cn_pad2d_check(int64_t H, int64_t W, int64_t pt, int64_t pb, int64_t pl,
                                int64_t pr, cn_pad_mode m, const char *op);
CN_API cn_status cn_pad2d_fwd(cn_ctx *ctx, int64_t N, int64_t H, int64_t W, int64_t C,
                              int64_t pt, int64_t pb, int64_t pl, int64_t pr, cn_pad_mode m,
                              const float *x, float *y);
/* gx = adjoint of padding applied to gy (each padded pixel's gradient is
 * added to the pixel it copies; for mean, spread over the channel). */
CN_API cn_status cn_pad2d_bwd(cn_ctx *ctx, int64_t N, int64_t H, int64_t W, int64_t C,
                              int64_t pt, int64_t pb, int64_t pl, int64_t pr, cn_pad_mode m,
                              const float *gy, float *gx);

/* Reverses the axes whose bit is set in axes_mask (bit i = axis i). It is
 * its own adjoint. src and dst must not overlap. */
CN_API cn_status cn_flip(int ndim, const int64_t *shape, unsigned axes_mask, const float *src,
                         float *dst);

/* Inserts (dh-1) zero rows and (dw-1) zero columns between pixels:
 * x [N,H,W,C] -> y [N,(H-1)*dh+1,(W-1)*dw+1,C]. The adjoint picks every
 * dh-th row and dw-th column of gy back out. */
CN_API cn_status cn_dilate2d_fwd(int64_t N, int64_t H, int64_t W, int64_t C, int64_t dh,
                                 int64_t dw, const float *x, float *y);
CN_API cn_status cn_dilate2d_bwd(int64_t N, int64_t H, int64_t W, int64_t C, int64_t dh,
                                 int64_t dw, const float *gy, float *gx);

#ifdef __cplusplus
}
#endif
#endif
