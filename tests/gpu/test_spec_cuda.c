/* tests/gpu/test_spec_cuda.c — speculative decoding on the GPU equals plain
 * decoding under the near-tie rule (docs/TESTING.md): greedy prompt lookup and
 * Token Recycling on stories260K, f32 and bf16, are compared with plain
 * greedy decoding on the same backend and dtype up to the first differing
 * id. There the two GPU runs picked different ids after the same prefix; the
 * referee is the CPU's f32 forward teacher-forced on that prefix: one pick
 * must be the CPU's argmax and the other its runner-up, with the CPU's top-2
 * gap within the near-tie allowance (deco_test_excused), or the test fails.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/neartie.h"
#include "common/testutil.h"

static void generate(deco_model_t *m, deco_test_source_t source, deco_recycler_t *rec,
                     const deco_tree_template_t *tmpl, deco_test_capture_t *out) {
  deco_drafter_t *drafter = deco_test_drafter(source, rec, tmpl);
  deco_generate_config_t c = {
      .size = sizeof(deco_generate_config_t),
      .steps = 256,
      .temperature = 0.0f,
      .top_p = 1.0f,
      .ignore_eos = 1,
      .drafter = drafter,
      .emit = deco_test_capture_id,
      .user = out,
  };
  out->n = 0;
  int32_t bos = 1;
  deco_generate_stats_t st;
  cr_assert_eq(deco_generate(m, &bos, 1, &c, &st), DECO_STATUS_SUCCESS, "%s", deco_last_error(deco_model_ctx(m)));
  deco_drafter_destroy(drafter);
  cr_assert_eq(out->n, 257);
}

static void check(deco_dtype_t dtype) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx);
  deco_ctx_t *cpu = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, dtype);
  deco_model_t *mc = deco_test_load_stories(cpu, DECO_DTYPE_F32);
  const int V = deco_model_get_hparams(m)->vocab_size;
  deco_recycler_t *rec;
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_recycler_create(ctx, V, DECO_RECYCLE_DEFAULT_K, &rec), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  static deco_test_capture_t plain, spec;
  generate(m, DECO_TEST_PLAIN, NULL, NULL, &plain);
  const char *names[2] = {"lookup", "recycle"};
  deco_test_source_t sources[2] = {DECO_TEST_LOOKUP, DECO_TEST_RECYCLE};
  for (int s = 0; s < 2; ++s) {
    cr_assert_eq(deco_recycler_reset(rec), DECO_STATUS_SUCCESS);
    generate(m, sources[s], rec, &tmpl, &spec);
    char what[64];
    snprintf(what, sizeof what, "%s %s", names[s], deco_dtype_name(dtype));
    deco_test_split_excused(what, mc, plain.ids, spec.ids, 257, dtype);
  }
  deco_recycler_destroy(rec);
  deco_model_destroy(mc);
  deco_model_destroy(m);
  deco_ctx_destroy(cpu);
  deco_ctx_destroy(ctx);
}

Test(spec_cuda, greedy_equals_plain_f32, .timeout = 120) { check(DECO_DTYPE_F32); }
Test(spec_cuda, greedy_equals_plain_bf16, .timeout = 120) { check(DECO_DTYPE_BF16); }
