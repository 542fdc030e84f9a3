/* The autodiff graph: gradients through whole small networks that mix every
 * differentiable op agree with central differences; gradients accumulate
 * over uses; no-grad records nothing; memory does not grow over steps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv_internal.h"
#include "testlib.h"

/* Leaf parameters of a test network, as views into one flat buffer. */
typedef struct leaf {
    int ndim;
    int64_t shape[4];
    size_t off, n;
} leaf;

typedef struct net {
    leaf l[16];
    int n_leaves;
    size_t total;
    float *theta, *grad;
    float rm[64], rv[64];  /* batch norm running statistics */
    int32_t labels[8];
} net;

static int add_leaf(net *t, int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    leaf *l = &t->l[t->n_leaves];
    int64_t s[4] = {a, b, c, d};
    l->ndim = ndim;
    l->n = 1;
    for (int i = 0; i < ndim; i++) l->shape[i] = s[i], l->n *= (size_t)s[i];
    l->off = t->total;
    t->total += l->n;
    return t->n_leaves++;
}

static cn_var *wrap(cn_graph *g, net *t, int i)
{
    leaf *l = &t->l[i];
    return cn_var_wrap(g, l->ndim, l->shape, t->theta + l->off, t->grad + l->off, 1);
}

/* Network A: relu and leaky relu of the input joined by concat, max pool,
 * a reflect-padded conv, batch norm, tanh, a 1x1 conv, avg pool, sigmoid,
 * flatten, linear, dropout, log-softmax times a weight, cross-entropy, sum
 * and mean. The non-smooth ops see the input directly, whose values are
 * kept apart (see spread_input), so the finite differences never straddle
 * a kink or a change of argmax. */
enum { A_X, A_W1, A_B1, A_G, A_BETA, A_W2, A_FC, A_FCB, A_MIX, A_COUNT };
static void net_a_leaves(net *t)
{
    add_leaf(t, 4, 4, 6, 6, 2);  /* x */
    add_leaf(t, 4, 3, 3, 4, 4);  /* conv1 weight */
    add_leaf(t, 1, 4, 1, 1, 1);  /* conv1 bias */
    add_leaf(t, 1, 4, 1, 1, 1);  /* bn gamma */
    add_leaf(t, 1, 4, 1, 1, 1);  /* bn beta */
    add_leaf(t, 4, 1, 1, 4, 3);  /* 1x1 conv */
    add_leaf(t, 2, 12, 5, 1, 1); /* linear [2*2*3, 5] */
    add_leaf(t, 1, 5, 1, 1, 1);  /* linear bias */
    add_leaf(t, 2, 4, 5, 1, 1);  /* weights on log-softmax */
}

static cn_var *net_a(cn_graph *g, net *t)
{
    cn_var *v[A_COUNT];
    for (int i = 0; i < A_COUNT; i++) v[i] = wrap(g, t, i);
    cn_var *parts[2] = {cn_relu(g, v[A_X]), cn_leaky_relu(g, v[A_X], 0.1f)};
    cn_pool2d_params mp = cn_pool2d_params_default(2, 2);
    cn_var *h = cn_max_pool2d(g, cn_concat(g, parts, 2, 3), &mp);       /* [4,3,3,4] */
    cn_conv2d_params p = cn_conv2d_params_default();
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
    p.pad_mode = CN_PAD_REFLECT;
    cn_bn_params bn = {1e-5f, 0.1f};
    h = cn_conv2d(g, h, v[A_W1], v[A_B1], &p);                           /* [4,3,3,4] */
    h = cn_tanh(g, cn_batch_norm2d(g, h, v[A_G], v[A_BETA], t->rm, t->rv, &bn, 1));
    cn_conv2d_params p1 = cn_conv2d_params_default();
    h = cn_conv2d(g, h, v[A_W2], NULL, &p1);                             /* [4,3,3,3] */
    cn_pool2d_params ap = cn_pool2d_params_default(2, 2);
    ap.stride_h = ap.stride_w = 1;
    h = cn_sigmoid(g, cn_avg_pool2d(g, h, &ap));                         /* [4,2,2,3] */
    h = cn_dropout(g, cn_linear(g, cn_flatten(g, h), v[A_FC], v[A_FCB]), 0.3f, 1); /* [4,5] */
    cn_var *lsm = cn_log_softmax(g, h);
    cn_var *l1 = cn_mean(g, cn_mul(g, lsm, v[A_MIX]));
    cn_var *l2 = cn_softmax_cross_entropy(g, h, t->labels);
    return cn_add(g, cn_sum(g, l1), l2);
}

/* Distinct magnitudes 0.05, 0.06, ... in random order and sign: at least
 * 0.005 between any two values that relu, leaky relu or max pool compare,
 * far more than a finite-difference step moves them. */
