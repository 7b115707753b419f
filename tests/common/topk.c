/* tests/common/topk.c — see topk.h. */
#include "common/topk.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "common/tolerances.h"

static uint32_t rd32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

deco_test_topk_t deco_test_topk_read(const char *path) {
  size_t n = 0;
  unsigned char *b = deco_test_read_file(path, &n);
  cr_assert_not_null(b, "cannot read %s", path);
  cr_assert(n >= 56 && memcmp(b, "DECOTOPK", 8) == 0 && rd32(b + 8) == 1, "%s: not a version 1 .topk file", path);
  deco_test_topk_t t;
  memset(&t, 0, sizeof t);
  t.T = (int)rd32(b + 12);
  t.k = (int)rd32(b + 16);
  t.vocab = (int)rd32(b + 20);
  memcpy(t.sha256, b + 24, 32);
  cr_assert(t.T >= 1 && t.T <= 4096 && t.k >= 2 && t.k <= 64 && t.vocab >= t.k, "%s: T %d k %d vocab %d", path, t.T,
            t.k, t.vocab);
  const size_t rec = (size_t)t.k * 4 + (size_t)t.k * 8 + 8;
  cr_assert_eq(n, 56 + (size_t)t.T * 4 + (size_t)t.T * rec, "%s: %zu bytes for T %d k %d", path, n, t.T, t.k);
  t.input = malloc(sizeof(int32_t) * (size_t)t.T);
  t.ids = malloc(sizeof(int32_t) * (size_t)t.T * t.k);
  t.logits = malloc(sizeof(double) * (size_t)t.T * t.k);
  t.lse = malloc(sizeof(double) * (size_t)t.T);
  cr_assert(t.input && t.ids && t.logits && t.lse);
  memcpy(t.input, b + 56, sizeof(int32_t) * (size_t)t.T);
  const unsigned char *p = b + 56 + (size_t)t.T * 4;
  for (int i = 0; i < t.T; ++i, p += rec) {
    memcpy(t.ids + (size_t)i * t.k, p, 4 * (size_t)t.k);
    memcpy(t.logits + (size_t)i * t.k, p + 4 * (size_t)t.k, 8 * (size_t)t.k);
    memcpy(t.lse + i, p + 12 * (size_t)t.k, 8);
  }
  for (int i = 0; i < t.T; ++i) {
    cr_assert(t.input[i] >= 0 && t.input[i] < t.vocab, "%s: input[%d] = %d", path, i, t.input[i]);
    for (int j = 0; j < t.k; ++j)
      cr_assert(t.ids[(size_t)i * t.k + j] >= 0 && t.ids[(size_t)i * t.k + j] < t.vocab, "%s: ids", path);
  }
  free(b);
  return t;
}

void deco_test_topk_free(deco_test_topk_t *t) {
  free(t->input);
  free(t->ids);
  free(t->logits);
  free(t->lse);
  memset(t, 0, sizeof *t);
}

