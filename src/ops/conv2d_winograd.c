/* Winograd F(m x m, 3x3), m = 2 or 4, for 3x3, stride-1, undilated,
 * ungrouped convolutions (forward, and backward-data, which conv2d.c runs as
 * the forward of the transposed problem, and the weight gradient). Each
 * m x m block of output pixels (a tile) comes from an a x a block of input,
 * a = m + 2; in the transformed domain the convolution becomes a*a
 * independent matrix products, with a*a multiplies per tile and channel pair
 * instead of 9*m*m (16 for 4 outputs with m = 2, 36 for 16 with m = 4):
 *     V[xi] [tiles, IC] = (B^T d B)[xi]      input transform, per tile
 *     U[xi] [IC, OC]    = (G g G^T)[xi]      weight transform, once a call
 *     M[xi] [tiles, OC] = V[xi] U[xi]        a*a GEMMs
 *     y                 = A^T M A + b        output transform, per tile
 * F(2x2, 3x3) (points 0, 1, -1):
 *     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *     G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *     A^T = [1 1 1 0; 0 1 -1 -1]
 * F(4x4, 3x3) (points 0, 1, -1, 2, -2):
 *     B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 *            0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *     G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 *            1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
 * F(4x4) needs 2.25 multiplies per output instead of 4 and moves 2.25
 * transformed values per input value instead of 4, but its transforms
 * scale by up to 8 and lose a few more digits (the tests bound both
 * variants' error by the direct sum's worst case). tile_m picks the variant
 * with fewer transformed products for the output size, F(2x2) on a tie.
 *
 * Tiles are processed in chunks sized so that a chunk's V and M stay in L2;
 * a thread takes whole chunks with its own buffers and one-thread GEMMs, in
 * one parallel region per call. Every output element is computed by one
 * thread with the same arithmetic, whatever the thread count. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "ops/conv_internal.h"
#include "ops/winograd_internal.h"

typedef float v8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef int vi8 __attribute__((vector_size(32)));
#define LD(p) (*(const v8 *)(p))
#define ST(p, v) (*(v8 *)(p) = (v))
typedef int vi16 __attribute__((vector_size(64)));

/* V and M of a chunk together: about this many bytes. */
#define CHUNK_BYTES ((int64_t)512 << 10)

int cn__conv_winograd_applies(const cn_conv2d_desc *d)
{
    return d->KH == 3 && d->KW == 3 && d->SH == 1 && d->SW == 1 && d->DH == 1 && d->DW == 1 &&
           d->G == 1 && d->IC >= 16 && d->OC >= 16;
}

static size_t align64(size_t b) { return (b + 63) & ~(size_t)63; }

/* The output tile size: 4 where F(4x4) computes fewer transformed products
 * (36 per 4x4 tile against 16 per 2x2 tile, counting the tiles that overhang
 * the output), else 2. */
static int tile_m(const cn_conv2d_desc *d)
{
    return 36 * cdiv(d->OH, 4) * cdiv(d->OW, 4) < 16 * cdiv(d->OH, 2) * cdiv(d->OW, 2) ? 4 : 2;
}

const char *cn__conv_winograd_name(const cn_conv2d_desc *d)
{
    return tile_m(d) == 4 ? "winograd4" : "winograd";
}

/* The a*a transformed points of a tile. */
static int64_t npts(const cn_conv2d_desc *d) { return (int64_t)(tile_m(d) + 2) * (tile_m(d) + 2); }
static int64_t tiles_h(const cn_conv2d_desc *d) { return cdiv(d->OH, tile_m(d)); }
static int64_t tiles_w(const cn_conv2d_desc *d) { return cdiv(d->OW, tile_m(d)); }

/* Tiles a chunk: a multiple of 42 (the GEMM micro-kernels' row counts, 14
 * and 6, divide it), at least 42. A function of the shape only: the weight
 * gradient's sums follow the chunks. */
static int64_t chunk_tiles(const cn_conv2d_desc *d)
{
    const int64_t t = CHUNK_BYTES / (npts(d) * (int64_t)sizeof(float) * (d->IC + d->OC));
    const int64_t all = d->MB * tiles_h(d) * tiles_w(d);
    return CN__MIN(CN__MAX(t / 42 * 42, 42), all);
}

/* The forward's chunks (backward-data's too): no larger than chunk_tiles,
 * and small enough that a small batch still makes CN__MIN_CHUNKS of them for
 * the threads to share where it has tiles enough, in multiples of 14 or,
 * for 16 tiles at most, 8 (lenet's second layer on one image, 16 tiles,
 * was one chunk, 3x as slow on two threads as on one). The weight
 * gradient keeps chunk_tiles: its chunks are the depth of its GEMMs, and
 * every chunk loads and stores dU whole. */
static int64_t fwd_tiles(const cn_conv2d_desc *d)
{
    const int64_t all = d->MB * tiles_h(d) * tiles_w(d), few = cdiv(all, CN__MIN_CHUNKS);
    const int64_t small = all <= 16 ? 8 : few <= 14 ? 14 : cdiv(few, 42) * 42;
    return CN__MIN(chunk_tiles(d), small);
}

/* Floats after V and M that the weight gradient's micro-kernels may read
 * (and ignore) past their last row: an MR x NR tile's rows and columns. */
#define SLACK 64

/* Floats from one tile's transformed values to the next in V or M: a tile's
 * a*a points of C channels lie together, so that the transforms read and
 * write one stream each, plus 16 so that the GEMMs' rows (one a tile) do
 * not fall into a few cache sets. */
static int64_t tstride(const cn_conv2d_desc *d, int64_t C) { return npts(d) * C + 16; }

/* Tiles of V a thread holds: a chunk's, rounded up to whole row tiles of
 * the AVX-512 micro-kernel, which fwd_products runs on the last, partial
 * one too (its rows past the chunk read as zeros, results dropped). */
