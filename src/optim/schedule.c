/* Learning-rate schedules as closed forms of the step number, so a resumed
 * run needs no scheduler state (formulas and defaults in convnet/optim.h).
 * The rates follow PyTorch 1.13's StepLR, CosineAnnealingLR and OneCycleLR;
 * every division is guarded so that any step and total give a finite rate. */
#include <math.h>
#include <string.h>

#include "convnet/optim.h"
#include "internal.h"

/* M_PI is XSI, not C11 or POSIX.1-2008 base. */
#define CN__PI 3.14159265358979323846

static const char *const sched_names[] = {"constant", "step", "cosine", "onecycle"};
_Static_assert(sizeof sched_names / sizeof sched_names[0] == CN_SCHED_TYPE_COUNT,
               "one name per schedule");

const char *cn_sched_type_name(cn_sched_type t)
{
    return (unsigned)t < CN_SCHED_TYPE_COUNT ? sched_names[t] : NULL;
}

cn_status cn_sched_type_parse(const char *name, cn_sched_type *out)
{
    for (int t = 0; t < CN_SCHED_TYPE_COUNT; t++)
        if (name && strcmp(name, sched_names[t]) == 0) {
            *out = (cn_sched_type)t;
            return CN_OK;
        }
    return cn__err(CN_ERR_INVALID_ARG,
                   "unknown lr schedule '%s' (constant, step, cosine, onecycle)",
                   name ? name : "(null)");
}

cn_lr_sched cn_lr_sched_default(cn_sched_type type, float base_lr)
{
    cn_lr_sched s;
    memset(&s, 0, sizeof s);
    s.type = type;
    s.base_lr = base_lr;
    s.steps_per_epoch = 1;
    /* Every 10 epochs: a 30-epoch run decays twice, as ResNet's 90 epochs
     * did at 30 and 60. */
    s.step_epochs = 10;
    s.gamma = 0.1f;
    s.pct_start = 0.3f;
    s.div_factor = 25.0f;
    s.final_div = 1e4f;
    return s;
}

static int finite_pos(float x) { return x > 0.0f && !isinf(x); }
static int finite_nonneg(float x) { return x >= 0.0f && !isinf(x); }

cn_status cn_lr_sched_check(const cn_lr_sched *s)
{
    if (!s) return cn__err(CN_ERR_INVALID_ARG, "lr schedule: NULL");
    if ((unsigned)s->type >= CN_SCHED_TYPE_COUNT)
        return cn__err(CN_ERR_INVALID_ARG,
                       "lr schedule: type=%d is not constant, step, cosine or onecycle",
                       (int)s->type);
    if (!finite_nonneg(s->base_lr))
        return cn__err(CN_ERR_INVALID_ARG, "lr schedule: base_lr=%g must be finite and >= 0",
                       s->base_lr);
    if (s->warmup_steps < 0)
        return cn__err(CN_ERR_INVALID_ARG, "lr schedule: warmup_steps=%lld must be >= 0",
                       (long long)s->warmup_steps);
    switch (s->type) {
    case CN_SCHED_STEP:
        if (s->steps_per_epoch < 1)
            return cn__err(CN_ERR_INVALID_ARG, "lr schedule: steps_per_epoch=%lld must be >= 1",
                           (long long)s->steps_per_epoch);
        if (s->step_epochs < 1)
            return cn__err(CN_ERR_INVALID_ARG, "lr schedule: step_epochs=%d must be >= 1",
                           s->step_epochs);
        if (!finite_pos(s->gamma))
            return cn__err(CN_ERR_INVALID_ARG, "lr schedule: gamma=%g must be finite and > 0",
                           s->gamma);
        break;
    case CN_SCHED_COSINE:
        if (!finite_nonneg(s->min_lr))
            return cn__err(CN_ERR_INVALID_ARG, "lr schedule: min_lr=%g must be finite and >= 0",
                           s->min_lr);
        break;
    case CN_SCHED_ONECYCLE:
        if (!(s->pct_start > 0.0f && s->pct_start <= 1.0f))
            return cn__err(CN_ERR_INVALID_ARG, "lr schedule: pct_start=%g must be in (0, 1]",
                           s->pct_start);
        if (!finite_pos(s->div_factor))
            return cn__err(CN_ERR_INVALID_ARG,
                           "lr schedule: div_factor=%g must be finite and > 0", s->div_factor);
        if (!finite_pos(s->final_div))
            return cn__err(CN_ERR_INVALID_ARG, "lr schedule: final_div=%g must be finite and > 0",
                           s->final_div);
        break;
    default: break;
    }
    return CN_OK;
}

/* PyTorch's _annealing_cos: from a at pct 0 to b at pct 1. */
static double anneal_cos(double a, double b, double pct)
{
    return b + (a - b) / 2.0 * (cos(CN__PI * pct) + 1.0);
}

/* OneCycleLR.get_lr with three_phase false: phase one ends at step
 * pct_start*total - 1 (a real number), phase two at total - 1, and a step
 * belongs to the first phase whose end it does not pass. */
static double onecycle(const cn_lr_sched *s, int64_t step, int64_t total)
{
    double peak = s->base_lr, initial = peak / s->div_factor, final = initial / s->final_div;
    if (total < 1) return final;
    if (step > total - 1) step = total - 1;
    double end1 = (double)s->pct_start * (double)total - 1.0, end2 = (double)(total - 1);
    double x = (double)step, a, b, lo, hi;
    if (x <= end1) {
        a = initial, b = peak, lo = 0.0, hi = end1;
    } else {
        a = peak, b = final, lo = end1, hi = end2;
    }
    /* PyTorch divides by zero for a phase of no length; its end is the
     * rate it means. */
    double pct = hi > lo ? (x - lo) / (hi - lo) : 1.0;
    return anneal_cos(a, b, pct);
}

float cn_lr_at(const cn_lr_sched *s, int64_t step, int64_t total_steps)
{
    if (step < 0) step = 0;
    double base = s->base_lr;
    if (s->type == CN_SCHED_ONECYCLE) return (float)onecycle(s, step, total_steps);

    int64_t w = s->warmup_steps > 0 ? s->warmup_steps : 0;
    if (step < w) return (float)(base * (double)(step + 1) / (double)w);
    /* The comparison first: total_steps - w could overflow for absurd totals. */
    int64_t t = step - w, len = total_steps > w ? total_steps - w : 0;
    switch (s->type) {
    case CN_SCHED_STEP: {
        int64_t spe = s->steps_per_epoch > 0 ? s->steps_per_epoch : 1;
        int64_t every = s->step_epochs > 0 ? s->step_epochs : 1;
        return (float)(base * pow((double)s->gamma, (double)(t / spe / every)));
    }
    case CN_SCHED_COSINE: {
        double lo = s->min_lr;
        if (t >= len) return (float)lo;
        return (float)(lo + (base - lo) * (1.0 + cos(CN__PI * (double)t / (double)len)) / 2.0);
    }
    default: return (float)base;
    }
}
