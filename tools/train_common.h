/* tools/train_common.h - what train, eval and predict share: loading and
 * normalising a dataset, and reading a checkpoint's normalisation. */
#ifndef CN_TOOLS_TRAIN_COMMON_H
#define CN_TOOLS_TRAIN_COMMON_H

#include "convnet/convnet.h"

/* Loads dir's train (train != 0) or test split, keeps the first `limit`
 * examples if limit > 0, and normalises with (mean, std). 0 or the exit
 * status after one error line. */
int tc_load(const char *cmd, const char *dir, int train, int limit, float mean, float std,
            cn_dataset **out);

/* The normalisation a checkpoint was trained with (metadata data_mean and
 * data_std); Fashion-MNIST's when absent. */
void tc_checkpoint_norm(const char *path, float *mean, float *std);

/* Seconds on a monotonic clock. */
double tc_now(void);

#endif
