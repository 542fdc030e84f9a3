/* Optimizers and learning-rate schedules: PyTorch 1.13's update rules,
 * checked three ways - against the formulas evaluated in double here,
 * against numbers PyTorch printed (pasted below with the script that made
 * them), and by properties that must hold exactly (Adam vs AdamW, weight
 * decay as a gradient term). */
#include <math.h>
#include <string.h>

#include "convnet/optim.h"
#include "testlib.h"

/* Three steps on a 3-element parameter: p0, then gradient G[k] at step k. */
static const float P0[3] = {1.0f, -2.0f, 0.5f};
static const float G[3][3] = {{0.5f, -1.0f, 2.0f}, {-0.25f, 0.75f, 1.5f}, {1.0f, 0.125f, -0.5f}};

/* Runs the optimizer from P0 through G; out[k] = params after step k+1. */
static cn_status run3(const cn_optim_config *c, float out[3][3])
{
    cn_optim *o;
    cn_status s = cn_optim_new(&o, c, 3);
    if (s) return s;
    float p[3];
    memcpy(p, P0, sizeof p);
    for (int k = 0; k < 3; k++) {
        cn_optim_step(o, c->lr, p, G[k]);
        memcpy(out[k], p, sizeof p);
    }
    cn_optim_free(o);
    return CN_OK;
}

/* The formulas of optim.h, in double, one element at a time. */
static void ref_sgd(const cn_optim_config *c, double out[3][3])
{
    double lr = c->lr, mu = c->momentum, wd = c->weight_decay;
    for (int i = 0; i < 3; i++) {
        double p = P0[i], buf = 0;
        for (int k = 0; k < 3; k++) {
            double g = G[k][i] + wd * p;
            if (mu > 0) {
                buf = k == 0 ? g : mu * buf + g;
                g = c->nesterov ? g + mu * buf : buf;
            }
            p = p - lr * g;
            out[k][i] = p;
        }
    }
}

static void ref_adam(const cn_optim_config *c, double out[3][3])
{
    double lr = c->lr, wd = c->weight_decay, b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    int decoupled = c->type == CN_OPTIM_ADAMW;
    for (int i = 0; i < 3; i++) {
        double p = P0[i], m = 0, v = 0;
        for (int k = 0; k < 3; k++) {
            int t = k + 1;
            double g = G[k][i];
            if (decoupled) p = p * (1 - lr * wd);
            else g = g + wd * p;
            m = b1 * m + (1 - b1) * g;
            v = b2 * v + (1 - b2) * g * g;
            double bias1 = 1 - pow(b1, t), bias2 = 1 - pow(b2, t);
            double denom = sqrt(v) / sqrt(bias2) + eps;
            p = p - (lr / bias1) * m / denom;
            out[k][i] = p;
        }
    }
}

static cn_optim_config sgd_cfg(float momentum, float wd, int nesterov)
{
    cn_optim_config c = cn_optim_config_default(CN_OPTIM_SGD);
    c.lr = 0.1f, c.momentum = momentum, c.weight_decay = wd, c.nesterov = nesterov;
    return c;
}

static cn_optim_config adam_cfg(cn_optim_type type, float wd)
{
    cn_optim_config c = cn_optim_config_default(type);
    c.lr = 0.1f, c.weight_decay = wd;
    return c;
}

/* The configs of the PyTorch table below, in its order. */
static cn_optim_config case_cfg(int k)
{
    switch (k) {
    case 0: return sgd_cfg(0.0f, 0.0f, 0);
    case 1: return sgd_cfg(0.9f, 0.01f, 0);
    case 2: return sgd_cfg(0.9f, 0.01f, 1);
    case 3: return adam_cfg(CN_OPTIM_ADAM, 0.01f);
    default: return adam_cfg(CN_OPTIM_ADAMW, 0.1f);
    }
}
static const char *const case_names[5] = {"sgd", "sgd momentum 0.9 wd 0.01",
                                          "sgd nesterov momentum 0.9 wd 0.01",
                                          "adam wd 0.01", "adamw wd 0.1"};

static void first_three_steps_match_the_formulas_in_double(void)
{
    for (int k = 0; k < 5; k++) {
        cn_optim_config c = case_cfg(k);
        float got[3][3];
        double ref[3][3], err;
        CHECK_OK(run3(&c, got));
        if (c.type == CN_OPTIM_SGD) ref_sgd(&c, ref);
        else ref_adam(&c, ref);
        long bad = tl_mismatch(&got[0][0], &ref[0][0], 9, 1e-6, 1e-6, &err);
        CHECK(bad < 0, "%s: step %ld element %ld: %.9g vs %.9g (max err %g)", case_names[k],
              bad / 3 + 1, bad % 3, got[bad / 3][bad % 3], ref[bad / 3][bad % 3], err);
    }
}

