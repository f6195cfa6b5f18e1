#include "lowprecision.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <oneapi/dnnl/dnnl.h>

// Conversion kernels are compiled for AVX-512, AVX2 and the baseline; the loader picks one.
#if defined(__x86_64__) && defined(__clang__)
#define LOWP_VECTOR __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LOWP_VECTOR
#endif

// libgomp's per-thread setting; oneDNN (Debian's build) runs its kernels on OpenMP.
extern void omp_set_num_threads(int);
extern int omp_get_max_threads(void);

// ---------------------------------------------------------------------------------------------
// The engine and the CPU

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static void make_engine(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}
static dnnl_engine_t the_engine(void) {
    pthread_once(&engine_once, make_engine);
    return engine;
}

int nmt_lowp_cpu_features(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    int features = 0;
    if ((isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core) features |= NMT_LOWP_HAS_AVX512;
    if ((isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16) features |= NMT_LOWP_HAS_BF16;
    if ((isa & dnnl_cpu_isa_avx512_core_vnni) == dnnl_cpu_isa_avx512_core_vnni ||
        (isa & dnnl_cpu_isa_avx2_vnni) == dnnl_cpu_isa_avx2_vnni) features |= NMT_LOWP_HAS_VNNI;
    return features;
}

const char *nmt_lowp_cpu_isa_name(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
    }
}

int nmt_lowp_int8_weight_limit(void) { return (nmt_lowp_cpu_features() & NMT_LOWP_HAS_VNNI) ? 127 : 63; }

// Every product runs on the thread that calls it, alone: decoding gets its parallelism from workers
// that decode batches side by side (mt-translate, mt-serve). oneDNN fixes a primitive's thread count
// when it is created (from OpenMP's setting of the creating thread), so both creation and execution
// happen with OpenMP's count at 1; otherwise each worker's products would start a team of their own
// (two workers, four threads on two cores) and a team's idle thread would spin between products.
static void one_thread(void) {
    if (omp_get_max_threads() != 1) omp_set_num_threads(1);
}

// ---------------------------------------------------------------------------------------------
// Element conversions

// f32 → bf16, rounding to nearest even (the inputs are finite).
LOWP_VECTOR
static void to_bf16(const float *x, uint16_t *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], 4);
        bits += 0x7FFFu + ((bits >> 16) & 1u);
        y[i] = (uint16_t)(bits >> 16);
    }
}

static float from_bf16(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float x;
    memcpy(&x, &bits, 4);
    return x;
}

// The largest |x[i]|.
LOWP_VECTOR
static float max_abs(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) { float a = fabsf(x[i]); m = a > m ? a : m; }
    return m;
}

// q[i] = round(x[i] · inverse_scale), halves away from zero; |q| ≤ limit when inverse_scale = limit / max|x|.
LOWP_VECTOR
static void quantize(const float *x, float inverse_scale, int8_t *q, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i] * inverse_scale;
        q[i] = (int8_t)(int32_t)(v + (v >= 0 ? 0.5f : -0.5f));
    }
}

// q[i] = round(x[i] · inverse_scale) + 128, in [1, 255] when inverse_scale = 127 / max|x| (halves round
// up: the sum is positive, so truncation is floor).
LOWP_VECTOR
static void quantize_shifted(const float *x, float inverse_scale, uint8_t *q, size_t n) {
    for (size_t i = 0; i < n; i++) q[i] = (uint8_t)(int32_t)(x[i] * inverse_scale + 128.5f);
}

// y[n] = (acc[n] − shift[n]) · (row_scale · column_scales[n]) + bias[n]
LOWP_VECTOR
static void dequantize_row(const int32_t *acc, const int32_t *shift, float row_scale, const float *column_scales,
                           const float *bias, float *y, size_t n) {
    if (bias) {
        for (size_t i = 0; i < n; i++) y[i] = (float)(acc[i] - shift[i]) * (row_scale * column_scales[i]) + bias[i];
    } else {
        for (size_t i = 0; i < n; i++) y[i] = (float)(acc[i] - shift[i]) * (row_scale * column_scales[i]);
    }
}

// ---------------------------------------------------------------------------------------------
// Packed matrices

