/* convnet/ops.h - the non-convolution ops on raw buffers: activations,
 * linear, batch norm, dropout, softmax and the losses, each forward and
 * backward side by side. The autodiff graph (convnet/autograd.h) is built
 * on these.
 *
 * Conventions: n is an element count; shapes are in comments. Forward
 * passes overwrite y. Backward passes OVERWRITE their gradient outputs
 * (the graph adds them into accumulators itself). ctx may be NULL.
 */
#ifndef CONVNET_OPS_H
#define CONVNET_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- elementwise ------------------------------------------------------- */
typedef enum cn_act {
    CN_ACT_RELU = 0,    /* max(x, 0); NaN stays NaN */
    CN_ACT_LEAKY_RELU,  /* x > 0 ? x : slope*x */
    CN_ACT_TANH,
    CN_ACT_SIGMOID,
    CN_ACT_COUNT
} cn_act;

/* y = act(x); x and y may alias. slope is used by leaky relu only. */
CN_API void cn_act_fwd(cn_ctx *ctx, cn_act a, float slope, size_t n, const float *x, float *y);
/* gx = gy * act'(x) given the forward input x and output y; gx may alias gy.
 * relu, tanh and sigmoid read y only; leaky relu reads x only (the sign of x
 * is lost in y when slope < 0), and for slope >= 0 it may be handed the
 * output of an in-place forward instead. The pointer not read may be NULL.
 * A NaN in x gives NaN in y and in gx. */
CN_API void cn_act_bwd(cn_ctx *ctx, cn_act a, float slope, size_t n, const float *x,
                       const float *y, const float *gy, float *gx);

/* ---- linear: y [N, OUT] = x [N, IN] w [IN, OUT] + b [OUT] ---------------
 * w is stored [IN, OUT] (PyTorch's weight.T), so that y = x w; b may be
 * NULL. Results do not depend on ctx's thread count. */
CN_API void cn_linear_fwd(cn_ctx *ctx, int64_t N, int64_t IN, int64_t OUT, const float *x,
                          const float *w, const float *b, float *y);
/* gx [N,IN] = gy w^T; gw [IN,OUT] = x^T gy; gb [OUT] = sum_n gy. Any output
 * may be NULL to skip it. */
CN_API void cn_linear_bwd(cn_ctx *ctx, int64_t N, int64_t IN, int64_t OUT, const float *x,
                          const float *w, const float *gy, float *gx, float *gw, float *gb);

/* ---- batch norm over NHWC: statistics per channel over N*H*W ------------
 * Training: y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta with the
 * batch's biased variance; the running statistics are updated in place with
 * PyTorch's convention running = (1 - momentum) * running + momentum * batch,
 * the running variance taking the unbiased batch variance. save_mean and
 * save_invstd [C] keep what the backward needs. Evaluation (training = 0)
 * normalises with the running statistics and leaves them alone, and fills
 * save_mean = running_mean, save_invstd = 1 / sqrt(running_var + eps) so
 * that the backward takes the same arguments in both modes.
 * M = N*H*W pixels of C channels: x and y are [M, C] and may alias.
 * p NULL means the defaults below; gamma and beta NULL mean 1 and 0 (no
 * affine); running_mean, running_var, save_mean, save_invstd may be NULL in
 * training (not updated / not saved); evaluation needs the running pair.
 * CN_ERR_INVALID_ARG for training with M < 2 (no variance, as PyTorch), a
 * negative eps or a momentum outside [0, 1]. */
typedef struct cn_bn_params {
    float eps;       /* 1e-5 */
    float momentum;  /* 0.1 */
} cn_bn_params;

CN_API cn_status cn_batchnorm_fwd(cn_ctx *ctx, const cn_bn_params *p, int training, int64_t M,
                                  int64_t C, const float *x, const float *gamma, const float *beta,
                                  float *running_mean, float *running_var, float *save_mean,
                                  float *save_invstd, float *y);
/* relu(cn_batchnorm_fwd(...)) in one pass over y, the same values bit for
 * bit (the ReLU as cn_act_fwd's: NaN stays NaN). */
CN_API cn_status cn_batchnorm_fwd_relu(cn_ctx *ctx, const cn_bn_params *p, int training,
                                       int64_t M, int64_t C, const float *x, const float *gamma,
                                       const float *beta, float *running_mean, float *running_var,
                                       float *save_mean, float *save_invstd, float *y);
