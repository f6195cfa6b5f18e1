#include "ckernels.h"
#include <math.h>
#include "vmath.h"

float nmt_logf(float v);

NMT_VECTOR static float shifted_exp_total(const float *x, size_t n, float shift) {
    float s = 0.0f;
#pragma clang loop vectorize(enable) interleave(enable)
    for (size_t i = 0; i < n; i++) s += exp_approx(x[i] - shift);
    return s;
}

float nmt_log_sum_exp(const float *x, size_t n) {
    float m = nmt_row_max(x, n);
    return m + nmt_logf(shifted_exp_total(x, n, m));
}

void nmt_top_k(const float *x, size_t n, int k, int32_t *idx, float *val) {
    for (int j = 0; j < k; j++) { idx[j] = -1; val[j] = -INFINITY; }
    for (size_t b = 0; b < n; b += 32) {
        size_t e = b + 32 < n ? b + 32 : n;
        if (nmt_row_max(x + b, e - b) <= val[k - 1]) continue;
        for (size_t i = b; i < e; i++) {
            float v = x[i];
            if (v <= val[k - 1]) continue;
            int j = k - 1;
            while (j > 0 && val[j - 1] < v) { val[j] = val[j - 1]; idx[j] = idx[j - 1]; j--; }
            val[j] = v;
            idx[j] = (int32_t)i;
        }
    }
}
