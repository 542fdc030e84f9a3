/* bench/onednn.h - the same convolution in oneDNN, for `convnet bench --compare onednn`.
 *
 * Compiled into the convnet tool only when CMake finds Debian's libdnnl-dev
 * (oneDNN 2.x, C API, OpenMP runtime); the tool then defines CN_HAVE_ONEDNN.
 *
 *     bench_onednn *o;
 *     char err[256];
 *     if (bench_onednn_new(&o, &d, BENCH_FWD, 2, x, w, gy, err, sizeof err)) fail(err);
 *     bench_onednn_run(o);                        // one execution, waits for it
 *     printf("%s\n", bench_onednn_impl(o));       // e.g. "brg:avx512_core"
 *     bench_onednn_free(o);
 *
 * Activations are NHWC (oneDNN's nhwc tag: convnet's layout, so x and gy are
 * used in place); the weights are described by convnet's [KH,KW,IC/G,OC]
 * strides and reordered once, outside any timing, into the layout the
 * primitive asks for (format `any`). Outputs go to buffers the object owns;
 * the scratchpad is user-managed and allocated once. oneDNN's dilation is
 * convnet's minus one. Bias is neither used nor computed, as in the convnet
 * runs of the benchmark.
 */
#ifndef CN_BENCH_ONEDNN_H
#define CN_BENCH_ONEDNN_H

#include <stddef.h>

#include "convnet/conv.h"
#include "convnet/tensor.h"

typedef enum bench_pass {
    BENCH_FWD,
    BENCH_BWD_DATA,
    BENCH_BWD_WEIGHTS,
    BENCH_PASS_COUNT
} bench_pass;

typedef struct bench_onednn bench_onednn;

/* Creates the primitive of pass `pass` for problem d with `threads` OpenMP
 * threads (oneDNN sizes its work split when the primitive is created, so the
 * thread count is fixed here). x [MB,IH,IW,IC], w [KH,KW,IC/G,OC] and gy
 * [MB,OH,OW,OC] must outlive the object (x and gy are read in place). Returns
 * 0, or -1 with a one-line message in err. */
int bench_onednn_new(bench_onednn **out, const cn_conv2d_desc *d, bench_pass pass, int threads,
                     const float *x, const float *w, const float *gy, char *err, size_t errlen);
/* Runs the pass once on the object's thread count and waits for it; 0 or -1. */
int bench_onednn_run(bench_onednn *o);
/* oneDNN's name of the implementation it chose (valid until _free). */
const char *bench_onednn_impl(const bench_onednn *o);
void bench_onednn_free(bench_onednn *o);
/* "2.6.3" */
const char *bench_onednn_version(void);

#endif
