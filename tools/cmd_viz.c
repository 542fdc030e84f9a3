/* convnet viz: pictures of what a trained network does - its first layer's
 * filters, every convolution's feature maps for one input, and a saliency
 * map (the gradient of the predicted class's score with respect to the
 * input pixels, through the autodiff graph). Also the eval figures that
 * `convnet eval --confusion` writes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train_common.h"
#include "viz_draw.h"

static const char *const CMD = "viz";

static const char usage[] =
    "usage: convnet viz filters     --load MODEL -o OUT.png\n"
    "       convnet viz activations --load MODEL (--image IMG | --index N) -o OUT.png\n"
    "       convnet viz saliency    --load MODEL (--image IMG | --index N) -o OUT.png\n"
    "\n"
    "Draws what a checkpoint from `convnet train --save` has learned:\n"
    "  filters      the first convolution's filters as a numbered grid, each scaled to\n"
    "               its own range (RGB filters in colour)\n"
    "  activations  the feature maps of every convolution (and residual block) for one\n"
    "               input, one panel per layer\n"
    "  saliency     |d logit of the predicted class / d input pixel|, computed by\n"
    "               backpropagating through the model in evaluation mode, as a heat\n"
    "               map beside and over the input\n"
    "OUT ending in .svg gives SVG, anything else PNG.\n"
    "\n"
    "Options:\n"
    "  --load FILE       checkpoint (required)\n"
    "  -o, --output OUT  picture to write (required)\n"
    "  --image IMG       PNG/JPEG input, converted to gray and resized to the model's\n"
    "                    input as `convnet predict` does\n"
    "  --invert MODE     auto (default: invert images with a light border), yes or no\n"
    "  --index N         use test image N of --data instead of --image\n"
    "  --data DIR        IDX directory for --index (default " CN_FASHION_MNIST_DIR ")\n"
    "  -h, --help        show this help\n"
    "\n"
    "Example: convnet viz saliency --load lenet.safetensors --index 0 -o saliency.png\n";

typedef struct viz_opts {
    const char *what, *load, *out, *image, *invert, *data;
    int index;
} viz_opts;

static int parse(int argc, char **argv, viz_opts *o)
{
    memset(o, 0, sizeof *o);
    o->invert = "auto", o->data = CN_FASHION_MNIST_DIR, o->index = -1;
    if (argc < 2 || argv[1][0] == '-') return cli_usage(CMD, "missing what to draw: filters, activations or saliency");
    o->what = argv[1];
    if (strcmp(o->what, "filters") != 0 && strcmp(o->what, "activations") != 0 &&
        strcmp(o->what, "saliency") != 0)
        return cli_usage(CMD, "unknown picture '%s' (filters, activations, saliency)", o->what);
    for (int i = 2; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_opt(CMD, argc, argv, &i, "--load", &v))) {
            if (r < 0) return 2;
            o->load = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--output", &v)) ||
                   (r = cli_opt(CMD, argc, argv, &i, "-o", &v))) {
            if (r < 0) return 2;
            o->out = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--image", &v))) {
            if (r < 0) return 2;
            o->image = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--data", &v))) {
            if (r < 0) return 2;
            o->data = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--invert", &v))) {
            if (r < 0) return 2;
            if (strcmp(v, "auto") != 0 && strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
                return cli_usage(CMD, "--invert: '%s' is not auto, yes or no", v);
            o->invert = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--index", &v))) {
            if (r < 0) return 2;
            if (cli_parse_int(v, &o->index)) return cli_usage(CMD, "--index: '%s' is not an integer >= 0", v);
        } else {
            return cli_usage(CMD, "unknown option '%s'", argv[i]);
        }
    }
    if (!o->load) return cli_usage(CMD, "--load FILE is required");
    if (!o->out) return cli_usage(CMD, "-o OUT is required");
    int needs_input = strcmp(o->what, "filters") != 0;
    if (needs_input && !o->image == (o->index < 0))
        return cli_usage(CMD, "%s needs exactly one of --image IMG and --index N", o->what);
    if (!needs_input && (o->image || o->index >= 0))
        return cli_usage(CMD, "filters takes no input image");
    return 0;
}

/* Writes a figure (or reports why it could not be drawn). */
static int emit(const char *path, const char *err, vd_bytes *b)
{
    if (!err) err = vd_bytes_write(path, b);
    vd_bytes_free(b);
    if (err) return cli_fail(CMD, "%s: %s", path, err);
    return 0;
}

