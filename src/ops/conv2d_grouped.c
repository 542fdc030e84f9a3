/* AVX-512 kernels for groups of 8 output channels (ResNeXt's 32x8d
 * layers): the forward pass, backward-data at stride 1 (the forward of the
 * flipped problem) and, for 3-wide kernel rows, the weight gradient.
 *
 * 8 output channels fill half a zmm register, so two adjacent groups share
 * one: lane 2*o+h holds output channel o of group 2*gp+h. An input pixel
 * then contributes, for each of its ICG channels i, the pair (x[g0, i],
 * x[g1, i]) to every lane, which one vbroadcastsd loads when the pair sits
 * in 8 adjacent bytes. Per (image, block of output rows) the input rows the
 * block reads are copied pair-interleaved, with the zero padding written
 * out, into a per-thread buffer, and the filter once per call:
 *   xs [pair, rows, Wp, ICG, 2]    rows and columns of the padded input
 *   wv [pair, KH, KW, ICG, 8, 2]   the filter, lanes interleaved alike
 * so the inner loops have no bounds checks: acc[r] += bcast(x pair) * wv
 * for R pixels of a row. With 3-wide rows at stride 1 each broadcast serves
 * the three taps that read it (R + 5 loads for 3R FMAs). One permute puts
 * a pixel's lanes back in NHWC order (channels 16gp .. 16gp+15) at the
 * store (a streaming one for outputs over GRP8_STREAM_BYTES). The next
 * block's input rows are prefetched during the compute.
 *
 * Each output sums its bias and taps in an order fixed by the problem's
 * shape, whatever the blocking; the weight gradient sums fixed row chunks
 * and adds them in order: results do not depend on the thread count. */
#include <stdint.h>
#include <string.h>

#include "kernels/gemm.h"
#include "ops/conv_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <omp.h>

#define TGT __attribute__((target("avx512f")))
#define ALWAYS static inline __attribute__((always_inline)) TGT

/* Largest input copy per thread a row block aims for (it stays in L2). */
#define XS_BYTES ((int64_t)256 * 1024)

/* Outputs over this many bytes (twice the two cores' L2s) are streamed. */
#define GRP8_STREAM_BYTES ((int64_t)4 << 20)

/* The forward's store flags (its relu argument). */
#define ST_RELU 1   /* ReLU as cn_act_fwd */
#define ST_STREAM 2 /* non-temporal stores, y 64-byte aligned */

int cn__conv_grp8_applies(const cn_conv2d_desc *d)
{
    const int64_t ICG = d->IC / d->G, OCG = d->OC / d->G;
    return cn__isa_detect() == CN_ISA_AVX512 && d->G % 2 == 0 && OCG == 8 && ICG <= 16 &&
           d->OH > 0 && d->OW > 0;
}

/* Geometry of one call: padded width, output rows per block, input rows
 * per block, floats of a thread's input copy and of the shared filter copy
 * (with the bias). */
typedef struct grp8_plan {
    int64_t Wp, RB, rows, xs_floats, wv_floats;
} grp8_plan;

static grp8_plan plan(const cn_conv2d_desc *d, int nt)
{
    grp8_plan p;
    p.Wp = (d->OW - 1) * d->SW + (d->KW - 1) * d->DW + 1;
    const int64_t row_bytes = p.Wp * d->IC * (int64_t)sizeof(float);
    p.RB = d->OH;
    while (p.RB > 1 && ((p.RB - 1) * d->SH + (d->KH - 1) * d->DH + 1) * row_bytes > XS_BYTES)
        p.RB = (p.RB + 1) / 2;
    /* enough blocks for every thread */
    while (p.RB > 1 && d->MB * ((d->OH + p.RB - 1) / p.RB) < 4 * (int64_t)nt) p.RB = (p.RB + 1) / 2;
    p.rows = (p.RB - 1) * d->SH + (d->KH - 1) * d->DH + 1;
    p.xs_floats = (p.rows * p.Wp * d->IC + 15) / 16 * 16;
    p.wv_floats = (d->KH * d->KW * (d->IC / d->G) + 1) * d->OC;
    return p;
}

/* lane 2*o+h <- element h*8+o of 16 consecutive channels (two groups) */
ALWAYS __m512i interleave_idx(void)
{
    return _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
}

/* xs [pair, rows, Wp, ICG, 2] <- the input rows of output rows [oh0, oh0 +
 * nrows), pairs (x[g0*ICG+i], x[g1*ICG+i]) adjacent, zeros outside. Reads
 * x row by row, each pixel's channels once. */
static TGT void copy_input(const cn_conv2d_desc *d, const grp8_plan *p, const float *x, int64_t n,
                           int64_t oh0, int64_t nrows, float *xs)
{
    const int64_t ICG = d->IC / d->G, px = 2 * ICG, pairs = d->G / 2, plane = p->rows * p->Wp * px;
    const __mmask16 lo = (__mmask16)((1u << (px < 16 ? px : 16)) - 1),
                    hi = (__mmask16)(px > 16 ? (1u << (px - 16)) - 1 : 0),
                    in = (__mmask16)((1u << ICG) - 1);
    /* pairs of channel i of a (g0) and of b (g1) */
    const __m512i i0 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
                  i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(8)), i8 = interleave_idx();
    const int64_t c_lo = CN__MIN(CN__MAX(d->PL, 0), p->Wp), /* columns inside the input */
        c_hi = CN__MAX(c_lo, CN__MIN(p->Wp, d->IW + d->PL));
    const int64_t used = (nrows - 1) * d->SH + (d->KH - 1) * d->DH + 1;
    for (int64_t r = 0; r < used; r++) {
        const int64_t ih = oh0 * d->SH - d->PT + r;
        float *xr = xs + r * p->Wp * px;
        const int inside = ih >= 0 && ih < d->IH;
        for (int64_t gp = 0; gp < pairs; gp++) {
            float *q = xr + gp * plane;
            if (!inside) {
                memset(q, 0, (size_t)(p->Wp * px) * sizeof(float));
                continue;
            }
            memset(q, 0, (size_t)(c_lo * px) * sizeof(float));
            memset(q + c_hi * px, 0, (size_t)((p->Wp - c_hi) * px) * sizeof(float));
        }
        if (!inside) continue;
        const float *src = x + ((n * d->IH + ih) * d->IW + c_lo - d->PL) * d->IC;
        for (int64_t c = c_lo; c < c_hi; c++, src += d->IC) {
            float *q = xr + c * px;
            if (ICG == 8) { /* the common case: two groups are one vector */
                for (int64_t gp = 0; gp < pairs; gp++, q += plane)
                    _mm512_storeu_ps(q, _mm512_permutexvar_ps(i8, _mm512_loadu_ps(src + 16 * gp)));
                continue;
            }
            for (int64_t gp = 0; gp < pairs; gp++, q += plane) {
                const float *s = src + 2 * gp * ICG;
                const __m512 a = _mm512_maskz_loadu_ps(in, s),
                             b = _mm512_maskz_loadu_ps(in, s + ICG);
                _mm512_mask_storeu_ps(q, lo, _mm512_permutex2var_ps(a, i0, b));
                if (hi) _mm512_mask_storeu_ps(q + 16, hi, _mm512_permutex2var_ps(a, i1, b));
            }
        }
    }
}

/* wv [pair, KH, KW, ICG, 16] <- the filter of groups 2gp, 2gp+1 in lane
 * order, then bv [pair, 16] <- their bias. */
static TGT void copy_filter(const cn_conv2d_desc *d, const float *w, const float *b, int64_t gp,
                            float *wv)
{
    const int64_t ICG = d->IC / d->G, n = d->KH * d->KW * ICG;
    const __m512i idx = interleave_idx();
    float *wp = wv + gp * n * 16, *bv = wv + d->G / 2 * n * 16 + gp * 16;
    for (int64_t k = 0; k < n; k++)
        _mm512_storeu_ps(wp + 16 * k,
                         _mm512_permutexvar_ps(idx, _mm512_loadu_ps(w + k * d->OC + 16 * gp)));
    _mm512_storeu_ps(bv, b ? _mm512_permutexvar_ps(idx, _mm512_loadu_ps(b + 16 * gp))
                           : _mm512_setzero_ps());
}

ALWAYS __m512 bcast_pair(const float *p)
{
    double v;
    memcpy(&v, p, sizeof v);
    return _mm512_castpd_ps(_mm512_set1_pd(v));
}

/* y[n, oh, ow0 .. ow0+R) channels 16gp .. +16: R pixels, one accumulator
 * each; xr is the buffer row of tap row 0. ICGc, SWc: ICG and SW when
 * known at compile time (constant addressing), else 0. K3: KW = 3, SW =
 * DW = 1, where each input pair broadcast serves the three taps of a row
 * that read it (R + 2 broadcasts for 3R FMAs), summing in (kh, i, kw)
 * order; else each broadcast serves one FMA, in (kh, kw, i) order. */
ALWAYS void tile(const cn_conv2d_desc *d, const grp8_plan *p, const float *xr, const float *wv,
                 __m512 bias, int relu, float *yp, int64_t ow0, const char **pf, const char *pf_end,
                 const int R, const int ICGc, const int SWc, const int K3)
{
    /* one line of the next block's input a tap step, never a burst */
#define PF_ONE() (*pf < pf_end ? _mm_prefetch(*pf, _MM_HINT_T1), *pf += 64 : 0)
    const int64_t ICG = ICGc ? ICGc : d->IC / d->G, SW = SWc ? SWc : d->SW, px = 2 * ICG,
                  step = SW * px;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) acc[r] = bias;
    if (K3)
        for (int64_t kh = 0; kh < d->KH; kh++) {
            const float *xp = xr + (kh * d->DH * p->Wp + ow0) * px;
            const float *wp = wv + kh * 3 * ICG * 16;
#pragma GCC unroll 16
            for (int64_t i = 0; i < ICG; i++, xp += 2, wp += 16) {
                PF_ONE();
                const __m512 w0 = _mm512_loadu_ps(wp), w1 = _mm512_loadu_ps(wp + ICG * 16),
                             w2 = _mm512_loadu_ps(wp + 2 * ICG * 16);
#pragma GCC unroll 18
                for (int c = 0; c < R + 2; c++) {
                    const __m512 v = bcast_pair(xp + c * px);
                    if (c < R) acc[c] = _mm512_fmadd_ps(v, w0, acc[c]);
                    if (c >= 1 && c - 1 < R) acc[c - 1] = _mm512_fmadd_ps(v, w1, acc[c - 1]);
                    if (c >= 2) acc[c - 2] = _mm512_fmadd_ps(v, w2, acc[c - 2]);
                }
            }
        }
    for (int64_t kh = 0; kh < (K3 ? 0 : d->KH); kh++)
        for (int64_t kw = 0; kw < d->KW; kw++) {
            const float *xp = xr + (kh * d->DH * p->Wp + ow0 * SW + kw * d->DW) * px;
            const float *wp = wv + (kh * d->KW + kw) * ICG * 16;
            PF_ONE();
#pragma GCC unroll 16
            for (int64_t i = 0; i < ICG; i++, xp += 2, wp += 16) {
                const __m512 w = _mm512_loadu_ps(wp);
#pragma GCC unroll 16
                for (int r = 0; r < R; r++)
                    acc[r] = _mm512_fmadd_ps(bcast_pair(xp + r * step), w, acc[r]);
            }
        }
    /* back to channel order: lane h*8+o <- lane 2*o+h */
    const __m512i out = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
        __m512 v = _mm512_permutexvar_ps(out, acc[r]);
        /* relu as cn_act_fwd's: v <= 0 (so -0, not NaN) becomes +0 */
        if (relu & ST_RELU)
            v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LE_OQ),
                                   _mm512_setzero_ps());
        if (relu & ST_STREAM)
            _mm512_stream_ps(yp + (ow0 + r) * d->OC, v);
        else
            _mm512_storeu_ps(yp + (ow0 + r) * d->OC, v);
    }
#undef PF_ONE
}

/* The output rows [oh0, oh0 + nrows) of pair gp from its copy xs; pf: pf_bytes
 * of x to fetch into L2 meanwhile, a share per row. */
ALWAYS void block_body(const cn_conv2d_desc *d, const grp8_plan *p, const float *xs,
                       const float *wv, const float *bv, int relu, float *y, int64_t n, int64_t gp,
                       int64_t oh0, int64_t nrows, const char *pf, int64_t pf_bytes, const int ICGc,
                       const int SWc, const int K3)
{
    const int64_t share = (pf_bytes + nrows - 1) / nrows;
    const int64_t px = 2 * (d->IC / d->G);
    const __m512 bias = _mm512_loadu_ps(bv);
    for (int64_t r = 0; r < nrows; r++) {
        const char *pf_next = pf + CN__MIN(r * share, pf_bytes),
                   *pf_end = pf + CN__MIN((r + 1) * share, pf_bytes);
        const float *xr = xs + r * d->SH * p->Wp * px;
        float *yp = y + (n * d->OH + oh0 + r) * d->OW * d->OC + 16 * gp;
        int64_t ow = 0;
        for (; ow + 14 <= d->OW; ow += 14)
            tile(d, p, xr, wv, bias, relu, yp, ow, &pf_next, pf_end, 14, ICGc, SWc, K3);
        if (ow + 8 <= d->OW)
            tile(d, p, xr, wv, bias, relu, yp, ow, &pf_next, pf_end, 8, ICGc, SWc, K3), ow += 8;
        if (ow + 4 <= d->OW)
            tile(d, p, xr, wv, bias, relu, yp, ow, &pf_next, pf_end, 4, ICGc, SWc, K3), ow += 4;
        if (ow + 2 <= d->OW)
            tile(d, p, xr, wv, bias, relu, yp, ow, &pf_next, pf_end, 2, ICGc, SWc, K3), ow += 2;
        if (ow < d->OW) tile(d, p, xr, wv, bias, relu, yp, ow, &pf_next, pf_end, 1, ICGc, SWc, K3);
        for (; pf_next < pf_end; pf_next += 64) _mm_prefetch(pf_next, _MM_HINT_T1);
    }
}

/* The common shapes with constant addressing, the rest generic. */
static TGT void block(const cn_conv2d_desc *d, const grp8_plan *p, const float *xs, const float *wv,
                      const float *bv, int relu, float *y, int64_t n, int64_t gp, int64_t oh0,
                      int64_t nrows, const char *pf, int64_t pf_bytes)
{
    const int64_t ICG = d->IC / d->G;
    const int k3 = d->KW == 3 && d->SW == 1 && d->DW == 1;
    if (ICG == 8 && k3)
        block_body(d, p, xs, wv, bv, relu, y, n, gp, oh0, nrows, pf, pf_bytes, 8, 1, 1);
    else if (k3)
        block_body(d, p, xs, wv, bv, relu, y, n, gp, oh0, nrows, pf, pf_bytes, 0, 1, 1);
    else if (ICG == 8 && d->SW == 1)
        block_body(d, p, xs, wv, bv, relu, y, n, gp, oh0, nrows, pf, pf_bytes, 8, 1, 0);
    else
        block_body(d, p, xs, wv, bv, relu, y, n, gp, oh0, nrows, pf, pf_bytes, 0, 0, 0);
}

/* The shared filter copy, then per-thread input copies for as many
 * threads as the workspace holds; the row blocks of plan(d, 1) are the
 * tallest. */
size_t cn__conv_grp8_ws(const cn_conv2d_desc *d)
{
    if (!cn__conv_grp8_applies(d)) return 0;
    const grp8_plan p = plan(d, 1);
    return (size_t)(p.wv_floats + cn__conv_ws_threads() * p.xs_floats) * sizeof(float);
}

void cn__conv2d_grp8_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x, const float *w,
                         const float *b, int relu, float *y, void *ws)
{
    const int nt = CN__MIN(cn__threads(ctx), cn__conv_ws_threads());
    const grp8_plan p = plan(d, nt);
    const int64_t pairs = d->G / 2, nblk = (d->OH + p.RB - 1) / p.RB, tasks = d->MB * nblk;
    const int64_t wpair = d->KH * d->KW * (d->IC / d->G) * 16,
                  plane = p.rows * p.Wp * (d->IC / pairs);
    float *wv = ws, *bv = wv + pairs * wpair;
    /* Outputs over GRP8_STREAM_BYTES are written with streaming stores (each
     * a whole line): they leave the L2 before anything reads them, and a
     * cached store would first read the line from memory. */
    if (d->MB * d->OH * d->OW * d->OC * (int64_t)sizeof(float) > GRP8_STREAM_BYTES &&
        ((uintptr_t)y & 63) == 0)
        relu |= ST_STREAM;
#pragma omp parallel num_threads(nt) if (nt > 1 && tasks > 1)
    {
        float *xs = wv + p.wv_floats + omp_get_thread_num() * p.xs_floats;
#pragma omp for schedule(static)
        for (int64_t gp = 0; gp < pairs; gp++) copy_filter(d, w, b, gp, wv);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < tasks; t++) {
            const int64_t n = t / nblk, oh0 = t % nblk * p.RB, nrows = CN__MIN(p.RB, d->OH - oh0);
            copy_input(d, &p, x, n, oh0, nrows, xs);
            /* The next task's input rows stream in while this one computes,
             * a slice per pair: the copy then finds them in cache. */
            int64_t lo = 0, hi = 0;
            if (t + 1 < tasks) {
                const int64_t n1 = (t + 1) / nblk, oh1 = (t + 1) % nblk * p.RB;
                const int64_t used =
                    (CN__MIN(p.RB, d->OH - oh1) - 1) * d->SH + (d->KH - 1) * d->DH + 1;
                lo = CN__MAX(oh1 * d->SH - d->PT, 0) + n1 * d->IH;
                hi = CN__MIN(oh1 * d->SH - d->PT + used, d->IH) + n1 * d->IH;
            }
            const int64_t row = d->IW * d->IC * (int64_t)sizeof(float),
                          pf_bytes = hi > lo ? (hi - lo) * row : 0,
                          slice = (pf_bytes / pairs + 63) / 64 * 64;
            const char *pf = (const char *)x + lo * row;
            for (int64_t gp = 0; gp < pairs; gp++)
                block(d, &p, xs + gp * plane, wv + gp * wpair, bv + gp * 16, relu, y, n, gp, oh0,
                      nrows, pf + gp * slice, CN__MAX(CN__MIN(slice, pf_bytes - gp * slice), 0));
        }
        if (relu & ST_STREAM) _mm_sfence(); /* before another thread reads y */
    }
}

/* ---- weight gradient ------------------------------------------------------ */

/* Fixed number of chunks of the MB*OH output rows the weight gradient sums
 * separately (then adds in chunk order): results do not depend on the
 * thread count. */
#define BWW_CHUNKS 16

int cn__conv_grp8_bww_applies(const cn_conv2d_desc *d)
{
    return cn__conv_grp8_applies(d) && d->IC / d->G == 8 && d->KW == 3 && d->SW == 1 && d->DW == 1;
}

size_t cn__conv_grp8_bww_ws(const cn_conv2d_desc *d)
{
    if (!cn__conv_grp8_bww_applies(d)) return 0;
    const grp8_plan p = plan(d, 1);
    const int64_t nw = d->KH * d->KW * 8 * d->OC;
    return (size_t)(BWW_CHUNKS * nw + cn__conv_ws_threads() * p.xs_floats) * sizeof(float);
}

/* a<kw>[i] += x pair (input column c, channel i) * gy of output pixel
 * c - kw, for the taps kw in [K0, K1) whose pixel c - kw exists. */
#define BWW_COL(K0, K1)                                                                            \
    do {                                                                                           \
        _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)                                        \
        {                                                                                          \
            const __m512 v = bcast_pair(xc + 2 * (int64_t)i);                                      \
            if (0 >= (K0) && 0 < (K1)) a0[i] = _mm512_fmadd_ps(v, g0, a0[i]);                      \
            if (1 >= (K0) && 1 < (K1)) a1[i] = _mm512_fmadd_ps(v, g1, a1[i]);                      \
            if (2 >= (K0) && 2 < (K1)) a2[i] = _mm512_fmadd_ps(v, g2, a2[i]);                      \
        }                                                                                          \
    } while (0)

/* part [KH, 3, 8, OC] (tap row kh, pair gp's channels) += sum over output
 * rows [oh0, oh0 + nrows) of image n of x * gy: three taps per broadcast,
 * 24 accumulators in registers, gy of the last three pixels rolling
 * through g0..g2. xs: the pair's copy. */
static TGT void bww_block(const cn_conv2d_desc *d, const grp8_plan *p, const float *xs,
                          const float *gy, float *part, int64_t n, int64_t gp, int64_t oh0,
                          int64_t nrows)
{
    const int64_t OC = d->OC, OW = d->OW;
    const __m512i idx = interleave_idx(),
                  back = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    for (int64_t kh = 0; kh < d->KH; kh++) {
        __m512 a0[8], a1[8], a2[8];
        for (int i = 0; i < 8; i++) a0[i] = a1[i] = a2[i] = _mm512_setzero_ps();
        for (int64_t r = 0; r < nrows; r++) {
            const float *xr = xs + ((r * d->SH + kh * d->DH) * p->Wp) * 16;
            const float *gr = gy + ((n * d->OH + oh0 + r) * OW) * OC + 16 * gp;
            __m512 g0 = _mm512_setzero_ps(), g1 = g0, g2;
            const float *xc = xr;
            /* column c: g0 = gy[c], g1 = gy[c-1], g2 = gy[c-2] */
            for (int64_t c = 0; c < OW + 2; c++, xc += 16) {
                g2 = g1, g1 = g0;
                if (c < OW) g0 = _mm512_permutexvar_ps(idx, _mm512_loadu_ps(gr + c * OC));
                if (c >= 2 && c < OW)
                    BWW_COL(0, 3);
                else if (c == 0)
                    BWW_COL(0, 1);
                else if (c == 1 && OW > 1)
                    BWW_COL(0, 2);
                else if (c == 1)
                    BWW_COL(1, 2);
                else if (c == OW && OW > 1)
                    BWW_COL(1, 3);
                else if (c == OW)
                    BWW_COL(2, 3);
                else
                    BWW_COL(2, 3); /* c == OW + 1 */
            }
        }
        float *pk = part + kh * 3 * 8 * OC + 16 * gp;
        for (int i = 0; i < 8; i++) {
            float *q = pk + i * OC;
            _mm512_storeu_ps(q,
                             _mm512_add_ps(_mm512_loadu_ps(q), _mm512_permutexvar_ps(back, a0[i])));
            q += 8 * OC;
            _mm512_storeu_ps(q,
                             _mm512_add_ps(_mm512_loadu_ps(q), _mm512_permutexvar_ps(back, a1[i])));
            q += 8 * OC;
            _mm512_storeu_ps(q,
                             _mm512_add_ps(_mm512_loadu_ps(q), _mm512_permutexvar_ps(back, a2[i])));
        }
    }
}

void cn__conv2d_grp8_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                 const float *gy, float *gw, void *ws)
{
    const int nt = CN__MIN(cn__threads(ctx), cn__conv_ws_threads());
    /* the row blocks of plan(d, 1), whatever nt: they set the order of the sums */
    const grp8_plan p = plan(d, 1);
    const int64_t nw = d->KH * d->KW * 8 * d->OC, pairs = d->G / 2, plane = p.rows * p.Wp * 16,
                  rows = d->MB * d->OH;
    float *part = ws, *xbase = part + BWW_CHUNKS * nw;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *xs = xbase + omp_get_thread_num() * p.xs_floats;
#pragma omp for schedule(static)
        for (int k = 0; k < BWW_CHUNKS; k++) {
            float *pk = part + k * nw;
            memset(pk, 0, (size_t)nw * sizeof *pk);
            const int64_t r1 = rows * (k + 1) / BWW_CHUNKS;
            for (int64_t r = rows * k / BWW_CHUNKS; r < r1;) {
                /* a block of rows of one image */
                const int64_t n = r / d->OH, oh0 = r % d->OH,
                              nrows = CN__MIN(CN__MIN(p.RB, d->OH - oh0), r1 - r);
                copy_input(d, &p, x, n, oh0, nrows, xs);
                for (int64_t gp = 0; gp < pairs; gp++)
                    bww_block(d, &p, xs + gp * plane, gy, pk, n, gp, oh0, nrows);
                r += nrows;
            }
        }
        /* then every element is the sum of its chunks in chunk order */
#pragma omp for schedule(static)
        for (int64_t i = 0; i < nw; i++) cn__sum_chunks(part, BWW_CHUNKS, nw, i, gw);
    }
}

#else

int cn__conv_grp8_applies(const cn_conv2d_desc *d)
{
    (void)d;
    return 0;
}

size_t cn__conv_grp8_ws(const cn_conv2d_desc *d)
{
    (void)d;
    return 0;
}

void cn__conv2d_grp8_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x, const float *w,
                         const float *b, int relu, float *y, void *ws)
{
    (void)ctx, (void)d, (void)x, (void)w, (void)b, (void)relu, (void)y, (void)ws;
}

int cn__conv_grp8_bww_applies(const cn_conv2d_desc *d)
{
    (void)d;
    return 0;
}

size_t cn__conv_grp8_bww_ws(const cn_conv2d_desc *d)
{
    (void)d;
    return 0;
}

void cn__conv2d_grp8_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                 const float *gy, float *gw, void *ws)
{
    (void)ctx, (void)d, (void)x, (void)gy, (void)gw, (void)ws;
}

#endif
