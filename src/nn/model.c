/* Models: a sequence of layers over one flat parameter buffer, built with
 * shape inference, initialised like PyTorch, applied on the autodiff graph. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convnet/nn.h"
#include "internal.h"

struct cn_layer {
    cn_layer_kind kind;
    char name[CN_NAME_MAX];
    int64_t out_shape[3];   /* without the batch axis */
    int out_ndim;
    size_t n_params;
    int t_w, t_b, t_rm, t_rv;          /* tensor indices, -1 if none */
    cn_conv2d_params conv;
    cn_pool2d_params pool;
    cn_pool_type pool_type;
    cn_bn_params bn;
    float p;                           /* dropout */
    cn_layer *sub[6];                  /* residual: conv1 bn1 conv2 bn2 [sc_conv sc_bn] */
};

static const char *const kind_names[] = {"conv2d",  "linear",  "batchnorm2d", "relu",
                                         "maxpool2d", "avgpool2d", "global_avgpool2d", "dropout",
                                         "flatten", "residual"};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == CN_LAYER_KIND_COUNT,
               "one name per layer kind");

static void fail(cn_model *m, cn_status s, const char *fmt, ...) CN__PRINTF(3, 4);
static void fail(cn_model *m, cn_status s, const char *fmt, ...)
{
    if (m->status) return;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    m->status = cn__err(s, "model %s: %s", m->name, msg);
}

cn_status cn_model_new(cn_model **out, const char *name, int64_t H, int64_t W, int64_t C)
{
    *out = NULL;
    if (H < 1 || W < 1 || C < 1)
        return cn__err(CN_ERR_INVALID_ARG, "model: input shape [%lld,%lld,%lld] must be positive",
                       (long long)H, (long long)W, (long long)C);
    size_t n;
    if (cn_shape_numel(3, (const int64_t[3]){H, W, C}, &n))
        return cn__err(CN_ERR_OVERFLOW, "model: input shape [%lld,%lld,%lld]: %s", (long long)H,
                       (long long)W, (long long)C, cn_last_error());
    cn_model *m = calloc(1, sizeof *m);
    if (!m) return cn__err(CN_ERR_NO_MEMORY, "model: out of memory");
    snprintf(m->name, sizeof m->name, "%s", name ? name : "model");
    m->in_shape[0] = m->out_shape[0] = H;
    m->in_shape[1] = m->out_shape[1] = W;
    m->in_shape[2] = m->out_shape[2] = C;
    m->out_ndim = 3;
    *out = m;
    return CN_OK;
}

static void layer_free(cn_layer *l)
{
    if (!l) return;
    for (int i = 0; i < 6; i++) layer_free(l->sub[i]);
    free(l);
}

void cn_model_free(cn_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_layers; i++) layer_free(m->layers[i]);
    free(m->layers);
    free(m->tensors);
    cn_free(m->params);
    cn_free(m->grads);
    cn_free(m->buffers);
    free(m);
}

/* Registers a tensor view; returns its index or -1 after recording an error. */
static int add_tensor(cn_model *m, const char *layer, const char *what, int is_buffer, int ndim,
                      const int64_t *shape)
{
    if (m->status) return -1;
    cn_model_tensor *t = realloc(m->tensors, (size_t)(m->n_tensors + 1) * sizeof *t);
    if (!t) return fail(m, CN_ERR_NO_MEMORY, "out of memory"), -1;
    m->tensors = t;
    t += m->n_tensors;
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s.%s", layer, what);
    t->is_buffer = is_buffer;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    if (cn_shape_numel(ndim, shape, &t->size))
        return fail(m, CN_ERR_OVERFLOW, "%s.%s: %s", layer, what, cn_last_error()), -1;
    size_t *total = is_buffer ? &m->n_buffers : &m->n_params;
    t->offset = *total;
    /* The flat buffers hold every tensor: their sizes must add up too. */
    if (__builtin_add_overflow(*total, t->size, total) || *total > SIZE_MAX / 8)
        return fail(m, CN_ERR_OVERFLOW, "%s.%s: the model's %s exceed 2^61 floats", layer, what,
                    is_buffer ? "buffers" : "parameters"), -1;
    return m->n_tensors++;
}

