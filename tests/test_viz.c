/* Pictures: `viz filters|activations|saliency`, `plot`, `eval --confusion`
 * and `train --report` each draw an image of the documented size that is
 * not blank; the plot puts its points where the data says; the saliency of
 * a learned synthetic task lights up the evidence; the HTML report is
 * self-contained and headless Chromium renders it without console errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/* ---- a small synthetic IDX dataset and a model trained on it --------------- */




static const char *data_dir(void) { return tl_squares_dataset(400, 100); }

/* lenet trained for 4 epochs with --report (made once; "" if it failed). */
static const char *model(void)
{
    static char path[512];
    static int tried;
    if (!tried) {
        tried = 1;
        const tl_cli_result *r = tl_cli("train", "--data", data_dir(), "--epochs", "4", "--schedule-epochs", "4",
                                        "--batch-size", "16", "--seed", "5", "--report", tl_scratch("report"),
                                        "--save", tl_scratch("model.safetensors"), "--json", NULL);
        if (r->status == 0) snprintf(path, sizeof path, "%s", tl_scratch("model.safetensors"));
        else printf("  training the model failed (%d): %s\n", r->status, r->err);
    }
    return path;
}

/* ---- reading pictures back ------------------------------------------------- */

/* The RGB of pixel (x, y) of an image [H, W, C] (gray repeated). */
static void pixel(const cn_tensor *img, int x, int y, double rgb[3])
{
    const int64_t C = img->shape[2];
    const float *p = img->data + ((int64_t)y * img->shape[1] + x) * C;
    for (int k = 0; k < 3; k++) rgb[k] = p[C >= 3 ? k : 0];
}

static int distinct_colors(const cn_tensor *img)
{
    /* enough to tell a drawing from a flat fill: count up to 64 colours */
    double seen[64][3];
    int n = 0;
    for (int64_t y = 0; y < img->shape[0] && n < 64; y++)
        for (int64_t x = 0; x < img->shape[1] && n < 64; x++) {
            double c[3];
            pixel(img, (int)x, (int)y, c);
            int k = 0;
            while (k < n && (seen[k][0] != c[0] || seen[k][1] != c[1] || seen[k][2] != c[2])) k++;
            if (k == n) memcpy(seen[n++], c, sizeof c);
        }
    return n;
}

/* Reads a PNG and checks its size and that it is a drawing, not one colour. */
#define CHECK_PICTURE(img, path, W, H)                                                              \
    do {                                                                                            \
        CHECK_OK(cn_image_read(path, 0, &img));                                                     \
        CHECK(img->shape[1] == (W) && img->shape[0] == (H), "%s is %lldx%lld, want %dx%d", path,    \
              (long long)img->shape[1], (long long)img->shape[0], (int)(W), (int)(H));              \
        CHECK(distinct_colors(img) >= 8, "%s has %d colours: blank", path, distinct_colors(img));   \
    } while (0)

/* A whole file as a NUL-terminated string (free it), or NULL. */
static char *read_text(const char *path)
{
    void *data;
    size_t len;
    if (cn_file_read_all(path, (size_t)1 << 26, &data, &len)) return NULL;
    char *s = malloc(len + 1);
    if (s) memcpy(s, data, len), s[len] = '\0';
    free(data);
    return s;
}

static int near(const double *rgb, unsigned hex, double tol)
{
    return fabs(rgb[0] - (hex >> 16 & 255)) <= tol && fabs(rgb[1] - (hex >> 8 & 255)) <= tol &&
           fabs(rgb[2] - (hex & 255)) <= tol;
}

/* ---- the tests ------------------------------------------------------------- */

static void filters_draw_the_first_convolution_as_a_grid(void)
{
    const char *m = model();
    CHECK(*m, "no model");
    char *out = tl_scratch("filters.png");
    const tl_cli_result *r = tl_cli("viz", "filters", "--load", m, "-o", out, NULL);
    CHECK(r->status == 0, "viz filters failed: %s", r->err);
    cn_tensor *img;
    /* lenet's conv1 has 32 filters: 8 columns of 80 px, 4 rows of 92 px */
    CHECK_PICTURE(img, out, 40 + 8 * 80, 76 + 4 * 92);
    /* every filter is scaled to its own range, so each cell spans black to white */
    for (int f = 0; f < 32; f++) {
        double lo = 255, hi = 0, c[3];
        int x0 = 20 + (f % 8) * 80 + 8, y0 = 76 + (f / 8) * 92;
        for (int y = y0 + 2; y < y0 + 62; y++)
            for (int x = x0 + 2; x < x0 + 62; x++) pixel(img, x, y, c), lo = fmin(lo, c[0]), hi = fmax(hi, c[0]);
        CHECK(lo < 5 && hi > 250, "filter %d spans %g..%g, not black..white", f, lo, hi);
    }
    cn_tensor_free(img);
}

