/* Differentiable convolutions and pooling: each op's forward and backward
 * side by side, on top of the raw passes in src/ops. */
#include <string.h>

#include "autograd/graph_internal.h"
#include "ops/conv_internal.h"

typedef struct conv_saved {
    cn_conv2d_desc d;
    int transposed, relu;
} conv_saved;

/* A conv-family pass's workspace: dead once the pass returns (the
 * backward gets its own), so every pass shares the graph's scratch. */
static void *conv_ws(cn_graph *g, const cn_conv2d_desc *d)
{
    return cn__scratch(g, cn_conv2d_workspace_size(d));
}

static void conv_bwd(cn_graph *g, cn__node *n)
{
    const conv_saved *s = n->saved;
    cn_var *x = n->in[0], *w = n->in[1], *b = n->in[2];
    void *ws = conv_ws(g, &s->d);
    if (!ws || g->status) return;
    const float *gy = n->out->grad;
    if (s->relu) {
        /* through the fused ReLU first, exactly as cn_relu's backward */
        const cn_var *y = n->out;
        float *gm = cn__arena(g, y->size * sizeof *gm);
        if (!gm) return;
        cn_act_bwd(g->ctx, CN_ACT_RELU, 0.0f, y->size, NULL, y->data, gy, gm);
        gy = gm;
    }
    /* The input's gradient is finished before the weight's buffer is
     * chosen, so that a variable passed as both gets the two added, not one
     * written over the other. A second consumer's input gradient is added
     * in place where the kernel can: a pass over gx and a gx-sized buffer
     * fewer. */
    float *gx_acc = !s->transposed && cn__conv2d_bwd_data_accumulates(&s->d)
                        ? cn__grad_accumulator(g, x)
                        : NULL;
    float *gx = gx_acc ? gx_acc : cn__grad_begin(g, x);
    if (g->status) return;
    cn_status st = CN_OK;
    if (gx_acc)
        st = cn__conv2d_bwd_data_acc(g->ctx, &s->d, gy, w->data, gx, ws);
    else if (gx && !s->transposed)
        st = cn_conv2d_bwd_data(g->ctx, &s->d, gy, w->data, gx, ws);
    else if (gx)
        st = cn_conv_transpose2d_bwd_data(g->ctx, &s->d, gy, w->data, gx, ws);
    if (st) {
        cn__fail(g, st, "%s", cn_last_error());
        return;
    }
    cn__grad_end(g, x, gx);
    float *gw = cn__grad_begin(g, w), *gb = cn__grad_begin(g, b);
    if (g->status || (!gw && !gb)) return;
    st = s->transposed ? cn_conv_transpose2d_bwd_weights(g->ctx, &s->d, x->data, gy, gw, gb, ws)
                       : cn_conv2d_bwd_weights(g->ctx, &s->d, x->data, gy, gw, gb, ws);
    if (st) {
        cn__fail(g, st, "%s", cn_last_error());
        return;
    }
    cn__grad_end(g, w, gw), cn__grad_end(g, b, gb);
}

/* Shared by conv2d / conv1d / conv_transpose2d once d is set up: y has
 * ndim dims (4, or 3 for conv1d). */