static int64_t v_tiles(const cn_conv2d_desc *d)
{
    return cdiv(chunk_tiles(d), CN__SGEMM_AVX512_MR) * CN__SGEMM_AVX512_MR;
}

/* One thread's V [v_tiles, a*a, IC], M [T, a*a, OC] (each tile tstride
 * floats), SLACK and GEMM packing buffers (for the forward GEMM and either
 * weight-gradient orientation). */
static size_t vm_bytes(const cn_conv2d_desc *d)
{
    const int64_t T = chunk_tiles(d);
    return align64((size_t)(v_tiles(d) * tstride(d, d->IC) + T * tstride(d, d->OC) + SLACK) *
                   sizeof(float));
}

static size_t thread_bytes(const cn_conv2d_desc *d)
{
    const int64_t T = chunk_tiles(d);
    const size_t g = CN__MAX(
        cn__sgemm_ws_size(T, d->OC, d->IC, 1),
        CN__MAX(cn__sgemm_ws_size(d->IC, d->OC, T, 1), cn__sgemm_ws_size(d->OC, d->IC, T, 1)));
    return vm_bytes(d) + align64(g);
}

/* Weight-gradient parts: a fixed number (at most 8, at most 64 MiB), each an
 * [a*a, IC, OC] sum over its chunks. */
static int64_t bww_parts(const cn_conv2d_desc *d)
{
    const int64_t nch = cdiv(d->MB * tiles_h(d) * tiles_w(d), chunk_tiles(d));
    const int64_t per = npts(d) * d->IC * d->OC * (int64_t)sizeof(float);
    return CN__MAX(1, CN__MIN(CN__MIN(8, nch), (((int64_t)64 << 20) / per)));
}

static size_t parts_bytes(const cn_conv2d_desc *d)
{
    return align64((size_t)(bww_parts(d) * npts(d) * d->IC * d->OC) * sizeof(float));
}

/* The forward's U [a*a, IC, OC] and SLACK floats its micro-kernels may
 * read past it. */
static size_t u_bytes(const cn_conv2d_desc *d)
{
    return align64((size_t)(npts(d) * d->IC * d->OC + SLACK) * sizeof(float));
}

size_t cn__conv_winograd_ws(const cn_conv2d_desc *d)
{
    if (!cn__conv_winograd_applies(d)) return 0;
    return u_bytes(d) + (size_t)cn__conv_ws_threads() * thread_bytes(d);
}

size_t cn__conv_winograd_bww_ws(const cn_conv2d_desc *d)
{
    if (!cn__conv_winograd_applies(d)) return 0;
    return parts_bytes(d) + (size_t)cn__conv_ws_threads() * thread_bytes(d);
}

/* Below this many multiply-adds (the direct convolution's), a pass runs on
 * one thread: a second one, woken and fed half of U from the other core's
 * cache, made lenet's second layer on one image (3.6M) slower, 0.08 ms on
 * two threads against 0.06 on one. */
#define PAR_MIN_MACS ((int64_t)8 << 20)

static int wino_threads(const cn_ctx *ctx, const cn_conv2d_desc *d)
{
    /* (in double: y's size times IC may not fit in 64 bits) */
    const double macs = (double)(d->MB * d->OH * d->OW * d->OC) * (double)d->IC * 9.0;
    return macs < (double)PAR_MIN_MACS ? 1 : CN__MIN(cn__threads(ctx), cn__conv_ws_threads());
}

/* F(4x4) works on 16 channels a step (one zmm where the CPU has them).
 * ldn: the first n <= 16 lanes of p, the rest zero; stn stores them:
 * channel tails go through the same vector code as full blocks. */
static inline void ldn(v16 *v, const float *p, int64_t n)
{
    if (n == 16) {
        *v = LD16(p);
    } else {
        *v = (v16){0};
        memcpy(v, p, (size_t)n * sizeof(float));
    }
}

static inline void stn(float *p, const v16 *v, int64_t n)
{
    if (n == 16)
        ST16(p, *v);
    else
        memcpy(p, v, (size_t)n * sizeof(float));
}

/* q[i] = the n lanes at p + off[i] for the count pixels of a window (off
 * from window()), zero where off[i] < 0: outside the tensor. */
static inline void ldn_window(v16 *q, int count, const float *p, const int64_t *off, int64_t n)
{
    for (int i = 0; i < count; i++)
        if (off[i] >= 0)
            ldn(&q[i], p + off[i], n);
        else
            q[i] = (v16){0};
}

/* The rows [*lo, *hi) of a side-long run from h0 that lie in [0, H); empty
 * (*hi <= *lo) where none does. */
static inline void span(int64_t h0, int side, int64_t H, int *lo, int *hi)
{
    *lo = (int)CN__MIN(CN__MAX(-h0, 0), side);
    *hi = (int)CN__MAX(CN__MIN(H - h0, side), 0);
}

/* Whole 16-channel blocks (C a multiple of 16), F(4x4): the transforms of
 * one tile's block in two passes of six vectors, columns then rows, with
 * the same arithmetic as the general code (which takes the channel tails).
 * No vector's address escapes, as ldn's memcpy makes them do there, so the
 * compiler keeps the block in registers (30% less transform time); loads
 * outside the input are skipped, not gathered. (One body for both, the
 * lane count a parameter passed as the literal 16 for whole blocks, ran
 * the whole-block transforms 12-25% slower.) */
#define WALWAYS static inline __attribute__((always_inline))

/* Keeps p, a pointer or an offset, one register stepped through a block's
 * addresses: with a*W*IC + b*IC for runtime strides GCC keeps each of the
 * 36 offsets in a stack slot and rebuilds the address per access. Stepped
 * pointers only where every address is inside the tensor (full blocks, and
 * the transformed planes); a border block steps offsets. */
#define WSTEP(p) __asm__("" : "+r"(p))

/* vt[xi] (xi = 6a + b, IC apart) = (B^T d B)[xi] for the 6x6 block d of
 * xn (one image, W x IC) from row h0, column w0: rows [a0, a1) and
 * columns [b0, b1) inside it, the rest zero; full: all of it inside. */
