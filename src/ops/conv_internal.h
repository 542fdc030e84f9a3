/* src/ops/conv_internal.h - pieces shared by the convolution files. */
#ifndef CONVNET_CONV_INTERNAL_H
#define CONVNET_CONV_INTERNAL_H

#include "convnet/conv.h"
#include "convnet/ops.h"
#include "internal.h"

/* Source index of padded coordinate i (may be < 0 or >= n) in a line of n
 * pixels under mode m, or -1 where the padded value is not a copy (zeros,
 * mean). Valid only for pads that cn_pad2d_check accepts. */
CN__HIDDEN int64_t cn__pad_src(int64_t i, int64_t n, cn_pad_mode m);

/* 1 if d pads with something other than zeros (the input is then padded
 * into the workspace first). */
CN__HIDDEN int cn__conv_pads_explicitly(const cn_conv2d_desc *d);

/* Backward-data that adds to gx (gx += the gradient cn_conv2d_bwd_data
 * would write) instead of overwriting it, so that a second consumer's
 * gradient needs no buffer of its own and no separate sum: for problems
 * where cn__conv2d_bwd_data_accumulates says so (else
 * CN_ERR_INVALID_ARG). Same workspace as cn_conv2d_bwd_data. */
CN__HIDDEN int cn__conv2d_bwd_data_accumulates(const cn_conv2d_desc *d);
CN__HIDDEN cn_status cn__conv2d_bwd_data_acc(cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy,
                                             const float *w, float *gx, void *ws);

/* The plain direct convolution with implicit zero padding: pixels outside
 * [0,IH) x [0,IW) read as zero, so pads may be negative (cropping).
 * y [MB,OH,OW,OC] = x [MB,IH,IW,IC] * w [KH,KW,IC/G,OC] + b. d->mode and
 * d->PB/d->PR are ignored: d->OH and d->OW say how much to compute. */
CN__HIDDEN void cn__conv2d_direct(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                  const float *w, const float *b, float *y);

/* The GEMM path (conv2d_gemm.c), for zero-padded problems (pads may be
 * negative). applies: whether to use it (CN_CONV_IMPL=direct|gemm in the
 * environment forces a path, for tests); ws: bytes of cols it needs. */
CN__HIDDEN int cn__conv_gemm_applies(const cn_conv2d_desc *d);
CN__HIDDEN size_t cn__conv_gemm_ws(const cn_conv2d_desc *d);
/* relu: y = max(y, 0) as each chunk is written (cn_conv2d_fwd_relu). */
CN__HIDDEN cn_status cn__conv2d_gemm_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                         const float *w, const float *b, int relu, float *y,
                                         float *cols);
/* Whether cn__conv2d_gemm_bwd_data runs the implicit kernel (AVX-512, deep
 * enough channels): then it serves stride 1 too, without col2im. */
CN__HIDDEN int cn__conv_gemm_bwd_implicit(const cn_conv2d_desc *d);
/* gx is overwritten, or with acc added to; wt is scratch of
 * KH*KW*(OC/G)*IC floats. */
CN__HIDDEN cn_status cn__conv2d_gemm_bwd_data(const cn_ctx *ctx, const cn_conv2d_desc *d,
                                              const float *gy, const float *w, int acc, float *gx,
                                              float *wt, float *cols);
/* gw is overwritten. */
CN__HIDDEN cn_status cn__conv2d_gemm_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d,
                                                 const float *x, const float *gy, float *gw,
                                                 float *cols);

/* The channel-vectorised direct kernels (conv2d_direct.c, which hands
 * depthwise problems to conv2d_depthwise.c) for zero-padded problems (pads
 * may be negative): depthwise (C_in = C_out = groups) and small groups
 * (C_out/groups a multiple of 8, few input channels per group). fwd also
 * serves backward-data on the flipped problem; bwd_weights needs
 * cn__conv_vec_bww_ws(d) bytes of scratch in part and overwrites gw. */
CN__HIDDEN int cn__conv_dw_applies(const cn_conv2d_desc *d);
CN__HIDDEN int cn__conv_grouped_applies(const cn_conv2d_desc *d);
CN__HIDDEN size_t cn__conv_vec_bww_ws(const cn_conv2d_desc *d);
CN__HIDDEN void cn__conv2d_vec_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                   const float *w, const float *b, int relu, float *y);
/* The same over x dilated by ish x isw without storing the zeros: d->IH x
 * d->IW is the dilated extent, x holds ((IH-1)/ish+1) x ((IW-1)/isw+1)
 * pixels (backward-data of a strided convolution, no bias). */
