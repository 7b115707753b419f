/* tests/test_spec_device.c — the device-resident step (deco_spec_prepare /
 * deco_spec_commit around the tree forward, acceptance, compaction and the
 * table update, all state in context memory) run eagerly on the CPU backend:
 * it must decode exactly what the host-driven loop decodes, for plain greedy
 * decoding (one-node trees) and Token Recycling, with the same table at the
 * end; the bookkeeping ops must stop, clip and emit as documented; and
 * once planned, a step (device-resident or the engine's) allocates nothing
 * (the context's allocation count, reached through the library-private
 * headers; linked with deco_internal).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/core/internal.h"
#include "../host/spec/device_step.h"
#include "common/testutil.h"

static void run(deco_model_t *m, deco_generate_config_t c, int device, const int32_t *prompt, int n_prompt,
                deco_test_capture_t *cap, deco_generate_stats_t *st) {
  c.device_resident = device;
  deco_test_generate(m, prompt, n_prompt, c, cap, st);
}

Test(spec_device, eager_device_loop_equals_host_loop, .timeout = 120) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  deco_recycler_t *r1, *r2;
  cr_assert_eq(deco_recycler_create(ctx, 512, 8, &r1), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_recycler_create(ctx, 512, 8, &r2), DECO_STATUS_SUCCESS);
  int n_prompt;
  int32_t *prompt = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/prompt_dog.ids"), &n_prompt);
  static deco_test_capture_t a, b;
  deco_generate_stats_t sa, sb;
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.temperature = 0.0f;
  c.top_p = 1.0f;
  /* Plain greedy, to the step limit and with the stop rule. */
  int steps[2] = {120, 512};
  for (int i = 0; i < 2; ++i) {
    c.steps = steps[i];
    c.ignore_eos = i == 0;
    run(m, c, 0, prompt, n_prompt, &a, &sa);
    run(m, c, 1, prompt, n_prompt, &b, &sb);
    deco_test_same_run("plain", &a, &sa, &b, &sb);
    cr_assert_eq(sb.forwards, sb.tokens + (i == 1 && b.n < steps[i] + 1 ? 1 : 0),
                 "plain decoding makes one forward per position (the stop id's included)");
  }
  /* Token Recycling: same ids, same forwards, same table. */
  c.steps = 220;
  c.ignore_eos = 1;
  deco_drafter_t *d1, *d2;
  cr_assert_eq(deco_drafter_create_recycle(r1, &tmpl, &d1), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_drafter_create_recycle(r2, &tmpl, &d2), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_drafter_device_resident(d1), 1);
  cr_assert_eq(deco_drafter_max_nodes(d1), tmpl.n_nodes);
  cr_assert_str_eq(deco_drafter_name(d1), "recycle");
  c.drafter = d1;
  run(m, c, 0, prompt, n_prompt, &a, &sa);
  c.drafter = d2;
  run(m, c, 1, prompt, n_prompt, &b, &sb);
  deco_test_same_run("recycle", &a, &sa, &b, &sb);
  cr_assert_eq(memcmp(deco_recycler_table(r1), deco_recycler_table(r2), 512 * 8 * sizeof(int32_t)), 0,
               "the tables differ");
  fprintf(stderr, "recycle, device-resident step: %d tokens in %d forwards\n", sb.tokens, sb.forwards);
  /* Sampling on the device path is reproducible (from the same table: the
   * drafts decide which draws are used). */
  c.temperature = 0.8f;
  c.seed = 5;
  cr_assert_eq(deco_recycler_reset(r2), DECO_STATUS_SUCCESS);
  run(m, c, 1, prompt, n_prompt, &a, &sa);
  cr_assert_eq(deco_recycler_reset(r2), DECO_STATUS_SUCCESS);
  run(m, c, 1, prompt, n_prompt, &b, &sb);
  deco_test_same_run("sampled", &a, &sa, &b, &sb);
  c.graph = 1;
  cr_assert_eq(deco_generate(m, prompt, n_prompt, &c, &sa), DECO_STATUS_INVALID_ARGUMENT, "graph needs the device loop");
  c.device_resident = 1;
  cr_assert_eq(deco_generate(m, prompt, n_prompt, &c, &sa), DECO_STATUS_UNSUPPORTED, "graphs need CUDA");
  c.graph = 0;
  deco_recycler_t *small;
  deco_drafter_t *d_small, *lookup;
  cr_assert_eq(deco_recycler_create(ctx, 64, 8, &small), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_drafter_create_recycle(small, &tmpl, &d_small), DECO_STATUS_SUCCESS);
  c.drafter = d_small;
  cr_assert_eq(deco_generate(m, prompt, n_prompt, &c, &sa), DECO_STATUS_INVALID_ARGUMENT, "a table of another vocab");
  c.device_resident = 0;
  cr_assert_eq(deco_generate(m, prompt, n_prompt, &c, &sa), DECO_STATUS_INVALID_ARGUMENT, "also on the host");
  deco_drafter_destroy(d_small);
  deco_recycler_destroy(small);
  const deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT;
  cr_assert_eq(deco_drafter_create_lookup(&lc, &lookup), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_drafter_device_resident(lookup), 0);
  c.drafter = lookup;
  c.device_resident = 1;
  cr_assert_eq(deco_generate(m, prompt, n_prompt, &c, &sa), DECO_STATUS_UNSUPPORTED, "lookup drafts on the host");
  deco_drafter_destroy(lookup);
  free(prompt);
  deco_drafter_destroy(d1);
  deco_drafter_destroy(d2);
  deco_recycler_destroy(r1);
  deco_recycler_destroy(r2);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(spec_device, prepare_clips_the_tree_and_commit_stops) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_spec_state_t s = {.len = 10, .root = 77, .offset = 10};
  int32_t depth[5] = {0, 1, 1, 2, 3}, tokens[5] = {0, 5, 6, 7, 8}, pos[5], qi[2], kv, pre, ind[2], rows;
  deco_spec_prepare_args_t pa = {.state = &s, .n_nodes = 5, .depth = depth, .steps = 13, .tokens = tokens,
                                 .positions = pos, .q_indptr = qi, .kv_lens = &kv, .prefix_lens = &pre,
                                 .tree_indptr = ind, .row_count = &rows};
  cr_assert_eq(deco_spec_prepare(ctx, &pa), DECO_STATUS_SUCCESS);
  /* steps 13, len 10: depth <= 2 may be drafted -> nodes 0..3 */
  cr_assert_eq(ind[1], 4);
  cr_assert_eq(rows, 4);
  cr_assert_eq(tokens[0], 77);
  cr_assert_eq(tokens[4], 0, "a clipped node computes with a harmless token");
  cr_assert_eq(pos[3], 12);
  cr_assert_eq(kv, 15);
  cr_assert_eq(qi[1], 5, "the forward computes every node");
  cr_assert_eq(pre, 10);
  /* Commit: path 0 -> 1 -> 3, bonus 2 (EOS) with the stop rule on. */
  int32_t path[DECO_TREE_MAX_NODES] = {0, 1, 3}, acc = 3, bonus = 2, out[8];
  static const int32_t llama2c_stops[2] = {1, 2};
  deco_spec_commit_args_t ca = {.state = &s,
                                .tokens = tokens,
                                .n_nodes = 5,
                                .path = path,
                                .accept_len = &acc,
                                .bonus = &bonus,
                                .steps = 13,
                                .stop_ids = llama2c_stops,
                                .n_stop_ids = 2,
                                .out = out,
                                .out_capacity = 8};
  cr_assert_eq(deco_spec_commit(ctx, &ca), DECO_STATUS_SUCCESS);
  cr_assert_eq(s.n_out, 2);
  cr_assert_eq(out[0], 5);
  cr_assert_eq(out[1], 7);
  cr_assert_eq(s.done, 1, "EOS ends the run");
  cr_assert_eq(s.tokens, 2);
  cr_assert_eq(s.forwards, 1);
  cr_assert_eq(deco_spec_commit(ctx, &ca), DECO_STATUS_SUCCESS);
  cr_assert_eq(s.forwards, 1, "a commit after done does nothing");
  cr_assert_eq(deco_spec_prepare(ctx, &pa), DECO_STATUS_SUCCESS);
  cr_assert_eq(ind[1], 0, "after done acceptance and the update see an empty tree");
  cr_assert_eq(qi[1], 0, "after done the forward writes no KV slot");
  /* Without the stop rule: len advances by accept_len and the step limit ends it. */
  deco_spec_state_t t = {.len = 10, .root = 77, .offset = 10};
  ca.state = &t;
  ca.stop_ids = NULL;
  ca.n_stop_ids = 0;
  cr_assert_eq(deco_spec_commit(ctx, &ca), DECO_STATUS_SUCCESS);
  cr_assert_eq(t.len, 13);
  cr_assert_eq(t.root, 2);
  cr_assert_eq(t.offset, 13);
  cr_assert_eq(t.n_out, 3);
  cr_assert_eq(t.done, 1, "len reached steps");
  /* A malformed verification output is an error. */
  deco_spec_state_t u = {.len = 10, .root = 77, .offset = 10};
  int32_t zero = 0;
  ca.state = &u;
  ca.accept_len = &zero;
  cr_assert_eq(deco_spec_commit(ctx, &ca), DECO_STATUS_SUCCESS);
  cr_assert_eq(u.error, 1);
  cr_assert_eq(u.done, 1);
  /* So is an accepted path that leaves the tree (it would index tokens[]). */
  static const int32_t bad_nodes[3] = {-1, 0, 5};
  for (int i = 0; i < 3; ++i) {
    deco_spec_state_t w = {.len = 10, .root = 77, .offset = 10};
    ca.state = &w;
    ca.accept_len = &acc;
    path[2] = bad_nodes[i];
    cr_assert_eq(deco_spec_commit(ctx, &ca), DECO_STATUS_SUCCESS);
    cr_assert_eq(w.error, 1, "path node %d", bad_nodes[i]);
    cr_assert_eq(w.n_out, 0, "nothing is committed from a malformed path");
  }
  /* Non-finite logits flagged by acceptance: nothing is emitted or
   * committed, the flag is kept and the run is done. */
  deco_spec_state_t f = {.len = 10, .root = 77, .offset = 10};
  int32_t flag = 3;
  path[2] = 3;
  ca.state = &f;
  ca.nonfinite = &flag;
  cr_assert_eq(deco_spec_commit(ctx, &ca), DECO_STATUS_SUCCESS);
  cr_assert_eq(f.nonfinite, 3);
  cr_assert_eq(f.done, 1);
  cr_assert_eq(f.n_out, 0);
  cr_assert_eq(f.len, 10);
  cr_assert_eq(f.root, 77);
  cr_assert_eq(f.forwards, 1, "the step's forward ran");
  deco_spec_state_t g = {.len = 10, .root = 77, .offset = 10};
  flag = 0;
  ca.state = &g;
  cr_assert_eq(deco_spec_commit(ctx, &ca), DECO_STATUS_SUCCESS);
  cr_assert_eq(g.nonfinite, 0);
  cr_assert_eq(g.n_out, 3, "a zero flag commits as usual");
  ca.n_nodes = 0;
  cr_assert_eq(deco_spec_commit(ctx, &ca), DECO_STATUS_INVALID_ARGUMENT);
  deco_ctx_destroy(ctx);
}

