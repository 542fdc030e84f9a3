/* src/kernels/ref/conv_ref.h - the convolution oracle: the seven nested loops
 * (n, oh, ow, oc, kh, kw, ic) in double precision, every padding mode by
 * index arithmetic (no padded buffers), and the backward passes written as
 * the literal adjoint of that loop. Slow on purpose; tests only. */
#ifndef CONVNET_CONV_REF_H
#define CONVNET_CONV_REF_H

#include "convnet/conv.h"
#include "internal.h"

/* y = conv(x, w) + b (b nullable), shapes as in convnet/conv.h. */
CN__HIDDEN void cn__conv2d_ref_fwd(const cn_conv2d_desc *d, const double *x, const double *w,
                                   const double *b, double *y);
/* gx = dL/dx: every product x*w of the forward loop sends gy*w back to the
 * pixel x came from (and for mean padding, 1/(H*W) of it to every pixel of
 * the channel). Overwrites gx. */
CN__HIDDEN void cn__conv2d_ref_bwd_data(const cn_conv2d_desc *d, const double *gy,
                                        const double *w, double *gx);
/* gw = dL/dw and gb = dL/db (either nullable). Overwrites them. */
CN__HIDDEN void cn__conv2d_ref_bwd_weights(const cn_conv2d_desc *d, const double *x,
                                           const double *gy, double *gw, double *gb);

#endif
