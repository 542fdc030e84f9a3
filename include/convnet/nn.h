/* convnet/nn.h - layers and models on the autodiff graph.
 *
 * A model is a sequence of layers whose parameters live in ONE flat buffer
 * (params, with grads beside it) and whose batch-norm running statistics live
 * in a second one (buffers). Each tensor is a named view into them
 * (cn_model_tensor), so zeroing gradients, an optimizer step and a checkpoint
 * are each one loop or one write.
 *
 *     cn_model *m;
 *     cn_model_new(&m, "tiny", 28, 28, 1);                       // input [N,28,28,1]
 *     cn_model_conv2d(m, 16, 3, 1, 1);                           // out channels, kernel, stride, pad
 *     cn_model_batchnorm2d(m);
 *     cn_model_relu(m);
 *     cn_model_maxpool2d(m, 2);
 *     cn_model_flatten(m);
 *     cn_model_linear(m, 10);
 *     if (cn_model_init(m, &ctx) != CN_OK) ...                   // PyTorch's default init
 *     cn_var *logits = cn_model_forward(m, g, x, 1);              // training mode
 *
 * Builder calls record the first error (like the graph) and cn_model_init
 * reports it. Ownership: the caller owns the model (cn_model_free); the
 * model owns its layers and buffers.
 */
#ifndef CONVNET_NN_H
#define CONVNET_NN_H

#include <stddef.h>
#include <stdint.h>

#include "autograd.h"
#include "context.h"
#include "conv.h"
#include "pool.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cn_layer_kind {
    CN_LAYER_CONV2D = 0,
    CN_LAYER_LINEAR,
    CN_LAYER_BATCHNORM2D,
    CN_LAYER_RELU,
    CN_LAYER_MAXPOOL2D,
    CN_LAYER_AVGPOOL2D,
    CN_LAYER_GLOBAL_AVGPOOL2D,
    CN_LAYER_DROPOUT,
    CN_LAYER_FLATTEN,
    CN_LAYER_RESIDUAL,  /* BasicBlock: conv3x3-bn-relu-conv3x3-bn + shortcut, add, relu */
    CN_LAYER_KIND_COUNT
} cn_layer_kind;

#define CN_NAME_MAX 48

/* A named view of a parameter or buffer tensor. */
typedef struct cn_model_tensor {
    char name[CN_NAME_MAX];   /* "conv1.weight", "block2.bn1.running_mean" */
    int is_buffer;            /* 0: in params/grads, 1: in buffers */
    size_t offset;            /* in floats */
    int ndim;
    int64_t shape[4];
    size_t size;
} cn_model_tensor;

typedef struct cn_layer cn_layer;   /* opaque; see cn_model_summary */

typedef struct cn_model {
    char name[CN_NAME_MAX];
    int64_t in_shape[3];         /* H, W, C of one input */
    int64_t out_shape[4];        /* shape of one output, without the batch axis */
    int out_ndim;
    cn_layer **layers;
    int n_layers;
    cn_model_tensor *tensors;
    int n_tensors;
    float *params, *grads;       /* [n_params] each, after cn_model_init */
    size_t n_params;
    float *buffers;              /* [n_buffers] running statistics */
    size_t n_buffers;
    cn_status status;            /* first builder error */
} cn_model;

CN_API cn_status cn_model_new(cn_model **out, const char *name, int64_t H, int64_t W, int64_t C);
CN_API void cn_model_free(cn_model *m);

/* Builders (each appends one layer; errors are kept in m->status). */
CN_API void cn_model_conv2d_ex(cn_model *m, int64_t out_ch, int64_t kernel, const cn_conv2d_params *p,
                               int bias);
/* kernel x kernel, stride, symmetric zero padding, with bias. */
CN_API void cn_model_conv2d(cn_model *m, int64_t out_ch, int64_t kernel, int stride, int pad);
CN_API void cn_model_linear(cn_model *m, int64_t out_features);
CN_API void cn_model_batchnorm2d(cn_model *m);
CN_API void cn_model_relu(cn_model *m);
CN_API void cn_model_maxpool2d(cn_model *m, int kernel);
CN_API void cn_model_avgpool2d(cn_model *m, int kernel);
CN_API void cn_model_pool2d_ex(cn_model *m, cn_pool_type type, const cn_pool2d_params *p);
CN_API void cn_model_global_avgpool2d(cn_model *m);
CN_API void cn_model_dropout(cn_model *m, float p);
CN_API void cn_model_flatten(cn_model *m);
/* A residual BasicBlock to out_ch channels; stride 2 halves the size and
 * adds a 1x1 conv + batch norm shortcut (as does a channel change). */
