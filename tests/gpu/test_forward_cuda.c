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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/neartie.h"
#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/topk.h"

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
      bad += deco_test_argmax_mismatches(what, out, ref, n, V, dtypes[d]);
      bad_values += deco_test_logit_mismatches(what, out, ref, n, V, dtypes[d], n_layers, check_values);
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

/* The threads communicator carries host buffers: a model on a CUDA context
 * refuses it (its all-reduce would copy device pointers on the host), and a
 * layer-group view over it too; the same communicator on the CPU is taken. */
Test(forward_cuda, host_communicator_refused_on_a_cuda_context) {
  deco_ctx_t *gpu = deco_test_cuda_ctx(), *cpu = deco_test_cpu_ctx();
  deco_comm_t *comm[1];
  cr_assert_eq(deco_comm_threads_create(1, comm), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.comm = comm[0];
  const char *path = deco_test_data_file("models/stories260K.bin");
  deco_model_t *m = NULL;
  cr_assert_eq(deco_model_load(gpu, path, &mc, &m), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(gpu), "threads communicator carries host buffers") != NULL, "%s",
            deco_last_error(gpu));
  cr_assert_eq(deco_model_load(cpu, path, &mc, &m), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
  deco_model_destroy(m);
  deco_comm_destroy(comm[0]);
  deco_ctx_destroy(cpu);
  deco_ctx_destroy(gpu);
}
