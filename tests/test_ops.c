/* Activations, linear, batch norm, dropout, softmax and cross-entropy: the
 * float ops against the double-precision references of src/kernels/ref,
 * every backward against central differences of those references, and
 * hand-computed values for the semantics that matter (PyTorch's batch norm
 * statistics, log 2, stability for huge logits, NaN propagation). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convnet/ops.h"
#include "kernels/ref/ops_ref.h"
#include "ops/batchnorm_internal.h"
#include "testlib.h"

/* The float backward against finite differences of the double forward. */
#define FD_ATOL 1e-5
#define FD_RTOL 1e-4
#define FD_H 1e-5

static const char *act_names[CN_ACT_COUNT] = {"relu", "leaky_relu", "tanh", "sigmoid"};

static float *fnew(size_t n) { return calloc(n + 1, sizeof(float)); }
static double *dnew(size_t n) { return calloc(n + 1, sizeof(double)); }

/* Compares got to ref; on mismatch reports `what` with the configuration. */
static int agree(const char *what, const float *got, const double *ref, size_t n, double atol,
                 double rtol, const char *cfg)
{
    double err;
    long bad = tl_mismatch(got, ref, n, atol, rtol, &err);
    if (bad >= 0)
        tl_fail(__FILE__, __LINE__, "%s differs at %ld: got %.9g want %.9g (max err %.3g) for %s",
                what, bad, got[bad], ref[bad], err, cfg);
    return bad < 0;
}

/* A scalar function of some double buffers, for central differences. */
typedef double (*loss_fn)(void *u);

/* g[i] = dL/dv[i] by central differences, v one of the buffers L reads. */
static void numeric_grad(loss_fn L, void *u, double *v, size_t n, double *g)
{
    for (size_t i = 0; i < n; i++) {
        const double keep = v[i];
        v[i] = keep + FD_H;
        const double lp = L(u);
        v[i] = keep - FD_H;
        const double lm = L(u);
        v[i] = keep;
        g[i] = (lp - lm) / (2 * FD_H);
    }
}

/* <r, y>: the loss whose gradient with respect to y is r. */
static double dotd(const double *r, const double *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += r[i] * y[i];
    return s;
}

static int all_nan(const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isnan(a[i])) return 0;
    return 1;
}

static int all_finite(const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) return 0;
    return 1;
}

/* ---- activations --------------------------------------------------------- */

typedef struct act_prob {
    cn_act a;
    double slope;
    size_t n;
    double *x, *r, *y;
} act_prob;

static double act_loss(void *u)
{
    act_prob *P = u;
    cn__act_ref_fwd(P->a, P->slope, P->n, P->x, P->y);
    return dotd(P->r, P->y, P->n);
}

static void relu_keeps_positives_zeroes_negatives_and_propagates_nan(void)
{
    const float x[6] = {2.5f, -1.0f, 0.0f, NAN, INFINITY, -INFINITY};
    float y[6];
    cn_act_fwd(NULL, CN_ACT_RELU, 0, 6, x, y);
    CHECK(y[0] == 2.5f && y[1] == 0.0f && y[2] == 0.0f, "relu(2.5,-1,0) = %g %g %g", y[0], y[1],
          y[2]);
    CHECK(isnan(y[3]), "relu(NaN) = %g, want NaN", y[3]);
    CHECK(y[4] == INFINITY && y[5] == 0.0f, "relu(+-inf) = %g %g", y[4], y[5]);
}

static void every_activation_matches_double_reference(void)
{
    for (int a = 0; a < CN_ACT_COUNT; a++) {
        const size_t n = 1000;
        const float slope = 0.1f;
        float *x = fnew(n), *y = fnew(n);
        double *xd = dnew(n), *yd = dnew(n);
        tl_fill(x, n, -12, 12);
        tl_f2d(x, xd, n);
        cn_act_fwd(NULL, (cn_act)a, slope, n, x, y);
        cn__act_ref_fwd((cn_act)a, slope, n, xd, yd);
        int ok = agree("forward", y, yd, n, 1e-7, 1e-6, act_names[a]);
        free(x), free(y), free(xd), free(yd);
        if (!ok) return;
    }
}

static void every_activation_backward_matches_central_differences(void)
{
    const double slopes[] = {0.01, 0.2, -0.3};
    for (int t = 0; t < 30 && tl_ok(); t++) {
        act_prob P = {(cn_act)(t % CN_ACT_COUNT), slopes[t % 3], (size_t)tl_randint(1, 64),
                      NULL, NULL, NULL};
        float *x = fnew(P.n), *y = fnew(P.n), *gy = fnew(P.n), *gx = fnew(P.n);
        double *num = dnew(P.n);
        P.x = dnew(P.n), P.r = dnew(P.n), P.y = dnew(P.n);
        /* Keep away from relu's kink at 0, where differences straddle it. */
        for (size_t i = 0; i < P.n; i++) {
            double v = tl_uniform(0.05, 4);
            x[i] = (float)(tl_randint(0, 1) ? v : -v);
        }
        tl_fill(gy, P.n, -1, 1);
        tl_f2d(x, P.x, P.n), tl_f2d(gy, P.r, P.n);
        cn_act_fwd(NULL, P.a, (float)P.slope, P.n, x, y);
        cn_act_bwd(NULL, P.a, (float)P.slope, P.n, x, y, gy, gx);
        numeric_grad(act_loss, &P, P.x, P.n, num);
        char cfg[96];
        snprintf(cfg, sizeof cfg, "%s slope=%g n=%zu", act_names[P.a], P.slope, P.n);
        agree("gx vs finite differences", gx, num, P.n, FD_ATOL, FD_RTOL, cfg);
        free(x), free(y), free(gy), free(gx), free(num), free(P.x), free(P.r), free(P.y);
    }
}

static void activations_propagate_nan_forward_and_backward(void)
{
    for (int a = 0; a < CN_ACT_COUNT; a++) {
        const float x[3] = {NAN, 1.0f, -1.0f}, gy[3] = {1.0f, 1.0f, 1.0f};
        float y[3], gx[3];
        cn_act_fwd(NULL, (cn_act)a, 0.1f, 3, x, y);
        cn_act_bwd(NULL, (cn_act)a, 0.1f, 3, x, y, gy, gx);
        CHECK(isnan(y[0]) && !isnan(y[1]) && !isnan(y[2]), "%s: y = %g %g %g", act_names[a],
              y[0], y[1], y[2]);
        CHECK(isnan(gx[0]) && !isnan(gx[1]) && !isnan(gx[2]), "%s: gx = %g %g %g",
              act_names[a], gx[0], gx[1], gx[2]);
    }
}

static void saturating_activations_stay_finite_for_huge_inputs(void)
{
    const float x[4] = {-1000.0f, 1000.0f, -INFINITY, INFINITY};
    float y[4];
    cn_act_fwd(NULL, CN_ACT_SIGMOID, 0, 4, x, y);
    CHECK(y[0] == 0.0f && y[1] == 1.0f && y[2] == 0.0f && y[3] == 1.0f,
          "sigmoid(-1000, 1000, -inf, inf) = %g %g %g %g", y[0], y[1], y[2], y[3]);
    cn_act_fwd(NULL, CN_ACT_TANH, 0, 4, x, y);
    CHECK(y[0] == -1.0f && y[1] == 1.0f && y[2] == -1.0f && y[3] == 1.0f,
          "tanh(-1000, 1000, -inf, inf) = %g %g %g %g", y[0], y[1], y[2], y[3]);
}

static void in_place_activations_backward_from_the_documented_buffer_only(void)
{
    /* relu, tanh, sigmoid read y only (x NULL); leaky relu with slope >= 0
     * can take the in-place output as its x (y NULL). */
    for (int a = 0; a < CN_ACT_COUNT; a++) {
        const size_t n = 257;
        float *x = fnew(n), *y = fnew(n), *buf = fnew(n), *gy = fnew(n), *g1 = fnew(n),
              *g2 = fnew(n);
        tl_fill(x, n, -3, 3), tl_fill(gy, n, -1, 1);
        memcpy(buf, x, n * sizeof *x);
        cn_act_fwd(NULL, (cn_act)a, 0.25f, n, x, y);
        cn_act_bwd(NULL, (cn_act)a, 0.25f, n, x, y, gy, g1);
        cn_act_fwd(NULL, (cn_act)a, 0.25f, n, buf, buf);
        if (a == CN_ACT_LEAKY_RELU)
            cn_act_bwd(NULL, (cn_act)a, 0.25f, n, buf, NULL, gy, g2);
        else
            cn_act_bwd(NULL, (cn_act)a, 0.25f, n, NULL, buf, gy, g2);
        /* gx may alias gy as well. */
        cn_act_bwd(NULL, (cn_act)a, 0.25f, n, x, y, gy, gy);
        int ok = !memcmp(y, buf, n * sizeof *y) && !memcmp(g1, g2, n * sizeof *g1) &&
                 !memcmp(g1, gy, n * sizeof *g1);
        free(x), free(y), free(buf), free(gy), free(g1), free(g2);
        CHECK(ok, "%s: in-place results differ from out-of-place ones", act_names[a]);
    }
}

static void activations_do_not_depend_on_thread_count(void)
{
    const size_t n = 100003;
    float *x = fnew(n), *gy = fnew(n), *y1 = fnew(n), *y4 = fnew(n), *g1 = fnew(n), *g4 = fnew(n);
    tl_fill(x, n, -5, 5), tl_fill(gy, n, -1, 1);
    cn_ctx c4;
    cn_ctx_init(&c4);
    c4.threads = 4;
    int ok = 1;
    for (int a = 0; a < CN_ACT_COUNT && ok; a++) {
        cn_act_fwd(NULL, (cn_act)a, 0.1f, n, x, y1);
        cn_act_fwd(&c4, (cn_act)a, 0.1f, n, x, y4);
        cn_act_bwd(NULL, (cn_act)a, 0.1f, n, x, y1, gy, g1);
        cn_act_bwd(&c4, (cn_act)a, 0.1f, n, x, y4, gy, g4);
        ok = !memcmp(y1, y4, n * sizeof *y1) && !memcmp(g1, g4, n * sizeof *g1);
        if (!ok) tl_fail(__FILE__, __LINE__, "%s: 4 threads differ from 1", act_names[a]);
    }
    free(x), free(gy), free(y1), free(y4), free(g1), free(g4);
}

