/* Anomaly detection: with cn_graph_set_detect_anomaly on, the first NaN or
 * infinity an op's forward or backward produces fails the graph with
 * CN_ERR_NUMERIC and a message naming the op, the pass and the culprit;
 * without it values flow on silently; finite graphs compute the same bits
 * either way; and `convnet train --detect-anomaly` turns a poisoned
 * checkpoint into one error line naming the op, the epoch and the step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static cn_ctx ctx1;

static cn_graph *new_graph(int detect)
{
    cn_ctx_init(&ctx1);
    cn_graph *g = NULL;
    if (cn_graph_new(&g, &ctx1)) return NULL;
    cn_graph_set_detect_anomaly(g, detect);
    return g;
}

/* x [2,5,5,1] finite, w [3,3,1,2] with w[4] = NaN (the centre tap of
 * output channel 0): relu(conv2d(x, w)) summed. */
static cn_var *poisoned_conv(cn_graph *g, float *x, float *w, float *gw)
{
    tl_fill(x, 50, -1, 1), tl_fill(w, 18, -1, 1);
    memset(gw, 0, 18 * sizeof *gw);
    w[4 * 2] = NAN;
    int64_t xs[4] = {2, 5, 5, 1}, ws[4] = {3, 3, 1, 2};
    cn_conv2d_params p = cn_conv2d_params_default();
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
    cn_var *vx = cn_var_wrap(g, 4, xs, x, NULL, 0), *vw = cn_var_wrap(g, 4, ws, w, gw, 1);
    return cn_sum(g, cn_relu(g, cn_conv2d(g, vx, vw, NULL, &p)));
}

static void a_nan_weight_is_reported_at_the_first_op_whose_output_it_reaches(void)
{
    float x[50], w[18], gw[18];
    cn_graph *g = new_graph(1);
    CHECK(g, "graph");
    cn_var *loss = poisoned_conv(g, x, w, gw);
    const char *msg = cn_last_error();
    CHECK(!loss && cn_graph_status(g) == CN_ERR_NUMERIC, "status %s",
          cn_status_str(cn_graph_status(g)));
    /* The first failure is kept: relu and sum, given NULL, do not replace it. */
    CHECK(strstr(msg,
                 "anomaly: conv2d (forward) produced NaN at element 0 of its output [2,5,5,2]") &&
              strstr(msg, "because input 1 [3,3,1,2] holds NaN at element 8"),
          "message: %s", msg);
    CHECK(cn_backward(g, loss) == CN_ERR_NUMERIC, "backward after a failed forward");
    CHECK(!strcmp(cn_status_str(CN_ERR_NUMERIC), "non-finite value"), "status name %s",
          cn_status_str(CN_ERR_NUMERIC));
    /* The setting survives reset, which clears the failure. */
    cn_graph_reset(g);
    CHECK(cn_graph_status(g) == CN_OK, "reset keeps the failure");
    CHECK(!poisoned_conv(g, x, w, gw) && cn_graph_status(g) == CN_ERR_NUMERIC,
          "detection lost at reset");
    cn_graph_free(g);
}

static void without_detection_nan_flows_through_forward_and_backward(void)
{
    float x[50], w[18], gw[18];
    cn_graph *g = new_graph(0);
    CHECK(g, "graph");
    cn_var *loss = poisoned_conv(g, x, w, gw);
    CHECK(loss && isnan(loss->data[0]), "loss %g, want NaN", loss ? loss->data[0] : 0.0);
    CHECK_OK(cn_backward(g, loss));
    int nans = 0;
    for (int i = 0; i < 18; i++) nans += isnan(gw[i]);
    CHECK(nans > 0, "no NaN reached the weight gradient");
    /* Ops that record nothing (grad disabled) are not checked even when on. */
    cn_graph_reset(g);
    cn_graph_set_detect_anomaly(g, 1);
    cn_graph_set_grad_enabled(g, 0);
    loss = poisoned_conv(g, x, w, gw);
    CHECK(loss && isnan(loss->data[0]) && cn_graph_status(g) == CN_OK,
          "an evaluation pass is not checked: %s", cn_last_error());
    cn_graph_free(g);
}

static void overflow_from_finite_inputs_is_named_as_such(void)
{
    cn_graph *g = new_graph(1);
    CHECK(g, "graph");
    float a[3] = {1, 3e38f, -3e38f}, ga[3] = {0};
    int64_t s[1] = {3};
    cn_var *va = cn_var_wrap(g, 1, s, a, ga, 1);
    CHECK(!cn_add(g, va, va), "3e38 + 3e38 accepted");
    CHECK(strstr(cn_last_error(), "anomaly: add (forward) produced inf at element 1 of its output "
                                  "[3] from finite inputs"),
          "message: %s", cn_last_error());
    cn_graph_free(g);
}

