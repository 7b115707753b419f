/* tests/test_tp_spec.c — the speculative step under tensor parallelism on
 * the CPU (threads backend, one thread per rank, stories260K). Every rank
 * runs the same decoding loop on its shard; the classifier is replicated,
 * so every rank sees the same logits and reaches the same decisions from
 * the same Philox seed. At one TP size, greedy prompt-lookup and Token
 * Recycling decoding emit exactly the ids of plain decoding, on every rank,
 * and every rank's recycling table is the same; at TP 2 speculative
 * sampling (T = 0.7, recycling drafts) has the law of plain sampling
 * (two-sample chi-square over per-position histograms), and the same test
 * rejects a broken acceptance rule (no residual update; this suite links
 * deco_internal for the switch of kernels/verify/accept_mutant.h) and tells
 * T = 0.9 from T = 0.7.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/verify/accept_mutant.h"
#include "common/stats.h"
#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/tp_run.h"

#define VOCAB 512
#define HORIZON 3
#define RUNS 2000
#define RUNS_CONTROL 1000
#define RUNS_BROKEN 1000

typedef struct spec_job {
  int tp;
  deco_test_source_t source;
  deco_generate_config_t cfg; /* emit, user, drafter and seed set per run */
  const int32_t *prompt;
  int n_prompt;
  int runs;          /* seeds seed0 .. seed0 + runs - 1 */
  uint64_t seed0;
  /* Per rank: the ids of the last run, the per-position histograms over
   * all runs, tokens and forwards, and a hash of the recycling table. */
  deco_test_capture_t cap[DECO_COMM_MAX_RANKS];
  long (*hist[DECO_COMM_MAX_RANKS])[VOCAB];
  long tokens[DECO_COMM_MAX_RANKS], forwards[DECO_COMM_MAX_RANKS];
  uint64_t table_hash[DECO_COMM_MAX_RANKS];
} spec_job_t;

static deco_status_t rank_main(deco_comm_t *comm, int rank, void *user) {
  spec_job_t *j = user;
  deco_ctx_t *ctx;
  deco_model_t *m;
  deco_status_t st = deco_test_tp_load(comm, rank, j->tp, deco_test_data_file("models/stories260K.bin"), &ctx, &m);
  deco_recycler_t *rec = NULL;
  deco_drafter_t *drafter = NULL;
  deco_tree_template_t tmpl;
  if (st == DECO_STATUS_SUCCESS && j->source == DECO_TEST_RECYCLE) {
    st = deco_tree_template_default(&tmpl);
    if (st == DECO_STATUS_SUCCESS) st = deco_recycler_create(ctx, VOCAB, 8, &rec);
    if (st == DECO_STATUS_SUCCESS) st = deco_drafter_create_recycle(rec, &tmpl, &drafter);
  } else if (st == DECO_STATUS_SUCCESS && j->source == DECO_TEST_LOOKUP) {
    const deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT;
    st = deco_drafter_create_lookup(&lc, &drafter);
  }
  j->hist[rank] = calloc(HORIZON, sizeof *j->hist[rank]);
  deco_generate_config_t cfg = j->cfg;
  cfg.drafter = drafter;
  cfg.emit = deco_test_capture_id;
  for (int r = 0; r < j->runs && st == DECO_STATUS_SUCCESS; ++r) {
    deco_test_capture_t *cap = &j->cap[rank];
    cap->n = 0;
    cfg.user = cap;
    cfg.seed = j->seed0 + (uint64_t)r;
    deco_generate_stats_t gs;
    st = deco_generate(m, j->prompt, j->n_prompt, &cfg, &gs);
    if (st != DECO_STATUS_SUCCESS) break;
    for (int h = 0; h < HORIZON && j->n_prompt + h < cap->n; ++h) j->hist[rank][h][cap->ids[j->n_prompt + h]]++;
    j->tokens[rank] += gs.tokens;
    j->forwards[rank] += gs.forwards;
  }
  if (st == DECO_STATUS_SUCCESS && rec)
    j->table_hash[rank] =
        deco_comm_hash(DECO_COMM_HASH_INIT, deco_recycler_table(rec), sizeof(int32_t) * VOCAB * 8);
  if (st != DECO_STATUS_SUCCESS) deco_comm_abort(comm); /* the others must not wait for this rank */
  deco_drafter_destroy(drafter);
  deco_recycler_destroy(rec);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
  return st;
}

static void run(spec_job_t *j) {
  deco_test_tp_run_ok(j->tp, rank_main, j);
  /* Every rank decided the same. */
  for (int r = 1; r < j->tp; ++r) {
    cr_assert_eq(j->cap[r].n, j->cap[0].n, "rank %d", r);
    cr_assert(memcmp(j->cap[r].ids, j->cap[0].ids, sizeof(int32_t) * (size_t)j->cap[0].n) == 0, "rank %d", r);
    cr_assert(memcmp(j->hist[r], j->hist[0], sizeof(long) * HORIZON * VOCAB) == 0, "rank %d", r);
    cr_assert_eq(j->table_hash[r], j->table_hash[0], "rank %d's recycling table differs", r);
  }
}

static void free_job(spec_job_t *j) {
  for (int r = 0; r < j->tp; ++r) free(j->hist[r]);
}

