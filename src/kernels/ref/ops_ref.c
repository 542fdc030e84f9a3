/* Double-precision references for the non-convolution ops: the formulas as
 * written in textbooks, channel by channel and row by row. */
#include <math.h>

#include "ops_ref.h"

void cn__act_ref_fwd(cn_act a, double slope, size_t n, const double *x, double *y)
{
    for (size_t i = 0; i < n; i++) {
        const double v = x[i];
        switch (a) {
        case CN_ACT_RELU: y[i] = isnan(v) ? v : (v > 0 ? v : 0.0); break;
        case CN_ACT_LEAKY_RELU: y[i] = isnan(v) ? v : (v > 0 ? v : slope * v); break;
        case CN_ACT_TANH: y[i] = tanh(v); break;
        case CN_ACT_SIGMOID: y[i] = 1.0 / (1.0 + exp(-v)); break;
        default: y[i] = NAN; break;
        }
    }
}

void cn__linear_ref_fwd(int64_t N, int64_t IN, int64_t OUT, const double *x, const double *w,
                        const double *b, double *y)
{
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < OUT; j++) {
            double s = b ? b[j] : 0.0;
            for (int64_t k = 0; k < IN; k++) s += x[n * IN + k] * w[k * OUT + j];
            y[n * OUT + j] = s;
        }
}

void cn__batchnorm_ref_fwd(int training, double eps, double momentum, int64_t M, int64_t C,
                           const double *x, const double *gamma, const double *beta,
                           double *running_mean, double *running_var, double *y)
{
    for (int64_t c = 0; c < C; c++) {
        double mean, var;
        if (training) {
            double s = 0.0, ss = 0.0;
            for (int64_t m = 0; m < M; m++) s += x[m * C + c];
            mean = s / (double)M;
            for (int64_t m = 0; m < M; m++) ss += (x[m * C + c] - mean) * (x[m * C + c] - mean);
            var = ss / (double)M;
            if (running_mean && running_var) {
                running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean;
                running_var[c] = (1 - momentum) * running_var[c] + momentum * ss / (double)(M - 1);
            }
        } else {
            mean = running_mean[c];
            var = running_var[c];
        }
        const double g = gamma ? gamma[c] : 1.0, b = beta ? beta[c] : 0.0;
        for (int64_t m = 0; m < M; m++)
            y[m * C + c] = g * (x[m * C + c] - mean) / sqrt(var + eps) + b;
    }
}

/* log(sum_j exp(x_j)) of one row, shifted by its maximum. */
static double lse(int64_t K, const double *x)
{
    double mx = x[0], s = 0.0;
    for (int64_t j = 1; j < K; j++) mx = fmax(mx, x[j]);
    for (int64_t j = 0; j < K; j++) s += exp(x[j] - mx);
    return mx + log(s);
}

void cn__softmax_ref_fwd(int64_t N, int64_t K, const double *x, double *y)
{
    for (int64_t n = 0; n < N; n++) {
        const double l = lse(K, x + n * K);
        for (int64_t j = 0; j < K; j++) y[n * K + j] = exp(x[n * K + j] - l);
    }
}

void cn__log_softmax_ref_fwd(int64_t N, int64_t K, const double *x, double *y)
{
    for (int64_t n = 0; n < N; n++) {
        const double l = lse(K, x + n * K);
        for (int64_t j = 0; j < K; j++) y[n * K + j] = x[n * K + j] - l;
    }
}

double cn__xent_ref_fwd(int64_t N, int64_t K, const double *x, const int32_t *labels)
{
    double s = 0.0;
    for (int64_t n = 0; n < N; n++) s += lse(K, x + n * K) - x[n * K + labels[n]];
    return s / (double)N;
}