static cn_var *conv_common(cn_graph *g, const char *op, const cn_conv2d_desc *d, int transposed,
                           int relu, cn_var *x, cn_var *w, cn_var *b, int ndim)
{
    const int64_t OC = transposed ? d->IC : d->OC;
    char sb[64];
    if (b && (b->ndim != 1 || b->shape[0] != OC))
        return cn__fail(g, CN_ERR_INVALID_ARG, "%s: bias must be [%lld], got %s", op,
                        (long long)OC, cn__shape(b, sb, sizeof sb));
    int64_t ys[4];
    if (transposed) ys[0] = d->MB, ys[1] = d->IH, ys[2] = d->IW, ys[3] = d->IC;
    else ys[0] = d->MB, ys[1] = d->OH, ys[2] = d->OW, ys[3] = d->OC;
    if (ndim == 3) ys[1] = ys[2], ys[2] = ys[3];
    cn_var *y = cn__out(g, ndim, ys, x, w, b, NULL);
    void *ws = y ? conv_ws(g, d) : NULL;
    if (!ws) return NULL;
    cn_status st = transposed
                       ? cn_conv_transpose2d_fwd(g->ctx, d, x->data, w->data, b ? b->data : NULL, y->data, ws)
                   : relu ? cn_conv2d_fwd_relu(g->ctx, d, x->data, w->data, b ? b->data : NULL, y->data, ws)
                          : cn_conv2d_fwd(g->ctx, d, x->data, w->data, b ? b->data : NULL, y->data, ws);
    if (st) return cn__fail(g, st, "%s", cn_last_error());
    if (y->requires_grad) {
        cn__node *n = cn__record(g, op, y, conv_bwd, x, w, b, NULL);
        conv_saved *s = n ? cn__arena(g, sizeof *s) : NULL;
        if (!s) return NULL;
        s->d = *d, s->transposed = transposed, s->relu = relu;
        n->saved = s;
    }
    return y;
}

static int check_rank(cn_graph *g, const char *op, const char *name, const cn_var *v, int ndim,
                      const char *layout)
{
    char sb[64];
    if (v->ndim == ndim) return 1;
    cn__fail(g, CN_ERR_INVALID_ARG, "%s: %s must be %d-D %s, got %s", op, name, ndim, layout,
             cn__shape(v, sb, sizeof sb));
    return 0;
}

/* conv2d, with the ReLU fused in when relu. */
static cn_var *conv2d_op(cn_graph *g, const char *op, int relu, cn_var *x, cn_var *w, cn_var *b,
                         const cn_conv2d_params *p)
{
    if (cn__bad(g, 2, x, w, NULL)) return NULL;
    if (!check_rank(g, op, "x", x, 4, "[N,H,W,C_in]") ||
        !check_rank(g, op, "weight", w, 4, "[KH,KW,C_in/G,C_out]"))
        return NULL;
    cn_conv2d_desc d;
    cn_status s = cn_conv2d_setup(&d, p, x->shape, w->shape);
    if (s) return cn__fail(g, s, "%s", cn_last_error());
    return conv_common(g, op, &d, 0, relu, x, w, b, 4);
}

cn_var *cn_conv2d(cn_graph *g, cn_var *x, cn_var *w, cn_var *b, const cn_conv2d_params *p)
{
    return conv2d_op(g, "conv2d", 0, x, w, b, p);
}

cn_var *cn_conv2d_relu(cn_graph *g, cn_var *x, cn_var *w, cn_var *b, const cn_conv2d_params *p)
{
    return conv2d_op(g, "conv2d_relu", 1, x, w, b, p);
}

cn_var *cn_conv1d(cn_graph *g, cn_var *x, cn_var *w, cn_var *b, const cn_conv2d_params *p)
{
    if (cn__bad(g, 2, x, w, NULL)) return NULL;
    if (!check_rank(g, "conv1d", "x", x, 3, "[N,L,C_in]") ||
        !check_rank(g, "conv1d", "weight", w, 3, "[K,C_in/G,C_out]"))
        return NULL;
    cn_conv2d_desc d;
    cn_status s = cn_conv1d_setup(&d, p, x->shape, w->shape);
    if (s) return cn__fail(g, s, "%s", cn_last_error());
    return conv_common(g, "conv1d", &d, 0, 0, x, w, b, 3);
}

cn_var *cn_conv_transpose2d(cn_graph *g, cn_var *x, cn_var *w, cn_var *b,
                            const cn_conv_transpose2d_params *p)
{
    const char *op = "conv_transpose2d";
    if (cn__bad(g, 2, x, w, NULL)) return NULL;
    if (!check_rank(g, op, "x", x, 4, "[N,H,W,C_in]") ||
        !check_rank(g, op, "weight", w, 4, "[KH,KW,C_out/G,C_in]"))
        return NULL;
    cn_conv2d_desc d;
    cn_status s = cn_conv_transpose2d_setup(&d, p, x->shape, w->shape);
    if (s) return cn__fail(g, s, "%s", cn_last_error());
    /* In d's terms our x is the conv2d's output gradient. */
    return conv_common(g, op, &d, 1, 0, x, w, b, 4);
}

