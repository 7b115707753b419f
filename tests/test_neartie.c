/* tests/test_neartie.c — the near-tie rule used to excuse GPU/CPU argmax
 * differences, on constructed logits: it must excuse real near ties and
 * nothing else. */
#include <criterion/criterion.h>
#include <math.h>

#include "common/neartie.h"
#include "common/stats.h"
#include "common/tolerances.h"

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
