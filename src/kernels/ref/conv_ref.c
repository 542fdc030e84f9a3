/* The convolution oracle (see conv_ref.h). */
#include <stdlib.h>
#include <string.h>

#include "kernels/ref/conv_ref.h"
#include "ops/conv_internal.h"

/* Where input coordinate (ih, iw) of the padded plane reads from:
 * 1 and (*sh, *sw) for a real pixel, 0 for zero padding, 2 for mean padding. */
static int source(const cn_conv2d_desc *d, int64_t ih, int64_t iw, int64_t *sh, int64_t *sw)
{
    if (ih >= 0 && ih < d->IH && iw >= 0 && iw < d->IW) {
        *sh = ih, *sw = iw;
        return 1;
    }
    if (d->mode == CN_PAD_ZEROS) return 0;
    if (d->mode == CN_PAD_MEAN) return 2;
    *sh = cn__pad_src(ih, d->IH, d->mode);
    *sw = cn__pad_src(iw, d->IW, d->mode);
    return 1;
}

static double channel_mean(const cn_conv2d_desc *d, const double *x, int64_t n, int64_t c)
{
    double s = 0;
    for (int64_t h = 0; h < d->IH; h++)
        for (int64_t w = 0; w < d->IW; w++) s += x[((n * d->IH + h) * d->IW + w) * d->IC + c];
    return s / (double)(d->IH * d->IW);
}

/* Every channel's mean [MB, IC] for mean padding (each tap summing its
 * channel took minutes on large images), or NULL: none needed, or no
 * memory, and then the taps sum them. Freed by the caller. */
static double *channel_means(const cn_conv2d_desc *d, const double *x)
{
    if (d->mode != CN_PAD_MEAN) return NULL;
    double *m = calloc((size_t)(d->MB * d->IC), sizeof *m);
    if (m)
        for (int64_t n = 0; n < d->MB; n++)
            for (int64_t c = 0; c < d->IC; c++) m[n * d->IC + c] = channel_mean(d, x, n, c);
    return m;
}

#define X_AT(n, h, w, c) ((((n) * d->IH + (h)) * d->IW + (w)) * d->IC + (c))
#define W_AT(kh, kw, i, oc) ((((kh) * d->KW + (kw)) * ICG + (i)) * d->OC + (oc))
#define Y_AT(n, h, w, c) ((((n) * d->OH + (h)) * d->OW + (w)) * d->OC + (c))

void cn__conv2d_ref_fwd(const cn_conv2d_desc *d, const double *x, const double *w, const double *b,
                        double *y)
{
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G;
    double *means = channel_means(d, x);
    for (int64_t n = 0; n < d->MB; n++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++)
                for (int64_t oc = 0; oc < d->OC; oc++) {
                    const int64_t g = oc / OCG;
                    double acc = b ? b[oc] : 0.0;
                    for (int64_t kh = 0; kh < d->KH; kh++)
                        for (int64_t kw = 0; kw < d->KW; kw++)
                            for (int64_t i = 0; i < ICG; i++) {
                                int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                                int64_t iw = ow * d->SW - d->PL + kw * d->DW, sh, sw;
                                const int64_t c = g * ICG + i;
                                double v = 0;
                                switch (source(d, ih, iw, &sh, &sw)) {
                                case 1: v = x[X_AT(n, sh, sw, c)]; break;
                                case 2:
                                    v = means ? means[n * d->IC + c] : channel_mean(d, x, n, c);
                                    break;
                                }
                                acc += v * w[W_AT(kh, kw, i, oc)];
                            }
                    y[Y_AT(n, oh, ow, oc)] = acc;
                }
    free(means);
}

void cn__conv2d_ref_bwd_data(const cn_conv2d_desc *d, const double *gy, const double *w, double *gx)
{
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G, HW = d->IH * d->IW;
    memset(gx, 0, (size_t)(d->MB * HW * d->IC) * sizeof *gx);
    /* mean padding: what the taps send to a channel's mean, spread over its
     * pixels at the end (a spread each tap took minutes on large images);
     * without memory for the sums, a spread each tap */
    double *to_mean = d->mode == CN_PAD_MEAN ? calloc((size_t)(d->MB * d->IC), sizeof *to_mean)
                                             : NULL;
    for (int64_t n = 0; n < d->MB; n++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++)
                for (int64_t oc = 0; oc < d->OC; oc++) {
                    const int64_t g = oc / OCG;
                    const double gv = gy[Y_AT(n, oh, ow, oc)];
                    for (int64_t kh = 0; kh < d->KH; kh++)
                        for (int64_t kw = 0; kw < d->KW; kw++)
                            for (int64_t i = 0; i < ICG; i++) {
                                int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                                int64_t iw = ow * d->SW - d->PL + kw * d->DW, sh, sw;
                                const int64_t c = g * ICG + i;
                                const double gw = gv * w[W_AT(kh, kw, i, oc)];
                                switch (source(d, ih, iw, &sh, &sw)) {
                                case 1: gx[X_AT(n, sh, sw, c)] += gw; break;
                                case 2:
                                    if (to_mean) {
                                        to_mean[n * d->IC + c] += gw;
                                        break;
                                    }
                                    for (int64_t p = 0; p < HW; p++)
                                        gx[(n * HW + p) * d->IC + c] += gw / (double)HW;
                                    break;
                                }
                            }
                }
    if (to_mean)
        for (int64_t n = 0; n < d->MB; n++)
            for (int64_t p = 0; p < HW; p++)
                for (int64_t c = 0; c < d->IC; c++)
                    gx[(n * HW + p) * d->IC + c] += to_mean[n * d->IC + c] / (double)HW;
    free(to_mean);
}

void cn__conv2d_ref_bwd_weights(const cn_conv2d_desc *d, const double *x, const double *gy,
                                double *gw, double *gb)
{
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G;
    if (gw) memset(gw, 0, (size_t)(d->KH * d->KW * ICG * d->OC) * sizeof *gw);
    if (gb) memset(gb, 0, (size_t)d->OC * sizeof *gb);
    double *means = gw ? channel_means(d, x) : NULL;
    for (int64_t n = 0; n < d->MB; n++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++)
                for (int64_t oc = 0; oc < d->OC; oc++) {
                    const int64_t g = oc / OCG;
                    const double gv = gy[Y_AT(n, oh, ow, oc)];
                    if (gb) gb[oc] += gv;
                    if (!gw) continue;
                    for (int64_t kh = 0; kh < d->KH; kh++)
                        for (int64_t kw = 0; kw < d->KW; kw++)
                            for (int64_t i = 0; i < ICG; i++) {
                                int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                                int64_t iw = ow * d->SW - d->PL + kw * d->DW, sh, sw;
                                const int64_t c = g * ICG + i;
                                double v = 0;
                                switch (source(d, ih, iw, &sh, &sw)) {
                                case 1: v = x[X_AT(n, sh, sw, c)]; break;
                                case 2:
                                    v = means ? means[n * d->IC + c] : channel_mean(d, x, n, c);
                                    break;
                                }
                                gw[W_AT(kh, kw, i, oc)] += v * gv;
                            }
                }
    free(means);
}