WALWAYS void bt16(const float *xn, int64_t W, int64_t IC, int64_t h0, int64_t w0, int a0, int a1,
                  int b0, int b1, float *vt, const int full)
{
    const v16 z = {0};
    v16 t[6][6];
    /* offsets, not pointers: a border block's corner may lie outside */
    int64_t ob = (h0 * W + w0) * IC;
#pragma GCC unroll 6
    for (int b = 0; b < 6; b++, ob += IC) {
        v16 q[6];
        WSTEP(ob);
        int64_t o = ob;
#pragma GCC unroll 6
        for (int a = 0; a < 6; a++, o += W * IC) {
            WSTEP(o);
            if (full) {
                q[a] = LD16(xn + o);
            } else { /* outside: a load of xn itself, dropped; no branch */
                const int in = b >= b0 && b < b1 && a >= a0 && a < a1;
                const v16 v = LD16(xn + (in ? o : 0));
                q[a] = in ? v : z;
            }
        }
        BT6(q[0], q[1], q[2], q[3], q[4], q[5]);
#pragma GCC unroll 6
        for (int a = 0; a < 6; a++) t[a][b] = q[a];
    }
#pragma GCC unroll 6
    for (int a = 0; a < 6; a++) {
        BT6(t[a][0], t[a][1], t[a][2], t[a][3], t[a][4], t[a][5]);
        float *p = vt + 6 * IC * a;
#pragma GCC unroll 6
        for (int b = 0; b < 6; b++, p += IC) {
            WSTEP(p);
            ST16(p, t[a][b]);
        }
    }
}

/* y rows [0, rows), columns [0, cols) of a 4x4 output block (W x OC
 * apart) = A^T m A (+ the 16 biases at b), ReLU'd when relu, for m the 36
 * vectors at mt (OC apart); acc: added to y instead. */
WALWAYS void at16(const float *mt, int64_t OC, const float *b, int relu, int rows, int cols,
                  int64_t W, float *y, const int full, const int acc)
{
    const v16 z = {0}, bv = b ? LD16(b) : z;
    v16 r[4][6];
#pragma GCC unroll 6
    for (int e = 0; e < 6; e++) {
        v16 m[6];
        const float *p = mt + e * OC;
#pragma GCC unroll 6
        for (int a = 0; a < 6; a++, p += 6 * OC) {
            WSTEP(p);
            m[a] = LD16(p);
        }
        AT6(m[0], m[1], m[2], m[3], m[4], m[5], r[0][e], r[1][e], r[2][e], r[3][e]);
    }
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++) {
        if (a >= rows) break;
        v16 o[4];
        AT6(r[a][0], r[a][1], r[a][2], r[a][3], r[a][4], r[a][5], o[0], o[1], o[2], o[3]);
        float *p = full ? y + a * W * OC : NULL;
#pragma GCC unroll 4
        for (int e = 0; e < 4; e++) {
            v16 v = o[e] + bv;
            if (relu) v = (v16)((vi16)v & ~(v <= z)); /* !(v <= 0) ? v : 0: NaN stays */
            if (full) {
                WSTEP(p);
                if (acc) v = LD16(p) + v;
                ST16(p, v);
                if (e < 3) p += OC;
            } else if (e < cols) {
                float *q = y + (a * W + e) * OC;
                if (acc) v = LD16(q) + v;
                ST16(q, v);
            }
        }
    }
}

/* dm[xi] (OC apart) = (A g A^T)[xi] for the 4x4 block g of gy (W x OC
 * apart): rows [0, rows), columns [0, cols) inside, the rest zero. */
WALWAYS void ag16(const float *gy, int64_t W, int64_t OC, int rows, int cols, float *dm,
                  const int full)
{
    const v16 z = {0};
    v16 r[6][4];
#pragma GCC unroll 4
    for (int b = 0; b < 4; b++) {
        v16 g[4];
#pragma GCC unroll 4
        for (int a = 0; a < 4; a++)
            g[a] = full || (a < rows && b < cols) ? LD16(gy + (a * W + b) * OC) : z;
        A6(g[0], g[1], g[2], g[3], r[0][b], r[1][b], r[2][b], r[3][b], r[4][b], r[5][b]);
    }
#pragma GCC unroll 6
    for (int a = 0; a < 6; a++) {
        v16 q[6];
        A6(r[a][0], r[a][1], r[a][2], r[a][3], q[0], q[1], q[2], q[3], q[4], q[5]);
        float *p = dm + 6 * OC * a;
#pragma GCC unroll 6
        for (int e = 0; e < 6; e++, p += OC) {
            WSTEP(p);
            ST16(p, q[e]);
        }
    }
}

/* U[xi][ic][oc] = (G g G^T)[xi] for w [3,3,IC,OC], rows ic of [i0, i1),
 * 16 output channels a step. */
CN__MULTIVERSION static void weight_transform(const cn_conv2d_desc *d, const float *w, float *U,
                                              int64_t i0, int64_t i1)
{
    const int64_t IC = d->IC, OC = d->OC, plane = IC * OC;
    const int a = tile_m(d) + 2;
    for (int64_t ic = i0; ic < i1; ic++)
        for (int64_t oc = 0; oc < OC; oc += 16) {
            const int64_t k = CN__MIN(16, OC - oc);
            v16 g[3][3], t[6][3], u[6][6];
            for (int e = 0; e < 9; e++) ldn(&g[e / 3][e % 3], w + (e * IC + ic) * OC + oc, k);
            if (a == 6) {
                for (int b = 0; b < 3; b++) G6(&t[0][b], 3, g[0][b], g[1][b], g[2][b]);
                for (int r = 0; r < 6; r++) G6(&u[r][0], 1, t[r][0], t[r][1], t[r][2]);
            } else {
                for (int b = 0; b < 3; b++) {
                    t[0][b] = g[0][b];
                    t[1][b] = 0.5f * (g[0][b] + g[1][b] + g[2][b]);
                    t[2][b] = 0.5f * (g[0][b] - g[1][b] + g[2][b]);
                    t[3][b] = g[2][b];
                }
                for (int r = 0; r < 4; r++) {
                    u[r][0] = t[r][0];
                    u[r][1] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
                    u[r][2] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
                    u[r][3] = t[r][2];
                }
            }
            for (int xi = 0; xi < a * a; xi++)
                stn(U + xi * plane + ic * OC + oc, &u[xi / a][xi % a], k);
        }
}

