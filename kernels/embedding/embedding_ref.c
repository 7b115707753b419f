/* kernels/embedding/embedding_ref.c — reference embedding gather (f32):
 * out[t] = table[tokens[t]], or out[t] = embeds[t] when tokens is NULL.
 * table [vocab][dim], out [n_tokens][dim]. Ids outside [0, vocab) give NaN rows.
 */
#include <math.h>
#include <string.h>

#include "common/op_impl.h"

deco_status_t deco_embedding_ref(const deco_exec_t *exec, const deco_embedding_args_t *a) {
  (void)exec;
  const float *table = (const float *)a->table;
  for (int t = 0; t < a->n_tokens; ++t) {
    float *row = a->out + (size_t)t * a->dim;
    if (a->tokens == NULL) {
      memcpy(row, a->embeds + (size_t)t * a->dim, sizeof(float) * (size_t)a->dim);
      continue;
    }
    int id = a->tokens[t];
    if (id < 0 || id >= a->vocab) {
#if DECO_HARNESS_MUTANT == 10 /* test-only (tests/ops/run_mutants.sh): a zero row instead of NaN */
      for (int i = 0; i < a->dim; ++i) row[i] = 0.0f;
#else
      for (int i = 0; i < a->dim; ++i) row[i] = NAN;
#endif
      continue;
    }
    memcpy(row, table + (size_t)id * a->dim, sizeof(float) * (size_t)a->dim);
  }
  return DECO_STATUS_SUCCESS;
}
