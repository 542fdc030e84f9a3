/* convnet/context.h - the explicit execution context.
 *
 * convnet keeps no global mutable state: the thread count and the random
 * number generator live here, in a struct the caller owns (stack or heap).
 * Every op takes a `cn_ctx *`; NULL means "one thread, default seed".
 *
 *     cn_ctx ctx;
 *     cn_ctx_init(&ctx);
 *     ctx.threads = 2;
 *     cn_rng_seed(&ctx, 42);
 */
#ifndef CONVNET_CONTEXT_H
#define CONVNET_CONTEXT_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cn_ctx {
    int threads;          /* worker threads for kernels, >= 1 */
    uint64_t rng[4];      /* xoshiro256** state; seed with cn_rng_seed */
} cn_ctx;

/* One thread, seed 0. */
CN_API void cn_ctx_init(cn_ctx *ctx);

CN_API void cn_rng_seed(cn_ctx *ctx, uint64_t seed);
/* Uniform 64-bit integers, uniform floats in [0,1), standard normals. */
CN_API uint64_t cn_rng_u64(cn_ctx *ctx);
CN_API double cn_rng_uniform(cn_ctx *ctx);
CN_API double cn_rng_normal(cn_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