/* ---- the input ------------------------------------------------------------- */

/* The model's input x [H,W,C] (normalised) and a gray picture of it
 * (show [H,W], 0..1), from --image or --index; a caption names it. */
static int load_input(const viz_opts *o, const cn_model *m, float mean, float std, float *x, float *show,
                      int *label, char *caption, size_t len)
{
    const int64_t H = m->in_shape[0], W = m->in_shape[1], C = m->in_shape[2];
    *label = -1;
    if (o->image) {
        if (C != 1) return cli_fail(CMD, "model %s takes %lld channels; --image handles gray models (use --index)",
                                    m->name, (long long)C);
        int inv, rc = tc_image_input(CMD, o->image, o->invert, H, W, mean, std, x, &inv);
        if (rc) return rc;
        const char *base = strrchr(o->image, '/');
        snprintf(caption, len, "input: %s%s", base ? base + 1 : o->image, inv ? " (inverted)" : "");
    } else {
        cn_dataset *ds;
        int rc = tc_load(CMD, o->data, 0, 0, mean, std, &ds);
        if (rc) return rc;
        if (o->index >= ds->n || ds->h != H || ds->w != W || ds->c != C) {
            rc = o->index >= ds->n
                     ? cli_fail(CMD, "--index %d: the test set has %lld images", o->index, (long long)ds->n)
                     : cli_fail(CMD, "test images are %lldx%lldx%lld, model %s takes %lldx%lldx%lld",
                                (long long)ds->h, (long long)ds->w, (long long)ds->c, m->name, (long long)H,
                                (long long)W, (long long)C);
            cn_dataset_free(ds);
            return rc;
        }
        memcpy(x, ds->x + (int64_t)o->index * H * W * C, (size_t)(H * W * C) * sizeof *x);
        *label = ds->y[o->index];
        char b[32];
        snprintf(caption, len, "input: test image %d (true class %s)", o->index, vd_class_name(*label, b, sizeof b));
        cn_dataset_free(ds);
    }
    for (int64_t p = 0; p < H * W; p++) {
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += x[p * C + c] * std + mean;
        show[p] = (float)(s / (double)C);
    }
    return 0;
}

/* Runs the model on x in evaluation mode; *best receives the predicted
 * class and *p its probability. With input, x is wrapped as a variable that
 * requires a gradient, returned there. The logits stay in the graph until
 * its next reset. */
static cn_var *predict(cn_model *m, cn_graph *g, float *x, cn_var **input, int *best, float *p)
{
    int64_t xs[4] = {1, m->in_shape[0], m->in_shape[1], m->in_shape[2]};
    cn_graph_reset(g);
    cn_var *vx = cn_var_wrap(g, 4, xs, x, NULL, input != NULL);
    if (input) *input = vx;
    cn_var *logits = cn_model_forward(m, g, vx, 0);
    if (!logits || logits->ndim != 2) return NULL;
    const int64_t K = logits->shape[1];
    float *probs = malloc((size_t)K * sizeof *probs);
    if (!probs) return NULL;
    cn_softmax_fwd(1, K, logits->data, probs);
    *best = 0;
    for (int64_t k = 1; k < K; k++)
        if (probs[k] > probs[*best]) *best = (int)k;
    *p = probs[*best];
    free(probs);
    return logits;
}

static int graph_fail(cn_graph *g)
{
    cn_status s = cn_graph_status(g);
    return cli_fail_status(CMD, s ? s : CN_ERR_INVALID_ARG);
}