/* The device-resident loop (run eagerly on the CPU) stops at non-finite
 * logits: stories260K with every RMSNorm weight at 3e38 overflows in the
 * first forward. Plain and Token Recycling, greedy and sampled. */
Test(spec_device, non_finite_logits_stop_the_loop) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  size_t size;
  void *w = deco_test_stories_overflow(&size);
  deco_model_t *m;
  cr_assert_eq(deco_model_load_llama2c_buffer(ctx, w, size, "overflow.bin", NULL, &m), DECO_STATUS_SUCCESS,
               "%s", deco_last_error(ctx));
  free(w);
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  const int32_t prompt[3] = {1, 403, 407};
  for (int src = 0; src < 2; ++src)
    for (int hot = 0; hot < 2; ++hot) {
      deco_recycler_t *rec;
      cr_assert_eq(deco_recycler_create(ctx, 512, 8, &rec), DECO_STATUS_SUCCESS);
      deco_drafter_t *drafter = deco_test_drafter(src ? DECO_TEST_RECYCLE : DECO_TEST_PLAIN, rec, &tmpl);
      deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
      c.steps = 30;
      c.temperature = hot ? 0.7f : 0.0f;
      c.top_p = 0.9f;
      c.seed = 5;
      c.ignore_eos = 1;
      c.drafter = drafter;
      c.device_resident = 1;
      deco_generate_stats_t st;
      deco_status_t s = deco_generate(m, prompt, 3, &c, &st);
      cr_assert_eq(s, DECO_STATUS_NON_FINITE, "%s T=%s: %s (%s)", src ? "recycle" : "plain", hot ? "0.7" : "0",
                   deco_status_string(s), deco_last_error(ctx));
      cr_assert(strstr(deco_last_error(ctx), "non-finite logits at position 2") != NULL, "%s", deco_last_error(ctx));
      deco_drafter_destroy(drafter);
      deco_recycler_destroy(rec);
    }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* Once deco_device_step_create has planned, the prefill it was planned for
 * and a step allocate nothing: plain and Token Recycling, greedy and
 * sampled. A forward beyond the plan does allocate (the count can fail). */
