/* convnet/optim.h - optimizers and learning-rate schedules over flat
 * parameter buffers.
 *
 *     cn_optim_config c = cn_optim_config_default(CN_OPTIM_ADAMW);
 *     c.lr = 1e-3f, c.weight_decay = 5e-4f;
 *     cn_lr_sched sched = cn_lr_sched_default(CN_SCHED_COSINE, c.lr);
 *     sched.warmup_steps = 500;
 *     cn_optim *o;
 *     if (cn_optim_new(&o, &c, model->n_params) != CN_OK ||
 *         cn_lr_sched_check(&sched) != CN_OK) puts(cn_last_error());
 *     for (int64_t step = 0; step < total_steps; step++) {
 *         ...                                           // fill model->grads
 *         float lr = cn_lr_at(&sched, step, total_steps);
 *         cn_optim_step(o, lr, model->params, model->grads);
 *     }
 *     cn_optim_free(o);
 *
 * Updates follow PyTorch 1.13's torch.optim (single-tensor path) operation
 * for operation, so hand-computed or PyTorch-computed steps match to float
 * rounding. With g = grad and t = o->step + 1:
 *
 *   SGD    g += wd*p;  if momentum: buf = (t == 1) ? g : momentum*buf + g
 *                                   g = nesterov ? g + momentum*buf : buf
 *          p -= lr*g                                  (dampening is 0)
 *   Adam   g += wd*p                                  (L2 folded into g)
 *          m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
 *          p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
 *   AdamW  p *= 1 - lr*wd                             (decoupled decay)
 *          then Adam's update with wd = 0
 *
 * The per-step scalars (bias corrections, step size) are computed in double;
 * the element loops run in float, single-threaded, so results are
 * deterministic. A step allocates nothing.
 */
#ifndef CONVNET_OPTIM_H
#define CONVNET_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cn_optim_type { CN_OPTIM_SGD = 0, CN_OPTIM_ADAM, CN_OPTIM_ADAMW, CN_OPTIM_TYPE_COUNT } cn_optim_type;

typedef struct cn_optim_config {
    cn_optim_type type;
    float lr;                 /* base learning rate (cn_lr_at scales it) */
    float momentum;           /* SGD: [0, 1); 0 = plain SGD */
    int nesterov;             /* SGD: nonzero for Nesterov; needs momentum > 0 */
    float weight_decay;       /* >= 0: L2 for SGD and Adam, decoupled for AdamW */
    float beta1, beta2, eps;  /* Adam(W): 0.9, 0.999, 1e-8 */
} cn_optim_config;

/* PyTorch's defaults for the type, with lr 0.01 and momentum 0.9 for SGD,
 * lr 1e-3 for Adam(W), weight decay 0 (AdamW: 0.01). Every field is filled
 * for every type (betas and eps too for SGD), so changing .type afterwards
 * leaves a valid config. */
CN_API cn_optim_config cn_optim_config_default(cn_optim_type type);
/* "sgd", "adam", "adamw"; NULL for a value out of range. */
CN_API const char *cn_optim_type_name(cn_optim_type t);
/* The inverse of cn_optim_type_name; CN_ERR_INVALID_ARG for anything else. */
CN_API cn_status cn_optim_type_parse(const char *name, cn_optim_type *out);

typedef struct cn_optim {
    cn_optim_config cfg;
    size_t n;            /* parameters */
    int64_t step;        /* steps taken (Adam's bias correction, SGD's first step) */
    float *m, *v;        /* [n] zeroed moments, owned: m is SGD's momentum buffer (NULL
                            when momentum is 0) or Adam's first moment; v is Adam's
                            second moment (NULL for SGD). Both NULL when n is 0. */
} cn_optim;

/* Validates the config - finite lr >= 0 and weight decay >= 0; for SGD
 * momentum in [0, 1) and nesterov only with momentum > 0; for Adam(W) betas
 * in [0, 1) and finite eps > 0 - and allocates zeroed moments for n
 * parameters (n = 0 is allowed). CN_ERR_INVALID_ARG names the field and its
 * value; *out is NULL on failure. The caller owns *out: cn_optim_free. */
CN_API cn_status cn_optim_new(cn_optim **out, const cn_optim_config *cfg, size_t n);
/* Frees the optimizer and its moments; NULL is a no-op. */
CN_API void cn_optim_free(cn_optim *o);
/* One update of params [n] from grads [n] at learning rate lr (the config's
 * lr is not used here: pass cn_lr_at's value, or cfg.lr). params and grads
 * must not overlap each other or the moments. */
