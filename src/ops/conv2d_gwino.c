/* Winograd F(4x4, 3x3) for grouped convolutions of 8 input and 8 output
 * channels a group (ResNeXt's 32x8d layers), AVX-512: forward (and
 * backward-data, which conv2d.c runs as the forward of the flipped problem)
 * and the weight gradient. The transforms are conv2d_winograd.c's; the
 * products, 8 x 8 blocks too small for its GEMMs, are done four groups at a
 * time in registers. */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "kernels/gemm.h"
#include "ops/conv_internal.h"
#include "ops/winograd_internal.h"

/* With 8 input and 8 output channels a group (ResNeXt's 32x8d layers) the
 * products are 8 x 8 blocks, too small for conv2d_winograd.c's GEMMs. Four adjacent
 * groups (a quad, 32 channels) share their vectors instead: lane 4*k+h of
 * V's first vector holds input channel k < 4 of group 4*q+h, of its second
 * channel k+4, so one vbroadcastf32x4 of V's lanes 4k .. 4k+3 carries input
 * channel k of all four groups and feeds two FMAs: with U's row k for
 * output channels 0-3 (lane 4*o+h: output o of group h) and for 4-7. (Two
 * groups a vector, one 64-bit broadcast an FMA, as conv2d_grouped.c does,
 * ran at 55-70% of the FMA peak on the development VM's AMD EPYC in a
 * micro-benchmark; two FMAs a 128-bit broadcast at 80%.)
 * The transforms work per channel, so they run on permuted lanes
 * unchanged: the input transform permutes each pixel as it loads it, the
 * output transform permutes its results back.
 *
 * A chunk of T tiles is transformed whole (a pixel's channels are adjacent
 * in memory, so its loads stream), then multiplied a quad at a time in
 * place, M over V; per thread:
 *     U  [quad, 36, 8, 2, 16]    (G g G^T)[xi] row k, outputs 0-3 | 4-7
 *     VM [vec, 36, T, 16]        (B^T d B)[xi] of each tile, then M;
 *                                vectors 2q, 2q+1 of quad q
 * Every output is computed by one chunk with fixed arithmetic: results do
 * not depend on the thread count. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define GTGT __attribute__((target("avx512f")))
#define GALWAYS static inline __attribute__((always_inline)) GTGT

/* Tiles a chunk, a multiple of GW_R: its VM, 36 * 64 bytes a tile and 16
 * channels, stays in L2. (Chunks of fewer channels and more tiles, reading
 * U less often, ran slower.) GW_R: tiles a product block, whose 2 * GW_R
 * accumulators and 16 U vectors fill the 32 zmm registers. */
#define GW_T 12
#define GW_R 6

/* Outputs over this many bytes are written with streaming stores. */
#define GW_STREAM_BYTES ((int64_t)4 << 20)

/* One quad's U, in floats. */
#define GW_U ((int64_t)36 * 8 * 2 * 16)

int cn__conv_gwino_applies(const cn_conv2d_desc *d)
{
    return cn__isa_detect() == CN_ISA_AVX512 && d->KH == 3 && d->KW == 3 && d->SH == 1 &&
           d->SW == 1 && d->DH == 1 && d->DW == 1 && d->G % 4 == 0 && d->IC == 8 * d->G &&
           d->OC == 8 * d->G && d->OH > 0 && d->OW > 0;
}

size_t cn__conv_gwino_ws(const cn_conv2d_desc *d)
{
    if (!cn__conv_gwino_applies(d)) return 0;
    const int64_t quads = d->G / 4;
    return (size_t)(cn__conv_ws_threads() * quads * (GW_U + (int64_t)2 * 36 * GW_T * 16)) *
           sizeof(float);
}

/* Lane 4*k+h <- element 8*h+k (+4 with hi) of a quad's 32 channels (lo:
 * groups 0, 1, hi: 2, 3), as _mm512_permutex2var_ps(lo, idx, hi) takes
 * them. The same for U's outputs o. */
GALWAYS __m512i gw_quad_idx(int hi)
{
    return _mm512_add_epi32(
        _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27),
        _mm512_set1_epi32(hi ? 4 : 0));
}

/* And back: channel 8*h+o of groups h = 0, 1 (2, 3 with hi) from lane
 * 4*o+h of a (o < 4) or lane 4*(o-4)+h of b (o >= 4). */
GALWAYS __m512i gw_back_idx(int hi)
{
    return _mm512_add_epi32(
        _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29),
        _mm512_set1_epi32(hi ? 2 : 0));
}

