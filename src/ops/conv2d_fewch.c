/* Few-input-channel convolution (conv2d_fewch.c): G = 1, C_in <= 4, C_out a
 * multiple of 16, on AVX-512 (a first layer over 1-3 channels: LeNet, the
 * ImageNet 7x7 stem). With so few input channels a GEMM's K is just
 * KH*KW*C_in and the small-group kernel's 8-float vectors leave half the
 * FMA width unused; this file works with 16-float zmm vectors along the
 * output channels and treats the KH*KW*C_in (tap, channel) pairs as the
 * rows of one table:
 *   forward           y[p, o] = b[o] + sum_k xrow[p, k] * w[k, o]
 *                     a register tile of R pixels x NB zmm of o; each w
 *                     vector is loaded once per row k and used R times, x
 *                     is broadcast; bias added at the start, ReLU at the
 *                     store.
 *   backward-weights  gw[k, o] = sum_p xrow[p, k] * gy[p, o]
 *                     a block of RB rows x NB zmm of accumulators streamed
 *                     over a row of pixels: every gy vector is loaded once
 *                     for RB rows.
 *   backward-data     gx[q, i] = sum over the taps reaching gy, and over o,
 *                     of gy[p, o] * w[tap, i, o]: a sum along the channels
 *                     (contiguous in gy and w), gathered per input pixel
 *                     with no zero-stuffed gy; a tile of P pixels x C_in
 *                     accumulators, each w vector used P times, summed
 *                     across lanes 16 accumulators at a time. A column
 *                     phase of a row (pixels SW apart) sees the same taps.
 * xrow[p, k] is the input under tap k of output pixel p. For a band of
 * output rows the input rows it reads are first copied into a stack buffer
 * with the padding written as zeros, so the inner loops never test bounds:
 * row k of pixel (oh, ow) is buf[(oh - oh0) * SH * ld + ow * SW * C_in +
 * off[k]]. A band of a small image is the whole image, which keeps the
 * weight-gradient accumulators in registers over all its pixels.
 *
 * Backward-weights splits the MB*OH output rows into FEW_CHUNKS fixed
 * chunks, each summed into its own partial gradient, and adds the partials
 * in chunk order: the result does not depend on the thread count; the
 * other passes compute each output by one thread in a fixed order. Other
 * ISAs keep the small-group kernels of conv2d_direct.c (cn__conv_fewch_applies
 * is false there). */
#include <omp.h>
#include <string.h>

#include "kernels/gemm.h"
#include "ops/conv_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FEW_X86 1
#include <immintrin.h>
#else
#define FEW_X86 0
#endif

#define FEW_MAX_IC 4
/* Rows of the tap table (KH*KW*C_in): the offsets live on the stack. */
#define FEW_MAX_K 1024
/* Floats of padded input rows a thread keeps on its stack (64 KiB: taller
 * bands copy each input row fewer times; a tile reads only its KH rows);
 * a row wider than that is done in column segments. */
#define FEW_BUF 16384
/* Fixed row chunks of the backward-weights reduction. */
#define FEW_CHUNKS 16

/* Pixel tile widths: 6 for 4 zmm of channels (24 accumulators), 12 or 14
 * for 2 (24 or 28), up to 24 for 1: of a list, the one with the fewest
 * wasted pixels in a row, the first on ties. With 64 or more channels the
 * 6 x 4 tile (one broadcast feeds 4 FMAs) does a pixel in about 1/1.2 of
 * the time of a 14 x 2 one (loads: 10 per 24 FMAs against 30 per 28), so
 * it is taken unless it computes over 1.2x the pixels. In-process A/B, one
 * thread, Intel Xeon: 7x7 stem (OW 112) 0.90 of the time, 28x28 1->64 0.81;
 * OW 14 1.10 (18 pixels against 14), which keeps 14 there. */
static int tile_r(const cn_conv2d_desc *d)
{
    static const int r2[] = {14, 12}, r1[] = {24, 14, 12};
    const int *rs = d->OC >= 32 ? r2 : r1, nrs = d->OC >= 32 ? 2 : 3;
    int best = rs[0];
    int64_t bw = (d->OW + best - 1) / best * best;
    for (int i = 1; i < nrs; i++) {
        int64_t w = (d->OW + rs[i] - 1) / rs[i] * rs[i];
        if (w < bw) best = rs[i], bw = w;
    }
    if (d->OC >= 64 && 5 * ((d->OW + 5) / 6 * 6) <= 6 * bw) best = 6;
    return best;
}

