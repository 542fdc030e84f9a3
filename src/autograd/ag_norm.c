/* Differentiable batch norm, dropout, log-softmax and cross-entropy. */
#include <string.h>

#include "autograd/graph_internal.h"
#include "ops/batchnorm_internal.h"

typedef struct bn_saved {
    int training, relu;
    float *mean, *invstd;  /* [C]: batch statistics, or running ones in eval */
    float *norm;           /* [4][C] (training, fused ReLU, no residual) or NULL */
} bn_saved;

static void bn_bwd(cn_graph *g, cn__node *n)
{
    const bn_saved *s = n->saved;
    cn_var *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
    const int64_t C = x->shape[3], M = (int64_t)x->size / (C ? C : 1);
    cn_var *res = n->in[3];
    /* add_relu's residual gradient is the ReLU's, which the batch norm's
     * backward needs too: one pass stores it while summing, the next reads
     * it instead of y and gy. It is added into the residual's gradient
     * first, as the separate add's backward runs before the batch norm's:
     * contributions to a variable used by both then add up in the same
     * order. A residual that is also x, gamma or beta must be done first
     * on its own (its gradient could be written twice at once). */
    const int own = res && (res == x || res == gamma || res == beta);
    float *gr = cn__grad_begin(g, res);
    if (gr && own) {
        cn_act_bwd(g->ctx, CN_ACT_RELU, 0.0f, n->out->size, NULL, n->out->data, n->out->grad, gr);
        cn__grad_end(g, res, gr);
    }
    float *gx = cn__grad_begin(g, x), *gg = cn__grad_begin(g, gamma), *gb = cn__grad_begin(g, beta);
    if (g->status) return;
    if (gr && !own) {
        cn_batchnorm_bwd_add_relu(g->ctx, s->training, M, C, x->data, gamma->data, s->mean,
                                  s->invstd, n->out->data, n->out->grad, gr, gx, gg, gb);
        cn__grad_end(g, res, gr);
    } else if (s->norm)
        cn__batchnorm_bwd_relu_norm(g->ctx, M, C, x->data, gamma->data, s->mean, s->invstd, s->norm,
                                    n->out->grad, gx, gg, gb);
    else if (s->relu)
        cn_batchnorm_bwd_relu(g->ctx, s->training, M, C, x->data, gamma->data, s->mean, s->invstd,
                              n->out->data, n->out->grad, gx, gg, gb);
    else
        cn_batchnorm_bwd(g->ctx, s->training, M, C, x->data, gamma->data, s->mean, s->invstd,
                         n->out->grad, gx, gg, gb);
    cn__grad_end(g, x, gx), cn__grad_end(g, gamma, gg), cn__grad_end(g, beta, gb);
}

/* batch_norm2d; relu: 0 alone, 1 with the ReLU fused in, 2 with res (not
 * NULL) added before the ReLU. */