/* B^T d B on one 4x4 block of v8 (in place). */
static inline void bt_d_b(v8 q[4][4])
{
    for (int c = 0; c < 4; c++) {
        const v8 a0 = q[0][c], a1 = q[1][c], a2 = q[2][c], a3 = q[3][c];
        q[0][c] = a0 - a2, q[1][c] = a1 + a2, q[2][c] = a2 - a1, q[3][c] = a1 - a3;
    }
    for (int r = 0; r < 4; r++) {
        const v8 a0 = q[r][0], a1 = q[r][1], a2 = q[r][2], a3 = q[r][3];
        q[r][0] = a0 - a2, q[r][1] = a1 + a2, q[r][2] = a2 - a1, q[r][3] = a1 - a3;
    }
}
/* The F(4x4) input transform of tiles [t0, t0+nt): V[t - t0][xi][ic]. */
CN__MULTIVERSION static void input_transform4(const cn_conv2d_desc *d, const float *x, int64_t t0,
                                              int64_t nt, int64_t ldv, float *V)
{
    const int64_t IC = d->IC, TH = tiles_h(d), TW = tiles_w(d);
    const size_t plane = (size_t)IC;
    for (int64_t t = 0; t < nt; t++) {
        const int64_t tile = t0 + t, tw = tile % TW, th = tile / TW % TH, n = tile / (TW * TH);
        const int64_t h0 = 4 * th - d->PT, w0 = 4 * tw - d->PL;
        if (IC % 16 == 0) {
            int a0, a1, b0, b1;
            span(h0, 6, d->IH, &a0, &a1);
            span(w0, 6, d->IW, &b0, &b1);
            const float *xn = x + n * d->IH * d->IW * IC;
            if (a0 == 0 && a1 == 6 && b0 == 0 && b1 == 6)
                for (int64_t c = 0; c < IC; c += 16)
                    bt16(xn + c, d->IW, IC, h0, w0, a0, a1, b0, b1, V + t * ldv + c, 1);
            else
                for (int64_t c = 0; c < IC; c += 16)
                    bt16(xn + c, d->IW, IC, h0, w0, a0, a1, b0, b1, V + t * ldv + c, 0);
            continue;
        }
        /* channels not a multiple of 16: the tails' lanes through memory */
        int64_t src[6][6];
        window(n, h0, w0, 6, d->IH, d->IW, IC, &src[0][0]);
        float *vt = V + t * ldv;
        for (int64_t c = 0; c < IC; c += 16) {
            const int64_t k = CN__MIN(16, IC - c);
            v16 q[6][6];
            ldn_window(&q[0][0], 36, x + c, &src[0][0], k);
#pragma GCC unroll 6
            for (int b = 0; b < 6; b++) BT6(q[0][b], q[1][b], q[2][b], q[3][b], q[4][b], q[5][b]);
#pragma GCC unroll 6
            for (int a = 0; a < 6; a++) {
                BT6(q[a][0], q[a][1], q[a][2], q[a][3], q[a][4], q[a][5]);
#pragma GCC unroll 6
                for (int b = 0; b < 6; b++) stn(vt + (a * 6 + b) * plane + c, &q[a][b], k);
            }
        }
    }
}

/* y of tiles [t0, t0+nt) = A^T M A (+ b), F(4x4), pixels past OH, OW
 * dropped; acc: y += A^T M A. */
CN__MULTIVERSION static void output_transform4(const cn_conv2d_desc *d, const float *M, int64_t t0,
                                               int64_t nt, int64_t ldm, const float *b, int relu,
                                               int acc, float *y)
{
    const int64_t OC = d->OC, TH = tiles_h(d), TW = tiles_w(d);
    const size_t plane = (size_t)OC;
    const v16 zero = {0};
    for (int64_t t = 0; t < nt; t++) {
        const int64_t tile = t0 + t, tw = tile % TW, th = tile / TW % TH, n = tile / (TW * TH);
        const float *mt = M + t * ldm;
        if (OC % 16 == 0) {
            const int rows = (int)CN__MIN(4, d->OH - 4 * th),
                      cols = (int)CN__MIN(4, d->OW - 4 * tw);
            float *yt = y + ((n * d->OH + 4 * th) * d->OW + 4 * tw) * OC;
            const int full = d->OH - 4 * th >= 4 && d->OW - 4 * tw >= 4;
            for (int64_t c = 0; c < OC; c += 16) {
                const float *bc = b ? b + c : NULL;
                if (full && !acc)
                    at16(mt + c, OC, bc, relu, rows, cols, d->OW, yt + c, 1, 0);
                else if (!acc)
                    at16(mt + c, OC, bc, relu, rows, cols, d->OW, yt + c, 0, 0);
                else if (full)
                    at16(mt + c, OC, bc, relu, rows, cols, d->OW, yt + c, 1, 1);
                else
                    at16(mt + c, OC, bc, relu, rows, cols, d->OW, yt + c, 0, 1);
            }
            continue;
        }
        int64_t dst[4][4];
        window(n, 4 * th, 4 * tw, 4, d->OH, d->OW, OC, &dst[0][0]);
        for (int64_t c = 0; c < OC; c += 16) {
            const int64_t k = CN__MIN(16, OC - c);
            v16 m[6][6], r[4][6], o[4];
            for (int a = 0; a < 6; a++)
                for (int e = 0; e < 6; e++) ldn(&m[a][e], mt + (a * 6 + e) * plane + c, k);
            for (int e = 0; e < 6; e++)
                AT6(m[0][e], m[1][e], m[2][e], m[3][e], m[4][e], m[5][e], r[0][e], r[1][e], r[2][e],
                    r[3][e]);
            v16 bv = zero;
            if (b) ldn(&bv, b + c, k);
            for (int a = 0; a < 4; a++) {
                AT6(r[a][0], r[a][1], r[a][2], r[a][3], r[a][4], r[a][5], o[0], o[1], o[2], o[3]);
                for (int e = 0; e < 4; e++) {
                    v16 v = o[e] + bv;
                    if (relu) v = (v16)((vi16)v & ~(v <= zero)); /* !(v <= 0) ? v : 0: NaN stays */
                    if (dst[a][e] < 0) continue;
                    if (acc) {
                        v16 old;
                        ldn(&old, y + dst[a][e] + c, k);
                        v = old + v;
                    }
                    stn(y + dst[a][e] + c, &v, k);
                }
            }
        }
    }
}