/* Taps rows [lo, hi) of the filter that output row oh reads inside the
 * input (the others read zeros and are skipped). */
static void kh_range(const cn_conv2d_desc *d, int64_t oh, int64_t *lo, int64_t *hi)
{
    const int64_t top = oh * d->SH - d->PT, DH = d->DH; /* ih of kh = 0 */
    /* no division for DH = 1: this runs for every output row */
    int64_t a = top >= 0 ? 0 : DH == 1 ? -top : (-top + DH - 1) / DH;
    int64_t b = d->IH - top <= 0 ? 0 : DH == 1 ? d->IH - top : (d->IH - top + DH - 1) / DH;
    *lo = CN__MIN(a, d->KH), *hi = CN__MAX(CN__MIN(b, d->KH), *lo);
}

/* Padded columns a segment of np output pixels reads. */
static int64_t seg_cols(const cn_conv2d_desc *d, int64_t np)
{
    return (np - 1) * d->SW + (d->KW - 1) * d->DW + 1;
}

/* Padded input rows a band of nb output rows reads. */
static int64_t band_rows(const cn_conv2d_desc *d, int64_t nb)
{
    return (nb - 1) * d->SH + (d->KH - 1) * d->DH + 1;
}

/* Output pixels per column segment: whole R-tiles whose padded rows for one
 * output row fit in FEW_BUF floats (0 if not even one tile does). */
static int64_t seg_pixels(const cn_conv2d_desc *d, int R)
{
    int64_t per = band_rows(d, 1) * d->IC, room = FEW_BUF / per;
    if (seg_cols(d, R) > room) return 0;
    int64_t tiles = ((room - seg_cols(d, 1)) / d->SW + 1) / R;
    int64_t need = (d->OW + R - 1) / R;
    return CN__MIN(tiles, need) * R;
}

int cn__conv_fewch_applies(const cn_conv2d_desc *d)
{
    if (!FEW_X86 || cn__isa_detect() != CN_ISA_AVX512) return 0;
    if (d->G != 1 || d->IC > FEW_MAX_IC || d->OC % 16) return 0;
    if (d->KH * d->KW * d->IC > FEW_MAX_K || d->SW > FEW_BUF || d->DW > FEW_BUF ||
        d->SH > FEW_BUF || d->DH > FEW_BUF)
        return 0;
    return seg_pixels(d, tile_r(d)) > 0;
}

size_t cn__conv_fewch_bww_ws(const cn_conv2d_desc *d)
{
    return (size_t)(FEW_CHUNKS * d->KH * d->KW * d->IC * d->OC) * sizeof(float);
}

#if FEW_X86

#define ALWAYS static inline __attribute__((always_inline))
#define TGT __attribute__((target("avx512f")))
/* acc += broadcast(*p) * v with the broadcast folded into the FMA's memory
 * operand: given _mm512_set1_ps, gcc broadcasts into a register once per
 * x value used by several FMAs, an extra instruction per x value that
 * measured 1-4% slower here than a load per FMA. */
#define FMA_BCAST(acc, p, v)                                                                       \
    __asm__("vfmadd231ps %1%{1to16%}, %2, %0" : "+v"(acc) : "m"(*(p)), "v"(v))

/* The plan shared by every band: pixel tile width R, segment length S,
 * band height B, buffer row stride ld and the tap table off[k] =
 * kh*DH*ld + kw*DW*C_in + i. */
typedef struct few_plan {
    int R;
    int64_t S, B, ld, K;
    int off[FEW_MAX_K];
} few_plan;

static void plan_init(const cn_conv2d_desc *d, few_plan *pl)
{
    pl->R = tile_r(d);
    pl->S = seg_pixels(d, pl->R);
    pl->ld = seg_cols(d, pl->S) * d->IC;
    pl->B = 1;
    while (pl->B < d->OH && band_rows(d, pl->B + 1) * pl->ld <= FEW_BUF) pl->B++;
    pl->K = d->KH * d->KW * d->IC;
    for (int64_t kh = 0, k = 0; kh < d->KH; kh++)
        for (int64_t kw = 0; kw < d->KW; kw++)
            for (int64_t i = 0; i < d->IC; i++)
                pl->off[k++] = (int)(kh * d->DH * pl->ld + kw * d->DW * d->IC + i);
}