/* Keeps p one register stepped through a tile's addresses: GCC otherwise
 * keeps each multiple of a runtime stride in a stack slot and reloads it
 * per access (depthwise: 43% of peak against 79% stepping). */
#define GSTEP(p) __asm__("" : "+r"(p))

/* A pixel's 32 channels of a quad (p: lo, p + 16: hi) in the quad layout
 * (idx: gw_quad_idx), the lanes of live only (zero elsewhere: outside the
 * tensor). */
GALWAYS __m512 gw_load(const float *p, __m512i idx, __mmask16 live)
{
    return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(live, p), idx,
                                  _mm512_maskz_loadu_ps(live, p + 16));
}

/* BT6 and AT6 with explicit FMAs (C11 does not contract a * b + c): 12
 * and 10 operations instead of 18 and 13. */
#define GBT6(a0, a1, a2, a3, a4, a5)                                                               \
    do {                                                                                           \
        const __m512 c4_ = _mm512_set1_ps(4.0f), c5_ = _mm512_set1_ps(5.0f),                       \
                     c2_ = _mm512_set1_ps(2.0f);                                                   \
        const __m512 t1 = _mm512_fnmadd_ps(c4_, a2, a4), t2 = _mm512_fnmadd_ps(c4_, a1, a3),       \
                     t3 = _mm512_sub_ps(a4, a2), t4 = _mm512_sub_ps(a3, a1),                       \
                     r0 = _mm512_fmadd_ps(c4_, a0, _mm512_fnmadd_ps(c5_, a2, a4)),                 \
                     r5 = _mm512_fmadd_ps(c4_, a1, _mm512_fnmadd_ps(c5_, a3, a5));                 \
        (a0) = r0, (a1) = _mm512_add_ps(t1, t2), (a2) = _mm512_sub_ps(t1, t2);                     \
        (a3) = _mm512_fmadd_ps(c2_, t4, t3), (a4) = _mm512_fnmadd_ps(c2_, t4, t3), (a5) = r5;      \
    } while (0)
#define GAT6(m0, m1, m2, m3, m4, m5, y0, y1, y2, y3)                                               \
    do {                                                                                           \
        const __m512 s12 = _mm512_add_ps(m1, m2), d12 = _mm512_sub_ps(m1, m2),                     \
                     s34 = _mm512_add_ps(m3, m4), d34 = _mm512_sub_ps(m3, m4);                     \
        (y0) = _mm512_add_ps(_mm512_add_ps(m0, s12), s34);                                         \
        (y1) = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);                                    \
        (y2) = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);                                    \
        (y3) = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m5);                 \
    } while (0)

/* U of quad qd from w [3, 3, 8, OC]. */
static GTGT void gw_weight_transform(const cn_conv2d_desc *d, const float *w, int64_t qd, float *U)
{
    const int64_t OC = d->OC;
    const __m512i i0 = gw_quad_idx(0), i1 = gw_quad_idx(1);
    float *u = U + qd * GW_U;
    for (int64_t k = 0; k < 8; k++) {
        v16 g[2][3][3], t[6][3], ut[2][6][6];
        for (int64_t s = 0; s < 2; s++) { /* groups 0, 1 and 2, 3 of the quad */
            for (int64_t e = 0; e < 9; e++)
                g[s][e / 3][e % 3] = LD16(w + (e * 8 + k) * OC + 32 * qd + 16 * s);
            for (int64_t c = 0; c < 3; c++) G6(&t[0][c], 3, g[s][0][c], g[s][1][c], g[s][2][c]);
            for (int64_t r = 0; r < 6; r++) G6(&ut[s][r][0], 1, t[r][0], t[r][1], t[r][2]);
        }
        for (int64_t xi = 0; xi < 36; xi++) {
            const __m512 lo = (__m512)ut[0][xi / 6][xi % 6], hi = (__m512)ut[1][xi / 6][xi % 6];
            _mm512_storeu_ps(u + (xi * 8 + k) * 32, _mm512_permutex2var_ps(lo, i0, hi));
            _mm512_storeu_ps(u + (xi * 8 + k) * 32 + 16, _mm512_permutex2var_ps(lo, i1, hi));
        }
    }
}

