/* kernels/activation/swiglu_ref.c — reference SwiGLU (Shazeer 2020) as in
 * llama2.c: out[i] = gate[i] * (1 / (1 + expf(-gate[i]))) * up[i], fp32.
 * With row_len, element i is column i % row_len of row i / row_len, whose
 * gate and up rows start in_stride elements apart; out is dense.
 */
#include <math.h>

#include "common/op_impl.h"

deco_status_t deco_swiglu_ref(const deco_exec_t *exec, const deco_swiglu_args_t *a) {
  (void)exec;
  const float *g = (const float *)a->gate;
  const float *u = (const float *)a->up;
  float *o = (float *)a->out;
#if DECO_HARNESS_MUTANT == 9 /* test-only (tests/ops/run_mutants.sh): rows of gate and up read as dense */
  const size_t len = a->row_len ? (size_t)a->row_len : a->n, stride = a->row_len ? (size_t)a->row_len : 0;
#else
  const size_t len = a->row_len ? (size_t)a->row_len : a->n, stride = a->row_len ? (size_t)a->in_stride : 0;
#endif
  for (size_t i = 0; i < a->n; ++i) {
    const size_t src = (i / len) * stride + i % len; /* = i when flat */
    float val = g[src];
    val *= 1.0f / (1.0f + expf(-val));
    o[i] = val * u[src];
  }
  return DECO_STATUS_SUCCESS;
}