/* ---- linear --------------------------------------------------------------- */

static void linear_matches_hand_computed_2x3x2_example(void)
{
    /* x [[1,2,3],[4,5,6]], w [[1,2],[3,4],[5,6]], b [0.5,-1]:
     * x w = [[22,28],[49,64]]. With gy = I: gx = w^T = [[1,3,5],[2,4,6]],
     * gw = x^T = [[1,4],[2,5],[3,6]], gb = [1,1]. */
    const float x[6] = {1, 2, 3, 4, 5, 6}, w[6] = {1, 2, 3, 4, 5, 6}, b[2] = {0.5f, -1};
    const float gy[4] = {1, 0, 0, 1};
    const float y_want[4] = {22.5f, 27, 49.5f, 63}, gx_want[6] = {1, 3, 5, 2, 4, 6},
                gw_want[6] = {1, 4, 2, 5, 3, 6};
    float y[4], gx[6], gw[6], gb[2];
    cn_linear_fwd(NULL, 2, 3, 2, x, w, b, y);
    for (int i = 0; i < 4; i++) CHECK(y[i] == y_want[i], "y[%d] = %g, want %g", i, y[i], y_want[i]);
    cn_linear_bwd(NULL, 2, 3, 2, x, w, gy, gx, gw, gb);
    for (int i = 0; i < 6; i++) {
        CHECK(gx[i] == gx_want[i], "gx[%d] = %g, want %g", i, gx[i], gx_want[i]);
        CHECK(gw[i] == gw_want[i], "gw[%d] = %g, want %g", i, gw[i], gw_want[i]);
    }
    CHECK(gb[0] == 1 && gb[1] == 1, "gb = %g %g, want 1 1", gb[0], gb[1]);
    cn_linear_fwd(NULL, 2, 3, 2, x, w, NULL, y);
    CHECK(y[0] == 22 && y[3] == 64, "without bias y = %g .. %g, want 22 .. 64", y[0], y[3]);
}

typedef struct lin_prob {
    int64_t N, IN, OUT;
    double *x, *w, *b, *r, *y;
} lin_prob;

static double lin_loss(void *u)
{
    lin_prob *P = u;
    cn__linear_ref_fwd(P->N, P->IN, P->OUT, P->x, P->w, P->b, P->y);
    return dotd(P->r, P->y, (size_t)(P->N * P->OUT));
}

static void linear_forward_and_backward_match_reference_and_central_differences(void)
{
    for (int t = 0; t < 40 && tl_ok(); t++) {
        lin_prob P = {tl_randint(1, 6), tl_randint(1, 12), tl_randint(1, 21), 0, 0, 0, 0, 0};
        const size_t nx = (size_t)(P.N * P.IN), nw = (size_t)(P.IN * P.OUT),
                     ny = (size_t)(P.N * P.OUT), nb = (size_t)P.OUT;
        float *x = fnew(nx), *w = fnew(nw), *b = fnew(nb), *y = fnew(ny), *gy = fnew(ny),
              *gx = fnew(nx), *gw = fnew(nw), *gb = fnew(nb);
        P.x = dnew(nx), P.w = dnew(nw), P.b = dnew(nb), P.r = dnew(ny), P.y = dnew(ny);
        double *num = dnew(nx + nw + nb);
        tl_fill(x, nx, -1, 1), tl_fill(w, nw, -1, 1), tl_fill(b, nb, -1, 1), tl_fill(gy, ny, -1, 1);
        tl_f2d(x, P.x, nx), tl_f2d(w, P.w, nw), tl_f2d(b, P.b, nb), tl_f2d(gy, P.r, ny);
        char cfg[96];
        snprintf(cfg, sizeof cfg, "N=%lld IN=%lld OUT=%lld", (long long)P.N, (long long)P.IN,
                 (long long)P.OUT);
        cn_linear_fwd(NULL, P.N, P.IN, P.OUT, x, w, b, y);
        cn_linear_bwd(NULL, P.N, P.IN, P.OUT, x, w, gy, gx, gw, gb);
        cn__linear_ref_fwd(P.N, P.IN, P.OUT, P.x, P.w, P.b, P.y);
        if (agree("forward", y, P.y, ny, 1e-5, 1e-5, cfg)) {
            numeric_grad(lin_loss, &P, P.x, nx, num);
            numeric_grad(lin_loss, &P, P.w, nw, num + nx);
            numeric_grad(lin_loss, &P, P.b, nb, num + nx + nw);
            if (agree("gx vs finite differences", gx, num, nx, FD_ATOL, FD_RTOL, cfg) &&
                agree("gw vs finite differences", gw, num + nx, nw, FD_ATOL, FD_RTOL, cfg))
                agree("gb vs finite differences", gb, num + nx + nw, nb, FD_ATOL, FD_RTOL, cfg);
        }
        float *f[] = {x, w, b, y, gy, gx, gw, gb};
        for (int i = 0; i < 8; i++) free(f[i]);
        free(P.x), free(P.w), free(P.b), free(P.r), free(P.y), free(num);
    }
}

static void linear_backward_computes_only_the_requested_gradients(void)
{
    const float x[6] = {1, 2, 3, 4, 5, 6}, w[6] = {1, 2, 3, 4, 5, 6}, gy[4] = {1, 0, 0, 1};
    float gb[2] = {0, 0}, gx[6];
    cn_linear_bwd(NULL, 2, 3, 2, x, w, gy, NULL, NULL, gb);
    CHECK(gb[0] == 1 && gb[1] == 1, "gb = %g %g", gb[0], gb[1]);
    cn_linear_bwd(NULL, 2, 3, 2, x, w, gy, gx, NULL, NULL);
    CHECK(gx[0] == 1 && gx[5] == 6, "gx = %g .. %g", gx[0], gx[5]);
}

static void linear_results_do_not_depend_on_thread_count(void)
{
    /* Large enough that both passes really split (N*IN*OUT >= 65536). */
    const int64_t N = 67, IN = 45, OUT = 37;
    const size_t nx = (size_t)(N * IN), nw = (size_t)(IN * OUT), ny = (size_t)(N * OUT);
    float *x = fnew(nx), *w = fnew(nw), *b = fnew(OUT), *gy = fnew(ny);
    float *o[2][4];
    for (int t = 0; t < 2; t++)
        o[t][0] = fnew(ny), o[t][1] = fnew(nx), o[t][2] = fnew(nw), o[t][3] = fnew(OUT);
    tl_fill(x, nx, -1, 1), tl_fill(w, nw, -1, 1), tl_fill(b, OUT, -1, 1), tl_fill(gy, ny, -1, 1);
    for (int t = 0; t < 2; t++) {
        cn_ctx c;
        cn_ctx_init(&c);
        c.threads = t ? 4 : 1;
        cn_linear_fwd(&c, N, IN, OUT, x, w, b, o[t][0]);
        cn_linear_bwd(&c, N, IN, OUT, x, w, gy, o[t][1], o[t][2], o[t][3]);
    }
    const size_t sz[4] = {ny, nx, nw, (size_t)OUT};
    const char *what[4] = {"y", "gx", "gw", "gb"};
    int bad = -1;
    for (int i = 0; i < 4; i++)
        if (bad < 0 && memcmp(o[0][i], o[1][i], sz[i] * sizeof(float))) bad = i;
    free(x), free(w), free(b), free(gy);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 4; i++) free(o[t][i]);
    CHECK(bad < 0, "%s with 4 threads differs from 1 thread", bad >= 0 ? what[bad] : "");
}

static void linear_propagates_nan_even_through_zero_inputs(void)
{
    /* x row 0 holds a NaN: all of y's row 0 is NaN, row 1 is not. w[1][0]
     * is NaN and x[1][1] = 0: 0 * NaN still makes y[1][0] NaN. */
    const float x[4] = {NAN, 1, 2, 0}, w[4] = {1, 2, NAN, 3}, b[2] = {0, 0};
    float y[4];
    cn_linear_fwd(NULL, 2, 2, 2, x, w, b, y);
    CHECK(isnan(y[0]) && isnan(y[1]), "row 0: %g %g, want NaN NaN", y[0], y[1]);
    CHECK(isnan(y[2]) && y[3] == 4, "row 1: %g %g, want NaN 4", y[2], y[3]);
}

/* |fl(sum) - sum| <= gamma_n * sum of |terms| for n roundings, gamma_n =
 * n u / (1 - n u), u = 2^-24: the classical bound for a float dot product
 * (an FMA rounds less often, never more). */
static double gamma_n(int64_t n) { return (double)n * 0x1p-24 / (1.0 - (double)n * 0x1p-24); }

/* First i where |got - ref| exceeds gamma_n(n) * mag[i] (plus the smallest
 * normal, for sums that cancel to 0), or -1. */
static long beyond_bound(const float *got, const double *ref, const double *mag, size_t len,
                         int64_t n)
{
    for (size_t i = 0; i < len; i++)
        if (!(fabs((double)got[i] - ref[i]) <= gamma_n(n) * mag[i] + 0x1p-126)) return (long)i;
    return -1;
}