/* buf[r*ld + c] = padded input row oh0*SH-PT+r of image n, columns from
 * iw0 on (ld / C_in of them), for the rows of nb output rows from oh0:
 * zeros outside the input. */
static TGT void fill_band(const cn_conv2d_desc *d, const few_plan *pl, const float *x, int64_t n,
                          int64_t oh0, int64_t nb, int64_t iw0, float *buf)
{
    const int64_t IC = d->IC, ld = pl->ld, cols = ld / IC, rows = band_rows(d, nb);
    const int64_t lo = CN__MAX(iw0, 0), hi = CN__MIN(iw0 + cols, d->IW), len = (hi - lo) * IC;
    /* one memset and inline row copies: a 28-float row is too short for
     * three library calls */
    memset(buf, 0, (size_t)(rows * ld) * sizeof *buf);
    if (lo >= hi) return;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t ih = oh0 * d->SH - d->PT + r;
        if (ih < 0 || ih >= d->IH) continue;
        float *dst = buf + r * ld + (lo - iw0) * IC;
        const float *src = x + ((n * d->IH + ih) * d->IW + lo) * IC;
        int64_t c = 0;
        for (; c + 16 <= len; c += 16) _mm512_storeu_ps(dst + c, _mm512_loadu_ps(src + c));
        if (c < len) { /* masked lanes neither read nor write */
            const __mmask16 m = (__mmask16)((1u << (len - c)) - 1);
            _mm512_mask_storeu_ps(dst + c, m, _mm512_maskz_loadu_ps(m, src + c));
        }
    }
}

/* y[p, 0..16*NB) for the nr <= R pixels p of a tile (R computed, nr
 * stored): xb is the tile's first pixel in the buffer, xs the buffer step
 * between pixels, w and b already offset to the channel block. */
ALWAYS TGT void fwd_tile(const float *xb, int64_t xs, const int *off, int64_t K, const float *w,
                         int64_t OC, const float *b, int relu, float *y, int nr, const int R,
                         const int NB)
{
    __m512 acc[24][4];
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++) {
        const __m512 bj = b ? _mm512_loadu_ps(b + 16 * (int64_t)j) : _mm512_setzero_ps();
#pragma GCC unroll 24
        for (int r = 0; r < R; r++) acc[r][j] = bj;
    }
    for (int64_t k = 0; k < K; k++) {
        const float *wp = w + k * OC, *xp = xb + off[k];
        __m512 wv[4];
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) wv[j] = _mm512_loadu_ps(wp + 16 * (int64_t)j);
        /* With 4 zmm of channels each x value feeds 4 FMAs: one broadcast
         * into a register, not four folded ones, eases the load ports
         * (7x7 stem, 64x64 image in L2, one thread, on an Intel Xeon: 140
         * -> 156 GFLOP/s, 7 alternating runs). Narrower tiles keep the
         * folded form measured above. */
        if (NB >= 4) {
#pragma GCC unroll 24
            for (int r = 0; r < R; r++) {
                const __m512 xv = _mm512_set1_ps(xp[r * xs]);
#pragma GCC unroll 4
                for (int j = 0; j < NB; j++) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
            }
            continue;
        }
#pragma GCC unroll 24
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int j = 0; j < NB; j++) FMA_BCAST(acc[r][j], xp + r * xs, wv[j]);
    }
    const __m512 z = _mm512_setzero_ps();
#pragma GCC unroll 24
    for (int r = 0; r < R; r++)
        if (r < nr)
#pragma GCC unroll 4
            for (int j = 0; j < NB; j++) {
                __m512 v = acc[r][j];
                /* cn_act_fwd's relu: v <= 0 gives +0, NaN stays NaN */
                if (relu) v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, z, _CMP_LE_OQ), z);
                _mm512_storeu_ps(y + (int64_t)r * OC + 16 * (int64_t)j, v);
            }
}

/* Output rows [oh0, oh0+nb) of image n, segment by segment, channel block
 * by channel block. */
