/* A training step and a full evaluation pass over a dataset. */
#include <string.h>

#include "convnet/data.h"
#include "convnet/nn.h"
#include "convnet/optim.h"
#include "internal.h"

/* Number of rows of logits [count,K] whose largest entry is the label. */
static int64_t hits(const float *logits, int64_t count, int64_t K, const int32_t *y, int32_t *pred)
{
    int64_t h = 0;
    for (int64_t i = 0; i < count; i++) {
        const float *r = logits + i * K;
        int64_t best = 0;
        for (int64_t k = 1; k < K; k++)
            if (r[k] > r[best]) best = k;
        if (pred) pred[i] = (int32_t)best;
        h += best == y[i];
    }
    return h;
}

static int64_t classes(const cn_model *m) { return m->out_ndim == 1 ? m->out_shape[0] : 0; }

cn_status cn_model_train_step(cn_model *m, cn_graph *g, cn_optim *o, float lr, const float *x,
                              const int32_t *y, int count, double *loss, int64_t *correct)
{
    if (count < 1) return cn__err(CN_ERR_INVALID_ARG, "train: empty batch");
    if (!classes(m))
        return cn__err(CN_ERR_INVALID_ARG, "train: model %s does not end in a [classes] output",
                       m->name);
    cn_graph_reset(g);
    cn_graph_set_grad_enabled(g, 1);
    cn_model_zero_grad(m);
    int64_t xs[4] = {count, m->in_shape[0], m->in_shape[1], m->in_shape[2]};
    /* The batch is only read: wrapping it without a copy is safe. */
    cn_var *vx = cn_var_wrap(g, 4, xs, (float *)x, NULL, 0);
    cn_var *logits = cn_model_forward(m, g, vx, 1);
    if (!logits) return cn_graph_status(g) ? cn_graph_status(g) : CN_ERR_INVALID_ARG;
    cn_var *l = cn_softmax_cross_entropy(g, logits, y);
    cn_status s = cn_backward(g, l);
    if (s) return s;
    cn_optim_step(o, lr, m->params, m->grads);
    if (loss) *loss = l->data[0];
    if (correct) *correct = hits(logits->data, count, classes(m), y, NULL);
    return CN_OK;
}

cn_status cn_model_evaluate(cn_model *m, cn_graph *g, const cn_dataset *ds, int batch_size,
                            double *loss, double *accuracy, int32_t *pred, float *probs)
{
    const int64_t K = classes(m);
    if (!K) return cn__err(CN_ERR_INVALID_ARG, "eval: model %s does not end in a [classes] output", m->name);
    if (batch_size < 1) return cn__err(CN_ERR_INVALID_ARG, "eval: batch_size=%d must be >= 1", batch_size);
    if (ds->h != m->in_shape[0] || ds->w != m->in_shape[1] || ds->c != m->in_shape[2])
        return cn__err(CN_ERR_INVALID_ARG,
                       "eval: dataset images are %lldx%lldx%lld, model %s takes %lldx%lldx%lld",
                       (long long)ds->h, (long long)ds->w, (long long)ds->c, m->name,
                       (long long)m->in_shape[0], (long long)m->in_shape[1], (long long)m->in_shape[2]);
    if (ds->num_classes > K)
        return cn__err(CN_ERR_INVALID_ARG, "eval: dataset has %d classes, model %s outputs %lld",
                       ds->num_classes, m->name, (long long)K);
    const int64_t img = ds->h * ds->w * ds->c;
    double total = 0;
    int64_t right = 0;
    cn_graph_set_grad_enabled(g, 0);
    cn_status s = CN_OK;
    for (int64_t at = 0; at < ds->n && !s; at += batch_size) {
        int64_t count = CN__MIN((int64_t)batch_size, ds->n - at);
        cn_graph_reset(g);
        int64_t xs[4] = {count, ds->h, ds->w, ds->c};
        cn_var *vx = cn_var_wrap(g, 4, xs, ds->x + at * img, NULL, 0);
        cn_var *logits = cn_model_forward(m, g, vx, 0);
        cn_var *l = cn_softmax_cross_entropy(g, logits, ds->y + at);
        if (!l) {
            s = cn_graph_status(g) ? cn_graph_status(g) : CN_ERR_INVALID_ARG;
            break;
        }
        total += (double)l->data[0] * (double)count;
        right += hits(logits->data, count, K, ds->y + at, pred ? pred + at : NULL);
        if (probs) cn_softmax_fwd(count, K, logits->data, probs + at * K);
    }
    cn_graph_set_grad_enabled(g, 1);
    if (s) return s;
    if (loss) *loss = ds->n ? total / (double)ds->n : 0;
    if (accuracy) *accuracy = ds->n ? (double)right / (double)ds->n : 0;
    return CN_OK;
}
