/* convnet filter: one classic filter over an image, written back as PNG. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *const CMD = "filter";

static void usage(void)
{
    printf("usage: convnet filter FILTER [--gray] [--max-memory BYTES] IN OUT.png\n"
           "\n"
           "Runs a classic filter over every channel of IN (PNG, JPEG, BMP, TGA, ...) as\n"
           "a depthwise convolution with reflect padding, so OUT has IN's size. OUT is\n"
           "written as PNG with values clamped to 0..255 and rounded.\n"
           "\n"
           "FILTER, exactly one of:\n"
           "  --gaussian SIGMA   Gaussian blur, kernel side 2*ceil(3*SIGMA)+1\n"
           "  --box K            mean over K x K pixels (K odd)\n"
           "  --sobel-x          horizontal derivative: bright where intensity rises\n"
           "                     left to right (negative values clip to 0)\n"
           "  --sobel-y          vertical derivative: bright where it rises downwards\n"
           "  --sobel            gradient magnitude, scaled so the maximum is 255\n"
           "  --laplacian        [[0,1,0],[1,-4,1],[0,1,0]]\n"
           "  --sharpen          [[0,-1,0],[-1,5,-1],[0,-1,0]]\n"
           "  --kernel K.npy     your own [KH,KW] (or [KH,KW,1,1]) kernel with odd\n"
           "                     sides, applied as a cross-correlation\n"
           "\n"
           "options:\n"
           "  --gray             convert IN to one gray channel first\n"
           "  --max-memory BYTES refuse, before decoding, an image whose buffers would\n"
           "                     exceed BYTES (K, M, G, T suffixes: 512M, 8G; default:\n"
           "                     half the physical memory)\n"
           "  -h, --help         print this help\n"
           "\n"
           "example: convnet filter --gaussian 2 photo.jpg blurred.png\n");
}

/* Filters without a value, by option name. */
static const struct {
    const char *name;
    cn_filter_kind kind;
} flags[] = {
    {"--sobel-x", CN_FILTER_SOBEL_X}, {"--sobel-y", CN_FILTER_SOBEL_Y},
    {"--sobel", CN_FILTER_SOBEL},     {"--laplacian", CN_FILTER_LAPLACIAN},
    {"--sharpen", CN_FILTER_SHARPEN},
};

/* Records the chosen filter; a second, different one is a usage error. */
static int choose(const char **chosen, const char *opt)
{
    if (*chosen && strcmp(*chosen, opt) != 0)
        return cli_usage(CMD, "%s and %s: choose one filter", *chosen, opt);
    *chosen = opt;
    return 0;
}

/* What filtering the image at path holds at its peak, from its header,
 * before any pixel is decoded: the decoder's bytes (the file's channels,
 * and the gray conversion), the image, the result and, for --sobel, both
 * derivatives as floats, the reflect-padded copy the depthwise
 * convolution reads, the weights, and the PNG encoder's bytes. 0, or the
 * exit status after one line. */
static int check_memory(const cn_filter_spec *f, const char *path, int gray, cli_mem *mem)
{
    int64_t H, W, CF;
    cn_tensor *k;
    cn_status s = cn_image_info(path, 0, &H, &W, &CF);
    if (!s) s = cn_filter_kernel(f, &k);
    if (s) return cli_fail_status(CMD, s);
    const int64_t KH = k->shape[0], KW = k->shape[1], C = gray ? 1 : CF;
    cn_tensor_free(k);
    const int64_t M = f->kind == CN_FILTER_SOBEL ? 2 : 1, P = KH / 2, Q = KW / 2;
    const int64_t decoded[3] = {H, W, CF + (gray ? 1 : 0)}, img[3] = {H, W, C},
                  derivs[3] = {H, W, C * M}, padded[3] = {H + 2 * P, W + 2 * Q, C},
                  weights[4] = {KH, KW, 1, C * M}, png[3] = {H, W, 2 * C};
    cli_mem_add_shape(mem, "decoded bytes", 3, decoded, 1);
    cli_mem_add_shape(mem, "image", 3, img, sizeof(float));
    cli_mem_add_shape(mem, "result", 3, img, sizeof(float));
    if (M > 1) cli_mem_add_shape(mem, "derivatives", 3, derivs, sizeof(float));
    cli_mem_add_shape(mem, "padded image", 3, padded, sizeof(float));
    cli_mem_add_shape(mem, "weights", 4, weights, sizeof(float));
    cli_mem_add_shape(mem, "PNG bytes", 3, png, 1);
    return cli_mem_check(CMD, mem);
}