/* dM[t - t0][xi][oc] = (A g A^T)[xi] for the 4x4 output-gradient block g of
 * each tile (pixels past OH, OW read as zero), F(4x4). */
CN__MULTIVERSION static void grad_transform4(const cn_conv2d_desc *d, const float *gy, int64_t t0,
                                             int64_t nt, int64_t ldm, float *dM)
{
    const int64_t OC = d->OC, TH = tiles_h(d), TW = tiles_w(d);
    const size_t plane = (size_t)OC;
    for (int64_t t = 0; t < nt; t++) {
        const int64_t tile = t0 + t, tw = tile % TW, th = tile / TW % TH, n = tile / (TW * TH);
        float *mt = dM + t * ldm;
        if (OC % 16 == 0) {
            const int rows = (int)CN__MIN(4, d->OH - 4 * th),
                      cols = (int)CN__MIN(4, d->OW - 4 * tw);
            const float *gt = gy + ((n * d->OH + 4 * th) * d->OW + 4 * tw) * OC;
            if (d->OH - 4 * th >= 4 && d->OW - 4 * tw >= 4) /* a full block */
                for (int64_t c = 0; c < OC; c += 16) ag16(gt + c, d->OW, OC, rows, cols, mt + c, 1);
            else
                for (int64_t c = 0; c < OC; c += 16) ag16(gt + c, d->OW, OC, rows, cols, mt + c, 0);
            continue;
        }
        int64_t src[4][4];
        window(n, 4 * th, 4 * tw, 4, d->OH, d->OW, OC, &src[0][0]);
        for (int64_t c = 0; c < OC; c += 16) {
            const int64_t k = CN__MIN(16, OC - c);
            v16 g[4][4], r[6][4], q[6];
            ldn_window(&g[0][0], 16, gy + c, &src[0][0], k);
            for (int b = 0; b < 4; b++)
                A6(g[0][b], g[1][b], g[2][b], g[3][b], r[0][b], r[1][b], r[2][b], r[3][b], r[4][b],
                   r[5][b]);
            for (int a = 0; a < 6; a++) {
                A6(r[a][0], r[a][1], r[a][2], r[a][3], q[0], q[1], q[2], q[3], q[4], q[5]);
                for (int e = 0; e < 6; e++) stn(mt + (a * 6 + e) * plane + c, &q[e], k);
            }
        }
    }
}

/* The input transform of tiles [t0, t0+nt): V[t - t0][xi][ic]. */
CN__MULTIVERSION static void input_transform(const cn_conv2d_desc *d, const float *x, int64_t t0,
                                             int64_t nt, int64_t ldv, float *V)
{
    const int64_t IC = d->IC, TH = tiles_h(d), TW = tiles_w(d);
    const size_t plane = (size_t)IC;
    const v8 z = {0};
    for (int64_t t = 0; t < nt; t++) {
        const int64_t tile = t0 + t, tw = tile % TW, th = tile / TW % TH, n = tile / (TW * TH);
        const int64_t ih0 = 2 * th - d->PT, iw0 = 2 * tw - d->PL;
        int64_t src[4][4];
        window(n, ih0, iw0, 4, d->IH, d->IW, IC, &src[0][0]);
        float *vt = V + t * ldv;
        int64_t c = 0;
        const int inside = ih0 >= 0 && ih0 + 4 <= d->IH && iw0 >= 0 && iw0 + 4 <= d->IW;
        if (inside) /* most tiles: no bounds to test per load */
            for (; c + 8 <= IC; c += 8) {
                v8 q[4][4];
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++) q[a][b] = LD(x + src[a][b] + c);
                bt_d_b(q);
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++) ST(vt + (a * 4 + b) * plane + c, q[a][b]);
            }
        for (; c + 8 <= IC; c += 8) {
            v8 q[4][4];
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) q[a][b] = src[a][b] >= 0 ? LD(x + src[a][b] + c) : z;
            bt_d_b(q);
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) ST(vt + (a * 4 + b) * plane + c, q[a][b]);
        }
        for (; c < IC; c++) {
            float q[4][4], r[4][4];
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) q[a][b] = src[a][b] >= 0 ? x[src[a][b] + c] : 0.0f;
            for (int b = 0; b < 4; b++) {
                r[0][b] = q[0][b] - q[2][b], r[1][b] = q[1][b] + q[2][b];
                r[2][b] = q[2][b] - q[1][b], r[3][b] = q[1][b] - q[3][b];
            }
            for (int a = 0; a < 4; a++) {
                float *v = vt + (size_t)(a * 4) * plane + c;
                v[0 * plane] = r[a][0] - r[a][2], v[1 * plane] = r[a][1] + r[a][2];
                v[2 * plane] = r[a][2] - r[a][1], v[3 * plane] = r[a][1] - r[a][3];
            }
        }
    }
}