Test(tp_spec, greedy_lookup_and_recycling_equal_plain_at_one_tp_size) {
  static const int32_t prompt[] = {1, 274, 287, 300, 419, 261, 352, 266, 268, 388, 426, 274, 287, 300, 419, 261, 352};
  const int n = (int)(sizeof prompt / sizeof prompt[0]);
  const int sizes[] = {2, 4};
  for (int si = 0; si < 2; ++si) {
    spec_job_t plain = {.tp = sizes[si], .source = DECO_TEST_PLAIN, .cfg = DECO_GENERATE_CONFIG_INIT, .prompt = prompt,
                        .n_prompt = n, .runs = 1};
    plain.cfg.steps = 200;
    plain.cfg.temperature = 0.0f;
    plain.cfg.ignore_eos = 1;
    run(&plain);
    cr_assert_geq(plain.cap[0].n, 200, "%d ids", plain.cap[0].n);
    const deco_test_source_t sources[] = {DECO_TEST_LOOKUP, DECO_TEST_RECYCLE};
    for (int s = 0; s < 2; ++s) {
      spec_job_t spec = plain;
      spec.source = sources[s];
      memset(spec.hist, 0, sizeof spec.hist);
      memset(spec.tokens, 0, sizeof spec.tokens);
      memset(spec.forwards, 0, sizeof spec.forwards);
      run(&spec);
      cr_assert_eq(spec.cap[0].n, plain.cap[0].n);
      cr_assert_eq(deco_test_compare_i32(s ? "TP recycle vs plain" : "TP lookup vs plain", spec.cap[0].ids,
                                         plain.cap[0].ids, (size_t)plain.cap[0].n),
                   0, "TP %d", spec.tp);
      cr_assert_lt(spec.forwards[0], plain.forwards[0], "TP %d source %d accepted nothing", spec.tp, s);
      cr_log_info("TP %d %s: %ld tokens in %ld forwards (plain: %ld)", spec.tp, s ? "recycle" : "lookup",
                  spec.tokens[0], spec.forwards[0], plain.forwards[0]);
      free_job(&spec);
    }
    free_job(&plain);
  }
}

static int rejections(const char *what, spec_job_t *a, spec_job_t *b, double alpha, double *p_min) {
  int rej = 0;
  *p_min = 1;
  for (int h = 0; h < HORIZON; ++h) {
    const double p = deco_test_homogeneity_pvalue(a->hist[0][h], b->hist[0][h], VOCAB, NULL, NULL);
    fprintf(stderr, "TP 2 %s: position %d p %.3g\n", what, h, p);
    if (p <= alpha) rej++;
    if (p < *p_min) *p_min = p;
  }
  return rej;
}

Test(tp_spec, sampling_at_tp_2_has_the_law_of_plain_sampling, .timeout = 240) {
  /* "Once upon a time, there was a" (test_spec_recycle.c: uncertain next ids). */
  static const int32_t prompt[] = {1, 403, 407, 261, 378, 432, 383, 286, 261};
  const int n = (int)(sizeof prompt / sizeof prompt[0]);
  spec_job_t plain = {.tp = 2, .source = DECO_TEST_PLAIN, .cfg = DECO_GENERATE_CONFIG_INIT, .prompt = prompt,
                      .n_prompt = n, .runs = RUNS, .seed0 = 1000};
  plain.cfg.steps = n + HORIZON - 1;
  plain.cfg.temperature = 0.7f;
  plain.cfg.ignore_eos = 1;
  spec_job_t spec = plain, hot = plain, broken = plain;
  spec.source = DECO_TEST_RECYCLE;
  spec.seed0 = 900000;
  hot.cfg.temperature = 0.9f;
  hot.runs = RUNS_CONTROL;
  hot.seed0 = 500000;
  broken.source = DECO_TEST_RECYCLE;
  broken.runs = RUNS_BROKEN;
  broken.seed0 = 700000;
  run(&plain);
  run(&spec);
  run(&hot);
  /* Every rank's thread reads the switch; it is set before they start. */
  deco_accept_mutant = DECO_ACCEPT_MUTANT_NO_RESIDUAL;
  run(&broken);
  deco_accept_mutant = DECO_ACCEPT_CORRECT;
  fprintf(stderr, "TP 2 recycle sampling: %ld tokens in %ld forwards\n", spec.tokens[0], spec.forwards[0]);
  cr_assert_lt(spec.forwards[0], spec.tokens[0], "no draft was ever accepted: nothing speculative was tested");
  const double alpha = DECO_TEST_ALPHA / HORIZON;
  double p_min;
  int rej = rejections("speculative vs plain", &plain, &spec, alpha, &p_min);
  cr_assert_eq(rej, 0, "speculative sampling at TP 2 differs from plain sampling (smallest p %g)", p_min);
  rej = rejections("control: T = 0.9 vs 0.7", &plain, &hot, alpha, &p_min);
  cr_assert_gt(rej, 0, "the test cannot tell T = 0.9 from 0.7 (smallest p %g): it has no power", p_min);
  rej = rejections("broken: no residual update", &plain, &broken, alpha, &p_min);
  cr_assert_gt(rej, 0, "the test cannot tell a broken acceptance rule from plain sampling (smallest p %g)", p_min);
  free_job(&plain);
  free_job(&spec);
  free_job(&hot);
  free_job(&broken);
}
