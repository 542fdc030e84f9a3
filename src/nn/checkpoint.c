/* Model checkpoints in safetensors: save, rebuild, restore. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convnet/nn.h"
#include "convnet/optim.h"
#include "convnet/safetensors.h"
#include "internal.h"

cn_status cn_checkpoint_save(const char *path, const cn_model *m, const cn_optim *o, int64_t epoch,
                             const cn_ctx *ctx, int n_meta, const char *const *meta_keys,
                             const char *const *meta_values)
{
    if (!m->params) return cn__err(CN_ERR_INVALID_ARG, "checkpoint: model %s has no parameters yet", m->name);
    if (o && o->n != m->n_params)
        return cn__err(CN_ERR_INVALID_ARG, "checkpoint: optimizer holds %zu values, model %zu", o->n,
                       m->n_params);
    cn_st_writer *w;
    cn_status s = cn_st_writer_new(&w);
    if (s) return s;
    for (int i = 0; i < m->n_tensors && !s; i++) {
        const cn_model_tensor *t = &m->tensors[i];
        s = cn_st_writer_add(w, t->name, t->ndim, t->shape, cn_model_data(m, t));
    }
    /* Scalars and states are stored as 1-element / small I64 tensors. */
    int64_t one = 1, four = 4, n = (int64_t)m->n_params;
    int64_t ep = epoch, step = o ? o->step : 0, rng[4];
    if (!s) s = cn_st_writer_add_i64(w, "train.epoch", 1, &one, &ep);
    if (!s && ctx) {
        memcpy(rng, ctx->rng, sizeof rng);
        s = cn_st_writer_add_i64(w, "train.rng", 1, &four, rng);
    }
    if (!s && o) {
        s = cn_st_writer_add_i64(w, "optimizer.step", 1, &one, &step);
        if (!s && o->m) s = cn_st_writer_add(w, "optimizer.m", 1, &n, o->m);
        if (!s && o->v) s = cn_st_writer_add(w, "optimizer.v", 1, &n, o->v);
    }
    char buf[96];
    snprintf(buf, sizeof buf, "%lld,%lld,%lld", (long long)m->in_shape[0], (long long)m->in_shape[1],
             (long long)m->in_shape[2]);
    if (!s) s = cn_st_writer_meta(w, "model", m->name);
    if (!s) s = cn_st_writer_meta(w, "input_shape", buf);
    snprintf(buf, sizeof buf, "%lld", (long long)(m->out_ndim == 1 ? m->out_shape[0] : 0));
    if (!s) s = cn_st_writer_meta(w, "classes", buf);
    snprintf(buf, sizeof buf, "%lld", (long long)epoch);
    if (!s) s = cn_st_writer_meta(w, "epoch", buf);
    if (!s) s = cn_st_writer_meta(w, "format", "convnet-checkpoint-1 (NHWC, conv weights [KH,KW,C_in/G,C_out], linear [IN,OUT])");
    for (int i = 0; i < n_meta && !s; i++) s = cn_st_writer_meta(w, meta_keys[i], meta_values[i]);
    if (!s) s = cn_st_writer_write(w, path);
    cn_st_writer_free(w);
    return s;
}

/* CN_OK if f holds a tensor `name` of exactly the expected shape. */
static cn_status check_exact(const cn_st_file *f, const char *path, const char *name, int ndim,
                             const int64_t *shape)
{
    cn_st_info info;
    if (cn_st_get(f, name, &info))
        return cn__err(CN_ERR_FORMAT, "checkpoint: %s: tensor '%s' is missing", path, name);
    int same = info.ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = info.shape[i] == shape[i];
    if (!same) {
        char a[96], b[96];
        return cn__err(CN_ERR_FORMAT, "checkpoint: %s: tensor '%s' has shape %s, the model needs %s",
                       path, name, cn_shape_str(info.ndim, info.shape, a, sizeof a),
                       cn_shape_str(ndim, shape, b, sizeof b));
    }
    return CN_OK;
}

/* Copies a float tensor of exactly the expected shape out of f. */
static cn_status read_exact(const cn_st_file *f, const char *path, const char *name, int ndim,
                            const int64_t *shape, float *dst, size_t n)
{
    cn_status s = check_exact(f, path, name, ndim, shape);
    return s ? s : cn_st_read_f32(f, name, dst, n);
}