/* y of tiles [t0, t0+nt) = A^T M A (+ b), pixels past OH, OW dropped;
 * acc: y += A^T M A. */
CN__MULTIVERSION static void output_transform(const cn_conv2d_desc *d, const float *M, int64_t t0,
                                              int64_t nt, int64_t ldm, const float *b, int relu,
                                              int acc, float *y)
{
    const int64_t OC = d->OC, TH = tiles_h(d), TW = tiles_w(d);
    const size_t plane = (size_t)OC;
    for (int64_t t = 0; t < nt; t++) {
        const int64_t tile = t0 + t, tw = tile % TW, th = tile / TW % TH, n = tile / (TW * TH);
        int64_t dst[2][2];
        window(n, 2 * th, 2 * tw, 2, d->OH, d->OW, OC, &dst[0][0]);
        const float *mt = M + t * ldm;
        int64_t c = 0;
        for (; c + 8 <= OC; c += 8) {
            v8 m[4][4], r[2][4];
            for (int a = 0; a < 4; a++)
                for (int e = 0; e < 4; e++) m[a][e] = LD(mt + (a * 4 + e) * plane + c);
            for (int e = 0; e < 4; e++) {
                r[0][e] = m[0][e] + m[1][e] + m[2][e];
                r[1][e] = m[1][e] - m[2][e] - m[3][e];
            }
            const v8 bv = b ? LD(b + c) : (v8){0}, zero = {0};
            for (int a = 0; a < 2; a++) {
                v8 y0 = r[a][0] + r[a][1] + r[a][2] + bv, y1 = r[a][1] - r[a][2] - r[a][3] + bv;
                if (relu) /* !(v <= 0) ? v : 0, as cn_act_fwd: NaN stays */
                    y0 = (v8)((vi8)y0 & ~(y0 <= zero)), y1 = (v8)((vi8)y1 & ~(y1 <= zero));
                if (acc && dst[a][0] >= 0) y0 = LD(y + dst[a][0] + c) + y0;
                if (acc && dst[a][1] >= 0) y1 = LD(y + dst[a][1] + c) + y1;
                if (dst[a][0] >= 0) ST(y + dst[a][0] + c, y0);
                if (dst[a][1] >= 0) ST(y + dst[a][1] + c, y1);
            }
        }
        for (; c < OC; c++) {
            float m[4][4], r[2][4];
            for (int a = 0; a < 4; a++)
                for (int e = 0; e < 4; e++) m[a][e] = mt[(a * 4 + e) * plane + c];
            for (int e = 0; e < 4; e++) {
                r[0][e] = m[0][e] + m[1][e] + m[2][e];
                r[1][e] = m[1][e] - m[2][e] - m[3][e];
            }
            const float bv = b ? b[c] : 0.0f;
            for (int a = 0; a < 2; a++) {
                float y0 = r[a][0] + r[a][1] + r[a][2] + bv, y1 = r[a][1] - r[a][2] - r[a][3] + bv;
                if (relu) y0 = !(y0 <= 0.0f) ? y0 : 0.0f, y1 = !(y1 <= 0.0f) ? y1 : 0.0f;
                if (dst[a][0] >= 0) y[dst[a][0] + c] = acc ? y[dst[a][0] + c] + y0 : y0;
                if (dst[a][1] >= 0) y[dst[a][1] + c] = acc ? y[dst[a][1] + c] + y1 : y1;
            }
        }
    }
}

/* M[xi] = V[xi] U[xi] for the n tiles of a chunk, all a*a products. On
 * AVX-512 the micro-kernel runs on the operands in place, as the driver
 * would, without its per-call cost (a few percent of a small layer's
 * forward), and on a last, partial sliver of tiles too, whose missing rows
 * (V has v_tiles) are zeroed first: the driver would pack it, one float at
 * a time (lenet's second layer on one image, two chunks of 8 tiles, spent
 * a third of its time there). Columns past OC read up to SLACK floats past
 * U. Deep K, or rows at a multiple of 2 KiB (few cache sets), go through
 * the driver, which blocks and packs them. */
static void fwd_products(const cn_conv2d_desc *d, int64_t n, float *V, const float *U, float *M,
                         void *gws)
{
    const int64_t IC = d->IC, OC = d->OC, XI = npts(d), lv = tstride(d, IC), lm = tstride(d, OC);
    const int64_t mr = CN__SGEMM_AVX512_MR, nr = CN__SGEMM_AVX512_NR;
    const int direct = cn__isa_detect() == CN_ISA_AVX512 && IC <= 384 && OC % 512 != 0;
    const int64_t nd = direct ? n : 0; /* rows run directly */
    if (nd % mr) memset(V + nd * lv, 0, (size_t)((mr - nd % mr) * lv) * sizeof(float));
    for (int64_t xi = 0; xi < XI; xi++) {
        const float *v = V + xi * IC, *u = U + xi * IC * OC;
        float *m = M + xi * OC;
        for (int64_t i = 0; i < nd; i += mr) {
            /* (a sliver of at most 8 tiles: the 8-row kernel, same bits) */
            cn__sgemm_ukr *ukr = nd - i <= 8 ? cn__sgemm_ukr8_avx512 : cn__sgemm_ukr_avx512;
            for (int64_t j = 0; j < OC; j += nr)
                ukr(IC, v + i * lv, lv, 1, u + j, OC, m + i * lm + j, lm, (int)CN__MIN(mr, nd - i),
                    (int)CN__MIN(nr, OC - j), 1.0f, 0.0f);
        }
        if (nd < n)
            (void)cn__sgemm_ws(NULL, 0, 0, n - nd, OC, IC, 1.0f, v + nd * lv, lv, u, OC, 0.0f,
                               m + nd * lm, lm, gws);
    }
}

