/* The autodiff engine: arena, variables, tape and the backward sweep. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/graph_internal.h"

/* Arena chunks are large: pages nobody touches cost nothing, while a chunk
 * too small for a later, larger request (an evaluation batch of 500 after
 * training batches of 128) leaves the pages it had faulted in unused and
 * makes fresh ones be touched (~13 us per 4 KiB page here). */
#define CHUNK_MIN ((size_t)64 << 20)

cn_status cn_graph_new(cn_graph **out, cn_ctx *ctx)
{
    cn_graph *g = calloc(1, sizeof *g);
    *out = NULL;
    if (!g) return cn__err(CN_ERR_NO_MEMORY, "graph: out of memory");
    g->ctx = ctx;
    g->grad_enabled = 1;
    *out = g;
    return CN_OK;
}

void cn_graph_free(cn_graph *g)
{
    if (!g) return;
    for (cn__chunk *c = g->chunks, *next; c; c = next) {
        next = c->next;
        cn_free(c->mem);
        free(c);
    }
    cn_free(g->scratch);
    free(g);
}

void cn_graph_reset(cn_graph *g)
{
    for (cn__chunk *c = g->chunks; c; c = c->next) c->used = 0;
    g->cur = g->chunks;
    g->tape = NULL;
    g->status = CN_OK;
}

void cn_graph_set_grad_enabled(cn_graph *g, int enabled) { g->grad_enabled = enabled != 0; }
void cn_graph_set_detect_anomaly(cn_graph *g, int on) { g->detect_anomaly = on != 0; }
cn_status cn_graph_status(const cn_graph *g) { return g->status; }

size_t cn_graph_arena_bytes(const cn_graph *g)
{
    size_t n = 0;
    for (cn__chunk *c = g->chunks; c; c = c->next) n += c->cap;
    return n + g->scratch_cap;
}

void *cn__scratch(cn_graph *g, size_t bytes)
{
    if (bytes <= g->scratch_cap && g->scratch) return g->scratch;
    /* No copy: the contents are dead between calls. */
    cn_free(g->scratch);
    g->scratch_cap = 0;
    if (!(g->scratch = cn_alloc(bytes ? bytes : 64))) {
        cn__fail(g, CN_ERR_NO_MEMORY, "graph: cannot allocate %zu bytes of scratch", bytes);
        return NULL;
    }
    g->scratch_cap = bytes;
    return g->scratch;
}

void *cn__arena(cn_graph *g, size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    if (!bytes) bytes = 64;
    /* Use the current chunk, else the next one that fits, else a new one. */
    for (cn__chunk *c = g->cur; c; c = c->next) {
        if (c->cap - c->used >= bytes) {
            g->cur = c;
            void *p = c->mem + c->used;
            c->used += bytes;
            return p;
        }
    }
    size_t cap = bytes > CHUNK_MIN ? bytes : CHUNK_MIN;
    cn__chunk *c = calloc(1, sizeof *c);
    if (c) c->mem = cn_alloc(cap);
    if (!c || !c->mem) {
        free(c);
        cn__fail(g, CN_ERR_NO_MEMORY, "graph: cannot allocate %zu bytes", cap);
        return NULL;
    }
    c->cap = cap;
    c->used = bytes;
    /* Append after the last chunk so reset walks every chunk in order. */
    cn__chunk **at = &g->chunks;
    while (*at) at = &(*at)->next;
    *at = c;
    g->cur = c;
    return c->mem;
}

cn_var *cn__fail(cn_graph *g, cn_status s, const char *fmt, ...)
{
    if (g->status == CN_OK) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        g->status = cn__err(s, "%s", msg);
    }
    return NULL;
}

int cn__bad(cn_graph *g, int n, cn_var *a, cn_var *b, cn_var *c)
{
    if (g->status) return 1;
    cn_var *v[3] = {a, b, c};
    for (int i = 0; i < n && i < 3; i++)
        if (!v[i]) {
            cn__fail(g, CN_ERR_INVALID_ARG, "graph: an input variable is NULL");
            return 1;
        }
    return 0;
}

