/* Depthwise convolution (one input and one output channel per group, C_in =
 * C_out = groups = C) on NHWC rows, no im2col. Vectors run along channels,
 * which are contiguous in NHWC:
 *   y[n, oh, ow, c] = b[c] + sum over (kh, kw) of x[n, ih, iw, c] * w[kh, kw, c]
 *   ih = oh*SH - PT + kh*DH,  iw = ow*SW - PL + kw*DW  (outside the input: 0)
 * Backward-data is the forward kernel on the flipped filter (conv2d.c builds
 * that problem; for a strided convolution over the output gradient dilated
 * by the stride, whose zeros are skipped, not stored). Backward-weights is a
 * reduction over N x OH x OW split into DW_BWW_CHUNKS fixed row chunks, each
 * summed into its own partial gradient, the partials added in chunk order,
 * so the result does not depend on the thread count.
 *
 * Two kernel families, chosen per call from cn__isa_detect():
 *  - AVX-512 (channels a multiple of 16): 16-float zmm vectors. Forward
 *    of 3x3 filters at stride 1 (dw3_rows): tiles of 8 pixels x 2 output
 *    rows x 16 channels, each input vector loaded once for its taps in both
 *    rows. Other forwards: tiles of 8 output pixels x 16 channels, each
 *    filter vector loaded once per tile; for 3-wide filters (stride 1 or 2,
 *    undilated along the row) each input vector is loaded once and feeds
 *    all the taps that read it. Only the taps inside the input are
 *    visited, so borders need no zero buffer. Weights (3x3): all 9 taps of
 *    32 channels accumulate in registers over a row's interior columns (at
 *    stride 1 each input vector loaded once for its three taps); taps of
 *    rows outside the input read an in-range row and are dropped, border
 *    columns add their valid taps directly. Both prefetch the input rows
 *    that come next from memory, which would otherwise arrive too late:
 *    the large problems these kernels serve are bound by memory, not by
 *    FMAs. For the same reason the forward streams outputs over
 *    DW_STREAM_BYTES to memory. Backward-data of a strided convolution
 *    (input dilation): dw_fwd_row_dil512, a phase of the output columns
 *    at a time.
 *  - portable (any channel count, and the AVX2 and baseline ISAs): GCC
 *    vector extensions of 8 floats compiled three times (AVX-512, AVX2 +
 *    FMA, baseline x86-64).
 * This file is built with -ffp-contract=fast so that a*b+c on vectors
 * becomes one FMA. */
#include <stdint.h>
#include <string.h>

#include "kernels/gemm.h"
#include "ops/conv_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CN_DW_X86 1
#endif

typedef float v8 __attribute__((vector_size(32), aligned(4), may_alias));
#define LD(p) (*(const v8 *)(p))
#define ST(p, v) (*(v8 *)(p) = (v))
#define ALWAYS static inline __attribute__((always_inline))

/* Fixed number of row chunks of the backward-weights reduction: enough to
 * keep a few threads busy, few enough that the partials stay small. */
#define DW_BWW_CHUNKS 16

/* The strided backward-data kernel (dw_fwd_row_dil512) streams outputs
 * only over this many bytes: with about 2 multiply-adds an output vector it
 * is bound by its stores, and outputs this size stay in L3 with plain
 * ones (8x28x28x256 stride 2 on 2 threads: 0.27 ms streamed, 0.14 plain;
 * 1 thread 0.32 and 0.35). */
#define DW_DIL_STREAM_BYTES ((int64_t)8 << 20)

/* Filter sides up to which dw_fwd_row_dil512 serves backward-data. */
#define DW_DIL_MAXK 16

/* Outputs over this many bytes (twice the two cores' L2s) are streamed to
 * memory (AVX-512 forward). */
#define DW_STREAM_BYTES ((int64_t)4 << 20)

int cn__conv_dw_applies(const cn_conv2d_desc *d) { return d->IC == d->G && d->OC == d->G; }

size_t cn__conv_dw_bww_ws(const cn_conv2d_desc *d)
{
    return (size_t)(DW_BWW_CHUNKS * d->KH * d->KW * d->OC) * sizeof(float);
}

/* Taps [k0, k1) of K whose position base + k*dil falls inside [0, n). */
static inline void tap_range(int64_t base, int64_t dil, int64_t K, int64_t n, int64_t *k0,
                             int64_t *k1)
{
    const int64_t a = base >= 0 ? 0 : (-base + dil - 1) / dil;
    const int64_t b = base > n - 1 ? 0 : CN__MIN(K, (n - 1 - base) / dil + 1);
    *k0 = CN__MIN(a, K), *k1 = CN__MAX(b, *k0);
}

/* ---- portable kernels (8-float vector extensions) ----------------------- */

/* Four interior output pixels x 16 channels [c, c+16) of row (n, oh): 8
 * independent accumulator chains (one pixel's 2-4 chains would wait on FMA
 * latency), each filter vector loaded once for the four pixels. */