/* Printed by PyTorch 1.13.0 (Debian's python3-torch) with:
 *
 *   import torch
 *   f32 = lambda x: torch.tensor(x, dtype=torch.float32).item()  # our configs hold floats
 *   G = [[0.5, -1.0, 2.0], [-0.25, 0.75, 1.5], [1.0, 0.125, -0.5]]
 *   def run(make):
 *       p = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
 *       o = make([p])
 *       for g in G:
 *           p.grad = torch.tensor(g)
 *           o.step()
 *           print('    {%s},' % ', '.join('%.9gf' % x for x in p.detach().tolist()))
 *   run(lambda ps: torch.optim.SGD(ps, lr=f32(0.1)))
 *   run(lambda ps: torch.optim.SGD(ps, lr=f32(0.1), momentum=f32(0.9), weight_decay=f32(0.01)))
 *   run(lambda ps: torch.optim.SGD(ps, lr=f32(0.1), momentum=f32(0.9), weight_decay=f32(0.01),
 *                                  nesterov=True))
 *   run(lambda ps: torch.optim.Adam(ps, lr=f32(0.1), weight_decay=f32(0.01),
 *                                   betas=(f32(0.9), f32(0.999)), eps=f32(1e-8)))
 *   run(lambda ps: torch.optim.AdamW(ps, lr=f32(0.1), weight_decay=f32(0.1),
 *                                    betas=(f32(0.9), f32(0.999)), eps=f32(1e-8)))
 */
static const float TORCH_STEPS[5][3][3] = {
    {{0.949999988f, -1.89999998f, 0.300000012f},
     {0.974999964f, -1.97500002f, 0.150000006f},
     {0.87499994f, -1.98750007f, 0.200000003f}},
    {{0.949000001f, -1.898f, 0.299499989f},
     {0.927151024f, -1.87930202f, -0.0312495288f},
     {0.806559801f, -1.87309456f, -0.278892845f}},
    {{0.903100014f, -1.80620003f, 0.119049974f},
     {0.907574117f, -1.86264825f, -0.328581244f},
     {0.698189199f, -1.8677882f, -0.500717878f}},
    {{0.899999976f, -1.89999998f, 0.400000006f},
     {0.871229291f, -1.88890743f, 0.301740944f},
     {0.804614246f, -1.88575029f, 0.239673898f}},
    {{0.889999986f, -1.88f, 0.395000011f},
     {0.854466319f, -1.8522675f, 0.292792499f},
     {0.780110478f, -1.83323598f, 0.227926612f}},
};

static void first_three_steps_match_pytorch_1_13(void)
{
    for (int k = 0; k < 5; k++) {
        cn_optim_config c = case_cfg(k);
        float got[3][3];
        double ref[9], err;
        CHECK_OK(run3(&c, got));
        tl_f2d(&TORCH_STEPS[k][0][0], ref, 9);
        /* Same operations in the same order, but PyTorch's AVX2 kernels fuse
         * a + alpha*b into one FMA (C11 mode here does not): an ulp or two. */
        long bad = tl_mismatch(&got[0][0], ref, 9, 3e-7, 3e-7, &err);
        CHECK(bad < 0, "%s: step %ld element %ld: %.9g vs torch %.9g", case_names[k], bad / 3 + 1,
              bad % 3, got[bad / 3][bad % 3], ref[bad]);
    }
}

static void sgd_momentum_buffer_is_the_gradient_after_the_first_step(void)
{
    cn_optim_config c = sgd_cfg(0.9f, 0.0f, 0);
    cn_optim *o;
    CHECK_OK(cn_optim_new(&o, &c, 3));
    float p[3];
    memcpy(p, P0, sizeof p);
    cn_optim_step(o, c.lr, p, G[0]);
    for (int i = 0; i < 3; i++) CHECK(o->m[i] == G[0][i], "buf[%d] = %g, not g", i, o->m[i]);
    CHECK(o->step == 1, "step %lld", (long long)o->step);
    cn_optim_free(o);
}