static void spread_input(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = 0.05f + 0.01f * (float)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)tl_randint(0, (int)i);
        float s = x[i];
        x[i] = x[j], x[j] = s;
    }
    for (size_t i = 0; i < n; i++) x[i] *= tl_randint(0, 1) ? 1.0f : -1.0f;
}

/* Network B: conv1d, sigmoid, reshape to an image, transposed conv,
 * global average pooling, and a variable used twice (its gradient must
 * accumulate). */
enum { B_X, B_W1, B_B1, B_WT, B_BT, B_COUNT };
static void net_b_leaves(net *t)
{
    add_leaf(t, 3, 2, 9, 3, 1);  /* x [N,L,C] */
    add_leaf(t, 3, 3, 1, 6, 1);  /* conv1d weight [K, C/G=1, 6], groups 3 */
    add_leaf(t, 1, 6, 1, 1, 1);
    add_leaf(t, 4, 2, 3, 2, 6);  /* conv_transpose2d weight [KH,KW,Cout/G=2,Cin=6], groups 2 */
    add_leaf(t, 1, 4, 1, 1, 1);
}

static cn_var *net_b(cn_graph *g, net *t)
{
    cn_var *v[B_COUNT];
    for (int i = 0; i < B_COUNT; i++) v[i] = wrap(g, t, i);
    cn_conv2d_params p = cn_conv2d_params_default();
    p.groups = 3, p.stride_w = 2, p.pad_left = 2, p.pad_right = 1, p.dil_w = 2;
    p.pad_mode = CN_PAD_REPLICATE;
    cn_var *h = cn_sigmoid(g, cn_conv1d(g, v[B_X], v[B_W1], v[B_B1], &p));  /* [2,5,6] */
    int64_t s[4] = {2, 1, 4, 6};
    h = cn_reshape(g, h, 4, s);
    cn_conv_transpose2d_params tp = {cn_conv2d_params_default(), 1, 1};
    tp.conv.groups = 2, tp.conv.stride_h = tp.conv.stride_w = 2;
    tp.conv.pad_top = tp.conv.pad_left = 1;
    cn_var *y = cn_conv_transpose2d(g, h, v[B_WT], v[B_BT], &tp);
    cn_var *z = cn_mul(g, y, y);   /* y used twice */
    cn_var *q = cn_global_avg_pool2d(g, cn_add(g, z, y));
    return cn_mean(g, cn_mul(g, q, q));
}

/* Network C: the fused ops of a ResNet block, batch_norm2d_relu,
 * batch_norm2d_add_relu and add_relu, on an input spread apart (see
 * spread_input) and shortcuts that see it directly; a tanh keeps the loss
 * smooth in what follows. */
enum { C_X, C_G, C_BETA, C_W, C_G2, C_BETA2, C_FC, C_COUNT };
static void net_c_leaves(net *t)
{
    add_leaf(t, 4, 4, 3, 3, 4);  /* x */
    add_leaf(t, 1, 4, 1, 1, 1);  /* bn1 gamma */
    add_leaf(t, 1, 4, 1, 1, 1);  /* bn1 beta */
    add_leaf(t, 4, 3, 3, 4, 4);  /* conv weight */
    add_leaf(t, 1, 4, 1, 1, 1);  /* bn2 gamma */
    add_leaf(t, 1, 4, 1, 1, 1);  /* bn2 beta */
    add_leaf(t, 2, 4, 5, 1, 1);  /* linear [4, 5] */
}

static cn_var *net_c(cn_graph *g, net *t)
{
    cn_var *v[C_COUNT];
    for (int i = 0; i < C_COUNT; i++) v[i] = wrap(g, t, i);
    cn_conv2d_params p = cn_conv2d_params_default();
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
    cn_bn_params bn = {1e-5f, 0.1f};
    cn_var *h = cn_batch_norm2d_relu(g, v[C_X], v[C_G], v[C_BETA], t->rm, t->rv, &bn, 1);
    h = cn_conv2d(g, h, v[C_W], NULL, &p);
    cn_var *r = cn_batch_norm2d(g, h, v[C_G2], v[C_BETA2], t->rm + 4, t->rv + 4, &bn, 1);
    h = cn_batch_norm2d_add_relu(g, h, v[C_G2], v[C_BETA2], t->rm + 8, t->rv + 8, &bn, 1, v[C_X]);
    h = cn_tanh(g, cn_add(g, h, cn_add_relu(g, r, v[C_X])));             /* [4,3,3,4] */
    h = cn_linear(g, cn_global_avg_pool2d(g, h), v[C_FC], NULL);         /* [4,5] */
    return cn_softmax_cross_entropy(g, h, t->labels);
}

typedef void (*leaves_fn)(net *);
typedef cn_var *(*net_fn)(cn_graph *, net *);

/* Loss at theta, with the dropout generator reseeded so every evaluation
 * draws the same mask. */
