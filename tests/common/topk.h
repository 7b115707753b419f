/* tests/common/topk.h — the float64 reference's fixtures for GGUF models
 * (data/fixtures/gguf/NAME.topk, written by scripts/gguf/reference.py; format
 * in scripts/gguf/ggufutil.py): per teacher-forced position the reference's
 * top-k ids and logits and the row's logsumexp, and the check of a forward's
 * logits against them (tolerances.h: DECO_TOL_GGUF_REF*).
 */
#ifndef DECO_TESTS_TOPK_H
#define DECO_TESTS_TOPK_H

#include <stdint.h>

#include "deco/deco.h"

typedef struct deco_test_topk {
  int T, k, vocab;
  unsigned char sha256[32]; /* of the GGUF file the logits come from */
  int32_t *input;           /* [T] the ids fed (no BOS added) */
  int32_t *ids;             /* [T][k] largest logit first, ties to the lower id */
  double *logits;           /* [T][k] */
  double *lse;              /* [T] logsumexp of the whole row */
} deco_test_topk_t;

/* Reads a .topk file (asserts that it is one: magic, version 1, sizes). */
deco_test_topk_t deco_test_topk_read(const char *path);
void deco_test_topk_free(deco_test_topk_t *t);

/* What deco_test_topk_check found. */
typedef struct deco_test_topk_report {
  double max_diff;   /* largest |logit - reference| over the stored ids */
  double max_ratio;  /* the same against its tolerance (> 1 fails) */
  double max_lse_diff; /* largest |logsumexp - reference| (printed, not judged) */
  int bad_values;    /* stored logits outside the tolerance (NaN counts) */
  int argmax_excused; /* argmax = the reference's runner-up at a near tie */
  int argmax_bad;    /* any other argmax difference */
} deco_test_topk_report_t;

/* Compares f32 logits [T][V] of a forward teacher-forced on t->input with
 * the reference: every stored logit within DECO_TOL_GGUF_REF * (1 + |r|),
 * the argmax equal to the reference's unless its top-2 gap is at most
 * DECO_TOL_GGUF_REF_NEAR_TIE and the pick is its runner-up (each excused
 * position printed). Prints a summary line starting with what. */
deco_test_topk_report_t deco_test_topk_check(const char *what, const deco_test_topk_t *t, const float *logits,
                                             int V);

/* Logits [n][V] (host, malloc'd) of ids[0..n) teacher-forced on a fresh
 * cache: one prefill writing every position's row (DECO_LOGITS_ALL), or
 * (prefill 0, the decode path) n one-token forwards, each writing its
 * row. Asserts success. */
float *deco_test_teacher_forced(deco_model_t *model, const int32_t *ids, int n, int prefill);
/* deco_test_teacher_forced(model, ids, n, 1). */
float *deco_test_forward_all(deco_model_t *model, const int32_t *ids, int n);
/* The logits [V] (host, malloc'd) after ids[0..n) on a fresh cache: one
 * prefill writing only its last row (DECO_LOGITS_LAST). Asserts success. */
float *deco_test_last_logits(deco_model_t *model, const int32_t *ids, int n);

#endif