ALWAYS void dw_fwd_quad(const cn_conv2d_desc *d, const float *x, const float *w, const float *b,
                        float *yp, int64_t n, int64_t oh, int64_t ow, int64_t c)
{
    const int64_t C = d->OC, step = d->SW * C;
    v8 a[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 2
        for (int j = 0; j < 2; j++) a[r][j] = b ? LD(b + c + 8 * (int64_t)j) : (v8){0};
    for (int64_t kh = 0; kh < d->KH; kh++) {
        const int64_t ih = oh * d->SH - d->PT + kh * d->DH;
        if (ih < 0 || ih >= d->IH) continue;
        const float *xr = x + ((n * d->IH + ih) * d->IW + ow * d->SW - d->PL) * C + c;
        const float *wr = w + kh * d->KW * C + c;
        for (int64_t kw = 0; kw < d->KW; kw++) {
            const float *xp = xr + kw * d->DW * C;
            const v8 w0 = LD(wr + kw * C), w1 = LD(wr + kw * C + 8);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                a[r][0] += LD(xp + r * step) * w0;
                a[r][1] += LD(xp + r * step + 8) * w1;
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) ST(yp + r * C + c, a[r][0]), ST(yp + r * C + c + 8, a[r][1]);
}

/* y row (n, oh) = depthwise conv of x with w [KH,KW,C] plus b; x dilated by
 * ish x isw (1 x 1: plain). */
ALWAYS void dw_fwd_row_body(const cn_conv2d_desc *d, const float *x, const float *w, const float *b,
                            float *y, int64_t n, int64_t oh, int64_t ish, int64_t isw)
{
    const int64_t C = d->OC;
    float *yrow = y + (n * d->OH + oh) * d->OW * C;
    const v8 z = {0};
    int64_t lo, hi;
    cn__interior_cols(d, &lo, &hi);
    for (int64_t ow = 0; ow < d->OW; ow++) {
        float *yp = yrow + ow * C;
        int64_t c = 0;
        if (ish == 1 && isw == 1 && ow >= lo && ow + 4 <= hi && C % 16 == 0) {
            /* four interior pixels at once */
            for (; c < C; c += 16) dw_fwd_quad(d, x, w, b, yp, n, oh, ow, c);
            ow += 3;
            continue;
        }
        for (; c + 32 <= C; c += 32) {
            v8 a0 = b ? LD(b + c) : z, a1 = b ? LD(b + c + 8) : z, a2 = b ? LD(b + c + 16) : z,
               a3 = b ? LD(b + c + 24) : z;
            for (int64_t kh = 0; kh < d->KH; kh++)
                for (int64_t kw = 0; kw < d->KW; kw++) {
                    const float *xp = cn__src_px(d, x, n, oh * d->SH - d->PT + kh * d->DH,
                                                 ow * d->SW - d->PL + kw * d->DW, ish, isw);
                    if (!xp) continue;
                    xp += c;
                    const float *wp = w + (kh * d->KW + kw) * C + c;
                    a0 += LD(xp) * LD(wp), a1 += LD(xp + 8) * LD(wp + 8);
                    a2 += LD(xp + 16) * LD(wp + 16), a3 += LD(xp + 24) * LD(wp + 24);
                }
            ST(yp + c, a0), ST(yp + c + 8, a1), ST(yp + c + 16, a2), ST(yp + c + 24, a3);
        }
        for (; c + 8 <= C; c += 8) {
            v8 a0 = b ? LD(b + c) : z;
            for (int64_t kh = 0; kh < d->KH; kh++)
                for (int64_t kw = 0; kw < d->KW; kw++) {
                    const float *xp = cn__src_px(d, x, n, oh * d->SH - d->PT + kh * d->DH,
                                                 ow * d->SW - d->PL + kw * d->DW, ish, isw);
                    if (xp) a0 += LD(xp + c) * LD(w + (kh * d->KW + kw) * C + c);
                }
            ST(yp + c, a0);
        }
        for (; c < C; c++) {
            float a = b ? b[c] : 0.0f;
            for (int64_t kh = 0; kh < d->KH; kh++)
                for (int64_t kw = 0; kw < d->KW; kw++) {
                    const float *xp = cn__src_px(d, x, n, oh * d->SH - d->PT + kh * d->DH,
                                                 ow * d->SW - d->PL + kw * d->DW, ish, isw);
                    if (xp) a += xp[c] * w[(kh * d->KW + kw) * C + c];
                }
            yp[c] = a;
        }
    }
}

/* part [KH,KW,C] += sum over the columns of row (n, oh) of x * gy. */
ALWAYS void dw_bww_row_body(const cn_conv2d_desc *d, const float *x, const float *gy, float *part,
                            int64_t n, int64_t oh)
{
    const int64_t C = d->OC;
    const float *gyr = gy + (n * d->OH + oh) * d->OW * C;
    const v8 z = {0};
    for (int64_t kh = 0; kh < d->KH; kh++) {
        const int64_t ih = oh * d->SH - d->PT + kh * d->DH;
        if (ih < 0 || ih >= d->IH) continue;
        const float *xr = x + (n * d->IH + ih) * d->IW * C;
        for (int64_t kw = 0; kw < d->KW; kw++) {
            int64_t lo, hi;
            const int64_t off = kw * d->DW - d->PL; /* iw = ow*SW + off */
            tap_range(off, d->SW, d->OW, d->IW, &lo, &hi);
            float *pr = part + (kh * d->KW + kw) * C;
            int64_t c = 0;
            for (; c + 32 <= C; c += 32) {
                v8 a0 = z, a1 = z, a2 = z, a3 = z;
                for (int64_t ow = lo; ow < hi; ow++) {
                    const float *xp = xr + (ow * d->SW + off) * C + c, *gp = gyr + ow * C + c;
                    a0 += LD(xp) * LD(gp), a1 += LD(xp + 8) * LD(gp + 8);
                    a2 += LD(xp + 16) * LD(gp + 16), a3 += LD(xp + 24) * LD(gp + 24);
                }
                ST(pr + c, LD(pr + c) + a0), ST(pr + c + 8, LD(pr + c + 8) + a1);
                ST(pr + c + 16, LD(pr + c + 16) + a2), ST(pr + c + 24, LD(pr + c + 24) + a3);
            }
            for (; c + 8 <= C; c += 8) {
                v8 a0 = z;
                for (int64_t ow = lo; ow < hi; ow++)
                    a0 += LD(xr + (ow * d->SW + off) * C + c) * LD(gyr + ow * C + c);
                ST(pr + c, LD(pr + c) + a0);
            }
            for (; c < C; c++) {
                float a = 0.0f;
                for (int64_t ow = lo; ow < hi; ow++)
                    a += xr[(ow * d->SW + off) * C + c] * gyr[ow * C + c];
                pr[c] += a;
            }
        }
    }
}

/* ---- AVX-512 kernels (C a multiple of 16) -------------------------------- */

#ifdef CN_DW_X86
#define TGT512 __attribute__((target("avx512f,avx512vl,avx2,fma,prfchw")))
#define ALWAYS512 static inline __attribute__((always_inline)) TGT512

/* The AVX-512 forward's store flags (its relu argument). */
#define ST_RELU 1   /* ReLU as cn_act_fwd: !(v <= 0) keeps v > 0 and NaN, -0 becomes +0 */
#define ST_STREAM 2 /* non-temporal store, p 64-byte aligned */

ALWAYS512 void st16(float *p, __m512 v, int relu)
{
    if (relu & ST_RELU)
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ), v);
    if (relu & ST_STREAM)
        _mm512_stream_ps(p, v);
    else
        _mm512_storeu_ps(p, v);
}