static double eval_loss(cn_graph *g, cn_ctx *ctx, net *t, net_fn f)
{
    cn_graph_reset(g);
    cn_rng_seed(ctx, 7);
    cn_var *l = f(g, t);
    return l ? l->data[0] : NAN;
}

/* (L(theta + h v) - L(theta - h v)) / 2h with theta = base; theta is left
 * at base. */
static double difference_quotient(cn_graph *g, cn_ctx *ctx, net *t, net_fn f, const float *base,
                                  const double *v, double h)
{
    for (size_t i = 0; i < t->total; i++) t->theta[i] = (float)(base[i] + h * v[i]);
    const double lp = eval_loss(g, ctx, t, f);
    for (size_t i = 0; i < t->total; i++) t->theta[i] = (float)(base[i] - h * v[i]);
    const double lm = eval_loss(g, ctx, t, f);
    memcpy(t->theta, base, t->total * sizeof *base);
    return (lp - lm) / (2 * h);
}

/* *near_kink: set (and the check cut short) when a direction matches at no
 * step and its quotients at h and h/16 disagree (on a smooth loss they
 * differ by O(h^2)): a kink so near theta that no step tells the gradient;
 * the caller draws theta again. */
static void check_network(leaves_fn leaves, net_fn f, const char *name, int spread, int *near_kink)
{
    net t = {0};
    leaves(&t);
    t.theta = calloc(t.total, sizeof(float));
    t.grad = calloc(t.total, sizeof(float));
    for (int i = 0; i < 8; i++) t.labels[i] = tl_randint(0, 4);
    for (int i = 0; i < 64; i++) t.rm[i] = 0, t.rv[i] = 1;
    tl_fill(t.theta, t.total, -1, 1);
    if (spread) spread_input(t.theta, t.l[0].n);
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    cn_graph *g;
    CHECK_OK(cn_graph_new(&g, &ctx));
    double l0 = eval_loss(g, &ctx, &t, f);
    CHECK(cn_graph_status(g) == CN_OK, "%s: forward failed: %s", name, cn_last_error());
    CHECK(isfinite(l0), "%s: loss %g", name, l0);
    cn_graph_reset(g);
    cn_rng_seed(&ctx, 7);
    cn_var *loss = f(g, &t);
    CHECK_OK(cn_backward(g, loss));
    double *v = malloc(t.total * sizeof *v);
    float *base = malloc(t.total * sizeof *base);
    memcpy(base, t.theta, t.total * sizeof *base);
    /* Directional derivatives <grad, v> against (L(theta+hv) - L(theta-hv)) / 2h
     * along random directions, and along each leaf alone. A ReLU whose input
     * crosses zero within the step puts a kink in the loss there, and the
     * quotient then mixes the slopes on both sides. Where the loss is smooth
     * the quotients of every step agree; so the steps h, h/2, ..., h/16 are
     * tried, and the gradient must match the quotient of one of them: one
     * that stays clear of a kink near theta. (Nearer than h/16, theta is
     * drawn again: see near_kink above.) */
    const double h0 = getenv("CN_H") ? atof(getenv("CN_H")) : 2e-3;
    for (int k = 0; k < 12 + t.n_leaves && (getenv("CN_DEBUG") || tl_ok()); k++) {
        memset(v, 0, t.total * sizeof *v);
        if (k < 12) tl_fill_d(v, t.total, -1, 1);
        else {
            leaf *l = &t.l[k - 12];
            tl_fill_d(v + l->off, l->n, -1, 1);
        }
        double analytic = 0, q[5] = {NAN, NAN, NAN, NAN, NAN};
        for (size_t i = 0; i < t.total; i++) analytic += t.grad[i] * v[i];
        int match = 0;
        for (int j = 0; j < 5 && !match; j++) {
            q[j] = difference_quotient(g, &ctx, &t, f, base, v, h0 / (1 << j));
            match = fabs(q[j] - analytic) <= 2e-3 + 1e-2 * fabs(q[j]);
        }
        const double numeric = q[0];
        if (getenv("CN_DEBUG")) printf("%s dir %d: %.7g %.7g\n", name, k, analytic, numeric);
        if (!match && fabs(q[0] - q[4]) > 1e-3 + 2e-3 * fabs(q[4])) {
            *near_kink = 1;
            break;
        }
        if (!getenv("CN_DEBUG"))
            CHECK(match, "%s direction %d: analytic %.7g, quotients %.7g %.7g %.7g %.7g %.7g", name,
                  k, analytic, q[0], q[1], q[2], q[3], q[4]);
    }
    free(v), free(base), free(t.theta), free(t.grad);
    cn_graph_free(g);
}