/* relu(cn_batchnorm_fwd(...) + res), res [M,C], in one pass over y, the
 * same values bit for bit as the three steps; y may alias x or res. The
 * backward is cn_batchnorm_bwd_add_relu with this y. */
CN_API cn_status cn_batchnorm_fwd_add_relu(cn_ctx *ctx, const cn_bn_params *p, int training,
                                           int64_t M, int64_t C, const float *x,
                                           const float *gamma, const float *beta,
                                           float *running_mean, float *running_var,
                                           float *save_mean, float *save_invstd, const float *res,
                                           float *y);
/* Backward of the forward pass with the same `training`: gx [M,C], ggamma
 * [C], gbeta [C] (each nullable), from the forward's save_mean and
 * save_invstd [C]; gamma NULL means 1. In training gx includes the paths
 * through the batch mean and variance; in evaluation gx = gy * gamma *
 * save_invstd. */
CN_API void cn_batchnorm_bwd(cn_ctx *ctx, int training, int64_t M, int64_t C, const float *x,
                             const float *gamma, const float *save_mean, const float *save_invstd,
                             const float *gy, float *gx, float *ggamma, float *gbeta);
/* Backward of cn_batchnorm_fwd_relu, whose output y [M,C] it reads: gy is
 * taken through the ReLU first (as cn_act_bwd's), then as above. gx may not
 * alias y. */
CN_API void cn_batchnorm_bwd_relu(cn_ctx *ctx, int training, int64_t M, int64_t C,
                                  const float *x, const float *gamma, const float *save_mean,
                                  const float *save_invstd, const float *y, const float *gy,
                                  float *gx, float *ggamma, float *gbeta);
/* Backward of cn_batchnorm_fwd_add_relu, whose output y [M,C] it reads:
 * as cn_batchnorm_bwd_relu, and also gres [M,C] (nullable) = the
 * residual's gradient, the ReLU's (as cn_act_bwd's), from the same reads
 * of y and gy. gres may not alias x, y, gy or gx; the values are those of
 * cn_act_bwd then cn_batchnorm_bwd_relu, bit for bit. */
CN_API void cn_batchnorm_bwd_add_relu(cn_ctx *ctx, int training, int64_t M, int64_t C,
                                      const float *x, const float *gamma, const float *save_mean,
                                      const float *save_invstd, const float *y, const float *gy,
                                      float *gres, float *gx, float *ggamma, float *gbeta);

/* ---- dropout: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) from ctx's RNG.
 * mask [n] (bytes, 0 or 1) is kept for the backward. p in [0, 1); p >= 1
 * drops everything (y = x * 0). The mask is drawn in element order, one
 * uniform per element, so a seed fixes it. ctx must not be NULL when p > 0:
 * a generator that advances between calls is what makes each step's mask
 * new. With ctx NULL, or p <= 0, nothing is drawn and y = x (mask all 1).
 * A dropped NaN or inf gives NaN, as x * 0 does. x and y may alias. */
CN_API void cn_dropout_fwd(cn_ctx *ctx, float p, size_t n, const float *x, uint8_t *mask, float *y);
CN_API void cn_dropout_bwd(float p, size_t n, const uint8_t *mask, const float *gy, float *gx);

/* ---- softmax family over the last axis: x, y [N, K] --------------------- */
CN_API void cn_log_softmax_fwd(int64_t N, int64_t K, const float *x, float *y);
/* gx = gy - softmax * sum(gy) per row, from the forward output y. */
CN_API void cn_log_softmax_bwd(int64_t N, int64_t K, const float *y, const float *gy, float *gx);
CN_API void cn_softmax_fwd(int64_t N, int64_t K, const float *x, float *y);

/* Mean softmax cross-entropy of logits x [N, K] against integer labels
 * [N] (each in [0, K)), computed with log-sum-exp so large logits do not
 * overflow. probs [N, K] (nullable) receives the softmax for the backward.
 * Returns CN_ERR_INVALID_ARG for a label out of range (the message names
 * the label and its index) or N < 1 or K < 1; nothing is written then. */
CN_API cn_status cn_xent_fwd(int64_t N, int64_t K, const float *x, const int32_t *labels,
                             float *probs, float *loss);
/* gx = (probs - onehot(labels)) * g / N, g the gradient of the loss. */
CN_API void cn_xent_bwd(int64_t N, int64_t K, const float *probs, const int32_t *labels, float g,
                        float *gx);

#ifdef __cplusplus
}
#endif
#endif