/* R output pixels from column ow of row (n, oh), every channel, taps
 * [kh0, kh1) x [kw0, kw1) (the ones inside the input): R accumulators of 16
 * channels, each filter vector loaded once for the R pixels. Prefetches
 * the npf input pixels at pf and, for writing, the nypf output pixels at
 * ypf, a channel block at a time (a burst of them all would overflow the
 * outstanding-miss buffers). */
ALWAYS512 void fwd_tile512(const cn_conv2d_desc *d, const float *xn, const float *w, const float *b,
                           int relu, float *yp, int64_t ow, int64_t ih0, int64_t kh0, int64_t kh1,
                           int64_t kw0, int64_t kw1, const float *pf, int64_t npf, const float *ypf,
                           int64_t nypf, const int R)
{
    const int64_t C = d->OC, step = d->SW * C;
    for (int64_t c = 0; c < C; c += 16) {
        for (int64_t q = 0; q < npf; q++) _mm_prefetch((const char *)(pf + q * C + c), _MM_HINT_T0);
        for (int64_t q = 0; q < nypf; q++) __builtin_prefetch(ypf + q * C + c, 1, 3);
        __m512 a[8];
        const __m512 a0 = b ? _mm512_loadu_ps(b + c) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) a[r] = a0;
        for (int64_t kh = kh0; kh < kh1; kh++) {
            const float *xr = xn + ((ih0 + kh * d->DH) * d->IW + ow * d->SW - d->PL) * C + c;
            const float *wr = w + kh * d->KW * C + c;
            for (int64_t kw = kw0; kw < kw1; kw++) {
                const float *xp = xr + kw * d->DW * C;
                const __m512 wv = _mm512_loadu_ps(wr + kw * C);
#pragma GCC unroll 8
                for (int r = 0; r < R; r++)
                    a[r] = _mm512_fmadd_ps(_mm512_loadu_ps(xp + r * step), wv, a[r]);
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) st16(yp + r * C + c, a[r], relu);
    }
}

/* The same for 8 pixels with the filter width KW_, stride SW_ and dilation
 * DW_ known: each input vector is loaded once and feeds every tap that
 * reads it (10 loads per 24 multiply-adds instead of 24 for 3 taps), in the
 * same order per output as fwd_tile512. check: skip the input columns
 * outside the row (border tiles). */
ALWAYS512 void fwd_slide512(const cn_conv2d_desc *d, const float *xn, const float *w,
                            const float *b, int relu, float *yp, int64_t ow, int64_t ih0,
                            int64_t kh0, int64_t kh1, const float *pf, int64_t npf,
                            const float *ypf, int64_t nypf, const int check, const int KW_,
                            const int SW_, const int DW_)
{
    enum { R = 8 };
    const int NX = (R - 1) * SW_ + (KW_ - 1) * DW_ + 1;
    const int64_t C = d->OC, iw0 = ow * SW_ - d->PL;
    const int64_t jlo = -iw0, jhi = d->IW - iw0; /* the input columns j in range */
    for (int64_t c = 0; c < C; c += 16) {
        for (int64_t q = 0; q < npf; q++) _mm_prefetch((const char *)(pf + q * C + c), _MM_HINT_T0);
        for (int64_t q = 0; q < nypf; q++) __builtin_prefetch(ypf + q * C + c, 1, 3);
        __m512 a[R], wv[5];
        const __m512 a0 = b ? _mm512_loadu_ps(b + c) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) a[r] = a0;
        for (int64_t kh = kh0; kh < kh1; kh++) {
            const float *xr = xn + ((ih0 + kh * d->DH) * d->IW + iw0) * C + c;
            const float *wr = w + kh * KW_ * C + c;
#pragma GCC unroll 5
            for (int kw = 0; kw < KW_; kw++) wv[kw] = _mm512_loadu_ps(wr + kw * C);
#pragma GCC unroll 32
            for (int j = 0; j < NX; j++) {
                if (check && (j < jlo || j >= jhi)) continue;
                const __m512 xv = _mm512_loadu_ps(xr + j * C);
#pragma GCC unroll 5
                for (int kw = 0; kw < KW_; kw++) {
                    const int q = j - kw * DW_;
                    if (q >= 0 && q % SW_ == 0 && q / SW_ < R)
                        a[q / SW_] = _mm512_fmadd_ps(xv, wv[kw], a[q / SW_]);
                }
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) st16(yp + r * C + c, a[r], relu);
    }
}

/* y row (n, oh) = x * w + b (ReLU'd when relu) in tiles of 8 columns
 * (single pixels where the filter is neither 3 wide nor the interior 8
 * wide). The last tile of a row, or of the interior, ends at the row's or
 * interior's end and recomputes a few columns (to the same bits) rather than
 * falling back to single pixels, whose lone accumulator would wait on the
 * FMA latency. The input row of the last tap row, the one this output row
 * reads first (the others were read by the rows above), is prefetched a
 * tile ahead: the hardware prefetchers leave it to come from L3 too late;
 * so are the next tile's outputs, for writing (PREFETCHW), so that their
 * lines are owned before the stores reach them. */
