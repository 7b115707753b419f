/* tests/test_spec_device.c — the device-resident step (deco_spec_prepare /
 * deco_spec_commit around the tree forward, acceptance, compaction and the
 * table update, all state in context memory) run eagerly on the CPU backend:
 * it must decode exactly what the host-driven loop decodes, for plain greedy
 * decoding (one-node trees) and Token Recycling, with the same table at the
 * end; and the bookkeeping ops must stop, clip and emit as documented.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

static void run(deco_model_t *m, deco_generate_config_t c, int device, const int32_t *prompt, int n_prompt,
                deco_test_capture_t *cap, deco_generate_stats_t *st) {
  c.device_resident = device;
  c.emit = deco_test_capture_id;
  c.user = cap;
  cap->n = 0;
  cr_assert_eq(deco_generate(m, prompt, n_prompt, &c, st), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(deco_model_ctx(m)));
}

static void compare(const char *what, const deco_test_capture_t *a, const deco_generate_stats_t *sa, const deco_test_capture_t *b,
                    const deco_generate_stats_t *sb) {
  cr_assert_eq(a->n, b->n, "%s: %d vs %d ids", what, a->n, b->n);
  cr_assert_eq(deco_test_compare_i32(what, b->ids, a->ids, (size_t)a->n), 0);
  cr_assert_eq(sa->tokens, sb->tokens, "%s: tokens", what);
  cr_assert_eq(sa->forwards, sb->forwards, "%s: forwards %d vs %d", what, sa->forwards, sb->forwards);
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
  deco_generate_config_t c;
  memset(&c, 0, sizeof c);
  c.top_p = 1.0f;
  /* Plain greedy, to the step limit and with the stop rule. */
  int steps[2] = {120, 512};
  for (int i = 0; i < 2; ++i) {
    c.steps = steps[i];
    c.ignore_eos = i == 0;
    run(m, c, 0, prompt, n_prompt, &a, &sa);
    run(m, c, 1, prompt, n_prompt, &b, &sb);
    compare("plain", &a, &sa, &b, &sb);
    cr_assert_eq(sb.forwards, sb.tokens + (i == 1 && b.n < steps[i] + 1 ? 1 : 0),
                 "plain decoding makes one forward per position (the stop id's included)");
  }
  /* Token Recycling: same ids, same forwards, same table. */
  c.steps = 220;
  c.ignore_eos = 1;
  c.source = DECO_DRAFT_RECYCLE;
  c.tmpl = &tmpl;
  c.recycler = r1;
  run(m, c, 0, prompt, n_prompt, &a, &sa);
  c.recycler = r2;
  run(m, c, 1, prompt, n_prompt, &b, &sb);
  compare("recycle", &a, &sa, &b, &sb);
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
  compare("sampled", &a, &sa, &b, &sb);
  c.graph = 1;
  cr_assert_eq(deco_generate(m, prompt, n_prompt, &c, &sa), DECO_STATUS_INVALID_ARGUMENT, "graph needs the device loop");
  c.device_resident = 1;
  cr_assert_eq(deco_generate(m, prompt, n_prompt, &c, &sa), DECO_STATUS_UNSUPPORTED, "graphs need CUDA");
  c.graph = 0;
  deco_recycler_t *small;
  cr_assert_eq(deco_recycler_create(ctx, 64, 8, &small), DECO_STATUS_SUCCESS);
  c.recycler = small;
  cr_assert_eq(deco_generate(m, prompt, n_prompt, &c, &sa), DECO_STATUS_INVALID_ARGUMENT, "a table of another vocab");
  deco_recycler_destroy(small);
  c.recycler = r2;
  c.source = DECO_DRAFT_LOOKUP;
  c.device_resident = 1;
  cr_assert_eq(deco_generate(m, prompt, n_prompt, &c, &sa), DECO_STATUS_UNSUPPORTED, "lookup drafts on the host");
  free(prompt);
  deco_recycler_destroy(r1);
  deco_recycler_destroy(r2);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(spec_device, prepare_clips_the_tree_and_commit_stops) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_spec_state_t s = {.len = 10, .root = 77, .offset = 10};
  int32_t depth[5] = {0, 1, 1, 2, 3}, tokens[5] = {0, 5, 6, 7, 8}, pos[5], qi[2], kv, pre, ind[2], rows;
  deco_spec_prepare_args_t pa = {&s, 5, depth, 13, tokens, pos, qi, &kv, &pre, ind, &rows};
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
  deco_spec_commit_args_t ca = {.state = &s,
                                .tokens = tokens,
                                .n_nodes = 5,
                                .path = path,
                                .accept_len = &acc,
                                .bonus = &bonus,
                                .steps = 13,
                                .ignore_eos = 0,
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
  ca.ignore_eos = 1;
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
  float *w = deco_test_read_file(deco_test_data_file("models/stories260K.bin"), &size);
  cr_assert_not_null(w);
  float *base = (float *)((char *)w + 28); /* rms_att, rms_ffn, rms_final (test_loader.c offsets) */
  const size_t at[3] = {32768, 94528, 259968}, n[3] = {320, 320, 64};
  for (int t = 0; t < 3; ++t)
    for (size_t i = 0; i < n[t]; ++i) base[at[t] + i] = 3e38f;
  deco_model_t *m;
  cr_assert_eq(deco_model_load_llama2c_buffer(ctx, w, size, "overflow.bin", DECO_DTYPE_F32, &m), DECO_STATUS_SUCCESS,
               "%s", deco_last_error(ctx));
  free(w);
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  const int32_t prompt[3] = {1, 403, 407};
  for (int src = 0; src < 2; ++src)
    for (int hot = 0; hot < 2; ++hot) {
      deco_recycler_t *rec;
      cr_assert_eq(deco_recycler_create(ctx, 512, 8, &rec), DECO_STATUS_SUCCESS);
      deco_generate_config_t c = {.steps = 30, .temperature = hot ? 0.7f : 0.0f, .top_p = 0.9f, .seed = 5,
                                  .ignore_eos = 1, .source = src ? DECO_DRAFT_RECYCLE : DECO_DRAFT_NONE,
                                  .recycler = rec, .tmpl = &tmpl, .device_resident = 1};
      deco_generate_stats_t st;
      deco_status_t s = deco_generate(m, prompt, 3, &c, &st);
      cr_assert_eq(s, DECO_STATUS_NON_FINITE, "%s T=%s: %s (%s)", src ? "recycle" : "plain", hot ? "0.7" : "0",
                   deco_status_string(s), deco_last_error(ctx));
      cr_assert(strstr(deco_last_error(ctx), "non-finite logits at position 2") != NULL, "%s", deco_last_error(ctx));
      deco_recycler_destroy(rec);
    }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