CN__HIDDEN void cn__conv2d_vec_fwd_dilated(const cn_ctx *ctx, const cn_conv2d_desc *d,
                                           const float *x, const float *w, int64_t ish, int64_t isw,
                                           float *y);
CN__HIDDEN void cn__conv2d_vec_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d,
                                           const float *x, const float *gy, float *gw, float *part);

/* The AVX-512 kernel for groups of 8 output channels, taken two groups a
 * zmm (conv2d_grouped.c): an even number of groups, up to 16 input channels
 * each, any stride, dilation and zero padding (pads may be negative); on
 * other CPUs (or CN_ISA below avx512) it does not apply. Needs
 * cn__conv_grp8_ws(d) bytes of ws (0 where it does not apply). */
CN__HIDDEN int cn__conv_grp8_applies(const cn_conv2d_desc *d);
CN__HIDDEN size_t cn__conv_grp8_ws(const cn_conv2d_desc *d);
CN__HIDDEN void cn__conv2d_grp8_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                    const float *w, const float *b, int relu, float *y, void *ws);
/* Its weight gradient, for 8 input channels a group and 3-wide, stride-1,
 * undilated kernel rows (gw overwritten), in cn__conv_grp8_bww_ws(d) bytes
 * of ws. */
CN__HIDDEN int cn__conv_grp8_bww_applies(const cn_conv2d_desc *d);
CN__HIDDEN size_t cn__conv_grp8_bww_ws(const cn_conv2d_desc *d);
CN__HIDDEN void cn__conv2d_grp8_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d,
                                            const float *x, const float *gy, float *gw, void *ws);

/* The few-input-channel kernels (conv2d_fewch.c): G = 1, C_in <= 4, C_out
 * a multiple of 16, zero-padded (pads may be negative), on AVX-512 only
 * (applies is 0 elsewhere). bwd_weights needs cn__conv_fewch_bww_ws(d)
 * bytes of scratch in part and overwrites gw. */
CN__HIDDEN int cn__conv_fewch_applies(const cn_conv2d_desc *d);
CN__HIDDEN size_t cn__conv_fewch_bww_ws(const cn_conv2d_desc *d);
CN__HIDDEN void cn__conv2d_fewch_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                     const float *w, const float *b, int relu, float *y);
CN__HIDDEN void cn__conv2d_fewch_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d,
                                             const float *x, const float *gy, float *gw,
                                             float *part);
/* gx (+)= the input gradient (acc: added to gx). */
CN__HIDDEN void cn__conv2d_fewch_bwd_data(const cn_ctx *ctx, const cn_conv2d_desc *d,
                                          const float *gy, const float *w, int acc, float *gx);

/* The depthwise kernels (conv2d_depthwise.c) behind the vec entry points:
 * forward over x dilated by ish x isw (1 x 1: plain; bias and relu as in
 * cn__conv2d_vec_fwd), and the weight gradient in cn__conv_dw_bww_ws(d)
 * bytes of part. */
CN__HIDDEN size_t cn__conv_dw_bww_ws(const cn_conv2d_desc *d);
CN__HIDDEN void cn__conv2d_dw_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                  const float *w, const float *b, int relu, float *y, int64_t ish,
                                  int64_t isw);
CN__HIDDEN void cn__conv2d_dw_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d,
                                          const float *x, const float *gy, float *gw, float *part);

/* Winograd F(2x2, 3x3) or F(4x4, 3x3) (conv2d_winograd.c) for zero-padded 3x3, stride-1,
 * undilated, ungrouped problems with at least 16 input and output channels;
 * ws: cn__conv_winograd_ws(d) bytes (0 where it does not apply). */
CN__HIDDEN int cn__conv_winograd_applies(const cn_conv2d_desc *d);
/* "winograd4" where it runs F(4x4, 3x3), "winograd" for F(2x2, 3x3). */
CN__HIDDEN const char *cn__conv_winograd_name(const cn_conv2d_desc *d);
CN__HIDDEN size_t cn__conv_winograd_ws(const cn_conv2d_desc *d);
/* acc: y += the convolution (b NULL, relu 0) instead of y = it. */
CN__HIDDEN void cn__conv2d_winograd_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                        const float *w, const float *b, int relu, int acc, float *y,
                                        void *ws);
/* The weight gradient the same way (gw overwritten), in
 * cn__conv_winograd_bww_ws(d) bytes of ws. */