static void network_gradients_match_central_differences(void)
{
    static const struct {
        leaves_fn leaves;
        net_fn f;
        const char *name;
        int spread;
    } nets[] = {{net_a_leaves, net_a, "network A", 1},
                {net_b_leaves, net_b, "network B", 0},
                {net_c_leaves, net_c, "network C", 1}};
    for (size_t i = 0; i < sizeof nets / sizeof nets[0] && tl_ok(); i++) {
        int near_kink = 1;
        for (int draw = 0; draw < 4 && near_kink && tl_ok(); draw++) {
            near_kink = 0;
            check_network(nets[i].leaves, nets[i].f, nets[i].name, nets[i].spread, &near_kink);
        }
        CHECK(!near_kink, "%s: theta next to a kink in 4 draws", nets[i].name);
    }
}

/* conv2d_relu is one op for relu(conv2d): the same values and the same
 * gradients bit for bit, on problems for each kernel (small groups,
 * depthwise, GEMM, Winograd), with NaN and exact zeros in the output. */
static void fused_conv_relu_equals_conv_then_relu(void)
{
    static const int64_t cfg[][6] = {/* N H W Cin Cout groups */
                                     {2, 7, 6, 3, 8, 1},  {2, 6, 5, 6, 6, 6},   {2, 9, 8, 20, 24, 1},
                                     {1, 5, 7, 40, 5, 1}, {2, 6, 6, 16, 16, 2}, {1, 4, 4, 16, 32, 1}};
    for (size_t k = 0; k < sizeof cfg / sizeof cfg[0] && tl_ok(); k++) {
        const int64_t *c = cfg[k];
        int64_t xs[4] = {c[0], c[1], c[2], c[3]}, ws[4] = {3, 3, c[3] / c[5], c[4]}, bs[1] = {c[4]};
        cn_conv2d_params p = cn_conv2d_params_default();
        p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1, p.groups = (int)c[5];
        size_t nx = (size_t)(xs[0] * xs[1] * xs[2] * xs[3]), nw = (size_t)(9 * ws[2] * ws[3]);
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)c[4] * 4);
        tl_fill(x, nx, -1, 1), tl_fill(w, nw, -1, 1), tl_fill(b, (size_t)c[4], -1, 1);
        x[0] = NAN;
        for (size_t i = 0; i < (size_t)c[4]; i += 3) b[i] = 0; /* some outputs exactly 0 */
        float *out[2][4];
        size_t n[4] = {0, nx, nw, (size_t)c[4]};
        for (int fused = 0; fused < 2; fused++) {
            cn_ctx ctx;
            cn_ctx_init(&ctx);
            ctx.threads = 2;
            cn_graph *g;
            CHECK_OK(cn_graph_new(&g, &ctx));
            float *gx = calloc(nx, 4), *gw = calloc(nw, 4), *gb = calloc((size_t)c[4], 4);
            cn_var *vx = cn_var_wrap(g, 4, xs, x, gx, 1), *vw = cn_var_wrap(g, 4, ws, w, gw, 1),
                   *vb = cn_var_wrap(g, 1, bs, b, gb, 1);
            cn_var *y = fused ? cn_conv2d_relu(g, vx, vw, vb, &p) : cn_relu(g, cn_conv2d(g, vx, vw, vb, &p));
            CHECK(y != NULL, "config %zu: %s", k, cn_last_error());
            /* loss = sum(y * r) for a fixed r, so gy = r */
            cn_var *r = cn_var_new(g, 4, y->shape, 0);
            for (size_t i = 0; i < r->size; i++) r->data[i] = (float)((i * 7919) % 13) / 6.0f - 1.0f;
            CHECK_OK(cn_backward(g, cn_sum(g, cn_mul(g, y, r))));
            n[0] = y->size;
            out[fused][0] = malloc(y->size * 4);
            memcpy(out[fused][0], y->data, y->size * 4);
            out[fused][1] = gx, out[fused][2] = gw, out[fused][3] = gb;
            cn_graph_free(g);
        }
        if (!tl_ok()) break;
        const char *what[4] = {"output", "grad_input", "grad_weight", "grad_bias"};
        for (int i = 0; i < 4; i++) {
            CHECK(!memcmp(out[0][i], out[1][i], n[i] * 4), "config %zu: %s differs", k, what[i]);
            free(out[0][i]), free(out[1][i]);
        }
        free(x), free(w), free(b);
    }
}

/* Test op 0..4 of a and b (gamma, beta and running statistics for the
 * batch norms), as the fused op or as separate ops: relu(bn(a)) in
 * training and in evaluation; relu(a + b) + relu(b + b); relu(bn(a) + b) +
 * relu(bn(a) + a) in training and in evaluation. */
