/* tests/common/neartie.c — see neartie.h. */
#include "common/neartie.h"

#include <math.h>

#include "common/tolerances.h"

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
