/* tests/common/neartie.h — the near-tie rule of docs/TESTING.md: a GPU forward may
 * pick a different argmax than the CPU only where the CPU's top-2 logits are
 * this close. */
#ifndef DECO_TESTS_NEARTIE_H
#define DECO_TESTS_NEARTIE_H

#include <stddef.h>
#include <stdint.h>

#include "deco/core.h"
#include "deco/model.h"

/* Top-2 of logits [n] (ties -> lower index first): indices and gap top1 - top2. */
typedef struct deco_top2 {
  int first, second;
  float gap;
} deco_top2_t;
deco_top2_t deco_test_top2(const float *logits, int n);

/* Spacing of bf16 values at the magnitude of x (one "bf16 step"). */
float deco_test_bf16_step(float x);

/* Allowed gap for dtype: DECO_TOL_NEAR_TIE_F32 for f32; for bf16 and f16,
 * DECO_TOL_NEAR_TIE_BF16_STEPS steps at top's magnitude (f16 uses its own step). */
float deco_test_near_tie_gap(deco_dtype_t dtype, float top);

/* 1 if a different argmax than cpu_logits' own is excusable: the CPU top-2
 * gap is within deco_test_near_tie_gap. */
int deco_test_is_near_tie(const float *cpu_logits, int n, deco_dtype_t dtype);

/* The near-tie excuse (docs/TESTING.md, tolerances.h): a GPU pick gpu_argmax
 * that is not the CPU's argmax is excused only where the CPU's top-2 gap is
 * within deco_test_near_tie_gap AND gpu_argmax is the CPU's runner-up
 * (deco_test_top2 order). 1 if excused; 0 otherwise, and 0 when gpu_argmax
 * is the CPU's argmax (nothing to excuse). */
int deco_test_excused(const float *cpu_logits, int gpu_argmax, int n, deco_dtype_t dtype);

/* bf16 end-to-end value tolerance: roundings * DECO_TOL_BF16_E2E_STEPS_PER_ROUNDING
 * bf16 steps at the magnitude of scale (tolerances.h). */
float deco_test_bf16_e2e_tol(float scale, int roundings);

/* Argmaxes of gpu logits [n][V] against the CPU's [n][V] under the near-tie
 * rule: a difference is excused only where deco_test_excused excuses it.
 * Prints every difference and a summary line starting with what; returns
 * the number of unexcused differences. */
int deco_test_argmax_mismatches(const char *what, const float *gpu, const float *cpu, int n, int V,
                                deco_dtype_t dtype);

/* Logit values of gpu [n][V] against the CPU's at every position: f32 within
 * DECO_TOL_FORWARD_F32_ATOL + _RTOL * |cpu|; bf16 within the end-to-end
 * rule (deco_test_bf16_e2e_tol) at the row's largest |cpu logit| with
 * 2 * n_layers + 2 roundings (tolerances.h). Prints the largest difference
 * and the worst element against its tolerance (position, id, both values),
 * and the first failing positions; returns the number of failing elements,
 * or 0 when assert_values is 0 (then only printed). */
size_t deco_test_logit_mismatches(const char *what, const float *gpu, const float *cpu, int n, int V,
                                  deco_dtype_t dtype, int n_layers, int assert_values);

/* The first-difference rule of docs/TESTING.md for a speculative run
 * against plain greedy decoding on the same backend and dtype: the first
 * position where plain[0..n) and spec[0..n) differ (-1 if none; printed).
 * Both runs produced ids[first] by the forward at position first - 1 after
 * the prefix they share; the referee is the CPU's f32 model cpu_model,
 * teacher-forced on plain[0..first) (one forward, its last row): each pick
 * must be the CPU's argmax or excused (deco_test_excused). Asserts first > 0
 * and the rule, naming what; prints the split. Returns first. */
int deco_test_split_excused(const char *what, deco_model_t *cpu_model, const int32_t *plain, const int32_t *spec,
                            int n, deco_dtype_t dtype);

#endif
