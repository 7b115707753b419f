/* tests/test_sampler.c — greedy, temperature, top-k and top-p sampling on
 * the host: ties, reproducibility, the config's size, and the sampled law
 * against the intended distribution (chi-square, alpha 1e-3).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/stats.h"
#include "common/testutil.h"
#include "common/tolerances.h"

Test(sampler, argmax_ties_and_nan) {
  float v[5] = {1, 3, 3, -1, 2};
  cr_assert_eq(deco_argmax(v, 5), 1);
  float w[3] = {NAN, 0.5f, 0.5f};
  cr_assert_eq(deco_argmax(w, 3), 1, "NaN never wins");
  float z[1] = {-INFINITY};
  cr_assert_eq(deco_argmax(z, 1), 0);
}

Test(sampler, greedy_ignores_the_draw) {
  deco_sampler_t *s;
  deco_sampler_config_t c = {.size = sizeof(deco_sampler_config_t), .temperature = 0.0f, .top_p = 0.9f, .seed = 1};
  cr_assert_eq(deco_sampler_create(4, &c, &s), DECO_STATUS_SUCCESS);
  float l[4] = {0.1f, 2.0f, 2.0f, -3.0f};
  for (uint32_t off = 0; off < 50; ++off) cr_assert_eq(deco_sampler_sample(s, l, off, 0), 1);
  deco_sampler_destroy(s);
}

Test(sampler, bad_config) {
  deco_sampler_t *s = (deco_sampler_t *)0x1;
  deco_sampler_config_t c = {.size = sizeof(deco_sampler_config_t), .temperature = -1.0f, .top_p = 0.9f, .seed = 1};
  cr_assert_eq(deco_sampler_create(4, &c, &s), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_null(s);
  /* The law deco_generate checks too, in the same words. */
  cr_assert_str_eq(deco_last_error(NULL), "deco_sampler_create: temperature = -1 must be finite and >= 0");
  c.temperature = 1.0f;
  c.top_p = 0.0f;
  cr_assert_eq(deco_sampler_create(4, &c, &s), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_str_eq(deco_last_error(NULL), "deco_sampler_create: top_p = 0 must be finite and > 0");
  c.top_p = INFINITY;
  cr_assert_eq(deco_sampler_create(4, &c, &s), DECO_STATUS_INVALID_ARGUMENT);
  c.top_p = 1.0f;
  cr_assert_eq(deco_sampler_create(0, &c, &s), DECO_STATUS_INVALID_ARGUMENT);
  c.top_k = -1;
  cr_assert_eq(deco_sampler_create(4, &c, &s), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_str_eq(deco_last_error(NULL), "deco_sampler_create: top_k = -1 outside [0, 16777216]");
  c.top_k = (1 << 24) + 1;
  cr_assert_eq(deco_sampler_create(4, &c, &s), DECO_STATUS_INVALID_ARGUMENT);
  c.top_k = 0;
  c.size = 0; /* not filled from DECO_SAMPLER_CONFIG_INIT */
  cr_assert_eq(deco_sampler_create(4, &c, &s), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(NULL), "size") != NULL, "%s", deco_last_error(NULL));
  deco_sampler_config_t init = DECO_SAMPLER_CONFIG_INIT;
  cr_assert_eq(deco_sampler_create(4, &init, &s), DECO_STATUS_SUCCESS);
  deco_sampler_destroy(s);
}

/* Samples n draws and tests them against expect[] (probabilities). */
static double sample_chi2(float temperature, int top_k, float top_p, const float *logits, int V,
                          const double *expect, int n, int *df) {
  deco_sampler_t *s;
  deco_sampler_config_t c = DECO_SAMPLER_CONFIG_INIT;
  c.temperature = temperature;
  c.top_k = top_k;
  c.top_p = top_p;
  c.seed = 99;
  cr_assert_eq(deco_sampler_create(V, &c, &s), DECO_STATUS_SUCCESS);
  long *counts = calloc((size_t)V, sizeof(long));
  for (int i = 0; i < n; ++i) {
    int t = deco_sampler_sample(s, logits, (uint32_t)i, 3);
    cr_assert(t >= 0 && t < V);
    cr_assert(expect[t] > 0.0, "token %d is outside the support", t);
    counts[t]++;
  }
  double p = deco_test_chi2_pvalue(counts, expect, V, n, df);
  free(counts);
  deco_sampler_destroy(s);
  return p;
}