static void a_backward_that_overflows_is_named_with_the_input_and_element(void)
{
    /* loss = sum((a * b) * c): every forward value is finite (a*b*c <=
     * 3e38), but d loss / d b = c * a = 1e30 * 3e38 overflows at element 2. */
    float a[4] = {1, 1, 3e38f, 1}, b[4] = {1, 1, 1e-30f, 1}, c[4] = {1, 1, 1e30f, 1};
    float ga[4] = {0}, gb[4] = {0};
    int64_t s[1] = {4};
    for (int detect = 0; detect < 2; detect++) {
        cn_graph *g = new_graph(detect);
        CHECK(g, "graph");
        cn_var *va = cn_var_wrap(g, 1, s, a, ga, 1), *vb = cn_var_wrap(g, 1, s, b, gb, 1);
        cn_var *vc = cn_var_wrap(g, 1, s, c, NULL, 0);
        cn_var *loss = cn_sum(g, cn_mul(g, cn_mul(g, va, vb), vc));
        CHECK(loss && isfinite(loss->data[0]), "detect %d: forward failed: %s", detect,
              cn_last_error());
        cn_status st = cn_backward(g, loss);
        if (detect) {
            CHECK(st == CN_ERR_NUMERIC, "backward returned %s", cn_status_str(st));
            CHECK(strstr(cn_last_error(), "anomaly: mul (backward) produced inf in the gradient of "
                                          "input 1 [4] at element 2"),
                  "message: %s", cn_last_error());
        } else {
            CHECK(st == CN_OK && isinf(gb[2]) && ga[2] == 1, "undetected: %s, gb %g ga %g",
                  cn_status_str(st), gb[2], ga[2]);
        }
        memset(ga, 0, sizeof ga), memset(gb, 0, sizeof gb);
        cn_graph_free(g);
    }
}

/* A tiny model through cn_model_train_step. */
static cn_model *tiny_model(cn_ctx *ctx)
{
    cn_model *m;
    if (cn_model_new(&m, "tiny", 8, 8, 1)) return NULL;
    cn_model_conv2d(m, 4, 3, 1, 1);
    cn_model_batchnorm2d(m);
    cn_model_relu(m);
    cn_model_maxpool2d(m, 2);
    cn_model_flatten(m);
    cn_model_linear(m, 3);
    if (cn_model_init(m, ctx)) {
        cn_model_free(m);
        return NULL;
    }
    return m;
}

static void finite_training_is_bit_identical_with_detection_on(void)
{
    float x[6 * 64], grads[2][2000], params[2][2000];
    int32_t y[6] = {0, 1, 2, 0, 1, 2};
    tl_fill(x, sizeof x / sizeof x[0], -1, 1);
    size_t n = 0;
    for (int detect = 0; detect < 2; detect++) {
        cn_ctx ctx;
        cn_ctx_init(&ctx);
        cn_rng_seed(&ctx, 5);
        ctx.threads = 1;
        cn_model *m = tiny_model(&ctx);
        CHECK(m && m->n_params <= 2000, "model");
        cn_optim_config oc = cn_optim_config_default(CN_OPTIM_ADAM);
        cn_optim *o;
        CHECK_OK(cn_optim_new(&o, &oc, m->n_params));
        cn_graph *g;
        CHECK_OK(cn_graph_new(&g, &ctx));
        cn_graph_set_detect_anomaly(g, detect);
        for (int step = 0; step < 3; step++)
            CHECK_OK(cn_model_train_step(m, g, o, 1e-2f, x, y, 6, NULL, NULL));
        n = m->n_params;
        memcpy(params[detect], m->params, n * sizeof(float));
        memcpy(grads[detect], m->grads, n * sizeof(float));
        /* Poison one weight: the next step fails at the first conv. */
        m->params[m->tensors[0].offset + 1] = NAN;
        cn_status st = cn_model_train_step(m, g, o, 1e-2f, x, y, 6, NULL, NULL);
        if (detect)
            CHECK(st == CN_ERR_NUMERIC && strstr(cn_last_error(), "conv2d (forward) produced NaN"),
                  "poisoned step: %s: %s", cn_status_str(st), cn_last_error());
        else
            CHECK(st == CN_OK, "without detection the poisoned step runs: %s", cn_last_error());
        cn_graph_free(g);
        cn_optim_free(o);
        cn_model_free(m);
    }
    CHECK(!memcmp(params[0], params[1], n * sizeof(float)) &&
              !memcmp(grads[0], grads[1], n * sizeof(float)),
          "detection changed the numbers");
}

/* ---- the CLI ------------------------------------------------------------- */



static const char *data_dir(void) { return tl_squares_dataset(64, 20); }

/* Copies checkpoint src to dst with element `at` of float tensor `name`
 * replaced by v, keeping every other tensor and the metadata. */
