#include "train_common.h"

#include <stdlib.h>
#include <time.h>

#include "cli.h"

int tc_load(const char *cmd, const char *dir, int train, int limit, float mean, float std,
            cn_dataset **out)
{
    cn_status s = cn_dataset_load(dir, train, out);
    if (s) return cli_fail_status(cmd, s);
    if (limit > 0 && limit < (*out)->n) (*out)->n = limit;  /* a prefix view: x and y stay whole */
    if ((s = cn_dataset_normalize(*out, mean, std))) {
        cn_dataset_free(*out);
        *out = NULL;
        return cli_fail_status(cmd, s);
    }
    return 0;
}

void tc_checkpoint_norm(const char *path, float *mean, float *std)
{
    *mean = CN_FASHION_MNIST_MEAN, *std = CN_FASHION_MNIST_STD;
    cn_st_file *f;
    if (cn_st_open(path, &f)) return;
    const char *m = cn_st_meta(f, "data_mean"), *s = cn_st_meta(f, "data_std");
    float a, b;
    if (m && s && cli_parse_float(m, &a) == 0 && cli_parse_float(s, &b) == 0) *mean = a, *std = b;
    cn_st_close(f);
}

double tc_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