static void activations_show_one_panel_per_convolution(void)
{
    const char *m = model();
    CHECK(*m, "no model");
    char *out = tl_scratch("activations.png");
    const tl_cli_result *r = tl_cli("viz", "activations", "--load", m, "--data", data_dir(), "--index", "3", "-o",
                                    out, NULL);
    CHECK(r->status == 0, "viz activations failed: %s", r->err);
    cn_tensor *img;
    /* conv1: 32 maps (2 rows of 16), conv2: 64 maps (4 rows) */
    CHECK_PICTURE(img, out, 1000, 190 + 10 + (40 + 2 * 60) + (40 + 4 * 60));
    cn_tensor_free(img);
}

static void saliency_lights_up_the_evidence(void)
{
    const char *m = model();
    CHECK(*m, "no model");
    /* an image of class 7: its square at rows 15..20, columns 11..16 */
    char *png = tl_scratch("class7.png"), *out = tl_scratch("saliency.png");
    int64_t s[3] = {28, 28, 1};
    cn_tensor *in;
    CHECK_OK(cn_tensor_new(&in, 3, s));
    for (int y = 15; y < 21; y++)
        for (int x = 11; x < 17; x++) in->data[y * 28 + x] = 230;
    CHECK_OK(cn_image_write_png(png, in));
    cn_tensor_free(in);
    const tl_cli_result *r = tl_cli("viz", "saliency", "--load", m, "--image", png, "--invert", "no", "-o", out, NULL);
    CHECK(r->status == 0, "viz saliency failed: %s", r->err);
    cn_tensor *img;
    CHECK_PICTURE(img, out, 768, 330);
    /* the heat map panel: 8 px per input pixel from (272, 66); brighter = larger gradient */
    double inside = 0, outside = 0, c[3];
    int n_in = 0, n_out = 0;
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            pixel(img, 272 + x * 8 + 4, 66 + y * 8 + 4, c);
            double v = c[0] + c[1] + c[2];
            int in_box = y >= 13 && y < 23 && x >= 9 && x < 19; /* the square and its rim */
            if (in_box) inside += v, n_in++;
            else outside += v, n_out++;
        }
    inside /= n_in, outside /= n_out;
    CHECK(inside > 2 * outside, "saliency around the square %g vs elsewhere %g", inside, outside);
    cn_tensor_free(img);
}

