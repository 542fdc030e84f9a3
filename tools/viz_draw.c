/* The CLI's figures with cairo: a canvas that encodes PNG or SVG into
 * memory, text and colour-map helpers, and one function per figure. */
#include "viz_draw.h"

#include <cairo-svg.h>
#include <fontconfig/fontconfig.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FONT "DejaVu Sans"
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- bytes ------------------------------------------------------------------ */

void vd_bytes_free(vd_bytes *b)
{
    free(b->data);
    b->data = NULL, b->len = b->cap = 0;
}

int vd_bytes_append(vd_bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d, b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

const char *vd_bytes_write(const char *path, const vd_bytes *b)
{
    return cn_file_write_atomic(path, b->data ? (const void *)b->data : "", b->len) ? cn_last_error() : NULL;
}

vd_format vd_format_of(const char *path)
{
    size_t n = strlen(path);
    if (n >= 4 && path[n - 4] == '.' && tolower((unsigned char)path[n - 3]) == 's' &&
        tolower((unsigned char)path[n - 2]) == 'v' && tolower((unsigned char)path[n - 1]) == 'g')
        return VD_SVG;
    return VD_PNG;
}

/* ---- canvas ------------------------------------------------------------------ */

static cairo_status_t write_bytes(void *closure, const unsigned char *data, unsigned int len)
{
    return vd_bytes_append(closure, data, len) ? CAIRO_STATUS_WRITE_ERROR : CAIRO_STATUS_SUCCESS;
}

/* cairo and fontconfig keep font caches for the life of the process;
 * releasing them at exit keeps leak checkers (ASan's LeakSanitizer) quiet. */
static void release_caches(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}

const char *vd_canvas_open(vd_canvas *c, vd_format f, int width, int height)
{
    static int registered;
    if (!registered) registered = 1, atexit(release_caches);
    memset(c, 0, sizeof *c);
    c->format = f, c->width = width, c->height = height;
    if (f == VD_SVG) {
        c->surface = cairo_svg_surface_create_for_stream(write_bytes, &c->svg, width, height);
        cairo_svg_surface_set_document_unit(c->surface, CAIRO_SVG_UNIT_PX);
    } else {
        c->surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    }
    c->cr = cairo_create(c->surface);
    cairo_status_t st = cairo_status(c->cr);
    if (st) {
        cairo_destroy(c->cr);
        cairo_surface_destroy(c->surface);
        vd_bytes_free(&c->svg);
        memset(c, 0, sizeof *c);
        return cairo_status_to_string(st);
    }
    cairo_set_source_rgb(c->cr, 1, 1, 1);
    cairo_paint(c->cr);
    cairo_set_line_cap(c->cr, CAIRO_LINE_CAP_BUTT);
    return NULL;
}

const char *vd_canvas_finish(vd_canvas *c, vd_bytes *out)
{
    cairo_status_t st = cairo_status(c->cr);
    cairo_destroy(c->cr);
    if (!st && c->format == VD_PNG) st = cairo_surface_write_to_png_stream(c->surface, write_bytes, out);
    cairo_surface_finish(c->surface);
    if (!st) st = cairo_surface_status(c->surface);
    cairo_surface_destroy(c->surface);
    if (c->format == VD_SVG) {
        *out = c->svg;
        memset(&c->svg, 0, sizeof c->svg);
    }
    memset(c, 0, sizeof *c);
    if (st) {
        vd_bytes_free(out);
        return cairo_status_to_string(st);
    }
    return NULL;
}

/* ---- text and colours ---------------------------------------------------------- */

static void font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

double vd_text_width(cairo_t *cr, double size, int bold, const char *s)
{
    font(cr, size, bold);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

static void text_at(cairo_t *cr, double x, double y, double angle, double size, int bold, int align,
                    const char *s)
{
    double w = vd_text_width(cr, size, bold, s);
    /* a text wider than the figure shrinks to fit it (titles with long names) */
    cairo_surface_t *target = cairo_get_target(cr);
    double room = cairo_surface_get_type(target) == CAIRO_SURFACE_TYPE_IMAGE
                      ? cairo_image_surface_get_width(target) - 16
                      : 0;
    if (angle == 0 && room > 0 && w > room) {
        size *= room / w;
        w = vd_text_width(cr, size, bold, s);
        if (align == VD_CENTER) x = (room + 16) / 2;
    }
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    cairo_move_to(cr, align == VD_CENTER ? -w / 2 : align == VD_RIGHT ? -w : 0, 0);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

void vd_text(cairo_t *cr, double x, double y, double size, int bold, int align, const char *fmt, ...)
{
    char s[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    text_at(cr, x, y, 0, size, bold, align, s);
}

void vd_text_rotated(cairo_t *cr, double x, double y, double angle, double size, int bold, int align,
                     const char *fmt, ...)
{
    char s[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    text_at(cr, x, y, angle, size, bold, align, s);
}

void vd_rgb(cairo_t *cr, unsigned hex)
{
    cairo_set_source_rgb(cr, ((hex >> 16) & 255) / 255.0, ((hex >> 8) & 255) / 255.0, (hex & 255) / 255.0);
}

/* Colour maps as evenly spaced stops, interpolated linearly (matplotlib's
 * viridis, inferno and Blues sampled at 9 points). */
static const unsigned char cmaps[][9][3] = {
    [VD_CMAP_GRAY] = {{0, 0, 0}, {32, 32, 32}, {64, 64, 64}, {96, 96, 96}, {128, 128, 128},
                      {159, 159, 159}, {191, 191, 191}, {223, 223, 223}, {255, 255, 255}},
    [VD_CMAP_VIRIDIS] = {{68, 1, 84}, {71, 44, 122}, {59, 81, 139}, {44, 113, 142}, {33, 144, 141},
                         {39, 173, 129}, {92, 200, 99}, {170, 220, 50}, {253, 231, 37}},
    [VD_CMAP_INFERNO] = {{0, 0, 4}, {31, 12, 72}, {85, 15, 109}, {136, 34, 106}, {186, 54, 85},
                         {227, 89, 51}, {249, 140, 10}, {249, 201, 50}, {252, 255, 164}},
    [VD_CMAP_BLUES] = {{247, 251, 255}, {222, 235, 247}, {198, 219, 239}, {158, 202, 225},
                       {107, 174, 214}, {66, 146, 198}, {33, 113, 181}, {8, 81, 156}, {8, 48, 107}},
};

void vd_cmap_rgb(vd_cmap map, double t, double rgb[3])
{
    if (!(t > 0)) t = 0; /* NaN too */
    if (t > 1) t = 1;
    double u = t * 8;
    int i = (int)u;
    if (i > 7) i = 7;
    double a = u - i;
    for (int k = 0; k < 3; k++)
        rgb[k] = ((1 - a) * cmaps[map][i][k] + a * cmaps[map][i + 1][k]) / 255.0;
}

static uint32_t pack(double r, double g, double b)
{
    r = r < 0 ? 0 : r > 1 ? 1 : r, g = g < 0 ? 0 : g > 1 ? 1 : g, b = b < 0 ? 0 : b > 1 ? 1 : b;
    if (r != r) r = 0;
    if (g != g) g = 0;
    if (b != b) b = 0;
    return (uint32_t)lround(r * 255) << 16 | (uint32_t)lround(g * 255) << 8 | (uint32_t)lround(b * 255);
}

/* Paints an image surface scaled by `scale` with nearest-neighbour sampling. */
static void paint_surface(cairo_t *cr, cairo_surface_t *s, int h, int w, double x, double y, double scale)
{
    cairo_surface_mark_dirty(s);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_scale(cr, scale, scale);
    cairo_set_source_surface(cr, s, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr, 0, 0, w, h);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(s);
}

void vd_paint_map(cairo_t *cr, const float *v, int h, int w, int step, int rgb, float lo, float hi,
                  vd_cmap map, double x, double y, double scale, int border)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s)) {
        cairo_surface_destroy(s);
        return;
    }
    cairo_surface_flush(s);
    unsigned char *d = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    double range = hi > lo ? (double)hi - lo : 0;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            const float *p = v + ((size_t)i * w + j) * (size_t)step;
            double c[3];
            if (rgb) {
                for (int k = 0; k < 3; k++) c[k] = range > 0 ? (p[k] - lo) / range : 0;
            } else {
                vd_cmap_rgb(map, range > 0 ? (p[0] - lo) / range : 0, c);
            }
            ((uint32_t *)(d + (size_t)i * stride))[j] = pack(c[0], c[1], c[2]);
        }
    paint_surface(cr, s, h, w, x, y, scale);
    if (border) {
        cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
        cairo_set_line_width(cr, 1);
        cairo_rectangle(cr, x - 0.5, y - 0.5, w * scale + 1, h * scale + 1);
        cairo_stroke(cr);
    }
}

void vd_paint_rgb(cairo_t *cr, const float *rgb, int h, int w, double x, double y, double scale)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s)) {
        cairo_surface_destroy(s);
        return;
    }
    cairo_surface_flush(s);
    unsigned char *d = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            const float *p = rgb + ((size_t)i * w + j) * 3;
            ((uint32_t *)(d + (size_t)i * stride))[j] = pack(p[0], p[1], p[2]);
        }
    paint_surface(cr, s, h, w, x, y, scale);
}

