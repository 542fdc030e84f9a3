/* Differentiable linear, elementwise, shape and reduction ops: each
 * forward with its backward right below it. */
#include <string.h>

#include "autograd/graph_internal.h"

static int same_shape(const cn_var *a, const cn_var *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* ---- linear ----------------------------------------------------------- */
static void linear_bwd(cn_graph *g, cn__node *n)
{
    cn_var *x = n->in[0], *w = n->in[1], *b = n->in[2];
    float *gx = cn__grad_begin(g, x), *gw = cn__grad_begin(g, w), *gb = cn__grad_begin(g, b);
    if (g->status) return;
    cn_linear_bwd(g->ctx, x->shape[0], x->shape[1], w->shape[1], x->data, w->data, n->out->grad, gx,
                  gw, gb);
    cn__grad_end(g, x, gx), cn__grad_end(g, w, gw), cn__grad_end(g, b, gb);
}

cn_var *cn_linear(cn_graph *g, cn_var *x, cn_var *w, cn_var *b)
{
    char s1[64], s2[64], s3[64];
    if (cn__bad(g, 2, x, w, NULL)) return NULL;
    if (x->ndim != 2 || w->ndim != 2 || x->shape[1] != w->shape[0])
        return cn__fail(g, CN_ERR_INVALID_ARG,
                        "linear: x [N,IN] and weight [IN,OUT] do not match: %s and %s",
                        cn__shape(x, s1, sizeof s1), cn__shape(w, s2, sizeof s2));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[1]))
        return cn__fail(g, CN_ERR_INVALID_ARG, "linear: bias must be [%lld], got %s",
                        (long long)w->shape[1], cn__shape(b, s1, sizeof s1));
    int64_t ys[2] = {x->shape[0], w->shape[1]};
    size_t n;
    if (cn_shape_numel(2, ys, &n))
        return cn__fail(g, CN_ERR_OVERFLOW, "linear: output %s from x %s and weight %s: %s",
                        cn_shape_str(2, ys, s1, sizeof s1), cn__shape(x, s2, sizeof s2),
                        cn__shape(w, s3, sizeof s3), cn_last_error());
    cn_var *y = cn__out(g, 2, ys, x, w, b, NULL);
    if (!y) return NULL;
    cn_linear_fwd(g->ctx, x->shape[0], x->shape[1], w->shape[1], x->data, w->data,
                  b ? b->data : NULL, y->data);
    if (y->requires_grad && !cn__record(g, "linear", y, linear_bwd, x, w, b, NULL)) return NULL;
    return y;
}

/* ---- add, mul, add_relu ---------------------------------------------- */
/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 32768
/* Elements per task (64 KiB of floats): a multiple of every vector width. */
#define CHUNK 16384

typedef enum { EW_ADD, EW_MUL, EW_ADD_RELU, EW_COPY } ew_op;

/* y = a op b over [0, n) (EW_COPY: y = a, a threaded memcpy, b unread); the ReLU as
 * cn_act_fwd's (NaN stays NaN). y may alias a or b: omp simd asserts each
 * element is read before written. */
CN__MULTIVERSION static void ew_kernel(ew_op op, int64_t n, const float *a, const float *b,
                                       float *y)
{
    if (op == EW_ADD) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    } else if (op == EW_MUL) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
    } else if (op == EW_COPY) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = a[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            const float v = a[i] + b[i];
            y[i] = !(v <= 0.0f) ? v : 0.0f;
        }
    }
}

/* ew_kernel in fixed chunks split between threads: every element is
 * computed alone, so the result does not depend on the thread count. */
static void ew(const cn_ctx *ctx, ew_op op, size_t n, const float *a, const float *b, float *y)
{
    const int64_t len = (int64_t)n, chunks = (len + CHUNK - 1) / CHUNK;
    const int nt = cn__threads(ctx);
#pragma omp parallel for num_threads(nt) if (nt > 1 && len >= PAR_MIN) schedule(static)
    for (int64_t t = 0; t < chunks; t++) {
        const int64_t i0 = t * CHUNK;
        ew_kernel(op, CN__MIN(CHUNK, len - i0), a + i0, b + i0, y + i0);
    }
}

/* Both inputs get gy (through the ReLU for add_relu): computed once, into
 * the first input's gradient, and copied from there for the second. One
 * input at a time, so that add(a, a) accumulates. */