static TGT void fwd_band(const cn_conv2d_desc *d, const few_plan *pl, const float *x,
                         const float *w, const float *b, int relu, float *y, int64_t n, int64_t oh0,
                         int64_t nb, float *buf)
{
    const int64_t OC = d->OC, xs = d->SW * d->IC;
    const int R = pl->R;
    for (int64_t s0 = 0; s0 < d->OW; s0 += pl->S) {
        const int64_t s1 = CN__MIN(s0 + pl->S, d->OW);
        fill_band(d, pl, x, n, oh0, nb, s0 * d->SW - d->PL, buf);
        for (int64_t ob = 0; ob < OC;) {
            const int NB = OC - ob >= 64 && R == 6 ? 4 : OC - ob >= 32 ? 2 : 1;
            for (int64_t oh = oh0; oh < oh0 + nb; oh++) {
                int64_t k0, k1;
                kh_range(d, oh, &k0, &k1);
                k0 *= d->KW * d->IC, k1 *= d->KW * d->IC;
                for (int64_t t = s0; t < s1; t += R) {
                    float *yrow = y + (n * d->OH + oh) * d->OW * OC;
                    const float *xb = buf + (oh - oh0) * d->SH * pl->ld + (t - s0) * xs;
                    const float *bb = b ? b + ob : NULL;
                    float *yp = yrow + t * OC + ob;
                    const int nr = (int)CN__MIN(R, s1 - t);
#define FEW_FWD(r, nb)                                                                             \
    fwd_tile(xb, xs, pl->off + k0, k1 - k0, w + k0 * OC + ob, OC, bb, relu, yp, nr, r, nb)
                    if (NB == 4)
                        FEW_FWD(6, 4);
                    else if (NB == 2 && R == 6)
                        FEW_FWD(6, 2);
                    else if (NB == 2 && R == 12)
                        FEW_FWD(12, 2);
                    else if (NB == 2)
                        FEW_FWD(14, 2);
                    else if (R == 6)
                        FEW_FWD(6, 1);
                    else if (R == 12)
                        FEW_FWD(12, 1);
                    else if (R == 14)
                        FEW_FWD(14, 1);
                    else
                        FEW_FWD(24, 1);
#undef FEW_FWD
                }
            }
            ob += 16 * (int64_t)NB;
        }
    }
}

/* part[k0+i, 0..16*NB) += sum over the nb x np pixels (h, p) of
 * xb[h*xh + p*xs + off[i]] * gy[h*gh + p*OC, 0..16*NB), i < RB. */
ALWAYS TGT void bww_tile(const float *xb, int64_t xh, int64_t xs, const int *off, const float *gy,
                         int64_t gh, int64_t OC, int64_t nb, int64_t np, float *part, const int RB,
                         const int NB)
{
    __m512 acc[12][4];
    int o[12];
#pragma GCC unroll 12
    for (int i = 0; i < RB; i++) {
        o[i] = off[i];
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) acc[i][j] = _mm512_setzero_ps();
    }
    for (int64_t h = 0; h < nb; h++)
        for (int64_t p = 0; p < np; p++) {
            const float *xq = xb + h * xh + p * xs, *gq = gy + h * gh + p * OC;
            __m512 gv[4];
#pragma GCC unroll 4
            for (int j = 0; j < NB; j++) gv[j] = _mm512_loadu_ps(gq + 16 * (int64_t)j);
#pragma GCC unroll 12
            for (int i = 0; i < RB; i++)
#pragma GCC unroll 4
                for (int j = 0; j < NB; j++) FMA_BCAST(acc[i][j], xq + o[i], gv[j]);
        }
#pragma GCC unroll 12
    for (int i = 0; i < RB; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) {
            float *q = part + (int64_t)i * OC + 16 * (int64_t)j;
            _mm512_storeu_ps(q, _mm512_add_ps(_mm512_loadu_ps(q), acc[i][j]));
        }
}

/* Dispatches a block of rb rows (1 <= rb <= 12, <= 6 for NB = 4) to its
 * unrolled tile. */
ALWAYS TGT void bww_block(const float *xb, int64_t xh, int64_t xs, const int *off, const float *gy,
                          int64_t gh, int64_t OC, int64_t nb, int64_t np, float *part, int rb,
                          const int NB)
{
#define FEW_RB(r) ((r) < 7 || NB < 4 ? (r) : 6)
#define FEW_BWW(r)                                                                                 \
    case r:                                                                                        \
        bww_tile(xb, xh, xs, off, gy, gh, OC, nb, np, part, FEW_RB(r), NB);                        \
        break
    switch (rb) {
        FEW_BWW(1);
        FEW_BWW(2);
        FEW_BWW(3);
        FEW_BWW(4);
        FEW_BWW(5);
        FEW_BWW(6);
        FEW_BWW(7);
        FEW_BWW(8);
        FEW_BWW(9);
        FEW_BWW(10);
        FEW_BWW(11);
        FEW_BWW(12);
    }
#undef FEW_BWW
#undef FEW_RB
}