const char *vd_class_name(int k, char *buf, size_t len)
{
    const char *n = cn_fashion_mnist_class_name(k);
    if (n) return n;
    snprintf(buf, len, "class %d", k);
    return buf;
}

/* The largest integer scale that fits n source pixels into `fit` pixels,
 * or a fraction below 1 for large images. */
static double fit_scale(int n, double fit)
{
    if (n <= 0) return 1;
    double s = floor(fit / n);
    return s >= 1 ? s : fit / n;
}

/* ---- curves ---------------------------------------------------------------- */

/* 1, 2, 2.5 or 5 times a power of ten, at least raw. */
static double nice_step(double raw)
{
    if (!(raw > 0) || !isfinite(raw)) return 1;
    double p = pow(10, floor(log10(raw)));
    double f = raw / p;
    return (f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 2.5 + 1e-9 ? 2.5 : f <= 5 + 1e-9 ? 5 : 10) * p;
}

/* Decimal places that print every multiple of step exactly. */
static int decimals(double step)
{
    for (int d = 0; d < 6; d++) {
        double s = step * pow(10, d);
        if (fabs(s - round(s)) < 1e-6 * (s > 1 ? s : 1)) return d;
    }
    return 6;
}

static double px_x(const vd_axes *a, double v) { return a->px0 + (v - a->xmin) / (a->xmax - a->xmin) * (a->px1 - a->px0); }
static double px_y(const vd_axes *a, double v) { return a->py0 - (v - a->ymin) / (a->ymax - a->ymin) * (a->py0 - a->py1); }

