/* convnet predict: classify images with a checkpoint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train_common.h"

static const char *const CMD = "predict";

static const char usage[] =
    "usage: convnet predict --load FILE.safetensors [--invert auto|yes|no] [--top K] IMAGE...\n"
    "\n"
    "Classifies PNG/JPEG images with a checkpoint from `convnet train --save` and\n"
    "prints, for each image, the most likely classes with their probabilities.\n"
    "Images are converted to gray and resized (bilinear) to the model's input size.\n"
    "\n"
    "Options:\n"
    "  --load FILE          checkpoint (required)\n"
    "  --invert MODE        Fashion-MNIST shows light objects on black; 'auto' (default)\n"
    "                       inverts images whose border is mostly light, as photos of\n"
    "                       clothes on white are\n"
    "  --top K              classes to print per image (default 3)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example: convnet predict --load lenet.safetensors shoe.png shirt.jpg\n";

int cmd_predict(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *load = NULL, *invert = "auto";
    int top = 3, n_images = 0;
    char **images = calloc((size_t)argc, sizeof *images);
    if (!images) return cli_fail(CMD, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_opt(CMD, argc, argv, &i, "--load", &v))) {
            if (r < 0) goto usage_error;
            load = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--invert", &v))) {
            if (r < 0) goto usage_error;
            if (strcmp(v, "auto") != 0 && strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
                cli_usage(CMD, "--invert: '%s' is not auto, yes or no", v);
                goto usage_error;
            }
            invert = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--top", &v))) {
            if (r < 0) goto usage_error;
            if (cli_parse_int(v, &top) || top < 1) {
                cli_usage(CMD, "--top: '%s' is not an integer >= 1", v);
                goto usage_error;
            }
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_usage(CMD, "unknown option '%s'", argv[i]);
            goto usage_error;
        } else {
            images[n_images++] = argv[i];
        }
    }
    if (!load || !n_images) {
        cli_usage(CMD, !load ? "--load FILE is required" : "no image given");
        goto usage_error;
    }
    cn_model *m = NULL;
    cn_graph *g = NULL;
    float mean, std, *x = NULL;
    int rc = 0;
    cn_status s;
    tc_checkpoint_norm(load, &mean, &std);
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    if ((s = cn_checkpoint_load_model(load, &m)) || (s = cn_graph_new(&g, &ctx))) {
        rc = cli_fail_status(CMD, s);
        goto done;
    }
    if (m->in_shape[2] != 1) {
        rc = cli_fail(CMD, "model %s takes %lld channels; predict handles gray models", m->name,
                      (long long)m->in_shape[2]);
        goto done;
    }
    const int64_t H = m->in_shape[0], W = m->in_shape[1], K = m->out_shape[0];
    x = malloc((size_t)(H * W) * sizeof *x);
    float *probs = malloc((size_t)K * sizeof *probs);
    if (!x || !probs) {
        free(probs);
        rc = cli_fail(CMD, "out of memory");
        goto done;
    }
    cn_graph_set_grad_enabled(g, 0);
    for (int k = 0; k < n_images && !rc; k++) {
        if ((rc = tc_image_input(CMD, images[k], invert, H, W, mean, std, x, NULL))) break;
        cn_graph_reset(g);
        int64_t xs[4] = {1, H, W, 1};
        cn_var *logits = cn_model_forward(m, g, cn_var_wrap(g, 4, xs, x, NULL, 0), 0);
        if (!logits) {
            rc = cli_fail_status(CMD, cn_graph_status(g) ? cn_graph_status(g) : CN_ERR_INVALID_ARG);
            break;
        }
        cn_softmax_fwd(1, K, logits->data, probs);
        printf("%s:", images[k]);
        for (int t = 0; t < top && t < K; t++) {
            int64_t best = -1;
            for (int64_t c = 0; c < K; c++)
                if (probs[c] >= 0 && (best < 0 || probs[c] > probs[best])) best = c;
            const char *name = cn_fashion_mnist_class_name((int)best);
            printf("%s %s %.4f", t ? "," : "", name ? name : "?", (double)probs[best]);
            probs[best] = -1;
        }
        printf("\n");
    }
    free(probs);
done:
    free(x);
    cn_graph_free(g);
    cn_model_free(m);
    free(images);
    return rc;
usage_error:
    free(images);
    return 2;
}