const char *cn__shape(const cn_var *v, char *buf, size_t len)
{
    return cn_shape_str(v->ndim, v->shape, buf, len);
}

static cn_var *var_alloc(cn_graph *g, int ndim, const int64_t *shape)
{
    size_t n;
    cn_status s = cn_shape_numel(ndim, shape, &n);
    if (s) return cn__fail(g, s, "%s", cn_last_error());
    cn_var *v = cn__arena(g, sizeof *v);
    if (!v) return NULL;
    memset(v, 0, sizeof *v);
    v->ndim = ndim;
    for (int i = 0; i < CN_MAX_DIMS; i++) v->shape[i] = i < ndim ? shape[i] : 1;
    v->size = n;
    return v;
}

cn_var *cn_var_wrap(cn_graph *g, int ndim, const int64_t *shape, float *data, float *grad,
                    int requires_grad)
{
    if (g->status) return NULL;
    cn_var *v = var_alloc(g, ndim, shape);
    if (!v) return NULL;
    v->data = data;
    v->requires_grad = requires_grad != 0;
    if (grad && requires_grad) v->grad = grad, v->grad_external_ = 1;
    return v;
}

cn_var *cn_var_new(cn_graph *g, int ndim, const int64_t *shape, int requires_grad)
{
    if (g->status) return NULL;
    cn_var *v = var_alloc(g, ndim, shape);
    if (!v) return NULL;
    if (!(v->data = cn__arena(g, v->size * sizeof(float)))) return NULL;
    v->requires_grad = requires_grad != 0;
    return v;
}

cn_var *cn__out(cn_graph *g, int ndim, const int64_t *shape, cn_var *a, cn_var *b, cn_var *c,
                cn_var *d)
{
    cn_var *v = cn_var_new(g, ndim, shape, 0);
    if (!v) return NULL;
    v->requires_grad = g->grad_enabled && ((a && a->requires_grad) || (b && b->requires_grad) ||
                                           (c && c->requires_grad) || (d && d->requires_grad));
    return v;
}

/* ---- anomaly detection ------------------------------------------------- */

/* Index of the first NaN or infinity in a[0..n), or n. An all-ones exponent
 * tested on the bits in blocks vectorises, unlike isfinite; the exact index
 * is looked for only in a block that has one. */
static size_t first_nonfinite(const float *a, size_t n)
{
    enum { BLOCK = 4096 };
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        size_t i1 = CN__MIN(n, i0 + BLOCK);
        uint32_t bad = 0;
        for (size_t i = i0; i < i1; i++) {
            uint32_t u;
            memcpy(&u, a + i, sizeof u);
            bad |= (~u & 0x7f800000u) == 0;
        }
        if (bad)
            for (size_t i = i0; i < i1; i++)
                if (!isfinite(a[i])) return i;
    }
    return n;
}

