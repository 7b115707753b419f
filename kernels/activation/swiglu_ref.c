/* kernels/activation/swiglu_ref.c — reference SwiGLU (Shazeer 2020) as in
 * llama2.c: out[i] = gate[i] * (1 / (1 + expf(-gate[i]))) * up[i], fp32.
 */
#include <math.h>

#include "common/op_impl.h"

deco_status_t deco_swiglu_ref(deco_ctx_t *ctx, const deco_swiglu_args_t *a) {
  (void)ctx;
  const float *g = (const float *)a->gate;
  const float *u = (const float *)a->up;
  float *o = (float *)a->out;
  for (size_t i = 0; i < a->n; ++i) {
    float val = g[i];
    val *= 1.0f / (1.0f + expf(-val));
    o[i] = val * u[i];
  }
  return DECO_STATUS_SUCCESS;
}
