/* Channel-vectorised direct convolution kernels for small groups: few input
 * channels per group, output channels per group a multiple of 8 (grouped
 * ResNeXt layers, a first layer over 1-3 channels). Depthwise problems go to
 * conv2d_depthwise.c.
 *
 * They work on NHWC rows with no im2col. Vectors run along output channels,
 * which are contiguous in NHWC:
 *   y[p, g*OCG+o] += x[q, g*ICG+i] * w[t, i, g*OCG+o]
 *   a register tile of R output pixels x NB vectors of 8 output channels; x
 *   is broadcast, w loaded once per tile and tap.
 * Backward-data is the forward kernel on the flipped, channel-swapped filter
 * (conv2d.c builds that problem); backward-weights is a reduction over
 * N x OH x OW split into a fixed number of row chunks, each summed into its
 * own partial gradient and the partials added in chunk order, so the result
 * does not depend on the thread count.
 *
 * The vectors are GCC/clang vector extensions of 8 floats, compiled three
 * times (AVX-512, AVX2 + FMA, baseline x86-64) and chosen per call from
 * cn__isa_detect(), so CN_ISA selects the variant the tests exercise. This
 * file is built with -ffp-contract=fast so that a*b+c becomes one FMA. */
#include <string.h>

#include "kernels/gemm.h"
#include "ops/conv_internal.h"

typedef float v8 __attribute__((vector_size(32), aligned(4), may_alias));
#define LD(p) (*(const v8 *)(p))
#define ST(p, v) (*(v8 *)(p) = (v))
#define ALWAYS static inline __attribute__((always_inline))

/* Fixed number of row chunks of the backward-weights reduction: enough to
 * keep a few threads busy, few enough that the partials stay small. */
#define BWW_CHUNKS 16

/* The most input channels per group the small-group kernel takes; border
 * pixels read this many zeros instead of the input. */
#define GRP_MAX_ICG 16
static const float zeros[GRP_MAX_ICG];

int cn__conv_grouped_applies(const cn_conv2d_desc *d)
{
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G;
    return OCG % 8 == 0 && ((d->G > 1 && ICG <= GRP_MAX_ICG) || ICG <= 4);
}

/* Output columns [lo, hi) for which tap column kw reads inside the input. */
static void tap_cols(const cn_conv2d_desc *d, int64_t kw, int64_t *lo, int64_t *hi)
{
    int64_t off = kw * d->DW - d->PL; /* iw = ow*SW + off */
    int64_t a = off >= 0 ? 0 : (-off + d->SW - 1) / d->SW;
    int64_t t = d->IW - 1 - off;
    int64_t b = t < 0 ? 0 : CN__MIN(d->OW, t / d->SW + 1);
    *lo = CN__MIN(a, b), *hi = b;
}

/* Row chunk k of BWW_CHUNKS over the MB*OH output rows. */
static void chunk_rows(const cn_conv2d_desc *d, int k, int64_t *r0, int64_t *r1)
{
    const int64_t rows = d->MB * d->OH;
    *r0 = rows * k / BWW_CHUNKS, *r1 = rows * (k + 1) / BWW_CHUNKS;
}

/* ---- small groups ------------------------------------------------------- */

/* y[n, oh, ow0..ow0+nr) channels g*OCG+ob .. +8*NB, nr <= R: an R x NB
 * tile of 8-float accumulators. check: test every pixel's taps against the
 * input bounds (border and ragged tiles); otherwise all R columns are
 * interior. Pixels stay independent accumulator chains either way, so a
 * border tile runs as fast as an interior one. */