static cn_status poison_checkpoint(const char *src, const char *dst, const char *name, size_t at,
                                   float v)
{
    cn_st_file *f;
    cn_status s = cn_st_open(src, &f);
    if (s) return s;
    cn_st_writer *w;
    if ((s = cn_st_writer_new(&w))) return cn_st_close(f), s;
    float *copy = NULL;
    for (size_t i = 0; i < cn_st_count(f) && !s; i++) {
        cn_st_info info;
        if ((s = cn_st_get(f, cn_st_name(f, i), &info))) break;
        const void *data = info.data;
        if (!strcmp(info.name, name) && info.dtype == CN_ST_F32 && at < info.numel) {
            if (!(copy = malloc(info.nbytes)))
                return cn_st_writer_free(w), cn_st_close(f), CN_ERR_NO_MEMORY;
            memcpy(copy, info.data, info.nbytes);
            copy[at] = v;
            data = copy;
        }
        s = cn_st_writer_add_raw(w, info.name, info.dtype, info.ndim, info.shape, data);
    }
    for (size_t i = 0; i < cn_st_meta_count(f) && !s; i++)
        s = cn_st_writer_meta(w, cn_st_meta_key(f, i), cn_st_meta(f, cn_st_meta_key(f, i)));
    if (!s) s = cn_st_writer_write(w, dst);
    cn_st_writer_free(w);
    cn_st_close(f);
    free(copy);
    return s;
}

static void train_detect_anomaly_names_the_op_epoch_and_step_in_one_line(void)
{
    char good[512], bad[512];
    tl_path(good, sizeof good, "good.safetensors");
    tl_path(bad, sizeof bad, "bad.safetensors");
    const char *d = data_dir();
    const tl_cli_result *r = tl_cli("train", "--data", d, "--epochs", "1", "--batch-size", "16",
                                    "--threads", "1", "--save", good, NULL);
    CHECK(r->status == 0, "first epoch failed: %s", r->err);
    CHECK_OK(poison_checkpoint(good, bad, "conv1.weight", 5, NAN));
    r = tl_cli("train", "--data", d, "--epochs", "2", "--batch-size", "16", "--threads", "1",
               "--resume", bad, "--detect-anomaly", NULL);
    CHECK(r->status == 1 && !r->crashed && r->err_lines == 1, "exit %d, %d stderr lines: %s",
          r->status, r->err_lines, r->err);
    CHECK(strstr(r->err,
                 "convnet train: epoch 2, step 1/4: anomaly: conv2d (forward) produced NaN") &&
              strstr(r->err, "because input 1 [3,3,1,32] holds NaN at element 5"),
          "stderr: %s", r->err);
    /* Without the flag the same run goes through on NaNs. */
    r = tl_cli("train", "--data", d, "--epochs", "2", "--batch-size", "16", "--threads", "1",
               "--resume", bad, NULL);
    CHECK(r->status == 0 && strstr(r->out, "train loss nan"), "exit %d: %s%s", r->status, r->out,
          r->err);
    /* Divergence mid-run: a huge SGD step makes the second step's values
     * blow up; the step named is not the first. */
    r = tl_cli("train", "--data", d, "--epochs", "1", "--batch-size", "16", "--threads", "1",
               "--optimizer", "sgd", "--lr", "1e30", "--schedule", "constant", "--detect-anomaly",
               NULL);
    CHECK(r->status == 1 && r->err_lines == 1 && strstr(r->err, "convnet train: epoch 1, step ") &&
              !strstr(r->err, "step 1/") && strstr(r->err, ": anomaly: "),
          "exit %d: %s", r->status, r->err);
    printf("  diverging run: %s", r->err);
}

static void train_help_lists_detect_anomaly(void)
{
    const tl_cli_result *r = tl_cli("train", "--help", NULL);
    CHECK(r->status == 0 && strstr(r->out, "[--detect-anomaly]") &&
              strstr(r->out, "  --detect-anomaly "),
          "usage: %s", r->out);
    r = tl_cli("train", "--detect-anomaly=1", NULL);
    CHECK(r->status == 2 && r->err_lines == 1, "a value for the flag: exit %d %s", r->status,
          r->err);
}

int main(void)
{
    TL_RUN(a_nan_weight_is_reported_at_the_first_op_whose_output_it_reaches);
    TL_RUN(without_detection_nan_flows_through_forward_and_backward);
    TL_RUN(overflow_from_finite_inputs_is_named_as_such);
    TL_RUN(a_backward_that_overflows_is_named_with_the_input_and_element);
    TL_RUN(finite_training_is_bit_identical_with_detection_on);
    TL_RUN(train_detect_anomaly_names_the_op_epoch_and_step_in_one_line);
    TL_RUN(train_help_lists_detect_anomaly);
    return tl_summary();
}
