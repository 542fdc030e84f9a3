/* src/kernels/ref/ops_ref.h - double-precision references for convnet/ops.h
 * (the oracles): the textbook formulas, one output element at a time,
 * sharing no code with src/ops. The tests compare the float ops against
 * them and take central differences of them to check every backward.
 * Shapes and semantics as in convnet/ops.h; forward passes overwrite y. */
#ifndef CONVNET_OPS_REF_H
#define CONVNET_OPS_REF_H

#include <stddef.h>
#include <stdint.h>

#include "convnet/ops.h"
#include "internal.h"

/* y [n] = act(x). */
CN__HIDDEN void cn__act_ref_fwd(cn_act a, double slope, size_t n, const double *x, double *y);

/* y [N,OUT] = x [N,IN] w [IN,OUT] + b [OUT] (b nullable). */
CN__HIDDEN void cn__linear_ref_fwd(int64_t N, int64_t IN, int64_t OUT, const double *x,
                                   const double *w, const double *b, double *y);

/* Batch norm of x [M,C] per channel. Training normalises with the batch
 * mean and biased variance and, when running_mean and running_var [C] are
 * not NULL, updates them (unbiased variance, PyTorch's momentum); evaluation
 * normalises with running_mean and running_var. gamma, beta nullable (1, 0). */
CN__HIDDEN void cn__batchnorm_ref_fwd(int training, double eps, double momentum, int64_t M,
                                      int64_t C, const double *x, const double *gamma,
                                      const double *beta, double *running_mean,
                                      double *running_var, double *y);

/* Rows of x, y [N,K]. */
CN__HIDDEN void cn__softmax_ref_fwd(int64_t N, int64_t K, const double *x, double *y);
CN__HIDDEN void cn__log_softmax_ref_fwd(int64_t N, int64_t K, const double *x, double *y);
/* Mean over rows of -log softmax(x)[label]; labels must be in [0, K). */
CN__HIDDEN double cn__xent_ref_fwd(int64_t N, int64_t K, const double *x, const int32_t *labels);

#endif
