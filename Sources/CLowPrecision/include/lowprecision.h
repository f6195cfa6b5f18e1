#ifndef NMT_LOWPRECISION_H
#define NMT_LOWPRECISION_H
// Matrix products in bf16 and int8 through oneDNN (Debian: libdnnl-dev), for decoding.
//
// A packed matrix is a weight W [N, K] (PyTorch's [out, in], row-major f32) converted once: to bf16,
// or to int8 with one scale per output row of W, and laid out in the blocked format oneDNN's kernel
// for this CPU reads, so no product re-packs it. Each call converts its input rows on the fly (to bf16,
// or to int8 with one scale per row), multiplies, and writes f32:
//     y[m, n] = Σ_k x[m, k] · W[n, k] + bias[n]
// Packed matrices are immutable and may be used from several threads at once; each thread keeps its
// own oneDNN stream and scratch buffers (grown when a product is larger than any before it on that
// thread, never per call). A product runs on the calling thread alone.
#ifdef __cplusplus
extern "C" {
#endif
#include <stddef.h>
#include <stdint.h>

typedef enum {
    NMT_LOWP_BF16 = 1,
    NMT_LOWP_INT8 = 2,
} nmt_lowp_precision;

// What the running CPU offers to oneDNN (after DNNL_MAX_CPU_ISA, which tests use to stand in for an
// older CPU).
enum {
    NMT_LOWP_HAS_BF16 = 1,      // avx512_core_bf16: bf16 dot products
    NMT_LOWP_HAS_VNNI = 2,      // avx512_core_vnni or avx2_vnni: u8·s8 dot products into 32-bit sums
    NMT_LOWP_HAS_AVX512 = 4,
};
int nmt_lowp_cpu_features(void);
// oneDNN's name for the instruction set its kernels use, e.g. "avx512_core_bf16".
const char *nmt_lowp_cpu_isa_name(void);

// The largest |weight| code an int8 matrix uses: 127, or 63 on CPUs without VNNI, where u8·s8 pairs
// are added in saturating 16-bit arithmetic (255·127·2 overflows it; 255·63·2 does not).
int nmt_lowp_int8_weight_limit(void);

typedef struct nmt_packed_matrix nmt_packed_matrix;

// Packs weight [n_out, k_in]. Returns NULL and writes a message into `error` when oneDNN cannot do this
// product on this CPU.
nmt_packed_matrix *nmt_packed_create(nmt_lowp_precision precision, const float *weight, int n_out, int k_in,
                                     char *error, size_t error_size);
void nmt_packed_destroy(nmt_packed_matrix *matrix);
// oneDNN's implementation, e.g. "brg:avx512_core_bf16".
const char *nmt_packed_implementation(const nmt_packed_matrix *matrix);
// The weight as the product sees it, dequantized to f32 [n_out, k_in], given the f32 weight it was
// packed from (for tests).
void nmt_packed_dequantized_weight(const nmt_packed_matrix *matrix, const float *weight, float *out);

// y[m×n_out] (row stride ldy) = x[m×k_in] (row stride ldx) · Wᵀ + bias (bias may be NULL).
// Returns 0, or a nonzero oneDNN status.
int nmt_packed_linear(const nmt_packed_matrix *matrix, const float *x, int m, int ldx, const float *bias,
                      float *y, int ldy);


// ---------------------------------------------------------------------------------------------
// bf16 products for training (mixed precision: f32 weights, sums and outputs).

// Registers `copy`, the weights `base[0..<count)` in bf16 (nmt_bf16_convert), so that products whose
// operand is a whole weight there read it instead of converting it again. NULL: none.
void nmt_bf16_set_mirror(const float *base, const uint16_t *copy, size_t count);
void nmt_bf16_convert(const float *x, uint16_t *y, size_t n);
// c[m×n] = op(a)·op(b) + beta·c, row-major, op(a) m×k, op(b) k×n, both rounded to bf16, f32 sums, on up
// to `threads` threads. Returns 0, or nonzero when it cannot (ldc ≠ n, beta not 0 or 1, no bf16 kernel
// on this CPU): the caller then uses sgemm.
int nmt_bf16_gemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                  float beta, float *c, int ldc, int threads);

#ifdef __cplusplus
}
#endif
#endif
