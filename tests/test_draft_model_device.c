/* tests/test_draft_model_device.c — model drafts inside the device-resident
 * step (deco_generate with device_resident = 1), run on the CPU backend,
 * whose plain-C twins make the whole device loop testable here: a
 * deterministic chain (a layer subset or a separate draft) decodes exactly
 * what the host-driven loop decodes, ids and stats, greedy and at T = 0.7
 * with the same seed; greedy equals plain greedy; the target as its own
 * draft commits K + 1 ids per full step from a one-id prompt; the draft's
 * KV cache after a device run equals, bit for bit, a draft fed the
 * accepted ids, and the drafter begins again on the host loop; runs to
 * the end of the context clip the chain; the plan sizes every buffer; and
 * trees with sampled siblings and layer-parallel drafts are refused by the
 * device loop, naming why. Deterministic top-w trees (the fixed shape of
 * deco/spec.h) on the device loop: greedy equals plain greedy, the target as its
 * own draft commits depth + 1 per full step, the draft's K/V after a run
 * equals a draft fed the ids (compacted along paths off rank 0), runs to
 * the end of the context; deco_draft_chain's tree-mode arguments.
 * Sampled chains (T > 0): the device loop draws and accepts what the
 * host loop does, over seeds, K, layer subsets, a separate draft and the
 * target as its own draft (which then accepts about every draft); a draft
 * with non-finite logits drafts its argmax on both loops.
 * deco_draft_chain's stages, argmax order and clipping are checked on
 * their own, and so is its sampled mode: q against softmax, its sum, the
 * draw against the header's rule and, over many keys, against q
 * (chi-square), non-finite rows and bad arguments.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/draft/drafter.h" /* shape_parents: the device tree's fixed shape */
#include "common/stats.h"
#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/tree_shape.h"
#include "deco/philox.h"

static const int32_t dog_prompt[] = {1, 403, 407, 261, 378, 432, 383, 286, 261};
#define N_DOG ((int)(sizeof dog_prompt / sizeof dog_prompt[0]))

typedef struct run_cfg {
  int steps;
  float temperature;
  uint64_t seed;
  int ignore_eos;
} run_cfg_t;

static void generate(deco_model_t *m, deco_drafter_t *d, int device, const int32_t *prompt, int n_prompt,
                     run_cfg_t rc, deco_test_capture_t *cap, deco_generate_stats_t *st) {
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = rc.steps;
  c.temperature = rc.temperature;
  c.seed = rc.seed;
  c.ignore_eos = rc.ignore_eos;
  c.drafter = d;
  c.device_resident = device;
  deco_test_generate(m, prompt, n_prompt, c, cap, st);
}

/* A chain of K drafts, sampled at temperature T > 0 with the draws' seed. */
static deco_drafter_t *sampled_drafter(deco_model_t *m, deco_model_t *draft, const int *layers, int n, int K,
                                       int max_len, float T, uint64_t seed) {
  deco_model_draft_config_t c = deco_test_draft_config(layers, n, K, 1, 0, max_len);
  c.temperature = T;
  c.seed = seed;
  deco_drafter_t *d = deco_test_model_drafter(m, draft, &c);
  cr_assert_eq(deco_drafter_device_resident(d), 1, "a chain (T = %g) drafts on the device", (double)T);
  cr_assert_eq(deco_drafter_max_nodes(d), K + 1);
  return d;
}

static deco_drafter_t *chain_drafter(deco_model_t *m, deco_model_t *draft, const int *layers, int n, int K,
                                     int max_len) {
  return sampled_drafter(m, draft, layers, n, K, max_len, 0.0f, 0);
}

/* A top-W tree of at most `nodes` drafts and depth K (temperature T,
 * deterministic drafts): device-resident, with the shape of deco/spec.h
 * (deco_test_tree_shape). */
static deco_drafter_t *tree_drafter(deco_model_t *m, deco_model_t *draft, const int *layers, int n, int K, int W,
                                    int nodes, int max_len, float T, int *depth) {
  deco_model_draft_config_t c = deco_test_draft_config(layers, n, K, W, nodes, max_len);
  c.temperature = T;
  c.seed = 31;
  deco_drafter_t *d = deco_test_model_drafter(m, draft, &c);
  cr_assert_eq(deco_drafter_device_resident(d), 1, "a top-%d tree (T = %g) drafts on the device", W, (double)T);
  int32_t par[DECO_TREE_MAX_NODES];
  const int want = deco_test_tree_shape(K, W, nodes, par, depth);
  cr_assert_eq(deco_drafter_max_nodes(d), want, "W=%d K=%d nodes=%d: %d nodes, the rule gives %d", W, K, nodes,
               deco_drafter_max_nodes(d), want);
  cr_assert_eq(memcmp(d->shape_parents, par, sizeof(int32_t) * (size_t)want), 0,
               "W=%d K=%d nodes=%d: the shape differs from the rule", W, K, nodes);
  return d;
}

/* The host loop and the device loop with one drafter (begun afresh by each
 * run): the same ids and the same stats. */
static void host_vs_device(const char *what, deco_model_t *m, deco_drafter_t *d, const int32_t *prompt, int n_prompt,
                           run_cfg_t rc, deco_test_capture_t *dev, deco_generate_stats_t *sd) {
  static deco_test_capture_t host;
  deco_generate_stats_t sh;
  generate(m, d, 0, prompt, n_prompt, rc, &host, &sh);
  generate(m, d, 1, prompt, n_prompt, rc, dev, sd);
  deco_test_same_run(what, &host, &sh, dev, sd);
}

/* a holds exactly b's ids. */
static void expect_same_ids(const char *what, const deco_test_capture_t *a, const deco_test_capture_t *b) {
  cr_assert_eq(a->n, b->n, "%s: %d ids, %d expected", what, a->n, b->n);
  cr_assert_eq(memcmp(a->ids, b->ids, sizeof(int32_t) * (size_t)b->n), 0, "%s differs", what);
}

