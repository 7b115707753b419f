/* tests/test_spec_cpu.c — speculative decoding with tree verification on the
 * CPU backend, end to end on stories260K: greedy prompt-lookup decoding
 * reproduces the llama2.c fixtures exactly (it must equal plain greedy
 * decoding token for token), commits more than one token per forward, and
 * stochastic verification (deterministic drafts) is reproducible.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

Test(spec_cpu, lookup_greedy_reproduces_fixtures) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--temperature", "0", "--ignore-eos", "--print-ids", "--spec", "lookup",
      "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  char *expect = deco_test_fixture_line("fixtures/stories260K/greedy_bos_256.ids");
  cr_assert_str_eq(r.out, expect);
  free(expect);
  double ma = deco_test_stat(r.err, "mean_accepted=");
  cr_assert(!isnan(ma), "no mean_accepted in %s", r.err);
  fprintf(stderr, "lookup from BOS, 256 positions: %s\n", deco_test_last_line(r.err));
  cr_assert(ma > 1.3, "prompt lookup should commit well over one token per forward here (%.2f)", ma);
  deco_test_run_free(&r);

  DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--tokenizer", deco_test_data_file("models/tok512.bin"), "--prompt",
      "Once upon a time, there was a little dog named Max.", "--temperature", "0", "--ignore-eos", "--print-ids",
      "--steps", "200", "--spec", "lookup", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  expect = deco_test_fixture_line("fixtures/stories260K/greedy_dog_200.ids");
  cr_assert_str_eq(r.out, expect);
  free(expect);
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
  deco_forward_args_t f0 = {1, &s[0], &n5, pa, NULL, NULL, DECO_LOGITS_LAST, logits};
  deco_forward_args_t f1 = {1, &s[1], &n3, pb, NULL, NULL, DECO_LOGITS_LAST, logits};
  deco_forward_args_t f2 = {1, &s[2], &n5, pa, NULL, NULL, DECO_LOGITS_LAST, logits};
  deco_forward_args_t f3 = {1, &s[3], &n3, pb, NULL, NULL, DECO_LOGITS_LAST, logits};
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
  deco_spec_sampling_t g = {0.0f, 0, 1.0f, 1, 0};
  int32_t e1[2 * DECO_TREE_MAX_NODES], e2[2 * DECO_TREE_MAX_NODES];
  int n1[2], n2[2], na = 4, nb = 3, nn[2] = {4, 3};
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
  deco_forward_args_t fd = {1, &s[0], &one, &next, NULL, NULL, DECO_LOGITS_LAST, logits};
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
