// Distance kernels, one per instruction-set level, and the dispatcher that
// picks the best one for this CPU once, before `main`.
//
// Every level sums in a different order (lanes, then a tree across lanes),
// so results differ from the scalar reference by float reassociation only;
// on inputs whose partial sums are all exact (small integers) they are equal.
// Tests/DomicileVectorsTests/VectorKernelTests.swift checks both.

#include "vector_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#define DOMICILE_X86 1
#include <immintrin.h>
#elif defined(__aarch64__)
#define DOMICILE_ARM64 1
#include <arm_neon.h>
#endif

// MARK: - Scalar reference: one accumulator, in index order.

static float dot_scalar(const float *a, const float *b, size_t count) {
    float sum = 0;
    for (size_t i = 0; i < count; i++) sum += a[i] * b[i];
    return sum;
}

static float squared_l2_scalar(const float *a, const float *b, size_t count) {
    float sum = 0;
    for (size_t i = 0; i < count; i++) {
        float d = a[i] - b[i];
        sum += d * d;
    }
    return sum;
}

#if DOMICILE_X86

// MARK: - SSE2 (every x86-64 CPU): four 4-lane accumulators, multiply then add.

static inline float sum_m128(__m128 v) {
    __m128 high = _mm_movehl_ps(v, v);
    __m128 pair = _mm_add_ps(v, high);
    __m128 odd = _mm_shuffle_ps(pair, pair, 0x55);
    return _mm_cvtss_f32(_mm_add_ss(pair, odd));
}

static float dot_sse2(const float *a, const float *b, size_t count) {
    __m128 s0 = _mm_setzero_ps(), s1 = _mm_setzero_ps(), s2 = _mm_setzero_ps(), s3 = _mm_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(a + i), _mm_loadu_ps(b + i)));
        s1 = _mm_add_ps(s1, _mm_mul_ps(_mm_loadu_ps(a + i + 4), _mm_loadu_ps(b + i + 4)));
        s2 = _mm_add_ps(s2, _mm_mul_ps(_mm_loadu_ps(a + i + 8), _mm_loadu_ps(b + i + 8)));
        s3 = _mm_add_ps(s3, _mm_mul_ps(_mm_loadu_ps(a + i + 12), _mm_loadu_ps(b + i + 12)));
    }
    for (; i + 4 <= count; i += 4) s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(a + i), _mm_loadu_ps(b + i)));
    float sum = sum_m128(_mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
    for (; i < count; i++) sum += a[i] * b[i];
    return sum;
}

static inline __m128 squared_difference_m128(const float *a, const float *b) {
    __m128 d = _mm_sub_ps(_mm_loadu_ps(a), _mm_loadu_ps(b));
    return _mm_mul_ps(d, d);
}

static float squared_l2_sse2(const float *a, const float *b, size_t count) {
    __m128 s0 = _mm_setzero_ps(), s1 = _mm_setzero_ps(), s2 = _mm_setzero_ps(), s3 = _mm_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        s0 = _mm_add_ps(s0, squared_difference_m128(a + i, b + i));
        s1 = _mm_add_ps(s1, squared_difference_m128(a + i + 4, b + i + 4));
        s2 = _mm_add_ps(s2, squared_difference_m128(a + i + 8, b + i + 8));
        s3 = _mm_add_ps(s3, squared_difference_m128(a + i + 12, b + i + 12));
    }
    for (; i + 4 <= count; i += 4) s0 = _mm_add_ps(s0, squared_difference_m128(a + i, b + i));
    float sum = sum_m128(_mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
    for (; i < count; i++) {
        float d = a[i] - b[i];
        sum += d * d;
    }
    return sum;
}

// MARK: - AVX2 + FMA: four 8-lane fused multiply-add accumulators; the last
// 1–7 elements by a masked load (masked-off lanes read as zero, never fault).

#define AVX2 __attribute__((target("avx2,fma")))