static void linear_matches_double_reference_within_the_dot_product_bound(void)
{
    /* Sizes around the GEMM's register blocks (4/6/14 rows, 16/32
     * columns) and lenet's head (IN = 3136, OUT = 10). */
    static const int64_t Ns[] = {1, 2, 13, 14, 15, 29, 67, 128};
    static const int64_t INs[] = {1, 3, 16, 31, 33, 257, 3136};
    static const int64_t OUTs[] = {1, 5, 10, 16, 17, 32, 33, 70};
    for (int t = 0; t < 40 && tl_ok(); t++) {
        const int64_t N = Ns[tl_randint(0, 7)], IN = INs[tl_randint(0, 6)],
                      OUT = OUTs[tl_randint(0, 7)];
        const int bias = t % 4 != 3;
        const size_t nx = (size_t)(N * IN), nw = (size_t)(IN * OUT), ny = (size_t)(N * OUT);
        float *x = fnew(nx), *w = fnew(nw), *b = fnew(OUT), *gy = fnew(ny), *o[2][4];
        double *ref = dnew(nx + nw + ny + OUT), *mag = dnew(nx + nw + ny + OUT);
        tl_fill(x, nx, -1, 1), tl_fill(w, nw, -1, 1), tl_fill(b, OUT, -1, 1);
        tl_fill(gy, ny, -1, 1);
        for (int k = 0; k < 2; k++) {
            cn_ctx c;
            cn_ctx_init(&c);
            c.threads = k + 1;
            o[k][0] = fnew(ny), o[k][1] = fnew(nx), o[k][2] = fnew(nw), o[k][3] = fnew(OUT);
            cn_linear_fwd(&c, N, IN, OUT, x, w, bias ? b : NULL, o[k][0]);
            cn_linear_bwd(&c, N, IN, OUT, x, w, gy, o[k][1], o[k][2], o[k][3]);
        }
        /* ref and mag: y, gx, gw, gb one after the other. */
        double *ry = ref, *rgx = ry + ny, *rgw = rgx + nx, *rgb = rgw + nw;
        double *my = mag, *mgx = my + ny, *mgw = mgx + nx, *mgb = mgw + nw;
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < OUT; j++) {
                double s = bias ? b[j] : 0, m = fabs(s);
                for (int64_t i = 0; i < IN; i++)
                    s += (double)x[n * IN + i] * w[i * OUT + j],
                        m += fabs((double)x[n * IN + i] * w[i * OUT + j]);
                ry[n * OUT + j] = s, my[n * OUT + j] = m;
            }
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < IN; i++) {
                double s = 0, m = 0;
                for (int64_t j = 0; j < OUT; j++)
                    s += (double)gy[n * OUT + j] * w[i * OUT + j],
                        m += fabs((double)gy[n * OUT + j] * w[i * OUT + j]);
                rgx[n * IN + i] = s, mgx[n * IN + i] = m;
            }
        for (int64_t i = 0; i < IN; i++)
            for (int64_t j = 0; j < OUT; j++) {
                double s = 0, m = 0;
                for (int64_t n = 0; n < N; n++)
                    s += (double)x[n * IN + i] * gy[n * OUT + j],
                        m += fabs((double)x[n * IN + i] * gy[n * OUT + j]);
                rgw[i * OUT + j] = s, mgw[i * OUT + j] = m;
            }
        for (int64_t j = 0; j < OUT; j++) {
            double s = 0, m = 0;
            for (int64_t n = 0; n < N; n++) s += gy[n * OUT + j], m += fabs(gy[n * OUT + j]);
            rgb[j] = s, mgb[j] = m;
        }
        const char *what[4] = {"y", "gx", "gw", "gb"};
        const size_t len[4] = {ny, nx, nw, (size_t)OUT};
        const int64_t terms[4] = {IN + 1, OUT, N, N};
        const double *r[4] = {ry, rgx, rgw, rgb}, *m[4] = {my, mgx, mgw, mgb};
        for (int i = 0; i < 4 && tl_ok(); i++) {
            long bad = beyond_bound(o[0][i], r[i], m[i], len[i], terms[i]);
            if (bad >= 0)
                tl_fail(__FILE__, __LINE__,
                        "N=%lld IN=%lld OUT=%lld bias=%d: %s[%ld] = %.9g, want %.9g within %.3g",
                        (long long)N, (long long)IN, (long long)OUT, bias, what[i], bad,
                        o[0][i][bad], r[i][bad], gamma_n(terms[i]) * m[i][bad]);
            else if (memcmp(o[0][i], o[1][i], len[i] * sizeof(float)))
                tl_fail(__FILE__, __LINE__, "N=%lld IN=%lld OUT=%lld: %s, 2 threads differ from 1",
                        (long long)N, (long long)IN, (long long)OUT, what[i]);
        }
        free(x), free(w), free(b), free(gy), free(ref), free(mag);
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < 4; i++) free(o[k][i]);
    }
}

/* ---- batch norm ----------------------------------------------------------- */

static void batchnorm_training_matches_hand_computed_statistics(void)
{
    /* One channel, x = 1 2 3 4: mean 2.5, biased variance 1.25, unbiased
     * 5/3. From running (0, 1) with momentum 0.1: mean 0.25 and variance
     * 0.9 + 0.1 * 5/3. */
    const float x[4] = {1, 2, 3, 4}, gamma = 1, beta = 0;
    float y[4], rm = 0, rv = 1, sm, si;
    const cn_bn_params p = {1e-5f, 0.1f};
    CHECK_OK(cn_batchnorm_fwd(NULL, &p, 1, 4, 1, x, &gamma, &beta, &rm, &rv, &sm, &si, y));
    const double is = 1 / sqrt(1.25 + 1e-5);
    for (int i = 0; i < 4; i++)
        CHECK(fabs(y[i] - (x[i] - 2.5) * is) < 1e-6, "y[%d] = %.9g, want %.9g", i, y[i],
              (x[i] - 2.5) * is);
    CHECK(fabs(rm - 0.25) < 1e-7, "running_mean = %.9g, want 0.25", rm);
    CHECK(fabs(rv - (0.9 + 0.1 * 5.0 / 3.0)) < 1e-7, "running_var = %.9g, want %.9g", rv,
          0.9 + 0.1 * 5.0 / 3.0);
    CHECK(sm == 2.5f && fabs(si - is) < 1e-7, "save_mean %g save_invstd %.9g, want 2.5 %.9g", sm,
          si, is);
}

static void batchnorm_eval_uses_running_statistics_and_leaves_them_alone(void)
{
    const float x[4] = {1, 2, 3, 4}, gamma = 2, beta = 1;
    float y[4], rm = 0.25f, rv = 1.0666667f, sm = 0, si = 0;
    const float rm0 = rm, rv0 = rv;
    const cn_bn_params p = {1e-5f, 0.1f};
    CHECK_OK(cn_batchnorm_fwd(NULL, &p, 0, 4, 1, x, &gamma, &beta, &rm, &rv, &sm, &si, y));
    const double is = 1 / sqrt((double)rv0 + 1e-5);
    for (int i = 0; i < 4; i++) {
        const double want = 2 * (x[i] - 0.25) * is + 1;
        CHECK(fabs(y[i] - want) < 1e-6, "y[%d] = %.9g, want %.9g", i, y[i], want);
    }
    CHECK(rm == rm0 && rv == rv0, "running stats changed to %g %g", rm, rv);
    CHECK(sm == rm0 && fabs(si - is) < 1e-7, "save_mean %g save_invstd %.9g, want %g %.9g", sm,
          si, rm0, is);
}

static void batchnorm_matches_reference_in_both_modes(void)
{
    /* C = 300 crosses the library's 128-channel blocks. */
    for (int t = 0; t < 30 && tl_ok(); t++) {
        const int training = t % 2;
        const int64_t M = tl_randint(2, 40), C = t == 10 || t == 11 ? 300 : tl_randint(1, 20);
        const size_t n = (size_t)(M * C);
        const cn_bn_params p = {(float)tl_uniform(1e-5, 1e-2), (float)tl_uniform(0, 1)};
        float *x = fnew(n), *y = fnew(n), *g = fnew(C), *b = fnew(C), *rm = fnew(C), *rv = fnew(C),
              *sm = fnew(C), *si = fnew(C);
        double *xd = dnew(n), *yd = dnew(n), *gd = dnew(C), *bd = dnew(C), *rmd = dnew(C),
               *rvd = dnew(C);
        tl_fill(x, n, -3, 5), tl_fill(g, C, 0.5, 2), tl_fill(b, C, -1, 1);
        tl_fill(rm, C, -1, 1), tl_fill(rv, C, 0.5, 2);
        tl_f2d(x, xd, n), tl_f2d(g, gd, C), tl_f2d(b, bd, C), tl_f2d(rm, rmd, C),
            tl_f2d(rv, rvd, C);
        char cfg[128];
        snprintf(cfg, sizeof cfg, "%s M=%lld C=%lld eps=%g momentum=%g",
                 training ? "training" : "eval", (long long)M, (long long)C, (double)p.eps,
                 (double)p.momentum);
        cn_status s = cn_batchnorm_fwd(NULL, &p, training, M, C, x, g, b, rm, rv, sm, si, y);
        cn__batchnorm_ref_fwd(training, p.eps, p.momentum, M, C, xd, gd, bd, rmd, rvd, yd);
        if (s != CN_OK)
            tl_fail(__FILE__, __LINE__, "%s: %s", cfg, cn_last_error());
        else if (agree("y", y, yd, n, 1e-5, 1e-5, cfg) &&
                 agree("running_mean", rm, rmd, C, 1e-6, 1e-6, cfg))
            agree("running_var", rv, rvd, C, 1e-6, 1e-6, cfg);
        float *f[] = {x, y, g, b, rm, rv, sm, si};
        double *d[] = {xd, yd, gd, bd, rmd, rvd};
        for (int i = 0; i < 8; i++) free(f[i]);
        for (int i = 0; i < 6; i++) free(d[i]);
    }
}

static void batchnorm_keeps_float_precision_when_mean_dwarfs_std(void)
{
    /* x = 1000 + noise of standard deviation ~0.01: the output is ~N(0,1)
     * and must not inherit the float rounding of the mean (6e-5 / 0.01). */
    const int64_t M = 512, C = 3;
    float x[512 * 3], y[512 * 3];
    double xd[512 * 3], yd[512 * 3];
    for (int i = 0; i < M * C; i++) x[i] = (float)(1000 + 0.01 * cn_rng_normal(tl_rng()));
    tl_f2d(x, xd, (size_t)(M * C));
    CHECK_OK(cn_batchnorm_fwd(NULL, NULL, 1, M, C, x, NULL, NULL, NULL, NULL, NULL, NULL, y));
    cn__batchnorm_ref_fwd(1, 1e-5f, 0.1, M, C, xd, NULL, NULL, NULL, NULL, yd);
    agree("y", y, yd, (size_t)(M * C), 1e-5, 1e-5, "mean 1000, std 0.01");
}

