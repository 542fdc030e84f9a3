/* convnet train: train a built-in model on an IDX dataset (Fashion-MNIST by
 * default), report every epoch, save and resume checkpoints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"
#include "train_common.h"

static const char *const CMD = "train";

static const char usage[] =
    "usage: convnet train [--data DIR] [--model lenet|resnet] [--epochs E] [--batch-size B]\n"
    "                     [--optimizer sgd|adam|adamw] [--lr LR] [--momentum M]\n"
    "                     [--weight-decay WD] [--schedule constant|step|cosine|onecycle]\n"
    "                     [--schedule-epochs S] [--augment] [--seed S] [--threads T]\n"
    "                     [--save FILE.safetensors] [--resume FILE.safetensors] [--json]\n"
    "                     [--limit N] [--detect-anomaly] [--report DIR]\n"
    "\n"
    "Trains a CNN on 28x28 grayscale images in IDX files and evaluates it on the\n"
    "test set after every epoch.\n"
    "\n"
    "Options (--opt=value works too):\n"
    "  --data DIR          IDX directory: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]\n"
    "                      (default " CN_FASHION_MNIST_DIR ")\n"
    "  --model NAME        lenet (default: conv-pool-conv-pool-linear, ~51K parameters)\n"
    "                      or resnet (3 residual stages, ~0.3M parameters)\n"
    "  --epochs E          total epochs to reach (default: lenet 15, resnet 20); with\n"
    "                      --resume training continues up to E, not E more\n"
    "  --batch-size B      examples per step (default 128)\n"
    "  --optimizer NAME    sgd (momentum, nesterov with --nesterov), adam or adamw (default)\n"
    "  --nesterov          Nesterov momentum for sgd\n"
    "  --lr LR             peak learning rate (default: adamw 2e-3, adam 1e-3, sgd 0.05)\n"
    "  --momentum M        sgd momentum (default 0.9)\n"
    "  --weight-decay WD   (default: adamw 0.05, others 5e-4)\n"
    "  --schedule NAME     constant, step (x0.1 every third of the run), cosine or\n"
    "                      onecycle (default), each with a linear warm-up of 1/2 epoch\n"
    "                      except onecycle, which has its own\n"
    "  --schedule-epochs S length of the schedule (default: the model's default\n"
    "                      epochs); independent of --epochs so that a run stopped\n"
    "                      and resumed follows exactly the same learning rates\n"
    "  --augment           random crops (padding 2) and horizontal flips\n"
    "  --seed S            seed of initialisation, shuffling, augmentation, dropout (default 1)\n"
    "  --threads T         worker threads (default: all cores)\n"
    "  --save FILE         write a checkpoint after every epoch (atomically)\n"
    "  --resume FILE       continue from a checkpoint: weights, optimizer, epoch, RNG\n"
    "  --json              one JSON object per epoch on stdout: epoch, train_loss,\n"
    "                      train_accuracy, test_loss, test_accuracy, seconds\n"
    "  --limit N           train on the first N training examples only (quick runs)\n"
    "  --report DIR        after every epoch write DIR/report.html (self-contained:\n"
    "                      hyper-parameters, model, curves, confusion matrix, worst\n"
    "                      mistakes, filters) and DIR/history.jsonl\n"
    "  --detect-anomaly    stop at the first NaN or infinity a training step computes,\n"
    "                      naming the op, the pass, the epoch and the step (slower)\n"
    "  -h, --help          show this help\n"
    "\n"
    "The same seed and thread count give bit-identical results.\n"
    "Example: convnet train --model resnet --augment --save resnet.safetensors\n";

typedef struct train_opts {
    const char *data, *model, *save, *resume;
    cn_optim_type opt;
    cn_sched_type sched;
    int epochs, sched_epochs, batch, threads, json, augment, nesterov, limit;
    float lr, momentum, wd;
    int have_lr, have_wd, have_opt;
    int detect_anomaly;
    const char *report;
    unsigned long long seed;
} train_opts;

/* The integer options: 1 if argv[*i] was one of them, 0 if not, -1 after a
 * usage message. */