/* The target as its own draft (d: a second copy or every layer, drafting
 * depth ids deep on the device loop) from a one-id prompt: 256 tokens,
 * every full step commits depth + 1 ids (and mean_accepted is at least
 * depth + 0.9 when check_mean), and the ids are plain greedy's (plain). */
static void expect_full_steps(const char *what, deco_model_t *m, deco_drafter_t *d, int depth, int check_mean,
                              const deco_test_capture_t *plain) {
  static deco_test_capture_t dev;
  deco_generate_stats_t st;
  const run_cfg_t rc = {.steps = 256, .temperature = 0.0f, .ignore_eos = 1};
  generate(m, d, 1, dog_prompt, 1, rc, &dev, &st);
  const double mean = (double)st.tokens / st.forwards;
  fprintf(stderr, "%s: %d tokens in %d forwards, mean_accepted %.3f\n", what, st.tokens, st.forwards, mean);
  cr_assert_eq(st.tokens, 256, "%s", what);
  cr_assert_eq(st.forwards, (256 + depth) / (depth + 1), "%s: every full step commits depth + 1", what);
  if (check_mean) cr_assert(mean >= depth + 1 - 0.1, "%s: mean_accepted %.3f", what, mean);
  expect_same_ids(what, &dev, plain);
}

/* The target as its own draft: a chain of K drafts (W == 0) or a top-W
 * tree of depth K and at most `nodes` drafts. */
typedef struct self_draft_case {
  int K, W, nodes, check_mean;
} self_draft_case_t;

/* Each case with both self-drafts (a second copy with max_len 256, every
 * layer with max_len layers_max_len) passes expect_full_steps against
 * plain greedy from the one-id prompt (the first round has no id before
 * the root: len 0). */
static void expect_self_draft_full_steps(const self_draft_case_t *cases, int n_cases, int layers_max_len) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_model_t *copy = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int all[] = {0, 1, 2, 3, 4};
  const run_cfg_t rc = {.steps = 256, .temperature = 0.0f, .ignore_eos = 1};
  static deco_test_capture_t plain;
  deco_generate_stats_t st;
  generate(m, NULL, 0, dog_prompt, 1, rc, &plain, &st);
  for (int i = 0; i < n_cases; ++i) {
    const self_draft_case_t sc = cases[i];
    for (int source = 0; source < 2; ++source) {
      deco_model_t *draft = source ? NULL : copy;
      const int max_len = source ? layers_max_len : 256;
      int depth = sc.K;
      deco_drafter_t *d = sc.W ? tree_drafter(m, draft, source ? all : NULL, source ? 5 : 0, sc.K, sc.W, sc.nodes,
                                              max_len, 0.0f, &depth)
                               : chain_drafter(m, draft, source ? all : NULL, source ? 5 : 0, sc.K, max_len);
      char what[96];
      snprintf(what, sizeof what, "device %s, self-draft (%s) K=%d W=%d nodes=%d depth %d", sc.W ? "tree" : "loop",
               source ? "every layer" : "a second copy", sc.K, sc.W, sc.nodes, depth);
      expect_full_steps(what, m, d, depth, sc.check_mean, &plain);
      deco_drafter_destroy(d);
    }
  }
  deco_model_destroy(copy);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(draft_model_device, device_loop_equals_host_loop_and_plain_greedy) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_model_t *copy = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  static deco_test_capture_t plain, dev;
  deco_generate_stats_t st;
  const run_cfg_t rc = {.steps = 200, .temperature = 0.0f, .ignore_eos = 1};
  generate(m, NULL, 0, dog_prompt, N_DOG, rc, &plain, &st);
  static const struct {
    int layers[5], n, K, separate;
  } cases[] = {{{0, 2, 3}, 3, 4, 0}, {{0}, 1, 1, 0}, {{0, 4}, 2, 8, 0}, {{0}, 0, 8, 1}, {{0}, 0, 1, 1}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    deco_drafter_t *d = chain_drafter(m, cases[i].separate ? copy : NULL, cases[i].layers, cases[i].n, cases[i].K, 300);
    char what[64];
    snprintf(what, sizeof what, "case %zu (K=%d)", i, cases[i].K);
    host_vs_device(what, m, d, dog_prompt, N_DOG, rc, &dev, &st);
    fprintf(stderr, "%s: device loop %d tokens in %d forwards, mean_accepted %.3f\n", what, st.tokens, st.forwards,
            (double)st.tokens / st.forwards);
    expect_same_ids(what, &dev, &plain);
    cr_assert(st.forwards < st.tokens, "%s: drafts were accepted", what);
    deco_drafter_destroy(d);
  }
  /* The stop rule (the model's stop ids) ends both loops at the same id. */
  deco_drafter_t *d = chain_drafter(m, NULL, (const int[]){0, 1, 3}, 3, 3, 0);
  const run_cfg_t stop = {.steps = 512, .temperature = 0.0f, .ignore_eos = 0};
  host_vs_device("stop ids", m, d, dog_prompt, N_DOG, stop, &dev, &st);
  cr_assert(dev.n < 512 + 1, "the story ends before the context does (%d ids)", dev.n);
  deco_drafter_destroy(d);
  deco_model_destroy(copy);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(draft_model_device, target_as_its_own_draft_commits_k_plus_one) {
  /* The stats check (mean_accepted); with K = 8 no run reaches it
   * over 256 positions (the last step is partial: at best 256 / 29 = 8.83),
   * and the forwards check is the exact one. */
  static const self_draft_case_t chains[] = {{1, 0, 0, 1}, {4, 0, 0, 1}, {8, 0, 0, 0}};
  expect_self_draft_full_steps(chains, 3, 0);
}

