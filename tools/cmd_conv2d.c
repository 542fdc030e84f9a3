/* convnet conv2d: y = conv2d(x, w) + b on .npy files, and optionally the
 * gradients of a loss L with respect to x, w and b given gy = dL/dy. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *const CMD = "conv2d";

static const char usage[] =
    "usage: convnet conv2d --input X.npy --weight W.npy [--bias B.npy] --output Y.npy\n"
    "                      [--stride S[,S]] [--padding P[,P] | T,B,L,R | same | valid]\n"
    "                      [--dilation D[,D]] [--groups G] [--padding-mode MODE]\n"
    "                      [--grad-output GY.npy [--grad-input GX.npy] [--grad-weight GW.npy]\n"
    "                       [--grad-bias GB.npy]]\n"
    "\n"
    "2-D convolution (cross-correlation, as PyTorch's conv2d) in NHWC layout.\n"
    "\n"
    "Arrays (float32 .npy, C order; float64/int inputs are converted):\n"
    "  X   [N, H, W, C_in]          input\n"
    "  W   [KH, KW, C_in/G, C_out]  weight (PyTorch's weight.permute(2,3,1,0))\n"
    "  B   [C_out]                  bias\n"
    "  Y   [N, OH, OW, C_out]       output, OH = (H + PT + PB - D*(KH-1) - 1) / S + 1\n"
    "\n"
    "Options (two comma-separated numbers are height,width; one number sets both;\n"
    "--opt=value works too, and a repeated option replaces the earlier one):\n"
    "  --input X.npy         input (required)\n"
    "  --weight W.npy        filters (required)\n"
    "  --bias B.npy          bias added to every output pixel (default: none)\n"
    "  --output Y.npy        where to write the output (required)\n"
    "  --stride S[,S]        step between windows, >= 1 (default 1)\n"
    "  --padding P           border added on each side (default 0): P or PH,PW;\n"
    "                        T,B,L,R for top,bottom,left,right; 'same' for\n"
    "                        OH = ceil(H/S) with the odd pixel at the bottom/right\n"
    "                        (TensorFlow's rule, any stride); 'valid' for 0\n"
    "  --dilation D[,D]      spacing between filter taps, >= 1 (default 1)\n"
    "  --groups G            channel groups, dividing C_in and C_out (default 1;\n"
    "                        G = C_in is depthwise)\n"
    "  --padding-mode MODE   what the border holds (default zeros):\n"
    "                          zeros      0\n"
    "                          circular   wrap around         c d | a b c d | a b\n"
    "                          reflect    mirror, edge once   c b | a b c d | c b\n"
    "                          replicate  repeat the edge     a a | a b c d | d d\n"
    "                          symmetric  mirror, edge twice  b a | a b c d | d c\n"
    "                          mean       the image's per-channel mean\n"
    "  --grad-output GY.npy  dL/dY, shaped exactly like Y; needs at least one of:\n"
    "  --grad-input GX.npy   write dL/dX [N, H, W, C_in]\n"
    "  --grad-weight GW.npy  write dL/dW [KH, KW, C_in/G, C_out]\n"
    "  --grad-bias GB.npy    write dL/dB [C_out]\n"
    "  --max-memory BYTES    refuse, before allocating, a run whose arrays and\n"
    "                        workspace would exceed BYTES (K, M, G, T suffixes:\n"
    "                        512M, 8G; default: half the physical memory)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Outputs are written atomically. Exit status: 0 ok, 1 error, 2 usage error.\n"
    "\n"
    "Example: a 3x3 convolution keeping the size, with reflected borders:\n"
    "  convnet conv2d --input x.npy --weight w.npy --bias b.npy --padding 1 \\\n"
    "                 --padding-mode reflect --output y.npy\n";

typedef struct conv2d_args {
    const char *input, *weight, *bias, *output;
    const char *grad_output, *grad_input, *grad_weight, *grad_bias;
    cn_conv2d_params p;
    cli_mem mem;
} conv2d_args;

/* Returns 0, or the exit status after printing the problem. */
static int parse_padding(const char *v, cn_conv2d_params *p)
{
    p->pad_same = 0;
    if (!strcmp(v, "same")) {
        p->pad_same = 1;
        return 0;
    }
    if (!strcmp(v, "valid")) {
        p->pad_top = p->pad_bottom = p->pad_left = p->pad_right = 0;
        return 0;
    }
    int n[4];
    int k = cli_opt_ints(CMD, "--padding", v, n, 4);
    if (k < 0) return 2;
    if (k == 3)
        return cli_usage(CMD, "--padding takes P, PH,PW, T,B,L,R, 'same' or 'valid', got '%s'", v);
    if (k == 1) n[1] = n[0];
    if (k <= 2) {
        p->pad_top = p->pad_bottom = n[0];
        p->pad_left = p->pad_right = n[1];
    } else {
        p->pad_top = n[0];
        p->pad_bottom = n[1];
        p->pad_left = n[2];
        p->pad_right = n[3];
    }
    return 0;
}

