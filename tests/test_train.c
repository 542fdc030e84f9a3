/* Training end to end: a tiny network overfits, the CLI's train / eval /
 * predict work on a small IDX dataset, a resumed run is bit-identical to an
 * uninterrupted one, and the thread count does not change the result. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/* ---- a small synthetic IDX dataset -------------------------------------- */



static const char *data_dir(void) { return tl_squares_dataset(240, 80); }

/* ---- the tests ------------------------------------------------------------- */

static void tiny_network_overfits_a_few_batches(void)
{
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    cn_rng_seed(&ctx, 3);
    cn_model *m;
    CHECK_OK(cn_model_new(&m, "tiny", 8, 8, 2));
    cn_model_conv2d(m, 8, 3, 1, 1);
    cn_model_batchnorm2d(m);
    cn_model_relu(m);
    cn_model_maxpool2d(m, 2);
    cn_model_flatten(m);
    cn_model_linear(m, 5);
    CHECK_OK(cn_model_init(m, &ctx));
    enum { N = 24 };
    float x[N * 8 * 8 * 2];
    int32_t y[N];
    tl_fill(x, sizeof x / sizeof x[0], -1, 1);
    for (int i = 0; i < N; i++) y[i] = tl_randint(0, 4); /* random labels: only memory helps */
    cn_optim_config oc = cn_optim_config_default(CN_OPTIM_ADAM);
    oc.lr = 1e-2f;
    cn_optim *o;
    CHECK_OK(cn_optim_new(&o, &oc, m->n_params));
    cn_graph *g;
    CHECK_OK(cn_graph_new(&g, &ctx));
    double loss = 0, first = 0;
    int64_t correct = 0;
    for (int step = 0; step < 300; step++) {
        /* two batches of 12, alternating */
        int b = step % 2;
        CHECK_OK(cn_model_train_step(m, g, o, oc.lr, x + b * 12 * 128, y + b * 12, 12, &loss, &correct));
        if (step == 0) first = loss;
    }
    CHECK(first > 1.0, "initial loss %g should be near log(5)", first);
    CHECK(loss < 0.05 && correct == 12, "after 300 steps: loss %g, %lld/12 right", loss, (long long)correct);
    cn_dataset *ds;
    CHECK_OK(cn_dataset_from_arrays(x, y, N, 8, 8, 2, 5, &ds));
    double eloss, acc;
    CHECK_OK(cn_model_evaluate(m, g, ds, 7, &eloss, &acc, NULL, NULL));
    CHECK(acc == 1.0, "evaluation accuracy %g on the memorised set", acc);
    cn_dataset_free(ds);
    cn_graph_free(g);
    cn_optim_free(o);
    cn_model_free(m);
}

static void train_prints_parameters_epochs_and_json(void)
{
    const char *d = data_dir();
    const tl_cli_result *r = tl_cli("train", "--data", d, "--epochs", "2", "--batch-size", "32",
                                    "--json", "--seed", "4", NULL);
    CHECK(r->status == 0, "train failed (%d): %s", r->status, r->err);
    CHECK(strstr(r->err, "50378 parameters"), "parameter count missing: %s", r->err);
    const char *keys[] = {"\"epoch\"", "\"train_loss\"", "\"train_accuracy\"", "\"test_loss\"",
                          "\"test_accuracy\"", "\"seconds\""};
    int lines = 0;
    for (const char *p = r->out; (p = strchr(p, '{')); p++, lines++) {
        const char *end = strchr(p, '\n');
        CHECK(end, "JSON line not terminated");
        for (int k = 0; k < 6; k++) {
            const char *at = strstr(p, keys[k]);
            CHECK(at && at < end, "line %d lacks %s: %.*s", lines, keys[k], (int)(end - p), p);
        }
    }
    CHECK(lines == 2, "%d JSON lines, want 2: %s", lines, r->out);
    r = tl_cli("train", "--data", d, "--epochs", "1", "--batch-size", "32", NULL);
    CHECK(r->status == 0 && strstr(r->out, "epoch 1/1") && strstr(r->out, "test accuracy:"),
          "plain output: %s", r->out);
}

static void a_few_epochs_learn_the_synthetic_task(void)
{
    const tl_cli_result *r = tl_cli("train", "--data", data_dir(), "--epochs", "6", "--batch-size",
                                    "16", "--schedule-epochs", "6", "--save",
                                    tl_scratch("learn.safetensors"), NULL);
    CHECK(r->status == 0, "train failed: %s", r->err);
    const char *at = strstr(r->out, "test accuracy: ");
    CHECK(at, "no final accuracy: %s", r->out);
    double acc = atof(at + 15);
    CHECK(acc >= 0.9, "test accuracy %g on a task a CNN learns easily", acc);
    r = tl_cli("eval", "--load", tl_scratch("learn.safetensors"), "--data", data_dir(), "--json", NULL);
    CHECK(r->status == 0, "eval failed: %s", r->err);
    at = strstr(r->out, "\"test_accuracy\": ");
    CHECK(at && fabs(atof(at + 17) - acc) < 1e-4, "eval accuracy differs from training's: %s vs %g",
          r->out, acc);
}