Test(draft_model_device, sampling_with_a_greedy_chain_equals_the_host_loop) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  static deco_test_capture_t dev;
  deco_generate_stats_t st;
  deco_drafter_t *d = chain_drafter(m, NULL, (const int[]){0, 2, 4}, 3, 4, 0);
  long tokens = 0, forwards = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const run_cfg_t rc = {.steps = 120, .temperature = 0.7f, .seed = seed * 7919, .ignore_eos = 1};
    char what[32];
    snprintf(what, sizeof what, "T=0.7 seed %llu", (unsigned long long)rc.seed);
    host_vs_device(what, m, d, dog_prompt, seed & 1 ? N_DOG : 1, rc, &dev, &st);
    tokens += st.tokens;
    forwards += st.forwards;
  }
  fprintf(stderr, "T=0.7, greedy chain K=4 on the device loop: mean_accepted %.3f\n", (double)tokens / forwards);
  cr_assert(forwards < tokens, "some drafts were accepted");
  deco_drafter_destroy(d);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* Sampled chains (q = softmax(draft / T), the chain rule with q): the
 * device loop draws the ids the host loop draws (the same Philox counter,
 * the same sums on the CPU) and accepts alike, over seeds, K = 1, 4, 8, a
 * layer subset, a separate draft and the target as its own draft. */
Test(draft_model_device, sampled_chain_device_loop_equals_host_loop) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_model_t *copy = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  static deco_test_capture_t dev;
  deco_generate_stats_t st;
  static const struct {
    int layers[5], n, K, separate;
  } cases[] = {{{0, 2, 3}, 3, 4, 0}, {{0}, 1, 1, 0},   {{0, 4}, 2, 8, 0},
               {{0}, 0, 4, 1},       {{0, 1, 2, 3, 4}, 5, 8, 0}, {{0}, 0, 1, 1}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    long tokens = 0, forwards = 0;
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      deco_drafter_t *d = sampled_drafter(m, cases[i].separate ? copy : NULL, cases[i].layers, cases[i].n,
                                          cases[i].K, 300, 0.7f, seed * 104729 + i);
      const run_cfg_t rc = {.steps = 100, .temperature = 0.7f, .seed = seed * 7919 + i, .ignore_eos = 1};
      char what[64];
      snprintf(what, sizeof what, "sampled case %zu (K=%d) seed %llu", i, cases[i].K, (unsigned long long)seed);
      host_vs_device(what, m, d, dog_prompt, seed & 1 ? N_DOG : 1, rc, &dev, &st);
      tokens += st.tokens;
      forwards += st.forwards;
      deco_drafter_destroy(d);
    }
    fprintf(stderr, "sampled chain case %zu (K=%d), T=0.7, device loop: mean_accepted %.3f\n", i, cases[i].K,
            (double)tokens / forwards);
    cr_assert(forwards < tokens, "case %zu: drafts were accepted", i);
  }
  deco_model_destroy(copy);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* The target as its own sampled draft: q is the target's distribution, so
 * the chain rule (u q(x) < p(x)) accepts about every draft; the rule for
 * deterministic drafts (u < p(x)) would accept far fewer, and so would a
 * q row of the wrong node. */
Test(draft_model_device, sampled_self_draft_accepts_about_everything) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int all[] = {0, 1, 2, 3, 4};
  static deco_test_capture_t dev;
  deco_generate_stats_t st;
  const int Ks[] = {1, 4};
  for (int k = 0; k < 2; ++k) {
    deco_drafter_t *d = sampled_drafter(m, NULL, all, 5, Ks[k], 0, 0.7f, 99);
    const run_cfg_t rc = {.steps = 256, .temperature = 0.7f, .seed = 4242, .ignore_eos = 1};
    generate(m, d, 1, dog_prompt, 1, rc, &dev, &st);
    const double mean = (double)st.tokens / st.forwards;
    fprintf(stderr, "device loop, sampled self-draft K=%d: %d tokens in %d forwards, mean_accepted %.3f\n", Ks[k],
            st.tokens, st.forwards, mean);
    cr_assert_eq(st.tokens, 256);
    cr_assert(mean >= Ks[k] + 1 - 0.1, "K=%d: mean_accepted %.3f", Ks[k], mean);
    deco_drafter_destroy(d);
  }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* stories260K with its RMSNorm weights at 3e38 (deco_test_stories_overflow):
 * every logit it gives is non-finite. */