typedef struct bn_prob {
    int training;
    double eps;
    int64_t M, C;
    double *x, *g, *b, *rm, *rv, *r, *y;
} bn_prob;

static double bn_loss(void *u)
{
    bn_prob *P = u;
    /* The running statistics are inputs here; training must not move them
     * between evaluations, so it gets none. */
    cn__batchnorm_ref_fwd(P->training, P->eps, 0.1, P->M, P->C, P->x, P->g, P->b,
                          P->training ? NULL : P->rm, P->training ? NULL : P->rv, P->y);
    return dotd(P->r, P->y, (size_t)(P->M * P->C));
}

/* The smallest biased variance over the channels of x [M,C]. */
static double min_channel_var(int64_t M, int64_t C, const float *x)
{
    double lo = INFINITY;
    for (int64_t c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int64_t m = 0; m < M; m++) s += x[m * C + c];
        for (int64_t m = 0; m < M; m++) ss += (x[m * C + c] - s / M) * (x[m * C + c] - s / M);
        lo = fmin(lo, ss / M);
    }
    return lo;
}

static void batchnorm_backward_matches_central_differences_in_both_modes(void)
{
    for (int t = 0; t < 40 && tl_ok(); t++) {
        bn_prob P = {t % 2, 1e-5, tl_randint(2, 12), tl_randint(1, 6), 0, 0, 0, 0, 0, 0, 0};
        const size_t n = (size_t)(P.M * P.C), C = (size_t)P.C;
        const cn_bn_params p = {(float)P.eps, 0.1f};
        float *x = fnew(n), *y = fnew(n), *gy = fnew(n), *gx = fnew(n), *g = fnew(C),
              *b = fnew(C), *rm = fnew(C), *rv = fnew(C), *sm = fnew(C), *si = fnew(C),
              *gg = fnew(C), *gb = fnew(C);
        P.x = dnew(n), P.y = dnew(n), P.r = dnew(n), P.g = dnew(C), P.b = dnew(C),
        P.rm = dnew(C), P.rv = dnew(C);
        double *num = dnew(n + 2 * C);
        /* A channel whose batch variance nears eps is ill-conditioned in
         * float (gx cancels by a factor invstd), so such draws are redone. */
        do
            tl_fill(x, n, -2, 2);
        while (min_channel_var(P.M, P.C, x) < 0.05);
        tl_fill(gy, n, -1, 1), tl_fill(g, C, 0.5, 2), tl_fill(b, C, -1, 1);
        tl_fill(rm, C, -1, 1), tl_fill(rv, C, 0.5, 2);
        tl_f2d(x, P.x, n), tl_f2d(gy, P.r, n), tl_f2d(g, P.g, C), tl_f2d(b, P.b, C);
        tl_f2d(rm, P.rm, C), tl_f2d(rv, P.rv, C);
        char cfg[96];
        snprintf(cfg, sizeof cfg, "%s M=%lld C=%lld", P.training ? "training" : "eval",
                 (long long)P.M, (long long)P.C);
        cn_status s = cn_batchnorm_fwd(NULL, &p, P.training, P.M, P.C, x, g, b, rm, rv, sm, si, y);
        if (s != CN_OK) {
            tl_fail(__FILE__, __LINE__, "%s: %s", cfg, cn_last_error());
        } else {
            cn_batchnorm_bwd(NULL, P.training, P.M, P.C, x, g, sm, si, gy, gx, gg, gb);
            numeric_grad(bn_loss, &P, P.x, n, num);
            numeric_grad(bn_loss, &P, P.g, C, num + n);
            numeric_grad(bn_loss, &P, P.b, C, num + n + C);
            if (agree("gx vs finite differences", gx, num, n, FD_ATOL, FD_RTOL, cfg) &&
                agree("ggamma vs finite differences", gg, num + n, C, FD_ATOL, FD_RTOL, cfg))
                agree("gbeta vs finite differences", gb, num + n + C, C, FD_ATOL, FD_RTOL, cfg);
        }
        float *f[] = {x, y, gy, gx, g, b, rm, rv, sm, si, gg, gb};
        for (int i = 0; i < 12; i++) free(f[i]);
        double *d[] = {P.x, P.y, P.r, P.g, P.b, P.rm, P.rv, num};
        for (int i = 0; i < 8; i++) free(d[i]);
    }
}

static void batchnorm_without_gamma_and_beta_equals_gamma_one_beta_zero(void)
{
    const int64_t M = 9, C = 5;
    float x[45], gy[45], y1[45], y2[45], gx1[45], gx2[45], ones[5], zeros[5] = {0};
    float sm[5], si[5], gg[5], gb[5];
    for (int c = 0; c < C; c++) ones[c] = 1;
    tl_fill(x, 45, -2, 2), tl_fill(gy, 45, -1, 1);
    CHECK_OK(cn_batchnorm_fwd(NULL, NULL, 1, M, C, x, ones, zeros, NULL, NULL, sm, si, y1));
    cn_batchnorm_bwd(NULL, 1, M, C, x, ones, sm, si, gy, gx1, gg, gb);
    CHECK_OK(cn_batchnorm_fwd(NULL, NULL, 1, M, C, x, NULL, NULL, NULL, NULL, sm, si, y2));
    cn_batchnorm_bwd(NULL, 1, M, C, x, NULL, sm, si, gy, gx2, NULL, NULL);
    CHECK(!memcmp(y1, y2, sizeof y1), "y differs");
    CHECK(!memcmp(gx1, gx2, sizeof gx1), "gx differs");
}