typedef struct thread_state thread_state;
static thread_state *this_thread(void);
static dnnl_stream_t thread_stream(thread_state *state);

struct nmt_packed_matrix {
    nmt_lowp_precision precision;
    int n, k;
    dnnl_primitive_t matmul;
    dnnl_memory_t weights;      // packed, owns its data
    float *column_scales;       // int8: W[n, :] ≈ codes[n, :] · column_scales[n]
    int32_t *shift;             // int8: 128 · Σ_k codes[n, k], what the inputs' zero point adds to each sum
    float *zero_bias;           // bf16: the bias when a call passes none
    char implementation[64];
};

// int8 inputs are u8 with a zero point of 128 (code = round(x / scale) + 128), as FBGEMM and Marian do:
// u8·s8 is what the CPU's instructions multiply, and the shift is taken out afterwards with each
// weight row's sum of codes, so oneDNN needs no compensation pass of its own.
static dnnl_data_type_t input_type(nmt_lowp_precision p) { return p == NMT_LOWP_BF16 ? dnnl_bf16 : dnnl_u8; }
static dnnl_data_type_t weight_type(nmt_lowp_precision p) { return p == NMT_LOWP_BF16 ? dnnl_bf16 : dnnl_s8; }

#define CHECK(call, what)                                                              \
    do {                                                                               \
        dnnl_status_t status_ = (call);                                                \
        if (status_ != dnnl_success) {                                                 \
            snprintf(error, error_size, "oneDNN: %s failed (status %d)", what, (int)status_); \
            goto fail;                                                                 \
        }                                                                              \
    } while (0)

nmt_packed_matrix *nmt_packed_create(nmt_lowp_precision precision, const float *weight, int n_out, int k_in,
                                     char *error, size_t error_size) {
    dnnl_engine_t eng = the_engine();
    if (!eng) { snprintf(error, error_size, "oneDNN: no CPU engine"); return NULL; }
    one_thread();
    nmt_packed_matrix *matrix = calloc(1, sizeof *matrix);
    matrix->precision = precision;
    matrix->n = n_out;
    matrix->k = k_in;
    dnnl_primitive_desc_t pd = NULL, reorder_pd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t plain = NULL;
    void *codes = NULL;

    // x [M, K] with M known only at each call; W as oneDNN's K×N: our [N, K] row-major is its "ba".
    dnnl_memory_desc_t src_md, any_weights_md, plain_weights_md, bias_md, dst_md;
    dnnl_dims_t src_dims = {DNNL_RUNTIME_DIM_VAL, k_in}, weight_dims = {k_in, n_out}, bias_dims = {1, n_out},
                dst_dims = {DNNL_RUNTIME_DIM_VAL, n_out};
    dnnl_data_type_t type = weight_type(precision);
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, input_type(precision), dnnl_ab), "source descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&any_weights_md, 2, weight_dims, type, dnnl_format_tag_any), "weight descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&plain_weights_md, 2, weight_dims, type, dnnl_ba), "weight descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&bias_md, 2, bias_dims, dnnl_f32, dnnl_ab), "bias descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, precision == NMT_LOWP_BF16 ? dnnl_f32 : dnnl_s32, dnnl_ab),
          "destination descriptor");
    dnnl_matmul_desc_t desc;
    // bf16 adds the bias inside the product; int8 adds it when scaling the 32-bit sums.
    CHECK(dnnl_matmul_desc_init(&desc, &src_md, &any_weights_md, precision == NMT_LOWP_BF16 ? &bias_md : NULL, &dst_md),
          "matmul descriptor");
    CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, eng, NULL),
          precision == NMT_LOWP_BF16 ? "a bf16 matmul on this CPU" : "an int8 matmul on this CPU");
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        snprintf(matrix->implementation, sizeof matrix->implementation, "%s", impl);
    if (strncmp(matrix->implementation, "ref", 3) == 0) {
        snprintf(error, error_size, "oneDNN has only its reference kernel (%s) for this product on this CPU",
                 matrix->implementation);
        goto fail;
    }
    CHECK(dnnl_primitive_create(&matrix->matmul, pd), "matmul primitive");

    // The weight in its plain layout and the product's type, then reordered once into the packed layout.
    size_t count = (size_t)n_out * (size_t)k_in;
    if (precision == NMT_LOWP_BF16) {
        codes = malloc(count * 2);
        to_bf16(weight, codes, count);
        matrix->zero_bias = calloc((size_t)n_out, sizeof(float));
    } else {
        codes = malloc(count);
        matrix->column_scales = malloc((size_t)n_out * sizeof(float));
        matrix->shift = malloc((size_t)n_out * sizeof(int32_t));
        int limit = nmt_lowp_int8_weight_limit();
        for (int row = 0; row < n_out; row++) {
            float m = max_abs(weight + (size_t)row * k_in, (size_t)k_in);
            float scale = m > 0 ? m / (float)limit : 1;
            matrix->column_scales[row] = scale;
            int8_t *row_codes = (int8_t *)codes + (size_t)row * k_in;
            quantize(weight + (size_t)row * k_in, m > 0 ? (float)limit / m : 0, row_codes, (size_t)k_in);
            int32_t sum = 0;
            for (int i = 0; i < k_in; i++) sum += row_codes[i];
            matrix->shift[row] = 128 * sum;
        }
    }
    const dnnl_memory_desc_t *packed_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    CHECK(dnnl_memory_create(&plain, &plain_weights_md, eng, codes), "weight memory");
    CHECK(dnnl_memory_create(&matrix->weights, packed_md, eng, DNNL_MEMORY_ALLOCATE), "packed weight memory");
    CHECK(dnnl_reorder_primitive_desc_create(&reorder_pd, &plain_weights_md, eng, packed_md, eng, NULL), "weight reorder");
    CHECK(dnnl_primitive_create(&reorder, reorder_pd), "weight reorder");
    dnnl_stream_t stream = thread_stream(this_thread());
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, matrix->weights}};
    CHECK(dnnl_primitive_execute(reorder, stream, 2, args), "weight reorder");
    CHECK(dnnl_stream_wait(stream), "weight reorder");

    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(reorder_pd);
    dnnl_memory_destroy(plain);
    dnnl_primitive_desc_destroy(pd);
    free(codes);
    return matrix;