static TGT512 void dw_fwd_row_zmm(const cn_conv2d_desc *d, const float *x, const float *w,
                                  const float *b, int relu, float *y, int64_t n, int64_t oh)
{
    const int64_t C = d->OC, ih0 = oh * d->SH - d->PT, ihl = ih0 + (d->KH - 1) * d->DH;
    const float *xn = x + n * d->IH * d->IW * C;
    float *yr = y + (n * d->OH + oh) * d->OW * C;
    int64_t lo, hi, kh0, kh1, kw0 = 0, kw1 = 0;
    cn__interior_cols(d, &lo, &hi);
    tap_range(ih0, d->DH, d->KH, d->IH, &kh0, &kh1);
    /* 3-wide filters slide: 1 or 2, the stride; 0: they do not */
    const int slide = d->KW == 3 && d->DW == 1 && d->OW >= 8 && d->SW <= 2 ? (int)d->SW : 0;
    for (int64_t ow = 0; ow < d->OW; ow++) {
        int64_t at = ow;
        const int tile = slide || (ow >= lo && hi - lo >= 8 && ow < hi);
        if (tile) at = CN__MIN(ow, (slide ? d->OW : hi) - 8);
        const int check = at < lo || at + 8 > hi;
        const int64_t end = tile ? at + 8 : ow + 1; /* columns done after this step */
        const float *pf = xn;
        int64_t npf = 0;
        if (ihl >= 0 && ihl < d->IH) {
            const int64_t a = CN__MAX(end * d->SW - d->PL, 0),
                          e = CN__MIN((end + 8) * d->SW - d->PL + (d->KW - 1) * d->DW, d->IW);
            pf = xn + (ihl * d->IW + a) * C, npf = CN__MAX(e - a, 0);
        }
        const float *ypf = yr + end * C;
        const int64_t nypf = relu & ST_STREAM ? 0 : CN__MIN(8, d->OW - end);
        float *yp = yr + at * C;
        if (slide == 1 && !check)
            fwd_slide512(d, xn, w, b, relu, yp, at, ih0, kh0, kh1, pf, npf, ypf, nypf, 0, 3, 1, 1);
        else if (slide == 1)
            fwd_slide512(d, xn, w, b, relu, yp, at, ih0, kh0, kh1, pf, npf, ypf, nypf, 1, 3, 1, 1);
        else if (slide == 2 && !check)
            fwd_slide512(d, xn, w, b, relu, yp, at, ih0, kh0, kh1, pf, npf, ypf, nypf, 0, 3, 2, 1);
        else if (slide == 2)
            fwd_slide512(d, xn, w, b, relu, yp, at, ih0, kh0, kh1, pf, npf, ypf, nypf, 1, 3, 2, 1);
        else if (tile)
            fwd_tile512(d, xn, w, b, relu, yp, at, ih0, kh0, kh1, 0, d->KW, pf, npf, ypf, nypf, 8);
        else {
            tap_range(ow * d->SW - d->PL, d->DW, d->KW, d->IW, &kw0, &kw1);
            fwd_tile512(d, xn, w, b, relu, yp, ow, ih0, kh0, kh1, kw0, kw1, pf, npf, ypf, nypf, 1);
        }
        ow = end - 1;
    }
    if (relu & ST_STREAM) _mm_sfence(); /* before another thread reads y */
}

/* R phase columns m0.. of output row yr (every isw-th pixel from column
 * ow0: yp), channels [c, c+16): the taps (kh, kw) whose input is stored,
 * in (kh, kw) order. rows[i]: x row of tap row kh[i] (ni of them); base[k]:
 * x column of phase column 0 for tap kw = kw[k] (nk of them), IWr the
 * stored width; check: skip the columns outside it. */
ALWAYS512 void dil_tile512(const float *const *rows, const int64_t *khs, int ni,
                           const int64_t *kws, const int64_t *base, int nk, const float *w,
                           int64_t KW, __m512 bias, int st, float *yp, int64_t m0, int64_t IWr,
                           int64_t C, int64_t ystep, int64_t c, const int R, const int check)
{
    __m512 a[8];
#pragma GCC unroll 8
    for (int q = 0; q < R; q++) a[q] = bias;
    for (int i = 0; i < ni; i++)
        for (int k = 0; k < nk; k++) {
            const __m512 wv = _mm512_loadu_ps(w + (khs[i] * KW + kws[k]) * C + c);
            const int64_t col = base[k] + m0;
            const float *xp = rows[i] + col * C + c;
#pragma GCC unroll 8
            for (int q = 0; q < R; q++, xp += C) {
                __asm__("" : "+r"(xp));
                if (check && (col + q < 0 || col + q >= IWr)) continue;
                a[q] = _mm512_fmadd_ps(_mm512_loadu_ps(xp), wv, a[q]);
            }
        }
    float *p = yp + m0 * ystep + c;
#pragma GCC unroll 8
    for (int q = 0; q < R; q++, p += ystep) {
        __asm__("" : "+r"(p));
        st16(p, a[q], st);
    }
}

/* Output row (n, oh) of the forward over x dilated by ish x isw (the
 * backward-data of a strided convolution), the zeros skipped rather than
 * multiplied. Output columns fall into isw phases by (ow - PL) mod isw:
 * within a phase the taps that land on stored columns are fixed, and
 * consecutive phase columns read consecutive stored columns, so a phase is
 * a stride-1 walk along the x row written to every isw-th output pixel. */
