/* tests/test_spec_cpu.c — speculative decoding with tree verification on the
 * CPU backend, end to end on stories260K: greedy prompt-lookup decoding
 * reproduces the llama2.c fixtures exactly (it must equal plain greedy
 * decoding token for token), commits more than one token per forward, and
 * stochastic verification (deterministic drafts) is reproducible; and
 * deco_generate's configuration checks, message by message.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/testutil.h"

Test(spec_cpu, lookup_greedy_reproduces_fixtures) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--temperature", "0", "--ignore-eos", "--print-ids", "--spec", "lookup",
      "--backend", "cpu");
  deco_test_expect_fixture_out("lookup from BOS", &r, "fixtures/stories260K/greedy_bos_256.ids");
  double ma = deco_test_stat(r.err, "mean_accepted=");
  cr_assert(!isnan(ma), "no mean_accepted in %s", r.err);
  fprintf(stderr, "lookup from BOS, 256 positions: %s\n", deco_test_last_line(r.err));
  cr_assert(ma > 1.3, "prompt lookup should commit well over one token per forward here (%.2f)", ma);
  deco_test_run_free(&r);

  DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--tokenizer", deco_test_data_file("models/tok512.bin"), "--prompt",
      "Once upon a time, there was a little dog named Max.", "--temperature", "0", "--ignore-eos", "--print-ids",
      "--steps", "200", "--spec", "lookup", "--backend", "cpu");
  deco_test_expect_fixture_out("lookup on the dog prompt", &r, "fixtures/stories260K/greedy_dog_200.ids");
  fprintf(stderr, "lookup on the dog prompt, 200 positions: %s\n", deco_test_last_line(r.err));
  deco_test_run_free(&r);
}

Test(spec_cpu, lookup_equals_plain_for_every_budget) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  deco_test_run_t plain, r;
  DECO_TEST_RUN_CLI(&plain, "generate", "--model", model, "--temperature", "0", "--print-ids", "--steps", "300", "--backend", "cpu");
  cr_assert_eq(plain.status, 0);
  const char *budgets[][2] = {{"1", "1"}, {"3", "2"}, {"10", "32"}, {"20", "255"}};
  for (int i = 0; i < 4; ++i) {
    DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--temperature", "0", "--print-ids", "--steps", "300", "--spec", "lookup",
        "--draft-len", budgets[i][0], "--tree-nodes", budgets[i][1], "--backend", "cpu");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, plain.out, "draft-len %s tree-nodes %s", budgets[i][0], budgets[i][1]);
    /* tokens= agrees with plain decoding: the stop rule is the same */
    const char *t0 = strstr(deco_test_last_line(plain.err), "tokens=");
    const char *t1 = strstr(deco_test_last_line(r.err), "tokens=");
    cr_assert(strncmp(t0, t1, strcspn(t0, " ")) == 0, "%s vs %s", t0, t1);
    deco_test_run_free(&r);
  }
  deco_test_run_free(&plain);
}

Test(spec_cpu, sampling_is_reproducible_and_stats_complete) {
  deco_test_run_t a, b;
  DECO_TEST_RUN_CLI(&a, "generate", "--print-ids", "--steps", "60", "--spec", "lookup", "--temperature", "0.8", "--seed", "3",
      "--backend", "cpu");
  DECO_TEST_RUN_CLI(&b, "generate", "--print-ids", "--steps", "60", "--spec", "lookup", "--temperature", "0.8", "--seed", "3",
      "--backend", "cpu");
  cr_assert_eq(a.status, 0, "%s", a.err);
  cr_assert_str_eq(a.out, b.out);
  const char *stats = deco_test_last_line(a.err);
  cr_assert(strstr(stats, " forwards=") && strstr(stats, " mean_accepted="), "%s", stats);
  cr_assert(strstr(stats, "model=stories260K.bin forwards=") != NULL, "keys in order: %s", stats);
  deco_test_run_free(&a);
  deco_test_run_free(&b);
}

/* The engine through the library: a batch of two sequences verified in one
 * step gives each what it gets alone. */