/* A new layer named <kind-prefix><k> (conv1, bn2, ...), not yet appended. */
static cn_layer *new_layer(cn_model *m, cn_layer_kind kind, const char *prefix, int *counter)
{
    if (m->status) return NULL;
    cn_layer *l = calloc(1, sizeof *l);
    if (!l) return fail(m, CN_ERR_NO_MEMORY, "out of memory"), NULL;
    l->kind = kind;
    l->t_w = l->t_b = l->t_rm = l->t_rv = -1;
    snprintf(l->name, sizeof l->name, "%s%d", prefix, ++*counter);
    return l;
}

static void append(cn_model *m, cn_layer *l)
{
    if (!l) return;
    cn_layer **ls = realloc(m->layers, (size_t)(m->n_layers + 1) * sizeof *ls);
    if (!ls) {
        layer_free(l);
        fail(m, CN_ERR_NO_MEMORY, "out of memory");
        return;
    }
    m->layers = ls;
    m->layers[m->n_layers++] = l;
    memcpy(m->out_shape, l->out_shape, sizeof l->out_shape);
    m->out_ndim = l->out_ndim;
}

static int need_image(cn_model *m, const char *what, int ndim)
{
    if (ndim == 3) return 1;
    fail(m, CN_ERR_INVALID_ARG, "%s needs an image input [H,W,C], got %d-D features", what, ndim);
    return 0;
}

/* The layer builders below work on (shape, ndim), the activation entering
 * them, so that residual blocks can build their inner layers the same way. */
static cn_layer *make_conv(cn_model *m, const char *name_prefix, int *ctr, const int64_t *in,
                           int64_t out_ch, int64_t k, const cn_conv2d_params *p, int bias)
{
    cn_layer *l = new_layer(m, CN_LAYER_CONV2D, name_prefix, ctr);
    if (!l) return NULL;
    l->conv = *p;
    int64_t xs[4] = {1, in[0], in[1], in[2]}, ws[4] = {k, k, in[2] / (p->groups ? p->groups : 1), out_ch};
    cn_conv2d_desc d;
    cn_status s = cn_conv2d_setup(&d, p, xs, ws);
    if (s) {
        fail(m, s, "%s: %s", l->name, cn_last_error());
        free(l);
        return NULL;
    }
    l->out_shape[0] = d.OH, l->out_shape[1] = d.OW, l->out_shape[2] = out_ch, l->out_ndim = 3;
    l->t_w = add_tensor(m, l->name, "weight", 0, 4, ws);
    if (bias) l->t_b = add_tensor(m, l->name, "bias", 0, 1, &out_ch);
    if (m->status) { /* the counts below fit only once add_tensor took them */
        free(l);
        return NULL;
    }
    l->n_params = (size_t)(k * k * ws[2] * out_ch + (bias ? out_ch : 0));
    return l;
}

static cn_layer *make_bn(cn_model *m, const char *prefix, int *ctr, const int64_t *in)
{
    cn_layer *l = new_layer(m, CN_LAYER_BATCHNORM2D, prefix, ctr);
    if (!l) return NULL;
    memcpy(l->out_shape, in, 3 * sizeof *in);
    l->out_ndim = 3;
    l->bn.eps = 1e-5f, l->bn.momentum = 0.1f;
    l->t_w = add_tensor(m, l->name, "weight", 0, 1, &in[2]);
    l->t_b = add_tensor(m, l->name, "bias", 0, 1, &in[2]);
    l->t_rm = add_tensor(m, l->name, "running_mean", 1, 1, &in[2]);
    l->t_rv = add_tensor(m, l->name, "running_var", 1, 1, &in[2]);
    l->n_params = (size_t)(2 * in[2]);
    return l;
}


/* Layer-name counters live in the model's tensor list: count existing
 * layers of a kind so names stay unique without global state. */
static int count_kind(const cn_model *m, cn_layer_kind k)
{
    int c = 0;
    for (int i = 0; i < m->n_layers; i++) c += m->layers[i]->kind == k;
    return c;
}

void cn_model_conv2d_ex(cn_model *m, int64_t out_ch, int64_t kernel, const cn_conv2d_params *p,
                        int bias)
{
    if (m->status || !need_image(m, "conv2d", m->out_ndim)) return;
    int c = count_kind(m, CN_LAYER_CONV2D);
    append(m, make_conv(m, "conv", &c, m->out_shape, out_ch, kernel, p, bias));
}