CN__HIDDEN size_t cn__conv_winograd_bww_ws(const cn_conv2d_desc *d);
CN__HIDDEN void cn__conv2d_winograd_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d,
                                                const float *x, const float *gy, float *gw,
                                                void *ws);

/* Winograd F(4x4, 3x3) for groups of 8 input and 8 output channels, four
 * groups a pair of zmm (conv2d_gwino.c): a multiple of 4 groups, 3x3,
 * stride 1, undilated, zero-padded (pads may be negative), on AVX-512 only
 * (applies is 0 elsewhere); the forward with bias and fused ReLU as
 * cn__conv2d_winograd_fwd; ws: cn__conv_gwino_ws(d) bytes. */
CN__HIDDEN int cn__conv_gwino_applies(const cn_conv2d_desc *d);
CN__HIDDEN size_t cn__conv_gwino_ws(const cn_conv2d_desc *d);
CN__HIDDEN void cn__conv2d_gwino_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                     const float *w, const float *b, int relu, float *y, void *ws);
/* Its weight gradient (gw overwritten), in cn__conv_gwino_bww_ws(d) bytes
 * of ws. */
CN__HIDDEN size_t cn__conv_gwino_bww_ws(const cn_conv2d_desc *d);
CN__HIDDEN void cn__conv2d_gwino_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d,
                                             const float *x, const float *gy, float *gw, void *ws);

/* Threads the GEMM and Winograd workspaces hold per-thread blocks for (the
 * CPUs, at least 2, at most 16); a context asking for more runs on these. */
CN__HIDDEN int cn__conv_ws_threads(void);

/* The fewest chunks the GEMM and Winograd forward and backward-data cut a
 * small batch into, where it has rows or tiles enough, so that the threads
 * share it (conv2d_gemm.c's task_rows, conv2d_winograd.c's fwd_tiles). */
#define CN__MIN_CHUNKS 8

/* The implementation each pass of d runs ("gemm", "direct", "depthwise",
 * "grouped", "fewch", "winograd", "winograd4", "grouped-winograd4"), as the
 * passes choose it: for benchmarks and tests.
 * pass: 0 forward, 1 backward-data, 2 backward-weights. */
CN__HIDDEN const char *cn__conv2d_impl_name(const cn_conv2d_desc *d, int pass);

/* The direct kernels' geometry (conv2d_direct.c, conv2d_depthwise.c). */
/* Output columns [lo, hi) whose taps all fall inside the input row. */
static inline void cn__interior_cols(const cn_conv2d_desc *d, int64_t *lo, int64_t *hi)
{
    int64_t a = d->PL <= 0 ? 0 : (d->PL + d->SW - 1) / d->SW;
    int64_t t = d->IW - 1 + d->PL - (d->KW - 1) * d->DW;
    int64_t b = t < 0 ? 0 : CN__MIN(d->OW, t / d->SW + 1);
    *lo = CN__MIN(a, b), *hi = b;
}

/* Input pixel (ih, iw) of image n, or NULL where it reads as zero: outside
 * the input, or, with input dilation ish x isw (backward-data of a strided
 * convolution: the output gradient with ish-1 zero rows between its rows,
 * never stored), between real pixels. d->IH x d->IW is the dilated extent. */
static inline const float *cn__src_px(const cn_conv2d_desc *d, const float *x, int64_t n,
                                      int64_t ih, int64_t iw, int64_t ish, int64_t isw)
{
    if (ih < 0 || ih >= d->IH || iw < 0 || iw >= d->IW || ih % ish || iw % isw) return NULL;
    const int64_t IHr = (d->IH - 1) / ish + 1, IWr = (d->IW - 1) / isw + 1;
    return x + ((n * IHr + ih / ish) * IWr + iw / isw) * d->IC;
}

/* Element i of a weight gradient kept as chunk partials part[k*stride + i]:
 * their sum in chunk order, into gw[i]. The last step of the direct
 * kernels' fixed-order reductions. */
static inline void cn__sum_chunks(const float *part, int chunks, int64_t stride, int64_t i,
                                  float *gw)
{
    float s = 0.0f;
    for (int k = 0; k < chunks; k++) s += part[k * stride + i];
    gw[i] = s;
}

/* Carves a block of `bytes` out of a workspace at *off (64-byte aligned
 * blocks, one after another); NULL base only measures. */
static inline void *cn__ws_take(char *base, size_t *off, size_t bytes)
{
    void *p = base ? base + *off : NULL;
    *off += (bytes + 63) / 64 * 64;
    return p;
}

#endif
