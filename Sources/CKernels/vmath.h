#ifndef NMT_VMATH_H
#define NMT_VMATH_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// Each kernel is compiled twice, for AVX2+FMA and for the x86-64 baseline; the dynamic loader
// picks one for the running CPU. Other architectures get the plain version.
#if defined(__x86_64__) && defined(__clang__)
#define NMT_VECTOR __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define NMT_VECTOR
#endif

// exp(x) = 2^k * exp(r), k = round(x / ln 2), |r| <= ln2 / 2, exp(r) by a degree-6 polynomial
// (Cephes' expf coefficients). Rounding uses the 1.5*2^23 trick so there is no branch or libm call.
static inline float exp_approx(float x) {
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -87.3365447505531f ? -87.3365447505531f : x;
    const float shifter = 12582912.0f;  // 1.5 * 2^23
    float kf = x * 1.44269504088896341f + shifter;
    int32_t kbits;
    memcpy(&kbits, &kf, sizeof kbits);
    kf -= shifter;
    float r = x - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t k = kbits - 0x4B400000;  // integer part, recovered from the shifted float's bits
    int32_t scale_bits = (k + 127) << 23;
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    return p * scale;
}

// tanh(x) = sign(x) * (1 - e) / (1 + e) with e = exp(-2|x|); keeps full relative accuracy near 0
// for |x| >= 0.0625 and uses the odd Taylor series below that.
static inline float tanh_approx(float x) {
    float ax = x < 0 ? -x : x;
    float e = exp_approx(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    float x2 = ax * ax;
    float small = ax * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * (-0.0539682540f))));
    float t = ax < 0.0625f ? small : big;
    return x < 0 ? -t : t;
}

static inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

// The largest of x[0..n), -INFINITY when n is 0: the shift of every softmax and the block test of
// top-k (kernels.c).
float nmt_row_max(const float *x, size_t n);

#endif
