/* convnet/optim.h - optimizers and learning-rate schedules over flat
 * parameter buffers.
 *
 *     cn_optim_config c = cn_optim_config_default(CN_OPTIM_ADAMW);
 *     c.lr = 1e-3f, c.weight_decay = 5e-4f;
 *     cn_optim *o;
 *     cn_optim_new(&o, &c, model->n_params);            // owns its moment buffers
 *     for (step...) {
 *         float lr = cn_lr_schedule(&sched, step, total_steps);
 *         cn_optim_step(o, lr, model->params, model->grads);
 *     }
 *     cn_optim_free(o);
 *
 * Updates follow PyTorch's torch.optim exactly (SGD with dampening 0,
 * Nesterov; Adam with L2 weight decay added to the gradient; AdamW with
 * decoupled decay lr*wd*p), so hand-computed or PyTorch-computed steps
 * match to float rounding.
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
    float lr;            /* base learning rate (schedules scale it) */
    float momentum;      /* SGD */
    int nesterov;        /* SGD; needs momentum > 0 */
    float weight_decay;
    float beta1, beta2, eps;  /* Adam(W): 0.9, 0.999, 1e-8 */
} cn_optim_config;

/* PyTorch's defaults for the type, with lr 0.01 for SGD and 1e-3 for Adam(W),
 * momentum 0.9 for SGD, weight decay 0 (AdamW: 0.01). */
CN_API cn_optim_config cn_optim_config_default(cn_optim_type type);
CN_API const char *cn_optim_type_name(cn_optim_type t);             /* "sgd", "adam", "adamw" */
CN_API cn_status cn_optim_type_parse(const char *name, cn_optim_type *out);

typedef struct cn_optim {
    cn_optim_config cfg;
    size_t n;            /* parameters */
    int64_t step;        /* steps taken (Adam's bias correction) */
    float *m, *v;        /* [n] moments: SGD's momentum buffer is m; v is Adam's */
} cn_optim;

/* Validates the config (lr >= 0, momentum in [0,1), betas in [0,1), eps > 0,
 * weight decay >= 0, nesterov needs momentum) and allocates zeroed moments.
 * The caller owns *out: cn_optim_free. */
CN_API cn_status cn_optim_new(cn_optim **out, const cn_optim_config *cfg, size_t n);
CN_API void cn_optim_free(cn_optim *o);
/* One update of params [n] from grads [n] at learning rate lr. */
CN_API void cn_optim_step(cn_optim *o, float lr, float *params, const float *grads);

typedef enum cn_sched_type {
    CN_SCHED_CONSTANT = 0,
    CN_SCHED_STEP,       /* lr * gamma^(floor(epoch / step_epochs)) */
    CN_SCHED_COSINE,     /* from lr down to min_lr over the run */
    CN_SCHED_ONECYCLE,   /* linear ramp up to lr over pct_start of the run, cosine down to lr/final_div */
    CN_SCHED_TYPE_COUNT
} cn_sched_type;

typedef struct cn_lr_sched {
    cn_sched_type type;
    float base_lr;
    int64_t warmup_steps;     /* linear warm-up from 0 (constant/step/cosine) */
    int64_t steps_per_epoch;  /* for the step schedule */
    int step_epochs;          /* step: decay every this many epochs (default 10... see .c) */
    float gamma;              /* step: factor (0.1) */
    float min_lr;             /* cosine: floor (0) */
    float pct_start;          /* onecycle: 0.3 */
    float div_factor;         /* onecycle: initial lr = base/div_factor (25) */
    float final_div;          /* onecycle: final lr = initial/final_div (1e4) */
} cn_lr_sched;

CN_API cn_lr_sched cn_lr_sched_default(cn_sched_type type, float base_lr);
CN_API const char *cn_sched_type_name(cn_sched_type t);   /* "constant", "step", "cosine", "onecycle" */
CN_API cn_status cn_sched_type_parse(const char *name, cn_sched_type *out);
/* The learning rate for 0-based step `step` of a run of total_steps. */
CN_API float cn_lr_at(const cn_lr_sched *s, int64_t step, int64_t total_steps);

#ifdef __cplusplus
}
#endif
#endif