static void batchnorm_propagates_nan(void)
{
    /* Training: a NaN pixel poisons its channel's statistics, so the whole
     * channel (and its running statistics) turns NaN; other channels do
     * not. Evaluation: only that element. */
    const int64_t M = 4, C = 2;
    float x[8] = {1, 5, NAN, 6, 3, 7, 4, 8}, gy[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    float y[8], gx[8], rm[2] = {0, 0}, rv[2] = {1, 1}, sm[2], si[2];
    CHECK_OK(cn_batchnorm_fwd(NULL, NULL, 1, M, C, x, NULL, NULL, rm, rv, sm, si, y));
    for (int m = 0; m < M; m++)
        CHECK(isnan(y[m * C]) && isfinite(y[m * C + 1]), "training row %d: %g %g", m, y[m * C],
              y[m * C + 1]);
    CHECK(isnan(rm[0]) && isnan(rv[0]) && isfinite(rm[1]) && isfinite(rv[1]),
          "running stats %g %g %g %g", rm[0], rv[0], rm[1], rv[1]);
    cn_batchnorm_bwd(NULL, 1, M, C, x, NULL, sm, si, gy, gx, NULL, NULL);
    for (int m = 0; m < M; m++)
        CHECK(isnan(gx[m * C]) && isfinite(gx[m * C + 1]), "training gx row %d: %g %g", m,
              gx[m * C], gx[m * C + 1]);
    rm[0] = 0, rv[0] = 1;
    CHECK_OK(cn_batchnorm_fwd(NULL, NULL, 0, M, C, x, NULL, NULL, rm, rv, sm, si, y));
    for (int i = 0; i < 8; i++)
        CHECK(i == 2 ? isnan(y[i]) : isfinite(y[i]), "eval y[%d] = %g", i, y[i]);
}

/* cn_batchnorm_bwd_add_relu is cn_act_bwd's ReLU gradient (the residual's)
 * then cn_batchnorm_bwd_relu, bit for bit, in training and in evaluation,
 * with and without the residual's gradient, on 2 threads, with a NaN and
 * exact zeros in y, a channel count crossing the 128-channel blocks and
 * one summed in blocks of 64 and 16. */
static void batchnorm_bwd_add_relu_equals_relu_gradient_then_bwd_relu(void)
{
    static const int64_t shapes[][2] = {{4099, 19}, {300, 130}, {2000, 80}};
    cn_ctx c;
    cn_ctx_init(&c);
    c.threads = 2;
    for (int s = 0; s < 3 && tl_ok(); s++)
        for (int training = 0; training < 2 && tl_ok(); training++) {
            const int64_t M = shapes[s][0], C = shapes[s][1];
            const size_t n = (size_t)(M * C);
            float *x = fnew(n), *y = fnew(n), *r = fnew(n), *gy = fnew(n), *gr[2], *gx[2];
            float *g = fnew(C), *b = fnew(C), *rm = fnew(C), *rv = fnew(C), *sm = fnew(C),
                  *si = fnew(C), *gg[2], *gb[2];
            tl_fill(x, n, -2, 2), tl_fill(r, n, -1, 1), tl_fill(gy, n, -1, 1);
            tl_fill(g, C, 0.5, 1.5), tl_fill(b, C, -0.5, 0.5);
            for (int64_t i = 0; i < C; i++) rm[i] = 0.5f, rv[i] = 2.0f;
            CHECK_OK(cn_batchnorm_fwd_add_relu(&c, NULL, training, M, C, x, g, b, rm, rv, sm, si,
                                               r, y));
            y[7] = NAN;
            for (int k = 0; k < 2; k++)
                gr[k] = fnew(n), gx[k] = fnew(n), gg[k] = fnew(C), gb[k] = fnew(C);
            cn_act_bwd(&c, CN_ACT_RELU, 0.0f, n, NULL, y, gy, gr[0]);
            cn_batchnorm_bwd_relu(&c, training, M, C, x, g, sm, si, y, gy, gx[0], gg[0], gb[0]);
            cn_batchnorm_bwd_add_relu(&c, training, M, C, x, g, sm, si, y, gy, gr[1], gx[1], gg[1],
                                      gb[1]);
            CHECK(!memcmp(gr[0], gr[1], n * 4), "M=%lld C=%lld training=%d: gres differs",
                  (long long)M, (long long)C, training);
            CHECK(!memcmp(gx[0], gx[1], n * 4) && !memcmp(gg[0], gg[1], (size_t)C * 4) &&
                      !memcmp(gb[0], gb[1], (size_t)C * 4),
                  "M=%lld C=%lld training=%d: gx, ggamma or gbeta differs", (long long)M,
                  (long long)C, training);
            cn_batchnorm_bwd_add_relu(&c, training, M, C, x, g, sm, si, y, gy, NULL, gx[1], gg[1],
                                      gb[1]);
            CHECK(!memcmp(gx[0], gx[1], n * 4), "M=%lld C=%lld training=%d: gx differs without gres",
                  (long long)M, (long long)C, training);
            free(x), free(y), free(r), free(gy), free(g), free(b), free(rm), free(rv), free(sm),
                free(si);
            for (int k = 0; k < 2; k++) free(gr[k]), free(gx[k]), free(gg[k]), free(gb[k]);
        }
}

/* The autograd's batch norm + ReLU in training: the forward that also
 * returns its normalisation gives cn_batchnorm_fwd_relu's outputs, and the
 * backward that recomputes the ReLU's input from x and that normalisation
 * gives cn_batchnorm_bwd_relu's (which reads y), bit for bit, on 1 and 2
 * threads: with NaN and infinite inputs, channels whose ReLU input is
 * exactly 0 (constant columns with beta 0) or exactly at the threshold's
 * other side, a mean that dwarfs the deviation (its lo part matters),
 * channel counts across the 128-channel blocks, in blocks of 64 and 16, and
 * with tails; gamma and beta given or not. */
static void batchnorm_relu_backward_from_x_equals_the_one_from_y(void)
{
    static const int64_t shapes[][2] = {{4099, 19}, {300, 130}, {2000, 80}, {3, 1}, {517, 64}};
    for (int t = 1; t <= 2; t++)
        for (int s = 0; s < 5 && tl_ok(); s++)
            for (int affine = 0; affine < 2 && tl_ok(); affine++) {
                cn_ctx c;
                cn_ctx_init(&c);
                c.threads = t;
                const int64_t M = shapes[s][0], C = shapes[s][1];
                const size_t n = (size_t)(M * C);
                float *x = fnew(n), *y[2] = {fnew(n), fnew(n)}, *gy = fnew(n), *gx[2],
                      *norm = fnew(4 * C);
                float *g = fnew(C), *b = fnew(C), *rm = fnew(C), *rv = fnew(C), *sm[2], *si[2],
                      *gg[2], *gb[2];
                tl_fill(x, n, -2, 2), tl_fill(gy, n, -1, 1);
                tl_fill(g, C, 0.5, 1.5), tl_fill(b, C, -0.5, 0.5);
                for (int64_t i = 0; i < M; i++) {
                    x[i * C] = 3.0f; /* channel 0 constant: x - mean = 0 */
                    if (C > 2) x[i * C + 2] = 1000.0f + (float)(i % 7) * 0.001f;
                }
                b[0] = 0.0f;
                if (n > 40) x[11] = NAN, x[40] = INFINITY;
                for (int k = 0; k < 2; k++) {
                    for (int64_t i = 0; i < C; i++) rm[i] = 0.5f, rv[i] = 2.0f;
                    sm[k] = fnew(C), si[k] = fnew(C), gx[k] = fnew(n), gg[k] = fnew(C),
                    gb[k] = fnew(C);
                    const float *gam = affine ? g : NULL, *bet = affine ? b : NULL;
                    if (k == 0) {
                        CHECK_OK(cn_batchnorm_fwd_relu(&c, NULL, 1, M, C, x, gam, bet, rm, rv,
                                                       sm[0], si[0], y[0]));
                        cn_batchnorm_bwd_relu(&c, 1, M, C, x, gam, sm[0], si[0], y[0], gy, gx[0],
                                              gg[0], gb[0]);
                    } else {
                        CHECK_OK(cn__batchnorm_fwd_relu_norm(&c, NULL, 1, M, C, x, gam, bet, rm, rv,
                                                             sm[1], si[1], y[1], norm));
                        cn__batchnorm_bwd_relu_norm(&c, M, C, x, gam, sm[1], si[1], norm, gy, gx[1],
                                                    gg[1], gb[1]);
                    }
                }
                const char *what = !memcmp(y[0], y[1], n * 4) ? NULL : "y";
                if (!what && memcmp(sm[0], sm[1], (size_t)C * 4)) what = "save_mean";
                if (!what && memcmp(gx[0], gx[1], n * 4)) what = "gx";
                if (!what && memcmp(gg[0], gg[1], (size_t)C * 4)) what = "ggamma";
                if (!what && memcmp(gb[0], gb[1], (size_t)C * 4)) what = "gbeta";
                CHECK(!what, "M=%lld C=%lld affine=%d threads=%d: %s differs", (long long)M,
                      (long long)C, affine, t, what);
                free(x), free(gy), free(norm), free(g), free(b), free(rm), free(rv);
                for (int k = 0; k < 2; k++)
                    free(y[k]), free(sm[k]), free(si[k]), free(gx[k]), free(gg[k]), free(gb[k]);
            }
}

/* Outputs of 2 MiB and more are written with streaming stores where their
 * rows are whole 64-byte lines (AVX-512, C % 16 == 0, a 64-byte aligned
 * output), elsewhere with plain ones; both must give the same bits. Every
 * forward (plain, ReLU, residual + ReLU, keeping the normalisation) and
 * every training backward (plain, ReLU from y, ReLU from x, with the
 * residual's gradient), 2 threads, into an aligned buffer and into one a
 * float past an aligned address, one and several channel blocks, ReLU
 * inputs of -0. */
static void batchnorm_streamed_outputs_have_the_same_bits_as_cached_ones(void)
{
    static const int64_t shapes[][2] = {{32771, 16}, {4000, 144}};
    cn_ctx c;
    cn_ctx_init(&c);
    c.threads = 2;
    for (int s = 0; s < 2 && tl_ok(); s++) {
        const int64_t M = shapes[s][0], C = shapes[s][1];
        const size_t n = (size_t)(M * C);
        float *x = fnew(n), *r = fnew(n), *gy = fnew(n), *g = fnew(C), *b = fnew(C),
              *norm = fnew(4 * C), *out[2], *gres[2], *gg[2], *gb[2];
        float *rm = fnew(C), *rv = fnew(C), *sm = fnew(C), *si = fnew(C);
        tl_fill(x, n, -2, 2), tl_fill(r, n, -1, 1), tl_fill(gy, n, -1, 1);
        tl_fill(g, C, 0.5, 1.5), tl_fill(b, C, -0.5, 0.5);
        /* channel 0 constant, gamma < 0, beta -0: ReLU inputs of exactly -0 */
        for (int64_t i = 0; i < M; i++) x[i * C] = 3.0f;
        g[0] = -1.0f, b[0] = -0.0f;
        for (int k = 0; k < 2; k++)
            out[k] = cn_alloc((n + 16) * 4), gres[k] = fnew(n), gg[k] = fnew(C), gb[k] = fnew(C);
        /* k = 0 aligned, k = 1 one float past */
        float *o[2] = {out[0], out[1] + 1};
        const char *what = NULL;
        for (int v = 0; v < 8 && !what; v++) {
            /* a NaN where it stays one element's: in evaluation */
            x[5] = v == 1 ? NAN : 0.25f;
            for (int k = 0; k < 2; k++) {
                for (int64_t i = 0; i < C; i++) rm[i] = 0.5f, rv[i] = 2.0f;
                cn_status st = CN_OK;
                if (v == 0) st = cn_batchnorm_fwd(&c, NULL, 1, M, C, x, g, b, rm, rv, sm, si, o[k]);
                if (v == 1)
                    st = cn_batchnorm_fwd_relu(&c, NULL, 0, M, C, x, g, b, rm, rv, sm, si, o[k]);
                if (v == 2)
                    st = cn_batchnorm_fwd_add_relu(&c, NULL, 1, M, C, x, g, b, rm, rv, sm, si, r,
                                                   o[k]);
                if (v == 3)
                    st = cn__batchnorm_fwd_relu_norm(&c, NULL, 1, M, C, x, g, b, rm, rv, sm, si,
                                                     o[k], norm);
                if (v >= 4) /* y (in r) and the statistics of a training forward */
                    st = cn__batchnorm_fwd_relu_norm(&c, NULL, 1, M, C, x, g, b, rm, rv, sm, si, r,
                                                     norm);
                CHECK_OK(st);
                if (v == 4) cn_batchnorm_bwd(&c, 1, M, C, x, g, sm, si, gy, o[k], gg[k], gb[k]);
                if (v == 5)
                    cn_batchnorm_bwd_relu(&c, 1, M, C, x, g, sm, si, r, gy, o[k], gg[k], gb[k]);
                if (v == 6)
                    cn__batchnorm_bwd_relu_norm(&c, M, C, x, g, sm, si, norm, gy, o[k], gg[k],
                                                gb[k]);
                if (v == 7)
                    cn_batchnorm_bwd_add_relu(&c, 1, M, C, x, g, sm, si, r, gy, gres[k], o[k],
                                              gg[k], gb[k]);
            }
            if (memcmp(o[0], o[1], n * 4)) what = v < 4 ? "y" : "gx";
            if (v >= 4 &&
                (memcmp(gg[0], gg[1], (size_t)C * 4) || memcmp(gb[0], gb[1], (size_t)C * 4)))
                what = "ggamma or gbeta";
            if (v == 7 && memcmp(gres[0], gres[1], n * 4)) what = "gres";
            CHECK(!what, "M=%lld C=%lld variant %d: %s differs", (long long)M, (long long)C, v,
                  what);
        }
        free(x), free(r), free(gy), free(g), free(b), free(norm), free(rm), free(rv), free(sm),
            free(si);
        for (int k = 0; k < 2; k++) cn_free(out[k]), free(gres[k]), free(gg[k]), free(gb[k]);
    }
}

static void batchnorm_rejects_what_pytorch_rejects(void)
{
    const float x[2] = {1, 2};
    float y[2], rm = 0, rv = 1;
    cn_bn_params p = {1e-5f, 0.1f};
    CHECK(cn_batchnorm_fwd(NULL, &p, 1, 1, 2, x, NULL, NULL, &rm, &rv, NULL, NULL, y) ==
              CN_ERR_INVALID_ARG,
          "training with one value per channel accepted");
    CHECK(strstr(cn_last_error(), "M=1"), "message: %s", cn_last_error());
    CHECK(cn_batchnorm_fwd(NULL, &p, 0, 2, 1, x, NULL, NULL, NULL, NULL, NULL, NULL, y) ==
              CN_ERR_INVALID_ARG,
          "evaluation without running statistics accepted");
    p.eps = -1;
    CHECK(cn_batchnorm_fwd(NULL, &p, 1, 2, 1, x, NULL, NULL, &rm, &rv, NULL, NULL, y) ==
              CN_ERR_INVALID_ARG,
          "negative eps accepted");
    p.eps = 1e-5f, p.momentum = 1.5f;
    CHECK(cn_batchnorm_fwd(NULL, &p, 1, 2, 1, x, NULL, NULL, &rm, &rv, NULL, NULL, y) ==
              CN_ERR_INVALID_ARG,
          "momentum 1.5 accepted");
    CHECK(rm == 0 && rv == 1, "a rejected call moved the running stats to %g %g", rm, rv);
}

static void batchnorm_results_do_not_depend_on_thread_count(void)
{
    const int64_t M = 4099, C = 19;
    const size_t n = (size_t)(M * C);
    float *x = fnew(n), *gy = fnew(n), *o[2][2], g[19], b[19], st[2][6][19];
    tl_fill(x, n, -2, 3), tl_fill(gy, n, -1, 1), tl_fill(g, C, 0.5, 2), tl_fill(b, C, -1, 1);
    int ok = 1;
    for (int t = 0; t < 2; t++) {
        cn_ctx c;
        cn_ctx_init(&c);
        c.threads = t ? 4 : 1;
        o[t][0] = fnew(n), o[t][1] = fnew(n);
        for (int i = 0; i < C; i++) st[t][0][i] = 0, st[t][1][i] = 1;
        ok &= cn_batchnorm_fwd(&c, NULL, 1, M, C, x, g, b, st[t][0], st[t][1], st[t][2],
                               st[t][3], o[t][0]) == CN_OK;
        cn_batchnorm_bwd(&c, 1, M, C, x, g, st[t][2], st[t][3], gy, o[t][1], st[t][4], st[t][5]);
    }
    ok = ok && !memcmp(o[0][0], o[1][0], n * sizeof(float)) &&
         !memcmp(o[0][1], o[1][1], n * sizeof(float)) && !memcmp(st[0], st[1], sizeof st[0]);
    free(x), free(gy);
    for (int t = 0; t < 2; t++) free(o[t][0]), free(o[t][1]);
    CHECK(ok, "4 threads differ from 1 thread");
}

/* Runs forward and backward of one batch norm problem on `threads` threads;
 * out holds y, gx, then running mean/var, save mean/invstd, ggamma, gbeta. */
static void bn_run(int threads, int training, int64_t M, int64_t C, const float *x, const float *gy,
                   const float *g, const float *b, float *out)
{
    cn_ctx c;
    cn_ctx_init(&c);
    c.threads = threads;
    const size_t n = (size_t)(M * C);
    float *y = out, *gx = y + n, *rm = gx + n, *rv = rm + C, *sm = rv + C, *si = sm + C,
          *gg = si + C, *gb = gg + C;
    for (int64_t i = 0; i < C; i++) rm[i] = 0.5f, rv[i] = 2.0f;
    if (cn_batchnorm_fwd(&c, NULL, training, M, C, x, g, b, rm, rv, sm, si, y) != CN_OK)
        tl_fail(__FILE__, __LINE__, "M=%lld C=%lld: %s", (long long)M, (long long)C,
                cn_last_error());
    cn_batchnorm_bwd(&c, training, M, C, x, g, sm, si, gy, gx, gg, gb);
}

static void batchnorm_is_bit_identical_for_1_2_and_3_threads_whatever_the_row_split(void)
{
    /* Row counts that 16 parts do not divide (and fewer rows than parts),
     * channel counts with and without a remainder below 16, one crossing
     * the 128-channel blocks, one summed in blocks of 64 and 16; large
     * enough that the parallel paths run. */
    static const int64_t shapes[][2] = {{32855, 19}, {4103, 48}, {2001, 300},
                                        {7, 5},      {150, 333}, {4103, 80}};
    for (int s = 0; s < 6 && tl_ok(); s++)
        for (int training = 0; training < 2 && tl_ok(); training++) {
            const int64_t M = shapes[s][0], C = shapes[s][1];
            const size_t n = (size_t)(M * C), nout = 2 * n + 6 * (size_t)C;
            float *x = fnew(n), *gy = fnew(n), *g = fnew(C), *b = fnew(C), *o[3];
            tl_fill(x, n, -2, 3), tl_fill(gy, n, -1, 1), tl_fill(g, C, 0.5, 2);
            tl_fill(b, C, -1, 1);
            for (int t = 0; t < 3; t++) {
                o[t] = fnew(nout);
                bn_run(t + 1, training, M, C, x, gy, g, b, o[t]);
            }
            for (int t = 1; t < 3; t++)
                if (memcmp(o[0], o[t], nout * sizeof(float)))
                    tl_fail(__FILE__, __LINE__, "%s M=%lld C=%lld: %d threads differ from 1",
                            training ? "training" : "eval", (long long)M, (long long)C, t + 1);
            free(x), free(gy), free(g), free(b);
            for (int t = 0; t < 3; t++) free(o[t]);
        }
}

static void batchnorm_matches_reference_on_large_batches_whose_mean_dwarfs_their_spread(void)
{
    /* Means 1e5 to 4e5 times the standard deviation (where E[x^2] - E[x]^2
     * would lose the variance's leading digits even in double), an outlier
     * of 30 standard deviations in the first row, and enough rows for many
     * parts, chunks and register blocks. */
    for (int t = 0; t < 8 && tl_ok(); t++) {
        const int64_t M = tl_randint(1000, 40000), C = (int64_t[]){3, 16, 17, 40}[t % 4];
        const size_t n = (size_t)(M * C);
        const double mu = t < 4 ? (t % 2 ? 1 : -1) * tl_uniform(2000, 4000) : tl_uniform(-3, 3),
                     sd = t < 4 ? tl_uniform(0.01, 0.02) : tl_uniform(0.5, 2);
        float *x = fnew(n), *y = fnew(n), *rm = fnew(C), *rv = fnew(C);
        double *xd = dnew(n), *yd = dnew(n), *rmd = dnew(C), *rvd = dnew(C);
        for (size_t i = 0; i < n; i++) x[i] = (float)(mu + sd * cn_rng_normal(tl_rng()));
        for (int64_t c = 0; c < C; c++) x[c] = (float)(mu + (c % 2 ? 30 : -30) * sd);
        tl_fill(rm, C, -1, 1), tl_fill(rv, C, 0.5, 2);
        tl_f2d(x, xd, n), tl_f2d(rm, rmd, C), tl_f2d(rv, rvd, C);
        char cfg[128];
        snprintf(cfg, sizeof cfg, "M=%lld C=%lld mean %g std %g", (long long)M, (long long)C, mu,
                 sd);
        CHECK_OK(cn_batchnorm_fwd(NULL, NULL, 1, M, C, x, NULL, NULL, rm, rv, NULL, NULL, y));
        cn__batchnorm_ref_fwd(1, 1e-5f, 0.1, M, C, xd, NULL, NULL, rmd, rvd, yd);
        if (agree("y", y, yd, n, 1e-5, 1e-5, cfg) &&
            agree("running_mean", rm, rmd, C, 1e-6, 1e-6, cfg))
            agree("running_var", rv, rvd, C, 1e-6, 1e-6, cfg);
        free(x), free(y), free(rm), free(rv), free(xd), free(yd), free(rmd), free(rvd);
    }
}

static void batchnorm_backward_matches_closed_form_on_large_batches(void)
{
    /* gx = gamma * invstd * (gy - mean(gy) - xhat * mean(gy * xhat)),
     * ggamma = sum gy * xhat, gbeta = sum gy, all in double here; the sums
     * run over many parts, and over blocks of 64 and 16 channels. */
    for (int t = 0; t < 8 && tl_ok(); t++) {
        const int64_t M = tl_randint(1000, 30000), C = (int64_t[]){5, 16, 33, 80}[t % 4];
        const size_t n = (size_t)(M * C);
        float *x = fnew(n), *gy = fnew(n), *y = fnew(n), *gx = fnew(n), *g = fnew(C), *sm = fnew(C),
              *si = fnew(C), *gg = fnew(C), *gb = fnew(C);
        double *gxd = dnew(n), *ggd = dnew(C), *gbd = dnew(C);
        tl_fill(x, n, -2, 3), tl_fill(gy, n, -1, 1), tl_fill(g, C, 0.5, 2);
        CHECK_OK(cn_batchnorm_fwd(NULL, NULL, 1, M, C, x, g, NULL, NULL, NULL, sm, si, y));
        cn_batchnorm_bwd(NULL, 1, M, C, x, g, sm, si, gy, gx, gg, gb);
        for (int64_t c = 0; c < C; c++) {
            double s = 0, ss = 0, sg = 0, sgx = 0;
            for (int64_t m = 0; m < M; m++) s += x[m * C + c];
            const double mean = s / M;
            for (int64_t m = 0; m < M; m++) ss += (x[m * C + c] - mean) * (x[m * C + c] - mean);
            const double is = 1 / sqrt(ss / M + 1e-5);
            for (int64_t m = 0; m < M; m++)
                sg += gy[m * C + c], sgx += gy[m * C + c] * (x[m * C + c] - mean) * is;
            for (int64_t m = 0; m < M; m++)
                gxd[m * C + c] =
                    g[c] * is * (gy[m * C + c] - sg / M - (x[m * C + c] - mean) * is * sgx / M);
            ggd[c] = sgx, gbd[c] = sg;
        }
        char cfg[64];
        snprintf(cfg, sizeof cfg, "M=%lld C=%lld", (long long)M, (long long)C);
        if (agree("gx", gx, gxd, n, 1e-5, 1e-5, cfg) && agree("gbeta", gb, gbd, C, 1e-6, 1e-6, cfg))
            agree("ggamma", gg, ggd, C, 1e-5, 1e-5, cfg);
        float *f[] = {x, gy, y, gx, g, sm, si, gg, gb};
        for (int i = 0; i < 9; i++) free(f[i]);
        free(gxd), free(ggd), free(gbd);
    }
}

static void batchnorm_infinite_value_gives_infinite_mean_and_nan_variance_in_any_row(void)
{
    /* As the plain sums give: mean = inf, sum (x - inf)^2 = NaN, whether
     * the inf sits in the first chunk of rows, a later chunk of the first
     * part or a later part. Channel 1 stays finite. */
    static const int64_t rows[] = {0, 300, 5000};
    const int64_t M = 8192, C = 64;
    float *x = fnew((size_t)(M * C)), *y = fnew((size_t)(M * C)), rm[64], rv[64];
    for (int i = 0; i < 3 && tl_ok(); i++) {
        tl_fill(x, (size_t)(M * C), -1, 1);
        for (int c = 0; c < C; c++) rm[c] = 0, rv[c] = 1;
        x[rows[i] * C] = INFINITY;
        if (cn_batchnorm_fwd(NULL, NULL, 1, M, C, x, NULL, NULL, rm, rv, NULL, NULL, y) != CN_OK)
            tl_fail(__FILE__, __LINE__, "%s", cn_last_error());
        else if (!(rm[0] == INFINITY && isnan(rv[0]) && isfinite(rm[1]) && isfinite(rv[1])))
            tl_fail(__FILE__, __LINE__, "inf in row %lld: running stats %g %g %g %g",
                    (long long)rows[i], rm[0], rv[0], rm[1], rv[1]);
    }
    free(x), free(y);
}

/* ---- dropout -------------------------------------------------------------- */

static void dropout_with_p_zero_is_identity(void)
{
    float x[100], y[100];
    uint8_t mask[100];
    tl_fill(x, 100, -5, 5);
    cn_ctx c;
    cn_ctx_init(&c);
    cn_dropout_fwd(&c, 0.0f, 100, x, mask, y);
    CHECK(!memcmp(x, y, sizeof x), "p = 0 changed x");
    for (int i = 0; i < 100; i++) CHECK(mask[i] == 1, "mask[%d] = %d", i, mask[i]);
}

static void dropout_keeps_one_minus_p_and_scales_kept_values(void)
{
    const size_t n = 100000;
    const float p = 0.3f;
    float *x = fnew(n), *y = fnew(n);
    uint8_t *mask = malloc(n);
    tl_fill(x, n, 0.5, 2);
    cn_ctx c;
    cn_ctx_init(&c);
    cn_rng_seed(&c, 7);
    cn_dropout_fwd(&c, p, n, x, mask, y);
    size_t kept = 0, bad = n;
    const float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) {
        kept += mask[i];
        if (bad == n && (mask[i] > 1 || y[i] != (mask[i] ? x[i] * scale : 0.0f))) bad = i;
    }
    const double frac = (double)kept / (double)n;
    const float xb = bad < n ? x[bad] : 0, yb = bad < n ? y[bad] : 0;
    const int mb = bad < n ? mask[bad] : 0;
    free(x), free(y), free(mask);
    /* The kept fraction's standard deviation is sqrt(0.21 / 1e5) = 0.0014. */
    CHECK(fabs(frac - 0.7) < 0.01, "kept fraction %.4f, want 0.7", frac);
    CHECK(bad == n, "element %zu: x %g mask %d y %g, want x / (1 - p) or 0", bad, xb, mb, yb);
}