/* Nesterov's first step is g + momentum*buf with buf = g. */
static void sgd_nesterov_first_step_moves_by_lr_times_one_plus_momentum_times_g(void)
{
    cn_optim_config c = sgd_cfg(0.5f, 0.0f, 1);
    c.lr = 0.25f;
    cn_optim *o;
    CHECK_OK(cn_optim_new(&o, &c, 3));
    float p[3];
    memcpy(p, P0, sizeof p);
    cn_optim_step(o, c.lr, p, G[0]);
    /* All values are short binary fractions, so float is exact here. */
    for (int i = 0; i < 3; i++) {
        float want = P0[i] - 0.25f * 1.5f * G[0][i];
        CHECK(p[i] == want, "p[%d] = %.9g, want %.9g", i, p[i], want);
    }
    cn_optim_free(o);
}

/* SGD and Adam fold weight decay into the gradient: decaying with wd equals
 * stepping on grad + wd*p without decay, bit for bit. */
static void weight_decay_is_the_gradient_plus_wd_times_p_for_sgd_and_adam(void)
{
    cn_optim_config with[3] = {sgd_cfg(0.9f, 0.05f, 0), sgd_cfg(0.9f, 0.05f, 1),
                               adam_cfg(CN_OPTIM_ADAM, 0.05f)};
    for (int k = 0; k < 3; k++) {
        cn_optim_config without = with[k];
        without.weight_decay = 0.0f;
        cn_optim *a, *b;
        CHECK_OK(cn_optim_new(&a, &with[k], 3));
        CHECK_OK(cn_optim_new(&b, &without, 3));
        float pa[3], pb[3], g[3];
        memcpy(pa, P0, sizeof pa);
        memcpy(pb, P0, sizeof pb);
        for (int s = 0; s < 3; s++) {
            for (int i = 0; i < 3; i++) g[i] = G[s][i] + 0.05f * pb[i];
            cn_optim_step(a, 0.1f, pa, G[s]);
            cn_optim_step(b, 0.1f, pb, g);
            for (int i = 0; i < 3; i++)
                CHECK(pa[i] == pb[i], "config %d step %d: %.9g vs %.9g", k, s + 1, pa[i], pb[i]);
        }
        cn_optim_free(a);
        cn_optim_free(b);
    }
}

/* AdamW = scale p by (1 - lr*wd), then Adam without decay: bit for bit. */
static void adamw_is_adam_after_decoupled_decay(void)
{
    const float lr = 0.1f, wd = 0.1f;
    cn_optim_config cw = adam_cfg(CN_OPTIM_ADAMW, wd), ca = adam_cfg(CN_OPTIM_ADAM, 0.0f), cl2;
    cl2 = adam_cfg(CN_OPTIM_ADAM, wd);
    cn_optim *w, *a, *l2;
    CHECK_OK(cn_optim_new(&w, &cw, 3));
    CHECK_OK(cn_optim_new(&a, &ca, 3));
    CHECK_OK(cn_optim_new(&l2, &cl2, 3));
    float pw[3], pa[3], pl2[3];
    memcpy(pw, P0, sizeof pw);
    memcpy(pa, P0, sizeof pa);
    memcpy(pl2, P0, sizeof pl2);
    float keep = (float)(1.0 - (double)lr * wd);
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 3; i++) pa[i] *= keep;
        cn_optim_step(w, lr, pw, G[s]);
        cn_optim_step(a, lr, pa, G[s]);
        cn_optim_step(l2, lr, pl2, G[s]);
        for (int i = 0; i < 3; i++)
            CHECK(pw[i] == pa[i], "step %d p[%d]: adamw %.9g vs decay+adam %.9g", s + 1, i, pw[i],
                  pa[i]);
    }
    /* ...which is not Adam with L2 decay: there the decay term passes through
     * the division by sqrt(v), so the two must differ visibly. */
    CHECK(fabsf(pw[0] - pl2[0]) > 1e-3f, "adamw %.9g equals adam+L2 %.9g", pw[0], pl2[0]);
    cn_optim_free(w);
    cn_optim_free(a);
    cn_optim_free(l2);
}