/* ---- activations ------------------------------------------------------------ */

/* The feature maps after every conv2d and residual layer, from one forward
 * pass that keeps each layer's output. */
static int activations(const viz_opts *o, cn_model *m, cn_graph *g, float *x, const float *show,
                       const char *caption)
{
    const int n = m->n_layers;
    vd_fmap *maps = calloc((size_t)n, sizeof *maps);
    cn_var **outs = calloc((size_t)n, sizeof *outs);
    float **data = calloc((size_t)n, sizeof *data);
    int rc = 0, n_maps = 0;
    if (!outs || !maps || !data) {
        rc = cli_fail(CMD, "out of memory");
        goto done;
    }
    cn_graph_reset(g);
    int64_t xs[4] = {1, m->in_shape[0], m->in_shape[1], m->in_shape[2]};
    if (!cn_model_forward_layers(m, g, cn_var_wrap(g, 4, xs, x, NULL, 0), 0, outs)) {
        rc = graph_fail(g);
        goto done;
    }
    for (int l = 0; l < n; l++) {
        cn_layer_kind k = cn_model_layer_kind(m, l);
        const cn_var *y = outs[l];
        if ((k != CN_LAYER_CONV2D && k != CN_LAYER_RESIDUAL) || y->ndim != 4) continue;
        /* The graph is reused by predict below: keep a copy. */
        if (!(data[n_maps] = malloc(y->size * sizeof(float)))) {
            rc = cli_fail(CMD, "out of memory");
            goto done;
        }
        memcpy(data[n_maps], y->data, y->size * sizeof(float));
        maps[n_maps] = (vd_fmap){cn_model_layer_name(m, l), cn_layer_kind_name(k), (int)y->shape[1],
                                 (int)y->shape[2], (int)y->shape[3], data[n_maps]};
        n_maps++;
    }
    if (!n_maps) {
        rc = cli_fail(CMD, "model %s has no convolution", m->name);
        goto done;
    }
    int best;
    float p;
    if (!predict(m, g, x, NULL, &best, &p)) {
        rc = graph_fail(g);
        goto done;
    }
    char full[400], b[32];
    snprintf(full, sizeof full, "%s\nprediction: %s (%.1f%%)", caption, vd_class_name(best, b, sizeof b), 100.0 * p);
    vd_bytes out = {0};
    const char *err = vd_figure_activations(show, (int)m->in_shape[0], (int)m->in_shape[1], full, maps, n_maps,
                                            vd_format_of(o->out), &out);
    rc = emit(o->out, err, &out);
done:
    for (int i = 0; data && i < n_maps; i++) free(data[i]);
    free(data);
    free(outs);
    free(maps);
    return rc;
}

/* ---- saliency ------------------------------------------------------------------ */

static int saliency(const viz_opts *o, cn_model *m, cn_graph *g, float *x, const float *show,
                    const char *caption)
{
    const int64_t HW = m->in_shape[0] * m->in_shape[1], C = m->in_shape[2];
    int best;
    float p;
    cn_var *input;
    cn_graph_set_grad_enabled(g, 1);
    cn_var *logits = predict(m, g, x, &input, &best, &p);
    if (!logits) return graph_fail(g);
    /* score = <logits, onehot(best)>, whose gradient is d logit[best] / dx */
    int64_t ks[2] = {1, logits->shape[1]};
    cn_var *onehot = cn_var_new(g, 2, ks, 0);
    if (!onehot) return graph_fail(g);
    for (int64_t k = 0; k < ks[1]; k++) onehot->data[k] = (float)(k == best);
    cn_var *score = cn_sum(g, cn_mul(g, logits, onehot));
    if (!score) return graph_fail(g);
    cn_status s = cn_backward(g, score);
    cn_model_zero_grad(m); /* the parameters' gradients are a by-product */
    if (s) return cli_fail_status(CMD, s);
    if (!input->grad) return cli_fail(CMD, "no gradient reached the input");
    float *sal = malloc((size_t)HW * sizeof *sal);
    if (!sal) return cli_fail(CMD, "out of memory");
    for (int64_t i = 0; i < HW; i++) {
        float a = 0;
        for (int64_t c = 0; c < C; c++) a = fmaxf(a, fabsf(input->grad[i * C + c]));
        sal[i] = a;
    }
    char title[400], b[32];
    snprintf(title, sizeof title, "Saliency of %s (%.1f%%) for %s", vd_class_name(best, b, sizeof b), 100.0 * p,
             caption + (strncmp(caption, "input: ", 7) ? 0 : 7));
    vd_bytes out = {0};
    const char *err = vd_figure_saliency(show, sal, (int)m->in_shape[0], (int)m->in_shape[1], title,
                                         vd_format_of(o->out), &out);
    free(sal);
    return emit(o->out, err, &out);
}