void cn__conv2d_winograd_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                             const float *w, const float *b, int relu, int acc, float *y, void *ws)
{
    const int64_t IC = d->IC, T = fwd_tiles(d), XI = npts(d);
    const int64_t tv = tstride(d, IC), tm = tstride(d, d->OC);
    const int64_t ntiles = d->MB * tiles_h(d) * tiles_w(d), nch = cdiv(ntiles, T);
    const int m4 = tile_m(d) == 4;
    float *U = ws;
    char *threads = (char *)ws + u_bytes(d);
    memset(U + XI * IC * d->OC, 0, SLACK * sizeof(float)); /* read, never used */
    const int nt = wino_threads(ctx, d);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#pragma omp for schedule(static)
        for (int64_t ic = 0; ic < IC; ic++) weight_transform(d, w, U, ic, ic + 1);
        char *mine = threads + (size_t)omp_get_thread_num() * thread_bytes(d);
        float *V = (float *)mine, *M = V + v_tiles(d) * tstride(d, IC);
        void *gws = mine + vm_bytes(d);
#pragma omp for schedule(dynamic)
        for (int64_t c = 0; c < nch; c++) {
            const int64_t t0 = c * T, n = CN__MIN(T, ntiles - t0);
            if (m4)
                input_transform4(d, x, t0, n, tv, V);
            else
                input_transform(d, x, t0, n, tv, V);
            fwd_products(d, n, V, U, M, gws);
            if (m4)
                output_transform4(d, M, t0, n, tm, b, relu, acc, y);
            else
                output_transform(d, M, t0, n, tm, b, relu, acc, y);
        }
    }
}

/* dM[t - t0][xi][oc] = (A g A^T)[xi] for the 2x2 output-gradient block g
 * of each tile (pixels past OH, OW read as zero), A = [1 0; 1 1; 1 -1; 0 -1]:
 * the gradient of M in y = A^T M A. */
CN__MULTIVERSION static void grad_transform(const cn_conv2d_desc *d, const float *gy, int64_t t0,
                                            int64_t nt, int64_t ldm, float *dM)
{
    const int64_t OC = d->OC, TH = tiles_h(d), TW = tiles_w(d);
    const size_t plane = (size_t)OC;
    const v8 z = {0};
    for (int64_t t = 0; t < nt; t++) {
        const int64_t tile = t0 + t, tw = tile % TW, th = tile / TW % TH, n = tile / (TW * TH);
        int64_t src[2][2];
        window(n, 2 * th, 2 * tw, 2, d->OH, d->OW, OC, &src[0][0]);
        float *mt = dM + t * ldm;
        int64_t c = 0;
        for (; c + 8 <= OC; c += 8) {
            v8 g[2][2], r[4][2];
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) g[a][b] = src[a][b] >= 0 ? LD(gy + src[a][b] + c) : z;
            for (int b = 0; b < 2; b++) {
                r[0][b] = g[0][b], r[1][b] = g[0][b] + g[1][b];
                r[2][b] = g[0][b] - g[1][b], r[3][b] = -g[1][b];
            }
            for (int a = 0; a < 4; a++) {
                float *m = mt + (size_t)(a * 4) * plane + c;
                ST(m, r[a][0]), ST(m + plane, r[a][0] + r[a][1]);
                ST(m + 2 * plane, r[a][0] - r[a][1]), ST(m + 3 * plane, -r[a][1]);
            }
        }
        for (; c < OC; c++) {
            float g[2][2], r[4][2];
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) g[a][b] = src[a][b] >= 0 ? gy[src[a][b] + c] : 0.0f;
            for (int b = 0; b < 2; b++) {
                r[0][b] = g[0][b], r[1][b] = g[0][b] + g[1][b];
                r[2][b] = g[0][b] - g[1][b], r[3][b] = -g[1][b];
            }
            for (int a = 0; a < 4; a++) {
                float *m = mt + (size_t)(a * 4) * plane + c;
                m[0] = r[a][0], m[plane] = r[a][0] + r[a][1];
                m[2 * plane] = r[a][0] - r[a][1], m[3 * plane] = -r[a][1];
            }
        }
    }
}

/* The weight gradient's a*a products in the orientation that wastes fewer
 * rows and columns of the AVX-512 micro-kernel's 14 x 32 tiles:
 * dU[xi] [IC, OC] = V[xi]^T dM[xi], or with tr, its transpose [OC, IC] =
 * dM[xi]^T V[xi] (for IC = 32, OC = 64: 70 x 32 computed instead of
 * 42 x 64). A function of the shape only. */
static int bww_tr(const cn_conv2d_desc *d)
{
    const int64_t mr = CN__SGEMM_AVX512_MR, nr = CN__SGEMM_AVX512_NR;
    return cdiv(d->OC, mr) * mr * cdiv(d->IC, nr) * nr <
           cdiv(d->IC, mr) * mr * cdiv(d->OC, nr) * nr;
}

/* gw[:, :, ic, :] = G^T dU G for the rows r of [r0, r1) of dU's [R, S]
 * planes (R = IC, S = OC, or with tr the transpose), 16 columns a step; for
 * F(2x2) G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]. */
