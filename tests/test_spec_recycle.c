/* tests/test_spec_recycle.c — Token Recycling end to end on stories260K on
 * the CPU: greedy speculative decoding reproduces the llama2.c fixtures
 * exactly and commits what an exact simulation of the official algorithm
 * commits (2.29 tokens per forward from BOS over 256 positions, 2.49 on
 * prompt_dog over 220, cold table: fixtures/README.md); a saved table starts
 * the next run warm; and at temperature 0.7 speculative sampling, with
 * recycling or prompt-lookup drafts, has the law of plain sampling
 * (two-sample chi-square over per-position histograms), while the same test
 * rejects T = 0.9 and deliberately broken acceptance rules run through the
 * whole engine (this suite links deco_internal for that switch).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/verify/accept_mutant.h"
#include "common/stats.h"
#include "common/testutil.h"
#include "common/tolerances.h"

Test(spec_recycle, greedy_reproduces_fixtures_and_the_official_rate) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--temperature", "0", "--ignore-eos", "--print-ids", "--spec", "recycle",
      "--backend", "cpu");
  deco_test_expect_fixture_out("recycle from BOS", &r, "fixtures/stories260K/greedy_bos_256.ids");
  fprintf(stderr, "recycle from BOS, 256 positions: %s\n", deco_test_last_line(r.err));
  cr_assert(fabs(deco_test_stat(r.err, "mean_accepted=") - 2.29) < 0.006, "%s", r.err);
  deco_test_run_free(&r);

  /* The dog prompt over 220 positions; its first 200 are the fixture. */
  int n;
  int32_t *ids = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/prompt_dog.ids"), &n);
  char csv[1024] = "";
  for (int i = 0; i < n; ++i) {
    char b[16];
    snprintf(b, sizeof b, i ? ",%d" : "%d", ids[i]);
    strcat(csv, b);
  }
  free(ids);
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--prompt-ids", csv, "--temperature", "0", "--ignore-eos", "--print-ids",
      "--steps", "220", "--spec", "recycle", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  char *expect = deco_test_fixture_line("fixtures/stories260K/greedy_dog_200.ids");
  cr_assert(strncmp(r.out, expect, strlen(expect) - 1) == 0, "first 200 positions differ from the fixture");
  free(expect);
  fprintf(stderr, "recycle on the dog prompt, 220 positions: %s\n", deco_test_last_line(r.err));
  cr_assert(fabs(deco_test_stat(r.err, "mean_accepted=") - 2.49) < 0.006, "%s", r.err);
  deco_test_run_free(&r);
}

Test(spec_recycle, saved_table_starts_warm) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  char state[4096];
  snprintf(state, sizeof state, "%s/recycle.state", deco_test_tmpdir());
  unlink(state);
  deco_test_run_t cold, warm, again;
  DECO_TEST_RUN_CLI(&cold, "generate", "--model", model, "--temperature", "0", "--print-ids", "--steps", "200", "--spec", "recycle",
      "--recycle-state", state, "--backend", "cpu");
  cr_assert_eq(cold.status, 0, "%s", cold.err);
  struct stat sb;
  cr_assert_eq(stat(state, &sb), 0, "the table was saved at exit");
  cr_assert_eq(sb.st_size, 24 + 4 * 512 * 8 + 8, "header + table + checksum");
  DECO_TEST_RUN_CLI(&warm, "generate", "--model", model, "--temperature", "0", "--print-ids", "--steps", "200", "--spec", "recycle",
      "--recycle-state", state, "--backend", "cpu");
  cr_assert_eq(warm.status, 0, "%s", warm.err);
  cr_assert_str_eq(warm.out, cold.out, "a warm table changes the speed, never the output");
  double f_cold = deco_test_stat(cold.err, "forwards="), f_warm = deco_test_stat(warm.err, "forwards=");
  fprintf(stderr, "cold: %s\n", deco_test_last_line(cold.err));
  fprintf(stderr, "warm: %s\n", deco_test_last_line(warm.err));
  cr_assert(f_warm < f_cold, "a table warmed on the same text must save forwards (%g vs %g)", f_warm, f_cold);
  /* A corrupted state file is refused with a message naming it. */
  FILE *f = fopen(state, "r+b");
  fseek(f, 100, SEEK_SET);
  fputc(0x5a, f);
  fclose(f);
  DECO_TEST_RUN_CLI(&again, "generate", "--model", model, "--temperature", "0", "--print-ids", "--steps", "20", "--spec", "recycle",
      "--recycle-state", state, "--backend", "cpu");
  cr_assert_eq(again.status, 1, "%s", again.err);
  cr_assert(strstr(again.err, "recycle.state") != NULL, "%s", again.err);
  deco_test_run_free(&cold);
  deco_test_run_free(&warm);
  deco_test_run_free(&again);
}

