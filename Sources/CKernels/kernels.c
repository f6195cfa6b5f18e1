#include "ckernels.h"
#include <math.h>
#include "vmath.h"

NMT_VECTOR float nmt_row_max(const float *x, size_t n) {
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

NMT_VECTOR void nmt_tanh(const float *x, float *y, size_t n) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < n; i++) y[i] = tanh_approx(x[i]);
}