/* B^T d B of the 6 x 6 pixels q (in place), v[xi * plane] <- result xi. */
GALWAYS void gw_bt_store(__m512 q[6][6], float *v, int64_t plane)
{
#pragma GCC unroll 6
    for (int64_t a = 0; a < 6; a++) GBT6(q[a][0], q[a][1], q[a][2], q[a][3], q[a][4], q[a][5]);
#pragma GCC unroll 6
    for (int64_t b = 0; b < 6; b++) {
        GBT6(q[0][b], q[1][b], q[2][b], q[3][b], q[4][b], q[5][b]);
        float *p = v + b * plane;
#pragma GCC unroll 6
        for (int64_t a = 0; a < 6; a++, p += 6 * plane) {
            GSTEP(p);
            _mm512_storeu_ps(p, q[a][b]);
        }
    }
}

/* Offsets of the 6 x 6 input pixels of a tile (-1 outside the input). */
static void gw_window(const cn_conv2d_desc *d, int64_t tile, int64_t *off)
{
    const int64_t TW = cdiv(d->OW, 4), TH = cdiv(d->OH, 4);
    const int64_t tw = tile % TW, th = tile / TW % TH, img = tile / (TW * TH);
    window(img, 4 * th - d->PT, 4 * tw - d->PL, 6, d->IH, d->IW, d->IC, off);
}

/* V of chunk tiles [t0, t0 + n), vectors [j0, j1) (VM [j1 - j0, 36, T,
 * 16]); tiles [n, nr) zero. A tile's vectors in turn, its pixels' channels
 * streaming; the next tile's pixels are prefetched a vector at a time
 * (5% on two threads, whose loads wait longer on the shared L3). */
static GTGT void gw_input_transform(const cn_conv2d_desc *d, const float *x, int64_t t0, int64_t n,
                                    int64_t nr, int64_t T, int64_t j0, int64_t j1, float *V)
{
    const int64_t IC = d->IC, IH = d->IH, IW = d->IW, TW = cdiv(d->OW, 4), TH = cdiv(d->OH, 4);
    const int64_t plane = T * 16;
    const __m512i i0 = gw_quad_idx(0), i1 = gw_quad_idx(1);
    int64_t off[36], next[36];
    __mmask16 live[36];
    for (int64_t t = 0; t < n; t++) {
        const int64_t tile = t0 + t, tw = tile % TW, th = tile / TW % TH, img = tile / (TW * TH);
        const int64_t h0 = 4 * th - d->PT, w0 = 4 * tw - d->PL;
        const int inside = h0 >= 0 && h0 + 6 <= IH && w0 >= 0 && w0 + 6 <= IW;
        const float *xt = x + (inside ? ((img * IH + h0) * IW + w0) * IC : 0);
        gw_window(d, CN__MIN(tile + 1, TW * TH * d->MB - 1), next);
        if (!inside) {
            /* pixels outside read as zeros through masked loads of x itself:
             * no branches to mispredict on the tile's pattern */
            gw_window(d, tile, off);
            for (int64_t i = 0; i < 36; i++)
                live[i] = off[i] < 0 ? 0 : 0xffff, off[i] = CN__MAX(off[i], 0);
        }
        for (int64_t j = j0; j < j1; j++) {
            const float *xp = xt + 32 * (j / 2);
            const __m512i idx = j % 2 ? i1 : i0;
            __m512 q[6][6];
            if (inside) { /* most tiles: no bounds to test */
#pragma GCC unroll 6
                for (int64_t a = 0; a < 6; a++, xp += IW * IC) {
                    GSTEP(xp);
                    const float *p = xp;
#pragma GCC unroll 6
                    for (int64_t b = 0; b < 6; b++, p += IC) {
                        GSTEP(p);
                        q[a][b] = gw_load(p, idx, 0xffff);
                    }
                }
            } else {
#pragma GCC unroll 36
                for (int64_t i = 0; i < 36; i++)
                    q[i / 6][i % 6] = gw_load(xp + off[i], idx, live[i]);
            }
#pragma GCC unroll 36
            for (int64_t i = 0; i < 36; i++)
                if (next[i] >= 0) _mm_prefetch((const char *)(x + next[i] + 16 * j), _MM_HINT_T0);
            gw_bt_store(q, V + (j - j0) * 36 * plane + t * 16, plane);
        }
    }
    for (int64_t j = 0; j < j1 - j0; j++)
        for (int64_t t = n; t < nr; t++)
            for (int64_t xi = 0; xi < 36; xi++)
                _mm512_storeu_ps(V + (j * 36 + xi) * plane + t * 16, _mm512_setzero_ps());
}

/* va[r], vb[r] <- M of R tiles of one point from their V in va (input
 * channels 0-3 of the quad's groups), vb (4-7): u[2k], u[2k+1] are U's
 * row k for outputs 0-3 and 4-7. */
GALWAYS void gw_block(float *va, float *vb, const __m512 u[16], const int64_t R)
{
    __m512 acc[2 * GW_R];
#pragma GCC unroll 16
    for (int64_t r = 0; r < 2 * R; r++) acc[r] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int64_t k = 0; k < 8; k++)
#pragma GCC unroll 8
        for (int64_t r = 0; r < R; r++) {
            const float *p = (k < 4 ? va : vb) + r * 16 + 4 * (k % 4);
            const __m512 v = _mm512_broadcast_f32x4(_mm_loadu_ps(p));
            acc[2 * r] = _mm512_fmadd_ps(v, u[2 * k], acc[2 * r]);
            acc[2 * r + 1] = _mm512_fmadd_ps(v, u[2 * k + 1], acc[2 * r + 1]);
        }
#pragma GCC unroll 8
    for (int64_t r = 0; r < R; r++) {
        _mm512_storeu_ps(va + r * 16, acc[2 * r]);
        _mm512_storeu_ps(vb + r * 16, acc[2 * r + 1]);
    }
}

/* M[xi] = V[xi] U[xi] in place for nr tiles (a multiple of GW_R) of quad
 * q: vectors va, vb; u: its U. */
static GTGT void gw_products(const float *u, float *va, float *vb, int64_t nr, int64_t T)
{
    for (int64_t xi = 0; xi < 36; xi++) {
        __m512 uk[16];
        for (int64_t k = 0; k < 16; k++) uk[k] = _mm512_loadu_ps(u + (xi * 16 + k) * 16);
        for (int64_t t = 0; t < nr; t += GW_R)
            gw_block(va + (xi * T + t) * 16, vb + (xi * T + t) * 16, uk, GW_R);
    }
}

/* o[e][j]: pixel (j, e) of A^T M A for one vector's M (36 planes apart). */
GALWAYS void gw_at(const float *mt, int64_t plane, __m512 o[4][4])
{
    __m512 r[6][4];
#pragma GCC unroll 6
    for (int64_t a = 0; a < 6; a++) {
        __m512 m[6];
#pragma GCC unroll 6
        for (int64_t e = 0; e < 6; e++, mt += plane) {
            GSTEP(mt);
            m[e] = _mm512_loadu_ps(mt);
        }
        GAT6(m[0], m[1], m[2], m[3], m[4], m[5], r[a][0], r[a][1], r[a][2], r[a][3]);
    }
#pragma GCC unroll 4
    for (int64_t e = 0; e < 4; e++)
        GAT6(r[0][e], r[1][e], r[2][e], r[3][e], r[4][e], r[5][e], o[e][0], o[e][1], o[e][2],
             o[e][3]);
}

/* Output tile t of the chunk, every quad: A^T M A (+ b), pixels past OH,
 * OW dropped (full: none are); stream: with streaming stores. The flags
 * are constants in each of gw_output_transform's copies. */
GALWAYS void gw_output_tile(const cn_conv2d_desc *d, const float *M, int64_t t, int64_t tile,
                            int64_t T, const float *b, const int relu, const int stream,
                            const int full, float *y)
{
    const int64_t OC = d->OC, OH = d->OH, OW = d->OW, TW = cdiv(OW, 4), TH = cdiv(OH, 4);
    const int64_t plane = T * 16, quads = d->G / 4;
    const __m512i back[2] = {gw_back_idx(0), gw_back_idx(1)};
    const __m512 zero = _mm512_setzero_ps();
    const int64_t tw = tile % TW, th = tile / TW % TH, img = tile / (TW * TH);
    const int64_t oh0 = 4 * th, ow0 = 4 * tw;
    for (int64_t q = 0; q < quads; q++) {
        __m512 oa[4][4], ob[4][4];
        gw_at(M + 2 * q * 36 * plane + t * 16, plane, oa);
        gw_at(M + (2 * q + 1) * 36 * plane + t * 16, plane, ob);
        float *yt = y + ((img * OH + oh0) * OW + ow0) * OC + 32 * q;
#pragma GCC unroll 2
        for (int64_t h = 0; h < 2; h++) {
            const __m512 bv = b ? _mm512_loadu_ps(b + 32 * q + 16 * h) : zero;
            float *pj = yt + 16 * h;
#pragma GCC unroll 4
            for (int64_t j = 0; j < 4; j++, pj += OW * OC) {
                GSTEP(pj);
                float *p = pj;
#pragma GCC unroll 4
                for (int64_t e = 0; e < 4; e++, p += OC) {
                    GSTEP(p);
                    __m512 v =
                        _mm512_add_ps(_mm512_permutex2var_ps(oa[e][j], back[h], ob[e][j]), bv);
                    /* relu as cn_act_fwd's: v <= 0 (so -0, not NaN) becomes +0 */
                    if (relu)
                        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LE_OQ), zero);
                    if (!(full || (oh0 + j < OH && ow0 + e < OW))) continue;
                    if (stream)
                        _mm512_stream_ps(p, v);
                    else
                        _mm512_storeu_ps(p, v);
                }
            }
        }
    }
}