void cn_model_conv2d(cn_model *m, int64_t out_ch, int64_t kernel, int stride, int pad)
{
    cn_conv2d_params p = cn_conv2d_params_default();
    p.stride_h = p.stride_w = stride;
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = pad;
    cn_model_conv2d_ex(m, out_ch, kernel, &p, 1);
}

void cn_model_batchnorm2d(cn_model *m)
{
    if (m->status || !need_image(m, "batchnorm2d", m->out_ndim)) return;
    int c = count_kind(m, CN_LAYER_BATCHNORM2D);
    append(m, make_bn(m, "bn", &c, m->out_shape));
}

void cn_model_linear(cn_model *m, int64_t out_features)
{
    if (m->status) return;
    if (m->out_ndim != 1)
        return fail(m, CN_ERR_INVALID_ARG, "linear needs flat features: add a flatten layer first");
    if (out_features < 1)
        return fail(m, CN_ERR_INVALID_ARG, "linear: out_features=%lld must be >= 1",
                    (long long)out_features);
    int c = count_kind(m, CN_LAYER_LINEAR);
    cn_layer *l = new_layer(m, CN_LAYER_LINEAR, "fc", &c);
    if (!l) return;
    int64_t ws[2] = {m->out_shape[0], out_features};
    l->t_w = add_tensor(m, l->name, "weight", 0, 2, ws);
    l->t_b = add_tensor(m, l->name, "bias", 0, 1, &out_features);
    if (m->status) { /* the count below fits only once add_tensor took it */
        free(l);
        return;
    }
    l->out_shape[0] = out_features, l->out_ndim = 1;
    l->n_params = (size_t)((ws[0] + 1) * out_features);
    append(m, l);
}

/* Layers without parameters that keep the shape. */
static void shape_keeping(cn_model *m, cn_layer_kind kind, const char *prefix, float p)
{
    if (m->status) return;
    int c = count_kind(m, kind);
    cn_layer *l = new_layer(m, kind, prefix, &c);
    if (!l) return;
    memcpy(l->out_shape, m->out_shape, sizeof l->out_shape);
    l->out_ndim = m->out_ndim;
    l->p = p;
    append(m, l);
}

void cn_model_relu(cn_model *m) { shape_keeping(m, CN_LAYER_RELU, "relu", 0); }

void cn_model_dropout(cn_model *m, float p)
{
    if (!(p >= 0 && p < 1)) return fail(m, CN_ERR_INVALID_ARG, "dropout: p=%g must be in [0, 1)", (double)p);
    shape_keeping(m, CN_LAYER_DROPOUT, "dropout", p);
}

void cn_model_pool2d_ex(cn_model *m, cn_pool_type type, const cn_pool2d_params *p)
{
    if (m->status || !need_image(m, "pool2d", m->out_ndim)) return;
    cn_layer_kind kind = type == CN_POOL_MAX ? CN_LAYER_MAXPOOL2D : CN_LAYER_AVGPOOL2D;
    int c = count_kind(m, kind);
    cn_layer *l = new_layer(m, kind, type == CN_POOL_MAX ? "maxpool" : "avgpool", &c);
    if (!l) return;
    int64_t xs[4] = {1, m->out_shape[0], m->out_shape[1], m->out_shape[2]};
    cn_pool2d_desc d;
    cn_status s = cn_pool2d_setup(&d, p, type, xs);
    if (s) {
        free(l);
        return fail(m, s, "%s", cn_last_error());
    }
    l->pool = *p, l->pool_type = type;
    l->out_shape[0] = d.OH, l->out_shape[1] = d.OW, l->out_shape[2] = d.C, l->out_ndim = 3;
    append(m, l);
}

void cn_model_maxpool2d(cn_model *m, int kernel)
{
    cn_pool2d_params p = cn_pool2d_params_default(kernel, kernel);
    cn_model_pool2d_ex(m, CN_POOL_MAX, &p);
}

void cn_model_avgpool2d(cn_model *m, int kernel)
{
    cn_pool2d_params p = cn_pool2d_params_default(kernel, kernel);
    cn_model_pool2d_ex(m, CN_POOL_AVG, &p);
}

void cn_model_global_avgpool2d(cn_model *m)
{
    if (m->status || !need_image(m, "global_avgpool2d", m->out_ndim)) return;
    int c = count_kind(m, CN_LAYER_GLOBAL_AVGPOOL2D);
    cn_layer *l = new_layer(m, CN_LAYER_GLOBAL_AVGPOOL2D, "gap", &c);
    if (!l) return;
    l->out_shape[0] = m->out_shape[2], l->out_ndim = 1;
    append(m, l);
}