static int int_option(int argc, char **argv, int *i, train_opts *o)
{
    const struct {
        const char *name;
        int *dst, min;
    } opts[] = {{"--epochs", &o->epochs, 0},     {"--schedule-epochs", &o->sched_epochs, 1},
                {"--batch-size", &o->batch, 1},  {"--threads", &o->threads, 1},
                {"--limit", &o->limit, 1}};
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        const char *v;
        int r = cli_opt(CMD, argc, argv, i, opts[k].name, &v);
        if (r <= 0) {
            if (r < 0) return -1;
            continue;
        }
        int n;
        if (cli_parse_int(v, &n) || n < opts[k].min) {
            cli_usage(CMD, "%s: '%s' is not an integer >= %d", opts[k].name, v, opts[k].min);
            return -1;
        }
        *opts[k].dst = n;
        return 1;
    }
    return 0;
}

static int parse(int argc, char **argv, train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->data = CN_FASHION_MNIST_DIR, o->model = "lenet";
    o->opt = CN_OPTIM_ADAMW, o->sched = CN_SCHED_ONECYCLE;
    o->epochs = -1, o->sched_epochs = -1, o->batch = 128, o->momentum = 0.9f, o->seed = 1;
    o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (o->threads < 1) o->threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_opt(CMD, argc, argv, &i, "--data", &v))) {
            if (r < 0) return 2;
            o->data = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--model", &v))) {
            if (r < 0) return 2;
            o->model = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--save", &v))) {
            if (r < 0) return 2;
            o->save = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--resume", &v))) {
            if (r < 0) return 2;
            o->resume = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--optimizer", &v))) {
            if (r < 0) return 2;
            if (cn_optim_type_parse(v, &o->opt))
                return cli_usage(CMD, "--optimizer: unknown optimizer '%s' (sgd, adam, adamw)", v);
            o->have_opt = 1;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--schedule", &v))) {
            if (r < 0) return 2;
            if (cn_sched_type_parse(v, &o->sched))
                return cli_usage(CMD, "--schedule: unknown schedule '%s' (constant, step, cosine, onecycle)", v);
        } else if ((r = int_option(argc, argv, &i, o)) != 0) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--lr", &v))) {
            if (r < 0) return 2;
            if (cli_parse_float(v, &o->lr)) return cli_usage(CMD, "--lr: '%s' is not a positive number", v);
            o->have_lr = 1;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--momentum", &v))) {
            if (r < 0) return 2;
            if (cli_parse_nonneg_float(v, &o->momentum) || o->momentum >= 1)
                return cli_usage(CMD, "--momentum: '%s' must be in [0, 1)", v);
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--weight-decay", &v))) {
            if (r < 0) return 2;
            if (cli_parse_nonneg_float(v, &o->wd))
                return cli_usage(CMD, "--weight-decay: '%s' is not a non-negative number", v);
            o->have_wd = 1;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--seed", &v))) {
            if (r < 0) return 2;
            char *end;
            if (!*v || *v == '-' || (o->seed = strtoull(v, &end, 10), *end))
                return cli_usage(CMD, "--seed: '%s' is not a non-negative integer", v);
        } else if ((r = cli_flag(CMD, argv, i, "--augment"))) {
            if (r < 0) return 2;
            o->augment = 1;
        } else if ((r = cli_flag(CMD, argv, i, "--nesterov"))) {
            if (r < 0) return 2;
            o->nesterov = 1;
        } else if ((r = cli_flag(CMD, argv, i, "--json"))) {
            if (r < 0) return 2;
            o->json = 1;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--report", &v))) {
            if (r < 0) return 2;
            o->report = v;
        } else if ((r = cli_flag(CMD, argv, i, "--detect-anomaly"))) {
            if (r < 0) return 2;
            o->detect_anomaly = 1;
        } else {
            return cli_usage(CMD, "unknown option '%s'", argv[i]);
        }
    }
    return 0;
}

