/* tests/common/tolerances.h — every tolerance of the test suites, stated
 * once (docs/TESTING.md). They come from the numerics; never widen one to make a
 * test pass.
 */
#ifndef DECO_TESTS_TOLERANCES_H
#define DECO_TESTS_TOLERANCES_H

/* CPU forward vs the llama2.c fixtures: fp32 summation order alone moves the
 * logits by ~1.4e-5; a real bug moves them by >= 1e-3. */
#define DECO_TOL_FIXTURE_ATOL 1e-4f
#define DECO_TOL_FIXTURE_RTOL 1e-4f

/* CUDA f32 forward vs CPU: argmax may differ only where the CPU top-2 gap is
 * at most this (cuBLAS with CUBLAS_COMPUTE_32F, no TF32). */
#define DECO_TOL_NEAR_TIE_F32 1e-3f
/* CUDA bf16 forward vs CPU: argmax may differ only where the CPU top-2 gap is
 * at most this many bf16 steps at the top logit's magnitude. */
#define DECO_TOL_NEAR_TIE_BF16_STEPS 2

/* Per-op CUDA vs reference, |a - r| <= atol + rtol * |r| (NaN fails). */
#define DECO_TOL_F32_ELEMENTWISE 1e-5f /* atol = rtol */
#define DECO_TOL_F32_REDUCTION 1e-4f   /* atol = rtol */
#define DECO_TOL_F16 1e-3f             /* atol = rtol, reference fed the same rounded inputs */
#define DECO_TOL_BF16 1e-2f            /* atol = rtol, reference fed the same rounded inputs */

/* Stochastic decisions: a CPU/GPU difference is excused only where a sum
 * lands this close to a threshold (counted and printed). */
#define DECO_TOL_THRESHOLD 1e-6f

/* Lossless sampling tests: chi-square significance (Bonferroni over cases). */
#define DECO_TEST_ALPHA 1e-3

#endif