void cn_model_flatten(cn_model *m)
{
    if (m->status) return;
    int c = count_kind(m, CN_LAYER_FLATTEN);
    cn_layer *l = new_layer(m, CN_LAYER_FLATTEN, "flatten", &c);
    if (!l) return;
    int64_t n = 1;
    for (int i = 0; i < m->out_ndim; i++) n *= m->out_shape[i];
    l->out_shape[0] = n, l->out_ndim = 1;
    append(m, l);
}

void cn_model_residual(cn_model *m, int64_t out_ch, int stride)
{
    if (m->status || !need_image(m, "residual", m->out_ndim)) return;
    if (stride < 1) return fail(m, CN_ERR_INVALID_ARG, "residual: stride=%d must be >= 1", stride);
    int c = count_kind(m, CN_LAYER_RESIDUAL);
    cn_layer *l = new_layer(m, CN_LAYER_RESIDUAL, "block", &c);
    if (!l) return;
    cn_conv2d_params p3 = cn_conv2d_params_default(), p1 = cn_conv2d_params_default();
    p3.stride_h = p3.stride_w = stride;
    p3.pad_top = p3.pad_bottom = p3.pad_left = p3.pad_right = 1;
    p1.stride_h = p1.stride_w = stride;
    char pre[2 * CN_NAME_MAX];
    int k = 0, kb = 0, ks = 0;
    snprintf(pre, sizeof pre, "%s.conv", l->name);
    l->sub[0] = make_conv(m, pre, &k, m->out_shape, out_ch, 3, &p3, 0);
    snprintf(pre, sizeof pre, "%s.bn", l->name);
    l->sub[1] = l->sub[0] ? make_bn(m, pre, &kb, l->sub[0]->out_shape) : NULL;
    p3.stride_h = p3.stride_w = 1;
    snprintf(pre, sizeof pre, "%s.conv", l->name);
    l->sub[2] = l->sub[1] ? make_conv(m, pre, &k, l->sub[1]->out_shape, out_ch, 3, &p3, 0) : NULL;
    snprintf(pre, sizeof pre, "%s.bn", l->name);
    l->sub[3] = l->sub[2] ? make_bn(m, pre, &kb, l->sub[2]->out_shape) : NULL;
    if (l->sub[3] && (stride != 1 || out_ch != m->out_shape[2])) {
        snprintf(pre, sizeof pre, "%s.shortcut_conv", l->name);
        l->sub[4] = make_conv(m, pre, &ks, m->out_shape, out_ch, 1, &p1, 0);
        ks = 0;
        snprintf(pre, sizeof pre, "%s.shortcut_bn", l->name);
        l->sub[5] = l->sub[4] ? make_bn(m, pre, &ks, l->sub[4]->out_shape) : NULL;
    }
    if (m->status) return layer_free(l);
    memcpy(l->out_shape, l->sub[3]->out_shape, sizeof l->out_shape);
    l->out_ndim = 3;
    for (int i = 0; i < 6; i++) l->n_params += l->sub[i] ? l->sub[i]->n_params : 0;
    append(m, l);
}

/* ---- init, forward ---------------------------------------------------- */
static void init_layer(cn_model *m, const cn_layer *l, cn_ctx *ctx)
{
    for (int i = 0; i < 6; i++)
        if (l->sub[i]) init_layer(m, l->sub[i], ctx);
    if (l->kind == CN_LAYER_CONV2D || l->kind == CN_LAYER_LINEAR) {
        const cn_model_tensor *w = &m->tensors[l->t_w];
        /* fan_in = all weight dims but the output channels (the last). */
        double fan_in = (double)(w->size / (size_t)w->shape[w->ndim - 1]);
        double bound = 1.0 / sqrt(fan_in);
        float *pw = m->params + w->offset;
        for (size_t i = 0; i < w->size; i++) pw[i] = (float)((2 * cn_rng_uniform(ctx) - 1) * bound);
        if (l->t_b >= 0) {
            const cn_model_tensor *b = &m->tensors[l->t_b];
            float *pb = m->params + b->offset;
            for (size_t i = 0; i < b->size; i++) pb[i] = (float)((2 * cn_rng_uniform(ctx) - 1) * bound);
        }
    } else if (l->kind == CN_LAYER_BATCHNORM2D) {
        const cn_model_tensor *t[4] = {&m->tensors[l->t_w], &m->tensors[l->t_b], &m->tensors[l->t_rm],
                                       &m->tensors[l->t_rv]};
        const float v[4] = {1, 0, 0, 1};
        for (int k = 0; k < 4; k++) {
            float *p = cn_model_data(m, t[k]);
            for (size_t i = 0; i < t[k]->size; i++) p[i] = v[k];
        }
    }
}