/* The law of the top-p and top-k tests over 10 ids, and its logits. */
static const double law10[10] = {0.3, 0.25, 0.15, 0.1, 0.08, 0.05, 0.04, 0.02, 0.007, 0.003};
static void law10_logits(float l[10]) {
  for (int i = 0; i < 10; ++i) l[i] = (float)log(law10[i]);
}

Test(sampler, temperature_law) {
  const int V = 12, n = 100000;
  float l[12];
  double expect[12], sum = 0;
  deco_test_fill_uniform(l, 12, 4, 0, -2, 2);
  const float T = 0.7f;
  for (int i = 0; i < V; ++i) sum += expect[i] = exp(l[i] / T);
  for (int i = 0; i < V; ++i) expect[i] /= sum;
  int df;
  double p = sample_chi2(T, 0, 1.0f, l, V, expect, n, &df);
  cr_assert(p > DECO_TEST_ALPHA / 2, "temperature sampling: p = %g (df %d)", p, df);
}

Test(sampler, top_p_law) {
  const int V = 10, n = 100000;
  /* The 0.8-nucleus of law10 is the first four (cumulative 0.8 reached
   * at the fourth). */
  float l[10];
  law10_logits(l);
  double expect[10] = {0};
  double mass = 0.3 + 0.25 + 0.15 + 0.1 + 0.08;
  /* run.c's rule stops at the first cumulative sum above top_p: 0.3 0.55 0.7
   * 0.8 0.88 -> five tokens for top_p = 0.85. */
  for (int i = 0; i < 5; ++i) expect[i] = law10[i] / mass;
  int df;
  double p = sample_chi2(1.0f, 0, 0.85f, l, V, expect, n, &df);
  cr_assert(p > DECO_TEST_ALPHA / 2, "top-p sampling: p = %g (df %d)", p, df);
}

Test(sampler, top_k_law) {
  /* Top-4 of law10, renormalised; then with top_p 0.8 of those four (0.3
   * 0.55 0.7 0.8 of mass 0.8: cumulative 0.3/0.8 0.69 0.875 exceeds 0.8 at
   * the third), the first three. Ties at the k-th rank go to the lower id. */
  const int V = 10, n = 100000;
  float l[10];
  law10_logits(l);
  double expect[10] = {0}, expect_p[10] = {0};
  for (int i = 0; i < 4; ++i) expect[i] = law10[i] / 0.8;
  for (int i = 0; i < 3; ++i) expect_p[i] = law10[i] / 0.7;
  int df;
  double p = sample_chi2(1.0f, 4, 1.0f, l, V, expect, n, &df);
  cr_assert(p > DECO_TEST_ALPHA / 3, "top-k sampling: p = %g (df %d)", p, df);
  p = sample_chi2(1.0f, 4, 0.8f, l, V, expect_p, n, &df);
  cr_assert(p > DECO_TEST_ALPHA / 3, "top-k then top-p: p = %g (df %d)", p, df);
  /* k = 1 is greedy, ties to the lower id; k >= vocab is no restriction. */
  float tie[4] = {0.5f, 2.0f, 2.0f, 1.0f};
  deco_sampler_config_t c = DECO_SAMPLER_CONFIG_INIT;
  c.top_k = 1;
  deco_sampler_t *s;
  cr_assert_eq(deco_sampler_create(4, &c, &s), DECO_STATUS_SUCCESS);
  for (uint32_t off = 0; off < 200; ++off) cr_assert_eq(deco_sampler_sample(s, tie, off, 0), 1);
  deco_sampler_destroy(s);
  p = sample_chi2(1.0f, 10, 1.0f, l, V, law10, n, &df);
  cr_assert(p > DECO_TEST_ALPHA / 3, "top-k = vocab: p = %g (df %d)", p, df);
}

