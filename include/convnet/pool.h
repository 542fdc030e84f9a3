/* convnet/pool.h - max, average and global average pooling in NHWC.
 *
 *     x [N, H, W, C] -> y [N, OH, OW, C]
 *     OH = floor_or_ceil((H + 2*pad_h - dil_h*(KH-1) - 1) / stride_h) + 1
 * with PyTorch's rule that in ceil mode the last window must start inside
 * the input or the top/left padding. Padding is symmetric per axis and at
 * most half the kernel. Max pooling pads with -inf and propagates NaN.
 *
 *     cn_pool2d_params p = cn_pool2d_params_default(2, 2);   // 2x2, stride 2
 *     cn_pool2d_desc d;
 *     if (cn_pool2d_setup(&d, &p, CN_POOL_MAX, x_shape) != CN_OK) ...
 *     cn_max_pool2d_fwd(ctx, &d, x, y, idx);   // idx may be NULL
 *
 * Passes overwrite their outputs. Indices are int64, one per output element
 * (same layout as y), each the flat position h*W + w of the chosen pixel in
 * its input plane, as PyTorch returns them.
 */
#ifndef CONVNET_POOL_H
#define CONVNET_POOL_H

#include <stdint.h>

#include "context.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cn_pool_type { CN_POOL_MAX = 0, CN_POOL_AVG, CN_POOL_TYPE_COUNT } cn_pool_type;

typedef struct cn_pool2d_params {
    int kernel_h, kernel_w;     /* >= 1 */
    int stride_h, stride_w;     /* >= 1; 0 means "equal to the kernel" */
    int pad_h, pad_w;           /* >= 0, <= kernel/2 */
    int dil_h, dil_w;           /* >= 1; max pooling only */
    int ceil_mode;              /* 0/1 */
    int count_include_pad;      /* avg only: divide by the padded window (PyTorch default 1) */
} cn_pool2d_params;

/* kernel kh x kw, stride = kernel, no padding, dilation 1, floor mode,
 * count_include_pad = 1. */
CN_API cn_pool2d_params cn_pool2d_params_default(int kh, int kw);

typedef struct cn_pool2d_desc {
    cn_pool_type type;
    int64_t MB, IH, IW, C, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW;
    int count_include_pad;
} cn_pool2d_desc;

/* x_shape is [N,H,W,C]. Errors name the argument and its value. */
CN_API cn_status cn_pool2d_setup(cn_pool2d_desc *d, const cn_pool2d_params *p, cn_pool_type type,
                                 const int64_t x_shape[4]);

/* y = max over each window; idx (nullable) receives the argmax positions. */
CN_API cn_status cn_max_pool2d_fwd(cn_ctx *ctx, const cn_pool2d_desc *d, const float *x, float *y,
                                   int64_t *idx);
/* gx = scatter of gy to the argmax positions idx from the forward pass. */
CN_API cn_status cn_max_pool2d_bwd(cn_ctx *ctx, const cn_pool2d_desc *d, const int64_t *idx,
                                   const float *gy, float *gx);

CN_API cn_status cn_avg_pool2d_fwd(cn_ctx *ctx, const cn_pool2d_desc *d, const float *x, float *y);
CN_API cn_status cn_avg_pool2d_bwd(cn_ctx *ctx, const cn_pool2d_desc *d, const float *gy,
                                   float *gx);

/* Global average pooling: x [N,H,W,C] -> y [N,C]; the backward spreads
 * gy/(H*W) over every pixel. */
CN_API cn_status cn_global_avg_pool2d_fwd(cn_ctx *ctx, int64_t N, int64_t H, int64_t W, int64_t C,
                                          const float *x, float *y);
CN_API cn_status cn_global_avg_pool2d_bwd(cn_ctx *ctx, int64_t N, int64_t H, int64_t W, int64_t C,
                                          const float *gy, float *gx);

#ifdef __cplusplus
}
#endif
#endif