/* ---- Two-sample test: speculative sampling vs plain sampling ----
 * Plain sampling at T = 0.7 gives per-position histograms of the first
 * HORIZON generated ids; speculative sampling (recycling or prompt-lookup
 * drafts) must be homogeneous with it at every position (Bonferroni over the
 * positions). The same test must tell T = 0.9 from 0.7, and must reject the
 * speculative sampler run through the whole engine (deco_generate → the
 * verification step → deco_tree_accept_sample on the CPU → its reference)
 * with a deliberately broken acceptance rule (kernels/verify/accept_mutant.h,
 * reached by linking deco_internal). */

#define HORIZON 3
#define RUNS 4000         /* the plain and the speculative batches */
#define RUNS_CONTROL 2000 /* T = 0.9 */
#define RUNS_BROKEN 1000  /* each broken rule */

typedef struct batch_stats {
  long tokens, forwards;
} batch_stats_t;

/* hist[h][id]: counts of the id emitted at generated position h. A recycling
 * batch starts from a fresh table (k = 8) that stays warm across its runs, so
 * batches differ only in their seeds and the acceptance rule. */
/* The draft source of a batch: none (plain sampling), prompt lookup with
 * the CLI's settings, or Token Recycling over tmpl. */
typedef enum source { PLAIN, LOOKUP, RECYCLE } source_t;

static void sample(deco_model_t *m, const int32_t *prompt, int n_prompt, deco_generate_config_t cfg, source_t source,
                   const deco_tree_template_t *tmpl, int runs, uint64_t seed0, long hist[HORIZON][512],
                   batch_stats_t *bs) {
  deco_recycler_t *rec = NULL;
  deco_drafter_t *drafter = NULL;
  if (source == RECYCLE) {
    cr_assert_eq(deco_recycler_create(deco_model_ctx(m), 512, 8, &rec), DECO_STATUS_SUCCESS);
    cr_assert_eq(deco_drafter_create_recycle(rec, tmpl, &drafter), DECO_STATUS_SUCCESS);
  } else if (source == LOOKUP) {
    const deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT; /* the CLI's */
    cr_assert_eq(deco_drafter_create_lookup(&lc, &drafter), DECO_STATUS_SUCCESS);
  }
  cfg.drafter = drafter;
  memset(hist, 0, sizeof(long) * HORIZON * 512);
  memset(bs, 0, sizeof *bs);
  for (int r = 0; r < runs; ++r) {
    deco_test_capture_t cap = {.ids = {0}, .n = 0};
    cfg.seed = seed0 + (uint64_t)r;
    cfg.emit = deco_test_capture_id;
    cfg.user = &cap;
    deco_generate_stats_t st;
    cr_assert_eq(deco_generate(m, prompt, n_prompt, &cfg, &st), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(deco_model_ctx(m)));
    cr_assert_eq(cap.n, n_prompt + HORIZON);
    for (int h = 0; h < HORIZON; ++h) hist[h][cap.ids[n_prompt + h]]++;
    bs->tokens += st.tokens;
    bs->forwards += st.forwards;
    cr_assert_eq(st.step_allocations, 0, "the plan sized every buffer");
  }
  deco_drafter_destroy(drafter);
  deco_recycler_destroy(rec);
}

/* Smallest effect detected about half the time by a comparison of na with nb
 * runs: noncentrality = critical value - df, and phi^2 = sum (p1 - p2)^2 /
 * pbar = lambda / (na nb / (na + nb)). */
static double min_effect(int df, double alpha, int na, int nb) {
  double crit = df;
  while (deco_test_chi2_sf(crit, df) > alpha) crit += 0.05;
  return (crit - df) / ((double)na * nb / (na + nb));
}

/* Compares batch b with the plain batch at every position: prints each
 * p-value and the effect it can detect; returns how many positions reject. */
static int compare(const char *name, const char *what, long plain[HORIZON][512], long b[HORIZON][512], int nb,
                   double alpha, double *p_min) {
  int rejected = 0;
  *p_min = 1.0;
  for (int h = 0; h < HORIZON; ++h) {
    int df;
    double stat, p = deco_test_homogeneity_pvalue(plain[h], b[h], 512, &df, &stat);
    fprintf(stderr, "%s: %-28s position %d: chi2 %7.1f df %2d p %-9.3g detects phi^2 >= %.2e\n", name, what, h, stat,
            df, p, min_effect(df, alpha, RUNS, nb));
    if (p <= alpha) rejected++;
    if (p < *p_min) *p_min = p;
  }
  return rejected;
}

/* The whole check for one draft source: spec (T = 0.7, drafts from its
 * source) against plain sampling on the same prompt. */