static deco_model_t *load_overflow(deco_ctx_t *ctx) {
  size_t size;
  void *w = deco_test_stories_overflow(&size);
  deco_model_t *m;
  cr_assert_eq(deco_model_load_llama2c_buffer(ctx, w, size, "overflow.bin", NULL, &m), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  free(w);
  return m;
}

/* A draft whose logits are not finite drafts its argmax (NaN below every
 * number: id 0 for an all-NaN row) with q the point mass there, on both
 * loops alike: the run goes on, lossless, at the target's pace. */
Test(draft_model_device, a_non_finite_draft_drafts_its_argmax_on_both_loops) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_model_t *bad = load_overflow(ctx);
  static deco_test_capture_t dev;
  deco_generate_stats_t st;
  for (int hot = 0; hot < 2; ++hot) {
    deco_drafter_t *d = sampled_drafter(m, bad, NULL, 0, 4, 200, hot ? 0.7f : 0.0f, 5);
    const run_cfg_t rc = {.steps = 60, .temperature = hot ? 0.7f : 0.0f, .seed = 77, .ignore_eos = 1};
    host_vs_device(hot ? "non-finite draft, T=0.7" : "non-finite draft, T=0", m, d, dog_prompt, N_DOG, rc, &dev,
                   &st);
    cr_assert_eq(dev.n, 61);
    /* The drafts were the argmax of the draft's rows (the same id at
     * every level), so the host loop verified K of them per step as well. */
    int32_t tokens[DECO_TREE_MAX_NODES], parents[DECO_TREE_MAX_NODES];
    int nodes;
    cr_assert_eq(deco_drafter_draft(d, 0, tokens, parents, &nodes), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    cr_assert_eq(nodes, 5, "a non-finite row still drafts (T=%d)", hot);
    for (int j = 2; j < nodes; ++j) cr_assert_eq(tokens[j], tokens[1]);
    deco_drafter_destroy(d);
  }
  deco_model_destroy(bad);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* After a device run of d (drafting with m's layers[0..n_layers)) that
 * emitted cap's ids: the host state commits all but the last two positions
 * before the root, the draft's committed K/V equals a draft fed the ids,
 * bit for bit, and the host loop drafts on from that state what a drafter
 * begun on every id drafts (ids and parents). Returns how many nodes. */
static int expect_draft_caught_up(const char *what, deco_model_t *m, deco_drafter_t *d, const int *layers,
                                  int n_layers, const deco_test_capture_t *cap) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  int dseq;
  deco_kv_cache_t *kc = deco_drafter_model_cache(d, 0, &dseq);
  cr_assert_not_null(kc, "%s", what);
  const int n = deco_kv_cache_seq_len(kc, dseq);
  cr_assert_eq(n, cap->n - 3, "%s: the host state commits all but the last two positions before the root (%d of %d)",
               what, n, cap->n);
  size_t elems;
  const size_t diff = deco_test_draft_kv_diff(m, layers, n_layers, kc, dseq, cap->ids, n, &elems);
  fprintf(stderr, "%s: %d committed draft slots, %zu of %zu values differ\n", what, n, diff, elems);
  cr_assert_eq(diff, 0, "%s: the draft's K/V must equal a draft fed the ids, bit for bit", what);
  int32_t tokens[DECO_TREE_MAX_NODES], parents[DECO_TREE_MAX_NODES];
  int32_t fresh[DECO_TREE_MAX_NODES], fresh_parents[DECO_TREE_MAX_NODES];
  int nodes, fresh_nodes;
  cr_assert_eq(deco_drafter_draft(d, 0, tokens, parents, &nodes), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(tokens[0], cap->ids[cap->n - 1], "%s: the root is the last id emitted", what);
  cr_assert_eq(deco_drafter_begin(d, m, 0, cap->ids, cap->n), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_drafter_draft(d, 0, fresh, fresh_parents, &fresh_nodes), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  cr_assert_eq(fresh_nodes, nodes, "%s", what);
  cr_assert_eq(memcmp(tokens, fresh, sizeof(int32_t) * (size_t)nodes), 0, "%s: the drafts after it differ", what);
  cr_assert_eq(memcmp(parents, fresh_parents, sizeof(int32_t) * (size_t)nodes), 0, "%s: the parents differ", what);
  return nodes;
}

Test(draft_model_device, draft_kv_after_a_device_run_equals_a_draft_fed_the_ids) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int layers[] = {0, 2, 3};
  deco_drafter_t *d = chain_drafter(m, NULL, layers, 3, 5, 300);
  static deco_test_capture_t cap;
  deco_generate_stats_t st;
  const run_cfg_t rc = {.steps = 150, .temperature = 0.0f, .ignore_eos = 1};
  generate(m, d, 1, dog_prompt, N_DOG, rc, &cap, &st);
  cr_assert_eq(expect_draft_caught_up("device run", m, d, layers, 3, &cap), 6);
  /* ... and begins afresh on the host loop: the same ids as plain greedy. */
  static deco_test_capture_t again, plain;
  generate(m, NULL, 0, dog_prompt, N_DOG, rc, &plain, &st);
  generate(m, d, 0, dog_prompt, N_DOG, rc, &again, &st);
  expect_same_ids("the host loop after a device run", &again, &plain);
  deco_drafter_destroy(d);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(draft_model_device, runs_to_the_end_of_the_context_and_near_the_step_limit) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int seq_len = deco_model_get_hparams(m)->seq_len;
  static deco_test_capture_t dev;
  deco_generate_stats_t st;
  /* The whole context, the draft cache sized by the model (max_len 0). */
  deco_drafter_t *d = chain_drafter(m, NULL, (const int[]){0, 1, 4}, 3, 6, 0);
  const run_cfg_t full = {.steps = seq_len, .temperature = 0.0f, .ignore_eos = 1};
  host_vs_device("to the end of the context", m, d, dog_prompt, 1, full, &dev, &st);
  cr_assert_eq(dev.n, seq_len + 1, "one id per position, the prompt's included");
  /* A step limit a few positions past the prompt: the chain is clipped
   * (its deeper forwards are empty), from every remainder. */
  for (int steps = N_DOG - 1; steps <= N_DOG + 8; ++steps) {
    const run_cfg_t rc = {.steps = steps, .temperature = 0.0f, .ignore_eos = 1};
    char what[32];
    snprintf(what, sizeof what, "steps %d", steps);
    host_vs_device(what, m, d, dog_prompt, N_DOG, rc, &dev, &st);
    cr_assert_eq(dev.n, steps + 1, "%s", what);
  }
  deco_drafter_destroy(d);
  /* A draft cache that cannot hold the run is refused, not overrun. */
  d = chain_drafter(m, NULL, (const int[]){0, 1, 4}, 3, 6, 16);
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = 400;
  c.temperature = 0.0f;
  c.drafter = d;
  c.device_resident = 1;
  cr_assert_eq(deco_generate(m, dog_prompt, N_DOG, &c, &st), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(ctx), "max_len") != NULL, "%s", deco_last_error(ctx));
  deco_drafter_destroy(d);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(draft_model_device, sampled_trees_and_layer_parallel_stay_on_the_host) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int layers[] = {0, 1, 2, 3, 4};
  static const struct {
    int width, parallel, siblings;
    float temperature;
    const char *why;
  } cases[] = {{2, 0, 1, 0.7f, "sampled siblings"}, {1, 2, 0, 0.7f, "layer-parallel"},
               {1, 2, 0, 0.0f, "layer-parallel"}, {3, 0, 1, 1.0f, "width 3"}, {2, 2, 0, 0.0f, "layer-parallel"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    deco_model_draft_config_t dc = DECO_MODEL_DRAFT_CONFIG_INIT;
    dc.layers = layers;
    dc.n_layers = 5;
    dc.width = cases[i].width;
    dc.layer_parallel = cases[i].parallel;
    dc.sample_siblings = cases[i].siblings;
    dc.temperature = cases[i].temperature;
    deco_drafter_t *d = NULL;
    cr_assert_eq(deco_drafter_create_model(m, NULL, &dc, &d), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    cr_assert_eq(deco_drafter_device_resident(d), 0, "case %zu", i);
    deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
    c.steps = 32;
    c.temperature = cases[i].temperature;
    c.drafter = d;
    c.device_resident = 1;
    deco_generate_stats_t st;
    cr_assert_eq(deco_generate(m, dog_prompt, N_DOG, &c, &st), DECO_STATUS_UNSUPPORTED, "case %zu", i);
    const char *err = deco_last_error(ctx);
    cr_assert(strstr(err, "drafts on the host") != NULL && strstr(err, cases[i].why) != NULL, "case %zu: %s", i, err);
    c.device_resident = 0;
    cr_assert_eq(deco_generate(m, dog_prompt, N_DOG, &c, &st), DECO_STATUS_SUCCESS, "case %zu: the host loop: %s", i,
                 deco_last_error(ctx));
    deco_drafter_destroy(d);
  }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* ---- deco_draft_chain on its own ---- */

typedef struct chain_bufs {
  deco_spec_state_t state;
  float logits[2][8];
  int32_t chain[5], prev, path[DECO_TREE_MAX_NODES], accept_len;
  int32_t tokens[2], positions[2], q_indptr[2], kv_lens, prefix_lens;
} chain_bufs_t;

static deco_draft_chain_args_t chain_args(chain_bufs_t *b, int stage) {
  return (deco_draft_chain_args_t){.stage = stage, .draft_len = 4, .steps = 20, .max_slots = 64, .vocab = 8,
                                   .state = &b->state, .logits = &b->logits[0][0], .chain = b->chain,
                                   .prev = &b->prev, .path = b->path, .accept_len = &b->accept_len,
                                   .tokens = b->tokens, .positions = b->positions, .q_indptr = b->q_indptr,
                                   .kv_lens = &b->kv_lens, .prefix_lens = &b->prefix_lens};
}

Test(draft_model_device, draft_chain_batches_argmax_clipping_and_prev) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  static chain_bufs_t b;
  memset(&b, 0, sizeof b);
  b.state = (deco_spec_state_t){.len = 10, .root = 7};
  b.prev = 3;
  b.chain[0] = 7;
  deco_draft_chain_args_t a = chain_args(&b, DECO_DRAFT_CHAIN_START);
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert(b.tokens[0] == 3 && b.tokens[1] == 7 && b.positions[0] == 9 && b.positions[1] == 10);
  cr_assert(b.q_indptr[0] == 0 && b.q_indptr[1] == 2 && b.kv_lens == 11 && b.prefix_lens == 9);
  /* Level 1 reads the last row (row 1): the largest value, equal values by
   * the lower id, NaN below every number. */
  const float row1[8] = {NAN, 0.5f, 2.0f, -1.0f, 2.0f, NAN, 1.0f, 0.0f};
  memcpy(b.logits[1], row1, sizeof row1);
  for (int i = 0; i < 8; ++i) b.logits[0][i] = i == 6 ? 9.0f : 0.0f; /* row 0 is not the one read */
  a.stage = 1;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.chain[1], 2);
  cr_assert(b.tokens[0] == 2 && b.positions[0] == 11 && b.q_indptr[1] == 1 && b.kv_lens == 12 && b.prefix_lens == 11);
  /* Level 2 reads row 0 (one token); -0 ties with +0. */
  const float row0[8] = {-1.0f, -0.0f, 0.0f, -2.0f, -0.5f, -3.0f, -0.0f, -1.0f};
  memcpy(b.logits[0], row0, sizeof row0);
  a.stage = 2;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.chain[2], 1);
  cr_assert(b.tokens[0] == 1 && b.positions[0] == 12 && b.kv_lens == 13);
  /* Every value NaN: id 0. */
  for (int i = 0; i < 8; ++i) b.logits[0][i] = NAN;
  a.stage = 3;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.chain[3], 0);
  /* The last level writes the chain's end and no batch. */
  b.logits[0][5] = 4.0f;
  b.kv_lens = -7;
  a.stage = 4;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.chain[4], 5);
  cr_assert_eq(b.kv_lens, -7, "no forward follows level K");
  /* Observe: accept_len 3 (root and two drafts): prev <- chain[path[2]]. */
  b.path[0] = 0;
  b.path[1] = 1;
  b.path[2] = 2;
  b.accept_len = 3;
  a.stage = DECO_DRAFT_CHAIN_OBSERVE;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.prev, 1);
  b.accept_len = 1;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.prev, 7, "nothing accepted: the root is the id before the next root");
  b.accept_len = 6;
  b.prev = 42;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.prev, 42, "an accept_len past the chain changes nothing");
  b.accept_len = 2;
  b.state.done = 1;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.prev, 42, "nothing once done");
  /* Once done every forward is empty. */
  a.stage = DECO_DRAFT_CHAIN_START;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.q_indptr[1], 0);
  b.state.done = 0;
  /* len 0: the root alone at position 0. */
  b.state.len = 0;
  b.prev = -1;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert(b.tokens[0] == 7 && b.positions[0] == 0 && b.q_indptr[1] == 1 && b.kv_lens == 1 && b.prefix_lens == 0);
  /* steps 20, len 17: depths <= 2 are verified, so forwards 1 and 2 run, 3
   * and 4 are empty (and their drafts 0). */
  b.state.len = 17;
  b.prev = 3;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.q_indptr[1], 2);
  for (int i = 0; i < 8; ++i) b.logits[1][i] = b.logits[0][i] = i == 4 ? 1.0f : 0.0f;
  for (int l = 1; l <= 4; ++l) {
    a.stage = l;
    cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
    cr_assert_eq(b.chain[l], l <= 2 ? 4 : 0, "level %d", l);
    if (l < 4) cr_assert_eq(b.q_indptr[1], l + 1 <= 2 ? 1 : 0, "forward %d", l + 1);
  }
  /* A forward whose slot reaches max_slots is empty. */
  a.max_slots = 18;
  b.state.len = 10;
  a.stage = 1;
  b.q_indptr[1] = 1;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS); /* forward 2 ends at slot 12 < 18 */
  cr_assert_eq(b.q_indptr[1], 1);
  a.max_slots = 11;
  a.stage = DECO_DRAFT_CHAIN_START;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.q_indptr[1], 2, "forward 1 ends at slot 10 < 11");
  a.stage = 1;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.q_indptr[1], 0, "forward 2 would write slot 11");
  cr_assert(b.kv_lens == 11 && b.prefix_lens == 11, "an empty forward stays inside the reservation");
  /* Bad arguments. */
  a.stage = 5;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_INVALID_ARGUMENT);
  a.stage = 1;
  a.logits = NULL;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_NULL_POINTER);
  deco_ctx_destroy(ctx);
}

