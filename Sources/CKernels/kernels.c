#include "ckernels.h"
#include <math.h>
#include "vmath.h"

// Sixteen running maxima, one per lane: the compiler does not vectorize a single running maximum
// (it cannot assume there are no NaNs), and the largest value is the same in any order.
NMT_VECTOR float nmt_row_max(const float *x, size_t n) {
    float lanes[16];
    for (int j = 0; j < 16; j++) lanes[j] = -INFINITY;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int j = 0; j < 16; j++) lanes[j] = x[i + j] > lanes[j] ? x[i + j] : lanes[j];
    }
    float m = -INFINITY;
    for (int j = 0; j < 16; j++) m = lanes[j] > m ? lanes[j] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

NMT_VECTOR void nmt_tanh(const float *x, float *y, size_t n) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < n; i++) y[i] = tanh_approx(x[i]);
}
