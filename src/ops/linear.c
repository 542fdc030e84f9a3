/* linear: y = x w + b and its backward as three calls of the library's
 * blocked GEMM (src/kernels/gemm.h), which threads over blocks of its output
 * and computes every element in one fixed order whatever the thread count:
 * the results do not depend on ctx's threads. The GEMM multiplies every
 * product, zeros included, so a NaN or inf in x or w always reaches y.
 *
 * The GEMM allocates its packing buffers; these functions return nothing,
 * so if that allocation fails they fall back to the plain single-threaded
 * loop (cn__sgemm_naive), which gives the same values up to rounding. */
#include <string.h>

#include "convnet/ops.h"
#include "internal.h"
#include "kernels/gemm.h"

/* cn__sgemm, or on CN_ERR_NO_MEMORY the plain loop with the same meaning. */
static void gemm(const cn_ctx *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (cn__sgemm(ctx, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc) != CN_OK)
        cn__sgemm_naive(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

/* gb[j] = sum over rows n = 0..N-1, in order, of gy[n, j]. */
CN__MULTIVERSION static void col_sums(int64_t N, int64_t OUT, const float *restrict gy,
                                      float *restrict gb)
{
    for (int64_t j = 0; j < OUT; j++) gb[j] = 0.0f;
    for (int64_t n = 0; n < N; n++) {
        const float *r = gy + n * OUT;
#pragma omp simd
        for (int64_t j = 0; j < OUT; j++) gb[j] += r[j];
    }
}

void cn_linear_fwd(cn_ctx *ctx, int64_t N, int64_t IN, int64_t OUT, const float *x, const float *w,
                   const float *b, float *y)
{
    if (N <= 0 || OUT <= 0) return;
    /* x [N,IN], w [IN,OUT], b [OUT] or NULL, y [N,OUT]: y = b, then
     * y = x w + 1 * y (or + 0 without a bias: y is not read then). */
    if (b)
        for (int64_t n = 0; n < N; n++) memcpy(y + n * OUT, b, (size_t)OUT * sizeof *y);
    gemm(ctx, 0, 0, N, OUT, IN, x, IN, w, OUT, b ? 1.0f : 0.0f, y, OUT);
}

void cn_linear_bwd(cn_ctx *ctx, int64_t N, int64_t IN, int64_t OUT, const float *x, const float *w,
                   const float *gy, float *gx, float *gw, float *gb)
{
    if (N < 0 || IN < 0 || OUT < 0) return;
    /* gx [N,IN] = gy [N,OUT] w^T: op(B)[o, i] = w[i * OUT + o]. */
    if (gx) gemm(ctx, 0, 1, N, IN, OUT, gy, OUT, w, OUT, 0.0f, gx, IN);
    /* gw [IN,OUT] = x^T gy: op(A)[i, n] = x[n * IN + i]. */
    if (gw) gemm(ctx, 1, 0, IN, OUT, N, x, IN, gy, OUT, 0.0f, gw, OUT);
    /* gb [OUT]: the column sums of gy; too little work to split. */
    if (gb) col_sums(N, OUT, gy, gb);
}
