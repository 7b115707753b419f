/* tests/gpu/test_draft_model_cuda.c — model drafts on the CUDA backend
 * (stories260K, f32 and bf16). On the host loop each draft level is one
 * eager forward of the draft on the device and the step runs through the
 * host engine; a deterministic chain also drafts inside the device-resident
 * step, replayed as a CUDA graph (deco_draft_chain between the draft
 * forwards), and the graphed loop gives the eager device loop's ids and
 * stats bit for bit, from a one-id prompt (len 0) to the step limit, with
 * nothing allocated after the plan. Greedy speculative decoding — host
 * loop: layer-subset chains and trees; graphed loop: layer-subset chains,
 * every layer — equals plain greedy decoding on the same backend and dtype
 * under the near-tie rule (docs/TESTING.md; the CPU's f32 forward,
 * teacher-forced on the shared prefix, is the referee), and with every
 * layer as the draft (f32) each full step commits K + 1 ids on both loops.
 * Sampled chains at T = 0.7 draft in the graphed loop as well: its ids and
 * stats equal the eager device loop's bit for bit, and the target as its
 * own draft (f32) accepts about every draft (the chain rule with q).
 * Deterministic top-w trees (the fixed shape of deco/spec.h, deco_topk_rows
 * and deco_draft_chain's tree mode between the draft's tree forwards, the
 * draft cache compacted along the accepted path) draft in the graphed loop
 * too: the eager device loop's ids and stats bit for bit, plain greedy
 * under the near-tie rule, and with every layer as the draft (f32) each
 * full step commits depth + 1 ids. A tree with sampled siblings is
 * refused by the device loop, naming why.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/neartie.h"
#include "common/testutil.h"

static deco_drafter_t *layer_drafter(deco_model_t *m, const int *layers, int n, int K, int W, int nodes) {
  const deco_model_draft_config_t c = deco_test_draft_config(layers, n, K, W, nodes, 256);
  return deco_test_model_drafter(m, NULL, &c);
}

/* device: 0 the host loop, 1 the eager device-resident loop, 2 graphed;
 * at temperature T with the acceptance seed. */
static void generate_at(deco_model_t *m, deco_drafter_t *d, int device, float T, uint64_t seed,
                        deco_test_capture_t *out, deco_generate_stats_t *st) {
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = 256;
  c.temperature = T;
  c.seed = seed;
  c.ignore_eos = 1;
  c.drafter = d;
  c.device_resident = device > 0;
  c.graph = device == 2;
  const int32_t bos = 1;
  deco_test_generate(m, &bos, 1, c, out, st);
  cr_assert_eq(out->n, 257);
}

static void generate(deco_model_t *m, deco_drafter_t *d, int device, deco_test_capture_t *out,
                     deco_generate_stats_t *st) {
  generate_at(m, d, device, 0.0f, 0, out, st);
}

/* d's graphed run (ids into graphed, stats into st) against its eager
 * device run at T with seed: ids and stats bit for bit. */
static void graphed_equals_eager(const char *what, deco_model_t *m, deco_drafter_t *d, float T, uint64_t seed,
                                 deco_test_capture_t *graphed, deco_generate_stats_t *st) {
  static deco_test_capture_t eager;
  deco_generate_stats_t se;
  generate_at(m, d, 1, T, seed, &eager, &se);
  generate_at(m, d, 2, T, seed, graphed, st);
  deco_test_same_run(what, &eager, &se, graphed, st);
}

/* Speculative ids against plain greedy under the near-tie rule; with
 * self_K > 0 (every layer as the draft, f32) every draft is accepted. */
static void check_against_plain(const char *what, deco_model_t *mc, const deco_test_capture_t *plain,
                                const deco_test_capture_t *spec, const deco_generate_stats_t *st, int self_K,
                                deco_dtype_t dtype) {
  const double mean = (double)st->tokens / st->forwards;
  fprintf(stderr, "%s: mean_accepted %.3f\n", what, mean);
  if (self_K > 0)
    cr_assert(mean >= self_K + 1 - 0.1,
              "%s: the target as its own draft must accept (nearly) every draft: %.3f", what, mean);
  deco_test_split_excused(what, mc, plain->ids, spec->ids, 257, dtype);
}