static TGT512 void dw_fwd_row_dil512(const cn_conv2d_desc *d, const float *x, const float *w,
                                     const float *b, int st, float *y, int64_t n, int64_t oh,
                                     int64_t ish, int64_t isw)
{
    enum { MAXT = DW_DIL_MAXK };
    const int64_t C = d->OC, IHr = (d->IH - 1) / ish + 1, IWr = (d->IW - 1) / isw + 1;
    float *yr = y + (n * d->OH + oh) * d->OW * C;
    const float *rows[MAXT];
    int64_t khs[MAXT], kws[MAXT], base[MAXT];
    int ni = 0;
    for (int64_t kh = 0; kh < d->KH; kh++) {
        const int64_t ih = oh - d->PT + kh * d->DH;
        if (ih < 0 || ih >= d->IH || ih % ish) continue;
        rows[ni] = x + (n * IHr + ih / ish) * IWr * C, khs[ni++] = kh;
    }
    for (int64_t ow0 = 0; ow0 < CN__MIN(isw, d->OW); ow0++) {
        const int64_t M = (d->OW - ow0 + isw - 1) / isw; /* the phase's columns */
        int nk = 0;
        int64_t lo = 0, hi = M; /* phase columns whose every tap is stored */
        for (int64_t kw = 0; kw < d->KW; kw++) {
            const int64_t t = ow0 - d->PL + kw * d->DW;
            if (((t % isw) + isw) % isw) continue;
            kws[nk] = kw, base[nk] = t / isw; /* exact */
            lo = CN__MAX(lo, -base[nk]), hi = CN__MIN(hi, IWr - base[nk]);
            nk++;
        }
        float *yp = yr + ow0 * C;
        const int64_t ystep = isw * C;
        for (int64_t m = 0; m < M; m += 8) {
            const int R8 = M >= 8;
            const int64_t at = R8 ? CN__MIN(m, M - 8) : m;
            const int check = at < lo || at + (R8 ? 8 : 1) > hi;
            for (int64_t c = 0; c < C; c += 16) {
                const __m512 bias = b ? _mm512_loadu_ps(b + c) : _mm512_setzero_ps();
                if (R8 && !check)
                    dil_tile512(rows, khs, ni, kws, base, nk, w, d->KW, bias, st, yp, at, IWr, C,
                                ystep, c, 8, 0);
                else if (R8)
                    dil_tile512(rows, khs, ni, kws, base, nk, w, d->KW, bias, st, yp, at, IWr, C,
                                ystep, c, 8, 1);
                else
                    dil_tile512(rows, khs, ni, kws, base, nk, w, d->KW, bias, st, yp, at, IWr, C,
                                ystep, c, 1, 1);
            }
            if (!R8) m -= 7; /* single columns */
        }
    }
    if (st & ST_STREAM) _mm_sfence(); /* before another thread reads y */
}

/* 3x3 filters at stride 1, undilated: two output rows at a time from the
 * four input rows they read, in tiles of 8 pixels x 2 rows x 16 channels
 * (16 accumulators, the 9 filter vectors in registers). Each input vector
 * is loaded once and feeds the (up to) 6 taps that read it: 40 loads per
 * 144 multiply-adds, where fwd_slide512 spends 30 + 9 per 72. The empty
 * asm keeps GCC from folding the vector back into every FMA as a memory
 * operand, which it did (24 loads instead of 10 a row). The input and
 * output pointers step by C through empty asm too: with xp + j*C GCC kept
 * each of the 10 + 16 addresses in a stack slot and rebuilt it per access
 * (3 integer instructions a load), which held the tile to 43% of the FMA
 * peak in cache; stepping, 79%. Each output still
 * sums bias, then taps in (kh, kw) order: the same bits as fwd_slide512.
 * rv: bit i set when input row i of the window is inside the input;
 * check: skip the columns outside [0, IW). */
