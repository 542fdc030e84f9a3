/* The training report: one HTML file with everything inline, rewritten
 * atomically after every epoch so a browser (or a reload) never sees half a
 * page. */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

struct report {
    const char *cmd;
    char *dir;
    int n_params;
    char **keys, **vals;
    int epochs;
    vd_epoch *hist;
    int n_hist, cap_hist;
};

/* ---- the epoch log --------------------------------------------------------- */

/* The number after "key": on a line, or NAN. */
static double json_number(const char *line, const char *end, const char *key)
{
    char pat[40];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    size_t n = strlen(pat);
    for (const char *p = line; p + n <= end; p++) {
        if (memcmp(p, pat, n) != 0) continue;
        const char *q = p + n;
        while (q < end && (*q == ' ' || *q == '\t')) q++;
        if (q >= end || *q != ':') continue;
        q++;
        while (q < end && (*q == ' ' || *q == '\t')) q++;
        /* the text need not be NUL-terminated: parse a bounded copy */
        char num[64];
        size_t k = 0;
        while (q + k < end && k < sizeof num - 1 && q[k] != ',' && q[k] != '}') num[k] = q[k], k++;
        num[k] = '\0';
        char *stop;
        double v = strtod(num, &stop);
        return stop > num ? v : NAN;
    }
    return NAN;
}

static int push(vd_epoch **h, int *n, int *cap, const vd_epoch *e)
{
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 32;
        vd_epoch *p = realloc(*h, (size_t)c * sizeof *p);
        if (!p) return -1;
        *h = p, *cap = c;
    }
    (*h)[(*n)++] = *e;
    return 0;
}

int report_parse_log(const char *text, size_t len, vd_epoch **out, int *n)
{
    *out = NULL, *n = 0;
    int cap = 0;
    for (const char *line = text, *end; line < text + len; line = end + 1) {
        end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end) end = text + len;
        const char *p = line;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
        if (p >= end || *p != '{') continue;
        vd_epoch e = {json_number(p, end, "epoch"), json_number(p, end, "train_loss"),
                      json_number(p, end, "train_accuracy"), json_number(p, end, "test_loss"),
                      json_number(p, end, "test_accuracy"), json_number(p, end, "seconds")};
        if (!isfinite(e.epoch)) continue;
        if (push(out, n, &cap, &e)) {
            free(*out);
            *out = NULL, *n = 0;
            return -1;
        }
    }
    return 0;
}

/* ---- open / free ------------------------------------------------------------- */

void report_free(report *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_params; i++) free(r->keys[i]), free(r->vals[i]);
    free(r->keys);
    free(r->vals);
    free(r->hist);
    free(r->dir);
    free(r);
}

