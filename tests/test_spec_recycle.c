/* tests/test_spec_recycle.c — Token Recycling end to end on stories260K on
 * the CPU: greedy speculative decoding reproduces the llama2.c fixtures
 * exactly and commits what an exact simulation of the official algorithm
 * commits (2.29 tokens per forward from BOS over 256 positions, 2.49 on
 * prompt_dog over 220, cold table: fixtures/README.md); a saved table starts
 * the next run warm; and at temperature 0.7 speculative sampling has the law
 * of plain sampling (two-sample chi-square over per-position histograms).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/stats.h"
#include "common/testutil.h"
#include "common/tolerances.h"

Test(spec_recycle, greedy_reproduces_fixtures_and_the_official_rate) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--temperature", "0", "--ignore-eos", "--print-ids", "--spec", "recycle",
      "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  char *expect = deco_test_fixture_line("fixtures/stories260K/greedy_bos_256.ids");
  cr_assert_str_eq(r.out, expect);
  free(expect);
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
  expect = deco_test_fixture_line("fixtures/stories260K/greedy_dog_200.ids");
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

/* ---- Two-sample test: speculative sampling vs plain sampling ---- */

#define HORIZON 3
/* hist[h][id]: counts of the id emitted at generated position h. */
static void sample(deco_model_t *m, const int32_t *prompt, int n_prompt, deco_generate_config_t cfg, int runs,
                   uint64_t seed0, long hist[HORIZON][512]) {
  for (int r = 0; r < runs; ++r) {
    deco_test_capture_t cap = {{0}, 0};
    cfg.seed = seed0 + (uint64_t)r;
    cfg.emit = deco_test_capture_id;
    cfg.user = &cap;
    deco_generate_stats_t st;
    cr_assert_eq(deco_generate(m, prompt, n_prompt, &cfg, &st), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(deco_model_ctx(m)));
    cr_assert_eq(cap.n, n_prompt + HORIZON);
    for (int h = 0; h < HORIZON; ++h) hist[h][cap.ids[n_prompt + h]]++;
  }
}

/* Homogeneity chi-square of two histograms with categories of fewer than 10
 * observations in total pooled; returns the p-value, *df and *stat. */
static double homogeneity(const long *a, const long *b, int k, int *df, double *stat) {
  long na = 0, nb = 0;
  for (int i = 0; i < k; ++i) na += a[i], nb += b[i];
  double s = 0;
  long pa = 0, pb = 0;
  int cells = 0;
  for (int i = 0; i <= k; ++i) {
    long x = i < k ? a[i] : pa, y = i < k ? b[i] : pb;
    if (i < k && x + y < 10) {
      pa += x;
      pb += y;
      continue;
    }
    if (x + y == 0) continue;
    double t = (double)(x + y), ea = t * na / (double)(na + nb), eb = t * nb / (double)(na + nb);
    s += (x - ea) * (x - ea) / ea + (y - eb) * (y - eb) / eb;
    cells++;
  }
  *df = cells > 1 ? cells - 1 : 1;
  *stat = s;
  return deco_test_chi2_sf(s, *df);
}

Test(spec_recycle, sampling_has_the_law_of_plain_sampling, .timeout = 240) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  /* A small template (the official one cut to its first 6 draft nodes) and a
   * table that stays warm across the runs. */
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  tmpl.n_nodes = 7;
  deco_recycler_t *rec;
  cr_assert_eq(deco_recycler_create(ctx, 512, 8, &rec), DECO_STATUS_SUCCESS);
  const int32_t prompt[5] = {1, 403, 407, 261, 378}; /* "Once upon a time" */
  const int runs = 4000;
  deco_generate_config_t plain;
  memset(&plain, 0, sizeof plain);
  plain.steps = 5 + HORIZON - 1; /* the last prompt id's forward and two more */
  plain.temperature = 0.7f;
  plain.top_p = 1.0f;
  plain.ignore_eos = 1;
  deco_generate_config_t spec = plain;
  spec.source = DECO_DRAFT_RECYCLE;
  spec.recycler = rec;
  spec.tmpl = &tmpl;
  deco_generate_config_t hotter = plain;
  hotter.temperature = 0.9f;
  static long hp[HORIZON][512], hs[HORIZON][512], hh[HORIZON][512];
  memset(hp, 0, sizeof hp);
  memset(hs, 0, sizeof hs);
  memset(hh, 0, sizeof hh);
  sample(m, prompt, 5, plain, runs, 1000, hp);
  sample(m, prompt, 5, spec, runs, 900000, hs);
  sample(m, prompt, 5, hotter, runs, 500000, hh);
  const double alpha = DECO_TEST_ALPHA / HORIZON; /* Bonferroni over the positions */
  int rejected_control = 0;
  for (int h = 0; h < HORIZON; ++h) {
    int df, df2;
    double s, s2;
    double p = homogeneity(hp[h], hs[h], 512, &df, &s);
    double p2 = homogeneity(hp[h], hh[h], 512, &df2, &s2);
    /* Smallest effect at ~50% power: noncentrality = critical value - df,
     * effect phi^2 = sum (p1 - p2)^2 / pbar = lambda / (runs / 2). */
    double crit = df;
    while (deco_test_chi2_sf(crit, df) > alpha) crit += 0.05;
    fprintf(stderr,
            "position %d: spec vs plain chi2 %.1f df %d p %.3g; T=0.9 control chi2 %.1f df %d p %.3g; "
            "detects phi^2 >= %.2e\n",
            h, s, df, p, s2, df2, p2, (crit - df) / (runs / 2.0));
    cr_assert(p > alpha, "position %d: speculative sampling differs from plain sampling (p = %g)", h, p);
    if (p2 <= alpha) rejected_control++;
  }
  cr_assert(rejected_control > 0, "the test cannot tell temperature 0.9 from 0.7: it has no power");
  deco_recycler_destroy(rec);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