static cn_var *bn_op(cn_graph *g, const char *op, int relu, cn_var *x, cn_var *gamma, cn_var *beta,
                     float *running_mean, float *running_var, const cn_bn_params *p, int training,
                     cn_var *res)
{
    char s1[64], s2[64];
    if (cn__bad(g, 3, x, gamma, beta)) return NULL;
    if (relu == 2) {
        if (cn__bad(g, 1, res, NULL, NULL)) return NULL;
        int same = res->ndim == x->ndim;
        for (int i = 0; same && i < x->ndim; i++) same = res->shape[i] == x->shape[i];
        if (!same)
            return cn__fail(g, CN_ERR_INVALID_ARG, "%s: res %s must have x's shape %s", op,
                            cn__shape(res, s1, sizeof s1), cn__shape(x, s2, sizeof s2));
    }
    if (x->ndim != 4)
        return cn__fail(g, CN_ERR_INVALID_ARG, "%s: x must be 4-D [N,H,W,C], got %s", op,
                        cn__shape(x, s1, sizeof s1));
    const int64_t C = x->shape[3], M = (int64_t)x->size / (C ? C : 1);
    if (gamma->size != (size_t)C || beta->size != (size_t)C) {
        const cn_var *bad = gamma->size != (size_t)C ? gamma : beta;
        return cn__fail(g, CN_ERR_INVALID_ARG, "%s: %s %s must have C=%lld elements (x is %s)",
                        op, bad == gamma ? "gamma" : "beta", cn__shape(bad, s1, sizeof s1),
                        (long long)C, cn__shape(x, s2, sizeof s2));
    }
    cn_var *y = cn__out(g, 4, x->shape, x, gamma, beta, res);
    bn_saved *s = y ? cn__arena(g, sizeof *s) : NULL;
    if (!s) return NULL;
    s->training = training, s->relu = relu;
    s->mean = cn__arena(g, (size_t)C * sizeof(float));
    s->invstd = cn__arena(g, (size_t)C * sizeof(float));
    /* With its normalisation kept, the ReLU's backward recomputes its
     * input from x rather than read y (a batch norm's backward reads x
     * anyway). */
    const int keep = relu == 1 && training && y->requires_grad;
    s->norm = keep ? cn__arena(g, 4 * (size_t)C * sizeof(float)) : NULL;
    if (!s->mean || !s->invstd || (keep && !s->norm)) return NULL;
    cn_status st;
    if (res)
        st = cn_batchnorm_fwd_add_relu(g->ctx, p, training, M, C, x->data, gamma->data, beta->data,
                                       running_mean, running_var, s->mean, s->invstd, res->data,
                                       y->data);
    else if (keep)
        st = cn__batchnorm_fwd_relu_norm(g->ctx, p, training, M, C, x->data, gamma->data,
                                         beta->data, running_mean, running_var, s->mean, s->invstd,
                                         y->data, s->norm);
    else
        st = (relu ? cn_batchnorm_fwd_relu
                   : cn_batchnorm_fwd)(g->ctx, p, training, M, C, x->data, gamma->data, beta->data,
                                       running_mean, running_var, s->mean, s->invstd, y->data);
    if (st) return cn__fail(g, st, "%s", cn_last_error());
    if (y->requires_grad) {
        cn__node *n = cn__record(g, op, y, bn_bwd, x, gamma, beta, res);
        if (!n) return NULL;
        n->saved = s;
    }
    return y;
}

cn_var *cn_batch_norm2d(cn_graph *g, cn_var *x, cn_var *gamma, cn_var *beta, float *running_mean,
                        float *running_var, const cn_bn_params *p, int training)
{
    return bn_op(g, "batch_norm2d", 0, x, gamma, beta, running_mean, running_var, p, training,
                 NULL);
}

cn_var *cn_batch_norm2d_relu(cn_graph *g, cn_var *x, cn_var *gamma, cn_var *beta,
                             float *running_mean, float *running_var, const cn_bn_params *p,
                             int training)
{
    return bn_op(g, "batch_norm2d_relu", 1, x, gamma, beta, running_mean, running_var, p, training,
                 NULL);
}

cn_var *cn_batch_norm2d_add_relu(cn_graph *g, cn_var *x, cn_var *gamma, cn_var *beta,
                                 float *running_mean, float *running_var, const cn_bn_params *p,
                                 int training, cn_var *res)
{
    return bn_op(g, "batch_norm2d_add_relu", 2, x, gamma, beta, running_mean, running_var, p,
                 training, res);
}

typedef struct dropout_saved {
    float p;
    uint8_t *mask;
} dropout_saved;

static void dropout_bwd(cn_graph *g, cn__node *n)
{
    const dropout_saved *s = n->saved;
    float *gx = cn__grad_begin(g, n->in[0]);
    if (!gx) return;
    cn_dropout_bwd(s->p, n->out->size, s->mask, n->out->grad, gx);
    cn__grad_end(g, n->in[0], gx);
}

