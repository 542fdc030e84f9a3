/* bench/onednn.c - one convolution pass in oneDNN's C API (see onednn.h). */
#include "onednn.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl.h>

struct bench_onednn {
    int threads, nargs;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_primitive_desc_t hint, pd; /* hint: the forward pd the backward passes need */
    dnnl_primitive_t prim;
    dnnl_memory_t mem[4]; /* the execution arguments */
    dnnl_exec_arg_t args[4];
    void *owned[4]; /* buffers allocated here */
    const char *impl;
};

/* A failed call: message and unwind. */
#define TRY(call)                                                                                  \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            snprintf(err, errlen, "oneDNN: %s failed (status %d)", #call, (int)st_);               \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

static void *alloc_for(const dnnl_memory_desc_t *md, bench_onednn *o, int slot)
{
    size_t bytes = dnnl_memory_desc_get_size(md);
    void *p = cn_alloc((bytes + 63) / 64 * 64 + 64);
    if (p) memset(p, 0, bytes);
    o->owned[slot] = p;
    return p;
}

int bench_onednn_new(bench_onednn **out, const cn_conv2d_desc *d, bench_pass pass, int threads,
                     const float *x, const float *w, const float *gy, char *err, size_t errlen)
{
    *out = NULL;
    bench_onednn *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "oneDNN: out of memory");
        return -1;
    }
    o->threads = threads;
    /* Debian's libdnnl runs on the same libgomp as convnet: the work split is
     * chosen from omp_get_max_threads() when the primitive is created. */
    omp_set_num_threads(threads);
    dnnl_memory_desc_t src_md, dst_md, wei_any, wei_user;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t wsrc = NULL;
    const int64_t G = d->G, ICG = d->IC / d->G, OCG = d->OC / d->G;
    dnnl_dims_t src_dims = {d->MB, d->IC, d->IH, d->IW}, dst_dims = {d->MB, d->OC, d->OH, d->OW};
    dnnl_dims_t strides = {d->SH, d->SW}, dil = {d->DH - 1, d->DW - 1};
    dnnl_dims_t pad_l = {d->PT, d->PL}, pad_r = {d->PB, d->PR};
    /* convnet's w[kh][kw][i][g*OCG+o] as oneDNN's (g, o, i, kh, kw) */
    int wnd = G > 1 ? 5 : 4;
    dnnl_dims_t wdims = {0}, wstr = {0};
    if (G > 1) {
        int64_t dims5[5] = {G, OCG, ICG, d->KH, d->KW};
        int64_t str5[5] = {OCG, 1, d->OC, d->KW * ICG * d->OC, ICG * d->OC};
        memcpy(wdims, dims5, sizeof dims5), memcpy(wstr, str5, sizeof str5);
    } else {
        int64_t dims4[4] = {d->OC, d->IC, d->KH, d->KW};
        int64_t str4[4] = {1, d->OC, d->KW * d->IC * d->OC, d->IC * d->OC};
        memcpy(wdims, dims4, sizeof dims4), memcpy(wstr, str4, sizeof str4);
    }
    TRY(dnnl_engine_create(&o->eng, dnnl_cpu, 0));
    TRY(dnnl_stream_create(&o->stream, o->eng, dnnl_stream_default_flags));
    TRY(dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_f32, dnnl_nhwc));
    TRY(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc));
    TRY(dnnl_memory_desc_init_by_tag(&wei_any, wnd, wdims, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_strides(&wei_user, wnd, wdims, dnnl_f32, wstr));
    TRY(dnnl_primitive_attr_create(&attr));
    TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));

    dnnl_convolution_desc_t fwd, cd;
    TRY(dnnl_dilated_convolution_forward_desc_init(&fwd, dnnl_forward_training,
                                                   dnnl_convolution_direct, &src_md, &wei_any, NULL,
                                                   &dst_md, strides, dil, pad_l, pad_r));
    if (pass == BENCH_FWD) {
        TRY(dnnl_primitive_desc_create(&o->pd, &fwd, attr, o->eng, NULL));
    } else {
        TRY(dnnl_primitive_desc_create(&o->hint, &fwd, NULL, o->eng, NULL));
        if (pass == BENCH_BWD_DATA)
            TRY(dnnl_dilated_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct,
                                                                 &src_md, &wei_any, &dst_md,
                                                                 strides, dil, pad_l, pad_r));
        else
            TRY(dnnl_dilated_convolution_backward_weights_desc_init(
                &cd, dnnl_convolution_direct, &src_md, &wei_any, NULL, &dst_md, strides, dil, pad_l,
                pad_r));
        TRY(dnnl_primitive_desc_create(&o->pd, &cd, attr, o->eng, o->hint));
    }
    TRY(dnnl_primitive_create(&o->prim, o->pd));
    TRY(dnnl_primitive_desc_query(o->pd, dnnl_query_impl_info_str, 0, &o->impl));

    /* The weights the primitive reads, reordered once from convnet's layout. */
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(
        o->pd, pass == BENCH_BWD_WEIGHTS ? dnnl_query_diff_weights_md : dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *smd =
        dnnl_primitive_desc_query_md(o->pd, dnnl_query_scratchpad_md, 0);
    void *wbuf = alloc_for(wmd, o, 0), *sbuf = alloc_for(smd, o, 1);
    if (!wbuf || !sbuf) {
        snprintf(err, errlen, "oneDNN: out of memory for weights or scratchpad");
        goto fail;
    }
    dnnl_memory_t wmem, smem, a, b;
    TRY(dnnl_memory_create(&wmem, wmd, o->eng, wbuf));
    o->mem[o->nargs] = wmem;
    o->args[o->nargs++] = (dnnl_exec_arg_t){
        pass == BENCH_BWD_WEIGHTS ? DNNL_ARG_DIFF_WEIGHTS : DNNL_ARG_WEIGHTS, wmem};
    TRY(dnnl_memory_create(&smem, smd, o->eng, sbuf));
    o->mem[o->nargs] = smem;
    o->args[o->nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, smem};
    if (pass != BENCH_BWD_WEIGHTS) {
        TRY(dnnl_memory_create(&wsrc, &wei_user, o->eng, (void *)w));
        TRY(dnnl_reorder_primitive_desc_create(&rpd, &wei_user, o->eng, wmd, o->eng, NULL));
        TRY(dnnl_primitive_create(&reorder, rpd));
        dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, wsrc}, {DNNL_ARG_TO, wmem}};
        TRY(dnnl_primitive_execute(reorder, o->stream, 2, rargs));
        TRY(dnnl_stream_wait(o->stream));
    }
    /* The two activations: inputs in place, the output in its own buffer. */
    int in_arg, out_arg;
    const float *in;
    const dnnl_memory_desc_t *out_md;
    if (pass == BENCH_FWD)
        in_arg = DNNL_ARG_SRC, in = x, out_arg = DNNL_ARG_DST, out_md = &dst_md;
    else if (pass == BENCH_BWD_DATA)
        in_arg = DNNL_ARG_DIFF_DST, in = gy, out_arg = DNNL_ARG_DIFF_SRC, out_md = &src_md;
    else
        in_arg = DNNL_ARG_SRC, in = x, out_arg = DNNL_ARG_DIFF_DST, out_md = &dst_md;
    TRY(dnnl_memory_create(&a, in_arg == DNNL_ARG_DIFF_DST ? &dst_md : &src_md, o->eng,
                           (void *)in));
    o->mem[o->nargs] = a;
    o->args[o->nargs++] = (dnnl_exec_arg_t){in_arg, a};
    if (pass == BENCH_BWD_WEIGHTS) {
        TRY(dnnl_memory_create(&b, &dst_md, o->eng, (void *)gy)); /* second input */
    } else {
        void *obuf = alloc_for(out_md, o, 2);
        if (!obuf) {
            snprintf(err, errlen, "oneDNN: out of memory for the output");
            goto fail;
        }
        TRY(dnnl_memory_create(&b, out_md, o->eng, obuf));
    }
    o->mem[o->nargs] = b;
    o->args[o->nargs++] = (dnnl_exec_arg_t){out_arg, b};

    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(wsrc);
    dnnl_primitive_attr_destroy(attr);
    *out = o;
    return 0;
fail:
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(wsrc);
    dnnl_primitive_attr_destroy(attr);
    bench_onednn_free(o);
    return -1;
}

int bench_onednn_run(bench_onednn *o)
{
    omp_set_num_threads(o->threads);
    if (dnnl_primitive_execute(o->prim, o->stream, o->nargs, o->args) != dnnl_success) return -1;
    return dnnl_stream_wait(o->stream) == dnnl_success ? 0 : -1;
}

const char *bench_onednn_impl(const bench_onednn *o) { return o->impl ? o->impl : "?"; }

void bench_onednn_free(bench_onednn *o)
{
    if (!o) return;
    for (int i = 0; i < o->nargs; i++) dnnl_memory_destroy(o->mem[i]);
    dnnl_primitive_destroy(o->prim);
    dnnl_primitive_desc_destroy(o->pd);
    dnnl_primitive_desc_destroy(o->hint);
    dnnl_stream_destroy(o->stream);
    dnnl_engine_destroy(o->eng);
    for (int i = 0; i < 4; i++) cn_free(o->owned[i]);
    free(o);
}

const char *bench_onednn_version(void)
{
    static char buf[32];
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, sizeof buf, "%d.%d.%d", v->major, v->minor, v->patch);
    return buf;
}