/* Per-model defaults: what `convnet train --model NAME` runs without options. */
typedef struct model_defaults {
    const char *name;
    int epochs;
} model_defaults;

static const model_defaults defaults[] = {{"lenet", 15}, {"resnet", 20}};

static const model_defaults *find_defaults(const char *name)
{
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (!strcmp(defaults[i].name, name)) return &defaults[i];
    return NULL;
}

/* The live progress line on a terminal. */
static void progress(int epoch, int epochs, int64_t done, int64_t total, double loss, double acc,
                     double rate, double eta)
{
    char bar[31];
    int fill = total ? (int)(30 * done / total) : 30;
    for (int i = 0; i < 30; i++) bar[i] = (char)(i < fill ? '=' : i == fill ? '>' : ' ');
    bar[30] = '\0';
    fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %lld/%lld loss %.4f acc %.4f %.0f img/s ETA %.0fs", epoch,
            epochs, bar, (long long)done, (long long)total, loss, acc, rate, eta);
    fflush(stderr);
}

/* Everything a run owns, released in one place on every path. */
typedef struct run {
    cn_dataset *train, *test;
    cn_model *model;
    cn_optim *optim;
    cn_graph *graph;
    cn_batcher batcher;
    int have_batcher;
    float *xb;
    int32_t *yb;
    report *rep;   /* --report: the page, and the test predictions it shows */
    int32_t *pred;
    float *probs;
} run;

static void run_free(run *r)
{
    if (r->have_batcher) cn_batcher_free(&r->batcher);
    cn_graph_free(r->graph);
    cn_optim_free(r->optim);
    cn_model_free(r->model);
    cn_dataset_free(r->train);
    cn_dataset_free(r->test);
    free(r->xb);
    free(r->yb);
    report_free(r->rep);
    free(r->pred);
    free(r->probs);
}

