/* tests/test_neartie.c — the near-tie rule used to excuse GPU/CPU argmax
 * differences, on constructed logits: it must excuse real near ties and
 * nothing else; and the first-difference referee (deco_test_split_excused)
 * on stories260K's greedy run. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/neartie.h"
#include "common/stats.h"
#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/topk.h"

Test(neartie, top2_with_ties) {
  float l[5] = {0.5f, 2.0f, 1.0f, 2.0f, -1.0f};
  deco_top2_t t = deco_test_top2(l, 5);
  cr_assert_eq(t.first, 1);
  cr_assert_eq(t.second, 3);
  cr_assert_eq(t.gap, 0.0f);
}

Test(neartie, f32_threshold) {
  float l[3] = {5.0f, 5.0f - 0.9e-3f, 0.0f};
  cr_assert(deco_test_is_near_tie(l, 3, DECO_DTYPE_F32));
  l[1] = 5.0f - 1.1e-3f;
  cr_assert(!deco_test_is_near_tie(l, 3, DECO_DTYPE_F32));
  l[1] = -7.0f;
  cr_assert(!deco_test_is_near_tie(l, 3, DECO_DTYPE_F32));
}

Test(neartie, bf16_steps_scale_with_magnitude) {
  cr_assert_eq(deco_test_bf16_step(1.0f), 1.0f / 128);
  cr_assert_eq(deco_test_bf16_step(1.99f), 1.0f / 128);
  cr_assert_eq(deco_test_bf16_step(-3.0f), 1.0f / 64);
  cr_assert_eq(deco_test_bf16_step(300.0f), 2.0f);
  /* Two steps at 10.0 (step 1/16) is 0.125. */
  float l[2] = {10.0f, 10.0f - 0.12f};
  cr_assert(deco_test_is_near_tie(l, 2, DECO_DTYPE_BF16));
  l[1] = 10.0f - 0.13f;
  cr_assert(!deco_test_is_near_tie(l, 2, DECO_DTYPE_BF16));
  /* The same gap at a small magnitude is not a tie. */
  float s[2] = {0.5f, 0.5f - 0.12f};
  cr_assert(!deco_test_is_near_tie(s, 2, DECO_DTYPE_BF16));
}

Test(neartie, chi2_tail_known_values) {
  /* chi2 with 1 df: P(X > 3.841459) = 0.05; 10 df: P(X > 23.209251) = 0.01. */
  cr_assert(fabs(deco_test_chi2_sf(3.841459, 1) - 0.05) < 1e-6);
  cr_assert(fabs(deco_test_chi2_sf(23.209251, 10) - 0.01) < 1e-6);
  cr_assert(fabs(deco_test_chi2_sf(0.0, 4) - 1.0) < 1e-12);
  long counts[3] = {50, 30, 20};
  double e[3] = {0.5, 0.3, 0.2};
  int df;
  cr_assert(deco_test_chi2_pvalue(counts, e, 3, 100, &df) > 0.99);
  cr_assert_eq(df, 2);
  long bad[3] = {50, 30, 20};
  double zero[3] = {0.6, 0.4, 0.0};
  cr_assert_eq(deco_test_chi2_pvalue(bad, zero, 3, 100, &df), 0.0);
}

/* The excuse rule (common/neartie.h): only the CPU's runner-up, and only
 * within the allowance, is excused. */
Test(neartie, excuse_needs_near_tie_and_runner_up) {
  float l[4] = {5.0f, 5.0f - 0.5e-3f, 5.0f - 0.8e-3f, 0.0f};
  cr_assert(deco_test_excused(l, 1, 4, DECO_DTYPE_F32), "the runner-up of a near tie");
  cr_assert(!deco_test_excused(l, 2, 4, DECO_DTYPE_F32), "the third, however close");
  cr_assert(!deco_test_excused(l, 3, 4, DECO_DTYPE_F32));
  cr_assert(!deco_test_excused(l, 0, 4, DECO_DTYPE_F32), "the argmax is nothing to excuse");
  l[1] = 5.0f - 1.1e-3f;
  l[2] = -1.0f;
  cr_assert(!deco_test_excused(l, 1, 4, DECO_DTYPE_F32), "a gap above the allowance");
  /* bf16: two steps at 10 (a step is 1/16) = 0.125. */
  float b[3] = {10.0f, 10.0f - 0.12f, 10.0f - 0.124f};
  cr_assert(deco_test_excused(b, 1, 3, DECO_DTYPE_BF16));
  cr_assert(!deco_test_excused(b, 2, 3, DECO_DTYPE_BF16));
  b[1] = 10.0f - 0.13f;
  cr_assert(!deco_test_excused(b, 1, 3, DECO_DTYPE_BF16));
  /* An exact tie: the lower index is the argmax, the other its runner-up. */
  float t[3] = {1.0f, 3.0f, 3.0f};
  cr_assert(deco_test_excused(t, 2, 3, DECO_DTYPE_F32));
  cr_assert(!deco_test_excused(t, 1, 3, DECO_DTYPE_F32));
  /* The end-to-end bf16 value rule: 12 roundings at 10 = 12/16. */
  cr_assert_eq(deco_test_bf16_e2e_tol(10.0f, 12), 0.75f);
  cr_assert_eq(deco_test_bf16_e2e_tol(-0.3f, 3), 3.0f / 512);
}

/* The referee of the first-difference rule on the CPU's f32 stories260K and
 * its greedy run from BOS: its row (deco_test_last_logits) is the forward
 * after the shared prefix, the row a prefill of every position gives there;
 * identical runs have no split; a run that takes the runner-up at a bf16
 * near tie splits there, excused. */
Test(neartie, split_referee_on_stories260k, .timeout = 60) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int V = DECO_STORIES_VOCAB;
  int n;
  int32_t *plain = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/greedy_bos_256.ids"), &n);
  cr_assert(plain && n == 257, "BOS and 256 greedy ids");
  float *all = deco_test_forward_all(m, plain, n - 1);
  int split = -1;
  for (int p = 0; p + 1 < n; ++p) {
    const float *row = all + (size_t)p * V;
    cr_assert_eq(deco_argmax(row, V), plain[p + 1], "position %d: the fixture is the CPU's greedy run", p);
    if (split < 0 && deco_test_excused(row, deco_test_top2(row, V).second, V, DECO_DTYPE_BF16)) split = p;
  }
  cr_assert_geq(split, 0, "no bf16 near tie in the greedy run");
  float *last = deco_test_last_logits(m, plain, split + 1);
  cr_assert_eq(deco_test_compare("last row", last, all + (size_t)split * V, (size_t)V, DECO_TOL_FORWARD_F32_ATOL,
                                 DECO_TOL_FORWARD_F32_RTOL),
               0);
  cr_assert_eq(deco_test_split_excused("identical", m, plain, plain, n, DECO_DTYPE_F32), -1);
  int32_t *spec = malloc(sizeof(int32_t) * (size_t)n);
  cr_assert_not_null(spec);
  memcpy(spec, plain, sizeof(int32_t) * (size_t)n);
  spec[split + 1] = deco_test_top2(all + (size_t)split * V, V).second;
  for (int i = split + 2; i < n; ++i) spec[i] = 0; /* anything after the split */
  cr_assert_eq(deco_test_split_excused("runner-up at a bf16 near tie", m, plain, spec, n, DECO_DTYPE_BF16), split + 1);
  free(spec);
  free(last);
  free(all);
  free(plain);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