static void dropout_backward_uses_the_forward_mask(void)
{
    const size_t n = 1000;
    const float p = 0.5f;
    float x[1000], y[1000], gy[1000], gx[1000];
    uint8_t mask[1000];
    tl_fill(x, n, -1, 1), tl_fill(gy, n, -1, 1);
    cn_ctx c;
    cn_ctx_init(&c);
    cn_dropout_fwd(&c, p, n, x, mask, y);
    cn_dropout_bwd(p, n, mask, gy, gx);
    for (size_t i = 0; i < n; i++)
        CHECK(gx[i] == (mask[i] ? gy[i] * 2.0f : 0.0f), "gx[%zu] = %g with mask %d gy %g", i,
              gx[i], mask[i], gy[i]);
}

static void dropout_same_seed_gives_same_mask_and_next_call_a_new_one(void)
{
    const size_t n = 4096;
    float x[4096], y[4096];
    uint8_t m1[4096], m2[4096], m3[4096];
    tl_fill(x, n, -1, 1);
    cn_ctx a, b;
    cn_ctx_init(&a), cn_ctx_init(&b);
    cn_rng_seed(&a, 123), cn_rng_seed(&b, 123);
    cn_dropout_fwd(&a, 0.4f, n, x, m1, y);
    cn_dropout_fwd(&b, 0.4f, n, x, m2, y);
    cn_dropout_fwd(&a, 0.4f, n, x, m3, y);
    CHECK(!memcmp(m1, m2, n), "same seed, different masks");
    CHECK(memcmp(m1, m3, n), "the generator did not advance: second mask equals the first");
}