static int train(const train_opts *o, run *r)
{
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    ctx.threads = o->threads;
    cn_rng_seed(&ctx, o->seed);
    int rc;
    cn_status s;

    const char *model_name = o->model;
    if (o->resume) {
        /* The checkpoint decides the model; the options decide the rest. */
        cn_model *m;
        if ((s = cn_checkpoint_load_model(o->resume, &m))) return cli_fail_status(CMD, s);
        model_name = find_defaults(m->name) ? find_defaults(m->name)->name : o->model;
        cn_model_free(m);
    }
    const model_defaults *md = find_defaults(model_name);
    if (!md) return cli_usage(CMD, "--model: unknown model '%s' (lenet, resnet)", model_name);
    int epochs = o->epochs >= 0 ? o->epochs : md->epochs;
    int sched_epochs = o->sched_epochs > 0 ? o->sched_epochs : md->epochs;

    float mean = CN_FASHION_MNIST_MEAN, std = CN_FASHION_MNIST_STD;
    if ((rc = tc_load(CMD, o->data, 1, o->limit, mean, std, &r->train))) return rc;
    if ((rc = tc_load(CMD, o->data, 0, 0, mean, std, &r->test))) return rc;
    if ((s = cn_model_build(&r->model, model_name, r->train->h, r->train->w, r->train->c,
                            r->train->num_classes)) ||
        (s = cn_model_init(r->model, &ctx)))
        return cli_fail_status(CMD, s);

    cn_optim_config oc = cn_optim_config_default(o->opt);
    oc.lr = o->have_lr ? o->lr : o->opt == CN_OPTIM_SGD ? 0.05f : o->opt == CN_OPTIM_ADAM ? 1e-3f : 2e-3f;
    oc.weight_decay = o->have_wd ? o->wd : o->opt == CN_OPTIM_ADAMW ? 0.05f : 5e-4f;
    oc.momentum = o->momentum, oc.nesterov = o->nesterov;
    if ((s = cn_optim_new(&r->optim, &oc, r->model->n_params))) return cli_fail_status(CMD, s);

    int64_t start = 0;
    if (o->resume && (s = cn_checkpoint_restore(o->resume, r->model, r->optim, &start, &ctx)))
        return cli_fail_status(CMD, s);

    if ((s = cn_graph_new(&r->graph, &ctx))) return cli_fail_status(CMD, s);
    cn_graph_set_detect_anomaly(r->graph, o->detect_anomaly);
    unsigned aug = o->augment ? CN_AUG_CROP | CN_AUG_FLIP : CN_AUG_NONE;
    if ((s = cn_batcher_init(&r->batcher, r->train, o->batch, 1, aug, &ctx)))
        return cli_fail_status(CMD, s);
    r->have_batcher = 1;
    const int64_t img = r->train->h * r->train->w * r->train->c;
    r->xb = malloc((size_t)(o->batch * img) * sizeof *r->xb);
    r->yb = malloc((size_t)o->batch * sizeof *r->yb);
    if (!r->xb || !r->yb) return cli_fail(CMD, "out of memory for a batch of %d", o->batch);

    const int64_t steps = (r->train->n + o->batch - 1) / o->batch;
    cn_lr_sched sched = cn_lr_sched_default(o->sched, oc.lr);
    sched.steps_per_epoch = steps;
    if (o->sched != CN_SCHED_ONECYCLE) sched.warmup_steps = steps / 2;
    const int64_t total_steps = steps * sched_epochs;
    if (o->report) {
        /* the hyper-parameters as this run resolved them */
        char v[8][32];
        snprintf(v[0], 32, "%d", epochs), snprintf(v[1], 32, "%d", o->batch);
        snprintf(v[2], 32, "%g", (double)oc.lr), snprintf(v[3], 32, "%g", (double)oc.weight_decay);
        snprintf(v[4], 32, "%d", sched_epochs), snprintf(v[5], 32, "%llu", o->seed);
        snprintf(v[6], 32, "%d", ctx.threads), snprintf(v[7], 32, "%lld", (long long)r->train->n);
        const char *keys[] = {"model", "data", "training images", "epochs", "batch size", "optimizer",
                              "learning rate", "weight decay", "schedule", "schedule epochs", "augment",
                              "seed", "threads"};
        const char *vals[] = {model_name, o->data, v[7], v[0], v[1], cn_optim_type_name(o->opt), v[2], v[3],
                              cn_sched_type_name(o->sched), v[4], o->augment ? "yes" : "no", v[5], v[6]};
        const int64_t K = r->model->out_shape[0];
        r->pred = malloc((size_t)(r->test->n ? r->test->n : 1) * sizeof *r->pred);
        r->probs = malloc((size_t)((r->test->n ? r->test->n : 1) * K) * sizeof *r->probs);
        if (!r->pred || !r->probs) return cli_fail(CMD, "out of memory for --report");
        if ((rc = report_open(&r->rep, CMD, o->report, 13, keys, vals, start, epochs))) return rc;
    }

    FILE *info = o->json ? stderr : stdout;
    fprintf(info, "model %s: %zu parameters, %lld training and %lld test images, %d threads\n",
            r->model->name, r->model->n_params, (long long)r->train->n, (long long)r->test->n,
            ctx.threads);
    const int tty = !o->json && isatty(STDERR_FILENO);
    double test_acc = -1;
    if (start >= epochs)
        fprintf(info, "checkpoint is at epoch %lld, nothing to do for --epochs %d\n", (long long)start, epochs);
    for (int64_t epoch = start; epoch < epochs; epoch++) {
        double t0 = tc_now(), loss_sum = 0;
        int64_t seen = 0, hits = 0, step = 0;
        int count;
        while ((s = cn_batcher_next(&r->batcher, r->xb, r->yb, &count)) == CN_OK && count > 0) {
            double loss;
            int64_t correct;
            float lr = cn_lr_at(&sched, epoch * steps + step, total_steps);
            if ((s = cn_model_train_step(r->model, r->graph, r->optim, lr, r->xb, r->yb, count, &loss,
                                         &correct)))
                break;
            loss_sum += loss * count, hits += correct, seen += count, step++;
            if (tty && (step % 10 == 0 || seen == r->train->n)) {
                double el = tc_now() - t0;
                progress((int)epoch + 1, epochs, seen, r->train->n, loss_sum / (double)seen,
                         (double)hits / (double)seen, (double)seen / el,
                         el / (double)seen * (double)(r->train->n - seen));
            }
        }
        if (tty) fprintf(stderr, "\r\033[K");
        if (s == CN_ERR_NUMERIC) /* --detect-anomaly: the library names the op, we the step */
            return cli_fail(CMD, "epoch %lld, step %lld/%lld: %s", (long long)epoch + 1,
                            (long long)step + 1, (long long)steps, cn_last_error());
        if (s) return cli_fail_status(CMD, s);
        double test_loss;
        /* Batches of up to twice the training batch (forward only, no
         * gradients): the graph's memory from training holds them, where
         * larger ones would take (and first touch) new arena chunks. */
        const int eval_batch = o->batch > 250 ? 500 : 2 * o->batch;
        if ((s = cn_model_evaluate(r->model, r->graph, r->test, eval_batch, &test_loss, &test_acc,
                                   r->pred, r->probs)))
            return cli_fail_status(CMD, s);
        double secs = tc_now() - t0, tl = loss_sum / (double)seen, ta = (double)hits / (double)seen;
        if (o->json)
            printf("{\"epoch\": %lld, \"train_loss\": %.6f, \"train_accuracy\": %.6f, \"test_loss\": "
                   "%.6f, \"test_accuracy\": %.6f, \"seconds\": %.3f}\n",
                   (long long)epoch + 1, tl, ta, test_loss, test_acc, secs);
        else
            printf("epoch %lld/%d  train loss %.4f  accuracy %.4f  |  test loss %.4f  accuracy %.4f  "
                   "|  %.1fs\n",
                   (long long)epoch + 1, epochs, tl, ta, test_loss, test_acc, secs);
        fflush(stdout);
        if (r->rep) {
            vd_epoch e = {(double)(epoch + 1), tl, ta, test_loss, test_acc, secs};
            if ((rc = report_update(r->rep, r->model, r->test, mean, std, r->pred, r->probs, &e))) return rc;
        }
        if (o->save) {
            /* Saved before the next epoch's shuffle draws from the RNG, so a
             * resumed run continues exactly where this one would. */
            char lr_s[32], wd_s[32], bs[32], mean_s[32], std_s[32], seed_s[32], se_s[32];
            snprintf(lr_s, sizeof lr_s, "%g", (double)oc.lr);
            snprintf(wd_s, sizeof wd_s, "%g", (double)oc.weight_decay);
            snprintf(bs, sizeof bs, "%d", o->batch);
            snprintf(mean_s, sizeof mean_s, "%.9g", (double)mean);
            snprintf(std_s, sizeof std_s, "%.9g", (double)std);
            snprintf(seed_s, sizeof seed_s, "%llu", o->seed);
            snprintf(se_s, sizeof se_s, "%d", sched_epochs);
            const char *keys[] = {"optimizer", "lr", "weight_decay", "batch_size", "schedule",
                                  "schedule_epochs", "augment", "seed", "data_mean", "data_std",
                                  "test_accuracy"};
            char acc_s[32];
            snprintf(acc_s, sizeof acc_s, "%.6f", test_acc);
            const char *vals[] = {cn_optim_type_name(o->opt), lr_s, wd_s, bs, cn_sched_type_name(o->sched),
                                  se_s, o->augment ? "1" : "0", seed_s, mean_s, std_s, acc_s};
            if ((s = cn_checkpoint_save(o->save, r->model, r->optim, epoch + 1, &ctx, 11, keys, vals)))
                return cli_fail_status(CMD, s);
        }
        cn_batcher_start_epoch(&r->batcher);
    }
    if (test_acc >= 0) printf("test accuracy: %.4f\n", test_acc);
    return 0;
}

int cmd_train(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    train_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    run r = {0};
    rc = train(&o, &r);
    run_free(&r);
    return rc;
}
