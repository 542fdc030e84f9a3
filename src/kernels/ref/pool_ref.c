/* Reference pooling in double precision: one output element at a time, no
 * precomputed ranges, every window element tested against the input bounds. */
#include <math.h>
#include <stddef.h>

#include "pool_ref.h"

/* Flat NHWC offset. */
static size_t at(const cn_pool2d_desc *d, int64_t n, int64_t h, int64_t w, int64_t c, int out)
{
    int64_t H = out ? d->OH : d->IH, W = out ? d->OW : d->IW;
    return (size_t)(((n * H + h) * W + w) * d->C + c);
}

void cn__max_pool2d_ref_fwd(const cn_pool2d_desc *d, const double *x, double *y, int64_t *idx)
{
    for (int64_t n = 0; n < d->MB; n++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++)
                for (int64_t c = 0; c < d->C; c++) {
                    double best = -INFINITY;
                    int64_t bi = -1;
                    for (int64_t kh = 0; kh < d->KH; kh++)
                        for (int64_t kw = 0; kw < d->KW; kw++) {
                            int64_t ih = oh * d->SH - d->PH + kh * d->DH;
                            int64_t iw = ow * d->SW - d->PW + kw * d->DW;
                            if (ih < 0 || ih >= d->IH || iw < 0 || iw >= d->IW) continue;
                            double v = x[at(d, n, ih, iw, c, 0)];
                            /* The first pixel is taken even at -inf, as PyTorch
                             * starts from the first in-bounds index. */
                            if (bi < 0 || v > best || isnan(v)) {
                                best = v;
                                bi = ih * d->IW + iw;
                            }
                        }
                    y[at(d, n, oh, ow, c, 1)] = best;
                    if (idx) idx[at(d, n, oh, ow, c, 1)] = bi;
                }
}

void cn__max_pool2d_ref_bwd(const cn_pool2d_desc *d, const int64_t *idx, const double *gy,
                            double *gx)
{
    for (int64_t n = 0; n < d->MB; n++)
        for (int64_t h = 0; h < d->IH; h++)
            for (int64_t w = 0; w < d->IW; w++)
                for (int64_t c = 0; c < d->C; c++) gx[at(d, n, h, w, c, 0)] = 0.0;
    for (int64_t n = 0; n < d->MB; n++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++)
                for (int64_t c = 0; c < d->C; c++) {
                    int64_t i = idx[at(d, n, oh, ow, c, 1)];
                    if (i < 0) continue;
                    gx[at(d, n, i / d->IW, i % d->IW, c, 0)] += gy[at(d, n, oh, ow, c, 1)];
                }
}

/* PyTorch's divisor for output (oh, ow); 0 for a window without pixels. */
static double avg_divisor(const cn_pool2d_desc *d, int64_t oh, int64_t ow)
{
    int64_t hs = oh * d->SH - d->PH, ws = ow * d->SW - d->PW;
    int64_t he = hs + d->KH, we = ws + d->KW;
    if (he > d->IH + d->PH) he = d->IH + d->PH;
    if (we > d->IW + d->PW) we = d->IW + d->PW;
    int64_t padded = (he - hs) * (we - ws);
    int64_t inside = 0;
    for (int64_t ih = hs; ih < he; ih++)
        for (int64_t iw = ws; iw < we; iw++)
            if (ih >= 0 && ih < d->IH && iw >= 0 && iw < d->IW) inside++;
    if (inside == 0) return 0.0;
    return (double)(d->count_include_pad ? padded : inside);
}

void cn__avg_pool2d_ref_fwd(const cn_pool2d_desc *d, const double *x, double *y)
{
    for (int64_t n = 0; n < d->MB; n++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++)
                for (int64_t c = 0; c < d->C; c++) {
                    double div = avg_divisor(d, oh, ow), s = 0.0;
                    for (int64_t kh = 0; kh < d->KH; kh++)
                        for (int64_t kw = 0; kw < d->KW; kw++) {
                            int64_t ih = oh * d->SH - d->PH + kh;
                            int64_t iw = ow * d->SW - d->PW + kw;
                            if (ih < 0 || ih >= d->IH || iw < 0 || iw >= d->IW) continue;
                            s += x[at(d, n, ih, iw, c, 0)];
                        }
                    y[at(d, n, oh, ow, c, 1)] = div > 0 ? s / div : 0.0;
                }
}

void cn__avg_pool2d_ref_bwd(const cn_pool2d_desc *d, const double *gy, double *gx)
{
    for (int64_t n = 0; n < d->MB; n++)
        for (int64_t h = 0; h < d->IH; h++)
            for (int64_t w = 0; w < d->IW; w++)
                for (int64_t c = 0; c < d->C; c++) gx[at(d, n, h, w, c, 0)] = 0.0;
    for (int64_t n = 0; n < d->MB; n++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++)
                for (int64_t c = 0; c < d->C; c++) {
                    double div = avg_divisor(d, oh, ow);
                    if (div == 0) continue;
                    for (int64_t kh = 0; kh < d->KH; kh++)
                        for (int64_t kw = 0; kw < d->KW; kw++) {
                            int64_t ih = oh * d->SH - d->PH + kh;
                            int64_t iw = ow * d->SW - d->PW + kw;
                            if (ih < 0 || ih >= d->IH || iw < 0 || iw >= d->IW) continue;
                            gx[at(d, n, ih, iw, c, 0)] += gy[at(d, n, oh, ow, c, 1)] / div;
                        }
                }
}
