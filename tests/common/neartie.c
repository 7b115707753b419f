/* tests/common/neartie.c — see neartie.h. */
#include "common/neartie.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/tolerances.h"
#include "common/topk.h"
#include "deco/deco.h"

deco_top2_t deco_test_top2(const float *logits, int n) {
  deco_top2_t t = {-1, -1, INFINITY};
  for (int i = 0; i < n; ++i) {
    if (t.first < 0 || logits[i] > logits[t.first]) {
      t.second = t.first;
      t.first = i;
    } else if (t.second < 0 || logits[i] > logits[t.second]) {
      t.second = i;
    }
  }
  if (t.first >= 0 && t.second >= 0) t.gap = logits[t.first] - logits[t.second];
  return t;
}

float deco_test_bf16_step(float x) {
  float a = fabsf(x);
  if (!(a > 0.0f) || isinf(a)) return ldexpf(1.0f, -133); /* smallest bf16 subnormal spacing */
  int e;
  frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1): leading bit at 2^(e-1) */
  return ldexpf(1.0f, e - 1 - 7); /* bf16 keeps 7 fraction bits */
}

static float f16_step(float x) {
  float a = fabsf(x);
  int e;
  frexpf(a > 6.1e-5f ? a : 6.1e-5f, &e);
  return ldexpf(1.0f, e - 1 - 10);
}

float deco_test_near_tie_gap(deco_dtype_t dtype, float top) {
  switch (dtype) {
  case DECO_DTYPE_F32: return DECO_TOL_NEAR_TIE_F32;
  case DECO_DTYPE_BF16: return DECO_TOL_NEAR_TIE_BF16_STEPS * deco_test_bf16_step(top);
  case DECO_DTYPE_F16: return DECO_TOL_NEAR_TIE_BF16_STEPS * f16_step(top);
  }
  return 0.0f;
}

int deco_test_is_near_tie(const float *cpu_logits, int n, deco_dtype_t dtype) {
  deco_top2_t t = deco_test_top2(cpu_logits, n);
  if (t.second < 0) return 0;
  return t.gap <= deco_test_near_tie_gap(dtype, cpu_logits[t.first]);
}

int deco_test_excused(const float *cpu_logits, int gpu_argmax, int n, deco_dtype_t dtype) {
  deco_top2_t t = deco_test_top2(cpu_logits, n);
  if (t.second < 0 || gpu_argmax != t.second) return 0;
  return t.gap <= deco_test_near_tie_gap(dtype, cpu_logits[t.first]);
}

float deco_test_bf16_e2e_tol(float scale, int roundings) {
  return (float)roundings * DECO_TOL_BF16_E2E_STEPS_PER_ROUNDING * deco_test_bf16_step(scale);
}

int deco_test_argmax_mismatches(const char *what, const float *gpu, const float *cpu, int n, int V,
                                deco_dtype_t dtype) {
  int bad = 0, excused = 0;
  for (int p = 0; p < n; ++p) {
    const float *g = gpu + (size_t)p * V, *c = cpu + (size_t)p * V;
    int ag = deco_argmax(g, V), ac = deco_argmax(c, V);
    if (ag == ac) continue;
    deco_top2_t t = deco_test_top2(c, V);
    float allowed = deco_test_near_tie_gap(dtype, c[t.first]);
    if (deco_test_excused(c, ag, V, dtype)) {
      excused++;
      fprintf(stderr,
              "%s: position %d: gpu argmax %d = the cpu's runner-up, cpu %d, cpu top-2 gap %.3g <= %.3g "
              "(near tie, excused)\n",
              what, p, ag, ac, t.gap, allowed);
    } else {
      bad++;
      fprintf(stderr,
              "%s: position %d: gpu argmax %d, cpu %d (runner-up %d), cpu top-2 gap %.3g (allowed %.3g): MISMATCH\n",
              what, p, ag, ac, t.second, t.gap, allowed);
    }
  }
  fprintf(stderr, "%s: %d positions, %d near ties excused, %d mismatches\n", what, n, excused, bad);
  return bad;
}