static const char *nonfinite_name(float v) { return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf"; }

/* Fails the graph if out holds a NaN or infinity, saying which input (in
 * the op's argument order, from 0) already held one if any did. */
static int check_forward(cn_graph *g, const char *op, const cn_var *out, cn_var *const *in)
{
    size_t at = first_nonfinite(out->data, out->size);
    if (at == out->size) return 0;
    char so[64], si[64], cause[160];
    snprintf(cause, sizeof cause, "from finite inputs");
    for (int k = 0; k < CN__MAX_IN; k++) {
        size_t j = in[k] ? first_nonfinite(in[k]->data, in[k]->size) : 0;
        if (in[k] && j < in[k]->size) {
            snprintf(cause, sizeof cause, "because input %d %s holds %s at element %zu", k,
                     cn__shape(in[k], si, sizeof si), nonfinite_name(in[k]->data[j]), j);
            break;
        }
    }
    cn__fail(g, CN_ERR_NUMERIC,
             "anomaly: %s (forward) produced %s at element %zu of its output %s %s", op,
             nonfinite_name(out->data[at]), at, cn__shape(out, so, sizeof so), cause);
    return 1;
}

/* After n's backward: fails the graph if a gradient it wrote into holds a
 * NaN or infinity. Only written gradients are looked at: a graph-owned one
 * nobody wrote yet is uninitialised arena memory. */
static void check_backward(cn_graph *g, const cn__node *n)
{
    for (int k = 0; k < CN__MAX_IN && !g->status; k++) {
        const cn_var *v = n->in[k];
        if (!v || !v->grad || !v->grad_written_) continue;
        size_t at = first_nonfinite(v->grad, v->size);
        if (at == v->size) continue;
        char sv[64];
        cn__fail(g, CN_ERR_NUMERIC,
                 "anomaly: %s (backward) produced %s in the gradient of input %d %s at element %zu",
                 n->op, nonfinite_name(v->grad[at]), k, cn__shape(v, sv, sizeof sv), at);
    }
}

cn__node *cn__record(cn_graph *g, const char *op, cn_var *out, cn__bwd_fn bwd, cn_var *a, cn_var *b,
                     cn_var *c, cn_var *d)
{
    cn_var *in[CN__MAX_IN] = {a, b, c, d};
    if (g->detect_anomaly && check_forward(g, op, out, in)) return NULL;
    cn__node *n = cn__arena(g, sizeof *n);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->bwd = bwd, n->op = op, n->out = out;
    n->in[0] = a, n->in[1] = b, n->in[2] = c, n->in[3] = d;
    n->prev = g->tape;
    g->tape = n;
    return n;
}

float *cn__grad_begin(cn_graph *g, cn_var *v)
{
    if (!v || !v->requires_grad || g->status) return NULL;
    if (!v->grad) {
        if (!(v->grad = cn__arena(g, v->size * sizeof(float)))) return NULL;
        v->grad_written_ = 0;
    }
    if (!v->grad_external_ && !v->grad_written_) return v->grad;
    return cn__arena(g, v->size * sizeof(float));
}

float *cn__grad_accumulator(cn_graph *g, cn_var *v)
{
    if (!v || !v->requires_grad || g->status || !v->grad) return NULL;
    return v->grad_external_ || v->grad_written_ ? v->grad : NULL;
}

/* y += x over [0, n). */
CN__MULTIVERSION static void add_into(int64_t n, float *restrict y, const float *restrict x)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* Elements per task; below PAR_MIN elements a parallel region costs more
 * than it saves. Each element is one add, whatever the thread count. */
#define ADD_CHUNK 16384
#define ADD_PAR_MIN 32768

void cn__grad_end(cn_graph *g, cn_var *v, float *buf)
{
    if (!buf) return;
    if (buf != v->grad) {
        const int64_t len = (int64_t)v->size, chunks = (len + ADD_CHUNK - 1) / ADD_CHUNK;
        const int nt = cn__threads(g->ctx);
        float *grad = v->grad;
#pragma omp parallel for num_threads(nt) if (nt > 1 && len >= ADD_PAR_MIN) schedule(static)
        for (int64_t t = 0; t < chunks; t++) {
            const int64_t i0 = t * ADD_CHUNK;
            add_into(CN__MIN(ADD_CHUNK, len - i0), grad + i0, buf + i0);
        }
    }
    v->grad_written_ = 1;
}

cn_status cn_backward(cn_graph *g, cn_var *loss)
{
    if (g->status) return g->status;
    if (!loss) return cn__err(CN_ERR_INVALID_ARG, "backward: loss is NULL");
    if (loss->size != 1)
        return cn__err(CN_ERR_INVALID_ARG, "backward: the loss must have one element, it has %zu",
                       loss->size);
    if (!loss->requires_grad)
        return cn__err(CN_ERR_INVALID_ARG,
                       "backward: the loss does not depend on any variable that requires grad");
    float *seed = cn__grad_begin(g, loss);
    if (!seed) return g->status;
    seed[0] = 1.0f;
    cn__grad_end(g, loss, seed);
    for (cn__node *n = g->tape; n && !g->status; n = n->prev) {
        if (!n->out->grad || !n->out->grad_written_) continue;
        n->bwd(g, n);
        if (g->detect_anomaly && !g->status) check_backward(g, n);
    }
    return g->status;
}
