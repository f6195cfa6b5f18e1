#include "ckernels.h"
#include <math.h>
#include <string.h>
#include "vmath.h"

// One row of the gate computation. The restrict parameters matter: without them clang keeps a
// scalar fallback behind run-time alias checks, and it took that path (20 ns per element).
static inline __attribute__((always_inline)) void gru_row_forward(int H, const float *restrict xi, const float *restrict xh,
                                                                  const float *restrict hp, float m, float *restrict c,
                                                                  float *restrict ho) {
    for (int k = 0; k < H; k++) {
        float r = sigmoid_approx(xi[k] + xh[k]);
        float z = sigmoid_approx(xi[H + k] + xh[H + k]);
        float ghn = xh[2 * H + k];
        float n = tanh_approx(xi[2 * H + k] + r * ghn);
        float hn = (1.0f - z) * n + z * hp[k];
        c[k] = r; c[H + k] = z; c[2 * H + k] = n; c[3 * H + k] = ghn;
        ho[k] = m * hn + (1.0f - m) * hp[k];
    }
}

NMT_VECTOR void nmt_gru_forward(int B, int H, const float *gi, int ldgi, const float *gh, int ldgh,
                                const float *hprev, const float *mask, float *cache, float *h) {
    for (int b = 0; b < B; b++) {
        gru_row_forward(H, gi + (size_t)b * ldgi, gh + (size_t)b * ldgh, hprev + (size_t)b * H, mask ? mask[b] : 1.0f,
                        cache + (size_t)b * 4 * H, h + (size_t)b * H);
    }
}

static inline __attribute__((always_inline)) void gru_row_backward(int H, const float *restrict c, const float *restrict hp,
                                                                   float m, const float *restrict d, float *restrict gi,
                                                                   float *restrict gh, float *restrict dp) {
    for (int k = 0; k < H; k++) {
        float r = c[k], z = c[H + k], n = c[2 * H + k], ghn = c[3 * H + k];
        float dhn = m * d[k];
        float dn = dhn * (1.0f - z);
        float dz = dhn * (hp[k] - n);
        float dnPre = dn * (1.0f - n * n);
        float drPre = dnPre * ghn * r * (1.0f - r);
        float dzPre = dz * z * (1.0f - z);
        gi[k] = drPre; gi[H + k] = dzPre; gi[2 * H + k] = dnPre;
        gh[k] = drPre; gh[H + k] = dzPre; gh[2 * H + k] = dnPre * r;
        dp[k] = (1.0f - m) * d[k] + dhn * z;
    }
}

NMT_VECTOR void nmt_gru_backward(int B, int H, const float *cache, const float *hprev, const float *mask,
                                 const float *dh, float *dgi, int lddgi, float *dgh, int lddgh, float *dhprev) {
    for (int b = 0; b < B; b++) {
        gru_row_backward(H, cache + (size_t)b * 4 * H, hprev + (size_t)b * H, mask ? mask[b] : 1.0f, dh + (size_t)b * H,
                         dgi + (size_t)b * lddgi, dgh + (size_t)b * lddgh, dhprev + (size_t)b * H);
    }
}

// v · tanh(k + q) over A entries: the fused inner loop of the attention scores.
NMT_VECTOR static float attention_energy(const float *k, const float *q, const float *v, int A) {
    float s = 0.0f;
#pragma clang loop vectorize(enable) interleave(enable)
    for (int a = 0; a < A; a++) s += v[a] * tanh_approx(k[a] + q[a]);
    return s;
}

