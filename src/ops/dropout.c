/* Dropout: y = x * mask / (1 - p), the mask drawn from the context's
 * generator one element at a time, in order, so that a seed fixes the mask
 * whatever the thread count.
 *
 * Element i is kept when the i-th cn_rng_uniform(ctx) from here would be
 * below 1 - p. The draws are made inline on a local copy of ctx's
 * xoshiro256** state rather than through cn_rng_uniform (a call, a
 * conversion to double and a store of the state per element cost several
 * times the generator itself); the state is written back at the end, so the
 * generator advances exactly as n calls of cn_rng_uniform would (a test
 * checks both the mask and the state against those calls). */
#include "convnet/ops.h"
#include "internal.h"

/* Masks are drawn and applied in blocks of this many elements, so that the
 * mask block is still in L1 when the multiply reads it. */
#define BLOCK 4096

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* mask[i] = (next u64 >> 11) < thr for i < n, advancing s: the same steps
 * as cn_rng_u64 (src/core/context.c). u < thr is exactly
 * u * 2^-53 < keep for thr = ceil(keep * 2^53), u being an integer. */
static void draw_mask(uint64_t s[4], uint64_t thr, size_t n, uint8_t *mask)
{
    uint64_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    for (size_t i = 0; i < n; i++) {
        const uint64_t r = rotl(s1 * 5, 7) * 9, t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = rotl(s3, 45);
        mask[i] = (r >> 11) < thr;
    }
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
}

/* gx = gy * (mask * scale); gx may alias gy. */
CN__MULTIVERSION static void apply_mask(size_t n, float scale, const uint8_t *mask, const float *gy,
                                        float *gx)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) gx[i] = gy[i] * ((float)mask[i] * scale);
}

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
    /* keep * 2^53 is exact (a power-of-two scaling of a double in (0, 1)),
     * so its ceiling is the threshold; it is at most 2^53. */
    const double keep = 1.0 - (double)p, t = keep * 0x1.0p53;
    const uint64_t thr = (uint64_t)t + ((double)(uint64_t)t < t);
    const float scale = 1.0f / (1.0f - p);
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        const size_t nb = CN__MIN((size_t)BLOCK, n - i0);
        draw_mask(ctx->rng, thr, nb, mask + i0);
        apply_mask(nb, scale, mask + i0, x + i0, y + i0);
    }
}

void cn_dropout_bwd(float p, size_t n, const uint8_t *mask, const float *gy, float *gx)
{
    /* x * 0 rather than 0, so that a dropped NaN or inf still gives NaN. */
    const float scale = p > 0.0f && p < 1.0f ? 1.0f / (1.0f - p) : (p >= 1.0f ? 0.0f : 1.0f);
    apply_mask(n, scale, mask, gy, gx);
}