ALWAYS512 void dw3_tile(const float *const *xr, int rv, const __m512 *wv, __m512 bias, float *y0,
                        float *y1, int64_t C, int64_t iw0, int64_t IW, int st, const int NR,
                        const int check)
{
    __m512 a[2][8];
#pragma GCC unroll 2
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) a[r][q] = bias;
#pragma GCC unroll 4
    for (int i = 0; i < NR + 2; i++) {
        if (!(rv >> i & 1)) continue;
        const float *xp = xr[i] + iw0 * C;
#pragma GCC unroll 10
        for (int j = 0; j < 10; j++, xp += C) {
            __asm__("" : "+r"(xp));
            if (check && (iw0 + j < 0 || iw0 + j >= IW)) continue;
            __m512 xv = _mm512_loadu_ps(xp);
            __asm__("" : "+v"(xv));
#pragma GCC unroll 2
            for (int r = 0; r < NR; r++) {
                const int kh = i - r;
                if (kh < 0 || kh > 2) continue;
#pragma GCC unroll 3
                for (int kw = 0; kw < 3; kw++) {
                    const int q = j - kw;
                    if (q >= 0 && q < 8) a[r][q] = _mm512_fmadd_ps(xv, wv[kh * 3 + kw], a[r][q]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int q = 0; q < 8; q++, y0 += C) {
        __asm__("" : "+r"(y0));
        st16(y0, a[0][q], st);
    }
    if (NR == 2)
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++, y1 += C) {
            __asm__("" : "+r"(y1));
            st16(y1, a[1][q], st);
        }
}

/* Output rows oh and, when NR is 2, oh + 1 of image n: tiles along the row,
 * every channel block of a tile before the next (the accesses then run
 * through memory in 4 KiB stretches). The two input rows the next pair
 * reads first come from memory: they are prefetched into L2 a line at a
 * time, spread over this pair's tiles. Into L2, not L1: an L1 prefetch
 * holds one of the core's few L1 miss buffers until memory answers, which
 * caps a core at about 15 GB/s (measured on a strided read: 15 GB/s
 * without prefetch, 23 with PREFETCHT0 a row ahead, 41 with PREFETCHT2). */
ALWAYS512 void dw3_rows(const cn_conv2d_desc *d, const float *x, const float *w, const float *b,
                        int st, float *y, int64_t n, int64_t oh, const int NR)
{
    const int64_t C = d->OC, IW = d->IW, OW = d->OW;
    const float *xr[4];
    int rv = 0;
#pragma GCC unroll 4
    for (int i = 0; i < NR + 2; i++) {
        const int64_t ih = oh - d->PT + i;
        const int in = ih >= 0 && ih < d->IH;
        rv |= in << i;
        xr[i] = x + (n * d->IH + (in ? ih : 0)) * IW * C;
    }
    float *y0 = y + (n * d->OH + oh) * OW * C, *y1 = y0 + OW * C;
    const char *pf = (const char *)(x + (n * d->IH + CN__MAX(oh + 4 - d->PT, 0)) * IW * C);
    const char *pfe = (const char *)(x + d->MB * d->IH * IW * C);
    const int64_t steps = C / 16 * ((OW + 7) / 8), pfn = (2 * IW * C / 16 + steps - 1) / steps;
    for (int64_t ow = 0; ow < OW; ow += 8) {
        const int64_t at = CN__MIN(ow, OW - 8), iw0 = at - d->PL;
        const int inside = iw0 >= 0 && iw0 + 10 <= IW;
        for (int64_t c = 0; c < C; c += 16) {
            __m512 wv[9];
#pragma GCC unroll 9
            for (int k = 0; k < 9; k++) wv[k] = _mm512_loadu_ps(w + k * C + c);
            const __m512 bias = b ? _mm512_loadu_ps(b + c) : _mm512_setzero_ps();
            const float *xc[4] = {xr[0] + c, xr[1] + c, xr[2] + c, xr[3] + c};
            for (int64_t k = 0; k < pfn && pf < pfe; k++, pf += 64) _mm_prefetch(pf, _MM_HINT_T2);
            float *p0 = y0 + at * C + c, *p1 = y1 + at * C + c;
            if (inside)
                dw3_tile(xc, rv, wv, bias, p0, p1, C, iw0, IW, st, NR, 0);
            else
                dw3_tile(xc, rv, wv, bias, p0, p1, C, iw0, IW, st, NR, 1);
        }
    }
    if (st & ST_STREAM) _mm_sfence(); /* before another thread reads y */
}

static TGT512 void dw3_rows2(const cn_conv2d_desc *d, const float *x, const float *w,
                             const float *b, int st, float *y, int64_t n, int64_t oh)
{
    dw3_rows(d, x, w, b, st, y, n, oh, 2);
}

static TGT512 void dw3_rows1(const cn_conv2d_desc *d, const float *x, const float *w,
                             const float *b, int st, float *y, int64_t n, int64_t oh)
{
    dw3_rows(d, x, w, b, st, y, n, oh, 1);
}

/* Problems dw3_rows serves (with C a multiple of 16, any padding). */
static int dw3_applies(const cn_conv2d_desc *d)
{
    return d->KH == 3 && d->KW == 3 && d->SH == 1 && d->SW == 1 && d->DH == 1 && d->DW == 1 &&
           d->OW >= 8;
}

/* part [KH_,KW_,C] += sum over row (n, oh) of x * gy for channels [c,
 * c+16*CB). The interior columns accumulate every tap in registers; a tap
 * row outside the input reads an inside row instead and its sums are
 * dropped. Border columns add their valid taps to part directly. */
ALWAYS512 void bww_block512(const cn_conv2d_desc *d, const float *const *xr, const float *gyr,
                            float *part, int64_t kh0, int64_t kh1, int64_t lo, int64_t hi,
                            int64_t c, const int KH_, const int KW_, const int CB)
{
    const int64_t C = d->OC, step = d->SW * C;
    __m512 a[5][5][2];
#pragma GCC unroll 5
    for (int k = 0; k < KH_; k++)
#pragma GCC unroll 5
        for (int kw = 0; kw < KW_; kw++)
#pragma GCC unroll 2
            for (int j = 0; j < CB; j++) a[k][kw][j] = _mm512_setzero_ps();
    const float *xq[5];
#pragma GCC unroll 5
    for (int k = 0; k < KH_; k++) xq[k] = xr[k] + (lo * d->SW - d->PL) * C + c;
    const float *gq = gyr + lo * C + c;
    /* the input row the next output row reads first and that row's
     * gradient, a row ahead (the hardware prefetchers leave them to come
     * from memory too late), into L2: L1 prefetches hold the few L1 miss
     * buffers and halved the pass's speed (dw3_rows says more) */
    const int64_t ahead = (d->SH * d->IW + (KW_ - 1) * d->DW) * C;
    /* 3-wide taps at stride 1: input column q (from the interior's first)
     * feeds tap kw with the gradient of pixel q - kw, so each input vector
     * is loaded once for its three taps (4 loads per 9 multiply-adds, not
     * 10), the last three pixels' gradients rolling through g0..g2. Every
     * a[k][kw] still sums its pixels in column order: the same bits. */
    const int64_t n = hi - lo;
    if (KW_ == 3 && d->SW == 1 && d->DW == 1 && n >= 2) {
        __m512 g0[2], g1[2], g2[2];
#define DW_COL3(q, T0, T1, T2)                                                                     \
    do {                                                                                           \
        _Pragma("GCC unroll 2") for (int j = 0; j < CB; j++)                                       \
        {                                                                                          \
            _mm_prefetch((const char *)(xq[KH_ - 1] + (q)*C + ahead + 16 * (int64_t)j),            \
                         _MM_HINT_T1);                                                             \
            _mm_prefetch((const char *)(gq + ((q) + d->OW) * C + 16 * (int64_t)j), _MM_HINT_T1);   \
            g2[j] = g1[j], g1[j] = g0[j];                                                          \
            if (T0) g0[j] = _mm512_loadu_ps(gq + (q)*C + 16 * (int64_t)j);                         \
        }                                                                                          \
        _Pragma("GCC unroll 5") for (int k = 0; k < KH_; k++)                                      \
            _Pragma("GCC unroll 2") for (int j = 0; j < CB; j++)                                   \
        {                                                                                          \
            __m512 xv = _mm512_loadu_ps(xq[k] + (q)*C + 16 * (int64_t)j);                          \
            /* one load for its 3 FMAs: GCC otherwise folds a load into each */                  \
            __asm__("" : "+v"(xv));                                                                \
            if (T0) a[k][0][j] = _mm512_fmadd_ps(xv, g0[j], a[k][0][j]);                           \
            if (T1) a[k][1][j] = _mm512_fmadd_ps(xv, g1[j], a[k][1][j]);                           \
            if (T2) a[k][2][j] = _mm512_fmadd_ps(xv, g2[j], a[k][2][j]);                           \
        }                                                                                          \
    } while (0)
#pragma GCC unroll 2
        for (int j = 0; j < CB; j++) g0[j] = g1[j] = _mm512_setzero_ps();
        DW_COL3(0, 1, 0, 0);
        DW_COL3(1, 1, 1, 0);
        /* (by the rotation's period, so that g0..g2 can be renamed rather
         * than moved) */
#pragma GCC unroll 3
        for (int64_t q = 2; q < n; q++) DW_COL3(q, 1, 1, 1);
        DW_COL3(n, 0, 1, 1);
        DW_COL3(n + 1, 0, 0, 1);
#undef DW_COL3
    }
    for (int64_t ow = lo; ow < (KW_ == 3 && d->SW == 1 && d->DW == 1 && n >= 2 ? lo : hi);
         ow++, gq += C) {
#pragma GCC unroll 2
        for (int j = 0; j < CB; j++) {
            _mm_prefetch((const char *)(xq[KH_ - 1] + ahead + 16 * (int64_t)j), _MM_HINT_T1);
            _mm_prefetch((const char *)(gq + d->OW * C + 16 * (int64_t)j), _MM_HINT_T1);
        }
        __m512 g[2];
#pragma GCC unroll 2
        for (int j = 0; j < CB; j++) g[j] = _mm512_loadu_ps(gq + 16 * (int64_t)j);
#pragma GCC unroll 5
        for (int k = 0; k < KH_; k++) {
#pragma GCC unroll 5
            for (int kw = 0; kw < KW_; kw++)
#pragma GCC unroll 2
                for (int j = 0; j < CB; j++)
                    a[k][kw][j] =
                        _mm512_fmadd_ps(_mm512_loadu_ps(xq[k] + kw * d->DW * C + 16 * (int64_t)j),
                                        g[j], a[k][kw][j]);
            xq[k] += step;
        }
    }
#pragma GCC unroll 5
    for (int k = 0; k < KH_; k++)
        if (k >= kh0 && k < kh1)
#pragma GCC unroll 5
            for (int kw = 0; kw < KW_; kw++)
#pragma GCC unroll 2
                for (int j = 0; j < CB; j++) {
                    float *p = part + (k * KW_ + kw) * C + c + 16 * (int64_t)j;
                    _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), a[k][kw][j]));
                }
    for (int64_t ow = 0; ow < d->OW; ow++) {
        if (ow == lo) ow = CN__MAX(hi, lo); /* the interior is done */
        if (ow >= d->OW) break;
        int64_t kw0, kw1;
        const int64_t iw0 = ow * d->SW - d->PL;
        tap_range(iw0, d->DW, KW_, d->IW, &kw0, &kw1);
#pragma GCC unroll 2
        for (int j = 0; j < CB; j++) {
            const __m512 g = _mm512_loadu_ps(gyr + ow * C + c + 16 * (int64_t)j);
            for (int64_t k = kh0; k < kh1; k++)
                for (int64_t kw = kw0; kw < kw1; kw++) {
                    float *p = part + (k * KW_ + kw) * C + c + 16 * (int64_t)j;
                    const float *xp = xr[k] + (iw0 + kw * d->DW) * C + c + 16 * (int64_t)j;
                    _mm512_storeu_ps(p,
                                     _mm512_fmadd_ps(_mm512_loadu_ps(xp), g, _mm512_loadu_ps(p)));
                }
        }
    }
}