/* part[k0..k1, OC] += the weight gradient of nb x np pixels from xb (in
 * the buffer) and gy. */
static TGT void bww_rows(const cn_conv2d_desc *d, const few_plan *pl, const float *xb,
                         const float *gy, int64_t nb, int64_t np, int64_t k0, int64_t k1,
                         float *part)
{
    const int64_t OC = d->OC, xs = d->SW * d->IC, xh = d->SH * pl->ld, gh = d->OW * OC;
    for (int64_t ob = 0; ob < OC;) {
        const int NB = OC - ob >= 64 ? 4 : OC - ob >= 32 ? 2 : 1, rmax = NB == 4 ? 6 : 12;
        /* rows k0..k1 in nblk blocks as even as possible */
        const int64_t nblk = (k1 - k0 + rmax - 1) / rmax;
        for (int64_t bi = 0, ka = k0; bi < nblk; bi++) {
            const int64_t kb = k0 + (k1 - k0) * (bi + 1) / nblk;
            const float *g = gy + ob;
            float *pr = part + ka * OC + ob;
            const int rb = (int)(kb - ka);
            const int *o = pl->off + ka;
            if (NB == 4)
                bww_block(xb, xh, xs, o, g, gh, OC, nb, np, pr, rb, 4);
            else if (NB == 2)
                bww_block(xb, xh, xs, o, g, gh, OC, nb, np, pr, rb, 2);
            else
                bww_block(xb, xh, xs, o, g, gh, OC, nb, np, pr, rb, 1);
            ka = kb;
        }
        ob += 16 * (int64_t)NB;
    }
}

/* part[K, OC] += the weight gradient of output rows [oh0, oh0+nb) of
 * image n. */
static TGT void bww_band(const cn_conv2d_desc *d, const few_plan *pl, const float *x,
                         const float *gy, float *part, int64_t n, int64_t oh0, int64_t nb,
                         float *buf)
{
    const int64_t OC = d->OC, xh = d->SH * pl->ld, gh = d->OW * OC;
    const float *gyr = gy + (n * d->OH + oh0) * d->OW * OC;
    for (int64_t s0 = 0; s0 < d->OW; s0 += pl->S) {
        const int64_t np = CN__MIN(pl->S, d->OW - s0);
        fill_band(d, pl, x, n, oh0, nb, s0 * d->SW - d->PL, buf);
        /* rows whose taps reach the same filter rows [kh0, kh1) together:
         * the taps over the top and bottom padding are skipped */
        for (int64_t h0 = 0, h1; h0 < nb; h0 = h1) {
            int64_t a0, a1, b0, b1;
            kh_range(d, oh0 + h0, &a0, &a1);
            for (h1 = h0 + 1; h1 < nb; h1++) {
                kh_range(d, oh0 + h1, &b0, &b1);
                if (b0 != a0 || b1 != a1) break;
            }
            bww_rows(d, pl, buf + h0 * xh, gyr + h0 * gh + s0 * OC, h1 - h0, np, a0 * d->KW * d->IC,
                     a1 * d->KW * d->IC, part);
        }
    }
}

/* ---- backward-data ----------------------------------------------------------------- */

/* Lane i of the result = the sum of v[i]'s 16 lanes, i < 16: a transposing
 * tree of 15 adds and 30 shuffles for 16 sums, where one reduction each
 * would take 4 adds and 4 shuffles. The halves of the tree pair vectors 8,
 * 4, 2 apart, which leaves the sums in the lane order of `order`. */