static void invalid_configs_are_rejected_naming_field_and_value(void)
{
    struct {
        cn_optim_config c;
        const char *msg;
    } bad[12];
    int nb = 0;
    cn_optim_config c;
    c = sgd_cfg(1.5f, 0, 0), bad[nb].c = c, bad[nb++].msg = "momentum=1.5 must be in [0, 1)";
    c = sgd_cfg(1.0f, 0, 0), bad[nb].c = c, bad[nb++].msg = "momentum=1 ";
    c = sgd_cfg(-0.1f, 0, 0), bad[nb].c = c, bad[nb++].msg = "momentum=-0.1";
    c = sgd_cfg(0.0f, 0, 1), bad[nb].c = c, bad[nb++].msg = "nesterov needs momentum > 0";
    c = sgd_cfg(0.9f, -0.5f, 0), bad[nb].c = c, bad[nb++].msg = "weight_decay=-0.5";
    c = sgd_cfg(0.9f, 0, 0), c.lr = -1.0f, bad[nb].c = c, bad[nb++].msg = "lr=-1 ";
    c = sgd_cfg(0.9f, 0, 0), c.lr = NAN, bad[nb].c = c, bad[nb++].msg = "lr=nan";
    c = adam_cfg(CN_OPTIM_ADAM, 0), c.beta1 = 1.0f, bad[nb].c = c, bad[nb++].msg = "beta1=1 ";
    c = adam_cfg(CN_OPTIM_ADAMW, 0), c.beta2 = -0.5f, bad[nb].c = c, bad[nb++].msg = "beta2=-0.5";
    c = adam_cfg(CN_OPTIM_ADAM, 0), c.eps = 0.0f, bad[nb].c = c, bad[nb++].msg = "eps=0 ";
    c = adam_cfg(CN_OPTIM_ADAM, 0), c.eps = INFINITY, bad[nb].c = c, bad[nb++].msg = "eps=inf";
    c = sgd_cfg(0.9f, 0, 0), c.type = (cn_optim_type)7, bad[nb].c = c, bad[nb++].msg = "type=7";
    for (int k = 0; k < nb; k++) {
        cn_optim *o = (cn_optim *)1;
        cn_status s = cn_optim_new(&o, &bad[k].c, 3);
        CHECK(s == CN_ERR_INVALID_ARG, "case %d (%s): status %s", k, bad[k].msg,
              cn_status_str(s));
        CHECK(o == NULL, "case %d: *out not cleared", k);
        CHECK(strstr(cn_last_error(), bad[k].msg) != NULL, "case %d: message '%s' lacks '%s'", k,
              cn_last_error(), bad[k].msg);
        CHECK(strncmp(cn_last_error(), "optim: ", 7) == 0, "case %d: message '%s'", k,
              cn_last_error());
    }
}

/* Fields an optimizer does not use are not its business. */
static void unused_fields_are_not_validated(void)
{
    cn_optim_config c = sgd_cfg(0.9f, 0, 0);
    c.beta1 = 2.0f, c.eps = 0.0f;
    cn_optim *o;
    CHECK_OK(cn_optim_new(&o, &c, 3));
    cn_optim_free(o);
    c = adam_cfg(CN_OPTIM_ADAM, 0);
    c.momentum = 5.0f, c.nesterov = 1;
    CHECK_OK(cn_optim_new(&o, &c, 3));
    cn_optim_free(o);
}

static void moments_start_at_zero_and_only_needed_ones_exist(void)
{
    cn_optim_config cs = sgd_cfg(0.0f, 0, 0), cm = sgd_cfg(0.9f, 0, 0);
    cn_optim_config ca = adam_cfg(CN_OPTIM_ADAMW, 0.01f);
    cn_optim *s, *m, *a;
    CHECK_OK(cn_optim_new(&s, &cs, 1000));
    CHECK_OK(cn_optim_new(&m, &cm, 1000));
    CHECK_OK(cn_optim_new(&a, &ca, 1000));
    CHECK(s->m == NULL && s->v == NULL, "plain SGD holds moments");
    CHECK(m->m != NULL && m->v == NULL, "momentum SGD: m %p v %p", (void *)m->m, (void *)m->v);
    CHECK(a->m != NULL && a->v != NULL, "adamw lacks a moment");
    for (int i = 0; i < 1000; i++)
        CHECK(m->m[i] == 0.0f && a->m[i] == 0.0f && a->v[i] == 0.0f, "moment %d not zero", i);
    CHECK(s->step == 0 && a->n == 1000, "step %lld n %zu", (long long)s->step, a->n);
    cn_optim_free(s);
    cn_optim_free(m);
    cn_optim_free(a);
    cn_optim_free(NULL);
}

static void zero_parameters_are_allowed(void)
{
    for (int t = 0; t < CN_OPTIM_TYPE_COUNT; t++) {
        cn_optim_config c = cn_optim_config_default((cn_optim_type)t);
        cn_optim *o;
        CHECK_OK(cn_optim_new(&o, &c, 0));
        cn_optim_step(o, c.lr, NULL, NULL);
        CHECK(o->step == 1, "%s: step %lld", cn_optim_type_name((cn_optim_type)t),
              (long long)o->step);
        cn_optim_free(o);
    }
}

