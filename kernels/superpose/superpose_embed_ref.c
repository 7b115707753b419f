/* kernels/superpose/superpose_embed_ref.c — reference superposed input
 * embedding (deco/superpose_ops.h, Shen et al. 2024): out[r] = sum of
 * weights[r][i] * table[tokens[r][i]] over the nonzero weights, in slot
 * order from the first such term (f32 table on the CPU). table
 * [vocab][dim], tokens and weights [n_rows][k], out [n_rows][dim].
 */
#include <math.h>
#include <string.h>

#include "common/op_impl.h"

deco_status_t deco_superpose_embed_ref(const deco_exec_t *exec, const deco_superpose_embed_args_t *a) {
  (void)exec;
  const float *table = (const float *)a->table;
  for (int r = 0; r < a->n_rows; ++r) {
    float *out = a->out + (size_t)r * a->dim;
    const int32_t *tok = a->tokens + (size_t)r * a->k;
    const float *w = a->weights + (size_t)r * a->k;
    int first = 1, bad = 0;
    for (int i = 0; i < a->k; ++i)
      if (w[i] != 0.0f && (tok[i] < 0 || tok[i] >= a->vocab)) bad = 1;
    if (bad) {
      for (int e = 0; e < a->dim; ++e) out[e] = NAN;
      continue;
    }
    memset(out, 0, sizeof(float) * (size_t)a->dim);
    for (int i = 0; i < a->k; ++i) {
      if (w[i] == 0.0f) continue;
      const float *row = table + (size_t)tok[i] * a->dim;
      for (int e = 0; e < a->dim; ++e) {
        const float p = w[i] * row[e]; /* its own statement: never fused with the sum */
        out[e] = first ? p : out[e] + p;
      }
      first = 0;
    }
  }
  return DECO_STATUS_SUCCESS;
}
