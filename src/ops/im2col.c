/* Building blocks of the convolution and their adjoints: im2col / col2im,
 * flip, dilate. */
#include <string.h>

#include "ops/conv_internal.h"

size_t cn_im2col_size(const cn_conv2d_desc *d)
{
    return (size_t)(d->MB * d->OH * d->OW) * (size_t)(d->KH * d->KW * d->IC);
}

/* Row (n,oh,ow), column block (kh,kw) holds the IC channels of the pixel the
 * kernel tap reads, or zeros where it falls in the padding. */
cn_status cn_im2col(cn_ctx *ctx, const cn_conv2d_desc *d, const float *x, float *cols)
{
    (void)ctx;
    const size_t c = (size_t)d->IC;
    for (int64_t n = 0; n < d->MB; n++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++) {
                float *row = cols + ((n * d->OH + oh) * d->OW + ow) * d->KH * d->KW * d->IC;
                for (int64_t kh = 0; kh < d->KH; kh++) {
                    int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                    for (int64_t kw = 0; kw < d->KW; kw++, row += c) {
                        int64_t iw = ow * d->SW - d->PL + kw * d->DW;
                        if (ih < 0 || ih >= d->IH || iw < 0 || iw >= d->IW)
                            memset(row, 0, c * sizeof *row);
                        else
                            memcpy(row, x + ((n * d->IH + ih) * d->IW + iw) * d->IC,
                                   c * sizeof *row);
                    }
                }
            }
    return CN_OK;
}

cn_status cn_col2im(cn_ctx *ctx, const cn_conv2d_desc *d, const float *cols, float *x)
{
    (void)ctx;
    memset(x, 0, (size_t)(d->MB * d->IH * d->IW * d->IC) * sizeof *x);
    for (int64_t n = 0; n < d->MB; n++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++) {
                const float *row = cols + ((n * d->OH + oh) * d->OW + ow) * d->KH * d->KW * d->IC;
                for (int64_t kh = 0; kh < d->KH; kh++) {
                    int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                    for (int64_t kw = 0; kw < d->KW; kw++, row += d->IC) {
                        int64_t iw = ow * d->SW - d->PL + kw * d->DW;
                        if (ih < 0 || ih >= d->IH || iw < 0 || iw >= d->IW) continue;
                        float *xp = x + ((n * d->IH + ih) * d->IW + iw) * d->IC;
                        for (int64_t c = 0; c < d->IC; c++) xp[c] += row[c];
                    }
                }
            }
    return CN_OK;
}

cn_status cn_flip(int ndim, const int64_t *shape, unsigned axes_mask, const float *src, float *dst)
{
    size_t n;
    cn_status s = cn_shape_numel(ndim, shape, &n);
    if (s) return s;
    if (axes_mask >> ndim)
        return cn__err(CN_ERR_INVALID_ARG, "flip: axes mask 0x%x names an axis >= ndim=%d",
                       axes_mask, ndim);
    /* Walk dst in order, carrying the source index along with a multi-index. */
    int64_t idx[CN_MAX_DIMS] = {0}, stride[CN_MAX_DIMS] = {0};
    int64_t st = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = st;
        st *= shape[i];
    }
    for (size_t k = 0; k < n; k++) {
        int64_t off = 0;
        for (int i = 0; i < ndim; i++)
            off += ((axes_mask >> i) & 1 ? shape[i] - 1 - idx[i] : idx[i]) * stride[i];
        dst[k] = src[off];
        for (int i = ndim - 1; i >= 0 && ++idx[i] == shape[i]; i--) idx[i] = 0;
    }
    return CN_OK;
}

/* Checks both directions' arguments; y's shape [N,OH,OW,C] must be
 * countable (cn_shape_numel) so that no index below wraps. */
static cn_status check_dilate(int64_t N, int64_t H, int64_t W, int64_t C, int64_t dh, int64_t dw)
{
    const char *const names[6] = {"N", "H", "W", "C", "dh", "dw"};
    const int64_t v[6] = {N, H, W, C, dh, dw}, least[6] = {0, 1, 1, 0, 1, 1};
    for (int i = 0; i < 6; i++)
        if (v[i] < least[i])
            return cn__err(CN_ERR_INVALID_ARG, "dilate2d: %s=%lld must be >= %lld", names[i],
                           (long long)v[i], (long long)least[i]);
    int64_t oh, ow;
    size_t n;
    if (cn__mul_i64(H - 1, dh, &oh) || oh == INT64_MAX || cn__mul_i64(W - 1, dw, &ow) ||
        ow == INT64_MAX ||
        cn_shape_numel(4, (const int64_t[4]){N, H, W, C}, &n) ||
        cn_shape_numel(4, (const int64_t[4]){N, oh + 1, ow + 1, C}, &n))
        return cn__err(CN_ERR_OVERFLOW,
                       "dilate2d: [%lld,%lld,%lld,%lld] dilated by dh=%lld dw=%lld: element "
                       "count overflows",
                       (long long)N, (long long)H, (long long)W, (long long)C, (long long)dh,
                       (long long)dw);
    return CN_OK;
}

cn_status cn_dilate2d_fwd(int64_t N, int64_t H, int64_t W, int64_t C, int64_t dh, int64_t dw,
                          const float *x, float *y)
{
    cn_status s = check_dilate(N, H, W, C, dh, dw);
    if (s) return s;
    const int64_t OH = (H - 1) * dh + 1, OW = (W - 1) * dw + 1;
    memset(y, 0, (size_t)(N * OH * OW * C) * sizeof *y);
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                memcpy(y + ((n * OH + h * dh) * OW + w * dw) * C, x + ((n * H + h) * W + w) * C,
                       (size_t)C * sizeof *y);
    return CN_OK;
}

cn_status cn_dilate2d_bwd(int64_t N, int64_t H, int64_t W, int64_t C, int64_t dh, int64_t dw,
                          const float *gy, float *gx)
{
    cn_status s = check_dilate(N, H, W, C, dh, dw);
    if (s) return s;
    const int64_t OH = (H - 1) * dh + 1, OW = (W - 1) * dw + 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                memcpy(gx + ((n * H + h) * W + w) * C, gy + ((n * OH + h * dh) * OW + w * dw) * C,
                       (size_t)C * sizeof *gx);
    return CN_OK;
}
