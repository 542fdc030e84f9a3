/* The execution context: thread count and a xoshiro256** generator. */
#include <math.h>

#include "internal.h"

void cn_ctx_init(cn_ctx *ctx)
{
    ctx->threads = 1;
    cn_rng_seed(ctx, 0);
}

int cn__threads(const cn_ctx *ctx) { return ctx && ctx->threads > 1 ? ctx->threads : 1; }

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void cn_rng_seed(cn_ctx *ctx, uint64_t seed)
{
    for (int i = 0; i < 4; i++) ctx->rng[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t cn_rng_u64(cn_ctx *ctx)
{
    uint64_t *s = ctx->rng;
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

double cn_rng_uniform(cn_ctx *ctx) { return (double)(cn_rng_u64(ctx) >> 11) * 0x1.0p-53; }

double cn_rng_normal(cn_ctx *ctx)
{
    /* Box-Muller; 1 - u keeps the log argument in (0, 1]. */
    double u = 1.0 - cn_rng_uniform(ctx), v = cn_rng_uniform(ctx);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}