static cn_status restore_open(const cn_st_file *f, const char *path, cn_model *m, cn_optim *o,
                              int64_t *epoch, cn_ctx *ctx)
{
    cn_status s = CN_OK;
    for (int i = 0; i < m->n_tensors && !s; i++) {
        const cn_model_tensor *t = &m->tensors[i];
        s = read_exact(f, path, t->name, t->ndim, t->shape, cn_model_data(m, t), t->size);
    }
    if (!s && epoch) {
        cn_st_info info;
        if (cn_st_get(f, "train.epoch", &info) || info.numel != 1)
            return cn__err(CN_ERR_FORMAT, "checkpoint: %s: 'train.epoch' is missing", path);
        s = cn_st_read_i64(f, "train.epoch", epoch, 1);
        if (!s && *epoch < 0)
            return cn__err(CN_ERR_FORMAT, "checkpoint: %s: negative epoch %lld", path, (long long)*epoch);
    }
    if (!s && ctx) {
        int64_t rng[4];
        cn_st_info info;
        if (cn_st_get(f, "train.rng", &info) || info.numel != 4)
            return cn__err(CN_ERR_FORMAT, "checkpoint: %s: 'train.rng' is missing or not 4 values", path);
        if (!(s = cn_st_read_i64(f, "train.rng", rng, 4))) memcpy(ctx->rng, rng, sizeof rng);
    }
    if (!s && o) {
        int64_t n = (int64_t)o->n, step;
        cn_st_info info;
        if (cn_st_get(f, "optimizer.step", &info) || info.numel != 1)
            return cn__err(CN_ERR_FORMAT, "checkpoint: %s: no optimizer state ('optimizer.step')", path);
        s = cn_st_read_i64(f, "optimizer.step", &step, 1);
        if (!s) o->step = step;
        if (!s && o->m) s = read_exact(f, path, "optimizer.m", 1, &n, o->m, o->n);
        if (!s && o->v) s = read_exact(f, path, "optimizer.v", 1, &n, o->v, o->n);
    }
    return s;
}

cn_status cn_checkpoint_restore(const char *path, cn_model *m, cn_optim *o, int64_t *epoch, cn_ctx *ctx)
{
    if (!m->params) return cn__err(CN_ERR_INVALID_ARG, "checkpoint: call cn_model_init before restoring");
    cn_st_file *f;
    cn_status s = cn_st_open(path, &f);
    if (s) return s;
    s = restore_open(f, path, m, o, epoch, ctx);
    cn_st_close(f);
    return s;
}

/* Exactly n comma-separated integers ("28,28,1"), read as sscanf's
 * "%lld,%lld,..." would, except that a value out of range is refused
 * (sscanf's behaviour is undefined there). 0, or -1 for anything else. */
static int parse_lls(const char *s, long long *v, int n)
{
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        v[i] = strtoll(s, &end, 10);
        if (end == s || errno == ERANGE || *end != (i + 1 < n ? ',' : '\0')) return -1;
        s = end + 1;
    }
    return 0;
}

cn_status cn_checkpoint_load_model(const char *path, cn_model **out)
{
    *out = NULL;
    cn_st_file *f;
    cn_status s = cn_st_open(path, &f);
    if (s) return s;
    const char *name = cn_st_meta(f, "model"), *shape = cn_st_meta(f, "input_shape"),
               *classes = cn_st_meta(f, "classes");
    long long hwc[3], k;
    if (!name || !shape || !classes || parse_lls(shape, hwc, 3) || parse_lls(classes, &k, 1)) {
        cn_st_close(f);
        return cn__err(CN_ERR_FORMAT,
                       "checkpoint: %s: __metadata__ lacks a valid model, input_shape or classes", path);
    }
    cn_model *m;
    cn_ctx ctx;
    cn_ctx_init(&ctx);
    s = cn_model_build(&m, name, hwc[0], hwc[1], hwc[2], k);
    /* The metadata sizes the model (classes=10^6 asks for gigabytes): every
     * parameter must be in the file, shaped as the model needs, before the
     * model's buffers are allocated, so they never outgrow the file. */
    for (int i = 0; !s && i < m->n_tensors; i++)
        s = check_exact(f, path, m->tensors[i].name, m->tensors[i].ndim, m->tensors[i].shape);
    if (!s) s = cn_model_init(m, &ctx);
    if (!s) s = restore_open(f, path, m, NULL, NULL, NULL);
    cn_st_close(f);
    if (s) {
        if (m) cn_model_free(m);
        return s;
    }
    *out = m;
    return CN_OK;
}