static char *path_in(const report *r, const char *name)
{
    size_t n = strlen(r->dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", r->dir, name);
    return p;
}

int report_open(report **out, const char *cmd, const char *dir, int n, const char *const *keys,
                const char *const *vals, int64_t start_epoch, int epochs)
{
    *out = NULL;
    if (mkdir(dir, 0777) && errno != EEXIST) return cli_fail(cmd, "--report: cannot create %s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) return cli_fail(cmd, "--report: %s is not a directory", dir);
    report *r = calloc(1, sizeof *r);
    if (!r) return cli_fail(cmd, "out of memory");
    r->cmd = cmd, r->epochs = epochs;
    r->dir = strdup(dir);
    r->keys = calloc((size_t)(n ? n : 1), sizeof *r->keys);
    r->vals = calloc((size_t)(n ? n : 1), sizeof *r->vals);
    if (!r->dir || !r->keys || !r->vals) return report_free(r), cli_fail(cmd, "out of memory");
    for (int i = 0; i < n; i++, r->n_params++)
        if (!(r->keys[i] = strdup(keys[i])) || !(r->vals[i] = strdup(vals[i])))
            return free(r->keys[i]), report_free(r), cli_fail(cmd, "out of memory");
    if (start_epoch > 0) {
        /* a resumed run: keep the curves of the epochs before it */
        char *p = path_in(r, "history.jsonl");
        void *text = NULL;
        size_t len = 0;
        vd_epoch *h = NULL;
        int nh = 0;
        if (p && cn_file_read_all(p, (size_t)64 << 20, &text, &len) == CN_OK &&
            report_parse_log(text, len, &h, &nh) == 0)
            for (int i = 0; i < nh; i++)
                if (h[i].epoch <= (double)start_epoch && push(&r->hist, &r->n_hist, &r->cap_hist, &h[i]))
                    break;
        free(h);
        free(text);
        free(p);
    }
    *out = r;
    return 0;
}

/* ---- HTML ---------------------------------------------------------------------- */

static int put(vd_bytes *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int put(vd_bytes *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n < sizeof small) return vd_bytes_append(b, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = vd_bytes_append(b, big, (size_t)n);
    free(big);
    return rc;
}

/* Text with & < > " escaped. */
static int put_esc(vd_bytes *b, const char *s)
{
    int rc = 0;
    for (; *s && !rc; s++) {
        const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '"' ? "&quot;" : NULL;
        rc = e ? vd_bytes_append(b, e, strlen(e)) : vd_bytes_append(b, s, 1);
    }
    return rc;
}

static int put_base64(vd_bytes *b, const unsigned char *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        q[0] = tab[v >> 18], q[1] = tab[(v >> 12) & 63];
        q[2] = (char)(i + 1 < n ? tab[(v >> 6) & 63] : '=');
        q[3] = (char)(i + 2 < n ? tab[v & 63] : '=');
        if (vd_bytes_append(b, q, 4)) return -1;
    }
    return 0;
}

/* A figure as an <img> with a data: URI, or a note saying why it is missing. */
static int put_figure(vd_bytes *b, const char *err, vd_bytes *png, const char *alt)
{
    int rc;
    if (err) {
        rc = put(b, "<p class=\"note\">(%s: ", alt) || put_esc(b, err) || put(b, ")</p>\n");
    } else {
        rc = put(b, "<img alt=\"%s\" src=\"data:image/png;base64,", alt) || put_base64(b, png->data, png->len) ||
             put(b, "\">\n");
    }
    vd_bytes_free(png);
    return rc;
}

static const char style[] =
    "body{font-family:'DejaVu Sans',sans-serif;margin:24px auto;max-width:1300px;padding:0 16px;color:#222;}"
    "h1{font-size:24px;margin-bottom:4px;}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd;}"
    ".status{color:#555;margin-top:0;}table{border-collapse:collapse;font-size:13px;}"
    "td,th{border:1px solid #ddd;padding:3px 10px;text-align:right;}th{background:#f4f4f4;}"
    "td.l,th.l{text-align:left;}img{max-width:100%;height:auto;display:block;margin:8px 0;}"
    ".note{color:#a00;}.grid{display:flex;flex-wrap:wrap;gap:32px;align-items:flex-start;}";

/* The model summary (cn_model_summary's columns) as a table. */
static int put_summary(vd_bytes *b, const cn_model *m)
{
    size_t len = (size_t)m->n_layers * 160 + 512;
    char *s = malloc(len);
    if (!s) return -1;
    cn_model_summary(m, s, len);
    int rc = put(b, "<table><tr><th class=\"l\">layer</th><th class=\"l\">kind</th><th class=\"l\">output</th>"
                    "<th>parameters</th></tr>\n");
    char *line = strchr(s, '\n'); /* skip the header line */
    for (line = line ? line + 1 : NULL; line && *line && !rc;) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        char t[4][64];
        int k = sscanf(line, "%63s %63s %63s %63s", t[0], t[1], t[2], t[3]);
        if (!strncmp(line, "total parameters:", 17))
            rc = put(b, "<tr><th class=\"l\" colspan=\"3\">total</th><th>%s</th></tr>\n", line + 18);
        else if (k == 4 || k == 3) {
            /* the input line has no kind */
            const char *kind = k == 4 ? t[1] : "", *shape = k == 4 ? t[2] : t[1], *params = k == 4 ? t[3] : t[2];
            rc = put(b, "<tr><td class=\"l\">") || put_esc(b, t[0]) || put(b, "</td><td class=\"l\">") ||
                 put_esc(b, kind) || put(b, "</td><td class=\"l\">") || put_esc(b, shape) ||
                 put(b, "</td><td>") || put_esc(b, params) || put(b, "</td></tr>\n");
        }
        line = end ? end + 1 : NULL;
    }
    free(s);
    return rc || put(b, "</table>\n");
}

static int put_history(vd_bytes *b, const report *r)
{
    int rc = put(b, "<table><tr><th>epoch</th><th>train loss</th><th>train accuracy</th><th>test loss</th>"
                    "<th>test accuracy</th><th>seconds</th></tr>\n");
    for (int i = 0; i < r->n_hist && !rc; i++) {
        const vd_epoch *e = &r->hist[i];
        rc = put(b, "<tr><td>%.0f</td><td>%.4f</td><td>%.2f%%</td><td>%.4f</td><td>%.2f%%</td><td>%.1f</td></tr>\n",
                 e->epoch, e->train_loss, 100 * e->train_accuracy, e->test_loss, 100 * e->test_accuracy, e->seconds);
    }
    return rc || put(b, "</table>\n");
}

static int build_html(vd_bytes *b, const report *r, const cn_model *m, const cn_dataset *test, float mean,
                      float std, const int32_t *pred, const float *probs)
{
    const vd_epoch *last = &r->hist[r->n_hist - 1];
    const int K = (int)m->out_shape[0];
    char when[64] = "";
    time_t now = time(NULL);
    struct tm tmv;
    if (localtime_r(&now, &tmv)) (void)strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tmv);
    int done = last->epoch >= r->epochs;
    int rc = put(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    /* while training runs, reload to follow it */
    if (!done) rc = rc || put(b, "<meta http-equiv=\"refresh\" content=\"30\">\n");
    rc = rc || put(b, "<title>convnet report: ") || put_esc(b, m->name) ||
         put(b, ", epoch %.0f of %d</title>\n<style>%s</style></head><body>\n", last->epoch, r->epochs, style);
    rc = rc || put(b, "<h1>convnet training report: ") || put_esc(b, m->name) || put(b, "</h1>\n") ||
         put(b, "<p class=\"status\">epoch %.0f of %d%s &middot; test accuracy %.2f%% &middot; test loss %.4f "
                "&middot; updated %s</p>\n",
             last->epoch, r->epochs, done ? " (finished)" : " (training; this page reloads every 30 s)",
             100 * last->test_accuracy, last->test_loss, when);

    char title[160];
    int best = 0;
    for (int i = 1; i < r->n_hist; i++)
        if (r->hist[i].test_accuracy > r->hist[best].test_accuracy) best = i;
    snprintf(title, sizeof title, "%s: best test accuracy %.2f%% at epoch %.0f", m->name,
             100 * r->hist[best].test_accuracy, r->hist[best].epoch);
    vd_bytes png = {0};
    rc = rc || put(b, "<h2>Loss and accuracy</h2>\n") ||
         put_figure(b, vd_figure_curves(r->hist, r->n_hist, title, VD_PNG, &png, NULL), &png, "training curves");
    rc = rc || put(b, "<h2>Epochs</h2>\n") || put_history(b, r);
    rc = rc || put(b, "<div class=\"grid\"><div><h2>Hyper-parameters</h2>\n<table>\n");
    for (int i = 0; i < r->n_params && !rc; i++)
        rc = put(b, "<tr><th class=\"l\">") || put_esc(b, r->keys[i]) || put(b, "</th><td class=\"l\">") ||
             put_esc(b, r->vals[i]) || put(b, "</td></tr>\n");
    rc = rc || put(b, "</table></div>\n<div><h2>Model</h2>\n") || put_summary(b, m) || put(b, "</div></div>\n");

    int64_t *counts = malloc((size_t)K * K * sizeof *counts);
    if (!counts) return -1;
    viz_confusion_counts(test, pred, K, counts);
    const char *err = vd_figure_confusion(counts, K, VD_PNG, &png);
    free(counts);
    rc = rc || put(b, "<h2>Confusion matrix (test set)</h2>\n") || put_figure(b, err, &png, "confusion matrix");
    err = vd_figure_misclassified(test, mean, std, pred, probs, K, VD_PNG, &png, NULL);
    rc = rc || put(b, "<h2>Most confidently misclassified test images</h2>\n") ||
         put_figure(b, err, &png, "misclassified test images");
    rc = rc || put(b, "<h2>First-layer filters</h2>\n") ||
         put_figure(b, vd_figure_filters(m, VD_PNG, &png), &png, "first-layer filters");
    rc = rc || put(b, "<p class=\"status\">Written by convnet " CN_VERSION_STRING
                      " after every epoch; the epochs are also in history.jsonl "
                      "(<code>convnet plot history.jsonl -o curves.png</code>).</p>\n</body></html>\n");
    return rc;
}

int report_update(report *r, const cn_model *m, const cn_dataset *test, float mean, float std,
                  const int32_t *pred, const float *probs, const vd_epoch *e)
{
    /* a repeated epoch (a resumed run) replaces the old one */
    while (r->n_hist && r->hist[r->n_hist - 1].epoch >= e->epoch) r->n_hist--;
    if (push(&r->hist, &r->n_hist, &r->cap_hist, e)) return cli_fail(r->cmd, "out of memory");
    vd_bytes html = {0}, log = {0};
    int bad = build_html(&html, r, m, test, mean, std, pred, probs);
    for (int i = 0; i < r->n_hist && !bad; i++) {
        const vd_epoch *h = &r->hist[i];
        bad = put(&log, "{\"epoch\": %.0f, \"train_loss\": %.6f, \"train_accuracy\": %.6f, \"test_loss\": %.6f, "
                        "\"test_accuracy\": %.6f, \"seconds\": %.3f}\n",
                  h->epoch, h->train_loss, h->train_accuracy, h->test_loss, h->test_accuracy, h->seconds);
    }
    int rc = 0;
    if (bad) {
        rc = cli_fail(r->cmd, "--report: out of memory");
    } else {
        char *ph = path_in(r, "report.html"), *pl = path_in(r, "history.jsonl");
        const char *err = !ph || !pl ? "out of memory" : vd_bytes_write(pl, &log);
        if (!err) err = vd_bytes_write(ph, &html);
        if (err) rc = cli_fail(r->cmd, "--report: %s", err);
        free(ph);
        free(pl);
    }
    vd_bytes_free(&html);
    vd_bytes_free(&log);
    return rc;
}
