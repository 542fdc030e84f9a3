/* convnet pool2d: max or average pooling on .npy files, and optionally the
 * gradient with respect to the input given gy = dL/dy. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *const CMD = "pool2d";

static const char usage[] =
    "usage: convnet pool2d --type max|avg --input X.npy --kernel K[,K] --output Y.npy\n"
    "                      [--stride S[,S]] [--padding P[,P]] [--dilation D[,D]]\n"
    "                      [--ceil-mode] [--no-count-include-pad]\n"
    "                      [--grad-output GY.npy --grad-input GX.npy]\n"
    "\n"
    "2-D max or average pooling in NHWC layout, as PyTorch's max_pool2d/avg_pool2d.\n"
    "\n"
    "Arrays (float32 .npy, C order; float64/int inputs are converted):\n"
    "  X   [N, H, W, C]      input\n"
    "  Y   [N, OH, OW, C]    output, OH = (H + 2*P - D*(K-1) - 1) / S + 1, rounded\n"
    "                        down (up with --ceil-mode)\n"
    "\n"
    "Options (two comma-separated numbers are height,width; one number sets both;\n"
    "--opt=value works too, and a repeated option replaces the earlier one):\n"
    "  --type max|avg          pooling kind (required)\n"
    "  --input X.npy           input (required)\n"
    "  --kernel K[,K]          window size, >= 1 (required)\n"
    "  --output Y.npy          where to write the output (required)\n"
    "  --stride S[,S]          step between windows, >= 1 (default: the kernel size)\n"
    "  --padding P[,P]         border on each side, at most half the kernel (default 0);\n"
    "                          max pads with -inf, avg with zeros\n"
    "  --dilation D[,D]        spacing between window taps, >= 1, max only (default 1)\n"
    "  --ceil-mode             round the output size up; the last window must still\n"
    "                          start inside the input or the top/left padding\n"
    "  --no-count-include-pad  avg: divide by the pixels inside the input only\n"
    "                          (default: divide by the whole window, padding included)\n"
    "  --grad-output GY.npy    dL/dY, shaped exactly like Y; needs --grad-input\n"
    "  --grad-input GX.npy     write dL/dX [N, H, W, C]; needs --grad-output\n"
    "  --max-memory BYTES      refuse, before allocating, a run whose arrays would\n"
    "                          exceed BYTES (K, M, G, T suffixes: 512M, 8G;\n"
    "                          default: half the physical memory)\n"
    "  -h, --help              show this help\n"
    "\n"
    "Outputs are written atomically. Exit status: 0 ok, 1 error, 2 usage error.\n"
    "\n"
    "Example: 3x3 max pooling with stride 2 and padding 1, as in ResNet's stem:\n"
    "  convnet pool2d --type max --input x.npy --kernel 3 --stride 2 --padding 1 \\\n"
    "                 --output y.npy\n";

typedef struct pool2d_args {
    const char *input, *output, *grad_output, *grad_input;
    int type; /* cn_pool_type, -1 until given */
    int have_kernel, have_stride;
    cn_pool2d_params p;
    cli_mem mem;
} pool2d_args;

/* "N" or "N,N" into (*h, *w), each >= lo; 0 or the exit status. */
static int parse_pair_min(const char *opt, const char *v, int lo, int *h, int *w)
{
    int n[2];
    int k = cli_opt_ints(CMD, opt, v, n, 2);
    if (k < 0) return 2;
    if (k == 1) n[1] = n[0];
    if (n[0] < lo || n[1] < lo) return cli_usage(CMD, "%s must be >= %d, got '%s'", opt, lo, v);
    *h = n[0];
    *w = n[1];
    return 0;
}

static int parse_args(int argc, char **argv, pool2d_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r, e = 0;
        if ((r = cli_opt(CMD, argc, argv, &i, "--input", &v)) > 0) {
            a->input = v;
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--output", &v)) > 0) {
            a->output = v;
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--grad-output", &v)) > 0) {
            a->grad_output = v;
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--grad-input", &v)) > 0) {
            a->grad_input = v;
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--type", &v)) > 0) {
            if (!strcmp(v, "max"))
                a->type = CN_POOL_MAX;
            else if (!strcmp(v, "avg"))
                a->type = CN_POOL_AVG;
            else
                return cli_usage(CMD, "--type must be max or avg, got '%s'", v);
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--kernel", &v)) > 0) {
            e = parse_pair_min("--kernel", v, 1, &a->p.kernel_h, &a->p.kernel_w);
            a->have_kernel = 1;
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--stride", &v)) > 0) {
            /* The library reads stride 0 as "the kernel size"; on the command
             * line that default is spelled by leaving --stride out. */
            e = parse_pair_min("--stride", v, 1, &a->p.stride_h, &a->p.stride_w);
            a->have_stride = 1;
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--padding", &v)) > 0) {
            e = parse_pair_min("--padding", v, 0, &a->p.pad_h, &a->p.pad_w);
        } else if (!r && (r = cli_opt(CMD, argc, argv, &i, "--dilation", &v)) > 0) {
            e = parse_pair_min("--dilation", v, 1, &a->p.dil_h, &a->p.dil_w);
        } else if (!r && (r = cli_mem_opt(CMD, argc, argv, &i, &a->mem)) > 0) {
        } else if (!r && (r = cli_flag(CMD, argv, i, "--ceil-mode")) > 0) {
            a->p.ceil_mode = 1;
        } else if (!r && (r = cli_flag(CMD, argv, i, "--no-count-include-pad")) > 0) {
            a->p.count_include_pad = 0;
        } else if (!r) {
            if (argv[i][0] == '-') return cli_usage(CMD, "unknown option '%s'", argv[i]);
            return cli_usage(CMD, "unexpected argument '%s'", argv[i]);
        }
        if (r < 0) return 2;
        if (e) return e;
    }
    if (a->type < 0) return cli_usage(CMD, "missing required option --type (max or avg)");
    if (!a->input) return cli_usage(CMD, "missing required option --input");
    if (!a->have_kernel) return cli_usage(CMD, "missing required option --kernel");
    if (!a->output) return cli_usage(CMD, "missing required option --output");
    if (!a->grad_output != !a->grad_input)
        return cli_usage(CMD, "--grad-output and --grad-input go together");
    if (!a->have_stride) {
        a->p.stride_h = a->p.kernel_h;
        a->p.stride_w = a->p.kernel_w;
    }
    if (a->type == CN_POOL_AVG && (a->p.dil_h != 1 || a->p.dil_w != 1))
        return cli_usage(CMD, "--dilation applies to max pooling only");
    return 0;
}

int cmd_pool2d(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    pool2d_args a = {0};
    a.type = -1;
    a.p = cn_pool2d_params_default(1, 1);
    cli_mem_init(&a.mem);
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;

    cn_tensor *x = NULL, *gy = NULL, *y = NULL, *gx = NULL;
    int64_t *idx = NULL;
    cn_pool2d_desc d;
    int64_t yshape[4];
    cn_status s;
    rc = 1;
    if (cli_read_npy(CMD, "--input", a.input, &x) ||
        cli_check_rank(CMD, "--input", x, 4, "[N,H,W,C]"))
        goto done;
    if ((s = cn_pool2d_setup(&d, &a.p, (cn_pool_type)a.type, x->shape)) != CN_OK) {
        cli_fail_status(CMD, s);
        goto done;
    }
    yshape[0] = d.MB;
    yshape[1] = d.OH;
    yshape[2] = d.OW;
    yshape[3] = d.C;
    if (a.grad_output) {
        if (cli_read_grad_output(CMD, a.grad_output, yshape, &gy)) goto done;
    }
    /* The peak: input, output, the gradients and max pooling's indices,
     * and the copy that writing the larger output makes. */
    cli_mem_add_tensor(&a.mem, "input", x);
    cli_mem_add_tensor(&a.mem, "grad-output", gy);
    cli_mem_add_shape(&a.mem, "output", 4, yshape, sizeof(float));
    if (gy) cli_mem_add_shape(&a.mem, "grad-input", 4, x->shape, sizeof(float));
    if (gy && d.type == CN_POOL_MAX) cli_mem_add_shape(&a.mem, "argmax indices", 4, yshape, 8);
    cli_mem_add_shape(&a.mem, "copy of the output", 4, gy && x->size > gy->size ? x->shape : yshape,
                      sizeof(float));
    if (cli_mem_check(CMD, &a.mem)) goto done;
    if ((s = cn_tensor_new(&y, 4, yshape)) != CN_OK ||
        (gy && (s = cn_tensor_new(&gx, 4, x->shape)) != CN_OK)) {
        cli_fail_status(CMD, s);
        goto done;
    }
    /* Max backward scatters to the argmax positions, so it needs the forward's indices. */
    if (gy && d.type == CN_POOL_MAX && y->size) {
        size_t bytes;
        if ((s = cn_size_mul(y->size, sizeof *idx, &bytes, "pool2d indices")) != CN_OK) {
            cli_fail_status(CMD, s);
            goto done;
        }
        idx = cn_alloc(bytes);
        if (!idx) {
            cli_fail(CMD, "out of memory for %zu argmax indices", y->size);
            goto done;
        }
    }
    if (d.type == CN_POOL_MAX) {
        if ((s = cn_max_pool2d_fwd(NULL, &d, x->data, y->data, idx)) ||
            (gx && (s = cn_max_pool2d_bwd(NULL, &d, idx, gy->data, gx->data)))) {
            cli_fail_status(CMD, s);
            goto done;
        }
    } else if ((s = cn_avg_pool2d_fwd(NULL, &d, x->data, y->data)) ||
               (gx && (s = cn_avg_pool2d_bwd(NULL, &d, gy->data, gx->data)))) {
        cli_fail_status(CMD, s);
        goto done;
    }
    if (cli_write_npy(CMD, "--output", a.output, y) ||
        (gx && cli_write_npy(CMD, "--grad-input", a.grad_input, gx)))
        goto done;
    rc = 0;
done:
    cn_free(idx);
    cn_tensor_free(x);
    cn_tensor_free(gy);
    cn_tensor_free(y);
    cn_tensor_free(gx);
    return rc;
}
