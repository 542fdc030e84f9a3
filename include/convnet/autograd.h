/* convnet/autograd.h - reverse-mode automatic differentiation.
 *
 * A cn_graph records every op applied to its variables (the tape) and keeps
 * their values and gradients in an arena that cn_graph_reset empties for the
 * next step without giving memory back, so a training loop allocates only
 * in its first steps.
 *
 *     cn_graph *g;
 *     cn_graph_new(&g, &ctx);
 *     for (each batch) {
 *         cn_graph_reset(g);
 *         cn_var *x = cn_var_wrap(g, 4, xs, batch, NULL, 0);          // input
 *         cn_var *w = cn_var_wrap(g, 4, ws, params, grads, 1);        // parameter
 *         cn_var *y = cn_relu(g, cn_conv2d(g, x, w, NULL, &conv_params));
 *         cn_var *loss = cn_softmax_cross_entropy(g, cn_linear(g, cn_flatten(g, y), fc, NULL), labels);
 *         if (cn_backward(g, loss) != CN_OK) fail(cn_last_error());   // grads += dloss/dw
 *     }
 *     cn_graph_free(g);
 *
 * Errors are sticky: an op given bad shapes returns NULL and records the
 * status; later ops given NULL return NULL; cn_graph_status and
 * cn_backward report the first failure, whose message is cn_last_error().
 *
 * Ownership: the graph owns every cn_var and every buffer it allocates; all
 * become invalid at cn_graph_reset / cn_graph_free. Memory wrapped with
 * cn_var_wrap stays the caller's. Gradients of wrapped variables with a
 * caller-supplied grad buffer ACCUMULATE (+=) like PyTorch's .grad: zero
 * them between steps. Gradients the graph allocates start at zero.
 */
#ifndef CONVNET_AUTOGRAD_H
#define CONVNET_AUTOGRAD_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "conv.h"
#include "ops.h"
#include "pool.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cn_graph cn_graph;

typedef struct cn_var {
    float *data;                  /* size floats */
    float *grad;                  /* dL/d(data) after cn_backward; NULL if none flowed */
    int ndim;
    int64_t shape[CN_MAX_DIMS];
    size_t size;
    int requires_grad;
    /* private to the graph */
    int grad_external_, grad_written_;
} cn_var;

/* ctx (borrowed, must outlive the graph) supplies threads and the RNG that
 * dropout draws from. The caller owns *out; free with cn_graph_free. */
CN_API cn_status cn_graph_new(cn_graph **out, cn_ctx *ctx);
CN_API void cn_graph_free(cn_graph *g);
/* Forgets every variable and the tape; keeps the memory for reuse. */
CN_API void cn_graph_reset(cn_graph *g);
/* With grad disabled (evaluation), ops record nothing: no backward. */
CN_API void cn_graph_set_grad_enabled(cn_graph *g, int enabled);
/* Anomaly detection, for finding where a NaN or infinity first appears (off
 * by default; it costs one pass over every value it checks). Each op that
 * records itself on the tape checks its output, and cn_backward checks every
 * gradient each op's backward writes. The first NaN or infinity fails that
 * op (NULL) or cn_backward with CN_ERR_NUMERIC and a message naming the op
 * and the pass, inputs numbered from 0 in the op's argument order:
 *   "anomaly: conv2d (forward) produced NaN at element 0 of its output
 *    [16,28,28,32] because input 1 [3,3,1,32] holds NaN at element 4"
 *   "anomaly: mul (backward) produced inf in the gradient of input 1 [4] at
 *    element 2"
 * Ops that record nothing are not checked: with grad disabled (evaluation)
 * or when no input requires grad. A training step is covered whole. The
 * setting survives cn_graph_reset. */
CN_API void cn_graph_set_detect_anomaly(cn_graph *g, int on);
CN_API cn_status cn_graph_status(const cn_graph *g);
/* Bytes the arena holds (for tests that the graph does not grow). */
CN_API size_t cn_graph_arena_bytes(const cn_graph *g);

/* A leaf over caller memory: data (not copied) and, if requires_grad, a
 * gradient buffer grad of the same size (NULL: the graph allocates one). */
CN_API cn_var *cn_var_wrap(cn_graph *g, int ndim, const int64_t *shape, float *data, float *grad,
                           int requires_grad);
/* A new leaf with uninitialised data owned by the graph. */
CN_API cn_var *cn_var_new(cn_graph *g, int ndim, const int64_t *shape, int requires_grad);

/* Seeds dloss = 1 for a one-element loss and runs the tape backwards. */
CN_API cn_status cn_backward(cn_graph *g, cn_var *loss);

