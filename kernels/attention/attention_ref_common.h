/* kernels/attention/attention_ref_common.h — the attention of one query head
 * that both C references (causal and tree) compute, in llama2.c's order:
 * scores = q·k * scale over the listed pool rows, softmax (max, exp, sum,
 * divide), out = sum_i a_i v_i.
 */
#ifndef DECO_KERNELS_ATTENTION_REF_COMMON_H
#define DECO_KERNELS_ATTENTION_REF_COMMON_H

#include <math.h>
#include <stddef.h>

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