Test(sampler, detects_a_wrong_law) {
  /* The test above can fail: the top-p sample tested against the untruncated law. */
  const int V = 10, n = 100000;
  float l[10];
  law10_logits(l);
  deco_sampler_t *s;
  deco_sampler_config_t c = {.size = sizeof(deco_sampler_config_t), .temperature = 1.0f, .top_p = 0.85f,
                             .seed = 99};
  cr_assert_eq(deco_sampler_create(V, &c, &s), DECO_STATUS_SUCCESS);
  long counts[10] = {0};
  for (int i = 0; i < n; ++i) counts[deco_sampler_sample(s, l, (uint32_t)i, 3)]++;
  int df;
  double p = deco_test_chi2_pvalue(counts, law10, V, n, &df);
  cr_assert(p < 1e-6, "a wrong law must be rejected: p = %g", p);
  deco_sampler_destroy(s);
}

/* A flat row (a temperature far above the logits' spread: every
 * probability rounds to 1/V) with a small top_p: the nucleus is the head of
 * the ranking, the k largest logits with k/V > top_p (equal probabilities
 * rank by logit, as acceptance ranks them, so speculative sampling keeps the
 * same k). At top_p 1e-4 run.c's pre-filter keeps no token at all: the
 * nucleus is still the largest logit, never a uniform draw over the
 * vocabulary; at 1e-2 it is the 6 largest, never the lowest ids. */
Test(sampler, a_flat_row_draws_from_the_head_of_its_logits) {
  enum { V = 512 };
  float l[V];
  for (int i = 0; i < V; ++i) l[i] = (float)((i * 37) % V) * 1e-3f; /* distinct: 37 is coprime with 512 */
  const float top_p[2] = {1e-4f, 1e-2f};
  const int head[2] = {1, 6};
  for (int t = 0; t < 2; ++t) {
    deco_sampler_t *s;
    deco_sampler_config_t c = {.size = sizeof c, .temperature = 1e30f, .top_p = top_p[t], .seed = 5};
    cr_assert_eq(deco_sampler_create(V, &c, &s), DECO_STATUS_SUCCESS);
    for (uint32_t off = 0; off < 200; ++off) {
      const int id = deco_sampler_sample(s, l, off, 0);
      cr_assert(id >= 0 && id < V);
      int rank = 0; /* logits above the drawn one */
      for (int i = 0; i < V; ++i) rank += l[i] > l[id];
      cr_assert_lt(rank, head[t], "top_p %g, offset %u: id %d has rank %d", (double)top_p[t], off, id, rank);
    }
    deco_sampler_destroy(s);
  }
}

/* The float running sum can end below the draw (here 0.99999952 against
 * offset 714165's 0.99999970, seed 42, with glibc's expf; another libm
 * may sum this row otherwise, and then the draw is the same id without the
 * fallback): the draw is then the last id of positive probability, as
 * acceptance falls back, never the last id when its probability is 0. */
Test(sampler, a_short_sum_never_draws_a_zero_probability) {
  enum { V = 49152 };
  static float l[V];
  for (int i = 0; i < V; ++i) l[i] = (float)((unsigned)(i * 2654435761u) % 10007u) * 0.0009f;
  l[V - 1] = -1e30f;
  deco_sampler_t *s;
  deco_sampler_config_t c = {.size = sizeof c, .temperature = 1.0f, .top_p = 1.0f, .seed = 42};
  cr_assert_eq(deco_sampler_create(V, &c, &s), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_sampler_sample(s, l, 714165, 0), V - 2);
  deco_sampler_destroy(s);
}