/* ---- pooling ---------------------------------------------------------- */
typedef struct pool_saved {
    cn_pool2d_desc d;
    int64_t *idx;  /* max pooling: argmax per output element */
} pool_saved;

static void pool_bwd(cn_graph *g, cn__node *n)
{
    const pool_saved *s = n->saved;
    float *gx = cn__grad_begin(g, n->in[0]);
    if (!gx) return;
    if (s->d.type == CN_POOL_MAX) cn_max_pool2d_bwd(g->ctx, &s->d, s->idx, n->out->grad, gx);
    else cn_avg_pool2d_bwd(g->ctx, &s->d, n->out->grad, gx);
    cn__grad_end(g, n->in[0], gx);
}

static cn_var *pool(cn_graph *g, cn_var *x, const cn_pool2d_params *p, cn_pool_type type)
{
    const char *op = type == CN_POOL_MAX ? "max_pool2d" : "avg_pool2d";
    if (cn__bad(g, 1, x, NULL, NULL)) return NULL;
    if (!check_rank(g, op, "x", x, 4, "[N,H,W,C]")) return NULL;
    pool_saved s = {0};
    cn_status st = cn_pool2d_setup(&s.d, p, type, x->shape);
    if (st) return cn__fail(g, st, "%s", cn_last_error());
    int64_t ys[4] = {s.d.MB, s.d.OH, s.d.OW, s.d.C};
    cn_var *y = cn__out(g, 4, ys, x, NULL, NULL, NULL);
    if (!y) return NULL;
    if (type == CN_POOL_MAX && y->requires_grad && !(s.idx = cn__arena(g, y->size * sizeof(int64_t))))
        return NULL;
    st = type == CN_POOL_MAX ? cn_max_pool2d_fwd(g->ctx, &s.d, x->data, y->data, s.idx)
                             : cn_avg_pool2d_fwd(g->ctx, &s.d, x->data, y->data);
    if (st) return cn__fail(g, st, "%s", cn_last_error());
    if (y->requires_grad) {
        cn__node *n = cn__record(g, op, y, pool_bwd, x, NULL, NULL, NULL);
        pool_saved *ps = n ? cn__arena(g, sizeof *ps) : NULL;
        if (!ps) return NULL;
        *ps = s;
        n->saved = ps;
    }
    return y;
}

cn_var *cn_max_pool2d(cn_graph *g, cn_var *x, const cn_pool2d_params *p)
{
    return pool(g, x, p, CN_POOL_MAX);
}

cn_var *cn_avg_pool2d(cn_graph *g, cn_var *x, const cn_pool2d_params *p)
{
    return pool(g, x, p, CN_POOL_AVG);
}

static void gap_bwd(cn_graph *g, cn__node *n)
{
    cn_var *x = n->in[0];
    float *gx = cn__grad_begin(g, x);
    if (!gx) return;
    cn_global_avg_pool2d_bwd(g->ctx, x->shape[0], x->shape[1], x->shape[2], x->shape[3],
                             n->out->grad, gx);
    cn__grad_end(g, x, gx);
}

cn_var *cn_global_avg_pool2d(cn_graph *g, cn_var *x)
{
    if (cn__bad(g, 1, x, NULL, NULL)) return NULL;
    if (!check_rank(g, "global_avg_pool2d", "x", x, 4, "[N,H,W,C]")) return NULL;
    int64_t ys[2] = {x->shape[0], x->shape[3]};
    cn_var *y = cn__out(g, 2, ys, x, NULL, NULL, NULL);
    if (!y) return NULL;
    cn_status st = cn_global_avg_pool2d_fwd(g->ctx, x->shape[0], x->shape[1], x->shape[2],
                                            x->shape[3], x->data, y->data);
    if (st) return cn__fail(g, st, "%s", cn_last_error());
    if (y->requires_grad && !cn__record(g, "global_avg_pool2d", y, gap_bwd, x, NULL, NULL, NULL))
        return NULL;
    return y;
}
