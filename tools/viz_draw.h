/* tools/viz_draw.h - the CLI's figures, drawn with cairo (PNG or SVG).
 *
 *     vd_bytes png = {0};
 *     const char *err = vd_figure_filters(model, VD_PNG, &png);   // NULL on success
 *     if (!err) err = vd_bytes_write("filters.png", &png);        // atomic
 *     vd_bytes_free(&png);
 *
 * Every figure is rendered into memory (so that `train --report` can inline
 * it as a data: URI) and only then written. Functions return NULL on
 * success or a static one-line message. Only the CLI links cairo; the
 * library knows nothing of it.
 *
 * Layouts use fixed pixel margins so that tests can find the data in the
 * pictures: see each figure for its size, and vd_figure_curves for the
 * data -> pixel mapping it reports.
 */
#ifndef CN_TOOLS_VIZ_DRAW_H
#define CN_TOOLS_VIZ_DRAW_H

#include <cairo.h>
#include <stddef.h>
#include <stdint.h>

#include "convnet/convnet.h"

/* ---- encoded figures ------------------------------------------------------ */

/* A growable byte buffer; {0} is empty. */
typedef struct vd_bytes {
    unsigned char *data;
    size_t len, cap;
} vd_bytes;

void vd_bytes_free(vd_bytes *b);
/* Appends n bytes; 0 or -1 when out of memory. */
int vd_bytes_append(vd_bytes *b, const void *p, size_t n);
/* Writes b to path atomically (cn_file_write_atomic); NULL or the message. */
const char *vd_bytes_write(const char *path, const vd_bytes *b);

typedef enum vd_format { VD_PNG = 0, VD_SVG } vd_format;
/* VD_SVG when path ends in ".svg" (any case), else VD_PNG. */
vd_format vd_format_of(const char *path);

/* ---- drawing primitives ---------------------------------------------------- */

/* A figure being drawn: width x height pixels on white; RGB PNG (no alpha)
 * or SVG in px units. */
typedef struct vd_canvas {
    cairo_surface_t *surface;
    cairo_t *cr;
    int width, height;
    vd_format format;
    vd_bytes svg; /* SVG output accumulates here while drawing */
} vd_canvas;

const char *vd_canvas_open(vd_canvas *c, vd_format f, int width, int height);
/* Ends drawing, encodes into *out (which the caller frees with
 * vd_bytes_free) and releases the canvas, success or not. */
const char *vd_canvas_finish(vd_canvas *c, vd_bytes *out);