static void plot_puts_each_point_where_the_data_says(void)
{
    char *log = tl_scratch("log.jsonl"), *out = tl_scratch("curves.png");
    const char text[] =
        "model lenet: 50378 parameters\n"
        "{\"epoch\": 1, \"train_loss\": 2.0, \"train_accuracy\": 0.6, \"test_loss\": 1.6, \"test_accuracy\": 0.7, "
        "\"seconds\": 1}\n"
        "not json\n"
        "{\"epoch\": 2, \"train_loss\": 1.0, \"train_accuracy\": 0.8, \"test_loss\": 0.5, \"test_accuracy\": 0.9, "
        "\"seconds\": 1}\n";
    CHECK_OK(cn_file_write_atomic(log, text, sizeof text - 1));
    const tl_cli_result *r = tl_cli("plot", log, "-o", out, NULL);
    CHECK(r->status == 0, "plot failed: %s", r->err);
    cn_tensor *img;
    CHECK_PICTURE(img, out, 1040, 440);
    /* the mapping the plot reports */
    double ax[2][8];
    const char *names[2] = {"loss", "accuracy"};
    for (int k = 0; k < 2; k++) {
        char key[32], fmt[160];
        snprintf(key, sizeof key, "axes %s: ", names[k]);
        const char *at = strstr(r->out, key);
        CHECK(at, "no mapping for %s in: %s", names[k], r->out);
        snprintf(fmt, sizeof fmt, "axes %s: pixels x %%lf to %%lf, y %%lf to %%lf; data epoch %%lf to %%lf, %s %%lf to %%lf",
                 names[k], names[k]);
        CHECK(sscanf(at, fmt, &ax[k][0], &ax[k][1], &ax[k][2], &ax[k][3], &ax[k][4], &ax[k][5], &ax[k][6], &ax[k][7]) == 8,
              "cannot parse: %s", at);
        /* fixed margins, as documented */
        CHECK(ax[k][0] == (k ? 580 : 80) && ax[k][1] == (k ? 970 : 470) && ax[k][2] == 370 && ax[k][3] == 70,
              "%s panel at x %g..%g y %g..%g", names[k], ax[k][0], ax[k][1], ax[k][2], ax[k][3]);
        CHECK(ax[k][4] <= 0 && ax[k][5] >= 2, "epoch range %g..%g must hold 1 and 2", ax[k][4], ax[k][5]);
    }
    CHECK(ax[0][6] == 0 && ax[0][7] >= 2.0, "loss range %g..%g", ax[0][6], ax[0][7]);
    CHECK(ax[1][6] <= 0.6 && ax[1][7] == 1.0, "accuracy range %g..%g", ax[1][6], ax[1][7]);
    const struct {
        int panel;
        double epoch, value;
        unsigned color;
    } points[] = {{0, 1, 2.0, 0x1f77b4}, {0, 2, 1.0, 0x1f77b4}, {0, 1, 1.6, 0xff7f0e}, {0, 2, 0.5, 0xff7f0e},
                  {1, 1, 0.6, 0x1f77b4}, {1, 2, 0.8, 0x1f77b4}, {1, 1, 0.7, 0xff7f0e}, {1, 2, 0.9, 0xff7f0e}};
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        const double *a = ax[points[i].panel];
        double px = a[0] + (points[i].epoch - a[4]) / (a[5] - a[4]) * (a[1] - a[0]);
        double py = a[2] - (points[i].value - a[6]) / (a[7] - a[6]) * (a[2] - a[3]);
        double c[3];
        pixel(img, (int)floor(px), (int)floor(py), c);
        CHECK(near(c, points[i].color, 40), "point %zu (epoch %g, %g) at (%.1f, %.1f) is %g,%g,%g, want #%06x", i,
              points[i].epoch, points[i].value, px, py, c[0], c[1], c[2], points[i].color);
    }
    /* and nothing is drawn where there is no data: the loss panel's lower right */
    double c[3];
    pixel(img, 460, 360, c);
    CHECK(c[0] > 240 && c[1] > 240 && c[2] > 240, "plot area corner not background: %g,%g,%g", c[0], c[1], c[2]);
    cn_tensor_free(img);

    /* SVG by extension */
    char *svg = tl_scratch("curves.svg");
    r = tl_cli("plot", log, "-o", svg, NULL);
    CHECK(r->status == 0, "plot to SVG failed: %s", r->err);
    char *data = read_text(svg);
    CHECK(data, "cannot read %s", svg);
    int ok = strstr(data, "<svg") && strstr(data, "width=\"1040");
    free(data);
    CHECK(ok, "%s is not a 1040 px wide SVG", svg);
}

static void eval_writes_the_confusion_matrix_and_the_worst_mistakes(void)
{
    const char *m = model();
    CHECK(*m, "no model");
    char *out = tl_scratch("confusion.png");
    const tl_cli_result *r = tl_cli("eval", "--load", m, "--data", data_dir(), "--confusion", out, NULL);
    CHECK(r->status == 0, "eval --confusion failed: %s", r->err);
    cn_tensor *img;
    CHECK_PICTURE(img, out, 210 + 10 * 52, 190 + 10 * 52);
    /* rows are coloured by their share: on a learned task the diagonal is
     * dark blue and the rest pale */
    double diag = 0, off = 0, c[3];
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++) {
            pixel(img, 170 + j * 52 + 4, 90 + i * 52 + 4, c);
            if (i == j) diag += c[0] / 10;
            else off += c[0] / 90;
        }
    CHECK(diag < 120 && off > 200, "diagonal red %g, elsewhere %g: not a learned confusion matrix", diag, off);
    cn_tensor_free(img);
    CHECK_OK(cn_image_read(tl_scratch("confusion-misclassified.png"), 0, &img));
    CHECK(img->shape[1] == 1268 && (img->shape[0] - 70) % 168 == 0, "misclassified picture is %lldx%lld",
          (long long)img->shape[1], (long long)img->shape[0]);
    cn_tensor_free(img);
}

static int has_chromium(void) { return system("command -v chromium > /dev/null 2>&1") == 0; }