ALWAYS void grp_fwd_tile(const cn_conv2d_desc *d, const float *x, const float *w, const float *b,
                         float *y, int64_t n, int64_t oh, int64_t ow0, int64_t nr, int64_t g,
                         int64_t ob, const int R, const int NB, const int check, int64_t ish,
                         int64_t isw)
{
    const int64_t IC = d->IC, OC = d->OC, ICG = IC / d->G, OCG = OC / d->G;
    const int64_t oc0 = g * OCG + ob;
    v8 acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) acc[r][j] = b ? LD(b + oc0 + 8 * (int64_t)j) : (v8){0};
    for (int64_t kh = 0; kh < d->KH; kh++) {
        const int64_t ih = oh * d->SH - d->PT + kh * d->DH;
        if (ih < 0 || ih >= d->IH || ih % ish) continue;
        const float *xr = x + (n * d->IH + ih) * d->IW * IC + g * ICG;
        for (int64_t kw = 0; kw < d->KW; kw++) {
            const int64_t iw = ow0 * d->SW - d->PL + kw * d->DW;
            const float *wp = w + (kh * d->KW + kw) * ICG * OC + oc0;
            if (!check) { /* ish = isw = 1 here */
                const float *xp = xr + iw * IC;
                for (int64_t i = 0; i < ICG; i++, wp += OC) {
                    v8 wv[4];
#pragma GCC unroll 4
                    for (int j = 0; j < NB; j++) wv[j] = LD(wp + 8 * (int64_t)j);
#pragma GCC unroll 8
                    for (int r = 0; r < R; r++) {
                        const float xv = xp[r * d->SW * IC + i];
#pragma GCC unroll 4
                        for (int j = 0; j < NB; j++) acc[r][j] += xv * wv[j];
                    }
                }
                continue;
            }
            /* Pixels outside the input (or past nr) read zeros instead of
             * branching: every pixel keeps its place in the unrolled tile. */
            const float *xp[8];
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                const float *q = r < nr ? cn__src_px(d, x, n, ih, iw + r * d->SW, ish, isw) : NULL;
                xp[r] = q ? q + g * ICG : zeros;
            }
            for (int64_t i = 0; i < ICG; i++, wp += OC) {
                v8 wv[4];
#pragma GCC unroll 4
                for (int j = 0; j < NB; j++) wv[j] = LD(wp + 8 * (int64_t)j);
#pragma GCC unroll 8
                for (int r = 0; r < R; r++) {
                    const float xv = xp[r][i];
#pragma GCC unroll 4
                    for (int j = 0; j < NB; j++) acc[r][j] += xv * wv[j];
                }
            }
        }
    }
    float *yp = y + ((n * d->OH + oh) * d->OW + ow0) * OC + oc0;
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        if (!check || r < nr)
#pragma GCC unroll 4
            for (int j = 0; j < NB; j++) ST(yp + (int64_t)r * OC + 8 * (int64_t)j, acc[r][j]);
}

/* A whole output row in R-wide tiles: interior tiles unchecked, the
 * border and ragged ones checked. */
ALWAYS void grp_fwd_row_nb(const cn_conv2d_desc *d, const float *x, const float *w, const float *b,
                           float *y, int64_t n, int64_t oh, int64_t g, int64_t ob, const int R,
                           const int NB, int64_t ish, int64_t isw)
{
    int64_t lo, hi;
    cn__interior_cols(d, &lo, &hi);
    for (int64_t ow = 0; ow < d->OW; ow += R) {
        const int64_t nr = CN__MIN(R, d->OW - ow);
        if (ish == 1 && isw == 1 && nr == R && ow >= lo && ow + R <= hi)
            grp_fwd_tile(d, x, w, b, y, n, oh, ow, R, g, ob, R, NB, 0, 1, 1);
        else
            grp_fwd_tile(d, x, w, b, y, n, oh, ow, nr, g, ob, R, NB, 1, ish, isw);
    }
}

ALWAYS void grp_fwd_row_body(const cn_conv2d_desc *d, const float *x, const float *w,
                             const float *b, float *y, int64_t n, int64_t oh, int64_t ish,
                             int64_t isw)
{
    const int64_t OCG = d->OC / d->G;
    for (int64_t g = 0; g < d->G; g++) {
        int64_t ob = 0;
        for (; ob + 32 <= OCG; ob += 32)
            grp_fwd_row_nb(d, x, w, b, y, n, oh, g, ob, 3, 4, ish, isw);
        for (; ob + 16 <= OCG; ob += 16)
            grp_fwd_row_nb(d, x, w, b, y, n, oh, g, ob, 6, 2, ish, isw);
        for (; ob + 8 <= OCG; ob += 8) grp_fwd_row_nb(d, x, w, b, y, n, oh, g, ob, 8, 1, ish, isw);
    }
}