enum { VD_LEFT = 0, VD_CENTER = 1, VD_RIGHT = 2 };
/* Text with its baseline at y, aligned on x; size in pixels; printf format. */
void vd_text(cairo_t *cr, double x, double y, double size, int bold, int align, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* The same rotated by angle radians about (x, y). */
void vd_text_rotated(cairo_t *cr, double x, double y, double angle, double size, int bold,
                     int align, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
/* Width of a text in pixels. */
double vd_text_width(cairo_t *cr, double size, int bold, const char *s);
void vd_rgb(cairo_t *cr, unsigned hex); /* 0xRRGGBB */

typedef enum vd_cmap { VD_CMAP_GRAY = 0, VD_CMAP_VIRIDIS, VD_CMAP_INFERNO, VD_CMAP_BLUES } vd_cmap;
/* The colour at t in [0, 1] (clamped) of a colour map, components 0..1. */
void vd_cmap_rgb(vd_cmap map, double t, double rgb[3]);

/* Paints an h x w image at (x, y), every source pixel a block of `scale`
 * pixels (nearest neighbour). Pixel (i, j) has the value v[(i*w + j)*step]
 * (step = the channel count for NHWC data), mapped by (v - lo) / (hi - lo)
 * through map; with rgb != 0 it reads three values per pixel (v, v+1, v+2)
 * and maps each alone through gray. A rectangle around it if border. */
void vd_paint_map(cairo_t *cr, const float *v, int h, int w, int step, int rgb, float lo, float hi,
                  vd_cmap map, double x, double y, double scale, int border);
/* Paints h x w pixels of RGB triples in 0..1 (rgb[(i*w + j)*3 + k]). */
void vd_paint_rgb(cairo_t *cr, const float *rgb, int h, int w, double x, double y, double scale);

/* "T-shirt/top" ... for Fashion-MNIST labels, "class K" beyond (buf). */
const char *vd_class_name(int k, char *buf, size_t len);

/* ---- figures ----------------------------------------------------------- */

/* One epoch of `convnet train --json`; NAN marks a missing value. */
typedef struct vd_epoch {
    double epoch, train_loss, train_accuracy, test_loss, test_accuracy, seconds;
} vd_epoch;

/* Where a chart's data lands: the plot area's pixel edges (px0 left, px1
 * right, py0 bottom, py1 top) and the data range they span. A value (x, y)
 * is drawn at (px0 + (x - xmin) / (xmax - xmin) * (px1 - px0),
 *              py0 - (y - ymin) / (ymax - ymin) * (py0 - py1)). */
typedef struct vd_axes {
    double px0, px1, py0, py1;
    double xmin, xmax, ymin, ymax;
} vd_axes;

/* Loss (left) and accuracy (right) against epochs, train in blue (#1f77b4)
 * and test in orange (#ff7f0e), each point a filled circle of that colour
 * (below 40 points). VD_CURVES_W x VD_CURVES_H pixels; the plot areas are
 * x 80..470 and 580..970, y 70..370 (top..bottom). x spans 0..the last
 * epoch rounded up to a tick, loss 0..a tick above 1.05 x the largest loss,
 * accuracy a multiple of 0.1 below the smallest accuracy..1. axes[0] (loss)
 * and axes[1] (accuracy) receive the mapping if axes is not NULL. */
#define VD_CURVES_W 1040
#define VD_CURVES_H 440
const char *vd_figure_curves(const vd_epoch *h, int n, const char *title, vd_format f,
                             vd_bytes *out, vd_axes axes[2]);

/* The first 4-D ".weight" tensor of the model (its first convolution) as a
 * grid of filters, 8 a row, each 64 x 64 pixels and scaled to its own
 * min..max (black..white; RGB filters in colour, other channel counts
 * averaged), numbered. Size 40 + 8*80 by 76 + rows*92 for 8 or more
 * filters (fewer: as many columns as filters, at least 480 wide). */
const char *vd_figure_filters(const cn_model *m, vd_format f, vd_bytes *out);

/* counts[t*K + p]: test images of true class t predicted as p. Rows true,
 * columns predicted, each cell coloured by its share of the row and
 * labelled with the count. 210 + K*52 by 190 + K*52 pixels. */
const char *vd_figure_confusion(const int64_t *counts, int K, vd_format f, vd_bytes *out);

/* The (at most 16) most confidently wrong predictions of a dataset: pred
 * [n], probs [n, K]; images are shown as x * std + mean (0..1). 8 a row,
 * 1268 by 70 + rows*168 pixels (one empty row when nothing is wrong).
 * *shown (nullable) receives how many are drawn. */
const char *vd_figure_misclassified(const cn_dataset *ds, float mean, float std,
                                    const int32_t *pred, const float *probs, int K, vd_format f,
                                    vd_bytes *out, int *shown);

/* One layer's feature maps for one input: data [h, w, c]. */
typedef struct vd_fmap {
    const char *name, *kind;
    int h, w, c;
    const float *data;
} vd_fmap;

/* The input (h x w gray, 0..1) and every layer's maps, one panel a layer,
 * 16 maps a row, each 56 x 56 pixels in viridis scaled to its own range.
 * 1000 pixels wide; 190 + per layer 40 + rows*60 high. */
const char *vd_figure_activations(const float *input, int h, int w, const char *caption,
                                  const vd_fmap *layers, int n, vd_format f, vd_bytes *out);

/* Input (h x w gray, 0..1), saliency (h x w, >= 0) as an inferno heat map,
 * scaled so that its 99th percentile gets the top colour, and the heat map
 * over the image; VD_SALIENCY_W x VD_SALIENCY_H pixels. */
#define VD_SALIENCY_W 768
#define VD_SALIENCY_H 330
const char *vd_figure_saliency(const float *input, const float *saliency, int h, int w,
                               const char *title, vd_format f, vd_bytes *out);

/* ---- CLI helpers (cmd_viz.c) ----------------------------------------------- */

/* Writes the confusion matrix of pred against ds->y to path and the most
 * confidently misclassified images to path with "-misclassified" before
 * its extension. 0 or the exit status after one error line for cmd. */
int viz_write_eval_figures(const char *cmd, const char *path, const cn_dataset *ds, float mean,
                           float std, const int32_t *pred, const float *probs, int K);
/* counts [K*K] (zeroed here) from labels and predictions. */
void viz_confusion_counts(const cn_dataset *ds, const int32_t *pred, int K, int64_t *counts);

#endif
