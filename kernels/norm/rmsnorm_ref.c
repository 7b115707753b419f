/* kernels/norm/rmsnorm_ref.c — reference RMSNorm with fused residual add,
 * in llama2.c's order: residual += add; ss = sum x^2 (sequential fp32);
 * out = weight * (x / sqrt(ss / dim + eps)). Rows [n_rows][dim].
 */
#include <math.h>

#include "common/op_impl.h"

deco_status_t deco_rmsnorm_ref(const deco_exec_t *exec, const deco_rmsnorm_args_t *a) {
  (void)exec;
  const float *w = (const float *)a->weight;
  for (int r = 0; r < a->n_rows; ++r) {
    float *x = a->residual + (size_t)r * a->dim;
    float *o = (float *)a->out + (size_t)r * a->dim;
    if (a->add) {
      const float *d = (const float *)a->add + (size_t)r * a->dim;
      for (int i = 0; i < a->dim; ++i) x[i] += d[i];
    }
    float ss = 0.0f;
    for (int i = 0; i < a->dim; ++i) ss += x[i] * x[i];
    ss /= (float)a->dim;
#if DECO_HARNESS_MUTANT != 7 /* test-only (tests/ops/run_mutants.sh): mutant 7 drops eps */
    ss += a->eps;
#endif
    ss = 1.0f / sqrtf(ss);
    for (int i = 0; i < a->dim; ++i) o[i] = w[i] * (ss * x[i]);
  }
  return DECO_STATUS_SUCCESS;
}