ALWAYS512 void bww_row512(const cn_conv2d_desc *d, const float *x, const float *gy, float *part,
                          int64_t n, int64_t oh, const int KH_, const int KW_)
{
    const int64_t C = d->OC, ih0 = oh * d->SH - d->PT;
    int64_t kh0, kh1, lo, hi;
    tap_range(ih0, d->DH, KH_, d->IH, &kh0, &kh1);
    cn__interior_cols(d, &lo, &hi);
    const float *xr[5];
#pragma GCC unroll 5
    for (int k = 0; k < KH_; k++) {
        const int64_t ih = ih0 + k * d->DH, ihc = ih < 0 ? 0 : ih >= d->IH ? d->IH - 1 : ih;
        xr[k] = x + (n * d->IH + ihc) * d->IW * C;
    }
    const float *gyr = gy + (n * d->OH + oh) * d->OW * C;
    int64_t c = 0;
    for (; c + 32 <= C; c += 32)
        bww_block512(d, xr, gyr, part, kh0, kh1, lo, hi, c, KH_, KW_, 2);
    for (; c < C; c += 16) bww_block512(d, xr, gyr, part, kh0, kh1, lo, hi, c, KH_, KW_, 1);
}

static TGT512 void dw_bww_row_avx512_3x3(const cn_conv2d_desc *d, const float *x, const float *gy,
                                         float *part, int64_t n, int64_t oh)
{
    bww_row512(d, x, gy, part, n, oh, 3, 3);
}
#endif

/* ---- one function per ISA and kernel ------------------------------------ */

typedef void fwd_row_fn(const cn_conv2d_desc *, const float *, const float *, const float *,
                        float *, int64_t, int64_t, int64_t, int64_t);
typedef void bww_row_fn(const cn_conv2d_desc *, const float *, const float *, float *, int64_t,
                        int64_t);

#define CN_TGT_avx512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define CN_TGT_avx2 __attribute__((target("avx2,fma")))
#define CN_TGT_base