static cn_var *fused_or_separate(cn_graph *g, int op, int fused, cn_var *a, cn_var *b,
                                 cn_var *gamma, cn_var *beta, float *rm, float *rv)
{
    cn_bn_params p = {1e-5f, 0.1f};
    const int tr = op == 0 || op == 3;
    /* y1 before y2, both ways: the order gradients accumulate in follows */
    cn_var *y1, *y2;
    if (op < 2)
        return fused ? cn_batch_norm2d_relu(g, a, gamma, beta, rm, rv, &p, tr)
                     : cn_relu(g, cn_batch_norm2d(g, a, gamma, beta, rm, rv, &p, tr));
    if (op == 2 && fused) {
        y1 = cn_add_relu(g, a, b);
        y2 = cn_add_relu(g, b, b);
    } else if (op == 2) {
        y1 = cn_relu(g, cn_add(g, a, b));
        y2 = cn_relu(g, cn_add(g, b, b));
    } else if (fused) {
        y1 = cn_batch_norm2d_add_relu(g, a, gamma, beta, rm, rv, &p, tr, b);
        y2 = cn_batch_norm2d_add_relu(g, a, gamma, beta, rm, rv, &p, tr, a);
    } else {
        y1 = cn_relu(g, cn_add(g, cn_batch_norm2d(g, a, gamma, beta, rm, rv, &p, tr), b));
        y2 = cn_relu(g, cn_add(g, cn_batch_norm2d(g, a, gamma, beta, rm, rv, &p, tr), a));
    }
    return cn_add(g, y1, y2);
}

/* batch_norm2d_relu, add_relu and batch_norm2d_add_relu are one op each
 * for relu(batch_norm2d), relu(add) and relu(add(batch_norm2d, res)): the
 * same values and gradients bit for bit, in training and in evaluation,
 * with a NaN and exact zeros in the sums; an input used twice by one op
 * (add_relu(a, a), a as its own residual) accumulates both uses. */
static void fused_bn_relu_and_add_relu_equal_the_ops_then_relu(void)
{
    static const int64_t cfg[][4] = {{2, 5, 7, 3}, {4, 6, 6, 32}, {3, 9, 9, 130}};
    for (size_t k = 0; k < sizeof cfg / sizeof cfg[0] && tl_ok(); k++) {
        const int64_t *xs = cfg[k], C = xs[3], cs[1] = {C};
        const size_t nx = (size_t)(xs[0] * xs[1] * xs[2] * C), nc = (size_t)C;
        float *x = malloc(nx * 4), *x2 = malloc(nx * 4), *gm = malloc(nc * 4), *bt = malloc(nc * 4);
        tl_fill(x, nx, -2, 2), tl_fill(x2, nx, -2, 2);
        tl_fill(gm, nc, 0.5, 1.5), tl_fill(bt, nc, -1, 1);
        for (size_t i = 0; i < nx; i += 5) x2[i] = -x[i]; /* a + b exactly 0 */
        x2[3] = NAN;                                      /* reaches only the adds */
        for (int op = 0; op < 5 && tl_ok(); op++) {
            float *out[2][5];
            size_t n[5] = {nx, nx, nx, nc, nc};
            for (int fused = 0; fused < 2; fused++) {
                cn_ctx ctx;
                cn_ctx_init(&ctx);
                ctx.threads = 2;
                cn_graph *g;
                CHECK_OK(cn_graph_new(&g, &ctx));
                float rm[130], rv[130];
                for (size_t c = 0; c < nc; c++)
                    rm[c] = 0.1f * (float)(c % 7), rv[c] = 0.5f + 0.1f * (float)(c % 5);
                float *g0 = calloc(nx, 4), *g1 = calloc(nx, 4), *gg = calloc(nc, 4),
                      *gb = calloc(nc, 4);
                cn_var *va = cn_var_wrap(g, 4, xs, x, g0, 1),
                       *vb = cn_var_wrap(g, 4, xs, x2, g1, 1);
                cn_var *vg = cn_var_wrap(g, 1, cs, gm, gg, 1),
                       *vt = cn_var_wrap(g, 1, cs, bt, gb, 1);
                cn_var *y = fused_or_separate(g, op, fused, va, vb, vg, vt, rm, rv);
                if (!y) {
                    CHECK(0, "config %zu op %d: %s", k, op, cn_last_error());
                    break;
                }
                cn_var *r = cn_var_new(g, 4, y->shape, 0);
                for (size_t i = 0; i < r->size; i++)
                    r->data[i] = (float)((i * 7919) % 13) / 6.0f - 1.0f;
                CHECK_OK(cn_backward(g, cn_sum(g, cn_mul(g, y, r))));
                out[fused][0] = malloc(nx * 4);
                memcpy(out[fused][0], y->data, nx * 4);
                out[fused][1] = g0, out[fused][2] = g1, out[fused][3] = gg, out[fused][4] = gb;
                cn_graph_free(g);
            }
            if (!tl_ok()) break;
            const char *what[5] = {"output", "grad a", "grad b", "grad gamma", "grad beta"};
            for (int i = 0; i < 5; i++) {
                CHECK(!memcmp(out[0][i], out[1][i], n[i] * 4), "config %zu op %d: %s differs", k,
                      op, what[i]);
                free(out[0][i]), free(out[1][i]);
            }
        }
        free(x), free(x2), free(gm), free(bt);
    }
}