static double field(const vd_epoch *e, size_t off) { return *(const double *)((const char *)e + off); }

enum { TRAIN_RGB = 0x1f77b4, TEST_RGB = 0xff7f0e };

typedef struct panel {
    const char *title, *ylabel;
    int percent, legend_bottom;
    size_t train_off, test_off;
    double xstep, ystep;
} panel;

static void draw_panel(cairo_t *cr, const vd_axes *a, const panel *p, const vd_epoch *h, int n)
{
    double L = a->px0, R = a->px1, B = a->py0, T = a->py1;
    /* grid and ticks */
    cairo_set_line_width(cr, 1);
    int yd = decimals(p->percent ? p->ystep * 100 : p->ystep), xd = decimals(p->xstep);
    for (double k = ceil(a->ymin / p->ystep - 1e-9); k * p->ystep <= a->ymax + 1e-9 * p->ystep; k++) {
        double v = k * p->ystep + 0.0, y = round(px_y(a, v)) + 0.5; /* + 0.0: no "-0" */
        vd_rgb(cr, 0xe6e6e6);
        cairo_move_to(cr, L, y), cairo_line_to(cr, R, y), cairo_stroke(cr);
        vd_rgb(cr, 0x444444);
        cairo_move_to(cr, L - 5, y), cairo_line_to(cr, L, y), cairo_stroke(cr);
        vd_rgb(cr, 0x222222);
        if (p->percent)
            vd_text(cr, L - 8, y + 4, 12, 0, VD_RIGHT, "%.*f%%", yd, v * 100);
        else
            vd_text(cr, L - 8, y + 4, 12, 0, VD_RIGHT, "%.*f", yd, v);
    }
    for (double k = ceil(a->xmin / p->xstep - 1e-9); k * p->xstep <= a->xmax + 1e-9 * p->xstep; k++) {
        double v = k * p->xstep + 0.0, x = round(px_x(a, v)) + 0.5;
        vd_rgb(cr, 0xe6e6e6);
        cairo_move_to(cr, x, T), cairo_line_to(cr, x, B), cairo_stroke(cr);
        vd_rgb(cr, 0x444444);
        cairo_move_to(cr, x, B), cairo_line_to(cr, x, B + 5), cairo_stroke(cr);
        vd_rgb(cr, 0x222222);
        vd_text(cr, x, B + 19, 12, 0, VD_CENTER, "%.*f", xd, v);
    }
    vd_rgb(cr, 0x444444);
    cairo_rectangle(cr, round(L) + 0.5, round(T) + 0.5, round(R) - round(L), round(B) - round(T));
    cairo_stroke(cr);
    vd_rgb(cr, 0x222222);
    vd_text(cr, (L + R) / 2, B + 40, 13, 0, VD_CENTER, "epoch");
    vd_text_rotated(cr, L - 52, (T + B) / 2, -M_PI / 2, 13, 0, VD_CENTER, "%s", p->ylabel);
    vd_text(cr, (L + R) / 2, T - 12, 14, 1, VD_CENTER, "%s", p->title);

    /* curves: lines, then markers on top */
    const size_t offs[2] = {p->train_off, p->test_off};
    const unsigned colors[2] = {TRAIN_RGB, TEST_RGB};
    for (int s = 0; s < 2; s++) {
        vd_rgb(cr, colors[s]);
        cairo_set_line_width(cr, 2);
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
        int open = 0;
        for (int i = 0; i < n; i++) {
            double x = h[i].epoch, y = field(&h[i], offs[s]);
            if (!isfinite(x) || !isfinite(y)) {
                open = 0;
                continue;
            }
            if (open) cairo_line_to(cr, px_x(a, x), px_y(a, y));
            else cairo_move_to(cr, px_x(a, x), px_y(a, y));
            open = 1;
        }
        cairo_stroke(cr);
        if (n < 40)
            for (int i = 0; i < n; i++) {
                double x = h[i].epoch, y = field(&h[i], offs[s]);
                if (!isfinite(x) || !isfinite(y)) continue;
                cairo_arc(cr, px_x(a, x), px_y(a, y), 4, 0, 2 * M_PI);
                cairo_fill(cr);
            }
    }
    /* legend */
    double lx = R - 110, ly = p->legend_bottom ? B - 62 : T + 12;
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, lx + 0.5, ly + 0.5, 98, 50);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_fill_preserve(cr);
    vd_rgb(cr, 0xbbbbbb);
    cairo_stroke(cr);
    const char *names[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        double y = ly + 17 + 20 * s;
        vd_rgb(cr, colors[s]);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, lx + 10, y), cairo_line_to(cr, lx + 38, y), cairo_stroke(cr);
        cairo_arc(cr, lx + 24, y, 4, 0, 2 * M_PI), cairo_fill(cr);
        vd_rgb(cr, 0x222222);
        vd_text(cr, lx + 46, y + 4, 13, 0, VD_LEFT, "%s", names[s]);
    }
}