static void defaults_are_pytorchs(void)
{
    cn_optim_config s = cn_optim_config_default(CN_OPTIM_SGD);
    cn_optim_config a = cn_optim_config_default(CN_OPTIM_ADAM);
    cn_optim_config w = cn_optim_config_default(CN_OPTIM_ADAMW);
    CHECK(s.lr == 0.01f && s.momentum == 0.9f && !s.nesterov && s.weight_decay == 0.0f,
          "sgd defaults");
    CHECK(a.lr == 1e-3f && a.beta1 == 0.9f && a.beta2 == 0.999f && a.eps == 1e-8f &&
              a.weight_decay == 0.0f,
          "adam defaults");
    CHECK(w.lr == 1e-3f && w.weight_decay == 0.01f && w.beta2 == 0.999f, "adamw defaults");
    for (int t = 0; t < CN_OPTIM_TYPE_COUNT; t++) {
        cn_optim_config c = cn_optim_config_default((cn_optim_type)t);
        cn_optim *o;
        CHECK_OK(cn_optim_new(&o, &c, 1));
        cn_optim_free(o);
    }
}

static void type_names_round_trip_and_unknown_names_fail(void)
{
    for (int t = 0; t < CN_OPTIM_TYPE_COUNT; t++) {
        cn_optim_type back;
        CHECK_OK(cn_optim_type_parse(cn_optim_type_name((cn_optim_type)t), &back));
        CHECK((int)back == t, "optimizer %d", t);
    }
    for (int t = 0; t < CN_SCHED_TYPE_COUNT; t++) {
        cn_sched_type back;
        CHECK_OK(cn_sched_type_parse(cn_sched_type_name((cn_sched_type)t), &back));
        CHECK((int)back == t, "schedule %d", t);
    }
    CHECK(strcmp(cn_optim_type_name(CN_OPTIM_ADAMW), "adamw") == 0, "adamw name");
    CHECK(strcmp(cn_sched_type_name(CN_SCHED_ONECYCLE), "onecycle") == 0, "onecycle name");
    CHECK(cn_optim_type_name(CN_OPTIM_TYPE_COUNT) == NULL, "name past the end");
    cn_optim_type ot;
    cn_sched_type st;
    CHECK(cn_optim_type_parse("rmsprop", &ot) == CN_ERR_INVALID_ARG, "rmsprop parsed");
    CHECK(strstr(cn_last_error(), "rmsprop") != NULL, "message: %s", cn_last_error());
    CHECK(cn_optim_type_parse(NULL, &ot) == CN_ERR_INVALID_ARG, "NULL parsed");
    CHECK(cn_sched_type_parse("linear", &st) == CN_ERR_INVALID_ARG, "linear parsed");
    CHECK(strstr(cn_last_error(), "linear") != NULL, "message: %s", cn_last_error());
}

/* f(p) = sum (p - 3)^2, grad 2(p - 3), from p = 0..7. */
static void quadratic_minimum_is_reached_by_every_optimizer(void)
{
    for (int t = 0; t < CN_OPTIM_TYPE_COUNT; t++) {
        cn_optim_config c = cn_optim_config_default((cn_optim_type)t);
        c.lr = t == CN_OPTIM_SGD ? 0.05f : 0.2f;
        c.weight_decay = 0.0f; /* decay would move the minimum off 3 */
        /* Adam's steps are ~lr whatever the gradient, so lr anneals to 0. */
        cn_lr_sched sched = cn_lr_sched_default(CN_SCHED_COSINE, c.lr);
        const int64_t total = 500;
        cn_optim *o;
        CHECK_OK(cn_optim_new(&o, &c, 8));
        float p[8], g[8];
        for (int i = 0; i < 8; i++) p[i] = (float)i;
        for (int64_t s = 0; s < total; s++) {
            for (int i = 0; i < 8; i++) g[i] = 2.0f * (p[i] - 3.0f);
            cn_optim_step(o, cn_lr_at(&sched, s, total), p, g);
        }
        for (int i = 0; i < 8; i++)
            CHECK(fabsf(p[i] - 3.0f) < 1e-3f, "%s: p[%d] = %.9g after %lld steps",
                  cn_optim_type_name((cn_optim_type)t), i, p[i], (long long)total);
        cn_optim_free(o);
    }
}

/* ---- schedules ---- */

static int close_to(double got, double want, double rtol)
{
    return fabs(got - want) <= rtol * fabs(want) + 1e-12;
}

