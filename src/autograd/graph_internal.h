/* src/autograd/graph_internal.h - the tape and arena shared by the op files.
 *
 * Each op file follows one pattern: check shapes (cn__fail on error), make
 * the output with cn__out, compute the forward, and, if the output needs a
 * gradient, record a node whose backward function sits right below it. A
 * backward adds each input's contribution through cn__grad_begin/_end. */
#ifndef CONVNET_GRAPH_INTERNAL_H
#define CONVNET_GRAPH_INTERNAL_H

#include "convnet/autograd.h"
#include "internal.h"

typedef struct cn__node cn__node;
typedef void (*cn__bwd_fn)(cn_graph *g, cn__node *n);

#define CN__MAX_IN 4

struct cn__node {
    cn__bwd_fn bwd;
    const char *op;           /* "conv2d": a static string naming the op in messages */
    cn_var *out;
    cn_var *in[CN__MAX_IN];   /* NULL for absent inputs (an optional bias) */
    void *saved;              /* op-specific state, in the arena */
    cn__node *prev;           /* the tape runs backwards through prev */
};

typedef struct cn__chunk {
    struct cn__chunk *next;
    size_t cap, used;
    char *mem;
} cn__chunk;

struct cn_graph {
    cn_ctx *ctx;
    cn_status status;
    int grad_enabled;
    int detect_anomaly;       /* check recorded outputs and gradients for NaN/inf */
    cn__chunk *chunks, *cur;  /* arena: filled in order, reset to the first */
    cn__node *tape;           /* the newest node */
    void *scratch;            /* cn__scratch's buffer, scratch_cap bytes */
    size_t scratch_cap;
};

/* 64-byte aligned arena memory (uninitialised); NULL after recording
 * CN_ERR_NO_MEMORY in the graph. */
CN__HIDDEN void *cn__arena(cn_graph *g, size_t bytes);
/* Temporary memory for one kernel call (a convolution's workspace), 64-byte
 * aligned and uninitialised: one graph-owned buffer, grown when too small
 * and reused by every call, so that temporaries do not pile up in the
 * arena (fresh pages cost ~13 us each to touch). Valid until the next
 * cn__scratch call; NULL after recording CN_ERR_NO_MEMORY in the graph. */
CN__HIDDEN void *cn__scratch(cn_graph *g, size_t bytes);
/* Records the first failure (with a message) and returns NULL. */
CN__HIDDEN cn_var *cn__fail(cn_graph *g, cn_status s, const char *fmt, ...) CN__PRINTF(3, 4);
/* 1 if the graph has failed or any of the n inputs is NULL (skip optional
 * inputs by passing them after n). */
CN__HIDDEN int cn__bad(cn_graph *g, int n, cn_var *a, cn_var *b, cn_var *c);
/* A new variable with arena data; requires_grad if grad is enabled and any
 * non-NULL input requires it. */
CN__HIDDEN cn_var *cn__out(cn_graph *g, int ndim, const int64_t *shape, cn_var *a, cn_var *b,
                           cn_var *c, cn_var *d);
/* Appends a node for out (which must require grad and hold its forward
 * value already) and returns it. op is a static name ("conv2d"). With
 * anomaly detection on, a NaN or infinity in out fails the graph with
 * CN_ERR_NUMERIC instead (NULL): recording is the one place every op
 * passes through after computing its output. */
CN__HIDDEN cn__node *cn__record(cn_graph *g, const char *op, cn_var *out, cn__bwd_fn bwd, cn_var *a,
                                cn_var *b, cn_var *c, cn_var *d);
/* Where a backward should write v's contribution: v->grad itself on the
 * first write to a graph-owned gradient, else scratch that _end adds in.
 * NULL if v does not need a gradient. */
CN__HIDDEN float *cn__grad_begin(cn_graph *g, cn_var *v);
CN__HIDDEN void cn__grad_end(cn_graph *g, cn_var *v, float *buf);
/* For a backward that can add into a buffer in place: v->grad when the
 * contribution must be added to it (written already, or the caller's own
 * gradient), else NULL (cn__grad_begin then, as usual). cn__grad_end(g, v,
 * v->grad) afterwards. */
CN__HIDDEN float *cn__grad_accumulator(cn_graph *g, cn_var *v);
/* "[2,3,4]" for messages, in a small rotating static-free buffer. */
CN__HIDDEN const char *cn__shape(const cn_var *v, char *buf, size_t len);

#endif