cn_var *cn_dropout(cn_graph *g, cn_var *x, float p, int training)
{
    if (cn__bad(g, 1, x, NULL, NULL)) return NULL;
    if (!(p >= 0.0f && p < 1.0f))
        return cn__fail(g, CN_ERR_INVALID_ARG, "dropout: p=%g must be in [0, 1)", (double)p);
    if (!training || p == 0.0f) return x;
    if (!g->ctx)
        return cn__fail(g, CN_ERR_INVALID_ARG, "dropout: training needs a graph with a cn_ctx for its RNG");
    cn_var *y = cn__out(g, x->ndim, x->shape, x, NULL, NULL, NULL);
    dropout_saved *s = y ? cn__arena(g, sizeof *s) : NULL;
    if (!s || !(s->mask = cn__arena(g, x->size))) return NULL;
    s->p = p;
    cn_dropout_fwd(g->ctx, p, x->size, x->data, s->mask, y->data);
    if (y->requires_grad) {
        cn__node *n = cn__record(g, "dropout", y, dropout_bwd, x, NULL, NULL, NULL);
        if (!n) return NULL;
        n->saved = s;
    }
    return y;
}

static void log_softmax_bwd(cn_graph *g, cn__node *n)
{
    cn_var *x = n->in[0];
    float *gx = cn__grad_begin(g, x);
    if (!gx) return;
    cn_log_softmax_bwd(x->shape[0], x->shape[1], n->out->data, n->out->grad, gx);
    cn__grad_end(g, x, gx);
}

cn_var *cn_log_softmax(cn_graph *g, cn_var *x)
{
    char s1[64];
    if (cn__bad(g, 1, x, NULL, NULL)) return NULL;
    if (x->ndim != 2)
        return cn__fail(g, CN_ERR_INVALID_ARG, "log_softmax: x must be 2-D [N,K], got %s",
                        cn__shape(x, s1, sizeof s1));
    cn_var *y = cn__out(g, 2, x->shape, x, NULL, NULL, NULL);
    if (!y) return NULL;
    cn_log_softmax_fwd(x->shape[0], x->shape[1], x->data, y->data);
    if (y->requires_grad &&
        !cn__record(g, "log_softmax", y, log_softmax_bwd, x, NULL, NULL, NULL))
        return NULL;
    return y;
}

typedef struct xent_saved {
    float *probs;
    int32_t *labels;
} xent_saved;

static void xent_bwd(cn_graph *g, cn__node *n)
{
    const xent_saved *s = n->saved;
    cn_var *x = n->in[0];
    float *gx = cn__grad_begin(g, x);
    if (!gx) return;
    cn_xent_bwd(x->shape[0], x->shape[1], s->probs, s->labels, n->out->grad[0], gx);
    cn__grad_end(g, x, gx);
}

cn_var *cn_softmax_cross_entropy(cn_graph *g, cn_var *logits, const int32_t *labels)
{
    char s1[64];
    if (cn__bad(g, 1, logits, NULL, NULL)) return NULL;
    if (logits->ndim != 2 || logits->shape[0] < 1 || logits->shape[1] < 1)
        return cn__fail(g, CN_ERR_INVALID_ARG,
                        "softmax_cross_entropy: logits must be [N,K] with N, K >= 1, got %s",
                        cn__shape(logits, s1, sizeof s1));
    if (!labels) return cn__fail(g, CN_ERR_INVALID_ARG, "softmax_cross_entropy: labels are NULL");
    const int64_t N = logits->shape[0];
    cn_var *y = cn__out(g, 0, NULL, logits, NULL, NULL, NULL);
    xent_saved *s = y ? cn__arena(g, sizeof *s) : NULL;
    if (!s) return NULL;
    s->probs = cn__arena(g, logits->size * sizeof(float));
    s->labels = cn__arena(g, (size_t)N * sizeof(int32_t));
    if (!s->probs || !s->labels) return NULL;
    /* The labels are copied: the caller's batch buffer may be refilled
     * before backward runs. */
    memcpy(s->labels, labels, (size_t)N * sizeof(int32_t));
    cn_status st = cn_xent_fwd(N, logits->shape[1], logits->data, s->labels, s->probs, y->data);
    if (st) return cn__fail(g, st, "%s", cn_last_error());
    if (y->requires_grad) {
        cn__node *n =
            cn__record(g, "softmax_cross_entropy", y, xent_bwd, logits, NULL, NULL, NULL);
        if (!n) return NULL;
        n->saved = s;
    }
    return y;
}