/* part[(kh,kw,i0..i0+IB), g*OCG+ob .. +8*NB] += sum over the tap's columns
 * of row (n, oh) of x * gy: an IB x NB tile of accumulators. */
ALWAYS void grp_bww_tile(const cn_conv2d_desc *d, const float *xr, const float *gyr, float *pr,
                         int64_t lo, int64_t hi, int64_t off, int64_t g, int64_t i0, int64_t ob,
                         const int IB, const int NB)
{
    const int64_t IC = d->IC, OC = d->OC, ICG = IC / d->G, OCG = OC / d->G;
    v8 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < IB; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) acc[i][j] = (v8){0};
    const float *xp = xr + g * ICG + i0, *gp = gyr + g * OCG + ob;
    for (int64_t ow = lo; ow < hi; ow++) {
        const float *xq = xp + (ow * d->SW + off) * IC, *gq = gp + ow * OC;
        v8 gv[4];
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) gv[j] = LD(gq + 8 * (int64_t)j);
#pragma GCC unroll 4
        for (int i = 0; i < IB; i++) {
            const float xv = xq[i];
#pragma GCC unroll 4
            for (int j = 0; j < NB; j++) acc[i][j] += xv * gv[j];
        }
    }
    float *p = pr + i0 * OC + g * OCG + ob;
#pragma GCC unroll 4
    for (int i = 0; i < IB; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++)
            ST(p + (int64_t)i * OC + 8 * (int64_t)j,
               LD(p + (int64_t)i * OC + 8 * (int64_t)j) + acc[i][j]);
}

ALWAYS void grp_bww_row_body(const cn_conv2d_desc *d, const float *x, const float *gy, float *part,
                             int64_t n, int64_t oh)
{
    const int64_t IC = d->IC, OC = d->OC, ICG = IC / d->G, OCG = OC / d->G;
    const float *gyr = gy + (n * d->OH + oh) * d->OW * OC;
    for (int64_t kh = 0; kh < d->KH; kh++) {
        const int64_t ih = oh * d->SH - d->PT + kh * d->DH;
        if (ih < 0 || ih >= d->IH) continue;
        const float *xr = x + (n * d->IH + ih) * d->IW * IC;
        for (int64_t kw = 0; kw < d->KW; kw++) {
            int64_t lo, hi;
            tap_cols(d, kw, &lo, &hi);
            if (lo >= hi) continue;
            const int64_t off = kw * d->DW - d->PL;
            float *pr = part + (kh * d->KW + kw) * ICG * OC;
            for (int64_t g = 0; g < d->G; g++) {
                int64_t i0 = 0;
                for (; i0 + 4 <= ICG; i0 += 4) {
                    int64_t ob = 0;
                    for (; ob + 16 <= OCG; ob += 16)
                        grp_bww_tile(d, xr, gyr, pr, lo, hi, off, g, i0, ob, 4, 2);
                    for (; ob < OCG; ob += 8)
                        grp_bww_tile(d, xr, gyr, pr, lo, hi, off, g, i0, ob, 4, 1);
                }
                for (; i0 < ICG; i0++) {
                    int64_t ob = 0;
                    for (; ob + 32 <= OCG; ob += 32)
                        grp_bww_tile(d, xr, gyr, pr, lo, hi, off, g, i0, ob, 1, 4);
                    for (; ob < OCG; ob += 8)
                        grp_bww_tile(d, xr, gyr, pr, lo, hi, off, g, i0, ob, 1, 1);
                }
            }
        }
    }
}

/* ---- one function per ISA and kernel ------------------------------------ */

typedef void fwd_row_fn(const cn_conv2d_desc *, const float *, const float *, const float *,
                        float *, int64_t, int64_t, int64_t, int64_t);
typedef void bww_row_fn(const cn_conv2d_desc *, const float *, const float *, float *, int64_t,
                        int64_t);

#define CN_TGT_avx512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define CN_TGT_avx2 __attribute__((target("avx2,fma")))
#define CN_TGT_base

