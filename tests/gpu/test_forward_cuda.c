/* tests/gpu/test_forward_cuda.c — the CUDA forward of stories260K in f32 and
 * bf16, teacher-forced on the fixture ids, against the CPU forward: at every
 * position the argmax must agree, except where the CPU's top-2 logits are a
 * near tie and the GPU picked the CPU's runner-up (docs/TESTING.md); every
 * exception is printed with its gap. On stories260K every logit value is
 * bounded too (f32: DECO_TOL_FORWARD_F32_*; bf16: the end-to-end bf16 rule;
 * tests/common/tolerances.h), the worst position printed. Both the batched
 * prefill path and the one-token decode path are checked, and the synthetic
 * tiny model (same seeded weights on both backends) too.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/neartie.h"
#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/topk.h"

/* Argmax agreement under the near-tie rule: a difference is excused only
 * where the CPU's top-2 gap is within the allowance AND the GPU picked the
 * CPU's runner-up (deco_test_excused). Returns the number of unexcused
 * differences (and prints every excused one). */
static int compare_argmax(const char *what, const float *gpu, const float *cpu, int n, int V, deco_dtype_t dtype) {
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

/* Logit values at every position: f32 within DECO_TOL_FORWARD_F32_ATOL +
 * _RTOL * |cpu|; bf16 within the end-to-end bf16 rule at the row's largest
 * |cpu logit| (2 * n_layers + 2 roundings; tolerances.h). Prints the largest
 * difference and the worst element against its tolerance (position, id,
 * both values), and the first failing positions; returns the number of
 * failing elements, or 0 when assert_values is 0 (then only printed). */
static size_t compare_values(const char *what, const float *gpu, const float *cpu, int n, int V, deco_dtype_t dtype,
                             int n_layers, int assert_values) {
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

/* check_values: also bound every logit value (the tolerances are derived for
 * stories260K; the synthetic model's maximum is only printed). */
static void check_model(const char *label, const char *path, const char *synthetic, const int32_t *ids, int n,
                        int check_values) {
  deco_ctx_t *cpu = deco_test_cpu_ctx();
  deco_ctx_t *gpu = deco_test_cuda_ctx();
  cr_assert_not_null(gpu);
  deco_model_t *mc;
  deco_status_t st = path ? deco_model_load_llama2c(cpu, path, NULL, &mc)
                          : deco_model_create_synthetic(cpu, synthetic, DECO_SYNTHETIC_SEED, NULL, &mc);
  cr_assert_eq(st, DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
  const int V = deco_model_get_hparams(mc)->vocab_size, n_layers = deco_model_get_hparams(mc)->n_layers;
  float *ref = deco_test_teacher_forced(mc, ids, n, 0);
  deco_dtype_t dtypes[2] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
  int bad = 0;
  size_t bad_values = 0;
  for (int d = 0; d < 2; ++d) {
    deco_model_t *mg;
    deco_model_config_t mcfg = DECO_MODEL_CONFIG_INIT;
    mcfg.dtype = dtypes[d];
    st = path ? deco_model_load_llama2c(gpu, path, &mcfg, &mg)
              : deco_model_create_synthetic(gpu, synthetic, DECO_SYNTHETIC_SEED, &mcfg, &mg);
    cr_assert_eq(st, DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    for (int prefill = 0; prefill < 2; ++prefill) {
      char what[128];
      snprintf(what, sizeof what, "%s %s %s", label, deco_dtype_name(dtypes[d]), prefill ? "prefill" : "decode");
      float *out = deco_test_teacher_forced(mg, ids, n, prefill);
      bad += compare_argmax(what, out, ref, n, V, dtypes[d]);
      bad_values += compare_values(what, out, ref, n, V, dtypes[d], n_layers, check_values);
      free(out);
    }
    deco_model_destroy(mg);
  }
  cr_assert_eq(bad, 0, "%d argmax mismatches outside near ties", bad);
  cr_assert_eq(bad_values, 0, "%zu logit values outside the tolerance (worst position printed above)", bad_values);
  free(ref);
  deco_model_destroy(mc);
  deco_ctx_destroy(gpu);
  deco_ctx_destroy(cpu);
}

Test(forward_cuda, stories260K_teacher_forced, .timeout = 300) {
  int n;
  int32_t *ids = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/greedy_bos_256.ids"), &n);
  cr_assert(ids && n == 257);
  check_model("stories260K", deco_test_data_file("models/stories260K.bin"), NULL, ids, 256, 1);
  free(ids);
}

Test(forward_cuda, synthetic_tiny_teacher_forced, .timeout = 300) {
  int32_t ids[96];
  for (int i = 0; i < 96; ++i) ids[i] = 3 + (i * 37) % 256;
  ids[0] = 1;
  check_model("synthetic:tiny", NULL, "tiny", ids, 96, 0);
}

Test(forward_cuda, synthetic_weights_identical_on_both_backends) {
  /* fill_random is bit-identical: an f32 tiny model's first logits row is
   * equal up to fp32 summation order. */
  deco_ctx_t *cpu = deco_test_cpu_ctx(), *gpu = deco_test_cuda_ctx();
  deco_model_t *mc, *mg;
  cr_assert_eq(deco_model_create_synthetic(cpu, "tiny", DECO_SYNTHETIC_SEED, NULL, &mc), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_model_create_synthetic(gpu, "tiny", DECO_SYNTHETIC_SEED, NULL, &mg), DECO_STATUS_SUCCESS);
  int32_t ids[4] = {1, 40, 41, 42};
  float *a = deco_test_teacher_forced(mc, ids, 4, 1), *b = deco_test_teacher_forced(mg, ids, 4, 1);
  cr_assert_eq(deco_test_compare("tiny logits", b, a, 4 * 259, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
  free(a);
  free(b);
  deco_model_destroy(mc);
  deco_model_destroy(mg);
  deco_ctx_destroy(cpu);
  deco_ctx_destroy(gpu);
}
