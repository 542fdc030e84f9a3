/* convnet plot: loss and accuracy curves from `convnet train --json` output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report.h"
#include "viz_draw.h"

static const char *const CMD = "plot";

static const char usage[] =
    "usage: convnet plot LOG.jsonl -o OUT.png|OUT.svg [--title TEXT]\n"
    "\n"
    "Draws the loss (left) and accuracy (right) of the training and test sets\n"
    "against the epoch from the JSON lines `convnet train --json` prints (keys\n"
    "epoch, train_loss, train_accuracy, test_loss, test_accuracy); other lines are\n"
    "skipped, so a log with progress messages mixed in works too. OUT ending in .svg\n"
    "gives SVG, anything else PNG (1040x440 pixels).\n"
    "\n"
    "Prints where the data lands: for each panel the plot area's pixel edges\n"
    "(left to right, bottom to top) and the data range they span.\n"
    "\n"
    "Options:\n"
    "  -o, --output OUT  picture to write (required)\n"
    "  --title TEXT      title (default: the log's name and best test accuracy)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Example: convnet train --json > log.jsonl && convnet plot log.jsonl -o curves.png\n";

int cmd_plot(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *log = NULL, *out = NULL, *title = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_opt(CMD, argc, argv, &i, "--output", &v)) || (r = cli_opt(CMD, argc, argv, &i, "-o", &v))) {
            if (r < 0) return 2;
            out = v;
        } else if ((r = cli_opt(CMD, argc, argv, &i, "--title", &v))) {
            if (r < 0) return 2;
            title = v;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage(CMD, "unknown option '%s'", argv[i]);
        } else if (log) {
            return cli_usage(CMD, "one log at a time ('%s' and '%s')", log, argv[i]);
        } else {
            log = argv[i];
        }
    }
    if (!log) return cli_usage(CMD, "no log given");
    if (!out) return cli_usage(CMD, "-o OUT is required");
    void *text;
    size_t len;
    cn_status s = cn_file_read_all(log, (size_t)256 << 20, &text, &len);
    if (s) return cli_fail_status(CMD, s);
    vd_epoch *h;
    int n;
    int bad = report_parse_log(text, len, &h, &n);
    free(text);
    if (bad) return cli_fail(CMD, "out of memory");
    if (!n) {
        free(h);
        return cli_fail(CMD, "%s: no JSON line with an \"epoch\" (is it `convnet train --json` output?)", log);
    }
    char deflt[400];
    if (!title) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (isfinite(h[i].test_accuracy) && (best < 0 || h[i].test_accuracy > h[best].test_accuracy)) best = i;
        const char *base = strrchr(log, '/');
        base = base ? base + 1 : log;
        if (best >= 0)
            snprintf(deflt, sizeof deflt, "%s: best test accuracy %.2f%% at epoch %g", base,
                     100 * h[best].test_accuracy, h[best].epoch);
        else
            snprintf(deflt, sizeof deflt, "%s", base);
        title = deflt;
    }
    vd_bytes png = {0};
    vd_axes ax[2];
    const char *err = vd_figure_curves(h, n, title, vd_format_of(out), &png, ax);
    free(h);
    if (!err) err = vd_bytes_write(out, &png);
    vd_bytes_free(&png);
    if (err) return cli_fail(CMD, "%s: %s", out, err);
    printf("%s: %d epochs\n", out, n);
    const char *names[2] = {"loss", "accuracy"};
    for (int k = 0; k < 2; k++)
        printf("axes %s: pixels x %g to %g, y %g to %g; data epoch %g to %g, %s %g to %g\n", names[k], ax[k].px0,
               ax[k].px1, ax[k].py0, ax[k].py1, ax[k].xmin, ax[k].xmax, names[k], ax[k].ymin, ax[k].ymax);
    return 0;
}
