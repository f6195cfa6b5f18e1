#ifndef CKERNELS_H
#define CKERNELS_H
// Element-wise kernels over contiguous float arrays. Scalar expf/tanhf calls cost as much as the
// GEMMs around them, so these use a polynomial exp that the compiler turns into SIMD code
// (AVX2+FMA when the CPU has it, chosen at load time; SSE2 otherwise). Relative error < 2e-7.
#ifdef __cplusplus
extern "C" {
#endif
#include <stddef.h>

/// y[i] = tanh(x[i]); x and y may alias.
void nmt_tanh(const float *x, float *y, size_t n);

#ifdef __cplusplus
}
#endif
#endif

#ifndef CKERNELS_NN_H
#define CKERNELS_NN_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
// ---------------------------------------------------------------------------------------------
// GRU gates, torch.nn.GRU convention (r, z, n; the reset gate multiplies the recurrent
// projection including its bias):
//   r = σ(gi_r + gh_r)   z = σ(gi_z + gh_z)   n = tanh(gi_n + r ⊙ gh_n)
//   h' = (1 − z) ⊙ n + z ⊙ h      and with a mask m ∈ {0,1}:  h_out = m h' + (1 − m) h
// gi, gh: [B, 3H] with row strides ldgi, ldgh (projections incl. biases)
// cache:  [B, 4H] per step: r, z, n, gh_n — what the backward pass needs
// mask:   [B] or NULL (all ones)
void nmt_gru_forward(int B, int H, const float *gi, int ldgi, const float *gh, int ldgh,
                     const float *hprev, const float *mask, float *cache, float *h);
// dh: [B, H] gradient w.r.t. h_out. Writes dgi, dgh: [B, 3H] (row strides lddgi, lddgh),
// gradients w.r.t. the pre-activation projections, and dhprev: [B, H] = the part of dL/dh that
// does not go through W_hh (the caller adds dgh · W_hh with a GEMM).
void nmt_gru_backward(int B, int H, const float *cache, const float *hprev, const float *mask,
                      const float *dh, float *dgi, int lddgi, float *dgh, int lddgh, float *dhprev);

// ---------------------------------------------------------------------------------------------
// Additive attention for one decoder step over all sentences of a batch.
//   e_bi = v · tanh(K_ib + q_b),  α_b = softmax over unmasked i,  ctx_b = Σ_i α_bi C_ib
// keys: [Ts, B, A] time-major; query: [B, A] with row stride ldq; v: [A]
// srcMask: [Ts, B]; enc: [Ts, B, C]; alpha out: [B, Ts]; ctx out: [B, C]
void nmt_attention_forward(int Ts, int B, int A, int C, const float *keys, const float *query,
                           int ldq, const float *v, const float *srcMask, const float *enc,
                           float *alpha, float *ctx);
// The same for search, where each sentence's keys and annotations are stored once for all its rows
// (its beams): row r attends to positions starts[r] ..< starts[r] + lengths[r] of keys [P, A] and
// enc [P, C]. alpha out: [R, Ts] (zero past the row's length); ctx out: [R, C]. A row's numbers are
// those nmt_attention_forward gives it (same operations in the same order; masked positions add 0).
void nmt_attention_forward_pooled(int R, int Ts, int A, int C, const float *keys, const float *enc,
                                  const int *starts, const int *lengths, const float *query, int ldq,
                                  const float *v, float *alpha, float *ctx);
// Backward of nmt_attention_forward given dctx: [B, C]. Recomputes tanh(K + q) instead of storing it.
// Accumulates into dkeys [Ts,B,A], dv [A], denc [Ts,B,C]; writes dquery [B, A] (stride lddq).
void nmt_attention_backward(int Ts, int B, int A, int C, const float *keys, const float *query,
                            int ldq, const float *v, const float *srcMask, const float *enc,
                            const float *alpha, const float *dctx, float *dkeys, float *dquery,
                            int lddq, float *dv, float *denc);

// ---------------------------------------------------------------------------------------------
// Cross-entropy with label smoothing over rows of logits [N, V], in place.
// Target distribution q = (1 − ε) onehot(y) + ε / V.  Row loss = −Σ_k q_k log p_k.
// weights: [N] (0 for padding). On return logits holds dL/dlogits = (p − q) · w · gradScale.
// Returns Σ_rows w · loss; *nllSum gets Σ_rows w · (−log p_y).
double nmt_label_smoothed_xent(float *logits, int N, int V, const int32_t *targets,
                               const float *weights, float epsilon, float gradScale,
                               double *nllSum);

/// y[i] = x[i] * m[i]
void nmt_mul(const float *x, const float *m, float *y, size_t n);
/// dx[i] = dy[i] * (1 − y[i]²): backward of tanh given its output y.
void nmt_tanh_backward(const float *y, const float *dy, float *dx, size_t n);
#ifdef __cplusplus
}
#endif
#endif

#ifndef CKERNELS_SEARCH_H
#define CKERNELS_SEARCH_H
#ifdef __cplusplus
extern "C" {
#endif
/// log Σ exp(x[i]) over one row, vectorized.
float nmt_log_sum_exp(const float *x, size_t n);
/// The k largest entries of x[0..n), largest first: indices into idx, values into val.
/// Skips 32-entry blocks whose maximum cannot enter the list, so most of a peaked row is one
/// vectorized max per block.
void nmt_top_k(const float *x, size_t n, int k, int32_t *idx, float *val);
#ifdef __cplusplus
}
#endif
#endif

#ifndef CKERNELS_ADAM_H
#define CKERNELS_ADAM_H
#ifdef __cplusplus
extern "C" {
#endif
/// Σ x[i]², accumulated in blocks of single precision summed in double.
double nmt_sum_squares(const float *x, size_t n);
/// Adam over flat buffers, gradient scaled by `gradScale` (clipping):
///   m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²;  p −= stepSize · m / (√v / rootCorrection2 + ε)
void nmt_adam_update(float *p, const float *g, float *m, float *v, size_t n, float gradScale,
                     float beta1, float beta2, float stepSize, float rootCorrection2, float epsilon);
#ifdef __cplusplus
}
#endif
#endif
