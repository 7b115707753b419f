/* tests/test_draft_model.c — model drafts (deco_drafter_create_model) on
 * stories260K on the CPU: the target as its own draft accepts every draft
 * (each full step commits K + 1); greedy output equals plain greedy for
 * layer subsets, chains and trees; the draft's KV cache after compaction
 * equals, bit for bit, a draft fed only the accepted ids; bad drafts and
 * layer lists are refused; and at T = 0.7 a sampled chain and a top-w tree
 * have the law of plain sampling (two-sample chi-square per position), a
 * sampled chain drafted inside the device-resident step as well,
 * and so do siblings sampled without replacement, while verifying top-w
 * drafts as though they were drawn from q is rejected (the test-only
 * switch of host/draft/model_draft_mutant.h; this suite links
 * deco_internal).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/draft/model_draft_mutant.h"
#include "common/stats.h"
#include "common/testutil.h"
#include "common/tolerances.h"

static const int32_t dog_prompt[] = {1, 403, 407, 261, 378, 432, 383, 286, 261};
#define N_DOG ((int)(sizeof dog_prompt / sizeof dog_prompt[0]))

static deco_drafter_t *layer_drafter(deco_model_t *m, const int *layers, int n, int K, int W, int nodes) {
  const deco_model_draft_config_t c = deco_test_draft_config(layers, n, K, W, nodes, 300);
  return deco_test_model_drafter(m, NULL, &c);
}

Test(draft_model, target_as_its_own_draft_accepts_everything) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_model_t *copy = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int all[] = {0, 1, 2, 3, 4};
  cr_assert_eq(deco_model_get_hparams(m)->n_layers, 5);
  for (int K = 1; K <= 8; K += 3) {
    for (int source = 0; source < 2; ++source) {
      deco_drafter_t *d;
      if (source == 0) {
        const deco_model_draft_config_t c = deco_test_draft_config(NULL, 0, K, 1, 0, 256);
        d = deco_test_model_drafter(m, copy, &c);
      } else {
        d = layer_drafter(m, all, 5, K, 1, 0);
      }
      deco_test_capture_t cap;
      deco_generate_stats_t st;
      deco_test_greedy(m, d, dog_prompt, 1, 256, &cap, &st);
      /* 256 ids after BOS (one per position), K + 1 per step but the last. */
      const int expect_forwards = (256 + K) / (K + 1);
      const double mean = (double)st.tokens / st.forwards;
      fprintf(stderr, "self-draft (%s) K=%d: %d tokens in %d forwards, mean_accepted %.3f\n",
              source ? "every layer" : "a second copy", K, st.tokens, st.forwards, mean);
      cr_assert_eq(st.tokens, 256);
      cr_assert_eq(st.forwards, expect_forwards, "every full step commits K + 1");
      cr_assert(mean >= K + 1 - 0.1);
      deco_drafter_destroy(d);
    }
  }
  deco_model_destroy(copy);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(draft_model, greedy_equals_plain_for_subsets_chains_and_trees) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_test_capture_t plain, spec;
  deco_generate_stats_t st;
  deco_test_greedy(m, NULL, dog_prompt, N_DOG, 200, &plain, &st);
  static const struct {
    int layers[5], n, K, W, nodes;
  } cases[] = {{{0}, 1, 4, 1, 0},          {{0, 4}, 2, 2, 1, 0},     {{0, 1, 2}, 3, 8, 1, 0},
               {{1, 3}, 2, 4, 4, 16},      {{0, 2, 4}, 3, 6, 4, 64}, {{0, 1, 3, 4}, 4, 8, 2, 32},
               {{4}, 1, 3, 16, 48}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    deco_drafter_t *d = layer_drafter(m, cases[i].layers, cases[i].n, cases[i].K, cases[i].W, cases[i].nodes);
    deco_test_greedy(m, d, dog_prompt, N_DOG, 200, &spec, &st);
    fprintf(stderr, "case %zu (%d layers, K=%d, W=%d, nodes %d): mean_accepted %.3f\n", i, cases[i].n, cases[i].K,
            cases[i].W, cases[i].nodes, (double)st.tokens / st.forwards);
    cr_assert_eq(spec.n, plain.n, "case %zu", i);
    cr_assert_eq(memcmp(spec.ids, plain.ids, sizeof(int32_t) * (size_t)plain.n), 0, "case %zu differs from plain", i);
    cr_assert(st.forwards < st.tokens, "case %zu: drafts were accepted", i);
    deco_drafter_destroy(d);
  }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* One drafter (a draft cache for one sequence) over consecutive runs on a
 * caller's cache, each with a handle of its own, kept for inspection:
 * every run equals plain decoding (deco_generate lets go of the earlier
 * sequences' drafts); by hand, deco_drafter_end frees a draft sequence for
 * the next begin; a run longer than the drafter's max_len is refused up
 * front. */
Test(draft_model, one_drafter_serves_consecutive_sequences) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_test_capture_t plain, spec;
  deco_generate_stats_t st;
  deco_test_greedy(m, NULL, dog_prompt, N_DOG, 100, &plain, &st);
  const int layers[] = {0, 1};
  deco_drafter_t *d = layer_drafter(m, layers, 2, 4, 1, 0);
  deco_kv_cache_t *kc;
  cr_assert_eq(deco_kv_cache_create(m, 16, 200, 4, &kc), DECO_STATUS_SUCCESS);
  int h = -1;
  for (int round = 0; round < 3; ++round) {
    cr_assert_eq(deco_kv_cache_admit(kc, 100 + deco_drafter_max_nodes(d), &h), DECO_STATUS_SUCCESS);
    deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
    c.steps = 100, c.temperature = 0.0f, c.ignore_eos = 1, c.drafter = d, c.cache = kc, c.seq = h;
    deco_test_generate(m, dog_prompt, N_DOG, c, &spec, &st);
    cr_assert_eq(spec.n, plain.n, "round %d (sequence %d)", round, h);
    cr_assert_eq(memcmp(spec.ids, plain.ids, sizeof(int32_t) * (size_t)plain.n), 0, "round %d differs", round);
  }
  deco_kv_cache_destroy(kc);
  /* By hand: the one draft sequence is held until ended, the last run's too. */
  cr_assert_eq(deco_drafter_begin(d, m, 7, dog_prompt, N_DOG), DECO_STATUS_CAPACITY, "the last run's is held");
  deco_drafter_end(d, h);
  cr_assert_eq(deco_drafter_begin(d, m, 7, dog_prompt, N_DOG), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_drafter_begin(d, m, 8, dog_prompt, N_DOG), DECO_STATUS_CAPACITY, "a second sequence at once");
  deco_drafter_end(d, 7);
  deco_drafter_end(d, 3); /* never begun: nothing to do */
  cr_assert_eq(deco_drafter_begin(d, m, 8, dog_prompt, N_DOG), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_drafter_destroy(d);
  /* A drafter of max_len 50 (a chain of 4 drafts) reserves 50 + 256 slots
   * a sequence, so it serves 302 steps (spec.h: max_len + 256 - 4),
   * on the host loop and the device-resident one alike, each equal to plain
   * decoding there: a run of 400 is refused before any id (the host loop
   * failed at the draft cache's end, mid-run), and so is one of 303. */
  const deco_model_draft_config_t small = deco_test_draft_config(layers, 2, 4, 1, 0, 50);
  d = deco_test_model_drafter(m, NULL, &small);
  deco_test_capture_t none = {.n = 0};
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = 400, c.temperature = 0.0f, c.ignore_eos = 1, c.drafter = d, c.emit = deco_test_capture_id, c.user = &none;
  deco_test_refused(ctx, deco_generate(m, dog_prompt, N_DOG, &c, &st), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_generate: steps = 400, but the drafter's draft cache (its max_len) serves at most 302");
  cr_assert_eq(none.n, 0);
  c.steps = 303;
  deco_test_refused(ctx, deco_generate(m, dog_prompt, N_DOG, &c, &st), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_generate: steps = 303, but the drafter's draft cache (its max_len) serves at most 302");
  deco_test_capture_t full;
  deco_test_greedy(m, NULL, dog_prompt, N_DOG, 302, &full, &st);
  for (int device = 0; device < 2; ++device) {
    c.steps = 302, c.device_resident = device, c.emit = NULL, c.user = NULL;
    deco_test_generate(m, dog_prompt, N_DOG, c, &spec, &st);
    cr_assert(spec.n == full.n && memcmp(spec.ids, full.ids, sizeof(int32_t) * (size_t)full.n) == 0,
              "302 steps, device_resident %d: not plain decoding's ids", device);
  }
  deco_drafter_destroy(d);
  /* A chain drafts min(draft_len, max_nodes) nodes: a budget of 64 for a
   * chain of 4 leaves the limit at 302. */
  deco_model_draft_config_t budget = small;
  budget.max_nodes = 64;
  d = deco_test_model_drafter(m, NULL, &budget);
  c.drafter = d, c.steps = 303, c.device_resident = 0;
  deco_test_refused(ctx, deco_generate(m, dog_prompt, N_DOG, &c, &st), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_generate: steps = 303, but the drafter's draft cache (its max_len) serves at most 302");
  c.steps = 302;
  cr_assert_eq(deco_generate(m, dog_prompt, N_DOG, &c, &st), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_drafter_destroy(d);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(draft_model, draft_kv_after_compaction_equals_a_draft_fed_the_accepted_ids) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int layers[] = {0, 2, 3};
  /* A top-w tree (accepted paths leave the first child: compaction moves
   * K/V) and a chain. */
  const int shapes[][3] = {{5, 3, 24}, {4, 1, 0}};
  for (int sh = 0; sh < 2; ++sh) {
    deco_drafter_t *d = layer_drafter(m, layers, 3, shapes[sh][0], shapes[sh][1], shapes[sh][2]);
    deco_test_capture_t cap;
    deco_generate_stats_t st;
    deco_test_greedy(m, d, dog_prompt, N_DOG, 150, &cap, &st);
    int dseq;
    deco_kv_cache_t *kc = deco_drafter_model_cache(d, 0, &dseq);
    cr_assert_not_null(kc);
    const int n = deco_kv_cache_seq_len(kc, dseq);
    cr_assert(n > 100 && n < cap.n, "the draft committed %d of %d ids", n, cap.n);
    /* A fresh view of the same layers fed ids[0..n) in one causal forward. */
    size_t elems;
    const size_t diff = deco_test_draft_kv_diff(m, layers, 3, kc, dseq, cap.ids, n, &elems);
    fprintf(stderr, "shape %d: %d committed draft slots, mean_accepted %.3f, %zu of %zu values differ\n", sh, n,
            (double)st.tokens / st.forwards, diff, elems);
    cr_assert_eq(diff, 0, "the draft's K/V after compaction must equal a draft fed the accepted ids, bit for bit");
    deco_drafter_destroy(d);
  }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* What drafting costs in draft tokens: the host loop forwards a chain's
 * round as its pending ids (at most the last draft and the bonus) and then
 * one token per level, so a level averages at most two tokens; a tree
 * re-forwards every node above its frontier, so it costs more than its
 * forwards. Other drafters have no such count. */
Test(draft_model, host_chain_forwards_one_new_token_per_level) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int layers[] = {0, 2, 3};
  const int shapes[][3] = {{8, 1, 0}, {4, 1, 0}, {5, 3, 24}};
  for (int sh = 0; sh < 3; ++sh) {
    deco_drafter_t *d = layer_drafter(m, layers, 3, shapes[sh][0], shapes[sh][1], shapes[sh][2]);
    deco_test_capture_t cap;
    deco_generate_stats_t st;
    deco_test_greedy(m, d, dog_prompt, N_DOG, 150, &cap, &st);
    const long fw = deco_drafter_model_forwards(d), tok = deco_drafter_model_tokens(d);
    fprintf(stderr, "K=%d W=%d: %ld draft tokens in %ld draft forwards (%ld prompt ids)\n", shapes[sh][0],
            shapes[sh][1], tok, fw, (long)N_DOG);
    cr_assert(fw > 20 && tok >= fw, "shape %d: %ld tokens in %ld forwards", sh, tok, fw);
    if (shapes[sh][1] == 1)
      cr_assert_leq(tok, N_DOG + 2 * fw, "chain K=%d: %ld draft tokens in %ld forwards: levels re-forward the chain",
                    shapes[sh][0], tok, fw);
    else
      cr_assert_gt(tok, N_DOG + 2 * fw, "tree: %ld draft tokens in %ld forwards", tok, fw);
    deco_drafter_destroy(d);
  }
  deco_drafter_t *lookup = NULL;
  const deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT;
  cr_assert_eq(deco_drafter_create_lookup(&lc, &lookup), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_drafter_model_tokens(lookup), -1);
  cr_assert_eq(deco_drafter_model_tokens(NULL), -1);
  deco_drafter_destroy(lookup);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(draft_model, bad_drafts_and_layer_lists_are_refused) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_model_t *tiny = NULL;
  cr_assert_eq(deco_model_create_synthetic(ctx, "tiny", DECO_SYNTHETIC_SEED, NULL, &tiny), DECO_STATUS_SUCCESS);
  deco_model_draft_config_t c = DECO_MODEL_DRAFT_CONFIG_INIT;
  deco_drafter_t *d = NULL;
  cr_assert_eq(deco_drafter_create_model(m, tiny, &c, &d), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(ctx), "vocabulary") != NULL, "%s", deco_last_error(ctx));
  cr_assert_null(d);
  c.target_tokenizer_hash = 1;
  c.draft_tokenizer_hash = 2;
  cr_assert_eq(deco_drafter_create_model(m, m, &c, &d), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(ctx), "tokenizer") != NULL, "%s", deco_last_error(ctx));
  c.draft_tokenizer_hash = 1;
  cr_assert_eq(deco_drafter_create_model(m, m, &c, &d), DECO_STATUS_SUCCESS);
  deco_drafter_destroy(d);
  c = (deco_model_draft_config_t)DECO_MODEL_DRAFT_CONFIG_INIT;
  static const struct {
    int layers[6], n;
  } bad[] = {{{0}, 0}, {{0, 0}, 2}, {{2, 1}, 2}, {{5}, 1}, {{-1}, 1}, {{0, 1, 2, 3, 4, 4}, 6}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    c.layers = bad[i].layers;
    c.n_layers = bad[i].n;
    cr_assert_eq(deco_drafter_create_model(m, NULL, &c, &d), DECO_STATUS_INVALID_ARGUMENT, "list %zu", i);
    cr_assert_null(d);
  }
  c.layers = (const int[]){0, 1, 2, 3, 4};
  c.n_layers = 5;
  cr_assert_eq(deco_drafter_create_model(m, NULL, &c, &d), DECO_STATUS_SUCCESS, "a list may name every layer");
  deco_drafter_destroy(d);
  c.width = 0;
  cr_assert_eq(deco_drafter_create_model(m, NULL, &c, &d), DECO_STATUS_INVALID_ARGUMENT);
  deco_model_destroy(tiny);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* ---- Two-sample test: sampled model drafts vs plain sampling ----
 * As tests/test_spec_recycle.c: per-position histograms of the first
 * HORIZON generated ids at T = 0.7, speculative against plain, Bonferroni
 * over the positions; the same test must reject top-w drafts verified
 * with the rule for drafts sampled from q. */

#define HORIZON 3
#define RUNS 3000
#define RUNS_BROKEN 1000

/* DEVICE_CHAIN, DEVICE_TREE: CHAIN, TOPW_TREE drafted and verified inside
 * the device-resident step. */
typedef enum shape { PLAIN, CHAIN, TOPW_TREE, SAMPLED_TREE, PARALLEL_CHAIN, DEVICE_CHAIN, DEVICE_TREE } shape_t;

static void sample(deco_model_t *m, shape_t shape, int runs, uint64_t seed0, long hist[HORIZON][512], long *tokens,
                   long *forwards) {
  static const int layers[] = {0, 2, 4}, every[] = {0, 1, 2, 3, 4};
  memset(hist, 0, sizeof(long) * HORIZON * 512);
  *tokens = *forwards = 0;
  for (int r = 0; r < runs; ++r) {
    deco_drafter_t *d = NULL;
    const uint64_t seed = seed0 + (uint64_t)r;
    if (shape != PLAIN) {
      deco_model_draft_config_t c = DECO_MODEL_DRAFT_CONFIG_INIT;
      const int chain = shape == CHAIN || shape == PARALLEL_CHAIN || shape == DEVICE_CHAIN;
      c.layers = shape == PARALLEL_CHAIN ? every : layers;
      c.n_layers = shape == PARALLEL_CHAIN ? 5 : 3;
      c.layer_parallel = shape == PARALLEL_CHAIN ? 3 : 0; /* layers 1-3 in one group, calibrated */
      c.draft_len = 3;
      c.width = chain ? 1 : 3;
      c.max_nodes = chain ? 0 : 9;
      c.sample_siblings = shape == SAMPLED_TREE;
      c.temperature = 0.7f;
      c.seed = seed ^ 0x9E3779B97F4A7C15ull;
      c.max_len = 16;
      cr_assert_eq(deco_drafter_create_model(m, NULL, &c, &d), DECO_STATUS_SUCCESS);
    }
    deco_generate_config_t cfg = DECO_GENERATE_CONFIG_INIT;
    cfg.steps = N_DOG + HORIZON - 1;
    cfg.temperature = 0.7f;
    cfg.ignore_eos = 1;
    cfg.drafter = d;
    cfg.device_resident = shape == DEVICE_CHAIN || shape == DEVICE_TREE;
    cfg.seed = seed;
    deco_test_capture_t cap = {.n = 0};
    cfg.emit = deco_test_capture_id;
    cfg.user = &cap;
    deco_generate_stats_t st;
    cr_assert_eq(deco_generate(m, dog_prompt, N_DOG, &cfg, &st), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(deco_model_ctx(m)));
    cr_assert_eq(cap.n, N_DOG + HORIZON);
    for (int h = 0; h < HORIZON; ++h) hist[h][cap.ids[N_DOG + h]]++;
    *tokens += st.tokens;
    *forwards += st.forwards;
    deco_drafter_destroy(d);
  }
}

static int rejections(const char *what, long plain[HORIZON][512], long b[HORIZON][512], double *p_min) {
  const double alpha = DECO_TEST_ALPHA / HORIZON;
  int rejected = 0;
  *p_min = 1;
  for (int h = 0; h < HORIZON; ++h) {
    const double p = deco_test_homogeneity_pvalue(plain[h], b[h], 512, NULL, NULL);
    fprintf(stderr, "%-40s position %d: p %.3g\n", what, h, p);
    rejected += p <= alpha;
    if (p < *p_min) *p_min = p;
  }
  return rejected;
}

static void check_law(shape_t shape, const char *name, int check_broken) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  static long hp[HORIZON][512], hs[HORIZON][512], hb[HORIZON][512];
  long tokens, forwards;
  double p_min;
  sample(m, PLAIN, RUNS, 1000, hp, &tokens, &forwards);
  if (check_broken) {
    deco_model_draft_mutant = DECO_MODEL_DRAFT_MUTANT_TOP_AS_SAMPLED;
    sample(m, shape, RUNS_BROKEN, 700000, hb, &tokens, &forwards);
    deco_model_draft_mutant = DECO_MODEL_DRAFT_CORRECT;
    char what[96];
    snprintf(what, sizeof what, "%s, broken: top-w verified as sampled", name);
    cr_assert(rejections(what, hp, hb, &p_min) > 0,
              "%s: the test cannot tell top-w drafts verified as samples from q from plain sampling (smallest p %g)",
              name, p_min);
  }
  /* The device chain draws what the host chain draws from the same keys:
   * other keys make its sample independent of the host chain's. */
  sample(m, shape, RUNS, shape == DEVICE_CHAIN ? 950000 : shape == DEVICE_TREE ? 970000 : 900000, hs, &tokens,
         &forwards);
  fprintf(stderr, "%s: %ld tokens in %ld forwards, mean accepted %.3f\n", name, tokens, forwards,
          (double)tokens / forwards);
  cr_assert(forwards < tokens, "%s: no draft was ever accepted", name);
  cr_assert_eq(rejections(name, hp, hs, &p_min), 0, "%s differs from plain sampling (smallest p %g)", name, p_min);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(draft_model, sampled_chain_has_the_law_of_plain_sampling, .timeout = 300) {
  check_law(CHAIN, "sampled chain", 1);
}

/* The device loop's sampled chain (deco_draft_chain's draws, the chain
 * rule with its q rows). The broken rule is the host drafter's switch, so
 * the power check is the host chain's above. */
Test(draft_model, device_sampled_chain_has_the_law_of_plain_sampling, .timeout = 300) {
  check_law(DEVICE_CHAIN, "device-resident sampled chain", 0);
}

Test(draft_model, top_w_tree_has_the_law_of_plain_sampling, .timeout = 300) {
  check_law(TOPW_TREE, "top-w tree", 1);
}

/* The device loop's top-w tree (its fixed shape, the
 * deterministic rule at T = 0.7). The broken rule is the host drafter's
 * switch: the power check is the host tree's above. */
Test(draft_model, device_top_w_tree_has_the_law_of_plain_sampling) {
  check_law(DEVICE_TREE, "device-resident top-w tree", 0);
}

Test(draft_model, sampled_siblings_have_the_law_of_plain_sampling, .timeout = 300) {
  check_law(SAMPLED_TREE, "sampled siblings", 1);
}

/* ---- The CLI: --spec draft ---- */

Test(draft_model, cli_greedy_equals_plain_and_prints_the_stats) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  deco_test_run_t plain, r;
  DECO_TEST_RUN_CLI(&plain, "generate", "--model", model, "--temperature", "0", "--print-ids", "--steps", "120",
                    "--backend", "cpu");
  cr_assert_eq(plain.status, 0, "%s", plain.err);
  const char *const configs[][8] = {
      {"--draft-layers", "0-2", NULL},
      {"--draft-layers", "4,0-1", "--draft-width", "3", "--tree-nodes", "24", NULL},
      {"--draft-layers", "0-4", "--draft-len", "6", NULL},
      {"--draft-model", model, NULL},
      {"--draft-layers", "0-4", "--layer-parallel", "3", NULL},
      {"--draft-layers", "0-3", "--layer-parallel", "2", "--no-calibrate", "--draft-width", "2", NULL},
  };
  for (size_t i = 0; i < sizeof configs / sizeof configs[0]; ++i) {
    const char *argv[32] = {"generate", "--model", model, "--temperature", "0", "--print-ids", "--steps", "120",
                            "--backend", "cpu", "--spec", "draft"};
    int n = 12;
    for (int j = 0; configs[i][j]; ++j) argv[n++] = configs[i][j];
    argv[n] = NULL;
    cr_assert_eq(deco_test_run_cli(argv, &r), 0);
    cr_assert_eq(r.status, 0, "config %zu: %s", i, r.err);
    cr_assert_str_eq(r.out, plain.out, "config %zu", i);
    const char *stats = deco_test_last_line(r.err);
    fprintf(stderr, "config %zu: %s\n", i, stats);
    cr_assert(strstr(stats, "model=stories260K.bin forwards=") && strstr(stats, " mean_accepted="), "%s", stats);
    deco_test_run_free(&r);
  }
  /* --layer-parallel 1 is no grouping: the same ids and stats. */
  deco_test_run_t a, b;
  DECO_TEST_RUN_CLI(&a, "generate", "--model", model, "--temperature", "0", "--print-ids", "--steps", "120",
                    "--backend", "cpu", "--spec", "draft", "--draft-layers", "0,1,2,4");
  DECO_TEST_RUN_CLI(&b, "generate", "--model", model, "--temperature", "0", "--print-ids", "--steps", "120",
                    "--backend", "cpu", "--spec", "draft", "--draft-layers", "0,1,2,4", "--layer-parallel", "1");
  cr_assert(a.status == 0 && b.status == 0, "%s%s", a.err, b.err);
  cr_assert_str_eq(a.out, b.out);
  cr_assert_eq(deco_test_stat(a.err, "forwards="), deco_test_stat(b.err, "forwards="));
  deco_test_run_free(&a);
  deco_test_run_free(&b);
  /* Every layer, or the target itself: K + 1 per full step (K = 4 by default). */
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--temperature", "0", "--ignore-eos", "--print-ids", "--steps",
                    "256", "--backend", "cpu", "--spec", "draft", "--draft-model", model);
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(deco_test_stat(r.err, "mean_accepted=") >= 5 - 0.1, "%s", r.err);
  deco_test_run_free(&r);
  deco_test_run_free(&plain);
}

/* --draft-len is cut to --steps: a tree re-forwards every node above its
 * frontier at each level, so a depth-255, width-16 tree on a 40-step run
 * drafted 255 levels it then dropped (49 s on a 2-core x86-64 VM against
 * 3 s for depth 40). Cut, depth 255 is depth 40: the same ids and the same
 * forwards (uncut, depth 255 took 29 forwards to depth 40's 18). */
Test(draft_model, cli_draft_len_is_cut_to_the_steps) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  deco_test_run_t plain, r[2];
  DECO_TEST_RUN_CLI(&plain, "generate", "--model", model, "--temperature", "0", "--print-ids", "--steps", "40",
                    "--backend", "cpu");
  cr_assert_eq(plain.status, 0, "%s", plain.err);
  const char *const depth[2] = {"40", "255"};
  for (int k = 0; k < 2; ++k) {
    DECO_TEST_RUN_CLI(&r[k], "generate", "--model", model, "--temperature", "0", "--print-ids", "--steps", "40",
                      "--backend", "cpu", "--spec", "draft", "--draft-layers", "0-2", "--draft-len", depth[k],
                      "--draft-width", "16");
    cr_assert_eq(r[k].status, 0, "%s", r[k].err);
    cr_assert_str_eq(r[k].out, plain.out, "--draft-len %s", depth[k]);
    fprintf(stderr, "--draft-len %s: %s\n", depth[k], deco_test_last_line(r[k].err));
  }
  cr_assert_eq(deco_test_stat(r[1].err, "forwards="), deco_test_stat(r[0].err, "forwards="),
               "depth 255 cut to 40 is depth 40: the same forwards");
  for (int k = 0; k < 2; ++k) deco_test_run_free(&r[k]);
  deco_test_run_free(&plain);
}

Test(draft_model, cli_refuses_bad_lists_and_drafts) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  static const struct {
    const char *a, *b, *c, *d;
    int status;
    const char *msg;
  } cases[] = {
      {"--spec", "draft", "--draft-layers", "0-5", 1, "outside the 5 layers"},
      {"--spec", "draft", "--draft-layers", "0-2,2", 2, "twice"},
      {"--spec", "draft", "--draft-layers", "2-1", 2, "empty"},
      {"--spec", "draft", "--draft-layers", "", 2, "not a comma-separated list"},
      {"--spec", "draft", "--draft-layers", "1,,2", 2, "not a comma-separated list"},
      {"--spec", "draft", "--draft-width", "2", 2, "needs --draft-model FILE or --draft-layers"},
      {"--spec", "lookup", "--draft-layers", "0", 2, "needs --spec draft"},
      {"--spec", "draft", "--draft-width", "17", 2, "outside"},
      {"--spec", "lookup", "--layer-parallel", "2", 2, "needs --spec draft"},
  };
  static const struct {
    const char *a, *b, *c, *d, *e;
    int status;
    const char *msg;
  } more[] = {
      {"--draft-layers", "0-4", "--no-calibrate", "--draft-len", "2", 2, "--no-calibrate needs --layer-parallel"},
      {"--draft-layers", "0-4", "--layer-parallel", "4", "--no-calibrate", 1, "more than the draft's 3 middle layers"},
  };
  deco_test_run_t r;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--print-ids", "--steps", "8", "--backend", "cpu", cases[i].a,
                      cases[i].b, cases[i].c, cases[i].d);
    cr_assert_eq(r.status, cases[i].status, "case %zu: %s", i, r.err);
    cr_assert(strstr(r.err, cases[i].msg) != NULL, "case %zu: %s", i, r.err);
    deco_test_run_free(&r);
  }
  for (size_t i = 0; i < sizeof more / sizeof more[0]; ++i) {
    DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--print-ids", "--steps", "8", "--backend", "cpu", "--spec",
                      "draft", more[i].a, more[i].b, more[i].c, more[i].d, more[i].e);
    cr_assert_eq(r.status, more[i].status, "case %zu: %s", i, r.err);
    cr_assert(strstr(r.err, more[i].msg) != NULL, "case %zu: %s", i, r.err);
    deco_test_run_free(&r);
  }
  /* A draft whose vocabulary differs (the synthetic tiny model has 259 ids). */
  DECO_TEST_RUN_CLI(&r, "generate", "--synthetic", "tiny", "--print-ids", "--steps", "8", "--backend", "cpu", "--spec",
                    "draft", "--draft-model", model);
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strstr(r.err, "vocabulary") != NULL, "%s", r.err);
  deco_test_run_free(&r);
}