const char *vd_figure_curves(const vd_epoch *h, int n, const char *title, vd_format f,
                             vd_bytes *out, vd_axes axes[2])
{
    double emax = 1, lmax = 0, amin = 1;
    for (int i = 0; i < n; i++) {
        if (isfinite(h[i].epoch) && h[i].epoch > emax) emax = h[i].epoch;
        const double l[2] = {h[i].train_loss, h[i].test_loss}, a[2] = {h[i].train_accuracy, h[i].test_accuracy};
        for (int k = 0; k < 2; k++) {
            if (isfinite(l[k]) && l[k] > lmax) lmax = l[k];
            if (isfinite(a[k]) && a[k] < amin) amin = a[k];
        }
    }
    if (!(lmax > 0)) lmax = 1;
    double xstep = ceil(nice_step(emax / 8));
    double lstep = nice_step(lmax * 1.05 / 5);
    double amin_axis = floor(amin * 10 + 1e-9) / 10;
    if (amin_axis < 0) amin_axis = 0;
    if (amin_axis > 0.9) amin_axis = 0.9;
    vd_axes ax[2] = {
        {80, 470, 370, 70, 0, ceil(emax / xstep - 1e-9) * xstep, 0, ceil(lmax * 1.05 / lstep - 1e-9) * lstep},
        {580, 970, 370, 70, 0, ceil(emax / xstep - 1e-9) * xstep, amin_axis, 1},
    };
    const panel panels[2] = {
        {"Loss", "cross-entropy loss", 0, 0, offsetof(vd_epoch, train_loss), offsetof(vd_epoch, test_loss),
         xstep, lstep},
        {"Accuracy", "accuracy", 1, 1, offsetof(vd_epoch, train_accuracy),
         offsetof(vd_epoch, test_accuracy), xstep, nice_step((1 - amin_axis) / 6)},
    };
    if (axes) axes[0] = ax[0], axes[1] = ax[1];
    vd_canvas c;
    const char *err = vd_canvas_open(&c, f, VD_CURVES_W, VD_CURVES_H);
    if (err) return err;
    vd_rgb(c.cr, 0x111111);
    vd_text(c.cr, VD_CURVES_W / 2.0, 28, 17, 1, VD_CENTER, "%s", title ? title : "Training curves");
    for (int k = 0; k < 2; k++) draw_panel(c.cr, &ax[k], &panels[k], h, n);
    return vd_canvas_finish(&c, out);
}