static void add_bwd(cn_graph *g, cn__node *n)
{
    const cn_var *y = n->out;
    const float *src = NULL;
    for (int i = 0; i < 2; i++) {
        float *gi = cn__grad_begin(g, n->in[i]);
        if (!gi) continue;
        if (n->saved && !src) /* add_relu: exactly as cn_relu's backward */
            cn_act_bwd(g->ctx, CN_ACT_RELU, 0.0f, y->size, NULL, y->data, y->grad, gi);
        else
            ew(g->ctx, EW_COPY, y->size, src ? src : y->grad, y->grad, gi); /* b unused */
        cn__grad_end(g, n->in[i], gi);
        src = gi; /* still this input's contribution alone */
    }
}

static void mul_bwd(cn_graph *g, cn__node *n)
{
    for (int i = 0; i < 2; i++) {
        float *gi = cn__grad_begin(g, n->in[i]);
        if (!gi) continue;
        ew(g->ctx, EW_MUL, n->out->size, n->out->grad, n->in[1 - i]->data, gi);
        cn__grad_end(g, n->in[i], gi);
    }
}

static cn_var *binary(cn_graph *g, const char *op, cn_var *a, cn_var *b, ew_op e)
{
    char s1[64], s2[64];
    if (cn__bad(g, 2, a, b, NULL)) return NULL;
    if (!same_shape(a, b))
        return cn__fail(g, CN_ERR_INVALID_ARG, "%s: shapes differ: %s and %s", op,
                        cn__shape(a, s1, sizeof s1), cn__shape(b, s2, sizeof s2));
    cn_var *y = cn__out(g, a->ndim, a->shape, a, b, NULL, NULL);
    if (!y) return NULL;
    ew(g->ctx, e, y->size, a->data, b->data, y->data);
    if (y->requires_grad) {
        cn__node *n = cn__record(g, op, y, e == EW_MUL ? mul_bwd : add_bwd, a, b, NULL, NULL);
        if (!n) return NULL;
        /* add_bwd tells add_relu by a non-NULL saved */
        if (e == EW_ADD_RELU) n->saved = n;
    }
    return y;
}

cn_var *cn_add(cn_graph *g, cn_var *a, cn_var *b) { return binary(g, "add", a, b, EW_ADD); }
cn_var *cn_mul(cn_graph *g, cn_var *a, cn_var *b) { return binary(g, "mul", a, b, EW_MUL); }
cn_var *cn_add_relu(cn_graph *g, cn_var *a, cn_var *b)
{
    return binary(g, "add_relu", a, b, EW_ADD_RELU);
}

/* ---- activations ------------------------------------------------------ */
typedef struct act_saved {
    cn_act a;
    float slope;
} act_saved;

static void act_bwd(cn_graph *g, cn__node *n)
{
    const act_saved *s = n->saved;
    cn_var *x = n->in[0];
    float *gx = cn__grad_begin(g, x);
    if (!gx) return;
    cn_act_bwd(g->ctx, s->a, s->slope, x->size, x->data, n->out->data, n->out->grad, gx);
    cn__grad_end(g, x, gx);
}

static const char *act_name(cn_act a)
{
    static const char *const names[] = {"relu", "leaky_relu", "tanh", "sigmoid"};
    _Static_assert(sizeof names / sizeof names[0] == CN_ACT_COUNT, "one name per cn_act");
    return (unsigned)a < CN_ACT_COUNT ? names[a] : "activation";
}

static cn_var *act(cn_graph *g, cn_var *x, cn_act a, float slope)
{
    if (cn__bad(g, 1, x, NULL, NULL)) return NULL;
    cn_var *y = cn__out(g, x->ndim, x->shape, x, NULL, NULL, NULL);
    if (!y) return NULL;
    cn_act_fwd(g->ctx, a, slope, x->size, x->data, y->data);
    if (y->requires_grad) {
        cn__node *n = cn__record(g, act_name(a), y, act_bwd, x, NULL, NULL, NULL);
        act_saved *s = n ? cn__arena(g, sizeof *s) : NULL;
        if (!s) return NULL;
        s->a = a, s->slope = slope;
        n->saved = s;
    }
    return y;
}

cn_var *cn_relu(cn_graph *g, cn_var *x) { return act(g, x, CN_ACT_RELU, 0); }
cn_var *cn_leaky_relu(cn_graph *g, cn_var *x, float slope)
{
    return act(g, x, CN_ACT_LEAKY_RELU, slope);
}
cn_var *cn_tanh(cn_graph *g, cn_var *x) { return act(g, x, CN_ACT_TANH, 0); }
cn_var *cn_sigmoid(cn_graph *g, cn_var *x) { return act(g, x, CN_ACT_SIGMOID, 0); }

