/* examples/train_fashion.c - train a small CNN on Fashion-MNIST with the
 * public convnet API only.
 *
 *     cc train_fashion.c $(pkg-config --cflags --libs convnet) -o train_fashion
 *     ./train_fashion [IDX_DIR] [EPOCHS]
 */
#include <stdio.h>
#include <stdlib.h>

#include <convnet/convnet.h>

#define BATCH 128

static int fail(const char *what)
{
    fprintf(stderr, "train_fashion: %s: %s\n", what, cn_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : CN_FASHION_MNIST_DIR;
    int epochs = argc > 2 ? atoi(argv[2]) : 3;

    /* One context holds the thread count and the random generator. */
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    ctx.threads = 2;
    cn_rng_seed(&ctx, 42);

    /* Data: normalised to zero mean and unit variance. */
    cn_dataset *train, *test;
    if (cn_dataset_load(dir, 1, &train) || cn_dataset_load(dir, 0, &test)) return fail("load");
    cn_dataset_normalize(train, CN_FASHION_MNIST_MEAN, CN_FASHION_MNIST_STD);
    cn_dataset_normalize(test, CN_FASHION_MNIST_MEAN, CN_FASHION_MNIST_STD);

    /* Model: conv-bn-relu-pool, twice, then a linear classifier. */
    cn_model *m;
    cn_model_new(&m, "example", train->h, train->w, train->c);
    cn_model_conv2d(m, 16, 3, 1, 1);
    cn_model_batchnorm2d(m);
    cn_model_relu(m);
    cn_model_maxpool2d(m, 2);
    cn_model_conv2d(m, 32, 3, 1, 1);
    cn_model_batchnorm2d(m);
    cn_model_relu(m);
    cn_model_maxpool2d(m, 2);
    cn_model_flatten(m);
    cn_model_linear(m, 10);
    if (cn_model_init(m, &ctx)) return fail("model");
    char summary[2048];
    fputs(cn_model_summary(m, summary, sizeof summary), stdout);

    /* Optimizer and learning-rate schedule over all steps. */
    cn_optim_config oc = cn_optim_config_default(CN_OPTIM_ADAMW);
    oc.lr = 2e-3f;
    cn_optim *opt;
    if (cn_optim_new(&opt, &oc, m->n_params)) return fail("optimizer");
    int64_t steps = (train->n + BATCH - 1) / BATCH, total = steps * epochs;
    cn_lr_sched sched = cn_lr_sched_default(CN_SCHED_ONECYCLE, oc.lr);

    /* The graph records each step's ops; reset, it reuses its memory. */
    cn_graph *g;
    cn_batcher batcher;
    if (cn_graph_new(&g, &ctx) || cn_batcher_init(&batcher, train, BATCH, 1, CN_AUG_NONE, &ctx))
        return fail("setup");
    float *x = malloc(sizeof(float) * BATCH * train->h * train->w * train->c);
    int32_t y[BATCH];

    for (int epoch = 0, step = 0; epoch < epochs; epoch++) {
        double loss_sum = 0;
        int64_t seen = 0, hits = 0, correct;
        int count;
        while (cn_batcher_next(&batcher, x, y, &count) == CN_OK && count > 0) {
            double loss;
            float lr = cn_lr_at(&sched, step++, total);
            if (cn_model_train_step(m, g, opt, lr, x, y, count, &loss, &correct))
                return fail("train step");
            loss_sum += loss * count, seen += count, hits += correct;
        }
        double test_loss, test_acc;
        if (cn_model_evaluate(m, g, test, 500, &test_loss, &test_acc, NULL, NULL)) return fail("eval");
        printf("epoch %d: train loss %.4f acc %.4f | test loss %.4f acc %.4f\n", epoch + 1,
               loss_sum / (double)seen, (double)hits / (double)seen, test_loss, test_acc);
        cn_batcher_start_epoch(&batcher);
    }
    if (cn_checkpoint_save("example.safetensors", m, opt, epochs, &ctx, 0, NULL, NULL))
        return fail("save");

    free(x);
    cn_batcher_free(&batcher);
    cn_graph_free(g);
    cn_optim_free(opt);
    cn_model_free(m);
    cn_dataset_free(train);
    cn_dataset_free(test);
    return 0;
}