/* ---- differentiable ops (NULL on error) ------------------------------- */
/* x [N,H,W,Cin], w [KH,KW,Cin/G,Cout], b [Cout] or NULL. */
CN_API cn_var *cn_conv2d(cn_graph *g, cn_var *x, cn_var *w, cn_var *b, const cn_conv2d_params *p);
/* relu(conv2d(x, w, b)) as one op: the ReLU is applied as the convolution
 * writes its output (cn_conv2d_fwd_relu), same values and gradients as the
 * two ops. Models fuse a Conv2d layer followed by a ReLU layer this way. */
CN_API cn_var *cn_conv2d_relu(cn_graph *g, cn_var *x, cn_var *w, cn_var *b,
                              const cn_conv2d_params *p);
/* x [N,L,Cin], w [K,Cin/G,Cout]. */
CN_API cn_var *cn_conv1d(cn_graph *g, cn_var *x, cn_var *w, cn_var *b, const cn_conv2d_params *p);
/* x [N,H,W,Cin], w [KH,KW,Cout/G,Cin]. */
CN_API cn_var *cn_conv_transpose2d(cn_graph *g, cn_var *x, cn_var *w, cn_var *b,
                                   const cn_conv_transpose2d_params *p);
CN_API cn_var *cn_max_pool2d(cn_graph *g, cn_var *x, const cn_pool2d_params *p);
CN_API cn_var *cn_avg_pool2d(cn_graph *g, cn_var *x, const cn_pool2d_params *p);
/* [N,H,W,C] -> [N,C] */
CN_API cn_var *cn_global_avg_pool2d(cn_graph *g, cn_var *x);
/* x [N,IN], w [IN,OUT], b [OUT] or NULL -> [N,OUT] */
CN_API cn_var *cn_linear(cn_graph *g, cn_var *x, cn_var *w, cn_var *b);
/* Elementwise, equal shapes. */
CN_API cn_var *cn_add(cn_graph *g, cn_var *a, cn_var *b);
CN_API cn_var *cn_mul(cn_graph *g, cn_var *a, cn_var *b);
/* relu(a + b) as one op: same values and gradients as the two ops (the
 * residual connection of a ResNet block). */
CN_API cn_var *cn_add_relu(cn_graph *g, cn_var *a, cn_var *b);
CN_API cn_var *cn_relu(cn_graph *g, cn_var *x);
CN_API cn_var *cn_leaky_relu(cn_graph *g, cn_var *x, float slope);
CN_API cn_var *cn_tanh(cn_graph *g, cn_var *x);
CN_API cn_var *cn_sigmoid(cn_graph *g, cn_var *x);
/* Same data, new shape (one dimension may be -1). */
CN_API cn_var *cn_reshape(cn_graph *g, cn_var *x, int ndim, const int64_t *shape);
/* [N, ...] -> [N, prod(...)] */
CN_API cn_var *cn_flatten(cn_graph *g, cn_var *x);
/* Joins n variables along axis; other dimensions must agree. */
CN_API cn_var *cn_concat(cn_graph *g, cn_var *const *xs, int n, int axis);
/* x [N,H,W,C]; gamma, beta [C] variables; running stats [C] caller memory,
 * updated in training mode. */
CN_API cn_var *cn_batch_norm2d(cn_graph *g, cn_var *x, cn_var *gamma, cn_var *beta,
                               float *running_mean, float *running_var, const cn_bn_params *p,
                               int training);
/* relu(batch_norm2d(...)) as one op, the ReLU applied as the batch norm
 * writes its output: same values and gradients as the two ops. Models fuse
 * a BatchNorm2d layer followed by a ReLU layer this way. */
CN_API cn_var *cn_batch_norm2d_relu(cn_graph *g, cn_var *x, cn_var *gamma, cn_var *beta,
                                    float *running_mean, float *running_var,
                                    const cn_bn_params *p, int training);
/* relu(batch_norm2d(x, ...) + res), res shaped as x, as one op: the end
 * of a ResNet block (its last batch norm, the shortcut and the ReLU), same
 * values and gradients as the three ops. */
CN_API cn_var *cn_batch_norm2d_add_relu(cn_graph *g, cn_var *x, cn_var *gamma, cn_var *beta,
                                        float *running_mean, float *running_var,
                                        const cn_bn_params *p, int training, cn_var *res);
/* Identity unless training; p in [0,1). */
CN_API cn_var *cn_dropout(cn_graph *g, cn_var *x, float p, int training);
/* Over the last axis of x [N,K]. */
CN_API cn_var *cn_log_softmax(cn_graph *g, cn_var *x);
/* Mean cross-entropy of logits [N,K] against labels [N] (borrowed, read
 * during the call): a one-element variable. */
CN_API cn_var *cn_softmax_cross_entropy(cn_graph *g, cn_var *logits, const int32_t *labels);
CN_API cn_var *cn_sum(cn_graph *g, cn_var *x);
CN_API cn_var *cn_mean(cn_graph *g, cn_var *x);

#ifdef __cplusplus
}
#endif
#endif