CN__MULTIVERSION static void weight_grad_transform(const cn_conv2d_desc *d, const float *dU,
                                                   int64_t r0, int64_t r1, float *gw)
{
    const int64_t IC = d->IC, OC = d->OC, plane = IC * OC, XI = npts(d);
    const int a = tile_m(d) + 2, tr = bww_tr(d);
    const int64_t S = tr ? IC : OC;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t s0 = 0; s0 < S; s0 += 16) {
            const int64_t k = CN__MIN(16, S - s0);
            v16 u[6][6], t[3][6], g[3][3];
            for (int64_t xi = 0; xi < XI; xi++)
                ldn(&u[xi / a][xi % a], dU + xi * plane + r * S + s0, k);
            if (a == 6) {
                for (int b = 0; b < 6; b++)
                    GT6(&t[0][b], 6, u[0][b], u[1][b], u[2][b], u[3][b], u[4][b], u[5][b]);
                for (int h = 0; h < 3; h++)
                    GT6(&g[h][0], 1, t[h][0], t[h][1], t[h][2], t[h][3], t[h][4], t[h][5]);
            } else {
                for (int b = 0; b < 4; b++) {
                    t[0][b] = u[0][b] + 0.5f * (u[1][b] + u[2][b]);
                    t[1][b] = 0.5f * (u[1][b] - u[2][b]);
                    t[2][b] = 0.5f * (u[1][b] + u[2][b]) + u[3][b];
                }
                for (int e = 0; e < 3; e++) {
                    g[e][0] = t[e][0] + 0.5f * (t[e][1] + t[e][2]);
                    g[e][1] = 0.5f * (t[e][1] - t[e][2]);
                    g[e][2] = 0.5f * (t[e][1] + t[e][2]) + t[e][3];
                }
            }
            for (int e = 0; e < 9; e++) {
                float *o = gw + e * plane;
                if (!tr) {
                    stn(o + r * OC + s0, &g[e / 3][e % 3], k);
                    continue;
                }
                float lanes[16];
                memcpy(lanes, &g[e / 3][e % 3], sizeof lanes);
                for (int64_t l = 0; l < k; l++) o[(s0 + l) * OC + r] = lanes[l];
            }
        }
}

/* dU[xi] = V[xi]^T dM[xi] (+ dU[xi] with acc) for the n tiles of a chunk,
 * all a*a products, in bww_tr's orientation. On AVX-512 the micro-kernel
 * reads both operands in place, as packing them would cost as much as the
 * short K = n products themselves; its tiles past the last row or column
 * read up to SLACK floats past the planes, results dropped. */
static void bww_products(const cn_conv2d_desc *d, int64_t n, const float *V, const float *dM,
                         int acc, float *dU, void *gws)
{
    const int tr = bww_tr(d);
    const int64_t R = tr ? d->OC : d->IC, S = tr ? d->IC : d->OC, XI = npts(d);
    const int64_t la = tstride(d, R), lb = tstride(d, S);
    const int64_t mr = CN__SGEMM_AVX512_MR, nr = CN__SGEMM_AVX512_NR;
    const float *A = tr ? dM : V, *B = tr ? V : dM;
    const int direct = cn__isa_detect() == CN_ISA_AVX512;
    /* R rows in tiles of 8 where 14 would compute over a tenth more (R =
     * 32: 32 rows instead of 42); the same bits either way */
    const int eight = cdiv(R, 8) * 8 * 11 < cdiv(R, mr) * mr * 10;
    cn__sgemm_ukr *ukr = eight ? cn__sgemm_ukr8_avx512 : cn__sgemm_ukr_avx512;
    const int64_t tr_rows = eight ? CN__SGEMM_AVX512_MR8 : mr;
    for (int64_t xi = 0; xi < XI; xi++) {
        const float *a = A + xi * R, *b = B + xi * S;
        float *c = dU + xi * R * S;
        if (!direct) {
            (void)cn__sgemm_ws(NULL, 1, 0, R, S, n, 1.0f, a, la, b, lb, acc ? 1.0f : 0.0f, c, S,
                               gws);
            continue;
        }
        for (int64_t i = 0; i < R; i += tr_rows)
            for (int64_t j = 0; j < S; j += nr)
                ukr(n, a + i, 1, la, b + j, lb, c + i * S + j, S, (int)CN__MIN(tr_rows, R - i),
                    (int)CN__MIN(nr, S - j), 1.0f, acc ? 1.0f : 0.0f);
    }
}

/* s[i] += y[i], i < n. */
CN__MULTIVERSION static void add_to(float *restrict s, const float *restrict y, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) s[i] += y[i];
}

void cn__conv2d_winograd_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                     const float *gy, float *gw, void *ws)
{
    const int64_t IC = d->IC, OC = d->OC, T = chunk_tiles(d), np = bww_parts(d), XI = npts(d);
    const int64_t tv = tstride(d, IC), tm = tstride(d, OC);
    const int64_t ntiles = d->MB * tiles_h(d) * tiles_w(d), nch = cdiv(ntiles, T);
    const int64_t per = XI * IC * OC;
    const int m4 = tile_m(d) == 4;
    float *parts = ws;
    char *threads = (char *)ws + parts_bytes(d);
    const int nt = wino_threads(ctx, d);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        char *mine = threads + (size_t)omp_get_thread_num() * thread_bytes(d);
        float *V = (float *)mine, *dM = V + T * tstride(d, IC);
        void *gws = mine + vm_bytes(d);
        memset(dM + T * tstride(d, OC), 0, SLACK * sizeof(float)); /* read, never used */
#pragma omp for schedule(dynamic)
        for (int64_t p = 0; p < np; p++) {
            float *dU = parts + p * per;
            const int64_t c0 = nch * p / np, c1 = nch * (p + 1) / np;
            for (int64_t c = c0; c < c1; c++) {
                const int64_t t0 = c * T, n = CN__MIN(T, ntiles - t0);
                if (m4)
                    input_transform4(d, x, t0, n, tv, V), grad_transform4(d, gy, t0, n, tm, dM);
                else
                    input_transform(d, x, t0, n, tv, V), grad_transform(d, gy, t0, n, tm, dM);
                bww_products(d, n, V, dM, c > c0, dU, gws);
            }
        }
        if (np > 1) {
            /* parts[0] += parts[p], p in order, streaming: summed inside
             * the transform, the parts' scattered rows cost it a miss each. */
            const int64_t blk = 4096;
#pragma omp for schedule(static)
            for (int64_t i0 = 0; i0 < per; i0 += blk)
                for (int64_t p = 1; p < np; p++)
                    add_to(parts + i0, parts + p * per + i0, CN__MIN(blk, per - i0));
        }
        const int64_t R = bww_tr(d) ? OC : IC;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < R; r++) weight_grad_transform(d, parts, r, r + 1, gw);
    }
}
