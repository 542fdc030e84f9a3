/* Optimizers over flat parameter buffers: SGD (momentum, Nesterov), Adam and
 * AdamW, written to reproduce PyTorch 1.13's single-tensor code operation
 * for operation (see convnet/optim.h for the formulas).
 *
 * Rounding follows PyTorch too: the per-step scalars are formed in double,
 * as Python does, then rounded once to float, as ATen does for float
 * tensors; each element expression keeps ATen's order of operations, e.g.
 * addcdiv's p + (value*m)/denom and addcmul's (value*g)*g. C11 mode
 * contracts nothing into FMAs, so the loops give the same bits every run.
 * The loops carry `omp simd` because -O2's cost model leaves them scalar;
 * Adam's sqrtf still stays scalar unless the library is compiled with
 * -fno-math-errno (an errno check per call is control flow GCC will not
 * vectorise).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convnet/optim.h"
#include "internal.h"

static const char *const type_names[] = {"sgd", "adam", "adamw"};
_Static_assert(sizeof type_names / sizeof type_names[0] == CN_OPTIM_TYPE_COUNT,
               "one name per optimizer");

const char *cn_optim_type_name(cn_optim_type t)
{
    return (unsigned)t < CN_OPTIM_TYPE_COUNT ? type_names[t] : NULL;
}

cn_status cn_optim_type_parse(const char *name, cn_optim_type *out)
{
    for (int t = 0; t < CN_OPTIM_TYPE_COUNT; t++)
        if (name && strcmp(name, type_names[t]) == 0) {
            *out = (cn_optim_type)t;
            return CN_OK;
        }
    return cn__err(CN_ERR_INVALID_ARG, "unknown optimizer '%s' (sgd, adam, adamw)",
                   name ? name : "(null)");
}

cn_optim_config cn_optim_config_default(cn_optim_type type)
{
    cn_optim_config c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    if (type == CN_OPTIM_SGD) {
        c.lr = 0.01f;
        c.momentum = 0.9f;
    } else {
        c.lr = 1e-3f;
        c.weight_decay = type == CN_OPTIM_ADAMW ? 0.01f : 0.0f;
    }
    return c;
}

/* `!(x >= lo)` rather than `x < lo` so that NaN is rejected too. */
static cn_status check_config(const cn_optim_config *c)
{
    if ((unsigned)c->type >= CN_OPTIM_TYPE_COUNT)
        return cn__err(CN_ERR_INVALID_ARG, "optim: type=%d is not sgd, adam or adamw",
                       (int)c->type);
    if (!(c->lr >= 0.0f) || isinf(c->lr))
        return cn__err(CN_ERR_INVALID_ARG, "optim: lr=%g must be finite and >= 0", c->lr);
    if (!(c->weight_decay >= 0.0f) || isinf(c->weight_decay))
        return cn__err(CN_ERR_INVALID_ARG, "optim: weight_decay=%g must be finite and >= 0",
                       c->weight_decay);
    if (c->type == CN_OPTIM_SGD) {
        if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
            return cn__err(CN_ERR_INVALID_ARG, "optim: momentum=%g must be in [0, 1)",
                           c->momentum);
        if (c->nesterov && c->momentum == 0.0f)
            return cn__err(CN_ERR_INVALID_ARG, "optim: nesterov needs momentum > 0 (momentum=0)");
        return CN_OK;
    }
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f))
        return cn__err(CN_ERR_INVALID_ARG, "optim: beta1=%g must be in [0, 1)", c->beta1);
    if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return cn__err(CN_ERR_INVALID_ARG, "optim: beta2=%g must be in [0, 1)", c->beta2);
    if (!(c->eps > 0.0f) || isinf(c->eps))
        return cn__err(CN_ERR_INVALID_ARG, "optim: eps=%g must be finite and > 0", c->eps);
    return CN_OK;
}