/* ---- filters ------------------------------------------------------------------- */

const char *vd_figure_filters(const cn_model *m, vd_format f, vd_bytes *out)
{
    const cn_model_tensor *t = NULL;
    for (int i = 0; i < m->n_tensors && !t; i++) {
        size_t len = strlen(m->tensors[i].name);
        if (m->tensors[i].ndim == 4 && !m->tensors[i].is_buffer && len >= 7 &&
            !strcmp(m->tensors[i].name + len - 7, ".weight"))
            t = &m->tensors[i];
    }
    if (!t) return "the model has no convolution";
    const int KH = (int)t->shape[0], KW = (int)t->shape[1], CI = (int)t->shape[2], CO = (int)t->shape[3];
    const float *w = cn_model_data(m, t); /* [KH, KW, CI, CO] */
    const int rgb = CI == 3, cols = CO >= 8 ? 8 : CO, rows = (CO + cols - 1) / cols;
    const int W = 40 + cols * 80 > 480 ? 40 + cols * 80 : 480, H = 76 + rows * 92;
    float *cell = malloc((size_t)KH * KW * 3 * sizeof *cell);
    if (!cell) return "out of memory";
    vd_canvas c;
    const char *err = vd_canvas_open(&c, f, W, H);
    if (err) return free(cell), err;
    cairo_t *cr = c.cr;
    vd_rgb(cr, 0x111111);
    vd_text(cr, W / 2.0, 28, 16, 1, VD_CENTER, "%.*s: %d filters of %dx%dx%d", (int)(strlen(t->name) - 7),
            t->name, CO, KH, KW, CI);
    vd_rgb(cr, 0x555555);
    vd_text(cr, W / 2.0, 50, 12, 0, VD_CENTER, "each filter scaled to its own range: %s",
            rgb ? "per channel, darkest = most negative weight"
            : CI == 1 ? "black = most negative weight, white = most positive"
                      : "input channels averaged, black = lowest, white = highest");
    const double scale = fit_scale(KH > KW ? KH : KW, 64);
    const double x0 = (W - cols * 80) / 2.0;
    for (int o = 0; o < CO; o++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int ky = 0; ky < KH; ky++)
            for (int kx = 0; kx < KW; kx++) {
                float acc = 0;
                for (int ci = 0; ci < CI; ci++) {
                    float v = w[(((size_t)ky * KW + kx) * CI + ci) * CO + o];
                    if (rgb) cell[(ky * KW + kx) * 3 + ci] = v;
                    acc += v;
                }
                if (!rgb) cell[ky * KW + kx] = acc / (float)CI;
            }
        for (int i = 0; i < KH * KW * (rgb ? 3 : 1); i++) lo = cell[i] < lo ? cell[i] : lo, hi = cell[i] > hi ? cell[i] : hi;
        double cx = x0 + (o % cols) * 80 + 8, cy = 76 + (o / cols) * 92;
        double dx = (64 - KW * scale) / 2, dy = (64 - KH * scale) / 2;
        vd_paint_map(cr, cell, KH, KW, rgb ? 3 : 1, rgb, lo, hi, VD_CMAP_GRAY, round(cx + dx), round(cy + dy), scale, 1);
        vd_rgb(cr, 0x333333);
        vd_text(cr, cx + 32, cy + 64 + 16, 11, 0, VD_CENTER, "%d", o);
    }
    free(cell);
    return vd_canvas_finish(&c, out);
}