int cmd_viz(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    viz_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    cn_model *m = NULL;
    cn_graph *g = NULL;
    float *x = NULL, *show = NULL;
    cn_status s;
    if ((s = cn_checkpoint_load_model(o.load, &m))) return cli_fail_status(CMD, s);
    if (!strcmp(o.what, "filters")) {
        vd_bytes out = {0};
        rc = emit(o.out, vd_figure_filters(m, vd_format_of(o.out), &out), &out);
        cn_model_free(m);
        return rc;
    }
    float mean, std;
    tc_checkpoint_norm(o.load, &mean, &std);
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    const int64_t HW = m->in_shape[0] * m->in_shape[1];
    x = malloc((size_t)(HW * m->in_shape[2]) * sizeof *x);
    show = malloc((size_t)HW * sizeof *show);
    char caption[300];
    int label;
    if (!x || !show) rc = cli_fail(CMD, "out of memory");
    else if ((s = cn_graph_new(&g, &ctx))) rc = cli_fail_status(CMD, s);
    else rc = load_input(&o, m, mean, std, x, show, &label, caption, sizeof caption);
    if (!rc) rc = !strcmp(o.what, "activations") ? activations(&o, m, g, x, show, caption)
                                                 : saliency(&o, m, g, x, show, caption);
    free(x);
    free(show);
    cn_graph_free(g);
    cn_model_free(m);
    return rc;
}

/* ---- eval figures --------------------------------------------------------------- */

void viz_confusion_counts(const cn_dataset *ds, const int32_t *pred, int K, int64_t *counts)
{
    memset(counts, 0, (size_t)K * K * sizeof *counts);
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->y[i] >= 0 && ds->y[i] < K && pred[i] >= 0 && pred[i] < K) counts[ds->y[i] * K + pred[i]]++;
}

int viz_write_eval_figures(const char *cmd, const char *path, const cn_dataset *ds, float mean,
                           float std, const int32_t *pred, const float *probs, int K)
{
    int64_t *counts = malloc((size_t)K * K * sizeof *counts);
    size_t n = strlen(path);
    char *second = malloc(n + 32);
    if (!counts || !second) {
        free(counts), free(second);
        return cli_fail(cmd, "out of memory");
    }
    /* OUT.png -> OUT-misclassified.png (the extension kept, if any) */
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - path) : n;
    snprintf(second, n + 32, "%.*s-misclassified%s", (int)stem, path, path + stem);
    viz_confusion_counts(ds, pred, K, counts);
    vd_format f = vd_format_of(path);
    vd_bytes b = {0};
    const char *err = vd_figure_confusion(counts, K, f, &b), *where = path;
    if (!err) err = vd_bytes_write(path, &b);
    vd_bytes_free(&b);
    if (!err) {
        where = second;
        err = vd_figure_misclassified(ds, mean, std, pred, probs, K, f, &b, NULL);
        if (!err) err = vd_bytes_write(second, &b);
        vd_bytes_free(&b);
    }
    int rc = err ? cli_fail(cmd, "%s: %s", where, err) : 0;
    free(counts);
    free(second);
    return rc;
}
