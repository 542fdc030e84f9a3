/* convnet/convnet.h - everything in one include.
 *
 * convnet is a C11 library for convolutional neural networks on the CPU:
 * NHWC convolutions, pooling and their exact adjoints. Every fallible call
 * returns a cn_status and leaves a message for cn_last_error(); nothing in
 * the library prints, aborts or exits.
 *
 *     #include <convnet/convnet.h>
 *     cn_tensor *x, *w;
 *     cn_npy_read("x.npy", &x);                        // [N,H,W,C_in]
 *     cn_npy_read("w.npy", &w);                        // [KH,KW,C_in,C_out]
 *     cn_conv2d_params p = cn_conv2d_params_default();
 *     p.pad_same = 1;
 *     cn_conv2d_desc d;
 *     if (cn_conv2d_setup(&d, &p, x->shape, w->shape) != CN_OK) {
 *         fprintf(stderr, "%s\n", cn_last_error());
 *         return 1;
 *     }
 *     int64_t ys[4] = {d.MB, d.OH, d.OW, d.OC};
 *     cn_tensor *y;
 *     cn_tensor_new(&y, 4, ys);
 *     cn_conv2d_fwd(NULL, &d, x->data, w->data, NULL, y->data, NULL);
 *     cn_npy_write("y.npy", y);
 */
#ifndef CONVNET_CONVNET_H
#define CONVNET_CONVNET_H

#include "context.h"
#include "conv.h"
#include "data.h"
#include "image.h"
#include "io.h"
#include "autograd.h"
#include "nn.h"
#include "ops.h"
#include "optim.h"
#include "pool.h"
#include "safetensors.h"
#include "status.h"
#include "tensor.h"

#define CN_VERSION_MAJOR 0
#define CN_VERSION_MINOR 1
#define CN_VERSION_PATCH 0
#define CN_VERSION_STRING "0.1.0"

#endif