/* "S" or "S,S", each >= 1 (a zero stride or dilation has no meaning). */
static int parse_positive_pair(const char *opt, const char *v, int *h, int *w)
{
    int n[2];
    int k = cli_opt_ints(CMD, opt, v, n, 2);
    if (k < 0) return 2;
    if (k == 1) n[1] = n[0];
    if (n[0] < 1 || n[1] < 1) return cli_usage(CMD, "%s must be >= 1, got '%s'", opt, v);
    *h = n[0];
    *w = n[1];
    return 0;
}

static int parse_args(int argc, char **argv, conv2d_args *a)
{
    struct {
        const char *name;
        const char **dst;
    } paths[] = {
        {"--input", &a->input},
        {"--weight", &a->weight},
        {"--bias", &a->bias},
        {"--output", &a->output},
        {"--grad-output", &a->grad_output},
        {"--grad-input", &a->grad_input},
        {"--grad-weight", &a->grad_weight},
        {"--grad-bias", &a->grad_bias},
    };
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r = 0;
        for (size_t k = 0; k < sizeof paths / sizeof paths[0] && !r; k++) {
            r = cli_opt(CMD, argc, argv, &i, paths[k].name, &v);
            if (r > 0) *paths[k].dst = v;
        }
        if (r < 0) return 2;
        if (r > 0) continue;
        if ((r = cli_mem_opt(CMD, argc, argv, &i, &a->mem))) {
            if (r < 0) return 2;
            continue;
        }
        int e = 0;
        if ((r = cli_opt(CMD, argc, argv, &i, "--stride", &v)) > 0) {
            e = parse_positive_pair("--stride", v, &a->p.stride_h, &a->p.stride_w);
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--dilation", &v)) > 0) {
            e = parse_positive_pair("--dilation", v, &a->p.dil_h, &a->p.dil_w);
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--padding", &v)) > 0) {
            e = parse_padding(v, &a->p);
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--groups", &v)) > 0) {
            if (cli_opt_ints(CMD, "--groups", v, &a->p.groups, 1) < 0) return 2;
            if (a->p.groups < 1) return cli_usage(CMD, "--groups must be >= 1, got '%s'", v);
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--padding-mode", &v)) > 0) {
            if (cn_pad_mode_parse(v, &a->p.pad_mode) != CN_OK)
                return cli_usage(CMD,
                                 "--padding-mode must be zeros, circular, reflect, replicate, "
                                 "symmetric or mean, got '%s'",
                                 v);
        } else if (!r) {
            if (argv[i][0] == '-')
                return cli_usage(CMD, "unknown option '%s'", argv[i]);
            return cli_usage(CMD, "unexpected argument '%s'", argv[i]);
        }
        if (r < 0) return 2;
        if (e) return e;
    }
    if (!a->input) return cli_usage(CMD, "missing required option --input");
    if (!a->weight) return cli_usage(CMD, "missing required option --weight");
    if (!a->output) return cli_usage(CMD, "missing required option --output");
    int wants = a->grad_input || a->grad_weight || a->grad_bias;
    if (wants && !a->grad_output)
        return cli_usage(CMD, "--grad-input, --grad-weight and --grad-bias need --grad-output");
    if (a->grad_output && !wants)
        return cli_usage(CMD, "--grad-output needs at least one of --grad-input, --grad-weight, "
                              "--grad-bias");
    return 0;
}