// Row r (0–7) enables the first r lanes.
static const int avx2_tail_masks[8][8] = {
    {0, 0, 0, 0, 0, 0, 0, 0},     {-1, 0, 0, 0, 0, 0, 0, 0},     {-1, -1, 0, 0, 0, 0, 0, 0},     {-1, -1, -1, 0, 0, 0, 0, 0},
    {-1, -1, -1, -1, 0, 0, 0, 0}, {-1, -1, -1, -1, -1, 0, 0, 0}, {-1, -1, -1, -1, -1, -1, 0, 0}, {-1, -1, -1, -1, -1, -1, -1, 0},
};

AVX2 static inline float sum_m256(__m256 v) {
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
    return _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 0x55)));
}

AVX2 static float dot_avx2(const float *a, const float *b, size_t count) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= count; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < count) {
        __m256i mask = _mm256_loadu_si256((const __m256i *)avx2_tail_masks[count - i]);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, mask), _mm256_maskload_ps(b + i, mask), s1);
    }
    return sum_m256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

AVX2 static float squared_l2_avx2(const float *a, const float *b, size_t count) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i + 8 <= count; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    if (i < count) {
        __m256i mask = _mm256_loadu_si256((const __m256i *)avx2_tail_masks[count - i]);
        __m256 d = _mm256_sub_ps(_mm256_maskload_ps(a + i, mask), _mm256_maskload_ps(b + i, mask));
        s1 = _mm256_fmadd_ps(d, d, s1);
    }
    return sum_m256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

// MARK: - AVX-512F: four 16-lane fused multiply-add accumulators; the last
// 1–15 elements by a masked load.

#define AVX512 __attribute__((target("avx512f")))

AVX512 static float dot_avx512(const float *a, const float *b, size_t count) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= count; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= count; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < count) {
        __mmask16 mask = (__mmask16)((1u << (count - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a + i), _mm512_maskz_loadu_ps(mask, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

AVX512 static float squared_l2_avx512(const float *a, const float *b, size_t count) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= count; i += 64) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
        __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
        s2 = _mm512_fmadd_ps(d2, d2, s2);
        s3 = _mm512_fmadd_ps(d3, d3, s3);
    }
    for (; i + 16 <= count; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    if (i < count) {
        __mmask16 mask = (__mmask16)((1u << (count - i)) - 1);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(mask, a + i), _mm512_maskz_loadu_ps(mask, b + i));
        s1 = _mm512_fmadd_ps(d, d, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

#endif // DOMICILE_X86

#if DOMICILE_ARM64

// MARK: - NEON (every arm64 CPU): four 4-lane fused multiply-add accumulators.

static float dot_neon(const float *a, const float *b, size_t count) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0), s2 = vdupq_n_f32(0), s3 = vdupq_n_f32(0);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    }
    for (; i + 4 <= count; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < count; i++) sum += a[i] * b[i];
    return sum;
}

static float squared_l2_neon(const float *a, const float *b, size_t count) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0), s2 = vdupq_n_f32(0), s3 = vdupq_n_f32(0);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        float32x4_t d0 = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
        float32x4_t d1 = vsubq_f32(vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        float32x4_t d2 = vsubq_f32(vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        float32x4_t d3 = vsubq_f32(vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
        s0 = vfmaq_f32(s0, d0, d0);
        s1 = vfmaq_f32(s1, d1, d1);
        s2 = vfmaq_f32(s2, d2, d2);
        s3 = vfmaq_f32(s3, d3, d3);
    }
    for (; i + 4 <= count; i += 4) {
        float32x4_t d = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
        s0 = vfmaq_f32(s0, d, d);
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < count; i++) {
        float d = a[i] - b[i];
        sum += d * d;
    }
    return sum;
}

#endif // DOMICILE_ARM64

// MARK: - Dispatch

typedef struct {
    domicile_distance_fn dot;
    domicile_distance_fn squared_l2;
} kernel_pair;

#if DOMICILE_X86
#define BASELINE_DOT dot_sse2
#define BASELINE_SQUARED_L2 squared_l2_sse2
#elif DOMICILE_ARM64
#define BASELINE_DOT dot_neon
#define BASELINE_SQUARED_L2 squared_l2_neon
#else
#define BASELINE_DOT dot_scalar
#define BASELINE_SQUARED_L2 squared_l2_scalar
#endif

_Atomic(domicile_distance_fn) domicile_dot_kernel = BASELINE_DOT;
_Atomic(domicile_distance_fn) domicile_squared_l2_kernel = BASELINE_SQUARED_L2;

static int kernels_for(int level, kernel_pair *pair) {
    switch (level) {
    case DOMICILE_KERNEL_SCALAR: *pair = (kernel_pair){dot_scalar, squared_l2_scalar}; return 1;
#if DOMICILE_X86
    case DOMICILE_KERNEL_SSE2: *pair = (kernel_pair){dot_sse2, squared_l2_sse2}; return 1;
    case DOMICILE_KERNEL_AVX2_FMA:
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
        *pair = (kernel_pair){dot_avx2, squared_l2_avx2};
        return 1;
    case DOMICILE_KERNEL_AVX512F:
        // The runtime checks the OS saves the 512-bit state (XGETBV), not only CPUID.
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx512f")) return 0;
        *pair = (kernel_pair){dot_avx512, squared_l2_avx512};
        return 1;
#endif
#if DOMICILE_ARM64
    case DOMICILE_KERNEL_NEON: *pair = (kernel_pair){dot_neon, squared_l2_neon}; return 1;
#endif
    default: return 0;
    }
}

int domicile_vectors_level_supported(int level) {
    kernel_pair pair;
    return kernels_for(level, &pair);
}

int domicile_vectors_best_level(void) {
    static const int preference[] = {DOMICILE_KERNEL_AVX512F, DOMICILE_KERNEL_AVX2_FMA, DOMICILE_KERNEL_NEON, DOMICILE_KERNEL_SSE2};
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++) {
        if (domicile_vectors_level_supported(preference[i])) return preference[i];
    }
    return DOMICILE_KERNEL_SCALAR;
}