/* ---- deco_draft_chain's sampled mode ---- */

typedef struct sample_bufs {
  chain_bufs_t c;
  float q[4][8];
} sample_bufs_t;

/* The header's rule, written out: q = softmax(row / T) in double, then the
 * first id whose running sum of q exceeds u * (the sum of q). */
static int32_t expected_draw(const float *row, float T, float u, double *q) {
  double m = -INFINITY, z = 0;
  for (int i = 0; i < 8; ++i) m = row[i] > m ? row[i] : m;
  for (int i = 0; i < 8; ++i) z += exp(((double)row[i] - m) / T);
  double total = 0;
  for (int i = 0; i < 8; ++i) total += (float)(exp(((double)row[i] - m) / T) / z);
  for (int i = 0; i < 8; ++i) q[i] = exp(((double)row[i] - m) / T) / z;
  double cum = 0;
  for (int i = 0; i < 8; ++i) {
    cum += (float)q[i];
    if (cum > (double)u * total) return i;
  }
  return 7;
}

static void expect_point_mass(const float *q, int at, const char *what) {
  for (int i = 0; i < 8; ++i) cr_assert_eq(q[i], i == at ? 1.0f : 0.0f, "%s: q[%d] = %g", what, i, (double)q[i]);
}

Test(draft_model_device, draft_chain_samples_from_softmax_with_the_drafters_counter) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  static sample_bufs_t b;
  memset(&b, 0, sizeof b);
  b.c.state = (deco_spec_state_t){.len = 10, .root = 7};
  b.c.prev = 3;
  deco_draft_chain_args_t a = chain_args(&b.c, 1);
  a.temperature = 0.7f;
  a.seed = 123;
  a.q = &b.q[0][0];
  const float row[8] = {0.5f, -1.0f, 2.0f, 0.0f, 1.5f, -3.0f, 0.25f, 1.0f};
  memcpy(b.c.logits[1], row, sizeof row);
  b.c.q_indptr[1] = 2;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  double want[8], sum = 0;
  const float u0 = deco_philox_uniform(123, 10, DECO_DRAFT_CHAIN_STREAM, 0, 0);
  const int32_t x0 = expected_draw(row, 0.7f, u0, want);
  for (int i = 0; i < 8; ++i) {
    cr_assert(fabs(b.q[0][i] - want[i]) <= DECO_TOL_F32_ELEMENTWISE * want[i], "q[%d] = %.9g, softmax %.9g", i,
              (double)b.q[0][i], want[i]);
    sum += b.q[0][i];
  }
  cr_assert(fabs(sum - 1.0) <= 8 * DECO_TOL_F32_ELEMENTWISE, "q sums to %.9g", sum);
  cr_assert_eq(b.c.chain[1], x0, "u = %g", (double)u0);
  cr_assert(b.c.tokens[0] == x0 && b.c.positions[0] == 11 && b.c.q_indptr[1] == 1, "the next batch carries the draw");
  /* Level 2: q row 1, the counter's node word 1. */
  memcpy(b.c.logits[0], row, sizeof row);
  a.stage = 2;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(memcmp(b.q[1], b.q[0], sizeof b.q[0]), 0, "the same row gives the same q");
  const float u1 = deco_philox_uniform(123, 10, DECO_DRAFT_CHAIN_STREAM, 1, 0);
  cr_assert_eq(b.c.chain[2], expected_draw(row, 0.7f, u1, want));

  /* Over many keys the draws follow q (chi-square against softmax). */
  static long counts[8];
  const long n = 20000;
  a.stage = 1;
  for (long k = 0; k < n; ++k) {
    a.seed = 0x9E3779B97F4A7C15ull * (uint64_t)(k + 1);
    b.c.q_indptr[1] = 2;
    cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
    counts[b.c.chain[1]]++;
  }
  int df;
  const double p = deco_test_chi2_pvalue(counts, want, 8, n, &df);
  fprintf(stderr, "draft_chain draws vs softmax(row / 0.7): p %.3g (%d df)\n", p, df);
  cr_assert(p > DECO_TEST_ALPHA, "the draws do not follow q (p %g)", p);

  /* Non-finite rows: the point mass at the argmax (NaN below every number). */
  const float nan_row[8] = {NAN, 0.5f, 2.0f, -1.0f, 2.0f, NAN, 1.0f, 0.0f};
  const float inf_row[8] = {0.0f, INFINITY, 1.0f, INFINITY, -INFINITY, 2.0f, 0.0f, 0.0f};
  const struct {
    const float *row;
    int at;
    const char *what;
  } bad[] = {{nan_row, 2, "a NaN"}, {inf_row, 1, "+inf"}, {NULL, 0, "every value -inf"}, {NULL, 0, "every value NaN"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    for (int y = 0; y < 8; ++y)
      b.c.logits[1][y] = bad[i].row ? bad[i].row[y] : i == 2 ? -INFINITY : NAN;
    b.c.q_indptr[1] = 2;
    cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
    cr_assert_eq(b.c.chain[1], bad[i].at, "%s", bad[i].what);
    expect_point_mass(b.q[0], bad[i].at, bad[i].what);
  }
  /* A row with -inf entries beside finite ones is sampled: q is 0 there. */
  const float minf_row[8] = {-INFINITY, 1.0f, -INFINITY, 1.0f, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  memcpy(b.c.logits[1], minf_row, sizeof minf_row);
  b.c.q_indptr[1] = 2;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  for (int i = 0; i < 8; ++i) cr_assert_eq(b.q[0][i], i == 1 || i == 3 ? 0.5f : 0.0f, "q[%d]", i);
  cr_assert(b.c.chain[1] == 1 || b.c.chain[1] == 3);
  /* An empty forward (a clipped node): id 0, the point mass at 0. */
  b.c.q_indptr[1] = 0;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.c.chain[1], 0);
  expect_point_mass(b.q[0], 0, "an empty forward");
  /* T = 0 takes the argmax and leaves q alone. */
  memcpy(b.c.logits[1], row, sizeof row);
  b.c.q_indptr[1] = 2;
  for (int i = 0; i < 8; ++i) b.q[0][i] = 7.0f;
  a.temperature = 0.0f;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(b.c.chain[1], 2);
  for (int i = 0; i < 8; ++i) cr_assert_eq(b.q[0][i], 7.0f);
  /* Bad arguments. */
  const float bad_t[3] = {-0.5f, INFINITY, NAN};
  for (int i = 0; i < 3; ++i) {
    a.temperature = bad_t[i];
    cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_INVALID_ARGUMENT, "temperature %g", (double)bad_t[i]);
  }
  a.temperature = 0.7f;
  a.q = NULL;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_NULL_POINTER);
  a.stage = DECO_DRAFT_CHAIN_START; /* no row is read: q is not needed */
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS);
  deco_ctx_destroy(ctx);
}

