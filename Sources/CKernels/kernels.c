#include "ckernels.h"
#include <stdint.h>
#include <string.h>

#include "vmath.h"

NMT_VECTOR void nmt_exp(const float *x, float *y, size_t n) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < n; i++) y[i] = exp_approx(x[i]);
}

NMT_VECTOR void nmt_tanh(const float *x, float *y, size_t n) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < n; i++) y[i] = tanh_approx(x[i]);
}

NMT_VECTOR void nmt_sigmoid(const float *x, float *y, size_t n) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < n; i++) y[i] = sigmoid_approx(x[i]);
}

NMT_VECTOR void nmt_add_tanh(const float *x, const float *b, float *y, size_t n) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < n; i++) y[i] = tanh_approx(x[i] + b[i]);
}

NMT_VECTOR float nmt_max(const float *x, size_t n) {
    float m = -3.402823466e+38f;
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

NMT_VECTOR float nmt_sum(const float *x, size_t n) {
    float s = 0.0f;
#pragma clang loop vectorize(enable) interleave(enable)
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

NMT_VECTOR static float shifted_exp_sum(float *x, size_t n, float shift, int keep) {
    float s = 0.0f;
#pragma clang loop vectorize(enable) interleave(enable)
    for (size_t i = 0; i < n; i++) {
        float e = exp_approx(x[i] - shift);
        if (keep) x[i] = e;
        s += e;
    }
    return s;
}

NMT_VECTOR static void add_scalar(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] += v;
}

NMT_VECTOR static void mul_scalar(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] *= v;
}

float nmt_logf(float v);

void nmt_log_softmax_rows(float *x, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        float m = nmt_max(row, cols);
        float s = shifted_exp_sum(row, cols, m, 0);
        add_scalar(row, cols, -(m + nmt_logf(s)));
    }
}

void nmt_softmax_rows(float *x, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        float m = nmt_max(row, cols);
        float s = shifted_exp_sum(row, cols, m, 1);
        mul_scalar(row, cols, 1.0f / s);
    }
}