static void constant_schedule_is_base_lr_at_every_step(void)
{
    cn_lr_sched s = cn_lr_sched_default(CN_SCHED_CONSTANT, 0.05f);
    CHECK_OK(cn_lr_sched_check(&s));
    const int64_t steps[] = {-3, 0, 1, 99, 100, 1000000};
    for (int k = 0; k < 6; k++)
        CHECK(cn_lr_at(&s, steps[k], 100) == 0.05f, "step %lld: %g", (long long)steps[k],
              cn_lr_at(&s, steps[k], 100));
    CHECK(cn_lr_at(&s, 5, 0) == 0.05f, "a constant rate needs no total");
}

static void step_schedule_decays_by_gamma_at_epoch_boundaries(void)
{
    cn_lr_sched s = cn_lr_sched_default(CN_SCHED_STEP, 1.0f);
    CHECK(s.gamma == 0.1f && s.step_epochs == 10 && s.steps_per_epoch == 1, "defaults");
    s.steps_per_epoch = 5, s.step_epochs = 3, s.gamma = 0.5f;
    CHECK_OK(cn_lr_sched_check(&s));
    /* 15 steps per decay: epochs 0-2 at 1, 3-5 at 0.5, 6-8 at 0.25. */
    const struct {
        int64_t step;
        float lr;
    } want[] = {{0, 1.0f}, {14, 1.0f}, {15, 0.5f}, {29, 0.5f}, {30, 0.25f}, {44, 0.25f},
                {45, 0.125f}};
    for (int k = 0; k < 7; k++) {
        float got = cn_lr_at(&s, want[k].step, 60);
        CHECK(got == want[k].lr, "step %lld: %g, want %g", (long long)want[k].step, got,
              want[k].lr);
    }
    s.gamma = 0.1f;
    CHECK(close_to(cn_lr_at(&s, 30, 60), 0.01, 1e-6), "0.1^2: %g", cn_lr_at(&s, 30, 60));
}

/* CosineAnnealingLR(T_max=100, eta_min=0.001) on SGD(lr=0.1), printed by
 * PyTorch 1.13.0 with (lrs() is shared with the onecycle test below):
 *
 *   import torch
 *   def lrs(make, n):
 *       p = torch.zeros(1, requires_grad=True)
 *       o = torch.optim.SGD([p], lr=0.1)
 *       s = make(o); out = []
 *       for _ in range(n):
 *           out.append(o.param_groups[0]['lr']); o.step(); s.step()
 *       return out
 *   cos = lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=100,
 *                                                                  eta_min=0.001), 100)
 *   print(', '.join('{%d, %.9g}' % (i, cos[i]) for i in (0, 1, 25, 50, 75, 99)))
 */
static void cosine_runs_from_base_lr_to_min_lr_like_pytorch(void)
{
    cn_lr_sched s = cn_lr_sched_default(CN_SCHED_COSINE, 0.1f);
    s.min_lr = 0.001f;
    CHECK_OK(cn_lr_sched_check(&s));
    const struct {
        int64_t step;
        double lr;
    } torch[] = {{0, 0.1},          {1, 0.0999755747},  {25, 0.0855017857},
                 {50, 0.0505},      {75, 0.0154982143}, {99, 0.00102442526}};
    for (int k = 0; k < 6; k++) {
        float got = cn_lr_at(&s, torch[k].step, 100);
        /* PyTorch's recursive form drifts from the closed form by ~1e-16. */
        CHECK(close_to(got, torch[k].lr, 1e-6), "step %lld: %.9g vs torch %.9g",
              (long long)torch[k].step, got, torch[k].lr);
    }
    CHECK(cn_lr_at(&s, 0, 100) == 0.1f, "step 0 is exactly base_lr");
    float last = cn_lr_at(&s, 99, 100);
    CHECK(last > 0.001f && last < 0.00103f, "last step %.9g is just above min_lr", last);
    CHECK(cn_lr_at(&s, 100, 100) == 0.001f && cn_lr_at(&s, 5000, 100) == 0.001f,
          "past the run the rate stays at min_lr");
    for (int64_t k = 1; k < 100; k++)
        CHECK(cn_lr_at(&s, k, 100) <= cn_lr_at(&s, k - 1, 100), "rises at step %lld",
              (long long)k);
}

/* OneCycleLR(max_lr=0.1, total_steps=N, cycle_momentum=False), printed with
 * lrs() from the cosine test:
 *
 *   one = lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=100,
 *                                                           cycle_momentum=False), 100)
 *   print(', '.join('{%d, %.9g}' % (i, one[i])
 *                   for i in (0, 1, 10, 28, 29, 30, 31, 50, 98, 99)))
 *   one7 = lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=7,
 *                                                            cycle_momentum=False), 7)
 *   print(', '.join('%.9g' % x for x in one7))
 */