/* A model fuses its Conv2d + ReLU and BatchNorm2d + ReLU layers, and the
 * ReLUs inside its residual blocks, when nobody asks for the layer outputs:
 * the logits, and in training the parameter gradients, are the same either
 * way, bit for bit. */
static void model_forward_is_the_same_fused_or_layer_by_layer(void)
{
    const char *models[] = {"lenet", "resnet", "plain"};
    for (int k = 0; k < 3; k++) {
        cn_model *m;
        cn_ctx ctx;
        cn_ctx_init(&ctx);
        cn_rng_seed(&ctx, 3);
        if (k < 2) {
            CHECK_OK(cn_model_build(&m, models[k], 28, 28, 1, 10));
        } else { /* conv-relu pairs, as a user might stack them */
            CHECK_OK(cn_model_new(&m, "plain", 28, 28, 1));
            cn_model_conv2d(m, 16, 3, 1, 1), cn_model_relu(m);
            cn_model_conv2d(m, 24, 3, 1, 1), cn_model_relu(m), cn_model_maxpool2d(m, 2);
            cn_model_conv2d(m, 32, 3, 2, 1), cn_model_relu(m);
            cn_model_flatten(m), cn_model_linear(m, 10);
        }
        CHECK_OK(cn_model_init(m, &ctx));
        cn_graph *g;
        CHECK_OK(cn_graph_new(&g, &ctx));
        int64_t xs[4] = {3, 28, 28, 1};
        int32_t labels[3] = {1, 7, 4};
        float *logits[2], *grads[2], in[3 * 28 * 28];
        tl_fill(in, 3 * 28 * 28, -1, 1);
        for (int training = 0; training < 2 && tl_ok(); training++) {
            for (int layered = 0; layered < 2; layered++) {
                cn_graph_reset(g);
                cn_model_zero_grad(m);
                cn_rng_seed(&ctx, 5); /* the same dropout mask */
                cn_var *x = cn_var_new(g, 4, xs, 0);
                memcpy(x->data, in, sizeof in);
                cn_var **outs = layered ? calloc((size_t)m->n_layers, sizeof *outs) : NULL;
                cn_var *y = cn_model_forward_layers(m, g, x, training, outs);
                CHECK(y != NULL, "%s: %s", models[k], cn_last_error());
                if (training) CHECK_OK(cn_backward(g, cn_softmax_cross_entropy(g, y, labels)));
                logits[layered] = malloc(30 * 4);
                memcpy(logits[layered], y->data, 30 * 4);
                grads[layered] = malloc(m->n_params * 4);
                memcpy(grads[layered], m->grads, m->n_params * 4);
                free(outs);
            }
            CHECK(!memcmp(logits[0], logits[1], 30 * 4),
                  "%s (training %d): fused and layer-by-layer logits differ", models[k], training);
            CHECK(!memcmp(grads[0], grads[1], m->n_params * 4),
                  "%s (training %d): fused and layer-by-layer gradients differ", models[k], training);
            free(logits[0]), free(logits[1]), free(grads[0]), free(grads[1]);
        }
        cn_graph_free(g);
        cn_model_free(m);
    }
}

static void gradients_accumulate_over_uses_and_calls(void)
{
    cn_graph *g;
    CHECK_OK(cn_graph_new(&g, NULL));
    float x[3] = {1, 2, 3}, gx[3] = {0, 0, 0};
    int64_t s[1] = {3};
    for (int step = 1; step <= 2; step++) {
        cn_graph_reset(g);
        cn_var *v = cn_var_wrap(g, 1, s, x, gx, 1);
        /* L = sum(x*x + x) -> dL/dx = 2x + 1, added to gx each call. */
        cn_var *l = cn_sum(g, cn_add(g, cn_mul(g, v, v), v));
        CHECK_OK(cn_backward(g, l));
        for (int i = 0; i < 3; i++)
            CHECK(gx[i] == step * (2 * x[i] + 1), "step %d: gx[%d] = %g", step, i, gx[i]);
    }
    cn_graph_free(g);
}

/* An input that feeds two convolutions (a ResNet block's input feeds its
 * first conv and its shortcut) gets the sum of their input gradients,
 * whether the second one is added in place (GEMM, implicit and Winograd
 * kernels) or through a buffer (the rest): with integer data, exactly
 * cn_conv2d_bwd_data of each, added, for a graph-owned gradient and for the
 * caller's (which it adds to), on 2 threads. */
