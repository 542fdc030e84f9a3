/* convnet eval: a checkpoint's loss and accuracy on a test set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "train_common.h"
#include "viz_draw.h"

static const char *const CMD = "eval";

static const char usage[] =
    "usage: convnet eval --load FILE.safetensors [--data DIR] [--json] [--threads T]\n"
    "                    [--confusion OUT.png]\n"
    "\n"
    "Evaluates a checkpoint written by `convnet train --save` on the test split\n"
    "(t10k-*) of an IDX directory and prints the loss, the accuracy and the\n"
    "accuracy of every class.\n"
    "\n"
    "Options:\n"
    "  --load FILE     checkpoint (required)\n"
    "  --data DIR      IDX directory (default " CN_FASHION_MNIST_DIR ")\n"
    "  --json          one JSON object: test_loss, test_accuracy, class_accuracy\n"
    "  --threads T     worker threads (default: all cores)\n"
    "  --confusion OUT write the confusion matrix (class names, counts) to OUT.png and\n"
    "                  the 16 most confidently misclassified test images, with true\n"
    "                  and predicted labels, to OUT-misclassified.png (.svg: SVG)\n"
    "  -h, --help      show this help\n";

int cmd_eval(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *load = NULL, *data = CN_FASHION_MNIST_DIR, *confusion = NULL;
    int json = 0, threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_opt(CMD, argc, argv, &i, "--load", &v))) {
            if (r < 0) return 2;
            load = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--data", &v))) {
            if (r < 0) return 2;
            data = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--threads", &v))) {
            if (r < 0) return 2;
            if (cli_parse_int(v, &threads) || threads < 1)
                return cli_usage(CMD, "--threads: '%s' is not an integer >= 1", v);
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--confusion", &v))) {
            if (r < 0) return 2;
            confusion = v;
        } else if ((r = cli_flag(CMD, argv, i, "--json"))) {
            if (r < 0) return 2;
            json = 1;
        } else {
            return cli_usage(CMD, "unknown option '%s'", argv[i]);
        }
    }
    if (!load) return cli_usage(CMD, "--load FILE is required");
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    ctx.threads = threads > 0 ? threads : 1;
    cn_model *m = NULL;
    cn_dataset *test = NULL;
    cn_graph *g = NULL;
    int32_t *pred = NULL;
    float *probs = NULL;
    float mean, std;
    int rc = 0;
    cn_status s;
    tc_checkpoint_norm(load, &mean, &std);
    if ((s = cn_checkpoint_load_model(load, &m))) {
        rc = cli_fail_status(CMD, s);
        goto done;
    }
    if ((rc = tc_load(CMD, data, 0, 0, mean, std, &test))) goto done;
    double loss, acc;
    if ((s = cn_graph_new(&g, &ctx)) ||
        !(pred = malloc((size_t)(test->n ? test->n : 1) * sizeof *pred)) ||
        (confusion && !(probs = malloc((size_t)((test->n ? test->n : 1) * m->out_shape[0]) * sizeof *probs))) ||
        (s = cn_model_evaluate(m, g, test, 500, &loss, &acc, pred, probs))) {
        rc = s ? cli_fail_status(CMD, s) : cli_fail(CMD, "out of memory");
        goto done;
    }
    int64_t right[256] = {0}, total[256] = {0};
    int K = test->num_classes < 256 ? test->num_classes : 256;
    for (int64_t i = 0; i < test->n; i++)
        if (test->y[i] < K) total[test->y[i]]++, right[test->y[i]] += pred[i] == test->y[i];
    if (json) {
        printf("{\"test_loss\": %.6f, \"test_accuracy\": %.6f, \"class_accuracy\": [", loss, acc);
        for (int k = 0; k < K; k++)
            printf("%s%.6f", k ? ", " : "", total[k] ? (double)right[k] / (double)total[k] : 0.0);
        printf("]}\n");
    } else {
        printf("%s on %lld test images: loss %.4f  accuracy %.4f\n", m->name, (long long)test->n,
               loss, acc);
        for (int k = 0; k < K; k++) {
            const char *name = cn_fashion_mnist_class_name(k);
            printf("  %-12s %.4f\n", name ? name : "?", total[k] ? (double)right[k] / (double)total[k] : 0.0);
        }
    }
    if (confusion)
        rc = viz_write_eval_figures(CMD, confusion, test, mean, std, pred, probs, (int)m->out_shape[0]);
done:
    free(probs);
    free(pred);
    cn_graph_free(g);
    cn_dataset_free(test);
    cn_model_free(m);
    return rc;
}