static void onecycle_rises_from_base_over_25_to_base_and_falls_to_base_over_25e4(void)
{
    cn_lr_sched s = cn_lr_sched_default(CN_SCHED_ONECYCLE, 0.1f);
    CHECK_OK(cn_lr_sched_check(&s));
    const struct {
        int64_t step;
        double lr;
    } torch[] = {{0, 0.004},           {1, 0.00428137806},  {10, 0.0295163948},
                 {28, 0.0997186219},   {29, 0.1},           {30, 0.0999496535},
                 {31, 0.0997987155},   {50, 0.0793893451},  {98, 5.07464715e-05},
                 {99, 4e-07}};
    for (int k = 0; k < 10; k++) {
        float got = cn_lr_at(&s, torch[k].step, 100);
        /* pct_start is 0.3f here and 0.3 in Python: ~1e-7 apart. */
        CHECK(close_to(got, torch[k].lr, 2e-6), "step %lld: %.9g vs torch %.9g",
              (long long)torch[k].step, got, torch[k].lr);
    }
    CHECK(close_to(cn_lr_at(&s, 0, 100), 0.1 / 25, 1e-7), "start %.9g", cn_lr_at(&s, 0, 100));
    CHECK(close_to(cn_lr_at(&s, 29, 100), 0.1, 1e-7), "peak %.9g at pct_start*total - 1",
          cn_lr_at(&s, 29, 100));
    CHECK(close_to(cn_lr_at(&s, 99, 100), 0.1 / 25 / 1e4, 1e-6), "end %.9g",
          cn_lr_at(&s, 99, 100));
    CHECK(cn_lr_at(&s, 99, 100) == cn_lr_at(&s, 1000, 100), "past the run it stays at the end");
    const double one7[7] = {0.004,        0.0980556627, 0.0919044376, 0.0672683836,
                            0.0357738776, 0.00992967919, 4e-07};
    for (int k = 0; k < 7; k++)
        CHECK(close_to(cn_lr_at(&s, k, 7), one7[k], 2e-6), "7-step run, step %d: %.9g vs %.9g",
              k, cn_lr_at(&s, k, 7), one7[k]);
    s.warmup_steps = 10;
    CHECK(close_to(cn_lr_at(&s, 0, 100), 0.004, 1e-7), "onecycle ignores warm-up: %g",
          cn_lr_at(&s, 0, 100));
}

static void warmup_is_linear_then_the_schedule_runs_on_the_remaining_steps(void)
{
    for (int t = CN_SCHED_CONSTANT; t <= CN_SCHED_COSINE; t++) {
        cn_lr_sched s = cn_lr_sched_default((cn_sched_type)t, 1.0f);
        s.steps_per_epoch = 2, s.step_epochs = 1, s.min_lr = 0.0f;
        cn_lr_sched plain = s;
        s.warmup_steps = 4;
        CHECK_OK(cn_lr_sched_check(&s));
        const float ramp[4] = {0.25f, 0.5f, 0.75f, 1.0f};
        for (int k = 0; k < 4; k++)
            CHECK(cn_lr_at(&s, k, 24) == ramp[k], "%s warm-up step %d: %g",
                  cn_sched_type_name((cn_sched_type)t), k, cn_lr_at(&s, k, 24));
        for (int64_t k = 4; k < 30; k++)
            CHECK(cn_lr_at(&s, k, 24) == cn_lr_at(&plain, k - 4, 20),
                  "%s step %lld: %g, want the 20-step schedule's step %lld, %g",
                  cn_sched_type_name((cn_sched_type)t), (long long)k, cn_lr_at(&s, k, 24),
                  (long long)(k - 4), cn_lr_at(&plain, k - 4, 20));
    }
}

/* Totals at or below the warm-up, 0, 1 and steps before 0 must still give
 * a finite rate in [0, base]: the lead may call before knowing the total. */