#define ROW_FNS(isa)                                                                               \
    static CN_TGT_##isa void dw_fwd_row_##isa(const cn_conv2d_desc *d, const float *x,             \
                                              const float *w, const float *b, float *y, int64_t n, \
                                              int64_t oh, int64_t ish, int64_t isw)                \
    {                                                                                              \
        dw_fwd_row_body(d, x, w, b, y, n, oh, ish, isw);                                           \
    }                                                                                              \
    static CN_TGT_##isa void dw_bww_row_##isa(const cn_conv2d_desc *d, const float *x,             \
                                              const float *gy, float *part, int64_t n,             \
                                              int64_t oh)                                          \
    {                                                                                              \
        dw_bww_row_body(d, x, gy, part, n, oh);                                                    \
    }

#ifdef CN_DW_X86
ROW_FNS(avx512)
ROW_FNS(avx2)
#endif
ROW_FNS(base)

static void pick(fwd_row_fn **fwd, bww_row_fn **bww)
{
    switch (cn__isa_detect()) {
#ifdef CN_DW_X86
    case CN_ISA_AVX512:
        *fwd = dw_fwd_row_avx512, *bww = dw_bww_row_avx512;
        return;
    case CN_ISA_AVX2:
        *fwd = dw_fwd_row_avx2, *bww = dw_bww_row_avx2;
        return;
#endif
    default:
        *fwd = dw_fwd_row_base, *bww = dw_bww_row_base;
        return;
    }
}

/* ---- the passes ---------------------------------------------------------- */

void cn__conv2d_dw_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x, const float *w,
                       const float *b, int relu, float *y, int64_t ish, int64_t isw)
{
    fwd_row_fn *fwd;
    bww_row_fn *bww;
    pick(&fwd, &bww);
#ifdef CN_DW_X86
    const int avx512 = cn__isa_detect() == CN_ISA_AVX512 && d->OC % 16 == 0;
    const int fast = avx512 && ish == 1 && isw == 1;
    const int dil = avx512 && !fast && d->KH <= DW_DIL_MAXK && d->KW <= DW_DIL_MAXK;
#else
    const int fast = 0, dil = 0;
#endif
    const int nt = cn__threads(ctx);
    const int64_t rows = d->MB * d->OH;
#ifdef CN_DW_X86
    /* An output much larger than the L2s is written with streaming stores:
     * its lines would leave the caches before anything reads them, and a
     * cached store first reads each line (a third of this memory-bound
     * pass's traffic). */
    const int64_t ybytes = d->MB * d->OH * d->OW * d->OC * (int64_t)sizeof(float);
    if ((fast || dil) && ybytes > (fast ? DW_STREAM_BYTES : DW_DIL_STREAM_BYTES) &&
        ((uintptr_t)y & 63) == 0)
        relu |= ST_STREAM;
    if (fast) {
        if (dw3_applies(d)) { /* pairs of output rows, an odd last row alone */
            const int64_t pairs = (d->OH + 1) / 2, units = d->MB * pairs;
#pragma omp parallel for num_threads(nt) if (nt > 1 && units > 1) schedule(static)
            for (int64_t u = 0; u < units; u++) {
                const int64_t n = u / pairs, oh = 2 * (u % pairs);
                if (oh + 1 < d->OH)
                    dw3_rows2(d, x, w, b, relu, y, n, oh);
                else
                    dw3_rows1(d, x, w, b, relu, y, n, oh);
            }
            return;
        }
#pragma omp parallel for num_threads(nt) if (nt > 1 && rows > 1) schedule(static)
        for (int64_t row = 0; row < rows; row++)
            dw_fwd_row_zmm(d, x, w, b, relu, y, row / d->OH, row % d->OH);
        return;
    }
    if (dil) {
#pragma omp parallel for num_threads(nt) if (nt > 1 && rows > 1) schedule(static)
        for (int64_t row = 0; row < rows; row++)
            dw_fwd_row_dil512(d, x, w, b, relu, y, row / d->OH, row % d->OH, ish, isw);
        return;
    }
#endif
#pragma omp parallel for num_threads(nt) if (nt > 1 && rows > 1) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        fwd(d, x, w, b, y, row / d->OH, row % d->OH, ish, isw);
        if (relu) { /* this row, while it is in cache */
            float *yr = y + row * d->OW * d->OC;
            cn_act_fwd(NULL, CN_ACT_RELU, 0.0f, (size_t)(d->OW * d->OC), yr, yr);
        }
    }
}

void cn__conv2d_dw_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                               const float *gy, float *gw, float *part)
{
    fwd_row_fn *fwd;
    bww_row_fn *bww;
    pick(&fwd, &bww);
#ifdef CN_DW_X86
    if (cn__isa_detect() == CN_ISA_AVX512 && d->OC % 16 == 0 && d->KH == 3 && d->KW == 3)
        bww = dw_bww_row_avx512_3x3;
#endif
    const int64_t nw = d->KH * d->KW * d->OC, rows = d->MB * d->OH;
    const int nt = cn__threads(ctx);
    /* Each chunk's rows are summed, in order, by the one thread that owns it. */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#pragma omp for schedule(static)
        for (int k = 0; k < DW_BWW_CHUNKS; k++) {
            float *pk = part + k * nw;
            memset(pk, 0, (size_t)nw * sizeof *pk);
            const int64_t r0 = rows * k / DW_BWW_CHUNKS, r1 = rows * (k + 1) / DW_BWW_CHUNKS;
            for (int64_t row = r0; row < r1; row++) bww(d, x, gy, pk, row / d->OH, row % d->OH);
        }
        /* then every element is the sum of its chunks in chunk order */
#pragma omp for schedule(static)
        for (int64_t i = 0; i < nw; i++) cn__sum_chunks(part, DW_BWW_CHUNKS, nw, i, gw);
    }
}