static void check_law(const char *name, const int32_t *prompt, int n_prompt, deco_generate_config_t spec,
                      source_t source, const deco_tree_template_t *tmpl) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_generate_config_t plain = spec;
  deco_generate_config_t hotter = plain;
  hotter.temperature = 0.9f;
  static long hp[HORIZON][512], hb[HORIZON][512], hs[HORIZON][512], hh[HORIZON][512];
  batch_stats_t bs;
  const double alpha = DECO_TEST_ALPHA / HORIZON; /* Bonferroni over the positions */
  double p_min;
  fprintf(stderr, "%s: %d plain and speculative runs, %d per broken rule, %d at T = 0.9, alpha %.2g per position\n",
          name, RUNS, RUNS_BROKEN, RUNS_CONTROL, alpha);
  sample(m, prompt, n_prompt, plain, PLAIN, NULL, RUNS, 1000, hp, &bs);

  /* Broken acceptance rules: the same engine, the same test, must reject. */
  static const struct {
    int rule;
    const char *what;
  } broken[] = {{DECO_ACCEPT_MUTANT_NO_RESIDUAL, "broken: no residual update"},
                {DECO_ACCEPT_MUTANT_BONUS_ROOT, "broken: bonus from the root"}};
  for (size_t i = 0; i < sizeof broken / sizeof broken[0]; ++i) {
    deco_accept_mutant = broken[i].rule;
    sample(m, prompt, n_prompt, spec, source, tmpl, RUNS_BROKEN, 700000 + 100000 * (uint64_t)i, hb, &bs);
    deco_accept_mutant = DECO_ACCEPT_CORRECT;
    int rej = compare(name, broken[i].what, hp, hb, RUNS_BROKEN, alpha, &p_min);
    cr_assert(rej > 0, "%s: the test cannot tell %s from plain sampling (smallest p %g): it has no power", name,
              broken[i].what, p_min);
  }

  /* The correct rule, the switch back at 0. */
  cr_assert_eq(deco_accept_mutant, DECO_ACCEPT_CORRECT);
  sample(m, prompt, n_prompt, spec, source, tmpl, RUNS, 900000, hs, &bs);
  fprintf(stderr, "%s: speculative: %ld tokens in %ld forwards, mean accepted %.3f per forward\n", name, bs.tokens,
          bs.forwards, (double)bs.tokens / bs.forwards);
  cr_assert(bs.forwards < bs.tokens, "%s: no draft was ever accepted, nothing speculative was tested", name);
  int rej = compare(name, "speculative vs plain", hp, hs, RUNS, alpha, &p_min);
  cr_assert(rej == 0, "%s: speculative sampling differs from plain sampling (smallest p %g)", name, p_min);

  /* Control: another temperature. */
  sample(m, prompt, n_prompt, hotter, PLAIN, NULL, RUNS_CONTROL, 500000, hh, &bs);
  rej = compare(name, "control: T = 0.9 vs 0.7", hp, hh, RUNS_CONTROL, alpha, &p_min);
  cr_assert(rej > 0, "%s: the test cannot tell temperature 0.9 from 0.7: it has no power", name);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(spec_recycle, sampling_has_the_law_of_plain_sampling, .timeout = 240) {
  /* A small template (the official one cut to its first 6 draft nodes). */
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  tmpl.n_nodes = 7;
  /* "Once upon a time, there was a": the next ids are far from certain
   * (after "Once upon a time" alone the first is "," 99.4% of the time, which
   * hides a broken residual update from any affordable sample). */
  static const int32_t prompt[] = {1, 403, 407, 261, 378, 432, 383, 286, 261};
  const int n = (int)(sizeof prompt / sizeof prompt[0]);
  deco_generate_config_t spec = DECO_GENERATE_CONFIG_INIT;
  spec.steps = n + HORIZON - 1; /* the last prompt id's forward and two more */
  spec.temperature = 0.7f;
  spec.top_p = 1.0f;
  spec.ignore_eos = 1;
  check_law("recycle", prompt, n, spec, RECYCLE, &tmpl);
}

Test(spec_recycle, lookup_sampling_has_the_law_of_plain_sampling, .timeout = 240) {
  /* "Tom has a red ball. Tom has a red": its last trigram occurred before,
   * so lookup drafts " ball. Tom ..." from the first step (the model copies
   * it 87% of the time at T = 0.7). A short prompt keeps the prefills cheap. */
  static const int32_t prompt[] = {1, 274, 287, 300, 419, 261, 352, 266, 268, 388, 426, 274, 287, 300, 419, 261, 352};
  const int n = (int)(sizeof prompt / sizeof prompt[0]);
  deco_generate_config_t spec = DECO_GENERATE_CONFIG_INIT;
  spec.steps = n + HORIZON - 1;
  spec.temperature = 0.7f;
  spec.top_p = 1.0f;
  spec.ignore_eos = 1;
  check_law("lookup", prompt, n, spec, LOOKUP, NULL);
}