static void an_input_of_two_convs_gets_the_sum_of_their_gradients(void)
{
    static const int cfg[][8] = {/* H W C OC K stride pad mode */
                                 {9, 14, 32, 40, 3, 2, 1, 0}, {6, 14, 32, 64, 1, 2, 0, 0},
                                 {7, 9, 16, 24, 3, 1, 1, 0},  {8, 8, 36, 20, 3, 1, 1, 0},
                                 {5, 6, 3, 4, 3, 1, 1, 0},    {6, 7, 32, 32, 3, 1, 1, 2}};
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    ctx.threads = 2;
    for (size_t k = 0; k < sizeof cfg / sizeof cfg[0] && tl_ok(); k++) {
        const int *c = cfg[k];
        cn_conv2d_params p = cn_conv2d_params_default();
        p.stride_h = p.stride_w = c[5];
        p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = c[6];
        p.pad_mode = (cn_pad_mode)c[7];
        int64_t xs[4] = {2, c[0], c[1], c[2]}, ws[4] = {c[4], c[4], c[2], c[3]};
        cn_conv2d_desc d;
        CHECK_OK(cn_conv2d_setup(&d, &p, xs, ws));
        const size_t nx = (size_t)(2 * c[0] * c[1] * c[2]),
                     nw = (size_t)(c[4] * c[4] * c[2] * c[3]);
        const size_t ny = (size_t)(d.MB * d.OH * d.OW * d.OC);
        float *x = malloc(nx * 4), *wa = malloc(nw * 4), *wb = malloc(nw * 4), *r = malloc(ny * 4);
        float *ga = malloc(nx * 4), *gb = malloc(nx * 4), *gx = malloc(nx * 4);
        for (size_t i = 0; i < nx; i++)
            x[i] = (float)tl_randint(-2, 2), gx[i] = (float)tl_randint(-2, 2);
        for (size_t i = 0; i < nw; i++)
            wa[i] = (float)tl_randint(-2, 2), wb[i] = (float)tl_randint(-2, 2);
        for (size_t i = 0; i < ny; i++) r[i] = (float)tl_randint(-2, 2);
        CHECK_OK(cn_conv2d_bwd_data(&ctx, &d, r, wa, ga, NULL));
        CHECK_OK(cn_conv2d_bwd_data(&ctx, &d, r, wb, gb, NULL));
        for (int owned = 0; owned < 2 && tl_ok(); owned++) {
            cn_graph *g;
            CHECK_OK(cn_graph_new(&g, &ctx));
            float *gx0 = malloc(nx * 4), *one = malloc(nx * 4);
            memcpy(gx0, gx, nx * 4);
            for (size_t i = 0; i < nx; i++) one[i] = 1.0f;
            cn_var *vx = cn_var_wrap(g, 4, xs, x, gx0, 1);
            /* owned: the convs see x * 1, whose gradient the graph holds */
            cn_var *h = owned ? cn_mul(g, vx, cn_var_wrap(g, 4, xs, one, NULL, 0)) : vx;
            cn_var *va = cn_var_wrap(g, 4, ws, wa, NULL, 0),
                   *vb = cn_var_wrap(g, 4, ws, wb, NULL, 0);
            cn_var *y = cn_add(g, cn_conv2d(g, h, va, NULL, &p), cn_conv2d(g, h, vb, NULL, &p));
            CHECK_OK(
                cn_backward(g, cn_sum(g, cn_mul(g, y, cn_var_wrap(g, 4, y->shape, r, NULL, 0)))));
            /* the caller's gradient gets one conv's, then the other's (in
             * the order C evaluated the arguments of cn_add); the graph's
             * is their sum, added to the caller's through the product */
            size_t i = 0;
            while (i < nx &&
                   (owned ? gx0[i] == gx[i] + (ga[i] + gb[i])
                          : gx0[i] == (gx[i] + ga[i]) + gb[i] || gx0[i] == (gx[i] + gb[i]) + ga[i]))
                i++;
            CHECK(i == nx, "config %zu (%s, owned %d): grad %g at %zu, want %g + %g + %g", k,
                  cn__conv2d_impl_name(&d, 1), owned, (double)gx0[i % nx], i, (double)gx[i % nx],
                  (double)ga[i % nx], (double)gb[i % nx]);
            cn_graph_free(g);
            free(gx0), free(one);
        }
        free(x), free(wa), free(wb), free(r), free(ga), free(gb), free(gx);
    }
}

/* A variable passed to a convolution as both input and weight (x and w
 * of the same shape [3,3,2,2]) gets both gradients, added: the input's
 * (cn_conv2d_bwd_data) and the weight's (cn_conv2d_bwd_weights), exactly,
 * from integer data, as a graph-owned gradient and as the caller's. */