static void degenerate_runs_still_give_finite_rates(void)
{
    const int64_t totals[] = {-5, 0, 1, 2, 3};
    const int64_t steps[] = {-1, 0, 1, 2, 3, 10};
    for (int t = 0; t < CN_SCHED_TYPE_COUNT; t++)
        for (int w = 0; w <= 3; w += 3)
            for (int a = 0; a < 5; a++)
                for (int b = 0; b < 6; b++) {
                    cn_lr_sched s = cn_lr_sched_default((cn_sched_type)t, 0.5f);
                    s.warmup_steps = w;
                    float lr = cn_lr_at(&s, steps[b], totals[a]);
                    CHECK(isfinite(lr) && lr >= 0.0f && lr <= 0.5f,
                          "%s warmup %d total %lld step %lld: lr %g",
                          cn_sched_type_name((cn_sched_type)t), w, (long long)totals[a],
                          (long long)steps[b], lr);
                }
    cn_lr_sched s = cn_lr_sched_default(CN_SCHED_ONECYCLE, 0.5f);
    s.pct_start = 1.0f; /* no falling phase at all */
    CHECK(close_to(cn_lr_at(&s, 9, 10), 0.5, 1e-7), "pct_start 1 peaks at the end: %g",
          cn_lr_at(&s, 9, 10));
}

static void invalid_schedules_are_rejected_naming_field_and_value(void)
{
    struct {
        cn_sched_type type;
        const char *msg;
    } bad[] = {
        {CN_SCHED_CONSTANT, "base_lr=-1"},       {CN_SCHED_COSINE, "warmup_steps=-2"},
        {CN_SCHED_STEP, "steps_per_epoch=0"},    {CN_SCHED_STEP, "step_epochs=0"},
        {CN_SCHED_STEP, "gamma=0"},              {CN_SCHED_COSINE, "min_lr=-0.5"},
        {CN_SCHED_ONECYCLE, "pct_start=1.5"},    {CN_SCHED_ONECYCLE, "div_factor=0"},
        {CN_SCHED_ONECYCLE, "final_div=-1"},     {(cn_sched_type)9, "type=9"},
    };
    for (int k = 0; k < 10; k++) {
        cn_lr_sched s = cn_lr_sched_default(bad[k].type, 0.1f);
        switch (k) {
        case 0: s.base_lr = -1.0f; break;
        case 1: s.warmup_steps = -2; break;
        case 2: s.steps_per_epoch = 0; break;
        case 3: s.step_epochs = 0; break;
        case 4: s.gamma = 0.0f; break;
        case 5: s.min_lr = -0.5f; break;
        case 6: s.pct_start = 1.5f; break;
        case 7: s.div_factor = 0.0f; break;
        case 8: s.final_div = -1.0f; break;
        default: break;
        }
        CHECK(cn_lr_sched_check(&s) == CN_ERR_INVALID_ARG, "case %d (%s) accepted", k,
              bad[k].msg);
        CHECK(strstr(cn_last_error(), bad[k].msg) != NULL, "case %d: message '%s' lacks '%s'", k,
              cn_last_error(), bad[k].msg);
    }
    for (int t = 0; t < CN_SCHED_TYPE_COUNT; t++) {
        cn_lr_sched s = cn_lr_sched_default((cn_sched_type)t, 0.1f);
        CHECK_OK(cn_lr_sched_check(&s));
    }
}

int main(void)
{
    TL_RUN(first_three_steps_match_the_formulas_in_double);
    TL_RUN(first_three_steps_match_pytorch_1_13);
    TL_RUN(sgd_momentum_buffer_is_the_gradient_after_the_first_step);
    TL_RUN(sgd_nesterov_first_step_moves_by_lr_times_one_plus_momentum_times_g);
    TL_RUN(weight_decay_is_the_gradient_plus_wd_times_p_for_sgd_and_adam);
    TL_RUN(adamw_is_adam_after_decoupled_decay);
    TL_RUN(invalid_configs_are_rejected_naming_field_and_value);
    TL_RUN(unused_fields_are_not_validated);
    TL_RUN(moments_start_at_zero_and_only_needed_ones_exist);
    TL_RUN(zero_parameters_are_allowed);
    TL_RUN(defaults_are_pytorchs);
    TL_RUN(type_names_round_trip_and_unknown_names_fail);
    TL_RUN(quadratic_minimum_is_reached_by_every_optimizer);
    TL_RUN(constant_schedule_is_base_lr_at_every_step);
    TL_RUN(step_schedule_decays_by_gamma_at_epoch_boundaries);
    TL_RUN(cosine_runs_from_base_lr_to_min_lr_like_pytorch);
    TL_RUN(onecycle_rises_from_base_over_25_to_base_and_falls_to_base_over_25e4);
    TL_RUN(warmup_is_linear_then_the_schedule_runs_on_the_remaining_steps);
    TL_RUN(degenerate_runs_still_give_finite_rates);
    TL_RUN(invalid_schedules_are_rejected_naming_field_and_value);
    return tl_summary();
}
