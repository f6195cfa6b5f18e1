#include "ckernels.h"
#include <math.h>
#include "vmath.h"

NMT_VECTOR static float block_sum_squares(const float *restrict x, size_t n) {
    float s = 0.0f;
#pragma clang loop vectorize(enable) interleave(enable)
    for (size_t i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

double nmt_sum_squares(const float *x, size_t n) {
    double total = 0.0;
    for (size_t start = 0; start < n; start += 4096) {
        size_t count = n - start < 4096 ? n - start : 4096;
        total += block_sum_squares(x + start, count);
    }
    return total;
}

NMT_VECTOR void nmt_adam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                                float gradScale, float beta1, float beta2, float stepSize, float rootCorrection2, float epsilon) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gradScale;
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        p[i] -= stepSize * m[i] / (sqrtf(v[i]) / rootCorrection2 + epsilon);
    }
}