/* y of chunk tiles [t0, t0 + n) = A^T M A (+ b), every quad. */
static GTGT void gw_output_transform(const cn_conv2d_desc *d, const float *M, int64_t t0, int64_t n,
                                     int64_t T, const float *b, int relu, int stream, float *y)
{
    const int64_t OH = d->OH, OW = d->OW, TW = cdiv(OW, 4), TH = cdiv(OH, 4);
    for (int64_t t = 0; t < n; t++) {
        const int64_t tile = t0 + t, tw = tile % TW, th = tile / TW % TH;
        if (4 * th + 4 > OH || 4 * tw + 4 > OW)
            gw_output_tile(d, M, t, tile, T, b, relu, stream, 0, y);
        else if (stream && relu)
            gw_output_tile(d, M, t, tile, T, b, 1, 1, 1, y);
        else if (stream)
            gw_output_tile(d, M, t, tile, T, b, 0, 1, 1, y);
        else if (relu)
            gw_output_tile(d, M, t, tile, T, b, 1, 0, 1, y);
        else
            gw_output_tile(d, M, t, tile, T, b, 0, 0, 1, y);
    }
}

void cn__conv2d_gwino_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                          const float *w, const float *b, int relu, float *y, void *ws)
{
    const int64_t quads = d->G / 4, ntiles = d->MB * cdiv(d->OH, 4) * cdiv(d->OW, 4);
    const int64_t T = GW_T, nch = cdiv(ntiles, T);
    const size_t per = (size_t)(quads * (GW_U + (int64_t)2 * 36 * T * 16));
    /* Outputs over GW_STREAM_BYTES are written with streaming stores (whole
     * lines): a cached store would first read the line from memory, and the
     * output leaves the L2s before anything reads it. (In the benchmark,
     * group32's 6.4 MB output: 1.73x oneDNN with them, 1.46x without.) */
    const int stream = d->MB * d->OH * d->OW * d->OC * (int64_t)sizeof(float) > GW_STREAM_BYTES &&
                       ((uintptr_t)y & 63) == 0;
    const int nt = CN__MIN(cn__threads(ctx), cn__conv_ws_threads());
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        /* Each thread transforms the whole filter into its own U (a few
         * microseconds): no barrier before the chunks, and U is in the
         * thread's own L2 (two threads: 0.99 -> 0.85 ms for group32). Chunks
         * are taken dynamically: a core shared with another process takes
         * fewer. */
        float *U = (float *)ws + (size_t)omp_get_thread_num() * per, *VM = U + quads * GW_U;
        for (int64_t q = 0; q < quads; q++) gw_weight_transform(d, w, q, U);
#pragma omp for schedule(dynamic)
        for (int64_t c = 0; c < nch; c++) {
            const int64_t t0 = c * T, n = CN__MIN(T, ntiles - t0), nr = cdiv(n, GW_R) * GW_R;
            gw_input_transform(d, x, t0, n, nr, T, 0, d->IC / 16, VM);
            for (int64_t q = 0; q < quads; q++)
                gw_products(U + q * GW_U, VM + 2 * q * 36 * T * 16, VM + (2 * q + 1) * 36 * T * 16,
                            nr, T);
            gw_output_transform(d, VM, t0, n, T, b, relu, stream, y);
        }
        if (stream) _mm_sfence(); /* before another thread reads y */
    }
}

/* The weight gradient, the forward's products turned around: for each
 * point xi and group, dU[xi] [8 in, 8 out] = sum over tiles of V[xi]^T
 * dM[xi], dM = A gy A^T (the gradient of M in y = A^T M A), then
 * gw = G^T dU G. In the quad layout input channel k of the four groups is
 * one 128-bit broadcast of V, and dM's two vectors hold outputs 0-3 and
 * 4-7 (lane 4*o+h: output o of group h), so a tile adds to dU's 16 vectors
 * [k][outputs 0-3 | 4-7] with 16 FMAs; they stay in registers over a
 * chunk's tiles. A chunk is transformed whole, every quad (a pixel's
 * channels stream, as in the forward; one quad at a time, two lines of
 * each pixel, took 15% longer), then its products go to the part's dU. The
 * parts, a fixed number of runs of chunks, are summed in order in the
 * final transform: results do not depend on the thread count. Per thread:
 *     V, dM [vec, 36, GW_BWW_T, 16]   (2 * GW_BWW_QUADS vectors at most)
 * and per part and quad:
 *     dU [36, 8, 2, 16]   (GW_DU floats) */

/* Tiles a weight-gradient chunk: its V and dM, 9 KiB a tile and quad,
 * stay in L2 with the part's dU; dU's 16 vectors a point are loaded and
 * stored once a chunk (against 16 FMAs a tile). */
#define GW_BWW_T 8

/* Parts at most (a function of the shape only). */
#define GW_BWW_PARTS 8

/* Quads a chunk transforms at a time: wider layers in blocks of 256
 * channels, whose V and dM stay in L2. */
#define GW_BWW_QUADS 8

/* A quad's V and dM of a chunk, in floats. */
#define GW_VM ((int64_t)4 * 36 * GW_BWW_T * 16)

/* One part's sums for one quad, in floats. */
#define GW_DU ((int64_t)36 * 16 * 16)

/* Parts of the tiles: enough for 16 units of work with the quads (a
 * function of the shape only), at most one a chunk. */
static int64_t gw_bww_parts(const cn_conv2d_desc *d)
{
    const int64_t nch = cdiv(d->MB * cdiv(d->OH, 4) * cdiv(d->OW, 4), GW_BWW_T);
    return CN__MAX(1, CN__MIN(nch, GW_BWW_PARTS));
}

size_t cn__conv_gwino_bww_ws(const cn_conv2d_desc *d)
{
    if (!cn__conv_gwino_applies(d)) return 0;
    const int64_t units = gw_bww_parts(d) * (d->G / 4);
    const int64_t qb = CN__MIN(d->G / 4, GW_BWW_QUADS);
    return (size_t)(units * GW_DU + cn__conv_ws_threads() * qb * GW_VM) * sizeof(float);
}

/* A g for g = (g0..g3) into r0..r5 (A6) with explicit FMAs. */
#define GA6(g0, g1, g2, g3, r0, r1, r2, r3, r4, r5)                                                \
    do {                                                                                           \
        const __m512 e = _mm512_add_ps(g0, g2), o = _mm512_add_ps(g1, g3),                         \
                     e4 = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), g2, g0),                           \
                     o4 = _mm512_fmadd_ps(_mm512_set1_ps(8.0f), g3, _mm512_add_ps(g1, g1));        \
        (r0) = (g0), (r1) = _mm512_add_ps(e, o), (r2) = _mm512_sub_ps(e, o);                       \
        (r3) = _mm512_add_ps(e4, o4), (r4) = _mm512_sub_ps(e4, o4), (r5) = (g3);                   \
    } while (0)

/* A g A^T of the 4 x 4 pixels g, v[xi * plane] <- result xi. */
GALWAYS void gw_ag_store(__m512 g[4][4], float *v, int64_t plane)
{
    __m512 r[6][4];
#pragma GCC unroll 4
    for (int64_t b = 0; b < 4; b++)
        GA6(g[0][b], g[1][b], g[2][b], g[3][b], r[0][b], r[1][b], r[2][b], r[3][b], r[4][b],
            r[5][b]);
#pragma GCC unroll 6
    for (int64_t a = 0; a < 6; a++) {
        __m512 m[6];
        GA6(r[a][0], r[a][1], r[a][2], r[a][3], m[0], m[1], m[2], m[3], m[4], m[5]);
#pragma GCC unroll 6
        for (int64_t e = 0; e < 6; e++) _mm512_storeu_ps(v + (a * 6 + e) * plane, m[e]);
    }
}

/* dM of chunk tiles [t0, t0 + n), vectors [j0, j1) ([j1 - j0, 36, T, 16]): A g A^T
 * of each tile's 4 x 4 block g of gy, permuted as V. Whole tiles load at
 * fixed offsets; pixels past OH, OW read as zeros through masked loads.
 * The next tile's pixels are prefetched a vector at a time, as the
 * input's (without, gy's misses made the transform take 25% longer). */
