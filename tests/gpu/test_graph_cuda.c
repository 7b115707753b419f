/* tests/gpu/test_graph_cuda.c — the device-resident speculative step
 * replayed as a CUDA graph against the same step run eagerly: greedy and
 * sampled Token Recycling and plain decoding on stories260K must give
 * bit-identical ids, KV cache contents and recycling tables (docs/DESIGN.md,
 * "The speculative step as a CUDA graph").
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

static void run(deco_model_t *m, deco_test_source_t source, float temperature, int steps, int graph,
                deco_test_outcome_t *o) {
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = steps;
  c.temperature = temperature;
  c.top_p = 0.9f;
  c.seed = 11;
  c.ignore_eos = 1;
  c.device_resident = 1;
  c.graph = graph;
  deco_test_outcome_run(m, source, c, o);
}

static void check(deco_test_source_t source, float temperature, int steps) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx);
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_BF16);
  static deco_test_outcome_t eager, graphed;
  run(m, source, temperature, steps, 0, &eager);
  run(m, source, temperature, steps, 1, &graphed);
  fprintf(stderr, "%s T=%.1f: eager %d tokens / %d forwards, graphed %d / %d\n",
          source == DECO_TEST_RECYCLE ? "recycle" : "plain", temperature, eager.stats.tokens, eager.stats.forwards,
          graphed.stats.tokens, graphed.stats.forwards);
  /* The graphed run really captured a step and replayed it. */
  cr_assert_eq(eager.stats.capture_seconds, 0.0, "the eager run captured a graph");
  cr_assert_gt(graphed.stats.capture_seconds, 0.0, "no graph was captured");
  cr_assert_gt(graphed.stats.forwards, 2, "too few steps to replay the graph");
  deco_test_outcome_same(&graphed, &eager);
  cr_assert_eq(eager.stats.forwards, graphed.stats.forwards);
  deco_test_outcome_free(&eager);
  deco_test_outcome_free(&graphed);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* small_*: few steps, for the sanitizers. */
Test(graph_cuda, small_plain_greedy, .timeout = 120) { check(DECO_TEST_PLAIN, 0.0f, 24); }
Test(graph_cuda, small_recycle_greedy, .timeout = 120) { check(DECO_TEST_RECYCLE, 0.0f, 24); }
Test(graph_cuda, plain_greedy, .timeout = 120) { check(DECO_TEST_PLAIN, 0.0f, 250); }
Test(graph_cuda, recycle_greedy, .timeout = 120) { check(DECO_TEST_RECYCLE, 0.0f, 250); }
Test(graph_cuda, recycle_sampled, .timeout = 120) { check(DECO_TEST_RECYCLE, 0.7f, 250); }

/* stories260K with every RMSNorm weight at 3e38 (deco_test_stories_overflow):
 * the first forward's logits are not finite. The graphed loop must stop
 * with DECO_STATUS_NON_FINITE naming position 0 (the prompt is BOS), eager
 * and graphed, greedy and sampled, plain and Token Recycling, in f32 and
 * bf16. */
Test(graph_cuda, non_finite_logits_stop_the_device_loop, .timeout = 120) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx);
  size_t size;
  void *w = deco_test_stories_overflow(&size);
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  const deco_dtype_t dts[2] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
  for (int di = 0; di < 2; ++di) {
    deco_model_t *m;
    deco_model_config_t mcfg = DECO_MODEL_CONFIG_INIT;
    mcfg.dtype = dts[di];
    cr_assert_eq(deco_model_load_llama2c_buffer(ctx, w, size, "overflow.bin", &mcfg, &m), DECO_STATUS_SUCCESS,
                 "%s", deco_last_error(ctx));
    for (int src = 0; src < 2; ++src)
      for (int graph = 0; graph < 2; ++graph)
        for (int hot = 0; hot < 2; ++hot) {
          deco_recycler_t *rec;
          cr_assert_eq(deco_recycler_create(ctx, 512, 8, &rec), DECO_STATUS_SUCCESS);
          deco_test_capture_t ids = {.n = 0};
          deco_generate_config_t c = {.steps = 40, .temperature = hot ? 0.7f : 0.0f, .top_p = 0.9f, .seed = 5,
                                      .ignore_eos = 1, .emit = deco_test_capture_id, .user = &ids,
                                      .device_resident = 1, .graph = graph,
                                      .size = sizeof(deco_generate_config_t)};
          deco_drafter_t *drafter = deco_test_drafter(src ? DECO_TEST_RECYCLE : DECO_TEST_PLAIN, rec, &tmpl);
          c.drafter = drafter;
          deco_generate_stats_t st;
          int32_t bos = 1;
          deco_status_t s = deco_generate(m, &bos, 1, &c, &st);
          cr_assert_eq(s, DECO_STATUS_NON_FINITE, "%s %s graph=%d T=%s: %s (%s)", deco_dtype_name(dts[di]),
                       src ? "recycle" : "plain", graph, hot ? "0.7" : "0", deco_status_string(s),
                       deco_last_error(ctx));
          cr_assert(strstr(deco_last_error(ctx), "non-finite logits at position 0") != NULL, "%s",
                    deco_last_error(ctx));
          deco_drafter_destroy(drafter);
          deco_recycler_destroy(rec);
        }
    deco_model_destroy(m);
  }
  free(w);
  deco_ctx_destroy(ctx);
}