fail:
    if (reorder) dnnl_primitive_destroy(reorder);
    if (reorder_pd) dnnl_primitive_desc_destroy(reorder_pd);
    if (plain) dnnl_memory_destroy(plain);
    if (pd) dnnl_primitive_desc_destroy(pd);
    free(codes);
    nmt_packed_destroy(matrix);
    return NULL;
}

void nmt_packed_destroy(nmt_packed_matrix *matrix) {
    if (!matrix) return;
    if (matrix->matmul) dnnl_primitive_destroy(matrix->matmul);
    if (matrix->weights) dnnl_memory_destroy(matrix->weights);
    free(matrix->column_scales);
    free(matrix->shift);
    free(matrix->zero_bias);
    free(matrix);
}

const char *nmt_packed_implementation(const nmt_packed_matrix *matrix) { return matrix->implementation; }

void nmt_packed_dequantized_weight(const nmt_packed_matrix *matrix, const float *weight, float *out) {
    size_t k = (size_t)matrix->k;
    if (matrix->precision == NMT_LOWP_BF16) {
        uint16_t *codes = malloc(k * 2);
        for (int row = 0; row < matrix->n; row++) {
            to_bf16(weight + row * k, codes, k);
            for (size_t i = 0; i < k; i++) out[row * k + i] = from_bf16(codes[i]);
        }
        free(codes);
    } else {
        int8_t *codes = malloc(k);
        for (int row = 0; row < matrix->n; row++) {
            float scale = matrix->column_scales[row];
            quantize(weight + row * k, 1 / scale, codes, k);
            for (size_t i = 0; i < k; i++) out[row * k + i] = (float)codes[i] * scale;
        }
        free(codes);
    }
}

// ---------------------------------------------------------------------------------------------
// Per-thread state: a stream, scratch for converted inputs, row scales and 32-bit sums, and the memory
// objects of the shapes this thread's products used last. A memory object is only a shape, a type and
// a layout (the data is set at each call), so a product allocates nothing once its shapes have been
// seen: a decoder step repeats the same few shapes, and a training pass the same few dozen.

