/* The built-in models. */
#include <string.h>

#include "convnet/nn.h"
#include "internal.h"

/* conv-bn-relu-pool twice, then one linear layer: about 51K parameters for
 * 28x28 inputs, over 91.5% on Fashion-MNIST. */
static void lenet(cn_model *m, int64_t classes)
{
    cn_model_conv2d(m, 32, 3, 1, 1);
    cn_model_batchnorm2d(m);
    cn_model_relu(m);
    cn_model_maxpool2d(m, 2);
    cn_model_conv2d(m, 64, 3, 1, 1);
    cn_model_batchnorm2d(m);
    cn_model_relu(m);
    cn_model_maxpool2d(m, 2);
    cn_model_flatten(m);
    cn_model_dropout(m, 0.25f);
    cn_model_linear(m, classes);
}

/* A CIFAR-style ResNet scaled to 28x28: a 3x3 stem, three stages of one
 * BasicBlock each (the last two halve the size), global average pooling. */
static void resnet(cn_model *m, int64_t classes)
{
    cn_conv2d_params p = cn_conv2d_params_default();
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
    cn_model_conv2d_ex(m, 32, 3, &p, 0);
    cn_model_batchnorm2d(m);
    cn_model_relu(m);
    cn_model_residual(m, 32, 1);
    cn_model_residual(m, 64, 2);
    cn_model_residual(m, 128, 2);
    cn_model_global_avgpool2d(m);
    cn_model_linear(m, classes);
}

cn_status cn_model_build(cn_model **out, const char *name, int64_t H, int64_t W, int64_t C,
                         int64_t classes)
{
    *out = NULL;
    void (*build)(cn_model *, int64_t) = NULL;
    if (name && strcmp(name, "lenet") == 0) build = lenet;
    else if (name && strcmp(name, "resnet") == 0) build = resnet;
    else
        return cn__err(CN_ERR_INVALID_ARG, "model: unknown model '%s' (lenet, resnet)",
                       name ? name : "(null)");
    if (classes < 1)
        return cn__err(CN_ERR_INVALID_ARG, "model: classes=%lld must be >= 1", (long long)classes);
    cn_model *m;
    cn_status s = cn_model_new(&m, name, H, W, C);
    if (s) return s;
    build(m, classes);
    if (m->status) {
        s = m->status;
        cn_model_free(m);
        return s;
    }
    *out = m;
    return CN_OK;
}
