/* conv2d as GEMM: the fast path for every problem with enough channels per
 * group. Output pixels are processed in chunks of R rows; for each chunk and
 * group the input patches are gathered into cols [R, KH*KW*ICG] (im2col of
 * the chunk only, never of the whole batch), then
 *     forward           y_g [R, OCG]   = cols · w_g [KG, OCG]
 *     backward data     cols           = gy_g · w_g^T, scattered back (col2im)
 *     backward weights  gw_g [KG, OCG] += cols^T · gy_g
 * A 1x1, stride-1, unpadded convolution needs no gathering at all: the NHWC
 * input already is cols. Zero padding only: conv2d.c pads other modes first. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "ops/conv_internal.h"

#define COLS_FLOATS ((int64_t)1 << 19) /* 2 MiB chunks of cols */

static int64_t kg(const cn_conv2d_desc *d) { return d->KH * d->KW * (d->IC / d->G); }
static int64_t rows_total(const cn_conv2d_desc *d) { return d->MB * d->OH * d->OW; }

/* Rows of cols per chunk: a function of the problem only, so that sums over
 * chunks happen in the same order whatever the thread count. */
static int64_t chunk_rows(const cn_conv2d_desc *d)
{
    int64_t r = COLS_FLOATS / kg(d);
    if (r < 1) r = 1;
    return r < rows_total(d) ? r : rows_total(d);
}

static int is_pointwise(const cn_conv2d_desc *d)
{
    return d->G == 1 && d->KH == 1 && d->KW == 1 && d->SH == 1 && d->SW == 1 && d->PT == 0 &&
           d->PL == 0 && d->OH == d->IH && d->OW == d->IW;
}

int cn__conv_gemm_applies(const cn_conv2d_desc *d)
{
    const char *impl = getenv("CN_CONV_IMPL");
    if (impl && !strcmp(impl, "direct")) return 0;
    if (impl && !strcmp(impl, "gemm")) return 1;
    /* Depthwise-like problems are a batch of tiny GEMMs: the direct loops,
     * vectorised over channels, do better. */
    return !(d->IC / d->G == 1 && d->OC / d->G <= 4);
}

/* The GEMM packing buffers are sized for this many threads; a context asking
 * for more makes the GEMM allocate its own. */
static int gemm_threads(void)
{
    int n = omp_get_num_procs();
    return n > 2 ? n : 2;
}

static size_t cols_bytes(const cn_conv2d_desc *d)
{
    return is_pointwise(d) ? 0 : ((size_t)(chunk_rows(d) * kg(d)) * sizeof(float) + 63) & ~(size_t)63;
}

size_t cn__conv_gemm_ws(const cn_conv2d_desc *d)
{
    const int64_t OCG = d->OC / d->G, K = kg(d), P = rows_total(d), R = chunk_rows(d);
    const int t = gemm_threads();
    /* Every GEMM shape the three passes use. */
    const int64_t shapes[][3] = {{P, d->OC, d->IC}, {P, d->IC, d->OC}, {d->IC, d->OC, P},
                                 {R, OCG, K},       {R, K, OCG},       {K, OCG, R}};
    size_t g = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t b = cn__sgemm_ws_size(shapes[i][0], shapes[i][1], shapes[i][2], t);
        g = b > g ? b : g;
    }
    return cols_bytes(d) + g;
}

/* cn__sgemm with the workspace after the cols, when it was sized for ctx. */
static cn_status gemm(const cn_ctx *ctx, void *ws, int ta, int tb, int64_t M, int64_t N,
                      int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                      float beta, float *C, int64_t ldc)
{
    if (cn__threads(ctx) > gemm_threads()) ws = NULL;
    return cn__sgemm_ws(ctx, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, ws);
}

/* p[i] += c[i]: the col2im inner loop, compiled per ISA. */
CN__MULTIVERSION static void add_row(float *restrict p, const float *restrict c, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) p[i] += c[i];
}

/* cols [R, KG] = the patches of group g for output rows [r0, r0+R). */
static void gather(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x, int64_t g,
                   int64_t r0, int64_t R, float *cols)
{
    const int64_t ICG = d->IC / d->G, K = kg(d);
    const int nt = cn__threads(ctx);
#pragma omp parallel for num_threads(nt) if (nt > 1 && R > 16) schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const int64_t row = r0 + r, ow = row % d->OW, oh = row / d->OW % d->OH,
                      n = row / (d->OW * d->OH);
        float *c = cols + r * K;
        for (int64_t kh = 0; kh < d->KH; kh++) {
            const int64_t ih = oh * d->SH - d->PT + kh * d->DH;
            for (int64_t kw = 0; kw < d->KW; kw++, c += ICG) {
                const int64_t iw = ow * d->SW - d->PL + kw * d->DW;
                if (ih < 0 || ih >= d->IH || iw < 0 || iw >= d->IW)
                    memset(c, 0, (size_t)ICG * sizeof *c);
                else
                    memcpy(c, x + ((n * d->IH + ih) * d->IW + iw) * d->IC + g * ICG,
                           (size_t)ICG * sizeof *c);
            }
        }
    }
}

