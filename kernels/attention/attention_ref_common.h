/* kernels/attention/attention_ref_common.h — the attention of one query head
 * that both C references (causal and tree) compute, in llama2.c's order:
 * scores = q·k * scale over the listed pool rows, softmax (max, exp, sum,
 * divide), out = sum_i a_i v_i; and the KV head and scale a query head
 * uses, where the op harness's mutants 3 and 4 break both references.
 */
#ifndef DECO_KERNELS_ATTENTION_REF_COMMON_H
#define DECO_KERNELS_ATTENTION_REF_COMMON_H

#include <math.h>
#include <stddef.h>

/* The first column of the KV head that query head h reads, h / group
 * (GQA); the harness's mutant 4 (tests/ops/run_mutants.sh) reads
 * h % n_kv_heads instead. */
static inline size_t deco_ref_kv_head(int h, int group, int n_kv_heads, int hd) {
#if DECO_HARNESS_MUTANT == 4 /* test-only: the wrong GQA group */
  (void)group;
  return (size_t)(h % n_kv_heads) * hd;
#else
  (void)n_kv_heads;
  return (size_t)(h / group) * hd;
#endif
}

/* The scores' scale; the harness's mutant 3 drops it. */
static inline float deco_ref_scale(float scale) {
#if DECO_HARNESS_MUTANT == 3 /* test-only: the scale dropped */
  (void)scale;
  return 1.0f;
#else
  return scale;
#endif
}

/* q [hd]; key i is row rows[i] of the pools ([row][kv_row], this head's
 * columns at kvh); att: scratch of n floats; o [hd]. */
static inline void deco_ref_attend(const float *q, const float *k_pool, const float *v_pool, const long long *rows,
                                   int n, size_t kv_row, size_t kvh, int hd, float scale, float *att, float *o) {
  float max = -INFINITY;
  for (int p = 0; p < n; ++p) {
    const float *k = k_pool + (size_t)rows[p] * kv_row + kvh;
    float score = 0.0f;
    for (int i = 0; i < hd; ++i) score += q[i] * k[i];
    score *= scale;
    att[p] = score;
    if (score > max) max = score;
  }
  float sum = 0.0f;
  for (int p = 0; p < n; ++p) {
    att[p] = expf(att[p] - max);
    sum += att[p];
  }
  for (int p = 0; p < n; ++p) att[p] /= sum;
  for (int i = 0; i < hd; ++i) o[i] = 0.0f;
  for (int p = 0; p < n; ++p) {
    const float *v = v_pool + (size_t)rows[p] * kv_row + kvh;
    for (int i = 0; i < hd; ++i) o[i] += att[p] * v[i];
  }
}

#endif