static GTGT void gw_grad_transform(const cn_conv2d_desc *d, const float *gy, int64_t t0, int64_t n,
                                   int64_t T, int64_t j0, int64_t j1, float *dM)
{
    const int64_t OC = d->OC, OH = d->OH, OW = d->OW, TW = cdiv(OW, 4), TH = cdiv(OH, 4);
    const int64_t plane = T * 16, last = TW * TH * d->MB - 1;
    const __m512i i0 = gw_quad_idx(0), i1 = gw_quad_idx(1);
    for (int64_t t = 0; t < n; t++) {
        const int64_t tile = t0 + t, tw = tile % TW, th = tile / TW % TH, img = tile / (TW * TH);
        const int64_t rows = CN__MIN(4, OH - 4 * th), cols = CN__MIN(4, OW - 4 * tw);
        const int full = rows == 4 && cols == 4;
        const float *gt = gy + ((img * OH + 4 * th) * OW + 4 * tw) * OC;
        const int64_t nt = CN__MIN(tile + 1, last), ntw = nt % TW, nth = nt / TW % TH;
        const float *gn = gy + ((nt / (TW * TH) * OH + 4 * nth) * OW + 4 * ntw) * OC;
        const int nfull = 4 * nth + 4 <= OH && 4 * ntw + 4 <= OW;
        __mmask16 live[16];
        int64_t off[16];
        for (int64_t i = 0; i < 16; i++) {
            const int in = i / 4 < rows && i % 4 < cols;
            live[i] = in ? 0xffff : 0, off[i] = in ? (i / 4 * OW + i % 4) * OC : 0;
        }
        for (int64_t j = j0; j < j1; j++) {
            const float *gj = gt + 32 * (j / 2);
            const __m512i idx = j % 2 ? i1 : i0;
            __m512 g[4][4];
            if (nfull)
#pragma GCC unroll 16
                for (int64_t i = 0; i < 16; i++)
                    _mm_prefetch((const char *)(gn + (i / 4 * OW + i % 4) * OC + 16 * j),
                                 _MM_HINT_T0);
            if (full) {
#pragma GCC unroll 4
                for (int64_t a = 0; a < 4; a++)
#pragma GCC unroll 4
                    for (int64_t b = 0; b < 4; b++)
                        g[a][b] = gw_load(gj + (a * OW + b) * OC, idx, 0xffff);
            } else {
#pragma GCC unroll 16
                for (int64_t i = 0; i < 16; i++)
                    g[i / 4][i % 4] = gw_load(gj + off[i], idx, live[i]);
            }
            gw_ag_store(g, dM + (j - j0) * 36 * plane + t * 16, plane);
        }
    }
}

/* du[2k + s] = (first ? 0 : du[2k + s]) + sum over n tiles of V's input
 * channel k (va: 0-3, vb: 4-7, broadcast) times dM's outputs 4s..4s+3 (ma,
 * mb), for one point of one quad. */
GALWAYS void gw_wgrad_point(const float *va, const float *vb, const float *ma, const float *mb,
                            int64_t n, int first, float *du)
{
    __m512 acc[16];
#pragma GCC unroll 16
    for (int64_t k = 0; k < 16; k++)
        acc[k] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(du + 16 * k);
    for (int64_t t = 0; t < n; t++) {
        const __m512 m0 = _mm512_loadu_ps(ma + 16 * t), m1 = _mm512_loadu_ps(mb + 16 * t);
#pragma GCC unroll 8
        for (int64_t k = 0; k < 8; k++) {
            const __m512 v =
                _mm512_broadcast_f32x4(_mm_loadu_ps((k < 4 ? va : vb) + 16 * t + 4 * (k % 4)));
            acc[2 * k] = _mm512_fmadd_ps(v, m0, acc[2 * k]);
            acc[2 * k + 1] = _mm512_fmadd_ps(v, m1, acc[2 * k + 1]);
        }
    }
#pragma GCC unroll 16
    for (int64_t k = 0; k < 16; k++) _mm512_storeu_ps(du + 16 * k, acc[k]);
}

/* Every point of a chunk of n tiles (V, dM: [2, 36, plane]) into one
 * quad's part, dU [36, 16, 16]. */
static GTGT void gw_wgrad_products(const float *V, const float *dM, int64_t n, int64_t plane,
                                   int first, float *du)
{
    for (int64_t xi = 0; xi < 36; xi++) {
        const float *va = V + xi * plane, *ma = dM + xi * plane;
        gw_wgrad_point(va, va + 36 * plane, ma, ma + 36 * plane, n, first, du + xi * 256);
    }
}

