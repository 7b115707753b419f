/* kernels/rope/rope_ref.c — reference rotary embedding (RoFormer, Su et al.
 * 2021) as llama2.c computes it: pair j of a head has frequency
 * 1 / powf(theta, 2j / head_dim), angle = position * frequency (fp32).
 * Interleaved pairs (2j, 2j+1) or half-split pairs (j, j + head_dim/2).
 * q [n_tokens][n_heads][head_dim], k [n_tokens][n_kv_heads][head_dim], in place,
 * tokens q_stride / k_stride elements apart (0: dense).
 */
#include <math.h>

#include "common/op_impl.h"

static void rotate_heads(float *x, int n_heads, int head_dim, int pos, float theta, deco_rope_style_t style) {
  int half = head_dim / 2;
#if DECO_HARNESS_MUTANT == 8 /* test-only (tests/ops/run_mutants.sh): Llama 2's theta whatever the caller says */
  theta = 10000.0f;
#endif
#if DECO_HARNESS_MUTANT == 12 /* test-only: the half-split style rotates interleaved pairs */
  style = DECO_ROPE_INTERLEAVED;
#endif
  for (int h = 0; h < n_heads; ++h) {
    float *v = x + (size_t)h * head_dim;
    for (int j = 0; j < half; ++j) {
      float freq = 1.0f / powf(theta, (float)(2 * j) / (float)head_dim);
      float val = (float)pos * freq;
      float fcr = cosf(val);
      float fci = sinf(val);
      int i0 = style == DECO_ROPE_INTERLEAVED ? 2 * j : j;
      int i1 = style == DECO_ROPE_INTERLEAVED ? 2 * j + 1 : j + half;
      float v0 = v[i0];
      float v1 = v[i1];
      v[i0] = v0 * fcr - v1 * fci;
      v[i1] = v0 * fci + v1 * fcr;
    }
  }
}

deco_status_t deco_rope_ref(const deco_exec_t *exec, const deco_rope_args_t *a) {
  (void)exec;
#if DECO_HARNESS_MUTANT == 2 /* test-only (tests/ops/run_mutants.sh): q's token stride ignored */
  const size_t qs = (size_t)a->n_heads * a->head_dim;
#else
  const size_t qs = a->q_stride ? (size_t)a->q_stride : (size_t)a->n_heads * a->head_dim;
#endif
  const size_t ks = a->k_stride ? (size_t)a->k_stride : (size_t)a->n_kv_heads * a->head_dim;
  for (int t = 0; t < a->n_tokens; ++t) {
    int pos = a->positions[t];
    if (a->q) rotate_heads((float *)a->q + (size_t)t * qs, a->n_heads, a->head_dim, pos, a->theta, a->style);
    if (a->k) rotate_heads((float *)a->k + (size_t)t * ks, a->n_kv_heads, a->head_dim, pos, a->theta, a->style);
  }
  return DECO_STATUS_SUCCESS;
}