deco_test_topk_report_t deco_test_topk_check(const char *what, const deco_test_topk_t *t, const float *logits,
                                             int V) {
  deco_test_topk_report_t r;
  memset(&r, 0, sizeof r);
  cr_assert_eq(V, t->vocab, "%s: the model's vocabulary %d, the fixture's %d", what, V, t->vocab);
  int worst_p = -1, worst_j = -1;
  for (int p = 0; p < t->T; ++p) {
    const float *row = logits + (size_t)p * V;
    const int32_t *ids = t->ids + (size_t)p * t->k;
    const double *ref = t->logits + (size_t)p * t->k;
    for (int j = 0; j < t->k; ++j) {
      const double d = fabs((double)row[ids[j]] - ref[j]);
      const double ratio = d / (DECO_TOL_GGUF_REF * (1.0 + fabs(ref[j])));
      if (!(d <= r.max_diff)) r.max_diff = d;
      if (!(ratio <= r.max_ratio)) {
        r.max_ratio = ratio;
        worst_p = p;
        worst_j = j;
      }
      if (!(ratio <= 1.0)) {
        if (r.bad_values < 5)
          fprintf(stderr, "%s: position %d, id %d: logit %.9g, reference %.9g: |diff| %.3g outside %.3g\n", what, p,
                  ids[j], (double)row[ids[j]], ref[j], d, DECO_TOL_GGUF_REF * (1.0 + fabs(ref[j])));
        r.bad_values++;
      }
    }
    /* The whole row's logsumexp, in double. */
    double mx = -INFINITY, s = 0.0;
    for (int i = 0; i < V; ++i)
      if (row[i] > mx) mx = row[i];
    for (int i = 0; i < V; ++i) s += exp((double)row[i] - mx);
    const double lse_diff = fabs(mx + log(s) - t->lse[p]);
    if (!(lse_diff <= r.max_lse_diff)) r.max_lse_diff = lse_diff;

    const int am = deco_argmax(row, V);
    if (am == ids[0]) continue;
    const double gap = ref[0] - ref[1];
    if (gap <= DECO_TOL_GGUF_REF_NEAR_TIE && am == ids[1]) {
      r.argmax_excused++;
      fprintf(stderr, "%s: position %d: argmax %d = the reference's runner-up, reference %d, top-2 gap %.3g <= %.3g "
              "(near tie, excused)\n", what, p, am, ids[0], gap, DECO_TOL_GGUF_REF_NEAR_TIE);
    } else {
      r.argmax_bad++;
      fprintf(stderr, "%s: position %d: argmax %d, reference %d (runner-up %d), top-2 gap %.3g: MISMATCH\n", what, p,
              am, ids[0], ids[1], gap);
    }
  }
  fprintf(stderr,
          "%s: %d positions x top-%d: max |logit - float64 reference| %.3g (worst %.3g of the tolerance, position %d "
          "rank %d); max |logsumexp diff| %.3g; %d values outside; argmax: %d near ties excused, %d mismatches\n",
          what, t->T, t->k, r.max_diff, r.max_ratio, worst_p, worst_j, r.max_lse_diff, r.bad_values, r.argmax_excused,
          r.argmax_bad);
  return r;
}

/* The rows a teacher-forced run writes: n one-token forwards (decode), one
 * prefill writing every row, or one prefill writing the last row only. */
typedef enum forced_mode { FORCED_DECODE, FORCED_ALL, FORCED_LAST } forced_mode_t;

static float *forced(deco_model_t *model, const int32_t *ids, int n, forced_mode_t mode) {
  deco_ctx_t *ctx = deco_model_ctx(model);
  const int V = deco_model_get_hparams(model)->vocab_size;
  const size_t rows = mode == FORCED_LAST ? 1 : (size_t)n;
  deco_kv_cache_t *kc;
  cr_assert_eq(deco_kv_cache_create(model, 16, (n + 15) / 16 + 1, 1, &kc), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  int seq;
  cr_assert_eq(deco_kv_cache_admit(kc, n, &seq), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  float *d_logits;
  cr_assert_eq(deco_malloc(ctx, (void **)&d_logits, sizeof(float) * rows * V), DECO_STATUS_SUCCESS);
  if (mode == FORCED_DECODE) {
    for (int p = 0; p < n; ++p) {
      int one = 1;
      deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &one, .tokens = ids + p,
                                .logits_mode = DECO_LOGITS_LAST, .logits = d_logits + (size_t)p * V};
      cr_assert_eq(deco_forward(model, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    }
  } else {
    deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &n, .tokens = ids,
                              .logits_mode = mode == FORCED_ALL ? DECO_LOGITS_ALL : DECO_LOGITS_LAST,
                              .logits = d_logits};
    cr_assert_eq(deco_forward(model, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  }
  float *logits = malloc(sizeof(float) * rows * V);
  cr_assert_not_null(logits);
  cr_assert_eq(deco_memcpy(ctx, logits, d_logits, sizeof(float) * rows * V, DECO_COPY_CTX_TO_HOST),
               DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_free(ctx, d_logits);
  deco_kv_cache_destroy(kc);
  return logits;
}

float *deco_test_teacher_forced(deco_model_t *model, const int32_t *ids, int n, int prefill) {
  return forced(model, ids, n, prefill ? FORCED_ALL : FORCED_DECODE);
}

float *deco_test_last_logits(deco_model_t *model, const int32_t *ids, int n) {
  return forced(model, ids, n, FORCED_LAST);
}

float *deco_test_forward_all(deco_model_t *model, const int32_t *ids, int n) {
  return deco_test_teacher_forced(model, ids, n, 1);
}