int cmd_filter(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage();
        return 0;
    }
    cn_filter_spec f = {CN_FILTER_GAUSSIAN, 0.0f, NULL};
    const char *chosen = NULL, *kernel_path = NULL, *pos[2];
    int gray = 0, npos = 0, only_pos = 0;
    cli_mem mem;
    cli_mem_init(&mem);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        int r;
        if (only_pos || a[0] != '-' || !a[1]) {
            if (npos == 2) return cli_usage(CMD, "unexpected argument '%s'", a);
            pos[npos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if ((r = cli_opt(CMD, argc, argv, &i, "--gaussian", &val)) != 0) {
            if (r < 0) return 2;
            if (choose(&chosen, "--gaussian")) return 2;
            if (cli_parse_float(val, &f.param))
                return cli_usage(CMD, "--gaussian expects a positive number, got '%s'", val);
            f.kind = CN_FILTER_GAUSSIAN;
            continue;
        }
        if ((r = cli_opt(CMD, argc, argv, &i, "--box", &val)) != 0) {
            int k;
            if (r < 0 || choose(&chosen, "--box") || cli_opt_ints(CMD, "--box", val, &k, 1) < 0)
                return 2;
            f.kind = CN_FILTER_BOX;
            f.param = (float)k;
            continue;
        }
        if ((r = cli_opt(CMD, argc, argv, &i, "--kernel", &val)) != 0) {
            if (r < 0 || choose(&chosen, "--kernel")) return 2;
            f.kind = CN_FILTER_KERNEL;
            kernel_path = val;
            continue;
        }
        if ((r = cli_mem_opt(CMD, argc, argv, &i, &mem)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        if ((r = cli_flag(CMD, argv, i, "--gray")) != 0) {
            if (r < 0) return 2;
            gray = 1;
            continue;
        }
        int matched = 0;
        for (size_t j = 0; j < sizeof flags / sizeof flags[0] && !matched; j++) {
            if ((r = cli_flag(CMD, argv, i, flags[j].name)) == 0) continue;
            if (r < 0 || choose(&chosen, flags[j].name)) return 2;
            f.kind = flags[j].kind;
            matched = 1;
        }
        if (!matched) return cli_usage(CMD, "unknown option '%s'", a);
    }
    if (!chosen)
        return cli_usage(CMD, "no filter given (--gaussian, --box, --sobel, --kernel, ...)");
    if (npos < 2) return cli_usage(CMD, "expected IN and OUT.png, got %d file name(s)", npos);

    cn_tensor *kernel = NULL, *img = NULL, *out = NULL;
    int rc = 0;
    if (kernel_path) {
        if (cli_read_npy(CMD, "--kernel", kernel_path, &kernel)) return 1;
        f.kernel = kernel;
    }
    if ((rc = check_memory(&f, pos[0], gray, &mem))) {
        cn_tensor_free(kernel);
        return rc;
    }
    cn_status s = cn_image_read(pos[0], gray, &img);
    if (!s) s = cn_image_filter(NULL, &f, img, &out);
    if (!s) s = cn_image_write_png(pos[1], out);
    if (s) rc = cli_fail_status(CMD, s);
    cn_tensor_free(kernel);
    cn_tensor_free(img);
    cn_tensor_free(out);
    return rc;
}
