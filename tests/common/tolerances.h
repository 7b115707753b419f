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

/* CPU f32 forward on GGUF weights vs the float64 reference
 * (data/fixtures/gguf/NAME.topk, scripts/gguf/reference.py): both run on the
 * same dequantised weights (deco_dequant is bitwise the gguf package's), so
 * only the arithmetic differs: fp32 rounding and summation order against
 * float64, carried through up to 30 layers (SmolLM2-135M) and a 49152-row
 * classifier whose logits reach ~30. Every stored top-16 logit must satisfy
 * |a - r| <= DECO_TOL_GGUF_REF * (1 + |r|); the argmax must be the
 * reference's except where the reference's top-2 gap is at most
 * DECO_TOL_GGUF_REF_NEAR_TIE and the pick is its runner-up. Measured with
 * the reference matmul: max |a - r| 7.7e-5 on SmolLM2-135M (144 positions,
 * 0.008 of the tolerance), 4.0e-5 on its 3-layer mini, 4.7e-6 on the tiny
 * files; no argmax differs. A real bug moves logits by far more (the
 * half-split RoPE pairing: up to 25). */
#define DECO_TOL_GGUF_REF 1e-3
#define DECO_TOL_GGUF_REF_NEAR_TIE 1e-3

/* CUDA f32 forward vs CPU: argmax may differ only where the CPU top-2 gap is
 * at most this (cuBLAS with CUBLAS_COMPUTE_32F, no TF32). */
#define DECO_TOL_NEAR_TIE_F32 1e-3f
/* CUDA bf16 forward vs CPU: argmax may differ only where the CPU top-2 gap is
 * at most this many bf16 steps at the top logit's magnitude. */
#define DECO_TOL_NEAR_TIE_BF16_STEPS 2

/* A GPU argmax that differs from the CPU's is excused only where the CPU's
 * top-2 gap is within the allowance above AND the GPU picked the CPU's
 * runner-up (deco_test_excused, common/neartie.h); a pick further down the
 * CPU's ranking is a mismatch however close the values are. */

/* CUDA f32 forward vs CPU forward, logit and K/V values end to end (stories260K:
 * 5 layers of dim 64, teacher-forced): fp32 on both sides, only the summation
 * order of every reduction differs (cuBLAS, the attention kernels). The per-op
 * reduction tolerance carried through the whole forward: an fp32 emulation of
 * stories260K with blocked, reversed sums moves logits by <= 2.2e-5 (a tenth
 * of this tolerance at the worst element) and K/V by <= 1.4e-5; a real bug
 * moves them by >= 1e-3. |gpu - cpu| <= atol + rtol * |cpu|, NaN fails. */
#define DECO_TOL_FORWARD_F32_ATOL DECO_TOL_F32_REDUCTION
#define DECO_TOL_FORWARD_F32_RTOL DECO_TOL_F32_REDUCTION

/* CUDA bf16 forward vs the CPU's f32 forward, values end to end (logits,
 * K/V). The bf16 model is a different model: its weights and every activation
 * but the f32 residual stream are rounded to bf16, so neither the per-op
 * DECO_TOL_BF16 (same rounded inputs on both sides) nor the 2-step near-tie
 * window bounds its values (an fp32 emulation of those roundings on
 * stories260K moves logits by up to 0.42 = 5.2 bf16 steps at the row's
 * largest |logit|). Rule: each bf16 rounding on the path into a value adds at
 * most this many bf16 steps (deco_test_bf16_step) at the scale of the tensor
 * rounded, so a value behind r roundings may differ by r times that at its
 * scale (deco_test_bf16_e2e_tol). Roundings: the embedding row, the two
 * sublayer outputs of every earlier layer, then logits: the final RMSNorm
 * (2 * n_layers + 2); K of layer l: RMSNorm, QKV, RoPE (2 * l + 4); V of
 * layer l: RMSNorm, QKV (2 * l + 3). Scales: a logit row's largest |logit|;
 * a layer's largest |K| (|V|) over the slots compared. The emulation uses at
 * most 0.44 of this (logits 5.2 of 12 steps, K 1.7 of 8, V 3.4 of 11). */
#define DECO_TOL_BF16_E2E_STEPS_PER_ROUNDING 1

/* Per-op CUDA vs reference, |a - r| <= atol + rtol * |r| (NaN fails). */
#define DECO_TOL_F32_ELEMENTWISE 1e-5f /* atol = rtol */
#define DECO_TOL_F32_REDUCTION 1e-4f   /* atol = rtol */
#define DECO_TOL_F16 1e-3f             /* atol = rtol, reference fed the same rounded inputs */
#define DECO_TOL_BF16 1e-2f            /* atol = rtol, reference fed the same rounded inputs */

/* A fused layer group (norm weights folded into the stacked Q/K/V weights)
 * vs the group formula composed from the public ops, CPU f32, logits and
 * K/V: one f32 rounding moves from every normalised input to every weight,
 * a per-op perturbation of the size of a changed summation order, carried
 * through the rest of the forward, which DECO_TOL_F32_REDUCTION bounds
 * (tests/test_layer_fused.c). |a - r| <= atol + rtol * |r|. */
#define DECO_TOL_FUSED_GROUP_F32 DECO_TOL_F32_REDUCTION

/* Stochastic decisions: a CPU/GPU difference is excused only where a sum
 * lands this close to a threshold (counted and printed). */
#define DECO_TOL_THRESHOLD 1e-6f

/* Lossless sampling tests: chi-square significance (Bonferroni over cases). */
#define DECO_TEST_ALPHA 1e-3

#endif