Test(spec_cpu, engine_batch_equals_single) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_kv_cache_t *kc;
  cr_assert_eq(deco_kv_cache_create(m, 4, 256, 4, &kc), DECO_STATUS_SUCCESS);
  deco_spec_engine_t *eng;
  cr_assert_eq(deco_spec_engine_create(m, kc, 4, 16, &eng), DECO_STATUS_SUCCESS);
  int s[4];
  for (int i = 0; i < 4; ++i) cr_assert_eq(deco_kv_cache_admit(kc, 200, &s[i]), DECO_STATUS_SUCCESS);
  /* Prefill two prompts twice (sequences 0/1 alone, 2/3 batched). */
  int32_t pa[6] = {1, 403, 407, 261, 378, 432}, pb[4] = {1, 403, 407, 261};
  float *logits = malloc(sizeof(float) * 512 * 16 * 4);
  int n5 = 5, n3 = 3;
  deco_forward_args_t f0 = {.n_seqs = 1, .seqs = &s[0], .n_new = &n5, .tokens = pa, .embeds = NULL, .parents = NULL,
                            .logits_mode = DECO_LOGITS_LAST, .logits = logits};
  deco_forward_args_t f1 = {.n_seqs = 1, .seqs = &s[1], .n_new = &n3, .tokens = pb, .embeds = NULL, .parents = NULL,
                            .logits_mode = DECO_LOGITS_LAST, .logits = logits};
  deco_forward_args_t f2 = {.n_seqs = 1, .seqs = &s[2], .n_new = &n5, .tokens = pa, .embeds = NULL, .parents = NULL,
                            .logits_mode = DECO_LOGITS_LAST, .logits = logits};
  deco_forward_args_t f3 = {.n_seqs = 1, .seqs = &s[3], .n_new = &n3, .tokens = pb, .embeds = NULL, .parents = NULL,
                            .logits_mode = DECO_LOGITS_LAST, .logits = logits};
  cr_assert_eq(deco_forward(m, kc, &f0), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_forward(m, kc, &f1), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_forward(m, kc, &f2), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_forward(m, kc, &f3), DECO_STATUS_SUCCESS);
  /* Trees: roots are the last prompt tokens; drafts are the fixture's
   * greedy continuation plus wrong siblings. */
  int32_t ta[4] = {432, 383, 286, 99}, pta[4] = {-1, 0, 1, 0};
  int32_t tb[3] = {261, 378, 7}, ptb[3] = {-1, 0, 0};
  int32_t both_t[7], both_p[7];
  memcpy(both_t, ta, sizeof ta);
  memcpy(both_t + 4, tb, sizeof tb);
  memcpy(both_p, pta, sizeof pta);
  memcpy(both_p + 4, ptb, sizeof ptb);
  deco_spec_sampling_t g = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 1, .offset = 0};
  int32_t e1[2 * DECO_TREE_MAX_NODES], e2[2 * DECO_TREE_MAX_NODES];
  int n1[2], n2[2], na = 4, nb = 3, nn[2] = {4, 3};
  /* A sampling law that cannot be is refused before the tree's forward. */
  const deco_spec_sampling_t bad = {.temperature = -1.0f, .top_k = 0, .top_p = 1.0f, .seed = 1, .offset = 0};
  deco_test_refused(ctx, deco_spec_engine_step(eng, 1, &s[0], &na, ta, pta, &bad, e1, &n1[0]),
                    DECO_STATUS_INVALID_ARGUMENT, "deco_spec_engine_step: temperature = -1 must be finite and >= 0");
  cr_assert_eq(deco_kv_cache_seq_len(kc, s[0]), 5);
  cr_assert_eq(deco_spec_engine_step(eng, 1, &s[0], &na, ta, pta, &g, e1, &n1[0]), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  cr_assert_eq(deco_spec_engine_step(eng, 1, &s[1], &nb, tb, ptb, &g, e1 + DECO_TREE_MAX_NODES, &n1[1]),
               DECO_STATUS_SUCCESS);
  int pair[2] = {s[2], s[3]};
  cr_assert_eq(deco_spec_engine_step(eng, 2, pair, nn, both_t, both_p, &g, e2, n2), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  for (int i = 0; i < 2; ++i) {
    cr_assert_eq(n1[i], n2[i], "sequence %d: %d vs %d emitted", i, n1[i], n2[i]);
    for (int j = 0; j < n1[i]; ++j) cr_assert_eq(e1[i * DECO_TREE_MAX_NODES + j], e2[i * DECO_TREE_MAX_NODES + j]);
    cr_assert_eq(deco_kv_cache_seq_len(kc, s[i]), deco_kv_cache_seq_len(kc, s[i + 2]));
  }
  /* The fixture continues 1 403 407 261 378 432 383 286: sequence 0 accepts
   * 383 and 286 (3 emitted with the bonus), sequence 1 accepts 378. */
  cr_assert_eq(n1[0], 3);
  cr_assert_eq(e1[0], 383);
  cr_assert_eq(e1[1], 286);
  cr_assert_eq(n1[1], 2);
  cr_assert_eq(e1[DECO_TREE_MAX_NODES], 378);
  cr_assert_eq(e1[DECO_TREE_MAX_NODES + 1], 432);
  /* After compaction, a plain decode step continues exactly as the fixture. */
  int one = 1;
  int32_t next = e1[2];
  deco_forward_args_t fd = {.n_seqs = 1, .seqs = &s[0], .n_new = &one, .tokens = &next, .embeds = NULL,
                            .parents = NULL, .logits_mode = DECO_LOGITS_LAST, .logits = logits};
  cr_assert_eq(deco_forward(m, kc, &fd), DECO_STATUS_SUCCESS);
  int n_ids;
  int32_t *ids = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/greedy_bos_256.ids"), &n_ids);
  cr_assert_eq(deco_argmax(logits, 512), ids[9], "greedy after compaction: %d vs fixture %d", deco_argmax(logits, 512),
               ids[9]);
  free(ids);
  free(logits);
  deco_spec_engine_destroy(eng);
  deco_kv_cache_destroy(kc);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* A drafter driven by hand with the engine (the public API an engine of
 * its own would use) decodes what deco_generate decodes with it: prompt
 * lookup begun with the prompt, observing each step through the engine. */
Test(spec_cpu, drafter_by_hand_equals_generate) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT;
  deco_drafter_t *d;
  cr_assert_eq(deco_drafter_create_lookup(&lc, &d), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_drafter_max_nodes(d), 33);
  cr_assert_eq(deco_drafter_device_resident(d), 0);
  cr_assert_str_eq(deco_drafter_name(d), "lookup");
  const int steps = 150;
  static deco_test_capture_t want;
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = steps;
  c.temperature = 0.0f;
  c.ignore_eos = 1;
  c.drafter = d;
  c.emit = deco_test_capture_id;
  c.user = &want;
  const int32_t bos = 1;
  deco_generate_stats_t st;
  cr_assert_eq(deco_generate(m, &bos, 1, &c, &st), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(want.n, steps + 1);
  /* By hand, with a cache of our own. */
  deco_kv_cache_t *kc;
  int seq;
  cr_assert_eq(deco_kv_cache_create(m, 16, 16, 1, &kc), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, steps + 33, &seq), DECO_STATUS_SUCCESS);
  deco_spec_engine_t *eng;
  cr_assert_eq(deco_spec_engine_create(m, kc, 1, deco_drafter_max_nodes(d), &eng), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_spec_engine_set_drafter(eng, d), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_drafter_begin(d, m, seq, &bos, 1), DECO_STATUS_SUCCESS);
  int32_t got[512] = {1};
  int n_got = 1;
  while (n_got < steps + 1) {
    int32_t tokens[DECO_TREE_MAX_NODES], parents[DECO_TREE_MAX_NODES], emitted[DECO_TREE_MAX_NODES];
    int n, n_emitted;
    cr_assert_eq(deco_drafter_draft(d, seq, tokens, parents, &n), DECO_STATUS_SUCCESS);
    cr_assert_eq(tokens[0], got[n_got - 1], "the tree is rooted at the last id");
    /* Greedy: what is accepted is plain decoding's continuation, so the
     * trees need no pruning at the end (the cache has room for one more). */
    const deco_spec_sampling_t sp = DECO_SPEC_SAMPLING_INIT;
    cr_assert_eq(deco_spec_engine_step(eng, 1, &seq, &n, tokens, parents, &sp, emitted, &n_emitted),
                 DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    for (int i = 0; i < n_emitted && n_got < steps + 1; ++i) got[n_got++] = emitted[i];
  }
  cr_assert_eq(memcmp(got, want.ids, sizeof(int32_t) * (size_t)(steps + 1)), 0, "by hand differs from generate");
  /* Drafting a sequence that was never begun is an error, not a crash. */
  int32_t tokens[DECO_TREE_MAX_NODES], parents[DECO_TREE_MAX_NODES];
  int n;
  cr_assert_eq(deco_drafter_draft(d, seq + 5, tokens, parents, &n), DECO_STATUS_INVALID_ARGUMENT);
  deco_spec_engine_destroy(eng);
  deco_kv_cache_destroy(kc);
  deco_drafter_destroy(d);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* Every check of deco_generate's configuration against the model and the
 * prompt refuses with its status and these words. */
Test(spec_cpu, config_messages) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_drafter_t *lookup;
  const deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT;
  cr_assert_eq(deco_drafter_create_lookup(&lc, &lookup), DECO_STATUS_SUCCESS);
  const int32_t ok[2] = {1, 5}, bad[2] = {1, 512}, stop = 2;
  deco_generate_stats_t st;
  for (int i = 0; i < 14; ++i) {
    deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
    c.steps = 8;
    const int32_t *prompt = ok;
    int n_prompt = 2;
    deco_status_t want = DECO_STATUS_INVALID_ARGUMENT;
    const char *msg = NULL;
    switch (i) {
    case 0: n_prompt = 0, msg = "deco_generate: r->n_prompt = 0 outside [1, 1073741824]"; break;
    case 1: c.steps = 513, msg = "deco_generate: c->steps = 513 outside [1, 512]"; break;
    case 2: prompt = bad, msg = "deco_generate: prompt[1] = 512 outside the vocabulary [0, 512)"; break;
    case 3: c.page_size = -1, msg = "deco_generate: c->page_size = -1 outside [1, 65536]"; break;
    case 4: c.replay_chunk = 1 << 21, msg = "deco_generate: c->replay_chunk = 2097152 outside [1, 1048576]"; break;
    case 5: c.top_k = -1, msg = "deco_generate: top_k = -1 outside [0, 16777216]"; break;
    case 6: c.graph = 1, msg = "deco_generate: graph needs device_resident"; break;
    case 7:
      c.graph = 1, c.device_resident = 1, want = DECO_STATUS_UNSUPPORTED;
      msg = "deco_generate: CUDA graphs need the CUDA backend";
      break;
    case 8:
      c.device_resident = 1, c.drafter = lookup, want = DECO_STATUS_UNSUPPORTED;
      msg = "deco_generate: the lookup drafter drafts on the host; it has no device-resident loop";
      break;
    case 9: c.stop_ids = &stop, c.n_stop_ids = 0, msg = "deco_generate: c->n_stop_ids = 0 outside [1, 64]"; break;
    /* The sampling law is checked up front, the same for every loop. */
    case 10:
      c.temperature = -1.0f, c.drafter = lookup, msg = "deco_generate: temperature = -1 must be finite and >= 0";
      break;
    case 11: c.temperature = 0.0f, c.top_p = 0.0f, msg = "deco_generate: top_p = 0 must be finite and > 0"; break;
    case 12:
      c.temperature = 0.0f, c.top_p = 0.0f, c.drafter = lookup;
      msg = "deco_generate: top_p = 0 must be finite and > 0";
      break;
    default: /* every check passes */
      c.stop_ids = &stop, c.n_stop_ids = 1, want = DECO_STATUS_SUCCESS;
      break;
    }
    cr_assert_eq(deco_generate(m, prompt, n_prompt, &c, &st), want, "case %d: %s", i, deco_last_error(ctx));
    if (msg) cr_assert_str_eq(deco_last_error(ctx), msg, "case %d: %s", i, deco_last_error(ctx));
  }
  deco_drafter_destroy(lookup);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* A nucleus above 1 is everything, as 1, on the speculative loop too (its
 * acceptance takes (0, 1]): the same ids as top_p = 1, and none emitted
 * before a refusal. */
Test(spec_cpu, top_p_above_one_is_one_on_every_loop) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_drafter_t *lookup;
  const deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT;
  cr_assert_eq(deco_drafter_create_lookup(&lc, &lookup), DECO_STATUS_SUCCESS);
  static const int32_t prompt[6] = {1, 403, 407, 261, 378, 432};
  for (int spec = 0; spec < 2; ++spec) {
    deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
    c.steps = 60, c.temperature = 0.8f, c.seed = 7, c.drafter = spec ? lookup : NULL;
    deco_test_capture_t one, above;
    deco_generate_stats_t s1, s2;
    c.top_p = 1.0f;
    deco_test_generate(m, prompt, 6, c, &one, &s1);
    c.top_p = 1.5f;
    deco_test_generate(m, prompt, 6, c, &above, &s2);
    deco_test_same_run(spec ? "lookup, top_p 1.5 vs 1" : "plain, top_p 1.5 vs 1", &one, &s1, &above, &s2);
    deco_test_capture_t none = {.n = 0};
    c.temperature = -1.0f, c.emit = deco_test_capture_id, c.user = &none;
    cr_assert_eq(deco_generate(m, prompt, 6, &c, &s1), DECO_STATUS_INVALID_ARGUMENT);
    cr_assert_eq(none.n, 0, "%d ids emitted before the refusal", none.n);
  }
  deco_drafter_destroy(lookup);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* A prompt id outside the vocabulary, below or above it: the first one is
 * named. */
Test(spec_cpu, the_first_out_of_vocabulary_prompt_id_is_named) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  int32_t prompt[4] = {1, -3, 600, 5};
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = 8;
  deco_generate_stats_t st;
  deco_test_refused(ctx, deco_generate(m, prompt, 4, &c, &st), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_generate: prompt[1] = -3 outside the vocabulary [0, 512)");
  prompt[1] = 511;
  deco_test_refused(ctx, deco_generate(m, prompt, 4, &c, &st), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_generate: prompt[2] = 600 outside the vocabulary [0, 512)");
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* The prefill forward is timed apart (stats.prefill_seconds): 0 for a
 * one-id prompt, which has none; for a longer prompt, above 0 and within
 * the run's own time, on the plain and the speculative loop. */
Test(spec_cpu, the_prefill_is_timed_apart) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_drafter_t *lookup;
  const deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT;
  cr_assert_eq(deco_drafter_create_lookup(&lc, &lookup), DECO_STATUS_SUCCESS);
  static const int32_t prompt[6] = {1, 403, 407, 261, 378, 432};
  for (int spec = 0; spec < 2; ++spec)
    for (int n = 1; n <= 6; n += 5) {
      deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
      c.steps = 40, c.drafter = spec ? lookup : NULL;
      deco_generate_stats_t st;
      struct timespec t0, t1;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      cr_assert_eq(deco_generate(m, prompt, n, &c, &st), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
      clock_gettime(CLOCK_MONOTONIC, &t1);
      const double run = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
      if (n == 1)
        cr_assert_eq(st.prefill_seconds, 0.0, "spec %d: a one-id prompt has no prefill", spec);
      else
        cr_assert(st.prefill_seconds > 0.0 && st.prefill_seconds < run, "spec %d: prefill %g s of a %g s run", spec,
                  st.prefill_seconds, run);
    }
  deco_drafter_destroy(lookup);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* deco_drafter_end lets go of a sequence on every drafter (spec.h): after
 * it, prompt lookup and Token Recycling refuse to draft that sequence, as
 * the model drafter does, and still draft the others. */
Test(spec_cpu, end_lets_go_of_a_sequence) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT;
  deco_recycler_t *rec;
  deco_tree_template_t tmpl;
  deco_drafter_t *d[2];
  cr_assert_eq(deco_drafter_create_lookup(&lc, &d[0]), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_recycler_create(ctx, 512, DECO_RECYCLE_DEFAULT_K, &rec), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_drafter_create_recycle(rec, &tmpl, &d[1]), DECO_STATUS_SUCCESS);
  static const int32_t ids[6] = {1, 403, 407, 261, 403, 407};
  const char *const not_begun[2] = {"prompt lookup: sequence 0 was not begun",
                                    "token recycling: sequence 0 was not begun"};
  int32_t tokens[DECO_TREE_MAX_NODES], parents[DECO_TREE_MAX_NODES];
  for (int k = 0; k < 2; ++k) {
    int n = 0;
    cr_assert_eq(deco_drafter_begin(d[k], m, 0, ids, 6), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    cr_assert_eq(deco_drafter_begin(d[k], m, 1, ids, 5), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    cr_assert_eq(deco_drafter_draft(d[k], 0, tokens, parents, &n), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    deco_drafter_end(d[k], 0);
    deco_test_refused(ctx, deco_drafter_draft(d[k], 0, tokens, parents, &n), DECO_STATUS_INVALID_ARGUMENT,
                      not_begun[k]);
    cr_assert_eq(deco_drafter_draft(d[k], 1, tokens, parents, &n), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    deco_drafter_end(d[k], 7); /* never begun: nothing to do */
    deco_drafter_destroy(d[k]);
  }
  deco_recycler_destroy(rec);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