enum { ROLE_SOURCE, ROLE_WEIGHTS, ROLE_BIAS, ROLE_DESTINATION };

typedef struct {
    int role, rows, cols, type, transposed;
    uint64_t used;      // the product that used it last: the least recently used one makes room
    dnnl_memory_t memory;
} cached_memory;

#define CACHED_MEMORIES 256

struct thread_state {
    dnnl_stream_t stream;
    void *inputs;       size_t inputs_size;
    float *row_scales;  size_t row_scales_count;
    int32_t *sums;      size_t sums_count;
    cached_memory memories[CACHED_MEMORIES];
    uint64_t products;  // counts this thread's products, for `used`
};

static dnnl_stream_t thread_stream(thread_state *state) { return state->stream; }

static pthread_key_t state_key;
static pthread_once_t state_key_once = PTHREAD_ONCE_INIT;

static void free_state(void *pointer) {
    thread_state *state = pointer;
    for (int i = 0; i < CACHED_MEMORIES; i++) {
        if (state->memories[i].memory) dnnl_memory_destroy(state->memories[i].memory);
    }
    if (state->stream) dnnl_stream_destroy(state->stream);
    free(state->inputs);
    free(state->row_scales);
    free(state->sums);
    free(state);
}
static void make_state_key(void) { pthread_key_create(&state_key, free_state); }

static thread_state *this_thread(void) {
    pthread_once(&state_key_once, make_state_key);
    thread_state *state = pthread_getspecific(state_key);
    if (!state) {
        state = calloc(1, sizeof *state);
        dnnl_stream_create(&state->stream, the_engine(), dnnl_stream_default_flags);
        pthread_setspecific(state_key, state);
    }
    return state;
}

static void *grow(void *buffer, size_t *capacity, size_t needed) {
    if (needed <= *capacity) return buffer;
    free(buffer);
    *capacity = needed + needed / 2;
    return malloc(*capacity);
}

// A memory object of rows × cols in this role, row-major (or column-major when transposed), with its
// data set to `data`. Entries used by the current product (stamp `state->products`) are never evicted.
static dnnl_memory_t memory_for(thread_state *state, int role, int rows, int cols, dnnl_data_type_t type, int transposed,
                                void *data) {
    cached_memory *victim = &state->memories[0];
    for (int i = 0; i < CACHED_MEMORIES; i++) {
        cached_memory *e = &state->memories[i];
        if (e->memory && e->role == role && e->rows == rows && e->cols == cols && e->type == (int)type &&
            e->transposed == transposed) {
            e->used = state->products;
            dnnl_memory_set_data_handle(e->memory, data);
            return e->memory;
        }
        if (!e->memory || (victim->memory && e->used < victim->used)) victim = e;
    }
    if (victim->memory) dnnl_memory_destroy(victim->memory);
    *victim = (cached_memory){role, rows, cols, (int)type, transposed, state->products, NULL};
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {rows, cols};
    if (dnnl_memory_desc_init_by_tag(&md, 2, dims, type, transposed ? dnnl_ba : dnnl_ab) != dnnl_success ||
        dnnl_memory_create(&victim->memory, &md, the_engine(), data) != dnnl_success) {
        victim->memory = NULL;
    }
    return victim->memory;
}