/* ---- confusion matrix ----------------------------------------------------------- */

const char *vd_figure_confusion(const int64_t *counts, int K, vd_format f, vd_bytes *out)
{
    enum { C = 52, L = 170, T = 90 };
    const int W = L + K * C + 40, H = T + K * C + 100;
    int64_t total = 0, right = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) total += counts[i * K + j], right += i == j ? counts[i * K + j] : 0;
    vd_canvas c;
    const char *err = vd_canvas_open(&c, f, W, H);
    if (err) return err;
    cairo_t *cr = c.cr;
    char buf[32];
    vd_rgb(cr, 0x111111);
    vd_text(cr, W / 2.0, 30, 16, 1, VD_CENTER, "Confusion matrix: %.2f%% of %lld test images right",
            total ? 100.0 * (double)right / (double)total : 0.0, (long long)total);
    vd_rgb(cr, 0x555555);
    vd_text(cr, W / 2.0, 52, 12, 0, VD_CENTER, "rows: true class, columns: predicted; colour: share of the row");
    for (int i = 0; i < K; i++) {
        int64_t row = 0;
        for (int j = 0; j < K; j++) row += counts[i * K + j];
        for (int j = 0; j < K; j++) {
            int64_t n = counts[i * K + j];
            double share = row ? (double)n / (double)row : 0, rgb[3];
            vd_cmap_rgb(VD_CMAP_BLUES, share, rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_rectangle(cr, L + j * C, T + i * C, C, C);
            cairo_fill(cr);
            if (share > 0.5) cairo_set_source_rgb(cr, 1, 1, 1);
            else vd_rgb(cr, n ? 0x222222 : 0xaaaaaa);
            vd_text(cr, L + j * C + C / 2.0, T + i * C + C / 2.0 + 4, 12, i == j, VD_CENTER, "%lld", (long long)n);
        }
        vd_rgb(cr, 0x222222);
        vd_text(cr, L - 8, T + i * C + C / 2.0 + 4, 12, 0, VD_RIGHT, "%s", vd_class_name(i, buf, sizeof buf));
        vd_text_rotated(cr, L + i * C + C / 2.0 + 4, T + K * C + 10, -M_PI / 4, 12, 0, VD_RIGHT, "%s",
                        vd_class_name(i, buf, sizeof buf));
    }
    vd_rgb(cr, 0x999999);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, L - 0.5, T - 0.5, K * C + 1, K * C + 1);
    cairo_stroke(cr);
    vd_rgb(cr, 0x111111);
    vd_text(cr, L + K * C / 2.0, H - 12, 13, 1, VD_CENTER, "predicted class");
    vd_text_rotated(cr, 22, T + K * C / 2.0, -M_PI / 2, 13, 1, VD_CENTER, "true class");
    return vd_canvas_finish(&c, out);
}

/* ---- misclassified examples ------------------------------------------------------ */

typedef struct wrong {
    int64_t i;
    float p;
} wrong;

