/* softmax, log_softmax and softmax cross-entropy over the last axis of
 * [N, K] rows. Every row is shifted by its maximum before exp, so large
 * logits cannot overflow (log-sum-exp); sums of exponentials run in double.
 * A NaN anywhere in a row makes the whole row NaN (through the sum). */
#include <math.h>

#include "convnet/ops.h"
#include "internal.h"

/* The row's maximum, skipping NaNs (the sum picks them up). */
static float row_max(const float *x, int64_t K)
{
    float m = x[0];
    for (int64_t j = 1; j < K; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* log(sum_j exp(x[j] - m)) for the row's maximum m. */
static double log_sum_exp_shifted(const float *x, int64_t K, float m)
{
    double s = 0.0;
    for (int64_t j = 0; j < K; j++) s += exp((double)x[j] - m);
    return log(s);
}

void cn_log_softmax_fwd(int64_t N, int64_t K, const float *x, float *y)
{
    if (K <= 0) return;
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * K;
        float *yr = y + n * K;
        const float m = row_max(xr, K);
        const double lse = log_sum_exp_shifted(xr, K, m);
        for (int64_t j = 0; j < K; j++) yr[j] = (float)(((double)xr[j] - m) - lse);
    }
}

void cn_log_softmax_bwd(int64_t N, int64_t K, const float *y, const float *gy, float *gx)
{
    for (int64_t n = 0; n < N; n++) {
        const float *yr = y + n * K, *gr = gy + n * K;
        float *gxr = gx + n * K;
        double s = 0.0;
        for (int64_t j = 0; j < K; j++) s += gr[j];
        const float sf = (float)s;
        for (int64_t j = 0; j < K; j++) gxr[j] = gr[j] - expf(yr[j]) * sf;
    }
}

void cn_softmax_fwd(int64_t N, int64_t K, const float *x, float *y)
{
    if (K <= 0) return;
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * K;
        float *yr = y + n * K;
        const float m = row_max(xr, K);
        double s = 0.0;
        for (int64_t j = 0; j < K; j++) {
            yr[j] = expf(xr[j] - m);
            s += yr[j];
        }
        const float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < K; j++) yr[j] *= inv;
    }
}

cn_status cn_xent_fwd(int64_t N, int64_t K, const float *x, const int32_t *labels, float *probs,
                      float *loss)
{
    if (N < 1 || K < 1)
        return cn__err(CN_ERR_INVALID_ARG, "xent: N=%lld and K=%lld must be >= 1", (long long)N,
                       (long long)K);
    size_t n_el;
    if (cn_shape_numel(2, (const int64_t[2]){N, K}, &n_el))
        return cn__err(CN_ERR_OVERFLOW, "xent: N=%lld x K=%lld logits: element count overflows",
                       (long long)N, (long long)K);
    /* Every label is checked before anything is written. */
    for (int64_t n = 0; n < N; n++)
        if (labels[n] < 0 || labels[n] >= K)
            return cn__err(CN_ERR_INVALID_ARG, "xent: label %d at index %lld outside [0, %lld)",
                           (int)labels[n], (long long)n, (long long)K);
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * K;
        const float m = row_max(xr, K);
        const double lse = log_sum_exp_shifted(xr, K, m);
        /* -log p[label] = lse - (x[label] - m), both small near the answer. */
        total += lse - ((double)xr[labels[n]] - m);
        if (probs) {
            float *pr = probs + n * K;
            for (int64_t j = 0; j < K; j++) pr[j] = (float)exp(((double)xr[j] - m) - lse);
        }
    }
    *loss = (float)(total / (double)N);
    return CN_OK;
}

void cn_xent_bwd(int64_t N, int64_t K, const float *probs, const int32_t *labels, float g,
                 float *gx)
{
    if (N <= 0) return;
    const float s = (float)((double)g / (double)N);
    for (int64_t n = 0; n < N; n++) {
        const float *pr = probs + n * K;
        float *gxr = gx + n * K;
#pragma omp simd
        for (int64_t j = 0; j < K; j++) gxr[j] = pr[j] * s;
        /* Labels were checked by the forward pass; never write outside. */
        const int32_t l = labels[n];
        if (l >= 0 && l < K) gxr[l] = (pr[l] - 1.0f) * s;
    }
}