static void resumed_training_is_bit_identical_to_an_uninterrupted_run(void)
{
    const char *d = data_dir();
    char *full = tl_scratch("full.safetensors"), *part = tl_scratch("part.safetensors");
    const tl_cli_result *r = tl_cli("train", "--data", d, "--epochs", "3", "--batch-size", "32",
                                    "--seed", "9", "--augment", "--save", full, NULL);
    CHECK(r->status == 0, "uninterrupted run failed: %s", r->err);
    char last_full[256];
    snprintf(last_full, sizeof last_full, "%s", strstr(r->out, "epoch 3/3") ? strstr(r->out, "epoch 3/3") : "");
    r = tl_cli("train", "--data", d, "--epochs", "2", "--batch-size", "32", "--seed", "9",
               "--augment", "--save", part, NULL);
    CHECK(r->status == 0, "first half failed: %s", r->err);
    r = tl_cli("train", "--data", d, "--epochs", "3", "--batch-size", "32", "--seed", "9",
               "--augment", "--resume", part, "--save", part, NULL);
    CHECK(r->status == 0, "resumed run failed: %s", r->err);
    CHECK(!strstr(r->out, "epoch 1/3") && strstr(r->out, "epoch 3/3"), "resume must run only epoch 3: %s", r->out);
    char why[256];
    CHECK(tl_same_checkpoint(full, part, why, sizeof why), "resumed != uninterrupted: %s", why);
}

static void thread_count_and_reruns_do_not_change_the_result(void)
{
    const char *d = data_dir();
    char *a = tl_scratch("t1.safetensors"), *b = tl_scratch("t2.safetensors"), *c = tl_scratch("t2b.safetensors");
    const char *common[] = {"train", "--data", d, "--epochs", "1", "--batch-size", "32", "--seed", "11", "--save"};
    const char *args[16];
    const char *files[3] = {a, b, c}, *threads[3] = {"1", "2", "2"};
    for (int k = 0; k < 3; k++) {
        int n = 0;
        for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) args[n++] = common[i];
        args[n++] = files[k], args[n++] = "--threads", args[n++] = threads[k], args[n] = NULL;
        const tl_cli_result *r = tl_cli_argv(args);
        CHECK(r->status == 0, "run %d failed: %s", k, r->err);
    }
    char why[256];
    CHECK(tl_same_checkpoint(b, c, why, sizeof why), "two identical runs differ: %s", why);
    CHECK(tl_same_checkpoint(a, b, why, sizeof why), "1 thread and 2 threads differ: %s", why);
}

static void predict_names_a_class_for_an_image(void)
{
    char *ckpt = tl_scratch("learn.safetensors"), *png = tl_scratch("item.png");
    int64_t s[3] = {28, 28, 1};
    cn_tensor *img;
    CHECK_OK(cn_tensor_new(&img, 3, s));
    for (int y = 3; y < 9; y++)
        for (int x = 1; x < 7; x++) img->data[y * 28 + x] = 230; /* class 0's square */
    CHECK_OK(cn_image_write_png(png, img));
    cn_tensor_free(img);
    const tl_cli_result *r = tl_cli("predict", "--load", ckpt, "--invert", "no", png, NULL);
    CHECK(r->status == 0, "predict failed: %s", r->err);
    CHECK(strstr(r->out, "item.png: T-shirt/top"), "class 0 expected first: %s", r->out);
}

static void bad_input_gets_one_error_line(void)
{
    const char *cases[][8] = {
        {"train", "--data", "/nonexistent", NULL},
        {"train", "--model", "vgg", "--data", "/nonexistent", NULL},
        {"train", "--epochs", "-1", NULL},
        {"train", "--optimizer", "lbfgs", NULL},
        {"train", "--resume", "/nonexistent.safetensors", NULL},
        {"eval", NULL},
        {"eval", "--load", "/nonexistent.safetensors", NULL},
        {"predict", "--load", "/nonexistent.safetensors", "x.png", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const tl_cli_result *r = tl_cli_argv(cases[i]);
        CHECK(r->status != 0 && !r->crashed, "case %zu (%s %s): exit %d", i, cases[i][0], cases[i][1], r->status);
        CHECK(r->err_lines == 1, "case %zu: %d stderr lines: %s", i, r->err_lines, r->err);
    }
}

/* The example in examples/ trains through the public API alone. */
static void the_c_example_trains_and_saves(void)
{
    char exe[600], cmd[1400];
    snprintf(exe, sizeof exe, "%s", CN_CLI);
    char *slash = strrchr(exe, '/');
    CHECK(slash, "CN_CLI has no directory: %s", CN_CLI);
    strcpy(slash + 1, "train_fashion");
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' '%s' 2 > example.log 2>&1", tl_tmpdir(), exe, data_dir());
    CHECK(system(cmd) == 0, "the example failed: see %s/example.log", tl_tmpdir());
    cn_st_file *f;
    CHECK_OK(cn_st_open(tl_scratch("example.safetensors"), &f));
    cn_st_info info;
    CHECK_OK(cn_st_get(f, "fc1.weight", &info));
    CHECK(info.ndim == 2 && info.shape[0] == 7 * 7 * 32 && info.shape[1] == 10, "fc1.weight shape");
    cn_st_close(f);
}

int main(void)
{
    TL_RUN(tiny_network_overfits_a_few_batches);
    TL_RUN(train_prints_parameters_epochs_and_json);
    TL_RUN(a_few_epochs_learn_the_synthetic_task);
    TL_RUN(resumed_training_is_bit_identical_to_an_uninterrupted_run);
    TL_RUN(thread_count_and_reruns_do_not_change_the_result);
    TL_RUN(predict_names_a_class_for_an_image);
    TL_RUN(bad_input_gets_one_error_line);
    TL_RUN(the_c_example_trains_and_saves);
    return tl_summary();
}