CN_API void cn_model_residual(cn_model *m, int64_t out_ch, int stride);

/* Allocates params, grads and buffers and initialises them as PyTorch does:
 * conv and linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))
 * (kaiming_uniform with a = sqrt(5)), batch norm gamma 1, beta 0, running
 * mean 0, running variance 1. Draws from ctx's RNG. */
CN_API cn_status cn_model_init(cn_model *m, cn_ctx *ctx);
CN_API void cn_model_zero_grad(cn_model *m);

/* Applies the model to x [N,H,W,C] (NULL on error: see cn_graph_status).
 * training selects batch statistics and dropout. */
CN_API cn_var *cn_model_forward(cn_model *m, cn_graph *g, cn_var *x, int training);

/* The same, also storing every layer's output: outs[i] (an array of
 * m->n_layers) is the activation after layer i, valid until the graph resets.
 * Every layer, and every op inside a residual block, then runs as its own
 * op: cn_model_forward fuses a ReLU into the op before it, with the same
 * values and gradients. */
CN_API cn_var *cn_model_forward_layers(cn_model *m, cn_graph *g, cn_var *x, int training,
                                       cn_var **outs);

/* Layer i's kind and name ("conv1", "block2"), for i in [0, m->n_layers). */
CN_API cn_layer_kind cn_model_layer_kind(const cn_model *m, int i);
CN_API const char *cn_model_layer_name(const cn_model *m, int i);
/* "conv2d", "residual", ...; NULL for an invalid kind. */
CN_API const char *cn_layer_kind_name(cn_layer_kind k);

/* Looks a tensor up by name; NULL if absent. */
CN_API const cn_model_tensor *cn_model_find(const cn_model *m, const char *name);
/* Pointer to a tensor's data. */
CN_API float *cn_model_data(const cn_model *m, const cn_model_tensor *t);

/* Writes a human-readable summary (one line a layer: name, kind, output
 * shape, parameters) into buf; returns buf. */
CN_API char *cn_model_summary(const cn_model *m, char *buf, size_t len);

/* Built-in models for 28x28x1 inputs and 10 classes: "lenet" (the default,
 * under 100K parameters) and "resnet" (a small ResNet). */
CN_API cn_status cn_model_build(cn_model **out, const char *name, int64_t H, int64_t W, int64_t C,
                                int64_t classes);

/* ---- training and evaluation ------------------------------------------ */
struct cn_optim;
struct cn_dataset;

/* One optimisation step on a batch: resets g, zeroes the gradients, runs
 * the model in training mode on x [count,H,W,C] with labels y [count],
 * backpropagates the mean cross-entropy and applies o at learning rate lr.
 * *loss and *correct (nullable) receive the batch's loss and hits. */
CN_API cn_status cn_model_train_step(cn_model *m, cn_graph *g, struct cn_optim *o, float lr,
                                     const float *x, const int32_t *y, int count, double *loss,
                                     int64_t *correct);

/* Mean loss and accuracy over a whole dataset in evaluation mode (running
 * statistics, no dropout, no tape), batch by batch. pred [ds->n] and probs
 * [ds->n, classes] (nullable) receive the predictions. */
CN_API cn_status cn_model_evaluate(cn_model *m, cn_graph *g, const struct cn_dataset *ds,
                                   int batch_size, double *loss, double *accuracy, int32_t *pred,
                                   float *probs);

/* ---- checkpoints (safetensors) ------------------------------------------
 * A checkpoint holds every parameter and buffer under its model name
 * ("conv1.weight", in convnet's layouts), and for resuming the optimizer's
 * moments ("optimizer.m", "optimizer.v"), its step count, the epoch and the
 * context's RNG state. __metadata__ records the model's name, input shape and
 * class count (so cn_checkpoint_load_model can rebuild it) plus any extra
 * key/value pairs, e.g. hyper-parameters. Written atomically. */
CN_API cn_status cn_checkpoint_save(const char *path, const cn_model *m, const struct cn_optim *o,
                                    int64_t epoch, const cn_ctx *ctx, int n_meta,
                                    const char *const *meta_keys, const char *const *meta_values);
/* Rebuilds the built-in model a checkpoint names and loads its weights and
 * buffers. The caller owns *out. */
CN_API cn_status cn_checkpoint_load_model(const char *path, cn_model **out);
/* Restores weights and buffers into m, and, each if non-NULL, the optimizer
 * state into o, the epoch into *epoch and the RNG into ctx. Every tensor must
 * be present with the model's shape. */
CN_API cn_status cn_checkpoint_restore(const char *path, cn_model *m, struct cn_optim *o,
                                       int64_t *epoch, cn_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