#define ROW_FNS(isa)                                                                               \
    static CN_TGT_##isa void grp_fwd_row_##isa(const cn_conv2d_desc *d, const float *x,            \
                                               const float *w, const float *b, float *y,           \
                                               int64_t n, int64_t oh, int64_t ish, int64_t isw)    \
    {                                                                                              \
        grp_fwd_row_body(d, x, w, b, y, n, oh, ish, isw);                                          \
    }                                                                                              \
    static CN_TGT_##isa void grp_bww_row_##isa(const cn_conv2d_desc *d, const float *x,            \
                                               const float *gy, float *part, int64_t n,            \
                                               int64_t oh)                                         \
    {                                                                                              \
        grp_bww_row_body(d, x, gy, part, n, oh);                                                   \
    }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
ROW_FNS(avx512)
ROW_FNS(avx2)
#endif
ROW_FNS(base)

static void pick(fwd_row_fn **fwd, bww_row_fn **bww)
{
    switch (cn__isa_detect()) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    case CN_ISA_AVX512:
        *fwd = grp_fwd_row_avx512;
        *bww = grp_bww_row_avx512;
        return;
    case CN_ISA_AVX2:
        *fwd = grp_fwd_row_avx2;
        *bww = grp_bww_row_avx2;
        return;
#endif
    default:
        *fwd = grp_fwd_row_base;
        *bww = grp_bww_row_base;
        return;
    }
}

/* ---- the passes ---------------------------------------------------------- */

/* y = conv(x dilated by ish x isw, w) + b, optionally ReLU'd row by row. */
static void vec_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x, const float *w,
                    const float *b, int relu, float *y, int64_t ish, int64_t isw)
{
    if (cn__conv_dw_applies(d)) {
        cn__conv2d_dw_fwd(ctx, d, x, w, b, relu, y, ish, isw);
        return;
    }
    fwd_row_fn *fwd;
    bww_row_fn *bww;
    pick(&fwd, &bww);
    const int nt = cn__threads(ctx);
    const int64_t rows = d->MB * d->OH;
#pragma omp parallel for num_threads(nt) if (nt > 1 && rows > 1) schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        fwd(d, x, w, b, y, row / d->OH, row % d->OH, ish, isw);
        if (relu) { /* this row, while it is in cache */
            float *yr = y + row * d->OW * d->OC;
            cn_act_fwd(NULL, CN_ACT_RELU, 0.0f, (size_t)(d->OW * d->OC), yr, yr);
        }
    }
}

void cn__conv2d_vec_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x, const float *w,
                        const float *b, int relu, float *y)
{
    vec_fwd(ctx, d, x, w, b, relu, y, 1, 1);
}

void cn__conv2d_vec_fwd_dilated(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                const float *w, int64_t ish, int64_t isw, float *y)
{
    vec_fwd(ctx, d, x, w, NULL, 0, y, ish, isw);
}

size_t cn__conv_vec_bww_ws(const cn_conv2d_desc *d)
{
    if (cn__conv_dw_applies(d)) return cn__conv_dw_bww_ws(d);
    const int64_t nw = d->KH * d->KW * (d->IC / d->G) * d->OC;
    return (size_t)(BWW_CHUNKS * nw) * sizeof(float);
}

void cn__conv2d_vec_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                const float *gy, float *gw, float *part)
{
    if (cn__conv_dw_applies(d)) {
        cn__conv2d_dw_bwd_weights(ctx, d, x, gy, gw, part);
        return;
    }
    fwd_row_fn *fwd;
    bww_row_fn *bww;
    pick(&fwd, &bww);
    const int64_t nw = d->KH * d->KW * (d->IC / d->G) * d->OC;
    const int nt = cn__threads(ctx);
    /* Each chunk's rows are summed, in order, by the one thread that owns it. */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#pragma omp for schedule(static)
        for (int k = 0; k < BWW_CHUNKS; k++) {
            float *pk = part + k * nw;
            memset(pk, 0, (size_t)nw * sizeof *pk);
            int64_t r0, r1;
            chunk_rows(d, k, &r0, &r1);
            for (int64_t row = r0; row < r1; row++) bww(d, x, gy, pk, row / d->OH, row % d->OH);
        }
        /* then every element is the sum of its chunks in chunk order */
#pragma omp for schedule(static)
        for (int64_t i = 0; i < nw; i++) cn__sum_chunks(part, BWW_CHUNKS, nw, i, gw);
    }
}