cn_status cn_model_init(cn_model *m, cn_ctx *ctx)
{
    if (m->status) return m->status;
    if (!ctx) return cn__err(CN_ERR_INVALID_ARG, "model %s: init needs a cn_ctx for its RNG", m->name);
    cn_free(m->params), cn_free(m->grads), cn_free(m->buffers);
    size_t np = m->n_params ? m->n_params : 1, nb = m->n_buffers ? m->n_buffers : 1;
    m->params = cn_alloc(np * sizeof(float));
    m->grads = cn_alloc(np * sizeof(float));
    m->buffers = cn_alloc(nb * sizeof(float));
    if (!m->params || !m->grads || !m->buffers)
        return m->status = cn__err(CN_ERR_NO_MEMORY, "model %s: cannot allocate %zu parameters",
                                   m->name, m->n_params);
    memset(m->params, 0, np * sizeof(float));
    memset(m->buffers, 0, nb * sizeof(float));
    cn_model_zero_grad(m);
    for (int i = 0; i < m->n_layers; i++) init_layer(m, m->layers[i], ctx);
    return CN_OK;
}

void cn_model_zero_grad(cn_model *m)
{
    if (m->grads) memset(m->grads, 0, (m->n_params ? m->n_params : 1) * sizeof(float));
}

float *cn_model_data(const cn_model *m, const cn_model_tensor *t)
{
    return (t->is_buffer ? m->buffers : m->params) + t->offset;
}