int cmd_conv2d(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    conv2d_args a = {0};
    a.p = cn_conv2d_params_default();
    cli_mem_init(&a.mem);
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;

    cn_tensor *x = NULL, *w = NULL, *b = NULL, *gy = NULL;
    cn_tensor *y = NULL, *gx = NULL, *gw = NULL, *gb = NULL;
    cn_conv2d_desc d;
    int64_t bshape[1], yshape[4];
    size_t ws, copy;
    cn_status s;
    char s1[160], s2[160];
    rc = 1;
    if (cli_read_npy(CMD, "--input", a.input, &x) ||
        cli_check_rank(CMD, "--input", x, 4, "[N,H,W,C_in]"))
        goto done;
    if (cli_read_npy(CMD, "--weight", a.weight, &w) ||
        cli_check_rank(CMD, "--weight", w, 4, "[KH,KW,C_in/G,C_out]"))
        goto done;

    if ((s = cn_conv2d_setup(&d, &a.p, x->shape, w->shape)) != CN_OK) {
        cli_fail_status(CMD, s);
        goto done;
    }
    bshape[0] = d.OC;
    yshape[0] = d.MB;
    yshape[1] = d.OH;
    yshape[2] = d.OW;
    yshape[3] = d.OC;
    if (a.bias) {
        if (cli_read_npy(CMD, "--bias", a.bias, &b) ||
            cli_check_rank(CMD, "--bias", b, 1, "[C_out]"))
            goto done;
        if (b->shape[0] != d.OC) {
            cli_fail(CMD, "--bias must be %s (C_out of --weight), got %s",
                     cn_shape_str(1, bshape, s1, sizeof s1),
                     cn_shape_str(b->ndim, b->shape, s2, sizeof s2));
            goto done;
        }
    }
    if (a.grad_output) {
        if (cli_read_grad_output(CMD, a.grad_output, yshape, &gy)) goto done;
    }

    /* Everything the run holds at its peak: the arrays read, the outputs,
     * and the larger of a pass's workspace and the copy that writing an
     * output makes. */
    cli_mem_add_tensor(&a.mem, "input", x);
    cli_mem_add_tensor(&a.mem, "weight", w);
    cli_mem_add_tensor(&a.mem, "bias", b);
    cli_mem_add_tensor(&a.mem, "grad-output", gy);
    cli_mem_add_shape(&a.mem, "output", 4, yshape, sizeof(float));
    if (a.grad_input) cli_mem_add_shape(&a.mem, "grad-input", 4, x->shape, sizeof(float));
    if (a.grad_weight) cli_mem_add_shape(&a.mem, "grad-weight", 4, w->shape, sizeof(float));
    if (a.grad_bias) cli_mem_add_shape(&a.mem, "grad-bias", 1, bshape, sizeof(float));
    if (cli_mem_check(CMD, &a.mem)) goto done;
    /* Counted within the limit already, so these products cannot overflow. */
    copy = (size_t)(d.MB * d.OH * d.OW * d.OC) * sizeof(float);
    if (a.grad_input && x->size * sizeof(float) > copy) copy = x->size * sizeof(float);
    if (a.grad_weight && w->size * sizeof(float) > copy) copy = w->size * sizeof(float);
    ws = cn_conv2d_workspace_size(&d);
    cli_mem_add(&a.mem, "workspace", ws > copy ? ws : copy);
    if (cli_mem_check(CMD, &a.mem)) goto done;

    if ((s = cn_tensor_new(&y, 4, yshape)) != CN_OK ||
        (a.grad_input && (s = cn_tensor_new(&gx, 4, x->shape)) != CN_OK) ||
        (a.grad_weight && (s = cn_tensor_new(&gw, 4, w->shape)) != CN_OK) ||
        (a.grad_bias && (s = cn_tensor_new(&gb, 1, bshape)) != CN_OK)) {
        cli_fail_status(CMD, s);
        goto done;
    }
    if ((s = cn_conv2d_fwd(NULL, &d, x->data, w->data, b ? b->data : NULL, y->data, NULL)) ||
        (gx && (s = cn_conv2d_bwd_data(NULL, &d, gy->data, w->data, gx->data, NULL))) ||
        ((gw || gb) && (s = cn_conv2d_bwd_weights(NULL, &d, x->data, gy->data,
                                                   gw ? gw->data : NULL, gb ? gb->data : NULL,
                                                   NULL)))) {
        cli_fail_status(CMD, s);
        goto done;
    }

    /* Written only after every pass succeeded, so a failure leaves no
     * half-updated set of outputs behind. */
    if (cli_write_npy(CMD, "--output", a.output, y) ||
        (gx && cli_write_npy(CMD, "--grad-input", a.grad_input, gx)) ||
        (gw && cli_write_npy(CMD, "--grad-weight", a.grad_weight, gw)) ||
        (gb && cli_write_npy(CMD, "--grad-bias", a.grad_bias, gb)))
        goto done;
    rc = 0;
done:
    cn_tensor_free(x);
    cn_tensor_free(w);
    cn_tensor_free(b);
    cn_tensor_free(gy);
    cn_tensor_free(y);
    cn_tensor_free(gx);
    cn_tensor_free(gw);
    cn_tensor_free(gb);
    return rc;
}