Test(spec_device, a_planned_step_allocates_nothing) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  static const int32_t prompt[6] = {1, 403, 407, 261, 378, 432};
  for (int src = 0; src < 2; ++src)
    for (int hot = 0; hot < 2; ++hot) {
      deco_recycler_t *rec;
      cr_assert_eq(deco_recycler_create(ctx, 512, 8, &rec), DECO_STATUS_SUCCESS);
      deco_drafter_t *drafter = deco_test_drafter(src ? DECO_TEST_RECYCLE : DECO_TEST_PLAIN, rec, &tmpl);
      deco_kv_cache_t *kc;
      int seq, n_forced = 5;
      cr_assert_eq(deco_kv_cache_create(m, 16, 32, 1, &kc), DECO_STATUS_SUCCESS);
      cr_assert_eq(deco_kv_cache_admit(kc, 300, &seq), DECO_STATUS_SUCCESS);
      static const int32_t stops[2] = {1, 2};
      const deco_device_step_config_t sc = {.model = m, .cache = kc, .seq = seq, .drafter = drafter, .steps = 200,
                                            .temperature = hot ? 0.7f : 0.0f, .top_k = 0, .top_p = 0.9f, .seed = 3,
                                            .stop_ids = stops, .n_stop_ids = 2, .max_prefill = n_forced};
      deco_device_step_t *step;
      cr_assert_eq(deco_device_step_create(&sc, &step), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
      float *logits;
      cr_assert_eq(deco_malloc(ctx, (void **)&logits, sizeof(float) * 512), DECO_STATUS_SUCCESS);
      const size_t before = deco_ctx_alloc_count(ctx);
      deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &n_forced, .tokens = prompt,
                                .logits_mode = DECO_LOGITS_LAST, .logits = logits};
      cr_assert_eq(deco_forward(m, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
      cr_assert_eq(deco_device_step_start(step, n_forced, prompt[n_forced]), DECO_STATUS_SUCCESS);
      cr_assert_eq(deco_device_step_enqueue(step), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
      deco_spec_state_t s;
      cr_assert_eq(deco_device_step_state(step, &s), DECO_STATUS_SUCCESS);
      cr_assert_eq(s.forwards, 1);
      cr_assert(s.len > n_forced, "the step committed its root");
      for (int i = 0; i < 5; ++i) cr_assert_eq(deco_device_step_enqueue(step), DECO_STATUS_SUCCESS);
      cr_assert_eq(deco_ctx_alloc_count(ctx), before, "%s T=%s: %zu allocations after the plan",
                   src ? "recycle" : "plain", hot ? "0.7" : "0", deco_ctx_alloc_count(ctx) - before);
      const int32_t *ids;
      int n_ids;
      cr_assert_eq(deco_device_step_finish(step, &ids, &n_ids), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
      cr_assert(n_ids >= 6, "six steps emit at least six ids (%d)", n_ids);
      /* Beyond the plan: a prefill longer than the one planned grows the
       * scratch (once: the model keeps it for the iterations after). */
      int32_t many[200] = {0};
      int n_many = 200, seq2;
      cr_assert_eq(deco_kv_cache_release(kc, seq), DECO_STATUS_SUCCESS);
      cr_assert_eq(deco_kv_cache_admit(kc, 300, &seq2), DECO_STATUS_SUCCESS);
      fa.seqs = &seq2;
      fa.n_new = &n_many;
      fa.tokens = many;
      const size_t at = deco_ctx_alloc_count(ctx);
      cr_assert_eq(deco_forward(m, kc, &fa), DECO_STATUS_SUCCESS);
      if (src == 0 && hot == 0) cr_assert_gt(deco_ctx_alloc_count(ctx), at, "a forward beyond the plan allocates");
      deco_free(ctx, logits);
      deco_device_step_destroy(step);
      deco_kv_cache_destroy(kc);
      deco_drafter_destroy(drafter);
      deco_recycler_destroy(rec);
    }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* The engine plans when it is created (and when a drafter is set): its
 * steps allocate nothing, whatever the trees' sizes within its capacity. */
Test(spec_device, engine_steps_allocate_nothing) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  deco_recycler_t *rec;
  cr_assert_eq(deco_recycler_create(ctx, 512, 8, &rec), DECO_STATUS_SUCCESS);
  deco_drafter_t *drafter = deco_test_drafter(DECO_TEST_RECYCLE, rec, &tmpl);
  deco_kv_cache_t *kc;
  int seq[2];
  cr_assert_eq(deco_kv_cache_create(m, 16, 64, 2, &kc), DECO_STATUS_SUCCESS);
  for (int i = 0; i < 2; ++i) cr_assert_eq(deco_kv_cache_admit(kc, 400, &seq[i]), DECO_STATUS_SUCCESS);
  deco_spec_engine_t *eng;
  cr_assert_eq(deco_spec_engine_create(m, kc, 2, tmpl.n_nodes, &eng), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_spec_engine_set_drafter(eng, drafter), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  const int32_t root[2] = {1, 403};
  for (int i = 0; i < 2; ++i) cr_assert_eq(deco_drafter_begin(drafter, m, seq[i], &root[i], 1), DECO_STATUS_SUCCESS);
  const size_t before = deco_ctx_alloc_count(ctx);
  for (int step = 0; step < 6; ++step) {
    int32_t tokens[2 * DECO_TREE_MAX_NODES], parents[2 * DECO_TREE_MAX_NODES], emitted[2 * DECO_TREE_MAX_NODES];
    int n[2], n_emitted[2];
    cr_assert_eq(deco_drafter_draft(drafter, seq[0], tokens, parents, &n[0]), DECO_STATUS_SUCCESS);
    cr_assert_eq(deco_drafter_draft(drafter, seq[1], tokens + n[0], parents + n[0], &n[1]), DECO_STATUS_SUCCESS);
    /* Trees of every size up to the capacity: the second one shrinks. */
    n[1] = 1 + step * 13 % n[1];
    deco_spec_sampling_t sp = DECO_SPEC_SAMPLING_INIT;
    sp.temperature = step % 2 ? 0.7f : 0.0f;
    sp.seed = 9;
    sp.offset = (uint32_t)step;
    cr_assert_eq(deco_spec_engine_step(eng, 2, seq, n, tokens, parents, &sp, emitted, n_emitted), DECO_STATUS_SUCCESS,
                 "%s", deco_last_error(ctx));
  }
  cr_assert_eq(deco_ctx_alloc_count(ctx), before, "%zu allocations after the plan", deco_ctx_alloc_count(ctx) - before);
  deco_spec_engine_destroy(eng);
  deco_drafter_destroy(drafter);
  deco_recycler_destroy(rec);
  deco_kv_cache_destroy(kc);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* Stop ids come from the model ({1, 2} for llama2.c checkpoints) or from
 * the config: every loop (plain, host-driven lookup and recycling, the
 * device-resident step) stops at the configured id, drops it, and emits
 * what plain decoding emits up to it. */
Test(spec_device, stop_ids_from_the_config) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  static deco_test_capture_t all, got;
  deco_generate_stats_t st;
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = 120;
  c.temperature = 0.0f;
  c.ignore_eos = 1;
  const int32_t bos = 1;
  run(m, c, 0, &bos, 1, &all, &st);
  /* The first generated id from the 10th on that did not occur before. */
  int at = -1;
  for (int i = 10; i < all.n && at < 0; ++i) {
    int seen = 0;
    for (int j = 1; j < i; ++j) seen |= all.ids[j] == all.ids[i];
    if (!seen) at = i;
  }
  cr_assert(at > 0, "no fresh id to stop at");
  const int32_t stop = all.ids[at];
  c.ignore_eos = 0;
  c.stop_ids = &stop;
  c.n_stop_ids = 1;
  for (int src = 0; src < 3; ++src)
    for (int device = 0; device < (src == 1 ? 1 : 2); ++device) {
      deco_recycler_t *rec;
      cr_assert_eq(deco_recycler_create(ctx, 512, 8, &rec), DECO_STATUS_SUCCESS);
      c.drafter = deco_test_drafter((deco_test_source_t)src, rec, &tmpl);
      run(m, c, device, &bos, 1, &got, &st);
      cr_assert_eq(got.n, at, "source %d device %d: stopped after %d ids, expected %d", src, device, got.n, at);
      cr_assert_eq(memcmp(got.ids, all.ids, sizeof(int32_t) * (size_t)at), 0, "source %d device %d", src, device);
      cr_assert_eq(st.tokens, at - 1, "the stop id is not counted");
      deco_drafter_destroy(c.drafter);
      deco_recycler_destroy(rec);
    }
  c.drafter = NULL;
  c.n_stop_ids = 0;
  cr_assert_eq(deco_generate(m, &bos, 1, &c, &st), DECO_STATUS_INVALID_ARGUMENT, "stop_ids without a count");
  c.n_stop_ids = DECO_SPEC_MAX_STOP_IDS + 1;
  cr_assert_eq(deco_generate(m, &bos, 1, &c, &st), DECO_STATUS_INVALID_ARGUMENT, "too many stop ids");
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