const cn_model_tensor *cn_model_find(const cn_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

static cn_var *param(cn_model *m, cn_graph *g, int t)
{
    if (t < 0) return NULL;
    const cn_model_tensor *v = &m->tensors[t];
    return cn_var_wrap(g, v->ndim, v->shape, m->params + v->offset, m->grads + v->offset, 1);
}

/* Batch norm layer l on x, then with relu a ReLU, with res (not NULL)
 * added before it. */
static cn_var *bn(cn_model *m, const cn_layer *l, cn_graph *g, cn_var *x, int training, int relu,
                  cn_var *res)
{
    cn_var *gamma = param(m, g, l->t_w), *beta = param(m, g, l->t_b);
    float *rm = m->buffers + m->tensors[l->t_rm].offset,
          *rv = m->buffers + m->tensors[l->t_rv].offset;
    if (res) return cn_batch_norm2d_add_relu(g, x, gamma, beta, rm, rv, &l->bn, training, res);
    return (relu ? cn_batch_norm2d_relu : cn_batch_norm2d)(g, x, gamma, beta, rm, rv, &l->bn,
                                                           training);
}

/* fuse: a residual block's ReLUs go into its batch norms; its last batch
 * norm, the shortcut's add and the ReLU become one op, so the shortcut is
 * computed first, before the main path even: the backward then runs its
 * convolution last, whose input gradient (a strided 1x1 filter's, which
 * reaches a pixel in 4) is added into the one the main path wrote, instead
 * of written in full and that one added to it. */
static cn_var *apply(cn_model *m, const cn_layer *l, cn_graph *g, cn_var *x, int training, int fuse)
{
    switch (l->kind) {
    case CN_LAYER_CONV2D:
        return cn_conv2d(g, x, param(m, g, l->t_w), param(m, g, l->t_b), &l->conv);
    case CN_LAYER_LINEAR: return cn_linear(g, x, param(m, g, l->t_w), param(m, g, l->t_b));
    case CN_LAYER_BATCHNORM2D: return bn(m, l, g, x, training, 0, NULL);
    case CN_LAYER_RELU: return cn_relu(g, x);
    case CN_LAYER_MAXPOOL2D: return cn_max_pool2d(g, x, &l->pool);
    case CN_LAYER_AVGPOOL2D: return cn_avg_pool2d(g, x, &l->pool);
    case CN_LAYER_GLOBAL_AVGPOOL2D: return cn_global_avg_pool2d(g, x);
    case CN_LAYER_DROPOUT: return cn_dropout(g, x, l->p, training);
    case CN_LAYER_FLATTEN: return cn_flatten(g, x);
    case CN_LAYER_RESIDUAL: {
        cn_var *s = x;
        if (l->sub[4])
            s = apply(m, l->sub[5], g, apply(m, l->sub[4], g, x, training, fuse), training, fuse);
        cn_var *h = apply(m, l->sub[0], g, x, training, fuse);
        h = fuse ? bn(m, l->sub[1], g, h, training, 1, NULL)
                 : cn_relu(g, bn(m, l->sub[1], g, h, training, 0, NULL));
        h = apply(m, l->sub[2], g, h, training, fuse);
        if (!fuse) h = bn(m, l->sub[3], g, h, training, 0, NULL);
        return fuse ? bn(m, l->sub[3], g, h, training, 1, s) : cn_relu(g, cn_add(g, h, s));
    }
    default: return NULL;
    }
}

cn_var *cn_model_forward(cn_model *m, cn_graph *g, cn_var *x, int training)
{
    return cn_model_forward_layers(m, g, x, training, NULL);
}

cn_layer_kind cn_model_layer_kind(const cn_model *m, int i) { return m->layers[i]->kind; }
const char *cn_model_layer_name(const cn_model *m, int i) { return m->layers[i]->name; }

const char *cn_layer_kind_name(cn_layer_kind k)
{
    return (unsigned)k < CN_LAYER_KIND_COUNT ? kind_names[k] : NULL;
}

cn_var *cn_model_forward_layers(cn_model *m, cn_graph *g, cn_var *x, int training, cn_var **outs)
{
    if (!m->params) {
        cn__err(CN_ERR_INVALID_ARG, "model %s: call cn_model_init before forward", m->name);
        return NULL;
    }
    if (x && (x->ndim != 4 || x->shape[1] != m->in_shape[0] || x->shape[2] != m->in_shape[1] ||
              x->shape[3] != m->in_shape[2])) {
        char s[64];
        cn_shape_str(x->ndim, x->shape, s, sizeof s);
        cn__err(CN_ERR_INVALID_ARG, "model %s: input must be [N,%lld,%lld,%lld], got %s", m->name,
                (long long)m->in_shape[0], (long long)m->in_shape[1], (long long)m->in_shape[2], s);
        return NULL;
    }
    for (int i = 0; i < m->n_layers && x; i++) {
        const cn_layer *l = m->layers[i];
        /* Conv2d or BatchNorm2d then ReLU: one fused op, unless the caller
         * wants to see the first layer's own output. */
        const int then_relu = i + 1 < m->n_layers && m->layers[i + 1]->kind == CN_LAYER_RELU;
        if (!outs && then_relu && l->kind == CN_LAYER_CONV2D) {
            x = cn_conv2d_relu(g, x, param(m, g, l->t_w), param(m, g, l->t_b), &l->conv);
            i++;
            continue;
        }
        if (!outs && then_relu && l->kind == CN_LAYER_BATCHNORM2D) {
            x = bn(m, l, g, x, training, 1, NULL);
            i++;
            continue;
        }
        x = apply(m, l, g, x, training, !outs);
        if (outs) outs[i] = x;
    }
    return x;
}

char *cn_model_summary(const cn_model *m, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
#define PUT(...) (at += (size_t)snprintf(buf + at, at < len ? len - at : 0, __VA_ARGS__))
    PUT("%-10s %-18s %-16s %10s\n", "layer", "kind", "output", "params");
    PUT("%-10s %-18s [%lld,%lld,%lld]%*s %10s\n", "input", "", (long long)m->in_shape[0],
        (long long)m->in_shape[1], (long long)m->in_shape[2], 4, "", "0");
    for (int i = 0; i < m->n_layers && at < len; i++) {
        const cn_layer *l = m->layers[i];
        char shape[48];
        cn_shape_str(l->out_ndim, l->out_shape, shape, sizeof shape);
        PUT("%-10s %-18s %-16s %10zu\n", l->name, kind_names[l->kind], shape, l->n_params);
    }
    PUT("total parameters: %zu\n", m->n_params);
#undef PUT
    return buf;
}