/* Quad q's sums over the np parts (du: part 0's, GW_DU * quads apart),
 * in part order: gw[:, :, k, quad's channels] = G^T dU G for each input
 * channel k, lanes permuted back to channels. */
static GTGT void gw_weight_grad_transform(const cn_conv2d_desc *d, const float *du, int64_t np,
                                          int64_t q, float *gw)
{
    const int64_t OC = d->OC, stride = GW_DU * (d->G / 4);
    const __m512i back[2] = {gw_back_idx(0), gw_back_idx(1)};
    for (int64_t k = 0; k < 8; k++) {
        v16 g[2][3][3];
        for (int64_t s = 0; s < 2; s++) {
            v16 u[6][6], t[3][6];
            for (int64_t xi = 0; xi < 36; xi++) {
                const float *p = du + (xi * 16 + 2 * k + s) * 16;
                v16 sum = LD16(p);
                for (int64_t part = 1; part < np; part++) sum += LD16(p + part * stride);
                u[xi / 6][xi % 6] = sum;
            }
            for (int b = 0; b < 6; b++)
                GT6(&t[0][b], 6, u[0][b], u[1][b], u[2][b], u[3][b], u[4][b], u[5][b]);
            for (int h = 0; h < 3; h++)
                GT6(&g[s][h][0], 1, t[h][0], t[h][1], t[h][2], t[h][3], t[h][4], t[h][5]);
        }
        for (int64_t e = 0; e < 9; e++) {
            const __m512 lo = (__m512)g[0][e / 3][e % 3], hi = (__m512)g[1][e / 3][e % 3];
            float *o = gw + (e * 8 + k) * OC + 32 * q;
            _mm512_storeu_ps(o, _mm512_permutex2var_ps(lo, back[0], hi));
            _mm512_storeu_ps(o + 16, _mm512_permutex2var_ps(lo, back[1], hi));
        }
    }
}

void cn__conv2d_gwino_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                  const float *gy, float *gw, void *ws)
{
    const int64_t quads = d->G / 4, ntiles = d->MB * cdiv(d->OH, 4) * cdiv(d->OW, 4);
    const int64_t T = GW_BWW_T, plane = T * 16, nch = cdiv(ntiles, T), np = gw_bww_parts(d);
    const int64_t qb = CN__MIN(quads, GW_BWW_QUADS);
    float *parts = ws, *bufs = parts + np * quads * GW_DU;
    const int nt = CN__MIN(cn__threads(ctx), cn__conv_ws_threads());
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *V = bufs + (size_t)omp_get_thread_num() * qb * GW_VM, *dM = V + qb * GW_VM / 2;
#pragma omp for schedule(dynamic)
        for (int64_t p = 0; p < np; p++) {
            const int64_t c0 = nch * p / np, c1 = nch * (p + 1) / np;
            for (int64_t c = c0; c < c1; c++) {
                const int64_t t0 = c * T, n = CN__MIN(T, ntiles - t0);
                for (int64_t q0 = 0; q0 < quads; q0 += qb) {
                    const int64_t q1 = CN__MIN(quads, q0 + qb);
                    gw_input_transform(d, x, t0, n, n, T, 2 * q0, 2 * q1, V);
                    gw_grad_transform(d, gy, t0, n, T, 2 * q0, 2 * q1, dM);
                    for (int64_t q = q0; q < q1; q++) {
                        gw_wgrad_products(V + 2 * (q - q0) * 36 * plane,
                                          dM + 2 * (q - q0) * 36 * plane, n, plane, c == c0,
                                          parts + (p * quads + q) * GW_DU);
                    }
                }
            }
        }
#pragma omp for schedule(static)
        for (int64_t q = 0; q < quads; q++)
            gw_weight_grad_transform(d, parts + q * GW_DU, np, q, gw);
    }
}

#else

int cn__conv_gwino_applies(const cn_conv2d_desc *d)
{
    (void)d;
    return 0;
}

size_t cn__conv_gwino_ws(const cn_conv2d_desc *d)
{
    (void)d;
    return 0;
}

void cn__conv2d_gwino_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                          const float *w, const float *b, int relu, float *y, void *ws)
{
    (void)ctx, (void)d, (void)x, (void)w, (void)b, (void)relu, (void)y, (void)ws;
}

size_t cn__conv_gwino_bww_ws(const cn_conv2d_desc *d)
{
    (void)d;
    return 0;
}

void cn__conv2d_gwino_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                  const float *gy, float *gw, void *ws)
{
    (void)ctx, (void)d, (void)x, (void)gy, (void)gw, (void)ws;
}

#endif
