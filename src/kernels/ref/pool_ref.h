/* src/kernels/ref/pool_ref.h - double-precision reference pooling (the oracle).
 *
 * The most obvious loops over the descriptor that cn_pool2d_setup fills,
 * sharing no code with src/ops/pool.c, for the tests to compare against.
 * Layouts as in convnet/pool.h:
 *     x, gx [MB, IH, IW, C]      y, gy, idx [MB, OH, OW, C]
 * Forward passes overwrite y; backward passes overwrite gx.
 */
#ifndef CONVNET_POOL_REF_H
#define CONVNET_POOL_REF_H

#include <stdint.h>

#include "convnet/pool.h"
#include "internal.h"

/* PyTorch's max: the first maximum in (kh, kw) order wins, a NaN replaces
 * anything, including an earlier NaN. idx (nullable) gets ih*IW + iw; a
 * window holding no input pixel (possible with dilation) gives -inf and -1. */
CN__HIDDEN void cn__max_pool2d_ref_fwd(const cn_pool2d_desc *d, const double *x, double *y,
                                       int64_t *idx);
/* gx = 0, then gx[idx] += gy per output element; idx < 0 adds nothing. */
CN__HIDDEN void cn__max_pool2d_ref_bwd(const cn_pool2d_desc *d, const int64_t *idx,
                                       const double *gy, double *gx);

/* Window sum divided by the padded window (clipped to H+pad, W+pad) when
 * d->count_include_pad, else by the number of input pixels in it. */
CN__HIDDEN void cn__avg_pool2d_ref_fwd(const cn_pool2d_desc *d, const double *x, double *y);
/* Each gy spread as gy/divisor over the input pixels of its window. */
CN__HIDDEN void cn__avg_pool2d_ref_bwd(const cn_pool2d_desc *d, const double *gy, double *gx);

#endif