ALWAYS TGT __m512 hsum16(const __m512 *v)
{
    __m512 u[8], s[4], r[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) /* quads: v_i's halves summed, then v_{i+8}'s */
        u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[i], v[i + 8], 0x44),
                             _mm512_shuffle_f32x4(v[i], v[i + 8], 0xEE));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) /* quads: v_i, v_{i+8}, v_{i+4}, v_{i+12}, 4 lanes each */
        s[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u[i], u[i + 4], 0x88),
                             _mm512_shuffle_f32x4(u[i], u[i + 4], 0xDD));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) /* quad q: its vectors of s_i and s_{i+2}, alternating */
        r[i] =
            _mm512_add_ps(_mm512_unpacklo_ps(s[i], s[i + 2]), _mm512_unpackhi_ps(s[i], s[i + 2]));
    const __m512 f = _mm512_add_ps(_mm512_shuffle_ps(r[0], r[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_ps(r[0], r[1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* f's lane 4q + e holds vector {0, 2, 1, 3}[e] + {0, 8, 4, 12}[q] */
    const __m512i order = _mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15);
    return _mm512_permutexvar_ps(order, f);
}

/* The taps of one input row and column phase: the gy pixel under tap t of
 * the phase's pixel j is gy[goff[t] + j*OC], its filter rows w[woff[t]],
 * for 0 <= j + lo[t] < hi[t] (lo = -base, hi = OW - base, base the output
 * column of pixel 0 under tap t). */
typedef struct few_taps {
    int64_t n, goff[FEW_MAX_K], woff[FEW_MAX_K], lo[FEW_MAX_K], hi[FEW_MAX_K];
} few_taps;

/* gx[p*xs + i] (+)= the sum over the taps, and over OC, of gy * w for the
 * P pixels j0 + p of a tile, all inside every tap, i < IC, stored for p >=
 * p0 only: P*IC <= 24 accumulators of 16 output channels, each gy vector
 * used IC times, each w vector P times, then summed across lanes 16 at a
 * time. */
ALWAYS TGT void bwd_tile(const few_taps *tp, const float *gy, const float *w, int64_t oc,
                         int64_t j0, float *gx, int64_t xs, int p0, int acc, const int P,
                         const int IC, const int NB)
{
    /* NB > 0: OC = 16*NB, a constant, so that the P pixels' vectors lie at
     * constant offsets from one pointer, where a run-time OC keeps a
     * pointer a pixel, more than the registers hold (in-process A/B:
     * lenet's first layer, OC = 32, 0.85-0.94 of the time; the 7x7 stem,
     * OC = 64, 1.24-1.28, its four unrolled channel blocks spilling: so
     * only OC = 16 and 32) */
    const int64_t OC = NB ? 16 * (int64_t)NB : oc;
    __m512 a[32];
#pragma GCC unroll 32
    for (int i = 0; i < 32; i++) a[i] = _mm512_setzero_ps();
    for (int64_t t = 0; t < tp->n; t++) {
        const float *g = gy + tp->goff[t] + j0 * OC, *wp = w + tp->woff[t];
#pragma GCC unroll 2
        for (int64_t ob = 0; ob < OC; ob += 16) {
            __m512 wv[4];
#pragma GCC unroll 4
            for (int i = 0; i < IC; i++) wv[i] = _mm512_loadu_ps(wp + i * OC + ob);
#pragma GCC unroll 24
            for (int p = 0; p < P; p++) {
                const __m512 gv = _mm512_loadu_ps(g + p * OC + ob);
#pragma GCC unroll 4
                for (int i = 0; i < IC; i++)
                    a[p * IC + i] = _mm512_fmadd_ps(gv, wv[i], a[p * IC + i]);
            }
        }
    }
    float sum[32] __attribute__((aligned(64)));
#pragma GCC unroll 2
    for (int h = 0; h < P * IC; h += 16) _mm512_store_ps(sum + h, hsum16(a + h));
    for (int p = p0; p < P; p++)
        for (int i = 0; i < IC; i++) {
            float *o = gx + p * xs + i;
            *o = acc ? *o + sum[p * IC + i] : sum[p * IC + i];
        }
}

/* The same for one pixel j that some taps miss: two sums a channel, over
 * alternate taps, so that one FMA's latency is not the whole time. */
static TGT void bwd_pixel(const few_taps *tp, const float *gy, const float *w, int64_t OC,
                          int64_t IC, int64_t j, float *gx, int acc)
{
    __m512 a[2][FEW_MAX_IC];
    for (int64_t i = 0; i < IC; i++) a[0][i] = a[1][i] = _mm512_setzero_ps();
    for (int64_t t = 0; t < tp->n; t++) {
        if (j < tp->lo[t] || j >= tp->hi[t]) continue;
        const float *g = gy + tp->goff[t] + j * OC, *wp = w + tp->woff[t];
        __m512 *s = a[t & 1];
        for (int64_t ob = 0; ob < OC; ob += 16) {
            const __m512 gv = _mm512_loadu_ps(g + ob);
            for (int64_t i = 0; i < IC; i++)
                s[i] = _mm512_fmadd_ps(gv, _mm512_loadu_ps(wp + i * OC + ob), s[i]);
        }
    }
    for (int64_t i = 0; i < IC; i++) {
        const float s = _mm512_reduce_add_ps(_mm512_add_ps(a[0][i], a[1][i]));
        gx[i] = acc ? gx[i] + s : s;
    }
}

/* Input row ih of image n: each column phase r < SW (pixels iw = r + j*SW)
 * sees the taps (kh, kw) whose output row and column are whole, the same
 * taps for every pixel of the phase; a tile runs where all of them lie
 * inside gy, single pixels elsewhere. */
static TGT void bwd_row(const cn_conv2d_desc *d, const float *gy, const float *w, int acc,
                        float *gx, int64_t n, int64_t ih, few_taps *tp)
{
    const int64_t OC = d->OC, IC = d->IC, SW = d->SW, xs = SW * IC;
    float *gxr = gx + (n * d->IH + ih) * d->IW * IC;
    for (int64_t r = 0; r < SW && r < d->IW; r++) {
        const int64_t J = (d->IW - r + SW - 1) / SW;
        int64_t jlo = 0, jhi = J;
        tp->n = 0;
        for (int64_t kh = 0; kh < d->KH; kh++) {
            const int64_t th = ih + d->PT - kh * d->DH;
            if (th % d->SH || th < 0 || th / d->SH >= d->OH) continue;
            const float *gyr = gy + (n * d->OH + th / d->SH) * d->OW * OC;
            for (int64_t kw = 0; kw < d->KW; kw++) {
                const int64_t tw = r + d->PL - kw * d->DW; /* iw = r: column tw / SW */
                if (tw % SW) continue;
                const int64_t base = tw / SW, t = tp->n++;
                tp->goff[t] = (gyr - gy) + base * OC;
                tp->woff[t] = (kh * d->KW + kw) * IC * OC;
                tp->lo[t] = -base, tp->hi[t] = d->OW - base;
                jlo = CN__MAX(jlo, -base), jhi = CN__MIN(jhi, d->OW - base);
            }
        }
        float *g0 = gxr + r * IC;
        if (tp->n == 0) { /* no tap reaches gy: the gradient is zero */
            for (int64_t j = 0; j < J && !acc; j++)
                for (int64_t i = 0; i < IC; i++) g0[j * xs + i] = 0.0f;
            continue;
        }
        if (jhi < jlo) jhi = jlo;
        for (int64_t j = 0; j < jlo && j < J; j++)
            bwd_pixel(tp, gy, w, OC, IC, j, g0 + j * xs, acc);
        /* tiles of P pixels; a short last one overlaps the one before and
         * stores only its new pixels (same sums, so the same bits) */
        const int P = IC == 1 ? 16 : IC == 2 ? 12 : IC == 3 ? 8 : 6;
        for (int64_t j = jlo; jhi - jlo >= P && j < jhi; j += P) {
            const int64_t j0 = CN__MIN(j, jhi - P);
            const int p0 = (int)(j - j0);
            float *o = g0 + j0 * xs;
#define FEW_BWD(nb)                                                                                \
    do {                                                                                           \
        if (IC == 1)                                                                               \
            bwd_tile(tp, gy, w, OC, j0, o, xs, p0, acc, 16, 1, nb);                                \
        else if (IC == 2)                                                                          \
            bwd_tile(tp, gy, w, OC, j0, o, xs, p0, acc, 12, 2, nb);                                \
        else if (IC == 3)                                                                          \
            bwd_tile(tp, gy, w, OC, j0, o, xs, p0, acc, 8, 3, nb);                                 \
        else                                                                                       \
            bwd_tile(tp, gy, w, OC, j0, o, xs, p0, acc, 6, 4, nb);                                 \
    } while (0)
            if (OC == 16)
                FEW_BWD(1);
            else if (OC == 32)
                FEW_BWD(2);
            else
                FEW_BWD(0);
#undef FEW_BWD
        }
        for (int64_t j = jlo; jhi - jlo < P && j < jhi; j++)
            bwd_pixel(tp, gy, w, OC, IC, j, g0 + j * xs, acc);
        for (int64_t j = jhi; j < J; j++) bwd_pixel(tp, gy, w, OC, IC, j, g0 + j * xs, acc);
    }
}

void cn__conv2d_fewch_bwd_data(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy,
                               const float *w, int acc, float *gx)
{
    const int64_t rows = d->MB * d->IH;
    const int nt = cn__threads(ctx);
#pragma omp parallel num_threads(nt) if (nt > 1 && rows > 1)
    {
        few_taps tp;
#pragma omp for schedule(dynamic)
        for (int64_t row = 0; row < rows; row++)
            bwd_row(d, gy, w, acc, gx, row / d->IH, row % d->IH, &tp);
    }
}

void cn__conv2d_fewch_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                          const float *w, const float *b, int relu, float *y)
{
    few_plan pl;
    plan_init(d, &pl);
    const int nt = cn__threads(ctx);
    const int64_t per = (d->OH + pl.B - 1) / pl.B, bands = d->MB * per;
#pragma omp parallel num_threads(nt) if (nt > 1 && bands > 1)
    {
        float buf[FEW_BUF] __attribute__((aligned(64)));
        /* dynamic: bands are independent, and a thread the OS preempts
         * (a shared machine) then hands its share to the others */
#pragma omp for schedule(dynamic)
        for (int64_t u = 0; u < bands; u++) {
            const int64_t oh0 = u % per * pl.B;
            fwd_band(d, &pl, x, w, b, relu, y, u / per, oh0, CN__MIN(pl.B, d->OH - oh0), buf);
        }
    }
}

void cn__conv2d_fewch_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                  const float *gy, float *gw, float *part)
{
    few_plan pl;
    plan_init(d, &pl);
    const int64_t nw = pl.K * d->OC, rows = d->MB * d->OH;
    const int nt = cn__threads(ctx);
    int done = 0; /* chunks finished, +1 once they are added up */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float buf[FEW_BUF] __attribute__((aligned(64)));
        const int master = omp_get_thread_num() == 0;
        /* the master's last chunk, TSC ticks */
        uint64_t tk = 0;
        /* each chunk's rows summed, in order, by the one thread that takes
         * it (dynamic, as in the forward pass: a chunk's sum does not depend
         * on which thread does it) */
#pragma omp for schedule(dynamic) nowait
        for (int k = 0; k < FEW_CHUNKS; k++) {
            const uint64_t t0 = master ? __rdtsc() : 0;
            float *pk = part + k * nw;
            memset(pk, 0, (size_t)nw * sizeof *pk);
            /* the chunk's rows in bands that stay inside one image */
            const int64_t r1 = rows * (k + 1) / FEW_CHUNKS;
            for (int64_t row = rows * k / FEW_CHUNKS, nb; row < r1; row += nb) {
                const int64_t n = row / d->OH, oh = row % d->OH;
                nb = CN__MIN(CN__MIN(pl.B, d->OH - oh), r1 - row);
                bww_band(d, &pl, x, gy, pk, n, oh, nb, buf);
            }
            /* The thread that finishes the last chunk adds the chunks up,
             * every element in chunk order: no barrier between the two
             * steps, which with sleeping OpenMP workers (the CLI's passive
             * wait policy) costs a futex wake-up, a large part of a small
             * problem's time on 2 threads. seq_cst: the other chunks'
             * sums are visible once their count is. */
            int c;
#pragma omp atomic capture seq_cst
            c = ++done;
            if (c == FEW_CHUNKS) {
                for (int64_t i = 0; i < nw; i++) cn__sum_chunks(part, FEW_CHUNKS, nw, i, gw);
#pragma omp atomic update
                done++;
            }
            if (master) tk = __rdtsc() - t0;
        }
        /* The master, out of chunks before the others, waits for them
         * spinning, for at most about a chunk's time, rather than asleep
         * in the region's closing barrier (a futex wake-up: microseconds
         * to tens of them); the others sleep there, the master does not
         * wait for their wake-up. */
        if (tk > 0) {
            const uint64_t end = __rdtsc() + 2 * tk;
            for (;;) {
                int c;
#pragma omp atomic read
                c = done;
                if (c > FEW_CHUNKS || __rdtsc() > end) break;
                _mm_pause();
            }
        }
    }
}

#else /* cn__conv_fewch_applies is 0: never called */

void cn__conv2d_fewch_bwd_data(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy,
                               const float *w, int acc, float *gx)
{
    (void)ctx, (void)d, (void)gy, (void)w, (void)acc, (void)gx;
}

void cn__conv2d_fewch_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                          const float *w, const float *b, int relu, float *y)
{
    (void)ctx, (void)d, (void)x, (void)w, (void)b, (void)relu, (void)y;
}

void cn__conv2d_fewch_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                  const float *gy, float *gw, float *part)
{
    (void)ctx, (void)d, (void)x, (void)gy, (void)gw, (void)part;
}

#endif
