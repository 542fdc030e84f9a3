/* src/ops/batchnorm_internal.h - the autograd's batch norm + ReLU without a
 * read of y in the backward. */
#ifndef CONVNET_BATCHNORM_INTERNAL_H
#define CONVNET_BATCHNORM_INTERNAL_H

#include "convnet/ops.h"
#include "internal.h"

/* cn_batchnorm_fwd_relu that also writes norm [4][C] (the caller's): the
 * float hi and lo parts of the mean, the scale and the shift it normalised
 * with. x and y must not alias: the backward reads x. */
CN__HIDDEN cn_status cn__batchnorm_fwd_relu_norm(cn_ctx *ctx, const cn_bn_params *p, int training,
                                                 int64_t M, int64_t C, const float *x,
                                                 const float *gamma, const float *beta,
                                                 float *running_mean, float *running_var,
                                                 float *save_mean, float *save_invstd, float *y,
                                                 float *norm);
/* cn_batchnorm_bwd_relu of a training forward, the same values bit for bit,
 * with the ReLU's input recomputed from x and that forward's norm instead of
 * read back from y: its sums pass and its gx pass each read x and gy, not
 * x, y and gy. */
CN__HIDDEN void cn__batchnorm_bwd_relu_norm(cn_ctx *ctx, int64_t M, int64_t C, const float *x,
                                            const float *gamma, const float *save_mean,
                                            const float *save_invstd, const float *norm,
                                            const float *gy, float *gx, float *ggamma,
                                            float *gbeta);

#endif