/* ---- Deterministic top-w trees inside the device-resident step ---- */

/* Greedy: the device tree decodes plain greedy's ids, over widths 2 and 3,
 * budgets of 8 to 32 drafts, layer subsets and a separate draft, from a
 * prompt and from one id (len 0: no id before the root). */
Test(draft_model_device, device_tree_greedy_equals_plain_greedy) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_model_t *copy = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  static deco_test_capture_t plain[2], dev;
  deco_generate_stats_t st;
  const run_cfg_t rc = {.steps = 160, .temperature = 0.0f, .ignore_eos = 1};
  generate(m, NULL, 0, dog_prompt, N_DOG, rc, &plain[0], &st);
  generate(m, NULL, 0, dog_prompt, 1, rc, &plain[1], &st);
  static const struct {
    int layers[5], n, K, W, nodes, separate;
  } cases[] = {{{0, 2, 3}, 3, 4, 2, 8, 0},  {{0, 4}, 2, 3, 3, 12, 0}, {{0}, 1, 6, 2, 32, 0},
               {{0}, 0, 4, 3, 20, 1},       {{0}, 0, 5, 2, 16, 1},    {{0, 1, 3}, 3, 2, 3, 9, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    for (int one = 0; one < 2; ++one) {
      int depth;
      deco_drafter_t *d = tree_drafter(m, cases[i].separate ? copy : NULL, cases[i].layers, cases[i].n, cases[i].K,
                                       cases[i].W, cases[i].nodes, 300, 0.0f, &depth);
      generate(m, d, 1, dog_prompt, one ? 1 : N_DOG, rc, &dev, &st);
      fprintf(stderr, "tree case %zu (W=%d, %d drafts, depth %d)%s: %d tokens in %d forwards, mean_accepted %.3f\n",
              i, cases[i].W, deco_drafter_max_nodes(d) - 1, depth, one ? ", one-id prompt" : "", st.tokens,
              st.forwards, (double)st.tokens / st.forwards);
      char what[48];
      snprintf(what, sizeof what, "tree case %zu%s", i, one ? ", one-id prompt" : "");
      expect_same_ids(what, &dev, &plain[one]);
      cr_assert(st.forwards < st.tokens, "case %zu: drafts were accepted", i);
      deco_drafter_destroy(d);
    }
  }
  deco_model_destroy(copy);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* The target as its own draft: the rank-0 path of every level is the
 * target's argmax and reaches the full depth, so every full step commits
 * depth + 1 ids. */
Test(draft_model_device, device_tree_target_as_its_own_draft_commits_a_full_path) {
  static const self_draft_case_t trees[] = {{3, 2, 14, 1}, {4, 3, 20, 1}, {2, 3, 12, 1}};
  expect_self_draft_full_steps(trees, 3, 256);
}

/* After a device run with a tree (accepted paths leave rank 0, so the
 * draft cache is compacted), the draft's K/V equals a draft fed the
 * emitted ids, bit for bit; the host loop drafts on from that state. */
Test(draft_model_device, device_tree_draft_kv_equals_a_draft_fed_the_ids) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int layers[] = {0, 3};
  int depth;
  deco_drafter_t *d = tree_drafter(m, NULL, layers, 2, 4, 3, 24, 300, 0.0f, &depth);
  static deco_test_capture_t cap, plain;
  deco_generate_stats_t st;
  const run_cfg_t rc = {.steps = 150, .temperature = 0.0f, .ignore_eos = 1};
  generate(m, d, 1, dog_prompt, N_DOG, rc, &cap, &st);
  generate(m, NULL, 0, dog_prompt, N_DOG, rc, &plain, &st);
  expect_same_ids("device tree run", &cap, &plain);
  expect_draft_caught_up("device tree run", m, d, layers, 2, &cap);
  deco_drafter_destroy(d);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* To the end of the context (the deeper levels' forwards go empty and
 * prepare clips the deep nodes) and near the step limit: plain greedy's
 * ids; a draft cache that cannot hold the tree's slots is refused. */
Test(draft_model_device, device_tree_runs_to_the_end_of_the_context) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int seq_len = deco_model_get_hparams(m)->seq_len;
  static deco_test_capture_t dev, plain;
  deco_generate_stats_t st;
  int depth;
  deco_drafter_t *d = tree_drafter(m, NULL, (const int[]){0, 1, 4}, 3, 5, 2, 20, 0, 0.0f, &depth);
  const run_cfg_t full = {.steps = seq_len, .temperature = 0.0f, .ignore_eos = 1};
  generate(m, NULL, 0, dog_prompt, 1, full, &plain, &st);
  generate(m, d, 1, dog_prompt, 1, full, &dev, &st);
  cr_assert_eq(dev.n, seq_len + 1, "one id per position, the prompt's included");
  expect_same_ids("to the end of the context", &dev, &plain);
  for (int steps = N_DOG - 1; steps <= N_DOG + 7; ++steps) {
    const run_cfg_t rc = {.steps = steps, .temperature = 0.0f, .ignore_eos = 1};
    generate(m, NULL, 0, dog_prompt, N_DOG, rc, &plain, &st);
    generate(m, d, 1, dog_prompt, N_DOG, rc, &dev, &st);
    char what[32];
    snprintf(what, sizeof what, "steps %d", steps);
    cr_assert_eq(dev.n, steps + 1, "%s", what);
    expect_same_ids(what, &dev, &plain);
  }
  deco_drafter_destroy(d);
  /* max_len 16: 16 + 256 reserved slots; 250 steps and a 21-node tree
   * would reach slot 270 < 272, 260 steps would not. */
  d = tree_drafter(m, NULL, (const int[]){0, 1, 4}, 3, 5, 2, 20, 16, 0.0f, &depth);
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.temperature = 0.0f;
  c.drafter = d;
  c.device_resident = 1;
  c.steps = 260;
  cr_assert_eq(deco_generate(m, dog_prompt, N_DOG, &c, &st), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(ctx), "max_len") != NULL, "%s", deco_last_error(ctx));
  c.steps = 250;
  cr_assert_eq(deco_generate(m, dog_prompt, N_DOG, &c, &st), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_drafter_destroy(d);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* deco_draft_chain's tree mode refuses what it cannot run: a width past
 * deco_topk_rows' k, a tree too large for one forward, a missing shape,
 * fparents at the start, topk at a level. */
Test(draft_model_device, draft_chain_tree_mode_checks_its_arguments) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_spec_state_t state = DECO_SPEC_STATE_INIT;
  state.len = 5;
  int32_t chain[8] = {0}, prev = 1, tokens[9], positions[9], q_indptr[2] = {0, 0}, kv_lens, prefix_lens;
  int32_t shape[7] = {-1, 0, 0, 1, 1, 2, 2}, topk[18] = {0}, fparents[8];
  deco_draft_chain_args_t a = DECO_DRAFT_CHAIN_ARGS_INIT;
  a.draft_len = 2;
  a.steps = 100;
  a.max_slots = 400;
  a.state = &state;
  a.chain = chain;
  a.prev = &prev;
  a.tokens = tokens;
  a.positions = positions;
  a.q_indptr = q_indptr;
  a.kv_lens = &kv_lens;
  a.prefix_lens = &prefix_lens;
  a.width = 2;
  a.n_nodes = 7;
  a.shape = shape;
  a.topk = topk;
  a.fparents = fparents;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  const int32_t want_par[8] = {-1, 0, 1, 1, 2, 2, 3, 3};
  cr_assert_eq(memcmp(fparents, want_par, sizeof want_par), 0, "the forwards' parents under prev");
  cr_assert(q_indptr[1] == 2 && tokens[0] == 1 && positions[0] == 4 && positions[1] == 5 && kv_lens == 6 &&
            prefix_lens == 4);
  a.width = 17;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_INVALID_ARGUMENT);
  a.width = 2;
  a.n_nodes = DECO_TREE_MAX_NODES;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_INVALID_ARGUMENT);
  a.n_nodes = 7;
  a.shape = NULL;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_NULL_POINTER);
  a.shape = shape;
  a.fparents = NULL;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_NULL_POINTER);
  a.stage = 1;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_SUCCESS, "fparents are written at the start only");
  a.topk = NULL;
  cr_assert_eq(deco_draft_chain(ctx, &a), DECO_STATUS_NULL_POINTER);
  deco_ctx_destroy(ctx);
}