int nmt_packed_linear(const nmt_packed_matrix *matrix, const float *x, int m, int ldx, const float *bias,
                      float *y, int ldy) {
    if (m <= 0) return 0;
    thread_state *state = this_thread();
    one_thread();
    state->products++;
    size_t k = (size_t)matrix->k, n = (size_t)matrix->n;
    int bf16 = matrix->precision == NMT_LOWP_BF16;
    state->inputs = grow(state->inputs, &state->inputs_size, (size_t)m * k * (bf16 ? 2 : 1));
    // bf16 writes y directly when its rows are contiguous; otherwise, and for int8's sums, through scratch.
    int direct = bf16 && ldy == (int)n;
    if (!direct) state->sums = grow(state->sums, &state->sums_count, (size_t)m * n * 4);
    if (bf16) {
        for (int row = 0; row < m; row++) to_bf16(x + (size_t)row * ldx, (uint16_t *)state->inputs + row * k, k);
    } else {
        state->row_scales = grow(state->row_scales, &state->row_scales_count, (size_t)m * sizeof(float));
        for (int row = 0; row < m; row++) {
            float largest = max_abs(x + (size_t)row * ldx, k);
            state->row_scales[row] = largest > 0 ? largest / 127 : 0;
            quantize_shifted(x + (size_t)row * ldx, largest > 0 ? 127 / largest : 0, (uint8_t *)state->inputs + row * k, k);
        }
    }
    dnnl_memory_t source = memory_for(state, ROLE_SOURCE, m, (int)k, input_type(matrix->precision), 0, state->inputs);
    dnnl_memory_t destination = memory_for(state, ROLE_DESTINATION, m, (int)n, bf16 ? dnnl_f32 : dnnl_s32, 0,
                                           direct ? (void *)y : (void *)state->sums);
    if (!source || !destination) return -1;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, source}, {DNNL_ARG_WEIGHTS, matrix->weights}, {DNNL_ARG_DST, destination}};
    int nargs = 3;
    if (bf16) {
        dnnl_memory_t bias_memory = memory_for(state, ROLE_BIAS, 1, (int)n, dnnl_f32, 0, (void *)(bias ? bias : matrix->zero_bias));
        if (!bias_memory) return -1;
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bias_memory};
    }
    dnnl_status_t status = dnnl_primitive_execute(matrix->matmul, state->stream, nargs, args);
    if (status != dnnl_success) return (int)status;
    status = dnnl_stream_wait(state->stream);
    if (status != dnnl_success) return (int)status;
    if (bf16 && !direct) {
        for (int row = 0; row < m; row++) memcpy(y + (size_t)row * ldy, (float *)state->sums + row * n, n * sizeof(float));
    } else if (!bf16) {
        for (int row = 0; row < m; row++)
            dequantize_row(state->sums + row * n, matrix->shift, state->row_scales[row], matrix->column_scales, bias,
                           y + (size_t)row * ldy, n);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// bf16 products for training: c[m×n] = op(a)·op(b) + beta·c with f32 sums, the operands converted to
// bf16 at each call unless they lie in the registered mirror (the weights, converted once per update).

static const float *mirror_base;
static const uint16_t *mirror_copy;
static size_t mirror_count;

void nmt_bf16_set_mirror(const float *base, const uint16_t *copy, size_t count) {
    mirror_base = base;
    mirror_copy = copy;
    mirror_count = count;
}

void nmt_bf16_convert(const float *x, uint16_t *y, size_t n) { to_bf16(x, y, n); }

// One primitive per (transA, transB, beta, threads), with the shapes given at each call (oneDNN's
// runtime dimensions). The operands are dense: a as m×k (or k×m when transposed), b as k×n (or n×k),
// c as m×n; runtime strides would make oneDNN fall back to its reference code.
typedef struct {
    int ta, tb, beta, threads;
    dnnl_primitive_t matmul;
    char implementation[64];
} gemm_primitive;
static gemm_primitive gemm_primitives[64];
static int gemm_primitive_count = 0;
static pthread_mutex_t gemm_lock = PTHREAD_MUTEX_INITIALIZER;

static gemm_primitive *gemm_primitive_for(int ta, int tb, int beta, int threads) {
    pthread_mutex_lock(&gemm_lock);
    for (int i = 0; i < gemm_primitive_count; i++) {
        gemm_primitive *g = &gemm_primitives[i];
        if (g->ta == ta && g->tb == tb && g->beta == beta && g->threads == threads) {
            pthread_mutex_unlock(&gemm_lock);
            return g;
        }
    }
    gemm_primitive *found = NULL;
    dnnl_primitive_t matmul = NULL;
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_dims_t any = {DNNL_RUNTIME_DIM_VAL, DNNL_RUNTIME_DIM_VAL};
    dnnl_memory_desc_init_by_tag(&a_md, 2, any, dnnl_bf16, ta ? dnnl_ba : dnnl_ab);
    dnnl_memory_desc_init_by_tag(&b_md, 2, any, dnnl_bf16, tb ? dnnl_ba : dnnl_ab);
    dnnl_memory_desc_init_by_tag(&c_md, 2, any, dnnl_f32, dnnl_ab);
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post_ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    const char *impl = "";
    if (dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md) == dnnl_success && dnnl_primitive_attr_create(&attr) == dnnl_success) {
        if (beta) {
            dnnl_post_ops_create(&post_ops);
            dnnl_post_ops_append_sum(post_ops, 1.0f);
            dnnl_primitive_attr_set_post_ops(attr, post_ops);
        }
        if (dnnl_primitive_desc_create(&pd, &desc, attr, the_engine(), NULL) == dnnl_success) {
            dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
            // The reference code is far slower than OpenBLAS: no primitive, and the caller uses sgemm.
            if (strncmp(impl, "ref", 3) != 0) dnnl_primitive_create(&matmul, pd);
        }
    }
    if (matmul && gemm_primitive_count < 64) {
        found = &gemm_primitives[gemm_primitive_count++];
        *found = (gemm_primitive){ta, tb, beta, threads, matmul, ""};
        snprintf(found->implementation, sizeof found->implementation, "%s", impl);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (post_ops) dnnl_post_ops_destroy(post_ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    pthread_mutex_unlock(&gemm_lock);
    return found;
}

// An operand stored as rows × cols with leading dimension ld, as a dense bf16 array: the mirror's copy
// when it is a whole weight there (dense), else converted into scratch.
static const uint16_t *bf16_operand(const float *x, int rows, int cols, int ld, uint16_t *scratch) {
    if (mirror_copy && ld == cols && x >= mirror_base && x + (size_t)rows * cols <= mirror_base + mirror_count)
        return mirror_copy + (x - mirror_base);
    for (int r = 0; r < rows; r++) to_bf16(x + (size_t)r * ld, scratch + (size_t)r * cols, (size_t)cols);
    return scratch;
}

int nmt_bf16_gemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                  float beta, float *c, int ldc, int threads) {
    if (m <= 0 || n <= 0 || k <= 0 || ldc != n || (beta != 0 && beta != 1)) return -1;
    // oneDNN 2.6 splits some small products badly over two threads (64×512×1536, a recurrent step's
    // backward, took 2 ms on two threads and 0.3 ms on one): those run on one.
    if ((double)m * n * k <= 64.0 * 1024 * 1024) threads = 1;
    thread_state *state = this_thread();
    state->products++;
    if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
    gemm_primitive *primitive = gemm_primitive_for(trans_a, trans_b, beta != 0, threads);
    if (!primitive) return -1;
    size_t a_count = (size_t)m * k, b_count = (size_t)k * n;
    state->inputs = grow(state->inputs, &state->inputs_size, (a_count + b_count) * 2);
    uint16_t *scratch = state->inputs;
    const uint16_t *a16 = trans_a ? bf16_operand(a, k, m, lda, scratch) : bf16_operand(a, m, k, lda, scratch);
    const uint16_t *b16 = trans_b ? bf16_operand(b, n, k, ldb, scratch + a_count) : bf16_operand(b, k, n, ldb, scratch + a_count);
    // op(a) is m×k, stored k×m (column-major m×k) when transposed; the same for b.
    dnnl_memory_t a_memory = memory_for(state, ROLE_SOURCE, m, k, dnnl_bf16, trans_a, (void *)a16);
    dnnl_memory_t b_memory = memory_for(state, ROLE_WEIGHTS, k, n, dnnl_bf16, trans_b, (void *)b16);
    dnnl_memory_t c_memory = memory_for(state, ROLE_DESTINATION, m, n, dnnl_f32, 0, c);
    if (!a_memory || !b_memory || !c_memory) return -1;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, a_memory}, {DNNL_ARG_WEIGHTS, b_memory}, {DNNL_ARG_DST, c_memory}};
    dnnl_status_t status = dnnl_primitive_execute(primitive->matmul, state->stream, 3, args);
    if (status == dnnl_success) status = dnnl_stream_wait(state->stream);
    return (int)status;
}