static void dropout_mask_is_one_uniform_per_element_from_the_context_generator(void)
{
    /* Element i is kept iff the i-th cn_rng_uniform would be < 1 - p, and
     * the generator ends where n such calls leave it; n crosses the
     * draw blocks. p = 0.5 puts the threshold on a power of two. */
    static const float ps[] = {0.25f, 0.5f, 0.9f, 1e-7f};
    const size_t n = 10007;
    float *x = fnew(n), *y = fnew(n);
    uint8_t *mask = malloc(n);
    tl_fill(x, n, -1, 1);
    for (int k = 0; k < 4; k++) {
        cn_ctx a, b;
        cn_ctx_init(&a), cn_ctx_init(&b);
        cn_rng_seed(&a, 99 + (uint64_t)k), cn_rng_seed(&b, 99 + (uint64_t)k);
        cn_dropout_fwd(&a, ps[k], n, x, mask, y);
        const double keep = 1.0 - (double)ps[k];
        size_t bad = n;
        for (size_t i = 0; i < n && bad == n; i++)
            if (mask[i] != (cn_rng_uniform(&b) < keep)) bad = i;
        if (bad != n || memcmp(a.rng, b.rng, sizeof a.rng)) {
            free(x), free(y), free(mask);
            CHECK(0, "p=%g: mask element %zu (of %zu) or final state differs from cn_rng_uniform",
                  (double)ps[k], bad, n);
        }
    }
    free(x), free(y), free(mask);
}

static void dropout_without_ctx_is_identity_and_dropped_nan_stays_nan(void)
{
    float x[3] = {1, NAN, -2}, y[3];
    uint8_t mask[3];
    cn_dropout_fwd(NULL, 0.5f, 3, x, mask, y);
    CHECK(!memcmp(x, y, sizeof x),
          "NULL ctx: y = %g %g %g", y[0], y[1], y[2]);
    CHECK(mask[0] == 1 && mask[1] == 1 && mask[2] == 1, "NULL ctx: mask not all 1");
    cn_ctx c;
    cn_ctx_init(&c);
    cn_dropout_fwd(&c, 1.0f, 3, x, mask, y);
    CHECK(y[0] == 0 && isnan(y[1]) && y[2] == 0, "p = 1: y = %g %g %g, want 0 NaN 0", y[0], y[1],
          y[2]);
}

/* ---- softmax family and cross-entropy ------------------------------------ */

static void log_softmax_rows_exp_sum_to_one_and_match_reference(void)
{
    for (int t = 0; t < 20 && tl_ok(); t++) {
        const int64_t N = tl_randint(1, 5), K = tl_randint(1, 50);
        const size_t n = (size_t)(N * K);
        float *x = fnew(n), *y = fnew(n), *s = fnew(n);
        double *xd = dnew(n), *yd = dnew(n), *sd = dnew(n);
        tl_fill(x, n, -20, 20);
        tl_f2d(x, xd, n);
        cn_log_softmax_fwd(N, K, x, y);
        cn_softmax_fwd(N, K, x, s);
        cn__log_softmax_ref_fwd(N, K, xd, yd);
        cn__softmax_ref_fwd(N, K, xd, sd);
        char cfg[64];
        snprintf(cfg, sizeof cfg, "N=%lld K=%lld", (long long)N, (long long)K);
        int ok = agree("log_softmax", y, yd, n, 1e-5, 1e-6, cfg) &&
                 agree("softmax", s, sd, n, 1e-7, 1e-5, cfg);
        for (int64_t r = 0; ok && r < N; r++) {
            double e = 0, p = 0;
            for (int64_t j = 0; j < K; j++) e += exp((double)y[r * K + j]), p += s[r * K + j];
            if (fabs(e - 1) > 1e-5 || fabs(p - 1) > 1e-5)
                tl_fail(__FILE__, __LINE__, "row %lld: sum exp(log_softmax) = %.9g, sum softmax = "
                        "%.9g for %s", (long long)r, e, p, cfg), ok = 0;
        }
        free(x), free(y), free(s), free(xd), free(yd), free(sd);
    }
}

static void softmax_family_is_finite_for_huge_logits(void)
{
    const float x[3] = {1000, -1000, 999};
    float y[3], s[3];
    cn_log_softmax_fwd(1, 3, x, y);
    cn_softmax_fwd(1, 3, x, s);
    CHECK(all_finite(y, 2) && y[1] < -1000, "log_softmax = %g %g %g", y[0], y[1], y[2]);
    CHECK(fabs(s[0] + s[2] - 1) < 1e-6 && s[1] == 0, "softmax = %g %g %g", s[0], s[1], s[2]);
}

typedef struct sm_prob {
    int64_t N, K;
    double g;
    const int32_t *labels;
    double *x, *r, *y;
} sm_prob;