int domicile_vectors_set_level(int level) {
    kernel_pair pair;
    if (!kernels_for(level, &pair)) return 0;
    atomic_store_explicit(&domicile_dot_kernel, pair.dot, memory_order_relaxed);
    atomic_store_explicit(&domicile_squared_l2_kernel, pair.squared_l2, memory_order_relaxed);
    return 1;
}

int domicile_vectors_level(void) {
    static const int levels[] = {DOMICILE_KERNEL_SCALAR, DOMICILE_KERNEL_SSE2, DOMICILE_KERNEL_AVX2_FMA, DOMICILE_KERNEL_AVX512F,
                                 DOMICILE_KERNEL_NEON};
    domicile_distance_fn dot = atomic_load_explicit(&domicile_dot_kernel, memory_order_relaxed);
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        kernel_pair pair;
        if (kernels_for(levels[i], &pair) && pair.dot == dot) return levels[i];
    }
    return DOMICILE_KERNEL_SCALAR;
}

const char *domicile_vectors_level_name(int level) {
    switch (level) {
    case DOMICILE_KERNEL_SCALAR: return "scalar";
    case DOMICILE_KERNEL_SSE2: return "sse2";
    case DOMICILE_KERNEL_AVX2_FMA: return "avx2+fma";
    case DOMICILE_KERNEL_AVX512F: return "avx512f";
    case DOMICILE_KERNEL_NEON: return "neon";
    default: return "unknown";
    }
}

domicile_distance_fn domicile_vectors_dot_at(int level) {
    kernel_pair pair;
    return kernels_for(level, &pair) ? pair.dot : 0;
}

domicile_distance_fn domicile_vectors_squared_l2_at(int level) {
    kernel_pair pair;
    return kernels_for(level, &pair) ? pair.squared_l2 : 0;
}

// Runs before `main` (and before any thread): the best level for this CPU.
__attribute__((constructor)) static void choose_kernels(void) {
    domicile_vectors_set_level(domicile_vectors_best_level());
}