static void a_variable_that_is_input_and_weight_gets_both_gradients(void)
{
    int64_t s[4] = {3, 3, 2, 2};
    cn_conv2d_params p = cn_conv2d_params_default();
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
    cn_conv2d_desc d;
    CHECK_OK(cn_conv2d_setup(&d, &p, s, s));
    float v[36], r[36], gd[36], gw[36], one[36];
    for (int i = 0; i < 36; i++) v[i] = (float)tl_randint(-2, 2), r[i] = (float)tl_randint(-2, 2);
    for (int i = 0; i < 36; i++) one[i] = 1.0f;
    CHECK_OK(cn_conv2d_bwd_data(NULL, &d, r, v, gd, NULL));
    CHECK_OK(cn_conv2d_bwd_weights(NULL, &d, v, r, gw, NULL, NULL));
    for (int owned = 0; owned < 2 && tl_ok(); owned++) {
        cn_graph *g;
        CHECK_OK(cn_graph_new(&g, NULL));
        float gv[36] = {0};
        cn_var *x = cn_var_wrap(g, 4, s, v, gv, 1);
        cn_var *h = owned ? cn_mul(g, x, cn_var_wrap(g, 4, s, one, NULL, 0)) : x;
        cn_var *y = cn_conv2d(g, h, h, NULL, &p);
        CHECK_OK(cn_backward(g, cn_sum(g, cn_mul(g, y, cn_var_wrap(g, 4, s, r, NULL, 0)))));
        for (int i = 0; i < 36 && tl_ok(); i++)
            CHECK(gv[i] == gd[i] + gw[i], "owned %d: grad[%d] = %g, want %g + %g", owned, i,
                  (double)gv[i], (double)gd[i], (double)gw[i]);
        cn_graph_free(g);
    }
}

static void no_grad_mode_records_nothing(void)
{
    cn_graph *g;
    CHECK_OK(cn_graph_new(&g, NULL));
    cn_graph_set_grad_enabled(g, 0);
    float x[2] = {1, -1}, gx[2] = {0, 0};
    int64_t s[1] = {2};
    cn_var *v = cn_var_wrap(g, 1, s, x, gx, 1);
    cn_var *l = cn_sum(g, cn_relu(g, v));
    CHECK(l && l->data[0] == 1.0f, "forward still computes");
    CHECK(!l->requires_grad, "no-grad output requires no grad");
    CHECK(cn_backward(g, l) == CN_ERR_INVALID_ARG, "backward without a tape is an error");
    CHECK(strstr(cn_last_error(), "does not depend"), "message: %s", cn_last_error());
    cn_graph_free(g);
}

static void errors_are_sticky_and_name_the_op(void)
{
    cn_graph *g;
    CHECK_OK(cn_graph_new(&g, NULL));
    float a[6] = {0}, b[4] = {0};
    int64_t sa[2] = {2, 3}, sb[2] = {2, 2};
    cn_var *va = cn_var_wrap(g, 2, sa, a, NULL, 1), *vb = cn_var_wrap(g, 2, sb, b, NULL, 1);
    cn_var *bad = cn_add(g, va, vb);
    CHECK(bad == NULL, "add of mismatched shapes");
    CHECK(strstr(cn_last_error(), "add: shapes differ: [2,3] and [2,2]"), "message: %s",
          cn_last_error());
    CHECK(cn_relu(g, va) == NULL, "later ops fail too");
    CHECK(cn_graph_status(g) == CN_ERR_INVALID_ARG, "status kept");
    CHECK(cn_backward(g, bad) == CN_ERR_INVALID_ARG, "backward reports it");
    cn_graph_reset(g);
    CHECK(cn_graph_status(g) == CN_OK, "reset clears the error");
    cn_graph_free(g);
}

static void memory_does_not_grow_over_thousands_of_steps(void)
{
    net t = {0};
    net_a_leaves(&t);
    t.theta = calloc(t.total, sizeof(float));
    t.grad = calloc(t.total, sizeof(float));
    tl_fill(t.theta, t.total, -1, 1);
    for (int i = 0; i < 64; i++) t.rv[i] = 1;
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    cn_graph *g;
    CHECK_OK(cn_graph_new(&g, &ctx));
    size_t after_first = 0;
    for (int step = 0; step < 2000; step++) {
        cn_graph_reset(g);
        cn_var *l = net_a(g, &t);
        CHECK_OK(cn_backward(g, l));
        if (step == 0) after_first = cn_graph_arena_bytes(g);
    }
    CHECK(cn_graph_arena_bytes(g) == after_first, "arena grew from %zu to %zu bytes", after_first,
          cn_graph_arena_bytes(g));
    cn_graph_free(g);
    free(t.theta), free(t.grad);
}

int main(void)
{
    TL_RUN(network_gradients_match_central_differences);
    TL_RUN(fused_conv_relu_equals_conv_then_relu);
    TL_RUN(fused_bn_relu_and_add_relu_equal_the_ops_then_relu);
    TL_RUN(model_forward_is_the_same_fused_or_layer_by_layer);
    TL_RUN(gradients_accumulate_over_uses_and_calls);
    TL_RUN(an_input_of_two_convs_gets_the_sum_of_their_gradients);
    TL_RUN(a_variable_that_is_input_and_weight_gets_both_gradients);
    TL_RUN(no_grad_mode_records_nothing);
    TL_RUN(errors_are_sticky_and_name_the_op);
    TL_RUN(memory_does_not_grow_over_thousands_of_steps);
    return tl_summary();
}