cn_status cn_optim_new(cn_optim **out, const cn_optim_config *cfg, size_t n)
{
    if (!out) return cn__err(CN_ERR_INVALID_ARG, "optim: out is NULL");
    *out = NULL;
    if (!cfg) return cn__err(CN_ERR_INVALID_ARG, "optim: cfg is NULL");
    cn_status s = check_config(cfg);
    if (s) return s;
    size_t bytes;
    s = cn_size_mul(n, sizeof(float), &bytes, "optim: moment bytes");
    if (s) return s;

    cn_optim *o = calloc(1, sizeof *o);
    if (!o) return cn__err(CN_ERR_NO_MEMORY, "optim: out of memory");
    o->cfg = *cfg;
    o->n = n;
    int need_m = cfg->type != CN_OPTIM_SGD || cfg->momentum > 0.0f;
    int need_v = cfg->type != CN_OPTIM_SGD;
    if (n && need_m) {
        if (!(o->m = cn_alloc(bytes))) goto oom;
        memset(o->m, 0, bytes);
    }
    if (n && need_v) {
        if (!(o->v = cn_alloc(bytes))) goto oom;
        memset(o->v, 0, bytes);
    }
    *out = o;
    return CN_OK;
oom:
    cn_optim_free(o);
    return cn__err(CN_ERR_NO_MEMORY, "optim: cannot allocate moments for %zu parameters", n);
}

void cn_optim_free(cn_optim *o)
{
    if (!o) return;
    cn_free(o->m);
    cn_free(o->v);
    free(o);
}

/* buf = mu*buf + g with g = grad + wd*p; mu is 0 on the first step, which
 * is PyTorch's `buf = clone(g)` without a branch in the loop. */
static void sgd_step(size_t n, float lr, float wd, float momentum, float mu, int nesterov,
                     float *restrict p, const float *restrict grad, float *restrict buf)
{
    if (!buf) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) p[i] -= lr * (grad[i] + wd * p[i]);
    } else if (!nesterov) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            buf[i] = mu * buf[i] + (grad[i] + wd * p[i]);
            p[i] -= lr * buf[i];
        }
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float g = grad[i] + wd * p[i];
            buf[i] = mu * buf[i] + g;
            p[i] -= lr * (g + momentum * buf[i]);
        }
    }
}

/* wd is Adam's L2 term (0 for AdamW, whose decay the caller applied).
 * Adding 0*p where PyTorch skips the add changes nothing for finite p. */
static void adam_step(size_t n, float wd, float b1, float c1, float b2, float c2, float step_size,
                      float bc2_sqrt, float eps, float *restrict p, const float *restrict grad,
                      float *restrict m, float *restrict v)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] + wd * p[i];
        m[i] = b1 * m[i] + c1 * g;
        v[i] = b2 * v[i] + c2 * g * g;
        p[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
}

void cn_optim_step(cn_optim *o, float lr, float *params, const float *grads)
{
    if (!o) return;
    const cn_optim_config *c = &o->cfg;
    size_t n = o->n;
    if (c->type == CN_OPTIM_SGD) {
        float mu = o->step == 0 ? 0.0f : c->momentum;
        sgd_step(n, lr, c->weight_decay, c->momentum, mu, c->nesterov, params, grads, o->m);
    } else {
        double t = (double)(o->step + 1);
        double b1 = c->beta1, b2 = c->beta2;
        double step_size = (double)lr / (1.0 - pow(b1, t));
        double bc2_sqrt = sqrt(1.0 - pow(b2, t));
        float wd = c->weight_decay;
        if (c->type == CN_OPTIM_ADAMW) {
            float keep = (float)(1.0 - (double)lr * c->weight_decay);
#pragma omp simd
            for (size_t i = 0; i < n; i++) params[i] *= keep;
            wd = 0.0f;
        }
        adam_step(n, wd, c->beta1, (float)(1.0 - b1), c->beta2, (float)(1.0 - b2),
                  (float)step_size, (float)bc2_sqrt, c->eps, params, grads, o->m, o->v);
    }
    o->step++;
}
