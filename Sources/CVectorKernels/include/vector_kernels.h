#ifndef DOMICILE_VECTOR_KERNELS_H
#define DOMICILE_VECTOR_KERNELS_H

// Distance kernels over float32 vectors, compiled for several instruction
// sets and chosen once at load time for the CPU the binary runs on
// (docs/DECISIONS.md, "Vector kernels chosen at run time"). Only functions
// carry `target` attributes: the library itself is built for baseline
// x86-64 (or arm64), so the binary runs on any such CPU.

#include <stddef.h>
#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction-set levels, lowest first. Not every level exists on every
/// architecture: x86-64 has scalar, SSE2, AVX2+FMA and AVX-512F; arm64 has
/// scalar and NEON.
typedef enum {
    DOMICILE_KERNEL_SCALAR = 0,
    DOMICILE_KERNEL_SSE2 = 1,
    DOMICILE_KERNEL_AVX2_FMA = 2,
    DOMICILE_KERNEL_AVX512F = 3,
    DOMICILE_KERNEL_NEON = 4,
} domicile_kernel_level;

typedef float (*domicile_distance_fn)(const float *a, const float *b, size_t count);

/// The kernels in use. Set before `main` (a constructor) to the best level
/// this CPU supports; they start at the baseline level, so a call before
/// the constructor is still correct. Relaxed atomics: a plain load on x86-64
/// and arm64, and `domicile_vectors_set_level` is free of data races.
extern _Atomic(domicile_distance_fn) domicile_dot_kernel;
extern _Atomic(domicile_distance_fn) domicile_squared_l2_kernel;

/// a·b over `count` floats. Pointers need no alignment.
static inline float domicile_dot(const float *a, const float *b, size_t count) {
    return atomic_load_explicit(&domicile_dot_kernel, memory_order_relaxed)(a, b, count);
}

/// Σ (a_i − b_i)² over `count` floats. Pointers need no alignment.
static inline float domicile_squared_l2(const float *a, const float *b, size_t count) {
    return atomic_load_explicit(&domicile_squared_l2_kernel, memory_order_relaxed)(a, b, count);
}

/// The dot kernel in use, for a caller that loads it once and calls it many
/// times (a graph search: one load per search instead of one per distance).
static inline domicile_distance_fn domicile_dot_function(void) {
    return atomic_load_explicit(&domicile_dot_kernel, memory_order_relaxed);
}

/// The squared-L2 kernel in use (as `domicile_dot_function`).
static inline domicile_distance_fn domicile_squared_l2_function(void) {
    return atomic_load_explicit(&domicile_squared_l2_kernel, memory_order_relaxed);
}

/// Whether this build and this CPU (and its operating system, for the wider
/// registers' state) can run `level`.
int domicile_vectors_level_supported(int level);

/// The level in use.
int domicile_vectors_level(void);

/// The best level this CPU supports (what the constructor chose).
int domicile_vectors_best_level(void);

/// A level's name for logs and benchmark output ("avx2+fma"), or "unknown".
const char *domicile_vectors_level_name(int level);

/// Switches every caller to `level`; returns 0 if it is not supported (and
/// changes nothing). For tests and benchmarks: calls already in flight
/// finish on the old kernels.
int domicile_vectors_set_level(int level);

/// One level's kernels, without switching (tests and benchmarks compare
/// them side by side). Null if `level` is not supported.
domicile_distance_fn domicile_vectors_dot_at(int level);
domicile_distance_fn domicile_vectors_squared_l2_at(int level);

#ifdef __cplusplus
}
#endif

#endif