static void check(deco_dtype_t dtype) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx, "no CUDA device");
  deco_ctx_t *cpu = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, dtype);
  deco_model_t *mc = deco_test_load_stories(cpu, DECO_DTYPE_F32);
  static deco_test_capture_t plain, spec;
  deco_generate_stats_t st;
  generate(m, NULL, 0, &plain, &st);
  static const struct {
    int layers[5], n, K, W, nodes;
  } cases[] = {{{0, 2, 4}, 3, 4, 1, 0}, {{0, 1, 3, 4}, 4, 5, 3, 32}, {{0, 1, 2, 3, 4}, 5, 4, 1, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    deco_drafter_t *d = layer_drafter(m, cases[i].layers, cases[i].n, cases[i].K, cases[i].W, cases[i].nodes);
    generate(m, d, 0, &spec, &st);
    deco_drafter_destroy(d);
    char what[64];
    snprintf(what, sizeof what, "host loop, case %zu %s", i, deco_dtype_name(dtype));
    check_against_plain(what, mc, &plain, &spec, &st, cases[i].n == 5 && dtype == DECO_DTYPE_F32 ? cases[i].K : 0,
                        dtype);
  }
  /* The device-resident loop, graphed, with deterministic chains; the eager
   * device loop is its bit-for-bit reference on the same device. */
  static const struct {
    int layers[5], n, K;
  } chains[] = {{{0, 2, 4}, 3, 4}, {{0, 1}, 2, 8}, {{0, 1, 2, 3, 4}, 5, 4}, {{0, 1, 2, 3, 4}, 5, 1}};
  for (size_t i = 0; i < sizeof chains / sizeof chains[0]; ++i) {
    deco_drafter_t *d = layer_drafter(m, chains[i].layers, chains[i].n, chains[i].K, 1, 0);
    cr_assert_eq(deco_drafter_device_resident(d), 1);
    char what[64];
    snprintf(what, sizeof what, "graphed loop, chain %zu %s", i, deco_dtype_name(dtype));
    graphed_equals_eager(what, m, d, 0.0f, 0, &spec, &st);
    deco_drafter_destroy(d);
    check_against_plain(what, mc, &plain, &spec, &st, chains[i].n == 5 && dtype == DECO_DTYPE_F32 ? chains[i].K : 0,
                        dtype);
  }
  /* Sampled chains at T = 0.7 (deco_draft_chain's draws, the chain rule
   * with its q rows): the graphed loop gives the eager device loop's ids
   * and stats bit for bit; with every layer as the draft (f32) q is the
   * target's distribution and about every draft is accepted. */
  for (size_t i = 0; i < sizeof chains / sizeof chains[0]; ++i) {
    deco_model_draft_config_t dc = deco_test_draft_config(chains[i].layers, chains[i].n, chains[i].K, 1, 0, 256);
    dc.temperature = 0.7f;
    dc.seed = 31 + i;
    deco_drafter_t *d = deco_test_model_drafter(m, NULL, &dc);
    cr_assert_eq(deco_drafter_device_resident(d), 1, "a sampled chain drafts on the device");
    char what[64];
    snprintf(what, sizeof what, "graphed loop, sampled chain %zu %s", i, deco_dtype_name(dtype));
    graphed_equals_eager(what, m, d, 0.7f, 1000 + i, &spec, &st);
    deco_drafter_destroy(d);
    const double mean = (double)st.tokens / st.forwards;
    fprintf(stderr, "%s: mean_accepted %.3f\n", what, mean);
    cr_assert(st.forwards < st.tokens, "%s: drafts were accepted", what);
    if (chains[i].n == 5 && dtype == DECO_DTYPE_F32)
      cr_assert(mean >= chains[i].K + 1 - 0.1, "%s: a sampled self-draft accepts about everything: %.3f", what, mean);
  }
  /* Deterministic top-w trees in the graphed loop (depth: the fixed
   * shape's: deco/spec.h's rule reaches draft_len when the budget allows). */
  static const struct {
    int layers[5], n, K, W, nodes, depth;
  } trees[] = {{{0, 1, 3, 4}, 4, 5, 3, 32, 5}, {{0, 2}, 2, 4, 2, 16, 4}, {{0, 1, 2, 3, 4}, 5, 3, 2, 14, 3},
               {{0, 1, 2, 3, 4}, 5, 4, 3, 24, 4}};
  for (size_t i = 0; i < sizeof trees / sizeof trees[0]; ++i) {
    deco_drafter_t *d = layer_drafter(m, trees[i].layers, trees[i].n, trees[i].K, trees[i].W, trees[i].nodes);
    cr_assert_eq(deco_drafter_device_resident(d), 1, "a top-w tree drafts on the device");
    char what[64];
    snprintf(what, sizeof what, "graphed loop, tree %zu %s", i, deco_dtype_name(dtype));
    graphed_equals_eager(what, m, d, 0.0f, 0, &spec, &st);
    deco_drafter_destroy(d);
    check_against_plain(what, mc, &plain, &spec, &st, trees[i].n == 5 && dtype == DECO_DTYPE_F32 ? trees[i].depth : 0,
                        dtype);
  }
  /* A tree with sampled siblings drafts on the host: refused by the device
   * loop, not run wrong. */
  const int all[] = {0, 1, 2, 3, 4};
  deco_model_draft_config_t sc = deco_test_draft_config(all, 5, 4, 3, 12, 0);
  sc.temperature = 0.7f;
  sc.sample_siblings = 1;
  deco_drafter_t *d = deco_test_model_drafter(m, NULL, &sc);
  deco_generate_config_t g = DECO_GENERATE_CONFIG_INIT;
  g.steps = 32;
  g.temperature = 0.7f;
  g.drafter = d;
  g.device_resident = 1;
  g.graph = 1;
  int32_t bos = 1;
  cr_assert_eq(deco_generate(m, &bos, 1, &g, &st), DECO_STATUS_UNSUPPORTED);
  cr_assert(strstr(deco_last_error(ctx), "drafts on the host") != NULL &&
                strstr(deco_last_error(ctx), "sampled siblings"),
            "%s", deco_last_error(ctx));
  deco_drafter_destroy(d);
  deco_model_destroy(mc);
  deco_model_destroy(m);
  deco_ctx_destroy(cpu);
  deco_ctx_destroy(ctx);
}

Test(draft_model_cuda, greedy_equals_plain_f32, .timeout = 180) { check(DECO_DTYPE_F32); }
Test(draft_model_cuda, greedy_equals_plain_bf16, .timeout = 180) { check(DECO_DTYPE_BF16); }
