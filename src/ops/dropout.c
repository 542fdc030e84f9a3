/* Dropout: y = x * mask / (1 - p), the mask drawn from the context's
 * generator one element at a time, in order, so that a seed fixes the mask
 * whatever the thread count. */
#include "convnet/ops.h"
#include "internal.h"

void cn_dropout_fwd(cn_ctx *ctx, float p, size_t n, const float *x, uint8_t *mask, float *y)
{
    /* No generator (a caller bug: see ops.h), p <= 0 or p NaN: identity,
     * without drawing. p >= 1 drops everything, as PyTorch does. */
    if (!ctx || !(p > 0.0f)) {
        for (size_t i = 0; i < n; i++) mask[i] = 1, y[i] = x[i];
        return;
    }
    if (p >= 1.0f) {
        for (size_t i = 0; i < n; i++) mask[i] = 0, y[i] = x[i] * 0.0f;
        return;
    }
    const double keep = 1.0 - (double)p;
    for (size_t i = 0; i < n; i++) mask[i] = cn_rng_uniform(ctx) < keep;
    cn_dropout_bwd(p, n, mask, x, y);
}

void cn_dropout_bwd(float p, size_t n, const uint8_t *mask, const float *gy, float *gx)
{
    /* x * 0 rather than 0, so that a dropped NaN or inf still gives NaN. */
    const float scale = p > 0.0f && p < 1.0f ? 1.0f / (1.0f - p) : (p >= 1.0f ? 0.0f : 1.0f);
#pragma omp simd
    for (size_t i = 0; i < n; i++) gx[i] = gy[i] * ((float)mask[i] * scale);
}