/* ---- reshape, flatten, concat ----------------------------------------- */
static void copy_bwd(cn_graph *g, cn__node *n)
{
    float *gx = cn__grad_begin(g, n->in[0]);
    if (!gx) return;
    memcpy(gx, n->out->grad, n->out->size * sizeof *gx);
    cn__grad_end(g, n->in[0], gx);
}

cn_var *cn_reshape(cn_graph *g, cn_var *x, int ndim, const int64_t *shape)
{
    char s1[64], s2[64];
    if (cn__bad(g, 1, x, NULL, NULL)) return NULL;
    if (ndim < 0 || ndim > CN_MAX_DIMS)
        return cn__fail(g, CN_ERR_INVALID_ARG, "reshape: ndim=%d outside 0..%d", ndim, CN_MAX_DIMS);
    int64_t s[CN_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0)
            infer = i;
        else if (s[i] < 0)
            return cn__fail(g, CN_ERR_INVALID_ARG, "reshape: invalid target %s",
                            cn_shape_str(ndim, shape, s2, sizeof s2));
        else if (s[i] > 0 && cn__mul_i64(known, s[i], &known))
            return cn__fail(g, CN_ERR_OVERFLOW, "reshape: target %s: element count overflows",
                            cn_shape_str(ndim, shape, s2, sizeof s2));
    }
    if (infer >= 0) s[infer] = known ? (int64_t)x->size / known : 0;
    size_t n;
    cn_status st = cn_shape_numel(ndim, s, &n);
    if (st == CN_ERR_OVERFLOW)
        return cn__fail(g, st, "reshape: target %s: element count overflows",
                        cn_shape_str(ndim, shape, s2, sizeof s2));
    if (st || n != x->size)
        return cn__fail(g, CN_ERR_INVALID_ARG, "reshape: cannot view %s as %s",
                        cn__shape(x, s1, sizeof s1), cn_shape_str(ndim, shape, s2, sizeof s2));
    cn_var *y = cn_var_wrap(g, ndim, s, x->data, NULL, 0);
    if (!y) return NULL;
    y->requires_grad = g->grad_enabled && x->requires_grad;
    if (y->requires_grad && !cn__record(g, "reshape", y, copy_bwd, x, NULL, NULL, NULL))
        return NULL;
    return y;
}

cn_var *cn_flatten(cn_graph *g, cn_var *x)
{
    if (cn__bad(g, 1, x, NULL, NULL)) return NULL;
    if (x->ndim < 1) return cn__fail(g, CN_ERR_INVALID_ARG, "flatten: x must have a batch axis");
    int64_t s[2] = {x->shape[0], -1};
    if (x->shape[0] == 0) s[1] = 0;
    return cn_reshape(g, x, 2, s);
}

typedef struct concat_saved {
    int n, axis;
    cn_var **xs;
} concat_saved;

/* Views every tensor as [outer, axis_len * inner] rows, so concatenation
 * copies one contiguous run per input per outer index. */
static void concat_geometry(const cn_var *v, int axis, int64_t *outer, int64_t *run)
{
    *outer = 1, *run = 1;
    if (v->size == 0) { /* nothing to copy */
        *outer = *run = 0;
        return;
    }
    for (int i = 0; i < v->ndim; i++) {
        if (i < axis)
            *outer *= v->shape[i];
        else
            *run *= v->shape[i];
    }
}

static void concat_bwd(cn_graph *g, cn__node *n)
{
    const concat_saved *s = n->saved;
    int64_t outer, total, off = 0;
    concat_geometry(n->out, s->axis, &outer, &total);
    for (int k = 0; k < s->n; k++) {
        int64_t o, run;
        concat_geometry(s->xs[k], s->axis, &o, &run);
        float *gx = cn__grad_begin(g, s->xs[k]);
        if (gx) {
            for (int64_t i = 0; i < outer; i++)
                memcpy(gx + i * run, n->out->grad + i * total + off, (size_t)run * sizeof *gx);
            cn__grad_end(g, s->xs[k], gx);
        }
        off += run;
    }
}