/* gx += the patches of cols [R, KG] put back where gather took them.
 * Patches of one image overlap, those of different images never do: threads
 * split the chunk by image, and each image's rows are added in order, so the
 * sums do not depend on the thread count. */
static void scatter(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *cols, int64_t g,
                    int64_t r0, int64_t R, float *gx)
{
    const int64_t ICG = d->IC / d->G, K = kg(d), per_image = d->OH * d->OW;
    const int64_t n0 = r0 / per_image, n1 = (r0 + R - 1) / per_image;
    const int nt = cn__threads(ctx);
#pragma omp parallel for num_threads(nt) if (nt > 1 && n1 > n0) schedule(static)
    for (int64_t n = n0; n <= n1; n++) {
        const int64_t lo = CN__MAX(r0, n * per_image), hi = CN__MIN(r0 + R, (n + 1) * per_image);
        for (int64_t row = lo; row < hi; row++) {
            const int64_t ow = row % d->OW, oh = row / d->OW % d->OH;
            const float *c = cols + (row - r0) * K;
            for (int64_t kh = 0; kh < d->KH; kh++) {
                const int64_t ih = oh * d->SH - d->PT + kh * d->DH;
                for (int64_t kw = 0; kw < d->KW; kw++, c += ICG) {
                    const int64_t iw = ow * d->SW - d->PL + kw * d->DW;
                    if (ih < 0 || ih >= d->IH || iw < 0 || iw >= d->IW) continue;
                    float *p = gx + ((n * d->IH + ih) * d->IW + iw) * d->IC + g * ICG;
                    add_row(p, c, ICG);
                }
            }
        }
    }
}

cn_status cn__conv2d_gemm_fwd(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                              const float *w, const float *b, float *y, float *cols)
{
    void *gws = (char *)cols + cols_bytes(d);
    const int64_t OCG = d->OC / d->G, K = kg(d), P = rows_total(d);
    cn_status s = CN_OK;
    if (is_pointwise(d)) {
        s = gemm(ctx, gws, 0, 0, P, d->OC, d->IC, x, d->IC, w, d->OC, 0.0f, y, d->OC);
    } else {
        const int64_t R = chunk_rows(d);
        for (int64_t r0 = 0; r0 < P && !s; r0 += R) {
            const int64_t n = CN__MIN(R, P - r0);
            for (int64_t g = 0; g < d->G && !s; g++) {
                gather(ctx, d, x, g, r0, n, cols);
                s = gemm(ctx, gws, 0, 0, n, OCG, K, cols, K, w + g * OCG, d->OC, 0.0f,
                         y + r0 * d->OC + g * OCG, d->OC);
            }
        }
    }
    if (!s && b)
        for (int64_t p = 0; p < P; p++)
            for (int64_t o = 0; o < d->OC; o++) y[p * d->OC + o] += b[o];
    return s;
}

cn_status cn__conv2d_gemm_bwd_data(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *gy,
                                   const float *w, float *gx, float *cols)
{
    void *gws = (char *)cols + cols_bytes(d);
    const int64_t OCG = d->OC / d->G, K = kg(d), P = rows_total(d);
    if (is_pointwise(d))
        return gemm(ctx, gws, 0, 1, P, d->IC, d->OC, gy, d->OC, w, d->OC, 0.0f, gx, d->IC);
    memset(gx, 0, (size_t)(d->MB * d->IH * d->IW * d->IC) * sizeof *gx);
    const int64_t R = chunk_rows(d);
    cn_status s = CN_OK;
    for (int64_t r0 = 0; r0 < P && !s; r0 += R) {
        const int64_t n = CN__MIN(R, P - r0);
        for (int64_t g = 0; g < d->G && !s; g++) {
            s = gemm(ctx, gws, 0, 1, n, K, OCG, gy + r0 * d->OC + g * OCG, d->OC, w + g * OCG,
                     d->OC, 0.0f, cols, K);
            if (!s) scatter(ctx, d, cols, g, r0, n, gx);
        }
    }
    return s;
}

cn_status cn__conv2d_gemm_bwd_weights(const cn_ctx *ctx, const cn_conv2d_desc *d, const float *x,
                                      const float *gy, float *gw, float *cols)
{
    void *gws = (char *)cols + cols_bytes(d);
    const int64_t OCG = d->OC / d->G, K = kg(d), P = rows_total(d);
    if (is_pointwise(d))
        return gemm(ctx, gws, 1, 0, d->IC, d->OC, P, x, d->IC, gy, d->OC, 0.0f, gw, d->OC);
    const int64_t R = chunk_rows(d);
    cn_status s = CN_OK;
    for (int64_t r0 = 0; r0 < P && !s; r0 += R) {
        const int64_t n = CN__MIN(R, P - r0);
        for (int64_t g = 0; g < d->G && !s; g++) {
            gather(ctx, d, x, g, r0, n, cols);
            s = gemm(ctx, gws, 1, 0, K, OCG, n, cols, K, gy + r0 * d->OC + g * OCG, d->OC,
                     r0 ? 1.0f : 0.0f, gw + g * OCG, d->OC);
        }
    }
    return s;
}
