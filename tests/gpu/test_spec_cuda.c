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
#include <string.h>

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

/* The CPU's logits [V] at position p, teacher-forced on ids[0..p] (one
 * forward of p + 1 tokens on the CPU f32 model). */
static void cpu_logits_at(deco_model_t *m, const int32_t *ids, int p, float *host) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  const int V = deco_model_get_hparams(m)->vocab_size;
  deco_kv_cache_t *kc;
  int seq, n = p + 1;
  float *d;
  cr_assert_eq(deco_kv_cache_create(m, 16, (n + 15) / 16 + 1, 1, &kc), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_kv_cache_admit(kc, n, &seq), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_malloc(ctx, (void **)&d, sizeof(float) * V), DECO_STATUS_SUCCESS);
  deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &n, .tokens = ids, .logits_mode = DECO_LOGITS_LAST,
                            .logits = d};
  cr_assert_eq(deco_forward(m, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_memcpy(ctx, host, d, sizeof(float) * V, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS);
  deco_free(ctx, d);
  deco_kv_cache_destroy(kc);
}

/* A GPU pick is fine if it is the CPU's argmax, or excused. */
static int pick_ok(const float *cpu, int pick, int V, deco_dtype_t dtype) {
  return pick == deco_argmax(cpu, V) || deco_test_excused(cpu, pick, V, dtype);
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
  float *c = malloc(sizeof(float) * (size_t)V);
  for (int s = 0; s < 2; ++s) {
    cr_assert_eq(deco_recycler_reset(rec), DECO_STATUS_SUCCESS);
    generate(m, sources[s], rec, &tmpl, &spec);
    int first = -1;
    for (int i = 0; i < 257 && first < 0; ++i)
      if (plain.ids[i] != spec.ids[i]) first = i;
    if (first < 0) {
      fprintf(stderr, "%s %s: identical to plain greedy decoding over 256 positions\n", names[s],
              deco_dtype_name(dtype));
      continue;
    }
    cr_assert_gt(first, 0, "the prompt id differs");
    /* ids[first] is produced by the forward at position first - 1, after
     * the prefix ids[0..first - 1] that both runs share. */
    cpu_logits_at(mc, plain.ids, first - 1, c);
    deco_top2_t t = deco_test_top2(c, V);
    const int a = plain.ids[first], b = spec.ids[first];
    int ok = pick_ok(c, a, V, dtype) && pick_ok(c, b, V, dtype);
    fprintf(stderr,
            "%s %s: first difference at position %d (plain %d, speculative %d); cpu f32 argmax %d, runner-up %d, "
            "top-2 gap %.3g, allowed %.3g: %s\n",
            names[s], deco_dtype_name(dtype), first - 1, a, b, t.first, t.second, t.gap,
            deco_test_near_tie_gap(dtype, c[t.first]),
            ok ? "near tie, one run picked the cpu's argmax and the other its runner-up" : "NOT EXCUSED");
    cr_assert(ok, "%s: speculative and plain greedy decoding split at position %d outside the near-tie rule",
              names[s], first - 1);
  }
  free(c);
  deco_recycler_destroy(rec);
  deco_model_destroy(mc);
  deco_model_destroy(m);
  deco_ctx_destroy(cpu);
  deco_ctx_destroy(ctx);
}

Test(spec_cuda, greedy_equals_plain_f32, .timeout = 120) { check(DECO_DTYPE_F32); }
Test(spec_cuda, greedy_equals_plain_bf16, .timeout = 120) { check(DECO_DTYPE_BF16); }