NMT_VECTOR static void axpy(float alpha, const float *x, float *y, int n) {
#pragma clang loop vectorize(assume_safety)
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

NMT_VECTOR static float dot(const float *x, const float *y, int n) {
    float s = 0.0f;
#pragma clang loop vectorize(enable) interleave(enable)
    for (int i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

// One row of additive attention over positions 0 ..< n: position i's key at keys + i·keyStride, its
// annotation at enc + i·encStride; with a mask, positions where mask[i·maskStride] is 0 are skipped
// (α = 0). Writes α [n] and ctx [C].
static void attend_row(int n, int A, int C, const float *keys, size_t keyStride, const float *enc, size_t encStride,
                       const float *mask, size_t maskStride, const float *q, const float *v, float *al, float *ctx) {
    float maxScore = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (mask && mask[(size_t)i * maskStride] == 0.0f) { al[i] = -INFINITY; continue; }
        al[i] = attention_energy(keys + (size_t)i * keyStride, q, v, A);
        if (al[i] > maxScore) maxScore = al[i];
    }
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        al[i] = mask && mask[(size_t)i * maskStride] == 0.0f ? 0.0f : expf(al[i] - maxScore);
        sum += al[i];
    }
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    memset(ctx, 0, sizeof(float) * (size_t)C);
    for (int i = 0; i < n; i++) {
        al[i] *= inv;
        if (al[i] != 0.0f) axpy(al[i], enc + (size_t)i * encStride, ctx, C);
    }
}

void nmt_attention_forward(int Ts, int B, int A, int C, const float *keys, const float *query,
                           int ldq, const float *v, const float *srcMask, const float *enc,
                           float *alpha, float *ctx) {
    for (int b = 0; b < B; b++) {
        attend_row(Ts, A, C, keys + (size_t)b * A, (size_t)B * A, enc + (size_t)b * C, (size_t)B * C, srcMask + b, (size_t)B,
                   query + (size_t)b * ldq, v, alpha + (size_t)b * Ts, ctx + (size_t)b * C);
    }
}

void nmt_attention_forward_pooled(int R, int Ts, int A, int C, const float *keys, const float *enc,
                                  const int *starts, const int *lengths, const float *query, int ldq,
                                  const float *v, float *alpha, float *ctx) {
    for (int r = 0; r < R; r++) {
        float *al = alpha + (size_t)r * Ts;
        attend_row(lengths[r], A, C, keys + (size_t)starts[r] * A, (size_t)A, enc + (size_t)starts[r] * C, (size_t)C, NULL, 0,
                   query + (size_t)r * ldq, v, al, ctx + (size_t)r * C);
        for (int i = lengths[r]; i < Ts; i++) al[i] = 0.0f;
    }
}

// dkeys_row += g · (1 − tanh(k + q)²) ⊙ v, dq += same, dv += g · tanh(k + q)
NMT_VECTOR static void attention_energy_backward(float g, const float *k, const float *q, const float *v,
                                                 float *dk, float *dq, float *dv, int A) {
#pragma clang loop vectorize(assume_safety)
    for (int a = 0; a < A; a++) {
        float t = tanh_approx(k[a] + q[a]);
        float dpre = g * v[a] * (1.0f - t * t);
        dk[a] += dpre;
        dq[a] += dpre;
        dv[a] += g * t;
    }
}

void nmt_attention_backward(int Ts, int B, int A, int C, const float *keys, const float *query,
                            int ldq, const float *v, const float *srcMask, const float *enc,
                            const float *alpha, const float *dctx, float *dkeys, float *dquery,
                            int lddq, float *dv, float *denc) {
    for (int b = 0; b < B; b++) {
        const float *al = alpha + (size_t)b * Ts, *dc = dctx + (size_t)b * C, *q = query + (size_t)b * ldq;
        float *dq = dquery + (size_t)b * lddq;
        memset(dq, 0, sizeof(float) * (size_t)A);
        // dα_i = dctx · C_i ;  de_i = α_i (dα_i − Σ_j α_j dα_j)
        float weighted = 0.0f;
        for (int i = 0; i < Ts; i++) {
            if (al[i] == 0.0f) continue;
            weighted += al[i] * dot(dc, enc + ((size_t)i * B + b) * C, C);
        }
        for (int i = 0; i < Ts; i++) {
            if (srcMask[(size_t)i * B + b] == 0.0f || al[i] == 0.0f) continue;
            size_t row = (size_t)i * B + b;
            float de = al[i] * (dot(dc, enc + row * C, C) - weighted);
            axpy(al[i], dc, denc + row * C, C);
            attention_energy_backward(de, keys + row * A, q, v, dkeys + row * A, dq, dv, A);
        }
    }
}

NMT_VECTOR static void row_exp_sums(const float *x, int n, float shift, float *expSum, float *plainSum) {
    float s = 0.0f, t = 0.0f;
#pragma clang loop vectorize(enable) interleave(enable)
    for (int i = 0; i < n; i++) { s += exp_approx(x[i] - shift); t += x[i]; }
    *expSum = s; *plainSum = t;
}

NMT_VECTOR static void row_softmax_minus(float *x, int n, float lse, float uniform, float scale) {
    for (int i = 0; i < n; i++) x[i] = (exp_approx(x[i] - lse) - uniform) * scale;
}

double nmt_label_smoothed_xent(float *logits, int N, int V, const int32_t *targets,
                               const float *weights, float epsilon, float gradScale,
                               double *nllSum) {
    double total = 0.0, nll = 0.0;
    for (int r = 0; r < N; r++) {
        float *x = logits + (size_t)r * V;
        float w = weights[r];
        if (w == 0.0f) { memset(x, 0, sizeof(float) * (size_t)V); continue; }
        float m = nmt_row_max(x, V), expSum, plainSum;
        row_exp_sums(x, V, m, &expSum, &plainSum);
        double lse = (double)m + log((double)expSum);
        int y = targets[r];
        double logpY = (double)x[y] - lse;
        double meanLogp = (double)plainSum / V - lse;
        total += w * (-(1.0 - epsilon) * logpY - epsilon * meanLogp);
        nll += w * -logpY;
        float scale = w * gradScale;
        row_softmax_minus(x, V, (float)lse, epsilon / V, scale);
        x[y] -= (1.0f - epsilon) * scale;
    }
    if (nllSum) *nllSum = nll;
    return total;
}

NMT_VECTOR void nmt_mul(const float *x, const float *m, float *y, size_t n) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * m[i];
}

NMT_VECTOR void nmt_tanh_backward(const float *y, const float *dy, float *dx, size_t n) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}