static void train_report_is_self_contained_and_renders(void)
{
    const char *m = model();
    CHECK(*m, "no model");
    char *html = tl_scratch("report/report.html");
    char *text = read_text(html);
    CHECK(text, "cannot read %s", html);
    int figures = 0;
    for (const char *p = text; (p = strstr(p, "src=\"data:image/png;base64,")); p++) figures++;
    int remote = strstr(text, "http://") || strstr(text, "https://") || strstr(text, "<script") ||
                 strstr(text, "src=\"/") || strstr(text, "src=\"file");
    int rows = 0;
    for (const char *p = text; (p = strstr(p, "<tr><td")); p++) rows++;
    int summary = strstr(text, "conv1") && strstr(text, "50378") && strstr(text, "batch size");
    free(text);
    CHECK(figures == 4, "%d inline figures, want curves, confusion, mistakes, filters", figures);
    CHECK(!remote, "the report refers to something outside itself");
    CHECK(summary, "hyper-parameters or model summary missing");
    CHECK(rows >= 4 + 2 + 8, "%d table rows: epochs, model layers expected", rows);

    /* a resumed run keeps the earlier epochs' history */
    char *part = tl_scratch("part.safetensors"), *dir = tl_scratch("report2");
    const tl_cli_result *r = tl_cli("train", "--data", data_dir(), "--epochs", "1", "--batch-size", "32",
                                    "--report", dir, "--save", part, NULL);
    CHECK(r->status == 0, "train failed: %s", r->err);
    r = tl_cli("train", "--data", data_dir(), "--epochs", "2", "--batch-size", "32", "--report", dir,
               "--resume", part, NULL);
    CHECK(r->status == 0, "resumed train failed: %s", r->err);
    r = tl_cli("plot", tl_scratch("report2/history.jsonl"), "-o", tl_scratch("report2/curves.png"), NULL);
    CHECK(r->status == 0 && strstr(r->out, ": 2 epochs"), "history after resuming: %s %s", r->out, r->err);

    if (!has_chromium()) {
        printf("  note: chromium not installed, the report's rendering is not checked (make test installs it)\n");
        return;
    }
    char cmd[4096], *shot = tl_scratch("report.png"), *log = tl_scratch("chromium.log");
    snprintf(cmd, sizeof cmd,
             "timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
             "--disable-background-networking --disable-component-update --disable-sync "
             "--user-data-dir='%s' --enable-logging=stderr --v=0 --screenshot='%s' --window-size=1200,2000 "
             "'file://%s' > '%s' 2>&1",
             tl_scratch("chromium-profile"), shot, html, log);
    int rc = system(cmd);
    CHECK(rc == 0, "chromium exited with %d: see %s", rc, log);
    cn_tensor *img;
    CHECK_PICTURE(img, shot, 1200, 2000);
    int64_t dark = 0;
    for (int64_t i = 0; i < img->shape[0] * img->shape[1]; i++) dark += img->data[i * img->shape[2]] < 128;
    cn_tensor_free(img);
    CHECK(dark > 20000, "only %lld dark pixels in the screenshot", (long long)dark);
    /* the page has no script, so any console line (Chromium logs them as
     * INFO:CONSOLE or ERROR:CONSOLE) means something went wrong */
    snprintf(cmd, sizeof cmd, "grep -E 'Uncaught|:CONSOLE' '%s'", log);
    CHECK(system(cmd) != 0, "console errors while rendering the report (above; log %s)", log);
}

static void bad_input_gets_one_error_line(void)
{
    char *nojson = tl_scratch("nojson.txt");
    CHECK_OK(cn_file_write_atomic(nojson, "epoch 1 loss 2\n", 15));
    const char *m = model();
    const char *cases[][10] = {
        {"viz", NULL},
        {"viz", "colours", "--load", "x", "-o", "y.png", NULL},
        {"viz", "filters", "-o", "y.png", NULL},
        {"viz", "filters", "--load", "/nonexistent.safetensors", "-o", "y.png", NULL},
        {"viz", "saliency", "--load", m, "-o", "y.png", NULL},
        {"viz", "activations", "--load", m, "--image", "/nonexistent.png", "-o", "y.png", NULL},
        {"viz", "filters", "--load", m, "-o", "/nonexistent/dir/y.png", NULL},
        {"plot", "/nonexistent.jsonl", "-o", "y.png", NULL},
        {"plot", nojson, "-o", "y.png", NULL},
        {"plot", nojson, NULL},
        {"eval", "--load", m, "--data", data_dir(), "--confusion", "/nonexistent/dir/c.png", NULL},
        {"train", "--data", data_dir(), "--epochs", "1", "--report", "/nonexistent/dir/rep", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const tl_cli_result *r = tl_cli_argv(cases[i]);
        CHECK(r->status != 0 && !r->crashed, "case %zu (%s %s): exit %d", i, cases[i][0], cases[i][1], r->status);
        CHECK(r->err_lines == 1, "case %zu: %d stderr lines: %s", i, r->err_lines, r->err);
    }
}

int main(void)
{
    TL_RUN(filters_draw_the_first_convolution_as_a_grid);
    TL_RUN(activations_show_one_panel_per_convolution);
    TL_RUN(saliency_lights_up_the_evidence);
    TL_RUN(plot_puts_each_point_where_the_data_says);
    TL_RUN(eval_writes_the_confusion_matrix_and_the_worst_mistakes);
    TL_RUN(train_report_is_self_contained_and_renders);
    TL_RUN(bad_input_gets_one_error_line);
    return tl_summary();
}
