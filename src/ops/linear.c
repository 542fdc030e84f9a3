/* linear: y = x w + b and its backward as plain loops, i-k-j order so that
 * the innermost loop runs along a contiguous row. `omp simd` tells gcc that
 * the rows do not overlap (at -O2 it will not check that at run time, so
 * would not vectorise). Threads split rows of the output only; every sum
 * runs in one fixed order inside one thread, so the results do not depend
 * on the thread count. A blocked GEMM replaces these loops later; they stay
 * as its baseline. */
#include "convnet/ops.h"
#include "internal.h"

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define PAR_MIN_FLOPS 65536

/* Dot product with eight fixed partial sums: gcc vectorises it at -O2
 * without reassociating anything, and the order is always the same. */
static float dot(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) acc[u] += a[j + u] * b[j + u];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; j < n; j++) s += a[j] * b[j];
    return s;
}

void cn_linear_fwd(cn_ctx *ctx, int64_t N, int64_t IN, int64_t OUT, const float *x,
                   const float *w, const float *b, float *y)
{
    const int nt = cn__threads(ctx);
    const int par = nt > 1 && N > 1 && N * IN * OUT >= PAR_MIN_FLOPS;
    /* x [N,IN], w [IN,OUT], b [OUT] or NULL, y [N,OUT] */
#pragma omp parallel for num_threads(nt) if (par) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        float *yr = y + n * OUT;
        const float *xr = x + n * IN;
        if (b)
            for (int64_t j = 0; j < OUT; j++) yr[j] = b[j];
        else
            for (int64_t j = 0; j < OUT; j++) yr[j] = 0.0f;
        /* No skipping of zero x: 0 * NaN in w must still give NaN. */
        for (int64_t k = 0; k < IN; k++) {
            const float xv = xr[k];
            const float *wr = w + k * OUT;
#pragma omp simd
            for (int64_t j = 0; j < OUT; j++) yr[j] += xv * wr[j];
        }
    }
}

void cn_linear_bwd(cn_ctx *ctx, int64_t N, int64_t IN, int64_t OUT, const float *x,
                   const float *w, const float *gy, float *gx, float *gw, float *gb)
{
    const int nt = cn__threads(ctx);
    const int64_t flops = N * IN * OUT;
    /* gx [N,IN]: row n, column k is the dot of gy's row n with w's row k. */
    if (gx) {
#pragma omp parallel for num_threads(nt) if (nt > 1 && N > 1 && flops >= PAR_MIN_FLOPS) \
    schedule(static)
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < IN; k++) gx[n * IN + k] = dot(gy + n * OUT, w + k * OUT, OUT);
    }
    /* gw [IN,OUT]: row k sums x[n,k] * gy's row n over n = 0..N-1 in order. */
    if (gw) {
#pragma omp parallel for num_threads(nt) if (nt > 1 && IN > 1 && flops >= PAR_MIN_FLOPS) \
    schedule(static)
        for (int64_t k = 0; k < IN; k++) {
            float *gr = gw + k * OUT;
            for (int64_t j = 0; j < OUT; j++) gr[j] = 0.0f;
            for (int64_t n = 0; n < N; n++) {
                const float xv = x[n * IN + k];
                const float *gyr = gy + n * OUT;
#pragma omp simd
                for (int64_t j = 0; j < OUT; j++) gr[j] += xv * gyr[j];
            }
        }
    }
    /* gb [OUT]: the column sums of gy; too little work to split. */
    if (gb) {
        for (int64_t j = 0; j < OUT; j++) gb[j] = 0.0f;
        for (int64_t n = 0; n < N; n++) {
            const float *gyr = gy + n * OUT;
#pragma omp simd
            for (int64_t j = 0; j < OUT; j++) gb[j] += gyr[j];
        }
    }
}
