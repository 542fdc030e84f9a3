/* tools/report.h - `convnet train --report DIR`: a self-contained HTML page
 * (DIR/report.html, every picture inline as a base64 data: URI, no script,
 * nothing fetched) rewritten atomically after every epoch, plus the epoch
 * log DIR/history.jsonl in `train --json`'s format.
 *
 *     report *rep;
 *     if ((rc = report_open(&rep, "train", dir, n, keys, vals, start_epoch, epochs))) return rc;
 *     for (each epoch) {
 *         ... train, evaluate with pred and probs ...
 *         if ((rc = report_update(rep, model, test, mean, std, pred, probs, &e))) return rc;
 *     }
 *     report_free(rep);
 *
 * Functions return 0 or the exit status after one error line for cmd.
 */
#ifndef CN_TOOLS_REPORT_H
#define CN_TOOLS_REPORT_H

#include "convnet/convnet.h"
#include "viz_draw.h"

typedef struct report report;

/* Creates dir if needed (not its parents) and remembers the
 * hyper-parameters (n key/value strings, copied). A run resumed at
 * start_epoch > 0 keeps the first start_epoch epochs of dir/history.jsonl,
 * if there is one, so the curves continue. */
int report_open(report **out, const char *cmd, const char *dir, int n, const char *const *keys,
                const char *const *vals, int64_t start_epoch, int epochs);
/* Appends the epoch e and rewrites dir/report.html and dir/history.jsonl
 * with the model's summary and filters, the curves, and the confusion matrix
 * and worst mistakes of pred [test->n] / probs [test->n, K] on test (whose
 * images are normalised with mean and std). */
int report_update(report *r, const cn_model *m, const cn_dataset *test, float mean, float std,
                  const int32_t *pred, const float *probs, const vd_epoch *e);
/* NULL is a no-op. */
void report_free(report *r);

/* Parses `convnet train --json` output: one vd_epoch per line that holds a
 * JSON object with an "epoch" number; other lines are skipped, missing
 * values are NAN. *out (the caller frees it) may be NULL when *n is 0.
 * 0, or -1 when out of memory. */
int report_parse_log(const char *text, size_t len, vd_epoch **out, int *n);

#endif
