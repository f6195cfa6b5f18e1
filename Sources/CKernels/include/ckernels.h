#ifndef CKERNELS_H
#define CKERNELS_H
// Element-wise kernels over contiguous float arrays. Scalar expf/tanhf calls cost as much as the
// GEMMs around them, so these use a polynomial exp that the compiler turns into SIMD code
// (AVX2+FMA when the CPU has it, chosen at load time; SSE2 otherwise). Relative error < 2e-7.
#ifdef __cplusplus
extern "C" {
#endif
#include <stddef.h>

/// y[i] = exp(x[i]); x and y may alias.
void nmt_exp(const float *x, float *y, size_t n);
/// y[i] = tanh(x[i]); x and y may alias.
void nmt_tanh(const float *x, float *y, size_t n);
/// y[i] = 1 / (1 + exp(-x[i])); x and y may alias.
void nmt_sigmoid(const float *x, float *y, size_t n);
/// y[i] = tanh(x[i] + b[i]): the attention's tanh over precomputed source keys plus a query.
void nmt_add_tanh(const float *x, const float *b, float *y, size_t n);
/// In place over `rows` rows of `cols`: each row becomes its log-softmax. Returns nothing;
/// the row maxima and log-sum-exps are not kept.
void nmt_log_softmax_rows(float *x, size_t rows, size_t cols);
/// In place over `rows` rows of `cols`: each row becomes its softmax.
void nmt_softmax_rows(float *x, size_t rows, size_t cols);
/// Largest value of x[0..n).
float nmt_max(const float *x, size_t n);
/// Sum of x[0..n).
float nmt_sum(const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif
