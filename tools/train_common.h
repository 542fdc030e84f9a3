/* tools/train_common.h - what train, eval and predict share: loading and
 * normalising a dataset, and reading a checkpoint's normalisation. */
#ifndef CN_TOOLS_TRAIN_COMMON_H
#define CN_TOOLS_TRAIN_COMMON_H

#include "convnet/convnet.h"

/* Loads dir's train (train != 0) or test split, keeps the first `limit`
 * examples if limit > 0, and normalises with (mean, std). 0 or the exit
 * status after one error line (an empty split is an error). */
int tc_load(const char *cmd, const char *dir, int train, int limit, float mean, float std,
            cn_dataset **out);

/* The normalisation a checkpoint was trained with (metadata data_mean and
 * data_std); Fashion-MNIST's when absent. */
void tc_checkpoint_norm(const char *path, float *mean, float *std);

/* A model input from an image file: gray, resized (bilinear) to H x W,
 * inverted when invert is "yes" or, for "auto", when its border is mostly
 * light (Fashion-MNIST shows light objects on black), scaled to 0..1 and
 * normalised with (mean, std) into x [H*W]. *inverted (nullable) says
 * whether it was inverted. 0 or the exit status after one error line. */
int tc_image_input(const char *cmd, const char *path, const char *invert, int64_t H, int64_t W,
                   float mean, float std, float *x, int *inverted);

/* Seconds on a monotonic clock. */
double tc_now(void);

#endif