static int by_confidence(const void *a, const void *b)
{
    const wrong *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* One image of a dataset as 0..1 RGB triples (gray repeated). */
static void example_rgb(const cn_dataset *ds, int64_t i, float mean, float std, float *rgb)
{
    const int64_t hw = ds->h * ds->w;
    const float *x = ds->x + i * hw * ds->c;
    for (int64_t p = 0; p < hw; p++)
        for (int k = 0; k < 3; k++) {
            float v = x[p * ds->c + (ds->c == 3 ? k : 0)] * std + mean;
            rgb[p * 3 + k] = v;
        }
}

const char *vd_figure_misclassified(const cn_dataset *ds, float mean, float std,
                                    const int32_t *pred, const float *probs, int K, vd_format f,
                                    vd_bytes *out, int *shown)
{
    enum { MAX = 16, COLS = 8, CW = 156, CH = 168 };
    int64_t n_wrong = 0;
    wrong top[MAX + 1];
    int n_top = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        if (pred[i] == ds->y[i]) continue;
        n_wrong++;
        /* insertion into the best MAX, most confident first */
        wrong w = {i, probs[i * K + pred[i]]};
        int at = n_top;
        while (at > 0 && by_confidence(&w, &top[at - 1]) < 0) at--;
        if (at >= MAX) continue;
        memmove(&top[at + 1], &top[at], (size_t)(n_top - at) * sizeof *top);
        top[at] = w;
        if (n_top < MAX) n_top++;
    }
    if (shown) *shown = n_top;
    const int rows = n_top ? (n_top + COLS - 1) / COLS : 1;
    const int W = 20 + COLS * CW, H = 70 + rows * CH;
    float *rgb = malloc((size_t)(ds->h * ds->w * 3) * sizeof *rgb);
    if (!rgb) return "out of memory";
    vd_canvas c;
    const char *err = vd_canvas_open(&c, f, W, H);
    if (err) return free(rgb), err;
    cairo_t *cr = c.cr;
    vd_rgb(cr, 0x111111);
    vd_text(cr, W / 2.0, 30, 16, 1, VD_CENTER, "Most confidently misclassified: %d of %lld errors in %lld test images",
            n_top, (long long)n_wrong, (long long)ds->n);
    vd_rgb(cr, 0x555555);
    vd_text(cr, W / 2.0, 52, 12, 0, VD_CENTER, "each with its true class and, in red, the prediction and its probability");
    if (!n_top) {
        vd_text(cr, W / 2.0, 70 + CH / 2.0, 14, 0, VD_CENTER, "no misclassified images");
    }
    const double scale = fit_scale((int)(ds->h > ds->w ? ds->h : ds->w), 112);
    char b1[32], b2[32];
    for (int k = 0; k < n_top; k++) {
        int64_t i = top[k].i;
        double cx = 10 + (k % COLS) * CW, cy = 70 + (k / COLS) * CH;
        example_rgb(ds, i, mean, std, rgb);
        vd_paint_rgb(cr, rgb, (int)ds->h, (int)ds->w, round(cx + (CW - (double)ds->w * scale) / 2), cy, scale);
        vd_rgb(cr, 0x222222);
        vd_text(cr, cx + CW / 2.0, cy + 112 + 18, 11.5, 0, VD_CENTER, "true: %s", vd_class_name(ds->y[i], b1, sizeof b1));
        vd_rgb(cr, 0xc0392b);
        vd_text(cr, cx + CW / 2.0, cy + 112 + 34, 11.5, 0, VD_CENTER, "pred: %s %.0f%%",
                vd_class_name(pred[i], b2, sizeof b2), 100.0 * top[k].p);
    }
    free(rgb);
    return vd_canvas_finish(&c, out);
}

/* ---- feature maps ------------------------------------------------------------- */

enum { ACT_W = 1000, ACT_COLS = 16, ACT_PITCH = 60, ACT_CELL = 56, ACT_TOP = 190 };

