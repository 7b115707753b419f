/* tests/gpu/test_plan_cuda.c — the plan before capture, on the GPU: once
 * the device-resident step is planned (deco_device_step_create), capturing
 * it allocates nothing (the context's allocation count, library-private:
 * linked with deco_internal), and neither does deco_generate's graphed loop
 * after its plan (stats.step_allocations); a capture during which an op
 * fails ends without a graph and keeps that op's error; and a first step
 * captured without an eager warm-up gives the ids and KV of the eager loop
 * bit for bit (what would allow deco_generate to drop its eager first step);
 * a held plan refuses growth (deco_model_hold_plan).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../host/core/internal.h"
#include "../../host/spec/device_step.h"
#include "gpu_suite.h"

DECO_GPU_SUITE(plan_cuda, 300);

#define STEPS 120

typedef struct outcome {
  int32_t ids[STEPS + 1];
  int n_ids;
  void *k, *v; /* host copies of the pools */
  size_t kv_bytes;
  size_t capture_allocs;
} outcome_t;

/* One generation from {BOS, 403, 407} with the private step: eager steps
 * until done (capture_first 0), or the first step captured at once and
 * replayed until done (1). */
static void run(deco_model_t *m, int recycle, float temperature, int capture_first, outcome_t *o) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  deco_recycler_t *rec;
  cr_assert_eq(deco_recycler_create(ctx, 512, 8, &rec), DECO_STATUS_SUCCESS);
  deco_drafter_t *drafter = deco_test_drafter(recycle ? DECO_TEST_RECYCLE : DECO_TEST_PLAIN, rec, &tmpl);
  deco_kv_cache_t *kc;
  int seq;
  cr_assert_eq(deco_kv_cache_create(m, 16, 32, 1, &kc), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, 400, &seq), DECO_STATUS_SUCCESS);
  void *k, *v;
  cr_assert_eq(deco_kv_cache_pools(kc, &k, &v, &o->kv_bytes), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memset(ctx, k, 0x7f, o->kv_bytes), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memset(ctx, v, 0x7f, o->kv_bytes), DECO_STATUS_SUCCESS);
  static const int32_t prompt[3] = {1, 403, 407};
  int n_forced = 2;
  const deco_device_step_config_t sc = {.model = m, .cache = kc, .seq = seq, .drafter = drafter, .steps = STEPS,
                                        .temperature = temperature, .top_k = 0, .top_p = 0.9f, .seed = 11,
                                        .stop_ids = NULL, .n_stop_ids = 0, .max_prefill = n_forced};
  deco_device_step_t *step;
  cr_assert_eq(deco_device_step_create(&sc, &step), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  float *logits;
  cr_assert_eq(deco_malloc(ctx, (void **)&logits, sizeof(float) * 512), DECO_STATUS_SUCCESS);
  deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &n_forced, .tokens = prompt,
                            .logits_mode = DECO_LOGITS_LAST, .logits = logits};
  cr_assert_eq(deco_forward(m, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_device_step_start(step, n_forced, prompt[n_forced]), DECO_STATUS_SUCCESS);
  deco_spec_state_t s = {0};
  if (capture_first) {
    const size_t before = deco_ctx_alloc_count(ctx);
    deco_graph_t *graph = NULL;
    cr_assert_eq(deco_graph_capture_begin(ctx), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    const deco_status_t enqueued = deco_device_step_enqueue(step);
    const deco_status_t ended = deco_graph_capture_end(ctx, &graph);
    cr_assert_eq(enqueued, DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    cr_assert_eq(ended, DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    o->capture_allocs = deco_ctx_alloc_count(ctx) - before;
    for (int r = 0; r < STEPS && !s.done; ++r) {
      cr_assert_eq(deco_graph_replay(ctx, graph, 1), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
      cr_assert_eq(deco_device_step_state(step, &s), DECO_STATUS_SUCCESS);
    }
    deco_graph_destroy(graph);
  } else {
    for (int r = 0; r < STEPS && !s.done; ++r) {
      cr_assert_eq(deco_device_step_enqueue(step), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
      cr_assert_eq(deco_device_step_state(step, &s), DECO_STATUS_SUCCESS);
    }
  }
  cr_assert(s.done, "the run did not end");
  const int32_t *ids;
  cr_assert_eq(deco_device_step_finish(step, &ids, &o->n_ids), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  memcpy(o->ids, ids, sizeof(int32_t) * (size_t)o->n_ids);
  o->k = malloc(o->kv_bytes);
  o->v = malloc(o->kv_bytes);
  cr_assert_eq(deco_memcpy(ctx, o->k, k, o->kv_bytes, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memcpy(ctx, o->v, v, o->kv_bytes, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS);
  deco_free(ctx, logits);
  deco_device_step_destroy(step);
  deco_kv_cache_destroy(kc);
  deco_drafter_destroy(drafter);
  deco_recycler_destroy(rec);
}

static void check_first_capture(deco_dtype_t dtype, int recycle, float temperature) {
  /* A fresh model for each: the first capture meets buffers the plan made
   * and nothing a previous run warmed up. */
  deco_model_t *eager_model = deco_test_load_stories(gpu, dtype), *graph_model = deco_test_load_stories(gpu, dtype);
  static outcome_t eager, graphed;
  run(graph_model, recycle, temperature, 1, &graphed);
  run(eager_model, recycle, temperature, 0, &eager);
  fprintf(stderr, "%s %s T=%.1f: %d ids, %zu allocations while capturing the first step\n", deco_dtype_name(dtype),
          recycle ? "recycle" : "plain", temperature, graphed.n_ids, graphed.capture_allocs);
  cr_assert_eq(graphed.capture_allocs, 0, "the capture allocated %zu times after the plan", graphed.capture_allocs);
  cr_assert_eq(graphed.n_ids, eager.n_ids, "%d vs %d ids", graphed.n_ids, eager.n_ids);
  cr_assert_eq(memcmp(graphed.ids, eager.ids, sizeof(int32_t) * (size_t)eager.n_ids), 0, "ids differ");
  cr_assert_eq(memcmp(graphed.k, eager.k, eager.kv_bytes), 0, "K differs");
  cr_assert_eq(memcmp(graphed.v, eager.v, eager.kv_bytes), 0, "V differs");
  free(eager.k), free(eager.v), free(graphed.k), free(graphed.v);
  deco_model_destroy(eager_model);
  deco_model_destroy(graph_model);
}

Test(plan_cuda, first_step_captured_without_warmup_plain_bf16) { check_first_capture(DECO_DTYPE_BF16, 0, 0.0f); }
Test(plan_cuda, first_step_captured_without_warmup_recycle_bf16) { check_first_capture(DECO_DTYPE_BF16, 1, 0.0f); }
Test(plan_cuda, first_step_captured_without_warmup_recycle_f32) { check_first_capture(DECO_DTYPE_F32, 1, 0.0f); }
Test(plan_cuda, first_step_captured_without_warmup_recycle_sampled) { check_first_capture(DECO_DTYPE_BF16, 1, 0.7f); }

/* deco_generate's graphed loop: nothing allocated after its plan. */
Test(plan_cuda, graphed_generate_allocates_nothing_after_the_plan) {
  deco_model_t *m = deco_test_load_stories(gpu, DECO_DTYPE_BF16);
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  for (int src = 0; src < 2; ++src) {
    deco_recycler_t *rec;
    cr_assert_eq(deco_recycler_create(gpu, 512, 8, &rec), DECO_STATUS_SUCCESS);
    deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
    c.steps = 200;
    c.temperature = 0.0f;
    c.ignore_eos = 1;
    c.drafter = deco_test_drafter(src ? DECO_TEST_RECYCLE : DECO_TEST_PLAIN, rec, &tmpl);
    c.device_resident = 1;
    c.graph = 1;
    const int32_t bos = 1;
    deco_generate_stats_t st;
    cr_assert_eq(deco_generate(m, &bos, 1, &c, &st), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    cr_assert_eq(st.step_allocations, 0, "%s: %d allocations after the plan", src ? "recycle" : "plain",
                 st.step_allocations);
    deco_drafter_destroy(c.drafter);
    deco_recycler_destroy(rec);
  }
  deco_model_destroy(m);
}

/* An op that fails while captured: ending the capture gives no graph and
 * the op's own status and message, not the invalidated capture's. */
Test(plan_cuda, a_failure_inside_a_capture_is_the_error_reported) {
  deco_spec_state_t *state;
  cr_assert_eq(deco_malloc(gpu, (void **)&state, sizeof *state), DECO_STATUS_SUCCESS);
  deco_spec_commit_args_t bad = DECO_SPEC_COMMIT_ARGS_INIT;
  bad.state = state;
  bad.n_nodes = 0; /* refused before anything is enqueued */
  cr_assert_eq(deco_graph_capture_begin(gpu), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  const deco_status_t op = deco_spec_commit(gpu, &bad);
  deco_graph_t *graph = (deco_graph_t *)0x1;
  const deco_status_t ended = deco_graph_capture_end(gpu, &graph);
  cr_assert_eq(op, DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(ended, DECO_STATUS_INVALID_ARGUMENT, "capture_end: %s (%s)", deco_status_string(ended),
               deco_last_error(gpu));
  cr_assert_null(graph);
  cr_assert(strstr(deco_last_error(gpu), "deco_spec_commit") != NULL, "the op's message is kept: %s",
            deco_last_error(gpu));
  /* The stream is usable again, and a clean capture works. */
  cr_assert_eq(deco_graph_capture_begin(gpu), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  cr_assert_eq(deco_memset(gpu, state, 0, sizeof *state), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_graph_capture_end(gpu, &graph), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  cr_assert_not_null(graph);
  deco_graph_destroy(graph);
  deco_free(gpu, state);
}

/* A held plan on the GPU (tests/common's check, as on the CPU): growth is
 * refused before it frees what a captured graph could still use. */
Test(plan_cuda, held_plan_refuses_growth) { deco_test_held_plan(gpu); }