Test(draft_model, layer_parallel_sampled_chain_has_the_law_of_plain_sampling, .timeout = 300) {
  check_law(PARALLEL_CHAIN, "layer-parallel sampled chain", 1);
}

/* The config's integer ranges, then the temperature: a config with every
 * value bad is refused for each in turn, in order, with its exact message,
 * as the values are fixed one by one; then it is accepted. */
Test(draft_model, config_ranges_refused_in_order) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_model_draft_config_t c = DECO_MODEL_DRAFT_CONFIG_INIT;
  c.layers = (const int[]){0, 2};
  c.n_layers = 2;
  c.draft_len = 256;
  c.width = 17;
  c.max_nodes = -1;
  c.sample_siblings = 2;
  c.max_len = (1 << 24) + 1;
  c.max_seqs = -1;
  c.layer_parallel = 17;
  c.no_calibrate = -1;
  c.temperature = NAN;
  deco_drafter_t *d = NULL;
#define REFUSED_THEN(msg, fix)                                                                   \
  do {                                                                                           \
    deco_test_refused(ctx, deco_drafter_create_model(m, NULL, &c, &d), DECO_STATUS_INVALID_ARGUMENT, \
                      "deco_drafter_create_model: " msg);                                       \
    cr_assert_null(d);                                                                           \
    fix;                                                                                         \
  } while (0)
  REFUSED_THEN("c->draft_len = 256 outside [1, 255]", c.draft_len = 0);
  REFUSED_THEN("c->draft_len = 0 outside [1, 255]", c.draft_len = 3);
  REFUSED_THEN("c->width = 17 outside [1, 16]", c.width = 0);
  REFUSED_THEN("c->width = 0 outside [1, 16]", c.width = 2);
  REFUSED_THEN("c->max_nodes = -1 outside [0, 255]", c.max_nodes = 256);
  REFUSED_THEN("c->max_nodes = 256 outside [0, 255]", c.max_nodes = 0);
  REFUSED_THEN("c->sample_siblings = 2 outside [0, 1]", c.sample_siblings = 1);
  REFUSED_THEN("c->max_len = 16777217 outside [0, 16777216]", c.max_len = 0);
  REFUSED_THEN("c->max_seqs = -1 outside [0, 65536]", c.max_seqs = 65537);
  REFUSED_THEN("c->max_seqs = 65537 outside [0, 65536]", c.max_seqs = 0);
  REFUSED_THEN("c->layer_parallel = 17 outside [0, 16]", c.layer_parallel = -1);
  REFUSED_THEN("c->layer_parallel = -1 outside [0, 16]", c.layer_parallel = 0);
  REFUSED_THEN("c->no_calibrate = -1 outside [0, 1]", c.no_calibrate = 2);
  REFUSED_THEN("c->no_calibrate = 2 outside [0, 1]", c.no_calibrate = 0);
  REFUSED_THEN("temperature nan is not a finite value >= 0", c.temperature = -1.0f);
  REFUSED_THEN("temperature -1 is not a finite value >= 0", c.temperature = INFINITY);
  REFUSED_THEN("temperature inf is not a finite value >= 0", c.temperature = 0.5f);
#undef REFUSED_THEN
  cr_assert_eq(deco_drafter_create_model(m, NULL, &c, &d), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_drafter_destroy(d);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