const char *vd_figure_activations(const float *input, int h, int w, const char *caption,
                                  const vd_fmap *layers, int n, vd_format f, vd_bytes *out)
{
    int H = ACT_TOP + 10;
    for (int l = 0; l < n; l++) H += 40 + (layers[l].c + ACT_COLS - 1) / ACT_COLS * ACT_PITCH;
    vd_canvas c;
    const char *err = vd_canvas_open(&c, f, ACT_W, H);
    if (err) return err;
    cairo_t *cr = c.cr;
    vd_rgb(cr, 0x111111);
    vd_text(cr, ACT_W / 2.0, 30, 16, 1, VD_CENTER, "Feature maps of every convolution for one input");
    double s = fit_scale(h > w ? h : w, 112);
    vd_paint_map(cr, input, h, w, 1, 0, 0, 1, VD_CMAP_GRAY, 20, 56, s, 1);
    /* the caption, line by line, beside the input */
    double y = 76;
    for (const char *p = caption ? caption : ""; *p; y += 20) {
        const char *e = strchr(p, '\n');
        int len = e ? (int)(e - p) : (int)strlen(p);
        vd_rgb(cr, 0x222222);
        vd_text(cr, 160, y, 13, y == 76, VD_LEFT, "%.*s", len, p);
        p += len + (e != NULL);
    }
    vd_rgb(cr, 0x555555);
    vd_text(cr, 160, y + 4, 12, 0, VD_LEFT, "each map is scaled to its own min..max in viridis (dark = low, yellow = high)");
    y = ACT_TOP;
    for (int l = 0; l < n; l++) {
        const vd_fmap *m = &layers[l];
        vd_rgb(cr, 0x111111);
        vd_text(cr, 20, y + 24, 13, 1, VD_LEFT, "%s (%s): %d maps of %dx%d", m->name, m->kind, m->c, m->h, m->w);
        double ms = fit_scale(m->h > m->w ? m->h : m->w, ACT_CELL);
        for (int ch = 0; ch < m->c; ch++) {
            float lo = INFINITY, hi = -INFINITY;
            for (int64_t p = 0; p < (int64_t)m->h * m->w; p++) {
                float v = m->data[p * m->c + ch];
                lo = v < lo ? v : lo, hi = v > hi ? v : hi;
            }
            vd_paint_map(cr, m->data + ch, m->h, m->w, m->c, 0, lo, hi, VD_CMAP_VIRIDIS,
                         20 + (ch % ACT_COLS) * ACT_PITCH, y + 36 + (ch / ACT_COLS) * ACT_PITCH, ms, 0);
        }
        y += 40 + (m->c + ACT_COLS - 1) / ACT_COLS * ACT_PITCH;
    }
    return vd_canvas_finish(&c, out);
}

/* ---- saliency ------------------------------------------------------------------ */

static int by_value(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

const char *vd_figure_saliency(const float *input, const float *saliency, int h, int w,
                               const char *title, vd_format f, vd_bytes *out)
{
    enum { P = 224, GAP = 24, TOP = 66 };
    /* scaled to the 99th percentile, so that a few extreme pixels do not
     * leave the rest black */
    float *rgb = malloc((size_t)h * w * 3 * sizeof *rgb), smax = 0;
    if (!rgb) return "out of memory";
    memcpy(rgb, saliency, (size_t)h * w * sizeof *rgb);
    qsort(rgb, (size_t)h * w, sizeof *rgb, by_value);
    smax = rgb[(size_t)((h * w - 1) * 0.99)];
    if (!(smax > 0)) smax = rgb[h * w - 1];
    for (int i = 0; i < h * w; i++) {
        double heat[3], a = smax > 0 ? fmin(saliency[i] / smax, 1) : 0;
        vd_cmap_rgb(VD_CMAP_INFERNO, a, heat);
        a *= a; /* weak gradients stay transparent over the image */
        for (int k = 0; k < 3; k++) rgb[i * 3 + k] = (float)((1 - a) * input[i] + a * heat[k]);
    }
    vd_canvas c;
    const char *err = vd_canvas_open(&c, f, VD_SALIENCY_W, VD_SALIENCY_H);
    if (err) return free(rgb), err;
    cairo_t *cr = c.cr;
    vd_rgb(cr, 0x111111);
    vd_text(cr, VD_SALIENCY_W / 2.0, 28, 16, 1, VD_CENTER, "%s", title ? title : "Saliency");
    vd_rgb(cr, 0x555555);
    vd_text(cr, VD_SALIENCY_W / 2.0, 48, 12, 0, VD_CENTER,
            "|gradient of the predicted class's logit with respect to each input pixel|, 99th percentile = top colour");
    double s = fit_scale(h > w ? h : w, P);
    const char *captions[3] = {"input (as the network sees it)", "saliency (inferno)", "saliency over the input"};
    for (int k = 0; k < 3; k++) {
        double x = GAP + k * (P + GAP);
        if (k == 0) vd_paint_map(cr, input, h, w, 1, 0, 0, 1, VD_CMAP_GRAY, x, TOP, s, 1);
        else if (k == 1) vd_paint_map(cr, saliency, h, w, 1, 0, 0, smax, VD_CMAP_INFERNO, x, TOP, s, 1);
        else vd_paint_rgb(cr, rgb, h, w, x, TOP, s);
        vd_rgb(cr, 0x222222);
        vd_text(cr, x + P / 2.0, TOP + P + 24, 12.5, 0, VD_CENTER, "%s", captions[k]);
    }
    free(rgb);
    return vd_canvas_finish(&c, out);
}