cn_var *cn_concat(cn_graph *g, cn_var *const *xs, int n, int axis)
{
    char s1[64], s2[64];
    if (g->status) return NULL;
    if (n < 1)
        return cn__fail(g, CN_ERR_INVALID_ARG, "concat: needs at least one input, got %d", n);
    for (int k = 0; k < n; k++)
        if (cn__bad(g, 1, xs[k], NULL, NULL)) return NULL;
    const cn_var *a = xs[0];
    if (axis < 0 || axis >= a->ndim)
        return cn__fail(g, CN_ERR_INVALID_ARG, "concat: axis=%d outside 0..%d", axis, a->ndim - 1);
    int64_t shape[CN_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[axis] = 0;
    int any_grad = 0;
    for (int k = 0; k < n; k++) {
        const cn_var *v = xs[k];
        int ok = v->ndim == a->ndim;
        for (int i = 0; ok && i < a->ndim; i++) ok = i == axis || v->shape[i] == a->shape[i];
        if (!ok)
            return cn__fail(g, CN_ERR_INVALID_ARG, "concat: input %d has shape %s, input 0 %s", k,
                            cn__shape(v, s1, sizeof s1), cn__shape(a, s2, sizeof s2));
        if (__builtin_add_overflow(shape[axis], v->shape[axis], &shape[axis]))
            return cn__fail(g, CN_ERR_OVERFLOW,
                            "concat: sizes along axis %d overflow at input %d %s", axis, k,
                            cn__shape(v, s1, sizeof s1));
        any_grad |= v->requires_grad;
    }
    size_t count;
    if (cn_shape_numel(a->ndim, shape, &count))
        return cn__fail(g, CN_ERR_OVERFLOW, "concat: output %s along axis %d: %s",
                        cn_shape_str(a->ndim, shape, s1, sizeof s1), axis, cn_last_error());
    cn_var *y = cn__out(g, a->ndim, shape, NULL, NULL, NULL, NULL);
    if (!y) return NULL;
    y->requires_grad = g->grad_enabled && any_grad;
    int64_t outer, total, off = 0;
    concat_geometry(y, axis, &outer, &total);
    for (int k = 0; k < n; k++) {
        int64_t o, run;
        concat_geometry(xs[k], axis, &o, &run);
        for (int64_t i = 0; i < outer; i++)
            memcpy(y->data + i * total + off, xs[k]->data + i * run, (size_t)run * sizeof(float));
        off += run;
    }
    if (y->requires_grad) {
        cn__node *node = cn__record(g, "concat", y, concat_bwd, NULL, NULL, NULL, NULL);
        concat_saved *s = node ? cn__arena(g, sizeof *s) : NULL;
        cn_var **copy = s ? cn__arena(g, (size_t)n * sizeof *copy) : NULL;
        if (!copy) return NULL;
        memcpy(copy, xs, (size_t)n * sizeof *copy);
        s->n = n, s->axis = axis, s->xs = copy;
        node->saved = s;
    }
    return y;
}

/* ---- sum, mean -------------------------------------------------------- */
static void reduce_bwd(cn_graph *g, cn__node *n)
{
    cn_var *x = n->in[0];
    float *gx = cn__grad_begin(g, x);
    if (!gx) return;
    const float scale = *(const float *)n->saved, gy = n->out->grad[0] * scale;
    for (size_t i = 0; i < x->size; i++) gx[i] = gy;
    cn__grad_end(g, x, gx);
}

static cn_var *reduce(cn_graph *g, cn_var *x, int mean)
{
    if (cn__bad(g, 1, x, NULL, NULL)) return NULL;
    if (mean && x->size == 0)
        return cn__fail(g, CN_ERR_INVALID_ARG, "mean: the input has no elements");
    cn_var *y = cn__out(g, 0, NULL, x, NULL, NULL, NULL);
    if (!y) return NULL;
    double s = 0; /* double: long sums of floats lose digits */
    for (size_t i = 0; i < x->size; i++) s += x->data[i];
    y->data[0] = (float)(mean ? s / (double)x->size : s);
    if (y->requires_grad) {
        cn__node *n = cn__record(g, mean ? "mean" : "sum", y, reduce_bwd, x, NULL, NULL, NULL);
        float *scale = n ? cn__arena(g, sizeof *scale) : NULL;
        if (!scale) return NULL;
        *scale = mean ? (float)(1.0 / (double)x->size) : 1.0f;
        n->saved = scale;
    }
    return y;
}

cn_var *cn_sum(cn_graph *g, cn_var *x) { return reduce(g, x, 0); }
cn_var *cn_mean(cn_graph *g, cn_var *x) { return reduce(g, x, 1); }