CN_API void cn_optim_step(cn_optim *o, float lr, float *params, const float *grads);

/* Learning-rate schedules: cn_lr_at(s, step, total) for the 0-based step
 * of a run of total steps. A step below 0 counts as 0.
 *
 * Warm-up (constant, step and cosine; onecycle has its own ramp and ignores
 * it): for step < W = warmup_steps the rate is base_lr * (step+1)/W, so the
 * first step is not wasted at 0 and step W-1 reaches base_lr. The schedule
 * then runs on the remaining steps as if they were a run of its own:
 * s = step - W, of T = total - W steps.
 *
 *   constant  base_lr
 *   step      base_lr * gamma^floor(e / step_epochs), e = floor(s / steps_per_epoch)
 *             (PyTorch's StepLR stepped once an epoch; defaults gamma 0.1,
 *             step_epochs 10, steps_per_epoch 1 - set it to the batches per epoch)
 *   cosine    min_lr + (base_lr - min_lr) * (1 + cos(pi * s/T)) / 2
 *             (CosineAnnealingLR's closed form with T_max = T: base_lr at s = 0,
 *             just above min_lr at the last step; steps past the run stay at
 *             min_lr instead of rising again)
 *   onecycle  PyTorch's OneCycleLR with anneal_strategy "cos" and three_phase
 *             false, max_lr = base_lr: from initial = base_lr/div_factor up to
 *             base_lr over steps [0, pct_start*total - 1], then down to
 *             initial/final_div at step total-1; within a phase from a to b,
 *             lr = b + (a - b) * (1 + cos(pi * pct)) / 2 with pct the fraction
 *             of the phase done. Steps past the run stay at the final rate.
 *             Only the rate is scheduled (no momentum cycling).
 *
 * Computed in double, returned as float; defined (finite, no division by
 * zero) for any total, including total <= warmup_steps and total <= 0. */
typedef enum cn_sched_type {
    CN_SCHED_CONSTANT = 0,
    CN_SCHED_STEP,       /* decays by gamma every step_epochs epochs */
    CN_SCHED_COSINE,     /* cosine from base_lr down to min_lr over the run */
    CN_SCHED_ONECYCLE,   /* cosine up to base_lr over pct_start of the run, cosine down */
    CN_SCHED_TYPE_COUNT
} cn_sched_type;

typedef struct cn_lr_sched {
    cn_sched_type type;
    float base_lr;
    int64_t warmup_steps;     /* linear warm-up (constant/step/cosine): 0 */
    int64_t steps_per_epoch;  /* step: batches per epoch (1) */
    int step_epochs;          /* step: decay every this many epochs (10) */
    float gamma;              /* step: factor per decay (0.1) */
    float min_lr;             /* cosine: floor (0) */
    float pct_start;          /* onecycle: fraction of the run spent rising (0.3) */
    float div_factor;         /* onecycle: initial lr = base_lr/div_factor (25) */
    float final_div;          /* onecycle: final lr = initial/final_div (1e4) */
} cn_lr_sched;

/* The defaults shown above for every field, whatever the type. */
CN_API cn_lr_sched cn_lr_sched_default(cn_sched_type type, float base_lr);
/* "constant", "step", "cosine", "onecycle"; NULL for a value out of range. */
CN_API const char *cn_sched_type_name(cn_sched_type t);
/* The inverse of cn_sched_type_name; CN_ERR_INVALID_ARG for anything else. */
CN_API cn_status cn_sched_type_parse(const char *name, cn_sched_type *out);
/* CN_ERR_INVALID_ARG, naming the field and value, unless: the type is known,
 * base_lr is finite and >= 0, warmup_steps >= 0, and the fields the type
 * uses are sane (step: steps_per_epoch >= 1, step_epochs >= 1, finite
 * gamma > 0; cosine: finite min_lr >= 0; onecycle: pct_start in (0, 1],
 * finite div_factor > 0 and final_div > 0). cn_lr_at does not check. */
CN_API cn_status cn_lr_sched_check(const cn_lr_sched *s);
/* The learning rate for 0-based step `step` of a run of total_steps. */
CN_API float cn_lr_at(const cn_lr_sched *s, int64_t step, int64_t total_steps);

#ifdef __cplusplus
}
#endif
#endif