size_t deco_test_logit_mismatches(const char *what, const float *gpu, const float *cpu, int n, int V,
                                  deco_dtype_t dtype, int n_layers, int assert_values) {
  size_t bad = 0;
  int worst_p = -1, worst_i = -1, bad_rows = 0;
  double worst_ratio = -1.0, max_diff = 0.0;
  for (int p = 0; p < n; ++p) {
    const float *g = gpu + (size_t)p * V, *c = cpu + (size_t)p * V;
    float scale = 0.0f;
    for (int i = 0; i < V; ++i)
      if (fabsf(c[i]) > scale) scale = fabsf(c[i]);
    const double row_tol = deco_test_bf16_e2e_tol(scale, 2 * n_layers + 2);
    size_t row_bad = 0;
    for (int i = 0; i < V; ++i) {
      const double d = fabs((double)g[i] - (double)c[i]);
      const double f32_tol = (double)DECO_TOL_FORWARD_F32_ATOL + (double)DECO_TOL_FORWARD_F32_RTOL * fabs((double)c[i]);
      const double tol = dtype == DECO_DTYPE_F32 ? f32_tol : row_tol;
      const double ratio = d / tol;
      if (!(d <= max_diff)) max_diff = d;
      if (!(ratio <= worst_ratio)) { /* a NaN becomes the worst */
        worst_ratio = ratio;
        worst_p = p;
        worst_i = i;
      }
      if (!(d <= tol)) row_bad++;
    }
    if (row_bad && assert_values && bad_rows < 8)
      fprintf(stderr, "%s: position %d: %zu logits outside the tolerance\n", what, p, row_bad);
    if (row_bad) bad_rows++;
    bad += row_bad;
  }
  if (worst_p >= 0) {
    const float gv = gpu[(size_t)worst_p * V + worst_i], cv = cpu[(size_t)worst_p * V + worst_i];
    fprintf(stderr,
            "%s: max |gpu - cpu| logit %.3g; worst against its tolerance: position %d, id %d, gpu %.9g, cpu %.9g, "
            "|diff| %.3g = %.3g x the tolerance (%s)%s\n",
            what, max_diff, worst_p, worst_i, gv, cv, fabs((double)gv - (double)cv), worst_ratio,
            dtype == DECO_DTYPE_F32 ? "f32: atol + rtol |cpu|" : "bf16 end-to-end rule at the row's largest |logit|",
            assert_values ? "" : ", not asserted");
  }
  if (bad && assert_values)
    fprintf(stderr, "%s: %zu logits in %d positions outside the tolerance\n", what, bad, bad_rows);
  return assert_values ? bad : 0;
}

static int pick_ok(const float *cpu, int pick, int V, deco_dtype_t dtype) {
  return pick == deco_argmax(cpu, V) || deco_test_excused(cpu, pick, V, dtype);
}

int deco_test_split_excused(const char *what, deco_model_t *cpu_model, const int32_t *plain, const int32_t *spec,
                            int n, deco_dtype_t dtype) {
  int first = -1;
  for (int i = 0; i < n && first < 0; ++i)
    if (plain[i] != spec[i]) first = i;
  if (first < 0) {
    fprintf(stderr, "%s: identical to plain greedy decoding over %d positions\n", what, n - 1);
    return first;
  }
  cr_assert_gt(first, 0, "%s: the prompt id differs", what);
  const int V = deco_model_get_hparams(cpu_model)->vocab_size;
  float *c = deco_test_last_logits(cpu_model, plain, first);
  const deco_top2_t t = deco_test_top2(c, V);
  const int a = plain[first], b = spec[first];
  const int ok = pick_ok(c, a, V, dtype) && pick_ok(c, b, V, dtype);
  fprintf(stderr,
          "%s: first difference at position %d (plain %d, speculative %d); cpu f32 argmax %d, runner-up %d, "
          "top-2 gap %.3g, allowed %.3g: %s\n",
          what, first - 1, a, b, t.first, t.second, t.gap, deco_test_near_tie_gap(dtype, c[t.first]),
          ok ? "near tie, one run picked the cpu's argmax and the other its runner-up" : "NOT EXCUSED");
  free(c);
  cr_assert(ok, "%s: speculative and plain greedy decoding split at position %d outside the near-tie rule", what,
            first - 1);
  return first;
}