static double log_softmax_loss(void *u)
{
    sm_prob *P = u;
    cn__log_softmax_ref_fwd(P->N, P->K, P->x, P->y);
    return dotd(P->r, P->y, (size_t)(P->N * P->K));
}

static double xent_loss(void *u)
{
    sm_prob *P = u;
    return P->g * cn__xent_ref_fwd(P->N, P->K, P->x, P->labels);
}

static void log_softmax_and_xent_backward_match_central_differences(void)
{
    for (int t = 0; t < 30 && tl_ok(); t++) {
        sm_prob P = {tl_randint(1, 6), tl_randint(1, 12), tl_uniform(0.2, 2), NULL, 0, 0, 0};
        const size_t n = (size_t)(P.N * P.K);
        float *x = fnew(n), *y = fnew(n), *gy = fnew(n), *gx = fnew(n), *pr = fnew(n), loss;
        int32_t *labels = calloc((size_t)P.N, sizeof *labels);
        for (int64_t i = 0; i < P.N; i++) labels[i] = tl_randint(0, (int)P.K - 1);
        P.labels = labels;
        P.x = dnew(n), P.r = dnew(n), P.y = dnew(n);
        double *num = dnew(n);
        tl_fill(x, n, -4, 4), tl_fill(gy, n, -1, 1);
        tl_f2d(x, P.x, n), tl_f2d(gy, P.r, n);
        char cfg[64];
        snprintf(cfg, sizeof cfg, "N=%lld K=%lld g=%g", (long long)P.N, (long long)P.K, P.g);

        cn_log_softmax_fwd(P.N, P.K, x, y);
        cn_log_softmax_bwd(P.N, P.K, y, gy, gx);
        numeric_grad(log_softmax_loss, &P, P.x, n, num);
        int ok = agree("log_softmax gx vs finite differences", gx, num, n, FD_ATOL, FD_RTOL, cfg);

        if (ok && cn_xent_fwd(P.N, P.K, x, labels, pr, &loss) != CN_OK)
            tl_fail(__FILE__, __LINE__, "xent: %s for %s", cn_last_error(), cfg), ok = 0;
        if (ok) {
            const double want = cn__xent_ref_fwd(P.N, P.K, P.x, labels);
            if (fabs(loss - want) > 1e-6 + 1e-6 * fabs(want))
                tl_fail(__FILE__, __LINE__, "xent = %.9g, want %.9g for %s", loss, want, cfg),
                    ok = 0;
        }
        if (ok) {
            cn_xent_bwd(P.N, P.K, pr, labels, (float)P.g, gx);
            numeric_grad(xent_loss, &P, P.x, n, num);
            agree("xent gx vs finite differences", gx, num, n, FD_ATOL, FD_RTOL, cfg);
        }
        free(x), free(y), free(gy), free(gx), free(pr), free(labels);
        free(P.x), free(P.r), free(P.y), free(num);
    }
}

static void xent_of_equal_logits_is_log_k(void)
{
    const float x2[2] = {0, 0}, x10[10] = {3, 3, 3, 3, 3, 3, 3, 3, 3, 3};
    const int32_t l0 = 0, l7 = 7;
    float loss, pr[10];
    CHECK_OK(cn_xent_fwd(1, 2, x2, &l0, pr, &loss));
    CHECK(fabs(loss - log(2.0)) < 1e-7, "xent([0,0], 0) = %.9g, want log 2", loss);
    CHECK(pr[0] == 0.5f && pr[1] == 0.5f, "probs %g %g", pr[0], pr[1]);
    CHECK_OK(cn_xent_fwd(1, 10, x10, &l7, NULL, &loss));
    CHECK(fabs(loss - log(10.0)) < 1e-6, "xent of 10 equal logits = %.9g, want log 10", loss);
}

static void xent_stays_finite_for_huge_logits(void)
{
    const float x[4] = {1000, -1000, -1000, 1000};
    const int32_t labels[2] = {0, 0};
    float loss, pr[4], gx[4];
    CHECK_OK(cn_xent_fwd(1, 2, x, labels, pr, &loss));
    CHECK(loss == 0 && pr[0] == 1 && pr[1] == 0, "loss %g probs %g %g, want 0 1 0", loss, pr[0],
          pr[1]);
    /* Row 2 is wrong by 2000: the mean over two rows is 1000. */
    CHECK_OK(cn_xent_fwd(2, 2, x, labels, pr, &loss));
    CHECK(loss == 1000, "loss %g, want 1000", loss);
    cn_xent_bwd(2, 2, pr, labels, 1, gx);
    CHECK(gx[0] == 0 && gx[1] == 0 && gx[2] == -0.5f && gx[3] == 0.5f, "gx = %g %g %g %g", gx[0],
          gx[1], gx[2], gx[3]);
}

static void xent_rejects_out_of_range_label_naming_label_and_index(void)
{
    const float x[6] = {0};
    const int32_t bad_hi[2] = {0, 3}, bad_lo[2] = {-1, 0};
    float loss = 42, pr[6] = {7, 7, 7, 7, 7, 7};
    CHECK(cn_xent_fwd(2, 3, x, bad_hi, pr, &loss) == CN_ERR_INVALID_ARG, "label 3 of K=3 accepted");
    CHECK(strstr(cn_last_error(), "label 3") && strstr(cn_last_error(), "index 1"),
          "message does not name label and index: %s", cn_last_error());
    CHECK(cn_xent_fwd(2, 3, x, bad_lo, pr, &loss) == CN_ERR_INVALID_ARG, "label -1 accepted");
    CHECK(strstr(cn_last_error(), "label -1") && strstr(cn_last_error(), "index 0"),
          "message does not name label and index: %s", cn_last_error());
    CHECK(loss == 42 && pr[0] == 7 && pr[5] == 7, "a rejected call wrote its outputs");
    CHECK(cn_xent_fwd(0, 3, x, bad_hi, pr, &loss) == CN_ERR_INVALID_ARG, "N = 0 accepted");
}

static void softmax_family_propagates_nan_through_its_row(void)
{
    const float x[4] = {1, NAN, 0, 2};
    const int32_t labels[2] = {0, 0};
    float y[4], loss;
    cn_log_softmax_fwd(2, 2, x, y);
    CHECK(all_nan(y, 2) && all_finite(y + 2, 2), "log_softmax = %g %g %g %g", y[0], y[1], y[2],
          y[3]);
    cn_softmax_fwd(2, 2, x, y);
    CHECK(all_nan(y, 2) && all_finite(y + 2, 2), "softmax = %g %g %g %g", y[0], y[1], y[2], y[3]);
    CHECK_OK(cn_xent_fwd(2, 2, x, labels, NULL, &loss));
    CHECK(isnan(loss), "xent with a NaN logit = %g", loss);
}

int main(void)
{
    TL_RUN(relu_keeps_positives_zeroes_negatives_and_propagates_nan);
    TL_RUN(every_activation_matches_double_reference);
    TL_RUN(every_activation_backward_matches_central_differences);
    TL_RUN(activations_propagate_nan_forward_and_backward);
    TL_RUN(saturating_activations_stay_finite_for_huge_inputs);
    TL_RUN(in_place_activations_backward_from_the_documented_buffer_only);
    TL_RUN(activations_do_not_depend_on_thread_count);

    TL_RUN(linear_matches_hand_computed_2x3x2_example);
    TL_RUN(linear_forward_and_backward_match_reference_and_central_differences);
    TL_RUN(linear_backward_computes_only_the_requested_gradients);
    TL_RUN(linear_results_do_not_depend_on_thread_count);
    TL_RUN(linear_propagates_nan_even_through_zero_inputs);
    TL_RUN(linear_matches_double_reference_within_the_dot_product_bound);

    TL_RUN(batchnorm_training_matches_hand_computed_statistics);
    TL_RUN(batchnorm_eval_uses_running_statistics_and_leaves_them_alone);
    TL_RUN(batchnorm_matches_reference_in_both_modes);
    TL_RUN(batchnorm_keeps_float_precision_when_mean_dwarfs_std);
    TL_RUN(batchnorm_backward_matches_central_differences_in_both_modes);
    TL_RUN(batchnorm_without_gamma_and_beta_equals_gamma_one_beta_zero);
    TL_RUN(batchnorm_propagates_nan);
    TL_RUN(batchnorm_bwd_add_relu_equals_relu_gradient_then_bwd_relu);
    TL_RUN(batchnorm_relu_backward_from_x_equals_the_one_from_y);
    TL_RUN(batchnorm_streamed_outputs_have_the_same_bits_as_cached_ones);
    TL_RUN(batchnorm_rejects_what_pytorch_rejects);
    TL_RUN(batchnorm_results_do_not_depend_on_thread_count);
    TL_RUN(batchnorm_is_bit_identical_for_1_2_and_3_threads_whatever_the_row_split);
    TL_RUN(batchnorm_matches_reference_on_large_batches_whose_mean_dwarfs_their_spread);
    TL_RUN(batchnorm_backward_matches_closed_form_on_large_batches);
    TL_RUN(batchnorm_infinite_value_gives_infinite_mean_and_nan_variance_in_any_row);

    TL_RUN(dropout_with_p_zero_is_identity);
    TL_RUN(dropout_keeps_one_minus_p_and_scales_kept_values);
    TL_RUN(dropout_backward_uses_the_forward_mask);
    TL_RUN(dropout_same_seed_gives_same_mask_and_next_call_a_new_one);
    TL_RUN(dropout_mask_is_one_uniform_per_element_from_the_context_generator);
    TL_RUN(dropout_without_ctx_is_identity_and_dropped_nan_stays_nan);

    TL_RUN(log_softmax_rows_exp_sum_to_one_and_match_reference);
    TL_RUN(softmax_family_is_finite_for_huge_logits);
    TL_RUN(log_softmax_and_xent_backward_match_central_differences);
    TL_RUN(xent_of_equal_logits_is_log_k);
    TL_RUN(xent_stays_finite_for_huge_logits);
    TL_RUN(xent_rejects_out_of_range_label_naming_label_and_index);
    TL_RUN(softmax_family_propagates_nan_through_its_row);
    return tl_summary();
}
